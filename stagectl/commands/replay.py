"""Replay a take file: send its raw datagrams over UDP with their original timing.

Every datagram recorded by `stagectl record` (all sources) is sent, unchanged, to HOST:PORT at its original
time offset from the first one, divided by --speed. Deadlines are absolute from one start instant, so a late
send never delays the ones after it and the replay does not drift. A take cut short by a crash plays up to
its last complete record. Ctrl-C or SIGTERM stops it.

Example: stagectl replay take.stk --to 127.0.0.1:40000 --speed 0.5
"""

from __future__ import annotations

import argparse

from stagectl.commands._signals import StopOnSignals

HELP = "send the datagrams of a take file to HOST:PORT over UDP with their original timing"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("take", metavar="FILE", help="take file written by stagectl record")
    p.add_argument("--to", required=True, metavar="HOST:PORT", help="destination, e.g. 127.0.0.1:40000")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="playback speed factor (2 = twice as fast; default 1)")


def _parse_destination(text: str) -> tuple[str, int]:
    from stagectl.errors import UsageError

    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--to: expected HOST:PORT, e.g. 127.0.0.1:40000, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"--to: port must be a number 1..65535, got {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--to: port must be 1..65535, got {port}")
    return host.strip("[]"), port


def main(args: argparse.Namespace) -> int:
    from stagectl.errors import UsageError
    from stagectl.tracking.recording import TakeFormatError, load_take, replay, udp_sender

    host, port = _parse_destination(args.to)
    if not args.speed > 0 or args.speed != args.speed:
        raise UsageError(f"--speed: expected a positive factor, got {args.speed:g}")
    try:
        take = load_take(args.take)
    except FileNotFoundError:
        raise UsageError(f"{args.take}: no such file") from None
    except TakeFormatError as exc:
        raise UsageError(f"{args.take}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{args.take}: {exc.strerror or exc}") from None
    try:
        send = udp_sender(host, port)
    except ValueError as exc:
        raise UsageError(f"--to: {exc}") from None

    n = len(take.records)
    torn = f" (ignored {take.ignored_bytes} bytes of torn tail)" if take.ignored_bytes else ""
    print(f"stagectl replay: {n} datagrams over {take.duration_ns / 1e9:.3f} s from {args.take}{torn}, "
          f"to {host}:{port} at speed {args.speed:g}", flush=True)
    with send, StopOnSignals() as signals:
        stats = replay(take, send, args.speed, stop=signals.event)
    print(f"stagectl replay: {signals.reason('done')}: sent {stats.sent} of {n} datagrams in {stats.duration_ns / 1e9:.3f} s"
          f"; lateness mean {stats.late_mean_ns / 1e3:.0f} us, max {stats.late_max_ns / 1e3:.0f} us"
          + (f"; {stats.send_errors} send errors" if stats.send_errors else ""))
    return 0 if stats.send_errors == 0 else 1
