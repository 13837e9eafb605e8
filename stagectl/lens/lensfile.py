"""Lens files (``stages/lenses/*.yaml``, schema version 1): model, strict loader, evaluation at any encoder state.

A lens file holds a rectangular grid of calibrated points over the normalised zoom and focus encoders
(OpenTrackIO directions: zoom 0 = wide .. 1 = tele, focus 0 = infinity .. 1 = closest). Each point gives the pinhole
focal length (mm), the principal-point offset (mm on the sensor from its centre, +x right, +y up), Brown-Conrady
distortion (OpenCV meaning, undistorted -> distorted), the entrance-pupil offset (m, positive toward the subject)
and the focus distance (m, ``null`` = infinity). The layout is documented key by key in docs/lens-file.md.

Evaluation at an encoder state is **bilinear** over the grid cell that holds it, **clamped** at the edges (an
encoder outside the calibrated range evaluates as the nearest edge of the grid). Every value is interpolated
linearly except the focus distance, which is interpolated in dioptres (1/m) so that infinity (0 dioptres) mixes
cleanly with finite distances. :class:`LensTable` is the per-frame fast path.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from yaml.nodes import Node, ScalarNode

from stagectl.config.reader import (
    INVALID,
    Context,
    Invalid,
    MapReader,
    describe,
    integer,
    load_document,
    number,
    one_of,
    string,
    vector,
)
from stagectl.lens.distortion import BrownConrady, fold_radius, frame_border, undistort

__all__ = [
    "SCHEMA_VERSION",
    "DISTORTION_MODELS",
    "DISTORTION_DIRECTIONS",
    "Calibration",
    "LensPoint",
    "LensFile",
    "LensEvaluation",
    "FieldOfView",
    "Overscan",
    "LensTable",
    "load_lens_file",
]

SCHEMA_VERSION = 1
DISTORTION_MODELS = ("brown-conrady",)
DISTORTION_DIRECTIONS = ("undistorted-to-distorted",)

# Order of the interpolated values in a LensTable row.
_F, _PX, _PY, _K1, _K2, _K3, _P1, _P2, _EPO, _DPT = range(10)
_NVALUES = 10


# --------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class FieldOfView:
    """Angles of view of the undistorted (pinhole) frame, degrees.

    ``horizontal_deg = left_deg + right_deg`` and ``vertical_deg = bottom_deg + top_deg``; the half-angles are
    measured from the optical axis (through the principal point) to each sensor edge, so they differ when the
    principal point is off centre.
    """

    horizontal_deg: float
    vertical_deg: float
    left_deg: float
    right_deg: float
    bottom_deg: float
    top_deg: float


@dataclass(frozen=True, slots=True)
class Overscan:
    """How much wider than the pinhole frame an undistorted render must be to cover the distorted frame.

    ``left, right, bottom, top`` are factors >= 1 on each half-extent of the frustum measured from the principal
    point (``l' = left * l``, ``r' = right * r``, ...); ``scale = max(...)`` is the single factor that, applied about
    the principal point, covers every side. :meth:`percent` gives the per-side overscan in the percent convention
    of docs/conventions.md.
    """

    left: float
    right: float
    bottom: float
    top: float
    scale: float
    extents: tuple[float, float, float, float]
    """Pinhole half-extents ``(left, right, bottom, top)`` in normalised units (tan of the half-angles)."""

    def percent(self) -> tuple[float, float, float, float]:
        """Per-side overscan ``(left, right, bottom, top)`` in percent of the unscanned frustum's width / height.

        docs/conventions.md: ``l' = l - ov_l/100 * (r - l)``; with ``l' = left * l`` this is
        ``ov_l = (left - 1) * |l| / (r - l) * 100``.
        """
        el, er, eb, et = self.extents
        w, h = el + er, eb + et
        return (
            (self.left - 1.0) * el / w * 100.0,
            (self.right - 1.0) * er / w * 100.0,
            (self.bottom - 1.0) * eb / h * 100.0,
            (self.top - 1.0) * et / h * 100.0,
        )


def _sensor(sensor_mm) -> tuple[float, float]:
    sw, sh = (float(v) for v in sensor_mm)
    if not (sw > 0.0 and sh > 0.0 and math.isfinite(sw) and math.isfinite(sh)):
        raise ValueError(f"expected a positive sensor size [w, h] in mm, got {sensor_mm!r}")
    return sw, sh


@dataclass(frozen=True, slots=True)
class LensEvaluation:
    """The lens at one encoder state (or as received from a tracker), in stagectl units.

    * ``focal_length_mm``: pinhole focal length, mm (> 0).
    * ``principal_point_offset_mm``: ``(x, y)`` mm on the sensor from its centre, **+x right, +y up**
      (docs/conventions.md; OpenCV's ``cy`` therefore *decreases* as ``y`` grows).
    * ``distortion``: Brown-Conrady, OpenCV meaning, undistorted -> distorted, about the principal point.
    * ``entrance_pupil_offset_m``: m from the camera reference point along the optical axis, positive toward the
      subject: ``T_camera_pupil = translate(0, e, 0)``.
    * ``focus_distance_m``: m; ``math.inf`` = focused at infinity; ``None`` = unknown.
    * ``zoom``, ``focus``: the normalised encoder values this was evaluated at (None when not known).
    """

    focal_length_mm: float
    principal_point_offset_mm: tuple[float, float] = (0.0, 0.0)
    distortion: BrownConrady = BrownConrady()
    entrance_pupil_offset_m: float = 0.0
    focus_distance_m: float | None = None
    zoom: float | None = None
    focus: float | None = None

    # ------------------------------------------------------------------ projection

    def half_extents(self, sensor_mm) -> tuple[float, float, float, float]:
        """Pinhole half-extents ``(left, right, bottom, top)`` of the sensor from the principal point, as tangents
        of the half-angles (unitless, each > 0 for a principal point inside the sensor)."""
        sw, sh = _sensor(sensor_mm)
        px, py = self.principal_point_offset_mm
        f = self.focal_length_mm
        return ((sw / 2 + px) / f, (sw / 2 - px) / f, (sh / 2 + py) / f, (sh / 2 - py) / f)

    def fov(self, sensor_mm) -> FieldOfView:
        """Horizontal and vertical angle of view (degrees) of the pinhole frame for a sensor ``[w, h]`` mm,
        with the asymmetric half-angles the principal-point offset causes. Distortion is not included (see
        :meth:`overscan`)."""
        el, er, eb, et = (math.degrees(math.atan(v)) for v in self.half_extents(sensor_mm))
        return FieldOfView(el + er, eb + et, el, er, eb, et)

    def frustum(self, near: float, sensor_mm) -> tuple[float, float, float, float]:
        """``(l, r, b, t)`` of the unscanned camera frustum at the near plane ``near`` (m), docs/conventions.md:
        ``l = n (-sw/2 - px) / f``, ``r = n (sw/2 - px) / f``, ``b = n (-sh/2 - py) / f``, ``t = n (sh/2 - py) / f``."""
        el, er, eb, et = self.half_extents(sensor_mm)
        return (-near * el, near * er, -near * eb, near * et)

    def intrinsics(self, image_px, sensor_mm, *, integer_pixel_centres: bool = False) -> np.ndarray:
        """OpenCV camera matrix ``K`` (3x3 float64) for an image of ``[w, h]`` pixels covering the sensor.

        ``fx = f w / sw``, ``fy = f h / sh``, ``cx = w/2 + px w / sw``, ``cy = h/2 - py h / sh`` (OpenCV's y runs
        down, the principal-point offset's y up). By default pixel coordinates are stagectl's continuous ones:
        pixel ``(i, j)`` has its centre at ``(i + 0.5, j + 0.5)``, the image centre at ``(w/2, h/2)``. With
        ``integer_pixel_centres=True`` the centre of pixel ``(i, j)`` is ``(i, j)`` (what ``cv2.calibrateCamera``
        estimates), i.e. ``cx, cy`` are 0.5 smaller.
        """
        w, h = (float(v) for v in image_px)
        sw, sh = _sensor(sensor_mm)
        px, py = self.principal_point_offset_mm
        f = self.focal_length_mm
        shift = 0.5 if integer_pixel_centres else 0.0
        return np.array(
            [[f * w / sw, 0.0, w / 2 + px * w / sw - shift], [0.0, f * h / sh, h / 2 - py * h / sh - shift], [0.0, 0.0, 1.0]],
            dtype=np.float64,
        )

    def camera_pupil(self) -> np.ndarray:
        """``T_camera_pupil = translate(0, e, 0)`` (4x4 float64, metres; camera frame: +Y along the optical axis)."""
        T = np.eye(4)
        T[1, 3] = self.entrance_pupil_offset_m
        return T

    def overscan(self, sensor_mm, *, per_edge: int = 256) -> Overscan:
        """Overscan needed so an undistorted render covers the whole distorted frame of a sensor ``[w, h]`` mm.

        Samples ``per_edge`` points on each edge of the distorted output frame (corners included), maps them to
        undistorted coordinates with the numerical inverse, and takes per side the largest reach beyond the
        principal point divided by the pinhole half-extent of that side (clamped to >= 1: a pincushion lens
        needs no overscan). Assumes the distortion is one-to-one over the frame, so the border of the distorted
        frame maps to the border of its undistorted footprint.
        """
        el, er, eb, et = self.half_extents(sensor_mm)
        if self.distortion.is_zero:
            return Overscan(1.0, 1.0, 1.0, 1.0, 1.0, (el, er, eb, et))
        # OpenCV normalised coordinates: y down, so the top of the image is at y = -et
        border = frame_border((el, er, et, eb), per_edge)
        und = undistort(border, self.distortion)
        left = max(1.0, float(np.max(-und[:, 0])) / el)
        right = max(1.0, float(np.max(und[:, 0])) / er)
        top = max(1.0, float(np.max(-und[:, 1])) / et)
        bottom = max(1.0, float(np.max(und[:, 1])) / eb)
        return Overscan(left, right, bottom, top, max(left, right, bottom, top), (el, er, eb, et))


# --------------------------------------------------------------------------------------------- lens file


@dataclass(frozen=True, slots=True)
class Calibration:
    """Where a lens file's numbers came from (all optional): tool, date (ISO text), command line, RMS in px."""

    tool: str | None = None
    date: str | None = None
    command: str | None = None
    rms_px: float | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class LensPoint:
    """One calibrated grid point: the lens at encoder state ``(zoom, focus)``; units as :class:`LensEvaluation`."""

    zoom: float
    focus: float
    focal_length_mm: float
    principal_point_offset_mm: tuple[float, float]
    distortion: BrownConrady
    entrance_pupil_offset_m: float
    focus_distance_m: float  # math.inf = infinity
    line: int | None = None

    def evaluation(self) -> LensEvaluation:
        """This point as a :class:`LensEvaluation`."""
        return LensEvaluation(
            self.focal_length_mm,
            self.principal_point_offset_mm,
            self.distortion,
            self.entrance_pupil_offset_m,
            self.focus_distance_m,
            self.zoom,
            self.focus,
        )


@dataclass(frozen=True, eq=False)
class LensFile:
    """A validated lens file.

    ``zoom_axis`` and ``focus_axis`` are the strictly increasing normalised encoder values of the grid;
    ``points[i][j]`` is the calibrated point at ``(zoom_axis[i], focus_axis[j])``. ``sensor_mm`` is the active
    sensor area ``[w, h]`` mm the calibration was made for.
    """

    name: str
    sensor_mm: tuple[float, float]
    zoom_axis: tuple[float, ...]
    focus_axis: tuple[float, ...]
    points: tuple[tuple[LensPoint, ...], ...]
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    calibration: Calibration | None = None
    path: Path | None = None
    _table: LensTable | None = field(default=None, init=False, repr=False)

    def point(self, zoom_index: int, focus_index: int) -> LensPoint:
        """The calibrated point at grid indices ``(zoom_index, focus_index)``."""
        return self.points[zoom_index][focus_index]

    def table(self, sensor_mm=None, *, overscan_subdivisions: int = 4) -> LensTable:
        """A new :class:`LensTable` (the per-frame fast path); with ``sensor_mm`` it also pre-samples overscan."""
        return LensTable(self, sensor_mm=sensor_mm, overscan_subdivisions=overscan_subdivisions)

    def evaluate(self, zoom: float, focus: float) -> LensEvaluation:
        """The lens at normalised encoders ``(zoom, focus)``: bilinear over the grid, clamped at its edges."""
        table = self._table
        if table is None:
            table = LensTable(self)
            object.__setattr__(self, "_table", table)
        return table.evaluate(zoom, focus)


# --------------------------------------------------------------------------------------------- fast path


def _locate(axis: list[float], x: float) -> tuple[int, float]:
    """Cell index and fraction of ``x`` on a strictly increasing axis, clamped to the ends."""
    if x != x:
        raise ValueError("encoder value is NaN")
    n = len(axis)
    if n == 1 or x <= axis[0]:
        return 0, 0.0
    if x >= axis[-1]:
        return n - 2, 1.0
    i = bisect.bisect_right(axis, x) - 1
    return i, (x - axis[i]) / (axis[i + 1] - axis[i])


def _overscan_axis(axis: tuple[float, ...], sub: int) -> list[float]:
    if len(axis) == 1:
        return [axis[0]]
    out: list[float] = []
    for a, b in zip(axis[:-1], axis[1:]):
        out.extend(a + (b - a) * k / sub for k in range(sub))
    out.append(axis[-1])
    return out


class LensTable:
    """Per-frame evaluation of a lens file: the grid packed into numpy arrays, a few microseconds per call.

    For every grid cell the four corner rows of the interpolated values (focal length, principal point,
    distortion, pupil offset, focus in dioptres) are stored side by side, so an evaluation is two bisections, one
    4-vector of bilinear weights and one small matrix product. The result equals :meth:`LensFile.evaluate`
    (bilinear, clamped at the edges; exactly the calibrated values at grid points).

    With ``sensor_mm`` the distortion overscan (:meth:`LensEvaluation.overscan`) is also pre-computed on the
    calibration grid refined ``overscan_subdivisions`` times per cell, and :meth:`overscan` interpolates its
    per-side factors bilinearly (exact at the samples, smooth between them).
    """

    def __init__(self, lens: LensFile, *, sensor_mm=None, overscan_subdivisions: int = 4) -> None:
        self.lens = lens
        self._z = [float(v) for v in lens.zoom_axis]
        self._f = [float(v) for v in lens.focus_axis]
        nz, nf = len(self._z), len(self._f)
        grid = np.empty((nz, nf, _NVALUES), dtype=np.float64)
        for i, row in enumerate(lens.points):
            for j, p in enumerate(row):
                d = p.distortion
                grid[i, j] = (
                    p.focal_length_mm,
                    p.principal_point_offset_mm[0],
                    p.principal_point_offset_mm[1],
                    d.k1, d.k2, d.k3, d.p1, d.p2,
                    p.entrance_pupil_offset_m,
                    0.0 if math.isinf(p.focus_distance_m) else 1.0 / p.focus_distance_m,
                )
        self.grid = grid
        """Calibrated values ``(nz, nf, 10)``: f, px, py, k1, k2, k3, p1, p2, pupil offset m, focus dioptres."""
        self._corners = self._pack(grid)
        self.sensor_mm: tuple[float, float] | None = None
        self._ov_z: list[float] = []
        self._ov_f: list[float] = []
        self._ov_corners: np.ndarray | None = None
        self._ov_extent_corners: np.ndarray | None = None
        if sensor_mm is not None:
            self._build_overscan(_sensor(sensor_mm), max(1, int(overscan_subdivisions)))

    @staticmethod
    def _pack(grid: np.ndarray) -> np.ndarray:
        """``(nz, nf, P)`` -> ``(max(nz-1,1), max(nf-1,1), 4, P)`` corner rows (00, 01, 10, 11) per cell."""
        g = grid
        if g.shape[0] == 1:
            g = np.concatenate([g, g], axis=0)
        if g.shape[1] == 1:
            g = np.concatenate([g, g], axis=1)
        return np.ascontiguousarray(np.stack([g[:-1, :-1], g[:-1, 1:], g[1:, :-1], g[1:, 1:]], axis=2))

    def values(self, zoom: float, focus: float) -> np.ndarray:
        """The raw interpolated row (10 floats, see :attr:`grid`) at normalised ``(zoom, focus)``, clamped."""
        i, u = _locate(self._z, zoom)
        j, v = _locate(self._f, focus)
        w = np.array(((1.0 - u) * (1.0 - v), (1.0 - u) * v, u * (1.0 - v), u * v))
        return w @ self._corners[i, j]

    def evaluate(self, zoom: float, focus: float) -> LensEvaluation:
        """The lens at normalised encoders ``(zoom, focus)`` (bilinear, clamped at the grid edges)."""
        f, px, py, k1, k2, k3, p1, p2, epo, dpt = self.values(zoom, focus).tolist()
        return LensEvaluation(
            f,
            (px, py),
            BrownConrady(k1, k2, k3, p1, p2),
            epo,
            math.inf if dpt <= 0.0 else 1.0 / dpt,
            float(zoom),
            float(focus),
        )

    # ------------------------------------------------------------------ overscan

    def _build_overscan(self, sensor: tuple[float, float], sub: int) -> None:
        self.sensor_mm = sensor
        self._ov_z = _overscan_axis(self.lens.zoom_axis, sub)
        self._ov_f = _overscan_axis(self.lens.focus_axis, sub)
        factors = np.empty((len(self._ov_z), len(self._ov_f), 4))
        extents = np.empty((len(self._ov_z), len(self._ov_f), 4))
        for i, z in enumerate(self._ov_z):
            for j, fo in enumerate(self._ov_f):
                o = self.evaluate(z, fo).overscan(sensor)
                factors[i, j] = (o.left, o.right, o.bottom, o.top)
                extents[i, j] = o.extents
        self._ov_corners = self._pack(factors)
        self._ov_extent_corners = self._pack(extents)

    def overscan(self, zoom: float, focus: float) -> Overscan:
        """Distortion overscan at ``(zoom, focus)`` for the table's ``sensor_mm``, interpolated from the samples."""
        if self._ov_corners is None or self._ov_extent_corners is None:
            raise ValueError("this LensTable was built without sensor_mm; pass sensor_mm to pre-sample overscan")
        i, u = _locate(self._ov_z, zoom)
        j, v = _locate(self._ov_f, focus)
        w = np.array(((1.0 - u) * (1.0 - v), (1.0 - u) * v, u * (1.0 - v), u * v))
        left, right, bottom, top = (w @ self._ov_corners[i, j]).tolist()
        ext = tuple((w @ self._ov_extent_corners[i, j]).tolist())
        return Overscan(left, right, bottom, top, max(left, right, bottom, top), ext)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- loader

_NAME = string()


def _text_or_date(ctx: Context, node: Node, path: str) -> str:
    if isinstance(node, ScalarNode):
        import yaml

        try:
            v = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
        except yaml.YAMLError:
            v = None
        if isinstance(v, (_dt.date, _dt.datetime)):
            return v.isoformat()
    return string()(ctx, node, path)


def _focus_distance(ctx: Context, node: Node, path: str) -> float:
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return math.inf
    try:
        return number(lo=0.0, lo_open=True)(ctx, node, path)
    except Invalid:
        raise Invalid(f"expected a focus distance in metres > 0, or null for infinity, got {describe(node)}") from None


def _axis(ctx: Context, r: MapReader, key: str) -> list[float] | None:
    values: list[float] = []
    ok = r.has(key)
    prev: float | None = None
    for _, n, p in r.items(key, min_len=1):
        v = ctx.convert(n, p, number(0.0, 1.0))
        if v is INVALID:
            ok = False
            continue
        if prev is not None and not v > prev:
            ctx.error(n, p, f"expected values strictly increasing, got {v:g} after {prev:g}")
            ok = False
        values.append(v)
        prev = v
    return values if ok and values else None


def _match(axis: list[float] | None, v: float) -> int | None:
    if axis is None:
        return None
    for i, a in enumerate(axis):
        if abs(a - v) <= 1e-9:
            return i
    return None


def _fmt(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _point(
    ctx: Context, node: Node, path: str, sensor: tuple[float, float] | None
) -> tuple[LensPoint | None, MapReader]:
    r = MapReader(ctx, node, path)
    zoom = r.req("zoom", number(0.0, 1.0))
    focus = r.req("focus", number(0.0, 1.0))
    f = r.req("focal_length_mm", number(lo=0.0, lo_open=True, hi=5000.0))
    pp = r.req("principal_point_offset_mm", vector(2, number(-50.0, 50.0), "[x, y] mm on the sensor (+x right, +y up), each within 50"))
    if pp is not INVALID and sensor is not None and not (abs(pp[0]) < sensor[0] / 2 and abs(pp[1]) < sensor[1] / 2):
        ctx.error(r.node_of("principal_point_offset_mm"), r.key_path("principal_point_offset_mm"),
                  f"expected an offset inside the sensor (|x| < {sensor[0] / 2:g}, |y| < {sensor[1] / 2:g} mm), got {list(pp)}")
        pp = INVALID
    dist = INVALID
    dr = r.sub("distortion")
    if dr is not None:
        k1 = dr.req("k1", number())
        k2 = dr.req("k2", number())
        k3 = dr.opt("k3", number(), 0.0)
        p1 = dr.opt("p1", number(-1.0, 1.0), 0.0)
        p2 = dr.opt("p2", number(-1.0, 1.0), 0.0)
        dr.done()
        if dr.ok and INVALID not in (k1, k2, k3, p1, p2):
            dist = BrownConrady(k1, k2, k3, p1, p2)
    epo = r.req("entrance_pupil_offset_m", number(-5.0, 5.0))
    fd = r.req("focus_distance_m", _focus_distance)
    r.done()
    if not r.ok or any(v is INVALID for v in (zoom, focus, f, pp, dist, epo, fd)):
        return None, r
    if sensor is not None:
        ext = LensEvaluation(f, pp).half_extents(sensor)
        corner = max(math.hypot(ext[a], ext[b]) for a in (0, 1) for b in (2, 3))
        fold = fold_radius(dist, 4.0 * corner)
        if fold is not None:
            reach = fold * (1.0 + fold**2 * (dist.k1 + fold**2 * (dist.k2 + fold**2 * dist.k3)))
            if reach <= corner:
                ctx.error(r.node_of("distortion"), r.key_path("distortion"),
                          f"expected a distortion that is one-to-one over the sensor: it folds over at normalised radius "
                          f"{fold:.3g} (distorted {reach:.3g}), inside the frame corner at {corner:.3g}")
                return None, r
    return LensPoint(zoom, focus, f, tuple(pp), dist, epo, fd, r.line), r  # type: ignore[arg-type]


def load_lens_file(path: str | Path, display: str | None = None) -> LensFile:
    """Read and validate a lens file; raises :class:`stagectl.core.errors.ConfigErrors` listing every problem as
    ``file:line: key: what was expected``."""
    ctx, root = load_document(path, display)
    top = MapReader(ctx, root, "")
    version = top.req("schema_version", integer())
    if version is not INVALID and version != SCHEMA_VERSION:
        ctx.error(top.node_of("schema_version"), "schema_version",
                  f"expected {SCHEMA_VERSION} (this stagectl reads lens schema {SCHEMA_VERSION}), got {version}")
        ctx.raise_if_errors()

    meta = top.sub("lens")
    name = make = model = serial = INVALID
    if meta is not None:
        name = meta.req("name", _NAME)
        make = meta.opt("make", _NAME)
        model = meta.opt("model", _NAME)
        serial = meta.opt("serial", string())
        meta.done()
    sensor = top.req("sensor_mm", vector(2, number(lo=1.0, hi=100.0), "[w, h] sensor size in mm, each 1..100"))
    sensor = None if sensor is INVALID else tuple(sensor)

    calibration = None
    cal = top.sub("calibration", required=False)
    if cal is not None:
        calibration = Calibration(
            tool=cal.opt("tool", _NAME),
            date=cal.opt("date", _text_or_date),
            command=cal.opt("command", _NAME),
            rms_px=cal.opt("rms_px", number(lo=0.0)),
            notes=cal.opt("notes", string()),
        )
        cal.done()

    dm = top.sub("distortion_model")
    if dm is not None:
        dm.req("model", one_of(*DISTORTION_MODELS))
        dm.req("direction", one_of(*DISTORTION_DIRECTIONS))
        dm.done()

    enc = top.sub("encoders")
    zoom_axis = focus_axis = None
    if enc is not None:
        zoom_axis = _axis(ctx, enc, "zoom")
        focus_axis = _axis(ctx, enc, "focus")
        enc.done()

    points_node = top.node_of("points")
    raw: list[tuple[LensPoint, MapReader, str]] = []
    for _, n, p in top.items("points", min_len=1):
        pt, reader = _point(ctx, n, p, sensor)
        if pt is not None:
            raw.append((pt, reader, p))
    top.done()

    grid: dict[tuple[int, int], tuple[LensPoint, MapReader, str]] = {}
    if zoom_axis is not None and focus_axis is not None:
        for pt, reader, p in raw:
            i = _match(zoom_axis, pt.zoom)
            j = _match(focus_axis, pt.focus)
            if i is None:
                ctx.error(reader.node_of("zoom"), f"{p}.zoom", f"expected one of the encoders.zoom values ({_fmt(zoom_axis)}), got {pt.zoom:g}")
            if j is None:
                ctx.error(reader.node_of("focus"), f"{p}.focus", f"expected one of the encoders.focus values ({_fmt(focus_axis)}), got {pt.focus:g}")
            if i is None or j is None:
                continue
            if (i, j) in grid:
                ctx.error(reader.line, p, f"a second point for (zoom {pt.zoom:g}, focus {pt.focus:g}); the first is at line {grid[(i, j)][0].line}")
                continue
            grid[(i, j)] = (pt, reader, p)
    ctx.raise_if_errors()
    assert zoom_axis is not None and focus_axis is not None and sensor is not None

    nz, nf = len(zoom_axis), len(focus_axis)
    missing = [(zoom_axis[i], focus_axis[j]) for i in range(nz) for j in range(nf) if (i, j) not in grid]
    if missing:
        listed = "; ".join(f"(zoom {z:g}, focus {fo:g})" for z, fo in missing[:6]) + ("; ..." if len(missing) > 6 else "")
        ctx.error(points_node, "points",
                  f"the grid is not rectangular: expected one point for each of the {nz} x {nf} = {nz * nf} pairs of "
                  f"encoders.zoom x encoders.focus values, {len(missing)} missing: {listed}")
        ctx.raise_if_errors()

    # physical directions of the encoders (OpenTrackIO): zoom 0 = wide .. 1 = tele, focus 0 = infinity .. 1 = closest
    for j in range(nf):
        for i in range(1, nz):
            prev, (pt, reader, p) = grid[(i - 1, j)][0], grid[(i, j)]
            if not pt.focal_length_mm > prev.focal_length_mm:
                ctx.error(reader.node_of("focal_length_mm"), f"{p}.focal_length_mm",
                          f"expected a focal length longer than at zoom {prev.zoom:g} ({prev.focal_length_mm:g} mm), "
                          f"got {pt.focal_length_mm:g}: zoom encoders run 0 = wide .. 1 = tele")
    for i in range(nz):
        for j in range(1, nf):
            prev, (pt, reader, p) = grid[(i, j - 1)][0], grid[(i, j)]
            if not pt.focus_distance_m < prev.focus_distance_m:
                ctx.error(reader.node_of("focus_distance_m"), f"{p}.focus_distance_m",
                          f"expected a focus distance shorter than at focus {prev.focus:g} ({prev.focus_distance_m:g} m), "
                          f"got {pt.focus_distance_m:g}: focus encoders run 0 = infinity .. 1 = closest")
    ctx.raise_if_errors()

    points = tuple(tuple(grid[(i, j)][0] for j in range(nf)) for i in range(nz))
    return LensFile(
        name=name,
        sensor_mm=sensor,  # type: ignore[arg-type]
        zoom_axis=tuple(zoom_axis),
        focus_axis=tuple(focus_axis),
        points=points,
        make=make,
        model=model,
        serial=serial,
        calibration=calibration,
        path=Path(path),
    )

