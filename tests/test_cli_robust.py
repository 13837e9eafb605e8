"""The command line on set: a reader that goes away (`| head`) and an output path that cannot be written end the
command with a short message or quietly, never with a Python traceback (issue 11).

Real processes and real pipes: `stagectl check --json` into a pipe whose reader has gone, `stagectl listen --json`
into `head -n 3` while real FreeD packets arrive on loopback, and every calibration tool's `--out` pointed at
places it cannot write (`record` and `snapshot` already refused theirs in one line). Every wait is bounded;
every process is killed if it outlives its test.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import made_and_closed

from stagectl.cli import main as cli_main
from stagectl.tracking.codecs.freed import FreeDPacket, encode_freed

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "opencv_samples"
EXE = str(Path(sys.executable).parent / "stagectl")
LISTENING = re.compile(r"listening for \w+ on 127\.0\.0\.1:(\d+)")
SIGPIPE_EXIT = 141  # what the shell reports for a program that SIGPIPE ended: 128 + 13
NOISE = ("Traceback", "Exception ignored", "BrokenPipeError", "Broken pipe")


@pytest.fixture
def popen():
    """Factory of :class:`subprocess.Popen`; each still running is killed at teardown."""

    def kill(p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.kill()
            p.wait(5)

    yield from made_and_closed(subprocess.Popen, kill)


# ============================================================================================== closed pipes


def test_check_json_into_a_pipe_whose_reader_is_gone_exits_quietly(popen):
    """`stagectl check stages/demo.yaml --json | head -0`: the reader is gone before the first write."""
    p = popen([EXE, "check", str(REPO / "stages" / "demo.yaml"), "--json"], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, cwd=REPO)
    p.stdout.close()  # the child is still importing: its first write meets a pipe without a reader
    err = p.stderr.read().decode()
    rc = p.wait(60)
    assert rc == SIGPIPE_EXIT, err
    assert not any(word in err for word in NOISE), err


@pytest.mark.parametrize("unbuffered", [True, False])
def test_calibrate_lens_into_a_closed_pipe_exits_quietly_with_its_files_written(popen, tmp_path, unbuffered):
    """`stagectl calibrate lens ... | head -0`: the summary's reader is gone; the lens file and its evidence are
    written all the same, whether stdout is buffered (the default for a pipe) or not (PYTHONUNBUFFERED)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    p = popen([EXE, "calibrate", "lens", "--images", str(SAMPLES), "--inner", "9x6", "--square", "0.025", "--out",
               str(tmp_path / "lens.yaml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(120) == SIGPIPE_EXIT, err
    assert not any(word in err for word in NOISE) and "error" not in err, err
    assert (tmp_path / "lens.yaml").is_file() and (tmp_path / "lens.calibration.yaml").is_file()


def test_calibration_script_into_a_closed_pipe_exits_quietly(popen, tmp_path):
    p = popen([sys.executable, str(REPO / "calibration" / "lens.py"), "--images", str(SAMPLES), "--inner", "9x6",
               "--square", "0.025", "--out", str(tmp_path / "lens.yaml")], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, cwd=REPO)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(120) == SIGPIPE_EXIT, err
    assert not any(word in err for word in NOISE), err
    assert (tmp_path / "lens.yaml").is_file()


def test_listen_into_head_stops_quietly_when_head_has_its_lines(popen):
    """`stagectl listen --json | head -n 3` with a tracker sending: listen ends by itself once head is gone."""
    listen = popen([EXE, "listen", "--protocol", "freed", "--bind", "127.0.0.1", "--port", "0", "--json",
                    "--duration", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    head = popen(["head", "-n", "3"], stdin=listen.stdout, stdout=subprocess.PIPE, text=True)
    listen.stdout.close()  # head holds the only read end, as in a shell pipeline
    err_lines: list[str] = []
    err_q: queue.SimpleQueue[str] = queue.SimpleQueue()

    def pump() -> None:
        for line in listen.stderr:
            err_lines.append(line)
            err_q.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    port = None
    while port is None and time.monotonic() < deadline:
        try:
            m = LISTENING.search(err_q.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
        port = int(m.group(1)) if m else None
    assert port is not None, "".join(err_lines)
    packet = encode_freed(FreeDPacket(1, 10.0, -2.0, 0.5, 1.0, 2.0, 1.5, 1000, 2000, 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while listen.poll() is None and time.monotonic() < deadline:  # a tracker at 100 Hz until listen ends
            s.sendto(packet, ("127.0.0.1", port))
            time.sleep(0.01)
    rc = listen.wait(10)
    out = head.communicate(timeout=10)[0]
    reader.join(10)
    err = "".join(err_lines)
    assert rc == SIGPIPE_EXIT, err
    assert [json.loads(line)["protocol"] for line in out.splitlines()] == ["FreeD"] * 3
    assert not any(word in err for word in NOISE), err


# ============================================================================================== unwritable --out


def _calibrate_args(tool: str, out: str) -> list[str]:
    """Arguments that get each tool as far as its first output (the inputs need not exist: outputs come first)."""
    tracked = ["--images", str(SAMPLES), "--poses", "poses.csv", "--lens", "lens.yaml", "--inner", "9x6",
               "--square", "0.025"]
    return {
        "lens": ["--images", str(SAMPLES), "--inner", "9x6", "--square", "0.025"],
        "handeye": tracked,
        "pupil": [*tracked, "--tracker-offset", "0 0 0 0 0 0"],
        "wall": ["--stage", str(REPO / "stages" / "flat_wall.yaml"), "--survey", "survey.csv"],
        "delay": ["--take", "x.stgtake", "--frames", "frames", "--fps", "25"],
    }[tool] + ["--out", out]


@pytest.mark.parametrize("tool", ["lens", "handeye", "pupil", "wall", "delay"])
def test_calibrate_refuses_an_unwritable_out_before_it_starts(tool, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for out, expected in (
        (a_file / "result.yaml", f"--out: cannot create {a_file / 'result.yaml'}: {a_file} is a file, not a folder"),
        (a_file / "deeper" / "result.yaml", f"{a_file} is a file, not a folder"),
        (tmp_path, f"--out: {tmp_path} is a folder; give a file name"),
    ):
        rc = cli_main(["calibrate", tool, *_calibrate_args(tool, str(out))])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert err.startswith("stagectl calibrate: error: ") and expected in err, err
        assert len(err.strip().splitlines()) == 1, err
    rc = cli_main(["calibrate", tool, *_calibrate_args(tool, str(tmp_path / "r.yaml")), "--debug", str(a_file)])
    assert rc == 2 and f"--debug: {a_file} is a file, not a folder" in capsys.readouterr().err
    rc = cli_main(["calibrate", tool, *_calibrate_args(tool, str(tmp_path / "r.yaml")), "--report",
                   str(tmp_path / "r.txt")])
    assert rc == 2 and "--report: expected an image file name ending in .png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_calibrate_lens_output_that_fails_while_writing_is_one_line(tmp_path):
    """A folder the check lets through but the kernel refuses (/proc, even for root): the write itself fails,
    after the solve; still one line and exit 2, in a real process."""
    proc = subprocess.run([EXE, "calibrate", "lens", *_calibrate_args("lens", "/proc/stagectl-lens.yaml"), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("stagectl calibrate: error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_the_calibration_scripts_refuse_an_unwritable_out_too(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    proc = subprocess.run([sys.executable, str(REPO / "calibration" / "lens.py"),
                           *_calibrate_args("lens", str(a_file / "lens.yaml"))],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"calibration/lens.py: error: --out: cannot create {a_file / 'lens.yaml'}: "
                                   f"{a_file} is a file, not a folder")


def test_no_stray_files_from_a_refused_run(tmp_path):
    """The refusal comes first: not even the --out folder is created."""
    target = tmp_path / "new" / "lens.yaml"
    rc = cli_main(["calibrate", "lens", "--images", str(SAMPLES), "--inner", "9x6", "--square", "0.025",
                   "--report", str(tmp_path / "r.txt"), "--out", str(target)])
    assert rc == 2 and not (tmp_path / "new").exists()
