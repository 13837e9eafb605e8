"""Takes for post: a take recorded from the simulator over real loopback UDP, solved and exported to USD, Nuke
.chan, CSV and OpenTrackIO JSON, then read back with the real readers (usd-core, the csv module, the
OpenTrackIO 1.0.1 JSON schema, OpenTimelineIO and its ALE adapter) and compared with the simulator's true path
(stagectl.tracking.moves through the registration, tracker offset and lens file, computed in post_take.py with
plain numpy): position within 0.1 mm, rotation within 0.01 deg, focal length within 0.01 mm, first and last
timecodes as the simulator labelled them (OpenTrackIO) or as the take's creation time gives them (FreeD).

Takes: FreeD (Sony profile, f-stop in the spare field) at 25 fps, matched by arrival time; OpenTrackIO at
23.976 (non-drop: SMPTE has no drop-frame at 23.976) and at 29.97 drop-frame, matched by timecode.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import rot_ptr

from stagectl.core.timebase import NS_PER_S, FrameRate, Timecode
from stagectl.post import solve_take
from stagectl.post.chan import write_chan
from stagectl.post.csvfile import write_csv, write_raw_csv
from stagectl.post.opentrackio import write_opentrackio
from stagectl.post.sheet import write_ale, write_otio
from stagectl.post.usd import write_usd
from stagectl.render.frustum import compute_camera_projection, compute_view, project

from .post_take import SENSOR_MM, record_take, rotation_angle_deg, true_camera, write_stage

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "opentrackio" / "v1.0.1" / "schema.json"
POS_TOL_M = 1e-4
ROT_TOL_DEG = 0.01
FOCAL_TOL_MM = 0.01
MOVE = "handheld"

CASES = {
    "freed-25": ("freed", "25", False),
    "opentrackio-23.976": ("opentrackio", "24000/1001", False),
    "opentrackio-29.97DF": ("opentrackio", "30000/1001", True),
}


class Shot:
    """One recorded, solved and exported take."""

    def __init__(self, root: Path, case: str) -> None:
        protocol, rate, drop = CASES[case]
        self.protocol, self.rate, self.drop = protocol, FrameRate.parse(rate), drop
        self.dir = root / case
        self.dir.mkdir()
        self.stage = write_stage(self.dir / "stage.yaml", rate, protocol)
        self.take = self.dir / "A012_T3.stgtake"
        meta = {"slate": {"scene": "12A", "take": "3", "roll": "A012", "notes": "clean plate"}, "content": "forest"}
        self.sent = record_take(self.take, protocol, rate, seconds=1.2, move=MOVE, drop_frame=drop, meta=meta)
        self.track = solve_take(self.stage, self.take)
        self.pose_frame = "body" if protocol == "freed" else "camera"
        self.truth = [true_camera(MOVE, s.t_s, self.pose_frame) for s in self.sent]

    def expected_timecodes(self) -> tuple[Timecode, Timecode]:
        """First and last labels the frames must carry: the simulator's own (OpenTrackIO), else the take's
        creation time of day at the stage rate (FreeD sends no timecode)."""
        n = len(self.sent)
        if self.protocol == "opentrackio":
            tcs = [s.sample.timing.timecode for s in (self.sent[0], self.sent[-1])]
            first, last = (Timecode(t.hours, t.minutes, t.seconds, t.frames, self.rate, t.drop_frame) for t in tcs)
            assert last - first == n - 1
            return first, last
        from stagectl.tracking.recording import read_take

        with read_take(self.take) as r:
            created = r.header.created_ns
        k0 = self.rate.frame_at_ns(created % (86_400 * NS_PER_S))
        return Timecode.from_frame(k0, self.rate), Timecode.from_frame(k0 + n - 1, self.rate)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Shot]:
    root = tmp_path_factory.mktemp("post")
    return {case: Shot(root, case) for case in CASES}


@pytest.fixture(params=list(CASES))
def shot(request: pytest.FixtureRequest, shots: dict[str, Shot]) -> Shot:
    return shots[request.param]


def _yup(v: np.ndarray) -> np.ndarray:
    """Stage (Z up) -> Y up, written out: (x, y, z) -> (x, z, -y)."""
    return np.array([v[0], v[2], -v[1]])


def _pupil(T: np.ndarray, pupil_m: float) -> np.ndarray:
    return T[:3, 3] + pupil_m * T[:3, 1]


# --------------------------------------------------------------------------------------------- solved track
def test_solved_track_follows_the_simulator(shot: Shot) -> None:
    tr = shot.track
    assert len(tr.frames) == len(shot.sent)
    assert tr.match == ("nearest" if shot.protocol == "freed" else "timecode")
    worst = [0.0, 0.0, 0.0]
    for f, (T, focal, pupil, _) in zip(tr.frames, shot.truth):
        worst[0] = max(worst[0], float(np.linalg.norm(f.T_stage_camera[:3, 3] - T[:3, 3])))
        worst[1] = max(worst[1], rotation_angle_deg(f.T_stage_camera[:3, :3], T[:3, :3]))
        worst[2] = max(worst[2], abs(f.focal_length_mm - focal))
        assert abs(f.lens.entrance_pupil_offset_m - pupil) < 1e-6
    assert worst[0] < POS_TOL_M and worst[1] < ROT_TOL_DEG and worst[2] < FOCAL_TOL_MM, worst
    first, last = shot.expected_timecodes()
    assert (tr.start_timecode, tr.end_timecode) == (first, last)
    assert tr.drop_frame is shot.drop and all(f.timecode.drop_frame is shot.drop for f in tr.frames)
    assert all(b.timecode - a.timecode == 1 for a, b in zip(tr.frames, tr.frames[1:]))
    assert (tr.slate.scene, tr.slate.take, tr.slate.roll, tr.slate.notes) == ("12A", "3", "A012", "clean plate")
    assert tr.content == "forest"
    if shot.protocol == "freed":  # the Sony profile carries f/2.8 in the spare field
        assert all(f.f_stop == pytest.approx(2.8) for f in tr.frames)
    assert len(tr.samples) == len(shot.sent)


# --------------------------------------------------------------------------------------------- USD
def _stage_pixels(f, points: np.ndarray, w_px: int) -> np.ndarray:
    """stagectl's own projection (stagectl.render.frustum, the renderer's maths) of stage points to pixels."""
    ev = f.lens
    sw, sh = SENSOR_MM
    V = compute_view(f.T_stage_camera, ev.entrance_pupil_offset_m)
    P = compute_camera_projection(ev.focal_length_mm, sw, sh, *ev.principal_point_offset_mm, (0.0, 0.0, 0.0, 0.0),
                                  0.05, 1000.0)
    ndc, w = project(P @ V, points)
    assert np.all(w > 0)
    h_px = w_px * sh / sw
    return np.column_stack(((ndc[:, 0] + 1) / 2 * w_px, (1 - ndc[:, 1]) / 2 * h_px))


def test_usd_reads_back_with_usd_core(shot: Shot) -> None:
    from pxr import Gf, Usd, UsdGeom

    path = write_usd(shot.track, shot.dir / "take.usda")
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    mpu = UsdGeom.GetStageMetersPerUnit(stage)
    assert mpu == pytest.approx(0.01)
    fps = float(shot.rate.as_fraction())
    assert stage.GetTimeCodesPerSecond() == pytest.approx(fps, rel=1e-12)
    n = len(shot.sent)
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1001, 1001 + n - 1)
    info = stage.GetRootLayer().customLayerData["stagectl"]
    first, last = shot.expected_timecodes()
    assert (info["timecodeIn"], info["timecodeOut"]) == (str(first), str(last))
    assert info["slate"]["scene"] == "12A" and info["slate"]["take"] == "3"
    cams = [p for p in stage.Traverse() if p.IsA(UsdGeom.Camera)]
    assert len(cams) == 1
    cam = UsdGeom.Camera(cams[0])
    tenth_mm = 100.0 * mpu  # lens values are in tenths of a scene unit
    # known stage points: on the wall 4.5 m ahead, around the camera's aim, and nearer
    rng = np.random.default_rng(3)
    worst_px = worst_pos = worst_rot = worst_f = 0.0
    for j, (T, focal, pupil, focus) in enumerate(shot.truth):
        gcam = cam.GetCamera(Usd.TimeCode(1001 + j))
        M = np.array(gcam.transform).T  # Gf is row-vector: transpose to act on columns
        worst_pos = max(worst_pos, float(np.linalg.norm(M[:3, 3] * mpu - _yup(_pupil(T, pupil)))))
        look = -M[:3, 2]  # USD cameras look down -Z
        up = M[:3, 1]
        worst_rot = max(worst_rot, math.degrees(math.acos(min(1.0, float(look @ _yup(T[:3, 1]) / np.linalg.norm(look))))),
                        math.degrees(math.acos(min(1.0, float(up @ _yup(T[:3, 2]) / np.linalg.norm(up))))))
        worst_f = max(worst_f, abs(gcam.focalLength * tenth_mm - focal))
        assert gcam.horizontalAperture * tenth_mm == pytest.approx(SENSOR_MM[0], abs=1e-5)
        assert gcam.verticalAperture * tenth_mm == pytest.approx(SENSOR_MM[1], abs=1e-5)
        if math.isfinite(focus):
            assert gcam.focusDistance * mpu == pytest.approx(focus, rel=1e-5)
        if shot.protocol == "freed":
            assert gcam.fStop == pytest.approx(2.8, abs=1e-5)
        # re-projection through USD's own frustum (GfCamera -> GfFrustum) against stagectl's projection
        f = shot.track.frames[j]
        aim = f.T_stage_pupil[:3, 3] + 3.0 * f.T_stage_camera[:3, 1]
        pts = np.vstack([aim + rng.uniform(-0.8, 0.8, (6, 3)), [[0.0, 4.5, 1.5], [-1.0, 4.5, 2.5]]])
        frustum = gcam.frustum
        proj = np.array(frustum.ComputeProjectionMatrix()).T
        view = np.array(frustum.ComputeViewMatrix()).T
        w_px = 1920
        h_px = w_px * SENSOR_MM[1] / SENSOR_MM[0]
        usd_px = []
        for p in pts:
            world = np.append(_yup(p) / mpu, 1.0)
            clip = proj @ view @ world
            ndc = clip[:2] / clip[3]
            usd_px.append(((ndc[0] + 1) / 2 * w_px, (1 - ndc[1]) / 2 * h_px))
        worst_px = max(worst_px, float(np.abs(np.array(usd_px) - _stage_pixels(f, pts, w_px)).max()))
    assert worst_pos < POS_TOL_M and worst_rot < ROT_TOL_DEG and worst_f < FOCAL_TOL_MM, (worst_pos, worst_rot, worst_f)
    assert worst_px < 0.01, f"USD and stagectl projections differ by {worst_px:.4f} px at 1920 px wide"
    assert Gf  # the reader above is pxr's own


# --------------------------------------------------------------------------------------------- Nuke .chan
def test_chan_reads_back(shot: Shot) -> None:
    path = write_chan(shot.track, shot.dir / "take.chan")
    rows = [line.split() for line in path.read_text().splitlines()]
    assert len(rows) == len(shot.sent) and all(len(r) == 8 for r in rows)
    assert [int(r[0]) for r in rows] == list(range(1001, 1001 + len(rows)))
    for r, (T, focal, pupil, _) in zip(rows, shot.truth):
        tx, ty, tz, rx, ry, rz, vfov = map(float, r[1:])
        assert np.linalg.norm(np.array([tx, ty, tz]) - _yup(_pupil(T, pupil))) < POS_TOL_M
        # Nuke rotation order ZXY: Ry @ Rx @ Rz on column vectors, written out independently here
        a, b, c = (math.radians(v) for v in (rx, ry, rz))
        Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
        Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
        R = Ry @ Rx @ Rz
        assert math.degrees(math.acos(min(1.0, float(-R[:, 2] @ _yup(T[:3, 1]))))) < ROT_TOL_DEG
        assert math.degrees(math.acos(min(1.0, float(R[:, 1] @ _yup(T[:3, 2]))))) < ROT_TOL_DEG
        f_from_fov = SENSOR_MM[1] / (2.0 * math.tan(math.radians(vfov) / 2.0))
        assert abs(f_from_fov - focal) < FOCAL_TOL_MM


# --------------------------------------------------------------------------------------------- CSV
def test_csv_reads_back(shot: Shot) -> None:
    path = write_csv(shot.track, shot.dir / "take.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    for name in ("x_m", "pan_deg", "focal_length_mm", "focus_distance_m", "entrance_pupil_offset_m",
                 "principal_point_x_mm", "sensor_width_mm"):
        assert name in header
    assert len(rows) == len(shot.sent)
    first, last = shot.expected_timecodes()
    assert (rows[0]["timecode"], rows[-1]["timecode"]) == (str(first), str(last))
    assert int(rows[0]["frame"]) == 1001
    for row, (T, focal, pupil, _) in zip(rows, shot.truth):
        pos = np.array([float(row[k]) for k in ("x_m", "y_m", "z_m")])
        R = rot_ptr(*(float(row[k]) for k in ("pan_deg", "tilt_deg", "roll_deg")))
        assert np.linalg.norm(pos - T[:3, 3]) < POS_TOL_M
        assert rotation_angle_deg(R, T[:3, :3]) < ROT_TOL_DEG
        assert abs(float(row["focal_length_mm"]) - focal) < FOCAL_TOL_MM
        pp = np.array([float(row[k]) for k in ("pupil_x_m", "pupil_y_m", "pupil_z_m")])
        assert np.linalg.norm(pp - _pupil(T, pupil)) < POS_TOL_M
    raw = write_raw_csv(shot.track, shot.dir / "take.raw.csv")
    with raw.open(newline="") as fh:
        raw_rows = list(csv.DictReader(fh))
    assert len(raw_rows) == len(shot.sent)
    for row, s in zip(raw_rows, shot.sent):  # before registration and offset: what the simulator sent
        assert abs(float(row["x_m"]) - s.sample.pose.x) < 1e-4 and abs(float(row["pan_deg"]) - s.sample.pose.pan) < 1e-3


# --------------------------------------------------------------------------------------------- OpenTrackIO
def test_opentrackio_samples_validate_against_the_schema(shot: Shot) -> None:
    import jsonschema

    path = write_opentrackio(shot.track, shot.dir / "take.opentrackio.jsonl")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(samples) == len(shot.sent)
    for i, (d, (T, focal, pupil, _)) in enumerate(zip(samples, shot.truth)):
        errors = list(validator.iter_errors(d))
        assert not errors, errors[0].message
        (tf,) = d["transforms"]
        pos = np.array([tf["translation"][k] for k in "xyz"])
        R = rot_ptr(tf["rotation"]["pan"], tf["rotation"]["tilt"], tf["rotation"]["roll"])
        assert np.linalg.norm(pos - T[:3, 3]) < POS_TOL_M and rotation_angle_deg(R, T[:3, :3]) < ROT_TOL_DEG
        assert abs(d["lens"]["pinholeFocalLength"] - focal) < FOCAL_TOL_MM
        assert d["lens"]["entrancePupilOffset"] == pytest.approx(pupil, abs=1e-6)
        tc = d["timing"]["timecode"]
        label = shot.track.frames[i].timecode
        assert (tc["hours"], tc["minutes"], tc["seconds"], tc["frames"]) == (
            label.hours, label.minutes, label.seconds, label.frames)
        assert tc.get("dropFrame", False) is shot.drop
        assert d["timing"]["sequenceNumber"] == i


# --------------------------------------------------------------------------------------------- take sheets
def test_take_sheet_reads_back_with_opentimelineio_and_its_ale_adapter(shots: dict[str, Shot], tmp_path: Path) -> None:
    import opentimelineio as otio

    for case, shot in shots.items():
        tracks = [shot.track, shot.track]  # the same take twice: rows stay in order and apart
        fps = float(shot.rate.as_fraction())
        first, last = shot.expected_timecodes()
        n = len(shot.sent)
        tl = otio.adapters.read_from_file(str(write_otio(tracks, tmp_path / f"{case}.otio")))
        clips = list(tl.find_clips())
        assert len(clips) == 2
        c = clips[0]
        sr = c.source_range
        assert otio.opentime.to_timecode(sr.start_time, fps, shot.drop) == str(first)
        assert sr.duration.value == n
        assert otio.opentime.to_timecode(sr.end_time_inclusive(), fps, shot.drop) == str(last)
        meta = c.metadata["stagectl"]
        assert (meta["scene"], meta["take"], meta["camera"], meta["content"]) == ("12A", "3", "cam-a", "forest")
        assert meta["lens"] == "Zoom 24-70 (example)" and meta["notes"] == "clean plate"

        ale = write_ale(tracks, tmp_path / f"{case}.ale")
        coll = otio.adapters.read_from_file(str(ale), adapter_name="ale")
        assert coll.metadata["ALE"]["header"]["FPS"] == shot.rate.label
        clips = list(coll.find_clips())
        assert len(clips) == 2
        c = clips[0]
        assert c.name == shot.track.name
        assert otio.opentime.to_timecode(c.source_range.start_time, fps, shot.drop) == str(first)
        assert c.source_range.duration.to_frames() == n  # the adapter checks End = Start + Duration itself
        fields = c.metadata["ALE"]
        assert (fields["Scene"], fields["Take"], fields["Tape"], fields["Camera"]) == ("12A", "3", "A012", "cam-a")
        assert fields["Notes"] == "clean plate" and fields["Content"] == "forest"
