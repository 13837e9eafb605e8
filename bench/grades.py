"""What a console grade change costs the frame loop: the frames after a change, and how long until it shows.

    python -m bench grades [--stage stages/demo.yaml] [--changes 3] [--kinds walls,inner] [--frames 48]
                           [--no-worker] [--no-write]

The stage renders headless with the features of a busy shoot (``bench.render.busy_features``: light cards,
every wall graded, the inner frustum graded through a 33-point LUT), a static camera and static content, frames
paced at the stage's rate as in ``stagectl run``. Then, ``--changes`` times for each kind, the saturation of the
walls' grade (``walls``) or of the inner frustum's (``inner``) moves to a value never compiled before (so no
shader cache can help), as a console ``color.set`` would, or the walls' exposure moves (``exposure``: a uniform,
nothing compiles; its frame redraws the cached outer-only canvases as a walls change's does), and frames go on
until the canvases show it. Per change: the time of the first frame after it, the longest frame until it shows,
the frame that shows it, the frames and milliseconds until it shows. Before the changes, ``--frames`` frames measure the steady state (the whole frame, and the
composite passes each waited for with ``glFinish``).

With a renderer that has a compile worker (``StageRenderer(compile_worker=True)``, the default here unless
``--no-worker``), the new grade's programs are compiled off the render thread and the change shows a few frames
later; without one (or on a stagectl older than the worker), they are compiled in the frame of the change.
Results: ``bench/results/grades-*.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import summarize_ns, write_results

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 60.0  # a change that has not shown after this long is reported as such


def _ms(summary: dict) -> dict:
    return {k.replace("_us", "_ms"): (v / 1000.0 if k.endswith("_us") else v) for k, v in summary.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench grades", description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", default=str(REPO / "stages" / "demo.yaml"))
    ap.add_argument("--changes", type=int, default=3, help="changes of each kind")
    ap.add_argument("--kinds", default="walls,inner,exposure",
                    help="walls, inner, exposure (comma-separated; exposure compiles nothing: the reference)")
    ap.add_argument("--frames", type=int, default=48, help="steady-state frames timed before the changes")
    ap.add_argument("--no-worker", action="store_true", help="compile on the render thread (as before)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results JSON")
    args = ap.parse_args(argv)

    from bench.render import busy_features
    from stagectl.core.camera import OperatorFlags
    from stagectl.core.transforms import transform_from_pose
    from stagectl.render.camera import camera_state
    from stagectl.render.gl.context import create_context
    from stagectl.render.gl.platform import GL
    from stagectl.render.plan import FramePlanner
    from stagectl.render.renderer import StageRenderer
    from stagectl.stage import load_stage
    from stagectl.tracking.moves import pose_at

    stage = load_stage(args.stage)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not stage.cameras or set(kinds) - {"walls", "inner", "exposure"}:
        print("the stage needs a camera; --kinds takes walls, inner and exposure", file=sys.stderr)
        return 2
    ctx = create_context("egl")
    info = ctx.info.summary()
    has_worker = "compile_worker" in inspect.signature(StageRenderer.__init__).parameters
    worker = has_worker and not args.no_worker
    print(f"renderer: {info}; compile worker: {'on' if worker else 'off'}"
          + ("" if has_worker else " (this stagectl has none)"))
    cam = stage.cameras[0]
    p = pose_at("orbit", 0.0)
    cams = [camera_state(stage, cam, transform_from_pose(p.x, p.y, p.z, p.pan, p.tilt, p.roll),
                         zoom=p.zoom, focus=p.focus)]
    planner = FramePlanner(stage)
    period_s = float(stage.frame_rate.period_ns) / 1e9 if hasattr(stage.frame_rate, "period_ns") else 1 / 24
    base = busy_features(stage)
    salt = (time.time_ns() // 1000) % 100_000 / 1e7  # values never compiled before: no shader cache helps
    frame = 0
    renderer = StageRenderer(stage, ctx, **({"compile_worker": True} if worker else {}))
    try:
        def render(fs, finish=False):
            nonlocal frame
            frame += 1
            plan = planner.plan(cams, OperatorFlags(), frame, fs)
            t0 = time.perf_counter_ns()
            res = renderer.render_frame(plan, finish_passes=finish)
            dt = time.perf_counter_ns() - t0
            if not res.ok:
                raise RuntimeError(res.error)
            return dt, res

        for _ in range(8):
            render(base)
        while worker and renderer.program_status()["pending"] is not None:
            render(base)
        frame_ns, comp_ns = [], []
        for _ in range(args.frames):
            dt, res = render(base, finish=True)
            frame_ns.append(dt)
            comp_ns.append(sum(v for k, v in res.timings_ns.items() if k.startswith("composite")))
        steady = {"frame (passes waited for)": _ms(summarize_ns(frame_ns)),
                  "composite passes": _ms(summarize_ns(comp_ns))}
        print(f"steady state: frame median {steady['frame (passes waited for)']['median_ms']:.1f} ms, composite "
              f"passes median {steady['composite passes']['median_ms']:.1f} ms")
        key = renderer.keys[0]
        changes = []
        fs = base
        for i in range(args.changes):
            for kind in kinds:
                sat = 0.8 + 0.05 * i + salt + (0.011 if kind == "inner" else 0.0)
                if kind == "exposure":  # a uniform: nothing to compile (the reference for the redraw's cost)
                    fs = dataclasses.replace(fs, wall_color={w: dataclasses.replace(cc, exposure=cc.exposure + 0.1)
                                                             for w, cc in fs.wall_color})
                elif kind == "walls":
                    fs = dataclasses.replace(fs, wall_color={w: dataclasses.replace(cc, saturation=sat)
                                                             for w, cc in fs.wall_color})
                else:
                    fs = dataclasses.replace(fs, inner_color=dataclasses.replace(fs.inner_color, saturation=sat))
                before = renderer.canvases()[key].copy()
                times, t_change = [], time.perf_counter()
                next_t = t_change
                shown = False
                while time.perf_counter() - t_change < LIMIT_S:
                    dt, _ = render(fs)
                    times.append(dt)
                    if not np.array_equal(renderer.canvases()[key], before):
                        shown = True
                        break
                    next_t += period_s
                    time.sleep(max(0.0, next_t - time.perf_counter()))
                entry = {"kind": kind, "first_frame_ms": times[0] / 1e6, "max_frame_ms": max(times) / 1e6,
                         "shown_frame_ms": times[-1] / 1e6,
                         "frames_until_shown": len(times) if shown else None,
                         "ms_until_shown": (time.perf_counter() - t_change) * 1e3 if shown else None}
                if worker:
                    entry["program_status"] = renderer.program_status()
                changes.append(entry)
                print(f"  {kind:5s} change: first frame {entry['first_frame_ms']:7.1f} ms, longest frame "
                      f"{entry['max_frame_ms']:7.1f} ms, the frame that shows it {entry['shown_frame_ms']:7.1f} ms, "
                      f"shown after {entry['frames_until_shown']} frames "
                      f"({entry['ms_until_shown'] or float('nan'):.0f} ms)")
                for _ in range(4):  # settle (the next change starts from a quiet frame loop)
                    render(fs)
        summary = {}
        for kind in kinds:
            mine = [c for c in changes if c["kind"] == kind]
            summary[kind] = {
                "first_frame_ms_median": float(np.median([c["first_frame_ms"] for c in mine])),
                "max_frame_ms_median": float(np.median([c["max_frame_ms"] for c in mine])),
                "shown_frame_ms_median": float(np.median([c["shown_frame_ms"] for c in mine])),
                "frames_until_shown_median": float(np.median([c["frames_until_shown"] or np.nan for c in mine])),
                "ms_until_shown_median": float(np.median([c["ms_until_shown"] or np.nan for c in mine])),
            }
    finally:
        renderer.release()
        GL.glFinish()
        ctx.release()
    if not args.no_write:
        payload = {"what": "frames after a console grade change (walls' or inner frustum's saturation)",
                   "renderer": info, "compile_worker": worker,
                   "settings": {"stage": args.stage, "changes": args.changes, "kinds": kinds,
                                "frames": args.frames, "period_ms": period_s * 1e3},
                   "steady": steady, "changes": changes, "summary": summary}
        stamped, _ = write_results("grades", payload)
        print(f"wrote {stamped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
