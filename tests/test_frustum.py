"""Numba frustum core (stagectl.render.frustum) vs plain-numpy twins, OpenCV, Kooima's article, samplers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagectl.core.transforms import T_CV_CAMERA, invert_transform, transform_from_pose
from stagectl.render import frustum as F
from stagectl.stage.geometry import (
    WallGeometry,
    ceiling_geometry,
    curved_wall_geometry,
    flat_wall_geometry,
)

# pytest puts tests/ on sys.path (no tests/__init__.py); from the repo root, tests.reference works too
try:
    from reference import frustum_ref as ref
except ImportError:  # pragma: no cover
    from tests.reference import frustum_ref as ref

TOL = 1e-9


def assert_close(actual, expected, tol=TOL, what=""):
    """|a - b| <= tol * max(1, |b|): absolute on normalised quantities, relative on large magnitudes."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), f"{what}: NaN pattern differs"
    ok = ~np.isnan(expected)
    err = np.abs(actual[ok] - expected[ok]) / np.maximum(1.0, np.abs(expected[ok]))
    assert err.size == 0 or err.max() <= tol, f"{what}: max scaled error {err.max():.3e} > {tol:.1e}"


def matrix_close(actual, expected, tol=TOL, what=""):
    """Matrices compared relative to their largest entry."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    err = float(np.max(np.abs(np.asarray(actual) - np.asarray(expected)))) / scale
    assert err <= tol, f"{what}: scaled error {err:.3e} > {tol:.1e}"


# ------------------------------------------------------------------------------------------------------------
# random scenes
# ------------------------------------------------------------------------------------------------------------


def random_wall(rng, kind):
    cab_mm = (float(rng.choice([500.0, 600.0, 1000.0])), float(rng.choice([500.0, 337.5, 1000.0])))
    cab_px = (int(rng.integers(32, 200)), int(rng.integers(32, 200)))
    if kind == "flat":
        return flat_wall_geometry(
            rng.uniform([-3.0, 3.0, 1.0], [3.0, 8.0, 3.0]),
            (rng.uniform(-40, 40), rng.uniform(-20, 20), rng.uniform(-10, 10)),
            int(rng.integers(1, 14)), int(rng.integers(1, 8)), cab_mm, cab_px,
        )
    if kind == "ceiling":
        return ceiling_geometry(
            rng.uniform([-2.0, -1.0, 3.0], [2.0, 4.0, 5.0]), rng.uniform(-180, 180),
            int(rng.integers(1, 10)), int(rng.integers(1, 10)), cab_mm, cab_px,
        )
    if kind == "curved":
        return curved_wall_geometry(
            rng.uniform(-1.0, 1.0, 2), rng.uniform(3.0, 10.0), rng.uniform(-60.0, 120.0),
            rng.uniform(0.0, 0.5), int(rng.integers(2, 22)), int(rng.integers(1, 8)), cab_mm, cab_px,
        )
    raise ValueError(kind)


WALL_KINDS = ("flat", "ceiling", "curved")


def random_pose(rng):
    return (
        *rng.uniform([-2.0, -2.0, 0.5], [2.0, 2.0, 2.5]),
        rng.uniform(-180, 180), rng.uniform(-35, 35), rng.uniform(-20, 20),
    )


def random_lens(rng):
    sw = rng.uniform(20.0, 40.0)
    return dict(
        focal_mm=rng.uniform(12.0, 120.0),
        sensor_w_mm=sw,
        sensor_h_mm=sw / rng.uniform(1.3, 2.4),
        pp_x_mm=rng.uniform(-0.6, 0.6),
        pp_y_mm=rng.uniform(-0.6, 0.6),
        overscan_pct=tuple(rng.uniform(0.0, 20.0, 4)),
        pupil_offset_m=rng.uniform(0.0, 0.25),
    )


def camera_vp(T, lens, near=0.1, far=200.0):
    """Kernel V, P (with overscan) and VP for a lens dict."""
    V = F.compute_view(T, lens["pupil_offset_m"])
    P = F.compute_camera_projection(
        lens["focal_mm"], lens["sensor_w_mm"], lens["sensor_h_mm"], lens["pp_x_mm"], lens["pp_y_mm"],
        lens["overscan_pct"], near, far,
    )
    return V, P, P @ V


def random_screen(rng):
    """A random rectangle (pa, pb, pc, centre, normal) and a random eye in front of it."""
    R = ref.pose_matrix_ref(0, 0, 0, *rng.uniform([-180, -80, -180], [180, 80, 180]))[:3, :3]
    right, up = R[:, 0], R[:, 2]
    normal = np.cross(right, up)
    c = rng.uniform(-5, 5, 3)
    hw, hh = rng.uniform(0.3, 4.0, 2)
    pa = c - hw * right - hh * up
    pb = c + hw * right - hh * up
    pc = c - hw * right + hh * up
    pe = c + rng.uniform(0.5, 10.0) * normal + rng.uniform(-6, 6) * right + rng.uniform(-6, 6) * up
    return pa, pb, pc, pe, c, normal


# ------------------------------------------------------------------------------------------------------------
# matrices
# ------------------------------------------------------------------------------------------------------------


def test_pose_matrix_matches_transforms():
    rng = np.random.default_rng(1)
    out = np.empty((4, 4))
    for _ in range(300):
        args = (*rng.uniform(-20, 20, 3), *rng.uniform(-360, 360, 3))
        F.pose_matrix(*args, out)
        assert_close(out, transform_from_pose(*args), what="pose")
    for tilt in (-90.0, 90.0):
        F.pose_matrix(1.0, 2.0, 3.0, 30.0, tilt, 40.0, out)
        assert_close(out, transform_from_pose(1.0, 2.0, 3.0, 30.0, tilt, 40.0), what="gimbal")


def test_rigid_inverse_and_matmul():
    rng = np.random.default_rng(2)
    inv, prod = np.empty((4, 4)), np.empty((4, 4))
    for _ in range(100):
        A = F.compute_pose(*rng.uniform(-20, 20, 3), *rng.uniform(-180, 180, 3))
        B = rng.normal(size=(4, 4))
        F.rigid_inverse(A, inv)
        assert_close(inv, np.linalg.inv(A), what="inverse")
        F.matmul4(A, B, prod)
        assert_close(prod, A @ B, what="matmul")


def test_view_matrix_vs_ref_and_semantics():
    rng = np.random.default_rng(3)
    for _ in range(200):
        T = F.compute_pose(*random_pose(rng))
        e = rng.uniform(-0.1, 0.3)
        V = F.compute_view(T, e)
        assert_close(V, ref.view_matrix_ref(T, e), what="view")
        pupil = T[:3, 3] + e * T[:3, 1]
        D = rng.uniform(0.5, 20.0)
        # ahead along the optical axis -> GL (0, 0, -D); camera +X -> GL +x; camera +Z (image top) -> GL +y
        for p, expected in (
            (pupil + D * T[:3, 1], (0.0, 0.0, -D)),
            (pupil + T[:3, 0], (1.0, 0.0, 0.0)),
            (pupil + T[:3, 2], (0.0, 1.0, 0.0)),
        ):
            assert_close((V @ np.append(p, 1.0))[:3], expected, what="view semantics")


def test_camera_projection_vs_ref():
    rng = np.random.default_rng(4)
    for _ in range(200):
        L = random_lens(rng)
        near, far = rng.uniform(0.01, 1.0), rng.uniform(20.0, 5000.0)
        P = F.compute_camera_projection(
            L["focal_mm"], L["sensor_w_mm"], L["sensor_h_mm"], L["pp_x_mm"], L["pp_y_mm"], L["overscan_pct"],
            near, far,
        )
        Pr = ref.camera_projection_ref(
            L["focal_mm"], L["sensor_w_mm"], L["sensor_h_mm"], L["pp_x_mm"], L["pp_y_mm"], L["overscan_pct"],
            near, far,
        )
        matrix_close(P, Pr, what="camera projection")


def test_overscan_unscanned_corners():
    rng = np.random.default_rng(5)
    for overscan in ((10.0, 10.0, 10.0, 10.0), (5.0, 15.0, 8.0, 2.0)):
        ol, orr, ob, ot = (v / 100 for v in overscan)
        ex_l, ex_r = (-1 + ol - orr) / (1 + ol + orr), (1 + ol - orr) / (1 + ol + orr)
        ex_b, ex_t = (-1 + ob - ot) / (1 + ob + ot), (1 + ob - ot) / (1 + ob + ot)
        if overscan[0] == 10.0:
            assert (ex_l, ex_r, ex_b, ex_t) == pytest.approx((-1 / 1.2, 1 / 1.2, -1 / 1.2, 1 / 1.2))
        for _ in range(20):
            f, sw, sh = rng.uniform(14, 100), rng.uniform(20, 40), rng.uniform(10, 25)
            px, py = rng.uniform(-1, 1, 2)
            P = F.compute_camera_projection(f, sw, sh, px, py, overscan, 0.1, 100.0)
            D = rng.uniform(1, 50)
            corners = ((-1, -1, ex_l, ex_b), (1, -1, ex_r, ex_b), (-1, 1, ex_l, ex_t), (1, 1, ex_r, ex_t))
            for sx, sy, ex, ey in corners:
                # GL-eye point on the ray through the unscanned sensor corner (sensor coords from the axis)
                p = np.array([(sx * sw / 2 - px) / f * D, (sy * sh / 2 - py) / f * D, -D, 1.0])
                clip = P @ p
                assert_close(clip[:2] / clip[3], (ex, ey), what="overscan corner")


def test_principal_point_sign_follows_conventions():
    # pp +x right, +y up: the optical axis lands right of and above the image centre
    T = F.compute_pose(0.0, 0.0, 1.5, 20.0, 5.0, 3.0)
    sw, sh, px, py = 36.0, 24.0, 2.0, 1.0
    _, _, VP = camera_vp(T, dict(focal_mm=35.0, sensor_w_mm=sw, sensor_h_mm=sh, pp_x_mm=px, pp_y_mm=py,
                                 overscan_pct=(0, 0, 0, 0), pupil_offset_m=0.1))
    on_axis = T[:3, 3] + 0.1 * T[:3, 1] + 7.0 * T[:3, 1]
    ndc, w = F.project(VP, on_axis[None])
    assert w[0] == pytest.approx(7.0)
    assert_close(ndc[0, :2], (2 * px / sw, 2 * py / sh), what="principal point ndc")
    u, v = (ndc[0, 0] + 1) / 2, (1 - ndc[0, 1]) / 2
    assert u > 0.5 and v < 0.5


def test_camera_projection_matches_opencv():
    rng = np.random.default_rng(6)
    w_px, h_px = 4000, 2200
    for _ in range(25):
        f = rng.uniform(14.0, 100.0)
        sw = rng.uniform(20.0, 40.0)
        sh = sw * h_px / w_px * rng.uniform(0.9, 1.1)  # non-square pixels allowed
        px, py = rng.uniform(-1.5, 1.5, 2)
        e = rng.uniform(0.0, 0.3)
        T = F.compute_pose(*random_pose(rng))
        lens = dict(focal_mm=f, sensor_w_mm=sw, sensor_h_mm=sh, pp_x_mm=px, pp_y_mm=py,
                    overscan_pct=(0, 0, 0, 0), pupil_offset_m=e)
        _, _, VP = camera_vp(T, lens)
        T_stage_pupil = T @ ref.translate((0, e, 0))
        # points in the camera's view, in pupil coordinates, then to the stage
        n = 200
        xs = rng.uniform(-0.5, 0.5, n) * sw / f
        zs = rng.uniform(-0.5, 0.5, n) * sh / f
        depth = rng.uniform(0.5, 40.0, n)
        local = np.stack([xs * depth, depth, zs * depth, np.ones(n)], axis=1)
        pts = (local @ T_stage_pupil.T)[:, :3]
        ndc, w = F.project(VP, pts)
        assert np.all(w > 0)
        # conventions: u = (x+1)/2, v = (1-y)/2, pixel centre at +0.5; OpenCV: pixel centre at integer
        ours = np.stack([(ndc[:, 0] + 1) / 2 * w_px - 0.5, (1 - ndc[:, 1]) / 2 * h_px - 0.5], axis=1)
        T_cv_stage = T_CV_CAMERA @ invert_transform(T_stage_pupil)
        rvec, _ = cv2.Rodrigues(T_cv_stage[:3, :3])
        tvec = T_cv_stage[:3, 3].copy()
        K = np.array([
            [f * w_px / sw, 0.0, w_px / 2 + px * w_px / sw - 0.5],
            [0.0, f * h_px / sh, h_px / 2 - py * h_px / sh - 0.5],  # +py is up, image y is down
            [0.0, 0.0, 1.0],
        ])
        cv_pix, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), rvec, tvec, K, None)
        err = np.abs(cv_pix.reshape(-1, 2) - ours).max()
        assert err < 1e-6, err


# ------------------------------------------------------------------------------------------------------------
# Kooima
# ------------------------------------------------------------------------------------------------------------


def extents_from_axis_aligned_kooima(Pp, near):
    """(l, r, b, t) of a Kooima P' whose screen basis is the identity (P'[:, :3] == P[:, :3])."""
    rl = 2 * near / Pp[0, 0]
    tb = 2 * near / Pp[1, 1]
    rpl = Pp[0, 2] * rl
    tpb = Pp[1, 2] * tb
    return (rpl - rl) / 2, (rpl + rl) / 2, (tpb - tb) / 2, (tpb + tb) / 2


def article_extents_by_hand(eye_x, near):
    """Kooima's stereo example: screen x in [-1.5, 1.5], y in [-0.75, 0.75] at z = -18; eye (eye_x, 0, 0).
    vr = +x, vu = +y, vn = +z, so d = 18 and l = (vr . va) n / d = (-1.5 - eye_x) n / 18, etc."""
    d = 18.0
    return (-1.5 - eye_x) * near / d, (1.5 - eye_x) * near / d, -0.75 * near / d, 0.75 * near / d


def test_kooima_article_example():
    pa, pb, pc = (-1.5, -0.75, -18.0), (1.5, -0.75, -18.0), (-1.5, 0.75, -18.0)
    near, far = 1.0, 100.0
    got = {}
    for name, ex in (("left", -1.25), ("right", 1.25)):
        Pp = F.compute_kooima(pa, pb, pc, (ex, 0.0, 0.0), near, far)
        hand = article_extents_by_hand(ex, near)
        expected = ref.frustum_ref(*hand, near, far) @ ref.translate((-ex, 0.0, 0.0))  # M^T = I here
        matrix_close(Pp, expected, what=f"{name} eye P'")
        got[name] = extents_from_axis_aligned_kooima(Pp, near)
        assert_close(got[name], hand, what=f"{name} extents")
    (ll, lr, lb, lt), (rl, rr, rb, rt) = got["left"], got["right"]
    assert ll == pytest.approx(-0.25 / 18) and lr == pytest.approx(2.75 / 18)
    assert ll == pytest.approx(-rr) and lr == pytest.approx(-rl)
    assert lb == pytest.approx(rb) and lt == pytest.approx(rt) and lb == pytest.approx(-lt)


def test_kooima_vs_ref_random():
    rng = np.random.default_rng(7)
    out = np.empty((4, 4))
    for _ in range(300):
        pa, pb, pc, pe, _, _ = random_screen(rng)
        near, far = rng.uniform(0.01, 1.0), rng.uniform(50.0, 1000.0)
        F.kooima_projection(pa, pb, pc, pe, near, far, out)
        matrix_close(out, ref.kooima_ref(pa, pb, pc, pe, near, far), what="kooima")


def yawed_screen_doc_example():
    """Reference doc 8.1 invariant 4: 4 x 2.25 m centred at (0, 1.5, -4), yawed 30 deg about +Y,
    eye (0.5, 1.6, 0)."""
    yaw = math.radians(30.0)
    c = np.array([0.0, 1.5, -4.0])
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])  # +X rotated about +Y
    up = np.array([0.0, 1.0, 0.0])
    pa, pb, pc = c - 2.0 * right - 1.125 * up, c + 2.0 * right - 1.125 * up, c - 2.0 * right + 1.125 * up
    return pa, pb, pc, np.array([0.5, 1.6, 0.0])


def test_kooima_corners_land_on_ndc_corners():
    rng = np.random.default_rng(8)
    cases = [yawed_screen_doc_example()] + [random_screen(rng)[:4] for _ in range(100)]
    for pa, pb, pc, pe in cases:
        Pp = F.compute_kooima(pa, pb, pc, pe, 0.1, 100.0)
        pd = pb + pc - pa
        ndc, w = F.project(Pp, np.stack([pa, pb, pc, pd]))
        assert np.all(w > 0)
        assert_close(ndc[:, :2], [[-1, -1], [1, -1], [-1, 1], [1, 1]], what="corners")
        assert np.ptp(ndc[:, 2]) < 1e-9, "corners must share one depth"


def test_kooima_eye_on_central_normal_is_symmetric():
    rng = np.random.default_rng(9)
    for _ in range(100):
        pa, pb, pc, pe, c, normal = random_screen(rng)
        for eye, symmetric in ((c + rng.uniform(0.3, 10) * normal, True), (pe, False)):
            Pp = F.compute_kooima(pa, pb, pc, eye, 0.1, 100.0)
            vr, vu, vn = ref.kooima_basis_ref(pa, pb, pc)
            A = np.eye(4)
            A[0, :3], A[1, :3], A[2, :3] = vr, vu, vn
            P = Pp @ np.linalg.inv(A @ ref.translate(-eye))  # back to glFrustum
            off_x, off_y = P[0, 2], P[1, 2]  # (r+l)/(r-l), (t+b)/(t-b)
            if symmetric:
                assert abs(off_x) < 1e-9 and abs(off_y) < 1e-9
            else:
                l, r, b, t, _ = ref.kooima_extents_ref(pa, pb, pc, eye, 0.1)
                assert_close((off_x, off_y), ((r + l) / (r - l), (t + b) / (t - b)), what="asymmetric")


def test_kooima_on_plane_point_maps_to_normalised_position():
    rng = np.random.default_rng(10)
    for _ in range(60):
        pa, pb, pc, _, c, normal = random_screen(rng)
        st = rng.uniform(-0.5, 1.5, (50, 2))
        pts = pa + st[:, :1] * (pb - pa) + st[:, 1:] * (pc - pa)
        right, up = (pb - pa) / np.linalg.norm(pb - pa), (pc - pa) / np.linalg.norm(pc - pa)
        for _ in range(3):
            eye = c + rng.uniform(0.3, 10) * normal + rng.uniform(-5, 5) * right + rng.uniform(-5, 5) * up
            Pp = F.compute_kooima(pa, pb, pc, eye, 0.1, 100.0)
            ndc, w = F.project(Pp, pts)
            ok = w > 0
            assert ok.sum() > 10
            assert_close(ndc[ok, :2], 2 * st[ok] - 1, what="on-plane point")


def kooima_ndc_to_raster(ndc_xy, geometry, f=0):
    """Facet f's Kooima image is the facet's raster: NDC (-1, +1) is raster (x0, 0)."""
    x0, x1 = geometry.x0[f], geometry.x1[f]
    x = x0 + (ndc_xy[:, 0] + 1) / 2 * (x1 - x0)
    y = (1 - ndc_xy[:, 1]) / 2 * geometry.height_px
    return np.stack([x, y], axis=1)


def test_kooima_equals_camera_path_on_flat_wall():
    """nDisplay equivalence: scene content seen through the Kooima frustum of a flat wall (eye = entrance
    pupil) lands on the same wall pixels as the camera image projected back onto the wall."""
    wall = flat_wall_geometry((0.3, 5.0, 2.2), (10.0, 5.0, 0.0), 12, 6, (500.0, 500.0), (176, 176))
    T = F.compute_pose(1.0, 0.5, 1.6, -8.0, 6.0, 4.0)  # off-centre, panned, tilted and rolled
    lens = dict(focal_mm=24.0, sensor_w_mm=36.0, sensor_h_mm=20.25, pp_x_mm=0.3, pp_y_mm=-0.2,
                overscan_pct=(5.0, 8.0, 3.0, 6.0), pupil_offset_m=0.12)
    w_px, h_px = 1920, 1080
    near, far = 0.1, 200.0
    _, _, VP = camera_vp(T, lens, near, far)
    pupil = (T @ ref.translate((0, lens["pupil_offset_m"], 0)))[:3, 3]
    pa, pb, pc = wall.facet_corners()[0]

    rng = np.random.default_rng(11)
    # virtual scene points in front of, on and behind the wall, inside the camera's view
    n = 400
    local = np.stack([rng.uniform(-0.4, 0.4, n), np.ones(n), rng.uniform(-0.25, 0.25, n)], axis=1)
    dirs = local @ T[:3, :3].T
    pts = pupil + dirs * rng.uniform(1.5, 25.0, n)[:, None]

    def wall_pixels(eye):
        Pp = F.compute_kooima(pa, pb, pc, eye, near, far)
        ndc, w = F.project(Pp, pts)
        return kooima_ndc_to_raster(ndc[:, :2], wall), w

    raster_k, w_k = wall_pixels(pupil)
    ndc_c, w_c = F.project(VP, pts)
    ok = (w_k > 0) & (w_c > 0)
    assert ok.sum() > 300
    cam_pix = np.stack([(ndc_c[:, 0] + 1) / 2 * w_px, (1 - ndc_c[:, 1]) / 2 * h_px], axis=1)

    # forward: the wall pixel Kooima picked shows, through the camera, the same camera pixel as the point
    on_wall = F.raster_to_stage(wall, raster_k[ok])
    ndc_w, _ = F.project(VP, on_wall)
    cam_pix_w = np.stack([(ndc_w[:, 0] + 1) / 2 * w_px, (1 - ndc_w[:, 1]) / 2 * h_px], axis=1)
    assert np.abs(cam_pix_w - cam_pix[ok]).max() < 0.01

    # backward: unproject each camera pixel through the camera's VP onto the wall plane -> wall raster
    iVP = np.linalg.inv(VP)
    ndc_xy = np.stack([2 * cam_pix[ok, 0] / w_px - 1, 1 - 2 * cam_pix[ok, 1] / h_px], axis=1)
    a = np.hstack([ndc_xy, -np.ones((ok.sum(), 1)), np.ones((ok.sum(), 1))]) @ iVP.T
    b = np.hstack([ndc_xy, np.ones((ok.sum(), 1)), np.ones((ok.sum(), 1))]) @ iVP.T
    a, b = a[:, :3] / a[:, 3:], b[:, :3] / b[:, 3:]
    normal = wall.facet_normals()[0]
    t = ((pa - a) @ normal) / ((b - a) @ normal)
    hit = a + t[:, None] * (b - a)
    raster_c, dist = F.stage_to_raster(wall, hit)
    on_raster = (raster_c[:, 0] >= 0) & (raster_c[:, 0] <= wall.width_px)  # else extrapolated, dist > 0
    assert on_raster.sum() > 100 and dist[on_raster].max() < 1e-9
    assert np.abs(raster_c - raster_k[ok]).max() < 0.01

    # the check is sharp: the camera body origin (not the pupil) as Kooima eye misses by far more than 0.01 px
    raster_wrong, _ = wall_pixels(T[:3, 3])
    assert np.abs(raster_wrong[ok] - raster_c).max() > 0.5


# ------------------------------------------------------------------------------------------------------------
# points, raster <-> stage
# ------------------------------------------------------------------------------------------------------------


def test_project_points_vs_ref_and_behind():
    rng = np.random.default_rng(12)
    for _ in range(30):
        T = F.compute_pose(*random_pose(rng))
        _, _, VP = camera_vp(T, random_lens(rng))
        pts = rng.uniform(-20, 20, (500, 3))
        ndc = np.empty((500, 3))
        w = np.empty(500)
        n_front = F.project_points(VP, pts, ndc, w)
        ndc_r, w_r = ref.project_points_ref(VP, pts)
        assert n_front == int((w_r > 0).sum()) and 0 < n_front < 500
        assert_close(w, w_r, what="w")
        assert_close(ndc, ndc_r, what="ndc")
        assert np.all(np.isnan(ndc[w <= 0]))


@pytest.mark.parametrize("kind", WALL_KINDS)
def test_raster_to_stage_matches_geometry(kind):
    rng = np.random.default_rng(13 + WALL_KINDS.index(kind))
    for _ in range(15):
        g = random_wall(rng, kind)
        xy = np.column_stack([
            rng.uniform(-20, g.width_px + 20, 300), rng.uniform(-20, g.height_px + 20, 300)
        ])
        edges = np.column_stack([np.r_[g.x0, g.x1], rng.uniform(0, g.height_px, 2 * g.facet_count)])
        xy = np.vstack([xy, edges])
        assert_close(F.raster_to_stage(g, xy), g.raster_to_stage(xy), what=f"{kind} raster_to_stage")


@pytest.mark.parametrize("kind", WALL_KINDS)
def test_stage_to_raster_round_trip(kind):
    rng = np.random.default_rng(17 + WALL_KINDS.index(kind))
    for _ in range(15):
        g = random_wall(rng, kind)
        xy = np.column_stack([rng.uniform(0, g.width_px, 300), rng.uniform(0, g.height_px, 300)])
        corners = np.array([[0, 0], [g.width_px, 0], [0, g.height_px], [g.width_px, g.height_px]], float)
        edges = np.column_stack([g.x1.astype(float), rng.uniform(0, g.height_px, g.facet_count)])
        xy = np.vstack([xy, corners, edges])
        back, dist = F.stage_to_raster(g, g.raster_to_stage(xy))
        assert np.abs(back - xy).max() < 1e-8, np.abs(back - xy).max()
        assert dist.max() < 1e-9
        # off the surface, away from facet seams (where the nearest facet is unambiguous): the point's own
        # facet wins, its raster coordinates are kept, the distance is the offset along the facet normal
        f = rng.integers(g.facet_count, size=300)
        span = (g.x1 - g.x0)[f]
        xy_in = np.column_stack([
            g.x0[f] + rng.uniform(0.1, 0.9, 300) * span, rng.uniform(0, g.height_px, 300)
        ])
        delta = rng.uniform(-0.02, 0.02, 300)
        off = g.raster_to_stage(xy_in) + delta[:, None] * g.facet_normals()[f]
        back_off, dist_off = F.stage_to_raster(g, off)
        back_ref, f_ref = ref.stage_to_raster_ref(g, off)
        assert_close(back_off, xy_in, tol=1e-8, what="off-surface")
        assert_close(back_off, back_ref, tol=1e-8, what="off-surface vs twin")
        assert np.array_equal(f_ref, f)
        assert_close(dist_off, np.abs(delta), what="off-surface distance")


def test_stage_to_raster_skewed_facets():
    """The inverse does not assume right ⟂ down (a sheared facet set, built by hand)."""
    base = curved_wall_geometry((0.0, 0.0), 6.0, 60.0, 0.2, 5, 3, (500.0, 500.0), (64, 64))
    skewed = WallGeometry(
        width_px=base.width_px, height_px=base.height_px, cabinet_px=base.cabinet_px,
        cabinet_m=base.cabinet_m,
        cols=base.cols, rows=base.rows, x0=base.x0, x1=base.x1, origin=base.origin, right=base.right,
        down=base.down + 0.4 * base.right,
    )
    rng = np.random.default_rng(25)
    xy = np.column_stack([rng.uniform(0, skewed.width_px, 200), rng.uniform(0, skewed.height_px, 200)])
    back, dist = F.stage_to_raster(skewed, skewed.raster_to_stage(xy))
    assert np.abs(back - xy).max() < 1e-8 and dist.max() < 1e-9


def test_stage_to_raster_distance_off_flat_wall():
    g = flat_wall_geometry((0.0, 4.0, 1.5), (20.0, 10.0, 5.0), 8, 4, (500.0, 500.0), (176, 176))
    rng = np.random.default_rng(21)
    xy = np.column_stack([rng.uniform(0, g.width_px, 100), rng.uniform(0, g.height_px, 100)])
    delta = rng.uniform(-0.3, 0.3, 100)
    pts = g.raster_to_stage(xy) + delta[:, None] * g.facet_normals()[0]
    back, dist = F.stage_to_raster(g, pts)
    assert_close(back, xy, what="off-plane raster")
    assert_close(dist, np.abs(delta), what="off-plane distance")


# ------------------------------------------------------------------------------------------------------------
# coverage
# ------------------------------------------------------------------------------------------------------------


def cabinet_samples(corners, rows, cols, k):
    """(Ncab, k*k, 3) points on each (planar) cabinet, edges included."""
    q = corners[ref.cabinet_quads_ref(rows, cols)]  # (Ncab, 4, 3) tl, tr, br, bl
    s, t = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    s, t = s.ravel()[None, :, None], t.ravel()[None, :, None]
    tl, tr, br, bl = (q[:, i][:, None, :] for i in range(4))
    return (1 - s) * (1 - t) * tl + s * (1 - t) * tr + s * t * br + (1 - s) * t * bl


def sampled_coverage(VP, corners, rows, cols, k, margin=0.0, w_eps=F.W_EPS):
    pts = cabinet_samples(corners, rows, cols, k)
    clip = ref.clip_ref(VP, pts.reshape(-1, 3)).reshape(pts.shape[0], -1, 4)
    x, y, w = clip[..., 0], clip[..., 1], clip[..., 3]
    s = 1 + margin
    return ((w > w_eps) & (np.abs(x) <= s * w) & (np.abs(y) <= s * w)).any(axis=1)


def near_frustum_by_dense_cells(VP, quad, k, margin, w_eps):
    """True when a dense cell grid proves the cabinet comes within one cell of the frustum: some cell wholly
    in front has a projected corner within the cell's projected diameter of the square."""
    s_, t_ = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    tl, tr, br, bl = quad
    s_, t_ = s_[..., None], t_[..., None]
    pts = (1 - s_) * (1 - t_) * tl + s_ * (1 - t_) * tr + s_ * t_ * br + (1 - s_) * t_ * bl
    clip = ref.clip_ref(VP, pts.reshape(-1, 3)).reshape(k, k, 4)
    w = clip[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[..., :2] / w[..., None]
    s = 1 + margin
    dist = np.hypot(np.maximum(np.abs(ndc[..., 0]) - s, 0), np.maximum(np.abs(ndc[..., 1]) - s, 0))
    c = [(slice(0, -1), slice(0, -1)), (slice(0, -1), slice(1, None)), (slice(1, None), slice(1, None)),
         (slice(1, None), slice(0, -1))]
    front = np.all([w[a] > w_eps for a in c], axis=0)
    diam = np.zeros(front.shape)
    for i in range(4):
        for j in range(i + 1, 4):
            diam = np.maximum(diam, np.linalg.norm(ndc[c[i]] - ndc[c[j]], axis=-1))
    near = np.min([dist[a] for a in c], axis=0) <= diam + 1e-9
    return bool(np.any(front & near))


def check_against_sampler(VP, g, margin=0.0, k=12, k_dense=81):
    corners = g.cabinet_corner_grid()
    covered, uv, valid = F.coverage(VP, corners, g.rows, g.cols, margin)
    sampled = sampled_coverage(VP, corners, g.rows, g.cols, k, margin)
    missed = np.nonzero(sampled & ~covered)[0]
    assert missed.size == 0, f"sampled-covered cabinets not marked covered: {missed}"
    quads = corners[ref.cabinet_quads_ref(g.rows, g.cols)]
    for idx in np.nonzero(covered & ~sampled)[0]:
        assert near_frustum_by_dense_cells(VP, quads[idx], k_dense, margin, F.W_EPS), f"cabinet {idx} too far"
    return covered, uv, valid


def straddling_scene():
    """A camera 0.5 m in front of a flat wall of 1 x 2 m cabinets, looking along it with a wide lens: the
    cabinet beside the camera is partly behind the eye plane and covered with none of its corners inside."""
    g = flat_wall_geometry((0.0, 2.0, 1.0), (0.0, 0.0, 0.0), 8, 1, (1000.0, 2000.0), (128, 256))
    T = F.compute_pose(0.5, 1.5, 1.0, -90.0, 0.0, 0.0)  # looking along +X, wall on the left
    lens = dict(focal_mm=12.0, sensor_w_mm=36.0, sensor_h_mm=24.0, pp_x_mm=0.0, pp_y_mm=0.0,
                overscan_pct=(20.0, 20.0, 20.0, 20.0), pupil_offset_m=0.0)
    return g, T, lens


def eye_plane_scene():
    """One cabinet crossing the eye plane whose in-front corners are both left of the view (and above/below
    it): only the part near the eye plane, which projects far to the right, sweeps through the view. Ignoring
    the clipped part (using the in-front corners alone) would miss it."""
    # camera at the origin looking along +Y (eye: right = +X, up = +Z, forward = +Y); in eye terms the cabinet
    # runs from (right -3, forward 1.0) to (right 2, forward -0.3), 2.4 m tall, centred on the eye height
    d, a = np.array([-3.0, 1.0]), np.array([2.0, -0.3])
    width = float(np.linalg.norm(a - d))
    pan = math.degrees(math.atan2(a[1] - d[1], a[0] - d[0]))
    centre = ((a[0] + d[0]) / 2, (a[1] + d[1]) / 2, 0.0)
    g = flat_wall_geometry(centre, (pan, 0.0, 0.0), 1, 1, (width * 1000.0, 2400.0), (512, 256))
    T = F.compute_pose(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    lens = dict(focal_mm=12.0, sensor_w_mm=36.0, sensor_h_mm=24.0, pp_x_mm=0.0, pp_y_mm=0.0,
                overscan_pct=(0.0, 0.0, 0.0, 0.0), pupil_offset_m=0.0)
    return g, T, lens


def close_up_scene():
    """A camera 10 cm from a wall of 1 m cabinets, square on: the frustum lies inside one cabinet."""
    g = flat_wall_geometry((0.0, 3.0, 1.5), (0.0, 0.0, 0.0), 4, 3, (1000.0, 1000.0), (256, 256))
    # cabinet (row 1, col 2) spans x in [0, 1], z in [1, 2]
    T = F.compute_pose(0.4, 2.9 - 0.05, 1.3, 0.0, 0.0, 15.0)
    lens = dict(focal_mm=50.0, sensor_w_mm=36.0, sensor_h_mm=24.0, pp_x_mm=0.5, pp_y_mm=0.3,
                overscan_pct=(10.0, 10.0, 10.0, 10.0), pupil_offset_m=0.05)
    return g, T, lens


def test_coverage_frustum_inside_one_cabinet():
    g, T, lens = close_up_scene()
    _, _, VP = camera_vp(T, lens)
    covered, uv, valid = check_against_sampler(VP, g)
    assert valid.all()
    assert np.nonzero(covered)[0].tolist() == [1 * g.cols + 2]
    inside = (uv >= 0).all(axis=1) & (uv <= 1).all(axis=1)
    assert not inside.any(), "no corner is in view: only the SAT can find this cabinet"
    ref_cov, _, _ = ref.coverage_ref(VP, g.cabinet_corner_grid(), g.rows, g.cols, method="clip")
    assert np.array_equal(covered, ref_cov)


def test_coverage_partly_behind_camera():
    g, T, lens = straddling_scene()
    _, _, VP = camera_vp(T, lens)
    covered, uv, valid = check_against_sampler(VP, g)
    quads = ref.cabinet_quads_ref(g.rows, g.cols)
    qvalid = valid[quads]
    straddle = qvalid.any(axis=1) & ~qvalid.all(axis=1)
    quv = uv[quads]
    corner_inside = ((quv >= 0) & (quv <= 1)).all(axis=2).any(axis=1)
    hard = straddle & covered & ~corner_inside
    assert hard.sum() == 1 and hard[4], "cabinet 4 (x in [0, 1]) straddles the eye plane and is covered"
    assert not covered[:4].any() and covered[5:].all()
    ref_cov, _, _ = ref.coverage_ref(VP, g.cabinet_corner_grid(), g.rows, g.cols, method="clip")
    assert np.array_equal(covered, ref_cov)


def test_coverage_through_the_eye_plane_only():
    g, T, lens = eye_plane_scene()
    _, _, VP = camera_vp(T, lens)
    covered, uv, valid = check_against_sampler(VP, g)
    assert covered.tolist() == [True]
    # corner grid (row-major): top-left, top-right, bottom-left, bottom-right; the left two are in front,
    # left of the view and above / below it
    assert valid.tolist() == [True, False, True, False]
    assert np.all(uv[valid, 0] < 0) and np.all((uv[valid, 1] < 0) | (uv[valid, 1] > 1))
    ref_cov, _, _ = ref.coverage_ref(VP, g.cabinet_corner_grid(), g.rows, g.cols, method="clip")
    assert ref_cov.tolist() == [True]


def test_coverage_random_vs_sampler_and_ref():
    rng = np.random.default_rng(22)
    stats = dict(covered=0, straddle_covered=0, cases=0)
    for i in range(150):
        kind = WALL_KINDS[i % 3]
        g = random_wall(rng, kind)
        corners = g.cabinet_corner_grid()
        centre = corners.mean(axis=0)
        # cameras from anywhere around the stage, and some close to the wall looking across it
        if i % 2:
            T = F.compute_pose(*random_pose(rng))
        else:
            spread = float(rng.choice([0.05, 0.4]))
            p = corners[rng.integers(corners.shape[0])] + rng.normal(scale=spread, size=3)
            d = centre - p + rng.normal(scale=2.0, size=3)
            pan = math.degrees(math.atan2(-d[0], d[1]))
            tilt = math.degrees(math.atan2(d[2], math.hypot(d[0], d[1])))
            T = F.compute_pose(*p, pan, tilt, rng.uniform(-20, 20))
        lens = random_lens(rng)
        lens["focal_mm"] = rng.uniform(8.0, 60.0)
        margin = float(rng.choice([0.0, 0.0, 0.05]))
        _, _, VP = camera_vp(T, lens)
        covered, uv, valid = check_against_sampler(VP, g, margin)
        for method in ("sat", "clip"):
            rc, ruv, rvalid = ref.coverage_ref(VP, corners, g.rows, g.cols, margin, method=method)
            assert np.array_equal(covered, rc), (i, method)
            assert np.array_equal(valid, rvalid)
            assert_close(uv, ruv, what="corner uv")
        qv = valid[ref.cabinet_quads_ref(g.rows, g.cols)]
        stats["covered"] += int(covered.sum())
        stats["straddle_covered"] += int((covered & qv.any(1) & ~qv.all(1)).sum())
        stats["cases"] += 1
    assert stats["covered"] > 100 and stats["straddle_covered"] > 3, stats


def test_coverage_kernel_outputs_and_outcodes():
    rng = np.random.default_rng(23)
    g = random_wall(rng, "curved")
    T = F.compute_pose(*random_pose(rng))
    _, _, VP = camera_vp(T, random_lens(rng))
    c = np.ascontiguousarray(g.cabinet_corner_grid())
    n = c.shape[0]
    uv, w = np.empty((2, n)), np.empty(n)
    valid, code = np.empty(n, np.uint8), np.empty(n, np.uint8)
    n_valid = F.project_corners(VP, np.ascontiguousarray(c.T), 0.0, F.W_EPS, uv, w, valid, code)
    clip = ref.clip_ref(VP, c)
    ndc_r, _ = ref.project_points_ref(VP, c)
    uv_r = ref.ndc_to_uv_ref(ndc_r[:, :2])
    uv_r[~(clip[:, 3] > F.W_EPS)] = np.nan
    assert_close(uv.T, uv_r, what="uv")
    assert np.array_equal(valid.astype(bool), clip[:, 3] > F.W_EPS)
    x, y, wr = clip[:, 0], clip[:, 1], clip[:, 3]
    assert n_valid == int((wr > F.W_EPS).sum())
    assert_close(w, wr, what="w")
    expected = ((x < -wr) * F.OUT_LEFT | (x > wr) * F.OUT_RIGHT | (y < -wr) * F.OUT_BOTTOM
                | (y > wr) * F.OUT_TOP | (wr <= F.W_EPS) * F.OUT_BEHIND)
    assert np.array_equal(code, expected)


# ------------------------------------------------------------------------------------------------------------
# the whole frame
# ------------------------------------------------------------------------------------------------------------


def test_frame_math_matches_reference():
    rng = np.random.default_rng(24)
    walls = [random_wall(rng, "curved"), random_wall(rng, "ceiling"), random_wall(rng, "flat")]
    near, far, margin = 0.07, 300.0, 0.02
    ws = F.FrustumWorkspace(walls, near=near, far=far, margin_ndc=margin)
    fr = ref.FrameRef(walls, near=near, far=far, margin_ndc=margin)
    arrays = (ws.mats, ws.uv, ws.w, ws.valid, ws.code, ws.covered, ws.facet_proj, ws.facet_d)
    buffers = [(a, a.ctypes.data) for a in arrays]
    total = 0
    for _ in range(40):
        T = F.compute_pose(*random_pose(rng))
        L = random_lens(rng)
        n = ws.update(T, L["focal_mm"], L["sensor_w_mm"], L["sensor_h_mm"], L["pp_x_mm"], L["pp_y_mm"],
                      L["overscan_pct"], L["pupil_offset_m"])
        r = ref.frame_math_ref(fr, T, L["focal_mm"], L["sensor_w_mm"], L["sensor_h_mm"], L["pp_x_mm"],
                               L["pp_y_mm"], L["overscan_pct"], L["pupil_offset_m"])
        assert_close(ws.V, r["V"], what="V")
        matrix_close(ws.P, r["P"], what="P")
        matrix_close(ws.VP, r["VP"], what="VP")
        assert_close(ws.uv.T, r["uv"], what="uv")
        assert_close(ws.w, ref.clip_ref(ws.VP, ws.corners.T)[:, 3], what="w")
        assert np.array_equal(ws.valid.astype(bool), r["valid"])
        assert np.array_equal(ws.covered.astype(bool), r["covered"])
        assert n == ws.covered_count == r["covered_count"]
        for f in range(ws.facet_proj.shape[0]):
            matrix_close(ws.facet_proj[f], r["facet_proj"][f], what="facet P'")
        assert_close(ws.facet_d, r["facet_d"], what="facet d")
        total += n
    assert total > 0
    # per-wall views line up with the concatenation
    for i, g in enumerate(walls):
        assert ws.wall_covered(i).shape == (g.rows, g.cols)
        wall_uv = ws.wall_uv(i)
        assert wall_uv.shape == (g.rows + 1, g.cols + 1, 2) and np.shares_memory(wall_uv, ws.uv)
        assert_close(wall_uv.reshape(-1, 2), ws.uv[:, ws.wall_corner_slice(i)].T, what="wall uv")
        assert_close(ws.corners[:, ws.wall_corner_slice(i)].T, g.cabinet_corner_grid(), what="corners")
        assert ws.facets[ws.wall_facet_slice(i)].shape[0] == g.facet_count
    # no reallocation: the same buffers every frame
    for a, ptr in buffers:
        assert a.ctypes.data == ptr


def test_workspace_accepts_stage_walls_and_foreign_matrices():
    class Wall:  # a stage wall: .name and .geometry
        def __init__(self, name, geometry):
            self.name, self.geometry = name, geometry

    g = curved_wall_geometry((0.0, 0.0), 5.0, 44.0, 0.0, 16, 6, (500.0, 500.0), (176, 176))
    ws = F.FrustumWorkspace([Wall("main", g)])
    assert ws.names == ["main"] and ws.cabinet_count == 96
    T = transform_from_pose(0.0, 0.0, 1.6, 0.0, 0.0, 0.0).astype(np.float32)  # converted, not rejected
    n = ws.update(T, 35.0, 36.0, 24.0)
    assert 0 < n < 96


def test_warmup_compiles_every_kernel():
    """In a fresh interpreter (this one has compiled everything already), warmup() alone must leave every
    public kernel compiled or loaded from the cache."""
    code = (
        "from stagectl.render import frustum as F\n"
        "F.warmup()\n"
        "k = [n for n in F.__all__ if hasattr(getattr(F, n), 'signatures')]\n"
        "missing = [n for n in k if not getattr(F, n).signatures]\n"
        "print(len(k), missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "14 []", out.stdout
