"""Take sheets for editorial: an Avid Log Exchange (ALE) file and an OpenTimelineIO (``.otio``) timeline listing
takes (:class:`~stagectl.post.track.CameraTrack`) with their timecode in / out, slate, camera, lens, content and
notes. All takes of one sheet share one frame rate.

ALE (Avid Log Exchange, tab-delimited text) has three sections, each introduced by its name on a line:
``Heading`` (``FIELD_DELIM TABS``, ``VIDEO_FORMAT``, ``AUDIO_FORMAT``, ``FPS`` as Avid spells it: ``23.976``,
``25``, ``29.97``...), ``Column`` (one tab-separated line of column names) and ``Data`` (one tab-separated line
per take). Columns: ``Name`` (the take), ``Tracks`` (``V``), ``Start`` and ``End`` (SMPTE labels; ``End`` is
exclusive, one frame after the last, as Avid reads it), ``Duration`` (a timecode-formatted frame count),
``Tape`` (the camera roll, else the take), ``Scene``, ``Take``, ``Camera``, ``Lens``, ``Content``, ``Notes``,
``Stage``, ``Frames``, ``Start Frame`` (the first frame's number in the exported USD / chan / CSV files) and
``Source File`` (the ``.stgtake``). Tabs and line breaks inside values are replaced by spaces.

OpenTimelineIO: one timeline (``name``) with one video track holding one clip per take, in the order given:
the clip's ``source_range`` starts at the first frame's timecode (a frame count at the exact rate) and lasts
the take's frames; its media reference is the take file with the same ``available_range``; its metadata
``stagectl`` holds the slate, the camera, lens, content, notes, the timecode labels, the exact rate and the
exported files when given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stagectl.post.solve import PostError
from stagectl.post.track import CameraTrack

__all__ = ["ALE_COLUMNS", "write_ale", "write_otio"]

ALE_COLUMNS = ("Name", "Tracks", "Start", "End", "Duration", "Tape", "Scene", "Take", "Camera", "Lens", "Content",
               "Notes", "Stage", "Frames", "Start Frame", "Source File")


def _one_rate(tracks: Sequence[CameraTrack]) -> Any:
    if not tracks:
        raise PostError("a take sheet needs at least one take")
    rates = {t.rate for t in tracks}
    if len(rates) > 1:
        raise PostError("the takes of one sheet must share a frame rate; got "
                        + ", ".join(sorted(r.label for r in rates)))
    return tracks[0].rate


def _clean(value: Any) -> str:
    return " ".join(str(value).replace("\t", " ").split())


def _content(t: CameraTrack) -> str:
    return str(t.slate.extra.get("content", "") or t.content)


def write_ale(tracks: Sequence[CameraTrack], path: str | os.PathLike[str], *, start_frame: int = 1001,
              video_format: str = "1080") -> Path:
    """Write an ALE take sheet of ``tracks`` (module docstring); returns the path."""
    rate = _one_rate(tracks)
    path = Path(path)
    lines = ["Heading", "FIELD_DELIM\tTABS", f"VIDEO_FORMAT\t{video_format}", "AUDIO_FORMAT\t48khz",
             f"FPS\t{rate.label}", "", "Column", "\t".join(ALE_COLUMNS), "", "Data"]
    for t in tracks:
        start = t.start_timecode
        duration = type(start).from_frame(len(t.frames), rate, t.drop_frame)
        row = {
            "Name": t.name, "Tracks": "V", "Start": str(start), "End": str(t.end_timecode_exclusive),
            "Duration": str(duration), "Tape": t.slate.roll or t.name, "Scene": t.slate.scene,
            "Take": t.slate.take, "Camera": t.camera, "Lens": t.lens_name, "Content": _content(t),
            "Notes": t.slate.notes, "Stage": t.stage, "Frames": len(t.frames), "Start Frame": start_frame,
            "Source File": str(t.take_path) if t.take_path else "",
        }
        lines.append("\t".join(_clean(row[c]) for c in ALE_COLUMNS))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_otio(tracks: Sequence[CameraTrack], path: str | os.PathLike[str], *, name: str = "stagectl takes",
               files: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None, start_frame: int = 1001) -> Path:
    """Write an OpenTimelineIO timeline of ``tracks`` (module docstring); ``files`` maps a take name to the files
    exported for it (kept in the clip's metadata). Returns the path."""
    import opentimelineio as otio

    rate = _one_rate(tracks)
    fps = float(rate.as_fraction())
    timeline = otio.schema.Timeline(name=name)
    timeline.metadata["stagectl"] = {"rate": f"{rate.num}/{rate.den}", "takes": len(tracks)}
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(video)
    for t in tracks:
        start = otio.opentime.RationalTime(t.start_timecode.to_frame(), fps)
        rng = otio.opentime.TimeRange(start, otio.opentime.RationalTime(len(t.frames), fps))
        ref = otio.schema.ExternalReference(target_url=str(t.take_path) if t.take_path else "", available_range=rng)
        clip = otio.schema.Clip(name=t.name, media_reference=ref, source_range=rng)
        clip.metadata["stagectl"] = {
            "slate": t.slate.as_dict(),
            "scene": t.slate.scene, "take": t.slate.take, "roll": t.slate.roll, "camera": t.camera,
            "lens": t.lens_name, "content": _content(t), "notes": t.slate.notes, "stage": t.stage,
            "timecode_in": str(t.start_timecode), "timecode_out": str(t.end_timecode),
            "drop_frame": t.drop_frame, "rate": f"{rate.num}/{rate.den}", "frames": len(t.frames),
            "start_frame": start_frame, "match": t.match,
            "files": [str(p) for p in (files or {}).get(t.name, ())],
        }
        video.append(clip)
    path = Path(path)
    otio.adapters.write_to_file(timeline, str(path))
    return path
