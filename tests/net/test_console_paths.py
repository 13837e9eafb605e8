"""Path confinement over every transport: record.start, color.set lut and content.select that point outside
the stage's ``console.paths`` folders (an absolute path, a ``..`` path, a link that escapes) are refused over
the web console's WebSocket, ZeroMQ (CURVE) and OSC alike, without the outside file's contents, and the hub
records the refusal with the transport's own name of who asked (``web:<operator>``, ``zmq:<key name>``,
``osc:<ip>:<port>``).

Real servers on loopback (kernel-chosen ports), a real hub on a copy of the demo stage, a frame thread calling
``hub.apply_pending`` every 10 ms; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from stagectl.console.hub import ControlHub
from stagectl.console.osc_transport import ACK_ADDRESS, OscConsole
from stagectl.console.web import WebConsole
from stagectl.console.zmq import ConsoleClient, ZmqConsole, load_client_keys, make_keys
from stagectl.stage.loader import load_stage
from stagectl.stage.model import OscAllow, OscConsoleSettings, WebConsoleSettings

from .stage_run import StageRun, console_yaml, flat_wall_text, stage_ports

REPO = Path(__file__).resolve().parents[2]
SECRET = "TOPSECRET root:$6$hash:19000:0:99999:7:::"
TOKEN = "paths-test-token"


@dataclasses.dataclass
class Env:
    stage_dir: Path
    outside: Path
    hub: ControlHub

    def attempts(self) -> list[tuple[str, dict]]:
        """One way out per command: an absolute take path, a ``..`` LUT path, a scene through a link."""
        return [
            ("record.start", {"path": str(self.outside / "new" / "take.stgtake")}),
            ("color.set", {"target": "main", "lut": "luts/../../outside/secret.cube"}),
            ("content.select", {"content": "scenes/escape/plate.png"}),
        ]

    def check(self, acks: list[dict], who: str) -> None:
        assert [a["command"] for a in acks] == ["record.start", "color.set", "content.select"], acks
        for ack, arg in zip(acks, ("path", "lut", "content")):
            assert not ack["ok"], ack
            assert ack["error"].startswith(f"{ack['command']}: {arg}: refused: "), ack
            assert "TOPSECRET" not in ack["error"] and "\n" not in ack["error"], ack
        assert str(self.outside) not in acks[2]["error"]  # where the link points is not told
        assert sorted(p.name for p in self.outside.iterdir()) == ["plate.png", "secret.cube"]  # nothing made
        s = self.hub.state
        assert s.recording is None and s.content == "procedural" and s.features.color_of("main") is None
        assert self.hub.seq == 0
        assert [(r["who"], r["command"]) for r in self.hub.refusals] == [
            (who, "record.start"),
            (who, "color.set"),
            (who, "content.select"),
        ]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    stage_dir = tmp_path / "stages"
    stage_dir.mkdir()
    shutil.copy(REPO / "stages" / "demo.yaml", stage_dir / "demo.yaml")
    shutil.copytree(REPO / "stages" / "lenses", stage_dir / "lenses")
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("secret.cube", "plate.png"):
        (outside / name).write_text(SECRET + "\n")
    for folder in ("luts", "scenes", "takes"):
        (stage_dir / folder).mkdir()
    (stage_dir / "scenes" / "escape").symlink_to(outside, target_is_directory=True)
    hub = ControlHub(load_stage(stage_dir / "demo.yaml"), tmp_path / "op.json")
    stop = threading.Event()

    def frames() -> None:
        k = 0
        while not stop.wait(0.01):
            k += 1
            hub.apply_pending(k)

    t = threading.Thread(target=frames, name="test-frames", daemon=True)
    t.start()
    yield Env(stage_dir, outside, hub)
    stop.set()
    t.join(5)
    hub.close()


def test_refused_over_the_web_console(env: Env) -> None:
    web = WebConsole(env.hub, WebConsoleSettings("127.0.0.1", 0), token=TOKEN)
    web.start()

    async def go() -> list[dict]:
        jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of IP-address hosts
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=10)) as s:
            r = await s.post(web.url + "login", data={"token": TOKEN, "name": "alice"}, allow_redirects=False)
            assert r.status == 303
            acks = []
            async with s.ws_connect(web.url + "ws") as ws:
                for i, (command, args) in enumerate(env.attempts()):
                    await ws.send_str(json.dumps({"id": i, "command": command, "args": args}))
                    deadline = time.monotonic() + 5
                    while True:
                        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
                        m = json.loads(msg.data)
                        if m.get("id") == i and "ack" in m:
                            acks.append(m["ack"])
                            break
            return acks

    try:
        acks = asyncio.run(go())
    finally:
        web.close()
    env.check(acks, "web:alice")


def test_refused_over_zeromq(env: Env, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, ["desk"])
    settings = dataclasses.replace(env.hub.stage.console.zmq, port=0, state_port=0, keys=keys)
    console = ZmqConsole(env.hub, settings, env.stage_dir).start()
    client = ConsoleClient(console.command_endpoint, load_client_keys(keys, keys / "desk.key_secret"))
    try:
        acks = [client.request(command, args, timeout_s=5.0) for command, args in env.attempts()]
    finally:
        client.close()
        console.close()
    env.check(acks, "zmq:desk")


def test_refused_over_osc(env: Env) -> None:
    console = OscConsole(env.hub, OscConsoleSettings("127.0.0.1", 0, (OscAllow("127.0.0.1"),))).start()
    host, port = console.address
    client = SimpleUDPClient(host, port)
    forms = {  # the OSC positional forms of env.attempts()
        "record.start": lambda a: ["/stagectl/record/start", a["path"]],
        "color.set": lambda a: ["/stagectl/color/set", a["target"], "lut", a["lut"]],
        "content.select": lambda a: ["/stagectl/content/select", a["content"]],
    }
    acks = []
    try:
        for command, args in env.attempts():
            address, *values = forms[command](args)
            client.send_message(address, values)
            data = client.receive(5.0)
            msg = OscMessage(data)
            assert msg.address == ACK_ADDRESS
            cmd, ok, frame, text = msg.params
            acks.append({"command": cmd, "ok": bool(ok), "error": text})
        mine = client._sock.getsockname()[1]
    finally:
        client.close()
        console.close()
    env.check(acks, f"osc:127.0.0.1:{mine}")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_stagectl_run_refuses_and_logs_who_asked(tmp_path: Path) -> None:
    """A real ``stagectl run --no-render``: an outside take path sent over OSC is refused, no folder appears,
    and the run's output (its log) names the command and the sender; a take inside the folder records."""
    ports = stage_ports()
    text = flat_wall_text(ports, f"Paths {uuid.uuid4().hex[:8]}") + console_yaml(ports)
    text += "  paths: {takes: recordings}\n"
    stage = tmp_path / "stage" / "flat_wall.yaml"
    stage.parent.mkdir()
    stage.write_text(text)
    outside = tmp_path / "outside"
    run = StageRun(stage, "--no-render", duration_s=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    sock.bind(("127.0.0.1", 0))

    def send(address: str, *args: str) -> tuple:
        sock.sendto(_datagram(address, args), ("127.0.0.1", ports["osc"]))
        data, _ = sock.recvfrom(65536)
        return tuple(OscMessage(data).params)

    try:
        run.wait_for(r"OSC commands on udp://", timeout_s=120)  # a fresh checkout compiles Numba first
        run.wait_for(r"^\[")  # frames are running
        cmd, ok, _, error = send("/stagectl/record/start", str(outside / "day1" / "t.stgtake"))
        assert (cmd, ok) == ("record.start", 0) and ": path: refused: " in error, error
        assert "recordings/ (console.paths.takes)" in error, error
        cmd, ok, _, result = send("/stagectl/record/start", "recordings/t.stgtake")
        assert ok == 1, result
        assert send("/stagectl/record/stop")[1] == 1
        me = sock.getsockname()[1]
    finally:
        sock.close()
        out = run.stop()
    assert not outside.exists()
    assert f"refused record.start from osc:127.0.0.1:{me}: record.start: path: refused: " in out, out
    assert (stage.parent / "recordings" / "t.stgtake").is_file()


def _datagram(address: str, args: tuple) -> bytes:
    """One OSC message with string arguments."""
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram
