"""The swap barrier and the membership table, without sockets.

:class:`Barrier` holds what the primary knows of its nodes (:class:`_Peer`: alive, subscribed, member /
dropped / joining) and the open barrier rounds, and decides every release, drop and rejoin (the rules are in
:mod:`stagectl.sync.cluster`). It is driven by calls that carry the time (``now``: integer monotonic ns) and
answers with :class:`Answer` values for the caller to send; the primary's service thread owns it and its
sockets, and calls it under the primary's lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from stagectl.sync.cluster.wire import MAX_NAME_BYTES, valid_peer_name

#: A barrier member that has not reported this many frame periods after a round opened is dropped.
DEFAULT_TIMEOUT_FRAMES = 2
#: A node the primary has not heard from for this long is not alive (ns).
LIVENESS_NS = 1_000_000_000
#: Most nodes the primary keeps in its table (the primary itself included).
MAX_PEERS = 256
#: A node the primary has not heard from for this long is forgotten (ns).
FORGET_NS = 30_000_000_000


@dataclass
class _Peer:
    name: str
    rid: bytes | None = None
    is_self: bool = False
    state: str = "joining"
    alive: bool = True
    subscribed: bool = False
    last_seen_ns: int = 0
    last_frame: int | None = None
    drops: int = 0
    rejoins: int = 0
    reconnects: int = 0
    last_drop: str | None = None
    waits: deque = field(default_factory=lambda: deque(maxlen=1024))


class _Waiter(NamedTuple):
    frame: int
    t_ns: int
    rid: bytes | None


class Answer(NamedTuple):
    """One barrier answer to send: to node ``name`` on connection ``rid`` (None: the primary itself), for
    ``frame``; ``in_barrier``: the node is a member after this release; ``hold``: how long the round held (ns,
    0 for a frame already released); ``members``: the members after it (names, sorted)."""

    name: str
    rid: bytes | None
    frame: int
    released: bool
    in_barrier: bool
    hold: int
    members: tuple[str, ...]


class Barrier:
    """Membership and barrier rounds of one primary session.

    :param timeout_ns: a member that has not reported this long after a round opened is dropped.
    :param member: the primary's own name in the barrier (never forgotten, never sweeps out), or None.
    :param liveness_ns: a node not heard from this long is not alive (and out of the barrier).
    :param forget_ns: a node not heard from this long is removed from the table (at least ``liveness_ns``).
    :param max_peers: most names in the table (the primary itself included).
    """

    def __init__(self, timeout_ns: int, *, member: str | None = None, liveness_ns: int = LIVENESS_NS,
                 forget_ns: int = FORGET_NS, max_peers: int = MAX_PEERS) -> None:
        self.timeout_ns = int(timeout_ns)
        self.member = member
        self.liveness_ns = int(liveness_ns)
        self.forget_ns = max(int(forget_ns), self.liveness_ns)
        self.max_peers = int(max_peers)
        self.peers: dict[str, _Peer] = {}
        self.waiters: dict[str, _Waiter] = {}
        self.last_released: int | None = None
        self.last_release_ns: int | None = None
        self.last_deadline_ns: int | None = None  # open + timeout of the last released round
        #: When the open round times out (None: no round waits for a missing member).
        self.deadline: int | None = None
        self.holds: deque = deque(maxlen=1024)
        self.rounds = 0
        self.timed_out = 0
        self.refused_peers = 0
        if member is not None:
            self.peers[member] = _Peer(member, is_self=True, subscribed=True)

    # ------------------------------------------------------------------ membership
    def peer_name(self, raw: bytes) -> str | None:
        """The node name in ``raw``, or None when it is not one (bad UTF-8, not :func:`valid_peer_name`, or the
        primary's own name)."""
        if not 1 <= len(raw) <= MAX_NAME_BYTES:
            return None
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return name if valid_peer_name(name) and name != self.member else None

    def register(self, name: str, rid: bytes | None, now: int) -> _Peer | None:
        """A new table entry for ``name``; when the table is full, the longest-silent node out of the barrier
        is forgotten to make room, and None (refused, counted) when every node in it is alive or a member."""
        if len(self.peers) >= self.max_peers:
            idle = [q for q in self.peers.values() if not q.is_self and q.state != "member" and not q.alive]
            if not idle:
                self.refused_peers += 1
                return None
            self.forget(min(idle, key=lambda q: q.last_seen_ns))
        p = self.peers[name] = _Peer(name, rid, last_seen_ns=now)
        return p

    def forget(self, p: _Peer) -> None:
        self.peers.pop(p.name, None)
        self.waiters.pop(p.name, None)

    def hear(self, name: str, rid: bytes | None, now: int) -> _Peer | None:
        """Node ``name`` spoke on connection ``rid``: its entry (made when new; None when the table refuses
        it), alive and seen ``now``; a new connection for a known name counts as a reconnect."""
        p = self.peers.get(name)
        if p is None:
            p = self.register(name, rid, now)
            if p is None:
                return None
        elif p.rid != rid:
            if p.rid is not None:
                p.reconnects += 1
            p.rid = rid
        p.last_seen_ns = now
        p.alive = True
        return p

    def bye(self, name: str, rid: bytes | None) -> None:
        """Node ``name`` said goodbye: forgotten, but only when it spoke from the connection the name last
        used."""
        p = self.peers.get(name)
        if p is not None and not p.is_self and p.rid in (None, rid):
            self.forget(p)

    def subscribe(self, name: str, on: bool, now: int) -> None:
        """Node ``name``'s state subscription arrived (``on``) or went away."""
        p = self.peers.get(name)
        if p is None:
            if not on:
                return  # the unsubscription of a node that said goodbye
            p = self.register(name, None, now)
            if p is None:
                return
        p.subscribed = on

    def member_names(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, q in self.peers.items() if q.state == "member"))

    def sweep(self, now: int) -> None:
        """Forget the nodes silent for ``forget_ns``; mark the ones silent for ``liveness_ns`` not alive (a
        member among them is dropped)."""
        for p in [q for q in self.peers.values() if not q.is_self and now - q.last_seen_ns > self.forget_ns]:
            self.forget(p)  # silent for good: the table shrinks
        for p in self.peers.values():
            if p.is_self or not p.alive:
                continue
            if now - p.last_seen_ns > self.liveness_ns:
                p.alive = False
                self.waiters.pop(p.name, None)
                if p.state == "member":
                    self._drop(p, f"silent for more than {self.liveness_ns / 1e6:.0f} ms")

    # ------------------------------------------------------------------ rounds
    def arrive(self, name: str, frame: int, now: int, rid: bytes | None) -> list[Answer]:
        """Node ``name`` (known to the table: :meth:`hear`; anyone else is ignored) reports ready for
        ``frame``: the answer at once when the frame was already released, else nothing (it waits for
        :meth:`release`)."""
        p = self.peers.get(name)
        if p is None:
            return []
        p.last_frame = frame
        lr = self.last_released
        if lr is not None and frame <= lr:
            # a frame already released: present at once. A non-member that reports the frame just released
            # before that round's deadline would have made that barrier: it is in for the next frames. One
            # that reports after the deadline is slower than the timeout and stays out (it would only cost
            # everybody a timeout every frame).
            if p.state != "member" and frame == lr and now <= self.last_deadline_ns:
                self._admit(p)
            return [Answer(p.name, rid, frame, True, p.state == "member", 0, self.member_names())]
        if p.state != "member":
            self._admit(p)
        old = self.waiters.get(p.name)
        if old is None or old.frame != frame:
            self.waiters[p.name] = _Waiter(frame, now, rid)
        return []

    def _admit(self, p: _Peer) -> None:
        if p.state == "dropped":
            p.rejoins += 1
        p.state = "member"

    def _drop(self, p: _Peer, why: str) -> None:
        p.state = "dropped"
        p.drops += 1
        p.last_drop = why

    def release(self, now: int) -> list[Answer]:
        """Release every round that is complete or has timed out at ``now`` (dropping its missing members),
        the lowest frame first; the answers to send, remote nodes before the primary itself in each round.
        Sets :attr:`deadline` for the round left waiting."""
        answers: list[Answer] = []
        self.deadline = None
        while self.waiters:
            kmin = min(w.frame for w in self.waiters.values())
            group = [(n, w) for n, w in self.waiters.items() if w.frame == kmin]
            missing = [p for n, p in self.peers.items() if p.state == "member" and n not in self.waiters]
            opened = min(w.t_ns for _, w in group)
            if self.last_release_ns is not None:
                opened = max(opened, self.last_release_ns)
            timed_out = False
            if missing:
                deadline = opened + self.timeout_ns
                if now < deadline:
                    self.deadline = deadline
                    return answers
                for p in missing:
                    self._drop(p, f"not ready for frame {kmin} within {self.timeout_ns / 1e6:.1f} ms")
                timed_out = True
            for n, _ in group:
                del self.waiters[n]
            members = self.member_names()
            hold = now - opened
            # remote nodes first: waking the primary's own frame loop makes it compete for the GIL
            for n, w in sorted(group, key=lambda nw: nw[1].rid is None):
                answers.append(Answer(n, w.rid, kmin, True, n in members, hold, members))
            self.rounds += 1
            self.timed_out += timed_out
            self.holds.append(hold)
            if self.last_released is None or kmin >= self.last_released:
                self.last_released = kmin
                self.last_deadline_ns = opened + self.timeout_ns
            self.last_release_ns = now
        return answers
