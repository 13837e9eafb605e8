"""The stage console over ZeroMQ: a CURVE-authenticated command socket and state stream, and their clients.

Topology (zguide *Clone* pattern; ``docs/reference/STYLE.md`` practice 10)::

    stagectl run (ZmqConsole)                                 client (stagectl ctl, scripts)
    ROUTER port        ◀── {"command": name, "args": {...}} ── REQ or DEALER
                       ── the hub's ack (JSON) ──────────────▶
    PUB    state_port  ── [b"state", event JSON] (seq n) ────▶ SUB (StateFollower)
                       ── [b"status", event JSON] ───────────▶
    inproc PUSH/PULL   ◀── replies and hub events from the worker and event threads (one lock-guarded PUSH)

* **Requests.** One JSON frame ``{"command": name, "args": {...}}`` (``args`` optional) after the client's
  envelope (a REQ client's empty delimiter, or any frames a DEALER puts before an empty frame: they come back
  unchanged, so a DEALER can tag requests to match replies). The reply is the hub's ack
  (:meth:`ControlHub.submit`) as one JSON frame after the same envelope. A request that is not such an object
  (not JSON, nested deeper than :data:`stagectl.console.jsonbounds.MAX_DEPTH` levels, more than
  :data:`MAX_REQUEST_FRAMES` frames) is answered ``{"ok": false, "command": null, "error": ...}``, counted and
  dropped; it never reaches the hub. A frame over :data:`MAX_REQUEST_BYTES` closes the client's connection.
  ``hub.submit`` blocks until a frame applies a mutation, so the socket thread hands each request to a small
  worker pool and sends the replies the workers pass back through the inproc pipe (ZeroMQ sockets are used by
  one thread at a time: the shared PUSH end is guarded by a lock). A full pool is answered at once ("busy").
* **State stream.** Every hub event is published as two frames ``[topic, JSON]``: ``b"state"`` events carry
  the hub's ``seq`` (1 more per applied change), ``b"status"`` events are not sequenced. A late joiner
  subscribes, asks ``state`` over the command socket (a snapshot with its ``seq``) and then applies the
  stream's updates with a higher ``seq`` (:class:`StateFollower`).
* **Authentication.** Both sockets are CURVE servers with the key pair ``<keys>/server.key_secret``; a ZAP
  handler (:class:`~stagectl.sync.zmq_security.KeyAuthenticator`, shared with the cluster primary, over
  ``<keys>/clients``) admits only clients whose public key is a ``<keys>/clients/NAME.key`` file (keys
  added there are picked up without a restart), and the caller is ``"zmq:NAME"`` for the hub. Peers without
  CURVE, with an unlisted key or with the wrong server key are refused during the handshake; every refusal is
  counted by reason with the peer's address (socket monitors and the ZAP handler) in :meth:`ZmqConsole.stats`.
  libzmq closes a refused connection for good (no reconnect): a client whose key was authorised meanwhile
  connects again.
  ``stagectl keys`` makes the keys (:func:`make_keys`); a stage without them cannot start the transport.

Time: integer nanoseconds on ``time.monotonic_ns()`` (clock ``monotonic``) for every measurement; refusal
records carry a UTC wall-clock string for people. ``close()`` returns within 200 ms; a worker still blocked in
``hub.submit`` at that moment finishes on its own (daemon thread) and its reply is dropped.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Self

import zmq

from stagectl.console.jsonbounds import MAX_DEPTH as MAX_JSON_DEPTH
from stagectl.console.jsonbounds import JsonTooDeep
from stagectl.console.jsonbounds import loads as bounded_loads
from stagectl.sync.zmq_security import (  # the key files and their checking, shared with the cluster
    CLIENTS_DIR,
    DEFAULT_CLIENT,
    DEFAULT_KEYS_DIR,
    SERVER_KEY_NAME,
    ClientKeys,
    KeyAuthenticator,
    KeyPaths,
    RefusalMonitor,
    Refusals,
    ZmqKeyError,
    load_client_keys,
    load_key,
    make_keys,
    resolve_keys_dir,
)

__all__ = [
    "CLIENTS_DIR",
    "DEFAULT_CLIENT",
    "DEFAULT_KEYS_DIR",
    "DEFAULT_PORT",
    "DEFAULT_STATE_PORT",
    "SERVER_KEY_NAME",
    "ClientKeys",
    "ConsoleClient",
    "ConsoleUnreachable",
    "KeyPaths",
    "StateFollower",
    "ZmqConsole",
    "ZmqConsoleError",
    "ZmqKeyError",
    "connect_host",
    "load_client_keys",
    "make_keys",
    "resolve_keys_dir",
    "tcp_endpoint",
    "zmq_settings",
]

#: Default ports: commands (ROUTER) and the state stream (PUB).
DEFAULT_PORT = 41320
DEFAULT_STATE_PORT = 41321

#: Worker threads that wait in ``hub.submit`` for the frame loop, and requests that may wait for them.
WORKERS = 4
MAX_WAITING = 64
#: Largest request a client may send (bytes); a bigger one drops that client's connection.
MAX_REQUEST_BYTES = 1 << 20
#: Most frames one request may have (identity, a DEALER's tags, the empty delimiter, the JSON frame); a request
#: with more is counted and answered with an error (when its envelope ends within this many frames) or dropped.
MAX_REQUEST_FRAMES = 16
#: How long :class:`StateFollower` waits for the stream's first message before taking its snapshot (s).
SYNC_WAIT_S = 1.0

_now = time.monotonic_ns


class ZmqConsoleError(ZmqKeyError):
    """A ZeroMQ console problem a user can fix: missing or bad keys, a port that cannot be bound. (Key files
    that are missing, bad or cannot be written raise its base :class:`~stagectl.sync.zmq_security.ZmqKeyError`,
    from the code the cluster shares.)"""

    exit_code = 2


class ConsoleUnreachable(ZmqConsoleError):
    """No reply from the stage's console within the caller's timeout (not running, or the key is refused)."""


def zmq_settings(stage: Any) -> Any:
    """The ``console.zmq`` settings of a loaded stage (``bind``, ``port``, ``state_port``, ``keys``)."""
    return stage.console.zmq


def connect_host(bind: str) -> str:
    """The host a client on this machine connects to for a console bound to ``bind`` (all interfaces:
    loopback)."""
    return "127.0.0.1" if bind in ("*", "0.0.0.0", "") else ("::1" if bind in ("::", "[::]") else bind)


# ============================================================================================ transport


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://host:port`` (IPv6 hosts bracketed; port 0: ``*``, any free port when binding)."""
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"tcp://{host}:{'*' if int(port) == 0 else int(port)}"


def _port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dumps(obj: Any) -> bytes:
    """Compact strict JSON (non-finite floats become null; unknown types their ``str``)."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode("utf-8")


def _error_ack(command: Any, error: str) -> dict[str, Any]:
    return {"ok": False, "command": command if isinstance(command, str) else None, "error": error}


class _BadRequest(Exception):
    """A request frame that is not ``{"command": name, "args": {...}}`` (the message: a one-line reason)."""


class _BadSnapshot(Exception):
    """A ``state`` ack without ``result.seq`` and ``result.state``."""


def _parse_request(payload: bytes) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` of one request frame; :class:`_BadRequest` with a one-line reason if it is not."""
    try:
        req = bounded_loads(payload)
    except JsonTooDeep:
        raise _BadRequest(f'request nested deeper than {MAX_JSON_DEPTH} levels: expected {{"command": name, '
                          '"args": {...}}') from None
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise _BadRequest('request is not JSON: expected {"command": name, "args": {...}}') from None
    if not isinstance(req, dict):
        raise _BadRequest(
            f'request is a JSON {type(req).__name__}: expected {{"command": name, "args": {{...}}}}'
        )
    name = req.get("command")
    if not isinstance(name, str) or not name:
        raise _BadRequest('request has no "command" string')
    args = req.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _BadRequest(f'{name}: "args" must be a JSON object, got {type(args).__name__}')
    extra = sorted(set(req) - {"command", "args"})
    if extra:
        raise _BadRequest(f"{name}: unknown request keys {', '.join(extra)} (expected command, args)")
    return name, args


class ZmqConsole:
    """The ZeroMQ console transport of one hub (see the module docstring).

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
        self._ctx: zmq.Context | None = None
        self._auth: KeyAuthenticator | None = None
        self._thread: threading.Thread | None = None
        self._events_thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._requests: queue.Queue[tuple[list[bytes], str, dict[str, Any], str] | None] = queue.Queue(
            MAX_WAITING
        )
        self._stop = threading.Event()
        self._pipe: zmq.Socket | None = None
        self._pipe_lock = threading.Lock()
        self._pipe_addr = f"inproc://stagectl-console-{id(self):x}-{secrets.token_hex(4)}"
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
        self._monitors: list[RefusalMonitor] = []
        self._sub: Any = None

    # ------------------------------------------------------------------------------------------ public

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def command_endpoint(self) -> str:
        """``tcp://host:port`` a client on this machine connects to for commands."""
        return tcp_endpoint(connect_host(self.bind), self.port or self._want_port)

    @property
    def state_endpoint(self) -> str:
        """``tcp://host:port`` a client on this machine subscribes to for the state stream."""
        return tcp_endpoint(connect_host(self.bind), self.state_port or self._want_state_port)

    def _check_keys(self) -> tuple[bytes, bytes]:
        k = self.keys
        if not k.keys_dir.is_dir() or not k.server_secret.is_file() or not k.clients_dir.is_dir():
            missing = (
                k.keys_dir
                if not k.keys_dir.is_dir()
                else (k.server_secret if not k.server_secret.is_file() else k.clients_dir)
            )
            raise ZmqConsoleError(
                f"ZeroMQ console: no keys ({missing} is missing); run `stagectl keys STAGE.yaml` to make the "
                "server key and a client key"
            )
        public, secret = load_key(k.server_secret, "server key", secret=True)
        assert secret is not None
        return public, secret

    def start(self) -> ZmqConsole:
        """Load the keys, start the authenticator, bind both sockets and start the threads."""
        if self._thread is not None:
            return self
        server_public, server_secret = self._check_keys()
        ctx = zmq.Context()  # own context: the ZAP endpoint (inproc://zeromq.zap.01) is per context
        made: list[zmq.Socket] = []
        auth = KeyAuthenticator(ctx, self.keys.clients_dir, self.refusals)

        def sock(kind: int) -> zmq.Socket:
            s = ctx.socket(kind)
            s.setsockopt(zmq.LINGER, 0)
            made.append(s)
            return s

        try:
            auth.start()  # before binding: a CURVE server without a ZAP handler would admit any key
            auth.load()
            router = sock(zmq.ROUTER)
            pub = sock(zmq.PUB)
            for s in (router, pub):
                s.curve_secretkey = server_secret
                s.curve_publickey = server_public
                s.curve_server = True
            router.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
            pub.setsockopt(zmq.SNDHWM, 1000)
            for s, port, what in (
                (router, self._want_port, "command"),
                (pub, self._want_state_port, "state"),
            ):
                ep = tcp_endpoint(self.bind, port)
                try:
                    s.bind(ep)
                except zmq.ZMQError as exc:
                    raise ZmqConsoleError(
                        f"ZeroMQ console: cannot bind the {what} socket to {ep}: {exc}"
                    ) from None
            self.port = _port_of(router.last_endpoint.decode())
            self.state_port = _port_of(pub.last_endpoint.decode())
            self._monitors = [
                RefusalMonitor("command", router, self.refusals),
                RefusalMonitor("state", pub, self.refusals),
            ]
            made += [m.socket for m in self._monitors]
            pull = sock(zmq.PULL)
            pull.bind(self._pipe_addr)
            push = sock(zmq.PUSH)
            push.setsockopt(zmq.SNDHWM, 0)  # replies are never dropped on the way to the socket thread
            push.connect(self._pipe_addr)
        except BaseException:
            for s in made:
                s.close(linger=0)
            auth.stop()
            ctx.term()
            raise
        self._ctx, self._auth, self._pipe = ctx, auth, push
        self._stop.clear()
        self._requests = queue.Queue(MAX_WAITING)  # a fresh queue: no stop markers left from a previous run
        self._thread = threading.Thread(
            target=self._serve, args=(router, pub, pull), name="console-zmq", daemon=True
        )
        self._thread.start()
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
        if self._thread is None:
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
        self._send_pipe([b"stop"])
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._events_thread is not None:
            self._events_thread.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()) / max(1, len(self._workers)))
        with self._pipe_lock:
            if self._pipe is not None:
                self._pipe.close(linger=0)
                self._pipe = None
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            if self._thread.is_alive():  # cannot happen unless the socket thread is stuck: do not hang
                self._ctx.destroy(linger=0)
            else:
                self._ctx.term()
        self._thread = None
        self._events_thread = None
        self._workers = []
        self._auth = None
        self._ctx = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Counters: requests, replies, bad requests, busy refusals, internal errors, events published,
        requests per client, connections accepted and handshakes completed, and every refused connection
        (``refused``, ``refused_by_reason``, ``refused_by_peer``, ``refused_recent``, ``unknown_keys``)."""
        with self._stats_lock:
            out: dict[str, Any] = dict(self._counts)
            out["requests_by_client"] = dict(self._by_client)
        out["waiting"] = self._requests.qsize()
        out["accepted"] = sum(m.accepted for m in self._monitors)
        out["handshakes"] = sum(m.handshakes for m in self._monitors)
        out.update(self.refusals.as_dict())
        out["refusal_reasons"] = dict(Refusals.REASONS)
        if self._auth is not None:
            out["bad_key_files"] = list(self._auth.bad_key_files)
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
        with self._pipe_lock:
            if self._pipe is None:
                return False
            try:
                self._pipe.send_multipart(frames, zmq.NOBLOCK)
                return True
            except zmq.ZMQError:
                return False

    def _serve(self, router: zmq.Socket, pub: zmq.Socket, pull: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        for m in self._monitors:
            poller.register(m.socket, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll(1000))
                if pull in ready and self._drain_pipe(pull, router, pub):
                    return
                if router in ready:
                    self._drain_requests(router)
                for m in self._monitors:
                    if m.socket in ready:
                        m.handle()
        finally:
            for m in self._monitors:
                m.close()
            for s in (router, pub, pull):
                s.close(linger=0)

    def _drain_pipe(self, pull: zmq.Socket, router: zmq.Socket, pub: zmq.Socket) -> bool:
        """Send what the workers and the event thread passed; True on ``stop``."""
        for _ in range(1000):
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            kind = frames[0]
            if kind == b"stop":
                return True
            try:
                if kind == b"reply":
                    router.send_multipart(frames[1:], zmq.NOBLOCK)
                    self._count("replies")
                elif kind == b"event":
                    pub.send_multipart(frames[1:], zmq.NOBLOCK)
                    self._count("events_published")
            except zmq.ZMQError:  # a full queue: the reply or event is dropped (and counted)
                self._count("replies_dropped" if kind == b"reply" else "events_dropped")
        return False

    def _reply_now(self, router: zmq.Socket, envelope: list[bytes], ack: dict[str, Any]) -> None:
        try:
            router.send_multipart([*envelope, _dumps(ack)], zmq.NOBLOCK)
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
            try:
                user = frames[-1].get("User-Id")
            except zmq.ZMQError:
                user = None
            who = f"zmq:{user or '?'}"
            if len(frames) > MAX_REQUEST_FRAMES:
                self._count("bad_requests")
                head = [f.bytes for f in frames[:MAX_REQUEST_FRAMES]]
                if b"" in head[1:]:
                    self._reply_now(router, head[: head.index(b"", 1) + 1], _error_ack(
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
                    _error_ack(
                        None, f"request has {len(payload)} frames after the envelope: expected one JSON frame"
                    ),
                )
                continue
            try:
                name, args = _parse_request(payload[0])
            except _BadRequest as exc:
                self._count("bad_requests")
                self._reply_now(router, envelope, _error_ack(None, str(exc)))
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
                    _error_ack(
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
                body = _dumps(ack)
            except Exception as exc:  # noqa: BLE001 -- a hub bug must not kill the worker or the wait
                self._count("internal_errors")
                body = _dumps(_error_ack(name, f"internal error: {type(exc).__name__}: {exc}"))
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
                self._send_pipe([b"event", topic, _dumps(ev)])
        finally:
            sub.close()


# ============================================================================================== clients


class ConsoleClient:
    """A command client (DEALER with a CURVE key): :meth:`request` sends one command and waits for its ack.

    Each request carries a fresh tag frame before the empty delimiter; the console echoes the envelope, so a
    late reply to an earlier, timed-out request is recognised and skipped.
    """

    def __init__(self, endpoint: str, keys: ClientKeys, *, context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        keys.apply(self._sock)
        self._sock.connect(endpoint)
        self._tag = 0

    def request(self, command: str, args: Mapping[str, Any] | None = None, *, timeout_s: float = 3.0) -> dict:
        """The console's ack of ``command``; :class:`ConsoleUnreachable` if none comes within
        ``timeout_s``."""
        self._tag += 1
        tag = f"{self._tag}".encode()
        unreachable = ConsoleUnreachable(
            f"no reply within {timeout_s:g} s from {self.endpoint} — is `stagectl run` running with the "
            "console, and is the key authorised?"
        )
        deadline = time.monotonic() + timeout_s
        # a DEALER whose connection was refused has no peer and would block in send: bound the wait
        self._sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout_s * 1000)))
        try:
            self._sock.send_multipart([tag, b"", _dumps({"command": command, "args": dict(args or {})})])
        except zmq.Again:
            raise unreachable from None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                raise unreachable
            frames = self._sock.recv_multipart()
            if len(frames) == 3 and frames[0] == tag and frames[1] == b"":
                try:
                    ack = json.loads(frames[2])
                except ValueError:
                    raise ConsoleUnreachable(f"{self.endpoint} answered something that is not JSON") from None
                if isinstance(ack, dict):
                    return ack

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _snapshot_of(ack: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(seq, state)`` from the ack of the ``state`` command."""
    result = ack.get("result")
    if not isinstance(result, Mapping):
        raise _BadSnapshot("the state command's ack has no result object")
    seq = result.get("seq", ack.get("seq"))
    state = result.get("state")
    if not isinstance(seq, int) or not isinstance(state, Mapping):
        raise _BadSnapshot("the state command's result lacks seq or state")
    return seq, dict(state)


class StateFollower:
    """The late joiner's side of the state stream (clone pattern).

    ``start()`` subscribes to the stream, waits (up to :data:`SYNC_WAIT_S`) until the subscription delivers
    anything, so no update can fall between snapshot and stream, then asks ``state`` for the snapshot
    (``seq``, ``state``). :meth:`poll` then applies state updates with ``seq`` above the current one: each
    update carries the whole operator state, so one that skips numbers (a *gap*: counted) is applied as well.
    An update at or below the current ``seq`` after live updates were applied means the stage restarted:
    a new snapshot is taken (``resyncs``). Status events are kept in :attr:`status`.

    Single-threaded: its sockets belong to the thread that calls it.
    """

    def __init__(
        self,
        command_endpoint: str,
        state_endpoint: str,
        keys: ClientKeys,
        *,
        timeout_s: float = 3.0,
        context: zmq.Context | None = None,
    ) -> None:
        self.command_endpoint = command_endpoint
        self.state_endpoint = state_endpoint
        self.timeout_s = float(timeout_s)
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._keys = keys
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        keys.apply(self._sub)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"state")
        self._sub.setsockopt(zmq.SUBSCRIBE, b"status")
        self._client: ConsoleClient | None = None
        self._backlog: deque[tuple[bytes, dict[str, Any]]] = deque()
        self.seq: int | None = None
        self.state: dict[str, Any] | None = None
        self.snapshot_ack: dict[str, Any] | None = None
        self.status: dict[str, Any] | None = None
        self.applied = 0
        self.gaps = 0
        self.resyncs = 0
        self.stale = 0
        self.bad = 0
        self._live = False

    def start(self) -> StateFollower:
        """Subscribe, then take the snapshot; :class:`ConsoleUnreachable` when the console does not answer."""
        self._sub.connect(self.state_endpoint)
        self._client = ConsoleClient(self.command_endpoint, self._keys, context=self._ctx)
        deadline = time.monotonic() + min(SYNC_WAIT_S, self.timeout_s)
        while not self._backlog:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sub.poll(int(left * 1000) + 1):
                break
            self._read_one()
        self._snapshot()
        return self

    def _snapshot(self) -> None:
        assert self._client is not None
        ack = self._client.request("state", {}, timeout_s=self.timeout_s)
        if not ack.get("ok"):
            raise ZmqConsoleError(f"the console refused the state snapshot: {ack.get('error')}")
        try:
            self.seq, self.state = _snapshot_of(ack)
        except _BadSnapshot as exc:
            raise ZmqConsoleError(f"{self.command_endpoint}: {exc}") from None
        self.snapshot_ack = ack
        self._live = False

    def _read_one(self) -> None:
        frames = self._sub.recv_multipart()
        if len(frames) != 2:
            self.bad += 1
            return
        try:
            ev = json.loads(frames[1])
        except ValueError:
            self.bad += 1
            return
        if not isinstance(ev, dict):
            self.bad += 1
            return
        self._backlog.append((frames[0], ev))

    def _apply(self, topic: bytes, ev: dict[str, Any]) -> dict[str, Any] | None:
        if topic == b"status":
            status = ev.get("status")
            if isinstance(status, dict):
                self.status = status
            return ev
        seq = ev.get("seq")
        state = ev.get("state")
        if not isinstance(seq, int) or not isinstance(state, dict) or self.seq is None:
            self.bad += 1
            return None
        if seq <= self.seq:
            if self._live:  # numbers went back after live updates: the stage restarted
                self.resyncs += 1
                self._snapshot()
            else:
                self.stale += 1  # already in the snapshot
            return None
        if seq != self.seq + 1:
            self.gaps += 1
        self.seq, self.state = seq, state
        self.applied += 1
        self._live = True
        return ev

    def poll(self, timeout_s: float = 0.0) -> list[dict[str, Any]]:
        """Wait up to ``timeout_s`` for the stream and apply everything that came; returns the applied state
        events and the status events, in order."""
        if self.seq is None:
            raise RuntimeError("StateFollower.poll before start()")
        if not self._backlog and self._sub.poll(int(timeout_s * 1000)):
            self._read_one()
        while self._sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._read_one()
        out = []
        while self._backlog:
            ev = self._apply(*self._backlog.popleft())
            if ev is not None:
                out.append(ev)
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._sub.close(linger=0)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
