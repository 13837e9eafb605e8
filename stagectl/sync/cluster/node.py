"""A render node's side of the cluster: follows the primary's frame states (Clone: subscribe, snapshot, then
updates in sequence) and operator states, and meets the swap barrier. Single-threaded."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Self

import zmq
from zmq.utils.monitor import parse_monitor_message

from stagectl.core.features import FeatureState
from stagectl.core.timebase import FrameRate
from stagectl.sync.cluster.barrier import DEFAULT_TIMEOUT_FRAMES
from stagectl.sync.cluster.status import BarrierResult, NodeStatus, _percentiles_us
from stagectl.sync.cluster.wire import (
    _GO,
    _NODE_TOPIC,
    _Q,
    _READY,
    _SNAP,
    _U64,
    FEATURES_MAGIC,
    WIRE_MAGIC,
    WIRE_VERSION,
    ClusterError,
    FeatureUpdate,
    FrameState,
    FrameStateError,
    ShowState,
    _name_bytes,
    decode_features,
    decode_frame_state,
    parse_primary_address,
    valid_peer_name,
)
from stagectl.sync.zmq_security import ClientKeys
from stagectl.sync.zmq_service import ZmqPeer, readable, tcp_endpoint

#: A node sends a heartbeat when it has sent nothing for this long (ns).
HEARTBEAT_NS = 100_000_000
#: A node repeats an unanswered snapshot request after this long (ns).
SNAPSHOT_RETRY_NS = 500_000_000
#: Operator states a node keeps (by sequence number), so that a queued frame finds the one it names.
FEATURES_HISTORY = 8

_now = time.monotonic_ns


def _trim(held: dict) -> None:
    """Keep the newest :data:`FEATURES_HISTORY` entries of ``held`` (by number)."""
    while len(held) > FEATURES_HISTORY:
        del held[min(held)]


def _at_or_before(held: dict, want: int):
    """``held[want]``, else the entry of the highest number below ``want``, else the newest; None when empty."""
    if want in held:
        return held[want]
    keys = sorted(held)
    older = [k for k in keys if k < want]
    if older:
        return held[older[-1]]
    return held[keys[-1]] if keys else None


class Node:
    """A render node's side: follows the primary's frame states and meets the swap barrier.

    :param name: this node's name (the stage's ``outputs[].node``), 1..64 UTF-8 bytes.
    :param primary: ``HOST[:PORT[,SYNC_PORT]]`` of the primary (:func:`parse_primary_address`).
    :param rate: the stage frame rate, for the default wait before the first snapshot says the primary's
        barrier timeout (then: that timeout plus one frame period).
    :param heartbeat_ns: send a heartbeat when nothing was sent for this long.
    :param context: a ``zmq.Context`` (default: a new one, terminated by :meth:`close`).
    :param features_check: ``fn(features) -> features`` run on every operator state received: raises
        (:class:`~stagectl.core.errors.StageError`, e.g. :meth:`FeatureState.check` against the node's stage) to
        refuse it (counted, dropped), returns what the node keeps (e.g. reduced to its own outputs). None:
        kept as received.
    :param keys: this node's CURVE key pair and the primary's public key
        (:func:`~stagectl.sync.zmq_security.cluster_node_keys`); the primary accepts messages naming this node
        only with this node's own key. None: connect without CURVE (a primary with keys refuses it).

    Single-threaded: call every method from one thread. ``start()`` connects, subscribes and asks for a
    snapshot; the first state :meth:`recv_state` returns is the snapshot, then the updates in sequence order.
    :meth:`features_for` gives the operator state a frame state was planned with, :meth:`show_for` what the
    wall showed besides.
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
        self._ctx = context
        self._peer: ZmqPeer | None = None  # the context and the sockets, once started
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
        #: the operator states the check refused, as received (checked again by set_features_check)
        self._unchecked: dict[int, FeatureState] = {}
        #: the show of every operator state of this session received, by number (kept whatever the check said)
        self._shows: dict[int, ShowState] = {}
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
        peer = self._peer = ZmqPeer(self.keys, self._ctx)
        # the node topic tells the primary that this node's SUB is connected
        sub = peer.socket(zmq.SUB, subscribe=(WIRE_MAGIC, FEATURES_MAGIC, _NODE_TOPIC + self._raw_name))
        dealer = peer.socket(zmq.DEALER)
        # the handshake's outcome on the sync connection: a refusal is told in status() (auth_error)
        self._monitor = dealer.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        try:
            sub.connect(tcp_endpoint(self.host, self.state_port))
            dealer.connect(tcp_endpoint(self.host, self.sync_port))
        except zmq.ZMQError as exc:
            self._close_monitor(dealer)
            peer.close()
            self._peer = None
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
            self._dealer.close(linger=int(min(100, timeout_s * 500)))  # the goodbye goes out
        self._sub = self._dealer = None
        if self._peer is not None:
            self._peer.close(timeout_s)
            self._peer = None

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
            if mon is None or not readable(mon):
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
            self._unchecked.clear()
            self._shows.clear()
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
        """Keep operator state ``upd`` (of this node's session) after the node's check; refused features are
        counted and not used (kept aside for :meth:`set_features_check`). Its show is kept either way."""
        if upd.seq in self._features or upd.seq in self._features_refused or upd.seq == 0:
            return
        self._shows[upd.seq] = upd.show
        _trim(self._shows)
        if self._check(upd.seq, upd.features):
            self.counters["features"] += 1

    def _check(self, seq: int, fs: FeatureState) -> bool:
        """Run the check on features number ``seq``: kept (True) or refused (counted, kept aside)."""
        if self._features_check is not None:
            try:
                fs = self._features_check(fs)
            except Exception:  # noqa: BLE001 - a check that fails refuses the state; the node goes on
                self.counters["features_rejected"] += 1
                if seq not in self._features_refused:
                    self._features_refused.append(seq)
                self._unchecked[seq] = fs
                _trim(self._unchecked)
                return False
        self._features[seq] = fs
        _trim(self._features)
        return True

    def set_features_check(self, check: Callable[[FeatureState], FeatureState] | None) -> int:
        """Check every operator state from now on with ``check`` (the node's stage was reloaded): the ones the
        old check refused are checked again and kept when ``check`` passes them; the ones held stay as they
        were checked. Returns how many refused ones it now keeps."""
        self._features_check = check
        taken = 0
        for seq in sorted(self._unchecked):
            fs = self._unchecked.pop(seq)
            if seq in self._features_refused:
                self._features_refused.remove(seq)
            if self._check(seq, fs):
                taken += 1
                self.counters["features"] += 1
        return taken

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
        return _at_or_before(self._features, want)

    def show_for(self, state: FrameState) -> ShowState | None:
        """What the wall shows besides the features at ``state`` (:class:`ShowState`: the scene content, the
        primary's stage file and reload count, the patch playbacks): the show of the operator state whose
        number the frame names, even when the node's check refused that state's features; when the node does
        not have it (lost: :meth:`features_for` counts it and asks for a snapshot), the newest it has that is
        not newer than the frame's, else its newest. None: the primary published none (or none arrived yet).
        Never waits."""
        want = int(state.features_seq)
        if want == 0 or state.session != self._session:
            return None
        return _at_or_before(self._shows, want)

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
                if not readable(self._sub):
                    break
                self._on_update(self._sub.recv(zmq.NOBLOCK))
                if self._snap_pending:
                    break

    def _drain_dealer(self) -> None:
        for _ in range(1024):
            if not readable(self._dealer):
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
                if not readable(dealer):
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
