"""The on-wall colour patch player (console ``color.patches``) on llvmpipe, started and stopped through the hub
and the effects ``stagectl run`` registers, on a stage of two small outputs.

Each stage frame is planned and drawn by a :class:`~stagectl.runtime.StageRuntime` whose renderer plays the patches,
and by a second renderer of the same stage that never does (the reference composition). References: the 16-bit
PNGs and ``frames.txt`` that ``stagectl calibrate colour --patches`` writes for the same output and arguments
(codes = ``round(png * (2^n - 1) / 65535)``), and the reference renderer's canvases. Checked frame by frame:
the playing output's canvas equals ``frames.txt``'s image of wall frame ``k = frame - F`` exactly (10-bit
``rgb10_a2`` PQ over two mappings with unmapped margins, and 8-bit sRGB), F being the acknowledged frame; the
other output equals the reference's; after the end slate, and on the frame after a stop, the output shows the
composition again; the status names the frame, the count and the patch.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from helpers import ONE_CAMERA, one_wall_stage

from stagectl.cli import main as cli_main
from stagectl.console.hub import ControlHub
from stagectl.console.live import RunHandles, register_effects
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.runtime import StageRuntime
from stagectl.runtime.output import StageOutput
from stagectl.runtime.status import outputs_status
from stagectl.stage import load_stage

pytestmark = pytest.mark.gl

OUTPUTS = (
    "{name: a, canvas: [80, 48], mappings: [{wall: w, rect: [0, 0, 32, 32], at: [4, 8]}, "
    "{wall: w, rect: [32, 0, 32, 32], at: [40, 8]}]}",
    "{name: b, canvas: [64, 32], mappings: [{wall: w, rect: [64, 0, 64, 32]}]}",
)
COLOUR = """\
colour:
  working_space: Linear Rec.709 (sRGB)
  outputs:
    p/a: {canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000}}
    p/b: {canvas: {format: rgba8, transfer: srgb}}
"""
#: the sequence's arguments: 1 frame a patch, 1 a slate, a 4-step ramp: 17 wall frames
SEQ = {"frames_per_patch": 1, "slate_frames": 1, "ramp_steps": 4}
N = 17


@pytest.fixture
def stage_path(tmp_path):
    p = tmp_path / "stage.yaml"
    p.write_text(one_wall_stage("Patch player", (4, 1), OUTPUTS, tail=ONE_CAMERA) + COLOUR, encoding="utf-8")
    return p


def cli_frames(stage_path, key: str, folder, bits: int) -> list[np.ndarray]:
    """Wall frame k -> (h, w, 3) codes, from the PNGs and frames.txt of ``stagectl calibrate colour --patches``."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SEQ.items()]
    assert cli_main(["calibrate", "colour", "--stage", str(stage_path), "--output", key, "--patches", str(folder),
                     "--quiet", *args]) == 0
    names = (folder / "frames.txt").read_text(encoding="utf-8").split()
    top = (1 << bits) - 1
    out = []
    for name in names:
        png = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float64)
        out.append(np.floor(png * top / 65535.0 + 0.5).astype(np.uint16))
    return out


class Rig:
    """The hub, the effects of ``stagectl run`` on a runtime with a renderer, and the reference renderer."""

    def __init__(self, stage, gl, state_path) -> None:
        self.stage = stage
        self.hub = ControlHub(stage, state_path)
        self.said: list[str] = []
        self.renderer = StageRenderer(stage, gl)
        self.runtime = StageRuntime(stage, output=StageOutput(stage, gl, self.renderer))
        register_effects(self.hub, RunHandles(self.runtime), self.said.append)
        self.ref = StageRenderer(stage, gl)
        self.ref_planner = FramePlanner(stage)
        self.frame = 0
        self.last = None

    def step(self) -> dict:
        """Draw the next stage frame in both; returns (status of the outputs, canvases, reference canvases)."""
        k = self.frame
        self.hub.apply_pending(k)
        drawn = self.runtime.draw([], k, flags=self.hub.flags, features=self.hub.features)
        assert drawn.ok, drawn.why
        res = self.ref.render_frame(self.ref_planner.plan([], self.hub.flags, k, features=self.hub.features))
        assert res.ok, res.error
        self.frame += 1
        status = outputs_status(drawn.plan, {}, self.stage, self.renderer.patches.status())
        return status, {k: v.copy() for k, v in self.renderer.canvases().items()}, self.ref.canvases()

    def command(self, name: str, args: dict) -> dict:
        """Submit from another thread and run frame boundaries (no drawing) until it is answered; the frame
        it was applied at is then drawn by the next :meth:`step`."""
        box: list[dict] = []
        t = threading.Thread(target=lambda: box.append(self.hub.submit(name, args, "test", timeout_s=30.0)))
        t.start()
        deadline = time.monotonic() + 30.0
        while not box and time.monotonic() < deadline:
            self.hub.apply_pending(self.frame)
            time.sleep(0.002)
        t.join(5.0)
        assert box, f"{name}: no answer"
        return box[0]

    def release(self) -> None:
        self.renderer.release()
        self.ref.release()
        self.hub.close()


def _rgb(canvas: np.ndarray) -> np.ndarray:
    return canvas[..., :3]


def test_the_sequence_plays_frame_by_frame_and_the_composition_returns(stage_path, gl, tmp_path):
    a_frames = cli_frames(stage_path, "p/a", tmp_path / "pa", 10)
    b_frames = cli_frames(stage_path, "p/b", tmp_path / "pb", 8)
    assert len(a_frames) == len(b_frames) == N
    rig = Rig(load_stage(stage_path), gl, tmp_path / "operator.json")
    try:
        for _ in range(3):
            _st, got, ref = rig.step()
            assert all(np.array_equal(got[k], ref[k]) for k in got)
        ack = rig.command("color.patches", {"output": "p/a", "action": "start", **SEQ})
        assert ack["ok"], ack
        first = ack["frame"]
        assert first == rig.frame and ack["result"] == {"output": "p/a", "action": "start", "first_frame": first,
                                                        "frames": N, "last_frame": first + N - 1}
        assert rig.said[-1] == (f"stagectl run: console: colour patches on p/a: stage frames {first}..{first + N - 1} "
                                f"({N} wall frames, calibration off)")
        seq = rig.renderer.patches.playback("p/a").program.sequence
        names = set()
        for k in range(N):
            st, got, ref = rig.step()
            a = got["p/a"]
            assert np.array_equal(_rgb(a), a_frames[k]), f"wall frame {k}"
            assert np.all(a[..., 3] == 3)  # opaque
            assert np.array_equal(got["p/b"], ref["p/b"])  # the other output renders as before
            assert st["p/a"]["patches"] == {"frame": k, "frames": N, "patch": seq.patch_at(k).name,
                                            "first_frame": first, "calibration": "off"}
            assert "patches" not in st["p/b"]
            names.add(st["p/a"]["patches"]["patch"])
        assert {"slate", "grey_18_percent", "chart", "flat_field", "ramp_04", "end_slate"} <= names
        # the differing images really differ: slates carry their frame, patches their own codes
        assert len({a.tobytes() for a in a_frames}) == N
        for _ in range(2):  # after the end slate: the composition, whole, in both canvas buffers
            st, got, ref = rig.step()
            assert "patches" not in st["p/a"]
            assert all(np.array_equal(got[k], ref[k]) for k in got)

        # 8-bit: started, then stopped mid-sequence
        ack = rig.command("color.patches", {"output": "p/b", "action": "start", **SEQ})
        assert ack["ok"], ack
        for k in range(4):
            _st, got, ref = rig.step()
            assert np.array_equal(_rgb(got["p/b"]), b_frames[k]), f"8-bit wall frame {k}"
            assert np.all(got["p/b"][..., 3] == 255)
            assert np.array_equal(got["p/a"], ref["p/a"])
        ack = rig.command("color.patches", {"output": "p/b", "action": "stop"})
        assert ack["ok"] and ack["result"] == {"output": "p/b", "action": "stop", "stopped": True}, ack
        for _ in range(2):
            st, got, ref = rig.step()
            assert "patches" not in st["p/b"]
            assert all(np.array_equal(got[k], ref[k]) for k in got)
        ack = rig.command("color.patches", {"output": "p/b", "action": "stop"})
        assert ack["ok"] and ack["result"]["stopped"] is False
    finally:
        rig.release()


def test_a_blacked_out_output_stays_black_while_the_counter_runs(stage_path, gl, tmp_path):
    a_frames = cli_frames(stage_path, "p/a", tmp_path / "pa", 10)
    rig = Rig(load_stage(stage_path), gl, tmp_path / "operator.json")
    try:
        rig.step()
        assert rig.command("color.patches", {"output": "p/a", "action": "start", **SEQ})["ok"]
        rig.step()
        assert rig.command("output.blackout", {"output": "p/a", "on": True})["ok"]
        st, got, ref = rig.step()
        assert np.array_equal(got["p/a"], ref["p/a"]) and np.all(_rgb(got["p/a"]) == 0)
        assert st["p/a"]["patches"]["frame"] == 1
        assert rig.command("output.blackout", {"output": "p/a", "on": False})["ok"]
        _st, got, _ref = rig.step()
        assert np.array_equal(_rgb(got["p/a"]), a_frames[2])
    finally:
        rig.release()
