"""Crash safety: a process that submits commands is killed with SIGKILL right after an ack; the state file it
leaves restores every acknowledged change (and at most the changes after it that were already written)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stagectl.console.hub import ControlHub
from stagectl.stage.loader import load_stage

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from stagectl.console.hub import ControlHub
from stagectl.stage.loader import load_stage

hub = ControlHub(load_stage(sys.argv[1]), Path(sys.argv[2]))

def loop():
    k = 0
    while True:
        hub.apply_pending(k)
        k += 1
        time.sleep(0.005)

threading.Thread(target=loop, daemon=True).start()
for i in range(100000):
    if i < 12:
        name, args = "card.add", {"wall": "main", "rect": [i / 20, 0, i / 20 + 0.04, 0.1], "id": f"c{i}"}
    else:
        name, args = "camera.set", {"camera": "cam-a", "delay_frames": (i % 3000) / 100}
    ack = hub.submit(name, args, "test")
    print(json.dumps({"i": i, "ack": ack}), flush=True)
"""


@pytest.mark.parametrize("kill_after", [5, 12, 40])
def test_sigkill_after_ack_loses_nothing_acked(stage_dir, tmp_path, kill_after):
    state_path = tmp_path / "op.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(stage_dir / "demo.yaml"), str(state_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    acked = []
    try:
        for line in proc.stdout:
            rec = json.loads(line)
            assert rec["ack"]["ok"], rec
            acked.append(rec)
            if len(acked) == kill_after:
                os.kill(proc.pid, signal.SIGKILL)  # the child keeps submitting until the signal lands
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
    assert len(acked) == kill_after, err
    assert proc.returncode == -signal.SIGKILL

    hub = ControlHub(load_stage(stage_dir / "demo.yaml"), state_path)
    assert hub.warnings == []  # the file is whole
    last = acked[-1]
    assert hub.seq >= last["ack"]["seq"]
    ids = [c.id for c in hub.features.light_cards]
    n_cards = min(12, last["i"] + 1)
    assert ids[:n_cards] == [f"c{i}" for i in range(n_cards)]  # every acked card, in order
    assert ids == [f"c{i}" for i in range(len(ids))]  # and nothing that was not submitted before them
    if last["i"] >= 12:
        delay = hub.state.camera("cam-a").delay_frames
        assert delay >= (last["i"] % 3000) / 100  # the last acked delay, or a later one already written
    assert hub.seq == len(ids) + max(0, round(hub.state.camera("cam-a").delay_frames * 100) - 11)
    hub.close()
    assert Path(state_path).exists()
