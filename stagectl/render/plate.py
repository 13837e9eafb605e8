"""Equirectangular 360 plates (still images and videos) as scene content (:class:`PlateContent`).

A plate is an environment at infinity: every pixel of the viewport shows the plate texel in the direction of
its view ray, whatever the eye position. One fullscreen triangle (``shaders/plate.vert`` / ``plate.frag``);
the vertex stage sends the homogeneous far-plane point ``inv(view_proj) @ (x_ndc, y_ndc, 1, 1)`` of each
corner, which is linear in NDC, so the fragment stage gets each pixel's exact ray ``far / far.w - eye`` for
any perspective matrix (glFrustum or Kooima).

**Mapping** (stage frame, Z up; ``d`` the unit view direction, after the plate's rotation
``d_plate = R_plate_stage @ d_stage``)::

    u = 0.5 + atan2(d.x, d.y) / (2 pi)     longitude: u = 0.5 looks along stage +Y (toward the main wall),
                                           u = 0.75 along +X (right), 0.25 along -X, 0 / 1 along -Y
    v = 0.5 - asin(d.z) / pi               latitude: v = 0 (row 0 = top) is the zenith (+Z), 0.5 the
                                           horizon, 1 the nadir

``(u, v)`` is image UV (origin top-left, v down; docs/conventions.md). The centre of the image is what a
camera at zero pan sees, and the image reads left to right as seen from inside the sphere (a camera panning
right, toward +X, sees content further right in the image); this is the usual layout of 360 stills and videos
(``atan2(-x, y)`` would mirror them). The texture repeats horizontally, so filtering wraps across the seam at
``u = 0 / 1`` (stage -Y); mip levels are chosen from seam-corrected derivatives. The rotation comes from the
content spec's ``rotation`` ``[pan, tilt, roll]`` (``R_stage_plate``; pan 90 brings the plate's centre to
stage -X).

**Colour.** 8-bit stills and video frames are sRGB-encoded (video is treated as sRGB-encoded too: Rec. 709 has
the sRGB primaries; its transfer curve is close to, not equal to, sRGB's) and stored as ``GL_SRGB8_ALPHA8``:
the sampler decodes to linear before filtering. 16-bit stills are decoded to linear on the CPU; float stills
(EXR, Radiance HDR, PFM) are linear already (HDR values above 1 are kept, in ``rgba16f``). Reading EXR needs
OpenCV's ``OPENCV_IO_ENABLE_OPENEXR``, set by :func:`~stagectl.render.content.enable_openexr`. Plates are
opaque.

**Video frames** follow the stage timecode: ``timecode_frame`` (the timecode as a frame count at the stage
rate, :meth:`stagectl.core.timebase.Timecode.to_frame`) selects video frame ``k = timecode_frame -
start_frame``; with ``loop`` (default) ``k mod frame_count`` (negative ``k`` wraps too), without it ``k`` is
clamped to the first / last frame (:func:`video_frame_index`). One timecode frame is one video frame: the
video is expected at the stage rate (no resampling). Without a timecode frame, ``time_ns`` (nanoseconds since
playback start) at the video's own frame rate picks the frame; with neither, frame ``start_frame``. Frames are
decoded on demand on the render thread by :class:`VideoFrames` (``cv2.VideoCapture``), which keeps a small LRU
cache, reads on sequentially when the wanted frame is the next one or a few ahead (``grab`` skips, cheaper
than a seek) and seeks (``CAP_PROP_POS_FRAMES``) only otherwise; the texture is uploaded only when the frame
changes.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

from stagectl.render.content import (
    Content,
    ContentError,
    bind_draw_area,
    check_view_proj,
    decode_image,
    image_texture,
    max_texture_size,
    read_content_file,
    resolve_target,
    upload_image,
)
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import OwnedObjects, ResourceRegistry, gl_pass, reset_draw_state, shader_source

__all__ = ["equirect_uv", "equirect_direction", "video_frame_index", "VideoFrames", "PlateContent"]


def equirect_uv(directions: np.ndarray) -> np.ndarray:
    """Image UV ``(..., 2)`` (origin top-left, v down) of plate-frame directions ``(..., 3)`` (any length)."""
    d = np.asarray(directions, dtype=np.float64)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    u = 0.5 + np.arctan2(d[..., 0], d[..., 1]) / (2 * math.pi)
    v = 0.5 - np.arcsin(np.clip(d[..., 2], -1.0, 1.0)) / math.pi
    return np.stack([u, v], axis=-1)


def equirect_direction(uv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`equirect_uv`: unit plate-frame directions of image UV ``(..., 2)``."""
    uv = np.asarray(uv, dtype=np.float64)
    lon = (uv[..., 0] - 0.5) * 2 * math.pi
    lat = (0.5 - uv[..., 1]) * math.pi
    c = np.cos(lat)
    return np.stack([c * np.sin(lon), c * np.cos(lon), np.sin(lat)], axis=-1)


def video_frame_index(
    timecode_frame: int, frame_count: int, *, loop: bool = True, start_frame: int = 0
) -> int:
    """The video frame shown at ``timecode_frame``: ``k = timecode_frame - start_frame``, then ``k mod
    frame_count`` (``loop``) or ``k`` clamped to ``[0, frame_count - 1]``."""
    if frame_count <= 0:
        raise ValueError("frame_count must be positive")
    k = int(timecode_frame) - int(start_frame)
    return k % frame_count if loop else min(max(k, 0), frame_count - 1)


class VideoFrames:
    """Decoded RGBA frames of a video file, on demand (no GL).

    ``frame(i)`` returns frame ``i`` as ``(H, W, 4)`` uint8, row 0 = top, RGB sRGB-encoded, alpha 255. The
    decoder position is tracked: the next frame is read directly, up to ``max_skip`` frames ahead are skipped
    with ``grab()``, anything else (backwards, far ahead) is a seek. The last ``cache_frames`` frames are
    kept. ``stats`` counts ``reads`` (decoded frames returned by the decoder), ``grabs`` (skipped), ``seeks``
    and ``hits`` (served from the cache). ``frame_count`` comes from the container, or from counting the
    frames once when the container does not say; it shrinks if a frame near the end turns out unreadable.
    """

    def __init__(
        self, path, *, loop: bool = True, start_frame: int = 0, cache_frames: int = 3, max_skip: int = 16
    ) -> None:
        import cv2

        self.path = Path(path)
        self.loop = loop
        self.start_frame = int(start_frame)
        self.max_skip = int(max_skip)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, int(cache_frames))
        self.stats = {"reads": 0, "grabs": 0, "seeks": 0, "hits": 0}
        self.notes: list[str] = []
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise ContentError(
                self.path,
                "cannot open as a video (not a video file, or a container or codec "
                "this OpenCV build cannot read)",
            )
        try:
            fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps = fps if math.isfinite(fps) and fps > 0 else 0.0
            count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self._pos = 0
            first = self._read()
            if first is None:
                raise ContentError(self.path, "the video has no decodable frame")
            self.height, self.width = first.shape[:2]
            self._put(0, first)
            if count <= 0:  # the container does not say: count once
                count = 1
                while self._cap.grab():
                    count += 1
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._pos = 0
                self.notes.append(f"frame count not in the container: counted {count}")
            self.frame_count = count
        except BaseException:
            self._cap.release()
            raise

    def _read(self) -> np.ndarray | None:
        import cv2

        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        self.stats["reads"] += 1
        self._pos += 1
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGBA)
        if frame.shape[2] == 4:
            return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGBA)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)

    def _put(self, i: int, frame: np.ndarray) -> None:
        self._cache[i] = frame
        self._cache.move_to_end(i)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def index(self, timecode_frame: int | None = None, time_ns: int | None = None) -> int:
        """The frame index for a timecode frame count (else ``time_ns`` at the video's rate; else the
        start)."""
        if timecode_frame is None:
            if time_ns is not None and self.fps > 0:
                timecode_frame = self.start_frame + math.floor(int(time_ns) * self.fps / 1e9)
            else:
                timecode_frame = self.start_frame
        return video_frame_index(
            timecode_frame, self.frame_count, loop=self.loop, start_frame=self.start_frame
        )

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0 <= i < frame_count) as RGBA uint8, row 0 = top; ContentError if it cannot be
        decoded."""
        import cv2

        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} outside 0..{self.frame_count - 1}")
        got = self._cache.get(i)
        if got is not None:
            self.stats["hits"] += 1
            self._cache.move_to_end(i)
            return got
        if not (self._pos <= i <= self._pos + self.max_skip):
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            self.stats["seeks"] += 1
            self._pos = i
        while self._pos < i:
            if not self._cap.grab():
                break
            self.stats["grabs"] += 1
            self._pos += 1
        frame = self._read() if self._pos == i else None
        if frame is None:
            if i == 0:
                raise ContentError(self.path, "frame 0 cannot be decoded any more")
            # the container over-counted: the video really ends before frame i
            self.notes.append(f"frame count {self.frame_count} from the container; only {i} decodable")
            self.frame_count = i
            self._pos = -(10**9)  # unknown position: seek next time
            return self.frame(video_frame_index(i, self.frame_count, loop=self.loop))
        if frame.shape[:2] != (self.height, self.width):
            raise ContentError(
                self.path,
                f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, the video started "
                f"at {self.width}x{self.height}",
            )
        self._put(i, frame)
        return frame

    def release(self) -> None:
        self._cap.release()
        self._cache.clear()


def _fit_texture(pixels: np.ndarray, path, notes: list[str]) -> np.ndarray:
    """Scale an image down (INTER_AREA, aspect kept) when it exceeds GL_MAX_TEXTURE_SIZE."""
    import cv2

    limit = max_texture_size()
    h, w = pixels.shape[:2]
    if max(h, w) <= limit:
        return pixels
    s = limit / max(h, w)
    size = (max(1, int(w * s)), max(1, int(h * s)))
    notes.append(f"{w}x{h} exceeds GL_MAX_TEXTURE_SIZE {limit}: scaled to {size[0]}x{size[1]}")
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


class PlateContent(Content):
    """An equirectangular plate (see the module docstring). Build with :meth:`from_image`, :meth:`from_array`
    or :meth:`from_video`; ``R_stage_plate`` (3x3) rotates the plate into the stage."""

    PASS = "plate"

    def __init__(
        self,
        resources: ResourceRegistry,
        pixels: np.ndarray,
        *,
        encoded: bool,
        label: str = "plate",
        R_stage_plate: np.ndarray | None = None,
        source: str = "array",
        video: VideoFrames | None = None,
    ) -> None:
        self.resources = resources
        self.label = label
        self.source = source
        self.video = video
        R = np.eye(3) if R_stage_plate is None else np.asarray(R_stage_plate, dtype=np.float64)
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6):
            raise ContentError(source, "plate rotation must be a 3x3 rotation matrix")
        self.R_stage_plate = R
        self.notes: list[str] = [] if video is None else video.notes
        self._owned = OwnedObjects()
        keep = self._owned.keep
        self._shown: int | None = None
        try:
            if video is None:
                pixels = _fit_texture(pixels, source, self.notes)
            elif max(video.width, video.height) > max_texture_size():
                raise ContentError(
                    source,
                    f"video frames {video.width}x{video.height} exceed "
                    f"GL_MAX_TEXTURE_SIZE {max_texture_size()}",
                )
            self.size = (pixels.shape[1], pixels.shape[0])
            self.program = keep(
                resources.program(
                    f"{label}.program", shader_source("plate.vert"), shader_source("plate.frag")
                )
            )
            self.texture = keep(
                image_texture(
                    resources,
                    f"{label}.texture",
                    pixels,
                    encoded=encoded,
                    wrap=("repeat", "clamp"),
                    mipmaps=True,
                )
            )
            self.vao = keep(resources.vertex_array(f"{label}.vao"))
            self._shown = None if video is None else 0  # from_video uploads frame 0
            with gl_pass("create", label):
                self.program.use()
                self.program.set_int("u_plate", 0)
                GL.glUniformMatrix3fv(
                    self.program.location("u_plate_from_stage"),
                    1,
                    GL.GL_TRUE,
                    np.ascontiguousarray(R.T, dtype=np.float32),
                )
                GL.glUseProgram(0)
        except BaseException:
            self.release()
            raise

    # ---- constructors

    @classmethod
    def from_array(
        cls, resources: ResourceRegistry, image: np.ndarray, *, label: str = "plate", R_stage_plate=None
    ) -> PlateContent:
        """A plate from an ``(H, W, 3 or 4)`` array, row 0 = top: ``uint8`` sRGB codes or float linear
        light."""
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
            raise ContentError("array", f"plate image must be (H, W, 3 or 4), got {img.shape}")
        encoded = img.dtype == np.uint8
        rgba = np.empty((*img.shape[:2], 4), np.uint8 if encoded else np.float32)
        rgba[..., :3] = img[..., :3]
        rgba[..., 3] = 255 if encoded else 1.0
        return cls(resources, rgba, encoded=encoded, label=label, R_stage_plate=R_stage_plate)

    @classmethod
    def from_image(
        cls, path, resources: ResourceRegistry, *, label: str = "plate", R_stage_plate=None
    ) -> PlateContent:
        """A still plate from an image file (PNG, JPEG, EXR, HDR, TIFF, ...); ContentError when unreadable."""
        path = Path(path)
        pixels, encoded = decode_image(read_content_file(path), path, "plate image")
        pixels[..., 3] = 255 if encoded else 1.0
        h, w = pixels.shape[:2]
        plate = cls(
            resources, pixels, encoded=encoded, label=label, R_stage_plate=R_stage_plate, source=str(path)
        )
        if abs(w - 2 * h) > 1:
            plate.notes.append(f"{w}x{h} is not 2:1 as an equirectangular image should be; stretched")
        return plate

    @classmethod
    def from_video(
        cls,
        path,
        resources: ResourceRegistry,
        *,
        label: str = "plate",
        R_stage_plate=None,
        loop: bool = True,
        start_frame: int = 0,
        cache_frames: int = 3,
    ) -> PlateContent:
        """A video plate (``cv2.VideoCapture``), frame chosen by the stage timecode (module docstring)."""
        video = VideoFrames(path, loop=loop, start_frame=start_frame, cache_frames=cache_frames)
        try:
            return cls(
                resources,
                video.frame(0),
                encoded=True,
                label=label,
                R_stage_plate=R_stage_plate,
                source=str(path),
                video=video,
            )
        except BaseException:
            video.release()
            raise

    # ---- Content

    @property
    def static(self) -> bool:  # type: ignore[override]
        return self.video is None

    def frame_key(self, *, time_ns=None, timecode_frame=None):
        if self.video is None:
            return None
        return self.video.index(timecode_frame, time_ns)

    def describe(self) -> str:
        w, h = self.size
        name = Path(self.source).name
        if self.video is None:
            text = f"360 plate {name} ({w}x{h})"
        else:
            v = self.video
            mode = "looped" if v.loop else "held at the ends"
            text = (
                f"360 video plate {name} ({w}x{h}, {v.frame_count} frames, {mode}, "
                f"start frame {v.start_frame})"
            )
        if self.notes:
            text += f" ({'; '.join(self.notes)})"
        return text

    def draw(self, view_proj, target, viewport=None, *, eye_stage=None, time_ns=None, timecode_frame=None):
        """Draw the plate (see :meth:`Content.draw`); RenderError (pass ``"plate"``) on a GL error."""
        from stagectl.render.scene import eye_from_view_proj

        vp = check_view_proj(view_proj, self.PASS)
        fbo, label, area = resolve_target(target, viewport, self.PASS)
        eye = eye_from_view_proj(vp) if eye_stage is None else np.asarray(eye_stage, dtype=np.float64)
        if self.video is not None:
            i = self.video.index(timecode_frame, time_ns)
            if i != self._shown:
                self._shown = None
                upload_image(self.texture, self.video.frame(i))
                self._shown = i
        with gl_pass(self.PASS, label):
            bind_draw_area(fbo, area)
            GL.glClearDepth(1.0)
            GL.glClear(GL.GL_DEPTH_BUFFER_BIT)  # the plate is at infinity; it writes every colour pixel
            GL.glDisable(GL.GL_DEPTH_TEST)
            GL.glDisable(GL.GL_BLEND)
            GL.glDisable(GL.GL_CULL_FACE)
            self.program.use()
            self.program.set_mat4("u_inv_view_proj", np.linalg.inv(vp))
            self.program.set_vec3("u_eye", eye)
            self.texture.bind(0)
            GL.glBindVertexArray(self.vao.glo)
            GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
            reset_draw_state()

    def release(self) -> None:
        """Free the program, texture and vertex array (render thread) and close the video; idempotent."""
        self._owned.release()
        if self.video is not None:
            self.video.release()
