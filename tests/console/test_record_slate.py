"""record.start's slate: arguments, auto-increment from the takes in the folder, file names; the take's
rendered-camera and end records (kinds 3 and 4) and how readers treat them; the tracker slate and the
recording flag that --follow-recording follows."""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from stagectl.console.commands import CommandError, take_file_name, validate
from stagectl.console.live import _Follower, parse_tracker_slate
from stagectl.console.state import OperatorState
from stagectl.tracking.recording import FRAME_LAYOUT, Recorder, load_take, read_take


def _take(path: Path, slate: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Recorder(path, meta={"slate": slate}).close()


def test_take_numbers_count_up_per_scene_from_the_takes_in_the_folder(demo, stage_dir) -> None:
    state = OperatorState.initial(demo)
    args = validate("record.start", {"scene": "12A", "roll": "A001"}, demo, state)
    assert args["take"] == 1
    day = Path(args["path"]).parent
    assert day.parent == stage_dir / "takes" and day.name == time.strftime("%Y-%m-%d")
    assert Path(args["path"]).name == "12A_T01_A001.stgtake"
    takes = stage_dir / "takes"
    _take(takes / "old" / "a.stgtake", {"scene": "12A", "take": 4})
    _take(takes / "b.stgtake", {"scene": "12A", "take": "7"})  # a slate text counts too
    _take(takes / "c.stgtake", {"scene": "13", "take": 20})  # another scene does not
    (takes / "junk.stgtake").write_bytes(b"not a take")  # unreadable files are passed over
    assert validate("record.start", {"scene": "12A"}, demo, state)["take"] == 8
    assert validate("record.start", {"scene": "13"}, demo, state)["take"] == 21
    assert validate("record.start", {"scene": "14"}, demo, state)["take"] == 1
    # the name a take would get exists: the next number (auto), an error (given)
    _take(day / "14_T01.stgtake", {"scene": "other"})
    a = validate("record.start", {"scene": "14"}, demo, state)
    assert (a["take"], Path(a["path"]).name) == (2, "14_T02.stgtake")
    with pytest.raises(CommandError, match="take 1 of scene '14' exists already"):
        validate("record.start", {"scene": "14", "take": 1}, demo, state)
    # without a scene: the stage-named file as before, the take counted among the takes without a scene
    a = validate("record.start", {}, demo, state)
    assert Path(a["path"]).parent == takes and a["take"] == 1


@pytest.mark.parametrize(("args", "error"), [
    ({"scene": ""}, "record.start: scene: expected a text of 1..32 printable characters, got ''"),
    ({"scene": "x" * 33}, "record.start: scene: expected a text of 1..32"),
    ({"scene": "a\nb"}, "record.start: scene: expected a text"),
    ({"take": 0}, "record.start: take: expected a whole number 1..9999, got 0"),
    ({"take": 2.5}, "record.start: take: expected a whole number 1..9999, got 2.5"),
    ({"take": True}, "record.start: take: expected a whole number 1..9999, got true"),
    ({"camera": "ABCDEFGHI"}, "record.start: camera: expected a text of 1..8"),
    ({"notes": "n" * 501}, "record.start: notes: expected a text of 1..500"),
    ({"drop_frame": True}, "drop-frame timecode exists only at 29.97 and 59.94 fps; the stage runs at"),
])
def test_bad_slates_are_refused(demo, args, error) -> None:
    with pytest.raises(CommandError) as exc:
        validate("record.start", args, demo, OperatorState.initial(demo))
    assert error in str(exc.value)


def test_take_file_names_keep_only_safe_characters() -> None:
    assert take_file_name("12A", 3, "A001") == "12A_T03_A001.stgtake"
    assert take_file_name("sc 5/../x", 120) == "sc-5-..-x_T120.stgtake"


def test_tracker_slates() -> None:
    assert parse_tracker_slate("A101_A_4") == {"scene": "A101", "camera": "A", "take": 4}
    assert parse_tracker_slate("Scene 5 take 2") == {"scene": "Scene 5 take 2"}
    assert parse_tracker_slate("A_B_C") == {"scene": "A_B_C"}
    assert parse_tracker_slate("") == {} and parse_tracker_slate(None) == {}


def _frame_take(path: Path, n: int) -> None:
    rec = Recorder(path, meta={"cameras": [{"name": "cam-a"}], "rate": "25/1"}, sources={"t": "freed"})
    for k in range(n):
        rec.append(1000 + k, "t", bytes([k]) * 29)
        T = np.eye(4)
        T[0, 3] = k / 10
        rec.append_frame(0, 2000 + k, 100 + k, 900 + k, T, 35.0 + k, (0.1, -0.2), 0.05, 0.5, 0.25)
    rec.end({"frames": n})
    rec.close()


def test_rendered_camera_and_end_records_read_back_and_datagram_readers_skip_them(tmp_path) -> None:
    path = tmp_path / "t.stgtake"
    _frame_take(path, 5)
    take = load_take(path)
    assert [r.data for r in take.records] == [bytes([k]) * 29 for k in range(5)]  # datagrams only
    assert take.end == {"frames": 5} and len(take.frames) == 5
    f = take.frames[3]
    assert (f.camera, f.frame, f.label, f.query_ns, f.focal_mm) == ("cam-a", 103, 903, 2003, 38.0)
    assert np.array(f.T_stage_camera)[0, 3] == pytest.approx(0.3)
    assert f.principal_point_mm == (0.1, -0.2) and np.isnan(f.iris) and np.isnan(f.focus_distance_m)


def test_a_damaged_frame_record_is_skipped_and_the_reader_resynchronises(tmp_path) -> None:
    path = tmp_path / "t.stgtake"
    _frame_take(path, 6)
    raw = bytearray(path.read_bytes())
    with read_take(path) as r:
        list(r)
        third = r.frames[2].offset
    raw[third + 8 + 12 + 20] ^= 0xFF  # a byte inside the third frame's payload: its CRC fails
    path.write_bytes(bytes(raw))
    take = load_take(path)
    assert [f.frame for f in take.frames] == [100, 101, 103, 104, 105]
    assert len(take.records) == 6 and len(take.gaps) == 1 and take.end == {"frames": 6}
    # cut inside the end record: a torn tail, everything before it reads
    path.write_bytes(bytes(raw[:-3]))
    take = load_take(path)
    assert take.end is None and len(take.frames) == 5 and take.ignored_bytes > 0
    assert FRAME_LAYOUT.size == 204


class _Receiver:
    name = "tracker-otio"

    def __init__(self) -> None:
        self.sample = None

    def last(self):
        return None if self.sample is None else (0, self.sample)

    def set(self, recording, slate=None) -> None:
        self.sample = types.SimpleNamespace(tracker=types.SimpleNamespace(recording=recording, slate=slate))


class _Hub:
    def __init__(self) -> None:
        self.asked: list[tuple[str, dict, str]] = []
        self.event = threading.Event()

    def submit(self, name, args, who):
        self.asked.append((name, args, who))
        self.event.set()
        return {"ok": True}


def _wait(hub: _Hub, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(hub.asked) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_follower_starts_and_stops_takes_on_the_recording_flag(tmp_path) -> None:
    hub, rx = _Hub(), _Receiver()
    rx.set(False, "A101_A_4")  # not recording when followed: nothing to stop
    f = _Follower(hub, rx, say=lambda s: None, period_s=0.005)
    f.start()
    try:
        time.sleep(0.05)
        assert hub.asked == []
        rx.set(True, "A101_A_4")
        _wait(hub, 1)
        rx.set(True, "A101_A_4")  # still recording: nothing more
        time.sleep(0.05)
        rx.set(False, "A101_A_4")
        _wait(hub, 2)
        rx.sample = types.SimpleNamespace(tracker=None)  # a sample without a tracker block changes nothing
        time.sleep(0.05)
    finally:
        f.stop()
    who = "tracker:tracker-otio"
    assert hub.asked == [("record.start", {"scene": "A101", "camera": "A", "take": 4}, who),
                         ("record.stop", {}, who)]
