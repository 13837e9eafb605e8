"""Which camera timelines each tracking source feeds in a running stage (``stagectl run``).

Every tracking source of the stage gets a receiver; its sink is :meth:`TrackingRouter.sink`, which pushes each
decoded sample into the timelines of the cameras that source feeds now. The stage console's ``camera.set
tracking`` switches a camera to another source while samples arrive (:meth:`TrackingRouter.assign`). Nothing
here depends on the console: with ``--console off`` the router routes the stage file's assignment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["TrackingRouter"]


class TrackingRouter:
    """Which camera timelines each tracking source feeds, switchable while samples arrive (the console's
    ``camera.set tracking``). ``sink(source)`` is the receiver's sink for that source; ``assign`` swaps one
    camera to another source (the new routing is one tuple per source, replaced whole, so a receive thread
    sees either the old or the new routing). A timeline has a single writer: each camera's pushes go through
    a lock of its own, so the old source's receive thread, still inside a push when the routing changes,
    never writes at the same time as the new one (uncontended otherwise: one receive thread per source).

    :param assignments: camera name -> the name of the source that feeds it.
    :param timelines: camera name -> its timeline (anything with ``push(arrival_ns, sample)``).
    """

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
        """The receiver's sink for ``source``: pushes ``(arrival_ns, sample)`` into the timelines it feeds."""
        def push(arrival_ns: int, sample: Any) -> None:
            for lock, fn in self._targets.get(source, ()):
                with lock:
                    fn(arrival_ns, sample)
        return push

    def assign(self, camera: str, source: str) -> None:
        """Feed ``camera`` from ``source`` from the next sample on."""
        self._assign[camera] = source
        self._rebuild()

    def source_of(self, camera: str) -> str:
        return self._assign[camera]
