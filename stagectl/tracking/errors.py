"""Exceptions of the tracking codecs.

A decoder (``stagectl.tracking.codecs``) raises :class:`DecodeError` -- or one of its subclasses -- for every
kind of bad input, and nothing else. Messages say what was expected and what was received, e.g.
``"FreeD D1: checksum mismatch: expected 0x6E, got 0x6F"``. Encoders reject values that cannot be put on the
wire with :class:`EncodeError`.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DecodeError",
    "EncodeError",
    "FieldError",
    "SegmentError",
    "TruncatedError",
]


class DecodeError(ValueError):
    """Bytes or a decoded object that are not a valid message of the protocol being decoded."""


class TruncatedError(DecodeError):
    """The input is shorter (or longer) than its header or the protocol says it must be."""


class ChecksumError(DecodeError):
    """The checksum carried by the message does not match the one computed over its bytes.

    ``expected`` is the value computed from the bytes (for OpenTrackIO: one per accepted modulus), ``got`` the
    value the message carries.
    """

    def __init__(self, message: str, *, expected: int | tuple[int, ...], got: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


class FieldError(DecodeError):
    """A field of a decoded message has the wrong type, a value out of range, or a required field is missing.

    ``path`` names the field in the wire format's own spelling, e.g. ``"lens.encoders.zoom"``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class SegmentError(DecodeError):
    """Segments of one payload contradict each other (overlaps, two ends, mixed encodings, too big)."""


class EncodeError(ValueError):
    """A value cannot be encoded: out of the wire format's range, not finite, or of the wrong type."""
