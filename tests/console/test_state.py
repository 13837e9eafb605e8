"""Operator state: JSON round trip, the atomic store, bad files set aside, carrying a state onto another
stage."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from stagectl.console.commands import apply, validate
from stagectl.console.state import (
    STATE_FORMAT,
    OperatorState,
    StateError,
    StateStore,
    default_state_path,
    rebase,
)
from stagectl.core.features import ChromaKey, ChromaMarkers, ColorCorrection, FeatureState, LightCard
from stagectl.stage.loader import load_stage


def run(stage, state, name, args):
    return apply(state, name, validate(name, args, stage, state))[0]


@pytest.fixture
def busy(demo) -> OperatorState:
    """A state with something set by every kind of command."""
    s = OperatorState.initial(demo)
    for name, args in [
        (
            "card.add",
            {
                "wall": "main",
                "rect": [0.1, 0.2, 0.3, 0.4],
                "color": [1, 0.9, 0.8],
                "intensity": 1.7,
                "layer": "under",
                "feather_px": 3.5,
            },
        ),
        ("card.add", {"wall": "ceiling", "rect": [-0.5, 0.1, 0.2, 1.3], "id": "top"}),
        ("chroma.set", {"enabled": True, "color": [10, 201, 33]}),
        (
            "color.set",
            {"target": "main", "exposure": 0.3, "temperature": 4300, "tint": -7, "slope": [1.1, 1, 0.9]},
        ),
        (
            "color.set",
            {"target": "inner", "gains": [1, 0.98, 1.02], "lut": "luts/swap.cube", "power": [1, 1.2, 1]},
        ),
        ("pattern.set", {"output": "tessera-b/out3", "kind": "aruco", "burn_in": ["timecode"]}),
        ("pattern.set", {"output": "tessera-a/out1", "kind": "solid", "color": [0.2, 0.4, 0.6]}),
        ("output.blackout", {"output": "tessera-a/out2", "on": True}),
        ("output.blackout", {"output": "all", "on": True}),
        ("inner.set", {"enabled": False}),
        (
            "camera.set",
            {
                "camera": "cam-a",
                "overscan_percent": [1, 2, 3, 4],
                "soft_edge": 0.2,
                "delay_frames": 2.25,
                "smoothing": {"min_cutoff_hz": 1.5, "beta": 0.01, "d_cutoff_hz": 2},
                "freeze": True,
            },
        ),
    ]:
        s = run(demo, s, name, args)
    return s


def test_json_round_trip(demo, busy):
    data = json.loads(json.dumps(busy.to_json(), allow_nan=False))
    back, warnings = OperatorState.from_json(data, demo)
    assert warnings == []
    assert back == busy
    assert back.features.inner_color.lut == busy.features.inner_color.lut  # the LUT re-read by content digest


def test_chroma_markers_round_trip(demo):
    feats = FeatureState(
        chroma_key=ChromaKey(True, (0, 128 / 255, 0), ChromaMarkers((0, 200 / 255, 0), 0.1, None, 0.5, "m"))
    )
    s = OperatorState(features=feats, cameras=OperatorState.initial(demo).cameras)
    assert s.to_json()["chroma_key"]["color"] == [0.0, 128.0, 0.0]
    back, _ = OperatorState.from_json(s.to_json(), demo)
    assert back.features == feats


def test_store_round_trip_is_atomic(demo, busy, tmp_path):
    store = StateStore(tmp_path / "a" / "op.json")
    store.save(busy, 42, demo.name)
    doc = json.loads(store.path.read_text())
    assert doc["format"] == STATE_FORMAT and doc["seq"] == 42 and doc["stage"] == demo.name
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["op.json"]  # no temporary left behind
    state, seq, warnings = store.load(demo)
    assert (state, seq) == (busy, 42)
    # the recording is reported, not resumed
    rec = run(demo, busy, "record.start", {"path": "takes/t.stgtake"})
    store.save(rec, 43)
    state, seq, warnings = store.load(demo)
    assert state.recording is None and seq == 43
    assert len(warnings) == 1 and "recording does not resume after a restart" in warnings[0]
    # a torn temporary from a crash mid-write is ignored: the file itself is whole
    (store.path.parent / "op.json.tmp").write_text('{"format": "stagectl.oper')
    assert store.load(demo)[1] == 43


def test_default_paths(demo, stage_dir):
    assert default_state_path(demo) == stage_dir / "demo.operator.json"


@pytest.mark.parametrize(
    "text,error",
    [
        ("{not json", "{path}:1: not JSON: Expecting property name enclosed in double quotes"),
        ("[]", "{path}: (top level): expected a JSON object, got []"),
        ('{"format": "x", "version": 1}', "{path}: format: expected 'stagectl.operator-state', got \"x\""),
        (
            '{"format": "stagectl.operator-state", "version": 9, "state": {}}',
            "{path}: version: expected 1 (this stagectl reads operator state version 1), got 9",
        ),
        (
            '{"format": "stagectl.operator-state", "version": 1, "seq": 3, "state": {"light_cards": [{"id": '
            '"a", '
            '"wall": "main", "rect": [0.3, 0, 0.1, 1]}]}}',
            "{path}: state.light_cards[0]: light card 'a': rect must be (u0, v0, u1, v1) with u0 < u1 and v0 "
            "< v1 "
            "(wall UV), got (0.3, 0.0, 0.1, 1.0)",
        ),
        (
            '{"format": "stagectl.operator-state", "version": 1, "seq": 3, "state": {"inner_enabled": "no"}}',
            '{path}: state.inner_enabled: expected true or false, got "no"',
        ),
        (
            '{"format": "stagectl.operator-state", "version": 1, "seq": 3, "state": {"cameras": {"cam-a": '
            '{"overscan_percent": [1, 2]}}}}',
            "{path}: state.cameras.cam-a.overscan_percent: expected a percentage 0..100 or [left, right, bottom, "
            "top] each 0..100, got [1, 2]",
        ),
    ],
)
def test_bad_file_is_set_aside(demo, tmp_path, text, error):
    path = tmp_path / "op.json"
    path.write_text(text)
    state, seq, warnings = StateStore(path).load(demo)
    assert state is None and seq == 0
    assert len(warnings) == 1
    assert warnings[0].startswith(error.format(path=path))
    assert warnings[0].endswith(", the stage file's state is used")
    assert not path.exists()
    bad = [p for p in tmp_path.iterdir() if p.name.startswith("op.json.bad-")]
    assert len(bad) == 1 and bad[0].read_text() == text and bad[0].name in warnings[0]


def test_things_the_stage_lost_are_dropped_with_warnings(demo, busy, stage_dir, tmp_path):
    flat = load_stage(stage_dir / "flat_wall.yaml")
    data = busy.to_json()
    back, warnings = OperatorState.from_json(data, flat, file="op.json")
    assert back.features.light_cards == ()
    assert (
        back.features.wall_color == ()
        and back.features.patterns == ()
        and back.features.blackout == frozenset()
    )
    assert back.features.inner_color == busy.features.inner_color  # "inner" exists on every stage
    assert back.camera_names == ["cam"]
    assert back.blackout_all and not back.inner_enabled
    assert (
        "op.json: state.light_cards[0]: light card 'card-1' is on wall 'main', which the stage no longer "
        "has; "
        "dropped" in warnings
    )
    assert (
        "op.json: state.cameras.cam-a: the stage has no camera 'cam-a'; its settings are dropped" in warnings
    )
    assert "op.json: state.blackout[0]: the stage has no output 'tessera-a/out2'; dropped" in warnings
    assert len(warnings) == 7  # 2 cards, 1 wall colour, 2 patterns, 1 blackout, 1 camera
    # the same through rebase (stage.reload), which reads no files
    moved, warns = rebase(busy, flat)
    assert moved.features == replace_freeze(back.features) and len(warns) == 7
    assert moved.camera_names == ["cam"]


def replace_freeze(f: FeatureState) -> FeatureState:
    from dataclasses import replace

    return replace(f, freeze=None)


def test_missing_lut_keeps_the_rest(demo, busy, stage_dir, tmp_path):
    data = busy.to_json()
    os.remove(stage_dir / "luts" / "swap.cube")
    back, warnings = OperatorState.from_json(data, demo, file="op.json")
    assert back.features.inner_color == ColorCorrection(gains=(1, 0.98, 1.02), power=(1, 1.2, 1))
    assert len(warnings) == 1 and warnings[0].startswith(
        "op.json: state.color.inner.lut: cannot read the LUT"
    )


def test_stage_file_luts_persist_by_absolute_path(stage_dir, tmp_path):
    text = (
        (stage_dir / "demo.yaml")
        .read_text()
        .replace(
            "render:\n",
            "render:\n  color:\n    walls:\n      main: {exposure: 0.5, lut: luts/swap.cube}\n",
            1,
        )
    )
    (stage_dir / "lut.yaml").write_text(text)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the LUT's display path is relative to the working folder
    try:
        stage = load_stage(stage_dir / "lut.yaml")
    finally:
        os.chdir(cwd)
    s = OperatorState.initial(stage)
    assert s.to_json()["color"]["walls"]["main"]["lut"] == str(stage_dir / "luts" / "swap.cube")
    back, warnings = OperatorState.from_json(s.to_json(), stage)
    assert back.features == s.features and warnings == []


def test_state_error_is_a_stage_error():
    from stagectl.core.errors import StageError

    assert issubclass(StateError, StageError)


def test_unused_import_guard():
    assert shutil and Path and LightCard
