"""`stagectl run --cluster` and `stagectl node` as real processes on loopback: the node follows every frame and
meets the primary at the swap barrier."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers import EXE, free_port, stage_on_free_port

pytestmark = pytest.mark.net


def _head(proc: subprocess.Popen, until: str, timeout_s: float = 120.0) -> list[str]:
    """``proc``'s output lines up to the first that holds ``until`` (or its end, or ``timeout_s``)."""
    assert proc.stdout is not None
    head = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        head.append(line)
        if not line or until in line:
            break
    return head


def _assert_followed(node_out: str) -> None:
    """The node's summary (``stagectl node`` output ``node_out``): it followed the frames and met every
    barrier."""
    m = re.search(r"after (\d+) frames \((\d+) states skipped, (\d+) sequence gaps, (\d+) bad messages\); "
                  r"barrier: (\d+) waits, (\d+) released, (\d+) timed out", node_out)
    assert m, node_out
    frames, _skipped, gaps, bad, waits, released, timed_out = map(int, m.groups())
    # ~72 edges in the node's 3 s at 23.976 fps; its start-up (connect, snapshot) takes a few of them
    assert frames >= 48 and gaps == 0 and bad == 0
    assert released == waits and timed_out == 0


def test_primary_and_node_processes_share_frames_and_the_barrier(tmp_path: Path) -> None:
    stage = stage_on_free_port(tmp_path, "demo.yaml")
    p1, p2 = free_port(), free_port()
    primary = subprocess.Popen([EXE, "run", str(stage), "--duration", "8", "--no-render",
                                "--cluster", f"127.0.0.1:{p1},{p2}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        # wait until the primary has bound its sockets (a fresh checkout compiles the Numba kernels first)
        head = _head(primary, "cluster primary:")
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
    _assert_followed(node.stdout)
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
    stage = stage_on_free_port(tmp_path, "demo.yaml")
    keys = subprocess.run([EXE, "keys", str(stage), "--node", "n1", "--node", "n2"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert keys.returncode == 0, keys.stderr
    assert "authorises cluster node 'n1'" in keys.stdout and (tmp_path / "keys/nodes/n2.key_secret").is_file()
    p1, p2 = free_port(), free_port()
    where = f"127.0.0.1:{p1},{p2}"
    primary = subprocess.Popen([EXE, "run", str(stage), "--duration", "8", "--no-render", "--cluster", where],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    impostor = None
    try:
        head = _head(primary, "stagectl run: cluster: CURVE")
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
    _assert_followed(node.stdout)
    assert re.search(r"n1:member@\d+ primary:member@\d+", out), out
    # the impostor (n2's key, n1's name) never got a state, and the primary counted it
    assert impostor.returncode == 0, fake_out
    assert re.search(r"after 0 frames .* barrier: 0 waits", fake_out), fake_out
    forged = [int(x) for x in re.findall(r"CURVE: \d+ refused, (\d+) forged names", out)]
    assert forged and max(forged) > 0, out
    assert "unauthenticated" not in out
