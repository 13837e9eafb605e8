"""The camera at one frame, as the planner, the cluster wire, takes and post share it: :class:`LensValues`,
:class:`CameraState` (``T_stage_camera`` with its lens and sensor), and the operator's global
:class:`OperatorFlags`. Plain data; how a tracked pose becomes a :class:`CameraState` lives in
:mod:`stagectl.render.camera`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LensValues", "CameraState", "OperatorFlags"]


@dataclass(frozen=True)
class LensValues:
    """The lens at this frame: pinhole focal length (mm), principal-point offset (mm on the sensor from its
    centre, +x right, +y up), entrance-pupil offset (m along the optical axis, positive toward the subject).

    ``source`` says where they came from (lens file and encoders, or the 35 mm default); ``zoom``/``focus``
    are the normalised encoders when known.
    """

    focal_mm: float
    principal_point_mm: tuple[float, float] = (0.0, 0.0)
    pupil_offset_m: float = 0.0
    source: str = "given"
    zoom: float | None = None
    focus: float | None = None

    def finite(self) -> bool:
        vals = (self.focal_mm, *self.principal_point_mm, self.pupil_offset_m)
        return all(math.isfinite(v) for v in vals) and self.focal_mm > 0.0

    def as_dict(self) -> dict:
        return {
            "focal_mm": self.focal_mm,
            "principal_point_mm": list(self.principal_point_mm),
            "pupil_offset_m": self.pupil_offset_m,
            "source": self.source,
            "zoom": self.zoom,
            "focus": self.focus,
        }


@dataclass(frozen=True, eq=False)
class CameraState:
    """One tracked camera at this frame: ``T_stage_camera`` (4x4, the camera reference point in the stage,
    docs/conventions.md "Camera"), its lens values and sensor size ``(w, h)`` mm. ``overscan_pct`` (left,
    right, bottom, top percent) overrides the stage's overscan for this frame (adaptive overscan); None keeps
    the stage's. ``soft_edge`` (0..0.5) overrides the stage's soft edge for this camera (the operator's
    per-camera setting); None keeps the stage's."""

    name: str
    T_stage_camera: np.ndarray
    lens: LensValues
    sensor_mm: tuple[float, float]
    overscan_pct: tuple[float, float, float, float] | None = None
    soft_edge: float | None = None

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.T_stage_camera))) and self.lens.finite()


@dataclass(frozen=True)
class OperatorFlags:
    """What the operator switched this frame.

    ``blackout``: every output shows black (no pass is drawn). ``inner_enabled``: composite the inner frusta
    (off: the whole wall shows the outer image). ``freeze_inner``: keep the last planned inner frusta
    (matrices and images) instead of following the cameras.
    """

    blackout: bool = False
    inner_enabled: bool = True
    freeze_inner: bool = False
