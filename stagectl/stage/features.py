"""The stage file's feature keys (``render.chroma_key``, ``light_cards``, ``color``, ``patterns``):
:func:`parse_features` reads them into a :class:`stagectl.core.features.FeatureState`, with converters built
from each field's one declaration (:func:`yaml_converter`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any

from yaml.nodes import ScalarNode, SequenceNode

from stagectl.config.reader import Invalid, boolean, describe, existing_file, one_of, string, vector
from stagectl.config.reader import number as rnumber
from stagectl.core.errors import ConfigErrors
from stagectl.core.features import (
    MAX_CARDS,
    ChromaKey,
    ChromaMarkers,
    ColorCorrection,
    FeatureState,
    LightCard,
    OutputPattern,
)
from stagectl.core.fields import FeatureError, FieldError, Value, value_of
from stagectl.core.lut import read_cube


def parse_features(ctx, reader, *, walls: Sequence[str] | None = None,
                   outputs: Iterable[str] | None = None):
    """Read the optional feature keys of a stage file's ``render`` section (a
    :class:`stagectl.config.reader.MapReader`); returns a :class:`FeatureState` or ``INVALID`` (errors are
    recorded in ``ctx`` as ``file:line: key: what was expected``). Call it before ``reader.done()``.
    ``walls`` / ``outputs``: the stage's wall names and output keys, to check the names used (optional).

    Layout (every key optional)::

        render:
          chroma_key:
            enabled: true                  # default true when the section is given
            color: [0, 128, 0]             # 8-bit sRGB codes (default nDisplay's green)
            markers:                       # optional tracking markers (crosses on a grid)
              color: [0, 200, 0]           # 8-bit sRGB codes
              size: 0.1                    # arm length tip to tip
              thickness: 0.02              # default size / 5
              spacing: 0.5                 # grid pitch
              units: m                     # m (wall metres) or px (wall raster pixels)
          light_cards:
            - id: key-left
              wall: main
              rect: [0.05, 0.1, 0.25, 0.6] # u0, v0, u1, v1 in wall UV (origin top-left, v down)
              color: [1.0, 0.9, 0.8]       # linear RGB
              intensity: 1.5
              layer: over                  # over | under the inner frustum
              feather_px: 24               # soft border, wall raster pixels
          color:
            walls:
              main: {exposure: 0.5, temperature: 5600, tint: 0, slope: [1, 1, 1], offset: [0, 0, 0],
                     power: [1, 1, 1], saturation: 1, lut: luts/main.cube}
            inner: {gains: [1.0, 0.98, 1.02]}
          patterns:
            tessera-a/out1: {kind: checkerboard, squares: 2, burn_in: [frame, timecode]}
            tessera-b/out3: aruco          # a kind alone
    """
    from yaml.nodes import MappingNode, ScalarNode

    from stagectl.config.reader import INVALID, Invalid, MapReader, describe, display_path, string

    ok = True

    def get(r, cls, name: str, required: bool = False):
        """Field ``name`` of ``cls`` from reader ``r``, converted as its declaration says (model units)."""
        conv = yaml_converter(value_of(cls, name))
        if required:
            return r.req(name, conv)
        return r.opt(name, conv, _default(cls, name))

    def bad(*vals) -> bool:
        return any(v is INVALID for v in vals)

    # ---- chroma key
    key = None
    ck = reader.sub("chroma_key", required=False)
    if ck is not None and ck.ok:
        enabled = get(ck, ChromaKey, "enabled")
        color = get(ck, ChromaKey, "color")
        markers = None
        mk = ck.sub("markers", required=False)
        if mk is not None and mk.ok:
            m_color, size, thick, spacing, units = (get(mk, ChromaMarkers, k) for k in (
                "color", "size", "thickness", "spacing", "units"))
            mk.done()
            if bad(m_color, size, thick, spacing, units):
                ok = False
            else:
                try:
                    markers = ChromaMarkers(m_color, size, thick, spacing, units)
                except FeatureError as exc:
                    ctx.error(mk.node, mk.path, str(exc))
                    ok = False
        elif mk is not None:
            ok = False
        ck.done()
        if bad(enabled, color):
            ok = False
        elif ok:
            key = ChromaKey(enabled, color, markers)
    elif ck is not None:
        ok = False

    # ---- light cards
    cards: list[LightCard] = []
    for _, node, path in reader.items("light_cards", required=False):
        r = MapReader(ctx, node, path)
        if not r.ok:
            ok = False
            continue
        cid, wall, rect = (get(r, LightCard, k, required=True) for k in ("id", "wall", "rect"))
        color, intensity, layer, feather = (get(r, LightCard, k) for k in (
            "color", "intensity", "layer", "feather_px"))
        r.done()
        if bad(cid, wall, rect, color, intensity, layer, feather):
            ok = False
            continue
        if walls is not None and wall not in walls:
            ctx.error(r.node_of("wall"), r.key_path("wall"), f"expected one of the walls {', '.join(walls)}, got {wall!r}")
            ok = False
            continue
        if any(c.id == cid for c in cards):
            ctx.error(r.node_of("id"), r.key_path("id"), f"light card id {cid!r} is used twice")
            ok = False
            continue
        try:
            cards.append(LightCard(cid, wall, rect, color, intensity, layer, feather))
        except FeatureError as exc:
            ctx.error(r.node_of("rect"), r.key_path("rect"), str(exc))
            ok = False
    if len(cards) > MAX_CARDS:
        ctx.error(reader.node_of("light_cards"), reader.key_path("light_cards"),
                  f"expected at most {MAX_CARDS} light cards, got {len(cards)}")
        ok = False

    # ---- colour correction
    def read_cc(node, path) -> ColorCorrection | None:
        nonlocal ok
        r = MapReader(ctx, node, path)
        if not r.ok:
            ok = False
            return None
        exposure, gains, temp, tint, slope, offset, power, sat = (get(r, ColorCorrection, k) for k in (
            "exposure", "gains", "temperature", "tint", "slope", "offset", "power", "saturation"))
        lut_path = r.opt("lut", existing_file, None)
        r.done()
        if bad(exposure, gains, temp, tint, slope, offset, power, sat, lut_path):
            ok = False
            return None
        if gains is not None and temp is not None:
            ctx.error(r.node_of("temperature"), r.key_path("temperature"),
                      "give white balance as gains or as temperature/tint, not both")
            ok = False
            return None
        lut = None
        if lut_path is not None:
            try:
                lut = read_cube(lut_path, display_path(lut_path))
            except ConfigErrors as exc:  # the LUT file's own file:line errors join the stage's
                ctx.errors.extend(exc.errors)
                ok = False
                return None
        try:
            return ColorCorrection(exposure, gains, temp, tint, slope, offset, power, sat, lut)
        except FeatureError as exc:
            ctx.error(r.node, r.path, str(exc))
            ok = False
            return None

    wall_cc: list[tuple[str, ColorCorrection]] = []
    inner_cc = None
    col = reader.sub("color", required=False)
    if col is not None and col.ok:
        w = col.sub("walls", required=False)
        if w is not None and w.ok:
            for name, (knode, vnode) in w.entries.items():
                w.used.add(name)
                if walls is not None and name not in walls:
                    ctx.error(knode, w.key_path(name), f"expected one of the walls {', '.join(walls)}, got {name!r}")
                    ok = False
                    continue
                cc = read_cc(vnode, w.key_path(name))
                if cc is not None:
                    wall_cc.append((name, cc))
        elif w is not None:
            ok = False
        if col.has("inner"):
            col.used.add("inner")
            inner_cc = read_cc(col.node_of("inner"), col.key_path("inner"))
        col.done()
    elif col is not None:
        ok = False

    # ---- patterns
    patterns: list[tuple[str, OutputPattern]] = []
    pat = reader.sub("patterns", required=False)
    outs = None if outputs is None else sorted(outputs)
    if pat is not None and pat.ok:
        for name, (knode, vnode) in pat.entries.items():
            pat.used.add(name)
            path = pat.key_path(name)
            if outs is not None and name not in outs:
                ctx.error(knode, path, f"expected an output key such as {', '.join(outs)}, got {name!r}")
                ok = False
                continue
            if isinstance(vnode, ScalarNode):
                kind = ctx.convert(vnode, path, yaml_converter(value_of(OutputPattern, "kind")))
                if kind is INVALID:
                    ok = False
                else:
                    patterns.append((name, OutputPattern(kind)))
                continue
            if not isinstance(vnode, MappingNode):
                ctx.error(vnode, path, f"expected a pattern kind or a mapping, got {describe(vnode)}")
                ok = False
                continue
            r = MapReader(ctx, vnode, path)
            kind = get(r, OutputPattern, "kind", required=True)
            color, squares, burn = (get(r, OutputPattern, k) for k in ("color", "squares", "burn_in"))
            r.done()
            if bad(kind, color, squares, burn):
                ok = False
                continue
            try:
                patterns.append((name, OutputPattern(kind, color, squares, burn)))
            except FeatureError as exc:
                ctx.error(vnode, path, str(exc))
                ok = False
        pat.done()
    elif pat is not None:
        ok = False

    if not ok:
        return INVALID
    return FeatureState(light_cards=tuple(cards), chroma_key=key, wall_color=tuple(wall_cc),
                        inner_color=inner_cc, patterns=tuple(patterns))


def _default(cls, name: str):
    for f in fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(name)


def yaml_converter(val: Value) -> Callable:
    """A :mod:`stagectl.config.reader` converter of the value in operator units, returning model units."""
    lo, hi = val.limits(True)
    k = val.kind
    if k == "number":
        conv = rnumber(lo, hi, lo_open=val.lo_open)
    elif k == "vector":
        conv = vector(len(val.parts), rnumber(lo, hi, lo_open=val.lo_open), val.expected(True))
    elif k == "choice":
        conv = one_of(*val.choices)
    elif k == "text":
        conv = string()
    elif k == "bool":
        conv = boolean()
    elif k in ("whole", "words"):
        def conv(ctx, node, path):
            if k == "words":
                items = [node] if isinstance(node, ScalarNode) else (
                    node.value if isinstance(node, SequenceNode) else None)
                if items is None or not all(isinstance(n, ScalarNode) for n in items):
                    raise Invalid(f"expected {val.expected()}, got {describe(node)}")
                raw: Any = [n.value for n in items]
            else:
                raw = rnumber()(ctx, node, path)
            try:
                return val.check(raw, op=True)
            except FieldError:
                raise Invalid(f"expected {val.expected()}, got {describe(node)}") from None
    else:
        raise ValueError(f"no stage-file converter for a {k}")
    if val.scale == 1.0:
        return conv
    return lambda ctx, node, path: val.to_model(conv(ctx, node, path))
