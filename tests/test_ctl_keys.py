"""``stagectl keys`` and ``stagectl ctl`` as subprocesses (the installed console script) against a real hub
and ZeroMQ console transport started in the test on loopback ports, with a frame-driver thread like
``stagectl run``.
"""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq.auth
from helpers import EXE, STAGES, free_port

from stagectl.console.hub import ControlHub
from stagectl.console.zmq import ZmqConsole
from stagectl.stage import load_stage

pytestmark = [pytest.mark.net, pytest.mark.timeout(60)]


def _stage(tmp_path: Path, port: int | None = None, state_port: int | None = None) -> Path:
    """flat_wall.yaml with a console section on free ports and keys in ``tmp_path/keys``."""
    port = port or free_port()
    state_port = state_port or free_port()
    while state_port == port:
        state_port = free_port()
    text = (STAGES / "flat_wall.yaml").read_text()
    text += (
        f"\nconsole:\n  zmq: {{bind: 127.0.0.1, port: {port}, state_port: {state_port}, keys: keys}}\n"
        "  state_file: flat.operator.json\n"
    )
    path = tmp_path / "flat.yaml"
    path.write_text(text)
    return path


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, check=False)


# -------------------------------------------------------------------------------------------------- keys


def test_keys_makes_the_server_and_client_pairs_and_never_overwrites(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    proc = _run("keys", str(stage))
    assert proc.returncode == 0, proc.stderr
    keys = tmp_path / "keys"
    expected = [
        keys / "server.key",
        keys / "server.key_secret",
        keys / "clients" / "ctl.key",
        keys / "ctl.key_secret",
    ]
    for f in expected:
        assert f.is_file(), f
        assert str(f) in proc.stdout and "made" in proc.stdout
    for f in (keys / "server.key_secret", keys / "ctl.key_secret"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    # public halves are the secret files' public keys; each key is a valid 32-byte CURVE key
    for pub, sec in (
        (keys / "server.key", keys / "server.key_secret"),
        (keys / "clients/ctl.key", keys / "ctl.key_secret"),
    ):
        public, secret = zmq.auth.load_certificate(sec)
        assert zmq.auth.load_certificate(pub) == (public, None)
        assert secret is not None and zmq.curve_public(secret) == public
    before = {f: f.read_bytes() for f in expected}

    proc = _run("keys", str(stage), "--client", "desk")
    assert proc.returncode == 0, proc.stderr
    assert {f: f.read_bytes() for f in expected} == before  # kept
    assert "kept" in proc.stdout and "--force" in proc.stdout
    assert (keys / "clients" / "desk.key").is_file() and (keys / "desk.key_secret").is_file()

    proc = _run("keys", str(stage), "--client", "ctl", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "replaced" in proc.stdout
    assert (keys / "server.key").read_bytes() != before[keys / "server.key"]
    assert (keys / "ctl.key_secret").read_bytes() != before[keys / "ctl.key_secret"]
    assert not any(p.name.startswith(".new-") for p in keys.iterdir())  # scratch directory removed


def test_keys_rejects_a_bad_client_name_in_one_line(tmp_path: Path) -> None:
    proc = _run("keys", str(_stage(tmp_path)), "--client", "../evil")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "client name '../evil'" in proc.stderr
    assert not (tmp_path / "evil.key_secret").exists()


# --------------------------------------------------------------------------------------------------- ctl


class Stage:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stage = load_stage(path)
        self.hub = ControlHub(self.stage)
        self.console = ZmqConsole(self.hub, self.stage.console.zmq, path.parent).start()
        self.frame = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._frames, daemon=True)
        self._thread.start()

    def _frames(self) -> None:
        while not self._stop.is_set():
            self.frame += 1
            self.hub.apply_pending(self.frame)
            if self.frame % 5 == 0:
                self.hub.publish_status({"frame": self.frame, "fps": 100.0, "cameras": {}})
            self._stop.wait(0.01)

    def close(self) -> None:
        t0 = time.monotonic()
        self.console.close()
        assert time.monotonic() - t0 < 1.0  # well under hub.submit's 2 s wait
        self._stop.set()
        self._thread.join(1.0)
        self.hub.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Stage]:
    path = _stage(tmp_path)
    assert _run("keys", str(path)).returncode == 0
    s = Stage(path)
    yield s
    s.close()


def test_ctl_card_add_is_applied_and_printed_in_one_line(running: Stage) -> None:
    proc = _run("ctl", str(running.path), "card.add", "wall=wall", "rect=[0.1,0.1,0.3,0.4]", "intensity=2")
    assert proc.returncode == 0, proc.stderr
    m = re.fullmatch(r"ok: card\.add applied at frame (\d+) \(seq 1\): id card-1\n", proc.stdout)
    assert m, proc.stdout
    assert 0 < int(m.group(1)) <= running.frame
    cards = running.hub.features.light_cards
    assert [(c.id, c.rect, c.intensity) for c in cards] == [("card-1", (0.1, 0.1, 0.3, 0.4), 2.0)]
    assert running.hub.log[-1]["who"] == "zmq:ctl"
    # persisted next to the stage (console.state_file)
    assert "card-1" in (running.path.parent / "flat.operator.json").read_text()

    proc = _run("ctl", str(running.path), "output.blackout", "output=all", "on=true", "--json")
    assert proc.returncode == 0, proc.stderr
    ack = json.loads(proc.stdout)
    assert ack["ok"] is True and ack["command"] == "output.blackout" and ack["seq"] == 2
    assert running.hub.flags.blackout is True


def test_ctl_refused_command_exits_1_and_changes_nothing(running: Stage) -> None:
    proc = _run("ctl", str(running.path), "card.set", "id=nope", "intensity=3")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("refused: card.set: id:") and proc.stderr.count("\n") == 1
    assert running.hub.seq == 0
    proc = _run("ctl", str(running.path), "card.add", "oops")  # not key=value: usage error, nothing sent
    assert proc.returncode == 2 and "expected key=value" in proc.stderr
    assert running.console.stats()["requests"] == 1


def test_ctl_help_and_status(running: Stage) -> None:
    proc = _run("ctl", str(running.path), "help")
    assert proc.returncode == 0, proc.stderr
    for name in ("card.add", "output.blackout", "color.set", "record.start"):
        assert re.search(rf"^{re.escape(name)}\s", proc.stdout, re.MULTILINE), name
    assert re.search(r"^\s+rect: ", proc.stdout, re.MULTILINE)
    proc = _run("ctl", str(running.path), "help", "card.move")
    assert proc.returncode == 0 and proc.stdout.startswith("card.move ") and "card.add" not in proc.stdout
    time.sleep(0.1)  # a status has been published (every 5 frames of 10 ms)
    proc = _run("ctl", str(running.path), "status")
    assert (
        proc.returncode == 0 and proc.stdout.startswith("ok: status at frame ") and "fps 100.0" in proc.stdout
    )


def test_ctl_cannot_reach_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    path = _stage(tmp_path)
    assert _run("keys", str(path)).returncode == 0
    t0 = time.monotonic()
    proc = _run("ctl", str(path), "status", "--timeout", "0.5")
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert re.search(
        r"no reply within 0\.5 s from tcp://127\.0\.0\.1:\d+ — is `stagectl run` running with the "
        r"console, and is the key authorised\?",
        proc.stderr,
    ), proc.stderr


def test_ctl_with_an_unauthorised_key_is_refused_like_an_absent_stage(running: Stage, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, secret = zmq.auth.create_certificates(str(other), "intruder")
    proc = _run(
        "ctl",
        str(running.path),
        "card.add",
        "wall=wall",
        "rect=[0,0,1,1]",
        "--key",
        secret,
        "--timeout",
        "0.5",
    )
    assert proc.returncode == 2 and "is the key authorised?" in proc.stderr
    assert running.hub.seq == 0
    deadline = time.monotonic() + 2.0
    while (
        running.console.stats()["refused_by_reason"].get("unknown_key", 0) < 1 and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert running.console.stats()["refused_by_reason"].get("unknown_key", 0) >= 1
    proc = _run("ctl", str(running.path), "status", "--key", str(other / "missing.key_secret"))
    assert proc.returncode == 2 and "missing.key_secret" in proc.stderr and proc.stderr.count("\n") == 1


def test_ctl_watch_prints_the_snapshot_then_every_change_until_interrupted(running: Stage) -> None:
    assert running.hub.submit("card.add", {"wall": "wall", "rect": [0.2, 0.2, 0.4, 0.4]}, who="test")["ok"]
    proc = subprocess.Popen(
        [EXE, "ctl", str(running.path), "watch", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["type"] == "snapshot" and first["seq"] == 1
        assert first["state"] == running.hub.snapshot()["state"]
        acks = [
            running.hub.submit("card.move", {"id": "card-1", "u": 0.5 + 0.1 * i, "v": 0.5}, who="test")
            for i in range(3)
        ]
        assert all(a["ok"] for a in acks)
        events: list[dict[str, Any]] = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert [e["seq"] for e in events] == [2, 3, 4]
        assert all(
            e["type"] == "state" and e["command"] == "card.move" and e["who"] == "test" for e in events
        )
        assert events[-1]["state"] == running.hub.snapshot()["state"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped by SIGINT at seq 4 after 3 changes" in err


def test_ctl_watch_human_lines(running: Stage) -> None:
    proc = subprocess.Popen(
        [EXE, "ctl", str(running.path), "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert re.match(
            r"watching tcp://127\.0\.0\.1:\d+: snapshot seq 0 at frame \d+", proc.stdout.readline()
        )
        assert running.hub.submit("output.blackout", {"output": "all", "on": True}, who="web:ana")["ok"]
        line = proc.stdout.readline()
        assert re.fullmatch(r"seq 1 frame \d+ web:ana output\.blackout output=all on=true\n", line), line
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
