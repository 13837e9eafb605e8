"""A simulated tracker: samples of a :mod:`stagectl.tracking.moves` move at an exact rate, sent over UDP.

:class:`Simulator` turns ``moves.pose_at(move, t_s)`` into protocol-shaped
:class:`~stagectl.core.sample.TrackingSample` s and, with a :class:`~stagectl.tracking.sender.Sender`,
puts them on the wire, paced by **absolute deadlines**: sample ``k`` is due at ``start + k * period`` with the
period an exact fraction (:meth:`FrameRate.frame_edge_ns`), so no error accumulates however long it runs. When
it falls more than a frame behind (a stalled machine), it skips to the current frame instead of bursting, and
counts the skipped frames; sequence numbers stay consecutive (they count samples sent, not frames).

What each protocol's samples carry (poses in the stagectl conventions: metres, degrees, pan positive left):

* FreeD: the move's pose as ``T_tracking_body``; zoom and focus as raw counts through the **inverse** of the
  encoder profile's ranges (generic: zoom ``round(n * 0x10000)``, focus ``round((1 - n) * 0x10000)``), the
  spare field with the profile's frame counter (Sony / Z-Cam: sample index mod 16 in bits 12-15) and f/2.8
  where the profile defines an f-number field. Profiles without zoom / focus ranges (Z-Cam, SYNCRO-LINK) get
  raw 0. ``lens.encoders`` holds the exact normalised values the counts were made from.
* OpenTrackIO 1.0.1: one transform ``"Camera"`` with the move's pose (``T_tracking_camera``), normalised zoom
  and focus encoders, ``timing`` with mode ``internal``, ``sampleTimestamp`` on clock ``system`` (the frame's
  deadline moved onto ``time.time_ns()`` by an offset read once at start), ``sequenceNumber`` (sample index),
  ``sampleRate`` and a time-of-day ``timecode`` (:class:`stagectl.core.timebase.Timecode`, rates up to
  120 Hz), ``sourceNumber``, a ``sourceId`` fixed per simulator, a fresh ``sampleId`` per sample, and a
  ``static`` block about every 2 s.
* OSC: the move's pose (``/pose``, ``T_tracking_body``), ``/lens zoom focus`` and ``/sequence``.

:meth:`Simulator.run` blocks (for a duration, a count, or until :meth:`stop`); :meth:`start` runs the same
loop on a daemon thread. Both return / keep what was sent (:class:`SentSample`, the newest ``keep`` ones) so
tests can compare what a receiver got with what was sent.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Self

from stagectl import __version__
from stagectl.core.sample import (
    FRAME_BODY,
    PROTOCOL_FREED,
    LensEncoders,
    LensState,
    Pose,
    RawEncoders,
    StaticCamera,
    StaticInfo,
    StaticTracker,
    Timecode,
    Timing,
    TrackingSample,
)
from stagectl.core.timebase import NS_PER_S, FrameRate
from stagectl.core.timebase import Timecode as SmpteTimecode
from stagectl.tracking.codecs.opentrackio import camera_sample
from stagectl.tracking.codecs.osc import PROTOCOL_OSC
from stagectl.tracking.codecs.osc import SEQUENCE_MODULUS as OSC_SEQUENCE_MODULUS
from stagectl.tracking.moves import MOVES, pose_at
from stagectl.tracking.profiles import EncoderProfile, EncoderRange, profile_from_config
from stagectl.tracking.receiver import TransportError, normalise_protocol
from stagectl.tracking.sender import Sender

__all__ = ["SentSample", "Simulator", "parse_rate"]

log = logging.getLogger("stagectl.tracking.simulator")

_DAY_NS: Final = 86_400 * NS_PER_S
_U32: Final = 0xFFFFFFFF
_SIM_F_STOP: Final = 2.8
_STATIC_EVERY_S: Final = 2


def parse_rate(value: Any) -> FrameRate:
    """A sample rate from ``FrameRate.parse`` spellings (``24``, ``"24000/1001"``, ``29.97``) or any positive
    decimal in Hz (``"100"``, ``"47.5"``, read exactly as a decimal fraction). Raises ``ValueError``."""
    try:
        return FrameRate.parse(value)
    except ValueError:
        pass
    try:
        exact = Fraction(str(value).strip()) if isinstance(value, (str, float)) else None
    except (ValueError, ZeroDivisionError):
        exact = None
    if exact is None or exact <= 0:
        raise ValueError(
            f"expected a rate in Hz such as 60, 59.94, 24000/1001 or 47.5, got {value!r}"
        ) from None
    return FrameRate(exact.numerator, exact.denominator)


@dataclass(frozen=True, slots=True)
class SentSample:
    """One sample the simulator produced.

    ``index``: samples produced before it (its sequence value); ``frame``: frame index ``k`` of the move (move
    time ``t_s = k / rate`` seconds); ``send_ns``: ``time.monotonic_ns()`` just before its first datagram was
    handed to the socket (clock ``monotonic``; ``None`` without a sender); ``packets`` / ``bytes``: datagrams
    and bytes sent (0 without a sender or when sending failed).
    """

    index: int
    frame: int
    t_s: float
    send_ns: int | None
    sample: TrackingSample
    packets: int
    bytes: int


def _raw_count(rng: EncoderRange | None, n: float) -> int:
    """Inverse of ``EncoderRange.normalise``: the raw 24-bit count that normalises to ``n`` (0..1)."""
    if rng is None:
        return 0
    value = round(rng.raw_at_0 + n * (rng.raw_at_1 - rng.raw_at_0))
    value = min(max(value, 0), (1 << rng.mask_bits) - 1)
    return (value << rng.shift) & 0xFFFFFF


class Simulator:
    """Plays ``move`` as ``protocol`` samples at ``rate``.

    :param move: one of :data:`stagectl.tracking.moves.MOVES`.
    :param protocol: ``"freed"``, ``"opentrackio"`` or ``"osc"``.
    :param rate: exact rate (:class:`FrameRate`, ``"24000/1001"``, ``59.94``, ``60``) or decimal Hz.
    :param sender: where samples go; ``None`` only produces them (``run`` still paces).
    :param camera_id: FreeD camera ID (0..255).
    :param source_number: OpenTrackIO source number (1..200).
    :param osc_camera: OSC ``<name>``.
    :param profile: FreeD encoder profile (name or stage-file mapping) for the raw zoom / focus / spare.
    :param drop_frame: drop-frame timecode (29.97 / 59.94 only).
    :param keep: how many :class:`SentSample` s to keep (the newest).
    """

    def __init__(
        self,
        move: str,
        protocol: str,
        rate: Any,
        *,
        sender: Sender | None = None,
        camera_id: int = 1,
        source_number: int = 1,
        osc_camera: str = "camera",
        profile: str | EncoderProfile = "generic",
        drop_frame: bool = False,
        keep: int = 100_000,
    ) -> None:
        if move not in MOVES:
            raise ValueError(f"unknown move {move!r}; expected one of {', '.join(MOVES)}")
        self.move = move
        self.protocol = normalise_protocol(protocol)
        self.rate = parse_rate(rate)
        if not 0 <= camera_id <= 255:
            raise ValueError(f"camera_id: expected a FreeD camera ID 0..255, got {camera_id!r}")
        if not 1 <= source_number <= 200:
            raise ValueError(
                f"source_number: expected an OpenTrackIO source number 1..200, got {source_number!r}"
            )
        self.sender = sender
        self.camera_id = camera_id
        self.source_number = source_number
        self.osc_camera = osc_camera
        self.profile = profile if isinstance(profile, EncoderProfile) else profile_from_config(profile)
        if drop_frame and not self.rate.is_drop_frame_capable:
            raise ValueError(f"drop-frame timecode exists only at 29.97 and 59.94, not at {self.rate.label}")
        self.drop_frame = drop_frame
        self.source_id = f"urn:uuid:{uuid.uuid4()}"
        self._static_every = max(1, round(self.rate.as_fraction() * _STATIC_EVERY_S))
        self._timecode_ok = self.rate.nominal_fps <= 120
        self._sent: collections.deque[SentSample] = collections.deque(maxlen=keep)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _sent against a reader copying it mid-append
        self.frames_skipped = 0
        self.send_errors = 0
        self.error: BaseException | None = None
        self._last_error_log_ns = 0

    # ------------------------------------------------------------------------------------------- samples
    def t_s(self, k: int) -> float:
        """Move time of frame ``k``, seconds (``k * den / num``, exact until the float conversion)."""
        return float(Fraction(k * self.rate.den, self.rate.num))

    def sample(
        self, k: int, *, index: int | None = None, system_epoch_ns: int = 0, tc_origin_frame: int = 0
    ) -> TrackingSample:
        """The sample of frame ``k`` (pure apart from a random OpenTrackIO ``sampleId``).

        ``index`` is the sequence value (default ``k``); ``system_epoch_ns`` is the ``system``-clock time of
        frame 0 (OpenTrackIO ``sampleTimestamp = system_epoch_ns + k * period``); ``tc_origin_frame`` the
        timecode frame count of frame 0.
        """
        n = k if index is None else index
        p = pose_at(self.move, self.t_s(k))
        pose = Pose(x=p.x, y=p.y, z=p.z, pan=p.pan, tilt=p.tilt, roll=p.roll)
        if self.protocol == "freed":
            prof = self.profile
            spare = 0
            if prof.iris is not None:
                spare |= _raw_count(prof.iris, 0.2) & 0xFFFF
            if prof.f_stop is not None and prof.f_stop.source == "spare":
                bf = prof.f_stop
                spare |= (round(_SIM_F_STOP * bf.divisor) & ((1 << bf.bits) - 1)) << bf.shift
            if prof.frame_counter is not None and prof.frame_counter.source == "spare":
                bf = prof.frame_counter
                spare |= (n % (1 << bf.bits)) << bf.shift
            zoom, focus = _raw_count(prof.zoom, p.zoom), _raw_count(prof.focus, p.focus)
            return TrackingSample(
                protocol=PROTOCOL_FREED,
                pose=pose,
                pose_frame=FRAME_BODY,
                lens=LensState(
                    encoders=LensEncoders(focus=p.focus, zoom=p.zoom),
                    raw_encoders=RawEncoders(focus=focus, zoom=zoom),
                ),
                camera_id=self.camera_id,
                raw={"spare": spare & 0xFFFF},
            )
        if self.protocol == "osc":
            return TrackingSample(
                protocol=PROTOCOL_OSC,
                pose=pose,
                pose_frame=FRAME_BODY,
                lens=LensState(encoders=LensEncoders(focus=p.focus, zoom=p.zoom)),
                timing=Timing(sequence_number=n % OSC_SEQUENCE_MODULUS),
                raw={"camera": self.osc_camera},
            )
        rate = self.rate
        timecode = None
        if self._timecode_ok:
            tc = SmpteTimecode.from_frame(tc_origin_frame + k, rate, self.drop_frame)
            timecode = Timecode(
                tc.hours, tc.minutes, tc.seconds, tc.frames, (rate.num, rate.den), drop_frame=tc.drop_frame
            )
        static = None
        if n % self._static_every == 0:
            static = StaticInfo(
                camera=StaticCamera(capture_frame_rate=(rate.num, rate.den)),
                tracker=StaticTracker(make="stagectl", model="simulator", firmware_version=__version__),
            )
        return camera_sample(
            pose,
            lens=LensState(encoders=LensEncoders(focus=p.focus, zoom=p.zoom)),
            timing=Timing(
                mode="internal",
                sample_timestamp_ns=system_epoch_ns + rate.frame_edge_ns(k),
                sample_rate=(rate.num, rate.den),
                sequence_number=n & _U32,
                timecode=timecode,
            ),
            static=static,
            source_number=self.source_number,
            source_id=self.source_id,
            sample_id=f"urn:uuid:{uuid.uuid4()}",
        )

    # ------------------------------------------------------------------------------------------- pacing
    @property
    def sent(self) -> list[SentSample]:
        """What was produced so far (the newest ``keep``), oldest first."""
        with self._lock:
            return list(self._sent)

    def _send(self, sample: TrackingSample, n: int) -> tuple[int | None, int, int]:
        if self.sender is None:
            return None, 0, 0
        send_ns = time.monotonic_ns()
        try:
            result = self.sender.send(sample, sequence=n)
        except TransportError as exc:
            self.send_errors += 1
            if send_ns - self._last_error_log_ns >= NS_PER_S:
                self._last_error_log_ns = send_ns
                log.warning("%s (%d send errors so far)", exc, self.send_errors)
            return send_ns, 0, 0
        return send_ns, result.packets, result.bytes

    def run(self, *, duration_s: float | None = None, count: int | None = None) -> list[SentSample]:
        """Produce (and send) samples until ``duration_s`` seconds have passed (frames whose deadline falls in
        ``[0, duration_s)``), ``count`` samples were produced, or :meth:`stop` is called. Returns the samples
        produced by this call."""
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s: expected > 0, got {duration_s!r}")
        if count is not None and count < 0:
            raise ValueError(f"count: expected >= 0, got {count!r}")
        rate = self.rate
        mono0 = time.monotonic_ns()  # clock monotonic: pacing
        sys0 = time.time_ns()  # clock system: OpenTrackIO sampleTimestamp and time-of-day timecode
        tc_origin = rate.frame_at_ns(sys0 % _DAY_NS) if self._timecode_ok else 0
        end_ns = None if duration_s is None else mono0 + round(duration_s * NS_PER_S)
        produced: list[SentSample] = []
        k = n = 0
        while not self._stop.is_set():
            if count is not None and n >= count:
                break
            deadline = rate.frame_edge_ns(k, mono0)
            if end_ns is not None and deadline >= end_ns:
                break
            now = time.monotonic_ns()
            if deadline > now:
                if self._stop.wait((deadline - now) / NS_PER_S):
                    break
            else:
                current = rate.frame_at_ns(now, mono0)
                if current > k:  # more than a frame late: skip to the current frame rather than burst
                    self.frames_skipped += current - k
                    k = current
                    continue
            sample = self.sample(k, index=n, system_epoch_ns=sys0, tc_origin_frame=tc_origin)
            send_ns, packets, nbytes = self._send(sample, n)
            item = SentSample(n, k, self.t_s(k), send_ns, sample, packets, nbytes)
            with self._lock:
                self._sent.append(item)
            produced.append(item)
            n += 1
            k += 1
        return produced

    def start(self, *, duration_s: float | None = None, count: int | None = None) -> Self:
        """Run :meth:`run` on a daemon thread. Returns ``self``."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the simulator is already running")
        self._stop.clear()

        def target() -> None:
            try:
                self.run(duration_s=duration_s, count=count)
            except BaseException as exc:  # kept and re-raised by stop() / join()
                self.error = exc
                log.exception("simulator stopped by an error")

        self._thread = threading.Thread(target=target, name=f"stagectl-sim-{self.move}", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout_s: float | None = None) -> list[SentSample]:
        """Wait for the thread started by :meth:`start` to end; re-raise its error. Returns :attr:`sent`."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error
        return self.sent

    def stop(self, timeout_s: float = 1.0) -> list[SentSample]:
        """Stop the loop (thread or blocking :meth:`run` in another thread) and return :attr:`sent`."""
        self._stop.set()
        return self.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the thread started by :meth:`start` runs."""
        return self._thread is not None and self._thread.is_alive()
