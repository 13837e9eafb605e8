"""One ZeroMQ service base for stagectl's listeners and their peers: the stage console
(:mod:`stagectl.console.zmq`) and the cluster (:mod:`stagectl.sync.cluster.primary` / ``node``).

A **listener** (:class:`ZmqService`) is a few sockets that one service thread owns, and an inproc pipe through
which the other threads talk to that thread::

    caller threads ── send([kind, ...]) ──▶ PAIR (lock-guarded) ── inproc ──▶ PAIR ─┐
                                                                                       service thread: owns
    peers (tcp, CURVE when keyed) ◀──────────▶ listen(...) sockets + RefusalMonitors ─┘ every socket

What it does for every listener, once:

* **Sockets.** Every socket has linger 0. :meth:`ZmqService.listen` gives a socket its inbound size bound
  (``ZMQ_MAXMSGSIZE``: a bigger message closes that peer's connection) and its send high-water mark, makes it
  a CURVE server with the :class:`~stagectl.sync.zmq_security.ServerKeys` pair (the authenticator is started
  before the first bind: a CURVE server without a ZAP handler would admit any key) and binds it.
* **Exclusive binds.** libzmq never shares a TCP port (no ``SO_REUSEPORT``; ``SO_EXCLUSIVEADDRUSE`` on
  Windows), so a port in use fails the bind; the failure is one line, raised as the caller's error class:
  ``cannot bind the <what> socket to tcp://host:port: port N is in use by another process ...``. Port 0 binds
  a free port; :attr:`ZmqService.ports` has the ports bound.
* **Refusals.** With keys, every listening socket gets a
  :class:`~stagectl.sync.zmq_security.RefusalMonitor` (refused handshakes counted by reason and peer in
  :attr:`ZmqService.refusals`); the service thread serves them with :meth:`ZmqService.handle_monitors`.
* **A clean stop.** :meth:`ZmqService.stop` sends :data:`STOP` through the pipe and joins the thread
  (bounded); the thread closes the monitors and its sockets on its way out; :meth:`ZmqService.close` closes
  the pipe, stops the authenticator and terminates the context (when it is the service's own; a stuck thread:
  destroyed, never waited for). A start that fails half-way (:meth:`ZmqService.setting_up`) closes whatever
  it made.

A **peer** (:class:`ZmqPeer`: the console's clients, a cluster node) has a context (its own, or the caller's)
and sockets with linger 0 that are CURVE clients when it has :class:`~stagectl.sync.zmq_security.ClientKeys`;
its :meth:`~ZmqPeer.close` is bounded too.

What stays with each service, because it differs: the message formats and their checks (the console's JSON
requests, bounded by :mod:`stagectl.console.jsonbounds`; the cluster's binary wire), the counters of bad and
dropped messages, and the cluster primary's per-peer rates (:mod:`stagectl.sync.ratelimit`).

Time: integer nanoseconds on ``time.monotonic_ns()`` where measured; the timeouts given here are seconds
(``threading`` and ``zmq`` take seconds and milliseconds).
"""

from __future__ import annotations

import errno
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self

import zmq

from stagectl.core.errors import StageError
from stagectl.sync.zmq_security import ClientKeys, KeyAuthenticator, RefusalMonitor, Refusals, ServerKeys

__all__ = [
    "PIPE_DRAIN",
    "STOP",
    "ZmqPeer",
    "ZmqService",
    "ZmqServiceError",
    "bind_failure",
    "connect_host",
    "port_of",
    "readable",
    "recv_from",
    "tcp_endpoint",
    "term_context",
    "user_id",
]

#: The pipe message that ends a service thread.
STOP = b"STOP"
#: Most pipe messages :meth:`ZmqService.drain_pipe` handles before the service thread serves its sockets
#: again.
PIPE_DRAIN = 1024


class ZmqServiceError(StageError):
    """A ZeroMQ listener that cannot start (a port that cannot be bound), in one line. Services raise their
    own error class instead (``error=`` of :class:`ZmqService`)."""

    exit_code = 2


# ============================================================================================== addresses


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://host:port`` (IPv6 hosts bracketed; port 0: ``*``, any free port when binding)."""
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"tcp://{host}:{'*' if int(port) == 0 else int(port)}"


def port_of(endpoint: str | bytes) -> int:
    """The port of a bound endpoint (``socket.last_endpoint``)."""
    if isinstance(endpoint, bytes):
        endpoint = endpoint.decode()
    return int(endpoint.rsplit(":", 1)[1])


def connect_host(bind: str) -> str:
    """The host a client on this machine connects to for a listener bound to ``bind`` (all interfaces:
    loopback)."""
    return "127.0.0.1" if bind in ("*", "0.0.0.0", "") else ("::1" if bind in ("::", "[::]") else bind)


def bind_failure(exc: zmq.ZMQError, port: int) -> str:
    """Why a bind failed, in words (a busy port: said so; anything else: libzmq's text)."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is in use by another process (a port is never shared): stop the other one, or "
                "give this one another port")
    return str(exc)


# ================================================================================================ messages


def readable(sock: zmq.Socket) -> bool:
    """A message is waiting (cheaper than ending every drain loop with a ``zmq.Again`` exception)."""
    return bool(sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)


def user_id(frame: zmq.Frame) -> str | None:
    """The ZAP User-Id a message came with (the stem of the sender's key file), None without one."""
    try:
        return frame.get("User-Id")
    except zmq.ZMQError:
        return None


def recv_from(sock: zmq.Socket, with_user: bool) -> tuple[list[bytes], str | None]:
    """One waiting message (``NOBLOCK``: ``zmq.Again`` when there is none) and, ``with_user``, the sender's
    ZAP User-Id (:func:`user_id`; else None, and the message is received without frame objects)."""
    if not with_user:
        return sock.recv_multipart(zmq.NOBLOCK), None
    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
    return [f.bytes for f in frames], user_id(frames[-1])


def term_context(ctx: zmq.Context, timeout_s: float | None = None) -> bool:
    """Terminate ``ctx``: at once (``timeout_s`` None), or waiting at most ``timeout_s`` (a socket that still
    lingers then finishes on a daemon thread). True when it terminated."""
    if timeout_s is None:
        ctx.term()
        return True
    done = threading.Event()

    def term() -> None:
        ctx.term()
        done.set()

    threading.Thread(target=term, daemon=True, name="stagectl-zmq-term").start()
    return done.wait(timeout_s)


# ================================================================================================ listener


class ZmqService:
    """The sockets of one listener, the service thread that owns them and the pipe to it (module docstring).

    :param name: a short name (the inproc pipe's address, messages).
    :param keys: CURVE server keys: every :meth:`listen` socket becomes a CURVE server admitting the keys in
        ``keys.allowed_dir`` (ZAP handler started before the first bind) and gets a refusal monitor. None: no
        authentication.
    :param refusals: where refused handshakes are counted (default: a new :class:`Refusals`).
    :param context: a ``zmq.Context`` to use (not with ``keys``: the ZAP handler is per context); default: a
        new one, terminated by :meth:`close`.
    :param error: the exception class a failed bind raises (one line).
    :param prefix: the start of that line (e.g. ``"ZeroMQ console: "``).

    Use::

        svc = ZmqService("console", keys=keys, error=MyError)
        with svc.setting_up():          # anything raised: every socket closed, the context ended
            a = svc.listen(zmq.ROUTER, "127.0.0.1", 0, "command", max_msg_bytes=1 << 20)
            svc.open_pipe()
        svc.start(serve, a, name="my-service")   # serve(a) polls a, svc.pipe_end and svc.monitor_sockets
        svc.send([b"JOB", ...])                   # from any thread
        svc.stop(0.2); svc.close()
    """

    def __init__(
        self,
        name: str,
        *,
        keys: ServerKeys | None = None,
        refusals: Refusals | None = None,
        context: zmq.Context | None = None,
        error: type[Exception] = ZmqServiceError,
        prefix: str = "",
    ) -> None:
        if keys is not None and context is not None:
            raise error(f"{prefix}a listener with CURVE keys makes its own zmq context (the ZAP handler that "
                        "checks the keys is per context): leave the context out")
        self.name = name
        self.keys = keys
        self.refusals = refusals if refusals is not None else Refusals()
        self.error = error
        self.prefix = prefix
        self._own_ctx = context is None
        self.context: zmq.Context | None = context if context is not None else zmq.Context()
        self.auth: KeyAuthenticator | None = None
        #: ``name -> port`` of every socket bound by :meth:`listen`.
        self.ports: dict[str, int] = {}
        self.monitors: list[RefusalMonitor] = []
        self._sockets: list[zmq.Socket] = []  # the service thread's, closed by it (or by a failed start)
        #: The caller's end of the pipe (guarded by :attr:`lock`) and the service thread's end.
        self.pipe: zmq.Socket | None = None
        self.pipe_end: zmq.Socket | None = None
        #: Guards :attr:`pipe`; re-entrant, so a caller may hold it across several :meth:`send` calls.
        self.lock = threading.RLock()
        self.thread: threading.Thread | None = None
        self.closed = False

    # ------------------------------------------------------------------------------------------ set-up

    @contextmanager
    def setting_up(self) -> Iterator[ZmqService]:
        """Start the authenticator (with keys); on any exception inside, undo everything (sockets, the
        authenticator, an own context) and let it propagate."""
        try:
            if self.keys is not None and self.auth is None:
                assert self.context is not None
                self.auth = KeyAuthenticator(self.context, self.keys.allowed_dir, self.refusals)
                self.auth.start()  # before binding: a CURVE server without a ZAP handler would admit any key
                self.auth.load()
            yield self
        except BaseException:
            self._abort()
            raise

    def socket(self, kind: int) -> zmq.Socket:
        """A socket (linger 0) owned by the service thread: it closes it when it ends."""
        assert self.context is not None
        s = self.context.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        self._sockets.append(s)
        return s

    def listen(
        self,
        kind: int,
        host: str,
        port: int,
        name: str,
        *,
        what: str | None = None,
        max_msg_bytes: int | None = None,
        sndhwm: int | None = None,
        monitor: bool | None = None,
    ) -> zmq.Socket:
        """A socket of ``kind`` bound to ``host:port`` (0: a free port; read :attr:`ports` ``[name]``), with
        ``ZMQ_MAXMSGSIZE`` ``max_msg_bytes`` and ``ZMQ_SNDHWM`` ``sndhwm`` when given, and a CURVE server when
        the service has keys. ``monitor`` (default: with keys): a refusal monitor named ``name`` counts its
        connections and refused handshakes (:meth:`connections`). A failed bind raises the service's error
        class: ``<prefix>cannot bind the <what, default name> socket to <endpoint>: <why>``."""
        s = self.socket(kind)
        if max_msg_bytes is not None:
            s.setsockopt(zmq.MAXMSGSIZE, int(max_msg_bytes))
        if sndhwm is not None:
            s.setsockopt(zmq.SNDHWM, int(sndhwm))
        if self.keys is not None:
            self.keys.apply(s)
        ep = tcp_endpoint(host, port)
        try:
            s.bind(ep)
        except zmq.ZMQError as exc:
            raise self.error(
                f"{self.prefix}cannot bind the {what or name} socket to {ep}: {bind_failure(exc, port)}"
            ) from None
        self.ports[name] = port_of(s.last_endpoint)
        if self.keys is not None if monitor is None else monitor:  # refused handshakes, by reason and peer
            self.monitors.append(RefusalMonitor(name, s, self.refusals))
        return s

    def open_pipe(self, hwm: int | None = None) -> None:
        """The inproc pipe from the callers (:meth:`send`) to the service thread (:attr:`pipe_end`). ``hwm``:
        the caller end's send high-water mark (0: unbounded, a send never fails for a full pipe; None:
        ZeroMQ's default, a blocking :meth:`send` waits for the thread)."""
        assert self.context is not None
        addr = f"inproc://stagectl-{self.name}-{id(self):x}-{secrets.token_hex(4)}"
        end = self.socket(zmq.PAIR)
        end.bind(addr)
        pipe = self.context.socket(zmq.PAIR)
        pipe.setsockopt(zmq.LINGER, 0)
        if hwm is not None:
            pipe.setsockopt(zmq.SNDHWM, int(hwm))  # before connecting: inproc takes it then
        self.pipe = pipe
        pipe.connect(addr)
        self.pipe_end = end

    def start(self, serve: Callable[..., None], *args: Any, name: str) -> ZmqService:
        """Run ``serve(*args)`` on the service thread ``name`` (a daemon); when it returns or raises, the
        thread closes the monitors and every socket of the service."""
        self.thread = threading.Thread(target=self._run, args=(serve, args), name=name, daemon=True)
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    # ---------------------------------------------------------------------------------- caller threads

    def send(self, frames: list[bytes], *, block: bool = False) -> bool:
        """Pass ``frames`` to the service thread (any thread; serialised by :attr:`lock`). False when the
        pipe is closed or the message could not be queued (``block``: wait while the pipe is full)."""
        with self.lock:
            if self.pipe is None:
                return False
            try:
                self.pipe.send_multipart(frames, 0 if block else zmq.NOBLOCK)
                return True
            except zmq.ZMQError:
                return False

    def stop(self, timeout_s: float) -> bool:
        """Ask the service thread to end (:data:`STOP`) and wait for it at most ``timeout_s``; True when it
        ended (or never ran)."""
        if self.thread is None:
            return True
        self.send([STOP])
        self.thread.join(max(0.0, timeout_s))
        return not self.thread.is_alive()

    def close(self) -> None:
        """After :meth:`stop`: close the pipe, stop the authenticator and terminate an own context (destroy it
        when the service thread is still running: never wait for a stuck thread). Idempotent."""
        if self.closed:
            return
        self.closed = True
        with self.lock:
            if self.pipe is not None:
                self.pipe.close(linger=0)
                self.pipe = None
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        if self._own_ctx and self.context is not None:
            if self.running:  # cannot happen unless the service thread is stuck: do not hang
                self.context.destroy(linger=0)
            else:
                self.context.term()
        self.context = None

    def connections(self) -> dict[str, int]:
        """Over the monitored sockets: connections ``accepted``, ``handshakes`` completed, and connections
        ``disconnected`` after their handshake (by the peer, or by a message over ``ZMQ_MAXMSGSIZE``: libzmq
        drops it and closes that connection). Refusals: :attr:`refusals`."""
        return {
            "accepted": sum(m.accepted for m in self.monitors),
            "handshakes": sum(m.handshakes for m in self.monitors),
            "disconnected": sum(m.disconnected for m in self.monitors),
        }

    # ---------------------------------------------------------------------------------- service thread

    @property
    def monitor_sockets(self) -> list[zmq.Socket]:
        """The refusal monitors' sockets, to poll beside the service's own."""
        return [m.socket for m in self.monitors]

    def handle_monitors(self, events: Mapping[Any, Any]) -> None:
        """Serve the refusal monitors that ``events`` (a poll's result) says are readable."""
        for m in self.monitors:
            if m.socket in events:
                m.handle()

    def drain_pipe(self, handle: Callable[[list[bytes]], None], limit: int = PIPE_DRAIN) -> bool:
        """Hand the waiting pipe messages to ``handle`` (at most ``limit``); True on :data:`STOP` (end the
        service loop)."""
        end = self.pipe_end
        assert end is not None
        for _ in range(limit):
            if not readable(end):
                return False
            msg = end.recv_multipart(zmq.NOBLOCK)
            if msg[0] == STOP:
                return True
            handle(msg)
        return False

    def _run(self, serve: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            serve(*args)
        finally:
            self._close_sockets()

    def _close_sockets(self) -> None:
        for m in self.monitors:  # before the sockets they watch
            m.close()
        for s in self._sockets:
            s.close(linger=0)

    def _abort(self) -> None:
        self._close_sockets()
        with self.lock:
            if self.pipe is not None:
                self.pipe.close(linger=0)
                self.pipe = None
        self.closed = True
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        if self._own_ctx and self.context is not None:
            self.context.term()
        self.context = None


# ==================================================================================================== peer


class ZmqPeer:
    """The connecting side: a context (its own, or the caller's) and sockets with linger 0, CURVE clients of
    the server when ``keys`` are given. Single-threaded: the sockets belong to the thread that uses them. A
    client may be one (subclass) or have one; as a context manager it closes on leaving the block."""

    def __init__(self, keys: ClientKeys | None = None, context: zmq.Context | None = None) -> None:
        self.keys = keys
        self._own_ctx = context is None
        self.context = context if context is not None else zmq.Context()
        self._sockets: list[zmq.Socket] = []

    def socket(self, kind: int, subscribe: Iterable[bytes] = ()) -> zmq.Socket:
        """A socket of ``kind`` (linger 0; a CURVE client with the keys; subscribed to ``subscribe``)."""
        s = self.context.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        self._sockets.append(s)
        if self.keys is not None:
            self.keys.apply(s)
        for topic in subscribe:
            s.setsockopt(zmq.SUBSCRIBE, topic)
        return s

    def close(self, timeout_s: float | None = None) -> bool:
        """Close the sockets still open (linger 0) and terminate an own context (waiting at most ``timeout_s``
        for sockets closed earlier with a linger; None: no bound). True when everything ended."""
        for s in self._sockets:
            if not s.closed:
                s.close(linger=0)
        self._sockets.clear()
        if not self._own_ctx:
            return True
        return term_context(self.context, timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
