"""The running stage: what the frame loop reads each frame, and the one place that changes it.

A :class:`StageRuntime` owns, for ``stagectl run``, the stage in effect, its
:class:`~stagectl.render.plan.FramePlanner`, a :class:`~stagectl.runtime.rig.CameraRig` per camera, the
tracking receivers and their :class:`~stagectl.runtime.router.TrackingRouter`, and the
:class:`~stagectl.runtime.output.StageOutput` (None with ``--no-render``); ``stagectl node`` uses one without
cameras (its camera states come from the primary). Every frame the loop asks it for the cameras' states at the
frame edge (:meth:`StageRuntime.camera_states`) and has it plan and draw them (:meth:`StageRuntime.draw`); the
status reads :attr:`StageRuntime.last`, the last plan *with the stage it was planned on*.

Changes come from the stage console's effects, on the frame loop's thread at a frame boundary:
:meth:`~StageRuntime.set_camera` (``camera.set``), :meth:`~StageRuntime.show_content` (``content.select``)
and :meth:`~StageRuntime.reload` (``stage.reload``), which builds the new planner and renderer first and then
swaps the stage and the planner together, so the next frame plans, draws and reports on the new stage (or,
when anything cannot be built, nothing changed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stagectl.core.camera import CameraState, OperatorFlags
from stagectl.core.errors import StageError
from stagectl.render.passes import FramePlan, PlanError
from stagectl.render.plan import FramePlanner
from stagectl.runtime.output import StageOutput
from stagectl.runtime.rig import CameraRig
from stagectl.runtime.router import TrackingRouter
from stagectl.stage.model import Stage

__all__ = ["Drawn", "Planned", "ReloadRefused", "StageRuntime"]


class ReloadRefused(StageError):
    """A reloaded stage changes what a running stage cannot take (frame rate, tracking sources, cameras,
    outputs, sync): restart to apply it. Nothing was changed."""


@dataclass(frozen=True)
class Planned:
    """A frame's plan and the stage it was planned on (the status pairs the plan's covered cabinets with
    that stage's walls)."""

    stage: Stage
    plan: FramePlan
    frame: int


@dataclass(frozen=True)
class Drawn:
    """What :meth:`StageRuntime.draw` did with a frame: ``plan`` (None: it could not be planned), ``rendered``
    (an output drew it), ``ok`` (planned, and drawn when there is an output) and ``why`` when not ok
    (``"no plan: ..."``, ``"render failed in PASS: ..."``; the outputs keep the last good frame)."""

    plan: FramePlan | None
    rendered: bool
    ok: bool
    why: str = ""


@dataclass(frozen=True)
class _InEffect:
    """What the loop reads each frame, swapped whole by :meth:`StageRuntime.reload`."""

    stage: Stage
    planner: FramePlanner


class StageRuntime:
    """The running stage (module docstring).

    :param stage: the loaded stage.
    :param output: the :class:`StageOutput` (None: nothing is drawn).
    :param rigs: camera name -> :class:`CameraRig` (None: none; :meth:`tracked` makes one per camera).
    :param planner: the stage's planner (None: ``FramePlanner(stage)``).
    """

    def __init__(self, stage: Stage, *, output: StageOutput | None = None,
                 rigs: Mapping[str, CameraRig] | None = None, planner: FramePlanner | None = None) -> None:
        self._now = _InEffect(stage, planner if planner is not None else FramePlanner(stage))
        self.output = output
        self.rigs: dict[str, CameraRig] = dict(rigs or {})
        self.router = TrackingRouter({n: r.source.name for n, r in self.rigs.items()},
                                     {n: r.timeline for n, r in self.rigs.items()})
        self.receivers: Any = []  # the ReceiverGroup (open_receivers), indexable by source name
        #: the last frame planned, with the stage it was planned on (None before the first)
        self.last: Planned | None = None
        #: the take being recorded (a :class:`~stagectl.tracking.recording.LiveTake`, set by the console's
        #: record.start effect) and ``(frame, instant)`` of the frame being latched (the take's first frame)
        self.take: Any = None
        self.latching: tuple[int, int] | None = None
        #: the OpenTrackIO source whose tracker.recording starts and stops takes (record.follow), or None
        self.follow: str | None = None

    @classmethod
    def tracked(cls, stage: Stage, *, output: StageOutput | None = None) -> StageRuntime:
        """The runtime of ``stagectl run``: a rig per camera of ``stage`` (:meth:`CameraRig.for_camera`), with
        the stage's adaptive overscan when it asks for it."""
        rigs = {cam.name: CameraRig.for_camera(stage, cam) for cam in stage.cameras}
        for rig in rigs.values():
            rig.set_adaptive(stage.render.inner.adaptive)
        return cls(stage, output=output, rigs=rigs)

    @property
    def stage(self) -> Stage:
        """The stage in effect (the reloaded one after :meth:`reload`)."""
        return self._now.stage

    @property
    def planner(self) -> FramePlanner:
        """The planner of the stage in effect."""
        return self._now.planner

    def open_receivers(self):
        """A receiver per tracking source of the stage (not started), each feeding the cameras the router
        assigns to it now (the console may switch a camera to another source, so every source listens), each
        with a :class:`~stagectl.tracking.recording.PreRoll` tap (the last seconds of datagrams, for a take)."""
        from stagectl.tracking.receiver import Receiver, ReceiverGroup
        from stagectl.tracking.recording import PreRoll

        self.receivers = ReceiverGroup([Receiver.from_source(s, self.router.sink(s.name), camera_names=list(self.rigs))
                                        for s in self.stage.tracking])
        for r in self.receivers:  # a take started later also holds the samples its first frames are drawn from
            r.tap = PreRoll()
        return self.receivers

    # ------------------------------------------------------------------ per frame (the loop's thread)
    def camera_states(self, t_ns: int) -> list[CameraState]:
        """Every camera's state at the instant ``t_ns`` (the timelines' clock) in the stage's camera order;
        cameras without a pose yet are left out."""
        return [s for rig in self.rigs.values() if (s := rig.state_at(t_ns)) is not None]

    def record(self, frame: int, t_ns: int, states: list[CameraState], latched_ns: int | None = None) -> None:
        """Append the cameras of frame ``frame`` (evaluated at ``t_ns``, monotonic; latched at ``latched_ns``,
        monotonic, right before they were evaluated) to the take being recorded, if any: what the frame is drawn
        from and, per camera, the newest sample its timeline held and the timeline's settings (docs/takes.md).
        Never raises (the take counts write errors)."""
        take = self.take
        if take is not None:
            take.frame(frame, t_ns, states, self.rigs, latched_ns)

    def draw(self, states: list[CameraState], frame: int, *, flags: OperatorFlags | None = None,
             features: Any = None) -> Drawn:
        """Plan frame ``frame`` of ``states`` with the operator's ``flags`` and ``features`` (None: none, the
        planner's) and draw it into the output. A frame that cannot be planned or drawn is said in the result,
        never raised (the outputs keep the last good frame)."""
        now = self._now
        try:
            if flags is None:
                plan = now.planner.plan(states, frame=frame, features=features)
            else:
                plan = now.planner.plan(states, flags, frame, features=features)
        except PlanError as exc:
            return Drawn(None, False, False, f"no plan: {exc}")
        self.last = Planned(now.stage, plan, frame)
        if self.output is None:
            return Drawn(plan, False, True)
        result = self.output.render(plan)
        if not result.ok:
            return Drawn(plan, True, False, f"render failed in {result.failed_pass}: {result.error}")
        return Drawn(plan, True, True)

    # ------------------------------------------------------------------ changes (the loop's thread)
    def set_camera(self, name: str, settings: Any, only: Any = None) -> None:
        """The operator's settings of camera ``name`` (:class:`~stagectl.core.camera_settings.CameraSettings`;
        ``only``: the settings named, None: all): the tracking source (routed here from the next sample on, the timeline
        starting afresh), then :meth:`CameraRig.apply`. KeyError for a camera the stage does not have."""
        rig = self.rigs[name]
        if (only is None or "tracking" in only) and settings.tracking != rig.source.name:
            src = self.stage.tracking_source(settings.tracking)
            self.router.assign(name, src.name)
            rig.switch_source(src)
        rig.apply(settings, only)

    def show_content(self, spec: str) -> str:
        """Show ``spec`` (``"procedural"`` or a scene file; relative paths from the stage file's folder): loaded
        into the renderer (its GL context current) and the planner told whether it is static (a video plate
        redraws the outer atlas every frame). Returns its description; raises StageError when it cannot be
        loaded, and then nothing changed."""
        from stagectl.render.content import content_static

        desc = str(spec)
        if self.output is not None:
            desc = self.output.renderer.set_content(spec)
        planner = self.planner
        planner.outer = dataclasses.replace(planner.outer, static=content_static(spec))
        return desc

    def reload(self, new: Stage, content: str) -> None:
        """Run ``new`` from the next frame on, showing the operator's ``content`` (``content.select``'s, kept).
        It may change walls, mappings, cabinets, lens files, registration, tracker offsets, render settings and
        features; :class:`ReloadRefused` when it changes the frame rate, the tracking sources, the cameras, the
        outputs or sync (restart to apply those). The new planner and renderer are built first: any StageError
        leaves the running stage as it was. Then the stage and planner are swapped together and every rig takes
        its camera of the new stage."""
        old = self.stage
        changed = [what for what, a, b in (
            ("frame rate", old.frame_rate, new.frame_rate),
            ("tracking sources", [(s.name, s.protocol, s.port, s.bind, s.multicast_group) for s in old.tracking],
             [(s.name, s.protocol, s.port, s.bind, s.multicast_group) for s in new.tracking]),
            ("cameras", [c.name for c in old.cameras], [c.name for c in new.cameras]),
            ("outputs", [(p.name, o.name, tuple(o.canvas)) for p, o in old.outputs()],
             [(p.name, o.name, tuple(o.canvas)) for p, o in new.outputs()]),
            ("sync", old.sync, new.sync),
        ) if a != b]
        if changed:
            raise ReloadRefused(f"the {' and '.join(changed)} changed: restart stagectl run to apply "
                                f"{'it' if len(changed) == 1 else 'them'} (nothing was changed)")
        from stagectl.render.content import content_static

        planner = FramePlanner(new, outer_static=content_static(content))
        if self.output is not None:
            self.output.replace_stage(_with_content(new, content))
        self._now = _InEffect(new, planner)  # one swap: the next frame reads the new stage and its planner
        adaptive = new.render.inner.adaptive
        for cam in new.cameras:
            rig = self.rigs.get(cam.name)
            if rig is None:  # a runtime without rigs (a render node, a test): nothing tracked to restage
                continue
            rig.restage(new, cam)
            if adaptive != old.render.inner.adaptive:
                rig.set_adaptive(adaptive)


def _with_content(stage: Stage, content: str) -> Stage:
    """``stage`` showing ``content`` (the operator's) instead of its ``render.outer.content``."""
    if content == str(stage.render.outer.content):
        return stage
    r = stage.render
    return dataclasses.replace(stage, render=dataclasses.replace(r, outer=dataclasses.replace(r.outer,
                                                                                              content=content)))
