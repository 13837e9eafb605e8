"""Deep canvases leave the renderer at full depth: async readback, the shared-memory sink, ``stagectl snapshot``
(16-bit PNG plus an 8-bit preview), and previews for people (llvmpipe).

References: the renderer's own synchronous readback of the same frame (``read_rgb10_a2`` / ``read_pixels``
uint16, each checked code for code in tests/gl/test_deep_canvas.py), and the published packing of
``GL_UNSIGNED_INT_2_10_10_10_REV`` for the sink's words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from stagectl.render.camera import camera_state_from_pose
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.render.sink import SinkReader, SinkWriter, sink_name
from stagectl.stage import load_stage

from conftest import REPO
from helpers import one_wall_stage

pytestmark = pytest.mark.gl

STAGE = one_wall_stage("Deep outputs", (4, 2), [
    "{name: ten, canvas: [72, 64], mappings: [{wall: w, rect: [0, 0, 64, 64]}]}",
    "{name: sixteen, canvas: [64, 64], mappings: [{wall: w, rect: [64, 0, 64, 64]}]}",
]) + """\
colour:
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/ten: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
    p/sixteen: {canvas: {format: rgba16, transfer: pq, peak_nits: 1000}}
"""
POSE = (0.3, 0.0, 1.6, 5.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def stage_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("deep") / "deep.yaml"
    path.write_text(STAGE, encoding="utf-8")
    return path


def _render(gl, stage, readback="sync", frames=1):
    r = StageRenderer(stage, gl, readback=readback)
    try:
        planner = FramePlanner(stage)
        for k in range(frames):
            assert r.render_frame(planner.plan([camera_state_from_pose(stage, POSE)], frame=k)).ok
        if readback == "async":
            r.flush()
        return ({k: v.copy() for k, v in r.canvases().items()}, {k: r.canvas_format(k) for k in r.keys},
                {k: v.copy() for k, v in r.preview_images().items()})
    finally:
        r.release()


def test_async_readback_carries_the_full_depth(gl, stage_file) -> None:
    stage = load_stage(stage_file)
    sync, formats, _ = _render(gl, stage)
    asy, _, _ = _render(gl, stage, readback="async", frames=2)
    lazy, _, _ = _render(gl, stage, readback="none")
    assert formats == {"p/ten": "rgb10_a2", "p/sixteen": "rgba16"}
    for k in sync:
        assert sync[k].dtype == np.uint16
        np.testing.assert_array_equal(asy[k], sync[k])
        np.testing.assert_array_equal(lazy[k], sync[k])
    ten = sync["p/ten"]
    assert ten[..., :3].max() <= 1023 and len(np.unique(ten[:64, :64, 0])) > 20  # real 10-bit detail
    assert np.all(ten[:, 64:, :3] == 0) and np.all(ten[..., 3] == 3)  # unmapped columns: opaque black
    assert sync["p/sixteen"][..., :3].max() > 1023  # 16-bit codes, not 8- or 10-bit ones


def test_sink_rings_carry_10_and_16_bit_frames(gl, stage_file) -> None:
    stage = load_stage(stage_file)
    canvases, formats, _ = _render(gl, stage)
    for key, img in canvases.items():
        h, w = img.shape[:2]
        name = sink_name("test", str(os.getpid()), key)
        with SinkWriter(name, w, h, slots=3, replace=True, fmt=formats[key]) as writer:
            writer.write(7, 123, img)
            with SinkReader(name) as reader:
                raw = bytes(reader._shm.buf[:64])
                version, pixel_format = int.from_bytes(raw[8:12], "little"), int.from_bytes(raw[52:56], "little")
                assert version == 2 and reader.format == formats[key]
                frame = reader.latest()
                assert frame.frame_no == 7 and frame.time_ns == 123
                if formats[key] == "rgb10_a2":
                    assert pixel_format == 2 and frame.pixels.shape == (h, w) and frame.pixels.dtype == np.uint32
                    words = frame.pixels.astype(np.uint64)
                    codes = np.stack([words & 1023, (words >> 10) & 1023, (words >> 20) & 1023, words >> 30], -1)
                    np.testing.assert_array_equal(codes, img)
                else:
                    assert pixel_format == 1 and frame.pixels.dtype == np.uint16
                    np.testing.assert_array_equal(frame.pixels, img)
    # an 8-bit ring is byte for byte what it always was: version 1, pixel format 0
    with SinkWriter(sink_name("test8", str(os.getpid())), 4, 2, replace=True) as writer, \
            SinkReader(writer.name) as reader:
        raw = bytes(reader._shm.buf[:64])
        assert int.from_bytes(raw[8:12], "little") == 1 and int.from_bytes(raw[52:56], "little") == 0
        with pytest.raises(Exception, match="frame must be"):
            writer.write(0, 0, np.zeros((2, 4, 4), np.uint16))


def test_previews_are_8bit_pictures_not_the_signal(gl, stage_file) -> None:
    stage = load_stage(stage_file)
    canvases, _, previews = _render(gl, stage)
    for k, img in previews.items():
        assert img.dtype == np.uint8 and img.shape == canvases[k].shape
        assert np.all(img[..., 3] == 255)
    # mapped pixels show the scene: not black, and not the PQ codes scaled down (a tone map, not a rescale)
    mapped = previews["p/ten"][:64, :64, :3].astype(int)
    assert mapped.mean() > 20
    assert not np.array_equal(mapped, canvases["p/ten"][:64, :64, :3].astype(int) >> 2)


def test_snapshot_writes_16bit_png_of_deep_canvases(gl, stage_file, tmp_path) -> None:
    stage = load_stage(stage_file)
    canvases, _, _ = _render(gl, stage)
    out = tmp_path / "snap"
    cmd = [sys.executable, "-m", "stagectl.cli", "snapshot", str(stage_file), f"--pose={','.join(map(str, POSE))}",
           "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((out / "snapshot.json").read_text())
    by_key = {o["key"]: o for o in doc["outputs"]}
    for key, top in (("p/ten", 1023), ("p/sixteen", 65535)):
        png = cv2.imread(str(out / by_key[key]["file"]), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16
        rgb = png[..., ::-1].astype(np.int64)
        back = (rgb * top + 65535 // 2) // 65535  # round(value * top / 65535): the codes again
        np.testing.assert_array_equal(back, canvases[key][..., :3])
        assert by_key[key]["format"] == ("rgb10_a2" if top == 1023 else "rgba16")
        prev = cv2.imread(str(out / by_key[key]["preview"]), cv2.IMREAD_UNCHANGED)
        assert prev.dtype == np.uint8 and prev.shape[:2] == png.shape[:2]
