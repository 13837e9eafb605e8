"""Receivers over real loopback UDP: values, arrival stamps, bad packets, staleness, sequence gaps, shutdown.

Every packet here goes through the kernel: a :class:`Sender` (or a raw socket, for bad packets) sends to a
running :class:`Receiver` bound on 127.0.0.1 to a port the kernel chose. Waits are on conditions with timeouts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import stagectl.tracking.receiver as receiver_mod
from stagectl.core.sample import Pose, TrackingSample
from stagectl.stage import load_stage
from stagectl.tracking.codecs.freed import FreeDPacket, encode_freed
from stagectl.tracking.codecs.opentrackio import ENCODING_JSON, encode_datagram, encode_sample
from stagectl.tracking.codecs.osc import encode_osc
from stagectl.tracking.receiver import Receiver, ReceiverGroup, opentrackio_group
from stagectl.tracking.simulator import Simulator

REPO = Path(__file__).resolve().parents[2]
POS_TOL_M = 1e-4
ANGLE_TOL_DEG = 1e-3
FREED_POS_Q_M = 0.5 / 64 / 1000  # half an LSB of 1/64 mm
FREED_ANGLE_Q_DEG = 0.5 / 32768  # half an LSB of 1/32768 degree


class Recorder:
    """A sink that records ``(arrival_ns, sample, called_ns)``; ``called_ns`` is read when the sink runs."""

    def __init__(self) -> None:
        self.items: list[tuple[int, TrackingSample, int]] = []

    def __call__(self, arrival_ns: int, sample: TrackingSample) -> None:
        self.items.append((arrival_ns, sample, time.monotonic_ns()))

    def __len__(self) -> int:
        return len(self.items)


def _freed(camera_id: int = 1, x_mm: float = 1000.0, pan: float = 10.0) -> bytes:
    return encode_freed(FreeDPacket(camera_id, pan, -2.0, 0.5, x_mm, 2000.0, 1500.0, 0x8000, 0x4000, 0))


# ------------------------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("protocol", "encoding"),
    [("freed", "json"), ("opentrackio", "json"), ("opentrackio", "cbor"), ("osc", "json")],
    ids=["freed", "opentrackio-json", "opentrackio-cbor", "osc"],
)
def test_sent_samples_arrive_decoded_with_the_values_sent(
    protocol: str, encoding: str, make_receiver, make_sender, make_simulator, wait
) -> None:
    rec = Recorder()
    rx = make_receiver(protocol, sink=rec, camera_id=None)
    tx = make_sender(protocol, rx.port, encoding=encoding)
    sim = make_simulator("handheld", protocol, 240, sender=tx, osc_camera="cam-a")
    sent = sim.run(count=48)
    assert wait(lambda: len(rec) >= 48), f"{len(rec)} of 48 samples arrived"
    assert len(rec) == 48
    st = rx.stats(time.monotonic_ns())
    assert st.samples == 48 and st.packets == 48 and st.bad_total == 0
    assert st.sequence_gaps == 0 and st.duplicates == 0 and st.state == "live"

    for (arrival_ns, got, called_ns), s in zip(rec.items, sent):
        want = s.sample
        # arrival stamps: after the send began, before the sink ran
        assert s.send_ns is not None and s.send_ns <= arrival_ns <= called_ns
        assert got.pose is not None and want.pose is not None
        dpos = max(
            abs(got.pose.x - want.pose.x), abs(got.pose.y - want.pose.y), abs(got.pose.z - want.pose.z)
        )
        dang = max(
            abs(got.pose.pan - want.pose.pan),
            abs(got.pose.tilt - want.pose.tilt),
            abs(got.pose.roll - want.pose.roll),
        )
        assert dpos <= POS_TOL_M and dang <= ANGLE_TOL_DEG
        assert got.lens is not None and got.lens.encoders is not None
        if protocol == "freed":
            assert got.protocol == "FreeD" and got.pose_frame == "body" and got.camera_id == 1
            assert dpos <= FREED_POS_Q_M + 1e-12 and dang <= FREED_ANGLE_Q_DEG + 1e-12
            assert got.lens.raw_encoders == want.lens.raw_encoders  # integers: exact
            assert abs(got.lens.encoders.zoom - want.lens.encoders.zoom) <= 1 / 0x10000
            assert abs(got.lens.encoders.focus - want.lens.encoders.focus) <= 1 / 0x10000
        elif protocol == "opentrackio":
            # JSON floats round-trip exactly, CBOR carries float64: the whole sample comes back unchanged
            assert got == want
        else:
            assert got.protocol == "OSC" and got.pose_frame == "body" and got.raw["camera"] == "cam-a"
            assert dpos <= 1e-6 and dang <= 1e-4  # float32 on the wire
            assert got.timing is not None and got.timing.sequence_number == s.index
    arrivals = [a for a, _, _ in rec.items]
    assert arrivals == sorted(arrivals)


def test_arrival_stamp_is_taken_before_parsing(make_receiver, make_sender, monkeypatch, wait) -> None:
    """A decoder that takes 30 ms must not move the stamp: the stamp precedes the decode by >= 30 ms."""
    real = receiver_mod.decode_freed_sample
    decode_started: list[int] = []

    def slow_decode(data, profile=None):
        decode_started.append(time.monotonic_ns())
        time.sleep(0.03)
        return real(data, profile)

    monkeypatch.setattr(receiver_mod, "decode_freed_sample", slow_decode)
    rec = Recorder()
    rx = make_receiver("freed", sink=rec)
    tx = make_sender("freed", rx.port)
    send_ns = []
    for i in range(3):
        send_ns.append(time.monotonic_ns())
        tx.send_raw(_freed(x_mm=float(i)))
    assert wait(lambda: len(rec) == 3)
    for (arrival_ns, _, called_ns), started, sent in zip(rec.items, decode_started, send_ns):
        assert sent <= arrival_ns <= started  # stamped on arrival, before the decoder was entered
        assert called_ns - arrival_ns >= 30_000_000
    assert [s.pose.x for _, s, _ in rec.items] == [0.0, 0.001, 0.002]


# ------------------------------------------------------------------------------------------------ multicast


def _loopback_multicast_works() -> bool:
    """Whether this kernel delivers multicast sent and joined on 127.0.0.1 (lo often lacks the MULTICAST flag,
    yet Linux still loops a group joined on 127.0.0.1 back when IP_MULTICAST_IF is 127.0.0.1)."""
    group = "239.135.1.199"
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        try:
            r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            r.bind((group, 0))
            r.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_ADD_MEMBERSHIP,
                socket.inet_aton(group) + socket.inet_aton("127.0.0.1"),
            )
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            s.sendto(b"probe", (group, r.getsockname()[1]))
            r.settimeout(0.5)
            return r.recv(16) == b"probe"
        except OSError:
            return False


def test_multicast_on_loopback_joins_the_group_and_filters_other_groups(
    make_receiver, make_sender, make_simulator, wait
) -> None:
    group_a, group_b = opentrackio_group(7), opentrackio_group(8)
    rec_a, rec_b = Recorder(), Recorder()
    rx_a = make_receiver("opentrackio", sink=rec_a, group=group_a, camera_id=7)
    # same port, other group: the bound addresses differ, so both bind (no SO_REUSEADDR needed), and binding to
    # the group keeps their traffic apart
    rx_b = make_receiver("opentrackio", sink=rec_b, group=group_b, port=rx_a.port)
    assert rx_a.address == (group_a, rx_a.port) and rx_b.port == rx_a.port
    if not _loopback_multicast_works():
        # Fallback (kernel refuses multicast on lo): the membership must at least be registered on lo.
        igmp = Path("/proc/net/igmp").read_text() if Path("/proc/net/igmp").exists() else ""
        want = "".join(f"{int(p):02X}" for p in reversed(group_a.split(".")))
        assert want in igmp, "IP_ADD_MEMBERSHIP did not register the group"
        pytest.skip("this kernel does not deliver multicast on loopback; only the membership was checked")
    tx = make_sender("opentrackio", rx_a.port, host=group_a, interface="127.0.0.1", ttl=1)
    assert tx.multicast
    sim = make_simulator("orbit", "opentrackio", 200, sender=tx, source_number=7)
    sent = sim.run(count=10)
    assert wait(lambda: len(rec_a) == 10)
    assert [s.sample for s in sent] == [g for _, g, _ in rec_a.items]
    assert len(rec_b) == 0 and rx_b.stats(time.monotonic_ns()).packets == 0


# ------------------------------------------------------------------------------------------------ bad packets


def test_bad_freed_packets_are_counted_by_reason_and_never_stop_the_receiver(
    make_receiver, udp_socket, wait, caplog
) -> None:
    bad_seen = []
    rec = Recorder()
    rx = make_receiver("freed", sink=rec, on_bad=bad_seen.append, name="rig")
    tx = udp_socket()
    rng = np.random.default_rng(7)
    expected = {"checksum": 0, "truncated": 0, "field": 0, "other": 0}
    caplog.set_level(logging.WARNING, logger="stagectl.tracking.receiver")
    t0 = time.monotonic()
    for i in range(40):
        tx.sendto(_freed(x_mm=float(i)), ("127.0.0.1", rx.port))
        kind = i % 4
        if kind == 0:
            bad = bytearray(_freed(x_mm=float(i)))
            bad[28] ^= 0x5A
            expected["checksum"] += 1
        elif kind == 1:
            bad = bytearray(_freed()[: int(rng.integers(1, 29))])
            expected["truncated"] += 1
        elif kind == 2:
            bad = bytearray(rng.integers(0, 256, 29, dtype=np.uint8).tobytes())
            bad[0] = 0xD0  # not a D1 message
            expected["other"] += 1
        else:
            continue
        tx.sendto(bytes(bad), ("127.0.0.1", rx.port))
    elapsed = time.monotonic() - t0
    assert wait(lambda: rx.stats(time.monotonic_ns()).packets == 70)
    st = rx.stats(time.monotonic_ns())
    assert dict(st.bad) == expected and st.bad_total == 30
    assert st.samples == 40 and len(rec) == 40 and rx.running
    assert [s.pose.x for _, s, _ in rec.items] == [i / 1000 for i in range(40)]
    assert sorted(b.reason for b in bad_seen) == sorted(r for r, n in expected.items() for _ in range(n))
    # the throttled logger: at most one record per second for this source
    records = [
        r for r in caplog.records if r.name == "stagectl.tracking.receiver" and "rig" in r.getMessage()
    ]
    assert 1 <= len(records) <= math.ceil(elapsed) + 2
    # still receiving afterwards
    tx.sendto(_freed(x_mm=999.0), ("127.0.0.1", rx.port))
    assert wait(lambda: len(rec) == 41) and rec.items[-1][1].pose.x == 0.999


def test_bad_opentrackio_and_osc_packets_are_counted_by_reason(make_receiver, udp_socket, wait) -> None:
    rec_o, rec_c = Recorder(), Recorder()
    rx_o = make_receiver("opentrackio", sink=rec_o)
    rx_c = make_receiver("osc", sink=rec_c)
    tx = udp_socket()
    good = TrackingSample(protocol="OpenTrackIO", pose=Pose(1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    datagram = encode_sample(good, sequence=1)[0]
    bad_sum = bytearray(datagram)
    bad_sum[14] ^= 0xFF
    bad_field = encode_datagram(
        json.dumps({"transforms": "north"}).encode(), encoding=ENCODING_JSON, sequence=2
    )
    tx.sendto(bytes(bad_sum), ("127.0.0.1", rx_o.port))  # checksum
    tx.sendto(datagram[:20], ("127.0.0.1", rx_o.port))  # truncated
    tx.sendto(bad_field, ("127.0.0.1", rx_o.port))  # field
    tx.sendto(b"hello world, this is not OTrk", ("127.0.0.1", rx_o.port))  # other
    tx.sendto(datagram, ("127.0.0.1", rx_o.port))
    osc_good = encode_osc(TrackingSample(protocol="OSC", pose=Pose(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)), "cam")
    tx.sendto(osc_good[:-3], ("127.0.0.1", rx_c.port))  # truncated
    tx.sendto(b"/stagectl/camera/cam/pos\x00\x00\x00\x00,f\x00\x00\x00\x00\x00\x00", ("127.0.0.1", rx_c.port))
    tx.sendto(b"\x00garbage", ("127.0.0.1", rx_c.port))  # other
    tx.sendto(osc_good, ("127.0.0.1", rx_c.port))
    assert wait(lambda: len(rec_o) == 1 and len(rec_c) == 1)
    assert wait(
        lambda: rx_o.stats(time.monotonic_ns()).packets == 5 and rx_c.stats(time.monotonic_ns()).packets == 4
    )
    assert dict(rx_o.stats(time.monotonic_ns()).bad) == {
        "checksum": 1,
        "truncated": 1,
        "field": 1,
        "other": 1,
    }
    assert dict(rx_c.stats(time.monotonic_ns()).bad) == {
        "checksum": 0,
        "truncated": 1,
        "field": 1,
        "other": 1,
    }
    assert rec_o.items[0][1].pose == good.pose and rec_c.items[0][1].pose == good.pose


# ------------------------------------------------------------------------------------------------ staleness


def test_a_quiet_source_goes_stale_keeps_its_last_sample_and_recovers(
    make_receiver, udp_socket, wait
) -> None:
    rec = Recorder()
    rx = make_receiver("freed", sink=rec, stale_after_ms=60.0)
    assert rx.state(time.monotonic_ns()) == "waiting" and rx.last() is None
    tx = udp_socket()
    for i in range(3):
        tx.sendto(_freed(x_mm=float(i)), ("127.0.0.1", rx.port))
    assert wait(lambda: len(rec) == 3)
    assert rx.state(time.monotonic_ns()) == "live"
    assert wait(lambda: rx.state(time.monotonic_ns()) == "stale", timeout_s=2.0)
    now = time.monotonic_ns()
    st = rx.stats(now)
    assert st.state == "stale" and st.last_sample_age_ns > 60_000_000
    last = rx.last()
    assert last is not None and last[0] == rec.items[-1][0] and last[1].pose.x == 0.002
    # the state is a pure function of the now_ns passed in
    assert rx.state(last[0] + 60_000_000) == "live" and rx.state(last[0] + 60_000_001) == "stale"
    tx.sendto(_freed(x_mm=5.0), ("127.0.0.1", rx.port))
    assert wait(lambda: len(rec) == 4)
    assert rx.state(time.monotonic_ns()) == "live"
    assert rx.stats(time.monotonic_ns()).stale_recoveries == 1 and rx.last()[1].pose.x == 0.005


# ------------------------------------------------------------------------------------------------ sequences


def test_opentrackio_sequence_gaps_match_the_dropped_packets_across_the_uint16_wrap(
    make_receiver, make_sender, wait
) -> None:
    rec = Recorder()
    rx = make_receiver("opentrackio", sink=rec)
    tx = make_sender("opentrackio", rx.port, encoding="cbor", first_sequence=65_500)
    sim = Simulator("dolly", "opentrackio", 60)
    sent = 0
    for i in range(100):
        if i % 10 == 5:
            tx.skip()  # dropped at the sender: its sequence number is used up, nothing is sent
            continue
        tx.send(sim.sample(i))
        sent += 1
    assert tx.sequence == 65_600  # crossed 65535 -> 0 on the wire
    assert wait(lambda: len(rec) == sent)
    st = rx.stats(time.monotonic_ns())
    assert st.sequence_gaps == 10 and st.out_of_order == 0 and st.duplicates == 0 and st.samples == 90


def test_freed_frame_counter_gaps_and_duplicates(make_receiver, make_sender, wait) -> None:
    """Sony puts a 4-bit frame counter in the spare bits: gaps are counted from it; a repeated datagram with
    the same counter is a duplicate and is delivered once."""
    rec = Recorder()
    rx = make_receiver("freed", sink=rec, profile="sony")
    tx = make_sender("freed", rx.port)
    sim = Simulator("pan", "freed", 50, profile="sony")
    delivered = 0
    for i in range(60):
        if i % 10 == 9:
            continue  # dropped at the sender
        tx.send(sim.sample(i))
        delivered += 1
    tx.send(sim.sample(60))
    tx.send(sim.sample(60))  # network duplicate
    delivered += 1
    assert wait(lambda: rx.stats(time.monotonic_ns()).packets == delivered + 1)
    st = rx.stats(time.monotonic_ns())
    assert st.sequence_gaps == 6 and st.duplicates == 1 and st.samples == delivered
    assert [s.raw["frame_counter"] for _, s, _ in rec.items[:3]] == [0, 1, 2]


def test_osc_sequence_gaps_and_opentrackio_duplicates(make_receiver, make_sender, udp_socket, wait) -> None:
    rec = Recorder()
    rx = make_receiver("osc", sink=rec)
    tx = make_sender("osc", rx.port, osc_camera="cam")
    sim = Simulator("crane", "osc", 60)
    for i in range(30):
        if i % 10 == 3:
            tx.skip()
            continue
        tx.send(sim.sample(i))
    assert wait(lambda: len(rec) == 27)
    assert rx.stats(time.monotonic_ns()).sequence_gaps == 3

    rec_o = Recorder()
    rx_o = make_receiver("opentrackio", sink=rec_o)
    raw = udp_socket()
    d = encode_sample(TrackingSample(protocol="OpenTrackIO", pose=Pose(1.0)), sequence=9)[0]
    for _ in range(3):
        raw.sendto(d, ("127.0.0.1", rx_o.port))
    assert wait(lambda: rx_o.stats(time.monotonic_ns()).packets == 3)
    st = rx_o.stats(time.monotonic_ns())
    assert st.duplicates == 2 and st.samples == 1 and len(rec_o) == 1


# ------------------------------------------------------------------------------------------------ filters


def test_camera_id_source_number_and_name_filters(make_receiver, udp_socket, wait) -> None:
    raw = udp_socket()
    rec_f, rec_o, rec_c = Recorder(), Recorder(), Recorder()
    rx_f = make_receiver("freed", sink=rec_f, camera_id=3)
    rx_o = make_receiver("opentrackio", sink=rec_o, camera_id=5)
    rx_c = make_receiver("osc", sink=rec_c, camera_names=["cam-a"])
    for cid in (3, 0xFF, 7, 0):
        raw.sendto(_freed(camera_id=cid), ("127.0.0.1", rx_f.port))
    for seq, sn in enumerate((0, 201, 255, 6, 5, None)):
        s = TrackingSample(protocol="OpenTrackIO", pose=Pose(float(seq)), source_number=sn)
        raw.sendto(encode_sample(s, sequence=seq)[0], ("127.0.0.1", rx_o.port))
    for name in ("cam-b", "cam-a"):
        raw.sendto(encode_osc(TrackingSample(protocol="OSC", pose=Pose(1.0)), name), ("127.0.0.1", rx_c.port))
    assert wait(lambda: len(rec_f) == 2 and len(rec_o) == 2 and len(rec_c) == 1)
    assert wait(lambda: rx_f.stats(time.monotonic_ns()).other_source == 2)
    assert wait(lambda: rx_o.stats(time.monotonic_ns()).other_source == 4)
    assert wait(lambda: rx_c.stats(time.monotonic_ns()).other_source == 1)
    assert [s.camera_id for _, s, _ in rec_f.items] == [3, 0xFF]
    assert [s.source_number for _, s, _ in rec_o.items] == [5, None]
    assert rec_c.items[0][1].raw["camera"] == "cam-a"


# ------------------------------------------------------------------------------------------------ lifecycle


def test_close_wakes_the_thread_blocked_in_select() -> None:
    rx = Receiver("freed", bind="127.0.0.1", port=0).start()
    time.sleep(0.05)  # let the thread block in select
    assert rx.running
    port = rx.port
    # select has no timeout: without the wake-up the thread would still be blocked when close gives up
    rx.close(timeout_s=3.0)
    assert not rx.running
    rx.close()  # twice is fine
    # the port is free again: a fresh socket can bind it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_sink_errors_are_counted_and_reception_goes_on(make_receiver, udp_socket, wait) -> None:
    calls = []

    def sink(arrival_ns: int, sample: TrackingSample) -> None:
        calls.append(sample)
        if len(calls) == 1:
            raise RuntimeError("timeline full")

    rx = make_receiver("freed", sink=sink)
    raw = udp_socket()
    for i in range(3):
        raw.sendto(_freed(x_mm=float(i)), ("127.0.0.1", rx.port))
    assert wait(lambda: len(calls) == 3)
    st = rx.stats(time.monotonic_ns())
    assert st.sink_errors == 1 and st.samples == 3 and rx.running


def test_receiver_group_from_stage_feeds_each_camera(wait, udp_socket) -> None:
    stage = load_stage(REPO / "stages" / "demo.yaml")
    src = stage.tracking[0]
    stage = dataclasses.replace(stage, tracking=(dataclasses.replace(src, bind="127.0.0.1", port=0),))
    sinks: dict[str, Recorder] = {}

    def sink_for_camera(name: str) -> Recorder:
        return sinks.setdefault(name, Recorder())

    group = ReceiverGroup.from_stage(stage, sink_for_camera)
    assert [r.name for r in group] == [src.name] and len(group) == 1
    with group:
        rx = group[src.name]
        assert rx.camera_id == src.camera_id and rx.profile.name == src.encoder_profile
        raw = udp_socket()
        raw.sendto(_freed(camera_id=src.camera_id), ("127.0.0.1", rx.port))
        raw.sendto(_freed(camera_id=src.camera_id + 1), ("127.0.0.1", rx.port))  # another camera: dropped
        cam = stage.cameras[0].name
        assert wait(lambda: cam in sinks and len(sinks[cam]) == 1)
        assert wait(lambda: group.stats(time.monotonic_ns())[src.name].other_source == 1)
        assert group.states(time.monotonic_ns()) == {src.name: "live"}
    assert not rx.running  # leaving the block closed the group (woken, not timed out: select has no timeout)


def test_receiver_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="protocol"):
        Receiver("vrpn")
    with pytest.raises(ValueError, match="multicast"):
        Receiver("opentrackio", group="10.0.0.1")
    with pytest.raises(ValueError, match="source number"):
        Receiver("opentrackio", camera_id=0)
    with pytest.raises(ValueError, match="IPv4"):
        Receiver("freed", bind="localhost")
    # a port held by a socket without SO_REUSEADDR cannot be shared: a clear TransportError, not an OSError
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(receiver_mod.TransportError, match="cannot listen"):
            Receiver("freed", bind="127.0.0.1", port=s.getsockname()[1]).start()


def test_a_source_that_is_not_live_goes_lost_and_says_what_arrives_instead(make_receiver, udp_socket, wait) -> None:
    """Driving the receive path with known arrival stamps (monotonic ns): stale after stale_after_ms, lost
    after lost_after_ms, and a diagnosis that tells no packets from other cameras' packets from bad ones."""
    ms = 1_000_000
    rx = Receiver("freed", bind="127.0.0.1", port=0, name="cam-a", camera_id=1, stale_after_ms=50.0,
                  lost_after_ms=300.0)
    t0 = 10_000_000_000
    st = rx.stats(t0)
    assert st.state == "waiting" and st.diagnosis.startswith("no packets arriving: none received"), st.diagnosis
    rx._handle(t0, _freed(camera_id=1), "10.0.0.9:4000")
    assert rx.stats(t0 + 10 * ms).diagnosis is None and rx.state(t0 + 10 * ms) == "live"
    assert rx.state(t0 + 51 * ms) == "stale" and rx.state(t0 + 300 * ms) == "stale"
    assert rx.state(t0 + 301 * ms) == "lost" and rx.stats(t0 + 301 * ms).state == "lost"
    # another camera's packets keep arriving: not live, and that is why
    for i in range(1, 6):
        rx._handle(t0 + i * 20 * ms, _freed(camera_id=2), "10.0.0.9:4000")
    st = rx.stats(t0 + 120 * ms)
    assert st.state == "stale" and st.other_source == 5
    assert st.diagnosis == "packets arrive from other cameras only: FreeD camera ID 2 (listening for 1 and 0xFF)"
    # then bad packets as well (a wrong checksum): both reasons, still arriving
    bad = bytearray(_freed(camera_id=1))
    bad[-1] ^= 0x5A
    rx._handle(t0 + 130 * ms, bytes(bad), "10.0.0.9:4000")
    st = rx.stats(t0 + 140 * ms)
    assert st.bad_total == 1 and "packets arrive from other cameras only" in st.diagnosis
    assert "packets arrive but are bad (checksum: " in st.diagnosis, st.diagnosis
    # a second later only the bad packets keep coming
    rx._handle(t0 + 1130 * ms, bytes(bad), "10.0.0.9:4000")
    st = rx.stats(t0 + 1140 * ms)
    assert st.state == "lost" and st.diagnosis.startswith("packets arrive but are bad (checksum: "), st.diagnosis
    # then nothing at all
    st = rx.stats(t0 + 3630 * ms)
    assert st.state == "lost"
    assert st.diagnosis == "no packets arriving: the last one from 10.0.0.9:4000 came 2.5 s ago", st.diagnosis
    # a sample brings it back: live, no diagnosis
    rx._handle(t0 + 3640 * ms, _freed(camera_id=1), "10.0.0.9:4000")
    st = rx.stats(t0 + 3650 * ms)
    assert st.state == "live" and st.diagnosis is None and st.to_dict()["diagnosis"] is None
    # defaults and checks of lost_after_ms
    assert Receiver("freed", stale_after_ms=250.0).lost_after_ns == 2_000_000_000
    assert Receiver("freed", stale_after_ms=1000.0).lost_after_ns == 4_000_000_000
    with pytest.raises(ValueError, match="lost_after_ms"):
        Receiver("freed", stale_after_ms=500.0, lost_after_ms=400.0)
    # a started receiver that never got a packet says where it listens and for how long
    real = make_receiver("freed", name="quiet")
    assert wait(lambda: "none received in" in (real.diagnosis(time.monotonic_ns()) or ""))
    assert f"at freed on 127.0.0.1:{real.port}" in real.diagnosis(time.monotonic_ns())


def test_the_sample_rate_counts_accepted_samples_only_and_goes_past_256_hz() -> None:
    rx = Receiver("freed", bind="127.0.0.1", port=0, name="fast", camera_id=1)
    t0 = 10_000_000_000
    period = 1_000_000  # 1000 Hz of accepted samples, plus as many from another camera and bad ones
    bad = b"\xd1" + b"\x00" * 28
    for i in range(1000):
        t = t0 + i * period
        rx._handle(t, _freed(camera_id=1, x_mm=float(i)), "10.0.0.9:4000")
        rx._handle(t + 1, _freed(camera_id=2), "10.0.0.9:4000")
        rx._handle(t + 2, bad, "10.0.0.9:4000")
    st = rx.stats(t0 + 999 * period + 2)
    assert st.packets == 3000 and st.samples == 1000 and st.other_source == 1000 and st.bad_total == 1000
    assert st.sample_rate_hz == 1000.0 and st.packet_rate_hz == 3000.0


# ------------------------------------------------------------------------------------------------ statistics


def test_statistics_on_synthetic_arrivals_and_lock_free_reads(make_receiver, udp_socket) -> None:
    """Rate and jitter maths on known arrival stamps (driving the receive path directly), then concurrent
    reads while real packets flow: every snapshot must be internally consistent."""
    rx = Receiver("freed", bind="127.0.0.1", port=0, name="synthetic")
    t0 = 10_000_000_000
    period = 10_000_000  # 100 Hz
    stamps = [t0 + i * period for i in range(150)]
    stamps[100] += 2_000_000  # one late packet: intervals 12 ms then 8 ms
    for i, t in enumerate(stamps):
        rx._handle(t, _freed(x_mm=float(i)), "10.0.0.9:4000")
    now = stamps[-1]
    st = rx.stats(now)
    assert st.packets == st.samples == 150 and st.packet_rate_hz == 100.0 and st.sample_rate_hz == 100.0
    intervals = np.diff(np.asarray(stamps[-150:], dtype=np.int64)).astype(float)
    assert st.jitter_std_ns == pytest.approx(intervals.std())
    assert st.jitter_p99_ns == pytest.approx(np.percentile(np.abs(intervals - 1e7), 99))
    assert (
        st.last_arrival_ns == now and st.last_sample_age_ns == 0 and dict(st.peers) == {"10.0.0.9:4000": 150}
    )
    assert rx.stats(now + 2_000_000_000).packet_rate_hz == 0.0
    assert st.to_dict()["bad_total"] == 0 and st.clock == "monotonic"

    live = make_receiver("freed")
    raw = udp_socket()
    stop = threading.Event()

    def blast() -> None:
        i = 0
        while not stop.is_set():
            raw.sendto(_freed(x_mm=float(i % 1000)) if i % 3 else b"\xd1bad", ("127.0.0.1", live.port))
            i += 1

    t = threading.Thread(target=blast, daemon=True)
    t.start()
    try:
        for _ in range(300):
            s = live.stats(time.monotonic_ns())
            assert (
                s.samples + s.bad_total + s.other_source == s.packets
                or s.samples + s.bad_total + s.other_source == s.packets - 1
            )
    finally:
        stop.set()
        t.join(1.0)


# ------------------------------------------------------------------------------------------------ simulator


def test_simulator_paces_on_absolute_deadlines_blocking_and_in_a_thread(
    make_receiver, make_sender, make_simulator, wait
) -> None:
    rec = Recorder()
    rx = make_receiver("opentrackio", sink=rec)
    tx = make_sender("opentrackio", rx.port)
    sim = make_simulator("pan", "opentrackio", "24000/1001", sender=tx)
    t0 = time.monotonic_ns()  # the run's own start (its deadline grid) is at or after this
    sent = sim.run(duration_s=0.25)
    # deadlines k * 1001/24000 s in [0, 0.25): frames 0..5; a frame is skipped (not burst) only when late
    assert len(sent) + sim.frames_skipped == 6
    period_ns = 1_000_000_000 * 1001 / 24000
    for i, s in enumerate(sent):
        assert s.index == i and s.sample.timing.sequence_number == i
        # never early: each send waits for its deadline on the grid that starts at (or after) t0. Measured from
        # t0, not from the first send, which a loaded machine can delay
        assert s.send_ns - t0 >= s.frame * period_ns
        assert s.sample.timing.sample_rate == (24000, 1001)
        assert s.sample.timing.sample_timestamp_ns - sent[0].sample.timing.sample_timestamp_ns == round(
            s.frame * period_ns
        )
    assert wait(lambda: len(rec) == len(sent))

    threaded = make_simulator("orbit", "freed", 200)  # no sender: produces and paces only
    threaded.start()
    assert wait(lambda: len(threaded.sent) >= 5)
    done = threaded.stop()
    assert not threaded.running and len(done) >= 5
    assert [s.index for s in done] == list(range(len(done)))


# ------------------------------------------------------------------------------------------------ live takes


def _until(cond, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return bool(cond())


def test_live_take_records_every_datagram_raw_from_running_receivers(make_receiver, tmp_path: Path) -> None:
    """`stagectl run`'s record.start: a take taps running receivers; it holds exactly the datagrams that arrived
    while it ran (bad ones included: a take keeps what came off the wire), in arrival order per source, with
    arrival stamps inside the take's lifetime."""
    from stagectl.tracking.recording import LiveTake, load_take

    freed = make_receiver("freed", name="crane")
    osc = make_receiver("osc", name="handheld")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(_freed(x_mm=1.0), ("127.0.0.1", freed.port))  # before the take: not in it
        assert _until(lambda: freed.stats(time.monotonic_ns()).packets == 1)
        t0 = time.monotonic_ns()
        take = LiveTake(tmp_path / "take.stgtake", [freed, osc], stage="demo")
        sent = []
        for i in range(20):
            data = _freed(x_mm=100.0 + i) if i % 3 else b"\x00garbage"
            tx.sendto(data, ("127.0.0.1", freed.port))
            sent.append(("crane", data))
            if i % 5 == 0:
                data = b"/not/an/osc/message-%d" % i
                tx.sendto(data, ("127.0.0.1", osc.port))
                sent.append(("handheld", data))
        assert _until(lambda: freed.stats(time.monotonic_ns()).packets == 21
                      and osc.stats(time.monotonic_ns()).packets == 4)
        summary = take.stop()
        t1 = time.monotonic_ns()
        tx.sendto(_freed(x_mm=9.0), ("127.0.0.1", freed.port))  # after the take: not in it
        assert _until(lambda: freed.stats(time.monotonic_ns()).packets == 22)
    t = load_take(tmp_path / "take.stgtake")
    got = [(r.source, r.data) for r in t.records]
    assert sorted(got) == sorted(sent)  # any interleaving across sources ...
    for name in ("crane", "handheld"):  # ... but each source's datagrams in arrival order
        assert [d for n, d in got if n == name] == [d for n, d in sent if n == name]
    assert all(t0 <= r.arrival_ns <= t1 for r in t.records)
    assert {r.protocol for r in t.records if r.source == "crane"} == {"freed"}
    assert summary["path"] == str(tmp_path / "take.stgtake") and freed.tap is None and osc.tap is None
