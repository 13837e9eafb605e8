"""The web console in a real browser (Debian's chromium driven by Playwright) against a real stage.

The stage runs in-process (tests/browser/harness.py): a real ControlHub, a frame-driver thread that applies
commands at frame boundaries and renders the canvases headless with EGL (Mesa llvmpipe), and the WebConsole on
a free loopback port. Everything the page does goes through the real server, WebSocket and hub; what the page
changed is checked on the canvases the renderer read back for the very frame the ack names, and in the JPEG
preview the server hands out. Expected card colours are the 8-bit codes of the colour picker: the page turns
them into linear light (sRGB decode), the renderer encodes them back, so a correct round trip gives the picked
codes again (within one code).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from harness import (
    CHROMIUM,
    NO_CHROMIUM,
    SMALL_STAGE,
    RunningConsole,
    chromium_browser,  # noqa: F401 - the browser fixture
    log_in,
)

KEY = "proc/out1"
TOKEN = "browser-test-token-0123456789"

pytestmark = [
    pytest.mark.gl, pytest.mark.net, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
]


# ---- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def console(tmp_path_factory):
    with RunningConsole(SMALL_STAGE, tmp_path_factory.mktemp("console"), token=TOKEN) as rc:
        yield rc


def login(browser, console, name: str = "ann", viewport=(1280, 800)):
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = ctx.new_page()
    log_in(page, console.url, console.web.token, name)
    page.wait_for_function("() => document.querySelector('#st-frame').textContent !== '–'")
    return ctx, page


@pytest.fixture
def page(browser, console):
    ctx, page = login(browser, console)
    yield page
    ctx.close()


def act(page, selector: str) -> dict:
    """Click ``selector`` and wait for the acknowledgement it causes; returns the ack line's state."""
    n = page.locator("#ack-history li").count()
    page.click(selector)
    page.wait_for_function("n => document.querySelectorAll('#ack-history li').length > n", arg=n)
    return page.evaluate("() => { const a = document.getElementById('ack');"
                         " return {state: a.dataset.state, frame: a.dataset.frame, command: a.dataset.command,"
                         " text: a.textContent}; }")


def rect_px(rect_uv, raster, inset: int = 3) -> tuple[slice, slice]:
    """Rows and columns strictly inside a wall-UV rectangle (pixel centres inside, ``inset`` px from its edge).
    The small stage maps its wall raster 1:1 onto the canvas at (0, 0)."""
    W, H = raster
    u0, v0, u1, v1 = rect_uv
    return (slice(int(np.ceil(v0 * H - 0.5)) + inset, int(np.floor(v1 * H - 0.5)) - inset + 1),
            slice(int(np.ceil(u0 * W - 0.5)) + inset, int(np.floor(u1 * W - 0.5)) - inset + 1))


def canvas_at(console, frame: int) -> np.ndarray:
    assert console.driver.wait_frame(frame + 1, 10.0), f"frame {frame + 1} was not rendered"
    img = console.driver.canvas(frame, KEY)
    assert img is not None, f"frame {frame} is no longer kept"
    return img.astype(int)


# ---- tests ------------------------------------------------------------------------------------------------------
def test_wrong_token_is_refused_and_the_api_needs_a_login(browser, console) -> None:
    ctx = browser.new_context()
    try:
        for path in ("api/snapshot", "ws", "preview/proc_out1.jpg"):
            assert ctx.request.get(console.url + path).status == 401, path
        page = ctx.new_page()
        page.goto(console.url)
        refused = console.web.counters["login_refused"]
        page.fill("#login-name", "mallory")
        page.fill("#login-token", "not-the-token")
        with page.expect_response(lambda r: r.url.endswith("/login")) as resp:
            page.click("#login-submit")
        assert resp.value.status == 401
        from playwright.sync_api import expect

        expect(page.locator("#login-error")).to_contain_text("wrong token")
        assert page.locator("#map").count() == 0, "the console is not shown without a login"
        assert console.web.counters["login_refused"] == refused + 1
        assert ctx.request.get(console.url + "api/snapshot").status == 401
        assert not any(r["who"] == "web:mallory" for r in console.hub.log)
    finally:
        ctx.close()


def test_live_status_and_the_stage_map(page, console) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#stage-name")).to_have_text("Small wall")
    expect(page.locator("#operator")).to_have_text("ann")
    f1 = int(page.text_content("#st-frame"))
    page.wait_for_function("f => +document.querySelector('#st-frame').textContent > f + 5", arg=f1)
    f2 = int(page.text_content("#st-frame"))
    assert f1 < f2 <= console.driver.frame
    badge = page.locator("[data-test=camera-tracking-cam]")
    expect(badge).to_have_text("live")
    expect(badge).to_have_class("badge state-live")
    page.wait_for_function("() => +document.getElementById('frame-graph').dataset.samples > 10")

    # the map: wall pixels (the wall colour) and the camera's dot where its stage position puts it
    probe = """() => {
      const c = document.getElementById('map'); const g = c.getContext('2d');
      const d = g.getImageData(0, 0, c.width, c.height).data; const r = window.devicePixelRatio || 1;
      let n = 0, sx = 0, sy = 0, x0 = 1e9, x1 = -1e9;
      for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - 158) < 12 && Math.abs(d[i + 1] - 203) < 12 && Math.abs(d[i + 2] - 255) < 12) {
          const x = (i / 4) % c.width, y = Math.floor(i / 4 / c.width);
          n++; sx += x; sy += y; x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        }
      }
      const cams = JSON.parse(c.dataset.cameras || '[]');
      const cam = cams[0];
      const px = cam ? Array.from(g.getImageData(Math.round(cam.x * r), Math.round(cam.y * r), 1, 1).data) : null;
      return {n, wallY: sy / Math.max(1, n) / r, wallX0: x0 / r, wallX1: x1 / r, cam, px,
              pos: window.stagectlConsole.status.cameras.cam.position_m, frame: window.stagectlConsole.status.frame};
    }"""
    a = page.evaluate(probe)
    assert a["n"] > 100, "the wall is drawn"
    assert a["cam"] is not None and a["cam"]["name"] == "cam"
    assert a["px"][:3] == [0x3F, 0xB9, 0x50], "the live camera's dot is drawn in green at its position"
    assert a["cam"]["y"] > a["wallY"] + 50, "the camera (y = 0 m) is below the wall (y = 4 m): +Y is up"
    # the wall spans stage x -2..2 m: the dot's x follows the camera's x on the same scale (within the 3 px line)
    expect_x = a["wallX0"] + (a["pos"][0] + 2.0) / 4.0 * (a["wallX1"] - a["wallX0"])
    assert abs(a["cam"]["x"] - expect_x) < 4.0, (a, expect_x)
    # live: a later status moves the dot to the camera's new position, on the same scale
    page.wait_for_function("f => window.stagectlConsole.status.frame >= f + 10", arg=a["frame"])
    b = page.evaluate(probe)
    assert b["pos"] == pytest.approx(list(console.driver.pose(b["frame"])[:3]))
    expect_x = b["wallX0"] + (b["pos"][0] + 2.0) / 4.0 * (b["wallX1"] - b["wallX0"])
    assert abs(b["cam"]["x"] - expect_x) < 4.0, (b, expect_x)
    assert b["px"][:3] == [0x3F, 0xB9, 0x50]


def test_light_card_from_the_page_shows_on_the_canvas_and_the_preview(page, console) -> None:
    from playwright.sync_api import expect

    raster = console.stage.wall("wall").raster
    rect = (0.1, 0.2, 0.3, 0.5)
    page.select_option("#card-add-wall", "wall")
    for name, v in zip(("u0", "v0", "u1", "v1"), rect):
        page.fill(f"#card-add-{name}", str(v))
    page.fill("#card-add-color", "#ff8000")
    page.fill("#card-add-intensity", "1")
    page.select_option("#card-add-layer", "over")
    page.fill("#card-add-feather", "0")
    ack = act(page, "#card-add-submit")
    assert ack["state"] == "ok" and ack["command"] == "card.add", ack
    frame = int(ack["frame"])
    assert f"applied at frame {frame}" in ack["text"] and "card-1" in ack["text"]

    cards = console.hub.state.features.light_cards
    assert [c.id for c in cards] == ["card-1"] and cards[0].rect == rect
    assert console.hub.log[-1]["who"] == "web:ann" and console.hub.log[-1]["frame"] == frame
    expect(page.locator("[data-test=card-row][data-card-id=card-1]")).to_be_visible()
    expect(page.locator("#change-log")).to_contain_text("web:ann")

    rows, cols = rect_px(rect, raster)
    want = np.array([255, 128, 0])
    for f in (frame, frame + 1):  # from the acknowledged frame on, every pixel inside the card is its colour
        diff = np.abs(canvas_at(console, f)[rows, cols] - want)
        assert diff.max() <= 1, f"frame {f}: card pixels differ by up to {diff.max()} codes"
    before = canvas_at(console, frame - 1)[rows, cols]
    assert (np.abs(before - want).max(axis=-1) > 1).mean() > 0.9, "the card was not there before its frame"

    # the preview the page shows is the hub's JPEG thumbnail of a frame with the card
    page.wait_for_function("f => +document.getElementById('preview-proc_out1').dataset.frame >= f", arg=frame)
    natural = page.evaluate("() => document.getElementById('preview-proc_out1').naturalWidth")
    assert natural == raster[0] // 2
    resp = page.request.get(console.url + "preview/proc_out1.jpg")
    assert resp.status == 200 and int(resp.headers["x-stagectl-frame"]) >= frame
    assert "no-store" in resp.headers["cache-control"]
    thumb = cv2.cvtColor(cv2.imdecode(np.frombuffer(resp.body(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    trows, tcols = rect_px(rect, (raster[0] // 2, raster[1] // 2), inset=3)
    mean = thumb[trows, tcols].reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - want).max() < 6, f"preview card colour {mean}"

    # move it from the edit form: the new place on the acknowledged frame, the old place free again
    page.click("[data-test=card-row][data-card-id=card-1]")
    page.fill("#card-edit-u", "0.7")
    page.fill("#card-edit-v", "0.5")
    ack = act(page, "#card-move")
    assert ack["state"] == "ok" and ack["command"] == "card.move", ack
    moved = (0.6, 0.35, 0.8, 0.65)
    assert console.hub.state.features.light_cards[0].rect == pytest.approx(moved)
    img = canvas_at(console, int(ack["frame"]))
    mrows, mcols = rect_px(moved, raster)
    assert np.abs(img[mrows, mcols] - want).max() <= 1
    assert (np.abs(img[rows, cols] - want).max(axis=-1) > 1).mean() > 0.9

    ack = act(page, "#card-remove")
    assert ack["state"] == "ok" and ack["command"] == "card.remove", ack
    assert console.hub.state.features.light_cards == ()
    expect(page.locator("[data-test=card-row]")).to_have_count(0)


def test_blackout_from_the_page_asks_first(page, console) -> None:
    from playwright.sync_api import expect

    page.click("#tab-outputs")
    seq = console.hub.seq
    page.click("#blackout-all")  # opens the confirmation; cancelled, nothing is sent
    expect(page.locator("#confirm")).to_be_visible()
    ack = act(page, "#confirm-cancel")
    assert ack["state"] == "error" and "cancelled" in ack["text"], ack
    expect(page.locator("#confirm")).to_be_hidden()
    assert console.hub.seq == seq and not console.hub.state.blackout_all

    page.click("#blackout-all")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("Black out every output")
    ack = act(page, "#confirm-ok")
    assert ack["state"] == "ok" and ack["command"] == "output.blackout", ack
    frame = int(ack["frame"])
    assert console.hub.state.blackout_all and console.hub.flags.blackout
    assert canvas_at(console, frame).max() == 0, "every pixel is black from the acknowledged frame"
    assert canvas_at(console, frame - 1).max() > 0
    expect(page.locator("#banner-blackout")).to_be_visible()

    ack = act(page, "#blackout-all-off")
    assert ack["state"] == "ok", ack
    assert canvas_at(console, int(ack["frame"])).max() > 0
    expect(page.locator("#banner-blackout")).to_be_hidden()

    ack = act(page, "#blackout-proc_out1")  # one output
    assert ack["state"] == "ok", ack
    assert console.hub.state.features.blackout == frozenset({KEY})
    assert canvas_at(console, int(ack["frame"])).max() == 0
    expect(page.locator("#blackout-proc_out1")).to_have_attribute("aria-pressed", "true")
    ack = act(page, "#blackout-proc_out1")
    assert ack["state"] == "ok" and console.hub.state.features.blackout == frozenset()
    assert canvas_at(console, int(ack["frame"])).max() > 0


def test_bad_values_show_an_error_and_change_nothing(page, console) -> None:
    from playwright.sync_api import expect

    hub = console.hub
    seq, state, log = hub.seq, hub.state, len(hub.log)
    commands = console.web.counters["commands"]

    page.click("#tab-cameras")
    page.fill("#cam-delay-cam", "-3")
    ack = act(page, "#cam-apply-cam")
    assert ack["state"] == "error" and "camera.set" in ack["text"] and "delay_frames" in ack["text"], ack
    expect(page.locator("#ack")).to_have_class("ack err")

    page.click("#tab-cards")
    for name, v in zip(("u0", "v0", "u1", "v1"), (0.8, 0.2, 0.6, 0.5)):
        page.fill(f"#card-add-{name}", str(v))
    ack = act(page, "#card-add-submit")
    assert ack["state"] == "error" and "rect" in ack["text"], ack
    assert console.web.counters["commands"] == commands + 2

    page.fill("#card-add-intensity", "")  # caught in the page: nothing is sent
    ack = act(page, "#card-add-submit")
    assert ack["state"] == "error" and "intensity: enter a number" in ack["text"], ack
    assert console.web.counters["commands"] == commands + 2

    assert hub.seq == seq and hub.state == state and len(hub.log) == log, "nothing changed"
    expect(page.locator("#ack-history li.err")).to_have_count(3)

    # the same form with a good value works
    page.click("#tab-cameras")
    page.fill("#cam-delay-cam", "2")
    ack = act(page, "#cam-apply-cam")
    assert ack["state"] == "ok", ack
    assert hub.state.camera("cam").delay_frames == 2.0
    assert hub.log[-1]["args"] == {"camera": "cam", "delay_frames": 2.0}


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024)])
def test_tablet_layouts_fit_the_screen(browser, console, size) -> None:
    ctx, page = login(browser, console, name="tab", viewport=size)
    try:
        overflow = page.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{size}: the page is {overflow} px wider than the screen"
        for sel in ("#map", "#panel-controls", "#previews", "#cameras-table", "#ack"):
            box = page.locator(sel).bounding_box()
            assert box is not None and box["width"] > 200 and box["x"] >= 0 and box["x"] + box["width"] <= size[0] + 1, \
                (sel, box)
    finally:
        ctx.close()
