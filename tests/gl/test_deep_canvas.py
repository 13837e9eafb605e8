"""Deep canvas formats on llvmpipe: rgb10_a2 and rgba16 framebuffers render and read back at full depth.

Every code of the format is drawn (as the exact float ``k / (2^n - 1)``) through a real render pass (the OCIO
pass with an identity processor: ``texelFetch`` in, the same float out) into a framebuffer of the format, and
read back with ``glReadPixels`` as ``GL_UNSIGNED_INT_2_10_10_10_REV`` / ``GL_UNSIGNED_SHORT``; the codes must
come back exactly, rows top first. The packing reference is the GL spec's bit layout (red in the low bits).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyOpenColorIO")

from stagectl.color import transfer as tf  # noqa: E402
from stagectl.color.ocio import load_config  # noqa: E402
from stagectl.render.gl.readback import AsyncReadback, read_pixels, read_rgb10_a2, unpack_rgb10_a2  # noqa: E402
from stagectl.render.ocio_pass import OcioPass  # noqa: E402

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture
def identity(resources, config):
    op = OcioPass(resources, config.processor().gpu_shader(), label="test.deep.identity")
    yield op
    op.release()


def _draw(resources, op, rgba: np.ndarray, fmt: str):
    h, w = rgba.shape[:2]
    src = resources.texture2d("test.deep.src", w, h, "rgba32f", data=rgba, filter="nearest")
    fb = resources.framebuffer("test.deep.fb", w, h, fmt, depth=False, filter="nearest")
    op.draw(src, fb)
    src.release()
    return fb


def _codes10(resources, op, rgba: np.ndarray) -> np.ndarray:
    """``rgba`` drawn through ``op`` (released after) into an ``rgb10_a2`` framebuffer, read back as its
    ``(H, W, 3)`` 10-bit codes (int64)."""
    try:
        fb = _draw(resources, op, rgba, "rgb10_a2")
        try:
            return read_rgb10_a2(fb)[..., :3].astype(np.int64)
        finally:
            fb.release()
    finally:
        op.release()


def test_unpack_rgb10_a2_follows_the_gl_bit_layout():
    rng = np.random.default_rng(0)
    codes = np.stack(
        [
            rng.integers(0, 1024, 100),
            rng.integers(0, 1024, 100),
            rng.integers(0, 1024, 100),
            rng.integers(0, 4, 100),
        ],
        axis=-1,
    ).astype(np.uint32)
    words = codes[:, 0] | (codes[:, 1] << 10) | (codes[:, 2] << 20) | (codes[:, 3] << 30)
    np.testing.assert_array_equal(unpack_rgb10_a2(words), codes)


def test_rgb10_a2_every_code_round_trips(resources, identity):
    k = np.arange(1024).reshape(32, 32)
    codes = np.stack([k, 1023 - k, (k * 7) % 1024, k % 4], axis=-1)
    rgba = (codes / np.array([1023.0, 1023.0, 1023.0, 3.0])).astype(np.float32)
    fb = _draw(resources, identity, rgba, "rgb10_a2")
    try:
        got = read_rgb10_a2(fb)
        assert got.shape == (32, 32, 4) and got.dtype == np.uint16
        np.testing.assert_array_equal(got, codes)
    finally:
        fb.release()


def test_rgb10_a2_between_codes_gl_gives_a_neighbour_the_shader_rounds(resources, config):
    k = np.arange(1024).reshape(32, 32)
    rng = np.random.default_rng(2)
    frac = np.stack(
        [
            rng.uniform(0.02, 0.45, (32, 32)),  # red: below half a code
            rng.uniform(0.55, 0.98, (32, 32)),  # green: above half a code
            rng.uniform(0.02, 0.98, (32, 32)),
        ],
        axis=-1,
    )  # blue: anywhere but at one half
    frac[..., 2] = np.where(np.abs(frac[..., 2] - 0.5) < 0.02, 0.3, frac[..., 2])
    kk = np.minimum(k[..., None], 1022)
    rgba = np.ones((32, 32, 4), np.float32)
    rgba[..., :3] = (kk + frac) / 1023.0
    nearest = kk + (frac >= 0.5)
    shader = config.processor().gpu_shader()
    for code_bits in (None, 10):
        got = _codes10(resources, OcioPass(resources, shader, label="test.deep.round", code_bits=code_bits), rgba)
        if code_bits is None:  # GL: "one of the two closest codes (nearest preferred)"
            assert np.all((got == kk) | (got == kk + 1))
        else:  # rounded in the shader: exactly the nearest code, i.e. transfer.quantize
            np.testing.assert_array_equal(got, nearest)
            np.testing.assert_array_equal(got, tf.quantize(rgba[..., :3], 10))


def test_rgba16_every_code_round_trips_sync_and_async(resources, identity):
    k = np.arange(65536).reshape(256, 256)
    codes = np.stack([k, 65535 - k, (k * 31) % 65536, (k * 7919) % 65536], axis=-1).astype(np.uint16)
    fb = _draw(resources, identity, (codes / 65535.0).astype(np.float32), "rgba16")
    ring = AsyncReadback(resources, 256, 256, depth=1, dtype=np.uint16, label="test.deep.ring")
    try:
        got = read_pixels(fb, dtype=np.uint16)
        np.testing.assert_array_equal(got, codes)
        ring.start(7, fb)
        fid, img = ring.finish()
        assert fid == 7
        np.testing.assert_array_equal(img, codes)
    finally:
        ring.release()
        fb.release()


def test_rgba16_uint16_upload_is_exact(resources):
    codes = np.random.default_rng(1).integers(0, 65536, (16, 24, 4)).astype(np.uint16)
    tex = resources.texture2d("test.deep.codes", 24, 16, "rgba16", data=codes, filter="nearest")
    fb = resources.framebuffer("test.deep.codes.fb", 24, 16, None, depth=False, attachments=(tex,))
    try:
        np.testing.assert_array_equal(read_pixels(fb, dtype=np.uint16), codes)
    finally:
        fb.release()
        tex.release()


def test_pq_display_into_a_10_bit_canvas_matches_cpu_codes(resources, config):
    """The next step's canvas path: scene-linear -> OCIO Rec.2100-PQ view -> rgb10_a2 -> 10-bit codes."""
    p = config.processor(display="Rec.2100-PQ - Display", view="ACES 2.0 - HDR 1000 nits (P3 D65)")
    rng = np.random.default_rng(4)
    img = np.ones((32, 48, 4), np.float32)
    img[..., :3] = rng.random((32, 48, 3)) ** 2 * 12.0
    gpu = _codes10(resources, OcioPass(resources, p.gpu_shader(), label="test.deep.pq", code_bits=10), img)
    cpu = tf.quantize(p.apply(img[..., :3]), 10).astype(np.int64)
    assert np.max(np.abs(gpu - cpu)) <= 1
    assert gpu.max() > 600  # bright parts really use the HDR range (PQ 1000 nits is code 769)
