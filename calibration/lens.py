#!/usr/bin/env python3
"""Lens calibration: board photos (one folder, or zoom/focus subfolders) -> a lens file, its evidence and a PNG report.

Same tool and arguments as `stagectl calibrate lens`; the capture procedure follows in --help. The logic lives in
stagectl.calibration.lens (importable, tested); this script only parses arguments and calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from stagectl.commands.calibrate import script_main

    sys.exit(script_main("lens", doc=__doc__))
