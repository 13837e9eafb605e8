"""Entrance-pupil (nodal) offset along the optical axis from tracked views of a static board.

Frames (docs/conventions.md): the tracker reports ``T_tracking_body``; ``T_body_camera`` (the stage file's
``tracker_offset``, e.g. from the hand-eye tool) places the camera reference point (the nominal image plane) on
the body; the entrance pupil is ``e`` metres ahead of it along the optical axis, ``T_camera_pupil =
translate(0, e, 0)``. ``solvePnP`` of the board in each view gives ``T_cv_board`` with the projection centre --
the pupil -- as origin, so ``T_pupil_board = T_pupil_cv @ T_cv_board`` with ``T_pupil_cv = inv(T_CV_CAMERA)``.

Derivation of the 1-D least-squares solution
--------------------------------------------
In view ``k`` every board corner ``j`` (board-frame ``X_j``) lands in tracking space at

    p_kj(e) = T_tracking_camera,k @ translate(0, e, 0) @ T_pupil_board,k @ X_j  =  a_kj + e d_k

with ``T_tracking_camera,k = T_tracking_body,k @ T_body_camera``, ``a_kj = T_tracking_camera,k @ T_pupil_board,k
@ X_j`` (the corner assuming ``e = 0``) and ``d_k = R_tracking_camera,k @ (0, 1, 0)`` (the optical axis in tracking
space). The board does not move, so ``p_kj`` must equal one unknown point ``B_j`` for every view. Minimise

    S(e, B) = sum_kj | a_kj + e d_k - B_j |^2 .

For a given ``e`` the best ``B_j`` is the mean over the views that saw corner ``j``: ``B_j = abar_j + e dbar_j``.
Substituting leaves a quadratic in ``e`` alone, ``S(e) = sum_kj | u_kj + e v_kj |^2`` with ``u_kj = a_kj -
abar_j`` and ``v_kj = d_k - dbar_j``; ``dS/de = 0`` gives

    e = - sum_kj u_kj . v_kj  /  sum_kj |v_kj|^2 .

The denominator is the spread of the viewing directions: the offset is observable only when the camera
**turns** between views (pure translation leaves ``v = 0``). Its standard error is ``sigma_e = sqrt(S(e) / dof) /
sqrt(sum |v|^2)`` with ``dof = 3 N_obs - 3 N_corners - 1``, inflated by ``sqrt(N_obs / N_views)`` because the
corners of one view share that view's pose error.

As a diagnostic the same elimination with a full 3-vector offset ``o`` (camera frame) instead of ``e * (0, 1, 0)``
gives ``o = -(sum V^T V)^-1 sum V^T u`` with ``V_kj = R_k - Rbar_j``: its ``y`` is the pupil offset and its ``x``
and ``z`` should be ~0; large values mean ``T_body_camera``'s translation is off across the optical axis.

The residuals are also reported in pixels by projecting the solved board points ``B_j`` back into every view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from stagectl.calibration import CalibrationError
from stagectl.calibration.handeye import BoardView, too_few_views_message
from stagectl.core.transforms import T_CV_CAMERA, invert_transform

__all__ = ["PupilResult", "solve_pupil_offset"]

_T_PUPIL_CV = invert_transform(T_CV_CAMERA)


@dataclass
class PupilResult:
    """Entrance-pupil offset ``e`` (m, positive toward the subject) and its evidence."""

    entrance_pupil_offset_m: float
    std_m: float
    offset_3d_m: tuple[float, float, float]
    rms_mm: float
    rms_px: float
    view_names: list[str]
    view_rms_mm: list[float]
    view_rms_px: list[float]
    direction_spread_deg: float
    zoom: float | None = None
    focus: float | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "zoom": self.zoom,
            "focus": self.focus,
            "entrance_pupil_offset_m": self.entrance_pupil_offset_m,
            "std_m": self.std_m,
            "offset_3d_camera_m": list(self.offset_3d_m),
            "offset_3d_note": "diagnostic: x and z should be ~0; large values mean T_body_camera is off across the axis",
            "rms_mm": self.rms_mm,
            "rms_px": self.rms_px,
            "rms_definition": "board corners in tracking space vs their mean (mm); reprojected (px, OpenCV per point)",
            "direction_spread_deg": self.direction_spread_deg,
            "views": [{"name": n, "rms_mm": a, "rms_px": b} for n, a, b in zip(self.view_names, self.view_rms_mm, self.view_rms_px)],
            "worst_views": [{"name": n, "rms_px": r} for r, n in sorted(zip(self.view_rms_px, self.view_names), reverse=True)[:3]],
        }


def solve_pupil_offset(
    views: Sequence[BoardView], T_body_camera: np.ndarray, K: np.ndarray, dist: np.ndarray, *,
    corner_ids: Sequence[np.ndarray] | None = None, zoom: float | None = None, focus: float | None = None,
    skipped: Sequence[str] = (),
) -> PupilResult:
    """The closed-form 1-D least-squares pupil offset of the module docstring.

    ``views``: tracked views (``T_tracking_body``, ``T_cv_board`` from solvePnP with the lens's K and distortion at
    this zoom/focus, and the corners). ``corner_ids``: per view the board corner ids of ``object_points`` (for
    partial ChArUco views); by default every view sees the same corners in the same order. ``skipped``: the
    ``"name: reason"`` lines of :func:`~stagectl.calibration.handeye.board_views_from_images`, listed when
    there are too few views.
    """
    if len(views) < 3:
        at = "".join(f" {k} {v:g}" for k, v in (("at zoom", zoom), ("focus", focus)) if v is not None)
        raise CalibrationError(too_few_views_message(f"the pupil solve{at}", len(views), skipped))
    ids = corner_ids if corner_ids is not None else [np.arange(len(v.object_points)) for v in views]
    a_list, R_list = [], []
    for v in views:
        T_tc = v.T_tracking_body @ T_body_camera
        T_tb0 = T_tc @ _T_PUPIL_CV @ v.T_cv_board  # board in tracking assuming e = 0
        P = np.c_[v.object_points, np.ones(len(v.object_points))] @ T_tb0.T
        a_list.append(P[:, :3])
        R_list.append(T_tc[:3, :3])
    all_ids = np.unique(np.concatenate(ids))
    # per corner: means over the views that saw it
    sums_a = {int(j): np.zeros(3) for j in all_ids}
    sums_R = {int(j): np.zeros((3, 3)) for j in all_ids}
    counts = {int(j): 0 for j in all_ids}
    for a, R, idx in zip(a_list, R_list, ids):
        for row, j in enumerate(idx):
            sums_a[int(j)] += a[row]
            sums_R[int(j)] += R
            counts[int(j)] += 1
    U, Vm, rows_view = [], [], []
    for k, (a, R, idx) in enumerate(zip(a_list, R_list, ids)):
        for row, j in enumerate(idx):
            c = counts[int(j)]
            if c < 2:
                continue
            U.append(a[row] - sums_a[int(j)] / c)
            Vm.append(R - sums_R[int(j)] / c)
            rows_view.append(k)
    if not U:
        raise CalibrationError("no board corner was seen in two views")
    U_a = np.array(U)  # (M, 3)
    V_a = np.array(Vm)  # (M, 3, 3)
    v_axis = V_a[:, :, 1]  # d_k - dbar_j
    den = float(np.sum(v_axis * v_axis))
    spread = math.degrees(math.sqrt(den / len(v_axis)))
    if spread < 2.0:
        raise CalibrationError(f"the optical axis barely changes direction between views ({spread:.2f} deg rms): "
                               f"pan and tilt the camera by 10-30 deg between views while keeping the board in frame")
    e = -float(np.sum(U_a * v_axis)) / den
    res = U_a + e * v_axis
    ssr = float(np.sum(res * res))
    n_obs = len(U_a)
    dof = max(1, 3 * n_obs - 3 * len([j for j in all_ids if counts[int(j)] >= 2]) - 1)
    # corners of one view share that view's pose error: count each view as one observation (n_obs / n_views)
    std = math.sqrt(ssr / dof) / math.sqrt(den) * math.sqrt(n_obs / len(views))
    # 3-D diagnostic
    A = np.einsum("mki,mkj->ij", V_a, V_a)
    b = np.einsum("mki,mk->i", V_a, U_a)
    try:
        o = -np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        o = np.array([math.nan, e, math.nan])
    # per view residuals (mm) and reprojection (px) of the solved board points
    B = {int(j): (sums_a[int(j)] + e * sums_R[int(j)][:, 1]) / counts[int(j)] for j in all_ids}
    rows_view_a = np.array(rows_view)
    view_mm, view_px = [], []
    T_e = np.eye(4)
    T_e[1, 3] = e
    for k, (v, idx) in enumerate(zip(views, ids)):
        r = res[rows_view_a == k]
        view_mm.append(float(np.sqrt(np.mean(np.sum(r * r, axis=1)))) * 1000.0 if len(r) else math.nan)
        T_cv_tracking = T_CV_CAMERA @ invert_transform(v.T_tracking_body @ T_body_camera @ T_e)
        pts = np.array([B[int(j)] for j in idx])
        pc = pts @ T_cv_tracking[:3, :3].T + T_cv_tracking[:3, 3]
        proj, _ = cv2.projectPoints(pc.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, dist)
        d = v.image_points - proj.reshape(-1, 2)
        view_px.append(float(np.sqrt(np.sum(d * d) / len(d))))
    total_mm = float(np.sqrt(ssr / n_obs)) * 1000.0
    all_px = math.sqrt(sum(p * p * len(i) for p, i in zip(view_px, ids)) / sum(len(i) for i in ids))
    result = PupilResult(e, std, (float(o[0]), float(o[1]), float(o[2])), total_mm, all_px, [v.name for v in views],
                         view_mm, view_px, spread, zoom, focus)
    if not -5.0 <= e <= 5.0:
        result.warnings.append(f"pupil offset {e:.3f} m is outside the lens file's +-5 m: check T_body_camera and "
                               f"the lens intrinsics at this zoom")
    lateral = math.hypot(o[0], o[2]) if np.all(np.isfinite(o)) else 0.0
    if lateral > max(0.005, 5 * std):
        result.warnings.append(f"the free 3-D offset is {lateral * 1000:.1f} mm off the optical axis: T_body_camera "
                               f"(tracker_offset) is probably wrong; run the hand-eye tool first")
    return result
