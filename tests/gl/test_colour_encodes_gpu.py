"""The encodes of tests/test_colour_encodes.py on the GPU (llvmpipe): HLG at 600 and 2000 nits, and a PQ output
with the ACES 1.3 reference gamut compression, each output's own shader (the one the composite pass compiles)
read back from ``rgba32f`` within 1 code at 10 bits of OCIO's CPU processor -- the bar of issue 12 -- over
light from black to past the peak, including colours outside AP1 and outside Rec.2020."""

from __future__ import annotations

import numpy as np
import pytest

from stagectl.color.output import output_encode
from stagectl.color.stagefile import ColourSettings, OutputColour
from stagectl.render.ocio_pass import OcioPass

pytestmark = pytest.mark.gl

ONE_CODE_10 = 1.0 / 1023.0
H, W = 32, 64


def _image(hi: float, seed: int) -> np.ndarray:
    """Rows 0-7: a grey ramp 0..hi (log scale, exact 0 first); rows 8-31: colours 0..hi, half of them with a
    negative component (outside the working gamut)."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), np.float32)
    img[:8] = np.concatenate([[0.0], np.geomspace(1e-5, hi, 8 * W - 1)]).reshape(8, W)[..., None]
    colours = rng.random((H - 8, W, 3)) ** 2 * hi
    neg = rng.random((H - 8, W)) < 0.5
    colours[neg, rng.integers(0, 3, int(neg.sum()))] *= -0.3
    img[8:] = colours
    return img


CASES = {
    "hlg_600": (OutputColour("rgb10_a2", "hlg", 600.0, target="Linear Rec.2020"), 9.0),
    "hlg_2000": (OutputColour("rgb10_a2", "hlg", 2000.0, target="Linear Rec.2020"), 30.0),
    "pq_1000_gamut_compressed": (OutputColour("rgb10_a2", "pq", 1000.0, target="Linear Rec.2020",
                                              gamut_compress=True), 15.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_encode_on_the_gpu_within_one_10bit_code(resources, case) -> None:
    oc, hi = CASES[case]
    enc = output_encode(ColourSettings("ocio://studio-config-latest", "ACEScg", {"p/a": oc}), "p/a")
    image = _image(hi, seed=len(case))
    with OcioPass(resources, enc.shader, label=f"test.{case}") as op:
        gpu = op.apply(image)
    cpu = enc.signal(image)
    assert np.all(np.isfinite(gpu))
    err = float(np.max(np.abs(gpu[..., :3] - cpu)))
    assert err <= ONE_CODE_10, (case, err * 1023)
    # a spread of codes up to the peak (PQ 1000 nits: signal 0.75; HLG: 1)
    assert cpu.min() >= 0.0 and cpu.max() > 0.75 and len(np.unique(np.round(cpu * 1023))) > 500
