#!/usr/bin/env python3
"""Tracker-to-camera offset (hand-eye calibration) from tracked views of a static board -> the stage file's tracker_offset.

Same tool and arguments as `stagectl calibrate handeye`; the capture procedure follows in --help. The logic lives in
stagectl.calibration.handeye (importable, tested); this script only parses arguments and calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from stagectl.commands.calibrate import script_main

    sys.exit(script_main("handeye", doc=__doc__))
