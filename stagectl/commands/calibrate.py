"""Calibrate a stage: lens, entrance pupil, tracker offset (hand-eye), wall registration, tracking delay.

Run them in this order -- each needs the ones before it:

  1. stagectl calibrate lens     board images -> lens file (focal length, principal point, distortion)
  2. stagectl calibrate handeye  tracked board views -> the camera's tracker_offset (T_body_camera)
  3. stagectl calibrate pupil    tracked board views per zoom -> entrance_pupil_offset_m in the lens file
  4. stagectl calibrate wall     surveyed corners, or tracked ArUco views -> the stage's tracking_registration
  5. stagectl calibrate delay    a take and its video while panning -> tracking[].delay_frames

Every tool writes a self-describing result (inputs with sha256, residuals, worst views, outliers, the command
line, date, versions; YAML, or JSON for a .json name) and a PNG report, and prints a short summary. Tools that
change a lens or stage file write the change as a .patch next to the result and edit the file (comments and
layout kept) only with --apply. `stagectl calibrate TOOL --help` explains how to capture for each tool.
The same tools are the scripts in calibration/ (calibration/lens.py ...).
"""

from __future__ import annotations

import argparse
import errno
import math
import sys
from pathlib import Path

HELP = "calibrate lens, tracker offset (handeye), pupil, wall registration, tracking delay"

LENS_HELP = """\
Lens calibration from photos of a checkerboard or ChArUco board -> a lens file.

Capture: print the board flat and rigid (di-bond, glass, foam board); measure one square with a ruler. Lock
focus, zoom and iris, set the shutter short enough for sharp corners (no motion blur). Take 15-30 photos,
moving the BOARD (or the camera) between them: fill the frame in some, put the board into every corner and
along every edge of the image, and tilt it 30-45 degrees up, down, left and right (head-on views calibrate
poorly). For a checkerboard every corner must be in frame; ChArUco tolerates partial views. Use one folder
per zoom/focus position.

Simplest case (one folder, checkerboard with 9 x 6 inner corners of 25 mm):
  stagectl calibrate lens --images DIR --board checkerboard --inner 9x6 --square 0.025 --out lens.yaml

Zoom/focus grid: put each position's photos in a subfolder named z<zoom>_f<focus>[_d<distance m>] (normalised
encoders 0..1: zoom 0 = wide, focus 0 = infinity), e.g. DIR/z0.0_f0.0, DIR/z0.5_f0.0, DIR/z1.0_f0.0 ... and
pass DIR; or list them in --grid GRID.yaml (points: [{images, zoom, focus, focus_distance_m}]).

Output: the lens file (--out; one grid point at zoom 0 / focus 0 for a single folder; entrance pupil 0 until
`calibrate pupil`), its evidence (--result, default OUT.calibration.yaml: fx, fy, cx, cy in OpenCV pixels,
distortion k1 k2 p1 p2 k3, per-point RMS overall and per view, outliers (> 2 x median), coverage) and a PNG
report (--report, default OUT.report.png). The focal length in mm is fx * sensor width / image width: give the
camera's --sensor-mm (its stage-file sensor_mm); without it a Super 35 width of 24.89 mm is assumed.
Good results: RMS below ~0.3-0.5 px, no outlier views, coverage above ~60 %.
"""

HANDEYE_HELP = """\
Tracker-to-camera offset (hand-eye calibration) -> the camera's tracker_offset (T_body_camera) in the stage file.

Needs: the lens file (calibrate lens) and a rigid board that does not move during the capture.
Capture 10-20 STATIONARY views of the board with the tracked camera (the tracker reports while the camera is
still; moving views are corrupted by tracking delay): move the camera around the board with large rotations
about different axes -- pan left/right 30+ degrees, tilt up/down, roll the camera 20-45 degrees in some views --
keeping the whole board (or most of a ChArUco board) in frame at 1-3 m. For each photo record the tracker pose
in a CSV: image,x,y,z,pan,tilt,roll (metres, degrees, stagectl conventions: T_tracking_body; FreeD pan is
negated) -- `stagectl snapshot` or your tracker's export.

  stagectl calibrate handeye --images DIR --poses poses.csv --lens lens.yaml --board charuco --squares 12x8 \\
      --square 0.06 --marker 0.045 --stage stage.yaml --camera cam-a --out handeye.yaml

All OpenCV methods (TSAI, PARK, HORAUD, ANDREFF, DANIILIDIS; calibrateRobotWorldHandEye SHAH, LI) are run and
compared; --method (default PARK, or 'best') seeds a joint refinement of the corner reprojection error.
Validation: RMS of board corners reprojected through tracker pose -> offset -> lens (px), board scatter in
tracking space (mm). The offset points at the camera frame: the projection centre found moved back by the lens's
entrance-pupil offset at --zoom (from the lens file, or --pupil-offset). With --stage/--camera the new
tracker_offset is written as a patch; --apply edits the stage file.
"""

PUPIL_HELP = """\
Entrance-pupil (nodal) offset along the optical axis, per zoom -> entrance_pupil_offset_m in the lens file.

Needs: the lens file, the tracker offset (calibrate handeye, or --tracker-offset) and a static board.
Capture at each zoom position (lens encoders as in the lens file) 8-15 stationary tracked views of the board:
keep the board in frame while PANNING and TILTING the camera between views by 10-30 degrees -- the offset is
only observable when the viewing direction changes. Poses CSV as for handeye (image,x,y,z,pan,tilt,roll), with
optional zoom,focus columns to solve several zoom positions in one run (otherwise --zoom/--focus).

  stagectl calibrate pupil --images DIR --poses poses.csv --lens lens.yaml --stage stage.yaml --camera cam-a \\
      --board charuco --squares 12x8 --square 0.06 --marker 0.045 --out pupil.yaml [--apply]

Solve: closed-form 1-D least squares for the offset e (m, positive toward the subject) that makes the board
corners land on the same tracking-space points in every view (derivation in stagectl/calibration/pupil.py).
Also reported: the free 3-D offset (x and z should be ~0), scatter in mm, reprojection in px. The lens file's
point at each (zoom, focus) gets the value with --apply (else a .patch is written).
"""

WALL_HELP = """\
Wall registration: where the tracking system is relative to the stage's walls -> the stage file's
tracking_registration (T_stage_tracking).

(a) Surveyed points: measure cabinet corners with a total station in the tracking frame or a tracked probe tip:
at least 3 per wall, not on a line; every corner of the outer cabinets is better. CSV wall,col,row,x,y,z[,label]
where (col, row) counts cabinet corners from the wall's top-left seen from the stage (0..cols, 0..rows):
  stagectl calibrate wall --stage stage.yaml --survey points.csv [--units mm] --out wall.yaml

(b) ArUco markers: needs the lens file, pupil offset and tracker offset first. Show the renderer's `aruco` test
pattern (one DICT_6X6_1000 marker per cabinet). With the tracked camera take 5-15 stationary photos from
different positions and angles, each showing several cabinets (the more of every wall, the better), with a
pose CSV as for handeye:
  stagectl calibrate wall --stage stage.yaml --images DIR --poses poses.csv --lens lens.yaml --camera cam-a \\
      --out wall.yaml

Result: T_stage_tracking (maps tracking coordinates into the stage; one fit over all walls) and each wall's
own fit, residuals per surveyed point (mm) or per marker (px and mm on the wall), outliers. The stage patch
sets the top-level tracking_registration: {position: [x, y, z] m, rotation: [pan, tilt, roll] deg} to
T_stage_tracking; the walls stay as the stage file places them, and stagectl run and snapshot map every
tracker pose through it (T_stage_camera = T_stage_tracking @ T_tracking_body @ T_body_camera). --apply edits
the stage file (comments kept); without it only the patch is written. The file's current registration plays
no part in the fit.

--move-walls: the older way instead: move each wall to its measured place in tracking space (the stage frame
becomes the tracking frame; an existing tracking_registration is reset to identity); each wall by its own fit,
or all by the common fit with --all-walls. The result file states both: the registration and the placements.
"""

DELAY_HELP = """\
Tracking delay: how many frames the camera image lags the tracking -> tracking[].delay_frames.

Capture: genlock camera and tracker. Record a take (`stagectl record`) while recording the camera's video of a
static, textured view (the wall showing a still image, or the set). Pan the camera left and right for 10-30 s:
swings of a few seconds, varying speed, a few quick reversals; little tilt. Export the video as a folder of
frames or a video file. Frame k is placed at the first tracking sample + k frame periods unless --frame-times
gives each frame's capture stamp (monotonic ns, one per line, the take's clock).

  stagectl calibrate delay --take pan.take --frames FRAMES_DIR --stage stage.yaml --camera cam-a --out delay.yaml

Estimate: normalised cross-correlation of the tracked pan rate with the image's horizontal motion
(cv2.phaseCorrelate per frame pair), argmax refined to sub-frame. Positive = the image lags the tracking; that
is the stage file's tracking[].delay_frames (--apply writes it to the camera's tracking source).
"""

TOOLS = {
    "lens": ("lens calibration from board photos -> lens file", LENS_HELP),
    "handeye": ("tracker-to-camera offset (hand-eye) -> tracker_offset", HANDEYE_HELP),
    "pupil": ("entrance-pupil offset per zoom -> lens file", PUPIL_HELP),
    "wall": ("wall registration from survey points or ArUco views -> tracking_registration", WALL_HELP),
    "delay": ("tracking delay from a take and its video -> delay_frames", DELAY_HELP),
    "colour": ("in-camera LED wall colour calibration -> CLF + OCIO config", None),  # help: stagectl.commands._calibrate_colour
}


# ============================================================================================== arguments


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = text.lower().replace("*", "x").split("x")
        return int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS like 9x6, got {text!r}") from None


def _pose6(text: str) -> tuple[float, ...]:
    try:
        v = tuple(float(x) for x in text.replace(",", " ").split())
    except ValueError:
        v = ()
    if len(v) != 6:
        raise argparse.ArgumentTypeError(f"expected 'x y z pan tilt roll' (m, deg), got {text!r}")
    return v


def _board_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("board")
    g.add_argument("--board", choices=("checkerboard", "charuco"), default="checkerboard", help="board type (default checkerboard)")
    g.add_argument("--inner", type=_pair, metavar="CxR", help="inner corners per row x per column, e.g. 9x6")
    g.add_argument("--squares", type=_pair, metavar="CxR", help="squares per row x per column (ChArUco; = inner + 1)")
    g.add_argument("--square", type=float, required=required, metavar="M", help="square side in metres, e.g. 0.025")
    g.add_argument("--marker", type=float, metavar="M", help="ChArUco marker side in metres")
    g.add_argument("--dictionary", default=None, metavar="DICT", help="ArUco dictionary (ChArUco default DICT_5X5_100)")
    g.add_argument("--legacy", action="store_true", help="ChArUco board made before OpenCV 4.6 (even rows)")
    g.add_argument("--detector", choices=("auto", "classic", "sb"), default="auto",
                   help="checkerboard detector: classic (+cornerSubPix), sb (findChessboardCornersSB), auto (classic then sb)")


def _outputs(p: argparse.ArgumentParser, default: str) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="PATH", help=f"result file (YAML, or JSON for .json), e.g. {default}")
    g.add_argument("--report", metavar="PNG", help="PNG report (default: next to --out, .report.png)")
    g.add_argument("--debug", metavar="DIR", help="write annotated detections per image into DIR")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _lens_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lens", required=True, metavar="LENS.yaml", help="lens file (from calibrate lens)")
    p.add_argument("--zoom", type=float, default=None, help="normalised zoom encoder of the capture (default 0 or the poses' column)")
    p.add_argument("--focus", type=float, default=None, help="normalised focus encoder of the capture (default 0)")


def _tracked_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the tracked camera's images")
    p.add_argument("--poses", required=True, metavar="CSV", help="tracker pose per image: image,x,y,z,pan,tilt,roll[,zoom,focus]")


def _stage_camera(p: argparse.ArgumentParser, offset: bool = True) -> None:
    p.add_argument("--stage", metavar="STAGE.yaml", help="stage file (camera tracker_offset; target of the patch)")
    p.add_argument("--camera", metavar="NAME", help="camera in the stage file")
    if offset:
        p.add_argument("--tracker-offset", type=_pose6, metavar="'x y z pan tilt roll'",
                       help="T_body_camera (m, deg) instead of the stage file's")


def add_tool_arguments(tool: str, p: argparse.ArgumentParser) -> None:
    """The arguments of one tool (shared by ``stagectl calibrate TOOL`` and ``calibration/TOOL.py``)."""
    if tool == "lens":
        p.add_argument("--images", required=True, metavar="DIR", help="folder of board photos, or of zoom/focus subfolders")
        _board_args(p, required=True)
        p.add_argument("--grid", metavar="GRID.yaml", help="list of folders with zoom, focus, focus_distance_m")
        p.add_argument("--sensor-mm", type=float, nargs=2, metavar=("W", "H"), help="sensor size in mm covered by the images")
        p.add_argument("--name", help="lens name in the lens file (default: the output's file name)")
        p.add_argument("--zoom", type=float, default=0.0, help="zoom encoder of a single folder (default 0)")
        p.add_argument("--focus", type=float, default=0.0, help="focus encoder of a single folder (default 0)")
        p.add_argument("--focus-distance", type=float, default=None, metavar="M", help="focus distance (default infinity)")
        s = p.add_argument_group("solve")
        s.add_argument("--fix-k3", action="store_true", help="keep k3 = 0 (narrow lenses, few views)")
        s.add_argument("--fix-tangential", action="store_true", help="keep p1 = p2 = 0")
        s.add_argument("--fix-aspect", action="store_true", help="fx = fy (CALIB_FIX_ASPECT_RATIO)")
        s.add_argument("--fix-principal-point", action="store_true", help="principal point at the image centre")
        s.add_argument("--drop-outliers", action="store_true", help="solve again without the outlier views")
        g = p.add_argument_group("output")
        g.add_argument("--out", required=True, metavar="LENS.yaml", help="the lens file to write")
        g.add_argument("--result", metavar="PATH", help="evidence (default OUT.calibration.yaml; .json for JSON)")
        g.add_argument("--report", metavar="PNG", help="PNG report (default OUT.report.png)")
        g.add_argument("--debug", metavar="DIR", help="write annotated detections per image into DIR")
        g.add_argument("--quiet", action="store_true", help="print nothing but errors")
    elif tool == "handeye":
        _tracked_args(p)
        _lens_args(p)
        _board_args(p, required=True)
        p.add_argument("--method", default="PARK", help="TSAI, PARK (default), HORAUD, ANDREFF, DANIILIDIS, SHAH, LI or best")
        p.add_argument("--no-refine", action="store_true", help="keep the closed-form result (no joint refinement)")
        p.add_argument("--pupil-offset", type=float, metavar="M", help="entrance-pupil offset at this zoom (default: the lens file's)")
        _stage_camera(p, offset=False)
        p.add_argument("--apply", action="store_true", help="write the tracker_offset into the stage file")
        _outputs(p, "handeye.yaml")
    elif tool == "pupil":
        _tracked_args(p)
        _lens_args(p)
        _board_args(p, required=True)
        _stage_camera(p)
        p.add_argument("--apply", action="store_true", help="write entrance_pupil_offset_m into the lens file")
        _outputs(p, "pupil.yaml")
    elif tool == "wall":
        p.add_argument("--stage", required=True, metavar="STAGE.yaml", help="stage file with the walls")
        p.add_argument("--survey", metavar="CSV", help="(a) surveyed corners: wall,col,row,x,y,z[,label]")
        p.add_argument("--units", choices=("m", "mm"), default="m", help="units of the survey's x, y, z (default m)")
        p.add_argument("--images", metavar="DIR", help="(b) tracked images of the aruco pattern")
        p.add_argument("--poses", metavar="CSV", help="(b) tracker pose per image")
        p.add_argument("--lens", metavar="LENS.yaml", help="(b) lens file")
        p.add_argument("--zoom", type=float, default=None, help="(b) zoom encoder (default 0)")
        p.add_argument("--focus", type=float, default=None, help="(b) focus encoder (default 0)")
        p.add_argument("--camera", metavar="NAME", help="(b) camera in the stage file (its tracker_offset)")
        p.add_argument("--tracker-offset", type=_pose6, metavar="'x y z pan tilt roll'", help="(b) T_body_camera instead")
        p.add_argument("--dictionary", default=None, help="(b) ArUco dictionary (default: the renderer's DICT_6X6_1000)")
        p.add_argument("--min-markers", type=int, default=2, help="(b) markers an image needs to count (default 2)")
        p.add_argument("--move-walls", action="store_true",
                       help="move the walls into tracking space instead of writing tracking_registration")
        p.add_argument("--all-walls", action="store_true",
                       help="with --move-walls: move every wall by the common fit, not its own")
        p.add_argument("--apply", action="store_true",
                       help="edit the stage file (tracking_registration, or the walls with --move-walls)")
        _outputs(p, "wall.yaml")
    elif tool == "delay":
        p.add_argument("--take", required=True, metavar="TAKE", help="take file recorded by `stagectl record`")
        p.add_argument("--frames", required=True, metavar="DIR|VIDEO", help="the camera's frames: a folder of images or a video file")
        p.add_argument("--fps", metavar="RATE", help="frame rate, e.g. 25 or 24000/1001 (default: the stage's)")
        p.add_argument("--frame-times", metavar="FILE", help="capture stamp of each frame, monotonic ns, one per line")
        p.add_argument("--source", metavar="NAME", help="take source to use (default: the first with poses)")
        _stage_camera(p)
        p.add_argument("--max-lag", type=int, default=15, metavar="FRAMES", help="search +- this many frames (default 15)")
        p.add_argument("--downscale", type=int, default=1, help="shrink frames by this factor before phase correlation")
        p.add_argument("--apply", action="store_true", help="write delay_frames into the stage file's tracking source")
        _outputs(p, "delay.yaml")
    elif tool == "colour":
        from stagectl.commands._calibrate_colour import add_arguments as colour_arguments

        colour_arguments(p)
    else:  # pragma: no cover
        raise ValueError(tool)


def _tool_help(tool: str) -> str:
    if tool == "colour":
        from stagectl.commands._calibrate_colour import HELP as colour_help

        return colour_help
    return TOOLS[tool][1]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="tool", metavar="TOOL")
    for name, (short, _text) in TOOLS.items():
        sp = sub.add_parser(name, help=short, description=_tool_help(name), formatter_class=argparse.RawDescriptionHelpFormatter)
        add_tool_arguments(name, sp)


def main(args: argparse.Namespace) -> int:
    if getattr(args, "tool", None) is None:
        print(__doc__.strip())
        return 2
    return run_tool(args.tool, args)


def script_main(tool: str, argv: list[str] | None = None, doc: str | None = None) -> int:
    """Entry point of the thin scripts in ``calibration/``: same arguments, same tool, same error handling."""
    from stagectl.core.errors import StageError

    p = argparse.ArgumentParser(prog=f"calibration/{tool}.py", description=((doc or "").strip() + "\n\n" + _tool_help(tool)).strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tool_arguments(tool, p)
    args = p.parse_args(argv)
    try:
        try:
            return run_tool(tool, args)
        finally:
            sys.stdout.flush()
    except StageError as exc:
        print(f"calibration/{tool}.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `calibration/lens.py ... | head`: quietly, as stagectl.cli.main does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


# ============================================================================================== running


def _say(args, *lines: str) -> None:
    """Print summary lines; once stdout's reader has gone (`| head`), print nothing more but finish the work:
    :func:`run_tool` reports the closed pipe after the files are written."""
    if getattr(args, "quiet", False) or getattr(args, "stdout_gone", False):
        return
    try:
        for s in lines:
            print(s)
    except BrokenPipeError:
        args.stdout_gone = True


def _derived(out: str, suffix: str) -> Path:
    p = Path(out)
    return p.with_name(p.name[: -len(p.suffix)] + suffix if p.suffix else p.name + suffix)


def _board(args):
    from stagectl.calibration.lens import Board
    from stagectl.core.errors import UsageError

    if args.board == "charuco":
        if args.squares:
            cols, rows = args.squares[0] - 1, args.squares[1] - 1
        elif args.inner:
            cols, rows = args.inner
        else:
            raise UsageError("a ChArUco board needs --squares CxR (or --inner CxR)")
        if args.marker is None:
            raise UsageError("a ChArUco board needs --marker M (marker side in metres)")
    else:
        if not args.inner:
            raise UsageError("a checkerboard needs --inner CxR (inner corners, e.g. 9x6)")
        cols, rows = args.inner
    try:
        return Board(args.board, cols, rows, args.square, args.marker, args.dictionary or "DICT_5X5_100", args.legacy)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _board_params(args) -> dict:
    return {k: getattr(args, k) for k in ("board", "inner", "squares", "square", "marker", "dictionary", "legacy", "detector")
            if getattr(args, k, None) not in (None, False)}


def run_tool(tool: str, args: argparse.Namespace) -> int:
    """Run one tool from parsed arguments (heavy imports happen here, after parsing).

    The output paths are checked first, so an unwritable ``--out`` costs no calibration run; a file that still
    cannot be written or read (a disk that fills up, an unreadable image) is a one-line :class:`UsageError`.
    """
    from stagectl.core.errors import UsageError

    _check_outputs(args)
    try:
        rc = {"lens": _run_lens, "handeye": _run_handeye, "pupil": _run_pupil, "wall": _run_wall,
              "delay": _run_delay, "colour": _run_colour}[tool](args)
    except BrokenPipeError:  # stdout's reader went away (`| head`): the caller ends quietly
        raise
    except OSError as exc:
        what = f"{exc.filename}: " if exc.filename else ""
        raise UsageError(f"{what}{exc.strerror or exc}") from None
    if getattr(args, "stdout_gone", False):
        raise BrokenPipeError(errno.EPIPE, "stdout's reader went away")
    return rc


def _check_writable(option: str, path: str | None, *, folder: bool = False) -> None:
    """Raise :class:`UsageError` unless ``path`` (a file, or a folder with ``folder``) can be written: an
    existing file or folder of the other kind, a parent that is a file, or no write permission."""
    import os

    from stagectl.core.errors import UsageError

    if not path:
        return
    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise UsageError(f"{option}: {p} is a file, not a folder")
        if not folder and p.is_dir():
            raise UsageError(f"{option}: {p} is a folder; give a file name, e.g. {p / 'result.yaml'}")
        if not os.access(p, os.W_OK):
            raise UsageError(f"{option}: cannot write {p}: permission denied")
        return
    q = p.parent
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise UsageError(f"{option}: cannot create {p}: {q} is a file, not a folder")
    if not os.access(q, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot create {p}: {q} is not writable")


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output a tool writes, checked before it starts: ``--out`` (the derived result, report and patch
    files go next to it), ``--result``, ``--report`` and the ``--debug`` folder."""
    _check_writable("--out", getattr(args, "out", None))
    _check_writable("--result", getattr(args, "result", None))
    report = getattr(args, "report", None)
    _check_writable("--report", report)
    if report and Path(report).suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        from stagectl.core.errors import UsageError

        raise UsageError(f"--report: expected an image file name ending in .png, got {report}")
    _check_writable("--debug", getattr(args, "debug", None), folder=True)


def _images_inputs(paths) -> list[dict]:
    from stagectl.calibration.report import input_records

    return input_records(paths)


def _write_patch(args, target: Path, old: str, new: str, label: str) -> str:
    """Write ``OUT.<label>.patch``; with ``--apply`` also the edited file. Returns a line for the summary."""
    from stagectl.calibration.report import unified_diff

    diff = unified_diff(old, new, target.name)
    patch = _derived(args.out, f".{label}.patch")
    patch.write_text(diff, encoding="utf-8")
    if getattr(args, "apply", False):
        target.write_text(new, encoding="utf-8")
        return f"updated {target} (patch kept in {patch})"
    return f"wrote {patch} (apply with --apply, or `patch -p1 < {patch}` from the file's folder)"


def _run_colour(args) -> int:
    from stagectl.commands._calibrate_colour import run

    return run(args)


# ---------------------------------------------------------------------------------------------- lens


def _run_lens(args) -> int:
    import datetime as dt

    from stagectl.calibration import lens as L
    from stagectl.calibration.report import command_line, lens_report, result_document, write_result
    from stagectl.core.errors import ConfigErrors, UsageError
    from stagectl.lens import load_lens_file

    board = _board(args)
    grid = L.read_grid_spec(args.grid, args.images)
    if grid is None:
        fd = math.inf if args.focus_distance is None else args.focus_distance
        grid = [L.GridEntry(Path(args.images), args.zoom, args.focus, fd)]
    out = Path(args.out)
    result_path = Path(args.result) if args.result else _derived(args.out, ".calibration.yaml")
    report_path = Path(args.report) if args.report else _derived(args.out, ".report.png")
    command = command_line()
    points, entries, inputs, warnings = [], [], [], []
    sensor = tuple(args.sensor_mm) if args.sensor_mm else None
    for gi, g in enumerate(grid):
        debug = Path(args.debug) / g.images.name if args.debug and len(grid) > 1 else args.debug
        calib, paths = L.calibrate_folder(
            g.images, board, method=args.detector, debug_dir=debug, fix_k3=args.fix_k3,
            fix_tangential=args.fix_tangential, fix_aspect=args.fix_aspect,
            fix_principal_point=args.fix_principal_point, drop_outliers=args.drop_outliers)
        if sensor is None:
            sensor = L.default_sensor_mm(calib.image_size)
            warnings.append(f"no --sensor-mm: assumed {sensor[0]:.2f} x {sensor[1]:.3f} mm (Super 35 width, image "
                            f"aspect); focal_length_mm only means something against the camera's sensor_mm")
        pv, w = L.lens_point_values(calib, sensor, zoom=g.zoom, focus=g.focus,
                                    entrance_pupil_offset_m=g.entrance_pupil_offset_m, focus_distance_m=g.focus_distance_m)
        where = f"{g.images}" if len(grid) > 1 else ""
        warnings += [f"{where}: {x}" if where else x for x in (*calib.warnings, *w)]
        points.append(pv)
        inputs += _images_inputs(paths)
        s = calib.summary()
        s.update(images=str(g.images), zoom=g.zoom, focus=g.focus,
                 focus_distance_m=None if math.isinf(g.focus_distance_m) else g.focus_distance_m,
                 lens_file_values={"focal_length_mm": pv.focal_length_mm,
                                   "focal_length_mm_from_fy": calib.fy * sensor[1] / calib.image_size[1],
                                   "principal_point_offset_mm": list(pv.principal_point_offset_mm),
                                   "sensor_mm": list(sensor)})
        entries.append((calib, s))
        _say(args,
             f"{g.images}: {len([v for v in calib.views if v.used])} views ({len(calib.missed)} without a board), "
             f"{calib.points.shape[0]} corners, coverage {calib.coverage_fraction:.0%}",
             f"  fx {calib.fx:.3f}  fy {calib.fy:.3f}  cx {calib.cx:.3f}  cy {calib.cy:.3f} px   "
             f"RMS {calib.rms_px:.4f} px (OpenCV per point)",
             f"  k1 {calib.dist[0]:.6f}  k2 {calib.dist[1]:.6f}  p1 {calib.dist[2]:.6f}  p2 {calib.dist[3]:.6f}  "
             f"k3 {calib.dist[4]:.6f}",
             f"  -> focal {pv.focal_length_mm:.4f} mm, principal point offset ({pv.principal_point_offset_mm[0]:.4f}, "
             f"{pv.principal_point_offset_mm[1]:.4f}) mm on a {sensor[0]:g} x {sensor[1]:.4g} mm sensor")
        if calib.outliers:
            _say(args, f"  outlier views: {', '.join(calib.outliers)}")
        rp = report_path if len(grid) == 1 else report_path.with_name(report_path.stem + f".{gi}" + report_path.suffix)
        lens_report(calib, rp, title=f"stagectl calibrate lens: {g.images.name} (zoom {g.zoom:g}, focus {g.focus:g})")
        s["report"] = str(rp)
    date = dt.date.today().isoformat()
    from stagectl import __version__

    text = L.lens_file_text(
        points, sensor_mm=sensor, name=args.name or out.stem, tool=f"stagectl calibrate lens {__version__}",
        date=date, command=command,
        notes=f"evidence: {result_path.name}; " + "; ".join(
            f"zoom {s['zoom']:g} focus {s['focus']:g}: fx {c.fx:.3f} fy {c.fy:.3f} cx {c.cx:.3f} cy {c.cy:.3f} px "
            f"(OpenCV), RMS {c.rms_px:.4f} px" for c, s in entries),
        header=f"Lens file written by stagectl calibrate lens on {date}.\nEvidence (inputs, residuals, views): "
               f"{result_path.name}; report: {report_path.name}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    load_error = None
    try:
        load_lens_file(out)
    except ConfigErrors as exc:
        load_error = str(exc)
    doc = result_document(
        "lens", command=command, inputs=inputs,
        parameters={**_board_params(args), "sensor_mm": list(sensor), "fix_k3": args.fix_k3,
                    "fix_tangential": args.fix_tangential, "fix_aspect": args.fix_aspect,
                    "fix_principal_point": args.fix_principal_point, "drop_outliers": args.drop_outliers},
        results={"points": [s for _, s in entries], "lens_file_loads": load_error is None,
                 **({"lens_file_error": load_error} if load_error else {})},
        warnings=warnings, outputs={"lens_file": str(out), "report": str(report_path)})
    if len(entries) == 1:  # the simplest case: intrinsics at the top of the results
        doc["results"] = {**{k: entries[0][1][k] for k in ("intrinsics_px", "distortion", "rms_px")}, **doc["results"]}
    write_result(result_path, doc)
    for w in warnings:
        _say(args, f"warning: {w}")
    _say(args, f"wrote {out} (lens file), {result_path} (evidence), {report_path}")
    if load_error:
        raise UsageError(f"the written lens file does not load:\n{load_error}\n(try --fix-k3, more views, or check "
                         f"the zoom/focus grid)")
    return 0


# ---------------------------------------------------------------------------------------------- tracked views


def _body_camera(args, required: bool = True):
    from stagectl.core.errors import UsageError
    from stagectl.core.transforms import transform_from_pose

    if getattr(args, "tracker_offset", None):
        return transform_from_pose(*args.tracker_offset), "--tracker-offset"
    if args.stage and args.camera:
        cam = _stage_camera_obj(args)
        return cam.T_body_camera, f"{args.stage}: camera {args.camera} tracker_offset"
    if required:
        raise UsageError("give the tracker offset: --stage STAGE --camera NAME, or --tracker-offset 'x y z pan tilt roll'")
    return None, None


def _stage_camera_obj(args):
    from stagectl.core.errors import UsageError
    from stagectl.stage import load_stage

    stage = load_stage(args.stage)
    for c in stage.cameras:
        if c.name == args.camera:
            return c
    raise UsageError(f"{args.stage}: no camera {args.camera!r} (cameras: {', '.join(c.name for c in stage.cameras) or 'none'})")


def _image_size(folder) -> tuple[int, int]:
    from stagectl.calibration.lens import list_images, load_gray

    paths = list_images(folder)
    if not paths:
        from stagectl.core.errors import UsageError

        raise UsageError(f"{folder}: no images")
    g = load_gray(paths[0])
    return g.shape[1], g.shape[0]


def _groups(poses, zoom, focus):
    """Poses grouped by (zoom, focus): the CSV's columns where present, else --zoom/--focus (default 0)."""
    groups: dict[tuple[float, float], list[str]] = {}
    for name, rec in poses.items():
        z = rec.zoom if rec.zoom is not None else (zoom if zoom is not None else 0.0)
        f = rec.focus if rec.focus is not None else (focus if focus is not None else 0.0)
        if zoom is not None and rec.zoom is not None and abs(rec.zoom - zoom) > 1e-9:
            continue
        if focus is not None and rec.focus is not None and abs(rec.focus - focus) > 1e-9:
            continue
        groups.setdefault((z, f), []).append(name)
    return groups


def _finish(args, tool: str, inputs: list, *, parameters: dict, results: dict, warnings: list[str], outputs: dict,
            lines: list[str], report_path) -> int:
    """Write the result document of ``tool`` (the command line, a record of each of the ``inputs`` files, the
    parameters, results, warnings and outputs), then tell the technician what was found, the warnings and the
    files."""
    from stagectl.calibration.report import command_line, input_records, result_document, write_result

    doc = result_document(tool, command=command_line(), inputs=input_records(inputs), parameters=parameters,
                          results=results, warnings=warnings, outputs=outputs)
    write_result(args.out, doc)
    _say(args, *lines, *(f"warning: {w}" for w in warnings), f"wrote {args.out}, {report_path}")
    return 0


def _run_handeye(args) -> int:
    from stagectl.calibration import handeye as H
    from stagectl.calibration.lens import intrinsics_from_lens_file
    from stagectl.calibration.report import handeye_report, stage_set_tracker_offset

    board = _board(args)
    poses = H.read_poses(args.poses)
    zoom = args.zoom if args.zoom is not None else 0.0
    focus = args.focus if args.focus is not None else 0.0
    size = _image_size(args.images)
    K, dist, ev = intrinsics_from_lens_file(args.lens, size, zoom, focus)
    views, _, skipped, used, _ = H.board_views_from_images(args.images, poses, board, K, dist, method=args.detector,
                                                           debug_dir=args.debug)
    e = args.pupil_offset if args.pupil_offset is not None else ev.entrance_pupil_offset_m
    res = H.calibrate_handeye(views, K, dist, method=args.method, refine=not args.no_refine, pupil_offset_m=e,
                              skipped=skipped)
    t, rot = H.tracker_offset_values(res.T_body_camera)
    report_path = Path(args.report) if args.report else _derived(args.out, ".report.png")
    residuals = H.reprojection(views, res.T_body_cv, res.T_tracking_board, K, dist)
    handeye_report(res, residuals, [v.image_points for v in views], size, report_path)
    lines = [f"hand-eye ({res.method}{' + refinement' if res.refined else ''}) over {len(views)} views"
             f"{f' ({len(skipped)} skipped)' if skipped else ''}",
             f"  tracker_offset: translation {[round(v, 5) for v in t]} m, rotation {[round(v, 4) for v in rot]} deg",
             f"  reprojection RMS {res.rms_px:.3f} px, board scatter {res.board_spread_mm:.2f} mm / {res.board_spread_deg:.3f} deg",
             "  methods: " + ", ".join(f"{k} {v['delta_mm']:.2f} mm/{v['delta_deg']:.3f} deg" for k, v in res.methods.items() if "delta_mm" in v)]
    outputs = {"report": str(report_path)}
    if args.stage and args.camera:
        _stage_camera_obj(args)  # the camera must exist
        old = Path(args.stage).read_text(encoding="utf-8")
        new = stage_set_tracker_offset(old, args.camera, t, rot)
        lines.append("  " + _write_patch(args, Path(args.stage), old, new, "stage"))
        outputs["stage_patch"] = str(_derived(args.out, ".stage.patch"))
    return _finish(
        args, "handeye", [args.poses, args.lens, *used],
        parameters={**_board_params(args), "zoom": zoom, "focus": focus, "method": args.method,
                    "refine": not args.no_refine, "entrance_pupil_offset_m": e,
                    "K": K.tolist(), "dist": dist.tolist()},
        results={**res.summary(), "skipped": skipped,
                 "stage_patch_suggestion": {"cameras": [{"name": args.camera or "CAMERA",
                                                         "tracker_offset": {"translation": t, "rotation": rot}}]}},
        warnings=res.warnings, outputs=outputs, lines=lines, report_path=report_path)


def _run_pupil(args) -> int:
    from stagectl.calibration import handeye as H
    from stagectl.calibration.lens import intrinsics_from_lens_file
    from stagectl.calibration.pupil import solve_pupil_offset
    from stagectl.calibration.report import lens_file_set_pupil, pupil_report
    from stagectl.core.errors import UsageError

    board = _board(args)
    T_body_camera, offset_from = _body_camera(args)
    poses = H.read_poses(args.poses)
    groups = _groups(poses, args.zoom, args.focus)
    if not groups:
        raise UsageError("no poses at the requested --zoom/--focus")
    size = _image_size(args.images)
    results, used_all, skipped_all = [], [], []
    for (z, f), names in sorted(groups.items()):
        K, dist, _ = intrinsics_from_lens_file(args.lens, size, z, f)
        views, ids, skipped, used, _ = H.board_views_from_images(args.images, poses, board, K, dist, names=names,
                                                                 method=args.detector, debug_dir=args.debug)
        results.append(solve_pupil_offset(views, T_body_camera, K, dist, corner_ids=ids, zoom=z, focus=f,
                                          skipped=skipped))
        used_all += used
        skipped_all += [x for x in skipped if x not in skipped_all]  # images without a pose: in every group
    report_path = Path(args.report) if args.report else _derived(args.out, ".report.png")
    pupil_report(results, report_path)
    lines = [f"entrance pupil ({offset_from}):"]
    for r in results:
        lines.append(f"  zoom {r.zoom:g} focus {r.focus:g}: {r.entrance_pupil_offset_m:.4f} m (+-{r.std_m * 1000:.1f} mm), "
                     f"{len(r.view_names)} views, scatter {r.rms_mm:.2f} mm, reprojection {r.rms_px:.3f} px; free 3-D "
                     f"offset {[round(v * 1000, 1) for v in r.offset_3d_m]} mm")
    old = Path(args.lens).read_text(encoding="utf-8")
    new = old
    from stagectl.calibration.report import YamlEditError

    missing = []
    for r in results:
        try:
            new = lens_file_set_pupil(new, r.zoom, r.focus, r.entrance_pupil_offset_m)
        except YamlEditError as exc:
            missing.append(str(exc))
    outputs = {"report": str(report_path)}
    if new != old:
        lines.append("  " + _write_patch(args, Path(args.lens), old, new, "lens"))
        outputs["lens_patch"] = str(_derived(args.out, ".lens.patch"))
    warnings = [w for r in results for w in r.warnings] + missing
    return _finish(
        args, "pupil", [args.poses, args.lens, *used_all],
        parameters={**_board_params(args), "T_body_camera": T_body_camera.tolist(), "T_body_camera_from": offset_from},
        results={"points": [r.summary() for r in results], "skipped": skipped_all}, warnings=warnings, outputs=outputs,
        lines=lines, report_path=report_path)


def _run_wall(args) -> int:
    from stagectl.calibration import wall as Wm
    from stagectl.calibration.report import (
        YamlEditError,
        stage_set_tracking_registration,
        stage_set_wall_placement,
        wall_report,
    )
    from stagectl.core.errors import UsageError
    from stagectl.stage import load_stage

    if args.all_walls and not args.move_walls:
        raise UsageError("--all-walls only applies with --move-walls (the registration is the common fit)")
    stage = load_stage(args.stage)
    used: list = []
    if args.survey and args.images:
        raise UsageError("give either --survey (a) or --images/--poses (b), not both")
    if args.survey:
        pts = Wm.read_survey(args.survey, units=args.units)
        reg = Wm.register_from_survey(stage, pts)
        used = [args.survey]
        params = {"method": "survey", "units": args.units}
    elif args.images:
        if not (args.poses and args.lens):
            raise UsageError("the marker method needs --images, --poses and --lens (and --camera or --tracker-offset)")
        from stagectl.calibration.handeye import read_poses
        from stagectl.calibration.lens import intrinsics_from_lens_file, list_images, load_gray

        T_body_camera, offset_from = _body_camera(args)
        poses = read_poses(args.poses)
        zoom = args.zoom if args.zoom is not None else 0.0
        focus = args.focus if args.focus is not None else 0.0
        size = _image_size(args.images)
        K, dist, ev = intrinsics_from_lens_file(args.lens, size, zoom, focus)
        dictionary = Wm.marker_dictionary(args.dictionary)
        views = []
        for p in list_images(args.images):
            rec = poses.get(p.name) or poses.get(p.stem)
            if rec is None:
                continue
            gray = load_gray(p)
            ids, corners = Wm.detect_markers(gray, dictionary)
            views.append(Wm.MarkerView(p.name, rec.T_tracking_body, ids, corners))
            used.append(p)
            if args.debug:
                import cv2

                img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
                if len(ids):
                    cv2.aruco.drawDetectedMarkers(img, [c.reshape(1, 4, 2).astype("float32") for c in corners], ids.reshape(-1, 1))
                Path(args.debug).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(Path(args.debug) / (p.stem + ".markers.png")), img)
        if not views:
            raise UsageError(f"{args.images}: no image has a pose in {args.poses}")
        reg = Wm.register_from_markers(stage, views, K, dist, T_body_camera, pupil_offset_m=ev.entrance_pupil_offset_m,
                                       min_markers=args.min_markers)
        used = [args.poses, args.lens, *used]
        params = {"method": "markers", "zoom": zoom, "focus": focus, "T_body_camera": T_body_camera.tolist(),
                  "T_body_camera_from": offset_from, "entrance_pupil_offset_m": ev.entrance_pupil_offset_m,
                  "K": K.tolist(), "dist": dist.tolist(), "min_markers": args.min_markers}
    else:
        raise UsageError("give --survey CSV (surveyed corners) or --images DIR --poses CSV --lens LENS (markers)")
    report_path = Path(args.report) if args.report else _derived(args.out, ".report.png")
    wall_report(reg, stage, report_path)
    placements = reg.placements(stage, per_wall=not args.all_walls)
    registration = reg.registration()
    T = reg.T_stage_tracking
    lines = [f"wall registration ({reg.method}): residual RMS {reg.rms_mm:.2f} mm, max {reg.max_mm:.2f} mm"
             + (f", reprojection {reg.rms_px:.3f} px" if reg.rms_px is not None else ""),
             f"  T_stage_tracking: translation {[round(float(v) * 1000, 2) for v in T[:3, 3]]} mm, rotation "
             f"{[round(v, 4) for v in registration['rotation']]} deg"]
    old = Path(args.stage).read_text(encoding="utf-8")
    new = old
    warnings = list(reg.warnings)
    identity = {"position": [0.0, 0.0, 0.0], "rotation": [0.0, 0.0, 0.0]}
    if args.move_walls:
        for name, upd in placements.items():
            if upd.get("unrepresented_deg", 0.0) > 0.02:
                warnings.append(f"wall {name!r}: {upd['unrepresented_deg']:.3f} deg of tilt/roll cannot be "
                                f"expressed by its placement keys (only flat walls take any rotation)")
            try:
                new = stage_set_wall_placement(new, name, upd)
            except YamlEditError as exc:
                warnings.append(str(exc))
        suggestion: dict = {"walls": placements}
        if not stage.tracking_registration.is_identity:  # the walls are now in tracking space
            try:
                new = stage_set_tracking_registration(new, identity["position"], identity["rotation"])
            except YamlEditError as exc:
                warnings.append(str(exc))
            suggestion["tracking_registration"] = identity
        stage_update = "walls moved into tracking space (--move-walls); tracking_registration identity"
        written = identity
    else:
        warnings += reg.wall_disagreements()
        try:
            new = stage_set_tracking_registration(new, registration["position"], registration["rotation"])
        except YamlEditError as exc:
            warnings.append(str(exc))
        suggestion = {"tracking_registration": registration}
        stage_update = "tracking_registration set to T_stage_tracking; walls unchanged"
        written = registration
        lines.append(f"  tracking_registration: position {registration['position']} m, rotation "
                     f"{registration['rotation']} deg")
    outputs = {"report": str(report_path)}
    if new != old:
        lines.append("  " + _write_patch(args, Path(args.stage), old, new, "stage"))
        outputs["stage_patch"] = str(_derived(args.out, ".stage.patch"))
    else:
        lines.append(f"  {args.stage} already holds this result: nothing to change")
    results = {**reg.summary(stage), "stage_update": stage_update, "stage_tracking_registration": written,
               "stage_tracking_registration_before": {"position": list(stage.tracking_registration.position),
                                                      "rotation": list(stage.tracking_registration.rotation)},
               "applied": bool(args.apply and new != old), "stage_patch_suggestion": suggestion}
    return _finish(args, "wall", [args.stage, *used], parameters=params, results=results, warnings=warnings,
                   outputs=outputs, lines=lines, report_path=report_path)


def _run_delay(args) -> int:
    import numpy as np

    from stagectl.calibration import delay as D
    from stagectl.calibration.report import delay_report, stage_set_delay
    from stagectl.commands import option_value
    from stagectl.core.errors import UsageError
    from stagectl.core.timebase import FrameRate

    stage = None
    if args.stage:
        from stagectl.stage import load_stage

        stage = load_stage(args.stage)
    if args.fps:
        rate = option_value("--fps", FrameRate.parse, args.fps)
    elif stage is not None:
        rate = stage.frame_rate
    else:
        raise UsageError("give --fps RATE or --stage STAGE (its frame_rate)")
    period = rate.den / rate.num
    T_body_camera, _ = _body_camera(args, required=False)
    t, Ts, frame = D.take_poses(args.take, source=args.source)
    R = [T[:3, :3] @ (T_body_camera[:3, :3] if (T_body_camera is not None and frame == "body") else np.eye(3)) for T in Ts]
    trk_t, trk_w = D.angular_rate(t, R)
    dx, resp = D.image_motion(D.read_frames(args.frames), downscale=max(1, args.downscale))
    n = len(dx) + 1
    if args.frame_times:
        try:
            ft = np.array([int(x) for x in Path(args.frame_times).read_text().split()], dtype=np.int64)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--frame-times: {exc}") from None
        if len(ft) < n:
            raise UsageError(f"--frame-times has {len(ft)} stamps for {n} frames")
        frame_t = ft[:n].astype(np.float64) / 1e9
        timing = "frame capture stamps from --frame-times"
    else:
        frame_t = t[0] + np.arange(n) * period
        timing = "frame k at the first tracking sample + k periods (no --frame-times)"
    img_t = 0.5 * (frame_t[1:] + frame_t[:-1])
    res = D.estimate_delay(img_t, dx, trk_t, trk_w, period, max_lag_frames=args.max_lag, weights=resp)
    report_path = Path(args.report) if args.report else _derived(args.out, ".report.png")
    delay_report(res, report_path)
    lines = [f"tracking delay: {res.delay_frames:.3f} frames = {res.delay_ms:.2f} ms at {rate.num}/{rate.den} fps "
             f"(peak correlation {res.peak_correlation:.3f}, {res.samples} samples)"]
    outputs = {"report": str(report_path)}
    source = args.source
    if stage is not None and source is None and args.camera:
        source = _stage_camera_obj(args).tracking
    if stage is not None and source is not None:
        if res.delay_frames < -0.1:
            res.warnings.append("negative delay: not written to the stage file (delay_frames is >= 0)")
        else:
            old = Path(args.stage).read_text(encoding="utf-8")
            new = stage_set_delay(old, source, max(0.0, round(res.delay_frames, 3)))
            lines.append("  " + _write_patch(args, Path(args.stage), old, new, "stage"))
            outputs["stage_patch"] = str(_derived(args.out, ".stage.patch"))
    frames_inputs = [args.frames] if Path(args.frames).is_file() else []
    return _finish(
        args, "delay", [args.take, *frames_inputs, *([args.frame_times] if args.frame_times else [])],
        parameters={"frames": args.frames, "frame_rate": f"{rate.num}/{rate.den}", "timing": timing,
                    "max_lag_frames": args.max_lag, "downscale": args.downscale, "pose_frame": frame,
                    "source": args.source, "frame_count": n, "tracking_samples": len(t)},
        results={**res.summary(), "stage_patch_suggestion": {"tracking": [{"name": source or "SOURCE",
                                                                           "delay_frames": round(res.delay_frames, 3)}]}},
        warnings=res.warnings, outputs=outputs, lines=lines, report_path=report_path)
