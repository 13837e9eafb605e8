"""The GL passes that execute a :class:`~stagectl.render.passes.FramePlan`: inner frusta, outer atlas, canvases.

Three kinds of pass, each a class owning its GL objects (all made through the context's
:class:`~stagectl.render.gl.resources.ResourceRegistry`, released by ``release()``):

* :class:`InnerTargets` — per camera an offscreen :class:`~stagectl.render.scene.RenderTarget` at the plan's
  inner resolution; the stage content (:class:`~stagectl.render.content.Content`) is drawn into it with the
  camera's ``VP`` (overscan included).
* :class:`OuterAtlas` — the scene from the stage's outer viewpoint into a cube atlas (3 x 2 square tiles,
  one per face, each a 90-degree view plus a one-texel gutter so that bilinear filtering never crosses
  faces). Only the faces some wall is seen through are drawn (the plan decides); static content is kept
  between frames while the viewpoint and face set stay the same. Valid for any wall shape: the composition
  samples it by direction ``stage position - viewpoint``.
* :class:`CanvasCompositor` — per output a static vertex buffer of its mapped regions cut into tiles
  (:class:`~stagectl.render.tiles.CanvasTiles`), two ``rgba8`` canvas framebuffers (the one being drawn and
  the last good one, see :mod:`stagectl.render.renderer`) and a cached outer-only canvas. The composite
  program (``shaders/composite.vert`` / ``composite.frag``, one variant per number of cameras, plus
  ``INNER_ONLY`` and ``COPY``) places each vertex at its canvas pixel, projects each fragment's stage position
  with every camera's ``VP`` and blends the inner image over the outer one with the soft edge. Each frame only
  the tiles an inner frustum touches are composited; tiles it left are restored from the cached outer-only
  canvas (static outer content) or composited from the atlas (dynamic content).

**Colour.** The scene writes linear-light RGB. The inner targets and the outer atlas are ``rgba16f`` so that
they keep linear values without banding and bilinear filtering happens in linear light. The output encode
happens exactly once, at the end of the composite fragment shader. By default (every output of a stage
without a ``colour:`` section) it is the sRGB encoding (IEC 61966-2-1 piecewise curve) and canvases are
``rgba8`` holding 8-bit sRGB codes (GL rounds to nearest), alpha 255; :func:`srgb_encode` / :func:`to_srgb8`
are the numpy twins used for the inner-frustum snapshot image and by tests. An output with an
:class:`~stagectl.color.output.OutputEncode` (``encodes``) has its own canvas format (``rgba8``, ``rgb10_a2``
or ``rgba16``: :meth:`CanvasCompositor.canvas_format`) and its programs are compiled with OpenColorIO's GPU
text (``OCIO_OUTPUT``): OCIO's function, then RGB rounded to the canvas depth in the shader (shaders/
composite.frag); its LUT textures sit on :data:`OCIO_FIRST_UNIT` onwards and are bound per output. Programs
are cached per (encode, variant).

**Calibration A/B** (``color.calibration``): a calibrated output's encode carries its twin without the calibration
(:attr:`~stagectl.color.output.OutputEncode.uncalibrated`). Both encodes' LUT textures are made when the
compositor is made, and every program variant is compiled for both at once (the base variants when the output
opens, feature variants when first used), so switching never compiles anything inside the frame loop.
:meth:`CanvasCompositor.use_calibration` takes the frame's choice (``OutputPass.calibrated``) before anything
is drawn: a switched output's canvases are redrawn whole and its cached outer-only canvas is redrawn with the
chosen encode at the next :meth:`~CanvasCompositor.update_cache`, so the switch shows on that very frame.

**Soft edge** (the exact ramp; :func:`stagectl.render.tiles.soft_edge_weight` is its numpy twin): for the
fragment's NDC ``(x, y)`` in the camera's overscanned frustum, ``d = 1 - max(|x|, |y|)``,
``a = clamp(d / soft_edge, 0, 1)``, weight ``= a^2 (3 - 2a)`` in front of the eye (``w_clip > 1e-6``), 0
behind; the inner colour is mixed over the outer one with that weight, cameras in plan order.

**Stage features** (:mod:`stagectl.core.features`, uniforms from :class:`~stagectl.render.passes.FeatureUniforms`):
light cards, per-wall and inner colour correction (a LUT atlas on :data:`LUT_TEXTURE_UNIT`), chroma key and
markers are feature ``#define``s of the composite variants (none when every feature is off: the plain programs
run). The cached outer-only canvases hold the outer image *with* the walls' colour correction and every light
card (over and under: outside the inner frustum both lie over the outer image), so features never bypass
the tile logic: a change of the walls' colour correction redraws the cached canvases, a change of the light
cards redraws only the cached tiles the old and new cards touch and marks them for restoring on both canvas
buffers. Test patterns (``PATTERN`` variants) replace an output's composition: the whole canvas is drawn once
and kept while the pattern stays (its cell atlas on :data:`CELLS_TEXTURE_UNIT`); the canvas then counts as
wholly changed, so the next composed frame restores every tile. Burn-in (``BURNIN``) is drawn over the tiles
of its boxes (text on :data:`BURN_TEXTURE_UNIT`), which are restored the next frame.

**Grades** (``grades="ocio"``, the default, :data:`DEFAULT_GRADES`): the walls' and the inner frusta's colour
corrections run as OpenColorIO functions (:mod:`stagectl.render.grades`): the ``WALL_GRADE`` / ``INNER_GRADE``
variants hold the grade parts' GLSL after the defines (instead of ``WALL_CC`` / ``WALL_LUT`` / ``INNER_CC``
/ ``INNER_LUT`` and the LUT atlas), their 3D LUTs on the units after the encodes' (the walls' part) and on the
last units (the inner part). Programs are cached per (encode, variant, the parts they run); an exposure
change sets the parts' exposure uniforms, any other grade change needs the variants that run the changed part;
the programs and textures of the last :data:`GRADE_SETS_KEPT` parts of each kind are kept (and those drawn or
waited for). ``grades="shader"`` runs the shader's own uniform-driven grade code (no compile on a grade
change).

**Grades off the render thread** (``worker``, a :class:`~stagectl.render.program_worker.ProgramWorker`):
:meth:`CanvasCompositor.frame_features`, at each frame's start, checks that every program the plan's features
need exists (every output encode and its calibration twin). When the walls' or the inner frusta's grade part
changed (a grade other than its exposure: white balance, CDL, LUT, a target graded or reset) and some are
missing, the worker compiles, links and warms them up on its shared context, and the frames go on with that
part as it was (with the plan's exposures, and everything else of the plan's features); the new grade is drawn
from the start of the first frame after its last program arrived (a newer change replaces a request still
waiting; a grade whose program fails, or that OpenColorIO refuses, keeps the old one and is said in
:meth:`~CanvasCompositor.program_status`). Without a worker, and at the first frame, programs compile on the
render thread at first use (:attr:`CanvasCompositor.compiles` counts those,
:attr:`~CanvasCompositor.compiles_off_thread` the worker's). Still compiled at first use on the render thread,
once a session each, so that they show on the frame the console acknowledged: the feature variants of light
cards, the chroma key and its markers, test patterns and burn-in (the white flash must show on its frame), the
variants of a camera count or outer mode not drawn before, and the shader grades' defines
(``grades="shader"``).

**Rows.** Inner targets and the atlas are rendered and sampled by GL only (GL texture ``t = 1 - v``, no flip).
Canvases: the composite vertex shader maps canvas pixel ``(x, y)`` (row 0 = top) to NDC with a y flip, and
:func:`~stagectl.render.gl.readback.read_pixels` flips GL rows back, so canvases read into numpy have row 0 =
top. Unmapped canvas pixels are cleared to opaque black and never drawn.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from stagectl.core.features import MAX_CARDS, MAX_WALLS
from stagectl.color.errors import ColorError
from stagectl.render.content import Content
from stagectl.render.gl.errors import RenderError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import Framebuffer, Program, ResourceRegistry, gl_pass, shader_source
from stagectl.render.passes import (
    MAX_BURN_IN,
    MAX_CAMERAS,
    BurnInPass,
    CompositeUniforms,
    FeatureUniforms,
    InnerPass,
    OuterPass,
    OutputPass,
    PatternPass,
)
from stagectl.render.grades import GRADE_MODES, GradeBuilder, GradePart, grade_key, part_needed
from stagectl.render.program_worker import ProgramJob, ProgramWorker, WarmUp
from stagectl.render.scene import RenderTarget
from stagectl.render.tiles import CanvasTiles, tiles_in_rect

log = logging.getLogger(__name__)

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
#: texture units of the colour-correction LUT atlas, a pattern's cell atlas and the burn-in text
LUT_TEXTURE_UNIT = MAX_CAMERAS + 2
CELLS_TEXTURE_UNIT = MAX_CAMERAS + 3
BURN_TEXTURE_UNIT = MAX_CAMERAS + 4
#: the unit made active while a texture is created or uploaded (both bind and unbind on the active unit)
_SCRATCH_UNIT = MAX_CAMERAS + 5
#: first texture unit of an output's OCIO LUTs (its encode's 3D, then 1D/2D textures)
OCIO_FIRST_UNIT = MAX_CAMERAS + 6
#: the program variants compiled for both encodes of a calibrated output when it opens (the A/B switch)
WARM_VARIANTS = (("copy",), ("composite", 0, ()), ("composite", 1, ()), ("inner", ()))
#: the PATTERN define of each pattern program
PATTERN_IDS = {"solid": 1, "checkerboard": 2, "color_bars": 3, "aruco": 4, "cabinet_id": 5}
#: array sizes every variant is compiled with
_SIZES = {"MAX_WALLS": MAX_WALLS, "MAX_CARDS": MAX_CARDS, "MAX_BURN_IN": MAX_BURN_IN}
#: opaque black, the clear colour of canvases and the default safe image
BLACK = (0.0, 0.0, 0.0, 1.0)
#: how grades run unless the compositor is told otherwise (``grades=``): OpenColorIO functions
DEFAULT_GRADES = "ocio"
#: the shader-native grade defines that the OCIO grades (WALL_GRADE, INNER_GRADE) replace
SHADER_GRADE_DEFINES = ("WALL_CC", "WALL_LUT", "INNER_CC", "INNER_LUT")
#: grade parts of each kind (walls, inner frusta) whose programs and LUT textures are kept (the newest; older
#: ones are freed)
GRADE_SETS_KEPT = 4
#: the compile worker's channel of the compositor's programs (a newer set replaces the one waiting there)
_CHANNEL = "composite"
#: the vertex layout of the canvas tiles: (location, float components, byte offset); 9 floats a vertex
_TILE_ATTRIBUTES = ((0, 2, 0), (1, 3, 8), (2, 2, 20), (3, 2, 28))
_UNSET = object()


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


def _variant(source: str, defines: dict[str, object], extra: str = "") -> str:
    """``source`` with ``#define``s (and ``extra`` text: OCIO's shader) after its ``#version`` line (log line
    numbers of ``source`` unchanged)."""
    version, rest = source.split("\n", 1)
    lines = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    if extra:
        lines += extra.rstrip("\n") + "\n"
    return f"{version}\n{lines}#line 2\n{rest}"


def encode_defines(encode) -> dict[str, object]:
    """The composite defines of an :class:`~stagectl.color.output.OutputEncode` (none for None)."""
    if encode is None:
        return {}
    top = (1 << encode.bits) - 1
    d: dict[str, object] = {"OCIO_OUTPUT": 1, "CODE_TOP": f"{top}.0", "CODE_SCALE": f"{1 << (encode.bits - 8)}.0"}
    if encode.narrow:
        d["NARROW"] = 1
    return d


def black_of(encode) -> tuple[float, float, float, float]:
    """The clear colour of an output's canvas: code 0, or the narrow-range black code (64 at 10 bits)."""
    if encode is None or not encode.narrow:
        return BLACK
    b = float(16 << (encode.bits - 8)) / float((1 << encode.bits) - 1)
    return (b, b, b, 1.0)


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

    def render(self, p: InnerPass, scene: Content, *, timecode_frame: int | None = None) -> bool:
        """Draw the scene for ``p`` unless it is frozen and an image exists; returns True when drawn."""
        t = self.target(p.camera, p.resolution)
        if p.frozen and p.camera in self.rendered:
            return False
        self.rendered.discard(p.camera)
        scene.draw(p.VP, t, eye_stage=np.asarray(p.T_stage_pupil)[:3, 3], timecode_frame=timecode_frame)
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

    def needs_render(self, outer: OuterPass, frame_key=None) -> bool:
        return not outer.static or self.key != (outer.key, frame_key)

    def render(self, outer: OuterPass, scene: Content, *, force: bool = False,
               timecode_frame: int | None = None) -> bool:
        """Draw every face the plan lists into its tile (only when needed: the plan's outer pass or the
        content's frame changed, e.g. the next frame of a video plate); returns True when drawn."""
        frame_key = scene.frame_key(timecode_frame=timecode_frame)
        if tuple(outer.atlas_size) != self.target.size:
            raise RenderError(self.PASS, self.target.label, "atlas size changed",
                              detail=f"{outer.atlas_size} != {self.target.size}")
        if not force and not self.needs_render(outer, frame_key):
            return False
        self.key = None
        eye = np.asarray(outer.viewpoint, dtype=np.float64)
        for face in outer.faces:
            scene.draw(face.VP, self.target, viewport=face.viewport, eye_stage=eye, timecode_frame=timecode_frame)
        self.key = (outer.key, frame_key)
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

    def __init__(self, resources: ResourceRegistry, tiles: CanvasTiles, label: str, encode=None) -> None:
        self.tiles = tiles
        self.encode = encode
        self.format = CANVAS_FORMAT if encode is None else encode.format
        self.black = black_of(encode)
        self.luts: list = []  # the encode's OCIO LUT textures (CanvasCompositor makes them)
        # calibration A/B: (calibrated, uncalibrated) encodes and their LUTs; ``encode``/``luts`` the chosen one
        twin = getattr(encode, "uncalibrated", None)
        self.choices = (encode, twin) if twin is not None else None
        self.lut_sets: list[list] = [[], []]
        self.calibrated = True
        self.stale = False  # the cached outer-only canvas was drawn with the other encode
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
                self._keep(resources.framebuffer(f"{label}.canvas{i}", w, h, self.format, depth=False))
                for i in range(2)
            ]
            self.cache = self._keep(
                resources.framebuffer(f"{label}.outer_canvas", w, h, self.format, depth=False)
            )
        except BaseException:
            self.release()
            raise
        self.indices = np.zeros(n * 6, dtype=np.uint32)
        self.touched = [np.ones(self.count, dtype=bool) for _ in range(2)]
        self.dirty = [True, True]
        # per canvas: the test pattern it holds (PatternPass.key; None: the composition) and the tiles a
        # burn-in was drawn over since
        self.content: list[tuple | None] = [None, None]
        self.overlaid = [np.zeros(self.count, dtype=bool) for _ in range(2)]
        self.card_tiles: tuple | None = None  # (card entries, (count,) bool): tiles light cards may touch

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


def _u3(p: Program, name: str, v) -> None:
    GL.glUniform3f(p.location(name), *(float(x) for x in v))


def _u4(p: Program, name: str, v) -> None:
    GL.glUniform4f(p.location(name), *(float(x) for x in v))


def _grades_of(wall_grades) -> tuple:
    """Comparable ``(wall, grade key, exposure)`` of ``((wall index, ColorCorrection), ...)``."""
    return tuple((int(w), grade_key(cc), float(cc.exposure)) for w, cc in wall_grades)


@dataclass
class _Pending:
    """Features waiting for their programs (:meth:`CanvasCompositor.frame_features`): the program ``keys``
    missing when they were asked for, the worker's ``ticket``, the grade ``parts`` they run (kept), when
    (``since_ns``, monotonic) and the first ``error`` of a program that could not be made."""

    features: object
    keys: frozenset
    ticket: int
    parts: frozenset
    since_ns: int
    lag: tuple = ()
    error: str | None = None


@dataclass(frozen=True)
class _ProgramSpec:
    """A program variant to compile (:meth:`CanvasCompositor._spec`): cache ``key``, the grade ``parts`` it
    runs, ``kind``, ``label``, sources, sampler units ``ints`` and OCIO's constant uniforms ``constants`` (set
    by :meth:`setup`, on whichever thread compiles it), the LUT textures it reads ``(unit, target, name)``."""

    key: tuple
    parts: tuple
    kind: str
    label: str
    vertex: str
    fragment: str
    ints: tuple
    constants: tuple
    luts: tuple

    def setup(self, p: Program) -> None:
        """Set the program's constant uniforms (``p`` in use; any thread with a context of the share group)."""
        for name, unit in self.ints:
            loc = p.location(name)
            if loc >= 0:
                GL.glUniform1i(loc, int(unit))
        if self.constants:
            from stagectl.render.ocio_pass import set_shader_uniform

            for un in self.constants:
                set_shader_uniform(p, un.name, un.kind, un.value)


class CanvasCompositor:
    """Composites the inner frusta and the outer atlas onto every output canvas, tile by tile.

    Each output's mapped regions are cut into tiles (:class:`~stagectl.render.tiles.CanvasTiles`). Per frame
    and output (:meth:`draw`), three tile lists are drawn into the chosen canvas:

    * tiles no inner frustum touches: with static outer content, only those that held something else before
      are restored from the output's cached outer-only canvas (``COPY``: a texel copy); with dynamic outer
      content all of them are composited from the atlas (``CAMERAS 0``);
    * tiles wholly inside the top camera's full-weight region: its inner image alone (``INNER_ONLY``);
    * the other touched tiles: the full composition (``CAMERAS n``).

    An output with a test pattern or the white flash is drawn with its ``PATTERN`` program instead (only when
    the canvas does not hold that pattern already); a burn-in is drawn last, over its boxes' tiles.

    The cached outer-only canvases are redrawn (:meth:`update_cache`) whenever the atlas or the walls' colour
    correction changes, and where light cards change. Programs are compiled per variant on first use;
    samplers are bound to fixed texture units (inner ``i`` on unit ``i``, the atlas on
    :data:`OUTER_TEXTURE_UNIT`, the cached canvas on :data:`CACHE_TEXTURE_UNIT`, the LUT atlas on
    :data:`LUT_TEXTURE_UNIT`, cells on :data:`CELLS_TEXTURE_UNIT`, burn-in text on :data:`BURN_TEXTURE_UNIT`).

    Variants: ``("composite", n, defines)`` (``("composite", n)`` = no feature defines), ``("inner",
    defines)``, ``("copy",)``, ``("pattern", kind)``, ``("burnin",)``.
    """

    PASS = "composite"

    def __init__(self, resources: ResourceRegistry, tiles, *, label: str = "composite", encodes=None,
                 grades: str | None = None, worker: ProgramWorker | None = None) -> None:
        self.resources = resources
        self.label = label
        self.tiles = tuple(tiles)
        self.encodes = dict(encodes or {})  # output key -> OutputEncode (absent/None: 8-bit sRGB)
        self.grades = DEFAULT_GRADES if grades is None else grades
        if self.grades not in GRADE_MODES:
            raise RenderError(self.PASS, label, f"unknown grade mode {grades!r}",
                              detail=f"expected one of {', '.join(GRADE_MODES)}")
        self.compiles = 0  #: programs compiled on this (the render) thread (a grade's exposure change: none)
        #: the compile worker (:mod:`stagectl.render.program_worker`): programs of console changes come from it
        self.worker = worker
        self.compiles_off_thread = 0  #: programs the worker compiled that this compositor took
        self._shown = _UNSET  # the features drawn (frame_features): the newest ones whose programs exist
        self._pending: _Pending | None = None  # the newest features waiting for the worker's programs
        self._refused: tuple | None = None  # (features, error): features whose grade OpenColorIO refused
        self._shown_keys: tuple | None = None  # (walls, inner) grade part keys of the shown features
        self._shown_parts: frozenset = frozenset()  # those part keys (kept, never evicted)
        self._lag_cache: tuple | None = None  # (features, shown, lag, features drawn): one object per pair
        self._warm_tex: dict[int, tuple[int, int]] = {}  # unit -> (target, texture) bound at the last frame
        self._notes: list[str] = []  # said once each: refused and failed programs (StageRenderer.notes)
        shown = {int(w) for t in self.tiles for w in np.unique(t.wall_index)}
        self._grade_builder = GradeBuilder(keep=2 * GRADE_SETS_KEPT, shown_walls=shown)
        # the grade parts (walls, inner) of the frame being drawn, None: no OCIO grades (selects programs)
        self._grade: tuple[GradePart | None, GradePart | None] | None = None
        self._grade_now: tuple | None = None  # (features, grade parts, exposures) of the last features seen
        self._grade_gl: OrderedDict[tuple, list] = OrderedDict()  # part key -> [(LutTexture, samplers)]
        self._grade_exp: dict[tuple, tuple] = {}  # program key -> the exposures it holds
        self._grade_first_unit = OCIO_FIRST_UNIT
        self._encode = None  # the encode of the output being drawn: selects the program variants
        self._luts: dict[str, list] = {}  # encode key -> its OCIO LUT textures
        self._twins: dict[str, object] = {}  # encode key -> its A/B twin (calibrated <-> uncalibrated)
        self._programs: dict[tuple, Program] = {}
        self.outputs: dict[str, _OutputGL] = {}
        self.cache_key: tuple | None = None
        self._sources = (shader_source("composite.vert"), shader_source("composite.frag"))
        self._frame: tuple | None = None  # (uniforms, static outer, features) of the frame begun
        # feature state: what the cached outer canvases were drawn with, textures, uploaded uniforms
        self._cache_fu: FeatureUniforms | None = None
        self._cache_outer_key: tuple = ()
        self._cache_cards: tuple = ()
        self._fu_set: dict[tuple, FeatureUniforms | None] = {}
        self._lut_tex = None
        self._lut_key: tuple = ()
        self._cells: dict[str, tuple[object, object]] = {}  # kind -> (CellAtlas, texture)
        self._burn_tex = None
        self._burn_lines: tuple | None = None
        try:
            for i, t in enumerate(self.tiles):
                self.outputs[t.key] = _OutputGL(resources, t, f"{label}.out{i}", self.encodes.get(t.key))
            with gl_pass("create", label):
                for o in self.outputs.values():
                    if o.encode is not None:
                        o.luts = self._encode_luts(o.encode)
                    if o.choices is not None:
                        cal, plain = o.choices
                        o.lut_sets = [o.luts, self._encode_luts(plain)]
                        self._twins[cal.key] = plain
                        self._twins[plain.key] = cal
                    for fb in (*o.framebuffers, o.cache):
                        clear_framebuffer(fb, o.black)
                    o.dirty = [False, False]
            # the grades' LUT textures go after every encode's
            self._grade_first_unit = OCIO_FIRST_UNIT + max((len(v) for v in self._luts.values()), default=0)
            for enc in {o.choices[0].key: o.choices[0] for o in self.outputs.values() if o.choices}.values():
                self._encode = enc  # both programs of the A/B switch now, not at the first switch
                for v in WARM_VARIANTS:
                    self.program(v)
            self._encode = None
        except BaseException:
            self.release()
            raise

    # ------------------------------------------------------------------ output encodes

    def canvas_format(self, key: str) -> str:
        """The canvas format of output ``key``: ``rgba8`` (8-bit codes), ``rgb10_a2`` or ``rgba16``."""
        return self.outputs[key].format

    def black(self, key: str) -> tuple[float, float, float, float]:
        """The clear colour of output ``key``'s canvas (opaque black at its code range)."""
        return self.outputs[key].black

    def _encode_luts(self, enc) -> list:
        """The OCIO LUT textures of ``enc`` (made once per encode, shared by its outputs)."""
        got = self._luts.get(enc.key)
        if got is not None:
            return got
        from stagectl.render.ocio_pass import make_luts

        n = len(enc.shader.textures_3d) + len(enc.shader.textures)
        units = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_IMAGE_UNITS))
        if OCIO_FIRST_UNIT + n > units:
            raise RenderError(self.PASS, self.label, f"OCIO encode {enc.description} needs {n} LUT textures",
                              detail=f"texture units {OCIO_FIRST_UNIT}..{OCIO_FIRST_UNIT + n - 1}, the GL has "
                                     f"{units}")
        GL.glActiveTexture(GL.GL_TEXTURE0 + _SCRATCH_UNIT)
        got = make_luts(self.resources, enc.shader, f"{self.label}.ocio{len(self._luts)}", OCIO_FIRST_UNIT)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        self._luts[enc.key] = got
        return got

    def use_calibration(self, outputs) -> list[str]:
        """Take this frame's calibration choice (each :class:`~stagectl.render.passes.OutputPass`'s
        ``calibrated``, True when it has none) for the outputs that have a calibration; returns the keys switched.
        A switched output's canvases are cleared and redrawn whole, and its cached outer-only canvas is redrawn
        with the chosen encode at the next :meth:`update_cache` (the class docstring). No GL call here."""
        switched = []
        for out in outputs:
            o = self.outputs.get(out.key)
            if o is None or o.choices is None:
                continue
            want = bool(getattr(out, "calibrated", True))
            if want == o.calibrated:
                continue
            i = 0 if want else 1
            o.calibrated = want
            o.encode = o.choices[i]
            o.luts = o.lut_sets[i]
            o.dirty = [True, True]
            o.stale = True
            switched.append(out.key)
        return switched

    def calibrated(self, key: str) -> bool | None:
        """Whether output ``key`` shows its calibration now (None: it has none)."""
        o = self.outputs[key]
        return None if o.choices is None else o.calibrated

    def _use_output(self, o: _OutputGL) -> None:
        """Make ``o``'s encode the current one (its programs) and bind its OCIO LUTs."""
        self._encode = o.encode
        for lut in o.luts:
            lut.bind()
        GL.glActiveTexture(GL.GL_TEXTURE0)

    def _distinct_encodes(self) -> list:
        return list({(o.encode.key if o.encode is not None else None): o.encode
                     for o in self.outputs.values()}.values())

    # ------------------------------------------------------------------ grades (stagectl.render.grades)

    @staticmethod
    def _grade_inputs(fu: FeatureUniforms) -> tuple[tuple, object, tuple, tuple]:
        """The frame's graded walls ``((wall index, ColorCorrection), ...)``, the inner frusta's grade (None:
        ungraded or keyed), the walls' looks ``((wall index, LookSpec), ...)`` and the cameras' ``((camera,
        LookSpec), ...)``."""
        return fu.wall_grades, fu.inner_grade, fu.wall_looks, fu.camera_looks

    def _active(self, features: FeatureUniforms | None) -> FeatureUniforms | None:
        """The frame's features when any variant needs them: a feature define, or (OCIO grades) a grade, even
        one that is the identity now (its exposure is a uniform: moving it off 0 must not compile)."""
        if features is None:
            return None
        if features.active:
            return features
        walls, inner, wall_looks, camera_looks = self._grade_inputs(features)
        if wall_looks or camera_looks or (self.grades == "ocio" and (walls or inner is not None)):
            return features
        return None

    def _grade_set(self, fu: FeatureUniforms | None) -> tuple[GradePart | None, GradePart | None] | None:
        """The OCIO grade parts (walls, inner) of ``fu``, their LUT textures made (None: shader grades, or
        nothing graded)."""
        if fu is None:
            return None
        walls, inner, wall_looks, camera_looks = self._grade_inputs(fu)
        if self.grades != "ocio":
            if wall_looks or camera_looks:
                raise RenderError(self.PASS, self.label, "the stage's OCIO looks need the OCIO grades",
                                  detail=f"grades={self.grades!r}; looks run as OpenColorIO functions "
                                         "(grades='ocio')")
            return None
        now = self._grade_now
        if now is not None and now[0] is fu:
            return now[1]
        parts, exposures = None, ()
        need_w, need_i = part_needed("walls", walls, wall_looks), part_needed("inner", inner, camera_looks)
        if need_w or need_i:
            try:
                wp = self._grade_builder.get("walls", walls, wall_looks) if need_w else None
                ip = self._grade_builder.get("inner", inner, camera_looks) if need_i else None
            except ColorError as exc:
                raise RenderError(self.PASS, self.label, "grade refused by OpenColorIO",
                                  detail=str(exc)) from None
            units = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_IMAGE_UNITS))
            nw, ni = (len(p.textures) if p is not None else 0 for p in (wp, ip))
            if self._grade_first_unit + nw + ni > units:
                raise RenderError(self.PASS, self.label, f"the grades need {nw + ni} LUT textures",
                                  detail=f"texture units from {self._grade_first_unit}, the GL has {units}")
            for part in (wp, ip):
                if part is not None:
                    self._adopt_grade(part, units)
            parts = (wp, ip)
            exposures = tuple(sorted(
                (wp.exposures((("wall", w), cc) for w, cc in walls) if wp is not None else ())
                + (ip.exposures([(t, inner) for t in ip.targets]) if ip is not None and inner is not None
                   else ())))
        self._grade_now = (fu, parts, exposures)
        if fu is self._shown and self._shown_keys is None:
            wp, ip = parts if parts is not None else (None, None)
            self._shown_keys = (wp.key if wp is not None else None, ip.key if ip is not None else None)
            self._shown_parts = frozenset(k for k in self._shown_keys if k is not None)
        return parts

    def _adopt_grade(self, part: GradePart, units: int) -> None:
        """Make ``part``'s LUT textures (once; the walls' on units from :attr:`_grade_first_unit` up, the
        inner frusta's on the last units) and free the programs and textures of the parts of its kind beyond
        :data:`GRADE_SETS_KEPT`."""
        if part.key in self._grade_gl:
            self._grade_gl.move_to_end(part.key)
            return
        from stagectl.render.ocio_pass import make_luts

        first = self._grade_first_unit if part.kind == "walls" else units - len(part.textures)
        with gl_pass("create", f"{self.label}.grades"):
            GL.glActiveTexture(GL.GL_TEXTURE0 + _SCRATCH_UNIT)
            try:
                luts = make_luts(self.resources, [t.data for t in part.textures], f"{self.label}.grade",
                                 first)
            finally:
                GL.glActiveTexture(GL.GL_TEXTURE0)
        made = [(lut, t.samplers) for lut, t in zip(luts, part.textures)]
        self._grade_gl[part.key] = made
        same = [k for k in self._grade_gl if k[0] == part.key[0]]
        keep = self._shown_parts | (self._pending.parts if self._pending is not None else frozenset())
        evict = [k for k in same if k != part.key and k not in keep]
        for old in evict[:max(0, len(same) - GRADE_SETS_KEPT)]:
            for lut, _ in self._grade_gl.pop(old):
                lut.release()
            for pkey in [k for k in self._programs if k[0] == "graded" and old in (k[2], k[3])]:
                self._programs.pop(pkey).release()
                self._fu_set.pop(pkey, None)
                self._grade_exp.pop(pkey, None)

    def _bind_grades(self, parts) -> None:
        if parts is None:
            return
        for part in parts:
            if part is not None:
                for lut, _ in self._grade_gl[part.key]:
                    lut.bind()
        GL.glActiveTexture(GL.GL_TEXTURE0)

    def _graded(self, defs: tuple, *, outer: bool, inner: bool) -> tuple:
        """``defs`` with the shader-native grade defines replaced by WALL_GRADE / INNER_GRADE (OCIO grades of
        the current set: ``outer`` for variants that show the walls' outer image, ``inner`` the frusta)."""
        if self._grade is None:
            return defs
        wp, ip = self._grade
        out = tuple(d for d in defs if d not in SHADER_GRADE_DEFINES)
        if outer and wp is not None:
            out += ("WALL_GRADE",)
        if inner and ip is not None:
            out += ("INNER_GRADE",)
        return out

    # ------------------------------------------------------------------ console changes: programs off the thread

    def frame_features(self, features: FeatureUniforms | None, *, camera_count: int,
                       static_outer: bool) -> FeatureUniforms | None:
        """The features to draw this frame with (render thread, at the frame's start, before
        :meth:`update_cache` and :meth:`begin`), given the plan's ``features``, its number of cameras and
        whether its outer content is static.

        Without a :attr:`worker`, and at the first frame, ``features`` themselves (a program missing then is
        compiled here, at its first use). Otherwise ``features`` when every program this frame runs with them
        exists (for every output encode and its calibration twin), or when their grade parts are the ones drawn
        now (a light card or the chroma key turned on compiles its variants here, once a session, so that it
        shows on the frame the console acknowledged). When the walls' or the inner frusta's grade part changed
        (a grade other than its exposure) and programs are missing, the worker is asked for them (a newer
        request replaces an older one) and ``features`` are drawn with that part as it was (the exposures
        the plan's): the grade lands at the start of the first frame after its programs arrive. A grade that
        OpenColorIO refuses, or whose program fails, is never drawn (said in :meth:`program_status` and once in
        :meth:`take_notes`) until a newer one comes."""
        self._poll_worker()
        worker = self.worker
        if worker is None or self._shown is _UNSET or not worker.alive:
            self._show(features, None)
            return features
        if features is self._shown:
            self._show(features, self._shown_keys)
            return features
        if self._refused is not None and self._refused[0] is features:
            return self._lagging(features, ("walls", "inner"))
        try:
            wanted = self._needed(features, int(camera_count), bool(static_outer))
        except RenderError as exc:  # OpenColorIO refused a grade, or the grades need too many texture units
            self._refused = (features, f"{exc}")
            self._say(f"grade not applied, the previous one stays: {exc}")
            return self._lagging(features, ("walls", "inner"))
        parts = self._grade_now[1] if self._grade_now is not None else None
        wp, ip = parts if parts is not None else (None, None)
        keys = (wp.key if wp is not None else None, ip.key if ip is not None else None)
        shown = self._shown_keys if self._shown_keys is not None else (None, None)
        lag = tuple(kind for kind, now, then in zip(("walls", "inner"), keys, shown) if now != then
                    and not (kind == "inner" and features is not None and features.key_on))
        missing = {k: v for k, v in wanted.items() if k not in self._programs}
        if not missing or not lag:
            self._show(features, keys)
            return features
        pend = self._pending
        if pend is not None and frozenset(missing) <= pend.keys:
            pend.features, pend.lag = features, lag  # the programs asked for (some arrived, an exposure moved)
            return self._lagging(features, lag)
        self._submit(features, missing, frozenset(k for k in keys if k is not None), lag)
        return self._lagging(features, lag)

    def _show(self, features, keys: tuple | None) -> None:
        """``features`` are drawn from now on, with grade part keys ``keys`` (None: found when drawn)."""
        if self._pending is not None:
            self.worker.cancel(_CHANNEL)  # what it still compiles for older features is not wanted now
        self._shown, self._shown_keys = features, keys
        self._shown_parts = frozenset(k for k in keys or () if k is not None)
        self._pending = self._refused = None

    def _lagging(self, features, lag: tuple) -> FeatureUniforms | None:
        """``features`` with the grade parts of kinds ``lag`` (``walls``, ``inner``) as drawn now: their colour
        corrections those of the features drawn, with the plan's exposures (a uniform: no program needed)."""
        shown = self._shown
        if features is None or not lag:
            return features if features is not None else shown
        got = self._lag_cache
        if got is not None and got[0] is features and got[1] is shown and got[2] == lag:
            return got[3]
        walls, inner, outer_key = features.wall_grades, features.inner_grade, features.outer_key
        wall_looks, camera_looks = features.wall_looks, features.camera_looks
        if "walls" in lag:
            stops = {w: cc.exposure for w, cc in features.wall_grades}
            walls = tuple((w, dataclasses.replace(cc, exposure=stops[w]) if w in stops else cc)
                          for w, cc in (shown.wall_grades if shown is not None else ()))
            wall_looks = shown.wall_looks if shown is not None else ()  # the looks drawn now, too
            before = shown.outer_key if shown is not None else ()
            if _grades_of(walls) != _grades_of(shown.wall_grades if shown is not None else ()):
                looks = tuple(("look", w, spec) for w, spec in wall_looks)
                outer_key = (("walls drawn as before", _grades_of(walls)),) + looks  # their outer canvas redrawn
            else:
                outer_key = before  # what the outer-only canvases hold already: not redrawn
        if "inner" in lag:
            inner = shown.inner_grade if shown is not None else None
            if inner is not None and features.inner_grade is not None:
                inner = dataclasses.replace(inner, exposure=features.inner_grade.exposure)
            camera_looks = shown.camera_looks if shown is not None else ()
        drawn = dataclasses.replace(features, wall_grades=walls, inner_grade=inner, outer_key=outer_key,
                                    wall_looks=wall_looks, camera_looks=camera_looks)
        self._lag_cache = (features, shown, lag, drawn)
        return drawn

    def program_status(self) -> dict:
        """Where the programs of console changes stand: ``worker`` (``"on"``: compiled off the render thread,
        ``"off"``), ``pending`` (None, or ``{"programs": n, "waiting_ms": t}`` while the drawn features are
        older than the plan's), ``error`` (the newest program or grade that could not be made, None), and the
        counts ``compiled_render_thread`` / ``compiled_off_thread``."""
        pend = self._pending
        pending = None
        if pend is not None and pend.error is None:
            pending = {"programs": len(pend.keys),
                       "waiting_ms": round((time.monotonic_ns() - pend.since_ns) / 1e6, 1)}
        error = pend.error if pend is not None else None
        if error is None and self._refused is not None:
            error = self._refused[1]
        return {"worker": "on" if self.worker is not None and self.worker.alive else "off", "pending": pending,
                "error": error, "compiled_render_thread": self.compiles,
                "compiled_off_thread": self.compiles_off_thread}

    def take_notes(self) -> list[str]:
        """What happened to console changes since the last call that a person should read (refused grades,
        programs that failed), each said once."""
        notes, self._notes = self._notes, []
        return notes

    def _say(self, text: str) -> None:
        if text not in self._notes:
            self._notes.append(text)
            log.warning("%s: %s", self.label, text)

    def _all_encodes(self) -> list:
        """Every encode an output may draw with now or after a calibration switch (None: 8-bit sRGB)."""
        out: dict = {}
        for o in self.outputs.values():
            for enc in (o.choices if o.choices is not None else (o.encode,)):
                out.setdefault(enc.key if enc is not None else None, enc)
        return list(out.values())

    def _frame_variants(self, fu: FeatureUniforms | None, n: int, static_outer: bool) -> list[tuple]:
        """The composite variants a frame of ``n`` cameras draws with ``fu`` (:meth:`begin`, :meth:`draw`, and
        :meth:`update_cache`'s outer-only canvas), for the grade parts now current."""
        out = [self._composite_variant(0, fu)]
        for cards in (True, False):
            out.append(self._composite_variant(n, fu, cards))
            if n:
                out.append(self._inner_variant(fu, cards))
            if not static_outer and n:
                out.append(self._composite_variant(0, fu, cards))
        return list(dict.fromkeys(self._normal(v) for v in out))

    def _needed(self, features, n: int, static_outer: bool) -> dict[tuple, tuple]:
        """Program key -> (variant, encode) of every program a frame with ``features`` runs (their grade parts
        built and their LUT textures made: ``_grade_now`` holds them after the call)."""
        fu = self._active(features)
        saved = self._grade
        try:
            self._grade = self._grade_set(fu)
            out: dict[tuple, tuple] = {}
            variants = self._frame_variants(fu, n, static_outer)
            for enc in self._all_encodes():
                for v in variants:
                    out.setdefault(self._program_key(v, enc)[0], (v, enc))
        finally:
            self._grade = saved
        return out

    def _submit(self, features, missing: dict[tuple, tuple], part_keys: frozenset, lag: tuple) -> None:
        """Ask the worker for the ``missing`` programs of ``features`` (their grade parts current in
        ``_grade_now``), each warmed up with the textures its frames bind."""
        saved = self._grade
        try:
            self._grade = self._grade_now[1] if self._grade_now is not None else None
            specs = [(self._spec(v, enc), enc) for v, enc in missing.values()]
        finally:
            self._grade = saved
        vertices = np.zeros((3, 9), np.float32)
        vertices[1, 0] = vertices[2, 1] = 2.0  # a triangle over canvas pixel (0, 0) of a 1 x 1 canvas
        jobs = []
        for spec, enc in specs:
            textures = {u: t for u, t in self._warm_tex.items()}
            textures.update({unit: (target, glo) for unit, target, glo in spec.luts})
            warm = WarmUp(CANVAS_FORMAT if enc is None else enc.format,
                          tuple((u, t, g) for u, (t, g) in sorted(textures.items())),
                          vertices=vertices, attributes=_TILE_ATTRIBUTES,
                          indices=np.arange(3, dtype=np.uint32), uniforms=(("u_canvas_size", (1.0, 1.0)),))
            jobs.append(ProgramJob(spec.key, spec.label, spec.vertex, spec.fragment, setup=spec.setup, warm=warm))
        fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)  # the new parts' LUT textures, made here
        GL.glFlush()
        ticket = self.worker.submit(jobs, channel=_CHANNEL, fence=fence)
        self._pending = _Pending(features, frozenset(missing), ticket, part_keys, time.monotonic_ns(), lag)

    def _poll_worker(self) -> None:
        """Take the programs the worker finished (those of grade parts no longer kept, or made here meanwhile,
        are freed); a failure of the pending features' programs is recorded."""
        if self.worker is None:
            return
        for r in self.worker.poll():
            pend = self._pending
            if r.program is None:
                if pend is not None and r.ticket == pend.ticket and pend.error is None:
                    pend.error = r.error
                    self._say(f"grade not applied, the previous one stays: {r.error}")
                continue
            key = r.key
            alive = key[0] != "graded" or all(k is None or k in self._grade_gl for k in key[2:4])
            if key in self._programs or not alive:
                r.program.release()
                continue
            self._programs[key] = r.program
            self.compiles_off_thread += 1

    # ------------------------------------------------------------------ programs

    @staticmethod
    def _normal(variant: tuple) -> tuple:
        if variant[0] == "composite" and len(variant) == 2:
            return (variant[0], int(variant[1]), ())
        if variant[0] == "inner" and len(variant) == 1:
            return ("inner", ())
        return variant

    def _program_key(self, variant: tuple, enc) -> tuple[tuple, tuple[GradePart, ...]]:
        """The cache key of ``variant`` (normalised) for encode ``enc`` and the current grade parts, and the
        parts the variant runs (legacy programs keep their plain keys)."""
        defs = variant[2] if variant[0] == "composite" else variant[1] if variant[0] == "inner" else ()
        base = variant if enc is None else ("ocio", enc.key, variant)
        use_w, use_i = "WALL_GRADE" in defs, "INNER_GRADE" in defs
        if not (use_w or use_i):
            return base, ()
        wp, ip = self._grade if self._grade is not None else (None, None)
        if (use_w and wp is None) or (use_i and ip is None):
            raise RenderError(self.PASS, self.label, f"program variant {variant!r} without its grades")
        used = tuple(p for p, use in ((wp, use_w), (ip, use_i)) if use)
        return ("graded", base, wp.key if use_w else None, ip.key if use_i else None), used

    def _spec(self, variant: tuple, enc) -> _ProgramSpec:
        """What program ``variant`` (normalised) is for encode ``enc`` and the current grade parts: its cache
        key, the parts it runs, label and sources, and the uniform values it is set up with (no GL)."""
        pkey, parts = self._program_key(variant, enc)
        kind = variant[0]
        defines: dict[str, object] = dict(_SIZES)
        ints: list[tuple[str, int]] = []
        if kind == "composite":
            n = int(variant[1])
            if not 0 <= n <= MAX_CAMERAS:
                raise RenderError(self.PASS, self.label, f"{n} cameras", detail=f"at most {MAX_CAMERAS}")
            defines["CAMERAS"] = n
            defines.update({d: 1 for d in variant[2]})
            name = f"composite{n}" + "".join(f".{d.lower()}" for d in variant[2])
            ints += [(f"u_inner{i}", i) for i in range(n)] + [("u_outer", OUTER_TEXTURE_UNIT)]
        elif kind == "inner":
            defines["INNER_ONLY"] = 1
            defines.update({d: 1 for d in variant[1]})
            name = "inner_only" + "".join(f".{d.lower()}" for d in variant[1])
        elif kind == "copy":
            defines["COPY"] = 1
            name = "copy"
            ints.append(("u_source", CACHE_TEXTURE_UNIT))
        elif kind == "pattern":
            if variant[1] not in PATTERN_IDS:
                raise RenderError(self.PASS, self.label, f"unknown pattern {variant[1]!r}")
            defines["PATTERN"] = PATTERN_IDS[variant[1]]
            name = f"pattern.{variant[1]}"
            ints.append(("u_cells", CELLS_TEXTURE_UNIT))
        elif kind == "burnin":
            defines["BURNIN"] = 1
            name = "burnin"
            ints.append(("u_burn_text", BURN_TEXTURE_UNIT))
        else:
            raise RenderError(self.PASS, self.label, f"unknown program variant {variant!r}")
        if kind in ("composite", "inner"):
            ints.append(("u_lut", LUT_TEXTURE_UNIT))
        vert, frag = self._sources
        defines.update(encode_defines(enc))
        if enc is not None:
            name += f".ocio{list(self._luts).index(enc.key) if enc.key in self._luts else ''}"
        extra = enc.shader.text if enc is not None else ""
        luts: list = []
        constants: list = []
        if enc is not None:
            luts += [(lut, (lut.sampler,)) for lut in self._luts.get(enc.key, ())]
            constants += list(enc.shader.uniforms)
        for part in parts:
            name += f".grade{list(self._grade_gl).index(part.key)}"
            extra += "\n" + part.text
            luts += list(self._grade_gl[part.key])
            constants += list(part.uniforms)
        for lut, samplers in luts:
            ints += [(sampler, lut.unit) for sampler in samplers]
        return _ProgramSpec(pkey, parts, kind, f"{self.label}.{name}", _variant(vert, defines),
                            _variant(frag, defines, extra), tuple(ints), tuple(constants),
                            tuple((lut.unit, lut.target, lut.glo) for lut, _ in luts))

    def program(self, variant: tuple) -> Program:
        """A program variant (see the class docstring) for the current output encode (and grade set): compiled
        once (on this thread: a program of a console change comes from the compile worker first, see
        :meth:`frame_features`), samplers bound to their units."""
        variant = self._normal(variant)
        enc = self._encode
        pkey, _ = self._program_key(variant, enc)
        p = self._programs.get(pkey)
        if p is not None:
            return p
        spec = self._spec(variant, enc)
        p = self.resources.program(spec.label, spec.vertex, spec.fragment)
        self._programs[pkey] = p
        self.compiles += 1
        with gl_pass("create", p.label):
            p.use()
            spec.setup(p)
            if spec.parts:
                self._set_exposures(p, pkey)
            GL.glUseProgram(0)
        twin = self._twins.get(enc.key) if enc is not None else None
        if twin is not None and self._program_key(variant, twin)[0] not in self._programs:
            self._encode = twin  # the A/B twin's variant too: a switch never compiles in the frame loop
            try:
                self.program(variant)
            finally:
                self._encode = enc
        return p

    def _set_exposures(self, p: Program, pkey: tuple) -> None:
        """The grade exposures of this frame's features into ``p`` (in use) if it holds others."""
        now = self._grade_now
        exposures = now[2] if now is not None else ()
        if self._grade_exp.get(pkey) == exposures:
            return
        for name, stops in exposures:
            loc = p.location(name)
            if loc >= 0:
                GL.glUniform1f(loc, float(stops))
        self._grade_exp[pkey] = exposures

    def _set_outer_uniforms(self, p: Program, u: CompositeUniforms) -> None:
        GL.glUniform3f(p.location("u_outer_eye"), *(float(v) for v in u.outer_eye))
        rot = np.ascontiguousarray(u.face_rotation)
        GL.glUniformMatrix3fv(p.location("u_face_rotation"), 6, GL.GL_TRUE, rot)
        GL.glUniform2fv(p.location("u_face_origin"), 6, np.ascontiguousarray(u.face_origin))
        GL.glUniform1f(p.location("u_face_size"), float(u.face_size))
        aw, ah = u.atlas_size
        GL.glUniform2f(p.location("u_atlas_inv_size"), 1.0 / aw, 1.0 / ah)

    def _set_uniforms(self, variant: tuple, u: CompositeUniforms, fu: FeatureUniforms | None = None) -> None:
        """Upload this frame's uniforms to ``variant`` (matrices transposed: row-major numpy); the feature
        uniforms only when ``fu`` is not what the program last got."""
        variant = self._normal(variant)
        p = self.program(variant)
        p.use()
        n = u.camera_count
        if variant[0] == "composite":
            self._set_outer_uniforms(p, u)
            if variant[1]:
                vp = np.ascontiguousarray(u.inner_vp)
                GL.glUniformMatrix4fv(p.location("u_inner_vp"), n, GL.GL_TRUE, vp)
                GL.glUniform1fv(p.location("u_inner_inv_soft"), n, np.ascontiguousarray(u.inv_soft_edge))
            defs = variant[2]
        elif variant[0] == "inner":
            p.set_mat4("u_inner_top_vp", u.inner_vp[n - 1])
            p.set_int("u_inner_top", n - 1)
            defs = variant[1]
        else:
            return
        fkey, parts = self._program_key(variant, self._encode)
        if defs and fu is not None and self._fu_set.get(fkey) is not fu:
            self._set_feature_uniforms(p, defs, fu)
            self._fu_set[fkey] = fu
        if parts:
            self._set_exposures(p, fkey)
        if "INNER_GRADE" in defs and n:
            # each inner slot's camera look function (stagectl.render.grades: the inner part's look_ids)
            ids = self._grade[1].look_ids
            cams = tuple(u.inner_cameras) + ("",) * (n - len(u.inner_cameras))
            looks = [ids.get(c, -1) for c in cams[:n]]
            loc = p.location("u_inner_look")
            if loc >= 0:
                if variant[0] == "inner":
                    GL.glUniform1i(loc, looks[n - 1])
                else:
                    GL.glUniform1iv(loc, n, np.asarray(looks, dtype=np.int32))

    def _set_feature_uniforms(self, p: Program, defs: tuple, fu: FeatureUniforms) -> None:
        c = np.ascontiguousarray
        if "CARDS" in defs:
            GL.glUniform4fv(p.location("u_card_rect"), MAX_CARDS, c(fu.card_rect))
            GL.glUniform4fv(p.location("u_card_color"), MAX_CARDS, c(fu.card_color))
            GL.glUniform1fv(p.location("u_card_inv_feather"), MAX_CARDS, c(fu.card_inv_feather))
            p.set_int("u_cards_under", fu.cards_under)
            p.set_int("u_cards_total", fu.cards_total)
        if "WALL_CC" in defs:
            for name in ("gain", "slope", "offset", "power"):
                GL.glUniform3fv(p.location(f"u_wall_{name}"), MAX_WALLS, c(getattr(fu, f"wall_{name}")))
            GL.glUniform1fv(p.location("u_wall_sat"), MAX_WALLS, c(fu.wall_sat))
            GL.glUniform1fv(p.location("u_wall_cdl"), MAX_WALLS, c(fu.wall_cdl))
        if "WALL_LUT" in defs:
            GL.glUniform4fv(p.location("u_wall_lut"), MAX_WALLS, c(fu.wall_lut))
            GL.glUniform3fv(p.location("u_wall_lut_min"), MAX_WALLS, c(fu.wall_lut_min))
            GL.glUniform3fv(p.location("u_wall_lut_inv"), MAX_WALLS, c(fu.wall_lut_inv))
        if "INNER_CC" in defs:
            for name in ("gain", "slope", "offset", "power"):
                _u3(p, f"u_inner_{name}", getattr(fu, f"inner_{name}"))
            p.set_float("u_inner_sat", fu.inner_sat)
            p.set_float("u_inner_cdl", fu.inner_cdl)
        if "INNER_LUT" in defs:
            _u4(p, "u_inner_lut", fu.inner_lut)
            _u3(p, "u_inner_lut_min", fu.inner_lut_min)
            _u3(p, "u_inner_lut_inv", fu.inner_lut_inv)
        if ("WALL_LUT" in defs or "INNER_LUT" in defs) and fu.lut_atlas is not None:
            h, w = fu.lut_atlas.shape[:2]
            p.set_vec2("u_lut_inv_size", (1.0 / w, 1.0 / h))
        if "KEY" in defs:
            _u3(p, "u_key_color", fu.key_color)
        if "MARKERS" in defs:
            _u3(p, "u_marker_color", fu.marker_color)
            GL.glUniform4fv(p.location("u_marker_grid"), MAX_WALLS, c(fu.marker_grid))
            GL.glUniform4fv(p.location("u_marker_size"), MAX_WALLS, c(fu.marker_size))

    # ------------------------------------------------------------------ feature textures

    def _bind_lut(self, fu: FeatureUniforms | None) -> None:
        """Make and bind the LUT atlas of ``fu`` (when it has one and the grades are the shader's own) on
        :data:`LUT_TEXTURE_UNIT`."""
        if fu is None or fu.lut_atlas is None or self._grade is not None:
            return
        GL.glActiveTexture(GL.GL_TEXTURE0 + _SCRATCH_UNIT)
        if self._lut_tex is None or self._lut_key != fu.lut_key or self._lut_tex.size != (
                fu.lut_atlas.shape[1], fu.lut_atlas.shape[0]):
            if self._lut_tex is not None:
                self._lut_tex.release()
                self._lut_tex = None
            h, w = fu.lut_atlas.shape[:2]
            self._lut_tex = self.resources.texture2d(f"{self.label}.lut_atlas", w, h, "rgba32f",
                                                     data=fu.lut_atlas, filter="linear")
            self._lut_key = fu.lut_key
        self._lut_tex.bind(LUT_TEXTURE_UNIT)

    def _cells_texture(self, pp: PatternPass):
        got = self._cells.get(pp.kind)
        if got is not None and got[0] is pp.atlas:
            return got[1]
        if got is not None:
            got[1].release()
        GL.glActiveTexture(GL.GL_TEXTURE0 + _SCRATCH_UNIT)
        img = np.repeat(pp.atlas.image[..., None], 4, axis=2)
        h, w = img.shape[:2]
        tex = self.resources.texture2d(f"{self.label}.cells.{pp.kind}", w, h, "rgba8", data=img, filter="nearest")
        self._cells[pp.kind] = (pp.atlas, tex)
        return tex

    def _burn_texture(self, b: BurnInPass):
        h, w = b.bitmap.shape
        GL.glActiveTexture(GL.GL_TEXTURE0 + _SCRATCH_UNIT)
        if self._burn_tex is not None and self._burn_tex.size != (w, h):
            self._burn_tex.release()
            self._burn_tex = None
            self._burn_lines = None
        if self._burn_tex is None:
            self._burn_tex = self.resources.texture2d(f"{self.label}.burn_in", w, h, "rgba8", filter="nearest")
        if self._burn_lines != b.lines:
            self._burn_tex.upload(np.repeat((b.bitmap * 255).astype(np.uint8)[..., None], 4, axis=2))
            self._burn_lines = b.lines
        return self._burn_tex

    # ------------------------------------------------------------------ a frame

    def _composite_variant(self, n: int, fu: FeatureUniforms | None, cards: bool = True) -> tuple:
        if fu is None:
            return ("composite", n, ())
        defs = self._graded(fu.defines_for("outer") if n == 0 else fu.defines, outer=True, inner=n > 0)
        return ("composite", n, defs if cards else tuple(d for d in defs if d != "CARDS"))

    def _inner_variant(self, fu: FeatureUniforms | None, cards: bool = True) -> tuple:
        defs = self._graded(fu.defines_for("inner"), outer=False, inner=True) if fu is not None else ()
        return ("inner", defs if cards else tuple(d for d in defs if d != "CARDS"))

    def _card_tiles(self, o: _OutputGL, fu: FeatureUniforms) -> np.ndarray:
        """(count,) bool: the output's tiles some light card of ``fu`` may touch (kept per card set)."""
        got = o.card_tiles
        if got is not None and got[0] == fu.cards:
            return got[1]
        m = np.zeros(o.count, dtype=bool)
        for e in fu.cards:
            m |= tiles_in_rect(o.tiles, e[0], e[1])
        o.card_tiles = (fu.cards, m)
        return m

    def begin(self, u: CompositeUniforms, inner_textures: list, atlas_texture, *, static_outer: bool,
              features: FeatureUniforms | None = None) -> None:
        """Bind this frame's textures and upload its uniforms (once per frame, before :meth:`draw`)."""
        n = u.camera_count
        if n and not np.all(np.isfinite(u.inner_vp)):
            raise RenderError(self.PASS, self.label, "non-finite inner VP", detail="plan rejected")
        if len(inner_textures) != n:
            raise RenderError(self.PASS, self.label, "inner textures do not match the plan's layers")
        fu = self._active(features)
        self._grade = self._grade_set(fu)
        self._warm_tex = {i: (GL.GL_TEXTURE_2D, t.glo) for i, t in enumerate(inner_textures)}
        self._warm_tex[OUTER_TEXTURE_UNIT] = (GL.GL_TEXTURE_2D, atlas_texture.glo)
        with gl_pass(self.PASS, self.label):
            GL.glBindVertexArray(0)
            GL.glDisable(GL.GL_DEPTH_TEST)
            GL.glDisable(GL.GL_BLEND)
            GL.glDisable(GL.GL_CULL_FACE)
            GL.glDisable(GL.GL_SCISSOR_TEST)
            variants = []
            for cards in (True, False):  # tiles no light card touches run the variants without CARDS
                variants.append(self._composite_variant(n, fu, cards))
                if n:
                    variants.append(self._inner_variant(fu, cards))
                if not static_outer and n:
                    variants.append(self._composite_variant(0, fu, cards))
            for enc in self._distinct_encodes():
                self._encode = enc
                for v in dict.fromkeys(variants):
                    self._set_uniforms(v, u, fu)
            self._encode = None
            for i, tex in enumerate(inner_textures):
                tex.bind(i)
            atlas_texture.bind(OUTER_TEXTURE_UNIT)
            self._bind_lut(fu)
            self._bind_grades(self._grade)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glUseProgram(0)
        self._frame = (u, static_outer, fu)

    def update_cache(self, key: tuple, u: CompositeUniforms, atlas_texture, *, force: bool = False,
                     features: FeatureUniforms | None = None) -> bool:
        """Bring every output's outer-only canvas up to date: redraw it from the atlas if ``key`` (the atlas
        content) or the walls' colour correction changed (or ``force``); where only light cards changed,
        redraw the tiles the old and the new cards touch. Canvas tiles whose cached image changed are marked
        for restoring. ``features`` None: the features of the last call. Returns True when drawn."""
        fu = features if features is not None else self._cache_fu
        fu = self._active(fu)
        outer_key = fu.outer_key if fu is not None else ()
        cards = fu.cards if fu is not None else ()
        full = force or key != self.cache_key or outer_key != self._cache_outer_key
        stale = [k for k, o in self.outputs.items() if o.stale]  # switched calibration: redrawn whole
        masks: dict[str, np.ndarray] = {}
        if not full:
            if cards == self._cache_cards and not stale:
                self._cache_fu = fu
                return False
            old, new = self._cache_cards, cards
            changed = set(old) ^ set(new)
            common = set(old) & set(new)
            if [e for e in old if e in common] != [e for e in new if e in common]:
                changed = set(old) | set(new)  # the drawing order changed
            for k, o in self.outputs.items():
                m = np.zeros(o.count, dtype=bool)
                for e in changed:
                    m |= tiles_in_rect(o.tiles, e[0], e[1])
                masks[k] = m | o.stale
        self.cache_key = None
        self._grade = self._grade_set(fu)
        self._warm_tex[OUTER_TEXTURE_UNIT] = (GL.GL_TEXTURE_2D, atlas_texture.glo)
        variant = self._composite_variant(0, fu)
        with gl_pass(self.PASS, f"{self.label}.outer_canvas"):
            atlas_texture.bind(OUTER_TEXTURE_UNIT)
            self._bind_lut(fu)
            self._bind_grades(self._grade)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            ready: set = set()
            for k, o in self.outputs.items():
                tiles = np.arange(o.count) if full else np.flatnonzero(masks[k])
                if not len(tiles):
                    continue
                self._use_output(o)
                ekey = o.encode.key if o.encode is not None else None
                if ekey not in ready:
                    self._set_uniforms(variant, u, fu)
                    ready.add(ekey)
                p = self.program(variant)
                o.cache.bind()
                w, h = o.canvas
                GL.glViewport(0, 0, w, h)
                p.set_vec2("u_canvas_size", (w, h))
                self._draw_tiles(o, [tiles], [p])
                o.touched[0][tiles] = True
                o.touched[1][tiles] = True
            GL.glUseProgram(0)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
            self._encode = None
            self._grade = None
        self.cache_key = key
        self._cache_fu = fu
        self._cache_outer_key = outer_key
        self._cache_cards = cards
        for o in self.outputs.values():
            o.stale = False
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
        u, static_outer, fu = self._frame
        self._grade = self._grade_set(fu)
        o = self.outputs[out.key]
        fb = o.framebuffers[index]
        with gl_pass(self.PASS, fb.label):
            w, h = o.canvas
            if out.blackout or o.dirty[index]:
                clear_framebuffer(fb, o.black)
                o.touched[index][:] = True
                o.dirty[index] = False
                o.content[index] = None
                o.overlaid[index][:] = False
                if out.blackout:
                    o.dirty[index] = True  # the next frame redraws everything
                    return
            fb.bind()
            GL.glViewport(0, 0, w, h)
            if not o.count:
                return
            self._use_output(o)
            if out.pattern is not None:
                self._draw_pattern(o, out.pattern, index)
            else:
                self._draw_composition(o, out, index, u, static_outer, fu)
            if out.burn_in is not None:
                self._draw_burn_in(o, out.burn_in, index)

    def _draw_composition(self, o: _OutputGL, out: OutputPass, index: int, u: CompositeUniforms,
                          static_outer: bool, fu: FeatureUniforms | None) -> None:
        w, h = o.canvas
        touched = out.touched
        if touched.shape != (o.count,):
            raise RenderError(self.PASS, o.framebuffers[index].label, "plan's tiles do not match the renderer's")
        n = u.camera_count
        if static_outer:
            rest = np.flatnonzero(o.touched[index] & ~touched)
            o.cache.color.bind(CACHE_TEXTURE_UNIT)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            pairs = [(("copy",), rest)]
        else:
            rest = np.flatnonzero(~touched)
            pairs = [(self._composite_variant(0, fu), rest)]
        if n:
            pairs += [(self._inner_variant(fu), out.full), (self._composite_variant(n, fu), out.blend)]
        if fu is not None and "CARDS" in fu.defines:
            cm = self._card_tiles(o, fu)
            split = []
            for v, t in pairs:
                if v[0] == "copy":
                    split.append((v, t))
                    continue
                plain = (v[0], v[1], tuple(d for d in v[2] if d != "CARDS")) if v[0] == "composite" else (
                    v[0], tuple(d for d in v[1] if d != "CARDS"))
                split += [(plain, t[~cm[t]]), (v, t[cm[t]])]
            pairs = split
        programs = [self.program(v) for v, _ in pairs]
        for p in dict.fromkeys(programs):
            p.use()
            p.set_vec2("u_canvas_size", (w, h))
        self._draw_tiles(o, [t for _, t in pairs], programs)
        o.touched[index][:] = touched
        o.content[index] = None
        o.overlaid[index][:] = False

    def _draw_pattern(self, o: _OutputGL, pp: PatternPass, index: int) -> None:
        """Draw a test pattern over the canvas (only the tiles a burn-in changed when it holds it already)."""
        if pp.key is not None and o.content[index] == pp.key:
            tiles = np.flatnonzero(o.overlaid[index])
        else:
            tiles = np.arange(o.count)
        if len(tiles):
            p = self.program(("pattern", pp.kind))
            p.use()
            p.set_vec2("u_canvas_size", o.canvas)
            GL.glUniform4fv(p.location("u_wall_info"), MAX_WALLS, np.ascontiguousarray(pp.wall_info))
            _u3(p, "u_pattern_color", pp.color)
            p.set_float("u_squares", float(pp.squares))
            if pp.atlas is not None:
                tex = self._cells_texture(pp)
                tex.bind(CELLS_TEXTURE_UNIT)
                GL.glActiveTexture(GL.GL_TEXTURE0)
                p.use()
                p.set_vec2("u_cells_size", tex.size)
                GL.glUniform4fv(p.location("u_cell_place"), MAX_WALLS, np.ascontiguousarray(pp.cell_place))
                GL.glUniform4fv(p.location("u_cell_geom"), MAX_WALLS, np.ascontiguousarray(pp.cell_geom))
            self._draw_tiles(o, [tiles], [p])
        o.content[index] = pp.key
        o.touched[index][:] = True  # nothing of the cached outer image is left on this canvas
        o.overlaid[index][:] = False

    def _draw_burn_in(self, o: _OutputGL, b: BurnInPass, index: int) -> None:
        """Draw the burn-in boxes over the canvas (the BURNIN program discards every other fragment)."""
        if not len(b.tiles):
            return
        tex = self._burn_texture(b)
        tex.bind(BURN_TEXTURE_UNIT)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        p = self.program(("burnin",))
        p.use()
        p.set_vec2("u_canvas_size", o.canvas)
        GL.glUniform4fv(p.location("u_burn_box"), MAX_BURN_IN, np.ascontiguousarray(b.boxes))
        GL.glUniform4fv(p.location("u_burn_place"), MAX_BURN_IN, np.ascontiguousarray(b.place))
        p.set_vec2("u_burn_text_size", (b.bitmap.shape[1], b.bitmap.shape[0]))
        self._draw_tiles(o, [b.tiles], [p])
        o.touched[index][b.tiles] = True
        o.overlaid[index][b.tiles] = True

    def end(self) -> None:
        """Unbind what the frame bound."""
        GL.glUseProgram(0)
        GL.glBindVertexArray(0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        for i in range(BURN_TEXTURE_UNIT + 1):
            GL.glActiveTexture(GL.GL_TEXTURE0 + i)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        for luts in self._luts.values():
            for lut in luts:
                lut.unbind()
        for luts in self._grade_gl.values():
            for lut, _ in luts:
                lut.unbind()
        GL.glActiveTexture(GL.GL_TEXTURE0)
        self._frame = None
        self._encode = None
        self._grade = None

    def release(self) -> None:
        for o in self.outputs.values():
            o.release()
        self.outputs.clear()
        for p in self._programs.values():
            p.release()
        self._programs.clear()
        for _, tex in self._cells.values():
            tex.release()
        self._cells.clear()
        for tex in (self._lut_tex, self._burn_tex):
            if tex is not None:
                tex.release()
        self._lut_tex = self._burn_tex = None
        for luts in self._luts.values():
            for lut in luts:
                lut.release()
        self._luts.clear()
        for luts in self._grade_gl.values():
            for lut, _ in luts:
                lut.release()
        self._grade_gl.clear()
        self._grade_exp.clear()
        self._grade_now = self._grade = None
        if self.worker is not None:
            self.worker.cancel(_CHANNEL)
        self._pending = self._lag_cache = None
        self._shown = _UNSET
        self._fu_set.clear()
        self.cache_key = None
