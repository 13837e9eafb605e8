"""Fixtures of the OpenGL tests: one headless EGL context for the session, and a per-test guard.

The PyOpenGL platform is chosen here, when pytest imports this file (before any test module of this folder
imports OpenGL). On CI the context is Mesa llvmpipe through EGL surfaceless; no GPU or display is needed, so
no GL test may be skipped for want of one.

Every test marked ``gl`` gets :func:`_gl_guard` automatically: the session context is made current, GL's error
queue must be empty before the test, and again after it (an error the code under test left behind fails the
test even if it never called ``glGetError``), and the test must release every GL object it registered.
"""

from __future__ import annotations

import pytest

from stagectl.render.gl.platform import ensure_platform

ensure_platform("egl")  # before anything imports OpenGL.GL

from stagectl.render.gl.context import GLContext, create_context  # noqa: E402
from stagectl.render.gl.resources import drain_gl_errors  # noqa: E402


@pytest.fixture(scope="session")
def gl_context() -> GLContext:
    """The session's headless EGL context (OpenGL >= 3.3 core)."""
    ctx = create_context("egl")
    yield ctx
    ctx.release()


@pytest.fixture(autouse=True)
def _gl_guard(request: pytest.FixtureRequest):
    """For ``gl``-marked tests: fail on GL error state before or after the test, and on leaked GL objects."""
    if request.node.get_closest_marker("gl") is None:
        yield
        return
    ctx: GLContext = request.getfixturevalue("gl_context")
    ctx.make_current()
    before = drain_gl_errors()
    assert not before, f"GL error state set before the test: {before}"
    live_before = {id(o) for o in ctx.resources.live()}
    yield
    ctx.make_current()  # a test may have switched contexts
    after = drain_gl_errors()
    assert not after, f"GL error state left set by the test: {after}"
    leaked = [o for o in ctx.resources.live() if id(o) not in live_before]
    for obj in leaked:  # free them so one leak does not cascade into later tests
        obj.release()
    assert not leaked, f"GL objects not released by the test: {leaked}"


@pytest.fixture
def gl(gl_context: GLContext) -> GLContext:
    """The session context, current on this thread (guarded by :func:`_gl_guard` for ``gl``-marked tests)."""
    gl_context.make_current()
    return gl_context


@pytest.fixture
def resources(gl: GLContext):
    """The session context's resource registry."""
    return gl.resources
