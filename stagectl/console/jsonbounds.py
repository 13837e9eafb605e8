"""JSON from the network with its nesting bounded: what every console listener (web, OSC, ZeroMQ) parses.

Python's ``json.loads`` recurses once per nesting level: ``[[[[...]]]]`` a few thousand deep raises
``RecursionError`` (which is not a ``ValueError``, so a listener that catches only malformed JSON lets it end a
connection or a thread), and a few hundred deep is accepted and handed on to code that recurses again. No
console command needs more than a few levels, so :func:`loads` refuses anything nested deeper than
:data:`MAX_DEPTH` before parsing it, with :class:`JsonTooDeep` (a ``ValueError``: callers that already answer
malformed JSON with an error answer this one too).

The depth is measured on the raw text without building anything: string literals are removed (so brackets in
text do not count), then the running count of ``[``/``{`` minus ``]``/``}`` is taken with numpy. A text with no
more opening brackets than the limit is not scanned at all (every command a console sends).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import numpy as np

__all__ = ["MAX_DEPTH", "JsonTooDeep", "depth", "loads"]

#: Deepest nesting of arrays and objects accepted (a console command's arguments need 3 or 4).
MAX_DEPTH: Final = 32

_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STEP: Final = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


class JsonTooDeep(ValueError):
    """JSON nested deeper than the limit (the message says the limit)."""


def _bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)


def depth(data: str | bytes | bytearray | memoryview) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text ``data``, brackets inside string literals not counted
    (for malformed text: an upper bound of what a parser would meet before it fails)."""
    raw = _STRING.sub(b"", _bytes(data))
    if not raw:
        return 0
    running = np.cumsum(_STEP[np.frombuffer(raw, dtype=np.uint8)], dtype=np.int32)
    return max(0, int(running.max()))


def loads(data: str | bytes | bytearray | memoryview, max_depth: int = MAX_DEPTH, **kw: Any) -> Any:
    """``json.loads(data, **kw)``, refusing text nested deeper than ``max_depth`` with :class:`JsonTooDeep`
    before it is parsed. Malformed JSON raises ``json.JSONDecodeError`` (or ``UnicodeDecodeError``) as usual;
    both are ``ValueError``."""
    raw = _bytes(data)
    if raw.count(b"[") + raw.count(b"{") > max_depth and depth(raw) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(data if isinstance(data, (str, bytes, bytearray)) else raw, **kw)
    except RecursionError:  # not reached within max_depth; a guard should a caller pass a large limit
        raise JsonTooDeep(f"JSON nested deeper than this process can parse (limit {max_depth})") from None
