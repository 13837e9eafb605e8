"""Run a stage.

What runs today:
  * the stage and its lens files are validated and the Numba kernels compiled before the first frame;
  * every tracking source a camera uses gets a real UDP receiver (FreeD, OpenTrackIO, OSC) feeding that
    camera's timeline; a source with `simulate:` in the stage file that stays silent for --wait-tracker seconds
    is fed by the built-in simulator over real loopback UDP instead (say --no-simulator to forbid it);
  * every frame, paced on the stage's frame rate, each camera's pose is read from its timeline at the frame
    edge (with the source's tracking delay), the lens file turns the zoom/focus encoders into focal length,
    principal point and entrance pupil, the frame plan runs the frustum maths (which cabinets the inner
    frustum covers), and the renderer draws the inner frustum, the outer environment and every output canvas
    headless (EGL; Mesa llvmpipe without a GPU). A frame that fails to render keeps the last good canvases
    and is counted;
  * every --preview-every seconds the canvases are written as PNG previews into --run-dir (one file per
    output, overwritten), so an operator without a display can look at what the wall shows; with --sink every
    canvas is also published each frame into a shared-memory ring other programs can read;
  * a status line per second shows the frame, timecode, each camera's tracking state, packet rate, sample age,
    pose and lens, the covered cabinets, render time, failed and late frames.

With --cluster this process is the cluster primary: it publishes every frame's state (frame, timecode, camera
states) over ZeroMQ to `stagectl node` processes and meets them at a swap barrier before presenting; a node
that misses it by --cluster-timeout frames is dropped and rejoins by itself.

Not yet: presenting canvases on GPU outputs (GLFW windows), genlock sources other than the internal clock.
With --no-render only the tracking and the maths run. Ctrl-C or SIGTERM stops it within one frame.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from stagectl.commands._signals import StopOnSignals

HELP = "run a stage: tracking input, timelines, frustum maths and headless rendering of every output canvas"

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
    p.add_argument("--no-render", action="store_true",
                   help="run tracking and the frustum maths only; draw nothing")
    p.add_argument("--preview-every", type=float, default=2.0, metavar="S",
                   help="write PNG previews of every canvas every S seconds (default 2; 0 = never)")
    p.add_argument("--run-dir", default=None, metavar="DIR",
                   help="where previews go (default runs/<UTC date-time> next to the working directory)")
    p.add_argument("--sink", action="store_true",
                   help="publish every output canvas each frame into a shared-memory ring that other programs can "
                        "read (stagectl.render.sink.SinkReader; names are printed at start)")
    p.add_argument("--cluster", nargs="?", const="127.0.0.1", default=None, metavar="BIND[:PORT[,SYNC_PORT]]",
                   help="be the cluster primary: publish every frame's state to `stagectl node` processes and "
                        "run the swap barrier (default 127.0.0.1:41310,41311; '*' binds every interface)")
    p.add_argument("--cluster-timeout", type=float, default=2.0, metavar="FRAMES",
                   help="drop a node from the swap barrier when it is this many frames late (default 2)")


@dataclass
class _Rig:
    """Everything one camera needs per frame."""

    camera: Any
    source: Any
    timeline: Any
    lens_table: Any
    T_body_camera: Any
    state: Any = None  # the timeline's answer this frame
    focal_mm: float = DEFAULT_FOCAL_MM
    frames_without_pose: int = 0
    adaptive: Any = None  # AdaptiveOverscan, when the stage asks for it
    overscan: Any = None  # the overscan used this frame (left, right, bottom, top percent)


def _simulator_target(source, port: int) -> tuple[str, int]:
    """Where the simulator sends so that this source's receiver (listening on ``port``) gets it."""
    if source.multicast_group:
        return source.multicast_group, port
    host = "127.0.0.1" if source.bind in ("0.0.0.0", "") else source.bind
    return host, port


def main(args: argparse.Namespace) -> int:
    from stagectl.errors import StageError, UsageError
    from stagectl.stage import load_stage

    for name in ("duration", "status_interval", "wait_tracker", "preview_every"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name in ("duration", "status_interval") and value == 0)):
            raise UsageError(f"--{name.replace('_', '-')}: expected a positive number of seconds, got {value:g}")
    stage = load_stage(args.stage)
    rate = stage.frame_rate
    say = lambda text: print(text, flush=True)  # noqa: E731
    say(f'stagectl run: stage "{stage.name}" ({args.stage}) is valid: {len(stage.walls)} walls, '
        f"{sum(w.cabinet_count for w in stage.walls)} cabinets, {len(stage.outputs())} outputs, {rate.label} fps")
    if not stage.cameras:
        say("stagectl run: the stage has no cameras; nothing to compute.")
        return 0

    import numpy as np

    from stagectl.render.frustum import warmup as warm_frustum
    from stagectl.render.plan import FramePlanner
    from stagectl.tracking.receiver import ReceiverGroup, TransportError
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
            T_body_camera=np.ascontiguousarray(cam.T_body_camera),
        )
    adaptive = stage.render.inner.adaptive
    if adaptive is not None:
        from stagectl.render.overscan import AdaptiveOverscan

        for rig in rigs.values():
            rig.adaptive = AdaptiveOverscan(
                stage.render.inner.overscan_percent, max_pct=adaptive.max_percent,
                latency_ns=int(adaptive.latency_ms * 1e6), wall_distance_m=adaptive.wall_distance_m,
                decay_pct_per_s=adaptive.decay_percent_per_s)
        say(f"stagectl run: adaptive overscan: covers {adaptive.latency_ms:g} ms of camera motion, at most "
            f"{adaptive.max_percent:g} % per side")
    planner = FramePlanner(stage)
    output = _Output.open(stage, args, say) if not args.no_render else None
    if output is None:
        say("stagectl run: --no-render: tracking and frustum maths only; nothing is drawn or sent to any output")
    receivers = ReceiverGroup.from_stage(stage, lambda name: rigs[name].timeline.push)
    try:
        receivers.start()
    except (TransportError, OSError) as exc:
        if output is not None:
            output.close()
        raise StageError(f"cannot listen for tracking: {exc}") from None
    simulators: list[Any] = []
    signals = StopOnSignals().install()
    stop = signals.event
    primary = None
    try:
        primary = _start_primary(args, stage, say)
        for r in receivers:
            say(f"stagectl run: listening: {r.describe()}")
        if not args.no_simulator:
            simulators = _start_simulators(stage, rigs, receivers, args.wait_tracker, stop, say)
        for rig in rigs.values():
            lens = (f"lens {rig.camera.lens_file.name} (zoom/focus encoders from tracking)" if rig.lens_table
                    else f"no lens file: the tracker's focal length, else {DEFAULT_FOCAL_MM:g} mm")
            say(f"stagectl run: camera {rig.camera.name} <- {rig.source.name} ({rig.source.protocol}), delay "
                f"{rig.source.delay_frames:g} frames; {lens}; sensor {rig.camera.sensor_mm[0]:g} x "
                f"{rig.camera.sensor_mm[1]:g} mm")
        counts = _loop(args, stage, rigs, planner, output, receivers, stop, say, primary)
    finally:
        if primary is not None:
            primary.close()
        for sim in simulators:
            sim.stop()
        receivers.close()
        if output is not None:
            output.close()
        signals.restore()
    why = signals.reason("duration reached")
    no_pose = ", ".join(f"{n} had no pose for {r.frames_without_pose}" for n, r in rigs.items() if r.frames_without_pose)
    drawn = (f"rendered {counts['rendered']} frames of {len(stage.outputs())} canvases headless "
             f"({counts['failed']} failed, last good canvases kept){'; previews in ' + str(output.run_dir) if output and output.run_dir else ''}"
             if output else "rendered nothing (--no-render)")
    say(f"stagectl run: {why} after {counts['frames']} frames ({counts['late']} late, {counts['dropped']} dropped"
        f"{'; ' + no_pose if no_pose else ''}); {drawn}; no canvas was presented on a GPU output "
        "(windows are not implemented yet).")
    return 0


def _start_primary(args, stage, say):
    """The cluster primary for --cluster (None without it): binds, starts its service thread, says where."""
    if args.cluster is None:
        return None
    from stagectl.errors import UsageError
    from stagectl.sync.cluster import Primary, parse_primary_address

    if not args.cluster_timeout > 0:
        raise UsageError(f"--cluster-timeout: expected a positive number of frames, got {args.cluster_timeout:g}")
    try:
        host, state_port, sync_port = parse_primary_address(args.cluster)
    except ValueError as exc:
        raise UsageError(f"--cluster: {exc}") from None
    rate = stage.frame_rate
    primary = Primary(rate, bind=host, state_port=state_port, sync_port=sync_port,
                      timeout_ns=rate.frames_to_ns(args.cluster_timeout)).start()
    say(f"stagectl run: cluster primary: frame states on {host}:{primary.state_port}, sync on "
        f"{host}:{primary.sync_port}, swap barrier timeout {primary.timeout_ns / 1e6:.1f} ms; render nodes: "
        f"stagectl node {args.stage} --name N --primary {primary.address}")
    return primary


def _start_simulators(stage, rigs, receivers, wait_s, stop, say) -> list[Any]:
    """Start the simulator for every source that names a move and stays silent for ``wait_s``."""
    from stagectl.tracking.sender import Sender
    from stagectl.tracking.simulator import Simulator

    simulated = [s for s in stage.tracking if s.simulate and any(r.source is s for r in rigs.values())]
    deadline = time.monotonic() + wait_s
    while simulated and time.monotonic() < deadline and not stop.is_set():
        if all(receivers[s.name].state(time.monotonic_ns()) == "live" for s in simulated):
            break
        time.sleep(0.02)
    started = []
    for s in simulated:
        if receivers[s.name].state(time.monotonic_ns()) == "live":
            say(f"stagectl run: tracker {s.name} is sending: the simulator stays off")
            continue
        host, port = _simulator_target(s, receivers[s.name].port)
        cams = [r.camera.name for r in rigs.values() if r.source is s]
        sim = Simulator(s.simulate, s.protocol, stage.frame_rate,
                        sender=Sender(s.protocol, host, port, osc_camera=cams[0]),
                        camera_id=s.camera_id if s.camera_id is not None and s.protocol == "freed" else 1,
                        source_number=s.camera_id if s.protocol == "opentrackio" and s.camera_id else 1,
                        osc_camera=cams[0], profile=s.encoder_profile, keep=16)
        started.append(sim.start())
        say(f"stagectl run: no tracker on {s.name} after {wait_s:g} s: the simulator plays the "
            f"'{s.simulate}' move as {s.protocol} packets to {host}:{port} (real UDP)")
    return started


class _Output:
    """Headless rendering of every canvas, and the PNG previews."""

    def __init__(self, stage, ctx, renderer, run_dir, preview_every_s, sinks=None) -> None:
        self.stage = stage
        self.ctx = ctx
        self.renderer = renderer
        self.run_dir = run_dir
        self.preview_every_ns = int(preview_every_s * 1e9) if preview_every_s else 0
        self.next_preview_ns = 0
        self.sinks = sinks or {}  # output key -> SinkWriter
        self.frame = 0

    @classmethod
    def open(cls, stage, args, say) -> _Output:
        from pathlib import Path

        from stagectl.errors import StageError
        from stagectl.render.gl.context import create_context
        from stagectl.render.renderer import StageRenderer

        run_dir = None
        if args.preview_every:
            run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StageError(f"--run-dir: cannot create {run_dir}: {exc}") from None
        ctx = create_context("egl")
        try:
            renderer = StageRenderer(stage, ctx)
        except BaseException:
            ctx.release()
            raise
        say(f"stagectl run: rendering headless on {ctx.info.summary()}; "
            + (f"previews every {args.preview_every:g} s in {run_dir}" if run_dir else "no previews"))
        sinks = {}
        if args.sink:
            from stagectl.render.sink import SinkWriter, sink_name

            for L in renderer.layouts:
                name = sink_name(stage.name, L.key)
                sinks[L.key] = SinkWriter(name, L.canvas[0], L.canvas[1], slots=3, replace=True)
                say(f"stagectl run: output {L.key} ({L.canvas[0]} x {L.canvas[1]} RGBA) -> shared memory {name!r}")
        return cls(stage, ctx, renderer, run_dir, args.preview_every, sinks)

    def present(self, frame: int, now_ns: int) -> None:
        """At the frame edge: headless, presenting means publishing the canvases (shared-memory sinks every
        frame, previews when due)."""
        if self.sinks:
            canvases = self.renderer.canvases()
            for key, writer in self.sinks.items():
                writer.write(frame, now_ns, canvases[key])
        if self.run_dir is not None and now_ns >= self.next_preview_ns:
            self._write_previews()
            self.next_preview_ns = now_ns + self.preview_every_ns

    def _write_previews(self) -> None:
        import cv2

        for key, img in self.renderer.canvases().items():
            path = self.run_dir / ("preview_" + key.replace("/", "_") + ".png")
            cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGBA2BGR))

    def close(self) -> None:
        for writer in self.sinks.values():
            writer.close(unlink=True)
        self.sinks = {}
        try:
            self.renderer.release()
        finally:
            self.ctx.release()


def _loop(args, stage, rigs, planner, output, receivers, stop, say, primary=None) -> dict[str, int]:
    """The genlock-aligned, late-latching frame loop (stagectl.sync.frameloop); returns frame counters."""
    import numpy as np

    from stagectl.render.plan import CameraState, LensValues, PlanError
    from stagectl.sync.cluster import FrameState
    from stagectl.sync.frameloop import FrameLoop
    from stagectl.sync.timebase import Clock, Timecode

    rate = stage.frame_rate
    clock = Clock.SYSTEM if stage.sync.clock == "system" else Clock.MONOTONIC
    loop = FrameLoop(rate, clock=clock, phase_offset_ns=stage.sync.phase_offset_ns)
    interval_ns = int(args.status_interval * 1e9)
    counts = {"rendered": 0, "failed": 0}
    last = {"plan": None, "status_at": time.monotonic_ns() + interval_ns}

    def latch(k: int, edge_ns: int) -> None:
        # the timelines run on the monotonic clock (arrival stamps): evaluate at this edge's instant there
        t_query = edge_ns if clock is Clock.MONOTONIC else time.monotonic_ns() + (edge_ns - clock.now_ns())
        states = [s for rig in rigs.values() if (s := _camera_state(rig, t_query, CameraState, LensValues)) is not None]
        if primary is not None:  # the nodes render frame k while we do
            primary.publish(FrameState.make(k, rate, edge_ns, clock=clock, epoch_ns=loop.epoch_ns, cameras=states))
        try:
            plan = planner.plan(states, frame=k)
        except PlanError as exc:
            counts["failed"] += 1
            say(f"stagectl run: frame {k}: no plan: {exc}")
            if primary is not None:
                primary.barrier(k)
            return
        last["plan"] = plan
        if output is not None:
            result = output.renderer.render_frame(plan)
            counts["rendered" if result.ok else "failed"] += 1
            if not result.ok:
                say(f"stagectl run: frame {k}: render failed in {result.failed_pass}: {result.error} "
                    "(the outputs keep the last good frame)")
        if primary is not None:  # swap barrier: every node has frame k before anyone presents it
            primary.barrier(k)

    def present(k: int, edge_ns: int) -> None:
        now = time.monotonic_ns()
        if output is not None:
            output.present(k, now)
        if now >= last["status_at"]:
            last["status_at"] += interval_ns
            t = loop.telemetry(last=max(1, int(args.status_interval * rate.fps)))
            parts = [_status(name, rig, receivers[rig.source.name], last["plan"], stage, now) for name, rig in rigs.items()]
            c = loop.counters
            say(f"[{Timecode.from_frame(k, rate)}] frame {k}: " + " | ".join(parts)
                + f" | {'render' if output is not None else 'maths'} median {np.median(t['render_ns']) / 1e6:.1f} ms"
                + f", latch lead {loop.lead_ns / 1e6:.1f} ms, phase error median {np.median(t['phase_error_ns']) / 1e3:.0f} us"
                + f" | failed {counts['failed']}, late {c.late}, dropped {c.dropped}"
                + (f" | {primary.status().summary()}" if primary is not None else ""))

    duration_ns = None if args.duration is None else int(args.duration * 1e9)
    c = loop.run(latch, present, stop=stop, duration_ns=duration_ns)
    if loop.last_error is not None:
        say(f"stagectl run: {c.latch_errors} frame(s) raised; last error: {loop.last_error!r}")
    return {"frames": c.frames, "late": c.late, "dropped": c.dropped, "rendered": counts["rendered"],
            "failed": counts["failed"] + c.latch_errors}


def _camera_state(rig: _Rig, edge_ns: int, CameraState, LensValues):
    """The camera's state at the frame edge from its timeline and lens file, or None without a pose."""
    st = rig.timeline.pose_at(edge_ns)
    rig.state = st
    if not st.ok:
        rig.frames_without_pose += 1
        return None
    T = st.matrix()
    T_stage_camera = T @ rig.T_body_camera if st.pose_frame == "body" else T
    zoom = st.zoom if math.isfinite(st.zoom) else 0.0
    focus = st.focus if math.isfinite(st.focus) else 0.0
    if rig.lens_table is not None:
        f_mm, px, py, _, _, _, _, _, pupil, _ = rig.lens_table.values(zoom, focus).tolist()
        source = "lens file"
    else:
        f_mm = st.focal_length_mm if math.isfinite(st.focal_length_mm) else DEFAULT_FOCAL_MM
        px = py = 0.0
        pupil = st.entrance_pupil_offset_m if math.isfinite(st.entrance_pupil_offset_m) else 0.0
        source = "tracker" if math.isfinite(st.focal_length_mm) else "default"
    rig.focal_mm = f_mm
    cam = rig.camera
    sw, sh = float(cam.sensor_mm[0]), float(cam.sensor_mm[1])
    overscan = None
    if rig.adaptive is not None:
        overscan = rig.adaptive.update(T_stage_camera, edge_ns, math.atan(sw / (2.0 * f_mm)),
                                       math.atan(sh / (2.0 * f_mm)))
    rig.overscan = overscan
    return CameraState(cam.name, T_stage_camera, LensValues(f_mm, (px, py), pupil, source, zoom, focus),
                       (sw, sh), overscan)


def _status(name: str, rig: _Rig, receiver, plan, stage, now_ns: int) -> str:
    stats = receiver.stats(now_ns)
    state = receiver.state(now_ns)
    st = rig.state
    if st is None or not st.ok:
        return f"{name}: tracking {state}, no pose yet"
    x, y, z = st.position
    inner = next((p for p in plan.inner if p.camera == name), None) if plan is not None else None
    covered = ("inner frustum covers " + " ".join(f"{w.name} {int(c.sum())}" for w, c in zip(stage.walls, inner.covered))
               + " cabinets") if inner is not None else "no inner frustum"
    age = f"{st.age_ns / 1e6:+.1f} ms" if st.age_ns is not None else "n/a"
    ov = (f"; overscan {rig.overscan[0]:.0f}/{rig.overscan[2]:.0f} % (h/v, adaptive)"
          if rig.overscan is not None else "")
    return (f"{name}: tracking {state} {stats.packet_rate_hz:.1f} Hz, sample age {age} ({st.status}); at "
            f"({x:+.2f}, {y:+.2f}, {z:+.2f}) m pan {st.pan:+.1f} tilt {st.tilt:+.1f}, {rig.focal_mm:.1f} mm; "
            f"{covered}{ov}")


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace()))
