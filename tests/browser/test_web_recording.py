"""The web console shows the take being recorded: the REC badge and the slate line (scene, take, roll, camera,
elapsed time, TC in and now, frames) from the status's ``recording`` (the dict ``stagectl run`` publishes,
stagectl.runtime.status.recording_status; tests/net/test_slated_takes.py checks it from a real run), in a real
browser. A real ControlHub and WebConsole; the test publishes the status itself, as tests/browser/
test_web_status.py does."""

from __future__ import annotations

import pytest
from harness import (
    CHROMIUM,
    NO_CHROMIUM,
    StatusFrames,
    chromium_browser,  # noqa: F401 - the browser fixture
    frame_status,
    status_camera,
    status_console,
)
from test_web_status import TOKEN, _page

pytestmark = [
    pytest.mark.net, pytest.mark.slow, pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
]

RECORDING = {"rec": True, "path": "/stages/takes/2026-11-25/12A_T03_A001.stgtake",
             "slate": {"scene": "12A", "take": 3, "roll": "A001", "camera": "A"}, "elapsed_s": 75.4,
             "frames": 1885, "timecode_in": "10:00:00:00", "timecode": "10:01:15:09", "follow": None}


class _Publisher(StatusFrames):
    """Every 40 ms: the next frame and a status with ``recording``."""

    def __init__(self, hub) -> None:
        super().__init__(hub, period_s=0.04)
        self.recording: dict = {"rec": False, "follow": None}

    def status(self, frame: int) -> dict:
        return frame_status(frame, {"cam": status_camera("live")}, timecode="00:00:00:00",
                            recording=dict(self.recording))


def test_rec_badge_and_slate_line_follow_the_status(browser, tmp_path) -> None:
    from playwright.sync_api import expect

    with status_console(tmp_path, TOKEN, _Publisher) as (_hub, pub, _web, url):
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
