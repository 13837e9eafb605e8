"""The output side of a running stage: the GL context, the renderer of every output canvas, and where the
canvases go -- output windows, PNG previews, shared-memory sinks.

One :class:`StageOutput` serves ``stagectl run`` (every canvas of the stage; headless or in GLFW output
windows, previews, ``--sink``) and ``stagectl node`` (the canvases of the outputs assigned to that node,
headless, ``--sink``). Per frame: :meth:`StageOutput.render` draws a :class:`~stagectl.render.passes.FramePlan`,
:meth:`StageOutput.present` shows the canvases at the frame edge (windows) and publishes them into the sinks,
:meth:`StageOutput.previews` hands the canvases over for the PNG previews when due (after the edge).

**Pictures off the loop.** A deep or HDR output's picture is tone-mapped through OpenColorIO on the CPU (about
0.26 s for the demo's three canvases). :meth:`StageOutput.previews` and :meth:`StageOutput.thumbnail_images`
only copy the canvases the renderer has read back (``rgb10_a2`` as its packed words) and hand them to a
:class:`~stagectl.runtime.pictures.PictureWorker` thread, which unpacks, scales, tone-maps
(:func:`stagectl.color.output.preview_picture`) and writes the PNGs. At most one job waits per output and kind
of picture; a newer hand-over replaces a waiting one. :meth:`StageOutput.thumbnail_images` therefore returns the
newest thumbnails the worker has finished (from an earlier hand-over; none before the first is done).

The canvases are RGBA, row 0 the top, at the depth of each output's canvas format
(:meth:`stagectl.render.renderer.StageRenderer.canvas_format`; docs/colour.md):

* sinks get the signal at full depth, in the ring's pixel format of that canvas format: 8-bit codes,
  16-bit codes, or for ``rgb10_a2`` the words as GL packs them (``canvases(packed=True)``: never unpacked);
* PNG previews and the console's thumbnails get pictures for people
  (:meth:`~stagectl.render.renderer.StageRenderer.preview_images`): 8-bit sRGB canvases as they are, deep and
  HDR outputs tone-mapped for an sRGB screen (not their signal);
* output windows of deep outputs ask the driver for 10 bits a channel
  (:func:`stagectl.render.present.window_color_bits`); the start of the run says what each window got.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.runtime.pictures import PictureWorker

__all__ = ["THUMBNAIL_WIDTH", "StageOutput"]

#: Width (px) of the output thumbnails the web console shows.
THUMBNAIL_WIDTH = 384

#: what the start of a run says about a sink ring's pixels, by canvas format (stagectl.render.sink)
_SINK_DEPTH = {"rgba8": "", "rgb10_a2": ", 10-bit rgb10_a2: one packed uint32 a pixel",
               "rgba16": ", 16-bit rgba16"}


class StageOutput:
    """Rendering of every canvas of ``stage`` (headless, or in the GLFW context of the output windows), the
    windows, the PNG previews and the shared-memory sinks. Open it with :meth:`open`; :meth:`close` releases
    everything (sinks unlinked, windows closed, the context released)."""

    def __init__(self, stage, ctx, renderer, *, presenter=None, run_dir: Path | None = None,
                 preview_every_s: float = 0.0, say: Callable[[str], None] | None = None) -> None:
        from stagectl.color.output import preview_picture

        self.stage = stage
        self.ctx = ctx
        self.renderer = renderer
        self.run_dir = run_dir
        self.preview_every_ns = int(preview_every_s * 1e9) if preview_every_s else 0
        self.next_preview_ns = 0
        self.sinks: dict[str, Any] = {}  # output key -> SinkWriter
        self.presenter = presenter  # WindowPresenter with output windows
        self.probe = None  # VsyncProbe with genlock vsync
        #: the thread making the PNG previews and thumbnails (module docstring)
        self.pictures = PictureWorker(say=say)
        #: ``(encode, codes, width) -> (h, w, 4) uint8`` picture of a canvas, run on the worker thread
        self.picture: Callable[..., np.ndarray] = preview_picture
        self._thumbnails: dict[str, tuple[int, np.ndarray]] = {}  # output key -> (frame, newest thumbnail)
        self._thumbnails_lock = threading.Lock()

    @classmethod
    def open(cls, stage, say: Callable[[str], None], *, prefix: str, headline: Callable[[StageOutput], str],
             windows: str | None = None, monitors: Sequence[str] = (), vsync: bool = False,
             sink: Sequence[str] | None = None, run_dir: Path | None = None,
             preview_every_s: float = 0.0) -> StageOutput:
        """Open the context and the renderer of ``stage`` and say ``f"{prefix}: {headline(output)}"``.

        :param windows: ``"windowed"`` or ``"fullscreen"``: a GLFW window per output (``monitors``:
            ``OUTPUT=MONITOR`` placements); None: headless (EGL). ``vsync``: the windows swap on vsync (genlock
            vsync: :meth:`genlock_source`).
        :param sink: the shared-memory ring names' leading parts (the stage's name, then the node's): every
            canvas is published each frame into the ring ``sink_name(*sink, output key)``; None: no sinks.
        :param run_dir: where :meth:`previews` writes a PNG per output every ``preview_every_s`` seconds.
        """
        from stagectl.core.errors import StageError
        from stagectl.render.gl.context import create_context
        from stagectl.render.gl.errors import ContextError
        from stagectl.render.renderer import StageRenderer

        presenter = None
        if windows:
            from stagectl.render.canvas import canvas_layouts
            from stagectl.render.present import (
                WindowPresenter,
                open_window_context,
                parse_monitor_assignments,
                window_color_bits,
            )

            outputs = [(L.key, tuple(L.canvas)) for L in canvas_layouts(stage)]
            assign = parse_monitor_assignments(list(monitors), [k for k, _ in outputs])
            try:  # deep outputs' windows ask for 10 bits a channel; describe() says what the driver gave
                ctx = open_window_context(outputs, windows, assign, vsync=vsync,
                                          color_bits=window_color_bits(stage))
            except ContextError as exc:
                raise StageError(f"--windows: {exc}") from None
        else:
            ctx = create_context("egl")
        try:  # with windows and no sink nothing needs the canvases every frame: previews read them on demand
            readback = "none" if windows and sink is None else "sync"
            renderer = StageRenderer(stage, ctx, readback=readback, compile_worker=True)  # console changes
            if windows:
                presenter = WindowPresenter(ctx, renderer, mode=windows, vsync=vsync,
                                            say=lambda text: say(f"{prefix}: {text}"))
        except BaseException:
            ctx.release()
            raise
        out = cls(stage, ctx, renderer, presenter=presenter, run_dir=run_dir, preview_every_s=preview_every_s,
                  say=lambda text: say(f"{prefix}: {text}"))
        try:
            out._prepare_pictures()
            say(f"{prefix}: {headline(out)}")
            if presenter is not None:
                say(f"{prefix}: windows ({windows}): {presenter.describe()}; Esc or closing a window closes that "
                    "window only")
                if presenter.vsync:
                    out.probe = presenter.probe_vsync(stage.frame_rate.period_ns)
                    say(f"{prefix}: vsync: {out.probe.text}; {presenter.swap_group}")
            if run_dir is not None and preview_every_s:
                deep = [k for k in renderer.keys if renderer.compositor.outputs[k].encode is not None]
                if deep:
                    say(f"{prefix}: the previews of {', '.join(deep)} are 8-bit sRGB pictures tone-mapped for a "
                        "screen, not the output's signal (the signal: --sink, or stagectl snapshot)")
            if sink is not None:
                from stagectl.render.sink import SinkWriter, sink_name

                for L in renderer.layouts:
                    ring = sink_name(*sink, L.key)
                    fmt = renderer.canvas_format(L.key)
                    out.sinks[L.key] = SinkWriter(ring, L.canvas[0], L.canvas[1], slots=3, replace=True, fmt=fmt)
                    say(f"{prefix}: output {L.key} ({L.canvas[0]} x {L.canvas[1]} RGBA{_SINK_DEPTH[fmt]}) -> "
                        f"shared memory {ring!r}")
        except BaseException:
            out.close()
            raise
        return out

    def _prepare_pictures(self) -> None:
        """Make the deep and HDR outputs' preview transforms now (OCIO, baked into a 3D LUT: about 0.3 s
        each; docs/colour.md) rather than at the first PNG preview or console thumbnail, inside the frame
        loop: a 1-pixel preview of the safe canvases builds them."""
        self.renderer.preview_images(width=1)

    def where(self) -> str:
        """``headless`` or ``for N output windows``."""
        return f"for {len(self.presenter.windows)} output windows" if self.presenter else "headless"

    def genlock_source(self, rate, clock):
        """The frame loop's edge source for genlock vsync (None: the internal clock); the presenter then
        stamps its swaps on ``clock``."""
        if self.presenter is None or not self.presenter.vsync:
            return None
        from stagectl.sync.frameloop import VsyncGenlock

        self.presenter.now_ns = clock.now_ns
        return VsyncGenlock(rate, clock, paced=self.probe.paced, why_not=self.probe.short)

    # ------------------------------------------------------------------ per frame
    def render(self, plan):
        """Draw ``plan`` (:meth:`stagectl.render.renderer.StageRenderer.render_frame`; a failed frame keeps the
        last good canvases and says where it failed)."""
        return self.renderer.render_frame(plan)

    def canvases(self) -> dict:
        """Output key -> the canvas (RGBA, row 0 the top) of the last good frame, at its full depth (uint8, or
        uint16 codes for a deep output)."""
        return self.renderer.canvases()

    def thumbnail_images(self, frame: int = -1) -> dict[str, tuple[int, np.ndarray]]:
        """Hand the last good frame's canvases over for thumbnails (``frame``: the stage frame they are of) and
        return the newest thumbnails the worker has finished (from an earlier call; empty until the first is
        done): output key -> ``(frame, picture)``, the frame its canvas was handed over at and an 8-bit sRGB
        picture at most the console's thumbnail width (:data:`THUMBNAIL_WIDTH`) wide, deep and HDR outputs
        scaled down, then tone-mapped (:func:`stagectl.color.output.preview_picture`). Returns at once."""
        for key, data, fmt, encode in self._hand_over():
            self.pictures.submit(("thumbnail", key), self._make_thumbnail, key, data, fmt, encode, frame)
        with self._thumbnails_lock:
            return dict(self._thumbnails)

    def _hand_over(self) -> list[tuple[str, np.ndarray, str, Any]]:
        """The loop's share of a picture: per output ``(key, a copy of its canvas as read back, its canvas
        format, its encode)`` (``rgb10_a2``: the packed words, unpacked on the worker)."""
        r = self.renderer
        return [(key, np.array(a, copy=True), r.canvas_format(key), r.compositor.outputs[key].encode)
                for key, a in r.canvases(packed=True).items()]

    def _picture_of(self, data: np.ndarray, fmt: str, encode, width: int | None) -> np.ndarray:
        """(worker thread) The 8-bit picture of a handed-over canvas."""
        if fmt == "rgb10_a2" and data.ndim == 2:  # packed words
            from stagectl.render.gl.readback import unpack_rgb10_a2

            data = unpack_rgb10_a2(data)
        return self.picture(encode, data, width)

    def _make_thumbnail(self, key: str, data: np.ndarray, fmt: str, encode, frame: int) -> None:
        img = self._picture_of(data, fmt, encode, THUMBNAIL_WIDTH)
        with self._thumbnails_lock:
            self._thumbnails[key] = (frame, img)

    def present(self, frame: int, now_ns: int) -> int | None:
        """At the frame edge: show the canvases in the windows (returns the vsync swap's return instant), then
        publish them into the shared-memory sinks at full depth (``rgb10_a2`` as the packed words it was read
        back in). (PNG previews: :meth:`previews`, after the edge.)"""
        shown = self.presenter.present() if self.presenter is not None else None
        if self.sinks:
            canvases = self.renderer.canvases(packed=True)
            for key, writer in self.sinks.items():
                writer.write(frame, now_ns, canvases[key])
        return shown

    def previews(self, now_ns: int) -> None:
        """When the PNG previews are due, hand the canvases over to the worker, which writes them (called after
        the edge; returns at once: module docstring)."""
        if self.run_dir is not None and now_ns >= self.next_preview_ns:
            for key, data, fmt, encode in self._hand_over():
                self.pictures.submit(("png", key), self._write_preview, key, data, fmt, encode)
            self.next_preview_ns = now_ns + self.preview_every_ns

    def _write_preview(self, key: str, data: np.ndarray, fmt: str, encode) -> None:
        """(worker thread) ``preview_<processor>_<output>.png``: an 8-bit sRGB PNG of one output (deep and HDR
        outputs tone-mapped for a screen: docs/colour.md), replaced whole each time (written beside, then
        renamed: a reader never sees half a file)."""
        import cv2

        img = self._picture_of(data, fmt, encode, None)
        name = "preview_" + key.replace("/", "_") + ".png"
        part = self.run_dir / f".{name}.part.png"
        if not cv2.imwrite(str(part), cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)):
            raise OSError(f"could not write {part}")
        os.replace(part, self.run_dir / name)

    # ------------------------------------------------------------------ changes and the end
    def replace_stage(self, stage) -> None:
        """A reloaded stage with the same outputs (the console's stage.reload): a new renderer in the same
        context, built before the old one is released (a StageError leaves the old one running)."""
        from stagectl.render.renderer import StageRenderer

        new = StageRenderer(stage, self.ctx, readback=self.renderer.readback_mode, compile_worker=True)
        try:
            new.preview_images(width=1)  # as _prepare_pictures, before the new renderer takes over
        except BaseException:
            new.release()
            raise
        old, self.renderer = self.renderer, new
        if self.presenter is not None:
            self.presenter.renderer = new
        old.release()
        self.stage = stage

    def close(self) -> None:
        self.pictures.close()  # the previews handed over are written (bounded wait)
        for writer in self.sinks.values():
            writer.close(unlink=True)
        self.sinks = {}
        try:
            if self.presenter is not None:
                self.presenter.close()
            self.renderer.release()
        finally:
            self.ctx.release()

    def __repr__(self) -> str:
        return f"StageOutput({self.stage.name!r}, {self.where()}, {len(self.sinks)} sinks)"

