"""The ZeroMQ console transport of one hub: a CURVE-authenticated ROUTER for commands and a PUB for the state
stream, on the service base the cluster primary uses too (:class:`~stagectl.sync.zmq_service.ZmqService`:
sockets, binds, CURVE, refusal monitors, the service thread and its pipe). See :mod:`stagectl.console.zmq`
for the topology and the protocol."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any, Self

import zmq

from stagectl.console.zmq.keys import console_server_keys
from stagectl.console.zmq.protocol import (
    DEFAULT_PORT,
    DEFAULT_STATE_PORT,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_FRAMES,
    BadRequest,
    ZmqConsoleError,
    dumps,
    error_ack,
    parse_request,
)
from stagectl.sync.zmq_security import KeyPaths, Refusals, resolve_keys_dir
from stagectl.sync.zmq_service import ZmqService, connect_host, tcp_endpoint, user_id

__all__ = ["MAX_WAITING", "WORKERS", "ZmqConsole"]

#: Worker threads that wait in ``hub.submit`` for the frame loop, and requests that may wait for them.
WORKERS = 4
MAX_WAITING = 64


class ZmqConsole:
    """The ZeroMQ console transport of one hub (see :mod:`stagectl.console.zmq`).

    :param hub: the :class:`~stagectl.console.hub.ControlHub` (``submit``, ``subscribe``).
    :param settings: ``console.zmq`` settings: ``bind`` (interface), ``port`` (commands, ROUTER),
        ``state_port`` (state stream, PUB; 0 for either: a free port, read back from :attr:`port` /
        :attr:`state_port`), ``keys`` (key directory, relative to ``stage_dir``).
    :param stage_dir: the stage file's directory.
    :param submit_timeout_s: how long a mutation may wait for a frame (``hub.submit``'s ``timeout_s``).

    ``start()`` raises :class:`ZmqConsoleError` (one line) when the keys are missing or bad or a port
    cannot be bound; ``close()`` is idempotent and returns within 200 ms.
    """

    def __init__(
        self, hub: Any, settings: Any, stage_dir: str | os.PathLike[str], *, submit_timeout_s: float = 2.0
    ) -> None:
        self.hub = hub
        self.bind = str(getattr(settings, "bind", "127.0.0.1") or "127.0.0.1")
        self._want_port = int(getattr(settings, "port", DEFAULT_PORT))
        self._want_state_port = int(getattr(settings, "state_port", DEFAULT_STATE_PORT))
        self.keys = KeyPaths(resolve_keys_dir(settings, stage_dir))
        self.submit_timeout_s = float(submit_timeout_s)
        self.port: int | None = None
        self.state_port: int | None = None
        self._svc: ZmqService | None = None  # the sockets, the socket thread and the pipe to it, once started
        self._events_thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._requests: queue.Queue[tuple[list[bytes], str, dict[str, Any], str] | None] = queue.Queue(
            MAX_WAITING
        )
        self._stop = threading.Event()
        self.refusals = Refusals()
        self._stats_lock = threading.Lock()
        self._counts = {
            "requests": 0,
            "replies": 0,
            "bad_requests": 0,
            "busy": 0,
            "internal_errors": 0,
            "events_published": 0,
            "events_dropped": 0,
            "resyncs": 0,
            "replies_dropped": 0,
        }
        self._by_client: dict[str, int] = {}
        self._sub: Any = None

    # ------------------------------------------------------------------------------------------ public

    @property
    def running(self) -> bool:
        return self._svc is not None and self._svc.running

    @property
    def command_endpoint(self) -> str:
        """``tcp://host:port`` a client on this machine connects to for commands."""
        return tcp_endpoint(connect_host(self.bind), self.port or self._want_port)

    @property
    def state_endpoint(self) -> str:
        """``tcp://host:port`` a client on this machine subscribes to for the state stream."""
        return tcp_endpoint(connect_host(self.bind), self.state_port or self._want_state_port)

    def start(self) -> ZmqConsole:
        """Load the keys, start the authenticator, bind both sockets and start the threads."""
        if self._svc is not None and not self._svc.closed:
            return self
        # own context: the ZAP endpoint (inproc://zeromq.zap.01) is per context
        svc = ZmqService("console", keys=console_server_keys(self.keys), refusals=self.refusals,
                         error=ZmqConsoleError, prefix="ZeroMQ console: ")
        with svc.setting_up():
            router = svc.listen(zmq.ROUTER, self.bind, self._want_port, "command",
                                max_msg_bytes=MAX_REQUEST_BYTES)
            pub = svc.listen(zmq.PUB, self.bind, self._want_state_port, "state", sndhwm=1000)
            svc.open_pipe(hwm=0)  # replies are never dropped on the way to the socket thread
        self.port, self.state_port = svc.ports["command"], svc.ports["state"]
        self._svc = svc
        self._stop.clear()
        self._requests = queue.Queue(MAX_WAITING)  # a fresh queue: no stop markers left from a previous run
        svc.start(self._serve, svc, router, pub, name="console-zmq")
        self._workers = [
            threading.Thread(
                target=self._work, args=(self._requests,), name=f"console-zmq-worker-{i}", daemon=True
            )
            for i in range(WORKERS)
        ]
        for w in self._workers:
            w.start()
        sub = self._sub = self.hub.subscribe()
        self._events_thread = threading.Thread(
            target=self._forward_events, args=(sub,), name="console-zmq-events", daemon=True
        )
        self._events_thread.start()
        return self

    def close(self, timeout_s: float = 0.15) -> None:
        """Stop the threads, close the sockets and the context (bounded: about ``timeout_s``)."""
        svc = self._svc
        if svc is None or svc.closed:
            return
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        for _ in self._workers:
            try:
                self._requests.put_nowait(None)
            except queue.Full:
                break
        if self._sub is not None:
            self._sub.close()  # wakes the event thread at once
            self._sub = None
        svc.stop(deadline - time.monotonic())
        if self._events_thread is not None:
            self._events_thread.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()) / max(1, len(self._workers)))
        svc.close()
        self._events_thread = None
        self._workers = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Counters: requests, replies, bad requests, busy refusals, internal errors, events published,
        requests per client, connections accepted, handshakes completed and connections ended after their
        handshake (``disconnected``: by the client, or by a frame over :data:`MAX_REQUEST_BYTES`), and every
        refused connection (``refused``, ``refused_by_reason``, ``refused_by_peer``, ``refused_recent``,
        ``unknown_keys``)."""
        with self._stats_lock:
            out: dict[str, Any] = dict(self._counts)
            out["requests_by_client"] = dict(self._by_client)
        svc = self._svc
        out["waiting"] = self._requests.qsize()
        if svc is not None:
            out.update(svc.connections())
        else:
            out.update(accepted=0, handshakes=0, disconnected=0)
        out.update(self.refusals.as_dict())
        out["refusal_reasons"] = dict(Refusals.REASONS)
        if svc is not None and svc.auth is not None:
            out["bad_key_files"] = list(svc.auth.bad_key_files)
        return out

    def describe(self) -> str:
        """One line for the run log: where the console listens and which keys it uses."""
        return (
            f"ZeroMQ console: commands {tcp_endpoint(self.bind, self.port or self._want_port)}, state stream "
            f"{tcp_endpoint(self.bind, self.state_port or self._want_state_port)}, CURVE keys in "
            f"{self.keys.keys_dir}"
        )

    # ---------------------------------------------------------------------------------------- threads

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self._counts[key] += n

    def _send_pipe(self, frames: list[bytes]) -> bool:
        svc = self._svc
        return svc is not None and svc.send(frames)

    def _serve(self, svc: ZmqService, router: zmq.Socket, pub: zmq.Socket) -> None:
        """The socket thread (its sockets are closed by the service base when it returns)."""
        assert svc.pipe_end is not None
        poller = zmq.Poller()
        for s in (router, svc.pipe_end, *svc.monitor_sockets):
            poller.register(s, zmq.POLLIN)

        def on_pipe(frames: list[bytes]) -> None:
            self._on_pipe(frames, router, pub)

        while True:
            ready = dict(poller.poll(1000))
            if svc.pipe_end in ready and svc.drain_pipe(on_pipe):
                return
            if router in ready:
                self._drain_requests(router)
            svc.handle_monitors(ready)

    def _on_pipe(self, frames: list[bytes], router: zmq.Socket, pub: zmq.Socket) -> None:
        """Send what a worker (``reply``) or the event thread (``event``) passed."""
        kind = frames[0]
        try:
            if kind == b"reply":
                router.send_multipart(frames[1:], zmq.NOBLOCK)
                self._count("replies")
            elif kind == b"event":
                pub.send_multipart(frames[1:], zmq.NOBLOCK)
                self._count("events_published")
        except zmq.ZMQError:  # a full queue: the reply or event is dropped (and counted)
            self._count("replies_dropped" if kind == b"reply" else "events_dropped")

    def _reply_now(self, router: zmq.Socket, envelope: list[bytes], ack: dict[str, Any]) -> None:
        try:
            router.send_multipart([*envelope, dumps(ack)], zmq.NOBLOCK)
            self._count("replies")
        except zmq.ZMQError:
            self._count("replies_dropped")

    def _drain_requests(self, router: zmq.Socket) -> None:
        for _ in range(1000):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._count("requests")
            who = f"zmq:{user_id(frames[-1]) or '?'}"
            if len(frames) > MAX_REQUEST_FRAMES:
                self._count("bad_requests")
                head = [f.bytes for f in frames[:MAX_REQUEST_FRAMES]]
                if b"" in head[1:]:
                    self._reply_now(router, head[: head.index(b"", 1) + 1], error_ack(
                        None, f"request has {len(frames)} frames: at most {MAX_REQUEST_FRAMES}"))
                continue
            raw = [f.bytes for f in frames]
            # envelope: the identity, then everything up to and including the first empty frame
            try:
                cut = raw.index(b"", 1) + 1
            except ValueError:
                cut = 1
            envelope, payload = raw[:cut], raw[cut:]
            if len(payload) != 1:
                self._count("bad_requests")
                self._reply_now(
                    router,
                    envelope,
                    error_ack(
                        None, f"request has {len(payload)} frames after the envelope: expected one JSON frame"
                    ),
                )
                continue
            try:
                name, args = parse_request(payload[0])
            except BadRequest as exc:
                self._count("bad_requests")
                self._reply_now(router, envelope, error_ack(None, str(exc)))
                continue
            with self._stats_lock:
                self._by_client[who] = self._by_client.get(who, 0) + 1
            try:
                self._requests.put_nowait((envelope, name, args, who))
            except queue.Full:
                self._count("busy")
                self._reply_now(
                    router,
                    envelope,
                    error_ack(
                        name, f"console busy: {MAX_WAITING} requests are waiting for frames; try again"
                    ),
                )

    def _work(self, requests: queue.Queue) -> None:
        while True:
            item = requests.get()
            if item is None or self._stop.is_set():
                return
            envelope, name, args, who = item
            try:
                ack = self.hub.submit(name, args, who, timeout_s=self.submit_timeout_s)
                body = dumps(ack)
            except Exception as exc:  # noqa: BLE001 -- a hub bug must not kill the worker or the wait
                self._count("internal_errors")
                body = dumps(error_ack(name, f"internal error: {type(exc).__name__}: {exc}"))
            if not self._send_pipe([b"reply", *envelope, body]):
                self._count("replies_dropped")

    def _forward_events(self, sub: Any) -> None:
        try:
            while not self._stop.is_set() and not sub.closed:
                ev = sub.get(0.25)
                if ev is None:
                    continue
                kind = ev.get("type") if isinstance(ev, Mapping) else None
                if kind == "lagged":
                    # state events overflowed our queue: publish the snapshot as one state event (it carries
                    # the whole state, so followers stay exact; the stream continues from its seq)
                    self._count("resyncs")
                    snap = sub.resync()
                    ev = {
                        "seq": snap["seq"],
                        "type": "state",
                        "command": None,
                        "who": None,
                        "frame": getattr(self.hub, "frame", None),
                        "args": {},
                        "state": snap["state"],
                        "resync": True,
                    }
                    kind = "state"
                topic = kind.encode("ascii", "replace") if isinstance(kind, str) else b"event"
                self._send_pipe([b"event", topic, dumps(ev)])
        finally:
            sub.close()
