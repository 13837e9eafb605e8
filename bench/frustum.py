"""Per-frame frustum maths for one camera: Numba ``FrustumWorkspace.update`` vs the plain-numpy twin.

    python -m bench frustum [--iterations N] [--numpy-iterations N] [--seed S] [--no-write]

Stages: (a) the demo stage (``stages/demo.yaml`` through ``stagectl.stage.load_stage`` when that exists, else
an equivalent geometry built here: curved main wall r = 5 m, 16 x 6 cabinets of 500 mm / 176 px, plus an 8 x 8
ceiling at z = 3.5 m), (b) a generated 10,000-cabinet stage (a curved 100 x 100 wall, r = 10 m). Every
iteration uses a different camera pose and zoom. Goal: p99 <= 100 us per frame at 10,000 cabinets, and Numba
faster than numpy at every size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.common import summarize_ns, time_calls, write_results

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the numpy twins live in tests/reference
    sys.path.insert(0, str(REPO))

from stagectl.core.transforms import transform_from_pose  # noqa: E402
from stagectl.render import frustum as F  # noqa: E402
from stagectl.stage.geometry import (  # noqa: E402
    ceiling_geometry,
    curved_facet_angle_deg,
    curved_wall_geometry,
)
from tests.reference import frustum_ref as ref  # noqa: E402

P99_GOAL_US = 100.0
NEAR, FAR, MARGIN = 0.05, 1000.0, 0.0


def demo_walls() -> tuple[list[tuple[str, object]], str]:
    """``[(name, WallGeometry)]`` of the demo stage and a note on where it came from."""
    path = REPO / "stages" / "demo.yaml"
    try:
        from stagectl.stage import load_stage  # type: ignore[attr-defined]
    except ImportError:
        load_stage = None
    if load_stage is not None and path.exists():
        try:
            stage = load_stage(path)
            return [(w.name, w.geometry) for w in stage.walls], f"load_stage({path.relative_to(REPO)})"
        except Exception as exc:  # a half-written loader must not stop the bench
            print(f"load_stage({path}) failed ({exc!r}); using the built-in demo geometry", file=sys.stderr)
    why = "stagectl.stage.load_stage missing" if load_stage is None else f"{path.relative_to(REPO)} missing"
    radius, cols, rows = 5.0, 16, 6
    arc = cols * curved_facet_angle_deg(radius, 0.5)
    cab = ((500.0, 500.0), (176, 176))
    main = curved_wall_geometry((0.0, 0.0), radius, 90.0 - arc / 2, 0.0, cols, rows, *cab)
    ceiling = ceiling_geometry((0.0, 2.5, 3.5), 0.0, 8, 8, *cab)
    return [("main", main), ("ceiling", ceiling)], f"built-in demo-like geometry ({why})"


def big_walls() -> tuple[list[tuple[str, object]], str]:
    radius, cols, rows = 10.0, 100, 100
    arc = cols * curved_facet_angle_deg(radius, 0.5)
    g = curved_wall_geometry((0.0, 0.0), radius, 90.0 - arc / 2, 0.0, cols, rows, (500.0, 500.0), (176, 176))
    note = f"generated: curved {cols}x{rows} cabinets, r = {radius} m, arc {arc:.0f} deg"
    return [("curved100x100", g)], note


def camera_track(rng, n: int, big: bool) -> list[tuple]:
    """n frames of (T_stage_camera, focal_mm, pp_x, pp_y, pupil_offset_m): poses and zoom all vary."""
    frames = []
    for _ in range(n):
        if big:
            x, y, z = rng.uniform([-3.0, -3.0, 1.0], [3.0, 3.0, 2.5])
            pan, tilt = rng.uniform(-180, 180), rng.uniform(-20, 40)
        else:
            x, y, z = rng.uniform([-2.0, -1.0, 0.8], [2.0, 2.5, 2.2])
            pan, tilt = rng.uniform(-60, 60), rng.uniform(-10, 35)
        T = np.ascontiguousarray(transform_from_pose(x, y, z, pan, tilt, rng.uniform(-5, 5)))
        frames.append((T, rng.uniform(18.0, 85.0), rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3),
                       rng.uniform(0.05, 0.2)))
    return frames


SENSOR = (24.89, 14.0)  # Super 35 16:9, as the demo camera
OVERSCAN = (10.0, 10.0, 10.0, 10.0)


def bench_stage(label, walls, source, n_numba, n_numpy, seed) -> dict:
    geoms = [g for _, g in walls]
    ws = F.FrustumWorkspace(geoms, near=NEAR, far=FAR, margin_ndc=MARGIN)
    fr = ref.FrameRef(geoms, near=NEAR, far=FAR, margin_ndc=MARGIN)
    rng = np.random.default_rng(seed)
    frames = camera_track(rng, max(n_numba, n_numpy), big=ws.cabinet_count > 1000)
    sw, sh = SENSOR

    def run_numba(i):
        T, f, px, py, e = frames[i % len(frames)]
        return ws.update(T, f, sw, sh, px, py, OVERSCAN, e)

    def run_numpy(i):
        T, f, px, py, e = frames[i % len(frames)]
        return ref.frame_math_ref(fr, T, f, sw, sh, px, py, OVERSCAN, e)

    # the two agree on what they compute (a cheap guard against benchmarking a broken kernel)
    mismatches = 0
    covered = []
    for i in range(0, len(frames), max(1, len(frames) // 50)):
        n = run_numba(i)
        r = run_numpy(i)
        mismatches += int(not np.array_equal(ws.covered.astype(bool), r["covered"]))
        covered.append(n)
    t_numba = time_calls(run_numba, n_numba, warmup=200)
    t_numpy = time_calls(run_numpy, n_numpy, warmup=20)
    s_numba, s_numpy = summarize_ns(t_numba), summarize_ns(t_numpy)
    return {
        "label": label,
        "source": source,
        "walls": [{"name": n, "cols": g.cols, "rows": g.rows, "facets": g.facet_count} for n, g in walls],
        "cabinets": ws.cabinet_count,
        "corners": int(ws.corners.shape[1]),
        "facets": int(ws.facets.shape[0]),
        "mean_covered_cabinets": float(np.mean(covered)),
        "coverage_mismatches_vs_numpy": mismatches,
        "numba": s_numba,
        "numpy": s_numpy,
        "speedup_median": s_numpy["median_us"] / s_numba["median_us"],
        "speedup_p99": s_numpy["p99_us"] / s_numba["p99_us"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench frustum", description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=5000, help="timed Numba frames per stage")
    ap.add_argument("--numpy-iterations", type=int, default=2000, help="timed numpy frames per stage")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results JSON")
    args = ap.parse_args(argv)

    F.warmup()
    results = []
    for label, builder in (("demo", demo_walls), ("10k", big_walls)):
        walls, source = builder()
        print(f"[{label}] {source}")
        results.append(bench_stage(label, walls, source, args.iterations, args.numpy_iterations, args.seed))

    print()
    print(f"{'stage':6} {'cabinets':>8} {'impl':6} {'median us':>10} {'p99 us':>10} {'max us':>10}  speed-up")
    for r in results:
        for impl in ("numba", "numpy"):
            s = r[impl]
            extra = ""
            if impl == "numpy":
                extra = f"x{r['speedup_median']:.0f} median, x{r['speedup_p99']:.0f} p99"
            print(f"{r['label']:6} {r['cabinets']:>8} {impl:6} {s['median_us']:>10.1f} {s['p99_us']:>10.1f} "
                  f"{s['max_us']:>10.1f}  {extra}")
    big = results[-1]
    goals = {
        "p99_goal_us": P99_GOAL_US,
        "p99_10k_us": big["numba"]["p99_us"],
        "p99_10k_met": big["numba"]["p99_us"] <= P99_GOAL_US,
        "numba_faster_everywhere": all(r["speedup_median"] > 1 and r["speedup_p99"] > 1 for r in results),
        "coverage_agrees": all(r["coverage_mismatches_vs_numpy"] == 0 for r in results),
    }
    print(f"\n10k p99 {big['numba']['p99_us']:.1f} us (goal <= {P99_GOAL_US:.0f}): "
          f"{'met' if goals['p99_10k_met'] else 'NOT met'}; Numba faster at every size: "
          f"{goals['numba_faster_everywhere']}; coverage agrees with numpy: {goals['coverage_agrees']}")
    if not args.no_write:
        payload = {
            "what": "FrustumWorkspace.update (one camera, all walls) vs "
                    "tests/reference/frustum_ref.frame_math_ref",
            "settings": {"iterations": args.iterations, "numpy_iterations": args.numpy_iterations,
                         "seed": args.seed, "sensor_mm": SENSOR, "overscan_pct": OVERSCAN,
                         "near": NEAR, "far": FAR, "margin_ndc": MARGIN, "gc_disabled_while_timing": True},
            "stages": results,
            "goals": goals,
        }
        stamped, latest = write_results("frustum", payload)
        print(f"wrote {stamped.relative_to(REPO)} and {latest.relative_to(REPO)}")
    return 0
