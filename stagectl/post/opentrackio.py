"""OpenTrackIO export of a :class:`~stagectl.post.track.CameraTrack`: one OpenTrackIO 1.0.1 sample per frame.

The file is JSON Lines: one complete OpenTrackIO sample object per line, in frame order, each made by the
project's OpenTrackIO encoder (:func:`stagectl.tracking.codecs.opentrackio.sample_to_dict`, checked by its
decoder) from the solved frame:

* ``transforms``: one transform ``"Camera"`` = ``T_stage_camera`` (the camera reference point on the sensor
  plane, in the **stage** frame: OpenTrackIO's own axes, Z up, Y forward at zero rotation, metres / degrees) --
  registration and tracker offset applied, so a reader needs no stage file;
* ``lens``: :func:`stagectl.lens.opentrackio.to_lens_state` of the frame's lens (``pinholeFocalLength`` mm,
  ``projectionOffset`` mm with OpenTrackIO's y down, ``entrancePupilOffset`` m, distortion as
  ``"Brown-Conrady U-D"`` with mm-scaled coefficients, ``focusDistance`` m when finite, ``encoders``) plus
  ``fStop`` when known;
* ``timing``: ``mode`` ``external``, ``sampleRate`` = the frame rate, ``sequenceNumber`` = frame index,
  ``timecode`` = the frame's SMPTE label (``dropFrame`` when drop-frame);
* ``tracker``: ``slate`` (scene/take), ``notes``, ``recording`` true; ``static`` (first sample only): capture
  frame rate, sensor size, lens make/model; ``sourceId`` a UUID derived from the take name, ``sampleId`` one per
  frame derived from it (stable across exports).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import replace
from pathlib import Path

from stagectl.post.track import CameraTrack

__all__ = ["frame_sample", "write_opentrackio"]

_NAMESPACE = uuid.UUID("7d1c6a52-3b7e-4f7e-9a55-6f2d0b8f1c21")  # stagectl post export UUIDs (uuid5)


def frame_sample(track: CameraTrack, index: int):
    """The :class:`~stagectl.core.sample.TrackingSample` of frame ``index`` (module docstring)."""
    from stagectl.core.sample import (
        Pose,
        SensorDimensions,
        StaticCamera,
        StaticInfo,
        StaticLens,
        Timecode,
        Timing,
        TrackerStatus,
    )
    from stagectl.lens.opentrackio import to_lens_state
    from stagectl.tracking.codecs.opentrackio import camera_sample

    f = track.frames[index]
    rate = (track.rate.num, track.rate.den)
    pose = Pose.from_matrix(f.T_stage_camera)
    lens = to_lens_state(f.lens, sensor_mm=track.sensor_mm)
    if math.isfinite(f.f_stop) and f.f_stop > 0:
        lens = replace(lens, f_stop=float(f.f_stop))
    tc = f.timecode
    static = None
    if index == 0:
        static = StaticInfo(
            camera=StaticCamera(capture_frame_rate=rate, active_sensor_physical_dimensions=SensorDimensions(
                float(track.sensor_mm[0]), float(track.sensor_mm[1])), label=track.camera),
            lens=StaticLens(model=track.lens_name) if track.lens_name else None,
        )
    slate = " ".join(p for p in (track.slate.scene, track.slate.take) if p) or track.name
    source_id = uuid.uuid5(_NAMESPACE, f"{track.stage}/{track.camera}/{track.name}")
    return camera_sample(
        pose,
        lens=lens,
        timing=Timing(mode="external", sample_rate=rate, sequence_number=index & 0xFFFFFFFF,
                      timecode=Timecode(tc.hours, tc.minutes, tc.seconds, tc.frames, rate,
                                        drop_frame=tc.drop_frame)),
        tracker=TrackerStatus(notes=track.slate.notes or None, recording=True, slate=slate),
        static=static,
        source_id=f"urn:uuid:{source_id}",
        sample_id=f"urn:uuid:{uuid.uuid5(source_id, str(index))}",
    )


def write_opentrackio(track: CameraTrack, path: str | os.PathLike[str]) -> Path:
    """Write one OpenTrackIO sample per frame as JSON Lines; returns the path."""
    from stagectl.tracking.codecs.opentrackio import sample_to_dict

    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(len(track.frames)):
            d = sample_to_dict(frame_sample(track, i))
            fh.write(json.dumps(d, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n")
    return path
