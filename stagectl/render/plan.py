"""The frame plan: what the renderer draws this frame, as plain data built without OpenGL.

A :class:`FramePlanner` is made once per stage. Every frame it takes each camera's state (pose, lens values)
and the operator flags and returns a :class:`FramePlan`, which the GL backend
(:class:`stagectl.render.renderer.StageRenderer`) executes without further decisions:

* per camera an :class:`InnerPass`: the inner-frustum render from the entrance pupil — ``V``, ``P`` (with
  the stage's overscan), ``VP = P @ V``, the target resolution, the soft edge, the cabinets it covers;
* one :class:`OuterPass`: the scene for the rest of the wall, rendered from the stage's outer viewpoint into
  a **cube atlas** (one square tile per cube face, each face a 90-degree view with a one-texel gutter), only
  the faces some wall can be seen through, and sampled by direction ``stage position - viewpoint``;
* per output an :class:`OutputPass`: the canvas size, which :class:`~stagectl.render.canvas.CanvasLayout`
  to draw (cut into :class:`CanvasTiles`), which tiles the inner frusta touch this frame (only those are
  composited; :func:`classify_tiles`), and the :class:`CompositeUniforms` of the composition.

Frames and units (docs/conventions.md): stage metres, Z up; ``T_a_b`` maps frame b into frame a; matrices are
row-major float64 acting on column vectors (the GL code uploads them transposed); ``V`` maps stage to the GL
eye (x right, y up, looking down -z); clip space and NDC are OpenGL's; lens values in mm (principal point +x
right, +y up on the sensor), the entrance-pupil offset in metres along the optical axis; overscan in percent
per side (left, right, bottom, top); pixels ``(w, h)``. GL viewports are in GL window coordinates (origin
bottom-left, the atlas is never read back, so no row flip happens there).

The planner runs the per-frame CPU maths of each camera with the Numba :class:`FrustumWorkspace` and copies
the results it keeps, so a plan stays valid after the next frame is planned. A camera state with a
non-finite pose or lens value is refused with :class:`PlanError` (the live loop keeps the previous frame).

**Stage features** (:mod:`stagectl.render.features`): ``plan(..., features=FeatureState(...))`` (default: the
planner's ``features``) adds :class:`FeatureUniforms` to the plan (light cards, colour correction, chroma key
and markers as uniform arrays, the shader ``defines`` they need: none when every feature is off, so the
composition is exactly the plain one), and per output a :class:`PatternPass` (a test pattern or the one-frame
white flash, drawn instead of the composition) and a :class:`BurnInPass`. Per-output blackout and the
:class:`~stagectl.core.features.FreezeFrustum` are resolved here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from stagectl.core.camera import CameraState, LensValues, OperatorFlags
from stagectl.core.errors import StageError
from stagectl.core.features import MAX_CARDS, MAX_WALLS, FeatureState, OutputPattern
from stagectl.core.fields import FeatureError
from stagectl.core.transforms import transform_from_pose
from stagectl.render.canvas import CanvasLayout, canvas_layouts
from stagectl.render.frustum import (
    FrustumWorkspace,
    compute_camera_projection,
    coverage,
    frustum_matrix,
)
from stagectl.render.patterns import (
    BURN_IN_CHARS,
    CellAtlas,
    aruco_atlas,
    burn_in_layout,
    burn_in_lines,
    cabinet_id_atlas,
    text_bitmap,
)
from stagectl.stage.model import Camera, Stage

__all__ = [
    "DEFAULT_FOCAL_MM",
    "NEAR_M",
    "FAR_M",
    "MAX_CAMERAS",
    "CUBE_FACES",
    "PlanError",
    "LensValues",
    "CameraState",
    "camera_state",
    "camera_state_from_pose",
    "camera_state_of",
    "stage_camera_transform",
    "OperatorFlags",
    "InnerPass",
    "CubeFace",
    "OuterPass",
    "CompositeUniforms",
    "OutputPass",
    "FramePlan",
    "FramePlanner",
    "TILE_PX",
    "CanvasTiles",
    "canvas_tiles",
    "classify_tiles",
    "composite_uniforms",
    "cube_face_size",
    "build_outer_pass",
    "soft_edge_weight",
    "MAX_BURN_IN",
    "FeatureUniforms",
    "feature_uniforms",
    "PatternPass",
    "BurnInPass",
    "tiles_in_rect",
]

#: Focal length (mm) used for a camera without a lens file (and said so wherever it is used).
DEFAULT_FOCAL_MM = 35.0
#: Near and far planes of every projection the renderer makes (metres).
NEAR_M = 0.05
FAR_M = 1000.0
#: Most cameras (inner frusta) one composition draws: one texture unit each, the outer atlas after them.
MAX_CAMERAS = 4
#: Texels of gutter around each cube face in the outer atlas (so bilinear filtering never crosses faces).
CUBE_GUTTER = 1
#: NDC margin used when deciding which cube faces a wall is seen through (a little more than needed).
_FACE_MARGIN_NDC = 0.02

#: Cube faces: ``(name, forward, up)`` in the stage frame; face ``i`` is sampled for directions whose largest
#: component is axis ``i // 2`` with sign ``+`` for even ``i`` (the composite shader's rule).
CUBE_FACES: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("+x", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    ("-x", (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    ("+y", (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    ("-y", (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    ("+z", (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    ("-z", (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
)
_ATLAS_COLUMNS = 3  # the atlas is 3 x 2 tiles; face i sits at column i % 3, row i // 3 (GL rows, bottom up)


class PlanError(StageError):
    """A frame cannot be planned (non-finite camera state, too many cameras, an unknown camera)."""


# --------------------------------------------------------------------------------------------- camera state


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


# --------------------------------------------------------------------------------------------- passes


@dataclass(frozen=True, eq=False)
class InnerPass:
    """The inner-frustum render of one camera.

    Matrices (4x4 float64): ``V`` stage -> GL eye at the entrance pupil, ``P`` the camera projection with
    overscan, ``VP = P @ V``; ``P_unscanned`` / ``VP_unscanned`` the same without overscan (what the camera
    itself sees). ``resolution`` ``(w, h)`` of the render target; ``soft_edge`` fraction of the frustum's
    half-size blended at its border. ``covered`` per wall (rows, cols) bool: cabinets the frustum (with
    overscan) touches. ``frozen``: the renderer keeps the image it has for this camera.
    """

    camera: str
    resolution: tuple[int, int]
    T_stage_camera: np.ndarray
    T_stage_pupil: np.ndarray
    V: np.ndarray
    P: np.ndarray
    VP: np.ndarray
    P_unscanned: np.ndarray
    VP_unscanned: np.ndarray
    overscan_pct: tuple[float, float, float, float]
    soft_edge: float
    lens: LensValues
    sensor_mm: tuple[float, float]
    near: float
    far: float
    covered: tuple[np.ndarray, ...]
    frozen: bool = False

    @property
    def pupil(self) -> np.ndarray:
        """The entrance pupil (the eye), stage metres."""
        return self.T_stage_pupil[:3, 3].copy()

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.VP)))


@dataclass(frozen=True, eq=False)
class CubeFace:
    """One face of the outer cube atlas.

    ``rotation`` (3, 3) rows ``right, up, forward`` (stage unit vectors); ``VP`` the stage -> clip matrix it
    is rendered with (90 degrees plus the gutter, eye at the viewpoint); ``viewport`` its tile in the atlas,
    GL window coordinates ``(x, y, w, h)``; ``origin`` the GL texel position of the lower-left corner of the
    face's exact 90-degree square (tile corner + gutter).
    """

    index: int
    name: str
    rotation: np.ndarray
    V: np.ndarray
    P: np.ndarray
    VP: np.ndarray
    viewport: tuple[int, int, int, int]
    origin: tuple[float, float]


@dataclass(frozen=True, eq=False)
class OuterPass:
    """The outer frustum: the scene seen from ``viewpoint`` (stage m) into a cube atlas of ``atlas_size``
    (3 x 2 tiles of ``tile`` texels, each ``face_size`` texels of exact face plus :data:`CUBE_GUTTER` on every
    side). ``faces`` are the faces to render (those a wall is seen through); ``all_faces`` all six, for the
    sampling uniforms. ``static``: the content does not change from frame to frame, so the renderer may keep
    the atlas while the viewpoint and face set stay the same."""

    viewpoint: tuple[float, float, float]
    face_size: int
    tile: int
    atlas_size: tuple[int, int]
    faces: tuple[CubeFace, ...]
    all_faces: tuple[CubeFace, ...]
    static: bool = True

    @property
    def key(self) -> tuple:
        """What the atlas content depends on (viewpoint, face size, faces rendered)."""
        return (self.viewpoint, self.face_size, tuple(f.index for f in self.faces))


@dataclass(frozen=True, eq=False)
class CompositeUniforms:
    """Uniforms of the composite program, shared by every output of a frame (float32, ready to upload).

    ``inner_vp`` (n, 4, 4) the inner frusta's ``VP`` (with overscan) in composition order (later over
    earlier); ``inv_soft_edge`` (n,) ``1 / max(soft_edge, 1e-9)``; ``outer_eye`` (3,); ``face_rotation``
    (6, 3, 3) rows right, up, forward; ``face_origin`` (6, 2) GL texels; ``face_size`` texels;
    ``atlas_size`` (w, h) texels.
    """

    inner_vp: np.ndarray
    inv_soft_edge: np.ndarray
    outer_eye: np.ndarray
    face_rotation: np.ndarray
    face_origin: np.ndarray
    face_size: float
    atlas_size: tuple[int, int]

    @property
    def camera_count(self) -> int:
        return int(self.inner_vp.shape[0])


#: Most mappings per output that get a burn-in box (the first ones in stage order).
MAX_BURN_IN = 32
#: Shader defines of the feature variants, by what they change.
OUTER_DEFINES = ("CARDS", "WALL_CC", "WALL_LUT")
INNER_DEFINES = ("CARDS", "INNER_CC", "INNER_LUT", "KEY", "MARKERS")


@dataclass(frozen=True, eq=False)
class FeatureUniforms:
    """The stage features of a frame as composite-shader uniforms (float32, ready to upload; pure data).

    ``defines``: the feature variants' ``#define`` names (empty: every feature off, the plain composition).
    Light cards (``MAX_CARDS`` slots, under-the-frustum cards first): ``card_rect`` (x0, y0, x1, y1) wall
    raster pixels, ``card_color`` (r, g, b linear x intensity, wall index), ``card_inv_feather`` (0: hard
    edge), ``cards_under`` / ``cards_total``; ``cards`` hashable entries ``(wall, rect, rgb, feather, layer)``
    for the outer-canvas cache. Per wall (``MAX_WALLS`` slots) and for the inner frusta: ``*_gain``
    (exposure x white balance), CDL ``*_slope``, ``*_offset``, ``*_power``, ``*_sat``, ``*_cdl`` (1: apply),
    LUT ``*_lut`` (first atlas row, size N, 1: apply, 0), ``*_lut_min``, ``*_lut_inv`` (domain); ``lut_atlas``
    (H, W, 4) float32 row 0 = top (every LUT as :meth:`~stagectl.core.lut.Lut3D.atlas_block`, stacked)
    and ``lut_key``. Chroma key: ``key_color`` linear; markers per wall: ``marker_grid`` (spacing x, y, 0, 0)
    and ``marker_size`` (half size x, y, half thickness x, y) in raster pixels, ``marker_color`` linear.
    ``outer_key``: what the outer-only canvases depend on besides cards (wall colour correction).
    """

    state: FeatureState
    defines: tuple[str, ...]
    cards: tuple
    card_rect: np.ndarray
    card_color: np.ndarray
    card_inv_feather: np.ndarray
    cards_under: int
    cards_total: int
    wall_gain: np.ndarray
    wall_slope: np.ndarray
    wall_offset: np.ndarray
    wall_power: np.ndarray
    wall_sat: np.ndarray
    wall_cdl: np.ndarray
    wall_lut: np.ndarray
    wall_lut_min: np.ndarray
    wall_lut_inv: np.ndarray
    inner_gain: np.ndarray
    inner_slope: np.ndarray
    inner_offset: np.ndarray
    inner_power: np.ndarray
    inner_sat: float
    inner_cdl: float
    inner_lut: np.ndarray
    inner_lut_min: np.ndarray
    inner_lut_inv: np.ndarray
    lut_atlas: np.ndarray | None
    lut_key: tuple
    key_color: np.ndarray
    marker_color: np.ndarray
    marker_grid: np.ndarray
    marker_size: np.ndarray
    outer_key: tuple

    @property
    def active(self) -> bool:
        return bool(self.defines)

    @property
    def key_on(self) -> bool:
        return "KEY" in self.defines

    def defines_for(self, kind: str) -> tuple[str, ...]:
        """The defines a program variant needs: ``"outer"`` (outer only: cards, wall colour), ``"inner"`` (the
        top camera's full-weight tiles), ``"composite"`` (all)."""
        if kind == "outer":
            return tuple(d for d in self.defines if d in OUTER_DEFINES)
        if kind == "inner":
            return tuple(d for d in self.defines if d in INNER_DEFINES)
        return self.defines


@dataclass(frozen=True, eq=False)
class PatternPass:
    """A test pattern (or the white flash) drawn over every mapped pixel of an output instead of the
    composition.

    ``kind`` the program (``solid``, ``checkerboard``, ``color_bars``, ``aruco``, ``cabinet_id``); ``key`` what
    the canvas then holds, for skipping a redraw (None: always draw, e.g. the flash); ``color`` (3,) linear for
    ``solid``; ``squares`` for the checkerboard; ``atlas`` the cells of ``aruco`` / ``cabinet_id``;
    ``wall_info`` (MAX_WALLS, 4) (raster W, H, cabinet pw, ph); ``cell_place`` (MAX_WALLS, 4) (atlas x, y of
    the wall's first cell, offset x, y px) and ``cell_geom`` (MAX_WALLS, 4) (cell w, h texels, scale px per
    texel, 0); ``flash``: this is the one-frame white flash.
    """

    kind: str
    key: tuple | None
    color: np.ndarray
    squares: int
    wall_info: np.ndarray
    atlas: CellAtlas | None = None
    cell_place: np.ndarray | None = None
    cell_geom: np.ndarray | None = None
    flash: bool = False


@dataclass(frozen=True, eq=False)
class BurnInPass:
    """Burn-in text drawn over an output (white on black) in the top-left cabinet of each mapping.

    ``lines`` the text, ``bitmap`` (h, w) uint8 0/1 (row 0 = top, :func:`~stagectl.render.patterns.text_bitmap`
    padded to :data:`~stagectl.render.patterns.BURN_IN_CHARS`); per mapping index (``MAX_BURN_IN`` slots):
    ``boxes`` (raster x, y, w, h: the cabinet; w = 0 for none) and ``place`` (offset x, y px of the text in the
    box, scale px per texel, 0); ``tiles`` the ids of the output's tiles that overlap a box.
    """

    lines: tuple[str, ...]
    bitmap: np.ndarray
    boxes: np.ndarray
    place: np.ndarray
    tiles: np.ndarray


@dataclass(frozen=True, eq=False)
class OutputPass:
    """One output canvas: ``key`` ``"processor/output"``, ``layout_index`` into the planner's layouts and
    tiles, ``canvas`` ``(w, h)`` pixels, ``layers`` the indices of the inner passes composited (in order),
    ``blackout`` (draw nothing: black), ``uniforms``.

    Tiles (ids into ``FramePlan.tiles[layout_index]``): ``touched`` (N,) bool, tiles some inner frustum gives
    weight; ``full`` the touched tiles lying wholly in the top (last) layer's full-weight region (drawn with
    the inner image alone); ``blend`` the other touched tiles (full composition). Untouched tiles show the
    outer image only.
    """

    key: str
    layout_index: int
    canvas: tuple[int, int]
    layers: tuple[int, ...]
    blackout: bool
    uniforms: CompositeUniforms
    touched: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    full: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    blend: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pattern: PatternPass | None = None
    burn_in: BurnInPass | None = None
    #: show the output's colour calibration (False: switched off for A/B, ``FeatureState.uncalibrated``)
    calibrated: bool = True

    @property
    def composes(self) -> bool:
        """True when this output shows the composition (not black, not a pattern)."""
        return not self.blackout and self.pattern is None

    @property
    def top_layer(self) -> int | None:
        return self.layers[-1] if self.layers else None


@dataclass(frozen=True, eq=False)
class FramePlan:
    """Everything the renderer draws for frame ``frame``."""

    frame: int
    inner: tuple[InnerPass, ...]
    outer: OuterPass
    outputs: tuple[OutputPass, ...]
    flags: OperatorFlags
    uniforms: CompositeUniforms
    layouts: tuple[CanvasLayout, ...] = field(repr=False, default=())
    tiles: tuple[CanvasTiles, ...] = field(repr=False, default=())
    features: FeatureUniforms | None = None

    @property
    def inner_needed(self) -> bool:
        """Whether any output shows an inner frustum's image this frame (not when every output is black or a
        pattern, nor under the chroma key)."""
        if self.features is not None and self.features.key_on:
            return False
        return any(o.composes and o.layers for o in self.outputs)

    def inner_for(self, camera: str) -> InnerPass:
        for p in self.inner:
            if p.camera == camera:
                return p
        raise KeyError(camera)


# --------------------------------------------------------------------------------------------- canvas tiles


#: Edge of the canvas tiles (wall raster pixels) the composition is split into, so that each frame redraws
#: only the tiles an inner frustum touches.
TILE_PX = 64
#: Corner order of a tile (as :data:`stagectl.render.canvas.QUAD_CORNERS`) and its two triangles.
TILE_TRIANGLES = np.array([0, 1, 2, 0, 2, 3], dtype=np.uint32)


@dataclass(frozen=True, eq=False)
class CanvasTiles:
    """An output's mapped regions cut into tiles of at most ``tile_px`` x ``tile_px`` wall raster pixels.

    Each :class:`~stagectl.render.canvas.CanvasLayout` quad (a mapping's piece of one facet) is split along
    raster x and y; inside a quad canvas, raster and stage positions are affine in one another, so each tile
    corner is exact. Arrays, one row per tile ``t`` and corner ``c`` (top-left, top-right, bottom-right,
    bottom-left in the raster): ``canvas_xy`` (N, 4, 2) canvas pixels, ``raster_xy`` (N, 4, 2) raster pixels,
    ``stage_xyz`` (N, 4, 3) stage metres, ``wall_index`` (N,), ``mapping_index`` (N,).
    """

    key: str
    canvas: tuple[int, int]
    tile_px: int
    canvas_xy: np.ndarray
    raster_xy: np.ndarray
    stage_xyz: np.ndarray
    wall_index: np.ndarray
    mapping_index: np.ndarray

    @property
    def count(self) -> int:
        return int(self.wall_index.shape[0])

    def vertices(self) -> np.ndarray:
        """(N * 4, 9) float32: canvas x, y (px), stage x, y, z (m), raster x, y (px), wall, mapping index."""
        n = self.count
        out = np.empty((n, 4, 9), dtype=np.float64)
        out[:, :, 0:2] = self.canvas_xy
        out[:, :, 2:5] = self.stage_xyz
        out[:, :, 5:7] = self.raster_xy
        out[:, :, 7] = self.wall_index[:, None]
        out[:, :, 8] = self.mapping_index[:, None]
        return out.reshape(n * 4, 9).astype(np.float32)

    @staticmethod
    def indices(tiles: np.ndarray) -> np.ndarray:
        """uint32 element indices (6 per tile, two triangles) of tile ids into :meth:`vertices`."""
        t = np.asarray(tiles, dtype=np.uint32).reshape(-1, 1)
        return (t * 4 + TILE_TRIANGLES[None, :]).ravel()


def _cuts(a: float, b: float, step: int) -> np.ndarray:
    n = max(1, int(math.ceil((b - a) / step - 1e-9)))
    return np.minimum(a + step * np.arange(n + 1, dtype=np.float64), b)


def canvas_tiles(layout: CanvasLayout, tile_px: int = TILE_PX) -> CanvasTiles:
    """Cut ``layout``'s quads into tiles of at most ``tile_px`` raster pixels a side (CanvasTiles)."""
    cxy, rxy, sxyz, widx, midx = [], [], [], [], []
    for q in range(layout.quad_count):
        r = layout.raster_xy[q]
        x0, y0 = r[0]
        x1, y1 = r[2]
        # affine in the raster: value(x, y) = v_tl + (x - x0) * dx + (y - y0) * dy
        dxs = (x1 - x0) or 1.0
        dys = (y1 - y0) or 1.0
        per = []
        for arr in (layout.canvas_xy[q], layout.raster_xy[q], layout.stage_xyz[q]):
            per.append((arr[0], (arr[1] - arr[0]) / dxs, (arr[3] - arr[0]) / dys))
        xs = _cuts(x0, x1, tile_px)
        ys = _cuts(y0, y1, tile_px)
        gx, gy = np.meshgrid(xs, ys)  # (ny + 1, nx + 1)
        ox = gx - x0
        oy = gy - y0
        grids = [v0 + ox[..., None] * dx + oy[..., None] * dy for v0, dx, dy in per]
        for g, out in zip(grids, (cxy, rxy, sxyz)):
            tl, tr, br, bl = g[:-1, :-1], g[:-1, 1:], g[1:, 1:], g[1:, :-1]
            out.append(np.stack([tl, tr, br, bl], axis=2).reshape(-1, 4, g.shape[-1]))
        n = (len(ys) - 1) * (len(xs) - 1)
        widx.append(np.full(n, layout.wall_index[q], dtype=np.int64))
        midx.append(np.full(n, layout.mapping_index[q], dtype=np.int64))
    if not cxy:
        empty2, empty3 = np.zeros((0, 4, 2)), np.zeros((0, 4, 3))
        return CanvasTiles(layout.key, tuple(layout.canvas), tile_px, empty2, empty2.copy(), empty3,
                           np.zeros(0, np.int64), np.zeros(0, np.int64))
    return CanvasTiles(
        key=layout.key,
        canvas=(int(layout.canvas[0]), int(layout.canvas[1])),
        tile_px=int(tile_px),
        canvas_xy=np.concatenate(cxy),
        raster_xy=np.concatenate(rxy),
        stage_xyz=np.concatenate(sxyz),
        wall_index=np.concatenate(widx),
        mapping_index=np.concatenate(midx),
    )


def classify_tiles(corners_h: np.ndarray, VP: np.ndarray, soft_edge: float,
                   margin: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Which tiles an inner frustum touches, and which lie wholly in its full-weight region.

    ``corners_h`` (4, N * 4) homogeneous stage positions of the tile corners (4 per tile, in order). A planar
    tile (convex, affine ``w``) gets **no** weight when all its corners are behind the eye (``w <= W_EPS``) or
    all are in front and beyond the same side of the NDC square; it is **full** (weight 1 everywhere) when all
    corners are in front with ``d = 1 - max(|x|, |y|) >= soft_edge + margin`` (the full-weight region is a
    convex square in NDC). Returns ``(touched (N,) bool, full (N,) bool)``; conservative: a tile that is not
    provably untouched counts as touched.
    """
    clip = VP @ corners_h  # (4, M)
    w = clip[3].reshape(-1, 4)
    front = w > 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (clip[0] / clip[3]).reshape(-1, 4)
        y = (clip[1] / clip[3]).reshape(-1, 4)
    all_front = front.all(axis=1)
    beyond = (x > 1.0).all(axis=1) | (x < -1.0).all(axis=1) | (y > 1.0).all(axis=1) | (y < -1.0).all(axis=1)
    untouched = (~front).all(axis=1) | (all_front & beyond)
    d = 1.0 - np.maximum(np.abs(x), np.abs(y))
    full = all_front & (np.where(front, d, -np.inf) >= soft_edge + margin).all(axis=1)
    return ~untouched, full


# --------------------------------------------------------------------------------------------- helpers


def soft_edge_weight(ndc_xy: np.ndarray, w: np.ndarray, soft_edge: float) -> np.ndarray:
    """The inner frustum's weight at points with NDC ``(x, y)`` and ``w_clip`` (numpy twin of the shader).

    ``d = 1 - max(|x|, |y|)`` (= ``1 - max(|2u - 1|, |2v - 1|)``: 1 at the centre, 0 on the border, negative
    outside), ``a = clamp(d / soft_edge, 0, 1)``, weight ``= a^2 (3 - 2a)`` (smoothstep) for points in front
    of the eye (``w > W_EPS``), 0 behind. ``soft_edge = 0`` gives a hard edge.
    """
    ndc_xy = np.asarray(ndc_xy, dtype=np.float64)
    d = 1.0 - np.max(np.abs(ndc_xy), axis=-1)
    inv = 1.0 / max(float(soft_edge), 1e-9)
    a = np.clip(d * inv, 0.0, 1.0)
    out = a * a * (3.0 - 2.0 * a)
    out = np.where(np.asarray(w) > 1e-6, out, 0.0)
    return np.nan_to_num(out, nan=0.0)


def cube_face_size(outer_resolution: tuple[int, int]) -> int:
    """Face size (texels) of the outer cube atlas for a configured outer resolution ``(w, h)``.

    The configured resolution reads as an equirectangular image (``w`` texels over 360 degrees, ``h`` over
    180), so a 90-degree face gets ``max(w / 4, h / 2)`` texels (at least 16).
    """
    w, h = (int(v) for v in outer_resolution)
    return max(16, int(round(max(w / 4.0, h / 2.0))))


def _face_rotation(forward, up) -> np.ndarray:
    f = np.asarray(forward, dtype=np.float64)
    u = np.asarray(up, dtype=np.float64)
    r = np.cross(f, u)
    return np.array([r, u, f])


def _face_view(rotation: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Stage -> GL eye for a face: GL x = right, y = up, z = -forward, origin at ``eye``."""
    V = np.eye(4)
    R = np.array([rotation[0], rotation[1], -rotation[2]])
    V[:3, :3] = R
    V[:3, 3] = -R @ eye
    return V


def build_outer_pass(stage: Stage, *, face_size: int | None = None, near: float = NEAR_M, far: float = FAR_M,
                     static: bool = True) -> OuterPass:
    """The outer cube atlas for ``stage``: face geometry, tiles, and the faces some wall is seen through.

    A face is needed when any cabinet of any wall is covered by its exact 90-degree frustum (widened by a
    small NDC margin), tested with the frustum core's cabinet coverage (clipped quads, any wall shape).
    """
    eye = np.asarray(stage.render.outer.viewpoint, dtype=np.float64)
    S = int(face_size) if face_size is not None else cube_face_size(stage.render.outer.resolution)
    if S < 4:
        raise PlanError(f"outer cube face size {S} too small")
    tile = S + 2 * CUBE_GUTTER
    gutter_tan = tile / S  # half-extent (tan) of the rendered face, gutter included
    P_exact = np.empty((4, 4))
    frustum_matrix(-near, near, -near, near, near, far, P_exact)
    P_render = np.empty((4, 4))
    g = near * gutter_tan
    frustum_matrix(-g, g, -g, g, near, far, P_render)
    faces = []
    used = []
    for i, (name, fwd, up) in enumerate(CUBE_FACES):
        R = _face_rotation(fwd, up)
        V = _face_view(R, eye)
        col, row = i % _ATLAS_COLUMNS, i // _ATLAS_COLUMNS
        vx, vy = col * tile, row * tile
        face = CubeFace(
            index=i,
            name=name,
            rotation=R,
            V=V,
            P=P_render,
            VP=P_render @ V,
            viewport=(vx, vy, tile, tile),
            origin=(float(vx + CUBE_GUTTER), float(vy + CUBE_GUTTER)),
        )
        faces.append(face)
        VP_exact = P_exact @ V
        for wall in stage.walls:
            g = wall.geometry
            covered, _, _ = coverage(
                VP_exact, g.cabinet_corner_grid(), g.rows, g.cols, margin_ndc=_FACE_MARGIN_NDC
            )
            if covered.any():
                used.append(face)
                break
    atlas = (_ATLAS_COLUMNS * tile, 2 * tile)
    return OuterPass(
        viewpoint=(float(eye[0]), float(eye[1]), float(eye[2])),
        face_size=S,
        tile=tile,
        atlas_size=atlas,
        faces=tuple(used),
        all_faces=tuple(faces),
        static=static,
    )


# --------------------------------------------------------------------------------------------- the planner


class FramePlanner:
    """Builds a :class:`FramePlan` per frame for one stage (pure CPU; no GL).

    ``inner_resolution`` overrides the stage's ``render.inner.resolution`` (tests, previews);
    ``outer_face_size`` the cube face size derived from ``render.outer.resolution``; ``near``/``far`` (m) are
    the planes of every projection. ``outer_static``: the outer content does not change between frames (the
    procedural world), so its atlas and outer-only canvases are kept; False renders them every frame (animated
    content). ``tile_px``: canvas tile size; ``cull_tiles`` False composites every tile fully every frame (a
    reference and benchmark mode). The static parts (layouts, tiles, the outer atlas) are built here, once.
    """

    def __init__(
        self,
        stage: Stage,
        *,
        inner_resolution: tuple[int, int] | None = None,
        outer_face_size: int | None = None,
        near: float = NEAR_M,
        far: float = FAR_M,
        outer_static: bool = True,
        tile_px: int = TILE_PX,
        cull_tiles: bool = True,
        features: FeatureState | None = None,
    ) -> None:
        self.stage = stage
        self.near = float(near)
        self.far = float(far)
        res = inner_resolution if inner_resolution is not None else stage.render.inner.resolution
        self.inner_resolution = (int(res[0]), int(res[1]))
        if min(self.inner_resolution) < 1:
            raise PlanError(f"inner resolution {self.inner_resolution} must be positive")
        self.overscan_pct = tuple(float(v) for v in stage.render.inner.overscan_percent)
        self.soft_edge = float(stage.render.inner.soft_edge)
        self.cull_tiles = bool(cull_tiles)
        self.layouts: tuple[CanvasLayout, ...] = tuple(canvas_layouts(stage))
        self.tiles: tuple[CanvasTiles, ...] = tuple(canvas_tiles(L, tile_px) for L in self.layouts)
        self._corners_h = []
        for t in self.tiles:
            c = t.stage_xyz.reshape(-1, 3)
            self._corners_h.append(np.vstack([c.T, np.ones(c.shape[0])]))
        self.outer = build_outer_pass(
            stage, face_size=outer_face_size, near=self.near, far=self.far, static=outer_static
        )
        self._workspaces: dict[str, FrustumWorkspace] = {}
        self._last_inner: tuple[InnerPass, ...] = ()
        #: the features used when plan() is given none (the stage file's, when the loader reads them)
        self.features: FeatureState = (
            features if features is not None else getattr(stage.render, "features", None) or FeatureState()
        )
        self._fu: tuple[FeatureState, FeatureUniforms] | None = None
        self._atlases: dict[str, CellAtlas] = {}
        self._patterns: dict[tuple, PatternPass] = {}
        self._burn_geom: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._frozen_at: dict[str, InnerPass] = {}  # per camera: the pass a FreezeFrustum keeps
        self._pattern_seen: dict[str, str] = {}  # per output: the pattern kind of the last plan
        self._flash_armed: frozenset[str] | None = None  # outputs to flash in the next plan (empty: all)

    def _workspace(self, name: str) -> FrustumWorkspace:
        ws = self._workspaces.get(name)
        if ws is None:
            ws = self._workspaces[name] = FrustumWorkspace(self.stage.walls, near=self.near, far=self.far)
        return ws

    def inner_pass(self, cam: CameraState) -> InnerPass:
        """The inner pass of one camera state (runs the frustum kernels; copies what it keeps)."""
        if not cam.finite():
            raise PlanError(f"camera {cam.name!r}: non-finite pose or lens values; frame not planned")
        ws = self._workspace(cam.name)
        lens = cam.lens
        px, py = lens.principal_point_mm
        sw, sh = cam.sensor_mm
        overscan = self.overscan_pct if cam.overscan_pct is None else tuple(float(v) for v in cam.overscan_pct)
        ws.update(cam.T_stage_camera, lens.focal_mm, sw, sh, px, py, overscan, lens.pupil_offset_m)
        T_camera_pupil = np.eye(4)
        T_camera_pupil[1, 3] = lens.pupil_offset_m
        P0 = compute_camera_projection(
            lens.focal_mm, sw, sh, px, py, (0.0, 0.0, 0.0, 0.0), self.near, self.far
        )
        V = ws.V.copy()
        return InnerPass(
            camera=cam.name,
            resolution=self.inner_resolution,
            T_stage_camera=np.array(cam.T_stage_camera, dtype=np.float64),
            T_stage_pupil=cam.T_stage_camera @ T_camera_pupil,
            V=V,
            P=ws.P.copy(),
            VP=ws.VP.copy(),
            P_unscanned=P0,
            VP_unscanned=P0 @ V,
            overscan_pct=overscan,  # type: ignore[arg-type]
            soft_edge=self.soft_edge if cam.soft_edge is None else float(cam.soft_edge),
            lens=lens,
            sensor_mm=(float(sw), float(sh)),
            near=self.near,
            far=self.far,
            covered=tuple(ws.wall_covered(i).astype(bool) for i in range(len(self.stage.walls))),
        )

    def trigger_white_flash(self, outputs: Sequence[str] | None = None) -> None:
        """Flash ``outputs`` (keys; None: every output) white in the next planned frame only."""
        keys = frozenset(outputs) if outputs is not None else frozenset()
        unknown = keys - {L.key for L in self.layouts}
        if unknown:
            raise PlanError(f"no output {sorted(unknown)[0]!r}; outputs: {', '.join(L.key for L in self.layouts)}")
        self._flash_armed = keys if self._flash_armed is None or not keys else self._flash_armed | keys

    def plan(
        self,
        cameras: Sequence[CameraState],
        flags: OperatorFlags = OperatorFlags(),
        frame: int = 0,
        features: FeatureState | None = None,
    ) -> FramePlan:
        """The plan of one frame: cameras in composition order (later over earlier); ``features`` (default:
        :attr:`features`) the stage features of this frame."""
        if len(cameras) > MAX_CAMERAS:
            raise PlanError(f"{len(cameras)} cameras: the composition handles at most {MAX_CAMERAS}")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise PlanError(f"camera names must be unique in a frame, got {names}")
        fs = self.features if features is None else features
        fu = self.feature_uniforms(fs)
        freeze = fs.freeze
        if flags.freeze_inner and self._last_inner:
            inner = tuple(_frozen(p) for p in self._last_inner)
        else:
            passes = []
            for c in cameras:
                kept = self._frozen_at.get(c.name) if freeze is not None and freeze.applies(c.name) else None
                if kept is not None:
                    passes.append(replace(kept, frozen=bool(freeze.keep_image)))
                else:
                    p = self.inner_pass(c)
                    self._frozen_at[c.name] = p
                    passes.append(p)
            inner = tuple(passes)
            self._last_inner = inner
        layers = tuple(range(len(inner))) if flags.inner_enabled else ()
        uniforms = composite_uniforms([inner[i] for i in layers], self.outer)
        armed, self._flash_armed = self._flash_armed, None
        outputs = []
        for i, (L, tiles) in enumerate(zip(self.layouts, self.tiles)):
            pat = fs.pattern_of(L.key)
            kind = pat.kind if pat is not None else "none"
            flash = (kind == "white_flash" and self._pattern_seen.get(L.key) != "white_flash") or (
                armed is not None and (not armed or L.key in armed))
            self._pattern_seen[L.key] = kind
            blackout = flags.blackout or L.key in fs.blackout
            pattern = burn = None
            if not blackout:
                if flash:
                    pattern = self._pattern_pass(OutputPattern("solid", (1.0, 1.0, 1.0)), flash=True)
                elif kind not in ("none", "white_flash"):
                    pattern = self._pattern_pass(pat)
                if pat is not None and pat.burn_in:
                    burn = self._burn_in(i, pat, frame)
            touched = np.zeros(tiles.count, dtype=bool)
            full = np.zeros(tiles.count, dtype=bool)
            if blackout or pattern is not None:
                pass
            elif layers and not self.cull_tiles:
                touched[:] = True  # every tile through the full composition (reference / benchmark mode)
            else:
                for k, li in enumerate(layers):
                    t, f = classify_tiles(self._corners_h[i], inner[li].VP, inner[li].soft_edge)
                    touched |= t
                    if k == len(layers) - 1:
                        full = f
            outputs.append(OutputPass(
                key=L.key,
                layout_index=i,
                canvas=(int(L.canvas[0]), int(L.canvas[1])),
                layers=layers,
                blackout=blackout,
                uniforms=uniforms,
                touched=touched,
                full=np.flatnonzero(full & touched),
                blend=np.flatnonzero(touched & ~full),
                pattern=pattern,
                burn_in=burn,
                calibrated=L.key not in fs.uncalibrated,
            ))
        return FramePlan(
            frame=int(frame), inner=inner, outer=self.outer, outputs=tuple(outputs), flags=flags,
            uniforms=uniforms, layouts=self.layouts, tiles=self.tiles, features=fu,
        )

    # ------------------------------------------------------------------ features

    def feature_uniforms(self, fs: FeatureState) -> FeatureUniforms:
        """:func:`feature_uniforms` of ``fs`` for this stage (kept while ``fs`` does not change)."""
        if self._fu is not None and (self._fu[0] is fs or self._fu[0] == fs):
            return self._fu[1]
        fu = feature_uniforms(self.stage, fs, [L.key for L in self.layouts])
        self._fu = (fs, fu)
        return fu

    def _wall_info(self) -> np.ndarray:
        info = np.zeros((MAX_WALLS, 4), dtype=np.float32)
        for w, wall in enumerate(self.stage.walls[:MAX_WALLS]):
            info[w] = (*wall.raster, *wall.cabinet.pixels)
        return info

    def atlas(self, kind: str) -> CellAtlas:
        """The cell atlas of the ``aruco`` or ``cabinet_id`` pattern (built once)."""
        a = self._atlases.get(kind)
        if a is None:
            try:
                a = aruco_atlas(self.stage) if kind == "aruco" else cabinet_id_atlas(self.stage)
            except FeatureError as exc:
                raise PlanError(str(exc)) from None
            self._atlases[kind] = a
        return a

    def _pattern_pass(self, pat: OutputPattern, *, flash: bool = False) -> PatternPass:
        key = (pat.kind, pat.color, pat.squares, flash)
        p = self._patterns.get(key)
        if p is not None:
            return p
        if len(self.stage.walls) > MAX_WALLS:
            raise PlanError(f"test patterns handle at most {MAX_WALLS} walls; the stage has {len(self.stage.walls)}")
        atlas = place = geom = None
        if pat.kind in ("aruco", "cabinet_id"):
            atlas = self.atlas(pat.kind)
            place = np.zeros((MAX_WALLS, 4), dtype=np.float32)
            geom = np.zeros((MAX_WALLS, 4), dtype=np.float32)
            for w in range(len(self.stage.walls)):
                place[w] = (*atlas.origin[w], *atlas.offset[w])
                geom[w] = (*atlas.cell, atlas.scale[w], 0.0)
        p = PatternPass(
            kind=pat.kind, key=None if flash else (pat.kind, pat.color, pat.squares),
            color=np.asarray(pat.color, dtype=np.float32), squares=pat.squares, wall_info=self._wall_info(),
            atlas=atlas, cell_place=place, cell_geom=geom, flash=flash,
        )
        self._patterns[key] = p
        return p

    def _burn_in(self, index: int, pat: OutputPattern, frame: int) -> BurnInPass:
        lines = burn_in_lines(frame, pat.burn_in, self.stage.frame_rate)
        bitmap = text_bitmap(lines, BURN_IN_CHARS)
        gkey = (index, bitmap.shape)
        geom = self._burn_geom.get(gkey)
        if geom is None:
            L, tiles = self.layouts[index], self.tiles[index]
            boxes = np.zeros((MAX_BURN_IN, 4), dtype=np.float32)
            place = np.zeros((MAX_BURN_IN, 4), dtype=np.float32)
            hit = np.zeros(tiles.count, dtype=bool)
            for mi, m in enumerate(L.mappings[:MAX_BURN_IN]):
                wi = L.wall_indices[m.wall]
                pw, ph = self.stage.walls[wi].cabinet.pixels
                x, y = m.rect[0], m.rect[1]
                boxes[mi] = (x, y, pw, ph)
                place[mi] = (*burn_in_layout((pw, ph), bitmap.shape), 0.0)
                hit |= tiles_in_rect(tiles, wi, (x, y, x + pw, y + ph)) & (tiles.mapping_index == mi)
            geom = self._burn_geom[gkey] = (boxes, place, np.flatnonzero(hit))
        return BurnInPass(lines, bitmap, *geom)


def _frozen(p: InnerPass) -> InnerPass:
    return replace(p, frozen=True)


def tiles_in_rect(tiles: CanvasTiles, wall_index: int, rect_px, pad: float = 1.0) -> np.ndarray:
    """(N,) bool: tiles of wall ``wall_index`` whose raster bounding box overlaps ``rect_px`` ``(x0, y0, x1,
    y1)`` (wall raster pixels) widened by ``pad`` pixels (conservative: a tile that may show any of it)."""
    r = tiles.raster_xy
    lo = r.min(axis=1)
    hi = r.max(axis=1)
    x0, y0, x1, y1 = rect_px
    return ((tiles.wall_index == wall_index) & (lo[:, 0] < x1 + pad) & (hi[:, 0] > x0 - pad)
            & (lo[:, 1] < y1 + pad) & (hi[:, 1] > y0 - pad))


def _cc_arrays(cc, lut_rows: dict[str, tuple[int, int]]):
    """(gain, slope, offset, power, sat, cdl on, lut (4,), lut min (3,), lut inv (3,)) of a colour correction
    (identity for None)."""
    if cc is None:
        return ((1.0,) * 3, (1.0,) * 3, (0.0,) * 3, (1.0,) * 3, 1.0, 0.0, (0.0, 2.0, 0.0, 0.0), (0.0,) * 3,
                (1.0,) * 3)
    lut = (0.0, 2.0, 0.0, 0.0)
    lmin, linv = (0.0,) * 3, (1.0,) * 3
    if cc.lut is not None:
        y0, n = lut_rows[cc.lut.digest]
        lut = (float(y0), float(n), 1.0, 0.0)
        lmin = cc.lut.domain_min
        linv = tuple(1.0 / (h - l) for l, h in zip(cc.lut.domain_min, cc.lut.domain_max))
    return (cc.gain, cc.slope, cc.offset, cc.power, cc.saturation, 1.0 if cc.has_cdl else 0.0, lut, lmin, linv)


def feature_uniforms(stage: Stage, fs: FeatureState, outputs: Sequence[str] | None = None) -> FeatureUniforms:
    """The composite shader's feature uniforms for ``fs`` on ``stage`` (pure; see :class:`FeatureUniforms`).

    Raises :class:`PlanError` for a wall or output the stage does not have, or for a per-wall feature on a
    stage of more than ``MAX_WALLS`` walls.
    """
    walls = [w.name for w in stage.walls]
    try:
        fs.check(walls, outputs if outputs is not None else [f"{p.name}/{o.name}" for p, o in stage.outputs()])
    except FeatureError as exc:
        raise PlanError(str(exc)) from None
    index = {n: i for i, n in enumerate(walls)}
    per_wall = bool(fs.wall_color) or (fs.key_enabled and fs.chroma_key.markers is not None)
    if per_wall and len(walls) > MAX_WALLS:
        raise PlanError(f"per-wall colour correction and markers handle at most {MAX_WALLS} walls; the stage has "
                        f"{len(walls)}")
    defines: list[str] = []
    # ---- light cards: under first, then over, each in list order
    cards = [c for c in fs.light_cards if c.layer == "under"] + [c for c in fs.light_cards if c.layer == "over"]
    card_rect = np.zeros((MAX_CARDS, 4), dtype=np.float32)
    card_color = np.zeros((MAX_CARDS, 4), dtype=np.float32)
    card_inv = np.zeros(MAX_CARDS, dtype=np.float32)
    entries = []
    for k, c in enumerate(cards):
        wi = index[c.wall]
        rect = c.raster_rect(stage.walls[wi].raster)
        card_rect[k] = rect
        card_color[k] = (*c.rgb, wi)
        card_inv[k] = 1.0 / c.feather_px if c.feather_px > 0 else 0.0
        entries.append((wi, tuple(float(v) for v in card_rect[k]), tuple(float(v) for v in card_color[k, :3]),
                        float(card_inv[k]), c.layer))
    if cards:
        defines.append("CARDS")
    # ---- colour correction and the LUT atlas
    key_on = fs.key_enabled
    luts = []
    for _, cc in fs.wall_color:
        if cc.lut is not None:
            luts.append(cc.lut)
    if fs.inner_color is not None and fs.inner_color.lut is not None and not key_on:
        luts.append(fs.inner_color.lut)
    lut_rows: dict[str, tuple[int, int]] = {}
    blocks = []
    y = 0
    for lut in luts:
        if lut.digest in lut_rows:
            continue
        lut_rows[lut.digest] = (y, lut.size)
        blocks.append((y, lut.atlas_block()))
        y += lut.size
    lut_atlas = None
    if blocks:
        width = max(b.shape[1] for _, b in blocks)
        lut_atlas = np.zeros((y, width, 4), dtype=np.float32)
        lut_atlas[..., 3] = 1.0
        for y0, b in blocks:
            lut_atlas[y0:y0 + b.shape[0], :b.shape[1], :3] = b
    W = MAX_WALLS
    wall = {k: np.zeros((W, 3), np.float32) for k in ("gain", "slope", "offset", "power", "lut_min", "lut_inv")}
    wall_sat = np.ones(W, np.float32)
    wall_cdl = np.zeros(W, np.float32)
    wall_lut = np.zeros((W, 4), np.float32)
    ident = _cc_arrays(None, lut_rows)
    for w in range(min(len(walls), W)):
        arr = _cc_arrays(fs.color_of(walls[w]), lut_rows)
        for k, v in zip(("gain", "slope", "offset", "power"), arr[:4]):
            wall[k][w] = v
        wall_sat[w], wall_cdl[w], wall_lut[w] = arr[4], arr[5], arr[6]
        wall["lut_min"][w], wall["lut_inv"][w] = arr[7], arr[8]
    for w in range(min(len(walls), W), W):
        for k, v in zip(("gain", "slope", "offset", "power"), ident[:4]):
            wall[k][w] = v
        wall_lut[w] = ident[6]
        wall["lut_inv"][w] = ident[8]
    wall_ccs = [cc for _, cc in fs.wall_color]
    if any(cc.gain != (1.0, 1.0, 1.0) or cc.has_cdl for cc in wall_ccs):
        defines.append("WALL_CC")
    if any(cc.lut is not None for cc in wall_ccs):
        defines.append("WALL_LUT")
    icc = fs.inner_color if not key_on else None
    inner = _cc_arrays(icc, lut_rows)
    if icc is not None and (icc.gain != (1.0, 1.0, 1.0) or icc.has_cdl):
        defines.append("INNER_CC")
    if icc is not None and icc.lut is not None:
        defines.append("INNER_LUT")
    # ---- chroma key and markers
    key_color = np.zeros(3, np.float32)
    marker_color = np.zeros(3, np.float32)
    marker_grid = np.zeros((W, 4), np.float32)
    marker_size = np.zeros((W, 4), np.float32)
    marker_grid[:, :2] = 1.0
    if key_on:
        defines.append("KEY")
        key_color[:] = fs.chroma_key.linear_color
        mk = fs.chroma_key.markers
        if mk is not None:
            defines.append("MARKERS")
            marker_color[:] = mk.linear_color
            for w, wl in enumerate(stage.walls[:W]):
                pitch = (wl.cabinet.size_mm[0] / 1000.0 / wl.cabinet.pixels[0],
                         wl.cabinet.size_mm[1] / 1000.0 / wl.cabinet.pixels[1])
                sp, hs, ht = mk.pixels(pitch)
                marker_grid[w, :2] = sp
                marker_size[w] = (*hs, *ht)
    outer_key = tuple(
        (index[n], cc.gain, cc.slope, cc.offset, cc.power, cc.saturation, cc.lut.digest if cc.lut else None)
        for n, cc in fs.wall_color
    )
    f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
    return FeatureUniforms(
        state=fs,
        defines=tuple(defines),
        cards=tuple(entries),
        card_rect=card_rect,
        card_color=card_color,
        card_inv_feather=card_inv,
        cards_under=sum(1 for c in cards if c.layer == "under"),
        cards_total=len(cards),
        wall_gain=wall["gain"], wall_slope=wall["slope"], wall_offset=wall["offset"], wall_power=wall["power"],
        wall_sat=wall_sat, wall_cdl=wall_cdl, wall_lut=wall_lut, wall_lut_min=wall["lut_min"],
        wall_lut_inv=wall["lut_inv"],
        inner_gain=f32(inner[0]), inner_slope=f32(inner[1]), inner_offset=f32(inner[2]), inner_power=f32(inner[3]),
        inner_sat=float(inner[4]), inner_cdl=float(inner[5]), inner_lut=f32(inner[6]), inner_lut_min=f32(inner[7]),
        inner_lut_inv=f32(inner[8]),
        lut_atlas=lut_atlas,
        lut_key=tuple(lut_rows),
        key_color=key_color,
        marker_color=marker_color,
        marker_grid=marker_grid,
        marker_size=marker_size,
        outer_key=outer_key,
    )


def composite_uniforms(inner: Sequence[InnerPass], outer: OuterPass) -> CompositeUniforms:
    """The composite program's uniforms for inner passes (composition order) and the outer atlas."""
    n = len(inner)
    vp = np.zeros((n, 4, 4), dtype=np.float32)
    inv = np.zeros(n, dtype=np.float32)
    for i, p in enumerate(inner):
        vp[i] = p.VP
        inv[i] = 1.0 / max(p.soft_edge, 1e-9)
    rot = np.stack([f.rotation for f in outer.all_faces]).astype(np.float32)
    origin = np.array([f.origin for f in outer.all_faces], dtype=np.float32)
    return CompositeUniforms(
        inner_vp=vp,
        inv_soft_edge=inv,
        outer_eye=np.asarray(outer.viewpoint, dtype=np.float32),
        face_rotation=rot,
        face_origin=origin,
        face_size=float(outer.face_size),
        atlas_size=outer.atlas_size,
    )
