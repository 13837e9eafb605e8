"""Stage features without OpenGL: the colour maths against published formulas and independent scalar code,
the .cube reader (and its located errors), the ArUco id scheme, the light-card and marker references, the
stage-file keys, and what the frame plan makes of the features (flash, freeze, blackout, uniforms)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from stagectl.config.reader import Context, MapReader
from stagectl.core.camera import OperatorFlags
from stagectl.core.errors import ConfigErrors
from stagectl.core.features import (
    MAX_CARDS,
    ChromaKey,
    ChromaMarkers,
    ColorCorrection,
    FeatureState,
    FreezeFrustum,
    LightCard,
    OutputPattern,
    card_weight,
    marker_mask,
)
from stagectl.core.fields import FeatureError
from stagectl.core.grade import (
    LUMA_709,
    REFERENCE_WHITE_K,
    cdl,
    planckian_xy,
    srgb8_to_linear,
    srgb_decode,
    srgb_encode,
    white_balance_gains,
    white_point_xy,
)
from stagectl.core.lut import Lut3D, parse_cube, read_cube
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.passes import PlanError
from stagectl.render.patterns import (
    COLOR_BARS_75,
    FONT_5X7,
    aruco_atlas,
    aruco_cabinet,
    aruco_dictionary,
    aruco_marker_bits,
    aruco_marker_id,
    burn_in_lines,
    cabinet_id_atlas,
    pattern_raster,
    text_bitmap,
)
from stagectl.render.plan import FramePlanner
from stagectl.stage.features import parse_features


# ---- sRGB -------------------------------------------------------------------------------------------------
def test_srgb_round_trip_and_codes() -> None:
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=1e-12)
    # IEC 61966-2-1 written out for one value on each side of the break
    assert srgb_encode(0.002) == pytest.approx(12.92 * 0.002)
    assert srgb_encode(0.5) == pytest.approx(1.055 * 0.5 ** (1 / 2.4) - 0.055)
    lin = srgb8_to_linear((0, 128, 0))
    assert lin[1] == pytest.approx(((128 / 255 + 0.055) / 1.055) ** 2.4)
    assert np.rint(srgb_encode(lin) * 255).tolist() == [0, 128, 0]


# ---- white balance ----------------------------------------------------------------------------------------
# CIE 1931 chromaticities of the Planckian locus (Wyszecki & Stiles; the table quoted by most references)
PLANCKIAN = {3000: (0.4369, 0.4041), 4000: (0.3805, 0.3768), 5000: (0.3451, 0.3516), 6500: (0.3135, 0.3236),
             10000: (0.2807, 0.2884)}


def test_planckian_locus_matches_published_chromaticities() -> None:
    for T, (x, y) in PLANCKIAN.items():
        got = planckian_xy(T)
        assert abs(got[0] - x) < 5e-4 and abs(got[1] - y) < 5e-4, (T, got)
    # CIE illuminant A (0.44757, 0.40745) is a black body at 2856 K (c2 = 1.4388e-2 m K)
    ax, ay = planckian_xy(2856)
    assert abs(ax - 0.44757) < 1e-3 and abs(ay - 0.40745) < 1e-3
    with pytest.raises(FeatureError, match="1667..25000"):
        planckian_xy(1000)


def _uv(x, y):
    d = -2 * x + 12 * y + 3
    return np.array([4 * x / d, 6 * y / d])


def test_tint_moves_off_the_locus_by_duv_toward_magenta() -> None:
    T = 5600.0
    on = _uv(*planckian_xy(T))
    for tint in (-20.0, 10.0, 35.0):
        off = _uv(*white_point_xy(T, tint))
        assert np.hypot(*(off - on)) == pytest.approx(abs(tint) / 1000, rel=1e-3)
        # positive tint: below the locus (smaller v: away from green)
        assert (off[1] < on[1]) == (tint > 0)
    g_mag = white_balance_gains(T, 15.0)
    g0 = white_balance_gains(T, 0.0)
    assert g_mag[1] < g0[1], "magenta tint lowers green"


def test_white_balance_gains() -> None:
    assert white_balance_gains(REFERENCE_WHITE_K) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    warm = white_balance_gains(3200)
    cool = white_balance_gains(9000)
    assert warm[0] > 1 > warm[2] and cool[2] > 1 > cool[0]
    for g in (warm, cool, white_balance_gains(5000, -12)):
        assert float(np.dot(LUMA_709, g)) == pytest.approx(1.0)
    # independent: the gains map the reference white to the chromaticity of the target white
    g = np.array(warm)
    M_inv = np.linalg.inv(np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                                    [0.0556434, -0.2040259, 1.0572252]]))
    xr, yr = planckian_xy(REFERENCE_WHITE_K)
    ref_rgb = np.linalg.solve(M_inv, np.array([xr / yr, 1.0, (1 - xr - yr) / yr]))
    XYZ = M_inv @ (g * ref_rgb)
    assert XYZ[0] / XYZ.sum() == pytest.approx(planckian_xy(3200)[0], abs=1e-9)
    assert XYZ[1] / XYZ.sum() == pytest.approx(planckian_xy(3200)[1], abs=1e-9)
    cc = ColorCorrection(temperature=3200)
    assert cc.white_balance == pytest.approx(warm)
    with pytest.raises(FeatureError, match="not both"):
        ColorCorrection(gains=(1, 1, 1), temperature=5600)


# ---- ASC CDL ----------------------------------------------------------------------------------------------
def _cdl_scalar(rgb, slope, offset, power, sat):
    """ASC CDL v1.2 written out per channel with the math module."""
    v = []
    for c, s, o, p in zip(rgb, slope, offset, power):
        x = min(max(c * s + o, 0.0), 1.0)
        v.append(math.pow(x, p))
    luma = 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]
    return [min(max(luma + sat * (x - luma), 0.0), 1.0) for x in v]


def test_cdl_matches_the_asc_formula() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        rgb = rng.uniform(-0.1, 1.3, 3)
        slope = rng.uniform(0.5, 1.6, 3)
        offset = rng.uniform(-0.1, 0.1, 3)
        power = rng.uniform(0.6, 1.8, 3)
        sat = rng.uniform(0.0, 1.8)
        np.testing.assert_allclose(cdl(rgb, slope, offset, power, sat), _cdl_scalar(rgb, slope, offset, power, sat),
                                   atol=1e-12)
    # saturation 0 gives Rec. 709 luma grey; identity leaves [0, 1] values alone
    grey = cdl([0.2, 0.5, 0.9], saturation=0.0)
    assert grey == pytest.approx([0.2126 * 0.2 + 0.7152 * 0.5 + 0.0722 * 0.9] * 3)
    assert cdl([0.2, 0.5, 0.9]) == pytest.approx([0.2, 0.5, 0.9])


def test_color_correction_chain_order() -> None:
    lut = Lut3D.from_function(lambda c: c ** 1.5, 17)
    cc = ColorCorrection(exposure=0.5, temperature=4300, tint=5, slope=(1.1, 0.9, 1.0), offset=(0.01, 0, -0.02),
                         power=(1.0, 1.2, 0.9), saturation=0.8, lut=lut)
    rgb = np.array([[0.1, 0.2, 0.3], [0.6, 0.4, 0.05]])
    step = rgb * 2 ** 0.5 * np.array(white_balance_gains(4300, 5))
    step = np.array([_cdl_scalar(c, cc.slope, cc.offset, cc.power, 0.8) for c in step])
    step = srgb_decode(lut.apply(srgb_encode(step)))
    np.testing.assert_allclose(cc.apply(rgb), step, atol=1e-12)
    assert ColorCorrection().is_identity and not cc.is_identity
    assert not ColorCorrection(exposure=1).has_cdl and ColorCorrection(saturation=0.5).has_cdl
    # identity CDL is skipped: no clamp of values above 1
    assert ColorCorrection(exposure=1).apply([0.8, 0.8, 0.8]) == pytest.approx([1.6] * 3)


# ---- 3D LUT -----------------------------------------------------------------------------------------------
def test_lut_trilinear() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 1, (500, 3))
    np.testing.assert_allclose(Lut3D.identity(2).apply(pts), pts, atol=1e-6)
    np.testing.assert_allclose(Lut3D.identity(33).apply(pts), pts, atol=1e-6)
    # trilinear reproduces any function that is linear in each channel separately, anywhere
    f = lambda c: np.stack([c[..., 0] * c[..., 1], 0.3 + 0.5 * c[..., 2], c[..., 0] * c[..., 1] * c[..., 2]], -1)  # noqa
    lut = Lut3D.from_function(f, 5)
    np.testing.assert_allclose(lut.apply(pts), f(pts), atol=1e-6)
    # exact at grid points for any function; clamped outside the domain
    g = Lut3D.from_function(lambda c: np.sin(3 * c), 9)
    grid = np.array([[0.125, 0.5, 0.875], [1.0, 0.0, 0.25]])
    np.testing.assert_allclose(g.apply(grid), np.sin(3 * grid), atol=1e-6)
    np.testing.assert_allclose(g.apply([[1.5, -0.2, 0.5]]), g.apply([[1.0, 0.0, 0.5]]))
    # the atlas block: row g, column r + N * b
    blk = lut.atlas_block()
    assert blk.shape == (5, 25, 3)
    np.testing.assert_allclose(blk[3, 2 + 5 * 4], lut.table[2, 3, 4])
    assert Lut3D.identity(3) == Lut3D.identity(3) and hash(Lut3D.identity(3)) == hash(Lut3D.identity(3))


def _cube_text(n, fn, header="") -> str:
    lines = [header, f"LUT_3D_SIZE {n}"]
    g = np.linspace(0, 1, n)
    for b in g:
        for gg in g:
            for r in g:  # red fastest
                v = fn(np.array([r, gg, b]))
                lines.append(f"{v[0]:.6f} {v[1]:.6f} {v[2]:.6f}")
    return "\n".join(lines) + "\n"


def test_parse_cube_data_order_title_domain(tmp_path) -> None:
    fn = lambda c: np.array([c[0] * 0.5, c[1] ** 2, 1.0 - c[2]])  # noqa: E731
    text = _cube_text(4, fn, '# made by a test\nTITLE "test lut"\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n')
    path = tmp_path / "t.cube"
    path.write_text(text)
    lut = read_cube(path)
    assert lut.title == "test lut" and lut.size == 4
    g = np.linspace(0, 1, 4)
    assert lut.table[1, 2, 3] == pytest.approx(fn(np.array([g[1], g[2], g[3]])), abs=1e-6)
    # Resolve's input range keyword sets the domain of all channels
    lut2 = parse_cube(_cube_text(2, lambda c: c, "LUT_3D_INPUT_RANGE -0.5 2.0"), "r.cube")
    assert lut2.domain_min == (-0.5,) * 3 and lut2.domain_max == (2.0,) * 3
    np.testing.assert_allclose(lut2.apply([[0.75, 2.0, -0.5]]), [[0.5, 1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("text,line,expect", [
    ("LUT_3D_SIZE 2\n0 0 0\n1 0 0\n0 1 0\n", 4, "expected 2^3 = 8 data lines"),
    ("LUT_3D_SIZE 1\n", 1, "LUT_3D_SIZE: expected a whole number 2..256"),
    ("LUT_3D_SIZE two\n", 1, "LUT_3D_SIZE: expected a whole number 2..256"),
    ("TITLE no quotes\nLUT_3D_SIZE 2\n", 1, 'TITLE: expected TITLE "text in double quotes"'),
    ("LUT_1D_SIZE 16\n", 1, "1D LUTs are not supported"),
    ("LUT_3D_SIZE 2\nDOMAIN_MIN 0 0\n", 2, "DOMAIN_MIN: expected three numbers"),
    ("LUT_3D_SIZE 2\nDOMAIN_MIN 1 0 0\nDOMAIN_MAX 1 1 1\n", 3, "DOMAIN_MAX: expected DOMAIN_MAX"),
    ("LUT_3D_SIZE 2\n0 0 0\n1 0 x\n", 3, "expected a data line of three numbers"),
    ("LUT_3D_SIZE 2\n0 0 0\nLUT_3D_SIZE 2\n", 3, "keyword after the first data line (line 2)"),
    ("# only a comment\n0 0 0\n", 2, "LUT_3D_SIZE: missing before the first data line"),
    ("LUT_3D_SIZE 2\nGAMMA 2.2\n", 2, "GAMMA: unknown keyword"),
    ("\n\n", 2, "LUT_3D_SIZE: missing"),
])
def test_parse_cube_errors_are_located(text, line, expect) -> None:
    with pytest.raises(ConfigErrors) as exc:
        parse_cube(text, "luts/bad.cube")
    msg = str(exc.value)
    assert f"luts/bad.cube:{line}: " in msg and expect in msg, msg


def test_read_cube_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigErrors, match="nope.cube: file not found"):
        read_cube(tmp_path / "nope.cube", "nope.cube")


# ---- ArUco ids, font, pattern references ------------------------------------------------------------------
def test_aruco_id_scheme(demo) -> None:
    # walls in stage order, rows top to bottom, columns left to right: main 16 x 6, then the ceiling 8 x 8
    assert aruco_marker_id(demo, 0, 0, 0) == 0
    assert aruco_marker_id(demo, 0, 15, 0) == 15
    assert aruco_marker_id(demo, 0, 3, 2) == 2 * 16 + 3
    assert aruco_marker_id(demo, 1, 0, 0) == 96
    assert aruco_marker_id(demo, 1, 7, 7) == 159
    ids = [aruco_marker_id(demo, w, c, r) for w, wall in enumerate(demo.walls)
           for r in range(wall.cabinets[1]) for c in range(wall.cabinets[0])]
    assert sorted(ids) == list(range(160))
    for k in (0, 17, 95, 96, 130, 159):
        assert aruco_marker_id(demo, *aruco_cabinet(demo, k)) == k
    with pytest.raises(FeatureError):
        aruco_marker_id(demo, 0, 16, 0)


def test_aruco_bits_are_the_dictionary_markers() -> None:
    import cv2

    d = aruco_dictionary()
    det = cv2.aruco.ArucoDetector(d, cv2.aruco.DetectorParameters())
    for k in (0, 7, 96, 999):
        bits = aruco_marker_bits(k)
        assert bits.shape == (8, 8) and not bits[0].any() and not bits[:, -1].any()
        img = np.full((200, 200), 255, np.uint8)
        img[40:160, 40:160] = np.kron(bits, np.ones((15, 15), np.uint8)) * 255
        _, ids, _ = det.detectMarkers(img)
        assert ids is not None and ids.ravel().tolist() == [k]


def test_atlases_and_pattern_references(demo) -> None:
    a = aruco_atlas(demo)
    assert a.cell == (8, 8) and a.image.shape == (6 * 8 + 8 * 8, 16 * 8)
    np.testing.assert_array_equal(a.cell_of(1, 2, 3), aruco_marker_bits(aruco_marker_id(demo, 1, 2, 3)) * 255)
    assert a.scale.tolist() == [17, 17] and a.offset.tolist() == [[20, 20], [20, 20]]  # 176 = 20 + 8*17 + 20
    ref = pattern_raster("aruco", demo, 0, atlas=a)
    # cabinet (1, 0) of the main wall: white quiet zone, then the marker's black border, module 17 px
    assert (ref[0:20, 176:352] == 255).all() and (ref[20:37, 196:332] == 0).all()
    bars = pattern_raster("color_bars", demo, 1)
    W = demo.walls[1].raster[0]
    for k, code in enumerate(COLOR_BARS_75):
        x = int((k + 0.5) * W / 7)
        assert bars[10, x].tolist() == list(code)
    chk = pattern_raster("checkerboard", demo, 0, squares=2)
    assert chk[0, 0].tolist() == [255] * 3 and chk[0, 88].tolist() == [0] * 3 and chk[88, 88].tolist() == [255] * 3
    ids = cabinet_id_atlas(demo)
    lab = ids.cell_of(0, 12, 3)
    np.testing.assert_array_equal(lab[:7, :5] // 255, FONT_5X7["M"])
    np.testing.assert_array_equal(lab[9:16, :5] // 255, FONT_5X7["1"])
    np.testing.assert_array_equal(lab[9:16, 6:11] // 255, FONT_5X7["2"])


def test_text_bitmap_and_burn_in_lines() -> None:
    from stagectl.core.timebase import FrameRate

    img = text_bitmap(["AB", "1"])
    assert img.shape == (16, 11)
    np.testing.assert_array_equal(img[:7, 6:11], FONT_5X7["B"])
    assert not img[7:9].any() and not img[:, 5].any()
    assert text_bitmap(["x"], 4).shape == (7, 23)
    glyphs = {k: v.tobytes() for k, v in FONT_5X7.items()}
    assert len(set(glyphs.values())) == len(glyphs), "every glyph differs"
    assert burn_in_lines(1234, ("frame", "timecode"), FrameRate(25)) == ("F0001234", "00:00:49:09")
    assert burn_in_lines(24 * 3600 + 5, ("timecode",), FrameRate(24000, 1001)) == ("01:00:00:05",)


# ---- light cards and markers ------------------------------------------------------------------------------
def test_light_card_weight_and_validation() -> None:
    c = LightCard("k", "main", (0.25, 0.5, 0.5, 0.75), (1.0, 0.5, 0.0), 2.0, "under", 0.0)
    assert c.rgb == (2.0, 1.0, 0.0)
    assert c.raster_rect((400, 200)) == (100.0, 100.0, 200.0, 150.0)
    xs = np.array([[99.5, 120.5], [100.5, 120.5], [199.5, 120.5], [200.5, 120.5], [150.5, 149.5], [150.5, 150.5]])
    assert card_weight(xs, c.raster_rect((400, 200)), 0.0).tolist() == [0, 1, 1, 0, 1, 0]
    w = card_weight([[100.5, 125.5], [105.5, 125.5], [110.5, 125.5], [150.5, 125.5]], (100, 100, 200, 150), 10.0)
    a = np.array([0.05, 0.55, 1.0, 1.0])
    np.testing.assert_allclose(w, a * a * (3 - 2 * a))
    for bad in (dict(rect=(0.5, 0, 0.4, 1)), dict(layer="middle"), dict(color=(1, float("nan"), 0)),
                dict(intensity=-1), dict(feather_px=-2)):
        kw = dict(id="x", wall="w", rect=(0, 0, 1, 1)) | bad
        with pytest.raises(FeatureError):
            LightCard(**kw)


def test_marker_mask() -> None:
    m = ChromaMarkers(size=20, thickness=4, spacing=100, units="px")
    sp, hs, ht = m.pixels((0.001, 0.001))
    assert sp.tolist() == [100, 100] and hs.tolist() == [10, 10] and ht.tolist() == [2, 2]
    pts = np.array([[50.5, 50.5], [59.5, 51.5], [60.5, 50.5], [50.5, 40.5], [52.5, 52.5], [150.5, 250.5]])
    assert marker_mask(pts, sp, hs, ht).tolist() == [True, True, False, True, False, True]
    mm = ChromaMarkers(size=0.1, spacing=0.5)  # metres: on a 500 mm / 176 px cabinet
    sp, hs, ht = mm.pixels((0.5 / 176, 0.5 / 176))
    assert sp == pytest.approx([176, 176]) and hs == pytest.approx([17.6, 17.6]) and ht == pytest.approx([3.52] * 2)
    with pytest.raises(FeatureError):
        ChromaMarkers(size=1.0, spacing=0.5)
    assert ChromaKey().linear_color[1] == pytest.approx(srgb8_to_linear((0, 128, 0))[1])


# ---- feature state ----------------------------------------------------------------------------------------
def test_feature_state_is_comparable_and_checked() -> None:
    a = FeatureState(wall_color={"main": ColorCorrection(exposure=1)}, patterns={"p/o": OutputPattern("aruco")})
    b = FeatureState(wall_color=(("main", ColorCorrection(exposure=1)),), patterns=(("p/o", OutputPattern("aruco")),))
    assert a == b and hash(a) == hash(b) and FeatureState() == FeatureState()
    card = LightCard("c", "main", (0, 0, 0.5, 0.5))
    s = a.with_card(card).with_card(LightCard("c", "main", (0.1, 0, 0.5, 0.5)))
    assert len(s.light_cards) == 1 and s.light_cards[0].rect[0] == 0.1
    assert s.without_card("c").light_cards == ()
    assert s.with_pattern("p/o", None).patterns == ()
    assert s.with_pattern("p/o", "checkerboard").pattern_of("p/o").kind == "checkerboard"
    with pytest.raises(FeatureError, match="no wall 'nope'"):
        FeatureState(light_cards=(LightCard("c", "nope", (0, 0, 1, 1)),)).check(["main"], [])
    with pytest.raises(FeatureError, match="unique"):
        FeatureState(light_cards=(card, card))
    with pytest.raises(FeatureError, match="at most"):
        FeatureState(light_cards=tuple(LightCard(str(i), "main", (0, 0, 1, 1)) for i in range(MAX_CARDS + 1)))
    with pytest.raises(FeatureError, match="burn-in"):
        OutputPattern("none", burn_in=("date",))
    assert OutputPattern(burn_in=("timecode", "frame")).burn_in == ("frame", "timecode")
    assert FreezeFrustum("cam-a").applies("cam-a") and not FreezeFrustum("cam-a").applies("cam-b")


# ---- stage-file keys --------------------------------------------------------------------------------------
def _parse(tmp_path, text, walls=("main", "ceiling"), outputs=("tessera-a/out1", "tessera-b/out3")):
    import yaml

    path = tmp_path / "stage.yaml"
    path.write_text(textwrap.dedent(text))
    ctx = Context("stage.yaml", tmp_path)
    root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    top = MapReader(ctx, root, "")
    r = top.sub("render")
    fs = parse_features(ctx, r, walls=list(walls), outputs=list(outputs))
    r.done()
    return fs, [e.format() for e in ctx.errors]


def test_parse_features_reads_every_key(tmp_path) -> None:
    (tmp_path / "luts").mkdir()
    (tmp_path / "luts" / "id.cube").write_text(_cube_text(2, lambda c: c))
    fs, errors = _parse(tmp_path, """\
        render:
          chroma_key:
            color: [0, 120, 10]
            markers: {color: [0, 200, 0], size: 0.1, spacing: 0.5, units: m}
          light_cards:
            - {id: key, wall: main, rect: [0.05, 0.1, 0.25, 0.6], color: [1, 0.9, 0.8], intensity: 1.5,
               layer: under, feather_px: 24}
          color:
            walls:
              main: {exposure: 0.5, temperature: 5600, tint: 2, lut: luts/id.cube}
            inner: {gains: [1.0, 0.98, 1.02], saturation: 0.9}
          patterns:
            tessera-a/out1: {kind: checkerboard, squares: 2, burn_in: [frame, timecode]}
            tessera-b/out3: aruco
        """)
    assert errors == []
    assert fs.chroma_key.color == pytest.approx((0, 120 / 255, 10 / 255))
    assert fs.chroma_key.markers.size == 0.1
    assert fs.light_cards[0].layer == "under" and fs.light_cards[0].feather_px == 24
    cc = fs.color_of("main")
    assert cc.temperature == 5600 and cc.lut == Lut3D.identity(2)
    assert fs.inner_color.gains == (1.0, 0.98, 1.02)
    assert fs.pattern_of("tessera-a/out1") == OutputPattern("checkerboard", squares=2, burn_in=("frame", "timecode"))
    assert fs.pattern_of("tessera-b/out3").kind == "aruco"


def test_parse_features_errors_are_located(tmp_path) -> None:
    (tmp_path / "bad.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n")
    fs, errors = _parse(tmp_path, """\
        render:
          light_cards:
            - {id: a, wall: side, rect: [0, 0, 1, 1]}
            - {id: b, wall: main, rect: [0, 0, 1, 1], layer: middle}
          color:
            walls:
              main: {lut: bad.cube}
              roof: {exposure: 1}
          patterns:
            tessera-a/out9: aruco
            tessera-b/out3: {kind: zebra}
          chroma_key: {colour: [0, 1, 0]}
        """)
    from stagectl.config.reader import INVALID

    assert fs is INVALID
    text = "\n".join(errors)
    assert "stage.yaml:3: render.light_cards[0].wall: expected one of the walls main, ceiling, got 'side'" in text
    assert "stage.yaml:4: render.light_cards[1].layer: expected one of over, under" in text
    assert "bad.cube:2: expected 2^3 = 8 data lines" in text
    assert "stage.yaml:8: render.color.walls.roof: expected one of the walls" in text
    assert "stage.yaml:10: render.patterns.tessera-a/out9: expected an output key" in text
    assert "stage.yaml:11: render.patterns.tessera-b/out3.kind: expected one of none, cabinet_id" in text
    assert "stage.yaml:12: render.chroma_key.colour: unknown key" in text


# ---- the plan ---------------------------------------------------------------------------------------------
def test_features_off_add_nothing_to_the_plan(demo) -> None:
    planner = FramePlanner(demo)
    plan = planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))])
    assert plan.features is not None and plan.features.defines == () and not plan.features.active
    assert all(o.pattern is None and o.burn_in is None and not o.blackout for o in plan.outputs)
    assert planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))]).features is plan.features


def test_feature_uniforms(demo) -> None:
    planner = FramePlanner(demo)
    lut = Lut3D.identity(3)
    fs = FeatureState(
        light_cards=(LightCard("o", "ceiling", (0.5, 0.5, 1.0, 1.0), (1, 0, 0), 2.0, "over", 8),
                     LightCard("u", "main", (0.0, 0.0, 0.25, 0.5), (0, 1, 0), 1.0, "under")),
        wall_color={"ceiling": ColorCorrection(exposure=1, lut=lut)},
        inner_color=ColorCorrection(saturation=0.5),
        chroma_key=ChromaKey(markers=ChromaMarkers(size=0.1, spacing=0.5)),
    )
    fu = planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))], features=fs).features
    assert fu.defines == ("CARDS", "WALL_CC", "WALL_LUT", "KEY", "MARKERS")  # inner CC: replaced by the key
    assert fu.defines_for("outer") == ("CARDS", "WALL_CC", "WALL_LUT")
    assert fu.defines_for("inner") == ("CARDS", "KEY", "MARKERS")
    assert fu.cards_under == 1 and fu.cards_total == 2
    np.testing.assert_allclose(fu.card_rect[0], [0, 0, 704, 528])  # the under card first: main 2816 x 1056
    np.testing.assert_allclose(fu.card_rect[1], [704, 704, 1408, 1408])
    np.testing.assert_allclose(fu.card_color[1], [2, 0, 0, 1])
    assert fu.card_inv_feather[1] == pytest.approx(1 / 8) and fu.card_inv_feather[0] == 0
    np.testing.assert_allclose(fu.wall_gain[1], [2, 2, 2])
    np.testing.assert_allclose(fu.wall_gain[0], [1, 1, 1])
    assert fu.wall_lut[1].tolist() == [0, 3, 1, 0] and fu.wall_lut[0][2] == 0
    assert fu.lut_atlas.shape == (3, 9, 4)
    np.testing.assert_allclose(fu.marker_grid[0, :2], [176, 176])
    with pytest.raises(PlanError, match="no wall"):
        planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))],
                     features=FeatureState(light_cards=(LightCard("x", "nope", (0, 0, 1, 1)),)))


def test_white_flash_is_one_frame(demo) -> None:
    planner = FramePlanner(demo)
    cs = [camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))]
    flash = FeatureState(patterns={"tessera-a/out2": OutputPattern("white_flash")})
    seq = [FeatureState(), flash, flash, flash, FeatureState(), flash]
    got = [[o.pattern is not None and o.pattern.flash for o in planner.plan(cs, frame=k, features=f).outputs]
           for k, f in enumerate(seq)]
    assert got == [[False, False, False], [False, True, False], [False] * 3, [False] * 3, [False] * 3,
                   [False, True, False]]
    planner.trigger_white_flash()
    assert all(o.pattern.flash for o in planner.plan(cs, frame=9).outputs)
    assert not any(o.pattern for o in planner.plan(cs, frame=10).outputs)
    planner.trigger_white_flash(["tessera-b/out3"])
    assert [o.pattern is not None for o in planner.plan(cs, frame=11).outputs] == [False, False, True]
    with pytest.raises(PlanError, match="no output"):
        planner.trigger_white_flash(["x/y"])


def test_freeze_frustum_keeps_the_matrices_of_the_frame_before(demo) -> None:
    planner = FramePlanner(demo)
    a = planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))], frame=1)
    moved = [camera_state_from_pose(demo, (1, 1, 1.2, 30, 0, 0))]
    b = planner.plan(moved, frame=2, features=FeatureState(freeze=FreezeFrustum()))
    c = planner.plan(moved, frame=3, features=FeatureState(freeze=FreezeFrustum(keep_image=False)))
    assert b.inner[0].frozen and not c.inner[0].frozen
    np.testing.assert_array_equal(b.inner[0].VP, a.inner[0].VP)
    np.testing.assert_array_equal(c.inner[0].VP, a.inner[0].VP)
    d = planner.plan(moved, frame=4, features=FeatureState(freeze=FreezeFrustum(cameras=frozenset({"other"}))))
    assert not np.allclose(d.inner[0].VP, a.inner[0].VP)
    # freezing again keeps the last unfrozen frame's matrices (frame 4)
    e = planner.plan([camera_state_from_pose(demo, (0, 0, 1.7, 0, 0, 0))], frame=5,
                     features=FeatureState(freeze=FreezeFrustum()))
    np.testing.assert_array_equal(e.inner[0].VP, d.inner[0].VP)


def test_blackout_per_output_and_patterns_in_the_plan(demo) -> None:
    planner = FramePlanner(demo)
    cs = [camera_state_from_pose(demo, (0.5, 0.5, 1.6, 10, 5, 0), zoom=0.2)]
    fs = FeatureState(blackout={"tessera-a/out1"},
                      patterns={"tessera-b/out3": OutputPattern("aruco", burn_in=("frame",))})
    plan = planner.plan(cs, features=fs, frame=7)
    o1, o2, o3 = plan.outputs
    assert o1.blackout and not o1.touched.any() and o1.pattern is None
    assert not o2.blackout and o2.pattern is None and o2.composes
    assert o3.pattern.kind == "aruco" and not o3.touched.any() and o3.burn_in.lines == ("F0000007",)
    assert o3.burn_in.boxes[0].tolist() == [0, 0, 176, 176] and len(o3.burn_in.tiles) == 9
    assert plan.inner_needed
    assert not planner.plan(cs, features=FeatureState(chroma_key=ChromaKey())).inner_needed
    assert not planner.plan(cs, OperatorFlags(blackout=True)).inner_needed
