"""Pictures made off the frame loop: one worker thread for the PNG previews and console thumbnails.

A deep or HDR output's preview is a tone-mapped 8-bit picture made through OpenColorIO on the CPU (about
0.1 s a 1920 x 1080 canvas, 0.26 s for the demo's three; docs/colour.md). Made on the loop thread after the
frame edge, that time is taken from the next frames. :class:`PictureWorker` runs such jobs on its own thread
instead: the loop hands over a copy of the read-back canvas (:meth:`submit`) and goes on at once.

Bounded: at most one job waits per *slot* (:class:`~stagectl.runtime.output.StageOutput` uses one slot per
output and kind of picture: ``("png", key)``, ``("thumbnail", key)``); a newer job for a slot replaces the one
still waiting there (:attr:`PictureWorker.replaced` counts them), so a slow disk or a busy CPU makes previews
rarer, never a queue. A failing job is counted (:attr:`PictureWorker.failed`), its first failure said once, and
the worker goes on. The thread runs at a lower priority than the loop (nice +10 where the OS allows) and is a
daemon: :meth:`close` waits for the jobs already handed over for a bounded time, then leaves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["PictureWorker"]

#: how much lower than the loop the worker thread runs (Linux nice increment of the thread)
NICE = 10


class PictureWorker:
    """One daemon thread running picture jobs, at most one waiting per slot (module docstring).

    :param say: says a job's first failure (one line); None: failures are only counted.
    :param name: the thread's name.
    """

    def __init__(self, say: Callable[[str], None] | None = None, *, name: str = "stagectl-pictures") -> None:
        self.say = say
        self.name = name
        self._cv = threading.Condition()
        self._waiting: dict[Hashable, tuple[Callable[..., Any], tuple]] = {}
        self._running: Hashable | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.done = 0  #: jobs run (failed ones included)
        self.failed = 0  #: jobs that raised
        self.replaced = 0  #: waiting jobs replaced by a newer one for their slot
        self.last_error: BaseException | None = None

    # ------------------------------------------------------------------ the loop's side
    def submit(self, slot: Hashable, fn: Callable[..., Any], *args: Any) -> bool:
        """Hand ``fn(*args)`` to the worker for ``slot`` and return at once (True when it replaced a job still
        waiting for that slot). ``args`` must not change afterwards (hand over copies). Refused with a
        RuntimeError after :meth:`close`."""
        with self._cv:
            if self._closed:
                raise RuntimeError("PictureWorker: closed")
            replaced = self._waiting.pop(slot, None) is not None
            self.replaced += replaced
            self._waiting[slot] = (fn, args)  # at the end: slots run in the order of their newest job
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return replaced

    @property
    def waiting(self) -> int:
        """Jobs handed over and not started (at most one per slot)."""
        with self._cv:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        """A job is running or waiting."""
        with self._cv:
            return self._running is not None or bool(self._waiting)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until every job handed over so far has run (or ``timeout_s`` passed); True when idle."""
        with self._cv:
            return self._cv.wait_for(lambda: self._running is None and not self._waiting, timeout_s)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Refuse new jobs, let those handed over run for at most ``timeout_s``, then stop the thread (a job
        still running after that is left to the daemon thread). True when every job ran."""
        with self._cv:
            self._closed = True
            idle = self._cv.wait_for(lambda: self._running is None and not self._waiting, timeout_s)
            self._waiting.clear()
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and idle:
            thread.join(timeout_s)
        return idle

    # ------------------------------------------------------------------ the worker's side
    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)  # this thread only (Linux)
        except (OSError, AttributeError):
            pass
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return  # closed and nothing left
                slot = next(iter(self._waiting))
                fn, args = self._waiting.pop(slot)
                self._running = slot
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - a picture never stops the worker (or the loop)
                with self._cv:
                    self.failed += 1
                    self.last_error = exc
                    first = self.failed == 1
                if first and self.say is not None:
                    what = " ".join(map(str, slot)) if isinstance(slot, tuple) else str(slot)
                    self.say(f"pictures: {what}: {exc!r} (counted; later failures are not said)")
            finally:
                with self._cv:
                    self._running = None
                    self.done += 1
                    self._cv.notify_all()

    def __repr__(self) -> str:
        return (f"PictureWorker({self.done} done, {self.waiting} waiting, {self.replaced} replaced, "
                f"{self.failed} failed)")
