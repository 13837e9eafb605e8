"""Prediction never invents motion (issue 11): bounded extrapolation, implausible samples rejected and counted,
the dejittered clock, and ``cameras[].motion_limits`` in the stage file.

The two reported defects are reproduced first: two samples arriving 0.2 ms apart (a burst) made the
extrapolated pose jump by metres, and a FreeD packet with a wild position but a valid checksum was taken as
the camera's pose (and extrapolated to kilometres).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import STAGES

from stagectl.core.errors import ConfigErrors
from stagectl.core.sample import MotionLimits, TrackingSample
from stagectl.core.timebase import FrameRate
from stagectl.stage import load_stage
from stagectl.tracking import timeline as TL
from stagectl.tracking.codecs.freed import FreeDPacket, decode_freed_sample, encode_freed

MS = 1_000_000
R25 = FrameRate(25)
DEMO = STAGES / "demo.yaml"


def freed(x: float, y: float, z: float, pan: float = 0.0, tilt: float = 0.0, roll: float = 0.0) -> TrackingSample:
    """A FreeD sample made by the real codec: encoded (valid checksum) and decoded again. Metres, degrees in the
    stage conventions (the codec flips FreeD's pan sign both ways)."""
    return decode_freed_sample(encode_freed(FreeDPacket(1, -pan, tilt, roll, x * 1000, y * 1000, z * 1000, 0, 0, 0)))


class Crane:
    """A straight crane move: 3 m/s along +X while panning at 30 deg/s (a fast, legal move)."""

    v, w = 3.0, 30.0

    def __call__(self, t_s: float) -> tuple[float, float, float, float]:
        return 1.0 + self.v * t_s, 2.0, 1.5, self.w * t_s


def error(st: TL.TimelineState, truth: tuple[float, float, float, float]) -> tuple[float, float]:
    """Position error (m) and pan error (deg) of a timeline answer."""
    return math.dist(st.position, truth[:3]), abs(st.pan - truth[3])


# ====================================================================================== the reported defects
def test_a_burst_pair_does_not_make_the_prediction_jump() -> None:
    """Sample 8 of a 50 Hz FreeD stream is held back and arrives 0.2 ms before sample 9. Before the fix the
    prediction used the pair (8, 9): 6 cm in 0.2 ms is 300 m/s, and 40 ms ahead that is 12 m. Now the pair is
    at least half a nominal period apart, so the predicted pose stays on the true path."""
    move = Crane()
    tl = TL.Timeline(R25)
    arrivals = [k * 20 * MS for k in range(10)]
    arrivals[8] = arrivals[9] - 200_000  # late: arrives with the next one
    for k, a in enumerate(arrivals):
        assert tl.push(a, freed(*move(k * 0.02)[:3], move(k * 0.02)[3]))
    # FreeD has no time of its own: the capture instant of an on-time sample is its arrival
    for ahead_ms in (0.5, 10, 20, 40, 60):
        q = arrivals[9] + int(ahead_ms * MS)
        st = tl.pose_at(q)
        assert st.status == "extrapolated", ahead_ms
        pos_err, pan_err = error(st, move(q / 1e9))
        assert pos_err < 1e-3 and pan_err < 0.01, (ahead_ms, pos_err, pan_err)
    # while only the late sample had come in, the pose may lag by what it is late, never more
    for q in range(arrivals[8], arrivals[9], 50_000):
        pos_err, _ = error(tl_until(arrivals, move, q).pose_at(q), move(q / 1e9))
        assert pos_err <= move.v * 0.020 + 1e-3


def tl_until(arrivals: list[int], move: Crane, t: int) -> TL.Timeline:
    """A fresh timeline fed with the samples that had arrived by ``t``."""
    tl = TL.Timeline(R25)
    for k, a in enumerate(arrivals):
        if a <= t:
            tl.push(a, freed(*move(k * 0.02)[:3], move(k * 0.02)[3]))
    return tl


def test_a_wild_freed_sample_with_a_valid_checksum_is_rejected_and_counted() -> None:
    """Valid-checksum garbage: a position 120 m away (FreeD can say up to 131 m) and a pan 170 degrees off.
    Both are out of reach of the last sample at crane speeds: rejected, counted per reason, never stored, and
    the poses around them stay on the true path (interpolated across the gap, predicted past it)."""
    move = Crane()
    tl = TL.Timeline(R25)
    for k in range(12):
        t = k * 0.02
        x, y, z, pan = move(t)
        if k == 5:
            sample = freed(x + 120.0, y, z, pan)
        elif k == 8:
            sample = freed(x, y, z, pan + 170.0)
        else:
            sample = freed(x, y, z, pan)
        assert sample.pose is not None  # it decodes: the checksum is valid
        assert tl.push(k * 20 * MS, sample) == (k not in (5, 8)), k
    c = tl.counters()
    assert (c.rejected_speed, c.rejected_angular_speed, c.rejected, c.pushed) == (1, 1, 2, 10)
    assert c.rejected_by_reason == {"speed": 1, "angular_speed": 1}
    worst = 0.0
    for q in range(0, 11 * 20 * MS + 60 * MS, MS):
        st = tl.pose_at(q)
        pos_err, pan_err = error(st, move(q / 1e9))
        worst = max(worst, pos_err)
        assert pan_err < 0.01, q
    assert worst < 1e-3


def test_non_finite_and_far_away_values_are_rejected() -> None:
    tl = TL.Timeline(R25)
    assert tl.push_values(0, 1.0, 2.0, 1.5, 0, 0, 0)
    assert not tl.push_values(20 * MS, math.nan, 2.0, 1.5, 0, 0, 0)
    assert not tl.push_values(40 * MS, 1.0, 2.0, 1.5, math.inf, 0, 0)
    assert not tl.push_values(60 * MS, 5000.0, 2.0, 1.5, 0, 0, 0)  # beyond max_distance_m (1000 m)
    c = tl.counters()
    assert (c.rejected_non_finite, c.rejected_out_of_range, c.pushed) == (2, 1, 1)
    assert c.rejected_by_reason == {"non_finite": 2, "out_of_range": 1}
    # the first sample of a timeline has nothing to be judged against, except the distance (76 km: reported)
    far = TL.Timeline(R25)
    assert not far.push_values(0, 0.0, 76_000.0, 0.0, 0, 0, 0)
    assert far.counters().rejected_out_of_range == 1 and len(far) == 0


def test_a_relocated_tracker_is_followed_after_three_agreeing_samples() -> None:
    """A tracker that re-localises 4 m away is not garbage: once three samples in a row agree with each other
    (and not with the old path) the timeline takes the new path, counts it, restarts there -- and never
    predicts across the jump (that would invent 10 m/s of motion toward it)."""
    tl = TL.Timeline(R25)
    for k in range(5):
        assert tl.push_values(k * 20 * MS, 1.0 + 0.01 * k, 2.0, 1.5, 0, 0, 0)
    results = [tl.push_values((5 + k) * 20 * MS, 5.0 + 0.01 * k, 2.0, 1.5, 0, 0, 0) for k in range(3)]
    assert results == [False, False, True]
    c = tl.counters()
    assert (c.rejected_speed, c.reacquired) == (2, 1)
    st = tl.pose_at(7 * 20 * MS + 30 * MS)
    assert st.status == "held" and st.position[0] == pytest.approx(5.02)  # no pair on the new path yet
    assert tl.push_values(8 * 20 * MS, 5.03, 2.0, 1.5, 0, 0, 0)
    assert tl.push_values(9 * 20 * MS, 5.04, 2.0, 1.5, 0, 0, 0)
    st = tl.pose_at(9 * 20 * MS + 20 * MS)
    assert st.status == "extrapolated" and st.position[0] == pytest.approx(5.05, abs=1e-9)
    # samples that disagree with each other as well stay rejected
    noisy = TL.Timeline(R25)
    noisy.push_values(0, 0.0, 0.0, 1.5, 0, 0, 0)
    for k in range(6):
        assert not noisy.push_values((k + 1) * 20 * MS, 50.0 * (-1) ** k, 0.0, 1.5, 0, 0, 0)
    assert noisy.counters().reacquired == 0 and noisy.counters().rejected_speed == 6


# ========================================================================================= bounded prediction
def test_predicted_speed_is_clamped_to_the_limits() -> None:
    """Samples 10 ms apart, each 1.5 cm and 1.5 degrees on (1.5 m/s, 150 deg/s) on a 24 fps stage: each step
    is plausible (a nominal period is 41.7 ms), but the camera is limited to 1 m/s and 100 deg/s, so the
    prediction carries the newest pose at those speeds and no faster."""
    lim = MotionLimits(max_speed_m_s=1.0, max_angular_speed_deg_s=100.0)
    tl = TL.Timeline(FrameRate(24), motion_limits=lim)
    for k in range(8):
        assert tl.push_values(k * 10 * MS, 0.015 * k, 0.0, 1.5, 1.5 * k, 0, 0)
    st = tl.pose_at(70 * MS + 30 * MS)
    assert st.status == "extrapolated"
    assert st.position[0] == pytest.approx(0.105 + 1.0 * 0.030, abs=1e-9)
    assert st.pan == pytest.approx(10.5 + 100.0 * 0.030, abs=1e-9)
    # the same samples without limits: the plain constant-velocity prediction
    free = TL.Timeline(FrameRate(24), motion_limits=MotionLimits.unlimited())
    for k in range(8):
        free.push_values(k * 10 * MS, 0.015 * k, 0.0, 1.5, 1.5 * k, 0, 0)
    assert free.pose_at(100 * MS).position[0] == pytest.approx(0.150, abs=1e-9)


def test_a_glitch_within_the_speed_limit_cannot_throw_the_prediction() -> None:
    """A camera at rest, then one sample 4 cm off (2 m/s: within the speed limit, so it is kept). The velocity of
    the newest pair (4 m/s) may differ from the one before (0) by at most max_accel times the time between
    the two estimates, so 30 ms ahead the prediction moves 0.3 m/s * 30 ms = 9 mm past the glitch, not 12 cm."""
    lim = MotionLimits(max_accel_m_s2=30.0)
    tl = TL.Timeline(FrameRate(50), motion_limits=lim)  # nominal period 20 ms: pairs at least 10 ms apart
    for k in range(6):
        assert tl.push_values(k * 10 * MS, 0.0, 0.04 if k == 5 else 0.0, 1.5, 0, 0, 0)
    st = tl.pose_at(50 * MS + 30 * MS)
    assert st.status == "extrapolated" and st.sample_ids == (4, 5)
    assert st.position[1] == pytest.approx(0.04 + 30.0 * 0.010 * 0.030, abs=1e-9)
    free = TL.Timeline(FrameRate(50), motion_limits=MotionLimits.unlimited())
    for k in range(6):
        free.push_values(k * 10 * MS, 0.0, 0.04 if k == 5 else 0.0, 1.5, 0, 0, 0)
    assert free.pose_at(80 * MS).position[1] == pytest.approx(0.16, abs=1e-9)


def test_never_extrapolates_from_a_pair_closer_than_half_a_period() -> None:
    """Only two samples, 0.2 ms apart: there is no pair to take a velocity from, so the newest is held."""
    tl = TL.Timeline(R25)
    tl.push(0, freed(1.0, 2.0, 1.5))
    tl.push(200_000, freed(1.06, 2.0, 1.5))
    st = tl.pose_at(200_000 + 40 * MS)
    assert st.status == "held" and st.position[0] == pytest.approx(1.06, abs=1e-4)
    # a nominal period the samples state themselves overrides the stage's (here 100 Hz: 5 ms is enough)
    fast = TL.Timeline(R25, min_pair_fraction=0.5)
    fast.push_values(0, 1.0, 2.0, 1.5, 0, 0, 0, sample_period_ns=10 * MS)
    fast.push_values(5 * MS, 1.005, 2.0, 1.5, 0, 0, 0, sample_period_ns=10 * MS)
    assert fast.pose_at(15 * MS).position[0] == pytest.approx(1.015, abs=1e-9)
    with pytest.raises(ValueError):
        TL.Timeline(R25, min_pair_fraction=0.0)


# ========================================================================================== dejittered clock
def test_dejittered_clock_puts_samples_at_their_own_time() -> None:
    """Samples with their own timestamps (50 Hz) arrive with bursts and gaps; on the dejittered clock each one
    sits at its own time plus the fastest transport delay seen, so a smooth move comes out exact between them,
    where the arrival clock lags by what a sample was late."""
    rng = np.random.default_rng(3)
    src0 = 7_000_000_000_000  # the tracker's clock: any epoch
    base = 2 * MS  # the fastest route
    late = rng.choice([0, 0, 0, 50_000, 300_000, 19 * MS], size=40)  # 19 ms: arrives with the next one
    late[10:13] = (35 * MS, 15 * MS, 0)  # a gap: two samples held, flushed with the third
    late[0] = 0
    arrival = [k * 20 * MS + base + int(late[k]) for k in range(40)]
    arrival = list(np.maximum.accumulate(arrival))  # one socket: arrivals never go back
    tl = TL.Timeline(R25, clock="dejittered")
    ta = TL.Timeline(R25, clock="arrival")
    x = lambda k: 1.0 + 0.05 * k  # 2.5 m/s
    for k in range(40):
        for t in (tl, ta):
            assert t.push_values(arrival[k], x(k), 2.0, 1.5, 2.0 * k, 0, 0, source_ns=src0 + k * 20 * MS)
    # exact but for the offset's allowed creep (200 ppm of the time since the last fastest sample: drift)
    snap = tl.snapshot()
    np.testing.assert_allclose(snap["dejittered_ns"], np.arange(40) * 20 * MS + base, rtol=0, atol=100_000)
    worst_dj = worst_arr = 0.0
    for q in range(base + 20 * MS, base + 39 * 20 * MS, 3 * MS + 17):
        truth = 1.0 + 2.5 * (q - base) / 1e9
        worst_dj = max(worst_dj, abs(tl.pose_at(q).position[0] - truth))
        worst_arr = max(worst_arr, abs(ta.pose_at(q).position[0] - truth))
    assert worst_dj < 3e-4  # 100 us at 2.5 m/s
    assert worst_arr > 0.02  # what the arrival clock makes of the same packets: centimetres
    c = tl.counters()
    assert (c.rejected, c.timing_resyncs, c.dropped_out_of_order) == (0, 0, 0)


def test_dejittered_clock_rejects_wild_timestamps_and_follows_a_clock_step() -> None:
    tl = TL.Timeline(R25, clock="dejittered")
    src = 10**15
    for k in range(5):
        assert tl.push_values(k * 20 * MS, 1.0, 2.0, 1.5, 0, 0, 0, source_ns=src + k * 20 * MS)
    # a timestamp an hour in the future: rejected (timing), the dejittered time unharmed
    assert not tl.push_values(5 * 20 * MS, 1.0, 2.0, 1.5, 0, 0, 0, source_ns=src + 3600 * 10**9)
    assert tl.push_values(6 * 20 * MS, 1.0, 2.0, 1.5, 0, 0, 0, source_ns=src + 6 * 20 * MS)
    assert tl.snapshot()["dejittered_ns"][-1] == 6 * 20 * MS
    assert tl.counters().rejected_by_reason == {"timing": 1}
    # the source's clock steps back 5 s and stays there: after three agreeing samples it is followed
    got = [tl.push_values((7 + k) * 20 * MS, 1.0, 2.0, 1.5, 0, 0, 0, source_ns=src - 5 * 10**9 + k * 20 * MS)
           for k in range(4)]
    assert got == [False, False, True, True]
    c = tl.counters()
    assert (c.rejected_timing, c.timing_resyncs) == (3, 1)
    assert tl.snapshot()["dejittered_ns"][-1] == 10 * 20 * MS


def test_timecode_is_the_own_time_without_a_timestamp() -> None:
    """A sample that carries only timecode (here 50 fps, 2 sub-frames: 100 Hz) is dejittered on it."""
    from stagectl.core.sample import Pose, Timecode, Timing

    tl = TL.Timeline(R25, clock="dejittered")
    for k in range(6):
        f, s = divmod(k, 2)
        tc = Timecode(1, 0, 0, f, (50, 1), s)
        sample = TrackingSample(protocol="OpenTrackIO", pose=Pose(1.0 + 0.01 * k, 2.0, 1.5, 0, 0, 0),
                                timing=Timing(timecode=tc, sample_rate=(100, 1)))
        assert tl.push(k * 10 * MS + (9 * MS if k == 3 else 0), sample)  # sample 3 arrives 9 ms late
    dj = tl.snapshot()["dejittered_ns"]
    np.testing.assert_array_equal(dj[[0, 1, 2]], np.arange(3) * 10 * MS)
    assert abs(dj[3] - 30 * MS) <= 30 * MS // 5000  # the late one: at its own time (+ the offset's creep)


# ================================================================================================ stage file
def _demo_with(old: str, new: str) -> str:
    text = DEMO.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "stage.yaml"
    p.write_text(text.replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/"))
    return p


def test_stage_file_motion_limits(tmp_path: Path) -> None:
    assert load_stage(DEMO).cameras[0].motion_limits == MotionLimits()  # absent: the crane defaults
    text = _demo_with("    sensor_mm: [24.89, 14.0]",
                      "    motion_limits: {max_speed_m_s: 4, max_angular_speed_deg_s: 180}\n"
                      "    sensor_mm: [24.89, 14.0]")
    cam = load_stage(_write(tmp_path, text)).cameras[0]
    assert cam.motion_limits == MotionLimits(max_speed_m_s=4.0, max_angular_speed_deg_s=180.0)


@pytest.mark.parametrize("value,key,fragment", [
    ("{max_speed_m_s: 0}", "max_speed_m_s", "expected a value >= 0.1, got 0"),
    ("{max_accel_m_s2: fast}", "max_accel_m_s2", 'expected a finite number, got "fast"'),
    ("{max_angular_speed: 90}", "max_angular_speed", "unknown key; expected one of"),
    ("8", "", "expected a mapping of keys, got 8"),
])
def test_stage_file_motion_limits_errors(tmp_path: Path, value: str, key: str, fragment: str) -> None:
    text = _demo_with("    sensor_mm: [24.89, 14.0]", f"    motion_limits: {value}\n    sensor_mm: [24.89, 14.0]")
    p = _write(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        load_stage(p)
    errs = [e.format() for e in info.value.errors]
    line = next(i + 1 for i, s in enumerate(text.splitlines()) if "motion_limits:" in s)
    where = "cameras[0].motion_limits" + (f".{key}" if key else "")
    assert len(errs) == 1 and errs[0].startswith(f"{p}:{line}: {where}: ") and fragment in errs[0], errs


def test_motion_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_speed_m_s"):
        MotionLimits(max_speed_m_s=-1.0)
    with pytest.raises(ValueError, match="max_distance_m"):
        MotionLimits(max_distance_m=math.nan)
    with pytest.raises(TypeError):
        TL.Timeline(R25).set_motion_limits({"max_speed_m_s": 3})  # type: ignore[arg-type]


def test_restart_takes_the_next_sample_as_is() -> None:
    """A switch to another tracking source (``camera.set tracking``): the new source's first sample is neither
    judged against the old source's pose nor its clock, and prediction never pairs the two sources."""
    tl = TL.Timeline(R25, clock="dejittered")
    for k in range(4):
        assert tl.push_values(k * 20 * MS, 1.0 + 0.01 * k, 2.0, 1.5, 0, 0, 0, source_ns=10**15 + k * 20 * MS)
    tl.restart()
    # 3 m away, on a clock 5 s behind: kept at once, nothing rejected
    assert tl.push_values(4 * 20 * MS, 4.0, 2.0, 1.5, 90.0, 0, 0, source_ns=5 * 10**9)
    c = tl.counters()
    assert (c.rejected, c.reacquired, c.timing_resyncs) == (0, 0, 0)
    st = tl.pose_at(4 * 20 * MS + 30 * MS)
    assert st.status == "held" and st.position[0] == 4.0 and st.pan == pytest.approx(90.0)
    assert tl.push_values(5 * 20 * MS, 4.01, 2.0, 1.5, 90.0, 0, 0, source_ns=5 * 10**9 + 20 * MS)
    assert tl.pose_at(5 * 20 * MS + 20 * MS).position[0] == pytest.approx(4.02, abs=1e-9)
    # without the restart the same jump is rejected as implausible
    other = TL.Timeline(R25, clock="dejittered")
    other.push_values(0, 1.0, 2.0, 1.5, 0, 0, 0, source_ns=10**15)
    assert not other.push_values(20 * MS, 4.0, 2.0, 1.5, 90.0, 0, 0, source_ns=10**15 + 20 * MS)
