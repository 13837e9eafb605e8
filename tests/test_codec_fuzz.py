"""Fuzzing the tracking decoders: every input either decodes or raises DecodeError -- nothing else escapes.

At least 100,000 random and mutated inputs per decoder (FreeD D1, OpenTrackIO JSON, OpenTrackIO CBOR),
generated with seeded numpy Generators so a failure reproduces. Mutations keep checksums valid where the point
is to reach the payload parser and the field validation (structural edits of the official examples, byte
edits, nasty values: NaN / Infinity, huge numbers and lengths, bad UTF-8, deep nesting, wrong types), and
break them elsewhere (headers, lengths, checksums). Decoded samples must re-encode to the same sample.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import numpy as np
import pytest

from stagectl.tracking.codecs.freed import decode_freed, encode_freed
from stagectl.tracking.codecs.opentrackio import (
    ENCODING_CBOR,
    ENCODING_JSON,
    Reassembler,
    decode_packet,
    decode_sample,
    encode_datagram,
    sample_from_dict,
    sample_to_dict,
)
from stagectl.tracking.errors import DecodeError

N_PER_DECODER = 100_000
TESTDATA = Path(__file__).resolve().parent / "data" / "opentrackio"


def _run(
    decode: Callable[[bytes], Any], inputs: list[bytes], check: Callable[[bytes, Any], None] | None = None
) -> tuple[int, dict[str, int]]:
    """Decode every input; return (number decoded, DecodeError subclass counts); anything else fails."""
    ok = 0
    errors: dict[str, int] = {}
    for data in inputs:
        try:
            value = decode(data)
        except DecodeError as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{type(exc).__name__} escaped the decoder: {exc!r}; input {data[:200]!r}")
        ok += 1
        if check is not None:
            check(data, value)
    return ok, errors


# --- FreeD --------------------------------------------------------------------------------------------------


def _freed_inputs(rng: np.random.Generator, n: int) -> list[bytes]:
    rows = rng.integers(0, 256, size=(n, 29), dtype=np.uint8)
    kind = rng.integers(0, 5, size=n)
    rows[kind <= 2, 0] = 0xD1
    rows[:, 28] = (0x40 - rows[:, :28].astype(np.int64).sum(axis=1)) % 256  # valid checksums ...
    flips = rng.integers(0, 29, size=(n, 3))
    values = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    lengths = rng.integers(0, 64, size=n)
    out: list[bytes] = []
    for i in range(n):
        k = kind[i]
        if k == 1:  # ... then 1-3 bytes overwritten (checksum usually wrong, type sometimes)
            row = rows[i].copy()
            row[flips[i, : 1 + i % 3]] = values[i, : 1 + i % 3]
            out.append(row.tobytes())
        elif k == 2:  # off-by-one checksum
            row = rows[i].copy()
            row[28] = (int(row[28]) + 1 + i % 255) % 256
            out.append(row.tobytes())
        elif k == 3:  # random length, D1 or not
            data = rows[i].tobytes() * 3
            out.append(data[: lengths[i]])
        else:  # k == 0: valid D1 with random content; k == 4: other message types, valid checksum
            out.append(rows[i].tobytes())
    return out


def test_fuzz_freed() -> None:
    rng = np.random.default_rng(0xF4EED)
    inputs = _freed_inputs(rng, N_PER_DECODER)
    assert len(inputs) >= N_PER_DECODER

    def exact_inverse(data: bytes, packet: Any) -> None:
        assert encode_freed(packet) == data

    ok, errors = _run(decode_freed, inputs, exact_inverse)
    assert ok > 0.15 * N_PER_DECODER
    assert {"ChecksumError", "TruncatedError", "DecodeError"} <= set(errors)


# --- OpenTrackIO --------------------------------------------------------------------------------------------

NASTY: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    -1e308,
    5e-324,
    -0.0,
    0,
    -1,
    1,
    2**31,
    2**32,
    2**48,
    2**63,
    2**64,
    -(2**63),
    10**400,
    1.5,
    0.5,
    "",
    "x",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "OpenTrackIO",
    "é" * 300,
    None,
    True,
    False,
    [],
    {},
    [1.0, 2.0],
    [[[]]],
    {"num": 0, "denom": 0},
    {"x": 1},
    list(range(50)),
    {"seconds": 1, "nanoseconds": 2},
    [1, 0, 1],
    "\ud800",
]
CBOR_ONLY: list[Any] = [
    b"bytes",
    cbor2.CBORTag(1, 0),
    cbor2.undefined,
    cbor2.CBORSimpleValue(0),
    {1: 2},
    {(1, 2): 3},
]


def _examples() -> list[dict]:
    return [json.loads(p.read_bytes()) for p in sorted(TESTDATA.glob("*/examples/*.json"))]


def _slots(obj: Any, path: tuple = ()) -> list[tuple]:
    """Every (container path, key/index) in ``obj``."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        out.append((path, key))
        out.extend(_slots(value, path + (key,)))
    return out


def _specials(encoding: int) -> list[bytes]:
    if encoding == ENCODING_JSON:
        return [
            b"[" * 50_000,
            b'{"lens":' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"custom":' + b"[" * 900 + b"]" * 900 + b"}",
            b'{"transforms":' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}",
            b'{"lens":{"fStop":NaN}}',
            b'{"lens":{"fStop":-Infinity}}',
            b'{"lens":{"fStop":1e400}}',
            b'{"tracker":{"notes":"\xc3\x28"}}',
            b'{"tracker":{"notes":"\xed\xa0\x80"}}',
            b"\xff\xfe{\x00}\x00",
            b'{"sourceNumber":' + b"7" * 5000 + b"}",
            b'{"timing":{"sequenceNumber":' + b"9" * 300 + b"}}",
            b"{}",
            b"[]",
            b"null",
            b"1",
            b'"x"',
            b"\x00",
            b"{" + b'"a":1,' * 2000 + b'"b":2}',
            b'{"protocol":{"name":"OpenTrackIO","version":[1,0,1]},"transforms":[]}',
            (
                b'{"transforms":[{"translation":{"x":1e308,"y":1e308},"rotation":{}},'
                b'{"translation":{"x":1e308},"rotation":{},"scale":{"x":1e308,"y":1e308,"z":1e308}},'
                b'{"translation":{"x":1e308},"rotation":{}}]}'
            ),
        ]
    return [
        b"\x81" * 50_000 + b"\x00",
        b"\xa1\x64lens" + b"\x81" * 399 + b"\x00",
        b"\x5b" + (2**63).to_bytes(8, "big"),
        b"\x9b" + (2**63).to_bytes(8, "big") + b"\x00",
        b"\xbb" + (2**63).to_bytes(8, "big"),
        b"\x7b" + (2**40).to_bytes(8, "big") + b"abc",
        b"\xa1\x66sample\x62\xc3\x28",  # invalid UTF-8 in a text string
        b"\xc2\x5a\x00\x10\x00\x00" + b"\xff" * 16,  # truncated bignum
        b"\xd9\xd9\xf7\xa0",  # self-describe tag around {}
        b"\xa0\x00",  # trailing byte
        b"\xf9\x7e\x00",
        b"\xa1\x63lens\xa1\x64fStop\xf9\x7c\x00",  # NaN, fStop = +inf half float
        b"\xa1\x63lens\xd8\x1e\x82\x01\x02",  # lens = Fraction(1, 2)
        b"\xa1\x63lens\xc1\x1b\x7f\xff\xff\xff\xff\xff\xff\xff",  # lens = epoch datetime out of range
        b"\xa1\x63lens\xd8\x19\x00",  # string reference outside namespace
        b"\xa1\x63lens\xd8\x1c\x80",  # shareable
        b"\xbf\x63lens\xa0",  # indefinite map, no break
        b"\xff",
        b"\x1f",
        b"",
    ]


def _otrk_inputs(rng: np.random.Generator, n: int, encoding: int) -> list[bytes]:
    bases = _examples()
    small = {
        "transforms": [
            {
                "translation": {"x": 0.0, "y": 0.0, "z": 0.0},
                "rotation": {"pan": 0.0, "tilt": 0.0, "roll": 0.0},
            }
        ]
    }
    bases.append(small)
    dumps: Callable[[Any], bytes]
    if encoding == ENCODING_JSON:

        def dumps(o: Any) -> bytes:
            return json.dumps(o, separators=(",", ":")).encode("utf-8", "surrogatepass")

        def loads(b: bytes) -> Any:
            return json.loads(b)

        nasty = NASTY
    else:
        dumps, loads = cbor2.dumps, cbor2.loads
        nasty = NASTY[:-1] + CBOR_ONLY
    encoded = [dumps(b) for b in bases]
    slots = [_slots(b) for b in bases]
    specials = _specials(encoding)
    # weights: structural 50 %, byte edits 25 %, header edits 15 %, special payloads 10 %
    strategy = rng.choice(4, size=n, p=[0.5, 0.25, 0.15, 0.1]).tolist()
    weights = [0.6 / (len(bases) - 1)] * (len(bases) - 1) + [0.4]  # the small sample is the last base
    base_of = rng.choice(len(bases), size=n, p=weights).tolist()
    r = rng.integers(0, 2**31, size=(n, 6)).tolist()
    moduli = rng.choice([255, 256], size=n).tolist()
    out: list[bytes] = []
    for i in range(n):
        s, b, ri, m = strategy[i], base_of[i], r[i], moduli[i]
        if s == 0:
            obj = loads(encoded[b])
            container_path, key = slots[b][ri[0] % len(slots[b])]
            container = obj
            for k in container_path:
                container = container[k]
            op = ri[1] % 5
            value = nasty[ri[2] % len(nasty)]
            if op == 0:
                container[key] = value
            elif op == 1:
                del container[key]
            elif op == 2:
                container[key] = [container[key]] if ri[3] % 2 else {"v": container[key]}
            elif op == 3 and isinstance(container, dict):
                container[f"zz{ri[3] % 3}"] = value
            else:
                container[key] = loads(encoded[ri[3] % len(bases)])  # a whole sample in the wrong place
            try:
                payload = dumps(obj)
            except (ValueError, TypeError, cbor2.CBOREncodeError):
                payload = encoded[b]
        elif s == 1:
            buf = bytearray(encoded[b])
            for j in range(1 + ri[0] % 4):
                pos = int(ri[1 + j] % max(1, len(buf)))
                op = (ri[5] >> (2 * j)) % 4
                if op == 0 and buf:
                    buf[pos] = ri[2 + j] % 256 if j < 4 else 0
                elif op == 1:
                    buf.insert(pos, ri[j] % 256)
                elif op == 2 and buf:
                    del buf[pos]
                else:
                    del buf[pos:]
            payload = bytes(buf) or b"\x00"
        elif s == 3:
            payload = specials[ri[0] % len(specials)]
        else:
            payload = encoded[b]
        payload = (
            payload[:32767] or b"\x00"
        )  # the length field has 15 bits; empty payloads: test_codec_opentrackio
        datagram = encode_datagram(payload, encoding=encoding, sequence=i % 65536, modulus=m)
        if s == 2:
            dg = bytearray(datagram)
            op = ri[0] % 6
            if op == 0:  # overwrite a header byte, keep the old checksum
                dg[ri[1] % 16] = ri[2] % 256
            elif op == 1:  # overwrite a header byte and fix the checksum (reaches the later checks)
                dg[ri[1] % 14] = ri[2] % 256
                body = bytes(dg[:14]) + bytes(dg[16:])
                s1, s2 = sum(body), int(np.cumsum(np.frombuffer(body, np.uint8), dtype=np.int64).sum())
                dg[14:16] = (((s2 % m) << 8) | (s1 % m)).to_bytes(2, "big")
            elif op == 2:  # truncate
                del dg[ri[1] % len(dg) :]
            elif op == 3:  # extend
                dg += bytes(ri[1] % 40 + 1)
            elif op == 4:  # huge length / offset fields
                dg[8:14] = (ri[1] | 0x80000000).to_bytes(4, "big") + (0xFFFF).to_bytes(2, "big")
            else:  # flip one payload bit, checksum unchanged
                dg[16 + ri[1] % (len(dg) - 16)] ^= 1 << (ri[2] % 8)
            datagram = bytes(dg)
        out.append(datagram)
    return out


def _strip_raw(sample: Any) -> Any:
    return dataclasses.replace(sample, raw={})


def _roundtrip_check(every: int) -> Callable[[bytes, Any], None]:
    counter = [0]

    def check(_data: bytes, sample: Any) -> None:
        counter[0] += 1
        if counter[0] % every == 0:
            again = sample_from_dict(sample_to_dict(sample))
            if sample.protocol_version is None:  # the encoder always writes a protocol block
                assert again.protocol_version == (1, 0, 1)
                again = dataclasses.replace(again, protocol_version=None)
            assert _strip_raw(again) == _strip_raw(sample)

    return check


@pytest.mark.parametrize("encoding", [ENCODING_JSON, ENCODING_CBOR], ids=["json", "cbor"])
def test_fuzz_opentrackio(encoding: int) -> None:
    rng = np.random.default_rng(0x07A1C + encoding)
    inputs = _otrk_inputs(rng, N_PER_DECODER, encoding)
    assert len(inputs) >= N_PER_DECODER
    ok, errors = _run(decode_packet, inputs, _roundtrip_check(every=7))
    assert ok > 0.15 * N_PER_DECODER, (
        ok,
        errors,
    )  # the parser and validators were reached, not just the checksum
    assert errors.get("FieldError", 0) > 0.05 * N_PER_DECODER, errors
    assert {"ChecksumError", "TruncatedError", "DecodeError", "FieldError"} <= set(errors), errors


def test_fuzz_reassembler() -> None:
    """Random segments (valid checksums, random offsets / flags / sequences) into one Reassembler."""
    rng = np.random.default_rng(0x5E6)
    r = Reassembler(max_payload_bytes=1 << 16)
    n = 20_000
    seqs = rng.integers(0, 4, size=n)
    offsets = rng.integers(0, 1 << 17, size=n)
    offsets[rng.random(n) < 0.7] %= 2048
    lengths = rng.integers(1, 600, size=n)
    last = rng.random(n) < 0.3
    encodings = rng.choice([ENCODING_JSON, ENCODING_CBOR], size=n, p=[0.9, 0.1])
    blob = rng.integers(0, 256, size=1 << 12, dtype=np.uint8).tobytes()
    completed = 0
    for i in range(n):
        start = int(offsets[i]) % len(blob)
        seg = (blob[start:] + blob)[: int(lengths[i])]
        dg = encode_datagram(
            seg,
            encoding=int(encodings[i]),
            sequence=int(seqs[i]),
            segment_offset=int(offsets[i]),
            last_segment=bool(last[i]),
        )
        try:
            payload = r.push(dg)
        except DecodeError:
            continue
        if payload is not None:
            completed += 1
            try:
                decode_sample(payload.data, payload.encoding)
            except DecodeError:
                pass
        assert r.pending_bytes <= 1 << 16
    assert completed > 0
