"""The ZeroMQ console's clients: :class:`ConsoleClient` sends one command and waits for its ack (what
``stagectl ctl`` does), :class:`StateFollower` follows the state stream as a late joiner (clone pattern). Both
are peers of the service base (:class:`~stagectl.sync.zmq_service.ZmqPeer`: a context, sockets with linger 0,
CURVE clients with the stage's client key). See :mod:`stagectl.console.zmq` for the protocol."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Self

import zmq

from stagectl.console.zmq.protocol import (
    BadSnapshot,
    ConsoleUnreachable,
    ZmqConsoleError,
    dumps,
    snapshot_of,
)
from stagectl.sync.zmq_security import ClientKeys
from stagectl.sync.zmq_service import ZmqPeer

__all__ = ["SYNC_WAIT_S", "ConsoleClient", "StateFollower"]

#: How long :class:`StateFollower` waits for the stream's first message before taking its snapshot (s).
SYNC_WAIT_S = 1.0


class ConsoleClient(ZmqPeer):
    """A command client (DEALER with a CURVE key): :meth:`request` sends one command and waits for its ack.

    Each request carries a fresh tag frame before the empty delimiter; the console echoes the envelope, so a
    late reply to an earlier, timed-out request is recognised and skipped. :meth:`close` (or leaving a
    ``with`` block) closes the socket and terminates the context when it is the client's own.
    """

    def __init__(self, endpoint: str, keys: ClientKeys, *, context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        super().__init__(keys, context)
        self._sock = self.socket(zmq.DEALER)
        self._sock.connect(endpoint)
        self._tag = 0

    def request(self, command: str, args: Mapping[str, Any] | None = None, *, timeout_s: float = 3.0) -> dict:
        """The console's ack of ``command``; :class:`ConsoleUnreachable` if none comes within
        ``timeout_s``."""
        self._tag += 1
        tag = f"{self._tag}".encode()
        unreachable = ConsoleUnreachable(
            f"no reply within {timeout_s:g} s from {self.endpoint} — is `stagectl run` running with the "
            "console, and is the key authorised?"
        )
        deadline = time.monotonic() + timeout_s
        # a DEALER whose connection was refused has no peer and would block in send: bound the wait
        self._sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout_s * 1000)))
        try:
            self._sock.send_multipart([tag, b"", dumps({"command": command, "args": dict(args or {})})])
        except zmq.Again:
            raise unreachable from None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                raise unreachable
            frames = self._sock.recv_multipart()
            if len(frames) == 3 and frames[0] == tag and frames[1] == b"":
                try:
                    ack = json.loads(frames[2])
                except ValueError:
                    raise ConsoleUnreachable(f"{self.endpoint} answered something that is not JSON") from None
                if isinstance(ack, dict):
                    return ack



class StateFollower(ZmqPeer):
    """The late joiner's side of the state stream (clone pattern).

    ``start()`` subscribes to the stream, waits (up to :data:`SYNC_WAIT_S`) until the subscription delivers
    anything, so no update can fall between snapshot and stream, then asks ``state`` for the snapshot
    (``seq``, ``state``). :meth:`poll` then applies state updates with ``seq`` above the current one: each
    update carries the whole operator state, so one that skips numbers (a *gap*: counted) is applied as well.
    An update at or below the current ``seq`` after live updates were applied means the stage restarted:
    a new snapshot is taken (``resyncs``). Status events are kept in :attr:`status`.

    Single-threaded: its sockets belong to the thread that calls it.
    """

    def __init__(
        self,
        command_endpoint: str,
        state_endpoint: str,
        keys: ClientKeys,
        *,
        timeout_s: float = 3.0,
        context: zmq.Context | None = None,
    ) -> None:
        self.command_endpoint = command_endpoint
        self.state_endpoint = state_endpoint
        self.timeout_s = float(timeout_s)
        super().__init__(keys, context)
        self._sub = self.socket(zmq.SUB, subscribe=(b"state", b"status"))
        self._client: ConsoleClient | None = None
        self._backlog: deque[tuple[bytes, dict[str, Any]]] = deque()
        self.seq: int | None = None
        self.state: dict[str, Any] | None = None
        self.snapshot_ack: dict[str, Any] | None = None
        self.status: dict[str, Any] | None = None
        self.applied = 0
        self.gaps = 0
        self.resyncs = 0
        self.stale = 0
        self.bad = 0
        self._live = False

    def start(self) -> StateFollower:
        """Subscribe, then take the snapshot; :class:`ConsoleUnreachable` when the console does not answer."""
        self._sub.connect(self.state_endpoint)
        self._client = ConsoleClient(self.command_endpoint, self.keys, context=self.context)
        deadline = time.monotonic() + min(SYNC_WAIT_S, self.timeout_s)
        while not self._backlog:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sub.poll(int(left * 1000) + 1):
                break
            self._read_one()
        self._snapshot()
        return self

    def _snapshot(self) -> None:
        assert self._client is not None
        ack = self._client.request("state", {}, timeout_s=self.timeout_s)
        if not ack.get("ok"):
            raise ZmqConsoleError(f"the console refused the state snapshot: {ack.get('error')}")
        try:
            self.seq, self.state = snapshot_of(ack)
        except BadSnapshot as exc:
            raise ZmqConsoleError(f"{self.command_endpoint}: {exc}") from None
        self.snapshot_ack = ack
        self._live = False

    def _read_one(self) -> None:
        frames = self._sub.recv_multipart()
        if len(frames) != 2:
            self.bad += 1
            return
        try:
            ev = json.loads(frames[1])
        except ValueError:
            self.bad += 1
            return
        if not isinstance(ev, dict):
            self.bad += 1
            return
        self._backlog.append((frames[0], ev))

    def _apply(self, topic: bytes, ev: dict[str, Any]) -> dict[str, Any] | None:
        if topic == b"status":
            status = ev.get("status")
            if isinstance(status, dict):
                self.status = status
            return ev
        seq = ev.get("seq")
        state = ev.get("state")
        if not isinstance(seq, int) or not isinstance(state, dict) or self.seq is None:
            self.bad += 1
            return None
        if seq <= self.seq:
            if self._live:  # numbers went back after live updates: the stage restarted
                self.resyncs += 1
                self._snapshot()
            else:
                self.stale += 1  # already in the snapshot
            return None
        if seq != self.seq + 1:
            self.gaps += 1
        self.seq, self.state = seq, state
        self.applied += 1
        self._live = True
        return ev

    def poll(self, timeout_s: float = 0.0) -> list[dict[str, Any]]:
        """Wait up to ``timeout_s`` for the stream and apply everything that came; returns the applied state
        events and the status events, in order."""
        if self.seq is None:
            raise RuntimeError("StateFollower.poll before start()")
        if not self._backlog and self._sub.poll(int(timeout_s * 1000)):
            self._read_one()
        while self._sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._read_one()
        out = []
        while self._backlog:
            ev = self._apply(*self._backlog.popleft())
            if ev is not None:
                out.append(ev)
        return out

    def close(self, timeout_s: float | None = None) -> bool:
        if self._client is not None:
            self._client.close()
            self._client = None
        return super().close(timeout_s)

    def __enter__(self) -> Self:
        return self.start()
