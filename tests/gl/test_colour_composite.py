"""The stage file's colour section through the composite pass (llvmpipe): deep canvases, OCIO output encodes.

One stage geometry, rendered with three colour sections and the same camera plan:

* ``LINEAR``: every output a 16-bit canvas with ``transfer: gamma, gamma: 1`` (signal = linear light clamped
  to 0..1): the composite's linear-light input, captured to 1/65535;
* ``ENCODED``: output ``a`` PQ 1000 nits in ``rgb10_a2`` (working space Rec.709 linear, target Rec.2020), ``b``
  left out (8-bit sRGB, the composite's own encode), ``c`` ACES 2.0 HDR 1000 nits on the ``Rec.2100-PQ``
  display in ``rgba16``, ``d`` PQ narrow range in ``rgb10_a2``;
* no colour section at all.

References: OpenColorIO's CPU processor (and, for PQ, stagectl's numpy ST 2084 from the published constants)
applied to the captured linear input, quantised with ``transfer.quantize``; the legacy output against the
stage without a colour section, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import LINEAR_CAPTURE, load_stage_text, one_wall_stage

from stagectl.color import transfer as tf
from stagectl.color.output import output_encode
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer

pytestmark = pytest.mark.gl

GEOMETRY = one_wall_stage("Colour test", (8, 4), [
    "{name: a, canvas: [64, 128], mappings: [{wall: w, rect: [0, 0, 64, 128]}]}",
    "{name: b, canvas: [64, 128], mappings: [{wall: w, rect: [64, 0, 64, 128]}]}",
    "{name: c, canvas: [64, 128], mappings: [{wall: w, rect: [128, 0, 64, 128]}]}",
    "{name: d, canvas: [64, 128], mappings: [{wall: w, rect: [192, 0, 64, 128]}]}",
])

LINEAR = LINEAR_CAPTURE

ENCODED = """\
colour:
  config: studio-config-latest
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/a: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
    p/c:
      canvas: {format: rgba16}
      display: Rec.2100-PQ - Display
      view: ACES 2.0 - HDR 1000 nits (P3 D65)
    p/d: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000, range: narrow}}
"""

POSE = (0.5, 0.0, 1.6, 5.0, 0.0, 0.0)  # the inner frustum covers part of the wall: inner, soft edge and outer


def _stage(tmp_path, name: str, colour: str):
    return load_stage_text(tmp_path / f"{name}.yaml", GEOMETRY + colour)


@pytest.fixture(scope="module")
def rendered(gl_context, tmp_path_factory):
    """Canvases of the three stages for one plan (the renderers are released before the tests look)."""
    gl_context.make_current()
    tmp = tmp_path_factory.mktemp("colour")
    stages = {"linear": _stage(tmp, "linear", LINEAR), "encoded": _stage(tmp, "encoded", ENCODED),
              "plain": _stage(tmp, "plain", "")}
    out = {}
    for name, st in stages.items():
        r = StageRenderer(st, gl_context)
        try:
            plan = FramePlanner(st).plan([camera_state_from_pose(st, POSE)], frame=0)
            res = r.render_frame(plan)
            assert res.ok, res.error
            out[name] = ({k: v.copy() for k, v in r.canvases().items()},
                         {k: r.canvas_format(k) for k in r.keys}, r.preview_images())
        finally:
            r.release()
    return stages, out


def _linear(rendered, key):
    canvases, formats, _ = rendered[1]["linear"]
    assert formats[key] == "rgba16"
    codes = canvases[key][..., :3]
    assert codes.dtype == np.uint16
    assert codes.max() < 65535, "linear light reached 1.0: the capture clipped, the comparison would be void"
    assert codes.max() > 10000, "the capture is too dark to test anything"
    return codes.astype(np.float64) / 65535.0


def test_formats_and_dtypes(rendered):
    canvases, formats, previews = rendered[1]["encoded"]
    assert formats == {"p/a": "rgb10_a2", "p/b": "rgba8", "p/c": "rgba16", "p/d": "rgb10_a2"}
    assert canvases["p/a"].dtype == np.uint16 and canvases["p/b"].dtype == np.uint8
    assert canvases["p/a"][..., :3].max() <= 1023 and set(np.unique(canvases["p/a"][..., 3])) == {3}
    assert set(np.unique(canvases["p/c"][..., 3])) == {65535}
    for k, img in previews.items():
        assert img.dtype == np.uint8 and img.shape == canvases[k].shape


def test_pq_10bit_equals_ocio_cpu_within_one_code(rendered):
    stages, out = rendered
    lin = _linear(rendered, "p/a")
    enc = output_encode(stages["encoded"].colour, "p/a")
    want = enc.codes(lin.astype(np.float32))  # OCIO CPU processor, quantised by transfer.quantize
    got = out["encoded"][0]["p/a"][..., :3].astype(int)
    diff = np.abs(got - want.astype(int))
    assert diff.max() <= 1, diff.max()
    assert np.mean(diff) < 0.1
    assert got.max() > 400  # real PQ codes (100 nits = 520), not an 8-bit image scaled
    # and against the published ST 2084 maths: Rec.709 -> Rec.2020 (BT.2087 matrix), 1.0 = 100 nits, clip 1000
    m = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    ref = tf.quantize(tf.pq_encode(lin @ m.T, peak_nits=1000.0), 10)
    assert np.abs(got - ref.astype(int)).max() <= 1


def test_narrow_range_pq(rendered):
    stages, out = rendered
    lin = _linear(rendered, "p/d")
    enc = output_encode(stages["encoded"].colour, "p/d")
    signal = enc.signal(lin.astype(np.float32))
    want = tf.quantize(signal, 10, narrow=True).astype(int)
    got = out["encoded"][0]["p/d"][..., :3].astype(int)
    assert np.abs(got - want).max() <= 1
    assert got.min() >= 64  # narrow-range black and above: nothing in the reserved codes


def test_aces_display_view_16bit_equals_ocio_cpu(rendered):
    stages, out = rendered
    lin = _linear(rendered, "p/c")
    cfg_proc = output_encode(stages["encoded"].colour, "p/c")
    want = tf.quantize(np.clip(cfg_proc.signal(lin.astype(np.float32)), 0, 1), 16).astype(int)
    got = out["encoded"][0]["p/c"][..., :3].astype(int)
    # 1 10-bit code = 64 16-bit codes: the bar of the OCIO pass tests (ACES 2.0 GPU vs CPU within 0.02 codes)
    assert np.abs(got - want).max() <= 64


def test_legacy_output_is_bit_identical_to_a_stage_without_colour(rendered):
    _, out = rendered
    enc = out["encoded"][0]["p/b"]
    plain = out["plain"][0]["p/b"]
    assert enc.dtype == plain.dtype == np.uint8
    np.testing.assert_array_equal(enc, plain)
    # every output of the stage without the section stays 8-bit sRGB
    assert set(out["plain"][1].values()) == {"rgba8"}
    # and the 8-bit canvas is the sRGB encoding of the captured linear light (GL's rounding)
    ref = np.rint(tf.srgb_encode(_linear(rendered, "p/b")) * 255.0)
    assert np.abs(plain[..., :3].astype(int) - ref).max() <= 1
