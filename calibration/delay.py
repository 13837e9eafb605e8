#!/usr/bin/env python3
"""Tracking delay from a take and its video (camera panning over a static view) -> tracking[].delay_frames.

Same tool and arguments as `stagectl calibrate delay`; the capture procedure follows in --help. The logic lives in
stagectl.calibration.delay (importable, tested); this script only parses arguments and calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from stagectl.commands.calibrate import script_main

    sys.exit(script_main("delay", doc=__doc__))
