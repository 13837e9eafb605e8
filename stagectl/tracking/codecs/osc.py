"""OSC tracking codec: the ``/stagectl/camera/<name>/...`` address space (``docs/osc.md``).

Pure functions over python-osc's message parsing and building (``OscMessage``, ``OscMessageBuilder``,
``OscBundleBuilder`` and the primitive readers of ``pythonosc.parsing.osc_types``); no sockets, clocks or
shared state. Addresses, arguments and units:

=================================================  ======================================================
address                                            arguments
=================================================  ======================================================
``/stagectl/camera/<name>/pose``                   ``x y z pan tilt roll``: metres, degrees
``/stagectl/camera/<name>/lens``                   ``zoom focus [iris]``: normalised 0..1
``/stagectl/camera/<name>/focal_length``           ``mm`` (> 0)
``/stagectl/camera/<name>/focus_distance``         ``m`` (> 0)
``/stagectl/camera/<name>/sequence``               ``n``: integer 0..2**31-1, +1 per sample (optional)
=================================================  ======================================================

* The pose is ``T_tracking_body`` in the stagectl conventions (``docs/conventions.md``): right-handed, Z up,
  Y forward at zero rotation, ``R = Rz(pan) @ Rx(tilt) @ Ry(roll)``, pan positive to the **left**
  (OpenTrackIO's sign, the opposite of FreeD's), tilt positive up, roll positive clockwise seen from behind
  the camera. The decoded sample has ``pose_frame = "body"`` so the stage's tracker offset applies, as for
  FreeD.
* Lens encoders use OpenTrackIO's directions: zoom 0 = wide, 1 = tele; focus 0 = infinity, 1 = closest;
  iris 0 = open, 1 = closed.
* Numbers may be sent as ``f`` (float32), ``d`` (float64), ``i`` (int32) or ``h`` (int64) arguments; anything
  else, a wrong argument count, a non-finite value or a value out of range is a :class:`FieldError`. A message
  must be exactly as long as its arguments say (python-osc alone would pad a float cut short with zeros):
  otherwise :class:`TruncatedError`.
* A **bundle** (nested bundles too, up to :data:`MAX_BUNDLE_DEPTH` levels) is one instant: all its messages
  for one camera form **one** sample. Two messages of the same kind for one camera in one bundle are an error.
  A bundle's time tag (when not "immediately") is kept as the raw 64-bit NTP value in
  ``sample.raw["osc_timetag"]``; it is never compared with a local clock here.
* Messages outside ``/stagectl/camera/`` are ignored inside a bundle (as OSC receivers ignore unmatched
  addresses); a datagram without any ``/stagectl/camera/`` message is a :class:`DecodeError`. An unknown leaf
  under ``/stagectl/camera/<name>/`` is a :class:`FieldError`, so a typo is loud.
* ``<name>`` is 1..64 printable ASCII characters without space or any of ``# * , / ? [ ] { }`` (OSC pattern
  characters); it is carried in ``sample.raw["camera"]``.

Decoding raises only :class:`~stagectl.tracking.errors.DecodeError` and its subclasses (python-osc's
``ParseError`` s, ``UnicodeDecodeError`` and friends are caught and wrapped). Type tags are checked before
python-osc parses a message, so python-osc never logs "Unhandled parameter type" on the root logger for our
input. Encoding raises :class:`~stagectl.tracking.errors.EncodeError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from pythonosc import osc_message
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import BuildError, OscMessageBuilder
from pythonosc.parsing import osc_types

from stagectl.core.sample import FRAME_BODY, LensEncoders, LensState, Pose, Timing, TrackingSample
from stagectl.tracking.errors import DecodeError, EncodeError, FieldError, TruncatedError

__all__ = [
    "packet_messages",
    "ADDRESS_PREFIX",
    "DEFAULT_PORT",
    "MAX_BUNDLE_DEPTH",
    "PROTOCOL_OSC",
    "SEQUENCE_MODULUS",
    "camera_address",
    "decode_osc",
    "decode_osc_sample",
    "encode_osc",
    "valid_camera_name",
]

PROTOCOL_OSC: Final = "OSC"
"""``TrackingSample.protocol`` of a sample decoded from OSC."""
ADDRESS_PREFIX: Final = "/stagectl/camera/"
DEFAULT_PORT: Final = 9000
MAX_BUNDLE_DEPTH: Final = 4
SEQUENCE_MODULUS: Final = 1 << 31
"""``/sequence`` values are OSC int32, non-negative: they wrap from 2**31 - 1 to 0."""

_BUNDLE_PREFIX: Final = b"#bundle\x00"
_IMMEDIATE_TIMETAG: Final = 1
_NUMERIC_TAGS: Final = frozenset("fdih")
_FORBIDDEN_NAME_CHARS: Final = frozenset(" #*,/?[]{}")
_MAX_NAME: Final = 64
_U64: Final = struct.Struct(">Q")
_I32: Final = struct.Struct(">i")
# leaf -> (minimum, maximum) argument count
_ARITY: Final = {
    "pose": (6, 6),
    "lens": (2, 3),
    "focal_length": (1, 1),
    "focus_distance": (1, 1),
    "sequence": (1, 1),
}
# python-osc raises its own ParseError classes, plus a few builtins it does not catch (bad UTF-8 in a string,
# struct errors, deep recursion); every one of them becomes a DecodeError.
_PARSE_FAILURES: Final = (
    osc_types.ParseError,
    osc_message.ParseError,
    ValueError,  # includes UnicodeDecodeError
    IndexError,
    TypeError,
    OverflowError,
    struct.error,
    RecursionError,
)


def valid_camera_name(name: object) -> bool:
    """True when ``name`` can be the ``<name>`` part of an address (see the module docstring)."""
    return (
        isinstance(name, str)
        and 1 <= len(name) <= _MAX_NAME
        and all(33 <= ord(ch) <= 126 and ch not in _FORBIDDEN_NAME_CHARS for ch in name)
    )


def camera_address(name: str, leaf: str) -> str:
    """``/stagectl/camera/<name>/<leaf>``; raises :class:`EncodeError` for a bad name or leaf."""
    if not valid_camera_name(name):
        raise EncodeError(
            f"OSC: camera name must be 1..{_MAX_NAME} printable ASCII characters without space or "
            f"'#*,/?[]{{}}', got {name!r}"
        )
    if leaf not in _ARITY:
        raise EncodeError(f"OSC: unknown leaf {leaf!r}; expected one of {', '.join(_ARITY)}")
    return f"{ADDRESS_PREFIX}{name}/{leaf}"


# ------------------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _Parts:
    """What one bundle (or message) said about one camera, before it becomes a sample."""

    pose: Pose | None = None
    encoders: LensEncoders | None = None
    focal_length_mm: float | None = None
    focus_distance_m: float | None = None
    sequence: int | None = None
    seen: set[str] = field(default_factory=set)


def _walk(data: bytes, depth: int, timetag: int | None) -> Iterator[tuple[bytes, int | None]]:
    """Yield ``(message datagram, enclosing bundle time tag)`` for every message in an OSC packet."""
    if data[:1] == b"/":
        yield data, timetag
        return
    if not data.startswith(_BUNDLE_PREFIX):
        raise DecodeError(f"OSC: expected a message ('/...') or a bundle ('#bundle'), got {data[:8]!r}")
    if depth >= MAX_BUNDLE_DEPTH:
        raise DecodeError(f"OSC: bundles nested deeper than {MAX_BUNDLE_DEPTH} levels")
    if len(data) < 16:
        raise TruncatedError(f"OSC: a bundle needs 16 header bytes, got {len(data)}")
    tag = _U64.unpack_from(data, 8)[0]
    inner_tag = None if tag == _IMMEDIATE_TIMETAG else tag
    index = 16
    n = len(data)
    while index < n:
        if n - index < 4:
            raise TruncatedError(f"OSC: bundle element size cut off at byte {index} of {n}")
        size = _I32.unpack_from(data, index)[0]
        index += 4
        if size <= 0 or size > n - index:
            raise TruncatedError(
                f"OSC: bundle element of {size} bytes at byte {index}, {n - index} bytes left in the datagram"
            )
        yield from _walk(
            data[index : index + size], depth + 1, inner_tag if inner_tag is not None else timetag
        )
        index += size


def packet_messages(data: bytes) -> list[tuple[bytes, int | None]]:
    """The ``(message datagram, enclosing bundle time tag or None)`` of every message in an OSC packet, bundles
    unpacked in order (at most :data:`MAX_BUNDLE_DEPTH` deep). Raises :class:`DecodeError` for anything that is
    not a well-formed OSC packet (a message is returned as it is; its own contents are not checked here)."""
    return list(_walk(data, 0, None))


def _split_address(address: str) -> tuple[str, str] | None:
    """``(name, leaf)`` of a ``/stagectl/camera/<name>/<leaf>`` address, ``None`` for a foreign address."""
    if not address.startswith(ADDRESS_PREFIX):
        return None
    rest = address[len(ADDRESS_PREFIX) :].split("/")
    if len(rest) != 2 or not valid_camera_name(rest[0]):
        raise FieldError(
            address,
            "expected /stagectl/camera/<name>/<leaf>, a name of printable ASCII without space or '#*,/?[]{}'",
        )
    return rest[0], rest[1]


def _number(value: Any, address: str, index: int) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise FieldError(f"{address}[{index}]", f"expected a finite number, got {v!r}")
    return v


def _unit(value: float, address: str, index: int) -> float:
    if not 0.0 <= value <= 1.0:
        raise FieldError(f"{address}[{index}]", f"expected a normalised encoder value in 0..1, got {value!r}")
    return value


def _positive(value: float, address: str, what: str) -> float:
    if not value > 0.0:
        raise FieldError(address, f"expected {what} > 0, got {value!r}")
    return value


def _parse_message(dgram: bytes) -> tuple[str, str, list[Any]] | None:
    """``(name, leaf, numeric args)`` of one message datagram; ``None`` for a foreign address."""
    address, index = osc_types.get_string(dgram, 0)
    parts = _split_address(address)
    if parts is None:
        return None
    name, leaf = parts
    arity = _ARITY.get(leaf)
    if arity is None:
        raise FieldError(address, f"unknown leaf {leaf!r}; expected one of {', '.join(_ARITY)}")
    if index >= len(dgram):
        tags, end = "", index
    else:
        tags, end = osc_types.get_string(dgram, index)
        if not tags.startswith(","):
            raise FieldError(address, f"expected a type tag string starting with ',', got {tags!r}")
        tags = tags[1:]
    bad = set(tags) - _NUMERIC_TAGS
    if bad:
        raise FieldError(address, f"expected number arguments (type tags f, d, i, h), got type tags {tags!r}")
    if not arity[0] <= len(tags) <= arity[1]:
        want = str(arity[0]) if arity[0] == arity[1] else f"{arity[0]} or {arity[1]}"
        raise FieldError(address, f"expected {want} arguments, got {len(tags)}")
    # python-osc pads a float cut short with zeros (a Reaktor quirk), so check the length here: an OSC message
    # is exactly its address, its type tags and 4 bytes per f/i, 8 per d/h argument.
    need = end + sum(8 if t in "dh" else 4 for t in tags)
    if len(dgram) != need:
        raise TruncatedError(
            f"{address}: arguments {tags!r} need a {need}-byte message, got {len(dgram)} bytes"
        )
    args = OscMessage(dgram).params  # python-osc parses the (pre-checked) arguments
    if len(args) != len(tags):
        raise TruncatedError(f"{address}: expected {len(tags)} arguments, parsed {len(args)}")
    return name, leaf, args


def _apply(parts: _Parts, address: str, leaf: str, args: list[Any]) -> None:
    if leaf in parts.seen:
        raise FieldError(address, "sent twice in one bundle; a bundle is one sample")
    parts.seen.add(leaf)
    if leaf == "sequence":
        if type(args[0]) is not int or not 0 <= args[0] < SEQUENCE_MODULUS:
            raise FieldError(address, f"expected an integer 0..{SEQUENCE_MODULUS - 1}, got {args[0]!r}")
        parts.sequence = args[0]
        return
    values = [_number(v, address, i) for i, v in enumerate(args)]
    if leaf == "pose":
        x, y, z, pan, tilt, roll = values
        parts.pose = Pose(x=x, y=y, z=z, pan=pan, tilt=tilt, roll=roll)
    elif leaf == "lens":
        zoom, focus = _unit(values[0], address, 0), _unit(values[1], address, 1)
        iris = _unit(values[2], address, 2) if len(values) == 3 else None
        parts.encoders = LensEncoders(focus=focus, iris=iris, zoom=zoom)
    elif leaf == "focal_length":
        parts.focal_length_mm = _positive(values[0], address, "a focal length in mm")
    else:  # focus_distance
        parts.focus_distance_m = _positive(values[0], address, "a focus distance in m")


def _to_sample(name: str, parts: _Parts, timetag: int | None) -> TrackingSample:
    lens = None
    if parts.encoders is not None or parts.focal_length_mm is not None or parts.focus_distance_m is not None:
        lens = LensState(
            focal_length_mm=parts.focal_length_mm,
            focus_distance_m=parts.focus_distance_m,
            encoders=parts.encoders,
        )
    raw: dict[str, Any] = {"camera": name}
    if timetag is not None:
        raw["osc_timetag"] = timetag
    return TrackingSample(
        protocol=PROTOCOL_OSC,
        pose=parts.pose,
        pose_frame=FRAME_BODY,
        lens=lens,
        timing=None if parts.sequence is None else Timing(sequence_number=parts.sequence),
        raw=raw,
    )


def decode_osc(data: bytes | bytearray | memoryview) -> tuple[TrackingSample, ...]:
    """Decode one OSC datagram (a message or a bundle) into one sample per camera it addresses.

    Samples come in the order each camera first appears; each has ``protocol = "OSC"``, ``pose_frame =
    "body"`` and ``raw["camera"]`` (plus ``raw["osc_timetag"]``, the raw 64-bit NTP time tag of a
    non-immediate bundle). Raises :class:`DecodeError` (or a subclass) for anything that is not a valid
    packet of this address space, and for a packet with no ``/stagectl/camera/`` message at all.
    """
    dgram = bytes(data)
    cameras: dict[str, tuple[_Parts, int | None]] = {}
    try:
        for message, timetag in _walk(dgram, 0, None):
            parsed = _parse_message(message)
            if parsed is None:
                continue
            name, leaf, args = parsed
            entry = cameras.get(name)
            if entry is None:
                entry = cameras[name] = (_Parts(), timetag)
            _apply(entry[0], f"{ADDRESS_PREFIX}{name}/{leaf}", leaf, args)
    except DecodeError:
        raise
    except (osc_types.ParseError, osc_message.ParseError) as exc:
        raise TruncatedError(f"OSC: {exc}") from None
    except _PARSE_FAILURES as exc:
        raise DecodeError(f"OSC: malformed packet: {type(exc).__name__}: {exc}") from None
    if not cameras:
        raise DecodeError(f"OSC: no {ADDRESS_PREFIX}<name>/... message in the packet")
    return tuple(_to_sample(name, parts, tag) for name, (parts, tag) in cameras.items())


def decode_osc_sample(data: bytes | bytearray | memoryview, camera: str | None = None) -> TrackingSample:
    """The one sample of a datagram (``camera=None``: it must address exactly one camera), or ``camera``'s.

    Raises :class:`DecodeError` when the datagram is invalid, addresses several cameras and none was chosen,
    or does not address ``camera``.
    """
    samples = decode_osc(data)
    if camera is None:
        if len(samples) != 1:
            names = ", ".join(s.raw["camera"] for s in samples)
            raise DecodeError(f"OSC: the packet addresses {len(samples)} cameras ({names}); choose one")
        return samples[0]
    for s in samples:
        if s.raw["camera"] == camera:
            return s
    raise DecodeError(f"OSC: the packet has no message for camera {camera!r}")


# ------------------------------------------------------------------------------------------------------------
# Encoding
# ------------------------------------------------------------------------------------------------------------


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EncodeError(f"OSC {what}: expected a finite number, got {value!r}")
    return float(value)


def _message(address: str, values: list[float], double: bool) -> OscMessage:
    builder = OscMessageBuilder(address)
    arg_type = OscMessageBuilder.ARG_TYPE_DOUBLE if double else OscMessageBuilder.ARG_TYPE_FLOAT
    for v in values:
        builder.add_arg(v, arg_type)
    try:
        return builder.build()
    except (BuildError, OverflowError, ValueError, TypeError, struct.error) as exc:  # e.g. 1e39 in float32
        raise EncodeError(f"OSC {address}: cannot encode {values!r}: {exc}") from None


def encode_osc(
    sample: TrackingSample,
    camera: str | None = None,
    *,
    sequence: int | None = None,
    bundle: bool | None = None,
    double: bool = False,
    timetag: int | None = None,
) -> bytes:
    """Encode ``sample`` as one OSC datagram for ``camera`` (default: ``sample.raw["camera"]``).

    Messages, in this order, for what the sample has: ``/pose`` (``sample.pose``, metres / degrees as the
    stagectl conventions), ``/lens`` (``lens.encoders``: zoom and focus required, iris when present),
    ``/focal_length`` (mm), ``/focus_distance`` (m), ``/sequence`` (``sequence``, else
    ``timing.sequence_number``, taken modulo 2**31). Several messages are wrapped in one bundle
    (``bundle=None``); ``bundle=True`` wraps even one, ``bundle=False`` refuses several. Numbers are float32
    (``f``, what most OSC tools send) or float64 with ``double=True``. ``timetag`` is a raw 64-bit NTP time
    tag for the bundle (default: immediately; ``sample.raw["osc_timetag"]`` when the sample came from OSC).

    The pose frame is not converted: a ``"camera"`` pose (OpenTrackIO) is sent as it is, and a receiver will
    read it as ``"body"``. Raises :class:`EncodeError` when nothing can be encoded or a value is out of range.
    """
    if camera is None:
        camera = sample.raw.get("camera") if isinstance(sample.raw.get("camera"), str) else None
        if camera is None:
            raise EncodeError("OSC: no camera name given and the sample has no raw['camera']")
    messages: list[OscMessage] = []
    p = sample.pose
    if p is not None:
        values = [
            _finite(v, f"pose.{n}")
            for n, v in zip(("x", "y", "z", "pan", "tilt", "roll"), (p.x, p.y, p.z, p.pan, p.tilt, p.roll))
        ]
        messages.append(_message(camera_address(camera, "pose"), values, double))
    lens = sample.lens
    if lens is not None:
        enc = lens.encoders
        if enc is not None and (enc.zoom is not None or enc.focus is not None or enc.iris is not None):
            if enc.zoom is None or enc.focus is None:
                raise EncodeError(f"OSC lens: zoom and focus are both required, got {enc!r}")
            values = [_finite(enc.zoom, "lens zoom"), _finite(enc.focus, "lens focus")]
            if enc.iris is not None:
                values.append(_finite(enc.iris, "lens iris"))
            for i, v in enumerate(values):
                if not 0.0 <= v <= 1.0:
                    raise EncodeError(f"OSC lens[{i}]: expected a normalised value in 0..1, got {v!r}")
            messages.append(_message(camera_address(camera, "lens"), values, double))
        if lens.focal_length_mm is not None:
            v = _finite(lens.focal_length_mm, "focal_length")
            if v <= 0:
                raise EncodeError(f"OSC focal_length: expected mm > 0, got {v!r}")
            messages.append(_message(camera_address(camera, "focal_length"), [v], double))
        if lens.focus_distance_m is not None:
            v = _finite(lens.focus_distance_m, "focus_distance")
            if v <= 0:
                raise EncodeError(f"OSC focus_distance: expected m > 0, got {v!r}")
            messages.append(_message(camera_address(camera, "focus_distance"), [v], double))
    if sequence is None and sample.timing is not None:
        sequence = sample.timing.sequence_number
    if sequence is not None:
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
            raise EncodeError(f"OSC sequence: expected a non-negative integer, got {sequence!r}")
        builder = OscMessageBuilder(camera_address(camera, "sequence"))
        builder.add_arg(sequence % SEQUENCE_MODULUS, OscMessageBuilder.ARG_TYPE_INT)
        messages.append(builder.build())
    if not messages:
        raise EncodeError("OSC: the sample has no pose, lens or sequence to encode")
    if timetag is None and sample.protocol == PROTOCOL_OSC:
        raw_tag = sample.raw.get("osc_timetag")
        timetag = raw_tag if isinstance(raw_tag, int) else None
    if timetag is not None and not 0 <= timetag < (1 << 64):
        raise EncodeError(f"OSC timetag: expected a 64-bit NTP time tag, got {timetag!r}")
    wrap = bundle if bundle is not None else (len(messages) > 1 or timetag is not None)
    if not wrap:
        if len(messages) > 1:
            raise EncodeError(f"OSC: {len(messages)} messages need a bundle, but bundle=False")
        return bytes(messages[0].dgram)
    builder_b = OscBundleBuilder(IMMEDIATELY)
    for m in messages:
        builder_b.add_content(m)
    dgram = bytearray(builder_b.build().dgram)
    if timetag is not None:
        dgram[8:16] = _U64.pack(timetag)
    return bytes(dgram)
