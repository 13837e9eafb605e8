"""Tracker-to-camera offset (hand-eye): ``T_body_camera`` from tracked views of a static board.

The problem and OpenCV's names for it (docs/reference/CALIBRATION_AND_TIMING.md section 3.1)
-----------------------------------------------------------------------------------------------
``cv2.calibrateHandEye`` solves ``AX = XB`` for a camera on a robot gripper; ``cv2.calibrateRobotWorldHandEye``
solves ``AX = ZB`` and also returns where the target is. stagectl maps the robot words to its frames
(docs/conventions.md) as follows:

========================  ===========================  ====================================================
OpenCV                    stagectl                     what it is
========================  ===========================  ====================================================
gripper                   ``body``                     the tracked object on the camera
base                      ``tracking``                 the tracking system's world
target / world            ``board``                    the static calibration board
camera                    ``cv`` at the entrance pupil the projection centre solvePnP sees, OpenCV axes
``R/t_gripper2base``      ``T_tracking_body``          the tracker's report for each view
``R/t_target2cam``        ``T_cv_board``               ``solvePnP`` of the board in each view
``R/t_cam2gripper``       ``T_body_cv``                the result (``calibrateHandEye``)
``R/t_base2gripper``      ``T_body_tracking``          ``inv(T_tracking_body)`` (``calibrateRobotWorldHandEye``)
``R/t_world2cam``         ``T_cv_board``
``R/t_base2world``        ``T_board_tracking``         second result of ``calibrateRobotWorldHandEye``
``R/t_gripper2cam``       ``T_cv_body``
========================  ===========================  ====================================================

Every OpenCV pair ``(R, t)`` named ``a2b`` is the 4x4 ``T_b_a`` (it maps a-coordinates into b).

From the OpenCV camera to stagectl's camera frame
-------------------------------------------------
``T_body_pupil = T_body_cv @ T_cv_camera`` with ``T_cv_camera = stagectl.core.transforms.T_CV_CAMERA``
(``x_cv = x, y_cv = -z, z_cv = y``): the pupil frame has the camera frame's axes (+Y forward, +Z up) and sits
at the projection centre. The stage file stores ``T_body_camera`` (camera = nominal image plane), so with the
lens's entrance-pupil offset ``e`` at the zoom of the capture ``T_body_camera = T_body_pupil @ translate(0, -e,
0)`` (``e = 0`` when not given: then the stored offset points at the pupil of that zoom).

Solve and validation
--------------------
Every method of both OpenCV functions runs; the chosen one (default ``PARK``) seeds a joint refinement
(Levenberg-Marquardt over ``T_body_cv`` and ``T_tracking_board``) of the **reprojection error** of every
detected corner through ``tracker pose -> X -> K``: the figure of merit of Unreal's nodal checkerboard check.
The result reports per-view and overall RMS in pixels (OpenCV's per-point definition), the board's scatter in
tracking space (mm, degrees) and each method's distance from the refined answer.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stagectl.calibration import CalibrationError
from stagectl.core.transforms import T_CV_CAMERA, invert_transform, ptr_deg_from_rotation, transform_from_pose

__all__ = [
    "HANDEYE_METHODS",
    "ROBOT_WORLD_METHODS",
    "T_from_rt",
    "rt_from_T",
    "rotation_angle_deg",
    "mean_rotation",
    "mean_transform",
    "levenberg_marquardt",
    "perturb",
    "PoseRecord",
    "read_poses",
    "BoardView",
    "HandEyeResult",
    "solve_handeye",
    "solve_robot_world",
    "reprojection",
    "calibrate_handeye",
    "pupil_to_camera",
    "tracker_offset_values",
    "board_views_from_images",
    "too_few_views_message",
]

HANDEYE_METHODS = {
    "TSAI": cv2.CALIB_HAND_EYE_TSAI,
    "PARK": cv2.CALIB_HAND_EYE_PARK,
    "HORAUD": cv2.CALIB_HAND_EYE_HORAUD,
    "ANDREFF": cv2.CALIB_HAND_EYE_ANDREFF,
    "DANIILIDIS": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
ROBOT_WORLD_METHODS = {
    "SHAH": cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH,
    "LI": cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI,
}


# ============================================================================================== geometry


def T_from_rt(R, t) -> np.ndarray:
    """4x4 from an OpenCV rotation (3x3 matrix or Rodrigues vector) and translation."""
    R = np.asarray(R, dtype=np.float64)
    if R.size == 3:
        R = cv2.Rodrigues(R.reshape(3, 1))[0]
    T = np.eye(4)
    T[:3, :3] = R.reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=np.float64).ravel()
    return T


def rt_from_T(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV ``(R 3x3, t 3x1)`` of a 4x4."""
    return np.ascontiguousarray(T[:3, :3]), np.ascontiguousarray(T[:3, 3].reshape(3, 1))


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix, degrees (0..180)."""
    c = (float(np.trace(R[:3, :3])) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def _quat(R: np.ndarray) -> np.ndarray:
    rv = cv2.Rodrigues(np.ascontiguousarray(R[:3, :3]))[0].ravel()
    a = float(np.linalg.norm(rv))
    if a < 1e-15:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[math.cos(a / 2)], math.sin(a / 2) * rv / a])


def mean_rotation(Rs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Mean of rotations: quaternion average (eigenvector of ``sum w q q^T``, Markley et al. 2007), polished to the
    Lie (geodesic, Karcher) mean by iterating ``R <- R exp(mean log(R^T R_i))``."""
    w = np.ones(len(Rs)) if weights is None else np.asarray(weights, dtype=np.float64)
    M = np.zeros((4, 4))
    for wi, R in zip(w, Rs):
        q = _quat(R)
        M += wi * np.outer(q, q)
    q = np.linalg.eigh(M)[1][:, -1]
    qw, qv = q[0], q[1:]
    a = 2.0 * math.atan2(float(np.linalg.norm(qv)), float(qw))
    rv = qv / np.linalg.norm(qv) * a if np.linalg.norm(qv) > 1e-15 else np.zeros(3)
    Rm = cv2.Rodrigues(rv.reshape(3, 1))[0]
    for _ in range(10):
        d = sum(wi * cv2.Rodrigues(np.ascontiguousarray(Rm.T @ R[:3, :3]))[0].ravel() for wi, R in zip(w, Rs)) / w.sum()
        Rm = Rm @ cv2.Rodrigues(d.reshape(3, 1))[0]
        if np.linalg.norm(d) < 1e-13:
            break
    return Rm


def mean_transform(Ts: Sequence[np.ndarray]) -> np.ndarray:
    """Rigid mean: :func:`mean_rotation` of the rotations, arithmetic mean of the translations."""
    T = np.eye(4)
    T[:3, :3] = mean_rotation([t[:3, :3] for t in Ts])
    T[:3, 3] = np.mean([t[:3, 3] for t in Ts], axis=0)
    return T


def perturb(T: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``T`` moved by ``d = (rotation vector, translation)``: ``R' = R exp(d[:3])``, ``t' = t + d[3:]``."""
    out = T.copy()
    out[:3, :3] = T[:3, :3] @ cv2.Rodrigues(np.asarray(d[:3], dtype=np.float64).reshape(3, 1))[0]
    out[:3, 3] = T[:3, 3] + d[3:6]
    return out


def levenberg_marquardt(
    fun: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, *, max_iter: int = 50, step: float = 1e-7,
    tol: float = 1e-12,
) -> tuple[np.ndarray, float]:
    """Minimise ``|fun(x)|^2`` by Levenberg-Marquardt with a forward-difference Jacobian; ``(x, cost)``."""
    x = np.asarray(x0, dtype=np.float64).copy()
    r = fun(x)
    cost = float(r @ r)
    lam = 1e-3
    for _ in range(max_iter):
        J = np.empty((r.size, x.size))
        for i in range(x.size):
            dx = np.zeros_like(x)
            dx[i] = step
            J[:, i] = (fun(x + dx) - r) / step
        A = J.T @ J
        g = J.T @ r
        improved = False
        for _ in range(10):
            try:
                delta = -np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            r_new = fun(x + delta)
            c_new = float(r_new @ r_new)
            if c_new < cost:
                x, r, lam = x + delta, r_new, max(lam / 10, 1e-12)
                improved = cost - c_new > tol * max(cost, 1e-30)
                cost = c_new
                break
            lam *= 10
        if not improved:
            break
    return x, cost


# ============================================================================================== tracker poses


@dataclass(frozen=True)
class PoseRecord:
    """A tracker report for one image: ``T_tracking_body`` (4x4, metres) and optional lens encoders."""

    name: str
    T_tracking_body: np.ndarray
    zoom: float | None = None
    focus: float | None = None


def _pose_from_row(row: dict, where: str) -> PoseRecord:
    try:
        name = str(row.get("image") or row.get("name") or row.get("frame"))
        if "T" in row and row["T"] is not None:
            T = np.asarray(row["T"], dtype=np.float64).reshape(4, 4)
        else:
            T = transform_from_pose(*(float(row[k]) for k in ("x", "y", "z", "pan", "tilt", "roll")))
        z = row.get("zoom")
        f = row.get("focus")
        return PoseRecord(name, T, None if z in (None, "") else float(z), None if f in (None, "") else float(f))
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{where}: expected image, x, y, z (m), pan, tilt, roll (deg) [zoom, focus]: {exc}") from None


def read_poses(path: str | Path) -> dict[str, PoseRecord]:
    """Tracker poses per image name from a CSV (header ``image,x,y,z,pan,tilt,roll[,zoom,focus]``; ``#`` lines
    are comments) or a YAML/JSON list of the same keys (or ``{image, T: 4x4}``).

    Poses are ``T_tracking_body`` in stagectl conventions: metres, and pan/tilt/roll degrees with
    ``R = Rz(pan) Rx(tilt) Ry(roll)`` (a FreeD pan is negated first, docs/conventions.md).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read the poses: {exc}") from None
    out: dict[str, PoseRecord] = {}
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        doc = yaml.safe_load(text)
        rows = doc.get("poses", doc.get("views")) if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise CalibrationError(f"{p}: expected a list of poses (or 'poses: [...]')")
        for i, row in enumerate(rows):
            rec = _pose_from_row(row, f"{p}: item {i}")
            out[rec.name] = rec
    else:
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        for i, row in enumerate(csv.DictReader(lines, skipinitialspace=True)):
            rec = _pose_from_row({k.strip().lower(): v for k, v in row.items() if k}, f"{p}: row {i + 2}")
            out[rec.name] = rec
    if not out:
        raise CalibrationError(f"{p}: no poses")
    return out


# ============================================================================================== solve


@dataclass
class BoardView:
    """One tracked view: tracker pose, board pose from PnP and the detected corners it came from."""

    name: str
    T_tracking_body: np.ndarray
    T_cv_board: np.ndarray
    object_points: np.ndarray  # (N, 3) board frame, m
    image_points: np.ndarray  # (N, 2) OpenCV px


@dataclass
class HandEyeResult:
    """``T_body_camera`` and its evidence (see the module docstring for the frames)."""

    method: str
    T_body_cv: np.ndarray
    T_tracking_board: np.ndarray
    pupil_offset_m: float
    rms_px: float
    view_rms_px: list[float]
    view_names: list[str]
    board_spread_mm: float
    board_spread_deg: float
    methods: dict[str, dict] = field(default_factory=dict)
    refined: bool = True
    closed_form_T_body_cv: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def T_body_pupil(self) -> np.ndarray:
        return self.T_body_cv @ T_CV_CAMERA

    @property
    def T_body_camera(self) -> np.ndarray:
        return pupil_to_camera(self.T_body_pupil, self.pupil_offset_m)

    def summary(self) -> dict:
        t, rot = tracker_offset_values(self.T_body_camera)
        return {
            "method": self.method,
            "refined": self.refined,
            "tracker_offset": {"translation": t, "rotation": rot,
                               "meaning": "T_body_camera: translation m, rotation [pan, tilt, roll] deg"},
            "T_body_camera": self.T_body_camera.tolist(),
            "T_body_pupil": self.T_body_pupil.tolist(),
            "T_body_cv": self.T_body_cv.tolist(),
            "entrance_pupil_offset_m": self.pupil_offset_m,
            "T_tracking_board": self.T_tracking_board.tolist(),
            "rms_px": self.rms_px,
            "rms_definition": "OpenCV per point, corners reprojected through tracker pose -> T_body_cv -> K",
            "board_spread_mm": self.board_spread_mm,
            "board_spread_deg": self.board_spread_deg,
            "views": [{"name": n, "rms_px": r} for n, r in zip(self.view_names, self.view_rms_px)],
            "worst_views": [{"name": n, "rms_px": r} for r, n in sorted(zip(self.view_rms_px, self.view_names), reverse=True)[:3]],
            "methods": self.methods,
        }


def pupil_to_camera(T_body_pupil: np.ndarray, pupil_offset_m: float) -> np.ndarray:
    """``T_body_camera = T_body_pupil @ translate(0, -e, 0)`` (the camera frame is ``e`` behind the pupil)."""
    T = np.eye(4)
    T[1, 3] = -float(pupil_offset_m)
    return T_body_pupil @ T


def tracker_offset_values(T_body_camera: np.ndarray) -> tuple[list[float], list[float]]:
    """Stage-file ``tracker_offset`` values ``([x, y, z] m, [pan, tilt, roll] deg)`` of a ``T_body_camera``."""
    return [float(v) for v in T_body_camera[:3, 3]], [float(v) for v in ptr_deg_from_rotation(T_body_camera[:3, :3])]


def solve_handeye(T_tracking_body: Sequence[np.ndarray], T_cv_board: Sequence[np.ndarray], method: str = "PARK") -> np.ndarray:
    """``T_body_cv`` by ``cv2.calibrateHandEye`` (gripper = body, base = tracking, target = board)."""
    Rg, tg = zip(*(rt_from_T(T) for T in T_tracking_body))  # gripper2base = T_tracking_body
    Rt, tt = zip(*(rt_from_T(T) for T in T_cv_board))  # target2cam = T_cv_board
    R, t = cv2.calibrateHandEye(list(Rg), list(tg), list(Rt), list(tt), method=HANDEYE_METHODS[method])
    return T_from_rt(R, t)  # cam2gripper = T_body_cv


def solve_robot_world(
    T_tracking_body: Sequence[np.ndarray], T_cv_board: Sequence[np.ndarray], method: str = "SHAH"
) -> tuple[np.ndarray, np.ndarray]:
    """``(T_body_cv, T_tracking_board)`` by ``cv2.calibrateRobotWorldHandEye`` (world = board, base = tracking)."""
    Rw, tw = zip(*(rt_from_T(T) for T in T_cv_board))  # world2cam = T_cv_board
    Rb, tb = zip(*(rt_from_T(invert_transform(T)) for T in T_tracking_body))  # base2gripper = T_body_tracking
    R_bw, t_bw, R_gc, t_gc = cv2.calibrateRobotWorldHandEye(list(Rw), list(tw), list(Rb), list(tb),
                                                           method=ROBOT_WORLD_METHODS[method])
    T_board_tracking = T_from_rt(R_bw, t_bw)  # base2world
    T_cv_body = T_from_rt(R_gc, t_gc)  # gripper2cam
    return invert_transform(T_cv_body), invert_transform(T_board_tracking)


def _board_in_tracking(views: Sequence[BoardView], T_body_cv: np.ndarray) -> list[np.ndarray]:
    return [v.T_tracking_body @ T_body_cv @ v.T_cv_board for v in views]


def reprojection(
    views: Sequence[BoardView], T_body_cv: np.ndarray, T_tracking_board: np.ndarray, K: np.ndarray, dist: np.ndarray
) -> list[np.ndarray]:
    """Per view ``detected - projected`` corner residuals ``(N, 2)`` px through ``tracker pose -> X -> K``."""
    out = []
    for v in views:
        T_cv_board = invert_transform(v.T_tracking_body @ T_body_cv) @ T_tracking_board
        rv = cv2.Rodrigues(np.ascontiguousarray(T_cv_board[:3, :3]))[0]
        proj, _ = cv2.projectPoints(v.object_points.reshape(-1, 1, 3), rv, T_cv_board[:3, 3].reshape(3, 1), K, dist)
        out.append(v.image_points - proj.reshape(-1, 2))
    return out


def _rms(res: Sequence[np.ndarray]) -> float:
    r = np.concatenate([np.asarray(x).reshape(-1, 2) for x in res])
    return float(np.sqrt(np.sum(r * r) / max(1, r.shape[0])))


def _spread(Ts: Sequence[np.ndarray]) -> tuple[float, float]:
    M = mean_transform(Ts)
    d_mm = float(np.sqrt(np.mean([np.sum((T[:3, 3] - M[:3, 3]) ** 2) for T in Ts]))) * 1000.0
    d_deg = float(np.sqrt(np.mean([rotation_angle_deg(M[:3, :3].T @ T[:3, :3]) ** 2 for T in Ts])))
    return d_mm, d_deg


def _diversity_warnings(views: Sequence[BoardView]) -> list[str]:
    R0 = views[0].T_tracking_body[:3, :3]
    axes = []
    max_angle = 0.0
    for v in views[1:]:
        rv = cv2.Rodrigues(np.ascontiguousarray(R0.T @ v.T_tracking_body[:3, :3]))[0].ravel()
        a = float(np.linalg.norm(rv))
        max_angle = max(max_angle, math.degrees(a))
        if a > 1e-6:
            axes.append(rv / a * min(1.0, a / math.radians(10)))
    warnings = []
    if max_angle < 20.0:
        warnings.append(f"the camera turned at most {max_angle:.1f} deg between views: tilt and pan it by 30 deg "
                        f"or more about different axes")
    elif axes:
        s = np.linalg.svd(np.array(axes), compute_uv=False)
        if len(s) < 2 or s[1] < 0.15 * s[0]:
            warnings.append("the views rotate about nearly one axis only: rotate about at least two different axes "
                            "(pan and tilt, or roll)")
    return warnings


def too_few_views_message(what: str, got: int, skipped: Sequence[str], limit: int = 30) -> str:
    """``"<what> needs at least 3 tracked views ..., got N"`` and, one per line, each skipped view and why."""
    text = f"{what} needs at least 3 tracked views of the board (better 10-20), got {got}"
    if not skipped:
        return text + " (no image with a tracker pose was given)" if got == 0 else text
    lines = [f"  {s}" for s in list(skipped)[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more")
    return "\n".join([f"{text}; skipped {len(skipped)}:", *lines])


def calibrate_handeye(
    views: Sequence[BoardView], K: np.ndarray, dist: np.ndarray, *, method: str = "PARK", refine: bool = True,
    pupil_offset_m: float = 0.0, skipped: Sequence[str] = (),
) -> HandEyeResult:
    """Hand-eye calibration over tracked views (at least 3, better 10-20 with large rotations about several axes).

    ``method``: one of :data:`HANDEYE_METHODS` or :data:`ROBOT_WORLD_METHODS`, or ``"best"`` (the lowest
    reprojection RMS before refinement). Every method is run and compared in ``methods``. ``skipped``: the
    ``"name: reason"`` lines of :func:`board_views_from_images`, listed when there are too few views.
    """
    if len(views) < 3:
        raise CalibrationError(too_few_views_message("hand-eye", len(views), skipped))
    method = method.upper()
    if method not in HANDEYE_METHODS and method not in ROBOT_WORLD_METHODS and method != "BEST":
        raise CalibrationError(f"unknown hand-eye method {method!r}: one of "
                               f"{', '.join([*HANDEYE_METHODS, *ROBOT_WORLD_METHODS, 'best'])}")
    Tb = [v.T_tracking_body for v in views]
    Tc = [v.T_cv_board for v in views]
    candidates: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    failures: dict[str, str] = {}
    for name in HANDEYE_METHODS:
        try:
            X = solve_handeye(Tb, Tc, name)
            if np.all(np.isfinite(X)):
                candidates[name] = (X, mean_transform(_board_in_tracking(views, X)))
        except cv2.error as exc:
            failures[name] = str(exc.err)
    for name in ROBOT_WORLD_METHODS:
        try:
            X, B = solve_robot_world(Tb, Tc, name)
            if np.all(np.isfinite(X)) and np.all(np.isfinite(B)):
                candidates[name] = (X, B)
        except cv2.error as exc:
            failures[name] = str(exc.err)
    if not candidates:
        raise CalibrationError("every hand-eye method failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    scores = {k: _rms(reprojection(views, X, B, K, dist)) for k, (X, B) in candidates.items()}
    chosen = min(scores, key=scores.get) if method == "BEST" else method
    if chosen not in candidates:
        raise CalibrationError(f"hand-eye method {chosen} failed: {failures.get(chosen, 'no finite result')}")
    X0, B0 = candidates[chosen]
    X, B = X0, B0
    if refine:
        def fun(p: np.ndarray) -> np.ndarray:
            res = reprojection(views, perturb(X0, p[:6]), perturb(B0, p[6:]), K, dist)
            return np.concatenate([r.ravel() for r in res])

        p, _ = levenberg_marquardt(fun, np.zeros(12))
        X, B = perturb(X0, p[:6]), perturb(B0, p[6:])
    res = reprojection(views, X, B, K, dist)
    spread_mm, spread_deg = _spread(_board_in_tracking(views, X))
    Tp = X @ T_CV_CAMERA
    methods = {}
    for k, (Xk, _) in candidates.items():
        d = invert_transform(Tp) @ (Xk @ T_CV_CAMERA)
        methods[k] = {"rms_px": scores[k], "translation_mm": [float(v) * 1000 for v in Xk[:3, 3]],
                      "delta_mm": float(np.linalg.norm(d[:3, 3])) * 1000.0, "delta_deg": rotation_angle_deg(d)}
    for k, msg in failures.items():
        methods[k] = {"failed": msg}
    result = HandEyeResult(
        method=chosen, T_body_cv=X, T_tracking_board=B, pupil_offset_m=float(pupil_offset_m), rms_px=_rms(res),
        view_rms_px=[_rms([r]) for r in res], view_names=[v.name for v in views], board_spread_mm=spread_mm,
        board_spread_deg=spread_deg, methods=methods, refined=refine, closed_form_T_body_cv=X0,
        warnings=_diversity_warnings(views),
    )
    med = float(np.median(result.view_rms_px))
    bad = [n for n, r in zip(result.view_names, result.view_rms_px) if r > 2.0 * med and r > 0.5]
    if bad:
        result.warnings.append(f"views with RMS > 2 x median ({med:.2f} px): {', '.join(bad)} -- was the camera still? "
                               f"is the tracker delay-free for stationary views?")
    return result


# ============================================================================================== from images


def board_views_from_images(
    folder: str | Path, poses: dict[str, PoseRecord], board, K: np.ndarray, dist: np.ndarray, *,
    names: Sequence[str] | None = None, method: str = "auto", debug_dir: str | Path | None = None,
) -> tuple[list[BoardView], list[np.ndarray], list[str], list[Path], tuple[int, int] | None]:
    """Tracked board views from a folder of images and their tracker poses.

    Returns ``(views, corner ids per view, skipped "name: reason", image paths used, image size)``. Only images
    with a pose (and in ``names`` when given) are read; each needs the board detected and a PnP pose. Every
    image and every pose that gives no view is in ``skipped`` with the reason: no tracker pose for the image,
    a pose without an image, no board found, no board pose.
    """
    from stagectl.calibration.lens import board_pose, detect_board, draw_detection, list_images, load_gray

    views: list[BoardView] = []
    ids: list[np.ndarray] = []
    skipped: list[str] = []
    used: list[Path] = []
    size = None
    ambiguous = False
    paths = list_images(folder)
    matched: set[str] = set()
    for p in paths:
        key = p.name if p.name in poses else p.stem
        rec = poses.get(key)
        if rec is None:
            skipped.append(f"{p.name}: no tracker pose (no row with image {p.name} or {p.stem} in the poses "
                           f"file)")
            continue
        if names is not None and p.name not in names and p.stem not in names:
            continue  # another zoom/focus group's image
        matched.add(key)
        gray = load_gray(p)
        s = (gray.shape[1], gray.shape[0])
        if size is None:
            size = s
        elif s != size:
            raise CalibrationError(f"{p}: image is {s[0]} x {s[1]}, the others are {size[0]} x {size[1]}")
        det = detect_board(gray, board, name=p.name, method=method)
        if debug_dir is not None:
            d = Path(debug_dir)
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / (p.stem + ".detect.png")), draw_detection(gray, det, board))
        if det is None:
            why = (f"all {board.cols} x {board.rows} inner corners must be in frame" if board.kind == "checkerboard"
                   else "fewer than 6 ChArUco corners seen")
            skipped.append(f"{p.name}: no board found ({why})")
            continue
        ambiguous = ambiguous or det.orientation_ambiguous
        try:
            T, _ = board_pose(det, board, K, dist)
        except CalibrationError as exc:
            skipped.append(f"{p.name}: no board pose ({exc})")
            continue
        views.append(BoardView(p.name, rec.T_tracking_body, T, board.object_points()[det.ids], det.corners))
        ids.append(det.ids)
        used.append(p)
    wanted = poses if names is None else {k: v for k, v in poses.items() if k in set(names)}
    have = {p.name for p in paths} | {p.stem for p in paths}
    for name in wanted:
        if name not in matched and name not in have:
            skipped.append(f"{name}: a tracker pose but no such image in {folder}")
    if ambiguous:
        raise CalibrationError(f"a {board.cols} x {board.rows} checkerboard looks the same turned by 180 degrees, so "
                               f"its pose is ambiguous: use a board with one odd and one even inner-corner count "
                               f"(e.g. 9 x 6) or a ChArUco board")
    return views, ids, skipped, used, size
