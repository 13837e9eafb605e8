"""A deep (10-bit HDR) stage end to end, in real processes with real shared memory: ``stagectl run --sink`` and
``stagectl node --sink`` publish the 10-bit signal, PNG previews and console thumbnails are 8-bit pictures,
output windows ask for 10 bits and the run says what the driver gave.

References, none of them stagectl's own encode:

* a solid test pattern makes every mapped pixel of an output one known linear colour; its 10-bit PQ code is
  computed here from the published SMPTE ST 2084 constants and the BT.2087 Rec.709 -> Rec.2020 matrix, and
  its ACES 2.0 HDR code by OpenColorIO's CPU processor built here from the built-in studio config;
* the preview of that colour is OCIO's SDR view (``sRGB - Display``, its default view) of it;
* a sink frame of a rendered scene is compared with the renderer's own synchronous readback of the same
  frame (``read_rgb10_a2``, ``read_pixels``), the sink's words unpacked by the published bit layout of
  ``GL_UNSIGNED_INT_2_10_10_10_REV`` (red bits 0-9, green 10-19, blue 20-29, alpha 30-31).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import STAGES
from helpers import EXE, ONE_CAMERA, free_port, free_udp_port, one_wall_stage

from stagectl.render.sink import SinkReader

pytestmark = pytest.mark.gl

WORKING = "Linear Rec.709 (sRGB)"
HDR = ("Rec.2100-PQ - Display", "ACES 2.0 - HDR 1000 nits (P3 D65)")
ORANGE = (0.6, 0.25, 0.05)  # out1: ACES 2.0 HDR view (linear Rec.709, 1.0 = 100 nits)
BLUE = (0.05, 0.3, 0.9)     # out3: plain PQ 1000 nits in Rec.2020

# ---------------------------------------------------------------------------------------------- references


def _unpack(words: np.ndarray) -> np.ndarray:
    """``GL_UNSIGNED_INT_2_10_10_10_REV`` words -> (..., 4) codes, by the published layout."""
    w = words.astype(np.int64)
    return np.stack([w & 1023, (w >> 10) & 1023, (w >> 20) & 1023, w >> 30], axis=-1)


def _pq_codes(rgb709) -> np.ndarray:
    """10-bit full-range PQ codes of linear Rec.709 light (1.0 = 100 nits) on a 1000-nit wall in Rec.2020:
    BT.2087 matrix, clip at 1000 nits, SMPTE ST 2084 inverse EOTF, ``floor(1023 E + 0.5)``."""
    m = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    y = np.clip(m @ np.asarray(rgb709, float) * 100.0, 0.0, 1000.0) / 10000.0
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    e = ((c1 + c2 * y**m1) / (1.0 + c3 * y**m1)) ** m2
    return np.floor(1023.0 * e + 0.5).astype(int)


def _ocio(rgb, display: str, view: str | None = None) -> np.ndarray:
    """OCIO's CPU processor (built-in studio config): linear Rec.709 ``rgb`` through ``display`` / ``view``
    (default: the display's default view) -> signal floats."""
    import PyOpenColorIO as ocio

    cfg = ocio.Config.CreateFromFile("ocio://studio-config-latest")
    t = ocio.DisplayViewTransform(src=WORKING, display=display, view=view or cfg.getDefaultView(display))
    px = np.array([rgb], dtype=np.float32)
    cfg.getProcessor(t).getDefaultCPUProcessor().applyRGB(px)
    return px[0].astype(float)


def _sdr_preview(rgb) -> np.ndarray:
    """The 8-bit sRGB picture of linear ``rgb`` on an SDR screen: OCIO's default view of ``sRGB - Display``."""
    return np.floor(np.clip(_ocio(rgb, "sRGB - Display"), 0.0, 1.0) * 255.0 + 0.5).astype(int)


# ---------------------------------------------------------------------------------------------- processes


def _hdr_stage(tmp_path: Path, *, node: str | None = None) -> Path:
    """stages/demo_hdr.yaml on a free tracking port, under a name of its own (its own shared-memory rings),
    with solid patterns on out1 (ORANGE) and out3 (BLUE); out2 shows the rendered scene. ``node``: out3 is
    rendered by that cluster node."""
    text = (STAGES / "demo_hdr.yaml").read_text()
    text = text.replace("port: 40000", f"port: {free_udp_port()}")
    text = text.replace("lens: lenses/", f"lens: {STAGES / 'lenses'}/")
    text = text.replace("name: Demo volume HDR", f"name: HDR {uuid.uuid4().hex[:8]}")
    patterns = (f"  patterns:\n    tessera-a/out1: {{kind: solid, color: {list(ORANGE)}}}\n"
                f"    tessera-b/out3: {{kind: solid, color: {list(BLUE)}}}\n")
    anchor = "    viewpoint: [0.0, 0.0, 1.7]\n"
    assert text.count(anchor) == 1
    text = text.replace(anchor, anchor + patterns)
    if node:
        text = text.replace("      - name: out3\n", f"      - name: out3\n        node: {node}\n")
    p = tmp_path / "hdr.yaml"
    p.write_text(text)
    return p


class _Proc:
    """A ``stagectl`` subprocess whose output lines are collected by a reader thread."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env)
        self.lines: list[str] = []
        self.t = threading.Thread(target=lambda: self.lines.extend(iter(self.p.stdout.readline, "")),
                                  daemon=True)
        self.t.start()

    def text(self) -> str:
        return "".join(self.lines)

    def rings(self, count: int, timeout_s: float = 120.0) -> dict[str, tuple[str, str]]:
        """Output key -> (ring name, what the line says about its pixels), once ``count`` sinks are announced."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = {m.group(1): (m.group(3), m.group(2)) for m in
                     re.finditer(r"output (\S+) \((.*?)\) -> shared memory '([A-Za-z0-9_]+)'", self.text())}
            if len(found) >= count:
                return found
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {count} sinks announced:\n{self.text()}")

    def finish(self, timeout_s: float = 120.0) -> str:
        try:
            self.p.wait(timeout_s)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait(5)
        self.t.join(5)
        return self.text()


def _latest(reader: SinkReader, timeout_s: float = 90.0):
    """The newest frame of a ring, waiting for the first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = reader.latest()
        if got is not None:
            return got
        time.sleep(0.02)
    raise AssertionError(f"no frame in {reader.name} within {timeout_s} s")


def _check_solid(frame, want_rgb: np.ndarray, mapped: tuple[slice, slice]) -> None:
    """A sink frame of a 1920 x 1080 rgb10_a2 output showing one colour where ``mapped``, black elsewhere."""
    assert frame.pixels.shape == (1080, 1920) and frame.pixels.dtype == np.uint32
    codes = _unpack(frame.pixels)
    assert np.all(codes[..., 3] == 3)
    inside = codes[mapped][..., :3].reshape(-1, 3)
    assert np.abs(inside - want_rgb).max() <= 1, (np.unique(inside, axis=0)[:5], want_rgb)
    outside = np.ones((1080, 1920), bool)
    outside[mapped] = False
    assert codes[outside][..., :3].max() == 0  # unmapped pixels: black (row 0 = top: the bottom rows)


# ---------------------------------------------------------------------------------------------- run


@pytest.mark.timeout(240)
def test_run_publishes_the_10bit_signal_and_writes_8bit_previews(tmp_path: Path) -> None:
    stage = _hdr_stage(tmp_path)
    run_dir = tmp_path / "run"
    run = _Proc("run", str(stage), "--duration", "2", "--sink", "--run-dir", str(run_dir), "--preview-every",
                "0.5", "--console", "off", "--no-realtime")
    readers = {}
    try:
        rings = run.rings(3)
        for key, (ring, said) in rings.items():
            assert said == "1920 x 1080 RGBA, 10-bit rgb10_a2: one packed uint32 a pixel", said
            readers[key] = SinkReader(ring, timeout_s=30)
            assert readers[key].format == "rgb10_a2"
            assert int.from_bytes(bytes(readers[key]._shm.buf[8:12]), "little") == 2  # a deep (version 2) ring
        frames = {key: _latest(r) for key, r in readers.items()}
        out = run.finish()
    finally:
        for r in readers.values():
            r.close()
        if run.p.poll() is None:
            run.p.kill()
    assert run.p.returncode == 0, out
    assert "Traceback" not in out and "frame must be" not in out, out
    # out1: the ACES 2.0 HDR 1000-nit view of the pattern colour (OCIO's CPU processor), on the main wall
    hdr = np.floor(_ocio(ORANGE, *HDR) * 1023.0 + 0.5).astype(int)
    _check_solid(frames["tessera-a/out1"], hdr, (slice(0, 1056), slice(0, 1760)))
    # out3: the published PQ maths, on the ceiling turned by 90 degrees (1408 x 1056 from the top-left)
    _check_solid(frames["tessera-b/out3"], _pq_codes(BLUE), (slice(0, 1056), slice(0, 1408)))
    # out2: the rendered scene at 10-bit precision: runs of neighbouring codes (an 8-bit signal carried in 10
    # bits would step by about 4)
    scene = _unpack(frames["tessera-a/out2"].pixels)
    steps = np.diff(np.unique(scene[:1056, :1056, 1]))
    assert scene[:1056, :1056, :3].mean() > 100 and np.count_nonzero(steps == 1) > 50, steps

    # previews: 8-bit sRGB PNGs (tone-mapped pictures, not the 10-bit codes), one per output
    assert "are 8-bit sRGB pictures tone-mapped for a screen" in out, out
    previews = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in run_dir.glob("preview_*.png")}
    assert sorted(previews) == ["preview_tessera-a_out1.png", "preview_tessera-a_out2.png",
                                "preview_tessera-b_out3.png"]
    for img in previews.values():
        assert img.dtype == np.uint8 and img.shape == (1080, 1920, 3)
    for name, colour in (("preview_tessera-a_out1.png", ORANGE), ("preview_tessera-b_out3.png", BLUE)):
        rgb = previews[name][:1056, :1408, ::-1].reshape(-1, 3).astype(int)
        assert np.abs(rgb - _sdr_preview(colour)).max() <= 2, (name, np.unique(rgb, axis=0)[:3],
                                                             _sdr_preview(colour))
    assert previews["preview_tessera-a_out2.png"][:1056, :1056].mean() > 40  # the scene, not black


# ---------------------------------------------------------------------------------------------- node


@pytest.mark.timeout(240)
def test_a_node_publishes_its_10bit_canvas(tmp_path: Path) -> None:
    stage = _hdr_stage(tmp_path, node="n1")
    where = f"127.0.0.1:{free_port()},{free_port()}"
    primary = _Proc("run", str(stage), "--cluster", where, "--no-render", "--console", "off", "--preview-every",
                    "0", "--duration", "120")
    node = reader = None
    try:
        deadline = time.monotonic() + 60
        while "cluster primary: frame states on" not in primary.text():
            assert time.monotonic() < deadline and primary.p.poll() is None, primary.text()
            time.sleep(0.05)
        node = _Proc("node", str(stage), "--name", "n1", "--primary", where, "--sink", "--duration", "8")
        rings = node.rings(1)
        assert list(rings) == ["tessera-b/out3"], node.text()
        ring, said = rings["tessera-b/out3"]
        assert "10-bit rgb10_a2" in said, said
        reader = SinkReader(ring, timeout_s=30)
        frame = _latest(reader)
        assert reader.format == "rgb10_a2"
        _check_solid(frame, _pq_codes(BLUE), (slice(0, 1056), slice(0, 1408)))
        out = node.finish()
    finally:
        if reader is not None:
            reader.close()
        if node is not None and node.p.poll() is None:
            node.p.kill()
        primary.p.terminate()
        primary.finish(30)
    assert node.p.returncode == 0 and "Traceback" not in out, out
    assert re.search(r"rendered (\d+) frames of 1 canvases headless \(0 failed\)", out), out


# ---------------------------------------------------------------------------------------------- windows

_WINDOW_STAGE = one_wall_stage("Deep windows", (8, 2), [
    "{name: ten, canvas: [128, 64], mappings: [{wall: w, rect: [0, 0, 128, 64]}]}",
    "{name: eight, canvas: [128, 64], mappings: [{wall: w, rect: [128, 0, 128, 64]}]}",
], tail=ONE_CAMERA.replace("camera_id: 1}", "camera_id: 1, simulate: orbit}")) + """\
colour:
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/ten: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
"""


def _xvfb(depth: int):
    """A private Xvfb screen of ``depth`` bits per pixel (24: 8 bits a channel, 30: 10); yields its display."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("GLFW windows need an X display: Xvfb is not installed (apt-get install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", f"1280x1024x{depth}", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number.isdigit():
            pytest.skip(f"this Xvfb does not start a {depth}-bit screen")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def x24():
    yield from _xvfb(24)


@pytest.fixture(scope="module")
def x30():
    yield from _xvfb(30)


def _window_run(tmp_path: Path, display: str) -> str:
    stage = tmp_path / "deep_windows.yaml"
    stage.write_text(_WINDOW_STAGE.replace("port: 40000", f"port: {free_udp_port()}"))
    drop = ("PYOPENGL_PLATFORM", "EGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["DISPLAY"] = display
    proc = subprocess.run([EXE, "run", str(stage), "--windows", "--duration", "1.5", "--preview-every", "0",
                           "--console", "off"], capture_output=True, text=True, env=env, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("depth", [24, 30])
def test_a_deep_output_window_asks_for_10_bits_and_the_run_says_what_it_got(tmp_path: Path, depth: int,
                                                                             request) -> None:
    out = _window_run(tmp_path, request.getfixturevalue(f"x{depth}"))
    line = next((ln for ln in out.splitlines() if "stagectl run: windows (windowed):" in ln), None)
    assert line is not None, out
    ten, eight = line.split("; p/eight ")
    # the 10-bit output's window asks for 10 bits and gets what the X screen has (24 bits a pixel: 8 a channel,
    # 30: 10); the 8-bit output's window asks for nothing
    got = {24: 8, 30: 10}[depth]
    assert re.search(rf"p/ten 128 x 64 -> windowed 128 x 64 \(1:1, 10-bit framebuffer asked, got {got}-bit\)",
                     ten), line
    assert "asked" not in eight, line
    assert re.search(r"presented \d+ frames on 2 windows", out), out
