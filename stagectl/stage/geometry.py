"""Wall geometry as planar facets (docs/conventions.md, "Walls, facets and the wall raster").

Pure numpy, run at stage load. A wall of any type becomes a :class:`WallGeometry`: a list of facets, each
mapping a continuous raster coordinate ``(x, y)`` (pixels, origin top-left, y down) to stage metres by
``origin[f] + (x - x0[f]) * right[f] + y * down[f]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stagectl.core.transforms import rotation_from_ptr_deg

__all__ = [
    "WallGeometry",
    "flat_wall_geometry",
    "ceiling_geometry",
    "curved_wall_geometry",
    "curved_facet_angle_deg",
]


@dataclass(frozen=True, eq=False)
class WallGeometry:
    """Facets of one wall. Arrays are float64 / int64, C-contiguous, read-only.

    ``x0[f]`` .. ``x1[f]`` (exclusive) are the raster columns of facet ``f``; ``origin[f]`` is the stage
    position of raster point ``(x0[f], 0)``; ``right[f]`` / ``down[f]`` are stage metres per pixel step in +x / +y.
    """

    width_px: int
    height_px: int
    cabinet_px: tuple[int, int]
    cabinet_m: tuple[float, float]
    cols: int
    rows: int
    x0: np.ndarray  # (F,) int64
    x1: np.ndarray  # (F,) int64
    origin: np.ndarray  # (F, 3)
    right: np.ndarray  # (F, 3)
    down: np.ndarray  # (F, 3)

    @property
    def facet_count(self) -> int:
        return int(self.x0.shape[0])

    def facet_of_column(self, x: np.ndarray) -> np.ndarray:
        """Facet index for continuous raster x (clamped to the wall)."""
        idx = np.searchsorted(self.x1, np.asarray(x, dtype=np.float64), side="right")
        return np.clip(idx, 0, self.facet_count - 1)

    def raster_to_stage(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) continuous raster coordinates -> (N, 3) stage metres (plain numpy, vectorised)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        f = self.facet_of_column(xy[:, 0])
        return (
            self.origin[f]
            + (xy[:, 0] - self.x0[f])[:, None] * self.right[f]
            + xy[:, 1][:, None] * self.down[f]
        )

    def facet_normals(self) -> np.ndarray:
        """(F, 3) unit normals of the emitting side (right x up)."""
        n = np.cross(self.right, -self.down)
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    def facet_corners(self) -> np.ndarray:
        """(F, 3, 3) Kooima corners per facet: lower-left pa, lower-right pb, upper-left pc."""
        pc = self.origin
        pa = pc + self.height_px * self.down
        pb = pa + (self.x1 - self.x0)[:, None] * self.right
        return np.stack([pa, pb, pc], axis=1)

    def cabinet_corner_grid(self) -> np.ndarray:
        """((rows+1) * (cols+1), 3) stage positions of every cabinet corner, row-major from the top-left."""
        cw, ch = self.cabinet_px
        xs = np.arange(self.cols + 1, dtype=np.float64) * cw
        ys = np.arange(self.rows + 1, dtype=np.float64) * ch
        gx, gy = np.meshgrid(xs, ys)
        # a corner on a facet boundary belongs to both facets and maps to the same point: use the left one
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        f = np.clip(np.searchsorted(self.x1, pts[:, 0], side="left"), 0, self.facet_count - 1)
        return self.origin[f] + (pts[:, 0] - self.x0[f])[:, None] * self.right[f] + pts[:, 1][:, None] * self.down[f]


def _frozen(a: np.ndarray, dtype) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=dtype)
    a.setflags(write=False)
    return a


def _make(cols, rows, cabinet_mm, cabinet_px, x0, x1, origin, right, down) -> WallGeometry:
    return WallGeometry(
        width_px=cols * cabinet_px[0],
        height_px=rows * cabinet_px[1],
        cabinet_px=(int(cabinet_px[0]), int(cabinet_px[1])),
        cabinet_m=(cabinet_mm[0] / 1000.0, cabinet_mm[1] / 1000.0),
        cols=cols,
        rows=rows,
        x0=_frozen(x0, np.int64),
        x1=_frozen(x1, np.int64),
        origin=_frozen(origin, np.float64),
        right=_frozen(right, np.float64),
        down=_frozen(down, np.float64),
    )


def flat_wall_geometry(
    center, rotation_deg, cols: int, rows: int, cabinet_mm, cabinet_px
) -> WallGeometry:
    """A flat wall centred at ``center`` (stage m), rotated by (pan, tilt, roll) degrees about its centre.

    At zero rotation raster right is stage +X, raster up is +Z and the wall faces -Y.
    """
    R = rotation_from_ptr_deg(*rotation_deg)
    right_dir = R @ np.array([1.0, 0.0, 0.0])
    up_dir = R @ np.array([0.0, 0.0, 1.0])
    width_m = cols * cabinet_mm[0] / 1000.0
    height_m = rows * cabinet_mm[1] / 1000.0
    W, H = cols * cabinet_px[0], rows * cabinet_px[1]
    origin = np.asarray(center, dtype=np.float64) - right_dir * width_m / 2 + up_dir * height_m / 2
    return _make(
        cols, rows, cabinet_mm, cabinet_px,
        [0], [W], origin[None, :], (right_dir * width_m / W)[None, :], (-up_dir * height_m / H)[None, :],
    )


def ceiling_geometry(center, yaw_deg: float, cols: int, rows: int, cabinet_mm, cabinet_px) -> WallGeometry:
    """A flat wall tipped back over the viewer: rotation (yaw, +90, 0); faces down, raster up = -Y at yaw 0."""
    return flat_wall_geometry(center, (yaw_deg, 90.0, 0.0), cols, rows, cabinet_mm, cabinet_px)


def curved_facet_angle_deg(radius_m: float, cabinet_width_m: float) -> float:
    """Angle one flat cabinet of chord ``cabinet_width_m`` turns on a circle of ``radius_m``."""
    return math.degrees(2.0 * math.asin(cabinet_width_m / (2.0 * radius_m)))


def curved_wall_geometry(
    center_xy, radius: float, start_deg: float, bottom: float, cols: int, rows: int, cabinet_mm, cabinet_px
) -> WallGeometry:
    """An arc of flat cabinet columns facing its centre.

    ``start_deg`` is the angle (counter-clockwise from +X) of the wall's right edge seen from the centre; the
    wall runs counter-clockwise from there and raster column 0 is its left edge.
    """
    cw_m, ch_m = cabinet_mm[0] / 1000.0, cabinet_mm[1] / 1000.0
    step = curved_facet_angle_deg(radius, cw_m)
    end_deg = start_deg + cols * step
    # edge angles from the left edge (end) to the right edge (start), decreasing
    edges = np.radians(end_deg - step * np.arange(cols + 1))
    cx, cy = float(center_xy[0]), float(center_xy[1])
    pts = np.stack([cx + radius * np.cos(edges), cy + radius * np.sin(edges)], axis=1)
    top = bottom + rows * ch_m
    pw, ph = cabinet_px
    x0 = np.arange(cols) * pw
    x1 = x0 + pw
    origin = np.column_stack([pts[:-1], np.full(cols, top)])
    right = np.column_stack([(pts[1:] - pts[:-1]) / pw, np.zeros(cols)])
    down = np.tile(np.array([0.0, 0.0, -ch_m / ph]), (cols, 1))
    return _make(cols, rows, cabinet_mm, cabinet_px, x0, x1, origin, right, down)
