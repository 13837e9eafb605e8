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
and hashing. Codecs on the per-packet path build them through :func:`fast_constructor` instead, which makes the
same instance about three times faster than the generated ``__init__`` (that one pays an
``object.__setattr__`` per field to get past the frozen ``__setattr__``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Final, TypeVar

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
        return cls(float(T[0, 3]), float(T[1, 3]), float(T[2, 3]), pan, tilt, roll)


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
        return cls(inf, inf, inf, inf, inf)


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
# Fast construction (codecs' per-packet path)
# ------------------------------------------------------------------------------------------------------------

_T = TypeVar("_T")
_FAST: dict[type, Callable[..., Any]] = {}


def fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of the frozen slotted dataclass ``cls`` with the generated ``__init__``'s parameters (same
    names, order and defaults, a fresh ``default_factory`` value per instance); hot paths pass every field
    positionally.

    It returns exactly what ``cls(*args)`` returns -- an instance of ``cls`` itself, equal to and hashing like
    the one the generated ``__init__`` builds -- but writes the fields as plain slot stores on an instance of a
    private twin class with the same ``__slots__``, then moves the instance to ``cls`` with one ``__class__``
    assignment (the two layouts are identical, which CPython checks). That skips the frozen ``__setattr__``
    detour of the generated ``__init__`` (one ``object.__setattr__`` call per field): about 3x faster. No
    validation is skipped: these dataclasses have none (a class with ``__post_init__`` is refused). For
    codecs, which pass values they have already validated; everyone else should use the normal constructor.
    """
    made = _FAST.get(cls)
    if made is not None:
        return made
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or cls.__base__ is not object:
        raise TypeError(
            f"fast_constructor: {cls.__qualname__} is not a frozen slotted dataclass based on object"
        )
    if hasattr(cls, "__post_init__") or not all(f.init for f in fields(cls)):
        raise TypeError(f"fast_constructor: {cls.__qualname__} has a __post_init__ or init=False fields")
    names = tuple(f.name for f in fields(cls))
    if tuple(cls.__slots__) != names:
        raise TypeError(
            f"fast_constructor: {cls.__qualname__} slots {cls.__slots__} are not its fields {names}"
        )
    twin = type(f"_{cls.__name__}Builder", (), {"__slots__": names, "__module__": __name__})
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls, "_unset": MISSING}
    args = []
    factories = ""
    for f in fields(cls):
        if f.default is not MISSING:
            namespace[f"_d_{f.name}"] = f.default
            args.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not MISSING:  # as the generated __init__: a fresh value per instance
            namespace[f"_f_{f.name}"] = f.default_factory
            args.append(f"{f.name}=_unset")
            factories += f"    if {f.name} is _unset:\n        {f.name} = _f_{f.name}()\n"
        elif args and "=" in args[-1]:
            raise TypeError(f"fast_constructor: {cls.__qualname__}.{f.name} has no default after defaults")
        else:
            args.append(f.name)
    body = "".join(f"    o.{n} = {n}\n" for n in names)
    src = f"def make({', '.join(args)}):\n{factories}    o = _new(_twin)\n{body}    o.__class__ = _cls\n    return o\n"
    exec(src, namespace)  # noqa: S102 - source built from the dataclass's own field names, as dataclasses does
    made = namespace["make"]
    made.__name__ = made.__qualname__ = f"fast_{cls.__name__}"
    made.__doc__ = (
        f"Fast positional constructor of :class:`{cls.__qualname__}` (see :func:`fast_constructor`)."
    )
    # one instance now: CPython checks that the two layouts match on the first __class__ assignment
    probe = made(*(object() for _ in names))
    if type(probe) is not cls:
        raise TypeError(f"fast_constructor: {cls.__qualname__} could not be built")
    _FAST[cls] = made
    return made
