"""Programs of console changes compiled off the render thread (stagectl.render.program_worker, llvmpipe via EGL).

Compiles and links are counted per thread at the GL calls themselves (``glCompileShader`` and ``glLinkProgram``
wrapped for the test), not by the code under test. The reference for a grade that arrives later is the same
plan drawn by a renderer without a worker, which compiles that grade in its first frame: the canvases must be
equal, code for code. Frames are drawn back to back; a change must show within 60 s of them.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

import numpy as np
import pytest
from helpers import one_wall_stage

from stagectl.core.camera import OperatorFlags
from stagectl.core.features import ColorCorrection, FeatureState
from stagectl.render import grades
from stagectl.render.camera import camera_state_from_pose
from stagectl.render.gl.platform import GL
from stagectl.render.plan import FramePlanner
from stagectl.render.program_worker import ProgramJob, ProgramWorker, WarmUp
from stagectl.render.renderer import StageRenderer
from stagectl.stage import load_stage

pytestmark = pytest.mark.gl

GEOMETRY = one_wall_stage("Worker test", (8, 4), [
    "{name: a, canvas: [128, 128], mappings: [{wall: w, rect: [0, 0, 128, 128]}]}",
    "{name: b, canvas: [128, 128], mappings: [{wall: w, rect: [128, 0, 128, 128]}]}",
])
POSE = (0.0, 0.0, 1.6, 0.0, 0.0, 0.0)  # facing the wall: the inner frustum covers its middle
DEADLINE_S = 60.0
#: salted so that no test run finds its grades in Mesa's shader cache from an earlier run
SALT = (time.time_ns() // 1000) % 10_000 / 1e6


def _grade(sat: float, slope=(1.1, 0.95, 1.0)) -> ColorCorrection:
    return ColorCorrection(temperature=5200, slope=slope, offset=(0.01, 0.0, -0.01), saturation=sat + SALT)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    path = tmp_path_factory.mktemp("worker") / "worker.yaml"
    path.write_text(GEOMETRY, encoding="utf-8")
    return load_stage(path)


@pytest.fixture
def calls(monkeypatch, gl):
    """Counts of glCompileShader / glLinkProgram calls: ``(call, "render" | thread name) -> n``."""
    got: collections.Counter = collections.Counter()
    for name in ("glCompileShader", "glLinkProgram"):
        real = getattr(GL, name)

        def counted(*a, _real=real, _name=name):
            t = threading.current_thread()
            got[(_name, "render" if t is threading.main_thread() else t.name)] += 1
            return _real(*a)

        monkeypatch.setattr(GL, name, counted)
    return got


class _Rig:
    def __init__(self, stage, gl, *, worker: bool, inner: bool = True) -> None:
        self.r = StageRenderer(stage, gl, compile_worker=worker)
        self.planner = FramePlanner(stage, inner_resolution=(96, 64))
        self.cams = [camera_state_from_pose(stage, POSE)]
        self.flags = OperatorFlags(freeze_inner=True) if inner else OperatorFlags(inner_enabled=False)
        self.frame = 0

    def render(self, fs: FeatureState) -> dict[str, np.ndarray]:
        self.frame += 1
        res = self.r.render_frame(self.planner.plan(self.cams, self.flags, self.frame, fs))
        assert res.ok, res.error
        return {k: v.copy() for k, v in self.r.canvases().items()}


def _same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def _reference(stage, gl, fs: FeatureState, *, inner: bool = True) -> dict[str, np.ndarray]:
    """``fs`` drawn by a renderer without a worker (compiled in its first frame)."""
    ref = _Rig(stage, gl, worker=False, inner=inner)
    try:
        ref.render(fs)
        return ref.render(fs)
    finally:
        ref.r.release()


def _render_until_shown(rig: _Rig, fs: FeatureState, old: dict) -> tuple[list[dict], int]:
    """Frames of ``fs`` until the canvases change from ``old``; each frame's canvases, the frames drawn."""
    seen = []
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        seen.append(rig.render(fs))
        if not _same(seen[-1], old):
            return seen, len(seen)
        time.sleep(0.005)
    raise AssertionError(f"the change did not show within {DEADLINE_S:.0f} s ({len(seen)} frames)")


def test_a_grade_change_is_compiled_off_the_render_thread_and_lands_whole_at_a_frame_start(stage, gl, calls):
    old_fs = FeatureState(wall_color={"w": _grade(1.3)}, inner_color=_grade(0.9, (1.0, 1.05, 0.9)))
    new_fs = FeatureState(wall_color={"w": _grade(0.6, (0.9, 1.0, 1.15))},
                          inner_color=_grade(1.2, (1.0, 1.05, 0.9)))
    want = _reference(stage, gl, new_fs)
    rig = _Rig(stage, gl, worker=True)
    try:
        old = rig.render(old_fs)  # the first frame compiles its programs here (start-up)
        assert rig.render(old_fs) is not None and rig.r.program_status()["pending"] is None
        assert not _same(old, want)
        calls.clear()
        first = rig.render(new_fs)
        status = rig.r.program_status()
        assert _same(first, old), "the frame after the change must still show the old grade"
        assert status["worker"] == "on" and status["pending"]["programs"] >= 2, status
        frames, n = _render_until_shown(rig, new_fs, old)
        assert all(_same(f, old) for f in frames[:-1])
        assert _same(frames[-1], want), "the new grade arrived whole, equal to it compiled from scratch"
        assert _same(rig.render(new_fs), want)
        print(f"\nthe change showed after {n + 1} frames; calls: {dict(calls)}")
        assert not [k for k in calls if k[1] == "render"], f"compiled on the render thread: {dict(calls)}"
        assert calls[("glLinkProgram", "stagectl-programs")] == status["pending"]["programs"]
        after = rig.r.program_status()
        assert after["pending"] is None and after["error"] is None and after["compiled_off_thread"] >= 2
        # going back to the old grade: its programs are kept, it shows in the very next frame
        assert _same(rig.render(old_fs), old)
    finally:
        rig.r.release()
    assert not [k for k in calls if k[1] == "render"], "releasing compiled nothing either"


def test_a_burst_of_changes_compiles_the_first_and_the_last_and_ends_on_the_last(stage, gl, calls):
    steps = [FeatureState(wall_color={"w": _grade(0.5 + 0.07 * i)}) for i in range(10)]
    want = _reference(stage, gl, steps[-1], inner=False)
    rig = _Rig(stage, gl, worker=True, inner=False)  # no inner frustum: one program a grade
    try:
        old = rig.render(FeatureState(wall_color={"w": _grade(1.4)}))
        calls.clear()
        real_update = rig.r.compositor.update_cache
        real_update_result = []  # (frame, whether the cached outer-only canvases were redrawn)

        def update(*a, **k):
            got = real_update(*a, **k)
            real_update_result.append((rig.frame, got))
            return got

        rig.r.compositor.update_cache = update
        seen = [rig.render(fs) for fs in steps]  # a dragged slider: a new value every frame
        more, _ = _render_until_shown(rig, steps[-1], old)
        drawn = [f for f, got in real_update_result if got]
        assert drawn == [rig.frame], f"the outer-only canvases were redrawn at frames {drawn}, not only when " \
                                     f"the grade landed ({rig.frame})"
        links = calls[("glLinkProgram", "stagectl-programs")]
        print(f"\n10 changes: {links} programs linked on the worker; calls: {dict(calls)}")
        assert all(_same(f, old) for f in seen + more[:-1]), "only the old grade or the last one is shown"
        assert _same(more[-1], want)
        assert 1 <= links <= 3, f"{links} programs compiled for a burst of 10 changes"
        assert not [k for k in calls if k[1] == "render"]
    finally:
        rig.r.release()


def test_a_grade_whose_program_fails_keeps_the_old_grade_and_says_why(stage, gl, calls, monkeypatch):
    bad_sat = 0.77 + SALT
    real = grades.build_grade_part

    def build(kind, gs, **kw):  # this one grade's GLSL does not compile (a driver refusing a program)
        part = real(kind, gs, **kw)
        if kind == "walls" and any(abs(cc.saturation - bad_sat) < 1e-9 for _, cc in gs):
            part = dataclasses.replace(part, text=part.text + "\nthis is not GLSL;\n")
        return part

    monkeypatch.setattr(grades, "build_grade_part", build)
    rig = _Rig(stage, gl, worker=True, inner=False)
    try:
        old = rig.render(FeatureState(wall_color={"w": _grade(1.25)}))
        calls.clear()
        bad = FeatureState(wall_color={"w": _grade(0.77)})
        end = time.monotonic() + DEADLINE_S
        while rig.r.program_status()["error"] is None and time.monotonic() < end:
            assert _same(rig.render(bad), old)
            time.sleep(0.005)
        status = rig.r.program_status()
        assert status["error"] is not None and "GL_COMPILE_STATUS" in status["error"], status
        assert status["pending"] is None
        for _ in range(3):  # frames go on, good, with the old grade; the failure is said once
            assert _same(rig.render(bad), old)
        notes = [n for n in rig.r.notes if "GL_COMPILE_STATUS" in n]
        assert len(notes) == 1 and "the previous one stays" in notes[0]
        assert rig.r.stats.failed == 0
        # a good grade after it is compiled and shown as usual
        good = FeatureState(wall_color={"w": _grade(0.66)})
        frames, _ = _render_until_shown(rig, good, old)
        assert rig.r.program_status()["error"] is None
        assert not [k for k in calls if k[1] == "render"]
        assert _same(frames[-1], _reference(stage, gl, good, inner=False))
    finally:
        rig.r.release()


def test_a_light_card_shows_on_its_frame_while_the_grade_changed_with_it_waits(stage, gl, calls):
    from stagectl.core.features import LightCard

    card = (LightCard("k", "w", (0.1, 0.2, 0.4, 0.7), (1.0, 0.2, 0.6), 1.5, "over", 6.0),)
    old_fs = FeatureState(wall_color={"w": _grade(1.1)})
    new_fs = FeatureState(wall_color={"w": _grade(0.55, (0.9, 1.1, 1.0))}, light_cards=card)
    with_card = _reference(stage, gl, dataclasses.replace(old_fs, light_cards=card))
    want = _reference(stage, gl, new_fs)
    rig = _Rig(stage, gl, worker=True)
    try:
        old = rig.render(old_fs)
        first = rig.render(new_fs)  # the card's variants compile here (first use), the new grade's do not
        assert _same(first, with_card), "the card shows on its frame, over the old grade"
        assert rig.r.program_status()["pending"] is not None
        frames, _ = _render_until_shown(rig, new_fs, with_card)
        assert all(_same(f, with_card) for f in frames[:-1]) and _same(frames[-1], want)
        assert not _same(old, with_card)
    finally:
        rig.r.release()


def test_an_exposure_moved_while_a_grade_waits_shows_at_once(stage, gl):
    old_fs = FeatureState(wall_color={"w": _grade(1.15)})
    brighter = FeatureState(wall_color={"w": dataclasses.replace(_grade(1.15), exposure=0.5)})
    new_fs = FeatureState(wall_color={"w": dataclasses.replace(_grade(0.45), exposure=0.5)})
    want_now, want = _reference(stage, gl, brighter), _reference(stage, gl, new_fs)
    rig = _Rig(stage, gl, worker=True)
    try:
        old = rig.render(old_fs)
        assert _same(rig.render(new_fs), want_now), "the old grade at the new exposure"
        frames, _ = _render_until_shown(rig, new_fs, want_now)
        assert _same(frames[-1], want) and not _same(old, want_now)
    finally:
        rig.r.release()


# ---- the worker alone ---------------------------------------------------------------------------------------

_VS = "#version 330 core\nlayout(location = 0) in vec2 a_pos;\nvoid main() { gl_Position = vec4(a_pos, 0, 1); }\n"
_FS = ("#version 330 core\nuniform sampler2D u_tex;\nuniform vec4 u_scale;\nout vec4 o;\n"
       "void main() { o = texelFetch(u_tex, ivec2(gl_FragCoord.xy), 0) * u_scale; }\n")


def test_a_program_made_on_the_worker_draws_in_the_render_context(gl):
    res = gl.resources
    img = np.zeros((4, 4, 4), np.uint8)
    img[..., 0] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    img[..., 3] = 255
    tex = res.texture2d("worker.src", 4, 4, "rgba8", data=img, filter="nearest")
    fb = res.framebuffer("worker.dst", 4, 4, "rgba8", depth=False)
    vbo = res.buffer("worker.vbo", GL.GL_ARRAY_BUFFER, np.array([[-1, -1], [3, -1], [-1, 3]], np.float32))
    vao = res.vertex_array("worker.vao")
    vao.attribute(0, vbo, 2, stride=8)
    worker = ProgramWorker(gl, res)
    try:
        assert gl.is_current(), "making the worker leaves the render context current"

        def setup(p):
            GL.glUniform1i(p.location("u_tex"), 3)
            GL.glUniform4f(p.location("u_scale"), 0.5, 1.0, 1.0, 1.0)

        warm = WarmUp("rgba8", ((3, GL.GL_TEXTURE_2D, tex.glo),),
                      vertices=np.array([[-1, -1], [3, -1], [-1, 3]], np.float32))
        ticket = worker.submit([ProgramJob("good", "worker.good", _VS, _FS, setup=setup, warm=warm),
                                ProgramJob("bad", "worker.bad", _VS, _FS.replace("texelFetch", "nope"))])
        assert worker.wait_idle(DEADLINE_S)
        got = {r.key: r for r in worker.poll()}
        assert set(got) == {"good", "bad"} and all(r.ticket == ticket for r in got.values())
        assert not got["bad"].ok and "GL_COMPILE_STATUS" in got["bad"].error and "\n" not in got["bad"].error
        p = got["good"].program
        assert p in res.live() and worker.compiled == 1 and worker.failed == 1
        fb.bind()
        GL.glViewport(0, 0, 4, 4)
        tex.bind(3)
        p.use()  # its uniforms were set on the worker: program state is shared
        vao.bind()
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glBindVertexArray(0)
        GL.glUseProgram(0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        from stagectl.render.gl.readback import read_pixels

        out = read_pixels(fb)
        want = img.astype(np.float64)
        want[..., 0] *= 0.5
        assert np.abs(out.astype(np.float64) - want).max() <= 1
        p.release()
    finally:
        worker.close()
        for obj in (vao, vbo, fb, tex):
            obj.release()
    assert gl.is_current() and worker._worker_ctx.released


def test_a_newer_set_replaces_the_one_waiting_on_its_channel(gl):
    worker = ProgramWorker(gl)
    try:
        jobs = [ProgramJob(i, f"worker.p{i}", _VS, _FS) for i in range(3)]
        # the first set may have started; the second, still waiting, is replaced by the third
        first = worker.submit(jobs[:1], channel="c")
        worker.submit(jobs[1:2], channel="c")
        last = worker.submit(jobs[2:], channel="c")
        assert worker.wait_idle(DEADLINE_S)
        got = worker.poll()
        assert [r.ticket for r in got] in ([first, last], [last])
        assert got[-1].key == 2 and worker.superseded >= 1
        for r in got:
            r.program.release()
    finally:
        worker.close()
