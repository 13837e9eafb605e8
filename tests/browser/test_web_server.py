"""The web console's server without a browser: login and sessions, the WebSocket protocol and what it does with
malformed input, previews, cross-site WebSockets, start errors and shutdown. Real loopback sockets (aiohttp's
client), a real ControlHub on the small test stage and a frame thread that applies commands every 20 ms (no
rendering needed here; tests/browser/test_web_console.py covers the rendered frames).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp
import pytest
from harness import SMALL_STAGE, StatusFrames, status_console

from stagectl.console.hub import ControlHub
from stagectl.console.web import WebConsole, WebConsoleError
from stagectl.console.web.server import MAX_PENDING, _Client, dumps
from stagectl.stage import load_stage
from stagectl.stage.model import WebConsoleSettings

pytestmark = [pytest.mark.net, pytest.mark.timeout(60)]
TOKEN = "server-test-token"


@pytest.fixture
def running(tmp_path):
    """The console without a browser, ``hub.apply_pending(k)`` called every 20 ms as the frame loop does."""
    with status_console(tmp_path, TOKEN, lambda hub: StatusFrames(hub, period_s=0.02)) as (hub, _, web, _url):
        yield hub, web


def session() -> aiohttp.ClientSession:
    # the cookie jar keeps cookies of IP-address hosts only when "unsafe"
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=10))


async def login(s: aiohttp.ClientSession, url: str, name: str = "bob") -> None:
    r = await s.post(url + "login", data={"token": TOKEN, "name": name}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"


async def next_message(ws, want=lambda m: True, timeout_s: float = 5.0) -> dict:
    """The next message satisfying ``want`` (status events and the like are skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        m = json.loads(msg.data, parse_constant=lambda c: pytest.fail(f"{c} in JSON sent to a browser"))
        if want(m):
            return m


def test_login_refuses_wrong_tokens_and_bad_names(running) -> None:
    hub, web = running

    async def go():
        async with session() as s:
            for path in ("api/snapshot", "ws", "preview/proc_out1.jpg"):
                r = await s.get(web.url + path)
                assert r.status == 401, path
            r = await s.get(web.url)
            assert r.status == 200 and 'id="login-form"' in await r.text()
            r = await s.post(web.url + "login", data={"token": TOKEN[:-1] + "x", "name": "bob"}, allow_redirects=False)
            assert r.status == 401 and "wrong token" in await r.text()
            assert "stagectl_console" not in r.cookies
            r = await s.post(web.url + "login", data={"token": TOKEN, "name": "<script>"}, allow_redirects=False)
            assert r.status == 400 and "&lt;script&gt;" in await r.text()
            assert (await s.get(web.url + "api/snapshot")).status == 401
            await login(s, web.url)
            r = await s.get(web.url)
            assert 'id="map"' in await r.text()
            await s.post(web.url + "logout", allow_redirects=False)
            assert (await s.get(web.url + "api/snapshot")).status == 401

    asyncio.run(go())
    assert web.counters["login_refused"] == 1
    assert web.counters["unauthorized"] >= 5


def test_snapshot_is_strict_json_with_the_stage_and_log(running) -> None:
    hub, web = running
    hub.publish_status({"frame": 3, "phase_error_us": float("nan"), "fps": float("inf"), "cameras": {}})
    assert hub.submit("card.add", {"wall": "wall", "rect": [0.1, 0.1, 0.2, 0.2]}, who="ctl")["ok"]

    async def go():
        async with session() as s:
            await login(s, web.url, "carol")
            r = await s.get(web.url + "api/snapshot")
            assert r.headers["Cache-Control"] == "no-store"
            return json.loads(await r.text(), parse_constant=lambda c: pytest.fail(f"{c} in the snapshot"))

    snap = asyncio.run(go())
    assert snap["status"]["phase_error_us"] is None and snap["status"]["fps"] is None
    assert snap["operator"] == "carol" and snap["seq"] == hub.seq == 1
    assert [c["id"] for c in snap["state"]["light_cards"]] == ["card-1"]
    assert snap["log"][-1]["who"] == "ctl" and snap["log"][-1]["command"] == "card.add"
    wall = snap["stage"]["walls"][0]
    assert wall["name"] == "wall" and wall["raster"] == [512, 256]
    # the wall stands at y = 4 m, 4 m wide, 1.5 m centre height: its facet corners say so
    xs = sorted({p[0] for p in wall["facets"][0]})
    assert xs == pytest.approx([-2.0, 2.0]) and {p[1] for p in wall["facets"][0]} == {4.0}


def test_websocket_commands_events_and_malformed_input(running) -> None:
    hub, web = running

    async def go():
        async with session() as s:
            await login(s, web.url)
            async with s.ws_connect(web.url + "ws") as ws:
                first = await next_message(ws)
                assert first["type"] == "snapshot" and first["operator"] == "bob" and first["seq"] == hub.seq
                answers = []
                for bad in ("not json", "[1, 2]", json.dumps({"id": 7, "args": {}}),
                            json.dumps({"id": 8, "command": "card.add", "args": [1]})):
                    await ws.send_str(bad)
                    answers.append(await next_message(ws, lambda m: "ack" in m))
                await ws.send_bytes(b"\x00\x01")
                answers.append(await next_message(ws, lambda m: "ack" in m))
                assert [a["id"] for a in answers] == [None, None, 7, 8, None]
                assert all(not a["ack"]["ok"] and a["ack"]["error"] for a in answers)
                assert "args must be an object" in answers[3]["ack"]["error"]
                # a bad command: the hub's one-line error, nothing changes
                await ws.send_str(json.dumps({"id": 9, "command": "card.add",
                                              "args": {"wall": "nope", "rect": [0, 0, 1, 1]}}))
                bad = await next_message(ws, lambda m: m.get("id") == 9)
                assert not bad["ack"]["ok"] and "wall" in bad["ack"]["error"] and "\n" not in bad["ack"]["error"]
                # a good one: acked with its frame, and a state event carrying the change record
                await ws.send_str(json.dumps({"id": 10, "command": "card.add",
                                              "args": {"wall": "wall", "rect": [0.1, 0.1, 0.3, 0.3]}}))
                got: dict = {}  # the ack and the state event, in whichever order they come
                while len(got) < 2:
                    m = await next_message(ws, lambda m: m.get("id") == 10 or m.get("type") == "state")
                    got["ack" if "ack" in m else "event"] = m
                return got["ack"]["ack"], got["event"]

    ack, ev = asyncio.run(go())
    assert ack["ok"] and ack["result"]["id"] == "card-1" and ack["frame"] >= 1
    assert ev["seq"] == ack["seq"] == hub.seq and ev["frame"] == ack["frame"]
    assert ev["log"]["who"] == "web:bob" and ev["log"]["command"] == "card.add" and ev["log"]["time_utc"]
    assert ev["state"]["light_cards"][0]["rect"] == [0.1, 0.1, 0.3, 0.3]
    assert hub.log[-1]["who"] == "web:bob"
    assert web.counters["bad_messages"] == 5


def test_previews_are_served_uncached_and_named_by_output(running) -> None:
    hub, web = running
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"
    hub.publish_previews({"proc/out1": jpeg})

    async def go():
        async with session() as s:
            await login(s, web.url)
            r = await s.get(web.url + "preview/proc_out1.jpg")
            body = await r.read()
            missing = await s.get(web.url + "preview/proc_out9.jpg")
            wrong = await s.get(web.url + "preview/proc_out1.png")
            return r.status, r.headers, body, missing.status, wrong.status

    status, headers, body, missing, wrong = asyncio.run(go())
    assert status == 200 and body == jpeg and headers["Content-Type"] == "image/jpeg"
    assert "no-store" in headers["Cache-Control"]
    assert int(headers["X-Stagectl-Frame"]) == hub.previews()["proc/out1"][0]
    assert missing == 404 and wrong == 404


def test_cross_site_websocket_is_refused(running) -> None:
    hub, web = running

    async def go():
        async with session() as s:
            await login(s, web.url)
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(web.url + "ws", headers={"Origin": "http://evil.example"})
            return exc.value.status

    assert asyncio.run(go()) == 403


def test_close_says_going_away_and_frees_the_port(tmp_path) -> None:
    hub = ControlHub(load_stage(SMALL_STAGE), persist=False)
    web = WebConsole(hub, WebConsoleSettings("127.0.0.1", 0), token=TOKEN)
    web.start()
    port = web.port
    assert port > 0

    async def go():
        async with session() as s:
            await login(s, web.url)
            async with s.ws_connect(web.url + "ws") as ws:
                await next_message(ws)
                assert web.clients == 1
                await asyncio.get_running_loop().run_in_executor(None, web.close)
                msg = await ws.receive(timeout=5)
                return msg.type, msg.data, msg.extra

    kind, code, reason = asyncio.run(go())
    assert kind == aiohttp.WSMsgType.CLOSE and code == 1001 and reason == "stage stopping"
    again = WebConsole(hub, WebConsoleSettings("127.0.0.1", port), token=TOKEN)
    assert again.start() == f"http://127.0.0.1:{port}/"
    again.close()
    hub.close()


def test_a_taken_port_is_a_one_line_error() -> None:
    hub = ControlHub(load_stage(SMALL_STAGE), persist=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = WebConsole(hub, WebConsoleSettings("127.0.0.1", port))
        with pytest.raises(WebConsoleError) as exc:
            web.start()
        web.close()
    msg = str(exc.value)
    assert msg.startswith(f"web console: cannot listen on 127.0.0.1:{port}: ") and "\n" not in msg
    assert len(web.token) >= 32, "a random token when none is given"
    hub.close()


def test_a_slow_client_gets_the_newest_status_and_a_snapshot_instead_of_a_backlog() -> None:
    c = _Client(ws=None, name="slow")
    c.push({"type": "status", "status": {"frame": 1}})
    c.push({"type": "status", "status": {"frame": 2}})
    assert list(c.pending) == [{"type": "status", "status": {"frame": 2}}]
    c.push({"id": 3, "ack": {"ok": True}})
    seq = 0
    while not c.resync:
        c.push({"type": "state", "seq": seq})
        seq += 1
    assert seq == MAX_PENDING - 1, "the queue overflows past MAX_PENDING events (status + ack + states)"
    assert list(c.pending) == [{"id": 3, "ack": {"ok": True}}], "acks survive the resync"
    assert dumps({"a": (1.0, float("nan")), "b": float("-inf")}) == '{"a":[1.0,null],"b":null}'
