"""Wall registration: where the stage model's walls are in tracking space.

Frames (docs/conventions.md): the stage file places walls in ``stage``; trackers report in ``tracking``;
``T_stage_tracking`` (identity until calibrated) maps tracking coordinates into stage coordinates. Both methods
here estimate ``T_stage_tracking`` from all walls together **and** per wall, and report per-point residuals.

(a) Surveyed points
-------------------
Cabinet corners measured in tracking space (total station in the tracking frame, or a tracked probe tip), each
named by its wall and cabinet-corner indices ``(col, row)`` (``0..cols``, ``0..rows`` from the wall's top-left
seen from the stage, docs/conventions.md). The model's corner ``q_i`` (stage) and the measurement ``p_i``
(tracking) give ``T_stage_tracking = argmin sum |q_i - (R p_i + t)|^2`` over rotations ``R`` and translations
``t`` -- no scale (Kabsch / Umeyama without the scale step; a reflection is excluded by the sign of the
determinant). Residuals ``q_i - T p_i`` in millimetres; a point is an outlier above 3 x the median residual (and
5 mm). At least 3 non-collinear points; every corner of every cabinet is best.

(b) The renderer's ArUco pattern (``stagectl.render.patterns``: one ``DICT_6X6_1000`` marker per cabinet)
---------------------------------------------------------------------------------------------------------
Images from the tracked camera, each with its tracker pose ``T_tracking_body``. In each image the markers'
four outer corners (TL, TR, BR, BL as ArUco returns them) are detected; the marker id gives the cabinet and so
the corners' stage positions on the wall raster (``WallGeometry.raster_to_stage``). ``solvePnP`` of all the
markers seen gives ``T_cv_stage`` per image (projection centre = entrance pupil), hence

    T_tracking_stage,k = T_tracking_body,k @ T_body_camera @ T_camera_pupil @ T_pupil_cv @ T_cv_stage,k

with ``T_pupil_cv = inv(T_CV_CAMERA)``. The images' estimates are averaged (rotation: quaternion mean polished to
the Lie mean; translation: mean) and refined jointly by Levenberg-Marquardt on the reprojection error of every
marker corner. Per-marker residuals are reported in pixels and, scaled by depth / focal length, in millimetres
on the wall. Needs the lens calibration (K, distortion, pupil) and the tracker offset first.

The result goes to the stage file as its ``tracking_registration`` (``T_stage_tracking`` as position and
pan/tilt/roll, :meth:`WallRegistration.registration`): the walls stay where the stage file puts them and every
tracker pose is mapped into the stage by it (``stagectl run``, ``snapshot``, ``render.camera.camera_state``).
The older alternative moves each wall to its measured place in tracking space instead (the stage frame becomes
the tracking frame, the registration identity): :meth:`WallRegistration.placements`.

Both methods estimate the registration from scratch: the stage file's current ``tracking_registration`` plays
no part (survey points and tracker poses are in tracking space, the walls in stage space). The other
calibrations do not depend on it either: hand-eye and pupil see a board fixed in tracking space, and the delay
tool uses the camera's rotation rate in its own frame, which a constant ``T_stage_tracking`` does not change.
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
from stagectl.calibration.handeye import levenberg_marquardt, mean_transform, perturb, rotation_angle_deg
from stagectl.core.transforms import (
    T_CV_CAMERA,
    invert_transform,
    ptr_deg_from_rotation,
    rotation_from_ptr_deg,
)

__all__ = [
    "SurveyPoint",
    "read_survey",
    "fit_rigid",
    "corner_stage_point",
    "register_from_survey",
    "MarkerLayout",
    "renderer_marker_layout",
    "marker_dictionary",
    "MarkerView",
    "detect_markers",
    "register_from_markers",
    "WallRegistration",
    "registration_values",
    "placement_in_tracking",
]

_T_PUPIL_CV = invert_transform(T_CV_CAMERA)


# ============================================================================================== rigid fit


def fit_rigid(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``T_dst_src`` (4x4) minimising ``sum w_i |dst_i - (R src_i + t)|^2``: Kabsch / Umeyama without scale."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 3)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 3)
    if len(src) < 3:
        raise CalibrationError(f"a rigid fit needs at least 3 points, got {len(src)}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    S = (dst - md).T @ ((src - ms) * w[:, None])
    U, sv, Vt = np.linalg.svd(S)
    if sv[1] < 1e-9 * max(sv[0], 1e-30):
        raise CalibrationError("the points are (nearly) collinear: measure at least 3 corners not on one line")
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    R = U @ D @ Vt
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = md - R @ ms
    return T


@dataclass(frozen=True)
class SurveyPoint:
    """A measured cabinet corner: wall name, corner indices ``(col, row)`` from the wall's top-left
    (``0..cols``, ``0..rows``), position in tracking space (m) and an optional label."""

    wall: str
    col: int
    row: int
    p_tracking: tuple[float, float, float]
    label: str = ""


def read_survey(path: str | Path, *, units: str = "m") -> list[SurveyPoint]:
    """Surveyed points from a CSV with header ``wall,col,row,x,y,z[,label]`` (``#`` lines are comments);
    ``units`` ``"m"`` or ``"mm"`` for x, y, z (tracking frame)."""
    scale = {"m": 1.0, "mm": 1e-3}.get(units)
    if scale is None:
        raise CalibrationError(f"units must be m or mm, got {units!r}")
    p = Path(path)
    try:
        lines = [ln for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read the survey: {exc}") from None
    out = []
    for i, row in enumerate(csv.DictReader(lines, skipinitialspace=True)):
        r = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        try:
            out.append(SurveyPoint(r["wall"], int(r["col"]), int(r["row"]),
                                   (float(r["x"]) * scale, float(r["y"]) * scale, float(r["z"]) * scale),
                                   r.get("label", "") or f"{r['wall']}:{r['col']},{r['row']}"))
        except (KeyError, ValueError) as exc:
            raise CalibrationError(f"{p}: row {i + 2}: expected wall, col, row, x, y, z: {exc}") from None
    if not out:
        raise CalibrationError(f"{p}: no points")
    return out


def corner_stage_point(stage, wall_name: str, col: int, row: int) -> np.ndarray:
    """Stage position (m) of cabinet corner ``(col, row)`` of a wall, from the stage model."""
    try:
        wall = stage.wall(wall_name)
    except KeyError:
        raise CalibrationError(f"the stage has no wall {wall_name!r} (walls: {', '.join(w.name for w in stage.walls)})") from None
    cols, rows = wall.cabinets
    if not (0 <= col <= cols and 0 <= row <= rows):
        raise CalibrationError(f"wall {wall_name!r} has corners col 0..{cols}, row 0..{rows}; got ({col}, {row})")
    return wall.geometry.cabinet_corner_grid()[row * (cols + 1) + col]


# ============================================================================================== result


@dataclass
class WallRegistration:
    """``T_stage_tracking`` (all walls) and per wall, with per-point residuals.

    ``residuals``: one dict per surveyed point or marker: ``wall``, ``id``/``label``, ``col``, ``row`` and the
    residual(s) in mm (and px for markers); ``per_wall[name]``: that wall's own ``T_stage_tracking``.
    """

    method: str
    T_stage_tracking: np.ndarray
    per_wall: dict[str, np.ndarray]
    residuals: list[dict]
    rms_mm: float
    max_mm: float
    rms_px: float | None = None
    views: list[dict] = field(default_factory=list)
    outliers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def T_tracking_stage(self) -> np.ndarray:
        return invert_transform(self.T_stage_tracking)

    def registration(self) -> dict:
        """The stage file's ``tracking_registration`` keys of the common fit (:func:`registration_values`)."""
        return registration_values(self.T_stage_tracking)

    def wall_disagreements(self, mm: float = 5.0, deg: float = 0.1) -> list[str]:
        """Walls whose own fit differs from the common one by more than ``mm`` or ``deg``: a wall placed
        wrongly in the stage file (one registration cannot fix that; ``--move-walls`` moves each wall to its
        own fit)."""
        out = []
        for name, T in self.per_wall.items():
            d = self._wall_delta(T)
            if d["vs_all_walls_mm"] > mm or d["vs_all_walls_deg"] > deg:
                out.append(f"wall {name!r}: its own fit is {d['vs_all_walls_mm']:.1f} mm / "
                           f"{d['vs_all_walls_deg']:.3f} deg from the common registration; is the wall "
                           f"placed right in the stage file?")
        return out

    def placements(self, stage, *, per_wall: bool = True) -> dict[str, dict]:
        """New placement keys per wall, in tracking space (see :func:`placement_in_tracking`)."""
        out = {}
        for w in stage.walls:
            T = self.per_wall.get(w.name) if per_wall else None
            T = self.T_stage_tracking if T is None else T
            out[w.name] = placement_in_tracking(w, invert_transform(T))
        return out

    def summary(self, stage=None) -> dict:
        def pose(T):
            return {"translation_m": [float(v) for v in T[:3, 3]],
                    "rotation_deg": [float(v) for v in ptr_deg_from_rotation(T[:3, :3])],
                    "matrix": T.tolist()}

        d = {
            "method": self.method,
            "T_stage_tracking": pose(self.T_stage_tracking),
            "T_stage_tracking_meaning": "maps tracking coordinates into stage coordinates (p_stage = T p_tracking)",
            "tracking_registration": self.registration(),
            "per_wall": {k: {**pose(v), **self._wall_delta(v)} for k, v in self.per_wall.items()},
            "rms_mm": self.rms_mm,
            "max_mm": self.max_mm,
            "outliers": self.outliers,
            "residuals": self.residuals,
        }
        if self.rms_px is not None:
            d["rms_px"] = self.rms_px
            d["rms_definition"] = "OpenCV per point over the marker corners of every image"
            d["views"] = self.views
            d["worst_views"] = sorted(self.views, key=lambda v: -v.get("rms_px", 0.0))[:3]
        if stage is not None:
            d["placements_in_tracking"] = self.placements(stage)
        return d

    def _wall_delta(self, T: np.ndarray) -> dict:
        D = invert_transform(self.T_stage_tracking) @ T
        return {"vs_all_walls_mm": float(np.linalg.norm(D[:3, 3])) * 1000.0, "vs_all_walls_deg": rotation_angle_deg(D)}


def registration_values(T_stage_tracking: np.ndarray) -> dict:
    """``{"position": [x, y, z] m, "rotation": [pan, tilt, roll] deg}`` of ``T_stage_tracking``: the stage
    file's ``tracking_registration`` (rounded to 1 um and 1e-6 deg)."""
    T = np.asarray(T_stage_tracking, dtype=np.float64)
    return {"position": [round(float(v), 6) for v in T[:3, 3]],
            "rotation": [round(float(v), 6) for v in ptr_deg_from_rotation(T[:3, :3])]}


def placement_in_tracking(wall, T_tracking_stage: np.ndarray) -> dict:
    """A wall's placement keys (docs/stage-file.md) after moving it by ``T_tracking_stage``.

    Flat walls take any rotation. Ceilings (``yaw_deg``) and curved walls (``center``, ``start_deg``, ``bottom``)
    only turn about Z: the pan of the correction is applied and what is left (tilt/roll) is reported as
    ``unrepresented_deg``.
    """
    C = T_tracking_stage
    R_C = C[:3, :3]
    pan = ptr_deg_from_rotation(R_C)[0]
    left = rotation_angle_deg(rotation_from_ptr_deg(pan, 0.0, 0.0).T @ R_C)
    p = wall.params
    if wall.type == "flat":
        c = C[:3, :3] @ np.asarray(p["center"], dtype=np.float64) + C[:3, 3]
        R = R_C @ rotation_from_ptr_deg(*p["rotation"])
        return {"center": [round(float(v), 6) for v in c],
                "rotation": [round(float(v), 5) for v in ptr_deg_from_rotation(R)], "unrepresented_deg": 0.0}
    if wall.type == "ceiling":
        c = C[:3, :3] @ np.asarray(p["center"], dtype=np.float64) + C[:3, 3]
        return {"center": [round(float(v), 6) for v in c], "yaw_deg": round(float(p["yaw_deg"]) + pan, 5),
                "unrepresented_deg": left}
    # curved: the arc centre at the wall's bottom height
    c = C[:3, :3] @ np.array([p["center"][0], p["center"][1], p["bottom"]], dtype=np.float64) + C[:3, 3]
    out = {"center": [round(float(c[0]), 6), round(float(c[1]), 6)], "start_deg": round(float(p["start_deg"]) + pan, 5),
           "bottom": round(float(c[2]), 6), "unrepresented_deg": left}
    if p.get("end_deg") is not None:
        out["end_deg"] = round(float(p["end_deg"]) + pan, 5)
    return out


# ============================================================================================== (a) survey


def register_from_survey(stage, points: Sequence[SurveyPoint]) -> WallRegistration:
    """Rigid fit of the stage model's cabinet corners to surveyed points, all walls and per wall."""
    q = np.array([corner_stage_point(stage, s.wall, s.col, s.row) for s in points])
    p = np.array([s.p_tracking for s in points], dtype=np.float64)
    T = fit_rigid(p, q)  # T_stage_tracking
    res = q - (p @ T[:3, :3].T + T[:3, 3])
    per_wall: dict[str, np.ndarray] = {}
    wall_res: dict[int, np.ndarray] = {}
    warnings: list[str] = []
    for name in dict.fromkeys(s.wall for s in points):
        idx = [i for i, s in enumerate(points) if s.wall == name]
        if len(idx) < 3:
            warnings.append(f"wall {name!r}: {len(idx)} point(s); a per-wall fit needs 3 non-collinear corners")
            continue
        try:
            Tw = fit_rigid(p[idx], q[idx])
        except CalibrationError as exc:
            warnings.append(f"wall {name!r}: {exc}")
            continue
        per_wall[name] = Tw
        rw = q[idx] - (p[idx] @ Tw[:3, :3].T + Tw[:3, 3])
        for i, r in zip(idx, rw):
            wall_res[i] = r
    n = np.linalg.norm(res, axis=1) * 1000.0
    med = float(np.median(n))
    residuals = []
    outliers = []
    for i, (s, r, ni) in enumerate(zip(points, res, n)):
        d = {"label": s.label, "wall": s.wall, "col": s.col, "row": s.row,
             "residual_mm": [round(float(v) * 1000.0, 4) for v in r], "norm_mm": float(ni)}
        if i in wall_res:
            d["norm_mm_wall_fit"] = float(np.linalg.norm(wall_res[i]) * 1000.0)
        if ni > max(3.0 * med, 5.0):
            d["outlier"] = True
            outliers.append(s.label)
        residuals.append(d)
    if outliers:
        warnings.append(f"points far off the fit (> 3 x median {med:.1f} mm and 5 mm): {', '.join(outliers)} -- "
                        f"mislabelled corner or wrong wall model?")
    return WallRegistration("survey", T, per_wall, residuals, float(np.sqrt(np.mean(n * n))), float(n.max()),
                            outliers=outliers, warnings=warnings)


# ============================================================================================== (b) markers

MarkerLayout = Callable[[int], "tuple[int, np.ndarray] | None"]
"""Marker id -> ``(wall index, (4, 2) raster corners TL, TR, BR, BL)`` in continuous wall-raster pixels (origin
top-left, y down; pixel centres at +0.5), or ``None`` for an id that is not on the stage."""


def renderer_marker_layout(stage) -> MarkerLayout:
    """The marker layout of the renderer's ``aruco`` pattern (``stagectl.render.patterns``): ids from
    ``aruco_cabinet``, each marker's 8 x 8 modules at the cell scale and offset of ``aruco_atlas``."""
    from stagectl.render import patterns

    atlas = patterns.aruco_atlas(stage)
    total = sum(w.cabinets[0] * w.cabinets[1] for w in stage.walls)

    def layout(marker_id: int):
        if not 0 <= int(marker_id) < total:
            return None
        wi, col, row = patterns.aruco_cabinet(stage, int(marker_id))
        wall = stage.walls[wi]
        pw, ph = wall.cabinet.pixels
        s = float(atlas.scale[wi])
        ox, oy = (float(v) for v in atlas.offset[wi])
        cw, ch = atlas.cell
        x0, y0 = col * pw + ox, row * ph + oy
        x1, y1 = x0 + cw * s, y0 + ch * s
        return wi, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)

    return layout


def marker_dictionary(name: str | None = None):
    """An OpenCV ArUco dictionary (default: the renderer's, ``patterns.ARUCO_DICTIONARY``)."""
    if name is None:
        from stagectl.render.patterns import ARUCO_DICTIONARY

        name = ARUCO_DICTIONARY
    if not name.startswith("DICT_") or not hasattr(cv2.aruco, name):
        raise CalibrationError(f"unknown ArUco dictionary {name!r}")
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))


def detect_markers(gray: np.ndarray, dictionary) -> tuple[np.ndarray, np.ndarray]:
    """ArUco markers in an image: ``ids (M,)`` and ``corners (M, 4, 2)`` OpenCV px (TL, TR, BR, BL), sub-pixel."""
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    params.cornerRefinementWinSize = 4
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary, params).detectMarkers(gray)
    if ids is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4, 2))
    return ids.ravel().astype(np.int64), np.array([c.reshape(4, 2) for c in corners], dtype=np.float64)


@dataclass
class MarkerView:
    """One tracked image: tracker pose ``T_tracking_body``, detected marker ids and corners (OpenCV px)."""

    name: str
    T_tracking_body: np.ndarray
    ids: np.ndarray
    corners: np.ndarray  # (M, 4, 2)


def _pnp(obj: np.ndarray, img: np.ndarray, K, dist) -> np.ndarray | None:
    o = obj.reshape(-1, 1, 3)
    i = img.reshape(-1, 1, 2)
    centred = obj - obj.mean(axis=0)
    planar = np.linalg.svd(centred, compute_uv=False)[2] < 1e-6 * max(1.0, float(np.abs(centred).max()))
    ok, rv, tv = cv2.solvePnP(o, i, K, dist, flags=cv2.SOLVEPNP_IPPE if planar else cv2.SOLVEPNP_SQPNP)
    if not ok:
        return None
    rv, tv = cv2.solvePnPRefineLM(o, i, K, dist, rv, tv, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 100, 1e-12))
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rv)[0]
    T[:3, 3] = tv.ravel()
    return T


def register_from_markers(
    stage, views: Sequence[MarkerView], K: np.ndarray, dist: np.ndarray, T_body_camera: np.ndarray, *,
    pupil_offset_m: float = 0.0, layout: MarkerLayout | None = None, min_markers: int = 2, refine: bool = True,
) -> WallRegistration:
    """Wall registration from tracked images of the ArUco-per-cabinet pattern (module docstring, (b))."""
    layout = layout or renderer_marker_layout(stage)
    T_e = np.eye(4)
    T_e[1, 3] = pupil_offset_m
    T_body_cv = T_body_camera @ T_e @ _T_PUPIL_CV
    cache: dict[int, tuple[int, np.ndarray] | None] = {}

    def stage_corners(mid: int):
        if mid not in cache:
            lay = layout(int(mid))
            cache[mid] = None if lay is None else (lay[0], stage.walls[lay[0]].geometry.raster_to_stage(lay[1]))
        return cache[mid]

    # observations: (view index, marker id, wall index, (4,3) stage, (4,2) px)
    obs = []
    unknown: set[int] = set()
    for k, v in enumerate(views):
        for mid, c in zip(v.ids, v.corners):
            sc = stage_corners(int(mid))
            if sc is None:
                unknown.add(int(mid))
                continue
            obs.append((k, int(mid), sc[0], sc[1], c))
    if not obs:
        raise CalibrationError("no marker of the stage's pattern was found in any image: is the renderer showing the "
                               "aruco pattern, and is the dictionary right?")

    def solve(subset) -> tuple[np.ndarray, list[dict]]:
        per_view: dict[int, list] = {}
        for o in subset:
            per_view.setdefault(o[0], []).append(o)
        estimates, used = [], []
        for k, os_ in per_view.items():
            if len(os_) < min_markers:
                continue
            T_cv_stage = _pnp(np.concatenate([o[3] for o in os_]), np.concatenate([o[4] for o in os_]), K, dist)
            if T_cv_stage is None:
                continue
            estimates.append(views[k].T_tracking_body @ T_body_cv @ T_cv_stage)
            used.append(k)
        if not estimates:
            raise CalibrationError(f"no image shows {min_markers} or more markers of one solve: step back so that "
                                   f"several cabinets are in frame")
        T0 = mean_transform(estimates)
        obs_used = [o for o in subset if o[0] in used]

        def residuals(T_tracking_stage):
            out = []
            for o in obs_used:
                T_cv_stage = invert_transform(views[o[0]].T_tracking_body @ T_body_cv) @ T_tracking_stage
                pc = o[3] @ T_cv_stage[:3, :3].T + T_cv_stage[:3, 3]
                proj, _ = cv2.projectPoints(pc.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, dist)
                out.append((o[4] - proj.reshape(-1, 2), pc[:, 2]))
            return out

        T = T0
        if refine:
            p, _ = levenberg_marquardt(lambda d: np.concatenate([r.ravel() for r, _ in residuals(perturb(T0, d))]), np.zeros(6))
            T = perturb(T0, p)
        res = residuals(T)
        rows = [{"view": o[0], "id": o[1], "wall_index": o[2], "res": r, "depth": z} for o, (r, z) in zip(obs_used, res)]
        return T, rows

    T_all, rows_all = solve(obs)
    per_wall: dict[str, np.ndarray] = {}
    rows_wall: dict[tuple[int, int], dict] = {}
    warnings: list[str] = []
    walls_seen = sorted({o[2] for o in obs})
    if len(walls_seen) > 1:
        for wi in walls_seen:
            try:
                Tw, rw = solve([o for o in obs if o[2] == wi])
            except CalibrationError as exc:
                warnings.append(f"wall {stage.walls[wi].name!r}: no per-wall solve: {exc}")
                continue
            per_wall[stage.walls[wi].name] = invert_transform(Tw)
            for r in rw:
                rows_wall[(r["view"], r["id"])] = r
    else:
        per_wall[stage.walls[walls_seen[0]].name] = invert_transform(T_all)
    fx = float(K[0, 0])
    # per marker: RMS px over its corners in every view, and the same in mm on the wall (px * depth / f)
    markers: dict[int, dict] = {}
    for r in rows_all:
        m = markers.setdefault(r["id"], {"sq_px": 0.0, "sq_mm": 0.0, "n": 0, "wall_index": r["wall_index"], "sq_px_wall": 0.0, "n_wall": 0})
        m["sq_px"] += float(np.sum(r["res"] ** 2))
        m["sq_mm"] += float(np.sum((np.linalg.norm(r["res"], axis=1) * r["depth"] / fx * 1000.0) ** 2))
        m["n"] += 4
        rw = rows_wall.get((r["view"], r["id"]))
        if rw is not None:
            m["sq_px_wall"] += float(np.sum(rw["res"] ** 2))
            m["n_wall"] += 4
    residuals = []
    for mid, m in sorted(markers.items()):
        lay = layout(mid)
        wall = stage.walls[m["wall_index"]]
        pw, ph = wall.cabinet.pixels
        c = lay[1].mean(axis=0) if lay else (0, 0)
        d = {"id": mid, "wall": wall.name, "col": int(c[0] // pw), "row": int(c[1] // ph), "observations": m["n"] // 4,
             "rms_px": math.sqrt(m["sq_px"] / m["n"]), "rms_mm": math.sqrt(m["sq_mm"] / m["n"])}
        if m["n_wall"]:
            d["rms_px_wall_fit"] = math.sqrt(m["sq_px_wall"] / m["n_wall"])
        residuals.append(d)
    view_rows: dict[int, list] = {}
    for r in rows_all:
        view_rows.setdefault(r["view"], []).append(r["res"])
    view_list = []
    for k, v in enumerate(views):
        rs = view_rows.get(k)
        if rs is None:
            view_list.append({"name": v.name, "markers": int(len(v.ids)), "used": False})
            continue
        a = np.concatenate(rs)
        view_list.append({"name": v.name, "markers": len(rs), "used": True,
                          "rms_px": float(np.sqrt(np.sum(a * a) / len(a)))})
    all_px = np.concatenate([r["res"] for r in rows_all])
    mm = np.array([d["rms_mm"] for d in residuals])
    med = float(np.median([d["rms_px"] for d in residuals]))
    outliers = [f"marker {d['id']} ({d['wall']} {d['col']},{d['row']})" for d in residuals if d["rms_px"] > max(3 * med, 1.0)]
    if unknown:
        warnings.append(f"ids not on this stage ignored: {sorted(unknown)[:10]}")
    if outliers:
        warnings.append(f"markers far off the fit (> 3 x median {med:.2f} px and 1 px): {', '.join(outliers)}")
    return WallRegistration("markers", invert_transform(T_all), per_wall, residuals, float(np.sqrt(np.mean(mm * mm))),
                            float(mm.max()), rms_px=float(np.sqrt(np.sum(all_px * all_px) / len(all_px))),
                            views=view_list, outliers=outliers, warnings=warnings)
