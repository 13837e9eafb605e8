"""Per-source FreeD encoder profiles: raw zoom / focus / spare counts -> lens encoders and physical values.

FreeD D1 carries zoom and focus as raw 24-bit counts and a 16-bit spare ("user") field whose meaning is
vendor-defined (``docs/reference/PROTOCOLS.md`` section 1.6). A profile is plain data (frozen dataclasses);
:func:`apply_profile` is the one pure function that evaluates it.

Normalised encoders follow **OpenTrackIO's directions** (the same
:class:`~stagectl.core.sample.LensEncoders` carries both protocols): zoom 0 = wide, 1 = tele; focus 0 =
infinity (far), 1 = closest (near); iris 0 = open, 1 = closed. An :class:`EncoderRange` therefore names the
raw count at normalised 0 and at normalised 1, so a vendor range "focus near 0x0 -> far 0x10000" becomes
``EncoderRange(raw_at_0=0x10000, raw_at_1=0x0)``. Values outside the range are clamped to 0..1.

Physical values (where the vendor defines them) come from :class:`BitField` s: ``((raw >> shift) & mask) /
divisor``; a result of 0 means "not reported" and gives ``None`` (OpenTrackIO requires them > 0). Units:
focal length mm, focus distance m, iris as f-number.

Presets (:data:`PROFILES`): generic, panasonic, sony, mosys, stype, ncam, zcam, syncrolink. Custom profiles
use Unreal's ``{min, max, invert, mask bits}`` per encoder via :func:`custom_profile`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from stagectl.core.sample import LensEncoders, new_lens_encoders

__all__ = [
    "MOSYS_TRACKING_QUALITY",
    "PROFILES",
    "BitField",
    "EncoderProfile",
    "EncoderRange",
    "EncoderReading",
    "apply_profile",
    "custom_profile",
    "get_profile",
    "profile_evaluator",
    "profile_from_config",
    "profile_names",
]

FreeDField = Literal["zoom", "focus", "spare"]

MOSYS_TRACKING_QUALITY: Final = ("undefined", "good", "caution", "bad")
"""Meaning of Mo-Sys' tracking-quality code 0..3 (spare low 8 bits)."""


@dataclass(frozen=True, slots=True)
class EncoderRange:
    """Linear map of a raw count to a normalised 0..1 encoder value (OpenTrackIO directions).

    ``value = (raw >> shift) & (2**mask_bits - 1)``, then ``n = (value - raw_at_0) / (raw_at_1 - raw_at_0)``
    clamped to [0, 1]. ``raw_at_0`` may exceed ``raw_at_1`` (a falling encoder).
    """

    raw_at_0: int
    raw_at_1: int
    mask_bits: int = 24
    shift: int = 0

    def __post_init__(self) -> None:
        if self.raw_at_0 == self.raw_at_1:
            raise ValueError(f"EncoderRange needs raw_at_0 != raw_at_1, got both {self.raw_at_0}")
        if not 1 <= self.mask_bits <= 32 or not 0 <= self.shift <= 31:
            raise ValueError(
                f"EncoderRange: mask_bits must be 1..32 and shift 0..31, got {self.mask_bits}, {self.shift}"
            )

    def normalise(self, raw: int) -> float:
        """Normalised 0..1 value of the raw count ``raw``."""
        value = (raw >> self.shift) & ((1 << self.mask_bits) - 1)
        n = (value - self.raw_at_0) / (self.raw_at_1 - self.raw_at_0)
        return 0.0 if n < 0.0 else min(n, 1.0)


@dataclass(frozen=True, slots=True)
class BitField:
    """Bit field of a FreeD field as a physical value: ``((raw >> shift) & (2**bits - 1)) / divisor``."""

    source: FreeDField
    shift: int = 0
    bits: int = 24
    divisor: float = 1.0

    def extract(self, zoom: int, focus: int, spare: int) -> int:
        """The unscaled integer bit field."""
        raw = zoom if self.source == "zoom" else focus if self.source == "focus" else spare
        return (raw >> self.shift) & ((1 << self.bits) - 1)


@dataclass(frozen=True, slots=True)
class EncoderProfile:
    """How one kind of FreeD source encodes zoom (bytes 20-22), focus (23-25) and spare (26-27).

    ``zoom`` / ``focus`` normalise the zoom / focus fields, ``iris`` the spare field. ``focal_length_mm``,
    ``focus_distance_m``, ``f_stop`` give physical values; ``frame_counter`` and ``tracking_quality`` are
    integer side channels some vendors put in the spare field. ``port`` is the vendor's default UDP port.
    """

    name: str
    zoom: EncoderRange | None = None
    focus: EncoderRange | None = None
    iris: EncoderRange | None = None
    focal_length_mm: BitField | None = None
    focus_distance_m: BitField | None = None
    f_stop: BitField | None = None
    frame_counter: BitField | None = None
    tracking_quality: BitField | None = None
    port: int | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class EncoderReading:
    """What a profile makes of one packet's zoom / focus / spare; ``None`` wherever it defines nothing."""

    encoders: LensEncoders | None = None
    focal_length_mm: float | None = None
    focus_distance_m: float | None = None
    f_stop: float | None = None
    frame_counter: int | None = None
    tracking_quality: int | None = None


_U24: Final = 0xFFFFFF
_IRIS12_100 = BitField("spare", 0, 12, 100.0)  # F-number x 100 in bits 0-11
_SEQ4 = BitField("spare", 12, 4)  # frame counter in bits 12-15

_PRESETS: tuple[EncoderProfile, ...] = (
    EncoderProfile(
        "generic",
        zoom=EncoderRange(0x0, 0x10000),
        focus=EncoderRange(0x10000, 0x0),
        port=40000,
        description="Unreal Generic preset: zoom wide 0x0 -> tele 0x10000, focus near 0x0 -> far 0x10000",
    ),
    EncoderProfile(
        "panasonic",
        zoom=EncoderRange(0x555, 0xFFF),
        focus=EncoderRange(0xFFF, 0x555),
        iris=EncoderRange(0xFFF, 0x555),
        port=1111,
        description="Panasonic AW-UE: zoom wide 0x555 -> tele 0xFFF, focus near 0x555 -> far 0xFFF, "
        "spare = iris closed 0x555 -> open 0xFFF",
    ),
    EncoderProfile(
        "sony",
        zoom=EncoderRange(0x0, _U24),
        focus=EncoderRange(0x0, 0x7FFFFF),
        f_stop=_IRIS12_100,
        frame_counter=_SEQ4,
        port=40000,
        description="Sony: zoom wide 0x0 -> tele 0xFFFFFF, focus near 0x7FFFFF -> far 0x0, "
        "spare bits 0-11 F-number x 100, bits 12-15 frame counter",
    ),
    EncoderProfile(
        "mosys",
        zoom=EncoderRange(0x0, 0xFFFF),
        focus=EncoderRange(0xFFFF, 0x0),
        tracking_quality=BitField("spare", 0, 8),
        port=8001,
        description="Mo-Sys: zoom 0x0 -> 0xFFFF, focus near 0x0 -> far 0xFFFF, spare low 8 bits tracking "
        "quality 0-3 (undefined, good, caution, bad)",
    ),
    EncoderProfile(
        "stype",
        zoom=EncoderRange(0x0, _U24),
        focus=EncoderRange(_U24, 0x0),
        port=6301,
        description="stYpe: zoom 0x0 -> 0xFFFFFF, focus near 0x0 -> far 0xFFFFFF",
    ),
    EncoderProfile(
        "ncam",
        zoom=EncoderRange(0x0, _U24),
        focus=EncoderRange(_U24, 0x0),
        port=6301,
        description="Ncam: zoom 0x0 -> 0xFFFFFF, focus near 0x0 -> far 0xFFFFFF",
    ),
    EncoderProfile(
        "zcam",
        focal_length_mm=BitField("zoom", 0, 24, 100.0),
        focus_distance_m=BitField("focus", 0, 24, 10_000.0),
        f_stop=_IRIS12_100,
        frame_counter=_SEQ4,
        port=5001,
        description="Z-Cam: zoom = focal length mm x 100, focus = distance mm x 10, spare bits 0-11 F x 100, "
        "bits 12-15 frame sequence mod 16",
    ),
    EncoderProfile(
        "syncrolink",
        focal_length_mm=BitField("zoom", 0, 24, 64.0),
        focus_distance_m=BitField("focus", 0, 24, 64_000.0),
        f_stop=BitField("spare", 0, 12, 10.0),
        description="Factory Optic SYNCRO-LINK: zoom = focal length mm x 64, focus = distance mm x 64, "
        "spare = iris stop x 10 (12 bits)",
    ),
)

PROFILES: Mapping[str, EncoderProfile] = MappingProxyType({p.name: p for p in _PRESETS})
"""Preset profiles by canonical name (read-only)."""


def _canonical(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


def profile_names() -> tuple[str, ...]:
    """Canonical names of the preset profiles, sorted."""
    return tuple(sorted(PROFILES))


def get_profile(name: str) -> EncoderProfile:
    """Preset profile by name, case-insensitive, ignoring ``-``, ``_`` and spaces (``"Mo-Sys"`` -> mosys).

    Raises ``ValueError`` listing the valid names when there is no such preset.
    """
    profile = PROFILES.get(_canonical(name)) if isinstance(name, str) else None
    if profile is None:
        raise ValueError(
            f"unknown FreeD encoder profile {name!r}; valid names: {', '.join(profile_names())} "
            "(or 'custom' with min/max/invert/mask_bits per encoder, see custom_profile())"
        )
    return profile


def _range_from_spec(spec: Any, what: str) -> EncoderRange | None:
    if spec is None or isinstance(spec, EncoderRange):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"min", "max", "invert", "mask_bits"}
        if unknown:
            raise ValueError(
                f"custom profile {what}: unknown keys {sorted(unknown)}; expected min, max, invert, mask_bits"
            )
        try:
            lo, hi = spec["min"], spec["max"]
        except KeyError as exc:
            raise ValueError(f"custom profile {what}: missing key {exc.args[0]!r}") from None
        invert, mask_bits = spec.get("invert", False), spec.get("mask_bits", 24)
    else:
        try:
            lo, hi, invert, mask_bits = spec
        except (TypeError, ValueError):
            raise ValueError(
                f"custom profile {what}: expected (min, max, invert, mask_bits), got {spec!r}"
            ) from None
    for label, v in (("min", lo), ("max", hi), ("mask_bits", mask_bits)):
        if type(v) is not int:
            raise ValueError(f"custom profile {what}: {label} must be an integer, got {v!r}")
    if type(invert) is not bool:
        raise ValueError(f"custom profile {what}: invert must be true/false, got {invert!r}")
    return EncoderRange(hi, lo, mask_bits) if invert else EncoderRange(lo, hi, mask_bits)


def custom_profile(
    *,
    zoom: Any = None,
    focus: Any = None,
    iris: Any = None,
    name: str = "custom",
) -> EncoderProfile:
    """A profile from Unreal-style encoder settings.

    Each of ``zoom``, ``focus`` (from the focus field) and ``iris`` (from the spare field) is ``None``, an
    :class:`EncoderRange`, a tuple ``(min, max, invert, mask_bits)`` or a mapping with those keys. ``min``
    maps to 0 and ``max`` to 1 in OpenTrackIO directions (zoom 0 wide, focus 0 infinity, iris 0 open);
    ``invert`` swaps them; ``mask_bits`` keeps the low bits of the raw field. Raises ``ValueError`` on a bad
    spec.
    """
    return EncoderProfile(
        name,
        zoom=_range_from_spec(zoom, "zoom"),
        focus=_range_from_spec(focus, "focus"),
        iris=_range_from_spec(iris, "iris"),
        description="custom",
    )


def profile_from_config(config: str | Mapping[str, Any]) -> EncoderProfile:
    """Profile from a stage-file value: a preset name, or ``{"name": "custom", "zoom": {...}, ...}``.

    A mapping whose ``name`` is a preset gives that preset (no other keys allowed); ``"custom"`` takes
    ``zoom`` / ``focus`` / ``iris`` as in :func:`custom_profile`.
    """
    if isinstance(config, str):
        return get_profile(config)
    if not isinstance(config, Mapping):
        kind = type(config).__name__
        raise ValueError(f"encoder profile: expected a name or a mapping, got {kind}")  # noqa: TRY004
    name = config.get("name", "custom")
    if not isinstance(name, str):
        raise ValueError(f"encoder profile: name must be a string, got {name!r}")  # noqa: TRY004
    rest = {k: v for k, v in config.items() if k != "name"}
    if _canonical(name) != "custom":
        if rest:
            raise ValueError(
                f"encoder profile {name!r}: preset profiles take no settings, got {sorted(rest)}"
            )
        return get_profile(name)
    unknown = set(rest) - {"zoom", "focus", "iris"}
    if unknown:
        raise ValueError(
            f"custom encoder profile: unknown keys {sorted(unknown)}; expected zoom, focus, iris"
        )
    return custom_profile(zoom=rest.get("zoom"), focus=rest.get("focus"), iris=rest.get("iris"))


def _physical(bf: BitField | None, zoom: int, focus: int, spare: int) -> float | None:
    if bf is None:
        return None
    v = bf.extract(zoom, focus, spare)
    return v / bf.divisor if v else None


Reading = tuple[LensEncoders | None, float | None, float | None, float | None, int | None, int | None]
"""What :func:`profile_evaluator` returns: the fields of an :class:`EncoderReading`, in its order."""

_EVALUATORS: dict[int, tuple[EncoderProfile, Callable[[int, int, int], Reading]]] = {}
_MAX_EVALUATORS: Final = 256


def _compile(profile: EncoderProfile) -> Callable[[int, int, int], Reading]:
    """The evaluator of ``profile`` with its constants (shifts, masks, spans, divisors) worked out once.

    Same arithmetic as :meth:`EncoderRange.normalise`, :meth:`BitField.extract` and :func:`_physical`, so the
    same values to the bit. A profile built from subclasses of the range / field types is evaluated with their
    own methods.
    """
    ranges = (profile.zoom, profile.focus, profile.iris)
    fields = (
        profile.focal_length_mm,
        profile.focus_distance_m,
        profile.f_stop,
        profile.frame_counter,
        profile.tracking_quality,
    )
    if not all(r is None or type(r) is EncoderRange for r in ranges) or not all(
        f is None or type(f) is BitField for f in fields
    ):

        def slow(zoom: int, focus: int, spare: int) -> Reading:
            r = _apply_profile_slow(profile, zoom, focus, spare)
            return (
                r.encoders,
                r.focal_length_mm,
                r.focus_distance_m,
                r.f_stop,
                r.frame_counter,
                r.tracking_quality,
            )

        return slow

    def rng(r: EncoderRange | None) -> tuple[int, int, int, int] | None:
        return None if r is None else (r.shift, (1 << r.mask_bits) - 1, r.raw_at_0, r.raw_at_1 - r.raw_at_0)

    def bit(b: BitField | None) -> tuple[int, int, int, float] | None:
        if b is None:
            return None
        return (
            0 if b.source == "zoom" else 1 if b.source == "focus" else 2,
            b.shift,
            (1 << b.bits) - 1,
            b.divisor,
        )

    zr, fr, ir = (rng(r) for r in ranges)
    has_encoders = zr is not None or fr is not None or ir is not None
    fl, fd, fs, fc, tq = (bit(b) for b in fields)

    def evaluate(zoom: int, focus: int, spare: int) -> Reading:
        encoders = None
        if has_encoders:
            nf = ni = nz = None
            if fr is not None:
                shift, mask, r0, span = fr
                n = (((focus >> shift) & mask) - r0) / span
                nf = 0.0 if n < 0.0 else (1.0 if 1.0 < n else n)  # noqa: FURB136 - min(n, 1.0), no call
            if ir is not None:
                shift, mask, r0, span = ir
                n = (((spare >> shift) & mask) - r0) / span
                ni = 0.0 if n < 0.0 else (1.0 if 1.0 < n else n)  # noqa: FURB136
            if zr is not None:
                shift, mask, r0, span = zr
                n = (((zoom >> shift) & mask) - r0) / span
                nz = 0.0 if n < 0.0 else (1.0 if 1.0 < n else n)  # noqa: FURB136
            encoders = new_lens_encoders(focus=nf, iris=ni, zoom=nz)
        raws = (zoom, focus, spare)
        out_fl = out_fd = out_fs = out_fc = out_tq = None
        if fl is not None:
            src, shift, mask, div = fl
            v = (raws[src] >> shift) & mask
            out_fl = v / div if v else None
        if fd is not None:
            src, shift, mask, div = fd
            v = (raws[src] >> shift) & mask
            out_fd = v / div if v else None
        if fs is not None:
            src, shift, mask, div = fs
            v = (raws[src] >> shift) & mask
            out_fs = v / div if v else None
        if fc is not None:
            src, shift, mask, _ = fc
            out_fc = (raws[src] >> shift) & mask
        if tq is not None:
            src, shift, mask, _ = tq
            out_tq = (raws[src] >> shift) & mask
        return encoders, out_fl, out_fd, out_fs, out_fc, out_tq

    return evaluate


def profile_evaluator(profile: EncoderProfile) -> Callable[[int, int, int], Reading]:
    """``f(zoom, focus, spare)`` -> the :class:`EncoderReading` fields of ``profile`` as a tuple, in field order.

    :func:`apply_profile` without building the reading object, and with the profile's constants worked out
    once per profile (evaluators are cached by profile identity; profiles are immutable). For per-packet
    decoding.
    """
    entry = _EVALUATORS.get(id(profile))
    if entry is not None and entry[0] is profile:
        return entry[1]
    evaluate = _compile(profile)
    if len(_EVALUATORS) >= _MAX_EVALUATORS:  # bound the cache (profiles made on the fly, e.g. in tests)
        _EVALUATORS.clear()
    _EVALUATORS[id(profile)] = (profile, evaluate)  # the entry holds the profile: its id cannot be reused
    return evaluate


def apply_profile(profile: EncoderProfile, zoom: int, focus: int, spare: int) -> EncoderReading:
    """Evaluate ``profile`` on one packet's raw FreeD zoom (uint24), focus (uint24) and spare (uint16) fields.

    Returns normalised encoders (OpenTrackIO directions, ``None`` if the profile defines none), physical focal
    length (mm), focus distance (m), f-number, and the integer frame counter / tracking quality where defined.
    """
    encoders, focal_length_mm, focus_distance_m, f_stop, frame_counter, tracking_quality = profile_evaluator(
        profile
    )(zoom, focus, spare)
    return EncoderReading(
        encoders=encoders,
        focal_length_mm=focal_length_mm,
        focus_distance_m=focus_distance_m,
        f_stop=f_stop,
        frame_counter=frame_counter,
        tracking_quality=tracking_quality,
    )


def _apply_profile_slow(profile: EncoderProfile, zoom: int, focus: int, spare: int) -> EncoderReading:
    """The reference evaluation through the profile's own methods (used for subclassed range / field types)."""
    encoders = None
    if profile.zoom is not None or profile.focus is not None or profile.iris is not None:
        encoders = LensEncoders(
            focus=profile.focus.normalise(focus) if profile.focus is not None else None,
            iris=profile.iris.normalise(spare) if profile.iris is not None else None,
            zoom=profile.zoom.normalise(zoom) if profile.zoom is not None else None,
        )
    fc = profile.frame_counter
    tq = profile.tracking_quality
    return EncoderReading(
        encoders=encoders,
        focal_length_mm=_physical(profile.focal_length_mm, zoom, focus, spare),
        focus_distance_m=_physical(profile.focus_distance_m, zoom, focus, spare),
        f_stop=_physical(profile.f_stop, zoom, focus, spare),
        frame_counter=fc.extract(zoom, focus, spare) if fc is not None else None,
        tracking_quality=tq.extract(zoom, focus, spare) if tq is not None else None,
    )
