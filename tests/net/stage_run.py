"""`stagectl run` as a background process for the console tests: its output lines as they come, a clean stop;
the stage copies they run (free ports, a console section) and an OSC client of the running console."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
from helpers import EXE, STAGES, free_port
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

__all__ = ["EXE", "OscClient", "StageRun", "console_yaml", "first_frame", "flat_wall_text", "free_port",
           "stage_ports"]


def stage_ports(udp: tuple[str, ...] = ("tracking", "osc"),
                tcp: tuple[str, ...] = ("zmq", "zmq_state", "web")) -> dict[str, int]:
    """Free loopback ports by name: UDP for the names in ``udp``, TCP for those in ``tcp``."""
    ports = {name: free_port(socket.SOCK_DGRAM) for name in udp}
    ports.update({name: free_port(socket.SOCK_STREAM) for name in tcp})
    return ports


def flat_wall_text(ports: dict[str, int], name: str | None = None) -> str:
    """stages/flat_wall.yaml with its tracker on ``ports["tracking"]`` and, given ``name``, under that name (its
    own shared-memory names); no console section (:func:`console_yaml` goes at its end)."""
    text = (STAGES / "flat_wall.yaml").read_text()
    if name is not None:
        text = text.replace("name: Flat wall", f"name: {name}")
    return text.replace("port: 40000", f"port: {ports['tracking']}")


def console_yaml(ports: dict[str, int]) -> str:
    """A ``console:`` section to append to a stage file, all on 127.0.0.1: ZeroMQ on ``ports["zmq"]`` and
    ``ports["zmq_state"]`` (when ``zmq`` is given), OSC on ``ports["osc"]`` obeyed from 127.0.0.1 only, the web
    console on ``ports["web"]``."""
    text = "\nconsole:\n"
    if "zmq" in ports:
        text += f"  zmq: {{bind: 127.0.0.1, port: {ports['zmq']}, state_port: {ports['zmq_state']}}}\n"
    return text + (f"  osc:\n    bind: 127.0.0.1\n    port: {ports['osc']}\n"
                   "    allow:\n      - {address: 127.0.0.1}\n"
                   f"  web: {{bind: 127.0.0.1, port: {ports['web']}}}\n")


class OscClient:
    """An OSC client on 127.0.0.1 (an allowed address): ``send`` returns the ack ``(command, ok, frame,
    message)`` with the message's JSON decoded when it is a result."""

    def __init__(self, port: int, timeout_s: float = 10.0) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout_s)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args) -> tuple[str, int, int, object]:
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, ("127.0.0.1", self.port))
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        assert msg.address == "/stagectl/ack", msg.address
        command, ok, frame, text = msg.params
        return command, ok, frame, (json.loads(text) if ok else text)

    def keyed(self, address: str, args: dict) -> tuple[str, int, int, object]:
        """The keyed form: one string argument holding the JSON object of the arguments."""
        return self.send(address, json.dumps(args))

    def status(self) -> dict:
        return self.send("/stagectl/status")[3]

    def state(self) -> dict:
        return self.send("/stagectl/state")[3]

    def until(self, ok, what: str, timeout_s: float = 15.0) -> dict:
        """Poll the status until ``ok(status)``; the status."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status()
            if st and ok(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout_s} s; last status: {json.dumps(st)[:2000]}")
            time.sleep(0.1)

    def close(self) -> None:
        self.sock.close()


def first_frame(reader, after_frame: int, timeout_s: float = 20.0, poll_s: float = 0.005) -> tuple[int, np.ndarray]:
    """The first frame numbered ``after_frame`` or later of a sink ``reader`` (stagectl.render.sink.SinkReader):
    ``(frame, pixels)``, the pixels copied."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = reader.latest()
        if got is not None and got[0] >= after_frame:
            return got[0], got[2].copy()
        time.sleep(poll_s)
    raise AssertionError(f"no sink frame >= {after_frame} within {timeout_s} s")


class StageRun:
    """``stagectl run STAGE --sink --preview-every 0 --duration S [extra...]`` started at once."""

    def __init__(self, stage: Path, *extra: str, duration_s: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [EXE, "run", str(stage), "--duration", f"{duration_s:g}", "--sink", "--preview-every", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout_s: float = 60.0) -> re.Match:
        """The first new output line matching ``pattern`` (reading on); AssertionError with the output if none
        comes before the process ends or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> str:
        """SIGTERM, wait, and the whole output."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        self.lines.append(out)
        return "".join(self.lines)
