"""A slated take's latch (kind 5) and pre-roll (kind 6) records: written by a LiveTake tapping a real receiver
on loopback through its PreRoll, read back by TakeReader, found again after damage, and invisible to readers
of datagrams."""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path

import numpy as np

from stagectl.tracking.receiver import Receiver
from stagectl.tracking.recording import (
    LATCH_LAYOUT,
    Latch,
    LiveTake,
    PreRoll,
    Recorder,
    load_take,
    read_take,
)
from stagectl.core.camera_settings import OneEuroParams, Smoothing


def _until(cond, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_preroll_and_live_datagrams_meet_without_loss_or_repeat(tmp_path: Path) -> None:
    """Datagrams sent without pause while the take starts: those before it are its pre-roll (kind 6), the rest
    its datagrams (kind 1); together every one once, in order. The pre-roll keeps only its window."""
    rx = Receiver("osc", name="handheld", bind="127.0.0.1", port=0)
    pre = rx.tap = PreRoll(seconds=0.5)
    rx.start()
    sent: list[bytes] = []
    stop = threading.Event()

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            i = 0
            while not stop.is_set():
                data = b"/dg/%06d" % i
                tx.sendto(data, ("127.0.0.1", rx.port))
                sent.append(data)
                i += 1
                time.sleep(0.001)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert _until(lambda: len(sent) > 300)  # more than the window holds at ~1 kHz minus the sleeps' slack
        window_start = time.monotonic_ns() - int(0.5e9)
        take = LiveTake(tmp_path / "t.stgtake", [rx])
        assert _until(lambda: len(sent) > 600)
        take.stop()
        n_after = len(sent)
        assert rx.tap is pre  # the pre-roll stays on the receiver for the next take
        assert _until(lambda: rx.stats(time.monotonic_ns()).packets >= n_after)
    finally:
        stop.set()
        sender.join()
        rx.close()
    t = load_take(tmp_path / "t.stgtake")
    before = [r.data for r in t.preroll]
    during = [r.data for r in t.records]
    both = before + during
    first = sent.index(both[0])
    assert both == sent[first: first + len(both)]  # contiguous: nothing lost, nothing twice
    assert len(before) >= 20 and len(during) >= 20
    assert all(r.arrival_ns >= window_start - int(0.1e9) for r in t.preroll)  # no older than its window
    assert max(r.arrival_ns for r in t.preroll) <= min(r.arrival_ns for r in t.records)
    assert {(r.source, r.protocol) for r in t.preroll} == {("handheld", "osc")}


def _latch(frame: int, smoothing=None, newest: int | None = 5_000) -> Latch:
    return Latch(frame, 10_000 + frame, newest, 41_708_333, 62_562_500, "interpolate", "dejittered", 0, smoothing)


def _take(path: Path, n: int, with_latch: bool = True) -> None:
    sm = Smoothing(OneEuroParams(3.0, 0.5, 1.0), None, 2_000_000_000)
    rec = Recorder(path, meta={"cameras": [{"name": "cam-a"}], "rate": "24000/1001"}, sources={"t": "freed"})
    rec.append_preroll(500, 0, b"\x01" * 29)
    for k in range(n):
        rec.append(1000 + k, "t", bytes([k]) * 29)
        if with_latch:
            rec.append_latch(0, _latch(100 + k, sm if k % 2 else None, None if k == 0 else 900 + k))
        rec.append_frame(0, 2000 + k, 100 + k, 900 + k, np.eye(4), 35.0, (0.0, 0.0), 0.05)
    rec.close()


def test_latches_read_back_with_their_frames(tmp_path: Path) -> None:
    path = tmp_path / "t.stgtake"
    _take(path, 4)
    t = load_take(path)
    assert [r.data for r in t.records] == [bytes([k]) * 29 for k in range(4)]  # datagrams only
    assert [(r.arrival_ns, r.data, r.source) for r in t.preroll] == [(500, b"\x01" * 29, "t")]
    latches = [f.latch for f in t.frames]
    assert [la.frame for la in latches] == [100, 101, 102, 103]
    assert [la.latched_ns for la in latches] == [10_100, 10_101, 10_102, 10_103]
    assert latches[0].newest_ns is None and latches[3].newest_ns == 903
    assert latches[1].smoothing == Smoothing(OneEuroParams(3.0, 0.5, 1.0), None, 2_000_000_000)
    assert latches[2].smoothing is None
    assert (latches[1].delay_ns, latches[1].max_prediction_ns, latches[1].mode, latches[1].clock,
            latches[1].source_id) == (41_708_333, 62_562_500, "interpolate", "dejittered", 0)
    assert LATCH_LAYOUT.size == 92
    # a take written before kind 5: its frames have no latch
    _take(tmp_path / "old.stgtake", 2, with_latch=False)
    assert [f.latch for f in load_take(tmp_path / "old.stgtake").frames] == [None, None]


def test_a_damaged_latch_loses_only_itself_and_the_reader_resynchronises_onto_kinds_5_and_6(tmp_path) -> None:
    path = tmp_path / "t.stgtake"
    _take(path, 5)
    raw = bytearray(path.read_bytes())
    with read_take(path) as r:
        list(r)
        frame2 = r.frames[2].offset
        preroll = r.preroll[0].offset
    latch2 = frame2 - (8 + 12 + LATCH_LAYOUT.size)  # the latch record just before frame 2's record
    raw[latch2 + 8 + 12 + 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    t = load_take(path)
    assert [f.latch is None for f in t.frames] == [False, False, True, False, False]
    assert [f.frame for f in t.frames] == [100, 101, 102, 103, 104] and len(t.gaps) == 1
    # damage right before the pre-roll record (the header's CRC): the reader finds it (kind 6) by resynchronising
    raw = bytearray(path.read_bytes())
    raw[preroll - 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    t = load_take(path)
    assert t.header.damaged and t.header.size == preroll and len(t.preroll) == 1


def test_a_latch_of_a_running_timeline_names_its_newest_sample() -> None:
    from stagectl.core.timebase import FrameRate
    from stagectl.tracking.timeline import Timeline

    tl = Timeline(FrameRate(25), clock="dejittered", delay_frames=1)
    for k in range(3):
        tl.push_values(1_000_000_000 + k * 40_000_000, k * 0.01, 0.0, 1.5, 0.0, 0.0, 0.0)
    st = tl.pose_at(1_000_000_000 + 150_000_000)
    la = Latch.of(7, 123, tl, st, 2)
    assert la.newest_ns == 1_080_000_000 and la.delay_ns == 40_000_000 and la.smoothing is None
    assert Latch.unpack(123, la.pack()) == la
    assert math.isnan(LATCH_LAYOUT.unpack(la.pack())[-1])  # smoothing off: NaN
