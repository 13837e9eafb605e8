"""The web console's record form: the slate (scene, take, roll, camera, notes) typed on the page starts a slated
take, in a real browser against a real ControlHub with `stagectl run`'s record effects (a LiveTake written to
the take folder of a copy of the small stage) and a frame thread publishing the status's ``recording`` as
`stagectl run` does (stagectl.runtime.status.recording_status). The text fields take their lengths from the
stage's `help` answer; a slate the stage refuses shows its error and starts nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from harness import (
    CHROMIUM,
    NO_CHROMIUM,
    SMALL_STAGE,
    StatusFrames,
    chromium_browser,  # noqa: F401 - the browser fixture
    frame_status,
    log_in,
)

from stagectl.console.hub import ControlHub
from stagectl.console.live import RunHandles, register_effects
from stagectl.console.web import WebConsole
from stagectl.runtime import StageRuntime
from stagectl.runtime.status import recording_status
from stagectl.stage import load_stage
from stagectl.stage.model import WebConsoleSettings
from stagectl.tracking.recording import load_take

pytestmark = [
    pytest.mark.net, pytest.mark.slow, pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
]

TOKEN = "record-form-token-0123456789"


class _Frames(StatusFrames):
    """Every 40 ms: the next frame (the hub's commands and their record effects), the take's frame record and
    the status with ``recording``."""

    def __init__(self, hub: ControlHub, runtime: StageRuntime) -> None:
        super().__init__(hub, period_s=0.04)
        self.runtime = runtime

    def status(self, frame: int) -> dict:
        now = time.monotonic_ns()
        self.runtime.record(frame, now, [], now)
        return frame_status(frame, {}, timecode="00:00:00:00", recording=recording_status(self.runtime, now))


@pytest.fixture
def console(tmp_path: Path):
    stage_path = tmp_path / SMALL_STAGE.name  # its take folder is tmp_path/takes
    shutil.copy(SMALL_STAGE, stage_path)
    stage = load_stage(stage_path)
    hub = ControlHub(stage, state_path=tmp_path / "operator.json")
    runtime = StageRuntime(stage)
    handles = RunHandles(runtime)
    register_effects(hub, handles, lambda line: None)
    frames = _Frames(hub, runtime)
    frames.thread.start()
    web = WebConsole(hub, WebConsoleSettings("127.0.0.1", 0), token=TOKEN)
    try:
        yield hub, handles, web.start(), tmp_path / "takes"
    finally:
        web.close()
        hub.close()
        frames.close()
        handles.close_takes()


def _fill_slate(page, **slate) -> None:
    for k in ("scene", "take", "roll", "camera", "notes"):
        page.fill(f"[data-test=record-{k}]", str(slate.get(k, "")))


def test_a_slated_take_starts_from_the_page_and_a_refused_slate_starts_nothing(browser, console) -> None:
    from playwright.sync_api import expect

    hub, handles, url, takes = console
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    try:
        log_in(page, url, TOKEN, "ann")
        page.click("#tab-stage")
        # the limits come from the stage's help answer (record.start's declaration)
        page.wait_for_function("() => document.getElementById('record-scene').maxLength === 32")
        assert page.eval_on_selector("[data-test=record-camera]", "e => e.maxLength") == 8
        assert page.eval_on_selector("[data-test=record-notes]", "e => e.maxLength") == 500
        assert page.eval_on_selector("[data-test=record-take]", "e => [e.min, e.max]") == ["1", "9999"]
        ack = page.locator("[data-test=ack]")

        # refused by the stage: take 0, a control character in the scene, a line break in the notes
        for slate, error in (
            ({"scene": "12A", "take": 0}, "record.start: take: expected a whole number 1..9999, got 0"),
            ({"scene": "12\u0007A"}, "record.start: scene: expected a text of 1..32 printable characters, got "),
            ({"scene": "12A", "notes": "dolly in\nslow"}, "record.start: notes: expected a text of 1..500 printable"),
        ):
            _fill_slate(page, **slate)
            page.click("[data-test=record-start]")
            expect(ack).to_have_attribute("data-state", "error")
            expect(ack).to_contain_text(error)
            expect(page.locator("[data-test=banner-record]")).to_be_hidden()
            assert hub.state.recording is None and handles.take is None
            page.fill("[data-test=record-notes]", "")
            ack.evaluate("e => { e.dataset.state = ''; }")
        assert not takes.exists() or not list(takes.rglob("*.stgtake"))  # nothing was started

        # a slated take from the page: the take number left to the stage (the first of scene 12A)
        _fill_slate(page, scene="12A", roll="A001", camera="A", notes="dolly in, slow")
        page.click("[data-test=record-start]")
        expect(ack).to_have_attribute("data-state", "ok")
        expect(page.locator("[data-test=banner-record]")).to_be_visible()
        line = page.locator("[data-test=rec-slate]")
        expect(line).to_contain_text("12A T01 · roll A001 · cam A · 00:00:")
        expect(line).to_contain_text(" frames")
        path = Path(handles.take.path)
        assert path.name == "12A_T01_A001.stgtake" and path.parent.parent == takes
        assert line.get_attribute("title") == str(path)
        assert handles.take.meta["slate"] == {"scene": "12A", "take": 1, "roll": "A001", "camera": "A",
                                               "notes": "dolly in, slow"}
        page.click("[data-test=record-stop]")
        expect(page.locator("[data-test=banner-record]")).to_be_hidden()

        # a take number typed on the page is the take's
        _fill_slate(page, scene="12A", take=7)
        page.click("[data-test=record-start]")
        expect(line).to_contain_text("12A T07")
        page.click("[data-test=record-stop]")
        expect(page.locator("[data-test=banner-record]")).to_be_hidden()
    finally:
        ctx.close()
    assert load_take(path).header.meta["slate"]["notes"] == "dolly in, slow"
    assert (takes / path.parent.name / "12A_T07.stgtake").is_file()
