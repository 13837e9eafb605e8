"""OpenTrackIO codec: ``OTrk`` datagrams, segmentation, JSON / CBOR payloads and samples.

Pure functions plus one stateful-by-instance :class:`Reassembler`; no sockets, no clocks. References:
``shared/reference/PROTOCOLS.md`` section 2 and the official examples / schemas in
``shared/testdata/opentrackio/`` (1.0.0, 1.0.1, classic 0.9.3).

Transport (big-endian), 16-byte header then payload:

====== ===== =============================================================================
bytes  size  field
====== ===== =============================================================================
0-3    4     identifier ``b"OTrk"``
4      1     reserved (ignored)
5      1     encoding: ``0x01`` JSON, ``0x02`` CBOR, ``>= 0x80`` vendor (not decodable here)
6-7    2     sequence number (uint16; every segment of one payload carries the same one)
8-11   4     segment offset: byte offset of this segment in the whole payload
12-13  2     bit 15: last (or only) segment; bits 0-14: payload length of *this* datagram
14-15  2     Fletcher-16 over bytes 0-13 and the payload (``sum2 << 8 | sum1``)
====== ===== =============================================================================

Fletcher-16 reduces its two running sums **mod 255** in 1.0.0 and **mod 256** in 1.0.1; the decoder accepts
either (``moduli``) and reports which matched. Encoders default to mod 256.

Samples: :func:`sample_from_dict` turns a decoded payload into a
:class:`~stagectl.tracking.sample.TrackingSample` with cheap per-field validation (types, finiteness, the
schema's ranges, required keys, ``"OpenTrackIO"`` as the protocol name, ``urn:uuid:`` identifiers) -- no
JSON-schema run per packet. The ``transforms`` list is composed in list order into one pose
``T_tracking_camera`` (stage conventions, OpenTrackIO's pan sign is stagectl's). With a ``scale``, composition
follows scene-graph (Unreal ``FTransform``) rules: a transform's scale scales the translations of the
transforms after it, ``t = t0 + R0 S0 t1 + R0 S0 R1 S1 t2 + ...``, while the orientation is the product of the
rotations alone, ``R = R0 R1 R2 ...`` (scale never tilts or shears the camera). With one transform, its pan /
tilt / roll are passed through unchanged.

Lens values keep OpenTrackIO's units (focal length mm, focus distance m, pupil offset m, offsets mm).
``distortionOffset`` / ``projectionOffset`` are passed through as sent: the specification does not state the
direction of y (Unreal's converter adds ``y / sensor height`` to a y-down normalised principal point), so the
conversion to ``docs/conventions.md``'s principal point (+y up) belongs to the lens code, not to this codec.

Unknown top-level keys (e.g. the examples' ``custom``) are kept in ``TrackingSample.raw`` and re-emitted;
unknown nested keys are ignored. Defaults are not serialised (``subFrame`` 0, ``dropFrame`` false, the default
distortion model ``"Brown-Conrady D-U"``).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final, NoReturn

import cbor2
import numpy as np

from stagectl.tracking.errors import (
    ChecksumError,
    DecodeError,
    EncodeError,
    FieldError,
    SegmentError,
    TruncatedError,
)
from stagectl.tracking.sample import (
    DEFAULT_DISTORTION_MODEL,
    FRAME_CAMERA,
    PROTOCOL_OPENTRACKIO,
    Distortion,
    ExposureFalloff,
    GlobalStage,
    LensEncoders,
    LensState,
    Pose,
    PtpSync,
    RawEncoders,
    SensorDimensions,
    SensorResolution,
    StaticCamera,
    StaticInfo,
    StaticLens,
    StaticTracker,
    Synchronization,
    SyncOffsets,
    Timecode,
    Timing,
    TrackerStatus,
    TrackingSample,
    Transform,
)
from stagectl.transforms import ptr_deg_from_rotation, rotation_from_ptr_deg

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_SEGMENT_PAYLOAD",
    "DEFAULT_PORT",
    "DEFAULT_PROTOCOL_VERSION",
    "ENCODING_CBOR",
    "ENCODING_JSON",
    "HEADER_LENGTH",
    "MAX_SEGMENT_PAYLOAD",
    "OTRK_IDENTIFIER",
    "CompletePayload",
    "OTrkDatagram",
    "OTrkHeader",
    "Reassembler",
    "decode_datagram",
    "decode_packet",
    "decode_sample",
    "encode_datagram",
    "encode_payload",
    "encode_sample",
    "fletcher16",
    "parse_payload",
    "sample_from_dict",
    "sample_to_dict",
    "segment_payload",
]

OTRK_IDENTIFIER: Final = b"OTrk"
HEADER_LENGTH: Final = 16
ENCODING_JSON: Final = 0x01
ENCODING_CBOR: Final = 0x02
DEFAULT_PORT: Final = 55555
DEFAULT_MAX_SEGMENT_PAYLOAD: Final = 1484  # MTU 1500 - 16-byte header, as camdkit
MAX_SEGMENT_PAYLOAD: Final = 0x7FFF  # 15-bit length field
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1 << 20
DEFAULT_PROTOCOL_VERSION: Final = (1, 0, 1)
_LAST_SEGMENT: Final = 0x8000
_HEADER: Final = struct.Struct(">4sBBHIHH")
_SMALL: Final = 96  # below this many bytes the pure-Python Fletcher sums beat numpy

_UUID_RE: Final = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_U32: Final = 0xFFFFFFFF
_I31: Final = 0x7FFFFFFF
_U48: Final = (1 << 48) - 1
_NS: Final = 1_000_000_000
_TIMING_MODES: Final = frozenset({"internal", "external"})
_SYNC_SOURCES: Final = frozenset({"genlock", "videoIn", "ptp", "ntp"})
_KNOWN_TOP: Final = frozenset(
    {
        "static",
        "tracker",
        "timing",
        "lens",
        "protocol",
        "sampleId",
        "sourceId",
        "sourceNumber",
        "relatedSampleIds",
        "globalStage",
        "transforms",
    }
)
_MISSING: Final = object()


# ------------------------------------------------------------------------------------------------------------
# Fletcher-16
# ------------------------------------------------------------------------------------------------------------


def _sums(data: bytes | memoryview) -> tuple[int, int]:
    """Unreduced Fletcher sums: ``s1 = sum(b_i)``, ``s2 = sum over k of (b_0 + ... + b_k)``."""
    if len(data) < _SMALL:
        return sum(data), sum(accumulate(data))
    c = np.cumsum(np.frombuffer(data, dtype=np.uint8), dtype=np.int64)
    return int(c[-1]), int(c.sum())


def _combine(a: tuple[int, int], b: tuple[int, int], len_b: int) -> tuple[int, int]:
    """Sums of ``A + B`` from the sums of ``A`` and ``B``: every prefix of B also contains all of A."""
    return a[0] + b[0], a[1] + len_b * a[0] + b[1]


def fletcher16(data: bytes | bytearray | memoryview, modulus: int = 256) -> int:
    """Fletcher-16 of ``data``: ``(sum2 << 8) | sum1`` with both sums reduced mod ``modulus``.

    ``modulus`` is 256 (OpenTrackIO 1.0.1) or 255 (1.0.0, the classic Fletcher). Reducing at the end equals
    reducing at every step, so one pass over the bytes serves both.
    """
    if modulus not in (255, 256):
        raise ValueError(f"Fletcher-16 modulus must be 255 or 256, got {modulus!r}")
    s1, s2 = _sums(memoryview(data).cast("B") if not isinstance(data, bytes) else data)
    return ((s2 % modulus) << 8) | (s1 % modulus)


# ------------------------------------------------------------------------------------------------------------
# Datagrams
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OTrkHeader:
    """The 16-byte ``OTrk`` header. ``payload_length`` is this datagram's payload size in bytes."""

    encoding: int
    sequence: int
    segment_offset: int
    last_segment: bool
    payload_length: int
    checksum: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class OTrkDatagram:
    """A checked datagram: header, payload bytes, and the Fletcher moduli (255 / 256) whose sums matched."""

    header: OTrkHeader
    payload: bytes
    checksum_moduli: tuple[int, ...]

    @property
    def is_single(self) -> bool:
        """True when the datagram carries a whole payload (offset 0 and the last-segment flag)."""
        return self.header.segment_offset == 0 and self.header.last_segment


@dataclass(frozen=True, slots=True)
class CompletePayload:
    """A whole payload (one datagram or reassembled segments).

    ``checksum_moduli``: the Fletcher moduli that matched on every segment (may be empty if segments
    disagreed).
    """

    encoding: int
    sequence: int
    data: bytes
    checksum_moduli: tuple[int, ...]


def decode_datagram(
    data: bytes | bytearray | memoryview, *, moduli: Iterable[int] = (255, 256)
) -> OTrkDatagram:
    """Parse and check one UDP datagram: identifier, encoding, length and Fletcher-16 under any of ``moduli``.

    Raises :class:`TruncatedError` (shorter than its header says, or longer), :class:`ChecksumError` (no
    modulus matches) or :class:`DecodeError` (bad identifier, reserved encoding value, empty payload).
    """
    n = len(data)
    if n < HEADER_LENGTH:
        raise TruncatedError(f"OTrk: expected at least {HEADER_LENGTH} header bytes, got {n}")
    ident, reserved, encoding, sequence, offset, flag_len, checksum = _HEADER.unpack_from(data, 0)
    if ident != OTRK_IDENTIFIER:
        raise DecodeError(f"OTrk: expected identifier b'OTrk', got {bytes(ident)!r}")
    if encoding not in (ENCODING_JSON, ENCODING_CBOR) and encoding < 0x80:
        raise DecodeError(
            f"OTrk: expected encoding 0x01 (JSON), 0x02 (CBOR) or >= 0x80, got 0x{encoding:02X}"
        )
    length = flag_len & 0x7FFF
    if length != n - HEADER_LENGTH:
        raise TruncatedError(
            f"OTrk: header announces a {length}-byte payload, datagram carries {n - HEADER_LENGTH} bytes"
        )
    if length == 0:
        raise DecodeError("OTrk: empty payload")
    view = data if isinstance(data, bytes) else memoryview(data).cast("B")
    payload = bytes(view[HEADER_LENGTH:])
    s = _combine(_sums(view[:14]), _sums(payload), length)
    matched = []
    computed = []
    for m in moduli:
        if m != 256 and m != 255:
            raise ValueError(f"Fletcher-16 modulus must be 255 or 256, got {m!r}")
        value = ((s[1] % m) << 8) | (s[0] % m)
        computed.append(value)
        if value == checksum:
            matched.append(m)
    if not matched:
        shown = ", ".join(f"0x{v:04X} (mod {m})" for v, m in zip(computed, moduli))
        raise ChecksumError(
            f"OTrk: Fletcher-16 mismatch: expected {shown}, got 0x{checksum:04X}",
            expected=tuple(computed),
            got=checksum,
        )
    header = OTrkHeader(
        encoding, sequence, offset, bool(flag_len & _LAST_SEGMENT), length, checksum, reserved
    )
    return OTrkDatagram(header, payload, tuple(sorted(matched)))


def encode_datagram(
    segment: bytes,
    *,
    encoding: int,
    sequence: int,
    segment_offset: int = 0,
    last_segment: bool = True,
    modulus: int = 256,
) -> bytes:
    """One datagram: header (Fletcher-16 mod ``modulus``) + ``segment`` (1..32767 bytes).

    Raises :class:`EncodeError` for out-of-range header values.
    """
    if not 1 <= len(segment) <= MAX_SEGMENT_PAYLOAD:
        raise EncodeError(f"OTrk: a segment holds 1..{MAX_SEGMENT_PAYLOAD} bytes, got {len(segment)}")
    if not 0 <= encoding <= 0xFF or not 0 <= sequence <= 0xFFFF or not 0 <= segment_offset <= _U32:
        raise EncodeError(
            f"OTrk: encoding 0..255, sequence 0..65535 and offset 0..2**32-1 expected, got {encoding}, "
            f"{sequence}, {segment_offset}"
        )
    if modulus not in (255, 256):
        raise EncodeError(f"OTrk: Fletcher-16 modulus must be 255 or 256, got {modulus!r}")
    flag_len = len(segment) | (_LAST_SEGMENT if last_segment else 0)
    head = _HEADER.pack(OTRK_IDENTIFIER, 0, encoding, sequence, segment_offset, flag_len, 0)
    s1, s2 = _combine(_sums(head[:14]), _sums(segment), len(segment))
    checksum = ((s2 % modulus) << 8) | (s1 % modulus)
    return head[:14] + checksum.to_bytes(2, "big") + bytes(segment)


def segment_payload(
    payload: bytes,
    *,
    encoding: int,
    sequence: int,
    max_segment_payload: int = DEFAULT_MAX_SEGMENT_PAYLOAD,
    modulus: int = 256,
) -> list[bytes]:
    """Split ``payload`` into datagrams of at most ``max_segment_payload`` payload bytes each.

    Every segment carries the **same** ``sequence`` (as Unreal's receiver requires), its byte offset, and the
    last one the last-segment flag. A payload that fits gives one datagram with offset 0.
    """
    if not 1 <= max_segment_payload <= MAX_SEGMENT_PAYLOAD:
        raise EncodeError(
            f"OTrk: max_segment_payload must be 1..{MAX_SEGMENT_PAYLOAD}, got {max_segment_payload}"
        )
    if not payload:
        raise EncodeError("OTrk: cannot send an empty payload")
    if len(payload) > _U32:
        raise EncodeError(f"OTrk: payload of {len(payload)} bytes exceeds the 32-bit segment offset")
    out = []
    n = len(payload)
    for start in range(0, n, max_segment_payload):
        end = min(start + max_segment_payload, n)
        out.append(
            encode_datagram(
                payload[start:end],
                encoding=encoding,
                sequence=sequence,
                segment_offset=start,
                last_segment=end == n,
                modulus=modulus,
            )
        )
    return out


class Reassembler:
    """Rebuilds payloads from the datagrams of **one** source (one instance per source; no shared state).

    :meth:`push` takes a datagram (bytes or an :class:`OTrkDatagram`) and returns a :class:`CompletePayload`
    when one is complete, else ``None``. Rules:

    * one payload is assembled at a time; a segment with a different sequence number starts a new one and the
      incomplete one is dropped (``dropped_incomplete`` counts them) -- a payload with a lost segment is never
      delivered;
    * segments may arrive in any order; exact duplicates are ignored (``duplicates``), including late repeats
      of any datagram of the payload delivered last (same sequence, offset and bytes) -- so a
      network-duplicated sample is delivered once, while a sender that never changes its sequence number still
      gets through;
    * memory is bounded by ``max_payload_bytes`` (a segment reaching past it, or more stored bytes than that,
      raises :class:`SegmentError`); at most the partial payload and the last delivered one are held.

    Malformed datagrams raise :class:`DecodeError` (subclasses); contradictory segments (different bytes at
    the same offset, two different ends, mixed encodings, overlaps) drop the partial payload and raise
    :class:`SegmentError`.
    """

    def __init__(
        self, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, moduli: Iterable[int] = (255, 256)
    ) -> None:
        if max_payload_bytes < 1:
            raise ValueError(f"max_payload_bytes must be >= 1, got {max_payload_bytes}")
        self.max_payload_bytes = max_payload_bytes
        self.moduli = tuple(moduli)
        if not self.moduli or not set(self.moduli) <= {255, 256}:
            raise ValueError(f"moduli must be a non-empty choice of 255 and 256, got {self.moduli}")
        self.completed = 0
        self.dropped_incomplete = 0
        self.duplicates = 0
        self._last_sequence: int | None = None
        self._last_segments: dict[int, bytes] = {}
        self._clear()

    def _clear(self) -> None:
        self._sequence: int | None = None
        self._encoding = 0
        self._segments: dict[int, bytes] = {}
        self._received = 0
        self._total: int | None = None
        self._moduli: set[int] = set()

    def _drop(self) -> None:
        if self._sequence is not None:
            self.dropped_incomplete += 1
        self._clear()

    def _fail(self, message: str) -> NoReturn:
        self._drop()
        raise SegmentError(message)

    @property
    def pending_bytes(self) -> int:
        """Bytes held for the payload being assembled."""
        return self._received

    def reset(self) -> None:
        """Forget everything, counters excepted."""
        self._clear()
        self._last_sequence = None
        self._last_segments = {}

    def push(self, datagram: bytes | bytearray | memoryview | OTrkDatagram) -> CompletePayload | None:
        """Add one datagram; return the payload it completes, if any."""
        d = datagram if isinstance(datagram, OTrkDatagram) else decode_datagram(datagram, moduli=self.moduli)
        h = d.header
        end = h.segment_offset + h.payload_length
        if end > self.max_payload_bytes:
            raise SegmentError(
                f"OTrk: segment ends at byte {end}, beyond the {self.max_payload_bytes}-byte payload limit"
            )
        if (
            h.sequence != self._sequence
            and h.sequence == self._last_sequence
            and self._last_segments.get(h.segment_offset) == d.payload
        ):
            self.duplicates += 1  # a repeat of a datagram of the payload delivered last
            return None
        if d.is_single:
            if self._sequence is not None:
                self._drop()
            self._last_sequence, self._last_segments = h.sequence, {0: d.payload}
            self.completed += 1
            return CompletePayload(h.encoding, h.sequence, d.payload, d.checksum_moduli)
        if h.sequence != self._sequence:
            self._drop()
            self._sequence, self._encoding = h.sequence, h.encoding
            self._moduli = set(d.checksum_moduli)
        elif h.encoding != self._encoding:
            self._fail(
                f"OTrk: sequence {h.sequence} mixes encodings 0x{self._encoding:02X} and 0x{h.encoding:02X}"
            )
        else:
            self._moduli &= set(d.checksum_moduli)
        existing = self._segments.get(h.segment_offset)
        if existing is not None:
            if existing == d.payload:
                self.duplicates += 1
                return None
            self._fail(f"OTrk: sequence {h.sequence} has two different segments at offset {h.segment_offset}")
        if h.last_segment:
            if self._total is not None and self._total != end:
                self._fail(f"OTrk: sequence {h.sequence} ends at both byte {self._total} and byte {end}")
            self._total = end
        if self._total is not None and end > self._total:
            self._fail(
                f"OTrk: sequence {h.sequence} has a segment ending at {end}, past its end {self._total}"
            )
        if self._received + h.payload_length > self.max_payload_bytes:
            self._fail(
                f"OTrk: sequence {h.sequence} holds more than {self.max_payload_bytes} bytes (overlaps)"
            )
        self._segments[h.segment_offset] = d.payload
        self._received += h.payload_length
        total = self._total
        if total is None or self._received < total:
            return None
        pos = 0
        parts = []
        for off in sorted(self._segments):
            if off != pos:
                self._fail(
                    f"OTrk: sequence {h.sequence} has overlapping segments (offset {off}, expected {pos})"
                )
            part = self._segments[off]
            parts.append(part)
            pos += len(part)
        if pos != total:
            self._fail(f"OTrk: sequence {h.sequence} segments cover {pos} bytes, expected {total}")
        result = CompletePayload(self._encoding, h.sequence, b"".join(parts), tuple(sorted(self._moduli)))
        self._last_sequence, self._last_segments = h.sequence, self._segments
        self._clear()
        self.completed += 1
        return result


# ------------------------------------------------------------------------------------------------------------
# Payload parsing
# ------------------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise DecodeError(f"OpenTrackIO JSON: expected a finite number, got {name}")


def parse_payload(payload: bytes | bytearray | memoryview, encoding: int) -> dict[str, Any]:
    """Parse a whole payload (JSON UTF-8 or CBOR) into its top-level object.

    JSON: strict UTF-8, no ``NaN`` / ``Infinity``; CBOR: exactly one data item, no trailing bytes. Deep
    nesting, bad UTF-8, malformed syntax and a top level that is not an object raise :class:`DecodeError`.
    """
    data = bytes(payload)
    if encoding == ENCODING_JSON:
        try:
            obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except DecodeError:
            raise
        except RecursionError:
            raise DecodeError("OpenTrackIO JSON: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limits
            raise DecodeError(f"OpenTrackIO JSON: {exc}") from None
    elif encoding == ENCODING_CBOR:
        fp = io.BytesIO(data)
        try:
            obj = cbor2.CBORDecoder(fp).decode()
        except RecursionError:
            raise DecodeError("OpenTrackIO CBOR: nested too deeply") from None
        except (cbor2.CBORError, ValueError, TypeError, OverflowError, LookupError) as exc:
            raise DecodeError(f"OpenTrackIO CBOR: {exc}") from None
        if fp.tell() != len(data):
            raise DecodeError(f"OpenTrackIO CBOR: {len(data) - fp.tell()} trailing bytes after the sample")
    else:
        raise DecodeError(f"OpenTrackIO: expected encoding 0x01 (JSON) or 0x02 (CBOR), got 0x{encoding:02X}")
    if not isinstance(obj, Mapping):
        raise DecodeError(f"OpenTrackIO: expected an object at the top level, got {type(obj).__name__}")
    return obj  # type: ignore[return-value]


# ---- field validators: each returns the value in its Python type or raises FieldError ----------------------


def _describe(v: Any) -> str:
    if isinstance(v, (Mapping, list, tuple, bytes, bytearray)):
        return f"{type(v).__name__} of length {len(v)}"
    if isinstance(v, str):
        return repr(v[:40]) + ("..." if len(v) > 40 else "")
    if type(v) is int and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    try:
        text = repr(v)
    except Exception:  # noqa: BLE001 - a description must never fail
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: str, expected: str, v: Any) -> NoReturn:
    raise FieldError(path, f"expected {expected}, got {_describe(v)}")


def _num(v: Any, path: str) -> float:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return v
        _bad(path, "a finite number", v)
    if t is int:
        try:
            return float(v)
        except OverflowError:
            _bad(path, "a finite number", v)
    if isinstance(v, float):  # float subclasses such as numpy.float64 (encoder side)
        x = float(v)
        if math.isfinite(x):
            return x
        _bad(path, "a finite number", v)
    _bad(path, "a number", v)


def _pos(v: Any, path: str) -> float:
    x = _num(v, path)
    if x > 0.0:
        return x
    _bad(path, "a number > 0", v)


def _at_least(v: Any, path: str, lo: float) -> float:
    x = _num(v, path)
    if x >= lo:
        return x
    _bad(path, f"a number >= {lo}", v)


def _unit(v: Any, path: str) -> float:
    x = _num(v, path)
    if 0.0 <= x <= 1.0:
        return x
    _bad(path, "a number in [0, 1]", v)


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    t = type(v)
    if t is not int:
        if t is float and v.is_integer():
            v = int(v)
        else:
            _bad(path, f"an integer in {lo}..{hi}", v)
    if lo <= v <= hi:
        return v
    _bad(path, f"an integer in {lo}..{hi}", v)


def _bool(v: Any, path: str) -> bool:
    if type(v) is bool:
        return v
    _bad(path, "true or false", v)


def _str(v: Any, path: str) -> str:
    if type(v) is str:
        return v
    _bad(path, "a string", v)


def _urn(v: Any, path: str) -> str:
    if type(v) is str and _UUID_RE.fullmatch(v) is not None:
        return v
    _bad(path, "a lowercase 'urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx'", v)


def _obj(v: Any, path: str) -> Mapping[str, Any]:
    if type(v) is dict or isinstance(v, Mapping):
        return v
    _bad(path, "an object", v)


def _list(v: Any, path: str) -> list[Any] | tuple[Any, ...]:
    if type(v) is list or type(v) is tuple:
        return v
    _bad(path, "an array", v)


def _req(o: Mapping[str, Any], key: str, path: str) -> Any:
    v = o.get(key, _MISSING)
    if v is _MISSING:
        raise FieldError(path, f"missing required field {key!r}")
    return v


def _opt_num(o: Mapping[str, Any], key: str, path: str) -> float | None:
    v = o.get(key)
    return None if v is None else _num(v, f"{path}.{key}")


def _opt_str(o: Mapping[str, Any], key: str, path: str) -> str | None:
    v = o.get(key)
    return None if v is None else _str(v, f"{path}.{key}")


def _numbers(v: Any, path: str, min_items: int = 0) -> tuple[float, ...]:
    items = _list(v, path)
    if len(items) < min_items:
        _bad(path, f"an array of at least {min_items} numbers", v)
    return tuple([_num(x, path) for x in items])


def _rational(v: Any, path: str) -> tuple[int, int]:
    o = _obj(v, path)
    return (
        _int(_req(o, "num", path), f"{path}.num", 1, _I31),
        _int(_req(o, "denom", path), f"{path}.denom", 1, _U32),
    )


def _timestamp_ns(v: Any, path: str) -> int:
    o = _obj(v, path)
    seconds = _int(_req(o, "seconds", path), f"{path}.seconds", 0, _U48)
    nanoseconds = _int(_req(o, "nanoseconds", path), f"{path}.nanoseconds", 0, _U32)
    return seconds * _NS + nanoseconds


def _xyz(v: Any, path: str, keys: tuple[str, str, str], default: float) -> tuple[float, float, float]:
    o = _obj(v, path)
    a, b, c = keys
    va, vb, vc = o.get(a), o.get(b), o.get(c)
    return (
        default if va is None else _num(va, f"{path}.{a}"),
        default if vb is None else _num(vb, f"{path}.{b}"),
        default if vc is None else _num(vc, f"{path}.{c}"),
    )


def _xy(v: Any, path: str) -> tuple[float, float]:
    o = _obj(v, path)
    return _num(_req(o, "x", path), f"{path}.x"), _num(_req(o, "y", path), f"{path}.y")


# ---- blocks ------------------------------------------------------------------------------------------------


def _transforms(v: Any) -> tuple[Transform, ...]:
    items = _list(v, "transforms")
    out = []
    for i, item in enumerate(items):
        path = f"transforms[{i}]"
        o = _obj(item, path)
        x, y, z = _xyz(_req(o, "translation", path), f"{path}.translation", ("x", "y", "z"), 0.0)
        pan, tilt, roll = _xyz(_req(o, "rotation", path), f"{path}.rotation", ("pan", "tilt", "roll"), 0.0)
        scale = o.get("scale")
        tid = o.get("id")
        out.append(
            Transform(
                Pose(x, y, z, pan, tilt, roll),
                None if scale is None else _xyz(scale, f"{path}.scale", ("x", "y", "z"), 1.0),
                None if tid is None else _str(tid, f"{path}.id"),
            )
        )
    return tuple(out)


def _compose(transforms: tuple[Transform, ...]) -> Pose:
    """``T_tracking_camera`` of the chain (scene-graph rules for scale, see the module docstring)."""
    if len(transforms) == 1:
        return transforms[0].pose
    t = np.zeros(3)
    linear = np.eye(3)  # R0 S0 R1 S1 ... : maps the current child's translation into the tracking frame
    rot = np.eye(3)  # R0 R1 ...
    with np.errstate(all="ignore"):
        for tr in transforms:
            p = tr.pose
            r = rotation_from_ptr_deg(p.pan, p.tilt, p.roll)
            t = t + linear @ np.array((p.x, p.y, p.z))
            rot = rot @ r
            linear = linear @ r if tr.scale is None else (linear @ r) * np.asarray(tr.scale)
    if not np.isfinite(t).all():
        raise FieldError("transforms", "the composed translation is not finite")
    pan, tilt, roll = ptr_deg_from_rotation(rot)
    return Pose(float(t[0]), float(t[1]), float(t[2]), pan, tilt, roll)


def _encoders(v: Any) -> LensEncoders | None:
    o = _obj(v, "lens.encoders")
    f, i, z = o.get("focus"), o.get("iris"), o.get("zoom")
    if f is None and i is None and z is None:
        return None
    return LensEncoders(
        None if f is None else _unit(f, "lens.encoders.focus"),
        None if i is None else _unit(i, "lens.encoders.iris"),
        None if z is None else _unit(z, "lens.encoders.zoom"),
    )


def _raw_encoders(v: Any) -> RawEncoders | None:
    o = _obj(v, "lens.rawEncoders")
    f, i, z = o.get("focus"), o.get("iris"), o.get("zoom")
    if f is None and i is None and z is None:
        return None
    return RawEncoders(
        None if f is None else _int(f, "lens.rawEncoders.focus", 0, _U32),
        None if i is None else _int(i, "lens.rawEncoders.iris", 0, _U32),
        None if z is None else _int(z, "lens.rawEncoders.zoom", 0, _U32),
    )


def _distortion(v: Any) -> tuple[Distortion, ...] | None:
    items = _list(v, "lens.distortion")
    out = []
    for k, item in enumerate(items):
        path = f"lens.distortion[{k}]"
        o = _obj(item, path)
        model = o.get("model")
        tangential = o.get("tangential")
        overscan = o.get("overscan")
        out.append(
            Distortion(
                radial=_numbers(_req(o, "radial", path), f"{path}.radial", 1),
                tangential=None if tangential is None else _numbers(tangential, f"{path}.tangential", 1),
                overscan=None if overscan is None else _at_least(overscan, f"{path}.overscan", 1.0),
                model=DEFAULT_DISTORTION_MODEL if model is None else _str(model, f"{path}.model"),
            )
        )
    return tuple(out) or None


def _lens(v: Any) -> LensState:
    o = _obj(v, "lens")
    g = o.get
    fl, fd, fs, ts = g("pinholeFocalLength"), g("focusDistance"), g("fStop"), g("tStop")
    enc, raw, dist = g("encoders"), g("rawEncoders"), g("distortion")
    do, po, ef, custom = g("distortionOffset"), g("projectionOffset"), g("exposureFalloff"), g("custom")
    falloff = None
    if ef is not None:
        efo = _obj(ef, "lens.exposureFalloff")
        falloff = ExposureFalloff(
            _num(_req(efo, "a1", "lens.exposureFalloff"), "lens.exposureFalloff.a1"),
            _opt_num(efo, "a2", "lens.exposureFalloff"),
            _opt_num(efo, "a3", "lens.exposureFalloff"),
        )
    return LensState(
        focal_length_mm=None if fl is None else _pos(fl, "lens.pinholeFocalLength"),
        focus_distance_m=None if fd is None else _pos(fd, "lens.focusDistance"),
        f_stop=None if fs is None else _pos(fs, "lens.fStop"),
        t_stop=None if ts is None else _pos(ts, "lens.tStop"),
        entrance_pupil_offset_m=_opt_num(o, "entrancePupilOffset", "lens"),
        encoders=None if enc is None else _encoders(enc),
        raw_encoders=None if raw is None else _raw_encoders(raw),
        distortion=None if dist is None else _distortion(dist),
        distortion_offset_mm=None if do is None else _xy(do, "lens.distortionOffset"),
        projection_offset_mm=None if po is None else _xy(po, "lens.projectionOffset"),
        exposure_falloff=falloff,
        custom=None if custom is None else _numbers(custom, "lens.custom"),
    )


def _timecode(v: Any) -> Timecode:
    p = "timing.timecode"
    o = _obj(v, p)
    sub, drop = o.get("subFrame"), o.get("dropFrame")
    return Timecode(
        _int(_req(o, "hours", p), f"{p}.hours", 0, 23),
        _int(_req(o, "minutes", p), f"{p}.minutes", 0, 59),
        _int(_req(o, "seconds", p), f"{p}.seconds", 0, 59),
        _int(_req(o, "frames", p), f"{p}.frames", 0, 119),
        _rational(_req(o, "frameRate", p), f"{p}.frameRate"),
        0 if sub is None else _int(sub, f"{p}.subFrame", 0, _U32),
        False if drop is None else _bool(drop, f"{p}.dropFrame"),
    )


def _ptp(v: Any) -> PtpSync:
    p = "timing.synchronization.ptp"
    o = _obj(v, p)
    pri = _obj(_req(o, "leaderPriorities", p), f"{p}.leaderPriorities")
    vlan = o.get("vlan")
    return PtpSync(
        profile=_str(_req(o, "profile", p), f"{p}.profile"),
        domain=_int(_req(o, "domain", p), f"{p}.domain", 0, 127),
        leader_identity=_str(_req(o, "leaderIdentity", p), f"{p}.leaderIdentity"),
        leader_priorities=(
            _int(_req(pri, "priority1", f"{p}.leaderPriorities"), f"{p}.leaderPriorities.priority1", 0, 255),
            _int(_req(pri, "priority2", f"{p}.leaderPriorities"), f"{p}.leaderPriorities.priority2", 0, 255),
        ),
        leader_accuracy_s=_at_least(_req(o, "leaderAccuracy", p), f"{p}.leaderAccuracy", 0.0),
        mean_path_delay_s=_at_least(_req(o, "meanPathDelay", p), f"{p}.meanPathDelay", 0.0),
        leader_time_source=_opt_str(o, "leaderTimeSource", p),
        vlan=None if vlan is None else _int(vlan, f"{p}.vlan", 0, _U32),
    )


def _synchronization(v: Any) -> Synchronization:
    p = "timing.synchronization"
    o = _obj(v, p)
    source = _str(_req(o, "source", p), f"{p}.source")
    if source not in _SYNC_SOURCES:
        _bad(f"{p}.source", "one of genlock, videoIn, ptp, ntp", source)
    freq, present, offsets, ptp = o.get("frequency"), o.get("present"), o.get("offsets"), o.get("ptp")
    offs = None
    if offsets is not None:
        oo = _obj(offsets, f"{p}.offsets")
        offs = SyncOffsets(
            _opt_num(oo, "translation", f"{p}.offsets"),
            _opt_num(oo, "rotation", f"{p}.offsets"),
            _opt_num(oo, "lensEncoders", f"{p}.offsets"),
        )
    return Synchronization(
        locked=_bool(_req(o, "locked", p), f"{p}.locked"),
        source=source,
        frequency=None if freq is None else _rational(freq, f"{p}.frequency"),
        present=None if present is None else _bool(present, f"{p}.present"),
        offsets=offs,
        ptp=None if ptp is None else _ptp(ptp),
    )


def _timing(v: Any) -> Timing:
    o = _obj(v, "timing")
    g = o.get
    mode, st, rt, rate, seq, tc, sync = (
        g("mode"),
        g("sampleTimestamp"),
        g("recordedTimestamp"),
        g("sampleRate"),
        g("sequenceNumber"),
        g("timecode"),
        g("synchronization"),
    )
    if mode is not None and (type(mode) is not str or mode not in _TIMING_MODES):
        _bad("timing.mode", "'internal' or 'external'", mode)
    return Timing(
        mode=mode,
        sample_timestamp_ns=None if st is None else _timestamp_ns(st, "timing.sampleTimestamp"),
        recorded_timestamp_ns=None if rt is None else _timestamp_ns(rt, "timing.recordedTimestamp"),
        sample_rate=None if rate is None else _rational(rate, "timing.sampleRate"),
        sequence_number=None if seq is None else _int(seq, "timing.sequenceNumber", 0, _U32),
        timecode=None if tc is None else _timecode(tc),
        synchronization=None if sync is None else _synchronization(sync),
    )


def _tracker(v: Any) -> TrackerStatus:
    o = _obj(v, "tracker")
    rec = o.get("recording")
    return TrackerStatus(
        notes=_opt_str(o, "notes", "tracker"),
        recording=None if rec is None else _bool(rec, "tracker.recording"),
        slate=_opt_str(o, "slate", "tracker"),
        status=_opt_str(o, "status", "tracker"),
    )


def _static(v: Any) -> StaticInfo:
    o = _obj(v, "static")
    dur, cam, lens, trk = o.get("duration"), o.get("camera"), o.get("lens"), o.get("tracker")
    camera = static_lens = tracker = None
    if cam is not None:
        p = "static.camera"
        c = _obj(cam, p)
        g = c.get
        cfr, dims, res, sq, iso, fdl, sh = (
            g("captureFrameRate"),
            g("activeSensorPhysicalDimensions"),
            g("activeSensorResolution"),
            g("anamorphicSqueeze"),
            g("isoSpeed"),
            g("fdlLink"),
            g("shutterAngle"),
        )
        dimensions = resolution = None
        if dims is not None:
            d = _obj(dims, f"{p}.activeSensorPhysicalDimensions")
            dimensions = SensorDimensions(
                _at_least(
                    _req(d, "width", f"{p}.activeSensorPhysicalDimensions"),
                    f"{p}.activeSensorPhysicalDimensions.width",
                    0.0,
                ),
                _at_least(
                    _req(d, "height", f"{p}.activeSensorPhysicalDimensions"),
                    f"{p}.activeSensorPhysicalDimensions.height",
                    0.0,
                ),
            )
        if res is not None:
            r = _obj(res, f"{p}.activeSensorResolution")
            resolution = SensorResolution(
                _int(
                    _req(r, "width", f"{p}.activeSensorResolution"),
                    f"{p}.activeSensorResolution.width",
                    0,
                    _I31,
                ),
                _int(
                    _req(r, "height", f"{p}.activeSensorResolution"),
                    f"{p}.activeSensorResolution.height",
                    0,
                    _I31,
                ),
            )
        shutter = None
        if sh is not None:
            shutter = _num(sh, f"{p}.shutterAngle")
            if not 0.0 <= shutter <= 360.0:
                _bad(f"{p}.shutterAngle", "a number in [0, 360]", sh)
        camera = StaticCamera(
            capture_frame_rate=None if cfr is None else _rational(cfr, f"{p}.captureFrameRate"),
            active_sensor_physical_dimensions=dimensions,
            active_sensor_resolution=resolution,
            make=_opt_str(c, "make", p),
            model=_opt_str(c, "model", p),
            serial_number=_opt_str(c, "serialNumber", p),
            firmware_version=_opt_str(c, "firmwareVersion", p),
            label=_opt_str(c, "label", p),
            anamorphic_squeeze=None if sq is None else _rational(sq, f"{p}.anamorphicSqueeze"),
            iso_speed=None if iso is None else _int(iso, f"{p}.isoSpeed", 1, _U32),
            fdl_link=None if fdl is None else _urn(fdl, f"{p}.fdlLink"),
            shutter_angle_deg=shutter,
        )
    if lens is not None:
        p = "static.lens"
        ll = _obj(lens, p)
        dmax, umax, nfl, hist = (
            ll.get("distortionOverscanMax"),
            ll.get("undistortionOverscanMax"),
            ll.get("nominalFocalLength"),
            ll.get("calibrationHistory"),
        )
        static_lens = StaticLens(
            distortion_overscan_max=None
            if dmax is None
            else _at_least(dmax, f"{p}.distortionOverscanMax", 1.0),
            undistortion_overscan_max=None
            if umax is None
            else _at_least(umax, f"{p}.undistortionOverscanMax", 1.0),
            make=_opt_str(ll, "make", p),
            model=_opt_str(ll, "model", p),
            serial_number=_opt_str(ll, "serialNumber", p),
            firmware_version=_opt_str(ll, "firmwareVersion", p),
            nominal_focal_length_mm=None if nfl is None else _pos(nfl, f"{p}.nominalFocalLength"),
            calibration_history=None
            if hist is None
            else tuple([_str(s, f"{p}.calibrationHistory") for s in _list(hist, f"{p}.calibrationHistory")]),
        )
    if trk is not None:
        p = "static.tracker"
        t = _obj(trk, p)
        tracker = StaticTracker(
            make=_opt_str(t, "make", p),
            model=_opt_str(t, "model", p),
            serial_number=_opt_str(t, "serialNumber", p),
            firmware_version=_opt_str(t, "firmwareVersion", p),
        )
    return StaticInfo(
        duration=None if dur is None else _rational(dur, "static.duration"),
        camera=camera,
        lens=static_lens,
        tracker=tracker,
    )


def _protocol(v: Any) -> tuple[int, int, int]:
    o = _obj(v, "protocol")
    name = _req(o, "name", "protocol")
    if name != PROTOCOL_OPENTRACKIO:
        _bad("protocol.name", "'OpenTrackIO'", name)
    version = _list(_req(o, "version", "protocol"), "protocol.version")
    if len(version) != 3:
        _bad("protocol.version", "3 integers", version)
    return (
        _int(version[0], "protocol.version[0]", 0, 9),
        _int(version[1], "protocol.version[1]", 0, 9),
        _int(version[2], "protocol.version[2]", 0, 9),
    )


def _global_stage(v: Any) -> GlobalStage:
    o = _obj(v, "globalStage")
    p = "globalStage"
    return GlobalStage(
        _num(_req(o, "E", p), "globalStage.E"),
        _num(_req(o, "N", p), "globalStage.N"),
        _num(_req(o, "U", p), "globalStage.U"),
        _num(_req(o, "lat0", p), "globalStage.lat0"),
        _num(_req(o, "lon0", p), "globalStage.lon0"),
        _num(_req(o, "h0", p), "globalStage.h0"),
    )


def sample_from_dict(obj: Mapping[str, Any]) -> TrackingSample:
    """Validate a parsed OpenTrackIO sample object and convert it to a :class:`TrackingSample`.

    The pose is the composition of ``transforms`` (``T_tracking_camera``, metres / degrees, stage
    conventions), the individual transforms are kept in ``transforms``. Timestamps become integer ns.
    Raises :class:`FieldError` (a :class:`DecodeError`) naming the first bad field.
    """
    o = _obj(obj, "")
    g = o.get
    proto, tr, lens, timing, tracker, static, gs = (
        g("protocol"),
        g("transforms"),
        g("lens"),
        g("timing"),
        g("tracker"),
        g("static"),
        g("globalStage"),
    )
    sid, src, num, rel = g("sampleId"), g("sourceId"), g("sourceNumber"), g("relatedSampleIds")
    transforms = None if tr is None else (_transforms(tr) or None)
    raw: dict[str, Any] = {}
    if len(o) > len(_KNOWN_TOP) or not _KNOWN_TOP.issuperset(o):
        for key, value in o.items():
            if type(key) is not str:
                _bad("", "string keys at the top level", key)
            if key not in _KNOWN_TOP:
                raw[key] = value
    return TrackingSample(
        protocol=PROTOCOL_OPENTRACKIO,
        protocol_version=None if proto is None else _protocol(proto),
        pose=None if transforms is None else _compose(transforms),
        pose_frame=FRAME_CAMERA,
        transforms=transforms,
        lens=None if lens is None else _lens(lens),
        timing=None if timing is None else _timing(timing),
        tracker=None if tracker is None else _tracker(tracker),
        static=None if static is None else _static(static),
        global_stage=None if gs is None else _global_stage(gs),
        source_number=None if num is None else _int(num, "sourceNumber", 0, _U32),
        source_id=None if src is None else _urn(src, "sourceId"),
        sample_id=None if sid is None else _urn(sid, "sampleId"),
        related_sample_ids=None
        if rel is None
        else tuple([_urn(r, "relatedSampleIds[]") for r in _list(rel, "relatedSampleIds")]),
        raw=raw,
    )


def decode_sample(payload: bytes | bytearray | memoryview, encoding: int) -> TrackingSample:
    """Whole payload (JSON or CBOR bytes) -> :class:`TrackingSample`."""
    return sample_from_dict(parse_payload(payload, encoding))


def decode_packet(
    data: bytes | bytearray | memoryview, *, moduli: Iterable[int] = (255, 256)
) -> TrackingSample:
    """One self-contained datagram -> :class:`TrackingSample`.

    Raises :class:`SegmentError` when the datagram is a segment of a larger payload (feed those to a
    :class:`Reassembler`), and :class:`DecodeError` for a vendor encoding (>= 0x80).
    """
    d = decode_datagram(data, moduli=moduli)
    if not d.is_single:
        raise SegmentError(
            f"OTrk: datagram is a segment (offset {d.header.segment_offset}, "
            f"last={d.header.last_segment}) of a larger payload; reassemble it first"
        )
    return decode_sample(d.payload, d.header.encoding)


# ------------------------------------------------------------------------------------------------------------
# Encoding
# ------------------------------------------------------------------------------------------------------------


def _rat(r: tuple[int, int]) -> dict[str, int]:
    return {"num": r[0], "denom": r[1]}


def _ts(ns: int) -> dict[str, int]:
    if ns < 0:
        raise EncodeError(f"OpenTrackIO: a PTP timestamp cannot be negative, got {ns} ns")
    seconds, nanoseconds = divmod(ns, _NS)
    return {"seconds": seconds, "nanoseconds": nanoseconds}


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        d[key] = value


def _lens_dict(lens: LensState) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if lens.custom is not None:
        d["custom"] = list(lens.custom)
    if lens.distortion:
        items = []
        for dist in lens.distortion:
            item: dict[str, Any] = {}
            if dist.model != DEFAULT_DISTORTION_MODEL:
                item["model"] = dist.model
            item["radial"] = list(dist.radial)
            if dist.tangential is not None:
                item["tangential"] = list(dist.tangential)
            _put(item, "overscan", dist.overscan)
            items.append(item)
        d["distortion"] = items
    if lens.distortion_offset_mm is not None:
        d["distortionOffset"] = {"x": lens.distortion_offset_mm[0], "y": lens.distortion_offset_mm[1]}
    enc = lens.encoders
    if enc is not None and (enc.focus is not None or enc.iris is not None or enc.zoom is not None):
        e: dict[str, Any] = {}
        _put(e, "focus", enc.focus)
        _put(e, "iris", enc.iris)
        _put(e, "zoom", enc.zoom)
        d["encoders"] = e
    _put(d, "entrancePupilOffset", lens.entrance_pupil_offset_m)
    if lens.exposure_falloff is not None:
        ef: dict[str, Any] = {"a1": lens.exposure_falloff.a1}
        _put(ef, "a2", lens.exposure_falloff.a2)
        _put(ef, "a3", lens.exposure_falloff.a3)
        d["exposureFalloff"] = ef
    _put(d, "fStop", lens.f_stop)
    _put(d, "pinholeFocalLength", lens.focal_length_mm)
    _put(d, "focusDistance", lens.focus_distance_m)
    if lens.projection_offset_mm is not None:
        d["projectionOffset"] = {"x": lens.projection_offset_mm[0], "y": lens.projection_offset_mm[1]}
    raw = lens.raw_encoders
    if raw is not None and (raw.focus is not None or raw.iris is not None or raw.zoom is not None):
        r: dict[str, Any] = {}
        _put(r, "focus", raw.focus)
        _put(r, "iris", raw.iris)
        _put(r, "zoom", raw.zoom)
        d["rawEncoders"] = r
    _put(d, "tStop", lens.t_stop)
    return d


def _timing_dict(t: Timing) -> dict[str, Any]:
    d: dict[str, Any] = {}
    _put(d, "mode", t.mode)
    if t.recorded_timestamp_ns is not None:
        d["recordedTimestamp"] = _ts(t.recorded_timestamp_ns)
    if t.sample_rate is not None:
        d["sampleRate"] = _rat(t.sample_rate)
    if t.sample_timestamp_ns is not None:
        d["sampleTimestamp"] = _ts(t.sample_timestamp_ns)
    _put(d, "sequenceNumber", t.sequence_number)
    s = t.synchronization
    if s is not None:
        sd: dict[str, Any] = {"locked": s.locked, "source": s.source}
        if s.frequency is not None:
            sd["frequency"] = _rat(s.frequency)
        if s.offsets is not None:
            od: dict[str, Any] = {}
            _put(od, "translation", s.offsets.translation_s)
            _put(od, "rotation", s.offsets.rotation_s)
            _put(od, "lensEncoders", s.offsets.lens_encoders_s)
            sd["offsets"] = od
        _put(sd, "present", s.present)
        if s.ptp is not None:
            p = s.ptp
            pd: dict[str, Any] = {
                "profile": p.profile,
                "domain": p.domain,
                "leaderIdentity": p.leader_identity,
                "leaderPriorities": {
                    "priority1": p.leader_priorities[0],
                    "priority2": p.leader_priorities[1],
                },
                "leaderAccuracy": p.leader_accuracy_s,
            }
            _put(pd, "leaderTimeSource", p.leader_time_source)
            pd["meanPathDelay"] = p.mean_path_delay_s
            _put(pd, "vlan", p.vlan)
            sd["ptp"] = pd
        d["synchronization"] = sd
    tc = t.timecode
    if tc is not None:
        td: dict[str, Any] = {
            "hours": tc.hours,
            "minutes": tc.minutes,
            "seconds": tc.seconds,
            "frames": tc.frames,
            "frameRate": _rat(tc.rate),
        }
        if tc.sub_frame:
            td["subFrame"] = tc.sub_frame
        if tc.drop_frame:
            td["dropFrame"] = True
        d["timecode"] = td
    return d


def _static_dict(s: StaticInfo) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if s.duration is not None:
        d["duration"] = _rat(s.duration)
    c = s.camera
    if c is not None:
        cd: dict[str, Any] = {}
        if c.capture_frame_rate is not None:
            cd["captureFrameRate"] = _rat(c.capture_frame_rate)
        if c.active_sensor_physical_dimensions is not None:
            dims = c.active_sensor_physical_dimensions
            cd["activeSensorPhysicalDimensions"] = {"height": dims.height_mm, "width": dims.width_mm}
        if c.active_sensor_resolution is not None:
            res = c.active_sensor_resolution
            cd["activeSensorResolution"] = {"height": res.height_px, "width": res.width_px}
        _put(cd, "make", c.make)
        _put(cd, "model", c.model)
        _put(cd, "serialNumber", c.serial_number)
        _put(cd, "firmwareVersion", c.firmware_version)
        _put(cd, "label", c.label)
        if c.anamorphic_squeeze is not None:
            cd["anamorphicSqueeze"] = _rat(c.anamorphic_squeeze)
        _put(cd, "isoSpeed", c.iso_speed)
        _put(cd, "fdlLink", c.fdl_link)
        _put(cd, "shutterAngle", c.shutter_angle_deg)
        d["camera"] = cd
    ln = s.lens
    if ln is not None:
        ld: dict[str, Any] = {}
        _put(ld, "distortionOverscanMax", ln.distortion_overscan_max)
        _put(ld, "undistortionOverscanMax", ln.undistortion_overscan_max)
        _put(ld, "make", ln.make)
        _put(ld, "model", ln.model)
        _put(ld, "serialNumber", ln.serial_number)
        _put(ld, "firmwareVersion", ln.firmware_version)
        _put(ld, "nominalFocalLength", ln.nominal_focal_length_mm)
        if ln.calibration_history is not None:
            ld["calibrationHistory"] = list(ln.calibration_history)
        d["lens"] = ld
    t = s.tracker
    if t is not None:
        tdd: dict[str, Any] = {}
        _put(tdd, "make", t.make)
        _put(tdd, "model", t.model)
        _put(tdd, "serialNumber", t.serial_number)
        _put(tdd, "firmwareVersion", t.firmware_version)
        d["tracker"] = tdd
    return d


def _transform_dict(pose: Pose, scale: tuple[float, float, float] | None, tid: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "translation": {"x": pose.x, "y": pose.y, "z": pose.z},
        "rotation": {"pan": pose.pan, "tilt": pose.tilt, "roll": pose.roll},
    }
    if scale is not None:
        d["scale"] = {"x": scale[0], "y": scale[1], "z": scale[2]}
    _put(d, "id", tid)
    return d


def sample_to_dict(
    sample: TrackingSample,
    *,
    protocol_version: tuple[int, int, int] | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """The OpenTrackIO sample object of ``sample`` (inverse of :func:`sample_from_dict`).

    ``transforms`` are written as kept; a sample without them (e.g. from FreeD) gets its ``pose`` as a single
    transform (pan sign and units are already OpenTrackIO's). ``protocol.version`` is ``protocol_version``,
    else the sample's own (OpenTrackIO samples), else 1.0.1. ``raw`` is re-emitted for OpenTrackIO samples
    only. With ``validate`` the result is checked by the decoder; a failure raises :class:`EncodeError`.
    """
    d: dict[str, Any] = {}
    if sample.static is not None:
        d["static"] = _static_dict(sample.static)
    if sample.tracker is not None:
        t = sample.tracker
        td: dict[str, Any] = {}
        _put(td, "notes", t.notes)
        _put(td, "recording", t.recording)
        _put(td, "slate", t.slate)
        _put(td, "status", t.status)
        d["tracker"] = td
    if sample.timing is not None:
        d["timing"] = _timing_dict(sample.timing)
    if sample.lens is not None:
        d["lens"] = _lens_dict(sample.lens)
    version = protocol_version
    if version is None:
        own = sample.protocol_version if sample.protocol == PROTOCOL_OPENTRACKIO else None
        version = own if own is not None else DEFAULT_PROTOCOL_VERSION
    d["protocol"] = {"name": PROTOCOL_OPENTRACKIO, "version": list(version)}
    _put(d, "sampleId", sample.sample_id)
    _put(d, "sourceId", sample.source_id)
    _put(d, "sourceNumber", sample.source_number)
    if sample.related_sample_ids is not None:
        d["relatedSampleIds"] = list(sample.related_sample_ids)
    if sample.global_stage is not None:
        gs = sample.global_stage
        d["globalStage"] = {"E": gs.e, "N": gs.n, "U": gs.u, "lat0": gs.lat0, "lon0": gs.lon0, "h0": gs.h0}
    if sample.transforms:
        d["transforms"] = [_transform_dict(t.pose, t.scale, t.id) for t in sample.transforms]
    elif sample.pose is not None:
        d["transforms"] = [_transform_dict(sample.pose, None, None)]
    if sample.protocol == PROTOCOL_OPENTRACKIO and sample.raw:
        clash = _KNOWN_TOP.intersection(sample.raw)
        if clash:
            raise EncodeError(f"OpenTrackIO: raw keys {sorted(clash)} would overwrite sample fields")
        d.update(sample.raw)
    if validate:
        try:
            sample_from_dict(d)
        except DecodeError as exc:
            raise EncodeError(f"OpenTrackIO: the sample does not encode to a valid sample: {exc}") from None
        except (TypeError, AttributeError, IndexError) as exc:
            raise EncodeError(f"OpenTrackIO: a sample field has the wrong type: {exc}") from None
    return d


def encode_payload(obj: Mapping[str, Any], encoding: int = ENCODING_JSON) -> bytes:
    """Serialise a sample object: compact UTF-8 JSON (no NaN) or CBOR. Raises :class:`EncodeError`."""
    try:
        if encoding == ENCODING_JSON:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        if encoding == ENCODING_CBOR:
            return cbor2.dumps(obj)
    except (ValueError, TypeError, RecursionError, cbor2.CBORError) as exc:
        raise EncodeError(f"OpenTrackIO: cannot serialise the sample: {exc}") from None
    raise EncodeError(f"OpenTrackIO: expected encoding 0x01 (JSON) or 0x02 (CBOR), got {encoding!r}")


def encode_sample(
    sample: TrackingSample,
    *,
    encoding: int = ENCODING_JSON,
    sequence: int = 0,
    max_segment_payload: int = DEFAULT_MAX_SEGMENT_PAYLOAD,
    modulus: int = 256,
    protocol_version: tuple[int, int, int] | None = None,
) -> list[bytes]:
    """Sample -> object -> JSON / CBOR bytes -> datagrams (all with ``sequence``), ready to send in order."""
    payload = encode_payload(sample_to_dict(sample, protocol_version=protocol_version), encoding)
    return segment_payload(
        payload,
        encoding=encoding,
        sequence=sequence,
        max_segment_payload=max_segment_payload,
        modulus=modulus,
    )
