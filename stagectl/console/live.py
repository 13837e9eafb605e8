"""The console of a running stage: the hub, its three transports, and what the frame loop publishes.

``stagectl run`` opens one :class:`LiveConsole` (unless ``--console off``): a
:class:`~stagectl.console.hub.ControlHub` restored from the operator state file, the web console (always: it
prints its URL and login token), OSC (the stage's ``console.osc`` port and allow-list) and ZeroMQ (when the
stage's key directory exists; ``stagectl keys STAGE.yaml`` creates it). The frame loop then calls, on the render
thread:

* :meth:`LiveConsole.apply` at the frame boundary, before planning: queued commands take effect on this
  frame (their side effects, registered by ``run`` with :meth:`ControlHub.register_effect`, run here too);
* :meth:`LiveConsole.publish` after presenting: the live status (a few times a second) and downscaled JPEG
  thumbnails of every canvas (about twice a second), each rate-limited so a frame pays for them rarely;
* :meth:`LiveConsole.cluster_show` (``--cluster``), with the frame state: what the render nodes must show
  besides the features (:class:`~stagectl.sync.cluster.ShowState`: the content ``content.select`` chose,
  the stage file's digest and ``stage.reload`` count, the ``color.patches`` playbacks).

Ports: ``ports`` overrides the stage's (``0`` = any free port; the one bound is printed), so several stages or
tests can run side by side. Nothing here raises into the frame loop: a failing publish is counted and reported
once a minute.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from stagectl.runtime.output import THUMBNAIL_WIDTH
from stagectl.runtime.status import frustum_corners  # the web console's map; kept importable from here

__all__ = [
    "LiveConsole",
    "RunHandles",
    "frustum_corners",
    "register_effects",
    "restore_operator_state",
    "thumbnails",
]

#: How often the status is published (ns) and the thumbnails are made (ns).
STATUS_EVERY_NS = 250_000_000
PREVIEW_EVERY_NS = 500_000_000


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
        #: the effects' handles (:class:`RunHandles`, set by ``stagectl run``), or None
        self.handles: RunHandles | None = None
        self._show: tuple[tuple, Any] | None = None  # (what it was made of, the ShowState)

    # ------------------------------------------------------------------ life
    def _settings(self, name: str):
        s = getattr(self.stage.console, name)
        return dataclasses.replace(s, port=self.ports[name]) if name in self.ports else s

    def start(self) -> LiveConsole:
        """Start the transports; a transport that cannot start is reported and left off (the stage runs)."""
        from stagectl.core.errors import StageError

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
            from stagectl.console.zmq import ZmqConsole

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

    def cluster_show(self, frame: int):
        """What the cluster's nodes show besides the features at stage frame ``frame`` (the frame loop's
        thread, after :meth:`apply`): a :class:`~stagectl.sync.cluster.ShowState` with the operator's content
        (relative to the stage file; ``""`` for the stage file's own), the SHA-256 of the stage file in effect
        and the ``stage.reload`` count (from :attr:`handles`; none: ``""`` and 0) and the patch playbacks not
        yet past their end. The same object while nothing changed (the primary compares it every frame)."""
        stage = self.hub.stage
        h = self.handles
        patches: tuple = ()
        if h is not None and h.patches:
            for key, (_, last) in list(h.patches.items()):
                if frame > last:  # played to its end slate: the nodes' players have dropped it too
                    del h.patches[key]
            patches = tuple(start for start, _ in h.patches.values())
        made_of = (stage, self.hub.state.content, h.stage_sha256 if h is not None else None,
                   h.reloads if h is not None else 0, patches)
        was = self._show
        if was is None or was[0][0] is not stage or was[0][1:] != made_of[1:]:  # a new stage: a new object
            from stagectl.sync.cluster import ShowState

            self._show = (made_of, ShowState(wire_content(stage, made_of[1]), made_of[2] or "", made_of[3],
                                             patches))
        return self._show[1]

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


@dataclasses.dataclass
class RunHandles:
    """What the console's effects change in a running ``stagectl run``: its
    :class:`~stagectl.runtime.StageRuntime` (the stage in effect, rigs, receivers, router, planner, output) and
    the take being recorded."""

    runtime: Any
    take: Any = None  # the LiveTake being recorded
    #: threads closing stopped takes (flush, fsync): off the frame loop; joined by :meth:`close_takes`
    closing: list = dataclasses.field(default_factory=list)
    #: for the cluster's nodes (:meth:`LiveConsole.cluster_show`): the ``stage.reload`` count of this run, the
    #: SHA-256 of the stage file in effect (as read at start and at each reload; None: unreadable), and the
    #: ``color.patches`` playbacks started: output key -> (:class:`~stagectl.sync.cluster.PatchStart`, its
    #: last stage frame)
    reloads: int = 0
    stage_sha256: str | None = None
    patches: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        path = getattr(self.runtime.stage, "path", None)
        if self.stage_sha256 is None and path is not None:
            self.stage_sha256 = file_sha256(path)

    @property
    def stage(self):
        """The stage in effect (the reloaded one after a stage.reload)."""
        return self.runtime.stage

    follower: Any = None  # the _Follower thread of record.follow

    def follow(self, source: str | None, hub, say: Callable[[str], None], *, wait: bool = True) -> None:
        """Follow ``source``'s ``tracker.recording`` and ``tracker.slate`` (None: stop following), in place of
        the source followed until now. ``wait``: wait for the old follower's thread to end (not on the frame
        loop's thread: it may be waiting there for this very frame boundary to apply a record command)."""
        if self.follower is not None:
            self.follower.stop(join=wait)
            self.follower = None
        self.runtime.follow = source
        if source is not None:
            self.follower = _Follower(hub, self.runtime.receivers[source], say)
            self.follower.start()
            say(f"stagectl run: console: takes follow the recording flag and slate of {source}")

    def close_takes(self, timeout_s: float = 10.0) -> None:
        """At the end of the run: stop following a tracker, stop the take being recorded (everything appended
        is kept) and wait for the takes being closed."""
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if self.take is not None:
            take, self.take = self.take, None
            self.runtime.take = None
            take.finish("end of run")
            take.close()
        for t in self.closing:
            t.join(timeout_s)
        self.closing = []


def wire_content(stage, content: str) -> str:
    """The operator's ``content`` (the operator state's: ``"procedural"``, the stage file's own
    ``render.outer.content``, or a scene file's absolute path) as the cluster carries it
    (:class:`~stagectl.sync.cluster.ShowState`): ``""`` for the stage file's own, ``"procedural"``, else the
    path relative to the stage file's folder with ``/`` separators (a node resolves it against its own copy
    of the stage's folders)."""
    import os
    from pathlib import Path

    if content == str(stage.render.outer.content):
        return ""
    if content == "procedural":
        return content
    base = Path(stage.path).resolve().parent
    return Path(os.path.relpath(Path(base, content).resolve(), base)).as_posix()


def file_sha256(path) -> str | None:
    """The SHA-256 (lowercase hex) of the file at ``path``; None when it cannot be read."""
    import hashlib

    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def take_header(stage, state, slate: dict) -> dict:
    """The ``meta`` of a take's header (docs/takes.md, "Header"): the ``slate``, the stage file's ``path`` and
    ``sha256``, every camera with its lens file's path and ``sha256``, the operator state as the state file
    writes it (features, cameras, content, LUT paths inside it), the ``content`` shown and the LUT paths."""
    cams = []
    for c in stage.cameras:
        lens = getattr(c.lens_file, "path", None) if c.lens_file else None
        cams.append({"name": c.name, "tracking": c.tracking, "sensor_mm": [float(v) for v in c.sensor_mm],
                     "lens_file": None if lens is None else str(lens),
                     "lens_name": c.lens_file.name if c.lens_file else None,
                     "lens_sha256": None if lens is None else file_sha256(lens)})
    return {
        "slate": dict(slate),
        "stage_file": {"path": str(stage.path), "sha256": file_sha256(stage.path)},
        "cameras": cams,
        "operator": state.to_json(),
        "content": state.content,
        "luts": dict(state.lut_paths),
    }


def _slate_words(slate: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in slate.items()) or "no slate"


def parse_tracker_slate(text: str | None) -> dict:
    """record.start's slate from an OpenTrackIO ``tracker.slate``: ``<scene>_<camera>_<take>`` (the
    specification's example ``A101_A_4``: scene A101, camera A, take 4) when it has that shape (a camera of
    1..8 characters, a take 1..9999), else the whole text (up to 32 characters) as the scene; {} for none."""
    text = (text or "").strip()
    if not text:
        return {}
    parts = text.split("_")
    if len(parts) == 3 and parts[0] and 1 <= len(parts[1]) <= 8 and parts[2].isdigit() and 1 <= int(parts[2]) <= 9999:
        return {"scene": parts[0][:32], "camera": parts[1], "take": int(parts[2])}
    return {"scene": text[:32]}


class _Follower:
    """``record.follow``: polls a receiver's newest sample (every 20 ms) and asks the hub for record.start
    when its ``tracker.recording`` turns true and record.stop when it turns false, as ``tracker:<source>``.
    A source that sends no recording flag changes nothing."""

    def __init__(self, hub, receiver, say: Callable[[str], None], period_s: float = 0.02) -> None:
        self.hub = hub
        self.receiver = receiver
        self.say = say
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{receiver.name}", daemon=True)
        self.was: bool | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, join: bool = True) -> None:
        """Stop polling (a command already asked for is still answered); ``join``: wait for the thread."""
        self._stop.set()
        if join and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)

    def _run(self) -> None:
        who = f"tracker:{self.receiver.name}"
        while not self._stop.wait(self.period_s):
            last = self.receiver.last()
            tracker = getattr(last[1], "tracker", None) if last is not None else None
            rec = getattr(tracker, "recording", None)
            if rec is None or rec == self.was:
                continue
            first, self.was = self.was is None, rec
            if rec:
                ack = self.hub.submit("record.start", parse_tracker_slate(tracker.slate), who=who)
            elif not first:  # a tracker that is not recording when followed stops nothing
                ack = self.hub.submit("record.stop", {}, who=who)
            else:
                continue
            if not ack.get("ok"):
                self.say(f"stagectl run: console: {who}: {ack.get('error')}")


def restore_operator_state(state, runtime, say: Callable[[str], None]) -> None:
    """Put the restored operator state into the running stage (at start, on the thread that renders): each
    camera's settings into the runtime (:meth:`~stagectl.runtime.StageRuntime.set_camera`), and the scene
    content when the operator chose another than the stage file's (the renderer was built with the stage
    file's)."""
    from stagectl.core.errors import StageError

    stage = runtime.stage
    if state.content != str(stage.render.outer.content):
        try:
            desc = runtime.show_content(state.content)
            say(f"stagectl run: console: content {desc} (restored from the operator state)")
        except StageError as exc:
            say(f"stagectl run: console: the operator state's content cannot be shown ({exc}); the stage "
                f"file's content {stage.render.outer.content} is shown until content.select")
    for name in runtime.rigs:
        try:
            cs = state.camera(name)
        except KeyError:
            continue
        runtime.set_camera(name, cs)


def register_effects(hub, h: RunHandles, say: Callable[[str], None]) -> None:
    """Register what ``stagectl run`` does when the console changes something the hub cannot apply alone.
    Every effect runs on the render thread at the frame boundary; raising CommandError refuses the command
    (the hub rolls it back)."""
    from stagectl.console.commands import CommandError
    from stagectl.core.errors import StageError
    from stagectl.sync.cluster import PatchStart

    runtime = h.runtime

    def content_select(args: dict, state) -> dict:
        from stagectl.console.commands import confined

        content = args["content"]
        if content != "procedural":  # checked again right before loading (a link swapped in meanwhile)
            content = str(confined(h.stage, "content", content, "content.select", "content"))
        try:
            desc = runtime.show_content(content)
        except StageError as exc:
            raise CommandError(f"content.select: {exc}") from None
        say(f"stagectl run: console: content is now {desc}")
        return {"content": desc}

    def camera_set(args: dict, state) -> dict:
        name = args["camera"]
        # the tracking source (its timeline starts afresh from the new source's first sample), the delay and
        # smoothing named in the command, the overscan and soft edge
        runtime.set_camera(name, state.camera(name), only=args.keys())
        return {}

    def record_start(args: dict, state) -> dict:
        from stagectl.console.commands import confined, slate_of
        from stagectl.tracking.recording import LiveTake

        # checked again here (the folder as the stage file in effect names it): a link swapped into the takes
        # folder since the command was validated is refused, before any folder is made
        path = confined(h.stage, "takes", args["path"], "record.start", "path")
        stage = h.stage
        try:
            meta = take_header(stage, state, slate_of(args))
            path.parent.mkdir(parents=True, exist_ok=True)
            path = confined(h.stage, "takes", str(path), "record.start", "path")  # and after making folders
            take = LiveTake(path, list(runtime.receivers), stage=stage.name, meta=meta, rate=stage.frame_rate,
                            drop_frame=bool(args.get("drop_frame")), cameras=[c.name for c in stage.cameras],
                            first=runtime.latching)
        except (OSError, ValueError) as exc:
            raise CommandError(f"record.start: cannot record to {path}: {exc}") from None
        h.take = runtime.take = take
        tc_in = take.meta.get("start_timecode")
        say(f"stagectl run: console: recording tracking into {path} ({_slate_words(meta['slate'])}, TC in {tc_in})")
        return {"path": str(path), "timecode_in": tc_in}

    def record_stop(args: dict, state) -> dict:
        if h.take is None:
            return {}
        take, h.take = h.take, None
        runtime.take = None  # nothing of this frame on is recorded
        # the end record is one write; flushing and fsync of the file (milliseconds, more for a long take) stay
        # off the frame loop: every record is in the kernel already, so the file is complete for readers now.
        # Only the recorder is closed there: the receivers' taps may belong to the next take by then
        summary = take.finish()
        closer = threading.Thread(target=take.close, name="take-close", daemon=True)
        closer.start()
        h.closing.append(closer)
        say(f"stagectl run: console: take {take.path} closed: {summary['records']} records, {summary['frames']} "
            f"frames ({summary['timecode_in']} - {summary['timecode_out']}), {summary['seconds']:.1f} s")
        return {k: v for k, v in summary.items() if k != "bytes"}

    def record_follow(args: dict, state) -> dict:
        source = args["source"]
        if source == runtime.follow:
            return {}
        h.follow(source, hub, say, wait=False)  # on the frame loop's thread: never wait for the old follower
        if source is None:
            say("stagectl run: console: takes no longer follow a tracker")
        return {}

    def stage_reload(args: dict, state) -> dict:
        new = hub.stage  # already the new stage inside this effect
        try:
            # the operator's content (content.select, kept by the reload) stays on, not the stage file's
            runtime.reload(new, state.content)
        except StageError as exc:
            raise CommandError(f"stage.reload: {exc}") from None
        # the cluster's nodes reload theirs on this frame too (LiveConsole.cluster_show); the new renderer
        # plays no patches
        h.reloads += 1
        h.stage_sha256 = file_sha256(new.path)
        h.patches.clear()
        say(f"stagectl run: console: stage {new.path} reloaded")
        return {}  # the hub's result, {"stage": name, "warnings"} (docs/console.md), is the ack's

    def color_patches(args: dict, state) -> dict:
        key = str(args["output"])
        if runtime.output is None:
            raise CommandError("color.patches: nothing is rendered in this run (--no-render): no canvas to play the "
                               "patches on")
        player = runtime.output.renderer.patches
        if args["action"] == "stop":
            h.patches.pop(key, None)
            stopped = player.stop(key)
            if stopped is not None:
                say(f"stagectl run: console: colour patches on {key} stopped at wall frame "
                    f"{stopped.index(hub.frame)} of {stopped.program.frames}")
            return {"stopped": stopped is not None}
        program = args["output"].program  # built when the command was validated, off the frame loop
        first = int(hub.frame)
        player.start(program, first)
        n = program.frames
        seq = program.sequence
        # the nodes playing this output start it on the same frame (LiveConsole.cluster_show)
        h.patches[key] = (PatchStart(key, first, seq.frames_per_patch, seq.slate_frames, seq.ramp_steps,
                                     bool(program.calibrated)), first + n - 1)
        say(f"stagectl run: console: colour patches on {key}: stage frames {first}..{first + n - 1} ({n} wall "
            f"frames, calibration {'on' if program.calibrated else 'off'})")
        return {"first_frame": first, "frames": n, "last_frame": first + n - 1}

    hub.register_effect("content.select", content_select)
    hub.register_effect("camera.set", camera_set)
    hub.register_effect("record.start", record_start)
    hub.register_effect("record.stop", record_stop)
    hub.register_effect("record.follow", record_follow)
    hub.register_effect("stage.reload", stage_reload)
    hub.register_effect("color.patches", color_patches)


def thumbnails(canvases: dict[str, np.ndarray | tuple[int, np.ndarray]],
               width: int = THUMBNAIL_WIDTH) -> dict[str, bytes | tuple[int, bytes]]:
    """Output key -> JPEG bytes of the canvas (RGBA, row 0 = top) scaled to ``width`` pixels (area filter). A
    canvas given as ``(frame, canvas)`` (the frame it shows) comes back as ``(frame, jpeg)``."""
    import cv2

    out: dict[str, bytes | tuple[int, bytes]] = {}
    for key, item in canvases.items():
        frame, img = item if isinstance(item, tuple) else (None, item)
        h, w = img.shape[:2]
        tw = min(width, w)
        th = max(1, round(h * tw / w))
        small = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)  # RGBA: contiguous, 4x faster than RGB
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGBA2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            out[key] = buf.tobytes() if frame is None else (frame, buf.tobytes())
    return out
