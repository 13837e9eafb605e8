"""Helpers of the post-export tests: a stage file for a take, a take recorded from the simulator over real
loopback UDP (the simulator's Sender -> a UDP socket -> Recorder, as `stagectl record` does), and the true path
of the simulated camera computed from stagectl.tracking.moves with plain numpy (independent of stagectl.post)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
from helpers import rot_ptr

from stagectl.lens.lensfile import load_lens_file
from stagectl.tracking.moves import pose_at
from stagectl.tracking.recording import Recorder, open_udp_receiver
from stagectl.tracking.sender import Sender
from stagectl.tracking.simulator import SentSample, Simulator

REPO = Path(__file__).resolve().parents[2]
LENS = REPO / "stages" / "lenses" / "zoom_24-70.yaml"

# a registration and a tracker offset with every component non-zero, so a swapped axis or sign shows
REGISTRATION = {"position": (0.35, -0.42, 0.05), "rotation": (7.5, 0.6, -0.4)}
OFFSET = {"translation": (0.02, 0.08, -0.12), "rotation": (1.5, -2.0, 0.7)}
SENSOR_MM = (24.89, 14.0)

STAGE_YAML = """\
schema_version: 1
name: Post test
frame_rate: {rate}
walls:
  - name: main
    type: flat
    center: [0.0, 4.5, 1.5]
    rotation: [0, 0, 0]
    cabinets: [8, 3]
    cabinet: {{size_mm: [500, 500], pixels: [64, 64]}}
processors:
  - name: p
    outputs:
      - name: out1
        canvas: [512, 192]
        mappings:
          - {{wall: main, rect: [0, 0, 512, 192], at: [0, 0]}}
tracking_registration:
  position: [{reg_p}]
  rotation: [{reg_r}]
tracking:
  - name: tracker-a
    protocol: {protocol}
    bind: 127.0.0.1
    port: 40000
    encoder_profile: {profile}
    delay_frames: 0.0
cameras:
  - name: cam-a
    tracking: tracker-a
    tracker_offset:
      translation: [{off_t}]
      rotation: [{off_r}]
    sensor_mm: [{sw}, {sh}]
    lens: {lens}
"""


def write_stage(path: Path, rate: str, protocol: str, profile: str = "sony") -> Path:
    """A one-camera stage at ``rate`` whose camera is tracked by ``protocol``, with the example zoom lens."""
    j = lambda v: ", ".join(repr(float(x)) for x in v)
    path.write_text(STAGE_YAML.format(
        rate=rate, protocol=protocol, profile=profile, reg_p=j(REGISTRATION["position"]),
        reg_r=j(REGISTRATION["rotation"]), off_t=j(OFFSET["translation"]), off_r=j(OFFSET["rotation"]),
        sw=SENSOR_MM[0], sh=SENSOR_MM[1], lens=str(LENS)))
    return path


def record_take(path: Path, protocol: str, rate: str, *, seconds: float = 1.6, move: str = "handheld",
                profile: str = "sony", drop_frame: bool = False, stage: str = "Post test",
                meta: dict | None = None) -> list[SentSample]:
    """Play ``move`` with the simulator as ``protocol`` to a loopback socket, record every datagram into the
    take ``path``; returns what the simulator sent."""
    sock = open_udp_receiver(0, "127.0.0.1", timeout_s=0.02)
    port = sock.getsockname()[1]
    source = f"{protocol} from 127.0.0.1"
    stop = threading.Event()
    got = [0]
    rec = Recorder(path, stage=stage, meta=meta or {})

    def receive() -> None:
        buf = bytearray(65536)
        while not stop.is_set():
            try:
                n, _ = sock.recvfrom_into(buf)
            except TimeoutError:
                continue
            rec.append(time.monotonic_ns(), source, bytes(buf[:n]), protocol)
            got[0] += 1

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    sender = Sender(protocol, "127.0.0.1", port)
    try:
        sim = Simulator(move, protocol, rate, sender=sender, profile=profile, drop_frame=drop_frame)
        frames = round(seconds * sim.rate.fps)
        sent = sim.run(count=frames)
        packets = sum(s.packets for s in sent)
        deadline = time.monotonic() + 3.0
        while got[0] < packets and time.monotonic() < deadline:
            time.sleep(0.005)
        assert got[0] == packets, f"recorded {got[0]} of {packets} datagrams"
        assert sim.frames_skipped == 0, "the simulator fell behind; the take has holes"
    finally:
        stop.set()
        thread.join(2.0)
        sender.close()
        sock.close()
        rec.close()
    return sent


# --------------------------------------------------------------------------------------------- the truth
def _T(t, ptr) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rot_ptr(*ptr)
    T[:3, 3] = t
    return T


def true_camera(move: str, t_s: float, pose_frame: str) -> tuple[np.ndarray, float, float, float]:
    """``(T_stage_camera, focal_mm, pupil_m, focus_m)`` of the simulated camera at move time ``t_s``: the move's
    pose, the registration, the tracker offset (body poses only: FreeD / OSC) and the lens file evaluated by
    ``LensFile.evaluate`` (the grid path, not the per-frame table) at the move's encoders."""
    p = pose_at(move, t_s)
    T = _T((p.x, p.y, p.z), (p.pan, p.tilt, p.roll))
    if pose_frame == "body":
        T = T @ _T(OFFSET["translation"], OFFSET["rotation"])
    T = _T(REGISTRATION["position"], REGISTRATION["rotation"]) @ T
    ev = load_lens_file(LENS).evaluate(p.zoom, p.focus)
    return T, ev.focal_length_mm, ev.entrance_pupil_offset_m, ev.focus_distance_m


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """The angle of the rotation between two 3x3 rotations, degrees."""
    c = (np.trace(Ra.T @ Rb) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))
