"""Stage files: the shipped stages load, totals are right, and every kind of mistake is reported with its
file, line and key (and exit code 2 from the CLI, without a traceback)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import STAGES

from stagectl.cli import main as cli_main
from stagectl.core.errors import ConfigErrors
from stagectl.stage import load_stage
from stagectl.stage.summary import stage_summary

DEMO = STAGES / "demo.yaml"


def _write(tmp_path: Path, text: str, name: str = "stage.yaml") -> Path:
    """Write a stage into tmp_path; its lens path still points at the shipped lens files (same line count)."""
    p = tmp_path / name
    p.write_text(text.replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/"))
    return p


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth]


def _errors(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_stage(path)
    return [e.format() for e in info.value.errors]


def _demo_with(old: str, new: str) -> str:
    text = DEMO.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


# ------------------------------------------------------------------ shipped stages

@pytest.mark.parametrize("path", sorted(STAGES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_stage_loads(path: Path) -> None:
    stage = load_stage(path)
    assert stage.walls and stage.processors


def test_demo_totals_match_the_file() -> None:
    raw = yaml.safe_load(DEMO.read_text())
    s = stage_summary(load_stage(DEMO))
    cab = sum(w["cabinets"][0] * w["cabinets"][1] for w in raw["walls"])
    px = sum(w["cabinets"][0] * w["cabinet"]["pixels"][0] * w["cabinets"][1] * w["cabinet"]["pixels"][1] for w in raw["walls"])
    assert s["cabinets_total"] == cab
    assert s["pixels_total"] == px
    # every wall pixel lands on exactly one output: the outputs' used pixels add up to the walls' pixels
    assert sum(o["used_px"] for p in s["processors"] for o in p["outputs"]) == px
    outs = [o for p in s["processors"] for o in p["outputs"]]
    assert len(s["processors"]) == 2 and len(outs) == 3
    assert all(o["canvas_px"] == [1920, 1080] for o in outs)
    main = next(w for w in s["walls"] if w["type"] == "curved")
    assert 7.5 <= main["size_m"][0] <= 8.5 and main["size_m"][1] == pytest.approx(3.0)
    assert s["frame_rate"]["exact"] == "24000/1001"


def test_curved_wall_geometry_is_an_arc_of_cabinet_chords() -> None:
    stage = load_stage(DEMO)
    wall = stage.wall("main")
    g = wall.geometry
    cx, cy = wall.params["center"]
    r = wall.params["radius"]
    corners = g.cabinet_corner_grid().reshape(wall.cabinets[1] + 1, wall.cabinets[0] + 1, 3)
    # every vertical cabinet edge lies on the circle
    np.testing.assert_allclose(np.hypot(corners[..., 0] - cx, corners[..., 1] - cy), r, atol=1e-9)
    # each cabinet's chord is its physical width
    chords = np.linalg.norm(np.diff(corners[0, :, :2], axis=0), axis=1)
    np.testing.assert_allclose(chords, wall.cabinet.size_mm[0] / 1000.0, atol=1e-9)
    # right and left edges at the stated angles
    ang = np.degrees(np.arctan2(corners[0, :, 1] - cy, corners[0, :, 0] - cx))
    assert ang[-1] == pytest.approx(wall.params["start_deg"], abs=1e-9)
    assert ang[0] == pytest.approx(wall.params["end_deg"], abs=1e-9)
    # facets face the centre, and raster x runs left to right seen from the centre
    mid = g.raster_to_stage(np.array([[x + 0.5 * g.cabinet_px[0], 0.0] for x in g.x0]))
    to_centre = np.column_stack([cx - mid[:, 0], cy - mid[:, 1], np.zeros(len(mid))])
    assert np.all(np.einsum("ij,ij->i", g.facet_normals(), to_centre) > 0)
    looking = to_centre * -1  # from the centre toward the wall
    up = np.array([0.0, 0.0, 1.0])
    viewer_right = np.cross(looking, up)
    assert np.all(np.einsum("ij,ij->i", g.right, viewer_right) > 0)
    # bottom and top
    assert corners[-1, 0, 2] == pytest.approx(wall.params["bottom"])
    assert corners[0, 0, 2] == pytest.approx(wall.params["bottom"] + 3.0)


def test_flat_wall_and_ceiling_orientation() -> None:
    flat = load_stage(STAGES / "flat_wall.yaml").walls[0]
    g = flat.geometry
    cx, cy, cz = flat.params["center"]
    W, H = flat.raster
    # pixel centre of the top-left pixel, computed by hand from the cabinet sizes
    tl = np.array([cx - 2.5 + 0.5 * 5.0 / W, cy, cz + 1.5 - 0.5 * 3.0 / H])
    np.testing.assert_allclose(g.raster_to_stage(np.array([[0.5, 0.5]]))[0], tl, atol=1e-12)
    np.testing.assert_allclose(g.facet_normals()[0], [0, -1, 0], atol=1e-12)
    ceiling = load_stage(DEMO).wall("ceiling").geometry
    np.testing.assert_allclose(ceiling.facet_normals()[0], [0, 0, -1], atol=1e-12)
    # raster y grows toward the main wall? no: the ceiling's bottom edge (max y) is the one toward the wall
    top, bottom = ceiling.raster_to_stage(np.array([[0.0, 0.0], [0.0, float(ceiling.height_px)]]))
    assert bottom[1] > top[1]


# ------------------------------------------------------------------ errors, located

def test_error_format_for_bad_pixels(tmp_path: Path) -> None:
    text = _demo_with("pixels: [176, 176]}\n\n  - name: ceiling", 'pixels: "176x176"}\n\n  - name: ceiling')
    p = _write(tmp_path, text)
    errs = _errors(p)
    line = _line_of(text, '"176x176"')
    assert errs == [f'{p}:{line}: walls[0].cabinet.pixels: expected [w, h] positive integers, got "176x176"']


@pytest.mark.parametrize(
    "old,new,needle,key,fragment",
    [
        ("radius: 6.0 ", "radius: -6.0 ", "radius: -6.0", "walls[0].radius", "expected a value >= 0.1, got -6.0"),
        ("type: curved", "type: cylinder", "type: cylinder", "walls[0].type", "expected one of flat, curved, ceiling"),
        ("frame_rate: 24000/1001", "frame_rate: 23.5", "frame_rate", "frame_rate", "got 23.5"),
        ("    yaw_deg: 0\n", "    yaw_deg: 0\n    colour: red\n", "colour: red", "walls[1].colour", "unknown key"),
        ("    yaw_deg: 0\n", "    yaw_deg: 0\n    rotation: [0, 0, 0]\n", "rotation: [0, 0, 0]", "walls[1].rotation", "not used by a ceiling wall"),
        ("canvas: [1920, 1080]", "canvas: [1920, 0]", "canvas: [1920, 0]", "processors[0].outputs[0].canvas", "expected [w, h] canvas pixels"),
        ("rotation: 90}", "rotation: 45}", "rotation: 45}", "processors[1].outputs[0].mappings[0].rotation", "expected one of 0, 90, 180, 270"),
        ("protocol: freed", "protocol: freedd", "protocol: freedd", "tracking[0].protocol", "expected one of freed, opentrackio, osc"),
        ("port: 40000", "port: 70000", "port: 70000", "tracking[0].port", "<= 65535"),
        ("bind: 127.0.0.1", "bind: 127.0.0.300", "bind: 127.0.0.300", "tracking[0].bind", "expected an IPv4 address"),
        ("tracking: tracker-a", "tracking: tracker-b", "tracking: tracker-b", "cameras[0].tracking", "expected the name of a tracking source (tracker-a)"),
        ("sensor_mm: [24.89, 14.0]", "sensor_mm: [24.89]", "sensor_mm: [24.89]", "cameras[0].sensor_mm", "expected [w, h] sensor size in mm"),
        ("schema_version: 1", "schema_version: 7", "schema_version: 7", "schema_version", "expected 1"),
        ("    start_deg: 51.79 ", "    end_deg: 100.0\n    start_deg: 51.79 ", "end_deg: 100.0", "walls[0].end_deg", "end at 128.21 degrees"),
        ("overscan_percent: 10 ", "overscan_percent: [10, 10, 10] ", "overscan_percent", "render.inner.overscan_percent", "[left, right, bottom, top]"),
        ("genlock: internal", "genlock: house", "genlock: house", "sync.genlock", "expected one of internal, vsync, got"),
        ("genlock: internal", "genlock: cluster", "genlock: cluster", "sync.genlock",
         ("expected one of internal, vsync, got \"cluster\": render nodes (stagectl node) always follow the "
          "primary's frame states and swap barrier; use internal (or vsync) for the primary's edges and clock: system")),
    ],
)
def test_bad_values_are_located(tmp_path: Path, old: str, new: str, needle: str, key: str, fragment: str) -> None:
    text = _demo_with(old, new)
    p = _write(tmp_path, text)
    errs = _errors(p)
    line = _line_of(text, needle)
    assert len(errs) == 1, errs
    assert errs[0].startswith(f"{p}:{line}: {key}: "), errs
    assert fragment in errs[0], errs


def test_missing_required_key_points_at_its_mapping(tmp_path: Path) -> None:
    text = _demo_with("    radius: 6.0 ", "    #radius removed ")
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert err == f"{p}:{_line_of(text, '- name: main')}: walls[0].radius: required key is missing"


def test_all_errors_of_a_file_are_reported_in_line_order(tmp_path: Path) -> None:
    text = _demo_with("radius: 6.0 ", "radius: x ")
    text = text.replace("port: 40000", "port: -1")
    p = _write(tmp_path, text)
    errs = _errors(p)
    assert len(errs) == 2
    assert "walls[0].radius" in errs[0] and "tracking[0].port" in errs[1]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    text = _demo_with("name: Demo volume", "name: [Demo volume")
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert err.startswith(f"{p}:") and "YAML syntax" in err
    assert int(err.split(":")[1]) >= _line_of(text, "[Demo volume")


def test_duplicate_key(tmp_path: Path) -> None:
    text = _demo_with("    radius: 6.0 ", "    radius: 6.0 \n    radius: 7.0 ")
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert err.startswith(f"{p}:{_line_of(text, 'radius: 7.0')}: walls[0].radius: duplicate key")


# ------------------------------------------------------------------ mapping rules

def test_unmapped_cabinets_are_a_gap(tmp_path: Path) -> None:
    text = _demo_with(
        "          - {wall: ceiling, rect: [1056, 704, 352, 704], at: [1408, 0]}          # ceiling columns 6-7, rows 4-7\n",
        "",
    )
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert err.startswith(f"{p}:{_line_of(text, '- name: ceiling')}: walls: ceiling: ")
    assert "8 of 64 cabinets are not mapped" in err and "column 6, row 4" in err


def test_cabinet_mapped_twice(tmp_path: Path) -> None:
    text = _demo_with("rect: [1056, 704, 352, 704], at: [1408, 0]", "rect: [1056, 528, 352, 704], at: [1408, 0]")
    p = _write(tmp_path, text)
    errs = _errors(p)
    line = _line_of(text, "rect: [1056, 528")
    assert any(e.startswith(f"{p}:{line}: processors[0].outputs[1].mappings[2]: maps cabinet (column 6, row 3)") for e in errs), errs
    assert any("not mapped" in e for e in errs)  # the row it left out is a gap


def test_overlap_on_a_canvas(tmp_path: Path) -> None:
    text = _demo_with("rect: [1056, 704, 352, 704], at: [1408, 0]", "rect: [1056, 704, 352, 704], at: [1300, 0]")
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert err.startswith(f"{p}:{_line_of(text, 'at: [1300, 0]')}: processors[0].outputs[1].mappings[2]: overlaps tessera-a/out2 mapping 1")


def test_mapping_off_the_canvas(tmp_path: Path) -> None:
    text = _demo_with("rect: [1056, 704, 352, 704], at: [1408, 0]", "rect: [1056, 704, 352, 704], at: [1700, 0]")
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert err.startswith(f"{p}:{_line_of(text, 'at: [1700, 0]')}: processors[0].outputs[1].mappings[2]: falls off canvas 'out2'")
    assert "x 1700..2052" in err


def test_rotation_changes_the_footprint(tmp_path: Path) -> None:
    # turned back to 0 degrees, 1056 x 1408 no longer fits a 1080-high canvas
    text = _demo_with("rotation: 90}", "rotation: 0}")
    p = _write(tmp_path, text)
    (err,) = _errors(p)
    assert "falls off canvas 'out3'" in err and "y 0..1408" in err


def test_mapping_must_follow_cabinet_boundaries(tmp_path: Path) -> None:
    text = _demo_with("rect: [0, 0, 1760, 1056], at: [0, 0]", "rect: [0, 0, 1750, 1056], at: [0, 0]")
    p = _write(tmp_path, text)
    errs = _errors(p)
    assert any("expected a rectangle on cabinet boundaries of wall 'main' (multiples of 176 x 176 px)" in e for e in errs)


def test_unknown_wall_in_mapping(tmp_path: Path) -> None:
    text = _demo_with("{wall: main, rect: [0, 0, 1760, 1056]", "{wall: mian, rect: [0, 0, 1760, 1056]")
    p = _write(tmp_path, text)
    errs = _errors(p)
    assert any(".mappings[0].wall: expected one of the walls ceiling, main, got 'mian'" in e for e in errs)


# ------------------------------------------------------------------ the CLI

def test_cli_check_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "160 cabinets" in out and "4,956,160 px" in out
    assert "out3  canvas 1920 x 1080" in out and "71.7 %" in out


def test_cli_bad_file_exits_2_without_traceback(tmp_path: Path) -> None:
    p = _write(tmp_path, _demo_with("port: 40000", "port: many"))
    exe = Path(sys.executable).parent / "stagectl"
    proc = subprocess.run([str(exe), "check", str(p)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{p}:" in proc.stderr and "tracking[0].port: expected a whole number, got \"many\"" in proc.stderr
    missing = subprocess.run([str(exe), "check", str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "file not found" in missing.stderr and "Traceback" not in missing.stderr


def test_frame_rate_forms(tmp_path: Path) -> None:
    for written, exact in [("24000/1001", (24000, 1001)), ("29.97", (30000, 1001)), ("25", (25, 1)), ('"59.94"', (60000, 1001))]:
        p = _write(tmp_path, _demo_with("frame_rate: 24000/1001", f"frame_rate: {written}"))
        r = load_stage(p).frame_rate
        assert (r.num, r.den) == exact
        assert math.isclose(r.fps, exact[0] / exact[1])


def test_missing_lens_file(tmp_path: Path) -> None:
    text = _demo_with("lens: lenses/zoom_24-70.yaml", "lens: nowhere/lens.yaml")
    p = tmp_path / "stage.yaml"
    p.write_text(text)
    (err,) = _errors(p)
    assert err.startswith(f"{p}:{_line_of(text, 'nowhere/lens.yaml')}: cameras[0].lens: file not found: nowhere/lens.yaml")


def test_a_broken_lens_file_is_reported_at_its_own_line(tmp_path: Path) -> None:
    lens_text = (STAGES / "lenses" / "zoom_24-70.yaml").read_text()
    bad = lens_text.replace("focal_length_mm: 24.000", "focal_length_mm: -24.000", 1)
    assert bad != lens_text
    (tmp_path / "lenses").mkdir()
    lens = tmp_path / "lenses" / "zoom_24-70.yaml"
    lens.write_text(bad)
    p = tmp_path / "stage.yaml"
    p.write_text(DEMO.read_text())
    errs = _errors(p)
    assert len(errs) == 1
    assert f"zoom_24-70.yaml:{_line_of(bad, 'focal_length_mm: -24.000')}:" in errs[0]
    assert "focal_length_mm" in errs[0]


def test_demo_camera_has_its_lens() -> None:
    cam = load_stage(DEMO).cameras[0]
    assert cam.lens_file is not None
    ev = cam.lens_file.evaluate(0.0, 0.0)
    raw = yaml.safe_load((STAGES / "lenses" / "zoom_24-70.yaml").read_text())
    first = next(pt for pt in raw["points"] if pt["zoom"] == 0.0 and pt["focus"] == 0.0)
    assert ev.focal_length_mm == pytest.approx(first["focal_length_mm"])


def test_adaptive_overscan_settings(tmp_path: Path) -> None:
    text = _demo_with("    soft_edge: 0.05\n", "    soft_edge: 0.05\n    adaptive_overscan: {max_percent: 30, latency_ms: 120}\n")
    ad = load_stage(_write(tmp_path, text)).render.inner.adaptive
    assert ad is not None and ad.max_percent == 30.0 and ad.latency_ms == 120.0 and ad.decay_percent_per_s == 10.0
    assert load_stage(DEMO).render.inner.adaptive is None
    bad = _demo_with("    soft_edge: 0.05\n", "    soft_edge: 0.05\n    adaptive_overscan: {max_percent: -3}\n")
    p = _write(tmp_path, bad, "bad.yaml")
    (err,) = _errors(p)
    assert err.startswith(f"{p}:{_line_of(bad, 'max_percent: -3')}: render.inner.adaptive_overscan.max_percent: expected a value >= 0")
