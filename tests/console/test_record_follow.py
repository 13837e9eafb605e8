"""record.follow: following an OpenTrackIO tracker's recording flag and slate is turned on, off and on again
while the stage runs. The project's OpenTrackIO encoder sends samples with ``tracker.recording`` and
``tracker.slate`` over loopback UDP to the receivers of a StageRuntime (as `stagectl run` opens them); the
operator's commands go through a ControlHub with run's effects, applied at the frame boundaries of a small frame
loop (latch, record) like run_frames'."""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import STAGES

from stagectl.console.hub import ControlHub
from stagectl.console.live import RunHandles, register_effects
from stagectl.core.sample import Pose, TrackerStatus, TrackingSample
from stagectl.runtime import StageRuntime
from stagectl.stage import load_stage
from stagectl.tracking.codecs.opentrackio import encode_sample
from stagectl.tracking.recording import load_take

pytestmark = pytest.mark.timeout(60)


def _stage(tmp_path: Path) -> Path:
    """demo.yaml with its tracker turned into an OpenTrackIO source on a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = (STAGES / "demo.yaml").read_text()
    freed = text[text.index("  - name: tracker-a\n"): text.index("\ncameras:")]
    text = text.replace(freed, f"  - name: tracker-a\n    protocol: opentrackio\n    bind: 127.0.0.1\n    port: {port}\n")
    text = text.replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/")
    p = tmp_path / "otio.yaml"
    p.write_text(text)
    return p


class _Tracker:
    """Sends an OpenTrackIO sample every 5 ms with the recording flag and slate of the moment (the camera moves
    slowly: the old saw-tooth jumped 0.9 m in 5 ms, which the motion limits rightly refused, so the camera was
    tracked only between re-acquisitions and the first wait could run out on a busy machine)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.recording = False
        self.slate = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            seq = 0
            while not self._stop.wait(0.005):
                # a plausible, smooth move (0.2 m/s at most): the stage's motion limits must not reject it
                s = TrackingSample(protocol="OpenTrackIO", pose=Pose(0.1 * math.sin(0.01 * seq), -2.0, 1.6),
                                   tracker=TrackerStatus(recording=self.recording, slate=self.slate))
                for d in encode_sample(s, sequence=seq % 256):
                    tx.sendto(d, ("127.0.0.1", self.port))
                seq += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class _Loop:
    """Frame boundaries every 10 ms: the hub's queued commands, then every camera latched and recorded."""

    def __init__(self, hub: ControlHub, runtime: StageRuntime) -> None:
        self.hub, self.runtime = hub, runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(0.01):
            now = time.monotonic_ns()
            self.runtime.latching = (k, now)
            self.hub.apply_pending(k)
            states = self.runtime.camera_states(now)
            self.runtime.record(k, now, states, time.monotonic_ns())
            k += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def _until(cond, what: str, timeout_s: float = 5.0, why=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} {why()}"
        time.sleep(0.01)


def test_following_a_tracker_is_turned_on_and_off_while_running(tmp_path: Path) -> None:
    stage = load_stage(_stage(tmp_path))
    runtime = StageRuntime.tracked(stage)
    receivers = runtime.open_receivers()
    receivers.start()
    hub = ControlHub(stage, persist=False)
    handles = RunHandles(runtime)
    said: list[str] = []
    register_effects(hub, handles, said.append)
    tracker = _Tracker(receivers["tracker-a"].port)
    loop = _Loop(hub, runtime)
    try:
        # a precondition, not what is tested: generous for a busy machine, and it says what the timeline had
        rig = next(iter(runtime.rigs.values()))
        _until(lambda: runtime.camera_states(time.monotonic_ns()), "the camera tracked", 15.0,
               lambda: f"(receiver {receivers['tracker-a'].stats(time.monotonic_ns())}; timeline {rig.state})")
        # not followed yet: the tracker's flag starts nothing
        tracker.recording, tracker.slate = True, "A101_A_4"
        time.sleep(0.2)
        assert handles.take is None and runtime.follow is None

        ack = hub.submit("record.follow", {"source": "tracker-a"}, who="op")
        assert ack["ok"] and ack["result"] == {"follow": "tracker-a"}, ack
        assert runtime.follow == "tracker-a"
        # already recording when followed: a take starts, slated from tracker.slate, asked as the tracker
        _until(lambda: hub.log[-1]["command"] == "record.start", "a take started by the tracker's recording flag")
        first = handles.take
        assert first.meta["slate"] == {"scene": "A101", "camera": "A", "take": 4}
        assert hub.log[-1]["who"] == "tracker:tracker-a"
        time.sleep(0.2)
        tracker.recording = False
        _until(lambda: hub.log[-1]["command"] == "record.stop", "the take stopped by the tracker's recording flag")
        assert handles.take is None and hub.log[-1]["who"] == "tracker:tracker-a"

        ack = hub.submit("record.follow", {"source": "off"}, who="op")
        assert ack["ok"] and ack["result"] == {"follow": None}, ack
        assert runtime.follow is None
        tracker.recording, tracker.slate = True, "A101_A_5"
        time.sleep(0.3)
        assert handles.take is None  # no longer followed: nothing starts

        ack = hub.submit("record.follow", {"source": "tracker-a"}, who="op")
        assert ack["ok"], ack
        _until(lambda: handles.take is not None, "a take started once followed again")
        second = handles.take
        assert second.meta["slate"] == {"scene": "A101", "camera": "A", "take": 5}
        ack = hub.submit("record.follow", {"source": None}, who="op")  # null stops following too
        assert ack["ok"] and runtime.follow is None
        tracker.recording = False
        time.sleep(0.3)
        assert handles.take is second  # a take being recorded goes on when following stops
        assert hub.submit("record.stop", {}, who="op")["ok"]

        bad = hub.submit("record.follow", {"source": "nope"}, who="op")
        assert not bad["ok"] and bad["error"] == (
            'record.follow: source: expected an OpenTrackIO tracking source of the stage (tracker-a) or "off", '
            "got 'nope'")
    finally:
        loop.close()
        tracker.close()
        handles.close_takes()
        receivers.close()
        hub.close()
    take = load_take(first.path)
    assert take.end is not None and take.end["how"] == "stop" and len(take.frames) >= 10
    assert take.records and all(r.protocol == "opentrackio" for r in take.records)
    assert load_take(second.path).header.meta["slate"]["take"] == 5
    assert any("takes follow the recording flag and slate of tracker-a" in s for s in said)
    assert any("takes no longer follow a tracker" in s for s in said)
