"""The stage file's ``colour:`` section (stagectl/color/stagefile.py through the stage loader): what it
resolves to, and one-line ``file:line: key: expected ..., got ...`` errors for bad keys and names."""

from __future__ import annotations

import re

import pytest
from conftest import STAGES
from helpers import load_stage_text, one_wall_stage

from stagectl.color.stagefile import LEGACY, OutputColour, output_colour
from stagectl.core.errors import ConfigErrors
from stagectl.stage import load_stage

BASE = one_wall_stage("Colour keys", (2, 1), [
    "{name: a, canvas: [32, 32], mappings: [{wall: w, rect: [0, 0, 32, 32]}]}",
    "{name: b, canvas: [32, 32], mappings: [{wall: w, rect: [32, 0, 32, 32]}]}",
], tail="", center="0, 4, 1.5")  # 10 lines: the colour section starts on line 11


def _load(tmp_path, colour: str):
    return load_stage_text(tmp_path / "stage.yaml", BASE + colour)


def _error(tmp_path, colour: str) -> str:
    with pytest.raises(ConfigErrors) as info:
        _load(tmp_path, colour)
    text = str(info.value)
    return text


def test_a_stage_without_the_section_is_legacy_everywhere() -> None:
    stage = load_stage(STAGES / "demo.yaml")
    assert stage.colour is None
    assert output_colour(stage, "tessera-a/out1") == LEGACY and LEGACY.mode == "legacy"


def test_defaults_and_per_output_entries(tmp_path) -> None:
    stage = _load(tmp_path, """\
colour:
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}
  outputs:
    p/b:
      canvas: {format: rgba16}
      display: Rec.2100-PQ - Display
""")
    c = stage.colour
    assert c.config == "ocio://studio-config-latest" and c.working_space == "Linear Rec.709 (sRGB)"
    assert c.output("p/a") == OutputColour("rgb10_a2", "pq", 1000.0, range="full", target="Linear Rec.2020")
    b = c.output("p/b")
    # the output's own display replaces the inherited transfer; the view defaults to the display's default
    assert b.mode == "display" and b.transfer is None and b.format == "rgba16"
    assert b.view == "ACES 2.0 - HDR 1000 nits (P3 D65)"


def test_working_space_defaults_to_the_scene_linear_role(tmp_path) -> None:
    stage = _load(tmp_path, "colour:\n  config: ocio://studio-config-latest\n")
    assert stage.colour.working_space == "ACEScg"
    assert stage.colour.output("p/a").mode == "legacy"


@pytest.mark.parametrize("colour, line, key, words", [
    ("colour:\n  output:\n    canvas: {format: rgb12}\n", 13, "colour.output.canvas.format", "rgba8, rgb10_a2, rgba16"),
    ("colour:\n  output:\n    canvas: {transfer: pq, peak_nits: 20000}\n", 13, "colour.output.canvas.peak_nits", "got 20000"),
    ("colour:\n  output:\n    canvas: {transfer: srgb, peak_nits: 500}\n", 13, "colour.output.canvas.peak_nits",
     "expected no peak_nits for transfer srgb"),
    ("colour:\n  output:\n    canvas: {transfer: hlg, peak_nits: 5000}\n", 13, "colour.output.canvas.peak_nits",
     "expected 400..2000 nits for hlg"),
    ("colour:\n  output:\n    canvas: {transfer: hlg, peak_nits: 100}\n", 13, "colour.output.canvas.peak_nits",
     "got 100"),
    ("colour:\n  outputs:\n    p/a:\n      canvas: {transfer: pq}\n      gamut_compress: yes please\n", 15,
     "colour.outputs.p/a.gamut_compress", "expected true or false"),
    ("colour:\n  outputs:\n    p/a: {display: Rec.2100-PQ}\n", 13, "colour.outputs.p/a.display",
     "got 'Rec.2100-PQ'"),
    ("colour:\n  outputs:\n    p/a:\n      display: Rec.2100-PQ - Display\n      view: HDR\n", 15,
     "colour.outputs.p/a.view", "expected a view of display 'Rec.2100-PQ - Display'"),
    ("colour:\n  outputs:\n    p/a:\n      display: sRGB - Display\n      canvas: {transfer: pq}\n", 15,
     "colour.outputs.p/a.canvas.transfer", "expected no transfer beside a display/view"),
    ("colour:\n  outputs:\n    p/z: {canvas: {format: rgba16}}\n", 13, "colour.outputs.p/z",
     "expected an output of this stage (p/a, p/b), got 'p/z'"),
    ("colour:\n  working_space: Rec.709 lin\n", 12, "colour.working_space", "got 'Rec.709 lin'"),
    ("colour:\n  config: missing.ocio\n", 12, "colour.config", "got 'missing.ocio'"),
    ("colour:\n  config: ocio://no-such-config\n", 12, "colour.config", "got 'ocio://no-such-config'"),
    ("colour:\n  outputs:\n    p/a: {canvas: {format: rgba16}, target: Rec.2020}\n", 13,
     "colour.outputs.p/a.target", "got 'Rec.2020'"),
    ("colour:\n  output: {canvas: {format: rgba16, bits: 12}}\n", 12, "colour.output.canvas.bits", "unknown key"),
])
def test_bad_keys_are_line_numbered_one_line_errors(tmp_path, colour, line, key, words) -> None:
    text = _error(tmp_path, colour)
    assert f"stage.yaml:{line}: {key}: " in text, text
    assert words in text, text
    got = [ln for ln in text.splitlines() if re.search(r"stage\.yaml:\d+: ", ln)]
    assert len(got) == 1, text  # one problem, one line
