"""Wall calibrations in the composite pass (llvmpipe): the three ``calibration:`` forms and the A/B switch.

One stage geometry (as tests/gl/test_colour_composite.py), rendered with the same camera plan under two colour
sections:

* ``LINEAR``: every output a 16-bit canvas with ``transfer: gamma, gamma: 1`` (signal = linear light): the
  composite's linear-light input, captured to 1/65535;
* ``CALIBRATED``: PQ 1000 nits in ``rgb10_a2`` (working space Rec.709 linear, target Rec.2020) on every output,
  ``a`` with ``{clf}`` (a stagectl correction with a known 3x3 and per-channel curve written by
  ``stagectl.color.calibration.write_clf``), ``b`` with ``{lut, clf}`` (an OpenVPCal-style PQ-indexed 1D EOTF CLF
  written by OCIO's own CLF writer, as OpenVPCal writes it, and a hand-written 17-point ``.cube``), ``c`` with
  ``{config, display, view}`` (the config ``stagectl calibrate colour`` writes), ``d`` uncalibrated.

References, each on the captured linear input and quantised with ``transfer.quantize``: OCIO's CPU processor of
the transforms written out in this test in the calibration's own order (target conversion, CLF, clamp, PQ,
.cube), the numpy ``Correction.apply`` with the published ST 2084 maths for ``{clf}``, and the calibrated
config's own display/view processor for ``{config}``. The A/B switch (``FeatureState.uncalibrated``) is drawn
frame after frame on one renderer with static outer content (cached outer canvases), each frame against its
reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import LINEAR_CAPTURE, load_stage_text, one_wall_stage

from stagectl.color import calibration as C
from stagectl.color import transfer as tf
from stagectl.color.ocio import ColorProcessor, load_config, ocio_module
from stagectl.color.output import output_encode
from stagectl.core.features import FeatureState
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer

pytestmark = pytest.mark.gl

GEOMETRY = one_wall_stage("Calibration test", (8, 4), [
    "{name: a, canvas: [128, 256], mappings: [{wall: w, rect: [0, 0, 128, 256]}]}",
    "{name: b, canvas: [128, 256], mappings: [{wall: w, rect: [128, 0, 128, 256]}]}",
    "{name: c, canvas: [128, 256], mappings: [{wall: w, rect: [256, 0, 128, 256]}]}",
    "{name: d, canvas: [128, 256], mappings: [{wall: w, rect: [384, 0, 128, 256]}]}",
], pixels=(64, 64))

LINEAR = LINEAR_CAPTURE

CALIBRATED = """\
colour:
  config: studio-config-latest
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
  outputs:
    p/a: {calibration: {clf: cal/wall_a.clf}}
    p/b: {calibration: {lut: openvpcal/wall_b.cube, clf: openvpcal/wall_b_EOTF.clf}}
    p/c: {calibration: {config: cal/config.ocio, display: p/c calibrated, view: Calibrated}}
"""

POSE = (0.5, 2.5, 1.6, -20.0, 0.0, 0.0)  # the inner frustum on c and d only: a and b from the cached outer canvas
PEAK = 10.0  # 1000 nits in OCIO's nits/100 units
M_TARGET_TO_SCREEN = np.array([[1.06, -0.05, -0.01], [-0.03, 1.05, -0.02], [0.0, -0.04, 1.04]])
CUBE_N = 17


def _correction() -> C.Correction:
    """A known correction: the 3x3 above, then per channel 0.96 x, x^1.03 (1.0 = 100 nits), 1.02 x."""
    n, lo = 256, -16.0
    y = 2.0 ** (lo + (math.log2(PEAK) - lo) * np.arange(n) / (n - 1))
    lut = np.stack([0.96 * y, y ** 1.03, np.minimum(1.02 * y, PEAK)], axis=1)
    lut[0] = 0.0
    return C.Correction(M_TARGET_TO_SCREEN, lut, lo, PEAK)


def _cube_map(rgb: np.ndarray) -> np.ndarray:
    """The signal -> signal map the test's .cube samples: a little cross-talk and a per-channel power."""
    m = np.array([[0.97, 0.02, 0.01], [0.01, 0.98, 0.01], [0.02, 0.0, 0.98]])
    return np.clip(np.asarray(rgb, np.float64) @ m.T, 0.0, 1.0) ** np.array([1.02, 1.0, 0.99])


def _write_cube(path) -> None:
    """A Resolve .cube (red fastest), as OpenVPCal's baker writes one."""
    g = np.linspace(0.0, 1.0, CUBE_N)
    b, gg, r = np.meshgrid(g, g, g, indexing="ij")  # r fastest when raveled
    rows = _cube_map(np.stack([r, gg, b], axis=-1).reshape(-1, 3))
    lines = ["TITLE \"test display-to-display\"", f"LUT_3D_SIZE {CUBE_N}"]
    lines += [" ".join(f"{v:.7f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_openvpcal_clf(path) -> None:
    """OpenVPCal's EOTF CLF: a Lut1D over PQ (0..1 = 0..10000 nits) holding the measured EOTF (target PQ ->
    measured PQ), written with OCIO's CLF writer as OpenVPCal does (``GroupTransform.write``)."""
    o = ocio_module()
    n = 1024
    x = np.linspace(0.0, 1.0, n)
    nits = tf.pq_decode_nits(x)
    measured = np.stack([nits * 1.04, nits ** 0.995 * 1.02, nits * 0.97], axis=1)
    y = tf.pq_encode_nits(np.clip(measured, 0.0, 10000.0))
    lut = o.Lut1DTransform(length=n, inputHalfDomain=False)
    for i in range(n):
        lut.setValue(i, float(y[i, 0]), float(y[i, 1]), float(y[i, 2]))
    g = o.GroupTransform()
    g.appendTransform(lut)
    path.write_text(g.write("Academy/ASC Common LUT Format", o.Config.CreateRaw()), encoding="utf-8")


def _calibration_files(d) -> None:
    (d / "cal").mkdir()
    (d / "openvpcal").mkdir()
    C.write_clf(d / "cal" / "wall_a.clf", _correction(), name="wall a", description="test correction",
                input_desc="Linear Rec.2020, 1.0 = 100 nits")
    _write_cube(d / "openvpcal" / "wall_b.cube")
    _write_openvpcal_clf(d / "openvpcal" / "wall_b_EOTF.clf")
    # the config stagectl calibrate colour writes, for output p/c (PQ 1000 in Rec.2020), with its CLF beside it
    C.write_clf(d / "cal" / "p_c.clf", _correction(), name="p/c", description="test correction",
                input_desc="Linear Rec.2020, 1.0 = 100 nits")
    from stagectl.color.stagefile import OutputColour, config_for

    oc = OutputColour(format="rgb10_a2", transfer="pq", peak_nits=1000.0, target="Linear Rec.2020")
    raw = C.calibrated_config(config_for("ocio://studio-config-latest"), oc, "p_c.clf", "p/c calibrated")
    (d / "cal" / "config.ocio").write_text(raw.serialize(), encoding="utf-8")


def _stage(d, name: str, colour: str):
    return load_stage_text(d / f"{name}.yaml", GEOMETRY + colour)


@pytest.fixture(scope="module")
def rendered(gl_context, tmp_path_factory):
    """The linear capture, and the calibrated stage drawn frame after frame with the A/B switch (one renderer,
    static outer content): frame 0 calibrated, 1 every output uncalibrated, 2 calibrated again, 3 only p/b off."""
    gl_context.make_current()
    d = tmp_path_factory.mktemp("calibration")
    _calibration_files(d)
    stages = {"linear": _stage(d, "linear", LINEAR), "calibrated": _stage(d, "calibrated", CALIBRATED)}
    outs = [f"p/{k}" for k in "abcd"]
    frames = [FeatureState(), FeatureState(uncalibrated=frozenset(outs)), FeatureState(),
              FeatureState(uncalibrated=frozenset({"p/b"}))]
    got: dict = {"dir": d}
    for name, st in stages.items():
        r = StageRenderer(st, gl_context)
        try:
            planner = FramePlanner(st)
            cam = camera_state_from_pose(st, POSE)
            runs = frames if name == "calibrated" else [FeatureState()]
            canvases = []
            for i, fs in enumerate(runs):
                plan = planner.plan([cam], frame=i, features=fs)
                assert plan.outer.static
                res = r.render_frame(plan)
                assert res.ok, res.error
                canvases.append({k: v.copy() for k, v in r.canvases().items()})
            got[name] = canvases
            if name == "calibrated":
                got["shown"] = {k: r.compositor.calibrated(k) for k in r.keys}
                got["previews"] = r.preview_images()
        finally:
            r.release()
    return stages, got


def _linear(got, key) -> np.ndarray:
    codes = got["linear"][0][key][..., :3]
    assert codes.max() < 65535, "linear light reached 1.0: the capture clipped, the comparison would be void"
    assert codes.max() > 10000, "the capture is too dark to test anything"
    return codes.astype(np.float64) / 65535.0


def _ocio(cfg, steps) -> ColorProcessor:
    o = ocio_module()
    return ColorProcessor(cfg.raw.getProcessor(o.GroupTransform(steps)), "test reference")


def _pq_tail(o):
    return [o.RangeTransform(minInValue=0.0, maxInValue=PEAK, minOutValue=0.0, maxOutValue=PEAK),
            o.BuiltinTransform("CURVE - LINEAR_to_ST-2084")]


def _reference(stages, d, key: str, calibrated: bool, lin: np.ndarray) -> np.ndarray:
    """10-bit codes of output ``key`` for linear ``lin`` by OCIO's CPU processor of the transforms written out
    here in the calibration's own order."""
    o = ocio_module()
    cfg = load_config("ocio://studio-config-latest")
    to2020 = o.ColorSpaceTransform(src="Linear Rec.709 (sRGB)", dst="Linear Rec.2020")
    if not calibrated or key == "p/d":
        steps = [to2020, *_pq_tail(o)]
    elif key == "p/a":
        steps = [to2020, o.FileTransform(src=str(d / "cal" / "wall_a.clf"), interpolation=o.INTERP_LINEAR),
                 *_pq_tail(o)]
    elif key == "p/b":
        eotf = str(d / "openvpcal" / "wall_b_EOTF.clf")
        steps = [to2020, o.BuiltinTransform("CURVE - LINEAR_to_ST-2084"),
                 o.FileTransform(src=eotf, interpolation=o.INTERP_LINEAR, direction=o.TRANSFORM_DIR_INVERSE),
                 o.BuiltinTransform("CURVE - ST-2084_to_LINEAR"), *_pq_tail(o),
                 o.FileTransform(src=str(d / "openvpcal" / "wall_b.cube"), interpolation=o.INTERP_LINEAR)]
    else:  # p/c: the calibrated config's own display/view
        cal = load_config(d / "cal" / "config.ocio")
        proc = cal.processor("Linear Rec.709 (sRGB)", display="p/c calibrated", view="Calibrated")
        return tf.quantize(np.clip(proc.apply(lin.astype(np.float32)), 0.0, 1.0), 10).astype(int)
    signal = _ocio(cfg, steps).apply(lin.astype(np.float32))
    return tf.quantize(np.clip(signal, 0.0, 1.0), 10).astype(int)


@pytest.mark.parametrize("key", ["p/a", "p/b", "p/c", "p/d"])
def test_calibrated_canvas_equals_ocio_cpu_within_one_code(rendered, key):
    stages, got = rendered
    lin = _linear(got, key)
    want = _reference(stages, got["dir"], key, True, lin)
    canvas = got["calibrated"][0][key][..., :3].astype(int)
    diff = np.abs(canvas - want)
    assert diff.max() <= 1, diff.max()
    assert np.mean(diff) < 0.1
    if key != "p/d":  # the calibration changes the picture: a test that cannot tell them apart is void
        plain = _reference(stages, got["dir"], key, False, lin)
        assert np.abs(plain - want).max() >= 8


def test_stagectl_clf_equals_the_correction_maths(rendered):
    """``{clf}`` against numpy: the BT.2087 matrix, ``Correction.apply`` (the CLF's maths, from
    stagectl.color.calibration), the 1000-nit clip and the published ST 2084 curve."""
    _, got = rendered
    lin = _linear(got, "p/a")
    m = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    drive = _correction().apply(lin @ m.T)
    ref = tf.quantize(tf.pq_encode(drive, peak_nits=1000.0), 10).astype(int)
    assert np.abs(got["calibrated"][0]["p/a"][..., :3].astype(int) - ref).max() <= 2


def test_encode_reference_is_the_calibrated_processor(rendered):
    """The output's own CPU reference (OutputEncode.codes) includes the calibration; its twin does not."""
    stages, got = rendered
    lin = _linear(got, "p/b").astype(np.float32)
    enc = output_encode(stages["calibrated"].colour, "p/b")
    assert enc.calibrated and enc.uncalibrated is not None and not enc.uncalibrated.calibrated
    np.testing.assert_array_equal(enc.codes(lin), _reference(stages, got["dir"], "p/b", True, lin))
    np.testing.assert_array_equal(enc.uncalibrated.codes(lin), _reference(stages, got["dir"], "p/b", False, lin))
    assert output_encode(stages["calibrated"].colour, "p/d").uncalibrated is None


def test_ab_switch_frame_after_frame(rendered):
    """Frames 0..3: calibrated, all off, calibrated again, only p/b off; each frame's canvases equal their
    reference (cached outer canvases redrawn with the chosen encode on the switching frame)."""
    stages, got = rendered
    want_on = [{"p/a", "p/b", "p/c", "p/d"}, {"p/d"}, {"p/a", "p/b", "p/c", "p/d"}, {"p/a", "p/c", "p/d"}]
    for frame, on in enumerate(want_on):
        for key in ("p/a", "p/b", "p/c", "p/d"):
            lin = _linear(got, key)
            want = _reference(stages, got["dir"], key, key in on, lin)
            canvas = got["calibrated"][frame][key][..., :3].astype(int)
            assert np.abs(canvas - want).max() <= 1, (frame, key)
    assert got["shown"] == {"p/a": True, "p/b": False, "p/c": True, "p/d": None}


def test_previews_of_calibrated_outputs_are_pictures(rendered):
    _, got = rendered
    for img in got["previews"].values():
        assert img.dtype == np.uint8 and img.shape == (256, 128, 4)
