"""Rigid transforms in the stage conventions (docs/conventions.md), plain numpy.

These run at load time and in tests; the per-frame twins are Numba kernels in ``stagectl.render.frustum``.
``T_a_b`` maps frame-b coordinates into frame a: ``p_a = T_a_b @ p_b``.

:func:`rotation_rows_from_ptr_deg`, :func:`ptr_deg_from_rows` and :func:`matmul3` are plain-``math`` twins of
the numpy functions for a handful of 3x3 matrices per call (a tracking packet), where numpy's per-call overhead
is most of the cost: same formulas and the same order of operations as numpy's own loops (sums start at
``+0.0`` and add the products in index order), so they agree with the numpy versions to a few ulp (numpy's
SIMD trigonometry and BLAS may round the last bit differently).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "T_CV_CAMERA",
    "T_GL_CAMERA",
    "Rows3",
    "invert_transform",
    "make_transform",
    "matmul3",
    "ptr_deg_from_rotation",
    "ptr_deg_from_rows",
    "rotation_from_ptr_deg",
    "rotation_rows_from_ptr_deg",
    "transform_from_pose",
]


def rotation_from_ptr_deg(pan: float, tilt: float, roll: float) -> np.ndarray:
    """``R = Rz(pan) @ Rx(tilt) @ Ry(roll)``, right-hand rule, degrees in, 3x3 out.

    pan > 0 turns the view left, tilt > 0 looks up, roll > 0 is clockwise seen from behind the camera.
    """
    a, b, c = np.radians([pan, tilt, roll])
    ca, sa = np.cos(a), np.sin(a)
    cb, sb = np.cos(b), np.sin(b)
    cc, sc = np.cos(c), np.sin(c)
    rz = np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cb, -sb], [0.0, sb, cb]])
    ry = np.array([[cc, 0.0, sc], [0.0, 1.0, 0.0], [-sc, 0.0, cc]])
    return rz @ rx @ ry


def ptr_deg_from_rotation(R: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_from_ptr_deg` (tilt in [-90, 90]; at |tilt| = 90 roll is folded into pan)."""
    R = np.asarray(R, dtype=np.float64)
    # R = Rz(a) Rx(b) Ry(c):  R[2,1] = sin b ; R[0,1] = -sin a cos b ; R[1,1] = cos a cos b
    #                         R[2,0] = -cos b sin c ; R[2,2] = cos b cos c
    sb = float(np.clip(R[2, 1], -1.0, 1.0))
    b = np.arcsin(sb)
    if abs(sb) < 1.0 - 1e-12:
        a = np.arctan2(-R[0, 1], R[1, 1])
        c = np.arctan2(-R[2, 0], R[2, 2])
    else:  # gimbal lock: choose roll = 0
        c = 0.0
        a = np.arctan2(R[1, 0], R[0, 0])
    return float(np.degrees(a)), float(np.degrees(b)), float(np.degrees(c))


Rows3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
"""A 3x3 matrix as a tuple of three row tuples (plain floats)."""

_radians = math.radians
_degrees = math.degrees
_cos = math.cos
_sin = math.sin
_asin = math.asin
_atan2 = math.atan2


def rotation_rows_from_ptr_deg(pan: float, tilt: float, roll: float) -> Rows3:
    """:func:`rotation_from_ptr_deg` as row tuples of plain floats, with ``math`` instead of numpy.

    ``Rz(pan) @ Rx(tilt) @ Ry(roll)`` multiplied out, each entry the sum numpy's matrix product forms (from
    ``+0.0``, products in index order, the structurally zero ones left out: adding an exact zero to the running
    sum changes nothing), so a zero entry is ``+0.0`` as in numpy's result.
    """
    a, b, c = _radians(pan), _radians(tilt), _radians(roll)
    ca, sa = _cos(a), _sin(a)
    cb, sb = _cos(b), _sin(b)
    cc, sc = _cos(c), _sin(c)
    # M = Rz @ Rx
    m00, m01, m02 = 0.0 + ca, 0.0 + -sa * cb, 0.0 + -sa * -sb
    m10, m11, m12 = 0.0 + sa, 0.0 + ca * cb, 0.0 + ca * -sb
    m21, m22 = 0.0 + sb, 0.0 + cb  # m20 = 0
    # R = M @ Ry, Ry = [[cc, 0, sc], [0, 1, 0], [-sc, 0, cc]]
    return (
        (0.0 + m00 * cc + m02 * -sc, m01, 0.0 + m00 * sc + m02 * cc),
        (0.0 + m10 * cc + m12 * -sc, m11, 0.0 + m10 * sc + m12 * cc),
        (0.0 + m22 * -sc, m21, 0.0 + m22 * cc),
    )


def ptr_deg_from_rows(R: Rows3) -> tuple[float, float, float]:
    """:func:`ptr_deg_from_rotation` of a 3x3 given as rows of plain floats, with ``math`` instead of numpy."""
    (r00, r01, _), (r10, r11, _), (r20, r21, r22) = R
    sb = r21
    if sb > 1.0:  # np.clip(sb, -1, 1); a NaN passes through as in numpy
        sb = 1.0
    elif sb < -1.0:
        sb = -1.0
    b = _asin(sb)
    if abs(sb) < 1.0 - 1e-12:
        a = _atan2(-r01, r11)
        c = _atan2(-r20, r22)
    else:  # gimbal lock: choose roll = 0 (a NaN lands here too, as in numpy)
        c = 0.0
        a = _atan2(r10, r00)
    return _degrees(a), _degrees(b), _degrees(c)


def matmul3(A: Rows3, B: Rows3) -> Rows3:
    """``A @ B`` of two 3x3 row-tuple matrices (numpy's sum order, every product included)."""
    (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = A
    (b00, b01, b02), (b10, b11, b12), (b20, b21, b22) = B
    return (
        (
            0.0 + a00 * b00 + a01 * b10 + a02 * b20,
            0.0 + a00 * b01 + a01 * b11 + a02 * b21,
            0.0 + a00 * b02 + a01 * b12 + a02 * b22,
        ),
        (
            0.0 + a10 * b00 + a11 * b10 + a12 * b20,
            0.0 + a10 * b01 + a11 * b11 + a12 * b21,
            0.0 + a10 * b02 + a11 * b12 + a12 * b22,
        ),
        (
            0.0 + a20 * b00 + a21 * b10 + a22 * b20,
            0.0 + a20 * b01 + a21 * b11 + a22 * b21,
            0.0 + a20 * b02 + a21 * b12 + a22 * b22,
        ),
    )


def make_transform(R: np.ndarray, t) -> np.ndarray:
    """4x4 from a 3x3 rotation and a translation (metres)."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64)
    return T


def transform_from_pose(x: float, y: float, z: float, pan: float, tilt: float, roll: float) -> np.ndarray:
    """``T_parent_child`` from a position in metres and pan/tilt/roll in degrees."""
    return make_transform(rotation_from_ptr_deg(pan, tilt, roll), (x, y, z))


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 (rotation + translation) without a general matrix inverse."""
    R = T[:3, :3]
    Ti = np.eye(4)
    Ti[:3, :3] = R.T
    Ti[:3, 3] = -R.T @ T[:3, 3]
    return Ti


# camera (x right, y forward, z up) -> GL eye (x right, y up, looking down -z)
T_GL_CAMERA = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
# camera -> OpenCV (x right, y down, looking down +z)
T_CV_CAMERA = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
