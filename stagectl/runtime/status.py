"""What a running stage says about itself: the status line per camera, the console's live status, the
end-of-run tracking summary.

Everything here reads a :class:`~stagectl.runtime.stage.StageRuntime`: the rigs (this frame's timeline
answer, focal length, overscan), the receivers' statistics (state, why it is not live, accepted sample rate,
bad packets by reason, packets from other cameras) and :attr:`StageRuntime.last`, the last plan together with
the stage it was planned on -- so after a ``stage.reload`` the covered cabinets are named after the walls of
the stage that was planned. Units: ms and µs as the keys say, stage metres, degrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "camera_line",
    "console_status",
    "frustum_corners",
    "outputs_status",
    "recording_status",
    "tracking_summary",
    "tracking_words",
]


def frustum_corners(VP: np.ndarray, eye: np.ndarray, reach_m: float = 8.0) -> list[list[float]]:
    """The four corners of a frustum ``reach_m`` metres from ``eye`` along its corner rays (stage metres;
    order: bottom-left, bottom-right, top-right, top-left in NDC), for the web console's map."""
    inv = np.linalg.inv(np.asarray(VP, dtype=np.float64))
    out = []
    for x, y in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        p = inv @ np.array([x, y, 1.0, 1.0])
        d = p[:3] / p[3] - eye
        n = float(np.linalg.norm(d))
        out.append((eye + d / n * reach_m).round(4).tolist() if n > 0 else eye.round(4).tolist())
    return out


def tracking_summary(receivers, now_ns: int) -> str:
    """The end-of-run line about every tracking source: samples accepted, bad packets by reason, packets from
    other cameras, and the state it ended in."""
    parts = []
    for r in receivers:
        st = r.stats(now_ns)
        bad = ", ".join(f"{k} {v}" for k, v in st.bad.items() if v)
        parts.append(f"{r.name}: {st.samples} samples, {st.bad_total} bad packets{' (' + bad + ')' if bad else ''}, "
                     f"{st.other_source} from other cameras, {st.state} at the end")
    return "stagectl run: tracking: " + ("; ".join(parts) if parts else "no sources") + "."


def tracking_words(stats) -> str:
    """``live 24.0 Hz, bad 0`` / ``lost (no packets arriving: ...) 0.0 Hz, bad 3``: the source's state, why it
    is not live, the rate of accepted samples over the last second and the bad packets so far."""
    why = f" ({stats.diagnosis})" if stats.diagnosis else ""
    return f"{stats.state}{why} {stats.sample_rate_hz:.1f} Hz, bad {stats.bad_total}"


def camera_line(runtime, name: str, now_ns: int) -> str:
    """Camera ``name``'s part of the status line: tracking, sample age, pose, focal length, the cabinets its
    inner frustum covered in the last plan (per wall of the stage that plan was made on) and the overscan."""
    rig = runtime.rigs[name]
    stats = runtime.receivers[rig.source.name].stats(now_ns)
    st = rig.state
    if st is None or not st.ok:
        return f"{name}: tracking {tracking_words(stats)}, no pose yet"
    x, y, z = st.position
    last = runtime.last
    inner = next((p for p in last.plan.inner if p.camera == name), None) if last is not None else None
    covered = ("inner frustum covers " + " ".join(f"{w.name} {int(c.sum())}"
                                                  for w, c in zip(last.stage.walls, inner.covered))
               + " cabinets") if inner is not None else "no inner frustum"
    age = f"{st.age_ns / 1e6:+.1f} ms" if st.age_ns is not None else "n/a"
    ov = (f"; overscan {rig.overscan[0]:.0f}/{rig.overscan[2]:.0f} % (h/v, adaptive)"
          if rig.overscan is not None else "")
    if rig.distortion is not None:  # the share of the overscan that covers the lens's distorted frame
        d = f"{rig.distortion[0]:.1f}/{rig.distortion[2]:.1f} % (h/v) for lens distortion"
        ov = f"{ov} + {d}" if ov else f"; overscan {rig.base_overscan[0]:g}/{rig.base_overscan[2]:g} % + {d}"
    return (f"{name}: tracking {tracking_words(stats)}, sample age {age} ({st.status}); at "
            f"({x:+.2f}, {y:+.2f}, {z:+.2f}) m pan {st.pan:+.1f} tilt {st.tilt:+.1f}, {rig.focal_mm:.1f} mm; "
            f"{covered}{ov}")


def outputs_status(plan, counts, stage=None, patches=None) -> dict:
    """Per output key: ``black``, and ``frozen``: why its picture does not follow the stage, or None --
    ``"render failed: the last good frame is kept"`` when the last frame failed to render, ``"camera cam-a
    frozen"`` when it shows an inner frustum the operator froze; an output with a colour calibration in
    ``stage`` (the stage the plan was made on) also ``calibration``: ``"on"`` or ``"off"`` (color.calibration);
    an output playing the colour patches (``patches``: :meth:`~stagectl.render.patch_player.PatchPlayer.status`)
    also ``patches``: ``{"frame": k, "frames": N, "patch", "first_frame", "calibration"}`` (color.patches)."""
    out = {}
    if plan is None:
        return out
    colour = getattr(stage, "colour", None)
    calibrated = {k for k, oc in colour.outputs.items() if oc.calibration is not None} if colour else set()
    for o in plan.outputs:
        why = None
        if counts.get("last_ok") is False:
            why = "render failed: the last good frame is kept"
        elif o.composes:
            frozen = [plan.inner[i].camera for i in o.layers if i < len(plan.inner) and plan.inner[i].frozen]
            if frozen:
                why = "camera " + ", ".join(frozen) + " frozen"
        out[o.key] = {"black": bool(o.blackout), "frozen": why}
        if o.key in calibrated:
            out[o.key]["calibration"] = "on" if o.calibrated else "off"
        if patches and o.key in patches:
            out[o.key]["patches"] = patches[o.key]
    return out


def recording_status(runtime, now_ns: int) -> dict:
    """The console's ``recording``: ``{"rec": false, "follow"}`` when no take is being recorded, else
    ``{"rec": true, "path", "slate", "elapsed_s", "frames", "timecode_in", "timecode", "follow"}`` (``timecode``:
    the last recorded frame's label). ``follow``: the OpenTrackIO source whose ``tracker.recording`` starts and
    stops takes (``record.follow``), or None."""
    take = runtime.take
    follow = getattr(runtime, "follow", None)
    if take is None:
        return {"rec": False, "follow": follow}
    out = {"rec": True, "path": str(take.path), "slate": dict(take.meta.get("slate") or {}),
           "elapsed_s": round((now_ns - take.started_ns) / 1e9, 1), "frames": take.frames,
           "timecode_in": None, "timecode": None, "follow": follow}
    if take.rate is not None and take.last_frame is not None:
        out["timecode_in"] = str(take.timecode(take.first_frame))
        out["timecode"] = str(take.timecode(take.last_frame))
    return out


def console_status(runtime, k: int, loop, counts: dict, primary: Any, now_ns: int) -> dict:
    """The live status the console publishes (docs/console.md, "status")."""
    from stagectl.core.timebase import Timecode

    rate = runtime.stage.frame_rate
    plan = runtime.last.plan if runtime.last is not None else None
    t = loop.telemetry(last=max(1, int(2 * rate.fps)))
    render_ms = t["render_ns"] / 1e6
    edges = t["edge_ns"]
    fps = (len(edges) - 1) / ((edges[-1] - edges[0]) / 1e9) if len(edges) > 2 and edges[-1] > edges[0] else 0.0
    cams = {}
    for name, rig in runtime.rigs.items():
        rec = runtime.receivers[rig.source.name]
        st = rig.state
        rs = rec.stats(now_ns)
        # the rate counts accepted samples only; bad packets and packets from other cameras are counted apart
        entry = {"tracking": rs.state, "tracking_why": rs.diagnosis, "source": rig.source.name,
                 "rate_hz": round(rs.sample_rate_hz, 1), "bad": rs.bad_total,
                 "bad_by_reason": {k: v for k, v in rs.bad.items() if v}, "other_source": rs.other_source,
                 "frozen": False}
        if st is not None and st.ok:
            entry.update({
                "sample_age_ms": None if st.age_ns is None else round(st.age_ns / 1e6, 2),
                "position_m": [round(float(v), 4) for v in st.position],
                "pan_deg": round(st.pan, 3), "tilt_deg": round(st.tilt, 3), "roll_deg": round(st.roll, 3),
                "focal_mm": round(rig.focal_mm, 2),
            })
            inner = next((p for p in plan.inner if p.camera == name), None) if plan is not None else None
            if inner is not None:
                entry["frozen"] = bool(inner.frozen)  # the operator's freeze: the wall keeps this frustum's image
                entry["overscan_percent"] = [round(v, 2) for v in inner.overscan_pct]
                entry["soft_edge"] = round(float(inner.soft_edge), 4)
                entry["frustum"] = frustum_corners(inner.VP, inner.pupil)
                entry["position_m"] = [round(float(v), 4) for v in inner.pupil]
        cams[name] = entry
    c = loop.counters
    g = loop.genlock_state()
    return {
        "frame": k, "timecode": str(Timecode.from_frame(k, rate)), "rate": rate.label, "fps": round(fps, 2),
        "phase_error_us": round(float(np.median(t["phase_error_ns"])) / 1e3, 1) if len(edges) else None,
        "late": c.late, "dropped": c.dropped, "failed": counts["failed"] + c.latch_errors,
        "render_ms": round(float(np.median(render_ms)), 2) if len(render_ms) else None,
        "latch_lead_ms": round(loop.lead_ns / 1e6, 2),
        "genlock": {"source": g.source, "locked": g.locked, "detail": g.detail, "summary": g.summary()},
        "cameras": cams,
        "outputs": outputs_status(plan, counts, runtime.last.stage if runtime.last is not None else None,
                                  runtime.output.renderer.patches.status() if runtime.output is not None else None),
        "cluster": None if primary is None else {"summary": primary.status().summary()},
        # console changes whose programs the compile worker is still making (docs/colour.md, Grades)
        "programs": runtime.output.renderer.program_status() if runtime.output is not None else None,
        "recording": recording_status(runtime, now_ns),
        "frame_times_ms": [round(float(v), 2) for v in render_ms[-48:]],
    }
