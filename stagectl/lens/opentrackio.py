"""Lens values to and from OpenTrackIO ``lens`` fields (plain dicts with OpenTrackIO's camelCase keys) and
:class:`stagectl.core.sample.LensState`.

Units on the OpenTrackIO side: ``pinholeFocalLength`` mm, ``focusDistance`` m, ``entrancePupilOffset`` m (positive
toward the subject, like ours), ``projectionOffset`` / ``distortionOffset`` mm on the sensor, encoders 0..1
(zoom 0 = wide, focus 0 = infinity).

Distortion coefficients (PROTOCOLS.md §2.4, OpenLensIO). OpenTrackIO coefficients apply to the image radius in
**mm on the sensor**, ours (OpenCV) to the normalised radius ``r_norm = r_mm / f``. A coefficient of ``r^(2n)``
therefore scales by ``f^(2n)``; the tangential terms are quadratic in the coordinates and scale by ``f``::

    k1 = l1 f^2    k2 = l3 f^4    k3 = l5 f^6    p1 = q1 f    p2 = q2 f

The radial list uses OpenLensIO's alternating layout ``[l1 .. l6]``: odd entries (l1, l3, l5) are the numerator
of the rational radial factor ``R = (1 + l1 r^2 + l3 r^4 + l5 r^6) / (1 + l2 r^2 + l4 r^4 + l6 r^6)``, even entries
the denominator (Epic's ``LiveLinkOpenTrackIOConversions.cpp`` maps ``l1..l6 -> k1, k4, k2, k5, k3, k6``). We
always send six radial values (denominator zero) because Unreal ignores shorter lists; a shorter list received
is padded with zeros. The SMPTE RIS "Conversion of OpenCV to OpenTrackIO" paper states ``q = p / f^2`` for the
tangential terms; that is dimensionally inconsistent (see opentrackio-proof SQ-CV-06) and we follow Epic's
``p = q f``, which is what a displacement in mm requires.

Direction. "Brown-Conrady U-D" is OpenCV's direction (undistorted -> distorted) and converts exactly when the
denominator terms and ``distortionOffset`` are zero. "Brown-Conrady D-U" (OpenTrackIO's default when ``model`` is
absent) applies the same polynomial to the *distorted* point and returns the undistorted one: a different lens,
not a sign flip. It is converted by a **linear least-squares fit** of the other direction's coefficients over a
grid of points covering the sensor (41 x 41 by default; distorted points for D-U sources, the undistorted frame
for U-D sources that are not exact), and the fit's residual is reported in mm on the sensor
(:class:`DistortionFit`). A non-zero ``distortionOffset`` (distortion centre relative to the projection centre)
or a rational radial term is fitted the same way.

The y axis. OpenTrackIO does not state which way the sensor y axis of ``projectionOffset``, ``distortionOffset``
and the tangential terms points. Epic's converter (``cy = 0.5 + projectionOffset.y / height`` into a top-left
normalised image) and the SMPTE RIS conversion paper (``dPy = (h / h_shader) (cy - h_shader / 2)`` from OpenCV's
``cy``) both read it as **down**, like OpenCV, so ``Y_DOWN = True`` is the default here: our principal-point
``y`` (up) is ``-projectionOffset.y`` and ``p1`` keeps its sign. Pass ``y_down=False`` for a sender whose y
points up (then ``p1`` changes sign, because mirroring y flips the ``p1`` terms of Brown-Conrady).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from stagectl.lens.distortion import BrownConrady, fit_forward, fit_reverse, undistort
from stagectl.lens.lensfile import LensEvaluation

__all__ = [
    "BROWN_CONRADY_UD",
    "BROWN_CONRADY_DU",
    "DEFAULT_MODEL",
    "Y_DOWN",
    "DistortionFit",
    "OpenTrackIOLens",
    "distortion_to_opentrackio",
    "distortion_from_opentrackio",
    "to_opentrackio",
    "from_opentrackio",
    "to_lens_state",
    "from_lens_state",
]

BROWN_CONRADY_UD = "Brown-Conrady U-D"
BROWN_CONRADY_DU = "Brown-Conrady D-U"
DEFAULT_MODEL = BROWN_CONRADY_DU
"""OpenTrackIO's model when a ``distortion[]`` entry has no ``model`` key."""
Y_DOWN = True
"""Default reading of OpenTrackIO's sensor y axis (see the module docstring)."""
_MODELS = (BROWN_CONRADY_UD, BROWN_CONRADY_DU)
_FIT_GRID = 41


@dataclass(frozen=True, slots=True)
class DistortionFit:
    """Report of a distortion converted by least-squares fit instead of exactly.

    ``source`` and ``target`` name the models (e.g. ``"Brown-Conrady D-U"`` -> ``"Brown-Conrady U-D"``); ``rms_mm``
    and ``max_mm`` are the Euclidean residuals of the fitted map against the source map on the sensor, in mm
    (divide by the pixel pitch for pixels); ``samples`` is the number of grid points fitted.
    """

    source: str
    target: str
    rms_mm: float
    max_mm: float
    samples: int


@dataclass(frozen=True, slots=True)
class OpenTrackIOLens:
    """An OpenTrackIO lens block read into stagectl terms.

    ``evaluation`` is the lens (our units and directions); ``fit`` is set when the distortion had to be fitted;
    ``overscan`` is the used distortion entry's ``overscan`` factor when sent; ``notes`` lists what was assumed or
    not represented (defaults taken, other distortion entries ignored, ...).
    """

    evaluation: LensEvaluation
    fit: DistortionFit | None = None
    overscan: float | None = None
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------- helpers


def _num(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"OpenTrackIO lens.{key}: expected a finite number, got {value!r}")
    return float(value)


def _xy(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, Mapping) or "x" not in value or "y" not in value:
        raise ValueError(f"OpenTrackIO lens.{key}: expected {{x, y}}, got {value!r}")
    return _num(value["x"], f"{key}.x"), _num(value["y"], f"{key}.y")


def _coeffs(value: Any, key: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"OpenTrackIO lens.{key}: expected a non-empty list of numbers, got {value!r}")
    return tuple(_num(v, f"{key}[{i}]") for i, v in enumerate(value))


def _sample_grid(ev: LensEvaluation, sensor_mm, n: int) -> np.ndarray:
    """``n x n`` normalised OpenCV points (y down) covering the sensor about the principal point."""
    el, er, eb, et = ev.half_extents(sensor_mm)
    xs = np.linspace(-el, er, n)
    ys = np.linspace(-et, eb, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _to_mm(xy: np.ndarray, f: float, y_down: bool) -> np.ndarray:
    """Normalised OpenCV (y down) -> OpenTrackIO mm about the principal point."""
    return np.stack([xy[:, 0] * f, xy[:, 1] * f * (1.0 if y_down else -1.0)], axis=1)


def _from_mm(e: np.ndarray, f: float, y_down: bool) -> np.ndarray:
    return np.stack([e[:, 0] / f, e[:, 1] / f * (1.0 if y_down else -1.0)], axis=1)


def _otio_map(e: np.ndarray, radial: tuple[float, ...], tangential: tuple[float, ...], centre: tuple[float, float]) -> np.ndarray:
    """OpenLensIO's Brown-Conrady map in mm: ``R(r) p + T(p) + c`` with ``p = e - c`` (direction as the entry says)."""
    l = list(radial) + [0.0] * (6 - len(radial))
    q1, q2 = (list(tangential) + [0.0, 0.0])[:2]
    px = e[:, 0] - centre[0]
    py = e[:, 1] - centre[1]
    r2 = px * px + py * py
    num = 1.0 + r2 * (l[0] + r2 * (l[2] + r2 * l[4]))
    den = 1.0 + r2 * (l[1] + r2 * (l[3] + r2 * l[5]))
    R = num / den
    tx = 2.0 * q1 * px * py + q2 * (r2 + 2.0 * px * px)
    ty = q1 * (r2 + 2.0 * py * py) + 2.0 * q2 * px * py
    return np.stack([R * px + tx + centre[0], R * py + ty + centre[1]], axis=1)


# --------------------------------------------------------------------------------------------- distortion


def distortion_to_opentrackio(
    distortion: BrownConrady,
    focal_length_mm: float,
    *,
    model: str = BROWN_CONRADY_UD,
    sensor_mm=None,
    principal_point_offset_mm: tuple[float, float] = (0.0, 0.0),
    y_down: bool = Y_DOWN,
    grid: int = _FIT_GRID,
) -> tuple[dict[str, Any], DistortionFit | None]:
    """One OpenTrackIO ``distortion[]`` entry ``{model, radial[6], tangential[2]}`` for our U-D coefficients.

    ``model = "Brown-Conrady U-D"`` is exact (``l1 = k1 / f^2``, ``l3 = k2 / f^4``, ``l5 = k3 / f^6``,
    ``l2 = l4 = l6 = 0``, ``q = p / f``) and returns ``fit = None``. ``"Brown-Conrady D-U"`` fits reverse
    coefficients over the sensor ``sensor_mm`` (required then) and returns the fit report.
    """
    f = float(focal_length_mm)
    if not f > 0.0:
        raise ValueError(f"expected a focal length > 0 mm, got {focal_length_mm!r}")
    if model not in _MODELS:
        raise ValueError(f"expected model {BROWN_CONRADY_UD!r} or {BROWN_CONRADY_DU!r}, got {model!r}")
    fit: DistortionFit | None = None
    d = distortion
    if model == BROWN_CONRADY_DU:
        if sensor_mm is None:
            raise ValueError("converting to 'Brown-Conrady D-U' fits over the sensor: pass sensor_mm")
        ev = LensEvaluation(f, tuple(principal_point_offset_mm), distortion)  # type: ignore[arg-type]
        xd = _sample_grid(ev, sensor_mm, grid)
        xu = undistort(xd, distortion)
        res = fit_reverse(xd, xu)
        d = res.distortion
        fit = DistortionFit(BROWN_CONRADY_UD, BROWN_CONRADY_DU, res.rms * f, res.max * f, res.samples)
    sign = 1.0 if y_down else -1.0
    entry = {
        "model": model,
        "radial": [d.k1 / f**2, 0.0, d.k2 / f**4, 0.0, d.k3 / f**6, 0.0],
        "tangential": [sign * d.p1 / f, d.p2 / f],
    }
    return entry, fit


def distortion_from_opentrackio(
    entry: Mapping[str, Any],
    focal_length_mm: float,
    *,
    sensor_mm=None,
    principal_point_offset_mm: tuple[float, float] = (0.0, 0.0),
    distortion_offset_mm: tuple[float, float] = (0.0, 0.0),
    y_down: bool = Y_DOWN,
    grid: int = _FIT_GRID,
) -> tuple[BrownConrady, DistortionFit | None]:
    """Our U-D coefficients for one OpenTrackIO ``distortion[]`` entry (mm-scaled, OpenLensIO layout).

    ``distortion_offset_mm`` is ``lens.distortionOffset`` as sent (the distortion centre relative to the projection
    centre). Exact for a "Brown-Conrady U-D" entry with no denominator terms and a zero distortion offset;
    otherwise (D-U, rational, decentred) fitted over the sensor ``sensor_mm`` (required then), with the report.
    """
    f = float(focal_length_mm)
    if not f > 0.0:
        raise ValueError(f"expected a focal length > 0 mm, got {focal_length_mm!r}")
    model = entry.get("model", DEFAULT_MODEL)
    if model not in _MODELS:
        raise ValueError(f"OpenTrackIO lens.distortion.model: expected {BROWN_CONRADY_UD!r} or {BROWN_CONRADY_DU!r}, got {model!r}")
    radial = _coeffs(entry.get("radial"), "distortion.radial")
    if len(radial) > 6:
        raise ValueError(f"OpenTrackIO lens.distortion.radial: expected at most 6 coefficients, got {len(radial)}")
    tangential = _coeffs(entry["tangential"], "distortion.tangential") if entry.get("tangential") is not None else (0.0, 0.0)
    if len(tangential) > 2:
        raise ValueError(f"OpenTrackIO lens.distortion.tangential: expected at most 2 coefficients, got {len(tangential)}")
    l = list(radial) + [0.0] * (6 - len(radial))
    q = list(tangential) + [0.0] * (2 - len(tangential))
    centre = (float(distortion_offset_mm[0]), float(distortion_offset_mm[1]))
    sign = 1.0 if y_down else -1.0
    exact = model == BROWN_CONRADY_UD and l[1] == l[3] == l[5] == 0.0 and centre == (0.0, 0.0)
    if exact:
        return BrownConrady(l[0] * f**2, l[2] * f**4, l[4] * f**6, sign * q[0] * f, q[1] * f), None
    if sensor_mm is None:
        raise ValueError(f"converting a {model!r} entry {'with denominator terms or a distortion offset ' if model == BROWN_CONRADY_UD else ''}"
                         f"fits over the sensor: pass sensor_mm")
    ev = LensEvaluation(f, tuple(principal_point_offset_mm))  # type: ignore[arg-type]
    pts = _sample_grid(ev, sensor_mm, grid)
    mapped = _from_mm(_otio_map(_to_mm(pts, f, y_down), tuple(l), tuple(q), centre), f, y_down)
    if model == BROWN_CONRADY_DU:
        res = fit_forward(mapped, pts)  # pts are distorted, mapped undistorted
    else:
        res = fit_forward(pts, mapped)  # pts are undistorted, mapped distorted
    return res.distortion, DistortionFit(model, BROWN_CONRADY_UD, res.rms * f, res.max * f, res.samples)


# --------------------------------------------------------------------------------------------- lens block


def to_opentrackio(
    evaluation: LensEvaluation,
    *,
    model: str = BROWN_CONRADY_UD,
    sensor_mm=None,
    overscan: float | None = None,
    y_down: bool = Y_DOWN,
) -> dict[str, Any]:
    """An OpenTrackIO ``lens`` block (camelCase dict) for a lens evaluation.

    Keys: ``pinholeFocalLength`` mm, ``projectionOffset`` mm (y per ``y_down``), ``entrancePupilOffset`` m,
    ``distortion`` (one entry, see :func:`distortion_to_opentrackio`; with ``overscan`` when given, >= 1),
    ``focusDistance`` m (left out when infinite or unknown: OpenTrackIO requires > 0 and has no infinity) and
    ``encoders`` ``{zoom, focus}`` when known. The fit report of a D-U conversion is not part of the block; call
    :func:`distortion_to_opentrackio` for it.
    """
    ev = evaluation
    entry, _ = distortion_to_opentrackio(
        ev.distortion, ev.focal_length_mm, model=model, sensor_mm=sensor_mm,
        principal_point_offset_mm=ev.principal_point_offset_mm, y_down=y_down,
    )
    if overscan is not None:
        if not overscan >= 1.0:
            raise ValueError(f"expected an overscan factor >= 1, got {overscan!r}")
        entry["overscan"] = float(overscan)
    px, py = ev.principal_point_offset_mm
    out: dict[str, Any] = {
        "pinholeFocalLength": float(ev.focal_length_mm),
        "projectionOffset": {"x": float(px), "y": float(-py if y_down else py)},
        "entrancePupilOffset": float(ev.entrance_pupil_offset_m),
        "distortion": [entry],
    }
    if ev.focus_distance_m is not None and math.isfinite(ev.focus_distance_m) and ev.focus_distance_m > 0.0:
        out["focusDistance"] = float(ev.focus_distance_m)
    encoders = {k: float(v) for k, v in (("zoom", ev.zoom), ("focus", ev.focus)) if v is not None}
    if encoders:
        out["encoders"] = encoders
    return out


def from_opentrackio(lens: Mapping[str, Any], *, sensor_mm=None, y_down: bool = Y_DOWN) -> OpenTrackIOLens:
    """Read an OpenTrackIO ``lens`` block (camelCase dict) into a :class:`LensEvaluation`.

    ``pinholeFocalLength`` is required (the distortion scaling needs it). The first ``distortion[]`` entry with a
    Brown-Conrady model (absent = "Brown-Conrady D-U") is used; other entries are listed in ``notes``.
    ``sensor_mm`` (e.g. from ``static.camera.activeSensorPhysicalDimensions``) is needed when the distortion must
    be fitted (see :func:`distortion_from_opentrackio`). Missing ``projectionOffset`` and ``entrancePupilOffset``
    read as 0 (noted); missing ``focusDistance`` as unknown (None).
    """
    if not isinstance(lens, Mapping):
        raise ValueError(f"OpenTrackIO lens: expected an object, got {lens!r}")
    notes: list[str] = []
    if "pinholeFocalLength" not in lens:
        raise ValueError("OpenTrackIO lens.pinholeFocalLength is required to convert the lens")
    f = _num(lens["pinholeFocalLength"], "pinholeFocalLength")
    if not f > 0.0:
        raise ValueError(f"OpenTrackIO lens.pinholeFocalLength: expected > 0 mm, got {f}")
    if "projectionOffset" in lens:
        ox, oy = _xy(lens["projectionOffset"], "projectionOffset")
        pp = (ox, -oy if y_down else oy)
    else:
        pp = (0.0, 0.0)
        notes.append("projectionOffset not sent: principal point at the sensor centre assumed")
    if "entrancePupilOffset" in lens:
        epo = _num(lens["entrancePupilOffset"], "entrancePupilOffset")
    else:
        epo = 0.0
        notes.append("entrancePupilOffset not sent: 0 m assumed")
    fd = _num(lens["focusDistance"], "focusDistance") if "focusDistance" in lens else None
    enc = lens.get("encoders") or {}
    if not isinstance(enc, Mapping):
        raise ValueError(f"OpenTrackIO lens.encoders: expected an object, got {enc!r}")
    zoom = _num(enc["zoom"], "encoders.zoom") if "zoom" in enc else None
    focus = _num(enc["focus"], "encoders.focus") if "focus" in enc else None
    doff = _xy(lens["distortionOffset"], "distortionOffset") if "distortionOffset" in lens else (0.0, 0.0)

    distortion = BrownConrady()
    fit: DistortionFit | None = None
    overscan: float | None = None
    entries = lens.get("distortion") or []
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"OpenTrackIO lens.distortion: expected a list, got {entries!r}")
    used = None
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise ValueError(f"OpenTrackIO lens.distortion[{i}]: expected an object, got {e!r}")
        m = e.get("model", DEFAULT_MODEL)
        if used is None and m in _MODELS:
            used = i
            distortion, fit = distortion_from_opentrackio(
                e, f, sensor_mm=sensor_mm, principal_point_offset_mm=pp, distortion_offset_mm=doff, y_down=y_down,
            )
            if e.get("overscan") is not None:
                overscan = _num(e["overscan"], f"distortion[{i}].overscan")
        else:
            notes.append(f"distortion[{i}] ({m}) ignored: only the first Brown-Conrady entry is used")
    if not entries:
        notes.append("no distortion sent: a distortion-free lens assumed")
    if used is None and entries:
        notes.append("no Brown-Conrady distortion entry: a distortion-free lens assumed")
    if fit is not None:
        notes.append(f"distortion fitted from {fit.source} to {fit.target}: residual rms {fit.rms_mm:.3g} mm, max {fit.max_mm:.3g} mm")
    ev = LensEvaluation(f, pp, distortion, epo, fd, zoom, focus)
    return OpenTrackIOLens(ev, fit, overscan, tuple(notes))


# --------------------------------------------------------------------------------------------- LensState


def to_lens_state(
    evaluation: LensEvaluation,
    *,
    model: str = BROWN_CONRADY_UD,
    sensor_mm=None,
    overscan: float | None = None,
    y_down: bool = Y_DOWN,
):
    """A :class:`stagectl.core.sample.LensState` holding what :func:`to_opentrackio` would send (values as the
    protocol sends them: mm-scaled coefficients, projection offset with OpenTrackIO's y)."""
    from stagectl.core.sample import Distortion, LensEncoders, LensState

    block = to_opentrackio(evaluation, model=model, sensor_mm=sensor_mm, overscan=overscan, y_down=y_down)
    dist = tuple(
        Distortion(tuple(e["radial"]), tuple(e["tangential"]), e.get("overscan"), e["model"]) for e in block["distortion"]
    )
    enc = block.get("encoders")
    po = block["projectionOffset"]
    return LensState(
        focal_length_mm=block["pinholeFocalLength"],
        focus_distance_m=block.get("focusDistance"),
        entrance_pupil_offset_m=block["entrancePupilOffset"],
        encoders=LensEncoders(focus=enc.get("focus"), zoom=enc.get("zoom")) if enc else None,
        distortion=dist,
        projection_offset_mm=(po["x"], po["y"]),
    )


def from_lens_state(state, *, sensor_mm=None, y_down: bool = Y_DOWN) -> OpenTrackIOLens:
    """Read a :class:`stagectl.core.sample.LensState` (protocol values) like :func:`from_opentrackio`."""
    block: dict[str, Any] = {}
    if state.focal_length_mm is not None:
        block["pinholeFocalLength"] = state.focal_length_mm
    if state.focus_distance_m is not None:
        block["focusDistance"] = state.focus_distance_m
    if state.entrance_pupil_offset_m is not None:
        block["entrancePupilOffset"] = state.entrance_pupil_offset_m
    if state.projection_offset_mm is not None:
        block["projectionOffset"] = {"x": state.projection_offset_mm[0], "y": state.projection_offset_mm[1]}
    if state.distortion_offset_mm is not None:
        block["distortionOffset"] = {"x": state.distortion_offset_mm[0], "y": state.distortion_offset_mm[1]}
    if state.encoders is not None:
        block["encoders"] = {k: v for k, v in (("zoom", state.encoders.zoom), ("focus", state.encoders.focus)) if v is not None}
    if state.distortion:
        block["distortion"] = [
            {
                "model": d.model,
                "radial": list(d.radial),
                **({"tangential": list(d.tangential)} if d.tangential is not None else {}),
                **({"overscan": d.overscan} if d.overscan is not None else {}),
            }
            for d in state.distortion
        ]
    return from_opentrackio(block, sensor_mm=sensor_mm, y_down=y_down)
