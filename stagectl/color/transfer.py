"""Reference transfer functions and integer code quantisation (numpy, float64; no OpenColorIO, no GL).

These are the numpy twins of what the LED-wall canvases will carry: the tests compare them with OpenColorIO's
built-in transforms on its CPU processor, and the GPU path (OCIO shaders, :mod:`stagectl.render.ocio_pass`) is
compared with OCIO's CPU processor.

Units and conventions (docs/colour.md):

* **scene-linear** values are the renderer's working values (linear light, floats). For absolute (HDR)
  displays **scene-linear 1.0 = 100 cd/m^2 (nits)**, OpenColorIO's "nits/100" convention
  (:data:`NITS_PER_UNIT`); SDR transfers map 1.0 to the display's white.
* **display light** ``*_nits`` arguments and results are absolute luminance in cd/m^2.
* **signals** (the encoded, non-linear values, ``E'`` in the standards) are normalised floats 0..1;
  **codes** are the integers written to a canvas (:func:`quantize`).

Functions, each with its standard:

* SMPTE ST 2084 (PQ), also BT.2100: :func:`pq_encode_nits` / :func:`pq_decode_nits` (absolute, 0..10000 nits)
  and :func:`pq_encode` / :func:`pq_decode` (scene-linear with a ``peak_nits`` clip). Constants
  :data:`PQ_M1` ... :data:`PQ_C3` are the standard's exact rationals.
* ITU-R BT.2100 HLG: :func:`hlg_oetf` / :func:`hlg_inverse_oetf` (scene light ``E`` 0..1 <-> ``E'``),
  :func:`hlg_system_gamma` (from the nominal peak ``L_W``), :func:`hlg_ootf` / :func:`hlg_inverse_ootf`
  (scene ``E`` <-> display ``F_D`` nits, on RGB triplets: the OOTF works on luminance),
  :func:`hlg_eotf` (with the black-level lift ``beta`` of BT.2100-2) / :func:`hlg_inverse_eotf`.
* ITU-R BT.1886: :func:`bt1886_eotf` / :func:`bt1886_inverse_eotf` (``L_W``, ``L_B`` in nits, gamma 2.4).
* Pure power law: :func:`gamma_encode` / :func:`gamma_decode`.
* IEC 61966-2-1 sRGB piecewise curve: :func:`srgb_encode` / :func:`srgb_decode`.
* Codes: :func:`quantize` / :func:`dequantize`, 8/10/12/16 bit, full range
  (``D = round((2^n - 1) E')``) or narrow ("legal") range (``D = round((219 E' + 16) 2^(n-8))``, BT.2100
  Table 9 / BT.709), with ``round(x) = floor(x + 0.5)`` as the standards define it.

Inputs below zero are taken as zero by every encode (a display cannot emit negative light) unless a function
says otherwise; SDR encodes extend above 1.0 and the quantiser clips. :class:`Transfer` bundles one output's
choice (kind and its parameters) with ``encode``/``decode`` between scene-linear and signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stagectl.color.errors import ColorError

__all__ = [
    "NITS_PER_UNIT",
    "PQ_M1",
    "PQ_M2",
    "PQ_C1",
    "PQ_C2",
    "PQ_C3",
    "PQ_PEAK_NITS",
    "HLG_A",
    "HLG_B",
    "HLG_C",
    "LUMA_2020",
    "HLG_PEAK_NITS_RANGE",
    "BITS",
    "TRANSFER_KINDS",
    "pq_encode_nits",
    "pq_decode_nits",
    "pq_encode",
    "pq_decode",
    "hlg_oetf",
    "hlg_inverse_oetf",
    "hlg_system_gamma",
    "hlg_ootf",
    "hlg_inverse_ootf",
    "hlg_eotf",
    "hlg_inverse_eotf",
    "bt1886_eotf",
    "bt1886_inverse_eotf",
    "gamma_encode",
    "gamma_decode",
    "srgb_encode",
    "srgb_decode",
    "code_range",
    "quantize",
    "dequantize",
    "Transfer",
]

NITS_PER_UNIT = 100.0  #: cd/m^2 of scene-linear 1.0 on an absolute (PQ/HLG) display, OCIO's "nits/100"

# SMPTE ST 2084:2014, equations 4.1/4.2 (also ITU-R BT.2100 Table 4): exact rationals
PQ_M1 = 2610.0 / 16384.0  #: 0.1593017578125
PQ_M2 = 2523.0 / 4096.0 * 128.0  #: 78.84375
PQ_C1 = 3424.0 / 4096.0  #: 0.8359375 (= c3 - c2 + 1)
PQ_C2 = 2413.0 / 4096.0 * 32.0  #: 18.8515625
PQ_C3 = 2392.0 / 4096.0 * 32.0  #: 18.6875
PQ_PEAK_NITS = 10000.0  #: luminance of PQ signal 1.0

# ITU-R BT.2100-2 Table 5 (HLG OETF), the published constants
HLG_A = 0.17883277
HLG_B = 0.28466892  #: 1 - 4a
HLG_C = 0.55991073  #: 0.5 - a ln(4a)

LUMA_2020 = (0.2627, 0.6780, 0.0593)  #: BT.2100 / BT.2020 luminance weights of R, G, B (the HLG OOTF's Y)
#: nominal display peaks (cd/m^2) an HLG output may have: the range BT.2100's system gamma formula
#: (:func:`hlg_system_gamma`) was derived for (ITU-R BT.2390); the stage file refuses others
HLG_PEAK_NITS_RANGE = (400.0, 2000.0)

BITS = (8, 10, 12, 16)  #: code depths :func:`quantize` knows
TRANSFER_KINDS = ("linear", "srgb", "gamma", "bt1886", "pq", "hlg")


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _positive(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ColorError(f"{what} must be a finite number > 0, got {value!r}")
    return v


# --------------------------------------------------------------------------------------------- PQ (ST 2084)


def pq_encode_nits(nits) -> np.ndarray:
    """ST 2084 inverse EOTF: display luminance (cd/m^2, clipped to 0..10000) -> PQ signal 0..1."""
    y = np.clip(_f64(nits), 0.0, PQ_PEAK_NITS) / PQ_PEAK_NITS
    ym = np.power(y, PQ_M1)
    return np.power((PQ_C1 + PQ_C2 * ym) / (1.0 + PQ_C3 * ym), PQ_M2)


def pq_decode_nits(signal) -> np.ndarray:
    """ST 2084 EOTF: PQ signal (clipped to 0..1) -> display luminance in cd/m^2 (0..10000)."""
    e = np.power(np.clip(_f64(signal), 0.0, 1.0), 1.0 / PQ_M2)
    return PQ_PEAK_NITS * np.power(np.maximum(e - PQ_C1, 0.0) / (PQ_C2 - PQ_C3 * e), 1.0 / PQ_M1)


def pq_encode(linear, *, peak_nits: float = PQ_PEAK_NITS, nits_per_unit: float = NITS_PER_UNIT) -> np.ndarray:
    """Scene-linear (1.0 = ``nits_per_unit`` cd/m^2, default 100) -> PQ signal, light clipped to
    ``0..peak_nits`` first (the display's peak: a 1000-nit wall never gets a code above PQ(1000))."""
    peak = min(_positive(peak_nits, "PQ peak_nits"), PQ_PEAK_NITS)
    return pq_encode_nits(np.clip(_f64(linear) * _positive(nits_per_unit, "nits_per_unit"), 0.0, peak))


def pq_decode(signal, *, nits_per_unit: float = NITS_PER_UNIT) -> np.ndarray:
    """PQ signal -> scene-linear (cd/m^2 / ``nits_per_unit``)."""
    return pq_decode_nits(signal) / _positive(nits_per_unit, "nits_per_unit")


# --------------------------------------------------------------------------------------------- HLG (BT.2100)


def hlg_oetf(e) -> np.ndarray:
    """BT.2100 HLG OETF: normalised scene light ``E`` (clipped to 0..1) -> signal ``E'`` 0..1:
    ``sqrt(3 E)`` for ``E <= 1/12``, else ``a ln(12 E - b) + c``."""
    x = np.clip(_f64(e), 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_part = HLG_A * np.log(np.maximum(12.0 * x - HLG_B, 1e-300)) + HLG_C
    return np.where(x <= 1.0 / 12.0, np.sqrt(3.0 * x), log_part)


def hlg_inverse_oetf(signal) -> np.ndarray:
    """BT.2100 HLG inverse OETF: ``E'`` (clipped to 0..1) -> ``E``: ``E'^2 / 3`` for ``E' <= 1/2``, else
    ``(exp((E' - c) / a) + b) / 12``."""
    x = np.clip(_f64(signal), 0.0, 1.0)
    return np.where(x <= 0.5, x * x / 3.0, (np.exp((x - HLG_C) / HLG_A) + HLG_B) / 12.0)


def hlg_system_gamma(peak_nits: float = 1000.0) -> float:
    """BT.2100 HLG system gamma for a display of nominal peak ``L_W``: ``1.2 + 0.42 log10(L_W / 1000)``
    (BT.2100 gives it for 400..2000 cd/m^2; it is used as is outside)."""
    return 1.2 + 0.42 * math.log10(_positive(peak_nits, "HLG peak_nits") / 1000.0)


def _rgb(x, what: str) -> np.ndarray:
    a = _f64(x)
    if a.shape[-1:] != (3,):
        raise ColorError(f"{what} needs RGB triplets (..., 3), got shape {a.shape}")
    return a


def hlg_ootf(e_rgb, *, peak_nits: float = 1000.0, gamma: float | None = None) -> np.ndarray:
    """BT.2100-2 HLG OOTF: scene light ``E`` (..., 3), 0..1 -> display light ``F_D`` in cd/m^2:
    ``F_D = alpha Y_S^(gamma - 1) E`` with ``alpha = L_W``, ``Y_S`` the BT.2100 luminance of ``E``."""
    e = np.clip(_rgb(e_rgb, "HLG OOTF"), 0.0, None)
    g = hlg_system_gamma(peak_nits) if gamma is None else float(gamma)
    ys = (e @ np.asarray(LUMA_2020))[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(ys > 0.0, np.power(np.where(ys > 0.0, ys, 1.0), g - 1.0), 0.0)
    return float(peak_nits) * scale * e


def hlg_inverse_ootf(fd_rgb, *, peak_nits: float = 1000.0, gamma: float | None = None) -> np.ndarray:
    """Inverse of :func:`hlg_ootf`: display light ``F_D`` (..., 3) in cd/m^2 -> scene light ``E``:
    ``E = (Y_D / alpha)^((1 - gamma) / gamma) F_D / alpha``."""
    fd = np.clip(_rgb(fd_rgb, "HLG inverse OOTF"), 0.0, None)
    lw = _positive(peak_nits, "HLG peak_nits")
    g = hlg_system_gamma(lw) if gamma is None else float(gamma)
    yd = (fd @ np.asarray(LUMA_2020))[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(yd > 0.0, np.power(np.where(yd > 0.0, yd, 1.0) / lw, (1.0 - g) / g), 0.0)
    return scale * fd / lw


def hlg_eotf(signal_rgb, *, peak_nits: float = 1000.0, black_nits: float = 0.0) -> np.ndarray:
    """BT.2100-2 HLG EOTF: ``E'`` (..., 3) -> ``F_D`` cd/m^2:
    ``OOTF(inverse_OETF(max(0, (1 - beta) E' + beta)))`` with ``beta = sqrt(3 (L_B / L_W)^(1 / gamma))``."""
    lw = _positive(peak_nits, "HLG peak_nits")
    g = hlg_system_gamma(lw)
    beta = math.sqrt(3.0 * (max(float(black_nits), 0.0) / lw) ** (1.0 / g))
    s = _rgb(signal_rgb, "HLG EOTF")
    return hlg_ootf(hlg_inverse_oetf(np.maximum(0.0, (1.0 - beta) * s + beta)), peak_nits=lw, gamma=g)


def hlg_inverse_eotf(fd_rgb, *, peak_nits: float = 1000.0) -> np.ndarray:
    """Display light ``F_D`` (..., 3) cd/m^2 -> HLG signal for a display of peak ``L_W`` (``L_B = 0``):
    ``OETF(inverse_OOTF(F_D))``; light above the peak clips to signal 1."""
    return hlg_oetf(hlg_inverse_ootf(fd_rgb, peak_nits=peak_nits))


# --------------------------------------------------------------------------------------------- BT.1886


def _bt1886_ab(peak_nits: float, black_nits: float, gamma: float) -> tuple[float, float]:
    lw = _positive(peak_nits, "BT.1886 peak_nits")
    lb = float(black_nits)
    if not 0.0 <= lb < lw:
        raise ColorError(f"BT.1886 black_nits must be 0 <= L_B < L_W = {lw:g}, got {black_nits!r}")
    g = _positive(gamma, "BT.1886 gamma")
    span = lw ** (1.0 / g) - lb ** (1.0 / g)
    return span**g, lb ** (1.0 / g) / span


def bt1886_eotf(
    signal, *, peak_nits: float = 100.0, black_nits: float = 0.0, gamma: float = 2.4
) -> np.ndarray:
    """ITU-R BT.1886 EOTF: ``V`` (clipped to >= 0) -> ``L = a max(V + b, 0)^gamma`` cd/m^2 with
    ``a = (L_W^(1/g) - L_B^(1/g))^g``, ``b = L_B^(1/g) / (L_W^(1/g) - L_B^(1/g))``."""
    a, b = _bt1886_ab(peak_nits, black_nits, gamma)
    return a * np.power(np.maximum(np.maximum(_f64(signal), 0.0) + b, 0.0), gamma)


def bt1886_inverse_eotf(
    nits, *, peak_nits: float = 100.0, black_nits: float = 0.0, gamma: float = 2.4
) -> np.ndarray:
    """Inverse of :func:`bt1886_eotf`: ``V = (L / a)^(1/gamma) - b``, light below ``L_B`` giving ``V = 0``."""
    a, b = _bt1886_ab(peak_nits, black_nits, gamma)
    return np.maximum(np.power(np.maximum(_f64(nits), 0.0) / a, 1.0 / gamma) - b, 0.0)


# --------------------------------------------------------------------------------------------- gamma, sRGB


def gamma_encode(linear, gamma: float = 2.2) -> np.ndarray:
    """Pure power law: ``max(x, 0)^(1/gamma)``."""
    return np.power(np.maximum(_f64(linear), 0.0), 1.0 / _positive(gamma, "gamma"))


def gamma_decode(signal, gamma: float = 2.2) -> np.ndarray:
    """Pure power law: ``max(V, 0)^gamma``."""
    return np.power(np.maximum(_f64(signal), 0.0), _positive(gamma, "gamma"))


def srgb_encode(linear) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding: ``12.92 x`` for ``x <= 0.0031308``, else ``1.055 x^(1/2.4) - 0.055``;
    negatives -> 0, values above 1 follow the curve (the quantiser clips)."""
    x = np.maximum(_f64(linear), 0.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def srgb_decode(signal) -> np.ndarray:
    """Inverse of :func:`srgb_encode`: ``V / 12.92`` for ``V <= 0.04045``, else
    ``((V + 0.055) / 1.055)^2.4``."""
    v = np.maximum(_f64(signal), 0.0)
    return np.where(v <= 0.04045, v / 12.92, np.power((v + 0.055) / 1.055, 2.4))


# --------------------------------------------------------------------------------------------- codes


def _bits(bits: int) -> int:
    if isinstance(bits, bool) or int(bits) != bits or int(bits) not in BITS:
        raise ColorError(f"code depth must be one of {', '.join(map(str, BITS))} bits, got {bits!r}")
    return int(bits)


def code_range(bits: int, *, narrow: bool = False) -> tuple[int, int, int, int]:
    """``(black, white, lowest, highest)`` codes of an ``bits``-bit signal.

    Full range: black 0, white ``2^n - 1``, every code allowed. Narrow range (BT.2100 Table 9, BT.709):
    black ``16 * 2^(n-8)``, white ``235 * 2^(n-8)``; the lowest and highest codes a signal may take are
    ``2^(n-8)`` and ``2^n - 2^(n-8) - 1`` (10 bit: 4 and 1019; the codes outside are reserved for timing).
    """
    n = _bits(bits)
    if not narrow:
        top = (1 << n) - 1
        return 0, top, 0, top
    s = 1 << (n - 8)
    return 16 * s, 235 * s, s, (1 << n) - s - 1


def quantize(signal, bits: int, *, narrow: bool = False) -> np.ndarray:
    """Signal ``E'`` (floats) -> integer codes (``uint16``): full range ``round((2^n - 1) E')``, narrow range
    ``round((219 E' + 16) 2^(n-8))``, ``round(x) = floor(x + 0.5)``; clipped to the allowed codes
    (:func:`code_range`); NaN becomes black."""
    n = _bits(bits)
    black, _white, lo, hi = code_range(n, narrow=narrow)
    e = _f64(signal)
    if narrow:
        d = (219.0 * e + 16.0) * float(1 << (n - 8))
    else:
        d = e * float((1 << n) - 1)
    d = np.where(np.isnan(d), float(black), d)
    return np.clip(np.floor(d + 0.5), lo, hi).astype(np.uint16)


def dequantize(codes, bits: int, *, narrow: bool = False) -> np.ndarray:
    """Integer codes -> signal ``E'`` (float64): full ``D / (2^n - 1)``, narrow
    ``(D / 2^(n-8) - 16) / 219``."""
    n = _bits(bits)
    d = _f64(codes)
    if narrow:
        return (d / float(1 << (n - 8)) - 16.0) / 219.0
    return d / float((1 << n) - 1)


# ------------------------------------------------------------------------------------- one output's choice


@dataclass(frozen=True)
class Transfer:
    """One output's transfer function and its parameters, between scene-linear and signal.

    ``kind``: ``linear`` (signal = scene-linear), ``srgb``, ``gamma`` (pure power ``gamma``), ``bt1886``
    (display white ``peak_nits``, black ``black_nits``; scene-linear 1.0 = white), ``pq`` (scene-linear 1.0 =
    ``nits_per_unit`` cd/m^2, light clipped at ``peak_nits``), ``hlg`` (display-referred like PQ:
    scene-linear x ``nits_per_unit`` is the display light wanted on a display of nominal peak ``peak_nits``,
    encoded with :func:`hlg_inverse_eotf`; needs RGB triplets).
    """

    kind: str = "srgb"
    gamma: float = 2.4
    peak_nits: float = 1000.0
    black_nits: float = 0.0
    nits_per_unit: float = NITS_PER_UNIT

    def __post_init__(self) -> None:
        if self.kind not in TRANSFER_KINDS:
            raise ColorError(f"unknown transfer {self.kind!r}; expected one of {', '.join(TRANSFER_KINDS)}")
        _positive(self.gamma, "transfer gamma")
        _positive(self.peak_nits, "transfer peak_nits")
        _positive(self.nits_per_unit, "transfer nits_per_unit")
        if self.kind == "bt1886":
            _bt1886_ab(self.peak_nits, self.black_nits, self.gamma)

    def encode(self, linear) -> np.ndarray:
        """Scene-linear -> signal 0..1 (SDR kinds extend above 1; codes clip in :func:`quantize`)."""
        k = self.kind
        if k == "linear":
            return _f64(linear)
        if k == "srgb":
            return srgb_encode(linear)
        if k == "gamma":
            return gamma_encode(linear, self.gamma)
        if k == "bt1886":
            return bt1886_inverse_eotf(
                _f64(linear) * self.peak_nits,
                peak_nits=self.peak_nits,
                black_nits=self.black_nits,
                gamma=self.gamma,
            )
        if k == "pq":
            return pq_encode(linear, peak_nits=self.peak_nits, nits_per_unit=self.nits_per_unit)
        return hlg_inverse_eotf(_f64(linear) * self.nits_per_unit, peak_nits=self.peak_nits)

    def decode(self, signal) -> np.ndarray:
        """Signal -> scene-linear (the display light the signal asks for, in scene-linear units)."""
        k = self.kind
        if k == "linear":
            return _f64(signal)
        if k == "srgb":
            return srgb_decode(signal)
        if k == "gamma":
            return gamma_decode(signal, self.gamma)
        if k == "bt1886":
            nits = bt1886_eotf(signal, peak_nits=self.peak_nits, black_nits=self.black_nits, gamma=self.gamma)
            return nits / self.peak_nits
        if k == "pq":
            return pq_decode(signal, nits_per_unit=self.nits_per_unit)
        return hlg_eotf(signal, peak_nits=self.peak_nits, black_nits=self.black_nits) / self.nits_per_unit
