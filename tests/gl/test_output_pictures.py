"""StageOutput makes its PNG previews and console thumbnails on a worker thread (stagectl/runtime/pictures.py):
the loop-side calls only copy the read-back canvases and hand them over, so they return while a deliberately
slow picture function (the real one behind a gate) has not finished; at most one job waits per output and kind
of picture, a newer hand-over replaces a waiting one; the pictures that arrive are those of the renderer's own
synchronous path for the newest frame handed over (``StageRenderer.preview_images``: OCIO's tone-mapped picture
for deep outputs, checked against OCIO's exact chain in tests/gl/test_deep_readback.py; the canvas itself for
the 8-bit output)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from helpers import one_wall_stage

from stagectl.color.output import preview_picture
from stagectl.core.camera import OperatorFlags
from stagectl.render.plan import FramePlanner
from stagectl.runtime import StageOutput
from stagectl.runtime.output import THUMBNAIL_WIDTH
from stagectl.stage import load_stage

pytestmark = pytest.mark.gl

STAGE = one_wall_stage("Pictures", (6, 2), [
    "{name: ten, canvas: [72, 64], mappings: [{wall: w, rect: [0, 0, 64, 64]}]}",
    "{name: sixteen, canvas: [64, 64], mappings: [{wall: w, rect: [64, 0, 64, 64]}]}",
    "{name: eight, canvas: [64, 64], mappings: [{wall: w, rect: [128, 0, 64, 64]}]}",
]) + """\
colour:
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/ten: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
    p/sixteen:
      canvas: {format: rgba16}
      display: Rec.2100-PQ - Display
      view: ACES 2.0 - HDR 1000 nits (P3 D65)
"""
KEYS = ["p/eight", "p/sixteen", "p/ten"]
WAIT_S = 30.0  # bounds for a loaded machine; a passing run never waits them out


class Gated:
    """The real picture function behind a gate: it waits for ``gate`` before doing its (OCIO) work."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.threads: set[str] = set()
        self.finished = 0

    def __call__(self, encode, codes, width):
        self.threads.add(threading.current_thread().name)
        self.started.set()
        assert self.gate.wait(WAIT_S)
        out = preview_picture(encode, codes, width)
        self.finished += 1
        return out


def test_previews_and_thumbnails_are_made_off_the_loop(gl, tmp_path) -> None:
    path = tmp_path / "pictures.yaml"
    path.write_text(STAGE, encoding="utf-8")
    stage = load_stage(path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    said: list[str] = []
    out = StageOutput.open(stage, said.append, prefix="test", headline=lambda o: "open", run_dir=run_dir,
                           preview_every_s=1.0)
    slow = Gated()
    out.picture = slow
    try:
        planner = FramePlanner(stage)
        assert out.render(planner.plan([], OperatorFlags(blackout=True), frame=1)).ok
        out.previews(1)  # due: hands frame 1 over and returns although the picture function is held
        assert slow.finished == 0
        assert slow.started.wait(WAIT_S)  # the worker took the first output's job ...
        assert out.pictures.waiting == 2 and not list(run_dir.glob("*.png"))  # ... and holds it; two wait
        assert threading.current_thread().name not in slow.threads

        assert out.render(planner.plan([], frame=2)).ok  # the scene, not black
        out.previews(500_000_000)  # not due yet (every 1 s): nothing handed over
        assert out.pictures.waiting == 2 and out.pictures.replaced == 0
        out.previews(1_000_000_001)  # frame 2 replaces the two waiting jobs and queues the running one's again
        assert out.pictures.waiting == 3 and out.pictures.replaced == 2 and slow.finished == 0
        want = {k: v.copy() for k, v in out.renderer.preview_images().items()}  # the synchronous path
        assert sorted(want) == KEYS and want["p/ten"][..., :3].mean() > 20  # frame 2 shows the scene

        slow.gate.set()
        assert out.pictures.wait_idle(WAIT_S)
        assert slow.finished == 4 and out.pictures.failed == 0  # 3 outputs of frame 2, 1 of frame 1
        for key in KEYS:
            png = cv2.imread(str(run_dir / f"preview_p_{key[2:]}.png"), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint8 and png.shape == want[key].shape[:2] + (3,)
            np.testing.assert_array_equal(png[..., ::-1], want[key][..., :3])
        assert sorted(p.name for p in run_dir.iterdir()) == [f"preview_p_{k[2:]}.png" for k in KEYS]

        # thumbnails: the first call hands over and returns what is finished (nothing yet)
        slow.gate.clear()
        assert out.thumbnail_images(2) == {}
        slow.gate.set()
        assert out.pictures.wait_idle(WAIT_S)
        stamped = out.thumbnail_images(3)  # frame 2's, handed over by the call before, and stamped so
        assert {k: f for k, (f, _) in stamped.items()} == dict.fromkeys(KEYS, 2)
        thumbs = {k: img for k, (_, img) in stamped.items()}
        want = out.renderer.preview_images(width=THUMBNAIL_WIDTH)
        assert sorted(thumbs) == KEYS
        for key in KEYS:
            np.testing.assert_array_equal(thumbs[key], want[key])
        np.testing.assert_array_equal(thumbs["p/eight"], out.canvases()["p/eight"])  # 8-bit: the canvas
    finally:
        slow.gate.set()
        out.close()
    assert not out.pictures.busy
    assert not any("pictures:" in line for line in said), said
