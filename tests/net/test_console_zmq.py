"""The ZeroMQ console transport against a real hub: real CURVE sockets on loopback (kernel-chosen ports), a
frame-driver thread calling ``hub.apply_pending`` every 10 ms like ``stagectl run``, and real key files.

Everything a test opens is closed at teardown (``docs/reference/STYLE.md`` practice 10); waits are on
conditions with timeouts; the transport's close must return within 200 ms.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from stagectl.console.hub import ControlHub
from stagectl.console.zmq import (
    ClientKeys,
    ConsoleClient,
    ConsoleUnreachable,
    StateFollower,
    ZmqConsole,
    ZmqConsoleError,
    load_client_keys,
    make_keys,
)
from stagectl.stage import load_stage

STAGES = Path(__file__).resolve().parents[2] / "stages"
CARD_ARGS = {"wall": "wall", "rect": [0.1, 0.1, 0.3, 0.4]}
NO_REPLY_S = 0.6


def wait_for(condition: Any, timeout_s: float = 3.0) -> bool:
    """Poll ``condition`` until it is truthy or ``timeout_s`` passed (as tests/net/conftest.py's fixture)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(0.005)
    return True


class FrameDriver:
    """The frame loop's side of the hub: ``apply_pending(k)`` every 10 ms and a status every 5 frames;
    :meth:`pause` stops frames (commands then wait in ``hub.submit``)."""

    def __init__(self, hub: ControlHub) -> None:
        self.hub = hub
        self.frame = 0
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-frames", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._run.is_set():
                self.frame += 1
                self.hub.apply_pending(self.frame)
                if self.frame % 5 == 0:
                    self.hub.publish_status(
                        {"frame": self.frame, "fps": 100.0, "phase_error_us": float("nan")}
                    )
            self._stop.wait(0.01)

    def pause(self) -> None:
        self._run.clear()
        time.sleep(0.03)  # let a frame in progress finish

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        assert not self._thread.is_alive()


@dataclasses.dataclass
class Env:
    stage: Any
    hub: ControlHub
    driver: FrameDriver
    console: ZmqConsole
    keys_dir: Path
    ctx: zmq.Context
    sockets: list[zmq.Socket]

    def keys(self, name: str = "ctl") -> ClientKeys:
        return load_client_keys(self.keys_dir, self.keys_dir / f"{name}.key_secret")

    def client(self, name: str = "ctl") -> ConsoleClient:
        c = ConsoleClient(self.console.command_endpoint, self.keys(name), context=self.ctx)
        self.sockets.append(c)  # type: ignore[arg-type]
        return c

    def raw(self, kind: int, keys: ClientKeys | None, endpoint: str | None = None) -> zmq.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        # a refused connection leaves a DEALER without a peer, and send would wait for one forever
        s.setsockopt(zmq.SNDTIMEO, int(NO_REPLY_S * 1000))
        if keys is not None:
            keys.apply(s)
        s.connect(endpoint or self.console.command_endpoint)
        self.sockets.append(s)
        return s


def _start_console(hub: ControlHub, stage: Any, keys_dir: Path, **kw: Any) -> ZmqConsole:
    settings = dataclasses.replace(stage.console.zmq, port=0, state_port=0, keys=keys_dir)
    return ZmqConsole(hub, settings, stage.path.parent, **kw).start()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    stage = load_stage(STAGES / "flat_wall.yaml")
    keys_dir = tmp_path / "keys"
    make_keys(keys_dir, ["ctl", "desk"])
    hub = ControlHub(stage, state_path=tmp_path / "flat_wall.operator.json")
    driver = FrameDriver(hub)
    console = _start_console(hub, stage, keys_dir)
    e = Env(stage, hub, driver, console, keys_dir, zmq.Context(), [])
    yield e
    for s in e.sockets:
        s.close()
    e.ctx.term()
    t0 = time.monotonic()
    console.close()
    assert time.monotonic() - t0 < 1.0  # well under hub.submit's 2 s wait
    assert not console.running
    driver.stop()
    hub.close()


def _stranger(tmp_path: Path, server_public: bytes) -> ClientKeys:
    """A well-formed key pair that is not in keys/clients."""
    d = tmp_path / "stranger"
    d.mkdir()
    _, secret_file = zmq.auth.create_certificates(str(d), "stranger")
    public, secret = zmq.auth.load_certificate(secret_file)
    assert secret is not None
    return ClientKeys(public, secret, server_public, "stranger")


def _send_raw(sock: zmq.Socket, payload: bytes | list[bytes]) -> dict | None:
    """DEALER request with an empty delimiter; the decoded reply, or None after NO_REPLY_S (also when the
    request cannot even be sent because the connection was refused before it)."""
    frames = payload if isinstance(payload, list) else [payload]
    try:
        sock.send_multipart([b"", *frames])
    except zmq.Again:
        return None
    if not sock.poll(int(NO_REPLY_S * 1000)):
        return None
    reply = sock.recv_multipart()
    assert reply[0] == b"" and len(reply) == 2
    return json.loads(reply[1])


# ------------------------------------------------------------------------------------------------ commands


def test_authenticated_card_add_is_acked_at_its_frame_and_reaches_the_planner(env: Env) -> None:
    client = env.client()
    before = env.driver.frame
    ack = client.request("card.add", CARD_ARGS, timeout_s=3.0)
    after = env.driver.frame
    assert ack["ok"] is True, ack
    assert ack["command"] == "card.add"
    assert before < ack["frame"] <= after  # applied at a frame boundary that ran while we waited
    assert ack["seq"] == 1 and ack["result"] == {"id": "card-1"}
    cards = env.hub.features.light_cards
    assert [(c.id, c.wall, c.rect) for c in cards] == [("card-1", "wall", (0.1, 0.1, 0.3, 0.4))]
    assert env.hub.log[-1]["who"] == "zmq:ctl"  # the caller is named by its key file

    # move keeps the size: centre (0.5, 0.5), width 0.2, height 0.3 -> [0.4, 0.35, 0.6, 0.65]
    ack = env.client("desk").request("card.move", {"id": "card-1", "u": 0.5, "v": 0.5})
    assert ack["ok"] and ack["seq"] == 2
    assert env.hub.features.light_cards[0].rect == pytest.approx((0.4, 0.35, 0.6, 0.65), abs=1e-12)
    assert env.hub.log[-1]["who"] == "zmq:desk"
    # the change was persisted before the ack
    saved = json.loads((env.hub.state_path or Path()).read_text())
    assert json.dumps(saved).count("card-1") >= 1
    assert wait_for(lambda: env.console.stats()["replies"] == 2, 1.0)  # counted just after sending
    st = env.console.stats()
    assert st["requests_by_client"] == {"zmq:ctl": 1, "zmq:desk": 1}
    assert st["refused"] == 0 and st["bad_requests"] == 0


def test_read_only_commands_answer_at_once(env: Env) -> None:
    assert wait_for(lambda: env.hub.status(), 2.0)
    env.driver.pause()  # no frames: a read-only command must not wait for one
    client = env.client()
    t0 = time.monotonic()
    ack = client.request("help", {"command": "card.add"}, timeout_s=1.0)
    assert time.monotonic() - t0 < 1.5  # a command that waited for a frame would wait hub.submit's 2 s
    assert ack["ok"] and [c["name"] for c in ack["result"]["commands"]] == ["card.add"]
    ack = client.request("state", {}, timeout_s=1.0)
    assert ack["ok"] and ack["result"]["seq"] == env.hub.seq
    assert ack["result"]["state"] == env.hub.snapshot()["state"]
    ack = client.request("status", {}, timeout_s=1.0)
    assert ack["ok"] and ack["result"]["fps"] == 100.0
    env.driver.resume()


def test_bad_commands_get_the_error_and_change_nothing(env: Env) -> None:
    client = env.client()
    before = env.hub.snapshot()
    ack = client.request("card.explode", {})
    assert ack["ok"] is False and "card.explode" in ack["error"] and "\n" not in ack["error"]
    ack = client.request("card.add", {"wall": "nope", "rect": [0.1, 0.1, 0.3, 0.4]})
    assert ack["ok"] is False and "wall" in ack["error"]
    ack = client.request("card.add", {"wall": "wall", "rect": [0.5, 0.1, 0.2, 0.3]})  # u0 > u1
    assert ack["ok"] is False and "rect" in ack["error"]

    # malformed requests never reach the hub: answered, counted, dropped
    raw = env.raw(zmq.DEALER, env.keys())
    bad = [
        b"not json",
        b"[1, 2]",
        b'{"args": {}}',
        b'{"command": "card.add", "args": [1]}',
        b'{"command": "card.add", "args": {}, "extra": 1}',
        b"\xff\xfe",
        [b"{}", b"{}"],
    ]
    for payload in bad:
        reply = _send_raw(raw, payload)
        assert reply is not None and reply["ok"] is False and reply["error"], payload
    assert env.console.stats()["bad_requests"] == len(bad)
    # the transport is still serving, and nothing changed
    assert client.request("state", {})["ok"]
    after = env.hub.snapshot()
    assert after["seq"] == before["seq"] == 0 and after["state"] == before["state"]
    assert env.hub.features.light_cards == ()


def test_dealer_tags_come_back_so_a_late_reply_is_not_mistaken(env: Env) -> None:
    """A DEALER may put any frames before the delimiter; they are echoed, so replies can be matched."""
    raw = env.raw(zmq.DEALER, env.keys())
    raw.send_multipart([b"tag-7", b"", json.dumps({"command": "card.add", "args": CARD_ARGS}).encode()])
    raw.send_multipart([b"tag-8", b"", json.dumps({"command": "help", "args": {}}).encode()])
    replies = {}
    for _ in range(2):
        assert raw.poll(3000)
        frames = raw.recv_multipart()
        replies[frames[0]] = json.loads(frames[2])
    assert replies[b"tag-7"]["command"] == "card.add" and replies[b"tag-7"]["ok"]
    assert replies[b"tag-8"]["command"] == "help"


def test_no_frame_in_time_is_answered_and_withdrawn(env: Env, tmp_path: Path) -> None:
    short = _start_console(env.hub, env.stage, env.keys_dir, submit_timeout_s=0.2)
    try:
        env.driver.pause()
        with ConsoleClient(short.command_endpoint, env.keys(), context=env.ctx) as c:
            ack = c.request("card.add", CARD_ARGS, timeout_s=2.0)
        assert ack["ok"] is False and "no frame ran within 0.2 s" in ack["error"]
        env.driver.resume()
        assert wait_for(lambda: env.driver.frame > 0 and env.hub.frame == env.driver.frame, 1.0)
        time.sleep(0.05)  # a few frames: the withdrawn command must not be applied by them
        assert env.hub.seq == 0 and env.hub.features.light_cards == ()
    finally:
        short.close()


# ------------------------------------------------------------------------------------------ authentication


def _refused(env: Env, *reasons: str) -> int:
    by = env.console.stats()["refused_by_reason"]
    return sum(by.get(r, 0) for r in reasons)


# A peer without CURVE is reported as a mechanism mismatch, or as a handshake that did not complete when it
# hung up first (libzmq reports whichever side noticed first).
NO_CURVE = ("no_curve", "handshake")


def test_unauthenticated_peers_get_no_reply_and_are_counted(env: Env, tmp_path: Path) -> None:
    server_public = env.keys().server_public
    request = json.dumps({"command": "card.add", "args": CARD_ARGS}).encode()

    plain = env.raw(zmq.DEALER, None)  # no CURVE at all
    assert _send_raw(plain, request) is None
    assert wait_for(lambda: _refused(env, *NO_CURVE) >= 1, 2.0)
    assert _refused(env, "unknown_key", "bad_handshake") == 0

    stranger_keys = _stranger(tmp_path, server_public)
    stranger = env.raw(zmq.DEALER, stranger_keys)  # CURVE, a key not in keys/clients
    assert _send_raw(stranger, request) is None
    assert wait_for(lambda: _refused(env, "unknown_key") >= 1, 2.0)
    assert _refused(env, "bad_handshake") == 0

    own = env.keys()
    wrong_server = ClientKeys(own.public, own.secret, zmq.curve_keypair()[0], "ctl")  # authorised key
    wrong = env.raw(zmq.DEALER, wrong_server)
    assert _send_raw(wrong, request) is None
    assert wait_for(lambda: _refused(env, "bad_handshake") >= 1, 2.0)
    wrong.close()  # it would keep reconnecting (and being refused) every 100 ms

    st = env.console.stats()
    assert st["refused"] >= 3
    assert st["requests"] == 0  # nothing reached the command handler
    assert list(st["unknown_keys"]) == [stranger_keys.public.decode("ascii")]
    assert st["unknown_keys"][stranger_keys.public.decode("ascii")]["address"] == "127.0.0.1"
    assert wait_for(
        lambda: any(p.startswith("127.0.0.1:") for p in env.console.stats()["refused_by_peer"]), 2.0
    )
    assert env.hub.seq == 0 and env.hub.features.light_cards == ()

    # the state stream is guarded too: a plain SUB hears nothing while an authorised follower does
    before = _refused(env, *NO_CURVE)
    plain_sub = env.raw(zmq.SUB, None, env.console.state_endpoint)
    plain_sub.setsockopt(zmq.SUBSCRIBE, b"")
    with StateFollower(
        env.console.command_endpoint, env.console.state_endpoint, env.keys(), context=env.ctx
    ) as follower:
        assert env.client().request("card.add", CARD_ARGS)["ok"]
        assert wait_for(lambda: bool(follower.poll(0.05)) and follower.seq == 1, 2.0)
    assert not plain_sub.poll(200)
    assert wait_for(lambda: _refused(env, *NO_CURVE) > before, 2.0)
    assert any(r["socket"] == "state" for r in env.console.stats()["refused_recent"])


def test_a_key_added_while_running_is_admitted(env: Env, tmp_path: Path) -> None:
    # made elsewhere (not authorised yet), then its public key is copied into keys/clients
    make_keys(tmp_path / "elsewhere", ["lighting"])
    (env.keys_dir / "lighting.key_secret").write_bytes(
        (tmp_path / "elsewhere" / "lighting.key_secret").read_bytes()
    )
    public = tmp_path / "elsewhere" / "clients" / "lighting.key"
    secret = zmq.auth.load_certificate(tmp_path / "elsewhere" / "lighting.key_secret")
    keys = ClientKeys(secret[0], secret[1] or b"", env.keys().server_public, "lighting")
    s = env.raw(zmq.DEALER, keys)
    assert _send_raw(s, json.dumps({"command": "help"}).encode()) is None
    shutil.copy(public, env.keys_dir / "clients" / "lighting.key")
    with ConsoleClient(env.console.command_endpoint, keys, context=env.ctx) as c:
        ack = c.request("card.add", CARD_ARGS, timeout_s=3.0)  # a new connection: the key is found now
    assert ack["ok"], ack
    assert env.hub.log[-1]["who"] == "zmq:lighting"


# ------------------------------------------------------------------------------------------- state stream


def _varied_commands(n: int) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for i in range(n):
        k = i % 5
        if k == 0:
            out.append(
                ("card.add", {"wall": "wall", "rect": [0.05, 0.05, 0.15 + 0.01 * i, 0.25], "id": f"c{i}"})
            )
        elif k == 1:
            out.append(("card.move", {"id": f"c{i - 1}", "u": 0.3 + 0.01 * i, "v": 0.5}))
        elif k == 2:
            out.append(("output.blackout", {"output": "all", "on": bool(i % 2)}))
        elif k == 3:
            out.append(("chroma.set", {"enabled": True, "color": [0, 177 + i, 64]}))
        else:
            out.append(("color.set", {"target": "wall", "exposure": 0.1 * i}))
    return out


def test_late_joiner_snapshot_plus_updates_reproduce_the_hub_state(env: Env) -> None:
    client = env.client()
    commands = _varied_commands(25)
    for name, args in commands[:5]:  # before the follower joins
        assert client.request(name, args)["ok"]
    with StateFollower(
        env.console.command_endpoint, env.console.state_endpoint, env.keys("desk"), context=env.ctx
    ) as follower:
        assert follower.seq == 5
        seen: list[int] = []

        def follow(timeout_s: float) -> int:
            seen.extend(ev["seq"] for ev in follower.poll(timeout_s) if ev.get("type") == "state")
            return follower.seq or 0

        for name, args in commands[5:]:
            ack = client.request(name, args)
            assert ack["ok"], ack
            follow(0.0)
        assert wait_for(lambda: follow(0.02) == env.hub.seq == 25, 3.0)
        assert seen == list(range(6, 26))  # every change once, in order, none from before the snapshot
        assert follower.gaps == 0 and follower.resyncs == 0 and follower.bad == 0
        assert follower.state == env.hub.snapshot()["state"]
        assert follower.status is not None and follower.status["fps"] == 100.0
        assert follower.status["phase_error_us"] is None  # NaN is not JSON: published as null


def test_a_lagging_subscription_resyncs_and_followers_stay_exact(tmp_path: Path) -> None:
    """With a tiny hub queue, a burst of changes applied in one frame overflows the transport's subscription;
    it publishes the snapshot instead (one state event with the newest seq) and followers stay exact."""
    stage = load_stage(STAGES / "flat_wall.yaml")
    make_keys(tmp_path / "keys", ["ctl"])
    hub = ControlHub(stage, persist=False, queue_size=2)
    driver = FrameDriver(hub)
    console = _start_console(hub, stage, tmp_path / "keys")
    ctx = zmq.Context()
    try:
        keys = load_client_keys(tmp_path / "keys")
        with StateFollower(console.command_endpoint, console.state_endpoint, keys, context=ctx) as follower:
            driver.pause()
            acks: list[dict] = []
            threads = [
                threading.Thread(target=lambda a=a: acks.append(hub.submit(*a, who="test")))
                for a in _varied_commands(10)[:1]
                + [("output.blackout", {"output": "all", "on": i % 2 == 0}) for i in range(11)]
            ]
            for t in threads:
                t.start()
            assert wait_for(lambda: len(hub._queue) == len(threads), 2.0)
            driver.resume()
            for t in threads:
                t.join(3.0)
            assert all(a["ok"] for a in acks) and hub.seq == 12
            assert wait_for(lambda: [follower.poll(0.02)] and follower.seq == 12, 3.0)
            assert follower.state == hub.snapshot()["state"]
        assert console.stats()["resyncs"] >= 1
    finally:
        ctx.term()
        console.close()
        driver.stop()
        hub.close()


# ----------------------------------------------------------------------------------------- start and close


def test_without_keys_the_transport_refuses_to_start(tmp_path: Path) -> None:
    stage = load_stage(STAGES / "flat_wall.yaml")
    hub = ControlHub(stage, persist=False)
    with pytest.raises(ZmqConsoleError, match=r"run `stagectl keys STAGE.yaml`") as exc:
        _start_console(hub, stage, tmp_path / "no-keys")
    assert "\n" not in str(exc.value)
    hub.close()


def test_a_taken_port_is_a_clear_error(env: Env) -> None:
    settings = dataclasses.replace(
        env.stage.console.zmq, port=env.console.port, state_port=0, keys=env.keys_dir
    )
    with pytest.raises(ZmqConsoleError, match=r"cannot bind the command socket to tcp://127.0.0.1:\d+"):
        ZmqConsole(env.hub, settings, env.stage.path.parent).start()
    assert env.client().request("help", {})["ok"]  # the running one is untouched


def test_close_is_quick_even_with_a_command_waiting_for_a_frame(env: Env) -> None:
    env.driver.pause()
    raw = env.raw(zmq.DEALER, env.keys())
    raw.send_multipart([b"", json.dumps({"command": "card.add", "args": CARD_ARGS}).encode()])
    assert wait_for(lambda: len(env.hub._queue) == 1, 2.0)  # a worker is blocked in hub.submit
    t0 = time.monotonic()
    env.console.close()
    assert time.monotonic() - t0 < 1.0  # well under hub.submit's 2 s wait
    assert not env.console.running
    env.console.close()  # idempotent
    with pytest.raises(ConsoleUnreachable, match=r"no reply within 0.3 s from tcp://127.0.0.1:\d+"):
        env.client().request("help", timeout_s=0.3)
    env.driver.resume()  # the orphaned command is applied by the hub; its reply has nowhere to go
