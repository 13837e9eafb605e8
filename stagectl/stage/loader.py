"""Load and validate a stage description (``stages/*.yaml``, schema version 1).

Every problem is reported as ``file:line: key: what was expected`` and all problems of a file are reported
together (:class:`stagectl.core.errors.ConfigErrors`). The layout of the file is documented in docs/stage-file.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node, SequenceNode

from stagectl.config.reader import (
    INVALID,
    Context,
    Invalid,
    MapReader,
    boolean,
    describe,
    display_path,
    existing_file,
    integer,
    load_document,
    number,
    one_of,
    size2,
    string,
    vector,
)
from stagectl.core.camera_settings import CameraSettings, overscan_of, overscan_text
from stagectl.core.errors import ConfigErrors
from stagectl.core.fields import FieldError, value_of, values_of
from stagectl.core.sample import MotionLimits
from stagectl.core.timebase import STANDARD_RATES, FrameRate
from stagectl.lens.lensfile import load_lens_file
from stagectl.stage import geometry as geo
from stagectl.stage.features import parse_features
from stagectl.stage.model import (
    CONSOLE_GROUPS,
    SCHEMA_VERSION,
    AdaptiveOverscanSettings,
    Cabinet,
    Camera,
    ConsolePaths,
    ConsoleSettings,
    InnerRender,
    Mapping,
    OscAllow,
    OscConsoleSettings,
    OuterRender,
    Output,
    Processor,
    RenderSettings,
    Stage,
    SyncSettings,
    TrackingRegistration,
    TrackingSource,
    Wall,
    WebConsoleSettings,
    ZmqConsoleSettings,
)

__all__ = ["load_stage", "WALL_TYPES", "PROTOCOLS", "ENCODER_PROFILES", "SIMULATED_MOVES"]

WALL_TYPES = ("flat", "curved", "ceiling")
PROCESSOR_KINDS = ("brompton", "helios", "generic")
PROTOCOLS = ("freed", "opentrackio", "osc")
DEFAULT_PORTS = {"freed": 40000, "opentrackio": 55555, "osc": 9000}
ENCODER_PROFILES = ("generic", "panasonic", "sony", "mosys", "stype", "ncam", "zcam", "syncrolink")
SIMULATED_MOVES = ("orbit", "dolly", "pan", "crane", "handheld")
GENLOCK_SOURCES = ("internal", "vsync")
CLOCKS = ("monotonic", "system")
ROTATIONS = (0, 90, 180, 270)
NAME = string()


def _frame_rate(ctx: Context, node: Node, path: str) -> FrameRate:
    try:
        value = node.value if node.tag == "tag:yaml.org,2002:str" else _plain(node)
        return FrameRate.parse(value, allowed=STANDARD_RATES)
    except (ValueError, TypeError) as exc:
        raise Invalid(str(exc)) from None


def _plain(node: Node):
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _ip(multicast: bool):
    def conv(ctx: Context, node: Node, path: str) -> str:
        text = string()(ctx, node, path)
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            raise Invalid(f"expected an IPv4 address such as 127.0.0.1, got {describe(node)}") from None
        if multicast and not addr.is_multicast:
            raise Invalid(f"expected an IPv4 multicast group (224.0.0.0/4), got {describe(node)}")
        return text

    return conv


def _camera_setting(check: Callable[[Any], Any], expected: str) -> Callable[[Context, Node, str], Any]:
    """A converter through one of the operator's camera-setting checks (:mod:`stagectl.core.camera_settings`):
    the stage file's value of a setting every camera starts with gets the verdict the state file and
    ``camera.set`` give it (``expected``: what the message says was expected)."""

    def conv(ctx: Context, node: Node, path: str) -> Any:
        try:
            return check(_plain(node))
        except (FieldError, ValueError, yaml.YAMLError):  # ValueError: an integer beyond 4300 digits
            raise Invalid(f"expected {expected}, got {describe(node)}") from None

    return conv


def _setting(name: str) -> Callable[[Context, Node, str], Any]:
    """The converter of the scalar camera setting ``name`` (``delay_frames``, ``soft_edge``)."""
    val = value_of(CameraSettings, name)
    return _camera_setting(lambda v: val.check(v, op=True), val.expected())


#: the settings' declared defaults, for the stage file's keys left out
_SETTING_DEFAULTS = {name: default for name, _, default in values_of(CameraSettings)}


#: render.inner.overscan_percent: one percentage or one per side, as CameraSettings.overscan_percent
_OVERSCAN = _camera_setting(overscan_of, overscan_text())


# ------------------------------------------------------------------ sections

def _bad(*values) -> bool:
    """True when any value failed validation (its error is already recorded)."""
    return any(v is INVALID for v in values)


def _cabinet(ctx: Context, r: MapReader) -> Cabinet | None:
    c = r.sub("cabinet")
    if c is None:
        return None
    size = c.req("size_mm", vector(2, number(lo=1.0, hi=5000.0), "[w, h] cabinet size in mm, each 1..5000"))
    px = c.req("pixels", size2("[w, h] positive integers"))
    c.done()
    if size is INVALID or px is INVALID:
        return None
    return Cabinet(size, px)


_KEYS_OF = {
    "flat": ("center", "rotation"),
    "ceiling": ("center", "yaw_deg"),
    "curved": ("center", "radius", "start_deg", "bottom", "end_deg"),
}
_PLACEMENT_KEYS = {k for keys in _KEYS_OF.values() for k in keys}


def _wall(ctx: Context, node: Node, path: str) -> Wall | None:
    r = MapReader(ctx, node, path)
    if not r.ok:
        return None
    name = r.req("name", NAME)
    kind = r.req("type", one_of(*WALL_TYPES))
    cab = _cabinet(ctx, r)
    grid = r.req("cabinets", vector(2, integer(lo=1, hi=10000), "[columns, rows] positive integers"))
    g = None
    params: dict = {}
    if kind == "flat":
        params["center"] = r.req("center", vector(3, what="[x, y, z] in metres"))
        params["rotation"] = r.opt("rotation", vector(3, number(-360, 360), "[pan, tilt, roll] in degrees"), (0.0, 0.0, 0.0))
    elif kind == "ceiling":
        params["center"] = r.req("center", vector(3, what="[x, y, z] in metres"))
        params["yaw_deg"] = r.opt("yaw_deg", number(-360, 360), 0.0)
    elif kind == "curved":
        params["center"] = r.req("center", vector(2, what="[x, y] arc centre in metres"))
        params["radius"] = r.req("radius", number(lo=0.1, hi=1000.0))
        params["start_deg"] = r.req("start_deg", number(-360, 360))
        params["bottom"] = r.opt("bottom", number(-100, 100), 0.0)
        params["end_deg"] = r.opt("end_deg", number(-720, 720), None)
    for key in sorted(_PLACEMENT_KEYS - set(params)):
        r.used.add(key)  # reported here, not as an unknown key
        if r.has(key) and kind in _KEYS_OF:
            ctx.error(r.entries[key][0], r.key_path(key), f"not used by a {kind} wall; its placement keys are {', '.join(_KEYS_OF[kind])}")
    r.done()
    if _bad(name, kind, grid, *params.values()) or cab is None:
        return None
    cols, rows = grid
    if kind == "flat":
        g = geo.flat_wall_geometry(params["center"], params["rotation"], cols, rows, cab.size_mm, cab.pixels)
    elif kind == "ceiling":
        g = geo.ceiling_geometry(params["center"], params["yaw_deg"], cols, rows, cab.size_mm, cab.pixels)
    else:
        radius, cw = params["radius"], cab.size_mm[0] / 1000.0
        if cw >= 2 * radius:
            ctx.error(r.entries["radius"][1], r.key_path("radius"), f"expected a radius larger than half a cabinet width ({cw / 2:g} m), got {radius:g}")
            return None
        step = geo.curved_facet_angle_deg(radius, cw)
        span = cols * step
        if span > 360.0:
            ctx.error(r.entries["cabinets"][1], r.key_path("cabinets"), f"{cols} columns of {cw:g} m on radius {radius:g} m span {span:.1f} degrees; expected at most 360")
            return None
        end = params["start_deg"] + span
        if params["end_deg"] is not None and abs(params["end_deg"] - end) > 0.05:
            ctx.error(r.entries["end_deg"][1], r.key_path("end_deg"), f"{cols} columns of {cw:g} m on radius {radius:g} m end at {end:.2f} degrees, got {params['end_deg']:g}; fix end_deg, radius or cabinets (or leave end_deg out)")
            return None
        params["end_deg"] = end
        g = geo.curved_wall_geometry(params["center"], radius, params["start_deg"], params["bottom"], cols, rows, cab.size_mm, cab.pixels)
    return Wall(name=name, type=kind, cabinet=cab, cabinets=(cols, rows), geometry=g, params=params, line=r.line)


def _mapping(ctx: Context, node: Node, path: str) -> Mapping | None:
    r = MapReader(ctx, node, path)
    wall = r.req("wall", NAME)
    rect = r.req("rect", vector(4, integer(lo=0), "[x, y, w, h] wall raster pixels, whole numbers >= 0"))
    at = r.opt("at", vector(2, integer(lo=0), "[x, y] canvas pixels, whole numbers >= 0"), (0, 0))
    rot = r.opt("rotation", integer(), 0)
    if rot is not INVALID and rot not in ROTATIONS:
        ctx.error(r.node_of("rotation"), r.key_path("rotation"), f"expected one of 0, 90, 180, 270 (clockwise degrees), got {rot}")
        rot = INVALID
    r.done()
    if _bad(wall, rect, at, rot) or not r.ok:
        return None
    if rect[2] == 0 or rect[3] == 0:
        ctx.error(r.node_of("rect"), r.key_path("rect"), f"expected a non-empty rectangle, got {list(rect)}")
        return None
    return Mapping(wall=wall, rect=rect, at=at, rotation=rot, line=r.line)


def _output(ctx: Context, node: Node, path: str) -> Output | None:
    r = MapReader(ctx, node, path)
    name = r.req("name", NAME)
    canvas = r.req("canvas", vector(2, integer(lo=1, hi=16384), "[w, h] canvas pixels, 1..16384"))
    node_name = r.opt("node", NAME, None)
    mappings = [_mapping(ctx, n, p) for _, n, p in r.items("mappings", min_len=1)]
    r.done()
    if _bad(name, canvas, node_name) or not r.ok:
        return None
    return Output(name=name, canvas=canvas, mappings=tuple(m for m in mappings if m is not None), node=node_name)


def _processor(ctx: Context, node: Node, path: str) -> Processor | None:
    r = MapReader(ctx, node, path)
    name = r.req("name", NAME)
    kind = r.opt("kind", one_of(*PROCESSOR_KINDS), "generic")
    outputs = [_output(ctx, n, p) for _, n, p in r.items("outputs", min_len=1)]
    r.done()
    if _bad(name, kind) or not r.ok:
        return None
    return Processor(name=name, kind=kind, outputs=tuple(o for o in outputs if o is not None))


def _tracking(ctx: Context, node: Node, path: str) -> TrackingSource | None:
    r = MapReader(ctx, node, path)
    name = r.req("name", NAME)
    protocol = r.req("protocol", one_of(*PROTOCOLS))
    bind = r.opt("bind", _ip(False), "0.0.0.0")
    port = r.opt("port", integer(lo=1, hi=65535), DEFAULT_PORTS.get(protocol, 0))
    group = r.opt("multicast_group", _ip(True), None)
    cam_id = r.opt("camera_id", integer(lo=0, hi=255), None)
    if protocol == "opentrackio" and isinstance(cam_id, int) and not 1 <= cam_id <= 200:
        ctx.error(r.node_of("camera_id"), r.key_path("camera_id"), f"expected an OpenTrackIO source number 1..200, got {cam_id}")
        cam_id = INVALID
    if protocol == "opentrackio" and group is None and isinstance(cam_id, int):
        group = f"239.135.1.{cam_id}"
    profile = r.opt("encoder_profile", one_of(*ENCODER_PROFILES), "generic")
    delay = r.opt("delay_frames", _setting("delay_frames"), _SETTING_DEFAULTS["delay_frames"])
    stale = r.opt("stale_after_ms", number(lo=1.0, hi=60000.0), 250.0)
    simulate = r.opt("simulate", one_of(*SIMULATED_MOVES), None)
    share = r.opt("share_group", boolean(), False)
    if share is True and group is None:
        ctx.error(r.node_of("share_group"), r.key_path("share_group"),
                  "expected false for a unicast source (only a multicast_group can be shared: a unicast port "
                  "delivers each packet to one program), got true")
        share = INVALID
    r.done()
    values = (name, protocol, bind, port, group, cam_id, profile, delay, stale, simulate, share)
    if _bad(*values) or not r.ok:
        return None
    return TrackingSource(*values)


def _check_tracking_ports(ctx: Context, sources: list[tuple[TrackingSource, Node]]) -> None:
    """Two sources of a stage must not listen on one port: a unicast port delivers each packet to one socket
    only, and the receivers bind exclusively (stagectl/tracking/receiver.py), so the second could not start.
    Their addresses overlap when the port is equal and the bound addresses (the group for multicast, else
    ``bind``) are equal or either is ``0.0.0.0``. Two multicast sources on one group share it only when both
    say ``share_group: true``."""
    seen: list[tuple[TrackingSource, int | None, str]] = []
    for i, (src, node) in enumerate(sources):
        addr = src.multicast_group if src.multicast_group is not None else src.bind
        for other, line, other_addr in seen:
            if other.port != src.port or not (addr == other_addr or "0.0.0.0" in (addr, other_addr)):
                continue
            both_groups = src.multicast_group is not None and other.multicast_group is not None
            if both_groups and src.share_group and other.share_group:
                continue
            where = (f"group {other.multicast_group}:{other.port}" if other.multicast_group is not None
                     else f"{other.bind}:{other.port}")
            hint = (f"; to share multicast group {addr} on purpose, set share_group: true on both"
                    if both_groups and addr == other_addr else
                    "; a tracker's packets reach one socket only: send each tracker to a port of its own")
            ctx.error(line_of_node(node), f"tracking[{i}].port",
                      f"expected a port no other tracking source listens on, got {src.port}: source "
                      f"{other.name!r} (line {line}) already listens on {where}{hint}")
            break
        seen.append((src, line_of_node(node), addr))


def _camera(ctx: Context, node: Node, path: str) -> tuple[Camera | None, Node | None]:
    r = MapReader(ctx, node, path)
    name = r.req("name", NAME)
    tracking = r.req("tracking", NAME)
    off = r.sub("tracker_offset", required=False)
    t, rot = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    if off is not None:
        t = off.opt("translation", vector(3, number(-10, 10), "[x, y, z] metres, each within 10 m"), t)
        rot = off.opt("rotation", vector(3, number(-360, 360), "[pan, tilt, roll] degrees"), rot)
        off.done()
    sensor = r.req("sensor_mm", vector(2, number(lo=1.0, hi=100.0, lo_open=False), "[w, h] sensor size in mm, each 1..100"))
    lens = r.opt("lens", existing_file, None)
    limits = _motion_limits(r.sub("motion_limits", required=False))
    r.done()
    if _bad(name, tracking, t, rot, sensor, lens, limits) or not r.ok:
        return None, None
    lens_file = None
    if lens is not None:
        try:
            lens_file = load_lens_file(lens, display=display_path(lens))
        except ConfigErrors as exc:  # the lens file's own file:line errors join the stage's
            ctx.errors.extend(exc.errors)
            return None, None
    return Camera(name, tracking, t, rot, sensor, lens, lens_file, limits), r.node_of("tracking")


# cameras[].motion_limits: key -> (lowest, highest) accepted value; defaults are MotionLimits' (docs/stage-file.md)
MOTION_LIMIT_RANGES = {
    "max_speed_m_s": (0.1, 1000.0),
    "max_accel_m_s2": (0.1, 10000.0),
    "max_angular_speed_deg_s": (1.0, 100000.0),
    "max_angular_accel_deg_s2": (1.0, 1000000.0),
    "max_distance_m": (1.0, 1000000.0),
}


def _motion_limits(r: MapReader | None) -> MotionLimits | object:
    """``cameras[].motion_limits`` (each key optional); INVALID when a value was refused (error recorded)."""
    if r is None:
        return MotionLimits()
    values = {key: r.opt(key, number(lo=lo, hi=hi), getattr(MotionLimits(), key))
              for key, (lo, hi) in MOTION_LIMIT_RANGES.items()}
    r.done()
    if _bad(*values.values()) or not r.ok:
        return INVALID
    return MotionLimits(**values)



def _render(ctx: Context, r: MapReader | None, walls=None, outputs=None) -> RenderSettings | None:
    defaults = RenderSettings(
        InnerRender((1920, 1080), _SETTING_DEFAULTS["overscan_percent"], _SETTING_DEFAULTS["soft_edge"]),
        OuterRender("procedural", (1024, 512), (0.0, 0.0, 1.7)),
    )
    if r is None:
        return defaults
    inner_r = r.sub("inner", required=False)
    outer_r = r.sub("outer", required=False)
    features = parse_features(ctx, r, walls=walls, outputs=outputs)
    r.done()
    inner, outer = defaults.inner, defaults.outer
    if inner_r is not None:
        adaptive = None
        ad = inner_r.sub("adaptive_overscan", required=False)
        if ad is not None:
            adaptive = AdaptiveOverscanSettings(
                ad.opt("max_percent", number(0.0, 200.0), 40.0),
                ad.opt("latency_ms", number(0.0, 2000.0), 150.0),
                ad.opt("decay_percent_per_s", number(0.1, 1000.0), 10.0),
                ad.opt("wall_distance_m", number(0.1, 1000.0), 5.0),
            )
            ad.done()
            if _bad(*adaptive.__dict__.values()):
                adaptive = INVALID
        inner = InnerRender(
            inner_r.opt("resolution", vector(2, integer(lo=16, hi=16384), "[w, h] pixels, 16..16384"), inner.resolution),
            inner_r.opt("overscan_percent", _OVERSCAN, inner.overscan_percent),
            inner_r.opt("soft_edge", _setting("soft_edge"), inner.soft_edge),
            adaptive,
        )
        inner_r.done()
    if outer_r is not None:
        content = outer_r.opt("content", NAME, outer.content)
        if isinstance(content, str) and content != "procedural":
            found = ctx.convert(outer_r.node_of("content"), outer_r.key_path("content"), existing_file)
            content = INVALID if found is INVALID else str(found)
        outer = OuterRender(
            content,
            outer_r.opt("resolution", vector(2, integer(lo=16, hi=16384), "[w, h] pixels, 16..16384"), outer.resolution),
            outer_r.opt("viewpoint", vector(3, what="[x, y, z] in metres"), outer.viewpoint),
        )
        outer_r.done()
    if _bad(*inner.__dict__.values(), *outer.__dict__.values(), features):
        return None
    return RenderSettings(inner, outer, features)


def _genlock(ctx: Context, node: Node, path: str) -> str:
    """``sync.genlock``: where the frame edges of ``stagectl run`` come from. ``cluster`` is refused with what to
    use instead: it was accepted once and never did anything -- render nodes always take their frames from the
    primary's frame states and swap barrier, whatever the stage file says."""
    if getattr(node, "value", None) == "cluster":
        raise Invalid(f"expected one of {', '.join(GENLOCK_SOURCES)}, got \"cluster\": render nodes (stagectl node) "
                      "always follow the primary's frame states and swap barrier; use internal (or vsync) for the "
                      "primary's edges and clock: system so that the nodes present at each frame's edge")
    return one_of(*GENLOCK_SOURCES)(ctx, node, path)


def _sync(ctx: Context, r: MapReader | None) -> SyncSettings | None:
    if r is None:
        return SyncSettings("internal", "monotonic", 0)
    genlock = r.opt("genlock", _genlock, "internal")
    clock = r.opt("clock", one_of(*CLOCKS), "monotonic")
    phase = r.opt("phase_offset_ms", number(-1000.0, 1000.0), 0.0)
    r.done()
    if _bad(genlock, clock, phase):
        return None
    return SyncSettings(genlock, clock, int(round(phase * 1e6)))


def _tracking_registration(ctx: Context, r: MapReader | None) -> TrackingRegistration | None:
    """``tracking_registration``: ``T_stage_tracking`` as position (m) and pan/tilt/roll (deg); identity when
    absent."""
    if r is None:
        return TrackingRegistration()
    position = r.opt("position", vector(3, number(-1000.0, 1000.0), "[x, y, z] metres, each within 1000 m"),
                     (0.0, 0.0, 0.0))
    rotation = r.opt("rotation", vector(3, number(-360, 360), "[pan, tilt, roll] degrees"), (0.0, 0.0, 0.0))
    r.done()
    if _bad(position, rotation) or not r.ok:
        return None
    return TrackingRegistration(tuple(float(v) for v in position), tuple(float(v) for v in rotation))


def _ip_or_network(ctx: Context, node: Node, path: str) -> str:
    text = string()(ctx, node, path)
    try:
        ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise Invalid(f"expected an IPv4 address or network such as 127.0.0.1 or 10.0.0.0/24, "
                      f"got {describe(node)}") from None
    return text


#: ``console.paths`` keys, in :class:`ConsolePaths` field order
_CONSOLE_PATH_KEYS = ("takes", "content", "luts")


def _console(ctx: Context, r: MapReader | None) -> ConsoleSettings | None:
    """``console``: the operator console's transports, state file and the folders commands may touch
    (docs/stage-file.md); paths relative to the stage file become absolute (``base / absolute`` is the
    absolute path itself)."""
    base = ctx.base_dir
    state_default = base / f"{Path(ctx.file).stem}.operator.json"
    default_paths = ConsolePaths(*(base / getattr(ConsolePaths(), k) for k in _CONSOLE_PATH_KEYS))
    if r is None:
        return ConsoleSettings(ZmqConsoleSettings(keys=base / "keys"), state_file=state_default,
                               paths=default_paths)
    port = integer(lo=1, hi=65535)
    zmq, osc, web = ZmqConsoleSettings(keys=base / "keys"), OscConsoleSettings(), WebConsoleSettings()
    ok = True
    z = r.sub("zmq", required=False)
    if z is not None:
        vals = (z.opt("bind", _ip(False), zmq.bind), z.opt("port", port, zmq.port),
                z.opt("state_port", port, zmq.state_port), z.opt("keys", NAME, "keys"))
        z.done()
        ok = ok and z.ok and not _bad(*vals)
        if ok:
            zmq = ZmqConsoleSettings(vals[0], vals[1], vals[2], base / vals[3])
    o = r.sub("osc", required=False)
    if o is not None:
        bind, oport = o.opt("bind", _ip(False), osc.bind), o.opt("port", port, osc.port)
        allow = list(osc.allow)
        if o.has("allow"):
            allow = []
            for _, n, p in o.items("allow"):
                a = MapReader(ctx, n, p)
                address = a.req("address", _ip_or_network)
                reply_port = a.opt("reply_port", port, None)
                a.used.add("write")
                wnode = a.node_of("write")
                write = CONSOLE_GROUPS
                if wnode is not None and isinstance(wnode, SequenceNode):
                    write = tuple(ctx.convert(g, f"{a.key_path('write')}[{i}]", one_of(*CONSOLE_GROUPS))
                                  for i, g in enumerate(wnode.value))
                elif wnode is not None:
                    ctx.error(wnode, a.key_path("write"),
                              f"expected a list of command groups ({', '.join(CONSOLE_GROUPS)}), "
                              f"got {describe(wnode)}")
                    write = INVALID
                a.done()
                if not a.ok or _bad(address, write, reply_port) or (write is not INVALID and _bad(*write)):
                    ok = False
                    continue
                allow.append(OscAllow(address, tuple(dict.fromkeys(write)), reply_port))
        o.done()
        ok = ok and o.ok and not _bad(bind, oport)
        if ok:
            osc = OscConsoleSettings(bind, oport, tuple(allow))
    w = r.sub("web", required=False)
    if w is not None:
        vals = (w.opt("bind", _ip(False), web.bind), w.opt("port", port, web.port))
        w.done()
        ok = ok and w.ok and not _bad(*vals)
        if ok:
            web = WebConsoleSettings(*vals)
    paths = default_paths
    pr = r.sub("paths", required=False)
    if pr is not None:
        folders = [pr.opt(k, NAME, None) for k in _CONSOLE_PATH_KEYS]
        pr.done()
        ok = ok and pr.ok and not _bad(*folders)
        if ok:
            paths = ConsolePaths(*(getattr(default_paths, k) if f is None else base / f
                                   for k, f in zip(_CONSOLE_PATH_KEYS, folders)))
    state_file = r.opt("state_file", NAME, None)
    r.done()
    if not ok or not r.ok or _bad(state_file):
        return None
    tcp = [("zmq.port", zmq.port, z), ("zmq.state_port", zmq.state_port, z), ("web.port", web.port, w)]
    for i, (key, value, sub) in enumerate(tcp):
        for key0, value0, _ in tcp[:i]:
            if value == value0:
                node = sub.node_of(key.split(".")[1]) if sub is not None else None
                ctx.error(node if node is not None else r.node, f"console.{key}",
                          f"expected a TCP port other than console.{key0} ({value0}), got {value}")
                return None
    sf = state_default
    if state_file is not None:
        sf = Path(state_file) if Path(state_file).is_absolute() else base / state_file
    return ConsoleSettings(zmq, osc, web, sf, paths)


# ------------------------------------------------------------ cross checks

def _unique(ctx: Context, items, kind: str, path: str) -> None:
    seen: dict[str, object] = {}
    for item, line in items:
        if item in seen:
            ctx.error(line, path, f"{kind} name {item!r} is used twice")
        seen[item] = line


def _check_mappings(ctx: Context, walls: list[Wall], processors: list[Processor]) -> None:
    import numpy as np

    by_name = {w.name: w for w in walls}
    owner: dict[str, np.ndarray] = {w.name: np.full((w.cabinets[1], w.cabinets[0]), -1, dtype=np.int64) for w in walls}
    labels: list[str] = []
    for pi, p in enumerate(processors):
        for oi, o in enumerate(p.outputs):
            placed: list[tuple[tuple[int, int, int, int], str]] = []
            for mi, m in enumerate(o.mappings):
                key = f"processors[{pi}].outputs[{oi}].mappings[{mi}]"
                label = f"{p.name}/{o.name} mapping {mi}"
                w = by_name.get(m.wall)
                if w is None:
                    ctx.error(m.line, f"{key}.wall", f"expected one of the walls {', '.join(sorted(by_name))}, got {m.wall!r}")
                    continue
                x, y, rw, rh = m.rect
                cw, ch = w.cabinet.pixels
                W, H = w.raster
                if x % cw or y % ch or rw % cw or rh % ch:
                    ctx.error(m.line, f"{key}.rect", f"expected a rectangle on cabinet boundaries of wall {w.name!r} (multiples of {cw} x {ch} px), got {list(m.rect)}")
                    continue
                if x + rw > W or y + rh > H:
                    ctx.error(m.line, f"{key}.rect", f"expected a rectangle inside wall {w.name!r} ({W} x {H} px), got {list(m.rect)}")
                    continue
                # a placement error on the canvas still maps the cabinets: report it without a cascade of gaps
                cx, cy, cwid, chei = m.canvas_rect
                clash = next((lab for r2, lab in placed if _overlap((cx, cy, cwid, chei), r2)), None)
                if cx + cwid > o.canvas[0] or cy + chei > o.canvas[1]:
                    ctx.error(m.line, key, f"falls off canvas {o.name!r} ({o.canvas[0]} x {o.canvas[1]}): it covers x {cx}..{cx + cwid}, y {cy}..{cy + chei} on the canvas")
                elif clash is not None:
                    ctx.error(m.line, key, f"overlaps {clash} on canvas {o.name!r}")
                placed.append(((cx, cy, cwid, chei), label))
                grid = owner[w.name][y // ch:(y + rh) // ch, x // cw:(x + rw) // cw]
                taken = np.argwhere(grid >= 0)
                if taken.size:
                    r0, c0 = taken[0]
                    other = labels[grid[r0, c0]]
                    ctx.error(m.line, key, f"maps cabinet (column {x // cw + c0}, row {y // ch + r0}) of wall {w.name!r} again; {other} already maps it")
                    continue
                grid[...] = len(labels)
                labels.append(label)
    for w in walls:
        missing = np.argwhere(owner[w.name] < 0)
        if missing.size:
            r0, c0 = missing[0]
            ctx.error(w.line, f"walls: {w.name}", f"{len(missing)} of {w.cabinet_count} cabinets are not mapped to any output (first: column {c0}, row {r0}); every cabinet must be mapped exactly once")


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


# ------------------------------------------------------------------- entry

def load_stage(path: str | Path) -> Stage:
    """Read, validate and build a :class:`Stage`; raises :class:`stagectl.core.errors.ConfigErrors`."""
    ctx, root = load_document(path)
    top = MapReader(ctx, root, "")
    version = top.req("schema_version", integer())
    if version is not INVALID and version != SCHEMA_VERSION:
        ctx.error(top.node_of("schema_version"), "schema_version", f"expected {SCHEMA_VERSION} (this stagectl reads stage schema {SCHEMA_VERSION}), got {version}")
        ctx.raise_if_errors()
    name = top.req("name", NAME)
    rate = top.req("frame_rate", _frame_rate)
    walls = [w for _, n, p in top.items("walls", min_len=1) if (w := _wall(ctx, n, p)) is not None]
    processors = [pr for _, n, p in top.items("processors", min_len=1) if (pr := _processor(ctx, n, p)) is not None]
    tracking_nodes = [(t, n) for _, n, p in top.items("tracking", required=False) if (t := _tracking(ctx, n, p)) is not None]
    tracking = [t for t, _ in tracking_nodes]
    cams = [_camera(ctx, n, p) for _, n, p in top.items("cameras", required=False)]
    render = _render(ctx, top.sub("render", required=False), walls=[w.name for w in walls],
                     outputs=[f"{p.name}/{o.name}" for p in processors for o in p.outputs])
    sync = _sync(ctx, top.sub("sync", required=False))
    registration = _tracking_registration(ctx, top.sub("tracking_registration", required=False))
    console = _console(ctx, top.sub("console", required=False))
    from stagectl.color.stagefile import parse_colour  # the colour section (docs/colour.md)

    colour = parse_colour(ctx, top.sub("colour", required=False),
                          outputs=[f"{p.name}/{o.name}" for p in processors for o in p.outputs],
                          walls={f"{p.name}/{o.name}": [m.wall for m in o.mappings] for p in processors
                                 for o in p.outputs},
                          cameras=[c.name for c, _ in cams if c is not None])
    top.done()
    ctx.raise_if_errors()

    _unique(ctx, [(w.name, w.line) for w in walls], "wall", "walls")
    _unique(ctx, [(p.name, None) for p in processors], "processor", "processors")
    _unique(ctx, [(f"{p.name}/{o.name}", None) for p in processors for o in p.outputs], "output", "processors")
    _unique(ctx, [(t.name, None) for t in tracking], "tracking source", "tracking")
    _check_tracking_ports(ctx, tracking_nodes)
    _unique(ctx, [(c.name, line_of_node(n)) for c, n in cams if c is not None], "camera", "cameras")
    source_names = {t.name for t in tracking}
    for i, (cam, node) in enumerate(cams):
        if cam is not None and cam.tracking not in source_names:
            expected = ", ".join(sorted(source_names)) or "(none: add a tracking section)"
            ctx.error(line_of_node(node), f"cameras[{i}].tracking", f"expected the name of a tracking source ({expected}), got {cam.tracking!r}")
    _check_mappings(ctx, walls, processors)
    ctx.raise_if_errors()
    assert render is not None and sync is not None
    return Stage(
        name=name,
        path=Path(path),
        frame_rate=rate,
        walls=tuple(walls),
        processors=tuple(processors),
        cameras=tuple(c for c, _ in cams if c is not None),
        tracking=tuple(tracking),
        render=render,
        sync=sync,
        console=console,
        tracking_registration=registration,
        colour=None if colour is INVALID else colour,
    )


def line_of_node(node: Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1
