"""The ``calibration:`` key of the stage file's ``colour:`` section (stagectl/color/stagefile.py through the
stage loader): the three forms, the per-wall shorthand, and one-line ``file:line: key: expected ..., got ...``
errors for bad keys, files and names."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import load_stage_text

from stagectl.color import calibration as C
from stagectl.color.stagefile import Calibration
from stagectl.core.errors import ConfigErrors
from stagectl.stage import load_stage

#: two walls, w and v (2 x 1 cabinets of 32 px each): output a shows w, b shows v, c shows both
BASE = """\
schema_version: 1
name: Calibration keys
frame_rate: 25
walls:
  - {name: w, type: flat, center: [-1.0, 4.0, 1.5], cabinets: [2, 1], cabinet: {size_mm: [500, 500], pixels: [32, 32]}}
  - {name: v, type: flat, center: [1.0, 4.0, 1.5], cabinets: [2, 1], cabinet: {size_mm: [500, 500], pixels: [32, 32]}}
processors:
  - name: p
    outputs:
      - {name: a, canvas: [32, 32], mappings: [{wall: w, rect: [0, 0, 32, 32]}]}
      - {name: b, canvas: [32, 32], mappings: [{wall: v, rect: [32, 0, 32, 32]}]}
      - {name: c, canvas: [64, 32], mappings: [{wall: w, rect: [32, 0, 32, 32]}, {wall: v, rect: [0, 0, 32, 32], at: [32, 0]}]}
colour:
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
"""
FIRST = BASE.count("\n") + 1  #: the line the test's own colour keys start on


def _files(d) -> None:
    (d / "cal").mkdir(exist_ok=True)
    corr = C.Correction(np.eye(3), np.linspace(0.0, 10.0, 16)[:, None].repeat(3, axis=1), -16.0, 10.0)
    C.write_clf(d / "cal" / "w.clf", corr, name="w", description="identity", input_desc="Linear Rec.2020")
    (d / "cal" / "w.cube").write_text("LUT_3D_SIZE 2\n" + "".join(
        f"{r} {g} {b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1)), encoding="utf-8")
    (d / "cal" / "broken.clf").write_text("<ProcessList>not a CLF", encoding="utf-8")
    from stagectl.color.stagefile import OutputColour, config_for

    oc = OutputColour(format="rgb10_a2", transfer="pq", peak_nits=1000.0, target="Linear Rec.2020")
    raw = C.calibrated_config(config_for("ocio://studio-config-latest"), oc, "w.clf", "w calibrated")
    (d / "cal" / "config.ocio").write_text(raw.serialize(), encoding="utf-8")


def _load(tmp_path, colour: str):
    _files(tmp_path)
    return load_stage_text(tmp_path / "stage.yaml", BASE + colour)


def test_the_three_forms_and_the_wall_shorthand(tmp_path) -> None:
    stage = _load(tmp_path, """\
  outputs:
    p/b: {calibration: {config: cal/config.ocio, display: w calibrated}}
    p/c: {calibration: {lut: cal/w.cube, clf: cal/w.clf}}
  walls:
    w: {calibration: {clf: cal/w.clf}}
""")
    c = stage.colour
    a = c.output("p/a").calibration  # from wall w (a shows w only)
    assert a == Calibration("clf", clf=str(tmp_path / "cal" / "w.clf"))
    assert a.where == "colour.walls.w.calibration"
    b = c.output("p/b").calibration
    assert b.kind == "config" and b.display == "w calibrated" and b.view == "Calibrated"  # the default view
    cc = c.output("p/c").calibration  # its own beats wall w's
    assert cc.kind == "files" and cc.lut.endswith("w.cube") and cc.clf.endswith("w.clf")
    assert c.output("p/a").describe().endswith("calibrated (w.clf)")


def test_a_calibrated_8bit_srgb_output_is_no_longer_legacy(tmp_path) -> None:
    path = tmp_path / "stage.yaml"
    _files(tmp_path)
    text = BASE.replace("    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}\n", "    canvas: {}\n")
    path.write_text(text + "  outputs:\n    p/a: {calibration: {lut: cal/w.cube}}\n", encoding="utf-8")
    c = load_stage(path).colour
    assert c.output("p/a").mode == "transfer" and c.output("p/b").mode == "legacy"


@pytest.mark.parametrize("colour, line, key, words", [
    ("  outputs:\n    p/a: {calibration: cal/w.clf}\n", 1, "colour.outputs.p/a.calibration",
     "expected a mapping: {clf: PATH}"),
    ("  outputs:\n    p/a: {calibration: {}}\n", 1, "colour.outputs.p/a.calibration", "got an empty mapping"),
    ("  outputs:\n    p/a: {calibration: {clf: cal/w.clf, gamma: 2}}\n", 1, "colour.outputs.p/a.calibration.gamma",
     "unknown key"),
    ("  outputs:\n    p/a: {calibration: {clf: cal/missing.clf}}\n", 1, "colour.outputs.p/a.calibration.clf",
     "(no file "),
    ("  outputs:\n    p/a: {calibration: {lut: cal/w.clf}}\n", 1, "colour.outputs.p/a.calibration.lut",
     "expected a .cube 3D LUT file, got 'cal/w.clf'"),
    ("  outputs:\n    p/a: {calibration: {clf: cal/broken.clf}}\n", 1, "colour.outputs.p/a.calibration",
     "expected a calibration OpenColorIO can apply"),
    ("  outputs:\n    p/a:\n      calibration:\n        config: cal/config.ocio\n        clf: cal/w.clf\n", 4,
     "colour.outputs.p/a.calibration.clf", "expected no clf beside config/display/view"),
    ("  outputs:\n    p/a: {calibration: {config: cal/config.ocio}}\n", 1,
     "colour.outputs.p/a.calibration.display", "expected the calibrated OCIO config's display"),
    ("  outputs:\n    p/a: {calibration: {config: cal/config.ocio, display: nope}}\n", 1,
     "colour.outputs.p/a.calibration.display", "got 'nope'"),
    ("  outputs:\n    p/a: {calibration: {config: cal/config.ocio, display: w calibrated, view: Graded}}\n", 1,
     "colour.outputs.p/a.calibration.view",
     "expected a view of display 'w calibrated' (Calibrated, Uncalibrated), got 'Graded'"),
    ("  outputs:\n    p/a:\n      display: Rec.2100-PQ - Display\n      calibration: {clf: cal/w.clf}\n", 3,
     "colour.outputs.p/a.calibration.clf", "expected no clf on a display/view output"),
    ("  walls:\n    x: {calibration: {clf: cal/w.clf}}\n", 1, "colour.walls.x",
     "expected a wall some output shows (v, w), got 'x'"),
    ("  walls:\n    v: {calibration: {clf: cal/w.clf}}\n", 1, "colour.walls.v.calibration",
     "expected every wall output p/c shows to have this calibration (it also shows w, with none)"),
    ("  walls:\n    w: {}\n", 1, "colour.walls.w", "expected the wall's calibration, look or working_space"),
    ("  output:\n    calibration: {clf: cal/w.clf}\n", 1, "colour.output.calibration",
     "expected a calibration per output (outputs.<key>.calibration) or per wall"),
])
def test_bad_calibrations_are_line_numbered_one_line_errors(tmp_path, colour, line, key, words) -> None:
    if colour.startswith("  output:\n"):  # a second `output:` key would be a duplicate: replace the base's
        text = BASE.replace("  output:\n    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}\n", "")
        _files(tmp_path)
        (tmp_path / "stage.yaml").write_text(text + colour, encoding="utf-8")
        first = text.count("\n") + 1
        with pytest.raises(ConfigErrors) as info:
            load_stage(tmp_path / "stage.yaml")
    else:
        first = FIRST
        with pytest.raises(ConfigErrors) as info:
            _load(tmp_path, colour)
    text = str(info.value)
    assert f"stage.yaml:{first + line}: {key}: " in text, text
    assert words in text, text
    got = [ln for ln in text.splitlines() if re.search(r"stage\.yaml:\d+: ", ln)]
    assert len(got) == 1, text  # one problem, one line
