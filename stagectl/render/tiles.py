"""Canvas tiles: each output's mapped regions cut into small tiles, so that a frame redraws only the tiles an
inner frustum touches (:func:`classify_tiles`), and the soft-edge weight the composition gives them.

Pixels: canvas and wall raster pixels ``(x, y)``, origin top-left; stage positions in metres; NDC and clip
space are OpenGL's (docs/conventions.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stagectl.render.canvas import CanvasLayout

__all__ = [
    "TILE_PX",
    "TILE_TRIANGLES",
    "CanvasTiles",
    "canvas_tiles",
    "classify_tiles",
    "soft_edge_weight",
    "tiles_in_rect",
]

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


def tiles_in_rect(tiles: CanvasTiles, wall_index: int, rect_px, pad: float = 1.0) -> np.ndarray:
    """(N,) bool: tiles of wall ``wall_index`` whose raster bounding box overlaps ``rect_px`` ``(x0, y0, x1,
    y1)`` (wall raster pixels) widened by ``pad`` pixels (conservative: a tile that may show any of it)."""
    r = tiles.raster_xy
    lo = r.min(axis=1)
    hi = r.max(axis=1)
    x0, y0, x1, y1 = rect_px
    return ((tiles.wall_index == wall_index) & (lo[:, 0] < x1 + pad) & (hi[:, 0] > x0 - pad)
            & (lo[:, 1] < y1 + pad) & (hi[:, 1] > y0 - pad))
