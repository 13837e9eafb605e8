"""The stage renderer on llvmpipe: the wall, re-photographed by the tracked camera, shows what the camera
would see of the virtual world; outer image, mappings, soft edge, several cameras, robustness, readback,
snapshot.

The re-photograph test (docs/conventions.md throughout): for each pixel of a small camera image, the ray from
the entrance pupil through the pixel centre (unprojected with the camera's VP *without* overscan) is
intersected with every wall facet in numpy; the nearest hit gives a wall raster position, hence an LED
pixel; the canvas pixel that drives that LED is found through the processor mapping
(``CanvasLayout.raster_to_canvas``) and read from the rendered canvases. That image is compared with the
scene rendered directly from the camera (same VP, same small size, sRGB-encoded like the canvases), over the
pixels whose wall point lies in the inner frustum's full-weight region. Errors are in 8-bit sRGB codes; the
measured means are printed (``-s``); a second comparison integrates each camera pixel over 4 x 4 samples on
both sides.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO, STAGES
from helpers import load_stage_text

from stagectl.core.camera import LensValues, OperatorFlags
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.canvas import canvas_layouts
from stagectl.render.compositor import clear_framebuffer, srgb_encode, to_srgb8
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.render.scene import DEFAULT_COLUMNS, Column, RenderTarget
from stagectl.render.tiles import soft_edge_weight

pytestmark = pytest.mark.gl

INNER = (960, 540)  # inner-frustum target of the re-photograph tests (overscan included)
CAM = (192, 108)  # the re-photographing camera's image
MAE_LIMIT = 2.0  # 8-bit codes

# the default world plus tall towers, so that a camera looking up through a ceiling sees structure
TOWERS = (
    Column("T1", (0.0, 12.0), (2.0, 2.0), 40.0, (0.82, 0.42, 0.10)),
    Column("T2", (-7.0, 9.0), (2.0, 3.0), 30.0, (0.15, 0.55, 0.80)),
    Column("T3", (6.0, 15.0), (3.0, 2.0), 50.0, (0.70, 0.20, 0.55)),
    Column("T4", (2.5, 5.5), (0.4, 0.4), 20.0, (0.90, 0.90, 0.85)),
)
COLUMNS = DEFAULT_COLUMNS + TOWERS

TEST_STAGE = """\
schema_version: 1
name: Tilted wall and ceiling
frame_rate: 25
walls:
  - name: front
    type: flat
    center: [0.3, 4.0, 1.5]
    rotation: [15, 0, 0]
    cabinets: [8, 6]
    cabinet: {size_mm: [500, 500], pixels: [96, 96]}
  - name: top
    type: ceiling
    center: [0.0, 2.0, 3.5]
    yaw_deg: 20
    cabinets: [6, 6]
    cabinet: {size_mm: [500, 500], pixels: [96, 96]}
processors:
  - name: p
    kind: generic
    outputs:
      - name: a
        canvas: [1400, 900]
        mappings:
          - {wall: front, rect: [0, 0, 768, 576], at: [0, 0], rotation: 180}
          - {wall: top, rect: [0, 0, 288, 576], at: [768, 0], rotation: 270}
          - {wall: top, rect: [288, 0, 288, 576], at: [768, 300], rotation: 90}
tracking:
  - name: t
    protocol: freed
    bind: 127.0.0.1
    port: 40000
    camera_id: 1
cameras:
  - name: cam
    tracking: t
    sensor_mm: [24.89, 14.0]
"""


# ---- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_stage(tmp_path_factory):
    return load_stage_text(tmp_path_factory.mktemp("stage") / "tilted.yaml", TEST_STAGE)


class Rig:
    """A stage with its planner (inner target INNER) and a renderer of the test world with towers."""

    def __init__(self, stage, ctx):
        self.stage = stage
        self.planner = FramePlanner(stage, inner_resolution=INNER)
        self.renderer = StageRenderer(stage, ctx, columns=COLUMNS)
        self.layouts = canvas_layouts(stage)

    def render(self, cams, flags=OperatorFlags(), frame=0):
        plan = self.planner.plan(cams, flags, frame)
        res = self.renderer.render_frame(plan)
        assert res.ok, res.error
        return plan, {k: v.copy() for k, v in self.renderer.canvases().items()}


@pytest.fixture(scope="module")
def rigs(gl_context, demo, flat, test_stage):
    """One renderer per stage for the module (made before the per-test leak guard looks)."""
    gl_context.make_current()
    made = {}
    try:
        for name, st in (("demo", demo), ("flat", flat), ("test", test_stage)):
            made[name] = rig = Rig(st, gl_context)
            # first frame: every lazily made GL object (inner target, program variants) exists from here on
            rig.render([camera_state_from_pose(st, (0.0, 0.0, 1.7, 0.0, 0.0, 0.0))])
        yield made
    finally:
        gl_context.make_current()
        for r in made.values():
            r.renderer.release()


# ---- the re-photographing camera ---------------------------------------------------------------------------
def camera_rays(VP: np.ndarray, size: tuple[int, int], ss: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Eye (stage) and unit ray directions (H*W*ss*ss, 3) through the pixel centres of an image of ``size``
    for a perspective stage -> clip matrix (pixel (i, j) centre: NDC x = 2 (i + .5) / W - 1,
    y = 1 - 2 (j + .5) / H); with ``ss`` > 1, an ss x ss grid of sub-pixel centres per pixel (pixel-major
    order)."""
    w, h = size
    inv = np.linalg.inv(VP)
    eye_h = inv @ np.array([0.0, 0.0, 1.0, 0.0])  # clip (0, 0, z, 0) is the eye
    eye = eye_h[:3] / eye_h[3]
    jj, ii, sj, si = np.meshgrid(np.arange(h), np.arange(w), np.arange(ss), np.arange(ss), indexing="ij")
    x = 2 * (ii.ravel() + (si.ravel() + 0.5) / ss) / w - 1
    y = 1 - 2 * (jj.ravel() + (sj.ravel() + 0.5) / ss) / h
    near = inv @ np.vstack([x, y, -np.ones_like(x), np.ones_like(x)])
    p = (near[:3] / near[3]).T
    d = p - eye
    return eye, d / np.linalg.norm(d, axis=1, keepdims=True)


def cast_on_walls(stage, eye: np.ndarray, dirs: np.ndarray):
    """Nearest hit of each ray on any facet: (wall index (N,), -1 = miss; raster xy (N, 2); stage (N, 3))."""
    n = len(dirs)
    best = np.full(n, np.inf)
    wall = np.full(n, -1)
    raster = np.full((n, 2), np.nan)
    for wi, w in enumerate(stage.walls):
        g = w.geometry
        for f in range(g.facet_count):
            o, r, d = g.origin[f], g.right[f], g.down[f]
            nrm = np.cross(r, d)
            denom = dirs @ nrm
            with np.errstate(divide="ignore", invalid="ignore"):
                t = ((o - eye) @ nrm) / denom
            q = eye + t[:, None] * dirs - o
            rr, dd, rd = r @ r, d @ d, r @ d
            qr, qd = q @ r, q @ d
            det = rr * dd - rd * rd
            a = (qr * dd - qd * rd) / det
            b = (qd * rr - qr * rd) / det
            ok = ((np.abs(denom) > 1e-12) & (t > 0) & (a >= 0) & (a < g.x1[f] - g.x0[f])
                  & (b >= 0) & (b < g.height_px))
            better = ok & (t < best)
            best[better] = t[better]
            wall[better] = wi
            raster[better, 0] = g.x0[f] + a[better]
            raster[better, 1] = b[better]
    return wall, raster, eye + best[:, None] * dirs


def rephotograph(stage, layouts, canvases, VP_camera, size, ss: int = 1):
    """The camera's view of the LED wall: (image (H, W, 3) uint8, hit mask (H, W), stage hit points (H*W, 3)).

    ``ss`` > 1: each camera pixel averages ss x ss rays (float image; the hit mask wants all on a wall)."""
    eye, dirs = camera_rays(VP_camera, size, ss)
    wall, raster, hit = cast_on_walls(stage, eye, dirs)
    img = np.zeros((len(dirs), 3), dtype=np.uint8)
    found = np.zeros(len(dirs), dtype=bool)
    led_centre = np.floor(raster) + 0.5  # the LED pixel the ray lands in, at its centre
    for wi in range(len(stage.walls)):
        sel = np.flatnonzero(wall == wi)
        for L in layouts:
            c, shown = L.raster_to_canvas(wi, led_centre[sel])
            if not shown.any():
                continue
            ci = np.floor(c[shown]).astype(int)
            img[sel[shown]] = canvases[L.key][ci[:, 1], ci[:, 0], :3]
            found[sel[shown]] = True
    assert np.array_equal(found, wall >= 0), "a wall pixel is on no canvas"
    w, h = size
    if ss > 1:
        img = img.reshape(h * w, ss * ss, 3).astype(np.float64).mean(axis=1)
        return img.reshape(h, w, 3), (wall >= 0).reshape(h * w, ss * ss).all(axis=1).reshape(h, w), hit
    return img.reshape(h, w, 3), (wall >= 0).reshape(h, w), hit


def direct_render(renderer: StageRenderer, VP: np.ndarray, size, ss: int = 1) -> np.ndarray:
    """The scene through ``VP`` at ``size``, sRGB-encoded 8-bit RGB (H, W, 3), row 0 = top; with ``ss`` > 1
    rendered at ss times the size and each ss x ss block of codes averaged (float)."""
    w, h = size[0] * ss, size[1] * ss
    target = RenderTarget(renderer.resources, w, h, color="rgba16f", label="test.direct")
    try:
        renderer.scene.draw(VP, target)
        img = to_srgb8(target.read(dtype=np.float32))[..., :3]
    finally:
        target.release()
    if ss > 1:
        return img.reshape(size[1], ss, size[0], ss, 3).astype(np.float64).mean(axis=(1, 3))
    return img


REPHOTO_CASES = {
    # name: (rig, pose x, y, z, pan, tilt, roll, zoom, explicit lens or None)
    "demo curved, centred, mid zoom": ("demo", (0.0, 0.2, 1.6, 0.0, -1.3, 0.0), 0.5, None),
    "demo curved, off-centre tilted rolled tele": ("demo", (1.1, 0.8, 1.3, 22.0, 8.0, -7.0), 0.95, None),
    "demo curved, wide, rolled, low": ("demo", (-0.8, 1.2, 0.9, -15.0, 12.0, 12.0), 0.0, None),
    "demo ceiling, looking up": ("demo", (0.3, 1.0, 1.6, 5.0, 55.0, 4.0), 0.1, None),
    "flat wall, off-centre 35 mm default": ("flat", (0.6, 0.5, 1.5, -8.0, 4.0, 3.0), 0.0, None),
    "flat wall, zoomed, shifted principal point": ("flat", (-1.0, 1.0, 2.0, 12.0, -6.0, -5.0), 0.0,
                                                   LensValues(60.0, (0.4, -0.3), 0.08)),
    "test stage, tilted wall + ceiling (rot 90/180/270)": ("test", (0.0, 0.8, 1.6, -10.0, 30.0, 6.0), 0.0,
                                                           LensValues(20.0, (-0.2, 0.1), 0.05)),
}
SS = 4  # supersampling of the second, pixel-integral comparison


@pytest.mark.parametrize("case", list(REPHOTO_CASES))
def test_rephotographed_wall_matches_direct_render(rigs, case) -> None:
    rig_name, pose, zoom, lens = REPHOTO_CASES[case]
    rig: Rig = rigs[rig_name]
    cs = camera_state_from_pose(rig.stage, pose, zoom=zoom, lens=lens)
    plan, canvases = rig.render([cs])
    ip = plan.inner[0]
    photo, hit, points = rephotograph(rig.stage, rig.layouts, canvases, ip.VP_unscanned, CAM)
    ref = direct_render(rig.renderer, ip.VP_unscanned, CAM)
    with np.errstate(divide="ignore", invalid="ignore"):
        clip = np.column_stack([np.where(hit.reshape(-1, 1), points, 0.0), np.ones(len(points))]) @ ip.VP.T
        weight = soft_edge_weight(clip[:, :2] / clip[:, 3:4], clip[:, 3], ip.soft_edge).reshape(hit.shape)
    inside = hit & (weight >= 1.0)
    assert inside.sum() > 0.25 * hit.size, f"{case}: only {inside.sum()} camera pixels see the inner frustum"
    err = np.abs(photo.astype(np.int32) - ref.astype(np.int32))[inside]
    mae = float(err.mean())
    p99 = float(np.percentile(err.max(axis=1), 99))
    # the same with each camera pixel integrated over SS x SS samples on both sides (aliasing averaged out)
    photo_ss, hit_ss, _ = rephotograph(rig.stage, rig.layouts, canvases, ip.VP_unscanned, CAM, SS)
    ref_ss = direct_render(rig.renderer, ip.VP_unscanned, CAM, SS)
    inside_ss = inside & hit_ss
    mae_ss = float(np.abs(photo_ss - ref_ss)[inside_ss].mean())
    print(f"\nre-photograph [{case}]: MAE {mae:.3f}/255 over {inside.sum()} px "
          f"({inside.mean() * 100:.0f} % of the image), p99 of max-channel error {p99:.0f}/255; "
          f"{SS}x{SS} supersampled MAE {mae_ss:.3f}/255")
    assert mae < MAE_LIMIT, f"{case}: mean absolute error {mae:.2f}/255"
    assert mae_ss < MAE_LIMIT / 2, f"{case}: supersampled mean absolute error {mae_ss:.2f}/255"
    # the comparison is sensitive: the same camera panned by 1 degree gives a clearly larger error
    x, y, z, pan, tilt, roll = pose
    moved = camera_state_from_pose(rig.stage, (x, y, z, pan + 1.0, tilt, roll), zoom=zoom, lens=lens)
    other = direct_render(rig.renderer, rig.planner.inner_pass(moved).VP_unscanned, CAM)
    assert np.abs(other.astype(int) - photo.astype(int))[inside].mean() > 2 * mae


# ---- outer image, unmapped pixels, mappings ----------------------------------------------------------------
def look_at_vp(eye, target, half_tan=0.004, near=0.05, far=1000.0) -> np.ndarray:
    """A narrow symmetric view from ``eye`` at ``target`` (stage), Z up (the conventions' GL eye)."""
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    V = np.eye(4)
    V[:3, :3] = np.array([r, u, -f])
    V[:3, 3] = -V[:3, :3] @ eye
    n, t = near, near * half_tan
    P = np.array([[n / t, 0, 0, 0], [0, n / t, 0, 0],
                  [0, 0, -(far + n) / (far - n), -2 * far * n / (far - n)], [0, 0, -1, 0]])
    return P @ V


def test_outer_image_is_the_scene_from_the_outer_viewpoint(rigs) -> None:
    rig = rigs["demo"]
    cs = camera_state_from_pose(rig.stage, (0.0, 0.2, 1.6, 0.0, 0.0, 0.0), zoom=0.5)
    _, outer_only = rig.render([cs], OperatorFlags(inner_enabled=False))
    eye = np.array(rig.stage.render.outer.viewpoint)
    rng = np.random.default_rng(5)
    errs = []
    for wi, wall in enumerate(rig.stage.walls):
        g = wall.geometry
        xy = np.floor(rng.uniform([0, 0], [g.width_px, g.height_px], size=(40, 2))) + 0.5
        pts = g.raster_to_stage(xy)
        for L in rig.layouts:
            c, shown = L.raster_to_canvas(wi, xy)
            for k in np.flatnonzero(shown):
                got = outer_only[L.key][int(c[k, 1]), int(c[k, 0]), :3].astype(int)
                ref = direct_render(rig.renderer, look_at_vp(eye, pts[k]), (8, 8))[3:5, 3:5].reshape(-1, 3)
                errs.append(np.abs(got - ref.mean(axis=0)).max())
    errs = np.array(errs)
    print(f"\nouter image vs direct renders from the viewpoint: median {np.median(errs):.1f}/255, "
          f"90 % {np.percentile(errs, 90):.1f}/255 over {len(errs)} wall pixels")
    assert len(errs) == 80
    assert np.median(errs) <= 2.0 and np.percentile(errs, 90) <= 8.0
    # in a normal frame, wall pixels far outside the inner frustum show exactly that outer image
    plan, canvases = rig.render([cs])
    ip = plan.inner[0]
    for wi, wall in enumerate(rig.stage.walls):
        g = wall.geometry
        ys, xs = np.mgrid[0:g.height_px:37, 0:g.width_px:37]
        xy = np.column_stack([xs.ravel(), ys.ravel()]) + 0.5
        clip = np.column_stack([g.raster_to_stage(xy), np.ones(len(xy))]) @ ip.VP.T
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc = clip[:, :2] / clip[:, 3:4]
        far_out = (clip[:, 3] <= 0) | (np.max(np.abs(ndc), axis=1) > 1.2)
        for L in rig.layouts:
            c, shown = L.raster_to_canvas(wi, xy)
            sel = shown & far_out
            ci = np.floor(c[sel]).astype(int)
            np.testing.assert_array_equal(canvases[L.key][ci[:, 1], ci[:, 0]],
                                          outer_only[L.key][ci[:, 1], ci[:, 0]])


def test_unmapped_canvas_pixels_are_black(rigs) -> None:
    rig = rigs["demo"]
    _, canvases = rig.render([camera_state_from_pose(rig.stage, (0.3, 1.0, 1.6, 5.0, 30.0, 4.0), zoom=0.0)])
    for L in rig.layouts:
        mapped = np.zeros(L.canvas[::-1], dtype=bool)
        for m in L.mappings:
            x, y, w, h = m.canvas_rect
            mapped[y:y + h, x:x + w] = True
        img = canvases[L.key]
        assert img.shape == (1080, 1920, 4) and img.dtype == np.uint8
        assert np.all(img[~mapped][:, :3] == 0) and np.all(img[..., 3] == 255)
        assert img[mapped][:, :3].max(axis=1).min() > 0, f"{L.key}: a mapped pixel is black"


def test_ceiling_rotated_90_on_out3(rigs) -> None:
    """demo out3 maps ceiling rect (0, 0, 1056, 1408) at (0, 0) turned 90 degrees clockwise: the LED pixel
    (x, y) of the ceiling is canvas pixel (1407 - y, x) (written out here, not through canvas.py)."""
    rig = rigs["demo"]
    cs = camera_state_from_pose(rig.stage, (-0.5, 1.5, 1.6, 0.0, 80.0, 0.0), zoom=0.0)
    plan, canvases = rig.render([cs])
    ip = plan.inner[0]
    inner = rig.renderer.inner_image(ip.camera, linear=True)
    g = rig.stage.wall("ceiling").geometry
    out3 = canvases["tessera-b/out3"]
    rng = np.random.default_rng(9)
    checked = 0
    far_from_transposed = 0
    for x, y in rng.integers(0, 1056, size=(400, 2)):
        p = g.raster_to_stage(np.array([[x + 0.5, y + 0.5]]))[0]
        c = ip.VP @ np.append(p, 1.0)
        ndc = c[:2] / c[3]
        if c[3] <= 0 or np.max(np.abs(ndc)) > 0.9:
            continue
        # expected: the inner image, bilinear at the projected point (image row 0 = top)
        u, v = (ndc[0] + 1) / 2 * INNER[0] - 0.5, (1 - ndc[1]) / 2 * INNER[1] - 0.5
        i0, j0 = int(np.floor(u)), int(np.floor(v))
        fu, fv = u - i0, v - j0
        quad = inner[j0:j0 + 2, i0:i0 + 2, :3]
        lin = ((1 - fv) * ((1 - fu) * quad[0, 0] + fu * quad[0, 1])
               + fv * ((1 - fu) * quad[1, 0] + fu * quad[1, 1]))
        expected = np.rint(srgb_encode(lin) * 255)
        got = out3[x, 1407 - y, :3].astype(float)
        assert np.abs(got - expected).max() <= 3, f"ceiling pixel ({x}, {y}): {got} != {expected}"
        if np.abs(out3[y, x, :3].astype(float) - expected).max() > 6:  # where it would be unrotated
            far_from_transposed += 1
        checked += 1
    assert checked > 100
    assert far_from_transposed > 10, "the unrotated placement would match too: the test proves nothing"
    # the ceiling raster's top-left cabinet is at the canvas's top-right
    c, shown = rig.layouts[2].raster_to_canvas(1, np.array([[0.5, 0.5], [1055.5, 0.5], [0.5, 1407.5]]))
    assert shown.all()
    np.testing.assert_array_equal(np.floor(c), [[1407, 0], [1407, 1055], [0, 0]])


# ---- soft edge and several cameras with known images -------------------------------------------------------
def _fill_inner(renderer, camera, rgb):
    t = renderer.inner.targets[camera]
    img = np.empty((t.height, t.width, 4), dtype=np.float32)
    img[...] = (*rgb, 1.0)
    t.color.upload(img)


def _black_outer(renderer, plan):
    clear_framebuffer(renderer.outer.target.framebuffer)
    renderer.compositor.update_cache(renderer.outer.key, plan.uniforms, renderer.outer.texture, force=True)


def _expected_out1(stage, inner_passes, colours):
    """Expected sRGB codes of demo out1 (main wall columns 0-9, unrotated at (0, 0)): outer black, each camera
    a constant colour mixed over with its soft-edge weight, in order."""
    g = stage.wall("main").geometry
    ys, xs = np.mgrid[0:1056, 0:1760]
    xy = np.column_stack([xs.ravel(), ys.ravel()]) + 0.5
    pts = np.column_stack([g.raster_to_stage(xy), np.ones(len(xy))])
    col = np.zeros((len(xy), 3))
    for ip, rgb in zip(inner_passes, colours):
        clip = pts @ ip.VP.T
        with np.errstate(divide="ignore", invalid="ignore"):
            w = soft_edge_weight(clip[:, :2] / clip[:, 3:4], clip[:, 3], ip.soft_edge)
        col = col * (1 - w[:, None]) + np.asarray(rgb)[None, :] * w[:, None]
    return np.rint(srgb_encode(col) * 255).reshape(1056, 1760, 3), w.reshape(1056, 1760)


def test_soft_edge_ramp_on_the_wall(gl, demo) -> None:
    planner = FramePlanner(demo, inner_resolution=(320, 180))
    with StageRenderer(demo, gl) as r:
        cs = camera_state_from_pose(demo, (0.3, 0.6, 1.6, 8.0, 3.0, 5.0), zoom=0.6)
        plan = planner.plan([cs])
        assert r.render_frame(plan).ok
        _fill_inner(r, cs.name, (1.0, 1.0, 1.0))
        _black_outer(r, plan)
        frozen = planner.plan([cs], OperatorFlags(freeze_inner=True))
        assert frozen.inner[0].frozen
        res = r.render_frame(frozen, finish_passes=True)
        assert res.ok and "inner:cam-a" not in res.timings_ns and "outer" not in res.timings_ns
        got = r.canvases()["tessera-a/out1"][:1056, :1760, :3].astype(int)
        expected, w = _expected_out1(demo, frozen.inner, [(1.0, 1.0, 1.0)])
        diff = np.abs(got - expected)
        ramp = (w > 0) & (w < 1)
        assert ramp.sum() > 1000, "the soft edge crosses the canvas"
        assert diff.max() <= 2, f"soft edge differs from the documented ramp by {diff.max()} codes"
        assert np.all(got[w == 0] == 0) and np.all(got[w == 1] == 255)
        # monotone: along the row through the middle of the frustum, never decreasing toward the centre
        row = got[int(np.argmax(w.sum(axis=1))), :, 0]
        centre = int(np.argmax(row))
        assert np.all(np.diff(row[:centre + 1]) >= 0) and np.all(np.diff(row[centre:]) <= 0)


def test_later_cameras_composite_over_earlier(gl, demo) -> None:
    planner = FramePlanner(demo, inner_resolution=(320, 180))
    a = camera_state_from_pose(demo, (0.0, 0.4, 1.6, 0.0, 0.0, 0.0), zoom=0.3)
    b = dataclasses.replace(camera_state_from_pose(demo, (0.4, 0.4, 1.5, -4.0, 4.0, 10.0), zoom=0.9),
                            name="cam-b")
    with StageRenderer(demo, gl) as r:
        plan = planner.plan([a, b])
        assert r.render_frame(plan).ok
        _fill_inner(r, "cam-a", (1.0, 0.0, 0.0))
        _fill_inner(r, "cam-b", (0.0, 1.0, 0.0))
        _black_outer(r, plan)
        frozen = planner.plan([a, b], OperatorFlags(freeze_inner=True))
        assert r.render_frame(frozen).ok
        got = r.canvases()["tessera-a/out1"][:1056, :1760, :3].astype(int)
    expected, w_b = _expected_out1(demo, frozen.inner, [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)])
    assert np.abs(got - expected).max() <= 2
    assert np.all(got[w_b == 1] == (0, 255, 0)), "camera b is on top where it has full weight"
    assert (got[..., 0] == 255).sum() > 1000, "camera a shows where camera b does not reach"


# ---- robustness --------------------------------------------------------------------------------------------
def test_a_failing_frame_keeps_the_last_good_canvases(gl, flat) -> None:
    from OpenGL import GL

    planner = FramePlanner(flat, inner_resolution=(320, 180))
    pose_a, pose_b = (0.0, 0.0, 1.7, 0.0, 0.0, 0.0), (1.0, 0.5, 1.4, -15.0, 5.0, 3.0)
    with StageRenderer(flat, gl) as r:
        # before any good frame: the safe image (black)
        r.fault_hook = lambda name: (_ for _ in ()).throw(RuntimeError("boom")) if name == "begin" else None
        res = r.render_frame(planner.plan([camera_state_from_pose(flat, pose_a)], frame=1))
        assert not res.ok and res.showing == "safe image" and res.failures == 1
        assert np.all(r.canvases()["proc/out1"][..., :3] == 0)
        r.fault_hook = None
        good = r.render_frame(planner.plan([camera_state_from_pose(flat, pose_a)], frame=2))
        assert good.ok and good.frame == 2
        last_good = r.canvases()["proc/out1"].copy()
        # 1. an exception in the middle of a pass
        r.fault_hook = (lambda name: (_ for _ in ()).throw(RuntimeError("injected"))
                        if name.startswith("composite") else None)
        bad = r.render_frame(planner.plan([camera_state_from_pose(flat, pose_b)], frame=3))
        assert not bad.ok and bad.failed_pass == "composite:proc/out1" and "injected" in bad.error
        assert bad.failures == 2 and bad.showing == "last good frame 2"
        np.testing.assert_array_equal(r.canvases()["proc/out1"], last_good)
        # 2. a GL error inside a pass (reported by the pass, the GL error queue drained)
        r.fault_hook = lambda name: GL.glEnable(0xDEAD) if name == "inner:cam" else None
        bad = r.render_frame(planner.plan([camera_state_from_pose(flat, pose_b)], frame=4))
        assert not bad.ok and "GL_INVALID_ENUM" in bad.error and bad.failed_pass == "inner:cam"
        np.testing.assert_array_equal(r.canvases()["proc/out1"], last_good)
        # 3. a plan with a NaN matrix
        r.fault_hook = None
        plan = planner.plan([camera_state_from_pose(flat, pose_b)], frame=5)
        VP = plan.inner[0].VP.copy()
        VP[1, 2] = np.nan
        broken = dataclasses.replace(plan, inner=(dataclasses.replace(plan.inner[0], VP=VP),))
        bad = r.render_frame(broken)
        assert not bad.ok and "non-finite" in bad.error
        np.testing.assert_array_equal(r.canvases()["proc/out1"], last_good)
        # the front framebuffer (what a window would show) holds the last good frame too
        from stagectl.render.gl.readback import read_pixels

        np.testing.assert_array_equal(read_pixels(r.front_framebuffer("proc/out1")), last_good)
        assert r.stats.failed == 4 and r.stats.good == 1 and r.stats.last_good_frame == 2
        # rendering resumes: the next frame is good and equals a fresh renderer's
        res = r.render_frame(plan)
        assert res.ok
        resumed = r.canvases()["proc/out1"].copy()
        assert not np.array_equal(resumed, last_good)
    with StageRenderer(flat, gl) as fresh:
        assert fresh.render_frame(plan).ok
        np.testing.assert_array_equal(fresh.canvases()["proc/out1"], resumed)


def test_safe_image_policy(gl, flat) -> None:
    planner = FramePlanner(flat, inner_resolution=(320, 180))
    safe = np.zeros((1080, 1920, 4), dtype=np.uint8)
    safe[..., 2] = 200
    safe[..., 3] = 255
    safe[:540, :960, 0] = 90
    with StageRenderer(flat, gl, failure_policy="safe", safe_images={"proc/out1": safe}) as r:
        np.testing.assert_array_equal(r.canvases()["proc/out1"], safe)
        plan = planner.plan([camera_state_from_pose(flat, (0.0, 0.0, 1.7, 0.0, 0.0, 0.0))])
        assert r.render_frame(plan).ok
        img = r.canvases()["proc/out1"].copy()
        assert np.all(img[:, 1760:, :3] == 0), "a good frame after the safe image has black unmapped pixels"
        r.fault_hook = lambda name: 1 / 0 if name == "readback" else None
        res = r.render_frame(plan)
        assert not res.ok and res.showing == "safe image" and "ZeroDivisionError" in res.error
        np.testing.assert_array_equal(r.canvases()["proc/out1"], safe)
        r.fault_hook = None
        assert r.render_frame(plan).ok
        np.testing.assert_array_equal(r.canvases()["proc/out1"], img)


def test_blackout_then_back(gl, demo) -> None:
    planner = FramePlanner(demo, inner_resolution=(320, 180))
    cs = camera_state_from_pose(demo, (0.2, 0.5, 1.6, 5.0, 2.0, 0.0), zoom=0.3)
    with StageRenderer(demo, gl) as r:
        assert r.render_frame(planner.plan([cs])).ok
        first = {k: v.copy() for k, v in r.canvases().items()}
        assert r.render_frame(planner.plan([cs], OperatorFlags(blackout=True))).ok
        for img in r.canvases().values():
            assert np.all(img[..., :3] == 0)
        for _ in range(2):  # both canvas buffers come back whole
            assert r.render_frame(planner.plan([cs])).ok
            for k, img in r.canvases().items():
                np.testing.assert_array_equal(img, first[k])


def test_moving_camera_restores_tiles_and_dynamic_outer_agrees(gl, demo) -> None:
    """Tiles the inner frustum leaves get the outer image back (static outer, cached canvases); rendering the
    outer every frame (dynamic content path) gives the same canvases."""
    poses = [(-1.0, 0.5, 1.6, 20.0, 0.0, 0.0), (1.0, 0.5, 1.6, -25.0, 10.0, 0.0),
             (0.0, 1.0, 1.6, 0.0, 60.0, 0.0)]
    static = FramePlanner(demo, inner_resolution=(320, 180))
    dynamic = FramePlanner(demo, inner_resolution=(320, 180), outer_static=False)
    with StageRenderer(demo, gl) as r1, StageRenderer(demo, gl) as r2:
        for i, pose in enumerate(poses):
            cs = camera_state_from_pose(demo, pose, zoom=0.4)
            res1 = r1.render_frame(static.plan([cs], frame=i), finish_passes=True)
            res2 = r2.render_frame(dynamic.plan([cs], frame=i), finish_passes=True)
            assert res1.ok and res2.ok
            assert ("outer" in res2.timings_ns) and (("outer" in res1.timings_ns) == (i == 0))
            for k, img in r1.canvases().items():
                np.testing.assert_array_equal(img, r2.canvases()[k])


def test_async_readback_delivers_the_same_canvases(gl, flat) -> None:
    planner = FramePlanner(flat, inner_resolution=(320, 180))
    plans = [planner.plan([camera_state_from_pose(flat, (x, 0.0, 1.7, 0.0, 0.0, 0.0))], frame=i)
             for i, x in enumerate((-0.5, 0.0, 0.5))]
    with StageRenderer(flat, gl) as sync, StageRenderer(flat, gl, readback="async") as asy:
        for p in plans:
            assert sync.render_frame(p).ok and asy.render_frame(p).ok
        asy.flush()
        assert asy.canvases_frame == 2
        np.testing.assert_array_equal(asy.canvases()["proc/out1"], sync.canvases()["proc/out1"])
        expected = sync.canvases()["proc/out1"].copy()
    with StageRenderer(flat, gl, readback="none") as lazy:
        assert lazy.render_frame(plans[-1]).ok
        np.testing.assert_array_equal(lazy.canvases()["proc/out1"], expected)


def test_inner_image_rows_are_top_first(rigs) -> None:
    rig = rigs["flat"]
    cs = camera_state_from_pose(rig.stage, (0.0, 0.0, 1.7, 0.0, 5.0, 0.0))
    rig.render([cs])
    img = rig.renderer.inner_image(cs.name).astype(int)
    assert img.shape == (INNER[1], INNER[0], 4)
    # sky (blue) at the top, warm grey ground at the bottom
    assert np.median(img[:20, :, 2] - img[:20, :, 0]) > 25
    assert np.median(img[-20:, :, 0] - img[-20:, :, 2]) > 5
    lin = rig.renderer.inner_image(cs.name, linear=True)
    assert lin.dtype == np.float32 and abs(float(srgb_encode(lin[0, 0, 2]) * 255) - img[0, 0, 2]) <= 0.5


# ---- the snapshot command ----------------------------------------------------------------------------------
def test_snapshot_command_writes_canvases_inner_and_matrices(tmp_path, demo) -> None:
    out = tmp_path / "snap"
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "stagectl.cli", "snapshot", str(STAGES / "demo.yaml"),
         "--pose=0.4,0.6,1.6,8,3,2", "--zoom", "0.4", "--focus", "0.2", "--inner-resolution", "960x540",
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "snapshot.json" in proc.stdout
    doc = json.loads((out / "snapshot.json").read_text())
    canvases = {}
    for o in doc["outputs"]:
        img = cv2.imread(str(out / o["file"]), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (1080, 1920, 3)
        canvases[o["key"]] = img[..., ::-1]  # BGR on disk -> RGB
    assert sorted(canvases) == ["tessera-a/out1", "tessera-a/out2", "tessera-b/out3"]
    inner = cv2.imread(str(out / doc["inner"]["file"]), cv2.IMREAD_COLOR)[..., ::-1]
    assert inner.shape == (540, 960, 3)
    VP = np.array(doc["VP"])
    np.testing.assert_allclose(VP, np.array(doc["P"]) @ np.array(doc["V"]), atol=1e-9)
    assert doc["lens"]["zoom"] == 0.4 and doc["lens"]["focal_mm"] > 24
    assert doc["covered"]["main"]["count"] > 0
    # a covered wall point, reprojected with the JSON's VP into the inner image, has the canvas's colour
    g = demo.wall("main").geometry
    layouts = canvas_layouts(demo)
    errs = []
    for col, row in doc["covered"]["main"]["cabinets_col_row"]:
        xy = np.array([[col * 176 + 88.5, row * 176 + 88.5]])
        p = g.raster_to_stage(xy)[0]
        c = VP @ np.append(p, 1.0)
        ndc = c[:2] / c[3]
        if c[3] <= 0 or np.max(np.abs(ndc)) > 0.85:
            continue
        u, v = (ndc[0] + 1) / 2, (1 - ndc[1]) / 2
        expected = inner[int(v * 540), int(u * 960)].astype(int)
        for L in layouts:
            cc, shown = L.raster_to_canvas(0, xy)
            if shown[0]:
                got = canvases[L.key][int(cc[0, 1]), int(cc[0, 0])].astype(int)
                errs.append(np.abs(got - expected).max())
    assert len(errs) >= 3
    assert np.median(errs) <= 3, errs


def test_snapshot_command_refuses_bad_arguments(tmp_path) -> None:
    run = lambda *a: subprocess.run([sys.executable, "-m", "stagectl.cli", "snapshot", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=REPO, timeout=60)
    p = run(str(STAGES / "demo.yaml"), "--pose", "1,2,3", "--out", str(tmp_path))
    assert p.returncode == 2 and "--pose" in p.stderr and "Traceback" not in p.stderr
    p = run(str(STAGES / "demo.yaml"), "--pose", "1,2,3,4,5,6", "--camera", "nope", "--out", str(tmp_path))
    assert p.returncode == 2 and "nope" in p.stderr and "Traceback" not in p.stderr
