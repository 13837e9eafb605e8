"""`stagectl node --windows`: a render node presents its outputs' canvases in GLFW windows (the same
:class:`~stagectl.runtime.StageOutput` path as `stagectl run --windows`), on a real X server (``DISPLAY``, else
a private Xvfb: tests/gl/test_present.py's fixture), and only once the swap barrier released the frame.

The primary is a :class:`~stagectl.sync.cluster.Primary` in this process, a member of its own barrier, which
reports each frame only ``HOLD`` after publishing it: the node's presentation instant of frame ``k`` (the stamp
its ``--sink`` ring gets, taken when :meth:`StageOutput.present` swaps the windows and writes the sinks) must
come after the primary's report of frame ``k``, without which the barrier cannot release it. A node presenting
as soon as it has rendered (a small canvas: a few ms) would present about ``HOLD`` earlier.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from gl.test_present import _env, x_display  # noqa: F401 - the module's X display (a fixture)
from helpers import EXE, three_windows_stage

from stagectl.core.timebase import FrameRate
from stagectl.sync.cluster import FrameState

from .cluster_parts import MS, ClusterParts
from .test_cluster_show import _Frames

RATE = FrameRate(25)
HOLD_NS = 250 * MS  # how long the primary waits after publishing a frame before it reports it (longer
# than the node's render of two small canvases, a few ms to ~100 ms on a loaded 2-core llvmpipe)


@pytest.fixture
def parts(zctx):
    p = ClusterParts(zctx)
    yield p
    p.close()


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_a_node_presents_its_windows_only_after_the_barrier_releases(tmp_path: Path, parts,
                                                                    x_display: str) -> None:  # noqa: F811
    import subprocess
    import threading

    from stagectl.render.camera import camera_state_from_pose
    from stagectl.stage import load_stage

    name = f"Windows {uuid.uuid4().hex[:8]}"
    stage_path = tmp_path / "stage.yaml"
    stage_path.write_text(three_windows_stage(name, {"o1": "n1", "o2": "n1"}))
    stage = load_stage(stage_path)
    primary = parts.primary(member="primary", timeout_ns=1000 * MS)  # a hold never drops anybody
    proc = subprocess.Popen([EXE, "node", str(stage_path), "--name", "n1", "--primary", primary.address,
                             "--windows", "windowed", "--sink", "--duration", "60", "--no-realtime"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(x_display))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    watch = None
    arrived: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 120
        ring = None
        while ring is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"node n1: output pa/o1 .* shared memory '([A-Za-z0-9_]+)'", "".join(lines))
            ring = m.group(1) if m else None
            time.sleep(0.05)
        assert ring, "".join(lines)
        watch = _Frames(ring)
        def frame(k: int):
            primary.publish(FrameState.make(k, RATE, time.monotonic_ns(), cameras=[
                camera_state_from_pose(stage, (0.3 * np.sin(k / 5), 0.5, 1.6, 5 + k, 2, 0))]))
            time.sleep(HOLD_NS / 1e9)  # the node renders meanwhile, reports, and waits for this report
            arrived[k] = time.monotonic_ns()
            return primary.barrier(k)

        while "n1" not in frame(len(arrived)).members:  # the node enters by reporting a frame not released yet
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
        first = len(arrived)  # both in the barrier from here on
        for k in range(first, first + 12):
            r = frame(k)
            assert r.released and "n1" in r.members, r
        time.sleep(0.2)
        status = primary.status()
        proc.terminate()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        if watch is not None:
            watch.close()
    out = "".join(lines)
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert status.nodes["n1"].state == "member" and status.timed_out_rounds == 0, status.summary()
    assert ("stagectl node n1: windows (windowed): pa/o1 200 x 192 -> windowed 200 x 192 (1:1); "
            "pa/o2 192 x 160 -> windowed 192 x 160 (1:1); Esc or closing a window closes that window only"
            ) in out, out
    assert "rendering 2 canvases for 2 output windows on" in out, out
    held = [k for k in range(first, first + 12) if k in watch.stamps]
    assert len(held) >= 10, (sorted(watch.stamps), first)
    early = {k: (arrived[k] - watch.stamps[k]) / 1e6 for k in held if watch.stamps[k] < arrived[k]}
    assert not early, f"presented before the barrier let it (ms early): {early}"
    m = re.search(r"stopped by SIGTERM after (\d+) frames .* rendered (\d+) frames of 2 canvases for the output "
                  r"windows \(0 failed\); presented (\d+) frames on 2 windows \(windowed\) after the barrier's "
                  r"release\.", out)
    assert m, out
    frames, rendered, presented = map(int, m.groups())
    assert presented == rendered == frames >= len(held), out
    status_lines = [ln for ln in out.splitlines() if ln.startswith("[00:")]
    assert status_lines and status_lines[-1].endswith("| windows 2/2 open"), status_lines[-1:]


def test_node_window_options_are_checked_before_any_work(tmp_path: Path) -> None:
    import subprocess

    stage_path = tmp_path / "stage.yaml"
    stage_path.write_text(three_windows_stage("Windows", {"o1": "n1", "o2": "n1"}))
    cases = {
        ("--windows", "--no-render"): "--windows needs rendering: drop --no-render",
        ("--monitor", "pa/o1=DP-1"): "--monitor places fullscreen windows: use it with --windows fullscreen",
        ("--windows",): "--windows needs a display (DISPLAY is not set); run headless without --windows",
    }
    for extra, error in cases.items():
        proc = subprocess.run([EXE, "node", str(stage_path), "--name", "n1", *extra], capture_output=True,
                              text=True, env=_env(None), timeout=60)
        assert proc.returncode == 2, (extra, proc.stdout, proc.stderr)
        assert proc.stderr.strip().splitlines() == [f"stagectl node: error: {error}"], (extra, proc.stderr)
