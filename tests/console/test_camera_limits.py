"""Every path that sets a camera setting accepts and refuses the same values.

An operator's camera setting (tracking delay, smoothing, overscan, soft edge, freeze) reaches the running stage
four ways: the settings object itself (``CameraSettings``, what ``CameraRig.apply`` takes), the operator state
file (``OperatorState.from_json``), the ``camera.set`` command (``validate``) and OSC (``parse_args`` in its
positional form for numbers, then ``validate``). Their limits are declared once (``stagectl.runtime.rig``); probes
around every limit (the limits themselves, just past them, NaN, infinity, a bool, a string, a vector one short or
one long, one number for the four overscan sides) go through every path and all of them must say the same.

Not probed: the tracking source (a name the stage must have: the command refuses an unknown one, the state file
keeps the camera's source with a warning), and ``freeze`` over OSC and the command's 0/1 for it (controllers'
toggles, turned into booleans before any check).
"""

from __future__ import annotations

import json
import math

import pytest

from stagectl.console.commands import CommandError, validate
from stagectl.console.osc_transport import OscArgError, parse_args
from stagectl.console.state import OperatorState, StateError
from stagectl.core.fields import FieldError, value_of
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


def _verdicts(name, value, stage, state) -> dict[str, bool]:
    out = {
        "model": _by_model(name, value),
        "state": _by_state(name, value, stage),
        "command": _by_command(name, value, stage, state),
    }
    if name != "freeze":  # OSC reads toggles (0/1, T/F, yes/no...) as booleans first (docs/console-osc.md)
        out["osc"] = _by_osc(name, value, stage, state)
    return out


def test_every_path_accepts_and_refuses_the_same_camera_settings(demo) -> None:
    state = OperatorState.initial(demo)
    seen: dict[str, set[bool]] = {}
    for name, value in _cases():
        verdicts = _verdicts(name, value, demo, state)
        assert len(set(verdicts.values())) == 1, f"{name} = {value!r}: {verdicts}"
        key = name if name != "smoothing" else f"smoothing ({[k for k, v in value.items() if v != 1.0]})"
        seen.setdefault(key, set()).add(verdicts["model"])
    assert all(s == {True, False} for s in seen.values()), f"probes must find both sides of each limit: {seen}"
    assert len(seen) >= len(SETTINGS) + len(SMOOTHING)


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
def test_the_limits_operators_get(name, ok, refused, demo) -> None:
    state = OperatorState.initial(demo)
    assert set(_verdicts(name, ok, demo, state).values()) == {True}
    assert set(_verdicts(name, refused, demo, state).values()) == {False}


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
