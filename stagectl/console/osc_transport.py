"""The OSC console transport: operator commands as OSC messages (``docs/console-osc.md``).

:class:`OscConsole` listens on one UDP port (python-osc's :class:`BlockingOSCUDPServer` on its own thread) and
turns every message ``/stagectl/<group>/<verb>`` into the console command ``<group>.<verb>``
(``/stagectl/status``, ``/stagectl/state`` and ``/stagectl/help`` for the three read-only commands), submitted
to the :class:`~stagectl.console.hub.ControlHub`. It only translates: the hub validates and applies every
command.

* **Arguments.** Each command has a positional form for control surfaces (Bitfocus Companion, TouchOSC), e.g.
  ``/stagectl/card/move s:id f:u f:v``, ``/stagectl/color/set s:target s:key value ...``, read from each
  command's declaration (:attr:`stagectl.console.commands.CommandSpec.osc`); see :data:`USAGE` and
  ``docs/console-osc.md``. Every command also takes the *keyed* form: one string argument
  holding a JSON object of the command's arguments (``/stagectl/card/add '{"wall": "main", ...}'``). Where a
  bool is expected an int or float ``0``/``1`` (a button), ``T``/``F`` or the strings ``true``/``false``/
  ``on``/``off`` are accepted. A float32 argument (``f``, what most surfaces send) is read as the shortest
  decimal that is the same float32, so a fader's ``0.1`` arrives as ``0.1``, not ``0.10000000149011612``.
  Accepted argument types: ``i h f d s T F``; anything else (blobs, MIDI, arrays, nil) is malformed.
* **Who may do what.** Only datagrams whose source address matches an entry of the ``allow`` list are obeyed
  (an entry's ``address`` is an IP address or a network such as ``10.0.1.0/24``; the first entry that
  matches applies, as :meth:`stagectl.stage.model.OscConsoleSettings.write_groups` reads it). The entry's
  ``write`` lists the command groups (the first dotted part of a command name) that source may change; every
  other group is read-only for it; ``status``, ``state`` and ``help`` are always allowed.
  Datagrams from unlisted sources are dropped without an answer and counted (``refused_source``); a write to a
  read-only group is answered with an error ack and counted (``refused_readonly``). Each kind of refusal and
  malformed input is logged at most once per source per minute, never raised.
* **Replies.** Every command from an allowed source is answered, to the sender's address and port (or to the
  entry's ``reply_port``), from the console's port: ``/stagectl/ack s:command i:ok i:frame s:message``. On
  success ``ok = 1``, ``frame`` is the frame at which the change took effect (for read-only commands: the
  last frame the hub saw) and ``message`` is the command's result as compact JSON (``{"id": "card-1"}``
  after ``card.add``). On failure ``ok = 0``, ``frame = -1`` and ``message`` is the one-line error. A result
  too large for one datagram (over :data:`MAX_REPLY_CHARS` characters) is replaced by a short JSON note.
  Malformed messages (unknown address, wrong argument types or count, an address *pattern* such as
  ``/stagectl/card/*``, which OSC would fan out to many commands, a JSON argument nested deeper than
  :data:`stagectl.console.jsonbounds.MAX_DEPTH` levels) are answered with an error ack; a datagram
  that is not OSC at all is answered with ``/stagectl/ack s:"" i:0 i:-1 s:message``.
* **Threads.** The receive thread never waits for a frame: it parses, checks and queues. Commands run on a
  small pool of worker threads (``hub.submit`` blocks until the frame loop applied the change). All commands
  of one sender go to the same worker, so they are applied in the order they were sent. A newer ``set``-like
  command (``card.move``, ``card.resize``, ``card.set``, ``color.set``, ``camera.set``, ``chroma.set``) from
  the same sender for the same target and keys replaces one still waiting in the queue (a fader sending faster
  than the frame rate); only the newer one is acknowledged (counted as ``coalesced``). A full queue answers
  ``busy`` (counted as ``errors``).
* **Bundles** are unpacked in order and their messages run as separate commands; time tags are ignored (a
  command runs at the next frame boundary).

Counters (:meth:`OscConsole.stats`): ``received`` datagrams, ``applied`` commands acknowledged ok (read-only
ones included), ``refused_source``, ``refused_readonly``, ``malformed`` (datagrams or messages), ``errors``
(commands the hub refused or could not apply in time, a full queue, a reply that could not be sent) and
``coalesced``.

Time: ``time.monotonic_ns()`` (clock ``monotonic``) for the log throttling; nothing else here reads a clock.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import numpy as np
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import BuildError, OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.parsing import osc_types

from stagectl.console.commands import COMMANDS as SPECS
from stagectl.console.commands import ArgSpec, CommandSpec
from stagectl.console.jsonbounds import JsonTooDeep
from stagectl.console.jsonbounds import loads as bounded_loads
from stagectl.tracking.codecs.osc import packet_messages
from stagectl.tracking.errors import DecodeError
from stagectl.tracking.receiver import TransportError

__all__ = [
    "ACK_ADDRESS",
    "ADDRESS_PREFIX",
    "COMMANDS",
    "MAX_REPLY_CHARS",
    "READ_ONLY",
    "STAT_KEYS",
    "USAGE",
    "OscArgError",
    "OscConsole",
    "address_of",
    "command_of",
    "parse_args",
]

log = logging.getLogger("stagectl.console.osc")

ADDRESS_PREFIX: Final = "/stagectl/"
ACK_ADDRESS: Final = "/stagectl/ack"
READ_ONLY: Final = frozenset(name for name, spec in SPECS.items() if spec.read_only)
"""Commands every listed source may send, whatever its ``write`` list (``status``, ``state``, ``help``)."""
MAX_REPLY_CHARS: Final = 16384
"""Longest ``message`` of an ack; a longer result is replaced by a note (ask the web or ZeroMQ console)."""
STAT_KEYS: Final = (
    "received", "applied", "refused_source", "refused_readonly", "malformed", "errors", "coalesced",
)

_LOG_INTERVAL_NS: Final = 60 * 1_000_000_000
_MAX_LOG_KEYS: Final = 1024
_ARG_TAGS: Final = frozenset("ifdhsTF")
_PATTERN_CHARS: Final = frozenset("*?[]{}!, #")
_WORKERS: Final = 4
_QUEUE_PER_WORKER: Final = 64
_POLL_INTERVAL_S: Final = 0.02
_CLOSE_BUDGET_S: Final = 0.2
_INT32: Final = (-(1 << 31), (1 << 31) - 1)
_BOOL_WORDS: Final = {"true": True, "on": True, "yes": True, "1": True,
                      "false": False, "off": False, "no": False, "0": False}
# Commands a newer one may replace in the queue, and the argument naming their target.
_COALESCE: Final = {"card.move": "id", "card.resize": "id", "card.set": "id", "color.set": "target",
                    "camera.set": "camera", "chroma.set": None}


def address_of(command: str) -> str:
    """The OSC address of a command name: ``card.add`` -> ``/stagectl/card/add``."""
    return ADDRESS_PREFIX + command.replace(".", "/")


def command_of(address: str) -> str:
    """The command name an address under ``/stagectl/`` spells (``/stagectl/card/add`` -> ``card.add``);
    the address itself when it is not under ``/stagectl/``. The name need not be a known command."""
    if address.startswith(ADDRESS_PREFIX):
        return address[len(ADDRESS_PREFIX):].strip("/").replace("/", ".")
    return address


class OscArgError(ValueError):
    """Arguments that do not fit a command's OSC form; the message is one line for the operator."""


# ------------------------------------------------------------------------------------------------------------
# Argument translation (pure)
# ------------------------------------------------------------------------------------------------------------


def _f32(value: float) -> float:
    """A float that is exactly a float32 -> the shortest decimal with the same float32 value (else as is)."""
    if not math.isfinite(value):
        return value
    f = np.float32(value)
    if float(f) != value:
        return value
    return float(str(f))


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(type(v), type(v).__name__)


def _as_bool(v: Any, what: str) -> bool:
    if isinstance(v, bool):
        return v
    if _is_num(v) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[v.strip().lower()]
    raise OscArgError(f"{what}: expected 0/1, T/F or true/false, got {v!r}")


def _loads(text: str) -> Any:
    """``text`` as JSON when it is a JSON value, else ``text`` itself (``"off"`` stays ``"off"``); JSON nested
    deeper than :data:`~stagectl.console.jsonbounds.MAX_DEPTH` levels is an :class:`OscArgError`."""
    try:
        return bounded_loads(text)
    except JsonTooDeep as exc:
        raise OscArgError(str(exc)) from None
    except ValueError:
        return text


class _Args:
    """A cursor over one message's arguments, for the positional forms."""

    def __init__(self, command: str, values: Sequence[Any]) -> None:
        self.command = command
        self.values = list(values)
        self.i = 0

    def more(self) -> bool:
        return self.i < len(self.values)

    def peek(self) -> Any:
        return self.values[self.i] if self.more() else None

    def _missing(self, what: str) -> OscArgError:
        return OscArgError(f"missing argument {self.i + 1} ({what})")

    def string(self, what: str) -> str:
        if not self.more():
            raise self._missing(f"s:{what}")
        v = self.values[self.i]
        if not isinstance(v, str):
            raise OscArgError(f"argument {self.i + 1} ({what}): expected a string, got {_kind(v)} {v!r}")
        self.i += 1
        return v

    def number(self, what: str) -> float | int:
        if not self.more():
            raise self._missing(f"f:{what}")
        v = self.values[self.i]
        if not _is_num(v):
            raise OscArgError(f"argument {self.i + 1} ({what}): expected a number, got {_kind(v)} {v!r}")
        self.i += 1
        return v

    def numbers(self) -> list[float | int]:
        """Every number from here up to the next non-number."""
        out = []
        while self.more() and _is_num(self.values[self.i]):
            out.append(self.values[self.i])
            self.i += 1
        return out

    def boolean(self, what: str) -> bool:
        if not self.more():
            raise self._missing(f"i:{what}")
        v = self.values[self.i]
        self.i += 1
        return _as_bool(v, what)

    def pairs(self, keys: Mapping[str, str], out: dict[str, Any]) -> dict[str, Any]:
        """Read ``s:key value [value ...]`` pairs up to the end into ``out`` (the kinds: see ``_Form``)."""
        while self.more():
            at = self.i + 1
            key = self.values[self.i]
            if not isinstance(key, str) or key not in keys:
                raise OscArgError(f"argument {at}: expected a key ({', '.join(keys)}), got {_kind(key)} "
                                  f"{key!r}")
            if key in out:
                raise OscArgError(f"argument {at}: {key} given twice")
            self.i += 1
            if not self.more():
                raise OscArgError(f"{key}: missing value")
            kind = keys[key]
            v = self.values[self.i]
            if kind in ("str", "path"):
                text = self.string(key)
                out[key] = None if kind == "path" and text.strip().lower() in ("", "null", "none") else text
                continue
            if isinstance(v, str):  # a JSON value or a word ("off") in a string
                self.i += 1
                value: Any = _loads(v)
            elif isinstance(v, bool) or kind in ("num", "int", "bool"):
                self.i += 1
                value = v
            else:
                nums = self.numbers()
                value = nums[0] if len(nums) == 1 else nums
            if kind == "bool":
                value = _as_bool(value, key)
            elif kind == "smoothing" and _is_num(value):
                value = {"min_cutoff_hz": value}
            elif kind == "smoothing" and isinstance(value, list) and all(_is_num(x) for x in value):
                if len(value) not in (2, 3):
                    raise OscArgError("smoothing: expected \"off\" or f:min_cutoff_hz f:beta "
                                      f"[f:d_cutoff_hz], got {len(value)} numbers")
                value = dict(zip(("min_cutoff_hz", "beta", "d_cutoff_hz"), value))
            out[key] = value
        return out

    def end(self) -> None:
        if self.more():
            raise OscArgError(f"too many arguments: {len(self.values)} given, argument {self.i + 1} "
                              f"({self.values[self.i]!r}) is not expected")


# Per command: the positional form, read from the command's declaration (CommandSpec.osc): argument names in
# order, "[...]" optional, "a | b" alternatives, "name=value" a default, "name*" any of a word list, "..." the
# other arguments as "s:key value" pairs. The kinds of the values (CommandSpec.args[...].osc): "str" one string;
# "path" one string ("null" or "" for none); "num" / "int" one number; "bool" one 0/1/T/F/word; "vec" one or
# more numbers (a list when several); "words" strings from a list; "smoothing" "off" or two or three numbers
# (min_cutoff_hz, beta[, d_cutoff_hz]). A string given for a number is read as JSON, so "null", "[1, 2, 3]" or
# '{"min_cutoff_hz": 1, "beta": 0.1}' work too.


@dataclass(frozen=True)
class _Slot:
    """One argument at its position (``default``: its value when an optional group is left out)."""

    arg: ArgSpec
    default: str | None = None


@dataclass(frozen=True)
class _Opt:
    """An optional group: one of ``alts`` (sequences of nodes), or nothing."""

    alts: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class _Pairs:
    """``s:key value`` pairs of the arguments the form does not place."""


_NUMERIC: Final = ("num", "int", "vec")


def _parse_form(spec: CommandSpec) -> tuple[tuple[Any, ...], ...]:
    """The alternatives of ``spec.osc``, each a tuple of :class:`_Slot` / :class:`_Opt` / :class:`_Pairs`."""
    toks = re.findall(r"\[|\]|\||[^\s\[\]|]+", spec.osc)
    pos = 0

    def alts() -> tuple[tuple[Any, ...], ...]:
        nonlocal pos
        out: list[list[Any]] = [[]]
        while pos < len(toks) and toks[pos] != "]":
            t = toks[pos]
            pos += 1
            if t == "|":
                out.append([])
            elif t == "[":
                inner = alts()
                pos += 1  # the "]"
                out[-1].append(_Opt(inner))
            elif t == "...":
                out[-1].append(_Pairs())
            else:
                name, _, default = t.rstrip("*").partition("=")
                arg = spec.arg(name)
                if arg is None:  # pragma: no cover - a declaration error, caught at import
                    raise ValueError(f"{spec.name}: OSC form names no argument {name!r}")
                out[-1].append(_Slot(arg, default or None))
        return tuple(tuple(x) for x in out)

    return alts()


def _slot_usage(a: ArgSpec) -> str:
    if a.osc == "vec" and a.parts:
        return " ".join(f"f:{p}" for p in a.parts)
    if a.osc == "words":
        return " ".join(f"[s:{c}]" for c in a.choices)
    if a.osc == "smoothing":
        return 's:"off" | f:min_cutoff_hz f:beta [f:d_cutoff_hz]'
    tag = {"num": "f", "int": "i", "bool": "i", "vec": "f"}.get(a.osc, "s")
    return f"{tag}:{a.name}"


def _usage(seq: Sequence[Any], nested: bool = False) -> str:
    parts = []
    for n in seq:
        if isinstance(n, _Slot):
            parts.append(_slot_usage(n.arg))
        elif isinstance(n, _Opt):
            parts.append("[" + " | ".join(_usage(s, True) for s in n.alts) + "]")
        else:
            parts.append("s:key value ..." if nested else "s:key value [s:key value ...]")
    return " ".join(parts)


def _numeric(seq: Sequence[Any]) -> bool:
    return all((isinstance(n, _Slot) and n.arg.osc in _NUMERIC) or (isinstance(n, _Opt) and all(
        _numeric(s) for s in n.alts)) for n in seq)


def _shapes(seq: Sequence[Any]) -> list[list[ArgSpec]]:
    """Every way a numeric sequence can be given: the arguments it then holds, in order."""
    out: list[list[ArgSpec]] = [[]]
    for n in seq:
        if isinstance(n, _Slot):
            out = [s + [n.arg] for s in out]
        else:
            out = [s + t for s in out for t in [[]] + [x for alt in n.alts for x in _shapes(alt)]]
    return out


def _count(args: Sequence[ArgSpec]) -> int:
    return sum(len(a.parts) if a.osc == "vec" and a.parts else 1 for a in args)


def _fits(node: Any, v: Any) -> bool:
    """Whether value ``v`` can start ``node`` (an optional group is entered, an alternative chosen)."""
    if isinstance(node, _Pairs):
        return isinstance(v, str)
    if isinstance(node, _Opt):
        return any(s and _fits(s[0], v) for s in node.alts)
    a = node.arg
    if a.osc in _NUMERIC:
        return _is_num(v)
    if a.osc == "bool":
        return not isinstance(v, str)
    return isinstance(v, str) and (not a.choices or v in a.choices)


def _placed(seq: Sequence[Any]) -> set[str]:
    return {n.arg.name for n in seq if isinstance(n, _Slot)}


def _read(seq: Sequence[Any], a: _Args, out: dict[str, Any], keys: Mapping[str, str], nested: bool,
          prev: str) -> str:
    """Read the nodes of ``seq`` into ``out``; returns the name of the last argument read."""
    for n in seq:
        if isinstance(n, _Pairs):
            if not a.more():
                if not nested:
                    raise OscArgError(f"nothing to set: expected s:key value pairs ({', '.join(keys)})")
                continue
            a.pairs(keys, out)
        elif isinstance(n, _Opt):
            if _numeric(n.alts[0]) and all(_numeric(s) for s in n.alts):
                nums = a.numbers()
                if not nums:
                    continue
                shape = next((s for alt in n.alts for s in _shapes(alt) if _count(s) == len(nums)), None)
                if shape is None:
                    inner = " | ".join(_usage(s, True) for s in n.alts)
                    raise OscArgError(f"after the {prev}: expected {inner}, got {len(nums)} numbers")
                for arg in shape:
                    k = len(arg.parts) if arg.osc == "vec" and arg.parts else 1
                    out[arg.name] = nums[:k] if arg.osc == "vec" and arg.parts else nums[0]
                    nums = nums[k:]
                    prev = arg.name
            elif a.more() and _fits(n, a.peek()):
                alt = next(s for s in n.alts if s and _fits(s[0], a.peek()))
                prev = _read(alt, a, out, keys, True, prev)
            else:
                for s in n.alts:
                    for x in s:
                        if isinstance(x, _Slot) and x.default is not None:
                            out[x.arg.name] = x.default
        else:
            arg = n.arg
            if arg.osc == "words":
                words = []
                label = arg.label or arg.name
                while a.more():
                    w = a.string(label)
                    if w not in arg.choices:
                        raise OscArgError(f"{label}: expected {' or '.join(arg.choices)}, got {w!r}")
                    words.append(w)
                if words:
                    out[arg.name] = words
            elif arg.osc == "vec" and arg.parts:
                out[arg.name] = [a.number(p) for p in arg.parts]
            elif arg.osc in _NUMERIC:
                out[arg.name] = a.number(arg.name)
            elif arg.osc == "bool":
                out[arg.name] = a.boolean(arg.name)
            else:
                out[arg.name] = a.string(arg.name)
            prev = arg.name
    return prev


@dataclass(frozen=True)
class _Form:
    """One command's positional OSC form."""

    spec: CommandSpec
    alts: tuple[tuple[Any, ...], ...]

    @property
    def usage(self) -> str:
        return "  |  ".join(_usage(s) for s in self.alts)

    def keys(self, seq: Sequence[Any]) -> dict[str, str]:
        placed = _placed(seq)
        return {x.name: x.osc for x in self.spec.args if x.name not in placed}

    def read(self, a: _Args) -> dict[str, Any]:
        alt = self.alts[0]
        if len(self.alts) > 1:
            if not a.more():
                first = " or ".join(
                    f"s:key value pairs ({', '.join(self.keys(s))})" if isinstance(s[0], _Pairs) else _usage(s[:1])
                    for s in self.alts)
                raise OscArgError(f"nothing to set: expected {first}")
            alt = next((s for s in self.alts if s and _fits(s[0], a.peek())), self.alts[-1])
        out: dict[str, Any] = {}
        _read(alt, a, out, self.keys(alt), False, "")
        a.end()
        return out


_FORMS: Final = {name: _Form(spec, _parse_form(spec)) for name, spec in SPECS.items()}
#: Per command: the positional form (after the address) as operators read it in docs and error messages.
USAGE: Final = {name: form.usage for name, form in _FORMS.items()}
COMMANDS: Final = tuple(USAGE)
"""Every command name the OSC address space carries, in documentation order."""
# Arguments that are bools, for the keyed (JSON) form's button-friendly 0/1.
_BOOL_ARGS: Final = {name: tuple(a.name for a in spec.args if a.osc == "bool") for name, spec in SPECS.items()}


def parse_args(command: str, values: Sequence[Any]) -> dict[str, Any]:
    """The argument dict of ``command`` from one message's OSC argument values (Python values as python-osc
    parses them: int, float, str, bool). Raises :class:`OscArgError` with a one-line message.

    The keyed form (exactly one string argument holding a JSON object) is taken as the arguments as they
    are (bool arguments accept 0/1); otherwise the command's positional form applies (:data:`USAGE`).
    """
    if command not in USAGE:
        raise OscArgError(f"unknown command {command!r}")
    vals = [_f32(v) if isinstance(v, float) else v for v in values]
    if len(vals) == 1 and isinstance(vals[0], str) and vals[0].lstrip().startswith("{"):
        try:
            args = bounded_loads(vals[0])
        except JsonTooDeep as exc:
            raise OscArgError(f"keyed form: {exc}") from None
        except ValueError as exc:
            raise OscArgError(f"keyed form: the string is not valid JSON ({exc})") from None
        if not isinstance(args, dict):
            raise OscArgError("keyed form: expected a JSON object")
        for key in _BOOL_ARGS.get(command, ()):
            if key in args:
                args[key] = _as_bool(args[key], key)
        return args
    args = _FORMS[command].read(_Args(command, vals))
    if command == "help" and str(args.get("command", "")).startswith(ADDRESS_PREFIX):
        args["command"] = command_of(args["command"])  # "/stagectl/card/add" names card.add
    return args


# ------------------------------------------------------------------------------------------------------------
# OSC packet reading (python-osc's readers, every failure caught)
# ------------------------------------------------------------------------------------------------------------


class _Malformed(Exception):
    """A datagram or message that is not OSC this console can read."""


def _messages(data: bytes) -> list[bytes]:
    """The message datagrams of an OSC packet (bundles unpacked in order, time tags ignored)."""
    try:
        return [m for m, _ in packet_messages(data)]
    except DecodeError as exc:
        raise _Malformed(str(exc)) from None


def _read_message(dgram: bytes) -> OscMessage:
    """Check one message's address, type tags and length, then let python-osc parse it."""
    try:
        address, index = osc_types.get_string(dgram, 0)
        tags = ""
        if index < len(dgram):
            tags, index = osc_types.get_string(dgram, index)
            if not tags.startswith(","):
                raise _Malformed(f"{address}: type tags must start with ',', got {tags!r}")
            tags = tags[1:]
        bad = sorted(set(tags) - _ARG_TAGS)
        if bad:
            raise _Malformed(f"{address}: unsupported argument type tags {''.join(bad)!r} "
                             "(use i, h, f, d, s, T, F)")
        for t in tags:  # walk the arguments so that a message cut short (or padded) is refused
            if t in "if":
                index += 4
            elif t in "dh":
                index += 8
            elif t == "s":
                _, index = osc_types.get_string(dgram, index)
        if index != len(dgram):
            raise _Malformed(f"{address}: arguments {tags!r} need {index} bytes, the message has "
                             f"{len(dgram)}")
        return OscMessage(dgram)
    except _Malformed:
        raise
    except Exception as exc:  # python-osc ParseErrors, UnicodeDecodeError, struct.error, ...
        raise _Malformed(f"unreadable OSC message: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------------------------
# The transport
# ------------------------------------------------------------------------------------------------------------


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]`` (settings may be a dataclass or a plain mapping)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass(frozen=True)
class _Allow:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    write: frozenset[str]
    reply_port: int | None


def _allow_list(entries: Any) -> tuple[_Allow, ...]:
    out = []
    for i, e in enumerate(entries or ()):
        address = _field(e, "address")
        try:
            network = ipaddress.ip_network(str(address), strict=False)
        except ValueError:
            raise TransportError(f"console osc: allow[{i}].address: expected an IP address or network, got "
                                 f"{address!r}") from None
        write = _field(e, "write", ()) or ()
        write = (write,) if isinstance(write, str) else write
        reply_port = _field(e, "reply_port")
        out.append(_Allow(network, frozenset(str(g) for g in write),
                          None if reply_port in (None, 0) else int(reply_port)))
    return tuple(out)  # in the stage file's order: the first entry that matches a source applies


@dataclass
class _Job:
    command: str
    args: dict[str, Any]
    who: str
    reply_to: tuple[str, int]
    coalesce_key: tuple | None


class _Lane:
    """One worker thread and its queue of jobs (every job of one sender lands in the same lane)."""

    def __init__(self, console: OscConsole, index: int) -> None:
        self.console = console
        self.jobs: collections.deque[_Job] = collections.deque()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"stagectl-osc-worker-{index}", daemon=True)

    def put(self, job: _Job) -> str:
        """Queue ``job``: ``"queued"``, ``"coalesced"`` (it replaced an equal-keyed waiting job) or
        ``"busy"``."""
        with self.cond:
            if job.coalesce_key is not None:
                for i in range(len(self.jobs) - 1, -1, -1):
                    if self.jobs[i].coalesce_key == job.coalesce_key:
                        if i == len(self.jobs) - 1:  # only the newest waiting job: order is kept
                            self.jobs[i] = job
                            return "coalesced"
                        break
            if len(self.jobs) >= _QUEUE_PER_WORKER:
                return "busy"
            self.jobs.append(job)
            self.cond.notify()
            return "queued"

    def stop(self) -> None:
        with self.cond:
            self.jobs.clear()
            self.cond.notify_all()

    def _run(self) -> None:
        console = self.console
        while True:
            with self.cond:
                while not self.jobs and not console._stopping:
                    self.cond.wait()
                if console._stopping:
                    return
                job = self.jobs.popleft()
            console._execute(job)


class _Server(BlockingOSCUDPServer):
    """python-osc's blocking UDP server, handing every datagram (OSC or not) to the console."""

    max_packet_size = 65535  # socketserver's default (8192) would cut a long keyed-form message short

    def __init__(self, address: tuple[str, int], dispatcher: Dispatcher, console: OscConsole) -> None:
        self.console = console
        super().__init__(address, dispatcher)

    def verify_request(self, request: Any, client_address: Any) -> bool:  # noqa: ARG002
        return True  # the console counts what is not OSC instead of dropping it silently

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.console._on_datagram(request[0], client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:  # never print tracebacks to stderr
        self.console._count("errors")
        self.console._log_once("internal", client_address[0], logging.ERROR,
                               "OSC console: internal error handling a datagram", exc_info=True)


class OscConsole:
    """The OSC transport of the stage console (see the module docstring).

    :param hub: the :class:`~stagectl.console.hub.ControlHub` (only ``submit`` is used).
    :param settings: the ``console.osc`` settings (:class:`~stagectl.stage.model.OscConsoleSettings`, or a
        mapping with the same keys): ``bind`` (address), ``port`` (0: any free port, see :attr:`address`),
        ``allow`` (entries with ``address``, ``write`` groups and an optional ``reply_port``).
    :param workers: worker threads running ``hub.submit``.
    :param submit_timeout_s: how long a command may wait for a frame before it is withdrawn.
    """

    def __init__(self, hub: Any, settings: Any, *, workers: int = _WORKERS,
                 submit_timeout_s: float = 2.0) -> None:
        self.hub = hub
        self.bind = str(_field(settings, "bind", "127.0.0.1"))
        self.port = int(_field(settings, "port", 41330))
        self.allow = _allow_list(_field(settings, "allow", ()))
        self.submit_timeout_s = float(submit_timeout_s)
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._lock = threading.Lock()
        self._logged: dict[tuple[str, str], tuple[int, int]] = {}
        self._lanes = [_Lane(self, i) for i in range(max(1, int(workers)))]
        self._stopping = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self.dispatcher = Dispatcher(strict_timing=False)
        for name in COMMANDS:
            self.dispatcher.map(address_of(name), self._on_message, name, needs_reply_address=True)
        self.dispatcher.set_default_handler(self._on_unknown, needs_reply_address=True)

    # ---- life cycle
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the console listens on (after :meth:`start`)."""
        if self._address is None:
            raise RuntimeError("OSC console: not started")
        return self._address

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Bind the port and start the receive and worker threads; returns ``self``.

        Raises :class:`~stagectl.tracking.receiver.TransportError` when the port cannot be bound.
        """
        if self._stopping:
            raise RuntimeError("OSC console: a closed console cannot be restarted; create a new one")
        if self._server is not None:
            return self
        try:
            server = _Server((self.bind, self.port), self.dispatcher, self)
        except OSError as exc:
            raise TransportError(f"console osc: cannot listen on {self.bind}:{self.port}: "
                                 f"{exc.strerror or exc}") from None
        self._server = server
        self._address = tuple(server.server_address[:2])  # type: ignore[assignment]
        for lane in self._lanes:
            lane.thread.start()
        self._thread = threading.Thread(target=server.serve_forever, args=(_POLL_INTERVAL_S,),
                                        name="stagectl-osc-console", daemon=True)
        self._thread.start()
        groups = "; ".join(f"{a.network} writes {', '.join(sorted(a.write)) or 'nothing'}"
                           for a in self.allow)
        log.info("OSC console on %s:%d (%s)", self._address[0], self._address[1], groups or "nobody allowed")
        return self

    def close(self) -> None:
        """Stop receiving and drop queued commands; returns within 200 ms. Safe to call twice.

        A command already inside ``hub.submit`` finishes on its (daemon) worker thread; its ack is not sent.
        """
        if self._stopping:
            return
        self._stopping = True
        for lane in self._lanes:
            lane.stop()
        server = self._server
        if server is not None:
            if self._thread is not None and self._thread.is_alive():
                server.shutdown()  # returns after the serve loop's next poll (20 ms)
            server.server_close()
        deadline = time.monotonic() + _CLOSE_BUDGET_S / 4  # idle workers exit at once; busy ones are daemons
        for lane in self._lanes:
            if lane.thread.is_alive():
                lane.thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- counters and logging
    def stats(self) -> dict[str, int]:
        """A copy of the counters (:data:`STAT_KEYS`, see the module docstring)."""
        with self._lock:
            return dict(self._stats)

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _log_once(self, kind: str, source: str, level: int, message: str, *, exc_info: bool = False) -> None:
        """Log ``message`` at most once per ``kind`` and source address per minute."""
        now = time.monotonic_ns()
        key = (kind, source)
        with self._lock:
            last, suppressed = self._logged.get(key, (None, 0))
            if last is not None and now - last < _LOG_INTERVAL_NS:
                self._logged[key] = (last, suppressed + 1)
                return
            if len(self._logged) >= _MAX_LOG_KEYS and key not in self._logged:
                self._logged.clear()  # a flood of spoofed sources must not grow this without bound
            self._logged[key] = (now, 0)
        extra = f" ({suppressed} more in the last minute)" if suppressed else ""
        log.log(level, "%s%s", message, extra, exc_info=exc_info)

    # ---- receive thread
    def _allow_entry(self, host: str) -> _Allow | None:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        for entry in self.allow:
            if ip.version == entry.network.version and ip in entry.network:
                return entry
        return None

    def _reply_to(self, client: tuple[str, int], entry: _Allow) -> tuple[str, int]:
        return (client[0], entry.reply_port if entry.reply_port is not None else client[1])

    def _on_datagram(self, data: bytes, client: tuple[str, int]) -> None:
        self._count("received")
        host = client[0]
        entry = self._allow_entry(host)
        if entry is None:
            self._count("refused_source")
            self._log_once("source", host, logging.WARNING,
                           f"OSC console: ignoring datagrams from {host}:{client[1]} "
                           "(not in console.osc.allow)")
            return
        try:
            dgrams = _messages(data)
        except _Malformed as exc:
            self._malformed(client, entry, "", str(exc))
            return
        for dgram in dgrams:
            try:
                message = _read_message(dgram)
            except _Malformed as exc:
                self._malformed(client, entry, "", str(exc))
                continue
            address = message.address
            if any(c in _PATTERN_CHARS for c in address):
                self._malformed(client, entry, command_of(address),
                                f"{address}: address patterns are not accepted; send one command's address")
                continue
            for handler in self.dispatcher.handlers_for_address(address):
                handler.invoke(client, message)

    def _malformed(self, client: tuple[str, int], entry: _Allow, command: str, message: str) -> None:
        self._count("malformed")
        self._log_once("malformed", client[0], logging.WARNING,
                       f"OSC console: malformed input from {client[0]}:{client[1]}: {message}")
        self._send_ack(self._reply_to(client, entry), command, False, -1, message)

    def _on_unknown(self, client: tuple[str, int], address: str, *values: Any) -> None:  # noqa: ARG002
        entry = self._allow_entry(client[0])
        if entry is None:  # pragma: no cover - _on_datagram checked the source
            return
        known = ", ".join(address_of(c) for c in COMMANDS)
        self._malformed(client, entry, command_of(address),
                        f"unknown address {address}; known: {known}")

    def _on_message(self, client: tuple[str, int], address: str, fixed: list[str], *values: Any) -> None:
        command = fixed[0]
        entry = self._allow_entry(client[0])
        if entry is None:  # pragma: no cover - _on_datagram checked the source
            return
        reply_to = self._reply_to(client, entry)
        group = command.split(".", 1)[0]
        if command not in READ_ONLY and group not in entry.write:
            self._count("refused_readonly")
            message = f"{command}: '{group}' is read-only for {client[0]} (console.osc.allow)"
            self._log_once("readonly", client[0], logging.WARNING, f"OSC console: refused {message}")
            self._send_ack(reply_to, command, False, -1, message)
            return
        try:
            args = parse_args(command, values)
        except OscArgError as exc:
            usage = USAGE[command]
            self._malformed(client, entry, command,
                            f"{address}: {exc}; usage: {address}{' ' + usage if usage else ''} "
                            "or one JSON-object string")
            return
        key = None
        if command in _COALESCE:
            target = _COALESCE[command]
            key = (client, command, args.get(target) if target else None, tuple(sorted(args)))
        job = _Job(command, args, f"osc:{client[0]}:{client[1]}", reply_to, key)
        lane = self._lanes[hash(client) % len(self._lanes)]
        outcome = lane.put(job)
        if outcome == "coalesced":
            self._count("coalesced")
        elif outcome == "busy":
            self._count("errors")
            self._log_once("busy", client[0], logging.WARNING,
                           f"OSC console: {client[0]}:{client[1]} sends faster than commands are applied")
            self._send_ack(reply_to, command, False, -1,
                           f"{command}: busy: {_QUEUE_PER_WORKER} commands are waiting; not queued")

    # ---- worker threads
    def _execute(self, job: _Job) -> None:
        try:
            ack = self.hub.submit(job.command, job.args, job.who, self.submit_timeout_s)
        except Exception as exc:  # the hub answers errors in its ack; anything raised is a bug, logged
            self._count("errors")
            self._log_once("internal", job.reply_to[0], logging.ERROR,
                           f"OSC console: {job.command} from {job.who} raised", exc_info=True)
            self._send_ack(job.reply_to, job.command, False, -1, f"{job.command}: internal error: {exc}")
            return
        if self._stopping:
            return
        ok = bool(ack.get("ok"))
        frame = -1
        if ok:
            self._count("applied")
            try:
                frame = int(ack.get("frame", -1))
            except (TypeError, ValueError):
                frame = -1
            result = ack.get("result")
            if ack.get("warning"):  # applied but not saved: the operator should know
                base = result if isinstance(result, dict) else {"result": result}
                result = {**base, "warning": ack["warning"]}
            message = self._result_text(result)
        else:
            self._count("errors")
            message = str(ack.get("error") or "failed")
            log.info("OSC console: %s from %s refused: %s", job.command, job.who, message)
        self._send_ack(job.reply_to, job.command, ok, frame, message)

    @staticmethod
    def _result_text(result: Any) -> str:
        try:
            text = json.dumps({} if result is None else result, separators=(",", ":"), sort_keys=True,
                              default=str)
        except (TypeError, ValueError) as exc:
            return json.dumps({"note": f"result not JSON-able: {exc}"})
        if len(text) > MAX_REPLY_CHARS:
            return json.dumps({"note": f"result of {len(text)} characters is too long for an OSC reply; ask "
                                       "the web or ZeroMQ console", "truncated": True})
        return text

    def _send_ack(self, to: tuple[str, int], command: str, ok: bool, frame: int, message: str) -> None:
        server = self._server
        if server is None or self._stopping:
            return
        builder = OscMessageBuilder(ACK_ADDRESS)
        builder.add_arg(command, OscMessageBuilder.ARG_TYPE_STRING)
        builder.add_arg(1 if ok else 0, OscMessageBuilder.ARG_TYPE_INT)
        builder.add_arg(min(max(int(frame), _INT32[0]), _INT32[1]), OscMessageBuilder.ARG_TYPE_INT)
        builder.add_arg(message, OscMessageBuilder.ARG_TYPE_STRING)
        try:
            server.socket.sendto(builder.build().dgram, to)
        except (OSError, BuildError) as exc:
            self._count("errors")
            self._log_once("reply", to[0], logging.WARNING,
                           f"OSC console: cannot send the ack of {command or 'a datagram'} to "
                           f"{to[0]}:{to[1]}: {exc}")

