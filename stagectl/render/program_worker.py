"""Compiling GL programs off the render thread: a worker thread with its own context in the renderer's share group.

A console change that needs a new program (an OpenColorIO grade, docs/colour.md *Grades*) must never stall a
frame. :class:`ProgramWorker` owns a worker context (:meth:`GLContext.shared_context
<stagectl.render.gl.context.GLContext.shared_context>`: EGL ``share_with``, or a hidden GLFW window in the
share group) made current on its own thread. For each :class:`ProgramJob` it

1. compiles and links the program (:meth:`ResourceRegistry.program
   <stagectl.render.gl.resources.ResourceRegistry.program>`, the driver's log in a
   :class:`~stagectl.render.gl.errors.ShaderError` when it refuses),
2. runs the job's ``setup`` with the program in use (sampler units, constant uniforms: program state, shared),
3. draws it once (:class:`WarmUp`) into a 1 x 1 framebuffer of the canvas format, with the textures the render
   thread binds for it (the same shared texture objects, on the same units) and a vertex array of the same
   layout, then ``glFinish``. Drivers that compile lazily do it at this first draw: Mesa's llvmpipe translates
   a fragment shader to machine code for each combination of the state it is drawn with (framebuffer format,
   each texture's format, filter and size) -- half a second or more for a composite program. The variant it
   builds is per context, but llvmpipe keeps it in Mesa's shader disk cache, where the render context finds it
   at its own first draw (a few milliseconds instead of the compile); so the warm-up state must match the real
   one, and the disk cache must be on (``MESA_SHADER_CACHE_DISABLE`` unset). The cache is written by a Mesa
   thread of its own: on a software renderer the worker waits ``settle_s`` (0.05 s) before handing the program
   over,
4. hands the program over: :meth:`poll` (render thread) returns :class:`ProgramResult` objects whose programs
   are adopted by the render context's registry (labelled there, freed with it).

Jobs come in **sets** on a **channel** (:meth:`submit`): a newer set on a channel replaces the one waiting there,
and the set being compiled stops before its next program (what it compiled so far is still handed over). A
dragged slider thus compiles the programs of the first and of the newest value, not of every step between.

The worker never draws into anything the render thread uses and binds the render thread's textures only to read
them. Textures the render thread made for a set (an OCIO grade's LUTs) are fenced: :meth:`submit` takes a
``fence`` (``glFenceSync`` of the render context), waited for before the set's first draw.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stagectl.render.gl.errors import ContextError, RenderError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import Program, ResourceRegistry, drain_gl_errors

__all__ = ["WarmUp", "ProgramJob", "ProgramResult", "ProgramWorker", "SOFTWARE_SETTLE_S"]

log = logging.getLogger(__name__)

#: seconds a software renderer's worker waits after a warm-up draw before handing a program over (Mesa writes
#: the shader disk cache on a thread of its own)
SOFTWARE_SETTLE_S = 0.05
#: how long :meth:`ProgramWorker.close` waits for a compile in progress
CLOSE_WAIT_S = 60.0


@dataclass(frozen=True)
class WarmUp:
    """The state of a program's first draw on the worker, as the render thread will draw it.

    ``canvas_format``: the framebuffer's colour format (``rgba8``, ``rgb10_a2``, ``rgba16``...; 1 x 1, no
    depth); ``textures``: ``(unit, GL target, GL name)`` of the render context's (shared) textures to bind;
    ``vertices``: (V, F) float32 vertex data of one buffer, ``attributes``: ``(location, components, offset
    bytes)`` of its float attributes (stride ``F * 4``); ``indices``: uint32 triangle indices (drawn with
    ``glDrawElements``); ``uniforms``: ``(name, (x, y))`` vec2 uniforms set for this draw only."""

    canvas_format: str
    textures: tuple[tuple[int, int, int], ...] = ()
    vertices: np.ndarray = field(default_factory=lambda: np.zeros((3, 2), np.float32), compare=False)
    attributes: tuple[tuple[int, int, int], ...] = ((0, 2, 0),)
    indices: np.ndarray = field(default_factory=lambda: np.arange(3, dtype=np.uint32), compare=False)
    uniforms: tuple[tuple[str, tuple[float, float]], ...] = ()

    @property
    def layout(self) -> tuple:
        return (self.vertices.shape[1], self.attributes)


@dataclass(frozen=True)
class ProgramJob:
    """One program to make: ``key`` (the caller's cache key), ``label``, the two sources, ``setup`` (called on
    the worker with the :class:`Program`, in use: its constant uniforms; GL calls on the program only, and data
    the caller will not change) and ``warm`` (None: no warm-up draw)."""

    key: Hashable
    label: str
    vertex: str
    fragment: str
    setup: Callable[[Program], None] | None = None
    warm: WarmUp | None = None


@dataclass
class ProgramResult:
    """A finished job: ``program`` (adopted by the render registry in :meth:`ProgramWorker.poll`), or None and
    ``error`` (one line); ``channel`` and ``ticket`` of its set; seconds spent compiling and linking
    (``compile_s``) and in the warm-up draw (``warm_s``)."""

    channel: str
    ticket: int
    key: Hashable
    label: str
    program: Program | None
    error: str | None = None
    compile_s: float = 0.0
    warm_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.program is not None


@dataclass
class _Set:
    ticket: int
    jobs: tuple[ProgramJob, ...]
    fence: object = None


class ProgramWorker:
    """A thread with a GL context shared with ``context`` that compiles, links and warms up programs.

    Made on the render thread with ``context`` current there (it stays current); ``registry``: the render
    context's :class:`~stagectl.render.gl.resources.ResourceRegistry` (default ``context.resources``), which
    adopts the programs handed over by :meth:`poll`. ``settle_s``: seconds to wait after a warm-up before a
    program is handed over (default :data:`SOFTWARE_SETTLE_S` on a software renderer, 0 otherwise).
    :meth:`close` (render thread) stops the thread and releases the worker context.

    Counters: ``compiled`` (programs linked on the worker), ``failed``, ``superseded`` (sets stopped or dropped
    for a newer one), ``thread_name`` (the worker thread's name, for tests that count compiles per thread).
    """

    def __init__(self, context, registry: ResourceRegistry | None = None, *, settle_s: float | None = None,
                 name: str = "stagectl-programs") -> None:
        self.context = context
        self.registry = registry if registry is not None else context.resources
        software = bool(getattr(getattr(context, "info", None), "software", False))
        self.settle_s = (SOFTWARE_SETTLE_S if software else 0.0) if settle_s is None else float(settle_s)
        self.thread_name = name
        self.compiled = 0
        self.failed = 0
        self.superseded = 0
        self._cv = threading.Condition()
        self._waiting: OrderedDict[str, _Set] = OrderedDict()  # channel -> the set waiting there
        self._active: tuple[str, int] | None = None  # (channel, ticket) being compiled
        self._results: list[ProgramResult] = []
        self._ticket = 0
        self._closing = False
        self._dead: str | None = None  # why the thread stopped early (its context could not be made current)
        self._orphan_fences: list = []
        self._cancelled: dict[str, int] = {}  # channel -> ticket: sets before it stop (cancel())
        self._worker_ctx = context.shared_context()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._started.wait(timeout=CLOSE_WAIT_S)

    # ------------------------------------------------------------------ render thread

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._dead is None

    def submit(self, jobs: Sequence[ProgramJob], *, channel: str = "default", fence=None) -> int:
        """Queue a set of jobs on ``channel``, replacing the set waiting there (and stopping the one being
        compiled there before its next program); returns the set's ticket. ``fence``: a ``glFenceSync`` of the
        render context the worker waits for before its first draw (it deletes it)."""
        with self._cv:
            if self._closing or self._dead is not None:
                raise ContextError(f"program worker: {self._dead or 'closed'}")
            self._ticket += 1
            old = self._waiting.pop(channel, None)
            if old is not None:
                self.superseded += 1
                if old.fence is not None:
                    self._orphan_fences.append(old.fence)
            self._waiting[channel] = _Set(self._ticket, tuple(jobs), fence)
            self._cv.notify_all()
            return self._ticket

    def cancel(self, channel: str = "default") -> None:
        """Drop the set waiting on ``channel`` and stop the one being compiled there before its next program."""
        with self._cv:
            self._ticket += 1  # newer than every set so far: the active set of the channel stops
            old = self._waiting.pop(channel, None)
            if old is not None:
                self.superseded += 1
                if old.fence is not None:
                    self._orphan_fences.append(old.fence)
            self._cancelled[channel] = self._ticket
            self._cv.notify_all()

    def poll(self) -> list[ProgramResult]:
        """The jobs finished since the last call, oldest first; their programs adopted by :attr:`registry`
        (render thread, render context current). A program whose adoption fails is reported as an error."""
        with self._cv:
            done, self._results = self._results, []
        for r in done:
            if r.program is None:
                continue
            try:
                self.registry.adopt(r.program, GL.GL_PROGRAM)
            except RenderError as exc:  # adopt() deleted it
                r.program, r.error = None, f"{r.label}: handing over failed: {exc}"
        return done

    def wait_idle(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Wait until no set is waiting or being compiled (tests, benches); returns False on timeout."""
        end = time.monotonic() + timeout_s
        with self._cv:
            while (self._waiting or self._active is not None) and self._dead is None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        """Stop the thread (after the program it is compiling, waiting at most :data:`CLOSE_WAIT_S`), free what
        it made, release its context (render thread: with GLFW the main thread); programs not polled are
        deleted. Idempotent."""
        with self._cv:
            if self._closing:
                return
            self._closing = True
            for s in self._waiting.values():
                if s.fence is not None:
                    self._orphan_fences.append(s.fence)
            self._waiting.clear()
            self._cv.notify_all()
        self._thread.join(timeout=CLOSE_WAIT_S)
        if self._thread.is_alive():  # a compile that never ends: leave its context to the process's end
            log.warning("program worker: the compile thread did not stop within %.0f s", CLOSE_WAIT_S)
            return
        with self._cv:
            left, self._results = self._results, []
        for r in left:  # compiled but never handed over: free them in the share group
            if r.program is not None:
                GL.glDeleteProgram(r.program.glo)
        for fence in self._orphan_fences:
            GL.glDeleteSync(fence)
        self._orphan_fences.clear()
        drain_gl_errors()
        self._worker_ctx.release()

    # ------------------------------------------------------------------ worker thread

    def _stopped(self, channel: str, ticket: int) -> bool:
        with self._cv:
            if self._closing:
                return True
            newer = self._waiting.get(channel)
            cut = self._cancelled.get(channel, 0)
            return (newer is not None and newer.ticket > ticket) or cut > ticket

    def _run(self) -> None:
        ctx = self._worker_ctx
        try:
            ctx.make_current()
        except Exception as exc:  # noqa: BLE001 - reported by submit(); the renderer compiles on its own thread
            self._dead = f"its GL context could not be made current: {exc}"
            self._started.set()
            return
        self._started.set()
        res = ctx.resources
        self._fbs: dict[str, object] = {}
        self._vaos: dict[tuple, tuple] = {}
        try:
            while True:
                with self._cv:
                    while not self._waiting and not self._closing:
                        self._cv.wait()
                    if self._closing:
                        break
                    channel, todo = self._waiting.popitem(last=False)
                    self._active = (channel, todo.ticket)
                    fences, self._orphan_fences = self._orphan_fences, []
                try:
                    for f in fences:
                        GL.glDeleteSync(f)
                    if todo.fence is not None:
                        GL.glClientWaitSync(todo.fence, GL.GL_SYNC_FLUSH_COMMANDS_BIT, 10_000_000_000)
                        GL.glDeleteSync(todo.fence)
                    for job in todo.jobs:
                        if self._stopped(channel, todo.ticket):
                            with self._cv:
                                self.superseded += 1
                            break
                        r = self._make(res, channel, todo.ticket, job)
                        with self._cv:
                            self._results.append(r)
                finally:
                    with self._cv:
                        self._active = None
                        self._cv.notify_all()
        finally:
            try:
                res.release_all()  # the worker's framebuffers, vertex arrays and buffers, on its own context
            finally:
                ctx.done_current()

    def _make(self, res: ResourceRegistry, channel: str, ticket: int, job: ProgramJob) -> ProgramResult:
        t0 = time.perf_counter()
        # compiled through a registry of its own: the program is handed to the render registry, never freed here
        scratch = ResourceRegistry(is_current=self._worker_ctx.is_current, labels=False)
        try:
            made = scratch.program(job.label, job.vertex, job.fragment)
        except Exception as exc:  # noqa: BLE001 - a refused program is reported, the render thread goes on
            drain_gl_errors()
            with self._cv:
                self.failed += 1
            return ProgramResult(channel, ticket, job.key, job.label, None, _one_line(exc),
                                 compile_s=time.perf_counter() - t0)
        with self._cv:
            self.compiled += 1
        program = Program(self.registry, made.glo, job.label)
        t1 = time.perf_counter()
        try:
            program.use()
            if job.setup is not None:
                job.setup(program)
            if job.warm is not None:
                self._warm_up(res, program, job.warm)
            GL.glUseProgram(0)
            errors = drain_gl_errors()
            GL.glFinish()
            if errors:
                raise RenderError("compile", job.label, errors[0], errors=tuple(errors))
        except Exception as exc:  # noqa: BLE001
            GL.glUseProgram(0)
            GL.glDeleteProgram(made.glo)
            drain_gl_errors()
            with self._cv:
                self.failed += 1
            return ProgramResult(channel, ticket, job.key, job.label, None, _one_line(exc),
                                 compile_s=t1 - t0, warm_s=time.perf_counter() - t1)
        if self.settle_s > 0 and job.warm is not None:
            time.sleep(self.settle_s)
        return ProgramResult(channel, ticket, job.key, job.label, program, compile_s=t1 - t0,
                             warm_s=time.perf_counter() - t1)

    def _warm_up(self, res: ResourceRegistry, program: Program, warm: WarmUp) -> None:
        fb = self._fbs.get(warm.canvas_format)
        if fb is None:
            fb = self._fbs[warm.canvas_format] = res.framebuffer(
                f"worker.fb.{warm.canvas_format}", 1, 1, warm.canvas_format, depth=False)
        got = self._vaos.get(warm.layout)
        if got is None:
            n = len(self._vaos)
            vbo = res.buffer(f"worker.vbo{n}", GL.GL_ARRAY_BUFFER, np.ascontiguousarray(warm.vertices, np.float32))
            # written through the ARRAY_BUFFER bind point: no vertex array needs to be bound for that
            ebo = res.buffer(f"worker.ebo{n}", GL.GL_ARRAY_BUFFER, np.ascontiguousarray(warm.indices, np.uint32))
            vao = res.vertex_array(f"worker.vao{n}")
            stride = warm.vertices.shape[1] * 4
            for loc, comps, offset in warm.attributes:
                vao.attribute(loc, vbo, comps, stride=stride, offset=offset)
            vao.set_index_buffer(ebo)
            got = self._vaos[warm.layout] = (vao, len(warm.indices))
        vao, count = got
        fb.bind()
        GL.glViewport(0, 0, 1, 1)
        for unit, target, glo in warm.textures:
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(target, glo)
        for name, (x, y) in warm.uniforms:
            loc = program.location(name)
            if loc >= 0:
                GL.glUniform2f(loc, float(x), float(y))
        GL.glBindVertexArray(vao.glo)
        GL.glDrawElements(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, ctypes.c_void_p(0))
        GL.glBindVertexArray(0)
        for unit, target, _ in warm.textures:
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(target, 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines[:3])[:400]
