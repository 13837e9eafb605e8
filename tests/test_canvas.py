"""Canvas layout: every wall pixel lands on exactly one canvas pixel, rotations match numpy's rot90, and the
quads' stage positions are the wall geometry's."""

from __future__ import annotations

import numpy as np
import pytest

from stagectl.render.canvas import canvas_layouts, rotate_into_canvas
from stagectl.stage.model import Mapping


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotation_matches_rot90(rotation: int) -> None:
    # a 5 x 3 px wall region with distinct values, placed at (2, 1) on a 12 x 10 canvas
    rng = np.random.default_rng(rotation)
    wall = rng.integers(1, 10_000, size=(3, 5))  # rows = y, cols = x
    m = Mapping(wall="w", rect=(0, 0, 5, 3), at=(2, 1), rotation=rotation)
    expected = np.zeros((10, 12), dtype=np.int64)
    placed = np.rot90(wall, k=-rotation // 90)  # np.rot90 turns counter-clockwise for positive k
    expected[1:1 + placed.shape[0], 2:2 + placed.shape[1]] = placed
    got = np.zeros_like(expected)
    ys, xs = np.mgrid[0:3, 0:5]
    centres = np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5])
    c = rotate_into_canvas(m, centres)
    got[np.floor(c[:, 1]).astype(int), np.floor(c[:, 0]).astype(int)] = wall.ravel()
    np.testing.assert_array_equal(got, expected)


def test_every_wall_pixel_lands_on_exactly_one_canvas_pixel(demo) -> None:
    layouts = canvas_layouts(demo)
    used = {L.key: np.zeros(L.canvas[::-1], dtype=np.int64) for L in layouts}
    for wi, wall in enumerate(demo.walls):
        W, H = wall.raster
        ys, xs = np.mgrid[0:H:7, 0:W:7]  # every 7th pixel in both directions, centres
        pts = np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5])
        hits = np.zeros(len(pts), dtype=np.int64)
        for L in layouts:
            c, shown = L.raster_to_canvas(wi, pts)
            hits += shown
            ci = np.floor(c[shown]).astype(int)
            assert np.all((ci[:, 0] >= 0) & (ci[:, 0] < L.canvas[0]) & (ci[:, 1] >= 0) & (ci[:, 1] < L.canvas[1]))
            np.add.at(used[L.key], (ci[:, 1], ci[:, 0]), 1)
        assert np.all(hits == 1), f"wall {wall.name}: pixels shown {np.unique(hits)} times"
    for key, grid in used.items():
        assert grid.max() <= 1, f"{key}: two wall pixels on one canvas pixel"


def test_quads_cover_the_mapped_area_and_carry_stage_positions(demo) -> None:
    rng = np.random.default_rng(7)
    for L in canvas_layouts(demo):
        # quads tile exactly the mapped pixels of the canvas
        area = 0.0
        for q in range(L.quad_count):
            c = L.canvas_xy[q]
            e1, e2 = c[1] - c[0], c[3] - c[0]
            area += abs(e1[0] * e2[1] - e1[1] * e2[0])
        assert area == pytest.approx(sum(m.rect[2] * m.rect[3] for m in L.mappings))
        for q in range(L.quad_count):
            g = demo.walls[L.wall_index[q]].geometry
            r = L.raster_xy[q]
            # interior points: bilinear blend of the corners equals the geometry at the blended raster point
            a, b = rng.uniform(0.01, 0.99, size=(2, 20))
            def blend(v):
                return ((1 - a) * (1 - b))[:, None] * v[0] + (a * (1 - b))[:, None] * v[1] + (a * b)[:, None] * v[2] + ((1 - a) * b)[:, None] * v[3]
            np.testing.assert_allclose(blend(L.stage_xyz[q]), g.raster_to_stage(blend(r)), atol=1e-9)
            # and the canvas position is the mapping's
            m = L.mappings[L.mapping_index[q]]
            np.testing.assert_allclose(blend(L.canvas_xy[q]), rotate_into_canvas(m, blend(r)), atol=1e-9)


def test_triangles_vertex_buffer(demo) -> None:
    L = canvas_layouts(demo)[1]
    v = L.triangles()
    assert v.dtype == np.float32 and v.shape == (L.quad_count * 6, 9)
    # each quad's two triangles use corners (0, 1, 2) and (0, 2, 3)
    np.testing.assert_allclose(v[:3, 0:2], L.canvas_xy[0, [0, 1, 2]])
    np.testing.assert_allclose(v[3:6, 2:5], L.stage_xyz[0, [0, 2, 3]], rtol=1e-6)
    assert set(np.unique(v[:, 7]).astype(int)) == {demo.walls.index(demo.wall("main")), demo.walls.index(demo.wall("ceiling"))}
