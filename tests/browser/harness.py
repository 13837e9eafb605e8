"""A stage running in-process for the web console's browser test and the screenshot script.

:class:`FrameDriver` plays the frame loop of ``stagectl run`` without tracking receivers: a thread that, every
``period_s``, calls ``hub.apply_pending(k)`` at the frame boundary, plans frame ``k`` with ``hub.features`` and
``hub.flags`` (FramePlanner), renders every canvas headless (StageRenderer on an EGL context of its own thread,
Mesa llvmpipe without a GPU), keeps a copy of the recent canvases per frame for the tests, publishes a status
(the contract of ``hub.publish_status``, with the camera's frustum corners on the wall) and JPEG thumbnails
(``hub.publish_previews``, cv2.imencode). The camera follows a slow sideways move so that the map and the frame
number change. :class:`RunningConsole` bundles stage, hub, driver and :class:`WebConsole` on a free loopback
port.

Without rendering: :class:`StatusFrames` only advances the hub's frames (and publishes the status a test
sets), :func:`status_console` serves it on a free loopback port. For the browser: Debian's chromium
(:data:`CHROMIUM`), the module-scoped ``browser`` fixture (Playwright; a test module imports
:func:`chromium_browser` to have it) and :func:`log_in`.

Frames and units (docs/conventions.md): stage metres, Z up, +Y toward the main wall; poses are
``(x, y, z, pan, tilt, roll)`` metres and degrees in the tracking frame (identity registration); canvases are
``(H, W, 3)`` uint8, row 0 = top, sRGB-encoded codes.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagectl.console.hub import ControlHub
from stagectl.console.web import WebConsole
from stagectl.stage import load_stage
from stagectl.stage.model import WebConsoleSettings

HERE = Path(__file__).resolve().parent
SMALL_STAGE = HERE / "data" / "small_wall.yaml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NO_CHROMIUM = "/usr/bin/chromium is missing (make test installs it as root: apt-get install chromium)"


# ---- the browser
@pytest.fixture(scope="module", name="browser")
def chromium_browser():
    """The ``browser`` fixture: headless chromium through Playwright for one test module (Playwright's
    ``expect`` waits up to 10 s). A test module imports it to have it."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
    finally:
        pw.stop()


def log_in(page, url: str, token: str, name: str) -> None:
    """Open the console at ``url`` on ``page``, log in as ``name`` with ``token`` and wait for the live
    connection."""
    page.goto(url)
    page.fill("#login-name", name)
    page.fill("#login-token", token)
    page.click("#login-submit")
    page.wait_for_selector("#conn.state-live")


# ---- a console without rendering
def status_camera(tracking: str, **kw) -> dict:
    """A camera's entry of the published status (docs/console.md "Status"): ``tracking`` and the other keys
    of a healthy 25 Hz tracker at (0, 0, 1.5) m, ``kw`` replacing any of them."""
    cam = {"tracking": tracking, "tracking_why": None, "source": "tracker", "rate_hz": 25.0, "bad": 0,
           "bad_by_reason": {}, "other_source": 0, "frozen": False, "sample_age_ms": 4.0,
           "position_m": [0.0, 0.0, 1.5], "pan_deg": 0.0, "tilt_deg": 0.0, "roll_deg": 0.0, "focal_mm": 35.0}
    cam.update(kw)
    return cam


def frame_status(frame: int, cameras: dict, **kw) -> dict:
    """The status of frame ``frame`` at 25 fps, internal genlock, nothing late or failed, with ``cameras``;
    ``kw`` adds or replaces keys (``outputs``, ``recording``, ``timecode``...)."""
    status = {"frame": frame, "timecode": f"00:00:00:{frame % 25:02d}", "fps": 25.0, "phase_error_us": 10.0,
              "late": 0, "dropped": 0, "failed": 0, "render_ms": 5.0,
              "genlock": {"source": "internal", "locked": True}, "cameras": cameras, "outputs": {},
              "cluster": None, "frame_times_ms": [5.0]}
    status.update(kw)
    return status


class StatusFrames:
    """The frame loop without rendering: a thread that every ``period_s`` takes the next frame
    (``hub.apply_pending``) and publishes :meth:`status` of it unless that is None (here always; a subclass
    says what to publish)."""

    def __init__(self, hub: ControlHub, period_s: float = 0.04) -> None:
        self.hub = hub
        self.period_s = period_s
        self.frame = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def status(self, frame: int) -> dict | None:
        """The status to publish at ``frame`` (None: none)."""
        return None

    def _run(self) -> None:
        while not self.stop.wait(self.period_s):
            self.frame += 1
            self.hub.apply_pending(self.frame)
            status = self.status(self.frame)
            if status is not None:
                self.hub.publish_status(status)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@contextlib.contextmanager
def status_console(state_dir: Path, token: str, frames: Callable[[ControlHub], StatusFrames] = StatusFrames
                   ) -> Iterator[tuple[ControlHub, StatusFrames, WebConsole, str]]:
    """A real ControlHub on :data:`SMALL_STAGE` (operator state in ``state_dir``), its ``frames(hub)`` running,
    and the real WebConsole on a free loopback port: ``(hub, frames, web, url)``; all closed on leaving."""
    hub = ControlHub(load_stage(SMALL_STAGE), state_path=Path(state_dir) / "operator.json")
    running = frames(hub)
    running.thread.start()
    web = WebConsole(hub, WebConsoleSettings("127.0.0.1", 0), token=token)
    try:
        url = web.start()
        yield hub, running, web, url
    finally:
        web.close()
        hub.close()
        running.close()


def _facets(stage) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float, float]]:
    """Every facet of every wall: top-left corner, right and down steps per pixel (stage metres), width and
    height in pixels (docs/conventions.md, "Walls, facets and the wall raster")."""
    out = []
    for w in stage.walls:
        g = w.geometry
        for f in range(g.facet_count):
            out.append((np.asarray(g.origin[f], float), np.asarray(g.right[f], float), np.asarray(g.down[f], float),
                        float(g.x1[f] - g.x0[f]), float(g.height_px)))
    return out


def frustum_corners(ip, stage, far_m: float = 8.0) -> list[list[float]]:
    """Where the inner frustum's four corner rays (NDC corners, overscan included) first meet a wall facet, or
    ``far_m`` metres along the ray where they meet none; stage metres."""
    inv = np.linalg.inv(ip.VP)
    eye = ip.pupil
    facets = _facets(stage)
    out = []
    for x, y in ((-1, 1), (1, 1), (1, -1), (-1, -1)):
        p = inv @ np.array([x, y, 1.0, 1.0])
        d = p[:3] / p[3] - eye
        d /= np.linalg.norm(d)
        best = far_m
        for o, right, down, w_px, h_px in facets:
            n = np.cross(right, down)
            den = float(n @ d)
            if abs(den) < 1e-12:
                continue
            t = float(n @ (o - eye)) / den
            if not 0.0 < t < best:
                continue
            q = eye + t * d - o
            a, b = float(q @ right) / float(right @ right), float(q @ down) / float(down @ down)
            if 0.0 <= a <= w_px and 0.0 <= b <= h_px:
                best = t
        out.append([round(float(v), 4) for v in eye + best * d])
    return out


class FrameDriver:
    """The frame loop (module docstring). ``keep``: how many recent frames' canvases are kept for
    :meth:`canvas` (0: none, no copies)."""

    def __init__(self, hub: ControlHub, *, period_s: float = 0.04, status_every: int = 5, preview_every: int = 12,
                 keep: int = 80, inner_resolution: tuple[int, int] | None = None, thumb_scale: float = 0.5,
                 move: bool = True) -> None:
        self.hub = hub
        self.stage = hub.stage
        self.period_s = period_s
        self.status_every = status_every
        self.preview_every = preview_every
        self.inner_resolution = inner_resolution
        self.thumb_scale = thumb_scale
        self.move = move
        self.frame = 0
        self.failed = 0
        self.error: BaseException | None = None
        self._canvases: collections.OrderedDict[int, dict[str, np.ndarray]] = collections.OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._times_ms: list[float] = []

    # ---- life cycle
    def start(self, timeout_s: float = 60.0) -> FrameDriver:
        self._thread = threading.Thread(target=self._run, name="frame-driver", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("frame driver: no frame within the time limit")
        if self.error is not None:
            raise RuntimeError(f"frame driver failed: {self.error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)

    # ---- queries (any thread)
    def canvas(self, frame: int, key: str) -> np.ndarray | None:
        """The ``(H, W, 3)`` canvas of output ``key`` rendered for ``frame`` (None: not kept or not rendered)."""
        with self._lock:
            c = self._canvases.get(frame)
            return None if c is None else c[key]

    def wait_frame(self, frame: int, timeout_s: float = 10.0) -> bool:
        """Wait until ``frame`` has been rendered."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self.frame < frame:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def pose(self, k: int) -> tuple[float, float, float, float, float, float]:
        """The camera's pose at frame ``k``: 1.5 m up, looking at the wall, sliding +-0.6 m sideways with a
        little pan (one cycle every 10 s at 25 fps)."""
        if not self.move:
            return (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)
        a = 2.0 * math.pi * k / 250.0
        return (0.6 * math.sin(a), 0.0, 1.5, 6.0 * math.sin(a), 1.0, 0.0)

    # ---- the loop
    def _run(self) -> None:
        from stagectl.core.timebase import Timecode
        from stagectl.render.camera import camera_state_from_pose
        from stagectl.render.gl.context import create_context
        from stagectl.render.plan import FramePlanner
        from stagectl.render.renderer import StageRenderer

        try:
            ctx = create_context("egl")
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        renderer = None
        try:
            renderer = StageRenderer(self.stage, ctx)
            planner = FramePlanner(self.stage, inner_resolution=self.inner_resolution)
            cam = self.stage.cameras[0].name
            rate = self.stage.frame_rate
            next_t = time.monotonic()
            last_status = time.monotonic()
            frames_since = 0
            while not self._stop.is_set():
                k = self.frame + 1
                t0 = time.perf_counter()
                self.hub.apply_pending(k)
                state = camera_state_from_pose(self.stage, self.pose(k), camera=cam)
                plan = planner.plan([state], self.hub.flags, k, self.hub.features)
                result = renderer.render_frame(plan)
                if not result.ok:
                    self.failed += 1
                canvases = renderer.canvases()
                copies = {key: img[..., :3].copy() for key, img in canvases.items()} if self._keep else {}
                render_ms = (time.perf_counter() - t0) * 1e3
                self._times_ms.append(render_ms)
                frames_since += 1
                with self._cv:
                    if self._keep:
                        self._canvases[k] = copies
                    while len(self._canvases) > self._keep:
                        self._canvases.popitem(last=False)
                    self.frame = k
                    self._cv.notify_all()
                self._ready.set()
                if k % self.preview_every == 0 or k == 1:
                    self.hub.publish_previews(self._thumbnails(canvases))
                if k % self.status_every == 0:
                    now = time.monotonic()
                    fps = frames_since / max(1e-6, now - last_status)
                    last_status, frames_since = now, 0
                    ip = plan.inner[0] if plan.inner else None
                    self.hub.publish_status(self._status(k, Timecode.from_frame(k, rate), fps, render_ms, ip, cam))
                next_t += self.period_s
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:  # behind: do not try to catch up
                    next_t = time.monotonic()
        except BaseException as exc:  # surfaced by start() / the tests
            self.error = exc
            self._ready.set()
        finally:
            if renderer is not None:
                renderer.release()
            ctx.release()

    def _thumbnails(self, canvases: dict[str, np.ndarray]) -> dict[str, bytes]:
        out = {}
        for key, img in canvases.items():
            h, w = img.shape[:2]
            small = cv2.resize(img[..., :3], (max(1, int(w * self.thumb_scale)), max(1, int(h * self.thumb_scale))),
                               interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            if ok:
                out[key] = buf.tobytes()
        return out

    def _status(self, k: int, tc, fps: float, render_ms: float, ip, cam: str) -> dict:
        x, y, z, pan, tilt, roll = self.pose(k)
        times, self._times_ms = self._times_ms, []
        camera = {"tracking": "live", "rate_hz": 25.0, "sample_age_ms": 4.0, "position_m": [x, y, z],
                  "pan_deg": pan, "tilt_deg": tilt, "roll_deg": roll, "focal_mm": 35.0,
                  "overscan_percent": [10.0, 10.0, 10.0, 10.0],
                  "frustum": frustum_corners(ip, self.stage) if ip is not None else None}
        return {"frame": k, "timecode": str(tc), "fps": round(fps, 2), "phase_error_us": 12.0, "late": 0,
                "dropped": 0, "failed": self.failed, "render_ms": round(render_ms, 2),
                "genlock": {"source": "internal", "locked": True}, "cameras": {cam: camera}, "cluster": None,
                "frame_times_ms": [round(t, 2) for t in times]}


class RunningConsole:
    """Stage + hub + frame driver + web console on a free loopback port (a context manager)."""

    def __init__(self, stage_path: Path, state_dir: Path, *, token: str = "test-token-123",
                 inner_resolution: tuple[int, int] | None = None, move: bool = True, keep: int = 80) -> None:
        self.stage = load_stage(stage_path)
        self.hub = ControlHub(self.stage, state_path=Path(state_dir) / "operator.json")
        self.driver = FrameDriver(self.hub, inner_resolution=inner_resolution, move=move, keep=keep)
        self.web = WebConsole(self.hub, WebConsoleSettings("127.0.0.1", 0), token=token)
        self.url = ""

    def __enter__(self) -> RunningConsole:
        self.driver.start()
        try:
            self.url = self.web.start()
        except BaseException:
            self.driver.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.web.close()
        self.hub.close()
        self.driver.stop()
