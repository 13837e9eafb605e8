"""Listen for a tracker and show what it sends: "what is my tracker sending?"

Binds a real UDP socket (unicast, or multicast with --group), decodes every datagram as FreeD, OpenTrackIO
(JSON or CBOR, segmented or not) or OSC (/stagectl/camera/<name>/..., see docs/osc.md), and prints one line
per sample. Bad packets (wrong checksum, truncated, bad fields, not this protocol) are reported on stderr as
they come, and never stop listening. On exit (Ctrl-C, SIGTERM, --count or --duration) it prints per-source
statistics on stderr: packets, bytes, bad packets by reason, packet and accepted-sample rates, arrival jitter,
sequence gaps, duplicates, senders seen, and whether the source is live, stale or lost -- and, when it is not
live, what arrived instead (no packets at all, packets from other cameras only, bad packets).

The port is exclusive: when another program (a running `stagectl run`, another listen, a tracking tool) already
listens on it, listen stops at once with "port 40000 is in use by another process (pid ...)" instead of
silently taking its packets away. A multicast group can be shared on purpose with --share, when every program
on it asks to (a stage's source says `share_group: true`): each then gets every datagram.

Units are those of docs/conventions.md: positions in metres and angles in degrees in the stage convention
(pan positive to the LEFT -- a FreeD pan of +10 deg is shown as -10), the tracking frame (Z up, +Y toward the
main wall); FreeD and OSC poses are the tracked body, OpenTrackIO poses the camera. Lens encoders are
normalised 0..1 (zoom 0 wide, focus 0 infinity); focal length in mm, focus distance in m.

With --json, each sample is one JSON object on stdout with every decoded field (pose keys x_m, y_m, z_m,
pan_deg, tilt_deg, roll_deg; other keys carry their unit in their name, e.g. focal_length_mm,
sample_timestamp_ns) plus "arrival_ns" and "clock": "monotonic" (time.monotonic_ns() when the datagram was
read, before parsing), "source" (the sender ip:port) and "index" (samples printed before this one).

Checklist when nothing arrives (after 3 s listen says what it sees instead): is the tracker sending to this
machine's address and this port (FreeD is usually 40000, OpenTrackIO 55555 multicast 239.135.1.<source
number>)? Is --bind the right interface (0.0.0.0 listens on all)? Does a firewall drop UDP? Is the camera ID /
source number filter (--camera-id) right?

Examples:
  stagectl listen --protocol freed                       # FreeD on 0.0.0.0:40000, any camera ID
  stagectl listen --protocol opentrackio --camera-id 1 --group auto --count 10 --json
  stagectl listen --protocol osc --port 9000 --camera cam-a
  stagectl listen --protocol opentrackio --camera-id 1 --group auto --share   # beside a stage sharing the group
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "listen for a tracker (FreeD, OpenTrackIO, OSC) and print what it sends, with statistics"

_PROTOCOLS = ("freed", "opentrackio", "osc")
_BAD_SHOWN_PER_S = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, choices=_PROTOCOLS, help="what the tracker sends")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="P",
        help="UDP port (default: FreeD 40000, OpenTrackIO 55555, OSC 9000; 0: any free port)",
    )
    p.add_argument(
        "--bind",
        default="0.0.0.0",
        metavar="ADDR",
        help="IPv4 address of the interface to listen on (default 0.0.0.0: all); for multicast, the "
        "interface that joins the group",
    )
    p.add_argument(
        "--group",
        default=None,
        metavar="G",
        help="IPv4 multicast group to join; 'auto' = OpenTrackIO 239.135.1.<--camera-id>",
    )
    p.add_argument(
        "--camera-id",
        type=int,
        default=None,
        metavar="N",
        help="accept only FreeD camera ID N (and 0xFF) / OpenTrackIO source number N (default: all)",
    )
    p.add_argument(
        "--camera",
        action="append",
        default=None,
        metavar="NAME",
        help="OSC: accept only this camera name (repeatable; default: all)",
    )
    p.add_argument(
        "--profile",
        default="generic",
        metavar="NAME",
        help="FreeD encoder profile for zoom/focus/spare (generic, panasonic, sony, mosys, stype, ncam, "
        "zcam, syncrolink; default generic)",
    )
    p.add_argument(
        "--stale-ms",
        type=float,
        default=250.0,
        metavar="MS",
        help="a source silent for this long is reported stale (default 250)",
    )
    p.add_argument(
        "--share",
        action="store_true",
        help="multicast only: share the group and port with other programs that also ask to (a stage source "
        "with share_group: true); without it the port is exclusive",
    )
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N samples")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per sample on stdout")


# ------------------------------------------------------------------------------------------------ output


def _pose_dict(pose: Any) -> dict[str, float]:
    return {
        "x_m": pose.x,
        "y_m": pose.y,
        "z_m": pose.z,
        "pan_deg": pose.pan,
        "tilt_deg": pose.tilt,
        "roll_deg": pose.roll,
    }


def _plain(value: Any) -> Any:
    """Dataclasses -> dicts (``None`` fields dropped, poses with unit-suffixed keys), tuples -> lists."""
    import dataclasses
    from collections.abc import Mapping

    from stagectl.core.sample import Pose

    if isinstance(value, Pose):
        return _pose_dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None or (f.name == "raw" and not v):
                continue
            out[f.name] = _plain(v)
        return out
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def sample_to_json(
    arrival_ns: int, sample: Any, *, source: str | None = None, seq: int | None = None
) -> dict[str, Any]:
    """The JSON object ``stagectl listen --json`` prints for one sample (see the module docstring)."""
    d: dict[str, Any] = {"arrival_ns": arrival_ns, "clock": "monotonic"}
    if seq is not None:
        d["index"] = seq
    if source is not None:
        d["source"] = source
    d.update(_plain(sample))
    return d


def format_sample(t_s: float, sample: Any) -> str:
    """One compact human line: time since the first sample, ids, pose (m, deg), lens, timing."""
    parts = [f"{t_s:10.6f} s", sample.protocol]
    if sample.camera_id is not None:
        parts.append(f"id {sample.camera_id}" + (" (all)" if sample.camera_id == 0xFF else ""))
    if sample.source_number is not None:
        parts.append(f"src {sample.source_number}")
    cam = sample.raw.get("camera")
    if isinstance(cam, str):
        parts.append(f"cam {cam}")
    p = sample.pose
    if p is not None:
        parts.append(
            f"xyz {p.x:+8.4f} {p.y:+8.4f} {p.z:+8.4f} m  pan {p.pan:+9.4f} tilt {p.tilt:+8.4f} "
            f"roll {p.roll:+8.4f} deg ({sample.pose_frame})"
        )
    lens = sample.lens
    if lens is not None:
        enc = lens.encoders
        if enc is not None:
            for name in ("zoom", "focus", "iris"):
                v = getattr(enc, name)
                if v is not None:
                    parts.append(f"{name} {v:.4f}")
        raw = lens.raw_encoders
        if raw is not None and enc is None:
            parts.append(f"raw zoom {raw.zoom} focus {raw.focus}")
        if lens.focal_length_mm is not None:
            parts.append(f"f {lens.focal_length_mm:.2f} mm")
        if lens.focus_distance_m is not None:
            parts.append(f"fd {lens.focus_distance_m:.3f} m")
        if lens.f_stop is not None:
            parts.append(f"F{lens.f_stop:.1f}")
    t = sample.timing
    if t is not None:
        if t.sequence_number is not None:
            parts.append(f"seq {t.sequence_number}")
        if t.timecode is not None:
            tc = t.timecode
            parts.append(
                f"tc {tc.hours:02d}:{tc.minutes:02d}:{tc.seconds:02d}{';' if tc.drop_frame else ':'}"
                f"{tc.frames:02d}"
            )
    if "frame_counter" in sample.raw:
        parts.append(f"counter {sample.raw['frame_counter']}")
    return "  ".join(parts)


def format_stats(st: Any) -> str:
    """Multi-line human statistics of a :class:`ReceiverStats`."""
    bad = ", ".join(f"{k} {v}" for k, v in st.bad.items())
    lines = [
        f"stagectl listen: statistics for {st.address}",
        (
            f"  packets {st.packets} ({st.bytes} bytes), samples {st.samples}, bad {st.bad_total} ({bad}), "
            f"other camera/source {st.other_source}"
        ),
        f"  rate {st.packet_rate_hz:.1f} packets/s, {st.sample_rate_hz:.1f} samples/s over the last second",
    ]
    if st.jitter_std_ns is not None:
        lines.append(
            f"  arrival jitter: std {st.jitter_std_ns / 1e6:.3f} ms, p99 |interval - median| "
            f"{st.jitter_p99_ns / 1e6:.3f} ms"
        )
    lines.append(
        f"  sequence gaps {st.sequence_gaps}, out of order {st.out_of_order}, duplicates {st.duplicates}"
    )
    if st.last_sample_age_ns is None:
        lines.append(f"  state {st.state}: no sample received")
    else:
        lines.append(f"  state {st.state}: last sample {st.last_sample_age_ns / 1e9:.3f} s ago")
    if st.diagnosis:
        lines.append(f"  why: {st.diagnosis}")
    if st.peers:
        lines.append("  senders: " + ", ".join(f"{k} ({v} packets)" for k, v in st.peers.items()))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def _quiet_bad_packet_warnings() -> None:
    """Drop the receiver's WARNING records about bad packets (listen reports each one on stderr itself);
    every other record, and those at other levels, still go through."""
    import logging

    def no_bad_packets(record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and "bad packet" in record.getMessage())

    logger = logging.getLogger("stagectl.tracking.receiver")
    if not any(getattr(f, "__name__", "") == "no_bad_packets" for f in logger.filters):
        logger.addFilter(no_bad_packets)



def main(args: argparse.Namespace) -> int:
    import json
    import queue
    import signal
    import threading
    import time

    from stagectl.commands import option_value
    from stagectl.core.errors import UsageError
    from stagectl.tracking.profiles import profile_from_config
    from stagectl.tracking.receiver import Receiver, opentrackio_group

    if args.count is not None and args.count <= 0:
        raise UsageError(f"--count: expected a positive number of samples, got {args.count}")
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration: expected a positive number of seconds, got {args.duration:g}")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0..65535, got {args.port}")
    if not args.stale_ms > 0:
        raise UsageError(f"--stale-ms: expected a positive number of milliseconds, got {args.stale_ms:g}")
    if args.share and args.group is None:
        raise UsageError("--share: only a multicast group can be shared; add --group G (or --group auto)")
    group = args.group
    if group == "auto":
        if args.protocol != "opentrackio" or args.camera_id is None:
            raise UsageError(
                "--group auto: needs --protocol opentrackio and --camera-id N (the source number)"
            )
        group = option_value("--camera-id", opentrackio_group, args.camera_id)
    profile = option_value("--profile", profile_from_config, args.profile)

    events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def sink(arrival_ns: int, sample: Any) -> None:  # receive thread: hand over, print on the main thread
        events.put(("sample", arrival_ns, sample, rx.current_peer))

    try:
        rx = Receiver(
            args.protocol,
            sink=sink,
            name=f"listen-{args.protocol}",
            bind=args.bind,
            port=args.port,
            group=group,
            camera_id=args.camera_id,
            camera_names=args.camera,
            profile=profile,
            stale_after_ms=args.stale_ms,
            on_bad=lambda bad: events.put(("bad", bad)),
            share=args.share,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rx.start()  # TransportError (a StageError) when the port is taken or the group cannot be joined
    # listen prints every bad packet itself (below): the receiver's own warnings about them would say it twice
    _quiet_bad_packet_warnings()

    def on_sigterm(signum: int, frame: Any) -> None:
        events.put(("stop",))  # SimpleQueue.put is reentrant: safe in a signal handler

    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, on_sigterm)

    filt = []
    if args.camera_id is not None:
        filt.append(
            f"camera ID {args.camera_id}" if args.protocol == "freed" else f"source number {args.camera_id}"
        )
    if args.camera:
        filt.append("camera " + ", ".join(args.camera))
    limits = []
    if args.count is not None:
        limits.append(f"{args.count} samples")
    if args.duration is not None:
        limits.append(f"{args.duration:g} s")
    print(
        f"stagectl listen: listening for {rx.describe()}"
        f"{' (' + '; '.join(filt) + ')' if filt else ''}; stop after {' or '.join(limits) or 'Ctrl-C'}",
        file=sys.stderr,
        flush=True,
    )

    out = sys.stdout
    printed = 0
    first_ns: int | None = None
    bad_window_start = time.monotonic()
    bad_shown = bad_hidden = 0
    t_start = time.monotonic()
    deadline = None if args.duration is None else t_start + args.duration
    hinted = False
    reason = "stopped"
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                reason = "duration reached"
                break
            timeout = 0.25 if deadline is None else max(0.0, min(0.25, deadline - now))
            if not hinted and printed == 0 and now - t_start > 3.0:
                hinted = True
                why = rx.diagnosis(time.monotonic_ns()) or "no sample yet"
                print(
                    f"stagectl listen: nothing decoded yet: {why}; check the tracker's destination address "
                    "and port, --bind, the firewall and --camera-id (see stagectl listen --help)",
                    file=sys.stderr,
                    flush=True,
                )
            try:
                item = events.get(timeout=timeout)
            except queue.Empty:
                continue
            if item[0] == "stop":
                reason = "stopped by signal"
                break
            if item[0] == "bad":
                bad = item[1]
                if now - bad_window_start >= 1.0:
                    if bad_hidden:
                        print(f"stagectl listen: ({bad_hidden} more bad packets not shown)", file=sys.stderr)
                    bad_window_start, bad_shown, bad_hidden = now, 0, 0
                if bad_shown < _BAD_SHOWN_PER_S:
                    bad_shown += 1
                    print(
                        f"stagectl listen: bad packet ({bad.reason}, {bad.size} bytes) from {bad.peer}: "
                        f"{bad.message}",
                        file=sys.stderr,
                        flush=True,
                    )
                else:
                    bad_hidden += 1
                continue
            _, arrival_ns, sample, peer = item
            printed += 1
            if first_ns is None:
                first_ns = arrival_ns
            if args.json:
                obj = sample_to_json(arrival_ns, sample, source=peer, seq=printed - 1)
                out.write(json.dumps(obj, allow_nan=False, default=str) + "\n")
            else:
                out.write(format_sample((arrival_ns - first_ns) / 1e9, sample) + "\n")
            out.flush()
            if args.count is not None and printed >= args.count:
                reason = "count reached"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        rx.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    now_ns = time.monotonic_ns()
    print(
        f"stagectl listen: {reason} after {printed} samples in {time.monotonic() - t_start:.2f} s",
        file=sys.stderr,
    )
    print(format_stats(rx.stats(now_ns)), file=sys.stderr, flush=True)
    if args.count is not None and printed < args.count:
        return 1
    return 0
