"""Timing helpers shared by the benches: warm-up, perf_counter_ns samples, percentiles, machine info, JSON."""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def time_calls(fn: Callable[[int], object], iterations: int, warmup: int = 100,
               disable_gc: bool = True) -> np.ndarray:
    """Call ``fn(i)`` ``warmup`` times untimed, then ``iterations`` times, each timed alone with the monotonic
    ``time.perf_counter_ns``. Returns the per-call durations in nanoseconds (int64). The garbage collector is
    paused while timing unless ``disable_gc`` is False."""
    for i in range(warmup):
        fn(i)
    samples = np.empty(iterations, dtype=np.int64)
    clock = time.perf_counter_ns
    was_enabled = gc.isenabled()
    if disable_gc:
        gc.collect()
        gc.disable()
    try:
        for i in range(iterations):
            t0 = clock()
            fn(i)
            samples[i] = clock() - t0
    finally:
        if disable_gc and was_enabled:
            gc.enable()
    return samples


def summarize_ns(samples_ns) -> dict:
    """Median / p99 / max (and friends) in microseconds."""
    us = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {
        "n": int(us.size),
        "median_us": float(np.median(us)),
        "p90_us": float(np.percentile(us, 90)),
        "p99_us": float(np.percentile(us, 99)),
        "max_us": float(us.max()),
        "min_us": float(us.min()),
        "mean_us": float(us.mean()),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    info = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        info["cpus_usable"] = os.cpu_count()
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:
        info["numba"] = None
    for var in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if var in os.environ:
            info.setdefault("env", {})[var] = os.environ[var]
    return info


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_results(name: str, payload: dict, results_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``payload`` (plus machine info and a UTC timestamp) to ``<name>-<UTC stamp>.json`` and
    ``<name>-latest.json`` under ``bench/results``; returns both paths."""
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    doc = {"bench": name, "utc": stamp, "machine": machine_info(), **payload}
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    stamped = out_dir / f"{name}-{stamp}.json"
    latest = out_dir / f"{name}-latest.json"
    stamped.write_text(text, encoding="utf-8")
    latest.write_text(text, encoding="utf-8")
    return stamped, latest
