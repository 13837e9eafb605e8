"""Per-wall and per-camera OpenColorIO looks (stage file ``colour: walls:`` / ``cameras:``, docs/colour.md
*Looks*): what the stage file resolves to, one-line errors with close matches, and the CPU processor of a
wall's or camera's look and grade (stagectl.color.ocio.look_processor) against the looks' maths written out in
numpy (tests/looks_config.py: colour-science's colour space conversions, S-2016-001 ACEScct, ASC CDL, a
trilinear cube) and the grade's numpy reference (ColorCorrection.apply)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import ONE_CAMERA, load_stage_text, one_wall_stage
from looks_config import reference, write_looks_config

from stagectl.color.errors import ColorError
from stagectl.color.ocio import Grade, LookSpec, look_processor
from stagectl.color.stagefile import looks_of
from stagectl.core.errors import ConfigErrors
from stagectl.core.features import ColorCorrection

REC709 = "Linear Rec.709 (sRGB)"
TWO_CAMERAS = ONE_CAMERA.replace(
    "  - {name: cam, tracking: t, sensor_mm: [24.89, 14.0]}\n",
    "  - {name: cam, tracking: t, sensor_mm: [24.89, 14.0]}\n  - {name: crane, tracking: t, sensor_mm: [36, 24]}\n")
BASE = one_wall_stage("Looks", (2, 1), [
    "{name: a, canvas: [64, 32], mappings: [{wall: w, rect: [0, 0, 64, 32]}]}",
], tail=TWO_CAMERAS) + "colour:\n  config: looks.ocio\n  working_space: Linear Rec.709 (sRGB)\n"
FIRST = BASE.count("\n") + 1  # the line after the base


def _load(tmp_path, colour: str):
    write_looks_config(tmp_path)
    return load_stage_text(tmp_path / "stage.yaml", BASE + colour)


def test_wall_and_camera_looks_resolve_to_look_specs(tmp_path) -> None:
    stage = _load(tmp_path, """\
  walls:
    w: {look: Warm, working_space: ACEScg}
  cameras:
    cam: {look: [Show LUT, Cool]}
    crane: {working_space: Linear Rec.709 (sRGB)}
""")
    cfg = str(tmp_path / "looks.ocio")
    assert looks_of(stage, "walls") == {"w": LookSpec(cfg, REC709, ("Warm",), "ACEScg")}
    # crane's entry changes nothing (its working space is the stage's): not listed
    assert looks_of(stage, "cameras") == {"cam": LookSpec(cfg, REC709, ("Show LUT", "Cool"))}
    assert looks_of(stage, "cameras")["cam"].space == REC709


def test_a_wall_may_have_a_calibration_and_a_look(tmp_path) -> None:
    from stagectl.color import calibration as C

    (tmp_path / "cal").mkdir()
    corr = C.Correction(np.eye(3), np.linspace(0.0, 10.0, 16)[:, None].repeat(3, axis=1), -16.0, 10.0)
    C.write_clf(tmp_path / "cal" / "w.clf", corr, name="w", description="identity", input_desc="Linear Rec.2020")
    stage = _load(tmp_path, """\
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
  walls:
    w: {calibration: {clf: cal/w.clf}, look: Cool}
""")
    assert stage.colour.output("p/a").calibration.clf.endswith("w.clf")
    assert looks_of(stage, "walls")["w"].looks == ("Cool",)


@pytest.mark.parametrize("colour, line, key, words", [
    ("  walls:\n    w: {look: Warmth}\n", 2, "colour.walls.w.look",
     "expected a look of OCIO config '{name}' ('ACES 1.3 Reference Gamut Compression', 'Warm', 'Show LUT', "
     "'Cool'), got 'Warmth' (did you mean 'Warm'?)"),
    ("  cameras:\n    cam:\n      look: [Cool, Show-LUT]\n", 3, "colour.cameras.cam.look",
     "got 'Show-LUT' (did you mean 'Show LUT'"),
    ("  cameras:\n    cran: {look: Cool}\n", 2, "colour.cameras.cran",
     "expected a camera of this stage (cam, crane), got 'cran' (did you mean 'crane'"),
    ("  walls:\n    v: {look: Cool}\n", 2, "colour.walls.v", "expected a wall some output shows (w), got 'v'"),
    ("  walls:\n    w: {look: Cool, working_space: ACEScct}\n", 2, "colour.walls.w.working_space",
     "expected a scene-linear colour space of OCIO config"),
    ("  walls:\n    w: {working_space: ACEScgg}\n", 2, "colour.walls.w.working_space",
     "got 'ACEScgg' (did you mean 'ACEScg'"),
    ("  cameras:\n    cam: {look: []}\n", 2, "colour.cameras.cam.look", "got an empty list"),
    ("  cameras:\n    cam: {look: {name: Cool}}\n", 2, "colour.cameras.cam.look",
     "expected a look name of the OCIO config or a list of them, got a mapping"),
    ("  cameras:\n    cam: {}\n", 2, "colour.cameras.cam", "expected the camera's look or working_space"),
    ("  cameras:\n    cam: {look: Cool, calibration: {clf: x.clf}}\n", 2, "colour.cameras.cam.calibration",
     "unknown key; expected one of: look, working_space"),
    ("  cameras: [cam]\n", 1, "colour.cameras", "expected a mapping of camera names to {look, working_space}"),
])
def test_bad_looks_are_line_numbered_one_line_errors(tmp_path, colour, line, key, words) -> None:
    with pytest.raises(ConfigErrors) as info:
        _load(tmp_path, colour)
    text = str(info.value)
    from stagectl.color.ocio import load_config

    words = words.replace("{name}", load_config(tmp_path / "looks.ocio").name)
    assert f"stage.yaml:{FIRST + line - 1}: {key}: " in text, text
    assert words in text, text
    got = [ln for ln in text.splitlines() if re.search(r"stage\.yaml:\d+: ", ln)]
    assert len(got) == 1, text  # one problem, one line


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    return str(write_looks_config(tmp_path_factory.mktemp("looks")))


@pytest.fixture(scope="module")
def light() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([rng.random((3000, 3)) * 2.0, np.geomspace(1e-4, 16.0, 64)[:, None].repeat(3, 1)])


GRADE = ColorCorrection(exposure=0.4, temperature=4800, tint=3, slope=(1.05, 0.97, 1.0),
                        offset=(0.01, 0.0, -0.005), power=(0.95, 1.0, 1.1), saturation=1.2)


@pytest.mark.parametrize("looks, space", [
    (("Warm",), None),
    (("Show LUT",), None),
    (("Cool",), "ACEScg"),
    (("Warm", "Show LUT", "Cool"), "Linear Rec.2020"),
    ((), "ACEScg"),  # a working space of its own, no look: the grade runs in ACEScg
])
def test_look_then_grade_matches_numpy(config, light, looks, space) -> None:
    spec = LookSpec(config, REC709, looks, space)
    for grade in (None, GRADE):
        ocio_grade = None if grade is None else Grade.from_color_correction(grade, dynamic_exposure=True)
        if grade is None and not looks:
            continue
        got = look_processor(spec, ocio_grade).apply(light).astype(np.float64)
        want = reference(light, REC709, looks, space, None if grade is None else grade.apply)
        # float32: each channel within 5e-5 of the pixel's size (a small channel of a saturated colour is the
        # difference of large terms)
        err = np.abs(got - want) / np.maximum(np.abs(want).max(axis=-1, keepdims=True), 1e-3)
        assert err.max() < 5e-5, f"{looks} in {space}, grade {grade is not None}: {err.max():.2e} relative"
        assert np.abs(got - light).max() > 0.05  # it did something


def test_the_working_space_moves_the_grade(config, light) -> None:
    """White balance and CDL act on the primaries of the space they run in: ACEScg is not Rec.709."""
    g = Grade.from_color_correction(GRADE)
    in_709 = look_processor(LookSpec(config, REC709, ("Cool",)), g).apply(light)
    in_ap1 = look_processor(LookSpec(config, REC709, ("Cool",), "ACEScg"), g).apply(light)
    assert np.abs(in_709 - in_ap1).max() > 0.02


def test_dynamic_exposure_and_identity(config, light) -> None:
    spec = LookSpec(config, REC709, ("Warm",))
    p = look_processor(spec, Grade(dynamic_exposure=True))
    base = p.apply(light)
    p.set_exposure(1.0)
    np.testing.assert_allclose(p.apply(light), 2.0 * base, rtol=2e-6, atol=1e-7)
    assert p.gpu_shader(function_name="f", resource_prefix="x_").exposure_uniform
    # a spec without looks and with the stage's own space is nothing: the grade processor alone
    assert LookSpec(config, REC709, (), REC709).is_identity
    with pytest.raises(ColorError, match="unknown look 'Nope'"):
        look_processor(LookSpec(config, REC709, ("Nope",)))


def test_the_frame_uniforms_carry_the_looks_that_are_on(tmp_path) -> None:
    from stagectl.core.features import ChromaKey, FeatureState
    from stagectl.render.uniforms import feature_uniforms

    stage = _load(tmp_path, "  walls:\n    w: {look: Warm}\n  cameras:\n    crane: {look: Cool}\n")
    w, crane = looks_of(stage, "walls")["w"], looks_of(stage, "cameras")["crane"]
    on = feature_uniforms(stage, FeatureState())
    assert on.wall_looks == ((0, w),) and on.camera_looks == (("crane", crane),)
    off = feature_uniforms(stage, FeatureState(looks_off={"wall:w"}))
    assert off.wall_looks == () and off.camera_looks == (("crane", crane),)
    assert on.outer_key != off.outer_key  # the outer-only canvases are redrawn when a wall's look switches
    assert feature_uniforms(stage, FeatureState(looks_off={"camera:crane"})).camera_looks == ()
    keyed = feature_uniforms(stage, FeatureState(chroma_key=ChromaKey()))
    assert keyed.camera_looks == () and keyed.wall_looks == ((0, w),)  # the key replaces the inner image
    from stagectl.core.fields import FeatureError

    with pytest.raises(FeatureError, match="expected 'wall:<name>' or 'camera:<name>'"):
        FeatureState(looks_off={"w"})
