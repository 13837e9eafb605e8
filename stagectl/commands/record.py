"""Record raw tracking datagrams from a UDP port into a take file.

Binds a UDP socket (--bind, --port; --group joins a multicast group, e.g. 239.135.1.1 for OpenTrackIO source
1), stamps every datagram with the monotonic clock (time.monotonic_ns) the moment it is read, and appends it
unchanged -- length- and CRC-framed -- to the take file. Each sender IP address is recorded as its own source.
Datagrams are not decoded to be recorded; they are decoded on the side only to count, in the summary, how
many the protocol's codec accepts.

Stops after --duration seconds or --count datagrams, whichever comes first, or on Ctrl-C / SIGTERM, and then
prints a summary. Every datagram is handed to the kernel as it arrives, so a crash or kill -9 of this process
loses nothing already received (a reader plays up to the last complete record). Every record carries its
length and a CRC-32: a reader skips a damaged one and resumes at the next valid record (docs/takes.md).

The port is exclusive, as for `stagectl listen` and `run`: a port another program listens on is an error
naming that program, never a silent share that would take its datagrams. To record a multicast group beside a
running stage, both must share it on purpose (--share here, `share_group: true` in the stage file).

Default ports: FreeD 40000, OpenTrackIO 55555; OSC has none, give --port.
Replay a take with: stagectl replay FILE --to HOST:PORT
"""

from __future__ import annotations

import argparse
import time

from stagectl.commands._signals import StopOnSignals

HELP = "record raw FreeD / OpenTrackIO / OSC datagrams from a UDP port into a take file"

_DEFAULT_PORTS = {"freed": 40000, "opentrackio": 55555}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, choices=("freed", "opentrackio", "osc"),
                   help="what the datagrams are (stored with each record; used for the decode count)")
    p.add_argument("--port", type=int, default=None, metavar="P",
                   help="UDP port (default 40000 for freed, 55555 for opentrackio; required for osc)")
    p.add_argument("--bind", default="0.0.0.0", metavar="A",
                   help="local address to bind, or with --group the interface that joins it (default 0.0.0.0)")
    p.add_argument("--group", default=None, metavar="G", help="IPv4 multicast group to join, e.g. 239.135.1.1")
    p.add_argument("--share", action="store_true",
                   help="multicast only: share the group with programs that also ask to (a stage source with "
                   "share_group: true); without it the port is exclusive")
    p.add_argument("--out", required=True, metavar="FILE", help="take file to write")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N datagrams")
    p.add_argument("--stage", default=None, metavar="NAME", help="stage name stored in the take header")


class _DecodeCounter:
    """Counts how many datagrams (or, for segmented OpenTrackIO, payloads) a protocol's codec accepts."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.ok = 0
        self.failed = 0
        self.segments = 0
        self.first_error = ""
        self._reassemblers: dict[str, object] = {}

    def feed(self, source: str, data: bytes) -> None:
        from stagectl.tracking.errors import DecodeError

        try:
            if self.protocol == "freed":
                from stagectl.tracking.codecs.freed import decode_freed_sample

                decode_freed_sample(data)
            elif self.protocol == "opentrackio":
                from stagectl.tracking.codecs.opentrackio import Reassembler, decode_sample

                r = self._reassemblers.get(source)
                if r is None:
                    r = self._reassemblers[source] = Reassembler()
                payload = r.push(data)  # type: ignore[attr-defined]
                if payload is None:
                    self.segments += 1
                    return
                decode_sample(payload.data, payload.encoding)
            else:
                from pythonosc.osc_packet import OscPacket, ParseError

                try:
                    OscPacket(data)
                except ParseError as exc:
                    raise DecodeError(f"OSC: {exc}") from None
            self.ok += 1
        except (DecodeError, ValueError) as exc:
            self.failed += 1
            if not self.first_error:
                self.first_error = str(exc)


def main(args: argparse.Namespace) -> int:
    import socket

    from stagectl.core.errors import UsageError
    from stagectl.tracking.receiver import bind_failure
    from stagectl.tracking.recording import Recorder, open_udp_receiver

    port = args.port if args.port is not None else _DEFAULT_PORTS.get(args.protocol)
    if port is None:
        raise UsageError(f"--port: {args.protocol} has no default port; give one")
    if not 1 <= port <= 65535:
        raise UsageError(f"--port: expected 1..65535, got {port}")
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration: expected a positive number of seconds, got {args.duration:g}")
    if args.count is not None and args.count <= 0:
        raise UsageError(f"--count: expected a positive number of datagrams, got {args.count}")
    if args.group is not None:
        try:
            first = int(socket.inet_aton(args.group)[0])
        except OSError:
            first = -1
        if not 224 <= first <= 239:
            raise UsageError(f"--group: expected an IPv4 multicast address (224.0.0.0-239.255.255.255), "
                             f"got {args.group!r}")

    if args.share and args.group is None:
        raise UsageError("--share: only a multicast group can be shared; add --group G")
    try:
        sock = open_udp_receiver(port, args.bind, group=args.group, share=args.share)
    except OSError as exc:
        where = f"{args.group or args.bind}:{port}"
        reason = bind_failure(exc, port, args.bind, group=args.group, share=args.share)
        raise UsageError(f"cannot listen on {where}: {reason}") from None
    try:
        try:
            rec = Recorder(args.out, stage=args.stage, overwrite=args.force,
                           meta={"protocol": args.protocol, "port": port, "bind": args.bind, "group": args.group})
        except FileExistsError:
            raise UsageError(f"--out: {args.out} already exists (add --force to overwrite it)") from None
        except OSError as exc:
            raise UsageError(f"--out: cannot create {args.out}: {exc.strerror or exc}") from None
        with rec:
            return _record(args, sock, rec, port)
    finally:
        sock.close()


def _record(args: argparse.Namespace, sock, rec, port: int) -> int:  # noqa: ANN001
    with StopOnSignals() as signals:
        return _record_until_stopped(args, sock, rec, port, signals)


def _record_until_stopped(args: argparse.Namespace, sock, rec, port: int, signals: StopOnSignals) -> int:  # noqa: ANN001
    import socket

    stop = signals.event
    why = {"reason": "stopped"}
    counter = _DecodeCounter(args.protocol)
    names: dict[str, str] = {}
    listen = f"{args.group}:{port} (joined on {args.bind})" if args.group else f"{args.bind}:{port}"
    print(f"stagectl record: listening for {args.protocol} on {listen}, writing {args.out}", flush=True)

    buf = bytearray(65536)
    recv_into = sock.recvfrom_into
    now_ns = time.monotonic_ns
    t_start = now_ns()
    deadline = None if args.duration is None else t_start + int(args.duration * 1e9)
    count = 0
    nbytes = 0
    first_ns = last_ns = 0
    while not stop.is_set():
        if deadline is not None:
            left = deadline - now_ns()
            if left <= 0:
                why["reason"] = "duration reached"
                break
            sock.settimeout(min(0.2, left / 1e9))
        try:
            n, addr = recv_into(buf)
        except socket.timeout:
            continue
        except InterruptedError:  # pragma: no cover - PEP 475 retries, but be safe
            continue
        t = now_ns()
        data = bytes(buf[:n])
        name = names.get(addr[0])
        if name is None:
            name = names[addr[0]] = f"{args.protocol} from {addr[0]}"
        rec.append(t, name, data, args.protocol)
        if count == 0:
            first_ns = t
        last_ns = t
        count += 1
        nbytes += n
        counter.feed(name, data)
        if args.count is not None and count >= args.count:
            why["reason"] = "count reached"
            break

    span = (last_ns - first_ns) / 1e9
    rate = f", {(count - 1) / span:.1f} datagrams/s" if count > 1 and span > 0 else ""
    print(f"stagectl record: {signals.reason(why['reason'])} after {(now_ns() - t_start) / 1e9:.2f} s")
    print(f"  datagrams: {count} ({nbytes} bytes) from {len(names)} sender(s){rate}")
    decoded = f"  decoded OK by the {args.protocol} codec: {counter.ok}, failed: {counter.failed}"
    if counter.segments:
        decoded += f", segments waiting for the rest of their payload: {counter.segments}"
    print(decoded)
    if counter.first_error:
        print(f"  first decode error: {counter.first_error}")
    print(f"  take: {args.out} ({rec.bytes_written} bytes)")
    return 0
