"""Smooth, physically plausible camera moves for the simulator and the demo stage.

Pure functions of time: ``pose_at(move, t_s)`` gives the tracked body's pose in the tracking frame
(docs/conventions.md: metres, degrees, pan positive to the left) plus normalised zoom and focus encoders
(0 = wide / infinity, 1 = tele / closest, as OpenTrackIO). Moves are deterministic so a test can compare what a
receiver got with what the simulator sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MOVES", "SimulatedPose", "pose_at", "look_at_pan_tilt"]

MOVES = ("orbit", "dolly", "pan", "crane", "handheld")

# where the moves look: the middle of a main wall about 4.5 m in front of the stage origin
_TARGET = (0.0, 4.5, 1.5)


@dataclass(frozen=True)
class SimulatedPose:
    x: float
    y: float
    z: float
    pan: float
    tilt: float
    roll: float
    zoom: float
    focus: float


def look_at_pan_tilt(pos: tuple[float, float, float], target: tuple[float, float, float]) -> tuple[float, float]:
    """Pan and tilt (degrees) that point the optical axis (+Y of the camera) from ``pos`` at ``target``."""
    dx, dy, dz = (target[0] - pos[0], target[1] - pos[1], target[2] - pos[2])
    pan = math.degrees(math.atan2(-dx, dy))
    tilt = math.degrees(math.atan2(dz, math.hypot(dx, dy)))
    return pan, tilt


def _ease(t: float, period: float) -> float:
    """Smooth back-and-forth in [-1, 1] with zero velocity at the ends (a cosine)."""
    return -math.cos(2.0 * math.pi * t / period)


def pose_at(move: str, t_s: float) -> SimulatedPose:
    """The pose of ``move`` at ``t_s`` seconds from its start."""
    zoom = 0.5 + 0.35 * math.sin(2.0 * math.pi * t_s / 17.0)
    focus = 0.5 + 0.3 * math.sin(2.0 * math.pi * t_s / 11.0 + 1.0)
    if move == "orbit":
        a = 2.0 * math.pi * t_s / 20.0
        pos = (1.2 * math.sin(a), 1.0 - 0.8 * math.cos(a), 1.6 + 0.15 * math.sin(2 * a))
        pan, tilt = look_at_pan_tilt(pos, _TARGET)
        roll = 0.0
    elif move == "dolly":
        s = _ease(t_s, 12.0)
        pos = (0.3 * s, 1.0 + 1.2 * s, 1.5)
        pan, tilt = look_at_pan_tilt(pos, _TARGET)
        roll = 0.0
    elif move == "pan":
        pos = (0.0, 0.5, 1.6)
        pan = 25.0 * _ease(t_s, 8.0)
        tilt = 2.0 * math.sin(2.0 * math.pi * t_s / 5.0)
        roll = 0.0
    elif move == "crane":
        s = _ease(t_s, 14.0)
        pos = (0.5 * s, 0.8, 1.9 + 1.0 * s)
        pan, tilt = look_at_pan_tilt(pos, _TARGET)
        roll = 0.0
    elif move == "handheld":
        # a walk toward the wall with breathing and sway: sums of incommensurate sines stay smooth
        w = lambda f, ph: math.sin(2.0 * math.pi * f * t_s + ph)  # noqa: E731
        pos = (0.25 * w(0.07, 0.0) + 0.01 * w(1.3, 0.4), 0.8 + 0.4 * w(0.05, 1.0), 1.55 + 0.02 * w(0.9, 2.0))
        pan, tilt = look_at_pan_tilt(pos, _TARGET)
        pan += 1.5 * w(0.31, 0.3) + 0.3 * w(1.7, 1.1)
        tilt += 1.0 * w(0.23, 0.7) + 0.2 * w(2.1, 0.2)
        roll = 1.2 * w(0.19, 1.9)
    else:
        raise ValueError(f"unknown move {move!r}; expected one of {', '.join(MOVES)}")
    return SimulatedPose(x=pos[0], y=pos[1], z=pos[2], pan=pan, tilt=tilt, roll=roll, zoom=zoom, focus=focus)
