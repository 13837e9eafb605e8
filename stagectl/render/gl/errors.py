"""Errors of the OpenGL backend (``stagectl.render.gl``).

Every failure the backend reports derives from :class:`GLBackendError`, itself a
:class:`stagectl.core.errors.StageError`, so the CLI prints the message without a traceback:

* :class:`PlatformError`: PyOpenGL was (or would be) bound to the wrong window-system platform;
* :class:`ContextError`: a context or window could not be created or made current;
* :class:`RenderError`: OpenGL reported an error (``glGetError``, an incomplete framebuffer, a shader that did
  not compile or link); it names the render pass, the labelled object and the GL error name;
* :class:`ShaderError`: a :class:`RenderError` carrying the compiler or linker log;
* :class:`ResourceError`: a GL object used after release, or released on a thread where its context is not
  current;
* :class:`ReadbackBusy`: every slot of an asynchronous readback ring is still in flight.
"""

from __future__ import annotations

from stagectl.core.errors import StageError

__all__ = [
    "GLBackendError",
    "PlatformError",
    "ContextError",
    "RenderError",
    "ShaderError",
    "ResourceError",
    "ReadbackBusy",
]


class GLBackendError(StageError):
    """Base of every error of the OpenGL backend."""

    exit_code = 3


class PlatformError(GLBackendError):
    """PyOpenGL's window-system platform (EGL, GLX, ...) does not match the context kind asked for."""


class ContextError(GLBackendError):
    """A GL context or window could not be created, made current or released."""


class RenderError(GLBackendError):
    """OpenGL reported an error in a render pass.

    ``pass_name`` is the pass or stage of work (``"scene"``, ``"readback"``, ``"create"``), ``obj_label`` the
    debug label of the object being worked on, ``error`` the GL error name (``"GL_INVALID_OPERATION"``, or a
    framebuffer status such as ``"GL_FRAMEBUFFER_INCOMPLETE_ATTACHMENT"``, or ``"GL_COMPILE_STATUS"``).
    ``errors`` lists every error name drained from the GL error queue, oldest first.
    """

    def __init__(
        self, pass_name: str, obj_label: str, error: str, *, detail: str = "", errors: tuple[str, ...] = ()
    ) -> None:
        self.pass_name = pass_name
        self.obj_label = obj_label
        self.error = error
        self.errors = errors or (error,)
        self.detail = detail
        msg = f"render pass {pass_name!r}, object {obj_label!r}: {error}"
        if len(self.errors) > 1:
            msg += f" (then {', '.join(self.errors[1:])})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class ShaderError(RenderError):
    """A shader failed to compile or a program failed to link; ``log`` is the driver's info log."""

    def __init__(self, pass_name: str, obj_label: str, error: str, log: str) -> None:
        self.log = log
        super().__init__(pass_name, obj_label, error, detail=log.strip())


class ResourceError(GLBackendError):
    """A GL object was used after its release, or released where its context is not current."""


class ReadbackBusy(GLBackendError):
    """An asynchronous readback was started while every slot of its ring was still in flight."""
