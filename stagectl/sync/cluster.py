"""Cluster: the primary publishes every frame's state over ZeroMQ; render nodes follow it and meet at a swap
barrier.

Topology (zguide *Clone* pattern plus a barrier service, ``docs/reference/STYLE.md`` practice 10)::

    primary (stagectl run)                               node (stagectl node --name N)
    XPUB   state port ── operator state (on change) ───▶ SUB    (subscribes before the snapshot)
                      ── FrameState, sequenced ────────▶
    ROUTER sync port  ◀─ HELLO / HB / SNAP / READY / BYE ─ DEALER
                      ── SNAP (latest state + seq,  ──▶
                         latest operator state) / GO
    inproc PAIR       ◀─ FEAT / PUB / ARRIVE / STOP (from the primary's frame loop; shutdown goes through it)

* **States.** :class:`FrameState` is the whole per-frame state a node needs: frame number, timecode, the
  frame edge (and epoch) in integer ns on the primary's named clock, every camera's ``T_stage_camera`` and
  lens values (with the overscan and soft edge in use), the operator flags (global blackout, inner frusta on,
  freeze), the number of the operator state the frame was planned with (``features_seq``), and a sequence
  number plus the primary's random *session* id. The wire codec (:func:`encode_frame_state` /
  :func:`decode_frame_state`) is pure, versioned (:data:`WIRE_VERSION` 3) and compact (64 bytes + 193 bytes
  and the name per camera; ``struct`` little-endian); any malformed input raises :class:`FrameStateError` (a
  :class:`~stagectl.errors.StageError`), which a node counts and drops.
* **Operator state.** The render-relevant part of what the operator set on the primary's stage console (a
  :class:`~stagectl.render.features.FeatureState`: light cards, chroma key and markers, wall and inner colour
  corrections with their 3D LUT tables, per-output patterns and blackouts, the per-camera freeze, the outputs
  whose colour calibration ``color.calibration`` switched off: JSON key ``uncalibrated``) is published
  on the same socket as a message of its own whenever it changes, numbered per session (1, 2, ...), before
  the first frame state that names it (:meth:`Primary.publish`). Wire form (:func:`encode_features` /
  :func:`decode_features`, equally strict): a 21-byte header (magic ``SCOP``, version, session, number,
  JSON length), a compact JSON object with exactly the encoder's keys, then each distinct LUT's table as
  float32. A node keeps the last :data:`FEATURES_HISTORY` operator states (each first checked against its own
  stage: a refused one is counted and dropped) and renders frame ``k`` with the one the frame names
  (:meth:`Node.features_for`); when it does not have it (lost, or arriving out of order), it renders with the
  newest it has, counts the frame as *behind*, and asks for a snapshot, which always carries the latest
  operator state. It never waits for one: the barrier is never held for it.
* **Late joiners** (Clone): a node subscribes first, then asks the ROUTER for a snapshot; the answer is the
  latest state and its sequence number. Updates with a sequence at or below the snapshot's are discarded; a
  jump in the sequence is a *gap*: counted, and the node asks for a snapshot again (every update is a full
  state, so the newer update is used at once and nothing is stuck behind the gap). A new session id (the
  primary restarted) makes the node start over from a snapshot, operator state included.
* **Swap barrier.** Before presenting frame ``k`` every participant reports ``READY k`` (the primary itself
  through :meth:`Primary.barrier` when it is a member). The primary releases the waiters of the lowest pending
  frame when every *live barrier member* has reported that frame or a later one. A member that has not
  reported ``timeout_ns`` (default two frame periods) after the round opened (its first report, but not before
  the previous release) is **dropped** from the barrier and the others are released. A node enters the barrier
  by reporting a frame not yet released, or the frame just released before that round's deadline (it would
  have made that barrier), so a joining, dropped or restarted node **rejoins by itself** as soon as it
  keeps up, a node still starting up never holds anybody, and a node slower than the timeout stays out
  instead of costing everyone a timeout every other frame. A report for a frame already released is answered
  at once (the node is behind: it presents immediately).
* **Membership** by heartbeats: a node sends ``HB`` when it has sent nothing for ``heartbeat_ns`` (100 ms); a
  node silent for ``liveness_ns`` (1 s) is marked not alive and out of the barrier, and one silent for
  ``forget_ns`` (30 s) is forgotten. Whether or not the sync port is authenticated, the primary checks every
  message before it learns a name from it: the sender's rate, the kind and its frame count and sizes (``HELLO``,
  ``SNAP``, ``HB``,
  ``READY``, ``BYE``), then the name (:func:`valid_peer_name`: 1..64 UTF-8 bytes of printable characters, no
  control characters, line breaks or other invisible ones); anything else is counted in ``bad_messages`` and
  never enters the table. The table holds at most :data:`MAX_PEERS` names: when it is full the longest-silent
  node that is out of the barrier makes room, and a new name is refused (counted in ``refused_peers``) when
  every node in it is alive. Frames larger than :data:`MAX_SYNC_FRAME_BYTES` close the sender's connection. The XPUB socket tells the
  primary when each node's SUB subscription has arrived (a per-node topic), so a caller can wait for
  subscribers instead of sleeping.
* **Authentication** (``docs/cluster.md``). With ``keys`` (the stage's key folder has node keys,
  :func:`~stagectl.sync.zmq_security.cluster_server_keys`) both sockets are CURVE servers: a ZAP handler
  (:class:`~stagectl.sync.zmq_security.KeyAuthenticator`, shared with the stage console) admits only the node
  keys in ``<keys>/nodes``, refused handshakes are counted by reason (``refused_connections``), and a message
  or node-topic subscription naming node ``X`` is accepted only from key ``X`` (its ZAP User-Id; otherwise
  counted in ``forged_names`` and dropped), so one node cannot take over another's connection, membership or
  barrier reports. Without keys the cluster is unauthenticated (``stagectl run --cluster`` warns).
* **Rates.** Each peer (connection, or node key with CURVE) may send :data:`SNAPSHOT_RATE_PER_S` snapshot
  requests a second and about four messages per frame period; more are dropped and counted
  (``rate_limited``). The service thread reads at most :data:`MAX_SYNC_READS_PER_S` messages a second from all
  peers together and at most :data:`DRAIN_SLICE_NS` at a time before it serves its pipe again, and a report
  that completes a round releases it at once, so a flooding peer cannot starve the barrier.
* **Threads.** Every socket of the primary lives in one service thread; the frame loop talks to it through an
  inproc PAIR pipe (``publish``, ``barrier``, ``close``: a ``STOP`` message, then join, all bounded). A
  :class:`Node` is single-threaded: its sockets belong to the thread that calls it, and heartbeats go out from
  inside its calls (``poll``, ``recv_state``, ``latest_state``, ``wait_barrier``).

Time: integer nanoseconds on ``time.monotonic_ns()`` (clock ``monotonic``) for every timeout and measurement;
the edge and epoch inside a state are on the primary's clock, named in the state (``docs/conventions.md``).
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

import numpy as np
import zmq
from zmq.utils.monitor import parse_monitor_message

from stagectl.errors import StageError
from stagectl.render.features import (
    MAX_WALLS,
    FeatureError,
    FeatureState,
    FieldError,
    Lut3D,
    from_dict,
    to_dict,
    values_of,
)
from stagectl.render.plan import CameraState, LensValues, OperatorFlags
from stagectl.sync.ratelimit import PeerRates
from stagectl.sync.timebase import Clock, FrameRate, Timecode
from stagectl.sync.zmq_security import ClientKeys, KeyAuthenticator, RefusalMonitor, Refusals, ServerKeys

__all__ = [
    "DEFAULT_STATE_PORT",
    "DEFAULT_SYNC_PORT",
    "DEFAULT_TIMEOUT_FRAMES",
    "FORGET_NS",
    "MAX_PEERS",
    "SNAPSHOT_RATE_PER_S",
    "MAX_SYNC_FRAME_BYTES",
    "FEATURES_MAGIC",
    "HEARTBEAT_NS",
    "LIVENESS_NS",
    "NO_FLAGS",
    "WIRE_MAGIC",
    "WIRE_VERSION",
    "BarrierResult",
    "ClusterError",
    "ClusterStatus",
    "FeatureUpdate",
    "FrameState",
    "FrameStateError",
    "Node",
    "NodeStatus",
    "PeerStatus",
    "Primary",
    "decode_features",
    "decode_frame_state",
    "encode_features",
    "encode_frame_state",
    "parse_primary_address",
    "valid_peer_name",
]

#: First bytes of every encoded frame state (also the SUB topic).
WIRE_MAGIC = b"SCFS"
#: First bytes of every encoded operator state (also its SUB topic).
FEATURES_MAGIC = b"SCOP"
#: Version of the cluster wire format (frame states, operator states, snapshots) this module writes and reads.
WIRE_VERSION = 3
#: Default ports of the primary: frame states (XPUB) and sync (ROUTER: snapshots, barrier, heartbeats).
DEFAULT_STATE_PORT = 41310
DEFAULT_SYNC_PORT = 41311
#: A barrier member that has not reported this many frame periods after a round opened is dropped.
DEFAULT_TIMEOUT_FRAMES = 2
#: A node sends a heartbeat when it has sent nothing for this long (ns).
HEARTBEAT_NS = 100_000_000
#: A node the primary has not heard from for this long is not alive (ns).
LIVENESS_NS = 1_000_000_000
#: A node repeats an unanswered snapshot request after this long (ns).
SNAPSHOT_RETRY_NS = 500_000_000
#: Longest node or camera name on the wire (UTF-8 bytes).
MAX_NAME_BYTES = 64
#: Most nodes the primary keeps in its table (the primary itself included).
MAX_PEERS = 256
#: A node the primary has not heard from for this long is forgotten (ns).
FORGET_NS = 30_000_000_000
#: Largest frame the primary accepts on its sync and state sockets (ZeroMQ ``MAXMSGSIZE``: a larger one closes
#: that peer's connection); node messages and subscriptions are a few dozen bytes.
MAX_SYNC_FRAME_BYTES = 4096
#: Most cameras one encoded state carries.
MAX_WIRE_CAMERAS = 16
#: Largest JSON part of an encoded operator state (bytes).
MAX_FEATURES_JSON = 1 << 20
#: Largest encoded operator state (bytes; the 3D LUT tables are most of it: a 65-point LUT is 3.3 MB).
MAX_FEATURES_BYTES = 32 << 20
#: Most distinct 3D LUTs one operator state carries (one per wall and one for the inner frusta).
MAX_WIRE_LUTS = MAX_WALLS + 1
#: Operator states a node keeps (by sequence number), so that a queued frame finds the one it names.
FEATURES_HISTORY = 8
#: Topic prefix a node subscribes to so that the primary's XPUB learns that this node's SUB is connected.
_NODE_TOPIC = WIRE_MAGIC + b"\x00node:"
#: Snapshot requests a node may send per second, and at once (a node asks at start, after a gap, for a missing
#: operator state at most every ``SNAPSHOT_RETRY_NS``); more are dropped and counted (``rate_limited``).
SNAPSHOT_RATE_PER_S = 4.0
SNAPSHOT_BURST = 8
#: Node-topic subscriptions per second, and at once, the primary reads per peer (a node subscribes once).
SUBSCRIBE_RATE_PER_S = 50.0
SUBSCRIBE_BURST = 512
#: Messages (sync and subscriptions, every peer together) the primary's service thread reads per second at
#: most (the nodes of a stage send about one per frame each); beyond it reading rests for a millisecond.
MAX_SYNC_READS_PER_S = 20_000
#: The service thread reads sync messages for at most this long before it serves its pipe (the frame loop's
#: frame states and its own barrier report) and the barrier's deadline again (ns).
DRAIN_SLICE_NS = 2_000_000

_now = time.monotonic_ns


def _readable(sock: zmq.Socket) -> bool:
    """A message is waiting (cheaper than ending every drain loop with a ``zmq.Again`` exception)."""
    return bool(sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)


class ClusterError(StageError):
    """A cluster problem a user can fix (an address that cannot be bound, a bad ``--primary``, a bad name)."""


class FrameStateError(ClusterError):
    """Bytes that are not a valid frame state or operator state of the version this stagectl reads (or a state
    that cannot be encoded). Nodes count these and drop the message; they never stop a node."""


# ======================================================================================= wire codec

# magic, version, flags, clock, n_cameras, session, seq, features_seq, frame, edge_ns, epoch_ns, rate num,
# rate den, hh mm ss ff (version 3 added features_seq: the operator state the frame was planned with)
_HEADER = struct.Struct("<4sBBBBIQQqqqIIBBBB")
# T_stage_camera (16, row-major), focal mm, principal point x y mm, pupil m, zoom, focus, sensor w h mm,
# overscan left right bottom top percent (all NaN: the stage's configured overscan), soft edge (NaN: the stage's);
# version 2 added the last five so that adaptive overscan and the operator's per-camera settings reach the nodes
_CAMERA = struct.Struct("<29d")
_CAMERA_DOUBLES = 29

_FLAG_BLACKOUT = 0x01
_FLAG_INNER = 0x02
_FLAG_FREEZE = 0x04
_FLAG_DROP_FRAME = 0x08
_FLAGS_KNOWN = _FLAG_BLACKOUT | _FLAG_INNER | _FLAG_FREEZE | _FLAG_DROP_FRAME

_CLOCK_CODES = {Clock.MONOTONIC: 0, Clock.SYSTEM: 1, Clock.PTP: 2}
_CLOCKS = {v: k for k, v in _CLOCK_CODES.items()}

#: The operator flags of a frame nobody switched anything in.
NO_FLAGS = OperatorFlags()


@dataclass(frozen=True, eq=False)
class FrameState:
    """Everything a render node needs to render frame ``frame`` as the primary does.

    :param frame: frame number ``k`` (the primary's frame loop count).
    :param timecode: the frame's SMPTE label; its ``rate`` is the stage frame rate.
    :param edge_ns: start of the frame, integer ns on ``clock`` (the primary's clock).
    :param clock: the clock of ``edge_ns`` and ``epoch_ns``.
    :param epoch_ns: edge of frame 0 on ``clock`` (with a PTP-disciplined SYSTEM clock, nodes can present at
        ``edge_ns`` on their own clock).
    :param cameras: camera states in composition order (``T_stage_camera`` 4x4 float64, lens values,
        sensor mm).
    :param flags: the operator flags of the frame.
    :param seq: sequence number given by :meth:`Primary.publish` (1, 2, ...; 0 before publishing).
    :param session: random id of the publishing primary (0 before publishing); changes when it restarts.
    :param features_seq: sequence number of the operator state (:class:`FeatureUpdate`) the primary planned
        this frame with (given by :meth:`Primary.publish`); 0: none was published, the stage file's features.
    """

    frame: int
    timecode: Timecode
    edge_ns: int
    clock: Clock = Clock.MONOTONIC
    epoch_ns: int = 0
    cameras: tuple[CameraState, ...] = ()
    flags: OperatorFlags = NO_FLAGS
    seq: int = 0
    session: int = 0
    features_seq: int = 0

    @property
    def rate(self) -> FrameRate:
        return self.timecode.rate

    @classmethod
    def make(
        cls,
        frame: int,
        rate: FrameRate,
        edge_ns: int,
        *,
        clock: Clock = Clock.MONOTONIC,
        epoch_ns: int = 0,
        cameras: Sequence[CameraState] = (),
        flags: OperatorFlags = NO_FLAGS,
        drop_frame: bool = False,
        timecode_offset_frames: int = 0,
    ) -> FrameState:
        """The state of frame ``frame``, labelled ``Timecode.from_frame(frame + offset, rate, drop_frame)``.
        """
        tc = Timecode.from_frame(int(frame) + int(timecode_offset_frames), rate, drop_frame)
        return cls(int(frame), tc, int(edge_ns), clock, int(epoch_ns), tuple(cameras), flags)


def _name_bytes(name: str, what: str) -> bytes:
    if not isinstance(name, str):
        raise FrameStateError(f"{what} must be a string, got {type(name).__name__}")
    raw = name.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        raise FrameStateError(f"{what} {name!r} must be 1..{MAX_NAME_BYTES} UTF-8 bytes, got {len(raw)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise FrameStateError(f"{what} {name!r} must not contain control characters")
    return raw


def valid_peer_name(name: str) -> bool:
    """A node name the primary keeps and prints: 1..:data:`MAX_NAME_BYTES` UTF-8 bytes, every character
    printable (``str.isprintable``: no control characters, line or paragraph separators, format characters or
    unassigned code points; a plain space is allowed) and no leading or trailing space."""
    return (isinstance(name, str) and 1 <= len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
            and name.isprintable() and name == name.strip())


def _opt(value: float | None) -> float:
    return math.nan if value is None else float(value)


def encode_frame_state(state: FrameState, *, seq: int | None = None, session: int | None = None,
                       features_seq: int | None = None) -> bytes:
    """The wire bytes of ``state`` (``seq`` / ``session`` / ``features_seq`` override the state's own). Pure;
    raises :class:`FrameStateError` for a state that cannot be written (too many cameras, a name too long, a
    number out of range)."""
    seq = state.seq if seq is None else int(seq)
    session = state.session if session is None else int(session)
    features_seq = state.features_seq if features_seq is None else int(features_seq)
    tc = state.timecode
    flags = state.flags
    bits = (
        (_FLAG_BLACKOUT if flags.blackout else 0)
        | (_FLAG_INNER if flags.inner_enabled else 0)
        | (_FLAG_FREEZE if flags.freeze_inner else 0)
        | (_FLAG_DROP_FRAME if tc.drop_frame else 0)
    )
    cams = tuple(state.cameras)
    if len(cams) > MAX_WIRE_CAMERAS:
        raise FrameStateError(f"a frame state carries at most {MAX_WIRE_CAMERAS} cameras, got {len(cams)}")
    rate = tc.rate
    try:
        head = _HEADER.pack(
            WIRE_MAGIC, WIRE_VERSION, bits, _CLOCK_CODES[state.clock], len(cams), session, seq, features_seq,
            int(state.frame), int(state.edge_ns), int(state.epoch_ns), rate.num, rate.den,
            tc.hours, tc.minutes, tc.seconds, tc.frames,
        )
    except (struct.error, KeyError, TypeError) as exc:
        raise FrameStateError(f"cannot encode frame state of frame {state.frame}: {exc}") from None
    parts = [head]
    for cam in cams:
        raw = _name_bytes(cam.name, "camera name")
        try:
            T = np.asarray(cam.T_stage_camera, dtype=np.float64)
            if T.shape != (4, 4):
                raise ValueError(f"T_stage_camera must be 4x4, got shape {T.shape}")
            lens = cam.lens
            px, py = lens.principal_point_mm
            sw, sh = cam.sensor_mm
            ov = (math.nan,) * 4 if cam.overscan_pct is None else tuple(float(v) for v in cam.overscan_pct)
            if len(ov) != 4:
                raise ValueError(f"overscan_pct must have 4 values (left, right, bottom, top), got {len(ov)}")
            body = _CAMERA.pack(
                *T.ravel().tolist(), float(lens.focal_mm), float(px), float(py), float(lens.pupil_offset_m),
                _opt(lens.zoom), _opt(lens.focus), float(sw), float(sh), *ov, _opt(cam.soft_edge),
            )
        except (struct.error, TypeError, ValueError, AttributeError) as exc:
            raise FrameStateError(f"cannot encode camera {cam.name!r}: {exc}") from None
        parts.append(bytes((len(raw),)) + raw)
        parts.append(body)
    return b"".join(parts)


def decode_frame_state(data: bytes | bytearray | memoryview) -> FrameState:
    """The :class:`FrameState` in ``data``. Pure; anything malformed (wrong magic or version, truncated or
    trailing bytes, unknown flag bits or clock, an impossible rate or timecode label, a bad name) raises
    :class:`FrameStateError` and nothing else."""
    try:
        return _decode(memoryview(data).cast("B"))
    except FrameStateError:
        raise
    except (struct.error, ValueError, TypeError, UnicodeDecodeError, IndexError, OverflowError) as exc:
        raise FrameStateError(f"malformed frame state: {exc}") from None


def _decode(buf: memoryview) -> FrameState:
    n = len(buf)
    if n < _HEADER.size:
        raise FrameStateError(f"frame state truncated: {n} bytes, the header alone is {_HEADER.size}")
    (magic, version, bits, clock, ncam, session, seq, features_seq, frame, edge, epoch, num, den,
     hh, mm, ss, ff) = _HEADER.unpack_from(buf, 0)
    if magic != WIRE_MAGIC:
        raise FrameStateError(f"not a frame state (magic {bytes(magic)!r}, expected {WIRE_MAGIC!r})")
    if version != WIRE_VERSION:
        raise FrameStateError(f"frame state version {version}; this stagectl reads version {WIRE_VERSION}")
    if bits & ~_FLAGS_KNOWN:
        raise FrameStateError(f"frame state has unknown flag bits 0x{bits & ~_FLAGS_KNOWN:02x}")
    if clock not in _CLOCKS:
        raise FrameStateError(f"frame state names unknown clock code {clock}")
    if ncam > MAX_WIRE_CAMERAS:
        raise FrameStateError(f"frame state claims {ncam} cameras (at most {MAX_WIRE_CAMERAS})")
    if num == 0 or den == 0:
        raise FrameStateError(f"frame state has an impossible frame rate {num}/{den}")
    rate = FrameRate(num, den)
    tc = Timecode(hh, mm, ss, ff, rate, bool(bits & _FLAG_DROP_FRAME))
    off = _HEADER.size
    cams = []
    for i in range(ncam):
        if off >= n:
            raise FrameStateError(f"frame state truncated in camera {i}")
        ln = buf[off]
        off += 1
        if not 1 <= ln <= MAX_NAME_BYTES:
            raise FrameStateError(f"camera {i}: name length {ln} out of 1..{MAX_NAME_BYTES}")
        if off + ln + _CAMERA.size > n:
            raise FrameStateError(f"frame state truncated in camera {i}")
        name = bytes(buf[off:off + ln]).decode("utf-8")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise FrameStateError(f"camera {i}: name {name!r} has control characters")
        off += ln
        v = np.frombuffer(buf, dtype="<f8", count=_CAMERA_DOUBLES, offset=off).astype(np.float64)
        off += _CAMERA.size
        T = v[:16].reshape(4, 4).copy()
        focal, px, py, pupil, zoom, focus, sw, sh = v[16:24].tolist()
        lens = LensValues(
            focal, (px, py), pupil, "cluster",
            None if math.isnan(zoom) else zoom, None if math.isnan(focus) else focus,
        )
        ov = v[24:28]
        if np.isnan(ov).any() and not np.isnan(ov).all():
            raise FrameStateError(f"camera {name!r}: overscan must be four numbers or none, got {ov.tolist()}")
        soft = float(v[28])
        cams.append(CameraState(name, T, lens, (sw, sh), None if np.isnan(ov[0]) else tuple(ov.tolist()),
                                None if math.isnan(soft) else soft))
    if off != n:
        raise FrameStateError(f"frame state has {n - off} trailing bytes")
    names = [c.name for c in cams]
    if len(set(names)) != len(names):
        raise FrameStateError(f"frame state repeats a camera name: {names}")
    flags = OperatorFlags(
        blackout=bool(bits & _FLAG_BLACKOUT), inner_enabled=bool(bits & _FLAG_INNER),
        freeze_inner=bool(bits & _FLAG_FREEZE),
    )
    return FrameState(frame, tc, edge, _CLOCKS[clock], epoch, tuple(cams), flags, seq, session, features_seq)


# ================================================================================ operator-state codec

# magic, version, session, features_seq, length of the JSON part; then the JSON (UTF-8), then every 3D LUT's
# table (N x N x N x 3 float32 little-endian, indexed [r, g, b]) in the order of the JSON's "luts"
_FEAT_HEADER = struct.Struct("<4sBIQI")

_LUT_KEYS = ("size", "domain_min", "domain_max", "title", "source")
_FEATURE_KEYS = (*(name for name, _, _ in values_of(FeatureState)), "luts")


class FeatureUpdate(NamedTuple):
    """One decoded operator state: the render-relevant part of what the operator set on the primary (light
    cards, chroma key, colour corrections with their 3D LUTs, per-output patterns and blackouts, the
    per-camera freeze, the outputs shown uncalibrated), as the primary's frame plan uses it. ``seq``: its number (1, 2, ... per primary
    session; the :attr:`FrameState.features_seq` of the frames planned with it); ``session``: the primary's
    session id."""

    seq: int
    session: int
    features: FeatureState


def encode_features(features: FeatureState, *, seq: int, session: int) -> bytes:
    """The wire bytes of an operator state (``features`` as number ``seq`` of primary session ``session``).

    Pure and canonical (decoding and encoding again gives the same bytes). The 3D LUTs travel as their tables
    (a node needs no LUT file; one table per distinct LUT). Raises :class:`FrameStateError` for a state that
    cannot be written (more than :data:`MAX_WIRE_LUTS` LUTs, more than :data:`MAX_FEATURES_BYTES` in all, a
    number out of range).
    """
    luts: list[Lut3D] = []

    def lut_index(lut: Lut3D) -> int:
        for i, have in enumerate(luts):
            if have == lut:
                return i
        luts.append(lut)
        return len(luts) - 1

    try:
        doc = to_dict(features, lut=lut_index)  # the features in model units, LUTs by index
        doc["luts"] = [{"size": t.size, "domain_min": list(t.domain_min), "domain_max": list(t.domain_max),
                        "title": t.title, "source": t.source} for t in luts]
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, AttributeError) as exc:
        raise FrameStateError(f"cannot encode operator state {seq}: {exc}") from None
    if len(luts) > MAX_WIRE_LUTS:
        raise FrameStateError(f"an operator state carries at most {MAX_WIRE_LUTS} 3D LUTs, got {len(luts)}")
    if len(text) > MAX_FEATURES_JSON:
        raise FrameStateError(f"operator state {seq} is too large: {len(text)} bytes of JSON "
                              f"(at most {MAX_FEATURES_JSON})")
    total = _FEAT_HEADER.size + len(text) + sum(t.table.nbytes for t in luts)
    if total > MAX_FEATURES_BYTES:
        raise FrameStateError(f"operator state {seq} is too large: {total} bytes with its 3D LUTs "
                              f"(at most {MAX_FEATURES_BYTES})")
    try:
        head = _FEAT_HEADER.pack(FEATURES_MAGIC, WIRE_VERSION, int(session), int(seq), len(text))
    except struct.error as exc:
        raise FrameStateError(f"cannot encode operator state {seq}: {exc}") from None
    return b"".join([head, text, *(t.table.astype("<f4", copy=False).tobytes() for t in luts)])


def decode_features(data: bytes | bytearray | memoryview) -> FeatureUpdate:
    """The :class:`FeatureUpdate` in ``data``. Pure; anything malformed (wrong magic or version, truncated or
    trailing bytes, JSON that is not exactly the encoder's layout, a value a feature refuses, a LUT index out
    of range) raises :class:`FrameStateError` and nothing else. The names of walls, outputs and cameras are
    not checked here: that needs the stage (:meth:`FeatureState.check`, done by the node)."""
    try:
        return _decode_features(memoryview(data).cast("B"))
    except FrameStateError:
        raise
    except FeatureError as exc:
        raise FrameStateError(f"malformed operator state: {exc}") from None
    except (struct.error, ValueError, TypeError, UnicodeDecodeError, IndexError, OverflowError,
            RecursionError) as exc:
        raise FrameStateError(f"malformed operator state: {exc}") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise FrameStateError("operator state JSON repeats a key")
    return d


def _no_constant(name: str) -> Any:
    raise FrameStateError(f"operator state JSON holds {name}; numbers must be finite")


def _obj(v: Any, keys: tuple[str, ...], what: str) -> dict:
    if not isinstance(v, dict) or set(v) != set(keys):
        got = sorted(v) if isinstance(v, dict) else type(v).__name__
        raise FrameStateError(f"operator state: {what}: expected an object with keys {list(keys)}, got {got}")
    return v


def _list(v: Any, what: str) -> list:
    if not isinstance(v, list):
        raise FrameStateError(f"operator state: {what}: expected a list, got {type(v).__name__}")
    return v


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FrameStateError(f"operator state: {what}: expected a number, got {v!r}")
    return float(v)


def _nums(v: Any, n: int, what: str) -> tuple[float, ...]:
    v = _list(v, what)
    if len(v) != n:
        raise FrameStateError(f"operator state: {what}: expected {n} numbers, got {len(v)}")
    return tuple(_num(x, what) for x in v)


def _text(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise FrameStateError(f"operator state: {what}: expected a string, got {type(v).__name__}")
    return v


def _whole(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FrameStateError(f"operator state: {what}: expected a whole number, got {v!r}")
    return v


def _decode_features(buf: memoryview) -> FeatureUpdate:
    n = len(buf)
    if n < _FEAT_HEADER.size:
        raise FrameStateError(f"operator state truncated: {n} bytes, the header alone is {_FEAT_HEADER.size}")
    magic, version, session, seq, jlen = _FEAT_HEADER.unpack_from(buf, 0)
    if magic != FEATURES_MAGIC:
        raise FrameStateError(f"not an operator state (magic {bytes(magic)!r}, expected {FEATURES_MAGIC!r})")
    if version != WIRE_VERSION:
        raise FrameStateError(f"operator state version {version}; this stagectl reads version {WIRE_VERSION}")
    if jlen > MAX_FEATURES_JSON or _FEAT_HEADER.size + jlen > n:
        raise FrameStateError(f"operator state truncated: its JSON part claims {jlen} bytes")
    off = _FEAT_HEADER.size + jlen
    doc = _obj(json.loads(bytes(buf[_FEAT_HEADER.size:off]).decode("utf-8"), object_pairs_hook=_json_object,
                          parse_constant=_no_constant), _FEATURE_KEYS, "state")
    # 3D LUTs first: the colour corrections refer to them by index
    luts: list[Lut3D] = []
    lut_docs = _list(doc["luts"], "luts")
    if len(lut_docs) > MAX_WIRE_LUTS:
        raise FrameStateError(f"operator state carries {len(lut_docs)} 3D LUTs (at most {MAX_WIRE_LUTS})")
    for i, ld in enumerate(lut_docs):
        ld = _obj(ld, _LUT_KEYS, f"luts[{i}]")
        size = _whole(ld["size"], f"luts[{i}].size")
        if not 2 <= size <= 256:
            raise FrameStateError(f"operator state: luts[{i}].size: expected 2..256, got {size}")
        count = size ** 3 * 3
        if off + 4 * count > n:
            raise FrameStateError(f"operator state truncated in the table of 3D LUT {i}")
        table = np.frombuffer(buf, dtype="<f4", count=count, offset=off).reshape(size, size, size, 3).copy()
        off += 4 * count
        luts.append(Lut3D(table, title=_text(ld["title"], f"luts[{i}].title"),
                          domain_min=_nums(ld["domain_min"], 3, f"luts[{i}].domain_min"),
                          domain_max=_nums(ld["domain_max"], 3, f"luts[{i}].domain_max"),
                          source=_text(ld["source"], f"luts[{i}].source")))
    if off != n:
        raise FrameStateError(f"operator state has {n - off} trailing bytes")

    def lut_at(v: Any, what: str) -> Lut3D:
        i = _whole(v, what)
        if not 0 <= i < len(luts):
            raise FrameStateError(f"operator state: {what}: no 3D LUT {i} (it carries {len(luts)})")
        return luts[i]

    del doc["luts"]
    try:
        features = from_dict(FeatureState, doc, lut=lut_at)  # exactly the declared keys, every value checked
    except FieldError as exc:
        raise FrameStateError(f"operator state: {exc}") from None
    return FeatureUpdate(seq, session, features)


# ======================================================================================= addresses


def parse_primary_address(text: str) -> tuple[str, int, int]:
    """``HOST``, ``HOST:PORT`` (sync port = PORT + 1) or ``HOST:PORT,SYNC_PORT`` -> ``(host, state, sync)``.

    An empty host means ``127.0.0.1``; without ports the defaults (:data:`DEFAULT_STATE_PORT`,
    :data:`DEFAULT_SYNC_PORT`) apply. IPv4 addresses and host names only. Raises ``ValueError`` with a message
    that says what was expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected HOST[:PORT[,SYNC_PORT]], e.g. 10.0.0.5:{DEFAULT_STATE_PORT}, "
                         f"got {text!r}")
    host, sep, ports = text.strip().partition(":")
    host = host or "127.0.0.1"
    if any(c in host for c in "/ [],") or ":" in ports:
        raise ValueError(f"expected HOST[:PORT[,SYNC_PORT]] (IPv4 or a host name), got {text!r}")
    if not sep:
        return host, DEFAULT_STATE_PORT, DEFAULT_SYNC_PORT
    parts = ports.split(",")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"expected HOST:PORT or HOST:PORT,SYNC_PORT with port numbers, got {text!r}")
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        nums.append(nums[0] + 1)
    if not all(1 <= p <= 65535 for p in nums) or nums[0] == nums[1]:
        raise ValueError(f"ports must be two different numbers in 1..65535, got {text!r}")
    return host, nums[0], nums[1]


def _bind_endpoint(host: str, port: int) -> str:
    return f"tcp://{host}:{'*' if int(port) == 0 else int(port)}"


def _port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


# ===================================================================================== results, status


class BarrierResult(NamedTuple):
    """The answer to one barrier wait.

    ``released``: the primary released this wait (every live member was ready, or the ones that were not were
    dropped); False when no answer came within the caller's timeout (primary gone or stalled: present anyway).
    ``elapsed_ns``: from the report to the answer (monotonic ns). ``members``: the barrier members after this
    release (names, sorted); a caller not among them is out of the barrier (behind, or dropped) and rejoins by
    reporting a frame that is not released yet.
    """

    released: bool
    elapsed_ns: int
    members: tuple[str, ...]


def _percentiles_us(values: Iterable[int]) -> tuple[float | None, float | None, float | None]:
    a = np.fromiter(values, dtype=np.int64)
    if a.size == 0:
        return None, None, None
    us = a / 1000.0
    return float(np.percentile(us, 50)), float(np.percentile(us, 99)), float(us.max())


def _fmt_ms(us: float | None) -> str:
    return "n/a" if us is None else f"{us / 1000.0:.2f}"


@dataclass(frozen=True)
class PeerStatus:
    """One participant as the primary sees it. ``state``: ``joining`` (known, never ready yet), ``member``
    (in the barrier) or ``dropped`` (missed a barrier or went silent; rejoins by itself). ``alive``: heard
    from within the liveness time. ``subscribed``: its SUB subscription reached the primary. ``last_frame``:
    the last frame it reported ready. ``wait_*_us``: its own barrier round trips (as it reports them)."""

    name: str
    state: str
    alive: bool
    subscribed: bool
    is_primary: bool
    last_frame: int | None
    last_seen_ms: float | None
    drops: int
    rejoins: int
    reconnects: int
    last_drop: str | None
    wait_p50_us: float | None
    wait_p99_us: float | None
    wait_max_us: float | None


@dataclass(frozen=True)
class ClusterStatus:
    """The primary's view: who is in the barrier, who was dropped, per-node last frame, and barrier stats.

    ``rounds``: barrier releases; ``timed_out_rounds``: releases that dropped someone; ``hold_*_us``: how long
    rounds held (release minus open) over the last 1024 rounds; ``published``: the last sequence number;
    ``features_seq``: the number of the last operator state published (0: none); ``bad_messages``: sync
    messages refused (unknown kind, wrong frames, a name that is not :func:`valid_peer_name`);
    ``refused_peers``: well-formed messages from a new name refused because the table was full of live nodes;
    ``auth``: ``"curve"`` (only the listed node keys are admitted) or ``"none"`` (unauthenticated);
    ``refused_connections`` / ``refused_by_reason``: handshakes refused (no CURVE, an unlisted key, a failed
    handshake; :data:`~stagectl.sync.zmq_security.Refusals.REASONS`); ``forged_names``: messages and
    subscriptions of an admitted key that named another node (dropped); ``rate_limited``: messages over their
    peer's rate (dropped).
    """

    session: int
    published: int
    features_seq: int
    members: tuple[str, ...]
    dropped: tuple[str, ...]
    joining: tuple[str, ...]
    nodes: dict[str, PeerStatus]
    rounds: int
    timed_out_rounds: int
    hold_p50_us: float | None
    hold_p99_us: float | None
    hold_max_us: float | None
    bad_messages: int
    errors: int
    last_error: str | None
    refused_peers: int = 0
    auth: str = "none"
    refused_connections: int = 0
    refused_by_reason: dict[str, int] = field(default_factory=dict)
    forged_names: int = 0
    rate_limited: int = 0

    def summary(self) -> str:
        """One line for a status display."""
        nodes = " ".join(
            f"{n}:{p.state}{'' if p.alive else '(silent)'}@{'-' if p.last_frame is None else p.last_frame}"
            for n, p in sorted(self.nodes.items())
        ) or "no nodes"
        return (f"cluster: {len(self.members)} in barrier, dropped [{' '.join(self.dropped)}] | {nodes} | "
                f"operator state #{self.features_seq} | "
                f"{self.rounds} rounds, {self.timed_out_rounds} timed out, "
                f"hold p50 {_fmt_ms(self.hold_p50_us)} ms "
                f"p99 {_fmt_ms(self.hold_p99_us)} ms max {_fmt_ms(self.hold_max_us)} ms | "
                + (f"CURVE: {self.refused_connections} refused, {self.forged_names} forged names"
                   if self.auth == "curve" else "unauthenticated")
                + (f", {self.rate_limited} over rate" if self.rate_limited else ""))

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "nodes"}
        d["nodes"] = {n: dict(p.__dict__) for n, p in self.nodes.items()}
        d["members"], d["dropped"], d["joining"] = list(self.members), list(self.dropped), list(self.joining)
        d["refused_by_reason"] = dict(self.refused_by_reason)
        return d


@dataclass
class _Peer:
    name: str
    rid: bytes | None = None
    is_self: bool = False
    state: str = "joining"
    alive: bool = True
    subscribed: bool = False
    last_seen_ns: int = 0
    last_frame: int | None = None
    drops: int = 0
    rejoins: int = 0
    reconnects: int = 0
    last_drop: str | None = None
    waits: deque = field(default_factory=lambda: deque(maxlen=1024))


class _Waiter(NamedTuple):
    frame: int
    t_ns: int
    rid: bytes | None


# ======================================================================================= primary

_U64 = struct.Struct("<Q")
_Q = struct.Struct("<q")
_READY = struct.Struct("<qIq")  # frame, session, previous wait ns
_GO = struct.Struct("<qBq")  # frame, flags (1 released, 2 in barrier), hold ns
_SNAP = struct.Struct("<QIq")  # seq, session, barrier timeout ns
#: Node -> primary messages: frames in all (the router's identity included) and the size of the fourth frame
_NODE_FRAMES = {b"HELLO": 4, b"HB": 4, b"READY": 4, b"SNAP": 3, b"BYE": 3}
_NODE_PAYLOAD = {b"HELLO": _U64.size, b"HB": _Q.size, b"READY": _READY.size}


class Primary:
    """The primary's side: publishes frame states, answers snapshots, runs the swap barrier.

    :param rate: the stage frame rate (sets the default barrier timeout).
    :param bind: interface to bind (``"127.0.0.1"``, ``"*"`` for all, or an address of this machine).
    :param state_port: port of the XPUB socket of frame states (0: a free port, read :attr:`state_port`).
    :param sync_port: port of the ROUTER socket (snapshots, barrier, heartbeats; 0: a free port).
    :param timeout_ns: a barrier member that has not reported this long after a round opened is dropped
        (default ``DEFAULT_TIMEOUT_FRAMES`` frame periods, exact).
    :param member: the primary's own name in the barrier (it reports through :meth:`barrier`), or ``None``:
        the primary only coordinates the nodes.
    :param liveness_ns: a node not heard from this long is not alive (and out of the barrier).
    :param forget_ns: a node not heard from this long is removed from the table (and from :meth:`status`).
    :param context: a ``zmq.Context`` to use (default: a new one, terminated by :meth:`close`). Not with
        ``keys``: the ZAP handler is per context, so a primary with keys makes its own.
    :param keys: CURVE (:func:`~stagectl.sync.zmq_security.cluster_server_keys`): both sockets become CURVE
        servers with the server pair, and only the node keys in ``keys.allowed_dir`` (``<keys>/nodes``) are
        admitted; a message or subscription naming node ``X`` is accepted only from the key ``X.key`` (its
        ZAP User-Id), anything else is counted in ``forged_names`` and dropped. None: no authentication.
    :param peer_rate_per_s: sync messages per second one peer (a connection; with ``keys`` a node key) may
        send, at most that many at once (default: four per frame, at least 200); more are dropped and counted
        in ``rate_limited``. Snapshot requests are limited to :data:`SNAPSHOT_RATE_PER_S` besides.

    ``start()`` binds (raising :class:`ClusterError` when it cannot) and starts the service thread;
    ``close()`` stops it through the inproc pipe and closes every socket within ``timeout_s``.
    """

    def __init__(
        self,
        rate: FrameRate,
        *,
        bind: str = "127.0.0.1",
        state_port: int = DEFAULT_STATE_PORT,
        sync_port: int = DEFAULT_SYNC_PORT,
        timeout_ns: int | None = None,
        member: str | None = "primary",
        liveness_ns: int = LIVENESS_NS,
        context: zmq.Context | None = None,
        realtime_priority: int | None = None,
        forget_ns: int = FORGET_NS,
        keys: ServerKeys | None = None,
        peer_rate_per_s: float | None = None,
    ) -> None:
        self.rate = rate if isinstance(rate, FrameRate) else FrameRate.parse(rate)
        if keys is not None and context is not None:
            raise ClusterError("a primary with CURVE keys makes its own zmq context (the ZAP handler that checks "
                               "the node keys is per context): leave `context` out")
        #: The CURVE keys (None: no authentication) and every refused connection (by reason and peer).
        self.keys = keys
        self.refusals = Refusals()
        self._auth: KeyAuthenticator | None = None
        rate_per_s = float(peer_rate_per_s) if peer_rate_per_s else max(200.0, 4.0 * self.rate.fps)
        self._rates = PeerRates(rate_per_s, max(32.0, rate_per_s), MAX_PEERS * 4)
        self._snap_rates = PeerRates(SNAPSHOT_RATE_PER_S, SNAPSHOT_BURST, MAX_PEERS * 4)
        self._sub_rates = PeerRates(SUBSCRIBE_RATE_PER_S, SUBSCRIBE_BURST, MAX_PEERS * 4)
        self._reads = PeerRates(MAX_SYNC_READS_PER_S, MAX_SYNC_READS_PER_S / 20, 1)  # every peer together
        self._reads_paused_until = 0
        #: SCHED_FIFO priority of the service thread (it sleeps in poll and wakes for every report: at real-time
        #: priority a report is answered at once on a busy machine); None: normal. ``service_priority`` says what
        #: the thread got, once it runs.
        self.realtime_priority = realtime_priority
        self.service_priority = None
        self.bind = str(bind)
        self._want_ports = (int(state_port), int(sync_port))
        if timeout_ns is None:
            timeout_ns = self.rate.frames_to_ns(DEFAULT_TIMEOUT_FRAMES)
        self.timeout_ns = int(timeout_ns)
        if self.timeout_ns <= 0:
            raise ClusterError(f"barrier timeout must be positive, got {self.timeout_ns} ns")
        self.member = None if member is None else _name_bytes(member, "primary member name").decode()
        if self.member is not None and not valid_peer_name(self.member):
            raise ClusterError(f"primary member name {self.member!r}: expected printable characters")
        self.liveness_ns = int(liveness_ns)
        self.forget_ns = max(int(forget_ns), self.liveness_ns)
        self.session = int.from_bytes(os.urandom(4), "little") or 1
        self._own_ctx = context is None
        self._ctx = context
        self._pipe: zmq.Socket | None = None
        self._pipe_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._features_seq = 0
        self._features: FeatureState | None = None  # the last operator state given to publish()
        self.state_port = 0
        self.sync_port = 0
        # service-thread state (guarded by _lock for status readers)
        self._lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}
        self._waiters: dict[str, _Waiter] = {}
        self._snapshot: tuple[int, bytes] = (0, b"")
        self._features_snapshot = b""  # the latest operator state's bytes (empty: none published)
        self._last_released: int | None = None
        self._last_release_ns: int | None = None
        self._last_deadline_ns: int | None = None  # open + timeout of the last released round
        self._deadline: int | None = None
        self._holds: deque = deque(maxlen=1024)
        self._rounds = 0
        self._timed_out = 0
        self._bad = 0
        self._refused_peers = 0
        self._forged = 0
        self._rate_limited = 0
        self._errors = 0
        self._last_error: str | None = None
        # the primary's own barrier wait
        self._cv = threading.Condition()
        self._self_frame: int | None = None
        self._self_answer: tuple[int, tuple[str, ...]] | None = None
        self._self_prev_wait = 0
        if self.member is not None:
            self._peers[self.member] = _Peer(self.member, is_self=True, subscribed=True)
        self._closed = False

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Primary:
        """Bind the sockets and start the service thread; :class:`ClusterError` when a port is taken."""
        if self._thread is not None:
            return self
        if self._ctx is None:
            self._ctx = zmq.Context()
        ctx = self._ctx
        made: list[zmq.Socket] = []
        auth = None
        monitors: list[RefusalMonitor] = []

        def sock(kind: int) -> zmq.Socket:
            s = ctx.socket(kind)
            s.setsockopt(zmq.LINGER, 0)
            made.append(s)
            return s

        try:
            if self.keys is not None:
                auth = KeyAuthenticator(ctx, self.keys.allowed_dir, self.refusals)
                auth.start()  # before binding: a CURVE server without a ZAP handler would admit any key
                auth.load()
            xpub = sock(zmq.XPUB)
            router = sock(zmq.ROUTER)
            for s in (xpub, router):  # inbound: subscriptions and node messages, all small
                s.setsockopt(zmq.MAXMSGSIZE, MAX_SYNC_FRAME_BYTES)
                if self.keys is not None:
                    self.keys.apply(s)
            svc_pipe = sock(zmq.PAIR)
            pipe = sock(zmq.PAIR)
            binds = ((xpub, self._want_ports[0], "state"), (router, self._want_ports[1], "sync"))
            for s, port, what in binds:
                ep = _bind_endpoint(self.bind, port)
                try:
                    s.bind(ep)
                except zmq.ZMQError as exc:
                    raise ClusterError(f"cannot bind the cluster {what} socket to {ep}: {exc}") from None
            self.state_port = _port_of(xpub.last_endpoint.decode())
            self.sync_port = _port_of(router.last_endpoint.decode())
            if self.keys is not None:  # refused handshakes, counted by reason and peer
                monitors = [RefusalMonitor("state", xpub, self.refusals),
                            RefusalMonitor("sync", router, self.refusals)]
                made += [m.socket for m in monitors]
            addr = f"inproc://stagectl-cluster-{id(self):x}-{self.session:x}"
            svc_pipe.bind(addr)
            pipe.connect(addr)
        except BaseException:
            for s in made:
                s.close(linger=0)
            if auth is not None:
                auth.stop()
            if self._own_ctx:
                ctx.term()
                self._ctx = None
            raise
        self._pipe = pipe
        self._auth = auth
        self._thread = threading.Thread(
            target=self._serve, args=(xpub, router, svc_pipe, monitors), name="stagectl-cluster-primary",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def address(self) -> str:
        """``HOST:STATE_PORT,SYNC_PORT`` as ``stagectl node --primary`` takes it (127.0.0.1 for ``*``)."""
        host = "127.0.0.1" if self.bind in ("*", "0.0.0.0", "") else self.bind
        return f"{host}:{self.state_port},{self.sync_port}"

    def close(self, timeout_s: float = 1.0) -> bool:
        """Stop the service thread through the pipe, close every socket (linger 0) and terminate the context
        (when it is ours). Returns True when everything stopped within ``timeout_s``. Idempotent."""
        if self._closed:
            return True
        self._closed = True
        ok = True
        if self._thread is not None and self._pipe is not None:
            with self._pipe_lock:
                try:
                    self._pipe.send(b"STOP", zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass
            self._thread.join(timeout_s)
            ok = not self._thread.is_alive()
        if self._pipe is not None:
            self._pipe.close(linger=0)
            self._pipe = None
        with self._cv:
            self._cv.notify_all()
        if self._auth is not None and ok:
            self._auth.stop()
            self._auth = None
        if self._own_ctx and self._ctx is not None:
            if ok:
                self._ctx.term()
            else:  # the service thread is stuck: do not block here; its sockets go with the process
                self._ctx.destroy(linger=0)
            self._ctx = None
        return ok

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frame loop side
    def _send_pipe(self, frames: list[bytes]) -> None:
        if self._pipe is None or self._closed:
            raise ClusterError("the cluster primary is not running (start() it first, or it was closed)")
        with self._pipe_lock:
            self._pipe.send_multipart(frames)

    def publish(self, state: FrameState, features: FeatureState | None = None) -> int:
        """Publish ``state`` to every node with the next sequence number; returns that number. The state is
        encoded here (a state that cannot be encoded raises :class:`FrameStateError`); sending never
        blocks.

        ``features``: the operator's features this frame is planned with (``ControlHub.features``; None: as
        last given). When they differ from the last ones given, they are published first as the next operator
        state (:func:`encode_features`, number :attr:`features_seq`); the frame state names the number of the
        operator state in effect (``features_seq``), so a node renders the frame with exactly those features.
        An operator state that cannot be encoded (LUTs too large) is not sent: the error is counted in
        :meth:`status` (``errors``, ``last_error``) and the frames keep naming the previous one.
        """
        with self._pipe_lock:
            if self._pipe is None or self._closed:
                raise ClusterError("the cluster primary is not running (start() it first, or it was closed)")
            if features is not None and features is not self._features and features != self._features:
                self._features = features
                fseq = self._features_seq + 1
                try:
                    blob = encode_features(features, seq=fseq, session=self.session)
                except FrameStateError as exc:
                    with self._lock:
                        self._fail(FrameStateError(f"operator state not sent to the nodes: {exc}"))
                else:
                    self._pipe.send_multipart([b"FEAT", blob])
                    self._features_seq = fseq
            seq = self._seq + 1
            payload = encode_frame_state(state, seq=seq, session=self.session,
                                         features_seq=self._features_seq)
            self._pipe.send_multipart([b"PUB", _U64.pack(seq), payload])
            self._seq = seq
        return seq

    @property
    def features_seq(self) -> int:
        """Number of the last operator state published (0: none); frames published now name it."""
        return self._features_seq

    def barrier(self, frame: int, timeout_ns: int | None = None) -> BarrierResult:
        """The primary's own swap barrier for frame ``frame``: report ready and wait for the release.

        Returns within ``timeout_ns`` (default the barrier timeout plus a frame period): the service drops
        late nodes at the barrier timeout, so a wait only runs out when the service thread itself is stalled.
        Requires ``member`` to be set.
        """
        if self.member is None:
            raise ClusterError("this primary coordinates the barrier without being a member (member=None)")
        t0 = _now()
        limit = int(timeout_ns) if timeout_ns is not None else self.timeout_ns + self.rate.period_ns
        frame = int(frame)
        with self._cv:
            self._self_frame = frame
            self._self_answer = None
        self._send_pipe([b"ARRIVE", _READY.pack(frame, self.session, self._self_prev_wait)])
        deadline = t0 + limit
        with self._cv:
            while self._self_answer is None and not self._closed:
                remaining = deadline - _now()
                if remaining <= 0:
                    break
                self._cv.wait(remaining / 1e9)
            answer = self._self_answer
            self._self_frame = None
        elapsed = _now() - t0
        self._self_prev_wait = elapsed
        if answer is None:
            return BarrierResult(False, elapsed, ())
        return BarrierResult(True, elapsed, answer[1])

    def status(self) -> ClusterStatus:
        """A consistent snapshot of the cluster (copied under the service lock)."""
        now = _now()
        with self._lock:
            peers = {}
            for p in self._peers.values():
                p50, p99, pmax = _percentiles_us(p.waits)
                peers[p.name] = PeerStatus(
                    p.name, p.state, p.alive, p.subscribed, p.is_self, p.last_frame,
                    None if p.is_self or not p.last_seen_ns else (now - p.last_seen_ns) / 1e6,
                    p.drops, p.rejoins, p.reconnects, p.last_drop, p50, p99, pmax,
                )
            h50, h99, hmax = _percentiles_us(self._holds)
            return ClusterStatus(
                session=self.session,
                published=self._seq,
                features_seq=self._features_seq,
                members=tuple(sorted(n for n, p in peers.items() if p.state == "member")),
                dropped=tuple(sorted(n for n, p in peers.items() if p.state == "dropped")),
                joining=tuple(sorted(n for n, p in peers.items() if p.state == "joining")),
                nodes=peers,
                rounds=self._rounds,
                timed_out_rounds=self._timed_out,
                hold_p50_us=h50,
                hold_p99_us=h99,
                hold_max_us=hmax,
                bad_messages=self._bad,
                errors=self._errors,
                last_error=self._last_error,
                refused_peers=self._refused_peers,
                auth="none" if self.keys is None else "curve",
                refused_connections=self.refusals.total,
                refused_by_reason=dict(self.refusals.by_reason),
                forged_names=self._forged,
                rate_limited=self._rate_limited,
            )

    # ------------------------------------------------------------------ service thread
    def _serve(self, xpub: zmq.Socket, router: zmq.Socket, pipe: zmq.Socket,
               monitors: Sequence[RefusalMonitor] = ()) -> None:
        from stagectl.sync.frameloop import EdgePriority

        self.service_priority = EdgePriority(self.realtime_priority).start()
        self.service_priority.raise_()  # the whole thread: it only ever waits or answers
        poller = zmq.Poller()
        paused = zmq.Poller()  # over the read budget: the pipe and the monitors only, for a moment
        for s in (pipe, router, xpub, *(m.socket for m in monitors)):
            poller.register(s, zmq.POLLIN)
            if s is not router and s is not xpub:
                paused.register(s, zmq.POLLIN)
        sweep_ns = max(10_000_000, min(50_000_000, self.liveness_ns // 4))
        next_sweep = _now() + sweep_ns
        try:
            while True:
                now = _now()
                wake = next_sweep if self._deadline is None else min(next_sweep, self._deadline)
                resting = self._reads_paused_until > now
                if resting:
                    wake = min(wake, self._reads_paused_until)
                timeout_ms = max(0, -(-(wake - now) // 1_000_000))
                try:
                    events = dict((paused if resting else poller).poll(timeout_ms))
                except zmq.ZMQError:
                    return  # context terminated under us
                with self._lock:
                    if pipe in events and self._drain_pipe(pipe, xpub, router):
                        return
                    try:
                        if router in events:
                            self._drain_router(router)
                        if xpub in events:
                            self._drain_xpub(xpub)
                        for m in monitors:
                            if m.socket in events:
                                m.handle()
                        now = _now()
                        if now >= next_sweep:
                            self._sweep(now)
                            next_sweep = now + sweep_ns
                        self._try_release(router, _now())
                    except Exception as exc:  # noqa: BLE001 - counted; the service keeps running
                        self._fail(exc)
        finally:
            for m in monitors:
                m.close()
            for s in (xpub, router, pipe):
                s.close(linger=0)

    def _fail(self, exc: BaseException) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"

    def _drain_pipe(self, pipe: zmq.Socket, xpub: zmq.Socket, router: zmq.Socket) -> bool:
        while _readable(pipe):
            msg = pipe.recv_multipart(zmq.NOBLOCK)
            kind = msg[0]
            if kind == b"STOP":
                return True
            try:
                if kind == b"PUB":
                    seq = _U64.unpack(msg[1])[0]
                    self._snapshot = (seq, msg[2])
                    xpub.send(msg[2], zmq.NOBLOCK)
                elif kind == b"FEAT":  # before the frame states that name it (one pipe, one PUB socket)
                    self._features_snapshot = msg[1]
                    xpub.send(msg[1], zmq.NOBLOCK)
                elif kind == b"ARRIVE" and self.member is not None:
                    frame, _, prev = _READY.unpack(msg[1])
                    p = self._peers[self.member]
                    if prev:
                        p.waits.append(prev)
                    self._arrive(router, p, frame, _now(), None)
            except Exception as exc:  # noqa: BLE001 - the service thread never dies of one message
                self._fail(exc)
        return False

    def _read_budget(self, now: int) -> bool:
        """One more read from the node sockets is within :data:`MAX_SYNC_READS_PER_S`; else reading rests for
        a millisecond (the pipe is still served), so a flood costs this thread a bounded share of a core and of
        the interpreter lock. ZeroMQ's fair queueing still hands over the other peers' messages in turn."""
        if self._reads.allow(0, now):
            return True
        self._reads_paused_until = now + 1_000_000
        return False

    def _drain_router(self, router: zmq.Socket) -> None:
        """Handle the waiting node messages, at most 1024 or :data:`DRAIN_SLICE_NS`; a report that completes a
        round releases it at once (a flood of other messages does not delay the release)."""
        curve = self.keys is not None
        end = _now() + DRAIN_SLICE_NS
        for _ in range(1024):
            if not _readable(router) or not self._read_budget(_now()):
                return
            user = None
            if curve:  # the sender's User-Id: the stem of its key file in <keys>/nodes
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
                try:
                    user = frames[-1].get("User-Id")
                except zmq.ZMQError:
                    user = None
                msg = [f.bytes for f in frames]
            else:
                msg = router.recv_multipart(zmq.NOBLOCK)
            now = _now()
            try:
                if self._on_node_message(router, msg, now, user):
                    self._try_release(router, now)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
            if now >= end:
                return

    def _peer_name(self, raw: bytes) -> str | None:
        """The node name in ``raw``, or None when it is not one (bad UTF-8, not :func:`valid_peer_name`, or the
        primary's own name)."""
        if not 1 <= len(raw) <= MAX_NAME_BYTES:
            return None
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return name if valid_peer_name(name) and name != self.member else None

    def _register(self, name: str, rid: bytes | None, now: int) -> _Peer | None:
        """A new table entry for ``name``; when the table is full, the longest-silent node out of the barrier
        is forgotten to make room, and None (refused, counted) when every node in it is alive or a member."""
        if len(self._peers) >= MAX_PEERS:
            idle = [q for q in self._peers.values() if not q.is_self and q.state != "member" and not q.alive]
            if not idle:
                self._refused_peers += 1
                return None
            self._forget(min(idle, key=lambda q: q.last_seen_ns))
        p = self._peers[name] = _Peer(name, rid, last_seen_ns=now)
        return p

    def _forget(self, p: _Peer) -> None:
        self._peers.pop(p.name, None)
        self._waiters.pop(p.name, None)

    def _on_node_message(self, router: zmq.Socket, msg: list[bytes], now: int, user: str | None = None) -> bool:
        """Handle one node message (``user``: the sender's CURVE User-Id, None without CURVE); True when it
        was a barrier report."""
        # the sender's rate first (a flood costs a look-up per message), then the kind and the frames: nothing
        # unchecked reaches the table
        who = msg[0] if user is None else user
        if not self._rates.allow(who, now):
            self._rate_limited += 1
            return False
        if len(msg) < 3 or len(msg) != _NODE_FRAMES.get(msg[1], -1):
            self._bad += 1
            return False
        rid, kind, raw_name = msg[0], msg[1], msg[2]
        size = _NODE_PAYLOAD.get(kind)
        if size is not None and len(msg[3]) != size:
            self._bad += 1
            return False
        name = self._peer_name(raw_name)
        if name is None:
            self._bad += 1
            return False
        if self.keys is not None and name != user:  # a node speaks for itself only: its name is its key's
            self._forged += 1
            return False
        if kind == b"SNAP" and not self._snap_rates.allow(who, now):
            self._rate_limited += 1
            return False
        if kind == b"BYE":  # only from the connection the name last spoke on
            p = self._peers.get(name)
            if p is not None and not p.is_self and p.rid in (None, rid):
                self._forget(p)
            return False
        p = self._peers.get(name)
        if p is None:
            p = self._register(name, rid, now)
            if p is None:
                return False
        elif p.rid != rid:
            if p.rid is not None:
                p.reconnects += 1
            p.rid = rid
        p.last_seen_ns = now
        p.alive = True
        if kind == b"READY":
            frame, session, prev = _READY.unpack(msg[3])
            if prev > 0:
                p.waits.append(prev)
            if session not in (0, self.session):
                # a node still following a previous primary: let it go at once, it will re-snapshot
                router.send_multipart([rid, b"GO", _GO.pack(frame, 0, 0), b""], zmq.NOBLOCK)
                return False
            self._arrive(router, p, frame, now, rid)
            return True
        if kind == b"SNAP":
            seq, payload = self._snapshot
            router.send_multipart([rid, b"SNAP", _SNAP.pack(seq, self.session, self.timeout_ns), payload,
                                   self._features_snapshot], zmq.NOBLOCK)
        # HB and HELLO: liveness already noted
        return False

    def _drain_xpub(self, xpub: zmq.Socket) -> None:
        curve = self.keys is not None
        for _ in range(1024):
            if not _readable(xpub) or not self._read_budget(_now()):
                return
            user = None
            if curve:  # the subscriber's User-Id: the stem of its key file in <keys>/nodes
                frame = xpub.recv(zmq.NOBLOCK, copy=False)
                m = frame.bytes
                try:
                    user = frame.get("User-Id")
                except zmq.ZMQError:
                    user = None
            else:
                m = xpub.recv(zmq.NOBLOCK)
            if len(m) > 1 and m[1:].startswith(_NODE_TOPIC):
                # XPUB does not say which connection a subscription came from: without CURVE one bucket for all
                if not self._sub_rates.allow(user or "", _now()):
                    self._rate_limited += 1
                    continue
                name = self._peer_name(m[1 + len(_NODE_TOPIC):])
                if name is None:
                    self._bad += 1
                    continue
                if curve and name != user:
                    self._forged += 1
                    continue
                p = self._peers.get(name)
                if p is None:
                    if m[0] != 1:
                        continue  # the unsubscription of a node that said goodbye
                    p = self._register(name, None, _now())
                    if p is None:
                        continue
                p.subscribed = m[0] == 1

    def _arrive(self, router: zmq.Socket, p: _Peer, frame: int, now: int, rid: bytes | None) -> None:
        p.last_frame = frame
        lr = self._last_released
        if lr is not None and frame <= lr:
            # a frame already released: present at once. A non-member that reports the frame just released
            # before that round's deadline would have made that barrier: it is in for the next frames. One
            # that reports after the deadline is slower than the timeout and stays out (it would only cost
            # everybody a timeout every frame).
            if p.state != "member" and frame == lr and now <= self._last_deadline_ns:
                self._admit(p)
            self._answer(router, p.name, rid, frame, released=True, in_barrier=p.state == "member", hold=0,
                         members=self._member_names())
            return
        if p.state != "member":
            self._admit(p)
        old = self._waiters.get(p.name)
        if old is None or old.frame != frame:
            self._waiters[p.name] = _Waiter(frame, now, rid)

    def _admit(self, p: _Peer) -> None:
        if p.state == "dropped":
            p.rejoins += 1
        p.state = "member"

    def _member_names(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, q in self._peers.items() if q.state == "member"))

    def _answer(self, router, name, rid, frame, *, released, in_barrier, hold, members) -> None:
        if rid is None:  # the primary itself
            with self._cv:
                if self._self_frame == frame:
                    self._self_answer = (frame, members)
                    self._cv.notify_all()
            return
        flags = (1 if released else 0) | (2 if in_barrier else 0)
        router.send_multipart([rid, b"GO", _GO.pack(frame, flags, hold), "\n".join(members).encode()],
                              zmq.NOBLOCK)

    def _drop(self, p: _Peer, why: str) -> None:
        p.state = "dropped"
        p.drops += 1
        p.last_drop = why

    def _sweep(self, now: int) -> None:
        for p in [q for q in self._peers.values() if not q.is_self and now - q.last_seen_ns > self.forget_ns]:
            self._forget(p)  # silent for good: the table shrinks
        for p in self._peers.values():
            if p.is_self or not p.alive:
                continue
            if now - p.last_seen_ns > self.liveness_ns:
                p.alive = False
                self._waiters.pop(p.name, None)
                if p.state == "member":
                    self._drop(p, f"silent for more than {self.liveness_ns / 1e6:.0f} ms")

    def _try_release(self, router: zmq.Socket, now: int) -> None:
        self._deadline = None
        while self._waiters:
            kmin = min(w.frame for w in self._waiters.values())
            group = [(n, w) for n, w in self._waiters.items() if w.frame == kmin]
            missing = [p for n, p in self._peers.items() if p.state == "member" and n not in self._waiters]
            opened = min(w.t_ns for _, w in group)
            if self._last_release_ns is not None:
                opened = max(opened, self._last_release_ns)
            timed_out = False
            if missing:
                deadline = opened + self.timeout_ns
                if now < deadline:
                    self._deadline = deadline
                    return
                for p in missing:
                    self._drop(p, f"not ready for frame {kmin} within {self.timeout_ns / 1e6:.1f} ms")
                timed_out = True
            for n, _ in group:
                del self._waiters[n]
            members = self._member_names()
            hold = now - opened
            # remote nodes first: waking the primary's own frame loop makes it compete for the GIL
            for n, w in sorted(group, key=lambda nw: nw[1].rid is None):
                self._answer(router, n, w.rid, kmin, released=True, in_barrier=n in members, hold=hold,
                             members=members)
            self._rounds += 1
            self._timed_out += timed_out
            self._holds.append(hold)
            if self._last_released is None or kmin >= self._last_released:
                self._last_released = kmin
                self._last_deadline_ns = opened + self.timeout_ns
            self._last_release_ns = now


# ======================================================================================= node


@dataclass(frozen=True)
class NodeStatus:
    """A node's own counters. ``states``: states accepted (snapshot included); ``skipped``: accepted states
    :meth:`Node.latest_state` passed over; ``gaps``/``missed``: sequence jumps and the states lost in them;
    ``decode_errors``: malformed messages dropped; ``waits``/``released``/``wait_timeouts``: barrier waits,
    the ones released, the ones that ran out locally; ``out_of_barrier``: releases where this node was not a
    member; ``wait_*_us``: barrier round trips (report -> release) of the last 1024 waits.
    ``features_seq``: the newest operator state held (0: none); ``features``: operator states accepted;
    ``features_behind``: frames that named an operator state this node did not have (rendered with the last
    one it had, a snapshot asked for); ``features_rejected``: operator states refused by the node's check
    against its stage (dropped). ``auth``: ``"curve"`` (this node connects with its key) or ``"none"``;
    ``auth_error``: why the primary refused the last handshake (None: it did not), e.g. this node's key is not
    listed there."""

    name: str
    connected: bool
    session: int | None
    seq: int
    last_frame: int | None
    states: int
    skipped: int
    snapshots: int
    gaps: int
    missed: int
    stale: int
    decode_errors: int
    bad_messages: int
    waits: int
    released: int
    wait_timeouts: int
    out_of_barrier: int
    members: tuple[str, ...]
    wait_p50_us: float | None
    wait_p99_us: float | None
    wait_max_us: float | None
    features_seq: int = 0
    features: int = 0
    features_behind: int = 0
    features_rejected: int = 0
    auth: str = "none"
    auth_error: str | None = None

    def summary(self) -> str:
        return (f"frame {self.last_frame if self.last_frame is not None else '-'}: {self.states} states "
                f"({self.skipped} skipped, {self.gaps} gaps, {self.decode_errors} bad) | "
                f"operator state #{self.features_seq} ({self.features_behind} frames behind, "
                f"{self.features_rejected} rejected) | "
                f"barrier {self.waits} waits, {self.released} released, {self.wait_timeouts} timed out, "
                f"{self.out_of_barrier} out of barrier, "
                f"wait p50 {_fmt_ms(self.wait_p50_us)} ms p99 {_fmt_ms(self.wait_p99_us)} ms | "
                f"members [{' '.join(self.members)}]")


class Node:
    """A render node's side: follows the primary's frame states and meets the swap barrier.

    :param name: this node's name (the stage's ``outputs[].node``), 1..64 UTF-8 bytes.
    :param primary: ``HOST[:PORT[,SYNC_PORT]]`` of the primary (:func:`parse_primary_address`).
    :param rate: the stage frame rate, for the default wait before the first snapshot says the primary's
        barrier timeout (then: that timeout plus one frame period).
    :param heartbeat_ns: send a heartbeat when nothing was sent for this long.
    :param context: a ``zmq.Context`` (default: a new one, terminated by :meth:`close`).
    :param features_check: ``fn(features) -> features`` run on every operator state received: raises
        (:class:`~stagectl.errors.StageError`, e.g. :meth:`FeatureState.check` against the node's stage) to
        refuse it (counted, dropped), returns what the node keeps (e.g. reduced to its own outputs). None:
        kept as received.
    :param keys: this node's CURVE key pair and the primary's public key
        (:func:`~stagectl.sync.zmq_security.cluster_node_keys`); the primary accepts messages naming this node
        only with this node's own key. None: connect without CURVE (a primary with keys refuses it).

    Single-threaded: call every method from one thread. ``start()`` connects, subscribes and asks for a
    snapshot; the first state :meth:`recv_state` returns is the snapshot, then the updates in sequence order.
    :meth:`features_for` gives the operator state a frame state was planned with.
    """

    def __init__(
        self,
        name: str,
        primary: str = "127.0.0.1",
        *,
        rate: FrameRate | None = None,
        heartbeat_ns: int = HEARTBEAT_NS,
        queue_limit: int = 256,
        context: zmq.Context | None = None,
        features_check: Callable[[FeatureState], FeatureState] | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.name = _name_bytes(name, "node name").decode()
        self.keys = keys
        self._monitor: zmq.Socket | None = None
        self._auth_error: str | None = None
        if not valid_peer_name(self.name):
            raise ClusterError(f"node name {self.name!r}: expected printable characters without leading or "
                               "trailing spaces (the primary refuses any other)")
        self._raw_name = self.name.encode()
        try:
            self.host, self.state_port, self.sync_port = parse_primary_address(primary)
        except ValueError as exc:
            raise ClusterError(f"primary address: {exc}") from None
        self.rate = rate
        self.heartbeat_ns = int(heartbeat_ns)
        self._own_ctx = context is None
        self._ctx = context
        self._sub: zmq.Socket | None = None
        self._dealer: zmq.Socket | None = None
        self._queue: deque[FrameState] = deque()
        self._queue_limit = int(queue_limit)
        self._session: int | None = None
        self._old_sessions: set[int] = set()
        self._seq = -1
        self._snap_pending = True
        self._snap_sent_ns = 0
        self._last_sent_ns = 0
        self._primary_timeout_ns: int | None = None
        self._prev_wait = 0
        self._last_frame: int | None = None
        self._members: tuple[str, ...] = ()
        self._waits_ring: deque = deque(maxlen=1024)
        self._connected = False
        self._features_check = features_check
        self._features: dict[int, FeatureState] = {}  # operator states of this session by number, newest last
        self._features_refused: deque[int] = deque(maxlen=FEATURES_HISTORY)  # numbers the check refused
        self._features_asked_ns: int | None = None  # when a snapshot was last asked for a missing one
        self.counters = {k: 0 for k in ("states", "skipped", "snapshots", "gaps", "missed", "stale",
                                        "decode_errors", "bad_messages", "waits", "released", "wait_timeouts",
                                        "out_of_barrier", "overflow", "features", "features_behind",
                                        "features_rejected")}
        self._closed = False

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Node:
        if self._sub is not None:
            return self
        if self._ctx is None:
            self._ctx = zmq.Context()
        sub = self._ctx.socket(zmq.SUB)
        dealer = self._ctx.socket(zmq.DEALER)
        for s in (sub, dealer):
            s.setsockopt(zmq.LINGER, 0)
            if self.keys is not None:
                self.keys.apply(s)
        # the handshake's outcome on the sync connection: a refusal is told in status() (auth_error)
        self._monitor = dealer.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        sub.setsockopt(zmq.SUBSCRIBE, WIRE_MAGIC)
        sub.setsockopt(zmq.SUBSCRIBE, FEATURES_MAGIC)
        sub.setsockopt(zmq.SUBSCRIBE, _NODE_TOPIC + self._raw_name)  # tells the primary we are subscribed
        try:
            sub.connect(f"tcp://{self.host}:{self.state_port}")
            dealer.connect(f"tcp://{self.host}:{self.sync_port}")
        except zmq.ZMQError as exc:
            self._close_monitor(dealer)
            sub.close(linger=0)
            dealer.close(linger=0)
            where = f"{self.host}:{self.state_port},{self.sync_port}"
            raise ClusterError(f"cannot connect to the primary at {where}: {exc}") from None
        self._sub, self._dealer = sub, dealer
        self._poll_both = zmq.Poller()
        self._poll_both.register(sub, zmq.POLLIN)
        self._poll_both.register(dealer, zmq.POLLIN)
        self._send([b"HELLO", self._raw_name, _U64.pack(WIRE_VERSION)])
        self._request_snapshot(_now())
        return self

    def close(self, timeout_s: float = 1.0) -> None:
        """Say goodbye to the primary (so it does not wait for this node), close the sockets and terminate the
        context (when ours). Bounded by ``timeout_s``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._dealer is not None:
            self._send([b"BYE", self._raw_name])
            self._close_monitor(self._dealer)
            self._dealer.close(linger=int(min(100, timeout_s * 500)))
        if self._sub is not None:
            self._sub.close(linger=0)
        self._sub = self._dealer = None
        if self._own_ctx and self._ctx is not None:
            done = threading.Event()
            ctx = self._ctx

            def term() -> None:
                ctx.term()
                done.set()

            threading.Thread(target=term, daemon=True, name="stagectl-node-term").start()
            done.wait(timeout_s)
            self._ctx = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_monitor(self, dealer: zmq.Socket) -> None:
        if self._monitor is not None:
            try:
                dealer.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
            self._monitor = None

    def _check_handshake(self) -> None:
        """Note the sync connection's handshake events (a refusal by the primary, or a success after one)."""
        mon = self._monitor
        for _ in range(64):
            if mon is None or not _readable(mon):
                return
            try:
                ev = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
            except (zmq.Again, ValueError, IndexError):
                return
            kind, value = ev["event"], int(ev["value"])
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._auth_error = None
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._auth_error = "the primary refused this node's key (not in its keys/nodes folder)"
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                    self._auth_error = ("the primary " + ("does not use CURVE keys" if self.keys is not None
                                                          else "requires CURVE keys (stagectl node --key)"))
                else:
                    self._auth_error = "the CURVE handshake failed: is server.key the primary's?"
            else:
                self._auth_error = ("the handshake with the primary did not complete (CURVE keys on one side "
                                    "only, or the wrong server.key?)")

    # ------------------------------------------------------------------ sending
    def _send(self, frames: list[bytes]) -> None:
        try:
            self._dealer.send_multipart(frames, zmq.NOBLOCK)
            self._last_sent_ns = _now()
        except zmq.Again:  # queue to the primary full (it is gone): lost, as a datagram would be
            pass

    def _request_snapshot(self, now: int) -> None:
        self._send([b"SNAP", self._raw_name])
        self._snap_sent_ns = now

    def _heartbeat(self, now: int) -> None:
        if now - self._last_sent_ns >= self.heartbeat_ns:
            self._send([b"HB", self._raw_name, _Q.pack(-1 if self._last_frame is None else self._last_frame)])
        if self._snap_pending and now - self._snap_sent_ns >= SNAPSHOT_RETRY_NS:
            self._request_snapshot(now)

    # ------------------------------------------------------------------ receiving
    def _accept(self, st: FrameState) -> None:
        if len(self._queue) >= self._queue_limit:
            self._queue.popleft()
            self.counters["overflow"] += 1
        self._queue.append(st)
        self._seq = st.seq
        self.counters["states"] += 1

    def _on_snapshot(self, msg: list[bytes]) -> None:
        if len(msg) != 4 or len(msg[1]) != _SNAP.size:
            self.counters["bad_messages"] += 1
            return
        seq, session, timeout_ns = _SNAP.unpack(msg[1])
        self._connected = True
        self._primary_timeout_ns = timeout_ns if timeout_ns > 0 else None
        new_session = session != self._session
        feats = None
        if msg[3]:  # the latest operator state (empty: the primary published none)
            try:
                feats = decode_features(msg[3])
            except FrameStateError:
                self.counters["decode_errors"] += 1
            if feats is not None and feats.session != session:
                self.counters["bad_messages"] += 1
                feats = None
        if not new_session and seq <= self._seq:
            self._snap_pending = False  # we are already as new as the snapshot
            if feats is not None:
                self._take_features(feats)
            return
        st = None
        if msg[2]:
            try:
                st = decode_frame_state(msg[2])
            except FrameStateError:
                self.counters["decode_errors"] += 1
                return
        if new_session:
            if self._session is not None:
                self._old_sessions.add(self._session)
            self._session = session
            self._queue.clear()
            self._features.clear()
            self._features_refused.clear()
            self._features_asked_ns = None
        self._snap_pending = False
        self.counters["snapshots"] += 1
        if feats is not None:
            self._take_features(feats)
        if st is None:
            self._seq = seq
        else:
            self._accept(st)

    def _take_features(self, upd: FeatureUpdate) -> None:
        """Keep operator state ``upd`` (of this node's session) after the node's check; a refused one is
        counted and dropped."""
        if upd.seq in self._features or upd.seq in self._features_refused or upd.seq == 0:
            return
        fs = upd.features
        if self._features_check is not None:
            try:
                fs = self._features_check(fs)
            except Exception:  # noqa: BLE001 - a check that fails refuses the state; the node goes on
                self.counters["features_rejected"] += 1
                self._features_refused.append(upd.seq)
                return
        self._features[upd.seq] = fs
        self.counters["features"] += 1
        while len(self._features) > FEATURES_HISTORY:
            del self._features[min(self._features)]

    def _on_features(self, payload: bytes) -> None:
        try:
            upd = decode_features(payload)
        except FrameStateError:
            self.counters["decode_errors"] += 1
            return
        if upd.session != self._session:  # an old primary's, or a new one's: its frames start the re-snapshot
            self.counters["stale"] += 1
            return
        self._take_features(upd)

    def features_for(self, state: FrameState) -> FeatureState | None:
        """The operator's features to render ``state`` with: the operator state whose number the frame names.

        None: the primary published no operator state (``features_seq`` 0, e.g. it runs without the stage
        console), or this node has none yet: plan with the stage file's features. A frame naming an operator
        state this node does not have (the message was lost, or refused by the check) is rendered with the
        newest one it has that is not newer than the frame's (else its newest), counted as
        ``features_behind``, and a snapshot is asked for when the missing state is newer than every one held
        (at most every ``SNAPSHOT_RETRY_NS``). Never waits.
        """
        want = int(state.features_seq)
        if want == 0 or state.session != self._session:
            return None
        fs = self._features.get(want)
        if fs is not None:
            return fs
        self.counters["features_behind"] += 1
        held = sorted(self._features)
        if want not in self._features_refused and (not held or want > held[-1]):
            now = _now()
            if self._features_asked_ns is None or now - self._features_asked_ns >= SNAPSHOT_RETRY_NS:
                self._features_asked_ns = now
                self._request_snapshot(now)
        older = [k for k in held if k < want]
        if older:
            return self._features[older[-1]]
        return self._features[held[-1]] if held else None

    def _on_update(self, payload: bytes) -> None:
        if payload[:4] == FEATURES_MAGIC:
            self._on_features(payload)
            return
        try:
            st = decode_frame_state(payload)
        except FrameStateError:
            self.counters["decode_errors"] += 1
            return
        if st.session != self._session:
            if st.session in self._old_sessions:
                self.counters["stale"] += 1
            elif not self._snap_pending:  # a new primary: start over from its snapshot
                self._snap_pending = True
                self._request_snapshot(_now())
            return
        if st.seq <= self._seq:
            self.counters["stale"] += 1
            return
        if st.seq != self._seq + 1:
            self.counters["gaps"] += 1
            self.counters["missed"] += st.seq - self._seq - 1
            self._request_snapshot(_now())  # Clone: re-snapshot (the update itself is a full state: use it)
        self._accept(st)

    def _on_dealer(self, msg: list[bytes], want_frame: int | None) -> tuple[int, int, tuple[str, ...]] | None:
        kind = msg[0] if msg else b""
        if kind == b"SNAP":
            self._on_snapshot(msg)
        elif kind == b"GO" and len(msg) == 3 and len(msg[1]) == _GO.size:
            frame, flags, _ = _GO.unpack(msg[1])
            if want_frame is not None and frame == want_frame:
                members = tuple(msg[2].decode("utf-8", "replace").split("\n")) if msg[2] else ()
                return frame, flags, members
        else:
            self.counters["bad_messages"] += 1
        return None

    def _pump(self, timeout_ns: int) -> None:
        """Wait up to ``timeout_ns`` for messages, handle all that are there, send a heartbeat when due."""
        now = _now()
        self._heartbeat(now)
        if self._monitor is not None and not self._connected:
            self._check_handshake()
        timeout_ms = max(0, -(-int(timeout_ns) // 1_000_000))
        timeout_ms = min(timeout_ms, max(1, self.heartbeat_ns // 1_000_000))
        if self._snap_pending:
            ready = bool(self._dealer.poll(timeout_ms))
        else:
            ready = bool(self._poll_both.poll(timeout_ms))
        if not ready:
            return
        self._drain_dealer()
        if not self._snap_pending:
            for _ in range(4096):
                if not _readable(self._sub):
                    break
                self._on_update(self._sub.recv(zmq.NOBLOCK))
                if self._snap_pending:
                    break

    def _drain_dealer(self) -> None:
        for _ in range(1024):
            if not _readable(self._dealer):
                return
            self._on_dealer(self._dealer.recv_multipart(zmq.NOBLOCK), None)

    def _check_started(self) -> None:
        if self._sub is None or self._closed:
            raise ClusterError("the node is not running (start() it first, or it was closed)")

    def poll(self, timeout_ns: int = 0) -> int:
        """Handle whatever arrived (waiting up to ``timeout_ns``) and send a heartbeat when due; returns the
        number of states waiting in the queue. Call it while idle so that the primary keeps this node
        alive."""
        self._check_started()
        self._pump(timeout_ns)
        return len(self._queue)

    def recv_state(self, timeout_ns: int = 0) -> FrameState | None:
        """The next state in sequence order (the snapshot first), waiting up to ``timeout_ns``; or None."""
        self._check_started()
        deadline = _now() + int(timeout_ns)
        while not self._queue:
            remaining = deadline - _now()
            self._pump(max(0, remaining))
            if remaining <= 0:
                break
        if not self._queue:
            return None
        st = self._queue.popleft()
        self._last_frame = st.frame
        return st

    def latest_state(self, timeout_ns: int = 0) -> FrameState | None:
        """The newest state received and not yet returned (older ones are passed over and counted as
        ``skipped``), waiting up to ``timeout_ns`` for one; None if none."""
        self._check_started()
        self._pump(0)
        if not self._queue:
            st = self.recv_state(timeout_ns)
            if st is None:
                return None
            self._queue.appendleft(st)
            self._pump(0)
        self.counters["skipped"] += len(self._queue) - 1
        st = self._queue.pop()
        self._queue.clear()
        self._last_frame = st.frame
        return st

    @property
    def wait_timeout_ns(self) -> int:
        """How long :meth:`wait_barrier` waits by default: the primary's barrier timeout plus one frame period
        (the primary answers by its timeout; this only runs out when the primary is gone or stalled)."""
        rate = self.rate
        if rate is None and self._queue:
            rate = self._queue[-1].rate
        period = rate.period_ns if rate is not None else 50_000_000
        base = self._primary_timeout_ns if self._primary_timeout_ns else DEFAULT_TIMEOUT_FRAMES * period
        return int(base + max(period, 10_000_000))

    def wait_barrier(self, frame: int, timeout_ns: int | None = None) -> BarrierResult:
        """Report ready to present ``frame`` and wait for the primary's release, at most ``timeout_ns``
        (default :attr:`wait_timeout_ns`). Returns ``(released, elapsed_ns, members)``."""
        self._check_started()
        frame = int(frame)
        limit = self.wait_timeout_ns if timeout_ns is None else int(timeout_ns)
        t0 = _now()
        self._send([b"READY", self._raw_name, _READY.pack(frame, self._session or 0, self._prev_wait)])
        self.counters["waits"] += 1
        deadline = t0 + limit
        dealer = self._dealer
        while True:
            for _ in range(1024):
                if not _readable(dealer):
                    break
                got = self._on_dealer(dealer.recv_multipart(zmq.NOBLOCK), frame)
                if got is not None:
                    elapsed = _now() - t0
                    _, flags, members = got
                    self._prev_wait = elapsed
                    self._waits_ring.append(elapsed)
                    self._members = members
                    self._connected = True
                    if flags & 1:
                        self.counters["released"] += 1
                    if not flags & 2:
                        self.counters["out_of_barrier"] += 1
                    return BarrierResult(bool(flags & 1), elapsed, members)
            remaining = deadline - _now()
            if remaining <= 0:
                break
            dealer.poll(max(1, -(-remaining // 1_000_000)))
        elapsed = _now() - t0
        self._prev_wait = elapsed
        self.counters["wait_timeouts"] += 1
        return BarrierResult(False, elapsed, ())

    @property
    def in_barrier(self) -> bool:
        """This node was a barrier member at its last release."""
        return self.name in self._members

    def status(self) -> NodeStatus:
        c = self.counters
        p50, p99, pmax = _percentiles_us(self._waits_ring)
        return NodeStatus(
            self.name, self._connected, self._session, self._seq, self._last_frame, c["states"], c["skipped"],
            c["snapshots"], c["gaps"], c["missed"], c["stale"], c["decode_errors"], c["bad_messages"],
            c["waits"], c["released"], c["wait_timeouts"], c["out_of_barrier"], self._members, p50, p99, pmax,
            max(self._features, default=0), c["features"], c["features_behind"], c["features_rejected"],
            "none" if self.keys is None else "curve", self._auth_error,
        )
