"""One camera of a running stage: its tracking timeline, lens, registration and the operator's settings.

A :class:`CameraRig` answers, for a frame edge, the camera's :class:`~stagectl.core.camera.CameraState`
(:meth:`CameraRig.state_at`): the pose from its timeline (with the source's tracking delay), mapped into the
stage by the wall registration and the tracker offset (:func:`~stagectl.render.camera.stage_camera_transform`),
the lens from the lens file's table at the zoom/focus encoders (else the tracker's focal length, else
:data:`DEFAULT_FOCAL_MM`), the overscan (the operator's, or the adaptive overscan, widened by the lens's
distortion overscan) and the operator's soft edge. ``stagectl run`` renders from it and ``stagectl export``
(:mod:`stagectl.post.solve`) solves takes with it, so both use exactly the same maths.

The operator's settings of a camera (:class:`~stagectl.core.camera_settings.CameraSettings`: source, tracking
delay, smoothing, overscan, soft edge, freeze; what :meth:`CameraRig.apply` takes) are declared once in
:mod:`stagectl.core.camera_settings`, where the stage file, the operator state file, the ``camera.set`` command
and ``stagectl export`` read their limits too.

Units and frames (docs/conventions.md): time in integer ns on the timeline's clock, stage metres, overscan in
percent per side (left, right, bottom, top), focal length in mm, tracking delay in frames, smoothing cutoffs in
Hz.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from stagectl.core.camera import CameraState, LensValues
from stagectl.core.camera_settings import CameraSettings, Overscan
from stagectl.render.camera import DEFAULT_FOCAL_MM, camera_state_of, stage_camera_transform

if TYPE_CHECKING:
    from stagectl.lens.lensfile import LensTable
    from stagectl.render.overscan import AdaptiveOverscan
    from stagectl.stage.model import AdaptiveOverscanSettings, Camera, Stage, TrackingSource
    from stagectl.tracking.timeline import TimelineState

__all__ = [
    "DEFAULT_FOCAL_MM",
    "CameraRig",
    "CameraSettings",
    "PoseSource",
]


class PoseSource(Protocol):
    """What a rig reads its pose from: a :class:`~stagectl.tracking.timeline.Timeline`, or anything that
    answers ``pose_at(t_ns)`` with a :class:`~stagectl.tracking.timeline.TimelineState` (post solve's stand-in)."""

    def pose_at(self, t_ns: int) -> TimelineState: ...


@dataclass(eq=False)
class CameraRig:
    """Everything one camera needs per frame (module docstring). Build it with :meth:`for_camera`.

    Set up: ``camera`` and ``source`` (the stage's), ``timeline``, ``lens_table`` (None: no lens file),
    ``T_stage_tracking`` (4x4, the wall registration: tracking -> stage), ``T_body_camera`` (4x4, the tracker
    offset), ``base_overscan`` (the stage's ``render.inner.overscan_percent`` or the operator's), ``adaptive``
    (:class:`~stagectl.render.overscan.AdaptiveOverscan` when the stage asks for it), ``soft_edge`` (the
    operator's, None: the stage's).

    Written by :meth:`state_at` each frame: ``state`` (the timeline's answer), ``focal_mm``, ``overscan``
    (the adaptive overscan this frame, None: off), ``distortion`` (the lens's distortion overscan this frame,
    percent per side, None: no lens file) and ``frames_without_pose``.
    """

    camera: Camera
    source: TrackingSource
    timeline: Any  # a Timeline (PoseSource); Any: the console's effects also restart it and set its delay
    lens_table: LensTable | None
    T_stage_tracking: np.ndarray
    T_body_camera: np.ndarray
    base_overscan: Overscan = (0.0, 0.0, 0.0, 0.0)
    adaptive: AdaptiveOverscan | None = None
    soft_edge: float | None = None
    state: TimelineState | None = None
    focal_mm: float = DEFAULT_FOCAL_MM
    frames_without_pose: int = 0
    overscan: Overscan | None = None
    distortion: Overscan | None = None

    @classmethod
    def for_camera(cls, stage: Stage, camera: Camera, *, source: TrackingSource | None = None,
                   timeline: PoseSource | None = None) -> CameraRig:
        """The rig of ``camera`` of ``stage``: its source (default the stage file's), a timeline at the stage's
        rate with the source's delay on the ``"dejittered"`` clock and the camera's motion limits (default),
        its lens file's table, the stage's registration and overscan. Adaptive overscan: :meth:`set_adaptive`."""
        src = source if source is not None else stage.tracking_source(camera.tracking)
        if timeline is None:
            from stagectl.tracking.timeline import Timeline

            # dejittered: samples at their own time where they carry one; the camera's motion limits judge
            # samples and bound prediction (docs/stage-file.md, cameras[].motion_limits)
            timeline = Timeline(stage.frame_rate, delay_frames=src.delay_frames, name=camera.name,
                                clock="dejittered", motion_limits=camera.motion_limits)
        rig = cls(camera=camera, source=src, timeline=timeline, lens_table=None,
                  T_stage_tracking=np.eye(4), T_body_camera=np.eye(4),
                  base_overscan=tuple(stage.render.inner.overscan_percent))  # type: ignore[arg-type]
        rig.restage(stage, camera)
        return rig

    # ------------------------------------------------------------------ per frame
    def state_at(self, t_ns: int) -> CameraState | None:
        """The camera's state at the instant ``t_ns`` (the timeline's clock; the source's delay is the
        timeline's), or None while the timeline has no pose (counted in ``frames_without_pose``)."""
        st = self.timeline.pose_at(t_ns)
        self.state = st
        if not st.ok:
            self.frames_without_pose += 1
            return None
        T_stage_camera = stage_camera_transform(self.T_stage_tracking, st.matrix(), self.T_body_camera,
                                                st.pose_frame)
        zoom = st.zoom if math.isfinite(st.zoom) else 0.0
        focus = st.focus if math.isfinite(st.focus) else 0.0
        distortion = None
        if self.lens_table is not None:
            f_mm, px, py, _, _, _, _, _, pupil, _ = self.lens_table.values(zoom, focus).tolist()
            source = "lens file"
            distortion = self.lens_table.overscan(zoom, focus).percent()
        else:
            f_mm = st.focal_length_mm if math.isfinite(st.focal_length_mm) else DEFAULT_FOCAL_MM
            px = py = 0.0
            pupil = st.entrance_pupil_offset_m if math.isfinite(st.entrance_pupil_offset_m) else 0.0
            source = "tracker" if math.isfinite(st.focal_length_mm) else "default"
        self.focal_mm = f_mm
        adaptive = None
        if self.adaptive is not None:
            sw, sh = float(self.camera.sensor_mm[0]), float(self.camera.sensor_mm[1])
            adaptive = self.adaptive.update(T_stage_camera, t_ns, math.atan(sw / (2.0 * f_mm)),
                                            math.atan(sh / (2.0 * f_mm)))
        self.overscan = adaptive
        self.distortion = distortion
        # the inner frustum covers the lens's distorted frame (when it has a lens file), the margin on top
        return camera_state_of(self.camera, T_stage_camera, LensValues(f_mm, (px, py), pupil, source, zoom, focus),
                               overscan_pct=adaptive if adaptive is not None else self.base_overscan,
                               distortion_pct=distortion, soft_edge=self.soft_edge)

    # ------------------------------------------------------------------ changes (the frame loop's thread)
    def apply(self, settings: CameraSettings, only: Collection[str] | None = None) -> None:
        """The operator's camera settings (:class:`CameraSettings`): tracking delay and
        smoothing (only those named in ``only``, all when None: setting the smoothing restarts its filter),
        overscan (the adaptive overscan's floor) and soft edge. The tracking source: :meth:`switch_source`."""
        if only is None or "delay_frames" in only:
            self.timeline.set_delay_frames(settings.delay_frames)
        if only is None or "smoothing" in only:
            self.timeline.set_smoothing(settings.smoothing_filter())
        self.base_overscan = tuple(settings.overscan_percent)  # type: ignore[assignment]
        if self.adaptive is not None:  # the operator's overscan is the adaptive overscan's floor
            self.adaptive.base_pct = self.base_overscan
        self.soft_edge = float(settings.soft_edge)

    def switch_source(self, source: TrackingSource) -> None:
        """Read ``source`` from now on (the caller routes its samples here): the timeline starts afresh from
        the new source's first sample -- no glide from the old source's pose to the new one, and plausibility
        and timing are not judged against the old source."""
        self.source = source
        self.timeline.restart()

    def set_adaptive(self, settings: AdaptiveOverscanSettings | None) -> None:
        """Adaptive overscan per ``settings`` (``render.inner.adaptive_overscan``; None: off), with the rig's
        ``base_overscan`` as its floor; starts afresh."""
        self.adaptive = self.overscan = None
        if settings is not None:
            from stagectl.render.overscan import AdaptiveOverscan

            self.adaptive = AdaptiveOverscan(
                self.base_overscan, max_pct=settings.max_percent, latency_ns=int(settings.latency_ms * 1e6),
                wall_distance_m=settings.wall_distance_m, decay_pct_per_s=settings.decay_percent_per_s)

    def restage(self, stage: Stage, camera: Camera) -> None:
        """Take ``camera`` of a (re)loaded ``stage``: its lens file, tracker offset, the stage's registration and
        the source of the same name (the timeline, the operator's settings and the adaptive overscan stay)."""
        self.camera = camera
        self.source = stage.tracking_source(self.source.name)
        self.lens_table = camera.lens_file.table(camera.sensor_mm) if camera.lens_file else None
        self.T_body_camera = np.ascontiguousarray(camera.T_body_camera)
        self.T_stage_tracking = np.ascontiguousarray(stage.T_stage_tracking)
