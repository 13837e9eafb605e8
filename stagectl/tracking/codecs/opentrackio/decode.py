"""OpenTrackIO decoding: a whole payload (JSON or CBOR, with their bounds) -> its top-level object -> a
validated :class:`~stagectl.core.sample.TrackingSample` (rules in :mod:`stagectl.tracking.codecs.opentrackio`).

The field validators give the error path of the first bad field; the per-block fast paths check the common
valid form inline and fall back to them (see "blocks" below)."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn

import cbor2

from stagectl.core.sample import (
    DEFAULT_DISTORTION_MODEL,
    FRAME_CAMERA,
    PROTOCOL_OPENTRACKIO,
    Distortion,
    GlobalStage,
    LensEncoders,
    LensState,
    Pose,
    PtpSync,
    RawEncoders,
    StaticInfo,
    Synchronization,
    Timecode,
    Timing,
    TrackerStatus,
    TrackingSample,
    Transform,
    new_distortion,
    new_exposure_falloff,
    new_global_stage,
    new_lens_encoders,
    new_lens_state,
    new_pose,
    new_ptp_sync,
    new_raw_encoders,
    new_sensor_dimensions,
    new_sensor_resolution,
    new_static_camera,
    new_static_info,
    new_static_lens,
    new_static_tracker,
    new_sync_offsets,
    new_synchronization,
    new_timecode,
    new_timing,
    new_tracker_status,
    new_tracking_sample,
    new_transform,
)
from stagectl.core.transforms import Rows3, matmul3, ptr_deg_from_rows, rotation_rows_from_ptr_deg
from stagectl.tracking.codecs.opentrackio.transport import _U32, ENCODING_CBOR, ENCODING_JSON, decode_datagram
from stagectl.tracking.errors import DecodeError, FieldError, SegmentError

_UUID_RE: Final = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_I31: Final = 0x7FFFFFFF
_U48: Final = (1 << 48) - 1
_NS: Final = 1_000_000_000
_TIMING_MODES: Final = frozenset({"internal", "external"})
_SYNC_SOURCES: Final = frozenset({"genlock", "videoIn", "ptp", "ntp"})
_KNOWN_TOP: Final = frozenset(
    {
        "static",
        "tracker",
        "timing",
        "lens",
        "protocol",
        "sampleId",
        "sourceId",
        "sourceNumber",
        "relatedSampleIds",
        "globalStage",
        "transforms",
    }
)
_MISSING: Final = object()


# ------------------------------------------------------------------------------------------------------------
# Payload parsing
# ------------------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise DecodeError(f"OpenTrackIO JSON: expected a finite number, got {name}")


# ``json.loads(text, parse_constant=...)`` builds a new JSONDecoder (and scanner) per call; one is enough (as
# json's own module-level decoder, it is stateless between calls).
_JSON_DECODE: Final = json.JSONDecoder(parse_constant=_reject_constant).decode

#: Deepest nesting of a value kept from an unknown top-level key (``TrackingSample.raw``).
MAX_RAW_DEPTH: Final = 32


def _check_raw(key: str, value: Any) -> None:
    """Refuse a kept unknown value nested deeper than :data:`MAX_RAW_DEPTH` or holding one container twice
    (a CBOR shared reference: a cycle, or an exponential expansion when re-encoded)."""
    if not isinstance(value, (Mapping, list, tuple)):
        return
    seen: set[int] = set()
    stack = [(value, 1)]
    while stack:
        v, level = stack.pop()
        if level > MAX_RAW_DEPTH:
            raise FieldError(key, f"nested deeper than {MAX_RAW_DEPTH} levels")
        if id(v) in seen:
            raise FieldError(
                key, "a value that is shared or contains itself (CBOR tags 28/29) is not accepted"
            )
        seen.add(id(v))
        for child in (*v.keys(), *v.values()) if isinstance(v, Mapping) else v:
            if isinstance(child, (Mapping, list, tuple)) and len(child):  # () is one shared object
                stack.append((child, level + 1))


def parse_payload(payload: bytes | bytearray | memoryview, encoding: int) -> dict[str, Any]:
    """Parse a whole payload (JSON UTF-8 or CBOR) into its top-level object.

    JSON: strict UTF-8, no ``NaN`` / ``Infinity``; CBOR: exactly one data item, no trailing bytes. Deep
    nesting, bad UTF-8, malformed syntax and a top level that is not an object raise :class:`DecodeError`.
    """
    data = bytes(payload)
    if encoding == ENCODING_JSON:
        try:
            text = data.decode("utf-8")
            if text.startswith("\ufeff"):  # what json.loads checks before decoding
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
            obj = _JSON_DECODE(text)
        except DecodeError:
            raise
        except RecursionError:
            raise DecodeError("OpenTrackIO JSON: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limits
            raise DecodeError(f"OpenTrackIO JSON: {exc}") from None
    elif encoding == ENCODING_CBOR:
        fp = io.BytesIO(data)
        try:
            obj = cbor2.CBORDecoder(fp).decode()
        except RecursionError:
            raise DecodeError("OpenTrackIO CBOR: nested too deeply") from None
        except (cbor2.CBORError, ValueError, TypeError, OverflowError, LookupError) as exc:
            raise DecodeError(f"OpenTrackIO CBOR: {exc}") from None
        if fp.tell() != len(data):
            raise DecodeError(f"OpenTrackIO CBOR: {len(data) - fp.tell()} trailing bytes after the sample")
    else:
        raise DecodeError(f"OpenTrackIO: expected encoding 0x01 (JSON) or 0x02 (CBOR), got 0x{encoding:02X}")
    if not isinstance(obj, Mapping):
        raise DecodeError(f"OpenTrackIO: expected an object at the top level, got {type(obj).__name__}")
    return obj  # type: ignore[return-value]


# ---- field validators: each returns the value in its Python type or raises FieldError ----------------------


def _describe(v: Any) -> str:
    if isinstance(v, (Mapping, list, tuple, bytes, bytearray)):
        return f"{type(v).__name__} of length {len(v)}"
    if isinstance(v, str):
        return repr(v[:40]) + ("..." if len(v) > 40 else "")
    if type(v) is int and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    try:
        text = repr(v)
    except Exception:  # noqa: BLE001 - a description must never fail
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: str, expected: str, v: Any) -> NoReturn:
    raise FieldError(path, f"expected {expected}, got {_describe(v)}")


def _num(v: Any, path: str) -> float:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return v
        _bad(path, "a finite number", v)
    if t is int:
        try:
            return float(v)
        except OverflowError:
            _bad(path, "a finite number", v)
    if isinstance(v, float):  # float subclasses such as numpy.float64 (encoder side)
        x = float(v)
        if math.isfinite(x):
            return x
        _bad(path, "a finite number", v)
    _bad(path, "a number", v)


def _pos(v: Any, path: str) -> float:
    x = _num(v, path)
    if x > 0.0:
        return x
    _bad(path, "a number > 0", v)


def _at_least(v: Any, path: str, lo: float) -> float:
    x = _num(v, path)
    if x >= lo:
        return x
    _bad(path, f"a number >= {lo}", v)


def _unit(v: Any, path: str) -> float:
    x = _num(v, path)
    if 0.0 <= x <= 1.0:
        return x
    _bad(path, "a number in [0, 1]", v)


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    t = type(v)
    if t is not int:
        if t is float and v.is_integer():
            v = int(v)
        else:
            _bad(path, f"an integer in {lo}..{hi}", v)
    if lo <= v <= hi:
        return v
    _bad(path, f"an integer in {lo}..{hi}", v)


def _bool(v: Any, path: str) -> bool:
    if type(v) is bool:
        return v
    _bad(path, "true or false", v)


def _str(v: Any, path: str) -> str:
    if type(v) is str:
        return v
    _bad(path, "a string", v)


def _urn(v: Any, path: str) -> str:
    if type(v) is str and _UUID_RE.fullmatch(v) is not None:
        return v
    _bad(path, "a lowercase 'urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx'", v)


def _obj(v: Any, path: str) -> Mapping[str, Any]:
    if type(v) is dict or isinstance(v, Mapping):
        return v
    _bad(path, "an object", v)


def _list(v: Any, path: str) -> list[Any] | tuple[Any, ...]:
    if type(v) is list or type(v) is tuple:
        return v
    _bad(path, "an array", v)


def _req(o: Mapping[str, Any], key: str, path: str) -> Any:
    v = o.get(key, _MISSING)
    if v is _MISSING:
        raise FieldError(path, f"missing required field {key!r}")
    return v


def _opt_num(o: Mapping[str, Any], key: str, path: str) -> float | None:
    v = o.get(key)
    return None if v is None else _num(v, f"{path}.{key}")


def _opt_str(o: Mapping[str, Any], key: str, path: str) -> str | None:
    v = o.get(key)
    return None if v is None else _str(v, f"{path}.{key}")


def _numbers(v: Any, path: str, min_items: int = 0) -> tuple[float, ...]:
    items = _list(v, path)
    if len(items) < min_items:
        _bad(path, f"an array of at least {min_items} numbers", v)
    return tuple([_num(x, path) for x in items])


def _rational(v: Any, path: str) -> tuple[int, int]:
    o = _obj(v, path)
    return (
        _int(_req(o, "num", path), f"{path}.num", 1, _I31),
        _int(_req(o, "denom", path), f"{path}.denom", 1, _U32),
    )


def _timestamp_ns(v: Any, path: str) -> int:
    o = _obj(v, path)
    seconds = _int(_req(o, "seconds", path), f"{path}.seconds", 0, _U48)
    nanoseconds = _int(_req(o, "nanoseconds", path), f"{path}.nanoseconds", 0, _U32)
    return seconds * _NS + nanoseconds


def _xyz(v: Any, path: str, keys: tuple[str, str, str], default: float) -> tuple[float, float, float]:
    o = _obj(v, path)
    a, b, c = keys
    va, vb, vc = o.get(a), o.get(b), o.get(c)
    return (
        default if va is None else _num(va, f"{path}.{a}"),
        default if vb is None else _num(vb, f"{path}.{b}"),
        default if vc is None else _num(vc, f"{path}.{c}"),
    )


def _xy(v: Any, path: str) -> tuple[float, float]:
    if type(v) is dict:  # fast path, see "blocks" below
        x, y = v.get("x"), v.get("y")
        if type(x) is float and type(y) is float and x - x == 0.0 and y - y == 0.0:
            return x, y
    o = _obj(v, path)
    return _num(_req(o, "x", path), f"{path}.x"), _num(_req(o, "y", path), f"{path}.y")


# ---- blocks ------------------------------------------------------------------------------------------------
#
# The per-packet path. Every field is checked inline for its common valid form (a ``dict`` object, a ``list``
# array, an exact ``float`` that is finite and in range -- ``x - x == 0.0`` is false only for inf and NaN --,
# an exact ``int`` in range, a ``str``) and otherwise handed to the validator above with its path, which either
# returns the same value (ints as floats, other Mappings, ...) or raises the same FieldError as before. Fields
# are checked in the same order as always, so the first bad field reported does not change; paths are only
# formatted when needed. Objects are built with the ``new_*`` builders of :mod:`stagectl.core.sample` (the
# classes' fields by keyword, without the frozen dataclass's per-field ``object.__setattr__``).
_isfinite = math.isfinite
_urn_match = _UUID_RE.fullmatch
_INF: Final = math.inf


def _floats(v: Any, min_items: int) -> tuple[float, ...] | None:
    """``tuple(v)`` when ``v`` is a list of at least ``min_items`` finite exact floats, else None."""
    if type(v) is not list or len(v) < min_items:
        return None
    for x in v:
        if type(x) is not float or x - x != 0.0:
            return None
    return tuple(v)


def _fast_rational(v: Any) -> tuple[int, int] | None:
    """``(num, denom)`` of a dict with ints in the schema's ranges, else None (then :func:`_rational`)."""
    if type(v) is dict:
        n, d = v.get("num"), v.get("denom")
        if type(n) is int and type(d) is int and 1 <= n <= _I31 and 1 <= d <= _U32:
            return n, d
    return None


def _fast_timestamp_ns(v: Any) -> int | None:
    if type(v) is dict:
        s, n = v.get("seconds"), v.get("nanoseconds")
        if type(s) is int and type(n) is int and 0 <= s <= _U48 and 0 <= n <= _U32:
            return s * _NS + n
    return None


def _transform_slow(item: Any, i: int) -> Transform:
    path = f"transforms[{i}]"
    o = _obj(item, path)
    x, y, z = _xyz(_req(o, "translation", path), f"{path}.translation", ("x", "y", "z"), 0.0)
    pan, tilt, roll = _xyz(_req(o, "rotation", path), f"{path}.rotation", ("pan", "tilt", "roll"), 0.0)
    scale = o.get("scale")
    tid = o.get("id")
    return new_transform(
        pose=new_pose(x=x, y=y, z=z, pan=pan, tilt=tilt, roll=roll),
        scale=None if scale is None else _xyz(scale, f"{path}.scale", ("x", "y", "z"), 1.0),
        id=None if tid is None else _str(tid, f"{path}.id"),
    )


def _transforms(v: Any) -> tuple[Transform, ...]:
    items = v if type(v) is list else _list(v, "transforms")
    out = []
    for i, item in enumerate(items):
        # fast path: translation and rotation complete with finite floats, scale absent or complete likewise
        if type(item) is dict:
            t, r, scale, tid = (
                item.get("translation"),
                item.get("rotation"),
                item.get("scale"),
                item.get("id"),
            )
            if type(t) is dict and type(r) is dict and (tid is None or type(tid) is str):
                x, y, z = t.get("x"), t.get("y"), t.get("z")
                pan, tilt, roll = r.get("pan"), r.get("tilt"), r.get("roll")
                if (
                    type(x) is float
                    and type(y) is float
                    and type(z) is float
                    and type(pan) is float
                    and type(tilt) is float
                    and type(roll) is float
                    and x - x == 0.0
                    and y - y == 0.0
                    and z - z == 0.0
                    and pan - pan == 0.0
                    and tilt - tilt == 0.0
                    and roll - roll == 0.0
                ):
                    if scale is None:
                        pose = new_pose(x=x, y=y, z=z, pan=pan, tilt=tilt, roll=roll)
                        out.append(new_transform(pose=pose, id=tid))
                        continue
                    if type(scale) is dict:
                        sx, sy, sz = scale.get("x"), scale.get("y"), scale.get("z")
                        if (
                            type(sx) is float
                            and type(sy) is float
                            and type(sz) is float
                            and sx - sx == 0.0
                            and sy - sy == 0.0
                            and sz - sz == 0.0
                        ):
                            pose = new_pose(x=x, y=y, z=z, pan=pan, tilt=tilt, roll=roll)
                            out.append(new_transform(pose=pose, scale=(sx, sy, sz), id=tid))
                            continue
        out.append(_transform_slow(item, i))
    return tuple(out)


def _compose(transforms: tuple[Transform, ...]) -> Pose:
    """``T_tracking_camera`` of the chain (scene-graph rules for scale, see the module docstring).

    Plain ``math`` on row tuples (:func:`~stagectl.core.transforms.rotation_rows_from_ptr_deg`,
    :func:`~stagectl.core.transforms.matmul3`, :func:`~stagectl.core.transforms.ptr_deg_from_rows`) in numpy's order of
    operations: for 2-3 transforms numpy's per-call overhead was most of the cost. The running products start
    from the first transform (``I @ X`` is ``X`` for the finite values decoded here).
    """
    if len(transforms) == 1:
        return transforms[0].pose
    first = transforms[0]
    p = first.pose
    rot = rotation_rows_from_ptr_deg(p.pan, p.tilt, p.roll)  # R0 R1 ...
    tx, ty, tz = 0.0 + p.x, 0.0 + p.y, 0.0 + p.z
    # linear = R0 S0 R1 S1 ... : maps the current child's translation into the tracking frame
    linear = rot if first.scale is None else _scaled(rot, first.scale)
    for tr in transforms[1:]:
        p = tr.pose
        r = rotation_rows_from_ptr_deg(p.pan, p.tilt, p.roll)
        x, y, z = p.x, p.y, p.z
        (l00, l01, l02), (l10, l11, l12), (l20, l21, l22) = linear
        tx = tx + (0.0 + l00 * x + l01 * y + l02 * z)
        ty = ty + (0.0 + l10 * x + l11 * y + l12 * z)
        tz = tz + (0.0 + l20 * x + l21 * y + l22 * z)
        rot = matmul3(rot, r)
        linear = matmul3(linear, r) if tr.scale is None else _scaled(matmul3(linear, r), tr.scale)
    if not (_isfinite(tx) and _isfinite(ty) and _isfinite(tz)):
        raise FieldError("transforms", "the composed translation is not finite")
    pan, tilt, roll = ptr_deg_from_rows(rot)
    return new_pose(x=tx, y=ty, z=tz, pan=pan, tilt=tilt, roll=roll)


def _scaled(m: Rows3, scale: tuple[float, float, float]) -> Rows3:
    """``m * scale``: column ``j`` of ``m`` times ``scale[j]`` (numpy's broadcast of a row vector)."""
    sx, sy, sz = scale
    (a, b, c), (d, e, f), (g, h, i) = m
    return (a * sx, b * sy, c * sz), (d * sx, e * sy, f * sz), (g * sx, h * sy, i * sz)


def _encoders(v: Any) -> LensEncoders | None:
    o = v if type(v) is dict else _obj(v, "lens.encoders")
    f, i, z = o.get("focus"), o.get("iris"), o.get("zoom")
    if f is None and i is None and z is None:
        return None
    return new_lens_encoders(
        focus=None if f is None else f if type(f) is float and 0.0 <= f <= 1.0 else _unit(f, "lens.encoders.focus"),
        iris=None if i is None else i if type(i) is float and 0.0 <= i <= 1.0 else _unit(i, "lens.encoders.iris"),
        zoom=None if z is None else z if type(z) is float and 0.0 <= z <= 1.0 else _unit(z, "lens.encoders.zoom"),
    )


def _raw_encoders(v: Any) -> RawEncoders | None:
    o = v if type(v) is dict else _obj(v, "lens.rawEncoders")
    f, i, z = o.get("focus"), o.get("iris"), o.get("zoom")
    if f is None and i is None and z is None:
        return None
    return new_raw_encoders(
        focus=None
        if f is None
        else f
        if type(f) is int and 0 <= f <= _U32
        else _int(f, "lens.rawEncoders.focus", 0, _U32),
        iris=None
        if i is None
        else i
        if type(i) is int and 0 <= i <= _U32
        else _int(i, "lens.rawEncoders.iris", 0, _U32),
        zoom=None
        if z is None
        else z
        if type(z) is int and 0 <= z <= _U32
        else _int(z, "lens.rawEncoders.zoom", 0, _U32),
    )


def _distortion(v: Any) -> tuple[Distortion, ...] | None:
    items = v if type(v) is list else _list(v, "lens.distortion")
    out = []
    for k, item in enumerate(items):
        if type(item) is dict:
            g = item.get
            model, tangential, overscan = g("model"), g("tangential"), g("overscan")
            radial = _floats(g("radial"), 1)
            if (
                radial is not None
                and (overscan is None or (type(overscan) is float and 1.0 <= overscan < _INF))
                and (model is None or type(model) is str)
            ):
                tang = None if tangential is None else _floats(tangential, 1)
                if tangential is None or tang is not None:
                    out.append(
                        new_distortion(
                            radial=radial,
                            tangential=tang,
                            overscan=overscan,
                            model=DEFAULT_DISTORTION_MODEL if model is None else model,
                        )
                    )
                    continue
        path = f"lens.distortion[{k}]"
        o = _obj(item, path)
        model = o.get("model")
        tangential = o.get("tangential")
        overscan = o.get("overscan")
        out.append(
            new_distortion(
                radial=_numbers(_req(o, "radial", path), f"{path}.radial", 1),
                tangential=None if tangential is None else _numbers(tangential, f"{path}.tangential", 1),
                overscan=None if overscan is None else _at_least(overscan, f"{path}.overscan", 1.0),
                model=DEFAULT_DISTORTION_MODEL if model is None else _str(model, f"{path}.model"),
            )
        )
    return tuple(out) or None


def _lens(v: Any) -> LensState:
    o = v if type(v) is dict else _obj(v, "lens")
    g = o.get
    fl, fd, fs, ts = g("pinholeFocalLength"), g("focusDistance"), g("fStop"), g("tStop")
    ep, enc, raw, dist = g("entrancePupilOffset"), g("encoders"), g("rawEncoders"), g("distortion")
    do, po, ef, custom = g("distortionOffset"), g("projectionOffset"), g("exposureFalloff"), g("custom")
    falloff = None
    if ef is not None:
        efo = ef if type(ef) is dict else _obj(ef, "lens.exposureFalloff")
        a1, a2, a3 = efo.get("a1"), efo.get("a2"), efo.get("a3")
        falloff = new_exposure_falloff(
            a1=a1
            if type(a1) is float and a1 - a1 == 0.0
            else _num(_req(efo, "a1", "lens.exposureFalloff"), "lens.exposureFalloff.a1"),
            a2=a2
            if a2 is None or (type(a2) is float and a2 - a2 == 0.0)
            else _num(a2, "lens.exposureFalloff.a2"),
            a3=a3
            if a3 is None or (type(a3) is float and a3 - a3 == 0.0)
            else _num(a3, "lens.exposureFalloff.a3"),
        )
    return new_lens_state(
        focal_length_mm=None
        if fl is None
        else fl
        if type(fl) is float and 0.0 < fl < _INF
        else _pos(fl, "lens.pinholeFocalLength"),
        focus_distance_m=None
        if fd is None
        else fd
        if type(fd) is float and 0.0 < fd < _INF
        else _pos(fd, "lens.focusDistance"),
        f_stop=None if fs is None else fs if type(fs) is float and 0.0 < fs < _INF else _pos(fs, "lens.fStop"),
        t_stop=None if ts is None else ts if type(ts) is float and 0.0 < ts < _INF else _pos(ts, "lens.tStop"),
        entrance_pupil_offset_m=ep
        if ep is None or (type(ep) is float and ep - ep == 0.0)
        else _num(ep, "lens.entrancePupilOffset"),
        encoders=None if enc is None else _encoders(enc),
        raw_encoders=None if raw is None else _raw_encoders(raw),
        distortion=None if dist is None else _distortion(dist),
        distortion_offset_mm=None if do is None else _xy(do, "lens.distortionOffset"),
        projection_offset_mm=None if po is None else _xy(po, "lens.projectionOffset"),
        exposure_falloff=falloff,
        custom=None if custom is None else _floats(custom, 0) or _numbers(custom, "lens.custom"),
    )


def _timecode(v: Any) -> Timecode:
    if type(v) is dict:
        g = v.get
        h, m, s, f, sub, drop = (
            g("hours"),
            g("minutes"),
            g("seconds"),
            g("frames"),
            g("subFrame"),
            g("dropFrame"),
        )
        rate = _fast_rational(g("frameRate"))
        if (
            type(h) is int
            and type(m) is int
            and type(s) is int
            and type(f) is int
            and 0 <= h <= 23
            and 0 <= m <= 59
            and 0 <= s <= 59
            and 0 <= f <= 119
            and rate is not None
            and (sub is None or (type(sub) is int and 0 <= sub <= _U32))
            and (drop is None or type(drop) is bool)
        ):
            return new_timecode(
                hours=h,
                minutes=m,
                seconds=s,
                frames=f,
                rate=rate,
                sub_frame=0 if sub is None else sub,
                drop_frame=False if drop is None else drop,
            )
    p = "timing.timecode"
    o = _obj(v, p)
    sub, drop = o.get("subFrame"), o.get("dropFrame")
    return new_timecode(
        hours=_int(_req(o, "hours", p), f"{p}.hours", 0, 23),
        minutes=_int(_req(o, "minutes", p), f"{p}.minutes", 0, 59),
        seconds=_int(_req(o, "seconds", p), f"{p}.seconds", 0, 59),
        frames=_int(_req(o, "frames", p), f"{p}.frames", 0, 119),
        rate=_rational(_req(o, "frameRate", p), f"{p}.frameRate"),
        sub_frame=0 if sub is None else _int(sub, f"{p}.subFrame", 0, _U32),
        drop_frame=False if drop is None else _bool(drop, f"{p}.dropFrame"),
    )


def _ptp(v: Any) -> PtpSync:
    p = "timing.synchronization.ptp"
    o = _obj(v, p)
    pri = _obj(_req(o, "leaderPriorities", p), f"{p}.leaderPriorities")
    vlan = o.get("vlan")
    return new_ptp_sync(
        profile=_str(_req(o, "profile", p), f"{p}.profile"),
        domain=_int(_req(o, "domain", p), f"{p}.domain", 0, 127),
        leader_identity=_str(_req(o, "leaderIdentity", p), f"{p}.leaderIdentity"),
        leader_priorities=(
            _int(_req(pri, "priority1", f"{p}.leaderPriorities"), f"{p}.leaderPriorities.priority1", 0, 255),
            _int(_req(pri, "priority2", f"{p}.leaderPriorities"), f"{p}.leaderPriorities.priority2", 0, 255),
        ),
        leader_accuracy_s=_at_least(_req(o, "leaderAccuracy", p), f"{p}.leaderAccuracy", 0.0),
        mean_path_delay_s=_at_least(_req(o, "meanPathDelay", p), f"{p}.meanPathDelay", 0.0),
        leader_time_source=_opt_str(o, "leaderTimeSource", p),
        vlan=None if vlan is None else _int(vlan, f"{p}.vlan", 0, _U32),
    )


def _synchronization(v: Any) -> Synchronization:
    p = "timing.synchronization"
    o = _obj(v, p)
    source = _str(_req(o, "source", p), f"{p}.source")
    if source not in _SYNC_SOURCES:
        _bad(f"{p}.source", "one of genlock, videoIn, ptp, ntp", source)
    freq, present, offsets, ptp = o.get("frequency"), o.get("present"), o.get("offsets"), o.get("ptp")
    offs = None
    if offsets is not None:
        oo = _obj(offsets, f"{p}.offsets")
        offs = new_sync_offsets(
            translation_s=_opt_num(oo, "translation", f"{p}.offsets"),
            rotation_s=_opt_num(oo, "rotation", f"{p}.offsets"),
            lens_encoders_s=_opt_num(oo, "lensEncoders", f"{p}.offsets"),
        )
    return new_synchronization(
        locked=_bool(_req(o, "locked", p), f"{p}.locked"),
        source=source,
        frequency=None if freq is None else _rational(freq, f"{p}.frequency"),
        present=None if present is None else _bool(present, f"{p}.present"),
        offsets=offs,
        ptp=None if ptp is None else _ptp(ptp),
    )


def _timing(v: Any) -> Timing:
    o = v if type(v) is dict else _obj(v, "timing")
    g = o.get
    mode, st, rt, rate, seq, tc, sync = (
        g("mode"),
        g("sampleTimestamp"),
        g("recordedTimestamp"),
        g("sampleRate"),
        g("sequenceNumber"),
        g("timecode"),
        g("synchronization"),
    )
    if mode is not None and (type(mode) is not str or mode not in _TIMING_MODES):
        _bad("timing.mode", "'internal' or 'external'", mode)
    return new_timing(
        mode=mode,
        sample_timestamp_ns=None
        if st is None
        else _fast_timestamp_ns(st) or _timestamp_ns(st, "timing.sampleTimestamp"),
        recorded_timestamp_ns=None
        if rt is None
        else _fast_timestamp_ns(rt) or _timestamp_ns(rt, "timing.recordedTimestamp"),
        sample_rate=None if rate is None else _fast_rational(rate) or _rational(rate, "timing.sampleRate"),
        sequence_number=None
        if seq is None
        else seq
        if type(seq) is int and 0 <= seq <= _U32
        else _int(seq, "timing.sequenceNumber", 0, _U32),
        timecode=None if tc is None else _timecode(tc),
        synchronization=None if sync is None else _synchronization(sync),
    )


def _tracker(v: Any) -> TrackerStatus:
    if type(v) is dict:
        notes, rec, slate, status = v.get("notes"), v.get("recording"), v.get("slate"), v.get("status")
        if (
            (notes is None or type(notes) is str)
            and (rec is None or type(rec) is bool)
            and (slate is None or type(slate) is str)
            and (status is None or type(status) is str)
        ):
            return new_tracker_status(notes=notes, recording=rec, slate=slate, status=status)
    o = _obj(v, "tracker")
    rec = o.get("recording")
    return new_tracker_status(
        notes=_opt_str(o, "notes", "tracker"),
        recording=None if rec is None else _bool(rec, "tracker.recording"),
        slate=_opt_str(o, "slate", "tracker"),
        status=_opt_str(o, "status", "tracker"),
    )


def _static(v: Any) -> StaticInfo:
    o = _obj(v, "static")
    dur, cam, lens, trk = o.get("duration"), o.get("camera"), o.get("lens"), o.get("tracker")
    camera = static_lens = tracker = None
    if cam is not None:
        p = "static.camera"
        c = _obj(cam, p)
        g = c.get
        cfr, dims, res, sq, iso, fdl, sh = (
            g("captureFrameRate"),
            g("activeSensorPhysicalDimensions"),
            g("activeSensorResolution"),
            g("anamorphicSqueeze"),
            g("isoSpeed"),
            g("fdlLink"),
            g("shutterAngle"),
        )
        dimensions = resolution = None
        if dims is not None:
            d = _obj(dims, f"{p}.activeSensorPhysicalDimensions")
            dimensions = new_sensor_dimensions(
                width_mm=_at_least(
                    _req(d, "width", f"{p}.activeSensorPhysicalDimensions"),
                    f"{p}.activeSensorPhysicalDimensions.width",
                    0.0,
                ),
                height_mm=_at_least(
                    _req(d, "height", f"{p}.activeSensorPhysicalDimensions"),
                    f"{p}.activeSensorPhysicalDimensions.height",
                    0.0,
                ),
            )
        if res is not None:
            r = _obj(res, f"{p}.activeSensorResolution")
            resolution = new_sensor_resolution(
                width_px=_int(
                    _req(r, "width", f"{p}.activeSensorResolution"),
                    f"{p}.activeSensorResolution.width",
                    0,
                    _I31,
                ),
                height_px=_int(
                    _req(r, "height", f"{p}.activeSensorResolution"),
                    f"{p}.activeSensorResolution.height",
                    0,
                    _I31,
                ),
            )
        shutter = None
        if sh is not None:
            shutter = _num(sh, f"{p}.shutterAngle")
            if not 0.0 <= shutter <= 360.0:
                _bad(f"{p}.shutterAngle", "a number in [0, 360]", sh)
        camera = new_static_camera(
            capture_frame_rate=None if cfr is None else _rational(cfr, f"{p}.captureFrameRate"),
            active_sensor_physical_dimensions=dimensions,
            active_sensor_resolution=resolution,
            make=_opt_str(c, "make", p),
            model=_opt_str(c, "model", p),
            serial_number=_opt_str(c, "serialNumber", p),
            firmware_version=_opt_str(c, "firmwareVersion", p),
            label=_opt_str(c, "label", p),
            anamorphic_squeeze=None if sq is None else _rational(sq, f"{p}.anamorphicSqueeze"),
            iso_speed=None if iso is None else _int(iso, f"{p}.isoSpeed", 1, _U32),
            fdl_link=None if fdl is None else _urn(fdl, f"{p}.fdlLink"),
            shutter_angle_deg=shutter,
        )
    if lens is not None:
        p = "static.lens"
        ll = _obj(lens, p)
        dmax, umax, nfl, hist = (
            ll.get("distortionOverscanMax"),
            ll.get("undistortionOverscanMax"),
            ll.get("nominalFocalLength"),
            ll.get("calibrationHistory"),
        )
        static_lens = new_static_lens(
            distortion_overscan_max=None
            if dmax is None
            else _at_least(dmax, f"{p}.distortionOverscanMax", 1.0),
            undistortion_overscan_max=None
            if umax is None
            else _at_least(umax, f"{p}.undistortionOverscanMax", 1.0),
            make=_opt_str(ll, "make", p),
            model=_opt_str(ll, "model", p),
            serial_number=_opt_str(ll, "serialNumber", p),
            firmware_version=_opt_str(ll, "firmwareVersion", p),
            nominal_focal_length_mm=None if nfl is None else _pos(nfl, f"{p}.nominalFocalLength"),
            calibration_history=None
            if hist is None
            else tuple([_str(s, f"{p}.calibrationHistory") for s in _list(hist, f"{p}.calibrationHistory")]),
        )
    if trk is not None:
        p = "static.tracker"
        t = _obj(trk, p)
        tracker = new_static_tracker(
            make=_opt_str(t, "make", p),
            model=_opt_str(t, "model", p),
            serial_number=_opt_str(t, "serialNumber", p),
            firmware_version=_opt_str(t, "firmwareVersion", p),
        )
    return new_static_info(
        duration=None if dur is None else _rational(dur, "static.duration"),
        camera=camera,
        lens=static_lens,
        tracker=tracker,
    )


def _protocol(v: Any) -> tuple[int, int, int]:
    if type(v) is dict and v.get("name") == PROTOCOL_OPENTRACKIO:
        version = v.get("version")
        if type(version) is list and len(version) == 3:
            a, b, c = version
            if (
                type(a) is int
                and type(b) is int
                and type(c) is int
                and 0 <= a <= 9
                and 0 <= b <= 9
                and 0 <= c <= 9
            ):
                return a, b, c
    o = _obj(v, "protocol")
    name = _req(o, "name", "protocol")
    if name != PROTOCOL_OPENTRACKIO:
        _bad("protocol.name", "'OpenTrackIO'", name)
    version = _list(_req(o, "version", "protocol"), "protocol.version")
    if len(version) != 3:
        _bad("protocol.version", "3 integers", version)
    return (
        _int(version[0], "protocol.version[0]", 0, 9),
        _int(version[1], "protocol.version[1]", 0, 9),
        _int(version[2], "protocol.version[2]", 0, 9),
    )


def _global_stage(v: Any) -> GlobalStage:
    if type(v) is dict:
        g = v.get
        e, n, u, lat0, lon0, h0 = g("E"), g("N"), g("U"), g("lat0"), g("lon0"), g("h0")
        if (
            type(e) is float
            and type(n) is float
            and type(u) is float
            and type(lat0) is float
            and type(lon0) is float
            and type(h0) is float
            and e - e == 0.0
            and n - n == 0.0
            and u - u == 0.0
            and lat0 - lat0 == 0.0
            and lon0 - lon0 == 0.0
            and h0 - h0 == 0.0
        ):
            return new_global_stage(e=e, n=n, u=u, lat0=lat0, lon0=lon0, h0=h0)
    o = _obj(v, "globalStage")
    p = "globalStage"
    return new_global_stage(
        e=_num(_req(o, "E", p), "globalStage.E"),
        n=_num(_req(o, "N", p), "globalStage.N"),
        u=_num(_req(o, "U", p), "globalStage.U"),
        lat0=_num(_req(o, "lat0", p), "globalStage.lat0"),
        lon0=_num(_req(o, "lon0", p), "globalStage.lon0"),
        h0=_num(_req(o, "h0", p), "globalStage.h0"),
    )


def sample_from_dict(obj: Mapping[str, Any]) -> TrackingSample:
    """Validate a parsed OpenTrackIO sample object and convert it to a :class:`TrackingSample`.

    The pose is the composition of ``transforms`` (``T_tracking_camera``, metres / degrees, stage
    conventions), the individual transforms are kept in ``transforms``. Timestamps become integer ns.
    Raises :class:`FieldError` (a :class:`DecodeError`) naming the first bad field.
    """
    o = obj if type(obj) is dict else _obj(obj, "")
    g = o.get
    proto, tr, lens, timing, tracker, static, gs = (
        g("protocol"),
        g("transforms"),
        g("lens"),
        g("timing"),
        g("tracker"),
        g("static"),
        g("globalStage"),
    )
    sid, src, num, rel = g("sampleId"), g("sourceId"), g("sourceNumber"), g("relatedSampleIds")
    transforms = None if tr is None else (_transforms(tr) or None)
    raw: dict[str, Any] = {}
    if len(o) > len(_KNOWN_TOP) or not _KNOWN_TOP.issuperset(o):
        for key, value in o.items():
            if type(key) is not str:
                _bad("", "string keys at the top level", key)
            if key not in _KNOWN_TOP:
                _check_raw(key, value)
                raw[key] = value
    # keyword arguments are evaluated in this order, which is the order fields are checked in (first error wins)
    return new_tracking_sample(
        protocol=PROTOCOL_OPENTRACKIO,
        protocol_version=None if proto is None else _protocol(proto),
        pose=None if transforms is None else _compose(transforms),
        pose_frame=FRAME_CAMERA,
        transforms=transforms,
        lens=None if lens is None else _lens(lens),
        timing=None if timing is None else _timing(timing),
        tracker=None if tracker is None else _tracker(tracker),
        static=None if static is None else _static(static),
        global_stage=None if gs is None else _global_stage(gs),
        source_number=None
        if num is None
        else num
        if type(num) is int and 0 <= num <= _U32
        else _int(num, "sourceNumber", 0, _U32),
        source_id=None if src is None else src if type(src) is str and _urn_match(src) else _urn(src, "sourceId"),
        sample_id=None if sid is None else sid if type(sid) is str and _urn_match(sid) else _urn(sid, "sampleId"),
        related_sample_ids=None
        if rel is None
        else tuple(
            [
                r if type(r) is str and _urn_match(r) else _urn(r, "relatedSampleIds[]")
                for r in _list(rel, "relatedSampleIds")
            ]
        ),
        raw=raw,
    )


def decode_sample(payload: bytes | bytearray | memoryview, encoding: int) -> TrackingSample:
    """Whole payload (JSON or CBOR bytes) -> :class:`TrackingSample`."""
    return sample_from_dict(parse_payload(payload, encoding))


def decode_packet(
    data: bytes | bytearray | memoryview, *, moduli: Iterable[int] = (255, 256)
) -> TrackingSample:
    """One self-contained datagram -> :class:`TrackingSample`.

    Raises :class:`SegmentError` when the datagram is a segment of a larger payload (feed those to a
    :class:`Reassembler`), and :class:`DecodeError` for a vendor encoding (>= 0x80).
    """
    d = decode_datagram(data, moduli=moduli)
    if not d.is_single:
        raise SegmentError(
            f"OTrk: datagram is a segment (offset {d.header.segment_offset}, "
            f"last={d.header.last_segment}) of a larger payload; reassemble it first"
        )
    return decode_sample(d.payload, d.header.encoding)
