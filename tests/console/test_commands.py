"""The command set: every command's validation (good and bad) and its state transition, compared with
FeatureState / OperatorState values built by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stagectl.console.commands import COMMANDS, GROUPS, CommandError, apply, spec_json, validate
from stagectl.console.state import OperatorState
from stagectl.core.features import (
    MAX_CARDS,
    ChromaKey,
    ColorCorrection,
    FeatureState,
    FreezeFrustum,
    LightCard,
    OutputPattern,
)
from stagectl.core.grade import white_balance_gains
from stagectl.core.lut import Lut3D
from stagectl.core.camera_settings import CameraSettings, OneEuroParams

from .cases import BAD


def run(stage, state, name, args):
    return apply(state, name, validate(name, args, stage, state))


@pytest.fixture
def base(demo) -> OperatorState:
    return OperatorState.initial(demo)


@pytest.fixture
def two_cards(demo, base) -> OperatorState:
    s, _ = run(demo, base, "card.add", {"wall": "main", "rect": [0.1, 0.2, 0.3, 0.4]})
    s, _ = run(demo, s, "card.add", {"wall": "main", "rect": [0.5, 0.5, 0.6, 0.7]})
    return s


def test_registry_is_complete_and_documented():
    assert set(GROUPS) == {s.group for s in COMMANDS.values() if not s.read_only}
    assert {n for n, s in COMMANDS.items() if s.read_only} == {"status", "state", "help"}
    for spec in COMMANDS.values():
        assert spec.help and all(a.help and a.type for a in spec.args)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text()
    for name, spec in COMMANDS.items():
        assert f"`{name}`" in docs, name
        for a in spec.args:
            assert f"`{a.name}`" in docs, (name, a.name)
    help_all = spec_json()
    assert [c["name"] for c in help_all["commands"]] == list(COMMANDS)


def test_examples_validate(demo, two_cards, stage_dir):
    """Every spec's example is a valid command (against a state where its card exists)."""
    for name, spec in COMMANDS.items():
        if name in ("record.stop", "color.reset", "color.calibration", "color.patches", "color.look"):
            continue  # a calibrated / colour stage: tests/console/test_calibration_command.py,
            # test_patches_command.py, test_look_command.py
        args = dict(spec.example)
        if name == "record.start":
            args["path"] = str(stage_dir / "takes" / "example.stgtake")
        validate(name, args, demo, two_cards)


def test_initial_state_is_the_stage_file(demo, base):
    assert base.features == demo.render.features
    assert base.cameras == (
        ("cam-a", CameraSettings("tracker-a", 0.0, None, (10.0, 10.0, 10.0, 10.0), 0.05, False)),
    )
    assert base.content == "procedural" and base.recording is None
    assert base.inner_enabled and not base.blackout_all


@pytest.mark.parametrize("name,args,error", BAD, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD)])
def test_bad_commands(demo, two_cards, name, args, error):
    before = two_cards
    with pytest.raises(CommandError) as ei:
        validate(name, args, demo, two_cards)
    msg = str(ei.value)
    assert "\n" not in msg
    if error is None:
        assert msg.startswith(f"{name}: command: expected one of status, state, help, ")
    else:
        assert msg == error
    assert two_cards is before


def test_card_add_ids_and_limit(demo, base):
    s, r = run(demo, base, "card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1]})
    assert r == {"id": "card-1"}
    s, r = run(demo, s, "card.add", {"wall": "ceiling", "rect": [0, 0, 0.1, 0.1], "id": "key"})
    assert r == {"id": "key"}
    s, r = run(demo, s, "card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1]})
    assert r == {"id": "card-2"}
    s, _ = run(demo, s, "card.remove", {"id": "card-1"})
    s, r = run(demo, s, "card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1]})
    assert r == {"id": "card-1"}  # the lowest free number
    assert [c.id for c in s.features.light_cards] == ["key", "card-2", "card-1"]
    while len(s.features.light_cards) < MAX_CARDS:
        s, _ = run(demo, s, "card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1]})
    with pytest.raises(
        CommandError, match=rf"^card.add: at most {MAX_CARDS} light cards are drawn; remove one first"
    ):
        validate("card.add", {"wall": "main", "rect": [0, 0, 0.1, 0.1]}, demo, s)


def test_card_commands_match_hand_built_features(demo, base):
    s, _ = run(
        demo,
        base,
        "card.add",
        {
            "wall": "main",
            "rect": [0.1, 0.2, 0.3, 0.4],
            "color": [1, 0.5, 0.25],
            "intensity": 2,
            "layer": "under",
            "feather_px": 12,
        },
    )
    assert s.features == FeatureState(
        light_cards=(LightCard("card-1", "main", (0.1, 0.2, 0.3, 0.4), (1, 0.5, 0.25), 2.0, "under", 12.0),)
    )
    s, r = run(demo, s, "card.move", {"id": "card-1", "u": 0.5, "v": 0.6})
    # centre (0.2, 0.3) -> (0.5, 0.6), size 0.2 x 0.2 kept
    assert r["rect"] == pytest.approx([0.4, 0.5, 0.6, 0.7], abs=1e-12)
    s, r = run(demo, s, "card.resize", {"id": "card-1", "width": 0.1, "height": 0.4})
    assert r["rect"] == pytest.approx([0.45, 0.4, 0.55, 0.8], abs=1e-12)
    s, _ = run(demo, s, "card.set", {"id": "card-1", "color": [0, 0, 1], "layer": "over"})
    c = s.features.light_cards[0]
    assert (c.id, c.wall, c.color, c.intensity, c.layer, c.feather_px) == (
        "card-1",
        "main",
        (0, 0, 1),
        2,
        "over",
        12,
    )
    assert c.rect == pytest.approx((0.45, 0.4, 0.55, 0.8), abs=1e-12)
    s, _ = run(demo, s, "card.set", {"id": "card-1", "rect": [0, 0, 1, 1]})
    assert s.features.light_cards[0].rect == (0, 0, 1, 1)
    s, r = run(demo, s, "card.remove", {"id": "card-1"})
    assert r == {"id": "card-1"} and s.features == FeatureState()
    # what else the state holds is untouched by card commands
    assert replace(s, features=base.features) == base


def test_color_set_merges(demo, base, stage_dir):
    s, _ = run(demo, base, "color.set", {"target": "main", "exposure": 1.5, "temperature": 5600, "tint": 3})
    assert s.features.color_of("main") == ColorCorrection(exposure=1.5, temperature=5600, tint=3)
    s, _ = run(demo, s, "color.set", {"target": "main", "slope": [1.1, 1, 0.9], "saturation": 0.8})
    assert s.features.color_of("main") == ColorCorrection(
        exposure=1.5, temperature=5600, tint=3, slope=(1.1, 1, 0.9), saturation=0.8
    )
    # gains replace the temperature (white balance is one or the other)
    s, _ = run(demo, s, "color.set", {"target": "main", "gains": [1, 0.9, 1.2]})
    cc = s.features.color_of("main")
    assert cc.gains == (1, 0.9, 1.2) and cc.temperature is None and cc.exposure == 1.5
    s, _ = run(demo, s, "color.set", {"target": "main", "temperature": 3200})
    cc = s.features.color_of("main")
    assert cc.gains is None and cc.temperature == 3200
    # the chain's first two steps against numbers worked out independently: 2^1.5 * the 3200 K gains
    g = np.array(white_balance_gains(3200, 3))
    assert g[0] > 1 > g[2]  # warm
    assert cc.gain == pytest.approx(tuple(2**1.5 * g), rel=1e-12)
    # inner + LUT from a file relative to the stage
    s, _ = run(demo, s, "color.set", {"target": "inner", "lut": "luts/identity.cube", "exposure": -1})
    assert s.features.inner_color == ColorCorrection(exposure=-1, lut=Lut3D.identity(2))
    assert s.lut_path("inner") == str(stage_dir / "luts" / "identity.cube")
    s, _ = run(demo, s, "color.set", {"target": "inner", "lut": "luts/swap.cube"})
    assert s.features.inner_color.lut.apply([0.2, 0.5, 0.9]) == pytest.approx([0.9, 0.5, 0.2])
    s, _ = run(demo, s, "color.set", {"target": "inner", "lut": None})
    assert s.features.inner_color == ColorCorrection(exposure=-1) and s.lut_path("inner") is None
    s, _ = run(demo, s, "color.reset", {"target": "inner"})
    s, _ = run(demo, s, "color.reset", {"target": "main"})
    assert s.features == base.features


def test_color_set_lut_errors(demo, base, stage_dir):
    with pytest.raises(
        CommandError, match=r"^color.set: lut: file not found: luts/none.cube \(looked for .*none.cube\)$"
    ):
        validate("color.set", {"target": "main", "lut": "luts/none.cube"}, demo, base)
    (stage_dir / "luts" / "bad.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n1 x 0\n")
    with pytest.raises(CommandError) as ei:
        validate("color.set", {"target": "main", "lut": "luts/bad.cube"}, demo, base)
    assert (
        str(ei.value) == "color.set: lut: luts/bad.cube:3: expected a data line of three numbers, got '1 x 0'"
    )


def test_pattern_blackout_inner_chroma(demo, base):
    s, _ = run(
        demo,
        base,
        "pattern.set",
        {"output": "tessera-a/out2", "kind": "checkerboard", "squares": 2, "burn_in": ["timecode", "frame"]},
    )
    s, _ = run(demo, s, "pattern.set", {"output": "tessera-b/out3", "kind": "solid", "color": [1, 0, 0]})
    assert s.features.patterns == (
        ("tessera-a/out2", OutputPattern("checkerboard", squares=2, burn_in=("frame", "timecode"))),
        ("tessera-b/out3", OutputPattern("solid", (1, 0, 0))),
    )
    s, _ = run(demo, s, "pattern.set", {"output": "tessera-a/out2", "kind": "none"})
    assert s.features.pattern_of("tessera-a/out2") is None
    s, _ = run(demo, s, "output.blackout", {"output": "tessera-a/out1", "on": True})
    s, _ = run(demo, s, "output.blackout", {"output": "tessera-b/out3", "on": 1})  # an OSC toggle's 1
    assert s.features.blackout == frozenset({"tessera-a/out1", "tessera-b/out3"}) and not s.blackout_all
    s, _ = run(demo, s, "output.blackout", {"output": "tessera-b/out3", "on": False})
    assert s.features.blackout == frozenset({"tessera-a/out1"})
    s, _ = run(demo, s, "output.blackout", {"output": "all", "on": True})
    assert s.blackout_all and s.features.blackout == frozenset({"tessera-a/out1"})
    s, _ = run(demo, s, "output.blackout", {"output": "all", "on": False})
    assert not s.blackout_all and s.features.blackout == frozenset()
    s, _ = run(demo, s, "inner.set", {"enabled": False})
    assert not s.inner_enabled
    s, _ = run(demo, s, "chroma.set", {"enabled": True})
    assert s.features.chroma_key == ChromaKey(True)  # nDisplay's default green
    s, _ = run(demo, s, "chroma.set", {"color": [0, 200, 16]})
    assert s.features.chroma_key == ChromaKey(True, (0, 200 / 255, 16 / 255))
    # the key colour is 8-bit sRGB: code 200 is linear (200/255 + 0.055)/1.055)^2.4
    assert s.features.chroma_key.linear_color[1] == pytest.approx(
        ((200 / 255 + 0.055) / 1.055) ** 2.4, rel=1e-12
    )
    s, _ = run(demo, s, "chroma.set", {"enabled": False})
    assert not s.features.key_enabled


def test_camera_set(demo, base):
    s, r = run(
        demo,
        base,
        "camera.set",
        {"camera": "cam-a", "overscan_percent": 15, "soft_edge": 0.1, "delay_frames": 1.5},
    )
    assert s.camera("cam-a") == CameraSettings("tracker-a", 1.5, None, (15, 15, 15, 15), 0.1, False)
    assert r["overscan_percent"] == [15, 15, 15, 15]
    s, _ = run(
        demo,
        s,
        "camera.set",
        {"camera": "cam-a", "overscan_percent": [1, 2, 3, 4], "smoothing": {"min_cutoff_hz": 2, "beta": 0.5}},
    )
    cam = s.camera("cam-a")
    assert cam.overscan_percent == (1, 2, 3, 4) and cam.smoothing == OneEuroParams(2.0, 0.5, 1.0)
    sm = cam.smoothing_filter()
    assert sm.position == sm.rotation == OneEuroParams(2.0, 0.5, 1.0)
    assert sm.latency_ns == round(1e9 / (2 * math.pi * 2.0))
    s, _ = run(demo, s, "camera.set", {"camera": "cam-a", "smoothing": "off", "freeze": True})
    assert s.camera("cam-a").smoothing is None
    assert s.features.freeze == FreezeFrustum(frozenset({"cam-a"}), keep_image=True)
    s, _ = run(demo, s, "camera.set", {"camera": "cam-a", "freeze": False, "tracking": "tracker-a"})
    assert s.features.freeze is None and s.features == base.features


def test_content_and_record(demo, base, stage_dir):
    (stage_dir / "scenes").mkdir()
    (stage_dir / "scenes" / "scene.gltf").write_text("{}")
    s, r = run(demo, base, "content.select", {"content": "scenes/scene.gltf"})
    assert s.content == str(stage_dir / "scenes" / "scene.gltf") == r["content"]
    s, _ = run(demo, s, "content.select", {"content": "procedural"})
    assert s.content == "procedural"
    with pytest.raises(
        CommandError, match=r"^content.select: content: file not found: scenes/none.glb \(looked for "
    ):
        validate("content.select", {"content": "scenes/none.glb"}, demo, s)
    s, r = run(demo, s, "record.start", {})
    assert Path(r["path"]).parent == stage_dir / "takes" and r["path"].endswith(".stgtake")
    assert s.recording == r["path"]
    with pytest.raises(CommandError, match=r"^record.start: a take is being recorded already"):
        validate("record.start", {}, demo, s)
    s, r2 = run(demo, s, "record.stop", {})
    assert s.recording is None and r2 == {"path": r["path"]}
    (stage_dir / "takes").mkdir()
    (stage_dir / "takes" / "old.stgtake").write_bytes(b"x")
    with pytest.raises(CommandError, match=r"^record.start: path: takes/old.stgtake exists already"):
        validate("record.start", {"path": "takes/old.stgtake"}, demo, s)
    s, r = run(demo, s, "record.start", {"path": "takes/t1.stgtake"})
    assert s.recording == str(stage_dir / "takes" / "t1.stgtake")


def test_apply_refuses_what_the_state_no_longer_allows(demo, two_cards):
    args = validate("card.set", {"id": "card-2", "intensity": 3}, demo, two_cards)
    s, _ = run(demo, two_cards, "card.remove", {"id": "card-2"})
    with pytest.raises(CommandError, match=r"^card.set: no light card 'card-2'; cards: card-1$"):
        apply(s, "card.set", args)


def test_normalised_args_are_json(demo, two_cards):
    import json

    args = validate(
        "camera.set",
        {"camera": "cam-a", "overscan_percent": 5, "smoothing": {"min_cutoff_hz": 1}},
        demo,
        two_cards,
    )
    assert json.loads(json.dumps(args)) == {
        "camera": "cam-a",
        "overscan_percent": [5.0] * 4,
        "smoothing": {"min_cutoff_hz": 1.0, "beta": 0.0, "d_cutoff_hz": 1.0},
    }
    args = validate("color.set", {"target": "main", "lut": "luts/identity.cube"}, demo, two_cards)
    assert json.loads(json.dumps(args))["lut"].endswith("luts/identity.cube")
