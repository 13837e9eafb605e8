"""Takes for post: a recorded take solved into the camera's path at every frame, and the files editorial and
VFX read (USD, Nuke .chan, CSV, OpenTrackIO JSON, ALE and OpenTimelineIO take sheets). docs/post.md.

Modules import nothing heavy at top level; ``pxr`` (usd-core) and ``opentimelineio`` are imported by the
writers that need them.
"""

from __future__ import annotations

from stagectl.post.solve import MATCH_MODES, PostError, solve_take
from stagectl.post.track import (
    T_CAMERA_YUPCAM,
    T_YUP_STAGE,
    CameraFrame,
    CameraTrack,
    RawSample,
    Slate,
)

__all__ = [
    "MATCH_MODES",
    "T_CAMERA_YUPCAM",
    "T_YUP_STAGE",
    "CameraFrame",
    "CameraTrack",
    "PostError",
    "RawSample",
    "Slate",
    "solve_take",
]
