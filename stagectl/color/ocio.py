"""A thin, typed wrapper around PyOpenColorIO 2.x: configs, processors, CPU application, GPU shaders.

OpenColorIO is stagectl's colour engine (docs/colour.md). This module is the only one that imports
``PyOpenColorIO``; it hands out plain Python values and a frozen :class:`GpuShader` with **no GL in it**
(:mod:`stagectl.render.ocio_pass` compiles that into a pass).

* :func:`load_config` — a config by name (the built-in ``ocio://studio-config-latest`` by default, any
  ``ocio://`` built-in) or by file path; a bad name or path is a one-line :class:`ColorError`.
  :class:`ColorConfig` lists colour spaces, displays and views, and builds processors.
* :class:`Grade` — the operator grade, applied in the working (scene-linear) space before the view, in this
  order: exposure (stops, ``ExposureContrastTransform``, optionally *dynamic*: a uniform on the GPU, a
  property on the CPU), white balance (linear RGB gains as a ``MatrixTransform``; from a temperature/tint
  with :func:`stagectl.core.grade.white_balance_gains`), ASC CDL (``CDLTransform``, style ``asc``
  clamps to 0..1 as ASC CDL v1.2, ``no_clamp`` does not), then grade files (:class:`GradeFile`: ``.cube``,
  ``.clf``, ``.ctf`` read by OCIO's ``FileTransform``; ``.cdl``, ``.cc``, ``.ccc`` (with a ``cccid``) read by
  OCIO's ``CDLTransform.CreateFromFile`` with the ASC clamp, since ``FileTransform`` applies a CDL file
  unclamped) and an in-memory :class:`~stagectl.core.lut.Lut3D` (``Lut3DTransform``). A LUT may be
  ``encoding="srgb"``: applied to sRGB-encoded values and decoded back, the convention of the existing
  :class:`~stagectl.core.features.ColorCorrection` (:meth:`Grade.from_color_correction`).
* :func:`grade_processor` — the processor of a :class:`Grade` alone, on OCIO's raw config
  (:func:`raw_config`): what the composite pass compiles for the walls' and inner frusta's grades
  (:mod:`stagectl.render.grades`).
* :class:`LookSpec` and :func:`look_processor` — a wall's or a camera's OCIO looks (``LookTransform`` of the
  stage's config) and the scene-linear space its looks and grade run in, then the operator's grade: the
  processor of a wall's outer image or a camera's inner frustum, stage working space in and out.
* :class:`ColorProcessor` — ``apply`` runs OCIO's CPU processor on float32 images (..., 3) or (..., 4);
  ``gpu_shader`` extracts OCIO's GPU path into a :class:`GpuShader`: shader text, function name, 3D LUT
  textures (:class:`ShaderTexture3D`), 1D/2D LUT textures (:class:`ShaderTexture`), uniforms
  (:class:`ShaderUniform`) and the name of the dynamic exposure uniform.

GLSL: stagectl's GL contexts are OpenGL **3.3 core** or newer (:mod:`stagectl.render.gl.context`). OCIO's
``GLSL_1_2``/``GLSL_1_3`` text samples with ``texture2D``/``texture3D``, which a core profile does not have;
its ``GLSL_4_0`` text uses only the generic ``texture()`` and GLSL 1.30+ syntax, so it is what stagectl asks
for and compiles under ``#version 330 core`` (:data:`GLSL_VERSION`); the GL test proves it on llvmpipe.

OpenColorIO caches processors per config keyed by the transform's text, which for an in-memory
``Lut3DTransform`` does not include its table (two different LUTs of one size got the same processor):
:func:`load_config` turns the config's processor cache off. Processors are built at setup, not per frame.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.color.errors import ColorError

__all__ = [
    "DEFAULT_CONFIG",
    "GPU_LANGUAGE",
    "GLSL_VERSION",
    "INTERPOLATIONS",
    "CDL_STYLES",
    "LUT_ENCODINGS",
    "CDL_SUFFIXES",
    "ocio_module",
    "load_config",
    "ColorConfig",
    "CDL",
    "GradeFile",
    "Grade",
    "ColorProcessor",
    "ShaderTexture",
    "ShaderTexture3D",
    "ShaderUniform",
    "GpuShader",
    "raw_config",
    "shared_config",
    "grade_processor",
    "LookSpec",
    "look_processor",
]

DEFAULT_CONFIG = "ocio://studio-config-latest"  #: OCIO's built-in ACES studio config, newest version
GPU_LANGUAGE = "GLSL_4_0"  #: OCIO shader language asked for (generic ``texture()``)
GLSL_VERSION = "330 core"  #: the ``#version`` the OCIO text compiles under in stagectl's GL contexts
INTERPOLATIONS = ("default", "best", "linear", "nearest", "tetrahedral", "cubic")
CDL_STYLES = ("asc", "no_clamp")
LUT_ENCODINGS = ("linear", "srgb")
CDL_SUFFIXES = (".cdl", ".cc", ".ccc")


def ocio_module():
    """``PyOpenColorIO``, imported on first use; a :class:`ColorError` says how to install it if missing."""
    try:
        import PyOpenColorIO
    except ImportError as exc:  # pragma: no cover - a dependency of stagectl
        raise ColorError(f"OpenColorIO is not installed ({exc}); pip install 'opencolorio>=2.3,<3'") from None
    return PyOpenColorIO


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _ocio_errors() -> tuple[type[BaseException], ...]:
    o = ocio_module()
    return (o.Exception, o.ExceptionMissingFile)


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _interp(name: str, what: str):
    o = ocio_module()
    if name not in INTERPOLATIONS:
        raise ColorError(
            f"{what}: unknown interpolation {name!r}; expected one of {', '.join(INTERPOLATIONS)}"
        )
    return {
        "default": o.INTERP_DEFAULT,
        "best": o.INTERP_BEST,
        "linear": o.INTERP_LINEAR,
        "nearest": o.INTERP_NEAREST,
        "tetrahedral": o.INTERP_TETRAHEDRAL,
        "cubic": o.INTERP_CUBIC,
    }[name]


def _interp_name(value) -> str:
    """OCIO Interpolation enum -> our name (``linear``, ``nearest``, ...)."""
    s = str(value).rsplit(".", 1)[-1].lower()
    return s.removeprefix("interp_")


# --------------------------------------------------------------------------------------------- config


def load_config(source: str | Path | None = None) -> ColorConfig:
    """The OCIO config ``source``: ``None`` (:data:`DEFAULT_CONFIG`), an ``ocio://`` built-in name, or the
    path of a ``.ocio`` file (or ``.ocioz`` archive). Raises a one-line :class:`ColorError` if OCIO cannot
    load it."""
    o = ocio_module()
    src = DEFAULT_CONFIG if source is None else str(source)
    if not src.startswith("ocio://"):
        p = Path(src).expanduser()
        if not p.is_file():
            raise ColorError(
                f"OCIO config {src!r}: no such file (give a .ocio path or an ocio:// built-in name)"
            )
        src = str(p)
    try:
        raw = o.Config.CreateFromFile(src)
        raw.validate()
    except _ocio_errors() as exc:
        raise ColorError(f"OCIO config {src!r}: {_one_line(exc)}") from None
    raw.setProcessorCacheFlags(o.PROCESSOR_CACHE_OFF)  # see the module docstring
    return ColorConfig(raw, src)


_RAW_LOCK = threading.Lock()
_RAW: list[ColorConfig] = []


def raw_config() -> ColorConfig:
    """OCIO's raw config (``Config.CreateRaw()``: one ``raw`` colour space, no roles, processor cache off),
    made once: the config of processors that are transforms alone, such as a :class:`Grade` in the working
    space (:func:`grade_processor`). Safe to call from any thread."""
    with _RAW_LOCK:
        if not _RAW:
            o = ocio_module()
            raw = o.Config.CreateRaw()
            raw.setProcessorCacheFlags(o.PROCESSOR_CACHE_OFF)  # see the module docstring
            _RAW.append(ColorConfig(raw, "ocio raw config"))
        return _RAW[0]


_SHARED: dict[str, ColorConfig] = {}


def shared_config(source: str | Path | None = None) -> ColorConfig:
    """:func:`load_config` of ``source``, loaded once per process and shared (a config is read-only once
    loaded; OCIO's ``getProcessor`` may run on any thread). Safe to call from any thread."""
    key = DEFAULT_CONFIG if source is None else str(source)
    with _RAW_LOCK:
        got = _SHARED.get(key)
    if got is None:
        got = load_config(key)
        with _RAW_LOCK:
            got = _SHARED.setdefault(key, got)
    return got


def grade_processor(grade: Grade) -> ColorProcessor:
    """The processor of ``grade`` alone (working space in, working space out; no colour space conversion),
    built on :func:`raw_config`: what the composite pass compiles for a wall or inner-frustum grade
    (:mod:`stagectl.render.grades`). Pure CPU work (no GL), so it may run off the render thread."""
    o = ocio_module()
    what = f"grade ({grade.describe()})"
    try:
        raw = raw_config().raw.getProcessor(o.GroupTransform(grade.transforms()))
    except _ocio_errors() as exc:
        raise ColorError(f"OCIO processor {what}: {_one_line(exc)}") from None
    return ColorProcessor(raw, what, dynamic_exposure=grade.dynamic_exposure, exposure=grade.exposure)


class ColorConfig:
    """A loaded OCIO config (``raw``: the ``PyOpenColorIO.Config``) and where it came from (``source``)."""

    def __init__(self, raw: Any, source: str) -> None:
        self.raw = raw
        self.source = source

    def __repr__(self) -> str:
        return f"<ColorConfig {self.name!r} from {self.source!r}>"

    @property
    def name(self) -> str:
        return str(self.raw.getName())

    def color_spaces(self) -> tuple[str, ...]:
        """Every active colour space name, config order."""
        return tuple(self.raw.getColorSpaceNames())

    def displays(self) -> tuple[str, ...]:
        return tuple(self.raw.getDisplays())

    def views(self, display: str) -> tuple[str, ...]:
        self.check_display(display)
        return tuple(self.raw.getViews(display))

    @property
    def default_display(self) -> str:
        return str(self.raw.getDefaultDisplay())

    def default_view(self, display: str | None = None) -> str:
        d = self.default_display if display is None else display
        self.check_display(d)
        return str(self.raw.getDefaultView(d))

    def role(self, role: str) -> str | None:
        """The colour space a role (``scene_linear``, ``aces_interchange``, ...) names, None if unset."""
        return str(self.raw.getRoleColorSpace(role)) if self.raw.hasRole(role) else None

    @property
    def working_space(self) -> str:
        """The ``scene_linear`` role's colour space (``ACEScg`` in the studio config)."""
        ws = self.role("scene_linear")
        if ws is None:
            raise ColorError(f"OCIO config {self.source!r} has no scene_linear role; name a working space")
        return ws

    def check_color_space(self, name: str) -> str:
        """``name`` if the config knows it as a colour space or role (OCIO resolves aliases and roles)."""
        cs = self.raw.getColorSpace(name)
        if cs is None:
            hint = _suggest(name, self.color_spaces())
            raise ColorError(f"OCIO config {self.name!r}: unknown colour space {name!r}{hint}")
        return name

    def looks(self) -> tuple[str, ...]:
        """Every look of the config (``looks:`` section), config order."""
        return tuple(str(lk.getName()) for lk in self.raw.getLooks())

    def check_look(self, name: str) -> str:
        """``name`` if the config has a look of that name, else a one-line :class:`ColorError` with close
        matches."""
        looks = self.looks()
        if name not in looks:
            listed = ", ".join(repr(n) for n in looks) or "none"
            raise ColorError(f"OCIO config {self.name!r}: unknown look {name!r}{_suggest(name, looks)}; "
                             f"looks: {listed}")
        return name

    def encoding(self, name: str) -> str:
        """The colour space's ``encoding`` (``scene-linear``, ``log``, ``sdr-video``, ...; empty when the
        config does not say)."""
        self.check_color_space(name)
        return str(self.raw.getColorSpace(name).getEncoding() or "")

    def check_display(self, display: str) -> str:
        if display not in self.displays():
            raise ColorError(
                f"OCIO config {self.name!r}: unknown display {display!r}"
                f"{_suggest(display, self.displays())}; "
                f"displays: {', '.join(self.displays())}"
            )
        return display

    def check_view(self, display: str, view: str) -> str:
        views = self.views(display)
        if view not in views:
            raise ColorError(
                f"OCIO config {self.name!r}: display {display!r} has no view {view!r}"
                f"{_suggest(view, views)}; "
                f"views: {', '.join(views)}"
            )
        return view

    def processor(
        self,
        source: str | None = None,
        *,
        display: str | None = None,
        view: str | None = None,
        target: str | None = None,
        grade: Grade | None = None,
    ) -> ColorProcessor:
        """A processor from colour space ``source`` (default: :attr:`working_space`) through ``grade`` (in
        ``source``) to either a ``display``/``view`` pair (``view`` defaults to the display's default) or a
        ``target`` colour space; with neither, the grade alone (``source`` in, ``source`` out)."""
        o = ocio_module()
        src = self.check_color_space(self.working_space if source is None else source)
        if target is not None and (display is not None or view is not None):
            raise ColorError("give a display/view or a target colour space, not both")
        steps: list[Any] = list(grade.transforms(self) if grade is not None else [])
        if display is not None or view is not None:
            d = self.check_display(self.default_display if display is None else display)
            v = self.check_view(d, self.default_view(d) if view is None else view)
            steps.append(o.DisplayViewTransform(src=src, display=d, view=v))
            what = f"{src} -> {d} / {v}"
        elif target is not None:
            t = self.check_color_space(target)
            steps.append(o.ColorSpaceTransform(src=src, dst=t))
            what = f"{src} -> {t}"
        else:
            what = f"{src} (grade only)"
        if grade is not None and not grade.is_identity:
            what = f"{what} with {grade.describe()}"
        try:
            raw = self.raw.getProcessor(o.GroupTransform(steps))
        except _ocio_errors() as exc:
            raise ColorError(f"OCIO processor {what}: {_one_line(exc)}") from None
        return ColorProcessor(
            raw,
            what,
            dynamic_exposure=bool(grade is not None and grade.dynamic_exposure),
            exposure=0.0 if grade is None else grade.exposure,
        )


# --------------------------------------------------------------------------------------------- grade


def _triple(value, what: str, *, positive: bool = False) -> tuple[float, float, float]:
    try:
        v = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise ColorError(f"{what}: expected three numbers, got {value!r}") from None
    if len(v) != 3 or not all(math.isfinite(x) for x in v) or (positive and min(v) < 0.0):
        expect = "three finite numbers >= 0" if positive else "three finite numbers"
        raise ColorError(f"{what}: expected {expect}, got {value!r}")
    return v  # type: ignore[return-value]


@dataclass(frozen=True)
class CDL:
    """ASC CDL values: ``out = (in * slope + offset) ^ power``, then saturation with Rec. 709 luma;
    ``style`` ``asc`` clamps to 0..1 (ASC CDL v1.2, what :func:`stagectl.core.grade.cdl` does),
    ``no_clamp`` extends it (OCIO's default)."""

    slope: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    power: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    style: str = "asc"

    def __post_init__(self) -> None:
        object.__setattr__(self, "slope", _triple(self.slope, "CDL slope", positive=True))
        object.__setattr__(self, "offset", _triple(self.offset, "CDL offset"))
        power = _triple(self.power, "CDL power")
        if min(power) <= 0.0:
            raise ColorError(f"CDL power: expected values > 0, got {self.power!r}")
        object.__setattr__(self, "power", power)
        sat = float(self.saturation)
        if not math.isfinite(sat) or sat < 0.0:
            raise ColorError(f"CDL saturation: expected a number >= 0, got {self.saturation!r}")
        object.__setattr__(self, "saturation", sat)
        if self.style not in CDL_STYLES:
            raise ColorError(f"CDL style {self.style!r}: expected one of {', '.join(CDL_STYLES)}")

    @classmethod
    def from_file(cls, path: str | Path, cccid: str = "", *, style: str = "asc") -> CDL:
        """Read the values of a ``.cdl``, ``.cc`` or ``.ccc`` file through OCIO (``cccid``: the id, or the
        index as a string, of one correction of a ``.ccc``; empty for the first)."""
        o = ocio_module()
        p = Path(path).expanduser()
        if not p.is_file():
            raise ColorError(f"CDL file {str(path)!r}: no such file")
        try:
            t = o.CDLTransform.CreateFromFile(str(p), str(cccid))
        except _ocio_errors() as exc:
            raise ColorError(f"CDL file {str(path)!r}: {_one_line(exc)}") from None
        return cls(
            tuple(t.getSlope()), tuple(t.getOffset()), tuple(t.getPower()), float(t.getSat()), style=style
        )

    def transform(self):
        o = ocio_module()
        style = o.CDL_ASC if self.style == "asc" else o.CDL_NO_CLAMP
        t = o.CDLTransform(
            slope=list(self.slope), offset=list(self.offset), power=list(self.power), sat=self.saturation
        )
        t.setStyle(style)
        return t


def _srgb_moncurve(direction):
    """sRGB piecewise curve as OCIO's ``ExponentWithLinearTransform`` (gamma 2.4, offset 0.055):
    forward decodes (signal -> linear), inverse encodes."""
    o = ocio_module()
    return o.ExponentWithLinearTransform(
        gamma=[2.4, 2.4, 2.4, 1.0], offset=[0.055, 0.055, 0.055, 0.0], direction=direction
    )


@dataclass(frozen=True)
class GradeFile:
    """A grade read by OCIO's ``FileTransform``: ``.cube`` (Resolve/Iridas), ``.clf``/``.ctf`` (Academy /
    Autodesk Common LUT Format), ``.cdl``/``.cc``/``.ccc`` (ASC CDL; ``cccid`` picks one correction of a
    ``.ccc``), or any other format OCIO reads. ``encoding`` ``srgb``: the file is applied to sRGB-encoded
    values and the result decoded back to linear (a display-referred LUT, like
    :class:`~stagectl.core.features.ColorCorrection`'s ``lut``)."""

    path: str
    cccid: str = ""
    interpolation: str = "default"
    encoding: str = "linear"
    cdl_style: str = "asc"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(Path(self.path).expanduser()))
        _interp(self.interpolation, f"grade file {self.path!r}")
        if self.encoding not in LUT_ENCODINGS:
            raise ColorError(f"grade file {self.path!r}: encoding {self.encoding!r}; expected linear or srgb")
        if self.cdl_style not in CDL_STYLES:
            raise ColorError(
                f"grade file {self.path!r}: CDL style {self.cdl_style!r}; expected asc or no_clamp"
            )

    @property
    def is_cdl(self) -> bool:
        return Path(self.path).suffix.lower() in CDL_SUFFIXES

    def transform(self):
        """The OCIO transform. ASC CDL files are read by ``CDLTransform.CreateFromFile`` with ``cdl_style``
        (OCIO's ``FileTransform`` applies them unclamped, unlike ASC CDL v1.2 and features.cdl); every other
        file is a ``FileTransform``."""
        o = ocio_module()
        if not Path(self.path).is_file():
            raise ColorError(f"grade file {self.path!r}: no such file")
        if self.is_cdl:
            t = CDL.from_file(self.path, self.cccid, style=self.cdl_style).transform()
            return t
        return o.FileTransform(
            src=self.path,
            cccId=self.cccid,
            interpolation=_interp(self.interpolation, f"grade file {self.path!r}"),
        )


@dataclass(frozen=True)
class Grade:
    """An operator grade in the working space (scene-linear), applied in field order: ``exposure`` (stops;
    ``dynamic_exposure`` makes it a uniform / property that can change without a new processor), ``gains``
    (white balance, linear RGB multipliers), ``cdl``, ``files`` (in order), ``lut`` (an in-memory
    :class:`~stagectl.core.lut.Lut3D`, trilinear, applied in ``lut_encoding``)."""

    exposure: float = 0.0
    dynamic_exposure: bool = False
    gains: tuple[float, float, float] | None = None
    cdl: CDL | None = None
    files: tuple[GradeFile, ...] = ()
    lut: Any = None  # stagectl.core.lut.Lut3D
    lut_encoding: str = "linear"

    def __post_init__(self) -> None:
        e = float(self.exposure)
        if not math.isfinite(e) or abs(e) > 16.0:
            raise ColorError(f"exposure: expected stops in -16..16, got {self.exposure!r}")
        object.__setattr__(self, "exposure", e)
        if self.gains is not None:
            object.__setattr__(self, "gains", _triple(self.gains, "white balance gains", positive=True))
        object.__setattr__(
            self, "files", tuple(f if isinstance(f, GradeFile) else GradeFile(str(f)) for f in self.files)
        )
        if self.lut_encoding not in LUT_ENCODINGS:
            raise ColorError(f"LUT encoding {self.lut_encoding!r}; expected linear or srgb")
        if self.lut is not None and not hasattr(self.lut, "table"):
            raise ColorError(
                f"grade lut: expected a stagectl.core.lut.Lut3D, got {type(self.lut).__name__}"
            )

    @classmethod
    def from_color_correction(cls, cc, *, dynamic_exposure: bool = False) -> Grade:
        """The OCIO form of a :class:`stagectl.core.features.ColorCorrection` (exposure, white balance
        gains, ASC CDL with its clamp, LUT on sRGB-encoded values): the same maths as ``cc.apply``."""
        cdl = None
        if cc.has_cdl:
            cdl = CDL(cc.slope, cc.offset, cc.power, cc.saturation, style="asc")
        gains = None if tuple(cc.white_balance) == (1.0, 1.0, 1.0) else tuple(cc.white_balance)
        return cls(
            exposure=cc.exposure,
            dynamic_exposure=dynamic_exposure,
            gains=gains,
            cdl=cdl,
            lut=cc.lut,
            lut_encoding="srgb",
        )

    @property
    def is_identity(self) -> bool:
        return (
            self.exposure == 0.0
            and not self.dynamic_exposure
            and self.gains in (None, (1.0, 1.0, 1.0))
            and self.cdl is None
            and not self.files
            and self.lut is None
        )

    def describe(self) -> str:
        parts = []
        if self.exposure or self.dynamic_exposure:
            parts.append(f"exposure {self.exposure:+g}" + (" (dynamic)" if self.dynamic_exposure else ""))
        if self.gains is not None:
            parts.append("white balance " + "/".join(f"{g:.4g}" for g in self.gains))
        if self.cdl is not None:
            parts.append("CDL")
        parts += [Path(f.path).name for f in self.files]
        if self.lut is not None:
            parts.append(f"LUT {self.lut!r}")
        return ", ".join(parts) or "no grade"

    def transforms(self, config: ColorConfig | None = None) -> list[Any]:
        """The OCIO transforms of this grade, in order (``config`` is unused; kept for context-dependent
        transforms such as looks)."""
        o = ocio_module()
        out: list[Any] = []
        if self.exposure != 0.0 or self.dynamic_exposure:
            ec = o.ExposureContrastTransform(style=o.EXPOSURE_CONTRAST_LINEAR, exposure=self.exposure)
            if self.dynamic_exposure:
                ec.makeExposureDynamic()
            out.append(ec)
        if self.gains is not None and self.gains != (1.0, 1.0, 1.0):
            r, g, b = self.gains
            out.append(o.MatrixTransform(matrix=[r, 0, 0, 0, 0, g, 0, 0, 0, 0, b, 0, 0, 0, 0, 1]))
        if self.cdl is not None:
            out.append(self.cdl.transform())
        for f in self.files:
            out += self._encoded(f.transform(), f.encoding)
        if self.lut is not None:
            out += self._encoded(self._lut_transforms(self.lut), self.lut_encoding)
        return out

    @staticmethod
    def _encoded(t, encoding: str) -> list[Any]:
        o = ocio_module()
        body = t if isinstance(t, list) else [t]
        if encoding == "linear":
            return body
        return [_srgb_moncurve(o.TRANSFORM_DIR_INVERSE), *body, _srgb_moncurve(o.TRANSFORM_DIR_FORWARD)]

    @staticmethod
    def _lut_transforms(lut) -> list[Any]:
        """A features.Lut3D: input normalised from its domain and clamped to 0..1 (as ``Lut3D.apply``), then
        a trilinear ``Lut3DTransform`` (OCIO's data order: blue fastest, i.e. ``table[r, g, b]`` raveled)."""
        o = ocio_module()
        lo = np.asarray(lut.domain_min, dtype=np.float64)
        hi = np.asarray(lut.domain_max, dtype=np.float64)
        steps: list[Any] = []
        if tuple(lo) != (0.0, 0.0, 0.0) or tuple(hi) != (1.0, 1.0, 1.0):
            s = 1.0 / (hi - lo)
            steps.append(
                o.MatrixTransform(
                    matrix=[s[0], 0, 0, 0, 0, s[1], 0, 0, 0, 0, s[2], 0, 0, 0, 0, 1],
                    offset=[-lo[0] * s[0], -lo[1] * s[1], -lo[2] * s[2], 0.0],
                )
            )
        steps.append(o.RangeTransform(minInValue=0.0, maxInValue=1.0, minOutValue=0.0, maxOutValue=1.0))
        t = o.Lut3DTransform(gridSize=int(lut.size), interpolation=o.INTERP_LINEAR)
        t.setData(np.ascontiguousarray(lut.table, dtype=np.float32).ravel())
        steps.append(t)
        return steps


# --------------------------------------------------------------------------------------------- looks


@dataclass(frozen=True)
class LookSpec:
    """A wall's outer image's or a camera's inner frustum's OpenColorIO looks, and the colour space they and
    the operator's grade run in (the stage file's ``colour: walls:`` / ``cameras:``, docs/colour.md).

    ``config``: the config's source (:func:`shared_config`); ``stage_space``: the renderer's linear RGB (the
    stage's working space): what goes in and comes out; ``looks``: look names of the config, applied in
    order (one OCIO ``LookTransform``: each look converts to its own process space, as the config defines
    it, and back); ``working_space``: the scene-linear colour space the looks and the grade run in (None:
    ``stage_space``). Frozen and hashable: it keys the composite pass's grade functions."""

    config: str
    stage_space: str
    looks: tuple[str, ...] = ()
    working_space: str | None = None

    def __post_init__(self) -> None:
        looks = (self.looks,) if isinstance(self.looks, str) else tuple(str(n) for n in self.looks)
        object.__setattr__(self, "looks", looks)
        if self.working_space == self.stage_space:
            object.__setattr__(self, "working_space", None)

    @property
    def space(self) -> str:
        """Where the looks and the grade run."""
        return self.working_space or self.stage_space

    @property
    def is_identity(self) -> bool:
        """No look and no colour space of its own: nothing to do (a grade alone is :func:`grade_processor`)."""
        return not self.looks and self.working_space is None

    def describe(self) -> str:
        parts = [f"look {', '.join(self.looks)}"] if self.looks else []
        if self.working_space is not None:
            parts.append(f"in {self.working_space}")
        return " ".join(parts) or "no look"

    def transforms(self, grade: Grade | None = None, *, looks: bool = True) -> list[Any]:
        """The OCIO transforms, stage working space in and out: to :attr:`working_space`, the looks
        (``looks=False``: left out), ``grade``, back."""
        o = ocio_module()
        space = self.space
        out: list[Any] = []
        if space != self.stage_space:
            out.append(o.ColorSpaceTransform(src=self.stage_space, dst=space))
        if looks and self.looks:
            out.append(o.LookTransform(src=space, dst=space, looks=", ".join(self.looks)))
        if grade is not None:
            out += grade.transforms()
        if space != self.stage_space:
            out.append(o.ColorSpaceTransform(src=space, dst=self.stage_space))
        return out


def look_processor(spec: LookSpec | None, grade: Grade | None = None) -> ColorProcessor:
    """The processor of a wall's outer image or a camera's inner frustum: ``spec``'s looks in its working
    space, then ``grade`` (:meth:`LookSpec.transforms`), on the stage's config; the stage working space in and
    out. ``spec`` None (or :attr:`~LookSpec.is_identity` and ``grade`` not None): :func:`grade_processor` of
    the grade alone. Pure CPU work (no GL), any thread; a bad look or colour space is a one-line
    :class:`ColorError`."""
    if spec is None or (spec.is_identity and grade is not None):
        return grade_processor(grade if grade is not None else Grade())
    cfg = shared_config(spec.config)
    for n in spec.looks:
        cfg.check_look(n)
    cfg.check_color_space(spec.stage_space)
    cfg.check_color_space(spec.space)
    o = ocio_module()
    what = spec.describe() + (f", grade ({grade.describe()})" if grade is not None else "")
    try:
        raw = cfg.raw.getProcessor(o.GroupTransform(spec.transforms(grade)))
    except _ocio_errors() as exc:
        raise ColorError(f"OCIO processor {what}: {_one_line(exc)}") from None
    return ColorProcessor(raw, what, dynamic_exposure=bool(grade is not None and grade.dynamic_exposure),
                          exposure=0.0 if grade is None else grade.exposure)


# --------------------------------------------------------------------------------------------- GPU shader


@dataclass(frozen=True)
class ShaderTexture3D:
    """A 3D LUT texture of an OCIO shader: ``edge``^3 RGB float texels, ``values`` shaped
    ``(edge, edge, edge, 3)`` in GL upload order (index ``[b, g, r]``: red fastest = texture x).
    ``interpolation`` is the texture filter OCIO asks for (``linear`` or ``nearest``; tetrahedral LUTs ask
    for ``nearest`` and interpolate in the shader)."""

    name: str
    sampler: str
    edge: int
    interpolation: str
    values: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class ShaderTexture:
    """A 1D or 2D LUT texture of an OCIO shader (``dimensions`` 1: a ``sampler1D`` of ``width``; 2: a
    ``sampler2D`` of ``width x height``), ``channels`` 1 (red) or 3 (RGB) float texels; ``values`` shaped
    ``(height, width, channels)``, row 0 = texture row 0 (OCIO's order, uploaded as is: no flip)."""

    name: str
    sampler: str
    width: int
    height: int
    channels: int
    dimensions: int
    interpolation: str
    values: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class ShaderUniform:
    """A uniform of an OCIO shader and its value at extraction: ``kind`` ``float`` (OCIO's double),
    ``bool``, ``vec3``, ``float_array`` or ``int_array`` (``value`` a tuple)."""

    name: str
    kind: str
    value: Any


@dataclass(frozen=True)
class GpuShader:
    """OCIO's GPU path of one processor, as plain data.

    ``text`` declares the uniforms and samplers and defines ``vec4 <function_name>(vec4 inPixel)``; it is
    GLSL for ``#version`` :data:`GLSL_VERSION`. ``exposure_uniform`` names the float uniform that holds the
    dynamic exposure in stops (None without a dynamic exposure); set it per frame instead of rebuilding.
    """

    language: str
    glsl_version: str
    function_name: str
    resource_prefix: str
    text: str = field(repr=False)
    textures_3d: tuple[ShaderTexture3D, ...]
    textures: tuple[ShaderTexture, ...]
    uniforms: tuple[ShaderUniform, ...]
    exposure_uniform: str | None
    cache_id: str

    @property
    def samplers(self) -> tuple[str, ...]:
        return tuple(t.sampler for t in self.textures_3d) + tuple(t.sampler for t in self.textures)


def _uniform(name: str, data) -> ShaderUniform:
    o = ocio_module()
    t = data.type
    if t == o.UNIFORM_DOUBLE:
        return ShaderUniform(name, "float", float(data.getDouble()))
    if t == o.UNIFORM_BOOL:
        return ShaderUniform(name, "bool", bool(data.getBool()))
    if t == o.UNIFORM_FLOAT3:
        return ShaderUniform(name, "vec3", tuple(float(v) for v in data.getFloat3()))
    if t == o.UNIFORM_VECTOR_FLOAT:
        return ShaderUniform(name, "float_array", tuple(float(v) for v in np.asarray(data.getVectorFloat())))
    if t == o.UNIFORM_VECTOR_INT:
        return ShaderUniform(name, "int_array", tuple(int(v) for v in np.asarray(data.getVectorInt())))
    raise ColorError(f"OCIO shader uniform {name!r} has a type stagectl does not know: {t}")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float32, copy=True)
    a.setflags(write=False)
    return a


class ColorProcessor:
    """An OCIO processor (``raw``) with its CPU path and its GPU shader extraction. ``description`` says
    what it converts. A processor with a dynamic exposure keeps the current value (:meth:`set_exposure`)
    for both paths."""

    def __init__(self, raw: Any, description: str, *, dynamic_exposure: bool = False, exposure: float = 0.0):
        o = ocio_module()
        self.raw = raw
        self.description = description
        self.dynamic_exposure = dynamic_exposure
        self._exposure = float(exposure)
        try:
            # LOSSLESS: OCIO's default optimisation swaps pow/log/exp for fast approximations (~7e-6 off,
            # half a code at 16 bit); the CPU path is the reference, so it keeps the exact functions
            self._cpu = raw.getOptimizedCPUProcessor(
                o.BIT_DEPTH_F32, o.BIT_DEPTH_F32, o.OPTIMIZATION_LOSSLESS
            )
        except _ocio_errors() as exc:
            raise ColorError(f"OCIO CPU processor {description}: {_one_line(exc)}") from None

    def __repr__(self) -> str:
        return f"<ColorProcessor {self.description}>"

    @property
    def cache_id(self) -> str:
        return str(self.raw.getCacheID())

    @property
    def exposure(self) -> float:
        return self._exposure

    def set_exposure(self, stops: float) -> None:
        """Change the dynamic exposure (stops) of the CPU path and of shaders extracted from now on."""
        if not self.dynamic_exposure:
            raise ColorError(
                f"processor {self.description}: exposure is not dynamic (Grade(dynamic_exposure=True))"
            )
        e = float(stops)
        if not math.isfinite(e):
            raise ColorError(f"exposure must be finite, got {stops!r}")
        o = ocio_module()
        self._cpu.getDynamicProperty(o.DYNAMIC_PROPERTY_EXPOSURE).setDouble(e)
        self._exposure = e

    def apply(self, image) -> np.ndarray:
        """OCIO's CPU processor on ``image`` (..., 3) RGB or (..., 4) RGBA; a new float32 array (alpha is
        passed through by the transforms stagectl builds)."""
        a = np.array(image, dtype=np.float32, copy=True, order="C")
        if a.ndim < 1 or a.shape[-1] not in (3, 4):
            raise ColorError(f"OCIO apply: expected (..., 3) or (..., 4) pixels, got shape {a.shape}")
        if a.size == 0:
            return a
        flat = a.reshape(-1, a.shape[-1])
        if a.shape[-1] == 3:
            self._cpu.applyRGB(flat)
        else:
            self._cpu.applyRGBA(flat)
        return a

    def gpu_shader(
        self,
        *,
        function_name: str = "ocio_color",
        resource_prefix: str = "ocio_",
        texture_max_width: int = 4096,
        allow_texture_1d: bool = True,
    ) -> GpuShader:
        """OCIO's GPU path (exact, analytical where OCIO can; not the legacy baked-LUT path) as a
        :class:`GpuShader` in :data:`GPU_LANGUAGE`. ``texture_max_width``: 1D LUTs longer than this are
        folded into 2D textures (OCIO's choice; 4096 fits every GL 3.3 implementation)."""
        o = ocio_module()
        try:
            gpu = self.raw.getDefaultGPUProcessor()
            desc = o.GpuShaderDesc.CreateShaderDesc(
                language=getattr(o, f"GPU_LANGUAGE_{GPU_LANGUAGE}"),
                functionName=function_name,
                resourcePrefix=resource_prefix,
            )
            desc.setTextureMaxWidth(int(texture_max_width))
            desc.setAllowTexture1D(bool(allow_texture_1d))
            gpu.extractGpuShaderInfo(desc)
        except _ocio_errors() as exc:
            raise ColorError(f"OCIO GPU shader {self.description}: {_one_line(exc)}") from None
        exposure_uniform = None
        if self.dynamic_exposure and desc.hasDynamicProperty(o.DYNAMIC_PROPERTY_EXPOSURE):
            prop = desc.getDynamicProperty(o.DYNAMIC_PROPERTY_EXPOSURE)
            probe = 1234.5  # find the uniform that reads the property: it follows a probe value
            prop.setDouble(probe)
            hits = [n for n, u in desc.getUniforms() if u.type == o.UNIFORM_DOUBLE and u.getDouble() == probe]
            prop.setDouble(self._exposure)
            if len(hits) != 1:
                raise ColorError(
                    f"OCIO GPU shader {self.description}: cannot tell the exposure uniform ({hits})"
                )
            exposure_uniform = hits[0]
        tex3d = tuple(
            ShaderTexture3D(
                name=t.textureName,
                sampler=t.samplerName,
                edge=int(t.edgeLen),
                interpolation=_interp_name(t.interpolation),
                values=_readonly(np.asarray(t.getValues()).reshape(t.edgeLen, t.edgeLen, t.edgeLen, 3)),
            )
            for t in desc.get3DTextures()
        )
        texs = []
        for t in desc.getTextures():
            channels = 1 if t.channel == o.GpuShaderDesc.TEXTURE_RED_CHANNEL else 3
            dims = 1 if t.dimensions == o.GpuShaderDesc.TEXTURE_1D else 2
            w, h = int(t.width), int(t.height)
            texs.append(
                ShaderTexture(
                    name=t.textureName,
                    sampler=t.samplerName,
                    width=w,
                    height=h,
                    channels=channels,
                    dimensions=dims,
                    interpolation=_interp_name(t.interpolation),
                    values=_readonly(np.asarray(t.getValues()).reshape(h, w, channels)),
                )
            )
        uniforms = tuple(_uniform(n, u) for n, u in desc.getUniforms())
        return GpuShader(
            language=GPU_LANGUAGE,
            glsl_version=GLSL_VERSION,
            function_name=str(desc.getFunctionName()),
            resource_prefix=str(desc.getResourcePrefix()),
            text=str(desc.getShaderText()),
            textures_3d=tex3d,
            textures=tuple(texs),
            uniforms=uniforms,
            exposure_uniform=exposure_uniform,
            cache_id=str(desc.getCacheID()),
        )
