"""Lens calibration data: lens files, Brown-Conrady distortion, evaluation per encoder state, OpenTrackIO lens fields.

* :mod:`stagectl.lens.lensfile` -- the lens file model, its strict loader, :class:`LensEvaluation` (FOV, K,
  frustum, overscan) and :class:`LensTable` (the per-frame fast path).
* :mod:`stagectl.lens.distortion` -- Brown-Conrady in OpenCV's meaning (undistorted -> distorted), its numerical
  inverse and least-squares fits.
* :mod:`stagectl.lens.opentrackio` -- conversions to and from OpenTrackIO ``lens`` fields and ``LensState``.

The file format is documented in docs/lens-file.md; frames and units in docs/conventions.md.
"""

from stagectl.lens.distortion import BrownConrady, DistortionError, distort, undistort
from stagectl.lens.lensfile import (
    Calibration,
    FieldOfView,
    LensEvaluation,
    LensFile,
    LensPoint,
    LensTable,
    Overscan,
    load_lens_file,
)

__all__ = [
    "BrownConrady",
    "DistortionError",
    "distort",
    "undistort",
    "Calibration",
    "FieldOfView",
    "LensEvaluation",
    "LensFile",
    "LensPoint",
    "LensTable",
    "Overscan",
    "load_lens_file",
]
