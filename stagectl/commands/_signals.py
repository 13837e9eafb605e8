"""SIGINT and SIGTERM as a stop request, shared by the long-running commands."""

from __future__ import annotations

import signal
import threading

__all__ = ["StopOnSignals"]


class StopOnSignals:
    """While the ``with`` block runs, SIGINT and SIGTERM set :attr:`event` instead of interrupting; the
    previous handlers are restored on exit. Off the main thread (tests calling a command in-process from a
    worker) no handler is installed and only the event exists.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()

    def install(self) -> StopOnSignals:
        """Same as entering the ``with`` block, for code whose clean-up already sits in a ``finally``."""
        return self.__enter__()

    def restore(self) -> None:
        """Same as leaving the ``with`` block."""
        self.__exit__()

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def reason(self, otherwise: str) -> str:
        """``stopped by SIGTERM`` (or SIGINT) when a signal came, else ``otherwise``."""
        return f"stopped by {self.signal_name}" if self.signal_name else otherwise
