#!/usr/bin/env python3
"""Wall registration from surveyed cabinet corners or tracked ArUco views -> the stage's tracking_registration

Same tool and arguments as `stagectl calibrate wall`; the capture procedure follows in --help. The logic lives in
stagectl.calibration.wall (importable, tested); this script only parses arguments and calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from stagectl.commands.calibrate import script_main

    sys.exit(script_main("wall", doc=__doc__))
