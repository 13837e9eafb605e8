"""One declaration per feature value: its type, limits, unit and help, and the one codec built on them.

Every field of the feature dataclasses (:mod:`stagectl.core.features`) carries a :class:`Value` in its
dataclass field metadata (:func:`declared`), as camdkit declares each field once with its units. Everything
that reads or writes a feature value takes the limits from there:

* the dataclasses themselves check their fields with it (:func:`check_fields`, in ``__post_init__``);
* the stage YAML (:func:`stagectl.stage.features.parse_features`) builds its converters from it
  (:func:`stagectl.stage.features.yaml_converter`);
* the operator state file and the cluster wire are thin envelopes around :func:`to_dict` /
  :func:`from_dict` (LUTs by path in the one, by table in the other);
* the console commands, the OSC forms and the docs read the limits, units and help from it
  (:mod:`stagectl.console.commands`).

Units: a value is held in **model units** (what the renderer uses). A value whose operator-facing unit differs
says so with ``scale``: the chroma key and marker colours are sRGB-encoded 0..1 in the model and 8-bit codes
(0..255, ``scale = 255``) for operators: the stage file, the commands and the state file. The cluster wire
carries model units.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from stagectl.core.errors import StageError

__all__ = [
    "FeatureError",
    "Value",
    "FieldError",
    "declared",
    "value_of",
    "values_of",
    "check_fields",
    "to_dict",
    "from_dict",
    "show",
]

_KINDS = ("number", "whole", "vector", "text", "choice", "bool", "words", "object", "objects", "pairs",
          "names", "lut")


class FeatureError(StageError):
    """A feature value that cannot be used (bad rectangle, unknown layer, non-finite colour, ...)."""


class FieldError(FeatureError):
    """A value that does not fit its declaration. ``key``: where it is (a field name or a dotted path, ``""``
    for the object as a whole); ``message``: ``expected ..., got ...``. ``str()`` is ``key: message``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message

    def under(self, prefix: str) -> FieldError:
        """The same error one level down: ``prefix.key``."""
        key = f"{prefix}.{self.key}" if prefix and self.key and not self.key.startswith("[") else (
            f"{prefix}{self.key}" if prefix else self.key)
        return FieldError(key, self.message)


def show(v: Any) -> str:
    """A value as an error message quotes it: text as Python shows it, anything else as JSON."""
    if isinstance(v, str):
        return repr(v)
    try:
        return json.dumps(v, allow_nan=True)
    except (TypeError, ValueError):
        return repr(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def _g(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class Value:
    """The declaration of one value.

    ``kind``: ``number``, ``whole`` (a whole number; a float that is whole is taken), ``vector`` (``len(parts)``
    numbers named ``parts``), ``text`` (non-empty), ``choice`` (one of ``choices``), ``bool``, ``words`` (a list
    of ``choices``, kept in their order), or a structure: ``object`` / ``objects`` / ``pairs`` (of ``cls``:
    one, a tuple, ``(name, value)`` pairs), ``names`` (a set of names; None when ``nullable``: all), ``lut``
    (a :class:`~stagectl.core.lut.Lut3D`, carried by the envelope). ``lo`` / ``hi``: inclusive limits
    in model units (``lo_open``: ``lo`` itself is refused), each part of a vector alike. ``unit``: the
    operator's unit; ``scale``: operator units per model unit. ``noun``: how a message names a vector's numbers,
    with ``{range}`` where the limits go. ``help``: what it is, for the docs and the command help.
    ``label``: how messages name the field where its name reads badly (``burn-in``).
    """

    kind: str
    help: str = ""
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    parts: tuple[str, ...] = ()
    noun: str = "{range}"
    choices: tuple[str, ...] = ()
    nullable: bool = False
    scale: float = 1.0
    cls: Any = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Value kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")

    # ---- limits and their words
    def limits(self, op: bool = True) -> tuple[float | None, float | None]:
        """``(lo, hi)`` in operator units (``op``) or model units."""
        s = self.scale if op else 1.0
        return (None if self.lo is None else self.lo * s, None if self.hi is None else self.hi * s)

    def range_text(self, op: bool = True) -> str:
        """``0..1000``, ``> 0 and <= 100``, ``>= 0``, ``> 0`` or ``""``."""
        lo, hi = self.limits(op)
        if lo is not None and hi is not None:
            return f"> {_g(lo)} and <= {_g(hi)}" if self.lo_open else f"{_g(lo)}..{_g(hi)}"
        if lo is not None:
            return f"{'>' if self.lo_open else '>='} {_g(lo)}"
        if hi is not None:
            return f"<= {_g(hi)}"
        return ""

    def expected(self, op: bool = True) -> str:
        """What an error message says was expected (``a number 0..1000``)."""
        rng = self.range_text(op)
        k = self.kind
        if k == "number":
            return f"a number {rng}" if rng else "a finite number"
        if k == "whole":
            return f"a whole number {rng}" if rng else "a whole number"
        if k == "vector":
            return f"[{', '.join(self.parts)}] " + self.noun.format(range=rng).strip()
        if k == "text":
            return "a non-empty text"
        if k in ("choice",):
            return f"one of {', '.join(self.choices)}"
        if k == "bool":
            return "true or false"
        if k == "words":
            return f"a list of {', '.join(self.choices)}"
        return k

    def type_text(self, op: bool = True) -> str:
        """The type as the command help and the docs show it (``number 0..1000``, ``[r, g, b] 0..255``)."""
        rng = self.range_text(op)
        k = self.kind
        if k == "number":
            t = f"number {rng}" if rng else "number"
        elif k == "whole":
            t = f"whole number {rng}" if rng else "whole number"
        elif k == "vector":
            t = f"[{', '.join(self.parts)}] {rng}".strip()
        elif k == "choice":
            t = " | ".join(self.choices)
        elif k == "words":
            t = f"list of {', '.join(self.choices)}"
        else:
            t = k
        return f"{t} | null" if self.nullable else t

    # ---- checking
    def _number(self, v: Any, op: bool) -> float | None:
        if not _is_num(v) or not math.isfinite(v):
            return None
        lo, hi = self.limits(op)
        if lo is not None and (v < lo or (self.lo_open and v == lo)):
            return None
        if hi is not None and v > hi:
            return None
        return float(v)

    def check(self, v: Any, *, op: bool = False) -> Any:
        """``v`` (operator units with ``op``, else model units) normalised: a float, an int, a tuple of floats,
        a text, a bool, a tuple of words; None where ``nullable``. Raises :class:`FieldError` (key ``""``)
        ``expected ..., got ...``."""
        if v is None and self.nullable:
            return None
        k = self.kind

        def bad() -> FieldError:  # the message only when it is needed (it costs more than the check)
            return FieldError("", f"expected {self.expected(op)}, got {show(v)}")

        if k == "number":
            x = self._number(v, op)
            if x is None:
                raise bad()
            return x
        if k == "whole":
            x = self._number(v, op)
            if x is None or x != int(x):
                raise bad()
            return int(x)
        if k == "vector":
            if not isinstance(v, (list, tuple)) or len(v) != len(self.parts):
                raise bad()
            out = tuple(self._number(x, op) for x in v)
            if any(x is None for x in out):
                raise bad()
            return out
        if k == "text":
            if not isinstance(v, str) or not v.strip():
                raise bad()
            return v
        if k == "choice":
            if not isinstance(v, str) or v not in self.choices:
                raise bad()
            return v
        if k == "bool":
            if isinstance(v, bool) or type(v).__name__ == "bool_":
                return bool(v)
            raise bad()
        if k == "words":
            items = (v,) if isinstance(v, str) else v
            if not isinstance(items, (list, tuple)) or any(x not in self.choices for x in items):
                raise bad()
            return tuple(c for c in self.choices if c in items)
        return v  # structures are checked by their own classes

    # ---- units
    def to_model(self, v: Any) -> Any:
        """A checked operator value in model units (8-bit codes -> 0..1; a code within 1e-9 of a whole number
        is taken as that number)."""
        if self.scale == 1.0 or v is None:
            return v
        if self.kind == "vector":
            return tuple(_unscale(x, self.scale) for x in v)
        return _unscale(v, self.scale)

    def to_op(self, v: Any) -> Any:
        """A model value in operator units (0..1 -> 8-bit codes, whole codes as whole floats)."""
        if self.scale == 1.0 or v is None:
            return v
        if self.kind == "vector":
            return tuple(_rescale(x, self.scale) for x in v)
        return _rescale(v, self.scale)


def _unscale(x: float, s: float) -> float:
    if math.isfinite(x) and abs(x - round(x)) < 1e-9:
        x = float(round(x))
    return x / s


def _rescale(x: float, s: float) -> float:
    v = float(x) * s
    return float(round(v)) if math.isfinite(v) and abs(v - round(v)) < 1e-9 else v


# ------------------------------------------------------------------------------------ dataclass fields


def declared(default: Any = MISSING, **value: Any) -> Any:
    """A dataclass field declared by a :class:`Value` (``kind`` and the rest as keywords)."""
    meta = {"value": Value(**value)}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def value_of(cls: Any, name: str) -> Value:
    """The :class:`Value` declared for field ``name`` of the dataclass ``cls``."""
    for f in fields(cls):
        if f.name == name:
            return f.metadata["value"]
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def values_of(cls: Any) -> list[tuple[str, Value, Any]]:
    """``(name, Value, default)`` of every declared field of ``cls``, in order (default: ``MISSING``)."""
    return [(f.name, f.metadata["value"], f.default) for f in fields(cls) if "value" in f.metadata]


def check_fields(obj: Any, owner: str, names: tuple[str, ...] | None = None) -> None:
    """Check (and normalise in place) the declared scalar fields of the frozen dataclass ``obj``; raises
    :class:`FieldError` keyed ``<owner>: <field>``."""
    for name, val, _ in values_of(type(obj)):
        if val.kind in ("object", "objects", "pairs", "names", "lut") or (names is not None and name not in names):
            continue
        try:
            object.__setattr__(obj, name, val.check(getattr(obj, name)))
        except FieldError as exc:
            label = val.label or name
            raise FieldError(f"{owner}: {label}" if owner else label, exc.message) from None


# ------------------------------------------------------------------------------------ the codec


def _encode(val: Value, v: Any, op: bool, lut: Callable[[Any], Any] | None) -> Any:
    if v is None:
        return None
    k = val.kind
    if k == "object":
        return to_dict(v, op=op, lut=lut)
    if k == "objects":
        return [to_dict(x, op=op, lut=lut) for x in v]
    if k == "pairs":
        return [[name, to_dict(x, op=op, lut=lut)] for name, x in v]
    if k == "names":
        return sorted(v)
    if k == "lut":
        if lut is None:
            raise TypeError("a 3D LUT needs the envelope's lut= hook")
        return lut(v)
    if k in ("vector", "words"):
        return list(val.to_op(v) if op else v)
    return val.to_op(v) if op else v


def to_dict(obj: Any, *, op: bool = False, lut: Callable[[Any], Any] | None = None) -> dict:
    """The canonical JSON-able form of a feature object: one key per declared field, in declaration order.
    ``op``: values in operator units (8-bit codes for the chroma colours), else model units; ``lut``: how
    the envelope writes a 3D LUT (a path, an index into its tables)."""
    return {name: _encode(val, getattr(obj, name), op, lut) for name, val, _ in values_of(type(obj))}


def _list(v: Any, key: str) -> list:
    if not isinstance(v, list):
        raise FieldError(key, f"expected a list, got {show(v)}")
    return v


def _decode(val: Value, v: Any, key: str, op: bool, strict: bool, lut: Callable[[Any, str], Any] | None) -> Any:
    if v is None and (val.nullable or val.kind in ("object", "lut")):
        return None
    k = val.kind
    if k == "object":
        return from_dict(val.cls, v, op=op, strict=strict, lut=lut, key=key)
    if k == "objects":
        return tuple(from_dict(val.cls, x, op=op, strict=strict, lut=lut, key=f"{key}[{i}]")
                     for i, x in enumerate(_list(v, key)))
    if k == "pairs":
        out = []
        for i, item in enumerate(_list(v, key)):
            at = f"{key}[{i}]"
            if not isinstance(item, list) or len(item) != 2:
                raise FieldError(at, f"expected [name, value], got {show(item)}")
            name = _name(item[0], f"{at}[0]")
            out.append((name, from_dict(val.cls, item[1], op=op, strict=strict, lut=lut, key=f"{key}.{name}")))
        return tuple(out)
    if k == "names":
        items = [_name(x, key) for x in _list(v, key)]
        if len(set(items)) != len(items):
            raise FieldError(key, f"a name is given twice in {show(items)}")
        return frozenset(items)
    if k == "lut":
        if lut is None:
            raise FieldError(key, "a 3D LUT is not expected here")
        return lut(v, key)
    try:
        return val.to_model(val.check(v, op=op)) if op else val.check(v)
    except FieldError as exc:
        raise FieldError(key, exc.message) from None


def _name(x: Any, key: str) -> str:
    if not isinstance(x, str) or not x.strip():
        raise FieldError(key, f"expected a non-empty text, got {show(x)}")
    return x


def from_dict(cls: Any, d: Any, *, op: bool = False, strict: bool = True,
              lut: Callable[[Any, str], Any] | None = None, key: str = "") -> Any:
    """The feature object ``cls`` of :func:`to_dict`'s form ``d``. ``strict``: exactly the declared keys (the
    wire); else a missing key takes the field's default (an error where there is none) and unknown keys are
    ignored (the state file). ``lut(value, key)``: the envelope's reader of a 3D LUT. Raises
    :class:`FieldError` keyed by the path under ``key`` (``light_cards[0].intensity``); the object's own checks
    across fields (a rectangle inside out, both gains and a temperature) come keyed by the object."""
    if not isinstance(d, Mapping):
        raise FieldError(key, f"expected an object, got {show(d)}")
    decl = values_of(cls)
    names = [n for n, _, _ in decl]
    if strict and set(d) != set(names):
        raise FieldError(key, f"expected an object with keys {names}, got {sorted(d)}")
    kw = {}
    for name, val, default in decl:
        at = f"{key}.{name}" if key else name
        if name not in d:
            if default is MISSING:
                raise FieldError(at, f"missing; expected {val.expected()}")
            continue
        kw[name] = _decode(val, d[name], at, op, strict, lut)
    try:
        return cls(**kw)
    except FieldError as exc:
        raise FieldError(key, str(exc)) from None
    except StageError as exc:
        raise FieldError(key, str(exc)) from None
