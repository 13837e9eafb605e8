"""Calibration artefacts that carry their evidence, the PNG report, and edits of lens and stage files.

Result documents (STYLE.md practice 14)
---------------------------------------
:func:`result_document` wraps a tool's results with what produced them: ``tool``, ``stagectl`` and OpenCV
versions, the UTC ``date``, the exact ``command`` line, every ``input`` file with its size and sha256, the
``parameters``, ``warnings``; the tool adds residuals, worst views and outliers. :func:`write_result` writes
YAML (or JSON for a ``.json`` path). Units are named in the keys (``_px``, ``_mm``, ``_m``, ``_deg``); pixel
coordinates are OpenCV's (integer pixel centres) unless a key says otherwise.

PNG report
----------
Drawn with OpenCV only (no matplotlib), one image per run: a header with the key numbers, and panels --
corner **coverage** of the image with **residual vectors** (magnified, scale printed), **per-view RMS bars**
with the median and the outlier threshold, per-marker maps for walls, the correlation curve for the delay.

Editing lens and stage files in place
-------------------------------------
The tools never rewrite a YAML file through a YAML dumper (that would drop comments and layout). An edit
replaces the **text span** of one value node (located with ``yaml.compose``), or inserts one ``key: value``
line into a mapping, and leaves every other byte alone. :func:`unified_diff` shows the change; the tools write
it as a ``.patch`` suggestion and apply it only when asked (``--apply``).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import errno
import hashlib
import json
import math
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stagectl.calibration import CalibrationError

__all__ = [
    "sha256_file",
    "input_records",
    "command_line",
    "result_document",
    "to_plain",
    "write_result",
    "YamlEditError",
    "yaml_set",
    "lens_file_set_pupil",
    "stage_set_tracker_offset",
    "stage_set_wall_placement",
    "stage_set_delay",
    "unified_diff",
    "flow",
    "Report",
    "lens_report",
    "handeye_report",
    "pupil_report",
    "wall_report",
    "delay_report",
]


# ============================================================================================== documents


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_records(paths: Iterable[str | Path]) -> list[dict]:
    """``[{path, bytes, sha256}]`` for each existing file (folders are listed file by file by the caller)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            out.append({"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    return out


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command line as a shell would take it back (``sys.argv`` by default)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(("stagectl", "__main__.py", "cli.py")):
        argv[0] = "stagectl"
    return " ".join(shlex.quote(a) for a in argv)


def to_plain(obj):
    """numpy scalars / arrays, tuples and Paths -> plain YAML/JSON values (NaN and inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def result_document(tool: str, *, command: str, inputs: list[dict], parameters: dict, results: dict,
                    warnings: Sequence[str] = (), outputs: dict | None = None) -> dict:
    """The self-describing result of one calibration run (module docstring)."""
    import cv2

    from stagectl import __version__

    return to_plain({
        "tool": f"stagectl calibrate {tool}",
        "stagectl_version": __version__,
        "opencv_version": cv2.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "conventions": "docs/conventions.md; pixels OpenCV (integer pixel centres); RMS per point (OpenCV)",
        "results": results,
        "warnings": list(warnings),
        "parameters": parameters,
        "outputs": outputs or {},
        "inputs": inputs,
    })


def write_result(path: str | Path, doc: dict) -> Path:
    """Write a result document as YAML, or JSON when the path ends in ``.json``."""
    import yaml

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".json":
        p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    else:
        p.write_text(yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True), encoding="utf-8")
    return p


# ============================================================================================== YAML edits


class YamlEditError(CalibrationError):
    """A value could not be located or edited in place (the tool then writes only the patch suggestion)."""


def flow(values: Sequence[float], digits: int = 6) -> str:
    """``[a, b, c]`` with at most ``digits`` decimals (trailing zeros dropped)."""
    def f(v: float) -> str:
        s = f"{float(v):.{digits}f}".rstrip("0").rstrip(".")
        return "0" if s in ("-0", "") else s
    return "[" + ", ".join(f(v) for v in values) + "]"


def _compose(text: str):
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise YamlEditError(f"cannot parse the YAML to edit it: {exc}") from None


def _get(mapping, key: str):
    from yaml.nodes import MappingNode

    if not isinstance(mapping, MappingNode):
        return None, None
    for k, v in mapping.value:
        if getattr(k, "value", None) == key:
            return k, v
    return None, None


def _scalar(node) -> str | None:
    from yaml.nodes import ScalarNode

    return node.value if isinstance(node, ScalarNode) else None


def _walk(root, path: Sequence):
    """Follow ``path``: a str is a mapping key; ``(key, value)`` picks the item of a sequence whose ``key``
    equals ``value`` (numbers compared as floats)."""
    from yaml.nodes import SequenceNode

    node = root
    for step in path:
        if isinstance(step, tuple):
            if not isinstance(node, SequenceNode):
                return None
            key, want = step
            found = None
            for item in node.value:
                _, v = _get(item, key)
                s = _scalar(v)
                if s is None:
                    continue
                if isinstance(want, (int, float)):
                    try:
                        ok = abs(float(s) - float(want)) <= 1e-9
                    except ValueError:
                        ok = False
                else:
                    ok = s == str(want)
                if ok:
                    found = item
                    break
            node = found
        else:
            _, node = _get(node, step)
        if node is None:
            return None
    return node


def yaml_set(text: str, path: Sequence, key: str, value: str) -> str:
    """Set ``key: value`` (``value`` is YAML text, e.g. ``"[0.1, 0.2]"``) in the mapping at ``path``: replace the
    existing value's span, or insert a new line (block mapping) / entry (flow mapping)."""
    from yaml.nodes import MappingNode, ScalarNode

    root = _compose(text)
    m = _walk(root, path)
    if not isinstance(m, MappingNode):
        raise YamlEditError(f"no mapping at {_path_str(path)}")
    k, v = _get(m, key)
    if v is not None:
        if not isinstance(v, ScalarNode) and not v.flow_style:
            raise YamlEditError(f"{_path_str(path)}.{key} is a block collection; edit it by hand")
        a, b = v.start_mark.index, v.end_mark.index
        return text[:a] + value + text[b:]
    if m.flow_style:
        b = m.end_mark.index - 1  # the closing brace
        sep = ", " if m.value else ""
        return text[:b] + f"{sep}{key}: {value}" + text[b:]
    first_k, first_v = m.value[0]
    col = first_k.start_mark.column
    nl = text.find("\n", first_v.end_mark.index if isinstance(first_v, ScalarNode) or first_v.flow_style else first_k.end_mark.index)
    if isinstance(first_v, ScalarNode) or first_v.flow_style:
        pos = len(text) if nl < 0 else nl + 1
        prefix = "" if nl >= 0 else "\n"
        return text[:pos] + prefix + " " * col + f"{key}: {value}\n" + text[pos:]
    raise YamlEditError(f"cannot insert {key} into {_path_str(path)}; add it by hand")


def _path_str(path: Sequence) -> str:
    return ".".join(f"[{s[0]}={s[1]}]" if isinstance(s, tuple) else str(s) for s in path) or "(top)"


def lens_file_set_pupil(text: str, zoom: float, focus: float, offset_m: float) -> str:
    """Set ``entrance_pupil_offset_m`` of the lens-file point at ``(zoom, focus)``."""
    from yaml.nodes import SequenceNode

    root = _compose(text)
    pts = _walk(root, ["points"])
    if not isinstance(pts, SequenceNode):
        raise YamlEditError("the lens file has no points list")
    for i, item in enumerate(pts.value):
        z, f = _scalar(_get(item, "zoom")[1]), _scalar(_get(item, "focus")[1])
        try:
            if abs(float(z) - zoom) <= 1e-9 and abs(float(f) - focus) <= 1e-9:
                _, v = _get(item, "entrance_pupil_offset_m")
                if v is None:
                    raise YamlEditError(f"point (zoom {zoom:g}, focus {focus:g}) has no entrance_pupil_offset_m")
                a, b = v.start_mark.index, v.end_mark.index
                return text[:a] + flow([offset_m], 6)[1:-1] + text[b:]
        except (TypeError, ValueError):
            continue
    raise YamlEditError(f"the lens file has no point at zoom {zoom:g}, focus {focus:g}")


def stage_set_tracker_offset(text: str, camera: str, translation: Sequence[float], rotation: Sequence[float]) -> str:
    """Set a camera's ``tracker_offset`` (``T_body_camera``: translation m, rotation pan/tilt/roll deg)."""
    path = ["cameras", ("name", camera)]
    if _walk(_compose(text), path) is None:
        raise YamlEditError(f"the stage file has no camera {camera!r}")
    if _walk(_compose(text), [*path, "tracker_offset"]) is None:
        return yaml_set(text, path, "tracker_offset",
                        f"{{translation: {flow(translation, 6)}, rotation: {flow(rotation, 4)}}}")
    text = yaml_set(text, [*path, "tracker_offset"], "translation", flow(translation, 6))
    return yaml_set(text, [*path, "tracker_offset"], "rotation", flow(rotation, 4))


def stage_set_wall_placement(text: str, wall: str, updates: dict) -> str:
    """Set a wall's placement keys (``center``, ``rotation``, ``yaw_deg``, ``start_deg``, ``bottom``); ``end_deg``
    is set only where the wall already has one (it is optional and checked against ``start_deg``)."""
    path = ["walls", ("name", wall)]
    node = _walk(_compose(text), path)
    if node is None:
        raise YamlEditError(f"the stage file has no wall {wall!r}")
    has_end = _get(node, "end_deg")[1] is not None
    for key in ("center", "rotation", "yaw_deg", "start_deg", "end_deg", "bottom"):
        if key not in updates or (key == "end_deg" and not has_end):
            continue
        v = updates[key]
        value = flow(v, 6 if key == "center" else 5) if isinstance(v, (list, tuple)) else flow([v], 6)[1:-1]
        text = yaml_set(text, path, key, value)
    return text


def stage_set_tracking_registration(text: str, position: Sequence[float], rotation: Sequence[float]) -> str:
    """Set the top-level ``tracking_registration`` (``T_stage_tracking``: position m, rotation pan, tilt,
    roll deg). An existing block or flow mapping has its ``position`` and ``rotation`` values replaced (or
    added) in place; a stage file without the key gets a commented block inserted after the ``frame_rate``
    line."""
    from yaml.nodes import MappingNode, ScalarNode

    pos, rot = flow(position, 6), flow(rotation, 6)
    root = _compose(text)
    if not isinstance(root, MappingNode):
        raise YamlEditError("the stage file is not a mapping")
    key, node = _get(root, "tracking_registration")
    if key is not None:
        if not isinstance(node, MappingNode):
            raise YamlEditError("tracking_registration is not a mapping; set it by hand to "
                                f"{{position: {pos}, rotation: {rot}}}")
        text = yaml_set(text, ["tracking_registration"], "position", pos)
        return yaml_set(text, ["tracking_registration"], "rotation", rot)
    k, v = _get(root, "frame_rate")
    if k is None or not isinstance(v, ScalarNode):
        return yaml_set(text, [], "tracking_registration", f"{{position: {pos}, rotation: {rot}}}")
    col = k.start_mark.column
    nl = text.find("\n", v.end_mark.index)
    pos_at = len(text) if nl < 0 else nl + 1
    pad = " " * col
    block = (f"{pad}# wall registration (stagectl calibrate wall): T_stage_tracking, tracking -> stage\n"
             f"{pad}tracking_registration:\n"
             f"{pad}  position: {pos}    # m\n"
             f"{pad}  rotation: {rot}    # pan, tilt, roll (deg)\n")
    return text[:pos_at] + ("" if nl >= 0 else "\n") + block + text[pos_at:]


def stage_set_delay(text: str, source: str, frames: float) -> str:
    """Set a tracking source's ``delay_frames``."""
    path = ["tracking", ("name", source)]
    if _walk(_compose(text), path) is None:
        raise YamlEditError(f"the stage file has no tracking source {source!r}")
    return yaml_set(text, path, "delay_frames", flow([frames], 3)[1:-1])


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{name}", tofile=f"b/{name}"))


# ============================================================================================== drawing

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (150, 150, 150)
_LIGHT = (230, 230, 230)
_BLUE = (200, 110, 30)
_RED = (40, 40, 220)
_GREEN = (60, 170, 60)
_ORANGE = (0, 140, 255)


class Report:
    """A white canvas with a header and rectangular panels, drawn with ``cv2`` (BGR, 8-bit)."""

    def __init__(self, title: str, size: tuple[int, int] = (1600, 1000)) -> None:
        import cv2

        self.cv2 = cv2
        self.img = np.full((size[1], size[0], 3), 255, np.uint8)
        self.text((20, 34), title, scale=0.9, thick=2)

    def text(self, org, s: str, *, scale: float = 0.5, color=_BLACK, thick: int = 1) -> None:
        self.cv2.putText(self.img, s, (int(org[0]), int(org[1])), self.cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick,
                         self.cv2.LINE_AA)

    def lines(self, org, lines: Sequence[str], *, scale: float = 0.5, step: int = 20, color=_BLACK) -> None:
        for i, s in enumerate(lines):
            self.text((org[0], org[1] + i * step), s, scale=scale, color=color)

    def frame(self, rect, title: str = "") -> None:
        x, y, w, h = rect
        self.cv2.rectangle(self.img, (x, y), (x + w, y + h), _GREY, 1)
        if title:
            self.text((x + 6, y - 6), title, scale=0.5, thick=1)

    def bars(self, rect, labels: Sequence[str], values: Sequence[float], *, unit: str, title: str,
             lines: Sequence[tuple[float, str, tuple]] = (), highlight: Sequence[bool] | None = None) -> None:
        """Horizontal bars, one per label; ``lines``: vertical reference lines ``(value, label, colour)``."""
        x, y, w, h = rect
        self.frame(rect, title)
        n = len(values)
        if n == 0:
            return
        vals = np.nan_to_num(np.asarray(values, dtype=np.float64))
        vmax = max([float(vals.max()), *[v for v, _, _ in lines], 1e-9]) * 1.1
        label_w = min(170, max(60, 8 * max(len(s) for s in labels)))
        x0, x1 = x + label_w, x + w - 10
        bh = max(2.0, (h - 30) / n)
        fs = min(0.45, max(0.25, bh / 40))
        for i, (lab, v) in enumerate(zip(labels, vals)):
            yy = y + 8 + i * bh
            col = _RED if highlight is not None and highlight[i] else _BLUE
            self.cv2.rectangle(self.img, (x0, int(yy)), (int(x0 + (x1 - x0) * v / vmax), int(yy + bh * 0.75)), col, -1)
            if bh >= 9:
                self.text((x + 4, yy + bh * 0.7), lab[:22], scale=fs)
                self.text((int(x0 + (x1 - x0) * v / vmax) + 4, yy + bh * 0.7), f"{v:.3g}", scale=fs, color=_GREY)
        for v, lab, col in lines:
            xx = int(x0 + (x1 - x0) * v / vmax)
            for yy in range(y + 4, y + h - 22, 8):
                self.cv2.line(self.img, (xx, yy), (xx, yy + 4), col, 1)
            self.text((xx + 3, y + h - 22), f"{lab} {v:.3g}", scale=0.4, color=col)
        self.text((x1 - 60, y + h - 6), unit, scale=0.45, color=_GREY)

    def coverage(self, rect, image_size, points: np.ndarray, residuals: np.ndarray | None, counts: np.ndarray | None,
                 *, title: str, bad: np.ndarray | None = None) -> None:
        """The image as a rectangle: coverage cells shaded by corner count, corners, residual vectors."""
        x, y, w, h = rect
        iw, ih = image_size
        s = min(w / iw, h / ih)
        W, H = int(iw * s), int(ih * s)
        ox, oy = x + (w - W) // 2, y + (h - H) // 2
        self.frame((ox, oy, W, H), title)
        if counts is not None and counts.size:
            cy, cx = counts.shape
            cmax = max(1, int(counts.max()))
            for j in range(cy):
                for i in range(cx):
                    a = counts[j, i] / cmax
                    col = tuple(int(255 - a * (255 - c)) for c in (250, 200, 150))
                    col = _LIGHT if counts[j, i] == 0 else col
                    p0 = (int(ox + i * W / cx) + 1, int(oy + j * H / cy) + 1)
                    p1 = (int(ox + (i + 1) * W / cx) - 1, int(oy + (j + 1) * H / cy) - 1)
                    self.cv2.rectangle(self.img, p0, p1, col, -1)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        mag = 1.0
        if residuals is not None and len(residuals):
            r = np.asarray(residuals, dtype=np.float64).reshape(-1, 2)
            p95 = float(np.percentile(np.linalg.norm(r, axis=1), 95))
            if p95 > 0:
                target = 0.025 * W / (p95 * s)  # a 95th-percentile residual drawn 2.5 % of the panel long
                e = 10 ** math.floor(math.log10(target))
                mag = max(1.0, max(m * e for m in (1, 2, 5) if m * e <= target))
        for i, p in enumerate(pts):
            q = (int(ox + (p[0] + 0.5) * s), int(oy + (p[1] + 0.5) * s))
            col = _RED if bad is not None and bad[i] else _GREEN
            self.cv2.circle(self.img, q, 1, col, -1)
            if residuals is not None:
                r = residuals[i]
                e = (int(np.clip(q[0] + r[0] * s * mag, ox, ox + W)), int(np.clip(q[1] + r[1] * s * mag, oy, oy + H)))
                self.cv2.line(self.img, q, e, _ORANGE, 1, self.cv2.LINE_AA)
        note = f"{iw} x {ih} px; dots: corners (red: outlier views)"
        if residuals is not None:
            note += f"; orange: residuals x{mag:g}"
        self.text((ox, oy + H + 18), note, scale=0.42, color=_GREY)

    def plot(self, rect, series: Sequence[tuple[np.ndarray, np.ndarray, tuple, str]], *, title: str, xlabel: str,
             vlines: Sequence[tuple[float, str, tuple]] = ()) -> None:
        x, y, w, h = rect
        self.frame(rect, title)
        xs = np.concatenate([np.asarray(s[0], dtype=np.float64) for s in series if len(s[0])])
        ys = np.concatenate([np.asarray(s[1], dtype=np.float64) for s in series if len(s[1])])
        ok = np.isfinite(ys)
        if not ok.any():
            return
        xa, xb = float(np.min(xs)), float(np.max(xs))
        ya, yb = float(np.min(ys[ok])), float(np.max(ys[ok]))
        if xb <= xa:
            xb = xa + 1
        if yb <= ya:
            yb = ya + 1
        pad = 0.05 * (yb - ya)
        ya, yb = ya - pad, yb + pad

        def P(u, v):
            return int(x + 10 + (u - xa) / (xb - xa) * (w - 20)), int(y + h - 25 - (v - ya) / (yb - ya) * (h - 40))

        if ya < 0 < yb:
            self.cv2.line(self.img, P(xa, 0), P(xb, 0), _LIGHT, 1)
        for i, (sx, sy, col, lab) in enumerate(series):
            pts = np.array([P(u, v) for u, v in zip(sx, sy) if math.isfinite(v)], dtype=np.int32)
            if len(pts) > 1:
                self.cv2.polylines(self.img, [pts], False, col, 1, self.cv2.LINE_AA)
            self.text((x + w - 260, y + 18 + 18 * i), lab, scale=0.45, color=col)
        for v, lab, col in vlines:
            self.cv2.line(self.img, P(v, ya), P(v, yb), col, 1)
            self.text((P(v, ya)[0] + 4, y + 18), lab, scale=0.45, color=col)
        self.text((x + 10, y + h - 6), f"{xlabel}: {xa:.3g} .. {xb:.3g}", scale=0.42, color=_GREY)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            ok = self.cv2.imwrite(str(p), self.img)
        except self.cv2.error:
            raise CalibrationError(f"{p}: cannot write the report: give it a .png name") from None
        if not ok:  # OpenCV says only False: an I/O error, like open()'s
            raise OSError(errno.EIO, "cannot write the PNG report", str(p))
        return p


def _footer(rep: Report, warnings: Sequence[str], y: int = 940) -> None:
    for i, wline in enumerate(list(warnings)[:3]):
        rep.text((20, y + 20 * i), ("! " + wline)[:190], scale=0.45, color=_RED)


def lens_report(calib, path: str | Path, *, title: str = "stagectl calibrate lens", extra: Sequence[str] = ()) -> Path:
    """Coverage + residual vectors, per-view RMS bars, key numbers (a :class:`~stagectl.calibration.lens.LensCalibration`)."""
    rep = Report(title)
    k1, k2, p1, p2, k3 = (float(v) for v in calib.dist)
    used = [v for v in calib.views if v.used]
    rep.lines((20, 64), [
        f"fx {calib.fx:.3f}  fy {calib.fy:.3f}  cx {calib.cx:.3f}  cy {calib.cy:.3f} px (OpenCV pixel centres)   "
        f"k1 {k1:.5f}  k2 {k2:.5f}  p1 {p1:.6f}  p2 {p2:.6f}  k3 {k3:.5f}",
        f"RMS {calib.rms_px:.4f} px (per point)  median view {calib.median_view_rms:.4f} px  views {len(used)}  "
        f"corners {calib.points.shape[0]}  coverage {calib.coverage_fraction:.0%}  outliers {len(calib.outliers)}"
        f"  no board: {len(calib.missed)}",
        *extra,
    ])
    outlier_views = {i for i, v in enumerate(calib.views) if v.outlier}
    bad = np.array([pv in outlier_views for pv in calib.point_view])
    rep.coverage((20, 140, 900, 760), calib.image_size, calib.points, calib.residuals, calib.coverage,
                 title="corner coverage and residuals", bad=bad)
    med = calib.median_view_rms
    from stagectl.calibration.lens import OUTLIER_FACTOR

    rep.bars((960, 140, 620, 760), [v.name for v in calib.views], [v.rms_px for v in calib.views], unit="px",
             title="per-view RMS (px)", highlight=[v.outlier for v in calib.views],
             lines=[(med, "median", _GREEN), (OUTLIER_FACTOR * med, "outlier", _RED)])
    _footer(rep, calib.warnings)
    return rep.save(path)


def handeye_report(result, residuals: Sequence[np.ndarray], image_points: Sequence[np.ndarray], image_size,
                   path: str | Path) -> Path:
    rep = Report("stagectl calibrate handeye")
    t = result.T_body_camera[:3, 3] * 1000.0
    from stagectl.core.transforms import ptr_deg_from_rotation

    rot = ptr_deg_from_rotation(result.T_body_camera[:3, :3])
    rep.lines((20, 64), [
        f"T_body_camera: translation [{t[0]:.2f}, {t[1]:.2f}, {t[2]:.2f}] mm  rotation (pan, tilt, roll) "
        f"[{rot[0]:.3f}, {rot[1]:.3f}, {rot[2]:.3f}] deg   method {result.method}{' + refinement' if result.refined else ''}",
        f"reprojection RMS {result.rms_px:.3f} px   board scatter in tracking {result.board_spread_mm:.2f} mm, "
        f"{result.board_spread_deg:.3f} deg   pupil offset used {result.pupil_offset_m:.4f} m",
        "methods: " + "  ".join(f"{k} {v['rms_px']:.2f}px/{v['delta_mm']:.1f}mm" for k, v in result.methods.items() if "rms_px" in v),
    ])
    pts = np.concatenate([np.asarray(p).reshape(-1, 2) for p in image_points]) if image_points else np.zeros((0, 2))
    res = np.concatenate([np.asarray(r).reshape(-1, 2) for r in residuals]) if residuals else np.zeros((0, 2))
    from stagectl.calibration.lens import coverage_grid

    rep.coverage((20, 140, 900, 760), image_size, pts, res, coverage_grid(pts, image_size), title="corners and residuals (all views)")
    med = float(np.median(result.view_rms_px))
    rep.bars((960, 140, 620, 760), result.view_names, result.view_rms_px, unit="px", title="per-view RMS (px)",
             lines=[(med, "median", _GREEN), (2 * med, "2x median", _RED)],
             highlight=[r > 2 * med for r in result.view_rms_px])
    _footer(rep, result.warnings)
    return rep.save(path)


def pupil_report(results: Sequence, path: str | Path) -> Path:
    rep = Report("stagectl calibrate pupil")
    rep.lines((20, 64), [
        "  ".join(f"zoom {r.zoom if r.zoom is not None else '-'}: e = {r.entrance_pupil_offset_m * 1000:.1f} mm "
                  f"(+-{r.std_m * 1000:.1f})" for r in results)[:200],
        "  ".join(f"RMS {r.rms_mm:.2f} mm / {r.rms_px:.2f} px, axis spread {r.direction_spread_deg:.1f} deg" for r in results)[:200],
    ])
    names = [f"{n}" + (f" z{r.zoom:g}" if r.zoom is not None and len(results) > 1 else "") for r in results for n in r.view_names]
    mm = [v for r in results for v in r.view_rms_mm]
    px = [v for r in results for v in r.view_rms_px]
    rep.bars((20, 140, 760, 760), names, mm, unit="mm", title="per-view scatter of the board in tracking space (mm)",
             lines=[(float(np.median(mm)), "median", _GREEN)])
    rep.bars((820, 140, 760, 760), names, px, unit="px", title="per-view reprojection RMS (px)",
             lines=[(float(np.median(px)), "median", _GREEN)])
    _footer(rep, [w for r in results for w in r.warnings])
    return rep.save(path)


def wall_report(reg, stage, path: str | Path) -> Path:
    """Per-wall maps of the residual per cabinet (marker or surveyed corner), colour from green (0) to red
    (>= 3 x median), and bars per view (markers) or per point (survey)."""
    rep = Report(f"stagectl calibrate wall ({reg.method})")
    from stagectl.core.transforms import ptr_deg_from_rotation

    T = reg.T_stage_tracking
    rot = ptr_deg_from_rotation(T[:3, :3])
    rep.lines((20, 64), [
        f"T_stage_tracking: translation [{T[0, 3] * 1000:.1f}, {T[1, 3] * 1000:.1f}, {T[2, 3] * 1000:.1f}] mm  "
        f"rotation [{rot[0]:.3f}, {rot[1]:.3f}, {rot[2]:.3f}] deg",
        f"residual RMS {reg.rms_mm:.2f} mm  max {reg.max_mm:.2f} mm" + (f"  reprojection {reg.rms_px:.3f} px" if reg.rms_px is not None else "")
        + f"  outliers {len(reg.outliers)}",
    ])
    key = "rms_mm" if reg.method == "markers" else "norm_mm"
    vals = np.array([r[key] for r in reg.residuals])
    ref = max(3 * float(np.median(vals)), 1e-6)
    walls = [w for w in stage.walls if any(r["wall"] == w.name for r in reg.residuals)]
    y0 = 130
    panel_h = max(120, (760 - 30 * len(walls)) // max(1, len(walls)))
    for w in walls:
        cols, rows = w.cabinets
        s = min(900 / (cols + 1), panel_h / (rows + 1))
        rep.frame((20, y0, int(cols * s), int(rows * s)), f"{w.name}: {cols} x {rows} cabinets, seen from the stage")
        for r in reg.residuals:
            if r["wall"] != w.name:
                continue
            a = min(1.0, r[key] / ref)
            col = (60, int(200 * (1 - a)) + 40, int(220 * a) + 20)
            if reg.method == "markers":
                p0 = (int(20 + r["col"] * s) + 2, int(y0 + r["row"] * s) + 2)
                p1 = (int(20 + (r["col"] + 1) * s) - 2, int(y0 + (r["row"] + 1) * s) - 2)
                rep.cv2.rectangle(rep.img, p0, p1, col, -1)
                if s > 40:
                    rep.text((p0[0] + 3, p1[1] - 5), f"{r[key]:.1f}", scale=0.35)
            else:
                q = (int(20 + r["col"] * s), int(y0 + r["row"] * s))
                rep.cv2.circle(rep.img, q, 5, col, -1)
                if s > 40:
                    rep.text((q[0] + 6, q[1] - 4), f"{r[key]:.1f}", scale=0.35)
        y0 += int(rows * s) + 40
    if reg.method == "markers":
        views = [v for v in reg.views if v.get("used")]
        rep.bars((960, 140, 620, 760), [v["name"] for v in views], [v["rms_px"] for v in views], unit="px",
                 title="per-view reprojection RMS (px)")
    else:
        rep.bars((960, 140, 620, 760), [r["label"] for r in reg.residuals], vals.tolist(), unit="mm",
                 title="per-point residual (mm)", highlight=[bool(r.get("outlier")) for r in reg.residuals],
                 lines=[(float(np.median(vals)), "median", _GREEN)])
    rep.text((20, 915), f"colour: green 0 mm .. red >= {ref:.2f} mm (3 x median)", scale=0.45, color=_GREY)
    _footer(rep, reg.warnings)
    return rep.save(path)


def delay_report(result, path: str | Path) -> Path:
    rep = Report("stagectl calibrate delay")
    rep.lines((20, 64), [
        f"delay {result.delay_frames:.3f} frames = {result.delay_ms:.2f} ms (frame {result.period_s * 1000:.3f} ms)   "
        f"peak correlation {result.peak_correlation:.3f}   samples {result.samples}",
        "positive: the image lags the tracking (stage file tracking[].delay_frames)",
    ])
    rep.plot((20, 140, 760, 760), [(result.lags, result.corr, _BLUE, "correlation")], title="correlation vs lag",
             xlabel="lag (frames)", vlines=[(result.delay_frames, f"{result.delay_frames:.2f}", _RED)])
    if result.image_t is not None and result.track_t is not None:
        t0 = float(result.image_t[0])
        a = result.image_dx / (np.std(result.image_dx) or 1.0)
        b = result.track_rate / (np.std(result.track_rate) or 1.0)
        sgn = -1.0 if result.sign_flipped else 1.0
        rep.plot((820, 140, 760, 360), [(result.image_t - t0, a, _BLUE, "image dx (normalised)"),
                                        (result.track_t - t0, sgn * b, _ORANGE, "tracked pan rate, raw")],
                 title="signals as recorded", xlabel="time (s)")
        shift = result.delay_frames * result.period_s
        rep.plot((820, 540, 760, 360), [(result.image_t - t0, a, _BLUE, "image dx (normalised)"),
                                        (result.track_t - t0 + shift, sgn * b, _ORANGE, "pan rate, delayed by d")],
                 title="signals aligned by the estimate", xlabel="time (s)")
    _footer(rep, result.warnings)
    return rep.save(path)
