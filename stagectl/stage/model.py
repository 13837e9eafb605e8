"""The validated, immutable description of a stage (what a ``stages/*.yaml`` file becomes).

Units follow docs/conventions.md: metres and degrees, cabinet sizes in mm, sensor sizes in mm, times in ns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stagectl.lens.lensfile import LensFile
from stagectl.render.features import FeatureState
from stagectl.stage.geometry import WallGeometry
from stagectl.sync.timebase import FrameRate
from stagectl.transforms import transform_from_pose

__all__ = [
    "SCHEMA_VERSION",
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


@dataclass(frozen=True)
class Camera:
    name: str
    tracking: str
    tracker_offset_translation: tuple[float, float, float]  # metres, T_body_camera
    tracker_offset_rotation: tuple[float, float, float]  # pan, tilt, roll degrees
    sensor_mm: tuple[float, float]
    lens: Path | None
    lens_file: LensFile | None = None  # the loaded, validated lens file at ``lens``

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
    genlock: str  # internal | vsync | cluster
    clock: str  # monotonic | system
    phase_offset_ns: int


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
