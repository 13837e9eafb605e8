"""The running stage's owner (stagectl.runtime): a camera rig's state at a frame edge against an independent
numpy composition of the pose, tracker offset, registration and lens table; the operator's settings; source
switching through the router; and StageRuntime.reload, which swaps the stage and the planner the loop reads
together, so the status pairs the plan's covered cabinets with the walls of the stage it was planned on.
Real stages, real timelines and real (unstarted) receivers; no renderer (``--no-render``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import STAGES
from helpers import rot_ptr

from stagectl.runtime.rig import CameraSettings
from stagectl.core.sample import Pose, TrackingSample
from stagectl.runtime import CameraRig, ReloadRefused, StageRuntime
from stagectl.runtime.status import camera_line
from stagectl.stage import load_stage

T0 = 1_000_000_000  # ns on the timelines' clock
PERIOD = 40_000_000  # 25 fps


def pose_T(x, y, z, pan, tilt, roll) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rot_ptr(pan, tilt, roll)
    T[:3, 3] = (x, y, z)
    return T


def feed(rig: CameraRig, pose, n: int = 3, **lens) -> int:
    """``n`` samples of the same body pose (FreeD's) one frame apart; the instant of the last."""
    for k in range(n):
        rig.timeline.push_values(T0 + k * PERIOD, *pose, **lens)
    rig.timeline.pose_frame = "body"
    return T0 + (n - 1) * PERIOD


def flat_text(wall: str = "wall", extra_source: bool = False) -> str:
    text = (STAGES / "flat_wall.yaml").read_text()
    if wall != "wall":
        text = text.replace("  - name: wall\n", f"  - name: {wall}\n").replace("{wall: wall,", f"{{wall: {wall},")
    if extra_source:
        text = text.replace("\ncameras:", "\n  - name: tracker2\n    protocol: freed\n    bind: 127.0.0.1\n"
                                          "    port: 40002\n    camera_id: 2\n\ncameras:", 1)
    return text


def stage_file(tmp_path: Path, text: str, name: str = "stage.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return load_stage(p)


# ---- CameraRig ---------------------------------------------------------------------------------------------
def test_a_rig_maps_the_pose_through_offset_and_registration_and_reads_the_lens_table() -> None:
    stage = load_stage(STAGES / "demo.yaml")
    cam = stage.cameras[0]
    rig = CameraRig.for_camera(stage, cam)
    pose = (0.4, 0.9, 1.55, 12.0, -4.0, 3.0)
    t = feed(rig, pose, zoom=0.37, focus=0.2)
    cs = rig.state_at(t)
    assert cs is not None and cs.name == cam.name
    want = stage.T_stage_tracking @ pose_T(*pose) @ pose_T(*cam.tracker_offset_translation,
                                                           *cam.tracker_offset_rotation)
    np.testing.assert_allclose(cs.T_stage_camera, want, atol=1e-9)
    table = cam.lens_file.table(cam.sensor_mm)
    v = table.values(0.37, 0.2)
    assert cs.lens.source == "lens file"
    assert cs.lens.focal_mm == pytest.approx(v[0]) and cs.lens.principal_point_mm == pytest.approx((v[1], v[2]))
    assert cs.lens.pupil_offset_m == pytest.approx(v[8])
    assert rig.focal_mm == pytest.approx(v[0])
    # the stage's overscan, widened by the lens's distortion overscan at these encoders
    d = table.overscan(0.37, 0.2).percent()
    assert cs.overscan_pct == pytest.approx(np.add(stage.render.inner.overscan_percent, d))
    assert rig.distortion == pytest.approx(d) and rig.overscan is None and cs.soft_edge is None
    assert cs.sensor_mm == pytest.approx(cam.sensor_mm)


def test_a_rig_without_lens_file_uses_the_default_focal_length_and_counts_frames_without_pose() -> None:
    stage = load_stage(STAGES / "flat_wall.yaml")
    rig = CameraRig.for_camera(stage, stage.cameras[0])
    assert rig.state_at(T0) is None and rig.frames_without_pose == 1  # nothing received yet
    cs = rig.state_at(feed(rig, (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)))
    assert cs.lens.focal_mm == 35.0 and cs.lens.source == "default" and rig.frames_without_pose == 1
    assert cs.overscan_pct == tuple(stage.render.inner.overscan_percent)  # no lens file: no distortion margin


def test_apply_takes_the_named_settings_and_floors_the_adaptive_overscan(tmp_path: Path) -> None:
    text = flat_text() + ("\nrender:\n  inner:\n    adaptive_overscan: {max_percent: 40, latency_ms: 60, "
                          "decay_percent_per_s: 10, wall_distance_m: 4}\n")
    stage = stage_file(tmp_path, text)
    rig = CameraRig.for_camera(stage, stage.cameras[0])
    rig.set_adaptive(stage.render.inner.adaptive)
    settings = CameraSettings("tracker", delay_frames=2.0, overscan_percent=(20.0, 20.0, 15.0, 15.0),
                              soft_edge=0.2)
    delay = rig.timeline.delay_ns
    rig.apply(settings, only={"camera", "overscan_percent", "soft_edge"})
    assert rig.timeline.delay_ns == delay  # not named: unchanged
    assert rig.base_overscan == (20.0, 20.0, 15.0, 15.0) and rig.adaptive.base_pct == (20.0, 20.0, 15.0, 15.0)
    assert rig.soft_edge == 0.2
    rig.apply(settings)  # all of them (the operator state restored at start)
    assert rig.timeline.delay_ns == stage.frame_rate.frames_to_ns(2.0) != delay
    t = feed(rig, (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)) + 2 * PERIOD
    rig.state_at(t)  # the adaptive overscan's first frame: no speed yet
    cs = rig.state_at(t + PERIOD)
    assert cs.soft_edge == 0.2 and rig.overscan is not None and cs.overscan_pct == rig.overscan
    assert all(o >= b for o, b in zip(cs.overscan_pct, (20.0, 20.0, 15.0, 15.0)))  # the operator's floor


# ---- StageRuntime ------------------------------------------------------------------------------------------
def _sample(x: float) -> TrackingSample:
    return TrackingSample("FreeD", pose=Pose(x, 0.0, 1.5, 0.0, 0.0, 0.0), pose_frame="body")


def test_set_camera_switches_the_source_and_routes_its_samples_to_the_camera(tmp_path: Path) -> None:
    stage = stage_file(tmp_path, flat_text(extra_source=True))
    rt = StageRuntime.tracked(stage)
    rig = rt.rigs["cam"]
    old, new = rt.router.sink("tracker"), rt.router.sink("tracker2")
    new(T0, _sample(1.0))  # tracker2 feeds nobody yet
    old(T0 + PERIOD, _sample(0.1))
    rig.state_at(T0 + PERIOD)
    assert rig.state.position[0] == pytest.approx(0.1)
    rt.set_camera("cam", CameraSettings("tracker2"), only={"camera", "tracking"})
    assert rig.source.name == "tracker2" and rt.router.source_of("cam") == "tracker2"
    old(T0 + 2 * PERIOD, _sample(0.2))  # the old source no longer reaches the camera
    new(T0 + 3 * PERIOD, _sample(1.3))
    new(T0 + 4 * PERIOD, _sample(1.4))
    rig.state_at(T0 + 4 * PERIOD)
    assert rig.state.position[0] == pytest.approx(1.4)
    with pytest.raises(KeyError):
        rt.set_camera("nope", CameraSettings("tracker"))


def test_reload_swaps_the_walls_and_the_plan_together(tmp_path: Path) -> None:
    """The status line names the covered cabinets after the walls of the stage that was planned: before the
    reload the old wall, after it (from the next frame on) the new one -- never the old walls with the new
    plan."""
    stage = stage_file(tmp_path, flat_text())
    rt = StageRuntime.tracked(stage)
    rt.open_receivers()  # not started: their statistics only
    rig = rt.rigs["cam"]
    t = feed(rig, (0.0, 0.0, 1.5, 0.0, 0.0, 0.0))
    drawn = rt.draw(rt.camera_states(t), 1)
    assert drawn.ok and drawn.plan is not None and not drawn.rendered  # no output: planned only
    line = camera_line(rt, "cam", T0)
    assert " inner frustum covers wall " in line and "backdrop" not in line, line
    n = int(line.split(" inner frustum covers wall ")[1].split()[0])
    assert n > 0

    moved = stage_file(tmp_path, flat_text("backdrop").replace("center: [0.0, 4.0, 1.5]",
                                                              "center: [0.0, 6.0, 1.5]"), "stage.yaml")
    old_planner = rt.planner
    rt.reload(moved, "procedural")
    assert rt.stage is moved and rt.planner is not old_planner and rt.planner.stage is moved
    assert rig.camera is moved.cameras[0]
    # until the next frame is planned the status still describes the last plan, on its own stage
    assert " inner frustum covers wall " in camera_line(rt, "cam", T0)
    assert rt.draw(rt.camera_states(t), 2).ok
    line = camera_line(rt, "cam", T0)
    assert " inner frustum covers backdrop " in line and " wall " not in line, line
    assert rt.last.stage is moved and rt.last.frame == 2
    # the wall is 2 m further away: the same frustum covers more of its cabinets
    assert int(line.split(" inner frustum covers backdrop ")[1].split()[0]) > n


def test_reload_refuses_what_a_running_stage_cannot_take_and_changes_nothing(tmp_path: Path) -> None:
    stage = stage_file(tmp_path, flat_text())
    rt = StageRuntime.tracked(stage)
    planner = rt.planner
    faster = stage_file(tmp_path, flat_text().replace("frame_rate: 25", "frame_rate: 30"), "b.yaml")
    with pytest.raises(ReloadRefused, match=r"^the frame rate changed: restart stagectl run to apply it "
                                            r"\(nothing was changed\)$"):
        rt.reload(faster, "procedural")
    other = stage_file(tmp_path, flat_text(extra_source=True).replace("tracking: tracker\n", "tracking: tracker2\n"),
                       "c.yaml")
    with pytest.raises(ReloadRefused, match="the tracking sources changed"):
        rt.reload(other, "procedural")
    assert rt.stage is stage and rt.planner is planner and rt.rigs["cam"].camera is stage.cameras[0]


def test_draw_says_why_a_frame_cannot_be_planned_and_keeps_the_last_plan() -> None:
    import dataclasses

    stage = load_stage(STAGES / "flat_wall.yaml")
    rt = StageRuntime.tracked(stage)
    good = rt.camera_states(feed(rt.rigs["cam"], (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)))
    assert rt.draw(good, 1).ok
    last = rt.last
    bad = [dataclasses.replace(good[0], T_stage_camera=np.full((4, 4), np.nan))]
    drawn = rt.draw(bad, 2)
    assert drawn.plan is None and not drawn.ok and drawn.why.startswith("no plan: ")
    assert rt.last is last
