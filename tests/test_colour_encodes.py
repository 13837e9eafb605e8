"""What an output's encode does besides its curve (stagectl/color/output.py through the stage file): HLG at any
nominal display peak of 400..2000 nits, the ACES 1.3 reference gamut compression, and the warning for an
OpenVPCal ``.cube`` that already holds its ``.clf``'s EOTF correction.

References written out here, independent of stagectl: BT.2100-2's HLG inverse EOTF (Table 5, the OOTF with the
system gamma ``1.2 + 0.42 log10(L_W / 1000)``) and the ACES 1.3 reference gamut compression as its CTL
(``LMT.Academy.GamutCompress.ctl``: thresholds, limits and power as published) in plain numpy; OCIO's own
1000-nit HLG display built-in."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from helpers import load_stage_text, one_wall_stage

from stagectl.color import calibration as C
from stagectl.color import transfer as tf
from stagectl.color.ocio import ColorProcessor, ocio_module
from stagectl.color.output import calibrated_processor, gamut_compress_transforms, output_encode
from stagectl.color.stagefile import Calibration, OutputColour, config_for
from stagectl.core.errors import ConfigErrors

BASE = one_wall_stage("Encodes", (2, 1), [
    "{name: a, canvas: [32, 32], mappings: [{wall: w, rect: [0, 0, 32, 32]}]}",
    "{name: b, canvas: [32, 32], mappings: [{wall: w, rect: [32, 0, 32, 32]}]}",
], tail="", center="0, 4, 1.5")  # 10 lines: the colour section starts on line 11
STUDIO = "ocio://studio-config-latest"


def _load(tmp_path, colour: str):
    return load_stage_text(tmp_path / "stage.yaml", BASE + colour)


# ------------------------------------------------------------------------------------------------ HLG


def _hlg_published(nits: np.ndarray, lw: float) -> np.ndarray:
    """BT.2100-2 HLG inverse EOTF (L_B = 0): display light F_D (cd/m^2, Rec.2020 RGB) -> signal E'."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    g = 1.2 + 0.42 * math.log10(lw / 1000.0)
    y = nits @ np.array([0.2627, 0.6780, 0.0593])
    scale = np.where(y > 0, (np.maximum(y, 1e-30) / lw) ** ((1.0 - g) / g), 0.0)[..., None]
    e = np.clip(scale * nits / lw, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(e <= 1.0 / 12.0, np.sqrt(3.0 * e), a * np.log(np.maximum(12.0 * e - b, 1e-30)) + c)


def _light(hi: float, seed: int = 0) -> np.ndarray:
    """A grey ramp 0..hi on a log scale (exact 0 first) and random colours 0..hi (some saturated)."""
    rng = np.random.default_rng(seed)
    ramp = np.concatenate([[0.0], np.geomspace(1e-5, hi, 255)])[:, None].repeat(3, axis=1)
    return np.concatenate([ramp, rng.random((768, 3)) ** 3 * hi]).astype(np.float32)


@pytest.mark.parametrize("lw", [400.0, 600.0, 1000.0, 1500.0, 2000.0])
def test_hlg_at_any_peak_follows_bt2100(tmp_path, lw) -> None:
    stage = _load(tmp_path, f"""\
colour:
  working_space: Linear Rec.2020
  output:
    canvas: {{format: rgb10_a2, transfer: hlg, peak_nits: {lw:g}}}
""")
    oc = stage.colour.output("p/a")
    assert (oc.transfer, oc.peak_nits, oc.target) == ("hlg", lw, "Linear Rec.2020")
    enc = output_encode(stage.colour, "p/a")
    light = _light(1.5 * lw / 100.0)  # up to half again above the peak: clipped at the peak
    want = _hlg_published(np.clip(light.astype(np.float64), 0.0, lw / 100.0) * 100.0, lw)
    got = enc.signal(light)
    assert np.abs(got - want).max() < 1e-4  # a tenth of a 10-bit code, from black to the clip
    assert np.abs(enc.codes(light).astype(int) - tf.quantize(want, 10).astype(int)).max() <= 1
    # the numpy twin of stagectl agrees, and the peak is signal 1
    np.testing.assert_allclose(tf.Transfer("hlg", peak_nits=lw).encode(np.clip(light, 0, lw / 100)), want,
                               atol=1e-9)
    assert enc.signal(np.full((1, 3), lw / 100.0, np.float32))[0] == pytest.approx([1.0] * 3, abs=1e-5)


def test_hlg_1000_is_ocios_builtin_display_but_exact_near_black() -> None:
    """At 1000 nits the encode is OCIO's DISPLAY - CIE-XYZ-D65_to_REC.2100-HLG-1000nit (after Rec.2020 -> XYZ);
    below about 0.03 nits that built-in's luminance floor lifts greys off the formula, the encode does not."""
    o = ocio_module()
    cfg = config_for(STUDIO)
    oc = OutputColour("rgb10_a2", "hlg", 1000.0, target="Linear Rec.2020")
    ours = ColorProcessor(calibrated_processor(cfg, "Linear Rec.2020", oc), "ours")
    xy = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))  # BT.2020 primaries, D65 white
    p = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in xy]).T
    m = p * np.linalg.solve(p, np.array([0.3127 / 0.3290, 1.0, (1 - 0.3127 - 0.3290) / 0.3290]))
    m4 = np.eye(4)
    m4[:3, :3] = m
    builtin = ColorProcessor(cfg.raw.getProcessor(o.GroupTransform([
        o.RangeTransform(minInValue=0.0, maxInValue=10.0, minOutValue=0.0, maxOutValue=10.0),
        o.MatrixTransform(matrix=[float(v) for v in m4.ravel()]),
        o.BuiltinTransform("DISPLAY - CIE-XYZ-D65_to_REC.2100-HLG-1000nit")])), "builtin")
    light = _light(10.0, seed=1)
    nits_y = light.astype(np.float64) @ np.array([0.2627, 0.6780, 0.0593]) * 100.0
    bright = nits_y > 0.05
    got, theirs = ours.apply(light), np.minimum(builtin.apply(light), 1.0)
    assert np.abs(got - theirs)[bright].max() < 2e-5
    want = _hlg_published(light.astype(np.float64) * 100.0, 1000.0)
    dark = ~bright & (nits_y > 1e-6)
    assert np.abs(theirs - want)[dark].max() > 1.0 / 1023  # the built-in: more than a code off in the dark
    assert np.abs(got - want)[dark].max() < 1e-4


# ------------------------------------------------------------------------------------------ gamut compression

RGC_THRESHOLD = np.array([0.815, 0.803, 0.880])  # cyan, magenta, yellow (per channel r, g, b)
RGC_LIMIT = np.array([1.147, 1.264, 1.312])
RGC_POWER = 1.2


def _rgc(ap1: np.ndarray) -> np.ndarray:
    """ACES 1.3 reference gamut compression on ACES AP1 linear RGB (LMT.Academy.GamutCompress.ctl)."""
    rgb = np.asarray(ap1, np.float64)
    ach = rgb.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(ach != 0.0, (ach - rgb) / np.abs(ach), 0.0)
    thr, lim, pwr = RGC_THRESHOLD, RGC_LIMIT, RGC_POWER
    s = (lim - thr) / (((1.0 - thr) / (lim - thr)) ** -pwr - 1.0) ** (1.0 / pwr)
    x = np.maximum(d - thr, 0.0) / s
    cd = np.where(d < thr, d, thr + s * x / (1.0 + x ** pwr) ** (1.0 / pwr))
    return ach - cd * np.abs(ach)


def _distances(ap1: np.ndarray) -> np.ndarray:
    ach = ap1.max(axis=-1, keepdims=True)
    return (ach - ap1) / np.abs(ach)


def _ap1_colours(seed: int = 2) -> np.ndarray:
    """AP1 colours (max 0.05..8) at distances 0..1.3 from the achromatic axis, per channel."""
    rng = np.random.default_rng(seed)
    n = 4000
    ach = 0.05 + rng.random(n) * 8.0
    d = rng.random((n, 3)) * 1.3
    d[np.arange(n), rng.integers(0, 3, n)] = 0.0  # one channel is the max
    return (ach[:, None] * (1.0 - d)).astype(np.float32)


def test_gamut_compression_is_the_aces_13_reference() -> None:
    cfg = config_for(STUDIO)
    o = ocio_module()
    steps = gamut_compress_transforms(cfg, "ACEScg")
    rgc = ColorProcessor(cfg.raw.getProcessor(o.GroupTransform(steps)), "rgc")
    x = _ap1_colours()
    got = rgc.apply(x).astype(np.float64)
    want = _rgc(x)
    scale = np.abs(x).max(axis=-1, keepdims=True)
    assert (np.abs(got - want) / scale).max() < 2e-5
    d = _distances(x.astype(np.float64))
    inside = np.all(d < RGC_THRESHOLD, axis=-1)
    within_limits = np.all(d <= RGC_LIMIT, axis=-1) & ~inside
    assert inside.sum() > 100 and within_limits.sum() > 1000 and np.any(d > 1.0)
    # within the thresholds: unchanged; out of gamut up to the limits: back inside AP1 (no negative component)
    assert (np.abs(got - x) / scale)[inside].max() < 2e-6
    assert (got / scale)[within_limits].min() > -2e-6
    assert np.any(x[within_limits] < 0.0)


def _compressing_stage(tmp_path):
    return _load(tmp_path, """\
colour:
  working_space: ACEScg
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
  outputs:
    p/a: {gamut_compress: true}
""")


def test_an_output_compresses_before_its_encode(tmp_path) -> None:
    stage = _compressing_stage(tmp_path)
    a, b = stage.colour.output("p/a"), stage.colour.output("p/b")
    assert a.gamut_compress and not b.gamut_compress and a == replace(b, gamut_compress=True)
    assert a.describe() == "rgb10_a2 pq 1000 nits in Linear Rec.2020, ACES gamut compression"
    enc_a, enc_b = output_encode(stage.colour, "p/a"), output_encode(stage.colour, "p/b")
    assert enc_a.key != enc_b.key  # their own composite programs
    x = _ap1_colours(seed=3) / 4.0  # up to 200 nits
    d = _distances(x.astype(np.float64))
    inside = np.all(d < RGC_THRESHOLD, axis=-1)
    out = np.all(d <= RGC_LIMIT, axis=-1) & np.any(d > 1.0, axis=-1)
    # in the thresholds: the plain output's codes; out of gamut: the plain output of the compressed colour
    assert np.abs(enc_a.codes(x[inside]).astype(int) - enc_b.codes(x[inside]).astype(int)).max() <= 1
    want = enc_b.signal(_rgc(x[out]).astype(np.float32))
    np.testing.assert_allclose(enc_a.signal(x[out]), want, atol=1e-4)  # a tenth of a 10-bit code
    assert np.abs(enc_a.signal(x[out]) - enc_b.signal(x[out])).max() > 0.05  # it did change them


def test_a_legacy_output_or_a_display_view_can_compress(tmp_path) -> None:
    stage = _load(tmp_path, """\
colour:
  working_space: ACEScg
  output: {gamut_compress: true}
  outputs:
    p/b: {display: sRGB - Display}
""")
    a, b = stage.colour.output("p/a"), stage.colour.output("p/b")
    assert a.mode == "transfer" and a.format == "rgba8" and a.gamut_compress  # no longer legacy
    assert b.mode == "display" and b.gamut_compress
    x = _ap1_colours(seed=4) / 8.0
    x = x[np.any(_distances(x.astype(np.float64)) > 1.0, axis=-1)]
    plain = output_encode(replace(stage.colour, outputs={"p/b": replace(b, gamut_compress=False)}), "p/b")
    np.testing.assert_allclose(output_encode(stage.colour, "p/b").signal(x),
                               plain.signal(_rgc(x).astype(np.float32)), atol=1e-4)


def test_compression_goes_before_a_calibrated_configs_view(tmp_path) -> None:
    """A ``{config, display, view}`` calibration from another config: the compression, then the cross-config
    processor."""
    corr = C.Correction(np.eye(3), np.linspace(0.0, 10.0, 16)[:, None].repeat(3, axis=1), -16.0, 10.0)
    C.write_clf(tmp_path / "w.clf", corr, name="w", description="identity", input_desc="Linear Rec.2020")
    cfg = config_for(STUDIO)
    oc = OutputColour("rgb10_a2", "pq", 1000.0, target="Linear Rec.2020")
    (tmp_path / "config.ocio").write_text(C.calibrated_config(cfg, oc, "w.clf", "w calibrated").serialize(),
                                          encoding="utf-8")
    cal = Calibration("config", config=str(tmp_path / "config.ocio"), display="w calibrated", view="Calibrated")
    with_rgc = replace(oc, calibration=cal, gamut_compress=True)
    x = _ap1_colours(seed=5) / 8.0
    x = x[np.any(_distances(x.astype(np.float64)) > 1.0, axis=-1)]
    got = ColorProcessor(calibrated_processor(cfg, "ACEScg", with_rgc), "with").apply(x)
    without = replace(with_rgc, gamut_compress=False)
    plain = ColorProcessor(calibrated_processor(cfg, "ACEScg", without), "without")
    np.testing.assert_allclose(got, plain.apply(_rgc(x).astype(np.float32)), atol=1e-4)  # 0.1 code at 10 bits


def test_compression_needs_aces2065_in_the_config(tmp_path) -> None:
    o = ocio_module()
    (tmp_path / "raw.ocio").write_text(o.Config.CreateRaw().serialize(), encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        _load(tmp_path, """\
colour:
  config: raw.ocio
  working_space: raw
  outputs:
    p/a:
      canvas: {format: rgb10_a2, transfer: gamma}
      target: raw
      gamut_compress: true
""")
    text = str(info.value)
    assert "stage.yaml:18: colour.outputs.p/a.gamut_compress: expected an OCIO config with ACES2065-1" in text
    assert len(re.findall(r"stage\.yaml:\d+: ", text)) == 1, text


# ---------------------------------------------------------------------------------- OpenVPCal's double EOTF

EXPONENTS = np.array([1.08, 1.05, 1.12])  # the wall's EOTF per channel: shows 1000 (n / 1000)^e for n asked
MATRIX = np.array([[0.97, 0.02, 0.01], [0.01, 0.98, 0.01], [0.02, 0.0, 0.98]])  # the cube's gamut part


def _write_eotf_clf(path) -> None:
    """OpenVPCal's EOTF CLF: a Lut1D over PQ holding the measured EOTF (target PQ -> measured PQ), written by
    OCIO's CLF writer."""
    o = ocio_module()
    n = 1024
    nits = tf.pq_decode_nits(np.linspace(0.0, 1.0, n))[:, None]
    y = tf.pq_encode_nits(np.clip(1000.0 * (nits / 1000.0) ** EXPONENTS, 0.0, 10000.0))
    lut = o.Lut1DTransform(length=n, inputHalfDomain=False)
    for i in range(n):
        lut.setValue(i, *(float(v) for v in y[i]))
    g = o.GroupTransform()
    g.appendTransform(lut)
    path.write_text(g.write("Academy/ASC Common LUT Format", o.Config.CreateRaw()), encoding="utf-8")


def _write_cube(path, *, eotf: bool, n: int = 33) -> None:
    """A display-to-display .cube on the PQ signal (red fastest): the gamut matrix in light, with the EOTF
    correction (what to ask for so that the wall shows the target: the measured EOTF inverted) or without."""
    g = np.linspace(0.0, 1.0, n)
    b, gg, r = np.meshgrid(g, g, g, indexing="ij")
    nits = np.minimum(tf.pq_decode_nits(np.stack([r, gg, b], axis=-1).reshape(-1, 3)), 1000.0)
    if eotf:
        nits = 1000.0 * (nits / 1000.0) ** (1.0 / EXPONENTS)
    rows = tf.pq_encode_nits(np.clip(nits @ MATRIX.T, 0.0, 1000.0))
    path.write_text(f"LUT_3D_SIZE {n}\n" + "".join(" ".join(f"{v:.7f}" for v in row) + "\n" for row in rows),
                    encoding="utf-8")


def test_a_cube_holding_the_eotf_correction_beside_its_clf_is_warned_once(tmp_path, caplog) -> None:
    d = tmp_path / "openvpcal"
    d.mkdir()
    _write_eotf_clf(d / "wall_EOTF.clf")
    _write_cube(d / "wall_CS_EOTF.cube", eotf=True)
    _write_cube(d / "wall_CS_ONLY.cube", eotf=False)
    colour = """\
colour:
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
  outputs:
    p/a:
      calibration: {lut: openvpcal/wall_CS_EOTF.cube, clf: openvpcal/wall_EOTF.clf}
    p/b:
      calibration: {lut: openvpcal/wall_CS_ONLY.cube, clf: openvpcal/wall_EOTF.clf}
"""
    with caplog.at_level(logging.WARNING, logger="stagectl.color"):
        stage = _load(tmp_path, colour)
        _load(tmp_path, colour)  # loaded again (a reload): said once
    assert stage.colour.output("p/a").calibration.kind == "files"  # a warning, not an error
    said = [r for r in caplog.records if r.name == "stagectl.color"]
    assert len(said) == 1, [r.getMessage() for r in said]
    text = said[0].getMessage()
    assert said[0].levelno == logging.WARNING
    assert text.startswith(str(tmp_path / "stage.yaml")), text
    assert ("stage.yaml:17: colour.outputs.p/a.calibration: wall_CS_EOTF.cube already holds the EOTF correction "
            "of wall_EOTF.clf") in text, text
    assert "the EOTF is corrected twice" in text and "{lut: wall_CS_EOTF.cube}" in text and "_CS_ONLY" in text
    assert "\n" not in text
