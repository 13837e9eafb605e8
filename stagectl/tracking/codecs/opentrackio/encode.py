"""OpenTrackIO encoding: :class:`~stagectl.core.sample.TrackingSample` -> sample object (checked by the
decoder) -> compact JSON or CBOR payload -> ``OTrk`` datagrams (rules in :mod:`stagectl.tracking.codecs.opentrackio`).
Defaults are not serialised."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from stagectl.core.sample import (
    DEFAULT_DISTORTION_MODEL,
    FRAME_CAMERA,
    PROTOCOL_OPENTRACKIO,
    LensEncoders,
    LensState,
    Pose,
    RawEncoders,
    StaticCamera,
    StaticInfo,
    StaticLens,
    StaticTracker,
    Timing,
    TrackingSample,
    Transform,
)
from stagectl.tracking.codecs.opentrackio.decode import _KNOWN_TOP, _NS, sample_from_dict
from stagectl.tracking.codecs.opentrackio.transport import (
    DEFAULT_MAX_SEGMENT_PAYLOAD,
    ENCODING_CBOR,
    ENCODING_JSON,
    segment_payload,
)
from stagectl.tracking.errors import DecodeError, EncodeError

DEFAULT_PROTOCOL_VERSION: Final = (1, 0, 1)


def camera_sample(pose: Pose, **fields: Any) -> TrackingSample:
    """An OpenTrackIO sample as stagectl makes one (the simulator, a take's export): protocol version
    :data:`DEFAULT_PROTOCOL_VERSION`, ``pose`` of the camera given as the one transform ``"Camera"``; ``fields``
    are the sample's others (lens, timing, static, tracker, identifiers)."""
    return TrackingSample(
        protocol=PROTOCOL_OPENTRACKIO,
        protocol_version=DEFAULT_PROTOCOL_VERSION,
        pose=pose,
        pose_frame=FRAME_CAMERA,
        transforms=(Transform(pose, id="Camera"),),
        **fields,
    )


def _rat(r: tuple[int, int]) -> dict[str, int]:
    return {"num": r[0], "denom": r[1]}


def _ts(ns: int) -> dict[str, int]:
    if ns < 0:
        raise EncodeError(f"OpenTrackIO: a PTP timestamp cannot be negative, got {ns} ns")
    seconds, nanoseconds = divmod(ns, _NS)
    return {"seconds": seconds, "nanoseconds": nanoseconds}


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        d[key] = value


def _focus_iris_zoom(enc: LensEncoders | RawEncoders | None) -> dict[str, Any] | None:
    """``{"focus", "iris", "zoom"}`` of lens encoders (normalised or raw), those that are set; None if none is."""
    if enc is None or (enc.focus is None and enc.iris is None and enc.zoom is None):
        return None
    d: dict[str, Any] = {}
    _put(d, "focus", enc.focus)
    _put(d, "iris", enc.iris)
    _put(d, "zoom", enc.zoom)
    return d


def _lens_dict(lens: LensState) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if lens.custom is not None:
        d["custom"] = list(lens.custom)
    if lens.distortion:
        items = []
        for dist in lens.distortion:
            item: dict[str, Any] = {}
            if dist.model != DEFAULT_DISTORTION_MODEL:
                item["model"] = dist.model
            item["radial"] = list(dist.radial)
            if dist.tangential is not None:
                item["tangential"] = list(dist.tangential)
            _put(item, "overscan", dist.overscan)
            items.append(item)
        d["distortion"] = items
    if lens.distortion_offset_mm is not None:
        d["distortionOffset"] = {"x": lens.distortion_offset_mm[0], "y": lens.distortion_offset_mm[1]}
    _put(d, "encoders", _focus_iris_zoom(lens.encoders))
    _put(d, "entrancePupilOffset", lens.entrance_pupil_offset_m)
    if lens.exposure_falloff is not None:
        ef: dict[str, Any] = {"a1": lens.exposure_falloff.a1}
        _put(ef, "a2", lens.exposure_falloff.a2)
        _put(ef, "a3", lens.exposure_falloff.a3)
        d["exposureFalloff"] = ef
    _put(d, "fStop", lens.f_stop)
    _put(d, "pinholeFocalLength", lens.focal_length_mm)
    _put(d, "focusDistance", lens.focus_distance_m)
    if lens.projection_offset_mm is not None:
        d["projectionOffset"] = {"x": lens.projection_offset_mm[0], "y": lens.projection_offset_mm[1]}
    _put(d, "rawEncoders", _focus_iris_zoom(lens.raw_encoders))
    _put(d, "tStop", lens.t_stop)
    return d


def _timing_dict(t: Timing) -> dict[str, Any]:
    d: dict[str, Any] = {}
    _put(d, "mode", t.mode)
    if t.recorded_timestamp_ns is not None:
        d["recordedTimestamp"] = _ts(t.recorded_timestamp_ns)
    if t.sample_rate is not None:
        d["sampleRate"] = _rat(t.sample_rate)
    if t.sample_timestamp_ns is not None:
        d["sampleTimestamp"] = _ts(t.sample_timestamp_ns)
    _put(d, "sequenceNumber", t.sequence_number)
    s = t.synchronization
    if s is not None:
        sd: dict[str, Any] = {"locked": s.locked, "source": s.source}
        if s.frequency is not None:
            sd["frequency"] = _rat(s.frequency)
        if s.offsets is not None:
            od: dict[str, Any] = {}
            _put(od, "translation", s.offsets.translation_s)
            _put(od, "rotation", s.offsets.rotation_s)
            _put(od, "lensEncoders", s.offsets.lens_encoders_s)
            sd["offsets"] = od
        _put(sd, "present", s.present)
        if s.ptp is not None:
            p = s.ptp
            pd: dict[str, Any] = {
                "profile": p.profile,
                "domain": p.domain,
                "leaderIdentity": p.leader_identity,
                "leaderPriorities": {
                    "priority1": p.leader_priorities[0],
                    "priority2": p.leader_priorities[1],
                },
                "leaderAccuracy": p.leader_accuracy_s,
            }
            _put(pd, "leaderTimeSource", p.leader_time_source)
            pd["meanPathDelay"] = p.mean_path_delay_s
            _put(pd, "vlan", p.vlan)
            sd["ptp"] = pd
        d["synchronization"] = sd
    tc = t.timecode
    if tc is not None:
        td: dict[str, Any] = {
            "hours": tc.hours,
            "minutes": tc.minutes,
            "seconds": tc.seconds,
            "frames": tc.frames,
            "frameRate": _rat(tc.rate),
        }
        if tc.sub_frame:
            td["subFrame"] = tc.sub_frame
        if tc.drop_frame:
            td["dropFrame"] = True
        d["timecode"] = td
    return d


def _put_device(d: dict[str, Any], x: StaticCamera | StaticLens | StaticTracker) -> None:
    """The make, model, serial number and firmware version of a static camera, lens or tracker, those set."""
    _put(d, "make", x.make)
    _put(d, "model", x.model)
    _put(d, "serialNumber", x.serial_number)
    _put(d, "firmwareVersion", x.firmware_version)


def _static_dict(s: StaticInfo) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if s.duration is not None:
        d["duration"] = _rat(s.duration)
    c = s.camera
    if c is not None:
        cd: dict[str, Any] = {}
        if c.capture_frame_rate is not None:
            cd["captureFrameRate"] = _rat(c.capture_frame_rate)
        if c.active_sensor_physical_dimensions is not None:
            dims = c.active_sensor_physical_dimensions
            cd["activeSensorPhysicalDimensions"] = {"height": dims.height_mm, "width": dims.width_mm}
        if c.active_sensor_resolution is not None:
            res = c.active_sensor_resolution
            cd["activeSensorResolution"] = {"height": res.height_px, "width": res.width_px}
        _put_device(cd, c)
        _put(cd, "label", c.label)
        if c.anamorphic_squeeze is not None:
            cd["anamorphicSqueeze"] = _rat(c.anamorphic_squeeze)
        _put(cd, "isoSpeed", c.iso_speed)
        _put(cd, "fdlLink", c.fdl_link)
        _put(cd, "shutterAngle", c.shutter_angle_deg)
        d["camera"] = cd
    ln = s.lens
    if ln is not None:
        ld: dict[str, Any] = {}
        _put(ld, "distortionOverscanMax", ln.distortion_overscan_max)
        _put(ld, "undistortionOverscanMax", ln.undistortion_overscan_max)
        _put_device(ld, ln)
        _put(ld, "nominalFocalLength", ln.nominal_focal_length_mm)
        if ln.calibration_history is not None:
            ld["calibrationHistory"] = list(ln.calibration_history)
        d["lens"] = ld
    t = s.tracker
    if t is not None:
        tdd: dict[str, Any] = {}
        _put_device(tdd, t)
        d["tracker"] = tdd
    return d


def _transform_dict(pose: Pose, scale: tuple[float, float, float] | None, tid: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "translation": {"x": pose.x, "y": pose.y, "z": pose.z},
        "rotation": {"pan": pose.pan, "tilt": pose.tilt, "roll": pose.roll},
    }
    if scale is not None:
        d["scale"] = {"x": scale[0], "y": scale[1], "z": scale[2]}
    _put(d, "id", tid)
    return d


def sample_to_dict(
    sample: TrackingSample,
    *,
    protocol_version: tuple[int, int, int] | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """The OpenTrackIO sample object of ``sample`` (inverse of :func:`sample_from_dict`).

    ``transforms`` are written as kept; a sample without them (e.g. from FreeD) gets its ``pose`` as a single
    transform (pan sign and units are already OpenTrackIO's). ``protocol.version`` is ``protocol_version``,
    else the sample's own (OpenTrackIO samples), else 1.0.1. ``raw`` is re-emitted for OpenTrackIO samples
    only. With ``validate`` the result is checked by the decoder; a failure raises :class:`EncodeError`.
    """
    d: dict[str, Any] = {}
    if sample.static is not None:
        d["static"] = _static_dict(sample.static)
    if sample.tracker is not None:
        t = sample.tracker
        td: dict[str, Any] = {}
        _put(td, "notes", t.notes)
        _put(td, "recording", t.recording)
        _put(td, "slate", t.slate)
        _put(td, "status", t.status)
        d["tracker"] = td
    if sample.timing is not None:
        d["timing"] = _timing_dict(sample.timing)
    if sample.lens is not None:
        d["lens"] = _lens_dict(sample.lens)
    version = protocol_version
    if version is None:
        own = sample.protocol_version if sample.protocol == PROTOCOL_OPENTRACKIO else None
        version = own if own is not None else DEFAULT_PROTOCOL_VERSION
    d["protocol"] = {"name": PROTOCOL_OPENTRACKIO, "version": list(version)}
    _put(d, "sampleId", sample.sample_id)
    _put(d, "sourceId", sample.source_id)
    _put(d, "sourceNumber", sample.source_number)
    if sample.related_sample_ids is not None:
        d["relatedSampleIds"] = list(sample.related_sample_ids)
    if sample.global_stage is not None:
        gs = sample.global_stage
        d["globalStage"] = {"E": gs.e, "N": gs.n, "U": gs.u, "lat0": gs.lat0, "lon0": gs.lon0, "h0": gs.h0}
    if sample.transforms:
        d["transforms"] = [_transform_dict(t.pose, t.scale, t.id) for t in sample.transforms]
    elif sample.pose is not None:
        d["transforms"] = [_transform_dict(sample.pose, None, None)]
    if sample.protocol == PROTOCOL_OPENTRACKIO and sample.raw:
        clash = _KNOWN_TOP.intersection(sample.raw)
        if clash:
            raise EncodeError(f"OpenTrackIO: raw keys {sorted(clash)} would overwrite sample fields")
        d.update(sample.raw)
    if validate:
        try:
            sample_from_dict(d)
        except DecodeError as exc:
            raise EncodeError(f"OpenTrackIO: the sample does not encode to a valid sample: {exc}") from None
        except (TypeError, AttributeError, IndexError) as exc:
            raise EncodeError(f"OpenTrackIO: a sample field has the wrong type: {exc}") from None
    return d


def encode_payload(obj: Mapping[str, Any], encoding: int = ENCODING_JSON) -> bytes:
    """Serialise a sample object: compact UTF-8 JSON (no NaN) or CBOR. Raises :class:`EncodeError`."""
    try:
        if encoding == ENCODING_JSON:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        if encoding == ENCODING_CBOR:
            return cbor2.dumps(obj)
    except (ValueError, TypeError, RecursionError, cbor2.CBORError) as exc:
        raise EncodeError(f"OpenTrackIO: cannot serialise the sample: {exc}") from None
    raise EncodeError(f"OpenTrackIO: expected encoding 0x01 (JSON) or 0x02 (CBOR), got {encoding!r}")


def encode_sample(
    sample: TrackingSample,
    *,
    encoding: int = ENCODING_JSON,
    sequence: int = 0,
    max_segment_payload: int = DEFAULT_MAX_SEGMENT_PAYLOAD,
    modulus: int = 256,
    protocol_version: tuple[int, int, int] | None = None,
) -> list[bytes]:
    """Sample -> object -> JSON / CBOR bytes -> datagrams (all with ``sequence``), ready to send in order."""
    payload = encode_payload(sample_to_dict(sample, protocol_version=protocol_version), encoding)
    return segment_payload(
        payload,
        encoding=encoding,
        sequence=sequence,
        max_segment_payload=max_segment_payload,
        modulus=modulus,
    )
