"""`stagectl listen` and `stagectl simulate` as a calibration tech runs them: two real processes, real UDP.

`listen` binds port 0 on 127.0.0.1 and announces the port on stderr; the test reads it and points `simulate`
at it. Every process is bounded by a timeout and killed if it outlives the test.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import made_and_closed

from stagectl.tracking.codecs.freed import FreeDPacket, encode_freed
from stagectl.tracking.moves import pose_at

EXE = str(Path(sys.executable).parent / "stagectl")
LISTENING = re.compile(r"listening for \w+ on 127\.0\.0\.1:(\d+)")


class Proc:
    """A subprocess whose stdout and stderr lines are collected by reader threads (no pipe can fill up)."""

    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._err_q: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.out, None), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self.err, self._err_q), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, lines: list[str], q: queue.SimpleQueue | None) -> None:
        for line in stream:
            lines.append(line)
            if q is not None:
                q.put(line)

    def wait_stderr(self, pattern: re.Pattern[str], timeout_s: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._err_q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            m = pattern.search(line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern.pattern!r} on stderr: {''.join(self.err)}")

    def finish(self, timeout_s: float = 20.0) -> int:
        try:
            rc = self.p.wait(timeout=timeout_s)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait(5)
        for t in self._threads:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


@pytest.fixture
def procs():
    """Factory of :class:`Proc`; each killed at teardown."""
    yield from made_and_closed(Proc, Proc.kill)


@pytest.mark.parametrize(
    ("protocol", "extra_listen", "extra_sim"),
    [
        ("freed", ["--camera-id", "1"], ["--camera-id", "1"]),
        ("opentrackio", ["--camera-id", "3"], ["--camera-id", "3", "--encoding", "cbor"]),
        ("osc", ["--camera", "cam-a"], ["--camera", "cam-a"]),
    ],
)
def test_listen_count_json_receives_what_simulate_sends(procs, protocol, extra_listen, extra_sim) -> None:
    n, rate, move = 20, 100, "handheld"
    listen = procs(
        "listen",
        "--protocol",
        protocol,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--count",
        str(n),
        "--json",
        "--duration",
        "20",
        *extra_listen,
    )
    port = int(listen.wait_stderr(LISTENING).group(1))
    if protocol == "freed":  # a bad packet first: reported on stderr, not fatal
        bad = bytearray(encode_freed(FreeDPacket(1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0)))
        bad[28] ^= 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(bytes(bad), ("127.0.0.1", port))
    sim = procs(
        "simulate",
        "--protocol",
        protocol,
        "--to",
        f"127.0.0.1:{port}",
        "--move",
        move,
        "--rate",
        str(rate),
        "--count",
        str(n + 10),
        *extra_sim,
    )
    assert sim.finish() == 0, "".join(sim.err)
    assert listen.finish() == 0, "".join(listen.err)
    sim_out = "".join(sim.out)
    assert sim_out.startswith("stagectl simulate: sending") and f"sent {n + 10} samples" in sim_out

    lines = [json.loads(line) for line in listen.out]
    assert len(lines) == n
    arrivals = [d["arrival_ns"] for d in lines]
    assert all(isinstance(a, int) for a in arrivals) and arrivals == sorted(arrivals)
    for i, d in enumerate(lines):
        assert d["clock"] == "monotonic" and d["index"] == i and d["source"].startswith("127.0.0.1:")
        assert d["protocol"] == {"freed": "FreeD", "opentrackio": "OpenTrackIO", "osc": "OSC"}[protocol]
        truth = pose_at(move, i / rate)
        pose = d["pose"]
        assert set(pose) == {"x_m", "y_m", "z_m", "pan_deg", "tilt_deg", "roll_deg"}
        for key, want in (("x_m", truth.x), ("y_m", truth.y), ("z_m", truth.z)):
            assert abs(pose[key] - want) <= 1e-4, (i, key, pose[key], want)
        for key, want in (("pan_deg", truth.pan), ("tilt_deg", truth.tilt), ("roll_deg", truth.roll)):
            assert abs(pose[key] - want) <= 1e-3, (i, key, pose[key], want)
        enc = d["lens"]["encoders"]
        assert abs(enc["zoom"] - truth.zoom) <= 1e-4 and abs(enc["focus"] - truth.focus) <= 1e-4
        if protocol == "freed":
            assert d["camera_id"] == 1 and d["pose_frame"] == "body" and "raw_encoders" in d["lens"]
        elif protocol == "opentrackio":
            assert d["source_number"] == 3 and d["pose_frame"] == "camera"
            assert d["timing"]["sequence_number"] == i and d["timing"]["sample_rate"] == [rate, 1]
            assert isinstance(d["timing"]["sample_timestamp_ns"], int) and "timecode" in d["timing"]
        else:
            assert d["raw"]["camera"] == "cam-a" and d["timing"]["sequence_number"] == i
    err = "".join(listen.err)
    assert "count reached after 20 samples" in err and "statistics for" in err and "Traceback" not in err
    if protocol == "freed":
        assert "bad packet (checksum" in err and "bad 1 (checksum 1" in err


def test_simulate_with_a_bad_destination_exits_2_without_traceback() -> None:
    for to, expected in (
        ("nonsense", "expected HOST:PORT"),
        ("127.0.0.1:0", "port 1..65535"),
        ("127.0.0.1:99999", "port 1..65535"),
        ("127.0.0.1:x", "expected HOST:PORT"),
    ):
        proc = subprocess.run(
            [EXE, "simulate", "--protocol", "freed", "--to", to, "--count", "1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 2, (to, proc.stderr)
        assert "stagectl simulate: error: --to" in proc.stderr and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    proc = subprocess.run(
        [EXE, "simulate", "--protocol", "osc", "--to", "127.0.0.1:9", "--rate", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and "--rate" in proc.stderr and "Traceback" not in proc.stderr


def test_listen_stops_on_sigterm_and_reports_statistics(procs) -> None:
    listen = procs("listen", "--protocol", "opentrackio", "--bind", "127.0.0.1", "--port", "0")
    listen.wait_stderr(LISTENING)
    listen.p.send_signal(signal.SIGTERM)
    assert listen.finish(timeout_s=10) == 0  # listen has no end of its own: it stopped on the signal
    err = "".join(listen.err)
    assert "stopped by signal after 0 samples" in err and "state waiting: no sample received" in err


def test_listen_refuses_bad_arguments_and_a_taken_port() -> None:
    proc = subprocess.run(
        [EXE, "listen", "--protocol", "freed", "--count", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and "--count" in proc.stderr and "Traceback" not in proc.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        proc = subprocess.run(
            [
                EXE,
                "listen",
                "--protocol",
                "freed",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--count",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 1 and "cannot listen" in proc.stderr and "Traceback" not in proc.stderr
