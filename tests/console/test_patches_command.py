"""``color.patches``: what it refuses (one line each, nothing changed), the program it builds when validated, and
``calibration: true``'s corrected patches against the numpy correction and the published ST 2084 curve.
The playback itself (real GL, through the hub): tests/gl/test_patch_player.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import load_stage_text, one_wall_stage

from stagectl.color import calibration as C
from stagectl.color import transfer as tf
from stagectl.console.commands import CommandError, PatchOutput, validate
from stagectl.console.hub import ControlHub
from stagectl.console.state import OperatorState
from stagectl.stage import load_stage

#: a: PQ 1000 nits in rgb10_a2 with stagectl's CLF; b: plain PQ; h: HLG; v: an OCIO display/view
OUTPUTS = (
    "{name: a, canvas: [48, 40], mappings: [{wall: w, rect: [0, 0, 32, 32], at: [8, 4]}]}",
    "{name: b, canvas: [32, 32], mappings: [{wall: w, rect: [32, 0, 32, 32]}]}",
    "{name: h, canvas: [32, 32], mappings: [{wall: w, rect: [64, 0, 32, 32]}]}",
    "{name: v, canvas: [32, 32], mappings: [{wall: w, rect: [96, 0, 32, 32]}]}",
)
PLAIN = one_wall_stage("Patches command", (4, 1), OUTPUTS)
STAGE = PLAIN + """\
colour:
  working_space: Linear Rec.709 (sRGB)
  output: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
  outputs:
    p/a: {calibration: {clf: a.clf}}
    p/h: {canvas: {transfer: hlg}}
    p/v: {display: Rec.2100-PQ - Display, view: ACES 2.0 - HDR 1000 nits (P3 D65)}
"""
SEQ = {"frames_per_patch": 1, "slate_frames": 1, "ramp_steps": 4}
CORRECTION = C.Correction(np.array([[1.04, -0.03, -0.01], [-0.02, 1.03, -0.01], [0.0, -0.03, 1.03]]),
                          np.linspace(0.0, 10.0, 64)[:, None] * np.array([0.97, 1.0, 1.02]), -16.0, 10.0)


@pytest.fixture
def stage(tmp_path):
    C.write_clf(tmp_path / "a.clf", CORRECTION, name="a", description="test", input_desc="Linear Rec.2020")
    return load_stage_text(tmp_path / "stage.yaml", STAGE)


def test_refusals_are_one_line(stage, tmp_path):
    st = OperatorState.initial(stage)
    no_colour = tmp_path / "plain.yaml"
    no_colour.write_text(PLAIN, encoding="utf-8")
    plain = load_stage(no_colour)
    cases = [
        (stage, {"output": "p/x", "action": "start"},
         "color.patches: output: no output 'p/x'; outputs: p/a, p/b, p/h, p/v"),
        (stage, {"output": "p/a", "action": "go"}, "color.patches: action: expected one of start, stop, got 'go'"),
        (stage, {"output": "p/a"}, "color.patches: action: required argument is missing (start | stop: start the "
                                   "sequence on the acknowledged frame, or stop it)"),
        (stage, {"output": "p/a", "action": "start", "frames_per_patch": 0},
         "color.patches: frames_per_patch: expected a whole number 1..1000, got 0"),
        (stage, {"output": "p/a", "action": "start", "ramp_steps": 2.5},
         "color.patches: ramp_steps: expected a whole number 4..1000, got 2.5"),
        (stage, {"output": "p/a", "action": "stop", "calibration": True},
         "color.patches: calibration: only with action start"),
        (stage, {"output": "p/h", "action": "start"},
         "color.patches: output p/h: calibrate colour needs an output whose canvas transfer is one of pq, srgb, "
         "gamma, bt1886; got hlg (HLG's OOTF mixes the channels: calibrate the wall through a PQ output)"),
        (stage, {"output": "p/v", "action": "start"},
         "color.patches: output p/v is encoded by display/view Rec.2100-PQ - Display / ACES 2.0 - HDR 1000 nits "
         "(P3 D65) (a tone-mapping view): calibrate it through a canvas transfer (pq, srgb, gamma, bt1886) and its "
         "target"),
        (stage, {"output": "p/b", "action": "start", "calibration": True},
         "color.patches: output p/b has no colour calibration to verify (colour: outputs.<key>.calibration or "
         "walls.<wall>.calibration); play the plain sequence with calibration: false"),
        (stage, {"output": "p/a", "action": "start", "frames_per_patch": 1000},
         "color.patches: output p/a: the sequence has 41016 frames; the slate counter holds 4096: use fewer frames "
         "per patch or ramp steps"),
        (plain, {"output": "p/a", "action": "start"},
         "color.patches: output p/a: the stage has no colour: section; give the output a canvas transfer (e.g. "
         "canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}) to calibrate it"),
    ]
    for where, args, error in cases:
        with pytest.raises(CommandError) as info:
            validate("color.patches", args, where, OperatorState.initial(where) if where is plain else st)
        assert str(info.value) == error
    hub = ControlHub(stage, tmp_path / "operator.json")
    try:  # through the hub: answered at once (no frame runs), nothing changed
        ack = hub.submit("color.patches", {"output": "p/h", "action": "start"}, "test")
        assert ack == {"ok": False, "command": "color.patches", "error": cases[6][2]}
        assert hub.seq == 0
    finally:
        hub.close()


def test_the_validated_command_carries_the_program(stage):
    st = OperatorState.initial(stage)
    v = validate("color.patches", {"output": "p/a", "action": "start", **SEQ}, stage, st)
    assert json.loads(json.dumps(v)) == {"output": "p/a", "action": "start", **SEQ}  # JSON as the hub logs it
    assert isinstance(v["output"], PatchOutput)
    prog = v["output"].program
    assert (prog.key, prog.canvas, prog.active, prog.format, prog.calibrated) == (
        "p/a", (48, 40), (8, 4, 32, 32), "rgb10_a2", False)
    seq = prog.sequence
    assert seq.total_frames == prog.frames == 17 and (seq.bits, seq.narrow) == (10, False)
    assert seq.transfer.kind == "pq" and seq.peak_units == 10.0
    # the program's rectangles paint its codes (what the GL player draws is what --patches writes)
    for k in range(prog.frames):
        img = np.zeros((40, 48, 3), np.uint16)
        for x0, y0, x1, y1, c in prog.rects(k):
            img[y0:y1, x0:x1] = c
        assert np.array_equal(img, prog.codes(k)), k
    assert validate("color.patches", {"output": "p/b", "action": "stop"}, stage, st) == {"output": "p/b",
                                                                                        "action": "stop"}


def test_calibration_true_plays_the_corrected_patches(stage):
    st = OperatorState.initial(stage)
    plain = validate("color.patches", {"output": "p/a", "action": "start", **SEQ}, stage, st)["output"].program
    cal = validate("color.patches", {"output": "p/a", "action": "start", "calibration": True, **SEQ}, stage,
                   st)["output"].program
    assert cal.calibrated and cal.frames == plain.frames
    for p, q in zip(plain.sequence.patches, cal.sequence.patches):
        assert (p.name, p.first, p.frames) == (q.name, q.first, q.frames)
        if p.target is None or p.role == "white":  # slates and the top code are not corrected
            assert p.signal is None and q.signal is None or np.array_equal(p.signal, q.signal)
            continue
        # reference: the numpy correction, then the PQ 1000-nit clip and ST 2084 with its published constants
        want = tf.pq_encode_nits(np.minimum(CORRECTION.apply(p.target), 10.0) * 100.0)
        assert np.allclose(q.signal, want, atol=2e-4), p.name
        if np.any(p.target > 0):  # the correction changes every patch but black
            assert not np.allclose(q.signal, p.signal, atol=1e-3), p.name
    k = cal.sequence.patch("grey_18_percent").first
    assert not np.array_equal(cal.codes(k), plain.codes(k))
    k = cal.sequence.patch("slate").first
    assert np.array_equal(cal.codes(k), plain.codes(k))
