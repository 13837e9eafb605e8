"""What a render node shows besides the features, across the cluster: the operator-state codec's ``show`` (the
scene content, the primary's stage-file digest and reload count, the colour patch playbacks), and a real primary
(the stage console's hub with ``stagectl run``'s effects, :meth:`LiveConsole.cluster_show`, a
:class:`~stagectl.sync.cluster.Primary`) and a real node (:class:`~stagectl.sync.cluster.Node` and the
:class:`~stagectl.commands._node_show.ShowFollower` of ``stagectl node``) on loopback ZeroMQ, each rendering
with its own renderer on llvmpipe (EGL), frame by frame in step: ``content.select``, ``stage.reload`` and
``color.patches`` on the primary change the node's canvas on the very frame they change the primary's, the
node's canvas equal to the primary's for its output, and the patch frames equal to the sequence's codes
(:meth:`~stagectl.render.patch_player.PatchProgram.codes`, the numpy reference). A content the node may not or
cannot load (outside its content folder, missing) is said once and in its status, and it keeps the old one; a
node whose stage file differs from the primary's says so once.
"""

from __future__ import annotations

import json
import re
import os
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq
from helpers import ONE_CAMERA, one_wall_stage

from stagectl.core.errors import StageError
from stagectl.core.features import FeatureState, LightCard
from stagectl.sync.cluster import (
    MAX_WIRE_PATCHES,
    FrameState,
    FrameStateError,
    PatchStart,
    ShowState,
    decode_features,
    encode_features,
)

from .cluster_parts import MS, RATE, ClusterParts
from .test_cluster import _connect

SHA = "0123456789abcdef" * 4


def _show() -> ShowState:
    return ShowState("scenes/forest ü.glb", SHA, 3, (PatchStart("p/a", 120, 1, 2, 4, True),
                                                    PatchStart("p/b", -5)))


# ======================================================================================= codec


def test_the_show_travels_exactly_in_the_operator_state() -> None:
    for show in (ShowState(), _show(), ShowState(content="procedural", reloads=2**63 - 1)):
        data = encode_features(FeatureState(), seq=4, session=9, show=show)
        upd = decode_features(data)
        assert upd.show == show and upd.features == FeatureState()
        assert encode_features(upd.features, seq=4, session=9, show=upd.show) == data  # canonical
    assert decode_features(encode_features(FeatureState(), seq=1, session=1)).show == ShowState()
    data = encode_features(FeatureState(), seq=1, session=1, show=_show())
    jlen = struct.unpack_from("<I", data, 17)[0]
    doc = json.loads(data[21:21 + jlen])
    assert doc["show"] == {"content": "scenes/forest ü.glb", "stage_sha256": SHA, "reloads": 3, "patches": [
        {"output": "p/a", "first_frame": 120, "frames_per_patch": 1, "slate_frames": 2, "ramp_steps": 4,
         "calibration": True},
        {"output": "p/b", "first_frame": -5, "frames_per_patch": 10, "slate_frames": 8, "ramp_steps": 30,
         "calibration": False}]}


def _with_show(edit) -> bytes:
    """The operator state of :func:`_show` with its JSON ``show`` object replaced by ``edit(show dict)``."""
    data = encode_features(FeatureState(), seq=4, session=2, show=_show())
    jlen = struct.unpack_from("<I", data, 17)[0]
    doc = json.loads(data[21:21 + jlen])
    doc["show"] = edit(doc["show"])
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return data[:17] + struct.pack("<I", len(raw)) + raw + data[21 + jlen:]


def _patch(i: int, **change):
    def edit(s):
        s["patches"][i].update(change)
        return s
    return edit


def test_malformed_shows_raise_the_package_error() -> None:
    bad = {
        "no show": lambda s: None,
        "a key missing": lambda s: {k: v for k, v in s.items() if k != "reloads"},
        "a key more": lambda s: {**s, "extra": 1},
        "content not text": lambda s: {**s, "content": 7},
        "content with a line break": lambda s: {**s, "content": "scenes/a\n.glb"},
        "content too long": lambda s: {**s, "content": "a/" * 3000},
        "digest not hex": lambda s: {**s, "stage_sha256": "x" * 64},
        "digest upper case": lambda s: {**s, "stage_sha256": SHA.upper()},
        "digest short": lambda s: {**s, "stage_sha256": SHA[:-1]},
        "negative reloads": lambda s: {**s, "reloads": -1},
        "reloads a bool": lambda s: {**s, "reloads": True},
        "patches not a list": lambda s: {**s, "patches": {}},
        "a patch key missing": lambda s: {**s, "patches": [{"output": "p/a"}]},
        "output without processor": _patch(0, output="a"),
        "output twice": _patch(1, output="p/a"),
        "first frame a float": _patch(0, first_frame=1.5),
        "no frames per patch": _patch(0, frames_per_patch=0),
        "ramp of three": _patch(0, ramp_steps=3),
        "slate frames beyond": _patch(0, slate_frames=1001),
        "calibration a number": _patch(0, calibration=1),
        "too many playbacks": lambda s: {**s, "patches": [
            {**s["patches"][1], "output": f"p/o{i}"} for i in range(MAX_WIRE_PATCHES + 1)]},
    }
    for why, edit in bad.items():
        with pytest.raises(FrameStateError) as info:
            decode_features(_with_show(edit))
        assert isinstance(info.value, StageError), why
    with pytest.raises(FrameStateError, match="show.stage_sha256"):
        encode_features(FeatureState(), seq=1, session=1, show=ShowState(stage_sha256="abc"))
    with pytest.raises(FrameStateError, match="plays twice"):
        encode_features(FeatureState(), seq=1, session=1,
                        show=ShowState(patches=(PatchStart("p/a", 1), PatchStart("p/a", 2))))


# ======================================================================================= primary + node (no GL)


def _frame(k: int) -> FrameState:
    return FrameState.make(k, RATE, 1_000_000_000 + RATE.frame_edge_ns(k))


@pytest.fixture
def parts(zctx: zmq.Context):
    p = ClusterParts(zctx)
    yield p
    p.close()


def _next(node, timeout_s: float = 2.0) -> FrameState:
    st = node.recv_state(int(timeout_s * 1e9))
    assert st is not None, node.status().summary()
    return st


def test_a_change_of_show_alone_is_a_new_operator_state(parts) -> None:
    primary = parts.primary()
    node = parts.node("n1", primary)
    _connect(primary, [node])
    a, b = ShowState(stage_sha256=SHA), ShowState(content="procedural", stage_sha256=SHA)
    fs = FeatureState(light_cards=(LightCard("c", "w", (0.0, 0.0, 1.0, 1.0)),))
    primary.publish(_frame(0))
    primary.publish(_frame(1), show=a)  # no features given yet: FeatureState() with it
    primary.publish(_frame(2), features=fs, show=ShowState(stage_sha256=SHA))  # equal show, new features
    primary.publish(_frame(3), show=b)
    primary.publish(_frame(4), features=fs, show=b)  # nothing new
    got = [_next(node) for _ in range(5)]
    assert [s.features_seq for s in got] == [0, 1, 2, 3, 3]
    assert node.show_for(got[0]) is None  # the primary published none: nothing to follow
    assert [node.show_for(s) for s in got[1:]] == [a, a, b, b]
    assert [node.features_for(s) for s in got[1:]] == [FeatureState(), fs, fs, fs]


def test_the_show_is_kept_when_the_features_are_refused_and_a_new_check_takes_them(parts) -> None:
    """A card on a wall this node's stage does not have (yet: the primary reloaded a stage with it) refuses
    the features, never the show (the reload it carries must reach the node); after the node's reload its new
    check takes the features it refused."""
    def check(walls):
        def fn(fs):
            fs.check(walls, ["p/a"])
            return fs
        return fn

    primary = parts.primary()
    node = parts.node("n1", primary, features_check=check(["w"]))
    _connect(primary, [node])
    card = FeatureState(light_cards=(LightCard("c", "new", (0.0, 0.0, 1.0, 1.0)),))
    reloaded = ShowState(stage_sha256=SHA, reloads=1)
    primary.publish(_frame(0), features=FeatureState(), show=ShowState(stage_sha256=SHA))
    primary.publish(_frame(1), features=card, show=reloaded)
    first, second = _next(node), _next(node)
    assert node.show_for(second) == reloaded
    assert node.features_for(second) == FeatureState()  # the one before, as with a lost state
    st = node.status()
    assert (st.features, st.features_rejected, st.features_seq) == (1, 1, 1)
    assert node.set_features_check(check(["w", "new"])) == 1
    assert node.features_for(second) == card and node.status().features_seq == 2
    assert node.features_for(first) == FeatureState()


# ======================================================================================= with rendering

OUTPUTS = (
    "{name: a, node: n1, canvas: [96, 40], mappings: [{wall: w, rect: [0, 0, 64, 32], at: [0, 4]}]}",
    "{name: b, canvas: [64, 32], mappings: [{wall: w, rect: [64, 0, 64, 32]}]}",
)
COLOUR = """\
colour:
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/a: {canvas: {format: rgba8, transfer: srgb}}
"""
SEQ = {"frames_per_patch": 1, "slate_frames": 1, "ramp_steps": 4}  # 17 wall frames
RED, BLUE = (200, 40, 30), (20, 60, 220)


def _stage_text(at: str = "[0, 4]", comment: str = "") -> str:
    text = one_wall_stage("Show", (4, 1), OUTPUTS, tail=ONE_CAMERA) + COLOUR + comment
    return text.replace("at: [0, 4]", f"at: {at}")


def _plate(path: Path, rgb: tuple[int, int, int]) -> None:
    """A uniform 8-bit equirectangular plate of the sRGB codes ``rgb``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.empty((32, 64, 3), np.uint8)
    img[:] = rgb[::-1]
    assert cv2.imwrite(str(path), img)


@pytest.fixture(scope="module")
def egl():
    from stagectl.render.gl.context import create_context

    ctx = create_context("egl")
    yield ctx
    ctx.release()


class Pair:
    """A primary (hub with ``stagectl run``'s effects, a runtime drawing every output, a Primary publishing
    with :meth:`LiveConsole.cluster_show`) and node n1 (its own copy of the stage folder, a Node, a runtime
    drawing its output p/a, the ShowFollower of ``stagectl node``), stepped one frame at a time."""

    def __init__(self, tmp_path: Path, parts: ClusterParts, ctx, node_comment: str = "") -> None:
        from stagectl.commands._node_show import ShowFollower
        from stagectl.commands.node import node_features, node_stage
        from stagectl.console.live import LiveConsole, RunHandles, register_effects
        from stagectl.render.camera import camera_state_from_pose
        from stagectl.render.renderer import StageRenderer
        from stagectl.runtime import StageRuntime
        from stagectl.runtime.output import StageOutput
        from stagectl.stage import load_stage

        self.ctx = ctx
        self.p_dir, self.n_dir = tmp_path / "primary", tmp_path / "node"
        for d, comment in ((self.p_dir, ""), (self.n_dir, node_comment)):
            d.mkdir()
            (d / "stage.yaml").write_text(_stage_text(comment=comment), encoding="utf-8")
            _plate(d / "scenes" / "red.png", RED)
        _plate(self.p_dir / "scenes" / "blue.png", BLUE)  # the primary's only
        self.said: list[str] = []
        stage = load_stage(self.p_dir / "stage.yaml")
        self.stage = stage
        self.console = LiveConsole(stage, self.said.append, state_path=tmp_path / "operator.json", web=False,
                                   osc=False, zmq=False)
        self.hub = self.console.hub
        self.p_runtime = StageRuntime(stage, output=StageOutput(stage, ctx, StageRenderer(stage, ctx)))
        handles = RunHandles(self.p_runtime)
        self.console.handles = handles
        register_effects(self.hub, handles, self.said.append)
        self.primary = parts.primary()
        nstage = load_stage(self.n_dir / "stage.yaml")
        sub = node_stage(nstage, "n1")
        self.n_runtime = StageRuntime(sub, output=StageOutput(sub, ctx, StageRenderer(sub, ctx)))
        self.node = parts.node("n1", self.primary, features_check=node_features(nstage, "n1")[1])
        self.node_said: list[str] = []
        self.follower = ShowFollower(nstage, "n1", self.n_runtime, self.node, self.node_said.append, "n1")
        _connect(self.primary, [self.node])
        self.cam = lambda k: camera_state_from_pose(stage, (0.3 * np.sin(k / 5), 0.5, 1.6, 5 + k, 2, 0))
        self.frame = 0

    def step(self) -> tuple[np.ndarray, np.ndarray, FrameState]:
        """Frame k on both sides: the primary applies, publishes and draws, the node follows and draws; the
        canvases of p/a (primary's, node's) and the node's state."""
        k = self.frame
        hub = self.hub
        self.console.apply(k)
        states = [self.cam(k)]
        self.primary.publish(FrameState.make(k, self.stage.frame_rate, 1_000_000_000 + k * 40 * MS,
                                             cameras=states, flags=hub.flags),
                             features=hub.features, show=self.console.cluster_show(k))
        drawn = self.p_runtime.draw(states, k, flags=hub.flags, features=hub.features)
        assert drawn.ok, drawn.why
        st = self.node.recv_state(int(2e9))
        assert st is not None and st.frame == k, self.node.status().summary()
        self.follower.follow(self.node.show_for(st), st.frame)
        fs = self.node.features_for(st)
        drawn = self.n_runtime.draw(list(st.cameras), st.frame, flags=st.flags,
                                    features=fs if fs is not None else self.follower.default_features)
        assert drawn.ok, drawn.why
        self.frame += 1
        p = self.p_runtime.output.canvases()["p/a"].copy()
        n = self.n_runtime.output.canvases()["p/a"].copy()
        return p, n, st

    def command(self, name: str, args: dict) -> tuple[dict, list]:
        """Submit from another thread while frames run (each checked by the caller through the rows returned:
        ``(frame, primary canvas, node canvas)``) until it is answered; the ack and the rows."""
        box: list[dict] = []
        t = threading.Thread(target=lambda: box.append(self.hub.submit(name, args, "test", timeout_s=30.0)))
        t.start()
        rows = []
        deadline = time.monotonic() + 30.0
        while not box and time.monotonic() < deadline:
            p, n, st = self.step()
            rows.append((st.frame, p, n))
            time.sleep(0.002)
        t.join(5.0)
        assert box, f"{name}: no answer"
        return box[0], rows

    def run(self, frames: int) -> list:
        return [(st.frame, p, n) for p, n, st in (self.step() for _ in range(frames))]

    def close(self) -> None:
        self.ctx.make_current()
        self.p_runtime.output.renderer.release()
        self.n_runtime.output.renderer.release()
        self.hub.close()


def _share(canvas: np.ndarray, rgb) -> float:
    """Share of the canvas rows 4..35 (the mapped wall) within one code of ``rgb``."""
    px = canvas[4:36, :64, :3].astype(int).reshape(-1, 3)
    return float(np.mean(np.all(np.abs(px - np.array(rgb)) <= 1, axis=1)))


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_the_node_follows_content_select_and_stage_reload_on_the_same_frame(tmp_path, parts, egl) -> None:
    pair = Pair(tmp_path, parts, egl, node_comment="# this node's copy has a comment more\n")
    try:
        rows = pair.run(3)
        # the node's copy differs (a comment): said once, and in the status, from its first operator state
        said = [s for s in pair.node_said if "differs from the primary's" in s]
        assert len(said) == 1 and str(pair.n_dir / "stage.yaml") in said[0], pair.node_said
        assert pair.follower.problems == {"stage file": "stage file differs from the primary's"}
        assert "not following: stage file differs from the primary's" in pair.follower.status()

        ack, rows2 = pair.command("content.select", {"content": "scenes/red.png"})
        assert ack["ok"], ack
        F = ack["frame"]
        rows += rows2 + pair.run(2)
        for k, p, n in rows:
            assert np.array_equal(n, p), f"frame {k}: the node's canvas differs from the primary's"
            assert (_share(n, RED) > 0.99) == (k >= F), (k, F, _share(n, RED))
        assert f"n1: content is now" in "\n".join(pair.node_said) and f"from frame {F}," in pair.node_said[-1]
        assert pair.console.cluster_show(pair.frame).content == "scenes/red.png"  # relative to the stage file

        # a content only the primary has: the node says so once, keeps red; back to procedural: it follows
        ack, rows = pair.command("content.select", {"content": "scenes/blue.png"})
        assert ack["ok"], ack
        B = ack["frame"]
        rows += pair.run(2)
        assert all(_share(n, RED) > 0.99 for k, p, n in rows)
        assert all(_share(p, BLUE) > 0.99 for k, p, n in rows if k >= B)
        problem = pair.follower.problems["content"]
        assert problem.startswith("content scenes/blue.png cannot be shown here: content.select: content: "
                                  "file not found: scenes/blue.png")
        assert problem.endswith("keeps showing scenes/red.png")
        assert sum(problem in s for s in pair.node_said) == 1
        # a link inside the node's content folder that leads out of it: refused as the primary refuses it
        outside = pair.n_dir / "elsewhere.png"
        _plate(outside, BLUE)
        os.symlink(outside, pair.n_dir / "scenes" / "away.png")
        _plate(pair.p_dir / "scenes" / "away.png", BLUE)
        ack, rows = pair.command("content.select", {"content": "scenes/away.png"})
        assert ack["ok"], ack
        rows += pair.run(1)
        assert all(_share(n, RED) > 0.99 for k, p, n in rows)
        assert pair.follower.problems["content"].startswith(
            "content scenes/away.png cannot be shown here: content.select: content: refused: 'scenes/away.png' "
            "is not inside the scene folder scenes/ (console.paths.content)")
        ack, rows = pair.command("content.select", {"content": "procedural"})
        assert ack["ok"], ack
        P = ack["frame"]
        rows += pair.run(2)
        assert all(np.array_equal(n, p) for k, p, n in rows if k >= P)
        assert "content" not in pair.follower.problems
        ack, rows = pair.command("content.select", {"content": "scenes/red.png"})
        assert ack["ok"], ack
        rows += pair.run(1)

        # both stage files edited the same way (p/a's mapping moves down 4 rows), then stage.reload
        for d in (pair.p_dir, pair.n_dir):
            (d / "stage.yaml").write_text(_stage_text(at="[0, 8]"), encoding="utf-8")
        ack, rows2 = pair.command("stage.reload", {})
        assert ack["ok"], ack
        R = ack["frame"]
        rows = rows2 + pair.run(3)
        assert R in [k for k, _, _ in rows]
        for k, p, n in rows:
            assert np.array_equal(n, p), f"frame {k}: the node's canvas differs from the primary's"
            moved = bool(np.all(n[4:8, :64, :3] == 0)) and _share(n[4:], RED) > 0.99  # rows 8..39 now
            assert moved == (k >= R), (k, R)
        assert any(f"reloaded at frame {R}, with the primary's stage.reload" in s for s in pair.node_said)
        assert pair.follower.problems == {}  # the same file on both now: the digests agree
        assert pair.follower.counts == {"reloads": 1, "contents": 3, "patches": 0}  # red, procedural, red
        show = pair.console.cluster_show(pair.frame)
        assert show.reloads == 1 and show.content == "scenes/red.png" and len(show.stage_sha256) == 64
    finally:
        pair.close()


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_the_node_plays_the_primarys_colour_patches_frame_by_frame(tmp_path, parts, egl) -> None:
    from stagectl.render.patch_player import patch_program

    pair = Pair(tmp_path, parts, egl)
    try:
        pair.run(2)
        assert pair.follower.problems == {}  # the same stage file on both
        program = patch_program(pair.stage, "p/a", **SEQ)
        N = program.frames
        assert N == 17
        ack, rows = pair.command("color.patches", {"output": "p/a", "action": "start", **SEQ})
        assert ack["ok"], ack
        F = ack["frame"]
        assert ack["result"]["first_frame"] == F
        rows += pair.run(N + 2)
        played = 0
        for k, p, n in rows:
            assert np.array_equal(n, p), f"frame {k}: the node's canvas differs from the primary's"
            if F <= k < F + N:  # wall frame k - F, exactly the sequence's codes
                assert np.array_equal(n[..., :3], program.codes(k - F)), f"wall frame {k - F}"
                played += 1
            else:
                assert not np.array_equal(n[..., :3], program.codes(0))
        assert played == N
        assert any(f"colour patches on p/a: stage frames {F}..{F + N - 1} ({N} wall frames, calibration off), "
                   "with the primary" in s for s in pair.node_said), pair.node_said
        assert pair.console.cluster_show(pair.frame).patches == ()  # played to its end: no longer sent
        assert not any("stopped" in s for s in pair.node_said)  # an end is not a stop

        # started again, stopped after 3 frames: the node stops on the primary's frame
        ack, rows = pair.command("color.patches", {"output": "p/a", "action": "start", **SEQ})
        assert ack["ok"], ack
        S = ack["frame"]
        rows += pair.run(3)
        ack, rows2 = pair.command("color.patches", {"output": "p/a", "action": "stop"})
        assert ack["ok"] and ack["result"]["stopped"], ack
        T = ack["frame"]
        rows += rows2 + pair.run(2)
        for k, p, n in rows:
            assert np.array_equal(n, p), f"frame {k}"
            if S <= k < T:
                assert np.array_equal(n[..., :3], program.codes(k - S)), (k, S, T)
            else:  # the composition (the slate of wall frame 0 is not on the wall)
                assert not np.array_equal(n[..., :3], program.codes(0)), (k, S, T)
        assert any(f"colour patches on p/a stopped at frame {T}, with the primary" in s for s in pair.node_said)
        assert pair.follower.counts["patches"] == 2
    finally:
        pair.close()


@pytest.mark.gl
@pytest.mark.timeout(120)
def test_a_node_joining_mid_playback_shows_the_wall_frame_of_the_stage_frame(tmp_path, parts, egl) -> None:
    """The show comes with the snapshot: a node that starts after color.patches plays frame k of the sequence
    at stage frame F + k like the others, not from its own first frame."""
    from stagectl.commands._node_show import ShowFollower
    from stagectl.render.patch_player import patch_program

    pair = Pair(tmp_path, parts, egl)
    try:
        ack, _ = pair.command("color.patches", {"output": "p/a", "action": "start", **SEQ})
        assert ack["ok"], ack
        F = ack["frame"]
        pair.run(4)
        # a fresh node (another machine for output p/a): its Node and follower from scratch, the runtime reused
        pair.node.close()
        pair.node = parts.node("n1-spare", pair.primary)
        pair.follower = ShowFollower(pair.follower.stage, "n1", pair.n_runtime, pair.node,
                                     pair.node_said.append, "n1")
        pair.n_runtime.output.renderer.patches.clear()
        _connect(pair.primary, [pair.node])
        while pair.node.recv_state(0) is not None:  # the snapshot: a frame already drawn
            pass
        program = patch_program(pair.stage, "p/a", **SEQ)
        for k, p, n in pair.run(3):
            assert np.array_equal(n[..., :3], program.codes(k - F)), (k, F)
            assert np.array_equal(n, p)
    finally:
        pair.close()


# ======================================================================================= processes


class _Frames:
    """Every frame a shared-memory sink publishes (read in a thread, write by write): frame number -> pixels
    and the instant (monotonic ns) the writer stamped it with."""

    def __init__(self, name: str) -> None:
        from stagectl.render.sink import SinkReader

        self.reader = SinkReader(name, timeout_s=60)
        self.frames: dict[int, np.ndarray] = {}
        self.stamps: dict[int, int] = {}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        done = 0
        while not self.stop.is_set():
            n = self.reader.write_count
            if n <= done:
                time.sleep(0.001)
                continue
            for w in range(max(done + 1, n - self.reader.slots + 1), n + 1):
                got = self.reader.read(w)
                if got is not None:
                    self.frames[got.frame_no] = got.pixels.copy()
                    self.stamps[got.frame_no] = got[1]
            done = n

    def until(self, frame: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(k >= frame for k in list(self.frames)):
            assert time.monotonic() < deadline, f"no frame >= {frame}; got {sorted(self.frames)[-5:]}"
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        self.t.join(2)
        self.reader.close()


@pytest.mark.gl
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_stagectl_node_follows_content_patches_and_reload_of_stagectl_run(tmp_path: Path) -> None:
    """`stagectl run --cluster --sink` (console on, OSC from 127.0.0.1) and `stagectl node --sink` rendering
    p/a, both as processes on one stage file: content.select, color.patches and stage.reload sent over OSC
    change the NODE's canvas, read from its shared-memory sink, exactly from the frame each was acknowledged
    at, never before (frame numbers are shared across the cluster)."""
    import uuid

    from stagectl.render.patch_player import patch_program
    from stagectl.stage import load_stage

    from .stage_run import OscClient, console_yaml, stage_ports
    from .test_cluster_features import _Proc

    ports = stage_ports(tcp=("zmq", "zmq_state", "web", "state", "sync"))
    name = f"Show {uuid.uuid4().hex[:8]}"  # its own shared-memory names

    def text(at: str) -> str:
        return (_stage_text(at=at).replace("name: Show", f"name: {name}")
                .replace("port: 40000", f"port: {ports['tracking']}") + console_yaml(ports))

    stage = tmp_path / "stage.yaml"
    stage.write_text(text("[0, 4]"), encoding="utf-8")
    _plate(tmp_path / "scenes" / "red.png", RED)
    program = patch_program(load_stage(stage), "p/a", **SEQ)  # the reference, before the stage is reloaded
    N = program.frames
    where = f"127.0.0.1:{ports['state']},{ports['sync']}"
    primary = _Proc("run", str(stage), "--cluster", where, "--sink", "--preview-every", "0", "--duration", "150",
                    "--no-realtime", "--state-file", str(tmp_path / "operator.json"))
    node = watch = osc = None
    try:
        primary.wait_for(r"cluster primary: frame states on 127\.0\.0\.1:")
        primary.wait_for(r"OSC commands on udp://127\.0\.0\.1:\d+")
        node = _Proc("node", str(stage), "--name", "n1", "--primary", where, "--sink", "--duration", "150")
        ring = node.wait_for(r"node n1: output p/a .* shared memory '([A-Za-z0-9_]+)'").group(1)
        watch = _Frames(ring)
        node.wait_for(r"^\[\d\d:.*node n1: frame \d+")  # following and rendering
        watch.until(0)
        osc = OscClient(ports["osc"])
        command, ok, F, _ = osc.send("/stagectl/content/select", "scenes/red.png")
        assert (command, ok) == ("content.select", 1), (command, ok, F)
        watch.until(F + 3)
        command, ok, S, result = osc.keyed("/stagectl/color/patches", {"output": "p/a", "action": "start", **SEQ})
        assert (command, ok) == ("color.patches", 1) and result["first_frame"] == S, result
        watch.until(S + 20)
        stage.write_text(text("[0, 8]"), encoding="utf-8")
        command, ok, R, _ = osc.send("/stagectl/stage/reload")
        assert (command, ok) == ("stage.reload", 1), (command, ok, R)
        watch.until(R + 3)
    finally:
        if osc is not None:
            osc.close()
        if watch is not None:
            watch.close()
        out_node = node.stop() if node is not None else ""
        out_primary = primary.stop()
    frames = dict(watch.frames)
    assert "Traceback" not in out_node and "Traceback" not in out_primary, out_node + out_primary
    seen = {"before": 0, "red": 0, "patches": 0, "reloaded": 0}
    for k, px in sorted(frames.items()):
        if k < F:
            assert _share(px, RED) < 0.01, k
            seen["before"] += 1
        elif S <= k < S + N:
            assert np.array_equal(px[..., :3], program.codes(k - S)), f"wall frame {k - S} on stage frame {k}"
            seen["patches"] += 1
        elif k < R:
            assert _share(px, RED) > 0.99, k
            seen["red"] += 1
        else:  # the reloaded stage: p/a's mapping 4 rows lower, still red
            assert np.all(px[4:8, :64, :3] == 0) and _share(px[4:], RED) > 0.99, k
            seen["reloaded"] += 1
    assert all(seen.values()), seen
    assert f"content is now" in out_node and f"from frame {F}, with the primary's content.select" in out_node
    assert f"colour patches on p/a: stage frames {S}..{S + N - 1}" in out_node and "stopped at" not in out_node
    assert f"reloaded at frame {R}, with the primary's stage.reload" in out_node, out_node
    assert re.search(r"followed 1 stage reloads, 1 content changes and 1 colour patch playbacks of the primary;",
                     out_node), out_node
