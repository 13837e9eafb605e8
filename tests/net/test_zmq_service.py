"""The ZeroMQ service base shared by the stage console and the cluster (stagectl.sync.zmq_service), on its own:
real sockets on loopback with kernel-chosen ports, real CURVE keys, real threads.

A busy port is refused in one line and never shared; a message over the size bound never reaches the service
and its connection is counted; ``stop`` wakes the service thread through the pipe (not a poll timeout) and the
thread closes its sockets; a stuck thread cannot hang ``close``; a half-made start releases what it bound.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from stagectl.sync.zmq_security import load_client_keys, load_server_keys, make_keys
from stagectl.sync.zmq_service import ZmqPeer, ZmqService, ZmqServiceError, readable, recv_from, tcp_endpoint

from .conftest import wait_for

#: The service loops below wait this long in one poll: a stop that returns True came through the pipe.
LONG_POLL_MS = 60_000


class Echo:
    """A ROUTER service that answers every message with itself and keeps what it received (and from whom)."""

    def __init__(self, svc: ZmqService) -> None:
        self.svc = svc
        self.got: list[tuple[list[bytes], str | None]] = []

    def serve(self, router: zmq.Socket) -> None:
        svc = self.svc
        assert svc.pipe_end is not None
        poller = zmq.Poller()
        for s in (router, svc.pipe_end, *svc.monitor_sockets):
            poller.register(s, zmq.POLLIN)
        while True:
            events = dict(poller.poll(LONG_POLL_MS))
            if svc.pipe_end in events and svc.drain_pipe(lambda msg: None):
                return
            while readable(router):
                msg, user = recv_from(router, svc.keys is not None)
                self.got.append((msg[1:], user))
                router.send_multipart(msg, zmq.NOBLOCK)
            svc.handle_monitors(events)


@pytest.fixture
def services() -> Iterator[list[ZmqService]]:
    """Services a test makes; each stopped and closed at teardown."""
    made: list[ZmqService] = []
    yield made
    for svc in made:
        svc.stop(2.0)
        svc.close()


def _echo(services: list[ZmqService], port: int = 0, **listen) -> tuple[ZmqService, Echo, zmq.Socket]:
    svc = ZmqService("test")
    with svc.setting_up():
        router = svc.listen(zmq.ROUTER, "127.0.0.1", port, "command", **listen)
        svc.open_pipe()
    services.append(svc)
    echo = Echo(svc)
    svc.start(echo.serve, router, name="test-echo")
    return svc, echo, router


@pytest.fixture
def dealer(zctx: zmq.Context) -> Iterator:
    """Factory of DEALERs (linger 0) connected to a loopback port; closed at teardown (before ``zctx`` checks
    that its context terminates)."""
    made: list[zmq.Socket] = []

    def make(port: int) -> zmq.Socket:
        d = zctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        made.append(d)
        d.connect(tcp_endpoint("127.0.0.1", port))
        return d

    yield make
    for d in made:
        d.close()


def _ask(d: zmq.Socket, payload: bytes, timeout_s: float = 3.0) -> bytes | None:
    d.send(payload)
    return d.recv() if d.poll(int(timeout_s * 1000)) else None


def test_a_busy_port_is_refused_in_one_line_and_the_holder_keeps_serving(services, dealer) -> None:
    svc, _, _ = _echo(services)
    port = svc.ports["command"]
    for host in ("127.0.0.1", "*"):  # the same address, and the wildcard that overlaps it
        other = ZmqService("other", prefix="other: ")
        with pytest.raises(ZmqServiceError) as err, other.setting_up():
            other.listen(zmq.ROUTER, host, port, "command", what="second command")
        assert str(err.value) == (
            f"other: cannot bind the second command socket to {tcp_endpoint(host, port)}: port {port} is in use "
            "by another process (a port is never shared): stop the other one, or give this one another port")
        assert other.closed and other.context is None  # the failed start ended its context
    assert _ask(dealer(port), b"still here") == b"still here"  # the holder was not disturbed


def test_a_port_held_by_another_program_is_not_shared_even_with_so_reuseaddr(services) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq's own listeners do
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        svc = ZmqService("test", error=RuntimeError)
        with pytest.raises(RuntimeError, match=f"port {port} is in use by another process"), svc.setting_up():
            svc.listen(zmq.ROUTER, "127.0.0.1", port, "command")


def test_a_start_that_fails_half_way_releases_what_it_bound(services) -> None:
    held, _, _ = _echo(services)
    svc = ZmqService("half")
    with pytest.raises(ZmqServiceError, match="cannot bind the b socket"), svc.setting_up():
        svc.listen(zmq.PUB, "127.0.0.1", 0, "a")
        first = svc.ports["a"]
        svc.listen(zmq.PUB, "127.0.0.1", held.ports["command"], "b")
    # the port the failed start had bound is free again: a new service binds it
    again, _, _ = _echo(services, port=first)
    assert again.ports["command"] == first


def test_an_oversize_message_never_reaches_the_service_and_its_connection_is_counted(services, dealer) -> None:
    svc, echo, _ = _echo(services, max_msg_bytes=1024, monitor=True)
    d = dealer(svc.ports["command"])
    assert _ask(d, b"a" * 1000) == b"a" * 1000  # within the bound: served
    assert wait_for(lambda: svc.connections()["handshakes"] == 1)
    d.send(b"b" * 2000)  # over it: libzmq drops the message and closes the connection
    assert wait_for(lambda: svc.connections()["disconnected"] == 1), svc.connections()
    # the DEALER reconnects by itself and is served again; the big message never arrived
    assert _ask(d, b"c") == b"c"
    assert [m for m, _ in echo.got] == [[b"a" * 1000], [b"c"]]
    want = {"accepted": 2, "handshakes": 2, "disconnected": 1}
    assert wait_for(lambda: svc.connections() == want), svc.connections()
    assert svc.refusals.total == 0  # a dropped connection is not a refused handshake


def test_stop_wakes_the_service_thread_through_the_pipe_and_it_closes_its_sockets(services) -> None:
    svc, _, router = _echo(services)
    assert svc.running
    assert svc.stop(timeout_s=10.0)  # the loop polls for 60 s: only STOP can have ended it this soon
    assert not svc.running and router.closed and svc.pipe_end is not None and svc.pipe_end.closed
    svc.close()
    assert svc.context is None and svc.pipe is None
    assert not svc.send([b"late"])  # nothing to send to: refused, not raised
    assert svc.stop(0.1)  # idempotent
    svc.close()


def test_a_stuck_service_thread_cannot_hang_close() -> None:
    svc = ZmqService("stuck")
    with svc.setting_up():
        router = svc.listen(zmq.ROUTER, "127.0.0.1", 0, "command")
        svc.open_pipe()
    release = threading.Event()
    svc.start(lambda sock: release.wait(30), router, name="test-stuck")  # never reads the pipe
    assert not svc.stop(timeout_s=0.1)
    svc.close()  # destroys the context instead of waiting for the thread
    assert svc.context is None and router.closed
    release.set()
    assert svc.thread is not None
    svc.thread.join(5.0)
    assert not svc.running


def test_a_curve_service_admits_the_listed_keys_names_the_sender_and_counts_refusals(
    services, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    make_keys(keys_dir, ["ctl"])
    svc = ZmqService("curve", keys=load_server_keys(keys_dir))
    with svc.setting_up():
        router = svc.listen(zmq.ROUTER, "127.0.0.1", 0, "command", max_msg_bytes=1024)
        svc.open_pipe()
    services.append(svc)
    echo = Echo(svc)
    svc.start(echo.serve, router, name="test-curve")
    endpoint = tcp_endpoint("127.0.0.1", svc.ports["command"])

    peer = ZmqPeer(load_client_keys(keys_dir))
    d = peer.socket(zmq.DEALER)
    d.connect(endpoint)
    assert _ask(d, b"hello") == b"hello"
    assert echo.got == [([b"hello"], "ctl")]  # the sender's User-Id: its key file's stem

    stranger_public, stranger_secret = zmq.curve_keypair()  # a key nobody listed
    other = ZmqPeer()
    s = other.socket(zmq.DEALER)
    s.curve_publickey, s.curve_secretkey = stranger_public, stranger_secret
    s.curve_serverkey = load_client_keys(keys_dir).server_public
    s.connect(endpoint)
    s.send(b"let me in")
    assert wait_for(lambda: svc.refusals.by_reason.get("unknown_key", 0) >= 1), svc.refusals.as_dict()
    assert len(echo.got) == 1  # nothing of the stranger's reached the service
    assert peer.close(timeout_s=2.0) and other.close(timeout_s=2.0)
