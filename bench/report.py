"""Markdown report of the latest bench results, with a comparison in frames against published figures.

``python -m bench report [--results DIR] [--out FILE]``

Reads ``latency``, ``tracking``, ``frustum``, ``render`` and ``cluster`` ``-latest.json`` from
``bench/results`` (``--results``) and writes ``bench/results/REPORT.md`` (``--out``): one table per suite with
median, p99 and the bench's goal, then one table that puts stagectl's latency-relevant figures next to the
published figures collected in the project's reference notes (``docs/reference/CALIBRATION_AND_TIMING.md``
§0, §6, each cited with its source as written there), all in frames. ``python -m bench all`` writes it after
the benches.

Frames: ``frames = ms / period_ms`` with the exact frame period ``period_ms = 1000 * den / num`` of the rate
the figure was measured at (the JSON's rate, or the bench stage's ``frame_rate``). Published figures given in
ms are converted at :data:`REFERENCE_RATE`, the demo stage's 24000/1001, and say so; figures published in
frames are quoted as published. Every stagectl row names the machine of its JSON (CPU, cores, Python, numpy,
Numba, GL renderer) and the UTC time of the run. A missing or unreadable JSON leaves its suite out with a
note; it never stops the report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import RESULTS_DIR

REPO = Path(__file__).resolve().parents[1]
SUITES = ("latency", "tracking", "frustum", "render", "cluster")
REFERENCE_DOC = "docs/reference/CALIBRATION_AND_TIMING.md"
REFERENCE_RATE = "24000/1001"  # published ms figures are put in frames at the demo stage's rate
FRUSTUM_RATE = "60"  # the frustum bench's goal is stated against a 60 fps frame (no rate in its JSON)

__all__ = ["Anchor", "ANCHORS", "period_ms", "build_report", "write_report", "main"]


# ============================================================================================== anchors


@dataclass(frozen=True)
class Anchor:
    """A published latency figure: ``figure`` and ``source`` are quoted verbatim from ``section`` of the
    reference notes. ``frames`` (lo, hi) when published in frames, else ``ms`` (lo, hi) converted at
    :data:`REFERENCE_RATE`. ``segment`` says which part of the chain it measures."""

    segment: str
    item: str
    figure: str
    source: str
    section: str
    frames: tuple[float, float] | None = None
    ms: tuple[float, float] | None = None
    kind: str = "published"  # or "derived" (engineering reasoning in the notes, not a source's statement)
    frames_text: str | None = None  # how the frames read when not "lo–hi" (e.g. "3 → 1")
    machine: str = "the source's own stage (not stated in the notes)"


ANCHORS: tuple[Anchor, ...] = (
    Anchor("end to end", "*The Mandalorian* S1", "10–12 frames; frustum ~40 % larger",
           "https://theasc.com/articles/the-mandalorian", "§6.1", frames=(10, 12),
           machine="the production's LED volume"),
    Anchor("end to end", "VP round table", "7–12 frames total; processors ~1 frame",
           "https://online.bright-publishing.com/view/228732168/56/", "§6.1", frames=(7, 12)),
    Anchor("end to end", "MRMC community", "5–7 frames, fixed by delaying tracking",
           "https://mrmc-community.robotface.com.au/issues/VP-ar-tracking-delay-compensation.html", "§6.1",
           frames=(5, 7)),
    Anchor("end to end", "Capture card G2G", "3–5 frames", "Bluefish444 case study", "§6.1", frames=(3, 5)),
    Anchor("end to end", "Physical floor", "Floor ≈ t_track + 3T ≈ 3 frames", "Physical floor (derived)",
           "§6.2", frames=(3, 3), kind="derived",
           machine="— (derived: tracker, render tick, render, scan-out)"),
    Anchor("end to end", "Blog (low authority)",
           "13–58 ms G2G: sensor 4–18, tracking 2–12, render 6–20, LED 1–8 ms",
           "https://chimneymedia.com/articles/verify-unreal-camera-tracking-latency/", "§6.1", ms=(13, 58)),
    Anchor("render node", "Blog (low authority), render share", "render 6–20",
           "https://chimneymedia.com/articles/verify-unreal-camera-tracking-latency/", "§6.1", ms=(6, 20)),
    Anchor("render node", "Stage Precision",
           "default 1 frame; \"late tick\" pulls tracking into the same frame (~4 ms margin)",
           "manual.stageprecision.com", "§6.1", frames=(1, 1)),
    Anchor("tracking input", "Blog (low authority), tracking share", "tracking 2–12",
           "https://chimneymedia.com/articles/verify-unreal-camera-tracking-latency/", "§6.1", ms=(2, 12)),
    Anchor("tracking input", "OptiTrack PrimeX 41", "5.56 ms (≤180 Hz), 4.17 (240), 2.0 (500), 1.0 (1000 Hz)",
           "https://docs.optitrack.com/developer-tools/natnet-sdk/latency-measurements", "§6.1",
           ms=(1.0, 5.56),
           machine="OptiTrack PrimeX 41 cameras (camera latency)"),
    Anchor("tracking input", "Qualisys", "6–7 ms at 200 Hz", "Qualisys / ETH Zürich test", "§6.1", ms=(6, 7),
           machine="a Qualisys system at 200 Hz"),
    Anchor("multi-node sync", "nDisplay without NVIDIA sync", "≥ 1 frame hardware delay",
           "UE \"Synchronization in nDisplay\"", "§6.1", frames=(1, 1)),
    Anchor("frame pacing", "Swap timing broken if", "stddev(Δt/ΔMSC) > 1 ms", "XDC 2014 OML talk", "§0",
           ms=(1, 1), machine="— (a health criterion for swap timing, not a measurement)"),
    Anchor("LED processor", "Brompton SX40", "2 frames end-to-end",
           "https://www.bromptontech.com/release/tessera-processor-software-2-3-4/", "§6.1", frames=(2, 2),
           machine="Brompton SX40 processor, driver chip included"),
    Anchor("LED processor", "Megapixel HELIOS", "3.0 → 1.0 frame",
           "https://www.easymanua.ls/megapixel/helios/manual?p=56", "§6.1", frames=(1, 3),
           frames_text="3 → 1",
           machine="Megapixel HELIOS processor (default → tile + processor low latency)"),
)


# ============================================================================================== numbers


def period_ms(rate: str | int | float) -> float:
    """Exact frame period in ms of a rate as the stage files write it (``24000/1001``, ``25``, ``29.97``)."""
    from stagectl.core.timebase import FrameRate

    r = FrameRate.parse(str(rate))
    return 1000.0 * r.den / r.num


def _rate_label(rate: str | int | float) -> str:
    from stagectl.core.timebase import FrameRate

    r = FrameRate.parse(str(rate))
    return f"{r.num}/{r.den}" if r.den != 1 else f"{r.num}"


def _sig(v: float | None, digits: int = 3) -> str:
    """``v`` with ``digits`` significant digits, thousands separated; ``—`` for a missing value."""
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - mag)
    return f"{v:,.{decimals}f}"


def _us(v) -> str:
    return "—" if v is None else f"{_sig(v)} µs"


def _ms(v) -> str:
    return "—" if v is None else f"{_sig(v)} ms"


def _frames(ms_value, rate) -> str:
    return "—" if ms_value is None or rate is None else _sig(ms_value / period_ms(rate))


def _met(flag) -> str:
    return "—" if flag is None else ("met" if flag else "not met")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def _get(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def machine_text(doc: dict) -> str:
    """``AMD EPYC, 2 cores, Python 3.11.7, numpy 2.4.6, numba 0.68.1[, GL renderer] (UTC stamp)``."""
    m = doc.get("machine") or {}
    parts = [str(m.get("cpu_model", "unknown CPU"))]
    cores = m.get("cpus_usable", m.get("cpu_count"))
    if cores:
        parts.append(f"{cores} cores")
    for key, label in (("python", "Python"), ("numpy", "numpy"), ("numba", "numba")):
        if m.get(key):
            parts.append(f"{label} {m[key]}")
    if doc.get("renderer"):
        parts.append(str(doc["renderer"]).split(" (")[0] + " GL")
    stamp = doc.get("utc", "")
    return ", ".join(parts) + (f" ({stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]} UTC)"
                               if len(stamp) >= 13 else "")


# ============================================================================================== suites


def _us2(s: dict) -> list[str]:
    """Median and p99 cells of a ``summarize_ns`` dict (µs)."""
    return [_us(s.get("median_us")), _us(s.get("p99_us"))]


def _ms2(s: dict) -> list[str]:
    return [_ms(s.get("median_ms")), _ms(s.get("p99_ms"))]


def _latency(doc: dict) -> tuple[list[str], list[list]]:
    m = doc.get("motion_to_photon") or {}
    rate = m.get("rate")
    render = m.get("latch_to_rendered") or (m.get("render") if isinstance(m.get("render"), dict) else None)
    rows = []
    for label, stats in (("motion-to-photon in software: FreeD arrival → frame presented",
                          m.get("arrival_to_present")),
                         ("latch → frame rendered (demo stage headless)", render),
                         ("sample age at latch (latch − arrival of the newest sample used)",
                          m.get("sample_age_at_latch"))):
        if stats:
            cells = [f"{_ms(stats.get(k))} ({_frames(stats.get(k), rate)} fr)"
                     for k in ("median_ms", "p99_ms")]
            rows.append([label, *cells, "—", "—"])
    if "packets_buffered_a_frame_or_more" in m:
        b = m["packets_buffered_a_frame_or_more"]
        rows.append([f"packets that arrived before a frame's latch but were not in it "
                     f"(of {m.get('packets', '?')})", str(b), "", "0", _met(b == 0)])
    for key, g in (doc.get("genlock") or {}).items():
        load, _, label = key.partition(":")
        rows.append([f"genlock edge error |present − ideal edge|, {load}, {label} fps, "
                     f"{g.get('frames')} frames",
                     _us(g.get("median_abs_us")), _us(g.get("p99_abs_us")),
                     f"p99 ≤ {_us(g.get('goal_p99_us'))}", _met(g.get("goal_met"))])
    notes = []
    if rate:
        edges = ", ".join(f"{k}: {v}" for k, v in (m.get("edges_passed") or {}).items())
        notes.append(f"Rate {_rate_label(rate)} fps (frame {_sig(period_ms(rate), 5)} ms); fr = frames. "
                     f"{m.get('frames', '?')} frames, {m.get('late_frames', '?')} late, "
                     f"{m.get('dropped_frames', '?')} dropped; edges passed between arrival and present: "
                     f"{edges}.")
    return notes, rows


def _tracking(doc: dict) -> tuple[list[str], list[list]]:
    dec = doc.get("decode") or {}
    rows = []
    f = dec.get("freed_decode_stamp")
    if f:
        rows.append(["FreeD bytes → TrackingSample + arrival stamp", *_us2(f),
                     f"median ≤ {_us(f.get('goal_median_us'))}", _met(f.get("goal_met"))])
    for name, s in (dec.get("opentrackio_per_sample") or {}).items():
        rows.append([f"OpenTrackIO {name} → TrackingSample", *_us2(s), "—", "—"])
    pa = doc.get("pose_at") or {}
    interp = _get(pa, "plain", "interpolate")
    if interp:
        rows.append(["Timeline.pose_at (interpolate; goal: every mode)", *_us2(interp),
                     f"median ≤ {_us(pa.get('goal_median_us'))}", _met(pa.get("goal_met"))])
    lat = doc.get("latency") or {}
    goal = lat.get("goal") or {}
    for proto in ("freed", "opentrackio"):
        s = _get(lat, proto, "send_to_pushed")
        if s:
            rows.append([f"loopback send → timeline, {proto}", *_us2(s),
                         f"p99 ≤ {_us(goal.get('goal_p99_us'))}",
                         _met(_get(goal, "goal_met_per_protocol", proto))])
    load = doc.get("load") or {}
    if load:
        rows.append([f"{len(load.get('sources', []))} sources × {_sig(load.get('rate_hz_per_source'))} "
                     f"packets/s, send → timeline; lost {load.get('lost_total')} of {load.get('sent_total')}",
                     *_us2(load.get("send_to_pushed") or {}), "no loss", _met(load.get("lost_total") == 0)])
    return [], rows


def _frustum(doc: dict) -> tuple[list[str], list[list]]:
    goals = doc.get("goals") or {}
    rows = []
    for st in doc.get("stages") or []:
        nb, npy = st.get("numba") or {}, st.get("numpy") or {}
        big = st.get("cabinets", 0) >= 10000
        rows.append([f"{st.get('label')}: {st.get('cabinets')} cabinets, Numba (numpy reference)",
                     f"{_us(nb.get('median_us'))} ({_us(npy.get('median_us'))})",
                     f"{_us(nb.get('p99_us'))} ({_us(npy.get('p99_us'))})",
                     f"p99 ≤ {_us(goals.get('p99_goal_us'))} at 10,000 cabinets" if big else "—",
                     _met(goals.get("p99_10k_met")) if big else "—"])
    return [], rows


def _render(doc: dict) -> tuple[list[str], list[list]]:
    summ = doc.get("summary") or {}
    goal_fps = summ.get("goal_fps")
    rows = []
    for mode, r in (doc.get("modes") or {}).items():
        sync = mode == "frame-sync"
        rows.append([f"whole frame, {mode} ({_sig(r.get('fps'))} fps)", *_ms2(r.get("frame") or {}),
                     f"≥ {_sig(goal_fps)} fps" if sync and goal_fps else "—",
                     _met(summ.get("goal_met_sync")) if sync else "—"])
        for name, s in (r.get("passes") or {}).items():
            rows.append([f"pass {name} ({mode})", *_ms2(s), "—", "—"])
    st = _get(doc, "settings", "stage")
    inner = "×".join(map(str, _get(doc, "settings", "inner_resolution", default=[])))
    notes = [f"Stage {st}, camera move {_get(doc, 'settings', 'move')}, inner {inner}; renderer "
             f"{doc.get('renderer', '?')}."] if st else []
    return notes, rows


def _cluster(doc: dict) -> tuple[list[str], list[list]]:
    goals = doc.get("goals") or {}
    fps = _get(doc, "settings", "fps")
    rows = []
    for r in doc.get("results") or []:
        rl = r.get("release_latency")
        if not rl:
            continue
        rows.append([f"swap barrier release latency, {r.get('nodes')} nodes "
                     f"({r.get('rounds_measured')} rounds)",
                     *_us2(rl), f"p99 ≤ {_us(goals.get('p99_goal_us'))}",
                     _met(_get(goals, "met", str(r.get("nodes"))))])
    fl = doc.get("floor_pyzmq_process_ping_pong") or {}
    for when in ("start", "end"):
        if fl.get(when):
            rows.append([f"machine floor: two-process pyzmq ping-pong ({when} of the run)", *_us2(fl[when]),
                         "—", "—"])
    notes = [f"Primary loop at {fps} fps; {_get(doc, 'settings', 'transport', default='')}."] if fps else []
    rec = doc.get("recovery")
    if rec:
        back = "rejoined" if rec.get("rejoined") else "did not rejoin"
        notes.append(f"A node killed with SIGKILL was dropped {rec.get('dropped_after_kill_ms')} ms later "
                     f"(timeout {_sig(rec.get('timeout_ms'))} ms) and {back}.")
    return notes, rows


_SUITES = {
    "latency": ("Latency (`python -m bench latency`)", _latency),
    "tracking": ("Tracking input (`python -m bench tracking`)", _tracking),
    "frustum": ("Frustum maths (`python -m bench frustum`)", _frustum),
    "render": ("Rendering (`python -m bench render`)", _render),
    "cluster": ("Cluster swap barrier (`python -m bench cluster`)", _cluster),
}


# ============================================================================================== comparison


def _stage_rate(doc: dict) -> str | None:
    """The frame rate of the stage a bench rendered (``settings.stage``, relative to the repository)."""
    st = _get(doc, "settings", "stage")
    if not st:
        return None
    path = Path(st) if Path(st).is_absolute() else REPO / st
    try:
        from stagectl.stage import load_stage

        r = load_stage(path).frame_rate
    except Exception:  # noqa: BLE001 - a stage that no longer loads only costs the frames column
        return None
    return f"{r.num}/{r.den}"


def _ours(docs: dict[str, dict]) -> list[tuple[str, str, float | None, float | None, str | None, str]]:
    """stagectl's rows: (segment, what, median ms, p99 ms, rate, machine)."""
    out = []
    lat = docs.get("latency")
    if lat:
        m = lat.get("motion_to_photon") or {}
        a = m.get("arrival_to_present") or {}
        out.append(("render node", "stagectl: tracking packet arrival → frame presented (receiver, timeline, "
                    "late latch, render, present at the edge; no scan-out, processor, LED or camera)",
                    a.get("median_ms"), a.get("p99_ms"), m.get("rate"), machine_text(lat)))
        for key, g in (lat.get("genlock") or {}).items():
            load, _, label = key.partition(":")
            out.append(("frame pacing", f"stagectl: frame edge error |present − ideal|, {load}, {label} fps",
                        _div(g.get("median_abs_us"), 1000), _div(g.get("p99_abs_us"), 1000), label,
                        machine_text(lat)))
    trk = docs.get("tracking")
    if trk:
        rate = _get(trk, "settings", "frame_rate")
        for proto in ("freed", "opentrackio"):
            s = _get(trk, "latency", proto, "send_to_pushed")
            if s:
                out.append(("tracking input", f"stagectl: loopback send → timeline, {proto}",
                            _div(s.get("median_us"), 1000), _div(s.get("p99_us"), 1000), rate,
                            machine_text(trk)))
    ren = docs.get("render")
    if ren:
        fr = _get(ren, "modes", "frame-sync", "frame") or {}
        if fr:
            out.append(("render node", "stagectl: render one frame of the bench stage, sync readback "
                        "(llvmpipe, no GPU)", fr.get("median_ms"), fr.get("p99_ms"), _stage_rate(ren),
                        machine_text(ren)))
    fru = docs.get("frustum")
    if fru:
        for st in fru.get("stages") or []:
            nb = st.get("numba") or {}
            out.append(("render node", f"stagectl: frustum maths, {st.get('cabinets')} cabinets (Numba)",
                        _div(nb.get("median_us"), 1000), _div(nb.get("p99_us"), 1000), FRUSTUM_RATE,
                        machine_text(fru)))
    clu = docs.get("cluster")
    if clu:
        fps = _get(clu, "settings", "fps")
        for r in clu.get("results") or []:
            rl = r.get("release_latency")
            if rl:
                out.append(("multi-node sync",
                            f"stagectl: software swap barrier release, {r.get('nodes')} nodes",
                            _div(rl.get("median_us"), 1000), _div(rl.get("p99_us"), 1000),
                            None if fps is None else str(fps), machine_text(clu)))
    return out


def _div(v, d):
    return None if v is None else v / d


def _comparison(docs: dict[str, dict]) -> list[str]:
    segments = ("end to end", "render node", "tracking input", "frame pacing", "multi-node sync",
                "LED processor")
    ours = _ours(docs)
    rows = []
    ref = period_ms(REFERENCE_RATE)
    for seg in segments:
        for s, what, med, p99, rate, machine in ours:
            if s != seg:
                continue
            rows.append([seg, what, f"{_frames(med, rate)} / {_frames(p99, rate)}",
                         f"{_ms(med)} / {_ms(p99)}", f"{_rate_label(rate)} fps" if rate else "—",
                         "this repository's bench JSON", machine])
        for a in ANCHORS:
            if a.segment != seg:
                continue
            if a.frames is not None:
                lo, hi = a.frames
                frames = a.frames_text or (f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}")
                ms = (_ms(lo * ref) if lo == hi else f"{_sig(lo * ref)}–{_sig(hi * ref)} ms") + " at 23.976"
                at = "as published"
            else:
                lo, hi = a.ms
                frames = _sig(lo / ref) if lo == hi else f"{_sig(lo / ref)}–{_sig(hi / ref)}"
                ms = _ms(lo) if lo == hi else f"{_sig(lo)}–{_sig(hi)} ms"
                at = f"{_rate_label(REFERENCE_RATE)} fps (converted here)"
            what = f"{a.item}: “{a.figure}”"
            if a.kind == "derived":
                what += " (derived in the notes, not a measurement)"
            rows.append([seg, what, frames, ms, at, f"{a.source} ({REFERENCE_DOC} {a.section})", a.machine])
    head = ["segment", "figure", "frames (median / p99, or published)", "ms", "rate", "source", "machine"]
    return _table(head, rows)


# ============================================================================================== report


def load_results(results_dir: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """The ``<suite>-latest.json`` documents found, and why each other suite is missing or unreadable."""
    docs, missing = {}, {}
    for s in SUITES:
        p = Path(results_dir) / f"{s}-latest.json"
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            missing[s] = f"no {p.name} (run `python -m bench {s}`)"
            continue
        except (OSError, ValueError) as exc:
            missing[s] = f"{p.name} is unreadable: {exc}"
            continue
        if not isinstance(doc, dict):
            missing[s] = f"{p.name} is not a JSON object"
            continue
        docs[s] = doc
    return docs, missing


def build_report(results_dir: Path = RESULTS_DIR) -> str:
    """The markdown text of the report for the JSON files in ``results_dir``."""
    docs, missing = load_results(results_dir)
    lines = ["# stagectl benchmark report", "",
             "Written by `python -m bench report` from `bench/results/*-latest.json` (also the last step of "
             "`python -m bench all`); edit the benches, not this file. Medians and p99 are of the bench's "
             "own samples; a goal is the bench's. Every suite names the machine it ran on: figures from "
             "different machines or days do not compare closely.", ""]
    for s in SUITES:
        title, fn = _SUITES[s]
        lines += [f"## {title}", ""]
        if s not in docs:
            lines += [f"Not in this report: {missing[s]}.", ""]
            continue
        doc = docs[s]
        lines += [f"Machine: {machine_text(doc)}.", ""]
        try:
            notes, rows = fn(doc)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            lines += [f"Not in this report: `{s}-latest.json` does not have the expected layout ({exc!r}).",
                      ""]
            continue
        if doc.get("what"):
            lines += [f"What: {doc['what']}.", ""]
        lines += _table(["measurement", "median", "p99", "goal", "goal met"], rows) + [""]
        lines += [n for note in notes for n in (note, "")]
    lines += ["## In frames, against published figures", "",
              f"stagectl's figures in frames of the rate each was measured at (`frames = ms / period`, "
              f"period `1000 · den / num` ms), next to the published figures of `{REFERENCE_DOC}` (§0 quick "
              f"numbers, §6.1 published figures, §6.2 derived floor), quoted as written there with their "
              f"sources. Published ms figures are put in frames at {_rate_label(REFERENCE_RATE)} fps; "
              f"published frame counts are at their production's own rate. stagectl measures one software "
              f"segment of the chain on a CPU-only machine: the end-to-end figures include the camera, the "
              f"tracker, scan-out, the LED processor and the wall, which no bench here covers.", ""]
    lines += _comparison(docs) + [""]
    lines += _reading(docs)
    return "\n".join(lines)


RENDER_BUDGET = "wait for render tick (0…T; ≈ 0 with late latching) → render (≤ T)"  # §6.2, verbatim


def _reading(docs: dict[str, dict]) -> list[str]:
    """One paragraph that reads the software segment against the notes' derived per-frame budget."""
    m = _get(docs, "latency", "motion_to_photon") or {}
    a, rate = m.get("arrival_to_present") or {}, m.get("rate")
    if not (rate and a.get("median_ms") is not None and a.get("p99_ms") is not None):
        return []
    med, p99 = a["median_ms"] / period_ms(rate), a["p99_ms"] / period_ms(rate)
    verdict = "within" if p99 <= 2.0 else "above"
    return [f"Reading: tracking arrival → frame presented took {_sig(med)} frames median and {_sig(p99)} p99 "
            f"at {_rate_label(rate)} fps on {machine_text(docs['latency'])}. The notes' derived floor (§6.2) "
            f"gives the render node “{RENDER_BUDGET}”, at most 2 frames before scan-out; the p99 is "
            f"{verdict} that. The rest of a stage's 7–12 frames (VP round table, §6.1) lies in scan-out, the "
            f"LED processor, the wall and the camera, outside what these benches measure.", ""]


def write_report(results_dir: Path = RESULTS_DIR, out: Path | None = None) -> Path:
    """Write the report (default ``results_dir / REPORT.md``); returns its path."""
    out = Path(out) if out is not None else Path(results_dir) / "REPORT.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(Path(results_dir)), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(RESULTS_DIR), help="folder of the *-latest.json files")
    ap.add_argument("--out", default=None, help="markdown file to write (default RESULTS/REPORT.md)")
    args = ap.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        print(f"python -m bench report: error: {results} is not a folder", file=sys.stderr)
        return 2
    docs, missing = load_results(results)
    for s, why in missing.items():
        print(f"python -m bench report: {s}: {why}", file=sys.stderr)
    path = write_report(results, args.out)
    print(f"wrote {path} ({len(docs)} of {len(SUITES)} suites)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
