"""The frame planner: what the renderer draws this frame, as plain data built without OpenGL.

A :class:`FramePlanner` is made once per stage. Every frame it takes each camera's state (pose, lens values;
:mod:`stagectl.render.camera` makes it from a tracked pose) and the operator flags and returns a
:class:`~stagectl.render.passes.FramePlan`, which the GL backend
(:class:`stagectl.render.renderer.StageRenderer`) executes without further decisions (the data types live in
:mod:`stagectl.render.passes`):

* per camera an :class:`~stagectl.render.passes.InnerPass`: the inner-frustum render from the entrance pupil —
  ``V``, ``P`` (with the stage's overscan), ``VP = P @ V``, the target resolution, the soft edge, the cabinets
  it covers;
* one :class:`~stagectl.render.passes.OuterPass`: the scene for the rest of the wall, rendered from the
  stage's outer viewpoint into a **cube atlas** (:mod:`stagectl.render.outer`: one square tile per cube face,
  each face a 90-degree view with a one-texel gutter), only the faces some wall can be seen through, and
  sampled by direction ``stage position - viewpoint``;
* per output an :class:`~stagectl.render.passes.OutputPass`: the canvas size, which
  :class:`~stagectl.render.canvas.CanvasLayout` to draw (cut into
  :class:`~stagectl.render.tiles.CanvasTiles`), which tiles the inner frusta touch this frame (only those are
  composited; :func:`~stagectl.render.tiles.classify_tiles`), and the
  :class:`~stagectl.render.passes.CompositeUniforms` of the composition (:mod:`stagectl.render.uniforms`).

Frames and units (docs/conventions.md): stage metres, Z up; ``T_a_b`` maps frame b into frame a; matrices are
row-major float64 acting on column vectors (the GL code uploads them transposed); ``V`` maps stage to the GL
eye (x right, y up, looking down -z); clip space and NDC are OpenGL's; lens values in mm (principal point +x
right, +y up on the sensor), the entrance-pupil offset in metres along the optical axis; overscan in percent
per side (left, right, bottom, top); pixels ``(w, h)``. GL viewports are in GL window coordinates (origin
bottom-left, the atlas is never read back, so no row flip happens there).

The planner runs the per-frame CPU maths of each camera with the Numba :class:`FrustumWorkspace` and copies
the results it keeps, so a plan stays valid after the next frame is planned. A camera state with a non-finite
pose or lens value is refused with :class:`~stagectl.render.passes.PlanError` (the live loop keeps the
previous frame).

**Stage features** (:mod:`stagectl.core.features`): ``plan(..., features=FeatureState(...))`` (default: the
planner's ``features``) adds :class:`~stagectl.render.passes.FeatureUniforms` to the plan
(:func:`~stagectl.render.uniforms.feature_uniforms`: light cards, colour correction, chroma key and markers as
uniform arrays, the shader ``defines`` they need: none when every feature is off, so the composition is
exactly the plain one), and per output a :class:`~stagectl.render.passes.PatternPass` (a test pattern or the
one-frame white flash, drawn instead of the composition) and a :class:`~stagectl.render.passes.BurnInPass`.
Per-output blackout and the :class:`~stagectl.core.features.FreezeFrustum` are resolved here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from stagectl.core.camera import CameraState, OperatorFlags
from stagectl.core.features import MAX_WALLS, FeatureState, OutputPattern
from stagectl.core.fields import FeatureError
from stagectl.render.canvas import CanvasLayout, canvas_layouts
from stagectl.render.frustum import FrustumWorkspace, compute_camera_projection
from stagectl.render.outer import build_outer_pass
from stagectl.render.passes import (
    FAR_M,
    MAX_BURN_IN,
    MAX_CAMERAS,
    NEAR_M,
    BurnInPass,
    FeatureUniforms,
    FramePlan,
    InnerPass,
    OutputPass,
    PatternPass,
    PlanError,
)
from stagectl.render.patterns import (
    BURN_IN_CHARS,
    CellAtlas,
    aruco_atlas,
    burn_in_layout,
    burn_in_lines,
    cabinet_id_atlas,
    text_bitmap,
)
from stagectl.render.tiles import TILE_PX, CanvasTiles, canvas_tiles, classify_tiles, tiles_in_rect
from stagectl.render.uniforms import composite_uniforms, feature_uniforms
from stagectl.stage.model import Stage

__all__ = ["FramePlanner"]

class FramePlanner:
    """Builds a :class:`FramePlan` per frame for one stage (pure CPU; no GL).

    ``inner_resolution`` overrides the stage's ``render.inner.resolution`` (tests, previews);
    ``outer_face_size`` the cube face size derived from ``render.outer.resolution``; ``near``/``far`` (m) are
    the planes of every projection. ``outer_static``: the outer content does not change between frames (the
    procedural world), so its atlas and outer-only canvases are kept; False renders them every frame (animated
    content). ``tile_px``: canvas tile size; ``cull_tiles`` False composites every tile fully every frame (a
    reference and benchmark mode). The static parts (layouts, tiles, the outer atlas) are built here, once.
    """

    def __init__(
        self,
        stage: Stage,
        *,
        inner_resolution: tuple[int, int] | None = None,
        outer_face_size: int | None = None,
        near: float = NEAR_M,
        far: float = FAR_M,
        outer_static: bool = True,
        tile_px: int = TILE_PX,
        cull_tiles: bool = True,
        features: FeatureState | None = None,
    ) -> None:
        self.stage = stage
        self.near = float(near)
        self.far = float(far)
        res = inner_resolution if inner_resolution is not None else stage.render.inner.resolution
        self.inner_resolution = (int(res[0]), int(res[1]))
        if min(self.inner_resolution) < 1:
            raise PlanError(f"inner resolution {self.inner_resolution} must be positive")
        self.overscan_pct = tuple(float(v) for v in stage.render.inner.overscan_percent)
        self.soft_edge = float(stage.render.inner.soft_edge)
        self.cull_tiles = bool(cull_tiles)
        self.layouts: tuple[CanvasLayout, ...] = tuple(canvas_layouts(stage))
        self.tiles: tuple[CanvasTiles, ...] = tuple(canvas_tiles(L, tile_px) for L in self.layouts)
        self._corners_h = []
        for t in self.tiles:
            c = t.stage_xyz.reshape(-1, 3)
            self._corners_h.append(np.vstack([c.T, np.ones(c.shape[0])]))
        self.outer = build_outer_pass(
            stage, face_size=outer_face_size, near=self.near, far=self.far, static=outer_static
        )
        self._workspaces: dict[str, FrustumWorkspace] = {}
        self._last_inner: tuple[InnerPass, ...] = ()
        #: the features used when plan() is given none (the stage file's, when the loader reads them)
        self.features: FeatureState = (
            features if features is not None else getattr(stage.render, "features", None) or FeatureState()
        )
        self._fu: tuple[FeatureState, FeatureUniforms] | None = None
        self._atlases: dict[str, CellAtlas] = {}
        self._patterns: dict[tuple, PatternPass] = {}
        self._burn_geom: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._frozen_at: dict[str, InnerPass] = {}  # per camera: the pass a FreezeFrustum keeps
        self._pattern_seen: dict[str, str] = {}  # per output: the pattern kind of the last plan
        self._flash_armed: frozenset[str] | None = None  # outputs to flash in the next plan (empty: all)

    def _workspace(self, name: str) -> FrustumWorkspace:
        ws = self._workspaces.get(name)
        if ws is None:
            ws = self._workspaces[name] = FrustumWorkspace(self.stage.walls, near=self.near, far=self.far)
        return ws

    def inner_pass(self, cam: CameraState) -> InnerPass:
        """The inner pass of one camera state (runs the frustum kernels; copies what it keeps)."""
        if not cam.finite():
            raise PlanError(f"camera {cam.name!r}: non-finite pose or lens values; frame not planned")
        ws = self._workspace(cam.name)
        lens = cam.lens
        px, py = lens.principal_point_mm
        sw, sh = cam.sensor_mm
        overscan = self.overscan_pct if cam.overscan_pct is None else tuple(float(v) for v in cam.overscan_pct)
        ws.update(cam.T_stage_camera, lens.focal_mm, sw, sh, px, py, overscan, lens.pupil_offset_m)
        T_camera_pupil = np.eye(4)
        T_camera_pupil[1, 3] = lens.pupil_offset_m
        P0 = compute_camera_projection(
            lens.focal_mm, sw, sh, px, py, (0.0, 0.0, 0.0, 0.0), self.near, self.far
        )
        V = ws.V.copy()
        return InnerPass(
            camera=cam.name,
            resolution=self.inner_resolution,
            T_stage_camera=np.array(cam.T_stage_camera, dtype=np.float64),
            T_stage_pupil=cam.T_stage_camera @ T_camera_pupil,
            V=V,
            P=ws.P.copy(),
            VP=ws.VP.copy(),
            P_unscanned=P0,
            VP_unscanned=P0 @ V,
            overscan_pct=overscan,  # type: ignore[arg-type]
            soft_edge=self.soft_edge if cam.soft_edge is None else float(cam.soft_edge),
            lens=lens,
            sensor_mm=(float(sw), float(sh)),
            near=self.near,
            far=self.far,
            covered=tuple(ws.wall_covered(i).astype(bool) for i in range(len(self.stage.walls))),
        )

    def trigger_white_flash(self, outputs: Sequence[str] | None = None) -> None:
        """Flash ``outputs`` (keys; None: every output) white in the next planned frame only."""
        keys = frozenset(outputs) if outputs is not None else frozenset()
        unknown = keys - {L.key for L in self.layouts}
        if unknown:
            raise PlanError(f"no output {sorted(unknown)[0]!r}; outputs: {', '.join(L.key for L in self.layouts)}")
        self._flash_armed = keys if self._flash_armed is None or not keys else self._flash_armed | keys

    def plan(
        self,
        cameras: Sequence[CameraState],
        flags: OperatorFlags = OperatorFlags(),
        frame: int = 0,
        features: FeatureState | None = None,
    ) -> FramePlan:
        """The plan of one frame: cameras in composition order (later over earlier); ``features`` (default:
        :attr:`features`) the stage features of this frame."""
        if len(cameras) > MAX_CAMERAS:
            raise PlanError(f"{len(cameras)} cameras: the composition handles at most {MAX_CAMERAS}")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise PlanError(f"camera names must be unique in a frame, got {names}")
        fs = self.features if features is None else features
        fu = self.feature_uniforms(fs)
        freeze = fs.freeze
        if flags.freeze_inner and self._last_inner:
            inner = tuple(_frozen(p) for p in self._last_inner)
        else:
            passes = []
            for c in cameras:
                kept = self._frozen_at.get(c.name) if freeze is not None and freeze.applies(c.name) else None
                if kept is not None:
                    passes.append(replace(kept, frozen=bool(freeze.keep_image)))
                else:
                    p = self.inner_pass(c)
                    self._frozen_at[c.name] = p
                    passes.append(p)
            inner = tuple(passes)
            self._last_inner = inner
        layers = tuple(range(len(inner))) if flags.inner_enabled else ()
        uniforms = composite_uniforms([inner[i] for i in layers], self.outer)
        armed, self._flash_armed = self._flash_armed, None
        outputs = []
        for i, (L, tiles) in enumerate(zip(self.layouts, self.tiles)):
            pat = fs.pattern_of(L.key)
            kind = pat.kind if pat is not None else "none"
            flash = (kind == "white_flash" and self._pattern_seen.get(L.key) != "white_flash") or (
                armed is not None and (not armed or L.key in armed))
            self._pattern_seen[L.key] = kind
            blackout = flags.blackout or L.key in fs.blackout
            pattern = burn = None
            if not blackout:
                if flash:
                    pattern = self._pattern_pass(OutputPattern("solid", (1.0, 1.0, 1.0)), flash=True)
                elif kind not in ("none", "white_flash"):
                    pattern = self._pattern_pass(pat)
                if pat is not None and pat.burn_in:
                    burn = self._burn_in(i, pat, frame)
            touched = np.zeros(tiles.count, dtype=bool)
            full = np.zeros(tiles.count, dtype=bool)
            if blackout or pattern is not None:
                pass
            elif layers and not self.cull_tiles:
                touched[:] = True  # every tile through the full composition (reference / benchmark mode)
            else:
                for k, li in enumerate(layers):
                    t, f = classify_tiles(self._corners_h[i], inner[li].VP, inner[li].soft_edge)
                    touched |= t
                    if k == len(layers) - 1:
                        full = f
            outputs.append(OutputPass(
                key=L.key,
                layout_index=i,
                canvas=(int(L.canvas[0]), int(L.canvas[1])),
                layers=layers,
                blackout=blackout,
                uniforms=uniforms,
                touched=touched,
                full=np.flatnonzero(full & touched),
                blend=np.flatnonzero(touched & ~full),
                pattern=pattern,
                burn_in=burn,
                calibrated=L.key not in fs.uncalibrated,
            ))
        return FramePlan(
            frame=int(frame), inner=inner, outer=self.outer, outputs=tuple(outputs), flags=flags,
            uniforms=uniforms, layouts=self.layouts, tiles=self.tiles, features=fu,
        )

    # ------------------------------------------------------------------ features

    def feature_uniforms(self, fs: FeatureState) -> FeatureUniforms:
        """:func:`feature_uniforms` of ``fs`` for this stage (kept while ``fs`` does not change)."""
        if self._fu is not None and (self._fu[0] is fs or self._fu[0] == fs):
            return self._fu[1]
        fu = feature_uniforms(self.stage, fs, [L.key for L in self.layouts])
        self._fu = (fs, fu)
        return fu

    def _wall_info(self) -> np.ndarray:
        info = np.zeros((MAX_WALLS, 4), dtype=np.float32)
        for w, wall in enumerate(self.stage.walls[:MAX_WALLS]):
            info[w] = (*wall.raster, *wall.cabinet.pixels)
        return info

    def atlas(self, kind: str) -> CellAtlas:
        """The cell atlas of the ``aruco`` or ``cabinet_id`` pattern (built once)."""
        a = self._atlases.get(kind)
        if a is None:
            try:
                a = aruco_atlas(self.stage) if kind == "aruco" else cabinet_id_atlas(self.stage)
            except FeatureError as exc:
                raise PlanError(str(exc)) from None
            self._atlases[kind] = a
        return a

    def _pattern_pass(self, pat: OutputPattern, *, flash: bool = False) -> PatternPass:
        key = (pat.kind, pat.color, pat.squares, flash)
        p = self._patterns.get(key)
        if p is not None:
            return p
        if len(self.stage.walls) > MAX_WALLS:
            raise PlanError(f"test patterns handle at most {MAX_WALLS} walls; the stage has {len(self.stage.walls)}")
        atlas = place = geom = None
        if pat.kind in ("aruco", "cabinet_id"):
            atlas = self.atlas(pat.kind)
            place = np.zeros((MAX_WALLS, 4), dtype=np.float32)
            geom = np.zeros((MAX_WALLS, 4), dtype=np.float32)
            for w in range(len(self.stage.walls)):
                place[w] = (*atlas.origin[w], *atlas.offset[w])
                geom[w] = (*atlas.cell, atlas.scale[w], 0.0)
        p = PatternPass(
            kind=pat.kind, key=None if flash else (pat.kind, pat.color, pat.squares),
            color=np.asarray(pat.color, dtype=np.float32), squares=pat.squares, wall_info=self._wall_info(),
            atlas=atlas, cell_place=place, cell_geom=geom, flash=flash,
        )
        self._patterns[key] = p
        return p

    def _burn_in(self, index: int, pat: OutputPattern, frame: int) -> BurnInPass:
        lines = burn_in_lines(frame, pat.burn_in, self.stage.frame_rate)
        bitmap = text_bitmap(lines, BURN_IN_CHARS)
        gkey = (index, bitmap.shape)
        geom = self._burn_geom.get(gkey)
        if geom is None:
            L, tiles = self.layouts[index], self.tiles[index]
            boxes = np.zeros((MAX_BURN_IN, 4), dtype=np.float32)
            place = np.zeros((MAX_BURN_IN, 4), dtype=np.float32)
            hit = np.zeros(tiles.count, dtype=bool)
            for mi, m in enumerate(L.mappings[:MAX_BURN_IN]):
                wi = L.wall_indices[m.wall]
                pw, ph = self.stage.walls[wi].cabinet.pixels
                x, y = m.rect[0], m.rect[1]
                boxes[mi] = (x, y, pw, ph)
                place[mi] = (*burn_in_layout((pw, ph), bitmap.shape), 0.0)
                hit |= tiles_in_rect(tiles, wi, (x, y, x + pw, y + ph)) & (tiles.mapping_index == mi)
            geom = self._burn_geom[gkey] = (boxes, place, np.flatnonzero(hit))
        return BurnInPass(lines, bitmap, *geom)


def _frozen(p: InnerPass) -> InnerPass:
    return replace(p, frozen=True)
