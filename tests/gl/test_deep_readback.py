"""Deep canvases kept as GL packs them: ``rgb10_a2`` canvases are read back as packed words, handed to the
sink as they are (``canvases(packed=True)``), and unpacked into codes only when asked; the runtime's
StageOutput publishes every canvas at full depth and makes 8-bit pictures for previews and thumbnails.

References: the renderer's framebuffers read again here synchronously (``read_rgb10_a2``, ``read_pixels``:
each checked code for code in tests/gl/test_deep_canvas.py), the published bit layout of
``GL_UNSIGNED_INT_2_10_10_10_REV`` (red bits 0-9, green 10-19, blue 20-29, alpha 30-31) written out here, and
OpenColorIO's CPU processor of the exact preview chain built here (inverse output transform, then the SDR view
of ``sRGB - Display``).
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
from helpers import load_stage_text, one_wall_stage

from stagectl.render.camera import camera_state_from_pose
from stagectl.render.gl.readback import pack_rgb10_a2, read_pixels, read_rgb10_a2, unpack_rgb10_a2
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.render.sink import SinkReader, sink_name

STAGE = one_wall_stage("Deep readback", (8, 2), [
    "{name: ten, canvas: [72, 64], mappings: [{wall: w, rect: [0, 0, 64, 64]}]}",
    "{name: sixteen, canvas: [64, 64], mappings: [{wall: w, rect: [64, 0, 64, 64]}]}",
    "{name: eight, canvas: [64, 64], mappings: [{wall: w, rect: [128, 0, 64, 64]}]}",
    "{name: aces, canvas: [64, 64], mappings: [{wall: w, rect: [192, 0, 64, 64]}]}",
]) + """\
colour:
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/ten: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
    p/sixteen: {canvas: {format: rgba16, transfer: pq, peak_nits: 1000}}
    p/aces: {canvas: {format: rgb10_a2}, display: Rec.2100-PQ - Display, view: ACES 2.0 - HDR 1000 nits (P3 D65)}
"""
POSES = [(0.3, 0.0, 1.6, 5.0, 0.0, 0.0), (-0.4, 0.2, 1.7, -8.0, 2.0, 0.0)]

pytestmark = pytest.mark.gl


def _words(codes: np.ndarray) -> np.ndarray:
    """Codes (..., 4) -> ``GL_UNSIGNED_INT_2_10_10_10_REV`` words, by the published layout."""
    c = codes.astype(np.uint64)
    return (c[..., 0] | (c[..., 1] << 10) | (c[..., 2] << 20) | (c[..., 3] << 30)).astype(np.uint32)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    return load_stage_text(tmp_path_factory.mktemp("deep_readback") / "deep.yaml", STAGE)


def test_pack_and_unpack_follow_the_published_layout() -> None:
    rng = np.random.default_rng(7)
    codes = np.concatenate([rng.integers(0, 1024, (5, 7, 3)), rng.integers(0, 4, (5, 7, 1))], axis=-1)
    codes = codes.astype(np.uint16)
    words = _words(codes)
    np.testing.assert_array_equal(pack_rgb10_a2(codes), words)
    np.testing.assert_array_equal(unpack_rgb10_a2(words), codes)
    into = np.zeros((5, 7, 4), np.uint16)
    assert unpack_rgb10_a2(words, out=into) is into
    np.testing.assert_array_equal(into, codes)
    every = np.arange(1024, dtype=np.uint16)  # every code of every channel, alpha 0..3
    grid = np.stack([every, every[::-1], (every * 7) % 1024, every % 4], axis=-1)
    np.testing.assert_array_equal(unpack_rgb10_a2(pack_rgb10_a2(grid)), grid)


@pytest.mark.parametrize("readback", ["sync", "async", "none"])
def test_packed_canvases_are_the_framebuffers_words_in_every_readback_mode(gl, stage, readback) -> None:
    r = StageRenderer(stage, gl, readback=readback, failure_policy="safe")
    try:
        planner = FramePlanner(stage)
        for k, pose in enumerate(POSES):
            assert r.render_frame(planner.plan([camera_state_from_pose(stage, pose)], frame=k)).ok
            if readback == "async":
                r.flush()
            packed = r.canvases(packed=True)
            codes = {key: v.copy() for key, v in r.canvases().items()}
            for key in ("p/ten", "p/aces"):
                want = read_rgb10_a2(r.front_framebuffer(key))  # the framebuffer, read again here
                assert packed[key].shape == want.shape[:2] and packed[key].dtype == np.uint32
                np.testing.assert_array_equal(packed[key], _words(want))
                np.testing.assert_array_equal(codes[key], want)
            # the other formats are the same arrays with or without packed
            np.testing.assert_array_equal(packed["p/sixteen"], read_pixels(r.front_framebuffer("p/sixteen"),
                                                                           dtype=np.uint16))
            np.testing.assert_array_equal(packed["p/eight"], read_pixels(r.front_framebuffer("p/eight")))
            assert len(np.unique(codes["p/ten"][:64, :64, 0])) > 20  # a real frame, not the safe image
            if k == 0:
                first = codes["p/ten"]
        assert not np.array_equal(first, codes["p/ten"])  # the second frame's codes, not the first's
        # a failed frame with policy "safe": packed and unpacked canvases are the safe image (opaque black)
        def fail_readback(name: str) -> None:
            if name == "readback":
                raise RuntimeError("injected")

        r.fault_hook = fail_readback
        assert not r.render_frame(planner.plan([camera_state_from_pose(stage, POSES[0])], frame=9)).ok
        assert np.all(r.canvases(packed=True)["p/ten"] == np.uint32(3 << 30))
        black = r.canvases()["p/ten"]
        assert np.all(black[..., :3] == 0) and np.all(black[..., 3] == 3)
    finally:
        r.release()


def test_stage_output_publishes_what_the_renderer_read_back(gl, stage) -> None:
    """StageOutput's sinks carry each canvas at its depth, the 10-bit ones as the renderer's packed words."""
    from stagectl.runtime import StageOutput

    said: list[str] = []
    prefix = f"t{os.getpid()}{uuid.uuid4().hex[:6]}"
    out = StageOutput.open(stage, said.append, prefix="test", headline=lambda o: "open", sink=(prefix,))
    readers = []
    try:
        planner = FramePlanner(stage)
        assert out.render(planner.plan([camera_state_from_pose(stage, POSES[0])], frame=3)).ok
        out.present(3, 12345)
        fbs = {k: out.renderer.front_framebuffer(k) for k in out.renderer.keys}
        for key, fmt, version in (("p/ten", "rgb10_a2", 2), ("p/aces", "rgb10_a2", 2), ("p/sixteen", "rgba16", 2),
                                  ("p/eight", "rgba8", 1)):
            reader = SinkReader(sink_name(prefix, key))
            readers.append(reader)
            assert reader.format == fmt
            assert int.from_bytes(bytes(reader._shm.buf[8:12]), "little") == version
            frame = reader.latest()
            assert frame.frame_no == 3 and frame.time_ns == 12345
            if fmt == "rgb10_a2":
                np.testing.assert_array_equal(frame.pixels, _words(read_rgb10_a2(fbs[key])))
            else:
                want = read_pixels(fbs[key], dtype=np.uint16 if fmt == "rgba16" else np.uint8)
                np.testing.assert_array_equal(frame.pixels, want)
        assert any("p/ten (72 x 64 RGBA, 10-bit rgb10_a2" in line for line in said), said
        assert any("p/eight (64 x 64 RGBA) -> shared memory" in line for line in said), said
        # thumbnails: 8-bit pictures, tone-mapped for deep outputs; the 8-bit output's is its canvas (made on
        # the worker thread: a call returns those of the hand-over before; tests/gl/test_output_pictures.py)
        out.thumbnail_images(3)
        assert out.pictures.wait_idle(30)
        stamped = out.thumbnail_images(4)
        assert {f for f, _ in stamped.values()} == {3}  # the frame handed over, not the frame of this call
        thumbs = {k: img for k, (_, img) in stamped.items()}
        canvases = out.canvases()
        for key, img in thumbs.items():
            assert img.dtype == np.uint8 and img.shape == canvases[key].shape[:2] + (4,)
        np.testing.assert_array_equal(thumbs["p/eight"], canvases["p/eight"])
        assert thumbs["p/ten"][:64, :64, :3].mean() > 20
    finally:
        for reader in readers:
            reader.close()
        out.close()
    assert not out.sinks


def test_baked_previews_follow_the_exact_ocio_chain(stage) -> None:
    """The preview of a deep output is baked into a 3D LUT; against OCIO's exact chain (inverse of the output's
    transform, then the SDR view) on random light up to 1000 nits: nearly every value within one 8-bit code,
    the rest within a few (saturated colours at the gamut's edge, where the chain folds between grid points)."""
    import PyOpenColorIO as ocio

    from stagectl.color.output import output_encode

    cfg = ocio.Config.CreateFromFile("ocio://studio-config-latest")
    sdr = ocio.DisplayViewTransform(src="Linear Rec.709 (sRGB)", display="sRGB - Display",
                                    view=cfg.getDefaultView("sRGB - Display"))
    hdr = ocio.DisplayViewTransform(src="Linear Rec.709 (sRGB)", display="Rec.2100-PQ - Display",
                                    view="ACES 2.0 - HDR 1000 nits (P3 D65)")
    # codes of light the encode makes: linear colours (up to 10 x 100 nits) through the HDR view, quantised
    rng = np.random.default_rng(3)
    light = (rng.random((64, 64, 3)) ** 3 * 10.0).astype(np.float32)
    signal = light.reshape(-1, 3).copy()
    cfg.getProcessor(hdr).getDefaultCPUProcessor().applyRGB(signal)
    codes = np.floor(np.clip(signal, 0, 1) * 1023 + 0.5).reshape(64, 64, 3).astype(np.uint16)
    canvas = np.concatenate([codes, np.full((64, 64, 1), 3, np.uint16)], axis=-1)
    exact = (codes.astype(np.float32) / 1023).reshape(-1, 3)
    back = ocio.DisplayViewTransform(src="Linear Rec.709 (sRGB)", display="Rec.2100-PQ - Display",
                                     view="ACES 2.0 - HDR 1000 nits (P3 D65)",
                                     direction=ocio.TRANSFORM_DIR_INVERSE)
    cfg.getProcessor(ocio.GroupTransform([back, sdr])).getDefaultCPUProcessor().applyRGB(exact)
    want = np.floor(np.clip(exact, 0, 1) * 255 + 0.5).reshape(64, 64, 3).astype(int)
    got = output_encode(stage.colour, "p/aces").preview_rgba8(canvas)
    assert got.dtype == np.uint8 and np.all(got[..., 3] == 255)
    diff = np.abs(got[..., :3].astype(int) - want)
    assert np.mean(diff <= 1) > 0.97 and diff.max() <= 16, (np.mean(diff <= 1), diff.max())
    assert len(np.unique(want)) > 100  # a spread of colours, not a few greys
