"""``stagectl calibrate colour`` (and ``calibration/colour.py``): arguments and the run, over
:mod:`stagectl.color.calibration`.

Two modes: ``--patches DIR`` writes the patch sequence of one output as 16-bit PNG canvases (the images a
player shows on the wall, one per distinct image, with ``frames.txt`` naming the image of every wall frame and
``sequence.json`` the values); ``--captures DIR|VIDEO --out DIR`` solves from the camera's frames and writes
``colour.json`` (the evidence), ``colour.report.png``, and, when no check fails, ``<output>.clf`` and
``config.ocio`` (the stage's OCIO config plus the calibrated display).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

HELP = """\
In-camera colour calibration of one LED output (wall) -> a CLF (3x3 target-to-screen matrix + per-channel EOTF
correction) and an OCIO config with a calibrated display, with ΔE ITP (ITU-R BT.2124) before/after and
OpenVPCal's validation checks.

1. Write the patch sequence for the output (its transfer, peak and canvas from the stage's colour: section):
     stagectl calibrate colour --stage stage.yaml --output proc/out1 --patches patches/
   Play patches/frames.txt on the wall frame-accurately (one image per wall frame, no blending or scaling):
   start slate, desaturated primaries, 18 % grey, primaries, peak white, ColorChecker chart, flat field, EOTF
   ramp, end slate. The slates carry a frame counter that synchronises the capture. With the stage running,
   the console plays the same sequence on the wall itself:
     stagectl ctl stage.yaml color.patches output=proc/out1 action=start

2. Film it: camera genlocked to the wall at the stage's frame rate, locked off, the patch area (inside the
   slate's border) filling about a third of the frame and in focus on the wall's surface, white balance and ISO
   as for the shoot, exposure so that the 18 % grey patch reads 0.18 in camera linear (false colour / meter).
   Record from before the first slate to after the end slate. Export linear frames (16-bit TIFF or EXR) in the
   camera's gamut, or a video file in a colour space the stage's OCIO config knows (--camera-space).

3. Solve:
     stagectl calibrate colour --stage stage.yaml --output proc/out1 --captures frames/ --out cal/
   cal/colour.json (checks, ΔE, matrices, sync, inputs with sha256), cal/colour.report.png, and when every
   check passes cal/<output>.clf and cal/config.ocio. Use it in the stage file:
     colour:
       config: cal/config.ocio
       outputs:
         proc/out1: {display: proc/out1 calibrated, view: Calibrated}

4. Verify: write the corrected patches (--patches DIR --calibration cal/), film and solve them again: the
   "before" figures of that run are the calibrated wall's.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", required=True, metavar="STAGE.yaml", help="stage file (its colour: section)")
    p.add_argument("--output", metavar="PROC/OUT", help="the output (wall feed) to calibrate; default: the only one")
    p.add_argument("--captures", metavar="DIR|VIDEO", help="the camera's frames: a folder of TIFF/EXR/PNG or a video")
    p.add_argument("--patches", metavar="DIR", help="write the patch sequence as 16-bit PNG canvases into DIR")
    p.add_argument("--calibration", metavar="DIR", help="with --patches: write the patches corrected by DIR's CLF")
    p.add_argument("--out", dest="out_dir", metavar="DIR", help="with --captures: folder for the results")
    p.add_argument("--camera-space", default="ACES2065-1",
                   help="OCIO colour space of the captures (default ACES2065-1: linear AP0)")
    p.add_argument("--capture-scale", type=float, default=1.0,
                   help="multiply integer frames' values (code / (2^n - 1)) by this: a 16-bit TIFF export that "
                        "maps camera linear 2.0 to full scale needs 2 (default 1; float EXR/TIFF are not scaled)")
    s = p.add_argument_group("sequence (the same for --patches and --captures)")
    s.add_argument("--frames-per-patch", type=int, default=10, help="wall frames each patch is held (default 10)")
    s.add_argument("--slate-frames", type=int, default=8, help="frames of each slate (default 8)")
    s.add_argument("--ramp-steps", type=int, default=30, help="EOTF ramp steps, 0 .. peak in signal (default 30)")
    s.add_argument("--saturation", type=float, default=0.7, help="desaturated primaries' saturation (default 0.7)")
    s.add_argument("--patch-size", type=float, default=0.5, help="patch width and height, fraction of the mapped "
                                                                  "canvas (default 0.5)")
    p.add_argument("--force", action="store_true", help="write the CLF and config even when a check fails")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _say(args, *lines: str) -> None:
    if not getattr(args, "quiet", False):
        for s in lines:
            print(s)


def _setup(args):
    from stagectl.color.calibration import mapped_area, output_sequence
    from stagectl.color.errors import ColorError
    from stagectl.core.errors import UsageError
    from stagectl.stage import load_stage

    stage = load_stage(args.stage)
    keys = [f"{p.name}/{o.name}" for p, o in stage.outputs()]
    key = args.output
    if key is None:
        if len(keys) != 1:
            raise UsageError(f"--output: the stage has {len(keys)} outputs; name one of {', '.join(keys)}")
        key = keys[0]
    if key not in keys:
        raise UsageError(f"--output: expected an output of {args.stage} ({', '.join(keys)}), got {key!r}")
    settings = stage.colour
    try:
        oc, cfg, seq = output_sequence(settings, key, frames_per_patch=args.frames_per_patch,
                                       slate_frames=args.slate_frames, ramp_steps=args.ramp_steps,
                                       saturation=args.saturation, patch_fraction=args.patch_size)
    except ColorError as exc:
        raise UsageError(f"{args.stage}: {exc}") from None
    out = next(o for p, o in stage.outputs() if f"{p.name}/{o.name}" == key)
    return stage, key, oc, cfg, seq, out.canvas, mapped_area(m.canvas_rect for m in out.mappings), settings


def _slug(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in key)


def load_correction(folder: str | Path, key: str):
    """The :class:`~stagectl.color.calibration.Correction` a previous run wrote in ``folder`` (from its
    ``colour.json``)."""
    from stagectl.color.calibration import Correction
    from stagectl.core.errors import UsageError

    p = Path(folder) / "colour.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        c = doc["results"]["correction"]
        if doc["results"]["output"] != key:
            raise UsageError(f"--calibration: {p} calibrates output {doc['results']['output']}, not {key}")
        return Correction(np.array(c["matrix"], float), np.array(c["lut"], float), float(c["log2_lo"]), float(c["hi"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--calibration: cannot read the correction from {p} ({exc})") from None


def write_patches(args, seq, size, active, key, correction=None) -> int:
    import cv2

    from stagectl.core.errors import UsageError

    folder = Path(args.patches)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--patches: {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    scale = 65535.0 / float((1 << seq.bits) - 1)
    names: list[str] = []
    written: dict[str, str] = {}
    for k in range(seq.total_frames):
        p = seq.patch_at(k)
        name = f"{p.first:04d}_{p.name}" + (f"_{k:04d}" if p.role in ("slate", "end_slate") else "") + ".png"
        if name not in written:
            codes = seq.frame_codes(k, size, active, correction=correction).astype(np.float64)
            img = np.clip(np.floor(codes * scale + 0.5), 0, 65535).astype(np.uint16)
            if not cv2.imwrite(str(folder / name), np.ascontiguousarray(img[..., ::-1])):
                raise OSError(5, "cannot write the PNG", str(folder / name))
            written[name] = name
        names.append(name)
    (folder / "frames.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    doc = {"output": key, "canvas": list(size), "mapped_area": list(active),
           "png": f"16-bit RGB; value = round(code * 65535 / {(1 << seq.bits) - 1}), the output's "
                  f"{seq.bits}-bit {'narrow' if seq.narrow else 'full'}-range codes",
           "corrected": correction is not None, **seq.describe()}
    (folder / "sequence.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    _say(args, f"wrote {len(written)} images and frames.txt ({seq.total_frames} frames, "
               f"{seq.total_frames / 24:.0f} s at 24 fps) into {folder}")
    return 0


def run(args) -> int:
    from stagectl.calibration.report import (
        command_line,
        input_records,
        result_document,
        to_plain,
        write_result,
    )
    from stagectl.color.calibration import CaptureSource, calibrated_config, extract, solve, write_clf
    from stagectl.color.errors import ColorError
    from stagectl.core.errors import UsageError

    if bool(args.captures) == bool(args.patches):
        raise UsageError("give --patches DIR (write the patch sequence) or --captures DIR|VIDEO --out DIR (solve)")
    _stage, key, oc, cfg, seq, size, active, settings = _setup(args)
    if args.patches:
        corr = load_correction(args.calibration, key) if args.calibration else None
        return write_patches(args, seq, size, active, key, corr)
    if not args.out_dir:
        raise UsageError("--captures needs --out DIR (the results folder)")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} is a file, not a folder")
    cfg.check_color_space(args.camera_space)
    to_target = cfg.processor(args.camera_space, target=seq.target_space)

    def conv(px: np.ndarray) -> np.ndarray:
        return np.asarray(to_target.apply(px.astype(np.float32)), np.float64)

    if not (math.isfinite(args.capture_scale) and args.capture_scale > 0):
        raise UsageError(f"--capture-scale: expected a number > 0, got {args.capture_scale!r}")
    source = CaptureSource(args.captures, scale=args.capture_scale)
    meas = extract(source, seq, conv)
    sol = solve(seq, meas)
    out.mkdir(parents=True, exist_ok=True)
    slug = _slug(key)
    clf_name = f"{slug}.clf"
    display = f"{key} calibrated"
    outputs: dict = {"report": str(out / "colour.report.png")}
    wrote_clf = sol.status != "FAIL" or args.force
    if wrote_clf:
        write_clf(out / clf_name, sol.correction, name=f"stagectl_{slug}",
                  description=f"stagectl calibrate colour: output {key}, {oc.describe()}",
                  input_desc=f"{seq.target_space} (scene-linear 1.0 = {seq.nits_per_unit:g} nits)")
        src_dir = None if settings.config.startswith("ocio://") else str(Path(settings.config).parent)
        new = calibrated_config(cfg, oc, clf_name, display, source_dir=src_dir)
        (out / "config.ocio").write_text(new.serialize(), encoding="utf-8")
        outputs.update(clf=str(out / clf_name), ocio_config=str(out / "config.ocio"), display=display,
                       view="Calibrated")
    from stagectl.calibration.colour_report import colour_report

    colour_report(sol, out / "colour.report.png", title=f"stagectl calibrate colour: {key}")
    inputs = input_records([args.stage, *([args.captures] if Path(args.captures).is_file() else
                                          sorted(Path(args.captures).iterdir()))])
    results = {"output": key, "status": sol.status, **sol.summary(),
               "correction": {"matrix": sol.correction.matrix, "lut": sol.correction.lut,
                              "log2_lo": sol.correction.log2_lo, "hi": sol.correction.hi},
               "stage_snippet": {"colour": {"config": str(out / "config.ocio"),
                                            "outputs": {key: {"display": display, "view": "Calibrated"}}}}}
    doc = result_document("colour", command=command_line(), inputs=inputs,
                          parameters={"camera_space": args.camera_space, "capture_scale": args.capture_scale,
                                      **seq.describe()},
                          results=to_plain(results),
                          warnings=[c.message for c in sol.checks if c.status == "WARNING"], outputs=outputs)
    write_result(out / "colour.json", doc)
    b, a = sol.delta_e_before, sol.delta_e_after
    lines = [f"colour calibration of {key} ({oc.describe()}): {sol.status}",
             (f"  sync: start slate at capture frame {meas.sync.offset}, end slate drift "
             f"{meas.sync.end_drift if meas.sync.end_drift is not None else 'n/a'}; 18 % grey reads "
             f"{sol.measured_18_percent:.3f}"),
             *(f"  ΔE ITP {g:<11} before mean {np.mean(b[g]):6.2f} max {np.max(b[g]):6.2f}   after (predicted) "
               f"mean {np.mean(a[g]):5.2f} max {np.max(a[g]):5.2f}" for g in ("chart", "ramp", "primaries")),
             *(f"  {c.status:<7} {c.name}" + (f": {c.message}" if c.message and c.status != "PASS" else "")
               for c in sol.checks)]
    _say(args, *lines, f"wrote {out / 'colour.json'}, {out / 'colour.report.png'}"
         + (f", {out / clf_name}, {out / 'config.ocio'}" if wrote_clf else ""))
    if sol.failures:
        raise ColorError(f"calibration of {key} failed validation: "
                         + "; ".join(f"{c.name}: {c.message}" for c in sol.failures)
                         + ("" if wrote_clf else " (no CLF written; --force writes it anyway)"))
    return 0
