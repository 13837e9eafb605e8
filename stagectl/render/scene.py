"""The built-in procedural test world (the "scene" pass) and an offscreen render target.

The world is defined in **stage** coordinates (docs/conventions.md: right-handed, Z up, metres, +Y toward the
main wall) and has strong depth cues for checking a tracked camera against an LED wall:

* an infinite ground plane ``z = ground_z`` with a 1 m grid (major line every 5 m, the stage X axis tinted red
  and the Y axis tinted green), drawn per pixel from the view ray so it reaches the true horizon;
* a sky gradient from the horizon (elevation 0) to the zenith;
* columns (boxes) at 6, 10, 20 and 40 m along +Y, 3 m either side of the Y axis, each with its own colour;
* one directional light plus ambient, and exponential distance fog.

Colours are linear-light RGB (write them to an ``rgba16f`` target for the real pipeline; an ``rgba8`` target
stores the linear values quantised, which is what the tests read).

The mesh is generated in numpy by pure functions (:func:`box_mesh`, :func:`build_scene_mesh`) that need no GL.
:class:`SceneRenderer` uploads it once and draws with ``draw(view_proj, target, viewport)`` where
``view_proj`` is the 4x4 float64 stage -> clip matrix ``P @ V`` (``V = T_gl_camera @ inv(T_stage_pupil)``),
row-major numpy acting on column vectors; it is uploaded with ``transpose=GL_TRUE``. ``viewport`` is in GL
window coordinates (origin bottom-left).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stagectl.render.content import bind_draw_area, check_view_proj, resolve_target
from stagectl.render.gl.errors import ResourceError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.readback import read_pixels
from stagectl.render.gl.resources import (
    Framebuffer,
    OwnedObjects,
    ResourceRegistry,
    gl_pass,
    reset_draw_state,
    shader_source,
)

__all__ = [
    "Column",
    "SceneLook",
    "SceneMesh",
    "DEFAULT_COLUMNS",
    "box_mesh",
    "build_scene_mesh",
    "eye_from_view_proj",
    "RenderTarget",
    "SceneRenderer",
]


@dataclass(frozen=True)
class Column:
    """A box standing on the ground: ``center`` (x, y) stage metres, ``size`` (along X, along Y) metres,
    ``height`` metres above ``base_z``, ``albedo`` linear RGB."""

    name: str
    center: tuple[float, float]
    size: tuple[float, float]
    height: float
    albedo: tuple[float, float, float]
    base_z: float = 0.0


def _default_columns() -> tuple[Column, ...]:
    # distinct hues, left (x < 0) warm/odd, right (x > 0) cool/even; all mid-bright so lighting stays in range
    palette = {
        ("L", 6): (0.80, 0.15, 0.12),
        ("R", 6): (0.12, 0.35, 0.85),
        ("L", 10): (0.85, 0.55, 0.10),
        ("R", 10): (0.10, 0.70, 0.65),
        ("L", 20): (0.75, 0.75, 0.12),
        ("R", 20): (0.55, 0.20, 0.80),
        ("L", 40): (0.15, 0.70, 0.20),
        ("R", 40): (0.85, 0.30, 0.60),
    }
    cols = []
    for dist in (6, 10, 20, 40):
        for side, x in (("L", -3.0), ("R", 3.0)):
            cols.append(Column(f"{side}{dist}", (x, float(dist)), (0.6, 0.6), 3.0, palette[(side, dist)]))
    return tuple(cols)


DEFAULT_COLUMNS: tuple[Column, ...] = _default_columns()


@dataclass(frozen=True)
class SceneLook:
    """Lighting, fog, sky and grid of the test world (all colours linear RGB, lengths metres)."""

    light_dir: tuple[float, float, float] = (-0.35, -0.55, 0.76)  # toward the light; normalised on use
    sun: tuple[float, float, float] = (0.75, 0.72, 0.68)
    ambient: tuple[float, float, float] = (0.30, 0.31, 0.34)
    sky_horizon: tuple[float, float, float] = (0.62, 0.74, 0.90)
    sky_zenith: tuple[float, float, float] = (0.10, 0.25, 0.62)
    nadir: tuple[float, float, float] = (0.05, 0.05, 0.06)
    fog_color: tuple[float, float, float] = (0.58, 0.54, 0.48)  # warm haze: stays distinct from the sky
    fog_density: float = 0.006
    ground_z: float = 0.0
    ground_albedo: tuple[float, float, float] = (0.36, 0.33, 0.29)
    line_albedo: tuple[float, float, float] = (0.85, 0.83, 0.78)
    x_axis_albedo: tuple[float, float, float] = (0.85, 0.20, 0.15)
    y_axis_albedo: tuple[float, float, float] = (0.20, 0.75, 0.25)
    grid_spacing: float = 1.0
    line_width: tuple[float, float] = (0.02, 0.05)  # minor, major
    grid_major: float = 5.0

    @property
    def light_dir_unit(self) -> np.ndarray:
        v = np.asarray(self.light_dir, dtype=np.float64)
        return v / np.linalg.norm(v)

    def lit(self, albedo, normal) -> np.ndarray:
        """``albedo * (ambient + sun * max(0, n . l))`` before fog, linear RGB (n: stage unit normal)."""
        ndotl = max(float(np.dot(np.asarray(normal, dtype=np.float64), self.light_dir_unit)), 0.0)
        return np.asarray(albedo, np.float64) * (np.asarray(self.ambient) + np.asarray(self.sun) * ndotl)


@dataclass(frozen=True)
class SceneMesh:
    """Indexed triangles in stage coordinates: ``vertices`` (N, 9) float32 = position, normal, albedo;
    ``indices`` (M,) uint32, counter-clockwise seen from outside."""

    vertices: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)

    @property
    def positions(self) -> np.ndarray:
        return self.vertices[:, 0:3]

    @property
    def normals(self) -> np.ndarray:
        return self.vertices[:, 3:6]

    @property
    def albedos(self) -> np.ndarray:
        return self.vertices[:, 6:9]


# outward normal, then two tangents u, v with u x v = normal: corners c + (+-u +-v) run counter-clockwise
_BOX_FACES = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
    ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
)


def box_mesh(column: Column) -> tuple[np.ndarray, np.ndarray]:
    """24 vertices (N, 9) and 36 indices of ``column``'s box, faces counter-clockwise seen from outside."""
    half = np.array([column.size[0] / 2, column.size[1] / 2, column.height / 2])
    center = np.array([column.center[0], column.center[1], column.base_z + column.height / 2])
    verts, idx = [], []
    for f, (n, u, v) in enumerate(_BOX_FACES):
        n, u, v = (np.asarray(a, dtype=np.float64) for a in (n, u, v))
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = center + half * (n + su * u + sv * v)
            verts.append([*p, *n, *column.albedo])
        b = 4 * f
        idx += [b, b + 1, b + 2, b, b + 2, b + 3]
    return np.asarray(verts, dtype=np.float32), np.asarray(idx, dtype=np.uint32)


def build_scene_mesh(columns: tuple[Column, ...] = DEFAULT_COLUMNS) -> SceneMesh:
    """All column boxes of the world as one indexed mesh (the ground and sky are drawn per pixel)."""
    verts, idx = [], []
    base = 0
    for col in columns:
        v, i = box_mesh(col)
        verts.append(v)
        idx.append(i + base)
        base += len(v)
    if not verts:
        return SceneMesh(np.zeros((0, 9), np.float32), np.zeros((0,), np.uint32))
    return SceneMesh(np.concatenate(verts), np.concatenate(idx))


def eye_from_view_proj(view_proj: np.ndarray) -> np.ndarray:
    """The eye point (stage, metres) of a perspective stage -> clip matrix.

    The eye is the one stage point that clip space sends to ``(0, 0, z, 0)``: for a glFrustum ``P`` and a
    rigid ``V``, ``inv(P @ V) @ (0, 0, 1, 0)`` is the eye in homogeneous coordinates. Works for off-axis
    (Kooima) projections too. Raises ResourceError for an affine (orthographic) matrix, which has no eye
    point.
    """
    vp = np.asarray(view_proj, dtype=np.float64)
    e = np.linalg.solve(vp, np.array([0.0, 0.0, 1.0, 0.0]))
    if abs(e[3]) < 1e-12 * max(1.0, float(np.abs(e[:3]).max())):
        raise ResourceError("view_proj has no eye point (orthographic?); the scene pass needs a perspective")
    return e[:3] / e[3]


class RenderTarget:
    """An offscreen framebuffer ``width x height``: colour texture (``rgba8`` or ``rgba16f``) + depth.

    ``viewport`` is the whole target in GL window coordinates; :meth:`read` returns its colour as
    ``(H, W, 4)`` with row 0 = top.
    """

    def __init__(
        self,
        resources: ResourceRegistry,
        width: int,
        height: int,
        *,
        color: str = "rgba8",
        depth: bool = True,
        label: str = "target",
    ) -> None:
        if width <= 0 or height <= 0:
            raise ResourceError(f"render target {label!r}: size {width}x{height} must be positive")
        self.framebuffer: Framebuffer = resources.framebuffer(label, width, height, color, depth=depth)
        self.width = int(width)
        self.height = int(height)
        self.label = label

    @property
    def color(self):
        return self.framebuffer.color

    @property
    def size(self) -> tuple[int, int]:
        return self.framebuffer.size

    @property
    def viewport(self) -> tuple[int, int, int, int]:
        return self.framebuffer.viewport

    def read(self, dtype=np.uint8, out: np.ndarray | None = None) -> np.ndarray:
        """Colour as ``(H, W, 4)``, row 0 = top (synchronous readback)."""
        return read_pixels(self.framebuffer, dtype=dtype, out=out)

    def release(self) -> None:
        self.framebuffer.release()


def _variant(source: str, define: str | None) -> str:
    """``source`` with ``#define <define>`` after its ``#version`` line (line numbers in logs unchanged)."""
    if define is None:
        return source
    version, rest = source.split("\n", 1)
    return f"{version}\n#define {define}\n#line 2\n{rest}"


class SceneRenderer:
    """Draws the test world into a framebuffer. Create and use it with its context current (render thread).

    Two programs from ``scene.vert`` / ``scene.frag``: the background (ground + sky, one fullscreen triangle,
    ``BACKGROUND`` defined) and the meshes (columns). No per-pixel branching on the pass kind: llvmpipe pays
    for both sides of a branch.
    """

    PASS = "scene"

    def __init__(
        self,
        resources: ResourceRegistry,
        *,
        columns: tuple[Column, ...] = DEFAULT_COLUMNS,
        look: SceneLook = SceneLook(),
        label: str = "scene",
    ) -> None:
        self.resources = resources
        self.columns = columns
        self.look = look
        self.label = label
        self.mesh = build_scene_mesh(columns)
        self._owned = OwnedObjects()
        keep = self._owned.keep
        try:
            vert, frag = shader_source("scene.vert"), shader_source("scene.frag")
            self.background_program = keep(
                resources.program(
                    f"{label}.background.program", _variant(vert, "BACKGROUND"), _variant(frag, "BACKGROUND")
                )
            )
            self.mesh_program = keep(resources.program(f"{label}.mesh.program", vert, frag))
            self.vbo = keep(
                resources.buffer(f"{label}.mesh.vbo", GL.GL_ARRAY_BUFFER, self.mesh.vertices)
            )
            self.ibo = keep(
                resources.buffer(f"{label}.mesh.ibo", GL.GL_ELEMENT_ARRAY_BUFFER, self.mesh.indices)
            )
            self.vao = keep(resources.vertex_array(f"{label}.mesh.vao"))
            stride = 9 * 4
            for loc, offset in ((0, 0), (1, 12), (2, 24)):
                self.vao.attribute(loc, self.vbo, 3, stride=stride, offset=offset)
            self.vao.set_index_buffer(self.ibo)
            self.background_vao = keep(resources.vertex_array(f"{label}.background.vao"))
            with gl_pass("create", self.label):
                self._set_look_uniforms()
        except BaseException:
            self.release()
            raise

    def _set_look_uniforms(self) -> None:
        lk = self.look
        for p in (self.background_program, self.mesh_program):
            p.use()
            p.set_vec3("u_fog_color", lk.fog_color)
            p.set_float("u_fog_density", lk.fog_density)
        p = self.mesh_program
        p.use()
        p.set_vec3("u_light_dir", lk.light_dir_unit)
        p.set_vec3("u_sun", lk.sun)
        p.set_vec3("u_ambient", lk.ambient)
        p = self.background_program
        p.use()
        for name in ("sky_horizon", "sky_zenith", "nadir"):
            p.set_vec3(f"u_{name}", getattr(lk, name))
        up = (0.0, 0.0, 1.0)
        for name in ("ground", "line", "x_axis", "y_axis"):
            p.set_vec3(f"u_{name}_lit", lk.lit(getattr(lk, f"{name}_albedo"), up))
        p.set_float("u_ground_z", lk.ground_z)
        inv_major = 1.0 / lk.grid_major
        p.set_vec4("u_grid_scale", np.array([1.0, 1.0, inv_major, inv_major]) / lk.grid_spacing)
        minor_w, major_w = lk.line_width
        widths = np.array([minor_w, minor_w, major_w * inv_major, major_w * inv_major]) / lk.grid_spacing
        p.set_vec4("u_line_width", widths)
        GL.glUseProgram(0)

    def draw(
        self,
        view_proj: np.ndarray,
        target: Framebuffer | RenderTarget | int,
        viewport: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Draw the world seen through ``view_proj`` (4x4 float64, stage -> clip) into ``target``.

        ``view_proj`` must be a perspective projection (glFrustum or Kooima, times a rigid view).
        ``target``: a Framebuffer, a RenderTarget, or a raw framebuffer name (0 = the current window's default
        framebuffer; then ``viewport`` is required). ``viewport``: ``(x, y, w, h)`` in GL window coordinates
        (origin bottom-left), default the whole target; only that rectangle is cleared and drawn.
        Raises :class:`~stagectl.render.gl.errors.RenderError` (pass ``"scene"``) on a GL error.
        """
        vp = check_view_proj(view_proj, self.PASS)
        fbo, label, area = resolve_target(target, viewport, self.PASS)
        inv_vp = np.linalg.inv(vp)
        eye = eye_from_view_proj(vp)
        bg, mesh = self.background_program, self.mesh_program
        with gl_pass(self.PASS, label):
            bind_draw_area(fbo, area)
            GL.glClearDepth(1.0)
            GL.glClear(GL.GL_DEPTH_BUFFER_BIT)  # the background pass writes every colour pixel
            GL.glDisable(GL.GL_BLEND)
            GL.glEnable(GL.GL_DEPTH_TEST)
            # background: ground + sky, depth from the ground hit (GL_ALWAYS: the test must be on to write)
            GL.glDepthFunc(GL.GL_ALWAYS)
            GL.glDisable(GL.GL_CULL_FACE)
            bg.use()
            bg.set_mat4("u_view_proj", vp)
            bg.set_mat4("u_inv_view_proj", inv_vp)
            bg.set_vec3("u_eye", eye)
            bg.set_float("u_eye_clip_z", (vp @ np.append(eye, 1.0))[2])
            GL.glBindVertexArray(self.background_vao.glo)
            GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
            # columns
            if len(self.mesh.indices):
                GL.glDepthFunc(GL.GL_LESS)
                GL.glEnable(GL.GL_CULL_FACE)
                GL.glCullFace(GL.GL_BACK)
                GL.glFrontFace(GL.GL_CCW)
                mesh.use()
                mesh.set_mat4("u_view_proj", vp)
                mesh.set_vec3("u_eye", eye)
                GL.glBindVertexArray(self.vao.glo)
                GL.glDrawElements(GL.GL_TRIANGLES, len(self.mesh.indices), GL.GL_UNSIGNED_INT, None)
            reset_draw_state()

    def release(self) -> None:
        """Free the programs, buffers and vertex arrays (render thread); idempotent."""
        self._owned.release()
