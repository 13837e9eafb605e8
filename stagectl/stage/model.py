"""The validated, immutable description of a stage (what a ``stages/*.yaml`` file becomes).

Units follow docs/conventions.md: metres and degrees, cabinet sizes in mm, sensor sizes in mm, times in ns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stagectl.core.features import FeatureState
from stagectl.core.sample import MotionLimits
from stagectl.core.timebase import FrameRate
from stagectl.core.transforms import transform_from_pose
from stagectl.lens.lensfile import LensFile
from stagectl.stage.geometry import WallGeometry

__all__ = [
    "SCHEMA_VERSION",
    "CONSOLE_GROUPS",
    "Cabinet",
    "Wall",
    "Mapping",
    "Output",
    "Processor",
    "TrackingSource",
    "Camera",
    "InnerRender",
    "OuterRender",
    "RenderSettings",
    "SyncSettings",
    "TrackingRegistration",
    "ZmqConsoleSettings",
    "OscAllow",
    "OscConsoleSettings",
    "WebConsoleSettings",
    "ConsolePaths",
    "ConsoleSettings",
    "Stage",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Cabinet:
    size_mm: tuple[float, float]
    pixels: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Wall:
    name: str
    type: str  # flat | curved | ceiling
    cabinet: Cabinet
    cabinets: tuple[int, int]  # columns, rows
    geometry: WallGeometry
    params: dict = field(default_factory=dict)  # the placement as written (centre, rotation, radius, ...)
    line: int | None = None

    @property
    def cabinet_count(self) -> int:
        return self.cabinets[0] * self.cabinets[1]

    @property
    def raster(self) -> tuple[int, int]:
        return self.geometry.width_px, self.geometry.height_px

    @property
    def size_m(self) -> tuple[float, float]:
        """Width along the cabinets (sum of chords for curved walls) and height, metres."""
        return self.cabinets[0] * self.cabinet.size_mm[0] / 1000.0, self.cabinets[1] * self.cabinet.size_mm[1] / 1000.0


@dataclass(frozen=True)
class Mapping:
    """A cabinet-aligned wall raster rectangle placed on a canvas (docs/conventions.md)."""

    wall: str
    rect: tuple[int, int, int, int]  # x, y, w, h in wall raster pixels
    at: tuple[int, int]  # canvas top-left of the placed rectangle
    rotation: int  # clockwise degrees: 0, 90, 180, 270
    line: int | None = None

    @property
    def canvas_size(self) -> tuple[int, int]:
        w, h = self.rect[2], self.rect[3]
        return (h, w) if self.rotation in (90, 270) else (w, h)

    @property
    def canvas_rect(self) -> tuple[int, int, int, int]:
        cw, ch = self.canvas_size
        return self.at[0], self.at[1], cw, ch


@dataclass(frozen=True)
class Output:
    name: str
    canvas: tuple[int, int]
    mappings: tuple[Mapping, ...]
    node: str | None = None

    @property
    def used_pixels(self) -> int:
        return sum(m.rect[2] * m.rect[3] for m in self.mappings)


@dataclass(frozen=True)
class Processor:
    name: str
    kind: str
    outputs: tuple[Output, ...]


@dataclass(frozen=True)
class TrackingSource:
    name: str
    protocol: str  # freed | opentrackio | osc
    bind: str
    port: int
    multicast_group: str | None
    camera_id: int | None  # FreeD camera id / OpenTrackIO source number
    encoder_profile: str
    delay_frames: float
    stale_after_ms: float
    simulate: str | None  # move the built-in simulator plays when no tracker sends
    share_group: bool = False  # multicast only: share the group and port with other programs that also ask to


@dataclass(frozen=True)
class Camera:
    name: str
    tracking: str
    tracker_offset_translation: tuple[float, float, float]  # metres, T_body_camera
    tracker_offset_rotation: tuple[float, float, float]  # pan, tilt, roll degrees
    sensor_mm: tuple[float, float]
    lens: Path | None
    lens_file: LensFile | None = None  # the loaded, validated lens file at ``lens``
    motion_limits: MotionLimits = MotionLimits()  # how fast it can really move: judges samples, bounds prediction

    @property
    def T_body_camera(self) -> np.ndarray:
        return transform_from_pose(*self.tracker_offset_translation, *self.tracker_offset_rotation)


@dataclass(frozen=True)
class AdaptiveOverscanSettings:
    """``render.inner.adaptive_overscan``: size the overscan every frame from latency and camera speed."""

    max_percent: float  # cap per side
    latency_ms: float  # tracking-to-light latency to cover (tracking, render, processor)
    decay_percent_per_s: float  # how fast it may shrink
    wall_distance_m: float  # typical camera-to-wall distance for the sideways-motion term


@dataclass(frozen=True)
class InnerRender:
    resolution: tuple[int, int]
    overscan_percent: tuple[float, float, float, float]  # left, right, bottom, top
    soft_edge: float  # fraction of the inner frustum's half-size blended at its border
    adaptive: AdaptiveOverscanSettings | None = None  # None: the overscan stays as configured


@dataclass(frozen=True)
class OuterRender:
    content: str  # "procedural" or a file path
    resolution: tuple[int, int]
    viewpoint: tuple[float, float, float]  # stage metres


@dataclass(frozen=True)
class RenderSettings:
    inner: InnerRender
    outer: OuterRender
    features: FeatureState = FeatureState()  # chroma key, light cards, colour, patterns from the stage file


@dataclass(frozen=True)
class SyncSettings:
    genlock: str  # internal | vsync
    clock: str  # monotonic | system
    phase_offset_ns: int


@dataclass(frozen=True)
class TrackingRegistration:
    """``tracking_registration``: the tracking frame's pose in the stage frame, i.e. ``T_stage_tracking``
    (``p_stage = T_stage_tracking @ p_tracking``; docs/conventions.md). ``position`` metres, ``rotation`` pan,
    tilt, roll degrees. Written by ``stagectl calibrate wall --apply``; identity until calibrated."""

    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def T_stage_tracking(self) -> np.ndarray:
        return transform_from_pose(*self.position, *self.rotation)

    @property
    def is_identity(self) -> bool:
        return not any(self.position) and not any(self.rotation)


#: Every write group a console command belongs to (the first dotted part of its name; docs/console.md).
CONSOLE_GROUPS = ("card", "color", "pattern", "output", "chroma", "camera", "inner", "content", "record", "stage")


@dataclass(frozen=True)
class ZmqConsoleSettings:
    """``console.zmq``: the ZeroMQ command socket (``port``) and state publisher (``state_port``) on ``bind``;
    ``keys``: the folder of CURVE keys (absolute once loaded; the stage file gives it relative to itself)."""

    bind: str = "127.0.0.1"
    port: int = 41320
    state_port: int = 41321
    keys: Path = Path("keys")


@dataclass(frozen=True)
class OscAllow:
    """One ``console.osc.allow`` entry: datagrams from ``address`` (an IPv4 address, or a network such as
    ``10.0.0.0/24``) are obeyed; they may run the commands of the ``write`` groups, and read-only commands.
    ``reply_port``: where acks go (None: back to the sender's own port)."""

    address: str
    write: tuple[str, ...] = CONSOLE_GROUPS
    reply_port: int | None = None

    def matches(self, ip: str) -> bool:
        import ipaddress

        try:
            return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(self.address, strict=False)
        except ValueError:
            return False


@dataclass(frozen=True)
class OscConsoleSettings:
    """``console.osc``: the OSC command port on ``bind`` and who may send what (``allow``, first match wins)."""

    bind: str = "127.0.0.1"
    port: int = 41330
    allow: tuple[OscAllow, ...] = (OscAllow("127.0.0.1"),)

    def write_groups(self, ip: str) -> frozenset[str] | None:
        """The command groups a datagram from ``ip`` may write (empty: read-only commands only); None: not
        obeyed at all (no ``allow`` entry matches)."""
        for a in self.allow:
            if a.matches(ip):
                return frozenset(a.write)
        return None


@dataclass(frozen=True)
class WebConsoleSettings:
    """``console.web``: the web console's HTTP port on ``bind``."""

    bind: str = "127.0.0.1"
    port: int = 41340


@dataclass(frozen=True)
class ConsolePaths:
    """``console.paths``: the only folders the operator's commands may touch (docs/console.md, "Paths"):
    ``takes`` for ``record.start``, ``content`` for ``content.select``, ``luts`` for ``color.set lut``. A path
    a command gives must resolve (symbolic links followed, ``..`` folded) to something inside its folder.
    Absolute once loaded; a relative folder (a stage built in code) is taken from the stage file's folder."""

    takes: Path = Path("takes")
    content: Path = Path("scenes")
    luts: Path = Path("luts")

    def folder(self, kind: str, stage_dir: Path) -> Path:
        """The absolute folder of ``kind`` (``takes``, ``content`` or ``luts``); relative ones from
        ``stage_dir``."""
        p = Path(getattr(self, kind))
        return p if p.is_absolute() else Path(stage_dir) / p


@dataclass(frozen=True)
class ConsoleSettings:
    """``console``: the operator console's transports, the operator state file (``state_file`` absolute once
    loaded; None: ``<stage dir>/<stage stem>.operator.json``) and the folders commands may touch
    (``paths``)."""

    zmq: ZmqConsoleSettings = ZmqConsoleSettings()
    osc: OscConsoleSettings = OscConsoleSettings()
    web: WebConsoleSettings = WebConsoleSettings()
    state_file: Path | None = None
    paths: ConsolePaths = ConsolePaths()


@dataclass(frozen=True)
class Stage:
    name: str
    path: Path
    frame_rate: FrameRate
    walls: tuple[Wall, ...]
    processors: tuple[Processor, ...]
    cameras: tuple[Camera, ...]
    tracking: tuple[TrackingSource, ...]
    render: RenderSettings
    sync: SyncSettings
    tracking_registration: TrackingRegistration = TrackingRegistration()  # T_stage_tracking (calibrate wall)
    console: ConsoleSettings = ConsoleSettings()  # operator console transports and state file
    colour: object | None = None  # stagectl.color.stagefile.ColourSettings; None: 8-bit sRGB canvases as ever

    @property
    def T_stage_tracking(self) -> np.ndarray:
        """4x4 ``T_stage_tracking``: maps tracking coordinates into the stage (identity until calibrated)."""
        return self.tracking_registration.T_stage_tracking

    def wall(self, name: str) -> Wall:
        for w in self.walls:
            if w.name == name:
                return w
        raise KeyError(name)

    def outputs(self) -> list[tuple[Processor, Output]]:
        return [(p, o) for p in self.processors for o in p.outputs]

    def tracking_source(self, name: str) -> TrackingSource:
        for t in self.tracking:
            if t.name == name:
                return t
        raise KeyError(name)
