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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from stagectl.errors import StageError
from stagectl.render.canvas import CanvasLayout, canvas_layouts
from stagectl.render.frustum import (
    FrustumWorkspace,
    compute_camera_projection,
    coverage,
    frustum_matrix,
)
from stagectl.stage.model import Camera, Stage
from stagectl.transforms import transform_from_pose

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
    docs/conventions.md "Camera"), its lens values and sensor size ``(w, h)`` mm."""

    name: str
    T_stage_camera: np.ndarray
    lens: LensValues
    sensor_mm: tuple[float, float]

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.T_stage_camera))) and self.lens.finite()


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

    ``T_stage_camera = T_stage_tracking @ T_tracking_body @ T_body_camera`` (``T_stage_tracking`` identity
    until wall registration exists). The lens file is evaluated at normalised ``(zoom, focus)``; a camera
    without a lens file gets :data:`DEFAULT_FOCAL_MM`, a centred principal point and no pupil offset (its
    ``source`` says so). ``lens`` overrides both.
    """
    cam = _find_camera(stage, camera)
    T = np.asarray(T_tracking_body, dtype=np.float64).reshape(4, 4)
    if T_stage_tracking is not None:
        T = np.asarray(T_stage_tracking, dtype=np.float64).reshape(4, 4) @ T
    T_stage_camera = np.ascontiguousarray(T @ cam.T_body_camera)
    if lens is None:
        if cam.lens_file is not None:
            ev = cam.lens_file.evaluate(float(zoom), float(focus))
            lens = LensValues(
                ev.focal_length_mm, tuple(ev.principal_point_offset_mm), ev.entrance_pupil_offset_m,
                f"lens file {cam.lens_file.name!r} at zoom {zoom:g}, focus {focus:g}",
                float(zoom), float(focus),
            )
        else:
            lens = LensValues(
                DEFAULT_FOCAL_MM, (0.0, 0.0), 0.0,
                f"no lens file: default {DEFAULT_FOCAL_MM:g} mm, centred principal point, no pupil offset",
            )
    return CameraState(cam.name, T_stage_camera, lens, (float(cam.sensor_mm[0]), float(cam.sensor_mm[1])))


def camera_state_from_pose(
    stage: Stage,
    pose: Sequence[float],
    *,
    camera: str | Camera | None = None,
    zoom: float = 0.0,
    focus: float = 0.0,
    lens: LensValues | None = None,
) -> CameraState:
    """:func:`camera_state` for a tracked body pose ``(x, y, z, pan, tilt, roll)`` (metres, degrees) in the
    tracking frame, as FreeD / OpenTrackIO report it."""
    if len(pose) != 6:
        raise PlanError(f"a pose is x, y, z, pan, tilt, roll (6 numbers), got {len(pose)}")
    return camera_state(
        stage, camera, transform_from_pose(*(float(v) for v in pose)), zoom=zoom, focus=focus, lens=lens
    )


# --------------------------------------------------------------------------------------------- flags


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
        ws.update(cam.T_stage_camera, lens.focal_mm, sw, sh, px, py, self.overscan_pct, lens.pupil_offset_m)
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
            overscan_pct=self.overscan_pct,  # type: ignore[arg-type]
            soft_edge=self.soft_edge,
            lens=lens,
            sensor_mm=(float(sw), float(sh)),
            near=self.near,
            far=self.far,
            covered=tuple(ws.wall_covered(i).astype(bool) for i in range(len(self.stage.walls))),
        )

    def plan(
        self, cameras: Sequence[CameraState], flags: OperatorFlags = OperatorFlags(), frame: int = 0
    ) -> FramePlan:
        """The plan of one frame: cameras in composition order (later over earlier)."""
        if len(cameras) > MAX_CAMERAS:
            raise PlanError(f"{len(cameras)} cameras: the composition handles at most {MAX_CAMERAS}")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise PlanError(f"camera names must be unique in a frame, got {names}")
        if flags.freeze_inner and self._last_inner:
            inner = tuple(_frozen(p) for p in self._last_inner)
        else:
            inner = tuple(self.inner_pass(c) for c in cameras)
            self._last_inner = inner
        layers = tuple(range(len(inner))) if flags.inner_enabled else ()
        uniforms = composite_uniforms([inner[i] for i in layers], self.outer)
        outputs = []
        for i, (L, tiles) in enumerate(zip(self.layouts, self.tiles)):
            touched = np.zeros(tiles.count, dtype=bool)
            full = np.zeros(tiles.count, dtype=bool)
            if not flags.blackout and layers and not self.cull_tiles:
                touched[:] = True  # every tile through the full composition (reference / benchmark mode)
            elif not flags.blackout:
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
                blackout=flags.blackout,
                uniforms=uniforms,
                touched=touched,
                full=np.flatnonzero(full & touched),
                blend=np.flatnonzero(touched & ~full),
            ))
        return FramePlan(
            frame=int(frame), inner=inner, outer=self.outer, outputs=tuple(outputs), flags=flags,
            uniforms=uniforms, layouts=self.layouts, tiles=self.tiles,
        )


def _frozen(p: InnerPass) -> InnerPass:
    return replace(p, frozen=True)


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
