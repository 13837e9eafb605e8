"""The operator's state across the cluster: the operator-state codec and the frame state's ``features_seq``,
a real Primary and Node on loopback ZeroMQ (the node plans exactly what the primary planned, a late joiner
gets the operator state from its snapshot, a lost operator-state message is recovered through a snapshot,
a state the node's stage refuses is counted and dropped), and `stagectl run --cluster` + `stagectl node` as
real processes where an OSC command on the primary changes the node's canvas, read back from its
shared-memory sink, from the acknowledged frame on.

Same discipline as ``test_cluster.py``: kernel-chosen ports, linger 0, every socket closed at teardown (the
shared context must terminate), waits on conditions with timeouts.
"""

from __future__ import annotations

import json
import queue
import re
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq

from stagectl.commands.node import node_features, node_stage
from stagectl.core.errors import StageError
from stagectl.core.features import (
    ChromaKey,
    ChromaMarkers,
    ColorCorrection,
    FeatureState,
    FreezeFrustum,
    LightCard,
    OutputPattern,
)
from stagectl.core.lut import Lut3D
from stagectl.core.timebase import FrameRate
from stagectl.sync.cluster import (
    FEATURES_MAGIC,
    MAX_WIRE_LUTS,
    WIRE_VERSION,
    FeatureUpdate,
    FrameState,
    FrameStateError,
    Node,
    decode_features,
    decode_frame_state,
    encode_features,
    encode_frame_state,
)

from . import test_cluster as _base
from .cluster_parts import MS, wait_for
from .stage_run import OscClient, console_yaml, flat_wall_text, stage_ports
from .test_cluster import _camera, _cluster_stage, _connect

# the fixture of test_cluster.py: primaries and nodes closed (on conftest's zctx, which must terminate)
cluster = _base.cluster

REPO = Path(__file__).resolve().parents[2]
STAGES = REPO / "stages"
EXE = str(Path(sys.executable).parent / "stagectl")
RATE = FrameRate(50)


# ======================================================================================= helpers


def _lut(gamma: float, size: int = 9) -> Lut3D:
    return Lut3D.from_function(lambda x: x ** gamma, size=size, title=f"gamma {gamma}",
                               source=f"/luts/{gamma}.cube")


def _rich() -> FeatureState:
    """Every feature at once, with one LUT used by two targets and one of its own."""
    shared = _lut(1.4)
    return FeatureState(
        light_cards=(LightCard("key", "main", (0.05, 0.1, 0.25, 0.6), (1.0, 0.9, 0.8), 1.5, "over", 20.0),
                     LightCard("fill-ü", "ceiling", (-0.2, 0.3, 0.5, 1.2), (0.2, 0.4, 1.0), 0.25, "under",
                               0.0)),
        chroma_key=ChromaKey(True, (0.0, 128 / 255, 0.0),
                             ChromaMarkers((0.0, 0.8, 0.1), 0.12, None, 0.5, "m")),
        wall_color={"main": ColorCorrection(0.5, temperature=5600.0, tint=4.0, lut=shared),
                    "ceiling": ColorCorrection(gains=(1.0, 0.9, 1.1), slope=(1.1, 1.0, 0.9), saturation=0.8,
                                               lut=shared)},
        inner_color=ColorCorrection(-0.25, offset=(0.01, 0.0, -0.01), power=(1.0, 1.2, 1.0),
                                    lut=_lut(0.8, 5)),
        patterns={"tessera-a/out2": OutputPattern("checkerboard", squares=4, burn_in=("timecode", "frame")),
                  "tessera-b/out3": OutputPattern("solid", (0.5, 0.25, 0.0))},
        blackout=frozenset({"tessera-a/out1"}),
        freeze=FreezeFrustum(frozenset({"cam-a"}), keep_image=False),
    )


def _card(intensity: float, wall: str = "main") -> FeatureState:
    return FeatureState(light_cards=(LightCard("c", wall, (0.0, 0.0, 1.0, 1.0), (1.0, 0.0, 1.0), intensity),))


def _frame(k: int) -> FrameState:
    return FrameState.make(k, RATE, 1_000_000_000 + RATE.frame_edge_ns(k), cameras=[_camera("cam-a", k)])


class LossyHop:
    """A real forwarding hop between the primary's state socket and a node's SUB socket (XSUB up, XPUB down,
    subscriptions passed up): forwards every message except the next ``drop`` operator states, and can put
    extra bytes on the wire (``inject``). Its sockets live in its own thread; closed within a bound."""

    def __init__(self, ctx: zmq.Context, upstream_port: int) -> None:
        self.up = ctx.socket(zmq.XSUB)
        self.down = ctx.socket(zmq.XPUB)
        for s in (self.up, self.down):
            s.setsockopt(zmq.LINGER, 0)
        self.up.connect(f"tcp://127.0.0.1:{upstream_port}")
        self.down.bind("tcp://127.0.0.1:*")
        self.port = int(self.down.last_endpoint.decode().rsplit(":", 1)[1])
        self.drop = 0
        self.dropped: list[int] = []  # numbers of the operator states dropped
        self.extra: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.up, zmq.POLLIN)
        poller.register(self.down, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                events = dict(poller.poll(5))
                if self.down in events:
                    self.up.send(self.down.recv())  # a subscription: pass it to the primary
                if self.up in events:
                    msg = self.up.recv()
                    if msg[:4] == FEATURES_MAGIC and self.drop > 0:
                        self.drop -= 1
                        self.dropped.append(decode_features(msg).seq)
                        continue
                    self.down.send(msg)
                while not self.extra.empty():
                    self.down.send(self.extra.get())
        finally:
            self.up.close(linger=0)
            self.down.close(linger=0)

    def inject(self, data: bytes) -> None:
        self.extra.put(data)

    def close(self) -> None:
        self.stop.set()
        self.t.join(1.0)
        assert not self.t.is_alive()


def _next(node: Node, timeout_s: float = 2.0) -> FrameState:
    st = node.recv_state(int(timeout_s * 1e9))
    assert st is not None, node.status().summary()
    return st


# ======================================================================================= codec


def test_operator_state_round_trip_is_exact_and_canonical() -> None:
    for fs in (FeatureState(), _rich(), _card(2.0)):
        data = encode_features(fs, seq=2**64 - 1, session=0xDEADBEEF)
        upd = decode_features(data)
        assert isinstance(upd, FeatureUpdate)
        assert (upd.seq, upd.session) == (2**64 - 1, 0xDEADBEEF)
        assert upd.features == fs  # every field, LUTs by content
        assert encode_features(upd.features, seq=upd.seq, session=upd.session) == data
        assert data[:4] == FEATURES_MAGIC
    fs = _rich()
    data = encode_features(fs, seq=3, session=1)
    back = decode_features(data).features
    # the LUT tables travel (no file needed on the node): exact float32, with their titles and sources
    for target in ("main", "ceiling"):
        np.testing.assert_array_equal(back.color_of(target).lut.table, fs.color_of(target).lut.table)
    assert back.color_of("main").lut.source == "/luts/1.4.cube"
    assert back.inner_color.lut.title == "gamma 0.8"
    # one table per distinct LUT: header 21 + JSON + 9^3 * 3 floats once (shared) + 5^3 * 3 floats
    jlen = struct.unpack_from("<I", data, 17)[0]
    assert len(data) == 21 + jlen + 4 * 3 * (9**3 + 5**3)
    doc = json.loads(data[21:21 + jlen])
    assert len(doc["luts"]) == 2 and doc["wall_color"][0][1]["lut"] == doc["wall_color"][1][1]["lut"]
    # the colour chain the node applies equals the primary's on the same colours (reference maths)
    rgb = np.random.default_rng(1).uniform(0, 1, (64, 3))
    for target in ("main", "ceiling"):
        np.testing.assert_array_equal(back.color_of(target).apply(rgb), fs.color_of(target).apply(rgb))


def test_frame_state_names_the_operator_state_it_was_planned_with() -> None:
    st = _frame(7)
    assert st.features_seq == 0
    data = encode_frame_state(st, seq=11, session=5, features_seq=9)
    back = decode_frame_state(data)
    assert (back.seq, back.session, back.features_seq, back.frame) == (11, 5, 9, 7)
    assert struct.unpack_from("<Q", data, 20)[0] == 9  # right after seq in the header (docs: wire layout)
    assert encode_frame_state(back) == data


def _features_bytes() -> bytes:
    return encode_features(_rich(), seq=4, session=2)


def _with_json(data: bytes, edit) -> bytes:
    """``data`` with its JSON part replaced by ``edit(text)`` (bytes), the length field fixed."""
    jlen = struct.unpack_from("<I", data, 17)[0]
    text = edit(data[21:21 + jlen].decode())
    raw = text if isinstance(text, bytes) else text.encode()
    return data[:17] + struct.pack("<I", len(raw)) + raw + data[21 + jlen:]


def test_malformed_operator_states_raise_the_package_error() -> None:
    good = _features_bytes()
    jlen = struct.unpack_from("<I", good, 17)[0]
    nan_table = bytearray(good)
    struct.pack_into("<f", nan_table, 21 + jlen + 8, float("nan"))
    bad = {
        "empty": b"",
        "truncated header": good[:20],
        "magic": b"SCFS" + good[4:],
        "version": good[:4] + b"\x02" + good[5:],
        "JSON length past the end": good[:17] + struct.pack("<I", len(good)) + good[21:],
        "truncated LUT table": good[:-1],
        "trailing byte": good + b"\x00",
        "not JSON": _with_json(good, lambda t: "{" + t),
        "not UTF-8": _with_json(good, lambda t: t.encode()[:-1] + b"\xff"),
        "JSON not an object": _with_json(good, lambda t: "[" + t + "]"),
        "missing key": _with_json(good, lambda t: t.replace('"blackout":["tessera-a/out1"],', "")),
        "unknown key": _with_json(good, lambda t: t[:-1] + ',"extra":1}'),
        "repeated key": _with_json(good, lambda t: t[:-1] + ',"freeze":null}'),
        "NaN": _with_json(good, lambda t: t.replace('"intensity":1.5', '"intensity":NaN')),
        "Infinity": _with_json(good, lambda t: t.replace('"exposure":0.5', '"exposure":Infinity')),
        "bool for a number": _with_json(good, lambda t: t.replace('"intensity":1.5', '"intensity":true')),
        "string for a number": _with_json(good, lambda t: t.replace('"intensity":1.5', '"intensity":"1.5"')),
        "rect of three": _with_json(good, lambda t: t.replace("[0.05,0.1,0.25,0.6]", "[0.05,0.1,0.25]")),
        "rect inside out": _with_json(good, lambda t: t.replace("[0.05,0.1,0.25,0.6]",
                                                                "[0.25,0.1,0.05,0.6]")),
        "unknown layer": _with_json(good, lambda t: t.replace('"layer":"over"', '"layer":"middle"')),
        "negative intensity": _with_json(good, lambda t: t.replace('"intensity":1.5', '"intensity":-1')),
        "card id twice": _with_json(good, lambda t: t.replace('"id":"fill-ü"', '"id":"key"')),
        "unknown pattern": _with_json(good, lambda t: t.replace('"kind":"checkerboard"', '"kind":"zebra"')),
        "squares not whole": _with_json(good, lambda t: t.replace('"squares":4', '"squares":4.5')),
        "blackout twice": _with_json(good, lambda t: t.replace('["tessera-a/out1"]',
                                                               '["tessera-a/out1","tessera-a/out1"]')),
        "LUT index out of range": _with_json(good, lambda t: t.replace('"lut":1', '"lut":7')),
        "LUT size 1": _with_json(good, lambda t: t.replace('"size":9', '"size":1')),
        "LUT size beyond the table": _with_json(good, lambda t: t.replace('"size":9', '"size":10')),
        "NaN in a LUT table": bytes(nan_table),
        "chroma key colour above 1": _with_json(
            good, lambda t: t.replace('"color":[0.0,0.5019607843137255,0.0]', '"color":[0.0,2.0,0.0]')),
        "temperature and gains": _with_json(good, lambda t: t.replace('"gains":null', '"gains":[1,1,1]', 1)),
        "pair of three": _with_json(good, lambda t: t.replace('"wall_color":[["ceiling",',
                                                              '"wall_color":[["ceiling","x",')),
        "nested too deep": _with_json(
            good, lambda t: t.replace('"freeze":{', '"freeze":' + "[" * 100000 + "]" * 100000 + ',"x":{', 1)),
    }
    for why, data in bad.items():
        assert data != good, why
        with pytest.raises(FrameStateError) as info:
            decode_features(data)
        assert isinstance(info.value, StageError), why


def test_an_operator_state_of_another_version_is_refused_naming_both() -> None:
    # a node of an older stagectl (wire 3 had no uncalibrated outputs) is told the version, not a missing key
    good = _features_bytes()
    assert good[4] == WIRE_VERSION
    older = good[:4] + bytes([WIRE_VERSION - 1]) + good[5:]
    with pytest.raises(FrameStateError, match=rf"operator state version {WIRE_VERSION - 1}; this stagectl reads "
                                              rf"version {WIRE_VERSION}"):
        decode_features(older)


def test_fuzzed_operator_states_only_ever_raise_the_package_error() -> None:
    import random

    rng = random.Random(20261125)
    good = encode_features(_card(1.0), seq=1, session=1)
    decoded = 0
    for _ in range(4000):
        b = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(b))
            op = rng.randrange(3)
            if op == 0:
                b[pos] = rng.getrandbits(8)
            elif op == 1:
                del b[pos:pos + rng.randrange(1, 8)]
            else:
                b[pos:pos] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 8)))
        try:
            upd = decode_features(bytes(b))
        except FrameStateError:
            continue
        decoded += 1
        assert isinstance(upd.features, FeatureState)
    assert decoded > 0  # digit flips inside numbers still decode: the fuzz reached the features


def test_encode_refuses_operator_states_it_cannot_write() -> None:
    walls = {f"w{i}": ColorCorrection(lut=Lut3D.identity(i + 2)) for i in range(MAX_WIRE_LUTS + 1)}
    with pytest.raises(FrameStateError, match=f"at most {MAX_WIRE_LUTS} 3D LUTs"):
        encode_features(FeatureState(wall_color=walls), seq=1, session=1)
    big = [Lut3D(np.full((129, 129, 129, 3), v, dtype=np.float32)) for v in (0.25, 0.75)]  # 25.8 MB each
    with pytest.raises(FrameStateError, match="too large"):
        encode_features(FeatureState(wall_color={"a": ColorCorrection(lut=big[0]),
                                                 "b": ColorCorrection(lut=big[1])}), seq=1, session=1)
    one = encode_features(FeatureState(wall_color={"a": ColorCorrection(lut=big[0])}), seq=1, session=1)
    assert decode_features(one).features.color_of("a").lut == big[0]  # one of them alone fits


# ======================================================================================= primary + node


def test_primary_numbers_an_operator_state_only_when_it_changes(cluster) -> None:
    primary = cluster.primary(RATE, member=None)
    node = cluster.node("n", primary)
    _connect(primary, [node])
    a = _card(1.0)
    primary.publish(_frame(0))  # no console: the frame names no operator state
    primary.publish(_frame(1), features=a)
    primary.publish(_frame(2), features=a)  # the same object
    primary.publish(_frame(3), features=_card(1.0))  # equal: not a change
    primary.publish(_frame(4))  # None: as last given
    primary.publish(_frame(5), features=_card(2.0))
    got = [_next(node) for _ in range(6)]
    assert [s.features_seq for s in got] == [0, 1, 1, 1, 1, 2]
    assert primary.features_seq == 2 and primary.status().features_seq == 2
    assert node.features_for(got[0]) is None  # the stage file's features
    assert [node.features_for(s) for s in got[1:]] == [a, a, a, a, _card(2.0)]
    st = node.status()
    assert (st.features_seq, st.features, st.features_behind, st.features_rejected) == (2, 2, 0, 0)
    assert "operator state #2" in primary.status().summary() and "operator state #2" in st.summary()
    # an operator state that cannot be encoded is counted on the primary, never raised into its frame loop;
    # the frames keep naming the one in effect
    walls = {f"w{i}": ColorCorrection(lut=Lut3D.identity(i + 2)) for i in range(MAX_WIRE_LUTS + 1)}
    primary.publish(_frame(6), features=FeatureState(wall_color=walls))
    assert _next(node).features_seq == 2
    ps = primary.status()
    assert ps.errors == 1 and "operator state not sent to the nodes" in ps.last_error


def test_every_queued_frame_finds_the_operator_state_it_names(cluster) -> None:
    primary = cluster.primary(RATE, member=None)
    node = cluster.node("n", primary)
    _connect(primary, [node])
    sent = [_card(0.5 + k) for k in range(5)]
    for k, fs in enumerate(sent):  # all on the wire before the node looks: it reads ahead of its frames
        primary.publish(_frame(k), features=fs)
    assert wait_for(lambda: node.poll(1 * MS) >= 5, 3.0, 0)
    for k, fs in enumerate(sent):
        st = _next(node)
        assert st.frame == k and node.features_for(st) == fs
    assert node.status().features_behind == 0


def test_node_plans_exactly_what_the_primary_planned(tmp_path: Path, cluster) -> None:
    """Primary and node planners on the demo stage split over three nodes: node n2 gets the operator state
    through the cluster and plans frame k with the same feature uniforms (cards, colour, LUT atlas, key,
    markers) as the primary, and its own output's pattern; other nodes' patterns and blackouts are not its
    business and are left out."""
    from stagectl.render.camera import camera_state_from_pose
    from stagectl.render.plan import FramePlanner
    from stagectl.stage import load_stage

    stage = load_stage(_cluster_stage(tmp_path))
    default, check = node_features(stage, "n2")
    primary = cluster.primary(FrameRate(24000, 1001), member=None)
    node = cluster.node("n2", primary, features_check=check)
    _connect(primary, [node])
    p_plan = FramePlanner(stage)
    n_plan = FramePlanner(node_stage(stage, "n2"))
    fs = _rich()
    cam = camera_state_from_pose(stage, (0.2, 0.0, 1.7, 5.0, 2.0, 0.0), zoom=0.3, focus=0.5)
    for k, features in enumerate((None, fs)):
        st = FrameState.make(k, primary.rate, 0, cameras=[cam])
        primary.publish(st, features=features)
        want = p_plan.plan(st.cameras, st.flags, k, features=features)
        got_state = _next(node)
        node_fs = node.features_for(got_state)
        got = n_plan.plan(got_state.cameras, got_state.flags, k,
                          features=node_fs if node_fs is not None else default)
        a, b = want.features, got.features
        for name in a.__dataclass_fields__:
            if name == "state":
                continue
            va, vb = getattr(a, name), getattr(b, name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                np.testing.assert_array_equal(va, vb, err_msg=name)
            else:
                assert va == vb, name
        (out2,) = got.outputs
        mine = next(o for o in want.outputs if o.key == "tessera-a/out2")
        assert out2.key == "tessera-a/out2" and out2.blackout == mine.blackout
        assert (out2.pattern is None) == (mine.pattern is None)
        for pa, pb in zip(want.inner, got.inner):
            np.testing.assert_array_equal(pa.VP, pb.VP)
    assert a.active and "KEY" in a.defines and a.lut_atlas is not None
    assert out2.pattern is not None  # the checkerboard the operator set on out2
    assert any(o.blackout for o in want.outputs if o.key == "tessera-a/out1")  # out1 is n1's, not n2's
    assert node_fs.patterns == (("tessera-a/out2", fs.pattern_of("tessera-a/out2")),)
    assert node_fs.blackout == frozenset() and node_fs.light_cards == fs.light_cards


def test_late_joiner_gets_the_operator_state_from_its_snapshot(cluster) -> None:
    primary = cluster.primary(RATE, member=None)
    for k in range(10):
        primary.publish(_frame(k), features=_card(1.0) if k < 5 else _card(3.0))
    late = cluster.node("late", primary)
    _connect(primary, [late])
    first = _next(late)
    assert (first.frame, first.features_seq) == (9, 2)  # the snapshot: latest frame state
    assert late.features_for(first) == _card(3.0)  # and the latest operator state with it
    primary.publish(_frame(10))
    nxt = _next(late)
    assert nxt.features_seq == 2 and late.features_for(nxt) == _card(3.0)
    st = late.status()
    assert (st.snapshots, st.features_behind, st.decode_errors) == (1, 0, 0)


def test_a_lost_operator_state_is_recovered_through_a_snapshot(cluster, zctx) -> None:
    """The hop between primary and node drops one operator-state message: the frames that name it render
    with the node's last operator state (counted as behind, the barrier never waits), the node asks for a
    snapshot, and from then on renders the operator's state again. Garbage and a state the node's stage
    refuses are counted and dropped; the node follows every frame throughout."""
    if cluster.auth == "curve":
        pytest.skip("the lossy hop is a plain ZeroMQ proxy between the primary and the node")
    primary = cluster.primary(RATE, member=None)
    hop = LossyHop(zctx, primary.state_port)
    walls, outputs = ["main", "ceiling"], ["p/o1"]

    def check(fs: FeatureState) -> FeatureState:
        fs.check(walls, outputs)
        return fs

    node = Node("n", f"127.0.0.1:{hop.port},{primary.sync_port}", rate=RATE, context=zctx,
                features_check=check).start()
    try:
        _connect(primary, [node])
        primary.publish(_frame(0), features=_card(1.0))
        assert node.features_for(_next(node)) == _card(1.0)
        hop.drop = 1
        primary.publish(_frame(1), features=_card(2.0))  # operator state 2: lost on the way
        st = _next(node)
        assert (st.frame, st.features_seq) == (1, 2) and hop.dropped == [2]
        assert node.features_for(st) == _card(1.0)  # the last one it has (no waiting for the lost one)
        assert node.status().features_behind == 1
        frames = []
        k = 2

        def recovered() -> bool:
            nonlocal k
            primary.publish(_frame(k))
            k += 1
            s = node.recv_state(100 * MS)
            if s is None:
                return False
            frames.append(s)
            return node.features_for(s) == _card(2.0)

        assert wait_for(recovered, 15.0, 0.01), node.status().summary()
        st = node.status()
        assert st.features_seq == 2 and st.gaps == 0  # #2 went out once, was dropped: a snapshot brought it
        assert [s.frame for s in frames] == list(range(2, k))  # no frame was lost or held meanwhile
        behind = st.features_behind
        # garbage with the operator-state topic: counted, dropped
        errors = st.decode_errors
        hop.inject(FEATURES_MAGIC + b"\x03 not an operator state")
        hop.inject(encode_features(_card(9.0), seq=99, session=primary.session ^ 1))  # another primary's
        primary.publish(_frame(k))
        assert _next(node).frame == k
        assert node.status().decode_errors == errors + 1 and node.status().stale >= 1
        # a state naming a wall this node's stage does not have: refused, the last good one stays in use
        primary.publish(_frame(k + 1), features=_card(4.0, wall="nope"))
        s = _next(node)
        assert s.features_seq == 3 and node.features_for(s) == _card(2.0)
        st = node.status()
        assert st.features_rejected == 1 and st.features_behind == behind + 1 and st.features_seq == 2
        primary.publish(_frame(k + 2), features=_card(5.0))
        s = _next(node)
        assert node.features_for(s) == _card(5.0) and node.status().features_behind == behind + 1
    finally:
        node.close()
        hop.close()


# ======================================================================================= processes


class _Proc:
    """A subprocess whose output lines are collected by a reader thread (no pipe can fill up)."""

    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.t = threading.Thread(target=lambda: self.lines.extend(self.p.stdout), daemon=True)
        self.t.start()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 90.0) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.p.poll() is not None:
                self.t.join(2)
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in:\n{self.text()}")

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
        self.t.join(5)
        return self.text()


class _Watch:
    """Reads every frame a shared-memory sink publishes (in a thread) and keeps, per frame number, the share
    of the wall's mapping rectangle showing ``color`` and whether the whole canvas is black."""

    def __init__(self, name: str, color: tuple[int, int, int]) -> None:
        from stagectl.render.sink import SinkReader

        self.reader = SinkReader(name, timeout_s=30)
        self.color = np.array(color)
        self.frames: dict[int, tuple[float, bool]] = {}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        after = 0
        while not self.stop.is_set():
            got = self.reader.wait(after, timeout_s=0.2)
            if got is None:
                continue
            after = got.write_no
            px = got.pixels
            wall = px[:1056, :1760, :3].reshape(-1, 3)  # the wall's mapping rectangle on out1
            share = float(np.mean(np.all(wall == self.color, axis=1)))
            self.frames[got.frame_no] = (share, int(px[..., :3].max()) == 0)

    def until(self, frame: int, timeout_s: float = 60.0) -> None:
        assert wait_for(lambda: any(k >= frame for k in list(self.frames)), timeout_s, 0.02), (
            f"no frame >= {frame}; got {sorted(self.frames)[-5:]}")

    def close(self) -> None:
        self.stop.set()
        self.t.join(2)
        self.reader.close()


@pytest.mark.gl
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_osc_light_card_on_the_primary_shows_on_the_nodes_canvas_from_the_acked_frame(
        tmp_path: Path) -> None:
    """`stagectl run --cluster --sink` (console on, OSC from 127.0.0.1) and `stagectl node --sink` rendering
    out1: a full-wall magenta light card added over OSC shows on the NODE's canvas exactly from the frame the
    primary acknowledged (frame numbers are shared across the cluster), never before; a global blackout (an
    operator flag) turns the node's canvas black from its acknowledged frame on."""
    ports = stage_ports(tcp=("zmq", "zmq_state", "web", "state", "sync"))
    text = flat_wall_text(ports, f"Cluster wall {uuid.uuid4().hex[:8]}")  # its own shared-memory names
    text = text.replace("      - name: out1\n", "      - name: out1\n        node: n1\n")
    text += console_yaml(ports)
    stage = tmp_path / "cluster_wall.yaml"
    stage.write_text(text)
    where = f"127.0.0.1:{ports['state']},{ports['sync']}"
    primary = _Proc("run", str(stage), "--cluster", where, "--sink", "--preview-every", "0",
                    "--duration", "150", "--no-realtime", "--state-file", str(tmp_path / "operator.json"))
    node = watch = None
    osc = OscClient(ports["osc"], timeout_s=15)
    try:
        primary.wait_for(r"cluster primary: frame states on 127\.0\.0\.1:")
        primary.wait_for(r"OSC commands on udp://127\.0\.0\.1:\d+")
        node = _Proc("node", str(stage), "--name", "n1", "--primary", where, "--sink", "--duration", "150")
        ring = node.wait_for(r"node n1: output proc/out1 .* shared memory '([A-Za-z0-9_]+)'").group(1)
        watch = _Watch(ring, (255, 0, 255))
        node.wait_for(r"^\[\d\d:.*node n1: frame \d+")  # following and rendering
        watch.until(0)
        before = max(watch.frames)

        card = osc.send("/stagectl/card/add", "wall", 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0)
        assert card[:2] == ("card.add", 1), card
        card_at = card[2]
        assert card_at > before
        watch.until(card_at + 5)
        dark = osc.send("/stagectl/output/blackout", 1)
        assert dark[:2] == ("output.blackout", 1), dark
        dark_at = dark[2]
        watch.until(dark_at + 5)
    finally:
        osc.close()
        if watch is not None:
            watch.close()
        out_node = node.stop() if node is not None else ""
        out_primary = primary.stop()
    frames = dict(watch.frames)
    early = [k for k in frames if k < card_at]
    lit = [k for k in frames if card_at <= k < dark_at]
    black = [k for k in frames if k >= dark_at]
    assert early and lit and black, (card_at, dark_at, sorted(frames))
    assert all(frames[k][0] < 0.01 and not frames[k][1] for k in early), [(k, frames[k]) for k in early]
    assert all(frames[k][0] > 0.99 for k in lit), [(k, frames[k]) for k in lit]  # the card: the whole wall
    assert all(frames[k][1] for k in black), [(k, frames[k]) for k in black]
    assert "Traceback" not in out_node and "Traceback" not in out_primary, out_node + out_primary
    m = re.search(r"operator state #(\d+) \((\d+) received, (\d+) frames behind, (\d+) refused\)", out_node)
    assert m, out_node
    # #1: the operator state the primary started with (the stage file's), from the node's snapshot; #2: card
    assert (int(m.group(1)), int(m.group(2)), int(m.group(4))) == (2, 2, 0), m.group(0)
    assert re.search(r"operator state #\d+: \d+ frames behind, 0 refused", out_node), out_node
