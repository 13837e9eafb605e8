"""Tracking delay (stagectl.calibration.delay): a synthetic pan with a known delay, rendered as image motion of a
static texture, recovered within 0.1 frame (issue 7; CALIBRATION_AND_TIMING.md section 3.3)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from stagectl.calibration import CalibrationError
from stagectl.calibration import delay as D
from stagectl.core.transforms import rotation_from_ptr_deg

FPS = 25.0
PERIOD = 1.0 / FPS
F_PX = 300.0  # focal length of the synthetic camera, px
W, H = 192, 144


def pan_deg(t):
    """A pan with several frequencies (so the correlation has one clear peak)."""
    return 6.0 * np.sin(2 * np.pi * 0.35 * t) + 2.5 * np.sin(2 * np.pi * 0.83 * t + 1.0) + np.sin(2 * np.pi * 1.7 * t + 0.3)


def synthetic_pan_frames(delay_frames: float, n: int = 200, seed: int = 7, noise: float = 2.0) -> list[np.ndarray]:
    """Frame k shows a static textured panorama as the camera pointed at ``t_k - delay`` (the image lags): a
    camera turning left (pan growing) moves the content right by ``F_PX`` px per radian (small angles)."""
    rng = np.random.default_rng(seed)
    margin = int(F_PX * math.radians(12)) + 10
    pano = cv2.GaussianBlur(rng.random((H, W + 2 * margin)).astype(np.float32), (0, 0), 2.0) * 255
    frames = []
    for k in range(n):
        theta = math.radians(pan_deg(k * PERIOD - delay_frames * PERIOD))
        shift = margin - F_PX * theta
        M = np.float32([[1, 0, -shift], [0, 1, 0]])
        img = cv2.warpAffine(pano, M, (W, H), flags=cv2.INTER_CUBIC) + rng.normal(0.0, noise, (H, W))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def _estimate(frames, t_track, pans, **kw):
    dx, resp = D.image_motion(frames)
    t_frames = np.arange(len(frames)) * PERIOD
    img_t = 0.5 * (t_frames[1:] + t_frames[:-1])
    R = [rotation_from_ptr_deg(p, 0.0, 0.0) for p in pans]
    trk_t, trk_w = D.angular_rate(t_track, R)
    return D.estimate_delay(img_t, dx, trk_t, trk_w, PERIOD, weights=resp, **kw)


@pytest.mark.parametrize("delay", [3.4, 0.0, 7.75])
def test_delay_recovered_within_a_tenth_of_a_frame(delay):
    rng = np.random.default_rng(1)
    frames = synthetic_pan_frames(delay)
    t = np.arange(len(frames)) * PERIOD
    pans = pan_deg(t) + rng.normal(0.0, 0.003, t.size)  # tracker noise
    res = _estimate(frames, t, pans)
    assert abs(res.delay_frames - delay) < 0.1
    assert res.delay_ms == pytest.approx(res.delay_frames * 40.0)
    assert res.peak_correlation > 0.9
    assert not res.sign_flipped and not res.warnings


def test_delay_with_tracking_at_a_different_rate_and_jitter():
    """A 100 Hz tracker with arrival jitter: the rate is interpolated at the image times."""
    rng = np.random.default_rng(2)
    frames = synthetic_pan_frames(3.4, n=150, seed=3)
    t = np.sort(np.arange(0, 150 * PERIOD, 0.01) + rng.normal(0.0, 0.0005, 600))
    res = _estimate(frames, t, pan_deg(t))
    assert abs(res.delay_frames - 3.4) < 0.1


def test_flipped_pan_sign_is_reported():
    frames = synthetic_pan_frames(2.0, n=120)
    t = np.arange(len(frames)) * PERIOD
    res = _estimate(frames, t, -pan_deg(t))  # e.g. a FreeD pan not negated
    assert res.sign_flipped
    assert abs(res.delay_frames - 2.0) < 0.1
    assert any("pan sign" in w for w in res.warnings)


def test_angular_rate_and_image_motion_units():
    t = np.arange(10) * 0.04
    R = [rotation_from_ptr_deg(5.0 * ti, 0.0, 0.0) for ti in t]  # 5 deg/s to the left
    tm, w = D.angular_rate(t, R)
    assert np.allclose(w, 5.0) and np.allclose(tm, t[:-1] + 0.02)
    frames = synthetic_pan_frames(0.0, n=3)
    dx, resp = D.image_motion(frames)
    expected = F_PX * np.radians(np.diff(pan_deg(np.arange(3) * PERIOD)))
    assert np.allclose(dx, expected, atol=0.1)
    assert np.all(resp > 0.3)


def test_no_motion_is_an_error():
    img = np.zeros(40)
    with pytest.raises(CalibrationError, match="no motion"):
        D.estimate_delay(np.arange(40) * PERIOD, img, np.arange(40) * PERIOD, img, PERIOD)


def test_take_poses_from_a_freed_take(tmp_path):
    from stagectl.core.sample import Pose, TrackingSample
    from stagectl.tracking.codecs import encode_freed, sample_to_freed
    from stagectl.tracking.recording import Recorder

    path = tmp_path / "pan.take"
    with Recorder(path, sources={"tracker": "freed"}) as rec:
        for k in range(20):
            s = TrackingSample("FreeD", pose=Pose(1.0, 2.0, 1.5, 2.0 * k, 1.0, 0.0), pose_frame="body")
            rec.append(1_000_000_000 + k * 40_000_000, "tracker", encode_freed(sample_to_freed(s, camera_id=1)))
    t, Ts, frame = D.take_poses(path)
    assert frame == "body" and len(Ts) == 20
    assert t[1] - t[0] == pytest.approx(0.04)
    _, w = D.angular_rate(t, [T[:3, :3] for T in Ts])
    # 2 deg per 40 ms about the tracking Z; the camera is tilted 1 deg, so about its own up axis 50 cos(1 deg)
    assert np.allclose(w, 50.0 * math.cos(math.radians(1.0)), atol=1e-3)
