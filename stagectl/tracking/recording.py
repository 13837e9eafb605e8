"""Take files: append-only recordings of raw tracking datagrams with their arrival stamps, and their replay.

A take keeps exactly what came off the wire (no decoding), so a recording can be replayed into any receiver,
or decoded later by a newer codec.

File layout (all integers little-endian)
----------------------------------------
Header::

    magic      8 bytes   b"STGTAKE\\x00"
    version    uint16    1
    flags      uint16    0
    json_len   uint32    length of the JSON text
    json       json_len bytes, UTF-8: {"created_ns": time.time_ns() at creation (clock "system"),
               "created_utc": ISO 8601, "clock": "monotonic", "stage": str | null,
               "sources": [{"id", "name", "protocol"}...], "meta": {...}}
    crc32      uint32    CRC-32 (zlib) of every header byte before it

Records, one per datagram (or source declaration, rendered camera, latch, end of take, pre-roll datagram)::

    length     uint32    bytes of the body
    crc32      uint32    CRC-32 of the body
    body:
      kind        uint8   1 = datagram, 2 = source declaration, 3 = rendered camera, 4 = end of take,
                          5 = latch of a rendered camera, 6 = pre-roll datagram
      protocol    uint8   0 unknown, 1 FreeD, 2 OpenTrackIO, 3 OSC (0 for kinds 3, 4 and 5)
      source_id   uint16  the source (kinds 1, 2, 6); the camera's index in the header's meta["cameras"]
                          (kinds 3, 5)
      arrival_ns  int64   receiver's time.monotonic_ns() at arrival (clock "monotonic"); kind 3: the instant
                          the frame was evaluated for (same clock); kind 4: when the take stopped; kind 5: when
                          the frame was latched (same clock)
      payload     the raw datagram bytes (kinds 1, 6), UTF-8 JSON {"id", "name", "protocol"} (kind 2), a
                  :data:`FRAME_LAYOUT` struct (kind 3), UTF-8 JSON (kind 4, :meth:`Recorder.end`) or a
                  :data:`LATCH_LAYOUT` struct (kind 5)

Kinds 3 to 6 are written by a take recorded inside ``stagectl run`` (:class:`LiveTake`): one kind-3 record
per camera per frame, the camera the stage rendered (``CameraState``), each preceded by its kind-5 record
(when the frame was latched, the newest sample the camera's timeline held then and the timeline settings in
effect: what a re-solve needs to see exactly what the loop saw); at the start, the datagrams each receiver got
in the seconds before the take (kind 6, :class:`PreRoll`: the samples the first frames were drawn from); one
kind-4 record when the take is stopped (end timecode, frame count). Readers of datagrams never see them
(:class:`TakeReader` yields kind 1 only and collects the others in ``frames``, ``preroll`` and ``end``); a
reader that predates them skips them as "a kind from a newer writer". The version stays 1: every take reads
as before.

A record is written with one ``write(2)`` of its complete bytes, so the only damage a crash, a ``kill -9`` or
a full disk leaves is a **torn tail**: the last record incomplete. A reader never raises for damaged records
and never yields one whose CRC does not match. When the record at the expected offset is not valid (length
out of range, body past the end of the file, CRC mismatch) it **resynchronises**: it scans forward, byte by
byte, for the next offset where a record validates -- a length of 12..:data:`MAX_BODY` bytes, a known kind,
a body that fits in the file and whose CRC matches -- and goes on from there. A corrupt length is never
followed: no read is larger than ``8 + MAX_BODY`` bytes, and the scan starts at the byte after the bad
record's start, whatever its length says.

* Nothing valid after the bad offset: a torn tail. :attr:`TakeReader.ignored_bytes` counts those bytes; it
  is normal after a crash (a damaged *last* record cannot be told from a torn one and counts the same).
* A valid record after it: the bytes in between are a **gap**, :class:`TakeGap` ``(offset, skipped,
  resumed_offset, resumed_record)`` in :attr:`TakeReader.gaps`; the records in a gap (at least one each) are
  lost. :attr:`TakeReader.skipped_bytes` totals them.

A file whose first 8 bytes are not the magic, or whose header (CRC valid) names another version, raises
:class:`TakeFormatError`. A header that fails its CRC (a bad byte in its length, JSON or CRC) is read as
damaged (:attr:`TakeHeader.damaged`) when valid records follow it -- they are found the same way -- and
raises when none do; a header cut short reads as an empty take. Resynchronisation changes nothing on disk
(still version 1): every take ever written reads the same way, an undamaged one exactly as before.

Durability (``Recorder`` flush and fsync policy)
------------------------------------------------
* ``flush_interval_ms=0`` (default): every record is handed to the kernel (``os.write``) as it is appended.
  A crash or ``SIGKILL`` of the recording process then loses nothing that was appended: the page cache
  belongs to the kernel.
* ``flush_interval_ms=N``: records are collected in memory and written together once the oldest is ``N`` ms
  old (checked on each append) and on :meth:`Recorder.flush` / :meth:`Recorder.close`; a process crash can
  lose up to ``N`` ms of data.
* ``fsync="close"`` (default): ``os.fsync`` once, on close. An OS crash or power loss can lose what the kernel
  had not yet written back (the reader then stops at the resulting torn tail).
  ``fsync="interval"``: also at most every ``fsync_interval_ms`` (on append; fsync can stall for milliseconds,
  so keep it off a latency-critical thread). ``fsync="record"``: after every write (slow; tests, paranoia).
  ``fsync="never"``: leave it to the OS.

Replay
------
:func:`replay` sends each datagram at ``start + (arrival_i - arrival_0) / speed``: absolute deadlines from one
start instant, so lateness never accumulates (no drift), through any ``send(bytes)`` callable -- e.g.
:func:`udp_sender`.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import math
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

__all__ = [
    "DAY_NS",
    "FRAME_LAYOUT",
    "KIND_DATAGRAM",
    "KIND_END",
    "KIND_FRAME",
    "KIND_LATCH",
    "KIND_PREROLL",
    "KIND_SOURCE",
    "LATCH_LAYOUT",
    "MAGIC",
    "MAX_BODY",
    "MAX_PAYLOAD",
    "NO_SAMPLE",
    "PROTOCOLS",
    "VERSION",
    "FrameRecord",
    "Latch",
    "LiveTake",
    "PreRoll",
    "Recorder",
    "ReplayStats",
    "Take",
    "TakeFormatError",
    "TakeGap",
    "TakeHeader",
    "TakeReader",
    "TakeRecord",
    "UdpSender",
    "clock_anchor",
    "load_take",
    "open_udp_receiver",
    "read_take",
    "replay",
    "udp_sender",
]

MAGIC: Final = b"STGTAKE\x00"
VERSION: Final = 1
KIND_DATAGRAM: Final = 1
KIND_SOURCE: Final = 2
KIND_FRAME: Final = 3
KIND_END: Final = 4
KIND_LATCH: Final = 5
KIND_PREROLL: Final = 6
#: the highest record kind this reader knows (resynchronisation only lands on known kinds)
_KIND_MAX: Final = KIND_PREROLL
#: protocol name <-> code in a record
PROTOCOLS: Final = {"unknown": 0, "freed": 1, "opentrackio": 2, "osc": 3}
_PROTOCOL_NAMES: Final = {v: k for k, v in PROTOCOLS.items()}
#: largest payload a record may carry (a UDP datagram is at most 65,507 bytes on IPv4); longer lengths mean a
#: corrupt length field.
MAX_PAYLOAD: Final = 65_535

_HEAD_FIXED: Final = struct.Struct("<8sHHI")  # magic, version, flags, json_len
_CRC: Final = struct.Struct("<I")
_REC_HEAD: Final = struct.Struct("<II")  # length, crc32
_BODY_HEAD: Final = struct.Struct("<BBHq")  # kind, protocol, source_id, arrival_ns
_MAX_JSON: Final = 1 << 20
#: the payload of a kind-3 record (a rendered camera), little-endian: frame (int64, the stage loop's frame
#: number), label (uint32, the frame's timecode as a frame count from 00:00:00:00 at the header's rate and
#: drop-frame mode), T_stage_camera (16 float64, row-major), focal length mm, principal point x / y mm, entrance
#: pupil offset m, zoom / focus / iris encoders (normalised 0..1), focus distance m (NaN: unknown)
FRAME_LAYOUT: Final = struct.Struct("<qI16d8d")
#: the payload of a kind-5 record (the latch of a rendered camera, written just before its kind-3 record),
#: little-endian: frame (int64), newest (int64: the newest sample's time on the timeline's clock when the frame
#: was evaluated, ns; :data:`NO_SAMPLE`: none), delay ns (int64), prediction bound ns (int64), query mode (uint8:
#: 0 interpolate, 1 nearest, 2 latest), clock (uint8: 0 arrival, 1 source, 2 dejittered), the take's source id
#: feeding the camera (uint16, 0xFFFF: not known), then One Euro smoothing as float64: position min cutoff Hz,
#: beta, derivative cutoff Hz, rotation min cutoff Hz, beta, derivative cutoff Hz (NaN: that filter off), reset
#: after ns (NaN: smoothing off)
LATCH_LAYOUT: Final = struct.Struct("<qqqqBBH7d")
#: ``newest`` of a latch whose timeline held no sample
NO_SAMPLE: Final = -(1 << 63)
_LATCH_MODES: Final = ("interpolate", "nearest", "latest")
_LATCH_CLOCKS: Final = ("arrival", "source", "dejittered")
#: largest body a record may have (its length field); anything longer is a corrupt length
MAX_BODY: Final = _BODY_HEAD.size + MAX_PAYLOAD
#: bytes a resynchronising reader scans per read
_SCAN_CHUNK: Final = 1 << 20


class TakeFormatError(ValueError):
    """The file is not a take (wrong magic, unsupported version, corrupt header)."""


@dataclass(frozen=True, slots=True)
class TakeHeader:
    """A take's header. ``created_ns``: ``time.time_ns()`` at creation (clock ``system``); ``sources`` maps
    source id -> ``(name, protocol)`` as declared in the header; ``meta``: free-form JSON values; ``size``:
    where the records start. ``damaged``: the header failed its CRC (or its length was corrupt) but valid
    records follow it: they are read, and the fields hold what could be salvaged (``created_ns`` 0, no
    sources, no meta when its JSON does not parse)."""

    version: int
    created_ns: int
    stage: str | None
    sources: dict[int, tuple[str, str]]
    meta: dict[str, Any]
    size: int  # bytes of the header in the file
    damaged: bool = False


@dataclass(frozen=True, slots=True)
class TakeRecord:
    """One recorded datagram: ``arrival_ns`` (clock ``monotonic`` of the recording machine), ``source_id`` and
    its ``source`` name, ``protocol`` (``"freed"``, ``"opentrackio"``, ``"osc"``, ``"unknown"``), the raw bytes,
    and ``offset``: where the record starts in the file."""

    arrival_ns: int
    source_id: int
    source: str
    protocol: str
    data: bytes
    offset: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class TakeGap:
    """Damaged bytes a reader skipped in the middle of a take: ``skipped`` bytes from file ``offset`` (where a
    record was due but did not validate) up to ``resumed_offset``, where the next valid record starts;
    ``resumed_record`` is the index of the first datagram read after the gap (``Take.records[resumed_record]``,
    counted from 0, or the number of datagrams read when none follows). The records in a gap are lost: at
    least one."""

    offset: int
    skipped: int
    resumed_offset: int
    resumed_record: int

    def __str__(self) -> str:
        return (f"skipped {self.skipped} bytes at offset {self.offset}, resumed at record {self.resumed_record} "
                f"(offset {self.resumed_offset})")


@dataclass(frozen=True, eq=False, slots=True)
class FrameRecord:
    """One rendered camera of a take recorded inside ``stagectl run`` (a kind-3 record): ``camera`` (its name,
    from the header's ``meta["cameras"]``; ``camera<i>`` when the header does not name it) and ``camera_index``,
    ``frame`` (the stage loop's frame number), ``label`` (the timecode as a frame count from 00:00:00:00 at
    the header's ``meta["rate"]``), ``query_ns`` (the instant the camera was evaluated for, clock
    ``monotonic``), ``T_stage_camera`` (4x4, stage metres), the lens values the frame was drawn with
    (``focal_mm``, ``principal_point_mm``, ``pupil_offset_m``) and the encoders and focus distance of the
    tracking answer (NaN: not known), ``offset`` in the file and ``latch``: how it was evaluated (its kind-5
    :class:`Latch`; None in a take written before kind 5, or when the latch was lost in a gap)."""

    camera: str
    camera_index: int
    frame: int
    label: int
    query_ns: int
    T_stage_camera: Any
    focal_mm: float
    principal_point_mm: tuple[float, float]
    pupil_offset_m: float
    zoom: float
    focus: float
    iris: float
    focus_distance_m: float
    offset: int = -1
    latch: Latch | None = None


@dataclass(frozen=True, slots=True)
class Latch:
    """How a rendered camera's frame was evaluated (a kind-5 record, :data:`LATCH_LAYOUT`; docs/takes.md): the
    frame was latched at ``latched_ns`` (clock ``monotonic``, the arrival stamps' clock) and evaluated from the
    samples its timeline held then, the newest of which was at ``newest_ns`` on the timeline's ``clock`` (None:
    none), with the tracking delay ``delay_ns``, the prediction bound ``max_prediction_ns``, the query ``mode``
    and ``smoothing`` (a :class:`~stagectl.tracking.timeline.Smoothing`, None: off) in effect; ``source_id``:
    the take's source that fed the camera (None: not known)."""

    frame: int
    latched_ns: int
    newest_ns: int | None
    delay_ns: int
    max_prediction_ns: int
    mode: str
    clock: str
    source_id: int | None
    smoothing: Any = None

    def pack(self) -> bytes:
        """The kind-5 payload."""
        sm = self.smoothing
        nan = math.nan

        def filt(p: Any) -> tuple[float, float, float]:
            return (nan, nan, nan) if p is None else (float(p.min_cutoff_hz), float(p.beta), float(p.d_cutoff_hz))

        vals = ((nan,) * 7 if sm is None else
                filt(sm.position) + filt(sm.rotation) + (float(sm.reset_after_ns),))
        return LATCH_LAYOUT.pack(int(self.frame), NO_SAMPLE if self.newest_ns is None else int(self.newest_ns),
                                 int(self.delay_ns), int(self.max_prediction_ns), _LATCH_MODES.index(self.mode),
                                 _LATCH_CLOCKS.index(self.clock), 0xFFFF if self.source_id is None else self.source_id,
                                 *vals)

    @classmethod
    def unpack(cls, latched_ns: int, payload: bytes) -> Latch | None:
        """The latch of a kind-5 payload (None: not one this reader knows)."""
        if len(payload) != LATCH_LAYOUT.size:
            return None
        frame, newest, delay, pred, mode, clock, sid, *v = LATCH_LAYOUT.unpack(payload)
        if mode >= len(_LATCH_MODES) or clock >= len(_LATCH_CLOCKS):
            return None
        smoothing = None
        if math.isfinite(v[6]):
            from stagectl.core.camera_settings import OneEuroParams, Smoothing

            def filt(a: float, b: float, c: float) -> Any:
                return OneEuroParams(a, b, c) if math.isfinite(a) else None

            try:
                smoothing = Smoothing(filt(*v[0:3]), filt(*v[3:6]), int(v[6]))
            except ValueError:
                return None
        return cls(frame, latched_ns, None if newest == NO_SAMPLE else newest, delay, pred, _LATCH_MODES[mode],
                   _LATCH_CLOCKS[clock], None if sid == 0xFFFF else sid, smoothing)

    @classmethod
    def of(cls, frame: int, latched_ns: int, timeline: Any, state: Any, source_id: int | None = None) -> Latch:
        """The latch of ``frame`` evaluated as ``state`` (a :class:`~stagectl.tracking.timeline.TimelineState`)
        from ``timeline`` (its settings now)."""
        age = getattr(state, "age_ns", None)
        newest = None if state is None or age is None else int(state.eval_ns) - int(age)
        return cls(frame, latched_ns, newest, int(timeline.delay_ns), int(timeline.max_prediction_ns),
                   str(timeline.mode), str(timeline.clock), source_id, timeline.smoothing)


def _protocol_code(protocol: str) -> int:
    try:
        return PROTOCOLS[protocol.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}") from None


# ================================================================================================ writing
class Recorder:
    """Append-only take writer (module docstring for the file layout and the durability policy).

    :param path: the take file; created, or truncated when ``overwrite`` (else an existing file is an error).
    :param stage: stage name stored in the header.
    :param sources: source names declared up front, ``{name: protocol}`` or ``[(name, protocol), ...]``; ids are
        assigned in order from 0. More can be declared later with :meth:`add_source`.
    :param meta: extra JSON-serialisable header values.
    :param flush_interval_ms: 0 writes every record at once; N collects records for up to N ms.
    :param fsync: ``"close"``, ``"interval"``, ``"record"`` or ``"never"``.
    :param fsync_interval_ms: period of ``fsync="interval"``.

    Thread-safe: appends from several threads are serialised by a short lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stage: str | None = None,
        sources: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        meta: dict[str, Any] | None = None,
        flush_interval_ms: float = 0.0,
        fsync: str = "close",
        fsync_interval_ms: float = 1000.0,
        overwrite: bool = False,
    ) -> None:
        if fsync not in ("close", "interval", "record", "never"):
            raise ValueError(f"fsync: expected close, interval, record or never, got {fsync!r}")
        if flush_interval_ms < 0:
            raise ValueError(f"flush_interval_ms: expected >= 0, got {flush_interval_ms}")
        self.path = Path(path)
        self._flush_ns = int(flush_interval_ms * 1e6)
        self._fsync = fsync
        self._fsync_ns = int(fsync_interval_ms * 1e6)
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._buf_since = 0
        self._last_sync = time.monotonic_ns()
        self._sources: dict[str, int] = {}
        self._source_protocols: dict[int, str] = {}
        self.records = 0
        self.bytes_written = 0
        items = list(sources.items()) if isinstance(sources, dict) else list(sources or [])
        declared = []
        for name, protocol in items:
            _protocol_code(protocol)
            sid = len(self._sources)
            self._sources[name] = sid
            self._source_protocols[sid] = protocol.lower()
            declared.append({"id": sid, "name": name, "protocol": protocol.lower()})
        created = time.time_ns()
        doc = {
            "created_ns": created,
            "created_utc": _dt.datetime.fromtimestamp(created / 1e9, _dt.UTC).isoformat(),
            "clock": "monotonic",
            "stage": stage,
            "sources": declared,
            "meta": dict(meta or {}),
        }
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        head = _HEAD_FIXED.pack(MAGIC, VERSION, 0, len(text)) + text
        head += _CRC.pack(zlib.crc32(head))
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            self._fd: int | None = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileExistsError:
            raise FileExistsError(f"{self.path}: already exists (pass overwrite=True to replace it)") from None
        self._write(head)
        self.bytes_written = len(head)
        if fsync == "record":
            os.fsync(self._fd)

    # ----------------------------------------------------------------------------------------- internals
    def _write(self, data: bytes | bytearray) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _maybe_sync(self, now: int) -> None:
        if self._fsync == "record" or (self._fsync == "interval" and now - self._last_sync >= self._fsync_ns):
            assert self._fd is not None
            os.fsync(self._fd)
            self._last_sync = now

    def _append_record(self, kind: int, protocol: int, source_id: int, arrival_ns: int, payload: bytes) -> None:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a record holds at most {MAX_PAYLOAD} bytes, got {len(payload)}")
        body = _BODY_HEAD.pack(kind, protocol, source_id, arrival_ns) + payload
        rec = _REC_HEAD.pack(len(body), zlib.crc32(body)) + body
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: the recorder is closed")
            now = time.monotonic_ns()
            if self._flush_ns <= 0:
                self._write(rec)
                self._maybe_sync(now)
            else:
                if not self._buf:
                    self._buf_since = now
                self._buf += rec
                if now - self._buf_since >= self._flush_ns:
                    self._write(self._buf)
                    self._buf.clear()
                    self._maybe_sync(now)
            self.bytes_written += len(rec)
            if kind == KIND_DATAGRAM:
                self.records += 1

    # ----------------------------------------------------------------------------------------- public
    def add_source(self, name: str, protocol: str) -> int:
        """Id of source ``name``, declaring it (a source record) the first time it is seen."""
        sid = self._sources.get(name)
        if sid is not None:
            return sid
        code = _protocol_code(protocol)
        sid = len(self._sources)
        if sid > 0xFFFF:
            raise ValueError("a take holds at most 65536 sources")
        self._sources[name] = sid
        self._source_protocols[sid] = protocol.lower()
        doc = json.dumps({"id": sid, "name": name, "protocol": protocol.lower()}).encode("utf-8")
        self._append_record(KIND_SOURCE, code, sid, time.monotonic_ns(), doc)
        return sid

    def append(self, arrival_ns: int, source: str | int, data: bytes | bytearray | memoryview,
               protocol: str | None = None) -> None:
        """Append one datagram received at ``arrival_ns`` (``time.monotonic_ns()``) from ``source`` (a name --
        declared on first use with ``protocol`` -- or an id already declared)."""
        if isinstance(source, str):
            sid = self._sources.get(source)
            if sid is None:
                if protocol is None:
                    raise ValueError(f"source {source!r} is new: give its protocol")
                sid = self.add_source(source, protocol)
        else:
            sid = int(source)
            if sid not in self._source_protocols:
                raise ValueError(f"source id {sid} was never declared")
        proto = self._source_protocols[sid] if protocol is None else protocol.lower()
        self._append_record(KIND_DATAGRAM, _protocol_code(proto), sid, int(arrival_ns), bytes(data))

    def append_preroll(self, arrival_ns: int, source: int, data: bytes | bytearray | memoryview) -> None:
        """Append one datagram that source id ``source`` (declared) received at ``arrival_ns``, before the take
        started (a kind-6 record: readers of datagrams do not see it; :attr:`TakeReader.preroll`)."""
        sid = int(source)
        if sid not in self._source_protocols:
            raise ValueError(f"source id {sid} was never declared")
        self._append_record(KIND_PREROLL, _protocol_code(self._source_protocols[sid]), sid, int(arrival_ns),
                            bytes(data))

    def append_latch(self, camera_index: int, latch: Latch) -> None:
        """Append how the next rendered camera of ``camera_index`` was evaluated (a kind-5 record, written just
        before its kind-3 record; :class:`Latch`)."""
        self._append_record(KIND_LATCH, 0, int(camera_index), int(latch.latched_ns), latch.pack())

    def append_frame(self, camera_index: int, query_ns: int, frame: int, label: int, T_stage_camera: Any,
                     focal_mm: float, principal_point_mm: tuple[float, float], pupil_offset_m: float,
                     zoom: float = math.nan, focus: float = math.nan, iris: float = math.nan,
                     focus_distance_m: float = math.nan) -> None:
        """Append the camera the stage rendered for ``frame`` (a kind-3 record; :data:`FRAME_LAYOUT`)."""
        T = [float(v) for row in T_stage_camera for v in row]
        if len(T) != 16:
            raise ValueError(f"T_stage_camera: expected 4x4, got {len(T)} values")
        payload = FRAME_LAYOUT.pack(int(frame), int(label) & 0xFFFFFFFF, *T, float(focal_mm),
                                    float(principal_point_mm[0]), float(principal_point_mm[1]),
                                    float(pupil_offset_m), float(zoom), float(focus), float(iris),
                                    float(focus_distance_m))
        self._append_record(KIND_FRAME, 0, int(camera_index), int(query_ns), payload)

    def end(self, doc: dict[str, Any], at_ns: int | None = None) -> None:
        """Append the end-of-take record (kind 4): JSON ``doc`` (what :class:`LiveTake` writes: the end
        timecode, frame count and how the take stopped). Readers find it in :attr:`TakeReader.end`."""
        payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._append_record(KIND_END, 0, 0, time.monotonic_ns() if at_ns is None else int(at_ns), payload)

    def flush(self) -> None:
        """Write buffered records to the kernel now (and fsync under ``fsync="interval"``/``"record"``)."""
        with self._lock:
            if self._fd is not None and self._buf:
                self._write(self._buf)
                self._buf.clear()
                self._maybe_sync(time.monotonic_ns())

    def close(self) -> None:
        """Flush, fsync (unless ``fsync="never"``) and close. Idempotent."""
        with self._lock:
            if self._fd is None:
                return
            try:
                if self._buf:
                    self._write(self._buf)
                    self._buf.clear()
                if self._fsync != "never":
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ================================================================================================ reading
def _body_at(f: BinaryIO, offset: int, file_size: int) -> bytes | None:
    """The body of the record at ``offset`` when it validates (length 12..MAX_BODY, inside the first
    ``file_size`` bytes, CRC); else None. Reads at most ``8 + MAX_BODY`` bytes; a valid record leaves the
    file at its end."""
    if offset + _REC_HEAD.size + _BODY_HEAD.size > file_size:
        return None
    f.seek(offset)
    head = f.read(_REC_HEAD.size)
    if len(head) < _REC_HEAD.size:
        return None
    length, crc = _REC_HEAD.unpack(head)
    if length < _BODY_HEAD.size or length > MAX_BODY or offset + _REC_HEAD.size + length > file_size:
        return None  # the file may grow while read: what came after the open is not looked at
    body = f.read(length)
    if len(body) < length or zlib.crc32(body) != crc:
        return None
    return body


def _resync(f: BinaryIO, start: int, file_size: int) -> tuple[int, bytes] | None:
    """The first offset from ``start`` on where a record of a known kind (1..6) validates, with its body; None when
    there is none before ``file_size``. Candidates are picked a chunk at a time (4 KiB, doubling up to
    ``_SCAN_CHUNK``) by their length field and kind byte; only those are read and CRC-checked."""
    import numpy as np

    pos = start
    size = 4096
    while pos + _REC_HEAD.size + _BODY_HEAD.size <= file_size:
        f.seek(pos)
        chunk = f.read(min(size, file_size - pos) + _REC_HEAD.size + 1)
        n = len(chunk) - _REC_HEAD.size  # offsets pos .. pos+n-1 have their length and kind byte in the chunk
        if n <= 0:
            return None
        # the length field at every byte offset: an unaligned little-endian uint32 view, no copy
        length = np.ndarray((n,), dtype="<u4", buffer=chunk, strides=(1,))
        kind = np.frombuffer(chunk, dtype=np.uint8, count=n, offset=_REC_HEAD.size)
        room = file_size - pos - _REC_HEAD.size - np.arange(n, dtype=np.int64)  # body bytes left in the file
        ok = ((length >= _BODY_HEAD.size) & (length <= MAX_BODY) & (length <= room)
              & (kind >= KIND_DATAGRAM) & (kind <= _KIND_MAX))
        for i in np.flatnonzero(ok).tolist():
            body = _body_at(f, pos + i, file_size)
            if body is not None:
                return pos + i, body
        pos += n
        size = min(2 * size, _SCAN_CHUNK)
    return None


def _header_fields(text: bytes) -> tuple[int, str | None, dict[int, tuple[str, str]], dict[str, Any]]:
    """``(created_ns, stage, sources, meta)`` from the header JSON; raises ValueError (or KeyError, TypeError)
    when it does not parse."""
    doc = json.loads(text.decode("utf-8"))
    if not isinstance(doc, dict):
        raise ValueError("the header JSON is not an object")
    sources = {int(s["id"]): (str(s["name"]), str(s["protocol"])) for s in doc.get("sources", [])}
    stage = doc.get("stage")
    meta = dict(doc.get("meta") or {})
    return int(doc.get("created_ns", 0)), None if stage is None else str(stage), sources, meta


def _parse_header(f: BinaryIO, file_size: int) -> TakeHeader | None:
    """The header, or None when the file ends inside it (a torn header: nothing valid follows). A header that
    fails its CRC but is followed by valid records comes back ``damaged``, with what could be salvaged.
    Raises TakeFormatError for a file that is not a take, a newer version, or a corrupt header with no valid
    record after it."""
    fixed = f.read(_HEAD_FIXED.size)
    if len(fixed) < _HEAD_FIXED.size:
        if MAGIC.startswith(fixed[: len(MAGIC)]):
            return None
        raise TakeFormatError(f"not a take file (magic {fixed[:8]!r}, expected {MAGIC!r})")
    magic, version, _flags, json_len = _HEAD_FIXED.unpack(fixed)
    if magic != MAGIC:
        raise TakeFormatError(f"not a take file (magic {magic!r}, expected {MAGIC!r})")
    problem = f"corrupt take header: {json_len}-byte JSON"
    text = b""
    if json_len <= _MAX_JSON:
        text = f.read(json_len)
        crc = f.read(_CRC.size)
        if len(text) == json_len and len(crc) == _CRC.size:
            if _CRC.unpack(crc)[0] == zlib.crc32(fixed + text):
                if version != VERSION:
                    raise TakeFormatError(f"unsupported take version {version} "
                                          f"(this stagectl reads version {VERSION})")
                try:
                    created, stage, sources, meta = _header_fields(text)
                except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
                    raise TakeFormatError(f"corrupt take header JSON: {exc}") from None
                return TakeHeader(VERSION, created, stage, sources, meta, _HEAD_FIXED.size + json_len + _CRC.size)
            problem = "corrupt take header (CRC mismatch)"
        else:
            problem = ""  # the file ends inside the header: torn, unless valid records follow (a corrupt length)
    # a damaged header (one bad byte in its length, JSON or CRC): the records after it may all be intact
    found = _resync(f, _HEAD_FIXED.size, file_size)
    if found is None:
        if not problem:
            return None
        raise TakeFormatError(problem)
    created, stage, sources, meta = 0, None, {}, {}
    try:
        created, stage, sources, meta = _header_fields(text)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass  # nothing salvaged: the sources the header declared read as "source<id>"
    return TakeHeader(VERSION, created, stage, sources, meta, found[0], damaged=True)


def clock_anchor(tries: int = 5) -> tuple[int, int]:
    """A ``(monotonic_ns, system_ns)`` pair read together: of ``tries`` readings of ``time.time_ns()`` between
    two of ``time.monotonic_ns()``, the one with the narrowest bracket, stamped at its middle. ``system -
    monotonic`` then converts an arrival stamp to UTC to within that bracket (a microsecond or so)."""
    best: tuple[int, int, int] | None = None
    for _ in range(max(1, tries)):
        m0 = time.monotonic_ns()
        s = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, (m0 + m1) // 2, s)
    assert best is not None
    return best[1], best[2]


#: ns in a day: timecode labels are the time of day (UTC)
DAY_NS: Final = 86_400 * 1_000_000_000


def _to_source(write: Callable[[int, int, bytes], None], sid: int) -> Callable[[int, bytes], None]:
    """A receiver tap ``(arrival_ns, data)`` writing through ``write(arrival_ns, sid, data)``."""
    return lambda arrival_ns, data: write(arrival_ns, sid, data)


class PreRoll:
    """A receiver's ``tap`` for a whole run (``stagectl run`` puts one on every receiver): it keeps the
    datagrams of the last ``seconds`` (at most ``limit`` of them), so that a take started now also holds the
    samples its first frames are drawn from (kind 6, written by :class:`LiveTake`), and hands every datagram to
    the take attached, if any. Attaching (the pre-roll written, then the live datagrams) and detaching happen
    under the same short lock as each datagram, so none is lost or written twice."""

    def __init__(self, seconds: float = 2.0, limit: int = 2048) -> None:
        self.window_ns = int(seconds * 1e9)
        self._ring: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=max(1, int(limit)))
        self._lock = threading.Lock()
        self._to: Callable[[int, bytes], None] | None = None

    def __call__(self, arrival_ns: int, data: bytes) -> None:
        with self._lock:
            ring = self._ring
            ring.append((arrival_ns, data))
            oldest = arrival_ns - self.window_ns
            while ring[0][0] < oldest:
                ring.popleft()
            to = self._to
            if to is not None:
                to(arrival_ns, data)

    def attach(self, before: Callable[[int, bytes], None], after: Callable[[int, bytes], None]) -> None:
        """``before(arrival_ns, data)`` for every datagram kept (oldest first), then ``after`` for every one
        that arrives from now on."""
        with self._lock:
            for a, d in self._ring:
                before(a, d)
            self._to = after

    def detach(self, after: Callable[[int, bytes], None] | None = None) -> None:
        """Stop handing datagrams on (only when ``after`` is still the one attached, if given)."""
        with self._lock:
            if after is None or self._to is after:
                self._to = None


class LiveTake:
    """A take recorded from running receivers (:class:`stagectl.tracking.receiver.Receiver`): every datagram
    each one gets, raw, with its arrival stamp, through the receiver's ``tap`` (its receive thread); with
    ``rate``, also the camera the stage rendered at every frame (:meth:`frame`, kind-3 records) and, at
    :meth:`finish`, the end-of-take record (kind 4). ``stop()`` detaches the taps and closes the file (fsync); a
    crash keeps everything appended (``Recorder`` policy).

    :param receivers: the receivers to record (each declared as a source under its name and protocol).
    :param path: the take file (an existing file is an error unless ``overwrite``).
    :param meta: header values (docs/takes.md, "Header"); ``rate``, ``drop_frame``, ``cameras``,
        ``clock_anchor`` and ``start_timecode`` are added here.
    :param rate: the stage's frame rate (a :class:`~stagectl.core.timebase.FrameRate`); None: no frames.
    :param drop_frame: the labels are drop-frame (29.97 / 59.94 only).
    :param cameras: the stage's camera names, in order (kind-3 records name them by index).
    :param first: ``(frame, query_ns)`` of the first frame the take records (the frame being started, its
        instant on the monotonic clock): the start timecode is that frame's label. None: the label of now.
    """

    def __init__(self, path: str | os.PathLike[str], receivers: Iterable[Any], *, stage: str | None = None,
                 overwrite: bool = False, meta: dict[str, Any] | None = None, rate: Any = None,
                 drop_frame: bool = False, cameras: Iterable[str] = (),
                 first: tuple[int, int] | None = None) -> None:
        self.receivers = list(receivers)
        self.rate = rate
        self.drop_frame = bool(drop_frame)
        self.cameras = list(cameras)
        self._index = {name: i for i, name in enumerate(self.cameras)}
        mono, system = clock_anchor()
        self.offset_ns = system - mono  # monotonic -> system (UTC)
        self.first_frame: int | None = None
        self.last_frame: int | None = None
        self.origin_label = 0
        self.frames = 0
        self.frame_errors = 0
        meta = dict(meta or {})
        meta["clock_anchor"] = {"monotonic_ns": mono, "system_ns": system}
        if rate is not None:
            from stagectl.core.timebase import Timecode

            k0, t0 = first if first is not None else (None, mono)
            self.origin_label = self._label_at(t0)
            self.first_frame = k0
            meta["rate"] = f"{rate.num}/{rate.den}"
            meta["drop_frame"] = self.drop_frame
            meta["start_timecode"] = str(Timecode.from_frame(self.origin_label, rate, self.drop_frame))
            meta["cameras"] = [{"name": n} if not isinstance(n, dict) else n for n in meta.get("cameras") or
                               self.cameras]
        self.recorder = Recorder(path, stage=stage, overwrite=overwrite, meta=meta,
                                 sources=[(r.name, r.protocol) for r in self.receivers])
        self.path = self.recorder.path
        self.meta = meta
        self.started_ns = time.monotonic_ns()
        #: source name -> its id in the take
        self.source_ids: dict[str, int] = {}
        self._taps: list[tuple[Any, PreRoll | None, Callable[[int, bytes], None]]] = []
        for r in self.receivers:
            sid = self.source_ids[r.name] = self.recorder.add_source(r.name, r.protocol)
            live = _to_source(self.recorder.append, sid)
            pre = getattr(r, "tap", None)
            if isinstance(pre, PreRoll):  # the datagrams before the take, then every one from now on
                pre.attach(_to_source(self.recorder.append_preroll, sid), live)
                self._taps.append((r, pre, live))
            else:
                r.tap = live
                self._taps.append((r, None, live))

    def _label_at(self, mono_ns: int) -> int:
        """The frame count from 00:00:00:00 of the frame nearest the monotonic instant ``mono_ns``, as a time
        of day (UTC) at the take's rate."""
        tod = (mono_ns + self.offset_ns) % DAY_NS
        return self.rate.frame_at_ns(tod + self.rate.period_ns // 2)

    def label(self, frame: int) -> int:
        """The timecode label (a frame count) of stage frame ``frame``: the first frame's label plus the frames
        since it."""
        return self.origin_label + (frame - (self.first_frame if self.first_frame is not None else frame))

    def timecode(self, frame: int) -> Any:
        from stagectl.core.timebase import Timecode

        return Timecode.from_frame(self.label(frame), self.rate, self.drop_frame)

    def frame(self, frame: int, query_ns: int, states: Iterable[Any], rigs: Any = None,
              latched_ns: int | None = None) -> None:
        """Record the cameras the stage renders for ``frame`` (evaluated at ``query_ns``, monotonic): each
        :class:`~stagectl.core.camera.CameraState` in ``states``, with the encoders and focus distance of
        ``rigs[name].state`` (the tracking answer) when given; with ``rigs`` and ``latched_ns`` (when the frame
        was latched, monotonic), each preceded by its :class:`Latch` (kind 5: the newest sample of the rig's
        timeline in that answer and the timeline's settings). Never raises for a write error (counted in
        ``frame_errors``): the frame loop goes on."""
        if self.rate is None:
            return
        if self.first_frame is None:
            self.first_frame = frame
            self.origin_label = self._label_at(query_ns)
        label = self.label(frame)
        nan = math.nan
        try:
            for s in states:
                i = self._index.get(s.name)
                if i is None:
                    continue
                rig = rigs.get(s.name) if rigs is not None else None
                st = getattr(rig, "state", None)
                if latched_ns is not None and rig is not None and st is not None:
                    src = getattr(getattr(rig, "source", None), "name", None)
                    self.recorder.append_latch(i, Latch.of(frame, latched_ns, rig.timeline, st,
                                                           self.source_ids.get(src)))
                lv = s.lens
                self.recorder.append_frame(
                    i, query_ns, frame, label, s.T_stage_camera, lv.focal_mm, lv.principal_point_mm,
                    lv.pupil_offset_m, nan if lv.zoom is None else lv.zoom, nan if lv.focus is None else lv.focus,
                    st.iris if st is not None else nan, st.focus_distance_m if st is not None else nan)
        except (OSError, ValueError):
            self.frame_errors += 1
            return
        self.frames += 1
        self.last_frame = frame

    def summary(self) -> dict[str, Any]:
        """``{"path", "records", "bytes", "seconds", "frames", "timecode_in", "timecode_out"}`` (timecodes as
        ``HH:MM:SS:FF``, ``timecode_out`` the last frame's, inclusive; None before the first frame) and the
        ``slate`` of the header."""
        out: dict[str, Any] = {"path": str(self.path), "records": self.recorder.records,
                               "bytes": self.recorder.bytes_written,
                               "seconds": round((time.monotonic_ns() - self.started_ns) / 1e9, 3),
                               "frames": self.frames, "timecode_in": None, "timecode_out": None}
        if self.rate is not None and self.last_frame is not None:
            out["timecode_in"] = str(self.timecode(self.first_frame))
            out["timecode_out"] = str(self.timecode(self.last_frame))
        if "slate" in self.meta:
            out["slate"] = self.meta["slate"]
        return out

    def detach(self) -> None:
        """Stop appending datagrams (the receivers' taps are removed, or their :class:`PreRoll` let go)."""
        for r, pre, live in self._taps:
            if pre is not None:
                pre.detach(live)
            else:
                r.tap = None

    def finish(self, how: str = "stop") -> dict[str, Any]:
        """Detach, append the end-of-take record (kind 4: the :meth:`summary` without ``path`` and ``bytes``,
        plus ``first_frame`` / ``last_frame`` and ``how`` it stopped) and return the summary. The file is not
        closed: :meth:`close` (fsync) may run on another thread."""
        self.detach()
        out = self.summary()
        doc = {k: v for k, v in out.items() if k not in ("path", "bytes", "slate")}
        doc.update({"first_frame": self.first_frame, "last_frame": self.last_frame, "how": how,
                    "stopped_utc": _dt.datetime.now(_dt.UTC).isoformat()})
        try:
            self.recorder.end(doc)
        except (OSError, ValueError):
            pass  # the frames and datagrams are kept; a reader derives the end from them
        return out

    def close(self) -> None:
        self.recorder.close()

    def stop(self) -> dict[str, Any]:
        """:meth:`finish` and close the file; returns ``{"path", "records", "bytes", "seconds", ...}``."""
        out = self.finish()
        self.recorder.close()
        return out


class TakeReader:
    """Iterator over a take's datagram records (:class:`TakeRecord`), oldest first.

    ``header`` is None for a file cut inside its header (``header.damaged`` when it failed its CRC but valid
    records follow). Source declarations are applied, not yielded. Damaged records are never yielded: the
    reader resynchronises on the next valid record (module docstring). During and after iteration:

    * ``records``: datagram records read;
    * ``good_bytes``: the end of the last valid record (the header's end before any);
    * ``ignored_bytes``: bytes after it (0 for a cleanly closed take; after a crash, the torn tail) and
      ``torn``: whether there are any;
    * ``gaps``: the :class:`TakeGap` list of damaged bytes skipped between valid records (records lost),
      ``skipped_bytes`` their total;
    * ``damaged``: gaps were skipped or the header is damaged (``header.damaged``);
    * ``frames``: the rendered cameras (kind-3 :class:`FrameRecord` records, each with its kind-5
      :class:`Latch` when the take has them) read so far, in file order, ``preroll``: the datagrams received
      before the take started (kind 6, :class:`TakeRecord`), and ``end``: the end-of-take record's JSON (kind 4;
      None until read, and for a take that never stopped cleanly: a crash, ``kill -9``). Read them after
      iterating to the end (:func:`load_take` does).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._f: BinaryIO = open(self.path, "rb")
        try:
            self.file_size = os.fstat(self._f.fileno()).st_size
            self.header = _parse_header(self._f, self.file_size)
        except BaseException:
            self._f.close()
            raise
        self.sources: dict[int, tuple[str, str]] = dict(self.header.sources) if self.header else {}
        self.records = 0
        self.good_bytes = self.header.size if self.header else 0
        self.ignored_bytes = self.file_size - self.good_bytes
        self.gaps: list[TakeGap] = []
        self.skipped_bytes = 0
        self.frames: list[FrameRecord] = []
        self.preroll: list[TakeRecord] = []
        self.end: dict[str, Any] | None = None
        self._latches: dict[int, Latch] = {}  # camera index -> the latch read for its next frame record
        cams = self.header.meta.get("cameras") if self.header else None
        self._cameras = [str(c.get("name", "")) if isinstance(c, dict) else str(c)
                         for c in (cams if isinstance(cams, list) else [])]
        self._pos = self.good_bytes  # where the next record is due
        self._at = self._f.tell() if self.header else -1  # where the file is, when known
        self._done = self.header is None
        if self._done:
            self._f.close()

    def _frame(self, index: int, query_ns: int, payload: bytes, offset: int) -> None:
        if len(payload) != FRAME_LAYOUT.size:
            return  # a CRC-valid record of another layout: not ours to read
        v = FRAME_LAYOUT.unpack(payload)
        name = self._cameras[index] if index < len(self._cameras) and self._cameras[index] else f"camera{index}"
        T = [list(v[2 + 4 * r: 6 + 4 * r]) for r in range(4)]
        latch = self._latches.pop(index, None)
        if latch is not None and latch.frame != v[0]:
            latch = None  # the latch of another frame (its own frame record lost in a gap)
        self.frames.append(FrameRecord(name, index, v[0], v[1], query_ns, T, v[18], (v[19], v[20]), v[21],
                                       v[22], v[23], v[24], v[25], offset, latch))

    @property
    def torn(self) -> bool:
        """True when bytes after the last valid record were ignored (a torn tail)."""
        return self.ignored_bytes > 0

    @property
    def damaged(self) -> bool:
        """True when damaged bytes between valid records were skipped (records lost) or the header is damaged."""
        return bool(self.gaps) or (self.header is not None and self.header.damaged)

    def __iter__(self) -> Iterator[TakeRecord]:
        return self

    def __next__(self) -> TakeRecord:
        f = self._f
        size = self.file_size
        while not self._done:
            offset = self._pos
            if offset >= size:
                break
            body = None
            if offset == self._at:  # the usual case, inline: the next record where the last one ended
                head = f.read(_REC_HEAD.size)
                if len(head) == _REC_HEAD.size:
                    length, crc = _REC_HEAD.unpack(head)
                    if _BODY_HEAD.size <= length <= MAX_BODY and offset + _REC_HEAD.size + length <= size:
                        body = f.read(length)
                        if len(body) < length or zlib.crc32(body) != crc:
                            body = None
            else:
                body = _body_at(f, offset, size)
            if body is None:
                found = _resync(f, offset + 1, size)
                if found is None:
                    break  # nothing valid after it: a torn tail, counted in ignored_bytes
                resumed, body = found
                gap = TakeGap(offset, resumed - offset, resumed, self.records)
                self.gaps.append(gap)
                self.skipped_bytes += gap.skipped
                offset = resumed
            kind, proto, sid, arrival = _BODY_HEAD.unpack_from(body, 0)
            self._pos = self._at = self.good_bytes = offset + _REC_HEAD.size + len(body)
            self.ignored_bytes = size - self.good_bytes
            payload = body[_BODY_HEAD.size:]
            if kind == KIND_SOURCE:
                try:
                    doc = json.loads(payload.decode("utf-8"))
                    self.sources[int(doc["id"])] = (str(doc["name"]), str(doc["protocol"]))
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
                    pass  # a CRC-valid but unreadable declaration: the datagrams still read, unnamed
                continue
            if kind == KIND_FRAME:
                self._frame(sid, arrival, payload, offset)
                continue
            if kind == KIND_LATCH:
                latch = Latch.unpack(arrival, payload)
                if latch is not None:
                    self._latches[sid] = latch
                continue
            if kind == KIND_PREROLL:
                name = self.sources.get(sid, (f"source{sid}", ""))[0]
                self.preroll.append(TakeRecord(arrival, sid, name, _PROTOCOL_NAMES.get(proto, f"unknown:{proto}"),
                                               payload, offset))
                continue
            if kind == KIND_END:
                try:
                    doc = json.loads(payload.decode("utf-8"))
                    self.end = doc if isinstance(doc, dict) else None
                except (UnicodeDecodeError, json.JSONDecodeError):
                    pass
                continue
            if kind != KIND_DATAGRAM:
                continue  # a record kind from a newer writer: skip it
            self.records += 1
            name = self.sources.get(sid, (f"source{sid}", ""))[0]
            return TakeRecord(arrival, sid, name, _PROTOCOL_NAMES.get(proto, f"unknown:{proto}"), payload, offset)
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Stop reading and close the file (``ignored_bytes`` then counts everything not read)."""
        if not self._done:
            self._done = True
        self._f.close()

    def __enter__(self) -> TakeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_take(path: str | os.PathLike[str]) -> TakeReader:
    """Open a take for reading: iterate the result for its records. It never raises for damaged records: it
    skips them (``gaps``, ``skipped_bytes``) and stops at a torn tail (``ignored_bytes``). Raises
    :class:`TakeFormatError` for a file that is not a take."""
    return TakeReader(path)


@dataclass(frozen=True, slots=True)
class Take:
    """A whole take in memory: ``header`` (None when the file was cut inside it), ``records`` in file order,
    ``ignored_bytes`` of torn tail (from file offset ``good_bytes``, the end of the last valid record), the
    final ``sources`` map (id -> (name, protocol)) and the ``gaps`` of damaged bytes skipped between valid
    records (:class:`TakeGap`; records in them are lost); ``frames`` (the rendered cameras, kind 3) and
    ``end`` (the end-of-take JSON, kind 4, or None) and ``preroll`` (the datagrams received before it started,
    kind 6) of a take recorded inside ``stagectl run``."""

    path: Path
    header: TakeHeader | None
    records: tuple[TakeRecord, ...]
    ignored_bytes: int
    sources: dict[int, tuple[str, str]]
    gaps: tuple[TakeGap, ...] = ()
    good_bytes: int = 0
    frames: tuple[FrameRecord, ...] = ()
    end: dict[str, Any] | None = None
    preroll: tuple[TakeRecord, ...] = ()

    @property
    def skipped_bytes(self) -> int:
        """Damaged bytes skipped between valid records, all gaps together."""
        return sum(g.skipped for g in self.gaps)

    @property
    def damaged(self) -> bool:
        """True when the take is damaged beyond a torn tail: records lost in gaps, or a damaged header."""
        return bool(self.gaps) or (self.header is not None and self.header.damaged)

    @property
    def duration_ns(self) -> int:
        """Arrival of the last record minus the first (0 for fewer than two)."""
        return self.records[-1].arrival_ns - self.records[0].arrival_ns if len(self.records) > 1 else 0


def load_take(path: str | os.PathLike[str]) -> Take:
    """Read a whole take (see :func:`read_take`)."""
    with read_take(path) as reader:
        records = tuple(reader)
        return Take(reader.path, reader.header, records, reader.ignored_bytes, dict(reader.sources),
                    tuple(reader.gaps), reader.good_bytes, tuple(reader.frames), reader.end, tuple(reader.preroll))


# ================================================================================================ replay
@dataclass(frozen=True, slots=True)
class ReplayStats:
    """What :func:`replay` did: datagrams ``sent``, ``send_errors`` (``OSError`` from ``send``, counted and
    skipped), wall ``duration_ns``, and lateness after each deadline (``late_mean_ns``, ``late_max_ns``)."""

    sent: int
    send_errors: int
    duration_ns: int
    late_mean_ns: float
    late_max_ns: int


def replay(
    take: Take | Iterable[TakeRecord] | str | os.PathLike[str],
    send: Callable[[bytes], object],
    speed: float = 1.0,
    *,
    spin_ns: int = 200_000,
    stop: threading.Event | None = None,
    lead_ns: int = 2_000_000,
) -> ReplayStats:
    """Send every datagram of ``take`` through ``send(data)`` with its original inter-arrival timing.

    Record ``i`` goes out at ``start + (arrival_i - arrival_0) / speed`` (``start`` = now + ``lead_ns``), an
    absolute deadline on ``time.monotonic_ns``, so a late send never delays the ones after it. Waiting sleeps
    until ``spin_ns`` before the deadline and spins the rest with ``time.sleep(0)``, which releases the GIL
    every turn (sub-0.1 ms accuracy at the cost of a little CPU; ``spin_ns=0`` only sleeps). ``stop`` ends the replay early. Returns :class:`ReplayStats`.
    """
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if isinstance(take, (str, os.PathLike)):
        take = load_take(take)
    records = take.records if isinstance(take, Take) else take
    clock = time.monotonic_ns
    sent = errors = 0
    late_sum = 0
    late_max = 0
    start = first = None
    t_begin = clock()
    for rec in records:
        if stop is not None and stop.is_set():
            break
        if first is None:
            first = rec.arrival_ns
            start = clock() + lead_ns
        deadline = start + round((rec.arrival_ns - first) / speed)
        while True:
            now = clock()
            remaining = deadline - now
            if remaining <= 0:
                break
            if remaining > spin_ns:
                wait_s = (remaining - spin_ns) / 1e9
                if stop is None:
                    time.sleep(wait_s)
                elif stop.wait(min(wait_s, 0.1)):
                    break
            else:
                time.sleep(0)  # spin, but release the GIL each turn so other threads are not starved
        if stop is not None and stop.is_set():
            break
        try:
            send(rec.data)
            sent += 1
        except OSError:
            errors += 1
        late = now - deadline
        late_sum += late
        late_max = max(late_max, late)
    n = sent + errors
    return ReplayStats(sent, errors, clock() - t_begin, late_sum / n if n else 0.0, late_max)


# ================================================================================================ UDP
class UdpSender:
    """A callable that sends each ``bytes`` as one UDP datagram to ``(host, port)``. Multicast destinations
    get ``IP_MULTICAST_TTL = ttl`` and loopback on. Close it (or use ``with``) when done."""

    def __init__(self, host: str, port: int, *, ttl: int = 1) -> None:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve {host!r}: {exc}") from None
        self.address = infos[0][4]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first_octet = int(self.address[0].split(".")[0])
        if 224 <= first_octet <= 239:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        self._sendto = self.sock.sendto

    def __call__(self, data: bytes) -> int:
        return self._sendto(data, self.address)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def udp_sender(host: str, port: int, *, ttl: int = 1) -> UdpSender:
    """A ``send(data)`` callable for :func:`replay` that sends UDP datagrams to ``host:port``."""
    return UdpSender(host, port, ttl=ttl)


def open_udp_receiver(
    port: int,
    bind: str = "0.0.0.0",
    *,
    group: str | None = None,
    share: bool = False,
    rcvbuf: int = 4 << 20,
    timeout_s: float | None = 0.2,
) -> socket.socket:
    """A bound UDP socket for recording tracking datagrams (plain socket code, no receiver machinery).

    Opened like every tracking port (:func:`stagectl.tracking.receiver.open_tracking_socket`): exclusive, so a
    recorder never silently takes a running stage's datagrams; ``share`` joins a multicast group that every
    program on it shares on purpose. ``timeout_s`` makes ``recv`` calls return periodically so a caller can
    check its stop conditions. Raises ``OSError`` when the bind fails (``bind_failure`` says why in words).
    """
    from stagectl.tracking.receiver import open_tracking_socket

    sock = open_tracking_socket(port, bind, group=group, share=share, rcvbuf=rcvbuf)
    sock.settimeout(timeout_s)
    return sock
