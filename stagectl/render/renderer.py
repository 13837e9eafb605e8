"""StageRenderer: every GL object of one stage, and a frame loop step that never takes the process down.

``StageRenderer(stage, context)`` builds, with ``context`` current on the calling (render) thread, the scene
renderer, the inner-frustum targets, the outer cube atlas and the canvas compositor
(:mod:`stagectl.render.compositor`). ``render_frame(plan)`` executes a
:class:`~stagectl.render.passes.FramePlan`:

1. inner passes (scene from each camera's pupil with overscan), 2. the outer atlas (when the plan's static
content needs it), 3. every output canvas composited into its *back* canvas framebuffer, 4. read back (sync:
``read_pixels`` into preallocated arrays; async: pixel buffer objects, arrays arrive a frame or two later;
none: on demand), 5. swap: the back canvases become the *front* (the last good frame).

**Robustness.** Any exception (a GL error reported by a pass, a non-finite matrix, a failing hook) inside
steps 1-4 is caught: the GL error queue is drained, GL state reset, the failure counted and described in the
returned :class:`FrameResult`, and the front canvases stay what they were — the last good frame (policy
``"hold"``, the default) or, with policy ``"safe"``, the configured safe image (opaque black unless given).
Before the first good frame the front canvases hold the safe image. The next ``render_frame`` starts afresh.
``KeyboardInterrupt``/``SystemExit`` are not caught.

**Stage features** (:mod:`stagectl.render.features`) travel in the plan (``plan.features``, per-output
patterns, burn-in and blackout) and are drawn by the compositor. When no output shows an inner frustum's image
(chroma key, every output black or a pattern) the inner scene is not rendered at all.

**Programs of console changes** (``compile_worker=True``, as ``stagectl run`` and ``stagectl node`` make it): a
:class:`~stagectl.render.program_worker.ProgramWorker` compiles the programs a change of the features needs (a
grade other than its exposure, light cards or the chroma key turned on) on a context shared with this one, and
the frames go on with the previous features until they are ready (:meth:`CanvasCompositor.frame_features
<stagectl.render.compositor.CanvasCompositor.frame_features>`; :meth:`StageRenderer.program_status` says what
waits, and a change that cannot be compiled is also said in :attr:`StageRenderer.notes`). Without it (the
default: tests, ``stagectl snapshot``) every program compiles on this thread at its first use.

A test hook, :attr:`StageRenderer.fault_hook`, is called with the name of each pass as it starts
(``"begin"``, ``"inner:<camera>"``, ``"outer"``, ``"composite:<output key>"``, ``"readback"``); raising from
it, or making a bad GL call in it, injects a failure in that pass.

Canvases (:meth:`canvases`) are ``(H, W, 4)`` uint8 arrays, row 0 = top, RGB sRGB-encoded, alpha 255,
keyed ``"processor/output"``; they are the renderer's own buffers (valid until the next frame: copy to keep).
An output the stage's ``colour:`` section makes deep (:meth:`canvas_format` ``rgb10_a2`` or ``rgba16``) reads
back at full depth as ``(H, W, 4)`` uint16 codes (0..1023 with alpha 0..3, or 0..65535); :meth:`preview_images`
gives every canvas as an 8-bit sRGB picture for people (deep and HDR ones tone-mapped, docs/colour.md). An
``rgb10_a2`` canvas is read back as GL packs it, one uint32 word a pixel, and kept so: ``canvases(packed=True)``
hands the words to what stores them (the shared-memory sink's pixel format 2) and ``canvases()`` unpacks them
into codes only when asked, once per frame (previews, thumbnails and snapshots, made at a low rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stagectl.color.output import preview_picture
from stagectl.core.errors import StageError
from stagectl.render.canvas import canvas_layouts
from stagectl.render.compositor import (
    BLACK,
    CanvasCompositor,
    InnerTargets,
    OuterAtlas,
    clear_framebuffer,
    to_srgb8,
)
from stagectl.render.content import Content, load_content
from stagectl.render.gl.errors import ContextError, RenderError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.readback import (
    AsyncReadback,
    canvas_dtype,
    pack_rgb10_a2,
    read_canvas,
    unpack_rgb10_a2,
)
from stagectl.render.gl.resources import drain_gl_errors, gl_pass
from stagectl.render.outer import build_outer_pass
from stagectl.render.passes import FramePlan
from stagectl.render.patch_player import PatchPlayer
from stagectl.render.program_worker import ProgramWorker
from stagectl.render.scene import Column
from stagectl.render.tiles import TILE_PX, canvas_tiles
from stagectl.stage.model import Stage

__all__ = ["FAILURE_POLICIES", "READBACK_MODES", "FrameResult", "RenderStats", "StageRenderer"]

READBACK_MODES = ("sync", "async", "none")
FAILURE_POLICIES = ("hold", "safe")


@dataclass
class FrameResult:
    """What happened to one frame.

    ``ok`` False: ``error`` is the message, ``failed_pass`` the pass that raised, and the outputs show
    ``showing`` (``"last good frame N"``, ``"safe image"``). ``failures`` counts failed frames so far.
    ``timings_ns``: per pass (with ``finish_passes=True``: each pass waited for with ``glFinish``) and
    ``"frame"`` for the whole call, nanoseconds.
    """

    frame: int
    ok: bool
    error: str | None = None
    failed_pass: str | None = None
    failures: int = 0
    showing: str = "this frame"
    timings_ns: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class RenderStats:
    """Counters of a renderer: frames asked for, good, failed; the last error and last good frame."""

    frames: int = 0
    good: int = 0
    failed: int = 0
    last_error: str | None = None
    last_good_frame: int | None = None
    failures_by_pass: dict[str, int] = field(default_factory=dict)


class StageRenderer:
    """All GL objects of one stage in one context, and :meth:`render_frame`.

    ``context``: a :class:`~stagectl.render.gl.context.GLContext`, current on this thread (the render thread)
    for the renderer's whole life. ``readback``: ``"sync"`` (default), ``"async"`` or ``"none"``.
    ``failure_policy``: ``"hold"`` (keep the last good canvases) or ``"safe"`` (show the safe image after a
    failure). ``safe_images``: per output key an ``(H, W, 4)`` uint8 image (row 0 = top); default opaque
    black.
    ``outer_face_size`` and ``tile_px`` must match the planner's (defaults: derived from the stage's outer
    resolution; :data:`~stagectl.render.tiles.TILE_PX`). ``columns``: the test world's columns (default
    :data:`~stagectl.render.scene.DEFAULT_COLUMNS`). ``async_depth``: PBOs per output for async readback.
    ``compile_worker``: compile the programs of feature changes on a worker thread (module docstring).
    """

    def __init__(
        self,
        stage: Stage,
        context,
        *,
        readback: str = "sync",
        failure_policy: str = "hold",
        safe_images: dict[str, np.ndarray] | None = None,
        outer_face_size: int | None = None,
        tile_px: int = TILE_PX,
        async_depth: int = 2,
        columns: tuple[Column, ...] | None = None,
        compile_worker: bool = False,
    ) -> None:
        if readback not in READBACK_MODES:
            raise StageError(f"readback must be one of {', '.join(READBACK_MODES)}, got {readback!r}")
        if failure_policy not in FAILURE_POLICIES:
            raise StageError(
                f"failure_policy must be one of {', '.join(FAILURE_POLICIES)}, got {failure_policy!r}"
            )
        self.stage = stage
        self.context = context
        self.resources = context.resources
        self.readback_mode = readback
        self.failure_policy = failure_policy
        self.stats = RenderStats()
        self.fault_hook: Callable[[str], None] | None = None
        self.notes: list[str] = []
        self.layouts = tuple(canvas_layouts(stage))
        self._closed = False
        self.scene: Content | None = None
        self.inner: InnerTargets | None = None
        self.outer: OuterAtlas | None = None
        self.compositor: CanvasCompositor | None = None
        #: compiles the programs of console changes off this thread (``compile_worker=True``; docs/colour.md)
        self.worker: ProgramWorker | None = None
        #: the on-wall colour patch player (console color.patches; :mod:`stagectl.render.patch_player`)
        self.patches = PatchPlayer()
        self._async: dict[str, AsyncReadback] = {}
        try:
            # the stage's content (procedural world, glTF scene, 360 plate or video) for inner and outer
            self.scene = load_content(stage.render.outer.content, self.resources, stage.path.parent,
                                      label="scene", columns=None if columns is None else tuple(columns))
            self.notes.append(f"content: {self.scene.describe()}")
            self.inner = InnerTargets(self.resources)
            self.outer = OuterAtlas(self.resources, build_outer_pass(stage, face_size=outer_face_size))
            self.tiles = tuple(canvas_tiles(L, tile_px) for L in self.layouts)
            from stagectl.color.output import output_encodes  # the stage's colour section (docs/colour.md)

            self.keys = [L.key for L in self.layouts]
            if compile_worker:
                try:
                    self.worker = ProgramWorker(context, self.resources)
                except ContextError as exc:  # no shared context here: grades compile on this thread, as before
                    self.notes.append(f"compile worker: none ({exc}); a grade change compiles in its frame")
            self.compositor = CanvasCompositor(self.resources, self.tiles,
                                               encodes=output_encodes(stage, self.keys), worker=self.worker)
            self._front = {k: 0 for k in self.keys}  # index of the front (last good) canvas framebuffer
            self._safe: dict[str, np.ndarray] = {}
            for L in self.layouts:
                w, h = L.canvas
                img = None if safe_images is None else safe_images.get(L.key)
                dtype = canvas_dtype(self.canvas_format(L.key))
                if img is None:  # opaque black at the canvas's depth and code range
                    img = np.empty((h, w, 4), dtype=dtype)
                    top = {"rgba8": 255, "rgb10_a2": 1023, "rgba16": 65535}[self.canvas_format(L.key)]
                    img[...] = np.rint(np.asarray(self.compositor.black(L.key)) * top).astype(dtype)
                    img[..., 3] = 3 if top == 1023 else top
                img = np.ascontiguousarray(img, dtype=dtype)
                if img.shape != (h, w, 4):
                    raise StageError(f"safe image for {L.key}: shape {img.shape} != ({h}, {w}, 4)")
                self._safe[L.key] = img
            # canvas arrays: front = last good frame (what canvases() returns), back = being read this frame
            self._arrays = {k: self._safe[k].copy() for k in self.keys}
            self._back_arrays = {k: self._safe[k].copy() for k in self.keys}
            # rgb10_a2 canvases are read back as packed words (front and back); their codes in _arrays are
            # unpacked from the front words on demand: _unpacked holds the keys whose codes are current
            self._packed = [k for k in self.keys if self.canvas_format(k) == "rgb10_a2"]
            self._safe_words = {k: pack_rgb10_a2(self._safe[k]) for k in self._packed}
            self._words = {k: self._safe_words[k].copy() for k in self._packed}
            self._back_words = {k: self._safe_words[k].copy() for k in self._packed}
            self._unpacked = set(self._packed)
            self._arrays_frame: int | None = None
            self._arrays_stale = False  # readback "none": front arrays not read since the last swap
            for k in self.keys:
                self._show_safe_gl(k, both=True)
            if readback == "async":
                for i, L in enumerate(self.layouts):
                    w, h = L.canvas
                    self._async[L.key] = AsyncReadback(
                        self.resources, w, h, depth=async_depth, label=f"canvas{i}.readback",
                        fmt=self.canvas_format(L.key), packed=True,
                    )
        except BaseException:
            self.release()
            raise

    # ------------------------------------------------------------------ queries

    def canvases(self, *, packed: bool = False) -> dict[str, np.ndarray]:
        """Output key -> ``(H, W, 4)`` canvas of the last good frame (row 0 = top; the safe image before the
        first): uint8, or uint16 codes for a deep output. With async readback: the newest frame whose copy has
        arrived (call :meth:`flush` to wait for all). The arrays are the renderer's: copy what you keep.

        ``packed``: ``rgb10_a2`` canvases as their ``(H, W)`` uint32 ``GL_UNSIGNED_INT_2_10_10_10_REV`` words,
        as read back (the shared-memory sink's pixel format 2: no unpacking, no repacking); the others as
        without it. Without ``packed`` those words are unpacked into codes here, once per frame."""
        if self.readback_mode == "none" and self._arrays_stale:
            for k in self.keys:
                fb = self.compositor.outputs[k].framebuffers[self._front[k]]
                if k in self._words:
                    read_canvas(fb, "rgb10_a2", out=self._words[k], packed=True)
                    self._unpacked.discard(k)
                else:
                    read_canvas(fb, self.canvas_format(k), out=self._arrays[k])
            self._arrays_stale = False
        if packed:
            return {k: self._words.get(k, a) for k, a in self._arrays.items()}
        for k in self._packed:
            if k not in self._unpacked:
                unpack_rgb10_a2(self._words[k], out=self._arrays[k])
                self._unpacked.add(k)
        return dict(self._arrays)

    @property
    def canvases_frame(self) -> int | None:
        """The frame number the arrays of :meth:`canvases` show (None: the safe image)."""
        return self._arrays_frame

    def program_status(self) -> dict:
        """Programs of console changes: :meth:`CanvasCompositor.program_status
        <stagectl.render.compositor.CanvasCompositor.program_status>` (worker on/off, a pending change, the last
        one that could not be made, compile counts)."""
        return self.compositor.program_status()

    def canvas_format(self, key: str) -> str:
        """Output ``key``'s canvas format: ``rgba8`` (uint8 canvases), ``rgb10_a2`` or ``rgba16`` (uint16 codes)."""
        return self.compositor.canvas_format(key)

    def preview_images(self, width: int | None = None) -> dict[str, np.ndarray]:
        """Output key -> ``(H, W, 4)`` uint8 sRGB picture of :meth:`canvases` for people (PNG previews,
        thumbnails): 8-bit sRGB canvases as they are, other encodes tone-mapped for an sRGB screen by
        :meth:`stagectl.color.output.OutputEncode.preview_rgba8` (not the output's signal). ``width``: scaled
        down to at most that many pixels wide first (area filter on the codes, aspect kept; console
        thumbnails), so the tone map runs on the small picture."""
        return {k: preview_picture(self.compositor.outputs[k].encode, img, width)
                for k, img in self.canvases().items()}

    def front_framebuffer(self, key: str):
        """The canvas framebuffer holding the last good frame of output ``key`` (for presentation)."""
        return self.compositor.outputs[key].framebuffers[self._front[key]]

    def inner_image(self, camera: str, *, linear: bool = False) -> np.ndarray:
        """The camera's current inner-frustum image, row 0 = top: ``(H, W, 4)`` uint8 sRGB-encoded (default)
        or float32 linear light (``linear=True``). Raises KeyError for a camera never rendered."""
        t = self.inner.targets[camera]
        img = t.read(dtype=np.float32)
        return img if linear else to_srgb8(img)

    # ------------------------------------------------------------------ the frame

    def _hook(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    def _reset_gl_state(self) -> list[str]:
        errors = drain_gl_errors()
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        GL.glUseProgram(0)
        GL.glBindVertexArray(0)
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glDisable(GL.GL_BLEND)
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        return errors + drain_gl_errors()

    def render_frame(self, plan: FramePlan, *, finish_passes: bool = False) -> FrameResult:
        """Render ``plan``; never raises for a failure inside the frame (see the module docstring).

        ``plan`` comes from a :class:`~stagectl.render.plan.FramePlanner` of the same stage (same tile size and
        outer face size as this renderer); it lists every output.

        ``finish_passes``: wait for each pass with ``glFinish`` and time it (``FrameResult.timings_ns``); off,
        only ``"frame"`` (the whole call) is timed and GL may still be working when this returns (except for
        sync readback, which waits for the canvases).
        """
        if self._closed:
            raise StageError("StageRenderer used after release()")
        clock = time.perf_counter_ns
        t_frame = clock()
        timings: dict[str, int] = {}
        self.stats.frames += 1
        current = "begin"

        def timed(name: str, t0: int) -> int:
            if finish_passes:
                GL.glFinish()
                t1 = clock()
                timings[name] = timings.get(name, 0) + (t1 - t0)
                return t1
            return t0

        try:
            self._reset_gl_state()
            self._hook(current)
            self._check_plan(plan)
            self.compositor.use_calibration(plan.outputs)  # color.calibration's A/B choice, from this frame on
            # the plan's features, or while the worker compiles their programs the newest ones that have them
            features = self.compositor.frame_features(plan.features, camera_count=plan.uniforms.camera_count,
                                                      static_outer=plan.outer.static)
            self.notes.extend(self.compositor.take_notes())
            t0 = clock()
            blackout = plan.flags.blackout
            if not blackout:
                needed = plan.inner_needed  # of the features drawn (the chroma key may still be waiting)
                if features is not plan.features:
                    needed = any(o.composes and o.layers for o in plan.outputs) and not (
                        features is not None and features.key_on)
                for p in plan.inner:
                    current = f"inner:{p.camera}"
                    self._hook(current)
                    if not needed:
                        # no output shows it (chroma key, patterns, blackout): not rendered; a frozen pass
                        # re-renders once it is shown again
                        self.inner.target(p.camera, p.resolution)
                        self.inner.invalidate(p.camera)
                        t0 = clock()
                    elif self.inner.render(p, self.scene, timecode_frame=plan.frame):
                        t0 = timed(current, t0)
                    else:
                        t0 = clock()
                current = "outer"
                self._hook(current)
                if self.outer.render(plan.outer, self.scene, timecode_frame=plan.frame):
                    t0 = timed(current, t0)
                else:
                    t0 = clock()
                if plan.outer.static:
                    current = "outer:canvases"
                    if self.compositor.update_cache(self.outer.key, plan.uniforms, self.outer.texture,
                                                    features=features):
                        t0 = timed(current, t0)
                    else:
                        t0 = clock()
                else:
                    self.compositor.invalidate_cache()
            if blackout:
                for out in plan.outputs:
                    current = f"composite:{out.key}"
                    self._hook(current)
                    with gl_pass("composite", out.key):
                        clear_framebuffer(self._back(out.key), self.compositor.black(out.key))
                    self.compositor.mark_dirty(out.key, 1 - self._front[out.key])
                    t0 = timed(current, t0)
            elif plan.outputs:
                current = "composite"
                layers = plan.outputs[0].layers
                textures = [self.inner.targets[plan.inner[i].camera].color for i in layers]
                try:
                    self.compositor.begin(plan.uniforms, textures, self.outer.texture,
                                          static_outer=plan.outer.static, features=features)
                    for out in plan.outputs:
                        current = f"composite:{out.key}"
                        self._hook(current)
                        if self.patches.covers(out, plan.frame):  # color.patches draws this canvas whole
                            continue
                        self.compositor.draw(out, 1 - self._front[out.key])
                        t0 = timed(current, t0)
                finally:
                    self.compositor.end()
            if self.patches.playing:  # color.patches: the sequence's codes over its outputs' canvases
                current = "patches"
                self._hook(current)
                for key in self.patches.draw(plan, self._back):
                    self.compositor.mark_dirty(key, 1 - self._front[key])  # the composition returns whole
                t0 = timed(current, t0)
            current = "readback"
            self._hook(current)
            self._readback_back(plan.frame)
            t0 = timed(current, t0)
            # everything succeeded: the back canvases become the front (the last good frame)
            for k in self.keys:
                self._front[k] = 1 - self._front[k]
            if self.readback_mode == "sync":
                self._arrays, self._back_arrays = self._back_arrays, self._arrays
                self._words, self._back_words = self._back_words, self._words
                self._unpacked.clear()
                self._arrays_frame = plan.frame
            elif self.readback_mode == "none":
                self._arrays_stale = True
                self._arrays_frame = plan.frame
        except Exception as exc:  # noqa: BLE001 - a frame's failure must never stop the process
            return self._failed(plan, current, exc, timings, clock() - t_frame)
        self.stats.good += 1
        self.stats.last_good_frame = plan.frame
        timings["frame"] = clock() - t_frame
        return FrameResult(plan.frame, True, failures=self.stats.failed, timings_ns=timings)

    def _back(self, key: str):
        return self.compositor.outputs[key].framebuffers[1 - self._front[key]]

    def _check_plan(self, plan: FramePlan) -> None:
        for p in plan.inner:
            if not p.finite():
                raise RenderError(f"inner:{p.camera}", p.camera, "non-finite view-projection matrix")
        if not np.all(np.isfinite(plan.uniforms.inner_vp)):
            raise RenderError("composite", "uniforms", "non-finite view-projection matrix")
        keys = [o.key for o in plan.outputs]
        if sorted(keys) != sorted(self.keys):
            raise RenderError("composite", ",".join(keys), "the plan's outputs are not the renderer's",
                              detail=f"expected {', '.join(self.keys)}")
        if plan.outer.atlas_size != self.outer.target.size:
            raise RenderError("outer", self.outer.target.label, "the plan's atlas size is not the renderer's")

    def _readback_back(self, frame: int) -> None:
        """Copy the back canvases to numpy (sync) or queue their copy (async)."""
        if self.readback_mode == "sync":
            for k in self.keys:
                fb = self.compositor.outputs[k].framebuffers[1 - self._front[k]]
                if k in self._back_words:  # rgb10_a2: the packed words, unpacked only on demand (canvases())
                    read_canvas(fb, "rgb10_a2", out=self._back_words[k], packed=True)
                else:
                    read_canvas(fb, self.canvas_format(k), out=self._back_arrays[k])
        elif self.readback_mode == "async":
            for k in self.keys:
                rb = self._async[k]
                self._collect_async(k, wait=False)
                if rb.pending >= rb.depth:
                    self._collect_async(k, wait=True)
                rb.start(frame, self.compositor.outputs[k].framebuffers[1 - self._front[k]])

    def _collect_async(self, key: str, *, wait: bool) -> None:
        rb = self._async[key]
        words = key in self._words  # rgb10_a2: the ring hands back packed words
        while rb.pending:
            into = self._back_words[key] if words else self._back_arrays[key]
            got = rb.finish(out=into) if wait else rb.poll(out=into)
            if got is None:
                return
            frame_id, _ = got
            if words:
                self._words[key], self._back_words[key] = self._back_words[key], self._words[key]
                self._unpacked.discard(key)
            else:
                self._arrays[key], self._back_arrays[key] = self._back_arrays[key], self._arrays[key]
            self._arrays_frame = frame_id
            if wait:
                return

    def flush(self) -> None:
        """Async readback: wait for every queued canvas copy (canvases() then shows the newest good frame)."""
        for k, rb in self._async.items():
            while rb.pending:
                self._collect_async(k, wait=True)

    def _failed(
        self, plan: FramePlan, where: str, exc: Exception, timings: dict, elapsed_ns: int
    ) -> FrameResult:
        pass_name = where.split(":", 1)[0]
        message = f"{type(exc).__name__}: {exc}"
        try:
            self._reset_gl_state()
        except Exception as again:  # noqa: BLE001 - a lost context: report, keep going
            message += f" (and resetting GL state failed: {again})"
        for k in self.keys:  # whatever the failing pass left in a back canvas is cleared before reuse
            self.compositor.mark_dirty(k, 1 - self._front[k])
        if pass_name == "outer":
            self.outer.invalidate()
            self.compositor.invalidate_cache()
        if pass_name == "inner":
            self.inner.invalidate(where.split(":", 1)[1] if ":" in where else None)
        showing = (
            f"last good frame {self.stats.last_good_frame}" if self.stats.last_good_frame is not None
            else "safe image"
        )
        if self.failure_policy == "safe":
            showing = "safe image"
            try:
                for k in self.keys:
                    self._show_safe_gl(k)
                    self._arrays[k][...] = self._safe[k]
                    if k in self._words:
                        self._words[k][...] = self._safe_words[k]
                        self._unpacked.add(k)
                self._arrays_frame = None
                self._arrays_stale = False
            except Exception as again:  # noqa: BLE001
                message += f" (and showing the safe image failed: {again})"
                self._reset_gl_state()
        self.stats.failed += 1
        self.stats.last_error = message
        self.stats.failures_by_pass[pass_name] = self.stats.failures_by_pass.get(pass_name, 0) + 1
        timings["frame"] = elapsed_ns
        return FrameResult(plan.frame, False, message, where, self.stats.failed, showing, timings)

    def _show_safe_gl(self, key: str, *, both: bool = False) -> None:
        """Put the safe image into the front canvas framebuffer (``both``: into both)."""
        o = self.compositor.outputs[key]
        img = self._safe[key]
        black = img.dtype == np.uint8 and bool(np.all(img[..., :3] == 0) and np.all(img[..., 3] == 255))
        fbs = o.framebuffers if both else [o.framebuffers[self._front[key]]]
        with gl_pass("safe", key):
            for fb in fbs:
                if black:
                    clear_framebuffer(fb, BLACK)
                else:
                    GL.glActiveTexture(GL.GL_TEXTURE0)
                    fb.color.upload(img)
                # the canvas no longer holds what the compositor drew (cached tiles, a pattern): cleared and
                # redrawn whole at its next use (and unmapped pixels are black again)
                self.compositor.mark_dirty(key, o.framebuffers.index(fb))

    # ------------------------------------------------------------------ content

    def set_content(self, content) -> str:
        """Replace the scene content (render thread, context current): ``content`` as the stage file's
        ``render.outer.content`` (``"procedural"`` or a path; relative paths from the stage file's folder).
        The new content is loaded first: a content that cannot be loaded raises :class:`StageError` and the
        current one stays. The outer atlas, its cached canvases and the inner images are redrawn next frame.
        Returns the new content's description. The operator picks it (``content.select``, the operator state),
        so a glTF's buffers and images must stay inside the console's content folder (``console.paths``)."""
        if self._closed:
            raise StageError("StageRenderer used after release()")
        folder = self.stage.console.paths.folder("content", self.stage.path.parent)
        new = load_content(content, self.resources, self.stage.path.parent, label="scene", confine_to=folder)
        old, self.scene = self.scene, new
        self.outer.invalidate()
        self.compositor.invalidate_cache()
        self.inner.invalidate()
        if old is not None:
            old.release()
        self.notes.append(f"content: {new.describe()}")
        return new.describe()

    # ------------------------------------------------------------------ teardown

    def release(self) -> None:
        """Free every GL object of this renderer (render thread, context current); idempotent."""
        for rb in self._async.values():
            rb.release()
        self._async.clear()
        for part in (self.compositor, self.outer, self.inner, self.scene):
            if part is not None:
                part.release()
        self.compositor = self.outer = self.inner = self.scene = None
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        self._closed = True

    def __enter__(self) -> StageRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
