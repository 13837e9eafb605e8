"""The cluster with CURVE keys on real loopback ZeroMQ: the primary admits only the node keys listed in the
stage's ``keys/nodes`` folder, a node speaks only for the name of its own key, a peer without CURVE gets
nothing, and a flooding peer is bounded so that it cannot hold the swap barrier.

Same discipline as ``test_cluster.py``: kernel-chosen ports, linger 0, every socket closed at teardown (the
nodes' shared context must terminate; a keyed primary has a context of its own for its ZAP handler), waits on
conditions with timeouts.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from stagectl.core.features import ColorCorrection, FeatureState
from stagectl.core.lut import Lut3D
from stagectl.sync.cluster import ClusterError, FrameState, Node, Primary
from stagectl.sync.zmq_security import (
    ClientKeys,
    ZmqKeyError,
    cluster_node_keys,
    cluster_server_keys,
    make_keys,
)

from .cluster_parts import HB, MS, NODE_TOPIC, RATE, ClusterParts, next_edge, wait_for

pytestmark = [pytest.mark.net, pytest.mark.timeout(60)]


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """A stage key folder with the server pair and node keys n1, n2, n3 (and no console client)."""
    keys = tmp_path / "keys"
    make_keys(keys, (), nodes=("n1", "n2", "n3"))
    return keys


@pytest.fixture
def made(zctx: zmq.Context, keys_dir: Path) -> Iterator[ClusterParts]:
    """Keyed primaries on free loopback ports (admitting ``keys_dir``'s node keys), nodes and raw sockets aimed
    at them; all closed."""
    parts = ClusterParts(zctx, keys_dir)
    yield parts
    parts.close()


def _publish(p: Primary, k: int) -> int:
    return p.publish(FrameState.make(k, RATE, time.monotonic_ns()))


def _stranger(tmp_path: Path, keys_dir: Path, name: str) -> ClientKeys:
    """A valid key pair named ``name`` that the stage does not list, with the right server key."""
    make_keys(tmp_path / "elsewhere", (), nodes=(name,))
    own = cluster_node_keys(tmp_path / "elsewhere", name)
    assert own is not None
    server = cluster_node_keys(keys_dir, "n1")
    assert server is not None and own.public != server.public
    return ClientKeys(own.public, own.secret, server.server_public, name)


# ======================================================================================= keys


def test_the_cluster_keys_follow_the_stage_key_folder(tmp_path: Path, keys_dir: Path) -> None:
    assert cluster_server_keys(tmp_path / "no-keys") is None  # no node keys: unauthenticated
    assert cluster_node_keys(tmp_path / "no-keys", "n1") is None
    make_keys(tmp_path / "console-only", ["ctl"])  # console keys alone do not switch the cluster to CURVE
    assert cluster_server_keys(tmp_path / "console-only") is None
    server = cluster_server_keys(keys_dir)
    assert server is not None and server.allowed_dir == keys_dir / "nodes"
    n1 = cluster_node_keys(keys_dir, "n1")
    assert n1 is not None and n1.server_public == server.public and n1.name == "n1"
    assert (keys_dir / "nodes" / "n1.key").is_file() and (keys_dir / "nodes" / "n1.key_secret").is_file()
    with pytest.raises(ZmqKeyError, match=r"node 'n9' has no key: .*stagectl keys STAGE.yaml --node n9") as exc:
        cluster_node_keys(keys_dir, "n9")
    assert "\n" not in str(exc.value)
    (keys_dir / "server.key_secret").unlink()
    with pytest.raises(ZmqKeyError, match="server key .*server.key_secret is missing"):
        cluster_server_keys(keys_dir)


def test_a_keyed_primary_needs_its_own_context(zctx: zmq.Context, keys_dir: Path) -> None:
    with pytest.raises(ClusterError, match="own zmq context"):
        Primary(RATE, keys=cluster_server_keys(keys_dir), context=zctx)


# ======================================================================================= admitted


def test_nodes_with_listed_keys_join_follow_frames_and_meet_the_barrier(made) -> None:
    p = made.primary(member="primary")
    nodes = [made.node(n, p) for n in ("n1", "n2")]
    assert wait_for(lambda: ([n.poll(1 * MS) for n in nodes],
                             all(p.status().nodes.get(n.name) and p.status().nodes[n.name].subscribed
                                 for n in nodes))[1], 10.0), p.status().summary()
    got: dict[str, list[int]] = {n.name: [] for n in nodes}
    results: dict[str, list] = {n.name: [] for n in nodes}

    def follow(n: Node) -> None:
        deadline = time.monotonic() + 10
        while len(got[n.name]) < 30 and time.monotonic() < deadline:
            st = n.recv_state(100 * MS)
            if st is not None:
                got[n.name].append(st.seq)
                results[n.name].append(n.wait_barrier(st.frame))

    threads = [threading.Thread(target=follow, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for k in range(30):
        _publish(p, k)
        p.barrier(k, timeout_ns=500 * MS)
    for t in threads:
        t.join(15)
    st = p.status()
    for n in nodes:
        seqs = got[n.name]
        assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # in order, none lost
        assert seqs[-1] == 30
        assert all(r.released for r in results[n.name])
        assert n.status().auth == "curve" and n.status().auth_error is None
    assert st.auth == "curve" and st.members == ("n1", "n2", "primary")
    assert st.forged_names == 0 and st.refused_connections == 0 and st.rate_limited == 0
    assert "CURVE: 0 refused, 0 forged names" in st.summary()


# ======================================================================================= refused


def test_a_node_with_an_unlisted_key_is_refused_and_counted(made, tmp_path: Path) -> None:
    p = made.primary()
    stranger = made.node("n1", p, keys=_stranger(tmp_path, made.keys, "n1"))
    for k in range(5):
        _publish(p, k)
    assert wait_for(lambda: (stranger.poll(5 * MS), p.status().refused_by_reason.get("unknown_key", 0) >= 1)[1],
                    10.0), p.status()
    assert wait_for(lambda: (stranger.poll(5 * MS), stranger.status().auth_error is not None)[1], 5.0)
    assert "refused this node's key" in stranger.status().auth_error
    for k in range(5, 10):
        _publish(p, k)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert stranger.recv_state(10 * MS) is None
    st = p.status()
    assert st.nodes == {} and st.refused_connections >= 1
    assert any(r["reason"] == "unknown_key" for r in p.refusals.as_dict()["refused_recent"])
    assert not stranger.status().connected and stranger.status().states == 0
    # a listed node still gets in
    real = made.node("n2", p)
    assert wait_for(lambda: (real.poll(5 * MS), "n2" in p.status().nodes)[1], 10.0)


def test_a_node_using_another_nodes_name_is_refused_and_the_real_node_keeps_its_membership(made) -> None:
    p = made.primary(member="primary")
    n1 = made.node("n1", p)
    assert wait_for(lambda: (n1.poll(1 * MS), "n1" in p.status().nodes and p.status().nodes["n1"].subscribed)[1],
                    10.0)
    stop = threading.Event()
    released: list[bool] = []

    def follow() -> None:  # the real n1 keeps meeting the barrier
        while not stop.is_set():
            st = n1.latest_state(50 * MS)
            if st is not None:
                released.append(n1.wait_barrier(st.frame).released)

    t = threading.Thread(target=follow)
    t.start()
    k = 0
    try:
        def frames(n: int) -> None:
            nonlocal k
            for _ in range(n):
                _publish(p, k)
                p.barrier(k, timeout_ns=500 * MS)
                k += 1
                time.sleep(RATE.period_ns / 1e9)

        frames(20)
        assert p.status().nodes["n1"].state == "member"
        rid_before = p.status().nodes["n1"].reconnects
        # n2's own listed key, speaking as n1: a whole node, and raw messages of every kind and a subscription
        impostor = made.node("n1", p, keys=cluster_node_keys(made.keys, "n2"))
        raw = made.raw(zmq.DEALER, p, cluster_node_keys(made.keys, "n2"))
        raw.send_multipart([b"HELLO", b"n1", struct.pack("<Q", 3)])
        raw.send_multipart([b"HB", b"n1", HB])
        raw.send_multipart([b"READY", b"n1", struct.pack("<qIq", 10_000, 0, 0)])
        raw.send_multipart([b"SNAP", b"n1"])
        raw.send_multipart([b"BYE", b"n1"])
        sub = made.raw(zmq.SUB, p, cluster_node_keys(made.keys, "n3"))
        sub.setsockopt(zmq.SUBSCRIBE, NODE_TOPIC + b"n1")
        frames(30)
        impostor.poll(50 * MS)
        st = p.status()
        assert st.forged_names >= 7, st.summary()  # 5 raw + the node's HELLO and SNAP, + subscriptions
        n = st.nodes["n1"]
        assert n.state == "member" and n.reconnects == rid_before and n.alive
        assert set(st.nodes) == {"n1", "primary"}  # neither n2 nor n3 came in under their own names
        assert not impostor.status().connected and impostor.status().states == 0
        assert raw.poll(0) == 0  # no snapshot, no release for the forged messages
    finally:
        stop.set()
        t.join(5)
    assert released and sum(released[-20:]) >= 15  # the real n1 kept being released


def test_a_peer_without_curve_gets_nothing(made) -> None:
    p = made.primary()
    plain_sub = made.raw(zmq.SUB, p, None)
    plain_sub.setsockopt(zmq.SUBSCRIBE, b"")
    plain_dealer = made.raw(zmq.DEALER, p, None)
    plain_dealer.send_multipart([b"SNAP", b"n1"])
    plain_node = made.node("n1", p, keys=None)
    real = made.node("n2", p)
    for k in range(20):
        _publish(p, k)
        time.sleep(0.01)
        plain_node.poll(1 * MS)
        real.poll(1 * MS)
    assert wait_for(lambda: (plain_node.poll(5 * MS), p.status().refused_connections >= 3)[1], 10.0), (
        p.refusals.as_dict())
    assert wait_for(lambda: (real.poll(5 * MS), real.status().states > 0)[1], 5.0)  # a keyed node is served
    assert plain_sub.poll(200) == 0 and plain_dealer.poll(0) == 0
    assert plain_node.recv_state(100 * MS) is None and plain_node.status().states == 0
    assert wait_for(lambda: (plain_node.poll(5 * MS), plain_node.status().auth_error is not None)[1], 5.0)
    # the mechanism mismatch, or (when the primary hung up first) the handshake that did not complete
    assert "CURVE keys" in plain_node.status().auth_error, plain_node.status().auth_error
    assert set(p.status().nodes) == {"n2"}
    reasons = p.status().refused_by_reason
    assert set(reasons) <= {"no_curve", "handshake"} and sum(reasons.values()) >= 3, reasons


# ======================================================================================= flood

FLOOD = r"""
import struct, sys, time, zmq
from stagectl.sync.zmq_security import cluster_node_keys
keys_dir, name, address, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
ctx = zmq.Context()
d = ctx.socket(zmq.DEALER)
d.setsockopt(zmq.LINGER, 0)
d.setsockopt(zmq.SNDHWM, 100000)
cluster_node_keys(keys_dir, name).apply(d)
d.connect(address)
msgs = [[b"SNAP", name.encode()], [b"HB", name.encode(), struct.pack("<q", -1)]]
end = time.monotonic() + seconds
sent = 0
print("flooding", flush=True)
while time.monotonic() < end:
    for _ in range(256):
        try:
            d.send_multipart(msgs[sent & 1], zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            time.sleep(0.0001)
d.close(0)
ctx.term()
print(sent, flush=True)
"""


def _big_operator_state() -> FeatureState:
    """An operator state with a 33-point 3D LUT (430 KB): what a snapshot answer carries."""
    lut = Lut3D.from_function(lambda x: x ** 1.3, size=33, title="flood", source="/luts/flood.cube")
    return FeatureState(inner_color=ColorCorrection(lut=lut))


@pytest.mark.timeout(90)
def test_a_flooding_node_does_not_hold_the_barrier_past_its_timeout(made) -> None:
    """n3 (a listed key: an insider) floods snapshot requests and heartbeats from another process while n1
    and the primary run 60 fps barrier rounds: every round is released within the barrier timeout, n1 is never
    dropped, and the flood is counted as over its rate."""
    p = made.primary(member="primary")
    n1 = made.node("n1", p)
    assert wait_for(lambda: (n1.poll(1 * MS), "n1" in p.status().nodes and p.status().nodes["n1"].subscribed)[1],
                    10.0)
    features = _big_operator_state()
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            st = n1.latest_state(50 * MS)
            if st is not None:
                n1.wait_barrier(st.frame)

    t = threading.Thread(target=follow)
    t.start()
    flood = None
    holds: list[int] = []
    try:
        k = 0
        epoch = time.monotonic_ns()

        def run(seconds: float) -> None:
            nonlocal k
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                k, edge = next_edge(RATE, k, epoch)
                p.publish(FrameState.make(k, RATE, edge, epoch_ns=epoch), features)
                r = p.barrier(k)
                holds.append(r.elapsed_ns if r.released else 10**12)
                k += 1

        run(1.0)  # n1 in the barrier
        assert p.status().nodes["n1"].state == "member"
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(made.keys), "n3",
                                  f"tcp://127.0.0.1:{p.sync_port}", "3"], stdout=subprocess.PIPE, text=True)
        assert flood.stdout is not None and flood.stdout.readline().strip() == "flooding"
        before, timed_out_before = len(holds), p.status().timed_out_rounds
        run(2.5)
        during = holds[before:]
        st = p.status()
    finally:
        stop.set()
        t.join(5)
        if flood is not None:
            try:
                sent = int(flood.communicate(timeout=20)[0].strip() or 0)
            except subprocess.TimeoutExpired:
                flood.kill()
                raise
    assert sent > 10_000, sent  # it really flooded
    assert st.nodes["n1"].drops == 0 and st.nodes["n1"].state == "member", st.summary()
    assert st.timed_out_rounds == timed_out_before, st.summary()  # nobody was dropped: no round held to timeout
    assert during and max(during) <= p.timeout_ns + RATE.period_ns, sorted(during)[-5:]
    assert st.rate_limited > 1000, st.summary()  # the flood was refused, not served


# ======================================================================================= stagectl run


def test_run_cluster_warns_once_without_node_keys_and_requires_them_with(tmp_path: Path) -> None:
    """`stagectl run --cluster`'s primary: without node keys it runs unauthenticated and says so once (with
    how to make keys); with them it is a CURVE primary that admits only those keys."""
    import argparse

    from conftest import STAGES

    from stagectl.commands.run import _start_primary
    from stagectl.stage import load_stage

    (tmp_path / "flat.yaml").write_text((STAGES / "flat_wall.yaml").read_text())
    stage = load_stage(tmp_path / "flat.yaml")
    for keyed in (False, True):
        if keyed:
            make_keys(tmp_path / "keys", (), nodes=("n1",))
        with socket.socket() as a, socket.socket() as b:  # two free ports
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            where = f"127.0.0.1:{a.getsockname()[1]},{b.getsockname()[1]}"
        args = argparse.Namespace(cluster=where, cluster_timeout=2.0, no_realtime=True,
                                  stage=str(tmp_path / "flat.yaml"))
        lines: list[str] = []
        primary = _start_primary(args, stage, lines.append)
        try:
            text = "\n".join(lines)
            assert primary.status().auth == ("curve" if keyed else "none")
            if keyed:
                assert "unauthenticated" not in text
                assert f"cluster: CURVE, admitting the node keys in {tmp_path / 'keys' / 'nodes'}" in text
            else:
                assert text.count("the cluster is unauthenticated") == 1, text
                assert f"stagectl keys {tmp_path / 'flat.yaml'} --node NAME" in text
        finally:
            assert primary.close()
