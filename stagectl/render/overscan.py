"""Adaptive inner-frustum overscan from latency and camera speed.

Between the tracking sample a frame was rendered from and the moment the LED wall shows it, the real camera
keeps moving for the latency ``L`` (tracking to present, plus the processor's frames). While it turns at ``ω``
rad/s its view sweeps ``Δ = ω · L`` radians past the rendered frustum; while it moves sideways at ``v`` m/s in
front of a wall ``D`` m away, the frustum's footprint slides by about ``v · L / D`` radians. To keep the
frustum's edge out of shot, each side of the frustum is widened by that angle
(CALIBRATION_AND_TIMING.md §6.3: ``k = tan(θ + Δ) / tan(θ)`` on the half-width of half-angle ``θ``).

In the overscan convention of docs/conventions.md (percent of the unscanned width added to each side) a
half-angle ``θ`` widened by ``Δ`` needs ``(tan(θ + Δ) - tan θ) / (2 tan θ) * 100`` percent per side. The
horizontal sides take pan-rate and lateral motion, the vertical sides tilt-rate and vertical motion; a roll rate
turns the frame's corners and is added to both (the corner of a ``w x h`` frame moves by ``ω_roll · L`` times
its half-diagonal).

Stability: the overscan grows at once when the camera speeds up and shrinks slowly (``decay_pct_per_s``) when
it slows down, never below the stage's base overscan and never above ``max_pct``; tiny speeds (below
``deadband``) count as still, so tracking noise does not make the frustum breathe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AdaptiveOverscan", "overscan_pct_for_angle", "camera_speed"]


def overscan_pct_for_angle(half_angle_rad: float, extra_rad: float) -> float:
    """Percent of the unscanned width to add per side so that a half-angle grows by ``extra_rad``."""
    t = math.tan(half_angle_rad)
    grown = math.tan(min(half_angle_rad + max(extra_rad, 0.0), math.radians(89.0)))
    return (grown - t) / (2.0 * t) * 100.0


def camera_speed(T_prev: np.ndarray, T_now: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Angular velocity (rad/s about the camera's own x, y, z axes: tilt, roll, pan rates) and linear velocity
    (m/s along the camera's x, y, z: right, forward, up) between two ``T_stage_camera`` poses ``dt_s`` apart."""
    R0, R1 = T_prev[:3, :3], T_now[:3, :3]
    dR = R0.T @ R1  # the rotation in the camera's own frame
    angle = math.acos(max(-1.0, min(1.0, (np.trace(dR) - 1.0) / 2.0)))
    if angle < 1e-12:
        axis_angle = np.zeros(3)
    else:
        axis = np.array([dR[2, 1] - dR[1, 2], dR[0, 2] - dR[2, 0], dR[1, 0] - dR[0, 1]]) / (2.0 * math.sin(angle))
        axis_angle = axis * angle
    v_stage = (T_now[:3, 3] - T_prev[:3, 3]) / dt_s
    return axis_angle / dt_s, R0.T @ v_stage


@dataclass
class AdaptiveOverscan:
    """Per-camera adaptive overscan (percent per side: left, right, bottom, top).

    :param base_pct: the stage's configured overscan, the floor.
    :param max_pct: the cap per side.
    :param latency_ns: tracking-to-light latency the overscan must cover (sample age + render + present +
        processor), updated by the caller as it measures it.
    :param wall_distance_m: typical camera-to-wall distance for the lateral-motion term.
    :param decay_pct_per_s: how fast the overscan may shrink.
    :param deadband_rad_s / deadband_m_s: speeds below these count as still.
    """

    base_pct: tuple[float, float, float, float]
    max_pct: float = 60.0
    latency_ns: int = 100_000_000
    wall_distance_m: float = 5.0
    decay_pct_per_s: float = 10.0
    deadband_rad_s: float = math.radians(0.5)
    deadband_m_s: float = 0.02

    def __post_init__(self) -> None:
        self.current = tuple(float(v) for v in self.base_pct)
        self._last_T: np.ndarray | None = None
        self._last_ns: int | None = None

    def target(self, omega: np.ndarray, velocity: np.ndarray, half_fov_h_rad: float, half_fov_v_rad: float) -> tuple[float, float, float, float]:
        """The overscan these speeds need now (before hysteresis), percent per side."""
        L = self.latency_ns / 1e9
        w_tilt, w_roll, w_pan = (abs(float(x)) for x in omega)
        v_right, _, v_up = (abs(float(x)) for x in velocity)
        w_pan = 0.0 if w_pan < self.deadband_rad_s else w_pan
        w_tilt = 0.0 if w_tilt < self.deadband_rad_s else w_tilt
        w_roll = 0.0 if w_roll < self.deadband_rad_s else w_roll
        v_right = 0.0 if v_right < self.deadband_m_s else v_right
        v_up = 0.0 if v_up < self.deadband_m_s else v_up
        th, tv = math.tan(half_fov_h_rad), math.tan(half_fov_v_rad)
        cap = math.radians(89.0)
        # in image-plane units (tangents at unit distance): turning and sliding widen the half-extent ...
        ext_h = math.tan(min(half_fov_h_rad + w_pan * L + v_right * L / self.wall_distance_m, cap)) - th
        ext_v = math.tan(min(half_fov_v_rad + w_tilt * L + v_up * L / self.wall_distance_m, cap)) - tv
        # ... and a roll by a = w_roll * L moves the corner (th, tv) by (a * tv, a * th)
        a = w_roll * L
        ext_h += a * tv
        ext_v += a * th
        h = ext_h / (2.0 * th) * 100.0
        v = ext_v / (2.0 * tv) * 100.0
        return (h, h, v, v)

    def update(self, T_stage_camera: np.ndarray, time_ns: int, half_fov_h_rad: float, half_fov_v_rad: float) -> tuple[float, float, float, float]:
        """Feed this frame's pose; returns the overscan to use (percent per side: left, right, bottom, top)."""
        T = np.array(T_stage_camera, dtype=np.float64)
        if self._last_T is None or self._last_ns is None or time_ns <= self._last_ns:
            self._last_T, self._last_ns = T, time_ns
            return self.current
        dt = (time_ns - self._last_ns) / 1e9
        omega, vel = camera_speed(self._last_T, T, dt)
        want = self.target(omega, vel, half_fov_h_rad, half_fov_v_rad)
        out = []
        for base, cur, w in zip(self.base_pct, self.current, want):
            w = min(max(w + base, base), self.max_pct)
            # grow at once, shrink at most decay_pct_per_s
            out.append(w if w >= cur else max(w, cur - self.decay_pct_per_s * dt))
        self.current = tuple(out)
        self._last_T, self._last_ns = T, time_ns
        return self.current
