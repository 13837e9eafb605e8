#!/usr/bin/env python3
"""In-camera LED wall colour calibration: patch sequence for the wall, then the solve from the camera's frames ->
a CLF (target-to-screen matrix + per-channel EOTF correction) and an OCIO config with a calibrated display.

Same tool and arguments as `stagectl calibrate colour`; the capture procedure follows in --help. The logic lives in
stagectl.color.calibration (importable, tested); this script only parses arguments and calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from stagectl.commands.calibrate import script_main

    sys.exit(script_main("colour", doc=__doc__))
