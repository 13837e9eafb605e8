"""Plain-numpy reference twins of ``stagectl.render.frustum``, written from docs/conventions.md.

Clarity first: general matrix inverses where the kernels use rigid inverses, least squares where they solve
2x2 systems by hand, homogeneous polygon clipping against all five frustum planes where the kernels use
outcodes and a separating-axis test. The vectorised paths are only there so that the benchmark can run the
twin over a 10,000-cabinet stage in reasonable time.
"""

from __future__ import annotations

import numpy as np

from stagectl.core.transforms import T_GL_CAMERA, transform_from_pose

W_EPS = 1e-6


# ------------------------------------------------------------------------------------------------------------
# matrices
# ------------------------------------------------------------------------------------------------------------


def translate(v) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = v
    return T


def pose_matrix_ref(x, y, z, pan_deg, tilt_deg, roll_deg) -> np.ndarray:
    return transform_from_pose(x, y, z, pan_deg, tilt_deg, roll_deg)


def pupil_pose_ref(T_stage_camera, pupil_offset_m) -> np.ndarray:
    """``T_stage_pupil = T_stage_camera @ translate(0, e, 0)``."""
    return np.asarray(T_stage_camera, dtype=np.float64) @ translate((0.0, pupil_offset_m, 0.0))


def view_matrix_ref(T_stage_camera, pupil_offset_m) -> np.ndarray:
    """``V = T_gl_camera @ inv(T_stage_pupil)`` with a general inverse."""
    return T_GL_CAMERA @ np.linalg.inv(pupil_pose_ref(T_stage_camera, pupil_offset_m))


def frustum_ref(l, r, b, t, n, f) -> np.ndarray:
    """OpenGL ``glFrustum``."""
    return np.array(
        [
            [2 * n / (r - l), 0.0, (r + l) / (r - l), 0.0],
            [0.0, 2 * n / (t - b), (t + b) / (t - b), 0.0],
            [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def camera_extents_ref(focal_mm, sw, sh, px, py, overscan=(0.0, 0.0, 0.0, 0.0), near=1.0):
    """(l', r', b', t') at the near plane, conventions.md "Camera (inner frustum)"."""
    l = near * (-sw / 2 - px) / focal_mm
    r = near * (sw / 2 - px) / focal_mm
    b = near * (-sh / 2 - py) / focal_mm
    t = near * (sh / 2 - py) / focal_mm
    ol, orr, ob, ot = overscan
    return (
        l - ol / 100 * (r - l),
        r + orr / 100 * (r - l),
        b - ob / 100 * (t - b),
        t + ot / 100 * (t - b),
    )


def camera_projection_ref(focal_mm, sw, sh, px, py, overscan, near, far) -> np.ndarray:
    l, r, b, t = camera_extents_ref(focal_mm, sw, sh, px, py, overscan, near)
    return frustum_ref(l, r, b, t, near, far)


def kooima_basis_ref(pa, pb, pc):
    pa, pb, pc = (np.asarray(p, dtype=np.float64) for p in (pa, pb, pc))
    vr = (pb - pa) / np.linalg.norm(pb - pa)
    vu = (pc - pa) / np.linalg.norm(pc - pa)
    vn = np.cross(vr, vu)
    vn /= np.linalg.norm(vn)
    return vr, vu, vn


def kooima_extents_ref(pa, pb, pc, pe, near):
    """(l, r, b, t, d) straight from Kooima's formulas."""
    vr, vu, vn = kooima_basis_ref(pa, pb, pc)
    pa, pb, pc, pe = (np.asarray(p, dtype=np.float64) for p in (pa, pb, pc, pe))
    va, vb, vc = pa - pe, pb - pe, pc - pe
    d = -np.dot(vn, va)
    return (
        np.dot(vr, va) * near / d,
        np.dot(vr, vb) * near / d,
        np.dot(vu, va) * near / d,
        np.dot(vu, vc) * near / d,
        d,
    )


def kooima_ref(pa, pb, pc, pe, near, far) -> np.ndarray:
    """``P' = frustum(l, r, b, t, n, f) @ M^T @ translate(-pe)``."""
    vr, vu, vn = kooima_basis_ref(pa, pb, pc)
    l, r, b, t, _ = kooima_extents_ref(pa, pb, pc, pe, near)
    MT = np.eye(4)
    MT[0, :3], MT[1, :3], MT[2, :3] = vr, vu, vn
    return frustum_ref(l, r, b, t, near, far) @ MT @ translate(-np.asarray(pe, dtype=np.float64))


def kooima_batch_ref(pa, pb, pc, pe, near, far):
    """Vectorised :func:`kooima_ref` over F screens (F, 3) each, one eye: ``(P' (F, 4, 4), d (F,))``."""
    pe = np.asarray(pe, dtype=np.float64)
    vr = pb - pa
    vr = vr / np.linalg.norm(vr, axis=1, keepdims=True)
    vu = pc - pa
    vu = vu / np.linalg.norm(vu, axis=1, keepdims=True)
    vn = np.cross(vr, vu)
    vn = vn / np.linalg.norm(vn, axis=1, keepdims=True)
    va, vb, vc = pa - pe, pb - pe, pc - pe
    d = -np.einsum("ij,ij->i", vn, va)
    k = near / d
    l = np.einsum("ij,ij->i", vr, va) * k
    r = np.einsum("ij,ij->i", vr, vb) * k
    b = np.einsum("ij,ij->i", vu, va) * k
    t = np.einsum("ij,ij->i", vu, vc) * k
    F = pa.shape[0]
    P = np.zeros((F, 4, 4))
    P[:, 0, 0] = 2 * near / (r - l)
    P[:, 0, 2] = (r + l) / (r - l)
    P[:, 1, 1] = 2 * near / (t - b)
    P[:, 1, 2] = (t + b) / (t - b)
    P[:, 2, 2] = -(far + near) / (far - near)
    P[:, 2, 3] = -2 * far * near / (far - near)
    P[:, 3, 2] = -1.0
    MT = np.zeros((F, 4, 4))
    MT[:, 0, :3], MT[:, 1, :3], MT[:, 2, :3] = vr, vu, vn
    MT[:, 3, 3] = 1.0
    return P @ MT @ translate(-pe), d


# ------------------------------------------------------------------------------------------------------------
# points
# ------------------------------------------------------------------------------------------------------------


def clip_ref(VP, points) -> np.ndarray:
    """(N, 4) clip coordinates ``VP @ [p, 1]``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.hstack([pts, np.ones((pts.shape[0], 1))]) @ np.asarray(VP).T


def project_points_ref(VP, points):
    """``(ndc (N, 3), w (N,))``, NaN NDC where ``w <= 0``."""
    clip = clip_ref(VP, points)
    w = clip[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :3] / w[:, None]
    ndc[~(w > 0)] = np.nan
    return ndc, w


def ndc_to_uv_ref(ndc_xy) -> np.ndarray:
    ndc_xy = np.asarray(ndc_xy)
    return np.stack([(ndc_xy[..., 0] + 1) / 2, (1 - ndc_xy[..., 1]) / 2], axis=-1)


def stage_to_raster_ref(geometry, points):
    """Stage points on (or near) a wall -> ``(raster xy (N, 2), facet (N,))`` by per-facet least squares."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    best = np.full(pts.shape[0], np.inf)
    xy = np.full((pts.shape[0], 2), np.nan)
    facet = np.full(pts.shape[0], -1)
    for f in range(geometry.facet_count):
        A = np.stack([geometry.right[f], geometry.down[f]], axis=1)  # (3, 2)
        ab, *_ = np.linalg.lstsq(A, (pts - geometry.origin[f]).T, rcond=None)
        a, b = ab
        resid = pts - (geometry.origin[f] + np.outer(a, geometry.right[f]) + np.outer(b, geometry.down[f]))
        span = geometry.x1[f] - geometry.x0[f]
        outside = np.maximum(0.0, np.maximum(-a, a - span)) * np.linalg.norm(geometry.right[f])
        dist = np.sqrt(np.sum(resid**2, axis=1) + outside**2)
        better = dist < best
        best[better] = dist[better]
        xy[better, 0] = geometry.x0[f] + a[better]
        xy[better, 1] = b[better]
        facet[better] = f
    return xy, facet


# ------------------------------------------------------------------------------------------------------------
# coverage
# ------------------------------------------------------------------------------------------------------------


def cabinet_quads_ref(rows, cols) -> np.ndarray:
    """(rows*cols, 4) corner indices (top-left, top-right, bottom-right, bottom-left), cabinets row-major."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    tl = (r * (cols + 1) + c).ravel()
    return np.stack([tl, tl + 1, tl + cols + 2, tl + cols + 1], axis=1)


def polygon_meets_frustum_ref(clip_xyw, s, w_eps) -> bool:
    """Clip a planar polygon given in homogeneous (x, y, w) against the five planes ``w >= w_eps``,
    ``-s w <= x <= s w``, ``-s w <= y <= s w`` (Sutherland-Hodgman); True when anything is left."""
    planes = [
        np.array([0.0, 0.0, 1.0, -w_eps]),
        np.array([-1.0, 0.0, s, 0.0]),
        np.array([1.0, 0.0, s, 0.0]),
        np.array([0.0, -1.0, s, 0.0]),
        np.array([0.0, 1.0, s, 0.0]),
    ]
    poly = [np.asarray(v, dtype=np.float64) for v in clip_xyw]
    for pl in planes:
        out = []
        for i in range(len(poly)):
            a, b = poly[i], poly[(i + 1) % len(poly)]
            fa = pl[:3] @ a + pl[3]
            fb = pl[:3] @ b + pl[3]
            if fa >= 0:
                out.append(a)
            if (fa >= 0) != (fb >= 0):
                out.append(a + fa / (fa - fb) * (b - a))
        poly = out
        if not poly:
            return False
    return True


def _sat_all_in_front(ndc_quads, s) -> np.ndarray:
    """Vectorised separating-axis test of (K, 4, 2) convex quads against the square ``[-s, s]^2``."""
    x, y = ndc_quads[..., 0], ndc_quads[..., 1]
    sep = (x.min(1) > s) | (x.max(1) < -s) | (y.min(1) > s) | (y.max(1) < -s)
    for i in range(4):
        e = ndc_quads[:, (i + 1) % 4] - ndc_quads[:, i]
        n = np.stack([e[:, 1], -e[:, 0]], axis=1)
        proj = np.einsum("kj,kij->ki", n, ndc_quads)
        half = s * np.abs(n).sum(1)
        sep |= (proj.min(1) > half) | (proj.max(1) < -half)
    return ~sep


def coverage_ref(VP, corners, rows, cols, margin_ndc=0.0, w_eps=W_EPS, method="sat", quads=None):
    """``(covered (rows*cols,) bool, uv (Nc, 2), valid (Nc,) bool)`` for one wall's cabinet corner grid.

    method "sat": cabinets with all four corners in front by a vectorised separating-axis test, the others by
    homogeneous clipping; method "clip": every cabinet by homogeneous clipping (slow, independent).
    """
    s = 1.0 + margin_ndc
    clip = clip_ref(VP, corners)
    x, y, w = clip[:, 0], clip[:, 1], clip[:, 3]
    valid = w > w_eps
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = np.stack([x / w, y / w], axis=1)
    uv = ndc_to_uv_ref(ndc)
    uv[~valid] = np.nan
    if quads is None:
        quads = cabinet_quads_ref(rows, cols)
    qvalid = valid[quads]
    all_front = qvalid.all(axis=1)
    some_front = qvalid.any(axis=1)
    covered = np.zeros(rows * cols, dtype=bool)
    if method == "sat":
        idx = np.nonzero(all_front)[0]
        if idx.size:
            covered[idx] = _sat_all_in_front(ndc[quads[idx]], s)
        rest = np.nonzero(some_front & ~all_front)[0]
    elif method == "clip":
        rest = np.nonzero(some_front)[0]
    else:
        raise ValueError(method)
    xyw = clip[:, [0, 1, 3]]
    for k in rest:
        covered[k] = polygon_meets_frustum_ref(xyw[quads[k]], s, w_eps)
    return covered, uv, valid


# ------------------------------------------------------------------------------------------------------------
# one frame
# ------------------------------------------------------------------------------------------------------------


class FrameRef:
    """Static per-stage data for :func:`frame_math_ref` (corner grids, cabinet quads, facet corners)."""

    def __init__(self, geometries, near=0.05, far=1000.0, margin_ndc=0.0, w_eps=W_EPS):
        self.geometries = list(geometries)
        self.corners = [np.asarray(g.cabinet_corner_grid()) for g in self.geometries]
        self.quads = [cabinet_quads_ref(g.rows, g.cols) for g in self.geometries]
        fc = np.concatenate([g.facet_corners() for g in self.geometries])
        self.pa, self.pb, self.pc = fc[:, 0], fc[:, 1], fc[:, 2]
        self.near, self.far, self.margin_ndc, self.w_eps = near, far, margin_ndc, w_eps


def frame_math_ref(frame: FrameRef, T_stage_camera, focal_mm, sw, sh, px=0.0, py=0.0,
                   overscan=(0.0, 0.0, 0.0, 0.0), pupil_offset_m=0.0) -> dict:
    """Everything :func:`stagectl.render.frustum.frame_math` computes, walls concatenated."""
    V = view_matrix_ref(T_stage_camera, pupil_offset_m)
    P = camera_projection_ref(focal_mm, sw, sh, px, py, overscan, frame.near, frame.far)
    VP = P @ V
    cov, uvs, valids = [], [], []
    for g, corners, quads in zip(frame.geometries, frame.corners, frame.quads):
        c, uv, valid = coverage_ref(VP, corners, g.rows, g.cols, frame.margin_ndc, frame.w_eps, quads=quads)
        cov.append(c)
        uvs.append(uv)
        valids.append(valid)
    pe = pupil_pose_ref(T_stage_camera, pupil_offset_m)[:3, 3]
    facet_proj, facet_d = kooima_batch_ref(frame.pa, frame.pb, frame.pc, pe, frame.near, frame.far)
    covered = np.concatenate(cov)
    return {
        "V": V,
        "P": P,
        "VP": VP,
        "uv": np.concatenate(uvs),
        "valid": np.concatenate(valids),
        "covered": covered,
        "covered_count": int(covered.sum()),
        "facet_proj": facet_proj,
        "facet_d": facet_d,
    }
