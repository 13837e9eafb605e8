"""In-camera LED wall colour calibration: patch sequence, capture reading, solve, validation, CLF and OCIO config.

The method follows Netflix's OpenVPCal (Apache-2.0; its facts, not its code): the wall shows a fixed sequence of
patches, the cinema camera films them, and the wall's response *as the camera sees it* is measured and inverted.

Units and spaces (docs/colour.md):

* **target** values are linear RGB in the output's target colour space (``Linear Rec.2020`` for a PQ output),
  scene-linear 1.0 = 100 cd/m^2 for PQ (``nits_per_unit``); SDR outputs: 1.0 = the display's white.
  ``peak_units`` is the wall's peak in those units (PQ 1000 nits: 10.0).
* **signals** are the encoded values ``E'`` 0..1 the output's transfer gives (:class:`~stagectl.color.transfer.Transfer`);
  **codes** the canvas integers.
* **captures** are the camera's frames in an OCIO colour space of the stage's config (``camera_space``, default
  ``ACES2065-1``: linear EXR/TIFF). Each sampled pixel is converted to target-linear by OCIO before averaging.
  16-bit TIFF/PNG codes are read as ``code / 65535``, 8-bit as ``code / 255`` (times ``scale``, for exports
  that put camera linear 2.0 at full scale), float files as they are.
* Frames: wall frame ``k`` of the sequence; capture frame ``i``; ``i = k + offset`` (found from the slates).

Patch sequence (OpenVPCal's order, ``PATCHES.PATCH_ORDER``): start slate, desaturated red/green/blue, 18 % grey,
red/green/blue primaries, peak white, ColorChecker chart, flat field, EOTF ramp, end slate. OpenVPCal's
saturation ramp and distortion/ROI patches are left out (the slate's border gives the ROI). Values, as OpenVPCal
defines them: primaries ``0.18 peak`` on one channel; desaturated primaries the same mixed toward the grey of the
same luminance (``saturation`` 0.7); grey ``0.18 peak``; peak white the signal 1.0 (the top code, past the
output's own peak clip, so the wall's own peak shows); chart the 24 ColorChecker colours (colour-science's
``ColorChecker24 - After November 2014``, D50 adapted to D65 with Bradford) times ``peak``; flat field
``0.5 peak`` over the whole mapped canvas; EOTF ramp ``ramp_steps + 1`` greys equally spaced in signal from 0 to
``encode(peak)``. Every patch is held ``frames_per_patch`` frames; slates ``slate_frames`` frames, each slate
frame carrying its own sequence frame number in a row of 12 binary cells (MSB first) under a row of 8
alternating marker cells (start: on/off..., end: off/on...), inside a bright border that marks the patch area.

Model and solve. The wall, seen through the camera and normalised by the 18 % grey's luminance, shows
``m = A g(E) + b``: ``g`` per channel (the wall's EOTF, normalised so that ``g_c(E_p) = 0.18 peak`` at the
primaries' signal), ``A`` the 3x3 screen matrix in target RGB (the screen's primaries), ``b`` the black (signal
0, subtracted). ``A`` starts from the primaries, ``g`` comes from the ramp (``A^-1 m`` per ramp patch, interpolated
in signal as ``encode(g)``), then ``A`` is refined by weighted least squares over primaries, desaturated
primaries, grey and chart, three rounds. The correction sent to the wall is
``C(t) = h^-1(A^-1 t)`` with ``h_c(x) = g_c(encode(x))``: the **target-to-screen matrix** ``A^-1`` then a
per-channel **EOTF correction** in linear light. ΔE is ITU-R BT.2124 ΔE ITP (colour-science) on absolute
light; "after" figures are the model's prediction; a verification capture of the corrected patches measures them.

Outputs: a CLF (Academy/ASC Common LUT Format v3 ProcessList: ``Matrix``, ``Range`` clamp to
``[2^-16, peak]``, ``Log`` log2, ``Range`` to 0..1, ``LUT1D`` 4096 x 3), applied by OCIO's ``FileTransform``
exactly as :meth:`Correction.apply` does in numpy; an OCIO config (a copy of the stage's, plus a display
``<output> calibrated`` with views ``Calibrated`` (target -> CLF -> the output's clamp and curve) and
``Uncalibrated``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from stagectl.color.errors import ColorError
from stagectl.color.transfer import Transfer, quantize

__all__ = [
    "CALIBRATABLE_TRANSFERS",
    "CHART_NAME",
    "LOG2_LO",
    "LUT_SIZE",
    "CaptureSource",
    "Check",
    "Correction",
    "Measurements",
    "Patch",
    "PatchSequence",
    "SlateHit",
    "Solution",
    "Sync",
    "WallModel",
    "calibrated_config",
    "chart_xyz_d65",
    "clf_text",
    "colour_module",
    "delta_e_itp",
    "detect_slate",
    "extract",
    "make_sequence",
    "mapped_area",
    "open_captures",
    "output_sequence",
    "solve",
    "synchronise",
    "target_to_xyz_matrix",
    "write_clf",
    "xyz_to_ictcp",
]

CALIBRATABLE_TRANSFERS = ("pq", "srgb", "gamma", "bt1886")
CHART_NAME = "ColorChecker24 - After November 2014"
LUT_SIZE = 4096
LOG2_LO = -16.0  #: the CLF's shaper starts at 2^-16 target units (0.0015 nits on PQ)
MARKER_CELLS = 8
BIT_CELLS = 12
CHART_GRID = (6, 4)  #: ColorChecker columns x rows, row 0 at the top (dark skin ... cyan first)
GREY_FRACTION = 0.18
FLAT_FRACTION = 0.5
SLATE_LEVEL = 0.5  #: slate border and "on" cells: 50 % of peak


def colour_module():
    """colour-science, imported quietly (it warns about optional SciPy/Matplotlib at import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    return colour


# --------------------------------------------------------------------------------------------- colorimetry


def target_to_xyz_matrix(cfg, target: str) -> np.ndarray:
    """3x3 ``target RGB -> CIE XYZ (D65)`` of colour space ``target`` of OCIO config ``cfg``, found by OCIO:
    ``target -> ACES2065-1`` (the config's ``aces_interchange`` role) then the built-in
    ``UTILITY - ACES-AP0_to_CIE-XYZ-D65_BFD``, applied to the unit vectors."""
    from stagectl.color.ocio import ocio_module

    o = ocio_module()
    ref = cfg.role("aces_interchange") or "ACES2065-1"
    try:
        proc = cfg.raw.getProcessor(o.GroupTransform([
            o.ColorSpaceTransform(src=target, dst=ref),
            o.BuiltinTransform("UTILITY - ACES-AP0_to_CIE-XYZ-D65_BFD")]))
        cpu = proc.getDefaultCPUProcessor()
    except Exception as exc:  # noqa: BLE001 - OCIO's own exception types
        raise ColorError(f"cannot relate colour space {target!r} to CIE XYZ: {str(exc).splitlines()[0]}") from None
    eye = np.eye(3, dtype=np.float32).copy()
    cpu.applyRGB(eye)
    return np.asarray(eye, np.float64).T  # row i of eye is the image of unit vector i: a column of the matrix


def chart_xyz_d65() -> tuple[list[str], np.ndarray]:
    """The 24 ColorChecker patches (names, XYZ under D65 with Y of a perfect white = 1): colour-science's
    ``ColorChecker24 - After November 2014`` (xyY under D50) adapted to D65 with the Bradford transform."""
    colour = colour_module()
    cc = colour.CCS_COLOURCHECKERS[CHART_NAME]
    names = list(cc.data.keys())
    xyY = np.array([cc.data[n] for n in names], np.float64)
    xyz = colour.xyY_to_XYZ(xyY)
    w_src = colour.xy_to_XYZ(cc.illuminant)
    w_dst = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])
    return names, colour.adaptation.chromatic_adaptation_VonKries(xyz, w_src, w_dst, transform="Bradford")


_BT2020_XYZ_TO_RGB: np.ndarray | None = None


def xyz_to_ictcp(xyz_nits) -> np.ndarray:
    """Absolute CIE XYZ (cd/m^2, D65) -> ICtCp (ITU-R BT.2100-2 PQ), through BT.2020 RGB (colour-science)."""
    global _BT2020_XYZ_TO_RGB
    colour = colour_module()
    if _BT2020_XYZ_TO_RGB is None:
        _BT2020_XYZ_TO_RGB = np.linalg.inv(colour.RGB_COLOURSPACES["ITU-R BT.2020"].matrix_RGB_to_XYZ)
    rgb = np.asarray(xyz_nits, np.float64) @ _BT2020_XYZ_TO_RGB.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return colour.RGB_to_ICtCp(np.maximum(rgb, 0.0), method="ITU-R BT.2100-2 PQ", L_p=10000)


def delta_e_itp(xyz_a, xyz_b) -> np.ndarray:
    """ITU-R BT.2124 ΔE ITP between absolute XYZ (cd/m^2) arrays (colour-science's ``delta_E(method="ITP")``)."""
    colour = colour_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(colour.delta_E(xyz_to_ictcp(xyz_a), xyz_to_ictcp(xyz_b), method="ITP"), np.float64)


# --------------------------------------------------------------------------------------------- sequence


@dataclass(frozen=True)
class Patch:
    """One patch of the sequence. ``role``: ``slate``, ``end_slate``, ``desaturated``, ``grey``, ``primary``,
    ``white``, ``chart``, ``flat``, ``ramp``. ``target``: target-linear RGB, (3,) or (24, 3) for the chart (None
    for slates); ``signal``: what the wall is sent, same shape. Frames ``first .. first + frames - 1``."""

    name: str
    role: str
    first: int
    frames: int
    target: np.ndarray | None = field(default=None, repr=False, compare=False)
    signal: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, eq=False)
class PatchSequence:
    """The patch sequence of one output (module docstring): the patches, the output's transfer and code depth,
    the target's XYZ matrix, and the layout (``patch_fraction`` of the mapped canvas area, centred)."""

    transfer: Transfer
    bits: int
    narrow: bool
    target_space: str
    rgb_to_xyz: np.ndarray = field(repr=False)
    nits_per_unit: float
    peak_units: float
    frames_per_patch: int
    slate_frames: int
    ramp_steps: int
    saturation: float
    patch_fraction: float
    patches: tuple[Patch, ...] = field(repr=False)
    chart_names: tuple[str, ...] = field(repr=False, default=())

    @property
    def total_frames(self) -> int:
        last = self.patches[-1]
        return last.first + last.frames

    def patch(self, name: str) -> Patch:
        for p in self.patches:
            if p.name == name:
                return p
        raise KeyError(name)

    def role(self, role: str) -> list[Patch]:
        return [p for p in self.patches if p.role == role]

    def patch_at(self, frame: int) -> Patch:
        for p in self.patches:
            if p.first <= frame < p.first + p.frames:
                return p
        raise IndexError(frame)

    def encode(self, target) -> np.ndarray:
        """Target-linear -> signal with the output's transfer (numpy reference; the PQ peak clip included)."""
        return self.transfer.encode(np.asarray(target, np.float64))

    def describe(self) -> dict:
        t = self.transfer
        return {"transfer": t.kind, "peak_nits": t.peak_nits, "gamma": t.gamma, "bits": self.bits,
                "range": "narrow" if self.narrow else "full", "target_space": self.target_space,
                "nits_per_unit": self.nits_per_unit, "peak_units": self.peak_units,
                "frames_per_patch": self.frames_per_patch, "slate_frames": self.slate_frames,
                "ramp_steps": self.ramp_steps, "saturation": self.saturation, "patch_fraction": self.patch_fraction,
                "total_frames": self.total_frames,
                "patches": [{"name": p.name, "role": p.role, "first_frame": p.first, "frames": p.frames,
                             **({"target": p.target.tolist(), "signal": p.signal.tolist()} if p.target is not None
                                else {})} for p in self.patches]}

    # ----------------------------------------------------------------------------------- drawing

    @staticmethod
    def _rect(size: tuple[int, int], active: tuple[int, int, int, int] | None, fraction: float):
        w, h = size
        ax, ay, aw, ah = active if active is not None else (0, 0, w, h)
        pw, ph = max(8, round(aw * fraction)), max(8, round(ah * fraction))
        return ax + (aw - pw) // 2, ay + (ah - ph) // 2, pw, ph

    def frame_rects(self, k: int, size: tuple[int, int], active: tuple[int, int, int, int] | None = None,
                    *, correction: Correction | None = None) -> list[tuple[int, int, int, int, np.ndarray]]:
        """Wall frame ``k`` as the rectangles that paint it, in drawing order (later over earlier): ``(x0, y0,
        x1, y1, signal)``, canvas pixels ``[x0, x1) x [y0, y1)`` (row 0 = top) of one ``signal`` (3,) each; the
        first is the whole canvas at 0. :meth:`frame_signal` paints them; the on-wall player
        (:mod:`stagectl.render.patch_player`) draws each as a scissored clear of its codes. Arguments as
        :meth:`frame_signal`."""
        w, h = size
        zero = np.zeros(3)
        rects: list[tuple[int, int, int, int, np.ndarray]] = [(0, 0, w, h, zero)]

        def put(xs: slice, ys: slice, sig) -> None:  # numpy's slice semantics, as frame_signal always painted
            x0, x1, _ = xs.indices(w)
            y0, y1, _ = ys.indices(h)
            if x1 > x0 and y1 > y0:
                rects.append((x0, y0, x1, y1, np.asarray(sig, np.float64)))

        p = self.patch_at(k)
        x, y, pw, ph = self._rect(size, active, self.patch_fraction)
        if p.role in ("slate", "end_slate"):
            rect = (x, y, pw, ph)
            on = self.encode(np.full(3, SLATE_LEVEL * self.peak_units))
            b = max(1, round(0.08 * min(pw, ph)))
            put(slice(x, x + pw), slice(y, y + ph), on)
            put(slice(x + b, x + pw - b), slice(y + b, y + ph - b), zero)
            for i, bit in enumerate(_marker(p.role == "end_slate")):
                if bit:
                    ys, xs = _cell(rect, i, MARKER_CELLS, 0.30)
                    put(xs, ys, on)
            for i, bit in enumerate(_bits(k)):
                if bit:
                    ys, xs = _cell(rect, i, BIT_CELLS, 0.70)
                    put(xs, ys, on)
            return rects
        sig = p.signal
        if correction is not None and p.role != "white":
            sig = self.encode(correction.apply(p.target))
        if p.role == "flat":
            ax, ay, aw, ah = active if active is not None else (0, 0, w, h)
            put(slice(ax, ax + aw), slice(ay, ay + ah), sig)
        elif p.role == "chart":
            cols, rows = CHART_GRID
            for j in range(rows):
                for i in range(cols):
                    x0, x1 = x + (i * pw) // cols, x + ((i + 1) * pw) // cols
                    y0, y1 = y + (j * ph) // rows, y + ((j + 1) * ph) // rows
                    gx, gy = max(1, (x1 - x0) // 10), max(1, (y1 - y0) // 10)  # black gaps between cells
                    put(slice(x0 + gx, x1 - gx), slice(y0 + gy, y1 - gy), sig[j * cols + i])
        else:
            put(slice(x, x + pw), slice(y, y + ph), sig)
        return rects

    def frame_signal(self, k: int, size: tuple[int, int], active: tuple[int, int, int, int] | None = None,
                     *, correction: Correction | None = None) -> np.ndarray:
        """Wall frame ``k`` as signals, ``(h, w, 3)`` float64, row 0 = top, on a canvas of ``size = (w, h)`` whose
        mapped area is ``active = (x, y, w, h)`` (default: all). ``correction``: the calibrated patches (the
        target values pass through :meth:`Correction.apply` first; slates and peak white are left as they are).
        The picture is :meth:`frame_rects` painted in order."""
        w, h = size
        img = np.zeros((h, w, 3), np.float64)
        for x0, y0, x1, y1, sig in self.frame_rects(k, size, active, correction=correction)[1:]:
            img[y0:y1, x0:x1] = sig
        return img

    def with_signals(self, signal_of) -> PatchSequence:
        """This sequence with every measured patch's signal replaced by ``signal_of(target)`` (target-linear
        (3,) or (24, 3) -> signals of the same shape): the corrected patches a calibration sends for
        verification. Slates and peak white (the top code) are left as they are, as with ``correction``."""
        patches = tuple(p if p.target is None or p.role == "white" else
                        replace(p, signal=np.asarray(signal_of(p.target), np.float64).reshape(p.target.shape))
                        for p in self.patches)
        return replace(self, patches=patches)

    def frame_codes(self, k: int, size, active=None, *, correction: Correction | None = None) -> np.ndarray:
        """Frame ``k`` as the output's canvas codes (``uint16``, at the output's depth and range)."""
        return quantize(np.clip(self.frame_signal(k, size, active, correction=correction), 0.0, 1.0), self.bits,
                        narrow=self.narrow)


def _marker(end: bool) -> list[int]:
    return [(i + (1 if end else 0)) % 2 == 0 for i in range(MARKER_CELLS)]


def _bits(k: int) -> list[int]:
    return [(k >> (BIT_CELLS - 1 - i)) & 1 for i in range(BIT_CELLS)]


def _cell_box(rect, i: int, n: int, yc: float, shrink: float = 1.0) -> tuple[float, float, float, float]:
    """Cell ``i`` of ``n`` across the slate's inner width at height fraction ``yc``: (x0, y0, x1, y1)."""
    x, y, pw, ph = rect
    margin = 0.14 * pw
    cw = (pw - 2 * margin) / n
    ch = 0.16 * ph
    cx, cy = x + margin + (i + 0.5) * cw, y + yc * ph
    hw, hh = 0.35 * cw * shrink, 0.5 * ch * shrink
    return cx - hw, cy - hh, cx + hw, cy + hh


def _cell(rect, i: int, n: int, yc: float):
    x0, y0, x1, y1 = _cell_box(rect, i, n, yc)
    return slice(round(y0), round(y1)), slice(round(x0), round(x1))


def make_sequence(cfg, target_space: str, transfer: Transfer, *, bits: int = 10, narrow: bool = False,
                  frames_per_patch: int = 10, slate_frames: int = 8, ramp_steps: int = 30,
                  saturation: float = 0.7, patch_fraction: float = 0.5) -> PatchSequence:
    """The patch sequence for an output with ``transfer`` into ``target_space`` (a linear colour space of
    ``cfg``). Raises a one-line :class:`ColorError` for a transfer that cannot be calibrated per channel."""
    if transfer.kind not in CALIBRATABLE_TRANSFERS:
        raise ColorError(f"calibrate colour needs an output whose canvas transfer is one of "
                         f"{', '.join(CALIBRATABLE_TRANSFERS)}; got {transfer.kind} (HLG's OOTF mixes the channels: "
                         f"calibrate the wall through a PQ output)")
    for name, v, lo, hi in (("frames per patch", frames_per_patch, 1, 1000), ("slate frames", slate_frames, 1, 1000),
                            ("ramp steps", ramp_steps, 4, 1000)):
        if isinstance(v, bool) or int(v) != v or not lo <= v <= hi:
            raise ColorError(f"{name}: expected a whole number {lo}..{hi}, got {v!r}")
    if not 0.0 < saturation <= 1.0:
        raise ColorError(f"saturation: expected 0 < s <= 1, got {saturation!r}")
    if not 0.05 <= patch_fraction <= 1.0:
        raise ColorError(f"patch fraction: expected 0.05..1, got {patch_fraction!r}")
    M = target_to_xyz_matrix(cfg, target_space)
    if transfer.kind == "pq":
        npu, peak = transfer.nits_per_unit, transfer.peak_nits / transfer.nits_per_unit
    else:
        npu, peak = (transfer.peak_nits if transfer.kind == "bt1886" else 100.0), 1.0
    grey = GREY_FRACTION * peak
    lum = M[1]
    patches: list[Patch] = []
    frame = 0

    def add(name, role, target=None, signal=None, frames=frames_per_patch):
        nonlocal frame
        t = None if target is None else np.asarray(target, np.float64)
        s = None if t is None else (transfer.encode(t) if signal is None else np.asarray(signal, np.float64))
        patches.append(Patch(name, role, frame, int(frames), t, s))
        frame += int(frames)

    add("slate", "slate", frames=slate_frames)
    for c, n in enumerate(("red", "green", "blue")):
        p = np.zeros(3)
        p[c] = grey
        y = float(lum @ p)
        add(f"{n}_primary_desaturated", "desaturated", y + saturation * (p - y))
    add("grey_18_percent", "grey", np.full(3, grey))
    for c, n in enumerate(("red", "green", "blue")):
        p = np.zeros(3)
        p[c] = grey
        add(f"{n}_primary", "primary", p)
    add("peak_white", "white", np.full(3, peak), signal=np.ones(3))
    names, xyz = chart_xyz_d65()
    chart = np.maximum(xyz @ np.linalg.inv(M).T, 0.0) * peak
    add("chart", "chart", chart)
    add("flat_field", "flat", np.full(3, FLAT_FRACTION * peak))
    top = float(transfer.encode(np.array([peak]))[0])
    for j in range(ramp_steps + 1):
        e = top * j / ramp_steps
        t = float(transfer.decode(np.array([e]))[0])
        add(f"ramp_{j:02d}", "ramp", np.full(3, t), signal=np.full(3, e))
    add("end_slate", "end_slate", frames=slate_frames)
    if frame >= 1 << BIT_CELLS:
        raise ColorError(f"the sequence has {frame} frames; the slate counter holds {1 << BIT_CELLS}: use fewer "
                         f"frames per patch or ramp steps")
    return PatchSequence(transfer, int(bits), bool(narrow), target_space, M, float(npu), float(peak),
                         int(frames_per_patch), int(slate_frames), int(ramp_steps), float(saturation),
                         float(patch_fraction), tuple(patches), tuple(names))


def output_sequence(settings, key: str, *, frames_per_patch: int = 10, slate_frames: int = 8,
                    ramp_steps: int = 30, saturation: float = 0.7, patch_fraction: float = 0.5):
    """``(oc, cfg, seq)``: output ``key``'s :class:`~stagectl.color.stagefile.OutputColour`, the loaded OCIO
    config and its :class:`PatchSequence` (its transfer, peak, target, depth and range from the stage's parsed
    ``colour:`` section ``settings``), for ``stagectl calibrate colour`` and the on-wall player. A one-line
    :class:`ColorError` for what cannot be calibrated: no ``colour:`` section, a display/view output, HLG."""
    from stagectl.color.stagefile import config_for
    from stagectl.color.transfer import Transfer

    if settings is None:
        raise ColorError("the stage has no colour: section; give the output a canvas transfer (e.g. canvas: "
                         "{format: rgb10_a2, transfer: pq, peak_nits: 1000}) to calibrate it")
    oc = settings.output(key)
    if oc.mode == "display":
        raise ColorError(f"output {key} is encoded by display/view {oc.display} / {oc.view} (a tone-mapping view): "
                         f"calibrate it through a canvas transfer (pq, srgb, gamma, bt1886) and its target")
    kind = oc.transfer or "srgb"
    target = oc.target or "Linear Rec.709 (sRGB)"
    peak = oc.peak_nits if oc.peak_nits is not None else (100.0 if kind == "bt1886" else 1000.0)
    transfer = Transfer(kind, gamma=oc.gamma if kind == "gamma" else 2.4, peak_nits=peak)
    cfg = config_for(settings.config)
    seq = make_sequence(cfg, target, transfer, bits=oc.bits, narrow=oc.narrow, frames_per_patch=frames_per_patch,
                        slate_frames=slate_frames, ramp_steps=ramp_steps, saturation=saturation,
                        patch_fraction=patch_fraction)
    return oc, cfg, seq


def mapped_area(rects) -> tuple[int, int, int, int]:
    """``(x, y, w, h)``: the bounding box of an output's mapped canvas rectangles ``(x, y, w, h)`` (the area the
    patch layout centres on)."""
    rects = list(rects)
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


# --------------------------------------------------------------------------------------------- captures


IMAGE_SUFFIXES = (".exr", ".tif", ".tiff", ".png", ".dpx")


class CaptureSource:
    """The camera's frames from a folder of images (sorted by name) or a video file, read in order and as RGB
    floats (:meth:`frames`); each pass re-reads from the start."""

    def __init__(self, path: str | Path, *, scale: float = 1.0) -> None:
        self.path = Path(path)
        self.scale = float(scale)
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ColorError(f"{self.path}: no frames (expected {', '.join(IMAGE_SUFFIXES)} files)")
            dpx = [p for p in files if p.suffix.lower() == ".dpx"]
            if dpx:
                raise ColorError(f"{dpx[0]}: DPX is not read by OpenCV; convert the frames to 16-bit TIFF or EXR")
            self.files: list[Path] | None = files
            self.count = len(files)
            self.kind = "images"
        elif self.path.is_file():
            import cv2

            cap = cv2.VideoCapture(str(self.path))
            ok = cap.isOpened()
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
            cap.release()
            if not ok:
                raise ColorError(f"{self.path}: not a video OpenCV can open (or give a folder of frames)")
            self.files = None
            self.count = n
            self.kind = "video"
        else:
            raise ColorError(f"{self.path}: no such file or folder")

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, rgb)`` in capture order; ``rgb`` float32 ``(h, w, 3)`` (see the module docstring)."""
        import cv2

        if self.files is not None:
            for i, p in enumerate(self.files):
                yield i, _read_image(p, self.scale)
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield i, _to_rgb_float(img, self.path, self.scale)
                i += 1
        finally:
            cap.release()


def open_captures(path: str | Path) -> CaptureSource:
    return CaptureSource(path)


def _read_image(p: Path, scale: float = 1.0) -> np.ndarray:
    import cv2

    if p.suffix.lower() == ".exr":
        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read by OpenCV on its first EXR
    try:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ColorError(f"{p}: OpenCV cannot read it ({str(exc).strip().splitlines()[-1]})") from None
    if img is None:
        raise ColorError(f"{p}: OpenCV cannot read it")
    return _to_rgb_float(img, p, scale)


def _to_rgb_float(img: np.ndarray, where, scale: float = 1.0) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        a = a[..., :3]
    a = a[..., ::-1]  # OpenCV's BGR -> RGB
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(scale / 255.0)
    if a.dtype == np.uint16:
        return a.astype(np.float32) * np.float32(scale / 65535.0)
    if a.dtype in (np.float32, np.float64, np.float16):
        return a.astype(np.float32)
    raise ColorError(f"{where}: unsupported pixel type {a.dtype}")


# --------------------------------------------------------------------------------------------- sync


@dataclass(frozen=True)
class SlateHit:
    """A slate found in capture frame ``index``: its sequence frame ``frame``, ``end`` slate or start, and the
    patch area's bounding box in the capture ``(x0, y0, x1, y1)`` (pixels, row 0 = top)."""

    index: int
    frame: int
    end: bool
    box: tuple[int, int, int, int]


def detect_slate(rgb: np.ndarray, index: int = 0) -> SlateHit | None:
    """The slate in one capture frame, or None: the bright border's bounding box, then the marker row (start:
    on/off/..., end: off/on/...) and the 12 counter cells, each cell's centre compared with half the border."""
    y = np.asarray(rgb, np.float64).mean(axis=2)
    top = float(np.percentile(y, 99.5))
    if not top > 0.0:
        return None
    mask = y > 0.5 * top
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) < 8 or len(cols) < 8:
        return None
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    rect = (x0, y0, x1 - x0, y1 - y0)
    b = max(1, round(0.04 * min(rect[2], rect[3])))
    border = float(np.median(y[y0:y0 + b, x0 + rect[2] // 4:x1 - rect[2] // 4]))

    def level(i, n, yc):
        a0, b0, a1, b1 = _cell_box(rect, i, n, yc, shrink=0.5)
        r = y[round(b0):max(round(b1), round(b0) + 1), round(a0):max(round(a1), round(a0) + 1)]
        return float(r.mean()) if r.size else 0.0

    marks = [level(i, MARKER_CELLS, 0.30) for i in range(MARKER_CELLS)]
    thr = 0.5 * border
    got = [m > thr for m in marks]
    on = [m for m, g in zip(marks, got) if g]
    off = [m for m, g in zip(marks, got) if not g]
    if not on or not off or min(on) < 2.0 * max(off) or min(on) < 0.6 * border:
        return None
    if got == _marker(False):
        end = False
    elif got == _marker(True):
        end = True
    else:
        return None
    bits = [level(i, BIT_CELLS, 0.70) > thr for i in range(BIT_CELLS)]
    k = 0
    for bit in bits:
        k = (k << 1) | int(bit)
    return SlateHit(index, k, end, (x0, y0, x1, y1))


@dataclass(frozen=True)
class Sync:
    """How the capture lines up with the sequence: ``offset`` (capture index = wall frame + offset), the patch
    area in the capture ``box``, slates seen, and ``end_drift`` (frames the end slate sits away from where the
    start slate says it should; None without an end slate)."""

    offset: int
    box: tuple[int, int, int, int]
    start_hits: int
    end_hits: int
    end_drift: int | None


def synchronise(hits: Sequence[SlateHit], seq: PatchSequence, capture_frames: int) -> Sync:
    """The offset from the start slates' counters (their most common ``index - frame``), the end slate's drift.
    Raises a one-line :class:`ColorError` without start slates."""
    start = [h for h in hits if not h.end and 0 <= h.frame < seq.slate_frames]
    if not start:
        raise ColorError(f"no start slate found in the {capture_frames} captured frames: film the whole sequence "
                         f"from its first slate, with the wall's patch area in frame and exposed (18 % grey ~0.18)")
    offs = [h.index - h.frame for h in start]
    offset = max(set(offs), key=offs.count)
    boxes = np.array([h.box for h in start if h.index - h.frame == offset], np.float64)
    box = tuple(round(v) for v in np.median(boxes, axis=0))
    es = seq.patch("end_slate")
    end = [h for h in hits if h.end and es.first <= h.frame < es.first + es.frames]
    drift = None
    if end:
        d = [h.index - h.frame - offset for h in end]
        drift = max(set(d), key=d.count)
    return Sync(int(offset), box, len(start), len(end), drift)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Measurements:
    """Per patch name the mean target-linear RGB of its centre ROI over its steady frames (raw: not yet
    exposure-normalised, black not subtracted); the chart (24, 3). ``flat_uniformity``: min/max of the flat
    field's 3 x 3 grid means (luminance)."""

    values: dict[str, np.ndarray]
    frames_used: dict[str, int]
    sync: Sync
    flat_uniformity: float | None
    capture_frames: int


def _roi(box, fx: float, fy: float, cx: float = 0.5, cy: float = 0.5):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    a, b = x0 + (cx - fx / 2) * w, y0 + (cy - fy / 2) * h
    return slice(round(b), max(round(b + fy * h), round(b) + 1)), \
        slice(round(a), max(round(a + fx * w), round(a) + 1))


def extract(source: CaptureSource, seq: PatchSequence, to_target, *, roi_fraction: float = 0.4,
            guard: int | None = None) -> Measurements:
    """Two passes over the capture: slates (:func:`detect_slate`, :func:`synchronise`), then each patch's steady
    frames (``guard`` frames dropped at each end, default a quarter) averaged over its centre ROI
    (``roi_fraction`` of the patch area; per chart cell of the cell). ``to_target(pixels (n, 3)) -> (n, 3)``
    converts capture RGB to target-linear (OCIO camera space -> target)."""
    hits, n = [], 0
    for i, rgb in source.frames():
        n = i + 1
        h = detect_slate(rgb, i)
        if h is not None:
            hits.append(h)
    if n == 0:
        raise ColorError(f"{source.path}: no frames could be read")
    sync = synchronise(hits, seq, n)
    g = max(0, seq.frames_per_patch // 4) if guard is None else int(guard)
    want: dict[int, Patch] = {}
    for p in seq.patches:
        if p.role in ("slate", "end_slate"):
            continue
        lo, hi = p.first + g, p.first + p.frames - g
        if hi <= lo:
            lo, hi = p.first, p.first + p.frames
        for k in range(lo, hi):
            want[k + sync.offset] = p
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    flat: list[np.ndarray] = []
    cols, rows = CHART_GRID
    for i, rgb in source.frames():
        p = want.get(i)
        if p is None:
            continue
        if p.role == "chart":
            vals = []
            for j in range(rows):
                for c in range(cols):
                    sl = _roi(sync.box, roi_fraction / cols, roi_fraction / rows, (c + 0.5) / cols, (j + 0.5) / rows)
                    vals.append(to_target(rgb[sl].reshape(-1, 3)).mean(axis=0))
            v = np.array(vals)
        else:
            v = to_target(rgb[_roi(sync.box, roi_fraction, roi_fraction)].reshape(-1, 3)).mean(axis=0)
            if p.role == "flat":
                grid = [to_target(rgb[_roi(sync.box, 0.8 / 3, 0.8 / 3, (a + 0.5) / 3, (b + 0.5) / 3)]
                                  .reshape(-1, 3)).mean(axis=0) for b in range(3) for a in range(3)]
                flat.append(np.array(grid))
        sums[p.name] = sums.get(p.name, 0.0) + v
        counts[p.name] = counts.get(p.name, 0) + 1
    missing = [p.name for p in seq.patches if p.role not in ("slate", "end_slate") and p.name not in counts]
    if missing:
        raise ColorError(f"the capture ends before patch {missing[0]} (needs {seq.total_frames} frames from the "
                         f"start slate at capture frame {sync.offset}, has {n}): film the whole sequence")
    values = {k: np.asarray(sums[k] / counts[k], np.float64) for k in sums}
    uni = None
    if flat:
        fm = np.mean(flat, axis=0) @ seq.rgb_to_xyz[1]
        uni = float(fm.min() / fm.max()) if fm.max() > 0 else None
    return Measurements(values, counts, sync, uni, n)


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, eq=False)
class WallModel:
    """The wall as the camera sees it (module docstring): ``A`` (3x3, target RGB), the EOTF samples
    ``ramp_signal`` (N,) and ``ramp_drive_signal`` (N, 3) = ``encode(g_c(E))``, all exposure-normalised."""

    transfer: Transfer
    A: np.ndarray
    ramp_signal: np.ndarray
    ramp_drive_signal: np.ndarray

    def drive(self, signal) -> np.ndarray:
        """``g(E)`` per channel: target-linear drive for signals (..., 3)."""
        s = np.asarray(signal, np.float64)
        out = np.empty_like(s)
        for c in range(3):
            out[..., c] = np.interp(s[..., c], self.ramp_signal, self.ramp_drive_signal[:, c])
        return self.transfer.decode(out)

    def show(self, signal) -> np.ndarray:
        """What the camera measures for signals (..., 3): ``A g(E)`` (target-linear, normalised)."""
        return self.drive(signal) @ self.A.T

    @property
    def max_drive(self) -> np.ndarray:
        """The drive each channel reaches at the top of the ramp (target units)."""
        return self.transfer.decode(self.ramp_drive_signal[-1])


def _internal(t: Transfer) -> Transfer:
    """The transfer without the PQ peak clip (the wall model's drives may pass the output's peak)."""
    from dataclasses import replace

    return replace(t, peak_nits=10000.0) if t.kind == "pq" else t


def _fit_model(seq: PatchSequence, m: dict[str, np.ndarray]) -> WallModel:
    t = _internal(seq.transfer)
    grey = GREY_FRACTION * seq.peak_units
    ramp = seq.role("ramp")
    E = np.array([p.signal[0] for p in ramp])
    R = np.array([m[p.name] for p in ramp])
    Ep = float(seq.patch("red_primary").signal[0])
    A = np.column_stack([m[f"{n}_primary"] / grey for n in ("red", "green", "blue")])
    fit = [p for p in seq.patches if p.role in ("desaturated", "grey", "primary", "chart")]
    sig = np.concatenate([np.atleast_2d(p.signal) for p in fit])
    meas = np.concatenate([np.atleast_2d(m[p.name]) for p in fit])
    tgt = np.concatenate([np.atleast_2d(p.target) for p in fit])
    wts = 1.0 / np.maximum(tgt @ seq.rgb_to_xyz[1], 0.01 * seq.peak_units)
    model = None
    for _ in range(4):
        try:
            G = R @ np.linalg.inv(A).T
        except np.linalg.LinAlgError:
            raise ColorError("the primaries' captures are degenerate (a primary patch is black or two are "
                             "the same): check the capture and the patch order") from None
        G[0] = 0.0
        G = np.maximum.accumulate(np.maximum(G, 0.0), axis=0)
        model = WallModel(t, A, E, t.encode(G))
        d = model.drive(np.full(3, Ep)) / grey  # renormalise so that g_c(E_p) = 0.18 peak
        A = A * d
        G = G / d
        model = WallModel(t, A, E, t.encode(G))
        D = model.drive(sig)
        sw = np.sqrt(wts)[:, None]
        sol, *_ = np.linalg.lstsq(D * sw, meas * sw, rcond=None)
        A = sol.T
    G = R @ np.linalg.inv(A).T
    G[0] = 0.0
    G = np.maximum.accumulate(np.maximum(G, 0.0), axis=0)
    return WallModel(t, A, E, t.encode(G))


# --------------------------------------------------------------------------------------------- correction


@dataclass(frozen=True, eq=False)
class Correction:
    """The calibration in target-linear light: ``matrix`` (target -> screen, ``A^-1``), then the per-channel
    LUT: input clamped to ``[2^lo, hi]``, ``u = (log2 x - lo) / (log2 hi - lo)``, ``lut`` (N, 3) linearly
    interpolated at ``u (N - 1)``. Exactly the CLF's maths (:func:`clf_text`)."""

    matrix: np.ndarray
    lut: np.ndarray
    log2_lo: float
    hi: float

    def apply(self, target) -> np.ndarray:
        x = np.asarray(target, np.float64) @ self.matrix.T
        lo = 2.0 ** self.log2_lo
        x = np.clip(x, lo, self.hi)
        u = (np.log2(x) - self.log2_lo) / (math.log2(self.hi) - self.log2_lo)
        pos = np.clip(u, 0.0, 1.0) * (len(self.lut) - 1)
        i0 = np.clip(np.floor(pos).astype(int), 0, len(self.lut) - 2)
        f = pos - i0
        out = np.empty_like(x)
        for c in range(3):
            out[..., c] = self.lut[i0[..., c], c] * (1 - f[..., c]) + self.lut[i0[..., c] + 1, c] * f[..., c]
        return out


def _correction(model: WallModel, seq: PatchSequence, size: int = LUT_SIZE) -> Correction:
    t = model.transfer
    hi = seq.peak_units
    y = 2.0 ** (LOG2_LO + (math.log2(hi) - LOG2_LO) * np.arange(size) / (size - 1))
    lut = np.empty((size, 3))
    ey = t.encode(y)
    for c in range(3):
        I = model.ramp_drive_signal[:, c].copy()
        I = I + np.arange(len(I)) * 1e-9  # strictly increasing for the inverse
        e_in = np.interp(ey, I, model.ramp_signal)  # wanted drive -> signal (clamped to the ramp's range)
        lut[:, c] = np.minimum(t.decode(e_in), hi)
    lut[0] = 0.0
    return Correction(np.linalg.inv(model.A), lut, LOG2_LO, float(hi))


# --------------------------------------------------------------------------------------------- solve


@dataclass(frozen=True)
class Check:
    """One validation check: ``status`` PASS, WARNING or FAIL; ``message`` says what to do."""

    name: str
    status: str
    value: object
    message: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "value": self.value, "message": self.message}


_RANK = {"PASS": 0, "WARNING": 1, "FAIL": 2}


@dataclass(frozen=True, eq=False)
class Solution:
    """The result of :func:`solve`: the model, the correction, exposure, ΔE ITP per group before/after, checks."""

    sequence: PatchSequence
    model: WallModel
    correction: Correction
    measured_18_percent: float
    exposure_scale: float
    black: np.ndarray
    normalised: dict[str, np.ndarray] = field(repr=False)
    delta_e_before: dict[str, np.ndarray] = field(repr=False)
    delta_e_after: dict[str, np.ndarray] = field(repr=False)
    checks: tuple[Check, ...]
    measurements: Measurements

    @property
    def status(self) -> str:
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default="PASS")

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]

    def summary(self) -> dict:
        def stats(d):
            return {k: {"mean": float(np.mean(v)), "max": float(np.max(v)), "values": [float(x) for x in v]}
                    for k, v in d.items()}

        m = self.measurements
        return {
            "status": self.status,
            "checks": [c.as_dict() for c in self.checks],
            "delta_e_itp_before": stats(self.delta_e_before),
            "delta_e_itp_after_predicted": stats(self.delta_e_after),
            "target_to_screen_matrix": self.correction.matrix.tolist(),
            "screen_matrix_A": self.model.A.tolist(),
            "eotf_ramp_signal": self.model.ramp_signal.tolist(),
            "eotf_ramp_drive_signal": self.model.ramp_drive_signal.tolist(),
            "measured_18_percent": self.measured_18_percent,
            "exposure_scale": self.exposure_scale,
            "black_target_linear": self.black.tolist(),
            "sync": {"offset_frames": m.sync.offset, "patch_box_px": list(m.sync.box),
                     "start_slates_seen": m.sync.start_hits, "end_slates_seen": m.sync.end_hits,
                     "end_drift_frames": m.sync.end_drift, "capture_frames": m.capture_frames},
            "flat_field_uniformity": m.flat_uniformity,
            "measured_target_linear_normalised": {k: v.tolist() for k, v in self.normalised.items()},
        }


def _xyz_nits(seq: PatchSequence, rgb) -> np.ndarray:
    return np.asarray(rgb, np.float64) @ seq.rgb_to_xyz.T * seq.nits_per_unit


def solve(seq: PatchSequence, meas: Measurements) -> Solution:
    """Exposure, black, the wall model, the correction, ΔE ITP before and (predicted) after, and the checks
    (OpenVPCal's thresholds where it has them; docs/colour.md lists each)."""
    lum = seq.rgb_to_xyz[1]
    raw = meas.values
    black = raw[seq.role("ramp")[0].name]
    grey = GREY_FRACTION * seq.peak_units
    measured_18 = float(lum @ raw["grey_18_percent"])
    y_grey = float(lum @ (raw["grey_18_percent"] - black))
    if not y_grey > 0:
        raise ColorError("the 18 % grey patch measured no light above the black: check exposure and the capture")
    s = grey / y_grey
    norm = {k: (v - black) * s for k, v in raw.items()}
    model = _fit_model(seq, norm)
    corr = _correction(model, seq)

    groups = {"primaries": seq.role("primary"), "desaturated": seq.role("desaturated"),
              "grey": seq.role("grey"), "chart": seq.role("chart"), "ramp": seq.role("ramp")[1:]}
    before, after = {}, {}
    for g, ps in groups.items():
        tgt = np.concatenate([np.atleast_2d(p.target) for p in ps])
        got = np.concatenate([np.atleast_2d(norm[p.name]) for p in ps])
        pred = model.show(seq.encode(corr.apply(tgt)))
        before[g] = delta_e_itp(_xyz_nits(seq, got), _xyz_nits(seq, tgt))
        after[g] = delta_e_itp(_xyz_nits(seq, pred), _xyz_nits(seq, tgt))
    rgbw_t = np.concatenate([np.atleast_2d(p.target) for p in seq.role("primary")] + [seq.role("ramp")[-1].target[None]])
    rgbw_m = np.concatenate([np.atleast_2d(norm[p.name]) for p in seq.role("primary")]
                            + [norm[seq.role("ramp")[-1].name][None]])
    before["rgbw"] = delta_e_itp(_xyz_nits(seq, rgbw_m), _xyz_nits(seq, rgbw_t))
    checks = _checks(seq, meas, model, corr, norm, measured_18, before)
    return Solution(seq, model, corr, measured_18, s, black, norm, before, after, tuple(checks), meas)


def _checks(seq, meas, model, corr, norm, measured_18, before) -> list[Check]:
    out: list[Check] = []
    lum = seq.rgb_to_xyz[1]
    # 1. exposure (OpenVPCal: fail outside 0.144..0.225 (a quarter stop), warn outside 0.163..0.198 (a tenth))
    if not 0.144 <= measured_18 <= 0.225:
        out.append(Check("exposure", "FAIL", measured_18,
                         f"the 18 % grey patch reads {measured_18:.3f} in camera linear, more than a quarter stop "
                         f"from 0.18: expose the grey patch to 0.18 (false colour or a light meter) and reshoot"))
    elif not 0.163 < measured_18 < 0.198:
        out.append(Check("exposure", "WARNING", measured_18,
                         f"the 18 % grey patch reads {measured_18:.3f}, more than a tenth of a stop from 0.18"))
    else:
        out.append(Check("exposure", "PASS", measured_18))
    # 2. peak white (top code) vs the EOTF ramp's top (OpenVPCal: within 10 %)
    top = seq.role("ramp")[-1]
    y_top = float(lum @ norm[top.name])
    y_white = float(lum @ norm["peak_white"])
    ratio = y_white / y_top if y_top > 0 else float("inf")
    if not abs(ratio - 1.0) <= 0.10:
        out.append(Check("peak white vs EOTF ramp", "FAIL", ratio,
                         f"the top code shows {ratio:.2f} x the ramp's top (expected 1 +- 0.1): the processor's peak "
                         f"does not match the output's peak_nits ({seq.transfer.peak_nits:g}); fix the wall "
                         f"settings or peak_nits and reshoot"))
    else:
        out.append(Check("peak white vs EOTF ramp", "PASS", ratio))
    # 3. peak vs target (the 5 %)
    pt = y_top / seq.peak_units
    if not abs(pt - 1.0) <= 0.05:
        out.append(Check("peak vs target", "FAIL", pt,
                         f"the ramp's top measures {pt * 100:.1f} % of the target peak (grey-normalised; expected "
                         f"within 5 %): the wall's EOTF is far off, or its peak is below the output's peak_nits"))
    else:
        out.append(Check("peak vs target", "PASS", pt))
    # 4. EOTF ramp ΔE (OpenVPCal: mean over the ramp from a third up, last patch excluded, must be <= 5)
    r = before["ramp"]
    sel = r[len(r) // 3:-1] if len(r) > 4 else r
    mean_r = float(np.mean(sel))
    if mean_r > 5.0:
        out.append(Check("EOTF ramp ΔE", "FAIL", mean_r,
                         f"the EOTF ramp is off by ΔE ITP {mean_r:.1f} on average (limit 5): check the chain from "
                         f"the render engine to the LED processor (transfer, range, peak) and reshoot"))
    else:
        out.append(Check("EOTF ramp ΔE", "PASS", mean_r))
    # 5. clamping on the last 4 ramp patches (OpenVPCal: any two within 0.01; here 1 % of the largest)
    last = np.array([norm[p.name] for p in seq.role("ramp")[-4:]])
    clamped = []
    for c, n in enumerate(("red", "green", "blue")):
        v = last[:, c]
        tol = 0.01 * max(float(np.max(np.abs(v))), 1e-12)
        if any(abs(v[i] - v[j]) <= tol for i in range(4) for j in range(i + 1, 4)):
            clamped.append(n)
    if clamped:
        out.append(Check("EOTF clamping", "FAIL", clamped,
                         f"the last 4 EOTF ramp patches are the same in {', '.join(clamped)}: the wall (or the "
                         f"camera) clips there, or the capture is out of step; check the processor and exposure"))
    else:
        out.append(Check("EOTF clamping", "PASS", []))
    # 6. slates: the end slate where the start slate says
    d = meas.sync.end_drift
    if d is None:
        out.append(Check("sync (end slate)", "WARNING", None,
                         "no end slate in the capture: dropped or repeated frames cannot be ruled out"))
    elif d != 0:
        out.append(Check("sync (end slate)", "FAIL", d,
                         f"the end slate is {d:+d} frames from where the start slate puts it: the capture dropped "
                         f"or repeated frames (genlock the camera to the wall, same frame rate) and reshoot"))
    else:
        out.append(Check("sync (end slate)", "PASS", 0))
    # 7. can the wall reach every target? (A^-1 t within the drive the ramp reached, per channel)
    fit = [p for p in seq.patches if p.role in ("desaturated", "grey", "primary", "chart")] + [top]
    names = []
    worst = 0.0
    maxd = model.max_drive
    for p in fit:
        need = np.atleast_2d(p.target) @ corr.matrix.T
        over = need / np.maximum(maxd, 1e-12)
        k = float(over.max())
        if k > 1.02:
            c = int(np.unravel_index(np.argmax(over), over.shape)[1])
            names.append(f"{p.name} ({('red', 'green', 'blue')[c]} needs {k * 100:.0f} % of what it reaches)")
            worst = max(worst, k)
    if names:
        out.append(Check("correctable", "FAIL", worst,
                         f"the wall cannot be corrected: {'; '.join(names[:3])}{' ...' if len(names) > 3 else ''}; "
                         f"its primaries clip (lower the output's peak_nits or fix the processor)"))
    else:
        out.append(Check("correctable", "PASS", 1.0))
    # 8. OpenVPCal's gamut check: every RGBW ΔE <= 3: the wall may not need calibrating
    rgbw = before["rgbw"]
    if float(np.max(rgbw)) <= 3.0:
        out.append(Check("needs calibration", "WARNING", float(np.max(rgbw)),
                         "the primaries and white are already within ΔE ITP 3: this wall may not need calibrating"))
    else:
        out.append(Check("needs calibration", "PASS", float(np.max(rgbw))))
    return out


# --------------------------------------------------------------------------------------------- CLF, config


def _fmt(v: float) -> str:
    return f"{float(v):.9g}"


def clf_text(corr: Correction, *, name: str, description: str, input_desc: str) -> str:
    """The correction as an Academy/ASC CLF v3 ProcessList (module docstring)."""
    lo = 2.0 ** corr.log2_lo
    l2hi = math.log2(corr.hi)
    rows = "\n".join("      " + " ".join(_fmt(x) for x in r) for r in corr.matrix)
    lut = "\n".join("      " + " ".join(_fmt(x) for x in r) for r in corr.lut)
    esc = (description.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    ind = input_desc.replace("&", "&amp;").replace("<", "&lt;")
    ident = "".join(ch if ch.isalnum() else "_" for ch in name)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ProcessList compCLFversion="3" id="{ident}" name="{ident}">
  <Description>{esc}</Description>
  <InputDescriptor>{ind}</InputDescriptor>
  <OutputDescriptor>{ind}, corrected for the wall as the camera sees it</OutputDescriptor>
  <Matrix id="target_to_screen" inBitDepth="32f" outBitDepth="32f">
    <Description>target-to-screen 3x3 (A^-1)</Description>
    <Array dim="3 3">
{rows}
    </Array>
  </Matrix>
  <Range id="clamp" inBitDepth="32f" outBitDepth="32f" style="Clamp">
    <minInValue>{_fmt(lo)}</minInValue>
    <maxInValue>{_fmt(corr.hi)}</maxInValue>
    <minOutValue>{_fmt(lo)}</minOutValue>
    <maxOutValue>{_fmt(corr.hi)}</maxOutValue>
  </Range>
  <Log id="shaper" inBitDepth="32f" outBitDepth="32f" style="log2"/>
  <Range id="shaper_range" inBitDepth="32f" outBitDepth="32f" style="Clamp">
    <minInValue>{_fmt(corr.log2_lo)}</minInValue>
    <maxInValue>{_fmt(l2hi)}</maxInValue>
    <minOutValue>0</minOutValue>
    <maxOutValue>1</maxOutValue>
  </Range>
  <LUT1D id="eotf_correction" inBitDepth="32f" outBitDepth="32f" interpolation="linear">
    <Description>per-channel EOTF correction, linear light out</Description>
    <Array dim="{len(corr.lut)} 3">
{lut}
    </Array>
  </LUT1D>
</ProcessList>
"""


def write_clf(path: str | Path, corr: Correction, **kw) -> Path:
    p = Path(path)
    p.write_text(clf_text(corr, **kw), encoding="utf-8")
    return p


def _reference_space(cfg) -> str:
    """The scene reference colour space of a config: the ``aces_interchange`` role, else a scene colour space
    with no transforms."""
    from stagectl.color.ocio import ocio_module

    o = ocio_module()
    name = cfg.role("aces_interchange")
    if name:
        return name
    for cs in cfg.raw.getColorSpaces():
        if cs.getReferenceSpaceType() == o.REFERENCE_SPACE_SCENE and not cs.isData() and \
                cs.getTransform(o.COLORSPACE_DIR_TO_REFERENCE) is None and \
                cs.getTransform(o.COLORSPACE_DIR_FROM_REFERENCE) is None:
            return cs.getName()
    raise ColorError(f"OCIO config {cfg.name!r}: cannot tell its reference colour space (no aces_interchange role)")


def calibrated_config(cfg, oc, clf_name: str, display: str, *, source_dir: str | None = None):
    """A copy of ``cfg`` with display ``display`` and views ``Calibrated`` (the output's target -> the CLF
    ``clf_name`` (found beside the written config) -> the output's clamp and curve) and ``Uncalibrated`` (the same
    without the CLF); validated. Returns the raw ``PyOpenColorIO.Config``."""
    from stagectl.color.ocio import ocio_module
    from stagectl.color.output import output_transforms

    o = ocio_module()
    new = o.Config.CreateFromStream(cfg.raw.serialize())  # an editable copy
    paths = ["."]
    if source_dir:
        for i in range(new.getNumSearchPaths()):
            sp = new.getSearchPath(i)
            paths.append(sp if os.path.isabs(sp) else os.path.join(source_dir, sp))
    new.clearSearchPaths()
    for sp in paths:
        new.addSearchPath(sp)
    ref = _reference_space(cfg)
    curve = output_transforms(cfg, oc.target, oc)  # clamp + curve (working == target: no conversion)
    made = {}
    for view, with_clf in (("Calibrated", True), ("Uncalibrated", False)):
        steps = [o.ColorSpaceTransform(src=ref, dst=oc.target)]
        if with_clf:
            steps.append(o.FileTransform(src=clf_name, interpolation=o.INTERP_LINEAR))
        steps += curve
        cs = o.ColorSpace(o.REFERENCE_SPACE_SCENE)
        name = f"{display} - {view}"
        cs.setName(name)
        cs.setFamily("stagectl/calibration")
        cs.setEncoding("hdr-video" if oc.transfer == "pq" else "sdr-video")
        cs.setDescription(f"stagectl calibrate colour: {oc.describe()}" + (f" through {clf_name}" if with_clf else ""))
        cs.setTransform(o.GroupTransform(steps), o.COLORSPACE_DIR_FROM_REFERENCE)
        new.addColorSpace(cs)
        new.addDisplayView(display, view, name)
        made[view] = name
    act = [str(d) for d in new.getActiveDisplays()]
    if act and display not in act:
        new.addActiveDisplay(display)
    actv = [str(v) for v in new.getActiveViews()]
    for v in made:
        if actv and v not in actv:
            new.addActiveView(v)
    try:
        new.validate()
    except Exception as exc:  # noqa: BLE001 - OCIO's own exception types
        raise ColorError(f"the calibrated OCIO config does not validate: {str(exc).splitlines()[0]}") from None
    return new
