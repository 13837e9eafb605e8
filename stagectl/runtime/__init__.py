"""The running stage: what ``stagectl run`` and ``stagectl node`` run every frame.

* :class:`CameraRig` (:mod:`.rig`): one camera -- its timeline, lens table, registration and the operator's
  settings; :meth:`CameraRig.state_at` is the camera's state at a frame edge (also what post solves takes
  with), :meth:`CameraRig.apply` takes the operator's camera settings.
* :class:`TrackingRouter` (:mod:`.router`): which camera timelines each tracking source feeds, switchable while
  samples arrive.
* :class:`StageOutput` (:mod:`.output`): the GL context, the renderer and where the canvases go (windows,
  previews, shared-memory sinks), for run and node alike.
* :class:`StageRuntime` (:mod:`.stage`): the stage in effect, its planner, rigs, receivers and output; the one
  place the console's effects change them (:meth:`StageRuntime.reload` swaps the stage and the planner the
  loop reads each frame together).
* :func:`run_frames` (:mod:`.loop`): ``stagectl run``'s frame loop over a runtime; :mod:`.status` what it says.

Nothing here depends on the stage console; the console's effects (:mod:`stagectl.console.live`) call in.
"""

from __future__ import annotations

from stagectl.runtime.loop import run_frames
from stagectl.runtime.output import StageOutput
from stagectl.runtime.rig import DEFAULT_FOCAL_MM, CameraRig
from stagectl.runtime.router import TrackingRouter
from stagectl.runtime.stage import Drawn, Planned, ReloadRefused, StageRuntime

__all__ = [
    "DEFAULT_FOCAL_MM",
    "CameraRig",
    "Drawn",
    "Planned",
    "ReloadRefused",
    "StageOutput",
    "StageRuntime",
    "TrackingRouter",
    "run_frames",
]
