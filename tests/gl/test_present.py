"""Output windows and the vsync genlock source.

The window tests run real GLFW windows on a real X server: the display in ``DISPLAY``, else an ``Xvfb``
started for this module (``apt-get install xvfb``). They run in subprocesses, because PyOpenGL in the pytest
process is bound to EGL and a GLFW/X11 process binds GLX. Keys and close requests reach the windows as real X
events (XTest for Esc, a ``WM_DELETE_WINDOW`` client message as a window manager sends it for the close
button).

Under Xvfb there is no vertical blank: the vsync feedback of the frame loop is tested with a software display
whose ``present`` blocks until its own tick, as a swap with interval 1 does; lock detection is tested as a
pure function of timestamps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from helpers import EXE, stage_on_free_port, three_windows_stage

from stagectl.core.errors import UsageError
from stagectl.core.timebase import Clock, FrameRate
from stagectl.render.gl.context import MonitorInfo
from stagectl.render.present import fit_size, judge_vsync, parse_monitor_assignments, placement, window_specs
from stagectl.sync.frameloop import FrameLoop, VsyncGenlock, assess_lock


# ---- placement and window specs (pure) -------------------------------------------------------------------
def test_fit_size_scales_down_with_the_aspect_and_never_up() -> None:
    assert fit_size((1920, 1080), (2560, 1440)) == (1920, 1080)
    assert fit_size((1920, 1080), (1920, 1080)) == (1920, 1080)
    assert fit_size((1920, 1080), (1280, 1024)) == (1280, 720)
    assert fit_size((3840, 1080), (1920, 1200)) == (1920, 540)
    assert fit_size((1080, 1920), (1920, 1080)) == (608, 1080)  # 1080 * 1080 / 1920 = 607.5, rounded


def test_placement_is_the_identity_at_equal_sizes_and_keeps_the_top_left_fullscreen() -> None:
    for mode in ("windowed", "fullscreen"):
        assert placement((640, 360), (640, 360), mode) == (0, 0, 640, 360)
    # fullscreen, canvas smaller than the mode: 1:1 at the top-left (GL y is up: the top rows are y 720..1080)
    assert placement((1280, 360), (1920, 1080), "fullscreen") == (0, 720, 1280, 1080)
    # fullscreen, canvas larger: scaled down, still top-left anchored
    assert placement((3840, 2160), (1920, 1200), "fullscreen") == (0, 120, 1920, 1200)
    # windowed: scaled to fit, centred (letterbox top and bottom here)
    assert placement((1920, 1080), (960, 600), "windowed") == (0, 30, 960, 570)
    assert placement((100, 100), (300, 200), "windowed") == (50, 0, 250, 200)


def _monitors(*names: str) -> list[MonitorInfo]:
    return [MonitorInfo(n, (1920 * i, 0), (1920, 1080), 60, (1920 * i, 0, 1920, 1040))
            for i, n in enumerate(names)]


def test_window_specs_windowed_fit_the_work_area_and_only_the_first_window_waits_for_vsync() -> None:
    outs = [("a/o1", (1920, 1080)), ("a/o2", (640, 360)), ("b/o3", (3840, 2160))]
    specs = window_specs(outs, "windowed", _monitors("DP-1"), vsync=True)
    assert [s.name for s in specs] == ["a/o1", "a/o2", "b/o3"]
    assert [s.size for s in specs] == [(1849, 1040), (640, 360), (1849, 1040)]
    assert all(s.monitor is None and s.resizable for s in specs)
    assert [s.swap_interval for s in specs] == [1, 0, 0]
    assert [s.swap_interval for s in window_specs(outs, "windowed", _monitors("DP-1"))] == [0, 0, 0]


def test_window_specs_fullscreen_take_named_monitors_then_the_rest_in_order() -> None:
    outs = [("a/o1", (1920, 1080)), ("a/o2", (1920, 1080)), ("b/o3", (1920, 1080))]
    mons = _monitors("DP-1", "HDMI-A-1", "HDMI-A-2")
    assign = parse_monitor_assignments(["a/o2=dp-1"], [k for k, _ in outs])
    specs = window_specs(outs, "fullscreen", mons, assign)
    assert [s.monitor for s in specs] == ["HDMI-A-1", "DP-1", "HDMI-A-2"]
    assert all(s.size is None and not s.decorated for s in specs)  # the monitor's own mode, borderless
    with pytest.raises(UsageError, match=r"3 outputs but 2 monitors \('DP-1', 'HDMI-A-1'\).*windowed"):
        window_specs(outs, "fullscreen", mons[:2])
    with pytest.raises(UsageError, match="the same monitor"):
        window_specs(outs, "fullscreen", mons, {"a/o1": "DP-1", "a/o2": "DP"})
    with pytest.raises(UsageError, match="'SDI-1' is not connected"):
        window_specs(outs, "fullscreen", mons, {"a/o1": "SDI-1"})
    with pytest.raises(UsageError, match="no output 'x/y'"):
        parse_monitor_assignments(["x/y=DP-1"], ["a/o1"])
    with pytest.raises(UsageError, match="expected OUTPUT=MONITOR"):
        parse_monitor_assignments(["a/o1"], ["a/o1"])


def test_judge_vsync_tells_a_paced_display_from_another_rate_and_from_no_vsync() -> None:
    P = FrameRate(25).period_ns
    rng = np.random.default_rng(1)
    paced = judge_vsync((P + rng.integers(-50_000, 50_000, 8)).tolist(), P, 25)
    assert paced.paced and "every 40.0" in paced.text
    sixty = judge_vsync([16_666_667] * 8, P, 60)
    assert not sixty.paced and "60.00 Hz" in sixty.text and "house sync" in sixty.text
    xvfb = judge_vsync([120_000, 110_000, 130_000, 125_000], P, 0)
    assert not xvfb.paced and "no real vsync" in xvfb.text and "Xvfb" in xvfb.text


# ---- lock detection (pure) -------------------------------------------------------------------------------
PERIOD = 40_000_000  # 25 fps


def _edges(n: int, period: float, jitter_ns: int = 0, seed: int = 0, t0: int = 10**12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = t0 + np.round(np.arange(n) * period).astype(np.int64)
    if jitter_ns:
        e += rng.integers(-jitter_ns, jitter_ns + 1, n)
    return e


def test_lock_holds_with_jitter_below_the_tolerance() -> None:
    e = _edges(100, PERIOD, jitter_ns=150_000)
    a = assess_lock(e, PERIOD, tolerance_ns=500_000)
    assert a.locked, a.reason
    assert a.edges == 25  # the last second only: (t_last - 1 s, t_last]
    assert a.missed == 0 and abs(a.measured_period_ns - PERIOD) < 30_000
    # the same edges with jitter beyond the tolerance: free-running, and the reason names the interval error
    b = assess_lock(_edges(100, PERIOD, jitter_ns=900_000, seed=3), PERIOD, tolerance_ns=500_000)
    assert not b.locked and "off the 40.000 ms period" in b.reason


def test_a_phase_step_unlocks_for_one_window_then_locks_again() -> None:
    step_at, step_ns = 50, 5_000_000
    e = _edges(150, PERIOD, jitter_ns=100_000, seed=2)
    e[step_at:] += step_ns
    states = [assess_lock(e[: i + 1], PERIOD, tolerance_ns=500_000).locked for i in range(len(e))]
    # locked before the step (from half a window of edges on), unlocked while the stepped interval is in the
    # last second, i.e. while edge 49 is: e[49] > e[i] - 1 s <=> (i - 49) * 40 ms + 5 ms < 1 s <=> i <= 73
    assert not any(states[:12]) and all(states[12:step_at])
    assert not any(states[step_at : step_at + 24])
    assert all(states[step_at + 24 :])


def test_a_display_at_a_slightly_different_rate_is_free_running() -> None:
    # 60 Hz display for a 59.94 stage: each interval is only 16.7 us off, but the phase moves 1 ms per second
    rate = FrameRate(60000, 1001)
    e = _edges(180, 1e9 / 60, jitter_ns=20_000)
    a = assess_lock(e, rate.period_ns, tolerance_ns=300_000)
    assert not a.locked and "drift" in a.reason, a
    assert a.max_interval_error_ns < 300_000 < a.max_phase_error_ns
    assert assess_lock(_edges(180, float(rate.period_ns_exact), jitter_ns=20_000), rate.period_ns,
                       tolerance_ns=300_000).locked


def test_missed_vertical_blanks_are_counted_but_stay_on_the_grid() -> None:
    e = np.delete(_edges(60, PERIOD, jitter_ns=50_000), [40, 47, 48])  # three blanks without a swap
    a = assess_lock(e, PERIOD)
    assert a.locked and a.missed == 3
    # too few edges in the window (half a second of data at most): not yet locked
    short = assess_lock(_edges(10, PERIOD), PERIOD)
    assert not short.locked and "need 13" in short.reason
    # two edges closer than a period: not a vsync of this rate
    assert not assess_lock(_edges(40, PERIOD / 2), PERIOD).locked


# ---- the vsync source in the frame loop ------------------------------------------------------------------
class _SoftwareDisplay:
    """A display refreshing every ``period_ns`` from its own epoch: ``swap()`` blocks until the next refresh
    after the call, as a swap with interval 1 plus glFinish does, and returns the refresh instant (monotonic
    ns; the stamp a driver gives a completed swap, free of this shared machine's wake-up delays)."""

    def __init__(self, period_ns: int, phase_ns: int) -> None:
        self.period = period_ns
        self.epoch = time.monotonic_ns() + phase_ns

    def swap(self, *_args) -> int:
        now = time.monotonic_ns()
        tick = self.epoch + ((now - self.epoch) // self.period + 1) * self.period
        while (left := tick - time.monotonic_ns()) > 1_500_000:
            time.sleep((left - 1_500_000) / 1e9)
        while time.monotonic_ns() < tick:
            pass
        return tick


def test_vsync_source_locks_the_loop_to_a_display_that_paces_swaps() -> None:
    rate = FrameRate(50)
    P = rate.period_ns
    display = _SoftwareDisplay(P, phase_ns=13_000_000)  # 13 ms away from where the loop would tick by itself
    src = VsyncGenlock(rate, Clock.MONOTONIC, paced=True, tolerance_ns=2_000_000)
    loop = FrameLoop(rate, genlock=src, margin_ns=3_000_000)
    c = loop.run(lambda k, e: time.sleep(0.002), display.swap, duration_ns=2_400_000_000)
    t = loop.telemetry()
    steady = slice(10, None)
    # every frame went out at a refresh of the display ...
    phase = (t["shown_ns"][steady] - display.epoch) % P
    assert np.median(np.minimum(phase, P - phase)) < 200_000
    # ... and the loop's edges moved onto the display's grid: predicted edge = the refresh it was shown at
    err = np.abs(t["shown_ns"][steady] - t["edge_ns"][steady])
    assert np.median(err) < 500_000, np.median(err)
    # the loop did not wait for the edge before presenting: the swap did (present called before the edge)
    assert np.median(t["edge_ns"][steady] - t["present_ns"][steady]) > 1_000_000
    # locked once half a second of swaps sat on the grid (a scheduler hiccup on this shared machine may unlock
    # it for a second: judged on the frames, not on the last one alone)
    locked = t["genlock_locked"]
    assert locked[:20].sum() == 0 and locked.sum() >= 20, locked
    st = loop.genlock_state()
    assert st.source == "vsync"
    if st.locked:  # else a hiccup in the last second: off the grid, or too many blanks missed
        assert st.summary().startswith("genlock vsync: locked (swaps every 20.0"), st
    assert c.frames + c.dropped >= 110  # 120 refreshes in 2.4 s: the loop ran at the display's pace


def test_vsync_source_falls_back_to_the_internal_clock_when_swaps_do_not_wait() -> None:
    rate = FrameRate(50)
    src = VsyncGenlock(rate, Clock.MONOTONIC, paced=True)
    loop = FrameLoop(rate, genlock=src)
    c = loop.run(lambda k, e: None, lambda k, e: time.monotonic_ns(), duration_ns=600_000_000)
    st = loop.genlock_state()
    assert not st.locked and src.presents_at_edge and "does not wait for vsync" in st.detail, st
    # once fallen back it presents at the edges of an exact grid: about 30 frames in 0.6 s, not hundreds
    assert 24 <= c.frames + c.dropped <= 31
    t = loop.telemetry()
    # it falls back after three early swaps in a row (a few more frames on a loaded machine, where a late call can
    # look on time); from then on every edge lies on the exact grid, up to the end of the run
    on_grid = np.diff(t["edge_ns"]) % rate.period_ns == 0
    first = int(np.flatnonzero(~on_grid)[-1]) + 1 if (~on_grid).any() else 0
    assert len(on_grid) - first >= 15, on_grid
    # a source started unpaced says why and stays on the internal grid
    idle = VsyncGenlock(rate, Clock.MONOTONIC, paced=False, why_not="no real vsync on this display")
    assert idle.state().summary() == ("genlock vsync: free-running (no real vsync on this display; edges "
                                      "from the internal clock)")


def test_internal_source_reports_itself() -> None:
    loop = FrameLoop(FrameRate(24000, 1001))
    summary = loop.genlock_state().summary()
    assert summary == "genlock internal: free-running (23.976 fps on the monotonic clock)"


# ---- real windows ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def x_display():
    """An X display: DISPLAY when set, else a private Xvfb (1920 x 1200, 24 bit) for this module."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("GLFW windows need an X display: DISPLAY is unset and Xvfb is not installed "
                    "(apt-get install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            number = f.readline().strip()
        assert number.isdigit(), "Xvfb did not report a display number"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def _env(display: str | None) -> dict[str, str]:
    drop = ("PYOPENGL_PLATFORM", "EGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if display:
        env["DISPLAY"] = display
    return env


_PRELUDE = """
import json, sys, time, ctypes, ctypes.util
import numpy as np
from stagectl.render.gl.platform import ensure_platform
ensure_platform("glfw")
import glfw
from OpenGL import GL
from stagectl.stage import load_stage
from stagectl.render.canvas import canvas_layouts
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.plan import FramePlanner
from stagectl.render.present import WindowPresenter, open_window_context, placement
from stagectl.render.renderer import StageRenderer

stage = load_stage(sys.argv[1])
outputs = [(L.key, tuple(L.canvas)) for L in canvas_layouts(stage)]
planner = FramePlanner(stage, inner_resolution=(320, 180))
def plan(k):
    pose = (0.3 * np.sin(k / 5), 0.5, 1.6, 5 + k, 2, 0)
    return planner.plan([camera_state_from_pose(stage, pose)], frame=k)
res = {}
"""

_EXACT_SCRIPT = _PRELUDE + """
# windowed: a window of each canvas size, showing the renderer's canvas pixel for pixel
ctx = open_window_context(outputs, "windowed")
renderer = StageRenderer(stage, ctx, readback="sync")
log = []
p = WindowPresenter(ctx, renderer, mode="windowed", say=log.append)
assert renderer.render_frame(plan(3)).ok
canv = renderer.canvases()
res["fb"] = {w.key: list(w.window.framebuffer_size()) for w in p.windows}
res["equal"] = {k: bool(np.array_equal(p.read_window(k), canv[k])) for k, _ in outputs}
res["varied"] = {k: int(len(np.unique(canv[k].reshape(-1, 4), axis=0))) for k, _ in outputs}
# every 8-bit code through the path unchanged: random codes in the front canvas texture of pa/o1
rng = np.random.default_rng(7)
noise = rng.integers(0, 256, (192, 200, 4), dtype=np.uint8)
noise[..., 3] = 255
renderer.front_framebuffer("pa/o1").color.upload(noise)
got = p.read_window("pa/o1")
res["noise_equal"] = bool(np.array_equal(got, noise))
res["noise_max_diff"] = int(np.abs(got.astype(int) - noise).max())
# a resized window: the canvas scaled to fit with nearest sampling (no new colours: no filtering)
win = p.windows[0].window
glfw.set_window_size(win.handle, 130, 100)
for _ in range(50):
    glfw.poll_events()
    if win.framebuffer_size() == (130, 100):
        break
    time.sleep(0.02)
small = p.read_window("pa/o1")
dw, dh = win.framebuffer_size()
x0, y0, x1, y1 = placement((200, 192), (dw, dh), "windowed")
top = dh - y1  # rows above the canvas (row 0 = top)
inner = small[top:top + (y1 - y0), x0:x1]
w, h = x1 - x0, y1 - y0
ix = ((2 * np.arange(w) + 1) * 200) // (2 * w)
iy = ((2 * np.arange(h) + 1) * 192) // (2 * h)
ref = noise[iy][:, ix]
res["scaled"] = {"fb": [dw, dh], "rect": [x0, y0, x1, y1], "match": float((inner == ref).all(axis=2).mean())}
near = np.zeros(inner.shape[:2], bool)
for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
        near |= (inner == noise[np.clip(iy + dy, 0, 191)][:, np.clip(ix + dx, 0, 199)]).all(axis=2)
res["scaled"]["nearest_or_neighbour"] = bool(near.all())
res["scaled"]["black_border"] = bool((small[:, :x0, :3] == 0).all() and (small[:, x1:, :3] == 0).all())
p.close(); renderer.release(); ctx.release()

# fullscreen, one output: borderless in the monitor's mode, the canvas 1:1 at the top-left, black elsewhere
one = [outputs[0]]
ctx = open_window_context(one, "fullscreen")
renderer = StageRenderer(stage, ctx, readback="sync")
p = WindowPresenter(ctx, renderer, mode="fullscreen", say=log.append)
assert renderer.render_frame(plan(5)).ok
img = p.read_window("pa/o1")
c = renderer.canvases()["pa/o1"]
res["fullscreen"] = {"fb": list(img.shape[1::-1]), "monitor": p.windows[0].window.monitor_name,
                     "corner_equal": bool(np.array_equal(img[:192, :200], c)),
                     "rest_black": bool((img[192:, :, :3] == 0).all() and (img[:, 200:, :3] == 0).all())}
p.close(); renderer.release(); ctx.release()
print("RESULT " + json.dumps(res))
"""

_CLOSE_SCRIPT = _PRELUDE + """
from stagectl.sync.frameloop import FrameLoop

ctx = open_window_context(outputs, "windowed", vsync=True)
renderer = StageRenderer(stage, ctx, readback="none")
log = []
p = WindowPresenter(ctx, renderer, mode="windowed", vsync=True, say=log.append)
x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
xtst = ctypes.CDLL(ctypes.util.find_library("Xtst"))
x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
x11.XInternAtom.restype = ctypes.c_ulong
x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
x11.XFlush.argtypes = [ctypes.c_void_p]
x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
dpy = x11.XOpenDisplay(None)

def press_escape(win):
    glfw.focus_window(win.handle)
    glfw.poll_events()
    time.sleep(0.05)
    code = x11.XKeysymToKeycode(dpy, 0xFF1B)  # XK_Escape
    xtst.XTestFakeKeyEvent(dpy, code, 1, 0)
    xtst.XTestFakeKeyEvent(dpy, code, 0, 0)
    x11.XSync(dpy, 0)

class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("l", ctypes.c_long * 5), ("pad", ctypes.c_long * 12)]

def close_button(win):  # what a window manager sends when the close button is clicked
    xid = glfw.get_x11_window(win.handle)
    ev = ClientMessage(type=33, send_event=1, window=xid, format=32,
                       message_type=x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0))
    ev.l[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
    x11.XSendEvent(dpy, xid, 0, 0, ctypes.byref(ev))
    x11.XSync(dpy, 0)

frames = {}
wins = {w.key: w.window for w in p.windows}

def latch(k, edge):
    assert renderer.render_frame(plan(k)).ok

def present(k, edge):
    n = len(frames)
    frames[k] = {w.key: w.presented for w in p.windows}
    if n == 8:
        press_escape(wins["pa/o1"])
    if n == 16:
        close_button(wins["pa/o2"])
    return p.present()

loop = FrameLoop(stage.frame_rate)
c = loop.run(latch, present, duration_ns=2_400_000_000)
res["frames"] = c.frames
res["errors"] = c.latch_errors
res["last_error"] = repr(loop.last_error)
res["open"] = {w.key: w.open for w in p.windows}
res["presented"] = {w.key: w.presented for w in p.windows}
res["log"] = log
res["present_calls"] = p.frames
p.close(); renderer.release(); ctx.release()
print("RESULT " + json.dumps(res))
"""


def _run_script(script: str, stage: Path, display: str, timeout: float = 150) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(stage)], capture_output=True, text=True,
                         env=_env(display), cwd=REPO, timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def _small_stage(tmp_path: Path) -> Path:
    p = tmp_path / "windows.yaml"
    p.write_text(three_windows_stage("Window test"))
    return p


@pytest.mark.gl
def test_each_output_window_shows_its_canvas_exactly(tmp_path: Path, x_display: str) -> None:
    res = _run_script(_EXACT_SCRIPT, _small_stage(tmp_path), x_display)
    # one window per output at the canvas size (it fits the screen), showing the canvas pixel for pixel
    assert res["fb"] == {"pa/o1": [200, 192], "pa/o2": [192, 160], "pb/o3": [160, 200]}
    assert res["equal"] == {"pa/o1": True, "pa/o2": True, "pb/o3": True}
    assert min(res["varied"].values()) > 20  # real rendered content, not a blank canvas
    assert res["noise_equal"], res["noise_max_diff"]  # every 8-bit code arrives unchanged
    s = res["scaled"]
    assert s["fb"] == [130, 100] and s["rect"] == [13, 0, 117, 100]  # 200 x 192 fit into 130 x 100, centred
    # nearest sampling: every pixel is one source texel (the one under its centre, or its neighbour where the
    # centre falls within rounding of a texel edge), never a blend
    assert s["nearest_or_neighbour"] and s["match"] > 0.9 and s["black_border"], s
    fs = res["fullscreen"]
    assert fs["fb"] == [1920, 1200] or os.environ.get("DISPLAY"), fs
    assert fs["corner_equal"] and fs["rest_black"], fs


_WORKER_SCRIPT = _PRELUDE + """
# a grade change compiled on the worker's hidden window context, drawn by the windows' share group
import threading
from stagectl.core.features import ColorCorrection, FeatureState
from stagectl.render.gl.platform import GL as LGL
ctx = open_window_context(outputs, "windowed")
links = {}
real = LGL.glLinkProgram
def counted(*a):
    name = "main" if threading.current_thread() is threading.main_thread() else threading.current_thread().name
    links[name] = links.get(name, 0) + 1
    return real(*a)
LGL.glLinkProgram = counted
renderer = StageRenderer(stage, ctx, readback="sync", compile_worker=True)
cams = [camera_state_from_pose(stage, (0.0, 0.5, 1.6, 5, 2, 0))]
def frame(k, sat):
    fs = FeatureState(wall_color={"wall": ColorCorrection(saturation=sat, slope=(1.1, 1.0, 0.9))})
    r = renderer.render_frame(planner.plan(cams, frame=k, features=fs))
    assert r.ok, r.error
    return {key: a.copy() for key, a in renderer.canvases().items()}
old = frame(1, 1.3)
links.clear()
k, shown = 2, None
end = time.monotonic() + 60
while time.monotonic() < end:
    got = frame(k, 0.5)
    if any(not np.array_equal(got[key], old[key]) for key in got):
        shown = k
        break
    k += 1
    time.sleep(0.005)
res["shown"] = shown
res["links"] = links
res["status"] = renderer.program_status()
res["current"] = ctx.is_current()
renderer.release(); ctx.release()
print("RESULT " + json.dumps(res))
"""


@pytest.mark.gl
def test_a_grade_change_compiles_on_a_hidden_window_of_the_share_group(tmp_path: Path, x_display: str) -> None:
    res = _run_script(_WORKER_SCRIPT, _small_stage(tmp_path), x_display)
    assert res["shown"] is not None and res["shown"] > 2, res  # not in the frame of the change: later
    assert res["links"].get("main", 0) == 0 and res["links"].get("stagectl-programs", 0) >= 1, res["links"]
    assert res["status"]["worker"] == "on" and res["status"]["pending"] is None and res["current"], res


@pytest.mark.gl
def test_esc_and_the_close_button_close_one_window_each_and_the_loop_goes_on(tmp_path: Path,
                                                                              x_display: str) -> None:
    res = _run_script(_CLOSE_SCRIPT, _small_stage(tmp_path), x_display)
    assert res["errors"] == 0, res["last_error"]
    assert res["open"] == {"pa/o1": False, "pa/o2": False, "pb/o3": True}
    assert res["log"] == [
        "output pa/o1: window closed (Esc pressed); every canvas is still rendered and pa/o2, pb/o3 keep "
        "being presented",
        "vsync now comes from the window of pa/o2",
        "output pa/o2: window closed (close button); every canvas is still rendered and pb/o3 keeps being "
        "presented",
        "vsync now comes from the window of pb/o3",
    ]
    # the loop ran on for the whole duration and kept presenting the window left open
    assert res["frames"] >= 22
    assert res["present_calls"] == res["frames"]
    assert res["presented"]["pb/o3"] == res["frames"]
    assert 8 <= res["presented"]["pa/o1"] < 16 <= res["presented"]["pa/o2"] < res["frames"] - 5


@pytest.mark.gl
def test_stagectl_run_presents_on_windows(tmp_path: Path, x_display: str) -> None:
    stage = stage_on_free_port(tmp_path, "flat_wall.yaml")
    proc = subprocess.run([EXE, "run", str(stage), "--windows", "windowed", "--duration", "2", "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, env=_env(x_display),
                          timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "stagectl run: windows (windowed): proc/out1 1920 x 1080 -> windowed 1920 x 1080 (1:1)" in out, out
    m = re.search(r"duration reached after (\d+) frames \(\d+ late, (\d+) dropped\).* presented (\d+) frames "
                  r"on (\d+) windows? \(windowed\); genlock internal: free-running", out)
    assert m, out
    frames, dropped, presented, windows = map(int, m.groups())
    # every frame the loop made was presented; the 50 edges of 2 s at 25 fps were each a frame or a counted
    # drop (llvmpipe on a shared 2-core machine renders a 1920 x 1080 canvas in 30-100 ms, more when loaded);
    # the duration is noticed after the frame in flight, whose overrun edges are counted drops too: a few more
    # than 50, never the ~100 of edges counted twice
    assert windows == 1 and presented == frames >= 5 and 45 <= frames + dropped <= 60, out
    status = [line for line in out.splitlines() if line.startswith("[00:00:")]
    assert status and status[-1].endswith("| genlock internal: free-running (25 fps on the monotonic clock), "
                                          "windows 1/1 open"), status
    assert (tmp_path / "run" / "preview_proc_out1.png").exists()

    # genlock vsync on a display without a vertical blank: said plainly, edges stay on the internal clock
    proc = subprocess.run([EXE, "run", str(stage), "--windows", "--genlock", "vsync", "--duration", "1.5",
                           "--preview-every", "0"], capture_output=True, text=True, env=_env(x_display),
                          timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    if not os.environ.get("DISPLAY"):  # our own Xvfb: no vertical blank
        assert "stagectl run: vsync: no real vsync on this display" in out, out
        assert ("genlock vsync: free-running (no real vsync on this display; edges from the internal clock)"
                in out)
    assert "swap group: " in out
    m = re.search(r"presented (\d+) frames on 1 window \(windowed\)", out)
    assert m and int(m.group(1)) >= 5, out


def test_windows_without_a_display_is_a_clear_error(tmp_path: Path) -> None:
    stage = stage_on_free_port(tmp_path, "flat_wall.yaml")
    t0 = time.monotonic()
    proc = subprocess.run([EXE, "run", str(stage), "--windows"], capture_output=True, text=True,
                          env=_env(None), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "stagectl run: error: --windows needs a display (DISPLAY is not set); run headless without --windows"]
    assert time.monotonic() - t0 < 20  # refused before any kernel or window work
    proc = subprocess.run([EXE, "run", str(stage), "--genlock", "vsync"], capture_output=True, text=True,
                          env=_env(None), timeout=60)
    assert proc.returncode == 2 and "--genlock vsync needs --windows" in proc.stderr


@pytest.mark.gl
def test_sigterm_stops_a_windowed_run(tmp_path: Path, x_display: str) -> None:
    stage = stage_on_free_port(tmp_path, "flat_wall.yaml")
    cmd = [EXE, "run", str(stage), "--windows", "--genlock", "vsync", "--preview-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(x_display))
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(ln.startswith("[00:00:") for ln in lines):
            time.sleep(0.05)
        assert any(ln.startswith("[00:00:") for ln in lines), "".join(lines)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        # a run without --duration only ends on the signal: ending within the wait proves SIGTERM is obeyed; the
        # bound is generous for a loaded 2-core machine (how fast it stops is the loop's business, not a test's)
        assert time.monotonic() - t0 < 5.0
        reader.join(5)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        assert "stopped by SIGTERM" in "".join(lines) and "on 1 window" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()

