"""The operator's grades as OpenColorIO functions of the composite pass (docs/colour.md, *Grades*).

Each graded wall and the inner frusta (a :class:`~stagectl.core.features.ColorCorrection` in the frame's
:class:`~stagectl.core.features.FeatureState`) get an OCIO processor of their grade
(:meth:`Grade.from_color_correction <stagectl.color.ocio.Grade.from_color_correction>`: exposure as a
*dynamic* ``ExposureContrastTransform``, white balance a ``MatrixTransform``, ASC CDL a ``CDLTransform``, the
3D LUT a ``Lut3DTransform`` between the sRGB encode and decode), built on OCIO's raw config
(:func:`~stagectl.color.ocio.grade_processor`) and extracted as GLSL with its own function name and resource
prefix: wall ``w``: ``vec4 stagectl_grade_wall<w>(vec4)``, prefix ``gw<w>_``; the inner frusta:
``stagectl_grade_inner``, prefix ``gi_``.

**Looks** (the stage file's ``colour: walls`` / ``cameras``, a :class:`~stagectl.color.ocio.LookSpec` each):
a wall with a look gets a function even without a grade, and its function is the look, then the grade
(:func:`~stagectl.color.ocio.look_processor`: the stage's working space in and out, the look and grade in
the wall's working space); a camera with a look gets its own function in the inner part,
``stagectl_grade_camera<k>`` (prefix ``gc<k>_``, ``k`` its place among the part's cameras,
:attr:`GradePart.look_ids`): its look, then the inner grade. The inner part's selector ``vec3 inner_grade(vec3
c, int look)`` takes the function by the inner slot's ``u_inner_look`` (set per frame by the compositor from
the camera in that slot), ``-1`` or a camera without a look: the inner grade alone (or nothing).

A frame's grades come in two independent :class:`GradePart` objects, each a text the compositor inserts into
the composite fragment shader after the defines: the walls' (``WALL_GRADE`` variants: every graded wall's
function and the selector ``vec3 wall_grade(vec3 c, int w)``, which leaves an ungraded wall's colour as it
is) and the inner frusta's (``INNER_GRADE`` variants: its function and ``vec3 inner_grade(vec3 c)``). A
program holds only the parts its variant runs, so a change of the walls' grades does not touch the programs
that show the inner frusta alone, and the other way round.

**What compiles and what does not.** A grade's function depends on everything but its exposure, which is an
OCIO dynamic property: a float uniform per function (:attr:`GradePart.exposure_uniforms`). A part's
:attr:`~GradePart.key` (:func:`grade_key` of each graded target, not the exposures) keys the compositor's
programs: an exposure change sets uniforms, any other change (white balance, CDL, LUT, a wall graded or
reset) is a new part, compiled once and kept (the compositor keeps the last few parts' programs). A renderer
with a compile worker (:mod:`stagectl.render.program_worker`) has the new part's programs compiled off the
render thread and keeps drawing the previous grade until they are ready. A wall keeps
its own function even when another wall has the same grade, so that each has its own exposure uniform; equal
LUTs of one part share one texture (:attr:`GradePart.textures`).

Everything here is plain data and CPU work (no GL): :func:`build_grade_part` may run on any thread (about
3 ms for a grade with a 33-point LUT, processor and GLSL extraction, on the 2-core test machine);
:class:`GradeBuilder` keeps the parts it built, so returning to a grade seen before builds nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stagectl.color.ocio import (
    GpuShader,
    Grade,
    ShaderTexture,
    ShaderTexture3D,
    grade_processor,
    look_processor,
)

__all__ = [
    "GRADE_MODES",
    "WALL_FUNCTION",
    "INNER_FUNCTION",
    "CAMERA_FUNCTION",
    "grade_key",
    "part_needed",
    "wall_part_key",
    "inner_part_key",
    "GradeTexture",
    "GradePart",
    "build_grade_part",
    "GradeBuilder",
]

#: how the composite pass applies the operator's grades: ``ocio`` (OpenColorIO functions, this module) or
#: ``shader`` (the composite shader's own uniform-driven code, WALL_CC / INNER_CC and the LUT atlas)
GRADE_MODES = ("ocio", "shader")
WALL_FUNCTION = "stagectl_grade_wall{w}"  #: GLSL function of wall ``w``'s grade (resource prefix ``gw<w>_``)
INNER_FUNCTION = "stagectl_grade_inner"  #: GLSL function of the inner frusta's grade (prefix ``gi_``)
#: GLSL function of the ``k``-th camera look of the inner part (its look, then the inner grade; prefix
#: ``gc<k>_``)
CAMERA_FUNCTION = "stagectl_grade_camera{k}"


def grade_key(cc) -> tuple:
    """What the OCIO function of a :class:`~stagectl.core.features.ColorCorrection` depends on: everything
    but its exposure (white balance gains, CDL, the LUT's content digest)."""
    return (
        tuple(float(v) for v in cc.white_balance),
        tuple(cc.slope), tuple(cc.offset), tuple(cc.power), float(cc.saturation),
        cc.lut.digest if cc.lut is not None else None,
    )


def _wall_targets(wall_grades, wall_looks=()) -> list[tuple[int, object, object]]:
    """``(wall index, ColorCorrection or None, LookSpec or None)`` of every wall with a function, by wall: a
    grade, or a look (a working space alone changes nothing without a grade)."""
    grades = {int(w): cc for w, cc in wall_grades}
    looks = {int(w): spec for w, spec in wall_looks}
    out = []
    for w in sorted(set(grades) | set(looks)):
        cc, spec = grades.get(w), looks.get(w)
        if cc is None and (spec is None or not spec.looks):
            continue
        out.append((w, cc, spec))
    return out


def _camera_looks(camera_looks) -> tuple[tuple[str, object], ...]:
    """``(camera name, LookSpec)`` of the cameras whose function differs from the inner grade's, by name."""
    got = ((str(n), spec) for n, spec in camera_looks if not spec.is_identity)
    return tuple(sorted(got, key=lambda e: e[0]))


def part_needed(kind: str, grades, looks=()) -> bool:
    """Whether the walls' (``kind`` ``"walls"``) or the inner frusta's (``"inner"``) part of these grades and
    looks has a function (see :func:`build_grade_part`)."""
    if kind == "walls":
        return bool(_wall_targets(grades, looks))
    return grades is not None or bool(_camera_looks(looks))


def wall_part_key(wall_grades: Iterable[tuple[int, object]], wall_looks: Iterable[tuple[int, object]] = ()
                  ) -> tuple:
    """The key of the walls' part: ``(("walls",), (wall index, grade_key), ...)`` sorted by wall; a wall with
    a look: ``(wall index, grade_key or None, LookSpec)``."""
    out = []
    for w, cc, spec in _wall_targets(wall_grades, wall_looks):
        gk = None if cc is None else grade_key(cc)
        out.append((w, gk) if spec is None else (w, gk, spec))
    return (("walls",), *out)


def inner_part_key(inner, camera_looks: Iterable[tuple[str, object]] = ()) -> tuple:
    """The key of the inner frusta's part: ``(("inner",), grade_key)``; with camera looks
    ``(("inner",), grade_key or None, ((camera, LookSpec), ...))``."""
    looks = _camera_looks(camera_looks)
    if not looks:
        return (("inner",), grade_key(inner))
    return (("inner",), None if inner is None else grade_key(inner), looks)


@dataclass(frozen=True)
class GradeTexture:
    """One LUT texture of a part's functions: OCIO's texture data (``data``: a
    :class:`~stagectl.color.ocio.ShaderTexture3D` or :class:`~stagectl.color.ocio.ShaderTexture`) and every
    sampler that reads it (equal LUTs of several functions share the texture)."""

    data: ShaderTexture3D | ShaderTexture
    samplers: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.data.name


@dataclass(frozen=True)
class GradePart:
    """The grade functions of the walls (``kind`` ``"walls"``) or of the inner frusta (``"inner"``), ready to
    insert into the composite shader.

    ``key``: :func:`wall_part_key` / :func:`inner_part_key` (the programs' cache key); ``targets``: ``("wall",
    w)`` per graded (or looked) wall in wall order, or ``("inner",)`` (when there is an inner grade) and
    ``("camera", name)`` per camera look; ``look_ids``: camera name -> the number of its function (the
    ``look`` the selector takes); ``shaders``: OCIO's :class:`GpuShader` per target;
    ``text``: every function, then the part's selector (``wall_grade`` or ``inner_grade``; GLSL for
    ``#version 330 core``); ``textures``: the LUT textures, deduplicated; ``exposure_uniforms``: target ->
    the float uniform holding its exposure (stops); ``uniforms``: OCIO's other uniforms with their values
    (set once per program)."""

    kind: str
    key: tuple
    targets: tuple[tuple, ...]
    shaders: dict = field(repr=False, compare=False)
    text: str = field(repr=False, compare=False)
    textures: tuple[GradeTexture, ...] = field(repr=False, compare=False)
    exposure_uniforms: dict = field(repr=False, compare=False)
    uniforms: tuple = field(repr=False, compare=False)
    look_ids: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def walls(self) -> tuple[int, ...]:
        return tuple(t[1] for t in self.targets if t[0] == "wall")

    def exposures(self, grades: Iterable[tuple[tuple, object]]) -> tuple[tuple[str, float], ...]:
        """``(uniform, stops)`` of each target's exposure: ``grades`` ``(target, ColorCorrection)`` of this
        part's structure (the frame's colour corrections)."""
        out = []
        for target, cc in grades:
            name = self.exposure_uniforms.get(target)
            if name is not None:
                out.append((name, float(cc.exposure)))
        return tuple(sorted(out))


def _texture_digest(t: ShaderTexture3D | ShaderTexture) -> str:
    h = hashlib.sha1(np.ascontiguousarray(t.values, dtype=np.float32).tobytes())
    if isinstance(t, ShaderTexture3D):
        h.update(f"3d {t.edge} {t.interpolation}".encode())
    else:
        h.update(f"{t.dimensions}d {t.width} {t.height} {t.channels} {t.interpolation}".encode())
    return h.hexdigest()


def _wall_selector(walls: Sequence[int], shown: frozenset[int] | None) -> str:
    lines = ["// stagectl wall grade selector (stagectl/render/grades.py)",
             "vec3 wall_grade(vec3 c, int w) {", "    vec4 p = vec4(c, 1.0);"]
    if len(walls) == 1 and shown is not None and shown <= {walls[0]}:
        lines.append(f"    p = {WALL_FUNCTION.format(w=walls[0])}(p);  // the only wall shown")
    else:
        for i, w in enumerate(walls):
            kw = "if" if i == 0 else "else if"
            lines.append(f"    {kw} (w == {w}) p = {WALL_FUNCTION.format(w=w)}(p);")
    lines += ["    return p.rgb;", "}"]
    return "\n".join(lines) + "\n"


def _inner_selector(cameras: int, graded: bool) -> str:
    lines = ["// stagectl inner grade selector (stagectl/render/grades.py)",
             "vec3 inner_grade(vec3 c, int look) {", "    vec4 p = vec4(c, 1.0);"]
    for k in range(cameras):
        kw = "if" if k == 0 else "else if"
        lines.append(f"    {kw} (look == {k}) p = {CAMERA_FUNCTION.format(k=k)}(p);")
    if graded:
        lines.append(f"    {'else ' if cameras else ''}p = {INNER_FUNCTION}(p);")
    lines += ["    return p.rgb;", "}"]
    return "\n".join(lines) + "\n"


def _processor(cc, spec):
    """The OCIO processor of a target: ``spec``'s look then the grade ``cc`` (either may be None)."""
    grade = None if cc is None else Grade.from_color_correction(cc, dynamic_exposure=True)
    if spec is None:
        return grade_processor(grade)
    return look_processor(spec, grade)


def build_grade_part(kind: str, grades, *, shown_walls: Iterable[int] | None = None, looks=()) -> GradePart:
    """The OCIO grade functions of the walls (``kind`` ``"walls"``, ``grades`` ``(wall index,
    ColorCorrection)`` pairs, ``looks`` ``(wall index, LookSpec)`` pairs; at least one wall with a grade or a
    look) or of the inner frusta (``"inner"``, ``grades`` one ColorCorrection or None, ``looks`` ``(camera
    name, LookSpec)`` pairs; a grade or a camera look). ``shown_walls``: the wall indices any output shows
    (when that is the one wall with a function, it is applied without a test of the wall id). Raises
    :class:`~stagectl.color.errors.ColorError` if OpenColorIO refuses a grade or a look. No GL: any thread."""
    look_ids: dict[str, int] = {}
    if kind == "walls":
        walls = _wall_targets(grades, looks)
        if not walls:
            raise ValueError("the walls' grade part needs a graded wall or a wall with a look")
        targets = [(("wall", w), cc, spec, WALL_FUNCTION.format(w=w), f"gw{w}_") for w, cc, spec in walls]
        key = wall_part_key(grades, looks)
    elif kind == "inner":
        cams = _camera_looks(looks)
        if grades is None and not cams:
            raise ValueError("the inner frusta's grade part needs a grade or a camera look")
        targets = [] if grades is None else [(("inner",), grades, None, INNER_FUNCTION, "gi_")]
        for k, (name, spec) in enumerate(cams):
            targets.append((("camera", name), grades, spec, CAMERA_FUNCTION.format(k=k), f"gc{k}_"))
            look_ids[name] = k
        key = inner_part_key(grades, looks)
    else:
        raise ValueError(f"grade part kind {kind!r}: expected walls or inner")
    shaders: dict[tuple, GpuShader] = {}
    texts = [f"// stagectl grades ({kind}): OpenColorIO functions (stagectl/render/grades.py)"]
    exposure_uniforms: dict[tuple, str] = {}
    uniforms = []
    textures: dict[str, tuple[ShaderTexture3D | ShaderTexture, list[str]]] = {}
    for target, cc, spec, fn, prefix in targets:
        sh = _processor(cc, spec).gpu_shader(function_name=fn, resource_prefix=prefix)
        shaders[target] = sh
        texts.append(sh.text)
        if sh.exposure_uniform is not None:
            exposure_uniforms[target] = sh.exposure_uniform
        uniforms += [u for u in sh.uniforms if u.name != sh.exposure_uniform]
        for t in (*sh.textures_3d, *sh.textures):
            entry = textures.setdefault(_texture_digest(t), (t, []))
            entry[1].append(t.sampler)
    if kind == "walls":
        shown = frozenset(int(w) for w in shown_walls) if shown_walls is not None else None
        texts.append(_wall_selector([w for w, _, _ in walls], shown))
    else:
        texts.append(_inner_selector(len(look_ids), grades is not None))
    return GradePart(
        kind=kind,
        key=key,
        targets=tuple(t[0] for t in targets),
        shaders=shaders,
        text="\n".join(texts),
        textures=tuple(GradeTexture(t, tuple(smp)) for t, smp in textures.values()),
        exposure_uniforms=exposure_uniforms,
        uniforms=tuple(uniforms),
        look_ids=look_ids,
    )


class GradeBuilder:
    """Builds :class:`GradePart` objects and keeps the last ``keep`` of them by key, so a grade seen before is
    not built again. A build that failed is kept as its :class:`~stagectl.color.errors.ColorError`, raised
    again by :meth:`get` (a bad grade is refused once, not rebuilt every frame). Thread-safe."""

    def __init__(self, *, keep: int = 8, shown_walls: Iterable[int] | None = None) -> None:
        self.keep = int(keep)
        self.shown_walls = frozenset(int(w) for w in shown_walls) if shown_walls is not None else None
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple, GradePart | BaseException] = OrderedDict()
        self.builds = 0  #: parts built (tests and telemetry)

    def get(self, kind: str, grades, looks=()) -> GradePart:
        """The part of these grades and looks (see :func:`build_grade_part`), built now if it is not kept."""
        key = wall_part_key(grades, looks) if kind == "walls" else inner_part_key(grades, looks)
        with self._lock:
            got = self._done.get(key)
            if got is not None:
                self._done.move_to_end(key)
        if got is None:
            try:
                got = build_grade_part(kind, grades, shown_walls=self.shown_walls, looks=looks)
            except Exception as exc:  # kept: a bad grade is reported, not rebuilt each frame
                got = exc
            with self._lock:
                self.builds += 1
                self._done[key] = got
                while len(self._done) > self.keep:
                    self._done.popitem(last=False)
        if isinstance(got, BaseException):
            raise got
        return got
