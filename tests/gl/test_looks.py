"""Per-wall and per-camera OpenColorIO looks in the composite pass (llvmpipe; docs/colour.md *Looks*).

Stage file: the looks config of tests/looks_config.py, wall ``w`` with the look ``Warm`` in ``ACEScg``, camera
``cam`` with ``Show LUT`` then ``Cool``. The linear stage's outputs are 16-bit canvases with ``transfer: gamma,
gamma: 1`` (the stored signal is the linear light, clamped to 0..1): with every look switched off
(``FeatureState.looks_off``) a frame captures the light the composite feeds the looks, with them on the GPU's
look (and grade) of it. Reference: OpenColorIO's CPU processor of the same look and grade
(``look_processor``, lossless), itself checked against the looks' numpy maths in tests/test_colour_looks.py.
The bar: within 1 code at 10 bits.

At the inner frustum's soft edge the wall's and the camera's images are blended in the working space (linear
light), before the output's encode: a PQ stage of the same geometry, drawn from the same textures, must equal
``PQ(mix(wall look(outer), camera look(inner), weight))``, with the weight and the inner light measured on the
linear stage.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import one_wall_stage
from looks_config import write_looks_config

from stagectl.color import transfer as tf
from stagectl.color.ocio import Grade, look_processor
from stagectl.color.stagefile import looks_of
from stagectl.core.camera import OperatorFlags
from stagectl.core.features import ColorCorrection, FeatureState
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.compositor import clear_framebuffer
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.stage import load_stage

pytestmark = pytest.mark.gl

GEOMETRY = one_wall_stage("Look test", (8, 4), [
    "{name: a, canvas: [128, 128], mappings: [{wall: w, rect: [0, 0, 128, 128]}]}",
    "{name: b, canvas: [128, 128], mappings: [{wall: w, rect: [128, 0, 128, 128]}]}",
]).replace("  inner: {resolution: [320, 180]}", "  inner: {resolution: [320, 180], soft_edge: 0.3}")
LOOKS = """\
  walls:
    w: {look: Warm, working_space: ACEScg}
  cameras:
    cam: {look: [Show LUT, Cool]}
"""
COLOUR = """\
colour:
  config: looks.ocio
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {CANVAS}
    target: Linear Rec.709 (sRGB)
"""
LINEAR = COLOUR.replace("{CANVAS}", "{format: rgba16, transfer: gamma, gamma: 1.0}") + LOOKS
PQ = COLOUR.replace("{CANVAS}", "{format: rgb10_a2, transfer: pq, peak_nits: 1000}") + LOOKS
POSE = (0.0, 0.0, 1.6, 0.0, 0.0, 0.0)  # facing the wall: the inner frustum covers its middle
OFF = FeatureState(looks_off={"wall:w", "camera:cam"})
WALL = ColorCorrection(exposure=-0.3, temperature=5000, slope=(1.05, 0.97, 1.0), saturation=1.2)
INNER = ColorCorrection(exposure=0.2, temperature=6500, tint=4, offset=(0.01, 0.0, -0.01), saturation=0.8)


TWO = GEOMETRY.replace("  - {name: cam, tracking: t, sensor_mm: [24.89, 14.0]}\n",
                       "  - {name: cam, tracking: t, sensor_mm: [24.89, 14.0]}\n"
                       "  - {name: crane, tracking: t, sensor_mm: [24.89, 14.0]}\n")
TWO_LOOKS = LINEAR.replace("    cam: {look: [Show LUT, Cool]}\n",
                           "    cam: {look: [Show LUT, Cool]}\n"
                           "    crane: {look: Warm, working_space: Linear Rec.2020}\n")


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    d = tmp_path_factory.mktemp("looks")
    write_looks_config(d)
    out = {}
    (d / "two.yaml").write_text(TWO + TWO_LOOKS, encoding="utf-8")
    out["two"] = load_stage(d / "two.yaml")
    for name, colour in (("linear", LINEAR), ("pq", PQ)):
        path = d / f"{name}.yaml"
        path.write_text(GEOMETRY + colour, encoding="utf-8")
        out[name] = load_stage(path)
    return out


def _codes10(v) -> np.ndarray:
    return np.floor(np.clip(v, 0.0, 1.0) * 1023.0 + 0.5)


def _cpu(spec, cc, light: np.ndarray) -> np.ndarray:
    grade = None if cc is None else Grade.from_color_correction(cc, dynamic_exposure=True)
    return look_processor(spec, grade).apply(light.astype(np.float32)).astype(np.float64)


class _Rig:
    """A renderer of a stage, with seeded random images in the outer atlas and the inner target."""

    def __init__(self, stage, gl) -> None:
        self.r = StageRenderer(stage, gl)
        self.planner = FramePlanner(stage, inner_resolution=(96, 64))
        self.cams = [camera_state_from_pose(stage, POSE)]
        self.frame = 0

    def plan(self, fs=FeatureState(), inner=True):
        self.frame += 1
        flags = OperatorFlags(freeze_inner=True) if inner else OperatorFlags(inner_enabled=False)
        return self.planner.plan(self.cams, flags, self.frame, fs)

    def render(self, fs=FeatureState(), inner=True) -> dict[str, np.ndarray]:
        res = self.r.render_frame(self.plan(fs, inner))
        assert res.ok, res.error
        return {k: v[..., :3].astype(np.float64) for k, v in self.r.canvases().items()}

    def fill_outer(self, rgb=None, seed=3) -> None:
        plan = self.plan()
        t = self.r.outer.target
        if rgb is None:
            img = np.ones((t.height, t.width, 4), np.float32)
            img[..., :3] = np.random.default_rng(seed).random((t.height, t.width, 3)) * 0.9
            t.color.upload(img)
        else:
            clear_framebuffer(t.framebuffer, (*rgb, 1.0))
        self.r.compositor.update_cache(self.r.outer.key, plan.uniforms, self.r.outer.texture, force=True)

    def fill_inner(self, seed=5, camera="cam") -> None:
        t = self.r.inner.targets[camera]
        img = np.ones((t.height, t.width, 4), np.float32)
        img[..., :3] = np.random.default_rng(seed).random((t.height, t.width, 3)) * 0.9
        t.color.upload(img)


@pytest.fixture
def rig(stages, gl):
    rig = _Rig(stages["linear"], gl)
    try:
        yield rig
    finally:
        rig.r.release()


def test_a_wall_look_then_its_grade_match_the_ocio_cpu_processor(rig, stages) -> None:
    spec = looks_of(stages["linear"], "walls")["w"]
    rig.render(OFF, inner=False)
    rig.fill_outer()
    light = {k: v / 65535.0 for k, v in rig.render(OFF, inner=False).items()}
    assert all(0.2 < np.mean(v) < 0.8 and v.max() < 1.0 for v in light.values())  # the capture does not clip
    for cc in (None, WALL):
        fs = FeatureState() if cc is None else FeatureState(wall_color={"w": cc})
        got = {k: v / 65535.0 for k, v in rig.render(fs, inner=False).items()}
        for k in light:
            d = np.abs(_codes10(got[k]) - _codes10(_cpu(spec, cc, light[k])))
            assert d.max() <= 1, f"{k}: wall look (grade {cc is not None}) {d.max():.0f} codes (10-bit) off"
            assert np.abs(got[k] - light[k]).max() > 0.05  # the look did something
    # an exposure change moves a uniform of the look's function: nothing compiles
    compiles = rig.r.compositor.compiles
    cc = dataclasses.replace(WALL, exposure=0.5)
    got = {k: v / 65535.0 for k, v in rig.render(FeatureState(wall_color={"w": cc}), inner=False).items()}
    assert rig.r.compositor.compiles == compiles
    assert np.abs(_codes10(got["p/a"]) - _codes10(_cpu(spec, cc, light["p/a"]))).max() <= 1
    # switched off, the wall shows its grade alone, in the look's working space (ACEScg)
    got = {k: v / 65535.0 for k, v in rig.render(FeatureState(wall_color={"w": WALL}, looks_off={"wall:w"}),
                                                 inner=False).items()}
    alone = dataclasses.replace(spec, looks=())
    assert np.abs(_codes10(got["p/a"]) - _codes10(_cpu(alone, WALL, light["p/a"]))).max() <= 1


def _inner_light(rig, poses=None):
    """Per output: the weight of the inner image at each pixel and the inner light there (looks off), from
    two frames over a black and a grey outer image."""
    off = FeatureState(looks_off={"wall:w", "camera:cam", "camera:crane"} if poses else {"wall:w", "camera:cam"})
    rig.fill_outer((0.0, 0.0, 0.0))
    c0 = {k: v / 65535.0 for k, v in rig.render(off).items()}
    rig.fill_outer((0.5, 0.5, 0.5))
    c1 = {k: v / 65535.0 for k, v in rig.render(off).items()}
    out = {}
    for k in c0:
        w = 1.0 - (c1[k] - c0[k]) / 0.5  # c1 = (1 - w) 0.5 + w I, c0 = w I
        out[k] = (w.mean(axis=-1), c0[k] / np.maximum(w, 1e-6))
    return out


def test_a_camera_look_then_the_inner_grade_match_the_ocio_cpu_processor(rig, stages) -> None:
    spec = looks_of(stages["linear"], "cameras")["cam"]
    rig.render(OFF)
    rig.fill_inner()
    measured = _inner_light(rig)
    for cc in (None, INNER):
        fs = FeatureState() if cc is None else FeatureState(inner_color=cc)
        got = {k: v / 65535.0 for k, v in rig.render(fs).items()}
        n = 0
        for k, (w, light) in measured.items():
            m = w > 0.9999  # the inner image alone
            n += m.sum()
            if m.any():
                d = np.abs(_codes10(got[k][m]) - _codes10(_cpu(spec, cc, light[m])))
                assert d.max() <= 1, f"{k}: camera look (grade {cc is not None}) {d.max():.0f} codes off"
                assert np.abs(got[k][m] - light[m]).max() > 0.05
        assert n > 3000


def test_the_soft_edge_blends_in_linear_light_before_the_encode(rig, stages, gl) -> None:
    wall = looks_of(stages["linear"], "walls")["w"]
    cam = looks_of(stages["linear"], "cameras")["cam"]
    rig.render(OFF)
    rig.fill_inner()
    measured = _inner_light(rig)
    pq = _Rig(stages["pq"], gl)
    try:
        pq.render(OFF)
        pq.fill_inner()
        pq.fill_outer((0.5, 0.5, 0.5))
        got = pq.render(FeatureState(wall_color={"w": WALL}, inner_color=INNER))
    finally:
        pq.r.release()
    outer = _cpu(wall, WALL, np.full((1, 3), 0.5))[0]
    n = 0
    worst = 0.0
    wrong = []
    for k, (w, light) in measured.items():
        m = (w > 0.2) & (w < 0.8)  # the soft edge
        n += m.sum()
        if not m.any():
            continue
        inner = _cpu(cam, INNER, light[m])
        blend = (1.0 - w[m, None]) * outer + w[m, None] * inner
        want = tf.quantize(tf.pq_encode(blend, peak_nits=1000.0), 10).astype(np.float64)
        d = np.abs(got[k][m] - want)
        worst = max(worst, float(d.max()))
        # what a blend of the two encoded images would give: far off
        enc = (1.0 - w[m, None]) * tf.pq_encode(outer, peak_nits=1000.0) + w[m, None] * tf.pq_encode(
            inner, peak_nits=1000.0)
        wrong.append(np.abs(tf.quantize(enc, 10).astype(np.float64) - want).max())
    print(f"\nsoft edge: {n} pixels, GPU vs reference blend {worst:.0f} codes (10-bit PQ); a blend of the "
          f"encoded images would be {max(wrong):.0f} codes off")
    assert n > 500, n
    assert worst <= 1, f"soft edge: {worst:.0f} codes (10-bit PQ) off the reference blend in linear light"
    assert max(wrong) >= 8  # the test tells the two blends apart


def test_each_camera_runs_its_own_look_whatever_its_place_in_the_composition(stages, gl) -> None:
    """Two cameras with different looks, their frusta apart on the wall: each frustum shows its camera's look,
    in either composition order (the look function is chosen per inner slot, by the camera in it)."""
    stage = stages["two"]
    specs = looks_of(stage, "cameras")
    poses = {"cam": (0.0, 0.0, 1.6, 28.0, 0.0, 0.0), "crane": (0.0, 0.0, 1.6, -28.0, 0.0, 0.0)}
    alone = {}
    rig = _Rig(stage, gl)
    try:
        for name in poses:  # where each camera's image alone is shown, and its light there (looks off)
            rig.planner = FramePlanner(stage, inner_resolution=(96, 64))
            rig.cams = [camera_state_from_pose(stage, poses[name], camera=name)]
            rig.render(inner=True)
            rig.fill_inner(seed=11 if name == "cam" else 12, camera=name)
            alone[name] = _inner_light(rig, poses)
        for order in (("cam", "crane"), ("crane", "cam")):
            rig.planner = FramePlanner(stage, inner_resolution=(96, 64))
            rig.cams = [camera_state_from_pose(stage, poses[n], camera=n) for n in order]
            rig.render()
            for name in poses:
                rig.fill_inner(seed=11 if name == "cam" else 12, camera=name)
            rig.fill_outer((0.5, 0.5, 0.5))
            got = {k: v / 65535.0 for k, v in rig.render(FeatureState(inner_color=INNER)).items()}
            for name, other in (("cam", "crane"), ("crane", "cam")):
                n = 0
                for k in got:
                    w, light = alone[name][k]
                    m = (w > 0.9999) & (alone[other][k][0] < 1e-4)
                    n += m.sum()
                    if m.any():
                        d = np.abs(_codes10(got[k][m]) - _codes10(_cpu(specs[name], INNER, light[m])))
                        assert d.max() <= 1, f"order {order}: {name} on {k}: {d.max():.0f} codes off its look"
                assert n > 1000, (order, name, n)
    finally:
        rig.r.release()


def test_the_look_switch_compiles_off_the_render_thread_and_switching_back_compiles_nothing(stages, gl,
                                                                                          monkeypatch) -> None:
    """color.look through a renderer with the compile worker (as stagectl run renders): the frames go on with
    the look until the programs without it arrive, nothing compiles on the render thread, the result is what a
    renderer without a worker draws; switching back shows on the next frame and compiles nothing anywhere."""
    import collections
    import threading
    import time

    from stagectl.render.gl.platform import GL

    calls: collections.Counter = collections.Counter()
    for name in ("glCompileShader", "glLinkProgram"):
        real = getattr(GL, name)

        def counted(*a, _real=real, _name=name):
            calls[(_name, threading.current_thread() is threading.main_thread())] += 1
            return _real(*a)

        monkeypatch.setattr(GL, name, counted)
    stage = stages["linear"]
    on = FeatureState(wall_color={"w": WALL}, inner_color=INNER)
    off = dataclasses.replace(on, looks_off=frozenset({"wall:w", "camera:cam"}))

    def rig_of(worker: bool) -> _Rig:
        rig = _Rig(stage, gl)
        rig.r.release()
        rig.r = StageRenderer(stage, gl, compile_worker=worker)
        return rig

    want = {}
    for fs in (on, off):
        ref = rig_of(False)
        try:
            ref.render(fs)
            ref.fill_inner()
            ref.fill_outer()
            want[fs] = ref.render(fs)
        finally:
            ref.r.release()
    rig = rig_of(True)
    try:
        rig.render(on)  # start-up: compiled here
        rig.fill_inner()
        rig.fill_outer()
        assert all(np.array_equal(v, want[on][k]) for k, v in rig.render(on).items())
        calls.clear()
        frames, end = 0, time.monotonic() + 60.0
        while True:
            got = rig.render(off)
            frames += 1
            if not all(np.array_equal(v, want[on][k]) for k, v in got.items()) or time.monotonic() > end:
                break
            time.sleep(0.005)
        assert all(np.array_equal(v, want[off][k]) for k, v in got.items()), "the look switched off: not the " \
            "reference drawn without a worker"
        assert not any(n for (_, main), n in calls.items() if main), f"compiled on the render thread: {calls}"
        assert any(n for (_, main), n in calls.items() if not main)
        print(f"\nlook off: shown after {frames} frames, compiled off the render thread")
        calls.clear()
        got = rig.render(on)  # back: its programs are kept
        assert all(np.array_equal(v, want[on][k]) for k, v in got.items())
        assert not calls, calls
    finally:
        rig.r.release()
