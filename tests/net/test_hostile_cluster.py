"""The cluster primary's sync and state ports against forged, unauthenticated peers, on real loopback ZeroMQ.

Nothing a peer sends enters the primary's node table before its message kind, frame count, sizes and name have
been checked; names with control characters never reach the status line; the table is bounded and shrinks as
silent nodes are forgotten; oversized frames close the sender's connection. Each test also shows a real node
still being served afterwards.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Iterator

import pytest
import zmq

from stagectl.sync.cluster import (
    MAX_NAME_BYTES,
    MAX_PEERS,
    MAX_SYNC_FRAME_BYTES,
    ClusterError,
    Node,
    Primary,
    valid_peer_name,
)

from .cluster_parts import HB, MS, NODE_TOPIC, ClusterParts, wait_for


@pytest.fixture
def made(zctx: zmq.Context) -> Iterator[ClusterParts]:
    """Primaries on free loopback ports, raw sockets aimed at them and real nodes, no keys; all closed."""
    parts = ClusterParts(zctx)
    yield parts
    parts.close()


def _real_node_is_served(made, p: Primary, name: str = "wall-node") -> None:
    n = made.node(name, p)
    assert wait_for(lambda: (n.poll(1 * MS), name in p.status().nodes)[1], 5.0)
    assert valid_peer_name(name) and p.status().nodes[name].alive


BAD_NAMES = [
    b"evil\nstagectl run: [00:00:00:00] frame 0: forged line",  # a newline: a forged status line
    b"bell\x07", b"esc\x1b[2Jclear", b"del\x7f", b"c1\xc2\x85next-line",  # C0, DEL, C1 (U+0085)
    "line\u2028sep".encode(), "rtl\u202eoverride".encode(), b"\xff\xfe not utf-8",
    b" padded ", b"x" * (MAX_NAME_BYTES + 1), b"",
]


def test_forged_sync_messages_never_enter_the_table(made) -> None:
    p = made.primary()
    d = made.dealer(p)
    forged = [
        [b"XYZZY", b"unknown-kind"],  # an unknown kind: before the fix the name was registered anyway
        [b"PWN", b"unknown-kind-2", b"payload"],
        [b"HB", b"hb-no-payload"],  # wrong frame counts and sizes
        [b"HB", b"hb-short", b"\x00"],
        [b"READY", b"ready-long", b"\x00" * 40],
        [b"HELLO", b"hello-extra", struct.pack("<Q", 3), b"more"],
        [b"SNAP", b"snap-extra", b"x"],
        [b"HB"],
    ] + [[b"HB", n, HB] for n in BAD_NAMES]
    for frames in forged:
        d.send_multipart(frames)
    assert wait_for(lambda: p.status().bad_messages >= len(forged), 5.0), p.status()
    st = p.status()
    assert st.bad_messages == len(forged)
    assert st.nodes == {}, sorted(st.nodes)
    _real_node_is_served(made, p)
    assert set(p.status().nodes) == {"wall-node"}
    line = p.status().summary()
    assert line.isprintable() and "forged" not in line


def test_forged_subscription_names_never_enter_the_table(made) -> None:
    p = made.primary()
    s = made.sub(p)
    for n in BAD_NAMES:
        s.setsockopt(zmq.SUBSCRIBE, NODE_TOPIC + n)
    s.setsockopt(zmq.SUBSCRIBE, NODE_TOPIC + b"listener-ok")
    assert wait_for(lambda: "listener-ok" in p.status().nodes, 5.0)
    assert wait_for(lambda: p.status().bad_messages >= len(BAD_NAMES) - 1, 5.0)  # b"" is not a node topic
    assert set(p.status().nodes) == {"listener-ok"}
    assert p.status().summary().isprintable()


def test_the_table_is_bounded_and_shrinks_when_forged_names_fall_silent(made) -> None:
    # one connection sends every forged name: lift its rate bound (tested below) to reach the table's. The names
    # must all arrive while the first ones are still live (a silent name makes room for a newcomer instead of the
    # newcomer being refused): 2 s of liveness is far more than the flood takes, even traced on a loaded machine
    p = made.primary(liveness_ns=2_000 * MS, forget_ns=3_000 * MS, peer_rate_per_s=1e6)
    d = made.dealer(p)
    flood = MAX_PEERS + 300
    tracemalloc.start()
    try:
        for i in range(flood):
            d.send_multipart([b"HB", f"forged-{i}".encode(), HB])
        assert wait_for(lambda: (lambda st: len(st.nodes) + st.refused_peers)(p.status()) >= flood, 10.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    st = p.status()
    assert len(st.nodes) == MAX_PEERS  # full of live names: the rest refused and counted
    assert st.refused_peers == flood - MAX_PEERS
    assert peak < 16 * 1024 * 1024, f"tracemalloc peak {peak / 1e6:.1f} MB"
    # silent beyond forget_ns: forgotten, the table is empty again and a real node gets in
    assert wait_for(lambda: len(p.status().nodes) == 0, 10.0), len(p.status().nodes)
    _real_node_is_served(made, p)


def test_a_full_table_makes_room_from_silent_nodes_out_of_the_barrier(made) -> None:
    p = made.primary(liveness_ns=100 * MS, forget_ns=60_000 * MS, peer_rate_per_s=1e6)
    d = made.dealer(p)
    for i in range(MAX_PEERS):
        d.send_multipart([b"HB", f"old-{i}".encode(), HB])
    assert wait_for(lambda: len(p.status().nodes) == MAX_PEERS, 10.0)
    assert wait_for(lambda: not any(q.alive for q in p.status().nodes.values()), 5.0)
    _real_node_is_served(made, p, "late-node")  # a silent one made room
    st = p.status()
    assert len(st.nodes) == MAX_PEERS and "late-node" in st.nodes and st.refused_peers == 0


def test_an_oversized_frame_closes_the_connection_before_it_is_read(made) -> None:
    p = made.primary()
    d = made.dealer(p)
    d.send_multipart([b"HB", b"big-sender", b"\x00" * (MAX_SYNC_FRAME_BYTES + 1)])
    ok = made.dealer(p)
    ok.send_multipart([b"HB", b"small-sender", HB])
    assert wait_for(lambda: "small-sender" in p.status().nodes, 5.0)
    time.sleep(0.2)
    st = p.status()
    assert "big-sender" not in st.nodes
    assert st.bad_messages == 0  # refused by ZeroMQ (MAXMSGSIZE), not read and counted


def test_a_goodbye_from_another_connection_does_not_remove_a_node(made) -> None:
    p = made.primary()
    _real_node_is_served(made, p)
    made.dealer(p).send_multipart([b"BYE", b"wall-node"])
    d2 = made.dealer(p)
    d2.send_multipart([b"HB", b"marker", HB])
    assert wait_for(lambda: "marker" in p.status().nodes, 5.0)
    assert "wall-node" in p.status().nodes


@pytest.mark.parametrize("name", ["line\u2028sep", "c1\x85", " lead", "trail ", "bidi\u202eswap"])
def test_a_node_refuses_a_name_the_primary_would_refuse(name: str) -> None:
    with pytest.raises(ClusterError, match="name"):
        Node(name, "127.0.0.1:1,2")
