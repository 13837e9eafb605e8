"""The console's effects inside `stagectl run`: content.select, camera.set, record.start / record.stop and
stage.reload change (or refuse to change) what the running stage does, seen from outside the process.

Real `stagectl run` processes on copies of stages/flat_wall.yaml (free ports, a stage name of their own so the
shared-memory sinks never collide), commands over OSC from 127.0.0.1 and over ZeroMQ (`stagectl ctl`), the
canvases read back from the run's shared-memory sink, FreeD packets sent by the test over loopback UDP, take
files read back with stagectl.tracking.recording.load_take. Rendering is real (EGL, llvmpipe in CI).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagectl.tracking.codecs.freed import FreeDPacket, encode_freed

from .stage_run import (
    EXE,
    OscClient,
    StageRun,
    console_yaml,
    first_frame,
    flat_wall_text,
    free_port,
    stage_ports,
)

#: The wall's mapping rectangle on out1 (flat_wall.yaml: rect [0, 0, 1760, 1056] at [0, 0]), rows, columns.
WALL = (slice(0, 1056), slice(0, 1760))
#: The plate's colour (8-bit sRGB codes, RGB): the canvases carry sRGB codes, so it comes back as is.
PLATE_RGB = np.array([40, 180, 90])

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


# ------------------------------------------------------------------------------------------------ helpers


def _stage_text(ports: dict[str, int], name: str) -> str:
    """flat_wall.yaml on free ports under its own name, with a second FreeD source ``tracker2`` (camera ID 2,
    no simulator: the test feeds it) and a console section (OSC obeyed from 127.0.0.1 only)."""
    text = flat_wall_text(ports, name)
    second = (f"  - name: tracker2\n    protocol: freed\n    bind: 127.0.0.1\n"
              f"    port: {ports['tracking2']}\n    camera_id: 2\n\ncameras:")
    return text.replace("\ncameras:", "\n" + second, 1) + console_yaml(ports)


def _stage(tmp_path: Path, extra: str = "") -> tuple[Path, dict[str, int]]:
    """The stage copy (``_stage_text``, plus ``extra`` YAML at its end) in ``tmp_path`` and its ports."""
    ports = stage_ports(udp=("tracking", "tracking2", "osc"))
    p = tmp_path / "flat_wall.yaml"
    p.write_text(_stage_text(ports, f"Effects {uuid.uuid4().hex[:8]}") + extra)
    return p, ports


class _Run(StageRun):
    """A :class:`StageRun` of 90 s that can wait until frames run."""

    def __init__(self, stage: Path, *extra: str) -> None:
        super().__init__(stage, *extra, duration_s=90)

    def started(self) -> str | None:
        """Wait until frames run; the sink's shared-memory name (None with --no-render)."""
        m = self.wait_for(r"shared memory '([A-Za-z0-9_]+)'|--no-render")
        self.wait_for(r"^\[")  # the first status line: frames are running
        return m.group(1)


def _camera_until(osc: OscClient, ok, what: str, timeout_s: float = 10.0) -> dict:
    """Poll the status (published a few times a second) until camera ``cam``'s entry satisfies ``ok``; the
    entry."""
    deadline = time.monotonic() + timeout_s
    while True:
        cam = osc.status().get("cameras", {}).get("cam", {})
        if ok(cam):
            return cam
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s} s; camera cam's last status: {cam}")
        time.sleep(0.1)


def _at(cam: dict, xyz: tuple[float, float, float]) -> bool:
    """The status's camera position is ``xyz`` (stage m) within 1 mm."""
    return cam.get("position_m") is not None and bool(np.allclose(cam["position_m"], xyz, atol=1e-3))


def _plate_share(pixels: np.ndarray) -> float:
    """Share of the wall's canvas pixels within 3 codes of the plate's colour in every channel."""
    wall = pixels[WALL[0], WALL[1], :3].reshape(-1, 3).astype(int)
    return float(np.mean(np.all(np.abs(wall - PLATE_RGB) <= 3, axis=1)))


class _FreeD:
    """Sends FreeD D1 packets for camera ID 2 to a port, once or every ``period_s`` from a thread; the pose is
    given in stage conventions (metres, stage pan) and encoded in FreeD's (mm, pan positive to the right)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.pose = (0.0, 0.0, 1.5, 0.0, 0.0)  # x, y, z (m), pan, tilt (deg)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def packet(x_m: float, y_m: float, z_m: float, pan_deg: float = 0.0, tilt_deg: float = 0.0) -> bytes:
        return encode_freed(FreeDPacket(2, -pan_deg, tilt_deg, 0.0, x_m * 1000.0, y_m * 1000.0, z_m * 1000.0,
                                        0, 0, 0))

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def start(self, period_s: float = 0.02) -> _FreeD:
        def run() -> None:
            while not self._stop.wait(period_s):
                self.send(self.packet(*self.pose))
        self._thread = threading.Thread(target=run, name="freed-feed", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.sock.close()


def _lit(pixels: np.ndarray, cols: slice) -> float:
    """Share of the canvas pixels in the wall's rows (0..1055) and columns ``cols`` that are not black."""
    return float(np.mean(pixels[:1056, cols, :3].max(axis=2) > 0))


# ------------------------------------------------------------------------------------------------- tests


def test_content_select_and_camera_set_change_the_running_stage_and_survive_a_restart(tmp_path: Path) -> None:
    from stagectl.render.sink import SinkReader

    adaptive = "{max_percent: 40, latency_ms: 100, decay_percent_per_s: 1000}"
    stage, ports = _stage(tmp_path, f"\nrender:\n  inner:\n    adaptive_overscan: {adaptive}\n")
    (tmp_path / "scenes").mkdir()  # console.paths.content: the only folder content.select may name
    plate = tmp_path / "scenes" / "plate.png"
    assert cv2.imwrite(str(plate), np.full((256, 512, 3), PLATE_RGB[::-1], np.uint8))  # BGR on disk
    broken = tmp_path / "scenes" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is no image")
    state_file = tmp_path / "operator.json"
    feed = _FreeD(ports["tracking2"])
    osc = OscClient(ports["osc"])
    run = _Run(stage, "--state-file", str(state_file))
    reader = None
    try:
        reader = SinkReader(run.started(), timeout_s=10)
        frame0, pixels = first_frame(reader, 0)
        assert _plate_share(pixels) < 0.01  # the procedural world

        # --- content.select to a solid-colour 360 plate: the whole wall (outer and inner) shows its colour
        # from the acknowledged frame on
        command, ok, applied_at, result = osc.send("/stagectl/content/select", "scenes/plate.png")
        assert (command, ok) == ("content.select", 1), result
        assert applied_at > frame0 and result["content"].startswith("360 plate"), result
        frame, pixels = first_frame(reader, applied_at)
        assert _plate_share(pixels) > 0.99, (frame, applied_at, _plate_share(pixels))
        assert osc.state()["state"]["content"] == str(plate)

        # --- a file that exists but is no image: refused with the reason, nothing changes
        command, ok, frame_no, error = osc.send("/stagectl/content/select", "scenes/broken.png")
        assert (command, ok, frame_no) == ("content.select", 0, -1)
        assert error.startswith("content.select: ") and "broken.png" in error and "\n" not in error, error
        assert osc.state()["state"]["content"] == str(plate)
        frame, pixels = first_frame(reader, frame + 2)
        assert _plate_share(pixels) > 0.99

        # --- switch the camera to the second source, which only this test feeds: the status's position
        # follows the test's packets (FreeD mm -> stage m; no lens offset: the pupil is the tracked point)
        feed.pose = (0.75, 0.5, 1.25, 3.0, 0.0)
        feed.start()
        command, ok, applied_at, result = osc.send("/stagectl/camera/set", "cam", "tracking", "tracker2")
        assert (command, ok, result["tracking"]) == ("camera.set", 1, "tracker2"), result
        cam = _camera_until(osc, lambda c: c["source"] == "tracker2" and _at(c, (0.75, 0.5, 1.25)),
                            "camera cam on tracker2 at the test's position")
        assert cam["pan_deg"] == pytest.approx(3.0, abs=1e-3) and cam["tracking"] == "live", cam
        feed.pose = (-0.5, 1.0, 1.75, -4.0, 2.0)
        cam = _camera_until(osc, lambda c: _at(c, (-0.5, 1.0, 1.75)), "camera cam at the second position")
        assert cam["pan_deg"] == pytest.approx(-4.0, abs=1e-3)
        assert cam["tilt_deg"] == pytest.approx(2.0, abs=1e-3)

        # --- overscan and soft edge: the status's camera entry follows from the next status on; the stage
        # sizes its overscan adaptively, and the operator's overscan is its floor (the camera stands still)
        command, ok, applied_at, result = osc.send("/stagectl/camera/set", "cam", "overscan_percent",
                                                   5.0, 10.0, 15.0, 20.0, "soft_edge", 0.25)
        assert (command, ok) == ("camera.set", 1), result
        assert result["overscan_percent"] == [5.0, 10.0, 15.0, 20.0] and result["soft_edge"] == 0.25
        _camera_until(osc, lambda c: c.get("soft_edge") == 0.25
                      and c.get("overscan_percent") == [5.0, 10.0, 15.0, 20.0],
                      "overscan 5/10/15/20 % and soft edge 0.25 in the status")

        # --- delay and smoothing: accepted, carried in the operator state; a bad value is refused
        command, ok, _, result = osc.keyed("/stagectl/camera/set", {
            "camera": "cam", "delay_frames": 2.5, "smoothing": {"min_cutoff_hz": 1.5, "beta": 0.25}})
        assert (command, ok) == ("camera.set", 1), result
        cam_state = osc.state()["state"]["cameras"]["cam"]
        assert cam_state["delay_frames"] == 2.5
        assert cam_state["smoothing"] == {"min_cutoff_hz": 1.5, "beta": 0.25, "d_cutoff_hz": 1.0}
        assert cam_state["tracking"] == "tracker2" and cam_state["soft_edge"] == 0.25
        command, ok, _, error = osc.send("/stagectl/camera/set", "cam", "delay_frames", 31.0)
        assert ok == 0 and "delay_frames" in error, error
        # the steady pose comes through the delayed, smoothed timeline unchanged
        _camera_until(osc, lambda c: _at(c, (-0.5, 1.0, 1.75)), "the pose through delay and smoothing")
    finally:
        if reader is not None:
            reader.close()
        feed.close()
        out = run.stop()
    assert "content is now 360 plate" in out, out

    # --- restart with the same operator state: the plate, the camera's settings and its source come back
    feed = _FreeD(ports["tracking2"])
    feed.pose = (0.25, 0.75, 1.5, 0.0, 0.0)
    run = _Run(stage, "--state-file", str(state_file))
    reader = None
    try:
        feed.start()
        reader = SinkReader(run.started(), timeout_s=10)
        frame, pixels = first_frame(reader, 0)
        assert _plate_share(pixels) > 0.99, (frame, _plate_share(pixels))
        cam = _camera_until(osc, lambda c: _at(c, (0.25, 0.75, 1.5)), "the restored camera on tracker2")
        assert cam["source"] == "tracker2" and cam["soft_edge"] == 0.25, cam
        assert cam["overscan_percent"] == [5.0, 10.0, 15.0, 20.0], cam
    finally:
        if reader is not None:
            reader.close()
        feed.close()
        osc.close()
        run.stop()


def test_record_start_and_stop_write_the_tracking_of_that_interval(tmp_path: Path) -> None:
    from stagectl.tracking.recording import load_take

    stage, ports = _stage(tmp_path)
    keys = subprocess.run([EXE, "keys", str(stage)], capture_output=True, text=True, timeout=60, check=False)
    assert keys.returncode == 0, keys.stderr
    feed = _FreeD(ports["tracking2"])
    osc = OscClient(ports["osc"])
    run = _Run(stage, "--no-render")
    take_path = tmp_path / "takes" / "scene1.stgtake"

    def burst(tag: float, n: int) -> list[bytes]:
        """``n`` packets told apart by their x (mm), 5 ms apart."""
        sent = []
        for i in range(n):
            sent.append(_FreeD.packet(tag + i / 1000.0, 0.5, 1.5))
            feed.send(sent[-1])
            time.sleep(0.005)
        return sent

    try:
        run.started()
        assert any("ZeroMQ commands on tcp://127.0.0.1:" in line for line in run.lines), run.lines
        before = burst(1.0, 5)
        time.sleep(0.2)  # every one of them arrived before the take starts
        t_asked = time.monotonic_ns()  # the take starts at a frame boundary after this
        ctl = subprocess.run([EXE, "ctl", str(stage), "record.start", "path=takes/scene1.stgtake", "--json"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        ack = json.loads(ctl.stdout)
        assert ack["ok"] and ack["result"]["path"] == str(take_path), ack
        during = burst(2.0, 20)

        # a second take while this one runs: refused, the first goes on
        command, ok, _, error = osc.send("/stagectl/record/start", "takes/scene2.stgtake")
        assert (command, ok) == ("record.start", 0) and "being recorded already" in error, error
        assert not (tmp_path / "takes" / "scene2.stgtake").exists()
        during += burst(3.0, 10)
        time.sleep(0.2)  # every one of them arrived before the take stops
        command, ok, _, result = osc.send("/stagectl/record/stop")
        t_stopped = time.monotonic_ns()  # the take stopped at a frame boundary before this
        assert (command, ok) == ("record.stop", 1), result
        assert result["path"] == str(take_path) and result["records"] >= len(during), result
        assert osc.state()["state"]["recording"] is None

        # the next take straight away: it records what follows, the first one nothing more
        command, ok, _, second = osc.send("/stagectl/record/start", "takes/scene2.stgtake")
        assert ok == 1, second
        after = burst(4.0, 5)
        time.sleep(0.2)
        command, ok, _, _ = osc.send("/stagectl/record/stop")
        assert ok == 1
    finally:
        feed.close()
        osc.close()
        out = run.stop()
    assert f"take {take_path} closed" in out, out

    take = load_take(take_path)
    assert take.ignored_bytes == 0
    names = {name for name, _ in take.sources.values()}
    assert names == {"tracker", "tracker2"}, take.sources
    mine = [r for r in take.records if r.source == "tracker2"]
    assert [r.data for r in mine] == during  # exactly the packets of the interval, in order, raw
    assert not set(before + after) & {r.data for r in take.records}
    assert [r.data for r in load_take(second["path"]).records if r.source == "tracker2"] == after
    # arrival stamps: the receiver's time.monotonic_ns(), the clock this test reads too
    assert all(t_asked <= r.arrival_ns <= t_stopped for r in take.records if r.source in ("tracker", "tracker2"))
    assert all(r.protocol == "freed" for r in mine)
    # the simulator kept feeding the first source while it recorded: its packets are in the take too
    simulated = [r for r in take.records if r.source == "tracker"]
    assert len(simulated) >= 3 and all(r.protocol == "freed" and len(r.data) == 29 for r in simulated)
    # the ack counts what was appended when the taps came off; a datagram already inside its tap then may
    # still land
    assert result["records"] <= len(take.records) <= result["records"] + 1


def test_stage_reload_applies_a_compatible_edit_and_refuses_the_rest(tmp_path: Path) -> None:
    from stagectl.render.sink import SinkReader

    stage, ports = _stage(tmp_path)
    original = stage.read_text()
    (tmp_path / "scenes").mkdir()  # console.paths.content
    plate = tmp_path / "scenes" / "plate.png"
    assert cv2.imwrite(str(plate), np.full((256, 512, 3), PLATE_RGB[::-1], np.uint8))
    osc = OscClient(ports["osc"])
    run = _Run(stage)
    reader = None
    try:
        reader = SinkReader(run.started(), timeout_s=10)
        frame, pixels = first_frame(reader, 0)
        assert _lit(pixels, slice(0, 100)) > 0.9 and _lit(pixels, slice(1780, 1920)) == 0.0  # wall: x 0..1759
        command, ok, applied_at, result = osc.send("/stagectl/content/select", "scenes/plate.png")
        assert ok == 1, result
        frame, pixels = first_frame(reader, applied_at)
        assert _plate_share(pixels) > 0.99

        # --- the wall's mapping moves 100 px right on the canvas: reloaded from the acked frame on, and the
        # operator's content stays (the stage file still says procedural)
        moved = original.replace("at: [0, 0]", "at: [100, 0]")
        stage.write_text(moved)
        command, ok, applied_at, result = osc.send("/stagectl/stage/reload")
        assert (command, ok) == ("stage.reload", 1), result
        assert result["stage"] == re.search(r"^name: (.+)$", original, re.MULTILINE).group(1), result
        assert result["warnings"] == [], result
        frame, pixels = first_frame(reader, applied_at)
        assert _lit(pixels, slice(0, 100)) == 0.0 and _lit(pixels, slice(1780, 1860)) > 0.9, frame
        shifted = pixels[:1056, 100:1860, :3].reshape(-1, 3).astype(int)
        assert np.mean(np.all(np.abs(shifted - PLATE_RGB) <= 3, axis=1)) > 0.99
        assert osc.state()["state"]["content"] == str(tmp_path / "scenes" / "plate.png")

        # --- a new frame rate cannot be applied to a running stage: refused, naming what changed
        stage.write_text(moved.replace("frame_rate: 25", "frame_rate: 30"))
        command, ok, frame_no, error = osc.send("/stagectl/stage/reload")
        assert (command, ok, frame_no) == ("stage.reload", 0, -1)
        assert error.startswith("stage.reload: the frame rate changed: restart stagectl run"), error
        assert osc.status()["rate"] == "25"
        frame2, pixels = first_frame(reader, frame + 10)  # frames keep coming, with the reloaded mapping
        assert _lit(pixels, slice(0, 100)) == 0.0 and _lit(pixels, slice(1780, 1860)) > 0.9

        # --- a tracking source's port and a new camera: both named, nothing changes
        text = original.replace(f"port: {ports['tracking2']}", f"port: {free_port(socket.SOCK_DGRAM)}")
        stage.write_text(text.replace("    sensor_mm: [24.89, 14.0]\n", "    sensor_mm: [24.89, 14.0]\n"
                                      "  - name: cam2\n    tracking: tracker2\n    sensor_mm: [36, 24]\n", 1))
        command, ok, _, error = osc.send("/stagectl/stage/reload")
        assert ok == 0 and "the tracking sources and cameras changed" in error, error

        # --- a syntactically broken stage file: refused with file:line: ..., nothing changes
        broken = original.replace("frame_rate: 25\n", "frame_rate: 25\nwalls: [\n", 1)
        stage.write_text(broken)
        line = broken.splitlines().index("walls: [") + 1
        command, ok, frame_no, error = osc.send("/stagectl/stage/reload")
        assert (command, ok, frame_no) == ("stage.reload", 0, -1)
        m = re.match(r"stage\.reload: (.+):(\d+): ", error)
        assert m and Path(m.group(1)).name == stage.name and int(m.group(2)) >= line, error
        _, pixels = first_frame(reader, frame2 + 10)
        assert _lit(pixels, slice(1780, 1860)) > 0.9  # still the reloaded mapping
    finally:
        if reader is not None:
            reader.close()
        osc.close()
        out = run.stop()
    assert out.count(" reloaded") == 1, out  # the refused reloads changed nothing
    assert re.search(r"rendered \d+ frames of 1 canvases headless \(0 failed", out), out
    assert "operator state seq 2," in out, out
