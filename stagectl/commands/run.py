"""Run a stage.

What runs today: the stage and its lens files are validated, the Numba frustum core is compiled, and every
frame, paced on the stage's frame rate, each camera's pose and zoom/focus encoders are taken from the built-in
simulator (the move named by its tracking source's `simulate` key), the lens file turns the encoders into focal
length, principal point and entrance pupil, and the complete per-frame frustum maths runs: view and projection
with overscan, every cabinet corner projected, which cabinets the inner frustum covers, per-facet Kooima
matrices. A status line per second shows the frame, timecode, camera, lens, covered cabinets and the maths' cost.

Not yet: network tracking input, rendering and LED outputs. Nothing is sent to any output; the
command says so when it starts and when it stops. Ctrl-C or SIGTERM stops it within one frame.
"""

from __future__ import annotations

HELP = "run a stage (today: the per-frame frustum maths of each camera on simulated tracking)"

import argparse
import signal
import sys
import time

DEFAULT_FOCAL_MM = 35.0  # used while a camera has no lens file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, e.g. stages/demo.yaml")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C or SIGTERM)")
    p.add_argument("--status-interval", type=float, default=1.0, metavar="S",
                   help="seconds between status lines (default 1)")


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from stagectl.errors import UsageError
    from stagectl.stage import load_stage
    from stagectl.sync.timebase import Timecode
    from stagectl.tracking.moves import pose_at
    from stagectl.transforms import transform_from_pose

    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration: expected a positive number of seconds, got {args.duration:g}")
    stage = load_stage(args.stage)
    rate = stage.frame_rate
    say = lambda text: print(text, flush=True)  # noqa: E731
    say(f'stagectl run: stage "{stage.name}" ({args.stage}) is valid: {len(stage.walls)} walls, '
        f"{sum(w.cabinet_count for w in stage.walls)} cabinets, {len(stage.outputs())} outputs, {rate.label} fps")
    say("stagectl run: not implemented yet: network tracking input, rendering, LED outputs. "
        "Nothing is sent to any output.")
    if not stage.cameras:
        say("stagectl run: the stage has no cameras; nothing to compute.")
        return 0

    from stagectl.render.frustum import FrustumWorkspace, warmup

    t0 = time.perf_counter()
    warmup()
    say(f"stagectl run: frustum core ready in {time.perf_counter() - t0:.2f} s (compiled or loaded from cache)")

    cams = []
    for cam in stage.cameras:
        src = stage.tracking_source(cam.tracking)
        move = src.simulate or "orbit"
        table = cam.lens_file.table() if cam.lens_file else None
        lens = (f"lens {cam.lens_file.name} driven by the simulated zoom/focus encoders" if table
                else f"no lens file: fixed {DEFAULT_FOCAL_MM:g} mm")
        say(f"stagectl run: camera {cam.name}: simulated '{move}' move in place of {src.protocol} on "
            f"{src.bind}:{src.port}; {lens}; {cam.sensor_mm[0]:g} x {cam.sensor_mm[1]:g} mm sensor")
        cams.append((cam, move, table, FrustumWorkspace(stage.walls), np.ascontiguousarray(cam.T_body_camera)))

    stop = {"flag": False}

    def _stop(signum, frame) -> None:  # noqa: ARG001
        stop["flag"] = True

    old_term = signal.signal(signal.SIGTERM, _stop)
    old_int = signal.signal(signal.SIGINT, _stop)
    overscan = stage.render.inner.overscan_percent
    epoch = time.monotonic_ns()
    end_ns = None if args.duration is None else epoch + int(args.duration * 1e9)
    k = 0
    late = 0
    costs_us: list[float] = []
    next_status = epoch + int(args.status_interval * 1e9)
    frames_done = 0
    poses: list = [None] * len(cams)
    try:
        while not stop["flag"]:
            edge = rate.frame_edge_ns(k, epoch)
            if end_ns is not None and edge >= end_ns:
                break
            now = time.monotonic_ns()
            if now < edge:
                time.sleep((edge - now) / 1e9)
            elif now - edge > rate.period_ns:
                late += 1
            t_s = (edge - epoch) / 1e9
            c0 = time.perf_counter_ns()
            for i, (cam, move, table, ws, T_body_camera) in enumerate(cams):
                p = pose_at(move, t_s)
                T_stage_camera = transform_from_pose(p.x, p.y, p.z, p.pan, p.tilt, p.roll) @ T_body_camera
                if table is not None:
                    f_mm, px, py, _, _, _, _, _, pupil, _ = table.values(p.zoom, p.focus).tolist()
                else:
                    f_mm, px, py, pupil = DEFAULT_FOCAL_MM, 0.0, 0.0, 0.0
                ws.update(T_stage_camera, f_mm, cam.sensor_mm[0], cam.sensor_mm[1], px, py,
                          overscan_pct=overscan, pupil_offset_m=pupil)
                poses[i] = (p, f_mm)
            costs_us.append((time.perf_counter_ns() - c0) / 1e3)
            frames_done += 1
            if time.monotonic_ns() >= next_status:
                parts = []
                for (cam, _, _, ws, _), (p, f_mm) in zip(cams, poses):
                    per_wall = " ".join(f"{n} {int(ws.wall_covered(j).sum())}" for j, n in enumerate(ws.names))
                    parts.append(f"{cam.name} at ({p.x:+.2f}, {p.y:+.2f}, {p.z:+.2f}) m pan {p.pan:+.1f} "
                                 f"tilt {p.tilt:+.1f} {f_mm:.1f} mm; inner frustum covers {per_wall} cabinets")
                c = np.array(costs_us)
                say(f"[{Timecode.from_frame(k, rate)}] frame {k}: " + " | ".join(parts)
                    + f" | per-frame maths median {np.median(c):.0f} us, max {c.max():.0f} us | late frames {late}")
                costs_us.clear()
                next_status += int(args.status_interval * 1e9)
            k += 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    why = "stopped by signal" if stop["flag"] else "duration reached"
    say(f"stagectl run: {why} after {frames_done} frames ({late} late); computed the frustum maths of "
        f"{len(cams)} camera(s) every frame; rendered nothing and sent nothing to any output (not implemented yet).")
    return 0


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace()))
