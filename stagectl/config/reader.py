"""Read a YAML document strictly, with every error located as ``file:line: key: what was expected``.

PyYAML's composed node tree keeps the start mark of every key and value; the readers here walk that tree
directly, so a value is converted and checked where its line is known. Errors are collected (not raised one by
one) so a user sees every problem of a file in one run; :meth:`Context.raise_if_errors` ends a phase.

Hostile or broken files are refused before anything walks them, each with one ``file[:line]: ...`` error: a
file larger than :data:`MAX_FILE_BYTES`, values nested deeper than :data:`MAX_DEPTH` levels, aliases that would
expand the document by more than :data:`MAX_ALIAS_VALUES` values (a "billion laughs" alias bomb), an alias
inside the value its anchor names (a recursive document), and paths that cannot be read (symlink loops, folders,
permissions). Anchors and aliases within those bounds work as YAML defines them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from stagectl.core.errors import ConfigError, ConfigErrors

__all__ = [
    "INVALID",
    "Invalid",
    "Context",
    "MapReader",
    "load_document",
    "describe",
    "display_path",
    "string",
    "existing_file",
    "boolean",
    "integer",
    "number",
    "one_of",
    "vector",
    "size2",
    "MAX_FILE_BYTES",
    "MAX_DEPTH",
    "MAX_ALIAS_VALUES",
]

T = TypeVar("T")

#: Largest stage or lens file read (bytes). Real ones are a few kilobytes; PyYAML's pure-Python composer
#: (the one that keeps line numbers) reads roughly 0.2-1 MB/s, so this also bounds the time a file can take.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Deepest nesting of lists and mappings (a stage file needs about 6; PyYAML recurses per level).
MAX_DEPTH = 64
#: Most values that aliases may add to a document when expanded (each ``*name`` adds the size of the value
#: its anchor names). Re-using a cabinet layout or an output list a few hundred times stays far below this; a
#: 1 KB alias bomb would otherwise expand to hundreds of millions of values.
MAX_ALIAS_VALUES = 10_000
#: Longest text of a value quoted in an error message (characters; longer ones are cut with "...").
_DESCRIBE_CHARS = 60


class _InvalidType:
    """Placeholder for a value that failed validation (its error is already recorded)."""

    _instance: _InvalidType | None = None

    def __new__(cls) -> _InvalidType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False


INVALID: Any = _InvalidType()


class Invalid(Exception):
    """Raised by a converter: the message says what was expected and what was found."""


Converter = Callable[["Context", Node, str], Any]

_constructor = yaml.constructor.SafeConstructor()


def _scalar(node: Node) -> Any:
    return _constructor.construct_object(node, deep=True)


def _clip(text: str) -> str:
    return text if len(text) <= _DESCRIBE_CHARS else text[: _DESCRIBE_CHARS - 3] + "..."


def describe(node: Node, _depth: int = 0) -> str:
    """How a value looks to the user, for 'got ...' in messages (short: long texts are cut, lists are shown
    two levels deep with at most six entries each)."""
    if isinstance(node, ScalarNode):
        try:
            value = _scalar(node)
        except (yaml.YAMLError, ValueError):  # ValueError: an integer beyond Python's 4300-digit limit
            return _clip(json.dumps(node.value))
        if value is None:
            return "nothing (null)"
        if isinstance(value, str):
            return _clip(json.dumps(value))
        if isinstance(value, bool):
            return "true" if value else "false"
        return _clip(str(value))
    if isinstance(node, SequenceNode):
        if _depth >= 2:
            return "[...]" if node.value else "[]"
        inner = ", ".join(describe(n, _depth + 1) for n in node.value[:6])
        more = ", ..." if len(node.value) > 6 else ""
        return f"[{inner}{more}]"
    if isinstance(node, MappingNode):
        return "a mapping"
    return "an unreadable value"


def _resolve(p: str | Path) -> Path:
    """``Path(p).resolve()``, or the absolute path as written when it cannot be resolved (a symlink loop raises
    RuntimeError on Python < 3.13, OSError after; a vanished working directory raises OSError)."""
    try:
        return Path(p).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(p))


def display_path(p: str | Path) -> str:
    """A path as a user would type it here: relative to the working directory when below it."""
    try:
        return str(_resolve(p).relative_to(_resolve(Path.cwd())))
    except (ValueError, OSError):
        return str(p)


def line_of(node: Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


class Context:
    """One file being read: its display name, its folder, and the errors found so far."""

    def __init__(self, file: str, base_dir: Path | None = None) -> None:
        self.file = file
        self.base_dir = base_dir if base_dir is not None else _resolve(file).parent
        self.errors: list[ConfigError] = []

    def error(self, where: Node | int | None, key: str, message: str) -> None:
        line = where if isinstance(where, int) or where is None else line_of(where)
        self.errors.append(ConfigError(self.file, line, key, message))

    def convert(self, node: Node, path: str, conv: Converter) -> Any:
        try:
            return conv(self, node, path)
        except Invalid as exc:
            self.error(node, path, str(exc))
            return INVALID

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigErrors(list(self.errors))


class _Refused(ComposerError):
    """A document the bounded loader will not compose (too deep, alias bomb, recursive alias); the message is
    complete without the "YAML syntax" prefix."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the document bounded while it is composed, before anything walks it: nesting
    at most :data:`MAX_DEPTH` levels, aliases adding at most :data:`MAX_ALIAS_VALUES` values when expanded, no
    alias inside the value its own anchor names (that makes a cyclic node graph)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors whose value is being composed
        self._sizes: dict[int, int] = {}  # id(anchored node) -> values it expands to (itself included)
        self._counts: list[int] = [0]  # values composed so far inside each open collection
        self._alias_values = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:
                raise _Refused(None, None, f"alias *{event.anchor} is inside the value its anchor &{event.anchor} "
                               "names (a recursive document); write the value out", event.start_mark)
            node = super().compose_node(parent, index)  # refuses undefined aliases
            size = self._sizes.get(id(node), 1)
            self._alias_values += size
            if self._alias_values > MAX_ALIAS_VALUES:
                raise _Refused(None, None, f"aliases expand to more than {MAX_ALIAS_VALUES} values (an alias "
                               "bomb?); write the values out or use fewer aliases", event.start_mark)
            self._counts[-1] += size
            return node
        event = self.peek_event()
        if self._depth >= MAX_DEPTH and not self.check_event(ScalarEvent):
            raise _Refused(None, None, f"values nested deeper than {MAX_DEPTH} levels", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        self._depth += 1
        self._counts.append(0)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            inner = self._counts.pop()
            if anchor is not None:
                self._open.discard(anchor)
        if anchor is not None:
            self._sizes[id(node)] = 1 + inner
        self._counts[-1] += 1 + inner
        return node


def _read_bounded(p: Path, name: str) -> str:
    def refuse(message: str) -> ConfigErrors:
        return ConfigErrors([ConfigError(name, None, "", message)])

    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise refuse("file not found") from None
    except IsADirectoryError:
        raise refuse("cannot read: it is a folder, not a file") from None
    except OSError as exc:  # symlink loops (ELOOP), permissions, devices
        raise refuse(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise refuse(f"cannot read: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB "
                     "(stage and lens files are a few kilobytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"cannot read: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})") from None


def load_document(path: str | Path, display: str | None = None) -> tuple[Context, Node]:
    """Compose a YAML file into a node tree; syntax errors become located :class:`ConfigError`, and so do the
    bounds of the module docstring (size, nesting, alias expansion, recursive aliases, unreadable paths)."""
    p = Path(path)
    name = display if display is not None else str(path)
    ctx = Context(name, _resolve(p).parent)
    text = _read_bounded(p, name)
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        mark = exc.problem_mark
        raise ConfigErrors([ConfigError(name, mark.line + 1 if mark is not None else None, "",
                                        exc.problem or "refused")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "invalid YAML"
        raise ConfigErrors([ConfigError(name, line, "", f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigError(name, None, "", f"YAML syntax: {exc}")]) from None
    except RecursionError:  # not reached within MAX_DEPTH; a last guard so that no traceback escapes
        raise ConfigErrors([ConfigError(name, None, "", f"values nested deeper than {MAX_DEPTH} levels")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise ConfigErrors([ConfigError(name, 1, "", "the file is empty; expected a mapping")])
    return ctx, root


class MapReader:
    """Strict access to one YAML mapping: required/optional keys, converters, and no unknown keys."""

    def __init__(self, ctx: Context, node: Node, path: str) -> None:
        self.ctx = ctx
        self.node = node
        self.path = path
        self.ok = isinstance(node, MappingNode)
        self.entries: dict[str, tuple[Node, Node]] = {}
        self.used: set[str] = set()
        if not self.ok:
            ctx.error(node, path or "(top level)", f"expected a mapping of keys, got {describe(node)}")
            return
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, ScalarNode) else None
            if not isinstance(key, str):
                ctx.error(knode, path or "(top level)", "keys must be plain names")
                continue
            if key in self.entries:
                ctx.error(knode, self.key_path(key), f"duplicate key (first at line {line_of(self.entries[key][0])})")
                continue
            self.entries[key] = (knode, vnode)

    @property
    def line(self) -> int | None:
        return line_of(self.node)

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.entries

    def node_of(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return entry[1] if entry else None

    def req(self, key: str, conv: Converter) -> Any:
        self.used.add(key)
        if not self.ok:
            return INVALID
        if key not in self.entries:
            self.ctx.error(self.node, self.key_path(key), "required key is missing")
            return INVALID
        return self.ctx.convert(self.entries[key][1], self.key_path(key), conv)

    def opt(self, key: str, conv: Converter, default: Any = None) -> Any:
        self.used.add(key)
        if not self.ok or key not in self.entries:
            return default if self.ok else INVALID
        vnode = self.entries[key][1]
        if isinstance(vnode, ScalarNode) and vnode.tag == "tag:yaml.org,2002:null":
            return default
        return self.ctx.convert(vnode, self.key_path(key), conv)

    def sub(self, key: str, required: bool = True) -> MapReader | None:
        """A nested mapping; None when optional and absent."""
        self.used.add(key)
        if not self.ok:
            return None
        if key not in self.entries:
            if required:
                self.ctx.error(self.node, self.key_path(key), "required section is missing")
            return None
        return MapReader(self.ctx, self.entries[key][1], self.key_path(key))

    def items(self, key: str, required: bool = True, min_len: int = 0) -> Iterator[tuple[int, Node, str]]:
        """The elements of a list value: (index, node, path)."""
        self.used.add(key)
        if not self.ok:
            return
        if key not in self.entries:
            if required:
                self.ctx.error(self.node, self.key_path(key), "required list is missing")
            return
        vnode = self.entries[key][1]
        if not isinstance(vnode, SequenceNode):
            self.ctx.error(vnode, self.key_path(key), f"expected a list, got {describe(vnode)}")
            return
        if len(vnode.value) < min_len:
            self.ctx.error(vnode, self.key_path(key), f"expected at least {min_len} entries, got {len(vnode.value)}")
        for i, n in enumerate(vnode.value):
            yield i, n, f"{self.key_path(key)}[{i}]"

    def done(self) -> None:
        """Report every key that no reader asked for."""
        if not self.ok:
            return
        allowed = sorted(self.used)
        for key, (knode, _) in self.entries.items():
            if key not in self.used:
                self.ctx.error(knode, self.key_path(key), f"unknown key; expected one of: {', '.join(allowed)}")


# ---------------------------------------------------------------- converters

def _scalar_value(node: Node, expected: str) -> Any:
    if not isinstance(node, ScalarNode):
        raise Invalid(f"expected {expected}, got {describe(node)}")
    try:
        return _scalar(node)
    except (yaml.YAMLError, ValueError):  # ValueError: an integer beyond Python's 4300-digit limit
        raise Invalid(f"expected {expected}, got {describe(node)}") from None


def string(nonempty: bool = True) -> Converter:
    def conv(ctx: Context, node: Node, path: str) -> str:
        v = _scalar_value(node, "a text value")
        if not isinstance(v, str) or (nonempty and not v.strip()):
            raise Invalid(f"expected a non-empty text value, got {describe(node)}")
        return v

    return conv


def existing_file(ctx: Context, node: Node, path: str) -> Path:
    """A path to a file that exists, relative to the document's folder (``ctx.base_dir``) unless absolute."""
    text = string()(ctx, node, path)
    p = Path(text)
    full = p if p.is_absolute() else ctx.base_dir / p
    if not full.is_file():
        raise Invalid(f"file not found: {text} (looked for {full})")
    return full


def boolean() -> Converter:
    def conv(ctx: Context, node: Node, path: str) -> bool:
        v = _scalar_value(node, "true or false")
        if not isinstance(v, bool):
            raise Invalid(f"expected true or false, got {describe(node)}")
        return v

    return conv


def _check_range(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, got: str) -> None:
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise Invalid(f"expected a value {'>' if lo_open else '>='} {lo:g}, got {got}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise Invalid(f"expected a value {'<' if hi_open else '<='} {hi:g}, got {got}")


def integer(lo: int | None = None, hi: int | None = None) -> Converter:
    def conv(ctx: Context, node: Node, path: str) -> int:
        v = _scalar_value(node, "a whole number")
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid(f"expected a whole number, got {describe(node)}")
        _check_range(v, lo, hi, False, False, describe(node))
        return v

    return conv


def number(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False
) -> Converter:
    def conv(ctx: Context, node: Node, path: str) -> float:
        v = _scalar_value(node, "a number")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise Invalid(f"expected a finite number, got {describe(node)}")
        _check_range(float(v), lo, hi, lo_open, hi_open, describe(node))
        return float(v)

    return conv


def one_of(*choices: str) -> Converter:
    def conv(ctx: Context, node: Node, path: str) -> str:
        v = _scalar_value(node, f"one of {', '.join(choices)}")
        if v not in choices:
            raise Invalid(f"expected one of {', '.join(choices)}, got {describe(node)}")
        return v

    return conv


def vector(n: int, elem: Converter | None = None, what: str | None = None) -> Converter:
    """A list of exactly ``n`` values (numbers unless ``elem`` says otherwise), returned as a tuple."""
    elem = elem or number()
    label = what or f"a list of {n} numbers"

    def conv(ctx: Context, node: Node, path: str) -> tuple:
        if not isinstance(node, SequenceNode) or len(node.value) != n:
            raise Invalid(f"expected {label}, got {describe(node)}")
        out = []
        for sub in node.value:
            try:
                out.append(elem(ctx, sub, path))
            except Invalid:
                raise Invalid(f"expected {label}, got {describe(node)}") from None
        return tuple(out)

    return conv


def size2(what: str = "[w, h] positive integers") -> Converter:
    """A ``[w, h]`` pair of positive integers."""
    return vector(2, integer(lo=1), f"{what}")


def seq_or_empty(node: Node) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


def convert_list(ctx: Context, reader: MapReader, key: str, conv: Callable[[Context, Node, str], T]) -> list[T]:
    return [ctx.convert(n, p, conv) for _, n, p in reader.items(key)]
