"""The grade functions of the composite pass as plain data (stagectl.render.grades; no GL).

The GPU results are checked in tests/gl/test_grades.py; here: what compiles (the structure key leaves out the
exposure), one function, prefix and exposure uniform per graded target, the walls' and the inner frusta's
parts apart, shared LUT textures, the selectors,
and the builder's cache (builds once, lets the oldest go, reports a bad grade once).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyOpenColorIO")

from stagectl.color import ColorError  # noqa: E402
from stagectl.color.ocio import Grade, grade_processor  # noqa: E402
from stagectl.core.features import ColorCorrection  # noqa: E402
from stagectl.core.lut import Lut3D  # noqa: E402
from stagectl.render.grades import (  # noqa: E402
    INNER_FUNCTION,
    WALL_FUNCTION,
    GradeBuilder,
    build_grade_part,
    grade_key,
    inner_part_key,
    wall_part_key,
)

LUT = Lut3D.from_function(lambda c: np.stack([c[..., 1] ** 1.3, 0.1 + 0.8 * c[..., 0], 1 - c[..., 2]], -1), 9)
CC = ColorCorrection(exposure=0.4, temperature=3800, tint=4, slope=(1.1, 0.95, 1.0), saturation=0.85, lut=LUT)


def _fields(cc) -> dict:
    names = ("exposure", "gains", "temperature", "tint", "slope", "offset", "power", "saturation", "lut")
    return {k: getattr(cc, k) for k in names}


def test_the_structure_key_leaves_out_the_exposure_only() -> None:
    assert grade_key(CC) == grade_key(ColorCorrection(**{**_fields(CC), "exposure": -2.0}))
    for change in ({"saturation": 0.9}, {"temperature": 4000}, {"slope": (1.0, 0.95, 1.0)}, {"lut": None}):
        assert grade_key(CC) != grade_key(ColorCorrection(**{**_fields(CC), **change})), change
    assert wall_part_key([(2, CC), (0, CC)]) == wall_part_key([(0, CC), (2, CC)])
    assert wall_part_key([(0, CC)]) != wall_part_key([(1, CC)])
    assert inner_part_key(CC) != wall_part_key([(0, CC)])


def test_one_function_per_wall_with_its_own_prefix_and_exposure_uniform() -> None:
    walls = build_grade_part("walls", [(3, CC), (0, CC)])
    assert walls.walls == (0, 3) and walls.targets == (("wall", 0), ("wall", 3))
    for w in (0, 3):
        assert f"vec4 {WALL_FUNCTION.format(w=w)}(vec4 inPixel)" in walls.text
        u = walls.exposure_uniforms[("wall", w)]
        assert u.startswith(f"gw{w}_") and f"uniform float {u};" in walls.text
    assert INNER_FUNCTION not in walls.text and "inner_grade" not in walls.text
    # the same LUT in both functions: one texture, read by two samplers
    assert len(walls.textures) == 1
    assert walls.textures[0].samplers == ("gw0_lut3d_0Sampler", "gw3_lut3d_0Sampler")
    # walls chosen by id; the exposures follow the frame's corrections
    assert "if (w == 0) p = stagectl_grade_wall0(p);" in walls.text
    assert "else if (w == 3) p = stagectl_grade_wall3(p);" in walls.text
    cc3 = ColorCorrection(**{**_fields(CC), "exposure": 1.25})
    assert dict(walls.exposures([(("wall", 0), CC), (("wall", 3), cc3)])) == {
        walls.exposure_uniforms[("wall", 0)]: 0.4, walls.exposure_uniforms[("wall", 3)]: 1.25}

    inner = build_grade_part("inner", ColorCorrection(exposure=-0.3, slope=(0.9, 1.05, 1.1), lut=LUT))
    assert inner.targets == (("inner",),) and inner.walls == ()
    assert f"vec4 {INNER_FUNCTION}(vec4 inPixel)" in inner.text and "vec3 inner_grade(vec3 c, int look)" in inner.text
    assert inner.exposure_uniforms[("inner",)].startswith("gi_") and "wall_grade" not in inner.text
    with pytest.raises(ValueError):
        build_grade_part("walls", [])


def test_a_single_shown_wall_is_graded_without_a_test() -> None:
    part = build_grade_part("walls", [(1, CC)], shown_walls=[1])
    assert "p = stagectl_grade_wall1(p);  // the only wall shown" in part.text
    assert "if (w ==" not in part.text
    assert "if (w == 1)" in build_grade_part("walls", [(1, CC)], shown_walls=[0, 1]).text


def test_the_function_is_the_ocio_processor_of_the_grade() -> None:
    part = build_grade_part("walls", [(0, CC)])
    sh = part.shaders[("wall", 0)]
    assert sh.exposure_uniform == part.exposure_uniforms[("wall", 0)]
    assert [u.value for u in sh.uniforms if u.name == sh.exposure_uniform] == [0.4]
    # the CPU processor of the same grade equals the numpy reference (the GPU text is OCIO's for it)
    proc = grade_processor(Grade.from_color_correction(CC, dynamic_exposure=True))
    px = np.random.default_rng(1).random((500, 3)).astype(np.float32)
    np.testing.assert_allclose(proc.apply(px), CC.apply(px), atol=2e-4)
    proc.set_exposure(-1.0)
    ref = ColorCorrection(**{**_fields(CC), "exposure": -1.0}).apply(px)
    np.testing.assert_allclose(proc.apply(px), ref, atol=2e-4)


def test_builder_keeps_what_it_built() -> None:
    b = GradeBuilder(keep=2)
    walls = [(0, CC)]
    got = b.get("walls", walls)
    assert got.key == wall_part_key(walls)
    assert b.get("walls", [(0, ColorCorrection(**{**_fields(CC), "exposure": 2.0}))]) is got and b.builds == 1
    b.get("inner", ColorCorrection(saturation=0.5))
    b.get("inner", ColorCorrection(saturation=0.6))
    assert b.builds == 3
    assert b.get("walls", walls) is not got and b.builds == 4  # the oldest was let go


def test_builder_keeps_a_bad_grade_as_its_error(monkeypatch) -> None:
    import stagectl.render.grades as grades

    calls = []

    def refuse(*a, **k):
        calls.append(1)
        raise ColorError("OCIO processor grade (x): refused")

    monkeypatch.setattr(grades, "build_grade_part", refuse)
    b = GradeBuilder()
    for _ in range(2):
        with pytest.raises(ColorError, match="refused"):
            b.get("walls", [(0, CC)])
    assert len(calls) == 1


def test_the_frame_uniforms_carry_the_grades_by_wall_index() -> None:
    from conftest import STAGES

    from stagectl.core.features import ChromaKey, FeatureState
    from stagectl.render.uniforms import feature_uniforms
    from stagectl.stage import load_stage

    demo = load_stage(STAGES / "demo.yaml")
    names = [w.name for w in demo.walls]
    identity = ColorCorrection()
    fs = FeatureState(wall_color={names[1]: CC, names[0]: identity}, inner_color=CC)
    fu = feature_uniforms(demo, fs)
    assert sorted(fu.wall_grades, key=lambda e: e[0]) == [(0, identity), (1, CC)]  # identity kept: exposure
    assert fu.inner_grade is CC
    keyed = feature_uniforms(demo, FeatureState(inner_color=CC, chroma_key=ChromaKey()))
    assert keyed.inner_grade is None and keyed.wall_grades == ()


def test_looks_make_functions_of_their_own(tmp_path) -> None:
    """A wall with a look has a function without a grade; each camera look is a function of the inner part,
    chosen by its number; a look or a working space is part of the key."""
    from looks_config import write_looks_config

    from stagectl.color.ocio import LookSpec, look_processor
    from stagectl.render.grades import CAMERA_FUNCTION, part_needed

    cfg = str(write_looks_config(tmp_path))
    warm = LookSpec(cfg, "Linear Rec.709 (sRGB)", ("Warm",))
    space = LookSpec(cfg, "Linear Rec.709 (sRGB)", (), "ACEScg")
    walls = build_grade_part("walls", [(2, CC)], looks=[(0, warm), (2, space), (3, space)])
    assert walls.targets == (("wall", 0), ("wall", 2))  # wall 3: a working space and no grade is nothing
    assert ("wall", 0) not in walls.exposure_uniforms and ("wall", 2) in walls.exposure_uniforms
    assert walls.key == wall_part_key([(2, CC)], [(0, warm), (2, space), (3, space)]) != wall_part_key([(2, CC)])
    assert not part_needed("walls", [], [(3, space)]) and part_needed("walls", [], [(0, warm)])
    inner = build_grade_part("inner", CC, looks=[("crane", warm), ("a-cam", space)])
    assert inner.look_ids == {"a-cam": 0, "crane": 1}
    assert inner.targets == (("inner",), ("camera", "a-cam"), ("camera", "crane"))
    assert "if (look == 0) p = stagectl_grade_camera0(p);" in inner.text
    assert "else if (look == 1) p = stagectl_grade_camera1(p);" in inner.text
    assert f"else p = {INNER_FUNCTION}(p);" in inner.text and CAMERA_FUNCTION.format(k=1) in inner.text
    assert all(inner.exposure_uniforms[t].startswith(p) for t, p in (
        (("inner",), "gi_"), (("camera", "a-cam"), "gc0_"), (("camera", "crane"), "gc1_")))
    looks_only = build_grade_part("inner", None, looks=[("crane", warm)])
    assert INNER_FUNCTION not in looks_only.text and looks_only.exposure_uniforms == {}
    # the function is the CPU processor of the look then the grade
    sh = inner.shaders[("camera", "crane")]
    proc = look_processor(warm, Grade.from_color_correction(CC, dynamic_exposure=True))
    assert sh.cache_id == proc.gpu_shader(function_name=CAMERA_FUNCTION.format(k=1),
                                          resource_prefix="gc1_").cache_id
