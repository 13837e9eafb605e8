"""The OSC console transport over real UDP on loopback: a real ControlHub on the demo stage, a frame-driver
thread calling ``hub.apply_pending`` every 10 ms, python-osc clients sending commands and reading acks.

Every socket is bound to a kernel-chosen port; every wait is on a condition with a timeout. Expected values
(card rectangles after a move or a resize, float32 readings) are worked out by hand here, not taken from the
code under test.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient
from helpers import made_and_closed

from stagectl.console.commands import COMMANDS as SPECS
from stagectl.console.commands import GROUPS
from stagectl.console.hub import ControlHub
from stagectl.console.osc_transport import (
    ACK_ADDRESS,
    STAT_KEYS,
    USAGE,
    OscArgError,
    OscConsole,
    address_of,
    parse_args,
)
from stagectl.core.features import FeatureState
from stagectl.stage.loader import load_stage
from stagectl.stage.model import OscAllow, OscConsoleSettings

from .conftest import free_udp_port, wait_for

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "stages" / "demo.yaml"
ALL_GROUPS = list(GROUPS)
OUT1, OUT2 = "tessera-a/out1", "tessera-a/out2"


@pytest.fixture(scope="module")
def stage():
    return load_stage(DEMO)


class FrameDriver:
    """Calls ``hub.apply_pending(k)`` every 10 ms with k = last_frame + 1, + 2, ... and keeps the features
    after each frame."""

    def __init__(self, hub: ControlHub, last_frame: int = 0) -> None:
        self.hub = hub
        self.features: dict[int, Any] = {}
        self.frame = last_frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-frame-driver", daemon=True)

    def start(self) -> FrameDriver:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.frame += 1
            self.hub.apply_pending(self.frame)
            self.features[self.frame] = self.hub.features

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        assert not self._thread.is_alive()


@pytest.fixture
def hub(stage, tmp_path: Path) -> Iterator[ControlHub]:
    h = ControlHub(stage, tmp_path / "demo.operator.json")
    yield h
    h.close()


@pytest.fixture
def driver(hub: ControlHub) -> Iterator[FrameDriver]:
    d = FrameDriver(hub).start()
    yield d
    d.stop()


@pytest.fixture
def make_console(hub: ControlHub) -> Iterator[Callable[..., OscConsole]]:
    """Started consoles on 127.0.0.1 (kernel-chosen port); each must close within 200 ms at teardown."""
    made: list[OscConsole] = []

    def make(allow: list | None = None, **kw: Any) -> OscConsole:
        if allow is None:
            allow = [OscAllow("127.0.0.1", tuple(ALL_GROUPS))]
        if all(isinstance(a, OscAllow) for a in allow):  # the stage file's settings, as the loader makes them
            settings: Any = OscConsoleSettings("127.0.0.1", 0, tuple(allow))
        else:  # a mapping, for keys the stage file does not have yet (reply_port)
            settings = {"bind": "127.0.0.1", "port": 0, "allow": allow}
        c = OscConsole(hub, settings, **kw).start()
        made.append(c)
        return c

    yield make
    for c in made:
        t0 = time.monotonic()
        c.close()
        assert time.monotonic() - t0 < 1.0  # well under hub.submit's 2 s wait
        assert not c.running


class Client:
    """A python-osc SimpleUDPClient sending to the console, reading the acks that come back to its port."""

    def __init__(self, console: OscConsole) -> None:
        host, port = console.address
        self.osc = SimpleUDPClient(host, port)
        self.target = (host, port)

    def send(self, address: str, *args: Any) -> None:
        self.osc.send_message(address, list(args) if args else None)

    def send_raw(self, data: bytes) -> None:
        self.osc._sock.sendto(data, self.target)  # the client's own socket, so acks come back to it

    def ack(self, timeout_s: float = 3.0) -> tuple[str, int, int, str] | None:
        """The next ``/stagectl/ack`` as ``(command, ok, frame, message)``; None when none came in time."""
        data = self.osc.receive(timeout_s)
        if not data:
            return None
        msg = OscMessage(data)
        assert msg.address == ACK_ADDRESS
        assert len(msg.params) == 4 and [type(p) for p in msg.params] == [str, int, int, str]
        return tuple(msg.params)  # type: ignore[return-value]

    def command(self, address: str, *args: Any) -> tuple[str, int, int, str]:
        self.send(address, *args)
        ack = self.ack()
        assert ack is not None, f"no ack for {address}"
        return ack

    def close(self) -> None:
        self.osc.close()


@pytest.fixture
def make_client() -> Iterator[Callable[[OscConsole], Client]]:
    """Factory of :class:`Client`; each closed at teardown."""
    yield from made_and_closed(Client, Client.close)


def f32(x: float) -> float:
    """The float64 value of float32(x): what python-osc reads from an ``f`` argument."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


def card(features, cid: str):
    return next((c for c in features.light_cards if c.id == cid), None)


# ------------------------------------------------------------------------------------------------------------
# Commands through OSC change the hub, acks carry the frame
# ------------------------------------------------------------------------------------------------------------


def test_card_add_move_resize_remove(hub, driver, make_console, make_client) -> None:
    console = make_console()
    client = make_client(console)

    cmd, ok, frame, message = client.command(
        "/stagectl/card/add", "main", 0.1, 0.2, 0.3, 0.4, 1.0, 0.5, 0.25, 2.0, "under", 3.0, "id", "key")
    assert (cmd, ok) == ("card.add", 1), message
    assert json.loads(message) == {"id": "key"}
    c = card(hub.features, "key")
    # float32 arguments arrive as the decimals the surface meant, not as float32(0.1) = 0.10000000149...
    assert c.rect == (0.1, 0.2, 0.3, 0.4) and f32(0.1) != 0.1
    assert (c.wall, c.color, c.intensity) == ("main", (1.0, 0.5, 0.25), 2.0)
    assert (c.layer, c.feather_px) == ("under", 3.0)
    # the ack's frame is the first frame whose features have the card
    assert card(driver.features[frame], "key") is not None
    assert card(driver.features.get(frame - 1, FeatureState()), "key") is None
    assert hub.log[-1]["frame"] == frame and hub.log[-1]["who"].startswith("osc:127.0.0.1:")

    # move keeps the size: centre (0.2, 0.3) -> (0.5, 0.6), half-size (0.1, 0.1)
    cmd, ok, frame2, message = client.command("/stagectl/card/move", "key", 0.5, 0.6)
    assert (cmd, ok) == ("card.move", 1), message
    assert frame2 > frame
    assert np.allclose(card(hub.features, "key").rect, (0.4, 0.5, 0.6, 0.7), atol=1e-12)
    # resize about the centre (0.5, 0.6) to 0.2 x 0.1
    assert client.command("/stagectl/card/resize", "key", 0.2, 0.1)[1] == 1
    assert np.allclose(card(hub.features, "key").rect, (0.4, 0.55, 0.6, 0.65), atol=1e-12)
    # card.set with key/value pairs; an int where a number is expected is fine
    assert client.command("/stagectl/card/set", "key", "intensity", 3, "layer", "over")[1] == 1
    assert (card(hub.features, "key").intensity, card(hub.features, "key").layer) == (3.0, "over")
    # a card without an id gets one, named in the ack
    cmd, ok, _, message = client.command("/stagectl/card/add", "ceiling", 0.0, 0.0, 0.5, 0.5)
    assert ok == 1 and json.loads(message) == {"id": "card-1"}
    assert card(hub.features, "card-1").color == (1.0, 1.0, 1.0)

    cmd, ok, frame3, _ = client.command("/stagectl/card/remove", "key")
    assert (cmd, ok) == ("card.remove", 1)
    assert card(hub.features, "key") is None and card(driver.features[frame3], "key") is None
    assert card(driver.features[frame3 - 1], "key") is not None
    s = console.stats()
    assert set(s) == set(STAT_KEYS)
    assert (s["received"], s["applied"], s["malformed"], s["errors"]) == (6, 6, 0, 0)


def test_blackout_pattern_colour_inner_chroma(hub, driver, make_console, make_client) -> None:
    client = make_client(make_console())

    assert client.command("/stagectl/output/blackout", OUT2, 1)[1] == 1
    assert hub.features.blackout == frozenset({OUT2}) and not hub.flags.blackout
    assert client.command("/stagectl/output/blackout", 1.0)[1] == 1  # a button: float 1.0, no output = all
    assert hub.flags.blackout
    assert client.command("/stagectl/output/blackout", "all", False)[1] == 1  # T/F: clears every blackout
    assert not hub.flags.blackout and hub.features.blackout == frozenset()

    cmd, ok, _, message = client.command("/stagectl/pattern/set", OUT1, "checkerboard", 4, "timecode",
                                         "frame")
    assert (cmd, ok) == ("pattern.set", 1), message
    p = hub.features.pattern_of(OUT1)
    assert (p.kind, p.squares, p.burn_in) == ("checkerboard", 4, ("frame", "timecode"))
    assert client.command("/stagectl/pattern/set", OUT2, "solid", 1.0, 0.0, 0.5)[1] == 1
    assert hub.features.pattern_of(OUT2).color == (1.0, 0.0, 0.5)

    cmd, ok, _, message = client.command("/stagectl/color/set", "main", "exposure", 0.5, "temperature", 5600)
    assert (cmd, ok) == ("color.set", 1), message
    cc = hub.features.color_of("main")
    assert (cc.exposure, cc.temperature, cc.gains) == (0.5, 5600.0, None)
    # merged: gains replace the temperature, the exposure stays
    assert client.command("/stagectl/color/set", "main", "gains", 1.0, 0.9, 0.8)[1] == 1
    cc = hub.features.color_of("main")
    assert (cc.exposure, cc.temperature, cc.gains) == (0.5, None, (1.0, 0.9, 0.8))
    assert client.command("/stagectl/color/set", "inner", "slope", 1.1, 1.0, 0.9, "saturation", 0.8)[1] == 1
    assert hub.features.inner_color.slope == (1.1, 1.0, 0.9) and hub.features.inner_color.saturation == 0.8
    assert client.command("/stagectl/color/reset", "main")[1] == 1
    assert hub.features.color_of("main") is None

    assert client.command("/stagectl/inner/set", 0)[1] == 1
    assert not hub.flags.inner_enabled
    assert client.command("/stagectl/chroma/set", 1, 0, 200, 0)[1] == 1
    key = hub.features.chroma_key
    assert key.enabled and np.allclose(key.color, (0.0, 200 / 255, 0.0))

    cmd, ok, _, message = client.command(
        "/stagectl/camera/set", "cam-a", "overscan_percent", 5.0, 6.0, 7.0, 8.0, "smoothing", 2.0, 0.5,
        "freeze", 1, "delay_frames", 1.5)
    assert (cmd, ok) == ("camera.set", 1), message
    cam = hub.state.camera("cam-a")
    assert cam.overscan_percent == (5.0, 6.0, 7.0, 8.0) and cam.freeze and cam.delay_frames == 1.5
    assert (cam.smoothing.min_cutoff_hz, cam.smoothing.beta) == (2.0, 0.5)
    assert client.command("/stagectl/camera/set", "cam-a", "smoothing", "off", "overscan_percent", 12)[1] == 1
    cam = hub.state.camera("cam-a")
    assert cam.smoothing is None and cam.overscan_percent == (12.0,) * 4


def test_keyed_json_form(hub, driver, make_console, make_client) -> None:
    client = make_client(make_console())
    args = {"wall": "main", "rect": [0.05, 0.1, 0.25, 0.6], "id": "json-card", "color": [1, 0.9, 0.8],
            "intensity": 1.5, "layer": "under"}
    cmd, ok, _, message = client.command("/stagectl/card/add", json.dumps(args))
    assert (cmd, ok) == ("card.add", 1), message
    c = card(hub.features, "json-card")
    assert (c.rect, c.color, c.intensity, c.layer) == ((0.05, 0.1, 0.25, 0.6), (1.0, 0.9, 0.8), 1.5, "under")
    # a bool given as 0 in the keyed form (a button's value pasted into a template)
    assert client.command("/stagectl/inner/set", '{"enabled": 0}')[1] == 1
    assert not hub.flags.inner_enabled
    # a single plain string is still the positional form
    assert client.command("/stagectl/card/remove", "json-card")[1] == 1
    assert hub.features.light_cards == ()


def test_read_only_commands_answer_with_json(hub, driver, make_console, make_client) -> None:
    hub.publish_status({"frame": 12, "fps": 23.976, "cameras": {}})
    client = make_client(make_console())
    assert wait_for(lambda: hub.frame is not None)
    cmd, ok, frame, message = client.command("/stagectl/status")
    assert (cmd, ok) == ("status", 1) and frame >= 1
    assert json.loads(message)["fps"] == 23.976
    cmd, ok, _, message = client.command("/stagectl/help", "/stagectl/card/move")
    assert ok == 1 and [c["name"] for c in json.loads(message)["commands"]] == ["card.move"]
    cmd, ok, _, message = client.command("/stagectl/state")
    assert ok == 1 and json.loads(message)["seq"] == hub.seq


# ------------------------------------------------------------------------------------------------------------
# Refusals: bad arguments, unlisted sources, read-only groups, garbage
# ------------------------------------------------------------------------------------------------------------


def test_bad_arguments_get_error_acks_and_change_nothing(hub, driver, make_console, make_client) -> None:
    console = make_console()
    client = make_client(console)
    assert client.command("/stagectl/card/add", "main", 0.1, 0.1, 0.2, 0.2, "id", "a")[1] == 1
    before, seq = hub.features, hub.seq

    cases = [
        (("/stagectl/card/move", "a", 0.5), "card.move", "missing argument 3"),            # too few
        (("/stagectl/card/move", 7, 0.5, 0.5), "card.move", "expected a string"),           # wrong type
        (("/stagectl/card/remove", "a", "b"), "card.remove", "too many arguments"),
        (("/stagectl/output/blackout", OUT1, 0.5), "output.blackout", "expected 0/1"),  # a fader's value
        (("/stagectl/color/set", "main", "exposur", 1.0), "color.set", "expected a key"),
        (("/stagectl/card/add", '{"wall": "main", '), "card.add", "not valid JSON"),
        (("/stagectl/card/fly", "a"), "card.fly", "unknown address /stagectl/card/fly"),
        (("/stagectl/card/*", "a"), "card.*", "address patterns are not accepted"),
    ]
    for args, command, text in cases:
        cmd, ok, frame, message = client.command(*args)
        assert (cmd, ok, frame) == (command, 0, -1), (args, message)
        assert text in message, (args, message)
        assert "\n" not in message
    malformed = len(cases)
    # arguments that parse but that the hub refuses: counted as errors, answered with the hub's message
    hub_cases = [
        (("/stagectl/card/move", "nope", 0.5, 0.5), "no light card 'nope'"),
        (("/stagectl/card/add", "nowall", 0.1, 0.1, 0.2, 0.2), "walls"),
        (("/stagectl/card/add", "main", 0.3, 0.1, 0.2, 0.2), "u0 < u1"),
        (("/stagectl/pattern/set", OUT1, "plaid"), "expected one of"),
        (("/stagectl/color/set", "main", "exposure", 99.0), "-16..16"),
    ]
    for args, text in hub_cases:
        cmd, ok, frame, message = client.command(*args)
        assert (ok, frame) == (0, -1) and text in message, (args, message)
    assert hub.features == before and hub.seq == seq
    s = console.stats()
    assert s["malformed"] == malformed and s["errors"] == len(hub_cases) and s["applied"] == 1


def test_unlisted_source_is_refused_counted_and_logged_once(hub, driver, make_console, caplog) -> None:
    console = make_console()  # only 127.0.0.1 is listed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))  # loopback answers every 127/8 address
        s.settimeout(0.3)
        msg = OscMessageBuilder("/stagectl/card/add")
        for a in ("main", 0.1, 0.1, 0.2, 0.2):
            msg.add_arg(a)
        with caplog.at_level(logging.WARNING, logger="stagectl.console.osc"):
            for _ in range(3):
                s.sendto(msg.build().dgram, console.address)
            assert wait_for(lambda: console.stats()["refused_source"] == 3)
            with pytest.raises(socket.timeout):  # no answer to an unlisted sender
                s.recvfrom(4096)
    assert hub.features.light_cards == () and hub.seq == 0
    s = console.stats()
    assert (s["received"], s["refused_source"], s["applied"], s["malformed"]) == (3, 3, 0, 0)
    refusals = [r for r in caplog.records if "127.0.0.2" in r.getMessage()]
    assert len(refusals) == 1 and "not in console.osc.allow" in refusals[0].getMessage()


def test_read_only_groups_are_refused(hub, driver, make_console, make_client) -> None:
    console = make_console(allow=[OscAllow("127.0.0.1", ("color",)), OscAllow("127.0.0.0/8", ())])
    client = make_client(console)  # 127.0.0.1: the first matching entry (writes colour only) applies
    cmd, ok, frame, message = client.command("/stagectl/card/add", "main", 0.1, 0.1, 0.2, 0.2)
    assert (cmd, ok, frame) == ("card.add", 0, -1)
    assert message == "card.add: 'card' is read-only for 127.0.0.1 (console.osc.allow)"
    cmd, ok, _, message = client.command("/stagectl/output/blackout", 1)
    assert (cmd, ok) == ("output.blackout", 0) and "'output' is read-only" in message
    assert hub.features.light_cards == () and not hub.flags.blackout
    assert client.command("/stagectl/status")[1] == 1  # read-only commands are always allowed
    assert client.command("/stagectl/color/set", "main", "exposure", 1.0)[1] == 1
    assert hub.features.color_of("main").exposure == 1.0
    s = console.stats()
    assert (s["refused_readonly"], s["applied"], s["refused_source"]) == (2, 2, 0)


def test_garbage_is_counted_and_the_console_keeps_working(hub, driver, make_console, make_client) -> None:
    console = make_console()
    client = make_client(console)
    good = OscMessageBuilder("/stagectl/inner/set")
    good.add_arg(0)
    good_dgram = good.build().dgram
    blob = OscMessageBuilder("/stagectl/inner/set")
    blob.add_arg(b"\x01\x02", OscMessageBuilder.ARG_TYPE_BLOB)
    garbage = [
        b"hello world",                      # not OSC
        b"",                                 # empty datagram
        b"/stagectl/inner/set\x00",          # address cut short (no padding)
        good_dgram[:-2],                     # int argument cut short
        good_dgram + b"\x00\x00\x00\x07",    # trailing bytes
        blob.build().dgram,                  # unsupported argument type
        b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 999) + b"/x\x00\x00",  # bundle element too long
        b"/stagectl/inner/set\x00,i\x00\x00\xff\xfe\x00",  # type tags garbled
        bytes(range(256)) * 4,
    ]
    for g in garbage:
        client.send_raw(g)
    answers = [client.ack(1.0) for _ in garbage]
    assert all(a is not None and a[1] == 0 and a[2] == -1 for a in answers), answers
    assert wait_for(lambda: console.stats()["malformed"] == len(garbage))
    assert console.running and hub.seq == 0
    # still working
    client.send_raw(good_dgram)
    ack = client.ack()
    assert ack is not None and ack[:2] == ("inner.set", 1) and not hub.flags.inner_enabled
    s = console.stats()
    assert (s["received"], s["malformed"], s["applied"]) == (len(garbage) + 1, len(garbage), 1)


# ------------------------------------------------------------------------------------------------------------
# Replies, ordering, bundles, close
# ------------------------------------------------------------------------------------------------------------


def test_acks_go_to_the_reply_port(hub, driver, make_console, make_client) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(3.0)
        console = make_console(allow=[{"address": "127.0.0.1", "write": ["inner"],
                                       "reply_port": listener.getsockname()[1]}])
        client = make_client(console)
        client.send("/stagectl/inner/set", 0)
        data, source = listener.recvfrom(4096)
        assert source == console.address  # acks come from the console's port
        msg = OscMessage(data)
        assert msg.address == ACK_ADDRESS and msg.params[:2] == ["inner.set", 1]
        assert client.ack(0.2) is None  # nothing to the sender's own port


def test_bundle_runs_in_order(hub, driver, make_console, make_client) -> None:
    client = make_client(make_console())
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, args in (("/stagectl/card/add", ["main", 0.0, 0.0, 0.2, 0.2, "id", "b"]),
                          ("/stagectl/card/move", ["b", 0.5, 0.5])):
        m = OscMessageBuilder(address)
        for a in args:
            m.add_arg(a)
        bundle.add_content(m.build())
    client.osc.send(bundle.build())
    acks = [client.ack(), client.ack()]
    assert [(a[0], a[1]) for a in acks] == [("card.add", 1), ("card.move", 1)]
    assert acks[1][2] >= acks[0][2]
    assert np.allclose(card(hub.features, "b").rect, (0.4, 0.4, 0.6, 0.6), atol=1e-12)


def test_a_fast_fader_is_coalesced_and_ends_at_its_last_value(hub, make_console, make_client) -> None:
    """While no frame runs every command waits; a newer move of the same card replaces the queued one."""
    console = make_console()
    client = make_client(console)
    driver = FrameDriver(hub).start()
    try:
        assert client.command("/stagectl/card/add", "main", 0.0, 0.0, 0.2, 0.2, "id", "f")[1] == 1
    finally:
        driver.stop()
    positions = [0.3, 0.4, 0.5, 0.6, 0.7]  # no frames now: the moves pile up
    for u in positions:
        client.send("/stagectl/card/move", "f", u, 0.5)
    assert wait_for(lambda: console.stats()["received"] == 1 + len(positions))
    driver = FrameDriver(hub, driver.frame).start()
    try:
        acks = []
        while (a := client.ack(0.5)) is not None:
            acks.append(a)
    finally:
        driver.stop()
    assert acks and all(a[:2] == ("card.move", 1) for a in acks), acks
    assert len(acks) + console.stats()["coalesced"] == len(positions) and len(acks) < len(positions)
    # the last position wins: centre (0.7, 0.5), size 0.2 x 0.2
    assert np.allclose(card(hub.features, "f").rect, (0.6, 0.4, 0.8, 0.6), atol=1e-12)


def test_close_is_fast_while_a_command_waits_for_a_frame(hub, make_console, make_client) -> None:
    console = make_console()  # no frame driver: the command blocks in hub.submit for up to 2 s
    client = make_client(console)
    client.send("/stagectl/inner/set", 0)
    assert wait_for(lambda: len(hub._queue) == 1)  # the worker is inside hub.submit, waiting for a frame
    t0 = time.monotonic()
    console.close()
    assert time.monotonic() - t0 < 1.0  # well under hub.submit's 2 s wait
    assert not console.running
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(console.address)  # the port is free again


def test_the_stage_file_console_section_drives_the_console(tmp_path: Path, make_client) -> None:
    """``console.osc`` from a stage file: the port, and an allow list whose first match is read-only."""
    port = free_udp_port()
    text = DEMO.read_text().replace("lenses/zoom_24-70.yaml", str(DEMO.parent / "lenses" / "zoom_24-70.yaml"))
    text += (f"\nconsole:\n  osc:\n    bind: 127.0.0.1\n    port: {port}\n    allow:\n"
             "      - {address: 127.0.0.1, write: [inner]}\n      - {address: 127.0.0.0/8, write: [card]}\n")
    path = tmp_path / "osc-stage.yaml"
    path.write_text(text)
    stage = load_stage(path)
    hub = ControlHub(stage, persist=False)
    driver = FrameDriver(hub).start()
    console = OscConsole(hub, stage.console.osc).start()
    try:
        assert console.address == ("127.0.0.1", port)
        client = make_client(console)
        assert client.command("/stagectl/inner/set", 0)[:2] == ("inner.set", 1)
        assert client.command("/stagectl/card/add", "main", 0.1, 0.1, 0.2, 0.2)[:2] == ("card.add", 0)
        assert not hub.flags.inner_enabled and hub.features.light_cards == ()
    finally:
        t0 = time.monotonic()
        console.close()
        assert time.monotonic() - t0 < 1.0  # well under hub.submit's 2 s wait
        driver.stop()
        hub.close()


def test_a_port_in_use_is_a_clear_error(hub) -> None:
    from stagectl.tracking.receiver import TransportError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(TransportError, match=rf"^console osc: cannot listen on 127.0.0.1:{port}: "):
            OscConsole(hub, {"bind": "127.0.0.1", "port": port, "allow": []}).start()


# ------------------------------------------------------------------------------------------------------------
# The address space itself (pure)
# ------------------------------------------------------------------------------------------------------------


def test_every_command_has_an_osc_form() -> None:
    assert list(USAGE) == list(SPECS)
    assert address_of("card.add") == "/stagectl/card/add" and address_of("status") == "/stagectl/status"


@pytest.mark.parametrize(("command", "values", "expected"), [
    ("card.add", ["main", 0.1, 0.2, 0.3, 0.4], {"wall": "main", "rect": [0.1, 0.2, 0.3, 0.4]}),
    ("card.add", ["main", 0, 0, 1, 1, 1, 0, 0, 2.5, "under", 10, "id", "x"],
     {"wall": "main", "rect": [0, 0, 1, 1], "color": [1, 0, 0], "intensity": 2.5, "layer": "under",
      "feather_px": 10, "id": "x"}),
    ("camera.set", ["cam-a", "smoothing", 1.0, 0.1, 2.0, "tracking", "t"],
     {"camera": "cam-a", "smoothing": {"min_cutoff_hz": 1.0, "beta": 0.1, "d_cutoff_hz": 2.0},
      "tracking": "t"}),
    ("camera.set", ["cam-a", "smoothing", '{"min_cutoff_hz": 3, "beta": 0}'],
     {"camera": "cam-a", "smoothing": {"min_cutoff_hz": 3, "beta": 0}}),
    ("color.set", ["inner", "lut", "null", "temperature", "null"], {"target": "inner", "lut": None,
                                                                    "temperature": None}),
    ("color.set", ["main", "lut", "looks/warm.cube"], {"target": "main", "lut": "looks/warm.cube"}),
    ("chroma.set", ["color", 0, 128, 0], {"color": [0, 128, 0]}),
    ("chroma.set", [True], {"enabled": True}),
    ("chroma.set", ["enabled", "off"], {"enabled": False}),
    ("output.blackout", [0], {"output": "all", "on": False}),
    ("pattern.set", ["p/o", "cabinet_id"], {"output": "p/o", "kind": "cabinet_id"}),
    ("color.patches", ["p/o", "stop"], {"output": "p/o", "action": "stop"}),
    ("color.patches", ["p/o", "start", "frames_per_patch", 2, "calibration", 1],
     {"output": "p/o", "action": "start", "frames_per_patch": 2, "calibration": True}),
    ("help", [], {}),
    ("record.start", [], {}),
    ("record.start", ["takes/a.stgtake"], {"path": "takes/a.stgtake"}),
    ("stage.reload", [], {}),
])
def test_positional_forms(command: str, values: list, expected: dict) -> None:
    assert parse_args(command, values) == expected


@pytest.mark.parametrize(("command", "values", "text"), [
    ("card.add", ["main", 0.1, 0.2, 0.3, 0.4, 1.0, 0.5], "expected f:r f:g f:b [f:intensity], got 2 numbers"),
    ("camera.set", ["cam-a"], "nothing to set"),
    ("camera.set", ["cam-a", "freeze"], "freeze: missing value"),
    ("camera.set", ["cam-a", "freeze", 1, "freeze", 0], "freeze given twice"),
    ("camera.set", ["cam-a", "smoothing", 1.0, 2.0, 3.0, 4.0], "got 4 numbers"),
    ("pattern.set", ["p/o", "solid", 1.0, 0.0], "got 2 numbers"),
    ("pattern.set", ["p/o", "solid", "date"], "burn-in: expected frame or timecode"),
    ("inner.set", [], "missing argument 1 (i:enabled)"),
    ("inner.set", ['["not", "an object"]'], "enabled: expected 0/1"),
    ("card.remove", ['{"id": 1'], "not valid JSON"),
    ("status", [1], "too many arguments"),
])
def test_positional_form_errors(command: str, values: list, text: str) -> None:
    with pytest.raises(OscArgError, match=None) as info:
        parse_args(command, values)
    assert text in str(info.value)
