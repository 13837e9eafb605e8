"""A camera's state at one frame: a tracked pose and lens values turned into the :class:`CameraState` the
frame planner (:class:`stagectl.render.plan.FramePlanner`) takes.

Frames and units (docs/conventions.md): stage metres, Z up; ``T_a_b`` maps frame b into frame a; lens values
in mm, the entrance-pupil offset in metres along the optical axis; overscan in percent per side (left, right,
bottom, top). The one place a tracked pose becomes a stage pose is :func:`stage_camera_transform`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stagectl.core.camera import CameraState, LensValues
from stagectl.core.transforms import transform_from_pose
from stagectl.render.passes import PlanError
from stagectl.stage.model import Camera, Stage

__all__ = [
    "DEFAULT_FOCAL_MM",
    "with_distortion_overscan",
    "stage_camera_transform",
    "camera_state_of",
    "camera_state",
    "camera_state_from_pose",
]

#: Focal length (mm) used for a camera without a lens file (and said so wherever it is used).
DEFAULT_FOCAL_MM = 35.0


def with_distortion_overscan(
    base_pct: Sequence[float], distortion_pct: Sequence[float] | None
) -> tuple[float, float, float, float]:
    """The inner frustum's overscan (left, right, bottom, top percent) that covers the lens's distorted frame
    plus the operator's (or adaptive) margin.

    ``distortion_pct``: :meth:`stagectl.lens.lensfile.Overscan.percent` of the lens at this zoom/focus (how
    far past the pinhole frame a barrel-distorted camera sees), None for none. Both are percentages of the
    *unscanned* frustum's width / height (docs/conventions.md), so the sum is exact: the distortion moves
    the edge from ``l`` to ``l - d/100 (r - l)``, the margin then adds ``o/100 (r - l)`` beyond it.
    """
    base = tuple(float(v) for v in base_pct)
    if len(base) != 4:
        raise PlanError(f"overscan must be (left, right, bottom, top) percent, got {base_pct!r}")
    if distortion_pct is None:
        return base  # type: ignore[return-value]
    return tuple(b + float(d) for b, d in zip(base, distortion_pct))  # type: ignore[return-value]


def _find_camera(stage: Stage, camera: str | Camera | None) -> Camera:
    if isinstance(camera, Camera):
        return camera
    if not stage.cameras:
        raise PlanError(f"stage {stage.name!r} has no cameras")
    if camera is None:
        return stage.cameras[0]
    for c in stage.cameras:
        if c.name == camera:
            return c
    names = ", ".join(c.name for c in stage.cameras)
    raise PlanError(f"stage {stage.name!r} has no camera {camera!r}; cameras: {names}")


def stage_camera_transform(
    T_stage_tracking: np.ndarray,
    T_tracking_pose: np.ndarray,
    T_body_camera: np.ndarray,
    pose_frame: str = "body",
) -> np.ndarray:
    """``T_stage_camera`` (4x4) of a tracked pose: ``T_stage_tracking @ (T_tracking_body @ T_body_camera)`` for
    a ``"body"`` pose (the tracker's body, e.g. FreeD: the camera's tracker offset applies), ``T_stage_tracking
    @ T_tracking_camera`` for a ``"camera"`` pose (OpenTrackIO sends the camera itself). ``T_stage_tracking``:
    the stage's wall registration. The one place a tracked pose becomes a stage pose (``stagectl run``, post
    solve, snapshots)."""
    T = np.asarray(T_tracking_pose, dtype=np.float64).reshape(4, 4)
    if pose_frame == "body":
        T = T @ T_body_camera
    return np.ascontiguousarray(np.asarray(T_stage_tracking, dtype=np.float64).reshape(4, 4) @ T)


def camera_state_of(
    camera: Camera,
    T_stage_camera: np.ndarray,
    lens: LensValues,
    *,
    overscan_pct: Sequence[float] | None = None,
    distortion_pct: Sequence[float] | None = None,
    soft_edge: float | None = None,
) -> CameraState:
    """The :class:`CameraState` of ``camera`` at ``T_stage_camera`` with ``lens``: its overscan is
    ``overscan_pct`` (left, right, bottom, top percent; None: the stage's) widened by the lens's distortion
    overscan ``distortion_pct`` (percent per side, None: none; it needs ``overscan_pct``, the margin on top of
    it: :func:`with_distortion_overscan`); ``soft_edge`` None keeps the stage's."""
    overscan = (overscan_pct if distortion_pct is None
                else with_distortion_overscan(overscan_pct, distortion_pct))  # type: ignore[arg-type]
    return CameraState(camera.name, T_stage_camera, lens, (float(camera.sensor_mm[0]), float(camera.sensor_mm[1])),
                       overscan, soft_edge)


def camera_state(
    stage: Stage,
    camera: str | Camera | None,
    T_tracking_body: np.ndarray,
    *,
    zoom: float = 0.0,
    focus: float = 0.0,
    T_stage_tracking: np.ndarray | None = None,
    lens: LensValues | None = None,
) -> CameraState:
    """A camera's state from a tracked body pose and lens encoders.

    ``T_stage_camera = T_stage_tracking @ T_tracking_body @ T_body_camera`` (:func:`stage_camera_transform`);
    ``T_stage_tracking`` defaults to the stage's wall registration (``stage.T_stage_tracking``, identity until
    calibrated). The lens file is evaluated at normalised ``(zoom, focus)``; a camera without a lens file gets
    :data:`DEFAULT_FOCAL_MM`, a centred principal point and no pupil offset (its ``source`` says so). ``lens``
    overrides both.
    """
    cam = _find_camera(stage, camera)
    if T_stage_tracking is None:
        T_stage_tracking = stage.T_stage_tracking
    T_stage_camera = stage_camera_transform(T_stage_tracking, T_tracking_body, cam.T_body_camera)
    overscan = distortion = None
    if lens is None:
        if cam.lens_file is not None:
            ev = cam.lens_file.evaluate(float(zoom), float(focus))
            lens = LensValues(
                ev.focal_length_mm, tuple(ev.principal_point_offset_mm), ev.entrance_pupil_offset_m,
                f"lens file {cam.lens_file.name!r} at zoom {zoom:g}, focus {focus:g}",
                float(zoom), float(focus),
            )
            # the camera sees the distorted frame: the inner frustum must reach as far (stage overscan on top)
            overscan, distortion = stage.render.inner.overscan_percent, ev.overscan(cam.sensor_mm).percent()
        else:
            lens = LensValues(
                DEFAULT_FOCAL_MM, (0.0, 0.0), 0.0,
                f"no lens file: default {DEFAULT_FOCAL_MM:g} mm, centred principal point, no pupil offset",
            )
    return camera_state_of(cam, T_stage_camera, lens, overscan_pct=overscan, distortion_pct=distortion)


def camera_state_from_pose(
    stage: Stage,
    pose: Sequence[float],
    *,
    camera: str | Camera | None = None,
    zoom: float = 0.0,
    focus: float = 0.0,
    lens: LensValues | None = None,
    T_stage_tracking: np.ndarray | None = None,
) -> CameraState:
    """:func:`camera_state` for a tracked body pose ``(x, y, z, pan, tilt, roll)`` (metres, degrees) in the
    tracking frame, as FreeD / OpenTrackIO report it; the stage's wall registration maps it into the stage
    unless ``T_stage_tracking`` is given."""
    if len(pose) != 6:
        raise PlanError(f"a pose is x, y, z, pan, tilt, roll (6 numbers), got {len(pose)}")
    return camera_state(
        stage, camera, transform_from_pose(*(float(v) for v in pose)), zoom=zoom, focus=focus, lens=lens,
        T_stage_tracking=T_stage_tracking,
    )
