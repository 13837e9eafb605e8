"""`stagectl record` and `run` open tracking ports exclusively; a busy port is one line naming who holds it.

Before, the recorder set SO_REUSEADDR, so two recorders on one unicast port shared it silently (Linux then
hands each datagram to one of them) and a busy port was a bare errno text.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stagectl.tracking.receiver import Receiver, open_tracking_socket
from stagectl.tracking.recording import open_udp_receiver

pytestmark = pytest.mark.net

EXE = [str(Path(sys.executable).parent / "stagectl")]


def test_a_second_recorder_socket_on_a_port_fails_instead_of_sharing() -> None:
    first = open_udp_receiver(0, "127.0.0.1")
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError):
            open_udp_receiver(port, "127.0.0.1").close()
        # and a receiver cannot be started on the recorder's port either (nor the other way round)
        rx = Receiver("freed", bind="127.0.0.1", port=port)
        with pytest.raises(Exception, match=rf"port {port} is in use by another process \(this process"):
            rx.start()
        rx.close()
    finally:
        first.close()


def test_record_refuses_a_busy_port_naming_who_holds_it(tmp_path: Path) -> None:
    holder = open_tracking_socket(0, "127.0.0.1")
    try:
        port = holder.getsockname()[1]
        proc = subprocess.run([*EXE, "record", "--protocol", "freed", "--bind", "127.0.0.1", "--port", str(port),
                               "--out", str(tmp_path / "t.stgtake"), "--duration", "0.5"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in proc.stderr
        assert f"port {port} is in use by another process (pid " in err[0], err
        assert not (tmp_path / "t.stgtake").exists()
    finally:
        holder.close()


def test_record_share_needs_a_group(tmp_path: Path) -> None:
    proc = subprocess.run([*EXE, "record", "--protocol", "freed", "--port", "40000", "--share",
                           "--out", str(tmp_path / "t.stgtake")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--share: only a multicast group can be shared" in proc.stderr


def test_shared_multicast_recorders_each_get_every_datagram() -> None:
    group = "239.255.77.7"
    a = open_udp_receiver(0, "127.0.0.1", group=group, share=True, timeout_s=2.0)
    port = a.getsockname()[1]
    try:
        b = open_udp_receiver(port, "127.0.0.1", group=group, share=True, timeout_s=2.0)
    except OSError as exc:  # pragma: no cover - the machine has no multicast on loopback
        a.close()
        pytest.skip(f"no loopback multicast here: {exc}")
    try:
        with pytest.raises(OSError):  # one that does not ask to share is refused
            open_udp_receiver(port, "127.0.0.1", group=group).close()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        for i in range(3):
            tx.sendto(bytes([i]), (group, port))
        tx.close()
        assert [a.recv(16) for _ in range(3)] == [b"\0", b"\1", b"\2"]
        assert [b.recv(16) for _ in range(3)] == [b"\0", b"\1", b"\2"]
    finally:
        a.close()
        b.close()


def test_run_on_a_busy_tracking_port_is_one_clear_line(tmp_path: Path) -> None:
    holder = open_tracking_socket(0, "0.0.0.0")
    try:
        port = holder.getsockname()[1]
        stages = Path(__file__).resolve().parents[2] / "stages"
        text = (stages / "flat_wall.yaml").read_text().replace("port: 40000", f"port: {port}")
        stage = tmp_path / "flat_wall.yaml"
        stage.write_text(text.replace("lens: lenses/", f"lens: {stages / 'lenses'}/"))
        proc = subprocess.run([*EXE, "run", str(stage), "--duration", "1", "--no-render", "--console", "off"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)  # as listen: the machine's state, not the file
        err = [ln for ln in proc.stderr.splitlines() if "error" in ln]
        assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"port {port} is in use by another process (pid " in err[0], err
        assert err[0].count("cannot listen") == 1, err  # said once, not "cannot listen for tracking: ...: cannot listen"
    finally:
        holder.close()
