"""Helpers shared by test files in several folders (``from helpers import ...``: tests/ is on the import path, as
for ``from conftest import STAGES``): the ``stagectl`` executable, free loopback ports for subprocesses, copies
of the shipped stages on a free tracking port, the small one-wall stages of the colour tests, and the stage
rotation written out in plain numpy as the tests' reference (independent of stagectl.core.transforms)."""

from __future__ import annotations

import math
import socket
import sys
from typing import Any, TypeVar
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
EXE = str(Path(sys.executable).parent / "stagectl")


def made_and_closed(make: Callable[..., _T], close: Callable[[_T], Any]) -> Iterator[Callable[..., _T]]:
    """The body of a factory fixture, ``yield from made_and_closed(make, close)``: the test calls the factory as
    it would call ``make``, and every object made is closed with ``close`` at teardown, in the order made."""
    made: list[_T] = []

    def new(*args: Any, **kw: Any) -> _T:
        obj = make(*args, **kw)
        made.append(obj)
        return obj

    yield new
    for obj in made:
        close(obj)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port of ``kind`` (SOCK_STREAM / SOCK_DGRAM) that was free a moment ago, for a subprocess.
    Prefer binding port 0 in the socket that will be used; this is for a port that must be handed on."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    """A loopback UDP port that was free a moment ago (:func:`free_port` of SOCK_DGRAM)."""
    return free_port(socket.SOCK_DGRAM)


def load_stage_text(path: Path, text: str):
    """Write the stage YAML ``text`` to ``path`` and load it (:func:`stagectl.stage.load_stage`)."""
    from stagectl.stage import load_stage

    path.write_text(text, encoding="utf-8")
    return load_stage(path)


def stage_on_free_port(tmp_path: Path, name: str, *, lenses: bool = True) -> Path:
    """A copy of the shipped stage ``stages/<name>`` in ``tmp_path`` whose tracker listens on a free loopback
    UDP port; ``lenses``: its lens paths made absolute (they are relative to stages/)."""
    text = (STAGES / name).read_text().replace("port: 40000", f"port: {free_udp_port()}")
    if lenses:
        text = text.replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/")
    p = tmp_path / name
    p.write_text(text)
    return p


#: The tracking, camera and render sections of the small colour stages: FreeD tracker ``t`` (camera ID 1, port
#: 40000) feeding camera ``cam``, small inner (320 x 180) and outer (256 x 128) targets.
ONE_CAMERA = """\
tracking:
  - {name: t, protocol: freed, bind: 127.0.0.1, port: 40000, camera_id: 1}
cameras:
  - {name: cam, tracking: t, sensor_mm: [24.89, 14.0]}
render:
  inner: {resolution: [320, 180]}
  outer: {resolution: [256, 128]}
"""


def one_wall_stage(name: str, cabinets: tuple[int, int], outputs: Iterable[str], *, tail: str = ONE_CAMERA,
                   center: str = "0.0, 4.0, 1.5", pixels: tuple[int, int] = (32, 32)) -> str:
    """Stage YAML (frame rate 25) of one flat wall ``w`` at ``center`` (stage metres) of ``cabinets`` (columns,
    rows) 500 mm cabinets of ``pixels`` (32 x 32 by default), one processor ``p`` with ``outputs`` (one YAML
    flow mapping each, e.g. ``{name: a, canvas: [64, 64], mappings: [{wall: w, rect: [0, 0, 64, 64]}]}``), then ``tail``
    (:data:`ONE_CAMERA` by default; a ``colour:`` section goes after it). Without a tail the text has
    ``8 + len(outputs)`` lines."""
    cols, rows = cabinets
    head = (f"schema_version: 1\nname: {name}\nframe_rate: 25\nwalls:\n"
            f"  - {{name: w, type: flat, center: [{center}], cabinets: [{cols}, {rows}], "
            f"cabinet: {{size_mm: [500, 500], pixels: [{pixels[0]}, {pixels[1]}]}}}}\n"
            "processors:\n  - name: p\n    outputs:\n")
    return head + "".join(f"      - {o}\n" for o in outputs) + tail


def rot_ptr(pan: float, tilt: float, roll: float) -> np.ndarray:
    """R = Rz(pan) Rx(tilt) Ry(roll), degrees (docs/conventions.md), written out here rather than imported
    from stagectl, so that the tests check stagectl against an independent reference."""
    a, b, c = (math.radians(v) for v in (pan, tilt, roll))
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    ry = np.array([[math.cos(c), 0, math.sin(c)], [0, 1, 0], [-math.sin(c), 0, math.cos(c)]])
    return rz @ rx @ ry


#: A ``colour:`` section that captures what the composite feeds the encode: every output a 16-bit canvas with
#: ``transfer: gamma, gamma: 1`` (the signal is linear light in the working space), for comparing an encode
#: with OCIO's CPU processor applied to that light.
LINEAR_CAPTURE = """\
colour:
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgba16, transfer: gamma, gamma: 1.0}
    target: Linear Rec.709 (sRGB)
"""


def three_windows_stage(name: str, nodes: dict[str, str] | None = None) -> str:
    """Stage YAML ``name`` (frame rate 25) of the window tests: one flat wall (6 x 3 cabinets of 64 x 64 px) in
    thirds of 128 x 192 px on outputs pa/o1 (200 x 192), pa/o2 (192 x 160, turned 90 degrees) and pb/o3 (160 x
    200); camera ``cam`` on a FreeD tracker on a free loopback UDP port. ``nodes``: output name (``o1``) -> the
    cluster node that drives it."""
    text = f"""\
schema_version: 1
name: {name}
frame_rate: 25
walls:
  - name: wall
    type: flat
    center: [0.0, 4.0, 1.5]
    rotation: [0, 0, 0]
    cabinets: [6, 3]
    cabinet: {{size_mm: [500, 500], pixels: [64, 64]}}
processors:
  - name: pa
    kind: generic
    outputs:
      - name: o1
        canvas: [200, 192]
        mappings:
          - {{wall: wall, rect: [0, 0, 128, 192], at: [0, 0]}}
      - name: o2
        canvas: [192, 160]
        mappings:
          - {{wall: wall, rect: [128, 0, 128, 192], at: [0, 16], rotation: 90}}
  - name: pb
    kind: generic
    outputs:
      - name: o3
        canvas: [160, 200]
        mappings:
          - {{wall: wall, rect: [256, 0, 128, 192], at: [16, 8]}}
cameras:
  - name: cam
    tracking: tracker
    sensor_mm: [24.89, 14.0]
tracking:
  - name: tracker
    protocol: freed
    bind: 127.0.0.1
    port: {free_udp_port()}
    camera_id: 1
"""
    for output, node in (nodes or {}).items():
        text = text.replace(f"      - name: {output}\n", f"      - name: {output}\n        node: {node}\n")
    return text
