"""FreeD D1 codec: spec anchors, checksum, fixtures, exact round trips and the stage-convention conversion."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from stagectl.core.sample import FRAME_BODY, PROTOCOL_FREED, LensState, Pose, RawEncoders, TrackingSample
from stagectl.tracking.codecs.freed import (
    FREED_D1_LENGTH,
    FreeDPacket,
    decode_freed,
    decode_freed_sample,
    encode_freed,
    freed_checksum,
    freed_to_sample,
    sample_to_freed,
)
from stagectl.tracking.errors import ChecksumError, DecodeError, EncodeError, TruncatedError
from stagectl.tracking.profiles import PROFILES, apply_profile, custom_profile, get_profile

FIXTURES = Path(__file__).resolve().parent / "data" / "packets" / "freed"


def make_d1(fields: dict[str, bytes] | None = None, camera_id: int = 1) -> bytes:
    """A D1 message with the given raw field bytes (others zero) and a correct checksum."""
    layout = {"pan": 2, "tilt": 5, "roll": 8, "x": 11, "y": 14, "z": 17, "zoom": 20, "focus": 23, "spare": 26}
    msg = bytearray(29)
    msg[0], msg[1] = 0xD1, camera_id
    for name, raw in (fields or {}).items():
        msg[layout[name] : layout[name] + len(raw)] = raw
    msg[28] = (0x40 - sum(msg[:28])) % 256
    return bytes(msg)


def load_hex(name: str) -> bytes:
    text = (FIXTURES / name).read_text()
    tokens = [t for line in text.splitlines() if not line.startswith("#") for t in line.split()]
    return bytes(int(t, 16) for t in tokens)


# --- spec anchors (manual B.2, B.5) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "degrees"),
    [
        (b"\xa6\x00\x00", -180.0),
        (b"\x5a\x00\x00", 180.0),
        (b"\x00\x00\x00", 0.0),
        (b"\xff\xff\xff", -1.0 / 32768),  # Epic's off-by-one decoder gives 0 here
        (b"\x80\x00\x00", -256.0),
        (b"\x7f\xff\xff", 256.0 - 1.0 / 32768),
        (b"\x00\x80\x00", 1.0),
    ],
)
@pytest.mark.parametrize("field", ["pan", "tilt", "roll"])
def test_angle_anchors(field: str, raw: bytes, degrees: float) -> None:
    packet = decode_freed(make_d1({field: raw}))
    assert getattr(packet, f"{field}_deg") == degrees
    assert encode_freed(packet) == make_d1({field: raw})


@pytest.mark.parametrize(
    ("raw", "mm"),
    [
        (b"\x80\x00\x00", -131072.0),
        (b"\x7f\xff\xff", 131071.984375),
        (b"\xff\xff\xff", -1.0 / 64),
        (b"\x00\x00\x40", 1.0),
        (b"\xff\xff\xc0", -1.0),
    ],
)
@pytest.mark.parametrize("field", ["x", "y", "z"])
def test_position_anchors(field: str, raw: bytes, mm: float) -> None:
    packet = decode_freed(make_d1({field: raw}))
    assert getattr(packet, f"{field}_mm") == mm
    assert encode_freed(packet) == make_d1({field: raw})


def test_unsigned_fields_and_camera_id() -> None:
    msg = make_d1({"zoom": b"\xff\xff\xff", "focus": b"\x80\x00\x01", "spare": b"\xbe\xef"}, camera_id=0xFF)
    p = decode_freed(msg)
    assert (p.camera_id, p.zoom, p.focus, p.spare) == (0xFF, 0xFFFFFF, 0x800001, 0xBEEF)


# --- checksum -----------------------------------------------------------------------------------------------


def test_checksum_examples() -> None:
    # D1 01 + 26 zero bytes: (0x40 - (0xD1 + 0x01)) mod 256 = (64 - 210) mod 256 = 0x6E
    assert freed_checksum(bytes([0xD1, 0x01]) + bytes(26)) == 0x6E
    # receiver test from the manual: (0x40 - sum(all 29 bytes)) mod 256 == 0
    for name in sorted(p.name for p in FIXTURES.glob("*.hex")):
        msg = load_hex(name)
        assert (0x40 - sum(msg)) % 256 == 0, name
        assert freed_checksum(msg) == msg[28]


def test_checksum_is_not_xor() -> None:
    msg = make_d1({"pan": b"\x12\x34\x56"})
    xor = 0
    for b in msg[:28]:
        xor ^= b
    assert msg[28] != xor  # the example is chosen so the two differ
    assert decode_freed(msg).pan_deg == 0x123456 / 32768


def test_bad_checksum_raises_with_expected_and_got() -> None:
    msg = bytearray(make_d1({"tilt": b"\x01\x00\x00"}))
    good = msg[28]
    msg[28] = (good + 1) % 256
    with pytest.raises(ChecksumError) as info:
        decode_freed(bytes(msg))
    assert info.value.expected == good and info.value.got == msg[28]
    assert f"0x{good:02X}" in str(info.value) and f"0x{msg[28]:02X}" in str(info.value)
    assert isinstance(info.value, DecodeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("length", [0, 1, 28, 30, 64])
def test_wrong_length(length: int) -> None:
    data = (make_d1() * 3)[:length]
    with pytest.raises(TruncatedError, match=f"expected 29 bytes, got {length}"):
        decode_freed(data)


def test_wrong_type() -> None:
    msg = bytearray(make_d1())
    msg[0] = 0xD0
    msg[28] = (0x40 - sum(msg[:28])) % 256
    with pytest.raises(DecodeError, match="expected message type 0xD1, got 0xD0"):
        decode_freed(bytes(msg))


def test_bytes_like_inputs() -> None:
    msg = load_hex("d1_spec_anchors.hex")
    assert decode_freed(bytearray(msg)) == decode_freed(memoryview(msg)) == decode_freed(msg)


# --- fixtures -----------------------------------------------------------------------------------------------

FIXTURE_VALUES = {
    "d1_zero_cam01.hex": FreeDPacket(1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0),
    "d1_spec_anchors.hex": FreeDPacket(
        0xFF, -180.0, 180.0, -1.0 / 32768, -131072.0, 131071.984375, 1.0, 0, 0xFFFFFF, 0x1234
    ),
    "d1_zcam_example.hex": FreeDPacket(0xFF, 1.0, -1.0, 0.0, 1.0, -1.0, 1024.0, 950, 12300, 0x5118),
    "d1_panasonic_ptz.hex": FreeDPacket(0xFF, -175.0, 210.0, 180.0, 0.0, 0.0, 0.0, 0x555, 0xFFF, 0x0AAA),
}


def test_every_fixture_is_listed() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.hex")) == sorted(FIXTURE_VALUES)


@pytest.mark.parametrize("name", sorted(FIXTURE_VALUES))
def test_fixture_decodes_and_reencodes(name: str) -> None:
    msg = load_hex(name)
    assert len(msg) == FREED_D1_LENGTH
    packet = decode_freed(msg)
    assert packet == FIXTURE_VALUES[name]
    assert encode_freed(packet) == msg


# --- round trips --------------------------------------------------------------------------------------------


def test_random_raw_round_trip() -> None:
    rng = np.random.default_rng(20240601)
    n = 5000
    ints = rng.integers(-(1 << 23), 1 << 23, size=(n, 6))
    unsigned = rng.integers(0, 1 << 24, size=(n, 2))
    spare = rng.integers(0, 1 << 16, size=n)
    cams = rng.integers(0, 256, size=n)
    for i in range(n):
        p = FreeDPacket(
            int(cams[i]),
            int(ints[i, 0]) / 32768,
            int(ints[i, 1]) / 32768,
            int(ints[i, 2]) / 32768,
            int(ints[i, 3]) / 64,
            int(ints[i, 4]) / 64,
            int(ints[i, 5]) / 64,
            int(unsigned[i, 0]),
            int(unsigned[i, 1]),
            int(spare[i]),
        )
        msg = encode_freed(p)
        assert len(msg) == 29 and msg[0] == 0xD1
        assert int.from_bytes(msg[2:5], "big", signed=True) == ints[i, 0]
        assert int.from_bytes(msg[17:20], "big", signed=True) == ints[i, 5]
        assert decode_freed(msg) == p
        sample = freed_to_sample(p)
        assert sample_to_freed(sample) == p
        assert encode_freed(sample_to_freed(sample)) == msg


def test_random_bytes_round_trip() -> None:
    rng = np.random.default_rng(7)
    body = rng.integers(0, 256, size=(3000, 29), dtype=np.uint8)
    body[:, 0] = 0xD1
    body[:, 28] = (0x40 - body[:, :28].astype(np.int64).sum(axis=1)) % 256
    for row in body:
        msg = row.tobytes()
        assert encode_freed(decode_freed(msg)) == msg


def test_encode_rounds_to_the_protocol_grid() -> None:
    p = FreeDPacket(1, 10.0 + 0.4 / 32768, 0.0, 0.0, 5.0 + 0.6 / 64, 0.0, 0.0, 0, 0, 0)
    back = decode_freed(encode_freed(p))
    assert back.pan_deg == 10.0 and back.x_mm == 5.0 + 1 / 64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pan_deg": 256.0},
        {"tilt_deg": -256.0 - 1 / 32768},
        {"x_mm": 131072.0},
        {"z_mm": float("nan")},
        {"roll_deg": float("inf")},
        {"camera_id": 256},
        {"camera_id": -1},
        {"zoom": 1 << 24},
        {"focus": -1},
        {"spare": 0x10000},
        {"zoom": 1.5},
    ],
)
def test_encode_rejects_out_of_range(kwargs: dict) -> None:
    packet = dataclasses.replace(FreeDPacket(1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0), **kwargs)
    with pytest.raises(EncodeError):
        encode_freed(packet)


# --- stage conventions --------------------------------------------------------------------------------------


def test_to_sample_conventions() -> None:
    p = FreeDPacket(7, 30.0, -10.0, 5.0, 1500.0, -250.5, 1800.0, 111, 222, 333)
    s = freed_to_sample(p)
    assert isinstance(s, TrackingSample)
    assert s.protocol == PROTOCOL_FREED and s.pose_frame == FRAME_BODY and s.camera_id == 7
    assert s.pose == Pose(1.5, -0.2505, 1.8, -30.0, -10.0, 5.0)
    assert s.lens is not None and s.lens.raw_encoders is not None
    assert (s.lens.raw_encoders.zoom, s.lens.raw_encoders.focus) == (111, 222)
    assert s.lens.encoders is None and s.lens.focal_length_mm is None
    assert s.raw == {"spare": 333}
    assert sample_to_freed(s) == p


def test_freed_pan_right_looks_along_plus_x() -> None:
    """FreeD pan +90 (to the right, seen from above): the optical axis (camera +Y) points at stage +X."""
    s = freed_to_sample(FreeDPacket(1, 90.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0))
    forward = s.pose.matrix()[:3, :3] @ np.array([0.0, 1.0, 0.0])
    assert np.allclose(forward, [1.0, 0.0, 0.0], atol=1e-12)
    s = freed_to_sample(FreeDPacket(1, 0.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0))  # tilt up
    forward = s.pose.matrix()[:3, :3] @ np.array([0.0, 1.0, 0.0])
    assert forward[2] == pytest.approx(math.sin(math.radians(30.0)))


def test_to_sample_with_profile() -> None:
    s = decode_freed_sample(load_hex("d1_zcam_example.hex"), get_profile("Z-Cam"))
    assert s.lens.focal_length_mm == 9.5
    assert s.lens.focus_distance_m == 1.23
    assert s.lens.f_stop == 2.8
    assert s.raw == {"spare": 0x5118, "frame_counter": 5}
    assert s.pose == Pose(0.001, -0.001, 1.024, -1.0, -1.0, 0.0)
    # the profile adds derived values only; the inverse still gives the same bytes
    assert encode_freed(sample_to_freed(s)) == load_hex("d1_zcam_example.hex")


def test_sample_to_freed_overrides_and_defaults() -> None:
    sample = TrackingSample(protocol="OpenTrackIO", pose=Pose(1.0, 2.0, 3.0, 45.0, 0.0, 0.0))
    p = sample_to_freed(sample)
    assert (p.camera_id, p.zoom, p.focus, p.spare) == (0xFF, 0, 0, 0)
    assert (p.x_mm, p.y_mm, p.z_mm, p.pan_deg) == (1000.0, 2000.0, 3000.0, -45.0)
    p = sample_to_freed(sample, camera_id=3, zoom=10, focus=20, spare=30)
    assert (p.camera_id, p.zoom, p.focus, p.spare) == (3, 10, 20, 30)
    with pytest.raises(EncodeError, match="no pose"):
        sample_to_freed(TrackingSample(protocol="FreeD"))


# --- the per-packet path against the reference path ---------------------------------------------------------


def _reference_packet(msg: bytes) -> FreeDPacket:
    """decode_freed as specified: each int24 from its 3 bytes, public constructor."""

    def i24(o: int) -> int:
        return int.from_bytes(msg[o : o + 3], "big", signed=True)

    def u24(o: int) -> int:
        return int.from_bytes(msg[o : o + 3], "big")

    return FreeDPacket(
        msg[1],
        i24(2) / 32768.0,
        i24(5) / 32768.0,
        i24(8) / 32768.0,
        i24(11) / 64.0,
        i24(14) / 64.0,
        i24(17) / 64.0,
        u24(20),
        u24(23),
        int.from_bytes(msg[26:28], "big"),
    )


def _reference_sample(p: FreeDPacket, profile=None) -> TrackingSample:
    """freed_to_sample as specified, with the public constructors."""
    raw = {"spare": p.spare}
    lens = LensState(raw_encoders=RawEncoders(focus=p.focus, zoom=p.zoom))
    if profile is not None:
        r = apply_profile(profile, p.zoom, p.focus, p.spare)
        lens = LensState(
            focal_length_mm=r.focal_length_mm,
            focus_distance_m=r.focus_distance_m,
            f_stop=r.f_stop,
            encoders=r.encoders,
            raw_encoders=lens.raw_encoders,
        )
        if r.frame_counter is not None:
            raw["frame_counter"] = r.frame_counter
        if r.tracking_quality is not None:
            raw["tracking_quality"] = r.tracking_quality
    return TrackingSample(
        protocol=PROTOCOL_FREED,
        pose=Pose(p.x_mm / 1000.0, p.y_mm / 1000.0, p.z_mm / 1000.0, -p.pan_deg, p.tilt_deg, p.roll_deg),
        pose_frame=FRAME_BODY,
        lens=lens,
        camera_id=p.camera_id,
        raw=raw,
    )


def test_decode_matches_the_reference_path() -> None:
    rng = np.random.default_rng(1729)
    body = rng.integers(0, 256, size=(4000, 29), dtype=np.uint8)
    body[:, 0] = 0xD1
    body[:8, 2:26] = 0xFF  # all-ones and all-zero fields: -1 LSB, sign edges
    body[8:16, 2:26] = 0x00
    body[16:24, 2:26:3] = 0x80  # most negative int24
    body[:, 28] = (0x40 - body[:, :28].astype(np.int64).sum(axis=1)) % 256
    profiles = [None, *PROFILES.values(), custom_profile(zoom=(5, 4000, True, 12), iris=(1, 2, False, 3))]
    for i, row in enumerate(body):
        msg = row.tobytes()
        packet = _reference_packet(msg)
        got = decode_freed(msg)
        assert got == packet and repr(got) == repr(packet) and type(got) is FreeDPacket
        profile = profiles[i % len(profiles)]
        want = _reference_sample(packet, profile)
        for data in (msg, bytearray(msg), memoryview(msg)):
            s = decode_freed_sample(data, profile)
            assert s == want and repr(s) == repr(want) and hash(s) == hash(want)
        assert freed_to_sample(packet, profile) == want


def test_sample_objects_are_ordinary_frozen_instances() -> None:
    s = decode_freed_sample(make_d1({"pan": b"\x00\x80\x00"}), get_profile("sony"))
    assert type(s) is TrackingSample and type(s.pose) is Pose and type(s.lens) is LensState
    assert type(s.lens.raw_encoders) is RawEncoders
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.pose = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.pose.x = 1.0  # type: ignore[misc]
    assert dataclasses.replace(s, camera_id=9).camera_id == 9
    assert decode_freed_sample(make_d1()).raw is not decode_freed_sample(make_d1()).raw


@pytest.mark.parametrize("flip", range(29))
def test_any_single_byte_error_is_caught(flip: int) -> None:
    msg = bytearray(make_d1({"pan": b"\x12\x34\x56", "zoom": b"\x01\x02\x03", "spare": b"\xbe\xef"}))
    msg[flip] ^= 0x10
    error = DecodeError if flip == 0 else ChecksumError
    with pytest.raises(error):
        decode_freed_sample(bytes(msg))
    if flip:
        with pytest.raises(ChecksumError) as info:
            decode_freed(bytes(msg))
        assert info.value.expected == (0x40 - sum(msg[:28])) % 256 and info.value.got == msg[28]
