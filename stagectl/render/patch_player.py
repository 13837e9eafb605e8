"""The on-wall colour patch player: ``stagectl calibrate colour``'s patch sequence, frame by frame, on one output.

The console's ``color.patches`` (docs/console.md, docs/colour.md "Calibrating a wall in camera") starts and stops
it. What it plays is a :class:`PatchProgram` (:func:`patch_program`): the
:class:`~stagectl.color.calibration.PatchSequence` of one output, built from the stage's ``colour:`` section
exactly as ``stagectl calibrate colour --patches`` builds it (same transfer, peak, target, depth, range, canvas
and mapped area), optionally with every measured patch's signal taken through the output's colour calibration
(``calibration: true``: the corrected patches, to film and solve again for verification).

**Frame accuracy.** A playback starts on the frame the command was applied at (the stage's frame counter, the
one the frame plan and the cluster carry: :attr:`~stagectl.render.passes.FramePlan.frame`), never on wall-clock
time: frame ``F + k`` of the stage shows wall frame ``k`` of the sequence, for ``k = 0 .. N - 1``, then the
normal composition again. A frame the loop drops (late) drops its image with it; the slates' frame counter shows
it in the captures. A blacked-out output stays black (its images are skipped, the counter runs on).

**Exact codes.** Each wall frame is drawn as the rectangles that make it
(:meth:`~stagectl.color.calibration.PatchSequence.frame_rects`, the same rectangles ``--patches`` paints), each a
scissored clear of the output's canvas with the rectangle's codes (``quantize`` of its signal at the canvas
depth and range, as ``code / (2^n - 1)``; GL converts to the nearest code). No grade, no OCIO encode, no
blending, no scaling: the canvas holds ``frame_codes(k)`` exactly, alpha opaque. Nothing is uploaded and no
image is kept: a frame costs a few dozen clears (the chart: 25). The composition of a played output is not
drawn (:meth:`PatchPlayer.covers`); the canvas is marked for a full redraw, so the composition returns whole
after the end or a stop. Other outputs are not touched.

Cluster render nodes play it too: the start (output, arguments, first frame) travels in the operator state and
``stagectl node`` starts its own player on the same first frame (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stagectl.color.errors import ColorError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import gl_pass

__all__ = ["PatchPlayer", "PatchProgram", "Playback", "patch_program"]


@dataclass(frozen=True, eq=False)
class PatchProgram:
    """What one output plays: ``key``, the ``sequence`` (its signals corrected when ``calibrated``), the
    ``canvas`` ``(w, h)`` and ``active`` mapped area ``(x, y, w, h)`` of the output, its canvas ``format``."""

    key: str
    sequence: object
    canvas: tuple[int, int]
    active: tuple[int, int, int, int]
    format: str
    calibrated: bool = False

    @property
    def frames(self) -> int:
        return int(self.sequence.total_frames)

    def codes(self, k: int) -> np.ndarray:
        """Wall frame ``k`` as ``(h, w, 3)`` uint16 codes (the numpy reference of what :meth:`rects` draws)."""
        return self.sequence.frame_codes(k, self.canvas, self.active)

    def rects(self, k: int) -> list[tuple[int, int, int, int, np.ndarray]]:
        """Wall frame ``k`` as ``(x0, y0, x1, y1, codes)`` rectangles in drawing order (row 0 = top; codes (3,)
        at the canvas depth and range)."""
        from stagectl.color.transfer import quantize

        seq = self.sequence
        return [(x0, y0, x1, y1, quantize(np.clip(sig, 0.0, 1.0), seq.bits, narrow=seq.narrow))
                for x0, y0, x1, y1, sig in seq.frame_rects(k, self.canvas, self.active)]


def patch_program(stage, key: str, *, frames_per_patch: int = 10, slate_frames: int = 8, ramp_steps: int = 30,
                  calibration: bool = False) -> PatchProgram:
    """The :class:`PatchProgram` of output ``key`` of ``stage`` (its ``colour:`` section; see the module
    docstring). ``calibration``: the measured patches through the output's calibration (its calibrated encode of
    the target-linear light, by OCIO's CPU processor), slates and peak white as they are. Raises a one-line
    :class:`~stagectl.color.errors.ColorError` for an output that cannot be calibrated (no ``colour:`` section,
    a display/view output, HLG, a sequence too long for the slate counter) or, with ``calibration``, one without
    a calibration. Slow (OCIO, colour-science on first use): call it off the frame loop."""
    from stagectl.color.calibration import mapped_area, output_sequence

    out = next((o for p, o in stage.outputs() if f"{p.name}/{o.name}" == key), None)
    if out is None:
        raise ColorError(f"no output {key!r}")
    oc, cfg, seq = output_sequence(getattr(stage, "colour", None), key, frames_per_patch=frames_per_patch,
                                   slate_frames=slate_frames, ramp_steps=ramp_steps)
    if calibration:
        if oc.calibration is None:
            raise ColorError(f"output {key} has no colour calibration to verify (colour: outputs.<key>.calibration "
                             f"or walls.<wall>.calibration); play the plain sequence with calibration: false")
        from stagectl.color.ocio import ColorProcessor
        from stagectl.color.output import calibrated_processor

        proc = ColorProcessor(calibrated_processor(cfg, seq.target_space, oc),
                              f"{seq.target_space} -> {oc.describe()}")
        seq = seq.with_signals(lambda t: np.asarray(proc.apply(np.asarray(t, np.float32).reshape(-1, 3)), np.float64))
    return PatchProgram(key, seq, (int(out.canvas[0]), int(out.canvas[1])),
                        mapped_area(m.canvas_rect for m in out.mappings), oc.format, bool(calibration))


@dataclass(frozen=True)
class Playback:
    """A program playing since stage frame ``first``: wall frame ``k = frame - first``."""

    program: PatchProgram
    first: int

    def index(self, frame: int) -> int:
        return int(frame) - self.first

    def describe(self, frame: int) -> dict:
        """The status of the playback at stage frame ``frame``: ``frame`` (k), ``frames`` (N), ``patch`` (the
        patch's name), ``first_frame``, ``calibration`` (``on``: the corrected patches)."""
        k = self.index(frame)
        seq = self.program.sequence
        return {"frame": k, "frames": self.program.frames,
                "patch": seq.patch_at(k).name if 0 <= k < self.program.frames else None,
                "first_frame": self.first, "calibration": "on" if self.program.calibrated else "off"}


class PatchPlayer:
    """The playbacks of one renderer, per output key (module docstring). :meth:`start` and :meth:`stop` run on
    the render thread at a frame boundary (the console's effect); :meth:`draw` from
    :meth:`~stagectl.render.renderer.StageRenderer.render_frame`."""

    def __init__(self) -> None:
        self._playing: dict[str, Playback] = {}
        #: per output key: the status of the last frame drawn (or skipped under a blackout)
        self._shown: dict[str, dict] = {}

    @property
    def playing(self) -> bool:
        return bool(self._playing)

    def playback(self, key: str) -> Playback | None:
        return self._playing.get(key)

    def start(self, program: PatchProgram, first_frame: int) -> Playback:
        """Play ``program`` from stage frame ``first_frame`` on (in place of what its output plays)."""
        pb = Playback(program, int(first_frame))
        self._playing[program.key] = pb
        self._shown.pop(program.key, None)
        return pb

    def stop(self, key: str) -> Playback | None:
        """Stop the playback of output ``key`` (the composition from the next frame drawn); the stopped one or
        None."""
        self._shown.pop(key, None)
        return self._playing.pop(key, None)

    def clear(self) -> None:
        self._playing.clear()
        self._shown.clear()

    def status(self) -> dict[str, dict]:
        """Output key -> :meth:`Playback.describe` of the last frame drawn, for the outputs playing."""
        return {k: dict(v) for k, v in self._shown.items() if k in self._playing}

    def covers(self, out, frame: int) -> bool:
        """Whether :meth:`draw` draws output pass ``out``'s whole canvas at stage frame ``frame`` (then its
        composition need not be drawn first): it plays there and is not blacked out."""
        pb = self._playing.get(out.key)
        return pb is not None and not out.blackout and 0 <= pb.index(frame) < pb.program.frames

    def draw(self, plan, framebuffer_of: Callable[[str], object]) -> list[str]:
        """Draw this frame's image of every playback into its output's canvas framebuffer
        (``framebuffer_of(key)``: the one the frame is drawn into); playbacks past their end are dropped first.
        Returns the keys drawn (their canvases no longer hold the composition)."""
        frame = int(plan.frame)
        drawn: list[str] = []
        outputs = {o.key: o for o in plan.outputs}
        for key, pb in list(self._playing.items()):
            k = pb.index(frame)
            if k >= pb.program.frames or key not in outputs:
                del self._playing[key]
                self._shown.pop(key, None)
                continue
            if k < 0:
                continue
            self._shown[key] = pb.describe(frame)
            if outputs[key].blackout:
                continue
            fb = framebuffer_of(key)
            with gl_pass("patches", key):
                _clear_rects(fb, pb.program.rects(k), pb.program.sequence.bits)
            drawn.append(key)
        return drawn


def _clear_rects(fb, rects, bits: int) -> None:
    """Clear each ``(x0, y0, x1, y1, codes)`` rectangle (row 0 = top) of ``fb`` to its codes (``bits`` deep),
    alpha opaque; leaves framebuffer 0 bound and the scissor test off."""
    top = float((1 << bits) - 1)
    h = fb.height
    fb.bind()
    GL.glViewport(0, 0, fb.width, fb.height)
    GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
    GL.glEnable(GL.GL_SCISSOR_TEST)
    try:
        for x0, y0, x1, y1, c in rects:
            GL.glScissor(int(x0), int(h - y1), int(x1 - x0), int(y1 - y0))  # GL rows count from the bottom
            GL.glClearColor(float(c[0]) / top, float(c[1]) / top, float(c[2]) / top, 1.0)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    finally:
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
