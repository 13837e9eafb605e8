"""Export takes for post: the solved camera of every frame as USD, Nuke .chan, CSV and OpenTrackIO JSON, and
the day's take sheet (ALE and OpenTimelineIO).

Each TAKE (a .stgtake written by `stagectl record` or the console's record.start) is solved against the stage
file: its tracking datagrams are decoded, time-matched per frame of the stage's frame rate (by the samples'
own timecode when they carry it, else by arrival time) and turned into the camera `stagectl run` renders from:
wall registration, tracker offset, lens file (focal length, principal point, distortion, entrance pupil, focus
distance). Files go into --out, named after the take:

  TAKE.usda             USD camera (usd-core): time-sampled transform at the entrance pupil, focal length,
                        apertures and offsets, focus distance, f-stop; Y up, centimetres, frames from
                        --start-frame at the stage rate; slate and timecode in the layer metadata
  TAKE.chan             Nuke channel file: frame, translate, rotate (order ZXY), vertical FOV; Y up, metres
  TAKE.csv              every solved value per frame in the stage frame (Z up), units in the header
  TAKE.raw.csv          the raw decoded samples as they arrived
  TAKE.opentrackio.jsonl  one OpenTrackIO 1.0.1 sample per frame (registration and tracker offset applied)

With --sheet, takes.ale (Avid Log Exchange) and takes.otio (OpenTimelineIO) list the takes given, in order,
with timecode in/out, slate, camera, lens, content and notes (--sheet-name changes the file names).

--day DIR exports every take in DIR (a day's folder, e.g. takes/2026-11-25 as record.start names them), in
the order they were recorded, and writes the day's take sheet (named after DIR unless --sheet-name says
otherwise). A take of the day that cannot be solved is reported and left out of the sheet (exit status 1).

A take recorded inside `stagectl run` (record.start) holds the camera the stage rendered at every frame: it is
exported as recorded (--match recorded, the default's choice); --match rendered solves the same frames again
from the datagrams (a check, or a changed stage file).

Conventions, the columns of each file and an example: docs/post.md.

Examples: stagectl export takes/*.stgtake --stage stages/demo.yaml --format all --sheet --out post/day1
          stagectl export --day stages/takes/2026-11-25 --stage stages/demo.yaml --out post/2026-11-25
"""

from __future__ import annotations

import argparse

HELP = "export takes for post: solved camera per frame as USD, Nuke .chan, CSV, OpenTrackIO; ALE/OTIO take sheet"

FORMATS = ("usd", "chan", "csv", "opentrackio")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("takes", nargs="*", metavar="TAKE", help="take files (.stgtake)")
    p.add_argument("--day", default=None, metavar="DIR",
                   help="export every take in DIR (.stgtake, in recording order) and write the day's take sheet")
    p.add_argument("--stage", required=True, metavar="STAGE", help="the stage file the takes were shot on")
    p.add_argument("--format", action="append", choices=(*FORMATS, "all"), default=None,
                   help="what to write: usd, chan, csv, opentrackio or all (repeatable; default all)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write into (created if missing)")
    p.add_argument("--camera", default=None, metavar="NAME",
                   help="the stage camera (default: the only one, or the one whose tracking source the take holds)")
    p.add_argument("--start-frame", type=int, default=1001, metavar="N",
                   help="frame number of each take's first frame in USD, chan and CSV (default 1001)")
    p.add_argument("--match", choices=("auto", "recorded", "rendered", "timecode", "nearest", "interpolate"),
                   default="auto",
                   help="how frames are found (default auto: the cameras the stage rendered when the take holds "
                        "them, else timecode when the source sends it at the stage rate, else arrival times)")
    p.add_argument("--drop-frame", action="store_true",
                   help="label frames drop-frame (29.97 / 59.94) when the source sends no timecode")
    p.add_argument("--sheet", action="store_true", help="also write the take sheet: ALE and OpenTimelineIO")
    p.add_argument("--sheet-name", default="takes", metavar="NAME",
                   help="file name (without suffix) of the take sheet (default takes)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")


def main(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from stagectl.core.errors import UsageError
    from stagectl.post.solve import PostError, solve_take
    from stagectl.stage import load_stage

    formats = list(FORMATS) if not args.format or "all" in args.format else list(dict.fromkeys(args.format))
    takes = [Path(t) for t in args.takes]
    if args.day is not None:
        if takes:
            raise UsageError("give take files or --day DIR, not both")
        takes = day_takes(Path(args.day))
        args.sheet = True
        if args.sheet_name == "takes":
            args.sheet_name = Path(args.day).resolve().name or "takes"
    elif not takes:
        raise UsageError("nothing to export: give take files or --day DIR")
    for t in takes:
        if not t.is_file():
            raise UsageError(f"{t}: no such take file")
    out = Path(args.out)
    stage = load_stage(args.stage)
    planned: dict[Path, list[Path]] = {}
    for t in takes:
        stem = t.name[: -len(".stgtake")] if t.name.endswith(".stgtake") else t.stem
        names = {"usd": [f"{stem}.usda"], "chan": [f"{stem}.chan"], "csv": [f"{stem}.csv", f"{stem}.raw.csv"],
                 "opentrackio": [f"{stem}.opentrackio.jsonl"]}
        planned[t] = [out / n for f in formats for n in names[f]]
    sheet = [out / f"{args.sheet_name}.ale", out / f"{args.sheet_name}.otio"] if args.sheet else []
    every = [p for ps in planned.values() for p in ps] + sheet
    if len(set(every)) != len(every):
        raise UsageError("two takes have the same file name: their exports would overwrite each other")
    if not args.force:
        there = [p for p in every if p.exists()]
        if there:
            raise UsageError(f"{there[0]} exists (add --force to overwrite{f'; {len(there) - 1} more' if len(there) > 1 else ''})")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {out}: {exc.strerror or exc}") from None

    tracks = []
    failed = 0
    for t in takes:
        try:
            track = solve_take(stage, t, args.camera, match=args.match,
                               drop_frame=True if args.drop_frame else None)
        except PostError as exc:
            if args.day is None:
                raise
            failed += 1
            print(f"stagectl export: {t}: left out of the day: {exc}", file=sys.stderr, flush=True)
            continue
        files = _write(track, planned[t], formats, args.start_frame)
        tracks.append((track, files))
        print(f"stagectl export: {t}: camera {track.camera}, {len(track.frames)} frames at {track.rate.label} fps "
              f"({track.start_timecode} - {track.end_timecode}, matched by {track.match}), frames "
              f"{args.start_frame}-{args.start_frame + len(track.frames) - 1}", flush=True)
        for note in track.notes:
            print(f"  note: {note}")
        for f in files:
            print(f"  wrote {f}")
    if args.sheet and not tracks:
        raise UsageError("no take could be exported: no take sheet written")
    if args.sheet:
        from stagectl.post.sheet import write_ale, write_otio

        rates = {tr.rate for tr, _ in tracks}
        if len(rates) > 1:
            raise UsageError("--sheet: the takes are at different frame rates; one sheet holds one rate")
        ale = write_ale([tr for tr, _ in tracks], sheet[0], start_frame=args.start_frame)
        otio = write_otio([tr for tr, _ in tracks], sheet[1], name=args.sheet_name, start_frame=args.start_frame,
                          files={tr.name: [str(f) for f in fs] for tr, fs in tracks})
        print(f"stagectl export: take sheet of {len(tracks)} take(s): {ale}, {otio}")
    return 1 if failed else 0


def day_takes(folder) -> list:
    """The takes (``*.stgtake``) in ``folder``, in the order they were recorded (their headers' creation time,
    then name). UsageError when the folder does not exist or holds none."""
    from stagectl.core.errors import UsageError
    from stagectl.tracking.recording import TakeFormatError, read_take

    if not folder.is_dir():
        raise UsageError(f"--day: {folder}: no such folder")
    found = []
    for p in sorted(folder.glob("*.stgtake")):
        created = 0
        try:
            with read_take(p) as r:
                created = r.header.created_ns if r.header is not None else 0
        except (OSError, TakeFormatError):
            pass  # solve_take says what is wrong with it
        found.append((created, p.name, p))
    if not found:
        raise UsageError(f"--day: {folder}: no takes (*.stgtake) in it")
    return [p for _, _, p in sorted(found)]


def _write(track, paths, formats, start_frame: int) -> list:
    from stagectl.post.chan import write_chan
    from stagectl.post.csvfile import write_csv, write_raw_csv
    from stagectl.post.opentrackio import write_opentrackio
    from stagectl.post.usd import write_usd

    written = []
    it = iter(paths)
    for f in formats:
        if f == "usd":
            written.append(write_usd(track, next(it), start_frame=start_frame))
        elif f == "chan":
            written.append(write_chan(track, next(it), start_frame=start_frame))
        elif f == "csv":
            written.append(write_csv(track, next(it), start_frame=start_frame))
            written.append(write_raw_csv(track, next(it)))
        else:
            written.append(write_opentrackio(track, next(it)))
    return written
