"""A slated take's re-solve replays exactly what `stagectl run` rendered (issue 14, "Takes for post").

A `stagectl run` process (--no-render) on a copy of stages/demo.yaml: tracking delay 0 (every frame is drawn
from the camera *predicted* at its edge from the last two FreeD samples), the built-in simulator flying the
orbit (about 1 m/s), the zoom lens file. A slated take is started over OSC, the operator changes the camera's
tracking delay and smoothing over OSC while it records, and the take is stopped. The cameras the take
recorded (kind 3, what the wall showed) are compared with `solve_take(match="rendered")`, which replays the
take's datagrams (the pre-roll first) through a fresh timeline, each frame seeing only the samples its
timeline held when it was latched (kind 5) with that frame's settings: every frame within 0.1 mm, 0.01 degree
and 0.01 mm of focal length. Before the latch and pre-roll records, the re-solve interpolated with samples
that came after the latch and differed by up to about 13 mm; its first frames had no samples at all.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import stage_on_free_port

from stagectl.post import solve_take
from stagectl.tracking.recording import load_take

from .post_take import rotation_angle_deg
from .stage_run import OscClient, StageRun, console_yaml, stage_ports

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def _stage(tmp_path: Path) -> tuple[Path, int]:
    """demo.yaml (its own tracking: delay 0, the orbit) on a free tracking port, with an OSC console."""
    ports = stage_ports()
    p = stage_on_free_port(tmp_path, "demo.yaml")
    text = p.read_text()
    assert "delay_frames: 0.0" in text and "simulate: orbit" in text
    p.write_text(text.replace("name: Demo volume", f"name: Replay {uuid.uuid4().hex[:8]}") + console_yaml(ports))
    return p, ports["osc"]


def _frames_until(osc: OscClient, n: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (osc.status().get("recording") or {}).get("frames", 0) < n:
        assert time.monotonic() < deadline, f"fewer than {n} frames recorded in {timeout_s} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("replay")
    stage, port = _stage(tmp_path)
    osc = OscClient(port)
    run = StageRun(stage, "--no-render", duration_s=90)
    try:
        run.wait_for(r"^\[")  # frames are running
        time.sleep(0.5)
        command, ok, _, started = osc.keyed("/stagectl/record/start", {"scene": "7", "roll": "R1"})
        assert (command, ok) == ("record.start", 1), started
        _frames_until(osc, 30)
        # the operator changes the timeline while the take records: a delay of 1.5 frames, then smoothing
        command, ok, _, msg = osc.keyed("/stagectl/camera/set", {"camera": "cam-a", "delay_frames": 1.5})
        assert ok == 1, msg
        _frames_until(osc, 55)
        command, ok, _, msg = osc.keyed("/stagectl/camera/set", {
            "camera": "cam-a", "smoothing": {"min_cutoff_hz": 3.0, "beta": 0.5}})
        assert ok == 1, msg
        _frames_until(osc, 80)
        command, ok, _, msg = osc.keyed("/stagectl/camera/set", {"camera": "cam-a", "delay_frames": 0,
                                                                  "smoothing": "off"})
        assert ok == 1, msg
        _frames_until(osc, 100)
        command, ok, _, stopped = osc.send("/stagectl/record/stop")
        assert ok == 1, stopped
    finally:
        osc.close()
        run.stop()
    return {"stage": stage, "path": stopped["path"], "stop": stopped}


def test_the_take_holds_the_latch_of_every_frame_and_its_preroll(take) -> None:
    t = load_take(take["path"])
    assert len(t.frames) == take["stop"]["frames"] >= 100
    latches = [f.latch for f in t.frames]
    assert all(la is not None and la.frame == f.frame for la, f in zip(latches, t.frames, strict=True))
    # latched before the frame edge it was evaluated for, and every newest sample no newer than the latch
    # (FreeD has no time of its own: the dejittered clock is the arrival clock)
    assert all(la.latched_ns <= f.query_ns + 2 * 41_708_333 for la, f in zip(latches, t.frames, strict=True))
    assert all(la.newest_ns is not None and la.newest_ns <= la.latched_ns for la in latches)
    assert {la.delay_ns for la in latches} == {0, 62_562_500}  # 1.5 frames at 23.976 fps
    assert {la.smoothing is None for la in latches} == {True, False}
    assert {(la.mode, la.clock) for la in latches} == {("interpolate", "dejittered")}
    # the pre-roll: the datagrams of the seconds before the take, older than its first datagram
    assert len(t.preroll) >= 10 and t.preroll[-1].arrival_ns <= t.records[0].arrival_ns
    assert t.preroll[0].source == "tracker-a" and t.preroll[0].protocol == "freed"
    assert t.preroll[-1].arrival_ns <= latches[0].latched_ns


def test_rendered_re_solve_matches_every_recorded_frame(take) -> None:
    recorded = solve_take(take["stage"], take["path"])
    resolved = solve_take(take["stage"], take["path"], match="rendered")
    assert (recorded.match, resolved.match) == ("recorded", "rendered")
    assert len(recorded) == len(resolved) == take["stop"]["frames"]
    worst = [0.0, 0.0, 0.0]
    for f, g in zip(recorded.frames, resolved.frames, strict=True):
        assert f.timecode == g.timecode
        worst[0] = max(worst[0], float(np.linalg.norm(f.T_stage_camera[:3, 3] - g.T_stage_camera[:3, 3])))
        worst[1] = max(worst[1], rotation_angle_deg(f.T_stage_camera[:3, :3], g.T_stage_camera[:3, :3]))
        worst[2] = max(worst[2], abs(f.focal_length_mm - g.focal_length_mm))
    assert worst[0] < 1e-4 and worst[1] < 0.01 and worst[2] < 0.01, worst  # 0.1 mm, 0.01 deg, 0.01 mm
    # the camera moved and was predicted: an agreement that a parked camera, or interpolation, would not give
    pos = recorded.positions()
    assert np.linalg.norm(pos[-1] - pos[0]) > 0.5
    assert {"extrapolated"} <= {g.status for g in resolved.frames}
