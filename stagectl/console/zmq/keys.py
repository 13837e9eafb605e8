"""The ZeroMQ console's CURVE keys: a stage's settings (``console.zmq``, whose ``keys`` names the key folder)
and the server pair the console listens with, admitting the client keys in ``<keys>/clients``.

The key files, their checking and the ZAP handler are shared with the cluster
(:mod:`stagectl.sync.zmq_security`, whose key names :mod:`stagectl.console.zmq` exports for the console's
callers); this module finds the console's and says, in one line, what to run when a stage has none.
"""

from __future__ import annotations

from typing import Any

from stagectl.console.zmq.protocol import ZmqConsoleError
from stagectl.sync.zmq_security import KeyPaths, ServerKeys, load_key

__all__ = ["console_server_keys", "zmq_settings"]


def zmq_settings(stage: Any) -> Any:
    """The ``console.zmq`` settings of a loaded stage (``bind``, ``port``, ``state_port``, ``keys``)."""
    return stage.console.zmq


def console_server_keys(keys: KeyPaths) -> ServerKeys:
    """The console's server pair (``<keys>/server.key_secret``), admitting the client keys in
    ``<keys>/clients``; :class:`ZmqConsoleError` (one line, saying how to make them) when the folder, the
    pair or the clients' folder is missing, :class:`ZmqKeyError` when the pair is bad."""
    if not keys.keys_dir.is_dir() or not keys.server_secret.is_file() or not keys.clients_dir.is_dir():
        missing = (
            keys.keys_dir
            if not keys.keys_dir.is_dir()
            else (keys.server_secret if not keys.server_secret.is_file() else keys.clients_dir)
        )
        raise ZmqConsoleError(
            f"ZeroMQ console: no keys ({missing} is missing); run `stagectl keys STAGE.yaml` to make the "
            "server key and a client key"
        )
    public, secret = load_key(keys.server_secret, "server key", secret=True)
    assert secret is not None
    return ServerKeys(public, secret, keys.clients_dir)
