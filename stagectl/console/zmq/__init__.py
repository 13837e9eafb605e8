"""The stage console over ZeroMQ: a CURVE-authenticated command socket and state stream, and their clients.

Topology (zguide *Clone* pattern; ``docs/reference/STYLE.md`` practice 10)::

    stagectl run (ZmqConsole)                                 client (stagectl ctl, scripts)
    ROUTER port        ◀── {"command": name, "args": {...}} ── REQ or DEALER
                       ── the hub's ack (JSON) ──────────────▶
    PUB    state_port  ── [b"state", event JSON] (seq n) ────▶ SUB (StateFollower)
                       ── [b"status", event JSON] ───────────▶
    inproc PAIR pipe   ◀── replies and hub events from the worker and event threads (one lock-guarded end)

* **Requests.** One JSON frame ``{"command": name, "args": {...}}`` (``args`` optional) after the client's
  envelope (a REQ client's empty delimiter, or any frames a DEALER puts before an empty frame: they come back
  unchanged, so a DEALER can tag requests to match replies). The reply is the hub's ack
  (:meth:`ControlHub.submit`) as one JSON frame after the same envelope. A request that is not such an object
  (not JSON, nested deeper than :data:`stagectl.console.jsonbounds.MAX_DEPTH` levels, more than
  :data:`MAX_REQUEST_FRAMES` frames) is answered ``{"ok": false, "command": null, "error": ...}``, counted and
  dropped; it never reaches the hub. A frame over :data:`MAX_REQUEST_BYTES` closes the client's connection.
  ``hub.submit`` blocks until a frame applies a mutation, so the socket thread hands each request to a small
  worker pool and sends the replies the workers pass back through the inproc pipe (ZeroMQ sockets are used by
  one thread at a time: the pipe's shared end is guarded by a lock). A full pool is answered at once ("busy").
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
* **Service base.** The sockets, the exclusive binds (a busy port is a one-line error, never a shared port),
  CURVE, the refusal monitors, the socket thread and its pipe, and the bounded close are
  :class:`~stagectl.sync.zmq_service.ZmqService` (clients: :class:`~stagectl.sync.zmq_service.ZmqPeer`),
  the base the cluster primary and nodes use too.

Time: integer nanoseconds on ``time.monotonic_ns()`` (clock ``monotonic``) for every measurement; refusal
records carry a UTC wall-clock string for people. ``close()`` returns within 200 ms; a worker still blocked in
``hub.submit`` at that moment finishes on its own (daemon thread) and its reply is dropped.

Layout: :mod:`~stagectl.console.zmq.protocol` (ports, bounds, the JSON request and ack, errors; no sockets),
:mod:`~stagectl.console.zmq.keys` (the console's CURVE keys; files, checks and the ZAP handler are shared with
the cluster in :mod:`stagectl.sync.zmq_security`), :mod:`~stagectl.console.zmq.server` (:class:`ZmqConsole`)
and :mod:`~stagectl.console.zmq.client` (:class:`ConsoleClient`, :class:`StateFollower`).
"""

from stagectl.console.zmq.client import SYNC_WAIT_S, ConsoleClient, StateFollower
from stagectl.console.zmq.keys import console_server_keys, zmq_settings
from stagectl.console.zmq.protocol import (
    DEFAULT_PORT,
    DEFAULT_STATE_PORT,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_FRAMES,
    ConsoleUnreachable,
    ZmqConsoleError,
)
from stagectl.console.zmq.server import MAX_WAITING, WORKERS, ZmqConsole
from stagectl.sync.zmq_security import (  # the key files and their checking, shared with the cluster
    CLIENTS_DIR,
    DEFAULT_CLIENT,
    DEFAULT_KEYS_DIR,
    SERVER_KEY_NAME,
    ClientKeys,
    KeyPaths,
    ZmqKeyError,
    load_client_keys,
    make_keys,
    resolve_keys_dir,
)
from stagectl.sync.zmq_service import connect_host, tcp_endpoint

__all__ = [
    "CLIENTS_DIR",
    "DEFAULT_CLIENT",
    "DEFAULT_KEYS_DIR",
    "DEFAULT_PORT",
    "DEFAULT_STATE_PORT",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_FRAMES",
    "MAX_WAITING",
    "SERVER_KEY_NAME",
    "SYNC_WAIT_S",
    "WORKERS",
    "ClientKeys",
    "ConsoleClient",
    "ConsoleUnreachable",
    "KeyPaths",
    "StateFollower",
    "ZmqConsole",
    "ZmqConsoleError",
    "ZmqKeyError",
    "connect_host",
    "console_server_keys",
    "load_client_keys",
    "make_keys",
    "resolve_keys_dir",
    "tcp_endpoint",
    "zmq_settings",
]
