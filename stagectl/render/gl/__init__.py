"""The OpenGL backend: one context factory, a registry of labelled GL objects, readback.

Importing this package does not import OpenGL: PyOpenGL binds to a window-system platform (EGL, GLX) at its
first import, and :func:`stagectl.render.gl.context.create_context` chooses it first
(:func:`stagectl.render.gl.platform.ensure_platform`).

Modules: ``context`` (contexts and windows), ``resources`` (textures, framebuffers, buffers, vertex arrays,
programs; ``check_gl``), ``readback`` (sync and PBO readback), ``errors`` (the exception types), ``platform``
(PyOpenGL platform choice).
"""

from stagectl.render.gl import errors as _errors
from stagectl.render.gl.context import GLContext, GLInfo, WindowSpec, create_context
from stagectl.render.gl.errors import (
    ContextError,
    GLBackendError,
    PlatformError,
    ReadbackBusy,
    RenderError,
    ResourceError,
    ShaderError,
)
from stagectl.render.gl.platform import ensure_platform

__all__ = [
    "create_context",
    "GLContext",
    "GLInfo",
    "WindowSpec",
    "ensure_platform",
]
__all__ += _errors.__all__  # every exception type
