"""Solve a take (``.stgtake``) into a :class:`~stagectl.post.track.CameraTrack`: the camera at every frame.

:func:`solve_take` reads the take's raw datagrams with :func:`stagectl.tracking.recording.read_take` (its public
iteration and header only), decodes the chosen camera's source with the tracking codecs
(:mod:`stagectl.tracking.codecs`), pushes every sample into a :class:`stagectl.tracking.timeline.Timeline` like a
live receiver does, and evaluates the camera at every frame of the stage's exact frame rate with the function
``stagectl run`` renders from (``stagectl.runtime.CameraRig.state_at``: wall registration ``T_stage_tracking``,
the tracker offset ``T_body_camera`` for body poses, the lens file's table at the zoom/focus encoders, else the
tracker's focal length). Distortion and focus distance come from the same lens table at the same encoders.

Which sample belongs to which frame (``match``)
-----------------------------------------------
* ``"timecode"`` (chosen by ``"auto"`` when the samples carry SMPTE timecode at the stage rate, e.g.
  OpenTrackIO): frame ``n`` is the sample labelled ``n`` (``Timeline.pose_at_timecode``; a missing label is
  interpolated from its neighbours up to 2 frames apart, else the frame is left out and counted in ``notes``).
  The frames run from the first sample's label to the last one's; the labels are the source's own.
* ``"nearest"`` (``"auto"`` for a source without timecode that sends one sample per frame, e.g. FreeD at the
  stage rate): the frames form a grid ``t_k = t0 + k * period`` on the arrival clock whose phase ``t0`` is the
  median phase of the arrivals, so each frame lands on its own sample whatever the network jitter (up to half
  a period) and gets it unblended. The source's ``delay_frames`` shifts the grid as in ``stagectl run``.
* ``"interpolate"`` (``"auto"`` for a source at another rate): the same grid from the first arrival, each frame
  interpolated between the samples around it (``Timeline.pose_at``).

* ``"recorded"`` (``"auto"`` when the take holds them, at the stage rate): the cameras ``stagectl run``
  rendered, one per frame, as the take recorded them (kind-3 records, docs/takes.md): the pose, focal length,
  principal point and entrance pupil exactly as drawn, the distortion and focus distance from the lens file at
  the recorded encoders, the labels the take gave them (the stage clock's time of day at the frame edge).
* ``"rendered"``: the same frames (the recorded instants and labels) solved again from the raw datagrams with
  ``stagectl run``'s rig (its dejittered timeline, motion limits and lens maths): a check of the recorded
  cameras, and what a take's datagrams give under a changed stage file (a new registration, a lens file). A
  take whose frames carry their latch (kind 5, docs/takes.md) is **replayed**: the datagrams received before it
  started (kind 6) and during it are pushed in arrival order, each frame seeing only the samples its timeline
  held when it was latched, with that frame's delay, prediction bound, query mode and smoothing, so each frame
  is evaluated exactly as the loop evaluated it (the prediction past the newest sample included). An older
  take is solved from all its samples with the operator's camera settings of the header.

Without source timecode the labels count from the time of day of the first frame: exactly, through the
header's clock anchor (``meta["clock_anchor"]``, a monotonic / system pair read together) when the take has
one, else from the take's creation time (the header's ``created_ns``, UTC, clock ``system``); or from
``start_timecode``.

Slate: the take header's ``meta["slate"]`` (a mapping) and the ``meta`` keys ``scene``, ``take``, ``roll``
(or ``tape``), ``notes``; the take name defaults to the file name.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np

from stagectl.core.camera_settings import CameraSettings, smoothing_of
from stagectl.core.errors import StageError
from stagectl.core.fields import FieldError, value_of
from stagectl.core.timebase import NS_PER_S, FrameRate, Timecode
from stagectl.lens.distortion import BrownConrady
from stagectl.lens.lensfile import LensEvaluation
from stagectl.post.track import CameraFrame, CameraTrack, RawSample, Slate

__all__ = ["MATCH_MODES", "PostError", "solve_take"]

MATCH_MODES: Final = ("auto", "recorded", "rendered", "timecode", "nearest", "interpolate")
_DAY_NS: Final = 86_400 * NS_PER_S
_SLATE_KEYS: Final = ("scene", "take", "roll", "tape", "notes", "camera")


class PostError(StageError):
    """A take cannot be solved or exported (not a take, no such camera, no usable samples, bad option)."""

    exit_code = 2


class _Answer:
    """Stands in for a rig's timeline in ``stagectl run``'s ``CameraRig.state_at``: answers every ``pose_at`` with the
    state this module already evaluated for the frame (by time or by timecode)."""

    def __init__(self) -> None:
        self.state: Any = None

    def pose_at(self, t_ns: int) -> Any:
        return self.state


@dataclass(frozen=True, slots=True)
class _Stored:
    arrival_ns: int
    sample: Any


def _load_stage(stage: Any) -> Any:
    if isinstance(stage, (str, os.PathLike)):
        from stagectl.stage import load_stage

        return load_stage(stage)
    return stage


def _choose_camera(stage: Any, camera: str | None, take_sources: dict[int, tuple[str, str]]) -> Any:
    cams = list(stage.cameras)
    if not cams:
        raise PostError(f"stage {stage.name!r} has no cameras: nothing to solve")
    names = ", ".join(c.name for c in cams)
    if camera is not None:
        for c in cams:
            if c.name == camera:
                return c
        raise PostError(f"stage {stage.name!r} has no camera {camera!r}; cameras: {names}")
    if len(cams) == 1:
        return cams[0]
    recorded = {name for name, _ in take_sources.values()}
    hits = [c for c in cams if c.tracking in recorded]
    if len(hits) == 1:
        return hits[0]
    raise PostError(f"stage {stage.name!r} has several cameras ({names}): choose one (--camera NAME)")


def _choose_source(cam: Any, src: Any, take_sources: dict[int, tuple[str, str]], take: str) -> int:
    from stagectl.tracking.receiver import normalise_protocol

    proto = normalise_protocol(src.protocol)

    def same(p: str) -> bool:
        try:
            return normalise_protocol(p) == proto
        except ValueError:
            return False

    by_name = [sid for sid, (name, p) in take_sources.items() if name == src.name and same(p)]
    if len(by_name) == 1:
        return by_name[0]
    by_proto = [sid for sid, (_, p) in take_sources.items() if same(p)]
    if len(by_proto) == 1:
        return by_proto[0]
    listed = ", ".join(f"{n!r} ({p})" for n, p in take_sources.values()) or "none"
    if not by_proto:
        raise PostError(f"{take}: no {proto} source for camera {cam.name!r} (tracking {src.name!r}); the take "
                        f"holds: {listed}")
    raise PostError(f"{take}: several {proto} sources could be camera {cam.name!r}'s ({listed}) and none is "
                    f"named {src.name!r}")


class _Decoder:
    """The tracking codecs for one take source, with the stage source's ID / name filters."""

    def __init__(self, src: Any, cam: Any) -> None:
        from stagectl.tracking.profiles import profile_from_config
        from stagectl.tracking.receiver import normalise_protocol

        self.protocol = normalise_protocol(src.protocol)
        self.camera_id = src.camera_id
        self.names = {src.name, cam.name}
        self.profile = profile_from_config(src.encoder_profile) if self.protocol == "freed" else None
        self.reassembler: Any = None
        self.bad = 0
        self.other = 0
        self.first_error = ""

    def decode(self, data: bytes) -> list[Any]:
        from stagectl.tracking.errors import DecodeError

        try:
            if self.protocol == "freed":
                from stagectl.tracking.codecs.freed import decode_freed_sample

                s = decode_freed_sample(data, self.profile)
                if self.camera_id is not None and s.camera_id not in (self.camera_id, 0xFF):
                    self.other += 1
                    return []
                return [s]
            if self.protocol == "opentrackio":
                from stagectl.tracking.codecs.opentrackio import Reassembler, decode_sample

                if self.reassembler is None:
                    self.reassembler = Reassembler()
                payload = self.reassembler.push(data)
                if payload is None:
                    return []
                s = decode_sample(payload.data, payload.encoding)
                if self.camera_id is not None and s.source_number not in (None, self.camera_id):
                    self.other += 1
                    return []
                return [s]
            from stagectl.tracking.codecs.osc import decode_osc

            out = []
            for s in decode_osc(data):
                if s.raw.get("camera") in self.names:
                    out.append(s)
                else:
                    self.other += 1
            return out
        except (DecodeError, ValueError) as exc:
            self.bad += 1
            if not self.first_error:
                self.first_error = str(exc)
            return []


def _slate(meta: Mapping[str, Any], camera: str, take_name: str) -> Slate:
    doc: dict[str, Any] = {}
    for k in _SLATE_KEYS:
        if k in meta and meta[k] is not None:
            doc[k] = meta[k]
    inner = meta.get("slate")
    if isinstance(inner, Mapping):
        doc.update({str(k): v for k, v in inner.items() if v is not None})
    roll = doc.pop("roll", None) or doc.pop("tape", None) or ""
    doc.pop("tape", None)
    return Slate(
        scene=str(doc.pop("scene", "") or ""),
        take=str(doc.pop("take", "") or take_name),
        roll=str(roll),
        camera=str(doc.pop("camera", "") or camera),
        notes=str(doc.pop("notes", "") or ""),
        extra=doc,
    )


def _sample_timecode(sample: Any) -> Timecode | None:
    timing = sample.timing
    tc = timing.timecode if timing is not None else None
    if tc is None:
        return None
    rate = FrameRate(*tc.rate)
    drop = bool(tc.drop_frame) and rate.is_drop_frame_capable
    try:
        return Timecode(tc.hours, tc.minutes, tc.seconds, tc.frames, rate, drop)
    except ValueError:
        return None


def _raw(arrival_ns: int, s: Any) -> RawSample:
    p = s.pose
    enc = s.lens.encoders if s.lens is not None else None
    fl = s.lens.focal_length_mm if s.lens is not None else None
    tc = _sample_timecode(s)
    nan = math.nan
    return RawSample(
        arrival_ns, s.pose_frame, p.x, p.y, p.z, p.pan, p.tilt, p.roll,
        nan if enc is None or enc.zoom is None else enc.zoom,
        nan if enc is None or enc.focus is None else enc.focus,
        nan if fl is None else fl, "" if tc is None else str(tc),
    )


def _f_stop(stored: list[_Stored], st: Any) -> float:
    """The f-stop at a timeline state, blended like its pose from the samples it used (NaN: none sent)."""
    i0, i1 = st.sample_ids
    if i0 < 0:
        return math.nan

    def fs(i: int) -> float:
        lens = stored[i].sample.lens if 0 <= i < len(stored) else None
        v = lens.f_stop if lens is not None else None
        return math.nan if v is None else float(v)

    f0 = fs(i0)
    if i1 == i0 or i1 < 0:
        return f0
    f1 = fs(i1)
    u = float(st.blend) if math.isfinite(st.blend) else 0.0
    return f0 + u * (f1 - f0)


def solve_take(
    stage: Any,
    take_path: str | os.PathLike[str],
    camera: str | None = None,
    rate: FrameRate | str | None = None,
    *,
    match: str = "auto",
    drop_frame: bool | None = None,
    start_timecode: Timecode | str | None = None,
) -> CameraTrack:
    """The take ``take_path`` solved into ``camera``'s path at every frame (module docstring).

    :param stage: a loaded :class:`~stagectl.stage.model.Stage` or a stage file path.
    :param camera: a stage camera's name; default: the only camera, or the one whose tracking source the take
        recorded.
    :param rate: the frame rate (exact; anything ``FrameRate.parse`` reads); default the stage's.
    :param match: ``"auto"``, ``"timecode"``, ``"nearest"`` or ``"interpolate"``.
    :param drop_frame: label drop-frame (29.97 / 59.94 only); default: the source timecode's flag, else False.
    :param start_timecode: label of the first frame for a source without timecode (a :class:`Timecode` or
        ``"HH:MM:SS:FF"``); default the take's creation time of day.
    Raises :class:`PostError` for a file that is not a take, a camera the stage lacks, a take without samples
    of that camera.
    """
    from stagectl.runtime import CameraRig
    from stagectl.tracking.recording import TakeFormatError, read_take
    from stagectl.tracking.timeline import Timeline

    if match not in MATCH_MODES:
        raise PostError(f"match: expected one of {', '.join(MATCH_MODES)}, got {match!r}")
    stage = _load_stage(stage)
    try:
        rate = stage.frame_rate if rate is None else (rate if isinstance(rate, FrameRate) else FrameRate.parse(rate))
    except ValueError as exc:
        raise PostError(f"rate: {exc}") from None
    path = Path(take_path)
    name = path.name[: -len(".stgtake")] if path.name.endswith(".stgtake") else path.stem
    try:
        reader = read_take(path)
    except TakeFormatError as exc:
        raise PostError(f"{path}: {exc}") from None
    except OSError as exc:
        raise PostError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with reader:
        header = reader.header
        records = [(r.arrival_ns, r.source_id, r.protocol, r.data) for r in reader]
        rendered = list(reader.frames)
        preroll = [(r.arrival_ns, r.source_id, r.protocol, r.data) for r in reader.preroll]
        take_sources = dict(reader.sources)
        notes: list[str] = []
        if reader.damaged:
            notes.append(f"damaged take: {reader.skipped_bytes} bytes skipped in {len(reader.gaps)} gap(s)")
        if reader.torn:
            notes.append(f"torn tail: {reader.ignored_bytes} bytes after the last complete record ignored")
    for _, sid, proto, _ in records:  # sources never declared by name still have a protocol per record
        if sid not in take_sources:
            take_sources[sid] = (f"source{sid}", proto)
    meta = header.meta if header is not None else {}
    cam = _choose_camera(stage, camera, take_sources)
    op_cam = _operator_camera(meta, cam.name)
    src_name = op_cam.get("tracking") if op_cam.get("tracking") in {t.name for t in stage.tracking} else cam.tracking
    src = stage.tracking_source(src_name)  # the operator's choice when the take says it (camera.set tracking)
    mine = [f for f in rendered if f.camera == cam.name]
    rec_rate = _meta_rate(meta)
    if match in ("recorded", "rendered"):
        if not mine:
            raise PostError(f"{path}: match {match}: the take holds no rendered camera {cam.name!r} (only takes "
                            "recorded inside stagectl run with record.start do)")
        if rec_rate != rate:
            raise PostError(f"{path}: match {match}: the take was rendered at "
                            f"{rec_rate.label if rec_rate else '?'} fps, not {rate.label}")
    use_recorded = match == "recorded" or (match == "auto" and bool(mine) and rec_rate == rate)
    if match == "auto" and mine and rec_rate != rate:
        notes.append(f"the rendered cameras are at {rec_rate.label if rec_rate else '?'} fps, the frames at "
                     f"{rate.label}: solved from the datagrams")
    sid = _choose_source(cam, src, take_sources, str(path))
    decoder = _Decoder(src, cam)
    decoded: list[tuple[int, Any]] = []
    # the re-solve replays the loop from the datagrams received before the take too (its first frames' samples)
    for arrival, rsid, _, data in (preroll + records if match == "rendered" else records):
        if rsid == sid:
            decoded.extend((arrival, s) for s in decoder.decode(data) if s.pose is not None)
    if decoder.bad:
        notes.append(f"{decoder.bad} datagrams did not decode (first: {decoder.first_error})")
    if decoder.other:
        notes.append(f"{decoder.other} samples of other cameras / source numbers ignored")
    if not decoded and not use_recorded:
        raise PostError(f"{path}: no {decoder.protocol} samples with a pose for camera {cam.name!r} "
                        f"(source {take_sources[sid][0]!r})")
    if use_recorded or match == "rendered":
        return _from_rendered(stage, cam, src, op_cam, rate, meta, header, path, name, mine, decoded,
                              take_sources[sid], notes, resolve=not use_recorded)

    timeline = Timeline(rate, capacity=max(2, len(decoded) + 1), delay_frames=src.delay_frames, name=cam.name)
    stored: list[_Stored] = []
    for arrival, s in decoded:
        if timeline.push(arrival, s):
            stored.append(_Stored(arrival, s))
    timecodes = [_sample_timecode(st.sample) for st in stored]
    at_rate = [tc for tc in timecodes if tc is not None and tc.rate == rate]
    mode = match
    if match == "auto":
        if len(at_rate) * 2 >= len(stored):
            mode = "timecode"
        else:
            gaps = np.diff([s.arrival_ns for s in stored])
            locked = len(gaps) > 0 and abs(float(np.median(gaps)) - rate.period_ns) < 0.25 * rate.period_ns
            mode = "nearest" if locked else "interpolate"
            if any(tc is not None for tc in timecodes):
                notes.append(f"the source timecode is not at {rate.label} fps: frames matched by arrival time")
    elif match == "timecode" and not at_rate:
        raise PostError(f"{path}: match timecode: no sample carries timecode at {rate.label} fps")
    start_tc = None
    if start_timecode is not None and mode != "timecode":
        try:
            start_tc = (start_timecode if isinstance(start_timecode, Timecode)
                        else Timecode.parse(start_timecode, rate))
        except ValueError as exc:
            raise PostError(f"start timecode: {exc}") from None
        if start_tc.rate != rate:
            raise PostError(f"start timecode {start_tc} is at {start_tc.rate.label} fps, the frames at {rate.label}")
    if drop_frame is None:
        if mode == "timecode":
            drop_frame = bool(at_rate and at_rate[0].drop_frame)
        else:
            drop_frame = start_tc.drop_frame if start_tc is not None else False
    if start_tc is not None and start_tc.drop_frame != drop_frame:
        raise PostError(f"start timecode {start_tc} is {'drop' if start_tc.drop_frame else 'non-drop'}-frame; the "
                        f"labels are {'drop' if drop_frame else 'non-drop'}-frame")
    if drop_frame and not rate.is_drop_frame_capable:
        raise PostError(f"drop-frame timecode exists only at 29.97 and 59.94 fps, not at {rate.label}")

    answer = _Answer()
    rig = CameraRig.for_camera(stage, cam, source=src, timeline=answer)  # run's maths, the lens file's table
    lens_table = rig.lens_table

    # (label frame count, state, query instant) per frame
    plan: list[tuple[int, Any, int]] = []
    if mode == "timecode":
        counts = [tc.to_frame() for tc in at_rate]
        first, last = counts[0], counts[-1]
        if last < first:
            raise PostError(f"{path}: the source timecode runs backwards ({at_rate[0]} .. {at_rate[-1]})")
        for n in range(first, last + 1):
            st = timeline.pose_at_timecode(n, rate)
            plan.append((n, st, int(st.eval_ns)))
    else:
        arrivals = [s.arrival_ns for s in stored]
        a0 = arrivals[0]
        period = rate.period_ns_exact
        t0 = a0
        if mode == "nearest":
            phases = []
            for a in arrivals:
                off = Fraction(a - a0)
                phases.append(float(off - round(off / period) * period))
            t0 = a0 + round(statistics.median(phases))
        count = int((Fraction(arrivals[-1] - t0) + period / 2) // period) + 1
        anchor = _anchor(meta)
        if start_tc is None and anchor is not None:  # the first frame's time of day, exactly
            origin = rate.frame_at_ns((t0 + anchor) % _DAY_NS + rate.period_ns // 2)
        elif start_tc is None:
            created = header.created_ns if header is not None else 0
            origin = rate.frame_at_ns(created % _DAY_NS) if created else 0
            if not created:
                notes.append("the take header has no creation time: timecode starts at 00:00:00:00")
        else:
            origin = start_tc.to_frame()
        for k in range(max(0, count)):
            q = rate.frame_edge_ns(k, t0) + timeline.delay_ns
            plan.append((origin + k, timeline.pose_at(q, mode="nearest" if mode == "nearest" else "interpolate"), q))

    frames: list[CameraFrame] = []
    missing = 0
    for n, st, q in plan:
        answer.state = st
        cs = rig.state_at(q)
        if cs is None:
            missing += 1
            continue
        lv = cs.lens
        zoom = lv.zoom if lv.zoom is not None else 0.0
        focus = lv.focus if lv.focus is not None else 0.0
        if lens_table is not None:
            ev = lens_table.evaluate(zoom, focus)
            distortion, focus_m, lens_source = ev.distortion, ev.focus_distance_m, "lens file"
        else:
            distortion = BrownConrady()
            focus_m = st.focus_distance_m if math.isfinite(st.focus_distance_m) else None
            lens_source = lv.source
        lens = LensEvaluation(lv.focal_mm, tuple(lv.principal_point_mm), distortion, lv.pupil_offset_m, focus_m,
                              st.zoom if math.isfinite(st.zoom) else None,
                              st.focus if math.isfinite(st.focus) else None)
        frames.append(CameraFrame(len(frames), Timecode.from_frame(n, rate, drop_frame),
                                  np.array(cs.T_stage_camera, dtype=np.float64), lens, _f_stop(stored, st),
                                  st.status, lens_source))
    if missing:
        notes.append(f"{missing} frame(s) had no pose (a gap in the source timecode wider than 2 frames) and "
                     "are left out")
    if not frames:
        raise PostError(f"{path}: no frame of camera {cam.name!r} could be solved")
    return _track(stage, cam, rate, drop_frame, meta, header, path, name, frames,
                  [(s.arrival_ns, s.sample) for s in stored], take_sources[sid], mode, notes)


def _track(stage: Any, cam: Any, rate: FrameRate, drop_frame: bool, meta: Mapping[str, Any], header: Any,
           path: Path, name: str, frames: list[CameraFrame], samples: list[tuple[int, Any]],
           source: tuple[str, str], mode: str, notes: list[str]) -> CameraTrack:
    created_utc = ""
    if header is not None and header.created_ns:
        import datetime as _dt

        created_utc = _dt.datetime.fromtimestamp(header.created_ns / 1e9, _dt.UTC).isoformat()
    return CameraTrack(
        name=name, stage=stage.name, camera=cam.name, rate=rate, drop_frame=drop_frame,
        sensor_mm=(float(cam.sensor_mm[0]), float(cam.sensor_mm[1])),
        slate=_slate(meta, cam.name, name), frames=tuple(frames),
        samples=tuple(_raw(a, s) for a, s in samples), source=source, match=mode,
        lens_name=cam.lens_file.name if cam.lens_file else "", take_path=path, created_utc=created_utc,
        content=str(meta.get("content") or stage.render.outer.content), notes=tuple(notes),
    )


def _operator_camera(meta: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The operator's settings of camera ``name`` in the take header (``meta["operator"]["cameras"]``), or {}."""
    op = meta.get("operator")
    cams = op.get("cameras") if isinstance(op, Mapping) else None
    cam = cams.get(name) if isinstance(cams, Mapping) else None
    return dict(cam) if isinstance(cam, Mapping) else {}


def _meta_rate(meta: Mapping[str, Any]) -> FrameRate | None:
    try:
        return FrameRate.parse(meta["rate"]) if meta.get("rate") else None
    except (ValueError, TypeError):
        return None


def _anchor(meta: Mapping[str, Any]) -> int | None:
    """``system - monotonic`` (ns) from the header's clock anchor, or None."""
    a = meta.get("clock_anchor")
    try:
        return int(a["system_ns"]) - int(a["monotonic_ns"])
    except (TypeError, KeyError, ValueError):
        return None


def _lens_at(lens_table: Any, focal: float, pp: tuple[float, float], pupil: float, zoom: float, focus: float,
             focus_m: float) -> tuple[LensEvaluation, str]:
    """The lens of a frame drawn with ``focal`` / ``pp`` / ``pupil``: distortion and focus distance from the lens
    file at the encoders, else none and the tracker's focus distance."""
    z = zoom if math.isfinite(zoom) else 0.0
    f = focus if math.isfinite(focus) else 0.0
    if lens_table is not None:
        ev = lens_table.evaluate(z, f)
        distortion, fd, source = ev.distortion, ev.focus_distance_m, "lens file"
    else:
        distortion, fd, source = BrownConrady(), (focus_m if math.isfinite(focus_m) else None), "tracker"
    return LensEvaluation(focal, (float(pp[0]), float(pp[1])), distortion, pupil, fd,
                          zoom if math.isfinite(zoom) else None, focus if math.isfinite(focus) else None), source


def _from_rendered(stage: Any, cam: Any, src: Any, op_cam: Mapping[str, Any], rate: FrameRate,
                   meta: Mapping[str, Any], header: Any, path: Path, name: str, mine: list[Any],
                   decoded: list[tuple[int, Any]], source: tuple[str, str], notes: list[str], *,
                   resolve: bool) -> CameraTrack:
    """The frames the stage rendered (``mine``, kind-3 records of ``cam``): as recorded, or (``resolve``) solved
    again at their instants from ``decoded`` with ``stagectl run``'s rig: replayed as the loop saw them when
    every frame has its latch (kind 5; :func:`_replay`), else from every sample with the operator's camera
    settings of the header."""
    from stagectl.runtime import CameraRig

    drop = bool(meta.get("drop_frame")) and rate.is_drop_frame_capable
    frames_in: list[Any] = []
    seen: set[int] = set()
    for f in mine:
        if f.label in seen:  # a frame recorded twice (never written so; a damaged take's resync): keep the first
            continue
        seen.add(f.label)
        frames_in.append(f)
    exact = resolve and all(f.latch is not None for f in frames_in)
    if exact:
        timeline, states, stored = _replay(rate, cam, frames_in, decoded)
    else:
        timeline, stored = _timeline_of_header(rate, cam, src, op_cam, decoded, path)
        states = [timeline.pose_at(f.query_ns) if stored else None for f in frames_in]
        if resolve and any(f.latch is not None for f in frames_in):
            notes.append("some rendered frames lost their latch record: solved from every sample of the take")
    rig = CameraRig.for_camera(stage, cam, source=src, timeline=_Answer())
    lens_table = rig.lens_table
    frames: list[CameraFrame] = []
    missing = 0
    for f, st in zip(frames_in, states, strict=True):
        f_stop = _f_stop(stored, st) if st is not None and st.ok else math.nan
        tc = Timecode.from_frame(f.label, rate, drop)
        if resolve:
            rig.timeline.state = st
            cs = rig.state_at(f.query_ns) if st is not None else None
            if cs is None:
                missing += 1
                continue
            lv = cs.lens
            lens, lens_source = _lens_at(lens_table, lv.focal_mm, lv.principal_point_mm, lv.pupil_offset_m,
                                         st.zoom, st.focus, st.focus_distance_m)
            frames.append(CameraFrame(len(frames), tc, np.array(cs.T_stage_camera, dtype=np.float64), lens, f_stop,
                                      st.status, lens_source))
        else:
            lens, lens_source = _lens_at(lens_table, f.focal_mm, f.principal_point_mm, f.pupil_offset_m, f.zoom,
                                         f.focus, f.focus_distance_m)
            frames.append(CameraFrame(len(frames), tc, np.array(f.T_stage_camera, dtype=np.float64), lens, f_stop,
                                      "recorded", lens_source))
    if missing:
        notes.append(f"{missing} rendered frame(s) had no pose when solved again from the datagrams (before the "
                     "take's first sample) and are left out")
    if not frames:
        raise PostError(f"{path}: no frame of camera {cam.name!r} could be solved")
    return _track(stage, cam, rate, drop, meta, header, path, name, frames, [(s.arrival_ns, s.sample) for s in stored],
                  source, "rendered" if resolve else "recorded", notes)


def _header_settings(op_cam: Mapping[str, Any], src: Any, where: str) -> CameraSettings:
    """The camera settings a solve takes from the take header: the operator's tracking delay (default: the
    source's) and smoothing (default: off), checked against their declarations
    (:mod:`stagectl.core.camera_settings`) as the state file checks them (unknown smoothing keys ignored).
    Raises :class:`PostError` ``<where>.<setting>: expected ..., got ...``."""
    try:
        delay = value_of(CameraSettings, "delay_frames").check(op_cam.get("delay_frames", src.delay_frames),
                                                               op=True)
    except FieldError as exc:
        raise PostError(f"{where}.delay_frames: {exc.message}") from None
    try:
        smoothing = smoothing_of(op_cam.get("smoothing"), strict=False)
    except FieldError as exc:
        raise PostError(f"{where}.smoothing: {exc.message}") from None
    return CameraSettings(src.name, delay_frames=delay, smoothing=smoothing)


def _timeline_of_header(rate: FrameRate, cam: Any, src: Any, op_cam: Mapping[str, Any],
                        decoded: list[tuple[int, Any]], path: Path) -> tuple[Any, list[_Stored]]:
    """A timeline as ``stagectl run`` makes it (dejittered, the camera's motion limits) with the operator's
    delay and smoothing of the take header, holding every sample of ``decoded``."""
    from stagectl.tracking.timeline import Timeline

    settings = _header_settings(op_cam, src, f"{path}: take header: operator.cameras.{cam.name}")
    timeline = Timeline(rate, capacity=max(2, len(decoded) + 1), delay_frames=settings.delay_frames,
                        name=cam.name, clock="dejittered", motion_limits=cam.motion_limits)
    if settings.smoothing is not None:
        timeline.set_smoothing(settings.smoothing_filter())
    stored: list[_Stored] = []
    for arrival, s in decoded:
        if timeline.push(arrival, s):
            stored.append(_Stored(arrival, s))
    return timeline, stored


def _replay(rate: FrameRate, cam: Any, frames: list[Any], decoded: list[tuple[int, Any]]
            ) -> tuple[Any, list[Any], list[_Stored]]:
    """Each rendered frame evaluated again as the loop evaluated it (docs/takes.md, kind 5): the samples pushed
    in arrival order (the pre-roll first) only up to the newest one its timeline held when the frame was latched,
    then the frame's delay, prediction bound, query mode and smoothing, and the query at its instant. Returns
    the timeline, the state per frame and the stored samples.

    Which samples the loop's timeline held is known from the newest one's time on the timeline's clock (the
    latch's ``newest_ns``); a first pass over the samples finds that time for every prefix of them (pushing
    decides nothing from the queries or the smoothing, so a second timeline decides the same). Samples the
    timeline judged and rejected in between change no answer."""
    from stagectl.tracking.timeline import Timeline

    first = frames[0].latch
    capacity = max(2, len(decoded) + 1)

    def timeline_of() -> Any:
        return Timeline(rate, capacity=capacity, name=cam.name, clock=first.clock, motion_limits=cam.motion_limits)

    scratch = timeline_of()
    newest_after: list[int | None] = []
    for arrival, s in decoded:
        scratch.push(arrival, s)
        last = scratch.latest()
        newest_after.append(int(last.query_ns) if last.ok else None)
    timeline = timeline_of()
    timeline.set_smoothing(first.smoothing)
    smoothing = first.smoothing
    stored: list[_Stored] = []
    states: list[Any] = []
    i, n = 0, len(decoded)
    for f in frames:
        latch = f.latch
        newest = latch.newest_ns
        while newest is not None and i < n and (newest_after[i] is None or newest_after[i] <= newest):
            arrival, s = decoded[i]
            if timeline.push(arrival, s):
                stored.append(_Stored(arrival, s))
            i += 1
        # the settings the console changed at this frame's boundary: samples from now on are smoothed anew
        if latch.smoothing != smoothing:
            timeline.set_smoothing(latch.smoothing)
            smoothing = latch.smoothing
        timeline.set_delay_ns(latch.delay_ns)
        timeline.max_prediction_ns = latch.max_prediction_ns
        states.append(timeline.pose_at(f.query_ns, mode=latch.mode) if newest is not None else None)
    return timeline, states, stored
