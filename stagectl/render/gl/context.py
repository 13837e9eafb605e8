"""The one place stagectl creates OpenGL contexts and windows.

``create_context(kind, ...)`` returns a :class:`GLContext`, current on the calling thread:

* ``kind="egl"``: a headless context on EGL without any surface (Mesa ``surfaceless`` platform; llvmpipe on
  CI, the GPU's driver on a render node). All drawing goes to framebuffer objects.
* ``kind="glfw"``: one window per output, each with its own context in one share group rooted at a hidden
  window. A window is fullscreen on the monitor named in its :class:`WindowSpec` (GLFW's monitor name, matched
  exactly, then case-insensitively, then as a prefix) or windowed; every window swaps with interval 1 by
  default. GLFW must be driven from the process's main thread. :func:`list_monitors` says which monitors are
  connected (name, position, current mode, work area) before any window exists.

Both ask for an OpenGL **core** profile of at least ``version`` (3.3 by default) and refuse a context that
reports less. The context owns a :class:`~stagectl.render.gl.resources.ResourceRegistry` (``ctx.resources``);
:meth:`GLContext.release` frees the registry's objects, then the context.

Sharing: textures, buffers, renderbuffers and programs are shared between the contexts of one share group
(``share_with=`` for EGL; the windows of one GLFW context). Framebuffers and vertex arrays are container
objects and belong to the context that made them, so a renderer that draws into several windows creates its
VAOs per window context.

Worker contexts: :meth:`GLContext.shared_context` makes one more context in the share group for a worker thread
(EGL: a surfaceless context with ``share_with``; GLFW: a hidden 16 x 16 window sharing the root's objects, made
where GLFW allows windows to be made, on the main thread). It is made on the calling thread, which keeps the
context it had current; the worker makes it current on its own thread (``make_current()``, one thread at a
time), frees the objects it registered there, calls ``done_current()``, and the thread that made it releases it
(:mod:`stagectl.render.program_worker` compiles programs on one).

PyOpenGL's platform: :func:`create_context` calls :func:`stagectl.render.gl.platform.ensure_platform` before
it imports OpenGL, so it raises :class:`~stagectl.render.gl.errors.PlatformError` if something imported
``OpenGL.GL`` earlier with an incompatible platform.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stagectl.render.gl.errors import ContextError
from stagectl.render.gl.platform import CONTEXT_KINDS, ensure_platform

__all__ = [
    "GLInfo",
    "GLContext",
    "EGLContext",
    "GLFWContext",
    "GLWindow",
    "GLFWSharedContext",
    "WindowSpec",
    "create_context",
    "select_monitor",
    "list_monitors",
    "MonitorInfo",
    "MIN_VERSION",
]

MIN_VERSION = (3, 3)


@dataclass(frozen=True)
class GLInfo:
    """What the driver says about a context (queried once, at creation)."""

    vendor: str
    renderer: str
    version: str
    glsl_version: str
    major: int
    minor: int
    core_profile: bool
    debug: bool
    platform: str
    extensions: frozenset[str] = field(repr=False)

    @property
    def version_tuple(self) -> tuple[int, int]:
        return self.major, self.minor

    @property
    def software(self) -> bool:
        """True on Mesa's CPU rasterisers (llvmpipe, softpipe, swrast)."""
        r = self.renderer.lower()
        return any(s in r for s in ("llvmpipe", "softpipe", "swrast"))

    def has_extension(self, name: str) -> bool:
        return name in self.extensions

    def summary(self) -> str:
        profile = "core" if self.core_profile else "compatibility"
        gl = f"OpenGL {self.major}.{self.minor} {profile}"
        return f"{self.renderer} ({self.vendor}), {gl} via {self.platform}"


def _query_info(platform: str) -> GLInfo:
    from OpenGL import GL

    def s(name: int) -> str:
        v = GL.glGetString(name)
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "")

    major = int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION))
    minor = int(GL.glGetIntegerv(GL.GL_MINOR_VERSION))
    mask = int(GL.glGetIntegerv(GL.GL_CONTEXT_PROFILE_MASK))
    flags = int(GL.glGetIntegerv(GL.GL_CONTEXT_FLAGS))
    n = int(GL.glGetIntegerv(GL.GL_NUM_EXTENSIONS))
    exts = frozenset(GL.glGetStringi(GL.GL_EXTENSIONS, i).decode("ascii", "replace") for i in range(n))
    while GL.glGetError() != GL.GL_NO_ERROR:  # leave a clean error state behind
        pass
    return GLInfo(
        vendor=s(GL.GL_VENDOR),
        renderer=s(GL.GL_RENDERER),
        version=s(GL.GL_VERSION),
        glsl_version=s(GL.GL_SHADING_LANGUAGE_VERSION),
        major=major,
        minor=minor,
        core_profile=bool(mask & GL.GL_CONTEXT_CORE_PROFILE_BIT),
        debug=bool(flags & GL.GL_CONTEXT_FLAG_DEBUG_BIT),
        platform=platform,
        extensions=exts,
    )


def _check_version(info: GLInfo, version: tuple[int, int], what: str) -> None:
    if info.version_tuple < tuple(version) or not info.core_profile:
        raise ContextError(
            f"{what}: got OpenGL {info.major}.{info.minor} "
            f"{'core' if info.core_profile else 'compatibility'} from {info.renderer!r}, "
            f"expected a core profile >= {version[0]}.{version[1]}"
        )


def _ptr(p: Any) -> int | None:
    """Integer address of a ctypes / PyOpenGL opaque pointer (None for NULL)."""
    if p is None:
        return None
    return ctypes.cast(p, ctypes.c_void_p).value


class GLContext:
    """A GL context (or share group) created by :func:`create_context`.

    ``make_current()`` binds it to the calling thread, ``done_current()`` unbinds it, ``release()`` frees its
    registered GL objects and the context itself. As a context manager, entering makes it current and leaving
    releases it.
    """

    kind: str = "?"

    def __init__(self) -> None:
        self._info: GLInfo | None = None
        self._resources = None
        self.released = False

    @property
    def info(self) -> GLInfo:
        assert self._info is not None
        return self._info

    @property
    def resources(self):
        """The :class:`~stagectl.render.gl.resources.ResourceRegistry` of this context (made on first use; the
        context must be current)."""
        self._require_live()
        if self._resources is None:
            from stagectl.render.gl.resources import ResourceRegistry

            if not self.is_current():
                raise ContextError(f"{self.kind} context: make it current before using its resources")
            self._resources = ResourceRegistry(is_current=self.is_current)
        return self._resources

    def make_current(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def done_current(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_current(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def shared_context(self) -> GLContext:
        """A new context in this context's share group, for a worker thread (see the module docstring): made on
        this thread without changing what is current here, current nowhere. Programs, textures, buffers and
        sync objects are shared with it; framebuffers and vertex arrays are not."""
        raise ContextError(f"a {self.kind!r} context makes no shared worker contexts")

    def _release_resources(self) -> None:
        if self._resources is not None and len(self._resources):
            self.make_current()
            self._resources.release_all()
        self._resources = None

    def _require_live(self) -> None:
        if self.released:
            raise ContextError(f"{self.kind} context used after release")

    def __enter__(self) -> GLContext:
        self.make_current()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else (self._info.summary() if self._info else "?")
        return f"<{type(self).__name__} {state}>"


# ------------------------------------------------------------------------------------------------------------
# EGL (headless)


class _EGLDisplay:
    """The default EGL display, initialised once and terminated when its last context is released.

    eglInitialize/eglTerminate are not reference counted by EGL itself, so two contexts of one process share
    this object and the last one out terminates the display.
    """

    _lock = threading.Lock()
    _instance: _EGLDisplay | None = None

    def __init__(self, handle: Any, version: tuple[int, int]) -> None:
        self.handle = handle
        self.version = version
        self.users = 0

    @classmethod
    def acquire(cls) -> _EGLDisplay:
        from OpenGL import EGL

        with cls._lock:
            if cls._instance is None:
                handle = EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)
                if not _ptr(handle):
                    raise ContextError("EGL: eglGetDisplay(EGL_DEFAULT_DISPLAY) returned no display")
                major, minor = EGL.EGLint(), EGL.EGLint()
                if not EGL.eglInitialize(handle, ctypes.pointer(major), ctypes.pointer(minor)):
                    raise ContextError(
                        f"EGL: eglInitialize failed ({_egl_error_name()}); on Mesa without a display set "
                        f"EGL_PLATFORM=surfaceless (now {os.environ.get('EGL_PLATFORM')!r})"
                    )
                cls._instance = _EGLDisplay(handle, (major.value, minor.value))
            inst = cls._instance
            inst.users += 1
            return inst

    def drop(self) -> None:
        from OpenGL import EGL

        with self._lock:
            self.users -= 1
            if self.users == 0:
                EGL.eglTerminate(self.handle)
                EGL.eglReleaseThread()
                _EGLDisplay._instance = None


_EGL_ERRORS = {
    0x3000: "EGL_SUCCESS",
    0x3001: "EGL_NOT_INITIALIZED",
    0x3002: "EGL_BAD_ACCESS",
    0x3003: "EGL_BAD_ALLOC",
    0x3004: "EGL_BAD_ATTRIBUTE",
    0x3005: "EGL_BAD_CONFIG",
    0x3006: "EGL_BAD_CONTEXT",
    0x3007: "EGL_BAD_CURRENT_SURFACE",
    0x3008: "EGL_BAD_DISPLAY",
    0x3009: "EGL_BAD_MATCH",
    0x300A: "EGL_BAD_NATIVE_PIXMAP",
    0x300B: "EGL_BAD_NATIVE_WINDOW",
    0x300C: "EGL_BAD_PARAMETER",
    0x300D: "EGL_BAD_SURFACE",
    0x300E: "EGL_CONTEXT_LOST",
}


def _egl_error_name() -> str:
    from OpenGL import EGL

    code = int(EGL.eglGetError())
    return _EGL_ERRORS.get(code, f"EGL error 0x{code:04X}")


class EGLContext(GLContext):
    """A surfaceless EGL context; draw into framebuffer objects."""

    kind = "egl"

    def __init__(self, *, version: tuple[int, int], debug: bool, share_with: EGLContext | None) -> None:
        super().__init__()
        from OpenGL import EGL

        self._version, self._debug = tuple(version), bool(debug)
        self._display = _EGLDisplay.acquire()
        try:
            dpy = self._display.handle
            attrs = (EGL.EGLint * 7)(
                EGL.EGL_SURFACE_TYPE,
                EGL.EGL_PBUFFER_BIT,
                EGL.EGL_RENDERABLE_TYPE,
                EGL.EGL_OPENGL_BIT,
                EGL.EGL_NONE,
                0,
                0,
            )
            config = EGL.EGLConfig()
            count = EGL.EGLint()
            if not EGL.eglChooseConfig(dpy, attrs, ctypes.pointer(config), 1, ctypes.pointer(count)) or (
                count.value < 1
            ):
                raise ContextError(f"EGL: no config with PBUFFER and OPENGL support ({_egl_error_name()})")
            if not EGL.eglBindAPI(EGL.EGL_OPENGL_API):
                raise ContextError(f"EGL: eglBindAPI(EGL_OPENGL_API) failed ({_egl_error_name()})")
            ctx_attrs = [
                EGL.EGL_CONTEXT_MAJOR_VERSION,
                version[0],
                EGL.EGL_CONTEXT_MINOR_VERSION,
                version[1],
                EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK,
                EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
            ]
            if debug:
                ctx_attrs += [EGL.EGL_CONTEXT_OPENGL_DEBUG, EGL.EGL_TRUE]
            ctx_attrs.append(EGL.EGL_NONE)
            share = share_with._handle if share_with is not None else EGL.EGL_NO_CONTEXT
            handle = EGL.eglCreateContext(dpy, config, share, (EGL.EGLint * len(ctx_attrs))(*ctx_attrs))
            if not _ptr(handle):
                raise ContextError(
                    f"EGL: eglCreateContext for OpenGL {version[0]}.{version[1]} core failed "
                    f"({_egl_error_name()})"
                )
            self._handle = handle
            self._egl = EGL
        except BaseException:
            self._display.drop()
            raise
        try:
            self.make_current()
            self._info = _query_info("egl")
            _check_version(self._info, version, "EGL context")
        except BaseException:
            self._destroy()
            raise

    def make_current(self) -> None:
        self._require_live()
        EGL = self._egl
        if not EGL.eglMakeCurrent(self._display.handle, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, self._handle):
            raise ContextError(f"EGL: eglMakeCurrent failed ({_egl_error_name()})")

    def done_current(self) -> None:
        EGL = self._egl
        if self.is_current():
            none = EGL.EGL_NO_SURFACE
            EGL.eglMakeCurrent(self._display.handle, none, none, EGL.EGL_NO_CONTEXT)

    def is_current(self) -> bool:
        if self.released:
            return False
        return _ptr(self._egl.eglGetCurrentContext()) == _ptr(self._handle)

    def shared_context(self) -> EGLContext:
        """A surfaceless EGL context sharing this one's objects (see :meth:`GLContext.shared_context`)."""
        self._require_live()
        EGL = self._egl
        was = (EGL.eglGetCurrentDisplay(), EGL.eglGetCurrentSurface(EGL.EGL_DRAW),
               EGL.eglGetCurrentSurface(EGL.EGL_READ), EGL.eglGetCurrentContext())
        try:
            ctx = EGLContext(version=self._version, debug=self._debug, share_with=self)
            ctx.done_current()
        finally:
            if _ptr(was[3]):  # the context this thread had current is current again
                EGL.eglMakeCurrent(*was)
        return ctx

    def _destroy(self) -> None:
        EGL = self._egl
        self.done_current()
        EGL.eglDestroyContext(self._display.handle, self._handle)
        self.released = True
        self._display.drop()

    def release(self) -> None:
        """Free the registry's GL objects (making the context current here), then the context; idempotent. A
        context another one of this thread's was current before the call is current again after it."""
        if self.released:
            return
        EGL = self._egl
        was = (EGL.eglGetCurrentDisplay(), EGL.eglGetCurrentSurface(EGL.EGL_DRAW),
               EGL.eglGetCurrentSurface(EGL.EGL_READ), EGL.eglGetCurrentContext())
        try:
            self._release_resources()
        finally:
            self._destroy()
            if _ptr(was[3]) and _ptr(was[3]) != _ptr(self._handle):
                EGL.eglMakeCurrent(*was)


# ------------------------------------------------------------------------------------------------------------
# GLFW (windows)


@dataclass(frozen=True)
class WindowSpec:
    """One output window.

    ``monitor``: GLFW monitor name for a fullscreen window (None: windowed). ``size``: windowed size, or the
    fullscreen video mode (None: keep the monitor's current mode, which gives a borderless window without a
    mode switch). ``refresh_hz`` only matters with an explicit fullscreen ``size``. ``position``: windowed
    top-left in screen coordinates. ``swap_interval`` 1 = vsync. ``resizable``: a windowed window the user may
    resize. ``color_bits``: bits per colour channel asked of the window's framebuffer (10 for a deep output:
    GLFW hints 10/10/10/2; None: the driver's default, 8); what the driver gave is
    :func:`framebuffer_color_bits`.
    """

    name: str
    size: tuple[int, int] | None = (1280, 720)
    monitor: str | None = None
    position: tuple[int, int] | None = None
    refresh_hz: int | None = None
    visible: bool = True
    decorated: bool = True
    swap_interval: int = 1
    resizable: bool = False
    color_bits: int | None = None


def framebuffer_color_bits() -> tuple[int, int, int, int]:
    """Bits of red, green, blue and alpha of the current context's default framebuffer's back buffer."""
    from stagectl.render.gl.platform import GL

    GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, 0)
    got = []
    for what in ("RED", "GREEN", "BLUE", "ALPHA"):
        v = GL.glGetFramebufferAttachmentParameteriv(
            GL.GL_DRAW_FRAMEBUFFER, GL.GL_BACK_LEFT, getattr(GL, f"GL_FRAMEBUFFER_ATTACHMENT_{what}_SIZE"))
        got.append(int(v[0] if hasattr(v, "__len__") else v))
    return tuple(got)  # type: ignore[return-value]


def select_monitor(names: Sequence[str], wanted: str) -> int:
    """Index of the monitor called ``wanted`` in ``names``: exact match, then case-insensitive, then a unique
    case-insensitive prefix. Raises :class:`ContextError` listing the names otherwise."""
    if wanted in names:
        return list(names).index(wanted)
    low = wanted.lower()
    folded = [i for i, n in enumerate(names) if n.lower() == low]
    if len(folded) == 1:
        return folded[0]
    prefixed = [i for i, n in enumerate(names) if n.lower().startswith(low)]
    if len(prefixed) == 1:
        return prefixed[0]
    listed = ", ".join(repr(n) for n in names) or "none"
    why = "is ambiguous" if len(folded) > 1 or len(prefixed) > 1 else "is not connected"
    raise ContextError(f"monitor {wanted!r} {why}; monitors: {listed}")


@dataclass(frozen=True)
class MonitorInfo:
    """A connected monitor as GLFW sees it: ``name``; ``position`` of its top-left on the virtual desktop and
    ``size`` of its current video mode (screen coordinates = pixels on X11); ``refresh_hz`` of that mode (0
    when the display does not say, as Xvfb); ``workarea`` ``(x, y, w, h)``, the part not taken by panels."""

    name: str
    position: tuple[int, int]
    size: tuple[int, int]
    refresh_hz: int
    workarea: tuple[int, int, int, int]


def list_monitors() -> list[MonitorInfo]:
    """The connected monitors, primary first (GLFW's order). Initialises GLFW for the call (raises
    :class:`ContextError` without a display); imports no OpenGL."""
    import glfw

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", glfw.GLFWError)
        _GLFWLibrary.acquire()
        try:
            out = []
            for m in glfw.get_monitors() or []:
                mode = glfw.get_video_mode(m)
                pos = glfw.get_monitor_pos(m)
                wa = glfw.get_monitor_workarea(m)
                out.append(MonitorInfo(
                    _decode_name(glfw.get_monitor_name(m)), (int(pos[0]), int(pos[1])),
                    (int(mode.size.width), int(mode.size.height)), int(mode.refresh_rate),
                    tuple(int(v) for v in wa),
                ))
            return out
        finally:
            _GLFWLibrary.drop()


def _glfw_error(what: str) -> ContextError:
    import glfw

    code, desc = glfw.get_error()
    if isinstance(desc, bytes):
        desc = desc.decode("utf-8", "replace")
    return ContextError(f"GLFW: {what} failed" + (f": {desc} (0x{code:08X})" if code else ""))


class _GLFWLibrary:
    """glfw.init() once per process, glfw.terminate() when the last GLFW context is released."""

    users = 0
    lock = threading.Lock()

    @classmethod
    def acquire(cls) -> None:
        import glfw

        with cls.lock:
            if cls.users == 0 and not glfw.init():
                raise _glfw_error("glfwInit (no display? set DISPLAY or run under xvfb-run)")
            cls.users += 1

    @classmethod
    def drop(cls) -> None:
        import glfw

        with cls.lock:
            cls.users -= 1
            if cls.users == 0:
                glfw.terminate()


class GLWindow:
    """One output window of a :class:`GLFWContext`, with its own context in the share group."""

    def __init__(self, owner: GLFWContext, spec: WindowSpec, handle: Any, monitor_name: str | None) -> None:
        self.owner = owner
        self.spec = spec
        self.name = spec.name
        self.handle = handle
        self.monitor_name = monitor_name
        self.released = False

    @property
    def fullscreen(self) -> bool:
        return self.monitor_name is not None

    def make_current(self) -> None:
        import glfw

        if self.released:
            raise ContextError(f"window {self.name!r} used after release")
        glfw.make_context_current(self.handle)

    def is_current(self) -> bool:
        import glfw

        return not self.released and _ptr(glfw.get_current_context()) == _ptr(self.handle)

    def swap_buffers(self) -> None:
        import glfw

        glfw.swap_buffers(self.handle)

    def framebuffer_size(self) -> tuple[int, int]:
        """Drawable size in pixels (may differ from the window size on HiDPI screens)."""
        import glfw

        w, h = glfw.get_framebuffer_size(self.handle)
        return int(w), int(h)

    def should_close(self) -> bool:
        import glfw

        return bool(glfw.window_should_close(self.handle))

    def release(self) -> None:
        """Destroy the window and its context (the registry's shared objects survive in the share group)."""
        import glfw

        if self.released:
            return
        if self.is_current():
            glfw.make_context_current(None)
        glfw.destroy_window(self.handle)
        self.released = True

    def __repr__(self) -> str:
        where = f"fullscreen on {self.monitor_name!r}" if self.fullscreen else "windowed"
        return f"<GLWindow {self.name!r} {where}{' released' if self.released else ''}>"


class GLFWContext(GLContext):
    """A share group of GLFW contexts: a hidden root window plus one :class:`GLWindow` per output.

    ``make_current()`` binds the root context (resource creation, offscreen passes); ``windows[name]
    .make_current()`` binds an output's context to draw into its default framebuffer (0) and swap.
    """

    kind = "glfw"

    def __init__(
        self,
        *,
        version: tuple[int, int],
        debug: bool,
        windows: Sequence[WindowSpec],
        platform: str,
    ) -> None:
        super().__init__()
        import glfw

        self._glfw = glfw
        self._platform = platform
        self._version, self._debug = tuple(version), bool(debug)
        self._root: Any = None
        self.windows: dict[str, GLWindow] = {}
        self._shared: list[GLFWSharedContext] = []  # worker contexts (hidden windows) made by shared_context()
        names = [w.name for w in windows]
        if len(set(names)) != len(names):
            raise ContextError(f"GLFW: window names must be unique, got {names}")
        # pyGLFW also reports GLFW errors as warnings; they reach the caller as ContextError instead
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", glfw.GLFWError)
            self._create(version, debug, windows)

    def _create(self, version: tuple[int, int], debug: bool, windows: Sequence[WindowSpec]) -> None:
        glfw = self._glfw
        platform = self._platform
        _GLFWLibrary.acquire()
        try:
            self._root = self._create_window(
                version, debug, WindowSpec("root", size=(16, 16), visible=False, decorated=False), None
            )[0]
            self.make_current()
            self._info = _query_info(platform)
            _check_version(self._info, version, "GLFW context")
            for spec in windows:
                handle, monitor_name = self._create_window(version, debug, spec, self._root)
                win = GLWindow(self, spec, handle, monitor_name)
                self.windows[spec.name] = win
                win.make_current()
                glfw.swap_interval(spec.swap_interval)
            self.make_current()
        except BaseException:
            self._destroy()
            raise

    def _create_window(
        self, version: tuple[int, int], debug: bool, spec: WindowSpec, share: Any
    ) -> tuple[Any, str | None]:
        glfw = self._glfw
        glfw.default_window_hints()
        glfw.window_hint(glfw.CLIENT_API, glfw.OPENGL_API)
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, version[0])
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, version[1])
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, glfw.TRUE)
        glfw.window_hint(glfw.OPENGL_DEBUG_CONTEXT, glfw.TRUE if debug else glfw.FALSE)
        if self._platform == "egl":  # PyOpenGL speaks EGL: let GLFW make EGL contexts too
            glfw.window_hint(glfw.CONTEXT_CREATION_API, glfw.EGL_CONTEXT_API)
        glfw.window_hint(glfw.DOUBLEBUFFER, glfw.TRUE)
        glfw.window_hint(glfw.VISIBLE, glfw.TRUE if spec.visible else glfw.FALSE)
        glfw.window_hint(glfw.DECORATED, glfw.TRUE if spec.decorated else glfw.FALSE)
        glfw.window_hint(glfw.RESIZABLE, glfw.TRUE if spec.resizable and spec.monitor is None else glfw.FALSE)
        glfw.window_hint(glfw.AUTO_ICONIFY, glfw.FALSE)  # a fullscreen output must not minimise on focus loss
        glfw.window_hint(glfw.FOCUS_ON_SHOW, glfw.FALSE)
        monitor = None
        monitor_name = None
        if spec.monitor is not None:
            monitors = list(glfw.get_monitors() or [])
            names = [_decode_name(glfw.get_monitor_name(m)) for m in monitors]
            monitor = monitors[select_monitor(names, spec.monitor)]
            monitor_name = names[monitors.index(monitor)]
            mode = glfw.get_video_mode(monitor)
            if spec.size is None:  # borderless fullscreen in the current mode, no mode switch
                glfw.window_hint(glfw.RED_BITS, mode.bits.red)
                glfw.window_hint(glfw.GREEN_BITS, mode.bits.green)
                glfw.window_hint(glfw.BLUE_BITS, mode.bits.blue)
                glfw.window_hint(glfw.REFRESH_RATE, mode.refresh_rate)
                width, height = mode.size.width, mode.size.height
            else:
                width, height = spec.size
                if spec.refresh_hz is not None:
                    glfw.window_hint(glfw.REFRESH_RATE, int(spec.refresh_hz))
        else:
            width, height = spec.size if spec.size is not None else (1280, 720)
        if spec.color_bits is not None:  # a deep output: ask for a 10-bit (or deeper) framebuffer
            for hint in (glfw.RED_BITS, glfw.GREEN_BITS, glfw.BLUE_BITS):
                glfw.window_hint(hint, int(spec.color_bits))
            glfw.window_hint(glfw.ALPHA_BITS, 2 if spec.color_bits == 10 else int(spec.color_bits))
        handle = glfw.create_window(int(width), int(height), f"stagectl {spec.name}", monitor, share)
        if not handle:
            raise _glfw_error(
                f"creating window {spec.name!r} ({width}x{height}, OpenGL {version[0]}.{version[1]} core)"
            )
        if monitor is None and spec.position is not None:
            glfw.set_window_pos(handle, int(spec.position[0]), int(spec.position[1]))
        return handle, monitor_name

    def make_current(self) -> None:
        self._require_live()
        self._glfw.make_context_current(self._root)

    def done_current(self) -> None:
        if self.is_current():
            self._glfw.make_context_current(None)

    def is_current(self) -> bool:
        """True when the root or any window of this share group is current on this thread."""
        if self.released or self._root is None:
            return False
        cur = _ptr(self._glfw.get_current_context())
        return cur is not None and cur in {_ptr(self._root), *(_ptr(w.handle) for w in self.windows.values())}

    def poll_events(self) -> None:
        self._glfw.poll_events()

    def shared_context(self) -> GLFWSharedContext:
        """A hidden window's context sharing the root's objects, for a worker thread (see
        :meth:`GLContext.shared_context`). GLFW makes windows on the main thread only: call this there."""
        self._require_live()
        glfw = self._glfw
        was = glfw.get_current_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", glfw.GLFWError)
            try:
                handle, _ = self._create_window(
                    self._version, self._debug,
                    WindowSpec(f"worker{len(self._shared)}", size=(16, 16), visible=False, decorated=False),
                    self._root)
            finally:
                glfw.make_context_current(was)
        ctx = GLFWSharedContext(self, handle)
        self._shared.append(ctx)
        return ctx

    def _destroy(self) -> None:
        glfw = self._glfw
        for ctx in self._shared:
            ctx.release()
        self._shared.clear()
        for win in self.windows.values():
            win.release()
        if self._root is not None:
            if _ptr(glfw.get_current_context()) == _ptr(self._root):
                glfw.make_context_current(None)
            glfw.destroy_window(self._root)
        self.released = True
        _GLFWLibrary.drop()

    def release(self) -> None:
        """Free the registry's objects (root context current), then every window and the root; idempotent."""
        if self.released:
            return
        try:
            self._release_resources()
        finally:
            self._destroy()


class GLFWSharedContext(GLContext):
    """A worker context of a :class:`GLFWContext`: a hidden window's context in its share group
    (:meth:`GLFWContext.shared_context`). Current on one thread at a time (``glfwMakeContextCurrent`` may be
    called from any thread); released, like every GLFW window, on the main thread."""

    kind = "glfw"

    def __init__(self, owner: GLFWContext, handle: Any) -> None:
        super().__init__()
        self._owner = owner
        self._handle = handle
        self._info = owner.info

    def make_current(self) -> None:
        self._require_live()
        self._owner._glfw.make_context_current(self._handle)

    def done_current(self) -> None:
        if self.is_current():
            self._owner._glfw.make_context_current(None)

    def is_current(self) -> bool:
        return not self.released and _ptr(self._owner._glfw.get_current_context()) == _ptr(self._handle)

    def release(self) -> None:
        """Free the registry's objects (this context made current here), then the hidden window; idempotent."""
        if self.released:
            return
        glfw = self._owner._glfw
        was = glfw.get_current_context()
        try:
            self._release_resources()
        finally:
            if self.is_current():
                glfw.make_context_current(None)
            glfw.destroy_window(self._handle)
            self.released = True
            if was is not None and _ptr(was) != _ptr(self._handle):
                glfw.make_context_current(was)
        if self in self._owner._shared:
            self._owner._shared.remove(self)


def _decode_name(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def create_context(
    kind: str = "egl",
    *,
    version: tuple[int, int] = MIN_VERSION,
    debug: bool = False,
    share_with: GLContext | None = None,
    windows: Sequence[WindowSpec] = (),
) -> GLContext:
    """Create a GL context of ``kind`` (``"egl"`` or ``"glfw"``), current on the calling thread.

    ``version``: the lowest core-profile version accepted (>= 3.3). ``debug``: ask for a debug context.
    ``share_with`` (EGL): share objects with an existing EGL context. ``windows`` (GLFW): one
    :class:`WindowSpec` per output. Raises :class:`ContextError` (or :class:`PlatformError`) with the reason.
    """
    if kind not in CONTEXT_KINDS:
        raise ContextError(f"unknown GL context kind {kind!r}; expected one of {', '.join(CONTEXT_KINDS)}")
    version = (int(version[0]), int(version[1]))
    if version < MIN_VERSION:
        raise ContextError(
            f"OpenGL {version[0]}.{version[1]} asked for; stagectl needs a core profile >= 3.3"
        )
    platform = ensure_platform(kind)
    if kind == "egl":
        if windows:
            raise ContextError("an 'egl' context is headless: windows need kind='glfw'")
        if share_with is not None and not isinstance(share_with, EGLContext):
            raise ContextError("an 'egl' context can only share with another 'egl' context")
    elif share_with is not None:
        raise ContextError("a 'glfw' context shares within its own windows; share_with is for 'egl' contexts")
    from OpenGL.error import Error as _PyOpenGLError

    try:
        if kind == "egl":
            return EGLContext(version=version, debug=debug, share_with=share_with)
        return GLFWContext(version=version, debug=debug, windows=windows, platform=platform)
    except _PyOpenGLError as exc:  # PyOpenGL's per-call error checking was on (PYOPENGL_ERROR_CHECKING)
        raise ContextError(f"{kind} context creation failed: {exc}") from exc
