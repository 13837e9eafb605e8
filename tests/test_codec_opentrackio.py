"""OpenTrackIO codec: Fletcher-16, OTrk header, segmentation / reassembly, the official examples, round trips.

The official examples and schemas are read from ``tests/data/opentrackio``, vendored unchanged
(provenance and licence in its README); expected values are read from the JSON files themselves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from functools import cache
from pathlib import Path
from types import MappingProxyType

import cbor2
import jsonschema
import numpy as np
import pytest
from helpers import rot_ptr

from stagectl.core.sample import (
    DEFAULT_DISTORTION_MODEL,
    FRAME_CAMERA,
    LensEncoders,
    LensState,
    Pose,
    Timing,
    TrackingSample,
    Transform,
)
from stagectl.core.transforms import (
    matmul3,
    ptr_deg_from_rotation,
    ptr_deg_from_rows,
    rotation_from_ptr_deg,
    rotation_rows_from_ptr_deg,
)
from stagectl.tracking.codecs.freed import FreeDPacket, freed_to_sample
from stagectl.tracking.codecs.opentrackio import (
    DEFAULT_MAX_SEGMENT_PAYLOAD,
    ENCODING_CBOR,
    ENCODING_JSON,
    HEADER_LENGTH,
    MAX_SEGMENT_PAYLOAD,
    Reassembler,
    camera_sample,
    decode_datagram,
    decode_packet,
    decode_sample,
    encode_datagram,
    encode_payload,
    encode_sample,
    fletcher16,
    parse_payload,
    sample_from_dict,
    sample_to_dict,
    segment_payload,
)
from stagectl.tracking.errors import (
    ChecksumError,
    DecodeError,
    EncodeError,
    FieldError,
    SegmentError,
    TruncatedError,
)

TESTDATA = Path(__file__).resolve().parent / "data" / "opentrackio"
VERSIONS = ("v1.0.0", "v1.0.1", "v0.9.3-classic")
EXAMPLE_NAMES = (
    "complete_dynamic_example",
    "complete_static_example",
    "recommended_dynamic_example",
    "recommended_static_example",
)
EXAMPLES = [(v, n) for v in VERSIONS for n in EXAMPLE_NAMES]
URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def example_path(version: str, name: str) -> Path:
    return TESTDATA / version / "examples" / f"{name}.json"


@cache
def example_bytes(version: str, name: str) -> bytes:
    return example_path(version, name).read_bytes()


def example_dict(version: str, name: str) -> dict:
    return json.loads(example_bytes(version, name))


@cache
def validator(version: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((TESTDATA / version / "schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def reference_fletcher(data: bytes, modulus: int) -> int:
    """Textbook Fletcher-16: reduce after every byte."""
    s1 = s2 = 0
    for b in data:
        s1 = (s1 + b) % modulus
        s2 = (s2 + s1) % modulus
    return (s2 << 8) | s1


def reassemble(datagrams: list[bytes], reassembler: Reassembler | None = None):
    r = reassembler or Reassembler()
    done = [p for p in (r.push(d) for d in datagrams) if p is not None]
    return done


def test_testdata_path_resolves() -> None:
    assert TESTDATA.is_dir(), TESTDATA
    for version, name in EXAMPLES:
        assert example_path(version, name).is_file()


# --- Fletcher-16 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mod255", "mod256"),
    [
        (b"abcde", 0xC8F0, 0xC3EF),
        (b"abcdef", 0x2057, 0x1855),
        (b"abcdefgh", 0x0627, 0xF824),
        (b"\x01\x02", 0x0403, 0x0403),
    ],
)
def test_fletcher_check_values(data: bytes, mod255: int, mod256: int) -> None:
    assert fletcher16(data, 255) == mod255 == reference_fletcher(data, 255)
    assert fletcher16(data, 256) == mod256 == reference_fletcher(data, 256)
    assert fletcher16(bytearray(data)) == fletcher16(memoryview(data)) == mod256


def test_fletcher_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(5)
    for n in [0, 1, 2, 13, 95, 96, 97, 500, 1484, 4096, 32767]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for m in (255, 256):
            assert fletcher16(data, m) == reference_fletcher(data, m), (n, m)
    data = b"\xff" * 40000  # the classic mod-255 edge: sums that are multiples of 255 reduce to 0, never 255
    assert fletcher16(data, 255) == reference_fletcher(data, 255)


def test_fletcher_rejects_other_moduli() -> None:
    with pytest.raises(ValueError):
        fletcher16(b"abc", 65535)


# --- header -------------------------------------------------------------------------------------------------


def test_header_layout_big_endian() -> None:
    payload = b'{"a":1}'
    dg = encode_datagram(
        payload, encoding=ENCODING_JSON, sequence=0x1234, segment_offset=0x01020304, last_segment=True
    )
    ident, reserved, enc, seq, off, flag_len, ck = struct.unpack(">4sBBHIHH", dg[:16])
    assert (ident, reserved, enc, seq, off) == (b"OTrk", 0, 0x01, 0x1234, 0x01020304)
    assert flag_len == 0x8000 | len(payload)
    assert ck == reference_fletcher(dg[:14] + payload, 256)
    assert dg[16:] == payload
    h = decode_datagram(dg).header
    assert (h.encoding, h.sequence, h.segment_offset, h.last_segment, h.payload_length, h.checksum) == (
        1,
        0x1234,
        0x01020304,
        True,
        len(payload),
        ck,
    )


@pytest.mark.parametrize(
    ("modulus", "payload"), [(255, b"abcdefgh" * 40), (256, b"abcdefgh" * 40), (256, b"\x00")]
)
def test_decoder_accepts_either_modulus_and_reports_it(modulus: int, payload: bytes) -> None:
    dg = encode_datagram(payload, encoding=ENCODING_CBOR, sequence=1, modulus=modulus)
    d = decode_datagram(dg)
    other = 511 - modulus
    if reference_fletcher(dg[:14] + payload, other) == reference_fletcher(dg[:14] + payload, modulus):
        assert d.checksum_moduli == (255, 256)
    else:
        assert d.checksum_moduli == (modulus,)
        with pytest.raises(ChecksumError):
            decode_datagram(dg, moduli=(other,))
    assert d.payload == payload


def test_checksum_error_message() -> None:
    dg = bytearray(encode_datagram(b"hello", encoding=1, sequence=9))
    dg[-1] ^= 0x01
    with pytest.raises(ChecksumError) as info:
        decode_datagram(bytes(dg))
    text = str(info.value)
    assert "mod 255" in text and "mod 256" in text and f"0x{info.value.got:04X}" in text
    assert len(info.value.expected) == 2


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda d: d[:10], TruncatedError, "at least 16"),
        (lambda d: d[:-1], TruncatedError, "announces"),
        (lambda d: d + b"x", TruncatedError, "announces"),
        (lambda d: b"OTRK" + d[4:], DecodeError, "identifier"),
        (lambda d: d[:5] + b"\x00" + d[6:], DecodeError, "encoding"),
        (lambda d: d[:5] + b"\x03" + d[6:], DecodeError, "encoding"),
    ],
)
def test_bad_headers(mutate, error, match) -> None:
    dg = encode_datagram(b"{}", encoding=ENCODING_JSON, sequence=3)
    with pytest.raises(error, match=match):
        decode_datagram(mutate(dg))


def test_empty_payload_and_vendor_encoding() -> None:
    head = struct.pack(">4sBBHIH", b"OTrk", 0, 1, 0, 0, 0x8000)
    ck = reference_fletcher(head, 256)
    with pytest.raises(DecodeError, match="empty payload"):
        decode_datagram(head + ck.to_bytes(2, "big"))
    vendor = encode_datagram(b"\x00\x01", encoding=0x80, sequence=0)
    assert decode_datagram(vendor).header.encoding == 0x80
    with pytest.raises(DecodeError, match="0x80"):
        decode_packet(vendor)


def test_reserved_byte_is_ignored() -> None:
    dg = bytearray(encode_datagram(b"{}", encoding=1, sequence=0))
    dg[4] = 0x7E
    body = bytes(dg[:14]) + b"{}"
    dg[14:16] = reference_fletcher(body, 256).to_bytes(2, "big")
    assert decode_datagram(bytes(dg)).header.reserved == 0x7E


# --- the official examples ----------------------------------------------------------------------------------


def _compose_reference(transforms: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy composition: product of affine matrices [R S | t] (translation) and of rotations."""

    affine = np.eye(4)
    rotation = np.eye(3)
    for t in transforms:
        r = rot_ptr(t["rotation"]["pan"], t["rotation"]["tilt"], t["rotation"]["roll"])
        s = t.get("scale", {"x": 1.0, "y": 1.0, "z": 1.0})
        m = np.eye(4)
        m[:3, :3] = r @ np.diag([s["x"], s["y"], s["z"]])
        m[:3, 3] = [t["translation"]["x"], t["translation"]["y"], t["translation"]["z"]]
        affine = affine @ m
        rotation = rotation @ r
    return affine[:3, 3], rotation


def _check_against_json(sample: TrackingSample, d: dict) -> None:
    """Every field of the decoded sample against the value in the JSON object ``d``."""
    assert sample.protocol == "OpenTrackIO"
    assert sample.protocol_version == tuple(d["protocol"]["version"])
    assert sample.sample_id == d["sampleId"] and URN.match(sample.sample_id)
    assert sample.source_id == d["sourceId"] and URN.match(sample.source_id)
    assert sample.source_number == d["sourceNumber"]
    assert sample.related_sample_ids == (tuple(d["relatedSampleIds"]) if "relatedSampleIds" in d else None)
    assert sample.pose_frame == FRAME_CAMERA

    # transforms, kept individually
    assert len(sample.transforms) == len(d["transforms"])
    for got, want in zip(sample.transforms, d["transforms"]):
        assert (got.pose.x, got.pose.y, got.pose.z) == tuple(want["translation"][k] for k in "xyz")
        assert (got.pose.pan, got.pose.tilt, got.pose.roll) == tuple(
            want["rotation"][k] for k in ("pan", "tilt", "roll")
        )
        assert got.id == want.get("id")
        assert got.scale == (tuple(want["scale"][k] for k in "xyz") if "scale" in want else None)
    # composed pose, recomputed independently
    t_ref, r_ref = _compose_reference(d["transforms"])
    T = sample.pose.matrix()
    assert np.allclose(T[:3, 3], t_ref, atol=1e-12)
    assert np.allclose(T[:3, :3], r_ref, atol=1e-9)

    # tracker
    for attr, key in [
        ("notes", "notes"),
        ("recording", "recording"),
        ("slate", "slate"),
        ("status", "status"),
    ]:
        assert getattr(sample.tracker, attr) == d["tracker"][key]

    # timing
    tj, t = d["timing"], sample.timing
    assert t.mode == tj["mode"]
    assert t.sample_rate == (tj["sampleRate"]["num"], tj["sampleRate"]["denom"])
    for attr, key in [
        ("sample_timestamp_ns", "sampleTimestamp"),
        ("recorded_timestamp_ns", "recordedTimestamp"),
    ]:
        if key in tj:
            assert getattr(t, attr) == tj[key]["seconds"] * 1_000_000_000 + tj[key]["nanoseconds"]
            assert isinstance(getattr(t, attr), int)
        else:
            assert getattr(t, attr) is None
    assert t.sequence_number == tj.get("sequenceNumber")
    tc = tj["timecode"]
    assert (t.timecode.hours, t.timecode.minutes, t.timecode.seconds, t.timecode.frames) == (
        tc["hours"],
        tc["minutes"],
        tc["seconds"],
        tc["frames"],
    )
    assert t.timecode.rate == (tc["frameRate"]["num"], tc["frameRate"]["denom"])
    assert t.timecode.sub_frame == tc.get("subFrame", 0)
    assert t.timecode.drop_frame == tc.get("dropFrame", False)
    if "synchronization" in tj:
        sj, s = tj["synchronization"], t.synchronization
        assert (s.locked, s.source, s.present) == (sj["locked"], sj["source"], sj["present"])
        assert s.frequency == (sj["frequency"]["num"], sj["frequency"]["denom"])
        pj, p = sj["ptp"], s.ptp
        assert (
            p.profile,
            p.domain,
            p.leader_identity,
            p.leader_accuracy_s,
            p.mean_path_delay_s,
            p.vlan,
            p.leader_time_source,
        ) == (
            pj["profile"],
            pj["domain"],
            pj["leaderIdentity"],
            pj["leaderAccuracy"],
            pj["meanPathDelay"],
            pj["vlan"],
            pj["leaderTimeSource"],
        )
        assert p.leader_priorities == (
            pj["leaderPriorities"]["priority1"],
            pj["leaderPriorities"]["priority2"],
        )
    else:
        assert t.synchronization is None

    # lens
    lj, lens = d["lens"], sample.lens
    assert lens.focal_length_mm == lj["pinholeFocalLength"]
    assert lens.focus_distance_m == lj["focusDistance"]
    assert lens.f_stop == lj["fStop"]
    assert lens.t_stop == lj.get("tStop")
    assert lens.entrance_pupil_offset_m == lj["entrancePupilOffset"]
    assert lens.encoders == LensEncoders(**lj["encoders"])
    assert lens.raw_encoders == (
        None if "rawEncoders" not in lj else type(lens.raw_encoders)(**lj["rawEncoders"])
    )
    assert lens.projection_offset_mm == (lj["projectionOffset"]["x"], lj["projectionOffset"]["y"])
    if "distortionOffset" in lj:
        assert lens.distortion_offset_mm == (lj["distortionOffset"]["x"], lj["distortionOffset"]["y"])
    assert len(lens.distortion) == len(lj["distortion"])
    for got, want in zip(lens.distortion, lj["distortion"]):
        assert got.model == want.get("model", "Brown-Conrady D-U")
        assert got.radial == tuple(want["radial"])
        assert got.tangential == tuple(want["tangential"])
        assert got.overscan == want["overscan"]
    if "exposureFalloff" in lj:
        assert (lens.exposure_falloff.a1, lens.exposure_falloff.a2, lens.exposure_falloff.a3) == tuple(
            lj["exposureFalloff"][k] for k in ("a1", "a2", "a3")
        )
    assert lens.custom == (tuple(lj["custom"]) if "custom" in lj else None)

    # global stage, static block, unknown top-level keys
    if "globalStage" in d:
        g = d["globalStage"]
        gs = sample.global_stage
        assert (gs.e, gs.n, gs.u, gs.lat0, gs.lon0, gs.h0) == (
            g["E"],
            g["N"],
            g["U"],
            g["lat0"],
            g["lon0"],
            g["h0"],
        )
    if "static" in d:
        sj, st = d["static"], sample.static
        cam = sj["camera"]
        dims = cam["activeSensorPhysicalDimensions"]
        assert st.camera.active_sensor_physical_dimensions.width_mm == dims["width"]
        assert st.camera.active_sensor_physical_dimensions.height_mm == dims["height"]
        assert st.camera.label == cam["label"]
        assert st.lens.make == sj["lens"]["make"] and st.lens.model == sj["lens"]["model"]
        if "duration" in sj:
            assert st.duration == (sj["duration"]["num"], sj["duration"]["denom"])
            assert st.camera.capture_frame_rate == (
                cam["captureFrameRate"]["num"],
                cam["captureFrameRate"]["denom"],
            )
            assert st.camera.active_sensor_resolution.width_px == cam["activeSensorResolution"]["width"]
            assert (
                st.camera.iso_speed == cam["isoSpeed"] and st.camera.shutter_angle_deg == cam["shutterAngle"]
            )
            assert st.camera.fdl_link == cam["fdlLink"] and URN.match(st.camera.fdl_link)
            assert st.lens.calibration_history == tuple(sj["lens"]["calibrationHistory"])
            assert st.lens.nominal_focal_length_mm == sj["lens"]["nominalFocalLength"]
            assert st.tracker.serial_number == sj["tracker"]["serialNumber"]
    else:
        assert sample.static is None
    assert dict(sample.raw) == {k: v for k, v in d.items() if k == "custom"}


@pytest.mark.parametrize(("version", "name"), EXAMPLES)
def test_official_example_decodes(version: str, name: str) -> None:
    raw = example_bytes(version, name)
    d = json.loads(raw)
    # the file bytes are the payload, sent through the transport
    datagrams = segment_payload(raw, encoding=ENCODING_JSON, sequence=42)
    assert all(len(dg) <= HEADER_LENGTH + DEFAULT_MAX_SEGMENT_PAYLOAD for dg in datagrams)
    (payload,) = reassemble(datagrams)
    assert payload.data == raw and payload.sequence == 42
    sample = decode_sample(payload.data, payload.encoding)
    _check_against_json(sample, d)


@pytest.mark.parametrize(("version", "name"), EXAMPLES)
def test_official_example_reencodes(version: str, name: str) -> None:
    d = example_dict(version, name)
    sample = sample_from_dict(d)
    again = sample_to_dict(sample)
    assert again == d  # every field of the examples is supported, so the object comes back whole
    validator(version).validate(again)
    for encoding in (ENCODING_JSON, ENCODING_CBOR):
        datagrams = encode_sample(sample, encoding=encoding, sequence=7)
        (payload,) = reassemble(datagrams)
        assert payload.encoding == encoding
        assert decode_sample(payload.data, encoding) == sample
        validator(version).validate(parse_payload(payload.data, encoding))


@pytest.mark.parametrize(("version", "name"), EXAMPLES)
def test_cbor_and_json_decode_to_the_same_sample(version: str, name: str) -> None:
    d = example_dict(version, name)
    from_json = decode_sample(example_bytes(version, name), ENCODING_JSON)
    from_cbor = decode_sample(cbor2.dumps(d), ENCODING_CBOR)
    assert from_json == from_cbor


def test_1_0_1_complete_examples_fail_the_1_0_0_schema() -> None:
    """Sanity check that schema validation is discriminating (documented in the testdata README)."""
    d = example_dict("v1.0.1", "complete_dynamic_example")
    assert not validator("v1.0.0").is_valid(sample_to_dict(sample_from_dict(d)))
    assert validator("v1.0.1").is_valid(sample_to_dict(sample_from_dict(d)))


def test_single_transform_angles_pass_through() -> None:
    d = example_dict("v1.0.1", "recommended_dynamic_example")
    s = sample_from_dict(d)
    r = d["transforms"][0]["rotation"]
    assert (s.pose.pan, s.pose.tilt, s.pose.roll) == (r["pan"], r["tilt"], r["roll"])


def test_transform_chain_with_scale() -> None:
    d = {
        "transforms": [
            {
                "translation": {"x": 1.0, "y": 0.0, "z": 0.0},
                "rotation": {"pan": 90.0, "tilt": 0.0, "roll": 0.0},
                "scale": {"x": 2.0, "y": 3.0, "z": 1.0},
            },
            {
                "translation": {"x": 0.0, "y": 1.0, "z": 0.5},
                "rotation": {"pan": 0.0, "tilt": 30.0, "roll": 0.0},
            },
        ]
    }
    s = sample_from_dict(d)
    # scale (2, 3, 1) stretches the child's y by 3, then pan 90 turns +y into -x: t = (1,0,0) + (-3, 0, 0.5)
    assert np.allclose([s.pose.x, s.pose.y, s.pose.z], [-2.0, 0.0, 0.5])
    assert (s.pose.pan, s.pose.tilt, s.pose.roll) == pytest.approx((90.0, 30.0, 0.0))
    t_ref, r_ref = _compose_reference(d["transforms"])
    assert np.allclose(s.pose.matrix()[:3, 3], t_ref) and np.allclose(s.pose.matrix()[:3, :3], r_ref)


def test_partial_translation_defaults_to_zero() -> None:
    s = sample_from_dict({"transforms": [{"translation": {"z": 1.5}, "rotation": {"pan": 10}}]})
    assert s.pose == Pose(0.0, 0.0, 1.5, 10.0, 0.0, 0.0)


# --- validation while decoding ------------------------------------------------------------------------------


def _mutated(path: list, value, example: str = "complete_static_example") -> dict:
    """The official 1.0.1 ``example`` with the field at ``path`` set to ``value`` (removed for KeyError)."""
    d = example_dict("v1.0.1", example)
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (["protocol", "name"], "OpenTrackIOX", "protocol.name"),
        (["protocol", "version"], [1, 0], "protocol.version"),
        (["protocol", "version"], [1, 0, 10], r"protocol.version\[2\]"),
        (["sampleId"], "urn:uuid:EF52F8B3-B2C1-4A6F-9BC1-00215E35C644", "sampleId"),
        (["sourceId"], "c223116c-50ae-4f90-98cd-149021332425", "sourceId"),
        (["relatedSampleIds"], ["nope"], "relatedSampleIds"),
        (["sourceNumber"], -1, "sourceNumber"),
        (["sourceNumber"], True, "sourceNumber"),
        (["transforms", 0, "translation", "x"], "1", r"transforms\[0\].translation.x"),
        (["transforms", 0, "rotation"], KeyError, r"transforms\[0\]: missing required field 'rotation'"),
        (["transforms", 1, "scale", "y"], 1e400, r"transforms\[1\].scale.y"),
        (["transforms"], {"a": 1}, "transforms"),
        (["lens", "encoders", "zoom"], 1.5, r"lens.encoders.zoom: expected a number in \[0, 1\]"),
        (["lens", "rawEncoders", "focus"], 2**32, "lens.rawEncoders.focus"),
        (["lens", "pinholeFocalLength"], 0.0, "lens.pinholeFocalLength: expected a number > 0"),
        (["lens", "focusDistance"], -1, "lens.focusDistance"),
        (["lens", "distortion", 0, "radial"], [], r"lens.distortion\[0\].radial"),
        (["lens", "distortion", 1, "overscan"], 0.5, r"lens.distortion\[1\].overscan"),
        (["lens", "projectionOffset"], {"x": 1.0}, "lens.projectionOffset: missing required field 'y'"),
        (["lens", "custom"], [1.0, None], "lens.custom"),
        (["timing", "mode"], "auto", "timing.mode"),
        (["timing", "sampleTimestamp", "nanoseconds"], -5, "timing.sampleTimestamp.nanoseconds"),
        (["timing", "sampleRate", "denom"], 0, "timing.sampleRate.denom"),
        (["timing", "timecode", "hours"], 24, "timing.timecode.hours"),
        (
            ["timing", "timecode", "frameRate"],
            KeyError,
            "timing.timecode: missing required field 'frameRate'",
        ),
        (["timing", "timecode", "dropFrame"], 1, "timing.timecode.dropFrame"),
        (["timing", "synchronization", "source"], "gps", "timing.synchronization.source"),
        (["timing", "synchronization", "ptp", "domain"], 128, "timing.synchronization.ptp.domain"),
        (["tracker", "recording"], "no", "tracker.recording"),
        (["static", "camera", "shutterAngle"], 361.0, "static.camera.shutterAngle"),
        (["static", "camera", "fdlLink"], "x", "static.camera.fdlLink"),
        (["static", "lens", "distortionOverscanMax"], 0.9, "static.lens.distortionOverscanMax"),
        (["globalStage", "lat0"], None, "globalStage"),
        (["lens"], [], "lens: expected an object"),
    ],
)
def test_field_validation(path: list, value, match: str) -> None:
    d = _mutated(path, value)
    with pytest.raises(FieldError, match=match):
        sample_from_dict(d)
    # and through bytes: JSON cannot carry 1e400 as a finite value either
    with pytest.raises(DecodeError):
        decode_sample(cbor2.dumps(d), ENCODING_CBOR)


def test_integral_floats_are_accepted_as_integers() -> None:
    d = _mutated(["sourceNumber"], 3.0)
    assert sample_from_dict(d).source_number == 3


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b'{"lens":{"fStop":NaN}}', "NaN"),
        (b'{"lens":{"fStop":Infinity}}', "Infinity"),
        (b'{"lens":{"fStop":-Infinity}}', "Infinity"),
        (b'{"lens":{"fStop":1e999}}', "finite"),
        (b'{"tracker":{"notes":"\xff\xfe"}}', "utf-8"),
        (b"\xef\xbb\xbf{}", "BOM"),
        ('{"a": 1}'.encode("utf-16"), "utf-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"custom":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b"[1, 2]", "expected an object"),
        (b"{} {}", "Extra data"),
        (b'{"sourceNumber": ' + b"9" * 5000 + b"}", "sourceNumber|digits"),
        (b"", "Expecting value"),
    ],
)
def test_json_payload_errors(payload: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_sample(payload, ENCODING_JSON)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (cbor2.dumps({"lens": {"fStop": float("nan")}}), "lens.fStop"),
        (cbor2.dumps({}) + b"\x00", "trailing"),
        (b"\x81" * 2000 + b"\x00", "nest"),
        (b"\x5b" + (2**62).to_bytes(8, "big") + b"ab", "premature end"),
        (cbor2.dumps([1, 2]), "expected an object"),
        (cbor2.dumps({1: 2}), "string keys"),
        (cbor2.dumps({"tracker": {"notes": b"bytes"}}), "tracker.notes"),
        (b"", "premature end|end of stream"),
    ],
)
def test_cbor_payload_errors(payload: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_sample(payload, ENCODING_CBOR)


def test_unknown_encoding() -> None:
    with pytest.raises(DecodeError, match="0x03"):
        decode_sample(b"{}", 3)


def test_unknown_nested_keys_are_ignored_top_level_kept() -> None:
    s = sample_from_dict({"lens": {"fStop": 2.0, "vendorThing": 1}, "vendor": {"a": [1, 2]}})
    assert s.lens == LensState(f_stop=2.0) and s.raw == {"vendor": {"a": [1, 2]}}
    assert sample_to_dict(s)["vendor"] == {"a": [1, 2]}


# --- segmentation -------------------------------------------------------------------------------------------


def _big_payload(encoding: int = ENCODING_JSON) -> bytes:
    d = example_dict("v1.0.1", "complete_static_example")
    d["lens"]["custom"] = [float(i) / 7 for i in range(600)]
    return encode_payload(d, encoding)


def test_segments_share_one_sequence_number() -> None:
    payload = _big_payload()
    datagrams = segment_payload(payload, encoding=ENCODING_JSON, sequence=65535, max_segment_payload=1000)
    assert len(datagrams) == math.ceil(len(payload) / 1000)
    headers = [decode_datagram(d).header for d in datagrams]
    assert {h.sequence for h in headers} == {65535}
    assert [h.segment_offset for h in headers] == list(range(0, len(payload), 1000))
    assert [h.last_segment for h in headers] == [False] * (len(headers) - 1) + [True]
    assert all(h.payload_length == 1000 for h in headers[:-1])
    assert b"".join(decode_datagram(d).payload for d in datagrams) == payload


def test_reassembly_shuffled_duplicated_lost() -> None:
    rng = np.random.default_rng(11)
    r = Reassembler()
    payloads = [_big_payload(ENCODING_JSON), _big_payload(ENCODING_CBOR)]
    delivered = 0
    for seq in range(60):
        payload = payloads[seq % 2]
        encoding = ENCODING_JSON if seq % 2 == 0 else ENCODING_CBOR
        datagrams = segment_payload(
            payload,
            encoding=encoding,
            sequence=seq,
            max_segment_payload=int(rng.integers(200, 1485)),
            modulus=int(rng.choice([255, 256])),
        )
        order = list(rng.permutation(len(datagrams)))
        order += list(rng.choice(len(datagrams), size=int(rng.integers(0, 4))))  # duplicates
        lose = seq % 3 == 2
        victim = int(rng.integers(len(datagrams))) if lose else -1
        order = [i for i in order if i != victim]
        rng.shuffle(order)
        results = [r.push(datagrams[i]) for i in order]
        complete = [p for p in results if p is not None]
        if lose:
            assert complete == []
        else:
            assert len(complete) == 1, seq
            assert complete[0].data == payload and complete[0].encoding == encoding
            assert complete[0].sequence == seq
            assert decode_sample(complete[0].data, encoding).lens.custom == tuple(i / 7 for i in range(600))
            delivered += 1
        # late duplicates of this payload are ignored (the lost segment stays lost)
        for i in rng.choice([k for k in range(len(datagrams)) if k != victim], size=2):
            assert r.push(datagrams[int(i)]) is None
    assert r.completed == delivered == 40
    assert r.dropped_incomplete >= 19  # each lost payload is dropped when the next sequence starts
    assert r.duplicates > 0
    assert r.pending_bytes < len(payloads[0]) + 1


def test_single_datagram_duplicates_delivered_once() -> None:
    r = Reassembler()
    (dg,) = encode_sample(sample_from_dict(example_dict("v1.0.1", "recommended_dynamic_example")), sequence=5)
    assert r.push(dg) is not None
    assert r.push(dg) is None and r.duplicates == 1
    # a sender that never advances its sequence number still gets new samples through
    other = sample_from_dict(example_dict("v1.0.0", "recommended_dynamic_example"))
    (dg2,) = encode_sample(other, sequence=5)
    assert r.push(dg2) is not None


def test_reassembly_contradictions_raise() -> None:
    payload = _big_payload()
    dgs = segment_payload(payload, encoding=ENCODING_JSON, sequence=1, max_segment_payload=500)
    r = Reassembler()
    r.push(dgs[0])
    forged = encode_datagram(
        b"x" * 500, encoding=ENCODING_JSON, sequence=1, segment_offset=0, last_segment=False
    )
    with pytest.raises(SegmentError, match="two different segments at offset 0"):
        r.push(forged)
    assert r.pending_bytes == 0
    # mixed encodings in one sequence
    r.push(dgs[0])
    with pytest.raises(SegmentError, match="mixes encodings"):
        r.push(
            encode_datagram(
                b"y" * 10, encoding=ENCODING_CBOR, sequence=1, segment_offset=500, last_segment=False
            )
        )
    # two different ends
    r.push(dgs[-1])
    with pytest.raises(SegmentError, match="ends at both"):
        r.push(
            encode_datagram(b"z", encoding=ENCODING_JSON, sequence=1, segment_offset=10, last_segment=True)
        )
    # overlap
    r.push(
        encode_datagram(b"a" * 10, encoding=ENCODING_JSON, sequence=2, segment_offset=0, last_segment=False)
    )
    with pytest.raises(SegmentError, match="overlapping"):
        r.push(
            encode_datagram(
                b"b" * 10, encoding=ENCODING_JSON, sequence=2, segment_offset=5, last_segment=True
            )
        )


def test_reassembly_memory_is_bounded() -> None:
    r = Reassembler(max_payload_bytes=4096)
    with pytest.raises(SegmentError, match="payload limit"):
        r.push(encode_datagram(b"a" * 100, encoding=1, sequence=1, segment_offset=4000, last_segment=False))
    for off in range(0, 4000, 100):
        r.push(encode_datagram(b"a" * 100, encoding=1, sequence=1, segment_offset=off, last_segment=False))
    with pytest.raises(SegmentError, match="more than 4096"):  # overlapping segments cannot pile up
        r.push(encode_datagram(b"b" * 100, encoding=1, sequence=1, segment_offset=50, last_segment=False))
    assert r.pending_bytes == 0


def test_decode_packet_refuses_segments() -> None:
    dgs = segment_payload(_big_payload(), encoding=ENCODING_JSON, sequence=1)
    with pytest.raises(SegmentError, match="reassemble"):
        decode_packet(dgs[0])


def test_segment_payload_arguments() -> None:
    with pytest.raises(EncodeError):
        segment_payload(b"", encoding=1, sequence=0)
    with pytest.raises(EncodeError):
        segment_payload(b"x", encoding=1, sequence=0, max_segment_payload=0x8000)
    with pytest.raises(EncodeError):
        segment_payload(b"x", encoding=1, sequence=0x10000)


# --- round trips of random samples --------------------------------------------------------------------------


def _random_sample(rng: np.random.Generator) -> TrackingSample:
    def f(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    transforms = tuple(
        Transform(
            Pose(f(-50, 50), f(-50, 50), f(0, 10), f(-180, 180), f(-89, 89), f(-180, 180)),
            (f(0.5, 2), f(0.5, 2), f(0.5, 2)) if rng.random() < 0.3 else None,
            f"t{i}" if rng.random() < 0.5 else None,
        )
        for i in range(int(rng.integers(1, 4)))
    )
    probe = sample_from_dict(
        {
            "transforms": [
                {
                    "translation": {"x": t.pose.x, "y": t.pose.y, "z": t.pose.z},
                    "rotation": {"pan": t.pose.pan, "tilt": t.pose.tilt, "roll": t.pose.roll},
                    **({"scale": dict(zip("xyz", t.scale))} if t.scale else {}),
                }
                for t in transforms
            ]
        }
    )
    return TrackingSample(
        protocol="OpenTrackIO",
        protocol_version=(1, 0, 1),
        pose=probe.pose,
        transforms=transforms,
        lens=LensState(
            focal_length_mm=f(8, 300),
            focus_distance_m=f(0.3, 1000),
            f_stop=f(1, 22),
            entrance_pupil_offset_m=f(-0.2, 0.2),
            encoders=LensEncoders(zoom=f(0, 1), focus=f(0, 1), iris=None),
        ),
        timing=Timing(
            mode="internal",
            sample_timestamp_ns=int(rng.integers(0, 2**62)),
            sample_rate=(int(rng.integers(1, 240_000)), int(rng.choice([1, 1001]))),
            sequence_number=int(rng.integers(0, 2**32)),
        ),
        source_number=int(rng.integers(1, 201)),
    )


def test_random_sample_round_trip() -> None:
    rng = np.random.default_rng(99)
    r = Reassembler()
    for i in range(300):
        sample = _random_sample(rng)
        encoding = ENCODING_CBOR if i % 2 else ENCODING_JSON
        (payload,) = reassemble(encode_sample(sample, encoding=encoding, sequence=i % 65536), r)
        assert decode_sample(payload.data, encoding) == sample


def test_freed_sample_to_opentrackio() -> None:
    s = freed_to_sample(FreeDPacket(1, 30.0, 5.0, -2.0, 1000.0, 2000.0, 1500.0, 10, 20, 30))
    d = sample_to_dict(s)
    assert d["protocol"] == {"name": "OpenTrackIO", "version": [1, 0, 1]}
    assert d["transforms"] == [
        {"translation": {"x": 1.0, "y": 2.0, "z": 1.5}, "rotation": {"pan": -30.0, "tilt": 5.0, "roll": -2.0}}
    ]
    assert d["lens"] == {"rawEncoders": {"focus": 20, "zoom": 10}}
    assert "spare" not in d  # FreeD's raw fields are not OpenTrackIO keys
    back = decode_packet(encode_sample(s)[0])
    assert back.pose == s.pose


def test_encoder_rejects_invalid_samples() -> None:
    bad = TrackingSample(protocol="OpenTrackIO", lens=LensState(f_stop=float("nan")))
    with pytest.raises(EncodeError, match="lens.fStop"):
        sample_to_dict(bad)
    bad = TrackingSample(protocol="OpenTrackIO", timing=Timing(sample_timestamp_ns=-1))
    with pytest.raises(EncodeError, match="negative"):
        sample_to_dict(bad)
    bad = TrackingSample(protocol="OpenTrackIO", raw={"lens": {}})
    with pytest.raises(EncodeError, match="overwrite"):
        sample_to_dict(bad)
    with pytest.raises(EncodeError):
        encode_payload({"x": object()}, ENCODING_JSON)
    with pytest.raises(EncodeError):
        encode_payload({}, 9)


def test_default_distortion_model_is_not_serialised() -> None:
    s = sample_from_dict(
        {"lens": {"distortion": [{"radial": [0.1]}, {"radial": [0.2], "model": "Brown-Conrady U-D"}]}}
    )
    assert [dd.model for dd in s.lens.distortion] == [DEFAULT_DISTORTION_MODEL, "Brown-Conrady U-D"]
    assert sample_to_dict(s)["lens"]["distortion"] == [
        {"radial": [0.1]},
        {"radial": [0.2], "model": "Brown-Conrady U-D"},
    ]


def test_moduli_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        Reassembler(moduli=(257,))
    with pytest.raises(ValueError):
        Reassembler(moduli=())
    with pytest.raises(ValueError):
        decode_datagram(encode_datagram(b"{}", encoding=1, sequence=0), moduli=(0,))


# --- fast paths against reference paths ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 95, 96, 97, 98, 200, 1484, 4096, MAX_SEGMENT_PAYLOAD])
def test_datagram_checksum_at_every_size(n: int) -> None:
    rng = np.random.default_rng(n)
    for fill in ("random", "ones"):
        payload = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if fill == "random" else b"\xff" * n
        for modulus in (255, 256):
            dg = encode_datagram(payload, encoding=ENCODING_CBOR, sequence=n & 0xFFFF, modulus=modulus)
            assert int.from_bytes(dg[14:16], "big") == reference_fletcher(dg[:14] + payload, modulus)
            want = tuple(
                m
                for m in (255, 256)
                if reference_fletcher(dg[:14] + payload, m) == int.from_bytes(dg[14:16], "big")
            )
            for data in (dg, bytearray(dg), memoryview(dg)):
                d = decode_datagram(data)
                assert d.payload == payload and d.checksum_moduli == want
            bad = bytearray(dg)
            bad[16 + n // 2] ^= 0x04  # one bit of the payload
            with pytest.raises(ChecksumError):
                decode_datagram(bytes(bad))
            bad = bytearray(dg)
            bad[7] ^= 0x01  # one bit of the header (sequence number)
            with pytest.raises(ChecksumError):
                decode_datagram(bytes(bad))


def _compose_numpy(transforms: list[dict]) -> tuple[float, ...] | None:
    """The numpy composition the codec used before its plain-math one (None: the translation is not finite)."""
    t = np.zeros(3)
    linear = np.eye(3)
    rot = np.eye(3)
    with np.errstate(all="ignore"):
        for tr in transforms:
            p = tr["rotation"]
            r = rotation_from_ptr_deg(p["pan"], p["tilt"], p["roll"])
            q = tr["translation"]
            t = t + linear @ np.array((q["x"], q["y"], q["z"]))
            rot = rot @ r
            scale = tr.get("scale")
            linear = linear @ r if scale is None else (linear @ r) * np.asarray([scale[k] for k in "xyz"])
    if not np.isfinite(t).all():
        return None
    return (float(t[0]), float(t[1]), float(t[2]), *ptr_deg_from_rotation(rot))


def _random_chain(rng: np.random.Generator) -> list[dict]:
    special = [0.0, -0.0, 90.0, -90.0, 180.0, -180.0, 45.0, 30.0, 270.0, 1e-9]

    def angle() -> float:
        return float(rng.choice(special)) if rng.random() < 0.4 else float(rng.uniform(-720.0, 720.0))

    out = []
    for _ in range(int(rng.integers(2, 5))):
        tr: dict = {
            "translation": dict(zip("xyz", (float(v) for v in rng.normal(0.0, 10.0, 3)))),
            "rotation": {"pan": angle(), "tilt": angle(), "roll": angle()},
        }
        u = rng.random()
        if u < 0.5:
            tr["scale"] = dict(zip("xyz", (float(v) for v in rng.uniform(-3.0, 3.0, 3))))
        elif u < 0.55:
            tr["scale"] = {"x": 0.0, "y": 1.0, "z": 2.0}
        elif u < 0.6:
            tr["scale"] = {"x": 1e200, "y": 1e200, "z": 1.0}  # overflows further down the chain
            tr["translation"]["x"] = 1e200
        out.append(tr)
    return out


def test_compose_matches_the_numpy_composition() -> None:
    rng = np.random.default_rng(4242)
    chains = [_random_chain(rng) for _ in range(3000)]
    chains += [
        example_dict(v, n)["transforms"] for v, n in EXAMPLES if len(example_dict(v, n)["transforms"]) > 1
    ]
    for chain in chains:
        want = _compose_numpy(chain)
        if want is None:
            with pytest.raises(FieldError, match="not finite"):
                sample_from_dict({"transforms": chain})
            continue
        pose = sample_from_dict({"transforms": chain}).pose
        got = (pose.x, pose.y, pose.z, pose.pan, pose.tilt, pose.roll)
        scale = max(1.0, *(abs(v) for v in want[:3]))
        assert np.allclose(got[:3], want[:3], rtol=0.0, atol=1e-12 * scale), chain
        assert np.allclose(pose.matrix()[:3, :3], rotation_from_ptr_deg(*want[3:]), rtol=0.0, atol=1e-12), (
            chain
        )
        d = np.abs(np.array(got[3:]) - np.array(want[3:]))
        assert np.all(np.minimum(d, np.abs(d - 360.0)) < 1e-9), chain  # +-180 may come out either way


def test_math_rotation_helpers_match_numpy() -> None:
    rng = np.random.default_rng(77)
    special = [0.0, -0.0, 90.0, -90.0, 180.0, -180.0, 360.0, 45.0]
    for _ in range(5000):
        ptr = [
            float(rng.choice(special)) if rng.random() < 0.3 else float(rng.uniform(-400, 400)) for _ in "abc"
        ]
        R = rotation_from_ptr_deg(*ptr)
        rows = rotation_rows_from_ptr_deg(*ptr)
        assert np.allclose(np.array(rows), R, rtol=0.0, atol=1e-15)
        assert all(type(v) is float for row in rows for v in row)
        want = ptr_deg_from_rotation(R)
        got = ptr_deg_from_rows(tuple(tuple(row) for row in R.tolist()))
        d = np.abs(np.array(got) - np.array(want))
        assert np.all(np.minimum(d, np.abs(d - 360.0)) < 1e-12), ptr
    A, B = rng.normal(size=(2, 3, 3))
    AB = matmul3(tuple(map(tuple, A.tolist())), tuple(map(tuple, B.tolist())))
    assert np.allclose(np.array(AB), A @ B, rtol=0.0, atol=1e-15)
    # zeros come out +0.0, as from numpy's products (atan2 sees the sign of a zero)
    assert math.copysign(1.0, rotation_rows_from_ptr_deg(0.0, 0.0, 0.0)[0][1]) == 1.0
    assert math.copysign(1.0, rotation_from_ptr_deg(0.0, 0.0, 0.0)[0, 1]) == 1.0


class _Float(float):
    """A float that is not exactly ``float``: the decoder's general number path converts it."""


def _as_generic(v, int_paths: frozenset = frozenset(), path: tuple = ()):
    """``v`` with every object a read-only Mapping that is not a dict, every array a tuple and every float a
    float subclass, except in ``int_paths`` (integer fields take integral floats, but exact floats only): the
    decoder takes its general (non-fast) path for all of them."""
    if isinstance(v, dict):
        return MappingProxyType({k: _as_generic(x, int_paths, (*path, k)) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_as_generic(x, int_paths, (*path, i)) for i, x in enumerate(v))
    if type(v) is float and path not in int_paths:
        return _Float(v)
    return v


def _get(obj, path: tuple):
    for key in path:
        obj = obj[key]
    return obj


def _outcome(d) -> tuple:
    try:
        s = sample_from_dict(d)
    except DecodeError as exc:  # the message names the container type: the generic ones say so
        return type(exc).__name__, str(exc).replace("mappingproxy of", "dict of").replace(
            "tuple of", "list of"
        )
    return dataclasses.replace(s, raw={}), repr(dataclasses.replace(s, raw={})), sorted(s.raw)


def _leaf_paths(obj, path=()) -> list[tuple]:
    if isinstance(obj, dict):
        out = [path] if path else []
        for k, v in obj.items():
            out += _leaf_paths(v, (*path, k))
        return out
    if isinstance(obj, list):
        out = [path]
        for i, v in enumerate(obj):
            out += _leaf_paths(v, (*path, i))
        return out
    return [path]


NASTY = [
    0,
    1,
    -1,
    7,
    0.0,
    -0.0,
    0.5,
    1.0,
    1.5,
    -2.5,
    1e308,
    2**32,
    2**63,
    float("inf"),
    float("nan"),
    True,
    False,
    None,
    "x",
    "",
    [],
    [1.0],
    {},
    {"x": 1.0},
    KeyError,
]


@pytest.mark.parametrize(
    "name", ["complete_static_example", "complete_dynamic_example", "recommended_dynamic_example"]
)
def test_fast_paths_agree_with_the_reference_paths(name: str) -> None:
    """Every field of an official example replaced by each nasty value: the fast paths (plain dicts, lists,
    floats, ints) give the same sample or the same first error as the general paths (other Mappings, tuples)."""
    base = example_dict("v1.0.1", name)
    int_paths = frozenset(p for p in _leaf_paths(base) if type(_get(base, p)) is int)
    assert _outcome(base) == _outcome(_as_generic(base, int_paths))
    n = 0
    for path in _leaf_paths(base):
        for value in NASTY:
            d = _mutated(path, value, name)
            fast, generic = _outcome(d), _outcome(_as_generic(d, int_paths))
            assert fast[:2] == generic[:2] and fast[-1] == generic[-1], (path, value, fast, generic)
            n += 1
    assert n > 1000


@pytest.mark.parametrize(
    ("path", "lo", "hi"),
    [
        (["sourceNumber"], 0, 2**32 - 1),
        (["protocol", "version", 1], 0, 9),
        (["lens", "rawEncoders", "focus"], 0, 2**32 - 1),
        (["lens", "rawEncoders", "zoom"], 0, 2**32 - 1),
        (["timing", "sequenceNumber"], 0, 2**32 - 1),
        (["timing", "sampleTimestamp", "seconds"], 0, 2**48 - 1),
        (["timing", "sampleTimestamp", "nanoseconds"], 0, 2**32 - 1),
        (["timing", "recordedTimestamp", "nanoseconds"], 0, 2**32 - 1),
        (["timing", "sampleRate", "num"], 1, 2**31 - 1),
        (["timing", "sampleRate", "denom"], 1, 2**32 - 1),
        (["timing", "timecode", "hours"], 0, 23),
        (["timing", "timecode", "minutes"], 0, 59),
        (["timing", "timecode", "seconds"], 0, 59),
        (["timing", "timecode", "frames"], 0, 119),
        (["timing", "timecode", "subFrame"], 0, 2**32 - 1),
        (["timing", "timecode", "frameRate", "num"], 1, 2**31 - 1),
        (["timing", "timecode", "frameRate", "denom"], 1, 2**32 - 1),
    ],
)
def test_integer_fields_at_their_bounds(path: list, lo: int, hi: int) -> None:
    """The integer fast paths accept exactly the schema's range (the float ones are checked against the
    general path above)."""
    dotted = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)[1:]  # the codec's spelling
    for value, ok in ((lo - 1, False), (lo, True), (hi, True), (hi + 1, False)):
        d = _mutated(path, value)
        if ok:
            s = sample_from_dict(d)
            assert s == sample_from_dict(_as_generic(d))
        else:
            with pytest.raises(FieldError, match=f"^{re.escape(dotted)}: "):
                sample_from_dict(d)


def test_camera_sample_is_the_pose_as_the_one_transform_camera_at_protocol_1_0_1():
    pose = Pose(1.0, 2.0, 1.5, 30.0, -5.0, 2.0)
    d = sample_to_dict(camera_sample(pose, timing=Timing(sequence_number=7)))
    assert d["protocol"] == {"name": "OpenTrackIO", "version": [1, 0, 1]}
    assert d["transforms"] == [
        {"translation": {"x": 1.0, "y": 2.0, "z": 1.5}, "rotation": {"pan": 30.0, "tilt": -5.0, "roll": 2.0},
         "id": "Camera"}
    ]
    back = sample_from_dict(d)
    assert (back.pose, back.pose_frame, back.timing.sequence_number) == (pose, FRAME_CAMERA, 7)
