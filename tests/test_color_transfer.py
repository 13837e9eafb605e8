"""Transfer functions and code quantisation (stagectl.color.transfer) against the standards and OpenColorIO.

References: the constants as printed in SMPTE ST 2084 / ITU-R BT.2100; known points published in ITU-R
BT.2408 (HDR reference white 203 cd/m^2 = PQ 58 %, = HLG 75 % on a 1000 cd/m^2 display) and the PQ code
values widely tabulated for 10-bit full range (100 cd/m^2 -> 520, 1000 -> 769); OpenColorIO's built-in
transforms run on its CPU processor (an independent implementation: half-float LUTs built from its own
formulas), and the existing numpy sRGB twin in stagectl.core.grade.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stagectl.color import ColorError
from stagectl.color import transfer as tf
from stagectl.core import grade as core_grade

ocio = pytest.importorskip("PyOpenColorIO")


def _ocio_apply(transform, rgb) -> np.ndarray:
    """OCIO's CPU processor on (N, 3) float32 (a raw config: nothing but the transform; lossless, i.e.
    without the fast pow/log approximations of OCIO's default optimisation)."""
    cfg = ocio.Config.CreateRaw()
    cpu = cfg.getProcessor(transform).getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS)  # exact pow/log
    a = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    cpu.applyRGB(a)
    return a.astype(np.float64)


def _grey(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return np.repeat(v[:, None], 3, axis=1)


def _npm(primaries, white) -> np.ndarray:
    """RGB -> XYZ normalised primary matrix from chromaticities (SMPTE RP 177), for the OCIO display tests."""
    xyz = lambda x, y: np.array([x / y, 1.0, (1.0 - x - y) / y])  # noqa: E731
    P = np.stack([xyz(*p) for p in primaries], axis=1)
    S = np.linalg.solve(P, xyz(*white))
    return P * S


D65 = (0.3127, 0.3290)
REC2020 = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
REC709 = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))


# --------------------------------------------------------------------------------------------- PQ


def test_pq_constants_are_the_published_values():
    # ST 2084 / BT.2100 Table 4 print them as rationals and as these decimals
    assert tf.PQ_M1 == 0.1593017578125 == 2610 / 16384
    assert tf.PQ_M2 == 78.84375 == 2523 / 4096 * 128
    assert tf.PQ_C1 == 0.8359375 == 3424 / 4096
    assert tf.PQ_C2 == 18.8515625 == 2413 / 4096 * 32
    assert tf.PQ_C3 == 18.6875 == 2392 / 4096 * 32
    assert tf.PQ_C1 == tf.PQ_C3 - tf.PQ_C2 + 1.0


def test_pq_known_points():
    assert tf.pq_encode_nits(10000.0) == pytest.approx(1.0, abs=1e-15)
    assert tf.pq_encode_nits(0.0) == pytest.approx(0.8359375**78.84375, rel=1e-12)  # c1^m2, ~7.3e-7
    # BT.2408: 203 cd/m^2 (HDR reference white) is PQ 58 %
    assert round(float(tf.pq_encode_nits(203.0)) * 100) == 58
    # the tabulated 10-bit full-range codes
    codes = tf.quantize(tf.pq_encode_nits([100.0, 1000.0, 10000.0]), 10)
    assert codes.tolist() == [520, 769, 1023]
    assert tf.pq_decode_nits(1.0) == pytest.approx(10000.0, rel=1e-12)
    assert tf.pq_decode_nits(0.0) == 0.0


def test_pq_round_trip_and_monotonic():
    nits = np.geomspace(1e-4, 1e4, 2001)
    np.testing.assert_allclose(tf.pq_decode_nits(tf.pq_encode_nits(nits)), nits, rtol=1e-9)
    s = np.linspace(0.0, 1.0, 4097)
    assert np.all(np.diff(tf.pq_decode_nits(s)) > 0)
    assert np.all(np.diff(tf.pq_encode_nits(nits)) > 0)


def test_pq_scene_linear_convention_and_peak_clip():
    # scene-linear 1.0 = 100 nits; a 1000-nit peak clips everything above 10.0
    assert tf.pq_encode(1.0) == pytest.approx(float(tf.pq_encode_nits(100.0)), abs=1e-15)
    assert tf.pq_encode(5.0) == pytest.approx(float(tf.pq_encode_nits(500.0)), abs=1e-15)
    assert tf.pq_encode(20.0, peak_nits=1000.0) == pytest.approx(float(tf.pq_encode_nits(1000.0)), abs=1e-15)
    assert tf.pq_encode(-1.0) == tf.pq_encode(0.0)
    assert tf.pq_decode(tf.pq_encode(3.25)) == pytest.approx(3.25, rel=1e-9)
    with pytest.raises(ColorError):
        tf.pq_encode(1.0, peak_nits=0.0)


def test_pq_agrees_with_ocio_builtin_curves():
    lin = np.geomspace(1e-3, 100.0, 400)  # OCIO's "linear nits/100" is stagectl's scene-linear
    enc = _ocio_apply(ocio.BuiltinTransform("CURVE - LINEAR_to_ST-2084"), _grey(lin))
    np.testing.assert_allclose(enc[:, 0], tf.pq_encode(lin), atol=2e-5)
    sig = np.linspace(0.05, 1.0, 400)
    dec = _ocio_apply(ocio.BuiltinTransform("CURVE - ST-2084_to_LINEAR"), _grey(sig))
    np.testing.assert_allclose(dec[:, 0], tf.pq_decode(sig), rtol=2e-4)


# --------------------------------------------------------------------------------------------- HLG


def test_hlg_constants_are_consistent_with_their_definitions():
    a = tf.HLG_A
    assert tf.HLG_B == pytest.approx(1 - 4 * a, abs=1e-8)
    assert tf.HLG_C == pytest.approx(0.5 - a * math.log(4 * a), abs=1e-8)


def test_hlg_oetf_known_points_round_trip_and_monotonic():
    assert tf.hlg_oetf(1.0 / 12.0) == pytest.approx(0.5, abs=1e-12)  # both branches meet at E' = 0.5
    assert tf.hlg_oetf(1.0) == pytest.approx(1.0, abs=1e-7)
    assert tf.hlg_oetf(0.0) == 0.0
    e = np.linspace(0.0, 1.0, 5001)
    np.testing.assert_allclose(tf.hlg_inverse_oetf(tf.hlg_oetf(e)), e, atol=1e-12)
    assert np.all(np.diff(tf.hlg_oetf(e)) > 0)


def test_hlg_system_gamma_and_reference_white():
    assert tf.hlg_system_gamma(1000.0) == pytest.approx(1.2)
    assert tf.hlg_system_gamma(2000.0) == pytest.approx(1.2 + 0.42 * math.log10(2.0))
    # BT.2408: HLG 75 % is 203 cd/m^2 on a 1000 cd/m^2 display
    assert tf.hlg_eotf(np.full(3, 0.75), peak_nits=1000.0)[0] == pytest.approx(203.0, abs=0.5)
    assert tf.hlg_eotf(np.full(3, 1.0), peak_nits=1000.0)[0] == pytest.approx(1000.0, rel=1e-6)
    # with a black level the EOTF of signal 0 gives L_B (BT.2100-2 beta lift), for grey
    assert tf.hlg_eotf(np.zeros(3), peak_nits=1000.0, black_nits=0.05)[0] == pytest.approx(0.05, rel=1e-6)


def test_hlg_ootf_round_trip_on_colours():
    rng = np.random.default_rng(7)
    e = rng.random((500, 3))
    for lw in (400.0, 1000.0, 2000.0):
        fd = tf.hlg_ootf(e, peak_nits=lw)
        np.testing.assert_allclose(tf.hlg_inverse_ootf(fd, peak_nits=lw), e, atol=1e-12)
        sig = tf.hlg_inverse_eotf(fd, peak_nits=lw)
        np.testing.assert_allclose(tf.hlg_eotf(sig, peak_nits=lw), fd, rtol=1e-9, atol=1e-9)


def test_hlg_agrees_with_ocio_builtin_oetf():
    # OCIO scales scene light so that E = 3 is signal 1 ("18 % grey at HLG 0.42"): OCIO(x) = OETF(x / 3)
    x = np.linspace(0.0, 3.0, 601)
    enc = _ocio_apply(ocio.BuiltinTransform("CURVE - HLG-OETF"), _grey(x))
    np.testing.assert_allclose(enc[:, 0], tf.hlg_oetf(x / 3.0), atol=2e-5)
    sig = np.linspace(0.0, 1.0, 401)
    dec = _ocio_apply(ocio.BuiltinTransform("CURVE - HLG-OETF-INVERSE"), _grey(sig))
    np.testing.assert_allclose(dec[:, 0] / 3.0, tf.hlg_inverse_oetf(sig), rtol=1e-3, atol=1e-6)


def test_hlg_inverse_eotf_agrees_with_ocio_rec2100_hlg_display():
    # OCIO's display builtin takes CIE XYZ (1.0 = 100 nits) -> Rec.2020 -> inverse OOTF (1000 nits) -> OETF
    rng = np.random.default_rng(3)
    rgb = rng.random((300, 3)) * 10.0  # display-linear Rec.2020, nits / 100, up to 1000 nits
    xyz = rgb @ _npm(REC2020, D65).T
    got = _ocio_apply(ocio.BuiltinTransform("DISPLAY - CIE-XYZ-D65_to_REC.2100-HLG-1000nit"), xyz)
    ours = tf.hlg_inverse_eotf(rgb * 100.0, peak_nits=1000.0)
    inside = got <= 1.0  # OCIO extends the curve past signal 1; stagectl clips there (the display's peak)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(got[inside], ours[inside], atol=3e-4)
    np.testing.assert_allclose(ours[~inside], 1.0, atol=1e-8)  # OETF(1) with the published constants


# -------------------------------------------------------------------------------------- BT.1886, gamma, sRGB


def test_bt1886_end_points_round_trip_and_ocio():
    lw, lb = 100.0, 0.1
    assert tf.bt1886_eotf(0.0, peak_nits=lw, black_nits=lb) == pytest.approx(lb, rel=1e-12)
    assert tf.bt1886_eotf(1.0, peak_nits=lw, black_nits=lb) == pytest.approx(lw, rel=1e-12)
    v = np.linspace(0.0, 1.0, 1001)
    L = tf.bt1886_eotf(v, peak_nits=lw, black_nits=lb)
    assert np.all(np.diff(L) > 0)
    np.testing.assert_allclose(tf.bt1886_inverse_eotf(L, peak_nits=lw, black_nits=lb), v, atol=1e-12)
    # L_B = 0: a pure 2.4 power law, as OCIO's Rec.1886 display builtin (XYZ -> Rec.709 -> ^(1/2.4))
    np.testing.assert_allclose(tf.bt1886_eotf(v, peak_nits=lw), lw * v**2.4, rtol=1e-12)
    rgb = np.random.default_rng(5).random((200, 3))
    got = _ocio_apply(
        ocio.BuiltinTransform("DISPLAY - CIE-XYZ-D65_to_REC.1886-REC.709"), rgb @ _npm(REC709, D65).T
    )
    np.testing.assert_allclose(got, tf.bt1886_inverse_eotf(rgb * 100.0, peak_nits=100.0), atol=2e-5)
    with pytest.raises(ColorError):
        tf.bt1886_eotf(0.5, peak_nits=100.0, black_nits=200.0)


def test_gamma_and_srgb_against_ocio_and_features():
    x = np.linspace(0.0, 1.0, 1001)
    g = _ocio_apply(
        ocio.ExponentTransform(value=[2.2, 2.2, 2.2, 1.0], direction=ocio.TRANSFORM_DIR_INVERSE), _grey(x)
    )
    np.testing.assert_allclose(g[:, 0], tf.gamma_encode(x, 2.2), atol=2e-6)
    np.testing.assert_allclose(tf.gamma_decode(tf.gamma_encode(x, 2.6), 2.6), x, atol=1e-12)
    s = _ocio_apply(
        ocio.ExponentWithLinearTransform(
            gamma=[2.4] * 3 + [1.0], offset=[0.055] * 3 + [0.0], direction=ocio.TRANSFORM_DIR_INVERSE
        ),
        _grey(x),
    )
    # OCIO's moncurve derives the toe slope from gamma and offset (12.9232..., continuous at the break);
    # IEC 61966-2-1 prints 12.92: they differ by < 1e-5 below the break, nothing above it
    np.testing.assert_allclose(s[:, 0], tf.srgb_encode(x), atol=1e-5)
    np.testing.assert_allclose(s[x > 0.0031308 * 1.01, 0], tf.srgb_encode(x[x > 0.0031308 * 1.01]), atol=2e-6)
    np.testing.assert_allclose(tf.srgb_encode(x), core_grade.srgb_encode(x), atol=1e-15)
    np.testing.assert_allclose(tf.srgb_decode(tf.srgb_encode(x)), x, atol=1e-12)
    assert tf.srgb_encode(0.0031308) == pytest.approx(1.055 * 0.0031308 ** (1 / 2.4) - 0.055, abs=1e-7)


# --------------------------------------------------------------------------------------------- codes


def test_code_ranges_of_the_standards():
    assert tf.code_range(8) == (0, 255, 0, 255)
    assert tf.code_range(8, narrow=True) == (16, 235, 1, 254)
    assert tf.code_range(10, narrow=True) == (64, 940, 4, 1019)  # BT.2100 Table 9
    assert tf.code_range(12, narrow=True) == (256, 3760, 16, 4079)
    assert tf.code_range(16) == (0, 65535, 0, 65535)
    for bits in tf.BITS:
        black, white, _, _ = tf.code_range(bits, narrow=True)
        assert tf.quantize([0.0, 1.0], bits, narrow=True).tolist() == [black, white]
        assert tf.quantize([0.0, 1.0], bits).tolist() == [0, (1 << bits) - 1]


def test_quantize_rounds_half_up_clips_and_inverts():
    assert tf.quantize(127.5 / 255.0, 8).item() == 128  # floor(x + 0.5), not banker's rounding
    assert tf.quantize(126.5 / 255.0, 8).item() == 127
    assert tf.quantize([2.0, -1.0, np.nan], 10).tolist() == [1023, 0, 0]
    assert tf.quantize([2.0, -1.0, np.nan], 10, narrow=True).tolist() == [1019, 4, 64]
    rng = np.random.default_rng(11)
    e = rng.random(10000)
    for bits in tf.BITS:
        for narrow in (False, True):
            back = tf.dequantize(tf.quantize(e, bits, narrow=narrow), bits, narrow=narrow)
            step = 1.0 / ((1 << bits) - 1) if not narrow else 1.0 / (219 * (1 << (bits - 8)))
            assert np.max(np.abs(back - e)) <= step / 2 + 1e-12
    assert tf.quantize(np.ones(3), 16).dtype == np.uint16
    for bad in (9, 0, 10.5, True):
        with pytest.raises(ColorError):
            tf.quantize(0.5, bad)


def test_transfer_bundles_round_trip():
    rgb = np.random.default_rng(2).random((100, 3)) * 0.999
    for t in (
        tf.Transfer("linear"),
        tf.Transfer("srgb"),
        tf.Transfer("gamma", gamma=2.6),
        tf.Transfer("bt1886", peak_nits=100.0, black_nits=0.05),
        tf.Transfer("pq", peak_nits=1000.0),
        tf.Transfer("hlg", peak_nits=1000.0),
    ):
        lin = rgb * (10.0 if t.kind == "pq" else 1.0)
        if t.kind == "hlg":  # colours whose scene light stays below the 1000-nit peak (no clip)
            lin = (0.3 + 0.7 * rgb) * 3.0
        if t.kind == "bt1886":
            lin = 0.0005 + lin  # above the black level
        np.testing.assert_allclose(t.decode(t.encode(lin)), lin, rtol=1e-7, atol=1e-9, err_msg=t.kind)
    assert tf.Transfer("pq", peak_nits=1000.0).encode(100.0) == pytest.approx(1.0 - 0.2481729, abs=1e-6)
    with pytest.raises(ColorError, match="unknown transfer"):
        tf.Transfer("log")
