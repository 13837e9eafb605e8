"""Typed tracking sample shared by every tracking protocol (FreeD, OpenTrackIO, ...).

Everything here is a frozen dataclass built by a codec in ``stagectl.tracking.codecs``. Frames and units
follow ``docs/conventions.md``:

* a :class:`Pose` is ``T_parent_child`` in the ``tracking`` frame (right-handed, Z up, Y forward at zero
  rotation): ``x, y, z`` in **metres**, ``pan, tilt, roll`` in **degrees** with
  ``R = Rz(pan) @ Rx(tilt) @ Ry(roll)`` (pan > 0 turns the view left, tilt > 0 looks up, roll > 0 is clockwise
  seen from behind the camera). FreeD's pan sign is already flipped by its codec.
* :attr:`TrackingSample.pose_frame` says which child frame the pose places: ``"body"`` (the tracked head,
  FreeD: ``T_tracking_body``) or ``"camera"`` (OpenTrackIO's composed transform chain: ``T_tracking_camera``).
* times are integer nanoseconds of the source's PTP clock (``seconds * 10**9 + nanoseconds``); rates are exact
  ``(num, den)`` tuples, never floats.
* lens values keep the units OpenTrackIO uses: focal length and sensor offsets in **mm**, distances in **m**.

Optional fields are ``None`` when the source did not send them.

The classes are ordinary ``@dataclass(frozen=True, slots=True)`` types with the usual constructors, equality
and hashing. Codecs on the per-packet path build the per-packet ones with the ``new_*`` builders at the end of
this module (:func:`new_pose`, :func:`new_tracking_sample`, ...): the same fields by keyword, the same instance,
three to five times faster than the generated ``__init__`` (that one pays an ``object.__setattr__`` per field to
get past the frozen ``__setattr__``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from stagectl.core.transforms import ptr_deg_from_rotation, transform_from_pose

__all__ = [
    "DEFAULT_DISTORTION_MODEL",
    "FRAME_BODY",
    "FRAME_CAMERA",
    "PROTOCOL_FREED",
    "PROTOCOL_OPENTRACKIO",
    "Distortion",
    "ExposureFalloff",
    "GlobalStage",
    "LensEncoders",
    "LensState",
    "MotionLimits",
    "Pose",
    "PtpSync",
    "Rational",
    "RawEncoders",
    "SensorDimensions",
    "SensorResolution",
    "StaticCamera",
    "StaticInfo",
    "StaticLens",
    "StaticTracker",
    "SyncOffsets",
    "Synchronization",
    "Timecode",
    "Timing",
    "TrackerStatus",
    "TrackingSample",
    "Transform",
    "new_distortion",
    "new_exposure_falloff",
    "new_global_stage",
    "new_lens_encoders",
    "new_lens_state",
    "new_pose",
    "new_ptp_sync",
    "new_raw_encoders",
    "new_sensor_dimensions",
    "new_sensor_resolution",
    "new_static_camera",
    "new_static_info",
    "new_static_lens",
    "new_static_tracker",
    "new_sync_offsets",
    "new_synchronization",
    "new_timecode",
    "new_timing",
    "new_tracker_status",
    "new_tracking_sample",
    "new_transform",
    "slots_twin",
]

Rational = tuple[int, int]
"""An exact rate or duration ``(numerator, denominator)``, e.g. ``(24000, 1001)`` for 23.976 Hz."""

PROTOCOL_FREED: Final = "FreeD"
PROTOCOL_OPENTRACKIO: Final = "OpenTrackIO"
FRAME_BODY: Final = "body"
FRAME_CAMERA: Final = "camera"
DEFAULT_DISTORTION_MODEL: Final = "Brown-Conrady D-U"
"""Model of a ``lens.distortion[]`` entry that names none (OpenTrackIO: maps distorted -> undistorted)."""


@dataclass(frozen=True, slots=True)
class Pose:
    """A rigid pose ``T_parent_child`` in the stage conventions.

    ``x, y, z``: metres, position of the child origin in the parent frame (``tracking`` for a tracker sample).
    ``pan, tilt, roll``: degrees, ``R = Rz(pan) @ Rx(tilt) @ Ry(roll)`` (see ``docs/conventions.md``).
    """

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    pan: float = 0.0
    tilt: float = 0.0
    roll: float = 0.0

    def matrix(self) -> np.ndarray:
        """The 4x4 homogeneous ``T_parent_child`` (float64, acts on column vectors, metres)."""
        return transform_from_pose(self.x, self.y, self.z, self.pan, self.tilt, self.roll)

    @classmethod
    def from_matrix(cls, T: np.ndarray) -> Pose:
        """Pose of a rigid 4x4 ``T_parent_child`` (tilt in [-90, 90]; at |tilt| = 90 roll folds into pan)."""
        T = np.asarray(T, dtype=np.float64)
        pan, tilt, roll = ptr_deg_from_rotation(T[:3, :3])
        return cls(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3]), pan=pan, tilt=tilt, roll=roll)


@dataclass(frozen=True, slots=True)
class MotionLimits:
    """How fast a tracked camera can really move: the bounds a :class:`~stagectl.tracking.timeline.Timeline`
    judges samples and prediction by (stage file ``cameras[].motion_limits``; docs/stage-file.md).

    * ``max_speed_m_s``: linear speed, m/s. A sample that would need more to be reached from the last accepted
      one is rejected; a predicted velocity is clamped to it.
    * ``max_accel_m_s2``: linear acceleration, m/s^2: how much the predicted velocity may differ from the one
      before it (a glitch within the speed limit cannot throw the prediction).
    * ``max_angular_speed_deg_s`` / ``max_angular_accel_deg_s2``: the same for the rotation, deg/s and
      deg/s^2 (the angle of the relative rotation, whatever its axis).
    * ``max_distance_m``: farthest plausible position from the tracking origin, m; a sample beyond it is
      rejected outright (FreeD itself cannot say more than 131 m).

    The defaults suit a camera on a crane or a remote head on a stage, with a margin (docs/stage-file.md says
    why each number). Every limit is > 0; ``math.inf`` switches one off.
    """

    max_speed_m_s: float = 10.0
    max_accel_m_s2: float = 30.0
    max_angular_speed_deg_s: float = 360.0
    max_angular_accel_deg_s2: float = 1440.0
    max_distance_m: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("max_speed_m_s", "max_accel_m_s2", "max_angular_speed_deg_s", "max_angular_accel_deg_s2",
                     "max_distance_m"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v <= 0:
                raise ValueError(f"MotionLimits.{name}: expected a number > 0 (inf: no limit), got {v!r}")

    @classmethod
    def unlimited(cls) -> MotionLimits:
        """No limit at all (every sample plausible, prediction unclamped): tests and synthetic data."""
        inf = math.inf
        return cls(max_speed_m_s=inf, max_accel_m_s2=inf, max_angular_speed_deg_s=inf, max_angular_accel_deg_s2=inf,
                   max_distance_m=inf)


@dataclass(frozen=True, slots=True)
class Transform:
    """One entry of OpenTrackIO's ``transforms[]``: a pose of a child frame in its parent, plus optional
    scale.

    ``pose`` is in metres / degrees, OpenTrackIO's pan sign (= stagectl's). ``scale`` is the unitless per-axis
    scale ``(x, y, z)`` that applies to the frames below this one (``None``: not sent, i.e. 1). ``id`` is the
    sender's name for the frame, e.g. ``"Camera"``.
    """

    pose: Pose
    scale: tuple[float, float, float] | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class LensEncoders:
    """Normalised lens encoder positions in 0..1, OpenTrackIO directions.

    ``focus``: 0 = infinity, 1 = closest; ``iris``: 0 = open, 1 = closed; ``zoom``: 0 = wide, 1 = tele.
    """

    focus: float | None = None
    iris: float | None = None
    zoom: float | None = None


@dataclass(frozen=True, slots=True)
class RawEncoders:
    """Raw integer encoder counts before homing / ranging (OpenTrackIO ``rawEncoders``, FreeD zoom/focus)."""

    focus: int | None = None
    iris: int | None = None
    zoom: int | None = None


@dataclass(frozen=True, slots=True)
class Distortion:
    """One OpenTrackIO ``lens.distortion[]`` entry.

    Coefficients apply to the image radius in **mm on the sensor** (OpenLensIO convention, not OpenCV's
    normalised coordinates). ``overscan`` is a unitless factor >= 1.
    """

    radial: tuple[float, ...]
    tangential: tuple[float, ...] | None = None
    overscan: float | None = None
    model: str = DEFAULT_DISTORTION_MODEL


@dataclass(frozen=True, slots=True)
class ExposureFalloff:
    """Vignetting coefficients ``a1`` (required), ``a2``, ``a3`` (OpenTrackIO ``lens.exposureFalloff``)."""

    a1: float
    a2: float | None = None
    a3: float | None = None


@dataclass(frozen=True, slots=True)
class LensState:
    """The lens at the sample instant. Every field is optional.

    * ``focal_length_mm``: pinhole focal length, mm (> 0).
    * ``focus_distance_m``: focus distance, m (> 0).
    * ``f_stop``, ``t_stop``: f-number and t-number (> 0).
    * ``entrance_pupil_offset_m``: entrance pupil from the nominal image plane, m, positive toward the subject
      (``T_camera_pupil = translate(0, e, 0)``).
    * ``encoders`` / ``raw_encoders``: normalised / raw encoder positions.
    * ``distortion``: distortion models, in the sender's order.
    * ``distortion_offset_mm``, ``projection_offset_mm``: ``(x, y)`` on the sensor in mm, **as the protocol
      sends them** (OpenTrackIO does not state the y direction; see the OpenTrackIO codec docstring).
    * ``exposure_falloff``: vignetting coefficients; ``custom``: OpenTrackIO ``lens.custom`` numbers.
    """

    focal_length_mm: float | None = None
    focus_distance_m: float | None = None
    f_stop: float | None = None
    t_stop: float | None = None
    entrance_pupil_offset_m: float | None = None
    encoders: LensEncoders | None = None
    raw_encoders: RawEncoders | None = None
    distortion: tuple[Distortion, ...] | None = None
    distortion_offset_mm: tuple[float, float] | None = None
    projection_offset_mm: tuple[float, float] | None = None
    exposure_falloff: ExposureFalloff | None = None
    custom: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Timecode:
    """SMPTE timecode of the sample: ``hours:minutes:seconds:frames`` at ``rate`` (exact ``(num, den)`` Hz).

    ``sub_frame`` is the zero-based division of the frame (0 when not sent); ``drop_frame`` is the drop-frame
    flag (False when not sent; OpenTrackIO >= 1.0.1 only).
    """

    hours: int
    minutes: int
    seconds: int
    frames: int
    rate: Rational
    sub_frame: int = 0
    drop_frame: bool = False


@dataclass(frozen=True, slots=True)
class SyncOffsets:
    """Offsets in **seconds** between the synchronisation signal and the sample, per data kind."""

    translation_s: float | None = None
    rotation_s: float | None = None
    lens_encoders_s: float | None = None


@dataclass(frozen=True, slots=True)
class PtpSync:
    """PTP details of a synchronisation source (OpenTrackIO ``timing.synchronization.ptp``).

    ``leader_priorities`` is ``(priority1, priority2)``; ``leader_accuracy_s`` and ``mean_path_delay_s`` are
    seconds; ``leader_identity`` is the leader's MAC address as sent.
    """

    profile: str
    domain: int
    leader_identity: str
    leader_priorities: tuple[int, int]
    leader_accuracy_s: float
    mean_path_delay_s: float
    leader_time_source: str | None = None
    vlan: int | None = None


@dataclass(frozen=True, slots=True)
class Synchronization:
    """How the tracker is synchronised for this sample.

    ``source`` is one of ``genlock``, ``videoIn``, ``ptp``, ``ntp``; ``frequency`` the sync signal rate
    ``(num, den)`` Hz.
    """

    locked: bool
    source: str
    frequency: Rational | None = None
    present: bool | None = None
    offsets: SyncOffsets | None = None
    ptp: PtpSync | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    """Timing of a sample.

    * ``mode``: ``"internal"`` (the sample carries its own PTP time) or ``"external"`` (the transport does).
    * ``sample_timestamp_ns``: capture instant, integer ns on the source's PTP clock (clock ``ptp``).
    * ``recorded_timestamp_ns``: recording instant, integer ns, same clock.
    * ``sample_rate``: ``(num, den)`` Hz; ``sequence_number``: uint32 incremented per sample.
    """

    mode: str | None = None
    sample_timestamp_ns: int | None = None
    recorded_timestamp_ns: int | None = None
    sample_rate: Rational | None = None
    sequence_number: int | None = None
    timecode: Timecode | None = None
    synchronization: Synchronization | None = None


@dataclass(frozen=True, slots=True)
class TrackerStatus:
    """Free-text tracker state (OpenTrackIO ``tracker``)."""

    notes: str | None = None
    recording: bool | None = None
    slate: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class GlobalStage:
    """Stage origin in global ENU (``e, n, u`` m) and geodetic (``lat0, lon0`` degrees, ``h0`` m) terms."""

    e: float
    n: float
    u: float
    lat0: float
    lon0: float
    h0: float


@dataclass(frozen=True, slots=True)
class SensorDimensions:
    """Active sensor area in millimetres."""

    width_mm: float
    height_mm: float


@dataclass(frozen=True, slots=True)
class SensorResolution:
    """Active sensor area in photosites (pixels)."""

    width_px: int
    height_px: int


@dataclass(frozen=True, slots=True)
class StaticCamera:
    """Camera part of the OpenTrackIO ``static`` block. ``shutter_angle_deg`` in (0, 360]."""

    capture_frame_rate: Rational | None = None
    active_sensor_physical_dimensions: SensorDimensions | None = None
    active_sensor_resolution: SensorResolution | None = None
    make: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    label: str | None = None
    anamorphic_squeeze: Rational | None = None
    iso_speed: int | None = None
    fdl_link: str | None = None
    shutter_angle_deg: float | None = None


@dataclass(frozen=True, slots=True)
class StaticLens:
    """Lens part of the OpenTrackIO ``static`` block. Overscan maxima are factors >= 1; focal length in mm."""

    distortion_overscan_max: float | None = None
    undistortion_overscan_max: float | None = None
    make: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    nominal_focal_length_mm: float | None = None
    calibration_history: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class StaticTracker:
    """Tracker part of the OpenTrackIO ``static`` block."""

    make: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True, slots=True)
class StaticInfo:
    """OpenTrackIO ``static`` block (sent every couple of seconds). ``duration`` is ``(num, den)`` seconds."""

    duration: Rational | None = None
    camera: StaticCamera | None = None
    lens: StaticLens | None = None
    tracker: StaticTracker | None = None


@dataclass(frozen=True, slots=True)
class TrackingSample:
    """One tracking sample from any protocol, in stagectl units and frames.

    * ``protocol``: ``"FreeD"`` or ``"OpenTrackIO"``; ``protocol_version``: ``(major, minor, patch)`` when
      sent.
    * ``pose``: ``T_tracking_<pose_frame>`` (metres, degrees, stage conventions); ``pose_frame`` is
      ``"body"`` for FreeD (the stage's tracker offset applies) and ``"camera"`` for OpenTrackIO.
    * ``transforms``: OpenTrackIO's individual transforms in list order (``pose`` is their composition).
    * ``camera_id``: FreeD camera ID (0xFF = all); ``source_number``, ``source_id``, ``sample_id``,
      ``related_sample_ids``: OpenTrackIO identifiers (``urn:uuid:`` strings).
    * ``raw``: protocol-specific values with no typed home -- for OpenTrackIO the unknown top-level keys (e.g.
      ``custom``), for FreeD ``{"spare": int}`` plus what an encoder profile derived from it. Treat as
      read-only.
    """

    protocol: str
    protocol_version: tuple[int, int, int] | None = None
    pose: Pose | None = None
    pose_frame: str = FRAME_CAMERA
    transforms: tuple[Transform, ...] | None = None
    lens: LensState | None = None
    timing: Timing | None = None
    tracker: TrackerStatus | None = None
    static: StaticInfo | None = None
    global_stage: GlobalStage | None = None
    camera_id: int | None = None
    source_number: int | None = None
    source_id: str | None = None
    sample_id: str | None = None
    related_sample_ids: tuple[str, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False)


# ------------------------------------------------------------------------------------------------------------
# Builders for the codecs' per-packet path
# ------------------------------------------------------------------------------------------------------------
#
# The generated ``__init__`` of a frozen dataclass stores every field with ``object.__setattr__`` (to get past
# the frozen ``__setattr__``): the four objects of a FreeD sample (pose, raw encoders, lens, sample) take 4.7 us
# that way and 1.0 us with the builders below (timeit on the 2-core bench machine), where the whole FreeD decode
# takes 2.4 us (``python -m bench tracking``). The ``new_*`` builders fill an instance of a plain class with the
# same ``__slots__`` (:func:`slots_twin`) with plain slot stores, then make it an instance of the real class with
# one ``__class__`` assignment, which CPython allows because the two memory layouts are identical. Each takes
# the class's fields by name, with the class's defaults, and returns exactly what the class's keyword
# constructor returns (same class, equal, same hash, pickles alike; tests/test_sample_builders.py checks every
# builder). Codecs pass the fields by keyword, values they have already validated; everyone else uses the
# classes themselves.

_new = object.__new__


def slots_twin(cls: type) -> type:
    """A plain class with the ``__slots__`` of the frozen slotted dataclass ``cls``, for a ``new_*`` builder
    (see above). Refuses a class the trick would not suit: not frozen, not slotted, not based on ``object``, or
    checking its values in ``__post_init__`` (a builder would skip the check)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or cls.__base__ is not object:
        raise TypeError(f"slots_twin: {cls.__qualname__} is not a frozen slotted dataclass based on object")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"slots_twin: {cls.__qualname__} checks its values in __post_init__")
    return type(f"_{cls.__name__}Slots", (), {"__slots__": cls.__slots__, "__module__": cls.__module__})


_PoseSlots = slots_twin(Pose)
_TransformSlots = slots_twin(Transform)
_LensEncodersSlots = slots_twin(LensEncoders)
_RawEncodersSlots = slots_twin(RawEncoders)
_DistortionSlots = slots_twin(Distortion)
_ExposureFalloffSlots = slots_twin(ExposureFalloff)
_LensStateSlots = slots_twin(LensState)
_TimecodeSlots = slots_twin(Timecode)
_SyncOffsetsSlots = slots_twin(SyncOffsets)
_PtpSyncSlots = slots_twin(PtpSync)
_SynchronizationSlots = slots_twin(Synchronization)
_TimingSlots = slots_twin(Timing)
_TrackerStatusSlots = slots_twin(TrackerStatus)
_GlobalStageSlots = slots_twin(GlobalStage)
_SensorDimensionsSlots = slots_twin(SensorDimensions)
_SensorResolutionSlots = slots_twin(SensorResolution)
_StaticCameraSlots = slots_twin(StaticCamera)
_StaticLensSlots = slots_twin(StaticLens)
_StaticTrackerSlots = slots_twin(StaticTracker)
_StaticInfoSlots = slots_twin(StaticInfo)
_TrackingSampleSlots = slots_twin(TrackingSample)


def new_pose(
    x: float = 0.0, y: float = 0.0, z: float = 0.0, pan: float = 0.0, tilt: float = 0.0, roll: float = 0.0
) -> Pose:
    """:class:`Pose` built for the per-packet path (see "Builders" above)."""
    o = _new(_PoseSlots)
    o.x = x
    o.y = y
    o.z = z
    o.pan = pan
    o.tilt = tilt
    o.roll = roll
    o.__class__ = Pose
    return o


def new_transform(
    pose: Pose, scale: tuple[float, float, float] | None = None, id: str | None = None  # noqa: A002
) -> Transform:
    """:class:`Transform` built for the per-packet path."""
    o = _new(_TransformSlots)
    o.pose = pose
    o.scale = scale
    o.id = id
    o.__class__ = Transform
    return o


def new_lens_encoders(
    focus: float | None = None, iris: float | None = None, zoom: float | None = None
) -> LensEncoders:
    """:class:`LensEncoders` built for the per-packet path."""
    o = _new(_LensEncodersSlots)
    o.focus = focus
    o.iris = iris
    o.zoom = zoom
    o.__class__ = LensEncoders
    return o


def new_raw_encoders(focus: int | None = None, iris: int | None = None, zoom: int | None = None) -> RawEncoders:
    """:class:`RawEncoders` built for the per-packet path."""
    o = _new(_RawEncodersSlots)
    o.focus = focus
    o.iris = iris
    o.zoom = zoom
    o.__class__ = RawEncoders
    return o


def new_distortion(
    radial: tuple[float, ...],
    tangential: tuple[float, ...] | None = None,
    overscan: float | None = None,
    model: str = DEFAULT_DISTORTION_MODEL,
) -> Distortion:
    """:class:`Distortion` built for the per-packet path."""
    o = _new(_DistortionSlots)
    o.radial = radial
    o.tangential = tangential
    o.overscan = overscan
    o.model = model
    o.__class__ = Distortion
    return o


def new_exposure_falloff(a1: float, a2: float | None = None, a3: float | None = None) -> ExposureFalloff:
    """:class:`ExposureFalloff` built for the per-packet path."""
    o = _new(_ExposureFalloffSlots)
    o.a1 = a1
    o.a2 = a2
    o.a3 = a3
    o.__class__ = ExposureFalloff
    return o


def new_lens_state(
    focal_length_mm: float | None = None,
    focus_distance_m: float | None = None,
    f_stop: float | None = None,
    t_stop: float | None = None,
    entrance_pupil_offset_m: float | None = None,
    encoders: LensEncoders | None = None,
    raw_encoders: RawEncoders | None = None,
    distortion: tuple[Distortion, ...] | None = None,
    distortion_offset_mm: tuple[float, float] | None = None,
    projection_offset_mm: tuple[float, float] | None = None,
    exposure_falloff: ExposureFalloff | None = None,
    custom: tuple[float, ...] | None = None,
) -> LensState:
    """:class:`LensState` built for the per-packet path."""
    o = _new(_LensStateSlots)
    o.focal_length_mm = focal_length_mm
    o.focus_distance_m = focus_distance_m
    o.f_stop = f_stop
    o.t_stop = t_stop
    o.entrance_pupil_offset_m = entrance_pupil_offset_m
    o.encoders = encoders
    o.raw_encoders = raw_encoders
    o.distortion = distortion
    o.distortion_offset_mm = distortion_offset_mm
    o.projection_offset_mm = projection_offset_mm
    o.exposure_falloff = exposure_falloff
    o.custom = custom
    o.__class__ = LensState
    return o


def new_timecode(
    hours: int,
    minutes: int,
    seconds: int,
    frames: int,
    rate: Rational,
    sub_frame: int = 0,
    drop_frame: bool = False,
) -> Timecode:
    """:class:`Timecode` built for the per-packet path."""
    o = _new(_TimecodeSlots)
    o.hours = hours
    o.minutes = minutes
    o.seconds = seconds
    o.frames = frames
    o.rate = rate
    o.sub_frame = sub_frame
    o.drop_frame = drop_frame
    o.__class__ = Timecode
    return o


def new_sync_offsets(
    translation_s: float | None = None, rotation_s: float | None = None, lens_encoders_s: float | None = None
) -> SyncOffsets:
    """:class:`SyncOffsets` built for the per-packet path."""
    o = _new(_SyncOffsetsSlots)
    o.translation_s = translation_s
    o.rotation_s = rotation_s
    o.lens_encoders_s = lens_encoders_s
    o.__class__ = SyncOffsets
    return o


def new_ptp_sync(
    profile: str,
    domain: int,
    leader_identity: str,
    leader_priorities: tuple[int, int],
    leader_accuracy_s: float,
    mean_path_delay_s: float,
    leader_time_source: str | None = None,
    vlan: int | None = None,
) -> PtpSync:
    """:class:`PtpSync` built for the per-packet path."""
    o = _new(_PtpSyncSlots)
    o.profile = profile
    o.domain = domain
    o.leader_identity = leader_identity
    o.leader_priorities = leader_priorities
    o.leader_accuracy_s = leader_accuracy_s
    o.mean_path_delay_s = mean_path_delay_s
    o.leader_time_source = leader_time_source
    o.vlan = vlan
    o.__class__ = PtpSync
    return o


def new_synchronization(
    locked: bool,
    source: str,
    frequency: Rational | None = None,
    present: bool | None = None,
    offsets: SyncOffsets | None = None,
    ptp: PtpSync | None = None,
) -> Synchronization:
    """:class:`Synchronization` built for the per-packet path."""
    o = _new(_SynchronizationSlots)
    o.locked = locked
    o.source = source
    o.frequency = frequency
    o.present = present
    o.offsets = offsets
    o.ptp = ptp
    o.__class__ = Synchronization
    return o


def new_timing(
    mode: str | None = None,
    sample_timestamp_ns: int | None = None,
    recorded_timestamp_ns: int | None = None,
    sample_rate: Rational | None = None,
    sequence_number: int | None = None,
    timecode: Timecode | None = None,
    synchronization: Synchronization | None = None,
) -> Timing:
    """:class:`Timing` built for the per-packet path."""
    o = _new(_TimingSlots)
    o.mode = mode
    o.sample_timestamp_ns = sample_timestamp_ns
    o.recorded_timestamp_ns = recorded_timestamp_ns
    o.sample_rate = sample_rate
    o.sequence_number = sequence_number
    o.timecode = timecode
    o.synchronization = synchronization
    o.__class__ = Timing
    return o


def new_tracker_status(
    notes: str | None = None, recording: bool | None = None, slate: str | None = None, status: str | None = None
) -> TrackerStatus:
    """:class:`TrackerStatus` built for the per-packet path."""
    o = _new(_TrackerStatusSlots)
    o.notes = notes
    o.recording = recording
    o.slate = slate
    o.status = status
    o.__class__ = TrackerStatus
    return o


def new_global_stage(e: float, n: float, u: float, lat0: float, lon0: float, h0: float) -> GlobalStage:
    """:class:`GlobalStage` built for the per-packet path."""
    o = _new(_GlobalStageSlots)
    o.e = e
    o.n = n
    o.u = u
    o.lat0 = lat0
    o.lon0 = lon0
    o.h0 = h0
    o.__class__ = GlobalStage
    return o


def new_sensor_dimensions(width_mm: float, height_mm: float) -> SensorDimensions:
    """:class:`SensorDimensions` built for the per-packet path."""
    o = _new(_SensorDimensionsSlots)
    o.width_mm = width_mm
    o.height_mm = height_mm
    o.__class__ = SensorDimensions
    return o


def new_sensor_resolution(width_px: int, height_px: int) -> SensorResolution:
    """:class:`SensorResolution` built for the per-packet path."""
    o = _new(_SensorResolutionSlots)
    o.width_px = width_px
    o.height_px = height_px
    o.__class__ = SensorResolution
    return o


def new_static_camera(
    capture_frame_rate: Rational | None = None,
    active_sensor_physical_dimensions: SensorDimensions | None = None,
    active_sensor_resolution: SensorResolution | None = None,
    make: str | None = None,
    model: str | None = None,
    serial_number: str | None = None,
    firmware_version: str | None = None,
    label: str | None = None,
    anamorphic_squeeze: Rational | None = None,
    iso_speed: int | None = None,
    fdl_link: str | None = None,
    shutter_angle_deg: float | None = None,
) -> StaticCamera:
    """:class:`StaticCamera` built for the per-packet path."""
    o = _new(_StaticCameraSlots)
    o.capture_frame_rate = capture_frame_rate
    o.active_sensor_physical_dimensions = active_sensor_physical_dimensions
    o.active_sensor_resolution = active_sensor_resolution
    o.make = make
    o.model = model
    o.serial_number = serial_number
    o.firmware_version = firmware_version
    o.label = label
    o.anamorphic_squeeze = anamorphic_squeeze
    o.iso_speed = iso_speed
    o.fdl_link = fdl_link
    o.shutter_angle_deg = shutter_angle_deg
    o.__class__ = StaticCamera
    return o


def new_static_lens(
    distortion_overscan_max: float | None = None,
    undistortion_overscan_max: float | None = None,
    make: str | None = None,
    model: str | None = None,
    serial_number: str | None = None,
    firmware_version: str | None = None,
    nominal_focal_length_mm: float | None = None,
    calibration_history: tuple[str, ...] | None = None,
) -> StaticLens:
    """:class:`StaticLens` built for the per-packet path."""
    o = _new(_StaticLensSlots)
    o.distortion_overscan_max = distortion_overscan_max
    o.undistortion_overscan_max = undistortion_overscan_max
    o.make = make
    o.model = model
    o.serial_number = serial_number
    o.firmware_version = firmware_version
    o.nominal_focal_length_mm = nominal_focal_length_mm
    o.calibration_history = calibration_history
    o.__class__ = StaticLens
    return o


def new_static_tracker(
    make: str | None = None,
    model: str | None = None,
    serial_number: str | None = None,
    firmware_version: str | None = None,
) -> StaticTracker:
    """:class:`StaticTracker` built for the per-packet path."""
    o = _new(_StaticTrackerSlots)
    o.make = make
    o.model = model
    o.serial_number = serial_number
    o.firmware_version = firmware_version
    o.__class__ = StaticTracker
    return o


def new_static_info(
    duration: Rational | None = None,
    camera: StaticCamera | None = None,
    lens: StaticLens | None = None,
    tracker: StaticTracker | None = None,
) -> StaticInfo:
    """:class:`StaticInfo` built for the per-packet path."""
    o = _new(_StaticInfoSlots)
    o.duration = duration
    o.camera = camera
    o.lens = lens
    o.tracker = tracker
    o.__class__ = StaticInfo
    return o


def new_tracking_sample(
    protocol: str,
    protocol_version: tuple[int, int, int] | None = None,
    pose: Pose | None = None,
    pose_frame: str = FRAME_CAMERA,
    transforms: tuple[Transform, ...] | None = None,
    lens: LensState | None = None,
    timing: Timing | None = None,
    tracker: TrackerStatus | None = None,
    static: StaticInfo | None = None,
    global_stage: GlobalStage | None = None,
    camera_id: int | None = None,
    source_number: int | None = None,
    source_id: str | None = None,
    sample_id: str | None = None,
    related_sample_ids: tuple[str, ...] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> TrackingSample:
    """:class:`TrackingSample` built for the per-packet path; ``raw`` None: a new empty dict (the class's
    default)."""
    o = _new(_TrackingSampleSlots)
    o.protocol = protocol
    o.protocol_version = protocol_version
    o.pose = pose
    o.pose_frame = pose_frame
    o.transforms = transforms
    o.lens = lens
    o.timing = timing
    o.tracker = tracker
    o.static = static
    o.global_stage = global_stage
    o.camera_id = camera_id
    o.source_number = source_number
    o.source_id = source_id
    o.sample_id = sample_id
    o.related_sample_ids = related_sample_ids
    o.raw = {} if raw is None else raw
    o.__class__ = TrackingSample
    return o
