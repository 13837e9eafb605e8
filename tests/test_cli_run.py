"""`stagectl run` as a user runs it: real process, real pacing, honest output, clean stop on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import STAGES

EXE = str(Path(sys.executable).parent / "stagectl")


def test_run_for_a_duration_paces_frames_and_says_what_it_did() -> None:
    t0 = time.monotonic()
    proc = subprocess.run([EXE, "run", str(STAGES / "demo.yaml"), "--duration", "1.5"],
                          capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Nothing is sent to any output" in out
    m = re.search(r"duration reached after (\d+) frames", out)
    assert m, out
    # 1.5 s at 24000/1001 fps is 35.96 frames: edges 0..35 fall inside the duration
    assert int(m.group(1)) == 36
    assert wall >= 1.4
    status = [line for line in out.splitlines() if line.startswith("[00:00:01:00] frame 24:")]
    assert status and "inner frustum covers main" in status[0]


def test_sigterm_stops_within_a_second() -> None:
    proc = subprocess.Popen([EXE, "run", str(STAGES / "flat_wall.yaml")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the loop runs (first status line)
            line = proc.stdout.readline()
            if line.startswith("[") or not line:
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        assert time.monotonic() - t0 < 1.0
        assert proc.returncode == 0, err
        assert "stopped by signal" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_rejects_bad_duration() -> None:
    proc = subprocess.run([EXE, "run", str(STAGES / "demo.yaml"), "--duration", "-1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--duration: expected a positive number" in proc.stderr
    assert "Traceback" not in proc.stderr
