"""Choose PyOpenGL's window-system platform before OpenGL is imported.

PyOpenGL binds itself to one platform (EGL, GLX, WGL, CGL, OSMesa) the first time ``OpenGL.GL`` (or
``OpenGL.platform``) is imported, reading ``PYOPENGL_PLATFORM``; function pointers are then looked up through
that platform for the life of the process. So the platform has to be right *before* the first import, and
every module of stagectl that needs GL calls :func:`ensure_platform` first (``stagectl.render.gl.context``
does it for you, as long as nothing imported ``OpenGL.GL`` earlier).

Context kinds and the PyOpenGL platform they need:

* ``"egl"``: headless EGL (Mesa surfaceless on CI, see ``docs/reference/HEADLESS.md``). Needs the
  ``egl`` platform; sets ``EGL_PLATFORM=surfaceless`` unless the environment already names an EGL platform.
* ``"glfw"``: on-screen windows. On Linux/X11 GLFW creates GLX contexts, so the ``glx`` platform is chosen
  unless ``PYOPENGL_PLATFORM`` says otherwise; on Wayland (no ``DISPLAY``) ``egl``. If PyOpenGL is already
  bound to ``egl``, a GLFW context is still possible: :mod:`stagectl.render.gl.context` then asks GLFW for an
  EGL context, so one process can hold an offscreen EGL context and GLFW windows.

:func:`ensure_platform` also turns PyOpenGL's per-call error checking off (``OpenGL.ERROR_CHECKING``) unless
``PYOPENGL_ERROR_CHECKING`` is set in the environment: stagectl reads ``glGetError`` itself at pass boundaries
(:func:`stagectl.render.gl.resources.check_gl`), which costs one call per pass instead of one per GL call and
names the pass and object in the error.
"""

from __future__ import annotations

import os
import sys

from stagectl.render.gl.errors import PlatformError

__all__ = ["ensure_platform", "loaded_platform", "platform_for_kind", "CONTEXT_KINDS", "GL"]

CONTEXT_KINDS = ("egl", "glfw")

# PyOpenGL platform implementation class -> the PYOPENGL_PLATFORM key that selects it
_CLASS_TO_KEY = {
    "EGLPlatform": "egl",
    "GLXPlatform": "glx",
    "OSMesaPlatform": "osmesa",
    "DarwinPlatform": "darwin",
    "Win32Platform": "nt",
}
# PYOPENGL_PLATFORM spellings that select the same implementation
_KEY_ALIASES = {
    "egl": "egl",
    "wayland": "egl",
    "xwayland": "egl",
    "glx": "glx",
    "linux": "glx",
    "linux2": "glx",
    "x11": "glx",
    "posix": "glx",
    "osmesa": "osmesa",
    "darwin": "darwin",
    "nt": "nt",
}
# which loaded platforms each context kind can work with
_COMPATIBLE = {
    "egl": frozenset({"egl"}),
    "glfw": frozenset({"glx", "egl", "darwin", "nt"}),
}


def loaded_platform() -> str | None:
    """The platform PyOpenGL is bound to (``"egl"``, ``"glx"``, ...), or None while ``OpenGL.platform`` is
    unloaded."""
    mod = sys.modules.get("OpenGL.platform")
    if mod is None:
        return None
    impl = getattr(mod, "PLATFORM", None)
    if impl is None:  # pragma: no cover - import in progress
        return None
    name = type(impl).__name__
    return _CLASS_TO_KEY.get(name, name)


def platform_for_kind(kind: str) -> str:
    """The PyOpenGL platform key a fresh process should bind to for a context of ``kind``."""
    if kind not in CONTEXT_KINDS:
        raise PlatformError(f"unknown GL context kind {kind!r}; expected one of {', '.join(CONTEXT_KINDS)}")
    if kind == "egl":
        return "egl"
    explicit = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if explicit:
        key = _KEY_ALIASES.get(explicit)
        if key is None or key not in _COMPATIBLE["glfw"]:
            raise PlatformError(
                f"PYOPENGL_PLATFORM={explicit!r} cannot drive GLFW windows; "
                "expected one of glx, egl, darwin, nt"
            )
        return key
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith("win"):
        return "nt"
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return "egl"
    return "glx"


def ensure_platform(kind: str) -> str:
    """Make sure PyOpenGL is (or will be) bound to a platform that can drive a context of ``kind``.

    Call before the first ``import OpenGL.GL`` of the process. Sets ``PYOPENGL_PLATFORM`` (and for ``"egl"``,
    ``EGL_PLATFORM=surfaceless`` unless an EGL platform is already named), switches PyOpenGL's per-call error
    checking off unless ``PYOPENGL_ERROR_CHECKING`` is set, and returns the platform key in use.

    Raises :class:`PlatformError` when PyOpenGL was already imported with a platform that cannot serve
    ``kind`` (for example ``OpenGL.GL`` imported without ``PYOPENGL_PLATFORM=egl`` before an ``"egl"`` context
    is asked for); the message says how to fix it.
    """
    want = platform_for_kind(kind)
    if kind == "egl":
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    loaded = loaded_platform()
    if loaded is not None:
        if loaded not in _COMPATIBLE[kind]:
            raise PlatformError(
                f"PyOpenGL is already bound to the {loaded!r} platform, but a {kind!r} GL context needs "
                f"{' or '.join(sorted(_COMPATIBLE[kind]))}: PyOpenGL chooses its platform when OpenGL.GL is "
                f"first imported, so call stagectl.render.gl.platform.ensure_platform({kind!r}) (or set "
                f"PYOPENGL_PLATFORM={want}) before anything imports OpenGL.GL"
            )
        return loaded
    os.environ["PYOPENGL_PLATFORM"] = want
    if "PYOPENGL_ERROR_CHECKING" not in os.environ and "OpenGL._configflags" not in sys.modules:
        import OpenGL  # the package only: the platform is chosen when OpenGL.platform is imported

        OpenGL.ERROR_CHECKING = False
        if want == "egl":
            _patch_egl_error_checker()
    return want


def _patch_egl_error_checker() -> None:
    """Work around PyOpenGL 3.1.10: with ``ERROR_CHECKING`` off, ``OpenGL.raw.EGL._errors`` never defines
    ``_error_checker``, so ``import OpenGL.EGL`` fails with AttributeError. Define it as None (no checker),
    which is what the GL module does in the same situation."""
    import OpenGL.raw.EGL._errors as egl_errors  # binds OpenGL.platform to PYOPENGL_PLATFORM (set above)

    if not hasattr(egl_errors, "_error_checker"):
        egl_errors._error_checker = None


class _LazyGL:
    """``OpenGL.GL``, imported on first attribute access, after a platform has been chosen.

    Modules of the backend use ``from stagectl.render.gl.platform import GL`` so that importing them (for
    their pure helpers or type names) never binds PyOpenGL to a platform by accident. Each attribute is cached
    on the instance after the first access, so later lookups cost a plain attribute read.
    """

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if loaded_platform() is None and not os.environ.get("PYOPENGL_PLATFORM"):
            raise PlatformError(
                "no PyOpenGL platform chosen yet: create a context with "
                "stagectl.render.gl.context.create_context() (or call ensure_platform(kind)) "
                "before making GL calls"
            )
        import OpenGL.GL as _gl_module

        value = getattr(_gl_module, name)
        setattr(self, name, value)
        return value


GL = _LazyGL()
