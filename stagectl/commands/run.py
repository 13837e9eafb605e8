"""Run a stage.

What runs today:
  * the stage and its lens files are validated and the Numba kernels compiled before the first frame;
  * every tracking source gets a real UDP receiver (FreeD, OpenTrackIO, OSC) feeding the timelines of the
    cameras that use it (the console can switch a camera to another source); a source with `simulate:` in the stage file that stays silent for --wait-tracker seconds
    is fed by the built-in simulator over real loopback UDP instead (say --no-simulator to forbid it);
  * every frame, paced on the stage's frame rate, each camera's pose is read from its timeline at the frame
    edge (with the source's tracking delay), the lens file turns the zoom/focus encoders into focal length,
    principal point and entrance pupil, the frame plan runs the frustum maths (which cabinets the inner
    frustum covers), and the renderer draws the inner frustum, the outer environment and every output canvas
    headless (EGL; Mesa llvmpipe without a GPU). A frame that fails to render keeps the last good canvases
    and is counted. The loop waits for the latch point and the edge at real-time priority (SCHED_FIFO, when
    permitted; --no-realtime) and does the frame's work at normal priority;
  * every --preview-every seconds the canvases are written as PNG previews into --run-dir (one file per
    output, overwritten), so an operator without a display can look at what the wall shows; with --sink every
    canvas is also published each frame into a shared-memory ring other programs can read;
  * a status line per second shows the frame, timecode, each camera's tracking state (live, stale, lost or
    waiting, and when not live why: no packets, packets from other cameras, bad packets), the rate of accepted
    samples, the bad packets so far, sample age, pose and lens, the covered cabinets, render time, failed and
    late frames; the summary at the end counts each source's samples, bad packets by reason and packets from
    other cameras.

The stage console (--console off to leave it out; docs/console.md) starts with the stage: a web console (its
URL and login token are printed), OSC commands from the stage's allow-list, and ZeroMQ for `stagectl ctl` when
`stagectl keys` made keys. Operator commands take effect at a frame boundary and are acknowledged with that
frame's number; the operator state (light cards, colour, patterns, blackouts, camera settings) is written to
the state file before each acknowledgement and restored at the next start.

With --cluster this process is the cluster primary: it publishes every frame's state (frame, timecode, camera
states, the operator's flags and, when they change, the operator's features: cards, grades, patterns) over ZeroMQ to `stagectl node` processes and meets them at a swap barrier before presenting; a node
that misses it by --cluster-timeout frames is dropped and rejoins by itself.

With --windows every output canvas is also presented in a GLFW window of its own (windowed, or fullscreen on
a monitor per output; docs/outputs.md); Esc or closing a window closes that window only. --genlock vsync (or
sync.genlock: vsync) takes the frame edges from the first window's vsync and says whether they are locked.
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
    p.add_argument("--no-realtime", action="store_true",
                   help="keep the frame loop at normal priority (default: SCHED_FIFO while it waits for the latch "
                        "point and the edge and presents, when permitted; the frame's work runs at normal "
                        "priority either way)")
    p.add_argument("--console", choices=("on", "off"), default="on",
                   help="the stage console (default on): the web console (URL and login token printed at start), "
                        "OSC commands from the stage's allow-list, ZeroMQ for `stagectl ctl` when keys exist "
                        "(`stagectl keys STAGE.yaml`); docs/console.md")
    p.add_argument("--web-port", type=int, default=None, metavar="PORT",
                   help="web console port (default: the stage's console.web.port; 0 = any free port)")
    p.add_argument("--osc-port", type=int, default=None, metavar="PORT",
                   help="OSC command port (default: the stage's console.osc.port; 0 = any free port)")
    p.add_argument("--zmq-port", type=int, default=None, metavar="PORT",
                   help="ZeroMQ command port, the state stream on PORT+1 (default: the stage's console.zmq; "
                        "0 = any free ports)")
    p.add_argument("--state-file", default=None, metavar="FILE",
                   help="operator state file (default: the stage's console.state_file, "
                        "<stage>.operator.json next to the stage file)")
    p.add_argument("--cluster-timeout", type=float, default=2.0, metavar="FRAMES",
                   help="drop a node from the swap barrier when it is this many frames late (default 2)")
    p.add_argument("--windows", nargs="?", const="windowed", choices=("windowed", "fullscreen"), default=None,
                   help="present every output canvas in a GLFW window: 'windowed' (the default; resizable, "
                        "the canvas size scaled down to fit the screen) or 'fullscreen' (a monitor per output, "
                        "in monitor order unless --monitor says); needs a display")
    p.add_argument("--monitor", action="append", default=[], metavar="OUTPUT=MONITOR",
                   help="with --windows fullscreen: show OUTPUT (processor/output) on MONITOR (GLFW's name; "
                        "exact, case-insensitive or a unique prefix); repeatable")
    p.add_argument("--genlock", choices=("internal", "vsync"), default=None,
                   help="where frame edges come from (default: the stage's sync.genlock): the internal "
                        "clock, or the vsync of the first output window (needs --windows)")


@dataclass
class _Rig:
    """Everything one camera needs per frame."""

    camera: Any
    source: Any
    timeline: Any
    lens_table: Any
    T_body_camera: Any
    T_stage_tracking: Any  # the stage's wall registration (4x4): tracking -> stage
    state: Any = None  # the timeline's answer this frame
    focal_mm: float = DEFAULT_FOCAL_MM
    frames_without_pose: int = 0
    adaptive: Any = None  # AdaptiveOverscan, when the stage asks for it
    overscan: Any = None  # the adaptive overscan this frame (left, right, bottom, top percent), None: off
    base_overscan: Any = (0.0, 0.0, 0.0, 0.0)  # the stage's render.inner.overscan_percent
    distortion: Any = None  # the lens's distortion overscan this frame (percent per side), None: no lens file
    soft_edge: float | None = None  # the operator's soft edge for this camera (None: the stage's)


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
    args.genlock = _Output.choose_genlock(args, stage, say)  # checks --windows/--genlock before any work
    say(f'stagectl run: stage "{stage.name}" ({args.stage}) is valid: {len(stage.walls)} walls, '
        f"{sum(w.cabinet_count for w in stage.walls)} cabinets, {len(stage.outputs())} outputs, {rate.label} fps")
    if not stage.cameras:
        say("stagectl run: the stage has no cameras; nothing to compute.")
        return 0

    import numpy as np

    from stagectl.render.frustum import warmup as warm_frustum
    from stagectl.render.plan import FramePlanner
    from stagectl.tracking.receiver import Receiver, ReceiverGroup, TransportError
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
            # dejittered: samples at their own time where they carry one; the camera's motion limits judge
            # samples and bound prediction (docs/stage-file.md, cameras[].motion_limits)
            timeline=Timeline(rate, delay_frames=src.delay_frames, name=cam.name, clock="dejittered",
                              motion_limits=cam.motion_limits),
            lens_table=cam.lens_file.table(cam.sensor_mm) if cam.lens_file else None,
            T_body_camera=np.ascontiguousarray(cam.T_body_camera),
            base_overscan=tuple(stage.render.inner.overscan_percent),
            T_stage_tracking=np.ascontiguousarray(stage.T_stage_tracking),
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
    from stagectl.console.live import TrackingRouter

    # every source gets a receiver (the console may switch a camera to another one); the router says which
    # camera timelines each source feeds
    router = TrackingRouter({n: r.source.name for n, r in rigs.items()}, {n: r.timeline for n, r in rigs.items()})
    receivers = ReceiverGroup([Receiver.from_source(s, router.sink(s.name), camera_names=list(rigs))
                               for s in stage.tracking])
    try:
        receivers.start()
    except (TransportError, OSError) as exc:
        if output is not None:
            output.close()
        # a TransportError already reads "SOURCE: cannot listen for ...: why"
        raise StageError(str(exc) if isinstance(exc, TransportError) else f"cannot listen for tracking: {exc}") \
            from None
    simulators: list[Any] = []
    signals = StopOnSignals().install()
    stop = signals.event
    primary = console = None
    try:
        primary = _start_primary(args, stage, say)
        console = _open_console(args, stage, say, rigs, receivers, router, planner, output)
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
        counts = _loop(args, stage, rigs, planner, output, receivers, stop, say, primary, console)
    finally:
        if console is not None:
            _close_console(console)
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
    drawn = (f"rendered {counts['rendered']} frames of {len(stage.outputs())} canvases "
             f"{'for the output windows' if output.presenter else 'headless'} "
             f"({counts['failed']} failed, last good canvases kept){'; previews in ' + str(output.run_dir) if output and output.run_dir else ''}"
             if output else "rendered nothing (--no-render)")
    shown = (output.presenter.summary() if output is not None and output.presenter is not None
             else "no canvas was presented on a GPU output (--windows presents them)")
    say(f"stagectl run: {why} after {counts['frames']} frames ({counts['late']} late, {counts['dropped']} dropped"
        f"{'; ' + no_pose if no_pose else ''}); {drawn}; {shown}; {counts['genlock']}"
        + (f"; {console.summary()}" if console is not None else "") + ".")
    say(_tracking_summary(receivers, time.monotonic_ns()))
    return 0


def _open_console(args, stage, say, rigs, receivers, router, planner, output):
    """The stage console (hub, web, OSC, ZeroMQ) with its effects on this run; None with --console off."""
    if args.console == "off":
        say("stagectl run: --console off: no operator console; the stage file's settings apply")
        return None
    from stagectl.console.live import LiveConsole, RunHandles, register_effects
    from stagectl.errors import UsageError

    ports = {}
    for name in ("web", "osc", "zmq"):
        value = getattr(args, f"{name}_port")
        if value is not None:
            if not 0 <= value <= 65535:
                raise UsageError(f"--{name}-port: expected 0..65535, got {value}")
            ports[name] = value
    console = LiveConsole(stage, say, ports=ports, state_path=args.state_file)
    handles = RunHandles(stage, rigs, receivers, router, planner, output)
    console.handles = handles
    register_effects(console.hub, handles, say)
    _apply_operator_state(console.hub.state, stage, rigs, router, handles, say)
    console.start()
    return console


def _apply_operator_state(state, stage, rigs, router, handles, say) -> None:
    """Put the restored operator state into the running stage (at start, on the thread that renders): each
    camera's settings into its rig, and the scene content when the operator chose another than the stage
    file's (the renderer was built with the stage file's)."""
    from stagectl.errors import StageError

    if state.content != str(stage.render.outer.content):
        from stagectl.console.live import show_content

        try:
            desc = show_content(handles, state.content)
            say(f"stagectl run: console: content {desc} (restored from the operator state)")
        except StageError as exc:
            say(f"stagectl run: console: the operator state's content cannot be shown ({exc}); the stage "
                f"file's content {stage.render.outer.content} is shown until content.select")
    for name, rig in rigs.items():
        try:
            cs = state.camera(name)
        except KeyError:
            continue
        if cs.tracking != rig.source.name:
            rig.source = stage.tracking_source(cs.tracking)
            router.assign(name, cs.tracking)
        rig.timeline.set_delay_frames(cs.delay_frames)
        rig.timeline.set_smoothing(cs.smoothing_filter())
        rig.base_overscan = tuple(cs.overscan_percent)
        if rig.adaptive is not None:
            rig.adaptive.base_pct = rig.base_overscan
        rig.soft_edge = float(cs.soft_edge)


def _close_console(console) -> None:
    console.handles.close_takes()  # a take being recorded is closed (everything appended is kept)
    console.close()


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
                      timeout_ns=rate.frames_to_ns(args.cluster_timeout),
                      realtime_priority=None if args.no_realtime else 10).start()
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
    """Rendering of every canvas (headless, or in the GLFW context of the output windows), the windows, the
    PNG previews and the shared-memory sinks."""

    def __init__(self, stage, ctx, renderer, run_dir, preview_every_s, sinks=None, presenter=None) -> None:
        self.stage = stage
        self.ctx = ctx
        self.renderer = renderer
        self.run_dir = run_dir
        self.preview_every_ns = int(preview_every_s * 1e9) if preview_every_s else 0
        self.next_preview_ns = 0
        self.sinks = sinks or {}  # output key -> SinkWriter
        self.presenter = presenter  # WindowPresenter with --windows
        self.probe = None  # VsyncProbe with genlock vsync
        self.frame = 0

    @staticmethod
    def choose_genlock(args, stage, say) -> str:
        """Check --windows, --monitor and --genlock before any work; the genlock source to run."""
        import os

        from stagectl.errors import UsageError

        if args.windows and args.no_render:
            raise UsageError("--windows needs rendering: drop --no-render")
        if args.monitor and args.windows != "fullscreen":
            raise UsageError("--monitor places fullscreen windows: use it with --windows fullscreen")
        if args.windows and os.name == "posix" and sys.platform != "darwin" and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UsageError("--windows needs a display (DISPLAY is not set); run headless without --windows")
        if args.genlock == "vsync" and not args.windows:
            raise UsageError("--genlock vsync needs --windows: the first output window's swap is the vsync")
        genlock = args.genlock or ("vsync" if stage.sync.genlock == "vsync" else "internal")
        if genlock == "vsync" and not args.windows:
            say("stagectl run: the stage asks for genlock vsync, which needs output windows (--windows): "
                "frame edges come from the internal clock")
            genlock = "internal"
        return genlock

    @classmethod
    def open(cls, stage, args, say) -> _Output:
        from pathlib import Path

        from stagectl.errors import StageError
        from stagectl.render.gl.context import create_context
        from stagectl.render.gl.errors import ContextError
        from stagectl.render.renderer import StageRenderer

        run_dir = None
        if args.preview_every:
            run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StageError(f"--run-dir: cannot create {run_dir}: {exc}") from None
        presenter = None
        if args.windows:
            from stagectl.render.canvas import canvas_layouts
            from stagectl.render.present import (WindowPresenter, open_window_context,
                                                 parse_monitor_assignments)

            outputs = [(L.key, tuple(L.canvas)) for L in canvas_layouts(stage)]
            assign = parse_monitor_assignments(args.monitor, [k for k, _ in outputs])
            try:
                ctx = open_window_context(outputs, args.windows, assign, vsync=args.genlock == "vsync")
            except ContextError as exc:
                raise StageError(f"--windows: {exc}") from None
        else:
            ctx = create_context("egl")
        try:  # with windows and no sink nothing needs the canvases every frame: previews read them on demand
            readback = "none" if args.windows and not args.sink else "sync"
            renderer = StageRenderer(stage, ctx, readback=readback)
            if args.windows:
                presenter = WindowPresenter(ctx, renderer, mode=args.windows, vsync=args.genlock == "vsync",
                                            say=lambda text: say("stagectl run: " + text))
        except BaseException:
            ctx.release()
            raise
        where = f"for {len(presenter.windows)} output windows" if presenter else "headless"
        say(f"stagectl run: rendering {where} on {ctx.info.summary()}; "
            + (f"previews every {args.preview_every:g} s in {run_dir}" if run_dir else "no previews"))
        out = cls(stage, ctx, renderer, run_dir, args.preview_every, presenter=presenter)
        if presenter is not None:
            say(f"stagectl run: windows ({args.windows}): {presenter.describe()}; Esc or closing a window "
                "closes that window only")
            if presenter.vsync:
                out.probe = presenter.probe_vsync(stage.frame_rate.period_ns)
                say(f"stagectl run: vsync: {out.probe.text}; {presenter.swap_group}")
        if args.sink:
            from stagectl.render.sink import SinkWriter, sink_name

            for L in renderer.layouts:
                name = sink_name(stage.name, L.key)
                out.sinks[L.key] = SinkWriter(name, L.canvas[0], L.canvas[1], slots=3, replace=True)
                say(f"stagectl run: output {L.key} ({L.canvas[0]} x {L.canvas[1]} RGBA) -> shared memory {name!r}")
        return out

    def genlock_source(self, rate, clock):
        """The frame loop's edge source for genlock vsync (None: the internal clock); the presenter then
        stamps its swaps on ``clock``."""
        if self.presenter is None or not self.presenter.vsync:
            return None
        from stagectl.sync.frameloop import VsyncGenlock

        self.presenter.now_ns = clock.now_ns
        return VsyncGenlock(rate, clock, paced=self.probe.paced, why_not=self.probe.short)

    def present(self, frame: int, now_ns: int) -> int | None:
        """At the frame edge: show the canvases in the windows (returns the vsync swap's return instant), then
        publish them into the shared-memory sinks. (PNG previews: :meth:`previews`, after the edge.)"""
        shown = self.presenter.present() if self.presenter is not None else None
        if self.sinks:
            canvases = self.renderer.canvases()
            for key, writer in self.sinks.items():
                writer.write(frame, now_ns, canvases[key])
        return shown

    def previews(self, now_ns: int) -> None:
        """Write the PNG previews when due (slow: called after the edge, at normal priority)."""
        if self.run_dir is not None and now_ns >= self.next_preview_ns:
            self._write_previews()
            self.next_preview_ns = now_ns + self.preview_every_ns

    def replace_stage(self, stage) -> None:
        """A reloaded stage with the same outputs (the console's stage.reload): a new renderer in the same
        context, built before the old one is released (a StageError leaves the old one running)."""
        from stagectl.render.renderer import StageRenderer

        new = StageRenderer(stage, self.ctx, readback=self.renderer.readback_mode)
        old, self.renderer = self.renderer, new
        if self.presenter is not None:
            self.presenter.renderer = new
        old.release()
        self.stage = stage

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
            if self.presenter is not None:
                self.presenter.close()
            self.renderer.release()
        finally:
            self.ctx.release()


def _loop(args, stage, rigs, planner, output, receivers, stop, say, primary=None, console=None) -> dict[str, int]:
    """The genlock-aligned, late-latching frame loop (stagectl.sync.frameloop); returns frame counters."""
    import numpy as np

    from stagectl.render.plan import CameraState, LensValues, PlanError
    from stagectl.sync.cluster import NO_FLAGS, FrameState
    from stagectl.sync.frameloop import FrameLoop
    from stagectl.sync.timebase import Clock, Timecode

    rate = stage.frame_rate
    clock = Clock.SYSTEM if stage.sync.clock == "system" else Clock.MONOTONIC
    genlock = output.genlock_source(rate, clock) if output is not None else None
    loop = FrameLoop(rate, clock=clock, phase_offset_ns=stage.sync.phase_offset_ns, genlock=genlock,
                     realtime_priority=None if args.no_realtime else 10)
    interval_ns = int(args.status_interval * 1e9)
    counts = {"rendered": 0, "failed": 0}
    last = {"plan": None, "status_at": time.monotonic_ns() + interval_ns}

    def latch(k: int, edge_ns: int) -> None:
        if console is not None:  # operator commands take effect at this frame boundary
            console.apply(k)
        # the timelines run on the monotonic clock (arrival stamps): evaluate at this edge's instant there
        t_query = edge_ns if clock is Clock.MONOTONIC else time.monotonic_ns() + (edge_ns - clock.now_ns())
        states = [s for rig in rigs.values() if (s := _camera_state(rig, t_query, CameraState, LensValues)) is not None]
        if primary is not None:  # the nodes render frame k while we do, with the operator's flags and features
            primary.publish(FrameState.make(k, rate, edge_ns, clock=clock, epoch_ns=loop.epoch_ns, cameras=states,
                                            flags=console.hub.flags if console is not None else NO_FLAGS),
                            features=console.hub.features if console is not None else None)
        try:
            if console is not None:
                plan = planner.plan(states, flags=console.hub.flags, frame=k, features=console.hub.features)
            else:
                plan = planner.plan(states, frame=k)
        except PlanError as exc:
            counts["failed"] += 1
            counts["last_ok"] = False  # the outputs keep the last good frame
            say(f"stagectl run: frame {k}: no plan: {exc}")
            if primary is not None:
                primary.barrier(k)
            return
        last["plan"] = plan
        if output is not None:
            result = output.renderer.render_frame(plan)
            counts["rendered" if result.ok else "failed"] += 1
            counts["last_ok"] = result.ok
            if not result.ok:
                say(f"stagectl run: frame {k}: render failed in {result.failed_pass}: {result.error} "
                    "(the outputs keep the last good frame)")
        if primary is not None:  # swap barrier: every node has frame k before anyone presents it
            primary.barrier(k)

    def present(k: int, edge_ns: int) -> int | None:
        now = time.monotonic_ns()
        shown = output.present(k, now) if output is not None else None
        loop.priority.lower()  # the edge is out: status, previews and the console at normal priority
        if output is not None:
            output.previews(now)
        if now >= last["status_at"]:
            last["status_at"] += interval_ns
            t = loop.telemetry(last=max(1, int(args.status_interval * rate.fps)))
            parts = [_status(name, rig, receivers[rig.source.name], last["plan"], stage, now) for name, rig in rigs.items()]
            c = loop.counters
            say(f"[{Timecode.from_frame(k, rate)}] frame {k}: " + " | ".join(parts)
                + f" | {'render' if output is not None else 'maths'} median {np.median(t['render_ns']) / 1e6:.1f} ms"
                + f", latch lead {loop.lead_ns / 1e6:.1f} ms, phase error median {np.median(t['phase_error_ns']) / 1e3:.0f} us"
                + f" | failed {counts['failed']}, late {c.late}, dropped {c.dropped}"
                + (f" | {primary.status().summary()}" if primary is not None else "")
                + f" | {loop.genlock_state().summary()}"
                + (f", {output.presenter.status()}" if output is not None and output.presenter else ""))
        if console is not None:
            console.publish(now, lambda: _console_status(k, rate, loop, rigs, receivers, last["plan"], counts,
                                                         primary, now),
                            output.renderer.canvases if output is not None else None)
        return shown

    duration_ns = None if args.duration is None else int(args.duration * 1e9)
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


def _camera_state(rig: _Rig, edge_ns: int, CameraState, LensValues):
    """The camera's state at the frame edge from its timeline and lens file, or None without a pose."""
    st = rig.timeline.pose_at(edge_ns)
    rig.state = st
    if not st.ok:
        rig.frames_without_pose += 1
        return None
    T = st.matrix()
    T_stage_camera = rig.T_stage_tracking @ (T @ rig.T_body_camera if st.pose_frame == "body" else T)
    zoom = st.zoom if math.isfinite(st.zoom) else 0.0
    focus = st.focus if math.isfinite(st.focus) else 0.0
    distortion = None
    if rig.lens_table is not None:
        f_mm, px, py, _, _, _, _, _, pupil, _ = rig.lens_table.values(zoom, focus).tolist()
        source = "lens file"
        distortion = rig.lens_table.overscan(zoom, focus).percent()
    else:
        f_mm = st.focal_length_mm if math.isfinite(st.focal_length_mm) else DEFAULT_FOCAL_MM
        px = py = 0.0
        pupil = st.entrance_pupil_offset_m if math.isfinite(st.entrance_pupil_offset_m) else 0.0
        source = "tracker" if math.isfinite(st.focal_length_mm) else "default"
    rig.focal_mm = f_mm
    cam = rig.camera
    sw, sh = float(cam.sensor_mm[0]), float(cam.sensor_mm[1])
    adaptive = None
    if rig.adaptive is not None:
        adaptive = rig.adaptive.update(T_stage_camera, edge_ns, math.atan(sw / (2.0 * f_mm)),
                                       math.atan(sh / (2.0 * f_mm)))
    rig.overscan = adaptive
    rig.distortion = distortion
    overscan = adaptive if adaptive is not None else rig.base_overscan
    if distortion is not None:  # the inner frustum covers the lens's distorted frame, margin on top
        from stagectl.render.plan import with_distortion_overscan

        overscan = with_distortion_overscan(overscan, distortion)
    return CameraState(cam.name, T_stage_camera, LensValues(f_mm, (px, py), pupil, source, zoom, focus),
                       (sw, sh), overscan, rig.soft_edge)


def _tracking_summary(receivers, now_ns: int) -> str:
    """The end-of-run line about every tracking source: samples accepted, bad packets by reason, packets from
    other cameras, and the state it ended in."""
    parts = []
    for r in receivers:
        st = r.stats(now_ns)
        bad = ", ".join(f"{k} {v}" for k, v in st.bad.items() if v)
        parts.append(f"{r.name}: {st.samples} samples, {st.bad_total} bad packets{' (' + bad + ')' if bad else ''}, "
                     f"{st.other_source} from other cameras, {st.state} at the end")
    return "stagectl run: tracking: " + ("; ".join(parts) if parts else "no sources") + "."


def _tracking_words(stats) -> str:
    """``live 24.0 Hz, bad 0`` / ``lost (no packets arriving: ...) 0.0 Hz, bad 3``: the source's state, why it
    is not live, the rate of accepted samples over the last second and the bad packets so far."""
    why = f" ({stats.diagnosis})" if stats.diagnosis else ""
    return f"{stats.state}{why} {stats.sample_rate_hz:.1f} Hz, bad {stats.bad_total}"


def _status(name: str, rig: _Rig, receiver, plan, stage, now_ns: int) -> str:
    stats = receiver.stats(now_ns)
    st = rig.state
    if st is None or not st.ok:
        return f"{name}: tracking {_tracking_words(stats)}, no pose yet"
    x, y, z = st.position
    inner = next((p for p in plan.inner if p.camera == name), None) if plan is not None else None
    covered = ("inner frustum covers " + " ".join(f"{w.name} {int(c.sum())}" for w, c in zip(stage.walls, inner.covered))
               + " cabinets") if inner is not None else "no inner frustum"
    age = f"{st.age_ns / 1e6:+.1f} ms" if st.age_ns is not None else "n/a"
    ov = (f"; overscan {rig.overscan[0]:.0f}/{rig.overscan[2]:.0f} % (h/v, adaptive)"
          if rig.overscan is not None else "")
    if rig.distortion is not None:  # the share of the overscan that covers the lens's distorted frame
        d = f"{rig.distortion[0]:.1f}/{rig.distortion[2]:.1f} % (h/v) for lens distortion"
        ov = f"{ov} + {d}" if ov else f"; overscan {rig.base_overscan[0]:g}/{rig.base_overscan[2]:g} % + {d}"
    return (f"{name}: tracking {_tracking_words(stats)}, sample age {age} ({st.status}); at "
            f"({x:+.2f}, {y:+.2f}, {z:+.2f}) m pan {st.pan:+.1f} tilt {st.tilt:+.1f}, {rig.focal_mm:.1f} mm; "
            f"{covered}{ov}")



def _outputs_status(plan, counts) -> dict:
    """Per output key: ``black``, and ``frozen``: why its picture does not follow the stage, or None --
    ``"render failed: the last good frame is kept"`` when the last frame failed to render, ``"camera cam-a
    frozen"`` when it shows an inner frustum the operator froze."""
    out = {}
    if plan is None:
        return out
    for o in plan.outputs:
        why = None
        if counts.get("last_ok") is False:
            why = "render failed: the last good frame is kept"
        elif o.composes:
            frozen = [plan.inner[i].camera for i in o.layers if i < len(plan.inner) and plan.inner[i].frozen]
            if frozen:
                why = "camera " + ", ".join(frozen) + " frozen"
        out[o.key] = {"black": bool(o.blackout), "frozen": why}
    return out


def _console_status(k, rate, loop, rigs, receivers, plan, counts, primary, now_ns) -> dict:
    """The live status the console publishes (docs/console.md, "status")."""
    import numpy as np

    from stagectl.console.live import frustum_corners
    from stagectl.sync.timebase import Timecode

    t = loop.telemetry(last=max(1, int(2 * rate.fps)))
    render_ms = t["render_ns"] / 1e6
    edges = t["edge_ns"]
    fps = (len(edges) - 1) / ((edges[-1] - edges[0]) / 1e9) if len(edges) > 2 and edges[-1] > edges[0] else 0.0
    cams = {}
    for name, rig in rigs.items():
        rec = receivers[rig.source.name]
        st = rig.state
        rs = rec.stats(now_ns)
        # the rate counts accepted samples only; bad packets and packets from other cameras are counted apart
        entry = {"tracking": rs.state, "tracking_why": rs.diagnosis, "source": rig.source.name,
                 "rate_hz": round(rs.sample_rate_hz, 1), "bad": rs.bad_total,
                 "bad_by_reason": {k: v for k, v in rs.bad.items() if v}, "other_source": rs.other_source,
                 "frozen": False}
        if st is not None and st.ok:
            entry.update({
                "sample_age_ms": None if st.age_ns is None else round(st.age_ns / 1e6, 2),
                "position_m": [round(float(v), 4) for v in st.position],
                "pan_deg": round(st.pan, 3), "tilt_deg": round(st.tilt, 3), "roll_deg": round(st.roll, 3),
                "focal_mm": round(rig.focal_mm, 2),
            })
            inner = next((p for p in plan.inner if p.camera == name), None) if plan is not None else None
            if inner is not None:
                entry["frozen"] = bool(inner.frozen)  # the operator's freeze: the wall keeps this frustum's image
                entry["overscan_percent"] = [round(v, 2) for v in inner.overscan_pct]
                entry["soft_edge"] = round(float(inner.soft_edge), 4)
                entry["frustum"] = frustum_corners(inner.VP, inner.pupil)
                entry["position_m"] = [round(float(v), 4) for v in inner.pupil]
        cams[name] = entry
    c = loop.counters
    g = loop.genlock_state()
    return {
        "frame": k, "timecode": str(Timecode.from_frame(k, rate)), "rate": rate.label, "fps": round(fps, 2),
        "phase_error_us": round(float(np.median(t["phase_error_ns"])) / 1e3, 1) if len(edges) else None,
        "late": c.late, "dropped": c.dropped, "failed": counts["failed"] + c.latch_errors,
        "render_ms": round(float(np.median(render_ms)), 2) if len(render_ms) else None,
        "latch_lead_ms": round(loop.lead_ns / 1e6, 2),
        "genlock": {"source": g.source, "locked": g.locked, "detail": g.detail, "summary": g.summary()},
        "cameras": cams,
        "outputs": _outputs_status(plan, counts),
        "cluster": None if primary is None else {"summary": primary.status().summary()},
        "frame_times_ms": [round(float(v), 2) for v in render_ms[-48:]],
    }


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace()))
