"""Hostile WebSocket input on the web console, over a real loopback socket (aiohttp's client) against a real
ControlHub: deep JSON is answered with an error ack and the socket stays open (before, json.loads raised
RecursionError and the server dropped the connection); a message over the size bound closes only that socket
with 1009 (message too big) while other clients go on.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from stagectl.console.jsonbounds import MAX_DEPTH
from stagectl.console.web.server import MAX_CLIENT_MESSAGE
from test_web_server import login, next_message, running, session  # noqa: F401 - running is a fixture

pytestmark = [pytest.mark.net, pytest.mark.timeout(60)]


def test_deep_json_is_an_error_ack_and_the_socket_stays_open(running) -> None:  # noqa: F811
    hub, web = running

    async def go():
        async with session() as s:
            await login(s, web.url)
            async with s.ws_connect(web.url + "ws") as ws, s.ws_connect(web.url + "ws") as other:
                await next_message(ws)
                await next_message(other)
                acks = []
                for deep in ("[" * 30_000 + "]" * 30_000,  # RecursionError for json.loads
                             json.dumps({"id": 1, "command": "card.add",
                                         "args": {"wall": json.loads("[" * 500 + "]" * 500)}})):
                    assert len(deep) < MAX_CLIENT_MESSAGE
                    await ws.send_str(deep)
                    acks.append(await next_message(ws, lambda m: "ack" in m))
                # the same socket still works
                await ws.send_str(json.dumps({"id": 2, "command": "card.add",
                                              "args": {"wall": "wall", "rect": [0.1, 0.1, 0.2, 0.2]}}))
                good = await next_message(ws, lambda m: m.get("id") == 2)
                # a message over the bound closes that socket (1009), not the other one
                await ws.send_str("[" * (MAX_CLIENT_MESSAGE + 1))
                closed = await ws.receive(timeout=5)
                await other.send_str(json.dumps({"id": 3, "command": "status"}))
                status = await next_message(other, lambda m: m.get("id") == 3)
                return acks, good, closed, ws.close_code, status

    acks, good, closed, code, status = asyncio.run(go())
    for a in acks:
        assert a["id"] is None and a["ack"]["ok"] is False
        assert a["ack"]["error"] == (f'JSON nested deeper than {MAX_DEPTH} levels: expected a JSON object '
                                     '{"id", "command", "args"}')
    assert good["ack"]["ok"] and hub.seq == 1
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert status["ack"]["ok"]
    assert web.counters["bad_messages"] == 2
