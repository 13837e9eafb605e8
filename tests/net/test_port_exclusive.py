"""Tracking ports are exclusive: a second receiver, `stagectl listen` or `stagectl run` on a port that is in use
fails at start with a message that names the port and, where /proc shows it, the holder -- it never takes the
running receiver's packets away. A multicast group is shared only when every socket on it asks to.

Real UDP sockets on loopback, real `stagectl listen` processes; the first receiver always keeps receiving.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stagectl.tracking.codecs.freed import FreeDPacket, encode_freed
from stagectl.tracking.receiver import Receiver, TransportError, opentrackio_group

EXE = str(Path(sys.executable).parent / "stagectl")
LISTENING = re.compile(r"listening for freed on 127\.0\.0\.1:(\d+)")


def _freed(camera_id: int = 1) -> bytes:
    return encode_freed(FreeDPacket(camera_id, 10.0, -2.0, 0.5, 1000.0, 2000.0, 1500.0, 0x8000, 0x4000, 0))


def _loopback_multicast_works(group: str) -> bool:
    """Whether this kernel delivers multicast sent on lo back to a socket on lo (not every CI kernel does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
        r.bind((group, 0))
        r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
        r.settimeout(0.5)
        t.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        t.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        t.sendto(b"probe", (group, r.getsockname()[1]))
        try:
            return r.recv(16) == b"probe"
        except OSError:
            return False


def test_a_second_receiver_on_a_busy_unicast_port_fails_and_the_first_keeps_every_packet(
    make_receiver, udp_socket, wait
) -> None:
    first = make_receiver("freed", name="first")
    port = first.port
    second = Receiver("freed", name="second", bind="127.0.0.1", port=port)
    with pytest.raises(TransportError) as err:
        second.start()
    msg = str(err.value)
    assert f"port {port} is in use by another process" in msg, msg
    assert f"(this process: " in msg, msg  # the holder is named (here: this very process)
    assert not second.running
    # the wildcard address overlaps 127.0.0.1: refused too
    with pytest.raises(TransportError, match=f"port {port} is in use"):
        Receiver("freed", name="wild", bind="0.0.0.0", port=port).start()
    # the first one was not disturbed: every packet still reaches it
    tx = udp_socket()
    for _ in range(20):
        tx.sendto(_freed(), ("127.0.0.1", port))
    assert wait(lambda: first.stats(time.monotonic_ns()).samples == 20), first.stats(time.monotonic_ns())


def test_a_receiver_refuses_a_port_that_another_program_shares_with_so_reuseaddr(udp_socket) -> None:
    """A foreign socket that set SO_REUSEADDR (as stagectl did before) cannot pull our receiver into a share."""
    foreign = udp_socket()
    foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    foreign.bind(("127.0.0.1", 0))
    port = foreign.getsockname()[1]
    with pytest.raises(TransportError, match=f"port {port} is in use by another process"):
        Receiver("freed", bind="127.0.0.1", port=port).start()


def _listen(port: int, *extra: str, duration_s: float = 20.0) -> subprocess.Popen:
    return subprocess.Popen(
        [EXE, "listen", "--protocol", "freed", "--bind", "127.0.0.1", "--port", str(port), "--duration",
         f"{duration_s:g}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_stagectl_listen_on_a_running_port_exits_with_one_clear_line(make_receiver, udp_socket, wait) -> None:
    running = make_receiver("freed", name="running")  # what a `stagectl run` holds
    proc = _listen(running.port, "--count", "1", duration_s=10)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert f"port {running.port} is in use by another process (pid {os.getpid()}" in err, err
    assert "Traceback" not in err and out == ""
    tx = udp_socket()
    tx.sendto(_freed(), ("127.0.0.1", running.port))
    assert wait(lambda: running.stats(time.monotonic_ns()).samples == 1)


def test_a_receiver_started_after_stagectl_listen_fails_and_names_the_listen_process(udp_socket, wait) -> None:
    listen = _listen(0, "--count", "3")
    try:
        line = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = listen.stderr.readline()
            if LISTENING.search(line) or not line:
                break
        m = LISTENING.search(line)
        assert m, line
        port = int(m.group(1))
        with pytest.raises(TransportError) as err:
            Receiver("freed", name="late", bind="127.0.0.1", port=port).start()
        assert f"port {port} is in use by another process (pid {listen.pid}: " in str(err.value), str(err.value)
        assert "listen --protocol freed" in str(err.value)
        # listen still gets what is sent to its port
        tx = udp_socket()
        for _ in range(3):
            tx.sendto(_freed(), ("127.0.0.1", port))
        out, err_text = listen.communicate(timeout=20)
        assert listen.returncode == 0, err_text
        assert len(out.splitlines()) == 3, out
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.communicate()


def test_multicast_is_exclusive_unless_every_socket_asks_to_share(
    make_receiver, make_sender, make_simulator, wait
) -> None:
    group = opentrackio_group(9)
    first = make_receiver("opentrackio", name="first", group=group, camera_id=9)
    port = first.port
    # not shared: the same group and port is refused, with how to share on purpose
    with pytest.raises(TransportError) as err:
        Receiver("opentrackio", name="second", bind="127.0.0.1", port=port, group=group).start()
    assert f"port {port} (group {group}) is in use by another process" in str(err.value)
    assert "share_group: true" in str(err.value) and "--share" in str(err.value)
    # asking to share does not help while the holder did not ask
    with pytest.raises(TransportError, match="does not share it"):
        Receiver("opentrackio", name="third", bind="127.0.0.1", port=port, group=group, share=True).start()
    # another group on the same port never conflicts
    make_receiver("opentrackio", name="other-group", group=opentrackio_group(10), port=port)

    # both ask: both bind, and each gets every datagram (multicast is delivered to every member)
    shared_group = opentrackio_group(11)
    a = make_receiver("opentrackio", name="a", group=shared_group, share=True)
    b = make_receiver("opentrackio", name="b", group=shared_group, port=a.port, share=True)
    assert a.describe().endswith("(shared)") and b.port == a.port
    if not _loopback_multicast_works(shared_group):
        pytest.skip("this kernel does not deliver multicast on loopback; the binds were checked")
    tx = make_sender("opentrackio", a.port, host=shared_group, interface="127.0.0.1", ttl=1)
    make_simulator("orbit", "opentrackio", 200, sender=tx, source_number=11).run(count=5)
    assert wait(lambda: a.stats(time.monotonic_ns()).samples == 5 and b.stats(time.monotonic_ns()).samples == 5)


def test_share_is_for_multicast_only() -> None:
    with pytest.raises(ValueError, match="only a multicast group can be shared"):
        Receiver("freed", bind="127.0.0.1", port=0, share=True)
    proc = subprocess.run([EXE, "listen", "--protocol", "freed", "--share", "--count", "1"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "--share: only a multicast group" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
