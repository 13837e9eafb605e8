"""OpenTrackIO codec: ``OTrk`` datagrams, segmentation, JSON / CBOR payloads and samples.

Pure functions plus one stateful-by-instance :class:`Reassembler`; no sockets, no clocks. References:
``docs/reference/PROTOCOLS.md`` section 2 and the official examples / schemas in
``tests/data/opentrackio/`` (1.0.0, 1.0.1, classic 0.9.3).

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
unknown nested keys are ignored. A kept value may nest at most :data:`MAX_RAW_DEPTH` levels and may not share or
contain itself (CBOR's shared references, tags 28/29, can make a 10-byte payload a cycle or a structure
that expands exponentially when re-emitted): either is a :class:`FieldError`. Defaults are not serialised (``subFrame`` 0, ``dropFrame`` false, the default
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
    fast_constructor,
)
from stagectl.transforms import Rows3, matmul3, ptr_deg_from_rows, rotation_rows_from_ptr_deg

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_RAW_DEPTH",
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


_MAX_DATAGRAM: Final = HEADER_LENGTH + MAX_SEGMENT_PAYLOAD
# Column 0: ones; column 1: n, n-1, ..., 1 in the last n rows. ``bytes @ _WEIGHTS[-n:]`` = (s1, s2) below.
_WEIGHTS: Final = np.stack(
    (np.ones(_MAX_DATAGRAM), np.arange(_MAX_DATAGRAM, 0, -1, dtype=np.float64)), axis=1
)


def _sums(data: bytes | memoryview) -> tuple[int, int]:
    """Unreduced Fletcher sums: ``s1 = sum(b_i)``, ``s2 = sum over k of (b_0 + ... + b_k)``.

    ``s2 = sum_i (n - i) b_i`` (byte ``i`` is in the last ``n - i`` prefixes): up to a whole datagram both come
    from one float64 matrix-vector product, which is exact -- every partial sum is an integer below 2**38, far
    under 2**53, whatever the order of summation.
    """
    n = len(data)
    if n < _SMALL:
        return sum(data), sum(accumulate(data))
    if n <= _MAX_DATAGRAM:
        s1, s2 = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) @ _WEIGHTS[-n:]).tolist()
        return int(s1), int(s2)
    c = np.cumsum(np.frombuffer(data, dtype=np.uint8), dtype=np.int64)
    return int(c[-1]), int(c.sum())


def _combine(a: tuple[int, int], b: tuple[int, int], len_b: int) -> tuple[int, int]:
    """Sums of ``A + B`` from the sums of ``A`` and ``B``: every prefix of B also contains all of A."""
    return a[0] + b[0], a[1] + len_b * a[0] + b[1]


def _datagram_sums(view: bytes | memoryview) -> tuple[int, int]:
    """Unreduced Fletcher sums of ``view[:14] + view[16:]`` (the header without its checksum, then the payload)
    of a whole datagram, without slicing it: the same values as
    ``_combine(_sums(view[:14]), _sums(view[16:]), len(view) - 16)``.

    The sums of all ``n`` bytes as in :func:`_sums`, then the two checksum bytes taken out: they add to
    ``s1`` once and to ``s2`` with weights ``n - 14`` and ``n - 15``, and each header byte weighs 2 less in
    the shorter sequence.
    """
    n = len(view)
    total, weighted = (np.frombuffer(view, dtype=np.uint8).astype(np.float64) @ _WEIGHTS[-n:]).tolist()
    c0, c1 = view[14], view[15]
    head = sum(view[:14])
    # over view[:14] + view[16:] (length n - 2): header byte i weighs n - 2 - i, payload byte i weighs n - i
    return int(total) - c0 - c1, int(weighted) - 2 * head - (n - 14) * c0 - (n - 15) * c1


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


_new_header = fast_constructor(OTrkHeader)
_new_datagram = fast_constructor(OTrkDatagram)
_new_complete = fast_constructor(CompletePayload)


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
    if length >= _SMALL and len(view) == HEADER_LENGTH + length:  # else a memoryview of wider items
        s = _datagram_sums(view)
    else:
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
    header = _new_header(
        encoding, sequence, offset, bool(flag_len & _LAST_SEGMENT), length, checksum, reserved
    )
    return _new_datagram(header, payload, tuple(sorted(matched)))


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
            return _new_complete(h.encoding, h.sequence, d.payload, d.checksum_moduli)
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
        result = _new_complete(self._encoding, h.sequence, b"".join(parts), tuple(sorted(self._moduli)))
        self._last_sequence, self._last_segments = h.sequence, self._segments
        self._clear()
        self.completed += 1
        return result


# ------------------------------------------------------------------------------------------------------------
# Payload parsing
# ------------------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise DecodeError(f"OpenTrackIO JSON: expected a finite number, got {name}")


# ``json.loads(text, parse_constant=...)`` builds a new JSONDecoder (and scanner) per call; one is enough (as
# json's own module-level decoder, it is stateless between calls).
_JSON_DECODE: Final = json.JSONDecoder(parse_constant=_reject_constant).decode

#: Deepest nesting of a value kept from an unknown top-level key (``TrackingSample.raw``).
MAX_RAW_DEPTH: Final = 32


def _check_raw(key: str, value: Any) -> None:
    """Refuse a kept unknown value nested deeper than :data:`MAX_RAW_DEPTH` or holding one container twice
    (a CBOR shared reference: a cycle, or an exponential expansion when re-encoded)."""
    if not isinstance(value, (Mapping, list, tuple)):
        return
    seen: set[int] = set()
    stack = [(value, 1)]
    while stack:
        v, level = stack.pop()
        if level > MAX_RAW_DEPTH:
            raise FieldError(key, f"nested deeper than {MAX_RAW_DEPTH} levels")
        if id(v) in seen:
            raise FieldError(key, "a value that is shared or contains itself (CBOR tags 28/29) is not accepted")
        seen.add(id(v))
        for child in (*v.keys(), *v.values()) if isinstance(v, Mapping) else v:
            if isinstance(child, (Mapping, list, tuple)) and len(child):  # () is one shared object
                stack.append((child, level + 1))


def parse_payload(payload: bytes | bytearray | memoryview, encoding: int) -> dict[str, Any]:
    """Parse a whole payload (JSON UTF-8 or CBOR) into its top-level object.

    JSON: strict UTF-8, no ``NaN`` / ``Infinity``; CBOR: exactly one data item, no trailing bytes. Deep
    nesting, bad UTF-8, malformed syntax and a top level that is not an object raise :class:`DecodeError`.
    """
    data = bytes(payload)
    if encoding == ENCODING_JSON:
        try:
            text = data.decode("utf-8")
            if text.startswith("\ufeff"):  # what json.loads checks before decoding
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
            obj = _JSON_DECODE(text)
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
    if type(v) is dict:  # fast path, see "blocks" below
        x, y = v.get("x"), v.get("y")
        if type(x) is float and type(y) is float and x - x == 0.0 and y - y == 0.0:
            return x, y
    o = _obj(v, path)
    return _num(_req(o, "x", path), f"{path}.x"), _num(_req(o, "y", path), f"{path}.y")


# ---- blocks ------------------------------------------------------------------------------------------------
#
# The per-packet path. Every field is checked inline for its common valid form (a ``dict`` object, a ``list``
# array, an exact ``float`` that is finite and in range -- ``x - x == 0.0`` is false only for inf and NaN --,
# an exact ``int`` in range, a ``str``) and otherwise handed to the validator above with its path, which either
# returns the same value (ints as floats, other Mappings, ...) or raises the same FieldError as before. Fields
# are checked in the same order as always, so the first bad field reported does not change; paths are only
# formatted when needed. Objects are built with the fast constructors (:func:`fast_constructor`).

_new_pose = fast_constructor(Pose)
_new_transform = fast_constructor(Transform)
_new_encoders = fast_constructor(LensEncoders)
_new_raw_encoders = fast_constructor(RawEncoders)
_new_distortion = fast_constructor(Distortion)
_new_falloff = fast_constructor(ExposureFalloff)
_new_lens = fast_constructor(LensState)
_new_timecode = fast_constructor(Timecode)
_new_offsets = fast_constructor(SyncOffsets)
_new_ptp = fast_constructor(PtpSync)
_new_sync = fast_constructor(Synchronization)
_new_timing = fast_constructor(Timing)
_new_tracker = fast_constructor(TrackerStatus)
_new_dimensions = fast_constructor(SensorDimensions)
_new_resolution = fast_constructor(SensorResolution)
_new_static_camera = fast_constructor(StaticCamera)
_new_static_lens = fast_constructor(StaticLens)
_new_static_tracker = fast_constructor(StaticTracker)
_new_static = fast_constructor(StaticInfo)
_new_global_stage = fast_constructor(GlobalStage)
_new_sample = fast_constructor(TrackingSample)
_isfinite = math.isfinite
_urn_match = _UUID_RE.fullmatch
_INF: Final = math.inf


def _floats(v: Any, min_items: int) -> tuple[float, ...] | None:
    """``tuple(v)`` when ``v`` is a list of at least ``min_items`` finite exact floats, else None."""
    if type(v) is not list or len(v) < min_items:
        return None
    for x in v:
        if type(x) is not float or x - x != 0.0:
            return None
    return tuple(v)


def _fast_rational(v: Any) -> tuple[int, int] | None:
    """``(num, denom)`` of a dict with ints in the schema's ranges, else None (then :func:`_rational`)."""
    if type(v) is dict:
        n, d = v.get("num"), v.get("denom")
        if type(n) is int and type(d) is int and 1 <= n <= _I31 and 1 <= d <= _U32:
            return n, d
    return None


def _fast_timestamp_ns(v: Any) -> int | None:
    if type(v) is dict:
        s, n = v.get("seconds"), v.get("nanoseconds")
        if type(s) is int and type(n) is int and 0 <= s <= _U48 and 0 <= n <= _U32:
            return s * _NS + n
    return None


def _transform_slow(item: Any, i: int) -> Transform:
    path = f"transforms[{i}]"
    o = _obj(item, path)
    x, y, z = _xyz(_req(o, "translation", path), f"{path}.translation", ("x", "y", "z"), 0.0)
    pan, tilt, roll = _xyz(_req(o, "rotation", path), f"{path}.rotation", ("pan", "tilt", "roll"), 0.0)
    scale = o.get("scale")
    tid = o.get("id")
    return _new_transform(
        _new_pose(x, y, z, pan, tilt, roll),
        None if scale is None else _xyz(scale, f"{path}.scale", ("x", "y", "z"), 1.0),
        None if tid is None else _str(tid, f"{path}.id"),
    )


def _transforms(v: Any) -> tuple[Transform, ...]:
    items = v if type(v) is list else _list(v, "transforms")
    out = []
    for i, item in enumerate(items):
        # fast path: translation and rotation complete with finite floats, scale absent or complete likewise
        if type(item) is dict:
            t, r, scale, tid = (
                item.get("translation"),
                item.get("rotation"),
                item.get("scale"),
                item.get("id"),
            )
            if type(t) is dict and type(r) is dict and (tid is None or type(tid) is str):
                x, y, z = t.get("x"), t.get("y"), t.get("z")
                pan, tilt, roll = r.get("pan"), r.get("tilt"), r.get("roll")
                if (
                    type(x) is float
                    and type(y) is float
                    and type(z) is float
                    and type(pan) is float
                    and type(tilt) is float
                    and type(roll) is float
                    and x - x == 0.0
                    and y - y == 0.0
                    and z - z == 0.0
                    and pan - pan == 0.0
                    and tilt - tilt == 0.0
                    and roll - roll == 0.0
                ):
                    if scale is None:
                        out.append(_new_transform(_new_pose(x, y, z, pan, tilt, roll), None, tid))
                        continue
                    if type(scale) is dict:
                        sx, sy, sz = scale.get("x"), scale.get("y"), scale.get("z")
                        if (
                            type(sx) is float
                            and type(sy) is float
                            and type(sz) is float
                            and sx - sx == 0.0
                            and sy - sy == 0.0
                            and sz - sz == 0.0
                        ):
                            out.append(_new_transform(_new_pose(x, y, z, pan, tilt, roll), (sx, sy, sz), tid))
                            continue
        out.append(_transform_slow(item, i))
    return tuple(out)


def _compose(transforms: tuple[Transform, ...]) -> Pose:
    """``T_tracking_camera`` of the chain (scene-graph rules for scale, see the module docstring).

    Plain ``math`` on row tuples (:func:`~stagectl.transforms.rotation_rows_from_ptr_deg`,
    :func:`~stagectl.transforms.matmul3`, :func:`~stagectl.transforms.ptr_deg_from_rows`) in numpy's order of
    operations: for 2-3 transforms numpy's per-call overhead was most of the cost. The running products start
    from the first transform (``I @ X`` is ``X`` for the finite values decoded here).
    """
    if len(transforms) == 1:
        return transforms[0].pose
    first = transforms[0]
    p = first.pose
    rot = rotation_rows_from_ptr_deg(p.pan, p.tilt, p.roll)  # R0 R1 ...
    tx, ty, tz = 0.0 + p.x, 0.0 + p.y, 0.0 + p.z
    # linear = R0 S0 R1 S1 ... : maps the current child's translation into the tracking frame
    linear = rot if first.scale is None else _scaled(rot, first.scale)
    for tr in transforms[1:]:
        p = tr.pose
        r = rotation_rows_from_ptr_deg(p.pan, p.tilt, p.roll)
        x, y, z = p.x, p.y, p.z
        (l00, l01, l02), (l10, l11, l12), (l20, l21, l22) = linear
        tx = tx + (0.0 + l00 * x + l01 * y + l02 * z)
        ty = ty + (0.0 + l10 * x + l11 * y + l12 * z)
        tz = tz + (0.0 + l20 * x + l21 * y + l22 * z)
        rot = matmul3(rot, r)
        linear = matmul3(linear, r) if tr.scale is None else _scaled(matmul3(linear, r), tr.scale)
    if not (_isfinite(tx) and _isfinite(ty) and _isfinite(tz)):
        raise FieldError("transforms", "the composed translation is not finite")
    pan, tilt, roll = ptr_deg_from_rows(rot)
    return _new_pose(tx, ty, tz, pan, tilt, roll)


def _scaled(m: Rows3, scale: tuple[float, float, float]) -> Rows3:
    """``m * scale``: column ``j`` of ``m`` times ``scale[j]`` (numpy's broadcast of a row vector)."""
    sx, sy, sz = scale
    (a, b, c), (d, e, f), (g, h, i) = m
    return (a * sx, b * sy, c * sz), (d * sx, e * sy, f * sz), (g * sx, h * sy, i * sz)


def _encoders(v: Any) -> LensEncoders | None:
    o = v if type(v) is dict else _obj(v, "lens.encoders")
    f, i, z = o.get("focus"), o.get("iris"), o.get("zoom")
    if f is None and i is None and z is None:
        return None
    return _new_encoders(
        None if f is None else f if type(f) is float and 0.0 <= f <= 1.0 else _unit(f, "lens.encoders.focus"),
        None if i is None else i if type(i) is float and 0.0 <= i <= 1.0 else _unit(i, "lens.encoders.iris"),
        None if z is None else z if type(z) is float and 0.0 <= z <= 1.0 else _unit(z, "lens.encoders.zoom"),
    )


def _raw_encoders(v: Any) -> RawEncoders | None:
    o = v if type(v) is dict else _obj(v, "lens.rawEncoders")
    f, i, z = o.get("focus"), o.get("iris"), o.get("zoom")
    if f is None and i is None and z is None:
        return None
    return _new_raw_encoders(
        None
        if f is None
        else f
        if type(f) is int and 0 <= f <= _U32
        else _int(f, "lens.rawEncoders.focus", 0, _U32),
        None
        if i is None
        else i
        if type(i) is int and 0 <= i <= _U32
        else _int(i, "lens.rawEncoders.iris", 0, _U32),
        None
        if z is None
        else z
        if type(z) is int and 0 <= z <= _U32
        else _int(z, "lens.rawEncoders.zoom", 0, _U32),
    )


def _distortion(v: Any) -> tuple[Distortion, ...] | None:
    items = v if type(v) is list else _list(v, "lens.distortion")
    out = []
    for k, item in enumerate(items):
        if type(item) is dict:
            g = item.get
            model, tangential, overscan = g("model"), g("tangential"), g("overscan")
            radial = _floats(g("radial"), 1)
            if (
                radial is not None
                and (overscan is None or (type(overscan) is float and 1.0 <= overscan < _INF))
                and (model is None or type(model) is str)
            ):
                tang = None if tangential is None else _floats(tangential, 1)
                if tangential is None or tang is not None:
                    out.append(
                        _new_distortion(
                            radial, tang, overscan, DEFAULT_DISTORTION_MODEL if model is None else model
                        )
                    )
                    continue
        path = f"lens.distortion[{k}]"
        o = _obj(item, path)
        model = o.get("model")
        tangential = o.get("tangential")
        overscan = o.get("overscan")
        out.append(
            _new_distortion(
                _numbers(_req(o, "radial", path), f"{path}.radial", 1),
                None if tangential is None else _numbers(tangential, f"{path}.tangential", 1),
                None if overscan is None else _at_least(overscan, f"{path}.overscan", 1.0),
                DEFAULT_DISTORTION_MODEL if model is None else _str(model, f"{path}.model"),
            )
        )
    return tuple(out) or None


def _lens(v: Any) -> LensState:
    o = v if type(v) is dict else _obj(v, "lens")
    g = o.get
    fl, fd, fs, ts = g("pinholeFocalLength"), g("focusDistance"), g("fStop"), g("tStop")
    ep, enc, raw, dist = g("entrancePupilOffset"), g("encoders"), g("rawEncoders"), g("distortion")
    do, po, ef, custom = g("distortionOffset"), g("projectionOffset"), g("exposureFalloff"), g("custom")
    falloff = None
    if ef is not None:
        efo = ef if type(ef) is dict else _obj(ef, "lens.exposureFalloff")
        a1, a2, a3 = efo.get("a1"), efo.get("a2"), efo.get("a3")
        falloff = _new_falloff(
            a1
            if type(a1) is float and a1 - a1 == 0.0
            else _num(_req(efo, "a1", "lens.exposureFalloff"), "lens.exposureFalloff.a1"),
            a2
            if a2 is None or (type(a2) is float and a2 - a2 == 0.0)
            else _num(a2, "lens.exposureFalloff.a2"),
            a3
            if a3 is None or (type(a3) is float and a3 - a3 == 0.0)
            else _num(a3, "lens.exposureFalloff.a3"),
        )
    return _new_lens(
        None
        if fl is None
        else fl
        if type(fl) is float and 0.0 < fl < _INF
        else _pos(fl, "lens.pinholeFocalLength"),
        None
        if fd is None
        else fd
        if type(fd) is float and 0.0 < fd < _INF
        else _pos(fd, "lens.focusDistance"),
        None if fs is None else fs if type(fs) is float and 0.0 < fs < _INF else _pos(fs, "lens.fStop"),
        None if ts is None else ts if type(ts) is float and 0.0 < ts < _INF else _pos(ts, "lens.tStop"),
        ep if ep is None or (type(ep) is float and ep - ep == 0.0) else _num(ep, "lens.entrancePupilOffset"),
        None if enc is None else _encoders(enc),
        None if raw is None else _raw_encoders(raw),
        None if dist is None else _distortion(dist),
        None if do is None else _xy(do, "lens.distortionOffset"),
        None if po is None else _xy(po, "lens.projectionOffset"),
        falloff,
        None if custom is None else _floats(custom, 0) or _numbers(custom, "lens.custom"),
    )


def _timecode(v: Any) -> Timecode:
    if type(v) is dict:
        g = v.get
        h, m, s, f, sub, drop = (
            g("hours"),
            g("minutes"),
            g("seconds"),
            g("frames"),
            g("subFrame"),
            g("dropFrame"),
        )
        rate = _fast_rational(g("frameRate"))
        if (
            type(h) is int
            and type(m) is int
            and type(s) is int
            and type(f) is int
            and 0 <= h <= 23
            and 0 <= m <= 59
            and 0 <= s <= 59
            and 0 <= f <= 119
            and rate is not None
            and (sub is None or (type(sub) is int and 0 <= sub <= _U32))
            and (drop is None or type(drop) is bool)
        ):
            return _new_timecode(h, m, s, f, rate, 0 if sub is None else sub, False if drop is None else drop)
    p = "timing.timecode"
    o = _obj(v, p)
    sub, drop = o.get("subFrame"), o.get("dropFrame")
    return _new_timecode(
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
    return _new_ptp(
        _str(_req(o, "profile", p), f"{p}.profile"),
        _int(_req(o, "domain", p), f"{p}.domain", 0, 127),
        _str(_req(o, "leaderIdentity", p), f"{p}.leaderIdentity"),
        (
            _int(_req(pri, "priority1", f"{p}.leaderPriorities"), f"{p}.leaderPriorities.priority1", 0, 255),
            _int(_req(pri, "priority2", f"{p}.leaderPriorities"), f"{p}.leaderPriorities.priority2", 0, 255),
        ),
        _at_least(_req(o, "leaderAccuracy", p), f"{p}.leaderAccuracy", 0.0),
        _at_least(_req(o, "meanPathDelay", p), f"{p}.meanPathDelay", 0.0),
        _opt_str(o, "leaderTimeSource", p),
        None if vlan is None else _int(vlan, f"{p}.vlan", 0, _U32),
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
        offs = _new_offsets(
            _opt_num(oo, "translation", f"{p}.offsets"),
            _opt_num(oo, "rotation", f"{p}.offsets"),
            _opt_num(oo, "lensEncoders", f"{p}.offsets"),
        )
    return _new_sync(
        _bool(_req(o, "locked", p), f"{p}.locked"),
        source,
        None if freq is None else _rational(freq, f"{p}.frequency"),
        None if present is None else _bool(present, f"{p}.present"),
        offs,
        None if ptp is None else _ptp(ptp),
    )


def _timing(v: Any) -> Timing:
    o = v if type(v) is dict else _obj(v, "timing")
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
    return _new_timing(
        mode,
        None if st is None else _fast_timestamp_ns(st) or _timestamp_ns(st, "timing.sampleTimestamp"),
        None if rt is None else _fast_timestamp_ns(rt) or _timestamp_ns(rt, "timing.recordedTimestamp"),
        None if rate is None else _fast_rational(rate) or _rational(rate, "timing.sampleRate"),
        None
        if seq is None
        else seq
        if type(seq) is int and 0 <= seq <= _U32
        else _int(seq, "timing.sequenceNumber", 0, _U32),
        None if tc is None else _timecode(tc),
        None if sync is None else _synchronization(sync),
    )


def _tracker(v: Any) -> TrackerStatus:
    if type(v) is dict:
        notes, rec, slate, status = v.get("notes"), v.get("recording"), v.get("slate"), v.get("status")
        if (
            (notes is None or type(notes) is str)
            and (rec is None or type(rec) is bool)
            and (slate is None or type(slate) is str)
            and (status is None or type(status) is str)
        ):
            return _new_tracker(notes, rec, slate, status)
    o = _obj(v, "tracker")
    rec = o.get("recording")
    return _new_tracker(
        _opt_str(o, "notes", "tracker"),
        None if rec is None else _bool(rec, "tracker.recording"),
        _opt_str(o, "slate", "tracker"),
        _opt_str(o, "status", "tracker"),
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
            dimensions = _new_dimensions(
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
            resolution = _new_resolution(
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
        camera = _new_static_camera(
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
        static_lens = _new_static_lens(
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
        tracker = _new_static_tracker(
            make=_opt_str(t, "make", p),
            model=_opt_str(t, "model", p),
            serial_number=_opt_str(t, "serialNumber", p),
            firmware_version=_opt_str(t, "firmwareVersion", p),
        )
    return _new_static(
        duration=None if dur is None else _rational(dur, "static.duration"),
        camera=camera,
        lens=static_lens,
        tracker=tracker,
    )


def _protocol(v: Any) -> tuple[int, int, int]:
    if type(v) is dict and v.get("name") == PROTOCOL_OPENTRACKIO:
        version = v.get("version")
        if type(version) is list and len(version) == 3:
            a, b, c = version
            if (
                type(a) is int
                and type(b) is int
                and type(c) is int
                and 0 <= a <= 9
                and 0 <= b <= 9
                and 0 <= c <= 9
            ):
                return a, b, c
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
    if type(v) is dict:
        g = v.get
        e, n, u, lat0, lon0, h0 = g("E"), g("N"), g("U"), g("lat0"), g("lon0"), g("h0")
        if (
            type(e) is float
            and type(n) is float
            and type(u) is float
            and type(lat0) is float
            and type(lon0) is float
            and type(h0) is float
            and e - e == 0.0
            and n - n == 0.0
            and u - u == 0.0
            and lat0 - lat0 == 0.0
            and lon0 - lon0 == 0.0
            and h0 - h0 == 0.0
        ):
            return _new_global_stage(e, n, u, lat0, lon0, h0)
    o = _obj(v, "globalStage")
    p = "globalStage"
    return _new_global_stage(
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
    o = obj if type(obj) is dict else _obj(obj, "")
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
                _check_raw(key, value)
                raw[key] = value
    return _new_sample(
        PROTOCOL_OPENTRACKIO,
        None if proto is None else _protocol(proto),
        None if transforms is None else _compose(transforms),
        FRAME_CAMERA,
        transforms,
        None if lens is None else _lens(lens),
        None if timing is None else _timing(timing),
        None if tracker is None else _tracker(tracker),
        None if static is None else _static(static),
        None if gs is None else _global_stage(gs),
        None,  # camera_id: FreeD only
        None
        if num is None
        else num
        if type(num) is int and 0 <= num <= _U32
        else _int(num, "sourceNumber", 0, _U32),
        None if src is None else src if type(src) is str and _urn_match(src) else _urn(src, "sourceId"),
        None if sid is None else sid if type(sid) is str and _urn_match(sid) else _urn(sid, "sampleId"),
        None
        if rel is None
        else tuple(
            [
                r if type(r) is str and _urn_match(r) else _urn(r, "relatedSampleIds[]")
                for r in _list(rel, "relatedSampleIds")
            ]
        ),
        raw,
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
