"""OpenTrackIO codec: ``OTrk`` datagrams, segmentation, JSON / CBOR payloads and samples.

Pure functions plus one stateful-by-instance :class:`Reassembler`; no sockets, no clocks. References:
``docs/reference/PROTOCOLS.md`` section 2 and the official examples / schemas in
``tests/data/opentrackio/`` (1.0.0, 1.0.1, classic 0.9.3).

Transport (big-endian), 16-byte header then payload:

====== ===== =============================================================================
bytes  size  field
====== ===== =============================================================================
0-3    4     identifier ``b"OTrk"``
4      1     reserved (ignored)
5      1     encoding: ``0x01`` JSON, ``0x02`` CBOR, ``>= 0x80`` vendor (not decodable here)
6-7    2     sequence number (uint16; every segment of one payload carries the same one)
8-11   4     segment offset: byte offset of this segment in the whole payload
12-13  2     bit 15: last (or only) segment; bits 0-14: payload length of *this* datagram
14-15  2     Fletcher-16 over bytes 0-13 and the payload (``sum2 << 8 | sum1``)
====== ===== =============================================================================

Fletcher-16 reduces its two running sums **mod 255** in 1.0.0 and **mod 256** in 1.0.1; the decoder accepts
either (``moduli``) and reports which matched. Encoders default to mod 256.

Samples: :func:`sample_from_dict` turns a decoded payload into a
:class:`~stagectl.core.sample.TrackingSample` with cheap per-field validation (types, finiteness, the
schema's ranges, required keys, ``"OpenTrackIO"`` as the protocol name, ``urn:uuid:`` identifiers) -- no
JSON-schema run per packet. The ``transforms`` list is composed in list order into one pose
``T_tracking_camera`` (stage conventions, OpenTrackIO's pan sign is stagectl's). With a ``scale``, composition
follows scene-graph (Unreal ``FTransform``) rules: a transform's scale scales the translations of the
transforms after it, ``t = t0 + R0 S0 t1 + R0 S0 R1 S1 t2 + ...``, while the orientation is the product of the
rotations alone, ``R = R0 R1 R2 ...`` (scale never tilts or shears the camera). With one transform, its pan /
tilt / roll are passed through unchanged.

Lens values keep OpenTrackIO's units (focal length mm, focus distance m, pupil offset m, offsets mm).
``distortionOffset`` / ``projectionOffset`` are passed through as sent: the specification does not state the
direction of y (Unreal's converter adds ``y / sensor height`` to a y-down normalised principal point), so the
conversion to ``docs/conventions.md``'s principal point (+y up) belongs to the lens code, not to this codec.

Unknown top-level keys (e.g. the examples' ``custom``) are kept in ``TrackingSample.raw`` and re-emitted;
unknown nested keys are ignored. A kept value may nest at most :data:`MAX_RAW_DEPTH` levels and may not share or
contain itself (CBOR's shared references, tags 28/29, can make a 10-byte payload a cycle or a structure
that expands exponentially when re-emitted): either is a :class:`FieldError`. Defaults are not serialised (``subFrame`` 0, ``dropFrame`` false, the default
distortion model ``"Brown-Conrady D-U"``).

Layout: :mod:`~stagectl.tracking.codecs.opentrackio.transport` (the ``OTrk`` header, Fletcher-16, datagram
encode / decode, segmentation and the :class:`Reassembler`), :mod:`~stagectl.tracking.codecs.opentrackio.decode`
(payload parsing, JSON / CBOR with its bounds, the field validators and the sample building with its fast paths)
and :mod:`~stagectl.tracking.codecs.opentrackio.encode` (sample -> object -> payload -> datagrams).
"""

from stagectl.tracking.codecs.opentrackio.decode import (
    MAX_RAW_DEPTH,
    decode_packet,
    decode_sample,
    parse_payload,
    sample_from_dict,
)
from stagectl.tracking.codecs.opentrackio.encode import (
    DEFAULT_PROTOCOL_VERSION,
    camera_sample,
    encode_payload,
    encode_sample,
    sample_to_dict,
)
from stagectl.tracking.codecs.opentrackio.transport import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_SEGMENT_PAYLOAD,
    DEFAULT_PORT,
    ENCODING_CBOR,
    ENCODING_JSON,
    HEADER_LENGTH,
    MAX_SEGMENT_PAYLOAD,
    OTRK_IDENTIFIER,
    CompletePayload,
    OTrkDatagram,
    OTrkHeader,
    Reassembler,
    decode_datagram,
    encode_datagram,
    fletcher16,
    segment_payload,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_SEGMENT_PAYLOAD",
    "DEFAULT_PORT",
    "DEFAULT_PROTOCOL_VERSION",
    "ENCODING_CBOR",
    "ENCODING_JSON",
    "HEADER_LENGTH",
    "MAX_RAW_DEPTH",
    "MAX_SEGMENT_PAYLOAD",
    "OTRK_IDENTIFIER",
    "CompletePayload",
    "OTrkDatagram",
    "OTrkHeader",
    "Reassembler",
    "camera_sample",
    "decode_datagram",
    "decode_packet",
    "decode_sample",
    "encode_datagram",
    "encode_payload",
    "encode_sample",
    "fletcher16",
    "parse_payload",
    "sample_from_dict",
    "sample_to_dict",
    "segment_payload",
]
