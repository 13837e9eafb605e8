"""Helpers of the cluster tests on real loopback ZeroMQ (test_cluster.py, test_cluster_curve.py,
test_hostile_cluster.py): the wire constants they forge messages with, condition waits, frame-edge pacing, and
:class:`ClusterParts`, the primaries, nodes and raw sockets one test makes, all closed at its end (the ``zctx``
fixture of tests/net/conftest.py then checks that the context terminates)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from stagectl.core.timebase import FrameRate
from stagectl.sync.cluster import WIRE_MAGIC, Node, Primary
from stagectl.sync.zmq_security import ClientKeys, cluster_node_keys, cluster_server_keys

from .conftest import wait_for as _wait_for

MS = 1_000_000
RATE = FrameRate(60)
NODE_TOPIC = WIRE_MAGIC + b"\x00node:"  #: the state port's topic prefix of a node's messages
HB = struct.pack("<q", -1)  #: a heartbeat's payload


def wait_for(cond: Callable[[], object], timeout_s: float, interval_s: float = 0.005) -> bool:
    """Poll ``cond`` every ``interval_s`` until it is truthy or ``timeout_s`` passed; its last truth value
    (conftest's :func:`~net.conftest.wait_for` with the cluster tests' 5 ms poll and no default bound)."""
    return _wait_for(cond, timeout_s, interval_s)


def next_edge(rate: FrameRate, k: int, epoch_ns: int) -> tuple[int, int]:
    """Sleep until frame ``k``'s edge (``time.monotonic_ns``, frames counted from ``epoch_ns``), as a frame loop
    does: ``(k, edge_ns)``; when that edge passed more than a period ago, the frame now running and its edge
    instead (the loop skips the frames it missed)."""
    while True:
        edge = rate.frame_edge_ns(k, epoch_ns)
        now = time.monotonic_ns()
        if now < edge:
            time.sleep((edge - now) / 1e9)
        elif now - edge > rate.period_ns:
            k = rate.frame_at_ns(now, epoch_ns)
            continue
        return k, edge


class ClusterParts:
    """Primaries on free loopback ports, nodes and raw sockets aimed at them, for one test (60 fps), on the
    context ``zctx``; :meth:`close` closes the nodes, the sockets, then the primaries (each within 1 s).

    With ``keys`` (a stage key folder with the server pair and node keys): primaries admit those node keys
    (a keyed primary has a context of its own for its ZAP handler) and a node uses its own name's key unless
    told otherwise."""

    def __init__(self, zctx: zmq.Context, keys: Path | None = None) -> None:
        self.zctx = zctx
        self.keys = keys
        self._primaries: list[Primary] = []
        self._nodes: list[Node] = []
        self._sockets: list[zmq.Socket] = []

    def primary(self, **kw) -> Primary:
        """A started primary (no member of its own unless ``member`` is given)."""
        kw.setdefault("member", None)
        if self.keys is not None:
            p = Primary(RATE, state_port=0, sync_port=0, keys=cluster_server_keys(self.keys), **kw)
        else:
            p = Primary(RATE, state_port=0, sync_port=0, context=self.zctx, **kw)
        self._primaries.append(p)
        return p.start()

    def node(self, name: str, p: Primary, keys: ClientKeys | None | str = "own", **kw) -> Node:
        """A started node ``name`` of ``p``; ``keys``: its CURVE keys, ``"own"`` for its name's (none without
        a key folder), None for none."""
        if keys == "own":
            keys = cluster_node_keys(self.keys, name) if self.keys is not None else None
        n = Node(name, p.address, rate=RATE, context=self.zctx, keys=keys, **kw)
        self._nodes.append(n)
        return n.start()

    def raw(self, kind: int, p: Primary, keys: ClientKeys | None = None) -> zmq.Socket:
        """A raw socket (linger 0) connected to ``p``: its sync port for a DEALER, its state port otherwise."""
        s = self.zctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            keys.apply(s)
        s.connect(f"tcp://127.0.0.1:{p.sync_port if kind == zmq.DEALER else p.state_port}")
        self._sockets.append(s)
        return s

    def dealer(self, p: Primary) -> zmq.Socket:
        """A raw DEALER on ``p``'s sync port, unauthenticated."""
        return self.raw(zmq.DEALER, p)

    def sub(self, p: Primary) -> zmq.Socket:
        """A raw SUB on ``p``'s state port, unauthenticated (subscribed to nothing yet)."""
        return self.raw(zmq.SUB, p)

    def close(self) -> None:
        for n in self._nodes:
            n.close()
        for s in self._sockets:
            s.close(linger=0)
        for p in self._primaries:
            assert p.close(timeout_s=1.0)
