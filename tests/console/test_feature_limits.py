"""Every path that reads a feature value accepts and refuses the same values.

A feature value reaches the renderer six ways: the feature dataclasses themselves (Python), the stage YAML
(``parse_features``), the operator state file (``OperatorState.from_json``), the cluster wire
(``decode_features``), the console commands (``validate``) and OSC (``parse_args`` then ``validate``). For every
declared value of every feature, probes around its limits (the limits themselves, just past them, NaN, a bool,
a string, a vector one short) go through every path that carries it, and all of them must say the same: accepted
or refused. The limits operators get are spot-checked against the figures docs/console.md promises.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import yaml

from stagectl.config.reader import MapReader, load_document
from stagectl.console.commands import CommandError, validate
from stagectl.console.osc_transport import OscArgError, parse_args
from stagectl.console.state import OperatorState, StateError
from stagectl.core.features import (
    ChromaKey,
    ChromaMarkers,
    ColorCorrection,
    FeatureState,
    LightCard,
    OutputPattern,
)
from stagectl.core.fields import FeatureError, to_dict, value_of, values_of
from stagectl.stage.features import parse_features
from stagectl.sync.cluster import FrameStateError, decode_features, encode_features

OUT = "tessera-a/out1"

# class -> (a valid value of every field in operator units, the command that sets it or None)
BASE = {
    LightCard: ({"id": "k", "wall": "main", "rect": [0.1, 0.1, 0.4, 0.4], "color": [1.0, 1.0, 1.0],
                 "intensity": 1.0, "layer": "over", "feather_px": 0.0}, "card.add"),
    ChromaKey: ({"enabled": True, "color": [0.0, 128.0, 0.0]}, "chroma.set"),
    ChromaMarkers: ({"color": [0.0, 200.0, 0.0], "size": 0.1, "thickness": 0.02, "spacing": 0.5, "units": "m"},
                    None),
    ColorCorrection: ({"exposure": 0.0, "tint": 0.0, "slope": [1.0, 1.0, 1.0], "offset": [0.0, 0.0, 0.0],
                       "power": [1.0, 1.0, 1.0], "saturation": 1.0}, "color.set"),
    OutputPattern: ({"kind": "solid", "color": [1.0, 1.0, 1.0], "squares": 1, "burn_in": []}, "pattern.set"),
}
SKIP = {(LightCard, "wall"), (ChromaKey, "markers"), (ColorCorrection, "lut")}  # names checked elsewhere


def _probes(val, good) -> list:
    """Values around the declared limits, in operator units (``good``: a valid value of the field)."""
    k = val.kind
    if k in ("number", "whole", "vector"):
        lo, hi = val.limits()
        nums = [1.0, math.nan, math.inf]
        for edge, step in ((lo, -1), (hi, 1)):
            if edge is not None:
                eps = max(abs(edge), 1.0) * 1e-3
                nums += [edge, edge + step * eps, edge - step * eps]
        if hi is None:
            nums += [1e6]
        if k == "whole":
            nums += [2.5, 3.0]
        out: list = list(nums) if k != "vector" else []
        if k == "vector":
            n = len(val.parts)
            for x in nums:  # the first number probed, the others those of a valid value
                out.append([x, *good[1:]])
            out += [[1.0] * (n - 1), [1.0] * (n + 1), 1.0]
        return [*out, True, "1"]
    if k == "choice":
        return [*val.choices, "nope", "", 1]
    if k == "text":
        return ["x", "", "  ", 3]
    if k == "words":
        return [list(val.choices), [val.choices[-1]], ["nope"], "frame", 3]
    if k == "bool":
        return [True, False, "yes"]
    return []


def _model(cls, args: dict):
    """The dataclass from operator-unit arguments (scaled to model units where the declaration says so)."""
    kw = {}
    for name, val, _ in values_of(cls):
        if name in args:
            v = args[name]
            if val.scale != 1.0 and isinstance(v, list) and all(isinstance(x, float) for x in v):
                v = val.to_model(v)
            kw[name] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


def _by_model(cls, args) -> bool:
    try:
        _model(cls, args)
    except (FeatureError, TypeError, ValueError):
        return False
    return True


def _features_of(cls, obj) -> FeatureState:
    if cls is LightCard:
        return FeatureState(light_cards=(obj,))
    if cls is ChromaKey:
        return FeatureState(chroma_key=obj)
    if cls is ChromaMarkers:
        return FeatureState(chroma_key=ChromaKey(markers=obj))
    if cls is ColorCorrection:
        return FeatureState(wall_color={"main": obj})
    return FeatureState(patterns={OUT: obj})


def _by_wire(cls, args) -> bool:
    """The wire: a good operator state with the value put into its JSON (in model units)."""
    good = encode_features(_features_of(cls, _model(cls, BASE[cls][0])), seq=1, session=1)
    doc = json.loads(good[21:])
    target = {LightCard: lambda d: d["light_cards"][0], ChromaKey: lambda d: d["chroma_key"],
              ChromaMarkers: lambda d: d["chroma_key"]["markers"],
              ColorCorrection: lambda d: d["wall_color"][0][1], OutputPattern: lambda d: d["patterns"][0][1]}[cls]
    obj = target(doc)
    for name, v in args.items():
        val = value_of(cls, name)
        if val.scale != 1.0 and isinstance(v, list) and all(isinstance(x, float) and math.isfinite(x) for x in v):
            v = list(val.to_model(v))
        obj[name] = v
    raw = json.dumps(doc, allow_nan=True).encode()
    data = good[:17] + struct.pack("<I", len(raw)) + raw
    try:
        decode_features(data)
    except FrameStateError:
        return False
    return True


def _by_state(cls, args, stage) -> bool:
    d = {LightCard: lambda o: {"light_cards": [o]}, ChromaKey: lambda o: {"chroma_key": o},
         ChromaMarkers: lambda o: {"chroma_key": {"enabled": True, "color": [0, 128, 0], "markers": o}},
         ColorCorrection: lambda o: {"color": {"walls": {"main": o}}},
         OutputPattern: lambda o: {"patterns": {OUT: o}}}[cls](dict(args))
    try:
        OperatorState.from_json(d, stage)
    except StateError:
        return False
    return True


def _by_yaml(cls, args, tmp_path: Path) -> bool:
    o = dict(args)
    d = {LightCard: lambda: {"light_cards": [o]}, ChromaKey: lambda: {"chroma_key": o},
         ChromaMarkers: lambda: {"chroma_key": {"markers": o}},
         ColorCorrection: lambda: {"color": {"walls": {"main": o}}},
         OutputPattern: lambda: {"patterns": {OUT: o}}}[cls]()
    path = tmp_path / "render.yaml"
    path.write_text(yaml.safe_dump({"render": d}))
    ctx, node = load_document(path)
    root = MapReader(ctx, node, "")
    r = root.sub("render")
    parse_features(ctx, r, walls=["main", "ceiling"], outputs=[OUT])
    r.done()
    return not ctx.errors


def _command_args(cls, args) -> dict:
    if cls is LightCard:
        return {k: v for k, v in args.items() if k != "id"} | ({"id": args["id"]} if "id" in args else {})
    if cls is ColorCorrection:
        return {"target": "main", **args}
    if cls is OutputPattern:
        return {"output": OUT, **args}
    return dict(args)


def _by_command(cls, args, stage, state) -> bool:
    try:
        validate(BASE[cls][1], _command_args(cls, args), stage, state)
    except CommandError:
        return False
    return True


def _by_osc(cls, name, args, stage, state) -> bool:
    """OSC: the positional key/value form where the command has one, else the keyed (JSON) form."""
    cmd = BASE[cls][1]
    v = args[name]
    if cls is ColorCorrection and isinstance(v, list) and not any(isinstance(x, str) for x in v):
        values = ["main", name, *v]
    elif cls is ColorCorrection and not isinstance(v, str):  # a string there is JSON text (docs/console-osc.md)
        values = ["main", name, v]
    else:
        values = [json.dumps(_command_args(cls, args), allow_nan=True)]
    try:
        parsed = parse_args(cmd, values)
        if cls is LightCard and "id" not in parsed:
            parsed["id"] = "k"
        validate(cmd, parsed, stage, state)
    except (OscArgError, CommandError):
        return False
    return True


def _cases():
    for cls in BASE:
        for name, val, _ in values_of(cls):
            if (cls, name) in SKIP or val.kind in ("object", "lut"):
                continue
            yield pytest.param(cls, name, id=f"{cls.__name__}.{name}")


@pytest.mark.parametrize(("cls", "name"), list(_cases()))
def test_every_path_accepts_and_refuses_the_same_values(cls, name, demo, tmp_path) -> None:
    base, command = BASE[cls]
    state = OperatorState.initial(demo)
    val = value_of(cls, name)
    seen = set()
    for probe in _probes(val, base.get(name, [1.0, 1.0, 1.0])):
        args = {**base, name: probe}
        if cls is ColorCorrection:  # only the value probed: the command merges it into the identity
            args = {name: probe}
        verdicts = {
            "model": _by_model(cls, {**base, name: probe}),
            "yaml": _by_yaml(cls, {**base, name: probe} if cls is not ColorCorrection else args, tmp_path),
            "state": _by_state(cls, {**base, name: probe}, demo),
            "wire": _by_wire(cls, {name: probe}),
        }
        if command is not None and not (cls is ChromaKey and name == "enabled"):
            verdicts["command"] = _by_command(cls, args, demo, state)
            verdicts["osc"] = _by_osc(cls, name, args, demo, state)
        assert len(set(verdicts.values())) == 1, f"{cls.__name__}.{name} = {probe!r}: {verdicts}"
        seen.add(verdicts["model"])
    assert seen == {True, False}, f"{cls.__name__}.{name}: the probes must find both sides of its limits"


@pytest.mark.parametrize(("cls", "name", "ok", "refused"), [
    # the limits an operator gets, as docs/console.md gives them (where paths disagreed, these won)
    (ColorCorrection, "slope", [100.0, 1.0, 1.0], [100.5, 1.0, 1.0]),
    (ColorCorrection, "gains", [100.0, 1.0, 1.0], [100.5, 1.0, 1.0]),
    (ColorCorrection, "offset", [-10.0, 0.0, 0.0], [-10.5, 0.0, 0.0]),
    (ColorCorrection, "power", [100.0, 1.0, 1.0], [0.0, 1.0, 1.0]),
    (ColorCorrection, "saturation", 100.0, 100.5),
    (LightCard, "intensity", 1000.0, 1000.5),
    (LightCard, "color", [1000.0, 0.0, 0.0], [1000.5, 0.0, 0.0]),
    (LightCard, "feather_px", 100000.0, 100000.5),
    (ChromaKey, "color", [0.0, 255.0, 0.0], [0.0, 256.0, 0.0]),
    (OutputPattern, "squares", 64, 65),
])
def test_the_limits_operators_get(cls, name, ok, refused, demo) -> None:
    base, _ = BASE[cls]
    assert _by_model(cls, {**base, name: ok}) and not _by_model(cls, {**base, name: refused})
    assert _by_state(cls, {**base, name: ok}, demo) and not _by_state(cls, {**base, name: refused}, demo)
    assert _by_wire(cls, {name: ok}) and not _by_wire(cls, {name: refused})


def test_state_file_and_wire_carry_the_one_canonical_form() -> None:
    """The state file writes each feature object as to_dict in operator units (chroma colours as 8-bit codes);
    the wire as to_dict in model units."""
    key = ChromaKey(True, (0.0, 128 / 255, 0.0), ChromaMarkers((0.0, 0.8, 0.1), 0.12, None, 0.5, "m"))
    card = LightCard("k", "main", (0.1, 0.1, 0.4, 0.4), (1.0, 0.5, 0.25), 2.0, "under", 4.0)
    st = OperatorState(features=FeatureState(light_cards=(card,), chroma_key=key)).to_json()
    assert st["chroma_key"]["color"] == [0.0, 128.0, 0.0] and st["chroma_key"]["markers"]["color"][2] == 25.5
    assert st["light_cards"][0] == to_dict(card) == {"id": "k", "wall": "main", "rect": [0.1, 0.1, 0.4, 0.4],
                                                     "color": [1.0, 0.5, 0.25], "intensity": 2.0, "layer": "under",
                                                     "feather_px": 4.0}
    wire = json.loads(encode_features(FeatureState(chroma_key=key), seq=1, session=1)[21:])
    assert wire["chroma_key"]["color"] == [0.0, 128 / 255, 0.0]
