"""The OpenColorIO wrapper (stagectl.color.ocio) on the CPU: configs, errors, grades, files, shader data.

References: the existing numpy reference of the operator grade (stagectl.render.features: ColorCorrection,
cdl, white_balance_gains, the project's own .cube reader and Lut3D), plain numpy matrix maths for CLF/CTF
files, and the values written into the CDL files.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("PyOpenColorIO")

from stagectl.color import ColorError  # noqa: E402
from stagectl.color.ocio import CDL, Grade, GradeFile, load_config  # noqa: E402
from stagectl.core import features, grade as core_grade, lut as core_lut  # noqa: E402

PQ_DISPLAY = "Rec.2100-PQ - Display"
PQ_VIEW = "ACES 2.0 - HDR 1000 nits (P3 D65)"


@pytest.fixture(scope="module")
def config():
    return load_config()


def _pixels(n=400, hi=1.5, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 3)) * hi).astype(np.float32)


def _lut_fn(rgb):
    """A smooth, non-separable grade inside 0..1 (channels mixed, so a wrong axis order shows)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([0.8 * r + 0.15 * g * b, 0.9 * g**1.2 + 0.05 * r, 0.7 * b + 0.2 * r * g], axis=-1)


def _cube_text(lut: core_lut.Lut3D) -> str:
    n = lut.size
    rows = [f"LUT_3D_SIZE {n}"]
    for b in range(n):  # .cube order: red fastest
        for g in range(n):
            for r in range(n):
                rows.append(" ".join(f"{v:.7f}" for v in lut.table[r, g, b]))
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------------- configs


def test_default_config_lists_spaces_displays_views(config):
    assert config.source == "ocio://studio-config-latest"
    assert config.name.startswith("studio-config")
    assert config.working_space == "ACEScg"
    assert {"ACEScg", "ACES2065-1", "ACEScct"} <= set(config.color_spaces())
    assert PQ_DISPLAY in config.displays() and "sRGB - Display" in config.displays()
    assert PQ_VIEW in config.views(PQ_DISPLAY)
    assert config.default_view("sRGB - Display") in config.views("sRGB - Display")


@pytest.mark.parametrize("source", ["ocio://no-such-config", "/no/such/dir/config.ocio"])
def test_bad_config_is_one_line_color_error(source):
    with pytest.raises(ColorError) as err:
        load_config(source)
    assert source in str(err.value) and "\n" not in str(err.value)


def test_broken_config_file_is_one_line_color_error(tmp_path):
    p = tmp_path / "broken.ocio"
    p.write_text("ocio_profile_version: 2\nroles: {scene_linear: nowhere}\ncolorspaces: []\n")
    with pytest.raises(ColorError) as err:
        load_config(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_unknown_names_say_what_was_meant(config):
    with pytest.raises(ColorError, match=r"unknown colour space 'ACEScgg'.*'ACEScg'"):
        config.processor("ACEScgg", display=PQ_DISPLAY)
    with pytest.raises(ColorError, match=r"unknown display 'Rec.2100-PQ'.*'Rec.2100-PQ - Display'"):
        config.processor(display="Rec.2100-PQ")
    with pytest.raises(ColorError, match=r"has no view 'ACES 2.0 - HDR 1000 nit'"):
        config.processor(display=PQ_DISPLAY, view="ACES 2.0 - HDR 1000 nit")
    with pytest.raises(ColorError, match="not both"):
        config.processor(display=PQ_DISPLAY, target="ACEScct")


def test_display_view_processor_matches_a_plain_ocio_processor(config):
    import PyOpenColorIO as ocio

    px = _pixels(hi=8.0)
    ours = config.processor(display=PQ_DISPLAY, view=PQ_VIEW).apply(px)
    raw = ocio.Config.CreateFromFile("ocio://studio-config-latest")
    cpu = raw.getProcessor("ACEScg", PQ_DISPLAY, PQ_VIEW, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor()
    ref = px.copy()
    cpu.applyRGB(ref)
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    assert ours.max() <= 1.0 + 1e-6 and ours.min() >= -1e-6
    # RGBA keeps its alpha
    rgba = np.concatenate([px, np.full((len(px), 1), 0.25, np.float32)], axis=1)
    out = config.processor(display=PQ_DISPLAY, view=PQ_VIEW).apply(rgba)
    np.testing.assert_allclose(out[:, :3], ours, atol=1e-6)
    np.testing.assert_array_equal(out[:, 3], 0.25)


# --------------------------------------------------------------------------------------------- grades


def test_grade_from_color_correction_matches_the_numpy_reference(config):
    lut = core_lut.Lut3D.from_function(_lut_fn, size=17)
    cc = features.ColorCorrection(
        exposure=0.5,
        temperature=4300.0,
        tint=5.0,
        slope=(1.1, 0.95, 1.0),
        offset=(0.01, 0.0, -0.02),
        power=(1.1, 1.0, 0.9),
        saturation=0.85,
        lut=lut,
    )
    px = _pixels(hi=1.2)
    got = config.processor(grade=Grade.from_color_correction(cc)).apply(px)  # grade only, no view
    np.testing.assert_allclose(got, cc.apply(px), atol=2e-5)
    # each piece alone, so that one cannot hide another
    for part in (
        features.ColorCorrection(exposure=-1.25),
        features.ColorCorrection(gains=(1.2, 1.0, 0.7)),
        features.ColorCorrection(slope=(1.3, 1.0, 0.8), offset=(0.0, 0.05, 0.0), saturation=1.4),
        features.ColorCorrection(lut=lut),
    ):
        got = config.processor(grade=Grade.from_color_correction(part)).apply(px)
        np.testing.assert_allclose(got, part.apply(px), atol=2e-5, err_msg=repr(part))


def test_white_balance_is_a_matrix_of_the_features_gains(config):
    gains = core_grade.white_balance_gains(3200.0, -4.0)
    px = _pixels()
    got = config.processor(grade=Grade(gains=gains)).apply(px)
    np.testing.assert_allclose(got, px * np.asarray(gains), rtol=1e-6)


def test_lut_with_a_domain_is_normalised_and_clamped(config):
    lut = core_lut.Lut3D.from_function(
        _lut_fn, size=9, domain_min=(-0.1, 0.0, 0.0), domain_max=(2.0, 1.5, 1.0)
    )
    px = _pixels(hi=2.5)
    got = config.processor(grade=Grade(lut=lut)).apply(px)
    np.testing.assert_allclose(got, lut.apply(px), atol=1e-5)


def test_dynamic_exposure_changes_without_a_new_processor(config):
    px = _pixels()
    p = config.processor(grade=Grade(exposure=0.0, dynamic_exposure=True))
    np.testing.assert_allclose(p.apply(px), px, rtol=1e-6)
    p.set_exposure(1.5)
    np.testing.assert_allclose(p.apply(px), px * 2.0**1.5, rtol=1e-6)
    with pytest.raises(ColorError, match="not dynamic"):
        config.processor(grade=Grade(exposure=1.0)).set_exposure(0.0)


# --------------------------------------------------------------------------------------------- files


def test_cube_file_read_by_ocio_matches_the_project_reader(config, tmp_path):
    lut = core_lut.Lut3D.from_function(_lut_fn, size=9)
    path = tmp_path / "grade.cube"
    path.write_text(_cube_text(lut))
    ours = core_lut.read_cube(path)
    cc = features.ColorCorrection(lut=ours)
    px = _pixels(hi=1.3)
    got = config.processor(grade=Grade(files=(GradeFile(str(path), encoding="srgb"),))).apply(px)
    np.testing.assert_allclose(got, cc.apply(px), atol=2e-5)


_CC = """<?xml version="1.0" encoding="UTF-8"?>
<ColorCorrection id="{id}">
  <SOPNode><Slope>{s}</Slope><Offset>{o}</Offset><Power>{p}</Power></SOPNode>
  <SatNode><Saturation>{sat}</Saturation></SatNode>
</ColorCorrection>
"""


def _cc(id, s, o, p, sat) -> str:
    j = lambda v: " ".join(str(x) for x in v)  # noqa: E731
    return _CC.format(id=id, s=j(s), o=j(o), p=j(p), sat=sat)


A = ("shot_a", (1.1, 1.0, 0.9), (0.01, 0.0, -0.01), (1.0, 1.1, 0.95), 0.9)
B = ("shot_b", (0.8, 1.2, 1.0), (0.0, 0.02, 0.0), (1.2, 1.0, 1.0), 1.3)


def test_cdl_files_cc_ccc_cdl(config, tmp_path):
    cc_path = tmp_path / "a.cc"
    cc_path.write_text(_cc(*A))
    body = "".join(_cc(*x).split("?>", 1)[1] for x in (A, B))
    ccc_path = tmp_path / "ab.ccc"
    ccc_path.write_text(
        f'<ColorCorrectionCollection xmlns="urn:ASC:CDL:v1.01">{body}</ColorCorrectionCollection>'
    )
    cdl_path = tmp_path / "b.cdl"
    cdl_path.write_text(
        '<ColorDecisionList xmlns="urn:ASC:CDL:v1.01"><ColorDecision>'
        + _cc(*B).split("?>", 1)[1]
        + "</ColorDecision></ColorDecisionList>"
    )
    for path, cccid, want in (
        (cc_path, "", A),
        (ccc_path, "shot_b", B),
        (ccc_path, "shot_a", A),
        (cdl_path, "", B),
    ):
        values = CDL.from_file(path, cccid)
        read = [*values.slope, *values.offset, *values.power, values.saturation]
        assert read == pytest.approx([*want[1], *want[2], *want[3], want[4]], abs=1e-6)
        px = _pixels(hi=1.0, seed=4)
        ref = core_grade.cdl(px, want[1], want[2], want[3], want[4])
        got = config.processor(grade=Grade(files=(GradeFile(str(path), cccid=cccid),))).apply(px)
        np.testing.assert_allclose(got, ref, atol=2e-5, err_msg=f"{path.name} {cccid}")
        got = config.processor(grade=Grade(cdl=values)).apply(px)
        np.testing.assert_allclose(got, ref, atol=2e-5)
    # unclamped on request (what OCIO's FileTransform does with a CDL file): above 1 stays above 1
    bright = np.array([[0.95, 0.5, 0.5]], np.float32)
    unclamped = config.processor(grade=Grade(files=(GradeFile(str(cc_path), cdl_style="no_clamp"),))).apply(
        bright
    )
    assert unclamped[0, 0] > 1.0
    with pytest.raises(ColorError, match="no such file"):
        CDL.from_file(tmp_path / "missing.cc")
    with pytest.raises(ColorError) as err:
        config.processor(grade=Grade(files=(GradeFile(str(ccc_path), cccid="shot_z"),)))
    assert "\n" not in str(err.value)


_MATRIX = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.15, 0.85]])


def _process_list(head: str) -> str:
    rows = "\n".join(" ".join(str(v) for v in row) for row in _MATRIX)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ProcessList {head} id="stagectl-test">
  <Matrix inBitDepth="32f" outBitDepth="32f"><Array dim="3 3 3">
{rows}
  </Array></Matrix>
  <Range inBitDepth="32f" outBitDepth="32f">
    <minInValue>0</minInValue><maxInValue>1</maxInValue><minOutValue>0</minOutValue><maxOutValue>1</maxOutValue>
  </Range>
</ProcessList>
"""


@pytest.mark.parametrize("ext, head", [("clf", 'compCLFversion="3"'), ("ctf", 'version="1.7"')])
def test_clf_and_ctf_files(config, tmp_path, ext, head):
    path = tmp_path / f"grade.{ext}"
    path.write_text(_process_list(head))
    px = _pixels(hi=1.4)
    got = config.processor(grade=Grade(files=(str(path),))).apply(px)
    np.testing.assert_allclose(got, np.clip(px @ _MATRIX.T, 0.0, 1.0), atol=1e-6)


def test_missing_grade_file_is_a_color_error(config, tmp_path):
    with pytest.raises(ColorError, match="no such file"):
        config.processor(grade=Grade(files=(str(tmp_path / "nope.cube"),)))
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\n0 0 0\n")
    with pytest.raises(ColorError) as err:
        config.processor(grade=Grade(files=(str(bad),)))
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ GPU shader data


def test_gpu_shader_is_plain_frozen_data(config, tmp_path):
    path = tmp_path / "grade.cube"
    path.write_text(_cube_text(core_lut.Lut3D.from_function(_lut_fn, size=9)))
    grade = Grade(
        exposure=0.25, dynamic_exposure=True, files=(GradeFile(str(path), interpolation="tetrahedral"),)
    )
    p = config.processor(display=PQ_DISPLAY, view=PQ_VIEW, grade=grade)
    s = p.gpu_shader()
    assert s.language == "GLSL_4_0" and s.glsl_version == "330 core"
    assert f"vec4 {s.function_name}(vec4 inPixel)" in s.text
    assert len(s.textures_3d) == 1 and s.textures_3d[0].edge == 9
    assert s.textures_3d[0].values.shape == (9, 9, 9, 3)
    assert s.textures_3d[0].interpolation == "nearest"  # tetrahedral: the shader interpolates
    assert any(t.dimensions == 2 and t.channels == 1 for t in s.textures)  # PQ's half-float 1D LUT, folded
    for t in s.textures:
        assert t.values.shape == (t.height, t.width, t.channels) and not t.values.flags.writeable
        assert t.sampler in s.text
    assert s.exposure_uniform is not None and f"uniform float {s.exposure_uniform};" in s.text
    exposure = {u.name: u.value for u in s.uniforms}[s.exposure_uniform]
    assert exposure == pytest.approx(0.25)
    p.set_exposure(-2.0)
    assert {u.name: u.value for u in p.gpu_shader().uniforms}[s.exposure_uniform] == pytest.approx(-2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.function_name = "x"  # type: ignore[misc]
    assert config.processor(display=PQ_DISPLAY, view=PQ_VIEW).gpu_shader().exposure_uniform is None
