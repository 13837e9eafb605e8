"""The console never touches files outside the stage's ``console.paths`` folders: record.start, color.set lut
and content.select with an absolute outside path, a ``..`` path and a symbolic link that escapes are
refused without echoing file contents or telling whether the outside file exists, nothing outside is made,
and the refusal is logged with who asked. Real files and links in the test's folder, a real hub with
``stagectl run``'s own effects (tracking takes written by :class:`~stagectl.tracking.recording.LiveTake`) and
a frame-loop thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from stagectl.console.hub import ControlHub
from stagectl.console.live import RunHandles, register_effects
from stagectl.core.errors import ConfigErrors
from stagectl.runtime import StageRuntime
from stagectl.stage.loader import load_stage
from stagectl.stage.model import ConsolePaths

from .conftest import FrameLoop

#: the first line of the outside file: it must never come back to an operator
SECRET = "TOPSECRET root:$6$hash:19000:0:99999:7:::"


def tree(d: Path) -> list[str]:
    """Everything under ``d`` (files, folders, links), relative, sorted."""
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the stage's, with a file whose first line is :data:`SECRET` (also as a .cube and a
    .png: a LUT or a plate that read_cube or a loader would quote)."""
    d = tmp_path / "outside"
    d.mkdir()
    for name in ("shadow", "secret.cube", "plate.png"):
        (d / name).write_text(SECRET + "\n")
    return d


class Run:
    """A hub on the demo stage with ``stagectl run``'s effects (no renderer: ``--no-render``) and a frame
    loop; what the run said, and the takes it recorded."""

    def __init__(self, stage, state_path: Path) -> None:
        self.hub = ControlHub(stage, state_path)
        self.said: list[str] = []
        self.handles = RunHandles(StageRuntime(stage))
        register_effects(self.hub, self.handles, self.said.append)
        self.hub.on_refusal(
            lambda r: self.said.append(f"refused {r['command']} from {r['who']}: {r['error']}")
        )
        self.loop = FrameLoop(self.hub)

    def close(self) -> None:
        if self.loop._thread.is_alive():
            self.loop.stop()
        self.handles.close_takes()
        self.hub.close()
        assert not self.loop.errors, self.loop.errors


@pytest.fixture
def run(demo, state_path):
    r = Run(demo, state_path)
    r.loop.start()
    yield r
    r.close()


def refused(ack: dict, command: str, arg: str) -> str:
    assert not ack["ok"], ack
    err = ack["error"]
    assert err.startswith(f"{command}: {arg}: refused: "), err
    assert "\n" not in err and "TOPSECRET" not in err and "$6$" not in err, err
    return err


def escapes(stage_dir: Path, outside: Path, name: str, folder: str) -> dict[str, str]:
    """The three ways out of ``folder`` (beside the stage file) to ``outside/name``: an absolute path, a
    ``..`` path and a link inside the folder that points out (made here)."""
    (stage_dir / folder).mkdir(exist_ok=True)
    link = stage_dir / folder / "escape"
    link.symlink_to(outside, target_is_directory=True)
    return {
        "absolute": str(outside / name),
        "dotdot": f"{folder}/../../outside/{name}",
        "symlink": f"{folder}/escape/{name}",
    }


# ---------------------------------------------------------------------------------------------- record.start


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_record_start_outside_the_takes_folder_is_refused_and_makes_nothing(
    run, stage_dir, outside, way, caplog
):
    before = tree(outside)
    path = escapes(stage_dir, outside, "new/take.stgtake", "takes")[way]
    caplog.set_level(logging.WARNING, logger="stagectl.console")
    ack = run.hub.submit("record.start", {"path": path}, "web:alice")
    err = refused(ack, "record.start", "path")
    assert str(outside) not in err or way == "absolute", err  # a link's target or a resolved path never shows
    assert tree(outside) == before  # no folder made, no take written
    assert run.hub.state.recording is None and run.hub.seq == 0 and run.hub.log == []
    # logged with who asked: the hub's record, the logger, and stagectl run's own line
    rec = run.hub.refusals[-1]
    assert (rec["who"], rec["command"], rec["arg"], rec["folder"], rec["given"]) == (
        "web:alice",
        "record.start",
        "path",
        "takes",
        path,
    )
    assert rec["error"] == err and rec["time_utc"].endswith("Z")
    assert any("refused record.start from web:alice" in r.getMessage() for r in caplog.records), caplog.text
    assert f"refused record.start from web:alice: {err}" in run.said
    # the takes folder itself still works, subfolders included (made inside it)
    ack = run.hub.submit("record.start", {"path": "takes/day1/scene1.stgtake"}, "web:alice")
    assert ack["ok"], ack
    assert ack["result"]["path"] == str(stage_dir / "takes" / "day1" / "scene1.stgtake")
    assert run.hub.submit("record.stop", {}, "web:alice")["ok"]
    assert (stage_dir / "takes" / "day1" / "scene1.stgtake").is_file()


def test_record_start_default_path_is_in_the_takes_folder_of_the_stage_file(stage_dir, tmp_path):
    rec = tmp_path / "recordings"
    text = (stage_dir / "flat_wall.yaml").read_text() + f"\nconsole:\n  paths: {{takes: {rec}}}\n"
    (stage_dir / "own.yaml").write_text(text)
    hub = ControlHub(load_stage(stage_dir / "own.yaml"), tmp_path / "op.json")
    loop = FrameLoop(hub).start()
    try:
        ack = hub.submit("record.start", {}, "test")
        assert ack["ok"] and Path(ack["result"]["path"]).parent == rec, ack
        assert hub.submit("record.stop", {}, "test")["ok"]
        ack = hub.submit("record.start", {"path": "takes/t.stgtake"}, "test")  # takes/ is not the folder now
        refused(ack, "record.start", "path")
        assert f"not inside the take folder {rec}/ (console.paths.takes)" in ack["error"], ack
    finally:
        loop.stop()
        hub.close()


def test_a_link_swapped_in_after_validation_is_refused_before_anything_is_made(demo, state_path, outside):
    """record.start is checked again at the frame boundary, right before folders are made: a link put into
    the takes folder between the command's validation and its frame is refused there."""
    r = Run(demo, state_path)  # no frame loop: this test runs the frame boundary itself
    try:
        takes = Path(demo.path).parent / "takes"
        takes.mkdir()
        acks: list[dict] = []
        args = {"path": "takes/day/t.stgtake"}
        t = threading.Thread(
            target=lambda: acks.append(r.hub.submit("record.start", args, "zmq:desk", timeout_s=10.0))
        )
        t.start()
        deadline = time.monotonic() + 10
        while not r.hub._queue and time.monotonic() < deadline:  # validated and queued
            time.sleep(0.005)
        assert r.hub._queue
        (takes / "day").symlink_to(outside, target_is_directory=True)
        r.hub.apply_pending(1)
        t.join(10)
        refused(acks[0], "record.start", "path")
        assert tree(outside) == ["plate.png", "secret.cube", "shadow"]
        assert r.hub.state.recording is None and r.hub.refusals[-1]["who"] == "zmq:desk"
    finally:
        r.close()


# --------------------------------------------------------------------------------------------- color.set lut


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_lut_outside_the_luts_folder_is_refused_without_its_contents(run, stage_dir, outside, way):
    paths = escapes(stage_dir, outside, "secret.cube", "luts")
    ack = run.hub.submit("color.set", {"target": "main", "lut": paths[way]}, "osc:10.0.0.7:9000")
    err = refused(ack, "color.set", "lut")
    assert str(outside) not in err or way == "absolute", err
    assert run.hub.state.features.color_of("main") is None and run.hub.seq == 0
    assert run.hub.refusals[-1]["who"] == "osc:10.0.0.7:9000"
    # the same answer whether the outside file exists or not
    os.remove(outside / "secret.cube")
    again = run.hub.submit("color.set", {"target": "main", "lut": paths[way]}, "osc:10.0.0.7:9000")
    assert again == ack
    # a LUT in the folder, also through a link that stays inside it, still works
    (stage_dir / "luts" / "current.cube").symlink_to(stage_dir / "luts" / "swap.cube")
    ack = run.hub.submit("color.set", {"target": "main", "lut": "luts/current.cube"}, "test")
    assert ack["ok"], ack
    assert run.hub.state.lut_path("main") == str(stage_dir / "luts" / "swap.cube")


def test_a_malformed_lut_inside_the_folder_is_still_explained(run, stage_dir):
    """Inside the folder, the LUT's own error (with its line) is the operator's to see; a name that is no
    text at all is an argument error, not a refusal."""
    (stage_dir / "luts" / "bad.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n1 x 0\n")
    ack = run.hub.submit("color.set", {"target": "main", "lut": "luts/bad.cube"}, "test")
    assert ack["error"] == (
        "color.set: lut: luts/bad.cube:3: expected a data line of three numbers, got '1 x 0'"
    )
    ack = run.hub.submit("color.set", {"target": "main", "lut": "luts/\x00.cube"}, "test")
    refused(ack, "color.set", "lut")  # an embedded NUL cannot be resolved: refused, never raised
    ack = run.hub.submit("color.set", {"target": "main", "lut": "luts"}, "test")  # the folder itself
    refused(ack, "color.set", "lut")
    assert [r["given"] for r in run.hub.refusals] == ["luts/\x00.cube", "luts"]


# -------------------------------------------------------------------------------------------- content.select


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_content_outside_the_content_folder_is_refused(run, stage_dir, outside, way):
    paths = escapes(stage_dir, outside, "plate.png", "scenes")
    ack = run.hub.submit("content.select", {"content": paths[way]}, "web:bob")
    err = refused(ack, "content.select", "content")
    assert str(outside) not in err or way == "absolute", err  # the resolved outside path is not shown
    assert run.hub.state.content == "procedural" and run.hub.seq == 0
    assert run.hub.refusals[-1]["who"] == "web:bob"
    os.remove(outside / "plate.png")
    assert run.hub.submit("content.select", {"content": paths[way]}, "web:bob") == ack
    (stage_dir / "scenes" / "set.glb").write_bytes(b"glTF")
    ack = run.hub.submit("content.select", {"content": "scenes/set.glb"}, "web:bob")
    assert ack["ok"] and ack["result"]["content"] == str(stage_dir / "scenes" / "set.glb"), ack


# ------------------------------------------------------------------------------------------------ stage file


def test_console_paths_in_the_stage_file(stage_dir, tmp_path):
    looks = tmp_path / "looks"
    looks.mkdir()
    (looks / "warm.cube").write_text((stage_dir / "luts" / "swap.cube").read_text())
    text = (stage_dir / "flat_wall.yaml").read_text()
    p = stage_dir / "paths.yaml"
    p.write_text(text + f"\nconsole:\n  paths: {{takes: recordings/, content: sets, luts: {looks}}}\n")
    stage = load_stage(p)
    assert stage.console.paths == ConsolePaths(stage_dir / "recordings", stage_dir / "sets", looks)
    defaults = ConsolePaths(stage_dir / "takes", stage_dir / "scenes", stage_dir / "luts")
    assert load_stage(stage_dir / "flat_wall.yaml").console.paths == defaults  # no console section
    assert load_stage(stage_dir / "demo.yaml").console.paths == defaults
    hub = ControlHub(stage, tmp_path / "op.json")
    loop = FrameLoop(hub).start()
    try:
        ack = hub.submit("color.set", {"target": "wall", "lut": "luts/swap.cube"}, "test")
        assert "not inside the LUT folder" in refused(ack, "color.set", "lut")
        assert hub.submit("color.set", {"target": "wall", "lut": str(looks / "warm.cube")}, "test")["ok"]
        assert hub.submit("record.start", {"path": "recordings/a.stgtake"}, "test")["ok"]
    finally:
        loop.stop()
        hub.close()
    p.write_text(text + "\nconsole:\n  paths: {takes: t, lut: l}\n")
    with pytest.raises(ConfigErrors) as ei:
        load_stage(p)
    line = next(i for i, t in enumerate(p.read_text().splitlines(), 1) if "lut: l" in t)
    expected = "console.paths.lut: unknown key; expected one of: content, luts, takes"
    assert str(ei.value) == f"{p}:{line}: {expected}"


def test_a_restored_state_with_outside_paths_keeps_neither(demo, stage_dir, outside, tmp_path):
    """The operator state file is only written from accepted commands; one edited by hand (or written before
    paths were confined) to point outside is not loaded from there."""
    (outside / "secret.cube").write_text((stage_dir / "luts" / "swap.cube").read_text())
    state = tmp_path / "op.json"
    hub = ControlHub(demo, state)
    loop = FrameLoop(hub).start()
    try:
        assert hub.submit("color.set", {"target": "main", "exposure": 1, "lut": "luts/swap.cube"}, "t")["ok"]
    finally:
        loop.stop()
        hub.close()
    doc = json.loads(state.read_text())
    doc["state"]["content"] = str(outside / "plate.png")
    doc["state"]["color"]["walls"]["main"]["lut"] = str(outside / "secret.cube")
    state.write_text(json.dumps(doc))
    back = ControlHub(demo, state)
    try:
        assert back.state.content == "procedural"
        cc = back.state.features.color_of("main")
        assert cc.exposure == 1 and cc.lut is None and back.state.lut_path("main") is None
        warns = "\n".join(back.warnings)
        assert "state.content: " in warns and "console.paths.content" in warns, warns
        assert "state.color.walls.main.lut: " in warns and "console.paths.luts" in warns, warns
    finally:
        back.close()


def test_a_name_the_file_system_cannot_take_is_answered_not_raised(run, stage_dir):
    """Inside the folders, a name too long for the file system is a one-line answer, never an exception out
    of the hub into a transport."""
    for folder in ("takes", "scenes"):
        (stage_dir / folder).mkdir()
    long = "a" * 300
    for command, args, arg in (
        ("record.start", {"path": f"takes/{long}.stgtake"}, "path"),
        ("content.select", {"content": f"scenes/{long}.glb"}, "content"),
        ("color.set", {"target": "main", "lut": f"luts/{long}.cube"}, "lut"),
    ):
        ack = run.hub.submit(command, args, "test")
        assert not ack["ok"] and ack["error"].startswith(f"{command}: {arg}: cannot use "), ack
        assert "File name too long" in ack["error"] and "\n" not in ack["error"], ack
    assert run.hub.seq == 0 and run.hub.refusals == []
