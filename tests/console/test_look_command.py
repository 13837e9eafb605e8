"""``color.look``: its targets against a stage with wall and camera looks, the state transition and what the frame
uniforms then carry, the operator state file (restored at a restart, carried over a reload), the cluster wire."""

from __future__ import annotations

import json

import pytest
from helpers import load_stage_text
from looks_config import write_looks_config

from stagectl.console.commands import COMMANDS, CommandError, apply, validate
from stagectl.console.hub import ControlHub
from stagectl.console.state import OperatorState, StateStore, rebase
from stagectl.core.features import FeatureState
from stagectl.render.uniforms import feature_uniforms
from stagectl.sync.cluster import decode_features, encode_features

from .conftest import submit_applied_at

#: walls main and side, cameras cam-a and main; main (wall) and cam-a have looks, side a working space only
STAGE = """\
schema_version: 1
name: Look command
frame_rate: 25
walls:
  - {name: main, type: flat, center: [-1.0, 4.0, 1.5], cabinets: [2, 1], cabinet: {size_mm: [500, 500], pixels: [32, 32]}}
  - {name: side, type: flat, center: [1.0, 4.0, 1.5], cabinets: [2, 1], cabinet: {size_mm: [500, 500], pixels: [32, 32]}}
processors:
  - name: p
    outputs:
      - {name: a, canvas: [64, 32], mappings: [{wall: main, rect: [0, 0, 64, 32]}]}
      - {name: b, canvas: [64, 32], mappings: [{wall: side, rect: [0, 0, 64, 32]}]}
tracking:
  - {name: t, protocol: freed, bind: 127.0.0.1, port: 40000, camera_id: 1}
cameras:
  - {name: cam-a, tracking: t, sensor_mm: [24.89, 14.0]}
  - {name: main, tracking: t, sensor_mm: [24.89, 14.0]}
colour:
  config: looks.ocio
  working_space: Linear Rec.709 (sRGB)
  walls:
    main: {look: Warm}
    side: {working_space: ACEScg}
  cameras:
    cam-a: {look: [Show LUT, Cool]}
"""


@pytest.fixture
def stage(tmp_path):
    write_looks_config(tmp_path)
    return load_stage_text(tmp_path / "stage.yaml", STAGE)


WHAT = 'color.look: target: expected a wall or camera with a look (camera:cam-a, wall:main), "all", or a list of them, '


def test_targets_name_the_looks(stage) -> None:
    st = OperatorState.initial(stage)
    assert validate("color.look", {"target": "all", "on": False}, stage, st) == {
        "target": ["camera:cam-a", "wall:main"], "on": False}
    # "main" is a wall with a look and a camera without one: the wall's
    assert validate("color.look", COMMANDS["color.look"].example, stage, st)["target"] == ["wall:main"]
    assert validate("color.look", {"target": ["cam-a", "wall:main"], "on": 1}, stage, st)["target"] == [
        "camera:cam-a", "wall:main"]
    for target, error in [
        ("side", "color.look: target: wall 'side' has no look; looks: camera:cam-a, wall:main"),
        ("camera:main", "color.look: target: camera 'main' has no look; looks: camera:cam-a, wall:main"),
        ("ceiling", WHAT + "got 'ceiling'"),
        ([], WHAT + "got []"),
        (3, WHAT + "got 3"),
    ]:
        with pytest.raises(CommandError) as info:
            validate("color.look", {"target": target, "on": False}, stage, st)
        assert str(info.value) == error


def test_a_name_of_two_looks_must_say_which(stage, tmp_path) -> None:
    text = STAGE.replace("    cam-a: {look: [Show LUT, Cool]}\n", "    main: {look: Cool}\n")
    both = load_stage_text(tmp_path / "both.yaml", text)
    with pytest.raises(CommandError, match="'main' is a wall and a camera, both with a look: say wall:main or "
                                           "camera:main"):
        validate("color.look", {"target": "main", "on": False}, both, OperatorState.initial(both))


def test_a_stage_without_looks_refuses_the_command(tmp_path) -> None:
    text = STAGE.split("colour:\n")[0]
    plain = load_stage_text(tmp_path / "plain.yaml", text)
    with pytest.raises(CommandError) as info:
        validate("color.look", {"target": "all", "on": False}, plain, OperatorState.initial(plain))
    assert str(info.value) == ("color.look: target: expected a wall or camera with a look, but the stage has none "
                               "(colour: walls.<wall>.look or cameras.<camera>.look), got 'all'")


def test_switching_changes_what_the_frame_draws(stage) -> None:
    st = OperatorState.initial(stage)
    fu = feature_uniforms(stage, st.features)
    assert [w for w, _ in fu.wall_looks] == [0, 1] and [c for c, _ in fu.camera_looks] == ["cam-a"]
    st, res = apply(st, "color.look", validate("color.look", {"target": "all", "on": False}, stage, st))
    assert res == {"looks": ["camera:cam-a", "wall:main"], "on": False}
    fu = feature_uniforms(stage, st.features)
    # wall side keeps its working space (its grade runs in ACEScg): it has no look to switch
    assert [w for w, _ in fu.wall_looks] == [1] and fu.camera_looks == ()
    st, _ = apply(st, "color.look", validate("color.look", {"target": "cam-a", "on": True}, stage, st))
    assert st.features.looks_off == {"wall:main"}
    assert [c for c, _ in feature_uniforms(stage, st.features).camera_looks] == ["cam-a"]


def test_the_switch_is_persisted_restored_and_carried_over_a_reload(stage, tmp_path) -> None:
    path = tmp_path / "state.json"
    hub = ControlHub(stage, path)
    ack = submit_applied_at(hub, "color.look", {"target": "cam-a", "on": False}, 7)
    assert ack["ok"] and ack["frame"] == 7, ack
    assert hub.features.looks_off == {"camera:cam-a"}
    hub.close()
    assert json.loads(path.read_text())["state"]["looks_off"] == ["camera:cam-a"]
    again = ControlHub(stage, path)
    assert again.features.looks_off == {"camera:cam-a"} and not again.warnings
    again.close()
    # a stage without that look drops the switch, with a warning, at a restart and at a reload
    text = STAGE.replace("  cameras:\n    cam-a: {look: [Show LUT, Cool]}\n", "")
    nolook = load_stage_text(tmp_path / "nolook.yaml", text)
    state, _, warnings = StateStore(path).load(nolook)
    assert state.features.looks_off == frozenset()
    assert any("state.looks_off[0]: the stage has no look 'camera:cam-a'" in w for w in warnings), warnings
    st = OperatorState.from_json(json.loads(path.read_text())["state"], stage)[0]
    moved, warnings = rebase(st, nolook)
    assert moved.features.looks_off == frozenset() and any("'camera cam-a'" in w for w in warnings), warnings


def test_the_cluster_wire_carries_the_switch() -> None:
    fs = FeatureState(looks_off=frozenset({"wall:main", "camera:cam-a"}))
    data = encode_features(fs, seq=3, session=9)
    back = decode_features(data)
    assert back.features == fs
    jlen = int.from_bytes(data[17:21], "little")
    assert json.loads(data[21:21 + jlen])["looks_off"] == ["camera:cam-a", "wall:main"]
