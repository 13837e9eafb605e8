"""Fixtures for loopback network tests: real UDP sockets and ZeroMQ contexts on 127.0.0.1, nothing left open,
nothing unbounded.

Following pyzmq's test discipline (``docs/reference/STYLE.md`` practice 10): every socket, receiver, sender
and simulator a test creates through these fixtures is closed at teardown (a receiver's close must return within
its 200 ms budget), ports are chosen by the kernel (bind port 0 and read it back), waits are on conditions
with timeouts (never a bare sleep), and every test here gets the ``net`` marker and a pytest-timeout limit.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from helpers import made_and_closed

from stagectl.tracking.receiver import Receiver
from stagectl.tracking.sender import Sender
from stagectl.tracking.simulator import Simulator

NET_TEST_TIMEOUT_S = 30
LOOPBACK = "127.0.0.1"
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/net as ``net`` and bound it with a timeout (unless it sets its own)."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.net)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(NET_TEST_TIMEOUT_S))


def free_udp_port(host: str = LOOPBACK) -> int:
    """A UDP port that was free a moment ago on ``host`` (bind port 0, read it, close). Prefer binding port 0
    in the socket that will be used; this is for a port that must be handed to a subprocess."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout_s: float = 3.0, interval_s: float = 0.002) -> bool:
    """Poll ``condition`` until it is truthy or ``timeout_s`` passed; returns its last truth value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(interval_s)


@pytest.fixture
def udp_socket() -> Iterator[Callable[..., socket.socket]]:
    """Factory of plain UDP sockets (optionally bound); all are closed at teardown."""
    made: list[socket.socket] = []

    def make(bind: tuple[str, int] | None = None) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        made.append(s)
        if bind is not None:
            s.bind(bind)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    """Factory of started receivers on 127.0.0.1, port 0 by default; closed (and stopped) at teardown."""
    made: list[Receiver] = []

    def make(protocol: str, **kw: Any) -> Receiver:
        kw.setdefault("bind", LOOPBACK)
        kw.setdefault("port", 0)
        r = Receiver(protocol, **kw)
        made.append(r)
        return r.start()

    yield make
    for r in made:
        t0 = time.monotonic()
        r.close(timeout_s=3.0)  # the select is woken, not timed out: a stuck thread would still be running
        assert not r.running, f"{r.name}: still running {time.monotonic() - t0:.3f} s after close"


@pytest.fixture
def make_sender() -> Iterator[Callable[..., Sender]]:
    """Factory of senders, ``make(protocol, port, host=127.0.0.1, **kw)``; closed at teardown."""

    def make(protocol: str, port: int, host: str = LOOPBACK, **kw: Any) -> Sender:
        return Sender(protocol, host, port, **kw)

    yield from made_and_closed(make, Sender.close)


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Simulator]]:
    """Factory of simulators; any still running is stopped at teardown."""

    def stop(s: Simulator) -> None:
        s.stop(timeout_s=1.0)
        assert not s.running

    yield from made_and_closed(Simulator, stop)


@pytest.fixture
def wait() -> Callable[..., bool]:
    """:func:`wait_for` as a fixture."""
    return wait_for


@pytest.fixture
def zctx() -> Iterator[zmq.Context]:
    """One ZeroMQ context for the test's primaries, nodes and sockets; at teardown it must terminate within
    2 s, which it only does when every socket has been closed."""
    ctx = zmq.Context()
    yield ctx
    done = threading.Event()
    threading.Thread(target=lambda: (ctx.term(), done.set()), daemon=True).start()
    assert done.wait(2.0), "zmq context did not terminate: a socket was left open"
