"""Lens files: the example loads, evaluation is bilinear (checked against an independent computation), the
distortion model is OpenCV's (checked against cv2), FOV / K / overscan follow docs/conventions.md, OpenTrackIO
conversions scale as PROTOCOLS.md §2.4 says, and every kind of mistake in a lens file is reported with its file,
line and key."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stagectl.core.errors import ConfigErrors
from stagectl.core.sample import LensState
from stagectl.lens import BrownConrady, DistortionError, LensEvaluation, LensTable, load_lens_file
from stagectl.lens import opentrackio as oti
from stagectl.lens.distortion import distort, undistort

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "stages" / "lenses" / "zoom_24-70.yaml"
TESTDATA = Path(__file__).resolve().parent / "data"
OTIO_EXAMPLES = TESTDATA / "opentrackio" / "v1.0.1" / "examples"
S35 = (24.89, 14.0)


@pytest.fixture(scope="module")
def lens():
    return load_lens_file(EXAMPLE)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


# ---------------------------------------------------------------------------------------------- loading


def test_example_lens_file_loads(lens, raw) -> None:
    assert lens.name == raw["lens"]["name"]
    assert lens.sensor_mm == tuple(raw["sensor_mm"])
    assert lens.zoom_axis == tuple(raw["encoders"]["zoom"]) and lens.focus_axis == tuple(raw["encoders"]["focus"])
    assert len(lens.points) == 6 and all(len(row) == 4 for row in lens.points)
    assert lens.calibration is not None and lens.calibration.date == "2025-01-15"
    for p in raw["points"]:
        i, j = lens.zoom_axis.index(p["zoom"]), lens.focus_axis.index(p["focus"])
        pt = lens.point(i, j)
        assert pt.focal_length_mm == p["focal_length_mm"]
        assert pt.distortion.as_tuple() == tuple(p["distortion"][k] for k in ("k1", "k2", "k3", "p1", "p2"))
        assert pt.focus_distance_m == (math.inf if p["focus_distance_m"] is None else p["focus_distance_m"])
    # realistic: barrel at the wide end, (near) zero or pincushion at the long end, pupil moving forward
    assert lens.point(0, 0).distortion.k1 < -0.05 and lens.point(5, 0).distortion.k1 > -0.02
    assert lens.point(5, 0).entrance_pupil_offset_m > lens.point(0, 0).entrance_pupil_offset_m


# ---------------------------------------------------------------------------------------------- evaluation


def _by_hand(raw: dict, zoom: float, focus: float) -> dict:
    """Bilinear interpolation written independently: plain loops over the YAML values, clamped at the edges,
    focus distance interpolated in dioptres."""
    zs, fs = raw["encoders"]["zoom"], raw["encoders"]["focus"]
    pts = {(p["zoom"], p["focus"]): p for p in raw["points"]}

    def cell(axis, x):
        x = min(max(x, axis[0]), axis[-1])
        for k in range(len(axis) - 1):
            if axis[k] <= x <= axis[k + 1]:
                return k, (x - axis[k]) / (axis[k + 1] - axis[k])
        raise AssertionError

    i, u = cell(zs, zoom)
    j, v = cell(fs, focus)

    def value(p, key):
        if key in ("k1", "k2", "k3", "p1", "p2"):
            return p["distortion"][key]
        if key in ("px", "py"):
            return p["principal_point_offset_mm"][0 if key == "px" else 1]
        if key == "dioptre":
            return 0.0 if p["focus_distance_m"] is None else 1.0 / p["focus_distance_m"]
        return p[key]

    out = {}
    for key in ("focal_length_mm", "px", "py", "k1", "k2", "k3", "p1", "p2", "entrance_pupil_offset_m", "dioptre"):
        a = value(pts[(zs[i], fs[j])], key)
        b = value(pts[(zs[i], fs[j + 1])], key)
        c = value(pts[(zs[i + 1], fs[j])], key)
        d = value(pts[(zs[i + 1], fs[j + 1])], key)
        out[key] = (1 - u) * ((1 - v) * a + v * b) + u * ((1 - v) * c + v * d)
    return out


def _as_dict(ev: LensEvaluation) -> dict:
    d = ev.distortion
    return {
        "focal_length_mm": ev.focal_length_mm,
        "px": ev.principal_point_offset_mm[0],
        "py": ev.principal_point_offset_mm[1],
        "k1": d.k1, "k2": d.k2, "k3": d.k3, "p1": d.p1, "p2": d.p2,
        "entrance_pupil_offset_m": ev.entrance_pupil_offset_m,
        "dioptre": 0.0 if math.isinf(ev.focus_distance_m) else 1.0 / ev.focus_distance_m,
    }


def test_bilinear_matches_an_independent_computation(lens, raw) -> None:
    rng = np.random.default_rng(7)
    table = LensTable(lens)
    states = list(rng.uniform(-0.1, 1.1, size=(200, 2))) + [(0.1, 0.2), (0.5, 0.0), (1.0, 0.5)]
    for zoom, focus in states:
        want = _by_hand(raw, float(zoom), float(focus))
        for ev in (lens.evaluate(zoom, focus), table.evaluate(zoom, focus)):
            got = _as_dict(ev)
            for key, value in want.items():
                assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (zoom, focus, key)
    # between two finite focus distances the dioptre mix is not the metre mix: 3 m and 1.2 m -> 1/(0.5/3 + 0.5/1.2)
    mid = lens.evaluate(0.0, 0.525)
    assert mid.focus_distance_m == pytest.approx(1.0 / (0.5 / 3.0 + 0.5 / 1.2), rel=1e-12)


def test_grid_points_evaluate_to_exactly_their_values(lens) -> None:
    table = LensTable(lens)
    for row in lens.points:
        for p in row:
            for ev in (lens.evaluate(p.zoom, p.focus), table.evaluate(p.zoom, p.focus)):
                assert ev.focal_length_mm == p.focal_length_mm
                assert ev.principal_point_offset_mm == p.principal_point_offset_mm
                assert ev.distortion == p.distortion
                assert ev.entrance_pupil_offset_m == p.entrance_pupil_offset_m
                if math.isinf(p.focus_distance_m):
                    assert math.isinf(ev.focus_distance_m)
                else:
                    assert ev.focus_distance_m == pytest.approx(p.focus_distance_m, rel=1e-15)


def test_evaluation_is_clamped_at_the_grid_edges(lens) -> None:
    assert lens.evaluate(-0.5, 2.0).focal_length_mm == lens.point(0, 3).focal_length_mm
    assert lens.evaluate(1.7, -1.0).distortion == lens.point(5, 0).distortion
    with pytest.raises(ValueError):
        lens.evaluate(math.nan, 0.0)


# ---------------------------------------------------------------------------------------------- distortion

CASES = [
    BrownConrady(-0.118, 0.031, -0.0032, 0.00011, -0.00007),
    BrownConrady(0.012, -0.005, -0.0002, 0.00005, -0.00003),
    BrownConrady(-0.3, 0.09, -0.01, 0.001, 0.0015),
]


@pytest.mark.parametrize("d", CASES)
def test_distort_matches_cv2_project_points(d: BrownConrady) -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(-0.6, 0.6, size=(500, 2))
    K = np.array([[2893.7, 0.0, 2041.3], [0.0, 2890.1, 1093.6], [0.0, 0.0, 1.0]])
    obj = np.column_stack([xy, np.ones(len(xy))])
    px, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), K, d.opencv())
    ours = distort(xy, d) @ K[:2, :2].T + K[:2, 2]
    np.testing.assert_allclose(ours, px[:, 0, :], rtol=0, atol=1e-9)


@pytest.mark.parametrize("d", CASES)
def test_undistort_matches_cv2_and_round_trips(d: BrownConrady) -> None:
    rng = np.random.default_rng(2)
    K = np.array([[2000.0, 0.0, 960.0], [0.0, 2000.0, 540.0], [0.0, 0.0, 1.0]])
    xd = rng.uniform(-0.55, 0.55, size=(500, 2))
    ours = undistort(xd, d)
    pix = (xd * 2000.0 + [960.0, 540.0]).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 500, 1e-15)
    ref = cv2.undistortPointsIter(pix, K, d.opencv(), None, None, crit)[:, 0, :]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    # round trip in pixels
    np.testing.assert_allclose(distort(ours, d) * 2000.0, xd * 2000.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(undistort(distort(xd, d), d), xd, rtol=0, atol=1e-9)


def test_undistort_beyond_the_fold_raises() -> None:
    d = BrownConrady(k1=-1.0)  # r (1 - r^2) peaks at r = 0.577, distorted radius 0.385
    with pytest.raises(DistortionError):
        undistort(np.array([[0.5, 0.0]]), d)


# ---------------------------------------------------------------------------------------------- FOV, K, frustum


def test_fov_without_distortion_is_the_pinhole_angle() -> None:
    ev = LensEvaluation(35.0)
    fov = ev.fov(S35)
    assert fov.horizontal_deg == pytest.approx(math.degrees(2 * math.atan(S35[0] / (2 * 35.0))), rel=1e-14)
    assert fov.vertical_deg == pytest.approx(math.degrees(2 * math.atan(S35[1] / (2 * 35.0))), rel=1e-14)
    off = LensEvaluation(35.0, (0.5, -0.3)).fov(S35)
    # principal point right of centre: less of the sensor on the right; +y up and py < 0: more of it above
    assert off.left_deg == pytest.approx(math.degrees(math.atan((S35[0] / 2 + 0.5) / 35.0)))
    assert off.right_deg == pytest.approx(math.degrees(math.atan((S35[0] / 2 - 0.5) / 35.0)))
    assert off.top_deg == pytest.approx(math.degrees(math.atan((S35[1] / 2 + 0.3) / 35.0)))
    assert off.bottom_deg == pytest.approx(math.degrees(math.atan((S35[1] / 2 - 0.3) / 35.0)))
    assert off.horizontal_deg == pytest.approx(off.left_deg + off.right_deg)


def test_intrinsics_follow_the_frustum_convention() -> None:
    f, (px, py), (w, h) = 32.0, (0.41, 0.27), (4096, 2304)
    ev = LensEvaluation(f, (px, py))
    K = ev.intrinsics((w, h), S35)
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y, z = rng.uniform(-1, 1), rng.uniform(2, 9), rng.uniform(-1, 1)  # camera frame: x right, y forward, z up
        # by hand: the point lands f * x/y mm right and f * z/y mm up of the principal point on the sensor
        sx = f * x / y + px + S35[0] / 2  # mm from the sensor's left edge
        sz = S35[1] / 2 - (f * z / y + py)  # mm from the sensor's top edge
        want = (sx / S35[0] * w, sz / S35[1] * h)
        p = K @ np.array([x, -z, y])  # OpenCV frame: x right, y down, z forward
        assert p[:2] / p[2] == pytest.approx(want, abs=1e-9)
        # the conventions.md frustum at near n maps the same point to the same pixel
        n = 0.1
        l, r, b, t = ev.frustum(n, S35)
        xn, zn = n * x / y, n * z / y
        assert ((xn - l) / (r - l) * w, (t - zn) / (t - b) * h) == pytest.approx(want, abs=1e-9)
    assert ev.intrinsics((w, h), S35, integer_pixel_centres=True)[0, 2] == pytest.approx(K[0, 2] - 0.5)


# ---------------------------------------------------------------------------------------------- overscan


def test_overscan_is_one_without_distortion_or_with_pincushion() -> None:
    assert LensEvaluation(24.0).overscan(S35).scale == 1.0
    assert LensEvaluation(24.0, (0.1, 0.1), BrownConrady(k1=0.05)).overscan(S35).scale == 1.0


def test_barrel_overscan_covers_the_undistorted_border() -> None:
    f, (px, py), (w, h) = 24.0, (0.3, -0.8), (1920, 1080)
    ev = LensEvaluation(f, (px, py), BrownConrady(-0.118, 0.031, -0.0032, 0.00011, -0.00007))
    ov = ev.overscan(S35)
    assert ov.scale > 1.01 and min(ov.left, ov.right, ov.top, ov.bottom) > 1.0
    K = ev.intrinsics((w, h), S35)
    t = np.linspace(0, 1, 400)
    border = np.concatenate([
        np.column_stack([t * w, np.zeros_like(t)]), np.column_stack([t * w, np.full_like(t, h)]),
        np.column_stack([np.zeros_like(t), t * h]), np.column_stack([np.full_like(t, w), t * h]),
    ])
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)
    und = cv2.undistortPointsIter(border.reshape(-1, 1, 2), K, ev.distortion.opencv(), None, None, crit)[:, 0, :]
    n = 1.0
    l, r, b, t_ = ev.frustum(n, S35)  # y up
    xs, ys_up = und[:, 0] * n, -und[:, 1] * n
    eps = 1e-9
    # the pinhole frame does not hold the undistorted border; the overscanned one does, per side and by scale
    assert xs.min() < l - 1e-4 or xs.max() > r + 1e-4
    assert xs.min() >= ov.left * l - eps and xs.max() <= ov.right * r + eps
    assert ys_up.min() >= ov.bottom * b - eps and ys_up.max() <= ov.top * t_ + eps
    assert xs.min() >= ov.scale * l - eps and ys_up.max() <= ov.scale * t_ + eps
    # and it is tight: barrel distortion pushes the corners out furthest, so the border touches every side
    assert xs.min() - ov.left * l < 1e-6 and ov.right * r - xs.max() < 1e-6
    assert ys_up.min() - ov.bottom * b < 1e-6 and ov.top * t_ - ys_up.max() < 1e-6
    # conventions.md percent: l' = l - ov_l/100 (r - l) reproduces the per-side factor
    pl, pr, pb, pt = ov.percent()
    assert l - pl / 100 * (r - l) == pytest.approx(ov.left * l)
    assert t_ + pt / 100 * (t_ - b) == pytest.approx(ov.top * t_)


def test_lens_table_overscan_matches_the_exact_one(lens) -> None:
    table = lens.table(lens.sensor_mm)
    for zoom, focus in [(0.0, 0.0), (0.13, 0.61), (0.5, 0.9), (1.0, 1.0)]:
        exact = lens.evaluate(zoom, focus).overscan(lens.sensor_mm)
        fast = table.overscan(zoom, focus)
        assert fast.scale == pytest.approx(exact.scale, abs=2e-4)
        assert fast.left == pytest.approx(exact.left, abs=2e-4)


# ---------------------------------------------------------------------------------------------- OpenTrackIO


def test_opentrackio_round_trip_and_mm_scaling(lens) -> None:
    ev = lens.evaluate(0.27, 0.44)
    block = oti.to_opentrackio(ev)
    json.dumps(block)  # plain JSON types
    f, d = ev.focal_length_mm, ev.distortion
    entry = block["distortion"][0]
    assert entry["model"] == "Brown-Conrady U-D"
    # PROTOCOLS.md §2.4: k1 = l1 f^2, k2 = l3 f^4, k3 = l5 f^6, (k4, k5, k6) = (l2 f^2, l4 f^4, l6 f^6), p = q f
    l1, l2, l3, l4, l5, l6 = entry["radial"]
    q1, q2 = entry["tangential"]
    assert (l1 * f**2, l3 * f**4, l5 * f**6) == pytest.approx((d.k1, d.k2, d.k3), rel=1e-14)
    assert (l2, l4, l6) == (0.0, 0.0, 0.0)
    assert (q1 * f, q2 * f) == pytest.approx((d.p1, d.p2), rel=1e-14)
    # physically: the mm-space model with these coefficients is f times our normalised model
    rng = np.random.default_rng(4)
    xy = rng.uniform(-0.4, 0.4, size=(50, 2))
    e = xy * f
    r2 = (e**2).sum(axis=1)
    R = 1 + l1 * r2 + l3 * r2**2 + l5 * r2**3
    mm = np.column_stack([
        e[:, 0] * R + 2 * q1 * e[:, 0] * e[:, 1] + q2 * (r2 + 2 * e[:, 0] ** 2),
        e[:, 1] * R + q1 * (r2 + 2 * e[:, 1] ** 2) + 2 * q2 * e[:, 0] * e[:, 1],
    ])
    np.testing.assert_allclose(mm, distort(xy, d) * f, rtol=0, atol=1e-12)
    # units and the y axis: OpenTrackIO's projectionOffset.y is read as pointing down
    assert block["pinholeFocalLength"] == f and block["entrancePupilOffset"] == ev.entrance_pupil_offset_m
    assert block["projectionOffset"] == {"x": ev.principal_point_offset_mm[0], "y": -ev.principal_point_offset_mm[1]}
    assert block["focusDistance"] == ev.focus_distance_m and block["encoders"] == {"zoom": 0.27, "focus": 0.44}
    back = oti.from_opentrackio(block)
    assert back.fit is None and back.notes == ()
    b = back.evaluation
    assert b.focal_length_mm == f and b.principal_point_offset_mm == ev.principal_point_offset_mm
    assert b.distortion.as_tuple() == pytest.approx(d.as_tuple(), rel=1e-14)
    assert (b.entrance_pupil_offset_m, b.focus_distance_m, b.zoom, b.focus) == (
        ev.entrance_pupil_offset_m, ev.focus_distance_m, ev.zoom, ev.focus)
    # infinity has no OpenTrackIO value: it is left out
    assert "focusDistance" not in oti.to_opentrackio(lens.evaluate(0.3, 0.0))


def test_opentrackio_y_up_reading_flips_p1_and_the_offset() -> None:
    ev = LensEvaluation(30.0, (0.2, 0.1), BrownConrady(-0.1, 0.01, 0.0, 0.002, 0.003))
    up = oti.to_opentrackio(ev, y_down=False)
    assert up["projectionOffset"]["y"] == 0.1
    assert up["distortion"][0]["tangential"] == pytest.approx([-0.002 / 30.0, 0.003 / 30.0])
    assert oti.from_opentrackio(up, y_down=False).evaluation.distortion.as_tuple() == pytest.approx(ev.distortion.as_tuple())


def test_brown_conrady_du_is_fitted_in_the_right_direction(lens) -> None:
    ev = lens.evaluate(0.0, 0.0)  # strongest barrel of the example
    f, sensor = ev.focal_length_mm, lens.sensor_mm
    entry, fit = oti.distortion_to_opentrackio(
        ev.distortion, f, model="Brown-Conrady D-U", sensor_mm=sensor, principal_point_offset_mm=ev.principal_point_offset_mm
    )
    assert entry["model"] == "Brown-Conrady D-U" and fit is not None and fit.max_mm < 2e-3
    # by hand: the D-U entry applied to distorted mm points gives the undistorted points of our U-D lens
    l1, _, l3, _, l5, _ = entry["radial"]
    q1, q2 = entry["tangential"]
    rng = np.random.default_rng(5)
    xd = np.column_stack([rng.uniform(-0.5, 0.5, 300), rng.uniform(-0.28, 0.28, 300)])
    e = xd * f
    r2 = (e**2).sum(axis=1)
    R = 1 + l1 * r2 + l3 * r2**2 + l5 * r2**3
    eu = np.column_stack([
        e[:, 0] * R + 2 * q1 * e[:, 0] * e[:, 1] + q2 * (r2 + 2 * e[:, 0] ** 2),
        e[:, 1] * R + q1 * (r2 + 2 * e[:, 1] ** 2) + 2 * q2 * e[:, 0] * e[:, 1],
    ])
    err = np.hypot(*(eu - undistort(xd, ev.distortion) * f).T)
    assert err.max() <= fit.max_mm * 1.5
    # and a plain sign flip of the coefficients would be far off (direction matters)
    flipped = distort(xd, BrownConrady(-ev.distortion.k1, -ev.distortion.k2, -ev.distortion.k3)) * f
    assert np.hypot(*(flipped - undistort(xd, ev.distortion) * f).T).max() > 50 * fit.max_mm
    # back to U-D: close to the original lens, with a reported residual
    d2, fit2 = oti.distortion_from_opentrackio(entry, f, sensor_mm=sensor, principal_point_offset_mm=ev.principal_point_offset_mm)
    assert fit2 is not None and fit2.source == "Brown-Conrady D-U" and fit2.max_mm < 2e-3
    pts = xd[:50]
    np.testing.assert_allclose(distort(pts, d2) * f, distort(pts, ev.distortion) * f, atol=3e-3)
    # a D-U entry without a sensor to fit over is refused, not guessed
    with pytest.raises(ValueError, match="sensor_mm"):
        oti.distortion_from_opentrackio({"radial": [1e-4]}, f)


def test_official_complete_example_lens_converts() -> None:
    dynamic = json.loads((OTIO_EXAMPLES / "complete_dynamic_example.json").read_text())
    static = json.loads((OTIO_EXAMPLES / "complete_static_example.json").read_text())
    dims = static["static"]["camera"]["activeSensorPhysicalDimensions"]
    got = oti.from_opentrackio(dynamic["lens"], sensor_mm=(dims["width"], dims["height"]))
    ev, lens_block = got.evaluation, dynamic["lens"]
    assert ev.focal_length_mm == lens_block["pinholeFocalLength"]
    assert ev.principal_point_offset_mm == (lens_block["projectionOffset"]["x"], -lens_block["projectionOffset"]["y"])
    assert ev.entrance_pupil_offset_m == lens_block["entrancePupilOffset"]
    assert ev.focus_distance_m == lens_block["focusDistance"]
    assert (ev.zoom, ev.focus) == (lens_block["encoders"]["zoom"], lens_block["encoders"]["focus"])
    assert got.overscan == lens_block["distortion"][0]["overscan"]
    assert got.fit is not None  # rational radial terms and a distortion offset: fitted, with a residual
    assert any("distortion[1]" in n for n in got.notes)
    assert all(math.isfinite(v) for v in ev.distortion.as_tuple())


def test_lens_state_round_trip(lens) -> None:
    ev = lens.evaluate(0.66, 0.2)
    state = oti.to_lens_state(ev)
    assert isinstance(state, LensState)
    assert state.focal_length_mm == ev.focal_length_mm and state.distortion[0].model == "Brown-Conrady U-D"
    assert state.projection_offset_mm == (ev.principal_point_offset_mm[0], -ev.principal_point_offset_mm[1])
    back = oti.from_lens_state(state).evaluation
    assert back.distortion.as_tuple() == pytest.approx(ev.distortion.as_tuple(), rel=1e-14)
    assert (back.focal_length_mm, back.principal_point_offset_mm, back.focus_distance_m, back.zoom, back.focus) == (
        ev.focal_length_mm, ev.principal_point_offset_mm, ev.focus_distance_m, ev.zoom, ev.focus)


# ---------------------------------------------------------------------------------------------- errors, located


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    return [i + 1 for i, line in enumerate(text.splitlines()) if needle in line][nth]


def _errors(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_lens_file(path)
    return [e.format() for e in info.value.errors]


def _variant(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    text = EXAMPLE.read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    p = tmp_path / "lens.yaml"
    p.write_text(text)
    return p, text


FIRST = "    focal_length_mm: 24.000\n"


@pytest.mark.parametrize(
    "old,new,needle,key,fragment",
    [
        (FIRST, "    focal_length_mm: -24.0\n", "focal_length_mm: -24.0", "points[0].focal_length_mm", "expected a value > 0, got -24.0"),
        (FIRST, FIRST + "    colour: red\n", "colour: red", "points[0].colour", "unknown key"),
        ("zoom: [0.0, 0.2, 0.4,", "zoom: [0.0, 0.4, 0.2,", "zoom: [0.0, 0.4, 0.2,", "encoders.zoom[2]", "expected values strictly increasing, got 0.2 after 0.4"),
        ("focus: [0.0, 0.35, 0.7, 1.0]", "focus: [0.0, 0.35, 0.7, 1.5]", "focus: [0.0, 0.35, 0.7, 1.5]", "encoders.focus[3]", "expected a value <= 1, got 1.5"),
        ("principal_point_offset_mm: [0.0310, -0.0220]", "principal_point_offset_mm: 0.031", "principal_point_offset_mm: 0.031", "points[0].principal_point_offset_mm", "expected [x, y] mm on the sensor"),
        ("principal_point_offset_mm: [0.0310, -0.0220]", "principal_point_offset_mm: [13.0, 0.0]", "[13.0, 0.0]", "points[0].principal_point_offset_mm", "expected an offset inside the sensor"),
        ("direction: undistorted-to-distorted", "direction: distorted-to-undistorted", "direction: distorted", "distortion_model.direction", "expected one of undistorted-to-distorted"),
        ("k1: -0.11800,", "k1: -1.5,", "k1: -1.5,", "points[0].distortion", "expected a distortion that is one-to-one over the sensor"),
        ("k1: -0.11800,", "k1: fast,", "k1: fast,", "points[0].distortion.k1", 'expected a finite number, got "fast"'),
        ("    focus_distance_m: 3.0\n", "    focus_distance_m: 0.9\n", "focus_distance_m: 1.2", "points[2].focus_distance_m", "expected a focus distance shorter than at focus 0.35 (0.9 m), got 1.2"),
        ("    focus_distance_m: 3.0\n", "    focus_distance_m: -3.0\n", "focus_distance_m: -3.0", "points[1].focus_distance_m", "expected a focus distance in metres > 0, or null for infinity"),
        ("focal_length_mm: 28.970", "focal_length_mm: 23.970", "focal_length_mm: 23.970", "points[4].focal_length_mm", "expected a focal length longer than at zoom 0 (24 mm)"),
        ("schema_version: 1", "schema_version: 2", "schema_version: 2", "schema_version", "expected 1"),
        ("  serial: \"EX-2470-0042\"\n", "  serial: \"EX-2470-0042\"\n  mount: PL\n", "mount: PL", "lens.mount", "unknown key"),
    ],
)
def test_bad_lens_files_give_located_errors(tmp_path: Path, old: str, new: str, needle: str, key: str, fragment: str) -> None:
    p, text = _variant(tmp_path, old, new)
    errs = _errors(p)
    prefix = f"{p}:{_line_of(text, needle)}: {key}: "
    hits = [e for e in errs if e.startswith(prefix)]
    assert hits, errs
    assert fragment in hits[0][len(prefix):], hits[0]


def test_a_missing_grid_point_is_reported_on_the_points_list(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    start = text.index("  - zoom: 0.4\n    focus: 0.7\n")
    end = text.index("  - zoom", start + 5)
    p = tmp_path / "lens.yaml"
    p.write_text(text[:start] + text[end:])
    errs = _errors(p)
    line = _line_of(p.read_text(), "  - zoom: 0.0")
    assert errs == [
        f"{p}:{line}: points: the grid is not rectangular: expected one point for each of the 6 x 4 = 24 pairs of "
        f"encoders.zoom x encoders.focus values, 1 missing: (zoom 0.4, focus 0.7)"
    ]


def test_off_grid_and_repeated_points_and_every_error_at_once(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    first = text.index("  - zoom: 0.0\n    focus: 0.0\n")
    second = text.index("  - zoom", first + 5)
    block = text[first:second]
    text = text.replace("  - zoom: 0.2\n    focus: 0.0\n", "  - zoom: 0.25\n    focus: 0.0\n", 1)
    text = text[:second] + block + text[second:]  # the first point twice
    text = text.replace("    entrance_pupil_offset_m: 0.2000\n", "", 1)  # and a missing key further down
    p = tmp_path / "lens.yaml"
    p.write_text(text)
    errs = _errors(p)
    assert f"{p}:{_line_of(text, 'zoom: 0.25')}: points[5].zoom: expected one of the encoders.zoom values (0, 0.2, 0.4, 0.6, 0.8, 1), got 0.25" in errs
    assert f"{p}:{_line_of(text, '- zoom: 0.0', 1)}: points[1]: a second point for (zoom 0, focus 0); the first is at line {_line_of(text, '- zoom: 0.0')}" in errs
    missing_at = _line_of(text, "- zoom: 1.0")
    assert any(e.startswith(f"{p}:{missing_at}: points[") and e.endswith("entrance_pupil_offset_m: required key is missing") for e in errs)


def test_the_documented_example_loads_and_a_single_focus_axis_is_constant(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "lens-file.md").read_text()
    block = doc.split("## Example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    p = tmp_path / "prime_ish.yaml"
    p.write_text(block)
    lens = load_lens_file(p)
    assert lens.focus_axis == (0.0,)
    a, b = lens.evaluate(0.5, 0.0), lens.evaluate(0.5, 0.8)
    assert replace(b, focus=0.0) == a and b.focus == 0.8 and a.focal_length_mm == pytest.approx(47.0) and math.isinf(a.focus_distance_m)
