"""The control hub: one typed command set for every transport, applied at frame boundaries.

Transports (ZeroMQ, OSC, the web console) translate their wire format into :meth:`ControlHub.submit` calls
from their own threads and forward the hub's events; the frame loop calls :meth:`ControlHub.apply_pending`
from the render thread at each frame boundary and reads :attr:`ControlHub.features` / :attr:`ControlHub.flags`
for the planner. Everything here is thread-safe and pure Python (no sockets, no GL).

Life of a command (docs/console.md):

1. ``submit(name, args, who)`` validates it at once against the stage and the current operator state
   (:func:`stagectl.console.commands.validate`); a bad command is answered with an error and changes nothing.
   Read-only commands (``status``, ``state``, ``help``) are answered at once.
2. A valid mutation is queued; ``submit`` blocks until the frame loop's next ``apply_pending(frame)`` applied
   it (:func:`stagectl.console.commands.apply`), in submission order across all threads. An *effect*
   registered for the command (:meth:`ControlHub.register_effect`) runs there too, at the frame boundary, and
   may refuse the command by raising :class:`~stagectl.console.commands.CommandError`: the command is then
   rolled back (the state stays as it was) and answered with that error.
3. The new state is published to subscribers as a sequenced ``state`` event and written to the state file
   (atomically, :class:`~stagectl.console.state.StateStore`) by the submitting thread, never by the frame
   loop; then ``submit`` returns the ack ``{"ok": True, "command", "frame", "seq", "result"}``, where
   ``frame`` is the frame the change took effect on.
4. No frame within ``timeout_s``: the command is withdrawn and answered
   ``{"ok": False, "error": "<name>: not applied: no frame ran within 2 s"}``.

Paths: a command whose path argument does not resolve inside its ``console.paths`` folder is refused
(:class:`~stagectl.console.commands.PathRefused`); the refusal is recorded with who asked in
:attr:`ControlHub.refusals`, logged as a warning on the ``stagectl.console`` logger and passed to every
:meth:`ControlHub.on_refusal` listener (``stagectl run`` prints it).

Events (:meth:`ControlHub.subscribe`): ``{"seq", "type": "state", "command", "who", "frame", "args",
"state"}`` for every applied change (``seq`` goes up by exactly 1 per change) and ``{"type": "status",
"status"}`` (not sequenced). A subscriber's queue is bounded: status events are dropped when it is full; state
events are never dropped silently: when they overflow it the subscription becomes *lagged*, ``get`` returns
one ``{"type": "lagged", "seq"}`` event and the transport calls :meth:`Subscription.resync` for a snapshot.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl.console import commands as cmds
from stagectl.console.commands import COMMANDS, CommandError, PathRefused
from stagectl.console.state import OperatorState, StateStore, default_state_path, rebase, utc_stamp
from stagectl.core.camera import OperatorFlags
from stagectl.core.errors import ConfigErrors, StageError
from stagectl.core.features import FeatureState

__all__ = [
    "Applied",
    "Subscription",
    "ControlHub",
    "EffectFn",
    "DEFAULT_QUEUE",
    "LOG_LENGTH",
    "stage_description",
]

#: Events a subscriber may have waiting before status events are dropped / it becomes lagged.
DEFAULT_QUEUE = 256
#: Change records kept in :attr:`ControlHub.log` (and refusals in :attr:`ControlHub.refusals`).
LOG_LENGTH = 1000

log = logging.getLogger("stagectl.console")

#: An effect: ``fn(args, state)`` with the normalised arguments and the operator state the command leads to;
#: it may return a dict merged into the ack's result, or raise CommandError to refuse the command.
EffectFn = Callable[[dict, OperatorState], "dict | None"]


@dataclass(frozen=True)
class Applied:
    """A command applied at a frame boundary (what :meth:`ControlHub.apply_pending` returns).

    ``args`` normalised (:func:`~stagectl.console.commands.validate`); ``frame`` the frame it took effect on;
    ``seq`` its sequence number; ``result`` the ack's result; ``previous`` / ``state`` the operator state
    before and after; ``stage`` the stage after (a new one after ``stage.reload``)."""

    name: str
    args: dict
    who: str
    frame: int
    seq: int
    result: dict
    previous: OperatorState
    state: OperatorState
    stage: Any


class _Pending:
    __slots__ = ("name", "args", "who", "stage_gen", "new_stage", "done", "ack", "taken", "seq")

    def __init__(self, name: str, args: dict, who: str, stage_gen: int, new_stage=None) -> None:
        self.name = name
        self.args = args
        self.who = who
        self.stage_gen = stage_gen
        self.new_stage = new_stage
        self.done = threading.Event()
        self.ack: dict | None = None
        self.taken = False
        self.seq = 0


class Subscription:
    """One subscriber's bounded event queue (:meth:`ControlHub.subscribe`)."""

    def __init__(self, hub: ControlHub, maxsize: int) -> None:
        self._hub = hub
        self._maxsize = max(2, int(maxsize))
        self._q: collections.deque[dict] = collections.deque()
        self._cv = threading.Condition(threading.Lock())
        self._closed = False
        #: state events overflowed the queue: the next get() says so; call resync() for a snapshot
        self.lagged = False
        self._lag_reported = False
        #: status events dropped because the queue was full
        self.dropped_status = 0

    def _put(self, ev: dict) -> None:
        with self._cv:
            if self._closed:
                return
            if len(self._q) >= self._maxsize:
                # make room: the oldest status event goes first; a status event never pushes out a state event
                idx = next((i for i, e in enumerate(self._q) if e.get("type") != "state"), None)
                if idx is not None:
                    del self._q[idx]
                    self.dropped_status += 1
                elif ev.get("type") != "state":
                    self.dropped_status += 1
                    return
                else:
                    self.lagged = True
                    self._q.clear()  # superseded by the snapshot the transport fetches
            self._q.append(ev)
            self._cv.notify()

    def get(self, timeout_s: float | None = None) -> dict | None:
        """The next event, waiting up to ``timeout_s`` seconds (None: forever); None on timeout or when
        closed. Once after an overflow of state events: ``{"type": "lagged", "seq": n}`` (call
        :meth:`resync`)."""
        deadline = None if timeout_s is None else time.monotonic() + max(0.0, timeout_s)
        with self._cv:
            while True:
                if self.lagged and not self._lag_reported:
                    self._lag_reported = True
                    return {"type": "lagged", "seq": self._hub.seq}
                if self._q:
                    return self._q.popleft()
                if self._closed:
                    return None
                if deadline is None:
                    self._cv.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cv.wait(left)

    def resync(self) -> dict:
        """Clear the lag: drop queued state events and return :meth:`ControlHub.snapshot`; the state events
        that follow continue from the snapshot's ``seq``."""
        with self._hub._lock:  # no state event can be published meanwhile
            snap = self._hub._snapshot_locked()
            with self._cv:
                self._q = collections.deque(e for e in self._q if e.get("type") != "state")
                self.lagged = False
                self._lag_reported = False
        return snap

    def pending(self) -> int:
        with self._cv:
            return len(self._q)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._q.clear()
            self._cv.notify_all()
        self._hub._unsubscribe(self)

    @property
    def closed(self) -> bool:
        return self._closed


def stage_description(stage) -> dict:
    """The static stage for clients (JSON-able): walls with each facet's corners in stage metres (top-left,
    top-right, bottom-right, bottom-left as seen from the front; stage X right, Y toward the main wall, Z up),
    raster and cabinet grid sizes; outputs with canvas sizes; camera and tracking source names."""
    walls = []
    for w in stage.walls:
        g = w.geometry
        facets = []
        for f in range(g.facet_count):
            tl = g.origin[f]
            tr = tl + (g.x1[f] - g.x0[f]) * g.right[f]
            bl = tl + g.height_px * g.down[f]
            br = bl + (g.x1[f] - g.x0[f]) * g.right[f]
            facets.append([[round(float(v), 6) for v in p] for p in (tl, tr, br, bl)])
        walls.append(
            {
                "name": w.name,
                "type": w.type,
                "raster": list(w.raster),
                "cabinets": list(w.cabinets),
                "cabinet_px": list(w.cabinet.pixels),
                "size_m": list(w.size_m),
                "facets": facets,
            }
        )
    return {
        "name": stage.name,
        "path": str(Path(stage.path).resolve()),
        "frame_rate": f"{stage.frame_rate.num}/{stage.frame_rate.den}",
        "walls": walls,
        "outputs": [
            {"key": f"{p.name}/{o.name}", "processor": p.name, "output": o.name, "canvas": list(o.canvas)}
            for p, o in stage.outputs()
        ],
        "cameras": [c.name for c in stage.cameras],
        "tracking": [t.name for t in stage.tracking],
    }


def _flags(state: OperatorState) -> OperatorFlags:
    return OperatorFlags(blackout=state.blackout_all, inner_enabled=state.inner_enabled, freeze_inner=False)


def _one_line(text: str) -> str:
    lines = [s for s in str(text).splitlines() if s.strip()]
    if not lines:
        return ""
    return lines[0] + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else "")


class ControlHub:
    """The operator state of one running stage and the queue of commands to apply (module docstring).

    ``state_path``: the operator state file (None: ``console.state_file`` of the stage, or
    ``<stage dir>/<stage stem>.operator.json``); ``persist=False`` keeps the state in memory only.
    The persisted state is restored at construction; what could not be restored is in :attr:`warnings`.
    """

    def __init__(
        self,
        stage,
        state_path: str | Path | None = None,
        *,
        persist: bool = True,
        queue_size: int = DEFAULT_QUEUE,
    ) -> None:
        self._lock = threading.RLock()
        self._stage = stage
        self._stage_gen = 0
        self._stage_desc = stage_description(stage)
        self._queue: list[_Pending] = []
        self._subs: list[Subscription] = []
        self._queue_size = queue_size
        self._effects: dict[str, EffectFn] = {}
        self._log: collections.deque[dict] = collections.deque(maxlen=LOG_LENGTH)
        self._refusals: collections.deque[dict] = collections.deque(maxlen=LOG_LENGTH)
        self._refusal_listeners: list[Callable[[dict], None]] = []
        self._status: dict = {}
        self._previews: dict[str, tuple[int, bytes]] = {}
        self._frame: int | None = None
        self._local = threading.local()  # .applying: this thread is inside apply_pending
        self._closed = False
        #: one line per thing that could not be restored or carried over (restore, stage.reload, saving)
        self.warnings: list[str] = []
        self._store: StateStore | None = None
        self._save_lock = threading.Lock()
        seq = 0
        state = None
        if persist:
            self._store = StateStore(state_path if state_path is not None else default_state_path(stage))
            state, seq, warns = self._store.load(stage)
            self.warnings.extend(warns)
        self._state: OperatorState = state if state is not None else OperatorState.initial(stage)
        self._seq = seq
        self._saved_seq = seq
        self._features: FeatureState = self._state.features
        self._flags: OperatorFlags = _flags(self._state)

    # ------------------------------------------------------------------ properties (cheap, any thread)
    @property
    def stage(self):
        """The stage in effect (a new object after an applied ``stage.reload``; inside a ``stage.reload``
        effect, on the frame loop's thread, already the new stage)."""
        return getattr(self._local, "stage", None) or self._stage

    @property
    def state(self) -> OperatorState:
        return self._state

    @property
    def features(self) -> FeatureState:
        """The FeatureState for the planner this frame (the cached object: unchanged state, same object)."""
        return self._features

    @property
    def flags(self) -> OperatorFlags:
        return self._flags

    @property
    def seq(self) -> int:
        """Sequence number of the last applied change (continues from the state file across restarts)."""
        return self._seq

    @property
    def frame(self) -> int | None:
        """The last frame :meth:`apply_pending` saw (None before the first)."""
        return self._frame

    @property
    def state_path(self) -> Path | None:
        return None if self._store is None else self._store.path

    @property
    def log(self) -> list[dict]:
        """Recent change records ``{"seq", "frame", "time_utc", "who", "command", "args"}``, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def refusals(self) -> list[dict]:
        """Recent refused paths ``{"time_utc", "who", "command", "arg", "folder", "given", "error"}``, oldest
        first: ``folder`` the ``console.paths`` key (``takes``, ``content``, ``luts``), ``given`` the path as
        the operator sent it, ``error`` the one-line answer they got."""
        with self._lock:
            return list(self._refusals)

    def on_refusal(self, fn: Callable[[dict], None]) -> None:
        """Call ``fn(record)`` (a :attr:`refusals` record) for every refused path, on the thread that refused
        it (a transport's, or the frame loop's); ``fn`` must not block, and what it raises is logged and
        ignored."""
        with self._lock:
            self._refusal_listeners.append(fn)

    def _refused(self, exc: PathRefused, who: str) -> None:
        rec = {
            "time_utc": utc_stamp(iso=True),
            "who": str(who),
            "command": exc.command,
            "arg": exc.arg,
            "folder": exc.kind,
            "given": exc.given,
            "error": _one_line(str(exc)),
        }
        with self._lock:
            self._refusals.append(rec)
            listeners = list(self._refusal_listeners)
        log.warning("console: refused %s from %s: %s", exc.command, rec["who"], rec["error"])
        for fn in listeners:
            try:
                fn(rec)
            except Exception:  # noqa: BLE001 - a listener's bug must not reach a transport or the frame loop
                log.exception("console: a refusal listener failed")

    def status(self) -> dict:
        return self._status

    # ------------------------------------------------------------------ effects
    def register_effect(self, name: str, fn: EffectFn | None) -> None:
        """Run ``fn(args, state)`` inside :meth:`apply_pending` when command ``name`` is applied (the frame
        loop's thread, at the frame boundary), with the normalised arguments and the state the command leads
        to. ``fn`` carries out what the hub cannot (``stage.reload``: rebuild the renderer for :attr:`stage`,
        which is already the new stage while ``fn`` runs; ``content.select``; camera tracking/delay/smoothing;
        ``record.*``); a dict it returns is merged into the result. Raising
        :class:`~stagectl.console.commands.CommandError` (or any :class:`~stagectl.core.errors.StageError`) refuses
        the command: nothing changes and the ack carries the message. ``fn`` None removes the effect."""
        if name not in COMMANDS or COMMANDS[name].read_only:
            raise ValueError(
                f"register_effect: {name!r} is not a command that changes the state; commands: "
                f"{', '.join(n for n, s in COMMANDS.items() if not s.read_only)}"
            )
        with self._lock:
            if fn is None:
                self._effects.pop(name, None)
            else:
                self._effects[name] = fn

    # ------------------------------------------------------------------ submit (transport threads)
    def submit(self, name: str, args: dict | None = None, who: str = "test", timeout_s: float = 2.0) -> dict:
        """Validate, queue and wait for command ``name`` (module docstring); returns the JSON-able ack."""
        cname = name if isinstance(name, str) else str(name)
        try:
            if isinstance(name, str) and name in COMMANDS and COMMANDS[name].read_only:
                return self._read_only(name, args)
            with self._lock:
                if self._closed:
                    raise CommandError(f"{cname}: not applied: the stage is shutting down")
                state, stage, gen = self._state, self._stage, self._stage_gen
            norm = cmds.validate(name, args, stage, state)
            new_stage = None
            if name == "stage.reload":
                new_stage = self._load_stage(stage)
            if getattr(self._local, "applying", False):
                raise CommandError(
                    f"{cname}: not applied: submit() was called from the frame loop's thread "
                    "inside apply_pending (an effect), which would wait for itself"
                )
        except CommandError as exc:
            if isinstance(exc, PathRefused):
                self._refused(exc, who)
            return {"ok": False, "command": cname, "error": _one_line(str(exc))}
        p = _Pending(name, norm, str(who), gen, new_stage)
        with self._lock:
            self._queue.append(p)
        if not p.done.wait(max(0.0, float(timeout_s))):
            with self._lock:
                if not p.taken:
                    self._queue.remove(p)
                    return {
                        "ok": False,
                        "command": name,
                        "error": f"{name}: not applied: no frame ran within {timeout_s:g} s",
                    }
            p.done.wait()  # taken by apply_pending just now: it answers within this frame boundary
        ack = p.ack
        assert ack is not None
        if ack.get("ok") and p.seq:
            warn = self._persist(p.seq)
            if warn:
                ack = {**ack, "warning": warn}
        return ack

    def _read_only(self, name: str, args) -> dict:
        norm = cmds.validate(name, args, self._stage, self._state)
        with self._lock:
            if name == "status":
                result = self._status
            elif name == "state":
                result = {"seq": self._seq, "state": self._state.to_json()}
            else:
                result = cmds.spec_json(norm.get("command"))
            return {"ok": True, "command": name, "frame": self._frame, "seq": self._seq, "result": result}

    def _load_stage(self, stage):
        from stagectl.stage.loader import load_stage

        try:
            return load_stage(stage.path)
        except ConfigErrors as exc:
            raise CommandError(f"stage.reload: {_one_line(str(exc))}") from None
        except StageError as exc:
            raise CommandError(f"stage.reload: {_one_line(str(exc))}") from None

    def _persist(self, seq: int) -> str | None:
        """Write the state file so that it covers change ``seq`` (one write may cover several); a failure is
        reported as a warning line (the change is live but not saved)."""
        if self._store is None:
            return None
        with self._save_lock:
            if self._saved_seq >= seq:
                return None
            with self._lock:
                state, s, name = self._state, self._seq, self._stage.name
            try:
                self._store.save(state, s, name)
            except (OSError, ValueError) as exc:
                msg = f"operator state not saved to {self._store.path}: {exc}"
                with self._lock:
                    self.warnings.append(msg)
                return msg
            self._saved_seq = s
            return None

    # ------------------------------------------------------------------ frame loop (render thread)
    def apply_pending(self, frame: int) -> list[Applied]:
        """Apply every queued command at the boundary before ``frame`` (in submission order), run their
        effects, publish the changes and answer their submitters; returns what was applied (for ``stagectl
        run``'s side effects). Never raises for a bad command: it is answered with the error."""
        with self._lock:
            self._frame = int(frame)
            if not self._queue:
                return []
            items = self._queue
            self._queue = []
            for p in items:
                p.taken = True
            effects = dict(self._effects)
        out: list[Applied] = []
        self._local.applying = True
        try:
            for p in items:
                try:
                    out.append(self._apply_one(p, int(frame), effects.get(p.name)))
                except CommandError as exc:
                    if isinstance(exc, PathRefused):  # re-checked after a reload, or by an effect
                        self._refused(exc, p.who)
                    p.ack = {"ok": False, "command": p.name, "error": _one_line(str(exc))}
                except StageError as exc:
                    p.ack = {"ok": False, "command": p.name, "error": f"{p.name}: {_one_line(str(exc))}"}
                except Exception as exc:  # an effect's bug must not reach the frame loop
                    p.ack = {
                        "ok": False,
                        "command": p.name,
                        "error": f"{p.name}: failed: {type(exc).__name__}: {_one_line(str(exc))}",
                    }
                finally:
                    if p.ack is not None:
                        p.done.set()
        finally:
            self._local.applying = False
            for p in items:  # only after an interrupt (KeyboardInterrupt, SystemExit) went through
                if not p.done.is_set():
                    if p.ack is None:
                        p.ack = {
                            "ok": False,
                            "command": p.name,
                            "error": f"{p.name}: not applied: the frame loop was interrupted",
                        }
                    p.done.set()
        return out

    def _apply_one(self, p: _Pending, frame: int, effect: EffectFn | None) -> Applied:
        prev, stage = self._state, self._stage
        args = p.args
        if p.stage_gen != self._stage_gen:  # validated against a stage since reloaded: check again
            args = cmds.validate(p.name, args, stage, prev)
        warnings: list[str] = []
        if p.name == "stage.reload":
            stage = p.new_stage
            new, warnings = rebase(prev, stage)
            result: dict = {"stage": stage.name, "warnings": warnings}
        else:
            try:
                new, result = cmds.apply(prev, p.name, args)
            except KeyError as exc:  # a camera the state no longer has
                raise CommandError(f"{p.name}: {exc.args[0]!r} no longer exists") from None
        if effect is not None:
            self._local.stage = stage  # what hub.stage shows the effect (this thread only)
            try:
                extra = effect(args, new)
            finally:
                self._local.stage = None
            if extra:
                result = {**result, **extra}
        with self._lock:
            if p.name == "stage.reload":
                self._stage = stage
                self._stage_gen += 1
                self._stage_desc = stage_description(stage)
                self.warnings.extend(warnings)
            self._state = new
            if new.features != self._features:
                self._features = new.features
            self._flags = _flags(new)
            self._seq += 1
            seq = self._seq
            p.seq = seq
            self._log.append(
                {
                    "seq": seq,
                    "frame": frame,
                    "time_utc": utc_stamp(iso=True),
                    "who": p.who,
                    "command": p.name,
                    "args": args,
                }
            )
            ev = {
                "seq": seq,
                "type": "state",
                "command": p.name,
                "who": p.who,
                "frame": frame,
                "args": args,
                "state": new.to_json(),
            }
            for s in self._subs:
                s._put(ev)
            p.ack = {"ok": True, "command": p.name, "frame": frame, "seq": seq, "result": result}
        return Applied(p.name, args, p.who, frame, seq, result, prev, new, stage)

    # ------------------------------------------------------------------ status, previews, snapshot
    def publish_status(self, status: dict) -> None:
        """Store the run loop's live status (docs/console.md) and send it to subscribers (not sequenced)."""
        with self._lock:
            self._status = status
            ev = {"type": "status", "status": status}
            for s in self._subs:
                s._put(ev)

    def publish_previews(self, previews: dict[str, bytes | tuple[int, bytes]]) -> None:
        """Store JPEG thumbnails, output key -> bytes (stamped with the last frame seen) or ``(frame, bytes)``
        (the frame the picture shows: thumbnails made off the frame loop are older than the last frame)."""
        last = self._frame if self._frame is not None else -1
        with self._lock:
            for k, v in previews.items():
                frame, jpeg = v if isinstance(v, tuple) else (last, v)
                self._previews[k] = (int(frame), bytes(jpeg))

    def previews(self) -> dict[str, tuple[int, bytes]]:
        """Output key -> ``(frame, jpeg bytes)`` of the latest thumbnails."""
        with self._lock:
            return dict(self._previews)

    def snapshot(self) -> dict:
        """``{"seq", "state", "status", "stage"}`` (JSON-able): all a client joining late needs."""
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict:
        return {
            "seq": self._seq,
            "state": self._state.to_json(),
            "status": self._status,
            "stage": self._stage_desc,
        }

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, queue_size: int | None = None) -> Subscription:
        """A new event subscription (module docstring); close it when done."""
        sub = Subscription(self, queue_size or self._queue_size)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close(self) -> None:
        """Refuse new commands, answer queued ones with an error, close every subscription."""
        with self._lock:
            self._closed = True
            items, self._queue = self._queue, []
            subs = list(self._subs)
        for p in items:
            p.ack = {
                "ok": False,
                "command": p.name,
                "error": f"{p.name}: not applied: the stage is shutting down",
            }
            p.taken = True
            p.done.set()
        for s in subs:
            s.close()
