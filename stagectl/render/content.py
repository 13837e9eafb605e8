"""Scene content: what the inner and outer passes draw, behind one small interface.

A :class:`Content` draws the world seen through a stage -> clip matrix into a framebuffer::

    content.draw(view_proj, target, viewport=None, *, eye_stage=None, time_ns=None, timecode_frame=None)
    content.release()
    content.describe()

``view_proj`` is the 4x4 float64 stage -> clip matrix ``P @ V`` (``V = T_gl_camera @ inv(T_stage_pupil)``;
docs/conventions.md), row-major numpy acting on column vectors, uploaded with ``transpose=GL_TRUE``; it must
be a perspective projection (glFrustum or Kooima, times a rigid view). ``target`` is a
:class:`~stagectl.render.gl.resources.Framebuffer`, a :class:`~stagectl.render.scene.RenderTarget` or a raw
framebuffer name (0 = the current window; then ``viewport`` is required). ``viewport`` ``(x, y, w, h)`` is in
GL window coordinates (origin bottom-left), default the whole target; only that rectangle is cleared and drawn
(the outer cube atlas draws one face per viewport). ``eye_stage`` is the eye point (stage, metres; the
entrance pupil of a camera, the outer viewpoint), derived from ``view_proj`` when not given.
``timecode_frame`` is the stage timecode as a frame count (:meth:`stagectl.core.timebase.Timecode.to_frame`)
and picks the frame of animated content; ``time_ns`` is used only when no timecode frame is given. Every
content writes linear-light RGB and alpha 1 to every pixel of the viewport, and leaves the depth buffer
consistent with what it drew.

``content.static`` is True when the image does not change with time (the outer atlas may be kept between
frames while the viewpoint stays); ``content.frame_key(time_ns=..., timecode_frame=...)`` is a hashable value
that changes exactly when the drawn image changes (None for static content), so an animated content's outer
atlas needs redrawing only when it changes.

:func:`load_content` maps a stage file's ``render.outer.content`` value to a content:

* ``"procedural"``: the built-in test world (:class:`ProceduralContent`, an adapter around
  :class:`~stagectl.render.scene.SceneRenderer`);
* a ``.gltf`` / ``.glb`` file: a glTF 2.0 scene (:class:`stagectl.render.gltf.GltfContent`);
* an image (``.png .jpg .jpeg .exr .hdr .tif .tiff .webp .bmp .pfm``): an equirectangular 360 plate
  (:class:`stagectl.render.plate.PlateContent`);
* a video (``.mp4 .mov .avi .mkv .m4v .mxf .webm``): a 360 video plate, frame chosen by the stage timecode.

A spec may also be a mapping ``{path: ..., <options>}`` (see :data:`SPEC_KEYS`): ``position`` ``[x, y, z]``
metres, ``rotation`` ``[pan, tilt, roll]`` degrees and ``scale`` place the content in the stage
(``T_stage_content``; plates use only the rotation: they are at infinity); ``loop`` and ``start_frame`` pick
video frames; ``background`` (glTF only) is drawn behind the scene: ``"procedural"``, a plate path or a linear
RGB colour ``[r, g, b]``; ``light`` (glTF only) ``{direction: [x, y, z] toward the light, sun: [r, g, b],
ambient: [r, g, b]}``. Relative paths are resolved against ``base_dir``.

Missing or broken assets raise :class:`ContentError` (a :class:`~stagectl.core.errors.StageError`: the CLI prints
its one-line message, naming the file and the problem, without a traceback).

Texture helpers shared by the glTF and plate contents live here too: 8-bit images are uploaded as
``GL_SRGB8_ALPHA8`` textures (the sampler decodes sRGB to linear *before* filtering), 16-bit images are
decoded to linear on the CPU and float images (EXR, HDR) are linear already; both go to ``rgba16f``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.core.errors import StageError
from stagectl.render.gl.errors import ResourceError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import Framebuffer, ResourceRegistry, Texture2D, gl_pass

__all__ = [
    "ContentError",
    "Content",
    "ProceduralContent",
    "load_content",
    "content_kind",
    "content_static",
    "placement_matrix",
    "SPEC_KEYS",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "GLTF_SUFFIXES",
    "decode_image",
    "image_texture",
    "resolve_target",
    "enable_openexr",
]

GLTF_SUFFIXES = (".gltf", ".glb")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".hdr", ".tif", ".tiff", ".webp", ".bmp", ".pfm")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".mxf", ".webm")

#: Keys of a mapping spec, per kind of content.
SPEC_KEYS = {
    "procedural": ("path",),
    "gltf": ("path", "position", "rotation", "scale", "background", "light"),
    "image": ("path", "rotation"),
    "video": ("path", "rotation", "loop", "start_frame"),
}


class ContentError(StageError):
    """Scene content that cannot be loaded: ``path`` (the asset) and ``problem`` (what is wrong with it)."""

    exit_code = 2

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"content {self.path}: {problem}" if self.path else f"content: {problem}")


# --------------------------------------------------------------------------------------------- interface


class Content:
    """Base of every scene content (see the module docstring for the contract of :meth:`draw`)."""

    #: True: the image depends only on the view (never on time)
    static: bool = True
    label: str = "content"

    def draw(
        self,
        view_proj: np.ndarray,
        target: Any,
        viewport: tuple[int, int, int, int] | None = None,
        *,
        eye_stage: np.ndarray | None = None,
        time_ns: int | None = None,
        timecode_frame: int | None = None,
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def frame_key(self, *, time_ns: int | None = None, timecode_frame: int | None = None):
        """A hashable value that changes when the drawn image changes with time (None: static content)."""
        return None

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ProceduralContent(Content):
    """The built-in procedural test world as a :class:`Content` (draws with the wrapped
    :class:`~stagectl.render.scene.SceneRenderer`; ``owns``: :meth:`release` releases it too)."""

    static = True

    def __init__(self, scene, *, owns: bool = True) -> None:
        self.scene = scene
        self.owns = owns
        self.label = scene.label
        self._columns = len(scene.columns)

    @classmethod
    def create(cls, resources: ResourceRegistry, *, columns=None, look=None, label: str = "scene"):
        """A new :class:`~stagectl.render.scene.SceneRenderer` (default columns and look unless given)."""
        from stagectl.render.scene import SceneRenderer

        kw: dict[str, Any] = {}
        if columns is not None:
            kw["columns"] = tuple(columns)
        if look is not None:
            kw["look"] = look
        return cls(SceneRenderer(resources, label=label, **kw), owns=True)

    def draw(self, view_proj, target, viewport=None, *, eye_stage=None, time_ns=None, timecode_frame=None):
        # the scene renderer derives the eye from view_proj itself; the world does not change with time
        if self.scene is None:
            raise ResourceError(f"content {self.label!r} used after release")
        self.scene.draw(view_proj, target, viewport)

    def describe(self) -> str:
        return f"procedural test world ({self._columns} columns)"

    def release(self) -> None:
        """Release the wrapped scene renderer when this adapter owns it; idempotent."""
        if self.scene is not None and self.owns:
            self.scene.release()
        self.scene = None


# --------------------------------------------------------------------------------------------- loading


def content_kind(path: str | os.PathLike) -> str:
    """``"gltf"``, ``"image"`` or ``"video"`` from the file suffix; ContentError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in GLTF_SUFFIXES:
        return "gltf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise ContentError(
        path,
        f'unsupported content type {suffix or "(no suffix)"!r}; expected "procedural", a glTF scene '
        f"({', '.join(GLTF_SUFFIXES)}), an equirectangular image ({', '.join(IMAGE_SUFFIXES)}) or a video "
        f"({', '.join(VIDEO_SUFFIXES)})",
    )


def content_static(spec: str | os.PathLike | Mapping[str, Any]) -> bool:
    """Whether the content a spec names is static (no GL, no file access): False for a video, or a glTF scene
    over a video background; what a :class:`~stagectl.render.plan.FramePlanner` needs as ``outer_static``
    before any content is loaded. Specs that are not understood count as static (loading reports them)."""
    options = dict(spec) if isinstance(spec, Mapping) else {"path": spec}
    path = options.get("path")
    if not isinstance(path, (str, os.PathLike)) or str(path) == "procedural":
        return True
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return False
    background = options.get("background")
    if suffix in GLTF_SUFFIXES and isinstance(background, (str, os.PathLike)):
        return content_static(background)
    return True


def _vector(spec_path, key: str, value, n: int) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        v = np.zeros(0)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise ContentError(spec_path, f"{key}: expected {n} finite numbers, got {value!r}")
    return v


def placement_matrix(spec: Mapping[str, Any], path=None) -> np.ndarray:
    """``T_stage_content`` from a spec's ``position`` (m), ``rotation`` ``[pan, tilt, roll]`` (deg, the stage
    convention ``Rz(pan) @ Rx(tilt) @ Ry(roll)``) and uniform ``scale``: ``translate @ rotate @ scale``."""
    from stagectl.core.transforms import rotation_from_ptr_deg

    T = np.eye(4)
    if spec.get("position") is not None:
        T[:3, 3] = _vector(path, "position", spec["position"], 3)
    R = np.eye(3)
    if spec.get("rotation") is not None:
        R = rotation_from_ptr_deg(*_vector(path, "rotation", spec["rotation"], 3))
    s = 1.0
    if spec.get("scale") is not None:
        s = float(_vector(path, "scale", spec["scale"], 1)[0])
        if s <= 0:
            raise ContentError(path, f"scale: expected a positive number, got {spec['scale']!r}")
    T[:3, :3] = R * s
    return T


def load_content(
    spec: str | os.PathLike | Mapping[str, Any],
    resources: ResourceRegistry,
    base_dir: str | os.PathLike | None = None,
    *,
    label: str = "content",
    columns=None,
    confine_to: str | os.PathLike | None = None,
) -> Content:
    """The :class:`Content` for a stage file's ``outer.content`` value (see the module docstring).

    Needs the GL context of ``resources`` current (it uploads meshes and textures). ``columns`` configures the
    procedural world. Raises :class:`ContentError` for a missing, unsupported or broken asset (and the GL
    backend's errors, also StageErrors, if an upload fails). ``confine_to``: the folder a glTF's buffers and
    images must stay inside (the console's content folder for a scene the operator picked).
    """
    options: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "path" not in options:
            raise ContentError(None, f"a content mapping needs a 'path' key, got keys {sorted(options)}")
        raw = options["path"]
    else:
        raw = spec
    if not isinstance(raw, (str, os.PathLike)) or not str(raw).strip():
        raise ContentError(None, f'expected "procedural" or a file path, got {raw!r}')
    if str(raw) == "procedural":
        _check_keys(options, "procedural", raw)
        return ProceduralContent.create(resources, columns=columns, label=label)
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    kind = content_kind(path)
    _check_keys(options, kind, path)
    if not path.exists():
        raise ContentError(path, "file not found")
    if not path.is_file():
        raise ContentError(path, "not a regular file")
    if kind == "gltf":
        from stagectl.render.gltf import GltfContent

        background = options.get("background")
        bg_content = None
        if isinstance(background, (str, os.PathLike)):
            bg_content = load_content(
                background, resources, base_dir, label=f"{label}.background", columns=columns
            )
            background = None
        try:
            return GltfContent.load(
                path,
                resources,
                label=label,
                T_stage_content=placement_matrix(options, path),
                background=bg_content,
                clear_color=background,
                light=options.get("light"),
                confine_to=confine_to,
            )
        except BaseException:
            if bg_content is not None:
                bg_content.release()
            raise
    from stagectl.render.plate import PlateContent

    rotation = placement_matrix({"rotation": options.get("rotation")}, path)[:3, :3]
    if kind == "image":
        return PlateContent.from_image(path, resources, label=label, R_stage_plate=rotation)
    loop = options.get("loop", True)
    if not isinstance(loop, bool):
        raise ContentError(path, f"loop: expected true or false, got {loop!r}")
    start = options.get("start_frame", 0)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise ContentError(path, f"start_frame: expected an integer frame number, got {start!r}")
    return PlateContent.from_video(
        path, resources, label=label, R_stage_plate=rotation, loop=loop, start_frame=int(start)
    )


def _check_keys(options: Mapping[str, Any], kind: str, path) -> None:
    unknown = sorted(set(options) - set(SPEC_KEYS[kind]))
    if unknown:
        raise ContentError(
            path,
            f"unknown option(s) {', '.join(unknown)} for {kind} content; allowed: "
            f"{', '.join(SPEC_KEYS[kind])}",
        )


# --------------------------------------------------------------------------------------------- helpers


def resolve_target(target, viewport, what: str) -> tuple[int, str, tuple[int, int, int, int]]:
    """``(framebuffer name, label, viewport)`` of a draw target (Framebuffer, RenderTarget or raw name)."""
    fb = getattr(target, "framebuffer", target)  # RenderTarget -> its Framebuffer
    if isinstance(fb, Framebuffer):
        fb._require_live()
        vp = fb.viewport if viewport is None else viewport
        return fb.glo, fb.label, tuple(int(v) for v in vp)  # type: ignore[return-value]
    if viewport is None:
        raise ResourceError(f"{what}: a raw framebuffer target needs an explicit viewport")
    return int(fb), f"framebuffer {int(fb)}", tuple(int(v) for v in viewport)  # type: ignore[return-value]


def bind_draw_area(fbo: int, viewport: tuple[int, int, int, int]) -> None:
    """Start a content's draw: bind framebuffer ``fbo``, confine drawing to ``viewport`` ``(x, y, w, h)``
    (viewport and scissor) and let depth be written (GL state is left as :func:`reset_draw_state` expects)."""
    x, y, w, h = viewport
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
    GL.glViewport(x, y, w, h)
    GL.glEnable(GL.GL_SCISSOR_TEST)
    GL.glScissor(x, y, w, h)
    GL.glDepthMask(GL.GL_TRUE)


def read_content_file(path: Path) -> bytes:
    """The bytes of a content file; :class:`ContentError` naming it when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ContentError(path, "file not found") from None
    except OSError as exc:
        raise ContentError(path, f"cannot read: {exc.strerror or exc}") from None


def check_view_proj(view_proj, what: str) -> np.ndarray:
    vp = np.asarray(view_proj, dtype=np.float64)
    if vp.shape != (4, 4) or not np.all(np.isfinite(vp)):
        raise ResourceError(f"{what}: view_proj must be a finite 4x4 matrix, got shape {vp.shape}")
    return vp


def enable_openexr() -> None:
    """Let OpenCV read and write OpenEXR (off by default in opencv-python since 4.5.2 for security reasons;
    stagectl reads only the operator's own files). Must run before OpenCV's first EXR use in the process; an
    explicit ``OPENCV_IO_ENABLE_OPENEXR=0`` in the environment is respected."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")


def _srgb_decode(encoded: np.ndarray) -> np.ndarray:
    c = np.clip(encoded, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))


def decode_image(data: bytes | np.ndarray, source, what: str = "image") -> tuple[np.ndarray, bool]:
    """Decode an encoded image (PNG, JPEG, EXR, ...) with ``cv2.imdecode``.

    Returns ``(rgba, encoded)``, row 0 = top: ``(H, W, 4) uint8`` sRGB codes with ``encoded`` True (8-bit
    files), or ``(H, W, 4) float32`` linear light with ``encoded`` False (16-bit files, decoded here with the
    sRGB curve; float files such as EXR and Radiance HDR, which are linear). Grey images are replicated to
    RGB; alpha is kept (1 / 255 where the file has none). ``source`` names the file in errors.
    """
    import cv2

    enable_openexr()
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ContentError(source, f"{what} is empty")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ContentError(source, f"cannot decode {what}: {str(exc).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise ContentError(source, f"cannot decode {what} (corrupt, or not an image format OpenCV reads)")
    if img.ndim == 2:
        img = img[:, :, None]
    ch = img.shape[2]
    if ch == 1:
        rgb, alpha = np.repeat(img, 3, axis=2), None
    elif ch == 2:  # grey + alpha
        rgb, alpha = np.repeat(img[:, :, :1], 3, axis=2), img[:, :, 1]
    elif ch == 3:
        rgb, alpha = img[:, :, ::-1], None
    else:
        rgb, alpha = img[:, :, 2::-1], img[:, :, 3]
    h, w = img.shape[:2]
    if img.dtype == np.uint8:
        out = np.empty((h, w, 4), np.uint8)
        out[..., :3] = rgb
        out[..., 3] = 255 if alpha is None else alpha
        return out, True
    if img.dtype == np.uint16:
        out = np.empty((h, w, 4), np.float32)
        out[..., :3] = _srgb_decode(rgb.astype(np.float32) / 65535.0)
        out[..., 3] = 1.0 if alpha is None else alpha.astype(np.float32) / 65535.0
        return out, False
    if img.dtype in (np.float32, np.float16, np.float64):
        out = np.empty((h, w, 4), np.float32)
        out[..., :3] = np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=65504.0, neginf=0.0)
        out[..., 3] = 1.0 if alpha is None else np.clip(np.nan_to_num(alpha.astype(np.float32)), 0.0, 1.0)
        return out, False
    raise ContentError(source, f"{what}: unsupported pixel type {img.dtype}")


# GL enums by value (glTF samplers use the same numbers); GL attributes cannot be read before a context exists
_WRAP = {"clamp": 0x812F, "repeat": 0x2901, "mirror": 0x8370}  # CLAMP_TO_EDGE, REPEAT, MIRRORED_REPEAT


def max_texture_size() -> int:
    return int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE))


def image_texture(
    resources: ResourceRegistry,
    label: str,
    image: np.ndarray,
    *,
    encoded: bool,
    wrap: tuple[str | int, str | int] = ("clamp", "clamp"),
    mag_filter: int | None = None,
    min_filter: int | None = None,
    mipmaps: bool = True,
) -> Texture2D:
    """A texture holding ``image`` (``(H, W, 4)``, row 0 = top; flipped to GL rows by the upload).

    ``encoded`` True: ``uint8`` sRGB codes, stored as ``GL_SRGB8_ALPHA8`` (the registry makes an ``rgba8``
    texture, re-specified here; uploads go through :meth:`Texture2D.upload` unchanged). False: linear floats,
    stored as ``rgba16f`` (values clamped to the half-float range). ``wrap`` (s, t): ``"clamp"``,
    ``"repeat"``, ``"mirror"`` or a GL enum; ``mipmaps``: a full chain (built with ``glGenerateMipmap``; again
    after every :func:`upload_image`) and trilinear minification unless ``min_filter`` says otherwise.
    """
    h, w = image.shape[:2]
    tex = resources.texture2d(label, w, h, "rgba8" if encoded else "rgba16f")
    try:
        with gl_pass("create", label):
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex.glo)
            if encoded:
                GL.glTexImage2D(
                    GL.GL_TEXTURE_2D, 0, GL.GL_SRGB8_ALPHA8, w, h, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, None
                )
            ws, wt = (_WRAP[m] if isinstance(m, str) else int(m) for m in wrap)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, ws)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, wt)
            if min_filter is None:
                min_filter = GL.GL_LINEAR_MIPMAP_LINEAR if mipmaps else GL.GL_LINEAR
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, int(min_filter))
            GL.glTexParameteri(
                GL.GL_TEXTURE_2D,
                GL.GL_TEXTURE_MAG_FILTER,
                int(GL.GL_LINEAR if mag_filter is None else mag_filter),
            )
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAX_LEVEL, 1000 if mipmaps else 0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        tex.mipmaps = mipmaps  # type: ignore[attr-defined]
        upload_image(tex, image)
    except BaseException:
        tex.release()
        raise
    return tex


def upload_image(tex: Texture2D, image: np.ndarray) -> None:
    """Replace the texels of an :func:`image_texture` (row 0 = top) and rebuild its mipmaps."""
    if tex.format.name == "rgba8":
        tex.upload(np.ascontiguousarray(image, dtype=np.uint8))
    else:
        tex.upload(np.clip(image, -65504.0, 65504.0).astype(np.float16))
    if getattr(tex, "mipmaps", False):
        with gl_pass("upload", tex.label):
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex.glo)
            GL.glGenerateMipmap(GL.GL_TEXTURE_2D)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
