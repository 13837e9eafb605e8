"""Pure tracking codecs: bytes -> typed frozen values and the exact inverse. No sockets, clocks or shared
state.

* :mod:`stagectl.tracking.codecs.freed` -- FreeD D1 (29-byte messages).
* :mod:`stagectl.tracking.codecs.opentrackio` -- OpenTrackIO ``OTrk`` datagrams, segmentation, JSON / CBOR
  samples.

Decoders raise :class:`stagectl.tracking.errors.DecodeError` (or a subclass) for bad input and nothing else.
"""

from stagectl.tracking.codecs.freed import (
    FreeDPacket,
    decode_freed,
    decode_freed_sample,
    encode_freed,
    freed_checksum,
    freed_to_sample,
    sample_to_freed,
)
from stagectl.tracking.codecs.opentrackio import (
    ENCODING_CBOR,
    ENCODING_JSON,
    CompletePayload,
    OTrkDatagram,
    OTrkHeader,
    Reassembler,
    decode_datagram,
    decode_packet,
    decode_sample,
    encode_datagram,
    encode_payload,
    encode_sample,
    fletcher16,
    parse_payload,
    sample_from_dict,
    sample_to_dict,
    segment_payload,
)

__all__ = [
    "ENCODING_CBOR",
    "ENCODING_JSON",
    "CompletePayload",
    "FreeDPacket",
    "OTrkDatagram",
    "OTrkHeader",
    "Reassembler",
    "decode_datagram",
    "decode_freed",
    "decode_freed_sample",
    "decode_packet",
    "decode_sample",
    "encode_datagram",
    "encode_freed",
    "encode_payload",
    "encode_sample",
    "fletcher16",
    "freed_checksum",
    "freed_to_sample",
    "parse_payload",
    "sample_from_dict",
    "sample_to_dict",
    "sample_to_freed",
    "segment_payload",
]
