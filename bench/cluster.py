"""Cluster swap barrier on loopback: round trip with 2, 4 and 8 node processes; recovery after a node dies.

    python -m bench cluster [--nodes 2,4,8] [--rounds 600] [--fps 60] [--kill-nodes 4] [--no-kill]
                            [--coordinator-only] [--curve] [--no-write]

Setup: this process runs a :class:`stagectl.sync.cluster.Primary` (service thread) and the primary's frame
loop (main thread): at each frame edge it publishes a frame state (one camera) and meets the barrier itself,
as ``stagectl run`` does. Every node is a separate process (``python -m bench cluster --worker``) running a
:class:`~stagectl.sync.cluster.Node`: take the newest state, report ready, wait for the release. All processes
share ``CLOCK_MONOTONIC`` (one machine), so one round's timestamps can be compared across processes.

Per round ``k`` in which every participant was in the barrier:

* **release latency** (the barrier's round trip): ``release_i - last_ready``, for every participant ``i``,
  where ``last_ready`` is the moment the last participant sent its report. It is the barrier's own cost:
  report to the primary, decision, release back to everyone. Goal: p99 <= 1 ms.
* **wait**: ``release_i - ready_i`` per node (what a node's present is delayed by: the release latency plus
  waiting for slower peers, so it includes the arrival skew).
* **skew**: ``last_ready - first_ready``: how spread the reports are (scheduling of N processes on the cores).

CURVE (``--curve``): every node count is measured twice, back to back in this process, first without
authentication and then with CURVE as a stage with node keys runs it (``docs/cluster.md``: the primary admits the
node keys of a key folder made for the run, every node connects with its own key; messages are encrypted and
each one's sender checked), so that the two are compared on the same machine at the same moment.

Recovery (``--kill-nodes`` nodes): after a steady stretch one node gets SIGKILL; the bench reports when the
primary dropped it (from the kill to the release of the round that left it out), how long that round held,
the frames held longer than 5 ms, then restarts the node and reports the process start-up time and the time
from its first report to its readmission.

Context: the same machine's floor, measured at the start and the end of the run: a raw pyzmq DEALER/ROUTER
ping-pong between two processes (no stagectl code), 500 round trips 2 ms apart. On a machine whose floor p99
is already above 1 ms, the barrier cannot meet the goal; the JSON carries both so a reader can tell.

Writes ``bench/results/cluster-<UTC>.json``, ``cluster-latest.json`` and a plot ``cluster-latest.png``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import RESULTS_DIR, summarize_ns, write_results

P99_GOAL_US = 1000.0
COLS = ("frame", "t_ready", "t_release", "released", "in_barrier", "n_members")
MS = 1_000_000


# ============================================================================================== worker (node)


#: SCHED_FIFO priority of the primary's loop and service thread and of the nodes' waits (None: normal); --no-realtime
PRIORITY: int | None = 10


def worker(name: str, address: str, out: str, fps: int, priority: int | None = None,
           keys_dir: str | None = None) -> int:
    """A node process: follow the newest state, meet the barrier, record every wait; write them on SIGTERM.
    With ``priority`` it waits as SCHED_FIFO, as ``stagectl node`` does (this worker only ever waits); with
    ``keys_dir`` it connects with CURVE and its key ``<keys_dir>/nodes/NAME.key_secret``."""
    from stagectl.core.timebase import FrameRate
    from stagectl.sync.cluster import Node
    from stagectl.sync.frameloop import EdgePriority
    from stagectl.sync.zmq_security import cluster_node_keys

    EdgePriority(priority).start().raise_()

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    keys = cluster_node_keys(keys_dir, name) if keys_dir else None
    node = Node(name, address, rate=FrameRate(fps), keys=keys).start()
    rows: list[tuple[int, ...]] = []
    try:
        while not stop["flag"]:
            st = node.latest_state(50 * MS)
            if st is None:
                continue
            t0 = time.monotonic_ns()
            r = node.wait_barrier(st.frame)
            t1 = time.monotonic_ns()
            rows.append((st.frame, t0, t1, int(r.released), int(name in r.members), len(r.members)))
    finally:
        node.close()
        np.save(out, np.array(rows, dtype=np.int64).reshape(-1, len(COLS)))
    return 0


class Workers:
    """Node processes of one run; their recorded rows once stopped."""

    def __init__(self, address: str, fps: int, tmp: Path, keys_dir: Path | None = None) -> None:
        self.address = address
        self.fps = fps
        self.tmp = tmp
        self.keys_dir = keys_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.files: dict[str, list[Path]] = {}

    def start(self, name: str) -> float:
        out = self.tmp / f"{name}-{len(self.files.get(name, []))}.npy"
        self.files.setdefault(name, []).append(out)
        cmd = [sys.executable, "-m", "bench", "cluster", "--worker", name, self.address, str(out),
               str(self.fps), str(PRIORITY or 0)] + ([str(self.keys_dir)] if self.keys_dir else [])
        self.procs[name] = subprocess.Popen(cmd, cwd=str(REPO))
        return time.monotonic_ns()

    def kill(self, name: str) -> int:
        t = time.monotonic_ns()
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(5)
        return t

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def rows(self, name: str, run: int = -1) -> np.ndarray:
        path = self.files[name][run]
        if not path.exists():
            return np.zeros((0, len(COLS)), dtype=np.int64)
        return np.load(path)


def echo_worker(address: str) -> int:
    """The far end of the floor measurement: a DEALER that sends back whatever it gets until ``q``."""
    import zmq

    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(address)
    d.send(b"hi")
    try:
        while True:
            m = d.recv()
            if m == b"q":
                return 0
            d.send(m)
    finally:
        d.close(linger=0)
        ctx.term()


def floor_rtt(n: int = 500, gap_s: float = 0.002) -> dict:
    """Raw pyzmq ROUTER (here) <-> DEALER (another process) ping-pong on loopback: the machine's floor."""
    import zmq

    ctx = zmq.Context()
    r = ctx.socket(zmq.ROUTER)
    r.setsockopt(zmq.LINGER, 0)
    r.bind("tcp://127.0.0.1:*")
    p = subprocess.Popen([sys.executable, "-m", "bench", "cluster", "--echo", r.last_endpoint.decode()],
                         cwd=str(REPO))
    try:
        if not r.poll(30_000):
            raise RuntimeError("echo process did not connect")
        rid, _ = r.recv_multipart()
        out = np.empty(n, dtype=np.int64)
        for i in range(n + 50):
            t0 = time.monotonic_ns()
            r.send_multipart([rid, b"x"])
            r.recv_multipart()
            if i >= 50:
                out[i - 50] = time.monotonic_ns() - t0
            time.sleep(gap_s)
        r.send_multipart([rid, b"q"])
        return summarize_ns(out)
    finally:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        r.close(linger=0)
        ctx.term()


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ============================================================================================== primary side


class Loop:
    """The primary's frame loop: publish frame k at its edge, then meet the barrier as a member."""

    def __init__(self, primary, rate, member: bool) -> None:
        from stagectl.core.camera import CameraState, LensValues

        self.primary = primary
        self.rate = rate
        self.member = member
        self.epoch = time.monotonic_ns()
        self.k = 0
        self.rows: list[tuple[int, int, int, tuple[str, ...]]] = []  # frame, t_ready, t_release, members
        self.cam = CameraState("cam-a", np.eye(4), LensValues(35.0), (24.89, 14.0))

    def run_until(self, cond, limit_s: float) -> bool:
        from stagectl.sync.cluster import FrameState
        from stagectl.sync.frameloop import EdgePriority

        EdgePriority(PRIORITY).start().raise_()  # this thread only waits, publishes and meets the barrier

        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            edge = self.rate.frame_edge_ns(self.k, self.epoch)
            now = time.monotonic_ns()
            if now < edge:
                time.sleep((edge - now) / 1e9)
            elif now - edge > self.rate.period_ns:
                self.k = self.rate.frame_at_ns(now, self.epoch)
                continue
            st = FrameState.make(self.k, self.rate, edge, epoch_ns=self.epoch, cameras=[self.cam])
            self.primary.publish(st)
            if self.member:
                t0 = time.monotonic_ns()
                r = self.primary.barrier(self.k)
                self.rows.append((self.k, t0, time.monotonic_ns(), r.members))
            self.k += 1
            if cond():
                return True
        return False

    def frames(self, n: int) -> None:
        stop_at = self.k + n
        self.run_until(lambda: self.k >= stop_at, n / self.rate.fps * 3 + 10)


def _rounds(names: list[str], workers: Workers, loop: Loop, frames: range) -> dict[str, np.ndarray]:
    """Per round with every participant in the barrier: arrays of release latency, waits and skew (ns)."""
    per: dict[str, dict[int, tuple[int, int]]] = {}
    for n in names:
        r = workers.rows(n)
        per[n] = {int(f): (int(a), int(b)) for f, a, b, rel, inb, _ in r if rel and inb}
    if loop.member:
        per["primary"] = {f: (a, b) for f, a, b, m in loop.rows if "primary" in m}
    everyone = sorted(per)
    lat, waits, skew, complete = [], [], [], []
    for k in frames:
        if not all(k in per[n] for n in everyone):
            continue
        rows = [per[n][k] for n in everyone]
        last = max(r[0] for r in rows)
        first = min(r[0] for r in rows)
        lat.extend(r[1] - last for r in rows)
        complete.append(max(r[1] for r in rows) - last)
        waits.extend(per[n][k][1] - per[n][k][0] for n in everyone if n != "primary")
        skew.append(last - first)
    return {k: np.array(v, dtype=np.int64) for k, v in
            (("release", lat), ("wait", waits), ("skew", skew), ("complete", complete))}


def bench_nodes(n_nodes: int, rounds: int, fps: int, member: bool, tmp: Path, keys_dir: Path | None = None) -> dict:
    """One node count; with ``keys_dir`` (a key folder with node keys n0, n1, ...) the cluster runs with CURVE."""
    from stagectl.core.timebase import FrameRate
    from stagectl.sync.cluster import Primary
    from stagectl.sync.zmq_security import cluster_server_keys

    rate = FrameRate(fps)
    keys = cluster_server_keys(keys_dir) if keys_dir is not None else None
    primary = Primary(rate, state_port=0, sync_port=0, member="primary" if member else None,
                      realtime_priority=PRIORITY, keys=keys).start()
    auth = "curve" if keys is not None else "none"
    workers = Workers(primary.address, fps, tmp / f"n{n_nodes}-{auth}", keys_dir)
    workers.tmp.mkdir(parents=True, exist_ok=True)
    names = [f"n{i}" for i in range(n_nodes)]
    loop = Loop(primary, rate, member)
    try:
        t0 = time.monotonic()
        for n in names:
            workers.start(n)
        ok = loop.run_until(lambda: all(n in primary.status().members for n in names), 60.0)
        startup_s = time.monotonic() - t0
        if not ok:
            raise RuntimeError(f"{n_nodes} nodes did not all join in 60 s: {primary.status().summary()}")
        loop.frames(fps)  # one second of warm-up in the barrier
        k0 = loop.k
        loop.frames(rounds)
        k1 = loop.k
        status = primary.status()
    finally:
        workers.stop()
        primary.close()
    r = _rounds(names, workers, loop, range(k0, k1))
    measured = int(r["skew"].size)
    res = {
        "nodes": n_nodes,
        "auth": auth,
        "participants": n_nodes + (1 if member else 0),
        "rounds": k1 - k0,
        "rounds_measured": measured,
        "startup_s": round(startup_s, 2),
        "release_latency": summarize_ns(r["release"]) if measured else None,
        "round_complete": summarize_ns(r["complete"]) if measured else None,
        "node_wait": summarize_ns(r["wait"]) if measured else None,
        "arrival_skew": summarize_ns(r["skew"]) if measured else None,
        "timed_out_rounds": status.timed_out_rounds,
        "drops": {n: p.drops for n, p in status.nodes.items() if p.drops},
        "refused_connections": status.refused_connections,
        "forged_names": status.forged_names,
        "rate_limited": status.rate_limited,
        "primary_hold": {"p50_us": status.hold_p50_us, "p99_us": status.hold_p99_us,
                         "max_us": status.hold_max_us},
    }
    res["_release_ns"] = r["release"]
    return res


def bench_recovery(n_nodes: int, fps: int, member: bool, tmp: Path) -> dict:
    from stagectl.core.timebase import FrameRate
    from stagectl.sync.cluster import Primary

    rate = FrameRate(fps)
    primary = Primary(rate, state_port=0, sync_port=0, member="primary" if member else None,
                      realtime_priority=PRIORITY).start()
    workers = Workers(primary.address, fps, tmp / "recovery")
    workers.tmp.mkdir(parents=True, exist_ok=True)
    names = [f"n{i}" for i in range(n_nodes)]
    victim = names[0]
    loop = Loop(primary, rate, member)
    try:
        for n in names:
            workers.start(n)
        if not loop.run_until(lambda: all(n in primary.status().members for n in names), 60.0):
            raise RuntimeError(f"nodes did not join: {primary.status().summary()}")
        loop.frames(2 * fps)
        t_kill = workers.kill(victim)
        loop.run_until(lambda: victim in primary.status().dropped, 5.0)
        loop.frames(2 * fps)
        t_restart = workers.start(victim)
        rejoined = loop.run_until(lambda: primary.status().nodes[victim].state == "member", 60.0)
        t_member_seen = time.monotonic_ns()
        loop.frames(fps)
        status = primary.status()
    finally:
        workers.stop()
        primary.close()
    rows = loop.rows if member else []
    after = [r for r in rows if r[2] > t_kill]
    drop_round = next((r for r in after if victim not in r[3]), None)
    held = [(r[0], round((r[2] - r[1]) / 1e6, 2)) for r in after if r[2] - r[1] > 5 * MS and r[2] < t_restart]
    normal = [r[2] - r[1] for r in rows if r[2] < t_kill][-fps:]
    back = workers.rows(victim, run=-1)
    first_report = int(back[0, 1]) if back.size else None
    first_in = next((int(r[2]) for r in back if r[4]), None)
    res = {
        "nodes": n_nodes,
        "killed": victim,
        "timeout_ms": primary.timeout_ns / 1e6,
        "dropped_after_kill_ms": None if drop_round is None else round((drop_round[2] - t_kill) / 1e6, 2),
        "drop_round_hold_ms": None if drop_round is None else round((drop_round[2] - drop_round[1]) / 1e6, 2),
        "frames_held_over_5ms": held,
        "steady_hold_before_kill_p99_ms": (round(float(np.percentile(normal, 99)) / 1e6, 3)
                                           if normal else None),
        "rejoined": bool(rejoined),
        "restart_to_first_report_s": (None if first_report is None
                                      else round((first_report - t_restart) / 1e9, 2)),
        "first_report_to_member_ms": None if first_report is None or first_in is None
        else round((first_in - first_report) / 1e6, 2),
        "restart_to_member_seen_s": round((t_member_seen - t_restart) / 1e9, 2),
        "victim_drops": status.nodes[victim].drops,
        "victim_rejoins": status.nodes[victim].rejoins,
        "victim_last_drop": status.nodes[victim].last_drop,
    }
    res["_hold_trace"] = [((r[1] - t_kill) / 1e6, (r[2] - r[1]) / 1e6) for r in rows
                          if -500 * MS < r[1] - t_kill < 1500 * MS]
    return res


def plot(results: list[dict], recovery: dict | None, path: Path) -> None:
    """CDFs of the release latency per node count, and the primary's hold per frame around the kill (cv2)."""
    import cv2

    W, H = 1000, 420
    img = np.full((H, W, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "stagectl cluster bench (loopback, node processes)", (20, 28), font, 0.7, (0, 0, 0), 2)
    colours = [(200, 120, 40), (40, 160, 40), (40, 40, 200), (160, 40, 160), (40, 160, 160), (120, 120, 120)]
    x0, y0, w, h = 60, 70, 420, 300
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (0, 0, 0), 1)
    xmax_ms = 3.0
    for i, r in enumerate(results):
        lat = np.sort(r["_release_ns"]) / 1e6
        if lat.size == 0:
            continue
        ys = y0 + h - (np.arange(1, lat.size + 1) / lat.size * h)
        xs = x0 + np.clip(lat / xmax_ms, 0, 1) * w
        cv2.polylines(img, [np.column_stack([xs, ys]).astype(np.int32)], False, colours[i % len(colours)], 2)
        label = f"{r['nodes']} nodes" + (" CURVE" if r.get("auth") == "curve" else "")
        cv2.putText(img, label, (x0 + w - 130, y0 + h - 120 + 18 * i), font, 0.45, colours[i % len(colours)], 1)
    gx = int(x0 + P99_GOAL_US / 1000 / xmax_ms * w)
    cv2.line(img, (gx, y0), (gx, y0 + h), (120, 120, 120), 1)
    cv2.putText(img, f"release latency CDF, 0..{xmax_ms:g} ms (goal p99 1 ms)", (x0, y0 - 10), font, 0.45,
                (0, 0, 0), 1)
    if recovery and recovery.get("_hold_trace"):
        x0 = 540
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (0, 0, 0), 1)
        tr = np.array(recovery["_hold_trace"])
        ymax = max(1.0, recovery["timeout_ms"] * 1.5)
        xs = x0 + (tr[:, 0] + 500) / 2000 * w
        ys = y0 + h - np.clip(tr[:, 1] / ymax, 0, 1) * h
        for x, y in zip(xs.astype(int), ys.astype(int)):
            cv2.line(img, (x, y0 + h), (x, y), (40, 40, 200), 1)
        kx = int(x0 + 500 / 2000 * w)
        cv2.line(img, (kx, y0), (kx, y0 + h), (0, 0, 0), 1)
        ty = int(y0 + h - recovery["timeout_ms"] / ymax * h)
        cv2.line(img, (x0, ty), (x0 + w, ty), (120, 120, 120), 1)
        label = f"primary hold per frame (kill: vertical line; timeout {recovery['timeout_ms']:.1f} ms)"
        cv2.putText(img, label,
                    (x0, y0 - 10), font, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker":
        return worker(argv[1], argv[2], argv[3], int(argv[4]), (int(argv[5]) or None) if len(argv) > 5 else None,
                      argv[6] if len(argv) > 6 else None)
    if argv and argv[0] == "--echo":
        return echo_worker(argv[1])
    ap = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="2,4,8", help="node counts, comma-separated (default 2,4,8)")
    ap.add_argument("--rounds", type=int, default=600, help="measured barrier rounds per node count")
    ap.add_argument("--fps", type=int, default=60, help="frame rate of the primary's loop (default 60)")
    ap.add_argument("--kill-nodes", type=int, default=4, help="nodes in the kill/recovery run (default 4)")
    ap.add_argument("--no-kill", action="store_true", help="skip the kill/recovery run")
    ap.add_argument("--coordinator-only", action="store_true",
                    help="the primary coordinates without being a barrier member")
    ap.add_argument("--no-realtime", action="store_true",
                    help="everything at normal priority (default: as stagectl run / node: SCHED_FIFO while waiting, "
                         "when permitted)")
    ap.add_argument("--curve", action="store_true",
                    help="measure every node count twice, without and with CURVE (node keys, as docs/cluster.md)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results JSON and PNG")
    args = ap.parse_args(argv)
    global PRIORITY
    PRIORITY = None if args.no_realtime else 10
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    member = not args.coordinator_only
    print(f"cluster bench: {os.cpu_count()} CPUs, {args.fps} fps, {args.rounds} rounds per node count, "
          f"primary {'is a barrier member' if member else 'only coordinates'}"
          + (", without and with CURVE" if args.curve else ""), flush=True)
    results = []
    recovery = None
    floor = {"start": floor_rtt(), "load_start": _load()}
    print(f"[floor] raw pyzmq process ping-pong: p50 {floor['start']['median_us']:.0f} us p99 "
          f"{floor['start']['p99_us']:.0f} us max {floor['start']['max_us']:.0f} us "
          f"(load average {floor['load_start']})", flush=True)
    with tempfile.TemporaryDirectory(prefix="stagectl-bench-cluster-") as td:
        tmp = Path(td)
        modes: list[Path | None] = [None]
        if args.curve:
            from stagectl.sync.zmq_security import make_keys

            make_keys(tmp / "keys", (), nodes=[f"n{i}" for i in range(max(counts, default=0))])
            modes.append(tmp / "keys")
        for n, keys_dir in ((n, k) for n in counts for k in modes):
            tag = f"{n} nodes{', CURVE' if keys_dir is not None else ''}"
            print(f"[{tag}] starting {n} node processes ...", flush=True)
            r = bench_nodes(n, args.rounds, args.fps, member, tmp, keys_dir)
            results.append(r)
            rl, wt, sk = r["release_latency"], r["node_wait"], r["arrival_skew"]
            if rl is None:
                print(f"[{tag}] no complete round measured")
                continue
            print(f"[{tag}] {r['rounds_measured']}/{r['rounds']} rounds complete; release latency "
                  f"p50 {rl['median_us']:.0f} us p99 {rl['p99_us']:.0f} us max {rl['max_us']:.0f} us | "
                  f"node wait p50 {wt['median_us']:.0f} p99 {wt['p99_us']:.0f} us | skew p99 "
                  f"{sk['p99_us']:.0f} us | {r['timed_out_rounds']} timed-out rounds", flush=True)
        if not args.no_kill:
            print(f"[recovery] {args.kill_nodes} nodes, SIGKILL one, then restart it ...", flush=True)
            recovery = bench_recovery(args.kill_nodes, args.fps, member, tmp)
            print(f"[recovery] dropped {recovery['dropped_after_kill_ms']} ms after the kill (timeout "
                  f"{recovery['timeout_ms']:.1f} ms; that round held {recovery['drop_round_hold_ms']} ms); "
                  f"frames held > 5 ms: {recovery['frames_held_over_5ms']}; restart -> first report "
                  f"{recovery['restart_to_first_report_s']} s, first report -> member "
                  f"{recovery['first_report_to_member_ms']} ms", flush=True)
    floor["end"], floor["load_end"] = floor_rtt(), _load()
    print(f"[floor] at the end: p50 {floor['end']['median_us']:.0f} us p99 {floor['end']['p99_us']:.0f} us "
          f"max {floor['end']['max_us']:.0f} us (load average {floor['load_end']})", flush=True)
    print()
    print(f"{'nodes':>5} {'auth':>5} {'release p50 us':>15} {'p99 us':>8} {'max us':>8} {'wait p99 us':>12} "
          f"{'skew p99 us':>12}  goal p99 <= {P99_GOAL_US:.0f} us")
    for r in results:
        rl = r["release_latency"]
        if rl is None:
            continue
        print(f"{r['nodes']:>5} {r['auth']:>5} {rl['median_us']:>15.0f} {rl['p99_us']:>8.0f} {rl['max_us']:>8.0f} "
              f"{r['node_wait']['p99_us']:>12.0f} {r['arrival_skew']['p99_us']:>12.0f}  "
              f"{'met' if rl['p99_us'] <= P99_GOAL_US else 'NOT met'}")
    goals = {
        "p99_goal_us": P99_GOAL_US,
        "met": {f"{r['nodes']}{'-curve' if r['auth'] == 'curve' else ''}":
                bool(r["release_latency"] and r["release_latency"]["p99_us"] <= P99_GOAL_US) for r in results},
        "floor_p99_us": max(floor["start"]["p99_us"], floor["end"]["p99_us"]),
    }
    if not args.no_write:
        png = RESULTS_DIR / "cluster-latest.png"
        try:
            plot(results, recovery, png)
        except Exception as exc:  # noqa: BLE001 - a plot must not cost the numbers
            print(f"plot failed: {exc!r}", file=sys.stderr)
            png = None
        payload = {
            "what": "swap barrier round trip on loopback: Primary (this process, member) + N node processes",
            "settings": {"fps": args.fps, "rounds": args.rounds, "nodes": counts, "primary_member": member,
                         "realtime_priority": PRIORITY, "curve": bool(args.curve),
                         "transport": "tcp://127.0.0.1 (XPUB/SUB states, ROUTER/DEALER barrier)",
                         "clock": "CLOCK_MONOTONIC shared by all processes"},
            "definitions": {
                "release_latency": "release_i - last participant's report, every participant, "
                                   "complete rounds",
                "round_complete": "last release - last report, per round",
                "node_wait": "release_i - report_i per node (includes waiting for slower peers)",
                "arrival_skew": "last report - first report, per round",
            },
            "results": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
            "recovery": (None if recovery is None
                         else {k: v for k, v in recovery.items() if not k.startswith("_")}),
            "floor_pyzmq_process_ping_pong": floor,
            "goals": goals,
            "plot": None if png is None else str(png.relative_to(REPO)),
        }
        stamped, latest = write_results("cluster", payload)
        print(f"wrote {stamped.relative_to(REPO)} and {latest.relative_to(REPO)}"
              + (f" and {png.relative_to(REPO)}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
