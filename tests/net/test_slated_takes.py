"""Slated takes recorded inside a real `stagectl run` and handed to post (issue 14, "Takes for post").

A `stagectl run` process (--no-render) on a copy of stages/flat_wall.yaml with the example zoom lens, its
built-in simulator flying the dolly move over FreeD at 25 fps, a tracking delay of 2 frames; slated takes
started and stopped over OSC (the keyed form for the slate); the status answers read over OSC; the takes read
back with stagectl.tracking.recording and solved with stagectl.post.solve_take; `stagectl export --day` run as a
process on the day's folder. The last take is cut short by SIGKILL of the run and must still export.
"""

from __future__ import annotations

import csv
import hashlib
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from stagectl.core.timebase import FrameRate, Timecode
from stagectl.post import solve_take
from stagectl.tracking.recording import load_take

from .post_take import LENS, rotation_angle_deg
from .stage_run import EXE, OscClient, StageRun, console_yaml, flat_wall_text, stage_ports

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

SLATE = {"scene": "12A", "roll": "A001", "camera": "A", "notes": "dolly in, slow"}


def _stage(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    ports = stage_ports(tcp=("web",))
    text = flat_wall_text(ports, f"Slated {uuid.uuid4().hex[:8]}")
    text = text.replace("    camera_id: 1\n", "    camera_id: 1\n    delay_frames: 2\n")
    text = text.replace("    sensor_mm: [24.89, 14.0]", f"    sensor_mm: [24.89, 14.0]\n    lens: {LENS}")
    text += console_yaml(ports)
    p = tmp_path / "flat_wall.yaml"
    p.write_text(text)
    return p, ports


def _recording(osc: OscClient, ok, what: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        rec = osc.status().get("recording")
        if rec is not None and ok(rec):
            return rec
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s} s; last status recording: {rec}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> dict:
    """Three slated takes of scene 12A from one run: two stopped over OSC, the third cut by SIGKILL."""
    tmp_path = tmp_path_factory.mktemp("slated")
    stage, ports = _stage(tmp_path)
    osc = OscClient(ports["osc"])
    run = StageRun(stage, "--no-render", duration_s=120)
    out: dict = {"stage": stage, "tmp": tmp_path}
    try:
        run.wait_for(r"^\[")  # frames are running
        assert osc.status()["recording"] == {"rec": False, "follow": None}
        command, ok, _, first = osc.keyed("/stagectl/record/start", SLATE)
        assert (command, ok) == ("record.start", 1), first
        out["first_start"] = first
        out["rec_status"] = _recording(osc, lambda r: r["rec"] and r["path"] == first["path"] and r["frames"] >= 20,
                                       "frames recorded")
        time.sleep(1.0)
        command, ok, _, summary = osc.send("/stagectl/record/stop")
        assert ok == 1, summary
        out["first_stop"] = summary
        out["idle_status"] = _recording(osc, lambda r: not r["rec"], "REC off")

        # the next take of the scene: its number is counted up from the takes in the folder
        command, ok, _, second = osc.keyed("/stagectl/record/start", {"scene": "12A", "roll": "A001"})
        assert ok == 1, second
        out["second_start"] = second
        time.sleep(1.5)
        command, ok, _, summary2 = osc.send("/stagectl/record/stop")
        assert ok == 1, summary2
        out["second_stop"] = summary2

        # a take cut short: the run is killed while it records
        command, ok, _, third = osc.keyed("/stagectl/record/start", {"scene": "12A", "roll": "A001"})
        assert ok == 1, third
        out["third_start"] = third
        _recording(osc, lambda r: r["rec"] and r["path"] == third["path"] and r["frames"] >= 25,
                   "frames of the third take")
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(20)
    finally:
        osc.close()
        if run.proc.poll() is None:
            run.stop()
    return out


def test_record_start_takes_the_slate_and_names_the_take_after_it(day) -> None:
    first, second, third = day["first_start"], day["second_start"], day["third_start"]
    assert first["slate"] == {**SLATE, "take": 1}
    folder = Path(first["path"]).parent
    assert folder.parent == day["tmp"] / "takes" and folder.name == time.strftime("%Y-%m-%d")
    assert Path(first["path"]).name == "12A_T01_A001.stgtake"
    assert second["slate"] == {"scene": "12A", "take": 2, "roll": "A001"}  # auto-increment per scene
    assert Path(second["path"]).name == "12A_T02_A001.stgtake"
    assert third["slate"]["take"] == 3
    Timecode.parse(first["timecode_in"], FrameRate(25))


def test_status_shows_rec_slate_elapsed_and_path(day) -> None:
    rec = day["rec_status"]
    assert rec["rec"] is True and rec["path"] == day["first_start"]["path"]
    assert rec["slate"] == {**SLATE, "take": 1}
    assert rec["elapsed_s"] > 0 and rec["frames"] >= 20
    assert rec["timecode_in"] == day["first_start"]["timecode_in"]
    tc_in, tc = (Timecode.parse(rec[k], FrameRate(25)) for k in ("timecode_in", "timecode"))
    assert tc - tc_in == rec["frames"] - 1
    assert day["idle_status"] == {"rec": False, "follow": None}


def test_record_stop_returns_the_take_summary(day) -> None:
    s = day["first_stop"]
    assert s["path"] == day["first_start"]["path"] and s["slate"]["scene"] == "12A"
    assert s["frames"] >= 45  # 20 frames, then a second more at 25 fps
    tc_in, tc_out = (Timecode.parse(s[k], FrameRate(25)) for k in ("timecode_in", "timecode_out"))
    assert str(tc_in) == day["first_start"]["timecode_in"]
    assert tc_out - tc_in == s["frames"] - 1
    assert s["records"] >= s["frames"] - 5  # the simulator's datagrams, one per frame


def test_take_header_holds_slate_stage_lens_operator_rate_and_clock(day) -> None:
    take = load_take(day["first_start"]["path"])
    meta = take.header.meta
    stage = day["stage"]
    assert meta["slate"] == {**SLATE, "take": 1}
    assert meta["stage_file"] == {"path": str(stage), "sha256": hashlib.sha256(stage.read_bytes()).hexdigest()}
    (cam,) = meta["cameras"]
    assert cam["name"] == "cam" and cam["lens_file"] == str(LENS)
    assert cam["lens_sha256"] == hashlib.sha256(LENS.read_bytes()).hexdigest()
    assert meta["operator"]["cameras"]["cam"]["tracking"] == "tracker"
    assert meta["operator"]["light_cards"] == [] and meta["content"] == meta["operator"]["content"]
    assert meta["luts"] == {}
    assert meta["rate"] == "25/1" and meta["drop_frame"] is False
    assert meta["start_timecode"] == day["first_start"]["timecode_in"]
    anchor = meta["clock_anchor"]
    # the anchor pairs the two clocks: system - monotonic as this machine has it now, within 50 ms
    assert abs((anchor["system_ns"] - anchor["monotonic_ns"]) - (time.time_ns() - time.monotonic_ns())) < 5e7
    # the end record: what record.stop answered
    end = take.end
    s = day["first_stop"]
    assert (end["frames"], end["timecode_in"], end["timecode_out"], end["how"]) == (
        s["frames"], s["timecode_in"], s["timecode_out"], "stop")
    assert len(take.frames) == s["frames"]
    assert [f.frame for f in take.frames] == list(range(end["first_frame"], end["last_frame"] + 1))


def test_recorded_cameras_agree_with_a_solve_from_the_datagrams(day) -> None:
    path = day["first_start"]["path"]
    recorded = solve_take(day["stage"], path)
    assert recorded.match == "recorded" and len(recorded) == day["first_stop"]["frames"]
    assert str(recorded.start_timecode) == day["first_stop"]["timecode_in"]
    assert str(recorded.end_timecode) == day["first_stop"]["timecode_out"]
    assert recorded.slate.scene == "12A" and recorded.slate.take == "1" and recorded.slate.roll == "A001"
    resolved = solve_take(day["stage"], path, match="rendered")
    assert resolved.match == "rendered"
    by_tc = {str(f.timecode): f for f in resolved.frames}
    # the first frames of a take were drawn from samples that arrived before it started (the 2-frame delay)
    compared = 0
    for f in recorded.frames[4:]:
        g = by_tc[str(f.timecode)]
        assert np.linalg.norm(f.T_stage_camera[:3, 3] - g.T_stage_camera[:3, 3]) < 1e-4  # 0.1 mm
        assert rotation_angle_deg(f.T_stage_camera[:3, :3], g.T_stage_camera[:3, :3]) < 0.01
        assert abs(f.focal_length_mm - g.focal_length_mm) < 0.01
        assert f.lens.entrance_pupil_offset_m == pytest.approx(g.lens.entrance_pupil_offset_m, abs=1e-6)
        compared += 1
    assert compared >= 40
    # the camera moved: the agreement is not that of a parked camera
    assert np.linalg.norm(recorded.positions()[-1] - recorded.positions()[4]) > 0.05


def test_a_take_killed_mid_record_still_reads_and_exports(day) -> None:
    take = load_take(day["third_start"]["path"])
    assert take.end is None and len(take.frames) >= 25 and len(take.records) >= 20
    track = solve_take(day["stage"], day["third_start"]["path"])
    assert track.match == "recorded" and len(track) == len(take.frames)
    assert str(track.start_timecode) == day["third_start"]["timecode_in"]


def test_export_day_writes_the_sheet_of_every_take_with_tc_in_and_out(day) -> None:
    folder = Path(day["first_start"]["path"]).parent
    out = day["tmp"] / "post"
    r = subprocess.run([EXE, "export", "--day", str(folder), "--stage", str(day["stage"]), "--out", str(out),
                        "--format", "csv"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    sheet = out / f"{folder.name}.ale"
    lines = sheet.read_text().splitlines()
    cols = lines[lines.index("Column") + 1].split("\t")
    rows = [dict(zip(cols, line.split("\t"))) for line in lines[lines.index("Data") + 1:] if line]
    assert [row["Name"] for row in rows] == ["12A_T01_A001", "12A_T02_A001", "12A_T03_A001"]
    assert [row["Take"] for row in rows] == ["1", "2", "3"] and {row["Scene"] for row in rows} == {"12A"}
    for row, stop in zip(rows, (day["first_stop"], day["second_stop"])):
        assert row["Start"] == stop["timecode_in"]
        end = Timecode.parse(stop["timecode_out"], FrameRate(25)) + 1  # ALE's End is exclusive
        assert row["End"] == str(end) and int(row["Frames"]) == stop["frames"]
    assert rows[0]["Tape"] == "A001" and rows[0]["Notes"] == SLATE["notes"]
    assert (out / f"{folder.name}.otio").is_file()
    with (out / "12A_T01_A001.csv").open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == day["first_stop"]["frames"]
