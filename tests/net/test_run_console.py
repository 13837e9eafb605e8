"""The stage console inside `stagectl run`: commands over OSC and over ZeroMQ (`stagectl ctl`) change what the
running stage renders (read back from its shared-memory sink), refused senders change nothing, and the operator
state survives a restart.

Real processes, real sockets on loopback with free ports, real rendering (EGL, llvmpipe in CI).
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from .stage_run import EXE, StageRun, console_yaml, first_frame, flat_wall_text, stage_ports

MAGENTA = np.array([255, 0, 255])

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


def _stage(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """flat_wall.yaml on free ports, with a console section (OSC obeyed from 127.0.0.1 only)."""
    ports = stage_ports()
    p = tmp_path / "flat_wall.yaml"
    p.write_text(flat_wall_text(ports) + console_yaml(ports))
    return p, ports


def _magenta_share(reader, after_frame: int) -> tuple[int, float]:
    """``(frame, share of the wall's canvas pixels that show the card's magenta)`` of the first sink frame at
    or after ``after_frame``."""
    frame, pixels = first_frame(reader, after_frame, poll_s=0.01)
    wall = pixels[:1056, :1760, :3].reshape(-1, 3).astype(int)  # the wall's mapping rectangle on out1
    return frame, float(np.mean(np.all(wall == MAGENTA, axis=1)))


def _osc(sock: socket.socket, port: int, address: str, *args) -> OscMessage:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    sock.sendto(b.build().dgram, ("127.0.0.1", port))
    data, _ = sock.recvfrom(65536)
    return OscMessage(data)


def test_osc_and_ctl_commands_change_the_rendered_wall_and_survive_a_restart(tmp_path: Path) -> None:
    from stagectl.render.sink import SinkReader

    stage, ports = _stage(tmp_path)
    keys = subprocess.run([EXE, "keys", str(stage)], capture_output=True, text=True, timeout=60)
    assert keys.returncode == 0, keys.stderr
    state_file = tmp_path / "operator.json"
    run = StageRun(stage, "--state-file", str(state_file))
    reader = None
    try:
        sink = run.wait_for(r"shared memory '([A-Za-z0-9_]+)'").group(1)
        run.wait_for(r"ZeroMQ commands on tcp://127\.0\.0\.1:\d+")
        run.wait_for(r"^\[")  # the first status line: frames are running
        reader = SinkReader(sink, timeout_s=10)
        frame0, share0 = _magenta_share(reader, 0)
        assert share0 < 0.01  # the wall shows the scene

        # --- OSC from an allowed address: a magenta card over the whole wall, acked with its frame
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.bind(("127.0.0.1", 0))
            ack = _osc(s, ports["osc"], "/stagectl/card/add", "wall", 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0)
            assert ack.address == "/stagectl/ack" and ack.params[:2] == ["card.add", 1], ack.params
            applied_at = ack.params[2]
            assert applied_at > frame0
        frame, share = _magenta_share(reader, applied_at)
        assert share > 0.99, (frame, share)  # every wall pixel: the card is over the inner frustum too

        # --- an address not on the allow-list is ignored: no ack, nothing changes
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.5)
            s.bind(("127.0.0.2", 0))
            with pytest.raises(socket.timeout):
                _osc(s, ports["osc"], "/stagectl/card/remove", "card-1")

        # --- ZeroMQ through `stagectl ctl`: blackout, refused command, then lift it
        ctl = subprocess.run([EXE, "ctl", str(stage), "output.blackout", "output=all", "on=true"],
                             capture_output=True, text=True, timeout=60)
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        m = re.search(r"ok: output\.blackout applied at frame (\d+)", ctl.stdout)
        assert m, ctl.stdout
        frame, pixels = first_frame(reader, int(m.group(1)), poll_s=0.01)
        assert pixels[..., :3].max() == 0  # black everywhere
        bad = subprocess.run([EXE, "ctl", str(stage), "card.set", "id=nope", "intensity=2"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "no light card 'nope'" in bad.stdout + bad.stderr
        lift = subprocess.run([EXE, "ctl", str(stage), "output.blackout", "output=all", "on=false"],
                              capture_output=True, text=True, timeout=60)
        assert lift.returncode == 0, lift.stdout + lift.stderr
        m = re.search(r"applied at frame (\d+)", lift.stdout)
        frame, share = _magenta_share(reader, int(m.group(1)))
        assert share > 0.99
    finally:
        if reader is not None:
            reader.close()
        out = run.stop()
    assert "console: " in out and "OSC refused 1" in out, out

    # --- restart: the acknowledged card comes back from the operator state file before any command
    run = StageRun(stage, "--state-file", str(state_file))
    reader = None
    try:
        sink = run.wait_for(r"shared memory '([A-Za-z0-9_]+)'").group(1)
        run.wait_for(r"^\[")
        reader = SinkReader(sink, timeout_s=10)
        frame, share = _magenta_share(reader, 0)
        assert share > 0.99, (frame, share)
    finally:
        if reader is not None:
            reader.close()
        run.stop()

