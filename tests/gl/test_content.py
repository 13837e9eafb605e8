"""Scene content (glTF scenes, 360 plates, the procedural adapter) against plain-numpy models.

The camera model is written from docs/conventions.md (as in test_scene.py): ``V = T_gl_camera @
inv(T_stage_camera)``, ``P = glFrustum``, NDC -> image ``u = (x + 1) / 2``, ``v = (1 - y) / 2``, row 0 = top.
The glTF -> stage axis change and the equirectangular mapping are written here from their documentation
(stagectl/render/gltf.py, plate.py), not imported. Test assets (glTF JSON + base64 buffers, GLB, PNG, an MJPG
video) are generated in each test.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagectl.core.errors import StageError
from stagectl.render.content import Content, ContentError, ProceduralContent, content_static, load_content
from stagectl.render.gltf import T_STAGE_GLTF, GltfContent, read_gltf
from stagectl.render.plate import PlateContent, VideoFrames, video_frame_index
from stagectl.render.scene import RenderTarget, SceneRenderer

W, H = 160, 120
NEAR, FAR = 0.1, 500.0
T_GL_CAMERA = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
AMBIENT = np.array([0.30, 0.31, 0.34])
SUN = np.array([0.75, 0.72, 0.68])
LIGHT = np.array([-0.35, -0.55, 0.76]) / np.linalg.norm([-0.35, -0.55, 0.76])


# ---- numpy model
# ---------------------------------------------------------------------------------------------
def rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def view_proj(position=(0.0, 0.0, 1.7), pan=0.0, tilt=0.0, roll=0.0, hfov=60.0, shift=0.0, w=W, h=H):
    T = np.eye(4)
    T[:3, :3] = rot("z", pan) @ rot("x", tilt) @ rot("y", roll)
    T[:3, 3] = position
    hw = NEAR * math.tan(math.radians(hfov / 2))
    hh = hw * h / w
    lf, r, b, t = -hw, hw, -hh + shift * hh, hh + shift * hh
    P = np.array(
        [
            [2 * NEAR / (r - lf), 0, (r + lf) / (r - lf), 0],
            [0, 2 * NEAR / (t - b), (t + b) / (t - b), 0],
            [0, 0, -(FAR + NEAR) / (FAR - NEAR), -2 * FAR * NEAR / (FAR - NEAR)],
            [0, 0, -1, 0],
        ]
    )
    return P @ T_GL_CAMERA @ np.linalg.inv(T)


def project(vp, p) -> tuple[int, int]:
    """Stage point -> the pixel (column, row) containing it, row 0 = top."""
    c = vp @ np.append(np.asarray(p, np.float64), 1.0)
    assert c[3] > 0
    x, y = (c[0] / c[3] + 1) / 2 * W, (1 - c[1] / c[3]) / 2 * H
    return math.floor(x), math.floor(y)


def pixel_rays(vp, w=W, h=H) -> np.ndarray:
    """(h, w, 3) unit stage view directions of every pixel centre (row 0 = top)."""
    i, j = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ndc = np.stack([i / w * 2 - 1, 1 - j / h * 2, np.ones_like(i), np.ones_like(i)], axis=-1)
    inv = np.linalg.inv(vp)
    far = ndc @ inv.T
    near = (ndc * [1, 1, -1, 1]) @ inv.T
    d = far[..., :3] / far[..., 3:] - near[..., :3] / near[..., 3:]
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def srgb_to_linear(code) -> np.ndarray:
    c = np.asarray(code, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_u8(rgb) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) * 255).astype(int)


def lit(albedo, normal) -> np.ndarray:
    return np.asarray(albedo) * (AMBIENT + SUN * max(float(np.dot(normal, LIGHT)), 0.0))


# the documented glTF -> stage axis change, written out: x_s = x_g, y_s = -z_g, z_s = y_g
def gltf_to_stage(p) -> np.ndarray:
    x, y, z = p
    return np.array([x, -z, y], dtype=np.float64)


# ---- glTF writing helpers
# ------------------------------------------------------------------------------------
def quad(hx=0.5, hy=0.5, facing=+1):
    """A quad in the glTF XY plane centred at the origin, front (CCW) toward +Z (facing=+1) or -Z (-1).
    UV (0, 0) at the top-left corner seen from the front, as glTF defines UV."""
    pos = np.array([[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0]], np.float32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    nrm = np.tile(np.array([0, 0, facing], np.float32), (4, 1))
    idx = np.array([0, 1, 2, 0, 2, 3] if facing > 0 else [0, 2, 1, 0, 3, 2], np.uint16)
    return pos, nrm, uv, idx


class GltfBuilder:
    """Builds a glTF 2.0 document by hand: one buffer, accessors per mesh, nodes, materials, images."""

    def __init__(self) -> None:
        self.bin = bytearray()
        self.doc: dict = {
            "asset": {"version": "2.0", "generator": "stagectl tests"},
            "scene": 0,
            "scenes": [{"nodes": []}],
            "nodes": [],
            "meshes": [],
            "accessors": [],
            "bufferViews": [],
            "materials": [],
        }

    def _view(self, data: bytes, target=None) -> int:
        while len(self.bin) % 4:
            self.bin.append(0)
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if target:
            view["target"] = target
        self.bin += data
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, arr: np.ndarray, kind: str, target=None) -> int:
        ctype = {
            np.dtype(np.float32): 5126,
            np.dtype(np.uint16): 5123,
            np.dtype(np.uint32): 5125,
            np.dtype(np.uint8): 5121,
        }[arr.dtype]
        view = self._view(np.ascontiguousarray(arr).tobytes(), target)
        acc = {"bufferView": view, "componentType": ctype, "count": len(arr), "type": kind}
        if kind == "VEC3":
            acc["min"], acc["max"] = arr.min(0).tolist(), arr.max(0).tolist()
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def material(self, color, *, texture=None, unlit=False, double_sided=False) -> int:
        m = {"pbrMetallicRoughness": {"baseColorFactor": list(color), "metallicFactor": 0.0}}
        if texture is not None:
            m["pbrMetallicRoughness"]["baseColorTexture"] = {"index": texture}
        if unlit:
            m["extensions"] = {"KHR_materials_unlit": {}}
            self.doc.setdefault("extensionsUsed", []).append("KHR_materials_unlit")
        if double_sided:
            m["doubleSided"] = True
        self.doc["materials"].append(m)
        return len(self.doc["materials"]) - 1

    def mesh(self, geometry, material: int) -> int:
        pos, nrm, uv, idx = geometry
        prim = {
            "attributes": {
                "POSITION": self.accessor(pos, "VEC3", 34962),
                "NORMAL": self.accessor(nrm, "VEC3", 34962),
                "TEXCOORD_0": self.accessor(uv, "VEC2", 34962),
            },
            "indices": self.accessor(idx, "SCALAR", 34963),
            "material": material,
        }
        self.doc["meshes"].append({"primitives": [prim]})
        return len(self.doc["meshes"]) - 1

    def node(self, *, mesh=None, children=(), root=True, **transform) -> int:
        n = {k: (list(v) if not isinstance(v, (int, float)) else v) for k, v in transform.items()}
        if mesh is not None:
            n["mesh"] = mesh
        if children:
            n["children"] = list(children)
        self.doc["nodes"].append(n)
        i = len(self.doc["nodes"]) - 1
        if root:
            self.doc["scenes"][0]["nodes"].append(i)
        return i

    def image_texture(self, png: bytes, *, how: str, folder: Path, nearest=True) -> int:
        if how == "external":
            (folder / "tex file.png").write_bytes(png)
            image = {"uri": "tex%20file.png"}  # a URI: percent-encoded
        elif how == "bufferView":
            image = {"bufferView": self._view(png), "mimeType": "image/png"}
        else:
            image = {"uri": "data:image/png;base64," + base64.b64encode(png).decode()}
        self.doc.setdefault("images", []).append(image)
        self.doc.setdefault("samplers", []).append(
            {"magFilter": 9728, "minFilter": 9728, "wrapS": 33071, "wrapT": 33071} if nearest else {}
        )
        self.doc.setdefault("textures", []).append(
            {"source": len(self.doc["images"]) - 1, "sampler": len(self.doc["samplers"]) - 1}
        )
        return len(self.doc["textures"]) - 1

    def write_gltf(self, path: Path, *, external_bin: bool = False) -> Path:
        doc = json.loads(json.dumps(self.doc))
        if external_bin:
            (path.parent / (path.stem + ".bin")).write_bytes(bytes(self.bin))
            doc["buffers"] = [{"byteLength": len(self.bin), "uri": path.stem + ".bin"}]
        else:
            doc["buffers"] = [
                {
                    "byteLength": len(self.bin),
                    "uri": "data:application/octet-stream;base64," + base64.b64encode(self.bin).decode(),
                }
            ]
        path.write_text(json.dumps(doc))
        return path

    def write_glb(self, path: Path) -> Path:
        doc = json.loads(json.dumps(self.doc))
        doc["buffers"] = [{"byteLength": len(self.bin)}]
        js = json.dumps(doc).encode()
        js += b" " * (-len(js) % 4)
        binary = bytes(self.bin) + b"\0" * (-len(self.bin) % 4)
        total = 12 + 8 + len(js) + 8 + len(binary)
        data = struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
        data += struct.pack("<I4s", len(binary), b"BIN\0") + binary
        path.write_bytes(data)
        return path


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()


# ---- fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def target(resources):
    t = RenderTarget(resources, W, H, label="test.content.target")
    yield t
    t.release()


def render(content: Content, vp, target, **kw) -> np.ndarray:
    content.draw(vp, target, **kw)
    return target.read()[..., :3].astype(int)


def close(pixel, expected, tol=2) -> bool:
    return bool(np.abs(np.asarray(pixel, int) - np.asarray(expected, int)).max() <= tol)


# ---- pure tests (no GL)
# --------------------------------------------------------------------------------------
def test_gltf_axes_map_y_up_to_stage_z_up_and_the_asset_front_toward_the_cameras():
    assert np.allclose(T_STAGE_GLTF[:3, :3] @ [0, 1, 0], [0, 0, 1])  # glTF up -> stage up
    assert np.allclose(T_STAGE_GLTF[:3, :3] @ [0, 0, 1], [0, -1, 0])  # asset front -> toward the cameras
    assert np.allclose(T_STAGE_GLTF[:3, :3] @ [1, 0, 0], [1, 0, 0])
    assert np.allclose(T_STAGE_GLTF[:3, :3] @ [0, 0, -1], [0, 1, 0])  # a glTF camera looks along stage +Y
    assert np.isclose(np.linalg.det(T_STAGE_GLTF), 1.0)
    for p in ([1.0, 2.0, 3.0], [-4.0, 0.5, -7.0]):
        assert np.allclose(T_STAGE_GLTF @ [*p, 1.0], [*gltf_to_stage(p), 1.0])


def test_gltf_hierarchy_and_placement_compose_in_the_documented_order(tmp_path):
    b = GltfBuilder()
    m = b.mesh(quad(), b.material((1, 1, 1, 1)))
    child = b.node(mesh=m, translation=(2, 0, 0), scale=(2, 2, 2), root=False)
    q = (0.0, 0.0, math.sin(math.radians(45)), math.cos(math.radians(45)))  # 90 degrees about glTF +Z
    b.node(children=[child], translation=(0, 1, -10), rotation=q)
    placement = np.eye(4)
    placement[:3, :3] = rot("z", 30)
    placement[:3, 3] = (1, 2, 3)
    scene = read_gltf(b.write_gltf(tmp_path / "h.gltf"), placement)
    (d,) = scene.draws
    # by hand: child origin (2,0,0) rotated 90 deg about glTF Z -> (0,2,0), plus (0,1,-10) -> (0,3,-10)
    origin = placement[:3, :3] @ gltf_to_stage([0, 3, -10]) + placement[:3, 3]
    assert np.allclose(d.T_stage_object[:3, 3], origin)
    # the child's local +X (long side) now points along glTF +Y = stage +Z, scaled by 2 (placement keeps Z)
    assert np.allclose(d.T_stage_object[:3, :3] @ [1, 0, 0], [0, 0, 2], atol=1e-12)
    lo, hi = scene.bounds_stage()
    assert np.allclose((lo + hi) / 2, origin)


def test_a_confined_gltf_reads_only_files_inside_its_folder(tmp_path):
    """The operator's scene (content.select) may name buffers and images inside the content folder only: a
    URI that leaves it through ``..``, an absolute path or a symbolic link is refused, and says which."""
    scenes = tmp_path / "scenes"
    (scenes / "set").mkdir(parents=True)
    b = GltfBuilder()
    b.node(mesh=b.mesh(quad(), b.material((1, 1, 1, 1))))
    good = b.write_gltf(scenes / "set" / "good.gltf", external_bin=True)
    assert read_gltf(good, confine_to=scenes).triangle_count == 2
    (tmp_path / "secret.bin").write_bytes((scenes / "set" / "good.bin").read_bytes())
    (scenes / "link.bin").symlink_to(tmp_path / "secret.bin")
    for i, uri in enumerate(["../../secret.bin", str(tmp_path / "secret.bin"), "../link.bin"]):
        doc = json.loads(good.read_text())
        doc["buffers"][0]["uri"] = uri
        bad = scenes / "set" / f"bad{i}.gltf"
        bad.write_text(json.dumps(doc))
        assert read_gltf(bad).triangle_count == 2  # a stage file's own scene is not confined
        with pytest.raises(ContentError, match=r"outside the content folder .*: refused") as err:
            read_gltf(bad, confine_to=scenes)
        assert uri in str(err.value)


def test_gltf_without_normals_gets_flat_normals_and_strips_fans_become_triangles(tmp_path):
    b = GltfBuilder()
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    b.doc["meshes"].append(
        {
            "primitives": [
                {
                    "attributes": {"POSITION": b.accessor(pos, "VEC3")},
                    "mode": 5,
                },  # strip: 2 triangles, CCW toward +Z
                {"attributes": {"POSITION": b.accessor(pos[[0, 1, 3, 2]], "VEC3")}, "mode": 6},  # fan
                {"attributes": {"POSITION": b.accessor(pos, "VEC3")}, "mode": 1},  # lines: skipped
            ]
        }
    )
    b.node(mesh=0)
    scene = read_gltf(b.write_gltf(tmp_path / "s.gltf"))
    assert [p.triangles for p in scene.primitives] == [2, 2]
    for p in scene.primitives:
        tris = p.vertices[p.indices.reshape(-1, 3), :3].astype(np.float64)
        n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        assert np.all(n[:, 2] > 0)  # counter-clockwise seen from +Z
        assert np.allclose(p.vertices[:, 3:6], [0, 0, 1])  # computed flat normals
    assert any("LINES" in n for n in scene.notes)


def test_content_static_tells_a_planner_which_content_changes_with_time():
    assert content_static("procedural") and content_static("/a/b/set.glb") and content_static("sky.exr")
    assert not content_static("/a/clip.MOV") and not content_static({"path": "clip.mp4", "loop": False})
    assert not content_static({"path": "set.gltf", "background": "clip.mp4"})
    assert content_static({"path": "set.gltf", "background": [0, 0, 0]})


def test_video_frame_index_loops_or_holds_and_honours_the_start_frame():
    assert [video_frame_index(k, 5) for k in (0, 4, 5, 12, -1)] == [0, 4, 0, 2, 4]
    assert [video_frame_index(k, 5, loop=False) for k in (-3, 0, 4, 9)] == [0, 0, 4, 4]
    assert [video_frame_index(k, 5, start_frame=100) for k in (100, 103, 106, 99)] == [0, 3, 1, 4]


# a palette that survives MJPG's chroma subsampling: saturated, far apart
PALETTE = np.array(
    [
        [230, 20, 20],
        [20, 200, 20],
        [20, 20, 230],
        [230, 230, 20],
        [20, 220, 220],
        [220, 20, 220],
        [250, 140, 10],
        [120, 60, 20],
        [240, 240, 240],
        [10, 10, 10],
        [120, 120, 200],
        [60, 160, 90],
    ],
    np.uint8,
)


def write_video(path: Path, frames: int = 12, size=(64, 32)) -> Path:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    assert writer.isOpened()
    for k in range(frames):
        writer.write(np.ascontiguousarray(np.broadcast_to(PALETTE[k % len(PALETTE)][::-1], (h, w, 3))))
    writer.release()
    return path


def test_video_frames_decode_on_demand_reading_on_and_seeking_only_when_needed(tmp_path):
    frames = VideoFrames(write_video(tmp_path / "v.avi"), cache_frames=2, max_skip=3)
    try:
        assert frames.frame_count == 12 and (frames.width, frames.height) == (64, 32)
        for k in (0, 1, 2, 3):
            assert close(frames.frame(k)[16, 32, :3], PALETTE[k], 6), k
        assert frames.stats["seeks"] == 0
        assert close(frames.frame(6)[16, 32, :3], PALETTE[6], 6)  # 2 ahead: skipped with grab, no seek
        assert frames.stats["seeks"] == 0 and frames.stats["grabs"] == 2
        assert close(frames.frame(1)[16, 32, :3], PALETTE[1], 6)  # backwards: a seek
        assert frames.stats["seeks"] == 1
        hits = frames.stats["hits"]
        frames.frame(1)
        assert frames.stats["hits"] == hits + 1  # cached
        assert close(frames.frame(11)[16, 32, :3], PALETTE[11], 6)  # far ahead: a seek
        assert frames.stats["seeks"] == 2
        assert frames.index(timecode_frame=25) == 1 and frames.index(time_ns=10 * 40_000_000) == 10
    finally:
        frames.release()


# ---- GL: glTF
# ------------------------------------------------------------------------------------------------
@pytest.mark.gl
@pytest.mark.parametrize("container", ["gltf", "glb", "gltf+bin"])
def test_gltf_quad_lands_at_the_numpy_projection_with_its_lit_colour(resources, target, tmp_path, container):
    b = GltfBuilder()
    albedo = (0.2, 0.6, 0.9)
    m = b.mesh(quad(0.5, 0.5), b.material((*albedo, 1.0)))
    b.node(mesh=m, translation=(1.0, 2.0, -8.0))  # glTF (1, 2, -8) = stage (1, 8, 2)
    path = (
        b.write_glb(tmp_path / "q.glb")
        if container == "glb"
        else b.write_gltf(tmp_path / "q.gltf", external_bin=container == "gltf+bin")
    )
    content = load_content(path.name, resources, base_dir=tmp_path, label="test.gltf")
    try:
        assert isinstance(content, GltfContent) and content.static and content.frame_key() is None
        vp = view_proj()
        img = render(content, vp, target)
        centre = gltf_to_stage([1, 2, -8])
        assert np.allclose(centre, [1, 8, 2])
        expected = to_u8(lit(albedo, np.array([0.0, -1.0, 0.0])))  # the front (+Z) faces stage -Y
        for dx, dz in ((0, 0), (0.4, 0.4), (-0.4, -0.4), (0.4, -0.4), (-0.4, 0.4)):
            i, j = project(vp, centre + [dx, 0, dz])
            assert close(img[j, i], expected), (dx, dz, img[j, i], expected)
        for dx, dz in ((0.6, 0), (-0.6, 0), (0, 0.6), (0, -0.6)):
            i, j = project(vp, centre + [dx, 0, dz])
            assert close(img[j, i], (0, 0, 0)), (dx, dz)  # cleared to black around it
    finally:
        content.release()


@pytest.mark.gl
@pytest.mark.parametrize("how", ["data-uri", "external", "bufferView"])
def test_gltf_texture_orientation_top_left_of_the_image_is_top_left_of_the_quad(
    resources, target, tmp_path, how
):
    tex = np.array(
        [[[200, 30, 30], [30, 200, 30]], [[30, 30, 200], [220, 220, 40]]], np.uint8
    )  # TL R, TR G ...
    b = GltfBuilder()
    t = b.image_texture(png_bytes(tex), how=how, folder=tmp_path)
    m = b.mesh(quad(1.0, 1.0), b.material((1, 1, 1, 1), texture=t, unlit=True))
    b.node(mesh=m, translation=(0.0, 1.7, -6.0))  # stage (0, 6, 1.7): straight ahead
    if how == "bufferView":
        path = b.write_glb(tmp_path / "t.glb")
    else:
        path = b.write_gltf(tmp_path / "t.gltf")
    content = load_content(path, resources, label="test.tex")
    try:
        vp = view_proj()
        img = render(content, vp, target)
        centre = np.array([0.0, 6.0, 1.7])
        for (dx, dz), code in (
            ((-0.5, 0.5), tex[0, 0]),
            ((0.5, 0.5), tex[0, 1]),
            ((-0.5, -0.5), tex[1, 0]),
            ((0.5, -0.5), tex[1, 1]),
        ):
            i, j = project(vp, centre + [dx, 0, dz])
            assert close(img[j, i], to_u8(srgb_to_linear(code))), (dx, dz, img[j, i])
    finally:
        content.release()


@pytest.mark.gl
def test_gltf_node_hierarchy_trs_and_matrix_nodes(resources, target, tmp_path):
    b = GltfBuilder()
    red = b.material((0.9, 0.1, 0.1, 1), unlit=True)
    green = b.material((0.1, 0.9, 0.1, 1), unlit=True)
    tall = b.mesh(quad(0.5, 0.25), red)  # long along the child's local X
    child = b.node(mesh=tall, translation=(2, 0, 0), scale=(2, 2, 2), root=False)
    q = (0.0, 0.0, math.sin(math.radians(45)), math.cos(math.radians(45)))  # 90 deg about glTF +Z
    b.node(children=[child], translation=(0, 1, -10), rotation=q)
    # a parent given as a column-major matrix: translation (-3, 1.5, -12)
    small = b.mesh(quad(0.3, 0.3), green)
    leaf = b.node(mesh=small, root=False)
    b.node(children=[leaf], matrix=(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, -3, 1.5, -12, 1))
    content = load_content(b.write_gltf(tmp_path / "h.gltf"), resources, label="test.hier")
    try:
        vp = view_proj()
        img = render(content, vp, target)
        red_u8, green_u8 = to_u8([0.9, 0.1, 0.1]), to_u8([0.1, 0.9, 0.1])
        c1 = gltf_to_stage([0, 3, -10])  # worked out by hand, see the test above
        for dz in (0.0, 0.8, -0.8):  # the long side (2 x 0.5 x 2 = 2 m) stands vertical now
            i, j = project(vp, c1 + [0, 0, dz])
            assert close(img[j, i], red_u8), dz
        for dx in (0.7, -0.7):  # the short side is 2 x 0.25 x 2 = 1 m wide
            i, j = project(vp, c1 + [dx, 0, 0])
            assert close(img[j, i], (0, 0, 0)), dx
        c2 = gltf_to_stage([-3, 1.5, -12])
        assert np.allclose(c2, [-3, 12, 1.5])
        for d in ((0, 0, 0), (0.25, 0, 0.25)):
            i, j = project(vp, c2 + d)
            assert close(img[j, i], green_u8)
        i, j = project(vp, c2 + [0.4, 0, 0])
        assert close(img[j, i], (0, 0, 0))
    finally:
        content.release()


@pytest.mark.gl
def test_gltf_back_faces_are_culled_unless_double_sided_and_placement_moves_the_asset(
    resources, target, tmp_path
):
    b = GltfBuilder()
    back = b.mesh(quad(0.5, 0.5, facing=-1), b.material((0.9, 0.9, 0.1, 1), unlit=True))
    both = b.mesh(quad(0.5, 0.5, facing=-1), b.material((0.2, 0.8, 0.9, 1), double_sided=True))
    b.node(mesh=back, translation=(-1.5, 0, -5))
    b.node(mesh=both, translation=(1.5, 0, -5))
    path = b.write_gltf(tmp_path / "c.gltf")
    spec = {
        "path": path.name,
        "position": [0.0, 0.0, 1.7],
        "rotation": [90.0, 0.0, 0.0],
        "background": [0.1, 0.2, 0.3],
    }
    content = load_content(spec, resources, base_dir=tmp_path, label="test.cull")
    try:
        # pan 90: the asset turned to the stage's -X; a camera with pan 90 looks along -X at it
        vp = view_proj(pan=90.0)
        img = render(content, vp, target)
        R = rot("z", 90)
        p_back = R @ gltf_to_stage([-1.5, 0, -5]) + [0, 0, 1.7]
        p_both = R @ gltf_to_stage([1.5, 0, -5]) + [0, 0, 1.7]
        assert np.allclose(p_back, [-5, -1.5, 1.7]) and np.allclose(p_both, [-5, 1.5, 1.7])
        i, j = project(vp, p_back)
        assert close(img[j, i], to_u8([0.1, 0.2, 0.3]))  # culled: the background colour
        i, j = project(vp, p_both)
        # its front normal (glTF -Z) points away from the camera: the back face is lit with the flipped normal
        normal_seen = R @ gltf_to_stage([0, 0, 1])  # toward the camera
        assert close(img[j, i], to_u8(lit((0.2, 0.8, 0.9), normal_seen)))
    finally:
        content.release()


@pytest.mark.gl
def test_gltf_over_a_plate_background(resources, target, tmp_path):
    plate = np.zeros((64, 128, 3), np.uint8)
    plate[:] = (40, 90, 160)
    cv2.imwrite(str(tmp_path / "sky.png"), plate[..., ::-1])
    b = GltfBuilder()
    b.node(mesh=b.mesh(quad(0.5, 0.5), b.material((0.9, 0.5, 0.1, 1), unlit=True)), translation=(0, 1.7, -5))
    b.write_gltf(tmp_path / "s.gltf")
    content = load_content(
        {"path": "s.gltf", "background": "sky.png"}, resources, base_dir=tmp_path, label="test.bg"
    )
    try:
        assert content.static and "over 360 plate sky.png" in content.describe()
        vp = view_proj()
        img = render(content, vp, target)
        i, j = project(vp, [0, 5, 1.7])
        assert close(img[j, i], to_u8([0.9, 0.5, 0.1]))
        assert close(img[3, 3], to_u8(srgb_to_linear([40, 90, 160])))
    finally:
        content.release()


@pytest.mark.gl
def test_gltf_mirrored_nodes_keep_their_front_faces_and_blend_materials_mix_over_what_is_behind(
    resources, target, tmp_path
):
    b = GltfBuilder()
    b.node(
        mesh=b.mesh(quad(0.5, 0.5), b.material((0.9, 0.2, 0.2, 1), unlit=True)),
        translation=(-1.2, 1.7, -6),
        scale=(-1, 1, 1),
    )  # a mirror: the winding flips, the front still faces +Z
    glass = b.material((0.1, 0.3, 0.9, 0.25), unlit=True)
    b.doc["materials"][glass]["alphaMode"] = "BLEND"
    b.node(mesh=b.mesh(quad(0.5, 0.5), glass), translation=(1.2, 1.7, -6))
    b.write_gltf(tmp_path / "m.gltf")
    content = load_content(
        {"path": "m.gltf", "background": [0.8, 0.8, 0.2]}, resources, base_dir=tmp_path, label="test.mirror"
    )
    try:
        vp = view_proj()
        img = render(content, vp, target)
        i, j = project(vp, gltf_to_stage([-1.2, 1.7, -6]))
        assert close(img[j, i], to_u8([0.9, 0.2, 0.2]))
        i, j = project(vp, gltf_to_stage([1.2, 1.7, -6]))
        expected = 0.25 * np.array([0.1, 0.3, 0.9]) + 0.75 * np.array([0.8, 0.8, 0.2])
        assert close(img[j, i], to_u8(expected)), (img[j, i], to_u8(expected))
        assert target.read()[j, i, 3] == 255  # the target's alpha stays opaque
    finally:
        content.release()


@pytest.mark.gl
def test_gltf_over_the_procedural_world(resources, target, tmp_path):
    b = GltfBuilder()
    b.node(mesh=b.mesh(quad(0.5, 0.5), b.material((0.2, 0.9, 0.9, 1), unlit=True)), translation=(0, 1.0, -5))
    b.write_gltf(tmp_path / "p.gltf")
    content = load_content(
        {"path": "p.gltf", "background": "procedural"}, resources, base_dir=tmp_path, label="test.overproc"
    )
    world = SceneRenderer(resources, label="test.overproc.world")
    try:
        vp = view_proj()
        img = render(content, vp, target)
        world.draw(vp, target)
        ref = target.read()[..., :3].astype(int)
        i, j = project(vp, [0, 5, 1.0])
        assert close(img[j, i], to_u8([0.2, 0.9, 0.9]))
        assert np.array_equal(img[:10], ref[:10]) and np.array_equal(img[-10:], ref[-10:])  # sky, ground
    finally:
        world.release()
        content.release()


# ---- GL: plates
# ----------------------------------------------------------------------------------------------
def model_uv(d: np.ndarray) -> np.ndarray:
    """The documented mapping: u = 0.5 + atan2(x, y) / 2pi, v = 0.5 - asin(z) / pi."""
    u = 0.5 + np.arctan2(d[..., 0], d[..., 1]) / (2 * np.pi)
    v = 0.5 - np.arcsin(np.clip(d[..., 2], -1, 1)) / np.pi
    return np.stack([u, v], -1)


@pytest.mark.gl
@pytest.mark.parametrize(
    "pan, tilt, roll, shift",
    [
        (0, 0, 0, 0.0),
        (-90, 10, 0, 0.0),
        (135, -35, 0, 0.3),
        (20, 60, 15, 0.0),
        (-160, -70, -10, -0.2),
    ],
)
def test_plate_samples_every_pixel_along_its_view_direction(resources, pan, tilt, roll, shift):
    # a smooth linear plate: R = u, G = v at every texel centre, so bilinear and mip filtering reproduce (u,
    # v)
    pw, ph = 512, 256
    u = (np.arange(pw) + 0.5) / pw
    v = (np.arange(ph) + 0.5) / ph
    plate = np.zeros((ph, pw, 3), np.float32)
    plate[..., 0] = u[None, :]
    plate[..., 1] = v[:, None]
    plate[..., 2] = 0.25
    content = PlateContent.from_array(resources, plate, label="test.uvplate")
    tgt = RenderTarget(resources, W, H, color="rgba32f", label="test.uvplate.target")
    try:
        vp = view_proj((3.0, -2.0, 1.0), pan, tilt, roll, shift=shift)
        content.draw(vp, tgt)
        img = tgt.read(dtype=np.float32)
        uv = model_uv(pixel_rays(vp))
        ok = (uv[..., 0] > 0.01) & (uv[..., 0] < 0.99) & (uv[..., 1] > 1.0 / ph) & (uv[..., 1] < 1 - 1.0 / ph)
        assert ok.mean() > 0.5
        err = np.abs(img[..., :2] - uv)[ok]
        assert err.max() < 3e-3, err.max()
        assert np.allclose(img[..., 2], 0.25, atol=1e-3) and np.allclose(img[..., 3], 1.0)
    finally:
        tgt.release()
        content.release()


AXIS_COLOURS = {  # region of the documented layout -> sRGB code
    "+Z": (250, 250, 250),
    "-Z": (30, 30, 30),
    "+Y": (220, 40, 40),
    "+X": (40, 200, 40),
    "-Y": (40, 40, 220),
    "-X": (220, 200, 30),
}


def axis_plate(w=256, h=128) -> np.ndarray:
    """Zenith cap (v < 0.2), nadir cap (v > 0.8), and four 90-degree sectors of the horizon band centred on
    u = 0.5 (+Y), 0.75 (+X), 0 / 1 (-Y), 0.25 (-X)."""
    img = np.zeros((h, w, 3), np.uint8)
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    sector = np.array(["-Y", "-X", "+Y", "+X"])[((u + 0.125) % 1.0 // 0.25).astype(int)]
    for j in range(h):
        for i in range(w):
            key = "+Z" if v[j] < 0.2 else "-Z" if v[j] > 0.8 else sector[i]
            img[j, i] = AXIS_COLOURS[key]
    return img


def octant_plate(w=256, h=128) -> tuple[np.ndarray, dict]:
    """Eight colours by the signs of the texel centre's direction (inverse of the documented mapping)."""
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    lon, lat = (u[None, :] - 0.5) * 2 * np.pi, (0.5 - v[:, None]) * np.pi
    d = np.stack(np.broadcast_arrays(np.cos(lat) * np.sin(lon), np.cos(lat) * np.cos(lon), np.sin(lat)), -1)
    colours = {}
    for s in np.ndindex(2, 2, 2):
        colours[tuple(1 if b else -1 for b in s)] = (40 + 200 * s[0], 40 + 200 * s[1], 40 + 200 * s[2])
    img = np.zeros((h, w, 3), np.uint8)
    for signs, colour in colours.items():
        img[np.all(np.sign(d) == signs, axis=-1)] = colour
    return img, colours


@pytest.mark.gl
def test_plate_file_camera_looking_along_each_stage_axis_sees_that_region(resources, target, tmp_path):
    cv2.imwrite(str(tmp_path / "axes.png"), axis_plate()[..., ::-1])
    content = load_content("axes.png", resources, base_dir=tmp_path, label="test.axes")
    try:
        assert isinstance(content, PlateContent) and content.static
        views = {"+Y": (0, 0), "+X": (-90, 0), "-X": (90, 0), "-Y": (180, 0), "+Z": (0, 90), "-Z": (0, -90)}
        for axis, (pan, tilt) in views.items():
            img = render(content, view_proj(pan=pan, tilt=tilt, hfov=30), target)
            centre = img[H // 2 - 8 : H // 2 + 8, W // 2 - 8 : W // 2 + 8].reshape(-1, 3)
            expected = to_u8(srgb_to_linear(AXIS_COLOURS[axis]))
            assert np.abs(centre - expected).max() <= 1, (axis, centre[0], expected)
    finally:
        content.release()


@pytest.mark.gl
def test_plate_octants_and_rotation(resources, target, tmp_path):
    img, colours = octant_plate()
    cv2.imwrite(str(tmp_path / "oct.png"), img[..., ::-1])
    plain = load_content("oct.png", resources, base_dir=tmp_path, label="test.oct")
    turned = load_content(
        {"path": "oct.png", "rotation": [90, 0, 0]}, resources, base_dir=tmp_path, label="test.oct90"
    )
    try:
        for signs, colour in colours.items():
            d = np.asarray(signs, np.float64) / math.sqrt(3)
            pan, tilt = math.degrees(math.atan2(-d[0], d[1])), math.degrees(math.asin(d[2]))
            out = render(plain, view_proj(pan=pan, tilt=tilt, hfov=20), target)
            assert close(out[H // 2, W // 2], to_u8(srgb_to_linear(colour)), 1), signs
            # rotated by pan 90 (R_stage_plate = Rz(90)): the plate direction d is now seen along Rz(90) d
            out = render(turned, view_proj(pan=pan + 90, tilt=tilt, hfov=20), target)
            assert close(out[H // 2, W // 2], to_u8(srgb_to_linear(colour)), 1), ("turned", signs)
    finally:
        turned.release()
        plain.release()


@pytest.mark.gl
def test_exr_plate_keeps_linear_hdr_values(resources, tmp_path):
    from stagectl.render.sink import exr_supported, write_exr

    assert exr_supported()  # opencv-python-headless ships the codec; stagectl enables it
    plate = np.zeros((32, 64, 3), np.float32)
    plate[:] = (4.0, 0.5, 0.02)  # linear light, above 1 in red
    write_exr(tmp_path / "hdr.exr", plate)
    content = load_content(tmp_path / "hdr.exr", resources, label="test.exr")
    tgt = RenderTarget(resources, 32, 24, color="rgba16f", label="test.exr.target")
    try:
        content.draw(view_proj(w=32, h=24), tgt)
        np.testing.assert_allclose(tgt.read(dtype=np.float32)[12, 16, :3], (4.0, 0.5, 0.02), rtol=2e-3)
    finally:
        tgt.release()
        content.release()


@pytest.mark.gl
def test_video_plate_picks_the_frame_by_timecode_frame_number(resources, target, tmp_path):
    path = write_video(tmp_path / "clip.avi")
    content = load_content(path, resources, label="test.video")
    held = load_content(
        {"path": str(path), "loop": False, "start_frame": 100}, resources, label="test.video.held"
    )
    try:
        assert not content.static
        vp = view_proj(hfov=20)
        for tc, k in ((0, 0), (1, 1), (2, 2), (7, 7), (3, 3), (25, 1), (-1, 11), (86400 * 25 + 5, 5)):
            img = render(content, vp, target, timecode_frame=tc)
            assert content.frame_key(timecode_frame=tc) == k
            assert close(img[H // 2, W // 2], to_u8(srgb_to_linear(PALETTE[k])), 8), (
                tc,
                k,
                img[H // 2, W // 2],
            )
        assert content.video.stats["seeks"] >= 2  # 7 -> 3 and 25 (-> 1) go backwards
        for tc, k in ((95, 0), (105, 5), (500, 11)):
            img = render(held, vp, target, timecode_frame=tc)
            assert close(img[H // 2, W // 2], to_u8(srgb_to_linear(PALETTE[k])), 8), (tc, k)
        uploads = held.video.stats["reads"]
        render(held, vp, target, timecode_frame=600)  # still frame 11: nothing decoded or uploaded
        assert held.video.stats["reads"] == uploads
    finally:
        held.release()
        content.release()


# ---- GL: procedural adapter
# ----------------------------------------------------------------------------------
@pytest.mark.gl
def test_procedural_content_draws_exactly_what_the_scene_renderer_draws(resources, target):
    content = load_content("procedural", resources, label="test.proc")
    scene = SceneRenderer(resources, label="test.proc.direct")
    try:
        assert isinstance(content, ProceduralContent) and content.static
        assert "procedural" in content.describe()
        vp = view_proj(pan=10, tilt=-5)
        a = render(content, vp, target, timecode_frame=12, eye_stage=np.array([0, 0, 1.7]))
        scene.draw(vp, target)
        assert np.array_equal(a, target.read()[..., :3].astype(int))
    finally:
        scene.release()
        content.release()


# ---- errors
# --------------------------------------------------------------------------------------------------
def _valid_gltf(tmp_path) -> GltfBuilder:
    b = GltfBuilder()
    b.node(mesh=b.mesh(quad(), b.material((1, 1, 1, 1))))
    return b


@pytest.mark.gl
@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing", "file not found"),
        ("suffix", "unsupported content type '.obj'"),
        ("json", "invalid glTF JSON at line 1"),
        ("glb", "cannot parse glTF"),
        ("version", "not a glTF 2.0 file"),
        ("bin", "buffer 0: file not found: b.bin"),
        ("overrun", "reads past the end of bufferView"),
        ("extension", "requires unsupported glTF extension(s) KHR_draco_mesh_compression"),
        ("image", "image 0"),
        ("index", "out of range"),
        ("plate", "cannot decode plate image"),
        ("video", "cannot open as a video"),
        ("option", "unknown option(s) fps for image content"),
    ],
)
def test_broken_or_missing_assets_fail_at_load_with_a_message_naming_the_file(
    resources, tmp_path, case, fragment
):
    name = {
        "missing": "nope.glb",
        "suffix": "scene.obj",
        "json": "bad.gltf",
        "glb": "bad.glb",
        "plate": "bad.png",
        "video": "bad.mp4",
        "option": "p.png",
    }.get(case, "s.gltf")
    path = tmp_path / name
    spec: object = name
    b = _valid_gltf(tmp_path)
    if case == "suffix":
        path.write_text("o cube")
    elif case == "json":
        path.write_text("{ not json")
    elif case == "glb":
        path.write_bytes(b"glTF\x02\x00\x00\x00\x10")
    elif case == "version":
        b.doc["asset"]["version"] = "1.0"
        b.write_gltf(path)
    elif case == "bin":
        b.write_gltf(path, external_bin=True)
        (tmp_path / "s.bin").rename(tmp_path / "elsewhere.bin")
        doc = json.loads(path.read_text())
        doc["buffers"][0]["uri"] = "b.bin"
        path.write_text(json.dumps(doc))
    elif case == "overrun":
        b.doc["accessors"][0]["count"] = 400
        b.write_gltf(path)
    elif case == "extension":
        b.doc["extensionsRequired"] = ["KHR_draco_mesh_compression"]
        b.write_gltf(path)
    elif case == "image":
        t = b.image_texture(b"\x89PNG but not really", how="data-uri", folder=tmp_path)
        b.doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"] = {"index": t}
        b.write_gltf(path)
    elif case == "index":
        acc = b.doc["meshes"][0]["primitives"][0]["indices"]
        b.bin[b.doc["bufferViews"][b.doc["accessors"][acc]["bufferView"]]["byteOffset"]] = 99
        b.write_gltf(path)
    elif case == "plate":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    elif case == "video":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case == "option":
        cv2.imwrite(str(path), np.zeros((8, 16, 3), np.uint8))
        spec = {"path": name, "fps": 25}
    with pytest.raises(ContentError) as info:
        load_content(spec, resources, base_dir=tmp_path, label=f"test.err.{case}")
    err = info.value
    assert isinstance(err, StageError) and err.exit_code == 2
    message = str(err)
    assert fragment in message, message
    if case not in ("option",):
        assert str(path) in message  # names the file
    assert "\n" not in message and "Traceback" not in message
