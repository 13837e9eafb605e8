"""UDP sender of tracking samples as FreeD, OpenTrackIO (JSON / CBOR, segmented) or OSC packets.

Used by ``stagectl simulate`` and by the network tests. One :class:`Sender` owns one unconnected UDP socket
aimed at ``host:port`` (unicast, or multicast with a TTL and an outgoing interface) and a sequence counter:

* OpenTrackIO: the counter is the ``OTrk`` header sequence number (uint16, wrapping); every segment of one
  payload carries the same number (:func:`~stagectl.tracking.codecs.opentrackio.segment_payload`).
* OSC: the counter is sent as ``/stagectl/camera/<name>/sequence`` (31 bits, wrapping).
* FreeD has no sequence on the wire; the counter still advances (a vendor frame counter, where a profile
  defines one, lives in the sample's spare bits, which the simulator fills).

:meth:`Sender.skip` consumes sequence numbers without sending, which is how tests simulate packet loss.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Final, Self

from stagectl.core.sample import TrackingSample
from stagectl.tracking.codecs.freed import encode_freed, sample_to_freed
from stagectl.tracking.codecs.opentrackio import (
    DEFAULT_MAX_SEGMENT_PAYLOAD,
    ENCODING_CBOR,
    ENCODING_JSON,
    encode_sample,
)
from stagectl.tracking.codecs.osc import SEQUENCE_MODULUS as OSC_SEQUENCE_MODULUS
from stagectl.tracking.codecs.osc import encode_osc
from stagectl.tracking.receiver import TransportError, normalise_protocol

__all__ = ["ENCODINGS", "SendResult", "Sender", "parse_host_port"]

log = logging.getLogger("stagectl.tracking.sender")

ENCODINGS: Final = {"json": ENCODING_JSON, "cbor": ENCODING_CBOR}
_OTRK_SEQUENCE_MODULUS: Final = 1 << 16


def parse_host_port(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; HOST is an IPv4 address or a name, PORT 1..65535.

    Raises ``ValueError`` with the expected form.
    """
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:40000 or 239.135.1.1:55555, got {text!r}")
    host, _, port_text = text.partition(":")
    host = host.strip()
    if not host or not port_text.strip().isdigit():
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:40000 or 239.135.1.1:55555, got {text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"expected a port 1..65535 in HOST:PORT, got {port} in {text!r}")
    return host, port


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one :meth:`Sender.send` put on the wire: the sequence value used, datagrams and bytes."""

    sequence: int
    packets: int
    bytes: int


class Sender:
    """Sends :class:`~stagectl.core.sample.TrackingSample` s to ``host:port`` over UDP.

    :param protocol: ``"freed"``, ``"opentrackio"`` or ``"osc"``.
    :param host: IPv4 address or host name (resolved once, IPv4 only); a multicast address sends multicast.
    :param port: UDP port 1..65535.
    :param encoding: OpenTrackIO payload encoding, ``"json"`` or ``"cbor"``.
    :param osc_camera: ``<name>`` of the OSC addresses (default: the sample's ``raw["camera"]``, else
        ``"camera"``).
    :param ttl: multicast TTL (hops); camdkit uses 2.
    :param interface: IPv4 address of the interface multicast leaves from (``None``: the routing table's).
    :param first_sequence: the first sequence value.
    :param max_segment_payload: OpenTrackIO payload bytes per datagram (default 1484, MTU 1500).
    :param fletcher_modulus: OpenTrackIO checksum modulus, 256 (1.0.1) or 255 (1.0.0).
    :param osc_double: send OSC numbers as float64 instead of float32.

    Raises ``ValueError`` for bad arguments and :class:`~stagectl.tracking.receiver.TransportError` when the
    host cannot be resolved or the socket cannot be set up.
    """

    def __init__(
        self,
        protocol: str,
        host: str,
        port: int,
        *,
        encoding: str = "json",
        osc_camera: str | None = None,
        ttl: int = 2,
        interface: str | None = None,
        first_sequence: int = 0,
        max_segment_payload: int = DEFAULT_MAX_SEGMENT_PAYLOAD,
        fletcher_modulus: int = 256,
        osc_double: bool = False,
    ) -> None:
        self.protocol = normalise_protocol(protocol)
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding: expected json or cbor, got {encoding!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port: expected 1..65535, got {port!r}")
        if not 0 <= ttl <= 255:
            raise ValueError(f"ttl: expected 0..255, got {ttl!r}")
        self.encoding = encoding
        self.osc_camera = osc_camera
        self.max_segment_payload = max_segment_payload
        self.fletcher_modulus = fletcher_modulus
        self.osc_double = osc_double
        self._sequence = first_sequence
        self.packets_sent = 0
        self.bytes_sent = 0
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise TransportError(f"cannot resolve {host!r} to an IPv4 address: {exc}") from None
        self.destination: tuple[str, int] = (str(infos[0][4][0]), port)
        self.multicast = ipaddress.IPv4Address(self.destination[0]).is_multicast
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if self.multicast:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                if interface is not None:
                    iface = str(ipaddress.IPv4Address(interface))
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
            else:  # harmless for unicast, needed for a subnet broadcast address
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        except (OSError, ValueError) as exc:
            sock.close()
            raise TransportError(f"cannot set up a UDP socket to {host}:{port}: {exc}") from None
        self._sock = sock

    @property
    def sequence(self) -> int:
        """The sequence value the next :meth:`send` uses (before wrapping)."""
        return self._sequence

    def skip(self, n: int = 1) -> None:
        """Advance the sequence by ``n`` without sending (simulated loss)."""
        self._sequence += n

    def encode(self, sample: TrackingSample, sequence: int) -> list[bytes]:
        """The datagrams of ``sample`` with ``sequence`` (pure; raises the codec's ``EncodeError``)."""
        if self.protocol == "freed":
            return [encode_freed(sample_to_freed(sample))]
        if self.protocol == "opentrackio":
            return encode_sample(
                sample,
                encoding=ENCODINGS[self.encoding],
                sequence=sequence % _OTRK_SEQUENCE_MODULUS,
                max_segment_payload=self.max_segment_payload,
                modulus=self.fletcher_modulus,
            )
        camera = self.osc_camera
        if camera is None:
            own = sample.raw.get("camera")
            camera = own if isinstance(own, str) else "camera"
        return [encode_osc(sample, camera, sequence=sequence % OSC_SEQUENCE_MODULUS, double=self.osc_double)]

    def send(self, sample: TrackingSample, *, sequence: int | None = None) -> SendResult:
        """Encode and send one sample (with ``sequence``, default the counter, which then advances).

        Raises the codec's ``EncodeError`` for a sample that cannot be encoded and
        :class:`~stagectl.tracking.receiver.TransportError` when the network refuses the datagram.
        """
        seq = self._sequence if sequence is None else sequence
        datagrams = self.encode(sample, seq)
        nbytes = 0
        for d in datagrams:
            self.send_raw(d)
            nbytes += len(d)
        if sequence is None:
            self._sequence += 1
        return SendResult(seq, len(datagrams), nbytes)

    def send_raw(self, datagram: bytes) -> None:
        """Send one datagram as is (tests use it for bad packets)."""
        try:
            self._sock.sendto(datagram, self.destination)
        except OSError as exc:
            raise TransportError(
                f"cannot send to {self.destination[0]}:{self.destination[1]}: {exc.strerror or exc}"
            ) from None
        self.packets_sent += 1
        self.bytes_sent += len(datagram)

    def close(self) -> None:
        """Close the socket (safe to call twice)."""
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
