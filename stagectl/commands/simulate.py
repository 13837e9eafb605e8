"""Send simulated tracking packets of a camera move: a stand-in tracker for tests, rehearsals and bring-up.

Plays one of the built-in moves (orbit, dolly, pan, crane, handheld; the same ones a stage's `simulate` key
names) as real UDP packets to HOST:PORT: FreeD D1 (29 bytes, the generic encoder profile unless --profile
says otherwise), OpenTrackIO 1.0.1 (JSON or CBOR, with sequence numbers, sampleTimestamp, sampleRate and
timecode) or OSC (/stagectl/camera/<name>/pose and /lens in one bundle, see docs/osc.md). Packets are paced on
absolute deadlines at an exact rate (--rate 24000/1001 is 23.976 Hz exactly; decimals are read as exact
decimal fractions), so the stream does not drift. A multicast HOST (e.g. 239.135.1.1 for OpenTrackIO source
1) sends multicast with --ttl hops, leaving by --interface if given.

Prints one summary line at start and the number of samples, packets and bytes sent at the end (Ctrl-C,
SIGTERM, --duration or --count). Pair it with `stagectl listen` to check a receiver path end to end:

  stagectl listen --protocol freed --port 40000 &
  stagectl simulate --protocol freed --to 127.0.0.1:40000 --move orbit --rate 59.94 --duration 10
"""

from __future__ import annotations

import argparse
import sys

HELP = "send simulated FreeD / OpenTrackIO / OSC tracking packets of a camera move to HOST:PORT"

_PROTOCOLS = ("freed", "opentrackio", "osc")
_MOVES = ("orbit", "dolly", "pan", "crane", "handheld")  # stagectl.tracking.moves.MOVES, kept import-free


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, choices=_PROTOCOLS, help="what to send")
    p.add_argument(
        "--to",
        required=True,
        metavar="HOST:PORT",
        help="destination, e.g. 127.0.0.1:40000 or 239.135.1.1:55555 (multicast)",
    )
    p.add_argument(
        "--encoding",
        choices=("json", "cbor"),
        default="json",
        help="OpenTrackIO payload encoding (default json)",
    )
    p.add_argument(
        "--camera-id",
        type=int,
        default=1,
        metavar="N",
        help="FreeD camera ID 0..255 / OpenTrackIO source number 1..200 (default 1)",
    )
    p.add_argument("--camera", default="camera", metavar="NAME", help="OSC camera name (default 'camera')")
    p.add_argument("--move", choices=_MOVES, default="orbit", help="camera move (default orbit)")
    p.add_argument(
        "--rate",
        default="60",
        metavar="HZ",
        help="samples per second, exact fractions allowed: 60, 59.94, 24000/1001 (default 60)",
    )
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N samples")
    p.add_argument(
        "--profile",
        default="generic",
        metavar="NAME",
        help="FreeD encoder profile for the raw zoom/focus/spare (default generic)",
    )
    p.add_argument("--ttl", type=int, default=2, metavar="HOPS", help="multicast TTL (default 2)")
    p.add_argument(
        "--interface",
        default=None,
        metavar="ADDR",
        help="IPv4 address of the interface multicast leaves from (default: the routing table's)",
    )


def main(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from stagectl.commands import option_value
    from stagectl.core.errors import UsageError
    from stagectl.tracking.profiles import profile_from_config
    from stagectl.tracking.receiver import TransportError
    from stagectl.tracking.sender import Sender, parse_host_port
    from stagectl.tracking.simulator import Simulator, parse_rate

    host, port = option_value("--to", parse_host_port, args.to)
    rate = option_value("--rate", parse_rate, args.rate)
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration: expected a positive number of seconds, got {args.duration:g}")
    if args.count is not None and args.count <= 0:
        raise UsageError(f"--count: expected a positive number of samples, got {args.count}")
    if args.protocol == "opentrackio" and not 1 <= args.camera_id <= 200:
        raise UsageError(f"--camera-id: expected an OpenTrackIO source number 1..200, got {args.camera_id}")
    if not 0 <= args.camera_id <= 255:
        raise UsageError(f"--camera-id: expected a FreeD camera ID 0..255, got {args.camera_id}")
    if not 0 <= args.ttl <= 255:
        raise UsageError(f"--ttl: expected 0..255 hops, got {args.ttl}")
    profile = option_value("--profile", profile_from_config, args.profile)
    from stagectl.tracking.codecs.osc import valid_camera_name

    if args.protocol == "osc" and not valid_camera_name(args.camera):
        raise UsageError(
            f"--camera: expected printable ASCII without space or '#*,/?[]{{}}', got {args.camera!r}"
        )
    try:
        sender = Sender(
            args.protocol,
            host,
            port,
            encoding=args.encoding,
            osc_camera=args.camera,
            ttl=args.ttl,
            interface=args.interface,
        )
    except (TransportError, ValueError) as exc:
        raise UsageError(f"--to {args.to}: {exc}") from None

    sim = Simulator(
        args.move,
        args.protocol,
        rate,
        sender=sender,
        camera_id=args.camera_id,
        source_number=args.camera_id if args.protocol == "opentrackio" else 1,
        osc_camera=args.camera,
        profile=profile,
    )
    who = {
        "freed": f"FreeD camera ID {args.camera_id} (profile {profile.name})",
        "opentrackio": f"OpenTrackIO {args.encoding.upper()} source number {args.camera_id}",
        "osc": f"OSC camera {args.camera}",
    }[args.protocol]
    limits = []
    if args.count is not None:
        limits.append(f"{args.count} samples")
    if args.duration is not None:
        limits.append(f"{args.duration:g} s")
    kind = "multicast" if sender.multicast else "unicast"
    print(
        f"stagectl simulate: sending {who}, move {args.move}, at {rate.label} Hz ({rate}) to "
        f"{sender.destination[0]}:{port} ({kind}) until {' or '.join(limits) or 'Ctrl-C'}",
        flush=True,
    )

    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, lambda *_: sim.stop(timeout_s=0))
    t0 = time.monotonic()
    reason = "done"
    try:
        sim.run(duration_s=args.duration, count=args.count)
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        sender.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    sent = sim.sent
    packets = sum(s.packets for s in sent)
    nbytes = sum(s.bytes for s in sent)
    ok = sum(1 for s in sent if s.packets)
    print(
        f"stagectl simulate: {reason}: sent {ok} samples ({packets} packets, {nbytes} bytes) in "
        f"{time.monotonic() - t0:.2f} s; {sim.frames_skipped} late frames skipped, "
        f"{sim.send_errors} send errors",
        flush=True,
    )
    if sim.send_errors and not ok:
        print(f"stagectl simulate: error: nothing could be sent to {args.to}", file=sys.stderr)
        return 1
    return 0
