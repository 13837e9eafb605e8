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


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
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


def test_primary_and_node_processes_with_node_keys(tmp_path: Path) -> None:
    """`stagectl keys --node` makes the node keys; `stagectl run --cluster` then requires them: node n1 with
    its own key follows every frame and meets the barrier, a node that names itself n1 with n2's key gets
    nothing, and the primary counts its messages as forged."""
    stage = tmp_path / "demo.yaml"
    stage.write_text((STAGES / "demo.yaml").read_text().replace("port: 40000", f"port: {_free_udp_port()}")
                     .replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/"))
    keys = subprocess.run([EXE, "keys", str(stage), "--node", "n1", "--node", "n2"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert keys.returncode == 0, keys.stderr
    assert "authorises cluster node 'n1'" in keys.stdout and (tmp_path / "keys/nodes/n2.key_secret").is_file()
    p1, p2 = _free_port(), _free_port()
    where = f"127.0.0.1:{p1},{p2}"
    primary = subprocess.Popen([EXE, "run", str(stage), "--duration", "8", "--no-render", "--cluster", where],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    impostor = None
    try:
        assert primary.stdout is not None
        head = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = primary.stdout.readline()
            head.append(line)
            if not line or "stagectl run: cluster: CURVE" in line:
                break
        assert "cluster: CURVE, admitting the node keys in" in head[-1], "".join(head)
        node_args = ["node", str(stage), "--name", "n1", "--primary", where, "--no-render", "--duration", "3"]
        impostor = subprocess.Popen([EXE, *node_args, "--key", str(tmp_path / "keys/nodes/n2.key_secret")],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        node = subprocess.run([EXE, *node_args], capture_output=True, text=True, timeout=60, check=False)
        fake_out, _ = impostor.communicate(timeout=60)
        rest, err = primary.communicate(timeout=60)
        out = "".join(head) + rest
    finally:
        for p in (primary, impostor):
            if p is not None and p.poll() is None:
                p.kill()
    assert node.returncode == 0, node.stderr
    assert primary.returncode == 0, err
    assert "CURVE with key 'n1'" in node.stdout, node.stdout
    m = re.search(r"after (\d+) frames \((\d+) states skipped, (\d+) sequence gaps, (\d+) bad messages\); "
                  r"barrier: (\d+) waits, (\d+) released, (\d+) timed out", node.stdout)
    assert m, node.stdout
    frames, skipped, gaps, bad, waits, released, timed_out = map(int, m.groups())
    assert frames >= 48 and gaps == 0 and bad == 0
    assert released == waits and timed_out == 0
    assert re.search(r"n1:member@\d+ primary:member@\d+", out), out
    # the impostor (n2's key, n1's name) never got a state, and the primary counted it
    assert impostor.returncode == 0, fake_out
    assert re.search(r"after 0 frames .* barrier: 0 waits", fake_out), fake_out
    forged = [int(x) for x in re.findall(r"CURVE: \d+ refused, (\d+) forged names", out)]
    assert forged and max(forged) > 0, out
    assert "unauthenticated" not in out
