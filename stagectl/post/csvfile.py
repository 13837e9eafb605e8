"""CSV export of a :class:`~stagectl.post.track.CameraTrack`: the solved camera per frame and the raw samples.

The solved file has one header row whose column names carry their units, then one row per frame, in the
**stage frame** (Z up, metres, docs/conventions.md) -- no axis conversion:

``frame`` (``start_frame + index``), ``timecode`` (SMPTE at the stage rate), ``x_m y_m z_m`` and ``pan_deg
tilt_deg roll_deg`` (``T_stage_camera``: the camera reference point on the sensor plane, ``R = Rz(pan) Rx(tilt)
Ry(roll)``), ``pupil_x_m pupil_y_m pupil_z_m`` (the entrance pupil, the projection centre),
``focal_length_mm``, ``focus_distance_m`` (``inf`` = infinity, empty = unknown), ``f_stop`` (empty = unknown),
``entrance_pupil_offset_m``, ``principal_point_x_mm principal_point_y_mm`` (+x right, +y up, from the sensor
centre), ``k1 k2 k3 p1 p2`` (Brown-Conrady, OpenCV meaning, unitless), ``sensor_width_mm sensor_height_mm``,
``zoom_norm focus_norm`` (encoders 0..1), ``status`` (how the frame was found).

The raw file (:func:`write_raw_csv`) has one row per decoded incoming sample: ``arrival_ns`` (clock monotonic of
the recording machine), ``pose_frame``, ``x_m y_m z_m pan_deg tilt_deg roll_deg`` (``T_tracking_<pose_frame>``,
before registration and tracker offset), ``zoom_norm focus_norm``, ``focal_length_mm`` (the source's own),
``timecode`` (the source's own label).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from stagectl.post.track import CameraTrack

__all__ = ["CSV_COLUMNS", "RAW_COLUMNS", "write_csv", "write_raw_csv"]

CSV_COLUMNS = (
    "frame", "timecode", "x_m", "y_m", "z_m", "pan_deg", "tilt_deg", "roll_deg", "pupil_x_m", "pupil_y_m",
    "pupil_z_m", "focal_length_mm", "focus_distance_m", "f_stop", "entrance_pupil_offset_m",
    "principal_point_x_mm", "principal_point_y_mm", "k1", "k2", "k3", "p1", "p2", "sensor_width_mm",
    "sensor_height_mm", "zoom_norm", "focus_norm", "status",
)
RAW_COLUMNS = ("arrival_ns", "pose_frame", "x_m", "y_m", "z_m", "pan_deg", "tilt_deg", "roll_deg", "zoom_norm",
               "focus_norm", "focal_length_mm", "timecode")


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v))


def write_csv(track: CameraTrack, path: str | os.PathLike[str], *, start_frame: int = 1001) -> Path:
    """Write the solved camera of every frame (module docstring); returns the path."""
    path = Path(path)
    sw, sh = track.sensor_mm
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for f in track.frames:
            x, y, z, pan, tilt, roll = f.pose()
            px, py, pz = f.T_stage_pupil[:3, 3]
            ev = f.lens
            d = ev.distortion
            w.writerow([start_frame + f.index, str(f.timecode), *map(_num, (x, y, z, pan, tilt, roll, px, py, pz,
                        ev.focal_length_mm, f.focus_distance_m, f.f_stop, ev.entrance_pupil_offset_m,
                        *ev.principal_point_offset_mm, d.k1, d.k2, d.k3, d.p1, d.p2, sw, sh, ev.zoom, ev.focus)),
                        f.status])
    return path


def write_raw_csv(track: CameraTrack, path: str | os.PathLike[str]) -> Path:
    """Write every raw decoded sample the track was solved from (module docstring); returns the path."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(RAW_COLUMNS)
        for s in track.samples:
            w.writerow([s.arrival_ns, s.pose_frame, *map(_num, (s.x, s.y, s.z, s.pan, s.tilt, s.roll, s.zoom,
                        s.focus, s.focal_length_mm)), s.timecode])
    return path
