"""The operator's settings of one camera, declared once: :class:`CameraSettings` (tracking source, tracking delay,
smoothing, overscan, soft edge, freeze) and the One Euro smoothing's parameters (:class:`OneEuroParams`).

Each field carries its type, limits, unit and help (:func:`~stagectl.core.fields.declared`). Everything that
reads or writes a camera setting takes the limits from here:

* the settings themselves (``__post_init__``): what :meth:`stagectl.runtime.rig.CameraRig.apply` takes;
* the stage file's values of them (``tracking[].delay_frames``, ``render.inner.overscan_percent``,
  ``render.inner.soft_edge``: :mod:`stagectl.stage.loader`), the settings every camera starts with;
* the operator state file (:mod:`stagectl.console.state`), the ``camera.set`` command, its OSC form and the
  docs (:mod:`stagectl.console.commands`);
* the take header's settings ``stagectl export`` solves a take with (:mod:`stagectl.post.solve`);
* the timeline's filter itself (:class:`OneEuroParams`, :class:`Smoothing`; :mod:`stagectl.tracking.timeline`).

Units: tracking delay in (fractional) frames, overscan in percent per side (left, right, bottom, top), soft
edge as a fraction of the inner frustum's half-size, smoothing cutoffs in Hz.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from stagectl.core.fields import FieldError, Value, check_fields, declared, show, value_of, values_of

__all__ = [
    "SMOOTHING",
    "CameraSettings",
    "OneEuroParams",
    "Overscan",
    "Smoothing",
    "overscan_of",
    "overscan_text",
    "smoothing_json",
    "smoothing_of",
    "smoothing_text",
]

Overscan = tuple[float, float, float, float]


# ------------------------------------------------------------------------------------- One Euro filter


@dataclass(frozen=True, slots=True)
class OneEuroParams:
    """Parameters of one One Euro filter (Casiez et al. 2012), each declared with its limits:

    * ``min_cutoff_hz``: cutoff at rest, Hz. Lower = less jitter, more lag (lag ``1/(2 pi fc)`` s).
    * ``beta``: cutoff increase per unit of speed, Hz per (m/s) for position, Hz per (deg/s) for rotation.
    * ``d_cutoff_hz``: cutoff of the speed estimate, Hz; the paper uses 1 Hz.

    A value outside its declaration raises :class:`ValueError` (``OneEuroParams.<field>: expected ..., got
    ...``)."""

    min_cutoff_hz: float = declared(
        1.0, kind="number", lo=0.0, hi=1000.0, lo_open=True, unit="Hz", help="cutoff at rest")
    beta: float = declared(0.0, kind="number", lo=0.0, hi=1000.0, help="speed coefficient")
    d_cutoff_hz: float = declared(
        1.0, kind="number", lo=0.0, hi=1000.0, lo_open=True, unit="Hz", help="speed cutoff")

    def __post_init__(self) -> None:
        for name, val in _ONE_EURO:
            try:
                object.__setattr__(self, name, val.check(getattr(self, name)))
            except FieldError as exc:
                raise ValueError(f"OneEuroParams.{name}: {exc.message}") from None

    @property
    def latency_ns(self) -> int:
        """Lag behind a slow ramp, ns: ``round(1e9 / (2 pi min_cutoff_hz))`` (the low-pass time constant)."""
        return round(1e9 / (2.0 * math.pi * self.min_cutoff_hz))


#: OneEuroParams' declarations, read once (the timeline's take reader builds one per recorded frame)
_ONE_EURO: Final = tuple((name, val) for name, val, _ in values_of(OneEuroParams))


@dataclass(frozen=True, slots=True)
class Smoothing:
    """One Euro smoothing of a timeline: ``position`` / ``rotation`` filters (``None``: that part unfiltered).

    ``reset_after_ns``: a gap between samples longer than this restarts the filters at the new sample.
    """

    position: OneEuroParams | None = None
    rotation: OneEuroParams | None = None
    reset_after_ns: int = 1_000_000_000

    @property
    def latency_ns(self) -> int:
        """Added latency estimate, ns: the larger of the enabled filters' :attr:`OneEuroParams.latency_ns`."""
        return max([f.latency_ns for f in (self.position, self.rotation) if f is not None], default=0)


#: The parts of the operator's smoothing (``camera.set smoothing``, the state file's and the take header's
#: ``smoothing``): ``(name, declaration, default)``, the declarations :class:`OneEuroParams`'s; default None:
#: required (turning smoothing on names its cutoff), else the filter's default. The same filter smooths
#: position and rotation.
SMOOTHING: Final[tuple[tuple[str, Value, float | None], ...]] = tuple(
    (name, val, None if name == "min_cutoff_hz" else default) for name, val, default in values_of(OneEuroParams)
)


def smoothing_text() -> str:
    """``"off" or {"min_cutoff_hz": Hz > 0 and <= 1000, ...}``: what a smoothing value must be."""
    parts = []
    for name, val, default in SMOOTHING:
        unit = f"{val.unit} " if val.unit else ""
        parts.append(f'"{name}": {unit}{val.range_text()}' + ("" if default is None else " (optional)"))
    return '"off" or {' + ", ".join(parts) + "}"


def smoothing_of(v: Any, *, strict: bool = True) -> OneEuroParams | None:
    """The operator's smoothing from its JSON form: ``"off"`` or null (None), or ``{"min_cutoff_hz": Hz,
    "beta": ..., "d_cutoff_hz": Hz}`` (the last two optional) within :data:`SMOOTHING`'s limits. ``strict``:
    unknown keys are refused (a command), else ignored (the state file, a take header). Raises
    :class:`~stagectl.core.fields.FieldError` (key ``""``) ``expected "off" or {...}, got ...``."""
    if v is None or v == "off":
        return None

    def bad() -> FieldError:
        return FieldError("", f"expected {smoothing_text()}, got {show(v)}")

    if not isinstance(v, Mapping) or (strict and set(v) - {name for name, _, _ in SMOOTHING}):
        raise bad()
    kw = {}
    for name, val, default in SMOOTHING:
        if name not in v and default is None:
            raise bad()
        try:
            kw[name] = val.check(v.get(name, default), op=True)
        except FieldError:
            raise bad() from None
    return OneEuroParams(**kw)


def smoothing_json(p: OneEuroParams | None) -> str | dict:
    """:func:`smoothing_of`'s JSON form of ``p``: ``"off"`` or every part."""
    return "off" if p is None else {name: getattr(p, name) for name, _, _ in SMOOTHING}


# ------------------------------------------------------------------------------------- camera settings


def overscan_text() -> str:
    """``a percentage 0..100 or [left, right, bottom, top] each 0..100``: what an overscan value must be."""
    val = value_of(CameraSettings, "overscan_percent")
    rng = val.range_text()
    return f"a percentage {rng} or [{', '.join(val.parts)}] each {rng}"


def overscan_of(v: Any) -> Overscan:
    """The operator's overscan: one percentage for all four sides, or ``[left, right, bottom, top]``, each within
    ``CameraSettings.overscan_percent``'s limits (as the stage file's ``render.inner.overscan_percent``). Raises
    :class:`~stagectl.core.fields.FieldError` (key ``""``)."""
    val = value_of(CameraSettings, "overscan_percent")
    try:
        return val.check(v if isinstance(v, (list, tuple)) else [v] * len(val.parts), op=True)
    except FieldError:
        raise FieldError("", f"expected {overscan_text()}, got {show(v)}") from None


@dataclass(frozen=True)
class CameraSettings:
    """The operator's settings of one camera, each field declared once (type, limits, unit, help) for the
    ``camera.set`` command, the operator state file, the stage file and the checks here (module docstring);
    the smoothing's parts in :data:`SMOOTHING`. Values outside the declarations raise
    :class:`~stagectl.core.fields.FieldError` (``<field>: expected ..., got ...``)."""

    tracking: str = declared(kind="text", help="the tracking source driving the camera")
    delay_frames: float = declared(
        0.0, kind="number", lo=0.0, hi=30.0, unit="frames", help="tracking delay, frames (fractional allowed)"
    )
    smoothing: OneEuroParams | None = declared(
        None, kind="object", cls=OneEuroParams, nullable=True,
        help="One Euro smoothing of position and rotation (None: off)",
    )
    overscan_percent: Overscan = declared(
        (10.0, 10.0, 10.0, 10.0), kind="vector", parts=("left", "right", "bottom", "top"), lo=0.0, hi=100.0,
        unit="percent", help="inner frustum overscan per side, percent of the unscanned frustum",
    )
    soft_edge: float = declared(
        0.05, kind="number", lo=0.0, hi=0.5, help="fraction of the inner frustum's half-size blended at its border"
    )
    freeze: bool = declared(False, kind="bool", help="keep the inner frustum (matrices and image) where it is")

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "overscan_percent", overscan_of(self.overscan_percent))
        except FieldError as exc:
            raise FieldError("overscan_percent", exc.message) from None
        check_fields(self, "")
        # an OneEuroParams is within SMOOTHING's limits by its own declarations
        if self.smoothing is not None and not isinstance(self.smoothing, OneEuroParams):
            raise FieldError("smoothing", f"expected OneEuroParams or None, got {self.smoothing!r}")

    def smoothing_filter(self) -> Smoothing | None:
        """The :class:`Smoothing` of the camera's timeline (None: off): the same One Euro parameters for
        position and rotation."""
        if self.smoothing is None:
            return None
        return Smoothing(position=self.smoothing, rotation=self.smoothing)

    def to_json(self) -> dict:
        """The JSON form the state file, clients and the take header carry (operator units)."""
        return {
            "tracking": self.tracking,
            "delay_frames": self.delay_frames,
            "smoothing": smoothing_json(self.smoothing),
            "overscan_percent": list(self.overscan_percent),
            "soft_edge": self.soft_edge,
            "freeze": self.freeze,
        }
