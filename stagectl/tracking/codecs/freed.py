"""FreeD D1 codec (Vinten free-d manual v1.4.4, App. A/B; ``docs/reference/PROTOCOLS.md`` section 1).

Pure functions, no sockets or clocks. Layout of the 29-byte D1 message (big-endian):

====== ===== ==============================================================
offset bytes field
====== ===== ==============================================================
0      1     type ``0xD1``
1      1     camera ID (``0xFF`` = all)
2, 5, 8  3   pan, tilt, roll: int24 two's complement, 1/32768 degree
11, 14, 17 3 X, Y, Z: int24 two's complement, 1/64 mm
20, 23 3     zoom, focus: uint24 raw counts
26     2     spare / user: uint16
28     1     checksum ``(0x40 - sum(bytes[0..27])) mod 256``
====== ===== ==============================================================

:class:`FreeDPacket` holds the values in the **protocol's** frame and units (pan positive to the right, mm).
:func:`freed_to_sample` converts to the stage conventions (``docs/conventions.md``): pan negated, mm -> m, the
pose being ``T_tracking_body``; :func:`sample_to_freed` is its inverse.

Negative int24 values are decoded correctly (``0xFFFFFF`` = -1 LSB), not with Unreal's off-by-one.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Final

from stagectl.core.sample import (
    FRAME_BODY,
    PROTOCOL_FREED,
    TrackingSample,
    new_lens_state,
    new_pose,
    new_raw_encoders,
    new_tracking_sample,
    slots_twin,
)
from stagectl.tracking.errors import ChecksumError, DecodeError, EncodeError, TruncatedError
from stagectl.tracking.profiles import EncoderProfile, profile_evaluator

__all__ = [
    "ANGLE_LSB_PER_DEG",
    "FREED_D1",
    "FREED_D1_LENGTH",
    "POSITION_LSB_PER_MM",
    "FreeDPacket",
    "decode_freed",
    "decode_freed_sample",
    "encode_freed",
    "freed_checksum",
    "freed_to_sample",
    "sample_to_freed",
]

FREED_D1: Final = 0xD1
FREED_D1_LENGTH: Final = 29
ANGLE_LSB_PER_DEG: Final = 32768  # 15 fraction bits
POSITION_LSB_PER_MM: Final = 64  # 6 fraction bits
_INT24_MIN: Final = -(1 << 23)
_INT24_MAX: Final = (1 << 23) - 1
_UINT24_MAX: Final = (1 << 24) - 1

# One unpack of the whole message: each 24-bit field as its high 16 bits (int16 for the signed ones, so the
# value sign-extends) and its low byte, ``(high << 8) | low``; then camera ID and spare as they are.
_D1: Final = struct.Struct(">xBhBhBhBhBhBhBHBHBHx")
_D1_UNPACK: Final = _D1.unpack_from


@dataclass(frozen=True, slots=True)
class FreeDPacket:
    """One FreeD D1 message in the protocol's own frame and units.

    * ``camera_id``: 0..255 (0xFF = all).
    * ``pan_deg``, ``tilt_deg``, ``roll_deg``: degrees, FreeD signs (pan positive = pan **right**, tilt up,
      roll clockwise seen from behind). Multiples of 1/32768 degree; the field holds [-256, 256).
    * ``x_mm``, ``y_mm``, ``z_mm``: millimetres in the tracking frame (Z up). Multiples of 1/64 mm in
      [-131072, 131072).
    * ``zoom``, ``focus``: raw uint24 counts; ``spare``: raw uint16 (meaning set by an encoder profile).
    """

    camera_id: int
    pan_deg: float
    tilt_deg: float
    roll_deg: float
    x_mm: float
    y_mm: float
    z_mm: float
    zoom: int
    focus: int
    spare: int


def freed_checksum(message: bytes) -> int:
    """FreeD checksum of the first 28 bytes of ``message``: ``(0x40 - sum(bytes[0..27])) mod 256``."""
    return (0x40 - sum(message[:28])) & 0xFF


_FreeDPacketSlots = slots_twin(FreeDPacket)


def _new_packet(values: tuple) -> FreeDPacket:
    """:class:`FreeDPacket` of a D1 message's fields in :func:`_d1_values`'s order, with plain slot stores like
    the builders of :mod:`stagectl.core.sample`."""
    camera_id, pan_deg, tilt_deg, roll_deg, x_mm, y_mm, z_mm, zoom, focus, spare = values
    o = object.__new__(_FreeDPacketSlots)
    o.camera_id = camera_id
    o.pan_deg = pan_deg
    o.tilt_deg = tilt_deg
    o.roll_deg = roll_deg
    o.x_mm = x_mm
    o.y_mm = y_mm
    o.z_mm = z_mm
    o.zoom = zoom
    o.focus = focus
    o.spare = spare
    o.__class__ = FreeDPacket
    return o


def _check(data: bytes | bytearray | memoryview) -> None:
    """Length, message type and checksum of a D1 message, else the matching :class:`DecodeError`."""
    n = len(data)
    if n != FREED_D1_LENGTH:
        raise TruncatedError(f"FreeD D1: expected {FREED_D1_LENGTH} bytes, got {n}")
    if data[0] != FREED_D1:
        raise DecodeError(f"FreeD: expected message type 0xD1, got 0x{data[0]:02X}")
    # checksum == (0x40 - sum(bytes[0..27])) mod 256  <=>  sum(all 29 bytes) == 0x40 mod 256
    if (sum(data) - 0x40) & 0xFF:
        expected = (0x40 - sum(data[:28])) & 0xFF
        raise ChecksumError(
            f"FreeD D1: checksum mismatch: expected 0x{expected:02X}, got 0x{data[28]:02X}",
            expected=expected,
            got=data[28],
        )


def _d1_values(data) -> tuple:
    """Check a D1 message and return its fields in protocol units: camera id, pan, tilt, roll (degrees),
    x, y, z (mm), zoom, focus (raw), spare."""
    _check(data)
    cam, p1, p0, t1, t0, r1, r0, x1, x0, y1, y0, z1, z0, zm1, zm0, f1, f0, spare = _D1_UNPACK(data)
    return (
        cam,
        (p1 << 8 | p0) / 32768.0,
        (t1 << 8 | t0) / 32768.0,
        (r1 << 8 | r0) / 32768.0,
        (x1 << 8 | x0) / 64.0,
        (y1 << 8 | y0) / 64.0,
        (z1 << 8 | z0) / 64.0,
        zm1 << 8 | zm0,
        f1 << 8 | f0,
        spare,
    )


def decode_freed(data: bytes | bytearray | memoryview) -> FreeDPacket:
    """Decode one 29-byte D1 message (bytes-like) into a :class:`FreeDPacket`.

    Raises :class:`TruncatedError` for a wrong length, :class:`DecodeError` for another message type and
    :class:`ChecksumError` for a bad checksum.
    """
    return _new_packet(_d1_values(data))


def _fixed(value: float, scale: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EncodeError(f"FreeD D1 {name}: expected a finite number, got {value!r}")
    raw = round(value * scale)
    if not _INT24_MIN <= raw <= _INT24_MAX:
        lo, hi = _INT24_MIN / scale, _INT24_MAX / scale
        raise EncodeError(f"FreeD D1 {name}: {value!r} is outside the int24 range [{lo}, {hi}]")
    return raw


def _uint(value: int, maximum: int, name: str) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise EncodeError(f"FreeD D1 {name}: expected an integer in 0..{maximum}, got {value!r}")
    return value


def encode_freed(packet: FreeDPacket) -> bytes:
    """Encode a :class:`FreeDPacket` into the 29-byte D1 message with its checksum.

    Angles round to the nearest 1/32768 degree and positions to the nearest 1/64 mm, so
    ``decode_freed(encode_freed(p)) == p`` for every decoded ``p``. Raises :class:`EncodeError` for values
    outside the fields' ranges or not finite.
    """
    out = bytearray(29)
    out[0] = FREED_D1
    out[1] = _uint(packet.camera_id, 0xFF, "camera_id")
    for offset, value, scale, name in (
        (2, packet.pan_deg, ANGLE_LSB_PER_DEG, "pan_deg"),
        (5, packet.tilt_deg, ANGLE_LSB_PER_DEG, "tilt_deg"),
        (8, packet.roll_deg, ANGLE_LSB_PER_DEG, "roll_deg"),
        (11, packet.x_mm, POSITION_LSB_PER_MM, "x_mm"),
        (14, packet.y_mm, POSITION_LSB_PER_MM, "y_mm"),
        (17, packet.z_mm, POSITION_LSB_PER_MM, "z_mm"),
    ):
        out[offset : offset + 3] = (_fixed(value, scale, name) & _UINT24_MAX).to_bytes(3, "big")
    out[20:23] = _uint(packet.zoom, _UINT24_MAX, "zoom").to_bytes(3, "big")
    out[23:26] = _uint(packet.focus, _UINT24_MAX, "focus").to_bytes(3, "big")
    out[26:28] = _uint(packet.spare, 0xFFFF, "spare").to_bytes(2, "big")
    out[28] = (0x40 - sum(out[:28])) & 0xFF
    return bytes(out)


def freed_to_sample(packet: FreeDPacket, profile: EncoderProfile | None = None) -> TrackingSample:
    """Convert a packet to a :class:`TrackingSample` in the stage conventions.

    The pose is ``T_tracking_body`` (``pose_frame = "body"``): ``x, y, z = mm / 1000`` (metres),
    ``pan = -pan_deg`` (stagectl pan is positive to the left), tilt and roll as sent. Zoom and focus go to
    ``lens.raw_encoders``; the spare field to ``raw["spare"]``. With a ``profile``, the lens also gets the
    normalised encoders and physical values it defines, and ``raw`` gets ``frame_counter`` /
    ``tracking_quality`` where the profile defines them.
    """
    p = packet
    return _to_sample((p.camera_id, p.pan_deg, p.tilt_deg, p.roll_deg, p.x_mm, p.y_mm, p.z_mm, p.zoom, p.focus,
                       p.spare), profile)


def _to_sample(values: tuple, profile: EncoderProfile | None) -> TrackingSample:
    """:func:`freed_to_sample` on the packet's fields: each object built once, with the per-packet builders of
    :mod:`stagectl.core.sample`. ``values``: a D1 message's fields in :func:`_d1_values`'s order."""
    camera_id, pan_deg, tilt_deg, roll_deg, x_mm, y_mm, z_mm, zoom, focus, spare = values
    raw: dict[str, int] = {"spare": spare}
    raw_encoders = new_raw_encoders(focus=focus, zoom=zoom)
    if profile is None:
        lens = new_lens_state(raw_encoders=raw_encoders)
    else:
        encoders, focal_length_mm, focus_distance_m, f_stop, frame_counter, tracking_quality = (
            profile_evaluator(profile)(zoom, focus, spare)
        )
        lens = new_lens_state(
            focal_length_mm=focal_length_mm,
            focus_distance_m=focus_distance_m,
            f_stop=f_stop,
            encoders=encoders,
            raw_encoders=raw_encoders,
        )
        if frame_counter is not None:
            raw["frame_counter"] = frame_counter
        if tracking_quality is not None:
            raw["tracking_quality"] = tracking_quality
    pose = new_pose(x=x_mm / 1000.0, y=y_mm / 1000.0, z=z_mm / 1000.0, pan=-pan_deg, tilt=tilt_deg, roll=roll_deg)
    return new_tracking_sample(
        protocol=PROTOCOL_FREED, pose=pose, pose_frame=FRAME_BODY, lens=lens, camera_id=camera_id, raw=raw
    )


def sample_to_freed(
    sample: TrackingSample,
    *,
    camera_id: int | None = None,
    zoom: int | None = None,
    focus: int | None = None,
    spare: int | None = None,
) -> FreeDPacket:
    """Inverse of :func:`freed_to_sample`: a :class:`FreeDPacket` from a sample's pose (stage conventions).

    ``pan_deg = -pose.pan``, ``x_mm = pose.x * 1000`` etc. ``camera_id``, ``zoom``, ``focus`` and ``spare``
    default to the sample's own (``camera_id``, ``lens.raw_encoders``, ``raw["spare"]``), else 0xFF / 0.
    Positions are rounded to the protocol's resolution only when encoded. Raises :class:`EncodeError` when
    the sample has no pose.
    """
    pose = sample.pose
    if pose is None:
        raise EncodeError("FreeD D1: the sample has no pose to encode")
    raw_enc = sample.lens.raw_encoders if sample.lens is not None else None
    if camera_id is None:
        camera_id = sample.camera_id if sample.camera_id is not None else 0xFF
    if zoom is None:
        zoom = raw_enc.zoom if raw_enc is not None and raw_enc.zoom is not None else 0
    if focus is None:
        focus = raw_enc.focus if raw_enc is not None and raw_enc.focus is not None else 0
    if spare is None:
        spare = sample.raw.get("spare", 0) if sample.protocol == PROTOCOL_FREED else 0
    return FreeDPacket(
        camera_id=camera_id,
        pan_deg=-pose.pan + 0.0,  # + 0.0 turns -0.0 into 0.0
        tilt_deg=pose.tilt,
        roll_deg=pose.roll,
        x_mm=_to_mm(pose.x),
        y_mm=_to_mm(pose.y),
        z_mm=_to_mm(pose.z),
        zoom=zoom,
        focus=focus,
        spare=spare,
    )


def _to_mm(metres: float) -> float:
    """Metres -> mm, snapped to the 1/64 mm grid when within rounding noise of it (exact inverse of /1000)."""
    mm = metres * 1000.0
    if math.isfinite(mm):
        snapped = round(mm * 64.0) / 64.0
        if abs(snapped - mm) <= 1e-9 * max(1.0, abs(mm)):
            return snapped
    return mm


def decode_freed_sample(
    data: bytes | bytearray | memoryview, profile: EncoderProfile | None = None
) -> TrackingSample:
    """``freed_to_sample(decode_freed(data), profile)``: bytes straight to a stage-convention sample.

    Same checks and the same values as that composition, without building the intermediate
    :class:`FreeDPacket`.
    """
    return _to_sample(_d1_values(data), profile)
