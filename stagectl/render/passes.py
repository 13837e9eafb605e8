"""The frame plan as plain data: what the renderer draws for one frame, and the limits it is drawn under.

:class:`FramePlan` (built by :class:`stagectl.render.plan.FramePlanner`, executed by
:class:`stagectl.render.renderer.StageRenderer` without further decisions) holds per camera an
:class:`InnerPass`, one :class:`OuterPass` (the cube atlas, :class:`CubeFace` each), per output an
:class:`OutputPass` (with its :class:`PatternPass` and :class:`BurnInPass`), the :class:`CompositeUniforms`
and the :class:`FeatureUniforms`. Everything here is immutable data (numpy arrays, float64 matrices row-major
acting on column vectors; the uniforms float32, ready to upload); :class:`PlanError` is what any step of
planning raises when a frame cannot be planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stagectl.core.camera import LensValues, OperatorFlags
from stagectl.core.errors import StageError
from stagectl.core.features import FeatureState
from stagectl.render.canvas import CanvasLayout
from stagectl.render.patterns import CellAtlas
from stagectl.render.tiles import CanvasTiles

__all__ = [
    "NEAR_M",
    "FAR_M",
    "MAX_CAMERAS",
    "CUBE_GUTTER",
    "MAX_BURN_IN",
    "OUTER_DEFINES",
    "INNER_DEFINES",
    "PlanError",
    "InnerPass",
    "CubeFace",
    "OuterPass",
    "CompositeUniforms",
    "FeatureUniforms",
    "PatternPass",
    "BurnInPass",
    "OutputPass",
    "FramePlan",
]

#: Near and far planes of every projection the renderer makes (metres).
NEAR_M = 0.05
FAR_M = 1000.0
#: Most cameras (inner frusta) one composition draws: one texture unit each, the outer atlas after them.
MAX_CAMERAS = 4
#: Texels of gutter around each cube face in the outer atlas (so bilinear filtering never crosses faces).
CUBE_GUTTER = 1


class PlanError(StageError):
    """A frame cannot be planned (non-finite camera state, too many cameras, an unknown camera)."""


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
    ``atlas_size`` (w, h) texels; ``inner_cameras`` (n,) the cameras' names in composition order (their looks).
    """

    inner_vp: np.ndarray
    inv_soft_edge: np.ndarray
    outer_eye: np.ndarray
    face_rotation: np.ndarray
    face_origin: np.ndarray
    face_size: float
    atlas_size: tuple[int, int]
    inner_cameras: tuple[str, ...] = ()

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
    The grades themselves, for the OpenColorIO grade functions (:mod:`stagectl.render.grades`):
    ``wall_grades`` ``((wall index, ColorCorrection), ...)`` of every wall with a colour correction (even one
    that is the identity now), ``inner_grade`` the inner frusta's (None: none, or the chroma key is on);
    ``wall_looks`` ``((wall index, LookSpec), ...)`` the walls' OCIO looks that are on, ``camera_looks``
    ``((camera name, LookSpec), ...)`` the cameras' (none while the chroma key is on; stage file ``colour:
    walls`` / ``cameras``, docs/colour.md *Looks*).
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
    wall_grades: tuple = ()
    inner_grade: object = None
    wall_looks: tuple = ()
    camera_looks: tuple = ()

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
