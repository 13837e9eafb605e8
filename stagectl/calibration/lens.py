"""Lens calibration: board detection, ``cv2.calibrateCamera``, residual evidence and lens files.

Frames and units
----------------
* Pixel coordinates here are **OpenCV's**: the centre of pixel ``(i, j)`` is the point ``(i, j)``; x right,
  y down. stagectl's own pixel coordinates put that centre at ``(i + 0.5, j + 0.5)`` (docs/conventions.md).
* The **board frame** is OpenCV's object frame: origin at corner id 0, +x toward corner id 1, +y toward the
  next row of corners, +z = x cross y (into the board for a viewer who sees x right and y down). Metres.
* ``T_cv_board`` (from ``rvec, tvec``) maps board coordinates into the OpenCV camera frame (x right, y down,
  z forward) whose origin is the projection centre -- the lens's **entrance pupil**.

Boards
------
``checkerboard``: ``inner = (cols, rows)`` inner corners, ``square`` metres. Corners come from
``cv2.findChessboardCorners`` + ``cv2.cornerSubPix`` (half-window a quarter of the corner spacing, at most
OpenCV's sample's 11 px), falling back to ``cv2.findChessboardCornersSB``. A board with more inner corners than
``inner`` (the detector happily finds an 8 x 6 part of a 9 x 6 board) is refused, with its real size. A
checkerboard with one odd and one even inner count (9 x 6) has a unique orientation: corner 0 is put where the
square diagonally outside it (and the one diagonally inside) is **dark**, so board poses are consistent between
views (the hand-eye, pupil and wall tools need that). Boards with both counts odd or both even are 180-degree
ambiguous (``Detection.orientation_ambiguous``): use them for intrinsics only, or use ChArUco.
``charuco``: ``squares = (cols + 1, rows + 1)``, ``square`` and ``marker`` metres and an ArUco dictionary;
``cv2.aruco.CharucoDetector`` gives corner ids, so partial views of the board are fine.

RMS
---
Every RMS here is **OpenCV's per-point definition** (docs/reference/CALIBRATION_AND_TIMING.md section 2):
``rms = sqrt(sum_i |r_i|^2 / N_points)`` with ``r_i`` the 2-D residual of point ``i`` in pixels -- what
``cv2.calibrateCamera`` returns. (mrcal's per-coordinate RMS is this divided by sqrt(2).) A view is an
**outlier** when its RMS exceeds ``OUTLIER_FACTOR`` (2) times the median view RMS.

From pixels to a lens file
--------------------------
``fx, fy, cx, cy`` (OpenCV pixels) and a sensor ``[sw, sh]`` mm covering the ``w x h`` image give
``focal_length_mm = fx * sw / w``, ``principal_point_offset_mm = ((cx + 0.5 - w/2) * sw / w,
-(cy + 0.5 - h/2) * sh / h)`` (+0.5: OpenCV's integer pixel centres; the minus: OpenCV's y runs down, the lens
file's up). This is the exact inverse of ``LensEvaluation.intrinsics(..., integer_pixel_centres=True)``. The
distortion ``[k1, k2, p1, p2, k3]`` is stored as is (same model, same direction, OpenCV's normalised
coordinates). A lens file has one focal length, so ``fy`` is kept only through the sensor's aspect: the result
reports ``fy * sh / h`` next to it and warns when they differ by more than 0.5 %.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stagectl.calibration import CalibrationError

__all__ = [
    "OUTLIER_FACTOR",
    "IMAGE_SUFFIXES",
    "DEFAULT_SENSOR_WIDTH_MM",
    "Board",
    "Detection",
    "ViewResult",
    "LensCalibration",
    "GridEntry",
    "list_images",
    "load_gray",
    "detect_board",
    "pattern_beyond",
    "detect_folder",
    "calibrate_lens",
    "calibrate_folder",
    "per_point_rms",
    "coverage_grid",
    "board_pose",
    "intrinsics_to_lens_mm",
    "lens_mm_to_intrinsics",
    "default_sensor_mm",
    "LensPointValues",
    "lens_point_values",
    "lens_file_text",
    "parse_grid_folder_name",
    "read_grid_spec",
    "draw_detection",
    "board_texture",
    "render_plane_view",
    "undistorted_rays",
    "intrinsics_from_lens_file",
]

OUTLIER_FACTOR = 2.0
"""A view whose RMS exceeds this times the median view RMS is flagged (CALIBRATION_AND_TIMING.md section 2)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm")
DEFAULT_SENSOR_WIDTH_MM = 24.89
"""Sensor width assumed when none is given (Super 35, the example lens file's); the height follows from the
image's aspect (square pixels). The focal length in mm is only meaningful against the sensor it was computed
for: pass the camera's ``sensor_mm`` from the stage file."""

_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 100, 1e-12)


# ============================================================================================== boards


@dataclass(frozen=True)
class Board:
    """A calibration board.

    ``kind``: ``"checkerboard"`` or ``"charuco"``. ``cols, rows``: **inner corners** per row and per column
    (a ChArUco board of ``cols + 1`` by ``rows + 1`` squares). ``square_m``: side of one square, metres.
    ``marker_m``: ChArUco marker side, metres. ``dictionary``: an OpenCV ArUco dictionary name.
    ``legacy``: ChArUco boards made before OpenCV 4.6 with an even number of rows (``setLegacyPattern``).
    """

    kind: str
    cols: int
    rows: int
    square_m: float
    marker_m: float | None = None
    dictionary: str = "DICT_5X5_100"
    legacy: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("checkerboard", "charuco"):
            raise ValueError(f"board kind must be 'checkerboard' or 'charuco', got {self.kind!r}")
        if self.cols < 2 or self.rows < 2:
            raise ValueError(f"a board needs at least 2 x 2 inner corners, got {self.cols} x {self.rows}")
        if not self.square_m > 0:
            raise ValueError(f"square size must be > 0 m, got {self.square_m}")
        if self.kind == "charuco":
            if self.marker_m is None or not 0 < self.marker_m < self.square_m:
                raise ValueError(f"a ChArUco board needs 0 < marker < square, got marker {self.marker_m}")
            if not hasattr(cv2.aruco, self.dictionary) or not self.dictionary.startswith("DICT_"):
                raise ValueError(f"unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100, DICT_6X6_250)")

    @property
    def corner_count(self) -> int:
        return self.cols * self.rows

    @property
    def orientation_ambiguous(self) -> bool:
        """True for a checkerboard that looks the same turned by 180 degrees (both counts odd or both even)."""
        return self.kind == "checkerboard" and (self.cols + self.rows) % 2 == 0

    def describe(self) -> dict:
        d = {"kind": self.kind, "inner_corners": [self.cols, self.rows], "square_m": self.square_m}
        if self.kind == "charuco":
            d.update(squares=[self.cols + 1, self.rows + 1], marker_m=self.marker_m, dictionary=self.dictionary,
                     legacy=self.legacy)
        return d

    def object_points(self) -> np.ndarray:
        """``(N, 3)`` float64 board-frame positions (metres) of corner ids ``0 .. N-1`` (row-major, x fastest)."""
        if self.kind == "charuco":
            return np.asarray(self.charuco_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)
        i = np.arange(self.corner_count)
        return np.stack([(i % self.cols) * self.square_m, (i // self.cols) * self.square_m, np.zeros(i.size)], axis=1)

    def aruco_dictionary(self):
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    def charuco_board(self):
        b = cv2.aruco.CharucoBoard((self.cols + 1, self.rows + 1), float(self.square_m), float(self.marker_m),
                                   self.aruco_dictionary())
        if self.legacy:
            b.setLegacyPattern(True)
        return b


# ============================================================================================== images


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, :data:`IMAGE_SUFFIXES`), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a folder of images")
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


def load_gray(path: str | Path) -> np.ndarray:
    """An image as 8-bit greyscale (16-bit images are scaled down)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CalibrationError(f"{path}: cannot read the image")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else 1.0)))
    return img


# ============================================================================================== detection


@dataclass
class Detection:
    """Board corners found in one image (OpenCV pixels, integer pixel centres).

    ``ids``: ``(N,)`` corner ids into :meth:`Board.object_points`; ``corners``: ``(N, 2)`` float64 pixels.
    ``method``: the detector that found them; ``orientation_ambiguous``: the corner order may be turned by 180
    degrees relative to other views (symmetric checkerboard).
    """

    name: str
    image_size: tuple[int, int]
    ids: np.ndarray
    corners: np.ndarray
    method: str
    orientation_ambiguous: bool = False

    @property
    def count(self) -> int:
        return int(self.ids.size)


SUBPIX_MAX_HALF_WINDOW = 11
"""Largest ``cornerSubPix`` half-window (px): the default of OpenCV's own calibration sample
(``samples/cpp/calibration.cpp``, ``winSize = 11``, a 23 x 23 px window)."""


def _corner_spacing(corners: np.ndarray, cols: int) -> float:
    """Shortest distance (px) between neighbouring corners of a checkerboard grid, along rows and columns."""
    g = np.asarray(corners, dtype=np.float64).reshape(-1, cols, 2)
    d = [np.linalg.norm(np.diff(g, axis=a), axis=2).ravel() for a in (0, 1) if g.shape[a] > 1]
    d = np.concatenate(d) if d else np.array([])
    return float(np.min(d)) if d.size else 8.0


def _subpix_window(corners: np.ndarray, cols: int) -> int:
    """``cornerSubPix`` half-window (px) for one view: a quarter of the shortest corner spacing, 2 .. 11.

    ``cornerSubPix`` assumes every gradient in its window lies on an edge through the corner. The window must
    therefore stay well clear of the neighbouring corners, whose other edges pull the result (more so on a
    distorted lens, where the board's edges curve): a half-window of ``s / 4`` reaches only a quarter of the way
    to a neighbour ``s`` px away, half-way to the middle between the two. It never exceeds OpenCV's sample's 11
    (:data:`SUBPIX_MAX_HALF_WINDOW`); OpenCV's Python sample (``samples/python/calibrate.py``) uses 5 on its
    own 640 x 480 photographs, where corners are 22-50 px apart and this rule gives 5-9. Half-windows of
    ``s / 2 - 1`` (up to 11) there moved fx by 1.2 px and raised the RMS from 0.196 to 0.245 px.
    """
    spacing = _corner_spacing(corners, cols)
    return int(np.clip(math.floor(spacing / 4.0), 2, SUBPIX_MAX_HALF_WINDOW))


def _square_mean(gray: np.ndarray, quad: np.ndarray) -> float | None:
    """Mean grey around the middle of the square with corners ``quad`` (px), over a fifth of its smallest
    corner distance (:func:`_patch_mean`); ``None`` off the image."""
    c = quad.mean(axis=0)
    return _patch_mean(gray, c, max(1.0, 0.2 * float(np.min(np.linalg.norm(quad - c, axis=1)))))


def _orient_checkerboard(gray: np.ndarray, corners: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Reverse the corner order when the square diagonally inside corner 0 is the lighter of the two end squares.

    For boards with ``cols + rows`` odd the square between corners 0, 1, cols, cols+1 and the one between the
    last four corners have opposite colours; the convention puts corner 0 at the dark one.
    """
    if (cols + rows) % 2 == 0:
        return corners
    g = corners.reshape(rows, cols, 2)
    first = _square_mean(gray, np.array([g[0, 0], g[0, 1], g[1, 0], g[1, 1]]))
    last = _square_mean(gray, np.array([g[-1, -1], g[-1, -2], g[-2, -1], g[-2, -2]]))
    if first is not None and last is not None and first > last:
        return corners[::-1].copy()
    return corners


def _x_corner_score(gray: np.ndarray, p: np.ndarray, u: np.ndarray, v: np.ndarray) -> float | None:
    """How much the image around ``p`` looks like a checkerboard corner, in grey levels; ``None`` off the image.

    ``u``, ``v``: one square along the grid's two axes (px). With the mean grey ``a, b`` of the two diagonally
    opposite quadrants and ``c, d`` of the other two: ``|a + b - c - d| / 2 - |a - b| / 2 - |c - d| / 2``, the
    dark-light contrast of a real corner (two dark quadrants facing each other), 0 or less where any quadrant
    pair disagrees (the edge of a board: two quadrants on the squares, two on the margin or background).
    """
    r = max(1.0, 0.1 * min(float(np.linalg.norm(u)), float(np.linalg.norm(v))))
    q = []
    for a, b in ((1, 1), (-1, -1), (1, -1), (-1, 1)):
        m = _patch_mean(gray, p + 0.3 * a * u + 0.3 * b * v, r)
        if m is None:
            return None
        q.append(m)
    a, b, c, d = q
    return abs(a + b - c - d) / 2 - abs(a - b) / 2 - abs(c - d) / 2


def _patch_mean(gray: np.ndarray, c: np.ndarray, r: float) -> float | None:
    """Mean grey of the square of pixels within ``r`` px of ``c`` (x, y; rounded to whole pixels); ``None``
    where it is not all on the image."""
    h, w = gray.shape
    x0, x1 = int(round(c[0] - r)), int(round(c[0] + r)) + 1
    y0, y1 = int(round(c[1] - r)), int(round(c[1] + r)) + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return None
    return float(gray[y0:y1, x0:x1].mean())


def pattern_beyond(gray: np.ndarray, corners: np.ndarray, cols: int, rows: int) -> list[str]:
    """Sides of a detected ``cols x rows`` corner grid beyond which the checker pattern goes on.

    ``findChessboardCorners`` asked for 8 x 6 corners finds them on a 9 x 6 board too (a sub-board, one column
    of squares short), and the calibration then runs on the wrong geometry. Each side's next line of corners
    is predicted one square outward (quadratic extrapolation along each grid line, which follows perspective
    and lens distortion) and scored by :func:`_x_corner_score` against the median score of the detected
    corners: past a board's real edge the score is about 0 (margin or background), on more board about 1. A
    side counts when at least two of its predicted corners are on the image and most score above 0.5.

    Returns a subset of ``["first row", "last row", "first column", "last column"]`` (of the corner grid, corner
    0 in the first row and column); empty when the grid is the whole board.
    """
    g = np.asarray(corners, dtype=np.float64).reshape(rows, cols, 2)

    def axis_vec(line: np.ndarray, k: int) -> np.ndarray:
        n = len(line)
        return (line[min(k + 1, n - 1)] - line[max(k - 1, 0)]) / (2.0 if 0 < k < n - 1 else 1.0)

    ref = []
    for j in range(rows):
        for i in range(cols):
            s = _x_corner_score(gray, g[j, i], axis_vec(g[j, :], i), axis_vec(g[:, i], j))
            if s is not None:
                ref.append(s)
    if not ref:
        return []
    contrast = float(np.median(ref))
    if not contrast > 0:
        return []
    sides = []
    # each side's grid lines, starting at that side's edge and running inward
    by_side = (("first row", [g[:, i] for i in range(cols)]), ("last row", [g[::-1, i] for i in range(cols)]),
               ("first column", [g[j, :] for j in range(rows)]), ("last column", [g[j, ::-1] for j in range(rows)]))
    for side, lines in by_side:
        edge = np.array([ln[0] for ln in lines])
        scores = []
        for k, ln in enumerate(lines):
            p = 3 * ln[0] - 3 * ln[1] + ln[2] if len(ln) >= 3 else 2 * ln[0] - ln[1]
            s = _x_corner_score(gray, p, axis_vec(edge, k), p - ln[0])
            if s is not None:
                scores.append(s / contrast)
        if len(scores) >= 2 and np.mean(np.array(scores) > 0.5) > 0.5:
            sides.append(side)
    return sides


def _find_classic(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    ok, c = cv2.findChessboardCorners(gray, size, flags=flags)
    return c.reshape(-1, 2).astype(np.float64) if ok else None


def _board_size_error(gray: np.ndarray, board: Board, sides: list[str], name: str) -> CalibrationError:
    """The refusal for a part of a board seen as the whole: with the board's real size where the detector finds
    it, grown along the sides where the pattern goes on until it stops everywhere."""
    cols, rows = board.cols, board.rows
    found, left = None, sides
    for _ in range(16):
        nc = sum("column" in s for s in left)
        nr = sum("row" in s for s in left)
        tries = ((nc, nr), (nc, 0), (0, nr), (min(nc, 1), 0), (0, min(nr, 1)))
        grown = None
        for dc, dr in dict.fromkeys(t for t in tries if any(t)):
            grown = _find_classic(gray, (cols + dc, rows + dr))
            if grown is not None:
                cols, rows = cols + dc, rows + dr
                break
        if grown is None:
            break
        found = (cols, rows)
        left = pattern_beyond(gray, grown, cols, rows)
        if not left:
            break
    where = f"{name}: " if name else ""
    if found is not None and not left:
        return CalibrationError(
            f"{where}the board has {found[0]} x {found[1]} inner corners, not {board.cols} x {board.rows}: the "
            f"detector found only part of it; pass --inner {found[0]}x{found[1]}")
    more = f"more than {found[0]} x {found[1]}" if found is not None else "more"
    return CalibrationError(
        f"{where}the checker pattern goes on past the {' and '.join(sides)} of the {board.cols} x {board.rows} "
        f"corners found: the board has {more} inner corners; count them (the points where four squares meet) and "
        f"pass them as --inner CxR")


def detect_board(gray: np.ndarray, board: Board, *, name: str = "", method: str = "auto") -> Detection | None:
    """Find ``board`` in an 8-bit greyscale image; ``None`` when it is not (completely, for a checkerboard) seen.

    ``method`` for checkerboards: ``"classic"`` (``findChessboardCorners`` + ``cornerSubPix``, the more
    accurate on sharp images: about 0.03 px on the synthetic self-test against 0.1 px), ``"sb"``
    (``findChessboardCornersSB``, more robust to blur and uneven light) or ``"auto"`` (classic, then SB). ChArUco always uses ``cv2.aruco.CharucoDetector`` and
    needs at least 6 corners not all on one line.

    A checkerboard whose pattern goes on beyond the detected grid (:func:`pattern_beyond`: the board has more
    inner corners than ``board`` says, and the detector matched a part of it) raises :class:`CalibrationError`
    naming the board's real size where the detector confirms it.
    """
    h, w = gray.shape[:2]
    if board.kind == "charuco":
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        det = cv2.aruco.CharucoDetector(board.charuco_board(), cv2.aruco.CharucoParameters(), params)
        ch_corners, ch_ids, _, _ = det.detectBoard(gray)
        if ch_ids is None or len(ch_ids) < 6:
            return None
        pts = ch_corners.reshape(-1, 2).astype(np.float64)
        ids = ch_ids.ravel().astype(np.int64)
        # collinear corners do not constrain a view
        obj = board.object_points()[ids, :2]
        if np.linalg.matrix_rank(obj - obj.mean(axis=0), tol=1e-9) < 2:
            return None
        return Detection(name, (w, h), ids, pts, "charuco")
    size = (board.cols, board.rows)
    corners = None
    used = ""
    if method in ("auto", "classic"):
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        ok, c = cv2.findChessboardCorners(gray, size, flags=flags)
        if ok:
            win = _subpix_window(c, board.cols)
            c = cv2.cornerSubPix(gray, c.astype(np.float32), (win, win), (-1, -1),
                                 (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-4))
            corners, used = c.reshape(-1, 2).astype(np.float64), f"findChessboardCorners+cornerSubPix({win})"
    if corners is None and method in ("auto", "sb"):
        flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
        ok, c = cv2.findChessboardCornersSB(gray, size, flags=flags)
        if ok:
            corners, used = c.reshape(-1, 2).astype(np.float64), "findChessboardCornersSB"
    if corners is None:
        return None
    sides = pattern_beyond(gray, corners, board.cols, board.rows)
    if sides:
        raise _board_size_error(gray, board, sides, name)
    corners = _orient_checkerboard(gray, corners, board.cols, board.rows)
    return Detection(name, (w, h), np.arange(board.corner_count), corners, used, board.orientation_ambiguous)


def detect_folder(
    folder: str | Path, board: Board, *, method: str = "auto", debug_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Detection], list[Path], list[str]]:
    """Detect the board in every image of ``folder``: ``(detections, image paths, names without a board)``.

    All images must have the same size (a :class:`CalibrationError` otherwise).
    """
    paths = list_images(folder)
    if not paths:
        raise CalibrationError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    detections: list[Detection] = []
    missed: list[str] = []
    size = None
    for p in paths:
        gray = load_gray(p)
        s = (gray.shape[1], gray.shape[0])
        if size is None:
            size = s
        elif s != size:
            raise CalibrationError(f"{p}: image is {s[0]} x {s[1]}, the others are {size[0]} x {size[1]}; "
                                   f"calibrate one image size at a time")
        d = detect_board(gray, board, name=p.name, method=method)
        if d is None:
            missed.append(p.name)
        else:
            detections.append(d)
        if progress:
            progress(f"{p.name}: {'no board' if d is None else f'{d.count} corners'}")
        if debug_dir is not None and d is None:
            _write_debug(debug_dir, p.name, draw_detection(gray, d, board))
    return detections, paths, missed


# ============================================================================================== solve


@dataclass
class ViewResult:
    """One view of a calibration: per-point RMS (px), worst point (px), pose ``T_cv_board`` as rvec/tvec."""

    name: str
    count: int
    rms_px: float
    max_px: float
    rvec: np.ndarray
    tvec: np.ndarray
    outlier: bool = False
    used: bool = True

    def T_cv_board(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = cv2.Rodrigues(np.asarray(self.rvec, dtype=np.float64).reshape(3, 1))[0]
        T[:3, 3] = np.asarray(self.tvec, dtype=np.float64).ravel()
        return T


@dataclass
class LensCalibration:
    """Result of :func:`calibrate_lens` (OpenCV pixels, integer pixel centres).

    ``K`` 3x3, ``dist`` ``[k1, k2, p1, p2, k3]``; ``rms_px`` per-point RMS over the views used (what
    ``cv2.calibrateCamera`` returns); ``views`` per view; ``points`` / ``residuals`` ``(N, 2)`` detected corner
    positions and ``detected - projected`` residuals of every used corner, ``point_view`` the view index of each;
    ``std`` the standard deviations of ``fx, fy, cx, cy, k1, k2, p1, p2, k3`` from ``calibrateCameraExtended``.
    """

    board: Board
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    rms_px: float
    views: list[ViewResult]
    points: np.ndarray
    residuals: np.ndarray
    point_view: np.ndarray
    std: dict[str, float]
    flags: int
    coverage: np.ndarray
    missed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def median_view_rms(self) -> float:
        return float(np.median([v.rms_px for v in self.views if v.used]))

    @property
    def outliers(self) -> list[str]:
        return [v.name for v in self.views if v.outlier]

    @property
    def coverage_fraction(self) -> float:
        return float(np.count_nonzero(self.coverage) / self.coverage.size)

    def worst_views(self, n: int = 3) -> list[ViewResult]:
        return sorted((v for v in self.views if v.used), key=lambda v: -v.rms_px)[:n]

    def summary(self) -> dict:
        """Plain-data summary for the result file (pixels: OpenCV convention, integer pixel centres)."""
        k1, k2, p1, p2, k3 = (float(v) for v in self.dist)
        used = [v for v in self.views if v.used]
        return {
            "image_size_px": list(self.image_size),
            "board": self.board.describe(),
            "intrinsics_px": {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                              "pixel_centres": "integer (OpenCV); stagectl's are at +0.5"},
            "distortion": {"k1": k1, "k2": k2, "p1": p1, "p2": p2, "k3": k3,
                           "opencv_order": "[k1, k2, p1, p2, k3]"},
            "std": self.std,
            "rms_px": self.rms_px,
            "rms_definition": "OpenCV per point: sqrt(sum |r|^2 / N_points), r the 2-D residual in px",
            "views_used": len(used),
            "corners_used": int(self.points.shape[0]),
            "median_view_rms_px": self.median_view_rms,
            "worst_point_px": float(np.max(np.linalg.norm(self.residuals, axis=1))) if self.residuals.size else 0.0,
            "outlier_rule": f"view RMS > {OUTLIER_FACTOR:g} x median view RMS",
            "outliers": self.outliers,
            "dropped": self.dropped,
            "no_board": self.missed,
            "worst_views": [{"name": v.name, "rms_px": v.rms_px, "max_px": v.max_px} for v in self.worst_views()],
            "coverage": {"grid": [int(self.coverage.shape[1]), int(self.coverage.shape[0])],
                         "fraction": self.coverage_fraction, "counts": self.coverage.tolist()},
            "views": [{"name": v.name, "corners": v.count, "rms_px": v.rms_px, "max_px": v.max_px,
                       "outlier": v.outlier, "used": v.used,
                       "rvec": [float(x) for x in np.ravel(v.rvec)], "tvec_m": [float(x) for x in np.ravel(v.tvec)]}
                      for v in self.views],
            "flags": self.flags,
        }


def per_point_rms(residuals: np.ndarray) -> float:
    """OpenCV's per-point RMS of ``(N, 2)`` residuals: ``sqrt(sum |r_i|^2 / N)``."""
    r = np.asarray(residuals, dtype=np.float64).reshape(-1, 2)
    return float(np.sqrt(np.sum(r * r) / max(1, r.shape[0])))


def coverage_grid(points: np.ndarray, image_size: tuple[int, int], cells_x: int = 12) -> np.ndarray:
    """Corner counts on a grid of ``cells_x`` by ``round(cells_x * h / w)`` cells over the image (row 0 = top)."""
    w, h = image_size
    cells_y = max(1, int(round(cells_x * h / w)))
    grid = np.zeros((cells_y, cells_x), dtype=np.int64)
    if points.size:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        ix = np.clip(((pts[:, 0] + 0.5) / w * cells_x).astype(int), 0, cells_x - 1)
        iy = np.clip(((pts[:, 1] + 0.5) / h * cells_y).astype(int), 0, cells_y - 1)
        np.add.at(grid, (iy, ix), 1)
    return grid


def _initial_K(image_size: tuple[int, int], focal_px: float | None) -> np.ndarray:
    w, h = image_size
    f = focal_px if focal_px else 1.2 * max(w, h)
    return np.array([[f, 0.0, w / 2 - 0.5], [0.0, f, h / 2 - 0.5], [0.0, 0.0, 1.0]])


def calibrate_lens(
    detections: Sequence[Detection],
    board: Board,
    *,
    fix_k3: bool = False,
    fix_tangential: bool = False,
    fix_aspect: bool = False,
    fix_principal_point: bool = False,
    drop_outliers: bool = False,
    min_views: int = 3,
    missed: Iterable[str] = (),
) -> LensCalibration:
    """``cv2.calibrateCameraExtended`` over ``detections``, with per-view RMS, outliers and coverage.

    With ``drop_outliers`` the solve is repeated once without the views flagged as outliers (their names go to
    ``dropped``). Raises :class:`CalibrationError` with fewer than ``min_views`` usable views.
    """
    dets = [d for d in detections if d.count >= 4]
    if len(dets) < min_views:
        raise CalibrationError(
            f"only {len(dets)} image(s) show the board (need at least {min_views}, better 15-30): check --board, "
            f"--inner/--squares and that the whole board is in the frame")
    size = dets[0].image_size
    flags = 0
    if fix_k3:
        flags |= cv2.CALIB_FIX_K3
    if fix_tangential:
        flags |= cv2.CALIB_ZERO_TANGENT_DIST
    if fix_aspect:
        flags |= cv2.CALIB_FIX_ASPECT_RATIO
    if fix_principal_point:
        flags |= cv2.CALIB_FIX_PRINCIPAL_POINT
    obj_all = board.object_points()
    dropped: list[str] = []
    for attempt in range(2):
        obj = [obj_all[d.ids].astype(np.float32).reshape(-1, 1, 3) for d in dets]
        img = [d.corners.astype(np.float32).reshape(-1, 1, 2) for d in dets]
        K0 = _initial_K(size, None)
        use_guess = 0
        if board.kind == "charuco" or fix_aspect or fix_principal_point:
            # non-planar-init problems and partial views converge more reliably from a homography-based guess
            K0 = cv2.initCameraMatrix2D(obj, img, size)
            use_guess = cv2.CALIB_USE_INTRINSIC_GUESS
        try:
            out = cv2.calibrateCameraExtended(obj, img, size, K0, np.zeros(5), flags=flags | use_guess,
                                              criteria=_CRITERIA)
        except cv2.error as exc:
            raise CalibrationError(f"cv2.calibrateCamera failed: {exc.err}; check the views cover the image "
                                   f"with varied board tilts") from None
        rms, K, dist, rvecs, tvecs, std_in = out[0], out[1], out[2], out[3], out[4], out[5]
        dist = np.asarray(dist, dtype=np.float64).ravel()[:5]
        views: list[ViewResult] = []
        pts_l, res_l, pv_l = [], [], []
        for i, (d, rv, tv) in enumerate(zip(dets, rvecs, tvecs)):
            proj, _ = cv2.projectPoints(obj_all[d.ids].reshape(-1, 1, 3), rv, tv, K, dist)
            r = d.corners - proj.reshape(-1, 2)
            n = np.linalg.norm(r, axis=1)
            views.append(ViewResult(d.name, d.count, per_point_rms(r), float(n.max()), np.ravel(rv).copy(),
                                    np.ravel(tv).copy()))
            pts_l.append(d.corners)
            res_l.append(r)
            pv_l.append(np.full(d.count, i))
        med = float(np.median([v.rms_px for v in views]))
        for v in views:
            v.outlier = v.rms_px > OUTLIER_FACTOR * med
        if not drop_outliers or attempt == 1 or not any(v.outlier for v in views):
            break
        keep = [d for d, v in zip(dets, views) if not v.outlier]
        if len(keep) < min_views:
            break
        dropped = [v.name for v in views if v.outlier]
        dropped_views = [v for v in views if v.outlier]
        dets = keep
    points = np.concatenate(pts_l)
    residuals = np.concatenate(res_l)
    std_names = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
    std = {n: float(s) for n, s in zip(std_names, np.ravel(std_in)[:9])}
    if dropped:
        for v in dropped_views:
            v.used = False
        views = views + dropped_views
    calib = LensCalibration(
        board=board, image_size=size, K=np.asarray(K, dtype=np.float64), dist=dist, rms_px=float(rms),
        views=views, points=points, residuals=residuals, point_view=np.concatenate(pv_l), std=std, flags=flags,
        coverage=coverage_grid(points, size), missed=list(missed), dropped=dropped,
    )
    if calib.rms_px > 1.0:
        calib.warnings.append(f"RMS {calib.rms_px:.2f} px is high: wrong --inner / --square, a board that is not flat, "
                              f"blurred or rolling-shutter images, or a lens that needs another model")
    if abs(calib.fy / calib.fx - 1.0) > 0.05 and not fix_aspect:
        calib.warnings.append(f"fy / fx = {calib.fy / calib.fx:.3f}: not square pixels? suspect the solve (too few or "
                              f"too similar views)")
    if calib.coverage_fraction < 0.5:
        calib.warnings.append(f"corners cover only {calib.coverage_fraction:.0%} of the image grid: add views with "
                              f"the board near the image corners and edges")
    if len([v for v in views if v.used]) < 10:
        calib.warnings.append(f"only {len([v for v in views if v.used])} views: 15-30 views at varied tilts give "
                              f"a stable solve")
    if calib.outliers:
        calib.warnings.append(f"outlier views (RMS > {OUTLIER_FACTOR:g} x median {med:.3f} px): "
                              f"{', '.join(calib.outliers)}" + ("" if dropped else "; rerun with --drop-outliers "
                                                                 "or remove them"))
    return calib


def calibrate_folder(
    folder: str | Path, board: Board, *, method: str = "auto", debug_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None, **solve,
) -> tuple[LensCalibration, list[Path]]:
    """Detect and calibrate one folder; returns the calibration and the image paths read (for the evidence)."""
    detections, paths, missed = detect_folder(folder, board, method=method, debug_dir=debug_dir, progress=progress)
    calib = calibrate_lens(detections, board, missed=missed, **solve)
    if debug_dir is not None:
        by_name = {d.name: d for d in detections}
        views = {v.name: v for v in calib.views}
        for p in paths:
            if p.name in by_name:
                _write_debug(debug_dir, p.name, draw_detection(load_gray(p), by_name[p.name], board, calib,
                                                               views.get(p.name)))
    return calib, paths


def board_pose(detection: Detection, board: Board, K: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, float]:
    """``T_cv_board`` (4x4, metres) of one detection by ``cv2.solvePnP`` (IPPE for the planar board, then
    Levenberg-Marquardt refinement), and its per-point reprojection RMS in pixels."""
    obj = board.object_points()[detection.ids].reshape(-1, 1, 3)
    img = detection.corners.reshape(-1, 1, 2)
    ok, rv, tv = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        ok, rv, tv = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise CalibrationError(f"{detection.name}: solvePnP found no board pose")
    rv, tv = cv2.solvePnPRefineLM(obj, img, K, dist, rv, tv, _CRITERIA)
    proj, _ = cv2.projectPoints(obj, rv, tv, K, dist)
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rv)[0]
    T[:3, 3] = tv.ravel()
    return T, per_point_rms(detection.corners - proj.reshape(-1, 2))


# ============================================================================================== lens-file units


def default_sensor_mm(image_size: tuple[int, int]) -> tuple[float, float]:
    """:data:`DEFAULT_SENSOR_WIDTH_MM` wide, height from the image aspect (square pixels)."""
    w, h = image_size
    return DEFAULT_SENSOR_WIDTH_MM, DEFAULT_SENSOR_WIDTH_MM * h / w


def intrinsics_to_lens_mm(K: np.ndarray, image_size: tuple[int, int], sensor_mm) -> tuple[float, tuple[float, float], float]:
    """OpenCV ``K`` (integer pixel centres) -> ``(focal_length_mm, (px_mm, py_mm), focal_mm_from_fy)``.

    ``f = fx sw / w``; ``px = (cx + 0.5 - w/2) sw / w``; ``py = -(cy + 0.5 - h/2) sh / h`` (+x right, +y up on the
    sensor, docs/conventions.md). The third value, ``fy sh / h``, equals ``f`` for a sensor whose aspect matches
    the pixels'.
    """
    w, h = (float(v) for v in image_size)
    sw, sh = (float(v) for v in sensor_mm)
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    return fx * sw / w, ((cx + 0.5 - w / 2) * sw / w, -(cy + 0.5 - h / 2) * sh / h), fy * sh / h


def lens_mm_to_intrinsics(focal_mm: float, pp_mm, image_size: tuple[int, int], sensor_mm) -> np.ndarray:
    """Inverse of :func:`intrinsics_to_lens_mm` (``fy = f h / sh``), OpenCV integer pixel centres."""
    w, h = (float(v) for v in image_size)
    sw, sh = (float(v) for v in sensor_mm)
    return np.array([[focal_mm * w / sw, 0.0, w / 2 - 0.5 + pp_mm[0] * w / sw],
                     [0.0, focal_mm * h / sh, h / 2 - 0.5 - pp_mm[1] * h / sh],
                     [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class LensPointValues:
    """One lens-file point in lens-file units (docs/lens-file.md)."""

    zoom: float
    focus: float
    focal_length_mm: float
    principal_point_offset_mm: tuple[float, float]
    k1: float
    k2: float
    k3: float
    p1: float
    p2: float
    entrance_pupil_offset_m: float = 0.0
    focus_distance_m: float = math.inf
    rms_px: float | None = None


def lens_point_values(
    calib: LensCalibration, sensor_mm, *, zoom: float = 0.0, focus: float = 0.0,
    entrance_pupil_offset_m: float = 0.0, focus_distance_m: float = math.inf,
) -> tuple[LensPointValues, list[str]]:
    """Lens-file values of a calibration for a sensor ``[w, h]`` mm, and warnings (fx/fy vs sensor aspect)."""
    f, pp, f_y = intrinsics_to_lens_mm(calib.K, calib.image_size, sensor_mm)
    warnings = []
    if abs(f_y / f - 1.0) > 0.005:
        warnings.append(f"fy implies {f_y:.4g} mm but fx {f:.4g} mm ({(f_y / f - 1) * 100:+.2f} %): the sensor "
                        f"size {list(sensor_mm)} mm does not match the image's pixel aspect, or the lens is "
                        f"anamorphic; the lens file keeps the fx value")
    k1, k2, p1, p2, k3 = (float(v) for v in calib.dist)
    return LensPointValues(float(zoom), float(focus), f, (float(pp[0]), float(pp[1])), k1, k2, k3, p1, p2,
                           float(entrance_pupil_offset_m), float(focus_distance_m), calib.rms_px), warnings


def _num(v: float) -> str:
    return repr(float(v)) if math.isfinite(v) else "null"


def _q(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)


def lens_file_text(
    points: Sequence[LensPointValues], *, sensor_mm, name: str, tool: str, date: str, command: str,
    notes: str = "", header: str = "",
) -> str:
    """A lens file (schema 1, docs/lens-file.md) for a rectangular grid of points, as YAML text."""
    zooms = sorted({p.zoom for p in points})
    focuses = sorted({p.focus for p in points})
    if len(points) != len(zooms) * len(focuses):
        raise CalibrationError(f"the calibrated points do not form a zoom x focus grid: {len(points)} points for "
                               f"{len(zooms)} zoom and {len(focuses)} focus values; add the missing folders")
    rms = [p.rms_px for p in points if p.rms_px is not None]
    lines = []
    for h in header.splitlines():
        lines.append(f"# {h}".rstrip())
    lines += [
        "schema_version: 1",
        f"lens: {{name: {_q(name)}}}",
        f"sensor_mm: [{_num(sensor_mm[0])}, {_num(sensor_mm[1])}]",
        "calibration:",
        f"  tool: {_q(tool)}",
        f"  date: {_q(date)}",
        f"  command: {_q(command)}",
    ]
    if rms:
        lines.append(f"  rms_px: {_num(max(rms))}")
    if notes:
        lines.append(f"  notes: {_q(notes)}")
    lines += [
        "distortion_model: {model: brown-conrady, direction: undistorted-to-distorted}",
        "encoders:",
        f"  zoom: [{', '.join(_num(z) for z in zooms)}]",
        f"  focus: [{', '.join(_num(f) for f in focuses)}]",
        "points:",
    ]
    for p in sorted(points, key=lambda p: (p.zoom, p.focus)):
        if p.rms_px is not None:
            lines.append(f"  # zoom {p.zoom:g}, focus {p.focus:g}: reprojection RMS {p.rms_px:.3f} px")
        lines += [
            f"  - zoom: {_num(p.zoom)}",
            f"    focus: {_num(p.focus)}",
            f"    focal_length_mm: {_num(p.focal_length_mm)}",
            f"    principal_point_offset_mm: [{_num(p.principal_point_offset_mm[0])}, {_num(p.principal_point_offset_mm[1])}]",
            f"    distortion: {{k1: {_num(p.k1)}, k2: {_num(p.k2)}, k3: {_num(p.k3)}, p1: {_num(p.p1)}, p2: {_num(p.p2)}}}",
            f"    entrance_pupil_offset_m: {_num(p.entrance_pupil_offset_m)}",
            f"    focus_distance_m: {_num(p.focus_distance_m)}" + ("        # infinity" if not math.isfinite(p.focus_distance_m) else ""),
        ]
    return "\n".join(lines) + "\n"


# ============================================================================================== zoom/focus grid


@dataclass(frozen=True)
class GridEntry:
    """One calibration folder of a zoom/focus grid: encoders (normalised 0..1) and the focus distance (m)."""

    images: Path
    zoom: float
    focus: float
    focus_distance_m: float = math.inf
    entrance_pupil_offset_m: float = 0.0


_GRID_NAME = re.compile(
    r"^(?:zoom|z)[=_-]?(?P<z>\d*\.?\d+)[_,\s-]+(?:focus|f)[=_-]?(?P<f>\d*\.?\d+)"
    r"(?:[_,\s-]+(?:dist|d)[=_-]?(?P<d>\d*\.?\d+|inf))?$", re.IGNORECASE)


def parse_grid_folder_name(name: str) -> tuple[float, float, float] | None:
    """``z0.25_f0.5`` / ``zoom=0.25,focus=0.5`` / ``z0.25_f0.5_d2.4`` -> ``(zoom, focus, focus distance m)``
    (distance ``inf`` when not given); ``None`` when the name does not follow the pattern."""
    m = _GRID_NAME.match(name.strip())
    if not m:
        return None
    d = m.group("d")
    return float(m.group("z")), float(m.group("f")), (math.inf if d in (None, "inf") else float(d))


def read_grid_spec(path: str | Path | None, images: str | Path) -> list[GridEntry] | None:
    """The grid of a multi-folder calibration, or ``None`` for a single folder.

    With ``path`` (a YAML file ``points: [{images: DIR, zoom: Z, focus: F, focus_distance_m: D or null}, ...]``,
    folders relative to the file) that list; otherwise the subfolders of ``images`` whose names follow
    :func:`parse_grid_folder_name`, when ``images`` itself holds no images.
    """
    import yaml

    if path is not None:
        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CalibrationError(f"{p}: cannot read the grid file: {exc}") from None
        items = doc.get("points") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not items:
            raise CalibrationError(f"{p}: expected 'points: [{{images: DIR, zoom: Z, focus: F, focus_distance_m: D}}, ...]'")
        out = []
        for i, it in enumerate(items):
            try:
                d = it.get("focus_distance_m")
                out.append(GridEntry((p.parent / str(it["images"])).resolve(), float(it["zoom"]), float(it["focus"]),
                                     math.inf if d is None else float(d), float(it.get("entrance_pupil_offset_m", 0.0))))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CalibrationError(f"{p}: points[{i}]: expected images, zoom, focus (and focus_distance_m): {exc}") from None
        return out
    folder = Path(images)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a folder of images")
    if list_images(folder):
        return None
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        parsed = parse_grid_folder_name(sub.name)
        if parsed is not None:
            out.append(GridEntry(sub, *parsed))
    if not out:
        raise CalibrationError(f"{folder}: no images and no zoom/focus subfolders (named like z0.25_f0.0 or "
                               f"z0.25_f0.5_d2.4); pass --grid GRID.yaml to list them")
    return out


# ============================================================================================== drawing


def _write_debug(debug_dir, name: str, img: np.ndarray) -> None:
    d = Path(debug_dir)
    d.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(d / (Path(name).stem + ".detect.png")), img)


def draw_detection(gray: np.ndarray, det: Detection | None, board: Board, calib: LensCalibration | None = None,
                   view: ViewResult | None = None, scale_residual: float = 20.0) -> np.ndarray:
    """An annotated copy of an image: detected corners (green, id 0 marked), reprojections (red) and residual
    vectors magnified ``scale_residual`` times (yellow)."""
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    h, w = gray.shape[:2]
    s = max(1, int(round(max(w, h) / 1000)))
    if det is None:
        cv2.putText(img, "no board found", (10, 30 * s), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * s, (0, 0, 255), 2 * s)
        return img
    for i, (x, y) in zip(det.ids, det.corners):
        cv2.circle(img, (int(round(x)), int(round(y))), 3 * s, (0, 200, 0), s, cv2.LINE_AA)
        if i == 0:
            cv2.putText(img, "0", (int(x) + 4 * s, int(y) - 4 * s), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, (0, 200, 0), s)
    text = f"{det.name}: {det.count} corners ({det.method})"
    if calib is not None and view is not None:
        proj, _ = cv2.projectPoints(board.object_points()[det.ids].reshape(-1, 1, 3), view.rvec, view.tvec,
                                    calib.K, calib.dist)
        for (x, y), (px, py) in zip(det.corners, proj.reshape(-1, 2)):
            cv2.drawMarker(img, (int(round(px)), int(round(py))), (0, 0, 255), cv2.MARKER_CROSS, 6 * s, s)
            ex, ey = x + (x - px) * scale_residual, y + (y - py) * scale_residual
            cv2.line(img, (int(round(x)), int(round(y))), (int(round(ex)), int(round(ey))), (0, 220, 255), s, cv2.LINE_AA)
        text += f"  RMS {view.rms_px:.3f} px  max {view.max_px:.3f} px" + ("  OUTLIER" if view.outlier else "")
    cv2.putText(img, text, (10, 24 * s), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (0, 0, 0), 3 * s, cv2.LINE_AA)
    cv2.putText(img, text, (10, 24 * s), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (255, 255, 255), s, cv2.LINE_AA)
    return img


# ============================================================================================== synthetic views
# Used by the self-tests and handy for checking a capture plan: render a textured plane through a distorted
# pinhole camera (exact ray casting per pixel, supersampled).


def board_texture(board: Board, px_per_square: int = 40, margin_squares: float = 1.0) -> tuple[np.ndarray, float, tuple[float, float]]:
    """An 8-bit image of ``board`` for printing or rendering, with ``(texel_m, origin_m)``: texel ``(u, v)``
    (integer centres) lies at board-frame ``(origin_x + u * texel_m, origin_y + v * texel_m, 0)``.

    Checkerboards follow the orientation convention of :func:`detect_board` (the square diagonally outside
    corner 0 is dark); a white margin of ``margin_squares`` surrounds the board.
    """
    s = board.square_m
    texel = s / px_per_square
    if board.kind == "charuco":
        sx, sy = board.cols + 1, board.rows + 1
        m = int(round(margin_squares * px_per_square))
        img = board.charuco_board().generateImage((sx * px_per_square + 2 * m, sy * px_per_square + 2 * m), marginSize=m)
        # the chessboard corner with id 0 sits at board (s, s); the image's top-left texel centre at (-m + 0.5) texels
        objs = board.object_points()
        ox = float(objs[0, 0]) - s - (m - 0.5) * texel
        oy = float(objs[0, 1]) - s - (m - 0.5) * texel
        return img, texel, (ox, oy)
    sx, sy = board.cols + 1, board.rows + 1
    m = int(round(margin_squares * px_per_square))
    W, H = sx * px_per_square + 2 * m, sy * px_per_square + 2 * m
    img = np.full((H, W), 255, np.uint8)
    for j in range(sy):
        for i in range(sx):
            if (i + j) % 2 == 0:
                img[m + j * px_per_square:m + (j + 1) * px_per_square, m + i * px_per_square:m + (i + 1) * px_per_square] = 0
    # corner 0 is the corner between squares (0,0) and (1,1): texel m + px_per_square from the edge
    ox = -(m + px_per_square - 0.5) * texel
    return img, texel, (ox, ox)


_RAY_CACHE: dict = {}


def undistorted_rays(K: np.ndarray, dist: np.ndarray, image_size: tuple[int, int], supersample: int = 1) -> np.ndarray:
    """``(H*ss, W*ss, 2)`` undistorted normalised coordinates of the (sub)pixel centres of an image (OpenCV pixels),
    by ``cv2.undistortPointsIter`` iterated to 1e-12 (agrees with :func:`stagectl.lens.distortion.undistort` to
    ~1e-15 and is twice as fast); cached per camera."""
    key = (tuple(np.round(np.ravel(K), 12)), tuple(np.round(np.ravel(dist), 15)), tuple(image_size), supersample)
    if key in _RAY_CACHE:
        return _RAY_CACHE[key]
    w, h = image_size
    ss = supersample
    u = (np.arange(w * ss) + 0.5) / ss - 0.5
    v = (np.arange(h * ss) + 0.5) / ss - 0.5
    uu, vv = np.meshgrid(u, v)
    pts = np.stack([uu, vv], axis=-1).reshape(-1, 1, 2)
    rays = cv2.undistortPointsIter(pts, np.asarray(K, dtype=np.float64), np.asarray(dist, dtype=np.float64).ravel(),
                                   None, None, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-12))
    rays = rays.reshape(h * ss, w * ss, 2)
    if len(_RAY_CACHE) > 8:
        _RAY_CACHE.clear()
    _RAY_CACHE[key] = rays
    return rays


def render_plane_view(
    texture: np.ndarray, texel_m: float, origin_m, K: np.ndarray, dist: np.ndarray, T_cv_plane: np.ndarray,
    image_size: tuple[int, int], *, supersample: int = 3, blur_sigma_px: float = 0.0, noise_sigma: float = 0.0,
    background: int = 110, rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render a planar texture (plane z = 0 of its frame, metres) seen by an OpenCV camera.

    Each (sub)pixel's ray is undistorted exactly, intersected with the plane through the inverse homography
    ``[r1 r2 t]^-1``, and the texture sampled bilinearly; ``supersample`` x ``supersample`` subpixels are averaged,
    then an optional Gaussian blur (``blur_sigma_px``) and Gaussian noise (``noise_sigma`` grey levels).
    """
    rays = undistorted_rays(K, dist, image_size, supersample)
    R, t = T_cv_plane[:3, :3], T_cv_plane[:3, 3]
    Hm = np.column_stack([R[:, 0], R[:, 1], t])
    Hi = np.linalg.inv(Hm)
    x, y = rays[..., 0], rays[..., 1]
    X = Hi[0, 0] * x + Hi[0, 1] * y + Hi[0, 2]
    Y = Hi[1, 0] * x + Hi[1, 1] * y + Hi[1, 2]
    Wh = Hi[2, 0] * x + Hi[2, 1] * y + Hi[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        X = X / Wh
        Y = Y / Wh
    # in front of the camera: the plane point's depth must be positive
    depth = R[2, 0] * X + R[2, 1] * Y + t[2]
    mu = ((X - origin_m[0]) / texel_m).astype(np.float32)
    mv = ((Y - origin_m[1]) / texel_m).astype(np.float32)
    bad = ~(depth > 0) | ~np.isfinite(mu) | ~np.isfinite(mv)
    mu[bad] = -10.0
    mv[bad] = -10.0
    big = cv2.remap(texture, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    w, h = image_size
    img = cv2.resize(big.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) if supersample > 1 else big.astype(np.float32)
    if blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma_px)
    if noise_sigma > 0:
        rng = rng or np.random.default_rng(0)
        img = img + rng.normal(0.0, noise_sigma, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ============================================================================================== lens files in


def intrinsics_from_lens_file(path: str | Path, image_size: tuple[int, int], zoom: float = 0.0, focus: float = 0.0):
    """``(K, dist, evaluation)`` of a lens file at ``(zoom, focus)`` for an image of ``image_size`` pixels covering
    the lens file's sensor: OpenCV ``K`` with integer pixel centres and ``[k1, k2, p1, p2, k3]``."""
    from stagectl.lens import load_lens_file

    lens = load_lens_file(path)
    ev = lens.evaluate(zoom, focus)
    K = ev.intrinsics(image_size, lens.sensor_mm, integer_pixel_centres=True)
    return K, ev.distortion.opencv(), ev
