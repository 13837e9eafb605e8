"""Stage features and test patterns on llvmpipe, checked by reading the canvases back.

Expected canvases are computed in numpy from the stage's mappings and wall raster coordinates: each mapped
canvas pixel is traced back to its wall raster pixel with the rotation written out here (clockwise as
displayed, docs/conventions.md "Output canvases and mappings"; not through canvas.py), and the pattern, card,
key or colour correction is evaluated there with the references of stagectl.render.features /
stagectl.render.patterns (themselves checked against published formulas in tests/test_features.py). ArUco
markers are detected with OpenCV on the read-back canvases. No stored images are needed.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from stagectl.core.camera import OperatorFlags
from stagectl.core.features import (
    ChromaKey,
    ChromaMarkers,
    ColorCorrection,
    FeatureState,
    FreezeFrustum,
    LightCard,
    OutputPattern,
    card_weight,
    marker_mask,
)
from stagectl.core.grade import srgb_encode
from stagectl.core.lut import Lut3D
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.canvas import canvas_layouts
from stagectl.render.compositor import clear_framebuffer
from stagectl.render.patterns import (
    ARUCO_MODULES,
    aruco_atlas,
    aruco_cabinet,
    aruco_dictionary,
    burn_in_lines,
    burn_in_raster,
    pattern_raster,
)
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.render.tiles import soft_edge_weight

pytestmark = pytest.mark.gl

INNER = (320, 180)
POSE = (0.3, 0.6, 1.6, 8.0, 3.0, 5.0)  # looks at the main wall, left of centre (demo out1)
KEYS = ("tessera-a/out1", "tessera-a/out2", "tessera-b/out3")


@pytest.fixture(scope="module")
def layouts(demo):
    return {L.key: L for L in canvas_layouts(demo)}


# ---- canvas <-> raster, written out --------------------------------------------------------------------------
def canvas_raster_map(layout):
    """Per mapping: canvas pixel (cx, cy), wall raster pixel (x, y) (int arrays) and the wall index.

    Rotation is clockwise as displayed: at 90 degrees the rectangle's top-left lands at the top-right of its
    footprint (canvas x = h - 1 - local y, canvas y = local x, in whole pixels), at 270 at the bottom-left."""
    out = []
    for m in layout.mappings:
        x, y, w, h = m.rect
        ax, ay = m.at
        cw, ch = (h, w) if m.rotation in (90, 270) else (w, h)
        cy, cx = np.mgrid[0:ch, 0:cw]
        if m.rotation == 0:
            lx, ly = cx, cy
        elif m.rotation == 90:
            lx, ly = cy, h - 1 - cx
        elif m.rotation == 180:
            lx, ly = w - 1 - cx, h - 1 - cy
        else:
            lx, ly = w - 1 - cy, cx
        out.append((cx.ravel() + ax, cy.ravel() + ay, lx.ravel() + x, ly.ravel() + y, layout.wall_indices[m.wall]))
    return out


def expected_canvas(layout, raster_value) -> np.ndarray:
    """(H, W, 3) float: ``raster_value(wall_index, x (N,), y (N,)) -> (N, 3)`` at every mapped canvas pixel,
    0 elsewhere."""
    W, H = layout.canvas
    img = np.zeros((H, W, 3))
    for cx, cy, x, y, wi in canvas_raster_map(layout):
        img[cy, cx] = raster_value(wi, x, y)
    return img


def mapped_mask(layout) -> np.ndarray:
    W, H = layout.canvas
    m = np.zeros((H, W), dtype=bool)
    for cx, cy, *_ in canvas_raster_map(layout):
        m[cy, cx] = True
    return m


def inner_weight(stage, ip, wi, x, y) -> np.ndarray:
    """The inner frustum's soft-edge weight at raster pixel centres of wall ``wi``."""
    g = stage.walls[wi].geometry
    pts = g.raster_to_stage(np.column_stack([x + 0.5, y + 0.5]))
    clip = np.column_stack([pts, np.ones(len(pts))]) @ ip.VP.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return soft_edge_weight(clip[:, :2] / clip[:, 3:4], clip[:, 3], ip.soft_edge)


def codes(linear) -> np.ndarray:
    return np.rint(srgb_encode(linear) * 255)


def render(r, planner, cams, features=FeatureState(), flags=OperatorFlags(), frame=0, **kw):
    res = r.render_frame(planner.plan(cams, flags, frame, features), **kw)
    assert res.ok, res.error
    return res, {k: v[..., :3].astype(int).copy() for k, v in r.canvases().items()}


def fill_inner(r, camera, rgb) -> None:
    t = r.inner.targets[camera]
    img = np.empty((t.height, t.width, 4), dtype=np.float32)
    img[...] = (*rgb, 1.0)
    t.color.upload(img)


def flat_outer(r, plan, rgb=(0.0, 0.0, 0.0)) -> None:
    """The outer atlas cleared to one linear colour, the outer-only canvases redrawn (last features)."""
    clear_framebuffer(r.outer.target.framebuffer, (*rgb, 1.0))
    r.compositor.update_cache(r.outer.key, plan.uniforms, r.outer.texture, force=True)


# ---- test patterns ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["checkerboard", "color_bars", "solid", "cabinet_id", "aruco"])
def test_pattern_canvases_match_the_raster_reference(gl, demo, layouts, kind) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    pat = OutputPattern(kind, color=(0.2, 0.45, 0.8), squares=2)
    fs = FeatureState(patterns={k: pat for k in KEYS})
    atlas = planner.atlas(kind) if kind in ("aruco", "cabinet_id") else None
    rasters = [pattern_raster(kind, demo, wi, color=pat.color, squares=pat.squares, atlas=atlas)
               for wi in range(len(demo.walls))]
    cs = [camera_state_from_pose(demo, POSE)]
    with StageRenderer(demo, gl) as r:
        for frame in range(3):  # both canvas buffers; the third frame keeps the pattern without redrawing
            res, got = render(r, planner, cs, fs, frame=frame, finish_passes=True)
            assert "inner:cam-a" not in res.timings_ns, "no inner frustum is shown: none is rendered"
            for key in KEYS:
                exp = expected_canvas(layouts[key], lambda wi, x, y: rasters[wi][y, x])
                diff = np.abs(got[key] - exp)
                assert diff.max() <= (1 if kind == "solid" else 0), f"{kind} {key}: {diff.max()} codes off"
        # back to the composition: every tile restored
        _, normal = render(r, planner, cs, frame=3)
        _, normal2 = render(r, planner, cs, frame=4)
    with StageRenderer(demo, gl) as fresh:
        _, ref = render(fresh, planner, cs, frame=4)
    for key in KEYS:
        np.testing.assert_array_equal(normal[key], ref[key])
        np.testing.assert_array_equal(normal2[key], ref[key])


def test_aruco_markers_are_detected_at_their_cabinets(gl, demo, layouts) -> None:
    """Every cabinet's marker is found on the read-back canvases (out3 turned back by 90 degrees first), with
    its id and its four corners where the cabinet puts them, corner 0 at the top-left (upright on the wall)."""
    planner = FramePlanner(demo, inner_resolution=INNER)
    fs = FeatureState(patterns={k: OutputPattern("aruco") for k in KEYS})
    with StageRenderer(demo, gl) as r:
        _, got = render(r, planner, [camera_state_from_pose(demo, POSE)], fs)
    atlas = aruco_atlas(demo)
    det = cv2.aruco.ArucoDetector(aruco_dictionary(), cv2.aruco.DetectorParameters())
    found = {}
    for key in KEYS:
        L = layouts[key]
        for m in L.mappings:
            x, y, w, h = m.rect
            cx, cy, cw, ch = m.canvas_rect
            region = got[key][cy:cy + ch, cx:cx + cw, 0].astype(np.uint8)
            region = np.rot90(region, k=m.rotation // 90)  # undo the clockwise turn: raster rows again
            assert region.shape == (h, w)
            corners, ids, _ = det.detectMarkers(np.ascontiguousarray(region))
            assert ids is not None
            wi = L.wall_indices[m.wall]
            for c, k in zip(corners, ids.ravel()):
                w_i, col, row = aruco_cabinet(demo, int(k))
                assert w_i == wi and k not in found
                pw, ph = demo.walls[wi].cabinet.pixels
                s = int(atlas.scale[wi])
                ox, oy = atlas.offset[wi]
                x0 = col * pw + ox - x - 0.5  # the marker's outer edge, OpenCV pixel coordinates
                y0 = row * ph + oy - y - 0.5
                e = ARUCO_MODULES * s
                expected = np.array([[x0, y0], [x0 + e, y0], [x0 + e, y0 + e], [x0, y0 + e]])
                err = np.abs(c.reshape(4, 2) - expected).max()
                assert err <= 1.5, f"marker {k}: corners {c.reshape(4, 2)} != {expected}"
                found[int(k)] = err
    assert sorted(found) == list(range(160)), f"missing markers {sorted(set(range(160)) - set(found))}"
    print(f"\nArUco: 160/160 markers found, corner error max {max(found.values()):.2f} px")


def test_burn_in_over_the_composition_and_restored(gl, demo, layouts) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER, features=FeatureState())
    cs = [camera_state_from_pose(demo, POSE)]
    fs = FeatureState(patterns={"tessera-b/out3": OutputPattern("none", burn_in=("frame", "timecode")),
                                "tessera-a/out2": OutputPattern("checkerboard", burn_in=("frame",))})
    with StageRenderer(demo, gl) as r:
        _, before = render(r, planner, cs, frame=1)
        for frame in (1234, 1235):
            _, got = render(r, planner, cs, fs, frame=frame)
            for key, fields in (("tessera-b/out3", ("frame", "timecode")), ("tessera-a/out2", ("frame",))):
                L = layouts[key]
                lines = burn_in_lines(frame, fields, demo.frame_rate)
                boxed = np.zeros(L.canvas[::-1], dtype=bool)
                for (cx, cy, x, y, wi), m in zip(canvas_raster_map(L), L.mappings):
                    pw, ph = demo.walls[wi].cabinet.pixels
                    box = burn_in_raster(lines, (pw, ph))
                    inb = (x >= m.rect[0]) & (x < m.rect[0] + pw) & (y >= m.rect[1]) & (y < m.rect[1] + ph)
                    np.testing.assert_array_equal(got[key][cy[inb], cx[inb], 0],
                                                  box[y[inb] - m.rect[1], x[inb] - m.rect[0]])
                    boxed[cy[inb], cx[inb]] = True
                assert got[key][boxed].max() == 255 and (got[key][boxed] == 255).mean() > 0.005
                if key == "tessera-b/out3":  # elsewhere: the composition as before
                    np.testing.assert_array_equal(got[key][~boxed], before[key][~boxed])
        for frame in (2, 3):  # the burn-in boxes are restored on both canvas buffers
            _, after = render(r, planner, cs, frame=frame)
            for key in KEYS:
                np.testing.assert_array_equal(after[key], before[key])


# ---- light cards ------------------------------------------------------------------------------------------
def _frustum_centre(demo, ip):
    """Raster (x, y) on the main wall nearest the frustum's centre (largest weight, then nearest NDC 0)."""
    g = demo.wall("main").geometry
    ys, xs = np.mgrid[0:1056:8, 0:1760:8]
    pts = g.raster_to_stage(np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5]))
    clip = np.column_stack([pts, np.ones(len(pts))]) @ ip.VP.T
    d = np.max(np.abs(clip[:, :2] / clip[:, 3:4]), axis=1)
    k = int(np.argmin(np.where(clip[:, 3] > 0, d, np.inf)))
    return xs.ravel()[k], ys.ravel()[k]


def test_light_cards_over_and_under_the_inner_frustum(gl, demo, layouts) -> None:
    """Known images: black outer, white inner. A card over the frustum shows inside it, the same card under it
    is hidden where the inner has full weight; both show outside. Every out1 pixel against numpy."""
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE, zoom=0.6)]
    plan = planner.plan(cs)
    cx, cy = _frustum_centre(demo, plan.inner[0])
    W, H = demo.wall("main").raster
    over = LightCard("over", "main", ((cx - 60) / W, (cy - 60) / H, (cx + 60) / W, (cy + 60) / H),
                     (1.0, 0.2, 0.1), 0.8, "over", 0.0)
    under = LightCard("under", "main", ((cx + 30) / W, (cy - 40) / H, 1.0, (cy + 40) / H),
                      (0.1, 0.3, 1.0), 1.0, "under", 25.0)
    over2 = LightCard("over2", "main", (0.0, 0.05, 0.12, 0.3), (0.0, 1.0, 0.0), 1.0, "over", 12.0)
    fs = FeatureState(light_cards=(over, under, over2))
    with StageRenderer(demo, gl) as r:
        first, _ = render(r, planner, cs, fs)
        fill_inner(r, "cam-a", (1.0, 1.0, 1.0))
        flat_outer(r, planner.plan(cs, features=fs))
        _, got = render(r, planner, cs, fs, OperatorFlags(freeze_inner=True))
    ip = plan.inner[0]

    def value(wi, x, y):
        col = np.zeros((len(x), 3))
        xy = np.column_stack([x + 0.5, y + 0.5])
        cards = [under] + [over, over2]
        if wi == 0:
            for c in cards[:1]:
                w = card_weight(xy, c.raster_rect((W, H)), c.feather_px)[:, None]
                col = col * (1 - w) + np.array(c.rgb) * w
        wi_in = inner_weight(demo, ip, wi, x, y)[:, None]
        col = col * (1 - wi_in) + wi_in
        if wi == 0:
            for c in cards[1:]:
                w = card_weight(xy, c.raster_rect((W, H)), c.feather_px)[:, None]
                col = col * (1 - w) + np.array(c.rgb) * w
        return codes(col)

    exp = expected_canvas(layouts["tessera-a/out1"], value)
    diff = np.abs(got["tessera-a/out1"] - exp)
    assert diff.max() <= 2, f"light cards differ from the reference by {diff.max()} codes"
    img = got["tessera-a/out1"]
    assert img[cy, cx].tolist() == codes(over.rgb).tolist(), "the over card shows in the frustum"
    assert img[cy, cx + 200].tolist() == [255, 255, 255], "the under card is hidden inside the frustum"
    # the under card where the frustum does not reach (main wall columns 10-15 are on out2 at x - 1760)
    xs = np.arange(1760, W)
    outside = xs[(inner_weight(demo, ip, 0, xs, np.full(len(xs), cy)) == 0)
                 & (card_weight(np.column_stack([xs + 0.5, np.full(len(xs), cy + 0.5)]),
                                under.raster_rect((W, H)), under.feather_px) == 1)]
    assert len(outside) > 100
    assert got["tessera-a/out2"][cy, outside - 1760].tolist() == [codes(under.rgb).tolist()] * len(outside)
    assert img[int(0.1 * H), int(0.05 * W)].tolist() == [0, 255, 0]


def test_card_placement_in_wall_uv_across_rotated_mappings(gl, demo, layouts) -> None:
    """A hard-edged card on the ceiling lands exactly on the canvas pixels its wall-UV rectangle maps to, on
    out2 (unrotated) and out3 (turned 90 degrees)."""
    planner = FramePlanner(demo, inner_resolution=INNER)
    card = LightCard("c", "ceiling", (0.3, 0.1, 0.8, 0.65), (1.0, 0.0, 1.0), 1.0, "under")
    fs = FeatureState(light_cards=(card,))
    cs = [camera_state_from_pose(demo, POSE)]
    with StageRenderer(demo, gl) as r:
        plan = planner.plan(cs, OperatorFlags(inner_enabled=False), features=fs)
        assert r.render_frame(plan).ok
        flat_outer(r, plan, (0.0, 0.0, 0.0))
        _, got = render(r, planner, cs, fs, OperatorFlags(inner_enabled=False))
    x0, y0, x1, y1 = card.raster_rect(demo.wall("ceiling").raster)
    assert (x0, y0, x1, y1) == (422.4, 140.8, 1126.4, 915.2)
    for key in ("tessera-a/out2", "tessera-b/out3"):
        L = layouts[key]
        exp = expected_canvas(L, lambda wi, x, y: np.where(
            ((wi == 1) & (x + 0.5 >= x0) & (x + 0.5 < x1) & (y + 0.5 >= y0) & (y + 0.5 < y1))[:, None],
            [255, 0, 255], [0, 0, 0]))
        np.testing.assert_array_equal(got[key], exp)
        assert (got[key][..., 0] == 255).sum() > 10000
    # a corner written out: the first lit ceiling pixel is (422, 141) (centres 422.5 >= 422.4, 141.5 >= 140.8),
    # out3 canvas (x, y) = (1407 - 141, 422); its left and upper neighbours on the wall stay dark
    assert got["tessera-b/out3"][422, 1407 - 141].tolist() == [255, 0, 255]
    assert got["tessera-b/out3"][421, 1407 - 141].tolist() == [0, 0, 0]
    assert got["tessera-b/out3"][422, 1407 - 140].tolist() == [0, 0, 0]


def test_cards_outside_the_frustum_update_the_cached_tiles(gl, demo, layouts) -> None:
    """The outer-only canvases are cached per tile: adding a card outside the frustum shows on the next frame
    (both canvas buffers), moving it restores the old place, removing it gives the plain canvases back."""
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE)]
    card = LightCard("c", "main", (0.75, 0.2, 0.85, 0.5), (1.0, 0.0, 1.0), 1.0, "over")
    moved = dataclasses.replace(card, rect=(0.55, 0.6, 0.7, 0.9))
    W, H = demo.wall("main").raster

    def card_px(c, key):
        exp = expected_canvas(layouts[key], lambda wi, x, y: np.repeat(
            ((wi == 0) * card_weight(np.column_stack([x + 0.5, y + 0.5]), c.raster_rect((W, H)), 0))[:, None],
            3, axis=1))
        return exp[..., 0] > 0

    with StageRenderer(demo, gl) as r:
        render(r, planner, cs, frame=0)
        _, plain = render(r, planner, cs, frame=1)
        for step, (fs, c) in enumerate(((FeatureState(light_cards=(card,)), card),
                                        (FeatureState(light_cards=(moved,)), moved))):
            for k in range(2):
                res, got = render(r, planner, cs, fs, frame=10 + 2 * step + k, finish_passes=True)
                assert ("outer:canvases" in res.timings_ns) == (k == 0), "the cache is redrawn once per change"
                for key in ("tessera-a/out1", "tessera-a/out2"):
                    lit = card_px(c, key)
                    assert np.all(got[key][lit] == (255, 0, 255))
                    np.testing.assert_array_equal(got[key][~lit], plain[key][~lit])
                if step == 1:  # the old place shows the outer image again
                    old = card_px(card, "tessera-a/out2")
                    assert old.sum() > 1000
                    np.testing.assert_array_equal(got["tessera-a/out2"][old], plain["tessera-a/out2"][old])
        for k in range(2):
            _, got = render(r, planner, cs, frame=20 + k)
            for key in KEYS:
                np.testing.assert_array_equal(got[key], plain[key])


# ---- chroma key -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("markers", [False, True])
def test_chroma_key_fills_the_inner_frustum(gl, demo, layouts, markers) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    mk = ChromaMarkers(color=(0.0, 200 / 255, 0.0), size=0.1, thickness=0.02, spacing=0.25) if markers else None
    fs = FeatureState(chroma_key=ChromaKey(markers=mk))
    cs = [camera_state_from_pose(demo, POSE, zoom=0.4)]
    with StageRenderer(demo, gl) as r:
        plan = planner.plan(cs, features=fs)
        res = r.render_frame(plan, finish_passes=True)
        assert res.ok and "inner:cam-a" not in res.timings_ns, "under the key the scene is not rendered"
        flat_outer(r, plan)
        _, got = render(r, planner, cs, fs)
    ip = plan.inner[0]
    key_lin = np.array(fs.chroma_key.linear_color)
    pitch = 0.5 / 176
    sp, hs, ht = (mk.pixels((pitch, pitch)) if mk else (None, None, None))

    def value(wi, x, y):
        w = inner_weight(demo, ip, wi, x, y)[:, None]
        src = np.repeat(key_lin[None], len(x), axis=0)
        if mk is not None:
            on = marker_mask(np.column_stack([x + 0.5, y + 0.5]), sp, hs, ht)
            src[on] = mk.linear_color
        return codes(src * w)

    for key in ("tessera-a/out1", "tessera-a/out2"):
        exp = expected_canvas(layouts[key], value)
        diff = np.abs(got[key] - exp)
        assert diff.max() <= 2, f"{key}: key differs by {diff.max()} codes"
    full = expected_canvas(layouts["tessera-a/out1"], lambda wi, x, y: np.repeat(
        (inner_weight(demo, ip, wi, x, y) >= 1.0)[:, None], 3, axis=1))[..., 0] > 0
    img = got["tessera-a/out1"]
    assert full.sum() > 50000
    colours = {tuple(c) for c in img[full].reshape(-1, 3).tolist()}
    assert colours == ({(0, 128, 0), (0, 200, 0)} if markers else {(0, 128, 0)})
    ramp = img[mapped_mask(layouts["tessera-a/out1"]) & ~full]  # outside: black outer, then the soft edge
    assert ramp.max() <= (200 if markers else 128) and (ramp[:, 1] == 0).mean() > 0.5


# ---- colour correction ------------------------------------------------------------------------------------
FLAT = [(0.25, 0.5, 0.125), (0.75, 0.0625, 0.375), (0.03125, 0.875, 0.6875)]  # exact in float16


def _flat_run(r, planner, cs, fs, rgb):
    plan = planner.plan(cs, OperatorFlags(inner_enabled=False), features=fs)
    assert r.render_frame(plan).ok
    flat_outer(r, plan, rgb)
    _, got = render(r, planner, cs, fs, OperatorFlags(inner_enabled=False))
    return got


def test_wall_color_correction_matches_the_reference(gl, demo, layouts) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE)]
    lut = Lut3D.from_function(lambda c: np.stack([c[..., 1] ** 1.3, 0.1 + 0.8 * c[..., 0], 1 - c[..., 2]], -1), 17)
    main_cc = ColorCorrection(exposure=0.4, temperature=3800, tint=4, slope=(1.1, 0.95, 1.0),
                              offset=(0.01, 0.0, -0.01), power=(0.9, 1.1, 1.0), saturation=0.85, lut=lut)
    ceiling_cc = ColorCorrection(exposure=-0.5, gains=(1.2, 1.0, 0.8))
    fs = FeatureState(wall_color={"main": main_cc, "ceiling": ceiling_cc})
    errs = []
    with StageRenderer(demo, gl) as r:
        for rgb in FLAT:
            got = _flat_run(r, planner, cs, fs, rgb)
            for wi, cc, key, px in ((0, main_cc, "tessera-a/out1", (500, 300)),
                                    (1, ceiling_cc, "tessera-b/out3", (700, 500))):
                expected = codes(cc.apply(np.array(rgb)))
                region = got[key][mapped_mask(layouts[key])]
                errs.append(np.abs(region - expected).max())
                assert errs[-1] <= 2, f"wall {wi} {rgb}: {got[key][px[1], px[0]]} != {expected}"
            # out2 shows both walls, each with its own correction
            assert np.abs(got["tessera-a/out2"][100, 100] - codes(main_cc.apply(np.array(rgb)))).max() <= 2
            assert np.abs(got["tessera-a/out2"][100, 1200] - codes(ceiling_cc.apply(np.array(rgb)))).max() <= 2
    print(f"\nwall colour correction vs numpy reference: max {max(errs)} codes")


def test_inner_color_correction_matches_the_reference(gl, demo, layouts) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE, zoom=0.4)]
    lut = Lut3D.from_function(lambda c: c ** np.array([1.2, 1.0, 0.8]), 33)
    cc = ColorCorrection(exposure=-0.3, temperature=7500, slope=(0.9, 1.05, 1.1), saturation=1.3, lut=lut)
    fs = FeatureState(inner_color=cc)
    with StageRenderer(demo, gl) as r:
        plan = planner.plan(cs, features=fs)
        assert r.render_frame(plan).ok
        ip = plan.inner[0]
        full = expected_canvas(layouts["tessera-a/out1"], lambda wi, x, y: np.repeat(
            (inner_weight(demo, ip, wi, x, y) >= 1.0)[:, None], 3, axis=1))[..., 0] > 0
        assert full.sum() > 50000
        for rgb in FLAT:
            fill_inner(r, "cam-a", rgb)
            _, got = render(r, planner, cs, fs, OperatorFlags(freeze_inner=True))
            diff = np.abs(got["tessera-a/out1"][full] - codes(cc.apply(np.array(rgb))))
            assert diff.max() <= 2, f"inner {rgb}: {diff.max()} codes"


def test_lut_identity_is_a_no_op_and_a_known_lut_gives_its_values(gl, demo, layouts) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE)]
    with StageRenderer(demo, gl) as r:
        _, plain = render(r, planner, cs)
        for n in (2, 33):
            ident = FeatureState(wall_color={"main": ColorCorrection(lut=Lut3D.identity(n))},
                                 inner_color=ColorCorrection(lut=Lut3D.identity(n)))
            _, got = render(r, planner, cs, ident)
            for key in KEYS:
                d = np.abs(got[key] - plain[key])
                assert d.max() <= 1 and (d > 0).mean() < 0.01, f"identity LUT {n}: {d.max()} codes, {(d > 0).mean()}"
        # a known LUT: the channels rotated (exact for trilinear: linear in each channel)
        rot = Lut3D.from_function(lambda c: c[..., [1, 2, 0]], 5)
        known = FeatureState(wall_color={"main": ColorCorrection(lut=rot), "ceiling": ColorCorrection(lut=rot)})
        _, got = render(r, planner, cs, known, OperatorFlags(inner_enabled=False))
        _, ref = render(r, planner, cs, FeatureState(), OperatorFlags(inner_enabled=False))
    for key in KEYS:
        m = mapped_mask(layouts[key])
        d = np.abs(got[key][m] - ref[key][m][:, [1, 2, 0]])
        assert d.max() <= 1, f"{key}: rotated-channel LUT off by {d.max()} codes"


# ---- freeze, blackout, flash, features off ----------------------------------------------------------------
@pytest.mark.parametrize("keep_image", [True, False])
def test_freeze_frustum_keeps_the_inner_region_while_the_camera_moves(gl, demo, keep_image) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    a = [camera_state_from_pose(demo, POSE)]
    with StageRenderer(demo, gl) as r:
        _, at_a = render(r, planner, a, frame=1)
        freeze = FeatureState(freeze=FreezeFrustum(keep_image=keep_image))
        for k, pose in enumerate([(0.8, 0.2, 1.5, -12.0, 6.0, 0.0), (-0.6, 1.0, 1.8, 20.0, -4.0, 3.0)]):
            res, got = render(r, planner, [camera_state_from_pose(demo, pose)], freeze, frame=2 + k,
                              finish_passes=True)
            assert ("inner:cam-a" in res.timings_ns) == (not keep_image)
            for key in KEYS:
                np.testing.assert_array_equal(got[key], at_a[key])
        _, free = render(r, planner, [camera_state_from_pose(demo, (0.8, 0.2, 1.5, -12.0, 6.0, 0.0))], frame=9)
        assert np.abs(free["tessera-a/out1"] - at_a["tessera-a/out1"]).max() > 50


def test_blackout_per_output_and_global(gl, demo, layouts) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE)]
    with StageRenderer(demo, gl) as r:
        _, normal = render(r, planner, cs)
        for _ in range(2):
            _, got = render(r, planner, cs, FeatureState(blackout={"tessera-a/out2"}))
            assert got["tessera-a/out2"].max() == 0
            for key in ("tessera-a/out1", "tessera-b/out3"):
                np.testing.assert_array_equal(got[key], normal[key])
        _, got = render(r, planner, cs, flags=OperatorFlags(blackout=True))
        assert all(v.max() == 0 for v in got.values())
        for _ in range(2):
            _, got = render(r, planner, cs)
            for key in KEYS:
                np.testing.assert_array_equal(got[key], normal[key])


def test_white_flash_lasts_exactly_one_frame(gl, demo, layouts) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE)]
    flash = FeatureState(patterns={"tessera-a/out2": OutputPattern("white_flash")})
    white = {k: mapped_mask(L) for k, L in layouts.items()}
    with StageRenderer(demo, gl) as r:
        _, normal = render(r, planner, cs, frame=0)
        seen = []
        for k in range(1, 5):
            _, got = render(r, planner, cs, flash, frame=k)
            seen.append(bool(np.all(got["tessera-a/out2"][white["tessera-a/out2"]] == 255)))
            if seen[-1]:
                assert got["tessera-a/out2"][~white["tessera-a/out2"]].max() == 0, "unmapped pixels stay black"
            else:
                np.testing.assert_array_equal(got["tessera-a/out2"], normal["tessera-a/out2"])
            for key in ("tessera-a/out1", "tessera-b/out3"):
                np.testing.assert_array_equal(got[key], normal[key])
        assert seen == [True, False, False, False]
        planner.trigger_white_flash()
        _, got = render(r, planner, cs, frame=10)
        assert all(np.all(got[k][white[k]] == 255) for k in KEYS)
        for k in range(2):
            _, got = render(r, planner, cs, frame=11 + k)
            for key in KEYS:
                np.testing.assert_array_equal(got[key], normal[key])


def test_features_off_run_the_plain_programs(gl, demo) -> None:
    planner = FramePlanner(demo, inner_resolution=INNER)
    cs = [camera_state_from_pose(demo, POSE)]
    with StageRenderer(demo, gl) as r:
        _, a = render(r, planner, cs)
        _, b = render(r, planner, cs, FeatureState(light_cards=(), wall_color={}))
        for key in KEYS:
            np.testing.assert_array_equal(a[key], b[key])
        variants = set(r.compositor._programs)
        assert all(v[0] in ("composite", "inner", "copy") and not v[-1] for v in variants if len(v) > 1), variants
