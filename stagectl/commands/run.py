"""Run a stage.

What runs today:
  * the stage and its lens files are validated and the Numba kernels compiled before the first frame;
  * every tracking source a camera uses gets a real UDP receiver (FreeD, OpenTrackIO, OSC) feeding that
    camera's timeline; a source with `simulate:` in the stage file that stays silent for --wait-tracker seconds
    is fed by the built-in simulator over real loopback UDP instead (say --no-simulator to forbid it);
  * every frame, paced on the stage's frame rate, each camera's pose is read from its timeline at the frame
    edge (with the source's tracking delay), the lens file turns the zoom/focus encoders into focal length,
    principal point and entrance pupil, and the per-frame frustum maths runs: view and projection with
    overscan, every cabinet corner projected, which cabinets the inner frustum covers;
  * a status line per second shows the frame, timecode, each camera's tracking state, packet rate, sample age,
    pose and lens, the covered cabinets, the maths' cost and late frames.

Not yet: rendering and LED outputs (nothing is sent to any output; the command says so when it starts and
when it stops), genlock sources other than the internal clock. Ctrl-C or SIGTERM stops it within one frame.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

HELP = "run a stage: tracking input, timelines and per-frame frustum maths (rendering comes later)"

DEFAULT_FOCAL_MM = 35.0  # used while a camera has neither a lens file nor a focal length from its tracker


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, e.g. stages/demo.yaml")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C or SIGTERM)")
    p.add_argument("--status-interval", type=float, default=1.0, metavar="S",
                   help="seconds between status lines (default 1)")
    p.add_argument("--wait-tracker", type=float, default=0.5, metavar="S",
                   help="how long a source with a simulated move waits for a real tracker (default 0.5 s)")
    p.add_argument("--no-simulator", action="store_true",
                   help="never start the built-in simulator, even for sources that name a move")


@dataclass
class _Rig:
    """Everything one camera needs per frame."""

    camera: Any
    source: Any
    timeline: Any
    lens_table: Any
    workspace: Any
    T_body_camera: Any
    state: Any = None
    focal_mm: float = DEFAULT_FOCAL_MM
    frames_without_pose: int = 0
    flags: list[str] = field(default_factory=list)


def _simulator_target(source, port: int) -> tuple[str, int]:
    """Where the simulator sends so that this source's receiver (listening on ``port``) gets it."""
    if source.multicast_group:
        return source.multicast_group, port
    host = "127.0.0.1" if source.bind in ("0.0.0.0", "") else source.bind
    return host, port


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from stagectl.errors import StageError, UsageError
    from stagectl.stage import load_stage
    from stagectl.sync.timebase import Timecode

    for name in ("duration", "status_interval", "wait_tracker"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name != "wait_tracker" and value == 0)):
            raise UsageError(f"--{name.replace('_', '-')}: expected a positive number of seconds, got {value:g}")
    stage = load_stage(args.stage)
    rate = stage.frame_rate
    say = lambda text: print(text, flush=True)  # noqa: E731
    say(f'stagectl run: stage "{stage.name}" ({args.stage}) is valid: {len(stage.walls)} walls, '
        f"{sum(w.cabinet_count for w in stage.walls)} cabinets, {len(stage.outputs())} outputs, {rate.label} fps")
    say("stagectl run: not implemented yet: rendering and LED outputs. Nothing is sent to any output.")
    if not stage.cameras:
        say("stagectl run: the stage has no cameras; nothing to compute.")
        return 0

    from stagectl.render.frustum import FrustumWorkspace, compute_pose
    from stagectl.render.frustum import warmup as warm_frustum
    from stagectl.tracking.receiver import ReceiverGroup, TransportError
    from stagectl.tracking.sender import Sender
    from stagectl.tracking.simulator import Simulator
    from stagectl.tracking.timeline import Timeline
    from stagectl.tracking.timeline import warmup as warm_timeline

    t0 = time.perf_counter()
    warm_frustum()
    warm_timeline()
    say(f"stagectl run: kernels ready in {time.perf_counter() - t0:.2f} s (compiled or loaded from cache)")

    rigs: dict[str, _Rig] = {}
    for cam in stage.cameras:
        src = stage.tracking_source(cam.tracking)
        rigs[cam.name] = _Rig(
            camera=cam,
            source=src,
            timeline=Timeline(rate, delay_frames=src.delay_frames, name=cam.name),
            lens_table=cam.lens_file.table() if cam.lens_file else None,
            workspace=FrustumWorkspace(stage.walls),
            T_body_camera=np.ascontiguousarray(cam.T_body_camera),
        )
    receivers = ReceiverGroup.from_stage(stage, lambda name: rigs[name].timeline.push)
    try:
        receivers.start()
    except (TransportError, OSError) as exc:
        raise StageError(f"cannot listen for tracking: {exc}") from None
    simulators: list[Simulator] = []
    stop = {"flag": False}

    def _stop(signum, frame) -> None:  # noqa: ARG001
        stop["flag"] = True

    old_term = signal.signal(signal.SIGTERM, _stop)
    old_int = signal.signal(signal.SIGINT, _stop)
    try:
        for r in receivers:
            say(f"stagectl run: listening: {r.describe()}")
        simulated = [s for s in stage.tracking if s.simulate and any(r.source is s for r in rigs.values())]
        if simulated and not args.no_simulator:
            deadline = time.monotonic() + args.wait_tracker
            while time.monotonic() < deadline and not stop["flag"]:
                if all(receivers[s.name].state(time.monotonic_ns()) == "live" for s in simulated):
                    break
                time.sleep(0.02)
            for s in simulated:
                if receivers[s.name].state(time.monotonic_ns()) == "live":
                    say(f"stagectl run: tracker {s.name} is sending: the simulator stays off")
                    continue
                host, port = _simulator_target(s, receivers[s.name].port)
                cams = [r.camera.name for r in rigs.values() if r.source is s]
                sim = Simulator(s.simulate, s.protocol, rate, sender=Sender(s.protocol, host, port, osc_camera=cams[0]),
                                camera_id=s.camera_id if s.camera_id is not None and s.protocol == "freed" else 1,
                                source_number=s.camera_id if s.protocol == "opentrackio" and s.camera_id else 1,
                                osc_camera=cams[0], profile=s.encoder_profile, keep=16)
                simulators.append(sim.start())
                say(f"stagectl run: no tracker on {s.name} after {args.wait_tracker:g} s: the simulator plays the "
                    f"'{s.simulate}' move as {s.protocol} packets to {host}:{port} (real UDP)")
        for rig in rigs.values():
            lens = (f"lens {rig.camera.lens_file.name} (zoom/focus encoders from tracking)" if rig.lens_table
                    else f"no lens file: the tracker's focal length, else {DEFAULT_FOCAL_MM:g} mm")
            say(f"stagectl run: camera {rig.camera.name} <- {rig.source.name} ({rig.source.protocol}), delay "
                f"{rig.source.delay_frames:g} frames; {lens}; sensor {rig.camera.sensor_mm[0]:g} x "
                f"{rig.camera.sensor_mm[1]:g} mm")
        frames, late = _loop(args, stage, rigs, receivers, stop, say, np, compute_pose, Timecode)
    finally:
        for sim in simulators:
            sim.stop()
        receivers.close()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    why = "stopped by signal" if stop["flag"] else "duration reached"
    no_pose = ", ".join(f"{n} had no pose for {r.frames_without_pose}" for n, r in rigs.items() if r.frames_without_pose)
    say(f"stagectl run: {why} after {frames} frames ({late} late{'; ' + no_pose if no_pose else ''}); tracked "
        f"{len(rigs)} camera(s) and computed their frustum maths every frame; rendered nothing and sent nothing "
        "to any output (not implemented yet).")
    return 0


def _loop(args, stage, rigs, receivers, stop, say, np, compute_pose, Timecode) -> tuple[int, int]:
    """The paced frame loop; returns (frames, late frames)."""
    rate = stage.frame_rate
    overscan = stage.render.inner.overscan_percent
    interval_ns = int(args.status_interval * 1e9)
    epoch = time.monotonic_ns()
    end_ns = None if args.duration is None else epoch + int(args.duration * 1e9)
    next_status = epoch + interval_ns
    costs_us: list[float] = []
    k = late = frames = 0
    while not stop["flag"]:
        edge = rate.frame_edge_ns(k, epoch)
        if end_ns is not None and edge >= end_ns:
            break
        now = time.monotonic_ns()
        if now < edge:
            time.sleep((edge - now) / 1e9)
        elif now - edge > rate.period_ns:
            late += 1
        c0 = time.perf_counter_ns()
        for rig in rigs.values():
            _frame_for_camera(rig, edge, overscan, np)
        costs_us.append((time.perf_counter_ns() - c0) / 1e3)
        frames += 1
        now = time.monotonic_ns()
        if now >= next_status:
            parts = [_status(name, rig, receivers[rig.source.name], now) for name, rig in rigs.items()]
            c = np.array(costs_us)
            say(f"[{Timecode.from_frame(k, rate)}] frame {k}: " + " | ".join(parts)
                + f" | per-frame maths median {np.median(c):.0f} us, max {c.max():.0f} us | late frames {late}")
            costs_us.clear()
            next_status += interval_ns
        k += 1
    return frames, late


def _frame_for_camera(rig: _Rig, edge_ns: int, overscan, np) -> None:
    st = rig.timeline.pose_at(edge_ns)
    rig.state = st
    if not st.ok:
        rig.frames_without_pose += 1
        return
    T = st.matrix()
    T_stage_camera = T @ rig.T_body_camera if st.pose_frame == "body" else T
    zoom = st.zoom if math.isfinite(st.zoom) else 0.0
    focus = st.focus if math.isfinite(st.focus) else 0.0
    if rig.lens_table is not None:
        f_mm, px, py, _, _, _, _, _, pupil, _ = rig.lens_table.values(zoom, focus).tolist()
    else:
        f_mm = st.focal_length_mm if math.isfinite(st.focal_length_mm) else DEFAULT_FOCAL_MM
        px = py = 0.0
        pupil = st.entrance_pupil_offset_m if math.isfinite(st.entrance_pupil_offset_m) else 0.0
    rig.focal_mm = f_mm
    cam = rig.camera
    rig.workspace.update(T_stage_camera, f_mm, cam.sensor_mm[0], cam.sensor_mm[1], px, py,
                         overscan_pct=overscan, pupil_offset_m=pupil)


def _status(name: str, rig: _Rig, receiver, now_ns: int) -> str:
    stats = receiver.stats(now_ns)
    state = receiver.state(now_ns)
    st = rig.state
    if st is None or not st.ok:
        return f"{name}: tracking {state}, no pose yet"
    x, y, z = st.position
    ws = rig.workspace
    covered = " ".join(f"{n} {int(ws.wall_covered(j).sum())}" for j, n in enumerate(ws.names))
    age = f"{st.age_ns / 1e6:+.1f} ms" if st.age_ns is not None else "n/a"
    return (f"{name}: tracking {state} {stats.packet_rate_hz:.1f} Hz, sample age {age} ({st.status}); at "
            f"({x:+.2f}, {y:+.2f}, {z:+.2f}) m pan {st.pan:+.1f} tilt {st.tilt:+.1f}, {rig.focal_mm:.1f} mm; "
            f"inner frustum covers {covered} cabinets")


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace()))
