"""USD export of a :class:`~stagectl.post.track.CameraTrack` through usd-core (``pxr``): one ``UsdGeom.Camera``.

What the layer holds (docs/post.md):

* stage metadata: ``upAxis = "Y"``, ``metersPerUnit`` (default 0.01: centimetres, so the lens and filmback
  values, which USD measures in *tenths of a scene unit*, read as millimetres), ``timeCodesPerSecond`` and
  ``framesPerSecond`` = the exact frame rate as a float, ``startTimeCode`` = ``start_frame`` (default 1001) and
  ``endTimeCode`` = ``start_frame + frames - 1``; ``customLayerData["stagectl"]``: the slate, the timecode of
  the first and last frame, the exact rate, the take, stage, camera, lens and source.
* ``/<root>/<camera>`` (``UsdGeom.Camera``): one time-sampled ``xformOp:transform`` per frame (time code
  ``start_frame + index``) placing the **entrance pupil** (the projection centre) with the camera looking down
  -Z, +Y up, in the Y-up world (``CameraFrame.T_yup_cam``, scaled to scene units); time-sampled
  ``focalLength``, ``horizontalAperture`` / ``verticalAperture`` (the sensor), ``horizontalApertureOffset`` /
  ``verticalApertureOffset`` (minus the principal-point offset: USD offsets the film window, the principal
  point is where the optical axis meets it), ``focusDistance`` (scene units; only for frames whose focus
  distance is finite) and ``fStop`` (only when known); ``clippingRange`` the renderer's near/far planes.
* ``stagectl:`` attributes (time-sampled, custom): ``entrancePupilOffset`` (m), ``zoom`` / ``focus`` encoders,
  ``distortion:k1 k2 k3 p1 p2`` (OpenCV Brown-Conrady, undistorted -> distorted, normalised), and
  ``timecode`` (the SMPTE label of every frame).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from stagectl.post.track import CameraTrack

__all__ = ["DEFAULT_METERS_PER_UNIT", "DEFAULT_START_FRAME", "write_usd"]

DEFAULT_START_FRAME = 1001
DEFAULT_METERS_PER_UNIT = 0.01
_NEAR_M = 0.05
_FAR_M = 1000.0


def _prim_name(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text) or "camera"
    return out if not out[0].isdigit() else "_" + out


def write_usd(track: CameraTrack, path: str | os.PathLike[str], *, start_frame: int = DEFAULT_START_FRAME,
              meters_per_unit: float = DEFAULT_METERS_PER_UNIT, root: str = "stagectl") -> Path:
    """Write ``track`` as a USD layer (``.usda`` text or ``.usd`` / ``.usdc`` crate, by the suffix; an existing
    file is replaced) and return its path. ``start_frame``: time code of the first frame; ``meters_per_unit``: the stage's scene unit."""
    from pxr import Gf, Sdf, Usd, UsdGeom, Vt

    if not meters_per_unit > 0:
        raise ValueError(f"meters_per_unit: expected > 0, got {meters_per_unit!r}")
    path = Path(path)
    layer = Sdf.Layer.Find(str(path))  # written before by this process: the registry still holds it
    if layer is not None:
        layer.Clear()
        stage = Usd.Stage.Open(layer)
    else:
        if path.exists():
            path.unlink()  # like the other writers, a file there is replaced
        stage = Usd.Stage.CreateNew(str(path))
    fps = float(track.rate.as_fraction())
    end = start_frame + len(track.frames) - 1
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    stage.SetStartTimeCode(start_frame)
    stage.SetEndTimeCode(end)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, meters_per_unit)
    info: dict[str, Any] = {
        "take": track.name,
        "stage": track.stage,
        "camera": track.camera,
        "slate": track.slate.as_dict(),
        "rate": f"{track.rate.num}/{track.rate.den}",
        "dropFrame": track.drop_frame,
        "timecodeIn": str(track.start_timecode),
        "timecodeOut": str(track.end_timecode),
        "startFrame": start_frame,
        "frames": len(track.frames),
        "lens": track.lens_name,
        "source": f"{track.source[0]} ({track.source[1]})",
        "match": track.match,
        "sensorMm": Vt.DoubleArray(list(track.sensor_mm)),
        "created": track.created_utc,
        "conventions": "stage Z-up right-handed metres -> USD Y-up (x, z, -y); camera looks down -Z, +Y up; "
                       "transform = entrance pupil (docs/post.md)",
    }
    layer = stage.GetRootLayer()
    layer.customLayerData = {"stagectl": info}
    layer.comment = f"stagectl take {track.name}: camera {track.camera}, {track.start_timecode} - {track.end_timecode}"

    root_path = Sdf.Path("/" + _prim_name(root))
    UsdGeom.Xform.Define(stage, root_path)
    stage.SetDefaultPrim(stage.GetPrimAtPath(root_path))
    cam = UsdGeom.Camera.Define(stage, root_path.AppendChild(_prim_name(track.camera)))
    op = cam.AddTransformOp()
    to_units = 1.0 / meters_per_unit
    lens_unit = 1.0 / (100.0 * meters_per_unit)  # mm -> tenths of a scene unit
    sw, sh = track.sensor_mm
    cam.CreateProjectionAttr(UsdGeom.Tokens.perspective)
    cam.CreateClippingRangeAttr(Gf.Vec2f(_NEAR_M * to_units, _FAR_M * to_units))
    attrs = {name: getattr(cam, f"Create{name}Attr")() for name in (
        "FocalLength", "HorizontalAperture", "VerticalAperture", "HorizontalApertureOffset",
        "VerticalApertureOffset", "FocusDistance", "FStop")}
    prim = cam.GetPrim()
    extra = {n: prim.CreateAttribute(f"stagectl:{n}", t, custom=True) for n, t in (
        ("entrancePupilOffset", Sdf.ValueTypeNames.Double), ("zoom", Sdf.ValueTypeNames.Double),
        ("focus", Sdf.ValueTypeNames.Double), ("timecode", Sdf.ValueTypeNames.String),
        ("distortion:k1", Sdf.ValueTypeNames.Double), ("distortion:k2", Sdf.ValueTypeNames.Double),
        ("distortion:k3", Sdf.ValueTypeNames.Double), ("distortion:p1", Sdf.ValueTypeNames.Double),
        ("distortion:p2", Sdf.ValueTypeNames.Double))}
    with Sdf.ChangeBlock():
        for f in track.frames:
            t = Usd.TimeCode(start_frame + f.index)
            M = f.T_yup_cam().copy()
            M[:3, 3] *= to_units
            op.Set(Gf.Matrix4d(M.T.tolist()), t)  # Gf matrices act on row vectors: the transpose
            ev = f.lens
            px, py = ev.principal_point_offset_mm
            attrs["FocalLength"].Set(float(ev.focal_length_mm) * lens_unit, t)
            attrs["HorizontalAperture"].Set(float(sw) * lens_unit, t)
            attrs["VerticalAperture"].Set(float(sh) * lens_unit, t)
            attrs["HorizontalApertureOffset"].Set(-float(px) * lens_unit, t)
            attrs["VerticalApertureOffset"].Set(-float(py) * lens_unit, t)
            if math.isfinite(f.focus_distance_m):
                attrs["FocusDistance"].Set(f.focus_distance_m * to_units, t)
            if math.isfinite(f.f_stop):
                attrs["FStop"].Set(float(f.f_stop), t)
            d = ev.distortion
            for key, value in (("entrancePupilOffset", ev.entrance_pupil_offset_m),
                               ("zoom", math.nan if ev.zoom is None else ev.zoom),
                               ("focus", math.nan if ev.focus is None else ev.focus),
                               ("distortion:k1", d.k1), ("distortion:k2", d.k2), ("distortion:k3", d.k3),
                               ("distortion:p1", d.p1), ("distortion:p2", d.p2)):
                if math.isfinite(value):
                    extra[key].Set(float(value), t)
            extra["timecode"].Set(str(f.timecode), t)
    layer.Save()
    return path
