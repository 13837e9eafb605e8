"""The context factory, the PyOpenGL platform guard, the resource registry and GL error reporting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from stagectl.core.errors import StageError
from stagectl.render.gl.context import WindowSpec, create_context, select_monitor
from stagectl.render.gl.errors import ContextError, PlatformError, RenderError, ResourceError, ShaderError
from stagectl.render.gl.platform import loaded_platform, platform_for_kind
from stagectl.render.gl.resources import check_gl, gl_pass

REPO = Path(__file__).resolve().parents[2]


def _GL():
    from OpenGL import GL

    return GL


# ---- context -----------------------------------------------------------------------------------------------
@pytest.mark.gl
def test_egl_context_is_core_33_or_newer_on_the_expected_renderer(gl):
    GL = _GL()
    info = gl.info
    assert info.platform == "egl" and loaded_platform() == "egl"
    assert info.core_profile, info
    assert info.version_tuple >= (3, 3), info
    # the info is what the driver says now, not a guess
    assert info.renderer == GL.glGetString(GL.GL_RENDERER).decode()
    assert info.major == GL.glGetIntegerv(GL.GL_MAJOR_VERSION)
    assert info.minor == GL.glGetIntegerv(GL.GL_MINOR_VERSION)
    assert GL.glGetIntegerv(GL.GL_CONTEXT_PROFILE_MASK) & GL.GL_CONTEXT_CORE_PROFILE_BIT
    # CI renders on Mesa llvmpipe; a developer with a GPU names theirs in STAGECTL_GL_RENDERER
    expected = os.environ.get("STAGECTL_GL_RENDERER", "llvmpipe")
    assert expected.lower() in info.renderer.lower(), info.summary()
    assert gl.is_current()


@pytest.mark.gl
def test_second_context_shares_objects_and_its_release_leaves_the_first_working(gl):
    GL = _GL()
    tex = gl.resources.texture2d("shared.tex", 4, 4)
    try:
        other = create_context("egl", share_with=gl)
        try:
            assert other.is_current() and not gl.is_current()
            assert GL.glIsTexture(tex.glo)  # visible in the sharing context
            own = other.resources.texture2d("other.tex", 2, 2)
            assert other.resources.live() == [own]
        finally:
            other.release()  # frees "other.tex" and the context, must not terminate the shared EGL display
        assert other.released and not other.is_current()
        gl.make_current()
        assert GL.glIsTexture(tex.glo)
        assert GL.glGetString(GL.GL_RENDERER)
    finally:
        gl.make_current()
        tex.release()


@pytest.mark.gl
def test_context_manager_releases_context_and_its_objects(gl):
    GL = _GL()
    with create_context("egl") as ctx:
        fb = ctx.resources.framebuffer("cm.fb", 8, 8)
        assert ctx.is_current() and GL.glIsFramebuffer(fb.glo)
    assert ctx.released and fb.released and fb.color.released
    with pytest.raises(ContextError):
        ctx.make_current()
    gl.make_current()


def test_bad_context_requests_are_refused():
    with pytest.raises(ContextError, match="3.3"):
        create_context("egl", version=(3, 1))
    with pytest.raises(ContextError, match="unknown GL context kind"):
        create_context("osmesa")
    with pytest.raises(ContextError, match="windows need kind='glfw'"):
        create_context("egl", windows=[WindowSpec("out0")])
    assert issubclass(ContextError, StageError) and issubclass(RenderError, StageError)


def test_platform_for_kind():
    assert platform_for_kind("egl") == "egl"
    with pytest.raises(PlatformError):
        platform_for_kind("vulkan")


def test_ensure_platform_refuses_an_opengl_already_bound_to_another_platform():
    # PyOpenGL binds its platform at first import: a process that imported OpenGL.GL as GLX cannot make EGL
    # contexts any more, and must get a clear error instead of odd failures later
    script = (
        "import os; os.environ['PYOPENGL_PLATFORM'] = 'glx'\n"
        "import OpenGL.GL\n"
        "from stagectl.render.gl.context import create_context\n"
        "from stagectl.render.gl.errors import PlatformError\n"
        "try:\n"
        "    create_context('egl')\n"
        "except PlatformError as e:\n"
        "    print('PlatformError:', e)\n"
    )
    drop = ("PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    assert "PlatformError:" in out.stdout, out.stdout + out.stderr
    assert "'glx'" in out.stdout and "ensure_platform('egl')" in out.stdout


def test_importing_the_backend_does_not_import_opengl():
    script = (
        "import sys\n"
        "import stagectl.render.gl, stagectl.render.gl.resources, stagectl.render.gl.readback\n"
        "import stagectl.render.scene\n"
        "print('OpenGL.GL' in sys.modules, 'OpenGL.platform' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False False", out.stdout + out.stderr


# ---- errors ------------------------------------------------------------------------------------------------
@pytest.mark.gl
def test_gl_error_is_raised_as_render_error_naming_pass_and_object(gl):
    GL = _GL()
    with pytest.raises(RenderError) as info:
        with gl_pass("unit-pass", "bogus.texture"):
            GL.glBindTexture(GL.GL_TEXTURE_2D, 987654)  # never generated: GL_INVALID_OPERATION in core
    err = info.value
    assert (err.pass_name, err.obj_label, err.error) == ("unit-pass", "bogus.texture", "GL_INVALID_OPERATION")
    assert "unit-pass" in str(err) and "bogus.texture" in str(err) and "GL_INVALID_OPERATION" in str(err)
    assert GL.glGetError() == GL.GL_NO_ERROR  # the queue was drained


@pytest.mark.gl
def test_check_gl_raises_the_queued_error_then_is_silent(gl):
    GL = _GL()
    check_gl("quiet", "nothing")  # no error: no exception
    GL.glEnable(0xFFFF)  # GL_INVALID_ENUM
    GL.glBindTexture(GL.GL_TEXTURE_2D, 987655)  # GL_INVALID_OPERATION (Mesa keeps only the first error)
    with pytest.raises(RenderError) as info:
        check_gl("enable-pass", "state")
    assert (info.value.pass_name, info.value.obj_label, info.value.error) == (
        "enable-pass",
        "state",
        "GL_INVALID_ENUM",
    )
    assert info.value.errors[0] == "GL_INVALID_ENUM"
    check_gl("quiet-again", "nothing")  # drained


@pytest.mark.gl
def test_shader_compile_error_carries_the_log(resources):
    bad = "#version 330 core\nout vec4 o;\nvoid main() { o = vec4(undefined_name); }\n"
    good_vs = "#version 330 core\nvoid main() { gl_Position = vec4(0.0); }\n"
    with pytest.raises(ShaderError) as info:
        resources.program("broken.program", good_vs, bad)
    assert info.value.error == "GL_COMPILE_STATUS"
    assert "broken.program" in info.value.obj_label and "fragment" in info.value.obj_label
    assert "undefined_name" in info.value.log


@pytest.mark.gl
def test_gl_error_while_creating_an_object_names_it_and_registers_nothing(resources):
    GL = _GL()
    n_before = len(resources)
    too_wide = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE)) + 1
    with pytest.raises(RenderError) as info:
        resources.texture2d("too.wide", too_wide, 4)
    assert (info.value.pass_name, info.value.obj_label, info.value.error) == (
        "create",
        "too.wide",
        "GL_INVALID_VALUE",
    )
    assert len(resources) == n_before


@pytest.mark.gl
def test_incomplete_framebuffer_is_a_render_error_with_its_status(resources):
    n_before = len(resources)
    with pytest.raises(RenderError) as info:
        resources.framebuffer("empty.fb", 4, 4, color=None, depth=False)
    assert info.value.error == "GL_FRAMEBUFFER_INCOMPLETE_MISSING_ATTACHMENT"
    assert info.value.obj_label == "empty.fb"
    assert len(resources) == n_before  # nothing half-made left registered


# ---- registry ----------------------------------------------------------------------------------------------
@pytest.mark.gl
def test_objects_carry_gl_debug_labels_and_release_frees_them(gl, resources):
    GL = _GL()
    assert resources.labels_supported  # llvmpipe: GL 4.5 core, KHR_debug
    fb = resources.framebuffer("labels.fb", 16, 8, "rgba16f")
    buf = resources.buffer("labels.buf", GL.GL_ARRAY_BUFFER, np.zeros(12, np.float32))
    vao = resources.vertex_array("labels.vao")
    prog = resources.program(
        "labels.program",
        "#version 330 core\nvoid main() { gl_Position = vec4(0.0); }\n",
        "#version 330 core\nout vec4 o;\nvoid main() { o = vec4(1.0); }\n",
    )
    objs = {fb: "labels.fb", fb.color: "labels.fb.color0", fb.depth: "labels.fb.depth", buf: "labels.buf"}
    objs.update({vao: "labels.vao", prog: "labels.program"})
    for obj, label in objs.items():
        assert obj.label == label
        assert resources.object_label(obj) == label, obj
    assert resources.find("labels.buf") is buf
    fb_glo, tex_glo = fb.glo, fb.color.glo
    fb.release()  # a framebuffer made by the registry owns its attachments
    assert fb.released and fb.color.released and fb.depth.released
    assert not GL.glIsFramebuffer(fb_glo) and not GL.glIsTexture(tex_glo)
    fb.release()  # idempotent
    for obj in (buf, vao, prog):
        obj.release()
    assert all(o.released for o in objs)
    with pytest.raises(ResourceError, match="after release"):
        buf.bind()


@pytest.mark.gl
def test_release_off_the_render_thread_is_refused_and_collect_frees_scheduled_objects(gl, resources):
    GL = _GL()
    tex = resources.texture2d("thread.tex", 2, 2)
    errors: list[BaseException] = []

    def worker():
        try:
            tex.release()  # no GL context current on this thread
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)
        resources.schedule_release(tex)  # the right way from another thread

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], ResourceError), errors
    assert not tex.released and GL.glIsTexture(tex.glo)
    assert resources.collect() == 1
    assert tex.released and not GL.glIsTexture(tex.glo)


# ---- GLFW --------------------------------------------------------------------------------------------------
def test_select_monitor_matches_exact_then_folded_then_prefix():
    names = ["DP-1", "HDMI-A-1", "HDMI-A-2", "Virtual1"]
    assert select_monitor(names, "HDMI-A-2") == 2
    assert select_monitor(names, "virtual1") == 3
    assert select_monitor(names, "dp") == 0
    with pytest.raises(ContextError, match="ambiguous"):
        select_monitor(names, "HDMI")
    with pytest.raises(ContextError, match="not connected.*'DP-1'"):
        select_monitor(names, "SDI-1")


@pytest.mark.skipif(
    bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")), reason="a display is available"
)
def test_glfw_without_a_display_is_a_clear_context_error():
    with pytest.raises(ContextError, match="GLFW: glfwInit"):
        create_context("glfw", windows=[WindowSpec("out0", size=(64, 36))])


_GLFW_SCRIPT = r"""
import json
from stagectl.render.gl.platform import ensure_platform
ensure_platform("glfw")
import glfw
from stagectl.render.gl.context import WindowSpec, create_context
from OpenGL import GL
glfw.init()
monitor = glfw.get_monitor_name(glfw.get_primary_monitor()).decode()
glfw.terminate()
ctx = create_context("glfw", windows=[
    WindowSpec("out0", size=(320, 180)),
    WindowSpec("out1", size=None, monitor=monitor),
])
res = {"renderer": ctx.info.renderer, "version": [ctx.info.major, ctx.info.minor],
       "core": ctx.info.core_profile}
tex = ctx.resources.texture2d("glfw.shared", 4, 4)
for name, win in ctx.windows.items():
    win.make_current()
    assert ctx.is_current()
    res[name] = {"shared": bool(GL.glIsTexture(tex.glo)), "fb": list(win.framebuffer_size()),
                 "fullscreen": win.fullscreen}
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
    GL.glClearColor(0.0, 1.0, 0.0, 1.0)
    GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    win.swap_buffers()
    res[name]["error"] = int(GL.glGetError())
ctx.make_current()
ctx.release()
print("RESULT " + json.dumps(res))
"""


def _glfw_runner() -> list[str] | None:
    if os.environ.get("DISPLAY"):
        return []
    xvfb = shutil.which("xvfb-run")
    return [xvfb, "-a", "-s", "-screen 0 1280x720x24"] if xvfb else None


@pytest.mark.gl
@pytest.mark.skipif(
    _glfw_runner() is None,
    reason="GLFW windows need an X display: DISPLAY is unset and xvfb-run is not installed "
    "(apt-get install xvfb)",
)
def test_glfw_windows_share_objects_and_go_fullscreen_on_a_named_monitor():
    # a subprocess: PyOpenGL in this process is bound to EGL, a GLFW/X11 process binds GLX
    env = {k: v for k, v in os.environ.items() if k not in ("PYOPENGL_PLATFORM", "EGL_PLATFORM")}
    cmd = [*_glfw_runner(), sys.executable, "-c", _GLFW_SCRIPT]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=90)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout + out.stderr
    res = json.loads(lines[-1][len("RESULT ") :])
    assert res["core"] and tuple(res["version"]) >= (3, 3)
    assert res["out0"] == {"shared": True, "fb": [320, 180], "fullscreen": False, "error": 0}
    assert res["out1"]["shared"] and res["out1"]["fullscreen"] and res["out1"]["error"] == 0
    assert min(res["out1"]["fb"]) > 0
