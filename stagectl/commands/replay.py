"""Replay a take file: send its raw datagrams over UDP with their original timing.

Every datagram recorded by `stagectl record` (all sources) is sent, unchanged, to HOST:PORT at its original
time offset from the first one, divided by --speed. Deadlines are absolute from one start instant, so a late
send never delays the ones after it and the replay does not drift. Ctrl-C or SIGTERM stops it.

Damaged takes (docs/takes.md): every record is length- and CRC-framed, and a record that does not validate is
never sent. A take cut short by a crash (its last record incomplete, a "torn tail") plays up to its last
complete record, with a warning: that is normal after a kill -9 or a power cut. Damage in the middle (a bad
byte, a bad block) is skipped: the replay resumes at the next valid record, so everything after the damage
still plays, and each gap is reported on stderr as "skipped N bytes at offset X, resumed at record K".

Exit status: 0 when every record of the take was sent (a torn tail included); 1 when some sends failed;
3 when the take is damaged -- records lost in the middle, or a corrupt header -- after replaying everything
it could (3 wins over 1); 2 for a bad argument or a file that is not a take.

Example: stagectl replay take.stgtake --to 127.0.0.1:40000 --speed 0.5
"""

from __future__ import annotations

import argparse
import sys

from stagectl.commands._signals import StopOnSignals

HELP = "send the datagrams of a take file to HOST:PORT over UDP with their original timing"

#: exit status when records of the take were lost to damage in the middle of the file
EXIT_DAMAGED = 3
#: gaps listed one per line before the rest are summarised
_MAX_GAP_LINES = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("take", metavar="FILE", help="take file written by stagectl record")
    p.add_argument("--to", required=True, metavar="HOST:PORT", help="destination, e.g. 127.0.0.1:40000")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="playback speed factor (2 = twice as fast; default 1)")


def _parse_destination(text: str) -> tuple[str, int]:
    from stagectl.core.errors import UsageError

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
    from stagectl.core.errors import UsageError
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
    print(f"stagectl replay: {n} datagrams over {take.duration_ns / 1e9:.3f} s from {args.take}, "
          f"to {host}:{port} at speed {args.speed:g}", flush=True)
    _warn_damage(args.take, take)
    with send, StopOnSignals() as signals:
        stats = replay(take, send, args.speed, stop=signals.event)
    print(f"stagectl replay: {signals.reason('done')}: sent {stats.sent} of {n} datagrams in {stats.duration_ns / 1e9:.3f} s"
          f"; lateness mean {stats.late_mean_ns / 1e3:.0f} us, max {stats.late_max_ns / 1e3:.0f} us"
          + (f"; {stats.send_errors} send errors" if stats.send_errors else ""), flush=True)
    if take.damaged:
        gaps = len(take.gaps)
        what = []
        if take.header is not None and take.header.damaged:
            what.append("its header is corrupt")
        if gaps:
            what.append(f"skipped {take.skipped_bytes} bytes in {gaps} gap{'s' if gaps != 1 else ''}, at least "
                        f"{gaps} record{'s' if gaps != 1 else ''} lost in {'it' if gaps == 1 else 'them'}")
        print(f"stagectl replay: error: {args.take} is damaged: {'; '.join(what)} (exit {EXIT_DAMAGED})",
              file=sys.stderr, flush=True)
        return EXIT_DAMAGED
    return 0 if stats.send_errors == 0 else 1


def _warn_damage(path: str, take) -> None:  # noqa: ANN001 - a recording.Take
    """One stderr line for a damaged header, one per gap (the first few), then the torn tail, before the
    replay starts."""
    if take.header is not None and take.header.damaged:
        print(f"stagectl replay: warning: {path}: damaged: the header is corrupt; the records "
              f"after it, from offset {take.header.size}, are read (stage, source names and meta may be lost)",
              file=sys.stderr)
    for gap in take.gaps[:_MAX_GAP_LINES]:
        print(f"stagectl replay: warning: {path}: damaged: {gap}", file=sys.stderr)
    if len(take.gaps) > _MAX_GAP_LINES:
        rest = take.gaps[_MAX_GAP_LINES:]
        print(f"stagectl replay: warning: {path}: damaged: {len(rest)} more gaps, {sum(g.skipped for g in rest)} "
              f"bytes, from offset {rest[0].offset}", file=sys.stderr)
    if take.ignored_bytes:
        print(f"stagectl replay: warning: {path}: ignored {take.ignored_bytes} bytes of torn tail at offset "
              f"{take.good_bytes} (the recording was cut off mid-record, e.g. by a crash or kill -9; "
              f"everything before it plays)", file=sys.stderr)
    sys.stderr.flush()
