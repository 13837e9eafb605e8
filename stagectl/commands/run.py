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
import sys
import time
from typing import Any

from stagectl.commands._signals import StopOnSignals

HELP = "run a stage: tracking input, timelines, frustum maths and headless rendering of every output canvas"

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
    p.add_argument("--follow-recording", default=None, metavar="SOURCE",
                   help="start and stop takes (record.start / record.stop) when this OpenTrackIO tracking source's "
                        "tracker.recording changes, slated from its tracker.slate (docs/takes.md)")
    p.add_argument("--cluster-timeout", type=float, default=2.0, metavar="FRAMES",
                   help="drop a node from the swap barrier when it is this many frames late (default 2)")
    add_window_arguments(p)
    p.add_argument("--genlock", choices=("internal", "vsync"), default=None,
                   help="where frame edges come from (default: the stage's sync.genlock): the internal "
                        "clock, or the vsync of the first output window (needs --windows)")


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    """--windows and --monitor (``stagectl run`` and ``stagectl node``)."""
    p.add_argument("--windows", nargs="?", const="windowed", choices=("windowed", "fullscreen"), default=None,
                   help="present every output canvas in a GLFW window: 'windowed' (the default; resizable, "
                        "the canvas size scaled down to fit the screen) or 'fullscreen' (a monitor per output, "
                        "in monitor order unless --monitor says); needs a display")
    p.add_argument("--monitor", action="append", default=[], metavar="OUTPUT=MONITOR",
                   help="with --windows fullscreen: show OUTPUT (processor/output) on MONITOR (GLFW's name; "
                        "exact, case-insensitive or a unique prefix); repeatable")


def _simulator_target(source, port: int) -> tuple[str, int]:
    """Where the simulator sends so that this source's receiver (listening on ``port``) gets it."""
    if source.multicast_group:
        return source.multicast_group, port
    host = "127.0.0.1" if source.bind in ("0.0.0.0", "") else source.bind
    return host, port


def main(args: argparse.Namespace) -> int:
    from stagectl.core.errors import StageError, UsageError
    from stagectl.stage import load_stage

    for name in ("duration", "status_interval", "wait_tracker", "preview_every"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name in ("duration", "status_interval") and value == 0)):
            raise UsageError(f"--{name.replace('_', '-')}: expected a positive number of seconds, got {value:g}")
    stage = load_stage(args.stage)
    rate = stage.frame_rate
    say = lambda text: print(text, flush=True)  # noqa: E731
    args.genlock = choose_genlock(args, stage, say)  # checks --windows/--genlock before any work
    say(f'stagectl run: stage "{stage.name}" ({args.stage}) is valid: {len(stage.walls)} walls, '
        f"{sum(w.cabinet_count for w in stage.walls)} cabinets, {len(stage.outputs())} outputs, {rate.label} fps")
    if not stage.cameras:
        say("stagectl run: the stage has no cameras; nothing to compute.")
        return 0

    from stagectl.render.frustum import warmup as warm_frustum
    from stagectl.runtime import DEFAULT_FOCAL_MM, StageRuntime, run_frames
    from stagectl.runtime.status import tracking_summary
    from stagectl.tracking.receiver import TransportError
    from stagectl.tracking.timeline import warmup as warm_timeline

    t0 = time.perf_counter()
    warm_frustum()
    warm_timeline()
    say(f"stagectl run: kernels ready in {time.perf_counter() - t0:.2f} s (compiled or loaded from cache)")

    runtime = StageRuntime.tracked(stage)
    adaptive = stage.render.inner.adaptive
    if adaptive is not None:
        say(f"stagectl run: adaptive overscan: covers {adaptive.latency_ms:g} ms of camera motion, at most "
            f"{adaptive.max_percent:g} % per side")
    output = runtime.output = _open_output(stage, args, say) if not args.no_render else None
    if output is None:
        say("stagectl run: --no-render: tracking and frustum maths only; nothing is drawn or sent to any output")
    # every source gets a receiver (the console may switch a camera to another one); the runtime's router says
    # which camera timelines each source feeds
    receivers = runtime.open_receivers()
    try:
        receivers.start()
    except (TransportError, OSError) as exc:
        if output is not None:
            output.close()
        # a TransportError already reads "SOURCE: cannot listen for ...: why"
        raise StageError(str(exc) if isinstance(exc, TransportError) else f"cannot listen for tracking: {exc}") \
            from None
    rigs = runtime.rigs
    simulators: list[Any] = []
    signals = StopOnSignals().install()
    stop = signals.event
    primary = console = None
    try:
        primary = _start_primary(args, stage, say)
        console = _open_console(args, runtime, say)
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
        counts = run_frames(runtime, stop=stop, say=say, status_interval_s=args.status_interval,
                            duration_s=args.duration, realtime_priority=None if args.no_realtime else 10,
                            primary=primary, console=console)
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
    say(tracking_summary(receivers, time.monotonic_ns()))
    return 0


def _open_console(args, runtime, say):
    """The stage console (hub, web, OSC, ZeroMQ) with its effects on this run; None with --console off."""
    if args.console == "off":
        if getattr(args, "follow_recording", None):
            from stagectl.core.errors import UsageError

            raise UsageError("--follow-recording starts takes through the console: not with --console off")
        say("stagectl run: --console off: no operator console; the stage file's settings apply")
        return None
    from stagectl.console.live import LiveConsole, RunHandles, register_effects, restore_operator_state
    from stagectl.core.errors import UsageError

    ports = {}
    for name in ("web", "osc", "zmq"):
        value = getattr(args, f"{name}_port")
        if value is not None:
            if not 0 <= value <= 65535:
                raise UsageError(f"--{name}-port: expected 0..65535, got {value}")
            ports[name] = value
    console = LiveConsole(runtime.stage, say, ports=ports, state_path=args.state_file)
    handles = RunHandles(runtime)
    console.handles = handles
    register_effects(console.hub, handles, say)
    restore_operator_state(console.hub.state, runtime, say)
    follow = getattr(args, "follow_recording", None)
    if follow is not None:
        from stagectl.tracking.receiver import normalise_protocol

        otio = [t.name for t in runtime.stage.tracking if normalise_protocol(t.protocol) == "opentrackio"]
        if follow not in otio:
            raise UsageError(f"--follow-recording: expected an OpenTrackIO tracking source of the stage "
                             f"({', '.join(otio) or 'none'}), got {follow!r}")
    console.start()
    if follow is not None:
        handles.follow(follow, console.hub, say)
    return console


def _close_console(console) -> None:
    console.handles.close_takes()  # a take being recorded is closed (everything appended is kept)
    console.close()


def _start_primary(args, stage, say):
    """The cluster primary for --cluster (None without it): binds, starts its service thread, says where."""
    if args.cluster is None:
        return None
    from stagectl.commands import option_value
    from stagectl.core.errors import UsageError
    from stagectl.sync.cluster import Primary, parse_primary_address

    if not args.cluster_timeout > 0:
        raise UsageError(f"--cluster-timeout: expected a positive number of frames, got {args.cluster_timeout:g}")
    host, state_port, sync_port = option_value("--cluster", parse_primary_address, args.cluster)
    rate = stage.frame_rate
    from stagectl.sync.zmq_security import cluster_server_keys, resolve_keys_dir

    keys_dir = resolve_keys_dir(stage.console.zmq, stage.path.parent)
    keys = cluster_server_keys(keys_dir)  # CURVE when the stage has node keys (docs/cluster.md)
    primary = Primary(rate, bind=host, state_port=state_port, sync_port=sync_port,
                      timeout_ns=rate.frames_to_ns(args.cluster_timeout),
                      realtime_priority=None if args.no_realtime else 10, keys=keys).start()
    say(f"stagectl run: cluster primary: frame states on {host}:{primary.state_port}, sync on "
        f"{host}:{primary.sync_port}, swap barrier timeout {primary.timeout_ns / 1e6:.1f} ms; render nodes: "
        f"stagectl node {args.stage} --name N --primary {primary.address}")
    say(f"stagectl run: cluster: CURVE, admitting the node keys in {keys.allowed_dir}" if keys is not None else
        f"stagectl run: warning: the cluster is unauthenticated: anyone who reaches its ports can follow the "
        f"frame states and join or stall the barrier; make node keys with `stagectl keys {args.stage} "
        f"--node NAME` (one per node) to require them")
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


def check_windows(args) -> None:
    """Check --windows and --monitor before any work (``stagectl run`` and ``stagectl node``)."""
    import os

    from stagectl.core.errors import UsageError

    if args.windows and args.no_render:
        raise UsageError("--windows needs rendering: drop --no-render")
    if args.monitor and args.windows != "fullscreen":
        raise UsageError("--monitor places fullscreen windows: use it with --windows fullscreen")
    if args.windows and os.name == "posix" and sys.platform != "darwin" and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--windows needs a display (DISPLAY is not set); run headless without --windows")


def choose_genlock(args, stage, say) -> str:
    """Check --windows, --monitor and --genlock before any work; the genlock source to run."""
    from stagectl.core.errors import UsageError

    check_windows(args)
    if args.genlock == "vsync" and not args.windows:
        raise UsageError("--genlock vsync needs --windows: the first output window's swap is the vsync")
    genlock = args.genlock or ("vsync" if stage.sync.genlock == "vsync" else "internal")
    if genlock == "vsync" and not args.windows:
        say("stagectl run: the stage asks for genlock vsync, which needs output windows (--windows): "
            "frame edges come from the internal clock")
        genlock = "internal"
    return genlock


def _open_output(stage, args, say):
    """The :class:`~stagectl.runtime.StageOutput` of every canvas: headless or in output windows (--windows),
    PNG previews into --run-dir every --preview-every seconds, shared-memory sinks with --sink."""
    from pathlib import Path

    from stagectl.core.errors import StageError
    from stagectl.runtime import StageOutput

    run_dir = None
    if args.preview_every:
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StageError(f"--run-dir: cannot create {run_dir}: {exc}") from None
    previews = f"previews every {args.preview_every:g} s in {run_dir}" if run_dir else "no previews"
    return StageOutput.open(stage, say, prefix="stagectl run", windows=args.windows, monitors=args.monitor,
                            vsync=args.genlock == "vsync", sink=(stage.name,) if args.sink else None,
                            run_dir=run_dir, preview_every_s=args.preview_every,
                            headline=lambda out: f"rendering {out.where()} on {out.ctx.info.summary()}; {previews}")


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace()))
