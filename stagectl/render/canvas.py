"""Where every wall pixel lands on the output canvases: the static geometry of the canvas composition.

Pure numpy, built once per stage (docs/conventions.md, "Output canvases and mappings"). For each output it
gives the quads to rasterise — one per (mapping, facet) piece — with, at each corner, its canvas position, its
wall raster position and its stage position. Inside a quad all three are affine in one another (a facet is
planar and a mapping is a rotation plus a shift), so a GPU can interpolate them linearly without perspective
correction and every fragment knows exactly which LED pixel, and which point of the stage, it is.

The same mapping, run the other way (:meth:`CanvasLayout.raster_to_canvas`), tells which canvas pixel drives a
given wall pixel: that is how tests "re-photograph" the wall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stagectl.stage.model import Mapping, Output, Processor, Stage

__all__ = ["CanvasLayout", "canvas_layouts", "rotate_into_canvas", "QUAD_CORNERS"]

#: corner order of every quad, in the wall raster: top-left, top-right, bottom-right, bottom-left
QUAD_CORNERS = ((0, 0), (1, 0), (1, 1), (0, 1))


def rotate_into_canvas(m: Mapping, raster_xy: np.ndarray) -> np.ndarray:
    """Continuous wall raster coordinates (N, 2) inside ``m.rect`` -> canvas pixel coordinates (N, 2).

    Rotation is clockwise as displayed on the canvas: at 90 degrees the rectangle's top-left corner lands at the
    top-right of its canvas footprint.
    """
    x, y, w, h = m.rect
    lx = raster_xy[:, 0] - x
    ly = raster_xy[:, 1] - y
    if m.rotation == 0:
        cx, cy = lx, ly
    elif m.rotation == 90:
        cx, cy = h - ly, lx
    elif m.rotation == 180:
        cx, cy = w - lx, h - ly
    elif m.rotation == 270:
        cx, cy = ly, w - lx
    else:  # the loader allows nothing else
        raise ValueError(f"rotation {m.rotation}")
    return np.stack([cx + m.at[0], cy + m.at[1]], axis=1)


@dataclass(frozen=True, eq=False)
class CanvasLayout:
    """The quads of one output canvas.

    Arrays, one row per quad ``q`` and corner ``c`` in :data:`QUAD_CORNERS` order:
    ``canvas_xy`` (Q, 4, 2) canvas pixels; ``raster_xy`` (Q, 4, 2) wall raster pixels; ``stage_xyz`` (Q, 4, 3)
    stage metres; ``wall_index`` (Q,) index into ``stage.walls``; ``mapping_index`` (Q,) into the output's
    mappings.
    """

    processor: str
    output: str
    canvas: tuple[int, int]
    mappings: tuple[Mapping, ...]
    canvas_xy: np.ndarray
    raster_xy: np.ndarray
    stage_xyz: np.ndarray
    wall_index: np.ndarray
    mapping_index: np.ndarray
    wall_indices: dict[str, int]  # wall name -> index into stage.walls

    @property
    def key(self) -> str:
        return f"{self.processor}/{self.output}"

    @property
    def quad_count(self) -> int:
        return int(self.wall_index.shape[0])

    def triangles(self) -> np.ndarray:
        """(Q * 6, 9) float32 vertices of two triangles per quad: canvas x, y (pixels), stage x, y, z (m),
        raster x, y (pixels), wall index, mapping index — the vertex buffer a GL backend draws."""
        order = (0, 1, 2, 0, 2, 3)
        q = self.quad_count
        out = np.empty((q, 6, 9), dtype=np.float64)
        out[:, :, 0:2] = self.canvas_xy[:, order]
        out[:, :, 2:5] = self.stage_xyz[:, order]
        out[:, :, 5:7] = self.raster_xy[:, order]
        out[:, :, 7] = self.wall_index[:, None]
        out[:, :, 8] = self.mapping_index[:, None]
        return out.reshape(q * 6, 9).astype(np.float32)

    def raster_to_canvas(self, wall_index: int, raster_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canvas pixel coordinates (N, 2) of wall raster points (N, 2) of ``wall_index`` on this canvas, and a
        mask (N,) of the points this canvas shows (a wall may be spread over several outputs)."""
        pts = np.asarray(raster_xy, dtype=np.float64).reshape(-1, 2)
        out = np.full_like(pts, np.nan)
        shown = np.zeros(pts.shape[0], dtype=bool)
        for m in self.mappings:
            if self.wall_indices[m.wall] != wall_index:
                continue
            x, y, w, h = m.rect
            inside = (pts[:, 0] >= x) & (pts[:, 0] < x + w) & (pts[:, 1] >= y) & (pts[:, 1] < y + h)
            if inside.any():
                out[inside] = rotate_into_canvas(m, pts[inside])
                shown |= inside
        return out, shown


def _layout(stage: Stage, p: Processor, o: Output) -> CanvasLayout:
    index = {w.name: i for i, w in enumerate(stage.walls)}
    cxy, rxy, sxyz, widx, midx = [], [], [], [], []
    corners = np.array(QUAD_CORNERS, dtype=np.float64)
    for mi, m in enumerate(o.mappings):
        wi = index[m.wall]
        g = stage.walls[wi].geometry
        x, y, w, h = m.rect
        for f in range(g.facet_count):
            fx0, fx1 = max(x, int(g.x0[f])), min(x + w, int(g.x1[f]))
            if fx0 >= fx1:
                continue
            r = np.column_stack([fx0 + corners[:, 0] * (fx1 - fx0), y + corners[:, 1] * h])
            # stage positions through this facet explicitly (a corner on a facet edge belongs to both)
            s = g.origin[f] + (r[:, 0] - g.x0[f])[:, None] * g.right[f] + r[:, 1][:, None] * g.down[f]
            cxy.append(rotate_into_canvas(m, r))
            rxy.append(r)
            sxyz.append(s)
            widx.append(wi)
            midx.append(mi)
    return CanvasLayout(
        processor=p.name,
        output=o.name,
        canvas=o.canvas,
        mappings=o.mappings,
        canvas_xy=np.array(cxy).reshape(-1, 4, 2),
        raster_xy=np.array(rxy).reshape(-1, 4, 2),
        stage_xyz=np.array(sxyz).reshape(-1, 4, 3),
        wall_index=np.array(widx, dtype=np.int64),
        mapping_index=np.array(midx, dtype=np.int64),
        wall_indices=index,
    )


def canvas_layouts(stage: Stage) -> list[CanvasLayout]:
    """One :class:`CanvasLayout` per output, in stage order."""
    return [_layout(stage, p, o) for p, o in stage.outputs()]
