"""The stage's outer.content reaches the renderer: a 360 plate fills the wall outside the inner frustum, and a
broken asset is a clear error for the user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import STAGES

from stagectl.render.camera import camera_state_from_pose
from stagectl.render.plan import FramePlanner
from stagectl.render.renderer import StageRenderer
from stagectl.stage import load_stage

pytestmark = pytest.mark.gl
RGB = (200, 60, 30)


def _stage_with_content(tmp_path: Path, content: str) -> Path:
    text = (STAGES / "flat_wall.yaml").read_text()
    text += f"\nrender:\n  outer:\n    content: {content}\n    resolution: [256, 128]\n"
    p = tmp_path / "stage.yaml"
    p.write_text(text)
    return p


def test_a_plate_fills_the_wall_outside_the_inner_frustum(gl, tmp_path: Path) -> None:
    plate = np.zeros((64, 128, 3), np.uint8)
    plate[:] = RGB[::-1]  # BGR for OpenCV
    cv2.imwrite(str(tmp_path / "plate.png"), plate)
    stage = load_stage(_stage_with_content(tmp_path, "plate.png"))
    renderer = StageRenderer(stage, gl)
    try:
        assert any("plate" in n.lower() for n in renderer.notes), renderer.notes
        # the camera looks away from the wall: every wall pixel comes from the outer image
        cam = camera_state_from_pose(stage, (0.0, 0.0, 1.6, 180.0, 0.0, 0.0))
        result = renderer.render_frame(FramePlanner(stage).plan([cam], frame=0))
        assert result.ok, result.error
        canvas = next(iter(renderer.canvases().values()))
        wall = canvas[:1056, :1760, :3].reshape(-1, 3).astype(int)
        assert np.abs(np.median(wall, axis=0) - np.array(RGB)).max() <= 3
    finally:
        renderer.release()


def test_a_broken_asset_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    stage = _stage_with_content(tmp_path, "broken.png")
    exe = Path(sys.executable).parent / "stagectl"
    proc = subprocess.run([str(exe), "snapshot", str(stage), "--pose=0,0,1.6,0,0,0", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr


def test_content_can_be_swapped_while_running_and_a_bad_one_changes_nothing(gl, tmp_path: Path) -> None:
    """The console's content.select: the renderer loads the new content first, then redraws the outer image
    (even though the planner keeps the static outer atlas between frames); a content that cannot be loaded is
    an error and the wall keeps what it showed."""
    from stagectl.core.errors import StageError

    plate = np.zeros((64, 128, 3), np.uint8)
    plate[:] = RGB[::-1]
    cv2.imwrite(str(tmp_path / "plate.png"), plate)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    stage = load_stage(_stage_with_content(tmp_path, "procedural"))
    renderer = StageRenderer(stage, gl)
    planner = FramePlanner(stage)
    cam = camera_state_from_pose(stage, (0.0, 0.0, 1.6, 180.0, 0.0, 0.0))  # looks away: all outer
    try:
        assert renderer.render_frame(planner.plan([cam], frame=0)).ok
        before = next(iter(renderer.canvases().values()))[:1056, :1760, :3].copy()
        assert np.abs(np.median(before.reshape(-1, 3), axis=0) - RGB).max() > 20  # the procedural world
        with pytest.raises(StageError, match="broken.png"):
            renderer.set_content("broken.png")
        assert renderer.render_frame(planner.plan([cam], frame=1)).ok
        np.testing.assert_array_equal(next(iter(renderer.canvases().values()))[:1056, :1760, :3], before)
        assert "plate" in renderer.set_content("plate.png").lower()
        assert renderer.render_frame(planner.plan([cam], frame=2)).ok
        after = next(iter(renderer.canvases().values()))[:1056, :1760, :3].reshape(-1, 3).astype(int)
        assert np.abs(np.median(after, axis=0) - np.array(RGB)).max() <= 3
    finally:
        renderer.release()


def test_the_operators_gltf_is_confined_to_the_content_folder(gl, tmp_path: Path) -> None:
    """content.select loads through set_content: a glTF under scenes/ whose buffer lies outside it is refused
    and the wall keeps what it showed; the same file with its buffer inside loads."""
    import json

    from gl.test_content import GltfBuilder, quad

    from stagectl.core.errors import StageError

    stage = load_stage(_stage_with_content(tmp_path, "procedural"))
    scenes = stage.console.paths.folder("content", stage.path.parent)
    scenes.mkdir()
    b = GltfBuilder()
    b.node(mesh=b.mesh(quad(), b.material((1, 1, 1, 1))))
    good = b.write_gltf(scenes / "set.gltf", external_bin=True)
    (tmp_path / "outside.bin").write_bytes((scenes / "set.bin").read_bytes())
    doc = json.loads(good.read_text())
    doc["buffers"][0]["uri"] = "../outside.bin"
    (scenes / "escape.gltf").write_text(json.dumps(doc))
    renderer = StageRenderer(stage, gl)
    try:
        with pytest.raises(StageError, match="outside the content folder"):
            renderer.set_content("scenes/escape.gltf")
        assert "procedural" in renderer.scene.describe().lower()
        assert "set.gltf" in renderer.set_content("scenes/set.gltf")
    finally:
        renderer.release()
