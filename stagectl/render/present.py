"""Presenting output canvases on GPU outputs: one GLFW window per output, and the vsync probe.

:func:`open_window_context` creates the :class:`~stagectl.render.gl.context.GLFWContext` of a run: a hidden
root window whose context the :class:`~stagectl.render.renderer.StageRenderer` draws in (it is current on the
render thread, which GLFW wants to be the main thread), and one window per output in the same share group, so
every window context sees the canvas textures. Window modes (:data:`WINDOW_MODES`):

* ``windowed``: a resizable window of the canvas size, scaled down (aspect kept) to fit the work area of the
  first monitor, cascaded from its top-left; the canvas is drawn scaled to fit the window and centred.
* ``fullscreen``: borderless fullscreen in the monitor's current video mode (no mode switch), on the monitor
  an output is assigned (GLFW's name: exact, then case-insensitive, then a unique prefix), else on the next
  monitor in GLFW's order. A canvas that fits the mode is drawn 1:1 at the top-left (where an LED processor
  reads its raster); a larger one is scaled down to fit, top-left anchored.

:class:`WindowPresenter` shows the renderer's front canvases (the last good frame): per window a read
framebuffer of that window's context is attached to the front canvas texture and *blitted* to the window's
back buffer with ``GL_NEAREST`` (no filtering; ``GL_FRAMEBUFFER_SRGB`` off, so the 8-bit sRGB codes arrive
unchanged; GL's row 0 is the bottom in both, so the image keeps its orientation), then the window is swapped.
A canvas drawn at its own size is therefore copied pixel for pixel. A fence from the render context, waited
for in each window context, orders the render before the blit.

Swapping: with genlock ``internal`` every window swaps with interval 0 (the frame loop presents at its edges,
no swap waits); with ``vsync`` the first window swaps with interval 1 and the others with 0, the other windows
swap first, then the vsync window swaps and ``glFinish`` waits for its swap: the instant it returns (on the
frame loop's clock) is the frame's edge (:class:`stagectl.sync.frameloop.VsyncGenlock`). With vsync the
windows join swap group 1 (``GLX_NV_swap_group`` / ``WGL_NV_swap_group``) and bind swap barrier 1 where the
card has one (frame lock across machines through a sync board); without the extension the presenter says
``swap group: not available``. :meth:`WindowPresenter.probe_vsync` times a few back-to-back swaps at start-up:
only a display that paces them at the stage's period can drive the frame edges (Xvfb returns at once).

**Deep outputs.** An output whose canvas is ``rgb10_a2`` or ``rgba16`` (the stage's ``colour:`` section) asks
GLFW for a 10-bit framebuffer (``color_bits``: red/green/blue 10, alpha 2); the presenter reads back what the
driver gave (:func:`~stagectl.render.gl.context.framebuffer_color_bits`) and :meth:`WindowPresenter.describe`
says it (``10-bit asked, got 8-bit``: the blit then rounds the codes to 8 bits for that window; the canvas, the
readback and the sinks keep the full depth). :func:`window_color_bits` gives the request for a stage.

Closing a window or pressing Esc in it never stops the run: the window is closed and logged, every canvas is
still rendered and the other windows keep being presented (the vsync moves to the next open window).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stagectl.core.errors import UsageError
from stagectl.render.gl.context import GLFWContext, GLWindow, MonitorInfo, WindowSpec, select_monitor
from stagectl.render.gl.errors import ContextError
from stagectl.render.gl.platform import GL

__all__ = [
    "WINDOW_MODES",
    "fit_size",
    "placement",
    "window_specs",
    "parse_monitor_assignments",
    "open_window_context",
    "window_color_bits",
    "judge_vsync",
    "VsyncProbe",
    "WindowPresenter",
]

WINDOW_MODES = ("windowed", "fullscreen")

#: GL_TIMEOUT_IGNORED (0xFFFFFFFFFFFFFFFF); PyOpenGL 3.1's constant has another value, which glWaitSync
#: rejects
_TIMEOUT_IGNORED = 0xFFFFFFFFFFFFFFFF

#: back-to-back swaps at least this close to the stage period mean the display paces them
PROBE_TOLERANCE_NS = 1_000_000


def fit_size(canvas: tuple[int, int], area: tuple[int, int]) -> tuple[int, int]:
    """The canvas size ``(w, h)`` in pixels, scaled down with its aspect kept to fit ``area`` (never scaled
    up; each side at least 1)."""
    cw, ch = int(canvas[0]), int(canvas[1])
    aw, ah = max(1, int(area[0])), max(1, int(area[1]))
    if cw <= aw and ch <= ah:
        return cw, ch
    s = min(aw / cw, ah / ch)
    return max(1, min(aw, round(cw * s))), max(1, min(ah, round(ch * s)))


def placement(canvas: tuple[int, int], drawable: tuple[int, int], mode: str) -> tuple[int, int, int, int]:
    """Where a canvas ``(w, h)`` goes in a window's drawable ``(w, h)`` (pixels): ``(x0, y0, x1, y1)`` in GL
    window coordinates (origin bottom-left, ``x1``/``y1`` exclusive), as ``glBlitFramebuffer`` takes them.

    ``windowed``: scaled to fit (up or down, aspect kept), centred. ``fullscreen``: 1:1 at the top-left when
    it fits, else scaled down to fit, top-left anchored. Equal sizes give the identity ``(0, 0, w, h)``.
    """
    if mode not in WINDOW_MODES:
        raise ValueError(f"mode must be one of {', '.join(WINDOW_MODES)}, got {mode!r}")
    cw, ch = int(canvas[0]), int(canvas[1])
    dw, dh = int(drawable[0]), int(drawable[1])
    if mode == "fullscreen":
        w, h = fit_size((cw, ch), (dw, dh))
        return 0, dh - h, w, dh
    s = min(dw / cw, dh / ch)
    w, h = max(1, min(dw, round(cw * s))), max(1, min(dh, round(ch * s)))
    x0, y0 = (dw - w) // 2, (dh - h) // 2
    return x0, y0, x0 + w, y0 + h


def parse_monitor_assignments(items: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """``["proc/out1=HDMI-A-1", ...]`` -> ``{"proc/out1": "HDMI-A-1"}``; every key must be an output of
    ``keys``, once. Raises :class:`UsageError` with the reason."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, name = item.partition("=")
        key, name = key.strip(), name.strip()
        if not sep or not key or not name:
            example = keys[0] if keys else "proc/out1"
            raise UsageError(f"--monitor: expected OUTPUT=MONITOR (e.g. {example}=HDMI-A-1), got {item!r}")
        if key not in keys:
            raise UsageError(f"--monitor: no output {key!r}; outputs: {', '.join(keys) or 'none'}")
        if key in out:
            raise UsageError(f"--monitor: output {key!r} is assigned twice")
        out[key] = name
    return out


def window_specs(
    outputs: Sequence[tuple[str, tuple[int, int]]],
    mode: str,
    monitors: Sequence[MonitorInfo],
    assign: Mapping[str, str] | None = None,
    *,
    vsync: bool = False,
    color_bits: Mapping[str, int] | None = None,
) -> list[WindowSpec]:
    """One :class:`WindowSpec` per output ``(key, canvas size)``, in order (see the module docstring for the
    modes). ``vsync``: swap interval 1 on the first window, 0 on the others; else 0 everywhere. Raises
    :class:`UsageError` when fullscreen has no monitor for an output or two outputs want one monitor.
    ``color_bits``: output key -> bits per channel to ask for (:func:`window_color_bits`)."""
    specs = _window_specs(outputs, mode, monitors, assign, vsync=vsync)
    bits = dict(color_bits or {})
    return [dataclasses.replace(s, color_bits=bits.get(s.name)) for s in specs]


def window_color_bits(stage) -> dict[str, int]:
    """Output key -> 10 for every deep output of ``stage`` (``rgb10_a2`` / ``rgba16`` canvases)."""
    from stagectl.color.stagefile import output_colour
    from stagectl.render.canvas import canvas_layouts

    return {L.key: 10 for L in canvas_layouts(stage) if output_colour(stage, L.key).deep}


def _window_specs(
    outputs: Sequence[tuple[str, tuple[int, int]]],
    mode: str,
    monitors: Sequence[MonitorInfo],
    assign: Mapping[str, str] | None = None,
    *,
    vsync: bool = False,
) -> list[WindowSpec]:
    if mode not in WINDOW_MODES:
        raise UsageError(f"--windows: expected one of {', '.join(WINDOW_MODES)}, got {mode!r}")
    assign = dict(assign or {})
    names = [m.name for m in monitors]
    specs: list[WindowSpec] = []
    if mode == "windowed":
        if monitors:
            ax, ay, aw, ah = monitors[0].workarea
            if aw <= 0 or ah <= 0:
                (ax, ay), (aw, ah) = monitors[0].position, monitors[0].size
        else:
            ax, ay, aw, ah = 0, 0, 1920, 1080
        for i, (key, canvas) in enumerate(outputs):
            specs.append(WindowSpec(
                key, size=fit_size(canvas, (aw, ah)), position=(ax + 32 * i, ay + 32 * i),
                swap_interval=1 if vsync and i == 0 else 0, resizable=True,
            ))
        return specs
    if not monitors:
        raise UsageError("--windows fullscreen: no monitor is connected")
    chosen: dict[str, int] = {}
    try:
        for key, wanted in assign.items():
            chosen[key] = select_monitor(names, wanted)
    except ContextError as exc:
        raise UsageError(f"--monitor: {exc}") from None
    taken = set(chosen.values())
    if len(taken) != len(chosen):
        raise UsageError("--monitor: two outputs are assigned the same monitor; a fullscreen window needs a "
                         "monitor of its own")
    free = [i for i in range(len(monitors)) if i not in taken]
    for i, (key, _canvas) in enumerate(outputs):
        if key not in chosen:
            if not free:
                plural = "s" if len(monitors) != 1 else ""
                raise UsageError(
                    f"--windows fullscreen: {len(outputs)} outputs but {len(monitors)} monitor{plural} "
                    f"({', '.join(repr(n) for n in names)}); connect more, assign them with --monitor "
                    "OUTPUT=MONITOR, or use --windows windowed")
            chosen[key] = free.pop(0)
        specs.append(WindowSpec(key, size=None, monitor=names[chosen[key]], decorated=False,
                                swap_interval=1 if vsync and i == 0 else 0))
    return specs


def open_window_context(
    outputs: Sequence[tuple[str, tuple[int, int]]],
    mode: str,
    assign: Mapping[str, str] | None = None,
    *,
    vsync: bool = False,
    color_bits: Mapping[str, int] | None = None,
) -> GLFWContext:
    """The GLFW share group of a run: root context current, one window per output (:func:`window_specs`;
    ``color_bits`` from :func:`window_color_bits` asks deep outputs' windows for 10 bits). Raises
    :class:`ContextError` (no display, no OpenGL 3.3 core) or :class:`UsageError` (monitors)."""
    from stagectl.render.gl.context import create_context, list_monitors

    specs = window_specs(outputs, mode, list_monitors(), assign, vsync=vsync, color_bits=color_bits)
    ctx = create_context("glfw", windows=specs)
    assert isinstance(ctx, GLFWContext)
    return ctx


@dataclass(frozen=True)
class VsyncProbe:
    """What back-to-back swaps of the vsync window showed: ``paced`` (at the stage's period), the median
    interval (ns) and one sentence for the operator."""

    paced: bool
    median_interval_ns: float
    text: str
    short: str = ""  # a few words for status lines when not paced


def judge_vsync(intervals_ns: Sequence[int], stage_period_ns: float, refresh_hz: int,
                tolerance_ns: int = PROBE_TOLERANCE_NS) -> VsyncProbe:
    """Judge back-to-back swap intervals (ns) of a window with swap interval 1: paced at the stage period
    (within ``tolerance_ns`` on the median), paced at another refresh rate, or not paced at all
    (``refresh_hz`` 0: the display reports no refresh rate, as Xvfb)."""
    med = float(np.median(np.asarray(intervals_ns, dtype=np.float64))) if len(intervals_ns) else 0.0
    P = float(stage_period_ns)
    stage_hz = 1e9 / P
    if abs(med - P) <= tolerance_ns:
        return VsyncProbe(True, med, f"swaps wait for the vertical blank: every {med / 1e6:.3f} ms "
                                     f"({1e9 / med:.3f} Hz, the stage's {stage_hz:.3f} fps)")
    refresh_ns = 1e9 / refresh_hz if refresh_hz > 0 else 0.0
    if refresh_ns and med > 0 and abs(med - refresh_ns) <= max(tolerance_ns, 0.05 * refresh_ns):
        return VsyncProbe(False, med, f"the display refreshes every {med / 1e6:.3f} ms ({1e9 / med:.2f} Hz), "
                                      f"not at the stage's {stage_hz:.3f} fps: set the output to the stage "
                                      "rate (house sync) to genlock on vsync",
                          f"the display refreshes at {1e9 / med:.2f} Hz, not the stage's {stage_hz:.3f} fps")
    where = ("the display reports no refresh rate, as Xvfb does" if refresh_hz <= 0
             else f"the display says {refresh_hz} Hz")
    return VsyncProbe(False, med, f"no real vsync on this display: back-to-back swaps came back every "
                                  f"{med / 1e6:.2f} ms ({where}; or vsync is forced off in the driver)",
                      "no real vsync on this display")


class _Window:
    """Presenter state of one output window."""

    def __init__(self, key: str, window: GLWindow, canvas: tuple[int, int]) -> None:
        self.key = key
        self.window = window
        self.canvas = canvas
        self.fbo = 0
        self.open = True
        self.close_request: str | None = None
        self.presented = 0
        self.asked_bits = window.spec.color_bits  # None: the default (8)
        self.got_bits: tuple[int, int, int, int] | None = None  # what the driver gave (r, g, b, a)


class WindowPresenter:
    """Shows every output canvas of ``renderer`` in its window of ``ctx`` (made by :func:`open_window_context`
    for the renderer's outputs, in the renderer's order).

    ``mode``: ``windowed`` or ``fullscreen`` (placement of the canvas in the window). ``vsync``: the genlock
    source is the first open window's vsync (swap group joined where available). ``now_ns``: the frame loop's
    clock (integer ns), for the instants :meth:`present` returns. ``say``: where log lines go (one line each,
    no prefix).
    """

    def __init__(
        self,
        ctx: GLFWContext,
        renderer,
        *,
        mode: str = "windowed",
        vsync: bool = False,
        now_ns: Callable[[], int] = time.monotonic_ns,
        say: Callable[[str], None] = print,
    ) -> None:
        import glfw

        self._glfw = glfw
        self.ctx = ctx
        self.renderer = renderer
        self.mode = mode
        self.vsync = vsync
        self.now_ns = now_ns
        self.say = say
        self.frames = 0  # present() calls that swapped at least one window
        self.errors = 0  # present() calls in which a window failed (the others were still presented)
        self.swap_group = "swap group: not used (genlock internal)"
        self._group: _SwapGroup | None = None
        sizes = {L.key: tuple(L.canvas) for L in renderer.layouts}
        self.windows: list[_Window] = []
        try:
            for key, win in ctx.windows.items():
                w = _Window(key, win, sizes[key])
                win.make_current()
                w.fbo = int(GL.glGenFramebuffers(1))
                try:
                    from stagectl.render.gl.context import framebuffer_color_bits

                    w.got_bits = framebuffer_color_bits()
                except Exception:  # noqa: BLE001 - a driver that cannot say: reported as unknown
                    GL.glGetError()
                    w.got_bits = None
                GL.glDisable(GL.GL_FRAMEBUFFER_SRGB)
                GL.glDisable(GL.GL_DITHER)
                glfw.set_key_callback(win.handle, self._on_key(w))
                glfw.set_window_close_callback(win.handle, self._on_close(w))
                self.windows.append(w)
            if vsync and self.windows:
                self._group = _SwapGroup.join([w.window for w in self.windows])
                self.swap_group = self._group.text
        finally:
            ctx.make_current()

    # ------------------------------------------------------------------ events
    def _on_key(self, w: _Window):
        glfw = self._glfw

        def cb(_handle, key, _scancode, action, _mods) -> None:
            if key == glfw.KEY_ESCAPE and action == glfw.PRESS:
                w.close_request = w.close_request or "Esc pressed"
        return cb

    def _on_close(self, w: _Window):
        def cb(_handle) -> None:
            w.close_request = w.close_request or "close button"
        return cb

    def poll(self) -> None:
        """Process window events; close the windows whose close button or Esc was pressed (logged)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._glfw.GLFWError)
            self._glfw.poll_events()
        for w in self.windows:
            if w.open and w.close_request is not None:
                self._close_window(w, w.close_request)

    def _close_window(self, w: _Window, why: str) -> None:
        was_vsync = self.vsync and w is self._vsync_window()
        w.open = False
        try:
            if self._group is not None:
                self._group.leave(w.window)
            w.window.make_current()
            GL.glDeleteFramebuffers(1, [w.fbo])
            w.window.release()
        finally:
            self.ctx.make_current()
        still = [o.key for o in self.windows if o.open]
        self.say(f"output {w.key}: window closed ({why}); every canvas is still rendered"
                 + (f" and {', '.join(still)} keep{'s' if len(still) == 1 else ''} being presented" if still
                    else "; no output window is left (previews and sinks go on; Ctrl-C stops the run)"))
        nxt = self._vsync_window()
        if was_vsync and nxt is not None:
            try:
                nxt.window.make_current()
                self._glfw.swap_interval(1)
            finally:
                self.ctx.make_current()
            self.say(f"vsync now comes from the window of {nxt.key}")

    def _vsync_window(self) -> _Window | None:
        return next((w for w in self.windows if w.open), None) if self.vsync else None

    @property
    def open_windows(self) -> int:
        return sum(w.open for w in self.windows)

    # ------------------------------------------------------------------ drawing
    def _draw(self, w: _Window) -> None:
        """Blit the front canvas of ``w`` into its window's back buffer (its context current)."""
        fb = self.renderer.front_framebuffer(w.key)
        dw, dh = w.window.framebuffer_size()
        if dw <= 0 or dh <= 0:  # minimised
            return
        cw, ch = w.canvas
        x0, y0, x1, y1 = placement((cw, ch), (dw, dh), self.mode)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, w.fbo)
        # attached again every frame: the front canvas alternates, and a texture changed in another context
        # of the share group is only guaranteed visible here once it is attached (bound) again
        GL.glFramebufferTexture2D(GL.GL_READ_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D,
                                  fb.color.glo, 0)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, 0)
        GL.glDrawBuffer(GL.GL_BACK)
        if (x0, y0, x1, y1) != (0, 0, dw, dh):
            GL.glViewport(0, 0, dw, dh)
            GL.glClearColor(0.0, 0.0, 0.0, 1.0)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        GL.glBlitFramebuffer(0, 0, cw, ch, x0, y0, x1, y1, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
        err = int(GL.glGetError())
        if err != GL.GL_NO_ERROR:
            from stagectl.render.gl.errors import RenderError
            from stagectl.render.gl.resources import gl_error_name

            raise RenderError("present", w.key, gl_error_name(err))

    def present(self) -> int | None:
        """Poll events, draw every open window's front canvas and swap. Returns the instant (``now_ns``'s
        clock) the vsync window's swap came back (after ``glFinish``), or None without vsync or a window."""
        self.poll()
        live = [w for w in self.windows if w.open]
        if not live:
            return None
        vw = self._vsync_window()
        order = [w for w in live if w is not vw] + ([vw] if vw is not None else [])
        shown = None
        swapped = False
        error: Exception | None = None  # the first failure of this frame, logged below
        fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
        GL.glFlush()
        try:
            for w in order:
                try:  # one failing window never keeps the others dark
                    w.window.make_current()
                    GL.glWaitSync(fence, 0, _TIMEOUT_IGNORED)
                    self._draw(w)
                    w.window.swap_buffers()
                    w.presented += 1
                    swapped = True
                    if w is vw:
                        GL.glFinish()  # returns when the swap has happened: at the vertical blank with vsync
                        shown = self.now_ns()
                except Exception as exc:
                    error = error or exc
        finally:
            self.ctx.make_current()
            GL.glDeleteSync(fence)
        self.frames += int(swapped)
        if error is not None:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                self.say(f"presenting failed ({self.errors} frame(s) so far): {error}")
        return shown

    def read_window(self, key: str) -> np.ndarray:
        """Draw output ``key``'s front canvas into its window's back buffer and read that buffer back (before
        any swap): ``(H, W, 4)`` uint8 of the drawable size, row 0 = top. For checks; no swap."""
        w = next(o for o in self.windows if o.key == key)
        if not w.open:
            raise ContextError(f"window {key!r} is closed")
        fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
        GL.glFlush()
        try:
            w.window.make_current()
            GL.glWaitSync(fence, 0, _TIMEOUT_IGNORED)
            self._draw(w)
            dw, dh = w.window.framebuffer_size()
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
            GL.glReadBuffer(GL.GL_BACK)
            GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
            data = GL.glReadPixels(0, 0, dw, dh, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
            img = np.frombuffer(data, dtype=np.uint8).reshape(dh, dw, 4)[::-1].copy()
        finally:
            self.ctx.make_current()
            GL.glDeleteSync(fence)
        return img

    def probe_vsync(self, stage_period_ns: float, swaps: int = 8) -> VsyncProbe:
        """Swap the vsync window ``swaps`` + 1 times back to back (showing its front canvas) and judge the
        intervals with :func:`judge_vsync` against the stage period (ns)."""
        vw = self._vsync_window()
        if vw is None:
            return VsyncProbe(False, 0.0, "no output window to take vsync from")
        fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
        GL.glFlush()
        stamps = []
        try:
            vw.window.make_current()
            GL.glWaitSync(fence, 0, _TIMEOUT_IGNORED)
            for _ in range(int(swaps) + 1):
                self._draw(vw)
                vw.window.swap_buffers()
                GL.glFinish()
                stamps.append(time.monotonic_ns())
        finally:
            self.ctx.make_current()
            GL.glDeleteSync(fence)
        refresh = 0
        glfw = self._glfw
        mon = glfw.get_window_monitor(vw.window.handle) or glfw.get_primary_monitor()
        if mon:
            refresh = int(glfw.get_video_mode(mon).refresh_rate)
        return judge_vsync(np.diff(stamps).tolist(), stage_period_ns, refresh)

    # ------------------------------------------------------------------ reporting
    def describe(self) -> str:
        """For the start of a run: the windows, their sizes and where they are."""
        parts = []
        for w in self.windows:
            dw, dh = w.window.framebuffer_size()
            where = f"fullscreen on {w.window.monitor_name!r}" if w.window.fullscreen else "windowed"
            scale = "1:1" if (dw, dh) == w.canvas or (self.mode == "fullscreen" and dw >= w.canvas[0]
                                                      and dh >= w.canvas[1]) else "scaled to fit"
            depth = ""
            if w.asked_bits is not None:
                got = "an unknown depth" if w.got_bits is None else f"{min(w.got_bits[:3])}-bit"
                depth = f", {w.asked_bits}-bit framebuffer asked, got {got}"
            parts.append(f"{w.key} {w.canvas[0]} x {w.canvas[1]} -> {where} {dw} x {dh} ({scale}{depth})")
        return "; ".join(parts)

    def status(self) -> str:
        """For status lines: ``windows 2/2 open``."""
        return f"windows {self.open_windows}/{len(self.windows)} open"

    def summary(self) -> str:
        """For the end of a run: ``presented N frames on K windows (mode)``."""
        k = len(self.windows)
        closed = k - self.open_windows
        return (f"presented {self.frames} frames on {k} window{'s' if k != 1 else ''} ({self.mode}"
                + (f"; {closed} closed during the run" if closed else "") + ")")

    def close(self) -> None:
        """Leave the swap group and delete the per-window framebuffers (the windows go with the context)."""
        try:
            for w in self.windows:
                if w.open:
                    if self._group is not None:
                        self._group.leave(w.window)
                    w.window.make_current()
                    GL.glDeleteFramebuffers(1, [w.fbo])
                    w.fbo = 0
        finally:
            if self._group is not None:
                self._group.unbind()
            self.ctx.make_current()


class _SwapGroup:
    """NVIDIA swap group 1 (and swap barrier 1 where available) for the output windows, through
    ``GLX_NV_swap_group`` on X11 or ``WGL_NV_swap_group`` on Windows. ``text`` says what happened."""

    GROUP = 1
    BARRIER = 1

    def __init__(self, text: str, api: str | None = None, fns: dict | None = None, dpy=None) -> None:
        self.text = text
        self.api = api
        self.fns = fns or {}
        self.dpy = dpy
        self.barrier = False

    @classmethod
    def join(cls, windows: Sequence[GLWindow]) -> _SwapGroup:
        import glfw

        windows[0].make_current()
        wgl = sys.platform.startswith("win")
        ext = "WGL_NV_swap_group" if wgl else "GLX_NV_swap_group"
        if not glfw.extension_supported(ext):
            return cls(f"swap group: not available ({ext} is not offered by this driver)")
        try:
            return cls._join_wgl(windows) if wgl else cls._join_glx(windows)
        except Exception as exc:  # a driver that offers the extension and then fails: say so, run without
            return cls(f"swap group: not joined ({ext}: {exc})")

    @classmethod
    def _proc(cls, proto, name: str):
        import glfw

        addr = glfw.get_proc_address(name)
        if not addr:
            raise RuntimeError(f"{name} not found")
        return proto(addr)

    @classmethod
    def _join_glx(cls, windows: Sequence[GLWindow]) -> _SwapGroup:
        import glfw

        c = ctypes
        dpy = glfw.get_x11_display()
        uint_p = c.POINTER(c.c_uint)
        fns = {
            "query": cls._proc(c.CFUNCTYPE(c.c_int, c.c_void_p, c.c_int, uint_p, uint_p),
                               "glXQueryMaxSwapGroupsNV"),
            "join": cls._proc(c.CFUNCTYPE(c.c_int, c.c_void_p, c.c_ulong, c.c_uint), "glXJoinSwapGroupNV"),
            "bind": cls._proc(c.CFUNCTYPE(c.c_int, c.c_void_p, c.c_uint, c.c_uint), "glXBindSwapBarrierNV"),
        }
        x11 = c.CDLL(c.util.find_library("X11") or "libX11.so.6")
        x11.XDefaultScreen.restype = c.c_int
        x11.XDefaultScreen.argtypes = [c.c_void_p]
        groups, barriers = c.c_uint(0), c.c_uint(0)
        screen = x11.XDefaultScreen(dpy)
        if not fns["query"](dpy, screen, c.byref(groups), c.byref(barriers)) or groups.value < 1:
            return cls("swap group: not available (the card reports no swap groups)")
        sg = cls("", "glx", fns, dpy)
        for w in windows:
            if not fns["join"](dpy, sg._drawable(w), cls.GROUP):
                raise RuntimeError(f"glXJoinSwapGroupNV failed for the window of {w.name}")
        sg.barrier = barriers.value >= 1 and bool(fns["bind"](dpy, cls.GROUP, cls.BARRIER))
        plural = "s" if len(windows) != 1 else ""
        sg.text = (f"swap group {cls.GROUP}: joined by {len(windows)} window{plural}; "
                   + (f"swap barrier {cls.BARRIER} bound (frame lock across machines)" if sg.barrier
                      else "no swap barrier on this card"))
        return sg

    @classmethod
    def _join_wgl(cls, windows: Sequence[GLWindow]) -> _SwapGroup:  # pragma: no cover - Windows + NVIDIA
        import glfw

        c = ctypes
        F = c.WINFUNCTYPE  # type: ignore[attr-defined]
        user32 = c.windll.user32  # type: ignore[attr-defined]
        user32.GetDC.restype = c.c_void_p
        user32.GetDC.argtypes = [c.c_void_p]
        fns = {
            "query": cls._proc(F(c.c_int, c.c_void_p, c.POINTER(c.c_uint), c.POINTER(c.c_uint)),
                               "wglQueryMaxSwapGroupsNV"),
            "join": cls._proc(F(c.c_int, c.c_void_p, c.c_uint), "wglJoinSwapGroupNV"),
            "bind": cls._proc(F(c.c_int, c.c_uint, c.c_uint), "wglBindSwapBarrierNV"),
            "dc": lambda w: user32.GetDC(glfw.get_win32_window(w.handle)),
        }
        groups, barriers = c.c_uint(0), c.c_uint(0)
        if not fns["query"](fns["dc"](windows[0]), c.byref(groups), c.byref(barriers)) or groups.value < 1:
            return cls("swap group: not available (the card reports no swap groups)")
        sg = cls("", "wgl", fns)
        for w in windows:
            if not fns["join"](fns["dc"](w), cls.GROUP):
                raise RuntimeError(f"wglJoinSwapGroupNV failed for the window of {w.name}")
        sg.barrier = barriers.value >= 1 and bool(fns["bind"](cls.GROUP, cls.BARRIER))
        sg.text = (f"swap group {cls.GROUP}: joined by {len(windows)} windows; "
                   + (f"swap barrier {cls.BARRIER} bound" if sg.barrier else "no swap barrier on this card"))
        return sg

    def _drawable(self, w: GLWindow) -> int:
        import glfw

        return int(glfw.get_glx_window(w.handle) or glfw.get_x11_window(w.handle))

    def leave(self, w: GLWindow) -> None:
        """Take one window out of the group (group 0), before it is destroyed."""
        if self.api == "glx":
            self.fns["join"](self.dpy, self._drawable(w), 0)
        elif self.api == "wgl":  # pragma: no cover
            self.fns["join"](self.fns["dc"](w), 0)

    def unbind(self) -> None:
        if self.barrier:
            if self.api == "glx":
                self.fns["bind"](self.dpy, self.GROUP, 0)
            elif self.api == "wgl":  # pragma: no cover
                self.fns["bind"](self.GROUP, 0)
            self.barrier = False
