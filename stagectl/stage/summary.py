"""What ``stagectl check`` prints: a stage's walls, cabinets, pixels, processors, outputs and cameras."""

from __future__ import annotations

from typing import Any

from stagectl.config.reader import display_path
from stagectl.stage.model import Stage

__all__ = ["stage_summary", "format_summary"]


def stage_summary(stage: Stage) -> dict[str, Any]:
    """A JSON-ready description of the stage (units in the key names)."""
    walls = []
    for w in stage.walls:
        width_m, height_m = w.size_m
        entry: dict[str, Any] = {
            "name": w.name,
            "type": w.type,
            "cabinets": {"columns": w.cabinets[0], "rows": w.cabinets[1], "count": w.cabinet_count},
            "cabinet_size_mm": list(w.cabinet.size_mm),
            "cabinet_pixels": list(w.cabinet.pixels),
            "size_m": [round(width_m, 6), round(height_m, 6)],
            "raster_px": list(w.raster),
            "pixels": w.raster[0] * w.raster[1],
        }
        if w.type == "curved":
            entry["arc_deg"] = [round(w.params["start_deg"], 4), round(w.params["end_deg"], 4)]
            entry["radius_m"] = w.params["radius"]
        walls.append(entry)
    processors = []
    for p in stage.processors:
        outs = []
        for o in p.outputs:
            total = o.canvas[0] * o.canvas[1]
            outs.append(
                {
                    "name": o.name,
                    "canvas_px": list(o.canvas),
                    "mappings": len(o.mappings),
                    "walls": sorted({m.wall for m in o.mappings}),
                    "used_px": o.used_pixels,
                    "used_fraction": o.used_pixels / total,
                }
            )
        processors.append({"name": p.name, "kind": p.kind, "outputs": outs})
    cameras = []
    for c in stage.cameras:
        src = stage.tracking_source(c.tracking)
        cameras.append(
            {
                "name": c.name,
                "tracking": {
                    "source": src.name,
                    "protocol": src.protocol,
                    "bind": f"{src.bind}:{src.port}",
                    "multicast_group": src.multicast_group,
                    "camera_id": src.camera_id,
                    "encoder_profile": src.encoder_profile,
                    "delay_frames": src.delay_frames,
                    "simulate": src.simulate,
                },
                "sensor_mm": list(c.sensor_mm),
                "lens": display_path(c.lens) if c.lens else None,
                "lens_name": c.lens_file.name if c.lens_file else None,
            }
        )
    return {
        "name": stage.name,
        "file": str(stage.path),
        "frame_rate": {"exact": str(stage.frame_rate), "fps": stage.frame_rate.label},
        "walls": walls,
        "cabinets_total": sum(w["cabinets"]["count"] for w in walls),
        "pixels_total": sum(w["pixels"] for w in walls),
        "processors": processors,
        "cameras": cameras,
        "render": {
            "inner_resolution": list(stage.render.inner.resolution),
            "overscan_percent_lrbt": list(stage.render.inner.overscan_percent),
            "soft_edge": stage.render.inner.soft_edge,
            "outer_content": stage.render.outer.content,
            "outer_resolution": list(stage.render.outer.resolution),
        },
        "sync": {"genlock": stage.sync.genlock, "clock": stage.sync.clock, "phase_offset_ns": stage.sync.phase_offset_ns},
    }


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable form of :func:`stage_summary`."""
    lines = [f'Stage "{s["name"]}" ({s["file"]}): {s["frame_rate"]["fps"]} fps ({s["frame_rate"]["exact"]})', "", "Walls"]
    nw = max(len(w["name"]) for w in s["walls"])
    for w in s["walls"]:
        c = w["cabinets"]
        extra = f'  arc {w["arc_deg"][0]:.2f}..{w["arc_deg"][1]:.2f} deg, r {w["radius_m"]:g} m' if "arc_deg" in w else ""
        lines.append(
            f'  {w["name"]:<{nw}}  {w["type"]:<7}  {c["columns"]} x {c["rows"]} = {c["count"]:>4} cabinets of '
            f'{w["cabinet_size_mm"][0]:g} x {w["cabinet_size_mm"][1]:g} mm / {w["cabinet_pixels"][0]} x {w["cabinet_pixels"][1]} px'
            f'  {w["size_m"][0]:.2f} x {w["size_m"][1]:.2f} m  {w["raster_px"][0]} x {w["raster_px"][1]} px '
            f'({w["pixels"]:,}){extra}'
        )
    lines.append(f'  total: {s["cabinets_total"]} cabinets, {s["pixels_total"]:,} px')
    lines += ["", "Processors and outputs"]
    for p in s["processors"]:
        lines.append(f'  {p["name"]} ({p["kind"]})')
        for o in p["outputs"]:
            lines.append(
                f'    {o["name"]}  canvas {o["canvas_px"][0]} x {o["canvas_px"][1]}  {o["mappings"]} mapping(s) of '
                f'{", ".join(o["walls"])}  {o["used_px"]:,} px used ({100 * o["used_fraction"]:.1f} %)'
            )
    lines += ["", "Cameras"]
    if not s["cameras"]:
        lines.append("  (none)")
    for c in s["cameras"]:
        t = c["tracking"]
        sim = f', simulator: {t["simulate"]}' if t["simulate"] else ""
        lines.append(
            f'  {c["name"]}  tracking {t["source"]} ({t["protocol"]} on {t["bind"]}, camera id {t["camera_id"]}, '
            f'profile {t["encoder_profile"]}, delay {t["delay_frames"]:g} frames{sim})  sensor '
            f'{c["sensor_mm"][0]:g} x {c["sensor_mm"][1]:g} mm  lens {c["lens_name"] + " (" + c["lens"] + ")" if c["lens"] else "(none)"}'
        )
    r = s["render"]
    lines += [
        "",
        f'Render: inner {r["inner_resolution"][0]} x {r["inner_resolution"][1]}, overscan (l r b t) '
        f'{" ".join(f"{v:g}" for v in r["overscan_percent_lrbt"])} %, soft edge {r["soft_edge"]:g}; outer '
        f'{r["outer_content"]} {r["outer_resolution"][0]} x {r["outer_resolution"][1]}',
        f'Sync: genlock {s["sync"]["genlock"]}, clock {s["sync"]["clock"]}, phase offset {s["sync"]["phase_offset_ns"] / 1e6:g} ms',
        "",
        "OK: the stage is valid; every cabinet is mapped exactly once.",
    ]
    return "\n".join(lines)
