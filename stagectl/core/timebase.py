"""Exact frame rates, clocks, instants, SMPTE timecode and frame edges.

Everything here follows ``docs/conventions.md`` (*Time*, *Units*):

* a frame rate is an exact fraction ``num/den`` frames per second (23.976 is ``24000/1001``), never a float
  inside the code; ``FrameRate.fps`` exists for display only;
* time is an integer count of nanoseconds tagged with a :class:`Clock`; durations are ``int`` nanoseconds;
* frame ``k`` starts at ``epoch + k * period`` with ``period = 1e9 * den / num`` ns kept as an exact
  fraction and rounded (to the nearest ns) only when it is compared with a clock reading.

Timecode is SMPTE ST 12-1 style ``HH:MM:SS:FF`` counted at the *nominal* (integer) rate, with drop-frame for
29.97 (two labels dropped) and 59.94 (four labels dropped). Frame labels above 30 fps count every frame
(``FF`` runs 0..59 at 59.94/60, 0..119 at 119.88/120), as OpenTrackIO ``timing.timecode`` and most engines do.
"""

from __future__ import annotations

import enum
import math
import numbers
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "NS_PER_S",
    "FrameRate",
    "STANDARD_RATES",
    "Clock",
    "Instant",
    "Timecode",
    "FrameClock",
    "frame_edges",
    "frames_per_day",
]

#: Nanoseconds per second.
NS_PER_S: int = 1_000_000_000

# Well-known NTSC nicknames (as written by people and tools) -> numerator over 1001.
_NTSC_NICKNAMES: dict[str, int] = {
    "23.976": 24000,
    "23.98": 24000,
    "29.97": 30000,
    "47.952": 48000,
    "47.95": 48000,
    "59.94": 60000,
    "119.88": 120000,
}
_NICKNAME_FRACTIONS: dict[Fraction, int] = {Fraction(k): v for k, v in _NTSC_NICKNAMES.items()}
_NICKNAME_FLOATS: dict[float, int] = {float(k): v for k, v in _NTSC_NICKNAMES.items()}

_RATIO_RE = re.compile(r"^\s*([+-]?\d+)\s*/\s*([+-]?\d+)\s*$")
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_DECIMAL_RE = re.compile(r"^\s*[+-]?(\d+\.\d*|\.\d+)\s*$")


def _round_half_up(x: Fraction) -> int:
    """Round an exact fraction to the nearest integer, ties toward +infinity (``floor(x + 1/2)``)."""
    return math.floor(x + Fraction(1, 2))


def _rate_error(value: object, extra: str = "") -> ValueError:
    shown = repr(value) if isinstance(value, str) else str(value)
    return ValueError(
        f'expected a frame rate such as 24, 25, "24000/1001" or 29.97, got {shown}{extra}'
    )


@dataclass(frozen=True, init=False, eq=True)
class FrameRate:
    """An exact frame rate of ``num/den`` frames per second.

    ``FrameRate(24000, 1001)`` is 23.976 fps. The fraction is normalised by its gcd at construction, so
    ``FrameRate(48000, 2002) == FrameRate(24000, 1001)``; both parts must be positive integers.
    Use :meth:`parse` for anything read from a file, a protocol or a command line.
    """

    num: int
    den: int

    def __init__(self, num: int, den: int = 1) -> None:
        if isinstance(num, bool) or isinstance(den, bool):
            raise TypeError("FrameRate parts must be integers, not bool")
        if not isinstance(num, numbers.Integral) or not isinstance(den, numbers.Integral):
            raise TypeError(
                f"FrameRate(num, den) takes integers, got {num!r}, {den!r}; use FrameRate.parse for other forms"
            )
        n, d = int(num), int(den)
        if n <= 0 or d <= 0:
            raise ValueError(f"a frame rate needs a positive numerator and denominator, got {n}/{d}")
        g = math.gcd(n, d)
        object.__setattr__(self, "num", n // g)
        object.__setattr__(self, "den", d // g)

    # ----------------------------------------------------------------------------------------- parsing
    @classmethod
    def from_fraction(cls, value: Fraction) -> FrameRate:
        """Frame rate equal to an exact ``Fraction`` of frames per second."""
        return cls(value.numerator, value.denominator)

    @classmethod
    def parse(cls, value: Any, allowed: Iterable[FrameRate] | None = None) -> FrameRate:
        """Read a frame rate from any of its usual spellings.

        Accepted: a :class:`FrameRate`; a positive ``int`` (``24``); a ``Fraction``; a string ``"24"``,
        ``"24000/1001"``, ``"23.976"`` or ``"25.0"``; a ``[num, den]`` list or tuple; a mapping
        ``{"num": 24000, "den"|"denom": 1001}`` (OpenTrackIO writes ``denom``); a float that is an exact integer
        (``25.0``) or a well-known NTSC nickname (23.976, 23.98, 29.97, 47.952, 47.95, 59.94, 119.88, each read
        as ``x000/1001``).

        ``allowed`` restricts the result to a set (e.g. :data:`STANDARD_RATES`).

        :raises ValueError: anything else (``23.5``, ``0``, ``-24``, ``"abc"``, ``"24/0"``), or a rate not in
            ``allowed``.
        """
        rate = cls._parse_any(value)
        if allowed is not None:
            allowed_set = tuple(allowed)
            if rate not in allowed_set:
                names = ", ".join(r.label for r in allowed_set)
                raise _rate_error(value, f" ({rate.label} fps is not one of the allowed rates: {names})")
        return rate

    @classmethod
    def _parse_any(cls, value: Any) -> FrameRate:
        if isinstance(value, FrameRate):
            return value
        if isinstance(value, bool) or value is None:
            raise _rate_error(value)
        if isinstance(value, numbers.Integral):
            if int(value) <= 0:
                raise _rate_error(value)
            return cls(int(value), 1)
        if isinstance(value, Fraction):
            if value <= 0:
                raise _rate_error(value)
            return cls.from_fraction(value)
        if isinstance(value, numbers.Real):
            return cls._parse_float(float(value), value)
        if isinstance(value, str):
            return cls._parse_str(value)
        if isinstance(value, Mapping):
            den_key = "den" if "den" in value else "denom"
            if set(value.keys()) != {"num", den_key}:
                raise _rate_error(value, ' (a mapping needs exactly "num" and "den" or "denom")')
            return cls._parse_pair(value["num"], value[den_key], value)
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise _rate_error(value, " (a list needs exactly [num, den])")
            return cls._parse_pair(value[0], value[1], value)
        raise _rate_error(value)

    @classmethod
    def _parse_pair(cls, num: Any, den: Any, original: Any) -> FrameRate:
        for part in (num, den):
            if isinstance(part, bool) or not isinstance(part, numbers.Integral):
                raise _rate_error(original, " (num and den must be integers)")
        if int(num) <= 0 or int(den) <= 0:
            raise _rate_error(original)
        return cls(int(num), int(den))

    @classmethod
    def _parse_float(cls, x: float, original: Any) -> FrameRate:
        if not math.isfinite(x) or x <= 0:
            raise _rate_error(original)
        if x.is_integer():
            return cls(int(x), 1)
        nick = _NICKNAME_FLOATS.get(x)
        if nick is not None:
            return cls(nick, 1001)
        raise _rate_error(original)

    @classmethod
    def _parse_str(cls, text: str) -> FrameRate:
        m = _RATIO_RE.match(text)
        if m:
            num, den = int(m.group(1)), int(m.group(2))
            if num <= 0 or den <= 0:
                raise _rate_error(text)
            return cls(num, den)
        if _INT_RE.match(text):
            n = int(text)
            if n <= 0:
                raise _rate_error(text)
            return cls(n, 1)
        if _DECIMAL_RE.match(text):
            exact = Fraction(text.strip())
            if exact <= 0:
                raise _rate_error(text)
            if exact.denominator == 1:
                return cls(exact.numerator, 1)
            nick = _NICKNAME_FRACTIONS.get(exact)
            if nick is not None:
                return cls(nick, 1001)
        raise _rate_error(text)

    # ----------------------------------------------------------------------------------------- values
    def as_fraction(self) -> Fraction:
        """The rate as an exact ``Fraction``, frames per second."""
        return Fraction(self.num, self.den)

    @property
    def fps(self) -> float:
        """Frames per second as a float, **for display only** (never compute with it)."""
        return self.num / self.den

    @property
    def period_ns_exact(self) -> Fraction:
        """Frame period in nanoseconds as an exact fraction (``1e9 * den / num``)."""
        return Fraction(NS_PER_S * self.den, self.num)

    @property
    def period_ns(self) -> int:
        """Frame period in nanoseconds rounded to the nearest ns (41708333 at 23.976). Not for accumulating."""
        return _round_half_up(self.period_ns_exact)

    @property
    def is_drop_frame_capable(self) -> bool:
        """True for 29.97 (``30000/1001``) and 59.94 (``60000/1001``), the rates with drop-frame timecode."""
        return self.den == 1001 and self.num in (30000, 60000)

    @property
    def nominal_fps(self) -> int:
        """Integer timecode counting rate, ``ceil(num/den)``: 24 for 23.976, 30 for 29.97, 25 for 25."""
        return -(-self.num // self.den)

    @property
    def label(self) -> str:
        """Human label: ``"24"``, ``"23.976"``, ``"29.97"``, ``"59.94"``, ``"119.88"`` (at most 3 decimals)."""
        if self.den == 1:
            return str(self.num)
        text = f"{_round_half_up(self.as_fraction() * 1000)}"
        whole, frac = text[:-3] or "0", text[-3:].rjust(3, "0")
        frac = frac.rstrip("0")
        return f"{whole}.{frac}" if frac else whole

    def __str__(self) -> str:
        """Exact ``"num/den"`` form, e.g. ``"24000/1001"`` or ``"25/1"``; :meth:`parse` reads it back."""
        return f"{self.num}/{self.den}"

    def __repr__(self) -> str:
        return f"FrameRate({self.num}, {self.den})"

    def _key(self, other: object) -> Fraction:
        if not isinstance(other, FrameRate):
            raise TypeError(f"cannot compare FrameRate with {type(other).__name__}")
        return other.as_fraction()

    def __lt__(self, other: FrameRate) -> bool:
        return self.as_fraction() < self._key(other)

    def __le__(self, other: FrameRate) -> bool:
        return self.as_fraction() <= self._key(other)

    def __gt__(self, other: FrameRate) -> bool:
        return self.as_fraction() > self._key(other)

    def __ge__(self, other: FrameRate) -> bool:
        return self.as_fraction() >= self._key(other)

    # ----------------------------------------------------------------------------------------- conversions
    def frame_edge_ns(self, k: int, epoch_ns: int = 0) -> int:
        """Start of frame ``k`` in ns: ``epoch_ns + k * period`` computed exactly, then rounded to the nearest ns
        (ties up). No error accumulates however large ``k`` is.

        :param k: frame index (may be negative).
        :param epoch_ns: start of frame 0, integer ns on the caller's clock.
        """
        return int(epoch_ns) + _round_half_up(Fraction(int(k) * NS_PER_S * self.den, self.num))

    def frame_at_ns(self, t_ns: int, epoch_ns: int = 0) -> int:
        """Index of the frame containing ``t_ns``: the largest ``k`` with ``frame_edge_ns(k, epoch_ns) <= t_ns``.

        Consistent with the rounded edges: ``frame_at_ns(frame_edge_ns(k)) == k`` and
        ``frame_at_ns(frame_edge_ns(k) - 1) == k - 1``.
        """
        t_ns, epoch_ns = int(t_ns), int(epoch_ns)
        k = ((t_ns - epoch_ns) * self.num) // (NS_PER_S * self.den)
        # Rounded edges are within half a ns of the exact ones; at most one step of correction is needed.
        while self.frame_edge_ns(k + 1, epoch_ns) <= t_ns:
            k += 1
        while self.frame_edge_ns(k, epoch_ns) > t_ns:
            k -= 1
        return k

    def frames_to_ns(self, frames: float | Fraction | int) -> int:
        """Duration of ``frames`` (fractional allowed) in ns: ``round(frames * 1e9 * den / num)``, exact maths.

        A float argument is taken at its exact binary value (``0.5`` is exactly half a frame).
        """
        if isinstance(frames, bool):
            raise TypeError("frames must be a number, not bool")
        if isinstance(frames, float) and not math.isfinite(frames):
            raise ValueError(f"frames must be finite, got {frames}")
        f = frames if isinstance(frames, Fraction) else Fraction(frames)
        return _round_half_up(f * self.period_ns_exact)

    def ns_to_frames(self, ns: int) -> float:
        """Duration ``ns`` (integer ns) expressed in frames, as a float (``ns * num / (1e9 * den)``)."""
        return float(Fraction(int(ns) * self.num, NS_PER_S * self.den))


#: The rates stagectl supports on a stage, slowest first.
STANDARD_RATES: tuple[FrameRate, ...] = (
    FrameRate(24000, 1001),
    FrameRate(24),
    FrameRate(25),
    FrameRate(30000, 1001),
    FrameRate(30),
    FrameRate(48000, 1001),
    FrameRate(48),
    FrameRate(50),
    FrameRate(60000, 1001),
    FrameRate(60),
    FrameRate(100),
    FrameRate(120000, 1001),
    FrameRate(120),
)


# ============================================================================================== clocks
class Clock(enum.Enum):
    """The clock an integer-ns time was read from (``docs/conventions.md``, *Time*).

    * ``MONOTONIC``: ``time.monotonic_ns()``; arrival stamps and the frame loop. Its epoch is arbitrary and
      local to one machine.
    * ``SYSTEM``: ``time.time_ns()``; the wall clock, PTP-disciplined on a stage (ns since 1970-01-01 UTC).
    * ``PTP``: a timestamp a source sends (seconds + ns since the PTP epoch). ``now_ns`` reads
      ``time.time_ns()``, assuming the OS keeps the system clock disciplined to PTP (linuxptp ``ptp4l`` +
      ``phc2sys``). Note that ``phc2sys`` normally keeps the system clock on UTC while PTP itself counts TAI
      (currently 37 s ahead); a source's PTP stamps may therefore differ from this reading by that whole-second
      offset, which is one more reason to estimate a source->local offset rather than subtract blindly.
    """

    MONOTONIC = "monotonic"
    SYSTEM = "system"
    PTP = "ptp"

    def now_ns(self) -> int:
        """Current reading of this clock, integer ns."""
        if self is Clock.MONOTONIC:
            return time.monotonic_ns()
        # SYSTEM, and PTP under the assumption that the system clock is PTP-disciplined.
        return time.time_ns()

    def now(self) -> Instant:
        """Current reading of this clock as an :class:`Instant`."""
        return Instant(self.now_ns(), self)


def _require_int_ns(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be integer nanoseconds, got {type(value).__name__} {value!r}")
    return int(value)


@dataclass(frozen=True, eq=True)
class Instant:
    """A point in time: integer ``ns`` on a named :class:`Clock`.

    ``a - b`` of the same clock is an ``int`` duration in ns; ``a + d`` / ``a - d`` with an ``int`` ns
    duration is an :class:`Instant`. Mixing clocks (subtraction, ordering) raises ``TypeError``: convert with
    an explicit, estimated offset first. Equality never raises; instants of different clocks are unequal.
    """

    ns: int
    clock: Clock

    def __post_init__(self) -> None:
        object.__setattr__(self, "ns", _require_int_ns(self.ns, "Instant.ns"))
        if not isinstance(self.clock, Clock):
            raise TypeError(f"Instant.clock must be a Clock, got {self.clock!r}")

    @classmethod
    def now(cls, clock: Clock) -> Instant:
        """Current reading of ``clock``."""
        return cls(clock.now_ns(), clock)

    def _same_clock(self, other: Instant, op: str) -> None:
        if other.clock is not self.clock:
            raise TypeError(
                f"cannot {op} instants of different clocks ({self.clock.value} and {other.clock.value}); "
                "apply an estimated clock offset first"
            )

    def __add__(self, other: int) -> Instant:
        if isinstance(other, Instant):
            return NotImplemented
        return Instant(self.ns + _require_int_ns(other, "a duration"), self.clock)

    __radd__ = __add__

    def __sub__(self, other: Instant | int) -> Any:
        if isinstance(other, Instant):
            self._same_clock(other, "subtract")
            return self.ns - other.ns
        return Instant(self.ns - _require_int_ns(other, "a duration"), self.clock)

    def _cmp(self, other: object) -> int:
        if not isinstance(other, Instant):
            raise TypeError(f"cannot compare Instant with {type(other).__name__}")
        self._same_clock(other, "order")
        return self.ns

    def __lt__(self, other: Instant) -> bool:
        self._cmp(other)
        return self.ns < other.ns

    def __le__(self, other: Instant) -> bool:
        self._cmp(other)
        return self.ns <= other.ns

    def __gt__(self, other: Instant) -> bool:
        self._cmp(other)
        return self.ns > other.ns

    def __ge__(self, other: Instant) -> bool:
        self._cmp(other)
        return self.ns >= other.ns


# ============================================================================================== timecode
_TC_RE = re.compile(r"^\s*(\d{1,2})[:;.](\d{2})[:;.](\d{2})([:;.,])(\d{2,3})\s*$")


def _drop_count(rate: FrameRate) -> int:
    """Labels dropped per minute (except every tenth) in drop-frame timecode: 2 at 29.97, 4 at 59.94."""
    if not rate.is_drop_frame_capable:
        raise ValueError(f"drop-frame timecode exists only at 29.97 and 59.94, not at {rate.label}")
    return 2 * (rate.nominal_fps // 30)


def frames_per_day(rate: FrameRate, drop_frame: bool) -> int:
    """Number of timecode labels (= frames) in 24 h of timecode: 2073600 at 24 NDF, 2589408 at 29.97 DF."""
    nom = rate.nominal_fps
    if not drop_frame:
        return 24 * 3600 * nom
    drop = _drop_count(rate)
    return 24 * 6 * (600 * nom - 9 * drop)


@dataclass(frozen=True, eq=True)
class Timecode:
    """An SMPTE ST 12-1 timecode label ``HH:MM:SS:FF`` (``HH:MM:SS;FF`` drop-frame) at an exact rate.

    Frames count at ``rate.nominal_fps`` (24 at 23.976, 30 at 29.97, 60 at 59.94). Drop-frame (29.97 and
    59.94 only) skips labels ``FF`` = 0, 1 (0..3 at 59.94) at the start of every minute except minutes
    divisible by ten, so 29.97 DF timecode tracks the wall clock to about 86 ms a day. Labels wrap at 24 h.
    Constructing a label that does not exist (``frames >= nominal_fps``, a dropped label, ...) raises
    ``ValueError``.
    """

    hours: int
    minutes: int
    seconds: int
    frames: int
    rate: FrameRate
    drop_frame: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rate, FrameRate):
            object.__setattr__(self, "rate", FrameRate.parse(self.rate))
        for name in ("hours", "minutes", "seconds", "frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"Timecode.{name} must be an int, got {v!r}")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.drop_frame, bool):
            raise TypeError(f"Timecode.drop_frame must be a bool, got {self.drop_frame!r}")
        nom = self.rate.nominal_fps
        if not 0 <= self.hours < 24:
            raise ValueError(f"timecode hours must be 0..23, got {self.hours}")
        if not 0 <= self.minutes < 60:
            raise ValueError(f"timecode minutes must be 0..59, got {self.minutes}")
        if not 0 <= self.seconds < 60:
            raise ValueError(f"timecode seconds must be 0..59, got {self.seconds}")
        if not 0 <= self.frames < nom:
            raise ValueError(f"timecode frames must be 0..{nom - 1} at {self.rate.label} fps, got {self.frames}")
        if self.drop_frame:
            drop = _drop_count(self.rate)
            if self.seconds == 0 and self.minutes % 10 != 0 and self.frames < drop:
                raise ValueError(
                    f"{self} does not exist in {self.rate.label} drop-frame timecode: frames 0..{drop - 1} are "
                    "dropped at the start of each minute except every tenth"
                )

    # ----------------------------------------------------------------------------------------- frames
    @classmethod
    def from_frame(cls, frame_count: int, rate: FrameRate, drop_frame: bool = False) -> Timecode:
        """Label of frame ``frame_count`` counted from ``00:00:00:00`` (wraps at 24 h; negative counts back).

        ``drop_frame`` is explicit and defaults to False; pass True for 29.97/59.94 drop-frame.
        """
        frame_count = int(frame_count)
        rate = rate if isinstance(rate, FrameRate) else FrameRate.parse(rate)
        nom = rate.nominal_fps
        n = frame_count % frames_per_day(rate, drop_frame)
        if drop_frame:
            drop = _drop_count(rate)
            per_10min = 600 * nom - 9 * drop
            per_min = 60 * nom - drop  # a minute with dropped labels
            tens, rem = divmod(n, per_10min)
            if rem < 60 * nom:  # minute 0 of the ten-minute block: nothing dropped
                skipped = 0
            else:
                skipped = drop * (1 + (rem - 60 * nom) // per_min)
            n = n + drop * 9 * tens + skipped
        secs, ff = divmod(n, nom)
        mins, ss = divmod(secs, 60)
        hh, mm = divmod(mins, 60)
        return cls(hh, mm, ss, ff, rate, drop_frame)

    def to_frame(self) -> int:
        """Frame count since ``00:00:00:00`` of this label (0 .. frames_per_day - 1)."""
        nom = self.rate.nominal_fps
        total_minutes = 60 * self.hours + self.minutes
        n = (60 * total_minutes + self.seconds) * nom + self.frames
        if self.drop_frame:
            n -= _drop_count(self.rate) * (total_minutes - total_minutes // 10)
        return n

    @property
    def frames_per_day(self) -> int:
        """Labels in 24 h at this rate and drop-frame mode."""
        return frames_per_day(self.rate, self.drop_frame)

    def __add__(self, frames: int) -> Timecode:
        """Label ``frames`` frames later (wrapping at 24 h)."""
        if isinstance(frames, bool) or not isinstance(frames, numbers.Integral):
            return NotImplemented
        return Timecode.from_frame(self.to_frame() + int(frames), self.rate, self.drop_frame)

    def __sub__(self, other: Any) -> Any:
        """``tc - n`` is the label ``n`` frames earlier; ``tc - tc2`` is the frame difference (no wrap)."""
        if isinstance(other, Timecode):
            if other.rate != self.rate or other.drop_frame != self.drop_frame:
                raise TypeError("cannot subtract timecodes of different rates or drop-frame modes")
            return self.to_frame() - other.to_frame()
        if isinstance(other, bool) or not isinstance(other, numbers.Integral):
            return NotImplemented
        return self + (-int(other))

    # ----------------------------------------------------------------------------------------- text
    @classmethod
    def parse(cls, text: str, rate: FrameRate | Any, drop_frame: bool | None = None) -> Timecode:
        """Read ``"HH:MM:SS:FF"`` (non-drop) or ``"HH:MM:SS;FF"`` / ``"HH:MM:SS.FF"`` (drop-frame).

        The separator before the frames decides drop-frame unless ``drop_frame`` is given; a given value that
        contradicts the separator raises ``ValueError``. ``rate`` is a :class:`FrameRate` or anything
        :meth:`FrameRate.parse` accepts.
        """
        rate = rate if isinstance(rate, FrameRate) else FrameRate.parse(rate)
        m = _TC_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise ValueError(f'expected a timecode such as "01:00:00:00" or "00:01:00;02", got {text!r}')
        hh, mm, ss, sep, ff = m.groups()
        df_text = sep in ";.,"
        if drop_frame is not None and drop_frame != df_text:
            raise ValueError(
                f"timecode {text!r} is written {'drop' if df_text else 'non-drop'}-frame but drop_frame={drop_frame}"
            )
        return cls(int(hh), int(mm), int(ss), int(ff), rate, df_text)

    def __str__(self) -> str:
        width = max(2, len(str(self.rate.nominal_fps - 1)))
        sep = ";" if self.drop_frame else ":"
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}{sep}{self.frames:0{width}d}"


# ============================================================================================== frame edges
@dataclass(frozen=True)
class FrameClock:
    """Frame edges of a stage on one clock, aligned to an epoch like SMPTE ST 2059-1.

    Edge ``k`` is at ``epoch_ns + phase_offset_ns + k * period`` (exact, rounded to the nearest ns). With
    the SYSTEM or PTP clock and the default epoch 0 (1970-01-01, the PTP epoch), every node whose clock is
    disciplined to the same PTP grandmaster computes the same edges without a genlock wire. (Nodes must agree
    on the timescale too: a UTC-kept system clock and a TAI-kept one differ by whole leap seconds, which is
    not a whole number of frames at 1001 rates.) On MONOTONIC the epoch is machine-local.

    :param rate: the stage frame rate.
    :param clock: the clock ``t_ns`` arguments and edges are read on.
    :param epoch_ns: start of frame 0, integer ns on ``clock``.
    :param phase_offset_ns: constant shift of all edges, integer ns (e.g. a measured genlock phase).
    """

    rate: FrameRate
    clock: Clock = Clock.SYSTEM
    epoch_ns: int = 0
    phase_offset_ns: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.rate, FrameRate):
            object.__setattr__(self, "rate", FrameRate.parse(self.rate))
        if not isinstance(self.clock, Clock):
            raise TypeError(f"FrameClock.clock must be a Clock, got {self.clock!r}")
        object.__setattr__(self, "epoch_ns", _require_int_ns(self.epoch_ns, "epoch_ns"))
        object.__setattr__(self, "phase_offset_ns", _require_int_ns(self.phase_offset_ns, "phase_offset_ns"))

    @property
    def origin_ns(self) -> int:
        """Start of frame 0: ``epoch_ns + phase_offset_ns``, integer ns on ``clock``."""
        return self.epoch_ns + self.phase_offset_ns

    def edge_ns(self, k: int) -> int:
        """Start of frame ``k``, integer ns on ``clock``."""
        return self.rate.frame_edge_ns(k, self.origin_ns)

    def edge(self, k: int) -> Instant:
        """Start of frame ``k`` as an :class:`Instant` on ``clock``."""
        return Instant(self.edge_ns(k), self.clock)

    def frame_at(self, t_ns: int) -> int:
        """Index of the frame containing ``t_ns`` (edge ``k`` belongs to frame ``k``)."""
        return self.rate.frame_at_ns(t_ns, self.origin_ns)

    def next_edge_after(self, t_ns: int) -> tuple[int, int]:
        """First edge strictly after ``t_ns``: ``(k, edge_ns)``."""
        k = self.frame_at(t_ns) + 1
        return k, self.edge_ns(k)

    def now_frame(self) -> int:
        """Index of the frame containing ``clock.now_ns()``."""
        return self.frame_at(self.clock.now_ns())


def frame_edges(
    rate: FrameRate, start_k: int, count: int, epoch_ns: int = 0, phase_offset_ns: int = 0
) -> list[int]:
    """Starts of frames ``start_k .. start_k + count - 1`` in integer ns (exact, no accumulation)."""
    origin = int(epoch_ns) + int(phase_offset_ns)
    return [rate.frame_edge_ns(k, origin) for k in range(int(start_k), int(start_k) + int(count))]
