"""The shared-memory output sink (writer and readers in separate processes) and the snapshot writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagectl.render.sink import (
    HARDWARE_FENCE,  # noqa: F401 - imported for its documentation; read through the module below
    SinkError,
    SinkReader,
    SinkWriter,
    exr_supported,
    memory_fence,
    sink_name,
    write_exr,
    write_png,
)

REPO = Path(__file__).resolve().parents[1]


def unique_name(tag: str) -> str:
    return sink_name("t", tag, uuid.uuid4().hex[:8])


def shm_exists(name: str) -> bool:
    if sys.platform.startswith("linux"):
        return os.path.exists(f"/dev/shm/{name}")
    try:
        SinkReader(name).close()
        return True
    except SinkError:
        return False


# ---- processes (spawned: module-level functions)
# ---------------------------------------------------------------
def _writer_process(name: str, w: int, h: int, slots: int, frames, pace_s: float, ready, go, stop) -> None:
    """Writes frames filled with ``k % 251``: ``frames`` of them, or (None) until ``stop`` is set (at most
    20 s); then keeps the ring open until ``stop``."""
    writer = SinkWriter(name, w, h, slots)
    ready.set()
    go.wait(10)
    frame = np.empty((h, w, 4), np.uint8)
    deadline = time.monotonic() + 20
    try:
        k = 0
        while (k < frames) if frames is not None else not stop.is_set() and time.monotonic() < deadline:
            frame.fill(k % 251)
            writer.write(k, 1_000_000 * k, frame)
            k += 1
            if pace_s:
                time.sleep(pace_s)
        stop.wait(max(0.0, deadline - time.monotonic()))
    finally:
        writer.close()


def _start_writer(name, w, h, slots, frames, pace_s):
    ctx = mp.get_context("spawn")
    ready, go, stop = ctx.Event(), ctx.Event(), ctx.Event()
    proc = ctx.Process(
        target=_writer_process, args=(name, w, h, slots, frames, pace_s, ready, go, stop), daemon=True
    )
    proc.start()
    assert ready.wait(30), "writer process did not start"
    return proc, go, stop


# ---- tests
# ---------------------------------------------------------------------------------------------------
def test_ring_round_trip_in_one_process():
    name = unique_name("rt")
    with SinkWriter(name, 8, 4, slots=3) as writer, SinkReader(name) as reader:
        assert reader.shape == (4, 8, 4) and reader.slots == 3
        assert reader.latest() is None and reader.read(1) is None
        for k in range(5):
            frame = np.full((4, 8, 4), k, np.uint8)
            frame[0, 0] = (k, 1, 2, 3)  # asymmetric content, row 0 = top
            assert writer.write(100 + k, 10 * k, frame) == k + 1
        got = reader.latest()
        assert (got.frame_no, got.time_ns, got.write_no) == (104, 40, 5)
        assert got.pixels[0, 0].tolist() == [4, 1, 2, 3] and (got.pixels[1:] == 4).all()
        assert reader.read(3).frame_no == 102 and reader.read(2) is None  # 2 slots behind: overwritten
        out = np.empty((4, 8, 4), np.uint8)
        assert reader.latest(out=out).pixels is out
        with pytest.raises(SinkError, match="must be"):
            writer.write(1, 1, np.zeros((4, 8, 3), np.uint8))
    assert not shm_exists(name)


def test_frames_arrive_in_order_in_another_process():
    name = unique_name("ord")
    frames = 120
    proc, go, stop = _start_writer(name, 32, 16, 32, frames, 0.002)
    try:
        reader = SinkReader(name, timeout_s=10)
        go.set()
        seen = []
        nxt = 1
        deadline = time.monotonic() + 20
        while nxt <= frames and time.monotonic() < deadline:
            if reader.write_count < nxt:
                time.sleep(0.0002)
                continue
            got = reader.read(nxt)
            assert got is not None, f"write {nxt} overwritten before it was read"
            assert (got.pixels == got.frame_no % 251).all()
            seen.append(got.frame_no)
            nxt += 1
        assert seen == list(range(frames))
        reader.close()
    finally:
        stop.set()
        proc.join(20)
    assert proc.exitcode == 0
    assert not shm_exists(name)  # the writer unlinked its ring


def test_reader_never_returns_a_torn_frame_under_concurrent_writes():
    name = unique_name("torn")
    w, h = 256, 128  # 128 KiB per frame: a copy takes long enough for the writer to lap a 2-slot ring
    proc, go, stop = _start_writer(name, w, h, 2, None, 0.0)  # writes as fast as it can until told to stop
    try:
        reader = SinkReader(name, timeout_s=10)
        go.set()
        out = np.empty((h, w, 4), np.uint8)
        last, reads, distinct = -1, 0, 0
        t_end = time.monotonic() + 0.6
        while time.monotonic() < t_end or reads < 50:
            got = reader.latest(out=out)
            if got is None:
                continue
            k = got.frame_no
            # every byte of a frame equals k % 251: a torn copy would mix two frames' values
            assert out.min() == out.max() == k % 251, (k, out.min(), out.max())
            assert got.time_ns == 1_000_000 * k and got.write_no == k + 1
            assert k >= last, (k, last)  # never older than a frame already seen
            distinct += k > last
            last, reads = k, reads + 1
        assert distinct > 10, (reads, distinct)  # the writer really was writing meanwhile
        print(
            f"{reads} reads of {distinct} distinct frames, "
            f"{reader.retries} torn attempts detected and retried"
        )
        reader.close()
    finally:
        stop.set()
        proc.join(20)
    assert proc.exitcode == 0


def test_a_reader_process_that_exits_does_not_remove_the_writers_ring():
    """Before Python 3.13 every attach registers the segment with the process's resource tracker, which
    unlinks it when that process exits; the reader must attach untracked."""
    name = unique_name("keep")
    with SinkWriter(name, 4, 2, slots=2) as writer:
        writer.write(7, 70, np.full((2, 4, 4), 9, np.uint8))
        code = (
            "from stagectl.render.sink import SinkReader\n"
            f"r = SinkReader({name!r})\n"
            "f = r.latest()\n"
            "print(f.frame_no, int(f.pixels.max()))\n"
            "r.close()\n"
        )
        res = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "PYTHONWARNINGS": "always"},
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == ["7", "9"]
        assert "leaked" not in res.stderr and "Traceback" not in res.stderr, res.stderr
        time.sleep(0.2)  # the child's resource tracker has exited by now
        assert shm_exists(name)
        with SinkReader(name) as again:
            assert again.latest().frame_no == 7
    assert not shm_exists(name)


def test_a_writer_that_dies_without_closing_never_removes_its_successors_ring():
    """Sink names are fixed per output: a restarted stage reuses the name. A writer process that exits without
    closing (killed, or a crash) must not have its resource tracker unlink the name later, by then the ring of
    the writer that replaced it."""
    name = unique_name("heir")
    code = (
        "import os, sys\n"
        "from stagectl.render.sink import SinkWriter\n"
        f"w = SinkWriter({name!r}, 4, 2, slots=2)\n"
        "print('up', flush=True)\n"
        "sys.stdin.readline()\n"
        "os._exit(0)  # no close, no unlink: as a writer that died\n"
    )
    first = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "up", first.stderr
        # the successor replaces the ring while the first writer still lives, then the first one dies
        with SinkWriter(name, 4, 2, slots=2, replace=True) as heir:
            heir.write(5, 50, np.full((2, 4, 4), 3, np.uint8))
            first.communicate("go\n", timeout=30)
            time.sleep(0.5)  # its resource tracker has seen it exit and cleaned up what it held by now
            assert shm_exists(name)
            with SinkReader(name) as reader:
                assert reader.latest().frame_no == 5
        assert not shm_exists(name)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)


def test_writer_refuses_an_existing_ring_unless_replacing_a_stale_one():
    name = unique_name("stale")
    crashed = SinkWriter(name, 4, 2, slots=2)
    crashed.close(unlink=False)  # as a writer that died without cleaning up
    with pytest.raises(SinkError, match="already exists"):
        SinkWriter(name, 4, 2, slots=2)
    with SinkWriter(name, 6, 3, slots=4, replace=True) as writer:
        writer.write(1, 2, np.zeros((3, 6, 4), np.uint8))
        with SinkReader(name) as reader:
            assert reader.shape == (3, 6, 4) and reader.latest().frame_no == 1
    assert not shm_exists(name)
    with pytest.raises(SinkError, match="does not exist"):
        SinkReader(name)


def test_reader_sees_the_writer_close():
    name = unique_name("close")
    writer = SinkWriter(name, 4, 2, slots=2)
    reader = SinkReader(name)
    assert not reader.closed and reader.wait(after=0, timeout_s=0.01) is None
    writer.write(3, 4, np.zeros((2, 4, 4), np.uint8))
    assert reader.wait(after=0, timeout_s=1.0).frame_no == 3
    writer.close()
    assert reader.closed  # the mapping stays valid after the unlink
    reader.close()


def test_sink_names_are_portable_and_fences_are_hardware_fences():
    from stagectl.render import sink

    assert sink_name("demo", "proc A/out 1") == "stagectl_demo_proc_A_out_1"
    long = sink_name("a" * 40, "b")
    assert len(long) <= 30 and long != sink_name("a" * 40, "c")
    memory_fence()
    assert sink.HARDWARE_FENCE  # llvmlite (a numba dependency) is installed with stagectl


def test_png_snapshot_round_trip(tmp_path):
    img = np.zeros((3, 5, 4), np.uint8)
    img[0, 0] = (255, 10, 20, 255)  # top-left red
    img[2, 4] = (5, 6, 250, 128)
    write_png(tmp_path / "a.png", img)
    back = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.cvtColor(back, cv2.COLOR_BGRA2RGBA), img)
    with pytest.raises(SinkError, match="PNG"):
        write_png(tmp_path / "missing-dir" / "b.png", img)


def test_exr_snapshot_round_trip_or_a_clear_error(tmp_path):
    img = np.zeros((4, 6, 3), np.float32)
    img[0, 0] = (2.5, 0.25, 0.0)  # HDR value, top-left
    img[3, 5] = (0.0, 0.5, 1.0)
    if not exr_supported():
        with pytest.raises(SinkError, match="EXR"):
            write_exr(tmp_path / "a.exr", img)
        return
    write_exr(tmp_path / "a.exr", img)
    back = cv2.imread(str(tmp_path / "a.exr"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back[..., ::-1], img, rtol=1e-3)
    write_exr(tmp_path / "f.exr", img, half=False)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "f.exr"), cv2.IMREAD_UNCHANGED)[..., ::-1], img)
