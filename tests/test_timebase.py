"""Tests for stagectl.core.timebase: exact rates, clocks, instants, SMPTE timecode, frame edges."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from stagectl.core.timebase import (
    NS_PER_S,
    STANDARD_RATES,
    Clock,
    FrameClock,
    FrameRate,
    Instant,
    Timecode,
    frame_edges,
    frames_per_day,
)

R23 = FrameRate(24000, 1001)
R24 = FrameRate(24)
R25 = FrameRate(25)
R2997 = FrameRate(30000, 1001)
R5994 = FrameRate(60000, 1001)
R60 = FrameRate(60)


# ============================================================================================ FrameRate
class TestFrameRateConstruction:
    def test_normalised_by_gcd(self) -> None:
        r = FrameRate(48000, 2002)
        assert (r.num, r.den) == (24000, 1001)
        assert r == R23 and hash(r) == hash(R23)
        assert FrameRate(50, 2) == R25

    def test_default_den(self) -> None:
        assert FrameRate(25) == FrameRate(25, 1)

    @pytest.mark.parametrize("num,den", [(0, 1), (-24, 1), (24, 0), (24, -1), (-24, -1)])
    def test_rejects_non_positive(self, num: int, den: int) -> None:
        with pytest.raises(ValueError):
            FrameRate(num, den)

    @pytest.mark.parametrize("num,den", [(23.976, 1), (24, 1.0), (True, 1), ("24", 1)])
    def test_rejects_non_int_parts(self, num: object, den: object) -> None:
        with pytest.raises(TypeError):
            FrameRate(num, den)  # type: ignore[arg-type]

    def test_frozen(self) -> None:
        with pytest.raises(AttributeError):
            R24.num = 25  # type: ignore[misc]

    def test_ordering(self) -> None:
        assert R23 < R24 < R25 < R2997 < FrameRate(30)
        assert sorted(STANDARD_RATES, reverse=True)[0] == FrameRate(120)
        assert list(STANDARD_RATES) == sorted(STANDARD_RATES)


class TestFrameRateParse:
    @pytest.mark.parametrize(
        "value,expected",
        [
            (24, (24, 1)),
            (25, (25, 1)),
            ("24", (24, 1)),
            (" 60 ", (60, 1)),
            ("24000/1001", (24000, 1001)),
            ("30000 / 1001", (30000, 1001)),
            ("48/2", (24, 1)),
            ([24000, 1001], (24000, 1001)),
            ((30, 1), (30, 1)),
            ({"num": 24000, "denom": 1001}, (24000, 1001)),
            ({"num": 50, "den": 1}, (50, 1)),
            (Fraction(60000, 1001), (60000, 1001)),
            (25.0, (25, 1)),
            ("25.0", (25, 1)),
            (23.976, (24000, 1001)),
            (23.98, (24000, 1001)),
            (29.97, (30000, 1001)),
            (47.952, (48000, 1001)),
            (59.94, (60000, 1001)),
            (119.88, (120000, 1001)),
            ("23.976", (24000, 1001)),
            ("23.98", (24000, 1001)),
            ("29.97", (30000, 1001)),
            ("29.970", (30000, 1001)),
            ("47.952", (48000, 1001)),
            ("59.94", (60000, 1001)),
            ("119.88", (120000, 1001)),
        ],
    )
    def test_accepted_forms(self, value: object, expected: tuple[int, int]) -> None:
        r = FrameRate.parse(value)
        assert (r.num, r.den) == expected

    def test_frame_rate_passes_through(self) -> None:
        assert FrameRate.parse(R2997) is R2997

    @pytest.mark.parametrize(
        "value",
        [23.5, "23.5", 0, "0", -24, "-24", -24.0, "abc", "", "24/0", "0/1", "-24000/1001", "24000/-1001",
         1.5, 29.96, "29.9", float("nan"), float("inf"), True, None, [24], [24, 1, 1], [24.0, 1], ["24", 1],
         {"num": 24}, b"24", object()],
    )
    def test_rejected_forms(self, value: object) -> None:
        with pytest.raises(ValueError, match="expected a frame rate such as 24, 25"):
            FrameRate.parse(value)

    def test_error_message_shows_value(self) -> None:
        with pytest.raises(ValueError) as exc:
            FrameRate.parse(23.5)
        assert str(exc.value) == 'expected a frame rate such as 24, 25, "24000/1001" or 29.97, got 23.5'
        with pytest.raises(ValueError, match=r"got '24/0'"):
            FrameRate.parse("24/0")

    def test_allowed(self) -> None:
        assert FrameRate.parse("59.94", allowed=STANDARD_RATES) == R5994
        with pytest.raises(ValueError, match="not one of the allowed rates"):
            FrameRate.parse(1000, allowed=STANDARD_RATES)
        with pytest.raises(ValueError, match="not one of the allowed"):
            FrameRate.parse("12/1", allowed=[R24, R25])
        # Unrestricted, an exotic rate is fine.
        assert FrameRate.parse("12/1") == FrameRate(12)

    def test_str_round_trips(self) -> None:
        for r in STANDARD_RATES:
            assert FrameRate.parse(str(r)) == r
            assert FrameRate.parse(r.label) == r
            assert FrameRate.parse([r.num, r.den]) == r
        assert str(R23) == "24000/1001"


class TestFrameRateProperties:
    def test_standard_rates(self) -> None:
        labels = [r.label for r in STANDARD_RATES]
        assert labels == ["23.976", "24", "25", "29.97", "30", "47.952", "48", "50", "59.94", "60", "100",
                          "119.88", "120"]
        assert len(set(STANDARD_RATES)) == 13

    def test_nominal_fps(self) -> None:
        expected = [24, 24, 25, 30, 30, 48, 48, 50, 60, 60, 100, 120, 120]
        assert [r.nominal_fps for r in STANDARD_RATES] == expected
        # ceil, not round: a 12.1 fps rate still needs 13 frame labels per second
        assert FrameRate(121, 10).nominal_fps == 13
        assert FrameRate(25, 2).nominal_fps == 13

    def test_drop_frame_capable(self) -> None:
        capable = [r for r in STANDARD_RATES if r.is_drop_frame_capable]
        assert capable == [R2997, R5994]

    def test_values(self) -> None:
        assert R23.as_fraction() == Fraction(24000, 1001)
        assert R23.fps == pytest.approx(23.976023976)
        assert R23.period_ns_exact == Fraction(1001 * NS_PER_S, 24000)
        assert R23.period_ns == 41708333
        assert R2997.period_ns == 33366667  # 33366666.67 rounds up
        assert R25.period_ns == 40_000_000
        assert FrameRate(24).period_ns == 41666667


class TestFrameRateExactness:
    def test_frame_edge_matches_fraction_exactly(self) -> None:
        k = 10**9
        exact = Fraction(k * NS_PER_S * 1001, 24000)
        assert R23.frame_edge_ns(k) == round(exact)
        assert R23.frame_edge_ns(k) == 41_708_333_333_333_333
        assert abs(R23.frame_edge_ns(k) - exact) <= Fraction(1, 2)
        assert R23.frame_edge_ns(k, epoch_ns=123) == 41_708_333_333_333_333 + 123

    def test_every_edge_within_half_ns(self) -> None:
        rng = random.Random(1)
        for r in STANDARD_RATES:
            for k in [0, 1, -1, 7, 10**6 + 3, 10**12 + 11, -(10**10) - 5] + [rng.randrange(-10**13, 10**13)
                                                                            for _ in range(50)]:
                exact = k * r.period_ns_exact
                assert abs(r.frame_edge_ns(k) - exact) <= Fraction(1, 2), (r, k)

    def test_no_drift_against_float_accumulation(self) -> None:
        # One hour at 29.97: a naive loop adding the rounded (or float) period drifts, ours does not.
        n = 107_892
        naive_int = 0
        naive_float = 0.0
        p_float = 1e9 / R2997.fps
        for _ in range(n):
            naive_int += R2997.period_ns
            naive_float += p_float
        exact = Fraction(n * NS_PER_S * 1001, 30000)
        ours = R2997.frame_edge_ns(n)
        assert abs(ours - exact) <= Fraction(1, 2)
        assert abs(naive_int - exact) > 30_000  # 1/3 ns per frame -> ~36 us in an hour
        assert abs(naive_float - float(exact)) > 1.0  # float accumulation error exceeds a whole ns
        # and the tail of one frame at a time agrees with the closed form
        assert [R2997.frame_edge_ns(k) for k in range(n - 3, n + 1)] == frame_edges(R2997, n - 3, 4)

    def test_frame_at_ns_consistent_with_edges(self) -> None:
        rng = random.Random(2)
        for r in STANDARD_RATES:
            epoch = rng.randrange(-10**12, 10**12)
            for k in [0, 1, -1, 2, 1000, -1000] + [rng.randrange(-10**11, 10**11) for _ in range(200)]:
                e = r.frame_edge_ns(k, epoch)
                assert r.frame_at_ns(e, epoch) == k
                assert r.frame_at_ns(e - 1, epoch) == k - 1
                assert r.frame_at_ns(r.frame_edge_ns(k + 1, epoch) - 1, epoch) == k

    def test_frame_at_ns_floor(self) -> None:
        assert R25.frame_at_ns(0) == 0
        assert R25.frame_at_ns(39_999_999) == 0
        assert R25.frame_at_ns(40_000_000) == 1
        assert R25.frame_at_ns(-1) == -1
        assert R25.frame_at_ns(1_000_000_000, epoch_ns=1_000_000_000) == 0

    def test_frames_to_ns_and_back(self) -> None:
        assert R25.frames_to_ns(1) == 40_000_000
        assert R25.frames_to_ns(0.5) == 20_000_000
        assert R25.frames_to_ns(-1.25) == -50_000_000
        assert R23.frames_to_ns(Fraction(1, 3)) == round(Fraction(1001 * NS_PER_S, 3 * 24000))
        assert R23.frames_to_ns(24000) == 1001 * NS_PER_S
        # conventions: delay_ns = round(frames * 1e9 * den / num)
        assert R2997.frames_to_ns(2.5) == round(2.5 * 1e9 * 1001 / 30000)
        assert R2997.ns_to_frames(1001 * NS_PER_S) == pytest.approx(30000.0)
        assert R25.ns_to_frames(20_000_000) == 0.5
        with pytest.raises(ValueError):
            R25.frames_to_ns(float("nan"))


# ============================================================================================ clocks
class TestClockAndInstant:
    def test_now(self) -> None:
        a = Clock.MONOTONIC.now_ns()
        b = Clock.MONOTONIC.now_ns()
        assert isinstance(a, int) and b >= a
        assert abs(Clock.SYSTEM.now_ns() - Clock.PTP.now_ns()) < 10 * NS_PER_S
        assert Clock.SYSTEM.now_ns() > 1_600_000_000 * NS_PER_S  # since 1970, not an arbitrary epoch
        i = Clock.MONOTONIC.now()
        assert i.clock is Clock.MONOTONIC
        assert Instant.now(Clock.SYSTEM).clock is Clock.SYSTEM

    def test_arithmetic_same_clock(self) -> None:
        a = Instant(1_000, Clock.MONOTONIC)
        b = Instant(250, Clock.MONOTONIC)
        assert a - b == 750
        assert isinstance(a - b, int)
        assert a + 5 == Instant(1_005, Clock.MONOTONIC)
        assert 5 + a == Instant(1_005, Clock.MONOTONIC)
        assert a - 5 == Instant(995, Clock.MONOTONIC)
        assert b < a and a > b and a >= a and b <= a
        assert max(a, b) is a

    def test_cross_clock_errors(self) -> None:
        m = Instant(1_000, Clock.MONOTONIC)
        s = Instant(1_000, Clock.SYSTEM)
        p = Instant(1_000, Clock.PTP)
        with pytest.raises(TypeError, match="different clocks"):
            _ = m - s
        with pytest.raises(TypeError, match="different clocks"):
            _ = s - p
        for op in (lambda: m < s, lambda: m <= s, lambda: m > s, lambda: m >= s):
            with pytest.raises(TypeError):
                op()
        with pytest.raises(TypeError):
            sorted([m, s])
        assert m != s  # equality never raises

    def test_type_checks(self) -> None:
        with pytest.raises(TypeError):
            Instant(1.5, Clock.MONOTONIC)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Instant(1, "monotonic")  # type: ignore[arg-type]
        a = Instant(1, Clock.MONOTONIC)
        with pytest.raises(TypeError):
            _ = a + 0.5  # type: ignore[operator]
        with pytest.raises(TypeError):
            _ = a + a  # type: ignore[operator]
        with pytest.raises(TypeError):
            _ = a < 3  # type: ignore[operator]


# ============================================================================================ timecode
def brute_force_labels(rate: FrameRate, drop_frame: bool, minutes: int) -> list[tuple[int, int, int, int]]:
    """Every timecode label of the first ``minutes`` minutes, by plain enumeration (independent of the
    library's arithmetic): walk h/m/s/f and skip the dropped labels."""
    nom = rate.nominal_fps
    drop = {30: 2, 60: 4}[nom] if drop_frame else 0
    out = []
    for total_m in range(minutes):
        h, m = divmod(total_m, 60)
        for s in range(60):
            for f in range(nom):
                if drop and s == 0 and m % 10 != 0 and f < drop:
                    continue
                out.append((h, m, s, f))
    return out


def tc_tuple(tc: Timecode) -> tuple[int, int, int, int]:
    return (tc.hours, tc.minutes, tc.seconds, tc.frames)


class TestTimecodeKnownValues:
    def test_df_minute_boundary(self) -> None:
        tc = Timecode.parse("00:00:59;29", R2997)
        assert tc.drop_frame
        nxt = Timecode.from_frame(tc.to_frame() + 1, R2997, drop_frame=True)
        assert str(nxt) == "00:01:00;02"
        assert str(tc + 1) == "00:01:00;02"
        assert nxt.to_frame() == 1800

    def test_df_tenth_minute_not_dropped(self) -> None:
        tc = Timecode.parse("00:09:59;29", R2997)
        assert str(tc + 1) == "00:10:00;00"
        assert Timecode.parse("00:10:00;00", R2997).to_frame() == 17982
        assert str(Timecode.from_frame(17982, R2997, drop_frame=True)) == "00:10:00;00"

    def test_df_one_hour(self) -> None:
        assert Timecode.parse("01:00:00;00", R2997).to_frame() == 107892
        assert str(Timecode.from_frame(107892, R2997, drop_frame=True)) == "01:00:00;00"
        assert frames_per_day(R2997, True) == 107892 * 24

    def test_5994_df(self) -> None:
        tc = Timecode.parse("00:00:59;59", R5994)
        assert str(tc + 1) == "00:01:00;04"
        assert Timecode.parse("00:10:00;00", R5994).to_frame() == 35964
        assert Timecode.parse("01:00:00;00", R5994).to_frame() == 215784

    def test_ndf(self) -> None:
        assert Timecode.parse("01:00:00:00", R2997).to_frame() == 108000
        assert Timecode.parse("01:00:00:00", R23).to_frame() == 86400
        assert Timecode.parse("01:00:00:00", R25).to_frame() == 90000
        assert str(Timecode.from_frame(23, R23)) == "00:00:00:23"
        assert str(Timecode.from_frame(24, R23)) == "00:00:01:00"
        assert str(Timecode.parse("00:00:59:29", R2997) + 1) == "00:01:00:00"

    def test_wrap_24h(self) -> None:
        last = Timecode.parse("23:59:59;29", R2997)
        assert last.to_frame() == frames_per_day(R2997, True) - 1
        assert str(last + 1) == "00:00:00;00"
        assert str(Timecode.from_frame(-1, R2997, drop_frame=True)) == "23:59:59;29"
        assert str(Timecode.from_frame(24 * 3600 * 25, R25)) == "00:00:00:00"
        assert str(Timecode.parse("00:00:00:00", R24) - 1) == "23:59:59:23"

    def test_difference(self) -> None:
        a = Timecode.parse("00:01:00;02", R2997)
        b = Timecode.parse("00:00:59;28", R2997)
        assert a - b == 2
        with pytest.raises(TypeError):
            _ = a - Timecode.parse("00:00:59:28", R2997)

    def test_default_is_non_drop(self) -> None:
        tc = Timecode.from_frame(1800, R2997)
        assert not tc.drop_frame
        assert str(tc) == "00:01:00:00"


class TestTimecodeParseAndValidate:
    def test_separators(self) -> None:
        assert Timecode.parse("00:01:00;02", R2997).drop_frame
        assert Timecode.parse("00:01:00.02", R2997).drop_frame
        assert Timecode.parse("00;01;00;02", R2997).drop_frame
        assert not Timecode.parse("00:01:00:02", R2997).drop_frame
        assert Timecode.parse("01:00:00:00", "24000/1001").rate == R23
        assert Timecode.parse("01:00:00:00", 29.97).rate == R2997

    def test_str(self) -> None:
        assert str(Timecode(1, 2, 3, 4, R25)) == "01:02:03:04"
        assert str(Timecode(1, 2, 3, 4, R2997, True)) == "01:02:03;04"
        assert str(Timecode(0, 0, 0, 119, FrameRate(120))) == "00:00:00:119"
        assert str(Timecode(0, 0, 0, 5, FrameRate(120))) == "00:00:00:005"

    def test_parse_str_round_trip(self) -> None:
        for text, rate in [("10:20:30:23", R23), ("10:21:00;02", R2997), ("23:59:59:59", R60)]:
            assert str(Timecode.parse(text, rate)) == text

    @pytest.mark.parametrize("text", ["00:01:00;00", "00:01:00;01", "00:59:00;01", "23:01:00;00"])
    def test_dropped_labels_rejected_2997(self, text: str) -> None:
        with pytest.raises(ValueError, match="does not exist"):
            Timecode.parse(text, R2997)

    @pytest.mark.parametrize("frames", [0, 1, 2, 3])
    def test_dropped_labels_rejected_5994(self, frames: int) -> None:
        with pytest.raises(ValueError, match="does not exist"):
            Timecode(0, 1, 0, frames, R5994, True)
        Timecode(0, 1, 0, 4, R5994, True)  # first existing label
        Timecode(0, 10, 0, frames, R5994, True)  # tenth minute keeps them
        Timecode(0, 1, 0, frames, R5994, False)  # non-drop keeps them

    def test_kept_labels_accepted(self) -> None:
        Timecode.parse("00:01:00;02", R2997)
        Timecode.parse("00:10:00;00", R2997)
        Timecode.parse("00:00:00;00", R2997)
        Timecode.parse("00:01:01;00", R2997)
        Timecode.parse("00:01:00:00", R2997)  # NDF 29.97 has every label

    @pytest.mark.parametrize(
        "args",
        [
            (24, 0, 0, 0, R25, False),
            (0, 60, 0, 0, R25, False),
            (0, 0, 60, 0, R25, False),
            (0, 0, 0, 25, R25, False),
            (0, 0, 0, 24, R23, False),  # 23.976 counts at 24
            (0, 0, 0, 30, R2997, True),
            (-1, 0, 0, 0, R25, False),
            (0, 0, 0, 0, R25, True),  # drop-frame at 25 does not exist
            (0, 0, 0, 0, R23, True),  # nor at 23.976
            (0, 0, 0, 0, FrameRate(30), True),
        ],
    )
    def test_invalid(self, args: tuple) -> None:
        with pytest.raises(ValueError):
            Timecode(*args)

    @pytest.mark.parametrize("text", ["1:00:00", "01:00:00:0", "aa:00:00:00", "01-00-00-00", "", "01:00:00:00:00"])
    def test_bad_text(self, text: str) -> None:
        with pytest.raises(ValueError, match="expected a timecode"):
            Timecode.parse(text, R25)

    def test_explicit_drop_frame_conflict(self) -> None:
        with pytest.raises(ValueError):
            Timecode.parse("00:01:00;02", R2997, drop_frame=False)
        assert Timecode.parse("00:01:00:02", R2997, drop_frame=False).to_frame() == 1802
        with pytest.raises(ValueError):
            Timecode.parse("00:00:00;00", R25)

    def test_frozen_and_equal(self) -> None:
        a = Timecode.parse("00:01:00;02", R2997)
        assert a == Timecode(0, 1, 0, 2, R2997, True)
        assert a != Timecode(0, 1, 0, 2, R2997, False)
        assert hash(a) == hash(Timecode(0, 1, 0, 2, R2997, True))
        with pytest.raises(AttributeError):
            a.frames = 3  # type: ignore[misc]


ROUND_TRIP_CASES = [
    (R23, False),
    (R24, False),
    (R25, False),
    (R2997, True),
    (R2997, False),
    (R5994, True),
    (R60, False),
]


def _id(case: tuple[FrameRate, bool]) -> str:
    return f"{case[0].label}{'DF' if case[1] else 'NDF'}"


class TestTimecodeRoundTrip:
    @pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=_id)
    def test_against_brute_force_first_20_minutes(self, case: tuple[FrameRate, bool]) -> None:
        rate, df = case
        labels = brute_force_labels(rate, df, 20)
        for n, lab in enumerate(labels):
            tc = Timecode.from_frame(n, rate, drop_frame=df)
            assert tc_tuple(tc) == lab, (n, lab, str(tc))
            assert Timecode(*lab, rate, df).to_frame() == n
        # the brute-force counter agrees on the length of ten minutes
        assert len(brute_force_labels(rate, df, 10)) == frames_per_day(rate, df) // 144

    @pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=_id)
    def test_sampled_day(self, case: tuple[FrameRate, bool]) -> None:
        rate, df = case
        per_day = frames_per_day(rate, df)
        rng = random.Random(rate.num * 7 + df)
        samples = [rng.randrange(per_day) for _ in range(20_000)] + [per_day - 1, per_day - 2]
        prev_label = None
        for n in sorted(samples):
            tc = Timecode.from_frame(n, rate, drop_frame=df)
            assert tc.to_frame() == n
            assert Timecode.parse(str(tc), rate) == tc
            if prev_label is not None:
                assert tc_tuple(tc) >= prev_label  # labels increase with the frame count
            prev_label = tc_tuple(tc)
        assert Timecode.from_frame(per_day - 1, rate, df).to_frame() == per_day - 1
        assert tc_tuple(Timecode.from_frame(per_day - 1, rate, df)) == (23, 59, 59, rate.nominal_fps - 1)

    @pytest.mark.parametrize("case", [(R2997, True), (R5994, True)], ids=_id)
    def test_df_brute_force_later_hour(self, case: tuple[FrameRate, bool]) -> None:
        # The independent counter for the whole day, checked at every ten-minute block start and a window
        # around every minute boundary (where drop-frame bugs live).
        rate, df = case
        labels = brute_force_labels(rate, df, 24 * 60)
        assert len(labels) == frames_per_day(rate, df)
        boundaries = [i for i, lab in enumerate(labels) if lab[2] == 0 and lab[3] in (0, 2, 4)
                      and (i == 0 or labels[i - 1][2] == 59)]
        assert len(boundaries) == 24 * 60
        for b in boundaries:
            for n in range(max(0, b - 3), min(len(labels), b + 3)):
                assert tc_tuple(Timecode.from_frame(n, rate, drop_frame=df)) == labels[n]
                assert Timecode(*labels[n], rate, df).to_frame() == n

    def test_df_tracks_wall_clock(self) -> None:
        # 29.97 DF labels stay within ~2 frames of real elapsed time over a day (that is their purpose)
        for h in range(24):
            tc = Timecode(h, 0, 0, 0, R2997, True)
            real_s = tc.to_frame() * Fraction(1001, 30000)
            assert abs(real_s - 3600 * h) < Fraction(1, 10)


# ============================================================================================ frame clock
class TestFrameClock:
    def test_edges_and_next(self) -> None:
        fc = FrameClock(R23, Clock.SYSTEM)
        assert fc.epoch_ns == 0 and fc.phase_offset_ns == 0
        assert fc.edge_ns(0) == 0
        assert fc.edge_ns(24000) == 1001 * NS_PER_S
        k, e = fc.next_edge_after(0)
        assert (k, e) == (1, 41708333)
        k, e = fc.next_edge_after(41708333)  # exactly on an edge -> strictly after
        assert (k, e) == (2, fc.edge_ns(2))
        k, e = fc.next_edge_after(41708332)
        assert (k, e) == (1, 41708333)
        assert fc.edge(3) == Instant(fc.edge_ns(3), Clock.SYSTEM)

    def test_phase_offset(self) -> None:
        fc = FrameClock(R25, Clock.PTP, epoch_ns=0, phase_offset_ns=1_000_000)
        assert fc.edge_ns(0) == 1_000_000
        assert fc.edge_ns(1) == 41_000_000
        assert fc.frame_at(999_999) == -1
        assert fc.next_edge_after(999_999) == (0, 1_000_000)

    def test_nodes_align_without_wire(self) -> None:
        # Two nodes with PTP-disciplined clocks, reading at different moments, agree on the frame edges.
        a = FrameClock(R2997, Clock.SYSTEM)
        b = FrameClock(FrameRate.parse(29.97), Clock.SYSTEM)
        t = 1_700_000_000_123_456_789
        ka, ea = a.next_edge_after(t)
        kb, eb = b.next_edge_after(t + 5_000_000)
        assert ka == kb and ea == eb
        assert ea > t and ea - t <= R2997.period_ns
        assert ea == R2997.frame_edge_ns(ka)

    def test_next_edge_property(self) -> None:
        rng = random.Random(3)
        for r in STANDARD_RATES:
            fc = FrameClock(r, Clock.MONOTONIC, epoch_ns=rng.randrange(10**15))
            for _ in range(200):
                t = rng.randrange(10**18)
                k, e = fc.next_edge_after(t)
                assert e > t >= fc.edge_ns(k - 1)
                assert e == fc.edge_ns(k)

    def test_frame_edges_helper(self) -> None:
        edges = frame_edges(R2997, 0, 4, epoch_ns=10)
        assert edges == [10, 10 + 33366667, 10 + 66733333, 10 + 100100000]
        assert all(math.isfinite(e) for e in edges)
        diffs = {b - a for a, b in zip(edges, edges[1:])}
        assert diffs <= {33366666, 33366667}
