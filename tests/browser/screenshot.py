"""Screenshot of the web console for the README: ``.venv/bin/python tests/browser/screenshot.py [OUT.png]``.

Runs ``stagectl run stages/demo.yaml`` as an operator does (simulated tracking, headless rendering, the console
on free loopback ports, a throw-away operator state file), sets two light cards, a wall colour correction and a
test pattern over OSC as a control surface would, logs in with Debian's chromium (Playwright) at 1280 x 800,
edits a card from the page and saves the page to ``docs/img/console.png`` (or OUT.png). Needs
/usr/bin/chromium (``make test`` installs it as root).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import CHROMIUM, CHROMIUM_ARGS, log_in

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXE = str(Path(sys.executable).parent / "stagectl")


def _osc(port: int, address: str, *args) -> None:
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.bind(("127.0.0.1", 0))
        s.sendto(b.build().dgram, ("127.0.0.1", port))
        ack = OscMessage(s.recvfrom(65536)[0]).params
    if ack[1] != 1:
        raise RuntimeError(f"{address}: {ack}")


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[1]) if len(argv) > 1 else REPO / "docs" / "img" / "console.png"
    if not CHROMIUM.exists():
        print(f"screenshot: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.Popen([EXE, "run", str(REPO / "stages" / "demo.yaml"), "--web-port", "0", "--osc-port", "0",
                                "--zmq-port", "0", "--preview-every", "0", "--state-file", f"{tmp}/op.json"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = token = osc = None
            for line in run.stdout:
                m = re.search(r"web console at (\S+)\s+login token: (\S+)", line)
                if m:
                    url, token = m.groups()
                m = re.search(r"OSC commands on udp://[\d.]+:(\d+)", line)
                if m:
                    osc = int(m.group(1))
                if line.startswith("["):
                    break
            if not (url and token and osc):
                print("screenshot: stagectl run did not start its console", file=sys.stderr)
                return 1
            _osc(osc, "/stagectl/card/add", "main", 0.06, 0.15, 0.2, 0.55, 1.0, 0.85, 0.6, 1.2, "over", 24.0)
            _osc(osc, "/stagectl/card/add", "ceiling", 0.3, 0.3, 0.7, 0.6, 0.6, 0.7, 1.0, 1.0, "under")
            _osc(osc, "/stagectl/color/set", json.dumps({"target": "ceiling", "exposure": -0.5, "temperature": 5600}))
            _osc(osc, "/stagectl/pattern/set", "tessera-b/out3", "cabinet_id", "frame")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                log_in(page, url, token, "chris")
                page.click("[data-test=card-row][data-card-id=card-1]")
                page.fill("#card-edit-intensity", "1.4")
                page.click("#card-set")
                page.wait_for_selector("#ack.ok")
                time.sleep(6.0)  # previews, the frame-time graph and the map fill in
                page.evaluate("() => window.scrollTo(0, 0)")
                page.screenshot(path=str(out))
                browser.close()
        finally:
            run.terminate()
            run.communicate(timeout=20)
    print(f"screenshot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
