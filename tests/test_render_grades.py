"""The grade functions of the composite pass as plain data (stagectl.render.grades; no GL).

The GPU results are checked in tests/gl/test_grades.py; here: what compiles (the structure key leaves out the
exposure), one function, prefix and exposure uniform per graded target, shared LUT textures, the selectors,
and the worker-thread builder (never waits in request, builds once, reports a bad grade).
"""

from __future__ import annotations

import time

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
    build_grade_shaders,
    grade_key,
    grade_targets,
)

LUT = Lut3D.from_function(lambda c: np.stack([c[..., 1] ** 1.3, 0.1 + 0.8 * c[..., 0], 1 - c[..., 2]], -1), 9)
CC = ColorCorrection(exposure=0.4, temperature=3800, tint=4, slope=(1.1, 0.95, 1.0), saturation=0.85, lut=LUT)


def test_the_structure_key_leaves_out_the_exposure_only() -> None:
    assert grade_key(CC) == grade_key(ColorCorrection(**{**_fields(CC), "exposure": -2.0}))
    for change in ({"saturation": 0.9}, {"temperature": 4000}, {"slope": (1.0, 0.95, 1.0)}, {"lut": None}):
        assert grade_key(CC) != grade_key(ColorCorrection(**{**_fields(CC), **change})), change
    assert grade_targets([(2, CC), (0, CC)], None) == grade_targets([(0, CC), (2, CC)], None)
    assert grade_targets([(0, CC)], None) != grade_targets([(0, CC)], CC)


def _fields(cc) -> dict:
    return {k: getattr(cc, k) for k in ("exposure", "gains", "temperature", "tint", "slope", "offset", "power",
                                        "saturation", "lut")}


def test_one_function_per_target_with_its_own_prefix_and_exposure_uniform() -> None:
    inner = ColorCorrection(exposure=-0.3, slope=(0.9, 1.05, 1.1), lut=LUT)
    gs = build_grade_shaders([(0, CC), (3, CC)], inner)
    assert gs.walls == (0, 3) and gs.inner
    names = [WALL_FUNCTION.format(w=0), WALL_FUNCTION.format(w=3), INNER_FUNCTION]
    for n in names:
        assert f"vec4 {n}(vec4 inPixel)" in gs.text
    assert set(gs.exposure_uniforms) == {("wall", 0), ("wall", 3), ("inner",)}
    prefixes = {("wall", 0): "gw0_", ("wall", 3): "gw3_", ("inner",): "gi_"}
    for target, u in gs.exposure_uniforms.items():
        assert u.startswith(prefixes[target]) and f"uniform float {u};" in gs.text
    # the same LUT in three functions: one texture, read by three samplers
    assert len(gs.textures) == 1 and len(gs.textures[0].samplers) == 3
    # walls chosen by id; the exposures follow the frame's corrections
    assert "if (w == 0) p = stagectl_grade_wall0(p);" in gs.text
    assert "else if (w == 3) p = stagectl_grade_wall3(p);" in gs.text
    cc3 = ColorCorrection(**{**_fields(CC), "exposure": 1.25})
    assert dict(gs.exposures([(0, CC), (3, cc3)], inner)) == {
        gs.exposure_uniforms[("wall", 0)]: 0.4, gs.exposure_uniforms[("wall", 3)]: 1.25,
        gs.exposure_uniforms[("inner",)]: -0.3}


def test_a_single_shown_wall_is_graded_without_a_test() -> None:
    gs = build_grade_shaders([(1, CC)], None, shown_walls=[1])
    assert "p = stagectl_grade_wall1(p);  // the only wall shown" in gs.text
    assert "return c;" in gs.text  # inner_grade: ungraded
    assert "if (w ==" not in gs.text


def test_the_function_is_the_ocio_processor_of_the_grade() -> None:
    gs = build_grade_shaders([(0, CC)], None)
    sh = gs.shaders[("wall", 0)]
    assert sh.exposure_uniform == gs.exposure_uniforms[("wall", 0)]
    assert [u.value for u in sh.uniforms if u.name == sh.exposure_uniform] == [0.4]
    # the CPU processor of the same grade equals the numpy reference (the GPU text is OCIO's for it)
    proc = grade_processor(Grade.from_color_correction(CC, dynamic_exposure=True))
    px = np.random.default_rng(1).random((500, 3)).astype(np.float32)
    np.testing.assert_allclose(proc.apply(px), CC.apply(px), atol=2e-4)
    proc.set_exposure(-1.0)
    ref = ColorCorrection(**{**_fields(CC), "exposure": -1.0}).apply(px)
    np.testing.assert_allclose(proc.apply(px), ref, atol=2e-4)


def test_builder_requests_never_wait_and_build_once() -> None:
    b = GradeBuilder()
    try:
        walls = [(0, CC)]
        assert b.request(walls) is None  # started on the worker thread
        deadline = time.monotonic() + 20.0
        got = None
        while got is None and time.monotonic() < deadline:
            got = b.request([(0, ColorCorrection(**{**_fields(CC), "exposure": 2.0}))])  # same structure
            time.sleep(0.005)
        assert got is not None and got.key == grade_targets(walls, None)
        assert b.get(walls) is got and b.builds == 1
        other = b.get([(0, ColorCorrection(saturation=0.5))])  # built on this thread
        assert other.key != got.key and b.builds == 2
    finally:
        b.close()


def test_builder_keeps_a_bad_grade_as_its_error(monkeypatch) -> None:
    import stagectl.render.grades as grades

    calls = []

    def refuse(*a, **k):
        calls.append(1)
        raise ColorError("OCIO processor grade (x): refused")

    monkeypatch.setattr(grades, "build_grade_shaders", refuse)
    b = GradeBuilder()
    with pytest.raises(ColorError, match="refused"):
        b.get([(0, CC)])
    with pytest.raises(ColorError, match="refused"):
        b.request([(0, CC)])
    assert len(calls) == 1
