"""The console of a running stage: the hub, its three transports, and what the frame loop publishes.

``stagectl run`` opens one :class:`LiveConsole` (unless ``--console off``): a
:class:`~stagectl.console.hub.ControlHub` restored from the operator state file, the web console (always: it
prints its URL and login token), OSC (the stage's ``console.osc`` port and allow-list) and ZeroMQ (when the
stage's key directory exists; ``stagectl keys STAGE.yaml`` creates it). The frame loop then calls, on the render
thread:

* :meth:`LiveConsole.apply` at the frame boundary, before planning: queued commands take effect on this
  frame (their side effects, registered by ``run`` with :meth:`ControlHub.register_effect`, run here too);
* :meth:`LiveConsole.publish` after presenting: the live status (a few times a second) and downscaled JPEG
  thumbnails of every canvas (about twice a second), each rate-limited so a frame pays for them rarely.

Ports: ``ports`` overrides the stage's (``0`` = any free port; the one bound is printed), so several stages or
tests can run side by side. Nothing here raises into the frame loop: a failing publish is counted and reported
once a minute.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "THUMBNAIL_WIDTH",
    "LiveConsole",
    "RunHandles",
    "TrackingRouter",
    "frustum_corners",
    "register_effects",
    "show_content",
    "thumbnails",
]

#: Width (px) of the output thumbnails the web console shows.
THUMBNAIL_WIDTH = 384
#: How often the status is published (ns) and the thumbnails are made (ns).
STATUS_EVERY_NS = 250_000_000
PREVIEW_EVERY_NS = 500_000_000


def frustum_corners(VP: np.ndarray, eye: np.ndarray, reach_m: float = 8.0) -> list[list[float]]:
    """The four corners of a frustum ``reach_m`` metres from ``eye`` along its corner rays (stage metres;
    order: bottom-left, bottom-right, top-right, top-left in NDC), for the web console's map."""
    inv = np.linalg.inv(np.asarray(VP, dtype=np.float64))
    out = []
    for x, y in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        p = inv @ np.array([x, y, 1.0, 1.0])
        d = p[:3] / p[3] - eye
        n = float(np.linalg.norm(d))
        out.append((eye + d / n * reach_m).round(4).tolist() if n > 0 else eye.round(4).tolist())
    return out


class LiveConsole:
    """The hub and transports of one running stage (module docstring).

    :param stage: the loaded stage.
    :param say: prints one line for the operator.
    :param ports: ``{"web": p, "osc": p, "zmq": p}`` overriding the stage's ports (0: any free one), or None.
    :param state_path: operator state file (None: the stage's ``console.state_file``).
    :param zmq: False keeps ZeroMQ off even when keys exist.
    """

    def __init__(self, stage, say: Callable[[str], None], *, ports: dict[str, int] | None = None,
                 state_path=None, zmq: bool = True, web: bool = True, osc: bool = True) -> None:
        from stagectl.console.hub import ControlHub

        self.stage = stage
        self.say = say
        self.ports = dict(ports or {})
        self.hub = ControlHub(stage, state_path)
        self.transports: list[Any] = []
        self.web = self.osc = self.zmq = None
        self._want = {"web": web, "osc": osc, "zmq": zmq}
        self._next_status_ns = 0
        self._next_preview_ns = 0
        self.publish_errors = 0
        self._last_error_report_ns = 0

    # ------------------------------------------------------------------ life
    def _settings(self, name: str):
        s = getattr(self.stage.console, name)
        return dataclasses.replace(s, port=self.ports[name]) if name in self.ports else s

    def start(self) -> LiveConsole:
        """Start the transports; a transport that cannot start is reported and left off (the stage runs)."""
        from stagectl.errors import StageError

        say = self.say
        for w in self.hub.warnings:
            say(f"stagectl run: console: {w}")
        path = self.hub.state_path
        say(f"stagectl run: console: operator state in {path} (seq {self.hub.seq}; restored at start, written "
            "before every acknowledged change)")
        if self._want["web"]:
            from stagectl.console.web.server import WebConsole

            try:
                self.web = WebConsole(self.hub, self._settings("web"))
                url = self.web.start()
                self.transports.append(self.web)
                say(f"stagectl run: console: web console at {url}  login token: {self.web.token}")
            except (StageError, OSError) as exc:
                self.web = None
                say(f"stagectl run: console: web console off: {exc}")
        if self._want["osc"]:
            from stagectl.console.osc_transport import OscConsole

            try:
                self.osc = OscConsole(self.hub, self._settings("osc")).start()
                self.transports.append(self.osc)
                host, port = self.osc.address
                allowed = ", ".join(a.address for a in self.stage.console.osc.allow) or "nobody"
                say(f"stagectl run: console: OSC commands on udp://{host}:{port} (obeyed from {allowed}; "
                    "docs/console-osc.md)")
            except (StageError, OSError) as exc:
                self.osc = None
                say(f"stagectl run: console: OSC off: {exc}")
        if self._want["zmq"]:
            from stagectl.console.zmq_transport import ZmqConsole

            keys = self.stage.console.zmq.keys
            if not keys.exists():
                say(f"stagectl run: console: ZeroMQ off: no keys in {keys} (create them with "
                    f"`stagectl keys {self.stage.path}`; `stagectl ctl` then works)")
            else:
                settings = self._settings("zmq")
                if "zmq" in self.ports:
                    settings = dataclasses.replace(settings, state_port=0 if self.ports["zmq"] == 0
                                                   else self.ports["zmq"] + 1)
                try:
                    self.zmq = ZmqConsole(self.hub, settings, self.stage.path.parent)
                    self.zmq.start()
                    self.transports.append(self.zmq)
                    say(f"stagectl run: console: ZeroMQ commands on tcp://{settings.bind}:{self.zmq.port}, state "
                        f"stream on port {self.zmq.state_port} (CURVE keys in {keys}; `stagectl ctl "
                        f"{self.stage.path} status`)")
                except (StageError, OSError) as exc:
                    self.zmq = None
                    say(f"stagectl run: console: ZeroMQ off: {exc}")
        return self

    def close(self) -> None:
        for t in reversed(self.transports):
            try:
                t.close()
            except Exception as exc:  # noqa: BLE001 - shutting down: report, go on closing the rest
                self.say(f"stagectl run: console: closing {type(t).__name__}: {exc}")
        self.transports = []
        self.hub.close()

    # ------------------------------------------------------------------ per frame (render thread)
    def apply(self, frame: int) -> list:
        """Apply the queued commands at this frame boundary (their effects run here)."""
        return self.hub.apply_pending(frame)

    def publish(self, now_ns: int, status: Callable[[], dict], canvases: Callable[[], dict] | None) -> None:
        """Publish the status and thumbnails when they are due (rate-limited; never raises)."""
        try:
            if now_ns >= self._next_status_ns:
                self._next_status_ns = now_ns + STATUS_EVERY_NS
                self.hub.publish_status(status())
            # thumbnails cost a few ms of CPU: only while a web console is open
            if canvases is not None and now_ns >= self._next_preview_ns and self.watching():
                self._next_preview_ns = now_ns + PREVIEW_EVERY_NS
                self.hub.publish_previews(thumbnails(canvases()))
        except Exception as exc:  # noqa: BLE001 - the console never stops the frame loop
            self.publish_errors += 1
            if now_ns - self._last_error_report_ns > 60_000_000_000:
                self._last_error_report_ns = now_ns
                self.say(f"stagectl run: console: publishing status failed ({self.publish_errors} so far): {exc!r}")

    def watching(self) -> bool:
        """Someone looks at the output thumbnails (a web console page is connected)."""
        return self.web is not None and self.web.clients > 0

    def summary(self) -> str:
        """One line for the end of the run."""
        parts = [f"{len(self.hub.log)} change(s) in this run, operator state seq {self.hub.seq}"]
        if self.osc is not None:
            st = self.osc.stats()
            parts.append(f"OSC refused {st.get('refused_source', 0) + st.get('refused_readonly', 0)}")
        if self.zmq is not None:
            st = self.zmq.stats()
            parts.append(f"ZeroMQ refused {st.get('refused', 0)}")
        return "console: " + ", ".join(parts)


# ------------------------------------------------------------------------------------- effects of stagectl run


class TrackingRouter:
    """Which camera timelines each tracking source feeds, switchable while samples arrive (the console's
    ``camera.set tracking``). ``sink(source)`` is the receiver's sink for that source; ``assign`` swaps one
    camera to another source (the new routing is one tuple per source, replaced whole, so a receive thread
    sees either the old or the new routing). A timeline has a single writer: each camera's pushes go through
    a lock of its own, so the old source's receive thread, still inside a push when the routing changes,
    never writes at the same time as the new one (uncontended otherwise: one receive thread per source)."""

    def __init__(self, assignments: dict[str, str], timelines: dict[str, Any]) -> None:
        self._timelines = dict(timelines)
        self._locks = {cam: threading.Lock() for cam in self._timelines}
        self._assign = dict(assignments)  # camera -> source
        self._targets: dict[str, tuple] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        targets: dict[str, list] = {}
        for cam, src in self._assign.items():
            targets.setdefault(src, []).append((self._locks[cam], self._timelines[cam].push))
        self._targets = {k: tuple(v) for k, v in targets.items()}

    def sink(self, source: str) -> Callable[[int, Any], None]:
        def push(arrival_ns: int, sample: Any) -> None:
            for lock, fn in self._targets.get(source, ()):
                with lock:
                    fn(arrival_ns, sample)
        return push

    def assign(self, camera: str, source: str) -> None:
        self._assign[camera] = source
        self._rebuild()

    def source_of(self, camera: str) -> str:
        return self._assign[camera]


@dataclasses.dataclass
class RunHandles:
    """What the console's effects change in a running ``stagectl run``: ``rigs`` camera name -> its rig
    (``timeline``, ``source``, ``base_overscan``, ``soft_edge``), the receivers and the tracking router,
    ``output`` (the renderer's owner; None with --no-render) and the planner."""

    stage: Any
    rigs: dict
    receivers: Any
    router: TrackingRouter
    planner: Any
    output: Any = None
    take: Any = None  # the LiveTake being recorded
    #: threads closing stopped takes (flush, fsync): off the frame loop; joined by :meth:`close_takes`
    closing: list = dataclasses.field(default_factory=list)

    def close_takes(self, timeout_s: float = 10.0) -> None:
        """At the end of the run: stop the take being recorded (everything appended is kept) and wait for the
        takes being closed."""
        if self.take is not None:
            take, self.take = self.take, None
            take.stop()
        for t in self.closing:
            t.join(timeout_s)
        self.closing = []


def show_content(h: RunHandles, spec: str) -> str:
    """Show ``spec`` (``"procedural"`` or a scene file; relative paths from the stage file's folder) in the
    running stage: loaded into the renderer (render thread, its GL context current) and the planner told
    whether it is static (a video plate redraws the outer atlas every frame). Returns its description;
    raises StageError when it cannot be loaded, and then nothing changed."""
    from stagectl.render.content import content_static

    desc = str(spec)
    if h.output is not None:
        desc = h.output.renderer.set_content(spec)
    h.planner.outer = dataclasses.replace(h.planner.outer, static=content_static(spec))
    return desc


def _with_content(stage, content: str):
    """``stage`` showing ``content`` (the operator's) instead of its ``render.outer.content``."""
    if content == str(stage.render.outer.content):
        return stage
    r = stage.render
    return dataclasses.replace(stage, render=dataclasses.replace(r, outer=dataclasses.replace(r.outer,
                                                                                              content=content)))


def register_effects(hub, h: RunHandles, say: Callable[[str], None]) -> None:
    """Register what ``stagectl run`` does when the console changes something the hub cannot apply alone.
    Every effect runs on the render thread at the frame boundary; raising CommandError refuses the command
    (the hub rolls it back)."""
    from stagectl.console.commands import CommandError
    from stagectl.errors import StageError

    def content_select(args: dict, state) -> dict:
        from stagectl.console.commands import confined

        content = args["content"]
        if content != "procedural":  # checked again right before loading (a link swapped in meanwhile)
            content = str(confined(h.stage, "content", content, "content.select", "content"))
        try:
            desc = show_content(h, content)
        except StageError as exc:
            raise CommandError(f"content.select: {exc}") from None
        say(f"stagectl run: console: content is now {desc}")
        return {"content": desc}

    def camera_set(args: dict, state) -> dict:
        name = args["camera"]
        rig = h.rigs[name]
        settings = state.camera(name)
        if "tracking" in args and settings.tracking != rig.source.name:
            src = h.stage.tracking_source(settings.tracking)
            h.router.assign(name, src.name)
            rig.source = src
            # the timeline starts afresh from the new source's first sample: smoothing (no glide from the old
            # source's pose to the new one), plausibility and timing are not judged against the old source
            rig.timeline.restart()
        if "delay_frames" in args:
            rig.timeline.set_delay_frames(settings.delay_frames)
        if "smoothing" in args:
            rig.timeline.set_smoothing(settings.smoothing_filter())
        rig.base_overscan = tuple(settings.overscan_percent)
        if rig.adaptive is not None:  # the operator's overscan is the adaptive overscan's floor
            rig.adaptive.base_pct = rig.base_overscan
        rig.soft_edge = float(settings.soft_edge)
        return {}

    def record_start(args: dict, state) -> dict:
        from stagectl.console.commands import confined
        from stagectl.tracking.recording import LiveTake

        # checked again here (the folder as the stage file in effect names it): a link swapped into the takes
        # folder since the command was validated is refused, before any folder is made
        path = confined(h.stage, "takes", args["path"], "record.start", "path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path = confined(h.stage, "takes", str(path), "record.start", "path")  # and after making folders
            h.take = LiveTake(path, list(h.receivers), stage=h.stage.name)
        except (OSError, ValueError) as exc:
            raise CommandError(f"record.start: cannot record to {path}: {exc}") from None
        say(f"stagectl run: console: recording tracking into {path}")
        return {"path": str(path)}

    def record_stop(args: dict, state) -> dict:
        if h.take is None:
            return {}
        take, h.take = h.take, None
        for r in take.receivers:  # nothing received after this frame boundary is appended
            r.tap = None
        records, seconds = take.recorder.records, (time.monotonic_ns() - take.started_ns) / 1e9
        # flushing and fsync of the file (milliseconds, more for a long take) stay off the frame loop: every
        # record is in the kernel already, so the file is complete for readers now. Only the recorder is closed
        # there: the receivers' taps may belong to the next take by then
        closer = threading.Thread(target=take.recorder.close, name="take-close", daemon=True)
        closer.start()
        h.closing.append(closer)
        say(f"stagectl run: console: take {take.path} closed: {records} records, {seconds:.1f} s")
        return {"records": records, "seconds": round(seconds, 3)}

    def stage_reload(args: dict, state) -> dict:
        new = hub.stage  # already the new stage inside this effect
        old = h.stage
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
            raise CommandError(f"stage.reload: the {' and '.join(changed)} changed: restart stagectl run to apply "
                               f"{'it' if len(changed) == 1 else 'them'} (nothing was changed)")
        from stagectl.render.content import content_static
        from stagectl.render.plan import FramePlanner

        # the operator's content (content.select, kept by the reload) stays on, not the stage file's
        planner = FramePlanner(new, outer_static=content_static(state.content))
        if h.output is not None:
            try:
                h.output.replace_stage(_with_content(new, state.content))
            except StageError as exc:
                raise CommandError(f"stage.reload: {exc}") from None
        h.planner.__dict__.update(planner.__dict__)  # the loop holds the planner object: same object, new stage
        adaptive = new.render.inner.adaptive
        for cam in new.cameras:
            rig = h.rigs[cam.name]
            rig.camera = cam
            rig.source = new.tracking_source(rig.source.name)
            rig.lens_table = cam.lens_file.table(cam.sensor_mm) if cam.lens_file else None
            rig.T_body_camera = np.ascontiguousarray(cam.T_body_camera)
            rig.T_stage_tracking = np.ascontiguousarray(new.T_stage_tracking)
            if adaptive != old.render.inner.adaptive:
                rig.adaptive = rig.overscan = None
                if adaptive is not None:
                    from stagectl.render.overscan import AdaptiveOverscan

                    rig.adaptive = AdaptiveOverscan(
                        rig.base_overscan, max_pct=adaptive.max_percent,
                        latency_ns=int(adaptive.latency_ms * 1e6), wall_distance_m=adaptive.wall_distance_m,
                        decay_pct_per_s=adaptive.decay_percent_per_s)
        h.stage = new
        say(f"stagectl run: console: stage {new.path} reloaded")
        return {}  # the hub's result, {"stage": name, "warnings"} (docs/console.md), is the ack's

    hub.register_effect("content.select", content_select)
    hub.register_effect("camera.set", camera_set)
    hub.register_effect("record.start", record_start)
    hub.register_effect("record.stop", record_stop)
    hub.register_effect("stage.reload", stage_reload)


def thumbnails(canvases: dict[str, np.ndarray], width: int = THUMBNAIL_WIDTH) -> dict[str, bytes]:
    """Output key -> JPEG bytes of the canvas (RGBA, row 0 = top) scaled to ``width`` pixels (area filter)."""
    import cv2

    out = {}
    for key, img in canvases.items():
        h, w = img.shape[:2]
        tw = min(width, w)
        th = max(1, round(h * tw / w))
        small = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)  # RGBA: contiguous, 4x faster than RGB
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGBA2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            out[key] = buf.tobytes()
    return out
