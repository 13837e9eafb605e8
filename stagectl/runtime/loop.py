"""The frame loop of ``stagectl run``: a :class:`~stagectl.runtime.stage.StageRuntime` driven by the
genlock-aligned, late-latching :class:`~stagectl.sync.frameloop.FrameLoop`.

Per frame ``k``, at the latch point before its edge: the console's queued commands take effect (a
``stage.reload`` among them swaps the stage and planner this frame reads), every camera's state is read at the
edge's instant on the timelines' clock (and appended to the take being recorded, if any, with when it was
latched, the newest sample each camera's timeline held and the timeline settings), the cluster primary
(``--cluster``) publishes the frame state to the render nodes, the runtime plans and draws the frame, and the
swap barrier meets the nodes. At the edge the
output presents; then, at normal priority, the previews, the status line (every ``status_interval_s``) and
the console's status and thumbnails. A frame that cannot be planned or drawn is counted and said; the outputs
keep the last good frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stagectl.runtime.stage import StageRuntime
from stagectl.runtime.status import camera_line, console_status

__all__ = ["run_frames"]


def run_frames(runtime: StageRuntime, *, stop, say: Callable[[str], None], status_interval_s: float = 1.0,
               duration_s: float | None = None, realtime_priority: int | None = 10, primary: Any = None,
               console: Any = None) -> dict:
    """Run frames until ``stop`` is set or ``duration_s`` passes (module docstring); returns the counters:
    ``frames``, ``late``, ``dropped``, ``rendered``, ``failed`` and the ``genlock`` summary.

    ``console``: the :class:`~stagectl.console.live.LiveConsole` (``apply``, ``publish``, its hub's flags and
    features) or None; ``primary``: the :class:`~stagectl.sync.cluster.Primary` or None."""
    import numpy as np

    from stagectl.core.timebase import Clock, Timecode
    from stagectl.sync.cluster import NO_FLAGS, FrameState
    from stagectl.sync.frameloop import FrameLoop

    stage = runtime.stage  # the frame rate and sync settings: a reload never changes them
    rate = stage.frame_rate
    output = runtime.output
    clock = Clock.SYSTEM if stage.sync.clock == "system" else Clock.MONOTONIC
    genlock = output.genlock_source(rate, clock) if output is not None else None
    loop = FrameLoop(rate, clock=clock, phase_offset_ns=stage.sync.phase_offset_ns, genlock=genlock,
                     realtime_priority=realtime_priority)
    interval_ns = int(status_interval_s * 1e9)
    counts = {"rendered": 0, "failed": 0}
    next_status = {"at": time.monotonic_ns() + interval_ns}

    def latch(k: int, edge_ns: int) -> None:
        # the timelines run on the monotonic clock (arrival stamps): evaluate at this edge's instant there
        t_query = edge_ns if clock is Clock.MONOTONIC else time.monotonic_ns() + (edge_ns - clock.now_ns())
        runtime.latching = (k, t_query)  # a take started at this boundary starts with this frame
        if console is not None:  # operator commands take effect at this frame boundary
            console.apply(k)
        latched_ns = time.monotonic_ns()  # the arrival stamps' clock: a take's re-solve sees what arrived by now
        states = runtime.camera_states(t_query)
        runtime.record(k, t_query, states, latched_ns)  # the take being recorded keeps what this frame is drawn from
        if primary is not None:  # the nodes render frame k while we do, with the operator's flags and features
            primary.publish(FrameState.make(k, rate, edge_ns, clock=clock, epoch_ns=loop.epoch_ns, cameras=states,
                                            flags=console.hub.flags if console is not None else NO_FLAGS),
                            features=console.hub.features if console is not None else None,
                            show=console.cluster_show(k) if console is not None else None)
        if console is not None:
            drawn = runtime.draw(states, k, flags=console.hub.flags, features=console.hub.features)
        else:
            drawn = runtime.draw(states, k)
        if drawn.plan is None:
            counts["failed"] += 1
            counts["last_ok"] = False  # the outputs keep the last good frame
            say(f"stagectl run: frame {k}: {drawn.why}")
        elif drawn.rendered:
            counts["rendered" if drawn.ok else "failed"] += 1
            counts["last_ok"] = drawn.ok
            if not drawn.ok:
                say(f"stagectl run: frame {k}: {drawn.why} (the outputs keep the last good frame)")
        if primary is not None:  # swap barrier: every node has frame k before anyone presents it
            primary.barrier(k)

    def present(k: int, edge_ns: int) -> int | None:
        now = time.monotonic_ns()
        shown = output.present(k, now) if output is not None else None
        loop.priority.lower()  # the edge is out: status, previews and the console at normal priority
        if output is not None:
            output.previews(now)
        if now >= next_status["at"]:
            next_status["at"] += interval_ns
            t = loop.telemetry(last=max(1, int(status_interval_s * rate.fps)))
            parts = [camera_line(runtime, name, now) for name in runtime.rigs]
            c = loop.counters
            say(f"[{Timecode.from_frame(k, rate)}] frame {k}: " + " | ".join(parts)
                + f" | {'render' if output is not None else 'maths'} median {np.median(t['render_ns']) / 1e6:.1f} ms"
                + f", latch lead {loop.lead_ns / 1e6:.1f} ms, phase error median {np.median(t['phase_error_ns']) / 1e3:.0f} us"
                + f" | failed {counts['failed']}, late {c.late}, dropped {c.dropped}"
                + _programs_note(output)
                + (f" | {primary.status().summary()}" if primary is not None else "")
                + f" | {loop.genlock_state().summary()}"
                + (f", {output.presenter.status()}" if output is not None and output.presenter else ""))
        if console is not None:
            console.publish(now, lambda: console_status(runtime, k, loop, counts, primary, now),
                            (lambda: output.thumbnail_images(k)) if output is not None else None)
        return shown

    duration_ns = None if duration_s is None else int(duration_s * 1e9)
    first = {"said": False}

    def latch_once(k: int, edge_ns: int) -> None:  # say once, from the loop thread, what priority it got
        if not first["said"]:
            first["said"] = True
            say(f"stagectl run: frame edges: {loop.priority.why}")
        latch(k, edge_ns)

    c = loop.run(latch_once, present, stop=stop, duration_ns=duration_ns)
    if loop.last_error is not None:
        say(f"stagectl run: {c.latch_errors} frame(s) raised; last error: {loop.last_error!r}")
    return {"frames": c.frames, "late": c.late, "dropped": c.dropped, "rendered": counts["rendered"],
            "failed": counts["failed"] + c.latch_errors, "genlock": loop.genlock_state().summary()}


def _programs_note(output) -> str:
    """`` | grade waits for N programs`` while a console grade change is compiled off the render thread
    (docs/colour.md, *Grades*), else nothing."""
    if output is None:
        return ""
    pending = output.renderer.program_status().get("pending")
    return f" | grade waits for {pending['programs']} programs" if pending else ""
