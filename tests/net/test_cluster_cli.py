"""`stagectl run --cluster` and `stagectl node` as real processes on loopback: the node follows every frame and
meets the primary at the swap barrier."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import STAGES

pytestmark = pytest.mark.net
EXE = str(Path(sys.executable).parent / "stagectl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_primary_and_node_processes_share_frames_and_the_barrier(tmp_path: Path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tracker_port = udp.getsockname()[1]
    udp.close()
    stage = tmp_path / "demo.yaml"
    stage.write_text((STAGES / "demo.yaml").read_text().replace("port: 40000", f"port: {tracker_port}")
                     .replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/"))
    p1, p2 = _free_port(), _free_port()
    primary = subprocess.Popen([EXE, "run", str(stage), "--duration", "8", "--no-render",
                                "--cluster", f"127.0.0.1:{p1},{p2}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        # wait until the primary has bound its sockets (a fresh checkout compiles the Numba kernels first)
        assert primary.stdout is not None
        head = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = primary.stdout.readline()
            head.append(line)
            if not line or "cluster primary:" in line:
                break
        assert "cluster primary:" in head[-1], "".join(head)
        node = subprocess.run([EXE, "node", str(stage), "--name", "n1", "--primary", f"127.0.0.1:{p1},{p2}",
                               "--no-render", "--duration", "3"], capture_output=True, text=True, timeout=60)
        rest, err = primary.communicate(timeout=60)
        out = "".join(head) + rest
    finally:
        if primary.poll() is None:
            primary.kill()
    assert node.returncode == 0, node.stderr
    assert primary.returncode == 0, err
    m = re.search(r"after (\d+) frames \((\d+) states skipped, (\d+) sequence gaps, (\d+) bad messages\); "
                  r"barrier: (\d+) waits, (\d+) released, (\d+) timed out", node.stdout)
    assert m, node.stdout
    frames, skipped, gaps, bad, waits, released, timed_out = map(int, m.groups())
    # ~72 edges in the node's 3 s at 23.976 fps; its start-up (connect, snapshot) takes a few of them
    assert frames >= 48 and gaps == 0 and bad == 0
    assert released == waits and timed_out == 0
    # the primary's operator state (its console's, as it started) reached the node with its snapshot, and
    # every frame named one the node had
    assert re.search(r"operator state #1 \(1 received, 0 frames behind, 0 refused\)", node.stdout), (
        node.stdout)
    # while the node was there, the primary's barrier had two members
    assert re.search(r"n1:member@\d+ primary:member@\d+", out), out
    assert "cluster primary: frame states on 127.0.0.1:" in out
