"""The operator command set: specs, validation and the pure state transition.

A command is a lower-case dotted name plus a dict of JSON-able arguments (docs/console.md lists every one with
its units and an example). This module is pure: no sockets, no GL, no clocks.

* :data:`COMMANDS` — the registry: name -> :class:`CommandSpec` (arguments with types, ranges and units,
  ``read_only``, help text, an example).
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stagectl.errors import ConfigErrors, StageError
from stagectl.render.features import (
    BURN_IN_FIELDS,
    LAYERS,
    MAX_CARDS,
    PATTERN_KINDS,
    ChromaKey,
    ColorCorrection,
    FeatureError,
    LightCard,
    Lut3D,
    OutputPattern,
    read_cube,
)
from stagectl.stage.model import CONSOLE_GROUPS
from stagectl.tracking.timeline import OneEuroParams

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
    "group_of",
    "is_read_only",
    "spec_json",
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
    :class:`~stagectl.render.features.Lut3D` read from it at validation, so the frame loop never reads
    files."""

    lut: Lut3D | None

    def __new__(cls, path: str, lut: Lut3D | None) -> LutPath:
        s = super().__new__(cls, path)
        s.lut = lut
        return s


@dataclass(frozen=True)
class ArgSpec:
    """One argument: ``name``, ``type`` (as the help shows it), ``required``, ``help`` (with units)."""

    name: str
    type: str
    required: bool
    help: str

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "required": self.required, "help": self.help}


@dataclass(frozen=True)
class CommandSpec:
    """One command: ``name``, ``args``, ``read_only`` (answers at once, changes nothing), ``help``,
    ``example`` (JSON-able arguments), ``needs_one_of``: at least one of these arguments must be given."""

    name: str
    args: tuple[ArgSpec, ...]
    read_only: bool
    help: str
    example: dict
    needs_one_of: tuple[str, ...] = ()

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


def _a(name: str, type_: str, help_: str, required: bool = False) -> ArgSpec:
    return ArgSpec(name, type_, required, help_)


_CC_ARGS = (
    _a("exposure", "number -16..16", "exposure change in stops (x 2^stops)"),
    _a(
        "temperature",
        "number 1667..25000 | null",
        "white balance colour temperature, kelvin (replaces gains)",
    ),
    _a(
        "tint", "number -100..100", "white balance tint with the temperature (positive: magenta), Duv x -1000"
    ),
    _a("gains", "[r, g, b] >= 0 | null", "white balance as linear RGB gains (replaces temperature/tint)"),
    _a("slope", "[r, g, b] >= 0", "ASC CDL slope"),
    _a("offset", "[r, g, b] -10..10", "ASC CDL offset"),
    _a("power", "[r, g, b] > 0", "ASC CDL power"),
    _a("saturation", "number 0..100", "ASC CDL saturation (Rec. 709 luma)"),
    _a(
        "lut",
        "path | null",
        ".cube 3D LUT file inside console.paths.luts, relative to the stage file; null removes the LUT",
    ),
)

_SPECS = (
    CommandSpec(
        "status", (), True, "Live status: cameras, frame rate, phase error, drops, cluster, genlock.", {}
    ),
    CommandSpec(
        "state",
        (),
        True,
        "The full operator state and its sequence number (a snapshot for late joiners).",
        {},
    ),
    CommandSpec(
        "help",
        (_a("command", "text", "one command's name; all commands when absent"),),
        True,
        "The command list with argument specs.",
        {"command": "card.add"},
    ),
    CommandSpec(
        "stage.reload",
        (),
        False,
        "Reload and re-validate the stage file; on an error nothing changes and the error is "
        "file:line: key: ... . The operator state is kept (re-checked against the new stage).",
        {},
    ),
    CommandSpec(
        "content.select",
        (
            _a(
                "content",
                "text",
                '"procedural" or a scene file inside console.paths.content, relative to the stage file',
                True,
            ),
        ),
        False,
        "Change the scene content (procedural world, glTF scene, 360 plate, video plate).",
        {"content": "procedural"},
    ),
    CommandSpec(
        "camera.set",
        (
            _a("camera", "camera name", "the camera", True),
            _a("tracking", "tracking source name", "the tracking source driving the camera"),
            _a("delay_frames", "number 0..30", "tracking delay, frames (fractional allowed)"),
            _a(
                "smoothing",
                '"off" | {min_cutoff_hz, beta, d_cutoff_hz?}',
                "One Euro smoothing of position and rotation: cutoff at rest (Hz, > 0), speed coefficient "
                "(>= 0), "
                "speed cutoff (Hz, default 1)",
            ),
            _a(
                "overscan_percent",
                "number | [l, r, b, t], 0..100",
                "inner frustum overscan per side, percent",
            ),
            _a(
                "soft_edge",
                "number 0..0.5",
                "fraction of the inner frustum's half-size blended at its border",
            ),
            _a("freeze", "bool", "keep the inner frustum (matrices and image) where it is"),
        ),
        False,
        "Per-camera settings.",
        {"camera": "cam-a", "overscan_percent": 15, "freeze": False},
        needs_one_of=("tracking", "delay_frames", "smoothing", "overscan_percent", "soft_edge", "freeze"),
    ),
    CommandSpec(
        "chroma.set",
        (
            _a("enabled", "bool", "fill the inner frusta with the key colour"),
            _a("color", "[r, g, b] 0..255", "key colour, 8-bit sRGB codes"),
        ),
        False,
        "The chroma-key frustum.",
        {"enabled": True, "color": [0, 128, 0]},
        needs_one_of=("enabled", "color"),
    ),
    CommandSpec(
        "card.add",
        (
            _a("wall", "wall name", "the wall the card is on", True),
            _a(
                "rect",
                "[u0, v0, u1, v1]",
                "rectangle in wall UV (origin top-left, v down), u0 < u1, v0 < v1",
                True,
            ),
            _a("id", "text", 'the card id; "card-N" (the lowest free N) when absent'),
            _a("color", "[r, g, b] 0..1000", "linear-light RGB (default white)"),
            _a("intensity", "number 0..1000", "multiplier of the colour (default 1)"),
            _a("layer", "over | under", "over (default) or under the inner frustum"),
            _a(
                "feather_px",
                "number 0..100000",
                "soft border inside the rectangle, wall raster pixels (default 0)",
            ),
        ),
        False,
        "Add a light card; the result has its id.",
        {"wall": "main", "rect": [0.05, 0.1, 0.25, 0.6], "color": [1.0, 0.9, 0.8], "intensity": 1.5},
    ),
    CommandSpec(
        "card.set",
        (
            _a("id", "card id", "the card", True),
            _a("rect", "[u0, v0, u1, v1]", "rectangle in wall UV"),
            _a("color", "[r, g, b] 0..1000", "linear-light RGB"),
            _a("intensity", "number 0..1000", "multiplier of the colour"),
            _a("layer", "over | under", "over or under the inner frustum"),
            _a("feather_px", "number 0..100000", "soft border, wall raster pixels"),
        ),
        False,
        "Change a light card.",
        {"id": "card-1", "intensity": 2.0},
        needs_one_of=("rect", "color", "intensity", "layer", "feather_px"),
    ),
    CommandSpec(
        "card.move",
        (
            _a("id", "card id", "the card", True),
            _a("u", "number -10..10", "new centre, wall UV u", True),
            _a("v", "number -10..10", "new centre, wall UV v (down)", True),
        ),
        False,
        "Move a light card keeping its size.",
        {"id": "card-1", "u": 0.5, "v": 0.4},
    ),
    CommandSpec(
        "card.resize",
        (
            _a("id", "card id", "the card", True),
            _a("width", "number 0..20 (> 0)", "new width, wall UV", True),
            _a("height", "number 0..20 (> 0)", "new height, wall UV", True),
        ),
        False,
        "Resize a light card about its centre.",
        {"id": "card-1", "width": 0.2, "height": 0.3},
    ),
    CommandSpec(
        "card.remove",
        (_a("id", "card id", "the card", True),),
        False,
        "Remove a light card.",
        {"id": "card-1"},
    ),
    CommandSpec(
        "color.set",
        (_a("target", 'wall name | "inner"', "which image to correct", True),) + _CC_ARGS,
        False,
        "Colour correction of a wall's outer image or of the inner frusta, merged into the current "
        "one (exposure, white balance, ASC CDL, 3D LUT, in that order).",
        {"target": "main", "exposure": 0.5, "temperature": 5600},
        needs_one_of=tuple(a.name for a in _CC_ARGS),
    ),
    CommandSpec(
        "color.reset",
        (_a("target", 'wall name | "inner"', "which correction to remove", True),),
        False,
        "Remove a colour correction.",
        {"target": "main"},
    ),
    CommandSpec(
        "pattern.set",
        (
            _a("output", "processor/output", "the output", True),
            _a("kind", " | ".join(PATTERN_KINDS), "the test pattern (none: the normal composition)", True),
            _a("color", "[r, g, b] 0..1000", "linear-light RGB of the solid pattern (default white)"),
            _a("squares", "whole number 1..64", "checkerboard squares per cabinet side (default 1)"),
            _a(
                "burn_in", "list of frame, timecode", "burn-in drawn in the top-left cabinet of every mapping"
            ),
        ),
        False,
        "Per-output test pattern.",
        {"output": "tessera-a/out1", "kind": "checkerboard", "burn_in": ["frame"]},
    ),
    CommandSpec(
        "output.blackout",
        (
            _a("output", 'processor/output | "all"', "the output, or all outputs", True),
            _a("on", "bool", "black (true) or showing (false); all + false clears every blackout", True),
        ),
        False,
        "Blackout of one output or of all.",
        {"output": "all", "on": True},
    ),
    CommandSpec(
        "inner.set",
        (_a("enabled", "bool", "composite the inner frusta", True),),
        False,
        "Inner frusta on or off.",
        {"enabled": False},
    ),
    CommandSpec(
        "record.start",
        (
            _a(
                "path",
                "path",
                "take file inside console.paths.takes, relative to the stage file; default "
                "<takes folder>/<stage>-<UTC>.stgtake",
            ),
        ),
        False,
        "Start recording tracking (a take).",
        {"path": "takes/scene12.stgtake"},
    ),
    CommandSpec("record.stop", (), False, "Stop recording.", {}),
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


# --------------------------------------------------------------------------------------------- value checks


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    try:
        return json.dumps(v, allow_nan=True)
    except (TypeError, ValueError):
        return repr(v)


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


# --------------------------------------------------------------------------------------------- validate


_Checker = Callable[[Any, Any, Any, dict], Any]


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
            out[a.name] = _CHECKS[name][a.name](args[a.name], stage, state, out)
        current = ""
        _FINISH.get(name, lambda s, st, o: None)(stage, state, out)
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
    what = '"off" or {"min_cutoff_hz": Hz > 0, "beta": >= 0, "d_cutoff_hz": Hz > 0 (optional)}'
    if v == "off" or v is None:
        return "off"
    if (
        not isinstance(v, Mapping)
        or "min_cutoff_hz" not in v
        or set(v) - {"min_cutoff_hz", "beta", "d_cutoff_hz"}
    ):
        raise _ArgError(f"expected {what}, got {_show(v)}")
    try:
        return {
            "min_cutoff_hz": _num(v["min_cutoff_hz"], 0.0, 1000.0, lo_open=True),
            "beta": _num(v.get("beta", 0.0), 0.0, 1000.0),
            "d_cutoff_hz": _num(v.get("d_cutoff_hz", 1.0), 0.0, 1000.0, lo_open=True),
        }
    except _ArgError:
        raise _ArgError(f"expected {what}, got {_show(v)}") from None


def _v_overscan(v, stage, state, out):
    what = "a percentage 0..100 or [left, right, bottom, top] each 0..100"
    if isinstance(v, (list, tuple)):
        return list(_vec(v, 4, 0.0, 100.0, what))
    return [_num(v, 0.0, 100.0, what=what)] * 4


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


def _v_burn_in(v, stage, state, out):
    items = [v] if isinstance(v, str) else v
    what = f"a list of {', '.join(BURN_IN_FIELDS)}"
    if not isinstance(items, (list, tuple)) or any(x not in BURN_IN_FIELDS for x in items):
        raise _ArgError(f"expected {what}, got {_show(v)}")
    return [f for f in BURN_IN_FIELDS if f in items]


def _v_squares(v, stage, state, out):
    n = _num(v, 1.0, 64.0, what="a whole number 1..64")
    if n != int(n):
        raise _ArgError(f"expected a whole number 1..64, got {_show(v)}")
    return int(n)


def _v_content(v, stage, state, out):
    if v == "procedural":
        return v
    return str(_file(stage, v, "content"))


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


_LIN3 = lambda v, s, st, o: list(_vec(v, 3, 0.0, 1000.0, "[r, g, b] linear-light values 0..1000"))  # noqa: E731
_CODES = lambda v, s, st, o: list(_vec(v, 3, 0.0, 255.0, "[r, g, b] 8-bit sRGB codes, each 0..255"))  # noqa: E731
_BOOL = lambda v, s, st, o: _bool(v)  # noqa: E731


def _nullable(check):
    return lambda v, s, st, o: None if v is None else check(v, s, st, o)


_CHECKS: dict[str, dict[str, _Checker]] = {
    "status": {},
    "state": {},
    "help": {"command": lambda v, s, st, o: _choice(v, list(COMMANDS), " (commands)")},
    "stage.reload": {},
    "content.select": {"content": _v_content},
    "camera.set": {
        "camera": _v_camera,
        "tracking": _v_tracking,
        "delay_frames": lambda v, s, st, o: _num(v, 0.0, 30.0),
        "smoothing": _v_smoothing,
        "overscan_percent": _v_overscan,
        "soft_edge": lambda v, s, st, o: _num(v, 0.0, 0.5),
        "freeze": _BOOL,
    },
    "chroma.set": {"enabled": _BOOL, "color": _CODES},
    "card.add": {
        "wall": _v_wall,
        "rect": lambda v, s, st, o: list(_rect(v)),
        "id": _v_new_id,
        "color": _LIN3,
        "intensity": lambda v, s, st, o: _num(v, 0.0, 1000.0),
        "layer": lambda v, s, st, o: _choice(v, LAYERS),
        "feather_px": lambda v, s, st, o: _num(v, 0.0, 100000.0),
    },
    "card.set": {
        "id": _v_id,
        "rect": lambda v, s, st, o: list(_rect(v)),
        "color": _LIN3,
        "intensity": lambda v, s, st, o: _num(v, 0.0, 1000.0),
        "layer": lambda v, s, st, o: _choice(v, LAYERS),
        "feather_px": lambda v, s, st, o: _num(v, 0.0, 100000.0),
    },
    "card.move": {
        "id": _v_id,
        "u": lambda v, s, st, o: _num(v, -10.0, 10.0),
        "v": lambda v, s, st, o: _num(v, -10.0, 10.0),
    },
    "card.resize": {
        "id": _v_id,
        "width": lambda v, s, st, o: _num(v, 0.0, 20.0, lo_open=True),
        "height": lambda v, s, st, o: _num(v, 0.0, 20.0, lo_open=True),
    },
    "card.remove": {"id": _v_id},
    "color.set": {
        "target": _v_target,
        "exposure": lambda v, s, st, o: _num(v, -16.0, 16.0),
        "temperature": _nullable(lambda v, s, st, o: _num(v, 1667.0, 25000.0)),
        "tint": lambda v, s, st, o: _num(v, -100.0, 100.0),
        "gains": _nullable(lambda v, s, st, o: list(_vec(v, 3, 0.0, 100.0, "[r, g, b] linear gains 0..100"))),
        "slope": lambda v, s, st, o: list(_vec(v, 3, 0.0, 100.0, "[r, g, b] slope, each 0..100")),
        "offset": lambda v, s, st, o: list(_vec(v, 3, -10.0, 10.0, "[r, g, b] offset, each -10..10")),
        "power": lambda v, s, st, o: list(
            _vec(v, 3, 0.0, 100.0, "[r, g, b] power, each > 0 and <= 100", lo_open=True)
        ),
        "saturation": lambda v, s, st, o: _num(v, 0.0, 100.0),
        "lut": _v_lut,
    },
    "color.reset": {"target": _v_target},
    "pattern.set": {
        "output": _v_output,
        "kind": lambda v, s, st, o: _choice(v, PATTERN_KINDS),
        "color": _LIN3,
        "squares": _v_squares,
        "burn_in": _v_burn_in,
    },
    "output.blackout": {"output": _v_output_or_all, "on": _BOOL},
    "inner.set": {"enabled": _BOOL},
    "record.start": {"path": _v_record_path},
    "record.stop": {},
}


def _finish_card_add(stage, state, out) -> None:
    if len(state.features.light_cards) >= MAX_CARDS:
        raise _ArgError(
            f"at most {MAX_CARDS} light cards are drawn; remove one first (cards: {_names(_card_ids(state))})"
        )
    LightCard(
        out.get("id", "new"),
        out["wall"],
        out["rect"],
        out.get("color", (1.0, 1.0, 1.0)),
        out.get("intensity", 1.0),
        out.get("layer", "over"),
        out.get("feather_px", 0.0),
    )


def _finish_card_set(stage, state, out) -> None:
    _card_edit(state, out)


def _finish_card_move(stage, state, out) -> None:
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
    if "path" not in out:
        from stagectl.console.state import utc_stamp

        stem = Path(stage.path).stem
        out["path"] = str(folder_of(stage, "takes") / f"{stem}-{utc_stamp()[:15]}Z.stgtake")


def _finish_record_stop(stage, state, out) -> None:
    if state.recording is None:
        raise _ArgError("no take is being recorded")


_FINISH: dict[str, Callable[[Any, Any, dict], None]] = {
    "card.add": _finish_card_add,
    "card.set": _finish_card_set,
    "card.move": _finish_card_move,
    "card.resize": _finish_card_move,
    "color.set": _finish_color_set,
    "color.reset": _finish_color_reset,
    "record.start": _finish_record_start,
    "record.stop": _finish_record_stop,
}


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


def apply(state, name: str, args: dict):
    """``(new_state, result)`` of a validated command (:func:`validate`'s output) on ``state``.

    Read-only commands return the state unchanged. Raises :class:`CommandError` only when ``state`` no longer
    allows the command (validated against an older state)."""
    f = state.features
    try:
        if name in ("status", "state", "help", "stage.reload"):
            return state, {}
        if name == "content.select":
            return replace(state, content=args["content"]), {"content": args["content"]}
        if name == "camera.set":
            cam = state.camera(args["camera"])
            kw: dict[str, Any] = {}
            for k in ("tracking", "delay_frames", "soft_edge", "freeze"):
                if k in args:
                    kw[k] = args[k]
            if "overscan_percent" in args:
                kw["overscan_percent"] = tuple(args["overscan_percent"])
            if "smoothing" in args:
                sm = args["smoothing"]
                kw["smoothing"] = (
                    None if sm == "off" else OneEuroParams(sm["min_cutoff_hz"], sm["beta"], sm["d_cutoff_hz"])
                )
            new = replace(cam, **kw)
            return state.with_camera(args["camera"], new), {"camera": args["camera"], **new.to_json()}
        if name == "chroma.set":
            key = f.chroma_key or ChromaKey(enabled=False)
            if "enabled" in args:
                key = replace(key, enabled=args["enabled"])
            if "color" in args:
                key = replace(key, color=tuple(c / 255.0 for c in args["color"]))
            return replace(state, features=replace(f, chroma_key=key)), {}
        if name == "card.add":
            cid = args.get("id") or _free_card_id(state)
            if cid in _card_ids(state):
                raise CommandError(f"card.add: id: light card {cid!r} exists already")
            if len(f.light_cards) >= MAX_CARDS:
                raise CommandError(f"card.add: at most {MAX_CARDS} light cards are drawn; remove one first")
            card = LightCard(
                cid,
                args["wall"],
                tuple(args["rect"]),
                tuple(args.get("color", (1.0, 1.0, 1.0))),
                args.get("intensity", 1.0),
                args.get("layer", "over"),
                args.get("feather_px", 0.0),
            )
            return replace(state, features=f.with_card(card)), {"id": cid}
        if name in ("card.set", "card.move", "card.resize"):
            card = _card_edit(state, args)
            return replace(state, features=f.with_card(card)), {"id": card.id, "rect": list(card.rect)}
        if name == "card.remove":
            cid = _card(state, args["id"]).id
            return replace(state, features=f.without_card(cid)), {"id": cid}
        if name == "color.set":
            cc = _merged_cc(state, args)
            t = args["target"]
            new = state
            if "lut" in args:
                new = new.with_lut_path(t, None if args["lut"] is None else str(args["lut"]))
            feats = replace(f, inner_color=cc) if t == "inner" else f.with_wall_color(t, cc)
            return replace(new, features=feats), {"target": t}
        if name == "color.reset":
            t = args["target"]
            feats = replace(f, inner_color=None) if t == "inner" else f.with_wall_color(t, None)
            return replace(state.with_lut_path(t, None), features=feats), {"target": t}
        if name == "pattern.set":
            p = OutputPattern(
                args["kind"],
                tuple(args.get("color", (1.0, 1.0, 1.0))),
                args.get("squares", 1),
                tuple(args.get("burn_in", ())),
            )
            return replace(state, features=f.with_pattern(args["output"], p)), {"output": args["output"]}
        if name == "output.blackout":
            o, on = args["output"], args["on"]
            if o == "all":
                if on:
                    return replace(state, blackout_all=True), {}
                return replace(state, blackout_all=False, features=replace(f, blackout=frozenset())), {}
            b = set(f.blackout)
            (b.add if on else b.discard)(o)
            return replace(state, features=replace(f, blackout=frozenset(b))), {}
        if name == "inner.set":
            return replace(state, inner_enabled=args["enabled"]), {}
        if name == "record.start":
            if state.recording is not None:
                raise CommandError(f"record.start: a take is being recorded already ({state.recording})")
            return replace(state, recording=args["path"]), {"path": args["path"]}
        if name == "record.stop":
            if state.recording is None:
                raise CommandError("record.stop: no take is being recorded")
            return replace(state, recording=None), {"path": state.recording}
    except _ArgError as exc:
        raise CommandError(f"{name}: {exc}") from None
    except FeatureError as exc:
        raise CommandError(f"{name}: {exc}") from None
    raise CommandError(f"unknown command {_show(name)}; commands: {', '.join(COMMANDS)}")
