"""Tracking input: decode cost per packet, Timeline.pose_at cost, receive-to-timeline latency on loopback and a
sustained multi-source load with a datagram count.

    python -m bench tracking [--load-seconds S] [--load-rate HZ] [--latency-seconds S] [--iterations N]
                             [--seed S] [--no-write]

Parts:

* decode: FreeD D1 (``time.monotonic_ns()`` stamp + ``decode_freed_sample``, that plus ``Timeline.push``, and
  the stamp + ``decode_freed`` alone, i.e. without building the ``TrackingSample``);
  OpenTrackIO JSON and CBOR datagrams built from the official 1.0.1 recommended and complete examples
  (``tests/data/opentrackio/v1.0.1/examples``; the complete ones need two datagrams each, reassembled).
* pose_at: ``Timeline.pose_at`` in interpolate / nearest / latest modes, on a 256-sample ring, without and
  with One Euro smoothing (smoothing costs on push, so ``push`` is timed too); against a plain-numpy reference
  of the same interpolation (``searchsorted`` + lerp + numpy slerp + ``ptr_deg_from_rotation``), and the
  production ``quat_slerp`` against a numpy slerp.
* latency: one sender *process* sends FreeD (and then OpenTrackIO JSON) datagrams at the load rate to a
  receiver thread here that stamps, decodes and pushes into a Timeline; latency = the moment the push returned
  minus the moment before ``sendto`` (both ``CLOCK_MONOTONIC``, comparable across processes), split into
  send -> arrival stamp and arrival stamp -> pushed.
* load: 4 sources (2 FreeD, 2 OpenTrackIO JSON), ``--load-rate`` datagrams/s each for ``--load-seconds``
  (default 1000/s for 30 s) from one sender process to 4 receiver threads, one socket and Timeline each
  (``SO_RCVBUF`` 4 MiB requested); every datagram carries a sequence number, so sent vs received is exact.

Goals: FreeD decode + time-stamp <= 5 us median; receive-to-timeline p99 <= 200 us; pose_at <= 10 us median;
no datagram lost under load. The default run takes about a minute (the load part is 30 s of it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import summarize_ns, time_calls, write_results

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "opentrackio" / "v1.0.1" / "examples"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stagectl.core.sample import MotionLimits  # noqa: E402
from stagectl.core.timebase import FrameRate  # noqa: E402
from stagectl.core.transforms import ptr_deg_from_rotation  # noqa: E402
from stagectl.tracking import timeline as TL  # noqa: E402
from stagectl.tracking.codecs import opentrackio as OTK  # noqa: E402
from stagectl.tracking.codecs.freed import FreeDPacket, decode_freed, decode_freed_sample, encode_freed  # noqa: E402
from stagectl.tracking.moves import pose_at as move_pose_at  # noqa: E402

GOAL_FREED_DECODE_US = 5.0
GOAL_LATENCY_P99_US = 200.0
GOAL_POSE_AT_US = 10.0
RATE = FrameRate(24000, 1001)
RCVBUF = 4 << 20


# ============================================================================================ packets
def freed_packet(camera: int, seq: int, t_s: float) -> bytes:
    """A FreeD D1 datagram of the 'orbit' move at ``t_s``; ``spare`` carries ``seq`` (mod 65536)."""
    p = move_pose_at("orbit", t_s)
    return encode_freed(FreeDPacket(camera, -p.pan, p.tilt, p.roll, p.x * 1000.0, p.y * 1000.0, p.z * 1000.0,
                                    int(p.zoom * 65535), int(p.focus * 65535), seq & 0xFFFF))


def otrk_template() -> dict:
    return json.loads((EXAMPLES / "recommended_dynamic_example.json").read_text(encoding="utf-8"))


def otrk_packet(template: dict, seq: int, t_s: float, send_ns: int) -> bytes:
    """An OpenTrackIO JSON datagram: the recommended example with the 'orbit' pose at ``t_s``,
    ``sequenceNumber = seq`` and ``sampleTimestamp = send_ns`` (CLOCK_MONOTONIC, bench only)."""
    p = move_pose_at("orbit", t_s)
    obj = dict(template)
    obj["timing"] = dict(template["timing"], sequenceNumber=seq,
                         sampleTimestamp={"seconds": send_ns // 1_000_000_000, "nanoseconds": send_ns % 1_000_000_000})
    obj["transforms"] = [{"translation": {"x": p.x, "y": p.y, "z": p.z},
                          "rotation": {"pan": p.pan, "tilt": p.tilt, "roll": p.roll}, "id": "Camera"}]
    return OTK.encode_datagram(OTK.encode_payload(obj, OTK.ENCODING_JSON), encoding=OTK.ENCODING_JSON,
                               sequence=seq & 0xFFFF)


# ============================================================================================ decode
def bench_decode(iterations: int) -> dict:
    out: dict = {}
    freed = [freed_packet(1, i, i / 100.0) for i in range(256)]
    now = time.monotonic_ns

    def freed_decode(i: int) -> object:
        now()
        return decode_freed_sample(freed[i & 255])

    def freed_decode_packet(i: int) -> object:
        now()
        return decode_freed(freed[i & 255])

    tl = TL.Timeline(RATE, capacity=256)

    def freed_decode_push(i: int) -> object:
        t = now()
        return tl.push(t, decode_freed_sample(freed[i & 255]))

    time_calls(freed_decode, iterations, warmup=1000)  # settle clocks and caches before the timed runs
    out["freed_decode_stamp"] = summarize_ns(time_calls(freed_decode, iterations, warmup=1000))
    out["freed_decode_packet_only_stamp"] = summarize_ns(time_calls(freed_decode_packet, iterations, warmup=1000))
    out["freed_decode_stamp_push"] = summarize_ns(time_calls(freed_decode_push, iterations, warmup=1000))
    out["freed_decode_stamp"]["goal_median_us"] = GOAL_FREED_DECODE_US
    out["freed_decode_stamp"]["goal_met"] = out["freed_decode_stamp"]["median_us"] <= GOAL_FREED_DECODE_US

    ex: dict = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        obj = json.loads(path.read_text(encoding="utf-8"))
        for enc, enc_name in ((OTK.ENCODING_JSON, "json"), (OTK.ENCODING_CBOR, "cbor")):
            payload = OTK.encode_payload(obj, enc)
            dgrams = OTK.segment_payload(payload, encoding=enc, sequence=1)
            if len(dgrams) == 1:
                d0 = dgrams[0]

                def run(i: int, d0: bytes = d0) -> object:
                    now()
                    return OTK.decode_packet(d0)
            else:
                def run(i: int, dgrams: list = dgrams) -> object:
                    now()
                    r = OTK.Reassembler()
                    c = None
                    for d in dgrams:
                        c = r.push(d)
                    return OTK.decode_sample(c.data, c.encoding)
            n = max(200, iterations // 20)
            s = summarize_ns(time_calls(run, n, warmup=50))
            s.update(payload_bytes=len(payload), datagrams=len(dgrams))
            ex[f"{path.stem}.{enc_name}"] = s
    out["opentrackio_per_sample"] = ex
    return out


# ============================================================================================ pose_at
def ref_slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    """Textbook numpy slerp (shortest arc) -- the reference the production path is compared with."""
    d = float(np.dot(q0, q1))
    if d < 0.0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + u * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    s = np.sin(th)
    return (np.sin((1.0 - u) * th) / s) * q0 + (np.sin(u * th) / s) * q1


def ref_pose_at(t_sorted: np.ndarray, pos: np.ndarray, quat: np.ndarray, te: int) -> tuple:
    """Plain-numpy interpolate-mode evaluation inside the buffer (position lerp, slerp, pan/tilt/roll)."""
    k = int(np.searchsorted(t_sorted, te, side="right")) - 1
    u = (te - t_sorted[k]) / (t_sorted[k + 1] - t_sorted[k])
    p = pos[k] + u * (pos[k + 1] - pos[k])
    q = ref_slerp(quat[k], quat[k + 1], u)
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    return p, q, ptr_deg_from_rotation(R)


def filled_timeline(smoothing: TL.Smoothing | None, n: int = 400, period_ns: int = 10_000_000) -> TL.Timeline:
    tl = TL.Timeline(RATE, capacity=256, smoothing=smoothing)
    for i in range(n):
        p = move_pose_at("handheld", i * period_ns / 1e9)
        tl.push_values(i * period_ns, p.x, p.y, p.z, p.pan, p.tilt, p.roll, zoom=p.zoom, focus=p.focus)
    return tl


def bench_pose_at(iterations: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    period = 10_000_000
    smoothing = TL.Smoothing(TL.OneEuroParams(1.0, 0.5, 1.0), TL.OneEuroParams(1.0, 0.02, 1.0))
    out: dict = {"ring_capacity": 256, "sample_period_ns": period}
    for label, sm in (("plain", None), ("one_euro", smoothing)):
        tl = filled_timeline(sm)
        snap = tl.snapshot()
        t_lo, t_hi = int(snap["arrival_ns"][0]), int(snap["arrival_ns"][-1])
        inside = rng.integers(t_lo, t_hi, size=4096)
        ahead = t_hi + rng.integers(1, TL.Timeline(RATE).max_prediction_ns, size=4096)
        res: dict = {}
        for mode in TL.MODES:
            res[mode] = summarize_ns(time_calls(lambda i, m=mode: tl.pose_at(int(inside[i & 4095]), mode=m),
                                                iterations, warmup=500))
        res["interpolate_extrapolated"] = summarize_ns(
            time_calls(lambda i: tl.pose_at(int(ahead[i & 4095])), iterations, warmup=500))
        k = [n + 400 for n in range(iterations + 1000)]
        # the synthetic pan steps (0..6 deg, then back) are no plausible move: measure the accepting path with its
        # plausibility checks, not the rejection of most samples
        tl.set_motion_limits(MotionLimits.unlimited())
        res["push_values"] = summarize_ns(time_calls(
            lambda i: tl.push_values(k[i] * period, 0.1, 0.2, 1.5, float(i % 7), 1.0, 0.0), iterations, warmup=1000))
        out[label] = res
    # numpy reference of the interpolate path, and slerp alone
    tl = filled_timeline(None)
    snap = tl.snapshot()
    ts, pos, quat = snap["arrival_ns"], snap["position"], snap["quaternion"]
    inside = rng.integers(int(ts[0]), int(ts[-1]), size=4096)
    # agreement check (the bench must not time a broken path)
    worst_pos = worst_deg = 0.0
    for te in inside[:500]:
        st = tl.pose_at(int(te))
        p, q, ptr = ref_pose_at(ts, pos, quat, int(te))
        worst_pos = max(worst_pos, float(np.max(np.abs(np.array(st.position) - p))))
        worst_deg = max(worst_deg, float(np.max(np.abs(np.array([st.pan, st.tilt, st.roll]) - np.array(ptr)))))
    ref = summarize_ns(time_calls(lambda i: ref_pose_at(ts, pos, quat, int(inside[i & 4095])),
                                  max(2000, iterations // 5), warmup=200))
    out["numpy_reference_interpolate"] = ref
    out["reference_agreement"] = {"max_position_diff_m": worst_pos, "max_angle_diff_deg": worst_deg}
    out["speedup_vs_numpy_reference_median"] = ref["median_us"] / out["plain"]["interpolate"]["median_us"]
    qa = [TL.quat_from_ptr_deg(*rng.uniform(-90, 90, 3)) for _ in range(64)]
    us = rng.uniform(0, 1, 64)
    s_prod = summarize_ns(time_calls(lambda i: TL.quat_slerp(qa[i & 63], qa[(i + 1) & 63], us[i & 63]),
                                     iterations, warmup=500))
    s_ref = summarize_ns(time_calls(lambda i: ref_slerp(qa[i & 63], qa[(i + 1) & 63], us[i & 63]),
                                    iterations, warmup=500))
    out["slerp"] = {"production_quat_slerp": s_prod, "numpy_reference": s_ref,
                    "speedup_median": s_ref["median_us"] / s_prod["median_us"]}
    best = max(out[lbl][m]["median_us"] for lbl in ("plain", "one_euro") for m in TL.MODES)
    out["goal_median_us"] = GOAL_POSE_AT_US
    out["goal_met"] = best <= GOAL_POSE_AT_US
    out["smoothing_latency_ns"] = filled_timeline(smoothing, n=2).smoothing_latency_ns
    return out


# ============================================================================================ network
def _sender(ports: list[int], protocols: list[str], rate_hz: float, seconds: float, start_ns: int, conn) -> None:
    """Child process: every 1/rate_hz s send one datagram to each port (absolute deadlines); report the send
    times ``(n_sources, n)`` int64 and the count of send errors through ``conn``."""
    n = int(round(seconds * rate_hz))
    period = 1e9 / rate_hz
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    template = otrk_template()
    send_ns = np.zeros((len(ports), n), dtype=np.int64)
    errors = 0
    now = time.monotonic_ns
    addrs = [("127.0.0.1", p) for p in ports]
    for i in range(n):
        deadline = start_ns + int(i * period)
        while True:
            left = deadline - now()
            if left <= 0:
                break
            time.sleep(left / 1e9 if left > 300_000 else 0)
        t_s = i / rate_hz
        for s, (addr, proto) in enumerate(zip(addrs, protocols)):
            data = freed_packet(s + 1, i, t_s) if proto == "freed" else otrk_packet(template, i, t_s, now())
            t = now()  # just before sendto: encoding is not part of the measured latency
            try:
                sock.sendto(data, addr)
            except OSError:
                errors += 1
                continue
            send_ns[s, i] = t
    sock.close()
    conn.send((send_ns, errors))
    conn.close()


class _Receiver(threading.Thread):
    """One source: socket -> stamp -> decode -> Timeline.push, recording per-sequence times."""

    def __init__(self, protocol: str, n_expected: int) -> None:
        super().__init__(daemon=True)
        self.protocol = protocol
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.timeline = TL.Timeline(RATE, capacity=256, clock="arrival")
        self.arrival = np.zeros(n_expected, dtype=np.int64)
        self.done = np.zeros(n_expected, dtype=np.int64)
        self.received = 0
        self.decode_errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        recv = self.sock.recv
        now = time.monotonic_ns
        push = self.timeline.push
        freed = self.protocol == "freed"
        n = self.arrival.shape[0]
        while not self.stop.is_set():
            try:
                data = recv(65536)
            except socket.timeout:
                continue
            t = now()
            try:
                if freed:
                    sample = decode_freed_sample(data)
                    seq = sample.raw["spare"]
                else:
                    sample = OTK.decode_packet(data)
                    seq = sample.timing.sequence_number
            except ValueError:
                self.decode_errors += 1
                continue
            push(t, sample)
            done = now()
            self.received += 1
            if seq < n:
                self.arrival[seq] = t
                self.done[seq] = done


def run_network(protocols: list[str], rate_hz: float, seconds: float) -> dict:
    n = int(round(seconds * rate_hz))
    receivers = [_Receiver(p, n) for p in protocols]
    for r in receivers:
        r.start()
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    start_ns = time.monotonic_ns() + 300_000_000
    proc = ctx.Process(target=_sender, args=([r.port for r in receivers], protocols, rate_hz, seconds, start_ns,
                                             child))
    proc.start()
    child.close()
    send_ns, send_errors = parent.recv()
    proc.join()
    time.sleep(0.3)  # let the last datagrams drain
    for r in receivers:
        r.stop.set()
    for r in receivers:
        r.join()
        r.sock.close()
    sources = []
    all_lat, all_net, all_proc = [], [], []
    for s, r in enumerate(receivers):
        sent_mask = send_ns[s] > 0
        got = (r.done > 0) & sent_mask
        lat = r.done[got] - send_ns[s][got]
        net = r.arrival[got] - send_ns[s][got]
        proc_ns = r.done[got] - r.arrival[got]
        all_lat.append(lat)
        all_net.append(net)
        all_proc.append(proc_ns)
        c = r.timeline.counters()
        sources.append({
            "protocol": r.protocol,
            "sent": int(sent_mask.sum()),
            "received": int(r.received),
            "lost": int(sent_mask.sum() - got.sum()),
            "decode_errors": r.decode_errors,
            "timeline_pushed": c.pushed,
            "rcvbuf_bytes": r.rcvbuf,
            "send_to_pushed": summarize_ns(lat),
        })
    lat = np.concatenate(all_lat)
    return {
        "sources": sources,
        "rate_hz_per_source": rate_hz,
        "seconds": seconds,
        "send_errors": int(send_errors),
        "sent_total": sum(s["sent"] for s in sources),
        "received_total": sum(s["received"] for s in sources),
        "lost_total": sum(s["lost"] for s in sources),
        "send_to_pushed": summarize_ns(lat),
        "send_to_arrival_stamp": summarize_ns(np.concatenate(all_net)),
        "arrival_stamp_to_pushed": summarize_ns(np.concatenate(all_proc)),
    }


# ============================================================================================ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench tracking", description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=20000, help="timed calls per micro-benchmark")
    ap.add_argument("--latency-seconds", type=float, default=3.0, help="length of each single-source latency run")
    ap.add_argument("--load-seconds", type=float, default=30.0, help="length of the 4-source load run")
    ap.add_argument("--load-rate", type=float, default=1000.0, help="datagrams per second per source")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results JSON")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    TL.warmup()
    print(f"timeline kernels ready in {time.perf_counter() - t0:.2f} s")
    if not EXAMPLES.is_dir():
        print(f"missing {EXAMPLES}", file=sys.stderr)
        return 2

    decode = bench_decode(args.iterations)
    fd = decode["freed_decode_stamp"]
    print(f"FreeD decode + stamp: median {fd['median_us']:.2f} us, p99 {fd['p99_us']:.2f} us "
          f"(goal <= {GOAL_FREED_DECODE_US:g} us median: {'met' if fd['goal_met'] else 'NOT met'}); "
          f"+ Timeline.push: median {decode['freed_decode_stamp_push']['median_us']:.2f} us; "
          f"decode_freed (packet only, no TrackingSample) + stamp: median "
          f"{decode['freed_decode_packet_only_stamp']['median_us']:.2f} us")
    for name, s in decode["opentrackio_per_sample"].items():
        print(f"  OpenTrackIO {name:38s} {s['payload_bytes']:5d} B in {s['datagrams']} datagram(s): "
              f"median {s['median_us']:7.1f} us, p99 {s['p99_us']:7.1f} us")

    pa = bench_pose_at(args.iterations, args.seed)
    print("pose_at (256-sample ring):")
    for label in ("plain", "one_euro"):
        for key in (*TL.MODES, "interpolate_extrapolated", "push_values"):
            s = pa[label][key]
            print(f"  {label:8s} {key:26s} median {s['median_us']:6.2f} us, p99 {s['p99_us']:6.2f} us, "
                  f"max {s['max_us']:7.1f} us")
    print(f"  numpy reference interpolate: median {pa['numpy_reference_interpolate']['median_us']:.1f} us "
          f"(production x{pa['speedup_vs_numpy_reference_median']:.1f} faster; max diff "
          f"{pa['reference_agreement']['max_position_diff_m']:.1e} m, "
          f"{pa['reference_agreement']['max_angle_diff_deg']:.1e} deg)")
    sl = pa["slerp"]
    print(f"  quat_slerp median {sl['production_quat_slerp']['median_us']:.2f} us vs numpy slerp "
          f"{sl['numpy_reference']['median_us']:.2f} us (x{sl['speedup_median']:.1f})")
    print(f"  goal pose_at <= {GOAL_POSE_AT_US:g} us median: {'met' if pa['goal_met'] else 'NOT met'}; "
          f"One Euro (min_cutoff 1 Hz) latency estimate {pa['smoothing_latency_ns'] / 1e6:.1f} ms")

    latency = {}
    for proto in ("freed", "opentrackio"):
        r = run_network([proto], args.load_rate, args.latency_seconds)
        latency[proto] = r
        s = r["send_to_pushed"]
        print(f"receive-to-timeline {proto:11s} ({r['sent_total']} datagrams at {args.load_rate:g}/s): "
              f"p50 {s['median_us']:.0f} us, p99 {s['p99_us']:.0f} us, max {s['max_us']:.0f} us; "
              f"send->stamp p50 {r['send_to_arrival_stamp']['median_us']:.0f} us, "
              f"stamp->pushed p50 {r['arrival_stamp_to_pushed']['median_us']:.0f} us; lost {r['lost_total']}")
    p99 = max(latency[p]["send_to_pushed"]["p99_us"] for p in latency)
    per_proto = {p: latency[p]["send_to_pushed"]["p99_us"] <= GOAL_LATENCY_P99_US for p in latency}
    latency_goal = {"goal_p99_us": GOAL_LATENCY_P99_US, "worst_p99_us": p99, "goal_met": p99 <= GOAL_LATENCY_P99_US,
                    "goal_met_per_protocol": per_proto}
    print(f"  goal receive-to-timeline p99 <= {GOAL_LATENCY_P99_US:g} us: "
          + ", ".join(f"{p} {'met' if ok else 'NOT met'} ({latency[p]['send_to_pushed']['p99_us']:.0f} us)"
                      for p, ok in per_proto.items()))

    load = run_network(["freed", "freed", "opentrackio", "opentrackio"], args.load_rate, args.load_seconds)
    s = load["send_to_pushed"]
    print(f"load 4 sources x {args.load_rate:g}/s x {args.load_seconds:g} s: sent {load['sent_total']}, received "
          f"{load['received_total']}, lost {load['lost_total']}, send errors {load['send_errors']}; "
          f"send->pushed p50 {s['median_us']:.0f} us, p99 {s['p99_us']:.0f} us, max {s['max_us']:.0f} us")
    for src in load["sources"]:
        print(f"  {src['protocol']:11s} sent {src['sent']} received {src['received']} lost {src['lost']} "
              f"(SO_RCVBUF {src['rcvbuf_bytes']} B) p99 {src['send_to_pushed']['p99_us']:.0f} us")
    goals = {
        "freed_decode_stamp_median_us": fd["median_us"],
        "freed_decode_stamp_goal_met": fd["goal_met"],
        "pose_at_goal_met": pa["goal_met"],
        "receive_to_timeline_p99_us": {p: latency[p]["send_to_pushed"]["p99_us"] for p in latency},
        "receive_to_timeline_goal_met": per_proto,
        "load_lost": load["lost_total"],
        "load_no_loss": load["lost_total"] == 0 and load["send_errors"] == 0,
    }
    print(f"\ngoals: {json.dumps(goals)}")
    if not args.no_write:
        payload = {
            "what": "tracking input: decode per packet, Timeline.pose_at, loopback receive-to-timeline latency, "
                    "4-source sustained load",
            "settings": {"iterations": args.iterations, "latency_seconds": args.latency_seconds,
                         "load_seconds": args.load_seconds, "load_rate_hz": args.load_rate, "seed": args.seed,
                         "frame_rate": str(RATE), "rcvbuf_requested": RCVBUF, "gc_disabled_while_timing": True,
                         "cpus": os.cpu_count()},
            "decode": decode,
            "pose_at": pa,
            "latency": {**latency, "goal": latency_goal},
            "load": load,
            "goals": goals,
        }
        stamped, latest = write_results("tracking", payload)
        print(f"wrote {stamped.relative_to(REPO)} and {latest.relative_to(REPO)}")
    return 0
