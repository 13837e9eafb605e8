"""``color.calibration`` in a real ``stagectl run``: the A/B switch over OSC changes the output's signal on the
acknowledged frame, the status says so, and a restart restores it from the operator state. ``color.patches``
in the same run: the patch sequence from the acknowledged frame, word for word in the sink.

A copy of stages/flat_wall.yaml (free ports, a name of its own for the shared-memory sink) with a 10-bit PQ
1000-nit output and a wall calibration ``{clf}`` (a known correction written by
``stagectl.color.calibration.write_clf``); a solid test pattern makes every mapped pixel one known linear colour.
References, computed here: the BT.2087 Rec.709 -> Rec.2020 matrix, the correction's own numpy maths
(``Correction.apply``), the 1000-nit clip and the published SMPTE ST 2084 constants; the sink's words are unpacked
by the published bit layout of ``GL_UNSIGNED_INT_2_10_10_10_REV``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import STAGES

from stagectl.color import calibration as C

from .stage_run import OscClient, StageRun, free_port

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow, pytest.mark.gl]

COLOR = (0.5, 0.3, 0.2)  #: the solid pattern, linear Rec.709 (1.0 = 100 nits)
PIXEL = (500, 700)  #: a mapped pixel (row, column) of proc/out1 (the wall: rows 0..1055, columns 0..1759)
GAINS = (0.8, 1.0, 1.25)  #: the correction's per-channel gains (target-to-screen diagonal)


def _correction() -> C.Correction:
    n = 64
    y = 2.0 ** (-16.0 + (np.log2(10.0) + 16.0) * np.arange(n) / (n - 1))
    lut = np.stack([y, y ** 1.05, y], axis=1)
    lut[0] = 0.0
    return C.Correction(np.diag(GAINS), lut, -16.0, 10.0)


def _pq10(target_linear) -> np.ndarray:
    """10-bit full-range PQ codes of target-linear light (1.0 = 100 nits) clipped at 1000 nits."""
    y = np.clip(np.asarray(target_linear, float) * 100.0, 0.0, 1000.0) / 10000.0
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    return np.floor(1023.0 * ((c1 + c2 * y**m1) / (1.0 + c3 * y**m1)) ** m2 + 0.5).astype(int)


BT2087 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
PLAIN = _pq10(BT2087 @ np.asarray(COLOR))
CALIBRATED = _pq10(_correction().apply(BT2087 @ np.asarray(COLOR)))


class _Frames(threading.Thread):
    """Reads the sink continuously: frame number -> the RGB codes of :data:`PIXEL`."""

    def __init__(self, ring: str) -> None:
        super().__init__(daemon=True)
        from stagectl.render.sink import SinkReader

        self.reader = SinkReader(ring)
        self.seen: dict[int, tuple[int, int, int]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            got = self.reader.latest()
            if got is not None and got[0] not in self.seen:
                w = int(got[2][PIXEL])
                self.seen[got[0]] = (w & 1023, (w >> 10) & 1023, (w >> 20) & 1023)
            time.sleep(0.002)

    def upto(self, frame: int, timeout_s: float = 20.0) -> dict[int, tuple[int, int, int]]:
        deadline = time.monotonic() + timeout_s
        while max(self.seen, default=-1) < frame:
            assert time.monotonic() < deadline, f"no sink frame {frame} within {timeout_s} s"
            time.sleep(0.01)
        return dict(self.seen)

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self.reader.close()


def _near(codes, want) -> bool:
    return bool(np.abs(np.asarray(codes) - want).max() <= 1)


def _stage(tmp_path: Path) -> tuple[Path, int]:
    C.write_clf(tmp_path / "wall.clf", _correction(), name="wall", description="test gains",
                input_desc="Linear Rec.2020, 1.0 = 100 nits")
    osc = free_port(socket.SOCK_DGRAM)
    text = (STAGES / "flat_wall.yaml").read_text()
    text = text.replace("name: Flat wall", f"name: Calibration {uuid.uuid4().hex[:8]}")
    text = text.replace("port: 40000", f"port: {free_port(socket.SOCK_DGRAM)}")
    text += (f"\nconsole:\n  osc:\n    bind: 127.0.0.1\n    port: {osc}\n    allow:\n      - {{address: 127.0.0.1}}\n"
             f"  web: {{bind: 127.0.0.1, port: {free_port()}}}\n"
             "colour:\n  working_space: Linear Rec.709 (sRGB)\n  output:\n"
             "    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}\n"
             "  walls:\n    wall: {calibration: {clf: wall.clf}}\n")
    path = tmp_path / "flat_wall.yaml"
    path.write_text(text, encoding="utf-8")
    return path, osc


def _start(stage: Path) -> tuple[StageRun, str]:
    run = StageRun(stage, duration_s=90)
    ring = run.wait_for(r"shared memory '([A-Za-z0-9_]+)'").group(1)
    run.wait_for(r"^\[")  # the first status line: frames are running
    return run, ring


def test_the_switch_shows_on_the_acked_frame_and_survives_a_restart(tmp_path: Path) -> None:
    assert np.abs(PLAIN - CALIBRATED).max() >= 10  # the two signals are told apart
    stage, port = _stage(tmp_path)
    run, ring = _start(stage)
    osc = OscClient(port)
    frames = _Frames(ring)
    frames.start()
    try:
        _, ok, f0, res = osc.send("/stagectl/pattern/set", "proc/out1", "solid", *COLOR)
        assert ok, res
        seen = frames.upto(f0 + 2)
        assert _near(seen[max(seen)], CALIBRATED), (seen[max(seen)], CALIBRATED, PLAIN)
        st = osc.status()
        assert st["outputs"]["proc/out1"]["calibration"] == "on", st["outputs"]

        _, ok, k, res = osc.send("/stagectl/color/calibration", "proc/out1", 0)
        assert ok and res == {"outputs": ["proc/out1"], "on": False}, res
        seen = frames.upto(k + 3)
        before = [f for f in seen if f0 + 2 <= f < k]
        assert before and all(_near(seen[f], CALIBRATED) for f in before), {f: seen[f] for f in before}
        after = [f for f in seen if f >= k]
        assert k in seen, f"frame {k} was not read from the sink ({sorted(seen)[-8:]})"
        assert all(_near(seen[f], PLAIN) for f in after), {f: seen[f] for f in after}
        deadline = time.monotonic() + 10
        while osc.status()["outputs"]["proc/out1"].get("calibration") != "off":
            assert time.monotonic() < deadline, osc.status()["outputs"]
            time.sleep(0.1)
    finally:
        frames.stop()
        osc.close()
        out = run.stop()
    assert "Traceback" not in out, out

    # a restart restores the switch (and the pattern) from the operator state file
    run, ring = _start(stage)
    osc = OscClient(port)
    frames = _Frames(ring)
    frames.start()
    try:
        seen = frames.upto(min(frames.upto(0)) + 2)
        assert _near(seen[max(seen)], PLAIN), (seen[max(seen)], PLAIN)
        assert osc.status()["outputs"]["proc/out1"]["calibration"] == "off"
        _, ok, k, res = osc.send("/stagectl/color/calibration", json.dumps({"target": "wall", "on": True}))
        assert ok and res == {"outputs": ["proc/out1"], "on": True}, res
        seen = frames.upto(k + 2)
        assert all(_near(seen[f], CALIBRATED) for f in seen if f >= k), {f: seen[f] for f in seen if f >= k}
    finally:
        frames.stop()
        osc.close()
        out = run.stop()
    assert "Traceback" not in out, out


def _words(codes: np.ndarray) -> np.ndarray:
    """(h, w, 3) 10-bit codes, alpha opaque, packed by the published GL_UNSIGNED_INT_2_10_10_10_REV layout."""
    c = codes.astype(np.uint32)
    return c[..., 0] | (c[..., 1] << 10) | (c[..., 2] << 20) | np.uint32(3 << 30)


def test_the_patch_player_plays_from_the_acked_frame_in_a_real_run(tmp_path: Path) -> None:
    """``color.patches`` over OSC: every sink frame from the acknowledged frame F shows wall frame ``frame - F``
    of the sequence, word for word (the images ``calibrate colour --patches`` writes, here from the program the
    command builds); the status names the playback; after the end slate the output shows its (calibrated) solid
    pattern again. Refusals are one line."""
    import hashlib

    from stagectl.render.patch_player import patch_program
    from stagectl.render.sink import SinkReader
    from stagectl.stage import load_stage

    seq_args = {"frames_per_patch": 2, "slate_frames": 2, "ramp_steps": 4}
    stage, port = _stage(tmp_path)
    program = patch_program(load_stage(stage), "proc/out1", **seq_args)
    n = program.frames
    run, ring = _start(stage)
    osc = OscClient(port)
    seen: dict[int, tuple[str, tuple[int, int, int]]] = {}  # sink frame -> (sha1 of its words, PIXEL's codes)
    halt = threading.Event()

    def read() -> None:
        reader = SinkReader(ring)
        try:
            while not halt.is_set():
                got = reader.latest()
                if got is not None and got[0] not in seen:
                    w = int(got[2][PIXEL])
                    seen[got[0]] = (hashlib.sha1(got[2].tobytes()).hexdigest(),
                                    (w & 1023, (w >> 10) & 1023, (w >> 20) & 1023))
                time.sleep(0.002)
        finally:
            reader.close()

    def upto(frame: int) -> None:
        deadline = time.monotonic() + 30
        while max(seen, default=-1) < frame:
            assert time.monotonic() < deadline, f"no sink frame {frame}"
            time.sleep(0.01)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _, ok, f0, res = osc.send("/stagectl/pattern/set", "proc/out1", "solid", *COLOR)
        assert ok, res
        _, ok, _, err = osc.send("/stagectl/color/patches", "proc/nope", "start")
        assert not ok and err == "color.patches: output: no output 'proc/nope'; outputs: proc/out1", err
        _, ok, first, res = osc.send("/stagectl/color/patches", "proc/out1", "start",
                                     *[x for kv in seq_args.items() for x in kv])
        assert ok and res == {"output": "proc/out1", "action": "start", "first_frame": first, "frames": n,
                              "last_frame": first + n - 1}, res
        st = osc.status()["outputs"]["proc/out1"]
        while "patches" not in st:  # the status published after the first frames of the playback
            st = osc.status()["outputs"]["proc/out1"]
        p = st["patches"]
        assert p["frames"] == n and p["first_frame"] == first and p["calibration"] == "off", p
        assert p["patch"] == program.sequence.patch_at(p["frame"]).name, p
        upto(first + n + 2)
    finally:
        halt.set()
        reader.join(5)
        osc.close()
        out = run.stop()
    assert "Traceback" not in out, out
    playing = sorted(f for f in seen if first <= f < first + n)
    assert len(playing) >= 3, sorted(seen)
    for f in playing:
        want = hashlib.sha1(np.ascontiguousarray(_words(program.codes(f - first))).tobytes()).hexdigest()
        assert seen[f][0] == want, f"stage frame {f}: not wall frame {f - first}"
    assert all(_near(seen[f][1], CALIBRATED) for f in seen if f0 + 2 <= f < first), "before"
    assert all(_near(seen[f][1], CALIBRATED) for f in seen if f >= first + n), "after the end slate"
