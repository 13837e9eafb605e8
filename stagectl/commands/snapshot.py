"""Render one frame of a stage headless and write every output canvas, the inner frustum and the matrices.

The pose is the tracked body's pose in the tracking frame (metres, degrees: x, y, z, pan, tilt, roll; the
FreeD / OpenTrackIO convention of docs/conventions.md). The stage file's tracking_registration
(T_stage_tracking, from `stagectl calibrate wall --apply`; identity when absent) maps it into the stage, then
the camera's tracker offset (T_body_camera) is applied: T_stage_camera = T_stage_tracking @ T_tracking_body
@ T_body_camera. The lens file is evaluated at --zoom/--focus (normalised encoders 0..1); a camera without a
lens file uses a 35 mm lens with a centred principal point, and the command says so.

Writes into --out: one PNG per output canvas (<processor>_<output>.png, the canvas size: 8-bit sRGB codes for an
8-bit output; for a deep output of the stage's colour section (rgb10_a2, rgba16) a 16-bit PNG of the canvas
codes at full depth, 10-bit codes scaled to 16 bits as round(code * 65535 / 1023) so that PNG value / 65535 is
the signal and round(value * 1023 / 65535) gives the code back, plus <processor>_<output>.preview.png, an 8-bit
sRGB picture tone-mapped for a screen, not the signal; snapshot.json says which is which), the
inner-frustum image (inner_<camera>.png, 8-bit sRGB, the inner resolution, overscan included), and
snapshot.json with the matrices used (T_stage_tracking, T_tracking_body, T_body_camera, T_stage_camera,
T_stage_pupil, V, P, VP; row-major, acting on column vectors; NDC -> image u = (x + 1) / 2, v = (1 - y) / 2,
row 0 = top), the lens values, overscan, the cabinets the inner frustum covers per wall, and the files
written. Rendering is headless (EGL surfaceless; Mesa llvmpipe without a GPU).

Negative pose values: write --pose=-1,0.5,1.7,0,0,0 (with "=").
"""

from __future__ import annotations

import argparse
import re

HELP = "render one frame for a camera pose headless and write the output canvases, inner frustum and matrices"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, e.g. stages/demo.yaml")
    p.add_argument("--pose", required=True, metavar="X,Y,Z,PAN,TILT,ROLL",
                   help="tracked body pose: metres and degrees, comma-separated (use --pose=... if it starts "
                        "with a minus sign)")
    p.add_argument("--zoom", type=float, default=0.0, metavar="Z",
                   help="normalised zoom encoder 0..1 (default 0)")
    p.add_argument("--focus", type=float, default=0.0, metavar="F",
                   help="normalised focus encoder 0..1 (default 0)")
    p.add_argument("--camera", default=None, metavar="NAME", help="camera of the stage (default: the first)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write into (created if missing)")
    p.add_argument("--inner-resolution", default=None, metavar="WxH",
                   help="override the stage's inner-frustum resolution, e.g. 960x540")


def _parse_pose(text: str) -> tuple[float, ...]:
    from stagectl.core.errors import UsageError

    parts = [t.strip() for t in text.split(",")]
    try:
        values = tuple(float(t) for t in parts)
    except ValueError:
        values = ()
    if len(values) != 6 or not all(v == v and abs(v) != float("inf") for v in values):
        raise UsageError(f"--pose: expected six numbers x,y,z,pan,tilt,roll (metres, degrees), got {text!r}")
    return values


def _parse_size(text: str | None) -> tuple[int, int] | None:
    from stagectl.core.errors import UsageError

    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or not (16 <= int(m.group(1)) <= 16384 and 16 <= int(m.group(2)) <= 16384):
        raise UsageError(
            f"--inner-resolution: expected WxH with 16..16384 pixels, e.g. 960x540, got {text!r}"
        )
    return int(m.group(1)), int(m.group(2))


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stagectl.core.errors import StageError, UsageError

    pose = _parse_pose(args.pose)
    inner_res = _parse_size(args.inner_resolution)
    for name in ("zoom", "focus"):
        v = getattr(args, name)
        if not (v == v and abs(v) != float("inf")):
            raise UsageError(f"--{name}: expected a finite number, got {v}")

    import json

    import cv2
    import numpy as np

    from stagectl.core.transforms import transform_from_pose
    from stagectl.render.camera import camera_state_from_pose
    from stagectl.render.gl.context import create_context  # chooses the EGL platform before OpenGL loads
    from stagectl.render.passes import PlanError
    from stagectl.render.plan import FramePlanner
    from stagectl.render.renderer import StageRenderer
    from stagectl.stage import load_stage

    stage = load_stage(args.stage)
    if not stage.cameras:
        raise UsageError(f"stage {stage.name!r} has no cameras to take a pose")
    try:
        cam_state = camera_state_from_pose(stage, pose, camera=args.camera, zoom=args.zoom, focus=args.focus)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    cam = next(c for c in stage.cameras if c.name == cam_state.name)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {out_dir}: {exc}") from None

    say = lambda text: print(text, flush=True)  # noqa: E731
    if cam.lens_file is None:
        say(f"stagectl snapshot: camera {cam.name} has no lens file: using a {cam_state.lens.focal_mm:g} mm "
            f"lens with a centred principal point and no pupil offset (--zoom/--focus ignored)")
    planner = FramePlanner(stage, inner_resolution=inner_res)
    plan = planner.plan([cam_state], frame=0)
    ip = plan.inner[0]

    ctx = create_context("egl")
    try:
        renderer = StageRenderer(stage, ctx)
        try:
            for note in renderer.notes:
                say(f"stagectl snapshot: note: {note}")
            result = renderer.render_frame(plan)
            if not result.ok:
                raise StageError(f"rendering failed in pass {result.failed_pass}: {result.error}")
            canvases = {k: v.copy() for k, v in renderer.canvases().items()}
            formats = {k: renderer.canvas_format(k) for k in canvases}
            previews = {k: v.copy() for k, v in renderer.preview_images().items() if formats[k] != "rgba8"}
            inner = renderer.inner_image(ip.camera)
        finally:
            renderer.release()
        gl_summary = ctx.info.summary()
    finally:
        ctx.release()

    written: list[tuple[str, Path, tuple[int, int]]] = []
    outputs_json = []
    from stagectl.color.stagefile import output_colour
    from stagectl.render.sink import write_png

    for key, img in canvases.items():
        path = out_dir / (_safe_name(key.replace("/", "_")) + ".png")
        h, w = img.shape[:2]
        fmt = formats[key]
        entry = {"key": key, "file": path.name, "canvas": [w, h], "format": fmt,
                 "encoding": output_colour(stage, key).describe()}
        if fmt == "rgba8":
            if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)):
                raise StageError(f"could not write {path}")
            written.append((f"canvas {key}", path, (w, h)))
        else:
            top = 1023 if fmt == "rgb10_a2" else 65535
            deep = img.astype(np.uint32) * 65535
            deep = ((deep + top // 2) // top).astype(np.uint16)  # round(code * 65535 / top)
            if fmt == "rgb10_a2":
                deep[..., 3] = 65535
            write_png(path, deep[..., :3])
            preview = path.with_suffix(".preview.png")
            write_png(preview, previews[key][..., :3])
            written.append((f"canvas {key} ({fmt}, 16-bit PNG of the codes)", path, (w, h)))
            written.append((f"preview of {key} (8-bit sRGB, tone-mapped for a screen)", preview, (w, h)))
            entry.update({"png_bits": 16, "code_bits": 10 if fmt == "rgb10_a2" else 16,
                          "png_value": f"round(code * 65535 / {top})", "preview": preview.name})
        outputs_json.append(entry)
    inner_path = out_dir / f"inner_{_safe_name(ip.camera)}.png"
    if not cv2.imwrite(str(inner_path), cv2.cvtColor(inner, cv2.COLOR_RGBA2BGR)):
        raise StageError(f"could not write {inner_path}")
    written.append((f"inner frustum {ip.camera}", inner_path, (inner.shape[1], inner.shape[0])))

    covered = {}
    for i, wall in enumerate(stage.walls):
        rows, cols = np.nonzero(ip.covered[i])
        covered[wall.name] = {
            "count": int(len(rows)),
            "of": int(wall.cabinet_count),
            "cabinets_col_row": [[int(c), int(r)] for r, c in zip(rows, cols)],
        }
    mat = lambda m: np.asarray(m, dtype=np.float64).tolist()  # noqa: E731
    doc = {
        "stage": stage.name,
        "stage_file": str(args.stage),
        "camera": ip.camera,
        "pose": dict(zip(("x", "y", "z", "pan", "tilt", "roll"), pose)),
        "pose_frame": "tracked body in the tracking frame; T_stage_tracking (the stage's "
                      "tracking_registration) maps it into the stage",
        "conventions": (
            "docs/conventions.md: metres, degrees at the edges; T_a_b maps frame b into a; matrices "
            "row-major acting on column vectors; V = T_gl_camera @ inv(T_stage_pupil) maps stage to the "
            "GL eye; P includes the overscan; VP = P @ V; NDC -> inner image u = (x + 1) / 2, "
            "v = (1 - y) / 2 (row 0 = top); a point is in front when w_clip > 1e-6"
        ),
        "T_stage_tracking": mat(stage.T_stage_tracking),
        "T_tracking_body": mat(transform_from_pose(*pose)),
        "T_body_camera": mat(cam.T_body_camera),
        "T_stage_camera": mat(ip.T_stage_camera),
        "T_stage_pupil": mat(ip.T_stage_pupil),
        "V": mat(ip.V),
        "P": mat(ip.P),
        "VP": mat(ip.VP),
        "P_unscanned": mat(ip.P_unscanned),
        "VP_unscanned": mat(ip.VP_unscanned),
        "near_m": ip.near,
        "far_m": ip.far,
        "lens": ip.lens.as_dict(),
        "sensor_mm": list(ip.sensor_mm),
        "overscan_percent": dict(zip(("left", "right", "bottom", "top"), ip.overscan_pct)),
        "soft_edge": ip.soft_edge,
        "inner": {"file": inner_path.name, "resolution": list(ip.resolution), "encoding": "sRGB 8-bit"},
        "covered": covered,
        "outer": {
            "viewpoint": list(plan.outer.viewpoint),
            "method": "cube atlas sampled by direction (stage position - viewpoint)",
            "face_size": plan.outer.face_size,
            "faces": [f.name for f in plan.outer.faces],
        },
        "outputs": outputs_json,
        "renderer": gl_summary,
        "frame_ms": round(result.timings_ns.get("frame", 0) / 1e6, 3),
    }
    json_path = out_dir / "snapshot.json"
    json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    written.append(("matrices and lens", json_path, None))

    lens = ip.lens
    pose_text = ",".join(f"{v:g}" for v in pose)
    say(f"stagectl snapshot: stage \"{stage.name}\", camera {ip.camera} at pose {pose_text}; "
        f"{lens.focal_mm:.2f} mm, pupil {lens.pupil_offset_m * 1000:.1f} mm; "
        + ", ".join(f"{w} {v['count']}/{v['of']} cabinets covered" for w, v in covered.items()))
    reg = stage.tracking_registration
    if not reg.is_identity:
        say(f"stagectl snapshot: tracking_registration applied: position {list(reg.position)} m, rotation "
            f"{list(reg.rotation)} deg (T_stage_tracking)")
    say(f"stagectl snapshot: rendered with {gl_summary} in {doc['frame_ms']:.1f} ms")
    for what, path, size in written:
        extra = f" ({size[0]}x{size[1]})" if size else ""
        say(f"  wrote {path}{extra}: {what}")
    return 0
