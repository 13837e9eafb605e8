"""The stage file's ``colour:`` section: the OCIO config, the working space, and each output's canvas and encode.

Layout (every key optional; docs/colour.md has the detail, docs/stage-file.md the summary)::

    colour:
      config: studio-config-latest      # an OCIO built-in (with or without ocio://) or a .ocio/.ocioz path
                                        # relative to the stage file; default ocio://studio-config-latest
      working_space: Linear Rec.709 (sRGB)   # what the renderer's linear RGB is; default the scene_linear role
      output:                           # defaults for every output
        canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000, range: full}
      outputs:                          # per output key (processor/output), over the defaults
        tessera-a/out1:
          canvas: {format: rgb10_a2, range: narrow}
          display: Rec.2100-PQ - Display
          view: ACES 2.0 - HDR 1000 nits (P3 D65)
          calibration: {clf: cal/proc_out1.clf}   # the wall's calibration (below)
          gamut_compress: true          # ACES 1.3 reference gamut compression first (default false)
      walls:                            # per wall
        main:
          calibration: {lut: openvpcal/main.cube, clf: openvpcal/main_EOTF.clf}   # of every output showing
                                        # only that wall
          look: [Warm, Contrast]        # OCIO looks of the config on the wall's outer image (a name or a list)
          working_space: ACEScg         # where its looks and the operator's wall grade run (scene-linear)
      cameras:                          # per camera: its inner frustum
        cam1: {look: Show LUT}

An output is encoded in one of three ways (:class:`OutputColour`):

* **legacy** — ``rgba8``, ``srgb``, full range, no display: the composite shader's own sRGB encode, exactly as
  a stage without ``colour:`` (8-bit sRGB codes). Every output of a stage without the section is legacy.
* **transfer** — ``canvas.transfer`` (``srgb``, ``gamma``, ``bt1886``, ``pq``, ``hlg``): the working space
  converted to ``target`` (a linear colour space of the config; default ``Linear Rec.2020`` for PQ/HLG,
  ``Linear Rec.709 (sRGB)`` otherwise), then the curve, all as OCIO transforms
  (:func:`stagectl.color.output.output_transforms`). PQ: scene-linear 1.0 = 100 nits, clipped at
  ``peak_nits``; HLG: BT.2100's inverse EOTF for a display of nominal peak ``peak_nits`` (400..2000 nits,
  :data:`~stagectl.color.transfer.HLG_PEAK_NITS_RANGE`; system gamma ``1.2 + 0.42 log10(peak / 1000)``).
* **display** — ``display`` and ``view`` of the config (``view`` default: the display's default view): OCIO's
  display/view transform from the working space; the display sets the curve, so ``transfer``, ``peak_nits``
  and ``target`` are refused beside it.

``canvas.format`` (``rgba8``, ``rgb10_a2``, ``rgba16``; default ``rgba8``) sets the canvas and the code depth
(8, 10, 16 bits); ``canvas.range`` (``full`` / ``narrow``) the code range. ``gamut_compress: true`` (per
output or in the defaults) puts the ACES 1.3 reference gamut compression before the rest of the encode
(:func:`stagectl.color.output.gamut_compress_transforms`); the config needs an ``aces_interchange`` role.
Every error is
``file:line: key: expected ..., got ...``. Names are checked against the loaded config here, at load time.

**Calibration** (:class:`Calibration`, ``outputs.<key>.calibration`` or ``walls.<wall>.calibration``; an
output's own beats its walls'; a wall's applies to the outputs whose every mapping shows walls of that one
calibration), one of three forms, paths relative to the stage file:

* ``{clf: PATH}`` -- the CLF ``stagectl calibrate colour`` writes: a correction in the output's target-linear
  light, applied after the working space -> target conversion, before the clamp and curve;
* ``{lut: PATH.cube, clf: PATH.clf}`` (either may be left out) -- OpenVPCal's export: the ``.cube`` is its
  display-to-display 3D LUT, baked from the wall's target gamut + EOTF (the output's own signal) to the
  calibrated signal, so it runs on the encoded signal after the curve; the ``.clf`` is its 1D EOTF LUT
  (indexed in PQ, holding the wall's measured EOTF), applied as OpenVPCal's own config applies it: inverted,
  between ``CURVE - LINEAR_to_ST-2084`` and its inverse, in target-linear light before the curve;
* ``{config: PATH, display: D, view: V}`` -- a calibrated OCIO config (OpenVPCal's post-calibration config or
  the one ``stagectl calibrate colour`` writes): the output's signal is that config's display/view of the
  working space (through the configs' ``aces_interchange`` roles when it is not the stage's own config); the
  output's canvas format and range stay, its transfer or display/view is what ``color.calibration off``
  shows.

**Looks** (``walls.<wall>`` / ``cameras.<camera>``: ``look``, ``working_space``, :class:`LookSpec`): OCIO
``LookTransform`` of the config's looks, in order, applied in the entry's ``working_space`` (a scene-linear
colour space; default the stage's) before the operator's grade of that wall's outer image or that camera's
inner frustum, so the two images meet at the frustum's soft edge in the stage's working space, before the
output's encode. Unknown walls, cameras, looks and colour spaces are one error each with close matches.

An OpenVPCal ``{lut, clf}`` pair whose ``.cube`` already holds the CLF's EOTF correction corrects the EOTF
twice: the loader warns once (logger ``stagectl.color``) with the file names and what to give instead
(:func:`stagectl.color.output.double_eotf_check`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from yaml.nodes import MappingNode, Node

from stagectl.color.errors import ColorError
from stagectl.color.ocio import LookSpec
from stagectl.color.transfer import HLG_PEAK_NITS_RANGE

__all__ = [
    "CANVAS_FORMATS",
    "FORMAT_BITS",
    "CANVAS_TRANSFERS",
    "CODE_RANGES",
    "DEFAULT_TARGETS",
    "Calibration",
    "OutputColour",
    "ColourSettings",
    "LEGACY",
    "parse_colour",
    "config_for",
    "output_colour",
    "looks_of",
    "look_keys",
]

CANVAS_FORMATS = ("rgba8", "rgb10_a2", "rgba16")
FORMAT_BITS = {"rgba8": 8, "rgb10_a2": 10, "rgba16": 16}  #: code depth of each canvas format
CANVAS_TRANSFERS = ("srgb", "gamma", "bt1886", "pq", "hlg")
CODE_RANGES = ("full", "narrow")
#: linear colour space a transfer encodes when ``target`` is not given (names of the studio config)
DEFAULT_TARGETS = {"pq": "Linear Rec.2020", "hlg": "Linear Rec.2020", "srgb": "Linear Rec.709 (sRGB)",
                   "gamma": "Linear Rec.709 (sRGB)", "bt1886": "Linear Rec.709 (sRGB)"}
_PEAK_DEFAULT = {"pq": 1000.0, "hlg": 1000.0, "bt1886": 100.0}

log = logging.getLogger("stagectl.color")
_WARNED: set[tuple] = set()  #: the double-EOTF pairs warned about (files and their modification times)


@dataclass(frozen=True)
class Calibration:
    """A wall's calibration on one output (module docstring). ``kind``: ``clf`` (stagectl's CLF, ``clf``),
    ``files`` (OpenVPCal's ``lut`` .cube and/or its 1D EOTF ``clf``) or ``config`` (``config``'s ``display`` /
    ``view``). Paths are absolute; ``where`` is the stage file key it came from (for messages)."""

    kind: str
    clf: str | None = None
    lut: str | None = None
    config: str | None = None
    display: str | None = None
    view: str | None = None
    where: str = field(default="", compare=False)

    def describe(self) -> str:
        if self.kind == "config":
            return f"{Path(self.config).name}: {self.display} / {self.view}"
        return " + ".join(Path(p).name for p in (self.clf, self.lut) if p)


@dataclass(frozen=True)
class OutputColour:
    """One output's canvas and encode (see the module docstring). ``mode``: ``legacy``, ``transfer`` or
    ``display``. ``peak_nits``: PQ clip / HLG nominal peak / BT.1886 white (cd/m^2); ``gamma``: the
    ``gamma`` curve's exponent (BT.1886 uses 2.4); ``gamut_compress``: the ACES 1.3 reference gamut
    compression before the encode."""

    format: str = "rgba8"
    transfer: str | None = None
    peak_nits: float | None = None
    gamma: float = 2.2
    range: str = "full"
    target: str | None = None
    display: str | None = None
    view: str | None = None
    calibration: Calibration | None = None
    gamut_compress: bool = False

    @property
    def bits(self) -> int:
        return FORMAT_BITS[self.format]

    @property
    def narrow(self) -> bool:
        return self.range == "narrow"

    @property
    def mode(self) -> str:
        if self.display is not None:
            return "display"
        if self.format == "rgba8" and self.transfer in (None, "srgb") and self.range == "full" and \
                self.calibration is None and not self.gamut_compress:
            return "legacy"
        return "transfer"

    @property
    def deep(self) -> bool:
        return self.format != "rgba8"

    def describe(self) -> str:
        rgc = ", ACES gamut compression" if self.gamut_compress else ""
        if self.calibration is not None:
            return f"{self._plain()}{rgc}, calibrated ({self.calibration.describe()})"
        return self._plain() + rgc

    def _plain(self) -> str:
        rng = ", narrow range" if self.narrow else ""
        if self.mode == "legacy":
            return f"{self.format} sRGB (stagectl's encode){rng}"
        if self.mode == "display":
            return f"{self.format} {self.display} / {self.view}{rng}"
        t = self.transfer or "srgb"
        extra = f" {self.peak_nits:g} nits" if t in ("pq", "hlg") else (f" {self.gamma:g}" if t == "gamma" else "")
        return f"{self.format} {t}{extra} in {self.target}{rng}"


LEGACY = OutputColour()  #: every output of a stage without a ``colour:`` section


@dataclass(frozen=True)
class ColourSettings:
    """The parsed ``colour:`` section: the config (``config``: ``ocio://...`` or an absolute path), the working
    space, per output key its :class:`OutputColour` (every output of the stage is listed), and the looks of
    the walls (``walls``: wall name -> :class:`~stagectl.color.ocio.LookSpec`, for the outer image) and of the
    cameras (``cameras``: camera name -> ``LookSpec``, for its inner frustum); only those with a look or a
    working space of their own are listed."""

    config: str
    working_space: str
    outputs: dict[str, OutputColour] = field(default_factory=dict)
    walls: dict[str, LookSpec] = field(default_factory=dict)
    cameras: dict[str, LookSpec] = field(default_factory=dict)

    def output(self, key: str) -> OutputColour:
        return self.outputs.get(key, LEGACY)


def output_colour(stage, key: str) -> OutputColour:
    """The :class:`OutputColour` of output ``key`` of ``stage`` (legacy without a ``colour:`` section)."""
    settings = getattr(stage, "colour", None)
    return LEGACY if settings is None else settings.output(key)


def looks_of(stage, kind: str) -> dict[str, LookSpec]:
    """The looks of ``stage``'s walls (``kind`` ``"walls"``) or cameras (``"cameras"``): name ->
    :class:`~stagectl.color.ocio.LookSpec` (empty without a ``colour:`` section)."""
    settings = getattr(stage, "colour", None)
    return {} if settings is None else dict(getattr(settings, kind))


def look_keys(stage) -> dict[str, LookSpec]:
    """The looks the console's ``color.look`` switches: ``"wall:<name>"`` / ``"camera:<name>"`` ->
    :class:`~stagectl.color.ocio.LookSpec`, for every wall and camera of ``stage`` with a look (a working space
    alone has no look to switch)."""
    got = {}
    for kind, prefix in (("walls", "wall"), ("cameras", "camera")):
        for name, spec in looks_of(stage, kind).items():
            if spec.looks:
                got[f"{prefix}:{name}"] = spec
    return got


def config_for(source: str):
    """The loaded :class:`~stagectl.color.ocio.ColorConfig` of ``source`` (loaded once per process,
    :func:`stagectl.color.ocio.shared_config`)."""
    from stagectl.color.ocio import shared_config

    return shared_config(source)


# --------------------------------------------------------------------------------------------- parsing


def _config_source(text: str, base_dir: Path) -> tuple[str, bool]:
    """``(source, is_builtin)``: ``ocio://name`` for a built-in, else the absolute path."""
    if text.startswith("ocio://"):
        return text, True
    p = Path(text)
    if p.suffix.lower() in (".ocio", ".ocioz") or len(p.parts) > 1 or p.is_absolute():
        return str(p if p.is_absolute() else base_dir / p), False
    return "ocio://" + text, True


def _canvas(ctx, r, base: dict) -> dict:
    from stagectl.config.reader import INVALID, number, one_of

    got = dict(base)
    fmt = r.opt("format", one_of(*CANVAS_FORMATS), None)
    transfer = r.opt("transfer", one_of(*CANVAS_TRANSFERS), None)
    peak = r.opt("peak_nits", number(lo=1.0, hi=10000.0), None)
    gamma = r.opt("gamma", number(lo=1.0, hi=4.0), None)
    rng = r.opt("range", one_of(*CODE_RANGES), None)
    r.done()
    for k, v in (("format", fmt), ("transfer", transfer), ("peak_nits", peak), ("gamma", gamma), ("range", rng)):
        if v is INVALID:
            got["_bad"] = True
        elif v is not None:
            got[k] = v
            got[f"_{k}_node"] = r.node_of(k)
    return got


#: the three forms of a calibration, as errors name them
CALIBRATION_FORMS = ("{clf: PATH} (stagectl calibrate colour), {lut: PATH.cube, clf: PATH.clf} (OpenVPCal's "
                     "3D LUT and 1D EOTF CLF) or {config: PATH, display: D, view: V} (a calibrated OCIO config)")


def _calibration(ctx, node: Node, path: str) -> dict | None:
    """The raw ``calibration`` mapping at ``node`` (``path`` its key): paths made absolute and checked to exist,
    the form told apart; the names and files are checked against OCIO in :func:`_resolve_calibration`. None
    after an error (recorded in ``ctx``)."""
    from stagectl.config.reader import INVALID, MapReader, describe, string

    if not isinstance(node, MappingNode):
        ctx.error(node, path, f"expected a mapping: {CALIBRATION_FORMS}, got {describe(node)}")
        return None
    n = len(ctx.errors)
    r = MapReader(ctx, node, path)
    vals = {k: r.opt(k, string(), None) for k in ("clf", "lut", "config", "display", "view")}
    r.done()
    if len(ctx.errors) != n or any(v is INVALID for v in vals.values()):
        return None
    given = {k for k, v in vals.items() if v is not None}
    if not given:
        ctx.error(node, path, f"expected {CALIBRATION_FORMS}, got an empty mapping")
        return None
    if "config" in given or given & {"display", "view"}:
        kind = "config"
        extra = sorted(given & {"clf", "lut"})
        if extra:
            k = extra[0]
            ctx.error(r.node_of(k), f"{path}.{k}", f"expected no {k} beside config/display/view (the config's view "
                                                   f"holds the whole calibration), got {vals[k]!r}")
            return None
        for k in ("config", "display"):
            if vals[k] is None:
                ctx.error(node, f"{path}.{k}", f"expected the calibrated OCIO config's {k} beside "
                                               f"{' and '.join(sorted(given))}, got none")
                return None
    else:
        kind = "files" if "lut" in given else "clf"
    raw: dict = {"kind": kind, "where": path, "_node": node}
    suffixes = {"clf": (".clf", ".ctf"), "lut": (".cube",), "config": (".ocio", ".ocioz")}
    for k in ("clf", "lut", "config"):
        if vals[k] is None:
            continue
        full = Path(vals[k]) if Path(vals[k]).is_absolute() else ctx.base_dir / vals[k]
        want = {"clf": "a .clf (or .ctf) file", "lut": "a .cube 3D LUT file", "config": "a .ocio config file"}[k]
        if full.suffix.lower() not in suffixes[k]:
            ctx.error(r.node_of(k), f"{path}.{k}", f"expected {want}, got {vals[k]!r}")
            return None
        if not full.is_file():
            ctx.error(r.node_of(k), f"{path}.{k}", f"expected {want}, got {vals[k]!r} (no file {full})")
            return None
        raw[k] = str(full)
        raw[f"_{k}_node"] = r.node_of(k)
    for k in ("display", "view"):
        if vals[k] is not None:
            raw[k] = vals[k]
            raw[f"_{k}_node"] = r.node_of(k)
    return raw


def _entry(ctx, r, base: dict, *, calibration: bool = True) -> dict:
    """One ``output`` / ``outputs.<key>`` mapping over ``base`` (raw values with their nodes); ``calibration``:
    whether it may hold one (an output may, the defaults may not)."""
    from stagectl.config.reader import INVALID, boolean, string

    got = dict(base)
    c = r.sub("canvas", required=False)
    if c is not None:
        got = _canvas(ctx, c, got)
    if calibration:
        r.used.add("calibration")
        cnode = r.node_of("calibration")
        if cnode is not None:
            cal = _calibration(ctx, cnode, r.key_path("calibration"))
            if cal is None:
                got["_bad"] = True
            else:
                got["calibration"] = cal
    for key, conv in (("display", string()), ("view", string()), ("target", string()),
                      ("gamut_compress", boolean())):
        v = r.opt(key, conv, None)
        if v is INVALID:
            got["_bad"] = True
        elif v is not None:
            got[key] = v
            got[f"_{key}_node"] = r.node_of(key)
    r.done()
    # an output's own display replaces an inherited transfer, and its own transfer an inherited display
    own = {k for k in ("display", "view", "transfer", "peak_nits", "target") if f"_{k}_node" in got
           and got.get(f"_{k}_node") is not base.get(f"_{k}_node")}
    drop = ()
    if own & {"display", "view"}:
        drop = ("transfer", "peak_nits", "target")
    elif "transfer" in own:
        drop = ("display", "view")
    for k in drop:
        if k not in own:
            got.pop(k, None)
            got.pop(f"_{k}_node", None)
    if c is not None and not c.ok:
        got["_bad"] = True
    return got


def _display_view(cfg, name: str, display: str, view: str | None, err) -> str | None:
    """``view`` (default: the display's default view) once ``display`` and ``view`` are checked against ``cfg``
    (``name``: how errors name the config); None after ``err(key, message)``."""
    if display not in cfg.displays():
        err("display", f"expected a display of OCIO config {name!r} ({', '.join(cfg.displays())}), got {display!r}")
        return None
    if view is None:
        return cfg.default_view(display)
    views = cfg.views(display)
    if view not in views:
        err("view", f"expected a view of display {display!r} ({', '.join(views)}), got {view!r}")
        return None
    return view


def _resolve_calibration(ctx, cfg, ws: str, raw: dict, oc: OutputColour) -> Calibration | None:
    """The :class:`Calibration` of ``raw`` on output ``oc``, checked by building it with OCIO; None after an
    error."""
    where = raw["where"]

    def node(k: str) -> Node:
        return raw.get(f"_{k}_node") or raw["_node"]

    if oc.mode == "display" and raw.get("clf") is not None:
        ctx.error(node("clf"), f"{where}.clf", "expected no clf on a display/view output (a calibration CLF runs "
                  "in the target-linear light of a transfer output; a display/view output takes a .cube or a "
                  f"calibrated config), got {Path(raw['clf']).name!r}")
        return None
    view = raw.get("view")
    if raw["kind"] == "config":
        try:
            other = config_for(raw["config"])
        except ColorError as exc:
            ctx.error(node("config"), f"{where}.config", f"expected an OCIO config OpenColorIO can load, got "
                                                          f"{Path(raw['config']).name!r} ({exc})")
            return None
        view = _display_view(other, Path(raw["config"]).name, raw["display"], view,
                             lambda k, message: ctx.error(node(k), f"{where}.{k}", message))
        if view is None:
            return None
    cal = Calibration(raw["kind"], clf=raw.get("clf"), lut=raw.get("lut"), config=raw.get("config"),
                      display=raw.get("display"), view=view, where=where)
    from stagectl.color.output import calibrated_processor

    try:
        calibrated_processor(cfg, ws, replace(oc, calibration=cal))
    except ColorError as exc:
        ctx.error(raw["_node"], where, f"expected a calibration OpenColorIO can apply ({CALIBRATION_FORMS}), "
                                       f"got {cal.describe()!r}: {exc}")
        return None
    if cal.kind == "files" and cal.lut and cal.clf:
        _warn_double_eotf(ctx, cfg, ws, raw, replace(oc, calibration=cal))
    return cal


def _gamut_compress_ok(ctx, cfg, ws: str, raw: dict, where: str, fallback_node: Node) -> bool:
    """Whether ``cfg`` can run the gamut compression (it needs ACES2065-1); else one error, False."""
    from stagectl.color.output import gamut_compress_transforms

    try:
        gamut_compress_transforms(cfg, ws)
    except ColorError as exc:
        ctx.error(raw.get("_gamut_compress_node") or fallback_node, f"{where}.gamut_compress",
                  f"expected an OCIO config with ACES2065-1 for the ACES gamut compression, got {cfg.name!r} "
                  f"({exc})")
        return False
    return True


def _warn_double_eotf(ctx, cfg, ws: str, raw: dict, oc: OutputColour) -> None:
    """Warn once (per pair of files as they are now) when ``oc``'s OpenVPCal ``.cube`` already holds its
    ``.clf``'s EOTF correction (:func:`stagectl.color.output.double_eotf_check`)."""
    from stagectl.color.output import double_eotf_check

    cal = oc.calibration
    try:
        key = tuple((f, Path(f).stat().st_mtime_ns, Path(f).stat().st_size) for f in (cal.lut, cal.clf))
    except OSError:
        return
    if key in _WARNED:
        return
    why = double_eotf_check(cfg, ws, oc)
    if why is not None:
        _WARNED.add(key)
        from stagectl.config.reader import line_of

        line = line_of(raw.get("_lut_node") or raw["_node"])
        log.warning("%s:%s: %s: %s", ctx.file, line, raw["where"], why)


def _resolve_plain(ctx, cfg, raw: dict, where: str, fallback_node: Node) -> OutputColour | None:
    """:func:`_resolve` without the calibration."""

    def node(k: str) -> Node:
        return raw.get(f"_{k}_node") or fallback_node

    def err(k: str, message: str) -> None:
        ctx.error(node(k), f"{where}.{'canvas.' if k in ('format', 'transfer', 'peak_nits', 'gamma', 'range') else ''}{k}",
                  message)

    fmt = raw.get("format", "rgba8")
    rgc = bool(raw.get("gamut_compress", False))
    transfer = raw.get("transfer")
    display, view, target = raw.get("display"), raw.get("view"), raw.get("target")
    peak, gamma = raw.get("peak_nits"), raw.get("gamma", 2.2)
    if display is not None or view is not None:
        for k in ("transfer", "peak_nits", "target"):
            if raw.get(k) is not None:
                err(k, f"expected no {k} beside a display/view (the display sets the encoding), got "
                       f"{raw[k]!r}")
                return None
        if display is None:
            err("view", f"expected a display beside the view (one of {', '.join(cfg.displays())}), got none")
            return None
        view = _display_view(cfg, cfg.name, display, view, err)
        if view is None:
            return None
        return OutputColour(format=fmt, range=raw.get("range", "full"), display=display, view=view,
                            gamut_compress=rgc)
    kind = transfer or "srgb"
    if peak is not None and kind not in _PEAK_DEFAULT:
        err("peak_nits", f"expected no peak_nits for transfer {kind} (pq, hlg and bt1886 take one), got {peak:g}")
        return None
    if raw.get("gamma") is not None and kind != "gamma":
        err("gamma", f"expected no gamma for transfer {kind} (only transfer gamma takes one), got {gamma:g}")
        return None
    peak = _PEAK_DEFAULT.get(kind) if peak is None else float(peak)
    lo, hi = HLG_PEAK_NITS_RANGE
    if kind == "hlg" and not lo <= peak <= hi:
        err("peak_nits", f"expected {lo:g}..{hi:g} nits for hlg (the displays BT.2100's system gamma "
                         f"1.2 + 0.42 log10(peak / 1000) was derived for; a brighter or dimmer wall: pq), "
                         f"got {peak:g}")
        return None
    out = OutputColour(format=fmt, transfer=kind, peak_nits=peak, gamma=float(gamma),
                       range=raw.get("range", "full"), gamut_compress=rgc)
    if out.mode == "legacy" and target is None:
        return out
    target = DEFAULT_TARGETS[kind] if target is None else target
    try:
        cfg.check_color_space(target)
    except ColorError:
        err("target", f"expected a colour space of OCIO config {cfg.name!r} (a linear one, e.g. "
                      f"{DEFAULT_TARGETS[kind]!r}), got {target!r}")
        return None
    return OutputColour(format=fmt, transfer=kind, peak_nits=peak, gamma=float(gamma),
                        range=raw.get("range", "full"), target=target, gamut_compress=rgc)


def parse_colour(ctx, r, outputs, walls=None, cameras=None) -> ColourSettings | None:
    """Read the ``colour:`` section (a :class:`stagectl.config.reader.MapReader`; None when the stage has none)
    for the stage's output keys ``outputs``; ``walls``: output key -> the walls its mappings show (the
    ``walls:`` section's names; None: none); ``cameras``: the stage's camera names (the ``cameras:``
    section's). Returns None when absent; ``INVALID`` after an error (recorded in ``ctx`` as
    ``file:line: key: expected ..., got ...``)."""
    from stagectl.config.reader import INVALID, MapReader, describe, string

    if r is None:
        return None
    outputs = list(outputs)
    shown = {k: tuple(dict.fromkeys((walls or {}).get(k, ()))) for k in outputs}
    text = r.opt("config", string(), "ocio://studio-config-latest")
    ws = r.opt("working_space", string(), None)
    defaults: dict = {}
    d = r.sub("output", required=False)
    if d is not None:
        d.used.add("calibration")
        if d.node_of("calibration") is not None:
            ctx.error(d.node_of("calibration"), d.key_path("calibration"), "expected a calibration per output "
                      "(outputs.<key>.calibration) or per wall (walls.<wall>.calibration), not in the defaults of "
                      "every output, got one")
        defaults = _entry(ctx, d, {}, calibration=False)
    wall_names = sorted({w for v in shown.values() for w in v})
    wall_entries = _entries(ctx, r, "walls", wall_names, "wall", calibration=True)
    camera_entries = _entries(ctx, r, "cameras", list(cameras or ()), "camera", calibration=False)
    per: dict[str, tuple[dict, Node, str]] = {}
    r.used.add("outputs")
    onode = r.node_of("outputs")
    if onode is not None:
        if not isinstance(onode, MappingNode):
            ctx.error(onode, r.key_path("outputs"), f"expected a mapping of output keys (processor/output), "
                                                    f"got {describe(onode)}")
        else:
            for knode, vnode in onode.value:
                key = str(knode.value)
                path = f"{r.key_path('outputs')}.{key}"
                if key not in outputs:
                    ctx.error(knode, path, f"expected an output of this stage ({', '.join(outputs)}), got {key!r}")
                    continue
                per[key] = (_entry(ctx, MapReader(ctx, vnode, path), defaults), vnode, path)
    r.done()
    if text is INVALID or ws is INVALID or not r.ok:
        return INVALID
    source, builtin = _config_source(text, ctx.base_dir)
    cnode = r.node_of("config") or r.node
    if not builtin and not Path(source).is_file():
        ctx.error(cnode, r.key_path("config"), f"expected an OCIO built-in (e.g. studio-config-latest) or a "
                                               f".ocio file, got {text!r} (no file {source})")
        return INVALID
    try:
        cfg = config_for(source)
    except ColorError as exc:
        ctx.error(cnode, r.key_path("config"), f"expected an OCIO config OpenColorIO can load, got {text!r} "
                                               f"({exc})")
        return INVALID
    if ws is None:
        try:
            ws = cfg.working_space
        except ColorError:
            ctx.error(r.node, r.key_path("working_space"), f"expected a working space (OCIO config "
                                                           f"{cfg.name!r} has no scene_linear role), got none")
            return INVALID
    else:
        try:
            cfg.check_color_space(ws)
        except ColorError:
            ctx.error(r.node_of("working_space"), r.key_path("working_space"),
                      f"expected a colour space of OCIO config {cfg.name!r} (e.g. {cfg.working_space!r}), "
                      f"got {ws!r}")
            return INVALID
    if wall_entries is None or camera_entries is None:
        return INVALID
    bad_looks = False
    wall_cals, wall_looks = wall_entries
    looks: dict[str, dict[str, LookSpec]] = {"walls": {}, "cameras": {}}
    for kind, raws in (("walls", wall_looks), ("cameras", camera_entries[1])):
        for name, raw in raws.items():
            spec = _resolve_look(ctx, cfg, source, ws, raw)
            if spec is None:
                bad_looks = True
                continue
            if not spec.is_identity:
                looks[kind][name] = spec
    resolved: dict[str, OutputColour] = {}
    bad = bad_looks
    defaults_said = False
    for key in outputs:
        if key in per:
            raw, vnode, path = per[key]
        else:
            raw, vnode, path = defaults, (d.node if d is not None else r.node), r.key_path("output")
        if raw.get("_bad"):
            bad = True
            continue
        oc = None if defaults_said and key not in per else _resolve_plain(ctx, cfg, raw, path, vnode)
        if oc is not None and oc.gamut_compress and not _gamut_compress_ok(ctx, cfg, ws, raw, path, vnode):
            oc = None
        if oc is None:
            bad = True
            defaults_said = defaults_said or key not in per  # the defaults are wrong: said once
            continue
        cal = raw.get("calibration")
        if cal is None:
            cal = _wall_calibration(ctx, key, shown[key], wall_cals, r.key_path("outputs"))
            if cal is False:
                bad = True
                continue
        if cal is not None:
            c = _resolve_calibration(ctx, cfg, ws, cal, oc)
            if c is None:
                bad = True
                continue
            oc = replace(oc, calibration=c)
        resolved[key] = oc
    if bad:
        return INVALID
    return ColourSettings(config=source, working_space=ws, outputs=resolved, walls=looks["walls"],
                          cameras=looks["cameras"])


def _suggest(name: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _look_names(ctx, node: Node, path: str) -> tuple[str, ...] | None:
    """``look: NAME`` or ``look: [NAMES]`` (non-empty text values); None after an error."""
    from yaml.nodes import ScalarNode, SequenceNode

    from stagectl.config.reader import describe

    want = "a look name of the OCIO config or a list of them"
    items = node.value if isinstance(node, SequenceNode) else [node]
    names = []
    for n in items:
        if not isinstance(n, ScalarNode) or n.tag == "tag:yaml.org,2002:null" or not str(n.value).strip():
            ctx.error(n, path, f"expected {want}, got {describe(n)}")
            return None
        names.append(str(n.value))
    if not names:
        ctx.error(node, path, f"expected {want}, got an empty list")
        return None
    return tuple(names)


def _entries(ctx, r, section: str, names: list[str], what: str, *, calibration: bool):
    """The ``walls:`` (``calibration: True``) or ``cameras:`` section: ``(calibrations, looks)``, name -> raw
    calibration (:func:`_calibration`) and name -> raw look (``looks``, ``working_space`` and their nodes);
    None after an error. ``names``: the stage's walls (those its outputs show) or cameras; ``what``: how
    errors name one."""
    from stagectl.config.reader import INVALID, MapReader, describe, string

    r.used.add(section)
    node = r.node_of(section)
    cals: dict[str, dict] = {}
    looks: dict[str, dict] = {}
    if node is None:
        return cals, looks
    path = r.key_path(section)
    keys = ("calibration, look, working_space" if calibration else "look, working_space")
    if not isinstance(node, MappingNode):
        ctx.error(node, path, f"expected a mapping of {what} names to {{{keys}}}, got {describe(node)}")
        return None
    ok = True
    for knode, vnode in node.value:
        name = str(knode.value)
        at = f"{path}.{name}"
        if name not in names:
            which = "wall some output shows" if calibration else f"{what} of this stage"
            ctx.error(knode, at, f"expected a {which} ({', '.join(names) or 'none'}), got {name!r}"
                                 f"{_suggest(name, names)}")
            ok = False
            continue
        n = len(ctx.errors)
        w = MapReader(ctx, vnode, at)
        if calibration:
            w.used.add("calibration")
        w.used.add("look")
        cnode, lnode = w.node_of("calibration") if calibration else None, w.node_of("look")
        space = w.opt("working_space", string(), None)
        w.done()
        if not w.ok or len(ctx.errors) != n or space is INVALID:
            ok = False
            continue
        if cnode is None and lnode is None and space is None:
            ctx.error(vnode, at, f"expected the {what}'s {keys.replace(', w', ' or w')}, got an empty mapping")
            ok = False
            continue
        if cnode is not None:
            cal = _calibration(ctx, cnode, f"{at}.calibration")
            if cal is None:
                ok = False
            else:
                cals[name] = cal
        if lnode is not None or space is not None:
            names_ = () if lnode is None else _look_names(ctx, lnode, f"{at}.look")
            if names_ is None:
                ok = False
                continue
            looks[name] = {"looks": names_, "working_space": space, "where": at, "_node": vnode,
                           "_look_node": lnode, "_working_space_node": w.node_of("working_space")}
    return (cals, looks) if ok else None


def _resolve_look(ctx, cfg, source: str, ws: str, raw: dict) -> LookSpec | None:
    """The :class:`~stagectl.color.ocio.LookSpec` of a raw ``walls.<wall>`` / ``cameras.<camera>`` entry,
    its names checked against ``cfg`` (and the whole built once by OpenColorIO); None after an error."""
    from stagectl.color.ocio import LookSpec, look_processor

    where = raw["where"]
    for n in raw["looks"]:
        if n not in cfg.looks():
            listed = ", ".join(repr(x) for x in cfg.looks()) or "none"
            ctx.error(raw["_look_node"], f"{where}.look", f"expected a look of OCIO config {cfg.name!r} "
                      f"({listed}), got {n!r}{_suggest(n, cfg.looks())}")
            return None
    space = raw["working_space"]
    if space is not None:
        node = raw["_working_space_node"]
        try:
            cfg.check_color_space(space)
        except ColorError:
            ctx.error(node, f"{where}.working_space", f"expected a scene-linear colour space of OCIO config "
                      f"{cfg.name!r} (e.g. {ws!r}), got {space!r}{_suggest(space, cfg.color_spaces())}")
            return None
        enc = cfg.encoding(space)
        if enc not in ("", "scene-linear"):
            ctx.error(node, f"{where}.working_space", f"expected a scene-linear colour space of OCIO config "
                      f"{cfg.name!r} (the operator's exposure and white balance multiply light in it; a look "
                      f"that works in log has its own process space in the config), got {space!r} "
                      f"(encoding {enc})")
            return None
    spec = LookSpec(source, ws, raw["looks"], space)
    try:
        look_processor(spec)
    except ColorError as exc:
        ctx.error(raw["_look_node"] or raw["_node"], where, f"expected looks OpenColorIO can apply, got "
                                                             f"{spec.describe()!r}: {exc}")
        return None
    return spec


def _wall_calibration(ctx, key: str, walls: tuple[str, ...], cals: dict[str, dict], outputs_path: str):
    """The calibration output ``key`` takes from the walls it shows: None (none has one), the raw calibration
    (every wall it shows has that one), or False after an error (walls with different calibrations, or some
    without)."""
    got = [cals.get(w) for w in walls]
    if all(c is None for c in got):
        return None
    first = next(c for c in got if c is not None)
    if all(c is first for c in got):
        return first
    with_cal = [w for w, c in zip(walls, got) if c is first]
    others = [w for w, c in zip(walls, got) if c is not first]
    ctx.error(first["_node"], first["where"],
              f"expected every wall output {key} shows to have this calibration (it also shows "
              f"{', '.join(others)}, with {'another' if any(cals.get(w) for w in others) else 'none'}); give the "
              f"output its own ({outputs_path}.{key}.calibration), got it on {', '.join(with_cal)} only")
    return False
