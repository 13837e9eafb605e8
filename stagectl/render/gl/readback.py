"""Reading framebuffer colour back into numpy images, synchronously or through pixel buffer objects.

This module is one of the two places where GL's row order (row 0 = bottom) is converted to stagectl's
(row 0 = top; docs/conventions.md): every array returned here is ``(H, W, 4)`` with **row 0 = top** (the
packed ``rgb10_a2`` words of :func:`read_rgb10_a2_words`: ``(H, W)`` uint32, row 0 = top).
Regions are given in GL window coordinates, ``gl_rect = (x, y, w, h)`` with ``(x, y)`` the bottom-left pixel,
the same coordinates as ``glViewport``.

* :func:`read_pixels` blocks until the GPU has finished drawing the framebuffer, then copies it.
* :class:`AsyncReadback` keeps a ring of ``depth`` pixel buffer objects: :meth:`~AsyncReadback.start` queues a
  ``glReadPixels`` into the next free PBO plus a fence and returns at once; :meth:`~AsyncReadback.poll` hands
  back the oldest finished frame (or None), :meth:`~AsyncReadback.finish` waits for it. Frames come back in
  the order they were started, each tagged with the ``frame_id`` given to ``start``.

Both run on the render thread with the owning context current.
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from stagectl.render.gl.errors import ReadbackBusy, RenderError, ResourceError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import Buffer, Framebuffer, ResourceRegistry, check_gl, gl_pass

__all__ = [
    "PIXEL_TYPES",
    "AsyncReadback",
    "canvas_dtype",
    "pack_rgb10_a2",
    "read_canvas",
    "read_pixels",
    "read_rgb10_a2",
    "read_rgb10_a2_words",
    "unpack_rgb10_a2",
]

# numpy dtype -> GL pixel type name
PIXEL_TYPES = {
    np.dtype(np.uint8): "GL_UNSIGNED_BYTE",
    np.dtype(np.uint16): "GL_UNSIGNED_SHORT",  # full depth of an rgba16 canvas
    np.dtype(np.float32): "GL_FLOAT",
}

_GL_ALREADY_SIGNALED = 0x911A
_GL_TIMEOUT_EXPIRED = 0x911B
_GL_CONDITION_SATISFIED = 0x911C
_GL_WAIT_FAILED = 0x911D


def _gl_type(dtype: np.dtype) -> int:
    name = PIXEL_TYPES.get(np.dtype(dtype))
    if name is None:
        raise ResourceError(
            f"readback dtype {np.dtype(dtype)} not supported; expected uint8, uint16 or float32"
        )
    return getattr(GL, name)


def _resolve_rect(fb: Framebuffer, gl_rect: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    if gl_rect is None:
        return 0, 0, fb.width, fb.height
    x, y, w, h = (int(v) for v in gl_rect)
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > fb.width or y + h > fb.height:
        raise ResourceError(
            f"readback rect {gl_rect} outside framebuffer {fb.label!r} ({fb.width}x{fb.height})"
        )
    return x, y, w, h


def _bind_for_read(fb: Framebuffer, attachment: int) -> None:
    fb._require_live()
    if not 0 <= attachment < len(fb.colors):
        raise ResourceError(f"framebuffer {fb.label!r} has no colour attachment {attachment}")
    GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, fb.glo)
    GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0 + attachment)
    GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
    GL.glPixelStorei(GL.GL_PACK_ROW_LENGTH, 0)


def _check_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ResourceError(
            f"readback out array must be C-contiguous {shape} {dtype}, got {out.shape} {out.dtype}"
        )
    return out


def read_pixels(
    fb: Framebuffer,
    *,
    gl_rect: tuple[int, int, int, int] | None = None,
    attachment: int = 0,
    dtype: Any = np.uint8,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Copy colour ``attachment`` of ``fb`` into an ``(h, w, 4)`` array, **row 0 = top** (flipped here).

    ``dtype`` uint8 (RGBA8 values, floats clamped and quantised by GL), uint16 (16-bit codes: the full depth
    of an ``rgba16`` attachment; :func:`read_rgb10_a2` for ``rgb10_a2``) or float32. ``gl_rect`` in GL window
    coordinates (bottom-left origin), default the whole framebuffer. ``out`` is filled and returned when
    given. Blocks until rendering into ``fb`` has finished.
    """
    dtype = np.dtype(dtype)
    gl_type = _gl_type(dtype)
    x, y, w, h = _resolve_rect(fb, gl_rect)
    result = _check_out(out, (h, w, 4), dtype)
    scratch = np.empty((h, w, 4), dtype=dtype)  # GL order, row 0 = bottom
    with gl_pass("readback", fb.label):
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
        _bind_for_read(fb, attachment)
        GL.glReadPixels(x, y, w, h, GL.GL_RGBA, gl_type, scratch.ctypes.data)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
    np.copyto(result, scratch[::-1])  # GL row 0 = bottom -> image row 0 = top
    return result


def unpack_rgb10_a2(words, out: np.ndarray | None = None) -> np.ndarray:
    """``GL_UNSIGNED_INT_2_10_10_10_REV`` words (uint32, any shape) -> codes (..., 4) uint16: red in bits
    0-9, green 10-19, blue 20-29, alpha 30-31; into ``out`` when given. One masked pass per channel written
    straight into the uint16 result (no full-size temporaries but one): about 6 ms for a 1920 x 1080 canvas on
    one core, so a deep canvas is unpacked only where codes are wanted (previews, snapshots, thumbnails);
    consumers of the packed words (the sink) take :func:`read_canvas` ``(..., packed=True)``."""
    w = np.asarray(words, dtype=np.uint32)
    out = _check_out(out, w.shape + (4,), np.dtype(np.uint16))
    tmp = np.empty(w.shape, dtype=np.uint32)
    np.bitwise_and(w, 0x3FF, out=out[..., 0], casting="unsafe")
    np.right_shift(w, 10, out=tmp)
    np.bitwise_and(tmp, 0x3FF, out=out[..., 1], casting="unsafe")
    np.right_shift(w, 20, out=tmp)
    np.bitwise_and(tmp, 0x3FF, out=out[..., 2], casting="unsafe")
    np.right_shift(w, 30, out=out[..., 3], casting="unsafe")
    return out


def pack_rgb10_a2(codes) -> np.ndarray:
    """Codes (..., 4) (RGB 0..1023, alpha 0..3) -> ``GL_UNSIGNED_INT_2_10_10_10_REV`` words (...) uint32 (the
    inverse of :func:`unpack_rgb10_a2`; bits above a channel's width are dropped)."""
    c = np.asarray(codes)
    out = np.empty(c.shape[:-1], dtype=np.uint32)
    tmp = np.empty(c.shape[:-1], dtype=np.uint32)
    np.bitwise_and(c[..., 0], 0x3FF, out=out, casting="unsafe")
    for channel, mask, shift in ((1, 0x3FF, 10), (2, 0x3FF, 20), (3, 3, 30)):
        np.bitwise_and(c[..., channel], mask, out=tmp, casting="unsafe")
        np.left_shift(tmp, shift, out=tmp)
        np.bitwise_or(out, tmp, out=out)
    return out


def canvas_dtype(fmt: str) -> np.dtype:
    """The numpy dtype of a canvas of ``fmt`` as :func:`read_canvas` returns it: uint8 for ``rgba8``, uint16
    codes for ``rgb10_a2`` (0..1023, alpha 0..3) and ``rgba16`` (0..65535)."""
    if fmt == "rgba8":
        return np.dtype(np.uint8)
    if fmt in ("rgb10_a2", "rgba16"):
        return np.dtype(np.uint16)
    raise ResourceError(f"canvas format {fmt!r}: expected rgba8, rgb10_a2 or rgba16")


def read_canvas(fb: Framebuffer, fmt: str, *, out: np.ndarray | None = None, packed: bool = False) -> np.ndarray:
    """A canvas at its full depth, ``(h, w, 4)`` row 0 = top: :func:`read_pixels` (uint8, or uint16 for
    ``rgba16``) or :func:`read_rgb10_a2` (uint16 codes) by the canvas format ``fmt``; into ``out`` when
    given. ``packed``: an ``rgb10_a2`` canvas comes back as its ``(h, w)`` uint32 words as GL packs them
    (:func:`read_rgb10_a2_words`, the sink's pixel format 2), without the unpacking; other formats as
    without it."""
    if fmt == "rgb10_a2":
        if packed:
            return read_rgb10_a2_words(fb, out=out)
        return unpack_rgb10_a2(read_rgb10_a2_words(fb), out=out)
    return read_pixels(fb, dtype=canvas_dtype(fmt), out=out)


def read_rgb10_a2_words(
    fb: Framebuffer, *, gl_rect: tuple[int, int, int, int] | None = None, attachment: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The ``rgb10_a2`` colour ``attachment`` as ``(h, w)`` uint32 ``GL_UNSIGNED_INT_2_10_10_10_REV`` words
    (:func:`unpack_rgb10_a2` gives the codes), **row 0 = top** (flipped here); into ``out`` when given.
    Blocks like :func:`read_pixels`."""
    x, y, w, h = _resolve_rect(fb, gl_rect)
    result = _check_out(out, (h, w), np.dtype(np.uint32))
    words = np.empty((h, w), dtype=np.uint32)  # GL order, row 0 = bottom
    with gl_pass("readback", fb.label):
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
        _bind_for_read(fb, attachment)
        GL.glReadPixels(x, y, w, h, GL.GL_RGBA, GL.GL_UNSIGNED_INT_2_10_10_10_REV, words.ctypes.data)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
    np.copyto(result, words[::-1])  # GL row 0 = bottom -> image row 0 = top
    return result


def read_rgb10_a2(
    fb: Framebuffer, *, gl_rect: tuple[int, int, int, int] | None = None, attachment: int = 0
) -> np.ndarray:
    """The 10-bit codes of an ``rgb10_a2`` colour ``attachment`` as ``(h, w, 4)`` uint16 (RGB 0..1023, alpha
    0..3), **row 0 = top** (flipped here): one ``glReadPixels`` with ``GL_UNSIGNED_INT_2_10_10_10_REV``, no
    8-bit step in between, then :func:`unpack_rgb10_a2`. Blocks like :func:`read_pixels`."""
    return unpack_rgb10_a2(read_rgb10_a2_words(fb, gl_rect=gl_rect, attachment=attachment))


@dataclass
class _Slot:
    buffer: Buffer
    frame_id: Any = None
    fence: Any = None
    shape: tuple[int, int, int] = (0, 0, 4)


class AsyncReadback:
    """Asynchronous readback of one framebuffer size through a ring of ``depth`` pixel buffer objects.

    Typical frame loop (render thread)::

        rb = AsyncReadback(ctx.resources, 1920, 1080, depth=3, label="canvas0.readback")
        ...
        rb.start(frame_id, fbo)          # after drawing frame `frame_id` into fbo; returns at once
        for fid, image in rb.drain():    # every frame whose copy has finished, oldest first
            send(fid, image)
        ...
        rb.release()

    ``start`` raises :class:`ReadbackBusy` when all ``depth`` slots are still waiting to be collected; call
    ``finish()`` (blocking) or ``poll()`` first. Arrays are ``(H, W, 4)`` ``uint8`` (or uint16, float32), row
    0 = top, freshly allocated unless ``out`` is given. ``fmt="rgb10_a2"``: the PBOs hold the packed
    ``GL_UNSIGNED_INT_2_10_10_10_REV`` words (4 bytes a pixel) and arrays are ``(H, W, 4)`` uint16 codes, or
    with ``packed=True`` the ``(H, W)`` uint32 words themselves (no unpacking: what the sink stores).
    """

    def __init__(
        self,
        registry: ResourceRegistry,
        width: int,
        height: int,
        *,
        depth: int = 3,
        dtype: Any = np.uint8,
        label: str = "readback",
        fmt: str | None = None,
        packed: bool = False,
    ) -> None:
        if depth < 1:
            raise ResourceError(f"readback ring {label!r}: depth must be >= 1, got {depth}")
        self.registry = registry
        self.width = int(width)
        self.height = int(height)
        self.packed = fmt == "rgb10_a2"  # the PBOs hold GL_UNSIGNED_INT_2_10_10_10_REV words
        self.words = self.packed and packed  # ... handed back as they are (else unpacked to codes)
        if fmt is not None and not self.packed:
            dtype = canvas_dtype(fmt)
        self.dtype = np.dtype(np.uint32 if self.words else np.uint16) if self.packed else np.dtype(dtype)
        self._gl_type = GL.GL_UNSIGNED_INT_2_10_10_10_REV if self.packed else _gl_type(self.dtype)
        self.label = label
        self.frame_bytes = self.width * self.height * (4 if self.packed else 4 * self.dtype.itemsize)
        self._free: deque[_Slot] = deque()
        self._busy: deque[_Slot] = deque()  # started, oldest first
        for i in range(depth):
            buf = registry.buffer(
                f"{label}.pbo{i}", GL.GL_PIXEL_PACK_BUFFER, size=self.frame_bytes, usage=GL.GL_STREAM_READ
            )
            self._free.append(_Slot(buf))
        self.depth = depth
        self.released = False

    @property
    def pending(self) -> int:
        """Frames started and not yet handed back."""
        return len(self._busy)

    def start(
        self,
        frame_id: Any,
        fb: Framebuffer,
        *,
        gl_rect: tuple[int, int, int, int] | None = None,
        attachment: int = 0,
    ) -> None:
        """Queue the copy of ``fb``'s colour ``attachment`` (``gl_rect``, GL coordinates; the ring's size)
        into the next PBO and fence it. Does not wait for the GPU."""
        self._require_live()
        if not self._free:
            raise ReadbackBusy(
                f"readback ring {self.label!r}: all {self.depth} slots in flight (frames "
                f"{[s.frame_id for s in self._busy]}); collect with poll()/finish() "
                f"before start({frame_id!r})"
            )
        x, y, w, h = _resolve_rect(fb, gl_rect)
        if (w, h) != (self.width, self.height):
            raise ResourceError(
                f"readback ring {self.label!r} is {self.width}x{self.height}, "
                f"asked to read {w}x{h} from {fb.label!r}"
            )
        slot = self._free[0]
        with gl_pass("readback", slot.buffer.label):
            _bind_for_read(fb, attachment)
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, slot.buffer.glo)
            GL.glReadPixels(x, y, w, h, GL.GL_RGBA, self._gl_type, 0)  # 0: offset into the bound PBO
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
            fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
            GL.glFlush()  # submit the fence, so that a later non-blocking poll can see it signal
        self._free.popleft()
        slot.frame_id, slot.fence, slot.shape = frame_id, fence, (h, w, 4)
        self._busy.append(slot)

    def _wait(self, slot: _Slot, timeout_ns: int) -> bool:
        status = int(GL.glClientWaitSync(slot.fence, GL.GL_SYNC_FLUSH_COMMANDS_BIT, int(timeout_ns)))
        if status == _GL_WAIT_FAILED:
            check_gl("readback", slot.buffer.label)
            raise RenderError("readback", slot.buffer.label, "GL_WAIT_FAILED")
        return status in (_GL_ALREADY_SIGNALED, _GL_CONDITION_SATISFIED)

    def _collect(self, slot: _Slot, out: np.ndarray | None) -> tuple[Any, np.ndarray]:
        result = _check_out(out, slot.shape[:2] if self.words else slot.shape, self.dtype)
        with gl_pass("readback", slot.buffer.label):
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, slot.buffer.glo)
            ptr = GL.glMapBufferRange(GL.GL_PIXEL_PACK_BUFFER, 0, self.frame_bytes, GL.GL_MAP_READ_BIT)
            address = ctypes.cast(ptr, ctypes.c_void_p).value if ptr is not None else None
            try:
                if not address:
                    raise RenderError("readback", slot.buffer.label, "glMapBufferRange returned NULL")
                raw = (ctypes.c_ubyte * self.frame_bytes).from_address(address)
                if self.words:
                    words = np.frombuffer(raw, dtype=np.uint32).reshape(slot.shape[:2])
                    np.copyto(result, words[::-1])  # GL row 0 = bottom -> image row 0 = top
                elif self.packed:
                    words = np.frombuffer(raw, dtype=np.uint32).reshape(slot.shape[:2])
                    unpack_rgb10_a2(words[::-1], out=result)
                else:
                    mapped = np.frombuffer(raw, dtype=self.dtype).reshape(slot.shape)
                    np.copyto(result, mapped[::-1])  # GL row 0 = bottom -> image row 0 = top
            finally:
                if address:
                    GL.glUnmapBuffer(GL.GL_PIXEL_PACK_BUFFER)
                GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
        GL.glDeleteSync(slot.fence)
        frame_id = slot.frame_id
        slot.frame_id, slot.fence = None, None
        self._busy.popleft()
        self._free.append(slot)
        return frame_id, result

    def poll(self, out: np.ndarray | None = None) -> tuple[Any, np.ndarray] | None:
        """The oldest started frame as ``(frame_id, array)`` if its copy has finished, else None; never
        waits."""
        self._require_live()
        if not self._busy:
            return None
        slot = self._busy[0]
        if not self._wait(slot, 0):
            return None
        return self._collect(slot, out)

    def finish(
        self, out: np.ndarray | None = None, *, timeout_ns: int = 1_000_000_000
    ) -> tuple[Any, np.ndarray] | None:
        """The oldest started frame as ``(frame_id, array)``, waiting up to ``timeout_ns`` for it; None when
        nothing is pending. Raises :class:`RenderError` (``GL_TIMEOUT_EXPIRED``) if the wait runs out."""
        self._require_live()
        if not self._busy:
            return None
        slot = self._busy[0]
        if not self._wait(slot, timeout_ns):
            raise RenderError(
                "readback", slot.buffer.label, "GL_TIMEOUT_EXPIRED", detail=f"frame {slot.frame_id!r}"
            )
        return self._collect(slot, out)

    def drain(self) -> list[tuple[Any, np.ndarray]]:
        """Every frame whose copy has already finished, oldest first, without waiting."""
        done = []
        while (item := self.poll()) is not None:
            done.append(item)
        return done

    def release(self) -> None:
        """Drop pending frames and free the PBOs and fences (render thread); idempotent."""
        if self.released:
            return
        for slot in list(self._busy):
            GL.glDeleteSync(slot.fence)
            slot.fence = None
        for slot in (*self._busy, *self._free):
            slot.buffer.release()
        self._busy.clear()
        self._free.clear()
        self.released = True

    def _require_live(self) -> None:
        if self.released:
            raise ResourceError(f"readback ring {self.label!r} used after release")
