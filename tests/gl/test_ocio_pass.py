"""OCIO's GPU path through the GL pass (stagectl.render.ocio_pass) on llvmpipe against OCIO's CPU processor.

The reference is OCIO's own CPU processor for the same processor (lossless optimisation). The acceptance bar
of issue 12: read-back within 1 code value at 10 bits (|GPU - CPU| <= 1/1023 on every channel of every
pixel). The image is a ramp over the whole scene-linear range plus random colours, including values far
above 1, so LUT ends, tone-scale shoulders and the PQ curve's top are all exercised.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("PyOpenColorIO")

from stagectl.color.ocio import CDL, Grade, GradeFile, load_config  # noqa: E402
from stagectl.core import features, grade as core_grade, lut as core_lut  # noqa: E402
from stagectl.render.gl.errors import RenderError, ResourceError  # noqa: E402
from stagectl.render.gl.platform import GL  # noqa: E402
from stagectl.render.ocio_pass import OcioPass, fragment_source  # noqa: E402

pytestmark = pytest.mark.gl

ONE_CODE_10 = 1.0 / 1023.0
H, W = 24, 64


@pytest.fixture(scope="module")
def config():
    return load_config()


def _image(seed: int = 0, hi: float = 16.0) -> np.ndarray:
    """Rows 0-7: a grey ramp 0..hi on a log scale (with exact 0); rows 8-23: random colours 0..hi."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), np.float32)
    ramp = np.concatenate([[0.0], np.geomspace(1e-4, hi, 8 * W - 1)]).reshape(8, W)
    img[:8] = ramp[..., None]
    img[8:] = rng.random((H - 8, W, 3)) ** 2 * hi
    return img


def _cube(tmp_path, size=17):
    def fn(rgb):
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        return np.stack([0.85 * r + 0.1 * g * b, 0.95 * g**1.3, 0.75 * b + 0.2 * r * g], axis=-1)

    lut = core_lut.Lut3D.from_function(fn, size=size)
    rows = [f"LUT_3D_SIZE {size}"]
    for b in range(size):
        for g in range(size):
            for r in range(size):
                rows.append(" ".join(f"{v:.7f}" for v in lut.table[r, g, b]))
    path = tmp_path / "grade.cube"
    path.write_text("\n".join(rows) + "\n")
    return path


def _gpu_vs_cpu(resources, processor, image) -> float:
    with OcioPass(resources, processor.gpu_shader(), label="test.ocio") as op:
        gpu = op.apply(image)
    cpu = processor.apply(image)
    assert np.all(np.isfinite(gpu))
    np.testing.assert_array_equal(gpu[..., 3], 1.0)
    return float(np.max(np.abs(gpu[..., :3] - cpu)))


CASES = {
    "srgb_sdr": dict(display="sRGB - Display", view="ACES 2.0 - SDR 100 nits (Rec.709)"),
    "pq_1000": dict(display="Rec.2100-PQ - Display", view="ACES 2.0 - HDR 1000 nits (P3 D65)"),
    "hlg_1000": dict(display="Rec.2100-HLG - Display", view="ACES 2.0 - HDR 1000 nits (P3 D65)"),
    "srgb_untonemapped": dict(display="sRGB - Display", view="Un-tone-mapped"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_display_views_match_cpu_within_one_10bit_code(resources, config, case):
    err = _gpu_vs_cpu(resources, config.processor(**CASES[case]), _image())
    assert err <= ONE_CODE_10, f"{case}: max |GPU - CPU| = {err * 1023:.3f} codes at 10 bits"


@pytest.mark.parametrize("interpolation", ["linear", "tetrahedral"])
def test_cdl_and_cube_grade_then_pq_matches_cpu(resources, config, tmp_path, interpolation):
    grade = Grade(
        exposure=-0.5,
        gains=core_grade.white_balance_gains(4500.0, 3.0),
        cdl=CDL(slope=(1.1, 0.95, 1.0), offset=(0.01, 0.0, -0.01), power=(1.05, 1.0, 0.9), saturation=0.9),
        files=(GradeFile(str(_cube(tmp_path)), interpolation=interpolation, encoding="srgb"),),
    )
    p = config.processor(
        display="Rec.2100-PQ - Display", view="ACES 2.0 - HDR 1000 nits (P3 D65)", grade=grade
    )
    s = p.gpu_shader()
    assert len(s.textures_3d) == 1  # the .cube became a 3D texture
    err = _gpu_vs_cpu(resources, p, _image(seed=1, hi=1.5))
    assert err <= ONE_CODE_10, f"max |GPU - CPU| = {err * 1023:.3f} codes at 10 bits"


def test_in_memory_lut_grade_on_srgb_display(resources, config):
    lut = core_lut.Lut3D.from_function(lambda c: c**1.1 * 0.95, size=9)
    cc = features.ColorCorrection(exposure=0.25, temperature=5600.0, slope=(1.05, 1.0, 0.95), lut=lut)
    p = config.processor(
        display="sRGB - Display", view="Un-tone-mapped", grade=Grade.from_color_correction(cc)
    )
    err = _gpu_vs_cpu(resources, p, _image(seed=2, hi=2.0))
    assert err <= ONE_CODE_10


def test_dynamic_exposure_uniform_follows_the_cpu_property(resources, config):
    p = config.processor(
        display="Rec.2100-PQ - Display",
        view="ACES 2.0 - HDR 1000 nits (P3 D65)",
        grade=Grade(exposure=0.0, dynamic_exposure=True),
    )
    s = p.gpu_shader()
    img = _image(seed=3, hi=4.0)
    with OcioPass(resources, s, label="test.ocio.exposure") as op:
        before = op.apply(img)
        op.set_exposure(1.75)
        after = op.apply(img)
    p.set_exposure(1.75)
    np.testing.assert_allclose(after[..., :3], p.apply(img), atol=ONE_CODE_10)
    assert np.max(np.abs(after - before)) > 0.05  # the uniform really changed the picture


def test_shader_compiles_as_glsl_330_core(resources, config):
    s = config.processor(display="sRGB - Display", view="Un-tone-mapped").gpu_shader()
    src = fragment_source(s)
    assert src.startswith("#version 330 core\n")
    with OcioPass(resources, s, label="test.ocio.compile") as op:
        assert op.program.has_uniform("u_image")
        with pytest.raises(ResourceError, match="no dynamic exposure"):
            op.set_exposure(1.0)
        src_tex = resources.texture2d("test.ocio.src", 8, 8, "rgba32f")
        fb = resources.framebuffer("test.ocio.fb", 4, 4, "rgba32f", depth=False)
        try:
            with pytest.raises(ResourceError, match="pixel to pixel"):
                op.draw(src_tex, fb)
        finally:
            fb.release()
            src_tex.release()
    assert op.program.released and op.vao.released  # leaving the block released the pass


def test_a_pass_that_fails_half_way_frees_what_it_had_made(resources, config, tmp_path):
    # the program and vertex array are made, then the 3D LUT texture is refused by GL (too large an edge)
    grade = Grade(files=(GradeFile(str(_cube(tmp_path, size=5)), interpolation="linear", encoding="srgb"),))
    s = config.processor(display="sRGB - Display", view="Un-tone-mapped", grade=grade).gpu_shader()
    assert len(s.textures_3d) == 1
    too_large = dataclasses.replace(s.textures_3d[0], edge=int(GL.glGetIntegerv(GL.GL_MAX_3D_TEXTURE_SIZE)) + 1)
    n_before = len(resources)
    with pytest.raises(RenderError) as err:
        OcioPass(resources, dataclasses.replace(s, textures_3d=(too_large,)), label="test.ocio.half")
    assert err.value.obj_label.startswith("test.ocio.half.")
    assert len(resources) == n_before  # program and vertex array released again
