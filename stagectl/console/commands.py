"""The operator command set: specs, validation and the pure state transition.

A command is a lower-case dotted name plus a dict of JSON-able arguments (docs/console.md lists every one with
its units and an example). This module is pure: no sockets, no GL, no clocks.

* :data:`COMMANDS` — the registry: name -> :class:`CommandSpec`, each command declared once: its arguments
  (:class:`ArgSpec`: type, limits, unit, help, check, OSC kind; those that set a feature take all of it from the
  feature field's declaration, :mod:`stagectl.core.fields`), ``read_only``, help text, an example,
  its handler, its positional OSC form and the prose of its docs. The ``help`` command, the OSC forms
  (:mod:`stagectl.console.osc_transport`) and the command reference of docs/console.md
  (:mod:`stagectl.console.docs`) are generated from it.
* :func:`validate` ``(name, args, stage, state)`` — checks everything against the stage and the current
  operator state and returns the normalised arguments, or raises :class:`CommandError` with one line such as
  ``card.add: rect: expected [u0, v0, u1, v1] with u0 < u1, v0 < v1 in wall UV, got [0.5, 0.1, 0.2, 0.3]``.
  Nothing changes on an error.
* :func:`apply` ``(state, name, args)`` — the new :class:`~stagectl.console.state.OperatorState` and the
  command's result (JSON-able). It takes :func:`validate`'s output and cannot fail on it, except where the
  state changed between the two (a card removed meanwhile), which raises :class:`CommandError`.

Units at this edge (docs/conventions.md): wall UV for card rectangles and positions (origin top-left, v down),
linear-light RGB for card and pattern colours, 8-bit sRGB codes for the chroma key colour, wall raster pixels
for card feathers, percent for overscan, frames for delays, Hz for smoothing cutoffs, stops for exposure,
kelvin for colour temperature. Paths are relative to the stage file (or absolute) and must resolve inside the
folder ``console.paths`` names for them (:func:`confined`): ``takes`` for ``record.start``, ``content`` for
``content.select``, ``luts`` for ``color.set lut``; anything else is refused with :class:`PathRefused`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from stagectl.core.errors import ConfigErrors, StageError
from stagectl.core.features import MAX_CARDS, ChromaKey, ColorCorrection, LightCard, OutputPattern
from stagectl.core.fields import FeatureError, FieldError, Value, show, value_of
from stagectl.core.lut import Lut3D, read_cube
from stagectl.core.camera_settings import SMOOTHING, CameraSettings, overscan_of, smoothing_json, smoothing_of
from stagectl.stage.model import CONSOLE_GROUPS

__all__ = [
    "CommandError",
    "PathRefused",
    "PATH_KINDS",
    "confined",
    "folder_of",
    "ArgSpec",
    "CommandSpec",
    "COMMANDS",
    "GROUPS",
    "LutPath",
    "PatchOutput",
    "calibrated_outputs",
    "group_of",
    "is_read_only",
    "spec_json",
    "slate_of",
    "take_file_name",
    "next_take",
    "validate",
    "apply",
]


class CommandError(StageError):
    """A command that cannot be carried out; the message is one complete line naming the command and the
    argument (``card.set: id: no light card 'x'; cards: card-1, card-2``)."""


class PathRefused(CommandError):
    """A path argument that does not resolve inside the folder ``console.paths`` gives its kind (or cannot be
    resolved at all). The message names the command, the argument, the operator's own text and the folder; it
    never holds the resolved path, anything read from a file, or whether the outside file exists.
    ``command``, ``arg``, ``kind`` (``takes``, ``content`` or ``luts``) and ``given`` (the operator's text)
    say what was refused; the hub logs it with who asked."""

    def __init__(
        self, message: str, command: str = "", arg: str = "", kind: str = "", given: str = ""
    ) -> None:
        super().__init__(message)
        self.command = command
        self.arg = arg
        self.kind = kind
        self.given = given


class _ArgError(Exception):
    """An argument's problem (``expected ..., got ...``) before the command and argument names are added."""


class _PathError(_ArgError):
    """A path outside its ``console.paths`` folder (:class:`PathRefused` once the names are added)."""

    def __init__(self, message: str, kind: str, given: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.given = given


class LutPath(str):
    """The absolute path of a LUT file (a ``str``, so arguments stay JSON-able) carrying the
    :class:`~stagectl.core.lut.Lut3D` read from it at validation, so the frame loop never reads
    files."""

    lut: Lut3D | None

    def __new__(cls, path: str, lut: Lut3D | None) -> LutPath:
        s = super().__new__(cls, path)
        s.lut = lut
        return s


_Checker = Callable[[Any, Any, Any, dict], Any]
#: ``handler(state, args) -> (new_state, result)`` of a validated command
_Handler = Callable[[Any, dict], tuple[Any, dict]]


@dataclass(frozen=True)
class ArgSpec:
    """One argument, declared once: ``name``, ``type`` (as the help and docs show it, limits included),
    ``required``, ``help`` (with units), ``check`` ``(value, stage, state, normalised so far)`` -> the
    normalised value (raises ``_ArgError``), and how OSC carries it: ``osc`` the value kind (``str``,
    ``path``, ``num``, ``vec``, ``bool``, ``words``, ``smoothing``), ``parts`` the names of a vector's numbers
    (``u0 v0 u1 v1``), ``choices`` the words a ``str`` or ``words`` value may be, ``label`` how OSC errors name
    it. Arguments read from a feature field (:func:`_field`) take all of this from the field's declaration
    (:mod:`stagectl.core.fields`)."""

    name: str
    type: str
    required: bool
    help: str
    check: _Checker = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    osc: str = "str"
    parts: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    label: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "required": self.required, "help": self.help}


@dataclass(frozen=True)
class CommandSpec:
    """One command, declared once: ``name``, ``args``, ``read_only`` (answers at once, changes nothing),
    ``help``, ``example`` (JSON-able arguments), ``needs_one_of`` (at least one of these arguments must be
    given), ``handler`` (the state transition of :func:`apply`), ``finish`` ``(stage, state, normalised)``
    (checks across arguments at :func:`validate`), ``osc`` (the positional OSC form, read by
    :mod:`stagectl.console.osc_transport`: argument names in order, ``[...]`` optional, ``a | b``
    alternatives, ``name=value`` a default when left out, ``name*`` any of a word list, ``...`` the other
    arguments as ``s:key value`` pairs), ``osc_note`` / ``osc_example`` (the OSC table), ``doc`` (what
    docs/console.md says under the argument table: results, errors, details)."""

    name: str
    args: tuple[ArgSpec, ...]
    read_only: bool
    help: str
    example: dict
    needs_one_of: tuple[str, ...] = ()
    handler: _Handler | None = field(compare=False, repr=False, default=None)
    finish: Callable[[Any, Any, dict], None] | None = field(compare=False, repr=False, default=None)
    osc: str = ""
    osc_note: str = ""
    osc_example: tuple = ()
    doc: str = ""

    @property
    def group(self) -> str:
        """The first dotted part (``card`` for ``card.add``); the OSC ``allow`` lists name these."""
        return self.name.split(".", 1)[0]

    def arg(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args if a.name == name), None)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "read_only": self.read_only,
            "help": self.help,
            "args": [a.to_json() for a in self.args],
            "example": self.example,
        }


_OSC_KIND = {
    "number": "num",
    "whole": "int",
    "vector": "vec",
    "text": "str",
    "choice": "str",
    "bool": "bool",
    "words": "words",
}


def _checked(val: Value) -> _Checker:
    """The command check of a declared value (operator units; vectors and word lists as lists)."""

    def check(v, stage, state, out):
        if val.kind == "bool":
            return _bool(v)
        try:
            x = val.check(v, op=True)
        except FieldError as exc:
            raise _ArgError(exc.message) from None
        return list(x) if isinstance(x, tuple) else x

    return check


def _help_of(val: Value, help_: str = "") -> str:
    text = help_ or val.help
    return f"{text}, {val.unit}" if val.unit and val.unit not in text else text


def _value(
    name: str,
    val: Value,
    help_: str = "",
    required: bool = False,
    check: _Checker | None = None,
    type_: str = "",
) -> ArgSpec:
    """An argument declared by a :class:`~stagectl.core.fields.Value` (``help_`` replaces its
    help; the unit is added when the text does not say it)."""
    return ArgSpec(
        name,
        type_ or val.type_text(),
        required,
        _help_of(val, help_),
        check or _checked(val),
        _OSC_KIND.get(val.kind, "str"),
        val.parts,
        val.choices,
        val.label,
    )


def _field(
    cls,
    name: str,
    *,
    required: bool = False,
    help_: str = "",
    default: bool = False,
    check: _Checker | None = None,
    nullable: bool = True,
    type_: str = "",
) -> ArgSpec:
    """An argument that sets feature field ``cls.name``: type, limits, unit and help from its declaration;
    ``default``: the help names the field's default."""
    val = value_of(cls, name)
    if not nullable:
        val = replace(val, nullable=False)
    text = _help_of(val, help_)
    if default:
        d = val.to_op(next(f.default for f in fields(cls) if f.name == name))
        shown = (
            "white"
            if d == (1.0, 1.0, 1.0) and val.kind == "vector"
            else (
                json.dumps(list(d))
                if isinstance(d, tuple)
                else (f"{d:g}" if isinstance(d, float) else str(d))
            )
        )
        text = f"{text} (default {shown})"
    return ArgSpec(
        name,
        type_ or val.type_text(),
        required,
        text,
        check or _checked(val),
        _OSC_KIND.get(val.kind, "str"),
        val.parts,
        val.choices,
        val.label,
    )


def _arg(
    name: str,
    type_: str,
    help_: str,
    check: _Checker,
    required: bool = False,
    osc: str = "str",
    choices: tuple[str, ...] = (),
) -> ArgSpec:
    """An argument that names something of the stage or the state (a wall, a card, a file, ...)."""
    return ArgSpec(name, type_, required, help_, check, osc, (), choices)


# --------------------------------------------------------------------------------------------- value checks


_show = show  # a value as error messages quote it (text as Python shows it, anything else as JSON)


def _num(
    v: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False, what: str | None = None
) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if ok and lo is not None and (v < lo or (lo_open and v == lo)):
        ok = False
    if ok and hi is not None and v > hi:
        ok = False
    if not ok:
        if what is None:
            if lo is not None and hi is not None:
                what = (
                    f"a number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
                    if lo_open
                    else f"a number {lo:g}..{hi:g}"
                )
            elif lo is not None:
                what = f"a number {'>' if lo_open else '>='} {lo:g}"
            else:
                what = "a finite number"
        raise _ArgError(f"expected {what}, got {_show(v)}")
    return float(v)


def _vec(
    v: Any, n: int, lo: float | None, hi: float | None, what: str, lo_open: bool = False
) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise _ArgError(f"expected {what}, got {_show(v)}")
    try:
        return tuple(_num(x, lo, hi, lo_open) for x in v)
    except _ArgError:
        raise _ArgError(f"expected {what}, got {_show(v)}") from None


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):  # OSC controllers send 0/1 (int or float) for toggles
        return bool(v)
    raise _ArgError(f"expected true or false, got {_show(v)}")


def _text(v: Any, what: str = "a non-empty text") -> str:
    if not isinstance(v, str) or not v.strip():
        raise _ArgError(f"expected {what}, got {_show(v)}")
    return v


def _choice(v: Any, choices: Sequence[str], what: str = "") -> str:
    if not isinstance(v, str) or v not in choices:
        raise _ArgError(f"expected one of {', '.join(choices)}{what}, got {_show(v)}")
    return v


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "(none)"


def _rect(v: Any) -> tuple[float, float, float, float]:
    what = "[u0, v0, u1, v1] with u0 < u1, v0 < v1 in wall UV"
    r = _vec(v, 4, -10.0, 10.0, what + " (each -10..10)")
    if not (r[0] < r[2] and r[1] < r[3]):
        raise _ArgError(f"expected {what}, got {_show(v)}")
    return r  # type: ignore[return-value]


def _resolve(stage, text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else Path(stage.path).resolve().parent / p


#: what each ``console.paths`` folder holds, for messages
PATH_KINDS = {"takes": "take", "content": "scene", "luts": "LUT"}


def _named_folder(stage, kind: str) -> Path:
    """The folder ``console.paths.<kind>`` as the stage file names it, made absolute (links not resolved)."""
    from stagectl.stage.model import ConsolePaths

    settings = getattr(stage, "console", None)
    paths = getattr(settings, "paths", None) or ConsolePaths()
    return paths.folder(kind, Path(stage.path).resolve().parent)


def folder_of(stage, kind: str) -> Path:
    """The folder ``console.paths.<kind>`` of ``stage`` (``takes``, ``content`` or ``luts``), absolute with
    its symbolic links resolved (relative folders are taken from the stage file's folder)."""
    return _named_folder(stage, kind).resolve()


def _shown_folder(stage, kind: str) -> str:
    """The folder as the stage file names it, relative to the stage file's folder (``takes/``) when it is
    inside it; where a linked folder really lies is not shown."""
    named = _named_folder(stage, kind)
    base = Path(stage.path).resolve().parent
    if named.is_relative_to(base) and named != base:
        return f"{named.relative_to(base).as_posix()}/"
    return f"{named}/"


def _confined(stage, kind: str, v: Any) -> Path:
    """The absolute, resolved path that the operator's ``v`` (relative to the stage file, or absolute) names
    inside the folder ``console.paths.<kind>``: symbolic links are followed and ``..`` folded first, then the
    result must lie strictly inside the (resolved) folder. Anything else, including a path that cannot be
    resolved at all, raises :class:`_PathError` with one message that depends only on ``v`` and the folder: it
    never says whether an outside file exists, nor where a link points."""
    what = f"a {PATH_KINDS[kind]} file path"
    text = _text(v, what)
    root = folder_of(stage, kind)
    try:
        full = _resolve(stage, text).resolve()
        inside = full != root and full.is_relative_to(root)
    except (OSError, ValueError, RuntimeError):  # an embedded NUL, a name too long, a link loop (3.13)
        inside = False
    if not inside:
        raise _PathError(
            f"refused: {text!r} is not inside the {PATH_KINDS[kind]} folder {_shown_folder(stage, kind)} "
            f"(console.paths.{kind}); name a file in it",
            kind,
            text,
        )
    return full


def confined(stage, kind: str, v: Any, command: str, arg: str) -> Path:
    """The absolute, resolved path that ``v`` (relative to the stage file, or absolute) names strictly inside
    the folder ``console.paths.<kind>`` of ``stage`` (symbolic links followed and ``..`` folded before the
    check); raises :class:`PathRefused` ``<command>: <arg>: refused: ...`` otherwise. For effects that touch
    the file later: checking again right before catches a link swapped in since the command was validated."""
    try:
        return _confined(stage, kind, v)
    except _PathError as exc:
        raise PathRefused(f"{command}: {arg}: {exc}", command, arg, exc.kind, exc.given) from None
    except _ArgError as exc:
        raise CommandError(f"{command}: {arg}: {exc}") from None


def _file(stage, v: Any, kind: str) -> Path:
    full = _confined(stage, kind, v)
    try:
        found = full.is_file()
    except OSError as exc:  # a name too long, a folder it may not read: inside the folder, so say why
        raise _ArgError(f"cannot use {v}: {exc.strerror or exc}") from None
    if not found:
        raise _ArgError(f"file not found: {v} (looked for {full})")
    return full


def _outputs(stage) -> list[str]:
    return [f"{p.name}/{o.name}" for p, o in stage.outputs()]


def _card_ids(state) -> list[str]:
    return [c.id for c in state.features.light_cards]


def _card(state, v: Any) -> LightCard:
    cid = _text(v, "a light card id")
    for c in state.features.light_cards:
        if c.id == cid:
            return c
    raise _ArgError(f"no light card {cid!r}; cards: {_names(_card_ids(state))}")


#: limits of the arguments that are not feature or camera-settings fields (card moves)
_UV = Value("number", lo=-10.0, hi=10.0, unit="wall UV")
_SIZE_UV = Value("number", lo=0.0, hi=20.0, lo_open=True, unit="wall UV")

# --------------------------------------------------------------------------------------------- validate


def validate(name: Any, args: Any, stage, state) -> dict:
    """Check command ``name`` with ``args`` against ``stage`` and the current operator ``state``; return the
    normalised arguments (numbers as floats, vectors as lists, paths absolute, defaults filled in where the
    command defines one). Raises :class:`CommandError` (one line) for an unknown command, an unknown or
    missing argument, or a value out of range or naming something the stage or state does not have."""
    if not isinstance(name, str) or name not in COMMANDS:
        raise CommandError(f"unknown command {_show(name)}; commands: {', '.join(COMMANDS)}")
    spec = COMMANDS[name]
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise CommandError(
            f"{name}: expected the arguments as a mapping of names to values, got {_show(args)}"
        )
    for k in args:
        if spec.arg(k) is None:
            known = ", ".join(a.name for a in spec.args) or "(none)"
            raise CommandError(f"{name}: {k}: unknown argument; expected one of: {known}")
    for a in spec.args:
        if a.required and a.name not in args:
            raise CommandError(f"{name}: {a.name}: required argument is missing ({a.type}: {a.help})")
    if spec.needs_one_of and not any(k in args for k in spec.needs_one_of):
        raise CommandError(f"{name}: expected at least one of {', '.join(spec.needs_one_of)}")
    out: dict = {}
    current = ""
    try:
        for a in spec.args:  # spec order, so errors come in a stable order
            if a.name not in args:
                continue
            current = a.name
            out[a.name] = a.check(args[a.name], stage, state, out)
        current = ""
        if spec.finish is not None:
            spec.finish(stage, state, out)
    except _PathError as exc:
        msg = f"{name}: {current}: {exc}" if current else f"{name}: {exc}"
        raise PathRefused(msg, name, current, exc.kind, exc.given) from None
    except _ArgError as exc:
        raise CommandError(f"{name}: {current}: {exc}" if current else f"{name}: {exc}") from None
    except FeatureError as exc:
        raise CommandError(f"{name}: {exc}") from None
    return out


def _v_camera(v, stage, state, out):
    names = state.camera_names
    return _choice(v, names, "") if names else _fail(f"the stage has no cameras, got {_show(v)}")


def _fail(msg: str):
    raise _ArgError(msg)


def _v_tracking(v, stage, state, out):
    return _choice(v, [t.name for t in stage.tracking], " (tracking sources)")


def _v_smoothing(v, stage, state, out):
    """``"off"`` or every part of the smoothing (limits: :data:`stagectl.core.camera_settings.SMOOTHING`)."""
    try:
        return smoothing_json(smoothing_of(v))
    except FieldError as exc:
        raise _ArgError(exc.message) from None


def _v_overscan(v, stage, state, out):
    """One percentage for all four sides, or one per side (:func:`stagectl.core.camera_settings.overscan_of`)."""
    try:
        return list(overscan_of(v))
    except FieldError as exc:
        raise _ArgError(exc.message) from None


def _v_rect(v, stage, state, out):
    r = _checked(value_of(LightCard, "rect"))(v, stage, state, out)
    if not (r[0] < r[2] and r[1] < r[3]):
        raise _ArgError(f"expected [u0, v0, u1, v1] with u0 < u1, v0 < v1 in wall UV, got {_show(v)}")
    return r


def _v_wall(v, stage, state, out):
    return _choice(v, [w.name for w in stage.walls], " (walls)")


def _v_new_id(v, stage, state, out):
    cid = _text(v, "a non-empty card id")
    if cid in _card_ids(state):
        raise _ArgError(f"light card {cid!r} exists already; cards: {_names(_card_ids(state))}")
    return cid


def _v_id(v, stage, state, out):
    return _card(state, v).id


def _v_target(v, stage, state, out):
    return _choice(v, [w.name for w in stage.walls] + ["inner"], " (walls, or inner)")


def _v_lut(v, stage, state, out):
    if v is None:
        return None
    full = _file(stage, v, "luts")
    try:
        lut = read_cube(full, str(v))
    except ConfigErrors as exc:
        raise _ArgError(str(exc).splitlines()[0]) from None
    return LutPath(str(full), lut)


def _v_output(v, stage, state, out):
    outs = _outputs(stage)
    if not isinstance(v, str) or v not in outs:
        raise _ArgError(f"no output {_show(v)}; outputs: {', '.join(outs)}")
    return v


def _v_output_or_all(v, stage, state, out):
    outs = _outputs(stage)
    if v == "all":
        return v
    if not isinstance(v, str) or v not in outs:
        raise _ArgError(f"no output {_show(v)}; outputs: all, {', '.join(outs)}")
    return v


def calibrated_outputs(stage) -> list[str]:
    """The output keys of ``stage`` that have a colour calibration (the stage file's ``colour:`` section), in
    stage order."""
    colour = getattr(stage, "colour", None)
    if colour is None:
        return []
    return [k for k in _outputs(stage) if colour.output(k).calibration is not None]


def _v_calibration_target(v, stage, state, out):
    """``color.calibration``'s target -> the sorted calibrated output keys it names."""
    cal = calibrated_outputs(stage)
    what = f'a calibrated output ({_names(cal)}), a wall showing one, "all", or a list of them'
    if not cal:
        raise _ArgError("expected a calibrated output, but the stage has none (colour: outputs.<key>.calibration "
                        f"or walls.<wall>.calibration), got {_show(v)}")
    items = v if isinstance(v, list) else [v]
    if not items or len(items) > 256:
        raise _ArgError(f"expected {what}, got {_show(v)}")
    walls = {w.name for w in stage.walls}
    keys: set[str] = set()
    for t in items:
        if t == "all":
            keys.update(cal)
        elif isinstance(t, str) and t in cal:
            keys.add(t)
        elif isinstance(t, str) and t in _outputs(stage):
            raise _ArgError(f"output {t!r} has no calibration; calibrated outputs: {_names(cal)}")
        elif isinstance(t, str) and t in walls:
            shown = [k for p, o in stage.outputs() if (k := f"{p.name}/{o.name}") in cal
                     and any(m.wall == t for m in o.mappings)]
            if not shown:
                raise _ArgError(f"no calibrated output shows wall {t!r}; calibrated outputs: {_names(cal)}")
            keys.update(shown)
        else:
            raise _ArgError(f"expected {what}, got {_show(t)}")
    return sorted(keys)


def _v_look_target(v, stage, state, out):
    """``color.look``'s target -> the sorted ``wall:<name>`` / ``camera:<name>`` keys of the looks it names."""
    from stagectl.color.stagefile import look_keys

    looks = sorted(look_keys(stage))
    what = f'a wall or camera with a look ({_names(looks)}), "all", or a list of them'
    if not looks:
        raise _ArgError("expected a wall or camera with a look, but the stage has none (colour: walls.<wall>.look "
                        f"or cameras.<camera>.look), got {_show(v)}")
    items = v if isinstance(v, list) else [v]
    if not items or len(items) > 256:
        raise _ArgError(f"expected {what}, got {_show(v)}")
    keys: set[str] = set()
    for t in items:
        if t == "all":
            keys.update(looks)
            continue
        if not isinstance(t, str):
            raise _ArgError(f"expected {what}, got {_show(t)}")
        named = [t] if ":" in t else [k for k in (f"wall:{t}", f"camera:{t}") if k in looks]
        if len(named) == 2:
            raise _ArgError(f"{t!r} is a wall and a camera, both with a look: say wall:{t} or camera:{t}")
        if not named or named[0] not in looks:
            kind, _, name = t.rpartition(":")
            if name in {w.name for w in stage.walls} and kind in ("", "wall"):
                raise _ArgError(f"wall {name!r} has no look; looks: {_names(looks)}")
            if name in {c.name for c in stage.cameras} and kind in ("", "camera"):
                raise _ArgError(f"camera {name!r} has no look; looks: {_names(looks)}")
            raise _ArgError(f"expected {what}, got {_show(t)}")
        keys.add(named[0])
    return sorted(keys)


class PatchOutput(str):
    """``color.patches``' output key (a ``str``, so arguments stay JSON-able) carrying the
    :class:`~stagectl.render.patch_player.PatchProgram` built at validation (OCIO, colour-science: slow the
    first time), so the frame loop only starts it."""

    program: Any

    def __new__(cls, key: str, program: Any) -> PatchOutput:
        s = super().__new__(cls, key)
        s.program = program
        return s


#: color.patches' sequence arguments: (name, lowest, highest, default), as stagectl calibrate colour's options
_PATCH_COUNTS = (("frames_per_patch", 1, 1000, 10), ("slate_frames", 1, 1000, 8), ("ramp_steps", 4, 1000, 30))


def _finish_patches(stage, state, out) -> None:
    key = out["output"]
    extra = [k for k in (*(n for n, *_ in _PATCH_COUNTS), "calibration") if k in out]
    if out["action"] == "stop":
        if extra:
            raise _ArgError(f"{extra[0]}: only with action start")
        return
    from stagectl.color.errors import ColorError
    from stagectl.render.patch_player import patch_program

    counts = {n: int(out.get(n, d)) for n, _, _, d in _PATCH_COUNTS}
    try:
        program = patch_program(stage, key, calibration=bool(out.get("calibration", False)), **counts)
    except ColorError as exc:
        msg = " ".join(str(exc).split())
        raise _ArgError(msg if msg.startswith(f"output {key} ") else f"output {key}: {msg}") from None
    out["output"] = PatchOutput(key, program)


def _v_content(v, stage, state, out):
    if v == "procedural":
        return v
    return str(_file(stage, v, "content"))


def _slate_text(limit: int) -> _Checker:
    def check(v, stage, state, out):
        if not isinstance(v, str) or not v.strip() or len(v) > limit or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise _ArgError(f"expected a text of 1..{limit} printable characters, got {_show(v)}")
        return v.strip()

    return check


def _v_take_number(v, stage, state, out):
    if isinstance(v, str) and v.strip().isdigit():  # a slate text "7", as OSC keyed forms may send it
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 9999:
        raise _ArgError(f"expected a whole number 1..9999, got {_show(v)}")
    return v


def _v_record_path(v, stage, state, out):
    full = _confined(stage, "takes", v)
    text = v
    try:
        exists = full.exists()
        parent_not_folder = full.parent.exists() and not full.parent.is_dir()
    except OSError as exc:  # a name too long, a folder it may not read: inside the folder, so say why
        raise _ArgError(f"cannot use {text}: {exc.strerror or exc}") from None
    if exists:
        raise _ArgError(f"{text} exists already (at {full}); choose a new file")
    if parent_not_folder:
        raise _ArgError(f"{full.parent} is not a folder")
    return str(full)


def _finish_card_add(stage, state, out) -> None:
    if len(state.features.light_cards) >= MAX_CARDS:
        raise _ArgError(
            f"at most {MAX_CARDS} light cards are drawn; remove one first (cards: {_names(_card_ids(state))})"
        )
    _new_card(out.get("id", "new"), out)


def _finish_card_edit(stage, state, out) -> None:
    _card_edit(state, out)


def _finish_color_set(stage, state, out) -> None:
    if out.get("gains") is not None and out.get("temperature") is not None:
        raise _ArgError("give white balance as gains or as temperature/tint, not both")
    _merged_cc(state, out)  # raises FeatureError for a white outside the gamut


def _finish_color_reset(stage, state, out) -> None:
    t = out["target"]
    cc = state.features.inner_color if t == "inner" else state.features.color_of(t)
    if cc is None:
        raise _ArgError(f"target: {t!r} has no colour correction")


def _finish_record_start(stage, state, out) -> None:
    if state.recording is not None:
        raise _ArgError(f"a take is being recorded already ({state.recording}); record.stop first")
    if out.get("drop_frame") and not stage.frame_rate.is_drop_frame_capable:
        raise _ArgError(
            f"drop_frame: drop-frame timecode exists only at 29.97 and 59.94 fps; the stage runs at "
            f"{stage.frame_rate.label} fps"
        )
    scene = out.get("scene")
    auto = "take" not in out
    if auto:
        out["take"] = next_take(stage, scene)
    if "path" in out:
        return
    folder = folder_of(stage, "takes")
    if scene is None:
        from stagectl.console.state import utc_stamp

        stem = Path(stage.path).stem
        out["path"] = str(folder / f"{stem}-{utc_stamp()[:15]}Z.stgtake")
        return
    import time as _time

    day = _time.strftime("%Y-%m-%d")
    while True:
        path = folder / day / take_file_name(scene, out["take"], out.get("roll"))
        if not path.exists():
            break
        if not auto:
            raise _ArgError(f"take {out['take']} of scene {scene!r} exists already ({path}); give another take")
        out["take"] += 1
    out["path"] = str(path)


#: characters of a slate value kept in a take's file name (the others become "-")
_NAME_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


def take_file_name(scene: str, take: int, roll: str | None = None) -> str:
    """``<scene>_T<take>[_<roll>].stgtake`` (take two digits at least), with anything but letters, digits,
    ``.`` and ``-`` in the slate values written as ``-``."""

    def clean(v: str) -> str:
        return "".join(c if c in _NAME_OK else "-" for c in v.strip()).strip(".") or "-"

    return f"{clean(scene)}_T{take:02d}" + (f"_{clean(roll)}" if roll else "") + ".stgtake"


def next_take(stage, scene: str | None) -> int:
    """1 + the highest take number of ``scene`` among the takes in the take folder (every ``*.stgtake`` in
    it and its sub-folders, by the slate in its header; ``scene`` None: takes without a scene), or 1."""
    from stagectl.tracking.recording import TakeFormatError, read_take

    best = 0
    try:
        files = sorted(folder_of(stage, "takes").rglob("*.stgtake"))
    except OSError:
        return 1
    for f in files:
        try:
            with read_take(f) as r:
                meta = r.header.meta if r.header is not None else {}
        except (OSError, TakeFormatError):
            continue
        slate = meta.get("slate") if isinstance(meta.get("slate"), Mapping) else {}
        if slate.get("scene") != scene:
            continue
        t = slate.get("take")
        if isinstance(t, int) and not isinstance(t, bool):
            best = max(best, t)
        elif isinstance(t, str) and t.isdigit():
            best = max(best, int(t))
    return best + 1


def _finish_record_stop(stage, state, out) -> None:
    if state.recording is None:
        raise _ArgError("no take is being recorded")


def _v_follow_source(v, stage, state, out):
    """An OpenTrackIO tracking source of the stage, or ``"off"`` / null (None: stop following)."""
    from stagectl.tracking.receiver import normalise_protocol

    otio = [t.name for t in stage.tracking if normalise_protocol(t.protocol) == "opentrackio"]
    if v is None or (v == "off" and "off" not in otio):
        return None
    if not isinstance(v, str) or v not in otio:
        raise _ArgError(f'expected an OpenTrackIO tracking source of the stage ({_names(otio)}) or "off", '
                        f"got {_show(v)}")
    return v


# --------------------------------------------------------------------------------------------- apply


def _card_edit(state, args: dict) -> LightCard:
    """The edited card of card.set / card.move / card.resize (raises FeatureError / _ArgError)."""
    c = _card(state, args["id"])
    if "u" in args:  # move: keep the size
        hw, hh = (c.rect[2] - c.rect[0]) / 2.0, (c.rect[3] - c.rect[1]) / 2.0
        rect = (args["u"] - hw, args["v"] - hh, args["u"] + hw, args["v"] + hh)
        return replace(c, rect=rect)
    if "width" in args:  # resize about the centre
        cu, cv = (c.rect[0] + c.rect[2]) / 2.0, (c.rect[1] + c.rect[3]) / 2.0
        rect = (
            cu - args["width"] / 2.0,
            cv - args["height"] / 2.0,
            cu + args["width"] / 2.0,
            cv + args["height"] / 2.0,
        )
        return replace(c, rect=rect)
    fields = {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in args.items()
        if k in ("rect", "color", "intensity", "layer", "feather_px")
    }
    return replace(c, **fields)


def _merged_cc(state, args: dict) -> ColorCorrection:
    t = args["target"]
    cur = (state.features.inner_color if t == "inner" else state.features.color_of(t)) or ColorCorrection()
    kw: dict[str, Any] = {}
    for k in ("exposure", "tint", "saturation"):
        if k in args:
            kw[k] = args[k]
    for k in ("slope", "offset", "power"):
        if k in args:
            kw[k] = tuple(args[k])
    if "gains" in args:
        kw["gains"] = None if args["gains"] is None else tuple(args["gains"])
        if args["gains"] is not None:
            kw["temperature"] = None
    if "temperature" in args:
        kw["temperature"] = args["temperature"]
        if args["temperature"] is not None:
            kw["gains"] = None
    if "lut" in args:
        kw["lut"] = (
            None if args["lut"] is None else getattr(args["lut"], "lut", None) or read_cube(args["lut"])
        )
    return replace(cur, **kw)


def _free_card_id(state) -> str:
    used = set(_card_ids(state))
    n = 1
    while f"card-{n}" in used:
        n += 1
    return f"card-{n}"


_CC_ARGS = tuple(
    _field(ColorCorrection, k)
    for k in ("exposure", "temperature", "tint", "gains", "slope", "offset", "power", "saturation")
) + (
    _arg(
        "lut",
        "path | null",
        ".cube 3D LUT file inside console.paths.luts, relative to the stage file; null removes the LUT",
        _v_lut,
        osc="path",
    ),
)

# --------------------------------------------------------------------------------------------- handlers


def _h_nothing(state, args: dict):
    return state, {}


def _h_content(state, args: dict):
    return replace(state, content=args["content"]), {"content": args["content"]}


def _h_camera(state, args: dict):
    cam = state.camera(args["camera"])
    kw: dict[str, Any] = {}
    for k in ("tracking", "delay_frames", "soft_edge", "freeze"):
        if k in args:
            kw[k] = args[k]
    if "overscan_percent" in args:
        kw["overscan_percent"] = tuple(args["overscan_percent"])
    if "smoothing" in args:
        kw["smoothing"] = smoothing_of(args["smoothing"])
    new = replace(cam, **kw)
    return state.with_camera(args["camera"], new), {"camera": args["camera"], **new.to_json()}


def _h_chroma(state, args: dict):
    f = state.features
    key = f.chroma_key or ChromaKey(enabled=False)
    if "enabled" in args:
        key = replace(key, enabled=args["enabled"])
    if "color" in args:
        key = replace(key, color=value_of(ChromaKey, "color").to_model(tuple(args["color"])))
    return replace(state, features=replace(f, chroma_key=key)), {}


def _h_card_add(state, args: dict):
    f = state.features
    cid = args.get("id") or _free_card_id(state)
    if cid in _card_ids(state):
        raise CommandError(f"card.add: id: light card {cid!r} exists already")
    if len(f.light_cards) >= MAX_CARDS:
        raise CommandError(f"card.add: at most {MAX_CARDS} light cards are drawn; remove one first")
    card = _new_card(cid, args)
    return replace(state, features=f.with_card(card)), {"id": cid}


def _new_card(cid: str, args: dict) -> LightCard:
    return LightCard(cid, **{k: tuple(v) if isinstance(v, list) else v for k, v in args.items() if k != "id"})


def _h_card_edit(state, args: dict):
    card = _card_edit(state, args)
    return replace(state, features=state.features.with_card(card)), {"id": card.id, "rect": list(card.rect)}


def _h_card_remove(state, args: dict):
    cid = _card(state, args["id"]).id
    return replace(state, features=state.features.without_card(cid)), {"id": cid}


def _h_color_set(state, args: dict):
    f = state.features
    cc = _merged_cc(state, args)
    t = args["target"]
    new = state
    if "lut" in args:
        new = new.with_lut_path(t, None if args["lut"] is None else str(args["lut"]))
    feats = replace(f, inner_color=cc) if t == "inner" else f.with_wall_color(t, cc)
    return replace(new, features=feats), {"target": t}


def _h_color_reset(state, args: dict):
    f = state.features
    t = args["target"]
    feats = replace(f, inner_color=None) if t == "inner" else f.with_wall_color(t, None)
    return replace(state.with_lut_path(t, None), features=feats), {"target": t}


def _h_pattern(state, args: dict):
    p = OutputPattern(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items() if k != "output"})
    return replace(state, features=state.features.with_pattern(args["output"], p)), {"output": args["output"]}


def _h_blackout(state, args: dict):
    f = state.features
    o, on = args["output"], args["on"]
    if o == "all":
        if on:
            return replace(state, blackout_all=True), {}
        return replace(state, blackout_all=False, features=replace(f, blackout=frozenset())), {}
    b = set(f.blackout)
    (b.add if on else b.discard)(o)
    return replace(state, features=replace(f, blackout=frozenset(b))), {}


def _switched_off(state, args: dict, names: str, result: str):
    """An A/B switch: the ``target`` keys taken out of (``on``) or put into the feature set ``names`` of what
    is shown without (``uncalibrated``, ``looks_off``); the result names them under ``result``."""
    f = state.features
    keys = set(args["target"])
    now = getattr(f, names)
    off = (now - keys) if args["on"] else (now | keys)
    return replace(state, features=replace(f, **{names: frozenset(off)})), {result: sorted(keys), "on": args["on"]}


def _h_calibration(state, args: dict):
    return _switched_off(state, args, "uncalibrated", "outputs")


def _h_look(state, args: dict):
    return _switched_off(state, args, "looks_off", "looks")


def _h_patches(state, args: dict):
    return state, {"output": str(args["output"]), "action": args["action"]}


def _h_inner(state, args: dict):
    return replace(state, inner_enabled=args["enabled"]), {}


#: the slate arguments of record.start, in the order a slate shows them
SLATE_ARGS = ("scene", "take", "roll", "camera", "notes")


def slate_of(args: Mapping) -> dict:
    """The slate of record.start's normalised arguments: ``{"scene", "take", "roll", "camera", "notes"}``,
    the ones given (``take`` always: auto-incremented when not given)."""
    return {k: args[k] for k in SLATE_ARGS if args.get(k) is not None}


def _h_record_start(state, args: dict):
    if state.recording is not None:
        raise CommandError(f"record.start: a take is being recorded already ({state.recording})")
    return replace(state, recording=args["path"]), {"path": args["path"], "slate": slate_of(args)}


def _h_record_stop(state, args: dict):
    if state.recording is None:
        raise CommandError("record.stop: no take is being recorded")
    return replace(state, recording=None), {"path": state.recording}


def _h_record_follow(state, args: dict):
    return state, {"follow": args["source"]}


def apply(state, name: str, args: dict):
    """``(new_state, result)`` of a validated command (:func:`validate`'s output) on ``state``: the command's
    handler.

    Read-only commands return the state unchanged. Raises :class:`CommandError` only when ``state`` no longer
    allows the command (validated against an older state)."""
    spec = COMMANDS.get(name) if isinstance(name, str) else None
    if spec is None or spec.handler is None:
        raise CommandError(f"unknown command {_show(name)}; commands: {', '.join(COMMANDS)}")
    try:
        return spec.handler(state, args)
    except (_ArgError, FeatureError) as exc:
        raise CommandError(f"{name}: {exc}") from None


# --------------------------------------------------------------------------------------------- the commands

_BOOL = lambda v, s, st, o: _bool(v)
#: camera.set smoothing, from the declarations of its parts (stagectl.core.camera_settings.SMOOTHING)
_SMOOTHING_TYPE = '"off" | {' + ", ".join(name + ("" if d is None else "?") for name, _, d in SMOOTHING) + "}"
_SMOOTHING_HELP = "One Euro smoothing of position and rotation: " + ", ".join(
    f"{val.help} ({', '.join(x for x in (val.unit, val.range_text()) if x)}"
    + ("" if d is None else f", default {d:g}")
    + ")"
    for _, val, d in SMOOTHING
)
_CARD_ID = _arg("id", "card id", "the card", _v_id, True)
_TARGET = 'wall name | "inner"'
_RECT = value_of(LightCard, "rect")

_SPECS = (
    CommandSpec(
        "status",
        (),
        True,
        "Live status: cameras, frame rate, phase error, drops, cluster, genlock.",
        {},
        handler=_h_nothing,
        doc="Result: the `status` dict of `stagectl run` (below). Answered at once; `frame` is the last frame seen.",
    ),
    CommandSpec(
        "state",
        (),
        True,
        "The full operator state and its sequence number (a snapshot for late joiners).",
        {},
        handler=_h_nothing,
        doc='Result: `{"seq": n, "state": {...}}`, the operator state as persisted (see *Operator state*). '
        "Answered at once.",
    ),
    CommandSpec(
        "help",
        (
            _arg(
                "command",
                "text",
                "one command's name; all commands when absent",
                lambda v, s, st, o: _choice(v, list(COMMANDS), " (commands)"),
            ),
        ),
        True,
        "The command list with argument specs.",
        {"command": "card.add"},
        handler=_h_nothing,
        osc="[command]",
        osc_note="(a name or an address)",
        osc_example=("card.add",),
        doc='Result: `{"commands": [{"name", "read_only", "help", "args": [{"name", "type", "required", "help"}], '
        '"example"}]}`.',
    ),
    CommandSpec(
        "stage.reload",
        (),
        False,
        "Reload and re-validate the stage file; on an error nothing changes and the error is "
        "file:line: key: ... . The operator state is kept (re-checked against the new stage).",
        {},
        handler=_h_nothing,
        doc="The stage file is read and validated when the command arrives; an invalid file is answered at once "
        "with its first error, `stage.reload: stages/demo.yaml:16: walls[0].cabinet.pixels: expected [w, h] "
        'positive integers, got "176x176" (and 2 more)`, and nothing changes. A valid file takes effect at '
        "the next frame boundary. The operator state is kept and carried onto the new stage: cards on a wall "
        "that is gone, colour corrections of such a wall, patterns and blackouts of outputs that are gone and "
        "settings of cameras that are gone are dropped, each named in the result's `warnings`; new cameras "
        "start with the stage file's settings. `stagectl run` may still refuse the new stage when it rebuilds "
        '(its effect, below); then nothing changes. Result: `{"stage": name, "warnings": [...]}`.',
    ),
    CommandSpec(
        "content.select",
        (
            _arg(
                "content",
                "text",
                '"procedural" or a scene file inside console.paths.content, relative to the stage file',
                _v_content,
                True,
                osc="path",
            ),
        ),
        False,
        "Change the scene content (procedural world, glTF scene, 360 plate, video plate).",
        {"content": "procedural"},
        handler=_h_content,
        osc="content",
        osc_note="(`procedural` or a scene file)",
        osc_example=("scenes/forest.glb",),
        doc="The file must be inside the scene folder ([Paths](#paths)) and exist (`content.select: content: file "
        "not found: scenes/lobby.glb (looked for /stages/scenes/lobby.glb)`); `stagectl run` loads it at the "
        "frame boundary and refuses the command if it cannot (the error says why). Result: "
        '`{"content": absolute path or "procedural"}`.',
    ),
    CommandSpec(
        "camera.set",
        (
            _arg("camera", "camera name", "the camera", _v_camera, True),
            _arg("tracking", "tracking source name", value_of(CameraSettings, "tracking").help, _v_tracking),
            _field(CameraSettings, "delay_frames"),
            _arg("smoothing", _SMOOTHING_TYPE, _SMOOTHING_HELP, _v_smoothing, osc="smoothing"),
            _arg(
                "overscan_percent",
                f"number | {value_of(CameraSettings, 'overscan_percent').type_text()}",
                _help_of(value_of(CameraSettings, "overscan_percent")),
                _v_overscan,
                osc="vec",
            ),
            _field(CameraSettings, "soft_edge"),
            _field(CameraSettings, "freeze"),
        ),
        False,
        "Per-camera settings.",
        {"camera": "cam-a", "overscan_percent": 15, "freeze": False},
        needs_one_of=("tracking", "delay_frames", "smoothing", "overscan_percent", "soft_edge", "freeze"),
        handler=_h_camera,
        osc="camera ...",
        osc_example=("cam-a", "overscan_percent", 15),
        doc="Give `camera` and at least one setting; the others are kept. `overscan_percent` given as one number "
        "sets all four sides. `freeze` keeps the inner frustum's matrices and image from the frame before (the "
        "scene stops following the camera). `tracking`, `delay_frames` and `smoothing` are carried out by "
        "`stagectl run` on the camera's timeline. Result: the camera's settings after the change.",
    ),
    CommandSpec(
        "chroma.set",
        (_field(ChromaKey, "enabled"), _field(ChromaKey, "color")),
        False,
        "The chroma-key frustum.",
        {"enabled": True, "color": [0, 128, 0]},
        needs_one_of=("enabled", "color"),
        handler=_h_chroma,
        osc="enabled [color] | ...",
        osc_example=(1, 0, 128, 0),
        doc="The first `chroma.set` on a stage without a key starts from nDisplay's green `[0, 128, 0]`, disabled "
        "unless `enabled` is given. Markers are set in the stage file only.",
    ),
    CommandSpec(
        "card.add",
        (
            _arg("wall", "wall name", "the wall the card is on", _v_wall, True),
            _field(LightCard, "rect", required=True, check=_v_rect, type_="[u0, v0, u1, v1]"),
            _arg("id", "text", 'the card id; "card-N" (the lowest free N) when absent', _v_new_id),
            _field(LightCard, "color", default=True),
            _field(LightCard, "intensity", default=True),
            _field(LightCard, "layer", default=True),
            _field(LightCard, "feather_px", default=True),
        ),
        False,
        "Add a light card; the result has its id.",
        {"wall": "main", "rect": [0.05, 0.1, 0.25, 0.6], "color": [1.0, 0.9, 0.8], "intensity": 1.5},
        handler=_h_card_add,
        finish=_finish_card_add,
        osc="wall rect [color [intensity]] [layer [feather_px]] [...]",
        osc_example=("main", 0.05, 0.1, 0.25, 0.6, 1, 0.9, 0.8, 1.5, "over", 20, "id", "key"),
        doc=f"At most {MAX_CARDS} cards (`card.add: at most {MAX_CARDS} light cards are drawn; remove one first "
        f"(cards: ...)`). The rectangle may reach past the wall's edges ({_RECT.range_text()} in wall UV). "
        'Cards are drawn in the order they were added. Result: `{"id": "card-3"}`.',
    ),
    CommandSpec(
        "card.set",
        (_CARD_ID, _field(LightCard, "rect", check=_v_rect, help_="rectangle in wall UV"))
        + tuple(_field(LightCard, k) for k in ("color", "intensity", "layer", "feather_px")),
        False,
        "Change a light card.",
        {"id": "card-1", "intensity": 2.0},
        needs_one_of=("rect", "color", "intensity", "layer", "feather_px"),
        handler=_h_card_edit,
        finish=_finish_card_edit,
        osc="id ...",
        osc_example=("key", "intensity", 2.0),
        doc='Give `id` and at least one field; the others are kept. Result: `{"id", "rect"}`.',
    ),
    CommandSpec(
        "card.move",
        (
            _CARD_ID,
            _value("u", _UV, "new centre, wall UV u", True),
            _value("v", _UV, "new centre, wall UV v (down)", True),
        ),
        False,
        "Move a light card keeping its size.",
        {"id": "card-1", "u": 0.5, "v": 0.4},
        handler=_h_card_edit,
        finish=_finish_card_edit,
        osc="id u v",
        osc_note="(new centre)",
        osc_example=("key", 0.5, 0.4),
        doc='`u`, `v` is the new centre; width and height stay. Result: `{"id", "rect"}` with the new rectangle.',
    ),
    CommandSpec(
        "card.resize",
        (
            _CARD_ID,
            _value("width", _SIZE_UV, "new width, wall UV", True),
            _value("height", _SIZE_UV, "new height, wall UV", True),
        ),
        False,
        "Resize a light card about its centre.",
        {"id": "card-1", "width": 0.2, "height": 0.3},
        handler=_h_card_edit,
        finish=_finish_card_edit,
        osc="id width height",
        osc_note="(about the centre)",
        osc_example=("key", 0.2, 0.3),
        doc='The centre stays. Result: `{"id", "rect"}`.',
    ),
    CommandSpec(
        "card.remove",
        (_CARD_ID,),
        False,
        "Remove a light card.",
        {"id": "card-1"},
        handler=_h_card_remove,
        osc="id",
        osc_example=("key",),
        doc='Result: `{"id"}`.',
    ),
    CommandSpec(
        "color.set",
        (_arg("target", _TARGET, "which image to correct", _v_target, True),) + _CC_ARGS,
        False,
        "Colour correction of a wall's outer image or of the inner frusta, merged into the current "
        "one (exposure, white balance, ASC CDL, 3D LUT, in that order).",
        {"target": "main", "exposure": 0.5, "temperature": 5600},
        needs_one_of=tuple(a.name for a in _CC_ARGS),
        handler=_h_color_set,
        finish=_finish_color_set,
        osc="target ...",
        osc_note="(target: a wall or `inner`)",
        osc_example=("main", "exposure", 0.5, "temperature", 5600),
        doc="The values given replace those of the target's current correction; the others are kept (a target "
        "without one starts from the identity). White balance is either `gains` or `temperature` (+ `tint`): "
        "giving one clears the other; giving both in one command is an error. `null` for `gains`, "
        "`temperature` or `lut` removes it. The LUT file must be inside the LUT folder ([Paths](#paths)); it "
        "is read when the command arrives (its own errors come back as `color.set: lut: luts/show.cube:12: "
        "expected a data line of three numbers, got '1 x 0'`), so the frame loop never reads files. Order of "
        "the chain: exposure, white balance, CDL, LUT.",
    ),
    CommandSpec(
        "color.reset",
        (_arg("target", _TARGET, "which correction to remove", _v_target, True),),
        False,
        "Remove a colour correction.",
        {"target": "main"},
        handler=_h_color_reset,
        finish=_finish_color_reset,
        osc="target",
        osc_example=("main",),
        doc="Removes the whole correction of the target (`color.reset: target: 'ceiling' has no colour correction` "
        "when there is none).",
    ),
    CommandSpec(
        "color.calibration",
        (
            _arg(
                "target",
                'processor/output | wall name | "all" | [...]',
                "the calibrated output, every calibrated output showing that wall, all of them, or a list of these",
                _v_calibration_target,
                True,
            ),
            _arg(
                "on",
                "bool",
                "show the calibration (true) or the output's uncalibrated signal (false), for A/B on camera",
                _BOOL,
                True,
                osc="bool",
            ),
        ),
        False,
        "Switch outputs' colour calibration on or off (A/B on camera).",
        {"target": "main", "on": False},
        handler=_h_calibration,
        osc="[target=all] on",
        osc_note="(no target: `all`)",
        osc_example=("tessera-a/out1", 0),
        doc="The calibrations are the stage file's (`colour:` `outputs.<key>.calibration` or "
        "`walls.<wall>.calibration`, [colour.md](colour.md)); every calibrated output starts with its calibration "
        "on. Off, the output shows the signal it would have without one (its own transfer or display/view). The "
        "switch takes effect at the frame boundary of the acknowledged frame, on the cluster's nodes on the same "
        "frame; both programs of each calibrated output are built when it opens, so a switch never stalls the "
        "frame loop. It is kept in the operator state (restored at a restart) and shown in the status "
        "(`outputs.<key>.calibration`: `on` / `off`). An output without a calibration is refused (`color."
        "calibration: target: output 'p/out2' has no calibration; calibrated outputs: p/out1`). Result: "
        '`{"outputs": [keys switched], "on"}`.',
    ),
    CommandSpec(
        "color.look",
        (
            _arg(
                "target",
                'wall | camera | "wall:<name>" | "camera:<name>" | "all" | [...]',
                "the wall (its outer image) or camera (its inner frustum) whose look to switch, all of them, or a "
                "list of these",
                _v_look_target,
                True,
            ),
            _arg("on", "bool", "show the look (true) or the image without it (false), for A/B on camera", _BOOL,
                 True, osc="bool"),
        ),
        False,
        "Switch walls' and cameras' OpenColorIO looks on or off (A/B on camera).",
        {"target": "main", "on": False},
        handler=_h_look,
        osc="[target=all] on",
        osc_note="(no target: `all`)",
        osc_example=("cam-a", 0),
        doc="The looks are the stage file's (`colour:` `walls.<wall>.look`, `cameras.<camera>.look`, "
        "[colour.md](colour.md)); every look starts on. Off, the wall's outer image or the camera's inner frustum "
        "shows the operator's grade alone (still in the entry's working space). A name that is both a wall and a "
        "camera with a look must say which (`wall:main`). The switch takes effect at the frame boundary of the "
        "acknowledged frame, on the cluster's nodes on the same frame; it is a new grade function, so the "
        "composite programs that run it are built as for a grade change (kept: switching back builds nothing). "
        "It is kept in the operator state (restored at a restart; dropped with a warning when the stage no longer "
        "has the look). A wall or camera without a look is refused (`color.look: target: wall 'ceiling' has no "
        'look; looks: camera:cam-a, wall:main`). Result: `{"looks": [keys switched], "on"}`.',
    ),
    CommandSpec(
        "color.patches",
        (
            _arg("output", "processor/output", "the output (wall feed) to play the calibration patches on", _v_output,
                 True),
            _arg("action", "start | stop", "start the sequence on the acknowledged frame, or stop it",
                 lambda v, s, st, o: _choice(v, ("start", "stop")), True, choices=("start", "stop")),
            *(_value(n, Value("whole", lo=lo, hi=hi, unit="frames" if n != "ramp_steps" else ""),
                     f"{h} (default {d})")
              for (n, lo, hi, d), h in zip(_PATCH_COUNTS, ("wall frames each patch is held",
                                                          "wall frames of each slate",
                                                          "EOTF ramp steps, 0 .. peak in signal"))),
            _arg("calibration", "bool", "play the patches through the output's colour calibration (true: to verify "
                 "it) or as measured (false, the default)", _BOOL, osc="bool"),
        ),
        False,
        "Play stagectl calibrate colour's patch sequence on an output, frame-accurately.",
        {"output": "tessera-a/out1", "action": "start", "frames_per_patch": 10},
        handler=_h_patches,
        finish=_finish_patches,
        osc="output action [...]",
        osc_example=("tessera-a/out1", "start", "frames_per_patch", 10),
        doc="Shows the output's patch sequence ([colour.md](colour.md), *Calibrating a wall in camera*; the same "
        "images as `stagectl calibrate colour --patches` writes with these arguments): stage frame F + k shows "
        "wall frame k, from the acknowledged frame F (the stage's frame counter, not wall-clock time) to the end "
        "slate, then the normal composition again; `stop` ends it at once. The output's canvas gets the "
        "sequence's codes exactly (no grade, OCIO encode, blending or scaling; the rest of the canvas black); "
        "other outputs render as before. `calibration: true` plays the measured patches through the output's "
        "calibration (to film and solve again: verification). Refused: an output the calibration cannot take "
        "(`color.patches: output p/out1 is encoded by display/view ...`, an HLG output, a stage without a "
        "`colour:` section), `calibration: true` on an output without one. The status shows the playback "
        "(`outputs.<key>.patches`: `frame` k, `frames` N, `patch`, `first_frame`, `calibration`). A blacked-out "
        "output stays black while the counter runs on; a `stage.reload` stops the playback; the render nodes of "
        "a cluster play it on their outputs from the same frame F. Result: "
        '`{"output", "action", "first_frame", "frames", "last_frame"}` (start) or `{"output", "action", '
        '"stopped": true | false}` (stop).',
    ),
    CommandSpec(
        "pattern.set",
        (
            _arg("output", "processor/output", "the output", _v_output, True),
            _field(OutputPattern, "kind", required=True),
            _field(OutputPattern, "color", default=True),
            _field(OutputPattern, "squares", default=True),
            _field(OutputPattern, "burn_in"),
        ),
        False,
        "Per-output test pattern.",
        {"output": "tessera-a/out1", "kind": "checkerboard", "burn_in": ["frame"]},
        handler=_h_pattern,
        osc="output kind [color | squares] burn_in*",
        osc_example=("tessera-a/out1", "checkerboard", 4, "frame"),
        doc="`kind: none` removes the output's pattern. `white_flash` shows white for exactly one frame, then the "
        "normal composition.",
    ),
    CommandSpec(
        "output.blackout",
        (
            _arg("output", 'processor/output | "all"', "the output, or all outputs", _v_output_or_all, True),
            _arg(
                "on",
                "bool",
                "black (true) or showing (false); all + false clears every blackout",
                _BOOL,
                True,
                osc="bool",
            ),
        ),
        False,
        "Blackout of one output or of all.",
        {"output": "all", "on": True},
        handler=_h_blackout,
        osc="[output=all] on",
        osc_note="(no output: `all`)",
        osc_example=("tessera-a/out2", 1),
        doc="One output: adds or removes it from the blacked-out outputs. `all` with `on: true` blacks out every "
        "output (on top of the per-output blackouts); `all` with `on: false` clears every blackout.",
    ),
    CommandSpec(
        "inner.set",
        (_arg("enabled", "bool", "composite the inner frusta", _BOOL, True, osc="bool"),),
        False,
        "Inner frusta on or off.",
        {"enabled": False},
        handler=_h_inner,
        osc="enabled",
        osc_example=(0,),
        doc="Off: the whole wall shows the outer image (no inner frustum is composited).",
    ),
    CommandSpec(
        "record.start",
        (
            _arg(
                "path",
                "path",
                "take file inside console.paths.takes, relative to the stage file; default "
                "<takes folder>/<date>/<scene>_T<take>[_<roll>].stgtake with a scene, else "
                "<takes folder>/<stage>-<UTC>Z.stgtake",
                _v_record_path,
                osc="path",
            ),
            _arg("scene", "text, 1..32 characters", "slate: the scene", _slate_text(32)),
            _arg(
                "take",
                "whole number 1..9999",
                "slate: the take; default 1 + the highest take of the scene in the take folder",
                _v_take_number,
                osc="int",
            ),
            _arg("roll", "text, 1..32 characters", "slate: the camera roll (tape name)", _slate_text(32)),
            _arg("camera", "text, 1..8 characters", "slate: the camera letter (A, B, ...)", _slate_text(8)),
            _arg("notes", "text, 1..500 characters", "slate: notes for editorial", _slate_text(500)),
            _arg(
                "drop_frame",
                "bool",
                "label the take's frames drop-frame (29.97 and 59.94 fps only; default false)",
                _BOOL,
                osc="bool",
            ),
        ),
        False,
        "Start recording a take: the tracking, the camera rendered at every frame, the slate.",
        {"scene": "12A", "roll": "A001", "camera": "A", "notes": "dolly in"},
        handler=_h_record_start,
        finish=_finish_record_start,
        osc="[path]",
        osc_note="(the slate: the keyed form)",
        osc_example=("takes/scene12.stgtake",),
        doc="Records the tracking of every source, the camera the stage renders at every frame and the take's "
        "header (slate, stage file and lens files with their SHA-256, the operator state, the frame rate, the "
        "start timecode and a clock anchor; [takes.md](takes.md)) into a take (`stagectl replay` plays it "
        "back, `stagectl export` hands it to post). The slate: `scene`, `take`, `roll`, `camera`, `notes`; "
        "`take` left out is 1 + the highest take of that scene among the takes in the take folder (and its "
        "sub-folders). Without `path` the take is `<date>/<scene>_T<take>_<roll>.stgtake` in the take folder "
        "(`takes/` next to the stage file unless `console.paths.takes` says otherwise; the date is the local "
        "day), or `<stage stem>-<UTC>Z.stgtake` there when no scene is given. The file must be inside the take "
        "folder ([Paths](#paths)) and must not exist yet; missing folders inside the take folder are made. One "
        "take at a time (`record.start: a take is being recorded already (...); record.stop first`). Result: "
        '`{"path", "slate", "timecode_in"}` (absolute path; `timecode_in` the first frame\'s label at the stage '
        "rate, the time of day).",
    ),
    CommandSpec(
        "record.stop",
        (),
        False,
        "Stop recording; the result is the take's summary.",
        {},
        handler=_h_record_stop,
        finish=_finish_record_stop,
        doc='Result: `{"path", "slate", "frames", "timecode_in", "timecode_out", "records", "seconds"}` of the '
        "take (`timecode_out` is the last frame's label, inclusive). `record.stop: no take is being recorded` "
        "when none is.",
    ),
    CommandSpec(
        "record.follow",
        (
            _arg(
                "source",
                'OpenTrackIO tracking source | "off"',
                "the source whose tracker.recording starts and stops takes; \"off\" (or null): stop following",
                _v_follow_source,
                True,
            ),
        ),
        False,
        "Follow an OpenTrackIO tracker's recording flag and slate (start and stop takes with it), or stop.",
        {"source": "off"},
        handler=_h_record_follow,
        osc="source",
        osc_example=("off",),
        doc="While following, a take starts when the source's `tracker.recording` turns true (its slate from "
        "`tracker.slate`, [takes.md](takes.md#slated-takes)) and stops when it turns false, asked as "
        "`tracker:<source>`; `record.start` / `record.stop` still work. What `stagectl run --follow-recording "
        "SOURCE` sets at start, changed while running; another source replaces the one followed, and a tracker "
        "already recording when followed starts a take. Stopping to follow leaves a take being recorded "
        'running. Result: `{"follow"}`, the source followed now (null: none); `status` shows it as '
        "`recording.follow`.",
    ),
)

#: name -> spec, in the order of docs/console.md
COMMANDS: dict[str, CommandSpec] = {s.name: s for s in _SPECS}
#: the write groups an OSC ``allow`` entry may name (the first dotted part of every mutating command)
GROUPS = CONSOLE_GROUPS
assert set(GROUPS) == {s.group for s in _SPECS if not s.read_only}


def group_of(name: str) -> str:
    return name.split(".", 1)[0]


def is_read_only(name: str) -> bool:
    spec = COMMANDS.get(name)
    return spec is not None and spec.read_only


def spec_json(name: str | None = None) -> dict:
    """The ``help`` command's result: every command's spec, or one."""
    if name is None:
        return {"commands": [s.to_json() for s in _SPECS]}
    return {"commands": [COMMANDS[name].to_json()]}
