"""What the cluster reports: a barrier wait's answer, the primary's view of its nodes and a node's own
counters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class BarrierResult(NamedTuple):
    """The answer to one barrier wait.

    ``released``: the primary released this wait (every live member was ready, or the ones that were not were
    dropped); False when no answer came within the caller's timeout (primary gone or stalled: present anyway).
    ``elapsed_ns``: from the report to the answer (monotonic ns). ``members``: the barrier members after this
    release (names, sorted); a caller not among them is out of the barrier (behind, or dropped) and rejoins by
    reporting a frame that is not released yet.
    """

    released: bool
    elapsed_ns: int
    members: tuple[str, ...]


def _percentiles_us(values: Iterable[int]) -> tuple[float | None, float | None, float | None]:
    a = np.fromiter(values, dtype=np.int64)
    if a.size == 0:
        return None, None, None
    us = a / 1000.0
    return float(np.percentile(us, 50)), float(np.percentile(us, 99)), float(us.max())


def _fmt_ms(us: float | None) -> str:
    return "n/a" if us is None else f"{us / 1000.0:.2f}"


@dataclass(frozen=True)
class PeerStatus:
    """One participant as the primary sees it. ``state``: ``joining`` (known, never ready yet), ``member``
    (in the barrier) or ``dropped`` (missed a barrier or went silent; rejoins by itself). ``alive``: heard
    from within the liveness time. ``subscribed``: its SUB subscription reached the primary. ``last_frame``:
    the last frame it reported ready. ``wait_*_us``: its own barrier round trips (as it reports them)."""

    name: str
    state: str
    alive: bool
    subscribed: bool
    is_primary: bool
    last_frame: int | None
    last_seen_ms: float | None
    drops: int
    rejoins: int
    reconnects: int
    last_drop: str | None
    wait_p50_us: float | None
    wait_p99_us: float | None
    wait_max_us: float | None


@dataclass(frozen=True)
class ClusterStatus:
    """The primary's view: who is in the barrier, who was dropped, per-node last frame, and barrier stats.

    ``rounds``: barrier releases; ``timed_out_rounds``: releases that dropped someone; ``hold_*_us``: how long
    rounds held (release minus open) over the last 1024 rounds; ``published``: the last sequence number;
    ``features_seq``: the number of the last operator state published (0: none); ``bad_messages``: sync
    messages refused (unknown kind, wrong frames, a name that is not :func:`valid_peer_name`);
    ``refused_peers``: well-formed messages from a new name refused because the table was full of live nodes;
    ``auth``: ``"curve"`` (only the listed node keys are admitted) or ``"none"`` (unauthenticated);
    ``refused_connections`` / ``refused_by_reason``: handshakes refused (no CURVE, an unlisted key, a failed
    handshake; :data:`~stagectl.sync.zmq_security.Refusals.REASONS`); ``forged_names``: messages and
    subscriptions of an admitted key that named another node (dropped); ``rate_limited``: messages over their
    peer's rate (dropped).
    """

    session: int
    published: int
    features_seq: int
    members: tuple[str, ...]
    dropped: tuple[str, ...]
    joining: tuple[str, ...]
    nodes: dict[str, PeerStatus]
    rounds: int
    timed_out_rounds: int
    hold_p50_us: float | None
    hold_p99_us: float | None
    hold_max_us: float | None
    bad_messages: int
    errors: int
    last_error: str | None
    refused_peers: int = 0
    auth: str = "none"
    refused_connections: int = 0
    refused_by_reason: dict[str, int] = field(default_factory=dict)
    forged_names: int = 0
    rate_limited: int = 0

    def summary(self) -> str:
        """One line for a status display."""
        nodes = " ".join(
            f"{n}:{p.state}{'' if p.alive else '(silent)'}@{'-' if p.last_frame is None else p.last_frame}"
            for n, p in sorted(self.nodes.items())
        ) or "no nodes"
        return (f"cluster: {len(self.members)} in barrier, dropped [{' '.join(self.dropped)}] | {nodes} | "
                f"operator state #{self.features_seq} | "
                f"{self.rounds} rounds, {self.timed_out_rounds} timed out, "
                f"hold p50 {_fmt_ms(self.hold_p50_us)} ms "
                f"p99 {_fmt_ms(self.hold_p99_us)} ms max {_fmt_ms(self.hold_max_us)} ms | "
                + (f"CURVE: {self.refused_connections} refused, {self.forged_names} forged names"
                   if self.auth == "curve" else "unauthenticated")
                + (f", {self.rate_limited} over rate" if self.rate_limited else ""))

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "nodes"}
        d["nodes"] = {n: dict(p.__dict__) for n, p in self.nodes.items()}
        d["members"], d["dropped"], d["joining"] = list(self.members), list(self.dropped), list(self.joining)
        d["refused_by_reason"] = dict(self.refused_by_reason)
        return d


@dataclass(frozen=True)
class NodeStatus:
    """A node's own counters. ``states``: states accepted (snapshot included); ``skipped``: accepted states
    :meth:`Node.latest_state` passed over; ``gaps``/``missed``: sequence jumps and the states lost in them;
    ``decode_errors``: malformed messages dropped; ``waits``/``released``/``wait_timeouts``: barrier waits,
    the ones released, the ones that ran out locally; ``out_of_barrier``: releases where this node was not a
    member; ``wait_*_us``: barrier round trips (report -> release) of the last 1024 waits.
    ``features_seq``: the newest operator state held (0: none); ``features``: operator states accepted;
    ``features_behind``: frames that named an operator state this node did not have (rendered with the last
    one it had, a snapshot asked for); ``features_rejected``: operator states refused by the node's check
    against its stage (dropped). ``auth``: ``"curve"`` (this node connects with its key) or ``"none"``;
    ``auth_error``: why the primary refused the last handshake (None: it did not), e.g. this node's key is not
    listed there."""

    name: str
    connected: bool
    session: int | None
    seq: int
    last_frame: int | None
    states: int
    skipped: int
    snapshots: int
    gaps: int
    missed: int
    stale: int
    decode_errors: int
    bad_messages: int
    waits: int
    released: int
    wait_timeouts: int
    out_of_barrier: int
    members: tuple[str, ...]
    wait_p50_us: float | None
    wait_p99_us: float | None
    wait_max_us: float | None
    features_seq: int = 0
    features: int = 0
    features_behind: int = 0
    features_rejected: int = 0
    auth: str = "none"
    auth_error: str | None = None

    def summary(self) -> str:
        return (f"frame {self.last_frame if self.last_frame is not None else '-'}: {self.states} states "
                f"({self.skipped} skipped, {self.gaps} gaps, {self.decode_errors} bad) | "
                f"operator state #{self.features_seq} ({self.features_behind} frames behind, "
                f"{self.features_rejected} rejected) | "
                f"barrier {self.waits} waits, {self.released} released, {self.wait_timeouts} timed out, "
                f"{self.out_of_barrier} out of barrier, "
                f"wait p50 {_fmt_ms(self.wait_p50_us)} ms p99 {_fmt_ms(self.wait_p99_us)} ms | "
                f"members [{' '.join(self.members)}]")
