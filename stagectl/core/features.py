"""Stage features as plain data (the operator's feature model) and their numpy reference maths.

Everything here is pure (numpy, no OpenGL). The frame plan (:mod:`stagectl.render.plan`) turns a
:class:`FeatureState` into uniforms; the composite shader (``shaders/composite.frag``) draws them; the numpy
functions here are the reference the tests compare the read-back canvases with.

Frames and units (docs/conventions.md): **wall UV** ``(u, v)`` is the normalised wall raster, origin top-left,
v down (``u = x / W``, ``v = y / H``); wall raster pixels have their centre at ``+0.5``. Colours are
**linear-light RGB** floats unless a name says otherwise; the chroma key colours are given, as nDisplay gives
them, as **sRGB-encoded** values 0..1 (so the default key ``(0, 128, 0) / 255`` lands on the canvas as the
codes ``(0, 128, 0)``).

Features (all off by default; a :class:`FeatureState` bundles one frame's worth):

* :class:`LightCard` — a rectangle on one wall in wall UV, colour x intensity, ``layer`` ``"over"`` (drawn
  over the inner frustum) or ``"under"`` (part of the outer image: the inner frustum hides it), optional
  feather (raster pixels). Weight at a pixel centre ``(x, y)``: ``d = min(x - x0, x1 - x, y - y0, y1 - y)``
  (raster pixels, positive inside), ``a = clamp(d / feather, 0, 1)`` (``feather = 0``: ``a = 1`` when
  ``d >= 0``), weight ``= a^2 (3 - 2a)``; the colour is mixed over what is below with that weight, cards in
  list order. Cards are not colour corrected (they are lighting, set by their own colour).
* :class:`ChromaKey` — the inner frusta show the key colour instead of the scene (soft edge unchanged), with an
  optional grid of cross-shaped tracking markers fixed to the wall (:class:`ChromaMarkers`).
* :class:`ColorCorrection` — per wall (the outer image of that wall) and one for the inner frusta, applied in
  linear light in this order: exposure (``2^stops``), white balance (RGB gains, or a temperature/tint pair,
  :func:`white_balance_gains`), ASC CDL (slope, offset, power, saturation; :func:`cdl`), 3D LUT
  (:class:`Lut3D`, applied to the sRGB-encoded values, output decoded back). :meth:`ColorCorrection.apply`
  is the reference of the whole chain.
* :class:`OutputPattern` — per output: ``none``, ``cabinet_id``, ``color_bars``, ``checkerboard``, ``aruco``,
  ``solid`` (colour) or ``white_flash`` (white for exactly one frame, the first frame the pattern is seen;
  then the normal content), each with an optional burn-in of frame counter and/or timecode.
* :class:`FreezeFrustum` — keep the inner camera's matrices from the frame before the freeze
  (``keep_image``: also keep its image; otherwise the scene is still rendered from the frozen matrices).
* blackout per output (:attr:`FeatureState.blackout`) and global (``OperatorFlags.blackout``).

Stage-file keys (optional, under ``render``; :func:`parse_features`): ``chroma_key``, ``light_cards``,
``color``, ``patterns``. See :func:`parse_features` for the layout.
"""


from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from stagectl.core.fields import (
    FeatureError,
    check_fields,
    declared,
)
from stagectl.core.grade import cdl, srgb_decode, srgb_encode, white_balance_gains
from stagectl.core.lut import Lut3D

MAX_CARDS = 16
#: Most walls a stage may have when a per-wall feature (colour correction, markers, patterns) is on.
MAX_WALLS = 16
#: nDisplay's default chroma key colour, sRGB-encoded 0..1.
DEFAULT_KEY_SRGB = (0.0, 128.0 / 255.0, 0.0)
LAYERS = ("over", "under")
PATTERN_KINDS = ("none", "cabinet_id", "color_bars", "checkerboard", "aruco", "solid", "white_flash")
BURN_IN_FIELDS = ("frame", "timecode")


# ---------------------------------------------------------------------------------- light cards


@dataclass(frozen=True)
class LightCard:
    """A rectangle of light on one wall.

    ``rect`` ``(u0, v0, u1, v1)`` in wall UV (origin top-left, v down; ``u0 < u1``, ``v0 < v1``; it may reach
    past the wall's edges), ``color`` linear RGB, ``intensity`` a multiplier (the card shows
    ``color * intensity``; above 1 it clips at the canvas's white), ``layer`` ``"over"`` or ``"under"`` the
    inner frustum, ``feather_px`` the width (wall raster pixels) of the smooth ramp inside the rectangle's
    border (0: a hard edge: a pixel is lit when its centre lies in ``[x0, x1) x [y0, y1)``).
    """

    id: str = declared(kind="text", help="the card id")
    wall: str = declared(kind="text", help="the wall the card is on")
    rect: tuple[float, float, float, float] = declared(
        kind="vector", parts=("u0", "v0", "u1", "v1"), lo=-10.0, hi=10.0, unit="wall UV",
        noun="with u0 < u1, v0 < v1 in wall UV (each {range})",
        help="rectangle in wall UV (origin top-left, v down), u0 < u1, v0 < v1")
    color: tuple[float, float, float] = declared(
        (1.0, 1.0, 1.0), kind="vector", parts=("r", "g", "b"), lo=0.0, hi=1000.0, unit="linear-light RGB",
        noun="linear-light values {range}", help="linear-light RGB")
    intensity: float = declared(1.0, kind="number", lo=0.0, hi=1000.0, help="multiplier of the colour")
    layer: str = declared("over", kind="choice", choices=LAYERS, help="over or under the inner frustum")
    feather_px: float = declared(0.0, kind="number", lo=0.0, hi=100000.0, unit="wall raster pixels",
                                 help="soft border inside the rectangle")

    def __post_init__(self) -> None:
        check_fields(self, f"light card {self.id!r}")
        r = self.rect
        if not (r[0] < r[2] and r[1] < r[3]):
            raise FeatureError(f"light card {self.id!r}: rect must be (u0, v0, u1, v1) with u0 < u1 and v0 < v1 "
                               f"(wall UV), got {self.rect!r}")

    @property
    def rgb(self) -> tuple[float, float, float]:
        """The linear colour the card shows: ``color * intensity``."""
        return tuple(c * self.intensity for c in self.color)  # type: ignore[return-value]

    def raster_rect(self, raster_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` in wall raster pixels for a wall of ``raster_size`` ``(W, H)``."""
        W, H = raster_size
        u0, v0, u1, v1 = self.rect
        return (u0 * W, v0 * H, u1 * W, v1 * H)


def card_weight(raster_xy, rect_px, feather_px: float) -> np.ndarray:
    """A card's weight at raster points (N, 2) (pixel centres), numpy twin of the shader (module docstring)."""
    p = np.asarray(raster_xy, dtype=np.float64).reshape(-1, 2)
    x0, y0, x1, y1 = rect_px
    d = np.minimum(np.minimum(p[:, 0] - x0, x1 - p[:, 0]), np.minimum(p[:, 1] - y0, y1 - p[:, 1]))
    if feather_px > 0:
        a = np.clip(d / feather_px, 0.0, 1.0)
    else:
        a = ((d >= 0) & (p[:, 0] < x1) & (p[:, 1] < y1)).astype(np.float64)
    return a * a * (3.0 - 2.0 * a)


# --------------------------------------------------------------------------------------------- chroma key


@dataclass(frozen=True)
class ChromaMarkers:
    """Cross-shaped tracking markers in the chroma-key region, fixed to the wall.

    ``color`` sRGB-encoded 0..1 (like the key colour); ``size`` the length of each arm of the cross (tip to tip),
    ``thickness`` the width of an arm (default ``size / 5``), ``spacing`` the grid pitch, all in ``units``:
    ``"m"`` (wall metres: raster pixels times the cabinet pixel pitch) or ``"px"`` (wall raster pixels).
    Markers sit at raster ``((i + 0.5) * sx, (j + 0.5) * sy)`` for whole ``i, j >= 0`` (sx, sy: the spacing
    in pixels); a pixel centre ``p`` is on a marker when, with ``d = |((p mod s) - s / 2)|``,
    ``d.x < size/2 and d.y < thickness/2`` or ``d.y < size/2 and d.x < thickness/2`` (per axis in pixels).
    """

    color: tuple[float, float, float] = declared(
        (0.0, 200.0 / 255.0, 0.0), kind="vector", parts=("r", "g", "b"), lo=0.0, hi=1.0, scale=255.0,
        unit="8-bit sRGB codes", noun="8-bit sRGB codes, each {range}", help="marker colour")
    size: float = declared(0.1, kind="number", lo=0.0, lo_open=True, unit="m or px (units)",
                           help="arm length of a cross, tip to tip")
    thickness: float | None = declared(None, kind="number", lo=0.0, lo_open=True, nullable=True,
                                       unit="m or px (units)", help="width of an arm (default size / 5)")
    spacing: float = declared(0.5, kind="number", lo=0.0, lo_open=True, unit="m or px (units)",
                              help="grid pitch")
    units: str = declared("m", kind="choice", choices=("m", "px"),
                          help="m (wall metres) or px (wall raster pixels)")

    def __post_init__(self) -> None:
        check_fields(self, "chroma key markers")
        if self.thickness is None:
            object.__setattr__(self, "thickness", self.size / 5.0)
        if self.size > self.spacing:
            raise FeatureError(f"chroma key markers: size {self.size:g} must not exceed spacing {self.spacing:g}")

    def pixels(self, pitch_m: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(spacing, half size, half thickness)`` as (x, y) raster pixels for a wall of pixel pitch
        ``pitch_m`` (metres per pixel along x and y)."""
        scale = np.ones(2) if self.units == "px" else 1.0 / np.asarray(pitch_m, dtype=np.float64)
        return self.spacing * scale, 0.5 * self.size * scale, 0.5 * float(self.thickness) * scale

    @property
    def linear_color(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in srgb_decode(self.color))  # type: ignore[return-value]


def marker_mask(raster_xy, spacing_px, half_size_px, half_thick_px) -> np.ndarray:
    """True where a pixel centre (N, 2) is on a marker cross (:class:`ChromaMarkers`), numpy twin."""
    p = np.asarray(raster_xy, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(spacing_px, dtype=np.float64)
    d = np.abs(np.mod(p, s) - 0.5 * s)
    hl, ht = np.asarray(half_size_px), np.asarray(half_thick_px)
    return ((d[:, 0] < hl[0]) & (d[:, 1] < ht[1])) | ((d[:, 1] < hl[1]) & (d[:, 0] < ht[0]))


@dataclass(frozen=True)
class ChromaKey:
    """The inner frusta filled with a key colour (sRGB-encoded 0..1, default nDisplay's ``(0, 128, 0)/255``),
    optionally with :class:`ChromaMarkers`. The soft edge is the inner frustum's."""

    enabled: bool = declared(True, kind="bool", help="fill the inner frusta with the key colour")
    color: tuple[float, float, float] = declared(
        DEFAULT_KEY_SRGB, kind="vector", parts=("r", "g", "b"), lo=0.0, hi=1.0, scale=255.0,
        unit="8-bit sRGB codes", noun="8-bit sRGB codes, each {range}", help="key colour")
    markers: ChromaMarkers | None = declared(  # noqa: RUF009 - declared() is a dataclasses.field
        None, kind="object", cls=ChromaMarkers, help="tracking markers (crosses on a grid)")

    def __post_init__(self) -> None:
        check_fields(self, "chroma key")
        if self.markers is not None and not isinstance(self.markers, ChromaMarkers):
            raise FeatureError(f"chroma key: markers: expected ChromaMarkers, got {type(self.markers).__name__}")

    @property
    def linear_color(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in srgb_decode(self.color))  # type: ignore[return-value]


# ---------------------------------------------------------------------------- colour correction


@dataclass(frozen=True)
class ColorCorrection:
    """Colour correction of one wall's outer image or of the inner frusta (linear light, in this order):

    1. ``exposure`` stops: ``c * 2^exposure``;
    2. white balance: ``gains`` (linear RGB multipliers) **or** ``temperature`` (K) with ``tint``
       (:func:`white_balance_gains`);
    3. ASC CDL ``slope``, ``offset``, ``power``, ``saturation`` (:func:`cdl`; skipped when all are identity,
       so no clamp happens then);
    4. ``lut`` (:class:`Lut3D`): applied to the sRGB-encoded values (the canvas's encoding, as a display LUT),
       its output decoded back to linear light.
    """

    exposure: float = declared(0.0, kind="number", lo=-16.0, hi=16.0, unit="stops",
                               help="exposure change in stops (x 2^stops)")
    gains: tuple[float, float, float] | None = declared(
        None, kind="vector", parts=("r", "g", "b"), lo=0.0, hi=100.0, nullable=True, unit="linear RGB gains",
        noun="linear gains {range}", help="white balance as linear RGB gains (replaces temperature/tint)")
    temperature: float | None = declared(
        None, kind="number", lo=1667.0, hi=25000.0, nullable=True, unit="kelvin",
        help="white balance colour temperature, kelvin (replaces gains)")
    tint: float = declared(0.0, kind="number", lo=-100.0, hi=100.0, unit="Duv x -1000",
                           help="white balance tint with the temperature (positive: magenta)")
    slope: tuple[float, float, float] = declared(
        (1.0, 1.0, 1.0), kind="vector", parts=("r", "g", "b"), lo=0.0, hi=100.0, noun="slope, each {range}",
        help="ASC CDL slope")
    offset: tuple[float, float, float] = declared(
        (0.0, 0.0, 0.0), kind="vector", parts=("r", "g", "b"), lo=-10.0, hi=10.0, noun="offset, each {range}",
        help="ASC CDL offset")
    power: tuple[float, float, float] = declared(
        (1.0, 1.0, 1.0), kind="vector", parts=("r", "g", "b"), lo=0.0, hi=100.0, lo_open=True,
        noun="power, each {range}", help="ASC CDL power")
    saturation: float = declared(1.0, kind="number", lo=0.0, hi=100.0, help="ASC CDL saturation (Rec. 709 luma)")
    lut: Lut3D | None = declared(  # noqa: RUF009 - declared() is a dataclasses.field
        None, kind="lut", help=".cube 3D LUT, applied to the sRGB-encoded values")

    def __post_init__(self) -> None:
        if self.gains is not None and self.temperature is not None:
            raise FeatureError("white balance: give gains or temperature/tint, not both")
        check_fields(self, "")
        if self.lut is not None and not isinstance(self.lut, Lut3D):
            raise FeatureError(f"lut: expected a Lut3D, got {type(self.lut).__name__}")
        if self.temperature is not None:
            white_balance_gains(self.temperature, self.tint)  # refuses a white outside the gamut now

    @property
    def white_balance(self) -> tuple[float, float, float]:
        if self.gains is not None:
            return self.gains
        if self.temperature is not None:
            return white_balance_gains(self.temperature, self.tint)
        return (1.0, 1.0, 1.0)

    @property
    def gain(self) -> tuple[float, float, float]:
        """Exposure and white balance together: one linear multiplier per channel."""
        e = 2.0 ** self.exposure
        return tuple(e * g for g in self.white_balance)  # type: ignore[return-value]

    @property
    def has_cdl(self) -> bool:
        return (self.slope, self.offset, self.power, self.saturation) != ((1.0,) * 3, (0.0,) * 3, (1.0,) * 3, 1.0)

    @property
    def is_identity(self) -> bool:
        return self.gain == (1.0, 1.0, 1.0) and not self.has_cdl and self.lut is None

    def apply(self, rgb) -> np.ndarray:
        """The reference of the whole chain on linear RGB (..., 3) -> linear RGB."""
        c = np.asarray(rgb, dtype=np.float64) * np.asarray(self.gain)
        if self.has_cdl:
            c = cdl(c, self.slope, self.offset, self.power, self.saturation)
        if self.lut is not None:
            c = srgb_decode(self.lut.apply(srgb_encode(c)))
        return c


# --------------------------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class OutputPattern:
    """What one output shows instead of (or over) the composition.

    ``kind``: ``none`` (the normal composition), ``cabinet_id``, ``color_bars``, ``checkerboard``, ``aruco``,
    ``solid`` (``color``, linear RGB), ``white_flash`` (white for exactly one frame: the first frame planned with
    this pattern, or after :meth:`stagectl.render.plan.FramePlanner.trigger_white_flash`; the normal
    composition on the frames after; a flash falling on a blacked-out frame is not shown). ``squares``: checkerboard squares per cabinet side. ``burn_in``: any of
    ``"frame"`` (frame counter) and ``"timecode"`` (the stage's frame rate, non-drop-frame), drawn white on
    black in the top-left cabinet of every mapping of the output (see :mod:`stagectl.render.patterns`).
    """

    kind: str = declared("none", kind="choice", choices=PATTERN_KINDS,
                         help="the test pattern (none: the normal composition)")
    color: tuple[float, float, float] = declared(
        (1.0, 1.0, 1.0), kind="vector", parts=("r", "g", "b"), lo=0.0, hi=1000.0, unit="linear-light RGB",
        noun="linear-light values {range}", help="linear-light RGB of the solid pattern")
    squares: int = declared(1, kind="whole", lo=1, hi=64, help="checkerboard squares per cabinet side")
    burn_in: tuple[str, ...] = declared((), kind="words", choices=BURN_IN_FIELDS, label="burn-in",
                                        help="burn-in drawn in the top-left cabinet of every mapping")

    def __post_init__(self) -> None:
        check_fields(self, "pattern")


@dataclass(frozen=True)
class FreezeFrustum:
    """Freeze the inner frustum of ``cameras`` (None: every camera): the plan keeps each camera's inner pass
    (matrices, coverage) from the last frame planned before the freeze. ``keep_image`` True: the renderer also
    keeps the image it has (nothing is rendered); False: the scene is rendered every frame from the frozen
    matrices (animated content keeps moving, the frustum stays put)."""

    cameras: frozenset[str] | None = declared(None, kind="names", nullable=True,
                                              help="the cameras frozen (null: every camera)")
    keep_image: bool = declared(True, kind="bool", help="also keep the image (nothing is rendered)")

    def __post_init__(self) -> None:
        if self.cameras is not None and not isinstance(self.cameras, frozenset):
            cams = (self.cameras,) if isinstance(self.cameras, str) else self.cameras
            object.__setattr__(self, "cameras", frozenset(cams))
        check_fields(self, "freeze")

    def applies(self, camera: str) -> bool:
        return self.cameras is None or camera in self.cameras


def _pairs(value, what: str, cls) -> tuple:
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    out = []
    for k, v in items:
        if not isinstance(v, cls):
            raise FeatureError(f"{what} {k!r}: expected a {cls.__name__}, got {type(v).__name__}")
        out.append((str(k), v))
    keys = [k for k, _ in out]
    if len(set(keys)) != len(keys):
        raise FeatureError(f"{what}: a name is given twice in {keys}")
    return tuple(sorted(out, key=lambda kv: kv[0]))


@dataclass(frozen=True)
class FeatureState:
    """Every stage feature of one frame (all off by default: ``FeatureState()``).

    ``light_cards`` in drawing order; ``chroma_key``; ``wall_color`` wall name -> :class:`ColorCorrection`
    (a dict is accepted, kept as sorted pairs); ``inner_color`` for the inner frusta; ``patterns`` output key
    ``"processor/output"`` -> :class:`OutputPattern`; ``blackout`` output keys shown black; ``freeze``;
    ``uncalibrated`` output keys shown without their colour calibration (A/B); ``looks_off`` walls
    (``wall:<name>``) and cameras (``camera:<name>``) shown without their OCIO look (A/B). Frozen and comparable, so a planner can tell when nothing changed.
    """

    # declared() is a dataclasses.field (ruff cannot tell)
    light_cards: tuple[LightCard, ...] = declared((), kind="objects", cls=LightCard)
    chroma_key: ChromaKey | None = declared(None, kind="object", cls=ChromaKey)  # noqa: RUF009
    wall_color: Any = declared((), kind="pairs", cls=ColorCorrection)  # noqa: RUF009
    inner_color: ColorCorrection | None = declared(None, kind="object", cls=ColorCorrection)  # noqa: RUF009
    patterns: Any = declared((), kind="pairs", cls=OutputPattern)  # noqa: RUF009
    blackout: frozenset[str] = declared(frozenset(), kind="names")
    freeze: FreezeFrustum | None = declared(None, kind="object", cls=FreezeFrustum)  # noqa: RUF009
    #: output keys shown without their colour calibration (the console's A/B switch, docs/colour.md)
    uncalibrated: frozenset[str] = declared(frozenset(), kind="names")
    #: walls and cameras shown without their OCIO look, ``wall:<name>`` / ``camera:<name>`` (the console's
    #: A/B switch ``color.look``, docs/colour.md *Looks*)
    looks_off: frozenset[str] = declared(frozenset(), kind="names")

    def __post_init__(self) -> None:
        cards = tuple(self.light_cards)
        for c in cards:
            if not isinstance(c, LightCard):
                raise FeatureError(f"light_cards: expected LightCard, got {type(c).__name__}")
        ids = [c.id for c in cards]
        if len(set(ids)) != len(ids):
            raise FeatureError(f"light card ids must be unique, got {ids}")
        if len(cards) > MAX_CARDS:
            raise FeatureError(f"{len(cards)} light cards: at most {MAX_CARDS} are drawn")
        object.__setattr__(self, "light_cards", cards)
        object.__setattr__(self, "wall_color", _pairs(self.wall_color, "wall colour", ColorCorrection))
        object.__setattr__(self, "patterns", _pairs(self.patterns, "pattern of output", OutputPattern))
        b = (self.blackout,) if isinstance(self.blackout, str) else self.blackout
        object.__setattr__(self, "blackout", frozenset(b))
        u = (self.uncalibrated,) if isinstance(self.uncalibrated, str) else self.uncalibrated
        object.__setattr__(self, "uncalibrated", frozenset(u))
        lo = (self.looks_off,) if isinstance(self.looks_off, str) else self.looks_off
        object.__setattr__(self, "looks_off", frozenset(lo))
        for k in self.looks_off:
            if not (k.startswith("wall:") or k.startswith("camera:")):
                raise FeatureError(f"looks_off: expected 'wall:<name>' or 'camera:<name>', got {k!r}")

    # ---- queries
    def color_of(self, wall: str) -> ColorCorrection | None:
        for k, v in self.wall_color:
            if k == wall:
                return v
        return None

    def pattern_of(self, output: str) -> OutputPattern | None:
        for k, v in self.patterns:
            if k == output:
                return v
        return None

    @property
    def key_enabled(self) -> bool:
        return self.chroma_key is not None and self.chroma_key.enabled

    # ---- edits (new states)
    def with_card(self, card: LightCard) -> FeatureState:
        """The state with ``card`` added, or replacing the card with the same id (in place)."""
        cards = list(self.light_cards)
        for i, c in enumerate(cards):
            if c.id == card.id:
                cards[i] = card
                break
        else:
            cards.append(card)
        return replace(self, light_cards=tuple(cards))

    def without_card(self, card_id: str) -> FeatureState:
        return replace(self, light_cards=tuple(c for c in self.light_cards if c.id != card_id))

    def with_pattern(self, output: str, pattern: OutputPattern | str | None) -> FeatureState:
        if isinstance(pattern, str):
            pattern = OutputPattern(pattern)
        rest = [(k, v) for k, v in self.patterns if k != output]
        if pattern is not None and (pattern.kind != "none" or pattern.burn_in):
            rest.append((output, pattern))
        return replace(self, patterns=tuple(rest))

    def with_wall_color(self, wall: str, cc: ColorCorrection | None) -> FeatureState:
        rest = [(k, v) for k, v in self.wall_color if k != wall]
        if cc is not None:
            rest.append((wall, cc))
        return replace(self, wall_color=tuple(rest))

    def check(self, walls: Sequence[str], outputs: Iterable[str]) -> None:
        """Raise :class:`FeatureError` for a wall or output name the stage does not have."""
        walls = list(walls)
        outs = set(outputs)
        for c in self.light_cards:
            if c.wall not in walls:
                raise FeatureError(f"light card {c.id!r}: no wall {c.wall!r}; walls: {', '.join(walls)}")
        for k, _ in self.wall_color:
            if k not in walls:
                raise FeatureError(f"colour correction for wall {k!r}: no such wall; walls: {', '.join(walls)}")
        for k, _ in self.patterns:
            if k not in outs:
                raise FeatureError(f"pattern for output {k!r}: no such output; outputs: {', '.join(sorted(outs))}")
        for k in self.blackout:
            if k not in outs:
                raise FeatureError(f"blackout of output {k!r}: no such output; outputs: {', '.join(sorted(outs))}")
        for k in self.uncalibrated:
            if k not in outs:
                raise FeatureError(f"calibration switch of output {k!r}: no such output; outputs: "
                                   f"{', '.join(sorted(outs))}")
        for k in self.looks_off:
            if k.startswith("wall:") and k[5:] not in walls:
                raise FeatureError(f"look switch of wall {k[5:]!r}: no such wall; walls: {', '.join(walls)}")
