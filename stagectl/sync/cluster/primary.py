"""The primary's side of the cluster: publishes frame states and operator states, answers snapshots, and runs
the swap barrier (:class:`~stagectl.sync.cluster.barrier.Barrier`) in one service thread that owns every
socket (sockets, binds, CURVE, the thread and the pipe to it: :class:`~stagectl.sync.zmq_service.ZmqService`,
shared with the stage console)."""

from __future__ import annotations

import os
import threading
import time
from typing import Self

import zmq

from stagectl.core.features import FeatureState
from stagectl.core.timebase import FrameRate
from stagectl.sync.cluster.barrier import (
    DEFAULT_TIMEOUT_FRAMES,
    FORGET_NS,
    LIVENESS_NS,
    MAX_PEERS,
    Answer,
    Barrier,
)
from stagectl.sync.cluster.status import BarrierResult, ClusterStatus, PeerStatus, _percentiles_us
from stagectl.sync.cluster.wire import (
    _GO,
    _NODE_FRAMES,
    _NODE_PAYLOAD,
    _NODE_TOPIC,
    _READY,
    _SNAP,
    _U64,
    DEFAULT_STATE_PORT,
    DEFAULT_SYNC_PORT,
    ClusterError,
    FrameState,
    FrameStateError,
    ShowState,
    _name_bytes,
    encode_features,
    encode_frame_state,
    valid_peer_name,
)
from stagectl.sync.ratelimit import PeerRates
from stagectl.sync.zmq_security import Refusals, ServerKeys
from stagectl.sync.zmq_service import ZmqService, connect_host, readable, recv_from

#: Largest frame the primary accepts on its sync and state sockets (ZeroMQ ``MAXMSGSIZE``: a larger one closes
#: that peer's connection); node messages and subscriptions are a few dozen bytes.
MAX_SYNC_FRAME_BYTES = 4096
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


def _not_running() -> ClusterError:
    return ClusterError("the cluster primary is not running (start() it first, or it was closed)")


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
        # membership and barrier rounds (the service thread's, guarded by _lock for status readers)
        self._barrier = Barrier(self.timeout_ns, member=self.member, liveness_ns=self.liveness_ns,
                                forget_ns=self.forget_ns)
        self.session = int.from_bytes(os.urandom(4), "little") or 1
        self._ctx = context
        self._svc: ZmqService | None = None  # the sockets, the service thread and the pipe to it, once started
        self._seq = 0
        self._features_seq = 0
        self._features: FeatureState | None = None  # the last operator features given to publish()
        self._show: ShowState | None = None  # the last show given to publish()
        self.state_port = 0
        self.sync_port = 0
        # service-thread state (guarded by _lock for status readers)
        self._lock = threading.Lock()
        self._snapshot: tuple[int, bytes] = (0, b"")
        self._features_snapshot = b""  # the latest operator state's bytes (empty: none published)
        self._bad = 0
        self._forged = 0
        self._rate_limited = 0
        self._errors = 0
        self._last_error: str | None = None
        # the primary's own barrier wait
        self._cv = threading.Condition()
        self._self_frame: int | None = None
        self._self_answer: tuple[int, tuple[str, ...]] | None = None
        self._self_prev_wait = 0
        self._closed = False

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Primary:
        """Bind the sockets and start the service thread; :class:`ClusterError` when a port is taken."""
        if self._svc is not None:
            return self
        svc = ZmqService("cluster", keys=self.keys, refusals=self.refusals, context=self._ctx,
                         error=ClusterError)
        with svc.setting_up():
            # inbound: subscriptions and node messages, all small
            xpub = svc.listen(zmq.XPUB, self.bind, self._want_ports[0], "state", what="cluster state",
                              max_msg_bytes=MAX_SYNC_FRAME_BYTES)
            router = svc.listen(zmq.ROUTER, self.bind, self._want_ports[1], "sync", what="cluster sync",
                                max_msg_bytes=MAX_SYNC_FRAME_BYTES)
            svc.open_pipe()
        self.state_port, self.sync_port = svc.ports["state"], svc.ports["sync"]
        self._svc = svc
        svc.start(self._serve, xpub, router, name="stagectl-cluster-primary")
        return self

    @property
    def address(self) -> str:
        """``HOST:STATE_PORT,SYNC_PORT`` as ``stagectl node --primary`` takes it (127.0.0.1 for ``*``)."""
        return f"{connect_host(self.bind)}:{self.state_port},{self.sync_port}"

    def close(self, timeout_s: float = 1.0) -> bool:
        """Stop the service thread through the pipe, close every socket (linger 0) and terminate the context
        (when it is ours). Returns True when everything stopped within ``timeout_s``. Idempotent."""
        if self._closed:
            return True
        self._closed = True
        svc = self._svc
        ok = svc is None or svc.stop(timeout_s)
        with self._cv:
            self._cv.notify_all()
        if svc is not None:
            svc.close()  # a stuck service thread: its context is destroyed, its sockets go with the process
        return ok

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ frame loop side
    def _send_pipe(self, frames: list[bytes]) -> None:
        """Pass ``frames`` to the service thread (waiting while the pipe is full); :class:`ClusterError` when
        the primary is not running."""
        if self._svc is None or self._closed or not self._svc.send(frames, block=True):
            raise _not_running()

    def publish(self, state: FrameState, features: FeatureState | None = None,
                show: ShowState | None = None) -> int:
        """Publish ``state`` to every node with the next sequence number; returns that number. The state is
        encoded here (a state that cannot be encoded raises :class:`FrameStateError`); sending never
        blocks.

        ``features``: the operator's features this frame is planned with (``ControlHub.features``; None: as
        last given); ``show``: what the wall shows besides (:class:`ShowState`: the scene content, this stage
        file's digest and reload count, the colour patch playbacks; None: as last given). When either differs
        from the last one given, the pair is published first as the next operator state
        (:func:`encode_features`, number :attr:`features_seq`; features never given: ``FeatureState()``); the
        frame state names the number of the operator state in effect (``features_seq``), so a node renders the
        frame with exactly those features and that show. An operator state that cannot be encoded (LUTs too
        large) is not sent: the error is counted in :meth:`status` (``errors``, ``last_error``) and the frames
        keep naming the previous one.
        """
        svc = self._svc
        if svc is None or self._closed:
            raise _not_running()
        with svc.lock:  # numbers and pipe messages in one order
            new_features = (features is not None and features is not self._features
                            and features != self._features)
            new_show = show is not None and show is not self._show and show != self._show
            if new_features or new_show:
                if new_features:
                    self._features = features
                if new_show:
                    self._show = show
                fseq = self._features_seq + 1
                try:
                    blob = encode_features(self._features if self._features is not None else FeatureState(),
                                           seq=fseq, session=self.session, show=self._show)
                except FrameStateError as exc:
                    with self._lock:
                        self._fail(FrameStateError(f"operator state not sent to the nodes: {exc}"))
                else:
                    self._send_pipe([b"FEAT", blob])
                    self._features_seq = fseq
            seq = self._seq + 1
            payload = encode_frame_state(state, seq=seq, session=self.session,
                                         features_seq=self._features_seq)
            self._send_pipe([b"PUB", _U64.pack(seq), payload])
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
            b = self._barrier
            for p in b.peers.values():
                p50, p99, pmax = _percentiles_us(p.waits)
                peers[p.name] = PeerStatus(
                    p.name, p.state, p.alive, p.subscribed, p.is_self, p.last_frame,
                    None if p.is_self or not p.last_seen_ns else (now - p.last_seen_ns) / 1e6,
                    p.drops, p.rejoins, p.reconnects, p.last_drop, p50, p99, pmax,
                )
            h50, h99, hmax = _percentiles_us(b.holds)
            return ClusterStatus(
                session=self.session,
                published=self._seq,
                features_seq=self._features_seq,
                members=tuple(sorted(n for n, p in peers.items() if p.state == "member")),
                dropped=tuple(sorted(n for n, p in peers.items() if p.state == "dropped")),
                joining=tuple(sorted(n for n, p in peers.items() if p.state == "joining")),
                nodes=peers,
                rounds=b.rounds,
                timed_out_rounds=b.timed_out,
                hold_p50_us=h50,
                hold_p99_us=h99,
                hold_max_us=hmax,
                bad_messages=self._bad,
                errors=self._errors,
                last_error=self._last_error,
                refused_peers=b.refused_peers,
                auth="none" if self.keys is None else "curve",
                refused_connections=self.refusals.total,
                refused_by_reason=dict(self.refusals.by_reason),
                forged_names=self._forged,
                rate_limited=self._rate_limited,
            )

    # ------------------------------------------------------------------ service thread
    def _serve(self, xpub: zmq.Socket, router: zmq.Socket) -> None:
        """The service thread's loop (its sockets are closed by :class:`ZmqService` when it returns)."""
        from stagectl.sync.frameloop import EdgePriority

        svc = self._svc
        assert svc is not None and svc.pipe_end is not None
        self.service_priority = EdgePriority(self.realtime_priority).start()
        self.service_priority.raise_()  # the whole thread: it only ever waits or answers
        poller = zmq.Poller()
        paused = zmq.Poller()  # over the read budget: the pipe and the monitors only, for a moment
        for s in (svc.pipe_end, router, xpub, *svc.monitor_sockets):
            poller.register(s, zmq.POLLIN)
            if s is not router and s is not xpub:
                paused.register(s, zmq.POLLIN)

        def on_pipe(msg: list[bytes]) -> None:
            self._on_pipe(msg, xpub, router)

        sweep_ns = max(10_000_000, min(50_000_000, self.liveness_ns // 4))
        next_sweep = _now() + sweep_ns
        while True:
            now = _now()
            deadline = self._barrier.deadline
            wake = next_sweep if deadline is None else min(next_sweep, deadline)
            resting = self._reads_paused_until > now
            if resting:
                wake = min(wake, self._reads_paused_until)
            timeout_ms = max(0, -(-(wake - now) // 1_000_000))
            try:
                events = dict((paused if resting else poller).poll(timeout_ms))
            except zmq.ZMQError:
                return  # context terminated under us
            with self._lock:
                if svc.pipe_end in events and svc.drain_pipe(on_pipe):
                    return
                try:
                    if router in events:
                        self._drain_router(router)
                    if xpub in events:
                        self._drain_xpub(xpub)
                    svc.handle_monitors(events)
                    now = _now()
                    if now >= next_sweep:
                        self._barrier.sweep(now)
                        next_sweep = now + sweep_ns
                    self._release(router, _now())
                except Exception as exc:  # noqa: BLE001 - counted; the service keeps running
                    self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"

    def _on_pipe(self, msg: list[bytes], xpub: zmq.Socket, router: zmq.Socket) -> None:
        """One message from the frame loop: a frame state, an operator state or the primary's own report."""
        kind = msg[0]
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
                if prev:
                    self._barrier.peers[self.member].waits.append(prev)
                self._answer(router, self._barrier.arrive(self.member, frame, _now(), None))
        except Exception as exc:  # noqa: BLE001 - the service thread never dies of one message
            self._fail(exc)

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
            if not readable(router) or not self._read_budget(_now()):
                return
            msg, user = recv_from(router, curve)  # user (CURVE): the stem of its key file in <keys>/nodes
            now = _now()
            try:
                if self._on_node_message(router, msg, now, user):
                    self._release(router, now)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
            if now >= end:
                return

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
        name = self._barrier.peer_name(raw_name)
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
            self._barrier.bye(name, rid)
            return False
        p = self._barrier.hear(name, rid, now)
        if p is None:
            return False
        if kind == b"READY":
            frame, session, prev = _READY.unpack(msg[3])
            if prev > 0:
                p.waits.append(prev)
            if session not in (0, self.session):
                # a node still following a previous primary: let it go at once, it will re-snapshot
                router.send_multipart([rid, b"GO", _GO.pack(frame, 0, 0), b""], zmq.NOBLOCK)
                return False
            self._answer(router, self._barrier.arrive(name, frame, now, rid))
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
            if not readable(xpub) or not self._read_budget(_now()):
                return
            msg, user = recv_from(xpub, curve)  # a subscription: one frame
            m = msg[0]
            if len(m) > 1 and m[1:].startswith(_NODE_TOPIC):
                # XPUB does not say which connection a subscription came from: without CURVE one bucket for all
                if not self._sub_rates.allow(user or "", _now()):
                    self._rate_limited += 1
                    continue
                name = self._barrier.peer_name(m[1 + len(_NODE_TOPIC):])
                if name is None:
                    self._bad += 1
                    continue
                if curve and name != user:
                    self._forged += 1
                    continue
                self._barrier.subscribe(name, m[0] == 1, _now())

    def _release(self, router: zmq.Socket, now: int) -> None:
        self._answer(router, self._barrier.release(now))

    def _answer(self, router: zmq.Socket, answers: list[Answer]) -> None:
        for a in answers:
            if a.rid is None:  # the primary itself
                with self._cv:
                    if self._self_frame == a.frame:
                        self._self_answer = (a.frame, a.members)
                        self._cv.notify_all()
                continue
            flags = (1 if a.released else 0) | (2 if a.in_barrier else 0)
            router.send_multipart([a.rid, b"GO", _GO.pack(a.frame, flags, a.hold),
                                   "\n".join(a.members).encode()], zmq.NOBLOCK)
