"""Calibration toolkit: importable library code behind ``stagectl calibrate ...`` and ``calibration/*.py``.

* :mod:`stagectl.calibration.lens` -- board detection (checkerboard, ChArUco), ``cv2.calibrateCamera`` with
  per-view RMS, outlier views and corner coverage; conversion to lens-file millimetres; lens files from one
  folder or a zoom/focus grid of folders.
* :mod:`stagectl.calibration.pupil` -- entrance-pupil offset along the optical axis from tracked views of a
  static board (closed-form 1-D least squares).
* :mod:`stagectl.calibration.handeye` -- tracker-to-camera offset ``T_body_camera`` with
  ``cv2.calibrateHandEye`` / ``cv2.calibrateRobotWorldHandEye``; the frame conversions to and from OpenCV.
* :mod:`stagectl.calibration.wall` -- wall registration from surveyed points (rigid fit) or from the renderer's
  ArUco-per-cabinet pattern seen by the tracked camera (PnP per image, Lie mean).
* :mod:`stagectl.calibration.delay` -- tracking delay from a take and its video by cross-correlating the tracked
  angular rate with the measured image motion.
* :mod:`stagectl.calibration.report` -- self-describing results (inputs with sha256, residuals, command line,
  date, version), the PNG report drawn with OpenCV, and comment-preserving edits of lens and stage files.

Calibration code speaks OpenCV (pixel centres at integers, camera frame x right / y down / z forward) and
converts to the stagectl conventions (docs/conventions.md) at its edges; every function names the frame of what
it takes and returns. Importing this package is cheap; the submodules import OpenCV.
"""

from __future__ import annotations

from stagectl.core.errors import StageError

__all__ = ["CalibrationError"]


class CalibrationError(StageError):
    """Calibration input that cannot give a result (no detections, too few views, degenerate motion, ...).

    The message says what was missing and what to capture instead; the CLI prints it without a traceback.
    """

    exit_code = 1
