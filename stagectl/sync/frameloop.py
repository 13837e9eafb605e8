"""The genlock-aligned, late-latching frame loop and its telemetry.

Frame ``k`` is presented at its edge ``E_k = epoch + k * period`` (:class:`~stagectl.sync.timebase.FrameRate`,
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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stagectl.sync.timebase import Clock, FrameRate

__all__ = ["FrameLoop", "LoopCounters", "TELEMETRY_FIELDS"]

#: telemetry columns (int64 ns unless said otherwise)
TELEMETRY_FIELDS = (
    "frame",  # frame number k
    "edge_ns",  # E_k on the loop clock
    "latch_ns",  # when latch() was called
    "render_ns",  # how long latch() took (evaluate + plan + render)
    "present_ns",  # when present() was called
    "phase_error_ns",  # present_ns - edge_ns
    "lead_ns",  # the latch lead used for this frame
    "dropped_before",  # edges dropped just before this frame (count)
)


@dataclass
class LoopCounters:
    frames: int = 0
    late: int = 0
    dropped: int = 0
    latch_errors: int = 0


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
    ) -> None:
        self.rate = rate
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
        :attr:`last_error` and does not stop the loop. ``present(k, edge_ns)`` is called at the edge.
        """
        stop = stop or threading.Event()
        rate, epoch = self.rate, self.epoch_ns
        start = self._now()
        end = None if duration_ns is None else start + int(duration_ns)
        k = rate.frame_at_ns(start, epoch) + 1 if first_frame is None else int(first_frame)
        dropped = 0  # edges skipped since the last frame
        while not stop.is_set():
            edge = rate.frame_edge_ns(k, epoch)
            if end is not None and edge > end:
                break
            latch_at = edge - self.lead_ns
            now = self._now()
            if now > latch_at:
                # too late to latch for this edge with the usual lead: if the edge itself is gone (or we
                # could not even start before it), skip to the next edge we can still make
                if now >= edge:
                    nxt = rate.frame_at_ns(now, epoch) + 1
                    dropped += nxt - k
                    self.counters.dropped += nxt - k
                    k = nxt
                    continue
            else:
                self._wait_until(latch_at, stop)
                if stop.is_set():
                    break
            t_latch = self._now()
            try:
                latch(k, edge)
            except Exception as exc:  # a failing frame never stops the loop
                self.counters.latch_errors += 1
                self.last_error = exc
            t_done = self._now()
            render = t_done - t_latch
            if t_done < edge:
                self._wait_until(edge, stop)
            else:
                self.counters.late += 1
            t_present = self._now()
            if present is not None:
                try:
                    present(k, edge)
                except Exception as exc:
                    self.counters.latch_errors += 1
                    self.last_error = exc
            self._record(k, edge, t_latch, render, t_present, dropped)
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

    def _record(self, k: int, edge: int, latch: int, render: int, present: int, dropped: int) -> None:
        with self._lock:
            row = self._ring[self._rows % self._ring.shape[0]]
            row[:] = (k, edge, latch, render, present, present - edge, self.lead_ns, dropped)
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
