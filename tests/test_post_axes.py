"""stagectl.post without a network: the axis conventions of the Y-up files, Nuke's ZXY angles, and
solve_take on a take written with known arrival jitter (the arrival-time matching must still land every frame
on its own sample), plus its one-line errors."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from stagectl.core.timebase import FrameRate
from stagectl.post import T_CAMERA_YUPCAM, T_YUP_STAGE, PostError, solve_take
from stagectl.post.track import nuke_zxy_deg
from stagectl.tracking.codecs.freed import encode_freed, sample_to_freed
from stagectl.tracking.recording import Recorder
from stagectl.tracking.simulator import Simulator

sys.path.insert(0, str(Path(__file__).resolve().parent / "net"))
from post_take import rotation_angle_deg, true_camera, write_stage


def test_y_up_world_and_camera_axes() -> None:
    up, forward, right = np.array([0, 0, 1, 0.0]), np.array([0, 1, 0, 0.0]), np.array([1, 0, 0, 0.0])
    # stage up -> +Y; stage forward (toward the main wall) -> -Z; right stays +X; a proper rotation
    assert np.allclose(T_YUP_STAGE @ up, [0, 1, 0, 0]) and np.allclose(T_YUP_STAGE @ forward, [0, 0, -1, 0])
    assert np.allclose(T_YUP_STAGE @ right, [1, 0, 0, 0]) and np.linalg.det(T_YUP_STAGE[:3, :3]) == pytest.approx(1)
    # a Y-up camera's view direction (-Z) and up (+Y) are the stagectl camera's forward (+Y) and up (+Z)
    assert np.allclose(T_CAMERA_YUPCAM @ [0, 0, -1, 0], forward) and np.allclose(T_CAMERA_YUPCAM @ [0, 1, 0, 0], up)
    # so a camera at rest in the stage (looking along +Y) is a Y-up camera at rest (looking down -Z)
    assert np.allclose(T_YUP_STAGE @ T_CAMERA_YUPCAM, np.eye(4))


def _ry_rx_rz(rx: float, ry: float, rz: float) -> np.ndarray:
    a, b, c = (math.radians(v) for v in (rx, ry, rz))
    Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def test_nuke_zxy_angles() -> None:
    # hand-checked: a camera panned 90 degrees left in the stage looks along stage -X, which is Y-up -X:
    # the Y-up camera turned +90 degrees about +Y (ry = 90)
    R_stage = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # Rz(90)
    R_yup = (T_YUP_STAGE[:3, :3] @ R_stage @ T_CAMERA_YUPCAM[:3, :3])
    assert np.allclose(nuke_zxy_deg(R_yup), (0.0, 90.0, 0.0), atol=1e-9)
    # tilt up 20 degrees: rx = +20 (the view direction -Z turns toward +Y)
    a = math.radians(20)
    R_tilt = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    R_yup = T_YUP_STAGE[:3, :3] @ R_tilt @ T_CAMERA_YUPCAM[:3, :3]
    assert np.allclose(nuke_zxy_deg(R_yup), (20.0, 0.0, 0.0), atol=1e-9)
    rng = np.random.default_rng(5)
    for rx, ry, rz in rng.uniform((-89, -180, -180), (89, 180, 180), (200, 3)):
        got = nuke_zxy_deg(_ry_rx_rz(rx, ry, rz))
        assert np.allclose(got, (rx, ry, rz), atol=1e-9)


def _jittered_take(path: Path, rate: FrameRate, n: int, jitter_frac: float, seed: int = 1) -> Simulator:
    """A FreeD take written directly (no network): sample k arrives at k * period plus up to ``jitter_frac`` of
    a period of uniform jitter, all delayed by a constant 7 ms."""
    sim = Simulator("handheld", "freed", rate, profile="sony")
    rng = np.random.default_rng(seed)
    with Recorder(path, stage="Post test", sources={"tracker-a": "freed"}) as rec:
        for k in range(n):
            t = 10 * 10**9 + rate.frame_edge_ns(k) + 7_000_000
            t += int(rng.uniform(-jitter_frac, jitter_frac) * rate.period_ns)
            rec.append(t, "tracker-a", encode_freed(sample_to_freed(sim.sample(k))))
    return sim


@pytest.mark.parametrize("rate_text", ["25", "24000/1001", "60000/1001"])
def test_arrival_jitter_below_half_a_period_keeps_every_sample_exact(tmp_path: Path, rate_text: str) -> None:
    rate = FrameRate.parse(rate_text)
    stage = write_stage(tmp_path / "stage.yaml", rate_text, "freed")
    take = tmp_path / "jitter.stgtake"
    n = 60
    sim = _jittered_take(take, rate, n, 0.35)
    tr = solve_take(stage, take, start_timecode="01:00:00:00" if rate_text != "60000/1001" else "01:00:00;00")
    assert tr.match == "nearest" and len(tr.frames) == n
    assert str(tr.start_timecode) in ("01:00:00:00", "01:00:00;00")
    assert tr.end_timecode - tr.start_timecode == n - 1
    for k, f in enumerate(tr.frames):
        T, focal, _, _ = true_camera("handheld", sim.t_s(k), "body")
        assert np.linalg.norm(f.T_stage_camera[:3, 3] - T[:3, 3]) < 1e-4
        assert rotation_angle_deg(f.T_stage_camera[:3, :3], T[:3, :3]) < 0.01
        assert abs(f.focal_length_mm - focal) < 0.01
    # the same take interpolated on a grid from the first arrival is off by the jitter: the check can fail
    tr_i = solve_take(stage, take, match="interpolate")
    err = max(np.linalg.norm(f.T_stage_camera[:3, 3] - true_camera("handheld", sim.t_s(k), "body")[0][:3, 3])
              for k, f in enumerate(tr_i.frames[: n - 1]))
    assert err > 1e-4


def test_errors_are_one_line(tmp_path: Path) -> None:
    stage = write_stage(tmp_path / "stage.yaml", "25", "freed")
    bad = tmp_path / "bad.stgtake"
    bad.write_bytes(b"not a take at all, just some bytes")
    with pytest.raises(PostError, match="not a take"):
        solve_take(stage, bad)
    take = tmp_path / "t.stgtake"
    _jittered_take(take, FrameRate(25), 5, 0.0)
    with pytest.raises(PostError, match="no camera 'cam-b'; cameras: cam-a"):
        solve_take(stage, take, camera="cam-b")
    other = write_stage(tmp_path / "otio.yaml", "25", "opentrackio")
    with pytest.raises(PostError, match="no opentrackio source for camera 'cam-a'"):
        solve_take(other, take)
    with pytest.raises(PostError, match="drop-frame timecode exists only"):
        solve_take(stage, take, drop_frame=True)
    with pytest.raises(PostError, match="no sample carries timecode"):
        solve_take(stage, take, match="timecode")
