"""The genlock-aligned, late-latching frame loop and its telemetry.

Frame ``k`` is presented at its edge ``E_k = epoch + k * period`` (:class:`~stagectl.core.timebase.FrameRate`,
exact; ``epoch`` on the loop's clock, integer ns). To use the newest tracking sample the loop does not start a
frame at the previous edge: it sleeps until the **latch point** ``L_k = E_k - lead``, where ``lead`` is the
recent render time (a high percentile of the last frames) plus a safety margin, then calls ``latch(k, E_k)``
(evaluate timelines, build the plan, render), then waits for ``E_k`` and calls ``present(k, E_k)``. The lead
adapts to the measured render time every frame, bounded to ``[min_lead, period]``.

A frame whose work ends after its edge is *late* (presented when it is done); an edge that passes with no
frame started for it is *dropped*: the loop never renders a backlog of stale frames, it moves on to the next
edge it can still make. Both are counted.

Every frame writes one row of telemetry (latch, render, present and phase error, all integer ns) into a
fixed ring that status lines and benchmarks read (:meth:`FrameLoop.telemetry`).

Waiting: ``time.sleep`` until ~``spin_ns`` before the target, then a short spin on the clock, so the latch and
present instants land within tens of microseconds of their targets on an idle machine.

**Genlock sources.** Where the edges come from is the loop's *edge source* (``genlock=``):

* :class:`InternalGenlock` (the default, ``sync.genlock: internal``): the exact grid above on the loop's
  clock. The loop waits for each edge, then presents. Nothing external is followed, so it reports itself as
  free-running (on a PTP-disciplined ``SYSTEM`` clock every node still ticks in phase).
* :class:`VsyncGenlock` (``sync.genlock: vsync``): the edges follow the vertical blank of the first output
  window. ``present()`` swaps that window with swap interval 1 and returns the instant the swap came back
  (loop clock, ns): that instant is frame ``k``'s real edge, and the next edges are predicted from it one
  exact period apart. The loop does not wait for a predicted edge before presenting: the blocking swap waits
  for the vertical blank itself. A GPU output whose card is locked to house sync (a sync board) therefore
  locks the loop to house sync. A swap shown one or more blanks later than predicted re-anchors the grid there
  (the frames in between are counted as dropped). When the display does not pace swaps (Xvfb, vsync forced
  off in the driver, every window closed) the source falls back to the internal grid, presents at the edges
  and says why.

Each source reports a :class:`GenlockState` (which source, locked or free-running, and why): a vsync source is
*locked* when the swap returns of the last second (``window_ns``) sit on a grid of the stage's period within
``tolerance_ns`` (:func:`assess_lock`, a pure function of the timestamps). The telemetry has the instant each
frame became visible (``shown_ns``) and whether the source was locked at that frame (``genlock_locked``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from stagectl.core.timebase import Clock, FrameRate

__all__ = [
    "EdgePriority",
    "FrameLoop",
    "LoopCounters",
    "TELEMETRY_FIELDS",
    "EdgeSource",
    "InternalGenlock",
    "VsyncGenlock",
    "GenlockState",
    "LockAssessment",
    "assess_lock",
    "DEFAULT_LOCK_TOLERANCE_NS",
    "DEFAULT_LOCK_WINDOW_NS",
]

#: telemetry columns (int64 ns unless said otherwise)
TELEMETRY_FIELDS = (
    "frame",  # frame number k
    "edge_ns",  # E_k on the loop clock
    "latch_ns",  # when latch() was called
    "render_ns",  # how long latch() took (evaluate + plan + render)
    "present_ns",  # when present() was called
    "phase_error_ns",  # shown_ns - edge_ns
    "lead_ns",  # the latch lead used for this frame
    "dropped_before",  # edges dropped just before this frame (count)
    "shown_ns",  # when the frame became visible: the vsync swap's return, else present_ns
    "genlock_locked",  # 1 when the genlock source was locked at this frame, else 0
)

#: a vsync edge further than this from the stage-period grid of the last second means "not locked"
DEFAULT_LOCK_TOLERANCE_NS = 500_000
#: how much recent history the lock decision looks at
DEFAULT_LOCK_WINDOW_NS = 1_000_000_000


@dataclass
class LoopCounters:
    frames: int = 0
    late: int = 0
    dropped: int = 0
    latch_errors: int = 0


@dataclass(frozen=True)
class LockAssessment:
    """:func:`assess_lock`'s answer.

    ``edges``: timestamps inside the window; ``measured_period_ns``: their mean spacing per stage period
    (None with fewer than two); ``max_interval_error_ns``: the largest distance of an interval from a whole
    number of periods; ``max_phase_error_ns``: the largest distance of an edge from the best period grid
    through them (catches a slow drift whose intervals each look fine); ``missed``: periods without an edge
    (an interval of ``n`` periods misses ``n - 1``).
    """

    locked: bool
    reason: str
    edges: int
    measured_period_ns: float | None = None
    max_interval_error_ns: int | None = None
    max_phase_error_ns: int | None = None
    missed: int = 0


def assess_lock(
    edges_ns,
    period_ns: float,
    *,
    tolerance_ns: int = DEFAULT_LOCK_TOLERANCE_NS,
    window_ns: int = DEFAULT_LOCK_WINDOW_NS,
    now_ns: int | None = None,
    min_fill: float = 0.5,
) -> LockAssessment:
    """Are these edge timestamps (integer ns, one clock, ascending) locked to a grid of ``period_ns``?

    Only the edges of the last ``window_ns`` count (ending at ``now_ns``, default the newest edge). They are
    locked when

    * at least ``min_fill`` of the periods in the window have an edge (and at least three edges),
    * every interval between consecutive edges is within ``tolerance_ns`` of a whole number (>= 1) of periods
      (an interval of two periods is a missed vertical blank, counted but still on the grid), and
    * every edge is within ``tolerance_ns`` of the grid ``e_0 + n_i * period + c`` (``n_i`` the whole periods
      counted since the first edge, ``c`` the median offset), so a display running at a slightly different
      rate, whose intervals are each close to the period, still reads as free-running once its phase has
      moved more than the tolerance within the window.

    A phase step larger than the tolerance unlocks for as long as it stays inside the window.
    """
    period = float(period_ns)
    if not period > 0:
        raise ValueError(f"period_ns must be positive, got {period_ns!r}")
    e = np.asarray(edges_ns, dtype=np.int64)
    if e.ndim != 1:
        raise ValueError("edges_ns must be a 1-D sequence of integer ns")
    if e.size and np.any(np.diff(e) < 0):
        raise ValueError("edges_ns must be ascending")
    end = int(e[-1]) if now_ns is None and e.size else (int(now_ns) if now_ns is not None else 0)
    e = e[(e > end - int(window_ns)) & (e <= end)]
    n = int(e.size)
    need = max(3, int(math.floor(min_fill * window_ns / period)) + 1)
    if n < 2:
        return LockAssessment(False, f"{n} edge(s) in the last {window_ns / 1e9:g} s, need {need}", n)
    d = np.diff(e).astype(np.float64)
    whole = np.rint(d / period)
    measured = float((e[-1] - e[0]) / max(whole.sum(), 1.0))
    if np.any(whole < 1):
        i = int(np.argmin(d))
        return LockAssessment(False, f"two edges {d[i] / 1e6:.2f} ms apart, less than a period "
                              f"({period / 1e6:.2f} ms)", n, measured, missed=0)
    interval_err = np.abs(d - whole * period)
    counts = np.concatenate(([0.0], np.cumsum(whole)))
    residual = (e - e[0]).astype(np.float64) - counts * period
    phase_err = np.abs(residual - np.median(residual))
    missed = int((whole - 1).sum())
    max_int, max_phase = round(float(interval_err.max())), round(float(phase_err.max()))
    common = {"measured_period_ns": measured, "max_interval_error_ns": max_int,
              "max_phase_error_ns": max_phase, "missed": missed}
    if n < need:
        return LockAssessment(False, f"{n} edges in the last {window_ns / 1e9:g} s, need {need}", n, **common)
    if max_int > tolerance_ns:
        return LockAssessment(False, f"an interval is {max_int / 1e3:.0f} us off the {period / 1e6:.3f} ms "
                              f"period (tolerance {tolerance_ns / 1e3:.0f} us)", n, **common)
    if max_phase > tolerance_ns:
        return LockAssessment(False, f"edges drift {max_phase / 1e3:.0f} us off the {period / 1e6:.3f} ms "
                              f"grid (period measured {measured / 1e6:.3f} ms; tolerance "
                              f"{tolerance_ns / 1e3:.0f} us)", n, **common)
    return LockAssessment(True, f"{n} edges in the last {window_ns / 1e9:g} s within {max_phase / 1e3:.0f} "
                          f"us of the {period / 1e6:.3f} ms grid", n, **common)


@dataclass(frozen=True)
class GenlockState:
    """What a genlock source says about itself: ``source`` (``"internal"``, ``"vsync"``), ``locked``, and
    ``detail`` (one phrase: what it follows, or why it is free-running)."""

    source: str
    locked: bool
    detail: str

    def summary(self) -> str:
        """``genlock vsync: locked (...)`` / ``genlock internal: free-running (...)``, for status lines."""
        return f"genlock {self.source}: {'locked' if self.locked else 'free-running'} ({self.detail})"


class EdgeSource(Protocol):
    """Where a :class:`FrameLoop`'s frame edges come from (integer ns on the loop's clock).

    ``presents_at_edge``: True: the loop waits for each edge, then calls ``present``; False: it calls
    ``present`` as soon as the frame is rendered (a blocking vsync swap does the waiting). ``observe`` is
    told, after each present, when it was called and when the frame became visible (``present``'s return,
    None if it returned nothing).
    """

    name: str
    presents_at_edge: bool

    def edge_ns(self, k: int) -> int: ...

    def frame_at_ns(self, t_ns: int) -> int: ...

    def observe(self, k: int, edge_ns: int, call_ns: int, shown_ns: int | None) -> None: ...

    def state(self) -> GenlockState: ...

    @property
    def locked(self) -> bool: ...


class InternalGenlock:
    """Edges on the exact grid ``epoch + k * period`` of the loop's clock (``sync.genlock: internal``)."""

    name = "internal"
    presents_at_edge = True
    locked = False

    def __init__(self, rate: FrameRate, clock: Clock, epoch_ns: int) -> None:
        self.rate = rate
        self.clock = clock
        self.epoch_ns = int(epoch_ns)

    def edge_ns(self, k: int) -> int:
        return self.rate.frame_edge_ns(k, self.epoch_ns)

    def frame_at_ns(self, t_ns: int) -> int:
        return self.rate.frame_at_ns(t_ns, self.epoch_ns)

    def observe(self, k: int, edge_ns: int, call_ns: int, shown_ns: int | None) -> None:
        pass

    def state(self) -> GenlockState:
        what = ("epoch-aligned on the system clock" if self.clock is not Clock.MONOTONIC
                else "on the monotonic clock")
        return GenlockState(self.name, False, f"{self.rate.label} fps {what}")


class VsyncGenlock:
    """Edges from the vertical blank of the first output window (``sync.genlock: vsync``).

    ``paced``: the display paces swaps at the stage's period (the start-up probe of
    :meth:`stagectl.render.present.WindowPresenter.probe_vsync` says so); False starts on the internal grid
    and ``why_not`` says why (shown in the state). Edges are predicted one exact stage period apart from the
    last swap return (``anchor``); each swap return re-anchors them. Three swaps in a row that come back more
    than ``tolerance_ns`` before their predicted edge mean the swap no longer waits for a vertical blank (a
    real one returns at the blank, which the previous return predicts to within the wake-up jitter), and a
    present that swapped nothing (every window closed) means there is no vsync: either falls back to the
    internal grid for the rest of the run.

    The lock state (:func:`assess_lock` over the last ``window_ns`` of swap returns) is updated every frame.
    """

    name = "vsync"

    def __init__(
        self,
        rate: FrameRate,
        clock: Clock,
        *,
        paced: bool,
        why_not: str | None = None,
        tolerance_ns: int = DEFAULT_LOCK_TOLERANCE_NS,
        window_ns: int = DEFAULT_LOCK_WINDOW_NS,
        start_ns: int | None = None,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.tolerance_ns = int(tolerance_ns)
        self.window_ns = int(window_ns)
        self.presents_at_edge = not paced
        self.why_not = None if paced else (why_not or "the display does not pace swaps")
        self._anchor_k = 0
        self._anchor_ns = int(clock.now_ns() if start_ns is None else start_ns)
        cap = max(8, int(2 * rate.fps * window_ns / 1e9) + 4)
        self._shown = np.zeros(cap, dtype=np.int64)
        self._n = 0
        self._early = 0
        self.missed_blanks = 0  # frames that went out one or more vertical blanks after their predicted edge
        self.assessment = LockAssessment(False, "no swap yet", 0)
        self.locked = False

    def edge_ns(self, k: int) -> int:
        return self.rate.frame_edge_ns(int(k) - self._anchor_k, self._anchor_ns)

    def frame_at_ns(self, t_ns: int) -> int:
        return self._anchor_k + self.rate.frame_at_ns(t_ns, self._anchor_ns)

    def observe(self, k: int, edge_ns: int, call_ns: int, shown_ns: int | None) -> None:
        if shown_ns is None:
            if not self.presents_at_edge:
                self._fall_back("no output window swapped (every window is closed)")
            return
        shown_ns = int(shown_ns)
        buf = self._shown
        if self._n and shown_ns < buf[(self._n - 1) % buf.shape[0]]:
            return  # a clock step backwards (SYSTEM clock): ignore the sample
        buf[self._n % buf.shape[0]] = shown_ns
        self._n += 1
        n = min(self._n, buf.shape[0])
        recent = np.sort(buf[:n]) if self._n > buf.shape[0] else buf[:n]
        period = self.rate.period_ns_exact
        self.assessment = assess_lock(recent, float(period), tolerance_ns=self.tolerance_ns,
                                      window_ns=self.window_ns, now_ns=shown_ns)
        self.locked = bool(self.assessment.locked and not self.presents_at_edge)
        if self.presents_at_edge:
            return  # internal pacing: the swap returns are watched, not followed
        if shown_ns < edge_ns - self.tolerance_ns:
            self._early += 1
            if self._early >= 3:
                early_ms = (edge_ns - shown_ns) / 1e6
                self._fall_back(f"the swap came back {early_ms:.1f} ms before the predicted vertical blank "
                                "three times in a row: it does not wait for vsync any more")
                return
        else:
            self._early = 0
        late = max(0, self.rate.frame_at_ns(shown_ns + self.rate.period_ns // 2, edge_ns))
        self.missed_blanks += int(late > 0)
        self._anchor_k, self._anchor_ns = int(k) + late, shown_ns

    def _fall_back(self, why: str) -> None:
        self.presents_at_edge = True
        self.locked = False
        self.why_not = why

    def state(self) -> GenlockState:
        a = self.assessment
        if self.presents_at_edge:
            return GenlockState(self.name, False, f"{self.why_not}; edges from the internal clock")
        if a.locked:
            return GenlockState(self.name, True, f"swaps every {a.measured_period_ns / 1e6:.3f} ms, within "
                                f"{a.max_phase_error_ns / 1e3:.0f} us of the grid over the last "
                                f"{self.window_ns / 1e9:g} s")
        return GenlockState(self.name, False, a.reason)


class EdgePriority:
    """Real-time scheduling for the instants that must be on time: the loop thread waits for the latch point
    and for the edge, and presents, as ``SCHED_FIFO`` (Linux), and does the frame's work (``latch``) at normal
    priority, so rendering never starves the receivers or the console.

    A waking ``SCHED_FIFO`` thread pre-empts every normal thread at once; a normal one waits for the
    scheduler's next decision, milliseconds on a busy machine (``python -m bench latency``'s loaded genlock
    runs measure both). Needs ``CAP_SYS_NICE`` or an ``rtprio`` limit (``ulimit -r``); without it
    :attr:`active` is False and :attr:`why` says so (the loop runs at normal priority). Linux keeps 5 % of
    every second for normal threads (``sched_rt_runtime_us``), so a runaway loop cannot lock the machine.
    """

    def __init__(self, priority: int | None = 10) -> None:
        self.priority = priority
        self.active = False
        self.why = "off" if priority is None else "not started"
        self._normal = None  # (policy, param) of the thread before start()
        self._fifo = None  # the SCHED_FIFO param, made once
        self._raised = False  # what the thread runs as now: no system call when nothing changes

    def start(self) -> EdgePriority:
        """Probe on the calling (loop) thread: try ``SCHED_FIFO`` once, then return to normal."""
        if self.priority is None:
            return self
        if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_FIFO"):
            self.why = "not available on this system (SCHED_FIFO is Linux-only here)"
            return self
        try:
            self._normal = (os.sched_getscheduler(0), os.sched_getparam(0))
            self._fifo = os.sched_param(int(self.priority))
            os.sched_setscheduler(0, os.SCHED_FIFO, self._fifo)
        except OSError as exc:
            self.why = (f"not permitted ({exc.strerror}): frame edges at normal priority; grant CAP_SYS_NICE or "
                        "an rtprio limit (ulimit -r) for real-time edges")
            return self
        self.active = True
        self._raised = True
        self.why = f"SCHED_FIFO priority {self.priority} while waiting for the latch point and the edge"
        self.lower()
        return self

    def raise_(self) -> None:
        if self.active and not self._raised:
            os.sched_setscheduler(0, os.SCHED_FIFO, self._fifo)
            self._raised = True

    def lower(self) -> None:
        if self.active and self._raised:
            os.sched_setscheduler(0, self._normal[0], self._normal[1])
            self._raised = False

    def stop(self) -> None:
        self.lower()


class FrameLoop:
    """Run ``latch`` and ``present`` callbacks on the frame edges of ``rate``.

    :param rate: exact frame rate.
    :param clock: :class:`Clock` of the edges (``MONOTONIC``: a free-running single node; ``SYSTEM``: a
        PTP-disciplined system clock, edges aligned to its epoch so that every node ticks in phase).
    :param epoch_ns: time of edge 0 on ``clock``; ``None``: ``0`` for ``SYSTEM``/``PTP`` (ST 2059-style
        alignment), the current time for ``MONOTONIC``.
    :param phase_offset_ns: shifts every edge.
    :param margin_ns: safety margin added to the measured render time to get the latch lead.
    :param min_lead_ns: the lead never falls below this (scheduler wake-up slack).
    :param percentile: which percentile of recent render times sizes the lead.
    :param history: how many recent frames size the lead.
    :param telemetry_capacity: rows kept in the telemetry ring.
    :param genlock: the :class:`EdgeSource` of the edges; ``None``: :class:`InternalGenlock` on ``clock`` and
        ``epoch_ns`` (the behaviour described above). Available as :attr:`genlock`.
    :param realtime_priority: ``SCHED_FIFO`` priority (1..99) for waiting and presenting
        (:class:`EdgePriority`); None: normal priority throughout. :attr:`priority` says what ran.
    """

    def __init__(
        self,
        rate: FrameRate,
        *,
        clock: Clock = Clock.MONOTONIC,
        epoch_ns: int | None = None,
        phase_offset_ns: int = 0,
        margin_ns: int = 2_000_000,
        min_lead_ns: int = 1_000_000,
        percentile: float = 95.0,
        history: int = 48,
        spin_ns: int = 1_000_000,
        telemetry_capacity: int = 4096,
        genlock: EdgeSource | None = None,
        realtime_priority: int | None = None,
    ) -> None:
        self.rate = rate
        self.priority = EdgePriority(realtime_priority)
        self.clock = clock
        self._now = clock.now_ns
        if epoch_ns is None:
            epoch_ns = self._now() if clock is Clock.MONOTONIC else 0
        self.epoch_ns = int(epoch_ns) + int(phase_offset_ns)
        self.margin_ns = int(margin_ns)
        self.min_lead_ns = int(min_lead_ns)
        self.percentile = float(percentile)
        self.spin_ns = int(spin_ns)
        self._render_hist = np.zeros(int(history), dtype=np.int64)
        self._hist_n = 0
        self._ring = np.zeros((int(telemetry_capacity), len(TELEMETRY_FIELDS)), dtype=np.int64)
        self._rows = 0
        self._lock = threading.Lock()  # guards the ring against a reader copying it mid-write
        self.counters = LoopCounters()
        self.lead_ns = self.min_lead_ns + self.margin_ns
        self.last_error: BaseException | None = None
        self.genlock: EdgeSource = (genlock if genlock is not None
                                    else InternalGenlock(rate, clock, self.epoch_ns))

    def genlock_state(self) -> GenlockState:
        """Which genlock source runs and whether it is locked (see :class:`GenlockState`)."""
        return self.genlock.state()

    # ------------------------------------------------------------------ waiting
    def _wait_until(self, target_ns: int, stop: threading.Event) -> None:
        while True:
            remaining = target_ns - self._now()
            if remaining <= 0 or stop.is_set():
                return
            if remaining > self.spin_ns:
                stop.wait((remaining - self.spin_ns) / 1e9)

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        latch: Callable[[int, int], None],
        present: Callable[[int, int], None] | None = None,
        *,
        stop: threading.Event | None = None,
        duration_ns: int | None = None,
        first_frame: int | None = None,
    ) -> LoopCounters:
        """Run until ``stop`` is set or ``duration_ns`` has passed; returns the counters.

        ``latch(k, edge_ns)`` does the frame's work; an exception in it is counted (``latch_errors``), kept in
        :attr:`last_error` and does not stop the loop. ``present(k, edge_ns)`` is called at the edge (with a
        vsync source: right after ``latch``, its swap waits for the edge); it may return the instant (loop
        clock, int ns) the frame became visible, which a vsync source takes as the real edge.
        """
        stop = stop or threading.Event()
        src = self.genlock
        prio = self.priority.start()
        try:
            return self._run(latch, present, stop, duration_ns, first_frame, src, prio)
        finally:
            prio.stop()

    def _run(self, latch, present, stop, duration_ns, first_frame, src, prio) -> LoopCounters:
        start = self._now()
        end = None if duration_ns is None else start + int(duration_ns)
        k = src.frame_at_ns(start) + 1 if first_frame is None else int(first_frame)
        dropped = 0  # edges skipped since the last frame
        while not stop.is_set():
            edge = src.edge_ns(k)
            if end is not None and edge > end:
                break
            latch_at = edge - self.lead_ns
            now = self._now()
            if now > latch_at:
                # too late to latch for this edge with the usual lead: if the edge itself is gone (or we
                # could not even start before it), skip to the next edge we can still make
                if now >= edge:
                    nxt = src.frame_at_ns(now) + 1
                    dropped += nxt - k
                    self.counters.dropped += nxt - k
                    k = nxt
                    continue
            else:
                prio.raise_()
                self._wait_until(latch_at, stop)
                if stop.is_set():
                    break
            t_latch = self._now()
            prio.lower()  # the frame's work at normal priority
            try:
                latch(k, edge)
            except Exception as exc:  # a failing frame never stops the loop
                self.counters.latch_errors += 1
                self.last_error = exc
            t_done = self._now()
            render = t_done - t_latch
            prio.raise_()  # the edge and the present on time
            if t_done >= edge:
                self.counters.late += 1
            elif src.presents_at_edge:
                self._wait_until(edge, stop)
            t_present = self._now()
            shown = None
            if present is not None:
                try:
                    ret = present(k, edge)
                    if isinstance(ret, int) and not isinstance(ret, bool):
                        shown = ret
                except Exception as exc:
                    self.counters.latch_errors += 1
                    self.last_error = exc
            try:
                src.observe(k, edge, t_present, shown)
            except Exception as exc:  # a genlock source never stops the loop either
                self.counters.latch_errors += 1
                self.last_error = exc
            self._record(k, edge, t_latch, render, t_present, dropped, shown, src.locked)
            dropped = 0
            self._adapt(render)
            self.counters.frames += 1
            k += 1
        return self.counters

    def _adapt(self, render_ns: int) -> None:
        h = self._render_hist
        h[self._hist_n % h.shape[0]] = render_ns
        self._hist_n += 1
        recent = h[: min(self._hist_n, h.shape[0])]
        want = int(np.percentile(recent, self.percentile)) + self.margin_ns
        self.lead_ns = int(min(max(want, self.min_lead_ns), self.rate.period_ns))

    def _record(
        self, k: int, edge: int, latch: int, render: int, present: int, dropped: int, shown: int | None,
        locked: bool,
    ) -> None:
        visible = present if shown is None else shown
        with self._lock:
            row = self._ring[self._rows % self._ring.shape[0]]
            row[:] = (k, edge, latch, render, present, visible - edge, self.lead_ns, dropped, visible,
                      int(locked))
            self._rows += 1

    # ------------------------------------------------------------------ reading
    def telemetry(self, last: int | None = None) -> dict[str, np.ndarray]:
        """The newest rows (oldest first) as named int64 columns (copies)."""
        with self._lock:
            n = min(self._rows, self._ring.shape[0])
            if last is not None:
                n = min(n, int(last))
            idx = (np.arange(self._rows - n, self._rows) % self._ring.shape[0]) if n else np.zeros(0, dtype=np.int64)
            block = self._ring[idx].copy()
        return {name: block[:, i] for i, name in enumerate(TELEMETRY_FIELDS)}
