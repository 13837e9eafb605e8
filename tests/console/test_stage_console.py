"""The stage file's ``console:`` section: defaults, every key, errors located as ``file:line: key: ...``."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.console.hub import ControlHub
from stagectl.console.state import default_state_path
from stagectl.core.errors import ConfigErrors
from stagectl.stage.loader import load_stage
from stagectl.stage.model import (
    CONSOLE_GROUPS,
    ConsolePaths,
    ConsoleSettings,
    OscAllow,
    OscConsoleSettings,
    WebConsoleSettings,
    ZmqConsoleSettings,
)

from .cases import GROUP_NAMES
from .conftest import FrameLoop


def with_console(stage_dir: Path, text: str) -> Path:
    """flat_wall.yaml with ``text`` appended (a ``console:`` section); returns the new file."""
    base = (stage_dir / "flat_wall.yaml").read_text()
    p = stage_dir / "console.yaml"
    p.write_text(base.rstrip("\n") + "\n" + text)
    return p


def line_of(path: Path, needle: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if needle in t)


def test_defaults(stage_dir):
    stage = load_stage(stage_dir / "flat_wall.yaml")
    assert stage.console == ConsoleSettings(
        ZmqConsoleSettings("127.0.0.1", 41320, 41321, stage_dir / "keys"),
        OscConsoleSettings("127.0.0.1", 41330, (OscAllow("127.0.0.1", CONSOLE_GROUPS),)),
        WebConsoleSettings("127.0.0.1", 41340),
        stage_dir / "flat_wall.operator.json",
        ConsolePaths(stage_dir / "takes", stage_dir / "scenes", stage_dir / "luts"),
    )
    assert ", ".join(CONSOLE_GROUPS) == GROUP_NAMES
    assert default_state_path(stage) == stage_dir / "flat_wall.operator.json"


def test_every_key(stage_dir):
    p = with_console(
        stage_dir,
        """
console:
  zmq: {bind: 0.0.0.0, port: 5555, state_port: 5556, keys: secrets/keys}
  osc:
    bind: 0.0.0.0
    port: 9001
    allow:
      - {address: 10.0.0.7, write: [card, color, card]}
      - {address: 10.0.1.0/24, write: []}
      - {address: 192.168.1.20, reply_port: 9000}
  web: {bind: 0.0.0.0, port: 8080}
  state_file: state/op.json
""",
    )
    c = load_stage(p).console
    assert c.zmq == ZmqConsoleSettings("0.0.0.0", 5555, 5556, stage_dir / "secrets" / "keys")
    assert c.osc.allow == (
        OscAllow("10.0.0.7", ("card", "color")),
        OscAllow("10.0.1.0/24", ()),
        OscAllow("192.168.1.20", CONSOLE_GROUPS, reply_port=9000),
    )
    assert (c.osc.bind, c.osc.port, c.web) == ("0.0.0.0", 9001, WebConsoleSettings("0.0.0.0", 8080))
    assert c.state_file == stage_dir / "state" / "op.json"
    assert c.osc.write_groups("10.0.0.7") == frozenset({"card", "color"})
    assert c.osc.write_groups("10.0.1.99") == frozenset()  # obeyed for read-only commands only
    assert c.osc.write_groups("10.0.2.1") is None  # not obeyed
    assert c.osc.write_groups("not an address") is None
    assert default_state_path(load_stage(p)) == stage_dir / "state" / "op.json"


def test_hub_uses_the_console_state_file(stage_dir):
    p = with_console(stage_dir, "console:\n  state_file: op/flat.json\n")
    hub = ControlHub(load_stage(p))
    loop = FrameLoop(hub).start()
    try:
        assert hub.submit("inner.set", {"enabled": False}, "test")["ok"]
    finally:
        loop.stop()
    assert hub.state_path == stage_dir / "op" / "flat.json", hub.state_path
    assert hub.state_path.exists()


@pytest.mark.parametrize(
    "text,needle,error",
    [
        (
            "console:\n  osc:\n    allow:\n      - {address: 127.0.0.1, write: [card, cards]}\n",
            "write: [card, cards]",
            f'console.osc.allow[0].write[1]: expected one of {GROUP_NAMES}, got "cards"',
        ),
        (
            "console:\n  osc:\n    allow:\n      - {address: 127.0.0.300}\n",
            "127.0.0.300",
            "console.osc.allow[0].address: expected an IPv4 address or network such as 127.0.0.1 or "
            "10.0.0.0/24, "
            'got "127.0.0.300"',
        ),
        (
            "console:\n  osc:\n    allow:\n      - {address: 127.0.0.1, write: card}\n",
            "write: card",
            f'console.osc.allow[0].write: expected a list of command groups ({GROUP_NAMES}), got "card"',
        ),
        (
            "console:\n  osc:\n    allow:\n      - {address: 127.0.0.1, read: [card]}\n",
            "read: [card]",
            "console.osc.allow[0].read: unknown key; expected one of: address, reply_port, write",
        ),
        (
            "console:\n  zmq: {port: 70000}\n",
            "port: 70000",
            "console.zmq.port: expected a value <= 65535, got 70000",
        ),
        (
            "console:\n  zmq: {bind: localhost}\n",
            "bind: localhost",
            'console.zmq.bind: expected an IPv4 address such as 127.0.0.1, got "localhost"',
        ),
        (
            "console:\n  web:\n    port: 41321\n",
            "port: 41321",
            "console.web.port: expected a TCP port other than console.zmq.state_port (41321), got 41321",
        ),
        (
            "console:\n  webb: {port: 1}\n",
            "webb:",
            "console.webb: unknown key; expected one of: osc, paths, state_file, web, zmq",
        ),
        (
            "console:\n  state_file: 5\n",
            "state_file",
            "console.state_file: expected a non-empty text value, got 5",
        ),
        ("console: [1]\n", "console:", "console: expected a mapping of keys, got [1]"),
    ],
)
def test_errors_are_located(stage_dir, text, needle, error):
    p = with_console(stage_dir, text)
    with pytest.raises(ConfigErrors) as ei:
        load_stage(p)
    assert str(ei.value) == f"{p}:{line_of(p, needle)}: {error}"
