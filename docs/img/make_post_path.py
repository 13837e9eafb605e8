"""Make docs/img/post_path.png: the camera path of a take as post receives it, read back from the exported USD.

A 10-second take of the demo stage's simulated tracker (FreeD, the 'orbit' move at 23.976 fps) is written as a
.stgtake (datagrams with exact arrival stamps, no network), solved with stagectl.post.solve_take, exported with
stagectl.post.usd.write_usd, and the USD camera is read back with usd-core; the drawing shows its entrance
pupil path seen from above and from the side, with the view direction every second, in stage coordinates
(the USD's Y-up metres converted back: x, -z, y). Drawn with OpenCV (no plotting library needed).

Run from the repository root:  .venv/bin/python docs/img/make_post_path.py [OUT.png]
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stagectl.post import solve_take
from stagectl.post.usd import write_usd
from stagectl.stage import load_stage
from stagectl.tracking.codecs.freed import encode_freed, sample_to_freed
from stagectl.tracking.recording import Recorder
from stagectl.tracking.simulator import Simulator

W, H = 1400, 640
PANEL = 640
INK = (40, 40, 40)
PATH = (200, 90, 20)
VIEW = (40, 140, 40)
WALL = (60, 60, 200)


def make(out: Path) -> None:
    from pxr import Usd, UsdGeom

    stage = load_stage(ROOT / "stages" / "demo.yaml")
    rate = stage.frame_rate
    seconds = 10
    with tempfile.TemporaryDirectory() as tmp:
        take = Path(tmp) / "demo_orbit.stgtake"
        sim = Simulator("orbit", "freed", rate, profile="generic")
        with Recorder(take, stage=stage.name, sources={"tracker-a": "freed"},
                      meta={"slate": {"scene": "1", "take": "1"}}) as rec:
            for k in range(round(seconds * rate.fps)):
                rec.append(10**9 + rate.frame_edge_ns(k), "tracker-a", encode_freed(sample_to_freed(sim.sample(k))))
        track = solve_take(stage, take, start_timecode="01:00:00:00")
        usd = write_usd(track, Path(tmp) / "demo_orbit.usda")
        u = Usd.Stage.Open(str(usd))
        mpu = UsdGeom.GetStageMetersPerUnit(u)
        cam = UsdGeom.Camera(next(p for p in u.Traverse() if p.IsA(UsdGeom.Camera)))
        pos, look = [], []
        for t in range(int(u.GetStartTimeCode()), int(u.GetEndTimeCode()) + 1):
            M = np.array(cam.GetCamera(Usd.TimeCode(t)).transform).T
            p, d = M[:3, 3] * mpu, -M[:3, 2]
            pos.append((p[0], -p[2], p[1]))  # Y-up (x, y, z) -> stage (x, -z, y)
            look.append((d[0], -d[2], d[1]))
    pos, look = np.array(pos), np.array(look)

    img = np.full((H, W, 3), 255, np.uint8)

    def panel(x0: int, title: str, ax: int, ay: int, lo: tuple[float, float], span: float) -> None:
        def px(v) -> tuple[int, int]:
            return (int(x0 + 40 + (v[ax] - lo[0]) / span * (PANEL - 80)),
                    int(H - 60 - (v[ay] - lo[1]) / span * (H - 140)))

        cv2.rectangle(img, (x0 + 20, 64), (x0 + PANEL - 20, H - 40), (210, 210, 210), 1)
        cv2.putText(img, title, (x0 + 30, 56), cv2.FONT_HERSHEY_SIMPLEX, 0.6, INK, 1, cv2.LINE_AA)
        if ax == 0 and ay == 1:  # the demo's curved main wall, seen from above
            arc = [(-1.5 * 0 + 6 * math.cos(a), -1.5 + 6 * math.sin(a), 0)
                   for a in np.radians(np.linspace(51.79, 128.21, 60))]
            cv2.polylines(img, [np.array([px(v) for v in arc], np.int32)], False, WALL, 3, cv2.LINE_AA)
            cv2.putText(img, "main wall", px((-0.6, 4.65, 0)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WALL, 1, cv2.LINE_AA)
        else:  # the wall in the side view: y ~ 4.5 m, 0..3 m high
            cv2.line(img, px((0, 4.5, 0.0)), px((0, 4.5, 3.0)), WALL, 3, cv2.LINE_AA)
        cv2.polylines(img, [np.array([px(v) for v in pos], np.int32)], False, PATH, 2, cv2.LINE_AA)
        step = round(rate.fps)
        for p, d in zip(pos[::step], look[::step]):
            cv2.arrowedLine(img, px(p), px(p + 0.6 * d), VIEW, 2, cv2.LINE_AA, tipLength=0.25)
        cv2.circle(img, px(pos[0]), 6, PATH, -1, cv2.LINE_AA)
        for i in range(math.floor(lo[0]), int(lo[0] + span) + 1):  # metre ticks
            cv2.putText(img, f"{i} m", (px((i, lo[1], lo[1]) if ax == 0 else (0, i, lo[1]))[0] - 10, H - 22),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, INK, 1, cv2.LINE_AA)

    panel(0, "top view: stage X (right) / Y (toward the wall)", 0, 1, (-4.0, -1.5), 8.0)
    panel(PANEL + 60, "side view: stage Y (toward the wall) / Z (up)", 1, 2, (-1.5, -1.0), 8.0)
    cv2.putText(img, f"camera {track.camera}, take {track.name}, {track.start_timecode}-{track.end_timecode} at "
                f"{rate.label} fps, frames 1001-{1000 + len(track)}, read back from the exported USD:", (20, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, INK, 1, cv2.LINE_AA)
    cv2.putText(img, "entrance pupil path (dot: first frame), view direction each second", (20, 38),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, INK, 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), img)
    print(f"wrote {out} ({len(track)} frames)")


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "post_path.png")
