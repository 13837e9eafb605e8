"""Rigid transforms in the stage conventions (docs/conventions.md), plain numpy.

These run at load time and in tests; the per-frame twins are Numba kernels in ``stagectl.render.frustum``.
``T_a_b`` maps frame-b coordinates into frame a: ``p_a = T_a_b @ p_b``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "rotation_from_ptr_deg",
    "ptr_deg_from_rotation",
    "make_transform",
    "invert_transform",
    "transform_from_pose",
    "T_GL_CAMERA",
    "T_CV_CAMERA",
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
