"""`stagectl run` as a background process for the console tests: its output lines as they come, a clean stop."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

EXE = str(Path(sys.executable).parent / "stagectl")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port of ``kind`` (SOCK_STREAM / SOCK_DGRAM) that was free a moment ago, for a subprocess."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StageRun:
    """``stagectl run STAGE --sink --preview-every 0 --duration S [extra...]`` started at once."""

    def __init__(self, stage: Path, *extra: str, duration_s: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [EXE, "run", str(stage), "--duration", f"{duration_s:g}", "--sink", "--preview-every", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout_s: float = 60.0) -> re.Match:
        """The first new output line matching ``pattern`` (reading on); AssertionError with the output if none
        comes before the process ends or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> str:
        """SIGTERM, wait, and the whole output."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        self.lines.append(out)
        return "".join(self.lines)
