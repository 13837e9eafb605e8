"""Run a cluster render node: follow the primary's frame states, render this node's outputs, meet the barrier.

`stagectl node STAGE.yaml --name N --primary HOST[:PORT[,SYNC_PORT]]` connects to the primary (`stagectl run`
publishing frame states; default ports 41310 for the states and 41311 for sync, SYNC_PORT = PORT + 1 when only
PORT is given), takes a snapshot of the latest frame state and then follows the sequenced updates. For the
newest state it renders the outputs the stage assigns to this node (`outputs[].node: N`), builds the frame plan from the primary's camera states, operator flags and operator
state (the light cards, chroma key, colour corrections, patterns and blackouts set on the primary's stage
console, exactly as the primary planned that frame), reports ready to the primary's swap barrier and presents
when released (at the frame's edge when the primary's clock is the PTP-disciplined system clock,
`sync.clock: system`). A node that misses the barrier for the primary's timeout (two frames by default) is
dropped so the others keep running, and rejoins by itself once it keeps up. With --no-render it only follows
the states and meets the barrier; with --sink every canvas of this node is also published each frame into a
shared-memory ring (`stagectl.render.sink.SinkReader`; names printed at start).

Where the canvases go: headless (EGL; Mesa llvmpipe without a GPU), or with --windows [windowed|fullscreen]
(--monitor OUTPUT=MONITOR places fullscreen windows) a GLFW window per output of this node, as `stagectl run
--windows` makes them (the same StageOutput; docs/outputs.md). Presenting -- the windows' swap and the sinks'
write -- happens right after the barrier releases the frame, never before, and does not wait for a vertical
blank: the barrier paces the frames.

Operator state: every one received is checked against this node's stage file (walls, outputs); one that
names something the stage does not have is refused, counted and not used. A frame that names an operator
state this node does not have (lost or refused) is rendered with the last one it has and counted as "behind";
the node asks the primary for a snapshot and never holds the barrier for it. Until the primary publishes one
(it runs without the console), the stage file's features are drawn.

What the wall shows besides (stagectl/commands/_node_show.py), on the frame the primary changes it: the scene
content the operator selects (`content.select`: carried as a path relative to the stage file, loaded from this
node's copy of the stage's folders under the same rules as on the primary: inside console.paths.content, a glTF's
files confined to it; one that cannot be loaded is said once and in the status, and the old one stays); a
`stage.reload` on the primary reloads this node's own stage file (a node whose stage file differs from the
primary's, by SHA-256, says so once and in the status); the colour patch player (`color.patches`) on this node's
outputs, wall frame k on stage frame F + k as on the primary.

Authentication (CURVE): when the stage's key folder (console.zmq.keys, default keys/ next to the stage file)
has a nodes/ folder, the node connects with its own key pair keys/nodes/N.key_secret (--key FILE for another)
and the primary's public key keys/server.key; make them on the primary's machine with `stagectl keys
STAGE.yaml --node N` and copy those two files here. The primary admits only the node keys listed in its
keys/nodes/ and accepts messages naming node N only from N's key; a node with no key, an unlisted key or
another node's key gets nothing (the status line says when the primary refused the key). Without a nodes/
folder the node connects unauthenticated, which a primary without node keys accepts (`stagectl run
--cluster` warns that such a cluster is open to anyone on its network); docs/cluster.md.

A status line per second: frame and timecode, states received (skipped, sequence gaps, bad messages), the
operator state in use (frames behind, refused), barrier waits (released, timed out, out of the barrier), the
wait p50/p99, the members, render time, the windows open, and what does not follow the primary (a content it
cannot show, a stage file that differs). Ctrl-C or SIGTERM stops it within one second; the last line counts
the frames, the barrier, the operator states, the reloads, contents and patch playbacks followed, and the frames
presented on the windows.

The inner frusta and the outer atlas are rendered in full on every node; only the canvas composition is
limited to this node's outputs. Not yet: genlock of a node's windows to the house sync (the swap does not wait
for vsync; a driver-level swap group/frame lock is the place for that).
"""

from __future__ import annotations

import argparse
import time

from stagectl.commands._signals import StopOnSignals
from stagectl.commands.run import add_window_arguments, check_windows

HELP = ("run a cluster render node: follow the primary's frame states, render this node's outputs, "
        "meet the swap barrier")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, the same the primary runs, e.g. stages/demo.yaml")
    p.add_argument("--name", required=True, metavar="N", help="this node's name (the stage's outputs[].node)")
    p.add_argument("--primary", default="127.0.0.1", metavar="HOST[:PORT[,SYNC_PORT]]",
                   help="the primary (default 127.0.0.1 on ports 41310,41311)")
    p.add_argument("--key", default=None, metavar="FILE",
                   help="this node's CURVE key pair (default: <keys>/nodes/N.key_secret when the stage's key "
                        "folder has a nodes/ folder; none: connect unauthenticated)")
    p.add_argument("--no-render", action="store_true",
                   help="follow the frame states and meet the barrier only; draw nothing")
    p.add_argument("--sink", action="store_true",
                   help="publish this node's canvases each frame into shared-memory rings that other "
                        "programs can read (stagectl.render.sink.SinkReader; names are printed at start)")
    add_window_arguments(p)  # as stagectl run's: the canvases of this node's outputs
    p.add_argument("--no-realtime", action="store_true",
                   help="keep waiting at normal priority (default: SCHED_FIFO while it waits for the primary's "
                        "state and the barrier's release and presents, when permitted; rendering at normal "
                        "priority either way)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C or SIGTERM)")
    p.add_argument("--status-interval", type=float, default=1.0, metavar="S",
                   help="seconds between status lines (default 1)")


def node_stage(stage, name: str):
    """``stage`` reduced to the outputs assigned to node ``name`` (processors without one are left out)."""
    from dataclasses import replace

    procs = []
    for p in stage.processors:
        outs = tuple(o for o in p.outputs if o.node == name)
        if outs:
            procs.append(replace(p, outputs=outs))
    return replace(stage, processors=tuple(procs))


def node_features(stage, name: str):
    """``(default, check)`` for node ``name`` of ``stage``: the stage file's features reduced to this node's
    outputs (drawn while the primary publishes no operator state), and the check each received operator state
    goes through (:class:`stagectl.sync.cluster.Node` ``features_check``): it raises
    :class:`~stagectl.core.features.FeatureError` for a wall or output ``stage`` does not have, and returns
    the state reduced to this node's outputs (patterns and blackouts of other nodes' outputs left out)."""
    from dataclasses import replace

    from stagectl.core.features import FeatureState

    walls = [w.name for w in stage.walls]
    outputs = [f"{p.name}/{o.name}" for p, o in stage.outputs()]
    mine = {f"{p.name}/{o.name}" for p, o in stage.outputs() if o.node == name}

    def reduce(fs: FeatureState) -> FeatureState:
        return replace(fs, patterns=tuple((k, v) for k, v in fs.patterns if k in mine),
                       blackout=frozenset(k for k in fs.blackout if k in mine))

    def check(fs: FeatureState) -> FeatureState:
        fs.check(walls, outputs)
        return reduce(fs)

    base = getattr(stage.render, "features", None) or FeatureState()
    try:
        default = reduce(base)
    except Exception:  # noqa: BLE001 - the loader validated them; never worse than drawing none
        default = FeatureState()
    return default, check


def main(args: argparse.Namespace) -> int:
    from stagectl.commands import option_value
    from stagectl.core.errors import UsageError
    from stagectl.stage import load_stage

    for opt in ("duration", "status_interval"):
        value = getattr(args, opt)
        if value is not None and value <= 0:
            raise UsageError(f"--{opt.replace('_', '-')}: expected a positive number of seconds, "
                             f"got {value:g}")
    if not args.name.strip() or len(args.name.encode()) > 64 or any(ord(c) < 32 for c in args.name):
        raise UsageError(f"--name: expected a node name of 1..64 printable characters, got {args.name!r}")
    if args.name == "primary":
        raise UsageError('--name: "primary" is the primary\'s own name in the swap barrier; pick another')
    check_windows(args)  # --windows, --monitor: before any work
    from stagectl.sync.cluster import parse_primary_address

    host, state_port, sync_port = option_value("--primary", parse_primary_address, args.primary)
    stage = load_stage(args.stage)
    from stagectl.console.zmq import zmq_settings
    from stagectl.sync.zmq_security import cluster_node_keys, resolve_keys_dir

    keys_dir = resolve_keys_dir(zmq_settings(stage), stage.path.parent)
    keys = cluster_node_keys(keys_dir, args.name, args.key)  # ZmqKeyError (one line) when missing or bad

    def say(text: str) -> None:
        print(text, flush=True)

    mine = [f"{p.name}/{o.name}" for p, o in stage.outputs() if o.node == args.name]
    named = sorted({o.node for _, o in stage.outputs() if o.node})
    if not mine and not args.no_render:
        known = ", ".join(named) if named else "none (no output has a `node:`)"
        raise UsageError(
            f"stage {stage.name!r} assigns no outputs to node {args.name!r} "
            f"(outputs with `node: {args.name}`); nodes named in the stage: {known}. "
            "Use --no-render to join the barrier without rendering."
        )
    say(f'stagectl node {args.name}: stage "{stage.name}" ({args.stage}), {stage.frame_rate.label} fps; '
        + (f"outputs {' '.join(mine)}" if mine else "no outputs assigned to this node"))

    if args.sink and args.no_render:
        raise UsageError("--sink publishes the rendered canvases: drop --no-render")
    runtime = None
    if not args.no_render:
        runtime = _open_runtime(stage, args.name, say, sink=args.sink, windows=args.windows,
                                monitors=args.monitor)
    else:
        say(f"stagectl node {args.name}: --no-render: following the frame states and the barrier only")
    output = runtime.output if runtime is not None else None

    from stagectl.commands._node_show import ShowFollower
    from stagectl.sync.cluster import ClusterError, Node

    try:
        node = Node(args.name, f"{host}:{state_port},{sync_port}", rate=stage.frame_rate,
                    features_check=node_features(stage, args.name)[1], keys=keys).start()
    except ClusterError:
        if output is not None:
            output.close()
        raise
    follower = ShowFollower(stage, args.name, runtime, node, say, f"stagectl node {args.name}")
    follower.warm()
    say(f"stagectl node {args.name}: following the primary at {host} "
        f"(states :{state_port}, sync :{sync_port}); "
        + (f"CURVE with key {keys.name!r} ({args.key or keys_dir / 'nodes' / (args.name + '.key_secret')})"
           if keys is not None else
           f"unauthenticated (no node keys in {keys_dir / 'nodes'}; a primary that has them refuses this node)"))
    signals = StopOnSignals()
    try:
        with signals:
            counts = _loop(args, stage, node, runtime, signals.event, say, f"{host}:{state_port},{sync_port}",
                           follower)
    finally:
        node.close()
        if output is not None:
            output.close()
    st = node.status()
    why = signals.reason("duration reached")
    drawn = (f"rendered {counts['rendered']} frames of {len(mine)} canvases "
             f"{'for the output windows' if output.presenter else 'headless'} ({counts['failed']} failed)"
             if output is not None else "rendered nothing (--no-render)")
    shown = (output.presenter.summary() + " after the barrier's release"
             if output is not None and output.presenter is not None
             else "no canvas was presented on a GPU output (--windows presents them)")
    say(f"stagectl node {args.name}: {why} after {counts['frames']} frames ({st.skipped} states skipped, "
        f"{st.gaps} sequence gaps, {st.decode_errors} bad messages); barrier: {st.waits} waits, "
        f"{st.released} released, {st.wait_timeouts} timed out, {st.out_of_barrier} out of the barrier; "
        f"operator state #{st.features_seq} ({st.features} received, {st.features_behind} frames behind, "
        f"{st.features_rejected} refused); {follower.summary()}; {drawn}; {shown}.")
    return 0


def _open_runtime(stage, name: str, say, sink: bool = False, windows: str | None = None,
                  monitors=()):
    """The :class:`~stagectl.runtime.StageRuntime` of node ``name``: its outputs' canvases rendered headless,
    or for output windows (``windows``: ``"windowed"`` or ``"fullscreen"``, ``monitors``: ``OUTPUT=MONITOR``
    placements; the same :class:`~stagectl.runtime.StageOutput` as ``stagectl run``'s, swapping without vsync
    waits: the barrier's release is the frame's moment), with ``sink`` also published into shared-memory
    rings named after the stage, the node -- a primary may run on this machine -- and the output; no cameras
    of its own (the primary's camera states are drawn)."""
    from stagectl.render.frustum import warmup
    from stagectl.runtime import StageOutput, StageRuntime

    sub = node_stage(stage, name)
    t0 = time.perf_counter()
    warmup()
    runtime = StageRuntime(sub)  # the planner first: "ready" means ready to plan and draw
    runtime.output = StageOutput.open(
        sub, say, prefix=f"stagectl node {name}", sink=(stage.name, name) if sink else None,
        windows=windows, monitors=monitors,
        headline=lambda out: f"rendering {len(sub.outputs())} canvases {out.where()} on "
                             f"{out.ctx.info.summary()} (ready in {time.perf_counter() - t0:.2f} s)")
    return runtime


def _loop(args, stage, node, runtime, stop, say, where: str, follower) -> dict[str, int]:
    from stagectl.sync.frameloop import EdgePriority

    interval_ns = int(args.status_interval * 1e9)
    start = time.monotonic_ns()
    end = None if args.duration is None else start + int(args.duration * 1e9)
    next_status = start + interval_ns
    counts = {"frames": 0, "rendered": 0, "failed": 0, "at_edge": 0}
    render_ms: list[float] = []
    last = node.status()
    prio = EdgePriority(None if args.no_realtime else 10).start()
    say(f"stagectl node {args.name}: waits: {prio.why}")
    try:
        return _node_frames(args, stage, node, runtime, stop, say, where, follower, prio, counts,
                            render_ms, interval_ns, end, next_status, last)
    finally:
        prio.stop()


def _node_frames(args, stage, node, runtime, stop, say, where, follower, prio, counts, render_ms,
                 interval_ns, end, next_status, last) -> dict[str, int]:
    import numpy as np

    from stagectl.core.timebase import Clock

    last_state = None
    warned_rate = False
    presenter = runtime.output.presenter if runtime is not None else None
    while not stop.is_set():
        if presenter is not None:
            presenter.poll()  # window events (Esc, close button) while no frame comes too
        prio.raise_()  # waiting for the primary's state: wake at once when it comes
        now = time.monotonic_ns()
        if end is not None and now >= end:
            break
        wait = min(100_000_000, max(0, next_status - now))
        if end is not None:
            wait = min(wait, max(0, end - now))
        st = node.latest_state(wait)
        if st is not None and not stop.is_set():
            last_state = st
            if st.rate != stage.frame_rate and not warned_rate:
                warned_rate = True
                say(f"stagectl node {args.name}: the primary runs at {st.rate.label} fps, this stage file "
                    f"says {stage.frame_rate.label} fps: are both running the same stage?")
            prio.lower()  # following the primary's show and rendering at normal priority
            # a reload, content or patch playback of the primary at this frame's boundary, as there (it may
            # reload this node's stage and its operator-state check: before the features are looked up)
            follower.follow(node.show_for(st), st.frame)
            features = node.features_for(st)  # the operator state the primary planned this frame with
            if runtime is not None:
                t0 = time.perf_counter()
                drawn = runtime.draw(list(st.cameras), st.frame, flags=st.flags,
                                     features=features if features is not None else follower.default_features)
                ok = drawn.ok
                render_ms.append((time.perf_counter() - t0) * 1e3)
                counts["rendered" if ok else "failed"] += 1
                if not ok:
                    say(f"stagectl node {args.name}: frame {st.frame}: {drawn.why} "
                        "(the outputs keep the last good frame)")
            prio.raise_()  # the release and the present on time
            node.wait_barrier(st.frame)
            if st.clock is not Clock.MONOTONIC:
                # a PTP-disciplined clock is shared with the primary: present at the frame's edge, as it does
                # (a monotonic clock is machine-local: present on release)
                delay = st.edge_ns - st.clock.now_ns()
                if 0 < delay <= st.rate.period_ns:
                    time.sleep(delay / 1e9)
                    counts["at_edge"] += 1
            if runtime is not None and ok:
                # released (or out of the barrier): now the windows swap and the sinks get the frame
                runtime.output.present(st.frame, time.monotonic_ns())
            counts["frames"] += 1
        prio.lower()  # status lines at normal priority
        now = time.monotonic_ns()
        if now >= next_status:
            cur = node.status()
            if last_state is None:
                why = "connected, no frame yet" if cur.connected else "no snapshot yet"
                if cur.auth_error and not cur.connected:
                    why += f": {cur.auth_error}"
                say(f"stagectl node {args.name}: waiting for the primary at {where} ({why})")
            else:
                dt = max(1e-9, (now - next_status + interval_ns) / 1e9)
                rate = (cur.states - last.states) / dt
                waits = cur.waits - last.waits
                p50 = "n/a" if cur.wait_p50_us is None else f"{cur.wait_p50_us / 1e3:.2f}"
                p99 = "n/a" if cur.wait_p99_us is None else f"{cur.wait_p99_us / 1e3:.2f}"
                rend = ""
                if runtime is not None:
                    med = f"{np.median(render_ms):.1f} ms" if render_ms else "n/a"
                    rend = (f" | rendered {counts['rendered']} ({counts['failed']} failed), "
                            f"render median {med}")
                say(f"[{last_state.timecode}] node {args.name}: frame {last_state.frame} | "
                    f"{rate:.1f} states/s ({cur.skipped} skipped, {cur.gaps} gaps, "
                    f"{cur.decode_errors} bad) | "
                    f"operator state #{cur.features_seq}: "
                    f"{cur.features_behind - last.features_behind} frames behind, "
                    f"{cur.features_rejected} refused | "
                    f"barrier {waits} waits: {cur.released - last.released} released, "
                    f"{cur.wait_timeouts - last.wait_timeouts} timed out, "
                    f"{cur.out_of_barrier - last.out_of_barrier} out of barrier; "
                    f"wait p50 {p50} ms p99 {p99} ms | members {' '.join(cur.members) or '-'}{rend}"
                    + (f" | {presenter.status()}" if presenter is not None else "") + follower.status())
            last = cur
            render_ms.clear()
            next_status += interval_ns
            if next_status <= now:
                next_status = now + interval_ns
    return counts
