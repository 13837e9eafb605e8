"""Cluster wire format: frame states, operator states, the node <-> primary sync messages and the primary's
address (see :mod:`stagectl.sync.cluster` for the protocol). Pure: encoding and decoding touch no socket."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from stagectl.core.camera import CameraState, LensValues, OperatorFlags
from stagectl.core.errors import StageError
from stagectl.core.features import MAX_WALLS, FeatureState
from stagectl.core.fields import FeatureError, FieldError, from_dict, to_dict, values_of
from stagectl.core.lut import Lut3D
from stagectl.core.timebase import Clock, FrameRate, Timecode

#: First bytes of every encoded frame state (also the SUB topic).
WIRE_MAGIC = b"SCFS"
#: First bytes of every encoded operator state (also its SUB topic).
FEATURES_MAGIC = b"SCOP"
#: Version of the cluster wire format (frame states, operator states, snapshots) this module writes and reads.
#: 4: the operator state carries the outputs whose colour calibration is switched off (``uncalibrated``), so a
#: node of an older stagectl is told the version instead of a missing-key error. 5: the operator state carries
#: what the wall shows besides the features (:class:`ShowState`: the scene content, the primary's stage file
#: digest and reload count, the colour patch playbacks). 6: the operator state carries the walls and cameras
#: whose OCIO look is switched off (``looks_off``).
WIRE_VERSION = 6
#: Default ports of the primary: frame states (XPUB) and sync (ROUTER: snapshots, barrier, heartbeats).
DEFAULT_STATE_PORT = 41310
DEFAULT_SYNC_PORT = 41311
#: Longest node or camera name on the wire (UTF-8 bytes).
MAX_NAME_BYTES = 64
#: Most cameras one encoded state carries.
MAX_WIRE_CAMERAS = 16
#: Largest JSON part of an encoded operator state (bytes).
MAX_FEATURES_JSON = 1 << 20
#: Largest encoded operator state (bytes; the 3D LUT tables are most of it: a 65-point LUT is 3.3 MB).
MAX_FEATURES_BYTES = 32 << 20
#: Most distinct 3D LUTs one operator state carries (one per wall and one for the inner frusta).
MAX_WIRE_LUTS = MAX_WALLS + 1
#: Longest scene content path an operator state carries (UTF-8 bytes).
MAX_CONTENT_BYTES = 4096
#: Most colour patch playbacks an operator state carries.
MAX_WIRE_PATCHES = 64
#: Topic prefix a node subscribes to so that the primary's XPUB learns that this node's SUB is connected.
_NODE_TOPIC = WIRE_MAGIC + b"\x00node:"


class ClusterError(StageError):
    """A cluster problem a user can fix (an address that cannot be bound, a bad ``--primary``, a bad name)."""


class FrameStateError(ClusterError):
    """Bytes that are not a valid frame state or operator state of the version this stagectl reads (or a state
    that cannot be encoded). Nodes count these and drop the message; they never stop a node."""



# ======================================================================================= wire codec

# magic, version, flags, clock, n_cameras, session, seq, features_seq, frame, edge_ns, epoch_ns, rate num,
# rate den, hh mm ss ff (version 3 added features_seq: the operator state the frame was planned with)
_HEADER = struct.Struct("<4sBBBBIQQqqqIIBBBB")
# T_stage_camera (16, row-major), focal mm, principal point x y mm, pupil m, zoom, focus, sensor w h mm,
# overscan left right bottom top percent (all NaN: the stage's configured overscan), soft edge (NaN: the stage's);
# version 2 added the last five so that adaptive overscan and the operator's per-camera settings reach the nodes
_CAMERA = struct.Struct("<29d")
_CAMERA_DOUBLES = 29

_FLAG_BLACKOUT = 0x01
_FLAG_INNER = 0x02
_FLAG_FREEZE = 0x04
_FLAG_DROP_FRAME = 0x08
_FLAGS_KNOWN = _FLAG_BLACKOUT | _FLAG_INNER | _FLAG_FREEZE | _FLAG_DROP_FRAME

_CLOCK_CODES = {Clock.MONOTONIC: 0, Clock.SYSTEM: 1, Clock.PTP: 2}
_CLOCKS = {v: k for k, v in _CLOCK_CODES.items()}

#: The operator flags of a frame nobody switched anything in.
NO_FLAGS = OperatorFlags()


@dataclass(frozen=True, eq=False)
class FrameState:
    """Everything a render node needs to render frame ``frame`` as the primary does.

    :param frame: frame number ``k`` (the primary's frame loop count).
    :param timecode: the frame's SMPTE label; its ``rate`` is the stage frame rate.
    :param edge_ns: start of the frame, integer ns on ``clock`` (the primary's clock).
    :param clock: the clock of ``edge_ns`` and ``epoch_ns``.
    :param epoch_ns: edge of frame 0 on ``clock`` (with a PTP-disciplined SYSTEM clock, nodes can present at
        ``edge_ns`` on their own clock).
    :param cameras: camera states in composition order (``T_stage_camera`` 4x4 float64, lens values,
        sensor mm).
    :param flags: the operator flags of the frame.
    :param seq: sequence number given by :meth:`Primary.publish` (1, 2, ...; 0 before publishing).
    :param session: random id of the publishing primary (0 before publishing); changes when it restarts.
    :param features_seq: sequence number of the operator state (:class:`FeatureUpdate`) the primary planned
        this frame with (given by :meth:`Primary.publish`); 0: none was published, the stage file's features.
    """

    frame: int
    timecode: Timecode
    edge_ns: int
    clock: Clock = Clock.MONOTONIC
    epoch_ns: int = 0
    cameras: tuple[CameraState, ...] = ()
    flags: OperatorFlags = NO_FLAGS
    seq: int = 0
    session: int = 0
    features_seq: int = 0

    @property
    def rate(self) -> FrameRate:
        return self.timecode.rate

    @classmethod
    def make(
        cls,
        frame: int,
        rate: FrameRate,
        edge_ns: int,
        *,
        clock: Clock = Clock.MONOTONIC,
        epoch_ns: int = 0,
        cameras: Sequence[CameraState] = (),
        flags: OperatorFlags = NO_FLAGS,
        drop_frame: bool = False,
        timecode_offset_frames: int = 0,
    ) -> FrameState:
        """The state of frame ``frame``, labelled ``Timecode.from_frame(frame + offset, rate, drop_frame)``.
        """
        tc = Timecode.from_frame(int(frame) + int(timecode_offset_frames), rate, drop_frame)
        return cls(int(frame), tc, int(edge_ns), clock, int(epoch_ns), tuple(cameras), flags)


def _name_bytes(name: str, what: str) -> bytes:
    if not isinstance(name, str):
        raise FrameStateError(f"{what} must be a string, got {type(name).__name__}")
    raw = name.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        raise FrameStateError(f"{what} {name!r} must be 1..{MAX_NAME_BYTES} UTF-8 bytes, got {len(raw)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise FrameStateError(f"{what} {name!r} must not contain control characters")
    return raw


def valid_peer_name(name: str) -> bool:
    """A node name the primary keeps and prints: 1..:data:`MAX_NAME_BYTES` UTF-8 bytes, every character
    printable (``str.isprintable``: no control characters, line or paragraph separators, format characters or
    unassigned code points; a plain space is allowed) and no leading or trailing space."""
    return (isinstance(name, str) and 1 <= len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
            and name.isprintable() and name == name.strip())


def _opt(value: float | None) -> float:
    return math.nan if value is None else float(value)


def encode_frame_state(state: FrameState, *, seq: int | None = None, session: int | None = None,
                       features_seq: int | None = None) -> bytes:
    """The wire bytes of ``state`` (``seq`` / ``session`` / ``features_seq`` override the state's own). Pure;
    raises :class:`FrameStateError` for a state that cannot be written (too many cameras, a name too long, a
    number out of range)."""
    seq = state.seq if seq is None else int(seq)
    session = state.session if session is None else int(session)
    features_seq = state.features_seq if features_seq is None else int(features_seq)
    tc = state.timecode
    flags = state.flags
    bits = (
        (_FLAG_BLACKOUT if flags.blackout else 0)
        | (_FLAG_INNER if flags.inner_enabled else 0)
        | (_FLAG_FREEZE if flags.freeze_inner else 0)
        | (_FLAG_DROP_FRAME if tc.drop_frame else 0)
    )
    cams = tuple(state.cameras)
    if len(cams) > MAX_WIRE_CAMERAS:
        raise FrameStateError(f"a frame state carries at most {MAX_WIRE_CAMERAS} cameras, got {len(cams)}")
    rate = tc.rate
    try:
        head = _HEADER.pack(
            WIRE_MAGIC, WIRE_VERSION, bits, _CLOCK_CODES[state.clock], len(cams), session, seq, features_seq,
            int(state.frame), int(state.edge_ns), int(state.epoch_ns), rate.num, rate.den,
            tc.hours, tc.minutes, tc.seconds, tc.frames,
        )
    except (struct.error, KeyError, TypeError) as exc:
        raise FrameStateError(f"cannot encode frame state of frame {state.frame}: {exc}") from None
    parts = [head]
    for cam in cams:
        raw = _name_bytes(cam.name, "camera name")
        try:
            T = np.asarray(cam.T_stage_camera, dtype=np.float64)
            if T.shape != (4, 4):
                raise ValueError(f"T_stage_camera must be 4x4, got shape {T.shape}")
            lens = cam.lens
            px, py = lens.principal_point_mm
            sw, sh = cam.sensor_mm
            ov = (math.nan,) * 4 if cam.overscan_pct is None else tuple(float(v) for v in cam.overscan_pct)
            if len(ov) != 4:
                raise ValueError(f"overscan_pct must have 4 values (left, right, bottom, top), got {len(ov)}")
            body = _CAMERA.pack(
                *T.ravel().tolist(), float(lens.focal_mm), float(px), float(py), float(lens.pupil_offset_m),
                _opt(lens.zoom), _opt(lens.focus), float(sw), float(sh), *ov, _opt(cam.soft_edge),
            )
        except (struct.error, TypeError, ValueError, AttributeError) as exc:
            raise FrameStateError(f"cannot encode camera {cam.name!r}: {exc}") from None
        parts.append(bytes((len(raw),)) + raw)
        parts.append(body)
    return b"".join(parts)


def decode_frame_state(data: bytes | bytearray | memoryview) -> FrameState:
    """The :class:`FrameState` in ``data``. Pure; anything malformed (wrong magic or version, truncated or
    trailing bytes, unknown flag bits or clock, an impossible rate or timecode label, a bad name) raises
    :class:`FrameStateError` and nothing else."""
    try:
        return _decode(memoryview(data).cast("B"))
    except FrameStateError:
        raise
    except (struct.error, ValueError, TypeError, UnicodeDecodeError, IndexError, OverflowError) as exc:
        raise FrameStateError(f"malformed frame state: {exc}") from None


def _decode(buf: memoryview) -> FrameState:
    n = len(buf)
    if n < _HEADER.size:
        raise FrameStateError(f"frame state truncated: {n} bytes, the header alone is {_HEADER.size}")
    (magic, version, bits, clock, ncam, session, seq, features_seq, frame, edge, epoch, num, den,
     hh, mm, ss, ff) = _HEADER.unpack_from(buf, 0)
    if magic != WIRE_MAGIC:
        raise FrameStateError(f"not a frame state (magic {bytes(magic)!r}, expected {WIRE_MAGIC!r})")
    if version != WIRE_VERSION:
        raise FrameStateError(f"frame state version {version}; this stagectl reads version {WIRE_VERSION}")
    if bits & ~_FLAGS_KNOWN:
        raise FrameStateError(f"frame state has unknown flag bits 0x{bits & ~_FLAGS_KNOWN:02x}")
    if clock not in _CLOCKS:
        raise FrameStateError(f"frame state names unknown clock code {clock}")
    if ncam > MAX_WIRE_CAMERAS:
        raise FrameStateError(f"frame state claims {ncam} cameras (at most {MAX_WIRE_CAMERAS})")
    if num == 0 or den == 0:
        raise FrameStateError(f"frame state has an impossible frame rate {num}/{den}")
    rate = FrameRate(num, den)
    tc = Timecode(hh, mm, ss, ff, rate, bool(bits & _FLAG_DROP_FRAME))
    off = _HEADER.size
    cams = []
    for i in range(ncam):
        if off >= n:
            raise FrameStateError(f"frame state truncated in camera {i}")
        ln = buf[off]
        off += 1
        if not 1 <= ln <= MAX_NAME_BYTES:
            raise FrameStateError(f"camera {i}: name length {ln} out of 1..{MAX_NAME_BYTES}")
        if off + ln + _CAMERA.size > n:
            raise FrameStateError(f"frame state truncated in camera {i}")
        name = bytes(buf[off:off + ln]).decode("utf-8")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise FrameStateError(f"camera {i}: name {name!r} has control characters")
        off += ln
        v = np.frombuffer(buf, dtype="<f8", count=_CAMERA_DOUBLES, offset=off).astype(np.float64)
        off += _CAMERA.size
        T = v[:16].reshape(4, 4).copy()
        focal, px, py, pupil, zoom, focus, sw, sh = v[16:24].tolist()
        lens = LensValues(
            focal, (px, py), pupil, "cluster",
            None if math.isnan(zoom) else zoom, None if math.isnan(focus) else focus,
        )
        ov = v[24:28]
        if np.isnan(ov).any() and not np.isnan(ov).all():
            raise FrameStateError(f"camera {name!r}: overscan must be four numbers or none, got {ov.tolist()}")
        soft = float(v[28])
        cams.append(CameraState(name, T, lens, (sw, sh), None if np.isnan(ov[0]) else tuple(ov.tolist()),
                                None if math.isnan(soft) else soft))
    if off != n:
        raise FrameStateError(f"frame state has {n - off} trailing bytes")
    names = [c.name for c in cams]
    if len(set(names)) != len(names):
        raise FrameStateError(f"frame state repeats a camera name: {names}")
    flags = OperatorFlags(
        blackout=bool(bits & _FLAG_BLACKOUT), inner_enabled=bool(bits & _FLAG_INNER),
        freeze_inner=bool(bits & _FLAG_FREEZE),
    )
    return FrameState(frame, tc, edge, _CLOCKS[clock], epoch, tuple(cams), flags, seq, session, features_seq)


# ================================================================================ operator-state codec

# magic, version, session, features_seq, length of the JSON part; then the JSON (UTF-8), then every 3D LUT's
# table (N x N x N x 3 float32 little-endian, indexed [r, g, b]) in the order of the JSON's "luts"
_FEAT_HEADER = struct.Struct("<4sBIQI")

_LUT_KEYS = ("size", "domain_min", "domain_max", "title", "source")
_FEATURE_KEYS = (*(name for name, _, _ in values_of(FeatureState)), "luts", "show")


#: color.patches' sequence arguments on the wire: name -> (lowest, highest), as the console command takes them
PATCH_COUNTS = {"frames_per_patch": (1, 1000), "slate_frames": (1, 1000), "ramp_steps": (4, 1000)}
_SHOW_KEYS = ("content", "stage_sha256", "reloads", "patches")
_PATCH_KEYS = ("output", "first_frame", *PATCH_COUNTS, "calibration")


@dataclass(frozen=True)
class PatchStart:
    """A colour patch playback started on the primary (``color.patches start``): output ``output`` shows wall
    frame ``k`` of the sequence built with these arguments (:func:`stagectl.render.patch_player.patch_program`)
    on stage frame ``first_frame + k``."""

    output: str
    first_frame: int
    frames_per_patch: int = 10
    slate_frames: int = 8
    ramp_steps: int = 30
    calibration: bool = False

    @property
    def options(self) -> dict:
        """The sequence's arguments, as :func:`~stagectl.render.patch_player.patch_program` takes them."""
        return {"frames_per_patch": self.frames_per_patch, "slate_frames": self.slate_frames,
                "ramp_steps": self.ramp_steps, "calibration": self.calibration}


@dataclass(frozen=True)
class ShowState:
    """What the wall shows besides the features, as the primary runs it: the scene ``content`` the operator
    selected (``""``: the stage file's own ``render.outer.content``; ``"procedural"``; else the scene file's
    path relative to the stage file's folder, ``/``-separated), ``stage_sha256`` the SHA-256 (hex) of the
    primary's stage file (``""``: not known), ``reloads`` the ``stage.reload`` count of the primary's run, and
    the colour patch ``patches`` playing (one :class:`PatchStart` per output)."""

    content: str = ""
    stage_sha256: str = ""
    reloads: int = 0
    patches: tuple[PatchStart, ...] = ()

    def to_json(self) -> dict:
        return {"content": self.content, "stage_sha256": self.stage_sha256, "reloads": self.reloads,
                "patches": [{"output": p.output, "first_frame": p.first_frame, **p.options} for p in self.patches]}


class FeatureUpdate(NamedTuple):
    """One decoded operator state: the render-relevant part of what the operator set on the primary (light
    cards, chroma key, colour corrections with their 3D LUTs, per-output patterns and blackouts, the
    per-camera freeze, the outputs shown uncalibrated), as the primary's frame plan uses it, and what the wall
    shows besides (``show``: the scene content, the primary's stage file, the patch playbacks). ``seq``: its
    number (1, 2, ... per primary session; the :attr:`FrameState.features_seq` of the frames planned with it);
    ``session``: the primary's session id."""

    seq: int
    session: int
    features: FeatureState
    show: ShowState = ShowState()


def encode_features(features: FeatureState, *, seq: int, session: int, show: ShowState | None = None) -> bytes:
    """The wire bytes of an operator state (``features`` and ``show``, None: ``ShowState()``, as number ``seq``
    of primary session ``session``).

    Pure and canonical (decoding and encoding again gives the same bytes). The 3D LUTs travel as their tables
    (a node needs no LUT file; one table per distinct LUT). Raises :class:`FrameStateError` for a state that
    cannot be written (more than :data:`MAX_WIRE_LUTS` LUTs, more than :data:`MAX_FEATURES_BYTES` in all, a
    number out of range).
    """
    luts: list[Lut3D] = []

    def lut_index(lut: Lut3D) -> int:
        for i, have in enumerate(luts):
            if have == lut:
                return i
        luts.append(lut)
        return len(luts) - 1

    try:
        doc = to_dict(features, lut=lut_index)  # the features in model units, LUTs by index
        doc["luts"] = [{"size": t.size, "domain_min": list(t.domain_min), "domain_max": list(t.domain_max),
                        "title": t.title, "source": t.source} for t in luts]
        doc["show"] = _check_show(show if show is not None else ShowState()).to_json()
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, AttributeError) as exc:
        raise FrameStateError(f"cannot encode operator state {seq}: {exc}") from None
    if len(luts) > MAX_WIRE_LUTS:
        raise FrameStateError(f"an operator state carries at most {MAX_WIRE_LUTS} 3D LUTs, got {len(luts)}")
    if len(text) > MAX_FEATURES_JSON:
        raise FrameStateError(f"operator state {seq} is too large: {len(text)} bytes of JSON "
                              f"(at most {MAX_FEATURES_JSON})")
    total = _FEAT_HEADER.size + len(text) + sum(t.table.nbytes for t in luts)
    if total > MAX_FEATURES_BYTES:
        raise FrameStateError(f"operator state {seq} is too large: {total} bytes with its 3D LUTs "
                              f"(at most {MAX_FEATURES_BYTES})")
    try:
        head = _FEAT_HEADER.pack(FEATURES_MAGIC, WIRE_VERSION, int(session), int(seq), len(text))
    except struct.error as exc:
        raise FrameStateError(f"cannot encode operator state {seq}: {exc}") from None
    return b"".join([head, text, *(t.table.astype("<f4", copy=False).tobytes() for t in luts)])


def decode_features(data: bytes | bytearray | memoryview) -> FeatureUpdate:
    """The :class:`FeatureUpdate` in ``data``. Pure; anything malformed (wrong magic or version, truncated or
    trailing bytes, JSON that is not exactly the encoder's layout, a value a feature refuses, a LUT index out
    of range) raises :class:`FrameStateError` and nothing else. The names of walls, outputs and cameras are
    not checked here: that needs the stage (:meth:`FeatureState.check`, done by the node)."""
    try:
        return _decode_features(memoryview(data).cast("B"))
    except FrameStateError:
        raise
    except FeatureError as exc:
        raise FrameStateError(f"malformed operator state: {exc}") from None
    except (struct.error, ValueError, TypeError, UnicodeDecodeError, IndexError, OverflowError,
            RecursionError) as exc:
        raise FrameStateError(f"malformed operator state: {exc}") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise FrameStateError("operator state JSON repeats a key")
    return d


def _no_constant(name: str) -> Any:
    raise FrameStateError(f"operator state JSON holds {name}; numbers must be finite")


def _obj(v: Any, keys: tuple[str, ...], what: str) -> dict:
    if not isinstance(v, dict) or set(v) != set(keys):
        got = sorted(v) if isinstance(v, dict) else type(v).__name__
        raise FrameStateError(f"operator state: {what}: expected an object with keys {list(keys)}, got {got}")
    return v


def _list(v: Any, what: str) -> list:
    if not isinstance(v, list):
        raise FrameStateError(f"operator state: {what}: expected a list, got {type(v).__name__}")
    return v


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FrameStateError(f"operator state: {what}: expected a number, got {v!r}")
    return float(v)


def _nums(v: Any, n: int, what: str) -> tuple[float, ...]:
    v = _list(v, what)
    if len(v) != n:
        raise FrameStateError(f"operator state: {what}: expected {n} numbers, got {len(v)}")
    return tuple(_num(x, what) for x in v)


def _text(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise FrameStateError(f"operator state: {what}: expected a string, got {type(v).__name__}")
    return v


def _whole(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FrameStateError(f"operator state: {what}: expected a whole number, got {v!r}")
    return v


def _decode_features(buf: memoryview) -> FeatureUpdate:
    n = len(buf)
    if n < _FEAT_HEADER.size:
        raise FrameStateError(f"operator state truncated: {n} bytes, the header alone is {_FEAT_HEADER.size}")
    magic, version, session, seq, jlen = _FEAT_HEADER.unpack_from(buf, 0)
    if magic != FEATURES_MAGIC:
        raise FrameStateError(f"not an operator state (magic {bytes(magic)!r}, expected {FEATURES_MAGIC!r})")
    if version != WIRE_VERSION:
        raise FrameStateError(f"operator state version {version}; this stagectl reads version {WIRE_VERSION}")
    if jlen > MAX_FEATURES_JSON or _FEAT_HEADER.size + jlen > n:
        raise FrameStateError(f"operator state truncated: its JSON part claims {jlen} bytes")
    off = _FEAT_HEADER.size + jlen
    doc = _obj(json.loads(bytes(buf[_FEAT_HEADER.size:off]).decode("utf-8"), object_pairs_hook=_json_object,
                          parse_constant=_no_constant), _FEATURE_KEYS, "state")
    # 3D LUTs first: the colour corrections refer to them by index
    luts: list[Lut3D] = []
    lut_docs = _list(doc["luts"], "luts")
    if len(lut_docs) > MAX_WIRE_LUTS:
        raise FrameStateError(f"operator state carries {len(lut_docs)} 3D LUTs (at most {MAX_WIRE_LUTS})")
    for i, ld in enumerate(lut_docs):
        ld = _obj(ld, _LUT_KEYS, f"luts[{i}]")
        size = _whole(ld["size"], f"luts[{i}].size")
        if not 2 <= size <= 256:
            raise FrameStateError(f"operator state: luts[{i}].size: expected 2..256, got {size}")
        count = size ** 3 * 3
        if off + 4 * count > n:
            raise FrameStateError(f"operator state truncated in the table of 3D LUT {i}")
        table = np.frombuffer(buf, dtype="<f4", count=count, offset=off).reshape(size, size, size, 3).copy()
        off += 4 * count
        luts.append(Lut3D(table, title=_text(ld["title"], f"luts[{i}].title"),
                          domain_min=_nums(ld["domain_min"], 3, f"luts[{i}].domain_min"),
                          domain_max=_nums(ld["domain_max"], 3, f"luts[{i}].domain_max"),
                          source=_text(ld["source"], f"luts[{i}].source")))
    if off != n:
        raise FrameStateError(f"operator state has {n - off} trailing bytes")

    def lut_at(v: Any, what: str) -> Lut3D:
        i = _whole(v, what)
        if not 0 <= i < len(luts):
            raise FrameStateError(f"operator state: {what}: no 3D LUT {i} (it carries {len(luts)})")
        return luts[i]

    del doc["luts"]
    show = _show_of(doc.pop("show"))
    try:
        features = from_dict(FeatureState, doc, lut=lut_at)  # exactly the declared keys, every value checked
    except FieldError as exc:
        raise FrameStateError(f"operator state: {exc}") from None
    return FeatureUpdate(seq, session, features, show)


def _show_of(v: Any) -> ShowState:
    """The :class:`ShowState` of an operator state's ``show`` object (exactly the encoder's keys)."""
    d = _obj(v, _SHOW_KEYS, "show")
    patches = []
    for i, pd in enumerate(_list(d["patches"], "show.patches")):
        pd = _obj(pd, _PATCH_KEYS, f"show.patches[{i}]")
        calibration = pd["calibration"]
        if not isinstance(calibration, bool):
            raise FrameStateError(f"operator state: show.patches[{i}].calibration: expected true or false, "
                                  f"got {calibration!r}")
        patches.append(PatchStart(_text(pd["output"], f"show.patches[{i}].output"),
                                  _whole(pd["first_frame"], f"show.patches[{i}].first_frame"),
                                  *(_whole(pd[k], f"show.patches[{i}].{k}") for k in PATCH_COUNTS), calibration))
    return _check_show(ShowState(_text(d["content"], "show.content"),
                                 _text(d["stage_sha256"], "show.stage_sha256"),
                                 _whole(d["reloads"], "show.reloads"), tuple(patches)))


def _check_show(show: ShowState) -> ShowState:
    """``show`` when every value is one a node can use; :class:`FrameStateError` naming the first that is not."""
    c = show.content
    if (not isinstance(c, str) or len(c.encode("utf-8", "surrogatepass")) > MAX_CONTENT_BYTES
            or not c.isprintable() or c != c.strip()):
        raise FrameStateError(f"operator state: show.content: expected a path of at most {MAX_CONTENT_BYTES} "
                              f"bytes of printable characters, got {c!r:.80}")
    sha = show.stage_sha256
    if not isinstance(sha, str) or (sha and (len(sha) != 64 or sha.strip("0123456789abcdef"))):
        raise FrameStateError(f"operator state: show.stage_sha256: expected 64 lowercase hex digits or nothing, "
                              f"got {sha!r:.80}")
    if isinstance(show.reloads, bool) or not isinstance(show.reloads, int) or not 0 <= show.reloads < 2**63:
        raise FrameStateError(f"operator state: show.reloads: expected a count 0..2^63-1, got {show.reloads!r}")
    if len(show.patches) > MAX_WIRE_PATCHES:
        raise FrameStateError(f"operator state: show.patches: at most {MAX_WIRE_PATCHES} playbacks, "
                              f"got {len(show.patches)}")
    seen = set()
    for i, p in enumerate(show.patches):
        what = f"operator state: show.patches[{i}]"
        if not isinstance(p, PatchStart):
            raise FrameStateError(f"{what}: expected a PatchStart, got {type(p).__name__}")
        if not isinstance(p.output, str) or not valid_output_key(p.output):
            raise FrameStateError(f"{what}.output: expected processor/output, got {p.output!r:.80}")
        if p.output in seen:
            raise FrameStateError(f"{what}.output: {p.output} plays twice")
        seen.add(p.output)
        f = p.first_frame
        if isinstance(f, bool) or not isinstance(f, int) or not -(2**63) <= f < 2**63:
            raise FrameStateError(f"{what}.first_frame: expected a frame number, got {p.first_frame!r}")
        for k, (lo, hi) in PATCH_COUNTS.items():
            v = getattr(p, k)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise FrameStateError(f"{what}.{k}: expected a whole number {lo}..{hi}, got {v!r}")
        if not isinstance(p.calibration, bool):
            raise FrameStateError(f"{what}.calibration: expected true or false, got {p.calibration!r}")
    return show


def valid_output_key(key: str) -> bool:
    """An output key on the wire: ``processor/output``, two names of printable characters, at most
    2 x :data:`MAX_NAME_BYTES` + 1 UTF-8 bytes."""
    proc, sep, out = key.partition("/")
    return (bool(sep) and bool(proc) and bool(out) and "/" not in out and key.isprintable()
            and len(key.encode("utf-8", "surrogatepass")) <= 2 * MAX_NAME_BYTES + 1)


# ======================================================================================= addresses


def parse_primary_address(text: str) -> tuple[str, int, int]:
    """``HOST``, ``HOST:PORT`` (sync port = PORT + 1) or ``HOST:PORT,SYNC_PORT`` -> ``(host, state, sync)``.

    An empty host means ``127.0.0.1``; without ports the defaults (:data:`DEFAULT_STATE_PORT`,
    :data:`DEFAULT_SYNC_PORT`) apply. IPv4 addresses and host names only. Raises ``ValueError`` with a message
    that says what was expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected HOST[:PORT[,SYNC_PORT]], e.g. 10.0.0.5:{DEFAULT_STATE_PORT}, "
                         f"got {text!r}")
    host, sep, ports = text.strip().partition(":")
    host = host or "127.0.0.1"
    if any(c in host for c in "/ [],") or ":" in ports:
        raise ValueError(f"expected HOST[:PORT[,SYNC_PORT]] (IPv4 or a host name), got {text!r}")
    if not sep:
        return host, DEFAULT_STATE_PORT, DEFAULT_SYNC_PORT
    parts = ports.split(",")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"expected HOST:PORT or HOST:PORT,SYNC_PORT with port numbers, got {text!r}")
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        nums.append(nums[0] + 1)
    if not all(1 <= p <= 65535 for p in nums) or nums[0] == nums[1]:
        raise ValueError(f"ports must be two different numbers in 1..65535, got {text!r}")
    return host, nums[0], nums[1]



# ======================================================================================= sync messages

_U64 = struct.Struct("<Q")
_Q = struct.Struct("<q")
_READY = struct.Struct("<qIq")  # frame, session, previous wait ns
_GO = struct.Struct("<qBq")  # frame, flags (1 released, 2 in barrier), hold ns
_SNAP = struct.Struct("<QIq")  # seq, session, barrier timeout ns
#: Node -> primary messages: frames in all (the router's identity included) and the size of the fourth frame
_NODE_FRAMES = {b"HELLO": 4, b"HB": 4, b"READY": 4, b"SNAP": 3, b"BYE": 3}
_NODE_PAYLOAD = {b"HELLO": _U64.size, b"HB": _Q.size, b"READY": _READY.size}
