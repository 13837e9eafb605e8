#!/usr/bin/env python3
"""Entrance-pupil (nodal) offset per zoom from tracked views of a static board -> the lens file.

Same tool and arguments as `stagectl calibrate pupil`; the capture procedure follows in --help. The logic lives in
stagectl.calibration.pupil (importable, tested); this script only parses arguments and calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from stagectl.commands.calibrate import script_main

    sys.exit(script_main("pupil", doc=__doc__))
