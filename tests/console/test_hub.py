"""The control hub with a real frame-loop thread: acks carry the frame a change took effect on, order holds
across threads, nothing runs without a frame, bad commands change nothing, events are sequenced, effects can
refuse a command, the state is on disk before the ack."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from stagectl.console.commands import CommandError
from stagectl.console.hub import ControlHub
from stagectl.core.camera import OperatorFlags
from stagectl.core.features import FeatureState, LightCard

from .cases import BAD
from .conftest import FrameLoop


def add_two_cards(hub: ControlHub) -> None:
    for rect in ([0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.7]):
        assert hub.submit("card.add", {"wall": "main", "rect": rect}, "test")["ok"]


def test_read_only_commands_answer_without_frames(hub):
    t0 = time.monotonic()
    ack = hub.submit("status", {}, "test")
    assert ack == {"ok": True, "command": "status", "frame": None, "seq": 0, "result": {}}
    status = {"frame": 7, "fps": 23.976, "cameras": {}}
    hub.publish_status(status)
    assert hub.submit("status", None, "test")["result"] == status
    ack = hub.submit("state", {}, "test")
    assert ack["result"] == {"seq": 0, "state": hub.state.to_json()}
    ack = hub.submit("help", {"command": "card.move"}, "test")
    assert [c["name"] for c in ack["result"]["commands"]] == ["card.move"]
    assert time.monotonic() - t0 < 1.5  # no frame runs: a command that waited for one would take submit's 2 s


def test_ack_frame_is_the_frame_it_was_applied_on(hub, frame_loop):
    acks = []
    for i in range(25):
        acks.append(hub.submit("camera.set", {"camera": "cam-a", "delay_frames": i / 10}, "test"))
    applied = {a.seq: (k, a) for k, a in frame_loop.all_applied()}
    assert [a["seq"] for a in acks] == list(range(1, 26))
    for i, ack in enumerate(acks):
        assert ack["ok"], ack
        k, rec = applied[ack["seq"]]
        assert ack["frame"] == k == rec.frame
        assert rec.args["delay_frames"] == i / 10 and rec.who == "test"
        assert rec.state.camera("cam-a").delay_frames == i / 10
        assert rec.previous.camera("cam-a").delay_frames == ((i - 1) / 10 if i else 0.0)
    frames = [a["frame"] for a in acks]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)  # one submit waits for its frame


def test_order_is_preserved_across_threads(hub, frame_loop):
    n_threads, n = 4, 15
    for t in range(n_threads):
        assert hub.submit("card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1], "id": f"t{t}"}, f"test:{t}")[
            "ok"
        ]
    base_seq = hub.seq
    sub = hub.subscribe(queue_size=1000)
    acks: dict[int, list[dict]] = {t: [] for t in range(n_threads)}
    start = threading.Barrier(n_threads)

    def worker(t: int) -> None:
        start.wait()
        for j in range(n):
            acks[t].append(hub.submit("card.move", {"id": f"t{t}", "u": j / 100, "v": 0.5}, f"test:{t}"))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert all(a["ok"] for t in acks for a in acks[t])
    for t in acks:  # each thread's commands in its own order, each in a later (or the same) frame
        seqs = [a["seq"] for a in acks[t]]
        assert seqs == sorted(seqs)
        assert [a["frame"] for a in acks[t]] == sorted(a["frame"] for a in acks[t])
    all_seqs = sorted(a["seq"] for t in acks for a in acks[t])
    assert all_seqs == list(range(base_seq + 1, base_seq + 1 + n_threads * n))
    events = [sub.get(1.0) for _ in range(n_threads * n)]
    assert [e["seq"] for e in events] == all_seqs
    by_seq = {a["seq"]: (t, a) for t in acks for a in acks[t]}
    for e in events:
        t, a = by_seq[e["seq"]]
        assert e["who"] == f"test:{t}" and e["frame"] == a["frame"] and e["command"] == "card.move"
    log = hub.log
    assert [r["seq"] for r in log] == list(range(1, hub.seq + 1))
    assert [a.seq for _, a in frame_loop.all_applied()] == list(range(1, hub.seq + 1))
    for t in range(n_threads):
        card = next(c for c in hub.features.light_cards if c.id == f"t{t}")
        assert card.rect == pytest.approx(((n - 1) / 100 - 0.05, 0.45, (n - 1) / 100 + 0.05, 0.55))
    sub.close()


def test_no_frame_no_change(hub, state_path):
    t0 = time.monotonic()
    ack = hub.submit("inner.set", {"enabled": False}, "test", timeout_s=0.2)
    dt = time.monotonic() - t0
    assert ack == {
        "ok": False,
        "command": "inner.set",
        "error": "inner.set: not applied: no frame ran within 0.2 s",
    }
    assert 0.19 <= dt < 1.9  # it waited its own 0.2 s, not submit's default 2 s
    assert hub.apply_pending(0) == []  # withdrawn: a later frame does not apply it
    assert hub.state.inner_enabled and hub.seq == 0 and not state_path.exists()


@pytest.mark.parametrize("name,args,error", BAD, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD)])
def test_bad_commands_change_nothing(hub, frame_loop, state_path, name, args, error):
    add_two_cards(hub)
    state, seq, saved = hub.state, hub.seq, state_path.read_bytes()
    sub = hub.subscribe()
    ack = hub.submit(name, args, "test")
    assert ack["ok"] is False and ack["command"] == name and set(ack) == {"ok", "command", "error"}
    if error is not None:
        assert ack["error"] == error
    time.sleep(0.05)  # a few frames pass
    assert hub.state is state and hub.seq == seq and state_path.read_bytes() == saved
    assert sub.get(0.05) is None
    sub.close()


def test_state_is_on_disk_before_the_ack_and_restored(demo, hub, frame_loop, state_path):
    for i in range(5):
        ack = hub.submit("card.add", {"wall": "main", "rect": [i / 10, 0, i / 10 + 0.05, 0.1]}, "test")
        doc = json.loads(state_path.read_text())
        assert doc["seq"] >= ack["seq"]
        assert f"card-{i + 1}" in [c["id"] for c in doc["state"]["light_cards"]]
    ack = hub.submit("output.blackout", {"output": "all", "on": True}, "test")
    assert json.loads(state_path.read_text())["state"]["blackout_all"] is True
    frame_loop.stop()
    again = ControlHub(demo, state_path)
    assert again.warnings == [] and again.state == hub.state and again.seq == ack["seq"] == 6
    assert again.flags == OperatorFlags(blackout=True) and again.features == hub.features
    loop = FrameLoop(again, first=1000).start()
    try:
        ack = again.submit("card.remove", {"id": "card-3"}, "test")
        assert ack["seq"] == 7 and ack["frame"] >= 1000  # the sequence continues across restarts
    finally:
        loop.stop()


def test_corrupt_state_file_is_set_aside(demo, state_path):
    state_path.write_text(
        '{"format": "stagectl.operator-state", "version": 1, "seq": 2, "state": {"blackout": 3}}'
    )
    hub = ControlHub(demo, state_path)
    assert len(hub.warnings) == 1
    assert hub.warnings[0].startswith(
        f"{state_path}: state.blackout: expected a list, got 3; set aside as {state_path.name}.bad-"
    )
    assert hub.seq == 0 and hub.features == demo.render.features
    assert not state_path.exists()


def test_features_are_cached_and_flags_follow(hub, frame_loop):
    f0 = hub.features
    time.sleep(0.05)
    assert hub.features is f0 and f0 == FeatureState()
    hub.submit("card.add", {"wall": "ceiling", "rect": [0.2, 0.2, 0.4, 0.3], "intensity": 3}, "test")
    assert hub.features == FeatureState(
        light_cards=(LightCard("card-1", "ceiling", (0.2, 0.2, 0.4, 0.3), intensity=3.0),)
    )
    f1 = hub.features
    hub.submit("inner.set", {"enabled": False}, "test")  # flags change, features do not
    assert hub.features is f1 and hub.flags == OperatorFlags(inner_enabled=False)
    hub.submit("output.blackout", {"output": "all", "on": True}, "test")
    assert hub.flags == OperatorFlags(blackout=True, inner_enabled=False)


def test_snapshot_and_events_continue_one_another(hub, frame_loop):
    add_two_cards(hub)
    early = hub.subscribe()
    snap = hub.snapshot()
    assert snap["seq"] == 2 and snap["state"] == hub.state.to_json()
    assert [w["name"] for w in snap["stage"]["walls"]] == ["main", "ceiling"]
    assert [o["key"] for o in snap["stage"]["outputs"]] == [
        "tessera-a/out1",
        "tessera-a/out2",
        "tessera-b/out3",
    ]
    assert snap["stage"]["cameras"] == ["cam-a"] and snap["stage"]["tracking"] == ["tracker-a"]
    json.dumps(snap, allow_nan=False)
    for i in range(3):
        hub.submit("card.set", {"id": "card-1", "intensity": i}, "web:alice")
    late = hub.subscribe()
    snap2 = hub.snapshot()
    hub.submit("card.remove", {"id": "card-2"}, "osc:127.0.0.1:9000")
    evs = [early.get(1.0) for _ in range(4)]
    assert [e["seq"] for e in evs] == [3, 4, 5, 6]
    assert evs[0]["who"] == "web:alice" and evs[0]["args"] == {"id": "card-1", "intensity": 0.0}
    assert evs[-1]["state"] == hub.state.to_json() and evs[-1]["type"] == "state"
    ev = late.get(1.0)
    assert snap2["seq"] == 5 and ev["seq"] == snap2["seq"] + 1
    hub.publish_status({"frame": 1})
    assert early.get(1.0) == {"type": "status", "status": {"frame": 1}}
    early.close()
    late.close()


def test_stage_description_corners(hub, demo):
    """Facet corners against the wall geometry's own raster -> stage mapping (top-left, top-right,
    bottom-right, bottom-left of the raster)."""
    import numpy as np

    for w, d in zip(demo.walls, hub.snapshot()["stage"]["walls"]):
        g = w.geometry
        assert len(d["facets"]) == g.facet_count and d["raster"] == list(w.raster)
        for f, quad in enumerate(d["facets"]):
            x0, x1, H = g.x0[f], g.x1[f], g.height_px
            ref = g.raster_to_stage(np.array([[x0, 0], [x1 - 1e-9, 0], [x1 - 1e-9, H], [x0, H]], dtype=float))
            assert np.allclose(quad, ref, atol=1e-5)
    main = hub.snapshot()["stage"]["walls"][0]
    zs = [p[2] for quad in main["facets"] for p in quad]
    assert min(zs) == pytest.approx(0.0, abs=1e-6) and max(zs) == pytest.approx(
        3.0, abs=1e-6
    )  # 6 rows of 0.5 m


def test_slow_subscriber_lags_on_state_and_drops_status(hub, frame_loop):
    sub = hub.subscribe(queue_size=4)
    hub.submit("card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1]}, "test")
    for i in range(20):
        hub.publish_status({"frame": i})
    evs = []
    while (e := sub.get(0.05)) is not None:
        evs.append(e)
    assert [e["type"] for e in evs][0] == "state" and evs[0]["seq"] == 1  # never pushed out by status
    assert len(evs) == 4 and sub.dropped_status == 17 and not sub.lagged
    assert evs[-1] == {"type": "status", "status": {"frame": 19}}
    for i in range(6):  # more state events than the queue holds
        hub.submit("card.set", {"id": "card-1", "intensity": i}, "test")
    assert sub.lagged
    assert sub.get(0.5) == {"type": "lagged", "seq": 7}
    snap = sub.resync()
    assert snap["seq"] == 7 and not sub.lagged and snap["state"] == hub.state.to_json()
    assert sub.get(0.05) is None
    hub.submit("card.set", {"id": "card-1", "intensity": 9}, "test")
    assert sub.get(1.0)["seq"] == 8
    sub.close()


def test_effects_may_refuse_and_are_rolled_back(hub, frame_loop, stage_dir, state_path):
    (stage_dir / "scenes").mkdir()
    (stage_dir / "scenes" / "scene.glb").write_bytes(b"glTF")
    seen = []

    def refuse(args, state):
        seen.append((args, state.content))
        raise CommandError("content.select: scene.glb: not a glTF 2.0 file")

    hub.register_effect("content.select", refuse)
    sub = hub.subscribe()
    ack = hub.submit("content.select", {"content": "scenes/scene.glb"}, "test")
    assert ack == {
        "ok": False,
        "command": "content.select",
        "error": "content.select: scene.glb: not a glTF 2.0 file",
    }
    assert seen == [
        ({"content": str(stage_dir / "scenes" / "scene.glb")}, str(stage_dir / "scenes" / "scene.glb"))
    ]  # the state it leads to
    assert hub.state.content == "procedural" and hub.seq == 0 and hub.log == [] and not state_path.exists()
    assert sub.get(0.05) is None

    hub.register_effect("content.select", lambda args, state: {"loaded": "glb", "meshes": 3})
    ack = hub.submit("content.select", {"content": "scenes/scene.glb"}, "test")
    assert ack["ok"] and ack["result"] == {
        "content": str(stage_dir / "scenes" / "scene.glb"),
        "loaded": "glb",
        "meshes": 3,
    }
    assert sub.get(1.0)["seq"] == 1

    def buggy(args, state):
        raise RuntimeError("boom")

    hub.register_effect("inner.set", buggy)
    ack = hub.submit("inner.set", {"enabled": False}, "test")
    assert ack == {"ok": False, "command": "inner.set", "error": "inner.set: failed: RuntimeError: boom"}
    assert hub.state.inner_enabled and hub.seq == 1
    hub.register_effect("inner.set", None)
    assert hub.submit("inner.set", {"enabled": False}, "test")["ok"]
    with pytest.raises(ValueError, match="'status' is not a command that changes the state"):
        hub.register_effect("status", lambda a, s: None)
    sub.close()


def test_submit_from_the_frame_loop_thread_does_not_deadlock(hub, frame_loop):
    inner = []
    hub.register_effect(
        "inner.set",
        lambda args, state: (
            inner.append(hub.submit("card.add", {"wall": "main", "rect": [0, 0, 1, 1]}, "test")) or None
        ),
    )
    assert hub.submit("inner.set", {"enabled": False}, "test")["ok"]
    assert inner[0]["ok"] is False and "called from the frame loop's thread" in inner[0]["error"]


def test_stage_reload(hub, frame_loop, stage_dir):
    add_two_cards(hub)
    path = stage_dir / "demo.yaml"
    good = path.read_text()
    path.write_text(
        good.replace("name: Demo volume", "name: Demo volume B").replace("radius: 6.0", "radius: -1")
    )
    ack = hub.submit("stage.reload", {}, "ctl")
    assert ack["ok"] is False
    line = good.splitlines().index(next(t for t in good.splitlines() if t.strip().startswith("radius:"))) + 1
    assert ack["error"] == f"stage.reload: {path}:{line}: walls[0].radius: expected a value >= 0.1, got -1"
    assert hub.stage.name == "Demo volume" and hub.seq == 2

    path.write_text(good.replace("name: Demo volume", "name: Demo volume B"))
    stages_seen = []

    def refuse(args, state):
        stages_seen.append(hub.stage.name)
        raise CommandError("stage.reload: outputs changed while clustered; restart the nodes first")

    hub.register_effect("stage.reload", refuse)
    ack = hub.submit("stage.reload", {}, "ctl")
    assert ack["error"] == "stage.reload: outputs changed while clustered; restart the nodes first"
    assert stages_seen == ["Demo volume B"]  # the effect sees the new stage ...
    assert (
        hub.stage.name == "Demo volume" and hub.snapshot()["stage"]["name"] == "Demo volume"
    )  # ... rolled back
    hub.register_effect("stage.reload", None)
    ack = hub.submit("stage.reload", {}, "ctl")
    assert ack["ok"] and ack["result"] == {"stage": "Demo volume B", "warnings": []} and ack["seq"] == 3
    assert hub.stage.name == "Demo volume B" and hub.snapshot()["stage"]["name"] == "Demo volume B"
    assert [c.id for c in hub.features.light_cards] == ["card-1", "card-2"]  # the operator state is kept


def test_previews_and_close(hub):
    hub.apply_pending(41)
    hub.publish_previews({"tessera-a/out1": b"\xff\xd8jpeg"})
    assert hub.previews() == {"tessera-a/out1": (41, b"\xff\xd8jpeg")}
    # a thumbnail made off the frame loop carries the frame it shows, older than the last frame seen
    hub.publish_previews({"tessera-a/out1": (38, b"\xff\xd8older")})
    assert hub.previews() == {"tessera-a/out1": (38, b"\xff\xd8older")}
    result = {}
    th = threading.Thread(
        target=lambda: result.update(hub.submit("inner.set", {"enabled": False}, "test", 5.0))
    )
    th.start()
    deadline = time.monotonic() + 2
    while not hub._queue and time.monotonic() < deadline:
        time.sleep(0.005)
    sub = hub.subscribe()
    hub.close()
    th.join(2)
    assert result == {
        "ok": False,
        "command": "inner.set",
        "error": "inner.set: not applied: the stage is shutting down",
    }
    assert sub.closed and sub.get(0.01) is None
    assert (
        hub.submit("inner.set", {"enabled": False}, "test")["error"]
        == "inner.set: not applied: the stage is shutting down"
    )


def test_path_fixture_is_private(state_path, stage_dir):
    assert Path(state_path).parent == stage_dir.parent


def test_thumbnails_keep_the_frame_they_show():
    """live.thumbnails: a bare canvas becomes JPEG bytes, a ``(frame, canvas)`` keeps its frame."""
    import cv2
    import numpy as np

    from stagectl.console.live import thumbnails

    img = np.zeros((20, 40, 4), np.uint8)
    img[..., 0] = 255  # red, RGBA
    out = thumbnails({"a": img, "b": (7, img)}, width=10)
    assert isinstance(out["a"], bytes) and out["b"][0] == 7
    decoded = cv2.imdecode(np.frombuffer(out["b"][1], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (5, 10, 3) and decoded[..., 2].mean() > 240 and decoded[..., :2].mean() < 15
