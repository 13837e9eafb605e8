"""The error of the colour pipeline (:mod:`stagectl.color`).

A :class:`ColorError` is a :class:`stagectl.core.errors.StageError`: its message is one complete line (a bad OCIO
config name or path, an unknown colour space, display or view, a grade file OCIO cannot read, a bit depth the
quantiser does not know), so the CLI prints it without a traceback.
"""

from __future__ import annotations

from stagectl.core.errors import StageError

__all__ = ["ColorError"]


class ColorError(StageError):
    """A colour setting or file that cannot be used; the message names the value and what was expected."""

    exit_code = 2
