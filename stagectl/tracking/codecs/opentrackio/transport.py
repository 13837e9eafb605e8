"""OpenTrackIO transport: the 16-byte ``OTrk`` header, Fletcher-16 (mod 255 or 256), datagram encoding and
decoding, segmentation of a payload and the :class:`Reassembler` that rebuilds one (header layout and rules in
:mod:`stagectl.tracking.codecs.opentrackio`). Pure functions plus one stateful-by-instance class; no sockets,
no clocks, and nothing here looks inside a payload."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, NoReturn

import numpy as np

from stagectl.core.sample import slots_twin
from stagectl.tracking.errors import (
    ChecksumError,
    DecodeError,
    EncodeError,
    SegmentError,
    TruncatedError,
)

OTRK_IDENTIFIER: Final = b"OTrk"
HEADER_LENGTH: Final = 16
ENCODING_JSON: Final = 0x01
ENCODING_CBOR: Final = 0x02
DEFAULT_PORT: Final = 55555
DEFAULT_MAX_SEGMENT_PAYLOAD: Final = 1484  # MTU 1500 - 16-byte header, as camdkit
MAX_SEGMENT_PAYLOAD: Final = 0x7FFF  # 15-bit length field
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1 << 20
_LAST_SEGMENT: Final = 0x8000
_HEADER: Final = struct.Struct(">4sBBHIHH")
_SMALL: Final = 96  # below this many bytes the pure-Python Fletcher sums beat numpy
_U32: Final = 0xFFFFFFFF


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


# Per-datagram builders: plain slot stores, like the builders of :mod:`stagectl.core.sample` (see there why).
_new = object.__new__
_OTrkHeaderSlots = slots_twin(OTrkHeader)
_OTrkDatagramSlots = slots_twin(OTrkDatagram)
_CompletePayloadSlots = slots_twin(CompletePayload)


def _new_header(
    encoding: int,
    sequence: int,
    segment_offset: int,
    last_segment: bool,
    payload_length: int,
    checksum: int,
    reserved: int = 0,
) -> OTrkHeader:
    o = _new(_OTrkHeaderSlots)
    o.encoding = encoding
    o.sequence = sequence
    o.segment_offset = segment_offset
    o.last_segment = last_segment
    o.payload_length = payload_length
    o.checksum = checksum
    o.reserved = reserved
    o.__class__ = OTrkHeader
    return o


def _new_datagram(header: OTrkHeader, payload: bytes, checksum_moduli: tuple[int, ...]) -> OTrkDatagram:
    o = _new(_OTrkDatagramSlots)
    o.header = header
    o.payload = payload
    o.checksum_moduli = checksum_moduli
    o.__class__ = OTrkDatagram
    return o


def _new_complete(encoding: int, sequence: int, data: bytes, checksum_moduli: tuple[int, ...]) -> CompletePayload:
    o = _new(_CompletePayloadSlots)
    o.encoding = encoding
    o.sequence = sequence
    o.data = data
    o.checksum_moduli = checksum_moduli
    o.__class__ = CompletePayload
    return o


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
        encoding=encoding,
        sequence=sequence,
        segment_offset=offset,
        last_segment=bool(flag_len & _LAST_SEGMENT),
        payload_length=length,
        checksum=checksum,
        reserved=reserved,
    )
    return _new_datagram(header=header, payload=payload, checksum_moduli=tuple(sorted(matched)))


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
            return _new_complete(
                encoding=h.encoding, sequence=h.sequence, data=d.payload, checksum_moduli=d.checksum_moduli
            )
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
        result = _new_complete(
            encoding=self._encoding,
            sequence=h.sequence,
            data=b"".join(parts),
            checksum_moduli=tuple(sorted(self._moduli)),
        )
        self._last_sequence, self._last_segments = h.sequence, self._segments
        self._clear()
        self.completed += 1
        return result
