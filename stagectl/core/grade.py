"""The reference maths of the operator's colour grades (numpy, linear light): sRGB encoding, white balance
from a colour temperature and tint (CIE daylight / Planckian locus), ASC CDL.

Used by :class:`stagectl.core.features.ColorCorrection` (the model and its reference chain) and by the colour
pipeline (:mod:`stagectl.color`); the composite shader is checked against these functions.
"""

from __future__ import annotations

import numpy as np

from stagectl.core.errors import StageError  # noqa: F401  (FeatureError lives in stagectl.core.fields)
from stagectl.core.fields import FeatureError

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


# -------------------------------------------------------------------------------- white balance


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
