"""The web console shows the take being recorded: the REC badge and the slate line (scene, take, roll, camera,
elapsed time, TC in and now, frames) from the status's ``recording`` (the dict ``stagectl run`` publishes,
stagectl.runtime.status.recording_status; tests/net/test_slated_takes.py checks it from a real run), in a real
browser. A real ControlHub and WebConsole; the test publishes the status itself, as tests/browser/
test_web_status.py does."""

from __future__ import annotations

import threading

import pytest
from harness import SMALL_STAGE
from test_web_status import CHROMIUM, TOKEN, _camera, _page, browser  # noqa: F401 - the browser fixture

from stagectl.console.hub import ControlHub
from stagectl.console.web import WebConsole
from stagectl.stage import load_stage
from stagectl.stage.model import WebConsoleSettings

pytestmark = [
    pytest.mark.net, pytest.mark.slow, pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing"),
]

RECORDING = {"rec": True, "path": "/stages/takes/2026-11-25/12A_T03_A001.stgtake",
             "slate": {"scene": "12A", "take": 3, "roll": "A001", "camera": "A"}, "elapsed_s": 75.4,
             "frames": 1885, "timecode_in": "10:00:00:00", "timecode": "10:01:15:09", "follow": None}


class _Publisher:
    def __init__(self, hub: ControlHub) -> None:
        self.hub = hub
        self.frame = 0
        self.recording: dict = {"rec": False, "follow": None}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.04):
            self.frame += 1
            self.hub.apply_pending(self.frame)
            self.hub.publish_status({
                "frame": self.frame, "timecode": "00:00:00:00", "fps": 25.0, "phase_error_us": 10.0, "late": 0,
                "dropped": 0, "failed": 0, "render_ms": 5.0, "genlock": {"source": "internal", "locked": True},
                "cameras": {"cam": _camera("live")}, "outputs": {}, "cluster": None, "frame_times_ms": [5.0],
                "recording": dict(self.recording)})


def test_rec_badge_and_slate_line_follow_the_status(browser, tmp_path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    hub = ControlHub(load_stage(SMALL_STAGE), state_path=tmp_path / "operator.json")
    pub = _Publisher(hub)
    pub.thread.start()
    web = WebConsole(hub, WebConsoleSettings("127.0.0.1", 0), token=TOKEN)
    url = web.start()
    ctx, page = _page(browser, url)
    try:
        badge = page.locator("[data-test=banner-record]")
        line = page.locator("[data-test=rec-slate]")
        expect(badge).to_be_hidden()
        expect(line).to_be_hidden()
        pub.recording = dict(RECORDING)
        expect(badge).to_be_visible()
        expect(badge).to_have_text("● REC")
        expect(line).to_have_text("12A T03 · roll A001 · cam A · 00:01:15 · TC 10:00:00:00–10:01:15:09 · 1885 frames")
        assert line.get_attribute("title") == RECORDING["path"]
        pub.recording = {"rec": False, "follow": "tracker-otio"}
        expect(badge).to_be_hidden()
        expect(line).to_have_text("takes follow tracker-otio")
        pub.recording = {"rec": False, "follow": None}
        expect(line).to_be_hidden()
    finally:
        ctx.close()
        web.close()
        hub.close()
        pub.stop.set()
        pub.thread.join(5)
