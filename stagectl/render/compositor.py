"""The GL passes that execute a :class:`~stagectl.render.plan.FramePlan`: inner frusta, outer atlas, canvases.

Three kinds of pass, each a class owning its GL objects (all made through the context's
:class:`~stagectl.render.gl.resources.ResourceRegistry`, released by ``release()``):

* :class:`InnerTargets` — per camera an offscreen :class:`~stagectl.render.scene.RenderTarget` at the plan's
  inner resolution; the scene (:class:`~stagectl.render.scene.SceneRenderer`) is drawn into it with the
  camera's ``VP`` (overscan included).
* :class:`OuterAtlas` — the scene from the stage's outer viewpoint into a cube atlas (3 x 2 square tiles,
  one per face, each a 90-degree view plus a one-texel gutter so that bilinear filtering never crosses
  faces). Only the faces some wall is seen through are drawn (the plan decides); static content is kept
  between frames while the viewpoint and face set stay the same. Valid for any wall shape: the composition
  samples it by direction ``stage position - viewpoint``.
* :class:`CanvasCompositor` — per output a static vertex buffer of its mapped regions cut into tiles
  (:class:`~stagectl.render.plan.CanvasTiles`), two ``rgba8`` canvas framebuffers (the one being drawn and
  the last good one, see :mod:`stagectl.render.renderer`) and a cached outer-only canvas. The composite
  program (``shaders/composite.vert`` / ``composite.frag``, one variant per number of cameras, plus
  ``INNER_ONLY`` and ``COPY``) places each vertex at its canvas pixel, projects each fragment's stage position
  with every camera's ``VP`` and blends the inner image over the outer one with the soft edge. Each frame only
  the tiles an inner frustum touches are composited; tiles it left are restored from the cached outer-only
  canvas (static outer content) or composited from the atlas (dynamic content).

**Colour.** The scene writes linear-light RGB. The inner targets and the outer atlas are ``rgba16f`` so that
they keep linear values without banding and bilinear filtering happens in linear light. The sRGB encoding
(IEC 61966-2-1 piecewise curve) happens exactly once, at the end of the composite fragment shader; canvases
are ``rgba8`` holding 8-bit sRGB codes (GL rounds to nearest), alpha 255. :func:`srgb_encode` /
:func:`to_srgb8` are the numpy twins used for the inner-frustum snapshot image and by tests.

**Soft edge** (the exact ramp; :func:`stagectl.render.plan.soft_edge_weight` is its numpy twin): for the
fragment's NDC ``(x, y)`` in the camera's overscanned frustum, ``d = 1 - max(|x|, |y|)``,
``a = clamp(d / soft_edge, 0, 1)``, weight ``= a^2 (3 - 2a)`` in front of the eye (``w_clip > 1e-6``), 0
behind; the inner colour is mixed over the outer one with that weight, cameras in plan order.

**Rows.** Inner targets and the atlas are rendered and sampled by GL only (GL texture ``t = 1 - v``, no flip).
Canvases: the composite vertex shader maps canvas pixel ``(x, y)`` (row 0 = top) to NDC with a y flip, and
:func:`~stagectl.render.gl.readback.read_pixels` flips GL rows back, so canvases read into numpy have row 0 =
top. Unmapped canvas pixels are cleared to opaque black and never drawn.
"""

from __future__ import annotations

import ctypes

import numpy as np

from stagectl.render.gl.errors import RenderError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import Framebuffer, Program, ResourceRegistry, gl_pass, shader_source
from stagectl.render.plan import MAX_CAMERAS, CanvasTiles, CompositeUniforms, InnerPass, OuterPass, OutputPass
from stagectl.render.scene import RenderTarget, SceneRenderer

__all__ = [
    "INNER_FORMAT",
    "OUTER_FORMAT",
    "CANVAS_FORMAT",
    "OUTER_TEXTURE_UNIT",
    "srgb_encode",
    "srgb_decode",
    "to_srgb8",
    "InnerTargets",
    "OuterAtlas",
    "CanvasCompositor",
]

INNER_FORMAT = "rgba16f"  #: linear light, filtered linearly
OUTER_FORMAT = "rgba16f"  #: linear light
CANVAS_FORMAT = "rgba8"  #: 8-bit sRGB codes
#: texture units: inner frustum i on unit i (0..MAX_CAMERAS-1), the outer atlas after them
OUTER_TEXTURE_UNIT = MAX_CAMERAS
#: texture unit of an output's cached outer-only canvas (the COPY program's source)
CACHE_TEXTURE_UNIT = MAX_CAMERAS + 1
#: opaque black, the clear colour of canvases and the default safe image
BLACK = (0.0, 0.0, 0.0, 1.0)


# --------------------------------------------------------------------------------------------- colour


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear-light values (clamped to [0, 1]) -> sRGB-encoded values in [0, 1] (IEC 61966-2-1)."""
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1.0 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (inverse of :func:`srgb_encode`)."""
    c = np.clip(np.asarray(encoded, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))


def to_srgb8(rgba_linear: np.ndarray) -> np.ndarray:
    """(H, W, 4) linear float RGBA -> (H, W, 4) uint8: RGB sRGB-encoded and rounded, alpha linear."""
    a = np.asarray(rgba_linear, dtype=np.float64)
    out = np.empty(a.shape, dtype=np.uint8)
    out[..., :3] = np.rint(srgb_encode(a[..., :3]) * 255.0)
    out[..., 3] = np.rint(np.clip(a[..., 3], 0.0, 1.0) * 255.0)
    return out


def _variant(source: str, defines: dict[str, object]) -> str:
    """``source`` with ``#define``s after its ``#version`` line (log line numbers unchanged)."""
    version, rest = source.split("\n", 1)
    lines = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    return f"{version}\n{lines}#line 2\n{rest}"


# --------------------------------------------------------------------------------------------- inner


class InnerTargets:
    """One ``rgba16f`` + depth render target per camera, at the plan's inner resolution (made on first use, or
    again when the resolution changes; never per frame)."""

    PASS = "inner"

    def __init__(self, resources: ResourceRegistry, *, label: str = "inner") -> None:
        self.resources = resources
        self.label = label
        self.targets: dict[str, RenderTarget] = {}
        self.rendered: set[str] = set()  # cameras whose target holds a complete image

    def target(self, camera: str, resolution: tuple[int, int]) -> RenderTarget:
        t = self.targets.get(camera)
        if t is not None and t.size == tuple(resolution):
            return t
        if t is not None:
            t.release()
            self.rendered.discard(camera)
        t = RenderTarget(
            self.resources, int(resolution[0]), int(resolution[1]), color=INNER_FORMAT, depth=True,
            label=f"{self.label}.{camera}",
        )
        self.targets[camera] = t
        return t

    def render(self, p: InnerPass, scene: SceneRenderer) -> bool:
        """Draw the scene for ``p`` unless it is frozen and an image exists; returns True when drawn."""
        t = self.target(p.camera, p.resolution)
        if p.frozen and p.camera in self.rendered:
            return False
        self.rendered.discard(p.camera)
        scene.draw(p.VP, t)
        self.rendered.add(p.camera)
        return True

    def invalidate(self, camera: str | None = None) -> None:
        if camera is None:
            self.rendered.clear()
        else:
            self.rendered.discard(camera)

    def release(self) -> None:
        for t in self.targets.values():
            t.release()
        self.targets.clear()
        self.rendered.clear()


# --------------------------------------------------------------------------------------------- outer


class OuterAtlas:
    """The outer cube atlas: an ``rgba16f`` + depth target of the plan's atlas size (cleared once)."""

    PASS = "outer"

    def __init__(self, resources: ResourceRegistry, outer: OuterPass, *, label: str = "outer") -> None:
        self.resources = resources
        self.label = label
        w, h = outer.atlas_size
        self.target = RenderTarget(resources, w, h, color=OUTER_FORMAT, depth=True, label=f"{label}.atlas")
        self.key: tuple | None = None  # what the atlas holds now (OuterPass.key), None = nothing valid
        with gl_pass("create", self.target.label):
            self.target.framebuffer.bind()
            GL.glClearColor(*BLACK)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

    @property
    def texture(self):
        return self.target.color

    def needs_render(self, outer: OuterPass) -> bool:
        return not outer.static or self.key != outer.key

    def render(self, outer: OuterPass, scene: SceneRenderer, *, force: bool = False) -> bool:
        """Draw every face the plan lists into its tile (only when needed); returns True when drawn."""
        if tuple(outer.atlas_size) != self.target.size:
            raise RenderError(self.PASS, self.target.label, "atlas size changed",
                              detail=f"{outer.atlas_size} != {self.target.size}")
        if not force and not self.needs_render(outer):
            return False
        self.key = None
        for face in outer.faces:
            scene.draw(face.VP, self.target, viewport=face.viewport)
        self.key = outer.key
        return True

    def invalidate(self) -> None:
        self.key = None

    def release(self) -> None:
        self.target.release()
        self.key = None


# --------------------------------------------------------------------------------------------- canvases


class _OutputGL:
    """GL objects and state of one output.

    Its tiles' static vertex buffer, a per-frame element buffer (tile lists), the VAO; two canvas framebuffers
    (the renderer's front and back) and the cached outer-only canvas. ``touched[i]``: tiles of canvas ``i``
    that may hold anything but the cached outer image (all of them after a clear); ``dirty[i]``: clear canvas
    ``i`` before its next use.
    """

    def __init__(self, resources: ResourceRegistry, tiles: CanvasTiles, label: str) -> None:
        self.tiles = tiles
        self.key = tiles.key
        self.canvas = (int(tiles.canvas[0]), int(tiles.canvas[1]))
        self.count = tiles.count
        self._objects: list = []
        try:
            n = max(1, self.count)
            verts = tiles.vertices() if self.count else np.zeros((4, 9), np.float32)
            self.vbo = self._keep(resources.buffer(f"{label}.vbo", GL.GL_ARRAY_BUFFER, verts))
            # element indices are written through the ARRAY_BUFFER bind point (no VAO needed for the write)
            self.ebo = self._keep(resources.buffer(
                f"{label}.ebo", GL.GL_ARRAY_BUFFER, size=n * 6 * 4, usage=GL.GL_STREAM_DRAW
            ))
            self.vao = self._keep(resources.vertex_array(f"{label}.vao"))
            stride = 9 * 4
            self.vao.attribute(0, self.vbo, 2, stride=stride, offset=0)  # canvas x, y
            self.vao.attribute(1, self.vbo, 3, stride=stride, offset=8)  # stage x, y, z
            self.vao.attribute(2, self.vbo, 2, stride=stride, offset=20)  # raster x, y
            self.vao.attribute(3, self.vbo, 2, stride=stride, offset=28)  # wall, mapping index
            self.vao.set_index_buffer(self.ebo)
            w, h = self.canvas
            self.framebuffers: list[Framebuffer] = [
                self._keep(resources.framebuffer(f"{label}.canvas{i}", w, h, CANVAS_FORMAT, depth=False))
                for i in range(2)
            ]
            self.cache = self._keep(
                resources.framebuffer(f"{label}.outer_canvas", w, h, CANVAS_FORMAT, depth=False)
            )
        except BaseException:
            self.release()
            raise
        self.indices = np.zeros(n * 6, dtype=np.uint32)
        self.touched = [np.ones(self.count, dtype=bool) for _ in range(2)]
        self.dirty = [True, True]

    def _keep(self, obj):
        self._objects.append(obj)
        return obj

    def release(self) -> None:
        for obj in reversed(self._objects):
            obj.release()
        self._objects.clear()


def clear_framebuffer(fb: Framebuffer, color=BLACK) -> None:
    """Fill ``fb``'s colour with ``color`` (RGBA floats; leaves framebuffer 0 bound)."""
    fb.bind()
    GL.glViewport(0, 0, fb.width, fb.height)
    GL.glDisable(GL.GL_SCISSOR_TEST)
    GL.glClearColor(*color)
    GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)


class CanvasCompositor:
    """Composites the inner frusta and the outer atlas onto every output canvas, tile by tile.

    Each output's mapped regions are cut into tiles (:class:`~stagectl.render.plan.CanvasTiles`). Per frame
    and output (:meth:`draw`), three tile lists are drawn into the chosen canvas:

    * tiles no inner frustum touches: with static outer content, only those that held something else before
      are restored from the output's cached outer-only canvas (``COPY``: a texel copy); with dynamic outer
      content all of them are composited from the atlas (``CAMERAS 0``);
    * tiles wholly inside the top camera's full-weight region: its inner image alone (``INNER_ONLY``);
    * the other touched tiles: the full composition (``CAMERAS n``).

    The cached outer-only canvases are redrawn (:meth:`update_cache`) whenever the atlas changes. Programs are
    compiled per variant on first use; samplers are bound to fixed texture units (inner ``i`` on unit ``i``,
    the atlas on :data:`OUTER_TEXTURE_UNIT`, the cached canvas on :data:`CACHE_TEXTURE_UNIT`).
    """

    PASS = "composite"

    def __init__(self, resources: ResourceRegistry, tiles, *, label: str = "composite") -> None:
        self.resources = resources
        self.label = label
        self.tiles = tuple(tiles)
        self._programs: dict[tuple, Program] = {}
        self.outputs: dict[str, _OutputGL] = {}
        self.cache_key: tuple | None = None
        self._sources = (shader_source("composite.vert"), shader_source("composite.frag"))
        self._frame: tuple | None = None  # (uniforms, static outer) of the frame begun
        try:
            for i, t in enumerate(self.tiles):
                self.outputs[t.key] = _OutputGL(resources, t, f"{label}.out{i}")
            with gl_pass("create", label):
                for o in self.outputs.values():
                    for fb in (*o.framebuffers, o.cache):
                        clear_framebuffer(fb)
                    o.dirty = [False, False]
        except BaseException:
            self.release()
            raise

    # ------------------------------------------------------------------ programs

    def program(self, variant: tuple) -> Program:
        """``("composite", n)``, ``("inner",)`` or ``("copy",)``: compiled once, samplers bound to units."""
        p = self._programs.get(variant)
        if p is not None:
            return p
        kind = variant[0]
        if kind == "composite":
            n = int(variant[1])
            if not 0 <= n <= MAX_CAMERAS:
                raise RenderError(self.PASS, self.label, f"{n} cameras", detail=f"at most {MAX_CAMERAS}")
            defines: dict[str, object] = {"CAMERAS": n}
            name = f"composite{n}"
        elif kind == "inner":
            defines, name = {"INNER_ONLY": 1}, "inner_only"
        elif kind == "copy":
            defines, name = {"COPY": 1}, "copy"
        else:
            raise RenderError(self.PASS, self.label, f"unknown program variant {variant!r}")
        vert, frag = self._sources
        p = self.resources.program(f"{self.label}.{name}", _variant(vert, defines), _variant(frag, defines))
        self._programs[variant] = p
        with gl_pass("create", p.label):
            p.use()
            if kind == "composite":
                for i in range(int(variant[1])):
                    p.set_int(f"u_inner{i}", i)
                p.set_int("u_outer", OUTER_TEXTURE_UNIT)
            elif kind == "copy":
                p.set_int("u_source", CACHE_TEXTURE_UNIT)
            GL.glUseProgram(0)
        return p

    def _set_outer_uniforms(self, p: Program, u: CompositeUniforms) -> None:
        GL.glUniform3f(p.location("u_outer_eye"), *(float(v) for v in u.outer_eye))
        rot = np.ascontiguousarray(u.face_rotation)
        GL.glUniformMatrix3fv(p.location("u_face_rotation"), 6, GL.GL_TRUE, rot)
        GL.glUniform2fv(p.location("u_face_origin"), 6, np.ascontiguousarray(u.face_origin))
        GL.glUniform1f(p.location("u_face_size"), float(u.face_size))
        aw, ah = u.atlas_size
        GL.glUniform2f(p.location("u_atlas_inv_size"), 1.0 / aw, 1.0 / ah)

    def _set_uniforms(self, variant: tuple, u: CompositeUniforms) -> None:
        """Upload this frame's uniforms to ``variant`` (matrices transposed: row-major numpy)."""
        p = self.program(variant)
        p.use()
        n = u.camera_count
        if variant[0] == "composite":
            self._set_outer_uniforms(p, u)
            if variant[1]:
                vp = np.ascontiguousarray(u.inner_vp)
                GL.glUniformMatrix4fv(p.location("u_inner_vp"), n, GL.GL_TRUE, vp)
                GL.glUniform1fv(p.location("u_inner_inv_soft"), n, np.ascontiguousarray(u.inv_soft_edge))
        elif variant[0] == "inner":
            p.set_mat4("u_inner_top_vp", u.inner_vp[n - 1])
            p.set_int("u_inner_top", n - 1)

    # ------------------------------------------------------------------ a frame

    def begin(self, u: CompositeUniforms, inner_textures: list, atlas_texture, *, static_outer: bool) -> None:
        """Bind this frame's textures and upload its uniforms (once per frame, before :meth:`draw`)."""
        n = u.camera_count
        if n and not np.all(np.isfinite(u.inner_vp)):
            raise RenderError(self.PASS, self.label, "non-finite inner VP", detail="plan rejected")
        if len(inner_textures) != n:
            raise RenderError(self.PASS, self.label, "inner textures do not match the plan's layers")
        with gl_pass(self.PASS, self.label):
            GL.glBindVertexArray(0)
            GL.glDisable(GL.GL_DEPTH_TEST)
            GL.glDisable(GL.GL_BLEND)
            GL.glDisable(GL.GL_CULL_FACE)
            GL.glDisable(GL.GL_SCISSOR_TEST)
            variants = [("composite", n)]
            if n:
                variants.append(("inner",))
            if not static_outer and n:
                variants.append(("composite", 0))
            for v in variants:
                self._set_uniforms(v, u)
            for i, tex in enumerate(inner_textures):
                tex.bind(i)
            atlas_texture.bind(OUTER_TEXTURE_UNIT)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glUseProgram(0)
        self._frame = (u, static_outer)

    def update_cache(self, key: tuple, u: CompositeUniforms, atlas_texture, *, force: bool = False) -> bool:
        """Redraw every output's outer-only canvas from the atlas if ``key`` (the atlas content) changed;
        every canvas then needs its untouched tiles restored. Returns True when drawn."""
        if not force and key == self.cache_key:
            return False
        self.cache_key = None
        with gl_pass(self.PASS, f"{self.label}.outer_canvas"):
            self._set_uniforms(("composite", 0), u)
            p = self.program(("composite", 0))
            atlas_texture.bind(OUTER_TEXTURE_UNIT)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            for o in self.outputs.values():
                o.cache.bind()
                w, h = o.canvas
                GL.glViewport(0, 0, w, h)
                p.set_vec2("u_canvas_size", (w, h))
                if o.count:
                    self._draw_tiles(o, [np.arange(o.count)], [p])
                o.touched[0][:] = True
                o.touched[1][:] = True
            GL.glUseProgram(0)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        self.cache_key = key
        return True

    def invalidate_cache(self) -> None:
        self.cache_key = None

    def mark_dirty(self, key: str, index: int) -> None:
        """Canvas ``index`` of output ``key`` is cleared and fully redrawn at its next use."""
        self.outputs[key].dirty[index] = True

    def _draw_tiles(self, o: _OutputGL, lists: list[np.ndarray], programs: list[Program]) -> None:
        """Write the tile lists' indices into the element buffer and draw each range with its program."""
        total = sum(len(t) for t in lists)
        if total == 0:
            return
        pos = 0
        for t in lists:
            k = len(t)
            if k:
                o.indices[pos * 6:(pos + k) * 6] = CanvasTiles.indices(t)
            pos += k
        GL.glBindVertexArray(0)
        o.ebo.write(o.indices[: total * 6])
        GL.glBindVertexArray(o.vao.glo)
        pos = 0
        for t, p in zip(lists, programs):
            k = len(t)
            if k:
                p.use()
                GL.glDrawElements(GL.GL_TRIANGLES, k * 6, GL.GL_UNSIGNED_INT, ctypes.c_void_p(pos * 6 * 4))
            pos += k
        GL.glBindVertexArray(0)

    def draw(self, out: OutputPass, index: int) -> None:
        """Draw output ``out`` into its canvas ``index`` (after :meth:`begin`; see the class docstring)."""
        if self._frame is None:
            raise RenderError(self.PASS, self.label, "draw() before begin()")
        u, static_outer = self._frame
        o = self.outputs[out.key]
        fb = o.framebuffers[index]
        with gl_pass(self.PASS, fb.label):
            w, h = o.canvas
            if out.blackout or o.dirty[index]:
                clear_framebuffer(fb, BLACK)
                o.touched[index][:] = True
                o.dirty[index] = False
                if out.blackout:
                    o.dirty[index] = True  # the next frame redraws everything
                    return
            fb.bind()
            GL.glViewport(0, 0, w, h)
            if not o.count:
                return
            touched = out.touched
            if touched.shape != (o.count,):
                raise RenderError(self.PASS, fb.label, "plan's tiles do not match the renderer's")
            n = u.camera_count
            variants = [("composite", 0) if not static_outer else ("copy",), ("inner",), ("composite", n)]
            programs = [self.program(v) for v in variants] if n else [self.program(variants[0])]
            if static_outer:
                rest = np.flatnonzero(o.touched[index] & ~touched)
                o.cache.color.bind(CACHE_TEXTURE_UNIT)
                GL.glActiveTexture(GL.GL_TEXTURE0)
            else:
                rest = np.flatnonzero(~touched)
            for p in programs:
                p.use()
                p.set_vec2("u_canvas_size", (w, h))
            lists = [rest, out.full, out.blend] if n else [rest]
            self._draw_tiles(o, lists, programs)
            o.touched[index][:] = touched

    def end(self) -> None:
        """Unbind what the frame bound."""
        GL.glUseProgram(0)
        GL.glBindVertexArray(0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        for i in range(CACHE_TEXTURE_UNIT + 1):
            GL.glActiveTexture(GL.GL_TEXTURE0 + i)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        self._frame = None

    def release(self) -> None:
        for o in self.outputs.values():
            o.release()
        self.outputs.clear()
        for p in self._programs.values():
            p.release()
        self._programs.clear()
        self.cache_key = None
