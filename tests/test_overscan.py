"""Adaptive overscan: the published formula, speeds recovered from poses, hysteresis, floor and cap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stagectl.core.transforms import transform_from_pose
from stagectl.render.overscan import AdaptiveOverscan, camera_speed, overscan_pct_for_angle


def test_percent_matches_the_tan_ratio() -> None:
    # CALIBRATION_AND_TIMING.md 6.3: 30 deg/s for 8 frames at 24 fps = 10 deg per side; k = tan(t + d) / tan(t)
    theta, delta = math.radians(20.0), math.radians(10.0)
    k = math.tan(theta + delta) / math.tan(theta)
    pct = overscan_pct_for_angle(theta, delta)
    # per side, as a fraction of the full unscanned width: (k - 1) / 2
    assert pct == pytest.approx((k - 1.0) / 2.0 * 100.0)
    assert overscan_pct_for_angle(theta, 0.0) == 0.0


def test_camera_speed_from_two_poses() -> None:
    dt = 0.04
    T0 = transform_from_pose(1.0, 2.0, 1.5, 10.0, 5.0, 0.0)
    T1 = transform_from_pose(1.0 + 0.02, 2.0, 1.5, 10.0 + 1.2, 5.0, 0.0)  # pan 1.2 deg, move 2 cm along stage X
    omega, vel = camera_speed(T0, T1, dt)
    # at tilt 5 the pan axis (stage Z) seen from the camera is mostly its z axis, a little its y axis
    assert np.linalg.norm(omega) == pytest.approx(math.radians(1.2) / dt, rel=1e-6)
    assert abs(omega[2]) == pytest.approx(math.radians(1.2) / dt * math.cos(math.radians(5.0)), rel=1e-3)
    # 0.5 m/s along stage X is, seen from a camera panned 10 deg, mostly to its right
    np.testing.assert_allclose(np.linalg.norm(vel), 0.5, rtol=1e-9)
    assert vel[0] == pytest.approx(0.5 * math.cos(math.radians(10.0)), rel=1e-6)


def _feed(ov: AdaptiveOverscan, poses, dt_ns: int, hfov: float, vfov: float):
    out = []
    for i, p in enumerate(poses):
        out.append(ov.update(transform_from_pose(*p), i * dt_ns, hfov, vfov))
    return out


def test_still_camera_keeps_the_base_and_a_pan_widens_the_sides() -> None:
    hfov, vfov = math.radians(20.0), math.radians(11.5)
    dt = 41_708_333
    ov = AdaptiveOverscan((10.0, 10.0, 10.0, 10.0), latency_ns=333_333_333, max_pct=80.0)
    still = _feed(ov, [(0, 0, 1.6, 0, 0, 0)] * 10, dt, hfov, vfov)
    assert still[-1] == (10.0, 10.0, 10.0, 10.0)
    # pan at 30 deg/s: 10 deg of sweep over the 1/3 s latency, on the left and right sides only
    ov = AdaptiveOverscan((10.0, 10.0, 10.0, 10.0), latency_ns=333_333_333, max_pct=80.0)
    pans = [(0, 0, 1.6, 30.0 * i * dt / 1e9, 0, 0) for i in range(10)]
    got = _feed(ov, pans, dt, hfov, vfov)[-1]
    want = 10.0 + overscan_pct_for_angle(hfov, math.radians(10.0))
    assert got[0] == pytest.approx(want, rel=1e-3) and got[1] == pytest.approx(want, rel=1e-3)
    assert got[2] == pytest.approx(10.0) and got[3] == pytest.approx(10.0)


def test_grows_at_once_shrinks_slowly_and_respects_the_cap() -> None:
    hfov, vfov = math.radians(20.0), math.radians(11.5)
    dt = 40_000_000
    ov = AdaptiveOverscan((5.0, 5.0, 5.0, 5.0), latency_ns=200_000_000, decay_pct_per_s=10.0, max_pct=30.0)
    poses = [(0, 0, 1.6, 0, 0, 0), (0, 0, 1.6, 4.0, 0, 0)]  # 100 deg/s: far past the cap
    got = _feed(ov, poses, dt, hfov, vfov)[-1]
    assert got[0] == 30.0 and got[1] == 30.0
    # then the camera stops: 10 %/s decay over 40 ms steps -> 0.4 % per frame, down to the base
    prev = got[0]
    T = transform_from_pose(0, 0, 1.6, 4.0, 0, 0)
    for i in range(2, 100):
        cur = ov.update(T, i * dt, hfov, vfov)[0]
        assert prev - cur <= 0.4 + 1e-9
        prev = cur
    assert prev == pytest.approx(5.0)


def test_roll_widens_both_axes_and_tracking_noise_does_not() -> None:
    hfov, vfov = math.radians(20.0), math.radians(11.5)
    dt = 40_000_000
    ov = AdaptiveOverscan((0.0, 0.0, 0.0, 0.0), latency_ns=200_000_000)
    got = _feed(ov, [(0, 0, 1.6, 0, 0, 0), (0, 0, 1.6, 0, 0, 2.0)], dt, hfov, vfov)[-1]  # 50 deg/s roll
    a = math.radians(50.0) * 0.2
    assert got[0] == pytest.approx(a * math.tan(vfov) / (2 * math.tan(hfov)) * 100.0, rel=1e-3)
    assert got[2] == pytest.approx(a * math.tan(hfov) / (2 * math.tan(vfov)) * 100.0, rel=1e-3)
    ov = AdaptiveOverscan((3.0, 3.0, 3.0, 3.0), latency_ns=200_000_000)
    rng = np.random.default_rng(1)
    noise = [(rng.normal(0, 2e-4), rng.normal(0, 2e-4), 1.6, rng.normal(0, 0.005), 0, 0) for _ in range(20)]
    assert _feed(ov, noise, dt, hfov, vfov)[-1] == (3.0, 3.0, 3.0, 3.0)
