"""Screenshot of the web console for the README: ``.venv/bin/python tests/browser/screenshot.py [OUT.png]``.

Runs the demo stage in-process (tests/browser/harness.py: real hub, headless EGL rendering, the WebConsole on
a free loopback port), sets a light card, a wall colour correction and a test pattern through the hub as an
operator would, logs in with Debian's chromium (Playwright) at 1280 x 800 and saves the page to
``docs/img/console.png`` (or OUT.png). Needs /usr/bin/chromium (``make test`` installs it as root).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from stagectl.render.gl.platform import ensure_platform  # noqa: E402

ensure_platform("egl")  # before anything imports OpenGL

from harness import RunningConsole  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[1]) if len(argv) > 1 else REPO / "docs" / "img" / "console.png"
    if not Path(CHROMIUM).exists():
        print(f"screenshot: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            RunningConsole(REPO / "stages" / "demo.yaml", Path(tmp), inner_resolution=(960, 540), keep=0) as rc, \
            sync_playwright() as pw:
        hub = rc.hub
        for name, args in (
            ("card.add", {"wall": "main", "rect": [0.06, 0.15, 0.2, 0.55], "color": [1.0, 0.85, 0.6],
                          "intensity": 1.2, "feather_px": 24}),
            ("card.add", {"wall": "ceiling", "rect": [0.3, 0.3, 0.7, 0.6], "color": [0.6, 0.7, 1.0],
                          "layer": "under"}),
            ("color.set", {"target": "ceiling", "exposure": -0.5, "temperature": 5600}),
            ("pattern.set", {"output": "tessera-b/out3", "kind": "cabinet_id", "burn_in": ["frame"]}),
        ):
            ack = hub.submit(name, args, who="web:chris")
            if not ack["ok"]:
                print(f"screenshot: {name}: {ack['error']}", file=sys.stderr)
                return 1
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(rc.url)
        page.fill("#login-name", "chris")
        page.fill("#login-token", rc.web.token)
        page.click("#login-submit")
        page.wait_for_selector("#conn.state-live")
        page.click("[data-test=card-row][data-card-id=card-1]")
        page.fill("#card-edit-intensity", "1.4")
        page.click("#card-set")
        page.wait_for_selector("#ack.ok")
        time.sleep(5.0)  # previews, the frame-time graph and the map fill in
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(out))
        browser.close()
    print(f"screenshot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
