"""What the ZeroMQ console and its clients say to each other: the default ports, the size bounds of a request,
the JSON request and ack frames, the ``state`` snapshot, and the console's errors (see
:mod:`stagectl.console.zmq` for the topology). Pure: no sockets."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from stagectl.console.jsonbounds import MAX_DEPTH as MAX_JSON_DEPTH
from stagectl.console.jsonbounds import JsonTooDeep
from stagectl.console.jsonbounds import loads as bounded_loads
from stagectl.sync.zmq_security import ZmqKeyError

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_STATE_PORT",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_FRAMES",
    "BadRequest",
    "BadSnapshot",
    "ConsoleUnreachable",
    "ZmqConsoleError",
    "dumps",
    "error_ack",
    "parse_request",
    "snapshot_of",
]

#: Default ports: commands (ROUTER) and the state stream (PUB).
DEFAULT_PORT = 41320
DEFAULT_STATE_PORT = 41321
#: Largest request a client may send (bytes); a bigger one drops that client's connection.
MAX_REQUEST_BYTES = 1 << 20
#: Most frames one request may have (identity, a DEALER's tags, the empty delimiter, the JSON frame); a request
#: with more is counted and answered with an error (when its envelope ends within this many frames) or dropped.
MAX_REQUEST_FRAMES = 16


class ZmqConsoleError(ZmqKeyError):
    """A ZeroMQ console problem a user can fix: missing or bad keys, a port that cannot be bound. (Key files
    that are missing, bad or cannot be written raise its base :class:`~stagectl.sync.zmq_security.ZmqKeyError`,
    from the code the cluster shares.)"""

    exit_code = 2


class ConsoleUnreachable(ZmqConsoleError):
    """No reply from the stage's console within the caller's timeout (not running, or the key is refused)."""


class BadRequest(Exception):
    """A request frame that is not ``{"command": name, "args": {...}}`` (the message: a one-line reason)."""


class BadSnapshot(Exception):
    """A ``state`` ack without ``result.seq`` and ``result.state``."""


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(obj: Any) -> bytes:
    """Compact strict JSON (non-finite floats become null; unknown types their ``str``)."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode("utf-8")


def error_ack(command: Any, error: str) -> dict[str, Any]:
    """The ack of a request that never reached the hub: ``{"ok": false, "command": ..., "error": ...}``."""
    return {"ok": False, "command": command if isinstance(command, str) else None, "error": error}


def parse_request(payload: bytes) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` of one request frame; :class:`BadRequest` with a one-line reason if it is not (JSON
    nested deeper than :data:`~stagectl.console.jsonbounds.MAX_DEPTH` levels is refused before parsing)."""
    try:
        req = bounded_loads(payload)
    except JsonTooDeep:
        raise BadRequest(f'request nested deeper than {MAX_JSON_DEPTH} levels: expected {{"command": name, '
                         '"args": {...}}') from None
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise BadRequest('request is not JSON: expected {"command": name, "args": {...}}') from None
    if not isinstance(req, dict):
        raise BadRequest(
            f'request is a JSON {type(req).__name__}: expected {{"command": name, "args": {{...}}}}'
        )
    name = req.get("command")
    if not isinstance(name, str) or not name:
        raise BadRequest('request has no "command" string')
    args = req.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadRequest(f'{name}: "args" must be a JSON object, got {type(args).__name__}')
    extra = sorted(set(req) - {"command", "args"})
    if extra:
        raise BadRequest(f"{name}: unknown request keys {', '.join(extra)} (expected command, args)")
    return name, args


def snapshot_of(ack: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(seq, state)`` from the ack of the ``state`` command; :class:`BadSnapshot` when it has neither."""
    result = ack.get("result")
    if not isinstance(result, Mapping):
        raise BadSnapshot("the state command's ack has no result object")
    seq = result.get("seq", ack.get("seq"))
    state = result.get("state")
    if not isinstance(seq, int) or not isinstance(state, Mapping):
        raise BadSnapshot("the state command's result lacks seq or state")
    return seq, dict(state)
