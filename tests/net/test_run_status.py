"""`stagectl run` tells the truth about its tracking: the rate counts accepted samples only, bad packets and other
cameras' packets are counted (status line, console status, final summary), a source that is not live says why
(other cameras only, no packets at all) and goes from stale to lost, and a frozen camera shows as frozen, on the
camera and on the output that shows it.

A real `stagectl run --no-render` on a copy of stages/flat_wall.yaml (free ports, no simulator), fed by the test
with FreeD packets over loopback UDP: its own camera's, another camera's, and packets with a broken checksum, at
the same rate each. The live status is read over OSC (/stagectl/status) from 127.0.0.1, an allowed address.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from stagectl.tracking.codecs.freed import FreeDPacket, encode_freed

from .stage_run import OscClient, StageRun, console_yaml, flat_wall_text, stage_ports

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
PERIOD_S = 0.02  # 50 packets a second of each kind


def _freed(camera_id: int) -> bytes:
    return encode_freed(FreeDPacket(camera_id, 2.0, 0.0, 0.0, 250.0, 500.0, 1500.0, 0x8000, 0x4000, 0))


class _Feed:
    """Sends, every PERIOD_S, one datagram of each kind in ``kinds`` (``good``: camera 1, ``other``: camera 2,
    ``bad``: camera 1 with a broken checksum) to the stage's tracking port; ``kinds`` can change while it runs."""

    def __init__(self, port: int) -> None:
        bad = bytearray(_freed(1))
        bad[-1] ^= 0x5A
        self.datagrams = {"good": _freed(1), "other": _freed(2), "bad": bytes(bad)}
        self.kinds: tuple[str, ...] = ("good", "other", "bad")
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self.stop.is_set():
            for k in self.kinds:
                self.sock.sendto(self.datagrams[k], ("127.0.0.1", self.port))
            next_t += PERIOD_S
            self.stop.wait(max(0.0, next_t - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2.0)
        self.sock.close()


def test_run_counts_bad_and_foreign_packets_apart_and_says_why_tracking_is_lost(tmp_path: Path) -> None:
    ports = stage_ports()
    stage = tmp_path / "flat_wall.yaml"
    stage.write_text(flat_wall_text(ports, f"Honest {uuid.uuid4().hex[:8]}") + console_yaml(ports))
    feed = _Feed(ports["tracking"])
    osc = OscClient(ports["osc"])
    run = StageRun(stage, "--no-render", "--no-simulator", "--status-interval", "0.5", duration_s=90)
    try:
        run.wait_for(r"^\[")  # frames run
        feed.thread.start()
        # --- all three kinds arrive: live, and the rate is the accepted samples' (50/s), not the packets' (150/s)
        st = osc.until(lambda s: s["cameras"]["cam"]["tracking"] == "live" and s["cameras"]["cam"]["bad"] >= 25
                       and s["cameras"]["cam"]["rate_hz"] > 30, "live tracking with bad packets counted")
        cam = st["cameras"]["cam"]
        assert 30.0 <= cam["rate_hz"] <= 60.0, cam
        assert cam["bad_by_reason"] == {"checksum": cam["bad"]} and cam["other_source"] >= 25, cam
        assert cam["tracking_why"] is None and cam["frozen"] is False, cam
        assert st["outputs"] == {"proc/out1": {"black": False, "frozen": None}}, st["outputs"]
        # --- the operator freezes the camera: the camera and the output that shows it say so
        command, ok, _, _ = osc.send("/stagectl/camera/set", "cam", "freeze", True)
        assert (command, ok) == ("camera.set", 1)
        st = osc.until(lambda s: s["cameras"]["cam"]["frozen"] is True, "the camera shown frozen")
        assert st["outputs"]["proc/out1"]["frozen"] == "camera cam frozen", st["outputs"]
        osc.send("/stagectl/camera/set", "cam", "freeze", False)
        osc.until(lambda s: s["cameras"]["cam"]["frozen"] is False and s["outputs"]["proc/out1"]["frozen"] is None,
                  "the freeze lifted")
        # --- only another camera's packets: not live, and that is why
        feed.kinds = ("other",)
        why = "packets arrive from other cameras only: FreeD camera ID 2 (listening for 1 and 0xFF)"
        # (the bad packets of the last second are named too, until that second has passed)
        st = osc.until(lambda s: s["cameras"]["cam"]["tracking"] in ("stale", "lost")
                       and s["cameras"]["cam"]["tracking_why"] == why,
                       "tracking not live because of other cameras' packets")
        assert st["cameras"]["cam"]["rate_hz"] == 0.0, st["cameras"]["cam"]
        # --- nothing at all: lost (after 2 s), no packets arriving
        feed.kinds = ()
        st = osc.until(lambda s: s["cameras"]["cam"]["tracking"] == "lost"
                       and (s["cameras"]["cam"]["tracking_why"] or "").startswith("no packets arriving"),
                       "tracking lost with no packets arriving")
        assert st["cameras"]["cam"]["rate_hz"] == 0.0
        run.wait_for(r"cam: tracking lost \(no packets arriving")  # the status line says it too
    finally:
        feed.close()
        osc.sock.close()
        out = run.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("[")]
    live = [re.search(r"cam: tracking live ([\d.]+) Hz, bad (\d+)", ln) for ln in lines]
    rates = [(float(m.group(1)), int(m.group(2))) for m in live if m]
    assert rates and any(30.0 <= r <= 60.0 and bad > 0 for r, bad in rates), lines
    assert all(r <= 60.0 for r, _ in rates), rates  # never the 150 packets a second
    assert any(re.search(r"cam: tracking lost \(no packets arriving: the last one from 127\.0\.0\.1:\d+ came "
                         r"[\d.]+ s ago\) 0\.0 Hz, bad \d+", ln) for ln in lines), lines
    m = re.search(r"stagectl run: tracking: tracker: (\d+) samples, (\d+) bad packets \(checksum (\d+)\), (\d+) from "
                  r"other cameras, lost at the end\.", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) == int(m.group(3)) > 0 and int(m.group(4)) > 0, out
