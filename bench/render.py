"""Frame rendering of a stage, headless: each pass and the whole frame.

    python -m bench render [--stage stages/demo.yaml] [--frames N] [--move orbit] [--no-write]

Renders the stage at its configured sizes (demo: three 1920x1080 canvases, inner 1920x1080, outer cube atlas)
on the EGL context stagectl makes (Mesa llvmpipe on a machine without a GPU), for a camera following the
built-in simulator's move (pose, zoom and focus change every frame, one frame of the move per 1/24 s).

Modes (each over the same frames, after warm-up frames that build programs, targets and the static outer
image):

* ``per-pass``: ``glFinish`` after every pass, so each pass is timed alone (on llvmpipe GL calls return before
  the rendering is done): inner frustum, composition per output, synchronous readback;
* ``frame-sync``: whole frames without ``glFinish`` between passes, canvases read back synchronously into
  numpy each frame (every frame's pixels are in memory when ``render_frame`` returns);
* ``frame-async``: the same with pixel-buffer-object readback (the canvases of frame k arrive during frame
  k + 1 or k + 2);
* ``frame-noreadback``: rendering only (for a GPU presenting windows), ``glFinish`` at the end of each frame;
* ``frame-dynamic-outer``: as frame-sync, but the outer image is re-rendered every frame (animated content);
* ``frame-no-tile-culling``: as frame-sync, but every canvas tile goes through the full composition every
  frame (what a renderer without tile culling or an outer cache pays);
* ``frame-features`` / ``per-pass-features``: as frame-sync / per-pass with the stage features an operator
  typically has on (:func:`busy_features`): four light cards (over and under, feathered), colour correction of
  every wall (exposure, white balance, ASC CDL) and of the inner frustum with a 33-point 3D LUT;
* ``per-pass-features-ocio`` / ``per-pass-features-pq``: per-pass-features with every output a 10-bit
  (``rgb10_a2``) canvas encoded by OpenColorIO in the composite shader (:func:`colour_settings`): the ACES 2.0
  HDR 1000-nit view on the Rec.2100-PQ display of the built-in studio config (``-ocio``), or a plain PQ
  1000-nit encode (``-pq``). Run with per-pass-features in one run to compare the composite pass with and
  without the OCIO display transform (``--modes colour`` does exactly that); the colour modes' figures go to
  ``bench/results/render-colour-*.json``. Their readback keeps the packed ``rgb10_a2`` words (what the sink
  stores); what is made from them only on demand -- the unpacking into uint16 codes and the tone-mapped 8-bit
  previews -- is timed apart (``on_demand``: :func:`_on_demand`).

The outer pass (atlas of the needed cube faces) and the outer-only canvases are timed separately: with static
content they are drawn once and then only when the viewpoint changes. Goal: >= 24 frames per second (41.7 ms)
for the demo stage on a 2-core machine with llvmpipe; the slowest pass is reported.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import summarize_ns, write_results

REPO = Path(__file__).resolve().parents[1]

GOAL_FPS = 24.0


def _display(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(path)


def _ms(summary: dict) -> dict:
    return {k.replace("_us", "_ms"): (v / 1000.0 if k.endswith("_us") else v) for k, v in summary.items()}


def busy_features(stage):
    """The features of a busy shoot: four light cards (two over, two under the inner frustum, feathered),
    exposure + white balance + ASC CDL on every wall, and the inner frustum graded through a 33-point 3D LUT
    (a gentle S-curve, so nothing is the identity the shader could skip)."""
    from stagectl.core.features import ColorCorrection, FeatureState, LightCard
    from stagectl.core.lut import Lut3D

    walls = [w.name for w in stage.walls]
    cards = []
    for i, (wall, layer) in enumerate(zip((walls * 4)[:4], ("over", "under", "over", "under"))):
        u = 0.05 + 0.22 * i
        cards.append(LightCard(f"card-{i}", wall, (u, 0.1, u + 0.15, 0.6), (1.0, 0.9, 0.8), 1.5, layer, 24.0))
    n = 33
    g = np.linspace(0.0, 1.0, n)
    curve = g + 0.08 * np.sin(2 * np.pi * g) / (2 * np.pi)  # a monotonic S-curve per channel
    table = np.stack(np.meshgrid(curve, curve, curve, indexing="ij"), axis=-1)
    grade = ColorCorrection(exposure=0.3, temperature=5600.0, tint=2.0, slope=(1.05, 1.0, 0.97),
                            offset=(0.01, 0.0, -0.01), power=(1.0, 1.02, 1.0), saturation=1.1)
    return FeatureState(light_cards=tuple(cards), wall_color={w: grade for w in walls},
                        inner_color=ColorCorrection(exposure=-0.2, lut=Lut3D(table, title="bench S-curve")))


def colour_settings(stage, kind: str):
    """The ``colour:`` section of the colour modes for every output of ``stage``: ``ocio`` (ACES 2.0 HDR 1000
    nits on Rec.2100-PQ, studio config) or ``pq`` (PQ 1000 nits, Rec.2020), 10-bit canvases."""
    from stagectl.color.stagefile import ColourSettings, OutputColour

    if kind == "ocio":
        oc = OutputColour("rgb10_a2", display="Rec.2100-PQ - Display", view="ACES 2.0 - HDR 1000 nits (P3 D65)")
    else:
        oc = OutputColour("rgb10_a2", "pq", 1000.0, target="Linear Rec.2020")
    keys = [f"{p.name}/{o.name}" for p in stage.processors for o in p.outputs]
    return ColourSettings("ocio://studio-config-latest", "Linear Rec.709 (sRGB)", {k: oc for k in keys})


COLOUR_MODES = ["per-pass-features", "per-pass-features-ocio", "per-pass-features-pq"]


def _on_demand(renderer, repeats: int = 5) -> dict:
    """What the consumers of a deep stage's codes pay, apart from the frame (the last frame's canvases): the
    readback keeps ``rgb10_a2`` canvases as packed words (the sink takes them as they are); unpacking them into
    uint16 codes and the tone-mapped 8-bit previews happen only when asked (PNG previews, thumbnails)."""
    from stagectl.render.gl.readback import unpack_rgb10_a2

    t0 = time.perf_counter_ns()
    renderer.preview_images()  # the first builds (bakes) the preview transforms
    first = time.perf_counter_ns() - t0
    unpack_ns, preview_ns = [], []
    for _ in range(repeats):
        words = [w for w in renderer.canvases(packed=True).values() if w.ndim == 2]
        t0 = time.perf_counter_ns()
        for w in words:
            unpack_rgb10_a2(w)
        t1 = time.perf_counter_ns()
        renderer.preview_images()
        preview_ns.append(time.perf_counter_ns() - t1)
        unpack_ns.append(t1 - t0)
    return {"unpack to codes (all outputs)": _ms(summarize_ns(unpack_ns)),
            "8-bit previews (all outputs)": _ms(summarize_ns(preview_ns)),
            "first preview (builds the LUTs)": _ms(summarize_ns([first]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench render", description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", default=str(REPO / "stages" / "demo.yaml"))
    ap.add_argument("--frames", type=int, default=96, help="timed frames per mode")
    ap.add_argument("--warmup", type=int, default=8, help="untimed frames before each mode")
    ap.add_argument("--move", default="orbit", help="simulator move the camera follows")
    ap.add_argument("--modes", default="all", help="comma-separated modes (default all; 'colour': "
                                                   + ", ".join(COLOUR_MODES) + ")")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results JSON")
    args = ap.parse_args(argv)

    from stagectl.core.transforms import transform_from_pose
    from stagectl.render.camera import camera_state
    from stagectl.render.frustum import warmup as frustum_warmup
    from stagectl.render.gl.context import create_context  # picks the EGL platform before OpenGL loads
    from stagectl.render.gl.platform import GL
    from stagectl.render.plan import FramePlanner
    from stagectl.render.renderer import StageRenderer
    from stagectl.stage import load_stage
    from stagectl.tracking.moves import pose_at

    stage = load_stage(args.stage)
    if not stage.cameras:
        print(f"stage {stage.name!r} has no camera", file=sys.stderr)
        return 2
    frustum_warmup()
    ctx = create_context("egl")
    info = ctx.info.summary()
    print(f"renderer: {info}")
    cam = stage.cameras[0]
    n_total = args.warmup + args.frames

    def cameras(k: int):
        p = pose_at(args.move, k / 24.0)
        return [camera_state(stage, cam, transform_from_pose(p.x, p.y, p.z, p.pan, p.tilt, p.roll),
                             zoom=p.zoom, focus=p.focus)]

    all_modes = ["per-pass", "frame-sync", "frame-async", "frame-noreadback", "frame-dynamic-outer",
                 "frame-no-tile-culling", "per-pass-features", "frame-features"]
    colour_only = ["per-pass-features-ocio", "per-pass-features-pq"]
    modes = all_modes if args.modes == "all" else (
        COLOUR_MODES if args.modes == "colour" else [m.strip() for m in args.modes.split(",")])
    all_modes = all_modes + colour_only
    unknown = set(modes) - set(all_modes)
    if unknown:
        print(f"unknown modes {sorted(unknown)}; known: {', '.join(all_modes)}", file=sys.stderr)
        return 2

    results: dict[str, dict] = {}
    touched_share: list[float] = []
    try:
        for mode in modes:
            planner = FramePlanner(
                stage,
                outer_static=(mode != "frame-dynamic-outer"),
                cull_tiles=(mode != "frame-no-tile-culling"),
            )
            readback = {"frame-async": "async", "frame-noreadback": "none"}.get(mode, "sync")
            mode_stage = stage
            if mode in colour_only:
                import dataclasses

                mode_stage = dataclasses.replace(stage, colour=colour_settings(stage, mode.rsplit("-", 1)[1]))
            renderer = StageRenderer(mode_stage, ctx, readback=readback)
            features = busy_features(stage) if "-features" in mode else None
            finish = mode.startswith("per-pass")
            if mode in colour_only:
                print(f"    ({mode}: {mode_stage.colour.output(renderer.keys[0]).describe()})")
            try:
                plans = [planner.plan(cameras(k), frame=k, features=features) for k in range(n_total)]
                if mode == "per-pass":
                    for p in plans[args.warmup:]:
                        n = sum(o.touched.size for o in p.outputs)
                        touched_share.append(sum(int(o.touched.sum()) for o in p.outputs) / max(1, n))
                per_pass: dict[str, list[int]] = {}
                frame_ns: list[int] = []
                failures = 0
                gc.collect()
                gc.disable()
                try:
                    for k, plan in enumerate(plans):
                        t0 = time.perf_counter_ns()
                        res = renderer.render_frame(plan, finish_passes=finish)
                        if mode == "frame-noreadback":
                            GL.glFinish()
                        t1 = time.perf_counter_ns()
                        failures += 0 if res.ok else 1
                        if k < args.warmup:
                            continue
                        frame_ns.append(t1 - t0)
                        if finish:
                            for name, v in res.timings_ns.items():
                                if name != "frame":
                                    per_pass.setdefault(name, []).append(v)
                    t_end = time.perf_counter_ns()
                    renderer.flush()
                    GL.glFinish()
                    drain_ns = time.perf_counter_ns() - t_end
                finally:
                    gc.enable()
                total_s = (sum(frame_ns) + drain_ns) / 1e9
                entry = {
                    "readback": readback,
                    "frames": len(frame_ns),
                    "failures": failures,
                    "frame": _ms(summarize_ns(frame_ns)),
                    "fps": len(frame_ns) / total_s,
                }
                if per_pass:
                    entry["passes"] = {name: _ms(summarize_ns(v)) for name, v in per_pass.items()}
                results[mode] = entry
                line = (f"{mode:22s} frame median {entry['frame']['median_ms']:6.1f} ms, "
                        f"p99 {entry['frame']['p99_ms']:6.1f} ms, {entry['fps']:5.1f} fps")
                print(line + (f" ({failures} failed)" if failures else ""))
                if per_pass:
                    for name, s in entry["passes"].items():
                        print(f"    {name:28s} median {s['median_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  "
                              f"(n={s['n']})")
                if mode in colour_only:
                    entry["on_demand"] = _on_demand(renderer)
                    for name, s in entry["on_demand"].items():
                        print(f"    {name:28s} median {s['median_ms']:6.2f} ms  (on demand, not per frame)")
                if mode == "per-pass":
                    # the static-content passes, forced: atlas faces and outer-only canvases
                    plan = plans[-1]
                    outer_ns, cache_ns = [], []
                    for _ in range(10):
                        GL.glFinish()
                        t0 = time.perf_counter_ns()
                        renderer.outer.render(plan.outer, renderer.scene, force=True)
                        GL.glFinish()
                        t1 = time.perf_counter_ns()
                        renderer.compositor.update_cache(
                            renderer.outer.key, plan.uniforms, renderer.outer.texture, force=True
                        )
                        GL.glFinish()
                        t2 = time.perf_counter_ns()
                        outer_ns.append(t1 - t0)
                        cache_ns.append(t2 - t1)
                    entry["static_passes"] = {
                        f"outer ({len(plan.outer.faces)} cube faces of {plan.outer.face_size} px)":
                            _ms(summarize_ns(outer_ns)),
                        "outer-only canvases (all outputs)": _ms(summarize_ns(cache_ns)),
                    }
                    for name, s in entry["static_passes"].items():
                        print(f"    {name:28s} median {s['median_ms']:6.2f} ms  (static content: when the "
                              f"viewpoint changes)")
            finally:
                renderer.release()
    finally:
        ctx.release()

    per = (results.get("per-pass") or results.get("per-pass-features") or {}).get("passes", {})
    slowest = max(per.items(), key=lambda kv: kv[1]["median_ms"])[0] if per else None
    per_f = results.get("per-pass-features", {}).get("passes", {})
    slowest_f = max(per_f.items(), key=lambda kv: kv[1]["median_ms"])[0] if per_f else None
    sync = results.get("frame-sync") or next(iter(results.values()))
    summary = {
        "goal_fps": GOAL_FPS,
        "fps_frame_sync": results.get("frame-sync", {}).get("fps"),
        "fps_frame_features": results.get("frame-features", {}).get("fps"),
        "fps_frame_async": results.get("frame-async", {}).get("fps"),
        "goal_met_sync": bool(sync["fps"] >= GOAL_FPS),
        "slowest_pass": slowest,
        "slowest_pass_median_ms": per[slowest]["median_ms"] if slowest else None,
        "slowest_pass_features": slowest_f,
        "slowest_pass_features_median_ms": per_f[slowest_f]["median_ms"] if slowest_f else None,
        "mean_share_of_tiles_touched_by_inner": float(np.mean(touched_share)) if touched_share else None,
    }
    print(f"\nslowest pass: {slowest} ({summary['slowest_pass_median_ms'] or 0:.1f} ms median); "
          f"whole frame with sync readback {sync['fps']:.1f} fps (goal {GOAL_FPS:g}: "
          f"{'met' if summary['goal_met_sync'] else 'not met'})"
          + (f"; async readback {summary['fps_frame_async']:.1f} fps" if summary["fps_frame_async"] else "")
          + (f"; features on {summary['fps_frame_features']:.1f} fps" if summary["fps_frame_features"] else "")
          + (f"; inner frustum touched {summary['mean_share_of_tiles_touched_by_inner'] * 100:.0f} % of "
             f"the canvas tiles on average" if touched_share else ""))
    if not args.no_write:
        layouts = [(o.key, o.canvas) for o in FramePlanner(stage).plan(cameras(0)).outputs]
        payload = {
            "what": "StageRenderer.render_frame for one tracked camera following a simulator move",
            "renderer": info,
            "settings": {
                "stage": _display(args.stage),
                "frames": args.frames, "warmup": args.warmup, "move": args.move,
                "inner_resolution": list(stage.render.inner.resolution),
                "outer_resolution": list(stage.render.outer.resolution),
                "canvases": {k: list(c) for k, c in layouts},
                "gc_disabled_while_timing": True,
            },
            "modes": results,
            "summary": summary,
        }
        colour_run = any(m in colour_only for m in modes)
        if colour_run:
            payload["what"] += ("; the composite pass with the busy features, plain (8-bit sRGB) against 10-bit "
                                "outputs encoded by OpenColorIO in the composite shader")
        stamped, latest = write_results("render-colour" if colour_run else "render", payload)
        print(f"wrote {stamped.relative_to(REPO)} and {latest.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
