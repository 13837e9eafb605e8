"""The CLI configures logging once: --log-level and --log-file (before or after the subcommand), every record
with its local time (ISO 8601, milliseconds, UTC offset), level and logger -- never Python's bare last-resort
output. Real `stagectl` processes, real files."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stagectl import cli

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "stagectl")
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
LISTENING = re.compile(STAMP + r" INFO stagectl\.tracking\.receiver: listen-freed: listening for freed on 127\.0\.0\.1:\d+$",
                       re.M)


@pytest.fixture
def restore_logging():
    """In-process runs of cli.main install handlers on the root logger: take them off again."""
    root = logging.getLogger()
    level = root.level
    yield
    for h in list(cli._installed):
        root.removeHandler(h)
        h.close()
    cli._installed.clear()
    root.setLevel(level)


def _listen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, check=False)


def test_log_level_and_log_file_before_or_after_the_subcommand(tmp_path: Path) -> None:
    log = tmp_path / "stage.log"
    log.write_text("an earlier line\n")
    for argv in (["--log-level", "info", "--log-file", str(log), "listen"],
                 ["listen", "--log-level", "info", "--log-file", str(log)]):
        proc = _listen(*argv, "--protocol", "freed", "--bind", "127.0.0.1", "--port", "0", "--duration", "0.2")
        assert proc.returncode == 0, proc.stderr  # --duration reached, no --count to miss
    text = log.read_text()
    assert text.startswith("an earlier line\n")  # appended to, never truncated
    assert len(LISTENING.findall(text)) == 2, text  # one per run, timestamped, with level and logger
    assert LISTENING.search(proc.stderr), proc.stderr  # stderr gets it too
    # the default level is warning: the info record stays out (listen's own line is no log record)
    proc = _listen("listen", "--protocol", "freed", "--bind", "127.0.0.1", "--port", "0", "--duration", "0.2")
    assert "listening for freed on 127.0.0.1" in proc.stderr and not re.search(STAMP + " INFO ", proc.stderr)


def test_warnings_are_timestamped_records_not_last_resort_output(capsys, restore_logging) -> None:
    assert cli.main(["--log-level", "warning", "check", str(REPO / "stages" / "flat_wall.yaml")]) == 0
    capsys.readouterr()
    logging.getLogger("stagectl.tracking.receiver").warning("tracker: bad packet (checksum) from 10.0.0.9:4000")
    logging.getLogger("stagectl.tracking.receiver").info("not shown at level warning")
    err = capsys.readouterr().err
    assert re.fullmatch(STAMP + r" WARNING stagectl\.tracking\.receiver: tracker: bad packet \(checksum\) from "
                        r"10\.0\.0\.9:4000\n", err), err
    # a second configuration replaces the first: one line per record, never two
    assert cli.main(["check", str(REPO / "stages" / "flat_wall.yaml"), "--log-level", "error"]) == 0
    capsys.readouterr()
    logging.getLogger("stagectl.x").warning("hidden at level error")
    logging.getLogger("stagectl.x").error("shown once")
    err = capsys.readouterr().err
    assert err.count("shown once") == 1 and "hidden" not in err, err


def test_an_unwritable_log_file_is_one_clear_error(tmp_path: Path) -> None:
    proc = _listen("--log-file", str(tmp_path / "no" / "such" / "dir.log"), "check",
                   str(REPO / "stages" / "flat_wall.yaml"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"stagectl check: error: --log-file: cannot open {tmp_path / 'no' / 'such' / 'dir.log'}: "
                                   "No such file or directory"), proc.stderr
    proc = _listen("--log-level", "loud", "check", str(REPO / "stages" / "flat_wall.yaml"))
    assert proc.returncode == 2 and "--log-level: invalid choice: 'loud'" in proc.stderr
