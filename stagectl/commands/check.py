"""Validate a stage file and print what it describes.

Reports every problem as FILE:LINE: KEY: what was expected, and exits 2 when the file is invalid.
On success prints walls, cabinet counts, pixel totals, processors, outputs with canvas usage, cameras, render
and sync settings (or the same as JSON with --json).
"""

from __future__ import annotations

import argparse
import json

HELP = "validate a stage file and print a summary of walls, cabinets, processors, outputs and cameras"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, e.g. stages/demo.yaml")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def main(args: argparse.Namespace) -> int:
    from stagectl.stage import load_stage
    from stagectl.stage.summary import format_summary, stage_summary

    summary = stage_summary(load_stage(args.stage))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
