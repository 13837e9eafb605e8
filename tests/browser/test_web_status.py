"""The web console shows status honestly, in a real browser (Debian's chromium driven by Playwright): lost
tracking in red with the stage's reason and the bad-packet count, stale in amber, a frozen camera and a frozen
output as frozen, a preview that stopped updating as frozen, and every live value greyed out when no status
comes or the connection drops.

A real ControlHub on the small test stage and the real WebConsole on a free loopback port; the test publishes
the status itself (the contract of ``hub.publish_status``, docs/console.md "Status") from a thread that also
advances the hub's frames, so each case is exactly the status the page is given. Nothing is rendered.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from harness import (
    CHROMIUM,
    NO_CHROMIUM,
    StatusFrames,
    chromium_browser,  # noqa: F401 - the browser fixture
    frame_status,
    log_in,
    status_camera,
    status_console,
)

TOKEN = "status-test-token-0123456789"
KEY = "proc/out1"

pytestmark = [
    pytest.mark.net, pytest.mark.slow, pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
]


class Publisher(StatusFrames):
    """Every 40 ms: the next frame (``hub.apply_pending``) and, unless paused, ``status`` with that frame."""

    def __init__(self, hub) -> None:
        super().__init__(hub, period_s=0.04)
        self.cameras = {"cam": status_camera("live")}
        self.outputs = {KEY: {"black": False, "frozen": None}}
        self.paused = False

    def status(self, frame: int) -> dict | None:
        if self.paused:
            return None
        return frame_status(frame, dict(self.cameras), outputs=dict(self.outputs))


@pytest.fixture
def stage_console(tmp_path):
    with status_console(tmp_path, TOKEN, Publisher) as running:
        yield running


def _page(browser, url: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    log_in(page, url, TOKEN, "ann")
    page.wait_for_function("() => document.body.dataset.live === 'true'")
    return ctx, page


def _colour(page, selector: str) -> tuple[int, int, int]:
    # the page rebuilds its rows on every status: an element caught just as it is replaced is detached and has no
    # computed style (""), so wait for an attached one
    handle = page.wait_for_function(
        """sel => { const e = document.querySelector(sel);
                    const c = e && e.isConnected ? getComputedStyle(e).color : "";
                    return c.includes("(") ? c : null; }""", arg=selector, timeout=10_000)
    rgb = handle.json_value()
    return tuple(int(float(v)) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])


def test_lost_stale_and_frozen_show_as_such(browser, stage_console) -> None:
    from playwright.sync_api import expect

    hub, pub, web, url = stage_console
    ctx, page = _page(browser, url)
    try:
        badge = page.locator("[data-test=camera-tracking-cam]")
        expect(badge).to_have_text("live")
        expect(page.locator("[data-test=camera-bad-cam]")).to_have_text("0")
        # lost: red, with the reason the stage gives and the bad packets so far
        why = "no packets arriving: the last one from 10.0.0.9:4000 came 3.2 s ago"
        pub.cameras = {"cam": status_camera("lost", tracking_why=why, rate_hz=0.0, bad=7,
                                            bad_by_reason={"checksum": 7}, other_source=3)}
        expect(badge).to_have_text("lost")
        expect(badge).to_have_class("badge state-lost")
        r, g, b = _colour(page, "[data-test=camera-tracking-cam]")
        assert r > 200 and g < 120 and b < 120, (r, g, b)  # red
        expect(page.locator("[data-test=camera-why-cam]")).to_have_text(why)
        bad = page.locator("[data-test=camera-bad-cam]")
        expect(bad).to_have_text("7")
        expect(bad).to_have_class("num bad")
        assert bad.get_attribute("title") == "bad packets: checksum 7; 3 from other cameras"
        # stale: amber, not red
        pub.cameras = {"cam": status_camera("stale", tracking_why="packets arrive from other cameras only: FreeD "
                                            "camera ID 2 (listening for 1 and 0xFF)")}
        expect(badge).to_have_class("badge state-stale")
        expect(page.locator("[data-test=camera-why-cam]")).to_contain_text("other cameras only")
        # a frozen camera, and the output showing it
        pub.cameras = {"cam": status_camera("live", frozen=True)}
        pub.outputs = {KEY: {"black": False, "frozen": "camera cam frozen"}}
        expect(page.locator("[data-test=camera-frozen-cam]")).to_have_text("frozen")
        expect(page.locator("[data-test=camera-why-cam]")).to_have_count(0)
        note = page.locator("[data-test=preview-frozen-proc_out1]")
        expect(note).to_have_text("FROZEN: camera cam frozen")
        expect(page.locator("#fig-proc_out1")).to_have_attribute("data-frozen", "true")
        pub.cameras = {"cam": status_camera("live")}
        pub.outputs = {KEY: {"black": False, "frozen": None}}
        expect(page.locator("[data-test=camera-frozen-cam]")).to_have_count(0)
        expect(note).to_be_hidden()
        expect(page.locator("#fig-proc_out1")).to_have_attribute("data-frozen", "false")
        # a preview that stops updating while the frames go on is frozen too (3 s of frames behind)
        ok, jpeg = cv2.imencode(".jpg", np.full((32, 64, 3), 128, np.uint8))
        hub.publish_previews({KEY: jpeg.tobytes()})
        seen = pub.frame
        page.wait_for_function("() => !!document.querySelector('#preview-proc_out1').dataset.frame")
        expect(note).to_have_text(f"FROZEN: preview not updated since frame {seen}", timeout=15_000)
    finally:
        ctx.close()


def test_every_live_value_greys_out_without_status_or_connection(browser, stage_console) -> None:
    from playwright.sync_api import expect

    hub, pub, web, url = stage_console
    ctx, page = _page(browser, url)
    try:
        live = ["#st-frame", "#cameras-table", "#genlock", "#cluster", "#frame-graph", "#map", "#previews"]

        def looks(selector: str) -> tuple[float, str]:
            return page.eval_on_selector(selector, "e => [Number(getComputedStyle(e).opacity), "
                                                   "getComputedStyle(e).filter]")

        def offline(conn: str, note: str) -> None:
            """Not live: ``conn`` in the bar, ``note`` in the offline note, every live value greyed out."""
            page.wait_for_function("() => document.body.dataset.live === 'false'", timeout=10_000)
            expect(page.locator("#conn")).to_have_text(conn)
            expect(page.locator("[data-test=offline-note]")).to_contain_text(note)
            for sel in live:
                opacity, filt = looks(sel)
                assert opacity < 0.5 and filt == "grayscale(1)", (sel, opacity, filt)

        for sel in live:
            assert looks(sel) == [1.0, "none"], sel
        expect(page.locator("[data-test=offline-note]")).to_be_hidden()
        # the stage stops sending status (the connection stays up): grey, and the bar says so
        pub.paused = True
        offline("no status", "no status from the stage since")
        # status again: live again
        pub.paused = False
        page.wait_for_function("() => document.body.dataset.live === 'true'")
        expect(page.locator("#conn")).to_have_text("live")
        assert looks("#cameras-table") == [1.0, "none"]
        # the connection drops: grey at once, and the bar says when
        web.close()
        offline("disconnected", "connection lost at")
    finally:
        ctx.close()
