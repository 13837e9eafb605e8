"""The operator state: everything an operator changed on a running stage, and its crash-safe store.

:class:`OperatorState` is immutable. It holds the stage features the frame plan draws
(:class:`~stagectl.core.features.FeatureState`: light cards, chroma key, colour corrections, patterns,
per-output blackouts, the per-camera freeze, the outputs whose colour calibration is switched off, the walls and
cameras whose OCIO look is switched off), the
per-camera settings (:class:`~stagectl.core.camera_settings.CameraSettings`, whose declarations the reader here checks
against), the global blackout, whether the inner frusta are composited, the scene content and the recording in
progress.

The initial state of a stage (:meth:`OperatorState.initial`) is what its stage file says: the ``render``
features, each camera's tracking source and that source's ``delay_frames``, the ``render.inner`` overscan and
soft edge, no smoothing, nothing frozen, the ``render.outer.content``.

JSON (:meth:`OperatorState.to_json` / :meth:`OperatorState.from_json`) is what is persisted and what clients
see. Units as the commands give them (docs/console.md): wall UV for card rectangles, linear RGB for card and
pattern colours, 8-bit sRGB codes for the chroma key and marker colours, percent for overscan, frames for
delay, Hz for smoothing cutoffs; paths are absolute.

:class:`StateStore` writes the state atomically (temporary file, ``fsync``, ``rename``, ``fsync`` of the
folder), so a crash at any moment leaves either the old or the new file, never a torn one. A file that cannot
be read is reported as ``file: key: what was expected`` and moved aside as ``<name>.bad-<UTC>``; it is never
fatal.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stagectl.core.errors import ConfigErrors, StageError
from stagectl.core.features import (
    ChromaKey,
    ColorCorrection,
    FeatureState,
    FreezeFrustum,
    LightCard,
    OutputPattern,
)
from stagectl.core.fields import FieldError, from_dict, to_dict, value_of
from stagectl.core.lut import Lut3D, read_cube
from stagectl.core.camera_settings import CameraSettings, overscan_of, smoothing_of

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "StateError",
    "OperatorState",
    "StateStore",
    "rebase",
    "default_state_path",
    "utc_stamp",
]

STATE_FORMAT = "stagectl.operator-state"
STATE_VERSION = 1


class StateError(StageError):
    """A persisted operator state that cannot be used (``file: key: what was expected``)."""


def utc_stamp(ns: int | None = None, *, iso: bool = False) -> str:
    """UTC of the ``system`` clock (``ns`` nanoseconds since the epoch; now when None):
    ``YYYYMMDDTHHMMSS.ffffffZ`` (safe in file names), or ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` with ``iso``."""
    t = (
        _dt.datetime.now(_dt.timezone.utc)
        if ns is None
        else _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc)
    )
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if iso else "%Y%m%dT%H%M%S.%fZ")


def default_state_path(stage) -> Path:
    """``<stage dir>/<stage stem>.operator.json``, or ``console.state_file`` (relative to the stage file)."""
    base = Path(stage.path).resolve().parent
    settings = getattr(stage, "console", None)
    name = getattr(settings, "state_file", None) if settings is not None else None
    if name:
        p = Path(name)
        return p if p.is_absolute() else base / p
    return base / f"{Path(stage.path).stem}.operator.json"


# --------------------------------------------------------------------------------------------- operator state


@dataclass(frozen=True)
class OperatorState:
    """Everything an operator can change (module docstring). ``cameras``: ``(name, CameraSettings)`` pairs in
    the stage's camera order; ``blackout_all``: every output black; ``content``: ``"procedural"`` or an
    absolute file path; ``recording``: the absolute path of the take being recorded, or None."""

    features: FeatureState = FeatureState()
    cameras: tuple[tuple[str, CameraSettings], ...] = ()
    blackout_all: bool = False
    inner_enabled: bool = True
    content: str = "procedural"
    recording: str | None = None
    #: paths of LUT files as the operator gave them, absolute: target ("inner" or a wall) -> path
    lut_paths: tuple[tuple[str, str], ...] = field(default=(), compare=True)

    # ---- construction
    @classmethod
    def initial(cls, stage) -> OperatorState:
        """The state the stage file describes (module docstring)."""
        inner = stage.render.inner
        cams = []
        for c in stage.cameras:
            try:
                delay = float(stage.tracking_source(c.tracking).delay_frames)
            except KeyError:
                delay = 0.0
            cams.append(
                (
                    c.name,
                    CameraSettings(
                        tracking=c.tracking,
                        delay_frames=delay,
                        overscan_percent=tuple(inner.overscan_percent),
                        soft_edge=inner.soft_edge,
                    ),
                )
            )
        feats = getattr(stage.render, "features", None) or FeatureState()
        feats = replace(feats, freeze=None)
        luts = []
        for target, cc in _corrections(feats):
            if cc.lut is not None and cc.lut.source:
                found = _lut_file(cc.lut, Path(stage.path).resolve().parent)
                if found is not None:
                    luts.append((target, found))
        return cls(
            features=feats,
            cameras=tuple(cams),
            content=str(stage.render.outer.content),
            lut_paths=tuple(sorted(luts)),
        )

    # ---- queries
    def camera(self, name: str) -> CameraSettings:
        for k, v in self.cameras:
            if k == name:
                return v
        raise KeyError(name)

    @property
    def camera_names(self) -> list[str]:
        return [k for k, _ in self.cameras]

    def lut_path(self, target: str) -> str | None:
        for k, v in self.lut_paths:
            if k == target:
                return v
        return None

    # ---- edits
    def with_camera(self, name: str, settings: CameraSettings) -> OperatorState:
        """The state with camera ``name``'s settings replaced (the freeze carried into the features)."""
        cams = tuple((k, settings if k == name else v) for k, v in self.cameras)
        frozen = frozenset(k for k, v in cams if v.freeze)
        freeze = FreezeFrustum(frozen, keep_image=True) if frozen else None
        return replace(self, cameras=cams, features=replace(self.features, freeze=freeze))

    def with_lut_path(self, target: str, path: str | None) -> OperatorState:
        rest = [(k, v) for k, v in self.lut_paths if k != target]
        if path is not None:
            rest.append((target, path))
        return replace(self, lut_paths=tuple(sorted(rest)))

    # ---- JSON
    def to_json(self) -> dict:
        """The JSON-able form (module docstring); :meth:`from_json` reads it back."""
        f = self.features
        return {
            "light_cards": [to_dict(c, op=True) for c in f.light_cards],
            "chroma_key": None if f.chroma_key is None else to_dict(f.chroma_key, op=True),
            "color": {
                "walls": {w: self._cc_json(w, cc) for w, cc in f.wall_color},
                "inner": None if f.inner_color is None else self._cc_json("inner", f.inner_color),
            },
            "patterns": {k: to_dict(p, op=True) for k, p in f.patterns},
            "blackout": sorted(f.blackout),
            "uncalibrated": sorted(f.uncalibrated),
            "looks_off": sorted(f.looks_off),
            "blackout_all": self.blackout_all,
            "cameras": {k: v.to_json() for k, v in self.cameras},
            "inner_enabled": self.inner_enabled,
            "content": self.content,
            "recording": self.recording,
        }

    def _cc_json(self, target: str, cc: ColorCorrection) -> dict:
        # the LUT by the path the operator gave, else where the stage file's LUT came from (best effort)
        return to_dict(cc, op=True, lut=lambda lut: self.lut_path(target) or lut.source or None)

    @classmethod
    def from_json(cls, data: Any, stage, *, file: str = "<state>") -> tuple[OperatorState, list[str]]:
        """Read :meth:`to_json`'s form against ``stage``; returns ``(state, warnings)``.

        Things the stage no longer has (a card's wall, a pattern's output, a camera, a tracking source) are
        dropped with a warning, as is a LUT file that cannot be read, a scene or LUT path outside its
        ``console.paths`` folder (unless it is the stage file's own) and a recording (a take does not resume
        after a restart). Anything malformed raises :class:`StateError` ``file: key: what was expected``.
        Cameras the file does not mention keep the stage file's settings.
        """
        r = _Reader(file)
        base = cls.initial(stage)
        warnings: list[str] = []
        d = r.mapping(data, "state")
        walls = [w.name for w in stage.walls]
        outputs = [f"{p.name}/{o.name}" for p, o in stage.outputs()]
        sources = [t.name for t in stage.tracking]

        cards: list[LightCard] = []
        for i, c in enumerate(r.seq(d.get("light_cards", []), "state.light_cards")):
            k = f"state.light_cards[{i}]"
            card = r.feature(LightCard, c, k)
            if card.wall not in walls:
                warnings.append(
                    f"{file}: {k}: light card {card.id!r} is on wall {card.wall!r}, which the stage no "
                    f"longer has; dropped"
                )
                continue
            if any(x.id == card.id for x in cards):
                raise r.error(f"{k}.id", f"light card id {card.id!r} is used twice")
            cards.append(card)

        ck = d.get("chroma_key")
        key = None if ck is None else r.feature(ChromaKey, ck, "state.chroma_key")

        lut_paths: list[tuple[str, str]] = []
        own_luts = {v for _, v in base.lut_paths}

        def cc_of(v, k: str, target: str) -> ColorCorrection:
            def lut_of(lp, key: str) -> Lut3D | None:
                """The LUT file the state names (a path), or None with a warning."""
                lp = r.text(lp, key)
                if lp not in own_luts and not _inside(stage, "luts", lp):
                    warnings.append(
                        f"{file}: {key}: {lp} is neither the stage file's LUT nor inside "
                        f"console.paths.luts; colour correction kept without it"
                    )
                    return None
                try:
                    lut = read_cube(lp)
                except ConfigErrors as exc:
                    warnings.append(
                        f"{file}: {key}: cannot read the LUT, colour correction kept without it: "
                        f"{str(exc).splitlines()[0]}"
                    )
                    return None
                lut_paths.append((target, lp))
                return lut

            return r.feature(ColorCorrection, v, k, lut=lut_of)

        col = r.mapping(d.get("color", {}), "state.color")
        wall_cc = []
        for w, v in r.mapping(col.get("walls", {}), "state.color.walls").items():
            if w not in walls:
                warnings.append(
                    f"{file}: state.color.walls.{w}: the stage has no wall {w!r}; its colour correction "
                    f"is dropped"
                )
                continue
            cc = cc_of(v, f"state.color.walls.{w}", w)
            if cc is not None:
                wall_cc.append((w, cc))
        inner_cc = None if col.get("inner") is None else cc_of(col["inner"], "state.color.inner", "inner")

        patterns = []
        for o, v in r.mapping(d.get("patterns", {}), "state.patterns").items():
            k = f"state.patterns.{o}"
            if o not in outputs:
                warnings.append(f"{file}: {k}: the stage has no output {o!r}; its pattern is dropped")
                continue
            patterns.append((o, r.feature(OutputPattern, v, k)))

        def names(key: str, known, what: str, dropped: str) -> list[str]:
            """The names of the list ``state.<key>`` that ``known`` holds; each other one is dropped with the
            warning ``the stage has no <what> <name>; <dropped>``."""
            kept = []
            for i, o in enumerate(r.seq(d.get(key, []), f"state.{key}")):
                o = r.text(o, f"state.{key}[{i}]")
                if o in known:
                    kept.append(o)
                else:
                    warnings.append(f"{file}: state.{key}[{i}]: the stage has no {what} {o!r}; {dropped}")
            return kept

        blackout = names("blackout", outputs, "output", "dropped")
        uncalibrated = names(
            "uncalibrated", _calibrated(stage), "calibrated output", "its calibration switch is dropped"
        )
        looks_off = names("looks_off", _looked(stage), "look", "its switch is dropped")

        state = replace(
            base,
            features=FeatureState(
                tuple(cards), key, tuple(wall_cc), inner_cc, tuple(patterns), frozenset(blackout),
                uncalibrated=frozenset(uncalibrated), looks_off=frozenset(looks_off),
            ),
            blackout_all=r.boolean(d.get("blackout_all", False), "state.blackout_all"),
            inner_enabled=r.boolean(d.get("inner_enabled", True), "state.inner_enabled"),
            lut_paths=tuple(sorted(lut_paths)),
        )

        for name, v in r.mapping(d.get("cameras", {}), "state.cameras").items():
            k = f"state.cameras.{name}"
            if name not in state.camera_names:
                warnings.append(f"{file}: {k}: the stage has no camera {name!r}; its settings are dropped")
                continue
            v = r.mapping(v, k)
            cur = state.camera(name)
            tracking = r.text(v.get("tracking", cur.tracking), f"{k}.tracking")
            if tracking not in sources:
                warnings.append(
                    f"{file}: {k}.tracking: the stage has no tracking source {tracking!r}; camera {name!r} "
                    f"keeps {cur.tracking!r}"
                )
                tracking = cur.tracking
            # each value checked against its declaration in CameraSettings; a key left out keeps the stage's
            try:
                smoothing = smoothing_of(v.get("smoothing", "off"), strict=False)
            except FieldError as exc:
                raise r.error(f"{k}.smoothing", exc.message) from None
            values = {
                name_: r.declared(CameraSettings, name_, v[name_], f"{k}.{name_}")
                for name_ in ("delay_frames", "soft_edge", "freeze")
                if name_ in v
            }
            if "overscan_percent" in v:
                try:
                    values["overscan_percent"] = overscan_of(v["overscan_percent"])
                except FieldError as exc:
                    raise r.error(f"{k}.overscan_percent", exc.message) from None
            state = state.with_camera(name, replace(cur, tracking=tracking, smoothing=smoothing, **values))

        content = r.text(d.get("content", base.content), "state.content")
        if content not in ("procedural", base.content) and not _inside(stage, "content", content):
            warnings.append(
                f"{file}: state.content: {content} is neither the stage file's content nor inside "
                f"console.paths.content; the stage file's content {base.content} is used"
            )
            content = base.content
        elif content != "procedural" and not Path(content).is_file():
            warnings.append(
                f"{file}: state.content: file not found: {content}; the stage file's content "
                f"{base.content} is used"
            )
            content = base.content
        state = replace(state, content=content)
        rec = d.get("recording")
        if rec is not None:
            warnings.append(
                f"{file}: state.recording: a take ({r.text(rec, 'state.recording')}) was being recorded "
                "when the state was saved; recording does not resume after a restart"
            )
        return state, warnings


def rebase(state: OperatorState, stage) -> tuple[OperatorState, list[str]]:
    """``state`` carried onto a (reloaded) ``stage``: what the stage no longer has is dropped (a card's wall,
    a colour correction's wall, a pattern's or blackout's output, a camera, a camera's tracking source), new
    cameras get the stage file's settings; returns ``(state, warnings)``. Reads no files."""
    walls = {w.name for w in stage.walls}
    outputs = {f"{p.name}/{o.name}" for p, o in stage.outputs()}
    sources = {t.name for t in stage.tracking}
    warnings: list[str] = []
    f = state.features
    cards = []
    for c in f.light_cards:
        if c.wall in walls:
            cards.append(c)
        else:
            warnings.append(f"light card {c.id!r}: the stage has no wall {c.wall!r} any more; dropped")
    wall_cc = _kept(f.wall_color, walls, "colour correction of wall", "wall", warnings)
    patterns = _kept(f.patterns, outputs, "pattern of output", "output", warnings)
    blackout = frozenset(o for o in f.blackout if o in outputs)
    for o in sorted(f.blackout - blackout):
        warnings.append(f"blackout of output {o!r}: the stage has no such output any more; dropped")
    uncalibrated = f.uncalibrated & _calibrated(stage)
    for o in sorted(f.uncalibrated - uncalibrated):
        warnings.append(f"calibration switch of output {o!r}: the stage has no calibration for it any more; "
                        "dropped")
    looks_off = f.looks_off & _looked(stage)
    for o in sorted(f.looks_off - looks_off):
        warnings.append(f"look switch of {o.replace(':', ' ', 1)!r}: the stage has no such look any more; dropped")
    base = OperatorState.initial(stage)
    new = replace(
        state,
        features=replace(
            f,
            light_cards=tuple(cards),
            wall_color=tuple(wall_cc),
            patterns=tuple(patterns),
            blackout=blackout,
            freeze=None,
            uncalibrated=uncalibrated,
            looks_off=looks_off,
        ),
        cameras=base.cameras,
        lut_paths=tuple((k, v) for k, v in state.lut_paths if k == "inner" or k in walls),
    )
    old = dict(state.cameras)
    for name in new.camera_names:
        if name not in old:
            continue
        cs = old[name]
        if cs.tracking not in sources:
            warnings.append(
                f"camera {name!r}: the stage has no tracking source {cs.tracking!r} any more; it uses "
                f"{new.camera(name).tracking!r}"
            )
            cs = replace(cs, tracking=new.camera(name).tracking)
        new = new.with_camera(name, cs)
    for name in old:
        if name not in new.camera_names:
            warnings.append(
                f"camera {name!r}: the stage has no such camera any more; its settings are dropped"
            )
    return new, warnings


def _kept(pairs, known, what: str, kind: str, warnings: list[str]) -> list:
    """The ``(name, value)`` pairs whose name the stage still has (``known``); a warning for each other one."""
    for name, _ in pairs:
        if name not in known:
            warnings.append(f"{what} {name!r}: the stage has no such {kind} any more; dropped")
    return [(name, value) for name, value in pairs if name in known]


def _calibrated(stage) -> frozenset[str]:
    """The output keys of ``stage`` with a colour calibration (``color.calibration`` may switch them)."""
    from stagectl.console.commands import calibrated_outputs

    return frozenset(calibrated_outputs(stage))


def _looked(stage) -> frozenset[str]:
    """The ``wall:<name>`` / ``camera:<name>`` looks of ``stage`` (``color.look`` may switch them)."""
    from stagectl.color.stagefile import look_keys

    return frozenset(look_keys(stage))


def _inside(stage, kind: str, path: str) -> bool:
    """``path`` resolves inside the folder ``console.paths.<kind>`` (as a command's path must)."""
    from stagectl.console.commands import CommandError, confined

    try:
        confined(stage, kind, path, "", "")
    except CommandError:
        return False
    return True


def _lut_file(lut, stage_dir: Path) -> str | None:
    """The absolute path of a stage-file LUT: its ``source`` is a display path (relative to the working folder
    at load time, or absolute); the candidate (that path, or a tail of it under the stage's folder) whose
    content matches the LUT's digest."""
    src = Path(lut.source)
    cands = (
        [src]
        if src.is_absolute()
        else [src.resolve()] + [stage_dir.joinpath(*src.parts[i:]) for i in range(len(src.parts))]
    )
    for c in cands:
        if c.is_file():
            try:
                if read_cube(c).digest == lut.digest:
                    return str(c.resolve())
            except ConfigErrors:
                continue
    return None


def _corrections(f: FeatureState) -> list[tuple[str, ColorCorrection]]:
    out = list(f.wall_color)
    if f.inner_color is not None:
        out.append(("inner", f.inner_color))
    return out


class _Reader:
    """Strict readers of the state JSON's values; errors are ``file: key: what was expected``."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, key: str, message: str) -> StateError:
        return StateError(f"{self.file}: {key}: {message}")

    def _got(self, v) -> str:
        try:
            return json.dumps(v)
        except (TypeError, ValueError):
            return repr(v)

    def mapping(self, v, key: str) -> dict:
        if not isinstance(v, Mapping):
            raise self.error(key, f"expected a JSON object, got {self._got(v)}")
        return dict(v)

    def seq(self, v, key: str) -> list:
        if not isinstance(v, list):
            raise self.error(key, f"expected a list, got {self._got(v)}")
        return v

    def text(self, v, key: str) -> str:
        if not isinstance(v, str) or not v:
            raise self.error(key, f"expected a non-empty text, got {self._got(v)}")
        return v

    def boolean(self, v, key: str) -> bool:
        if not isinstance(v, bool):
            raise self.error(key, f"expected true or false, got {self._got(v)}")
        return v

    def declared(self, cls, name: str, v, key: str):
        """``v`` checked against the declaration of field ``name`` of ``cls`` (operator units), normalised."""
        try:
            return value_of(cls, name).check(v, op=True)
        except FieldError as exc:
            raise self.error(key, exc.message) from None

    def feature(self, cls, v, key: str, lut=None):
        """The feature object ``cls`` of :func:`~stagectl.core.features.to_dict`'s form in operator units
        (missing keys take their defaults); errors keyed under ``key``."""
        v = self.mapping(v, key)
        try:
            return from_dict(cls, v, op=True, strict=False, lut=lut, key=key)
        except FieldError as exc:
            raise self.error(exc.key or key, exc.message) from None


# --------------------------------------------------------------------------------------------- store


class StateStore:
    """The operator state file of one stage (``path``), written atomically.

    :meth:`save` writes ``{"format", "version", "stage", "seq", "saved_utc", "state"}`` to ``<path>.tmp``,
    ``fsync``\\ s it, renames it over ``path`` and ``fsync``\\ s the folder: after :meth:`save` returns, the
    new state survives a crash or power cut. :meth:`load` reads it back against a stage; a file that cannot be
    used is moved aside (:meth:`set_aside`) and reported, and the stage file's state is used.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def save(self, state: OperatorState, seq: int, stage_name: str = "") -> None:
        doc = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "stage": stage_name,
            "seq": int(seq),
            "saved_utc": utc_stamp(),
            "state": state.to_json(),
        }
        data = json.dumps(doc, indent=1, allow_nan=False).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:  # a platform without directory fds
            return
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def set_aside(self) -> Path:
        """Rename the file to ``<name>.bad-<UTC>`` (kept for a look, never read again); returns the new
        path."""
        bad = self.path.with_name(f"{self.path.name}.bad-{utc_stamp()}")
        os.replace(self.path, bad)
        return bad

    def load(self, stage) -> tuple[OperatorState | None, int, list[str]]:
        """``(state, seq, warnings)``: the persisted state against ``stage`` (None when there is no file or it
        was set aside: the stage file's state applies), the sequence number it was saved at, and what was
        dropped or set aside (one line each)."""
        if not self.path.exists():
            return None, 0, []
        name = str(self.path)
        try:
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise StateError(f"{name}: cannot read: {exc}") from None
            except json.JSONDecodeError as exc:
                raise StateError(f"{name}:{exc.lineno}: not JSON: {exc.msg}") from None
            r = _Reader(name)
            doc = r.mapping(doc, "(top level)")
            if doc.get("format") != STATE_FORMAT:
                raise r.error("format", f"expected {STATE_FORMAT!r}, got {r._got(doc.get('format'))}")
            if doc.get("version") != STATE_VERSION:
                raise r.error(
                    "version",
                    f"expected {STATE_VERSION} (this stagectl reads operator state version "
                    f"{STATE_VERSION}), got {r._got(doc.get('version'))}",
                )
            seq = doc.get("seq", 0)
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise r.error("seq", f"expected a whole number >= 0, got {r._got(seq)}")
            state, warnings = OperatorState.from_json(doc.get("state"), stage, file=name)
            return state, seq, warnings
        except StateError as exc:
            bad = self.set_aside()
            return None, 0, [f"{exc}; set aside as {bad.name}, the stage file's state is used"]
