"""FreeD encoder profiles: vendor tables of PROTOCOLS.md 1.6, OpenTrackIO directions, custom, lookup."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stagectl.core.sample import LensEncoders
from stagectl.tracking.profiles import (
    MOSYS_TRACKING_QUALITY,
    PROFILES,
    BitField,
    EncoderProfile,
    EncoderRange,
    EncoderReading,
    apply_profile,
    custom_profile,
    get_profile,
    profile_evaluator,
    profile_from_config,
    profile_names,
)


def enc(name: str, zoom: int = 0, focus: int = 0, spare: int = 0):
    return apply_profile(get_profile(name), zoom, focus, spare)


def test_names_and_lookup() -> None:
    assert profile_names() == ("generic", "mosys", "ncam", "panasonic", "sony", "stype", "syncrolink", "zcam")
    for alias, name in [
        ("Mo-Sys", "mosys"),
        ("stYpe", "stype"),
        ("Z-Cam", "zcam"),
        ("SYNCRO-LINK", "syncrolink"),
        ("Generic", "generic"),
        ("z_cam", "zcam"),
    ]:
        assert get_profile(alias) is PROFILES[name]


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        get_profile("vinten")
    message = str(info.value)
    assert "'vinten'" in message
    for name in profile_names():
        assert name in message
    assert "custom" in message


def test_profiles_are_immutable_data() -> None:
    with pytest.raises(TypeError):
        PROFILES["x"] = PROFILES["generic"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["generic"].port = 1  # type: ignore[misc]


def test_ports() -> None:
    assert {n: p.port for n, p in PROFILES.items()} == {
        "generic": 40000,
        "panasonic": 1111,
        "sony": 40000,
        "mosys": 8001,
        "stype": 6301,
        "ncam": 6301,
        "zcam": 5001,
        "syncrolink": None,
    }


def test_generic_directions() -> None:
    # zoom wide 0x0 -> tele 0x10000 ; focus near 0x0 -> far 0x10000 ; OpenTrackIO: focus 1 = closest
    assert enc("generic", 0x0, 0x0).encoders == LensEncoders(focus=1.0, iris=None, zoom=0.0)
    assert enc("generic", 0x10000, 0x10000).encoders == LensEncoders(focus=0.0, iris=None, zoom=1.0)
    assert enc("generic", 0x8000, 0x4000).encoders == LensEncoders(focus=0.75, iris=None, zoom=0.5)
    assert enc("generic", 0xFFFFFF, 0xFFFFFF).encoders == LensEncoders(
        focus=0.0, iris=None, zoom=1.0
    )  # clamped


def test_panasonic() -> None:
    r = enc("panasonic", 0x555, 0x555, 0x555)  # wide, near, iris closed
    assert r.encoders == LensEncoders(focus=1.0, iris=1.0, zoom=0.0)
    r = enc("panasonic", 0xFFF, 0xFFF, 0xFFF)  # tele, far, iris open
    assert r.encoders == LensEncoders(focus=0.0, iris=0.0, zoom=1.0)
    mid = (0x555 + 0xFFF) // 2
    assert enc("panasonic", mid).encoders.zoom == pytest.approx(0.5, abs=1e-3)
    assert enc("panasonic", 0x100).encoders.zoom == 0.0  # below the range -> clamped
    assert r.focal_length_mm is None and r.f_stop is None


def test_sony() -> None:
    # focus near 0x7FFFFF -> far 0 ; spare: low 12 bits F-number x 100, high 4 bits frame counter
    r = enc("sony", 0xFFFFFF, 0x7FFFFF, (9 << 12) | 560)
    assert r.encoders == LensEncoders(focus=1.0, iris=None, zoom=1.0)
    assert r.f_stop == 5.6 and r.frame_counter == 9
    r = enc("sony", 0, 0, 0)
    assert r.encoders == LensEncoders(focus=0.0, iris=None, zoom=0.0)
    assert r.f_stop is None and r.frame_counter == 0  # F 0 = not reported


def test_mosys_tracking_quality() -> None:
    for code, meaning in enumerate(MOSYS_TRACKING_QUALITY):
        r = enc("mosys", 0xFFFF, 0xFFFF, 0xAB00 | code)
        assert r.tracking_quality == code and meaning
        assert r.encoders == LensEncoders(focus=0.0, iris=None, zoom=1.0)
    assert MOSYS_TRACKING_QUALITY == ("undefined", "good", "caution", "bad")


@pytest.mark.parametrize("name", ["stype", "ncam"])
def test_stype_ncam_full_24_bit(name: str) -> None:
    r = enc(name, 0xFFFFFF, 0x0)
    assert r.encoders == LensEncoders(focus=1.0, iris=None, zoom=1.0)
    r = enc(name, 0x0, 0xFFFFFF)
    assert r.encoders == LensEncoders(focus=0.0, iris=None, zoom=0.0)


def test_zcam_documented_example() -> None:
    # Z-Cam doc: zoom 950 -> 9.50 mm, focus 12300 -> 1230.0 mm, F2.8 -> 280 = 0x118 (bytes 0x01 0x18)
    r = enc("zcam", 950, 12300, 0x0118)
    assert r.focal_length_mm == 9.5
    assert r.focus_distance_m == 1.23
    assert r.f_stop == 2.8
    assert r.frame_counter == 0
    assert r.encoders is None
    assert enc("zcam", 950, 12300, 0xF118).frame_counter == 15


def test_syncrolink() -> None:
    r = enc("syncrolink", 35 * 64, 2500 * 64, 40)  # 35 mm, 2.5 m, T4.0
    assert r.focal_length_mm == 35.0 and r.focus_distance_m == 2.5 and r.f_stop == 4.0
    assert enc("syncrolink", 0, 0, 0xF000).f_stop is None  # only 12 bits carry the iris


def test_custom_profile_min_max_invert_mask() -> None:
    p = custom_profile(
        zoom=(100, 1100, False, 16), focus=(0, 1000, True, 24), iris={"min": 0, "max": 255, "mask_bits": 8}
    )
    r = apply_profile(p, 0xAB0000 | 600, 250, 0x1280)  # zoom keeps low 16 bits: 600 ; iris keeps 0x80
    assert r.encoders.zoom == 0.5
    assert r.encoders.focus == 0.75
    assert r.encoders.iris == pytest.approx(128 / 255)
    assert p.name == "custom"


def test_encoder_range_shift_and_validation() -> None:
    assert EncoderRange(0, 15, mask_bits=4, shift=12).normalise(0xF000) == 1.0
    with pytest.raises(ValueError):
        EncoderRange(5, 5)
    with pytest.raises(ValueError):
        EncoderRange(0, 1, mask_bits=0)


def test_profile_from_config() -> None:
    assert profile_from_config("sony") is PROFILES["sony"]
    assert profile_from_config({"name": "Panasonic"}) is PROFILES["panasonic"]
    p = profile_from_config({"name": "custom", "zoom": {"min": 0, "max": 10, "invert": True}})
    assert apply_profile(p, 0, 0, 0).encoders == LensEncoders(focus=None, iris=None, zoom=1.0)
    for bad, match in [
        ({"name": "sony", "zoom": {}}, "take no settings"),
        ({"name": "custom", "tilt": {}}, "unknown keys"),
        ({"name": "custom", "zoom": {"min": 0}}, "missing key 'max'"),
        ({"name": "custom", "zoom": {"min": 0, "max": 1.5}}, "must be an integer"),
        ({"name": "custom", "zoom": {"min": 0, "max": 9, "invert": "yes"}}, "invert"),
        ({"name": "custom", "zoom": (1, 2)}, "expected \\(min, max, invert, mask_bits\\)"),
        ("nope", "valid names"),
        (42, "expected a name or a mapping"),
    ]:
        with pytest.raises(ValueError, match=match):
            profile_from_config(bad)  # type: ignore[arg-type]


# --- the compiled evaluator against the profile's own methods ------------------------------------------------


def _reference_reading(profile, zoom: int, focus: int, spare: int) -> EncoderReading:
    """apply_profile as specified: EncoderRange.normalise / BitField.extract, 0 -> None for physical values."""

    def physical(bf):
        if bf is None:
            return None
        v = bf.extract(zoom, focus, spare)
        return v / bf.divisor if v else None

    encoders = None
    if profile.zoom is not None or profile.focus is not None or profile.iris is not None:
        encoders = LensEncoders(
            focus=profile.focus.normalise(focus) if profile.focus is not None else None,
            iris=profile.iris.normalise(spare) if profile.iris is not None else None,
            zoom=profile.zoom.normalise(zoom) if profile.zoom is not None else None,
        )
    fc, tq = profile.frame_counter, profile.tracking_quality
    return EncoderReading(
        encoders=encoders,
        focal_length_mm=physical(profile.focal_length_mm),
        focus_distance_m=physical(profile.focus_distance_m),
        f_stop=physical(profile.f_stop),
        frame_counter=fc.extract(zoom, focus, spare) if fc is not None else None,
        tracking_quality=tq.extract(zoom, focus, spare) if tq is not None else None,
    )


def _random_profiles(rng: np.random.Generator, n: int) -> list[EncoderProfile]:
    out = []
    for i in range(n):

        def rng_range():
            if rng.random() < 0.25:
                return None
            bits = int(rng.integers(1, 25))
            lo, hi = (int(v) for v in rng.integers(0, 1 << bits, size=2))
            if lo == hi:
                hi = lo + 1
            return EncoderRange(lo, hi, mask_bits=bits, shift=int(rng.integers(0, 4)))

        def field():
            if rng.random() < 0.4:
                return None
            src = ("zoom", "focus", "spare")[int(rng.integers(0, 3))]
            return BitField(
                src, int(rng.integers(0, 8)), int(rng.integers(1, 17)), float(rng.choice([1.0, 10.0, 64.0]))
            )

        out.append(
            EncoderProfile(
                f"random{i}",
                zoom=rng_range(),
                focus=rng_range(),
                iris=rng_range(),
                focal_length_mm=field(),
                focus_distance_m=field(),
                f_stop=field(),
                frame_counter=field(),
                tracking_quality=field(),
            )
        )
    return out


def test_apply_profile_matches_the_reference_bit_for_bit() -> None:
    rng = np.random.default_rng(1606)
    profiles = [*PROFILES.values(), *_random_profiles(rng, 60)]
    profiles.append(
        custom_profile(zoom=(5, 4000, True, 12), focus={"min": 0, "max": 100}, iris=(1, 2, False, 3))
    )
    raws = rng.integers(0, 1 << 24, size=(400, 3))
    raws[:, 2] &= 0xFFFF
    raws[:40] = 0  # zero counts: physical values "not reported", normalised -0.0 / 0.0 edges
    for profile in profiles:
        for zoom, focus, spare in raws.tolist():
            got = apply_profile(profile, zoom, focus, spare)
            want = _reference_reading(profile, zoom, focus, spare)
            assert got == want and type(got) is EncoderReading
            assert repr(got) == repr(want)  # the sign of a zero too


def test_profile_evaluator_is_cached_per_profile() -> None:
    p = get_profile("sony")
    assert profile_evaluator(p) is profile_evaluator(p)
    q = custom_profile(zoom=(0, 10, False, 24))
    assert profile_evaluator(q)(5, 0, 0) == (LensEncoders(None, None, 0.5), None, None, None, None, None)
    assert profile_evaluator(dataclasses.replace(q, zoom=EncoderRange(0, 20)))(5, 0, 0)[0].zoom == 0.25


def test_apply_profile_uses_overridden_methods() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Stepped(EncoderRange):
        def normalise(self, raw: int) -> float:
            return round(EncoderRange.normalise(self, raw), 1)

    p = EncoderProfile("stepped", zoom=Stepped(0, 1000))
    assert apply_profile(p, 333, 0, 0).encoders == LensEncoders(None, None, 0.3)
