"""Stage features as plain data, their numpy reference maths, the ``.cube`` reader and the stage-file keys.

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

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.errors import ConfigError, ConfigErrors
from stagectl.render.feature_fields import (
    FeatureError,
    FieldError,
    check_fields,
    declared,
    from_dict,
    to_dict,
    value_of,
    values_of,
    yaml_converter,
)

__all__ = [
    "MAX_CARDS",
    "MAX_WALLS",
    "LUMA_709",
    "XYZ_TO_REC709",
    "REFERENCE_WHITE_K",
    "DEFAULT_KEY_SRGB",
    "LAYERS",
    "PATTERN_KINDS",
    "BURN_IN_FIELDS",
    "FeatureError",
    "srgb_encode",
    "srgb_decode",
    "srgb8_to_linear",
    "LightCard",
    "card_weight",
    "ChromaMarkers",
    "ChromaKey",
    "marker_mask",
    "planckian_xy",
    "white_point_xy",
    "white_balance_gains",
    "cdl",
    "Lut3D",
    "parse_cube",
    "read_cube",
    "ColorCorrection",
    "OutputPattern",
    "FreezeFrustum",
    "FeatureState",
    "FieldError",
    "to_dict",
    "from_dict",
    "value_of",
    "values_of",
    "parse_features",
]

#: Most light cards one frame draws (uniform arrays of the composite shader).
MAX_CARDS = 16
#: Most walls a stage may have when a per-wall feature (colour correction, markers, patterns) is on.
MAX_WALLS = 16
#: Rec. 709 / sRGB luma weights (ITU-R BT.709 item 3.2), used by the CDL saturation.
LUMA_709 = (0.2126, 0.7152, 0.0722)
#: CIE XYZ -> linear Rec. 709 / sRGB RGB (IEC 61966-2-1, D65 white).
XYZ_TO_REC709 = np.array([
    [3.2404542, -1.5371385, -0.4985314],
    [-0.9692660, 1.8760108, 0.0415560],
    [0.0556434, -0.2040259, 1.0572252],
])
#: The colour temperature (K, tint 0) whose white balance gains are exactly (1, 1, 1).
REFERENCE_WHITE_K = 6504.0
#: nDisplay's default chroma key colour, sRGB-encoded 0..1.
DEFAULT_KEY_SRGB = (0.0, 128.0 / 255.0, 0.0)
LAYERS = ("over", "under")
PATTERN_KINDS = ("none", "cabinet_id", "color_bars", "checkerboard", "aruco", "solid", "white_flash")
BURN_IN_FIELDS = ("frame", "timecode")


# --------------------------------------------------------------------------------------------- colour


def srgb_encode(linear) -> np.ndarray:
    """Linear light (clamped to [0, 1]) -> sRGB-encoded [0, 1] (IEC 61966-2-1 piecewise curve)."""
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1.0 / 2.4) - 0.055)


def srgb_decode(encoded) -> np.ndarray:
    """sRGB-encoded [0, 1] (clamped) -> linear light (inverse of :func:`srgb_encode`)."""
    c = np.clip(np.asarray(encoded, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))


def srgb8_to_linear(codes) -> tuple[float, ...]:
    """8-bit sRGB codes (e.g. ``(0, 128, 0)``) -> linear-light floats, for colours given as codes."""
    return tuple(float(v) for v in srgb_decode(np.asarray(codes, dtype=np.float64) / 255.0))


def _triple(value, what: str, *, lo: float | None = None) -> tuple[float, float, float]:
    try:
        t = tuple(float(v) for v in value)
    except TypeError:
        t = (float(value),) * 3
    if len(t) != 3 or not all(math.isfinite(v) for v in t):
        raise FeatureError(f"{what}: expected three finite numbers, got {value!r}")
    if lo is not None and min(t) < lo:
        raise FeatureError(f"{what}: expected values >= {lo:g}, got {value!r}")
    return t  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- light cards


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


# --------------------------------------------------------------------------------------------- white balance


def planckian_xy(temperature_k: float) -> tuple[float, float]:
    """CIE 1931 chromaticity of a black body at ``temperature_k`` (1667..25000 K): the cubic spline of
    Kim et al., "Design of advanced color temperature control system for HDTV applications" (2002)."""
    T = float(temperature_k)
    if not 1667.0 <= T <= 25000.0:
        raise FeatureError(f"colour temperature must be 1667..25000 K, got {temperature_k!r}")
    if T <= 4000.0:
        x = -0.2661239e9 / T**3 - 0.2343589e6 / T**2 + 0.8776956e3 / T + 0.179910
    else:
        x = -3.0258469e9 / T**3 + 2.1070379e6 / T**2 + 0.2226347e3 / T + 0.240390
    if T <= 2222.0:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif T <= 4000.0:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def _xy_to_uv(x: float, y: float) -> np.ndarray:
    d = -2.0 * x + 12.0 * y + 3.0
    return np.array([4.0 * x / d, 6.0 * y / d])  # CIE 1960 UCS


def _uv_to_xy(u: float, v: float) -> tuple[float, float]:
    d = 2.0 * u - 8.0 * v + 4.0
    return 3.0 * u / d, 2.0 * v / d


def white_point_xy(temperature_k: float, tint: float = 0.0) -> tuple[float, float]:
    """The white of ``temperature_k`` moved off the Planckian locus by ``tint``: in CIE 1960 (u, v),
    ``Duv = -tint / 1000`` along the locus normal that points toward green (+v), so a **positive tint is
    magenta** (below the locus) as in photo tools, and ``tint = 10`` is ``Duv = -0.010``."""
    T = float(temperature_k)
    uv = _xy_to_uv(*planckian_xy(T))
    if tint:
        a = _xy_to_uv(*planckian_xy(min(T * 1.001, 25000.0)))
        b = _xy_to_uv(*planckian_xy(max(T / 1.001, 1667.0)))
        t = a - b
        n = np.array([-t[1], t[0]]) / np.hypot(*t)
        if n[1] < 0:
            n = -n
        uv = uv + n * (-float(tint) / 1000.0)
    return _uv_to_xy(*uv)


def _rgb_of_white(x: float, y: float) -> np.ndarray:
    XYZ = np.array([x / y, 1.0, (1.0 - x - y) / y])
    return XYZ_TO_REC709 @ XYZ


def white_balance_gains(temperature_k: float, tint: float = 0.0) -> tuple[float, float, float]:
    """Linear RGB gains that turn the wall's white (``(1, 1, 1)``) into the white of ``temperature_k`` /
    ``tint`` (:func:`white_point_xy`): ``g = rgb(T, tint) / rgb(REFERENCE_WHITE_K, 0)`` with both whites at
    luminance 1 (``XYZ_TO_REC709``), then scaled so that the Rec. 709 luminance of ``g`` is 1 (white keeps its
    brightness). ``REFERENCE_WHITE_K`` with tint 0 gives exactly ``(1, 1, 1)``; lower temperatures are warmer
    (red up, blue down)."""
    g = _rgb_of_white(*white_point_xy(temperature_k, tint)) / _rgb_of_white(*white_point_xy(REFERENCE_WHITE_K))
    if np.any(g <= 0):
        raise FeatureError(f"white balance {temperature_k:g} K, tint {tint:g} lies outside the Rec. 709 gamut")
    g = g / float(np.dot(LUMA_709, g))
    return tuple(float(v) for v in g)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- ASC CDL


def cdl(rgb, slope=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0), power=(1.0, 1.0, 1.0),
        saturation: float = 1.0) -> np.ndarray:
    """ASC CDL v1.2 (as OpenColorIO's ``ASC`` style): ``v = clamp(in * slope + offset, 0, 1) ^ power``, then
    saturation with Rec. 709 luma ``l = 0.2126 r + 0.7152 g + 0.0722 b``: ``out = clamp(l + sat * (v - l),
    0, 1)``. ``rgb`` (..., 3)."""
    c = np.asarray(rgb, dtype=np.float64)
    v = np.clip(c * np.asarray(slope) + np.asarray(offset), 0.0, 1.0) ** np.asarray(power)
    luma = (v @ np.asarray(LUMA_709))[..., None]
    return np.clip(luma + float(saturation) * (v - luma), 0.0, 1.0)


# --------------------------------------------------------------------------------------------- 3D LUT


class Lut3D:
    """A 3D LUT: ``table`` (N, N, N, 3) float32 indexed ``[r, g, b]``, input domain ``domain_min`` ..
    ``domain_max`` per channel. Equal (and hashed) by content (:attr:`digest`).

    :meth:`apply` is the reference: input clamped to the domain, normalised to ``t`` in [0, 1], trilinear
    interpolation between the 8 surrounding grid points (``x = t (N - 1)``).
    """

    __slots__ = ("title", "size", "domain_min", "domain_max", "table", "source", "digest")

    def __init__(self, table, *, title: str = "", domain_min=(0.0, 0.0, 0.0), domain_max=(1.0, 1.0, 1.0),
                 source: str = "") -> None:
        t = np.ascontiguousarray(table, dtype=np.float32)
        n = t.shape[0]
        if t.ndim != 4 or t.shape != (n, n, n, 3) or n < 2:
            raise FeatureError(f"3D LUT table must be (N, N, N, 3) with N >= 2, got {t.shape}")
        if not np.all(np.isfinite(t)):
            raise FeatureError("3D LUT table has non-finite values")
        lo = np.asarray(_triple(domain_min, "LUT domain_min"))
        hi = np.asarray(_triple(domain_max, "LUT domain_max"))
        if np.any(hi <= lo):
            raise FeatureError(f"LUT domain_max {tuple(hi)} must exceed domain_min {tuple(lo)}")
        t.setflags(write=False)
        self.table = t
        self.size = n
        self.title = title
        self.domain_min = tuple(float(v) for v in lo)
        self.domain_max = tuple(float(v) for v in hi)
        self.source = source
        h = hashlib.sha1(t.tobytes())
        h.update(np.asarray(self.domain_min + self.domain_max).tobytes())
        self.digest = h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lut3D) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Lut3D({self.title or self.source or 'untitled'!r}, size={self.size})"

    @classmethod
    def identity(cls, size: int = 2) -> Lut3D:
        g = np.linspace(0.0, 1.0, size)
        r, gg, b = np.meshgrid(g, g, g, indexing="ij")
        return cls(np.stack([r, gg, b], axis=-1), title=f"identity {size}")

    @classmethod
    def from_function(cls, fn, size: int = 33, **kw) -> Lut3D:
        """A LUT sampling ``fn`` ((..., 3) -> (..., 3), on the normalised grid ``[0, 1]^3``)."""
        g = np.linspace(0.0, 1.0, size)
        r, gg, b = np.meshgrid(g, g, g, indexing="ij")
        return cls(fn(np.stack([r, gg, b], axis=-1)), **kw)

    def normalise(self, rgb) -> np.ndarray:
        c = np.asarray(rgb, dtype=np.float64)
        lo, hi = np.asarray(self.domain_min), np.asarray(self.domain_max)
        return np.clip((c - lo) / (hi - lo), 0.0, 1.0)

    def apply(self, rgb) -> np.ndarray:
        """Trilinear lookup of ``rgb`` (..., 3) (the reference of the shader's lookup)."""
        t = self.normalise(rgb)
        n = self.size
        x = t * (n - 1)
        i0 = np.minimum(np.floor(x).astype(np.int64), n - 2)
        f = x - i0
        T = self.table.astype(np.float64)
        out = np.zeros(t.shape, dtype=np.float64)
        for dr in (0, 1):
            wr = f[..., 0] if dr else 1.0 - f[..., 0]
            for dg in (0, 1):
                wg = f[..., 1] if dg else 1.0 - f[..., 1]
                for db in (0, 1):
                    wb = f[..., 2] if db else 1.0 - f[..., 2]
                    v = T[i0[..., 0] + dr, i0[..., 1] + dg, i0[..., 2] + db]
                    out += (wr * wg * wb)[..., None] * v
        return out

    def atlas_block(self) -> np.ndarray:
        """The LUT as a 2D image (N, N * N, 3), row 0 = top: row ``g``, column ``r + N * b`` (blue slices side
        by side), the layout the composite shader samples (bilinear in r, g inside a slice, mixed between two
        slices along b)."""
        n = self.size
        # table[r, g, b] -> image[g, b * n + r]
        return np.ascontiguousarray(self.table.transpose(1, 2, 0, 3).reshape(n, n * n, 3))


_CUBE_KEYWORDS = ("TITLE", "LUT_3D_SIZE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE", "LUT_1D_SIZE",
                  "LUT_1D_INPUT_RANGE")
_MAX_CUBE_ERRORS = 20


def parse_cube(text: str, file: str = "<cube>") -> Lut3D:
    """Parse the text of an Adobe / Resolve ``.cube`` 3D LUT.

    Accepted: ``#`` comments and blank lines anywhere; before the data, ``TITLE "..."``, ``LUT_3D_SIZE N``
    (2..256, required), ``DOMAIN_MIN r g b`` / ``DOMAIN_MAX r g b`` (default 0 and 1) or Resolve's
    ``LUT_3D_INPUT_RANGE min max``; then exactly ``N^3`` data lines of three numbers, red changing fastest,
    then green, then blue. Every problem is reported as ``file:LINE: what was expected``
    (:class:`~stagectl.errors.ConfigErrors` of :class:`~stagectl.errors.ConfigError`).
    """
    errors: list[ConfigError] = []

    def err(line: int | None, key: str, msg: str) -> None:
        if len(errors) < _MAX_CUBE_ERRORS:
            errors.append(ConfigError(file, line, key, msg))

    title = ""
    size: int | None = None
    size_line: int | None = None
    dmin: tuple[float, ...] | None = None
    dmax: tuple[float, ...] | None = None
    dom_line: int | None = None
    rows: list[tuple[float, float, float]] = []
    first_data: int | None = None
    last_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        last_line = lineno
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "#" in line and not line.startswith("TITLE"):
            line = line.split("#", 1)[0].strip()
        head = line.split(None, 1)[0]
        if head[0].isalpha() or head[0] == "_":
            rest = line[len(head):].strip()
            if first_data is not None:
                err(lineno, head, f"keyword after the first data line (line {first_data}); expected a data "
                                  "line of three numbers")
                continue
            if head == "TITLE":
                if len(rest) >= 2 and rest[0] == rest[-1] == '"':
                    title = rest[1:-1]
                else:
                    err(lineno, "TITLE", f'expected TITLE "text in double quotes", got {raw.strip()!r}')
            elif head == "LUT_3D_SIZE":
                try:
                    n = int(rest)
                except ValueError:
                    n = -1
                if not 2 <= n <= 256 or rest != str(n):
                    err(lineno, "LUT_3D_SIZE", f"expected a whole number 2..256, got {rest!r}")
                elif size is not None:
                    err(lineno, "LUT_3D_SIZE", f"given twice (first at line {size_line})")
                else:
                    size, size_line = n, lineno
            elif head in ("DOMAIN_MIN", "DOMAIN_MAX"):
                vals = _numbers(rest, 3)
                if vals is None:
                    err(lineno, head, f"expected three numbers, got {rest!r}")
                elif head == "DOMAIN_MIN":
                    dmin, dom_line = vals, lineno
                else:
                    dmax, dom_line = vals, lineno
            elif head == "LUT_3D_INPUT_RANGE":
                vals = _numbers(rest, 2)
                if vals is None:
                    err(lineno, head, f"expected two numbers (min max), got {rest!r}")
                else:
                    dmin, dmax, dom_line = (vals[0],) * 3, (vals[1],) * 3, lineno
            elif head in ("LUT_1D_SIZE", "LUT_1D_INPUT_RANGE"):
                err(lineno, head, "1D LUTs are not supported; expected a 3D LUT (LUT_3D_SIZE)")
            else:
                err(lineno, head, "unknown keyword; expected one of TITLE, LUT_3D_SIZE, DOMAIN_MIN, DOMAIN_MAX, "
                                  "LUT_3D_INPUT_RANGE, or a data line of three numbers")
            continue
        vals = _numbers(line, 3)
        if vals is None:
            err(lineno, "", f"expected a data line of three numbers, got {raw.strip()!r}")
            continue
        if first_data is None:
            first_data = lineno
            if size is None:
                err(lineno, "LUT_3D_SIZE", "missing before the first data line; expected LUT_3D_SIZE N")
        rows.append(vals)  # type: ignore[arg-type]
    lo = dmin if dmin is not None else (0.0, 0.0, 0.0)
    hi = dmax if dmax is not None else (1.0, 1.0, 1.0)
    if any(h <= l for l, h in zip(lo, hi)):
        err(dom_line, "DOMAIN_MAX", f"expected DOMAIN_MAX {tuple(hi)} above DOMAIN_MIN {tuple(lo)} in every channel")
    if size is None and first_data is None:
        err(last_line or None, "LUT_3D_SIZE", "missing; expected LUT_3D_SIZE N and N^3 data lines")
    if size is not None and not errors and len(rows) != size**3:
        err(last_line, "", f"expected {size}^3 = {size**3} data lines for LUT_3D_SIZE {size} (line {size_line}), "
                           f"got {len(rows)}")
    if errors:
        raise ConfigErrors(errors)
    assert size is not None
    data = np.asarray(rows, dtype=np.float64).reshape(size, size, size, 3)  # [b, g, r]
    return Lut3D(data.transpose(2, 1, 0, 3), title=title, domain_min=lo, domain_max=hi, source=file)


def _numbers(text: str, n: int) -> tuple[float, ...] | None:
    parts = text.split()
    if len(parts) != n:
        return None
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        return None
    return vals if all(math.isfinite(v) for v in vals) else None


def read_cube(path: str | Path, display: str | None = None) -> Lut3D:
    """Read a ``.cube`` file (:func:`parse_cube`); errors name ``display`` (default: the path)."""
    name = display if display is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigErrors([ConfigError(name, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(name, None, "", f"cannot read: {exc}")]) from None
    return parse_cube(text, name)


# --------------------------------------------------------------------------------------------- colour correction


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
    ``uncalibrated`` output keys shown without their colour calibration (A/B). Frozen and comparable, so a planner can tell when nothing changed.
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


# --------------------------------------------------------------------------------------------- stage file


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
    def lut_file(c, node, path):
        text = string()(c, node, path)
        p = Path(text)
        full = p if p.is_absolute() else ctx.base_dir / p
        if not full.is_file():
            raise Invalid(f"file not found: {text} (looked for {full})")
        return full

    def read_cc(node, path) -> ColorCorrection | None:
        nonlocal ok
        r = MapReader(ctx, node, path)
        if not r.ok:
            ok = False
            return None
        exposure, gains, temp, tint, slope, offset, power, sat = (get(r, ColorCorrection, k) for k in (
            "exposure", "gains", "temperature", "tint", "slope", "offset", "power", "saturation"))
        lut_path = r.opt("lut", lut_file, None)
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
