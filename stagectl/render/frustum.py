"""Per-frame frustum maths for one tracked camera, as Numba kernels (docs/conventions.md, "Projections").

Everything here is a pure function of its inputs. The kernels are ``@numba.njit(cache=True)``, take float64
inputs, write into preallocated float64 (or uint8) outputs and return nothing or a count; they never allocate
on the per-frame path. Plain-Python wrappers (``compute_*``, :func:`project`, :func:`raster_to_stage`,
:func:`stage_to_raster`, :func:`coverage`) allocate their outputs and call the kernels; they are for load
time, tools and tests. :class:`FrustumWorkspace` holds every per-frame buffer for one camera over all walls,
and its :meth:`FrustumWorkspace.update` runs :func:`frame_math`, one kernel call per frame.

Frames and units (conventions.md): stage metres, Z up; ``T_a_b`` maps frame b into frame a; the camera looks
along its +Y; the GL eye looks down -Z with +Y up; clip space and NDC are OpenGL's, ``w_clip = -z_gl`` (metres
in front of the eye for every projection built here); image UV is ``u = (x_ndc + 1) / 2``,
``v = (1 - y_ndc) / 2`` (origin top-left, v down). Lens values are millimetres, overscan percent per side,
angles degrees (``*_deg``).

Compilation: kernels are compiled lazily for the argument types they first see; production calls pass
C-contiguous, writeable float64 arrays (uint8 for flags, int64 for facet columns). Call :func:`warmup` at
start-up so that compilation (or loading from the on-disk cache) never happens on a live frame. Arrays of
another layout or read-only arrays (``WallGeometry``'s are read-only) would compile a second specialisation:
the wrappers copy them first.
"""

from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np

__all__ = [
    "W_EPS",
    "OUT_LEFT",
    "OUT_RIGHT",
    "OUT_BOTTOM",
    "OUT_TOP",
    "OUT_BEHIND",
    # kernels
    "pose_matrix",
    "rigid_inverse",
    "matmul4",
    "view_matrix",
    "frustum_matrix",
    "camera_projection",
    "kooima_projection",
    "screen_basis",
    "project_points",
    "facet_raster_to_stage",
    "stage_to_facet_raster",
    "project_corners",
    "cabinet_coverage",
    "frame_math",
    # wrappers
    "compute_pose",
    "compute_view",
    "compute_camera_projection",
    "compute_kooima",
    "project",
    "raster_to_stage",
    "stage_to_raster",
    "coverage",
    "FrustumWorkspace",
    "warmup",
]

#: Default "in front of the eye" threshold on ``w_clip`` (metres): a point is in front when ``w > W_EPS``.
W_EPS = 1e-6

# Outcode bits written by project_corners (homogeneous tests, valid in front of and behind the eye).
# s = 1 + margin_ndc.
OUT_LEFT = 1  #: x_clip < -s * w
OUT_RIGHT = 2  #: x_clip >  s * w
OUT_BOTTOM = 4  #: y_clip < -s * w
OUT_TOP = 8  #: y_clip >  s * w
OUT_BEHIND = 16  #: w_clip <= w_eps (not in front of the eye)

_njit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


# ------------------------------------------------------------------------------------------------------------
# 4x4 helpers
# ------------------------------------------------------------------------------------------------------------


@_njit
def pose_matrix(x, y, z, pan_deg, tilt_deg, roll_deg, out):
    """``out = T_parent_child``: ``R = Rz(pan) @ Rx(tilt) @ Ry(roll)``, ``t = (x, y, z)`` metres.

    Same as ``stagectl.core.transforms.transform_from_pose``; degrees in (the one place a kernel takes degrees,
    because poses arrive that way from every tracking protocol).
    """
    a = math.radians(pan_deg)
    b = math.radians(tilt_deg)
    c = math.radians(roll_deg)
    ca = math.cos(a)
    sa = math.sin(a)
    cb = math.cos(b)
    sb = math.sin(b)
    cc = math.cos(c)
    sc = math.sin(c)
    # Rz(a) @ Rx(b) = [[ca, -sa cb, sa sb], [sa, ca cb, -ca sb], [0, sb, cb]], then @ Ry(c)
    out[0, 0] = ca * cc - sa * sb * sc
    out[0, 1] = -sa * cb
    out[0, 2] = ca * sc + sa * sb * cc
    out[0, 3] = x
    out[1, 0] = sa * cc + ca * sb * sc
    out[1, 1] = ca * cb
    out[1, 2] = sa * sc - ca * sb * cc
    out[1, 3] = y
    out[2, 0] = -cb * sc
    out[2, 1] = sb
    out[2, 2] = cb * cc
    out[2, 3] = z
    out[3, 0] = 0.0
    out[3, 1] = 0.0
    out[3, 2] = 0.0
    out[3, 3] = 1.0


@_njit
def rigid_inverse(T, out):
    """``out = inv(T)`` for a rigid 4x4 (rotation + translation): ``[R^T, -R^T t]``.

    ``out`` must not be ``T``.
    """
    for i in range(3):
        for j in range(3):
            out[i, j] = T[j, i]
        out[i, 3] = -(T[0, i] * T[0, 3] + T[1, i] * T[1, 3] + T[2, i] * T[2, 3])
    out[3, 0] = 0.0
    out[3, 1] = 0.0
    out[3, 2] = 0.0
    out[3, 3] = 1.0


@_njit
def matmul4(A, B, out):
    """``out = A @ B`` for 4x4 matrices. ``out`` must not alias ``A`` or ``B``."""
    for i in range(4):
        for j in range(4):
            out[i, j] = A[i, 0] * B[0, j] + A[i, 1] * B[1, j] + A[i, 2] * B[2, j] + A[i, 3] * B[3, j]


@_njit
def view_matrix(T_stage_camera, pupil_offset_m, out):
    """``out = V = T_gl_camera @ inv(T_stage_camera @ translate(0, e, 0))`` (stage -> GL eye).

    ``T_stage_camera`` must be rigid. ``e = pupil_offset_m`` is the entrance-pupil offset along the optical
    axis (+Y of the camera frame, positive toward the subject), so the eye is the entrance pupil.
    """
    T = T_stage_camera
    e = pupil_offset_m
    # pupil position in the stage: t + e * (camera +Y axis)
    px = T[0, 3] + e * T[0, 1]
    py = T[1, 3] + e * T[1, 1]
    pz = T[2, 3] + e * T[2, 1]
    # inv(T_stage_pupil) rows are the camera axes (columns of R); GL: x = x_cam, y = z_cam, z = -y_cam
    for j in range(3):
        out[0, j] = T[j, 0]
        out[1, j] = T[j, 2]
        out[2, j] = -T[j, 1]
    out[0, 3] = -(T[0, 0] * px + T[1, 0] * py + T[2, 0] * pz)
    out[1, 3] = -(T[0, 2] * px + T[1, 2] * py + T[2, 2] * pz)
    out[2, 3] = T[0, 1] * px + T[1, 1] * py + T[2, 1] * pz
    out[3, 0] = 0.0
    out[3, 1] = 0.0
    out[3, 2] = 0.0
    out[3, 3] = 1.0


@_njit
def frustum_matrix(left, right, bottom, top, near, far, out):
    """``out = glFrustum(l, r, b, t, n, f)`` (row-major, acts on column vectors)."""
    out[:, :] = 0.0
    out[0, 0] = 2.0 * near / (right - left)
    out[0, 2] = (right + left) / (right - left)
    out[1, 1] = 2.0 * near / (top - bottom)
    out[1, 2] = (top + bottom) / (top - bottom)
    out[2, 2] = -(far + near) / (far - near)
    out[2, 3] = -2.0 * far * near / (far - near)
    out[3, 2] = -1.0


@_njit
def camera_projection(
    focal_mm, sensor_w_mm, sensor_h_mm, pp_x_mm, pp_y_mm, ov_left, ov_right, ov_bottom, ov_top, near, far, out
):
    """``out = P``, the inner-frustum projection of a camera (conventions.md, "Camera (inner frustum)").

    ``pp_*_mm`` is the principal-point offset on the sensor from its centre, +x right, +y up (mm). Overscan
    ``ov_*`` is percent of the unscanned frustum's width (left, right) or height (bottom, top) added on that
    side. ``near``/``far`` in metres.
    """
    s = near / focal_mm
    l0 = s * (-0.5 * sensor_w_mm - pp_x_mm)
    r0 = s * (0.5 * sensor_w_mm - pp_x_mm)
    b0 = s * (-0.5 * sensor_h_mm - pp_y_mm)
    t0 = s * (0.5 * sensor_h_mm - pp_y_mm)
    w = r0 - l0
    h = t0 - b0
    frustum_matrix(
        l0 - 0.01 * ov_left * w,
        r0 + 0.01 * ov_right * w,
        b0 - 0.01 * ov_bottom * h,
        t0 + 0.01 * ov_top * h,
        near,
        far,
        out,
    )


@_njit
def _kooima_core(rx, ry, rz, ux, uy, uz, nx, ny, nz, pa, pb, pc, pe0, pe1, pe2, near, far, out):
    """Kooima's P' from the screen basis (vr, vu, vn as scalars), corners and eye; returns ``d``."""
    # eye -> corner vectors
    ax = pa[0] - pe0
    ay = pa[1] - pe1
    az = pa[2] - pe2
    bx = pb[0] - pe0
    by = pb[1] - pe1
    bz = pb[2] - pe2
    cx = pc[0] - pe0
    cy = pc[1] - pe1
    cz = pc[2] - pe2
    d = -(nx * ax + ny * ay + nz * az)
    k = near / d
    left = (rx * ax + ry * ay + rz * az) * k
    right = (rx * bx + ry * by + rz * bz) * k
    bottom = (ux * ax + uy * ay + uz * az) * k
    top = (ux * cx + uy * cy + uz * cz) * k
    # glFrustum entries
    p00 = 2.0 * near / (right - left)
    p02 = (right + left) / (right - left)
    p11 = 2.0 * near / (top - bottom)
    p12 = (top + bottom) / (top - bottom)
    p22 = -(far + near) / (far - near)
    p23 = -2.0 * far * near / (far - near)
    # A = M^T @ translate(-pe) has rows [vr, er], [vu, eu], [vn, en], [0, 0, 0, 1]; P' = P @ A
    er = -(rx * pe0 + ry * pe1 + rz * pe2)
    eu = -(ux * pe0 + uy * pe1 + uz * pe2)
    en = -(nx * pe0 + ny * pe1 + nz * pe2)
    out[0, 0] = p00 * rx + p02 * nx
    out[0, 1] = p00 * ry + p02 * ny
    out[0, 2] = p00 * rz + p02 * nz
    out[0, 3] = p00 * er + p02 * en
    out[1, 0] = p11 * ux + p12 * nx
    out[1, 1] = p11 * uy + p12 * ny
    out[1, 2] = p11 * uz + p12 * nz
    out[1, 3] = p11 * eu + p12 * en
    out[2, 0] = p22 * nx
    out[2, 1] = p22 * ny
    out[2, 2] = p22 * nz
    out[2, 3] = p22 * en + p23
    out[3, 0] = -nx
    out[3, 1] = -ny
    out[3, 2] = -nz
    out[3, 3] = -en
    return d


@_njit
def screen_basis(pa, pb, pc, out):
    """``out`` (3, 3) rows ``vr, vu, vn``: Kooima's screen basis, normalised but not orthogonalised."""
    rx = pb[0] - pa[0]
    ry = pb[1] - pa[1]
    rz = pb[2] - pa[2]
    inv = 1.0 / math.sqrt(rx * rx + ry * ry + rz * rz)
    rx *= inv
    ry *= inv
    rz *= inv
    ux = pc[0] - pa[0]
    uy = pc[1] - pa[1]
    uz = pc[2] - pa[2]
    inv = 1.0 / math.sqrt(ux * ux + uy * uy + uz * uz)
    ux *= inv
    uy *= inv
    uz *= inv
    nx = ry * uz - rz * uy
    ny = rz * ux - rx * uz
    nz = rx * uy - ry * ux
    inv = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz)
    out[0, 0] = rx
    out[0, 1] = ry
    out[0, 2] = rz
    out[1, 0] = ux
    out[1, 1] = uy
    out[1, 2] = uz
    out[2, 0] = nx * inv
    out[2, 1] = ny * inv
    out[2, 2] = nz * inv


@_njit
def kooima_projection(pa, pb, pc, pe, near, far, out):
    """``out = P' = frustum(l, r, b, t, n, f) @ M^T @ translate(-pe)`` (Kooima 2008; conventions.md).

    ``pa`` lower-left, ``pb`` lower-right, ``pc`` upper-left screen corners and ``pe`` the eye, all (3,) stage
    metres. Stage -> clip directly (there is no separate view matrix). Meaningful only with the eye in front
    of the screen (``d = -(vn . (pa - pe)) > 0``); :func:`frame_math` reports ``d`` per facet.
    """
    screen_basis(pa, pb, pc, out)  # out[:3, :3] holds the basis until the core overwrites it
    _kooima_core(
        out[0, 0], out[0, 1], out[0, 2], out[1, 0], out[1, 1], out[1, 2], out[2, 0], out[2, 1], out[2, 2],
        pa, pb, pc, pe[0], pe[1], pe[2], near, far, out,
    )


# ------------------------------------------------------------------------------------------------------------
# points
# ------------------------------------------------------------------------------------------------------------


@_njit
def project_points(VP, points, out_ndc, out_w):
    """``clip = VP @ [p, 1]``; ``out_w = w_clip``; ``out_ndc = clip.xyz / w`` where ``w > 0``, else NaN.

    ``points`` (N, 3), ``out_ndc`` (N, 3), ``out_w`` (N,). Returns the number of points with ``w > 0``.
    A point behind (or exactly at) the eye plane has no image: its NDC is NaN, its ``w`` is kept.
    """
    n_front = 0
    for i in range(points.shape[0]):
        px = points[i, 0]
        py = points[i, 1]
        pz = points[i, 2]
        x = VP[0, 0] * px + VP[0, 1] * py + VP[0, 2] * pz + VP[0, 3]
        y = VP[1, 0] * px + VP[1, 1] * py + VP[1, 2] * pz + VP[1, 3]
        z = VP[2, 0] * px + VP[2, 1] * py + VP[2, 2] * pz + VP[2, 3]
        w = VP[3, 0] * px + VP[3, 1] * py + VP[3, 2] * pz + VP[3, 3]
        out_w[i] = w
        if w > 0.0:
            out_ndc[i, 0] = x / w
            out_ndc[i, 1] = y / w
            out_ndc[i, 2] = z / w
            n_front += 1
        else:
            out_ndc[i, 0] = np.nan
            out_ndc[i, 1] = np.nan
            out_ndc[i, 2] = np.nan
    return n_front


@_njit
def _facet_of_column(x1, x):
    """Index of the first facet with ``x < x1[f]`` (numpy ``searchsorted(x1, x, 'right')``), clamped."""
    lo = 0
    hi = x1.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if x1[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    if lo > x1.shape[0] - 1:
        lo = x1.shape[0] - 1
    return lo


@_njit
def facet_raster_to_stage(x0, x1, origin, right, down, xy, out):
    """Wall raster -> stage: ``out[i] = origin_f + (x - x0_f) * right_f + y * down_f`` (conventions.md).

    ``xy`` (N, 2) continuous raster pixels (top-left origin, y down); ``out`` (N, 3) stage metres. The facet
    is the one whose columns ``[x0, x1)`` hold ``x``; outside the wall the first/last facet extrapolates (same
    as ``WallGeometry.raster_to_stage``).
    """
    for i in range(xy.shape[0]):
        x = xy[i, 0]
        y = xy[i, 1]
        f = _facet_of_column(x1, x)
        dx = x - x0[f]
        for k in range(3):
            out[i, k] = origin[f, k] + dx * right[f, k] + y * down[f, k]


@_njit
def stage_to_facet_raster(x0, x1, origin, right, down, points, out_xy, out_dist):
    """Stage -> wall raster, the inverse of :func:`facet_raster_to_stage` for points on the wall surface.

    For each point and facet, solve ``p - origin_f = a * right_f + b * down_f`` in the least-squares sense
    (``right``/``down`` need not be orthogonal); the distance to a facet is the Euclidean distance from the
    point to the facet's plane strip over its columns (rows unbounded). The nearest facet wins (the lower
    index on an exact tie). ``out_xy[i] = (x0_f + a, b)`` raster pixels, extrapolated for points off the
    facet; ``out_dist[i]`` that distance in metres (0 on the surface, up to rounding). Exact for points on the
    surface; for points off it near a seam between two facets (behind the seam of an arc, say) both facets can
    be equally near and the choice between their extrapolations is arbitrary.
    """
    nf = x0.shape[0]
    for i in range(points.shape[0]):
        best = np.inf
        bx = np.nan
        by = np.nan
        for f in range(nf):
            qx = points[i, 0] - origin[f, 0]
            qy = points[i, 1] - origin[f, 1]
            qz = points[i, 2] - origin[f, 2]
            rx = right[f, 0]
            ry = right[f, 1]
            rz = right[f, 2]
            dx = down[f, 0]
            dy = down[f, 1]
            dz = down[f, 2]
            rr = rx * rx + ry * ry + rz * rz
            rd = rx * dx + ry * dy + rz * dz
            dd = dx * dx + dy * dy + dz * dz
            rq = rx * qx + ry * qy + rz * qz
            dq = dx * qx + dy * qy + dz * qz
            det = rr * dd - rd * rd
            a = (dd * rq - rd * dq) / det
            b = (rr * dq - rd * rq) / det
            ex = qx - a * rx - b * dx
            ey = qy - a * ry - b * dy
            ez = qz - a * rz - b * dz
            span = float(x1[f] - x0[f])
            out_cols = 0.0
            if a < 0.0:
                out_cols = -a
            elif a > span:
                out_cols = a - span
            dist2 = ex * ex + ey * ey + ez * ez + out_cols * out_cols * rr
            if dist2 < best:
                best = dist2
                bx = x0[f] + a
                by = b
        out_xy[i, 0] = bx
        out_xy[i, 1] = by
        out_dist[i] = math.sqrt(best)


# ------------------------------------------------------------------------------------------------------------
# cabinet coverage
# ------------------------------------------------------------------------------------------------------------


@_njit
def project_corners(VP, corners, margin_ndc, w_eps, out_uv, out_w, out_valid, out_code):
    """Project cabinet corners with ``VP``; returns the number of valid corners.

    Structure-of-arrays layout (so that the loop vectorises): ``corners`` (3, N) stage metres, rows x, y, z;
    ``out_uv`` (2, N), rows u, v: the corner's image UV in the projection's image (``u = (x_ndc + 1) / 2``,
    ``v = (1 - y_ndc) / 2``), NaN where not valid; ``out_w`` (N,): ``w_clip``; ``out_valid`` (N,) uint8:
    1 when the corner is in front of the eye (``w > w_eps``); ``out_code`` (N,) uint8: ``OUT_*`` bits against
    the square ``[-s, s]^2``, ``s = 1 + margin_ndc``, tested in homogeneous form so that they also hold for
    corners behind the eye. ``code == 0`` means in front and inside.
    """
    s = 1.0 + margin_ndc
    a00 = VP[0, 0]
    a01 = VP[0, 1]
    a02 = VP[0, 2]
    a03 = VP[0, 3]
    a10 = VP[1, 0]
    a11 = VP[1, 1]
    a12 = VP[1, 2]
    a13 = VP[1, 3]
    a30 = VP[3, 0]
    a31 = VP[3, 1]
    a32 = VP[3, 2]
    a33 = VP[3, 3]
    n_valid = 0
    for i in range(corners.shape[1]):
        px = corners[0, i]
        py = corners[1, i]
        pz = corners[2, i]
        x = a00 * px + a01 * py + a02 * pz + a03
        y = a10 * px + a11 * py + a12 * pz + a13
        w = a30 * px + a31 * py + a32 * pz + a33
        sw = s * w
        front = w > w_eps
        u = 0.5 * (x / w + 1.0)
        v = 0.5 * (1.0 - y / w)
        out_w[i] = w
        out_uv[0, i] = u if front else np.nan
        out_uv[1, i] = v if front else np.nan
        out_valid[i] = 1 if front else 0
        code = 0
        code |= OUT_LEFT if x < -sw else 0
        code |= OUT_RIGHT if x > sw else 0
        code |= OUT_BOTTOM if y < -sw else 0
        code |= OUT_TOP if y > sw else 0
        code |= 0 if front else OUT_BEHIND
        out_code[i] = code
        n_valid += 1 if front else 0
    return n_valid


@_njit
def _convex_overlaps_square(poly, n, s):
    """Separating-axis test: does the convex polygon ``poly[:n]`` (NDC x, y) meet the square ``[-s, s]^2``?

    Touching counts as overlapping. Axes: the square's two, then each polygon edge's normal.
    """
    xmin = poly[0, 0]
    xmax = xmin
    ymin = poly[0, 1]
    ymax = ymin
    for k in range(1, n):
        xk = poly[k, 0]
        yk = poly[k, 1]
        if xk < xmin:
            xmin = xk
        if xk > xmax:
            xmax = xk
        if yk < ymin:
            ymin = yk
        if yk > ymax:
            ymax = yk
    if xmin > s or xmax < -s or ymin > s or ymax < -s:
        return False
    for i in range(n):
        j = i + 1
        if j == n:
            j = 0
        nx = poly[j, 1] - poly[i, 1]
        ny = poly[i, 0] - poly[j, 0]
        if nx == 0.0 and ny == 0.0:
            continue
        half = s * (abs(nx) + abs(ny))  # the square's projection is [-half, half]
        pmin = nx * poly[0, 0] + ny * poly[0, 1]
        pmax = pmin
        for k in range(1, n):
            p = nx * poly[k, 0] + ny * poly[k, 1]
            if p < pmin:
                pmin = p
            if p > pmax:
                pmax = p
        if pmin > half or pmax < -half:
            return False
    return True


@_njit
def _clip_quad_in_front(VP, corners, i0, i1, i2, i3, w_eps, poly):
    """Clip the quad (corner indices in order, ``corners`` (3, N)) against ``w >= w_eps`` in homogeneous
    coordinates.

    Writes the NDC (x/w, y/w) of the clipped convex polygon into ``poly`` (>= 5 rows) and returns its vertex
    count (0 when the whole quad is behind).
    """
    n = 0
    for e in range(4):
        ia = i0
        ib = i1
        if e == 1:
            ia = i1
            ib = i2
        elif e == 2:
            ia = i2
            ib = i3
        elif e == 3:
            ia = i3
            ib = i0
        ax = corners[0, ia]
        ay = corners[1, ia]
        az = corners[2, ia]
        bx = corners[0, ib]
        by = corners[1, ib]
        bz = corners[2, ib]
        xa = VP[0, 0] * ax + VP[0, 1] * ay + VP[0, 2] * az + VP[0, 3]
        ya = VP[1, 0] * ax + VP[1, 1] * ay + VP[1, 2] * az + VP[1, 3]
        wa = VP[3, 0] * ax + VP[3, 1] * ay + VP[3, 2] * az + VP[3, 3]
        xb = VP[0, 0] * bx + VP[0, 1] * by + VP[0, 2] * bz + VP[0, 3]
        yb = VP[1, 0] * bx + VP[1, 1] * by + VP[1, 2] * bz + VP[1, 3]
        wb = VP[3, 0] * bx + VP[3, 1] * by + VP[3, 2] * bz + VP[3, 3]
        da = wa - w_eps
        db = wb - w_eps
        if da >= 0.0 and wa > 0.0:
            poly[n, 0] = xa / wa
            poly[n, 1] = ya / wa
            n += 1
        if (da >= 0.0) != (db >= 0.0):
            t = da / (da - db)
            xi = xa + t * (xb - xa)
            yi = ya + t * (yb - ya)
            wi = wa + t * (wb - wa)
            if wi > 0.0:
                poly[n, 0] = xi / wi
                poly[n, 1] = yi / wi
                n += 1
    return n


@_njit
def cabinet_coverage(VP, corners, codes, uv, rows, cols, margin_ndc, w_eps, scratch, out_covered):
    """Which cabinets of one wall does the frustum of ``VP`` cover (any part, touching included)?

    ``corners`` (3, (rows+1)*(cols+1)): the wall's cabinet corner grid, row-major from the top-left
    (``WallGeometry.cabinet_corner_grid().T``); ``codes`` and ``uv`` (2, Nc) from :func:`project_corners` with
    the same ``VP``, ``margin_ndc`` and ``w_eps``. ``out_covered`` (rows*cols,) uint8, cabinets row-major;
    ``scratch`` float64 (>= 5, 2). Returns the number of covered cabinets.

    "Covered" means some point of the cabinet is in front of the eye (``w > w_eps``) and projects into
    ``[-s, s]^2``, ``s = 1 + margin_ndc`` (near and far planes are ignored, as in the wall composite).
    Cabinets must be planar (facet edges on cabinet edges, true of every wall type). A first, vectorised pass
    rejects a cabinet whose four corners are outside one plane (outcodes) and accepts one with a corner in
    front and inside; a second pass settles the few left by a separating-axis test of the projected quad
    against the square, after clipping the quad to ``w >= w_eps`` in homogeneous coordinates when it crosses
    the eye plane. Correct when the frustum lies inside one cabinet and when cabinets reach behind the eye.
    """
    s = 1.0 + margin_ndc
    stride = cols + 1
    # pass 1, branch-free so that it vectorises: 0 = rejected (all four corners beyond one plane),
    # 1 = accepted (a corner in front and inside), 2 = undecided
    for r in range(rows):
        top = codes[r * stride:(r + 1) * stride]
        bot = codes[(r + 1) * stride:(r + 2) * stride]
        out = out_covered[r * cols:(r + 1) * cols]
        for c in range(cols):
            a = top[c] & top[c + 1] & bot[c] & bot[c + 1]
            inside = (top[c] == 0) | (top[c + 1] == 0) | (bot[c] == 0) | (bot[c + 1] == 0)
            undecided = (a == 0) & ~inside
            out[c] = np.uint8(inside) | (np.uint8(undecided) << np.uint8(1))
    # pass 2: settle the undecided few by the separating-axis test, and count
    count = 0
    for k in range(rows * cols):
        v = out_covered[k]
        if v == 2:
            r = k // cols
            c = k - r * cols
            i0 = r * stride + c  # top-left
            i1 = i0 + 1  # top-right
            i3 = i0 + stride  # bottom-left
            i2 = i3 + 1  # bottom-right
            if ((codes[i0] | codes[i1] | codes[i2] | codes[i3]) & OUT_BEHIND) == 0:
                scratch[0, 0] = 2.0 * uv[0, i0] - 1.0
                scratch[0, 1] = 1.0 - 2.0 * uv[1, i0]
                scratch[1, 0] = 2.0 * uv[0, i1] - 1.0
                scratch[1, 1] = 1.0 - 2.0 * uv[1, i1]
                scratch[2, 0] = 2.0 * uv[0, i2] - 1.0
                scratch[2, 1] = 1.0 - 2.0 * uv[1, i2]
                scratch[3, 0] = 2.0 * uv[0, i3] - 1.0
                scratch[3, 1] = 1.0 - 2.0 * uv[1, i3]
                hit = _convex_overlaps_square(scratch, 4, s)
            else:
                n = _clip_quad_in_front(VP, corners, i0, i1, i2, i3, w_eps, scratch)
                hit = n > 0 and _convex_overlaps_square(scratch, n, s)
            v = 1 if hit else 0
            out_covered[k] = v
        count += v
    return count


# ------------------------------------------------------------------------------------------------------------
# everything for one frame
# ------------------------------------------------------------------------------------------------------------


@_njit
def frame_math(
    T_stage_camera,
    pupil_offset_m,
    focal_mm,
    sensor_w_mm,
    sensor_h_mm,
    pp_x_mm,
    pp_y_mm,
    ov_left,
    ov_right,
    ov_bottom,
    ov_top,
    near,
    far,
    margin_ndc,
    w_eps,
    corners,
    walls,
    facets,
    out_mats,
    out_uv,
    out_w,
    out_valid,
    out_code,
    out_covered,
    out_facet_proj,
    out_facet_d,
    scratch,
):
    """All per-frame CPU maths of one camera over all walls; returns the number of covered cabinets.

    Static inputs: ``corners`` (3, Nc) every wall's cabinet corner grid concatenated (rows x, y, z); ``walls``
    (W, 4) int64 rows ``(corner_start, cabinet_start, rows, cols)``; ``facets`` (F, 6, 3) every facet's Kooima
    corners and screen basis ``(pa, pb, pc, vr, vu, vn)`` (:func:`screen_basis`), all walls. Outputs:
    ``out_mats`` (3, 4, 4) = ``V, P, VP`` (``P`` with overscan); ``out_uv`` (2, Nc), ``out_w``, ``out_valid``,
    ``out_code`` per corner (:func:`project_corners`); ``out_covered`` (Ncab,) uint8
    (:func:`cabinet_coverage`, walls concatenated); ``out_facet_proj`` (F, 4, 4) each facet's Kooima ``P'``
    with the entrance pupil as eye (outer frustum); ``out_facet_d`` (F,) the pupil's signed distance in front
    of each facet (``P'`` is meaningful only where ``d > 0``); ``scratch`` (>= 5, 2). No allocation.
    """
    V = out_mats[0]
    P = out_mats[1]
    VP = out_mats[2]
    view_matrix(T_stage_camera, pupil_offset_m, V)
    camera_projection(
        focal_mm, sensor_w_mm, sensor_h_mm, pp_x_mm, pp_y_mm, ov_left, ov_right, ov_bottom, ov_top, near, far,
        P,
    )
    matmul4(P, V, VP)
    project_corners(VP, corners, margin_ndc, w_eps, out_uv, out_w, out_valid, out_code)
    count = 0
    for iw in range(walls.shape[0]):
        c0 = walls[iw, 0]
        k0 = walls[iw, 1]
        rows = walls[iw, 2]
        cols = walls[iw, 3]
        c1 = c0 + (rows + 1) * (cols + 1)
        k1 = k0 + rows * cols
        count += cabinet_coverage(
            VP,
            corners[:, c0:c1],
            out_code[c0:c1],
            out_uv[:, c0:c1],
            rows,
            cols,
            margin_ndc,
            w_eps,
            scratch,
            out_covered[k0:k1],
        )
    # entrance pupil in the stage (the Kooima eye)
    T = T_stage_camera
    e = pupil_offset_m
    pe0 = T[0, 3] + e * T[0, 1]
    pe1 = T[1, 3] + e * T[1, 1]
    pe2 = T[2, 3] + e * T[2, 1]
    for f in range(facets.shape[0]):
        sf = facets[f]
        out_facet_d[f] = _kooima_core(
            sf[3, 0], sf[3, 1], sf[3, 2], sf[4, 0], sf[4, 1], sf[4, 2], sf[5, 0], sf[5, 1], sf[5, 2],
            sf[0], sf[1], sf[2], pe0, pe1, pe2, near, far, out_facet_proj[f],
        )
    return count


# ------------------------------------------------------------------------------------------------------------
# Python wrappers (allocate, then call a kernel)
# ------------------------------------------------------------------------------------------------------------


def _f64(a, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    """A writeable C-contiguous float64 copy-or-view (copies read-only inputs so kernels see one type)."""
    arr = np.asarray(a, dtype=np.float64)
    if shape_tail is not None:
        arr = arr.reshape((-1,) + shape_tail)
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        arr = np.array(arr, dtype=np.float64, order="C")
    return arr


def compute_pose(x, y, z, pan_deg, tilt_deg, roll_deg) -> np.ndarray:
    """4x4 ``T_parent_child`` from metres and degrees (see :func:`pose_matrix`)."""
    out = np.empty((4, 4))
    pose_matrix(float(x), float(y), float(z), float(pan_deg), float(tilt_deg), float(roll_deg), out)
    return out


def compute_view(T_stage_camera, pupil_offset_m: float = 0.0) -> np.ndarray:
    """4x4 view matrix ``V`` (stage -> GL eye at the entrance pupil), see :func:`view_matrix`."""
    out = np.empty((4, 4))
    view_matrix(_f64(T_stage_camera).reshape(4, 4), float(pupil_offset_m), out)
    return out


def compute_camera_projection(
    focal_mm, sensor_w_mm, sensor_h_mm, pp_x_mm=0.0, pp_y_mm=0.0, overscan_pct=(0.0, 0.0, 0.0, 0.0),
    near=0.05, far=1000.0,
) -> np.ndarray:
    """4x4 ``P`` of a camera (:func:`camera_projection`); ``overscan_pct`` = (left, right, bottom, top) %."""
    out = np.empty((4, 4))
    ol, orr, ob, ot = (float(v) for v in overscan_pct)
    camera_projection(
        float(focal_mm), float(sensor_w_mm), float(sensor_h_mm), float(pp_x_mm), float(pp_y_mm),
        ol, orr, ob, ot, float(near), float(far), out,
    )
    return out


def compute_kooima(pa, pb, pc, pe, near=0.05, far=1000.0) -> np.ndarray:
    """4x4 Kooima ``P'`` for a planar screen and eye (stage metres), see :func:`kooima_projection`."""
    out = np.empty((4, 4))
    kooima_projection(_f64(pa), _f64(pb), _f64(pc), _f64(pe), float(near), float(far), out)
    return out


def project(VP, points) -> tuple[np.ndarray, np.ndarray]:
    """``(ndc (N, 3), w (N,))`` of stage points (N, 3) under ``VP``; NaN NDC behind the eye."""
    pts = _f64(points, (3,))
    ndc = np.empty_like(pts)
    w = np.empty(pts.shape[0])
    project_points(_f64(VP).reshape(4, 4), pts, ndc, w)
    return ndc, w


def _geometry_arrays(geometry):
    return (
        np.array(geometry.x0, dtype=np.int64),
        np.array(geometry.x1, dtype=np.int64),
        _f64(geometry.origin, (3,)),
        _f64(geometry.right, (3,)),
        _f64(geometry.down, (3,)),
    )


def raster_to_stage(geometry, xy) -> np.ndarray:
    """(N, 2) wall raster pixels -> (N, 3) stage metres for a ``WallGeometry`` (kernel twin of its method)."""
    pts = _f64(xy, (2,))
    out = np.empty((pts.shape[0], 3))
    facet_raster_to_stage(*_geometry_arrays(geometry), pts, out)
    return out


def stage_to_raster(geometry, points) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) stage metres -> ``(xy (N, 2) raster pixels, distance (N,) metres from the wall surface)``."""
    pts = _f64(points, (3,))
    xy = np.empty((pts.shape[0], 2))
    dist = np.empty(pts.shape[0])
    stage_to_facet_raster(*_geometry_arrays(geometry), pts, xy, dist)
    return xy, dist


def coverage(VP, corners, rows: int, cols: int, margin_ndc: float = 0.0, w_eps: float = W_EPS):
    """Cabinet coverage of one wall: ``(covered (rows*cols,) bool, uv (Nc, 2), valid (Nc,) bool)``.

    ``corners`` (Nc, 3) is ``WallGeometry.cabinet_corner_grid()``; see :func:`cabinet_coverage`.
    """
    c = np.ascontiguousarray(np.asarray(corners, dtype=np.float64).reshape(-1, 3).T)
    if c.shape[1] != (rows + 1) * (cols + 1):
        raise ValueError(f"expected {(rows + 1) * (cols + 1)} corners, got {c.shape[1]}")
    VP = _f64(VP).reshape(4, 4)
    n = c.shape[1]
    uv = np.empty((2, n))
    w = np.empty(n)
    valid = np.empty(n, dtype=np.uint8)
    code = np.empty(n, dtype=np.uint8)
    covered = np.empty(rows * cols, dtype=np.uint8)
    scratch = np.empty((8, 2))
    project_corners(VP, c, float(margin_ndc), float(w_eps), uv, w, valid, code)
    cabinet_coverage(VP, c, code, uv, int(rows), int(cols), float(margin_ndc), float(w_eps), scratch, covered)
    return covered.astype(bool), np.ascontiguousarray(uv.T), valid.astype(bool)


class FrustumWorkspace:
    """Preallocated per-frame state for one camera over a fixed set of walls.

    ``walls`` is a sequence of ``WallGeometry`` or of objects with a ``.geometry`` (a stage's walls).
    After :meth:`update`, the attributes below hold this frame's results; they are views into buffers that
    live as long as the workspace and are overwritten by the next update (copy what you keep):

    * ``V``, ``P``, ``VP`` (4, 4): view, inner-frustum projection (with overscan), their product;
    * ``uv`` (2, Nc) (rows u, v; structure-of-arrays), ``w`` (Nc,), ``valid`` (Nc,) uint8, ``code`` (Nc,)
      uint8: every cabinet corner of every wall, walls concatenated in order (:meth:`wall_corner_slice`,
      :meth:`wall_uv`); ``corners`` (3, Nc) holds their stage positions;
    * ``covered`` (Ncab,) uint8, walls concatenated (:meth:`wall_cabinet_slice`, :meth:`wall_covered`);
    * ``facet_proj`` (F, 4, 4), ``facet_d`` (F,): per-facet Kooima ``P'`` with the entrance pupil as eye and
      the pupil's distance in front of the facet (:meth:`wall_facet_slice`);
    * ``covered_count``: covered cabinets over all walls.
    """

    def __init__(self, walls: Sequence, near: float = 0.05, far: float = 1000.0, margin_ndc: float = 0.0,
                 w_eps: float = W_EPS):
        geoms = [getattr(w, "geometry", w) for w in walls]
        if not geoms:
            raise ValueError("FrustumWorkspace needs at least one wall")
        self.names = [getattr(w, "name", f"wall{i}") for i, w in enumerate(walls)]
        self.geometries = geoms
        self.near = float(near)
        self.far = float(far)
        self.margin_ndc = float(margin_ndc)
        self.w_eps = float(w_eps)
        table = []
        corner_blocks = []
        facet_blocks = []
        self._facet_ranges = []
        c0 = k0 = f0 = 0
        for g in geoms:
            table.append((c0, k0, g.rows, g.cols))
            corner_blocks.append(np.asarray(g.cabinet_corner_grid(), dtype=np.float64))
            facet_blocks.append(np.asarray(g.facet_corners(), dtype=np.float64))
            self._facet_ranges.append((f0, f0 + g.facet_count))
            c0 += (g.rows + 1) * (g.cols + 1)
            k0 += g.rows * g.cols
            f0 += g.facet_count
        self.walls = np.array(table, dtype=np.int64).reshape(-1, 4)
        self.corners = np.ascontiguousarray(np.concatenate(corner_blocks).T, dtype=np.float64)
        corners3 = np.concatenate(facet_blocks)
        self.facets = np.zeros((corners3.shape[0], 6, 3))
        self.facets[:, :3] = corners3
        for f in range(corners3.shape[0]):  # static: the per-frame Kooima needs only the eye
            screen_basis(self.facets[f, 0], self.facets[f, 1], self.facets[f, 2], self.facets[f, 3:])
        nc, ncab, nf = c0, k0, f0
        self.mats = np.zeros((3, 4, 4))
        self.V, self.P, self.VP = self.mats[0], self.mats[1], self.mats[2]
        self.uv = np.full((2, nc), np.nan)
        self.w = np.zeros(nc)
        self.valid = np.zeros(nc, dtype=np.uint8)
        self.code = np.zeros(nc, dtype=np.uint8)
        self.covered = np.zeros(ncab, dtype=np.uint8)
        self.facet_proj = np.zeros((nf, 4, 4))
        self.facet_d = np.zeros(nf)
        self.scratch = np.zeros((8, 2))
        self.covered_count = 0
        self._T = np.eye(4)

    @property
    def cabinet_count(self) -> int:
        return int(self.covered.shape[0])

    def update(self, T_stage_camera, focal_mm, sensor_w_mm, sensor_h_mm, pp_x_mm=0.0, pp_y_mm=0.0,
               overscan_pct=(0.0, 0.0, 0.0, 0.0), pupil_offset_m=0.0) -> int:
        """Run :func:`frame_math` for this frame; returns the number of covered cabinets.

        ``T_stage_camera`` (4, 4) rigid, float64; pass a C-contiguous float64 array to avoid a copy.
        Lens values in mm, ``overscan_pct`` (left, right, bottom, top) percent, ``pupil_offset_m`` metres.
        """
        T = T_stage_camera
        if not (isinstance(T, np.ndarray) and T.dtype == np.float64 and T.flags.c_contiguous
                and T.shape == (4, 4)):
            self._T[:, :] = T
            T = self._T
        ol, orr, ob, ot = overscan_pct
        n = frame_math(
            T, float(pupil_offset_m), float(focal_mm), float(sensor_w_mm), float(sensor_h_mm), float(pp_x_mm),
            float(pp_y_mm), float(ol), float(orr), float(ob), float(ot), self.near, self.far, self.margin_ndc,
            self.w_eps, self.corners, self.walls, self.facets, self.mats, self.uv, self.w, self.valid,
            self.code, self.covered, self.facet_proj, self.facet_d, self.scratch,
        )
        self.covered_count = n
        return n

    def wall_corner_slice(self, i: int) -> slice:
        c0, _, rows, cols = (int(v) for v in self.walls[i])
        return slice(c0, c0 + (rows + 1) * (cols + 1))

    def wall_cabinet_slice(self, i: int) -> slice:
        _, k0, rows, cols = (int(v) for v in self.walls[i])
        return slice(k0, k0 + rows * cols)

    def wall_facet_slice(self, i: int) -> slice:
        return slice(*self._facet_ranges[i])

    def wall_covered(self, i: int) -> np.ndarray:
        """(rows, cols) uint8 view of wall ``i``'s covered cabinets (row 0 = top)."""
        _, _, rows, cols = (int(v) for v in self.walls[i])
        return self.covered[self.wall_cabinet_slice(i)].reshape(rows, cols)

    def wall_uv(self, i: int) -> np.ndarray:
        """(rows+1, cols+1, 2) view of wall ``i``'s corner UVs in the inner-frustum image (NaN: not valid)."""
        _, _, rows, cols = (int(v) for v in self.walls[i])
        return np.moveaxis(self.uv[:, self.wall_corner_slice(i)].reshape(2, rows + 1, cols + 1), 0, -1)


def warmup() -> None:
    """Compile (or load from cache) every kernel for the production argument types, on tiny inputs."""
    from stagectl.stage.geometry import curved_wall_geometry, flat_wall_geometry

    T = compute_pose(0.1, -0.2, 1.5, 5.0, 3.0, -2.0)
    Ti = np.empty((4, 4))
    rigid_inverse(T, Ti)
    M = np.empty((4, 4))
    matmul4(T, Ti, M)
    V = compute_view(T, 0.1)
    P = compute_camera_projection(35.0, 36.0, 24.0, 0.1, -0.1, (5.0, 5.0, 5.0, 5.0), 0.1, 100.0)
    frustum_matrix(-1.0, 1.0, -1.0, 1.0, 1.0, 10.0, M)
    compute_kooima([-1.0, 5.0, 0.0], [1.0, 5.0, 0.0], [-1.0, 5.0, 1.0], [0.0, 0.0, 0.5])
    VP = P @ V
    project(VP, np.array([[0.0, 5.0, 1.5], [0.0, -5.0, 1.5]]))
    g = curved_wall_geometry((0.0, 0.0), 5.0, 60.0, 0.0, 3, 2, (500.0, 500.0), (8, 8))
    xyz = raster_to_stage(g, np.array([[1.0, 2.0], [20.0, 3.0]]))
    stage_to_raster(g, xyz)
    coverage(VP, g.cabinet_corner_grid(), g.rows, g.cols)
    f = flat_wall_geometry((0.0, 4.0, 1.5), (0.0, 0.0, 0.0), 2, 2, (500.0, 500.0), (8, 8))
    ws = FrustumWorkspace([g, f])
    ws.update(T, 35.0, 36.0, 24.0, 0.1, -0.1, (5.0, 5.0, 5.0, 5.0), 0.1)
