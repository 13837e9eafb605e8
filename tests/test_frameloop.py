"""The late-latching frame loop: exact edges, adaptive latch lead, drops without backlog, failures contained.

Timing thresholds are stated as fractions of the frame period (rclpy style) and judged on medians, because this
2-core machine is shared with other work; the benchmark suite measures the tails.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from stagectl.core.timebase import FrameRate
from stagectl.sync.frameloop import FrameLoop

RATE = FrameRate(50)  # 20 ms period keeps the tests short
PERIOD = RATE.period_ns


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def test_edges_are_exact_and_consecutive() -> None:
    loop = FrameLoop(RATE, margin_ns=1_000_000)
    c = loop.run(lambda k, e: None, duration_ns=400_000_000)
    t = loop.telemetry()
    assert c.frames >= 15 and c.latch_errors == 0
    expected = np.array([RATE.frame_edge_ns(int(k), loop.epoch_ns) for k in t["frame"]])
    np.testing.assert_array_equal(t["edge_ns"], expected)
    # no drift: the edges are the exact grid even after many frames (integer ns, no accumulation)
    assert np.all(np.diff(t["frame"]) >= 1)
    if c.dropped == 0:
        assert np.all(np.diff(t["frame"]) == 1)


def test_latch_lead_follows_the_render_time() -> None:
    loop = FrameLoop(RATE, margin_ns=2_000_000, percentile=50.0)
    loop.run(lambda k, e: _busy(6.0), duration_ns=600_000_000)
    t = loop.telemetry()
    steady = slice(5, None)
    lead = np.median(t["lead_ns"][steady])
    render = np.median(t["render_ns"][steady])
    # the lead is the measured work (6 ms of spinning, more when a loaded machine pre-empts it) + the 2 ms margin:
    # it follows what the frames really took, and is far from the whole period a fixed lead would use
    assert render >= 6e6 and lead >= 7.9e6, (render, lead)
    assert abs(lead - (render + 2e6)) <= 1.5e6, (render, lead)
    assert lead < 0.75 * PERIOD, lead
    latch_before_edge = np.median(t["edge_ns"][steady] - t["latch_ns"][steady])
    assert abs(latch_before_edge - lead) <= 0.1 * PERIOD
    # presented at the edge: never before it, and typically just after (a shared machine may stretch the work)
    assert np.all(t["phase_error_ns"] >= 0)
    assert np.median(t["phase_error_ns"][steady]) <= 0.25 * PERIOD


def test_overruns_drop_edges_instead_of_building_a_backlog() -> None:
    loop = FrameLoop(RATE, margin_ns=1_000_000)
    slow = {5, 6, 12}
    calls = []

    def latch(k: int, edge: int) -> None:
        calls.append(k)
        if len(calls) in slow:
            _busy(45.0)  # more than two periods

    c = loop.run(latch, duration_ns=600_000_000)
    t = loop.telemetry()
    assert c.dropped >= 2
    # every frame that was started was started at most one period before its own edge ...
    assert np.all(t["edge_ns"] - t["latch_ns"] <= PERIOD)
    # ... and never for an edge long gone (no stale backlog: a backlog would latch whole periods late; a
    # thread pre-empted between the decision and the call may start a little after its edge)
    assert np.all(t["latch_ns"] - t["edge_ns"] < PERIOD // 4)
    # frames and dropped edges account for the grid
    span = int(t["frame"][-1] - t["frame"][0]) + 1
    assert span == c.frames + int(t["dropped_before"][1:].sum())


def test_a_failing_frame_is_counted_and_the_loop_goes_on() -> None:
    loop = FrameLoop(RATE)
    presented = []

    def latch(k: int, edge: int) -> None:
        if k % 3 == 0:
            raise RuntimeError("render exploded")

    c = loop.run(latch, lambda k, e: presented.append(k), duration_ns=300_000_000)
    assert c.latch_errors >= 3 and isinstance(loop.last_error, RuntimeError)
    assert len(presented) == c.frames >= 10


def test_stop_event_ends_the_loop_without_sleeping_out_the_period() -> None:
    # at 1/4 fps the loop waits 4 s for each edge: ending well inside that proves the wait is woken by the stop
    # event (the bound is generous for a loaded machine; how fast it reacts is measured in bench/)
    rate = FrameRate(1, 4)
    loop = FrameLoop(rate)
    stop = threading.Event()
    done = threading.Event()
    threading.Thread(target=lambda: (loop.run(lambda k, e: None, stop=stop), done.set()), daemon=True).start()
    time.sleep(0.2)
    t0 = time.monotonic()
    stop.set()
    assert done.wait(rate.period_ns / 1e9)
    assert time.monotonic() - t0 < 0.5 * rate.period_ns / 1e9


def test_system_clock_edges_are_aligned_to_the_epoch_grid() -> None:
    from stagectl.core.timebase import Clock

    loop = FrameLoop(FrameRate(25), clock=Clock.SYSTEM)
    assert loop.epoch_ns == 0
    loop.run(lambda k, e: None, duration_ns=200_000_000)
    t = loop.telemetry()
    # two nodes on the same disciplined clock compute the same edges: edge = k * 40 ms since the epoch
    assert np.all(t["edge_ns"] % 40_000_000 == 0)
    assert np.all(t["edge_ns"] // 40_000_000 == t["frame"])


def _fifo_permitted() -> bool:
    """Whether this process may use SCHED_FIFO (probed in a throw-away thread, independently of the loop)."""
    import os

    result = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            result.append(True)
        except (OSError, AttributeError):
            result.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return result[0]


def test_edges_run_at_real_time_priority_and_the_work_at_normal_priority() -> None:
    """EdgePriority: waiting and presenting as SCHED_FIFO, the latch callback (the frame's work) at the
    thread's normal policy; where SCHED_FIFO is not permitted the loop says why and runs normally."""
    import os

    seen: dict[str, set[int]] = {"latch": set(), "present": set(), "after": set()}

    def body() -> None:
        loop = FrameLoop(FrameRate(100), realtime_priority=5)
        loop.run(lambda k, e: seen["latch"].add(os.sched_getscheduler(0)),
                 lambda k, e: seen["present"].add(os.sched_getscheduler(0)), duration_ns=100_000_000)
        seen["after"].add(os.sched_getscheduler(0))
        seen["why"] = loop.priority.why  # type: ignore[assignment]
        seen["active"] = loop.priority.active  # type: ignore[assignment]

    t = threading.Thread(target=body)
    t.start()
    t.join()
    normal = os.sched_getscheduler(0)
    assert seen["latch"] == {normal} and seen["after"] == {normal}  # work and the thread afterwards: normal
    if _fifo_permitted():
        assert seen["active"] and seen["present"] == {os.SCHED_FIFO} and "SCHED_FIFO" in seen["why"]
    else:
        assert not seen["active"] and seen["present"] == {normal} and "not permitted" in seen["why"]
    off = FrameLoop(FrameRate(100))
    assert not off.priority.active and off.priority.why == "off"
