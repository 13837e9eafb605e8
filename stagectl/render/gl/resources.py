"""A registry of labelled GL objects with explicit, render-thread lifetimes, and GL error checking.

Every texture, renderbuffer, framebuffer, buffer, vertex array and shader program of the renderer is created
through a :class:`ResourceRegistry` (one per GL context, ``GLContext.resources``). Each object:

* carries a debug label, set with ``glObjectLabel`` when the context has KHR_debug / GL 4.3 (so RenderDoc and
  Nsight show ``scene.mesh.vbo`` rather than ``Buffer 17``); without it, labels live only on the Python side;
* is freed explicitly with ``obj.release()`` or ``registry.release_all()``, on a thread where its context is
  current. Nothing is freed from ``__del__``: another thread that wants an object gone calls
  ``registry.schedule_release(obj)`` and the render thread frees it in ``registry.collect()`` (once per frame,
  after the swap).

GL errors are read at pass boundaries: :func:`check_gl` drains ``glGetError`` and raises
:class:`~stagectl.render.gl.errors.RenderError` naming the pass, the object and the error; :func:`gl_pass`
wraps a block of GL calls the same way and also translates PyOpenGL's own ``GLError`` (raised when PyOpenGL's
per-call error checking is on).

Row order: :meth:`Texture2D.upload` takes an image with row 0 = top (the stagectl convention) and flips it to
GL's row 0 = bottom; this and :mod:`stagectl.render.gl.readback` are the only two places that convert.
Matrices: :meth:`Program.set_mat4` takes a row-major numpy 4x4 acting on column vectors and uploads it with
``transpose=GL_TRUE``.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources as _importlib_resources
from typing import ClassVar, TypeVar

import numpy as np

from stagectl.render.gl.errors import RenderError, ResourceError, ShaderError
from stagectl.render.gl.platform import GL

__all__ = [
    "GL_ERROR_NAMES",
    "gl_error_name",
    "drain_gl_errors",
    "check_gl",
    "gl_pass",
    "shader_source",
    "TextureFormat",
    "TEXTURE_FORMATS",
    "GLObject",
    "Texture2D",
    "Renderbuffer",
    "Framebuffer",
    "Buffer",
    "VertexArray",
    "Program",
    "ResourceRegistry",
    "OwnedObjects",
]

GL_ERROR_NAMES = {
    0x0500: "GL_INVALID_ENUM",
    0x0501: "GL_INVALID_VALUE",
    0x0502: "GL_INVALID_OPERATION",
    0x0503: "GL_STACK_OVERFLOW",
    0x0504: "GL_STACK_UNDERFLOW",
    0x0505: "GL_OUT_OF_MEMORY",
    0x0506: "GL_INVALID_FRAMEBUFFER_OPERATION",
    0x0507: "GL_CONTEXT_LOST",
}

_FRAMEBUFFER_STATUS_NAMES = {
    0x8CD5: "GL_FRAMEBUFFER_COMPLETE",
    0x8219: "GL_FRAMEBUFFER_UNDEFINED",
    0x8CD6: "GL_FRAMEBUFFER_INCOMPLETE_ATTACHMENT",
    0x8CD7: "GL_FRAMEBUFFER_INCOMPLETE_MISSING_ATTACHMENT",
    0x8CDB: "GL_FRAMEBUFFER_INCOMPLETE_DRAW_BUFFER",
    0x8CDC: "GL_FRAMEBUFFER_INCOMPLETE_READ_BUFFER",
    0x8CDD: "GL_FRAMEBUFFER_UNSUPPORTED",
    0x8D56: "GL_FRAMEBUFFER_INCOMPLETE_MULTISAMPLE",
    0x8DA8: "GL_FRAMEBUFFER_INCOMPLETE_LAYER_TARGETS",
}

_MAX_DRAINED_ERRORS = 32  # a lost context can report errors forever; stop draining after this many


def gl_error_name(code: int) -> str:
    """``GL_INVALID_ENUM`` etc. for a ``glGetError`` code (hex for unknown codes)."""
    return GL_ERROR_NAMES.get(int(code), f"GL error 0x{int(code):04X}")


def drain_gl_errors() -> list[str]:
    """Read ``glGetError`` until it returns ``GL_NO_ERROR``; the error names, oldest first."""
    names: list[str] = []
    for _ in range(_MAX_DRAINED_ERRORS):
        code = GL.glGetError()
        if code == GL.GL_NO_ERROR:
            break
        names.append(gl_error_name(code))
    return names


def check_gl(pass_name: str, obj_label: str = "") -> None:
    """Raise :class:`RenderError` (pass, object, first error name) if GL recorded an error; drains it."""
    names = drain_gl_errors()
    if names:
        raise RenderError(pass_name, obj_label, names[0], errors=tuple(names))


@contextlib.contextmanager
def gl_pass(pass_name: str, obj_label: str = "") -> Iterator[None]:
    """Run a block of GL calls as one checked unit: errors become :class:`RenderError` (pass, object, name).

    Translates PyOpenGL's ``GLError`` (per-call checking on) and checks ``glGetError`` on exit (checking off).
    """
    from OpenGL.error import GLError as _PyGLError

    try:
        yield
    except _PyGLError as exc:
        names = [gl_error_name(exc.err)] if exc.err else ["PyOpenGL GLError"]
        names += drain_gl_errors()
        detail = str(exc.description or "")
        raise RenderError(pass_name, obj_label, names[0], errors=tuple(names), detail=detail) from exc
    check_gl(pass_name, obj_label)


def reset_draw_state() -> None:
    """Leave GL in the renderer's baseline after a pass: nothing bound (vertex array, texture unit 0, program,
    framebuffer), blending, culling, depth test and scissor off, depth writes on with LESS, front face CCW.
    Every drawer ends with this so the next pass can assume the baseline."""
    GL.glBindVertexArray(0)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    GL.glUseProgram(0)
    GL.glDisable(GL.GL_BLEND)
    GL.glDisable(GL.GL_CULL_FACE)
    GL.glFrontFace(GL.GL_CCW)
    GL.glDisable(GL.GL_DEPTH_TEST)
    GL.glDepthMask(GL.GL_TRUE)
    GL.glDepthFunc(GL.GL_LESS)
    GL.glDisable(GL.GL_SCISSOR_TEST)
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)


def shader_source(filename: str) -> str:
    """The text of a packaged shader, ``stagectl/render/shaders/<filename>``."""
    return (_importlib_resources.files("stagectl.render") / "shaders" / filename).read_text(encoding="utf-8")


@dataclass(frozen=True)
class TextureFormat:
    """A GL texture/renderbuffer format: sized internal format, pixel transfer format and type."""

    name: str
    internal: int
    format: int
    type: int
    numpy_dtype: type | None
    is_depth: bool = False


def _formats() -> dict[str, TextureFormat]:
    return {
        "rgba8": TextureFormat("rgba8", GL.GL_RGBA8, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, np.uint8),
        "rgba16f": TextureFormat("rgba16f", GL.GL_RGBA16F, GL.GL_RGBA, GL.GL_HALF_FLOAT, np.float16),
        "rgba32f": TextureFormat("rgba32f", GL.GL_RGBA32F, GL.GL_RGBA, GL.GL_FLOAT, np.float32),
        # deep canvases (docs/colour.md): 10-bit RGB + 2-bit alpha packed in 32 bits, and 16-bit unorm
        "rgb10_a2": TextureFormat(
            "rgb10_a2", GL.GL_RGB10_A2, GL.GL_RGBA, GL.GL_UNSIGNED_INT_2_10_10_10_REV, np.uint32
        ),
        "rgba16": TextureFormat("rgba16", GL.GL_RGBA16, GL.GL_RGBA, GL.GL_UNSIGNED_SHORT, np.uint16),
        "depth24": TextureFormat(
            "depth24", GL.GL_DEPTH_COMPONENT24, GL.GL_DEPTH_COMPONENT, GL.GL_UNSIGNED_INT, None, True
        ),
        "depth32f": TextureFormat(
            "depth32f", GL.GL_DEPTH_COMPONENT32F, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT, None, True
        ),
    }


TEXTURE_FORMATS = ("rgba8", "rgba16f", "rgba32f", "rgb10_a2", "rgba16", "depth24", "depth32f")


class GLObject:
    """Base of every registered GL object: raw GL name ``glo``, debug ``label``, explicit ``release()``."""

    kind: ClassVar[str] = "object"

    def __init__(self, registry: ResourceRegistry, glo: int, label: str) -> None:
        self.registry = registry
        self.glo = int(glo)
        self.label = label
        self.released = False

    def release(self) -> None:
        """Free the GL object now; its context must be current on this thread. Idempotent."""
        self.registry.release(self)

    def _require_live(self) -> None:
        if self.released:
            raise ResourceError(f"{self.kind} {self.label!r} used after release")

    def _delete(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _children(self) -> tuple[GLObject, ...]:
        return ()

    def __repr__(self) -> str:
        state = "released" if self.released else f"glo={self.glo}"
        return f"<{type(self).__name__} {self.label!r} {state}>"


class Texture2D(GLObject):
    """A 2D texture, ``width x height`` texels of ``fmt`` (see :data:`TEXTURE_FORMATS`), one mip level."""

    kind = "texture"

    def __init__(self, registry, glo, label, width: int, height: int, fmt: TextureFormat) -> None:
        super().__init__(registry, glo, label)
        self.width = width
        self.height = height
        self.format = fmt

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def bind(self, unit: int = 0) -> None:
        self._require_live()
        GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.glo)

    def upload(self, image: np.ndarray) -> None:
        """Replace the texels with ``image`` (H, W, 4), **row 0 = top**; flipped here to GL's row 0 = bottom.

        ``uint8`` for ``rgba8``; ``float16``/``float32`` for the float formats (linear-light values) and for
        ``rgb10_a2``/``rgba16`` (0..1, GL quantises); ``uint16`` codes for ``rgba16`` and for ``rgb10_a2``
        (RGB 0..1023, alpha 0..3: packed here, exact).
        """
        self._require_live()
        fmt = self.format
        if fmt.is_depth:
            raise ResourceError(f"texture {self.label!r}: upload to a depth texture is not supported")
        image = np.asarray(image)
        if image.shape != (self.height, self.width, 4):
            raise ResourceError(
                f"texture {self.label!r}: image shape {image.shape} != ({self.height}, {self.width}, 4)"
            )
        if fmt.name == "rgba8":
            if image.dtype != np.uint8:
                raise ResourceError(f"texture {self.label!r}: rgba8 upload needs uint8, got {image.dtype}")
            data, gl_type = np.ascontiguousarray(image[::-1]), GL.GL_UNSIGNED_BYTE
        elif fmt.name == "rgba16" and image.dtype == np.uint16:  # 16-bit codes as they are
            data, gl_type = np.ascontiguousarray(image[::-1]), GL.GL_UNSIGNED_SHORT
        elif fmt.name == "rgb10_a2" and image.dtype == np.uint16:  # 10-bit codes, packed as GL stores them
            c = image[::-1].astype(np.uint32)
            data = np.ascontiguousarray((c[..., 0] & 0x3FF) | ((c[..., 1] & 0x3FF) << 10)
                                        | ((c[..., 2] & 0x3FF) << 20) | ((c[..., 3] & 3) << 30))
            gl_type = GL.GL_UNSIGNED_INT_2_10_10_10_REV
        elif image.dtype == np.float16:
            data, gl_type = np.ascontiguousarray(image[::-1]), GL.GL_HALF_FLOAT
        else:
            data, gl_type = np.ascontiguousarray(image[::-1], dtype=np.float32), GL.GL_FLOAT
        with gl_pass("upload", self.label):
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.glo)
            GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, self.width, self.height, GL.GL_RGBA, gl_type, data)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)

    def _delete(self) -> None:
        GL.glDeleteTextures([self.glo])


class Renderbuffer(GLObject):
    """A renderbuffer (used for depth attachments that are never sampled)."""

    kind = "renderbuffer"

    def __init__(self, registry, glo, label, width: int, height: int, fmt: TextureFormat) -> None:
        super().__init__(registry, glo, label)
        self.width = width
        self.height = height
        self.format = fmt

    def _delete(self) -> None:
        GL.glDeleteRenderbuffers(1, [self.glo])


class Framebuffer(GLObject):
    """A framebuffer object with colour texture attachments and an optional depth attachment.

    Framebuffers are container objects: they belong to the context that created them and are not shared
    with other contexts of a share group (their attachments are).
    """

    kind = "framebuffer"

    def __init__(
        self,
        registry,
        glo,
        label,
        width: int,
        height: int,
        colors: tuple[Texture2D, ...],
        depth: Renderbuffer | Texture2D | None,
        owns_attachments: bool,
    ) -> None:
        super().__init__(registry, glo, label)
        self.width = width
        self.height = height
        self.colors = colors
        self.depth = depth
        self.owns_attachments = owns_attachments

    @property
    def color(self) -> Texture2D:
        """The first colour attachment."""
        return self.colors[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def viewport(self) -> tuple[int, int, int, int]:
        """The whole framebuffer as a GL viewport ``(x, y, w, h)``, origin bottom-left."""
        return 0, 0, self.width, self.height

    def bind(self, target: int | None = None) -> None:
        self._require_live()
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER if target is None else target, self.glo)

    def _children(self) -> tuple[GLObject, ...]:
        if not self.owns_attachments:
            return ()
        return (*self.colors, *((self.depth,) if self.depth is not None else ()))

    def _delete(self) -> None:
        GL.glDeleteFramebuffers(1, [self.glo])


class Buffer(GLObject):
    """A buffer object of ``size`` bytes (vertex, index, uniform or pixel-pack data)."""

    kind = "buffer"

    def __init__(self, registry, glo, label, target: int, size: int, usage: int) -> None:
        super().__init__(registry, glo, label)
        self.target = target
        self.size = size
        self.usage = usage

    def bind(self, target: int | None = None) -> None:
        self._require_live()
        GL.glBindBuffer(self.target if target is None else target, self.glo)

    def write(self, data: np.ndarray, offset: int = 0) -> None:
        """Copy a C-contiguous array's bytes into the buffer at ``offset`` (bytes)."""
        self._require_live()
        data = np.ascontiguousarray(data)
        if offset < 0 or offset + data.nbytes > self.size:
            raise ResourceError(
                f"buffer {self.label!r}: write of {data.nbytes} bytes at {offset} "
                f"overruns its {self.size} bytes"
            )
        GL.glBindBuffer(self.target, self.glo)
        GL.glBufferSubData(self.target, offset, data.nbytes, ctypes.c_void_p(data.ctypes.data))
        GL.glBindBuffer(self.target, 0)

    def _delete(self) -> None:
        GL.glDeleteBuffers(1, [self.glo])


class VertexArray(GLObject):
    """A vertex array object: attribute bindings plus an optional index buffer (per context, not shared)."""

    kind = "vertex array"

    def __init__(self, registry, glo, label) -> None:
        super().__init__(registry, glo, label)
        self.index_buffer: Buffer | None = None
        self.index_type: int | None = None

    def bind(self) -> None:
        self._require_live()
        GL.glBindVertexArray(self.glo)

    def attribute(
        self,
        location: int,
        buffer: Buffer,
        components: int,
        *,
        stride: int = 0,
        offset: int = 0,
        gl_type: int | None = None,
        normalized: bool = False,
    ) -> None:
        """Feed attribute ``location`` from ``buffer`` (float32 by default); strides and offsets in bytes."""
        self._require_live()
        GL.glBindVertexArray(self.glo)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, buffer.glo)
        GL.glEnableVertexAttribArray(location)
        GL.glVertexAttribPointer(
            location,
            components,
            GL.GL_FLOAT if gl_type is None else gl_type,
            GL.GL_TRUE if normalized else GL.GL_FALSE,
            stride,
            ctypes.c_void_p(offset),
        )
        GL.glBindVertexArray(0)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)

    def set_index_buffer(self, buffer: Buffer, index_type: int | None = None) -> None:
        """Use ``buffer`` (uint32 indices by default) for ``glDrawElements``."""
        self._require_live()
        GL.glBindVertexArray(self.glo)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, buffer.glo)
        GL.glBindVertexArray(0)
        self.index_buffer = buffer
        self.index_type = GL.GL_UNSIGNED_INT if index_type is None else index_type

    def _delete(self) -> None:
        GL.glDeleteVertexArrays(1, [self.glo])


class Program(GLObject):
    """A linked shader program; uniforms are looked up once and cached."""

    kind = "program"

    def __init__(self, registry, glo, label) -> None:
        super().__init__(registry, glo, label)
        self._locations: dict[str, int] = {}

    def use(self) -> None:
        self._require_live()
        GL.glUseProgram(self.glo)

    def location(self, name: str) -> int:
        """The uniform's location, -1 when the program has no such active uniform (calls are then no-ops)."""
        loc = self._locations.get(name)
        if loc is None:
            loc = int(GL.glGetUniformLocation(self.glo, name))
            self._locations[name] = loc
        return loc

    def has_uniform(self, name: str) -> bool:
        return self.location(name) >= 0

    # setters act on the program in use (call use() first)
    def set_mat4(self, name: str, matrix: np.ndarray) -> None:
        """Row-major numpy 4x4 acting on column vectors, uploaded with ``transpose=GL_TRUE``."""
        m = np.ascontiguousarray(matrix, dtype=np.float32)
        if m.shape != (4, 4):
            raise ResourceError(f"program {self.label!r}: uniform {name!r} needs a 4x4 matrix, got {m.shape}")
        GL.glUniformMatrix4fv(self.location(name), 1, GL.GL_TRUE, m)

    def set_float(self, name: str, value: float) -> None:
        GL.glUniform1f(self.location(name), float(value))

    def set_int(self, name: str, value: int) -> None:
        GL.glUniform1i(self.location(name), int(value))

    def set_vec2(self, name: str, v) -> None:
        x, y = (float(c) for c in v)
        GL.glUniform2f(self.location(name), x, y)

    def set_vec3(self, name: str, v) -> None:
        x, y, z = (float(c) for c in v)
        GL.glUniform3f(self.location(name), x, y, z)

    def set_vec4(self, name: str, v) -> None:
        x, y, z, w = (float(c) for c in v)
        GL.glUniform4f(self.location(name), x, y, z, w)

    def _delete(self) -> None:
        GL.glDeleteProgram(self.glo)


def _decode(log) -> str:
    if isinstance(log, bytes):
        return log.decode("utf-8", "replace")
    return str(log or "")


_G = TypeVar("_G", bound="GLObject")


class OwnedObjects:
    """The GL objects one part of the renderer made (a content's programs, buffers, vertex arrays, textures):
    :meth:`keep` each as it is made, :meth:`release` frees them all, newest first. A constructor that fails
    half-way calls its own ``release()``, which frees what it had kept so far."""

    def __init__(self) -> None:
        self._objects: list[GLObject] = []

    def keep(self, obj: _G) -> _G:
        """Own ``obj`` (returned, for ``self.vao = keep(resources.vertex_array(...))``)."""
        self._objects.append(obj)
        return obj

    def __len__(self) -> int:
        return len(self._objects)

    def release(self) -> None:
        """Free every object kept, newest first (context current); idempotent."""
        while self._objects:
            self._objects.pop().release()


class ResourceRegistry:
    """Creates, labels, tracks and frees the GL objects of one context (or share group).

    Make the context current before creating the registry and before every call except
    :meth:`schedule_release`. ``is_current`` is a callable the context supplies so that releases off the
    render thread are refused instead of silently freeing another context's names.
    """

    def __init__(self, *, is_current: Callable[[], bool] | None = None, labels: bool | None = None) -> None:
        self._is_current = is_current or (lambda: True)
        self._objects: dict[int, GLObject] = {}
        self._pending: list[GLObject] = []
        self._pending_lock = threading.Lock()
        self._fmt = _formats()
        self.labels_supported = self._detect_labels() if labels is None else bool(labels)

    # ---- bookkeeping ---------------------------------------------------------------------------------------
    @staticmethod
    def _detect_labels() -> bool:
        try:
            major = int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION))
            minor = int(GL.glGetIntegerv(GL.GL_MINOR_VERSION))
            has = (major, minor) >= (4, 3)
            if not has:
                n = int(GL.glGetIntegerv(GL.GL_NUM_EXTENSIONS))
                has = any(GL.glGetStringi(GL.GL_EXTENSIONS, i) == b"GL_KHR_debug" for i in range(n))
            return bool(has and bool(GL.glObjectLabel))
        finally:
            drain_gl_errors()  # a 3.x context without GL_MAJOR_VERSION queries must not leave errors behind

    def _label(self, namespace: int, glo: int, label: str) -> None:
        if not self.labels_supported or not label:
            return
        data = label.encode("utf-8")
        GL.glObjectLabel(namespace, glo, len(data), data)

    def _register(self, obj: GLObject, namespace: int | None) -> GLObject:
        try:
            if namespace is not None:
                self._label(namespace, obj.glo, obj.label)
            check_gl("create", obj.label)
        except RenderError:
            obj._delete()  # never registered: free the GL name here
            obj.released = True
            drain_gl_errors()
            raise
        self._objects[id(obj)] = obj
        return obj

    def object_label(self, obj: GLObject) -> str | None:
        """The label GL holds for ``obj`` (``glGetObjectLabel``), None without KHR_debug."""
        if not self.labels_supported:
            return None
        namespace = {
            Texture2D: GL.GL_TEXTURE,
            Renderbuffer: GL.GL_RENDERBUFFER,
            Framebuffer: GL.GL_FRAMEBUFFER,
            Buffer: GL.GL_BUFFER,
            VertexArray: GL.GL_VERTEX_ARRAY,
            Program: GL.GL_PROGRAM,
        }[type(obj)]
        buf = ctypes.create_string_buffer(256)
        length = GL.GLsizei(0)
        GL.glGetObjectLabel(namespace, obj.glo, 256, ctypes.byref(length), buf)
        return buf.raw[: length.value].decode("utf-8", "replace")

    def adopt(self, obj: GLObject, namespace: int | None) -> GLObject:
        """Register a GL object made outside this registry's factories (a :class:`GLObject` subclass, e.g.
        a 3D or 1D LUT texture of :mod:`stagectl.render.ocio_pass`): label it in ``namespace`` (``GL_TEXTURE``
        ...) and free it with the others; on a GL error it is deleted and :class:`RenderError` raised."""
        if obj.registry is not self:
            raise ResourceError(f"{obj.kind} {obj.label!r} belongs to another registry")
        return self._register(obj, namespace)

    def live(self) -> list[GLObject]:
        """Objects created and not yet released, oldest first."""
        return list(self._objects.values())

    def __len__(self) -> int:
        return len(self._objects)

    def find(self, label: str) -> GLObject | None:
        return next((o for o in self._objects.values() if o.label == label), None)

    def release(self, obj: GLObject) -> None:
        """Free ``obj`` (and the attachments a framebuffer owns) now; idempotent."""
        if obj.released:
            return
        if not self._is_current():
            raise ResourceError(
                f"{obj.kind} {obj.label!r} released on a thread where its GL context is not current; "
                "call registry.schedule_release(obj) there and registry.collect() on the render thread"
            )
        obj._delete()
        obj.released = True
        self._objects.pop(id(obj), None)
        for child in obj._children():
            self.release(child)

    def release_all(self) -> None:
        """Free every live object, newest first (framebuffers before their attachments)."""
        self.collect()
        for obj in reversed(list(self._objects.values())):
            self.release(obj)
        drain_gl_errors()

    def schedule_release(self, obj: GLObject) -> None:
        """Queue ``obj`` for release by the render thread's next :meth:`collect`; safe from any thread."""
        with self._pending_lock:
            self._pending.append(obj)

    def collect(self) -> int:
        """Free the objects queued by :meth:`schedule_release` (render thread, once per frame); returns how
        many."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for obj in pending:
            self.release(obj)
        return len(pending)

    def _format(self, name: str) -> TextureFormat:
        try:
            return self._fmt[name]
        except KeyError:
            raise ResourceError(
                f"unknown texture format {name!r}; expected one of {', '.join(TEXTURE_FORMATS)}"
            ) from None

    # ---- factories -----------------------------------------------------------------------------------------
    def texture2d(
        self,
        label: str,
        width: int,
        height: int,
        fmt: str = "rgba8",
        *,
        data: np.ndarray | None = None,
        filter: str = "linear",
    ) -> Texture2D:
        """A ``width x height`` texture (clamp-to-edge, ``filter`` = linear | nearest), optionally filled from
        ``data`` (row 0 = top, see :meth:`Texture2D.upload`)."""
        if width <= 0 or height <= 0:
            raise ResourceError(f"texture {label!r}: size {width}x{height} must be positive")
        f = self._format(fmt)
        gl_filter = {"linear": GL.GL_LINEAR, "nearest": GL.GL_NEAREST}[filter]
        glo = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, glo)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, f.internal, width, height, 0, f.format, f.type, None)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, gl_filter)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, gl_filter)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAX_LEVEL, 0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        tex = Texture2D(self, glo, label, width, height, f)
        self._register(tex, GL.GL_TEXTURE)
        if data is not None:
            tex.upload(data)
        return tex

    def renderbuffer(self, label: str, width: int, height: int, fmt: str = "depth24") -> Renderbuffer:
        f = self._format(fmt)
        glo = int(GL.glGenRenderbuffers(1))
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, glo)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, f.internal, width, height)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, 0)
        return self._register(Renderbuffer(self, glo, label, width, height, f), GL.GL_RENDERBUFFER)

    def framebuffer(
        self,
        label: str,
        width: int,
        height: int,
        color: str | None = "rgba8",
        *,
        depth: bool | str = True,
        attachments: tuple[Texture2D, ...] | None = None,
        filter: str = "linear",
    ) -> Framebuffer:
        """A complete framebuffer ``width x height``.

        By default it creates and owns a colour texture ``<label>.color0`` of format ``color`` (``rgba8`` or
        ``rgba16f``, ...) and a depth renderbuffer ``<label>.depth`` (``depth=True`` means ``depth24``; a
        format name picks another). Pass ``attachments`` to attach existing colour textures instead (not
        owned). Raises :class:`RenderError` with the framebuffer status name if the result is incomplete.
        """
        owns = attachments is None
        created: list[GLObject] = []
        try:
            if attachments is None:
                colors: tuple[Texture2D, ...] = ()
                if color is not None:
                    colors = (self.texture2d(f"{label}.color0", width, height, color, filter=filter),)
                    created.extend(colors)
            else:
                colors = tuple(attachments)
            depth_rb: Renderbuffer | None = None
            if depth:
                depth_rb = self.renderbuffer(
                    f"{label}.depth", width, height, "depth24" if depth is True else str(depth)
                )
                created.append(depth_rb)
            glo = int(GL.glGenFramebuffers(1))
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, glo)
            for i, tex in enumerate(colors):
                GL.glFramebufferTexture2D(
                    GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0 + i, GL.GL_TEXTURE_2D, tex.glo, 0
                )
            if colors:
                GL.glDrawBuffers(len(colors), [GL.GL_COLOR_ATTACHMENT0 + i for i in range(len(colors))])
                GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
            else:
                GL.glDrawBuffer(GL.GL_NONE)
                GL.glReadBuffer(GL.GL_NONE)
            if depth_rb is not None:
                GL.glFramebufferRenderbuffer(
                    GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, depth_rb.glo
                )
            status = int(GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER))
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
            fb = Framebuffer(self, glo, label, width, height, colors, depth_rb, owns)
            self._register(fb, GL.GL_FRAMEBUFFER)
            created.append(fb)
            if status != GL.GL_FRAMEBUFFER_COMPLETE:
                status_name = _FRAMEBUFFER_STATUS_NAMES.get(status, f"framebuffer status 0x{status:04X}")
                raise RenderError("create", label, status_name)
            return fb
        except Exception:
            for obj in reversed(created):
                self.release(obj)
            raise

    def buffer(
        self,
        label: str,
        target: int,
        data: np.ndarray | None = None,
        *,
        size: int | None = None,
        usage: int | None = None,
    ) -> Buffer:
        """A buffer for ``target`` (e.g. ``GL_ARRAY_BUFFER``) holding ``data``'s bytes, or ``size`` bytes
        uninitialised; ``usage`` defaults to ``GL_STATIC_DRAW``."""
        if (data is None) == (size is None):
            raise ResourceError(f"buffer {label!r}: give exactly one of data or size")
        usage = GL.GL_STATIC_DRAW if usage is None else usage
        arr = None if data is None else np.ascontiguousarray(data)
        nbytes = int(arr.nbytes) if arr is not None else int(size)  # type: ignore[arg-type]
        glo = int(GL.glGenBuffers(1))
        GL.glBindBuffer(target, glo)
        GL.glBufferData(target, nbytes, None if arr is None else ctypes.c_void_p(arr.ctypes.data), usage)
        GL.glBindBuffer(target, 0)
        return self._register(Buffer(self, glo, label, target, nbytes, usage), GL.GL_BUFFER)

    def vertex_array(self, label: str) -> VertexArray:
        glo = int(GL.glGenVertexArrays(1))
        GL.glBindVertexArray(glo)  # a generated name becomes an object (labelable) at first bind
        GL.glBindVertexArray(0)
        return self._register(VertexArray(self, glo, label), GL.GL_VERTEX_ARRAY)

    def program(self, label: str, vertex_source: str, fragment_source: str) -> Program:
        """Compile and link a vertex + fragment program; :class:`ShaderError` carries the driver's log."""
        shaders: list[int] = []
        glo = 0
        try:
            for stage, kind, src in (
                ("vertex", GL.GL_VERTEX_SHADER, vertex_source),
                ("fragment", GL.GL_FRAGMENT_SHADER, fragment_source),
            ):
                sh = int(GL.glCreateShader(kind))
                shaders.append(sh)
                GL.glShaderSource(sh, src)
                GL.glCompileShader(sh)
                if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
                    log = _decode(GL.glGetShaderInfoLog(sh))
                    raise ShaderError("create", f"{label} ({stage} shader)", "GL_COMPILE_STATUS", log)
            glo = int(GL.glCreateProgram())
            for sh in shaders:
                GL.glAttachShader(glo, sh)
            GL.glLinkProgram(glo)
            if not GL.glGetProgramiv(glo, GL.GL_LINK_STATUS):
                log = _decode(GL.glGetProgramInfoLog(glo))
                raise ShaderError("create", label, "GL_LINK_STATUS", log)
            for sh in shaders:
                GL.glDetachShader(glo, sh)
        except Exception:
            if glo:
                GL.glDeleteProgram(glo)
            raise
        finally:
            for sh in shaders:
                GL.glDeleteShader(sh)
        return self._register(Program(self, glo, label), GL.GL_PROGRAM)
