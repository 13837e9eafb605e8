"""Every path that sets a camera setting accepts and refuses the same values.

An operator's camera setting (tracking delay, smoothing, overscan, soft edge, freeze) reaches the running stage
five ways: the settings object itself (``CameraSettings``, what ``CameraRig.apply`` takes), the stage file (the
settings every camera starts with: ``tracking[].delay_frames``, ``render.inner.overscan_percent`` and
``render.inner.soft_edge``, read by ``load_stage``), the operator state file (``OperatorState.from_json``), the
``camera.set`` command (``validate``) and OSC (``parse_args`` in its positional form for numbers, then
``validate``); and a take's header carries the tracking delay and smoothing ``stagectl export`` solves the take
with (``stagectl.post.solve``). Their limits are declared once (``stagectl.core.camera_settings``); probes around every limit (the
limits themselves, just past them, NaN, infinity, a bool, a string, a vector one short or one long, one number
for the four overscan sides) go through every path and all of them must say the same.

Not probed: the tracking source (a name the stage must have: the command refuses an unknown one, the state file
keeps the camera's source with a warning), and ``freeze`` over OSC and the command's 0/1 for it (controllers'
toggles, turned into booleans before any check); the stage file has no smoothing or freeze (every camera
starts without them).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from stagectl.console.commands import CommandError, validate
from stagectl.console.osc_transport import OscArgError, parse_args
from stagectl.console.state import OperatorState, StateError
from stagectl.core.errors import ConfigErrors
from stagectl.core.fields import FieldError, value_of
from stagectl.post.solve import PostError, _header_settings
from stagectl.stage.loader import load_stage
from stagectl.core.camera_settings import SMOOTHING, CameraSettings, OneEuroParams

from .test_feature_limits import _probes

CAM = "cam-a"
SETTINGS = ("delay_frames", "overscan_percent", "soft_edge", "freeze")
GOOD_SMOOTHING = {name: 1.0 for name, _, _ in SMOOTHING}


def _by_model(name: str, value) -> bool:
    """``CameraSettings`` itself; the smoothing as the ``OneEuroParams`` a caller would build."""
    try:
        if name == "smoothing":
            CameraSettings("tracker-a", smoothing=OneEuroParams(**value))
        else:
            CameraSettings("tracker-a", **{name: tuple(value) if isinstance(value, list) else value})
    except (FieldError, ValueError, TypeError):
        return False
    return True


#: where the stage file holds each setting it has: (section path, key); the tracking source is cam-a's
STAGE_KEYS = {
    "delay_frames": (("tracking", 0), "delay_frames"),
    "overscan_percent": (("render", "inner"), "overscan_percent"),
    "soft_edge": (("render", "inner"), "soft_edge"),
}


def _stage_file_with(stage_dir: Path, name: str, value) -> Path:
    """The demo stage beside its lens files with ``name`` set to ``value`` (YAML writes NaN and infinity as
    ``.nan`` / ``.inf``)."""
    doc = yaml.safe_load((stage_dir / "demo.yaml").read_text())
    assert doc["cameras"][0]["name"] == CAM and doc["tracking"][0]["name"] == doc["cameras"][0]["tracking"]
    section, key = STAGE_KEYS[name]
    node = doc
    for part in section:
        node = node[part]
    node[key] = value
    path = stage_dir / "probe.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _by_stage_file(name: str, value, stage_dir: Path) -> bool:
    try:
        load_stage(_stage_file_with(stage_dir, name, value))
    except ConfigErrors:
        return False
    return True


def _by_take_header(name: str, value, stage) -> bool:
    """The settings of ``stagectl export`` from a take header's ``operator.cameras.<camera>``."""
    try:
        _header_settings({name: value}, stage.tracking_source("tracker-a"), "take")
    except PostError:
        return False
    return True


def _by_state(name: str, value, stage) -> bool:
    try:
        OperatorState.from_json({"cameras": {CAM: {name: value}}}, stage)
    except StateError:
        return False
    return True


def _by_command(name: str, value, stage, state) -> bool:
    try:
        validate("camera.set", {"camera": CAM, name: value}, stage, state)
    except CommandError:
        return False
    return True


def _by_osc(name: str, value, stage, state) -> bool:
    """The positional form (``cam-a key value...``) where the value is numbers, else the keyed (JSON) form."""
    nums = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
    if all(isinstance(x, float) for x in nums):
        values = [CAM, name, *nums]
    else:
        values = [json.dumps({"camera": CAM, name: value}, allow_nan=True)]
    try:
        validate("camera.set", parse_args("camera.set", values), stage, state)
    except (OscArgError, CommandError):
        return False
    return True


def _cases():
    for name in SETTINGS:
        val = value_of(CameraSettings, name)
        good = list(CameraSettings.__dataclass_fields__[name].default) if val.kind == "vector" else None
        for probe in _probes(val, good):
            yield name, probe
    yield "overscan_percent", 12.0  # one number: all four sides
    yield "overscan_percent", 120.0
    for part, val, _ in SMOOTHING:
        for probe in _probes(val, None):
            yield "smoothing", {**GOOD_SMOOTHING, part: probe}


def _verdicts(name, value, stage, state, stage_dir: Path) -> dict[str, bool]:
    out = {
        "model": _by_model(name, value),
        "state": _by_state(name, value, stage),
        "command": _by_command(name, value, stage, state),
    }
    if name != "freeze":  # OSC reads toggles (0/1, T/F, yes/no...) as booleans first (docs/console-osc.md)
        out["osc"] = _by_osc(name, value, stage, state)
    if name in STAGE_KEYS:
        out["stage file"] = _by_stage_file(name, value, stage_dir)
    if name in ("delay_frames", "smoothing"):
        out["take header"] = _by_take_header(name, value, stage)
    return out


def test_every_path_accepts_and_refuses_the_same_camera_settings(demo, stage_dir) -> None:
    state = OperatorState.initial(demo)
    seen: dict[str, set[bool]] = {}
    paths: set[str] = set()
    for name, value in _cases():
        verdicts = _verdicts(name, value, demo, state, stage_dir)
        assert len(set(verdicts.values())) == 1, f"{name} = {value!r}: {verdicts}"
        key = name if name != "smoothing" else f"smoothing ({[k for k, v in value.items() if v != 1.0]})"
        seen.setdefault(key, set()).add(verdicts["model"])
        paths.update(verdicts)
    assert all(s == {True, False} for s in seen.values()), f"probes must find both sides of each limit: {seen}"
    assert len(seen) >= len(SETTINGS) + len(SMOOTHING)
    assert paths == {"model", "state", "command", "osc", "stage file", "take header"}


@pytest.mark.parametrize(("name", "ok", "refused"), [
    # the limits operators get, as docs/console.md gives them
    ("delay_frames", 30.0, 30.5),
    ("delay_frames", 0.0, -0.5),
    ("soft_edge", 0.5, 0.55),
    ("overscan_percent", [100.0, 0.0, 0.0, 0.0], [100.5, 0.0, 0.0, 0.0]),
    ("overscan_percent", 100.0, -0.5),
    ("smoothing", {"min_cutoff_hz": 1000.0, "beta": 1000.0, "d_cutoff_hz": 1000.0},
     {"min_cutoff_hz": 1000.5, "beta": 0.0, "d_cutoff_hz": 1.0}),
    ("smoothing", {"min_cutoff_hz": 0.001, "beta": 0.0, "d_cutoff_hz": 0.001},
     {"min_cutoff_hz": 1.0, "beta": 0.0, "d_cutoff_hz": 0.0}),
])
def test_the_limits_operators_get(name, ok, refused, demo, stage_dir) -> None:
    state = OperatorState.initial(demo)
    assert set(_verdicts(name, ok, demo, state, stage_dir).values()) == {True}
    assert set(_verdicts(name, refused, demo, state, stage_dir).values()) == {False}


def test_the_settings_read_back_are_the_settings_written(demo) -> None:
    """What the state file and the command accept arrives unchanged: one number is all four overscan sides, the
    smoothing's optional parts take their declared defaults."""
    state = OperatorState.initial(demo)
    doc = {"delay_frames": 2.5, "overscan_percent": 12, "soft_edge": 0.2, "freeze": True,
           "smoothing": {"min_cutoff_hz": 3}}
    from_file, _ = OperatorState.from_json({"cameras": {CAM: doc}}, demo)
    by_command = validate("camera.set", {"camera": CAM, **doc}, demo, state)
    want = CameraSettings("tracker-a", 2.5, OneEuroParams(3.0, 0.0, 1.0), (12.0,) * 4, 0.2, True)
    assert from_file.camera(CAM) == want
    assert by_command["overscan_percent"] == [12.0] * 4
    assert by_command["smoothing"] == {"min_cutoff_hz": 3.0, "beta": 0.0, "d_cutoff_hz": 1.0}
    assert want.to_json()["smoothing"] == by_command["smoothing"] and not math.isnan(want.delay_frames)
    header = _header_settings(doc, demo.tracking_source("tracker-a"), "take")
    assert (header.delay_frames, header.smoothing) == (want.delay_frames, want.smoothing)
    assert header.smoothing_filter() == want.smoothing_filter()


def test_a_take_header_outside_the_declarations_is_named(demo) -> None:
    """What ``stagectl export`` says of a take whose header holds a setting no path would accept."""
    src = replace(demo.tracking_source("tracker-a"), delay_frames=1.0)
    where = "t.stgtake: take header: operator.cameras.cam-a"
    assert _header_settings({}, src, where).delay_frames == 1.0  # no delay in the header: the source's
    with pytest.raises(PostError, match=r"^t\.stgtake: take header: operator\.cameras\.cam-a\.delay_frames: "
                                        r"expected a number 0\.\.30, got 31$"):
        _header_settings({"delay_frames": 31}, src, where)
    with pytest.raises(PostError, match=r'\.smoothing: expected "off" or \{"min_cutoff_hz": Hz > 0 and <= 1000, '):
        _header_settings({"smoothing": {"beta": 1.0}}, src, where)


def test_the_stage_file_starts_each_camera_with_what_it_says(demo, stage_dir) -> None:
    """The stage file's values arrive as the camera's settings, as the state file and the command give them."""
    text = (stage_dir / "demo.yaml").read_text()
    for old, new in (("delay_frames: 0.0", "delay_frames: 2.5"), ("soft_edge: 0.05", "soft_edge: 0.2"),
                     ("overscan_percent: 10 ", "overscan_percent: 12 ")):
        assert old in text, old
        text = text.replace(old, new, 1)
    path = stage_dir / "set.yaml"
    path.write_text(text)
    stage = load_stage(path)
    doc = {"delay_frames": 2.5, "overscan_percent": 12, "soft_edge": 0.2}
    from_file, _ = OperatorState.from_json({"cameras": {CAM: doc}}, demo)
    assert OperatorState.initial(stage).camera(CAM) == from_file.camera(CAM) == CameraSettings(
        "tracker-a", 2.5, None, (12.0,) * 4, 0.2, False)


@pytest.mark.parametrize(("old", "new", "key", "expected"), [
    ("delay_frames: 0.0", "delay_frames: 30.5", "tracking[0].delay_frames", "expected a number 0..30, got 30.5"),
    ("soft_edge: 0.05", "soft_edge: .nan", "render.inner.soft_edge", "expected a number 0..0.5, got nan"),
    ("overscan_percent: 10 ", "overscan_percent: [10, 10, 101, 10] ", "render.inner.overscan_percent",
     "expected a percentage 0..100 or [left, right, bottom, top] each 0..100, got [10, 10, 101, 10]"),
])
def test_a_refused_stage_file_value_is_located(stage_dir, old, new, key, expected) -> None:
    """``file:line: key: expected ...`` with the expectation the declaration writes (docs/stage-file.md)."""
    text = (stage_dir / "demo.yaml").read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    path = stage_dir / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as info:
        load_stage(path)
    line = next(i + 1 for i, row in enumerate(text.splitlines()) if new.strip() in row)
    assert [e.format() for e in info.value.errors] == [f"{path}:{line}: {key}: {expected}"]
