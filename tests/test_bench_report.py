"""`python -m bench report`: the markdown report built from hand-made bench JSON files.

Every number is checked in its cell against a value computed here independently: frames = ms / frame period,
the period ``1000 * den / num`` ms written out per rate. The anchors' quotes and sources are checked verbatim
against the reference notes they cite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
REFERENCE = REPO / "docs" / "reference" / "CALIBRATION_AND_TIMING.md"

PERIOD_25 = 40.0  # ms
PERIOD_2997 = 1000.0 * 1001 / 30000  # 33.3667 ms
PERIOD_23976 = 1000.0 * 1001 / 24000  # 41.7083 ms
PERIOD_24 = 1000.0 / 24
PERIOD_60 = 1000.0 / 60

MACHINE = {"cpu_model": "Test CPU 9000", "cpu_count": 8, "cpus_usable": 4, "machine": "x86_64",
           "python": "3.11.7", "numpy": "2.4.6", "numba": "0.68.1"}


def stats_ms(median, p99):
    return {"median_ms": median, "p99_ms": p99, "max_ms": p99 * 1.5}


def stats_us(median, p99):
    return {"n": 1000, "median_us": median, "p90_us": (median + p99) / 2, "p99_us": p99, "max_us": p99 * 2,
            "min_us": median / 2, "mean_us": median}


def write_results(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    docs = {
        "latency": {
            "bench": "latency", "utc": "20260102T030405Z", "machine": MACHINE,
            "motion_to_photon": {
                "stage": "stages/flat_wall.yaml", "rate": "25", "seconds": 5.0, "packets": 100, "frames": 125,
                "late_frames": 1, "dropped_frames": 0, "arrival_to_present": stats_ms(50.0, 90.0),
                "edges_passed": {"0": 0, "1": 60, "2": 40, "3": 0}, "packets_buffered_a_frame_or_more": 2,
                "sample_age_at_latch": stats_ms(8.0, 20.0), "latch_to_rendered": stats_ms(30.0, 36.0)},
            "genlock": {
                "idle:24": {"frames": 480, "dropped": 0, "median_abs_us": 1.5, "p99_abs_us": 4.2,
                            "max_abs_us": 9.0, "drift_us_per_min": 0.1, "goal_p99_us": 100.0,
                            "goal_met": True},
                "loaded:29.97": {"frames": 599, "dropped": 0, "median_abs_us": 0.8, "p99_abs_us": 2500.0,
                                 "max_abs_us": 4000.0, "drift_us_per_min": 0.2, "goal_p99_us": 100.0,
                                 "goal_met": False}}},
        "tracking": {
            "bench": "tracking", "utc": "20260102T040000Z", "machine": MACHINE, "what": "tracking input",
            "settings": {"frame_rate": "30000/1001"},
            "decode": {"freed_decode_stamp": {**stats_us(2.5, 3.1), "goal_median_us": 5.0, "goal_met": True}},
            "pose_at": {"plain": {"interpolate": stats_us(3.4, 4.0)}, "goal_median_us": 10.0,
                        "goal_met": True},
            "latency": {"freed": {"send_to_pushed": stats_us(40.0, 150.0)},
                        "opentrackio": {"send_to_pushed": stats_us(90.0, 250.0)},
                        "goal": {"goal_p99_us": 200.0,
                                 "goal_met_per_protocol": {"freed": True, "opentrackio": False}}},
            "load": {"sources": [{}, {}], "rate_hz_per_source": 1000.0, "sent_total": 2000, "lost_total": 3,
                     "send_to_pushed": stats_us(60.0, 300.0)}},
        "frustum": {
            "bench": "frustum", "utc": "20260102T050000Z", "machine": MACHINE,
            "stages": [{"label": "10k", "cabinets": 10000, "numba": stats_us(20.0, 120.0),
                        "numpy": stats_us(9000.0, 12000.0)}],
            "goals": {"p99_goal_us": 100.0, "p99_10k_met": False}},
        "render": {
            "bench": "render", "utc": "20260102T060000Z", "machine": MACHINE,
            "renderer": "llvmpipe (LLVM 15.0.6, 256 bits) (Mesa/X.org), OpenGL 4.5 core via egl",
            "settings": {"stage": "stages/flat_wall.yaml", "move": "dolly", "inner_resolution": [640, 360]},
            "modes": {"frame-sync": {"readback": "sync", "fps": 33.3,
                                     "frame": {"n": 96, "median_ms": 30.0, "p99_ms": 46.0}}},
            "summary": {"goal_fps": 24.0, "goal_met_sync": True}},
    }
    for name, doc in docs.items():
        (d / f"{name}-latest.json").write_text(json.dumps(doc), encoding="utf-8")
    return d


def table_rows(text: str) -> list[list[str]]:
    """Every markdown table row of the report, as cells (escaped pipes kept inside their cell)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = line.strip().strip("|").replace("\\|", "\0").split("|")
            rows.append([c.strip().replace("\0", "|") for c in cells])
    return rows


def row(text: str, *starts: str) -> list[str]:
    """The one row whose cells begin (in order, from the first) with ``starts``."""
    found = [r for r in table_rows(text)
             if len(r) >= len(starts) and all(c.startswith(s) for c, s in zip(r, starts))]
    assert len(found) == 1, (starts, found)
    return found[0]


def numbers(cell: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*\.?\d*(?:e-?\d+)?", cell)]


def close(got: float, want: float, rel: float = 0.006) -> bool:
    return abs(got - want) <= rel * abs(want)


def test_suite_tables_put_each_number_in_its_cell(tmp_path: Path) -> None:
    text = report.build_report(write_results(tmp_path / "results"))
    r = row(text, "motion-to-photon in software")
    med, med_fr = numbers(r[1])
    p99, p99_fr = numbers(r[2])
    assert (med, p99) == (50.0, 90.0)
    assert close(med_fr, 50.0 / PERIOD_25) and close(p99_fr, 90.0 / PERIOD_25)  # 1.25 and 2.25 frames
    r = row(text, "latch → frame rendered")
    assert close(numbers(r[1])[1], 30.0 / PERIOD_25) and close(numbers(r[2])[1], 36.0 / PERIOD_25)
    r = row(text, "packets that arrived before a frame's latch")
    assert r[1] == "2" and r[3] == "0" and r[4] == "not met"
    r = row(text, "genlock edge error |present − ideal edge|, loaded, 29.97 fps")
    assert numbers(r[2]) == [2500.0] and r[2].endswith("µs") and r[4] == "not met"
    assert row(text, "genlock edge error |present − ideal edge|, idle, 24 fps")[4] == "met"
    r = row(text, "FreeD bytes → TrackingSample")
    assert numbers(r[1]) == [2.5] and numbers(r[2]) == [3.1] and numbers(r[3]) == [5.0] and r[4] == "met"
    assert row(text, "loopback send → timeline, opentrackio")[4] == "not met"
    r = row(text, "2 sources × 1,000 packets/s")
    assert "lost 3 of 2000" in r[0] and r[4] == "not met"
    r = row(text, "10k: 10000 cabinets")
    assert numbers(r[2]) == [120.0, 12000.0] and r[4] == "not met"
    r = row(text, "whole frame, frame-sync")
    assert numbers(r[1]) == [30.0] and numbers(r[2]) == [46.0] and r[4] == "met"
    # every suite names its machine; a missing suite is said to be missing, the rest still reported
    assert text.count("Machine: Test CPU 9000, 4 cores, Python 3.11.7, numpy 2.4.6, numba 0.68.1") == 4
    assert "Machine: Test CPU 9000, 4 cores, Python 3.11.7, numpy 2.4.6, numba 0.68.1, llvmpipe GL" in text
    assert "Not in this report: no cluster-latest.json (run `python -m bench cluster`)." in text


def test_comparison_in_frames_of_each_figures_own_rate(tmp_path: Path) -> None:
    text = report.build_report(write_results(tmp_path / "results"))
    machine = "Test CPU 9000, 4 cores, Python 3.11.7, numpy 2.4.6, numba 0.68.1 (2026-01-02 03:04 UTC)"
    r = row(text, "render node", "stagectl: tracking packet arrival → frame presented")
    a, b = numbers(r[2])
    assert close(a, 50.0 / PERIOD_25) and close(b, 90.0 / PERIOD_25)
    assert r[4] == "25 fps" and r[6] == machine
    r = row(text, "render node", "stagectl: render one frame")  # flat_wall.yaml runs at 25 fps
    a, b = numbers(r[2])
    assert close(a, 30.0 / PERIOD_25) and close(b, 46.0 / PERIOD_25) and r[4] == "25 fps"
    assert r[6].endswith("llvmpipe GL (2026-01-02 06:00 UTC)")
    r = row(text, "tracking input", "stagectl: loopback send → timeline, freed")
    a, b = numbers(r[2])
    assert close(a, 0.040 / PERIOD_2997) and close(b, 0.150 / PERIOD_2997) and r[4] == "30000/1001 fps"
    r = row(text, "frame pacing", "stagectl: frame edge error |present − ideal|, loaded, 29.97 fps")
    assert close(numbers(r[2])[1], 2.5 / PERIOD_2997)
    r = row(text, "frame pacing", "stagectl: frame edge error |present − ideal|, idle, 24 fps")
    assert close(numbers(r[2])[1], 0.0042 / PERIOD_24) and r[4] == "24 fps"
    r = row(text, "render node", "stagectl: frustum maths, 10000 cabinets")
    assert close(numbers(r[2])[1], 0.120 / PERIOD_60) and r[4] == "60 fps"
    assert not [x for x in table_rows(text) if "swap barrier" in x[1]]  # no cluster JSON, no cluster rows
    # published figures: frame counts as published, ms figures in frames of 24000/1001
    r = row(text, "end to end", "*The Mandalorian* S1")
    assert r[2] == "10–12" and r[4] == "as published"
    assert r[5] == ("https://theasc.com/articles/the-mandalorian "
                    "(docs/reference/CALIBRATION_AND_TIMING.md §6.1)")
    r = row(text, "end to end", "Blog (low authority): ")
    lo, hi = numbers(r[2])
    assert close(lo, 13.0 / PERIOD_23976) and close(hi, 58.0 / PERIOD_23976)
    assert r[4].startswith("24000/1001 fps")
    r = row(text, "tracking input", "Qualisys")
    lo, hi = numbers(r[2])
    assert close(lo, 6.0 / PERIOD_23976) and close(hi, 7.0 / PERIOD_23976)
    assert row(text, "LED processor", "Megapixel HELIOS")[2] == "3 → 1"
    # the reading compares with the notes' 2-frame render-node budget: p99 2.25 frames is above it
    assert "took 1.25 frames median and 2.25 p99 at 25 fps" in text and "the p99 is above that" in text


def test_anchors_quote_the_reference_notes_verbatim() -> None:
    notes = REFERENCE.read_text(encoding="utf-8")
    for a in report.ANCHORS:
        assert a.figure in notes, a.figure
        assert a.source in notes, a.source
        assert a.item.split(",")[0] in notes, a.item
    assert report.RENDER_BUDGET in notes


def test_cli_writes_the_report_and_survives_a_broken_file(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results")
    (results / "frustum-latest.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "R.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(results),
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} (3 of 5 suites)" in proc.stdout
    assert "frustum: frustum-latest.json is unreadable" in proc.stderr and "Traceback" not in proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "Not in this report: frustum-latest.json is unreadable" in text
    assert close(numbers(row(text, "motion-to-photon in software")[1])[1], 50.0 / PERIOD_25)
    proc = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("rate, want", [("24000/1001", PERIOD_23976), ("25", 40.0), ("29.97", PERIOD_2997),
                                        ("60", PERIOD_60)])
def test_frame_period_is_exact(rate: str, want: float) -> None:
    assert report.period_ms(rate) == pytest.approx(want, rel=1e-15)
