"""``color.calibration``: its targets against a calibrated stage, the state transition, the operator state file
(restored at a restart, carried over a reload), the cluster's operator-state wire and the plan it makes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import load_stage_text

from stagectl.color import calibration as C
from stagectl.console.commands import COMMANDS, CommandError, apply, validate
from stagectl.console.hub import ControlHub
from stagectl.console.state import OperatorState, StateStore, rebase
from stagectl.core.features import FeatureState
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.plan import FramePlanner
from stagectl.sync.cluster import decode_features, encode_features

from .conftest import submit_applied_at

#: walls w and v; outputs a and b show w, c and d show v; a has its own calibration, c and d wall v's
STAGE = """\
schema_version: 1
name: Calibration command
frame_rate: 25
walls:
  - {name: w, type: flat, center: [-1.0, 4.0, 1.5], cabinets: [2, 1], cabinet: {size_mm: [500, 500], pixels: [32, 32]}}
  - {name: v, type: flat, center: [1.0, 4.0, 1.5], cabinets: [3, 1], cabinet: {size_mm: [500, 500], pixels: [32, 32]}}
processors:
  - name: p
    outputs:
      - {name: a, canvas: [32, 32], mappings: [{wall: w, rect: [0, 0, 32, 32]}]}
      - {name: b, canvas: [32, 32], mappings: [{wall: w, rect: [32, 0, 32, 32]}]}
      - {name: c, canvas: [64, 32], mappings: [{wall: v, rect: [0, 0, 64, 32]}]}
      - {name: d, canvas: [32, 32], mappings: [{wall: v, rect: [64, 0, 32, 32]}]}
tracking:
  - {name: t, protocol: freed, bind: 127.0.0.1, port: 40000, camera_id: 1}
cameras:
  - {name: cam, tracking: t, sensor_mm: [24.89, 14.0]}
colour:
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
  outputs:
    p/a: {calibration: {clf: w.clf}}
  walls:
    v: {calibration: {clf: v.clf}}
"""


@pytest.fixture
def stage(tmp_path):
    corr = C.Correction(np.diag([1.05, 1.0, 0.95]), np.linspace(0.0, 10.0, 16)[:, None].repeat(3, axis=1),
                        -16.0, 10.0)
    for name in ("w", "v"):
        C.write_clf(tmp_path / f"{name}.clf", corr, name=name, description="test", input_desc="Linear Rec.2020")
    return load_stage_text(tmp_path / "stage.yaml", STAGE)


WHAT = ('color.calibration: target: expected a calibrated output (p/a, p/c, p/d), a wall showing one, "all", or a '
        "list of them, ")


def test_targets_name_the_calibrated_outputs(stage) -> None:
    st = OperatorState.initial(stage)
    v = validate("color.calibration", {"target": "all", "on": False}, stage, st)
    assert v == {"target": ["p/a", "p/c", "p/d"], "on": False}
    assert validate("color.calibration", {"target": "v", "on": 0}, stage, st)["target"] == ["p/c", "p/d"]
    assert validate("color.calibration", {"target": ["p/a", "v"], "on": True}, stage, st)["target"] == [
        "p/a", "p/c", "p/d"]
    for target, error in [
        ("p/b", "color.calibration: target: output 'p/b' has no calibration; calibrated outputs: p/a, p/c, p/d"),
        ("main", WHAT + "got 'main'"),
        ([], WHAT + "got []"),
    ]:
        with pytest.raises(CommandError) as info:
            validate("color.calibration", {"target": target, "on": False}, stage, st)
        assert str(info.value) == error


def test_the_example_validates_on_a_stage_with_a_wall_main(stage, tmp_path) -> None:
    text = STAGE.replace("name: v,", "name: main,").replace("wall: v,", "wall: main,").replace("    v: {", "    main: {")
    other = load_stage_text(tmp_path / "main.yaml", text)
    got = validate("color.calibration", COMMANDS["color.calibration"].example, other, OperatorState.initial(other))
    assert got == {"target": ["p/c", "p/d"], "on": False}


def test_switching_off_and_on_changes_only_the_named_outputs(stage) -> None:
    st = OperatorState.initial(stage)
    assert st.features.uncalibrated == frozenset()
    st, res = apply(st, "color.calibration", validate("color.calibration", {"target": "all", "on": False}, stage, st))
    assert st.features.uncalibrated == {"p/a", "p/c", "p/d"} and res == {"outputs": ["p/a", "p/c", "p/d"],
                                                                          "on": False}
    st, _ = apply(st, "color.calibration", validate("color.calibration", {"target": "v", "on": True}, stage, st))
    assert st.features.uncalibrated == {"p/a"}
    # the plan carries it per output
    plan = FramePlanner(stage).plan([camera_state_from_pose(stage, (0, 0, 1.6, 0, 0, 0))], features=st.features)
    assert {o.key: o.calibrated for o in plan.outputs} == {"p/a": False, "p/b": True, "p/c": True, "p/d": True}


def test_the_switch_is_persisted_restored_and_carried_over_a_reload(stage, tmp_path) -> None:
    path = tmp_path / "state.json"
    hub = ControlHub(stage, path)
    ack = submit_applied_at(hub, "color.calibration", {"target": "p/d", "on": False}, 7)
    assert ack["ok"] and ack["frame"] == 7, ack
    assert hub.features.uncalibrated == {"p/d"}
    hub.close()
    assert json.loads(path.read_text())["state"]["uncalibrated"] == ["p/d"]
    # a restart restores it
    again = ControlHub(stage, path)
    assert again.features.uncalibrated == {"p/d"} and not again.warnings
    again.close()
    # a stage that no longer calibrates p/d drops it, with a warning, at restart and at a reload
    text = STAGE.replace("  walls:\n    v: {calibration: {clf: v.clf}}\n", "")
    plain = load_stage_text(tmp_path / "plain.yaml", text)
    state, _, warnings = StateStore(path).load(plain)
    assert state.features.uncalibrated == frozenset()
    assert any("state.uncalibrated[0]: the stage has no calibrated output 'p/d'" in w for w in warnings), warnings
    st = OperatorState.from_json(json.loads(path.read_text())["state"], stage)[0]
    moved, warnings = rebase(st, plain)
    assert moved.features.uncalibrated == frozenset() and any("'p/d'" in w for w in warnings)


def test_the_cluster_wire_carries_the_switch() -> None:
    fs = FeatureState(uncalibrated=frozenset({"p/a", "p/c"}), blackout=frozenset({"p/b"}))
    data = encode_features(fs, seq=3, session=9)
    back = decode_features(data)
    assert back.features == fs and back.features.uncalibrated == {"p/a", "p/c"}
    jlen = int.from_bytes(data[17:21], "little")
    assert json.loads(data[21:21 + jlen])["uncalibrated"] == ["p/a", "p/c"]
    with pytest.raises(Exception, match="no such output"):
        back.features.check(["w"], ["p/b"])
