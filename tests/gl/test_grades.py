"""The operator's grades as OpenColorIO functions in the composite pass (stagectl.render.grades, llvmpipe).

One small wall, every output a 16-bit canvas with ``transfer: gamma, gamma: 1`` (tests/helpers.py
LINEAR_CAPTURE: the stored signal is the graded linear light, clamped to 0..1). The outer atlas and the inner
frustum's target are filled with random colours; an ungraded frame captures the light the composite feeds the
grade at every pixel (bilinear samples of the random texels), a graded frame stores the GPU grade of that
light. Reference: OpenColorIO's CPU processor of the same grade (stagectl.color.ocio.grade_processor,
lossless) on the captured light. The bar: within 1 code at 10 bits. The numpy reference
(ColorCorrection.apply) is checked against the rendered canvases in tests/gl/test_features.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import LINEAR_CAPTURE, one_wall_stage

from stagectl.color.ocio import Grade, grade_processor
from stagectl.core.camera import OperatorFlags
from stagectl.core.features import ColorCorrection, FeatureState
from stagectl.core.lut import Lut3D
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.compositor import clear_framebuffer
from stagectl.render.gl.platform import GL
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.stage import load_stage

pytestmark = pytest.mark.gl

GEOMETRY = one_wall_stage("Grade test", (8, 4), [
    "{name: a, canvas: [128, 128], mappings: [{wall: w, rect: [0, 0, 128, 128]}]}",
    "{name: b, canvas: [128, 128], mappings: [{wall: w, rect: [128, 0, 128, 128]}]}",
])
POSE = (0.0, 0.0, 1.6, 0.0, 0.0, 0.0)  # facing the wall: the inner frustum covers its middle

#: a non-separable 33-point LUT (channels mixed, so a wrong axis order shows)
LUT33 = Lut3D.from_function(lambda c: np.stack([
    0.85 * c[..., 0] + 0.1 * c[..., 1] * c[..., 2] + 0.03,
    0.9 * c[..., 1] ** 1.2 + 0.05 * c[..., 0],
    0.75 * c[..., 2] + 0.2 * c[..., 0] * c[..., 1]], -1), 33)
WALL = ColorCorrection(exposure=0.3, temperature=4300, tint=5, slope=(1.1, 0.95, 1.02),
                       offset=(0.01, 0.0, -0.02), power=(0.9, 1.1, 1.05), saturation=1.3, lut=LUT33)
INNER = ColorCorrection(exposure=-0.4, temperature=7200, slope=(0.95, 1.05, 1.1), saturation=0.7, lut=LUT33)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    path = tmp_path_factory.mktemp("grades") / "grades.yaml"
    path.write_text(GEOMETRY + LINEAR_CAPTURE, encoding="utf-8")
    return load_stage(path)


def _render(r, plan) -> dict[str, np.ndarray]:
    res = r.render_frame(plan)
    assert res.ok, res.error
    return {k: v[..., :3].astype(np.float64) / 65535.0 for k, v in r.canvases().items()}


def _codes10(v) -> np.ndarray:
    return np.floor(np.clip(v, 0.0, 1.0) * 1023.0 + 0.5)


def _cpu(cc: ColorCorrection, light: np.ndarray) -> np.ndarray:
    """OpenColorIO's CPU processor of the grade on (..., 3) light."""
    proc = grade_processor(Grade.from_color_correction(cc, dynamic_exposure=True))
    return proc.apply(light.astype(np.float32)).astype(np.float64)


class _Rig:
    """A renderer of the stage, the random outer atlas and inner image, and the captured light."""

    def __init__(self, stage, gl) -> None:
        self.r = StageRenderer(stage, gl)
        self.planner = FramePlanner(stage, inner_resolution=(96, 64))
        self.cams = [camera_state_from_pose(stage, POSE)]
        self.rng = np.random.default_rng(12)
        self.frame = 0

    def plan(self, fs=FeatureState(), inner=True):
        self.frame += 1
        flags = OperatorFlags(freeze_inner=True) if inner else OperatorFlags(inner_enabled=False)
        return self.planner.plan(self.cams, flags, self.frame, fs)

    def fill_outer(self, plan, rgb=None) -> None:
        """The atlas: random light 0..0.95 (or one colour); the outer-only canvases redrawn."""
        t = self.r.outer.target
        if rgb is None:
            img = np.ones((t.height, t.width, 4), np.float32)
            img[..., :3] = self.rng.random((t.height, t.width, 3)) * 0.95
            t.color.upload(img)
        else:
            clear_framebuffer(t.framebuffer, (*rgb, 1.0))
        self.r.compositor.update_cache(self.r.outer.key, plan.uniforms, self.r.outer.texture, force=True)

    def fill_inner(self) -> None:
        t = self.r.inner.targets["cam"]
        img = np.ones((t.height, t.width, 4), np.float32)
        img[..., :3] = self.rng.random((t.height, t.width, 3)) * 0.95
        t.color.upload(img)


@pytest.fixture
def rig(stage, gl):
    rig = _Rig(stage, gl)
    try:
        yield rig
    finally:
        rig.r.release()


def test_gpu_grades_match_the_ocio_cpu_processor_and_exposure_is_a_uniform(rig) -> None:
    r = rig.r
    # ---- the walls: inner frustum off, the canvas is the wall's outer image
    plan = rig.plan(inner=False)
    _render(r, plan)
    rig.fill_outer(plan)
    light = _render(r, rig.plan(inner=False))
    assert all(0.2 < np.mean(v) < 0.8 and v.max() < 1.0 for v in light.values())  # the capture does not clip
    fs = FeatureState(wall_color={"w": WALL})
    graded = _render(r, rig.plan(fs, inner=False))
    for k in light:
        d = np.abs(_codes10(graded[k]) - _codes10(_cpu(WALL, light[k])))
        assert d.max() <= 1, f"{k}: wall grade {d.max():.0f} codes (10-bit) off OCIO's CPU processor"
        assert np.abs(graded[k] - light[k]).max() > 0.1  # the grade did something
    print(f"\nwall grade, GPU vs OCIO CPU: {(d > 0).mean() * 100:.2f} % of values 1 code off at 10 bits")

    # ---- exposure moves a uniform: no program compiled, the result follows the new exposure
    compiles = r.compositor.compiles
    for stops in (1.1, -0.8):
        cc = dataclasses.replace(WALL, exposure=stops)
        graded = _render(r, rig.plan(FeatureState(wall_color={"w": cc}), inner=False))
        assert r.compositor.compiles == compiles, f"exposure {stops}: compiled a program"
        for k in light:
            d = np.abs(_codes10(graded[k]) - _codes10(_cpu(cc, light[k])))
            assert d.max() <= 1, f"{k}: exposure {stops}: {d.max():.0f} codes off"
    # any other change is a new function: it compiles; going back to a grade seen before does not
    other = FeatureState(wall_color={"w": dataclasses.replace(WALL, saturation=0.9)})
    _render(r, rig.plan(other, inner=False))
    assert r.compositor.compiles > compiles
    compiles = r.compositor.compiles
    graded = _render(r, rig.plan(fs, inner=False))
    assert r.compositor.compiles == compiles
    k = "p/a"
    assert np.abs(_codes10(graded[k]) - _codes10(_cpu(WALL, light[k]))).max() <= 1


def test_inner_grade_matches_the_ocio_cpu_processor(rig) -> None:
    r = rig.r
    plan = rig.plan()
    _render(r, plan)
    rig.fill_inner()
    # pixels that show the inner image alone: the same whatever the outer image
    rig.fill_outer(plan, (0.0, 0.0, 0.0))
    on_black = _render(r, rig.plan())
    rig.fill_outer(plan, (1.0, 1.0, 1.0))
    on_white = _render(r, rig.plan())
    inner = {k: np.all(on_black[k] == on_white[k], axis=-1) for k in on_black}
    assert sum(m.sum() for m in inner.values()) > 5000
    compiles = None
    for stops in (INNER.exposure, 0.6):
        cc = dataclasses.replace(INNER, exposure=stops)
        graded = _render(r, rig.plan(FeatureState(inner_color=cc)))
        if compiles is None:
            compiles = r.compositor.compiles
        assert r.compositor.compiles == compiles, "an inner exposure change compiled a program"
        for k, m in inner.items():
            if not m.any():
                continue
            d = np.abs(_codes10(graded[k][m]) - _codes10(_cpu(cc, on_black[k][m])))
            assert d.max() <= 1, f"{k}: inner grade (exposure {stops}) {d.max():.0f} codes off OCIO's CPU"
            assert np.abs(graded[k][m] - on_black[k][m]).max() > 0.1


def test_grades_run_as_ocio_programs_with_their_own_lut_units(rig) -> None:
    r = rig.r
    _render(r, rig.plan(FeatureState(wall_color={"w": WALL}, inner_color=INNER)))
    c = r.compositor
    graded = [k for k in c._programs if k[0] == "graded"]
    assert graded, "no OCIO grade program ran"
    native = ("WALL_CC", "WALL_LUT", "INNER_CC", "INNER_LUT")
    assert not [k for k in c._programs if any(d in repr(k) for d in native)]
    walls, inner = c._grade_gl.values()  # the two parts, each with its 33-point LUT texture
    assert [s for _, smp in walls for s in smp] == ["gw0_lut3d_0Sampler"]
    assert [s for _, smp in inner for s in smp] == ["gi_lut3d_0Sampler"]
    encode_units = [lut.unit for ls in c._luts.values() for lut in ls]
    units = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_IMAGE_UNITS))
    assert walls[0][0].unit == c._grade_first_unit > max(encode_units, default=0)
    assert inner[0][0].unit == units - 1
    # programs hold only the parts they run: the inner-only programs do not change with the walls' grade
    inner_only = {k for k in c._programs if k[0] == "graded" and k[1][-1][0] == "inner"}
    assert inner_only and all(k[2] is None and k[3] is not None for k in inner_only)
    compiles = c.compiles
    _render(r, rig.plan(FeatureState(wall_color={"w": dataclasses.replace(WALL, saturation=0.5)},
                                     inner_color=INNER)))
    assert inner_only <= set(c._programs) and c.compiles > compiles

def test_the_shader_switch_runs_the_old_grade_code_with_the_same_result(stage, gl, monkeypatch) -> None:
    import stagectl.render.compositor as compositor

    fs = FeatureState(wall_color={"w": WALL}, inner_color=INNER)
    out = {}
    for mode in ("ocio", "shader"):
        monkeypatch.setattr(compositor, "DEFAULT_GRADES", mode)
        rig = _Rig(stage, gl)
        try:
            assert rig.r.compositor.grades == mode
            plan = rig.plan()
            _render(rig.r, plan)
            rig.fill_inner()
            rig.fill_outer(plan)
            out[mode] = _render(rig.r, rig.plan(fs))
            keys = repr(list(rig.r.compositor._programs))
            assert ("WALL_GRADE" in keys) == (mode == "ocio") and ("WALL_CC" in keys) == (mode == "shader")
        finally:
            rig.r.release()
    for k in out["ocio"]:
        d = np.abs(_codes10(out["ocio"][k]) - _codes10(out["shader"][k]))
        assert d.max() <= 1, f"{k}: OCIO and shader grades differ by {d.max():.0f} codes"


def test_only_the_newest_grade_sets_keep_their_programs_and_textures(rig, gl) -> None:
    from stagectl.render.compositor import GRADE_SETS_KEPT

    r, c = rig.r, rig.r.compositor
    live = None
    for i in range(GRADE_SETS_KEPT + 3):
        cc = dataclasses.replace(WALL, saturation=0.5 + 0.1 * i)
        _render(r, rig.plan(FeatureState(wall_color={"w": cc}), inner=False))
        if i == GRADE_SETS_KEPT - 1:
            live = len(gl.resources.live())
    assert len(c._grade_gl) == GRADE_SETS_KEPT
    kept = set(c._grade_gl)
    assert {k[2] for k in c._programs if k[0] == "graded"} <= kept
    assert len(gl.resources.live()) == live  # each new set's programs and LUT replace the oldest set's
