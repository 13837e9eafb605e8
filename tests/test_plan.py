"""The frame plan without a GL context: camera state, matrices against docs/conventions.md written out in
numpy, the outer cube atlas, canvas tiles and their classification, operator flags, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import STAGES
from helpers import rot_ptr

from stagectl.core.camera import CameraState, LensValues, OperatorFlags
from stagectl.render.camera import DEFAULT_FOCAL_MM, camera_state_from_pose
from stagectl.render.canvas import canvas_layouts
from stagectl.render.frustum import coverage
from stagectl.render.outer import CUBE_FACES, cube_face_size
from stagectl.render.passes import MAX_CAMERAS, PlanError
from stagectl.render.plan import FramePlanner
from stagectl.render.tiles import canvas_tiles, classify_tiles, soft_edge_weight
from stagectl.stage import load_stage

T_GL_CAMERA = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@pytest.fixture(scope="module")
def planner(demo):
    return FramePlanner(demo)


# ---- the conventions, written out --------------------------------------------------------------------------

def pose_T(x, y, z, pan, tilt, roll):
    T = np.eye(4)
    T[:3, :3] = rot_ptr(pan, tilt, roll)
    T[:3, 3] = (x, y, z)
    return T


def gl_frustum(l, r, b, t, n, f):
    return np.array([
        [2 * n / (r - l), 0, (r + l) / (r - l), 0],
        [0, 2 * n / (t - b), (t + b) / (t - b), 0],
        [0, 0, -(f + n) / (f - n), -2 * f * n / (f - n)],
        [0, 0, -1, 0],
    ])


def camera_P(f, sw, sh, px, py, ov, n, far):
    l, r = n * (-sw / 2 - px) / f, n * (sw / 2 - px) / f
    b, t = n * (-sh / 2 - py) / f, n * (sh / 2 - py) / f
    w, h = r - l, t - b
    return gl_frustum(l - ov[0] / 100 * w, r + ov[1] / 100 * w, b - ov[2] / 100 * h, t + ov[3] / 100 * h,
                      n, far)


# ---- camera state ------------------------------------------------------------------------------------------
def test_camera_state_applies_tracker_offset_and_lens_file(demo) -> None:
    pose = (0.4, 0.9, 1.55, 12.0, -4.0, 3.0)
    cs = camera_state_from_pose(demo, pose, zoom=0.37, focus=0.2)
    cam = demo.cameras[0]
    T_body_camera = pose_T(*cam.tracker_offset_translation, *cam.tracker_offset_rotation)
    np.testing.assert_allclose(cs.T_stage_camera, pose_T(*pose) @ T_body_camera, atol=1e-12)
    ev = cam.lens_file.evaluate(0.37, 0.2)
    assert cs.lens.focal_mm == pytest.approx(ev.focal_length_mm)
    assert cs.lens.principal_point_mm == pytest.approx(ev.principal_point_offset_mm)
    assert cs.lens.pupil_offset_m == pytest.approx(ev.entrance_pupil_offset_m)
    assert "lens file" in cs.lens.source
    assert cs.sensor_mm == pytest.approx(cam.sensor_mm)


def test_camera_without_lens_file_uses_35mm_and_says_so(flat) -> None:
    cs = camera_state_from_pose(flat, (0, 0, 1.7, 0, 0, 0), zoom=0.9)
    assert cs.lens.focal_mm == DEFAULT_FOCAL_MM == 35.0
    assert cs.lens.principal_point_mm == (0.0, 0.0) and cs.lens.pupil_offset_m == 0.0
    assert "no lens file" in cs.lens.source and "35 mm" in cs.lens.source


def test_inner_pass_matrices_follow_the_conventions(demo, planner) -> None:
    pose = (-0.7, 0.6, 1.4, -18.0, 9.0, -6.0)
    cs = camera_state_from_pose(demo, pose, zoom=0.8, focus=0.5)
    ip = planner.plan([cs]).inner[0]
    lens = cs.lens
    T_camera_pupil = np.eye(4)
    T_camera_pupil[1, 3] = lens.pupil_offset_m
    T_stage_pupil = cs.T_stage_camera @ T_camera_pupil
    V = T_GL_CAMERA @ np.linalg.inv(T_stage_pupil)
    sw, sh = cs.sensor_mm
    # the stage's overscan plus the lens's distortion overscan at this zoom/focus
    ov = np.add(demo.render.inner.overscan_percent,
                demo.cameras[0].lens_file.evaluate(0.8, 0.5).overscan(cs.sensor_mm).percent())
    P = camera_P(lens.focal_mm, sw, sh, *lens.principal_point_mm, ov, ip.near, ip.far)
    P0 = camera_P(lens.focal_mm, sw, sh, *lens.principal_point_mm, (0, 0, 0, 0), ip.near, ip.far)
    np.testing.assert_allclose(ip.T_stage_pupil, T_stage_pupil, atol=1e-12)
    np.testing.assert_allclose(ip.V, V, atol=1e-12)
    np.testing.assert_allclose(ip.P, P, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ip.VP, P @ V, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ip.VP_unscanned, P0 @ V, rtol=1e-10, atol=1e-10)
    assert ip.resolution == demo.render.inner.resolution
    assert ip.soft_edge == demo.render.inner.soft_edge
    np.testing.assert_allclose(ip.pupil, T_stage_pupil[:3, 3])


def test_sensor_corner_ray_lands_on_frustum_corner_with_and_without_overscan(demo, planner) -> None:
    # the stage's 10 % alone (overscan_pct None), without the lens's distortion share
    cs = dataclasses.replace(camera_state_from_pose(demo, (0.2, 0.3, 1.6, 5, 2, 1), zoom=0.5), overscan_pct=None)
    ip = planner.plan([cs]).inner[0]
    f, (px, py) = cs.lens.focal_mm, cs.lens.principal_point_mm
    sw, sh = cs.sensor_mm
    # the top-right sensor corner seen from the pupil: camera-frame direction (x right, y forward, z up)
    d_cam = np.array([(sw / 2 - px) / f, 1.0, (sh / 2 - py) / f])
    p = ip.T_stage_pupil @ np.append(3.0 * d_cam, 1.0)
    c0 = ip.VP_unscanned @ p
    np.testing.assert_allclose(c0[:2] / c0[3], [1.0, 1.0], atol=1e-9)
    c = ip.VP @ p
    # 10 % on every side: the frustum is 1.2 x as wide, the sensor corner at 1 / 1.2
    np.testing.assert_allclose(c[:2] / c[3], [1 / 1.2, 1 / 1.2], atol=1e-9)


def test_inner_pass_coverage_matches_frustum_core(demo, planner) -> None:
    cs = camera_state_from_pose(demo, (0.9, 1.0, 1.5, 25, 20, 0), zoom=0.1)
    ip = planner.plan([cs]).inner[0]
    for i, wall in enumerate(demo.walls):
        g = wall.geometry
        cov, _, _ = coverage(ip.VP, g.cabinet_corner_grid(), g.rows, g.cols)
        np.testing.assert_array_equal(ip.covered[i].ravel(), cov)
    assert ip.covered[0].any()


def test_plan_copies_its_matrices(demo, planner) -> None:
    a = planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))]).inner[0]
    VP = a.VP.copy()
    planner.plan([camera_state_from_pose(demo, (1, 1, 1.2, 30, 10, 5))])
    np.testing.assert_array_equal(a.VP, VP)


# ---- soft edge ---------------------------------------------------------------------------------------------
def test_soft_edge_weight_is_monotone_and_exact() -> None:
    x = np.linspace(-1.3, 0.0, 1001)
    ndc = np.column_stack([x, np.zeros_like(x)])
    w = soft_edge_weight(ndc, np.ones_like(x), 0.05)
    assert np.all(np.diff(w) >= 0), "weight must not decrease toward the centre"
    assert np.all(w[x <= -1.0] == 0.0) and np.all(w[x >= -0.95] == 1.0)
    d = 1 - np.abs(x)
    a = np.clip(d / 0.05, 0, 1)
    np.testing.assert_allclose(w, a * a * (3 - 2 * a))
    # behind the eye: nothing, whatever the NDC
    assert np.all(soft_edge_weight(ndc, -np.ones_like(x), 0.05) == 0)
    # hard edge
    hard = soft_edge_weight(ndc, np.ones_like(x), 0.0)
    assert set(np.unique(hard)) <= {0.0, 1.0} and np.all(hard[x > -0.999] == 1.0)


# ---- outer cube atlas --------------------------------------------------------------------------------------
def test_cube_face_size_from_outer_resolution(demo) -> None:
    assert cube_face_size((1024, 512)) == 256
    assert cube_face_size((2048, 512)) == 512
    assert cube_face_size((256, 512)) == 256
    assert cube_face_size((8, 8)) == 16


def _shader_face(d: np.ndarray) -> np.ndarray:
    """composite.frag's face choice: axis of the largest |component| (x wins ties, then y), and its sign."""
    a = np.abs(d)
    axis = np.where(a[:, 0] >= a[:, 1], np.where(a[:, 0] >= a[:, 2], 0, 2),
                    np.where(a[:, 1] >= a[:, 2], 1, 2))
    major = d[np.arange(len(d)), axis]
    return 2 * axis + (major < 0)


@pytest.mark.parametrize("stage_name", ["demo.yaml", "flat_wall.yaml"])
def test_outer_faces_cover_every_wall_pixel_and_tiles_agree_with_face_matrices(stage_name) -> None:
    stage = load_stage(STAGES / stage_name)
    outer = FramePlanner(stage).outer
    used = {f.index for f in outer.faces}
    eye = np.array(outer.viewpoint)
    rng = np.random.default_rng(3)
    for wall in stage.walls:
        g = wall.geometry
        xy = rng.uniform([0, 0], [g.width_px, g.height_px], size=(4000, 2))
        p = g.raster_to_stage(xy)
        d = p - eye
        faces = _shader_face(d)
        assert set(np.unique(faces)) <= used, f"{wall.name}: a wall pixel is seen through an unrendered face"
        for fi in np.unique(faces):
            face = outer.all_faces[fi]
            sel = faces == fi
            e = d[sel] @ face.rotation.T  # rows right, up, forward
            ndc_exact = e[:, :2] / e[:, 2:3]
            assert np.all(np.abs(ndc_exact) <= 1 + 1e-9)
            texel_shader = np.array(face.origin) + (0.5 * ndc_exact + 0.5) * outer.face_size
            # the same point through the matrix the face is rendered with, into its viewport
            clip = (face.VP @ np.column_stack([p[sel], np.ones(sel.sum())]).T).T
            ndc_render = clip[:, :2] / clip[:, 3:4]
            vx, vy, vw, vh = face.viewport
            texel_render = np.array([vx, vy]) + (0.5 * ndc_render + 0.5) * np.array([vw, vh])
            np.testing.assert_allclose(texel_shader, texel_render, atol=1e-6)
    # tiles do not overlap and fit the atlas
    aw, ah = outer.atlas_size
    for f in outer.all_faces:
        x, y, w, h = f.viewport
        assert w == h == outer.tile and x + w <= aw and y + h <= ah
    assert len({f.viewport for f in outer.all_faces}) == len(CUBE_FACES)


def test_flat_wall_needs_only_the_forward_face(flat) -> None:
    assert [f.name for f in FramePlanner(flat).outer.faces] == ["+y"]


# ---- canvas tiles ------------------------------------------------------------------------------------------
def test_tiles_cover_the_mapped_pixels_exactly_and_carry_stage_positions(demo) -> None:
    for L in canvas_layouts(demo):
        t = canvas_tiles(L, 64)
        mapped = sum(m.rect[2] * m.rect[3] for m in L.mappings)
        lo, hi = t.canvas_xy.min(axis=1), t.canvas_xy.max(axis=1)
        assert np.sum(np.prod(hi - lo, axis=1)) == pytest.approx(mapped)
        assert np.all(np.prod(hi - lo, axis=1) <= 64 * 64 + 1e-9)
        np.testing.assert_allclose(t.canvas_xy, np.round(t.canvas_xy), atol=1e-9)  # integer pixel edges
        # pixel coverage: every mapped canvas pixel in exactly one tile
        grid = np.zeros(L.canvas[::-1], dtype=np.int32)
        for a, b in zip(lo.astype(int), hi.astype(int)):
            grid[a[1]:b[1], a[0]:b[0]] += 1
        assert grid.max() == 1 and grid.sum() == mapped
        for wi in np.unique(t.wall_index):
            sel = t.wall_index == wi
            g = demo.walls[wi].geometry
            r = t.raster_xy[sel].reshape(-1, 2)
            # a corner on a facet edge belongs to both facets and maps to the same point
            r_in = r - np.where(r[:, :1] >= g.width_px, 1e-9, 0.0) * np.array([1.0, 0.0])
            np.testing.assert_allclose(t.stage_xyz[sel].reshape(-1, 3), g.raster_to_stage(r_in), atol=1e-9)
        verts = t.vertices()
        assert verts.shape == (t.count * 4, 9) and verts.dtype == np.float32
        idx = t.indices(np.array([0, 2]))
        np.testing.assert_array_equal(idx, [0, 1, 2, 0, 2, 3, 8, 9, 10, 8, 10, 11])


def test_tile_classification_is_conservative(demo, planner) -> None:
    rng = np.random.default_rng(11)
    poses = [(0.5, 0.5, 1.6, 10, 5, 0), (-1.0, 1.2, 1.4, -30, 25, 12), (0.0, 2.0, 1.7, 0, 70, 0)]
    for pose in poses:
        ip = planner.plan([camera_state_from_pose(demo, pose, zoom=0.2)]).inner[0]
        for t in planner.tiles:
            c = t.stage_xyz.reshape(-1, 3)
            corners_h = np.vstack([c.T, np.ones(len(c))])
            touched, full = classify_tiles(corners_h, ip.VP, ip.soft_edge)
            # random points inside every tile (bilinear in a planar quad = inside it)
            s, u = rng.uniform(size=(2, t.count, 8))
            q = t.stage_xyz
            pts = ((1 - s)[..., None] * ((1 - u)[..., None] * q[:, None, 0] + u[..., None] * q[:, None, 3])
                   + s[..., None] * ((1 - u)[..., None] * q[:, None, 1] + u[..., None] * q[:, None, 2]))
            clip = np.einsum("ij,tkj->tki", ip.VP, np.concatenate([pts, np.ones(pts.shape[:2] + (1,))], -1))
            with np.errstate(divide="ignore", invalid="ignore"):
                wgt = soft_edge_weight(clip[..., :2] / clip[..., 3:4], clip[..., 3], ip.soft_edge)
            assert np.all(wgt[~touched] == 0.0), "a tile classified untouched has inner weight"
            assert np.all(wgt[full] == 1.0), "a tile classified full has a soft-edge point"


def test_outputs_list_touched_tiles_full_and_blend(demo, planner) -> None:
    plan = planner.plan([camera_state_from_pose(demo, (0.5, 0.5, 1.6, 10, 5, 0), zoom=0.2)])
    assert [o.key for o in plan.outputs] == [L.key for L in canvas_layouts(demo)]
    any_touched = False
    for o in plan.outputs:
        n = plan.tiles[o.layout_index].count
        assert o.touched.shape == (n,)
        assert not set(o.full) & set(o.blend)
        np.testing.assert_array_equal(np.sort(np.concatenate([o.full, o.blend])), np.flatnonzero(o.touched))
        any_touched |= bool(o.touched.any())
        assert o.canvas == (1920, 1080)
    assert any_touched
    u = plan.uniforms
    assert u.camera_count == 1 and u.inner_vp.dtype == np.float32
    np.testing.assert_allclose(u.inner_vp[0], plan.inner[0].VP, rtol=1e-6, atol=1e-6)
    assert u.inv_soft_edge[0] == pytest.approx(1 / demo.render.inner.soft_edge)


# ---- flags and refusals ------------------------------------------------------------------------------------
def test_blackout_and_inner_disabled(demo, planner) -> None:
    cs = camera_state_from_pose(demo, (0.5, 0.5, 1.6, 10, 5, 0))
    bo = planner.plan([cs], OperatorFlags(blackout=True))
    assert all(o.blackout and not o.touched.any() for o in bo.outputs)
    off = planner.plan([cs], OperatorFlags(inner_enabled=False))
    assert all(o.layers == () and not o.touched.any() for o in off.outputs)
    assert off.uniforms.camera_count == 0


def test_freeze_keeps_the_last_inner_frusta(demo) -> None:
    planner = FramePlanner(demo)
    a = planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))], frame=1)
    b = planner.plan([camera_state_from_pose(demo, (1, 1, 1.2, 30, 0, 0))], OperatorFlags(freeze_inner=True),
                     frame=2)
    assert b.inner[0].frozen and not a.inner[0].frozen
    np.testing.assert_array_equal(a.inner[0].VP, b.inner[0].VP)
    c = planner.plan([camera_state_from_pose(demo, (1, 1, 1.2, 30, 0, 0))], frame=3)
    assert not c.inner[0].frozen and not np.allclose(c.inner[0].VP, a.inner[0].VP)


def test_several_cameras_in_order(demo, planner) -> None:
    a = camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))
    b = dataclasses.replace(camera_state_from_pose(demo, (1, 0.5, 1.5, 20, 0, 0), zoom=0.9), name="cam-b")
    plan = planner.plan([a, b])
    assert [p.camera for p in plan.inner] == ["cam-a", "cam-b"]
    assert plan.outputs[0].layers == (0, 1) and plan.outputs[0].top_layer == 1
    np.testing.assert_allclose(plan.uniforms.inner_vp[1], plan.inner[1].VP, rtol=1e-6, atol=1e-6)


def test_refusals(demo, planner) -> None:
    cs = camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))
    T = cs.T_stage_camera.copy()
    T[0, 3] = np.nan
    with pytest.raises(PlanError, match="non-finite"):
        planner.plan([CameraState(cs.name, T, cs.lens, cs.sensor_mm)])
    with pytest.raises(PlanError, match="non-finite"):
        planner.plan([CameraState(cs.name, cs.T_stage_camera, LensValues(float("inf")), cs.sensor_mm)])
    many = [dataclasses.replace(cs, name=f"c{i}") for i in range(MAX_CAMERAS + 1)]
    with pytest.raises(PlanError, match="at most"):
        planner.plan(many)
    with pytest.raises(PlanError, match="unique"):
        planner.plan([cs, cs])
    with pytest.raises(PlanError, match="no camera"):
        camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0), camera="nope")
    with pytest.raises(PlanError, match="6 numbers"):
        camera_state_from_pose(demo, (0, 0, 1.7))


def test_a_camera_state_can_carry_its_own_overscan() -> None:
    """Adaptive overscan: a per-frame override of the stage's overscan reaches the inner pass and its matrices."""
    import dataclasses

    from conftest import STAGES

    from stagectl.render.camera import camera_state_from_pose
    from stagectl.render.frustum import compute_camera_projection
    from stagectl.render.plan import FramePlanner
    from stagectl.stage import load_stage

    stage = load_stage(STAGES / "demo.yaml")
    cam = camera_state_from_pose(stage, (0.2, 0.4, 1.6, 4.0, -2.0, 0.0), zoom=0.3, focus=0.2)
    planner = FramePlanner(stage)
    base = planner.plan([cam]).inner[0]
    assert base.overscan_pct == cam.overscan_pct  # the stage's plus the lens's distortion overscan
    assert min(np.subtract(cam.overscan_pct, stage.render.inner.overscan_percent)) > 0
    wide = planner.plan([dataclasses.replace(cam, overscan_pct=(30.0, 30.0, 20.0, 20.0))]).inner[0]
    assert wide.overscan_pct == (30.0, 30.0, 20.0, 20.0)
    lens = cam.lens
    expected = compute_camera_projection(lens.focal_mm, *cam.sensor_mm, *lens.principal_point_mm,
                                         (30.0, 30.0, 20.0, 20.0), planner.near, planner.far)
    np.testing.assert_allclose(wide.P, expected, rtol=1e-12)
    # a wider frustum covers at least the cabinets the narrower one covers
    for narrow_w, wide_w in zip(base.covered, wide.covered):
        assert np.all(wide_w[narrow_w])


@pytest.mark.parametrize("zoom", [0.0, 0.4])
def test_inner_frustum_covers_the_distorted_camera_frame(demo, zoom: float) -> None:
    """A barrel-distorted camera sees past its pinhole frame: the inner frustum (stage overscan + the lens's
    distortion overscan) must still contain every ray of the distorted image border. The rays come from
    OpenCV's undistortPoints (the independent reference); without the distortion overscan they leave it."""
    import cv2

    from stagectl.render.camera import with_distortion_overscan

    cam = demo.cameras[0]
    ev = cam.lens_file.evaluate(zoom, 0.0)
    assert ev.distortion.k1 < 0  # the demo lens is barrel at the wide end
    sw, sh = cam.sensor_mm
    f = ev.focal_length_mm
    px, py = ev.principal_point_offset_mm
    K = np.array([[f, 0, sw / 2 + px], [0, f, sh / 2 - py], [0, 0, 1]])  # sensor mm, y down (OpenCV)
    t = np.linspace(0.0, 1.0, 101)
    border = np.concatenate([np.c_[t * sw, 0 * t], np.c_[t * sw, 0 * t + sh], np.c_[0 * t, t * sh],
                             np.c_[0 * t + sw, t * sh]])
    und = cv2.undistortPoints(border.reshape(-1, 1, 2), K, ev.distortion.opencv()).reshape(-1, 2)
    # OpenCV normalised (x right, y down, z forward) -> camera frame (x right, y forward, z up)
    rays_cam = np.c_[und[:, 0], np.ones(len(und)), -und[:, 1]]

    state = camera_state_from_pose(demo, (0.3, -1.0, 1.7, 12.0, 3.0, 1.0), zoom=zoom)
    planner = FramePlanner(demo, inner_resolution=(64, 36))

    def max_ndc(overscan) -> float:
        ip = planner.inner_pass(dataclasses.replace(state, overscan_pct=overscan))
        pts = ip.T_stage_pupil[:3, :3] @ (3.0 * rays_cam.T) + ip.T_stage_pupil[:3, 3:4]  # 3 m along each ray
        clip = ip.VP @ np.vstack([pts, np.ones(pts.shape[1])])
        return float(np.max(np.abs(clip[:2] / clip[3])))

    covered = with_distortion_overscan((0.0, 0.0, 0.0, 0.0), ev.overscan(cam.sensor_mm).percent())
    assert max_ndc(covered) <= 1.0 + 1e-3  # every border ray inside (the edge ray on the edge)
    assert max_ndc(covered) >= 0.99  # and tight: the overscan is not simply generous
    assert max_ndc((0.0, 0.0, 0.0, 0.0)) > 1.01  # the pinhole frustum misses the distorted corners
    # the camera state from a lens file already carries stage overscan + distortion overscan
    base = demo.render.inner.overscan_percent
    np.testing.assert_allclose(state.overscan_pct, np.add(base, ev.overscan(cam.sensor_mm).percent()))


def test_a_camera_state_can_carry_its_own_soft_edge(demo, planner) -> None:
    """The operator's per-camera soft edge reaches the inner pass and the composite uniforms; None keeps the
    stage's."""
    a = camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))
    b = dataclasses.replace(camera_state_from_pose(demo, (1, 0.5, 1.5, 20, 0, 0)), name="cam-b", soft_edge=0.25)
    plan = planner.plan([a, b])
    assert [p.soft_edge for p in plan.inner] == [demo.render.inner.soft_edge, 0.25]
    np.testing.assert_allclose(plan.uniforms.inv_soft_edge, [1 / demo.render.inner.soft_edge, 4.0], rtol=1e-6)
