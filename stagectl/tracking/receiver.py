"""UDP receivers for tracking sources: FreeD, OpenTrackIO and OSC, unicast or multicast.

One :class:`Receiver` per tracking source. Each owns one UDP socket and **one daemon thread** that blocks in
``select`` on the socket and on one end of a ``socketpair`` used only to wake it for shutdown. One thread per
source rather than one selector thread for all, because:

* a source's arrival stamps never wait behind another source's decoding or sink (a large OpenTrackIO CBOR
  payload or a slow timeline of camera B cannot delay the stamp of camera A's FreeD packet by a whole decode);
* a receiver starts, stops and fails on its own (a bind error or a misbehaving sink concerns one source);
* a stage has a handful of sources, so a handful of mostly-sleeping threads cost nothing. Under the GIL the
  threads do not decode in parallel, but they never queue behind each other in ``recv``.

The receive path (``docs/reference/STYLE.md`` practice 4):

1. ``recvfrom`` on a non-blocking socket, then **immediately** ``time.monotonic_ns()`` -- the arrival stamp
   (clock ``monotonic``, integer ns), taken before any parsing. All datagrams already queued are drained, each
   stamped as it is read.
2. The codec decodes it (FreeD with the source's encoder profile; OpenTrackIO through a per-sender
   :class:`~stagectl.tracking.codecs.opentrackio.Reassembler`; OSC ``/stagectl/camera/<name>/...``). A bad
   packet is counted by reason (``checksum``, ``truncated``, ``field``, ``other``) and dropped, never raised
   into the caller; it is logged through a throttled logger (``stagectl.tracking.receiver``, at most one
   record per second per source, with the number of records suppressed) whose clock is the arrival stamp.
3. Filtering: FreeD camera ID (``0xFF`` and the configured ID; all IDs when none is configured), OpenTrackIO
   source number (0 and 201-255 always dropped, as the transport section of the specification says; other
   numbers than the configured one dropped; a sample without ``sourceNumber`` is accepted), OSC camera name
   (one of the configured names; all when none). Dropped samples are counted as ``other_source``.
4. Sequence tracking: OpenTrackIO header sequence numbers (uint16, wrapping), FreeD frame counters where the
   encoder profile defines one (Sony, Z-Cam: 4 bits), OSC ``/sequence`` (31 bits). A step of ``d`` counts
   ``d - 1`` gaps when ``d`` is below half the counter range, otherwise one ``out_of_order``; the counter
   resynchronises on every sample, so a sender restart costs one count, not a stuck stream. A datagram
   byte-identical to the previous one with the same sequence value is a ``duplicate`` and is dropped (for
   OpenTrackIO the reassembler recognises repeats). FreeD without a frame counter has no sequence at all:
   identical FreeD packets are normal for a camera at rest and are delivered.
5. ``sink(arrival_ns, sample)`` is called on the receive thread (the per-camera timeline's ``push``). An
   exception from the sink is counted (``sink_errors``) and logged, and reception goes on.

Statistics (:meth:`Receiver.stats`) are read without locks: the receive thread brackets each update with a
version counter (a *seqlock*: odd while writing); a reader copies the counters and retries when the version
moved, so the receive thread never waits for a reader. Getters take ``now_ns`` (``time.monotonic_ns()``, clock
``monotonic``) from the caller and never read a clock themselves.

Staleness: :meth:`Receiver.state` is ``"waiting"`` before the first accepted sample, ``"stale"`` once no
accepted sample arrived for ``stale_after_ms``, ``"lost"`` once none arrived for ``lost_after_ms`` (default the
larger of 2 s and four times ``stale_after_ms``), ``"live"`` otherwise; it comes back by itself when samples
do. The last sample is kept (:meth:`Receiver.last`; the timeline holds its own copy). While a source is not
live, :meth:`Receiver.diagnosis` (and ``ReceiverStats.diagnosis``) says what arrives instead: no packets at all,
packets from other cameras / source numbers / names only (the filter's reason), bad packets (reason and
decoder message), or packets that carry no complete sample.

Shutdown: :meth:`Receiver.close` wakes the thread through the socketpair and returns within 200 ms even when
the thread is blocked in ``select``; a sink that blocks longer leaves the daemon thread to finish on its own.

Ports are exclusive. A unicast socket is bound **without** ``SO_REUSEADDR`` / ``SO_REUSEPORT`` (and with
``SO_EXCLUSIVEADDRUSE`` on Windows): with them, Linux lets a second program bind the same port, and from then
on the kernel hands every unicast datagram to one of the two sockets only -- the running stage would go stale
without a word. Without them the second bind fails, in whichever program comes second, and :meth:`Receiver.start`
raises :class:`TransportError` "port 40000 is in use by another process (pid 1234: stagectl listen ...)"
(the holder is named when ``/proc`` shows it, Linux).

Multicast: the socket binds to the **group** address (so it receives that group's datagrams only, on Linux and
macOS) and joins the group with ``IP_ADD_MEMBERSHIP`` on the interface whose address is ``bind`` (``0.0.0.0``:
the kernel's choice). A multicast datagram is delivered to *every* socket bound to its group and port, so
sharing a group loses nothing -- but it is still never silent: by default a multicast socket is exclusive too
(another socket on the same group and port, or on the wildcard address and that port, makes ``start`` fail).
With ``share=True`` (stage file ``share_group: true``, ``stagectl listen --share``) it sets ``SO_REUSEADDR``
and ``SO_REUSEPORT`` so that it can share the group with other sockets that say the same; the kernel refuses
a share with any socket that did not ask for it, and :meth:`Receiver.start` logs how many other local sockets
hold the group when it can see them (``/proc/net/udp``). Different groups on one port never conflict. Default
ports: FreeD 40000, OpenTrackIO 55555 (group ``239.135.1.<source number>``, OpenTrackIO 1.0.1, see
:func:`opentrackio_group`), OSC 9000.
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import logging
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Self

from stagectl.core.errors import StageError
from stagectl.core.sample import TrackingSample
from stagectl.tracking.codecs.freed import decode_freed_sample
from stagectl.tracking.codecs.opentrackio import Reassembler, decode_datagram, decode_sample
from stagectl.tracking.codecs.osc import SEQUENCE_MODULUS as OSC_SEQUENCE_MODULUS
from stagectl.tracking.codecs.osc import decode_osc
from stagectl.tracking.errors import ChecksumError, DecodeError, FieldError, TruncatedError
from stagectl.tracking.profiles import EncoderProfile, profile_from_config

if TYPE_CHECKING:
    from stagectl.stage.model import Stage, TrackingSource

__all__ = [
    "BAD_REASONS",
    "DEFAULT_PORTS",
    "PROTOCOLS",
    "STATES",
    "BadPacket",
    "Receiver",
    "ReceiverGroup",
    "ReceiverStats",
    "Sink",
    "TransportError",
    "bind_failure",
    "classify_error",
    "normalise_protocol",
    "open_tracking_socket",
    "opentrackio_group",
]

log = logging.getLogger("stagectl.tracking.receiver")

PROTOCOLS: Final = ("freed", "opentrackio", "osc")
DEFAULT_PORTS: Final = MappingProxyType({"freed": 40000, "opentrackio": 55555, "osc": 9000})
BAD_REASONS: Final = ("checksum", "truncated", "field", "other")
STATES: Final = ("waiting", "live", "stale", "lost")
OPENTRACKIO_GROUP_PREFIX: Final = "239.135.1."
CLOCK_NAME: Final = "monotonic"

_NS_PER_S: Final = 1_000_000_000
_MAX_DATAGRAM: Final = 65535
_PACKET_RING: Final = 4096  # arrivals kept for the packet rate (caps the measurable rate at 4096 Hz)
_SAMPLE_RING: Final = 257  # arrivals kept for the jitter (256 intervals)
_RATE_RING: Final = 4096  # accepted-sample arrivals kept for the sample rate (caps it at 4096 Hz)
_MAX_PEERS: Final = 16
_DRAIN_MAX: Final = 256  # datagrams read per wake-up before looking at the wake socket again
_CLOSE_BUDGET_S: Final = 0.2
_OTRK_SEQUENCE_MODULUS: Final = 1 << 16
_FREED_COUNTER_MODULUS: Final = 16
_LOST_AFTER_MIN_MS: Final = 2000.0
_DIAGNOSIS_WINDOW_NS: Final = _NS_PER_S  # "packets arrive": one arrived in the last second (or stale window)
_MESSAGE_MAX: Final = 120  # characters of a decoder / filter message quoted in a diagnosis
_ADDR_IN_USE: Final = frozenset({errno.EADDRINUSE, 10048, 10013})  # + WSAEADDRINUSE, WSAEACCES (Windows)

Sink = Callable[[int, TrackingSample], None]
"""``sink(arrival_ns, sample)``; ``arrival_ns`` is ``time.monotonic_ns()`` at reception (clock monotonic)."""


class TransportError(StageError):
    """A socket could not be opened, bound, joined to its group, or written to (the message says which)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class BadPacket:
    """A datagram that was dropped as bad: ``arrival_ns`` (monotonic ns), reason (one of
    :data:`BAD_REASONS`), the decoder's message, the sender ``"ip:port"`` and the datagram size in bytes."""

    arrival_ns: int
    reason: str
    message: str
    peer: str
    size: int


def classify_error(exc: BaseException) -> str:
    """Bad-packet reason of a decoder exception: ``checksum``, ``truncated``, ``field`` or ``other``."""
    if isinstance(exc, ChecksumError):
        return "checksum"
    if isinstance(exc, TruncatedError):
        return "truncated"
    if isinstance(exc, FieldError):
        return "field"
    return "other"


def normalise_protocol(protocol: str) -> str:
    """``"freed"``, ``"opentrackio"`` or ``"osc"`` from any capitalisation (``"FreeD"``, ``"OpenTrackIO"``).

    Raises ``ValueError`` naming the valid protocols.
    """
    p = protocol.strip().lower().replace("-", "").replace("_", "") if isinstance(protocol, str) else ""
    if p not in PROTOCOLS:
        raise ValueError(f"unknown tracking protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return p


def opentrackio_group(source_number: int) -> str:
    """OpenTrackIO 1.0.1 multicast group of a source: ``239.135.1.<source_number>`` (1..200)."""
    if isinstance(source_number, bool) or not isinstance(source_number, int) or not 1 <= source_number <= 200:
        raise ValueError(f"an OpenTrackIO source number is 1..200, got {source_number!r}")
    return f"{OPENTRACKIO_GROUP_PREFIX}{source_number}"


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 3] + "..."


def _ipv4(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ValueError(f"{what}: expected an IPv4 address such as 127.0.0.1, got {text!r}") from None


def _udp_sockets_on(port: int) -> list[tuple[str, int]]:
    """``(local IPv4 address, socket inode)`` of every UDP socket of this host bound to ``port``, from
    ``/proc/net/udp`` (Linux; empty elsewhere or when it cannot be read)."""
    out = []
    try:
        with open("/proc/net/udp", encoding="ascii") as f:
            next(f, None)  # header
            for line in f:
                cols = line.split()
                if len(cols) < 10:
                    continue
                addr_hex, _, port_hex = cols[1].partition(":")
                if int(port_hex, 16) != port:
                    continue
                addr = socket.inet_ntoa(int(addr_hex, 16).to_bytes(4, "little"))
                out.append((addr, int(cols[9])))
    except (OSError, ValueError):
        return []
    return out


def _holders(inodes: set[int], limit: int = 3) -> list[str]:
    """``"pid N: command line"`` of the processes holding these socket inodes, as far as ``/proc/<pid>/fd``
    shows them (processes of other users stay hidden); at most ``limit``."""
    if not inodes:
        return []
    want = {f"socket:[{i}]" for i in inodes}
    found = []
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in want:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read(400).replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = ""
        who = "this process" if int(pid) == os.getpid() else f"pid {pid}"
        found.append(f"{who}: {cmd}" if cmd else who)
        if len(found) >= limit:
            break
    return found


def _conflicting(port: int, address: str) -> set[int]:
    """Inodes of the sockets bound to ``port`` whose address overlaps ``address`` (equal, or either is the
    wildcard ``0.0.0.0``): the ones that make a bind to ``(address, port)`` fail or share."""
    return {ino for a, ino in _udp_sockets_on(port) if a == address or "0.0.0.0" in (a, address)}


def open_tracking_socket(
    port: int, bind: str = "0.0.0.0", *, group: str | None = None, share: bool = False, rcvbuf: int = 4 << 20
) -> socket.socket:
    """A bound (blocking) UDP socket for tracking datagrams: the one way stagectl opens a tracking port.

    ``port`` on ``bind`` (unicast), or ``group`` joined on the interface of ``bind``. The port is exclusive: no
    ``SO_REUSEADDR`` (``SO_EXCLUSIVEADDRUSE`` on Windows), so a second socket on it fails instead of silently
    taking the datagrams. ``share=True`` (multicast only, and only when every socket on the group asks) lets
    several programs receive the same group, each getting every datagram. ``rcvbuf`` asks for a large receive
    buffer (capped by the kernel's ``net.core.rmem_max``). Raises ``OSError``; :func:`bind_failure` says why in
    words.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if share:  # a multicast group shared on purpose: every socket on it gets every datagram
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):  # BSD / macOS need it to share; Linux accepts either
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                except OSError:
                    pass
        elif sys.platform == "win32":  # Windows lets SO_REUSEADDR sockets steal a port unless it is exclusive
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        # no SO_REUSEADDR otherwise: a second socket on this port must fail, never take the datagrams
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError:  # a cap on the buffer size is not an error worth refusing to start for
            log.debug("could not set SO_RCVBUF to %d bytes", rcvbuf)
        if group is not None:
            # Binding to the group filters out other groups' datagrams on this port (not on Windows).
            sock.bind(("" if sys.platform == "win32" else group, port))
            iface = socket.inet_aton("0.0.0.0" if bind == "" else bind)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + iface)
        else:
            sock.bind((bind, port))
    except BaseException:
        sock.close()
        raise
    return sock


def bind_failure(exc: OSError, port: int, bind: str, *, group: str | None = None, share: bool = False) -> str:
    """Why :func:`open_tracking_socket` failed, in words: for a busy port, who holds it and what to do."""
    if exc.errno not in _ADDR_IN_USE and getattr(exc, "winerror", None) not in _ADDR_IN_USE:
        return str(exc.strerror or exc)
    holders = _holders(_conflicting(port, group if group is not None else bind))
    held = f" ({'; '.join(holders)})" if holders else ""
    if group is None:
        return (
            f"port {port} is in use by another process{held}; a tracker's unicast packets reach one "
            f"program only: stop the other one, or give this source another port"
        )
    if share:
        return (
            f"port {port} (group {group}) is in use by another process{held} that does not share it; "
            f"a multicast group is shared only when every program on it asks to (stage file "
            f"share_group: true, stagectl listen --share)"
        )
    return (
        f"port {port} (group {group}) is in use by another process{held}; to share a multicast "
        f"group on purpose, every program on it must ask to (stage file share_group: true, stagectl "
        f"listen --share)"
    )


# ------------------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """A snapshot of one receiver's statistics at ``now_ns`` (clock ``monotonic``, given by the caller).

    * ``packets``, ``bytes``: datagrams and their bytes received (good or bad);
    * ``samples``: samples delivered to the sink; ``bad``: bad datagrams by reason (:data:`BAD_REASONS`);
    * ``other_source``: valid samples dropped by the camera ID / source number / camera name filter;
    * ``duplicates``, ``sequence_gaps``, ``out_of_order``: see the module docstring;
    * ``sink_errors``: exceptions raised by the sink;
    * ``packet_rate_hz``: datagrams (good or bad) that arrived in ``(now - 1 s, now]``; ``sample_rate_hz``:
      accepted samples (delivered to the sink) in the same second -- the rate to show as the tracking rate;
    * ``jitter_std_ns``: standard deviation of the intervals between the last (up to 256) sample arrivals;
      ``jitter_p99_ns``: 99th percentile of ``|interval - median interval|`` over the same intervals; ``None``
      below 3 intervals;
    * ``last_arrival_ns``: arrival stamp of the last datagram; ``last_sample_arrival_ns`` of the last
      delivered sample; ``last_sample_age_ns = now_ns - last_sample_arrival_ns``;
    * ``state``: ``"waiting"``, ``"live"``, ``"stale"`` or ``"lost"``; ``stale_recoveries``: times a sample
      arrived after a silence longer than ``stale_after_ms``;
    * ``peers``: datagrams per sender ``"ip:port"`` (the 16 most recent senders);
    * ``diagnosis``: while not live, what arrives instead (:meth:`Receiver.diagnosis`); ``None`` while live.
    """

    name: str
    protocol: str
    address: str
    now_ns: int
    packets: int
    bytes: int
    samples: int
    bad: Mapping[str, int]
    other_source: int
    duplicates: int
    sequence_gaps: int
    out_of_order: int
    sink_errors: int
    packet_rate_hz: float
    sample_rate_hz: float
    jitter_std_ns: float | None
    jitter_p99_ns: float | None
    last_arrival_ns: int | None
    last_sample_arrival_ns: int | None
    last_sample_age_ns: int | None
    state: str
    stale_recoveries: int
    peers: Mapping[str, int] = field(default_factory=dict)
    clock: str = CLOCK_NAME
    diagnosis: str | None = None

    @property
    def bad_total(self) -> int:
        """All bad datagrams, whatever the reason."""
        return sum(self.bad.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary (times in integer ns, clock ``monotonic``)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["bad"] = dict(self.bad)
        d["bad_total"] = self.bad_total
        d["peers"] = dict(self.peers)
        return d


class _Throttle:
    """At most one log record per second; the clock is the arrival stamp passed in (no hidden reads)."""

    __slots__ = ("_last_ns", "_source", "_suppressed")

    def __init__(self, source: str) -> None:
        self._source = source
        self._last_ns: int | None = None
        self._suppressed = 0

    def log(self, now_ns: int, level: int, message: str, *, exc_info: bool = False) -> None:
        if self._last_ns is not None and now_ns - self._last_ns < _NS_PER_S:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._last_ns = self._suppressed, 0, now_ns
        extra = f" ({suppressed} similar records suppressed in the last second)" if suppressed else ""
        log.log(level, "%s: %s%s", self._source, message, extra, exc_info=exc_info)


# ------------------------------------------------------------------------------------------------------------
# Receiver
# ------------------------------------------------------------------------------------------------------------

_Decoded = tuple[TrackingSample, int | None, int]  # sample, sequence value or None, sequence modulus


class Receiver:
    """Receives one tracking source over UDP and hands ``(arrival_ns, sample)`` to ``sink``.

    :param protocol: ``"freed"``, ``"opentrackio"`` or ``"osc"`` (any capitalisation).
    :param sink: ``sink(arrival_ns, sample)``, called on the receive thread; ``None`` keeps only
        :meth:`last` and the statistics.
    :param name: source name used in logs and statistics (default: the protocol).
    :param bind: IPv4 address of the interface to listen on (``0.0.0.0``: all); for multicast, the interface
        that joins the group.
    :param port: UDP port; ``None``: the protocol's default (:data:`DEFAULT_PORTS`); ``0``: any free port
        (read :attr:`port` after :meth:`start`).
    :param group: IPv4 multicast group to join, or ``None`` for unicast (see :func:`opentrackio_group`).
    :param camera_id: FreeD camera ID (0..254; 0xFF packets always accepted) or OpenTrackIO source number
        (1..200) to accept; ``None`` accepts every ID / valid source number.
    :param camera_names: OSC camera names to accept; ``None`` or empty accepts every name.
    :param profile: FreeD encoder profile (name, stage-file mapping or :class:`EncoderProfile`); default
        ``generic``.
    :param stale_after_ms: silence after which :meth:`state` says ``"stale"``, milliseconds.
    :param lost_after_ms: silence after which :meth:`state` says ``"lost"``, milliseconds (more than
        ``stale_after_ms``); ``None``: the larger of 2000 and four times ``stale_after_ms``.
    :param share: multicast only: share the group and port with other sockets that also ask for it
        (``SO_REUSEADDR`` + ``SO_REUSEPORT``); without it the port is exclusive (module docstring).
    :param on_bad: called with a :class:`BadPacket` for every bad datagram (receive thread; unthrottled).
    :param rcvbuf_bytes: requested socket receive buffer (the kernel may cap it).
    """

    def __init__(
        self,
        protocol: str,
        *,
        sink: Sink | None = None,
        name: str | None = None,
        bind: str = "0.0.0.0",
        port: int | None = None,
        group: str | None = None,
        camera_id: int | None = None,
        camera_names: Iterable[str] | None = None,
        profile: str | Mapping[str, Any] | EncoderProfile | None = None,
        stale_after_ms: float = 250.0,
        on_bad: Callable[[BadPacket], None] | None = None,
        rcvbuf_bytes: int = 1 << 20,
        lost_after_ms: float | None = None,
        share: bool = False,
    ) -> None:
        self.protocol = normalise_protocol(protocol)
        self.name = name or self.protocol
        self.bind = _ipv4(bind, "bind")
        if port is None:
            port = DEFAULT_PORTS[self.protocol]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {port!r}")
        self._requested_port = port
        self.group = None
        if group is not None:
            self.group = _ipv4(group, "group")
            if not ipaddress.IPv4Address(self.group).is_multicast:
                raise ValueError(f"group: expected an IPv4 multicast address (224.0.0.0/4), got {group!r}")
        if camera_id is not None:
            hi = 200 if self.protocol == "opentrackio" else 255
            lo = 1 if self.protocol == "opentrackio" else 0
            if isinstance(camera_id, bool) or not isinstance(camera_id, int) or not lo <= camera_id <= hi:
                what = "OpenTrackIO source number" if self.protocol == "opentrackio" else "FreeD camera ID"
                raise ValueError(f"camera_id: expected a {what} {lo}..{hi}, got {camera_id!r}")
        self.camera_id = camera_id
        self.camera_names: frozenset[str] | None = frozenset(camera_names) if camera_names else None
        if profile is None or isinstance(profile, EncoderProfile):
            self.profile = profile if profile is not None else profile_from_config("generic")
        else:
            self.profile = profile_from_config(profile)
        if not stale_after_ms > 0:
            raise ValueError(f"stale_after_ms: expected > 0, got {stale_after_ms!r}")
        self.stale_after_ns = round(stale_after_ms * 1_000_000)
        if lost_after_ms is None:
            lost_after_ms = max(_LOST_AFTER_MIN_MS, 4.0 * stale_after_ms)
        if not lost_after_ms > stale_after_ms:
            raise ValueError(
                f"lost_after_ms: expected more than stale_after_ms ({stale_after_ms:g}), got {lost_after_ms!r}"
            )
        self.lost_after_ns = round(lost_after_ms * 1_000_000)
        if share and self.group is None:
            raise ValueError(
                "share: only a multicast group can be shared (a unicast port delivers each datagram to one "
                "socket only); set a multicast group or leave share off"
            )
        self.share = bool(share)
        self.sink = sink
        self.on_bad = on_bad
        #: optional ``tap(arrival_ns, datagram)`` called in the receive thread for every datagram before it is
        #: decoded (``stagectl run``'s take recording); set or clear it at any time
        self.tap: Callable[[int, bytes], None] | None = None
        self._rcvbuf = rcvbuf_bytes
        self._decode: Callable[[bytes, str], list[_Decoded]] = {
            "freed": self._decode_freed,
            "opentrackio": self._decode_opentrackio,
            "osc": self._decode_osc,
        }[self.protocol]
        self._accept: Callable[[TrackingSample], str | None] = {
            "freed": self._accept_freed,
            "opentrackio": self._accept_opentrackio,
            "osc": self._accept_osc,
        }[self.protocol]
        self._throttle = _Throttle(self.name)
        self._reassemblers: collections.OrderedDict[str, Reassembler] = collections.OrderedDict()
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._address: tuple[str, int] | None = None
        self._started_ns: int | None = None
        self.current_peer = ""
        """Sender ``"ip:port"`` of the datagram being handled; meaningful inside ``sink`` / ``on_bad``."""
        # --- state written only by the receive thread, inside the seqlock (version odd while writing) ---
        self._version = 0
        self._packets = 0
        self._bytes = 0
        self._samples = 0
        self._bad = dict.fromkeys(BAD_REASONS, 0)
        self._other_source = 0
        self._duplicates = 0
        self._gaps = 0
        self._out_of_order = 0
        self._sink_errors = 0
        self._stale_recoveries = 0
        self._last_arrival_ns: int | None = None
        self._last_sample_arrival_ns: int | None = None
        self._last: tuple[int, TrackingSample] | None = None
        self._packet_ring: list[int] = [-1] * _PACKET_RING
        self._packet_idx = 0
        self._sample_ring: list[int] = [-1] * _SAMPLE_RING
        self._sample_idx = 0
        self._rate_ring: list[int] = [-1] * _RATE_RING
        self._peers: dict[str, int] = {}
        # what arrived instead of samples (the diagnosis of a source that is not live)
        self._last_bad: tuple[int, str, str] | None = None  # arrival_ns, reason, message
        self._last_other: tuple[int, str] | None = None  # arrival_ns, the filter's reason
        self._last_seq: int | None = None
        self._last_data: bytes | None = None

    # --------------------------------------------------------------------------------------- construction
    @classmethod
    def from_source(
        cls,
        source: TrackingSource,
        sink: Sink | None,
        *,
        camera_names: Iterable[str] = (),
        on_bad: Callable[[BadPacket], None] | None = None,
    ) -> Receiver:
        """A receiver for a stage file's tracking source (protocol, bind, port, group, camera ID, profile,
        ``stale_after_ms``, ``share_group``). For OSC the accepted names are the source's own name plus
        ``camera_names``."""
        names = None
        if normalise_protocol(source.protocol) == "osc":
            names = (source.name, *camera_names)
        return cls(
            source.protocol,
            sink=sink,
            name=source.name,
            bind=source.bind,
            port=source.port,
            group=source.multicast_group,
            camera_id=source.camera_id,
            camera_names=names,
            profile=source.encoder_profile,
            stale_after_ms=source.stale_after_ms,
            on_bad=on_bad,
            share=bool(getattr(source, "share_group", False)),
        )

    # --------------------------------------------------------------------------------------- lifecycle
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the socket is bound to (the group for multicast); valid after :meth:`start`."""
        if self._address is None:
            raise RuntimeError(f"{self.name}: the receiver is not started")
        return self._address

    @property
    def port(self) -> int:
        """The bound UDP port (the free port chosen by the system when created with ``port=0``)."""
        return self.address[1]

    @property
    def running(self) -> bool:
        """True while the receive thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> str:
        """``"freed on 0.0.0.0:40000"`` or ``"opentrackio on group 239.135.1.1:55555 via 0.0.0.0"`` (plus
        ``" (shared)"`` when the group is shared on purpose)."""
        port = self._address[1] if self._address else self._requested_port
        if self.group:
            shared = " (shared)" if self.share else ""
            return f"{self.protocol} on group {self.group}:{port} via {self.bind}{shared}"
        return f"{self.protocol} on {self.bind}:{port}"

    def _open_socket(self) -> socket.socket:
        try:
            sock = open_tracking_socket(self._requested_port, self.bind, group=self.group, share=self.share,
                                        rcvbuf=self._rcvbuf)
            sock.setblocking(False)
        except OSError as exc:
            reason = bind_failure(exc, self._requested_port, self.bind, group=self.group, share=self.share)
            raise TransportError(f"{self.name}: cannot listen for {self.describe()}: {reason}") from None
        return sock

    def start(self) -> Self:
        """Open and bind the socket (joining the group) and start the receive thread. Returns ``self``.

        Raises :class:`TransportError` when the socket cannot be bound or the group cannot be joined.
        """
        if self._closed:
            raise RuntimeError(f"{self.name}: a closed receiver cannot be restarted; create a new one")
        if self._thread is not None:
            return self
        sock = self._open_socket()
        host, port = sock.getsockname()[:2]
        self._address = (host, port)
        self._started_ns = time.monotonic_ns()
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name=f"stagectl-rx-{self.name}", daemon=True)
        self._thread.start()
        log.info("%s: listening for %s", self.name, self.describe())
        if self.share and self.group is not None:
            others = len(_conflicting(port, self.group)) - 1
            if others > 0:
                log.info("%s: group %s:%d is shared with %d other local socket(s)", self.name, self.group, port,
                         others)
        return self

    def close(self, timeout_s: float = _CLOSE_BUDGET_S) -> None:
        """Stop the receive thread and close the socket; returns within ``timeout_s`` (default 200 ms).

        Safe to call twice. A sink that blocks longer than ``timeout_s`` leaves the (daemon) thread to finish
        on its own; the socket is then closed by that thread.
        """
        self._request_stop()
        self._join(time.monotonic() + timeout_s)

    def _request_stop(self) -> None:
        """Wake the receive thread so that it exits (first half of :meth:`close`)."""
        if self._closed:
            return
        self._closed = True
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass

    def _join(self, deadline_s: float) -> None:
        """Wait for the receive thread until ``deadline_s`` (``time.monotonic()`` seconds)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            if self._wake_w is not None:
                self._wake_w.close()
            return
        thread.join(max(0.0, deadline_s - time.monotonic()))
        if not thread.is_alive():
            if self._wake_w is not None:
                self._wake_w.close()
            log.info("%s: closed", self.name)
        else:
            log.warning(
                "%s: the receive thread is still busy (a slow sink?); it will exit after it", self.name
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------------------------------- receive thread
    def _run(self) -> None:
        sock, wake_r = self._sock, self._wake_r
        assert sock is not None and wake_r is not None
        sel = selectors.DefaultSelector()
        try:
            sel.register(sock, selectors.EVENT_READ, "data")
            sel.register(wake_r, selectors.EVENT_READ, "wake")
            while True:
                events = sel.select()  # blocks until data or the wake-up; no timeout, no polling
                if any(key.data == "wake" for key, _ in events):
                    return
                for _ in range(_DRAIN_MAX):
                    try:
                        data, peer = sock.recvfrom(_MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:  # e.g. an ICMP error reported on the socket: count, log, go on
                        now = time.monotonic_ns()
                        self._count_bad(now, "other", f"socket error: {exc}", "?", 0)
                        break
                    arrival_ns = time.monotonic_ns()  # the arrival stamp: before any parsing
                    self._handle(arrival_ns, data, f"{peer[0]}:{peer[1]}")
        except Exception:  # the thread must say why it died, not vanish
            log.exception("%s: receive thread stopped by an unexpected error", self.name)
        finally:
            sel.close()
            sock.close()
            wake_r.close()
            if self._closed and self._wake_w is not None:
                try:
                    self._wake_w.close()
                except OSError:
                    pass

    def _count_bad(self, arrival_ns: int, reason: str, message: str, peer: str, size: int) -> None:
        self._version += 1
        self._bad[reason] += 1
        self._last_bad = (arrival_ns, reason, message)
        self._version += 1
        self._throttle.log(arrival_ns, logging.WARNING, f"bad packet ({reason}) from {peer}: {message}")
        if self.on_bad is not None:
            try:
                self.on_bad(BadPacket(arrival_ns, reason, message, peer, size))
            except Exception:  # noqa: BLE001 - a broken observer must not stop reception
                self._throttle.log(arrival_ns, logging.ERROR, "on_bad callback raised", exc_info=True)

    def _handle(self, arrival_ns: int, data: bytes, peer: str) -> None:
        """Count, decode, filter and deliver one datagram stamped ``arrival_ns`` (monotonic ns)."""
        self.current_peer = peer
        self._version += 1  # odd: writing
        try:
            self._packets += 1
            self._bytes += len(data)
            self._packet_ring[self._packet_idx % _PACKET_RING] = arrival_ns
            self._packet_idx += 1
            self._last_arrival_ns = arrival_ns
            peers = self._peers
            if peer in peers:
                peers[peer] += 1
            else:
                if len(peers) >= _MAX_PEERS:
                    del peers[next(iter(peers))]
                peers[peer] = 1
        finally:
            self._version += 1
        tap = self.tap
        if tap is not None:  # e.g. a take being recorded: the raw datagram, before any parsing
            try:
                tap(arrival_ns, data)
            except Exception:  # noqa: BLE001 - a failing recorder never stops the tracking
                self._throttle.log(arrival_ns, logging.ERROR, "tap callback raised", exc_info=True)
        try:
            decoded = self._decode(data, peer)
        except DecodeError as exc:
            self._count_bad(arrival_ns, classify_error(exc), str(exc), peer, len(data))
            return
        except Exception as exc:  # noqa: BLE001 - a codec bug must not kill the source; it is logged loudly
            self._count_bad(
                arrival_ns, "other", f"decoder failed: {type(exc).__name__}: {exc}", peer, len(data)
            )
            self._throttle.log(arrival_ns, logging.ERROR, "decoder raised a non-DecodeError", exc_info=True)
            return
        for sample, seq, modulus in decoded:
            rejected = self._accept(sample)
            if rejected is not None:
                self._version += 1
                self._other_source += 1
                self._last_other = (arrival_ns, rejected)
                self._version += 1
                self._throttle.log(arrival_ns, logging.INFO, f"sample from {peer} ignored: {rejected}")
                continue
            if not self._deliver(arrival_ns, sample, seq, modulus, data):
                continue
            sink = self.sink
            if sink is not None:
                try:
                    sink(arrival_ns, sample)
                except Exception:  # noqa: BLE001 - counted and logged; the next sample must still arrive
                    self._version += 1
                    self._sink_errors += 1
                    self._version += 1
                    self._throttle.log(arrival_ns, logging.ERROR, "sink raised", exc_info=True)

    def _deliver(
        self, arrival_ns: int, sample: TrackingSample, seq: int | None, modulus: int, data: bytes
    ) -> bool:
        """Sequence bookkeeping and the last-sample slot; False for a duplicate (not delivered)."""
        self._version += 1
        try:
            if seq is not None:
                last = self._last_seq
                if last is not None:
                    step = (seq - last) % modulus
                    if step == 0:
                        if data == self._last_data:
                            self._duplicates += 1
                            return False
                    elif step < modulus // 2:
                        self._gaps += step - 1
                    else:
                        self._out_of_order += 1
                self._last_seq = seq
                self._last_data = data
            prev = self._last_sample_arrival_ns
            if prev is not None and arrival_ns - prev > self.stale_after_ns:
                self._stale_recoveries += 1
            self._samples += 1
            self._sample_ring[self._sample_idx % _SAMPLE_RING] = arrival_ns
            self._rate_ring[self._sample_idx % _RATE_RING] = arrival_ns
            self._sample_idx += 1
            self._last_sample_arrival_ns = arrival_ns
            self._last = (arrival_ns, sample)
            return True
        finally:
            self._version += 1

    # --------------------------------------------------------------------------------------- per protocol
    def _decode_freed(self, data: bytes, peer: str) -> list[_Decoded]:
        sample = decode_freed_sample(data, self.profile)
        counter = sample.raw.get("frame_counter")
        if counter is None:
            return [(sample, None, 0)]
        return [(sample, counter % _FREED_COUNTER_MODULUS, _FREED_COUNTER_MODULUS)]

    def _decode_opentrackio(self, data: bytes, peer: str) -> list[_Decoded]:
        datagram = decode_datagram(data)
        ra = self._reassemblers.get(peer)
        if ra is None:
            if len(self._reassemblers) >= _MAX_PEERS:
                self._reassemblers.popitem(last=False)
            ra = self._reassemblers[peer] = Reassembler()
        else:
            self._reassemblers.move_to_end(peer)
        before = ra.duplicates
        payload = ra.push(datagram)
        if ra.duplicates != before:
            self._version += 1
            self._duplicates += ra.duplicates - before
            self._version += 1
        if payload is None:
            return []
        sample = decode_sample(payload.data, payload.encoding)
        return [(sample, payload.sequence, _OTRK_SEQUENCE_MODULUS)]

    def _decode_osc(self, data: bytes, peer: str) -> list[_Decoded]:
        out: list[_Decoded] = []
        for sample in decode_osc(data):
            seq = sample.timing.sequence_number if sample.timing is not None else None
            out.append((sample, seq, OSC_SEQUENCE_MODULUS))
        return out

    def _accept_freed(self, sample: TrackingSample) -> str | None:
        cid = sample.camera_id
        if self.camera_id is None or cid == 0xFF or cid == self.camera_id:
            return None
        return f"FreeD camera ID {cid} (listening for {self.camera_id} and 0xFF)"

    def _accept_opentrackio(self, sample: TrackingSample) -> str | None:
        sn = sample.source_number
        if sn is None:
            return None
        if not 1 <= sn <= 200:
            return f"OpenTrackIO source number {sn} is reserved (valid: 1..200)"
        if self.camera_id is not None and sn != self.camera_id:
            return f"OpenTrackIO source number {sn} (listening for {self.camera_id})"
        return None

    def _accept_osc(self, sample: TrackingSample) -> str | None:
        name = sample.raw.get("camera")
        if self.camera_names is None or name in self.camera_names:
            return None
        return f"OSC camera {name!r} (listening for {', '.join(sorted(self.camera_names))})"

    # --------------------------------------------------------------------------------------- readers
    def state(self, now_ns: int) -> str:
        """``"waiting"`` (no sample yet), ``"live"``, ``"stale"`` (no sample for ``stale_after_ms``) or
        ``"lost"`` (none for ``lost_after_ms``) at ``now_ns`` (``time.monotonic_ns()`` read by the caller)."""
        return self._state_of(self._last_sample_arrival_ns, now_ns)

    def _state_of(self, last_sample_ns: int | None, now_ns: int) -> str:
        if last_sample_ns is None:
            return "waiting"
        age = now_ns - last_sample_ns
        if age > self.lost_after_ns:
            return "lost"
        return "stale" if age > self.stale_after_ns else "live"

    def diagnosis(self, now_ns: int) -> str | None:
        """Why the source is not live at ``now_ns`` (monotonic ns), from what arrived instead; ``None`` while
        live. One line: ``"no packets arriving (...)"``, ``"packets arrive from other cameras only: ..."``,
        ``"packets arrive but are bad (checksum: ...)"`` or ``"packets arrive but carry no complete sample
        ..."`` (several joined with ``"; "``)."""
        snap = self._snapshot()
        return self._diagnose(now_ns, snap[10], snap[11], snap[16], snap[17])

    def _diagnose(
        self,
        now_ns: int,
        last_arrival: int | None,
        last_sample: int | None,
        last_bad: tuple[int, str, str] | None,
        last_other: tuple[int, str] | None,
    ) -> str | None:
        if self._state_of(last_sample, now_ns) == "live":
            return None
        window = max(self.stale_after_ns, _DIAGNOSIS_WINDOW_NS)
        if last_arrival is None:
            since = "" if self._started_ns is None else f" in {(now_ns - self._started_ns) / 1e9:.1f} s"
            return f"no packets arriving: none received{since} at {self.describe()}"
        if now_ns - last_arrival > window:
            peer = self.current_peer  # the sender of the last datagram
            sender = f" from {peer}" if peer and peer != "?" else ""
            return f"no packets arriving: the last one{sender} came {(now_ns - last_arrival) / 1e9:.1f} s ago"
        why = []
        if last_other is not None and now_ns - last_other[0] <= window:
            why.append(f"packets arrive from other cameras only: {_clip(last_other[1])}")
        if last_bad is not None and now_ns - last_bad[0] <= window:
            why.append(f"packets arrive but are bad ({last_bad[1]}: {_clip(last_bad[2])})")
        if not why:
            why.append(
                "packets arrive but carry no complete sample (repeated datagrams, or OpenTrackIO segments "
                "missing)"
            )
        return "; ".join(why)

    def last(self) -> tuple[int, TrackingSample] | None:
        """``(arrival_ns, sample)`` of the last delivered sample, kept while the source is stale."""
        return self._last

    def _snapshot(self) -> tuple[Any, ...]:
        for attempt in range(10_000):
            v = self._version
            if v & 1:
                time.sleep(0)  # let the receive thread finish its update (releases the GIL)
                continue
            snap = (
                self._packets,
                self._bytes,
                self._samples,
                dict(self._bad),
                self._other_source,
                self._duplicates,
                self._gaps,
                self._out_of_order,
                self._sink_errors,
                self._stale_recoveries,
                self._last_arrival_ns,
                self._last_sample_arrival_ns,
                self._packet_ring.copy(),
                self._sample_ring.copy(),
                self._sample_idx,
                dict(self._peers),
                self._last_bad,
                self._last_other,
                self._rate_ring.copy(),
            )
            if self._version == v:
                return snap
            if attempt > 100:
                time.sleep(0)
        raise RuntimeError(f"{self.name}: statistics kept changing while being read")  # pragma: no cover

    def stats(self, now_ns: int) -> ReceiverStats:
        """A consistent :class:`ReceiverStats` at ``now_ns`` (``time.monotonic_ns()`` read by the caller)."""
        import numpy as np

        (
            packets,
            nbytes,
            samples,
            bad,
            other,
            dups,
            gaps,
            ooo,
            sink_err,
            recov,
            last_arr,
            last_smp,
            pring,
            sring,
            sidx,
            peers,
            last_bad,
            last_other,
            rring,
        ) = self._snapshot()
        lo = now_ns - _NS_PER_S
        packet_rate = float(sum(1 for t in pring if lo < t <= now_ns))
        sample_rate = float(sum(1 for t in rring if lo < t <= now_ns))
        if sidx < _SAMPLE_RING:
            ordered = sring[:sidx]
        else:
            start = sidx % _SAMPLE_RING
            ordered = sring[start:] + sring[:start]
        jitter_std = jitter_p99 = None
        if len(ordered) >= 4:
            intervals = np.diff(np.asarray(ordered, dtype=np.int64)).astype(np.float64)
            jitter_std = float(intervals.std())
            jitter_p99 = float(np.percentile(np.abs(intervals - np.median(intervals)), 99.0))
        state = self._state_of(last_smp, now_ns)
        return ReceiverStats(
            name=self.name,
            protocol=self.protocol,
            address=self.describe(),
            now_ns=now_ns,
            packets=packets,
            bytes=nbytes,
            samples=samples,
            bad=MappingProxyType(bad),
            other_source=other,
            duplicates=dups,
            sequence_gaps=gaps,
            out_of_order=ooo,
            sink_errors=sink_err,
            packet_rate_hz=packet_rate,
            sample_rate_hz=sample_rate,
            jitter_std_ns=jitter_std,
            jitter_p99_ns=jitter_p99,
            last_arrival_ns=last_arr,
            last_sample_arrival_ns=last_smp,
            last_sample_age_ns=None if last_smp is None else now_ns - last_smp,
            state=state,
            stale_recoveries=recov,
            peers=MappingProxyType(peers),
            diagnosis=self._diagnose(now_ns, last_arr, last_smp, last_bad, last_other),
        )


# ------------------------------------------------------------------------------------------------------------
# Group
# ------------------------------------------------------------------------------------------------------------


def _fan_out(sinks: list[Sink]) -> Sink:
    if len(sinks) == 1:
        return sinks[0]

    def sink(arrival_ns: int, sample: TrackingSample) -> None:
        errors = []
        for s in sinks:
            try:
                s(arrival_ns, sample)
            except Exception as exc:  # noqa: BLE001 - every camera gets the sample; the first error re-raised
                errors.append(exc)
        if errors:
            raise errors[0]

    return sink


class ReceiverGroup:
    """The receivers of a stage, started and closed together; iterable, and indexable by source name."""

    def __init__(self, receivers: Iterable[Receiver]) -> None:
        self.receivers: dict[str, Receiver] = {}
        for r in receivers:
            if r.name in self.receivers:
                raise ValueError(f"two receivers are named {r.name!r}")
            self.receivers[r.name] = r

    @classmethod
    def from_stage(
        cls,
        stage: Stage,
        sink_for_camera: Callable[[str], Sink],
        *,
        include_unused: bool = False,
        on_bad: Callable[[BadPacket], None] | None = None,
    ) -> ReceiverGroup:
        """One receiver per tracking source of ``stage`` that a camera uses (every source with
        ``include_unused``). ``sink_for_camera(camera_name)`` gives each camera's sink (e.g. its timeline's
        ``push``); a source used by several cameras feeds all of them. OSC sources accept the source's name
        and the names of the cameras that use it."""
        receivers = []
        for source in stage.tracking:
            cameras = [c.name for c in stage.cameras if c.tracking == source.name]
            if not cameras and not include_unused:
                continue
            sink = _fan_out([sink_for_camera(c) for c in cameras]) if cameras else None
            receivers.append(Receiver.from_source(source, sink, camera_names=cameras, on_bad=on_bad))
        return cls(receivers)

    def __iter__(self) -> Iterator[Receiver]:
        return iter(self.receivers.values())

    def __len__(self) -> int:
        return len(self.receivers)

    def __getitem__(self, name: str) -> Receiver:
        return self.receivers[name]

    def start(self) -> Self:
        """Start every receiver; if one fails, the ones already started are closed and the error raised."""
        started = []
        try:
            for r in self:
                r.start()
                started.append(r)
        except BaseException:
            for r in started:
                r.close()
            raise
        return self

    def close(self, timeout_s: float = _CLOSE_BUDGET_S) -> None:
        """Close every receiver: all are woken first, so the whole group closes within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for r in self:
            r._request_stop()
        for r in self:
            r._join(deadline)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self, now_ns: int) -> dict[str, ReceiverStats]:
        """Statistics of every receiver at ``now_ns`` (monotonic ns), by source name."""
        return {name: r.stats(now_ns) for name, r in self.receivers.items()}

    def states(self, now_ns: int) -> dict[str, str]:
        """``"waiting"`` / ``"live"`` / ``"stale"`` / ``"lost"`` of every source at ``now_ns`` (monotonic ns)."""
        return {name: r.state(now_ns) for name, r in self.receivers.items()}
