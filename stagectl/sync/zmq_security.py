"""CURVE keys and their checking for stagectl's ZeroMQ listeners: the stage console and the cluster primary.

One key folder per stage (``console.zmq.keys``, default ``keys`` next to the stage file)::

    keys/server.key, server.key_secret     the stage machine's key pair (the console and the cluster primary)
    keys/clients/NAME.key                  authorises console client NAME (stagectl ctl, scripts)
    keys/NAME.key_secret                   console client NAME's key pair (mode 0600)
    keys/nodes/NAME.key                    authorises cluster render node NAME (stagectl node --name NAME)
    keys/nodes/NAME.key_secret             node NAME's key pair (mode 0600)

``stagectl keys`` makes them (:func:`make_keys`). A listener is a CURVE server with the server pair; a
:class:`KeyAuthenticator` (ZAP handler, one per ``zmq.Context``: the ZAP endpoint is per context) admits only
peers whose public key is a ``*.key`` file of its allow-list folder and gives the file's stem as the peer's
ZAP *User-Id* (pyzmq: ``frame.get("User-Id")`` on every message the peer sends), so a message can be tied to
the key it came with. Refused handshakes are counted by reason with the peer's ``ip:port``
(:class:`Refusals`, fed by a :class:`RefusalMonitor` per socket and by the authenticator).

Time: integer nanoseconds on ``time.monotonic_ns()`` (clock ``monotonic``); refusal records carry a UTC
wall-clock string for people.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from stagectl.core.errors import StageError

__all__ = [
    "CLIENTS_DIR",
    "DEFAULT_CLIENT",
    "DEFAULT_KEYS_DIR",
    "KEY_RELOAD_NS",
    "NODES_DIR",
    "RECENT_REFUSALS",
    "SERVER_KEY_NAME",
    "ClientKeys",
    "KeyAuthenticator",
    "KeyPaths",
    "RefusalMonitor",
    "Refusals",
    "ServerKeys",
    "ZmqKeyError",
    "check_key_name",
    "cluster_node_keys",
    "cluster_server_keys",
    "load_client_keys",
    "load_key",
    "load_server_keys",
    "make_keys",
    "resolve_keys_dir",
    "z85_key",
]

#: Default key directory, relative to the stage file.
DEFAULT_KEYS_DIR = "keys"
#: Name of the server key pair inside the key directory.
SERVER_KEY_NAME = "server"
#: Sub-directory of the key directory with the authorised console clients' public keys.
CLIENTS_DIR = "clients"
#: Sub-directory of the key directory with the authorised cluster nodes' public keys (and their key pairs).
NODES_DIR = "nodes"
#: Client key pair ``stagectl keys`` makes by default and ``stagectl ctl`` uses by default.
DEFAULT_CLIENT = "ctl"
#: Refusal records (and unknown keys) kept.
RECENT_REFUSALS = 32
#: When an unknown key knocks, the ZAP handler rereads its allow-list folder if it changed or this long passed
#: (ns).
KEY_RELOAD_NS = 1_000_000_000

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_now = time.monotonic_ns


class ZmqKeyError(StageError):
    """Missing, unreadable or bad CURVE keys, or keys that cannot be written (a one-line message)."""

    exit_code = 2


# ================================================================================================ files


@dataclass(frozen=True)
class KeyPaths:
    """Where the CURVE keys of one stage live (see the module docstring)."""

    keys_dir: Path

    @property
    def server_public(self) -> Path:
        return self.keys_dir / f"{SERVER_KEY_NAME}.key"

    @property
    def server_secret(self) -> Path:
        return self.keys_dir / f"{SERVER_KEY_NAME}.key_secret"

    @property
    def clients_dir(self) -> Path:
        return self.keys_dir / CLIENTS_DIR

    @property
    def nodes_dir(self) -> Path:
        return self.keys_dir / NODES_DIR

    def client_public(self, name: str) -> Path:
        return self.clients_dir / f"{name}.key"

    def client_secret(self, name: str) -> Path:
        return self.keys_dir / f"{name}.key_secret"

    def node_public(self, name: str) -> Path:
        return self.nodes_dir / f"{name}.key"

    def node_secret(self, name: str) -> Path:
        return self.nodes_dir / f"{name}.key_secret"


@dataclass(frozen=True)
class ClientKeys:
    """What a peer needs to reach a CURVE server: its own key pair and the server's public key (z85 bytes).
    ``name``: the key file's stem (the console's client name, the cluster node's name)."""

    public: bytes
    secret: bytes
    server_public: bytes
    name: str = DEFAULT_CLIENT

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the server."""
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


@dataclass(frozen=True)
class ServerKeys:
    """What a CURVE listener needs: the server key pair (z85 bytes) and the folder of the public keys it admits
    (``*.key`` files; the stem is the peer's User-Id)."""

    public: bytes
    secret: bytes
    allowed_dir: Path

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


def resolve_keys_dir(settings: Any, stage_dir: str | os.PathLike[str]) -> Path:
    """The key directory of ``console.zmq.keys`` (default ``keys``); a relative one is taken from
    ``stage_dir``, the stage file's directory."""
    keys = Path(getattr(settings, "keys", None) or DEFAULT_KEYS_DIR).expanduser()
    return keys if keys.is_absolute() else Path(stage_dir) / keys


def check_key_name(name: str, what: str = "client") -> str:
    """``name`` when it can name a key file (up to 64 letters, digits, ``_ . -``; not ``server``), else
    :class:`ZmqKeyError`."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name == SERVER_KEY_NAME:
        raise ZmqKeyError(
            f"{what} name {name!r}: expected up to 64 letters, digits, '_', '.', '-' "
            f"(not {SERVER_KEY_NAME!r})"
        )
    return name


def _write_pair(tmp_dir: Path, name: str) -> tuple[Path, Path]:
    """A fresh key pair written in ``tmp_dir`` (public ``name.key``, secret ``name.key_secret`` mode 0600)."""
    public, secret = zmq.auth.create_certificates(str(tmp_dir), name)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return Path(public), Path(secret)


def make_keys(
    keys_dir: str | os.PathLike[str],
    clients: Iterable[str] = (DEFAULT_CLIENT,),
    *,
    nodes: Iterable[str] = (),
    force: bool = False,
) -> list[tuple[str, Path]]:
    """Create a stage's keys: the server pair if absent, one console client pair per name in ``clients`` and
    one cluster node pair per name in ``nodes``.

    A client's public key goes to ``<keys>/clients/NAME.key`` (which authorises it on the console) and its
    secret key to ``<keys>/NAME.key_secret``; a node's to ``<keys>/nodes/NAME.key`` (which authorises node
    NAME on the cluster) and ``<keys>/nodes/NAME.key_secret`` (secret files mode 0600). An existing key is kept
    unless ``force`` (then the pair is replaced; a new server key means every client and node must get the new
    ``server.key``). Returns ``(what, path)`` per file in order, ``what`` one of ``"made"``, ``"replaced"``,
    ``"kept"``.
    """
    client_names = [check_key_name(n, "client") for n in dict.fromkeys(clients)]
    node_names = [check_key_name(n, "node") for n in dict.fromkeys(nodes)]
    paths = KeyPaths(Path(keys_dir))
    try:
        paths.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths.clients_dir.mkdir(exist_ok=True, mode=0o755)
        if node_names:
            paths.nodes_dir.mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ZmqKeyError(f"cannot create the key directory {paths.keys_dir}: {exc.strerror}") from None
    out: list[tuple[str, Path]] = []
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=paths.keys_dir))  # same file system: atomic replace
    except OSError as exc:
        raise ZmqKeyError(f"cannot write keys in {paths.keys_dir}: {exc.strerror}") from None
    try:
        jobs = [(SERVER_KEY_NAME, paths.server_public, paths.server_secret)]
        jobs += [(n, paths.client_public(n), paths.client_secret(n)) for n in client_names]
        jobs += [(n, paths.node_public(n), paths.node_secret(n)) for n in node_names]
        for name, public, secret in jobs:
            exists = public.exists() or secret.exists()
            if exists and not force:
                out += [("kept", p) for p in (public, secret) if p.exists()]
                continue
            new_public, new_secret = _write_pair(tmp, name)
            os.replace(new_secret, secret)
            os.replace(new_public, public)
            out += [("replaced" if exists else "made", p) for p in (public, secret)]
    except OSError as exc:
        raise ZmqKeyError(f"cannot write keys in {paths.keys_dir}: {exc}") from None
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return out


def z85_key(text: bytes | None) -> bool:
    """``text`` is a Z85-encoded 32-byte CURVE key."""
    try:
        return text is not None and len(text) == 40 and len(z85.decode(text)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def load_key(path: Path, what: str, *, secret: bool) -> tuple[bytes, bytes | None]:
    """``(public, secret)`` of a key file made by ``stagectl keys`` (pyzmq's certificate format);
    :class:`ZmqKeyError` with a one-line message when it is missing or bad."""
    if not path.is_file():
        raise ZmqKeyError(f"{what} {path} is missing (run `stagectl keys STAGE.yaml` to make the keys)")
    try:
        public, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ZmqKeyError(f"{what} {path}: cannot be read: {exc}") from None
    if not z85_key(public):
        raise ZmqKeyError(f"{what} {path}: public-key is not a 40-character Z85 CURVE key")
    if secret and not z85_key(sec):
        raise ZmqKeyError(f"{what} {path}: no valid secret-key in the file (a .key_secret file is needed)")
    return public, sec


def load_client_keys(
    keys_dir: str | os.PathLike[str], key_file: str | os.PathLike[str] | None = None
) -> ClientKeys:
    """The client key pair ``key_file`` (default ``<keys>/ctl.key_secret``) and the server's public key
    ``<keys>/server.key``; :class:`ZmqKeyError` with a one-line message when a file is missing or bad."""
    paths = KeyPaths(Path(keys_dir))
    path = Path(key_file) if key_file is not None else paths.client_secret(DEFAULT_CLIENT)
    public, sec = load_key(path, "client key", secret=True)
    server_public, _ = load_key(paths.server_public, "server public key", secret=False)
    name = path.name.removesuffix(".key_secret").removesuffix(".key")
    assert sec is not None
    return ClientKeys(public, sec, server_public, name)


def load_server_keys(keys_dir: str | os.PathLike[str], allowed: str = CLIENTS_DIR) -> ServerKeys:
    """The server pair ``<keys>/server.key_secret`` and the allow-list folder ``<keys>/<allowed>``;
    :class:`ZmqKeyError` when the pair or the folder is missing or bad."""
    paths = KeyPaths(Path(keys_dir))
    allowed_dir = paths.keys_dir / allowed
    if not allowed_dir.is_dir():
        raise ZmqKeyError(f"{allowed_dir} is missing (run `stagectl keys STAGE.yaml` to make the keys)")
    public, secret = load_key(paths.server_secret, "server key", secret=True)
    assert secret is not None
    return ServerKeys(public, secret, allowed_dir)


# ================================================================================================ auth


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Refusals:
    """Refused connections, counted by reason and peer (thread-safe: ZAP thread and socket thread)."""

    REASONS: ClassVar[dict[str, str]] = {
        "no_curve": "no CURVE (plain or other security mechanism)",
        "unknown_key": "client key not in the authorised clients",
        "bad_handshake": "CURVE handshake failed (wrong server key?)",
        "handshake": "handshake did not complete (no CURVE and it hung up first, not ZeroMQ, or it hung up)",
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_reason: dict[str, int] = {}
        self.by_peer: dict[str, int] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_REFUSALS)
        self.unknown_keys: dict[str, dict[str, Any]] = {}

    def add(self, socket_name: str, reason: str, detail: str) -> dict[str, Any]:
        rec = {
            "time_utc": _utc_now(),
            "socket": socket_name,
            "reason": reason,
            "detail": detail,
            "peer": None,
        }
        with self._lock:
            self.total += 1
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
            self.recent.append(rec)
        return rec

    def set_peer(self, rec: dict[str, Any], peer: str) -> None:
        with self._lock:
            rec["peer"] = peer
            if peer in self.by_peer or len(self.by_peer) < 4 * RECENT_REFUSALS:  # bounded
                self.by_peer[peer] = self.by_peer.get(peer, 0) + 1

    def unknown_key(self, address: str, key_z85: str) -> None:
        with self._lock:
            entry = self.unknown_keys.get(key_z85)
            if entry is None:
                if len(self.unknown_keys) >= RECENT_REFUSALS:
                    return
                entry = self.unknown_keys[key_z85] = {"address": address, "attempts": 0}
            entry["address"] = address
            entry["attempts"] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "refused": self.total,
                "refused_by_reason": dict(self.by_reason),
                "refused_by_peer": dict(self.by_peer),
                "refused_recent": [dict(r) for r in self.recent],
                "unknown_keys": {k: dict(v) for k, v in self.unknown_keys.items()},
            }


class KeyAuthenticator(ThreadAuthenticator):
    """ZAP handler: CURVE peers whose public key is a ``*.key`` file in ``allowed_dir`` are admitted with the
    file's stem as their User-Id. An unknown key makes it reread the folder when the folder changed since the
    last reading (or a second passed), so a key added while running works for the next connection; a key
    still unknown is recorded with the peer address. Start it (and :meth:`load`) before binding: a CURVE
    server without a ZAP handler would admit any key."""

    def __init__(self, context: zmq.Context, allowed_dir: Path, refusals: Refusals) -> None:
        super().__init__(context=context)
        self.allowed_dir = Path(allowed_dir)
        self.refusals = refusals
        self._names: dict[bytes, str] = {}
        self._loaded_ns = 0
        self._dir_mtime_ns = -1
        self.bad_key_files: list[str] = []

    def load(self) -> None:
        """(Re)read the folder: public key (z85) -> file stem; unreadable files are listed and skipped."""
        names: dict[bytes, str] = {}
        bad: list[str] = []
        self._dir_mtime_ns = self._mtime_ns()
        for f in sorted(self.allowed_dir.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(f)
            except (OSError, ValueError):
                public = None
            if not z85_key(public):
                bad.append(f.name)
                continue
            assert public is not None
            names.setdefault(public, f.stem)
        self.configure_curve(domain="*", location=str(self.allowed_dir))
        self.certs["*"] = {k: True for k in names}  # the same keys, without the unreadable files' failure
        self._names = names
        self.bad_key_files = bad
        self._loaded_ns = _now()

    def _mtime_ns(self) -> int:
        try:
            return self.allowed_dir.stat().st_mtime_ns
        except OSError:
            return -1

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._names.get(z85.encode(client_public_key), "?")

    async def _authenticate_curve(self, domain: str, client_key: bytes) -> tuple[bool, bytes]:
        allowed, reason = await super()._authenticate_curve(domain, client_key)
        if not allowed and (
            self._mtime_ns() != self._dir_mtime_ns or _now() - self._loaded_ns >= KEY_RELOAD_NS
        ):
            self.load()
            allowed, reason = await super()._authenticate_curve(domain, client_key)
        return allowed, reason

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        await super().handle_zap_message(msg)
        # Record who knocked with an unknown key (the count itself comes from the socket monitors).
        if len(msg) == 7 and msg[5] == b"CURVE" and len(msg[6]) == 32:
            key = z85.encode(msg[6])
            if key not in self.certs.get("*", {}):
                self.refusals.unknown_key(msg[3].decode("utf-8", "replace"), key.decode("ascii"))


class RefusalMonitor:
    """Turns one listening socket's monitor events into refusal records: a handshake failure is counted when
    it is reported, and the peer (``ip:port``, read from the connection's descriptor when it was accepted) is
    added when libzmq reports that connection's disconnect, which follows the failure on the same I/O thread.
    Call :meth:`handle` from the socket's thread when :attr:`socket` is readable; :meth:`close` from there
    too."""

    EVENTS = (
        zmq.EVENT_ACCEPTED
        | zmq.EVENT_DISCONNECTED
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_SUCCEEDED
    )

    def __init__(self, name: str, sock: zmq.Socket, refusals: Refusals) -> None:
        self.name = name
        self.watched = sock
        self.socket = sock.get_monitor_socket(self.EVENTS)
        self.refusals = refusals
        self._peers: dict[int, str] = {}
        self._pending: deque[dict[str, Any]] = deque(maxlen=RECENT_REFUSALS)
        self.accepted = 0
        self.handshakes = 0
        #: Connections that ended after their handshake: closed by the peer, or by this socket (a message over
        #: its ``ZMQ_MAXMSGSIZE``: libzmq drops it and closes the connection without saying why).
        self.disconnected = 0

    @staticmethod
    def _peer_of(fd: int) -> str:
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            return "?"
        try:
            host, port = s.getpeername()[:2]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        except (OSError, ValueError, TypeError):
            return "?"
        finally:
            s.close()

    def handle(self, limit: int = 1024) -> None:
        for _ in range(limit):
            if not self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                ev = parse_monitor_message(self.socket.recv_multipart(zmq.NOBLOCK))
            except (zmq.Again, ValueError, IndexError):
                return
            kind, value = ev["event"], int(ev["value"])
            if kind == zmq.EVENT_ACCEPTED:
                self.accepted += 1
                if len(self._peers) < 4096:
                    self._peers[value] = self._peer_of(value)
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshakes += 1
            elif kind == zmq.EVENT_DISCONNECTED:
                peer = self._peers.pop(value, "?")
                if self._pending:  # the end of a refused handshake
                    self.refusals.set_peer(self._pending.popleft(), peer)
                else:
                    self.disconnected += 1
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._pending.append(self.refusals.add(self.name, "unknown_key", f"ZAP status {value}"))
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                    reason = "no_curve"
                else:
                    reason = "bad_handshake"
                self._pending.append(self.refusals.add(self.name, reason, f"protocol error 0x{value:x}"))
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                self._pending.append(self.refusals.add(self.name, "handshake", f"error {value}"))

    def close(self) -> None:
        """Stop monitoring and close the monitor socket (from the socket's thread, before closing it)."""
        try:
            self.watched.disable_monitor()
        except zmq.ZMQError:
            pass
        self.socket.close(linger=0)


# ============================================================================================= cluster


def cluster_server_keys(keys_dir: str | os.PathLike[str]) -> ServerKeys | None:
    """The cluster primary's keys: None when the stage's key folder has no ``nodes/`` folder (no node keys
    were made: the cluster runs without CURVE); else the server pair, admitting the keys in ``<keys>/nodes``
    (:class:`ZmqKeyError` when the server pair is missing or bad)."""
    paths = KeyPaths(Path(keys_dir))
    if not paths.nodes_dir.is_dir():
        return None
    return load_server_keys(paths.keys_dir, NODES_DIR)


def cluster_node_keys(
    keys_dir: str | os.PathLike[str], name: str, key_file: str | os.PathLike[str] | None = None
) -> ClientKeys | None:
    """Cluster node ``name``'s keys: its pair ``key_file`` (default ``<keys>/nodes/NAME.key_secret``) and the
    primary's ``<keys>/server.key``. None when no ``key_file`` is given and the key folder has no ``nodes/``
    folder (the node connects without CURVE); :class:`ZmqKeyError` (one line, saying how to make the key)
    when a file is missing or bad."""
    paths = KeyPaths(Path(keys_dir))
    if key_file is None:
        if not paths.nodes_dir.is_dir():
            return None
        key_file = paths.node_secret(name)
        if not Path(key_file).is_file():
            raise ZmqKeyError(
                f"node {name!r} has no key: {key_file} is missing (this stage has node keys in "
                f"{paths.nodes_dir}); make it with `stagectl keys STAGE.yaml --node {name}` and copy it and "
                f"{paths.server_public.name} to this machine"
            )
    public, sec = load_key(Path(key_file), "node key", secret=True)
    server_public, _ = load_key(paths.server_public, "server public key", secret=False)
    assert sec is not None
    return ClientKeys(public, sec, server_public, name)
