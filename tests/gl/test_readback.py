"""Readback of framebuffer colour: exact values, row order (row 0 = top), sync and PBO paths identical."""

from __future__ import annotations

import numpy as np
import pytest

from stagectl.render.gl.errors import ReadbackBusy, ResourceError
from stagectl.render.gl.readback import AsyncReadback, read_pixels

pytestmark = pytest.mark.gl

W, H = 64, 36


def _GL():
    from OpenGL import GL

    return GL


def _clear(fb, rgba, gl_rect=None):
    """Clear ``fb`` (or only ``gl_rect``, GL window coordinates, bottom-left origin) to ``rgba``."""
    GL = _GL()
    fb.bind()
    GL.glViewport(0, 0, fb.width, fb.height)
    if gl_rect is not None:
        GL.glEnable(GL.GL_SCISSOR_TEST)
        GL.glScissor(*gl_rect)
    GL.glClearColor(*rgba)
    GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    GL.glDisable(GL.GL_SCISSOR_TEST)
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)


@pytest.fixture
def fb(resources):
    fb = resources.framebuffer("readback.fb", W, H)
    yield fb
    fb.release()


@pytest.fixture
def ring(resources):
    ring = AsyncReadback(resources, W, H, depth=2, label="readback.ring")
    yield ring
    ring.release()


def test_clear_colour_reads_back_exactly_on_both_paths(fb, ring):
    # 8-bit values that survive float -> unorm conversion exactly: c / 255
    rgba8 = np.array([51, 102, 153, 204], np.uint8)
    _clear(fb, tuple(rgba8 / 255.0))
    sync = read_pixels(fb)
    assert sync.shape == (H, W, 4) and sync.dtype == np.uint8
    assert np.all(sync == rgba8)
    ring.start("frame-1", fb)
    fid, async_img = ring.finish()
    assert fid == "frame-1"
    np.testing.assert_array_equal(async_img, sync)


def test_rows_come_back_top_first_on_both_paths(fb, ring):
    # GL window coordinates: y = H - 4 .. H - 1 are the TOP four rows; x = 0 .. 7 the left eight columns
    _clear(fb, (0.0, 0.0, 1.0, 1.0))
    _clear(fb, (1.0, 0.0, 0.0, 1.0), gl_rect=(0, H - 4, 8, 4))
    sync = read_pixels(fb)
    red = np.all(sync == [255, 0, 0, 255], axis=-1)
    expected = np.zeros((H, W), bool)
    expected[0:4, 0:8] = True  # image row 0 = top, column 0 = left
    np.testing.assert_array_equal(red, expected)
    ring.start(1, fb)
    np.testing.assert_array_equal(ring.finish()[1], sync)


def test_sub_rectangle_in_gl_coordinates(fb):
    _clear(fb, (0.0, 0.0, 0.0, 1.0))
    _clear(fb, (0.0, 1.0, 0.0, 1.0), gl_rect=(10, 20, 5, 3))
    part = read_pixels(fb, gl_rect=(8, 18, 10, 6))  # covers GL rows 18..23 -> image rows of `part` 5..0
    green = np.all(part == [0, 255, 0, 255], axis=-1)
    expected = np.zeros((6, 10), bool)
    # GL rows 20..22 of the rect are rows 2..4 from its bottom, i.e. rows 6-1-4 .. 6-1-2 = 1..3 from its top
    expected[1:4, 2:7] = True
    np.testing.assert_array_equal(green, expected)
    with pytest.raises(ResourceError, match="outside"):
        read_pixels(fb, gl_rect=(60, 0, 10, 10))


def test_async_frames_hold_the_content_at_start_and_come_back_in_order(fb, ring):
    colours = {7: (1.0, 0.0, 0.0, 1.0), 8: (0.0, 1.0, 0.0, 1.0), 9: (0.0, 0.0, 1.0, 1.0)}
    assert ring.poll() is None and ring.finish() is None  # nothing pending
    _clear(fb, colours[7])
    ring.start(7, fb)
    _clear(fb, colours[8])  # overwrite before frame 7 is collected: 7 must keep its own pixels
    ring.start(8, fb)
    with pytest.raises(ReadbackBusy, match="2 slots"):
        ring.start(99, fb)
    assert ring.pending == 2
    fid, img = ring.finish()
    assert fid == 7 and np.all(img == [255, 0, 0, 255])
    _clear(fb, colours[9])
    ring.start(9, fb)
    _GL().glFinish()
    done = ring.drain()  # both finished by now (glFinish), oldest first
    assert [f for f, _ in done] == [8, 9]
    assert np.all(done[0][1] == [0, 255, 0, 255]) and np.all(done[1][1] == [0, 0, 255, 255])
    assert ring.pending == 0


def test_async_poll_eventually_returns_without_blocking(fb, ring):
    _clear(fb, (0.2, 0.4, 0.6, 1.0))
    ring.start("p", fb)
    _GL().glFinish()
    out = np.zeros((H, W, 4), np.uint8)
    got = ring.poll(out=out)
    assert got is not None and got[0] == "p" and got[1] is out
    np.testing.assert_array_equal(out, read_pixels(fb))


def test_ring_checks_size(fb, resources):
    ring = AsyncReadback(resources, W // 2, H, label="readback.small")
    try:
        with pytest.raises(ResourceError, match="32x36"):
            ring.start(0, fb)
        ring.start(0, fb, gl_rect=(0, 0, W // 2, H))
        assert ring.finish()[1].shape == (H, W // 2, 4)
    finally:
        ring.release()


def test_float_target_reads_back_linear_values_and_clamps_in_uint8(resources):
    fb = resources.framebuffer("readback.hdr", 8, 4, "rgba16f")
    try:
        _clear(fb, (0.25, 2.5, 0.0, 1.0))  # 2.5: over-range, representable in half float
        f = read_pixels(fb, dtype=np.float32)
        assert f.dtype == np.float32
        np.testing.assert_array_equal(f[..., 0], 0.25)
        np.testing.assert_array_equal(f[..., 1], 2.5)
        u8 = read_pixels(fb)
        assert np.all(u8 == [64, 255, 0, 255])  # 0.25 * 255 = 63.75 -> 64; 2.5 clamps
        ring = AsyncReadback(resources, 8, 4, dtype=np.float32, label="readback.hdr.ring")
        try:
            ring.start(0, fb)
            np.testing.assert_array_equal(ring.finish()[1], f)
        finally:
            ring.release()
    finally:
        fb.release()


def test_texture_upload_flips_to_gl_rows_and_readback_flips_back(resources):
    GL = _GL()
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8)  # row 0 = top
    tex = resources.texture2d("readback.upload", 5, 6, data=image)
    fb = resources.framebuffer("readback.upload.fb", 5, 6, attachments=(tex,), depth=False)
    try:
        np.testing.assert_array_equal(read_pixels(fb), image)
        # and GL itself holds the image bottom row first (glReadPixels without the readback's flip)
        fb.bind()
        raw = GL.glReadPixels(0, 0, 5, 6, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        gl_rows = np.frombuffer(raw, np.uint8).reshape(6, 5, 4)
        np.testing.assert_array_equal(gl_rows[0], image[-1])
    finally:
        fb.release()  # does not own the texture
        assert not tex.released
        tex.release()
