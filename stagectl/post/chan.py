"""Nuke ``.chan`` export of a :class:`~stagectl.post.track.CameraTrack`.

A ``.chan`` file is plain text, one line per frame, whitespace-separated::

    frame  tx ty tz  rx ry rz  vfov

``frame`` is ``start_frame + index``; ``tx ty tz`` the **entrance pupil** (the projection centre) in the Y-up
world (``CameraFrame.T_yup_cam``: ``x, z, -y`` of the stage), in metres times ``units_per_metre`` (default 1:
metres); ``rx ry rz`` degrees for Nuke's default Camera rotation order **ZXY**, i.e. ``R = Ry(ry) Rx(rx)
Rz(rz)`` on column vectors with the camera looking down -Z, +Y up; ``vfov`` the vertical field of view in
degrees, ``2 atan(h / 2f)`` of the sensor height ``h`` and the focal length ``f``. Import it on a Camera whose
``haperture`` / ``vaperture`` are the sensor's width and height (mm; the file's header comment says them) and
whose rotation order is ZXY: Nuke then derives the focal length from ``vfov``. The principal-point offset and
distortion have no column in the format (USD and CSV carry them; docs/post.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from stagectl.post.track import CameraTrack, nuke_zxy_deg

__all__ = ["write_chan"]


def write_chan(track: CameraTrack, path: str | os.PathLike[str], *, start_frame: int = 1001,
               units_per_metre: float = 1.0) -> Path:
    """Write ``track`` as a Nuke ``.chan`` file; returns its path."""
    path = Path(path)
    sh = track.sensor_mm[1]
    lines = []
    for f in track.frames:
        M = f.T_yup_cam()
        rx, ry, rz = nuke_zxy_deg(M[:3, :3])
        tx, ty, tz = (float(v) * units_per_metre for v in M[:3, 3])
        vfov = math.degrees(2.0 * math.atan(sh / (2.0 * f.focal_length_mm)))
        lines.append(f"{start_frame + f.index}\t{tx:.9f}\t{ty:.9f}\t{tz:.9f}\t{rx:.9f}\t{ry:.9f}\t{rz:.9f}\t{vfov:.9f}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path
