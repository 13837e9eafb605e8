"""One output's encode as OpenColorIO transforms: the processor, its GPU shader, its preview (no GL here).

:func:`output_encode` turns an output's :class:`~stagectl.color.stagefile.OutputColour` into an
:class:`OutputEncode`: the OCIO processor from the working space to the output's signal (0..1 floats), the GPU
shader the composite pass compiles in (:mod:`stagectl.render.compositor`), the code depth and range the shader
rounds to, and a preview path. Legacy outputs (8-bit sRGB, no ``colour:`` section) have no encode: the composite
shader's own sRGB encode runs, unchanged.

The transforms of a ``transfer`` output (scene-linear working space in, signal out; docs/colour.md):

* every kind: ``ColorSpaceTransform(working -> target)`` (the target's linear primaries);
* ``pq``: ``RangeTransform`` clamp to ``[0, peak_nits / 100]`` (light above the wall's peak never reaches the
  curve), then the built-in ``CURVE - LINEAR_to_ST-2084`` (OCIO's nits/100 convention: 1.0 = 100 cd/m^2);
* ``hlg``: the BT.2100 inverse EOTF of a display of nominal peak ``L_W = peak_nits`` (400..2000): clamp to
  ``[0, L_W / 100]``, the inverse OOTF ``E = (Y_D / L_W)^((1 - gamma) / gamma) F_D / L_W`` with the system gamma
  ``1.2 + 0.42 log10(L_W / 1000)`` (OCIO's ``REC2100_SURROUND`` fixed function between two scales), then the
  built-in ``CURVE - HLG-OETF`` and a clamp to ``[0, 1]`` (:func:`hlg_transforms`; at 1000 nits the same maths
  as OCIO's ``DISPLAY - CIE-XYZ-D65_to_REC.2100-HLG-1000nit`` after its XYZ -> Rec.2020 matrix);
* ``srgb``: clamp to ``[0, 1]``, ``ExponentWithLinearTransform(2.4, 0.055)`` inverse (IEC 61966-2-1);
* ``gamma``: clamp to ``[0, 1]``, ``ExponentTransform(gamma)`` inverse;
* ``bt1886``: clamp to ``[0, 1]``, ``ExponentTransform(2.4)`` inverse (BT.1886 with black 0: scene-linear 1.0 =
  the display's white ``peak_nits``).

A ``display`` output is OCIO's ``DisplayViewTransform(working, display, view)``.

**Gamut compression** (``gamut_compress: true``; :func:`gamut_compress_transforms`): OCIO's built-in ``ACES-LMT -
ACES 1.3 Reference Gamut Compression`` in ACES2065-1 (the config's ``aces_interchange`` role), from the working
space and back, before everything else of the encode (the calibration and the display/view or curve included):
colours outside ACES AP1 come back inside it (up to the RGC's limits: 1.147 cyan, 1.264 magenta, 1.312 yellow
of distance), colours within the RGC's thresholds (0.815, 0.803, 0.880) are unchanged. It is part of
:func:`calibrated_processor`, not of :func:`output_transforms` (the previews' inversion leaves it out: a
picture of the compressed colours).

**OpenVPCal's double EOTF** (:func:`double_eotf_check`): a ``{lut, clf}`` pair whose ``.cube`` already holds
the EOTF correction of its ``.clf`` (OpenVPCal's ``_EOTF_CS`` / ``_CS_EOTF`` cubes) corrects the EOTF twice;
the stage file's loader warns once (logger ``stagectl.color``).

**Calibration** (``calibration:``, :class:`~stagectl.color.stagefile.Calibration`; docs/colour.md) goes where the
calibration's own convention puts it (:func:`calibrated_transforms`):

* stagectl's CLF (``{clf}``): after ``working -> target``, before the clamp and curve (the CLF maps target-linear
  light, 1.0 = 100 nits on PQ, to the corrected drive; it clamps to its own range);
* OpenVPCal's files (``{lut, clf}``): its 1D EOTF CLF after ``working -> target``, *inverted* between
  ``CURVE - LINEAR_to_ST-2084`` and its inverse (the LUT is indexed in PQ and holds the wall's measured EOTF; its
  inverse is the correction, as OpenVPCal's config applies it), then the clamp and curve, then its ``.cube`` on the
  encoded signal (baked from the target gamut + EOTF to the calibrated signal: display-to-display);
* a calibrated config (``{config, display, view}``): the whole encode is that config's display/view of the
  working space (:func:`calibrated_processor`: one processor across the two configs through their
  ``aces_interchange`` roles, or a plain ``DisplayViewTransform`` when it is the stage's own config).

Each calibrated output's :class:`OutputEncode` carries its twin without the calibration
(:attr:`OutputEncode.uncalibrated`) for the console's A/B switch (``color.calibration``); the composite pass
compiles both when the output opens and chooses one per frame.

**Preview** (:meth:`OutputEncode.preview_rgba8`): a deep or HDR canvas shown on an 8-bit sRGB screen (PNG
previews, console thumbnails). The canvas codes are turned back into signal, the output's transforms are
inverted by OCIO (back to the working space, clipped where the encode clipped) and the config's SDR view of
``sRGB - Display`` applied (ACES 2.0 SDR in the studio config: a tone map, so 1000-nit highlights roll off
instead of clipping at 100 nits). It is a picture for people, **not** the output's signal. That chain is baked
once per encode into a :data:`PREVIEW_LUT_EDGE`-point 3D LUT over the signal (OCIO's CPU processor sampled on
the grid, applied by OCIO with tetrahedral interpolation): exact ACES 2.0 on the CPU costs about 1.4 s per
1920 x 1080 canvas, far too slow for a running stage's previews; the LUT about 60 ms, within one 8-bit code of
the exact chain on PQ and display/view outputs (docs/colour.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stagectl.color.errors import ColorError
from stagectl.color.stagefile import LEGACY, ColourSettings, OutputColour, config_for

__all__ = ["PREVIEW_DISPLAY", "RGC_BUILTIN", "rgb_to_xyz_matrix", "hlg_transforms", "output_transforms",
           "calibrated_transforms", "gamut_compress_transforms", "calibrated_processor", "double_eotf_check",
           "OutputEncode", "output_encode", "output_encodes", "preview_picture"]

PREVIEW_DISPLAY = "sRGB - Display"  #: the display previews are made for (its default view)
PREVIEW_LUT_EDGE = 65  #: grid points per axis of the baked preview LUT (module docstring)
RGC_BUILTIN = "ACES-LMT - ACES 1.3 Reference Gamut Compression"  #: OCIO's built-in, applied in ACES2065-1
#: the inverse OOTF's luminance is scaled up to this before OCIO's REC2100_SURROUND fixed function, whose
#: luminance floor (1e-4) would otherwise lift the darkest greys off the published formula (up to 3 codes)
_HLG_LUMINANCE_SCALE = 1.0e4

#: CIE 1931 xy of the BT.2020 primaries and D65 (ITU-R BT.2020 Table 3)
_BT2020_XY = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
_D65_XY = (0.3127, 0.3290)


def rgb_to_xyz_matrix(primaries_xy=_BT2020_XY, white_xy=_D65_XY) -> np.ndarray:
    """The 3x3 normalised primary matrix RGB -> XYZ (SMPTE RP 177): columns the primaries' XYZ scaled so that
    RGB (1, 1, 1) gives the white point with Y = 1."""
    def xyz(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1.0 - x - y) / y])

    P = np.stack([xyz(*p) for p in primaries_xy], axis=1)
    S = np.linalg.solve(P, xyz(*white_xy))
    return P * S


def _clamp(o, lo: float, hi: float):
    return o.RangeTransform(minInValue=lo, maxInValue=hi, minOutValue=lo, maxOutValue=hi)


def _scale(o, k: float):
    return o.MatrixTransform(matrix=[float(v) for v in np.diag([k, k, k, 1.0]).ravel()])


def hlg_transforms(peak_nits: float) -> list:
    """BT.2100 HLG inverse EOTF for a display of nominal peak ``peak_nits`` (``L_W``) as OCIO transforms:
    Rec.2020-primaries linear light (1.0 = 100 nits) in, HLG signal 0..1 out (module docstring).

    With ``X = k F_D`` OCIO's ``REC2100_SURROUND`` with parameter ``1 / gamma`` gives
    ``X Y_X^(1/gamma - 1) = k^(1/gamma) F_D Y_D^(1/gamma - 1)``, and ``3 E`` (what ``CURVE - HLG-OETF`` takes) is
    that times ``3 (k L_W)^(-1/gamma)``; ``k L_W`` is :data:`_HLG_LUMINANCE_SCALE`."""
    from stagectl.color.ocio import ocio_module
    from stagectl.color.transfer import hlg_system_gamma

    o = ocio_module()
    lw = float(peak_nits)
    g = hlg_system_gamma(lw)
    return [_clamp(o, 0.0, lw / 100.0),  # OCIO's curve runs on past the peak
            _scale(o, 100.0 * _HLG_LUMINANCE_SCALE / lw),  # nits, then k = scale / L_W
            o.FixedFunctionTransform(o.FIXED_FUNCTION_REC2100_SURROUND, params=[1.0 / g]),
            _scale(o, 3.0 * _HLG_LUMINANCE_SCALE ** (-1.0 / g)),  # 3 E
            o.BuiltinTransform("CURVE - HLG-OETF"),
            _clamp(o, 0.0, 1.0)]  # the built-in runs on above signal 1


def _curve_steps(o, oc: OutputColour) -> list:
    """The clamp and curve of a ``transfer`` output: target-linear light in, signal out."""
    kind = oc.transfer or "srgb"
    if kind == "pq":
        return [_clamp(o, 0.0, float(oc.peak_nits) / 100.0), o.BuiltinTransform("CURVE - LINEAR_to_ST-2084")]
    if kind == "hlg":
        return hlg_transforms(float(oc.peak_nits))
    if kind == "srgb":
        return [_clamp(o, 0.0, 1.0), o.ExponentWithLinearTransform(
            gamma=[2.4, 2.4, 2.4, 1.0], offset=[0.055, 0.055, 0.055, 0.0], direction=o.TRANSFORM_DIR_INVERSE)]
    g = float(oc.gamma) if kind == "gamma" else 2.4  # gamma, bt1886 (black 0)
    return [_clamp(o, 0.0, 1.0), o.ExponentTransform(value=[g, g, g, 1.0], direction=o.TRANSFORM_DIR_INVERSE)]


def output_transforms(cfg, working_space: str, oc: OutputColour) -> list:
    """The OCIO transforms from ``working_space`` to the output's signal, without its calibration (module
    docstring)."""
    return _transforms(working_space, oc, None)


def calibrated_transforms(cfg, working_space: str, oc: OutputColour) -> list:
    """:func:`output_transforms` with the output's ``{clf}`` or ``{lut, clf}`` calibration where its convention
    puts it (module docstring); a ``{config, ...}`` calibration is no transform list of ``cfg``:
    :func:`calibrated_processor`."""
    cal = oc.calibration
    if cal is None:
        return output_transforms(cfg, working_space, oc)
    if cal.kind == "config":
        raise ColorError(f"{cal.describe()}: a calibrated config's view is a processor, not transforms of the "
                         "stage's config")
    return _transforms(working_space, oc, cal)


def _calibration_steps(o, cal, where: str) -> list:
    """The steps of ``cal`` at ``where``: ``linear`` (target-linear light, before the curve) or ``signal``."""
    if where == "signal":
        return [o.FileTransform(src=cal.lut, interpolation=o.INTERP_LINEAR)] if cal.lut else []
    if cal.clf is None:
        return []
    if cal.kind == "clf":  # stagectl calibrate colour: the correction itself, target-linear in and out
        return [o.FileTransform(src=cal.clf, interpolation=o.INTERP_LINEAR)]
    # OpenVPCal: the wall's measured EOTF indexed in PQ (1.0 = 10000 nits, OCIO's nits/100 linear), inverted
    return [o.BuiltinTransform("CURVE - LINEAR_to_ST-2084"),
            o.FileTransform(src=cal.clf, interpolation=o.INTERP_LINEAR, direction=o.TRANSFORM_DIR_INVERSE),
            o.BuiltinTransform("CURVE - ST-2084_to_LINEAR")]


def _transforms(working_space: str, oc: OutputColour, cal) -> list:
    from stagectl.color.ocio import ocio_module

    o = ocio_module()
    if oc.mode == "display":
        steps = [o.DisplayViewTransform(src=working_space, display=oc.display, view=oc.view)]
        return steps + (_calibration_steps(o, cal, "signal") if cal is not None else [])
    target = oc.target
    steps: list = []
    if target is not None and target != working_space:
        steps.append(o.ColorSpaceTransform(src=working_space, dst=target))
    if cal is not None:
        steps += _calibration_steps(o, cal, "linear")
    steps += _curve_steps(o, oc)
    if cal is not None:
        steps += _calibration_steps(o, cal, "signal")
    return steps


def gamut_compress_transforms(cfg, working_space: str) -> list:
    """ACES 1.3 Reference Gamut Compression (OCIO's built-in :data:`RGC_BUILTIN`) on ``working_space`` values:
    to ACES2065-1 (``cfg``'s ``aces_interchange`` role), the compression, and back (module docstring). A
    :class:`ColorError` when the config has no ACES2065-1."""
    from stagectl.color.ocio import ocio_module

    o = ocio_module()
    aces = cfg.role("aces_interchange") or ("ACES2065-1" if "ACES2065-1" in cfg.color_spaces() else None)
    if aces is None:
        raise ColorError(f"OCIO config {cfg.name!r} has no aces_interchange role (ACES2065-1), which the ACES "
                         "reference gamut compression runs in")
    return [o.ColorSpaceTransform(src=working_space, dst=aces), o.BuiltinTransform(RGC_BUILTIN),
            o.ColorSpaceTransform(src=aces, dst=working_space)]


def calibrated_processor(cfg, working_space: str, oc: OutputColour):
    """The raw OCIO processor from ``working_space`` to output ``oc``'s calibrated signal (its uncalibrated
    signal without a calibration), after the gamut compression when ``oc.gamut_compress``; a one-line
    :class:`ColorError` when OCIO cannot build it (a file it cannot read, configs without a common interchange
    space)."""
    from stagectl.color.ocio import ocio_module

    o = ocio_module()
    cal = oc.calibration
    first = gamut_compress_transforms(cfg, working_space) if oc.gamut_compress else []
    try:
        if cal is not None and cal.kind == "config":
            other = config_for(cal.config)
            if other.source == cfg.source:
                view = o.DisplayViewTransform(src=working_space, display=cal.display, view=cal.view)
                return cfg.raw.getProcessor(o.GroupTransform(first + [view]) if first else view)
            cross = o.Config.GetProcessorFromConfigs(cfg.raw, working_space, other.raw, cal.display, cal.view,
                                                     o.TRANSFORM_DIR_FORWARD)
            if not first:
                return cross
            return cfg.raw.getProcessor(o.GroupTransform(first + [cross.createGroupTransform()]))
        return cfg.raw.getProcessor(o.GroupTransform(first + calibrated_transforms(cfg, working_space, oc)))
    except Exception as exc:  # noqa: BLE001 - OCIO's own exception types
        raise ColorError(" ".join(str(exc).split()) or type(exc).__name__) from None


#: the neutral ramp :func:`double_eotf_check` reads the cube on: light from 1 % to 50 % of the output's white or
#: peak (above the black where a cube's grid is coarse, below the clip where a matrix's gains would saturate)
_RAMP = np.geomspace(0.01, 0.5, 24)
#: the CLF's correction must bend the ramp by more than this (log-ratio spread, ~2 %) for a double correction to
#: matter; the cube "holds the EOTF" when the CLF's curve explains its ramp at least this many times better
_CLF_BENDS, _BETTER = 0.02, 3.0


def double_eotf_check(cfg, working_space: str, oc: OutputColour) -> str | None:
    """None, or why ``oc``'s OpenVPCal ``{lut, clf}`` calibration corrects the EOTF twice.

    A neutral ramp of light ``L`` is encoded by the output's curve, run through the ``.cube`` and decoded: ``L'``
    per channel. A cube without an EOTF correction (OpenVPCal's ``_CS_ONLY``: a matrix on the signal's light)
    gives ``L' = k L`` -- a constant ratio per channel; one with the correction gives ``L' = k C(L)``, ``C`` the
    CLF's correction as the encode applies it (its measured EOTF inverted). The ratios ``L' / L`` and
    ``L' / C(L)`` are compared: their spread (max - min of the log over the ramp, worst channel). When ``C``
    itself bends the ramp (spread of ``C(L) / L`` above :data:`_CLF_BENDS`) and ``L' / C(L)`` is at least
    :data:`_BETTER` times flatter than ``L' / L``, the cube holds the EOTF correction too."""
    from stagectl.color.ocio import ColorProcessor, ocio_module

    cal = oc.calibration
    if cal is None or cal.kind != "files" or not cal.lut or not cal.clf or oc.mode != "transfer":
        return None
    o = ocio_module()
    top = float(oc.peak_nits) / 100.0 if (oc.transfer or "srgb") in ("pq", "hlg") else 1.0

    def run(steps, x):
        return ColorProcessor(cfg.raw.getProcessor(o.GroupTransform(steps)), "double EOTF check").apply(x)

    light = np.repeat((_RAMP * top)[:, None], 3, axis=1).astype(np.float32)
    curve = _curve_steps(o, oc)
    back = o.GroupTransform(curve)
    back.setDirection(o.TRANSFORM_DIR_INVERSE)
    try:
        seen = run(curve + [o.FileTransform(src=cal.lut, interpolation=o.INTERP_LINEAR), back], light)
        corrected = run(_calibration_steps(o, cal, "linear"), light)
    except Exception:  # noqa: BLE001 - a calibration OCIO cannot apply is refused elsewhere
        return None
    ok = np.all((seen > 1e-6) & (corrected > 1e-6), axis=1) & np.all(seen < 0.98 * top, axis=1)
    if np.count_nonzero(ok) < 8:
        return None

    def spread(ratio):
        r = np.log(ratio[ok].astype(np.float64))
        return float(np.max(r.max(axis=0) - r.min(axis=0)))

    bends, plain, eotf = spread(corrected / light), spread(seen / light), spread(seen / corrected)
    if bends < _CLF_BENDS or eotf * _BETTER > plain:
        return None
    lut, clf = Path(cal.lut).name, Path(cal.clf).name
    return (f"{lut} already holds the EOTF correction of {clf} (on a neutral ramp the cube follows the "
            f"CLF's curve: log spread {eotf:.3f} against {plain:.3f} for no EOTF correction), so the EOTF is "
            f"corrected twice; give the cube alone ({{lut: {lut}}}), or the cube OpenVPCal exported without its "
            "EOTF correction (_CS_ONLY) beside the CLF")


@dataclass(frozen=True, eq=False)
class OutputEncode:
    """A non-legacy output's encode: ``colour`` (its settings), ``processor`` (working space -> signal),
    ``shader`` (its :class:`~stagectl.color.ocio.GpuShader`, function ``ocio_output``), ``bits`` and
    ``narrow`` (what the composite shader rounds to), ``key`` (equal encodes share composite programs)."""

    key: str
    colour: OutputColour
    working_space: str
    config: object
    processor: object
    shader: object
    description: str
    #: the same output without its calibration (the A/B twin of ``color.calibration``); None: not calibrated
    uncalibrated: OutputEncode | None = None

    @property
    def calibrated(self) -> bool:
        return self.colour.calibration is not None

    @property
    def format(self) -> str:
        return self.colour.format

    @property
    def bits(self) -> int:
        return self.colour.bits

    @property
    def narrow(self) -> bool:
        return self.colour.narrow

    def signal(self, linear: np.ndarray) -> np.ndarray:
        """OCIO's CPU processor: working-space linear (..., 3 or 4) -> signal floats (the GPU's reference)."""
        return self.processor.apply(linear)

    def codes(self, linear: np.ndarray) -> np.ndarray:
        """The canvas codes the composite shader writes for ``linear`` (CPU reference): RGB quantised like
        :func:`stagectl.color.transfer.quantize` at the canvas depth and range, (..., 3) uint16."""
        from stagectl.color.transfer import quantize

        rgb = np.asarray(self.signal(np.asarray(linear, np.float32)[..., :3]), np.float64)
        return quantize(np.clip(rgb, 0.0, 1.0), self.bits, narrow=self.narrow)

    def preview_rgba8(self, canvas: np.ndarray) -> np.ndarray:
        """``(H, W, 4)`` codes of this output's canvas -> ``(H, W, 4)`` uint8 sRGB picture (module docstring)."""
        from stagectl.color.transfer import dequantize

        codes = np.asarray(canvas)
        if self.narrow:
            signal = dequantize(codes[..., :3], self.bits, narrow=True).astype(np.float32)
        else:  # D / (2^n - 1) in float32 (a picture: no float64 copy of the canvas)
            signal = np.multiply(codes[..., :3], np.float32(1.0 / ((1 << self.bits) - 1)), dtype=np.float32)
        out = np.empty(codes.shape[:2] + (4,), np.uint8)
        rgb = self._preview_processor().apply(signal)
        np.multiply(rgb, np.float32(255.0), out=rgb)
        rgb += np.float32(0.5)
        np.clip(rgb, 0.0, 255.5, out=rgb)  # then truncation: floor(clip(v, 0, 1) * 255 + 0.5)
        out[..., :3] = rgb
        out[..., 3] = 255
        return out

    def _preview_processor(self):
        if self.uncalibrated is not None:  # a picture for people: the canvas seen through the plain encode
            return self.uncalibrated._preview_processor()
        got = getattr(self, "_preview", None)
        if got is None:
            got = _baked_preview(self.config, _preview_processor(self.config, self.working_space, self.colour))
            object.__setattr__(self, "_preview", got)
        return got


def _preview_processor(cfg, working_space: str, oc: OutputColour):
    from stagectl.color.ocio import ColorProcessor, ocio_module

    o = ocio_module()
    back = o.GroupTransform(output_transforms(cfg, working_space, oc))
    back.setDirection(o.TRANSFORM_DIR_INVERSE)
    display = PREVIEW_DISPLAY if PREVIEW_DISPLAY in cfg.displays() else cfg.default_display
    view = cfg.default_view(display)
    steps = o.GroupTransform([back, o.DisplayViewTransform(src=working_space, display=display, view=view)])
    try:
        raw = cfg.raw.getProcessor(steps)
    except Exception as exc:  # noqa: BLE001 - OCIO's own exception types
        raise ColorError(f"preview of {oc.describe()}: {str(exc).splitlines()[0]}") from None
    return ColorProcessor(raw, f"preview {oc.describe()} -> {display} / {view}")


def _baked_preview(cfg, exact, edge: int = PREVIEW_LUT_EDGE):
    """``exact`` (signal -> preview picture) sampled on an ``edge``-point grid over the signal's 0..1 cube and
    applied as a tetrahedral ``Lut3DTransform`` (OCIO's data order: blue fastest)."""
    from stagectl.color.ocio import ColorProcessor, ocio_module

    o = ocio_module()
    g = np.linspace(0.0, 1.0, edge, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1)  # [r, g, b, 3]: blue fastest when raveled
    lut = o.Lut3DTransform(gridSize=edge, interpolation=o.INTERP_TETRAHEDRAL)
    lut.setData(np.ascontiguousarray(exact.apply(grid), dtype=np.float32).ravel())
    return ColorProcessor(cfg.raw.getProcessor(lut), f"{exact.description} (baked, {edge}-point 3D LUT)")


def output_encode(settings: ColourSettings | None, key: str) -> OutputEncode | None:
    """The encode of output ``key`` (None: legacy, the composite shader's own 8-bit sRGB encode). A calibrated
    output's encode includes its calibration and carries its twin without it (:attr:`OutputEncode.uncalibrated`,
    an OCIO encode even where the plain output would be legacy, so both draw through the same kind of program)."""
    if settings is None:
        return None
    oc = settings.output(key)
    if oc.mode == "legacy":
        return None
    twin = None
    if oc.calibration is not None:
        twin = _encode(settings, key, replace(oc, calibration=None))
    return _encode(settings, key, oc, twin)


def _encode(settings: ColourSettings, key: str, oc: OutputColour, twin: OutputEncode | None = None) -> OutputEncode:
    from stagectl.color.ocio import ColorProcessor

    cfg = config_for(settings.config)
    what = f"{settings.working_space} -> {oc.describe()}"
    try:
        raw = calibrated_processor(cfg, settings.working_space, oc)
    except ColorError as exc:
        raise ColorError(f"output {key}: OCIO processor {what}: {exc}") from None
    proc = ColorProcessor(raw, what)
    shader = proc.gpu_shader(function_name="ocio_output", resource_prefix="ocio_out_")
    ekey = f"{shader.cache_id}|{oc.format}|{oc.range}"
    return OutputEncode(ekey, oc, settings.working_space, cfg, proc, shader, what, twin)


def output_encodes(stage, keys) -> dict[str, OutputEncode | None]:
    """Output key -> :func:`output_encode` for ``stage`` (processors and shaders shared between equal
    outputs)."""
    settings = getattr(stage, "colour", None)
    made: dict[OutputColour, OutputEncode | None] = {}
    out: dict[str, OutputEncode | None] = {}
    for k in keys:
        oc = settings.output(k) if settings is not None else LEGACY
        if oc not in made:
            made[oc] = output_encode(settings, k)
        out[k] = made[oc]
    return out


def preview_picture(encode: OutputEncode | None, canvas: np.ndarray, width: int | None = None) -> np.ndarray:
    """An 8-bit sRGB picture ``(h, w, 4)`` of a canvas of codes for people (PNG previews, console thumbnails):
    ``width`` first (scaled down to at most that many pixels wide, area filter on the codes, aspect kept), then
    :meth:`OutputEncode.preview_rgba8` (``encode`` None: an 8-bit sRGB canvas, shown as it is)."""
    img = canvas
    if width is not None and img.shape[1] > width:
        import cv2

        h = max(1, round(img.shape[0] * width / img.shape[1]))
        img = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
    return img if encode is None else encode.preview_rgba8(img)
