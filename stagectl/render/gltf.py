"""glTF 2.0 scenes as scene content (:class:`GltfContent`), parsed with ``pygltflib``.

**Axes.** glTF is right-handed, **+Y up**, metres, and an asset's front faces **+Z** (glTF 2.0 spec,
"Coordinate System and Units"); a glTF camera looks down its -Z. The stage frame is right-handed, **Z up**,
metres, with the camera looking along +Y at zero rotation (docs/conventions.md). stagectl maps glTF into the
stage with the fixed rotation :data:`T_STAGE_GLTF`::

    x_stage = x_gltf        y_stage = -z_gltf        z_stage = y_gltf

so glTF up (+Y) is stage up (+Z), an asset's front (+Z) faces stage **-Y**, i.e. the viewer and the cameras
(who look along +Y toward the main wall), glTF +X stays stage +X (to the viewer's right), and a glTF camera at
identity looks along stage +Y exactly like a stagectl camera of zero pan, tilt and roll. (This is the Y-up to
Z-up conversion Blender's glTF importer makes.) A placement ``T_stage_content`` (position, pan/tilt/roll,
scale from the content spec) is applied after it:
``T_stage_object = T_stage_content @ T_STAGE_GLTF @ T_gltf_node`` for every node's global transform.

**What is read.** The default scene (``scene``, else scene 0, else every root node) with its node hierarchy
(``matrix`` or ``translation``/``rotation``/``scale``, ``T = T @ R @ S``); mesh primitives of mode TRIANGLES,
TRIANGLE_STRIP or TRIANGLE_FAN, indexed or not, with POSITION, NORMAL (flat normals are computed when absent,
as the spec asks), TEXCOORD_n (the one the base-colour texture names) and COLOR_0; sparse accessors;
materials' ``baseColorFactor``, ``baseColorTexture`` (sampler filters and wrap modes; embedded in a GLB, a
data URI or an external file; decoded with ``cv2.imdecode``; EXT_texture_webp), ``emissiveFactor``,
``alphaMode`` (OPAQUE, MASK with ``alphaCutoff``, BLEND drawn after the opaque primitives, unsorted),
``doubleSided`` and KHR_materials_unlit. Skins, morph targets, animations, cameras, lights,
metallic-roughness, normal, occlusion and emissive textures are ignored (listed in :attr:`GltfScene.notes`);
points and lines are skipped. A file whose ``extensionsRequired`` lists an extension not in
:data:`SUPPORTED_EXTENSIONS` is refused.

**Shading** (``shaders/gltf.vert``, ``gltf.frag``; linear light): ``base = baseColorFactor * COLOR_0 *
texture``; ``lit = base.rgb * (ambient + sun * max(0, n . l)) + emissive`` with one directional light given in
the stage frame (default: the procedural world's :class:`~stagectl.render.scene.SceneLook`), or ``base.rgb +
emissive`` for unlit materials. No fog. Texture coordinates: glTF UV ``(0, 0)`` is the image's top-left (row
0 = top, as stagectl's images); the upload flips rows to GL's, so the shader samples at ``t = 1 - v``.

Behind the scene the content clears to ``clear_color`` (linear RGB, default black) or draws a ``background``
content (a 360 plate, the procedural world), whose depth it respects.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import numpy as np

from stagectl.render.content import (
    Content,
    ContentError,
    bind_draw_area,
    check_view_proj,
    decode_image,
    image_texture,
    read_content_file,
    resolve_target,
)
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import OwnedObjects, ResourceRegistry, gl_pass, reset_draw_state, shader_source

__all__ = [
    "T_STAGE_GLTF",
    "SUPPORTED_EXTENSIONS",
    "GltfLight",
    "GltfMaterial",
    "GltfPrimitive",
    "GltfDraw",
    "GltfImage",
    "GltfScene",
    "read_gltf",
    "GltfContent",
]

#: glTF (Y up, front +Z) -> stage (Z up, viewer looking along +Y): x_s = x_g, y_s = -z_g, z_s = y_g.
T_STAGE_GLTF = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
T_STAGE_GLTF.setflags(write=False)

#: Extensions a file may *require* and still be drawn correctly enough.
SUPPORTED_EXTENSIONS = frozenset({"KHR_materials_unlit", "EXT_texture_webp"})

_COMPONENT = {
    5120: np.int8,
    5121: np.uint8,
    5122: np.int16,
    5123: np.uint16,
    5125: np.uint32,
    5126: np.float32,
}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_MODES = {
    0: "POINTS",
    1: "LINES",
    2: "LINE_LOOP",
    3: "LINE_STRIP",
    4: "TRIANGLES",
    5: "TRIANGLE_STRIP",
    6: "TRIANGLE_FAN",
}
# glTF sampler values are the GL enums themselves (CLAMP_TO_EDGE, MIRRORED_REPEAT, REPEAT; NEAREST, LINEAR and
# the four mipmap filters); GL attributes cannot be read before a context exists, hence the numbers
_REPEAT, _LINEAR, _LINEAR_MIPMAP_LINEAR = 10497, 9729, 9987
_WRAPS = {33071, 33648, 10497}
_MAG = {9728, 9729}
_MIN = {9728, 9729, 9984, 9985, 9986, 9987}
_MIPMAP_MIN = {9984, 9985, 9986, 9987}

#: floats per vertex: position (3), normal (3), texcoord (2), colour (4)
VERTEX_FLOATS = 12


@dataclass(frozen=True)
class GltfLight:
    """One directional light plus ambient, in the stage frame: ``direction`` points TOWARD the light."""

    direction: tuple[float, float, float] = (-0.35, -0.55, 0.76)
    sun: tuple[float, float, float] = (0.75, 0.72, 0.68)
    ambient: tuple[float, float, float] = (0.30, 0.31, 0.34)

    @property
    def direction_unit(self) -> np.ndarray:
        v = np.asarray(self.direction, dtype=np.float64)
        return v / np.linalg.norm(v)

    @classmethod
    def from_spec(cls, spec, path=None) -> GltfLight:
        if spec is None:
            return cls()
        if isinstance(spec, GltfLight):
            return spec
        if not isinstance(spec, dict):
            raise ContentError(path, f"light: expected a mapping with direction, sun, ambient; got {spec!r}")
        unknown = set(spec) - {"direction", "sun", "ambient"}
        if unknown:
            raise ContentError(path, f"light: unknown key(s) {', '.join(sorted(unknown))}")
        d = cls()
        vals = {}
        for k in ("direction", "sun", "ambient"):
            v = spec.get(k, getattr(d, k))
            try:
                a = np.asarray(v, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                a = np.zeros(0)
            if a.shape != (3,) or not np.all(np.isfinite(a)) or (k == "direction" and not np.any(a)):
                raise ContentError(path, f"light.{k}: expected 3 finite numbers, got {v!r}")
            vals[k] = tuple(float(x) for x in a)
        return cls(**vals)


@dataclass(frozen=True)
class GltfMaterial:
    """What stagectl draws of a glTF material; ``texture`` indexes :attr:`GltfScene.textures` (None:
    white)."""

    name: str = ""
    base_color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    texture: int | None = None
    texcoord: int = 0
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    unlit: bool = False


@dataclass(frozen=True)
class GltfImage:
    """A decoded image: ``pixels`` (H, W, 4) row 0 = top, ``encoded`` (uint8 sRGB codes) or linear floats."""

    name: str
    pixels: np.ndarray = field(repr=False)
    encoded: bool


@dataclass(frozen=True)
class GltfTexture:
    """An image with sampler settings (GL enums)."""

    image: int
    wrap: tuple[int, int]
    mag_filter: int
    min_filter: int
    mipmaps: bool


@dataclass(frozen=True)
class GltfPrimitive:
    """Triangles in the mesh's own (glTF object) frame: ``vertices`` (N, 12) float32 (position, normal, uv,
    rgba) and ``indices`` (M,) uint32, counter-clockwise front faces; ``material`` indexes the materials."""

    mesh: int
    index: int
    vertices: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)
    material: int

    @property
    def triangles(self) -> int:
        return len(self.indices) // 3


@dataclass(frozen=True)
class GltfDraw:
    """One primitive instance: ``T_stage_object`` maps its vertices into the stage (placement included)."""

    primitive: int
    node: int
    T_stage_object: np.ndarray = field(repr=False)


@dataclass
class GltfScene:
    """A glTF file read into plain arrays (no GL): what :class:`GltfContent` uploads and draws."""

    path: Path
    primitives: list[GltfPrimitive]
    materials: list[GltfMaterial]
    images: list[GltfImage]
    textures: list[GltfTexture]
    draws: list[GltfDraw]
    notes: list[str] = field(default_factory=list)

    def bounds_stage(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Axis-aligned stage bounds of everything drawn (None when nothing is)."""
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for d in self.draws:
            p = self.primitives[d.primitive].vertices[:, :3].astype(np.float64)
            if not len(p):
                continue
            q = p @ d.T_stage_object[:3, :3].T + d.T_stage_object[:3, 3]
            lo, hi = np.minimum(lo, q.min(0)), np.maximum(hi, q.max(0))
        return None if not np.all(np.isfinite(lo)) else (lo, hi)

    @property
    def triangle_count(self) -> int:
        return sum(self.primitives[d.primitive].triangles for d in self.draws)


# --------------------------------------------------------------------------------------------- parsing


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = (float(c) for c in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n == 0:
        return np.eye(3)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def node_matrix(node) -> np.ndarray:
    """A node's local transform ``T_parent_node``: its column-major ``matrix``, else ``T @ R @ S``."""
    m = getattr(node, "matrix", None)
    if m:
        a = np.asarray(m, dtype=np.float64)
        if a.shape != (16,):
            raise ValueError(f"matrix has {a.size} numbers, expected 16")
        return a.reshape(4, 4).T  # glTF stores matrices column-major
    T = np.eye(4)
    if node.translation:
        T[:3, 3] = np.asarray(node.translation, dtype=np.float64)
    R = _quat_matrix(node.rotation) if node.rotation else np.eye(3)
    S = np.diag(np.asarray(node.scale, dtype=np.float64)) if node.scale else np.eye(3)
    T[:3, :3] = R @ S
    return T


class _Reader:
    """Buffers, accessors, images of one parsed file, with errors that name the file and the element."""

    def __init__(self, gltf, path: Path, confine_to: Path | None = None) -> None:
        self.gltf = gltf
        self.path = path
        self.base = path.parent
        self.confine_to = None if confine_to is None else Path(confine_to).resolve()
        self._buffers: dict[int, bytes] = {}

    def fail(self, problem: str) -> ContentError:
        return ContentError(self.path, problem)

    def _item(self, kind: str, index) -> Any:
        items = getattr(self.gltf, kind) or []
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise self.fail(f"{kind[:-1]} {index!r} does not exist (the file has {len(items)} {kind})")
        return items[index]

    def _uri_bytes(self, uri: str, what: str) -> bytes:
        if uri.startswith("data:"):
            header, sep, payload = uri.partition(",")
            if not sep:
                raise self.fail(f"{what}: malformed data URI")
            try:
                if header.endswith(";base64"):
                    return base64.b64decode(payload, validate=False)
                return unquote_to_bytes(payload)
            except ValueError as exc:
                raise self.fail(f"{what}: bad base64 data URI ({exc})") from None
        rel = unquote(uri)
        full = Path(rel) if os.path.isabs(rel) else self.base / rel
        if self.confine_to is not None:
            try:
                inside = full.resolve().is_relative_to(self.confine_to)
            except (OSError, RuntimeError):  # a link loop
                inside = False
            if not inside:
                raise self.fail(f"{what}: {uri} is outside the content folder {self.confine_to}: refused")
        try:
            return full.read_bytes()
        except FileNotFoundError:
            raise self.fail(f"{what}: file not found: {uri} (looked for {full})") from None
        except OSError as exc:
            raise self.fail(f"{what}: cannot read {full}: {exc.strerror or exc}") from None

    def buffer(self, index: int) -> bytes:
        data = self._buffers.get(index)
        if data is not None:
            return data
        buf = self._item("buffers", index)
        what = f"buffer {index}"
        if buf.uri is None:
            blob = self.gltf.binary_blob() if index == 0 else None
            if blob is None:
                raise self.fail(f"{what} has no uri and the file has no GLB binary chunk")
            data = bytes(blob)
        else:
            data = self._uri_bytes(buf.uri, what)
        length = buf.byteLength or 0
        if len(data) < length:
            raise self.fail(f"{what} holds {len(data)} bytes, the file declares byteLength {length}")
        self._buffers[index] = data
        return data

    def view_bytes(self, index: int) -> tuple[memoryview, int | None]:
        bv = self._item("bufferViews", index)
        data = self.buffer(bv.buffer)
        off, length = bv.byteOffset or 0, bv.byteLength or 0
        if off + length > len(data):
            raise self.fail(
                f"bufferView {index} (bytes {off}..{off + length}) runs past the end of buffer {bv.buffer} "
                f"({len(data)} bytes)"
            )
        return memoryview(data)[off : off + length], bv.byteStride

    def _strided(self, view: int, offset: int, count: int, dtype, n: int, what: str) -> np.ndarray:
        raw, stride = self.view_bytes(view)
        dt = np.dtype(dtype).newbyteorder("<")
        elem = dt.itemsize * n
        stride = stride or elem
        if stride < elem:
            raise self.fail(f"{what}: byteStride {stride} is smaller than one element ({elem} bytes)")
        need = offset + stride * (count - 1) + elem if count else 0
        if need > len(raw):
            raise self.fail(
                f"{what} reads past the end of bufferView {view} (needs {need} bytes, it has {len(raw)})"
            )
        if count == 0:
            return np.zeros((0, n), dt)
        arr = np.ndarray((count, n), dt, buffer=raw, offset=offset, strides=(stride, dt.itemsize))
        return arr.astype(dt.newbyteorder("="), copy=True)

    def accessor(self, index: int, what: str, *, types: tuple[str, ...]) -> tuple[np.ndarray, Any]:
        """The accessor's elements as ``(count, n)`` array of its component type (copied)."""
        acc = self._item("accessors", index)
        what = f"{what} (accessor {index})"
        if acc.type not in types:
            raise self.fail(f"{what}: type {acc.type} not supported here, expected {' or '.join(types)}")
        dtype = _COMPONENT.get(acc.componentType)
        if dtype is None:
            raise self.fail(f"{what}: unknown componentType {acc.componentType}")
        n = _NCOMP[acc.type]
        count = acc.count or 0
        if acc.bufferView is None:
            arr = np.zeros((count, n), dtype)
        else:
            arr = self._strided(acc.bufferView, acc.byteOffset or 0, count, dtype, n, what)
        sp = acc.sparse
        if sp is not None and sp.count:
            idt = _COMPONENT.get(sp.indices.componentType)
            if idt not in (np.uint8, np.uint16, np.uint32):
                raise self.fail(f"{what}: sparse indices componentType {sp.indices.componentType} invalid")
            idx = self._strided(
                sp.indices.bufferView, sp.indices.byteOffset or 0, sp.count, idt, 1, f"{what} sparse indices"
            )[:, 0].astype(np.int64)
            vals = self._strided(
                sp.values.bufferView, sp.values.byteOffset or 0, sp.count, dtype, n, f"{what} sparse values"
            )
            if idx.size and (idx.min() < 0 or idx.max() >= count):
                raise self.fail(f"{what}: sparse index {int(idx.max())} out of range 0..{count - 1}")
            arr[idx] = vals
        return arr, acc

    def floats(self, index: int, what: str, *, types: tuple[str, ...]) -> np.ndarray:
        """Accessor values as float32, normalised integers mapped to [0, 1] / [-1, 1]."""
        arr, acc = self.accessor(index, what, types=types)
        if arr.dtype == np.float32:
            out = arr
        elif acc.normalized:
            info = np.iinfo(arr.dtype)
            out = np.maximum(arr.astype(np.float64) / info.max, -1.0)
        else:
            out = arr.astype(np.float64)
        out = np.asarray(out, dtype=np.float32)
        if not np.all(np.isfinite(out)):
            raise self.fail(f"{what} (accessor {index}) holds non-finite values")
        return out

    def image(self, index: int) -> GltfImage:
        img = self._item("images", index)
        name = img.name or ""
        if not name and img.uri and not img.uri.startswith("data:"):
            name = img.uri
        what = f"image {index}" + (f" ({name})" if name else "")
        if img.bufferView is not None:
            raw, _ = self.view_bytes(img.bufferView)
            data = bytes(raw)
        elif img.uri:
            data = self._uri_bytes(img.uri, what)
        else:
            raise self.fail(f"{what} has neither a uri nor a bufferView")
        pixels, encoded = decode_image(data, self.path, what)
        return GltfImage(name or f"image{index}", pixels, encoded)


def _load_document(path: Path):
    from pygltflib import GLTF2

    data = read_content_file(path)
    try:
        if data[:4] == b"glTF":
            doc = GLTF2.load_from_bytes(data)
        elif path.suffix.lower() == ".glb":
            raise ContentError(path, "not a GLB file (it does not start with the 'glTF' magic)")
        else:
            doc = GLTF2.gltf_from_json(data.decode("utf-8-sig"))
    except ContentError:
        raise
    except UnicodeDecodeError:
        raise ContentError(path, "not a glTF file (neither UTF-8 JSON nor GLB)") from None
    except json.JSONDecodeError as exc:
        raise ContentError(
            path, f"invalid glTF JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (struct.error, OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ContentError(path, f"cannot parse glTF: {type(exc).__name__}: {exc}") from None
    version = str(getattr(doc.asset, "version", "") or "")
    if not version.startswith("2."):
        raise ContentError(path, f"not a glTF 2.0 file (asset.version {version or 'missing'!r})")
    return doc


def _triangle_indices(mode: int, idx: np.ndarray) -> np.ndarray:
    """Triangle-list indices for TRIANGLES, TRIANGLE_STRIP or TRIANGLE_FAN (glTF 2.0 spec §3.7.2.1
    winding)."""
    if mode == 4:
        return idx[: len(idx) // 3 * 3]
    n = len(idx) - 2
    if n <= 0:
        return np.zeros(0, np.uint32)
    i = np.arange(n)
    if mode == 5:
        odd = i % 2
        tris = np.stack([idx[i], idx[i + 1 + odd], idx[i + 2 - odd]], axis=1)
    else:
        tris = np.stack([idx[i + 1], idx[i + 2], np.full(n, idx[0])], axis=1)
    return tris.reshape(-1).astype(np.uint32)


def _attribute(
    rd: _Reader, attrs, name: str, what: str, nv: int, types: tuple[str, ...], fill: tuple[float, ...]
) -> np.ndarray:
    """Vertex attribute ``name`` as (nv, len(fill)) float32 (``fill`` where absent; VEC3 colours: alpha 1)."""
    ai = getattr(attrs, name, None)
    if ai is None:
        return np.tile(np.asarray(fill, np.float32), (nv, 1))
    a = rd.floats(ai, f"{what} {name}", types=types)
    if len(a) != nv:
        raise rd.fail(f"{what}: {name} has {len(a)} elements, POSITION has {nv}")
    if a.shape[1] == 3 and len(fill) == 4:
        a = np.concatenate([a, np.ones((nv, 1), np.float32)], axis=1)
    return a


def read_gltf(path: str | os.PathLike, T_stage_content: np.ndarray | None = None, *,
              confine_to: str | os.PathLike | None = None) -> GltfScene:
    """Parse a ``.gltf`` / ``.glb`` file into a :class:`GltfScene` (no GL). ``T_stage_content``: placement of
    the asset in the stage (applied after :data:`T_STAGE_GLTF`). ``confine_to``: a folder every buffer and image
    the file names must resolve inside (links followed, ``..`` folded): the console's content folder when the
    operator picked the scene; a URI outside it is refused. Raises :class:`ContentError`."""
    path = Path(path)
    doc = _load_document(path)
    rd = _Reader(doc, path, None if confine_to is None else Path(confine_to))
    notes: list[str] = []
    required = set(doc.extensionsRequired or ())
    missing = sorted(required - SUPPORTED_EXTENSIONS)
    if missing:
        raise rd.fail(f"requires unsupported glTF extension(s) {', '.join(missing)}")
    for kind in ("skins", "animations", "cameras"):
        if getattr(doc, kind, None):
            notes.append(f"{len(getattr(doc, kind))} {kind} ignored")

    # ---- materials, textures, images (only those used get decoded)
    materials: list[GltfMaterial] = []
    tex_map: dict[int, int] = {}
    textures: list[GltfTexture] = []
    images: list[GltfImage] = []
    image_map: dict[int, int] = {}

    def texture(ti: int) -> int:
        if ti in tex_map:
            return tex_map[ti]
        t = rd._item("textures", ti)
        source = t.source
        ext = (t.extensions or {}).get("EXT_texture_webp")
        if isinstance(ext, dict) and ext.get("source") is not None:
            source = ext["source"]
        if source is None:
            raise rd.fail(f"texture {ti} has no image source")
        if source not in image_map:
            image_map[source] = len(images)
            images.append(rd.image(source))
        wrap, mag, mn = (_REPEAT, _REPEAT), _LINEAR, _LINEAR_MIPMAP_LINEAR
        mip = True
        if t.sampler is not None:
            s = rd._item("samplers", t.sampler)
            wrap = tuple(w if w in _WRAPS else _REPEAT for w in (s.wrapS or _REPEAT, s.wrapT or _REPEAT))
            mag = s.magFilter if s.magFilter in _MAG else _LINEAR
            if s.minFilter in _MIN:
                mn = s.minFilter
                mip = s.minFilter in _MIPMAP_MIN
        tex_map[ti] = len(textures)
        textures.append(GltfTexture(image_map[source], wrap, int(mag), int(mn), mip))
        return tex_map[ti]

    def material(mi: int | None) -> int:
        return len(doc.materials or []) if mi is None else mi

    ignored_maps = set()
    for mi, m in enumerate(doc.materials or []):
        pbr = m.pbrMetallicRoughness
        base = (1.0, 1.0, 1.0, 1.0)
        tex, texcoord = None, 0
        if pbr is not None:
            if pbr.baseColorFactor is not None:
                base = tuple(float(c) for c in pbr.baseColorFactor)
                if len(base) != 4:
                    raise rd.fail(f"material {mi}: baseColorFactor needs 4 numbers, got {len(base)}")
            if pbr.baseColorTexture is not None and pbr.baseColorTexture.index is not None:
                tex = texture(pbr.baseColorTexture.index)
                texcoord = pbr.baseColorTexture.texCoord or 0
            if pbr.metallicRoughnessTexture is not None:
                ignored_maps.add("metallic-roughness")
        for attr, what in (
            ("normalTexture", "normal"),
            ("occlusionTexture", "occlusion"),
            ("emissiveTexture", "emissive"),
        ):
            if getattr(m, attr, None) is not None:
                ignored_maps.add(what)
        emissive = tuple(float(c) for c in (m.emissiveFactor or (0.0, 0.0, 0.0)))
        mode = (m.alphaMode or "OPAQUE").upper()
        if mode not in ("OPAQUE", "MASK", "BLEND"):
            raise rd.fail(f"material {mi}: unknown alphaMode {m.alphaMode!r}")
        materials.append(
            GltfMaterial(
                name=m.name or f"material{mi}",
                base_color=base,
                texture=tex,
                texcoord=int(texcoord),
                emissive=emissive[:3],
                alpha_mode=mode,
                alpha_cutoff=0.5 if m.alphaCutoff is None else float(m.alphaCutoff),
                double_sided=bool(m.doubleSided),
                unlit="KHR_materials_unlit" in (m.extensions or {}),
            )
        )
    if ignored_maps:
        notes.append(f"{', '.join(sorted(ignored_maps))} textures ignored")
    default_material = len(materials)
    materials.append(GltfMaterial(name="default"))

    # ---- mesh primitives (read once per mesh, instanced by nodes)
    primitives: list[GltfPrimitive] = []
    mesh_prims: dict[int, list[int]] = {}
    skipped_modes: set[str] = set()

    def mesh(mi: int) -> list[int]:
        if mi in mesh_prims:
            return mesh_prims[mi]
        msh = rd._item("meshes", mi)
        out = []
        for pi, prim in enumerate(msh.primitives or []):
            what = f"mesh {mi} primitive {pi}"
            mode = 4 if prim.mode is None else int(prim.mode)
            if mode not in (4, 5, 6):
                skipped_modes.add(_MODES.get(mode, str(mode)))
                continue
            attrs = prim.attributes
            if getattr(attrs, "POSITION", None) is None:
                raise rd.fail(f"{what} has no POSITION attribute")
            pos = rd.floats(attrs.POSITION, f"{what} POSITION", types=("VEC3",))
            nv = len(pos)
            mat_i = default_material if prim.material is None else prim.material
            if not 0 <= mat_i < len(materials):
                raise rd.fail(f"{what}: material {prim.material} does not exist")
            mat = materials[mat_i]

            uv = _attribute(rd, attrs, f"TEXCOORD_{mat.texcoord}", what, nv, ("VEC2",), (0.0, 0.0))
            color = _attribute(rd, attrs, "COLOR_0", what, nv, ("VEC3", "VEC4"), (1.0, 1.0, 1.0, 1.0))
            has_normals = getattr(attrs, "NORMAL", None) is not None
            normal = _attribute(rd, attrs, "NORMAL", what, nv, ("VEC3",), (0.0, 0.0, 1.0))
            if prim.indices is not None:
                raw, _ = rd.accessor(prim.indices, f"{what} indices", types=("SCALAR",))
                if raw.dtype not in (np.uint8, np.uint16, np.uint32):
                    raise rd.fail(f"{what}: indices must be unsigned integers, got {raw.dtype}")
                idx = raw[:, 0].astype(np.uint32)
                if idx.size and int(idx.max()) >= nv:
                    raise rd.fail(f"{what}: index {int(idx.max())} out of range (POSITION has {nv} elements)")
            else:
                idx = np.arange(nv, dtype=np.uint32)
            tri = _triangle_indices(mode, idx)
            verts = np.concatenate([pos, normal, uv, color], axis=1).astype(np.float32)
            if not has_normals and len(tri):
                # flat normals (spec: "client implementations MUST calculate flat normals"): one vertex per
                # corner
                verts = verts[tri]
                p = verts[:, :3].reshape(-1, 3, 3).astype(np.float64)
                n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
                ln = np.linalg.norm(n, axis=1, keepdims=True)
                n = np.where(ln > 0, n / np.where(ln > 0, ln, 1.0), [0.0, 0.0, 1.0])
                verts[:, 3:6] = np.repeat(n, 3, axis=0)
                tri = np.arange(len(verts), dtype=np.uint32)
            out.append(len(primitives))
            primitives.append(
                GltfPrimitive(
                    mi, pi, np.ascontiguousarray(verts), np.ascontiguousarray(tri, dtype=np.uint32), mat_i
                )
            )
        mesh_prims[mi] = out
        return out

    # ---- node hierarchy of the default scene
    nodes = doc.nodes or []
    if doc.scenes:
        si = doc.scene if doc.scene is not None else 0
        roots = list(rd._item("scenes", si).nodes or [])
    else:
        children = {c for n in nodes for c in (n.children or [])}
        roots = [i for i in range(len(nodes)) if i not in children]
    T_content = np.eye(4) if T_stage_content is None else np.asarray(T_stage_content, dtype=np.float64)
    draws: list[GltfDraw] = []
    stack = [(r, T_content @ T_STAGE_GLTF, ()) for r in reversed(roots)]
    while stack:
        ni, parent, ancestors = stack.pop()
        node = rd._item("nodes", ni)
        if ni in ancestors:
            raise rd.fail(f"node {ni} is its own ancestor (cycle in the node hierarchy)")
        try:
            local = node_matrix(node)
        except (ValueError, TypeError) as exc:
            raise rd.fail(f"node {ni}: bad transform: {exc}") from None
        world = parent @ local
        if not np.all(np.isfinite(world)):
            raise rd.fail(f"node {ni}: non-finite transform")
        if node.mesh is not None:
            for p in mesh(node.mesh):
                draws.append(GltfDraw(p, ni, world))
        for c in reversed(node.children or []):
            stack.append((c, world, (*ancestors, ni)))
    if skipped_modes:
        notes.append(f"{', '.join(sorted(skipped_modes))} primitives skipped")
    if not draws:
        notes.append("the scene draws no triangles")
    return GltfScene(path, primitives, materials, images, textures, draws, notes)


# --------------------------------------------------------------------------------------------- GL


def _variant(source: str, define: str | None) -> str:
    if define is None:
        return source
    version, rest = source.split("\n", 1)
    return f"{version}\n#define {define}\n#line 2\n{rest}"


class GltfContent(Content):
    """A :class:`GltfScene` uploaded to GL and drawn as scene content (see the module docstring).

    ``background``: a :class:`Content` drawn first (owned: released with this one); otherwise the viewport is
    cleared to ``clear_color`` (linear RGB). ``light``: a :class:`GltfLight` or its spec mapping.
    """

    PASS = "gltf"

    def __init__(
        self,
        scene: GltfScene,
        resources: ResourceRegistry,
        *,
        label: str = "gltf",
        background: Content | None = None,
        clear_color=None,
        light=None,
    ) -> None:
        self.scene = scene
        self.resources = resources
        self.label = label
        self.background = background
        self.light = GltfLight.from_spec(light, scene.path)
        cc = (0.0, 0.0, 0.0) if clear_color is None else clear_color
        try:
            cc_arr = np.asarray(cc, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            cc_arr = np.zeros(0)
        if cc_arr.shape != (3,) or not np.all(np.isfinite(cc_arr)):
            raise ContentError(
                scene.path, f'background: expected a file, "procedural" or [r, g, b], got {cc!r}'
            )
        self.clear_color = tuple(float(c) for c in cc_arr)
        self._owned = OwnedObjects()
        keep = self._owned.keep
        self._prims: list[tuple[Any, int]] = []  # (vao, index count)
        self._textures: list = []
        try:
            vert, frag = shader_source("gltf.vert"), shader_source("gltf.frag")
            self.program = keep(resources.program(f"{label}.program", vert, frag))
            self.mask_program = keep(
                resources.program(f"{label}.mask.program", vert, _variant(frag, "ALPHA_MASK"))
            )
            self.white = keep(
                image_texture(
                    resources,
                    f"{label}.white",
                    np.full((1, 1, 4), 255, np.uint8),
                    encoded=True,
                    mipmaps=False,
                )
            )
            for i, t in enumerate(scene.textures):
                img = scene.images[t.image]
                self._textures.append(
                    keep(
                        image_texture(
                            resources,
                            f"{label}.texture{i}",
                            img.pixels,
                            encoded=img.encoded,
                            wrap=t.wrap,
                            mag_filter=t.mag_filter,
                            min_filter=t.min_filter,
                            mipmaps=t.mipmaps,
                        )
                    )
                )
            for i, p in enumerate(scene.primitives):
                if not len(p.indices):
                    self._prims.append((None, 0))
                    continue
                vbo = keep(resources.buffer(f"{label}.prim{i}.vbo", GL.GL_ARRAY_BUFFER, p.vertices))
                ibo = keep(
                    resources.buffer(f"{label}.prim{i}.ibo", GL.GL_ELEMENT_ARRAY_BUFFER, p.indices)
                )
                vao = keep(resources.vertex_array(f"{label}.prim{i}.vao"))
                stride = VERTEX_FLOATS * 4
                for loc, comps, off in ((0, 3, 0), (1, 3, 12), (2, 2, 24), (3, 4, 32)):
                    vao.attribute(loc, vbo, comps, stride=stride, offset=off)
                vao.set_index_buffer(ibo)
                self._prims.append((vao, len(p.indices)))
            with gl_pass("create", label):
                for prog in (self.program, self.mask_program):
                    prog.use()
                    prog.set_int("u_base_tex", 0)
                    prog.set_vec3("u_light_dir", self.light.direction_unit)
                    prog.set_vec3("u_sun", self.light.sun)
                    prog.set_vec3("u_ambient", self.light.ambient)
                GL.glUseProgram(0)

            # draw order: opaque and masked first, then blended (unsorted)
            def blended(d: GltfDraw) -> bool:
                return scene.materials[scene.primitives[d.primitive].material].alpha_mode == "BLEND"

            order = [d for d in scene.draws if not blended(d)] + [d for d in scene.draws if blended(d)]
            # per instance, computed once: normal matrix (inverse transpose, in a 4x4) and the front-face
            # winding
            self._order = []
            for d in order:
                R = d.T_stage_object[:3, :3]
                det = float(np.linalg.det(R))
                normal = np.eye(4)
                if abs(det) > 1e-300:
                    normal[:3, :3] = np.linalg.inv(R).T
                self._order.append((d, normal, det < 0))
        except BaseException:
            self.release()
            raise

    @classmethod
    def load(
        cls,
        path,
        resources: ResourceRegistry,
        *,
        label: str = "gltf",
        T_stage_content=None,
        background: Content | None = None,
        clear_color=None,
        light=None,
        confine_to=None,
    ) -> GltfContent:
        """Read ``path`` (:func:`read_gltf`, its files confined to ``confine_to`` when given) and upload it."""
        return cls(
            read_gltf(path, T_stage_content, confine_to=confine_to),
            resources,
            label=label,
            background=background,
            clear_color=clear_color,
            light=light,
        )

    def describe(self) -> str:
        s = self.scene
        text = (
            f"glTF {s.path.name}: {len(s.draws)} primitive instances, {s.triangle_count} triangles, "
            f"{len(s.textures)} textures"
        )
        if self.background is not None:
            text += f", over {self.background.describe()}"
        if s.notes:
            text += f" ({'; '.join(s.notes)})"
        return text

    def frame_key(self, *, time_ns=None, timecode_frame=None):
        if self.background is None:
            return None
        return self.background.frame_key(time_ns=time_ns, timecode_frame=timecode_frame)

    @property
    def static(self) -> bool:  # type: ignore[override]
        return self.background is None or self.background.static

    def draw(self, view_proj, target, viewport=None, *, eye_stage=None, time_ns=None, timecode_frame=None):
        """Draw the scene (see :meth:`Content.draw`); RenderError (pass ``"gltf"``) on a GL error."""
        vp = check_view_proj(view_proj, self.PASS)
        fbo, label, area = resolve_target(target, viewport, self.PASS)
        if self.background is not None:
            self.background.draw(
                vp, target, viewport, eye_stage=eye_stage, time_ns=time_ns, timecode_frame=timecode_frame
            )
        scene = self.scene
        with gl_pass(self.PASS, label):
            bind_draw_area(fbo, area)
            if self.background is None:
                GL.glClearColor(*self.clear_color, 1.0)
                GL.glClearDepth(1.0)
                GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
            GL.glEnable(GL.GL_DEPTH_TEST)
            GL.glDepthFunc(GL.GL_LESS)
            GL.glCullFace(GL.GL_BACK)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            current = None
            blending = False
            for d, normal, mirrored in self._order:
                vao, count = self._prims[d.primitive]
                if vao is None:
                    continue
                prim = scene.primitives[d.primitive]
                mat = scene.materials[prim.material]
                prog = self.mask_program if mat.alpha_mode == "MASK" else self.program
                if prog is not current:
                    prog.use()
                    current = prog
                if (mat.alpha_mode == "BLEND") != blending:
                    blending = not blending
                    if blending:
                        GL.glEnable(GL.GL_BLEND)
                        # colour: over; destination alpha kept (targets hold opaque alpha 1)
                        GL.glBlendFuncSeparate(
                            GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA, GL.GL_ZERO, GL.GL_ONE
                        )
                        GL.glDepthMask(GL.GL_FALSE)
                    else:
                        GL.glDisable(GL.GL_BLEND)
                        GL.glDepthMask(GL.GL_TRUE)
                prog.set_mat4("u_mvp", vp @ d.T_stage_object)
                prog.set_mat4("u_normal_matrix", normal)
                prog.set_vec4("u_base_color", mat.base_color)
                prog.set_vec3("u_emissive", mat.emissive)
                prog.set_float("u_unlit", 1.0 if mat.unlit else 0.0)
                prog.set_float("u_double_sided", 1.0 if mat.double_sided else 0.0)
                prog.set_float("u_opaque", 0.0 if mat.alpha_mode == "BLEND" else 1.0)
                prog.set_float("u_alpha_cutoff", mat.alpha_cutoff)
                # a mirroring transform (negative determinant) flips the winding (glTF spec,
                # "Transformations")
                GL.glFrontFace(GL.GL_CW if mirrored else GL.GL_CCW)
                if mat.double_sided:
                    GL.glDisable(GL.GL_CULL_FACE)
                else:
                    GL.glEnable(GL.GL_CULL_FACE)
                tex = self.white if mat.texture is None else self._textures[mat.texture]
                GL.glBindTexture(GL.GL_TEXTURE_2D, tex.glo)
                GL.glBindVertexArray(vao.glo)
                GL.glDrawElements(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, None)
            reset_draw_state()

    def release(self) -> None:
        """Free the programs, buffers, vertex arrays, textures and the background (render thread)."""
        self._owned.release()
        self._prims.clear()
        self._textures.clear()
        if self.background is not None:
            self.background.release()
