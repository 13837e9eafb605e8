"""The operator's grades as OpenColorIO functions of the composite pass (docs/colour.md, *Grades*).

Each graded wall and the inner frusta (a :class:`~stagectl.core.features.ColorCorrection` in the frame's
:class:`~stagectl.core.features.FeatureState`) get an OCIO processor of their grade
(:meth:`Grade.from_color_correction <stagectl.color.ocio.Grade.from_color_correction>`: exposure as a
*dynamic* ``ExposureContrastTransform``, white balance a ``MatrixTransform``, ASC CDL a ``CDLTransform``, the
3D LUT a ``Lut3DTransform`` between the sRGB encode and decode), built on OCIO's raw config
(:func:`~stagectl.color.ocio.grade_processor`) and extracted as GLSL with its own function name and resource
prefix: wall ``w``: ``vec4 stagectl_grade_wall<w>(vec4)``, prefix ``gw<w>_``; the inner frusta:
``stagectl_grade_inner``, prefix ``gi_``. :class:`GradeShaders` joins them into one text that the compositor
inserts into the composite fragment shader (``WALL_GRADE`` / ``INNER_GRADE`` variants, shaders/composite.frag)
with two selectors::

    vec3 wall_grade(vec3 c, int w);   // the grade of wall w (c unchanged for an ungraded wall)
    vec3 inner_grade(vec3 c);

**What compiles and what does not.** A grade's function depends on everything but its exposure, which is an
OCIO dynamic property: a float uniform per function (:attr:`GradeShaders.exposure_uniforms`). The set's
:attr:`~GradeShaders.key` (:func:`grade_key` of every graded target, not the exposures) keys the compositor's
programs: an exposure change sets uniforms, any other change (white balance, CDL, LUT, a wall graded or
reset) is a new set, compiled once and kept (the compositor keeps the last few sets' programs). A wall keeps
its own function even when another wall has the same grade, so that each has its own exposure uniform; equal
LUTs share one texture (:attr:`GradeShaders.textures`).

Everything here is plain data and CPU work (no GL): :func:`build_grade_shaders` may run on any thread;
:class:`GradeBuilder` runs it on a worker thread and caches the results, so the render thread does not wait
for OpenColorIO (about 3 ms a grade with a 33-point LUT on the 2-core test machine).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from stagectl.color.ocio import GpuShader, Grade, ShaderTexture, ShaderTexture3D, grade_processor

__all__ = [
    "GRADE_MODES",
    "WALL_FUNCTION",
    "INNER_FUNCTION",
    "grade_key",
    "GradeTexture",
    "GradeShaders",
    "grade_targets",
    "build_grade_shaders",
    "GradeBuilder",
]

#: how the composite pass applies the operator's grades: ``ocio`` (OpenColorIO functions, this module) or
#: ``shader`` (the composite shader's own uniform-driven code, WALL_CC / INNER_CC and the LUT atlas)
GRADE_MODES = ("ocio", "shader")
WALL_FUNCTION = "stagectl_grade_wall{w}"  #: GLSL function of wall ``w``'s grade (resource prefix ``gw<w>_``)
INNER_FUNCTION = "stagectl_grade_inner"  #: GLSL function of the inner frusta's grade (resource prefix ``gi_``)


def grade_key(cc) -> tuple:
    """What the OCIO function of a :class:`~stagectl.core.features.ColorCorrection` depends on: everything
    but its exposure (white balance gains, CDL, the LUT's content digest)."""
    return (
        tuple(float(v) for v in cc.white_balance),
        tuple(cc.slope), tuple(cc.offset), tuple(cc.power), float(cc.saturation),
        cc.lut.digest if cc.lut is not None else None,
    )


def grade_targets(wall_grades: Iterable[tuple[int, object]], inner) -> tuple:
    """The structure key of a frame's grades: ``((wall index, grade_key), ...)`` sorted by wall, then the
    inner frusta's ``grade_key`` (None: not graded)."""
    walls = tuple(sorted((int(w), grade_key(cc)) for w, cc in wall_grades))
    return (walls, grade_key(inner) if inner is not None else None)


@dataclass(frozen=True)
class GradeTexture:
    """One LUT texture of the grade functions: OCIO's texture data (``data``: a
    :class:`~stagectl.color.ocio.ShaderTexture3D` or :class:`~stagectl.color.ocio.ShaderTexture`) and every
    sampler that reads it (equal LUTs of several functions share the texture)."""

    data: ShaderTexture3D | ShaderTexture
    samplers: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.data.name


@dataclass(frozen=True)
class GradeShaders:
    """The grade functions of one set of graded targets, ready to insert into the composite shader.

    ``key``: :func:`grade_targets` (the programs' cache key); ``walls``: the graded wall indices, in order;
    ``inner``: whether the inner frusta are graded; ``shaders``: OCIO's :class:`GpuShader` per target
    (``("wall", w)`` or ``("inner",)``); ``text``: every function, then the selectors ``wall_grade`` and
    ``inner_grade`` (GLSL for ``#version 330 core``); ``textures``: the LUT textures, deduplicated;
    ``exposure_uniforms``: target -> the float uniform holding its exposure (stops); ``uniforms``: OCIO's
    other uniforms with their values (set once per program)."""

    key: tuple
    walls: tuple[int, ...]
    inner: bool
    shaders: dict = field(repr=False, compare=False)
    text: str = field(repr=False, compare=False)
    textures: tuple[GradeTexture, ...] = field(repr=False, compare=False)
    exposure_uniforms: dict = field(repr=False, compare=False)
    uniforms: tuple = field(repr=False, compare=False)

    def exposures(self, wall_grades: Iterable[tuple[int, object]], inner) -> tuple[tuple[str, float], ...]:
        """``(uniform, stops)`` of every graded target's exposure (the frame's colour corrections, of this
        set's structure)."""
        out = []
        for w, cc in wall_grades:
            name = self.exposure_uniforms.get(("wall", int(w)))
            if name is not None:
                out.append((name, float(cc.exposure)))
        if inner is not None and self.inner:
            out.append((self.exposure_uniforms[("inner",)], float(inner.exposure)))
        return tuple(sorted(out))


def _selectors(walls: Sequence[int], inner: bool, shown: frozenset[int] | None) -> str:
    lines = ["// stagectl grade selectors (stagectl/render/grades.py)"]
    lines.append("vec3 wall_grade(vec3 c, int w) {")
    lines.append("    vec4 p = vec4(c, 1.0);")
    if len(walls) == 1 and shown is not None and shown <= {walls[0]}:
        lines.append(f"    p = {WALL_FUNCTION.format(w=walls[0])}(p);  // the only wall shown")
    else:
        for i, w in enumerate(walls):
            kw = "if" if i == 0 else "else if"
            lines.append(f"    {kw} (w == {w}) p = {WALL_FUNCTION.format(w=w)}(p);")
    lines.append("    return p.rgb;")
    lines.append("}")
    lines.append("vec3 inner_grade(vec3 c) {")
    lines.append(f"    return {INNER_FUNCTION}(vec4(c, 1.0)).rgb;" if inner else "    return c;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _texture_digest(t: ShaderTexture3D | ShaderTexture) -> str:
    h = hashlib.sha1(np.ascontiguousarray(t.values, dtype=np.float32).tobytes())
    if isinstance(t, ShaderTexture3D):
        h.update(f"3d {t.edge} {t.interpolation}".encode())
    else:
        h.update(f"{t.dimensions}d {t.width} {t.height} {t.channels} {t.interpolation}".encode())
    return h.hexdigest()


def build_grade_shaders(wall_grades: Sequence[tuple[int, object]], inner=None, *,
                        shown_walls: Iterable[int] | None = None) -> GradeShaders:
    """The OCIO grade functions of ``wall_grades`` (``(wall index, ColorCorrection)``) and ``inner`` (a
    ColorCorrection or None). ``shown_walls``: the wall indices any output shows (when only one, graded wall
    is shown, its grade is applied without a test of the wall id). Raises
    :class:`~stagectl.color.errors.ColorError` if OpenColorIO refuses a grade. No GL: any thread."""
    walls = sorted((int(w), cc) for w, cc in wall_grades)
    targets: list[tuple[tuple, object, str, str]] = [
        (("wall", w), cc, WALL_FUNCTION.format(w=w), f"gw{w}_") for w, cc in walls
    ]
    if inner is not None:
        targets.append((("inner",), inner, INNER_FUNCTION, "gi_"))
    shaders: dict[tuple, GpuShader] = {}
    texts = ["// stagectl grades: OpenColorIO functions, one per graded wall and the inner frusta"]
    exposure_uniforms: dict[tuple, str] = {}
    uniforms = []
    textures: dict[str, tuple[ShaderTexture3D | ShaderTexture, list[str]]] = {}
    for target, cc, fn, prefix in targets:
        sh = grade_processor(Grade.from_color_correction(cc, dynamic_exposure=True)).gpu_shader(
            function_name=fn, resource_prefix=prefix)
        shaders[target] = sh
        texts.append(sh.text)
        exposure_uniforms[target] = sh.exposure_uniform
        uniforms += [u for u in sh.uniforms if u.name != sh.exposure_uniform]
        for t in (*sh.textures_3d, *sh.textures):
            entry = textures.setdefault(_texture_digest(t), (t, []))
            entry[1].append(t.sampler)
    shown = frozenset(int(w) for w in shown_walls) if shown_walls is not None else None
    texts.append(_selectors([w for w, _ in walls], inner is not None, shown))
    return GradeShaders(
        key=grade_targets(walls, inner),
        walls=tuple(w for w, _ in walls),
        inner=inner is not None,
        shaders=shaders,
        text="\n".join(texts),
        textures=tuple(GradeTexture(t, tuple(s)) for t, s in textures.values()),
        exposure_uniforms=exposure_uniforms,
        uniforms=tuple(uniforms),
    )


class GradeBuilder:
    """Builds :class:`GradeShaders` on one worker thread and keeps the last ``keep`` of them by key.

    :meth:`request` never waits: it returns the set if it is built, else starts building it (once) and returns
    None. :meth:`get` waits for it (building it on the calling thread when nobody started it). A build that
    failed raises its :class:`~stagectl.color.errors.ColorError` from :meth:`get` and from every later
    :meth:`request` of that key (a bad grade is refused once, not rebuilt every frame)."""

    def __init__(self, *, keep: int = 8, shown_walls: Iterable[int] | None = None) -> None:
        self.keep = int(keep)
        self.shown_walls = frozenset(int(w) for w in shown_walls) if shown_walls is not None else None
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple, GradeShaders | BaseException] = OrderedDict()
        self._pending: dict[tuple, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.builds = 0  #: grade sets built (for tests and telemetry)

    def _build(self, key: tuple, wall_grades, inner) -> GradeShaders:
        try:
            got: GradeShaders | BaseException = build_grade_shaders(wall_grades, inner, shown_walls=self.shown_walls)
        except Exception as exc:  # kept: a bad grade is reported, not rebuilt each frame
            got = exc
        with self._lock:
            self.builds += 1
            self._done[key] = got
            self._done.move_to_end(key)
            while len(self._done) > self.keep:
                self._done.popitem(last=False)
            self._pending.pop(key, None)
        if isinstance(got, BaseException):
            raise got
        return got

    def _ready(self, key: tuple) -> GradeShaders | None:
        got = self._done.get(key)
        if got is None:
            return None
        self._done.move_to_end(key)
        if isinstance(got, BaseException):
            raise got
        return got

    def request(self, wall_grades: Sequence[tuple[int, object]], inner=None) -> GradeShaders | None:
        """The set of these grades if built; otherwise None, and it is being built on the worker thread."""
        key = grade_targets(wall_grades, inner)
        with self._lock:
            got = self._ready(key)
            if got is not None or key in self._pending:
                return got
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stagectl-grades")
            self._pending[key] = self._pool.submit(self._build, key, tuple(wall_grades), inner)
        return None

    def get(self, wall_grades: Sequence[tuple[int, object]], inner=None) -> GradeShaders:
        """The set of these grades, built now if needed (waits for a build in progress)."""
        key = grade_targets(wall_grades, inner)
        with self._lock:
            got = self._ready(key)
            if got is not None:
                return got
            fut = self._pending.get(key)
        if fut is not None:
            return fut.result()
        return self._build(key, tuple(wall_grades), inner)

    def close(self) -> None:
        """Stop the worker thread (builds in progress finish first)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
