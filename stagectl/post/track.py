"""The solved camera of a take, frame by frame, and the axis conventions of the files post receives.

A :class:`CameraTrack` is what :func:`stagectl.post.solve.solve_take` makes of a ``.stgtake``: one
:class:`CameraFrame` per frame of the stage's exact frame rate, each holding the camera as ``stagectl run``
would have rendered it at that frame (registration, tracker offset, lens file), its SMPTE timecode, and the
take's slate. The writers (:mod:`stagectl.post.usd`, :mod:`~stagectl.post.chan`, :mod:`~stagectl.post.csvfile`,
:mod:`~stagectl.post.opentrackio`, :mod:`~stagectl.post.sheet`) read nothing else.

Frames and units (docs/conventions.md, docs/post.md)
----------------------------------------------------
* ``T_stage_camera``: 4x4, the camera reference point (where the optical axis meets the sensor plane) in the
  stage frame: right-handed, **Z up**, metres; camera axes **+X right, +Y forward (optical axis), +Z up**.
* The **projection centre** is the entrance pupil, ``T_stage_pupil = T_stage_camera @ translate(0, e, 0)``
  with ``e`` the lens's entrance-pupil offset (m, positive toward the subject).
* Lens values: focal length and principal-point offset in **mm** on the sensor (offset +x right, +y up, from
  the sensor centre), distortion Brown-Conrady in OpenCV's meaning (undistorted -> distorted, normalised
  coordinates), focus distance in **m** (``inf`` = infinity, NaN = unknown), f-stop (NaN = unknown).
* **Y-up files** (USD, Nuke): world ``x_y = x, y_y = z, z_y = -y`` (:data:`T_YUP_STAGE`, a -90 degree turn about
  +X) and the camera looks down its **-Z** with +Y up (the GL eye of docs/conventions.md;
  :data:`T_CAMERA_YUPCAM`). The pose such a file holds is :meth:`CameraFrame.T_yup_cam`:
  ``T_YUP_STAGE @ T_stage_pupil @ T_CAMERA_YUPCAM``, in metres (the writers scale it to their unit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from stagectl.core.timebase import FrameRate, Timecode
from stagectl.core.transforms import ptr_deg_from_rotation
from stagectl.lens.lensfile import LensEvaluation

__all__ = [
    "T_CAMERA_YUPCAM",
    "T_YUP_STAGE",
    "CameraFrame",
    "CameraTrack",
    "RawSample",
    "Slate",
    "nuke_zxy_deg",
    "rotation_from_nuke_zxy_deg",
]

#: Stage (Z up) -> Y-up world: ``x' = x, y' = z, z' = -y`` (a -90 degree rotation about +X; det +1).
T_YUP_STAGE: Final = np.array([[1.0, 0.0, 0.0, 0.0],
                               [0.0, 0.0, 1.0, 0.0],
                               [0.0, -1.0, 0.0, 0.0],
                               [0.0, 0.0, 0.0, 1.0]])
#: Y-up camera (looks down -Z, +Y up, +X right) -> stagectl camera (+Y forward, +Z up): ``x = x', y = -z',
#: z = y'``; the inverse of docs/conventions.md ``T_gl_camera``.
T_CAMERA_YUPCAM: Final = np.array([[1.0, 0.0, 0.0, 0.0],
                                   [0.0, 0.0, -1.0, 0.0],
                                   [0.0, 1.0, 0.0, 0.0],
                                   [0.0, 0.0, 0.0, 1.0]])


def nuke_zxy_deg(R: np.ndarray) -> tuple[float, float, float]:
    """Nuke rotation angles ``(rx, ry, rz)`` in degrees of a 3x3 rotation for rotation order **ZXY** (Nuke's
    Camera default): ``R = Ry(ry) @ Rx(rx) @ Rz(rz)`` acting on column vectors (Z applied first). At
    ``|rx| = 90`` the split between ``ry`` and ``rz`` is not unique; ``rz`` is then 0."""
    R = np.asarray(R, dtype=np.float64)
    s = -R[1, 2]
    rx = math.asin(max(-1.0, min(1.0, s)))
    if abs(s) < 1.0 - 1e-12:
        ry = math.atan2(R[0, 2], R[2, 2])
        rz = math.atan2(R[1, 0], R[1, 1])
    else:  # gimbal lock: Ry Rx(+-90) Rz depends on ry -+ rz only
        ry = math.atan2(-R[2, 0], R[0, 0]) if s > 0 else math.atan2(R[2, 0], R[0, 0])
        rz = 0.0
    return math.degrees(rx), math.degrees(ry), math.degrees(rz)


def rotation_from_nuke_zxy_deg(rx: float, ry: float, rz: float) -> np.ndarray:
    """``Ry(ry) @ Rx(rx) @ Rz(rz)`` (degrees in, 3x3 out): the inverse of :func:`nuke_zxy_deg`."""
    a, b, c = (math.radians(v) for v in (rx, ry, rz))
    Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


@dataclass(frozen=True, slots=True)
class Slate:
    """What identifies a take in editorial: ``scene``, ``take`` (as written on the slate), camera ``roll``
    (tape name), the ``camera`` name, free ``notes`` and any other ``extra`` values the take header held."""

    scene: str = ""
    take: str = ""
    roll: str = ""
    camera: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (empty ones left out), ``extra`` flattened in after the named ones."""
        out: dict[str, Any] = {k: v for k, v in (("scene", self.scene), ("take", self.take), ("roll", self.roll),
                                                 ("camera", self.camera), ("notes", self.notes)) if v}
        for k, v in self.extra.items():
            out.setdefault(str(k), v)
        return out


@dataclass(frozen=True, slots=True)
class RawSample:
    """One decoded incoming sample as it arrived (before any registration or lens file): ``arrival_ns``
    (clock ``monotonic`` of the recording machine), the pose ``T_tracking_<pose_frame>`` as ``(x, y, z)`` m and
    ``(pan, tilt, roll)`` deg, normalised ``zoom``/``focus`` (NaN: not sent), the source's own focal length mm
    (NaN: not sent) and timecode label (``""``: none)."""

    arrival_ns: int
    pose_frame: str
    x: float
    y: float
    z: float
    pan: float
    tilt: float
    roll: float
    zoom: float
    focus: float
    focal_length_mm: float
    timecode: str


@dataclass(frozen=True, eq=False, slots=True)
class CameraFrame:
    """The solved camera at one frame.

    ``index``: frame number in the take (0 = first); ``timecode``: its SMPTE label at the stage rate;
    ``T_stage_camera``: 4x4 (module docstring); ``lens``: the lens at this frame (focal length, principal point,
    distortion, entrance-pupil offset, focus distance, encoders; docs/conventions.md units); ``f_stop``: NaN when
    no source sent one; ``status``: the timeline's status for this frame (``"interpolated"`` for a sample or a
    blend of two, ``"held"`` / ``"extrapolated"`` at gaps); ``lens_source``: where the lens values came from.
    """

    index: int
    timecode: Timecode
    T_stage_camera: np.ndarray
    lens: LensEvaluation
    f_stop: float
    status: str
    lens_source: str = ""

    @property
    def T_stage_pupil(self) -> np.ndarray:
        """The projection centre's pose: ``T_stage_camera @ translate(0, e, 0)``."""
        T = np.eye(4)
        T[1, 3] = self.lens.entrance_pupil_offset_m
        return self.T_stage_camera @ T

    @property
    def focal_length_mm(self) -> float:
        return float(self.lens.focal_length_mm)

    @property
    def focus_distance_m(self) -> float:
        """Focus distance, m (``inf`` = infinity, NaN = unknown)."""
        d = self.lens.focus_distance_m
        return math.nan if d is None else float(d)

    def pose(self) -> tuple[float, float, float, float, float, float]:
        """``(x, y, z, pan, tilt, roll)`` of ``T_stage_camera``: metres, degrees (stagectl's pan/tilt/roll)."""
        T = self.T_stage_camera
        pan, tilt, roll = ptr_deg_from_rotation(T[:3, :3])
        return float(T[0, 3]), float(T[1, 3]), float(T[2, 3]), pan, tilt, roll

    def T_yup_cam(self) -> np.ndarray:
        """The pose a Y-up file holds (module docstring), metres: ``T_YUP_STAGE @ T_stage_pupil @
        T_CAMERA_YUPCAM``."""
        return T_YUP_STAGE @ self.T_stage_pupil @ T_CAMERA_YUPCAM


@dataclass(frozen=True, eq=False)
class CameraTrack:
    """A take solved into one camera's per-frame path (:func:`stagectl.post.solve.solve_take`).

    ``name``: the take's name (its file stem); ``stage``: the stage's name; ``camera``: the stage camera;
    ``rate``: the exact frame rate the frames are spaced at; ``drop_frame``: whether the labels are drop-frame;
    ``sensor_mm``: the active sensor ``(w, h)`` mm; ``slate``; ``frames``; ``samples``: the raw decoded samples
    the frames were solved from; ``source``: ``(name, protocol)`` of the take source; ``match``: how frames
    were found (``"timecode"``: the samples' own SMPTE labels; ``"nearest"`` / ``"interpolate"``: arrival times
    on a frame grid); ``lens_name``: the lens file's name or ``""``; ``created_utc``: the take's creation time;
    ``content``: what the wall showed (the take header's ``content``, else the stage's outer content);
    ``notes``: what the solver had to assume.
    """

    name: str
    stage: str
    camera: str
    rate: FrameRate
    drop_frame: bool
    sensor_mm: tuple[float, float]
    slate: Slate
    frames: tuple[CameraFrame, ...]
    samples: tuple[RawSample, ...] = ()
    source: tuple[str, str] = ("", "")
    match: str = ""
    lens_name: str = ""
    take_path: Path | None = None
    created_utc: str = ""
    content: str = ""
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def start_timecode(self) -> Timecode:
        """Label of the first frame."""
        return self.frames[0].timecode

    @property
    def end_timecode(self) -> Timecode:
        """Label of the last frame (inclusive)."""
        return self.frames[-1].timecode

    @property
    def end_timecode_exclusive(self) -> Timecode:
        """Label one frame after the last (Avid's and OTIO's exclusive end)."""
        return self.frames[-1].timecode + 1

    def positions(self) -> np.ndarray:
        """``(n, 3)`` camera reference points in the stage, metres."""
        return np.array([f.T_stage_camera[:3, 3] for f in self.frames]).reshape(-1, 3)

    def pupil_positions(self) -> np.ndarray:
        """``(n, 3)`` entrance pupils (projection centres) in the stage, metres."""
        return np.array([f.T_stage_pupil[:3, 3] for f in self.frames]).reshape(-1, 3)

    def focal_lengths(self) -> np.ndarray:
        return np.array([f.focal_length_mm for f in self.frames])
