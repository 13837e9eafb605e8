"""FreeD D1 codec (Vinten free-d manual v1.4.4, App. A/B; ``shared/reference/PROTOCOLS.md`` section 1).

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

from stagectl.tracking.errors import ChecksumError, DecodeError, EncodeError, TruncatedError
from stagectl.tracking.profiles import EncoderProfile, apply_profile
from stagectl.tracking.sample import (
    FRAME_BODY,
    PROTOCOL_FREED,
    LensState,
    Pose,
    RawEncoders,
    TrackingSample,
)

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

# Each 24-bit field is read as the big-endian 32-bit integer of its 3 bytes plus the next byte, shifted right
# by 8 (arithmetic for the signed ones, so it sign-extends). The last such read (focus, offset 23) ends at
# byte 26, inside the message.
_I32: Final = struct.Struct(">i")
_U32: Final = struct.Struct(">I")
_U16: Final = struct.Struct(">H")


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


def decode_freed(data: bytes | bytearray | memoryview) -> FreeDPacket:
    """Decode one 29-byte D1 message (bytes-like) into a :class:`FreeDPacket`.

    Raises :class:`TruncatedError` for a wrong length, :class:`DecodeError` for another message type and
    :class:`ChecksumError` for a bad checksum.
    """
    n = len(data)
    if n != FREED_D1_LENGTH:
        raise TruncatedError(f"FreeD D1: expected {FREED_D1_LENGTH} bytes, got {n}")
    if data[0] != FREED_D1:
        raise DecodeError(f"FreeD: expected message type 0xD1, got 0x{data[0]:02X}")
    expected = (0x40 - sum(data[:28])) & 0xFF
    if expected != data[28]:
        raise ChecksumError(
            f"FreeD D1: checksum mismatch: expected 0x{expected:02X}, got 0x{data[28]:02X}",
            expected=expected,
            got=data[28],
        )
    unpack = _I32.unpack_from
    return FreeDPacket(
        data[1],
        (unpack(data, 2)[0] >> 8) / 32768.0,
        (unpack(data, 5)[0] >> 8) / 32768.0,
        (unpack(data, 8)[0] >> 8) / 32768.0,
        (unpack(data, 11)[0] >> 8) / 64.0,
        (unpack(data, 14)[0] >> 8) / 64.0,
        (unpack(data, 17)[0] >> 8) / 64.0,
        _U32.unpack_from(data, 20)[0] >> 8,
        _U32.unpack_from(data, 23)[0] >> 8,
        _U16.unpack_from(data, 26)[0],
    )


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
    raw: dict[str, int] = {"spare": packet.spare}
    lens = LensState(raw_encoders=RawEncoders(focus=packet.focus, zoom=packet.zoom))
    if profile is not None:
        reading = apply_profile(profile, packet.zoom, packet.focus, packet.spare)
        lens = LensState(
            focal_length_mm=reading.focal_length_mm,
            focus_distance_m=reading.focus_distance_m,
            f_stop=reading.f_stop,
            encoders=reading.encoders,
            raw_encoders=lens.raw_encoders,
        )
        if reading.frame_counter is not None:
            raw["frame_counter"] = reading.frame_counter
        if reading.tracking_quality is not None:
            raw["tracking_quality"] = reading.tracking_quality
    return TrackingSample(
        protocol=PROTOCOL_FREED,
        pose=Pose(
            packet.x_mm / 1000.0,
            packet.y_mm / 1000.0,
            packet.z_mm / 1000.0,
            -packet.pan_deg,
            packet.tilt_deg,
            packet.roll_deg,
        ),
        pose_frame=FRAME_BODY,
        lens=lens,
        camera_id=packet.camera_id,
        raw=raw,
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
        camera_id,
        -pose.pan + 0.0,  # + 0.0 turns -0.0 into 0.0
        pose.tilt,
        pose.roll,
        _to_mm(pose.x),
        _to_mm(pose.y),
        _to_mm(pose.z),
        zoom,
        focus,
        spare,
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
    """``freed_to_sample(decode_freed(data), profile)``: bytes straight to a stage-convention sample."""
    return freed_to_sample(decode_freed(data), profile)
