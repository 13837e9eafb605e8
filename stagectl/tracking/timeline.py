"""Per-camera tracking timeline: a fixed-capacity ring buffer of samples, time matching, delay, bounded
prediction, plausibility checks, dejittering, One Euro smoothing and timecode matching.

One :class:`Timeline` per camera (tracking source). A receiver thread calls :meth:`Timeline.push` with the
arrival stamp of every decoded sample; the frame loop calls :meth:`Timeline.pose_at` with the instant it
renders for. This follows ``docs/reference/PROTOCOLS.md`` section 5 (*Design that follows*): stamp each
datagram on arrival (integer ns, ``time.monotonic_ns()``), keep the source's own time, keep a ring per source,
delay by fractional frames, evaluate nearest or interpolated (lerp positions and encoders, shortest-arc slerp
for rotations), fall back to latest, flag extrapolation.

Frames, units and clocks (``docs/conventions.md``)
--------------------------------------------------
* Poses are ``T_tracking_<pose_frame>`` (``body`` for FreeD, ``camera`` for OpenTrackIO): position in
  **metres** in the ``tracking`` frame; rotation as pan/tilt/roll **degrees** with
  ``R = Rz(pan) @ Rx(tilt) @ Ry(roll)``, stored as a unit quaternion.
* Quaternions are Hamilton quaternions ``(w, x, y, z)``, scalar first, acting on column vectors:
  ``R(q) v = q v q*``. So ``q(pan, tilt, roll) = qz(pan) * qx(tilt) * qy(roll)`` with
  ``qz(a) = (cos a/2, 0, 0, sin a/2)`` etc. (:func:`quat_from_ptr_deg`, :func:`matrix_from_quat`,
  :func:`quat_from_matrix`, :func:`ptr_deg_from_quat`).
* Every sample has three integer-ns times. ``arrival``: the receiver's ``time.monotonic_ns()`` stamp (clock
  ``monotonic``). ``source``: the sample's own ``timing.sample_timestamp_ns`` (clock ``ptp``) or, when the
  source sends none (FreeD), the arrival stamp again. ``dejittered``: the sample's own time moved onto the
  ``monotonic`` clock (see *Dejittered clock*). A query names the clock it is on (``clock="arrival"``,
  ``"source"`` or ``"dejittered"``); ``ptp`` and ``monotonic`` times are never subtracted from one another
  except through the dejitter offset, which is estimated from the samples themselves.
* Encoders are normalised 0..1 in OpenTrackIO directions; lens values keep OpenTrackIO units (focal length
  mm, focus distance m, entrance-pupil offset m). Absent values are NaN.

Time matching (:meth:`Timeline.pose_at`)
----------------------------------------
``pose_at(t)`` evaluates at ``t_eval = t - delay_ns``; the delay is given in fractional frames of the stage's
exact :class:`~stagectl.core.timebase.FrameRate` (``delay_ns = rate.frames_to_ns(frames)``), never negative.
Modes, as in Unreal Live Link / its timecode provider (Lerp / Nearest / Latest):

* ``"interpolate"``: the two samples around ``t_eval``; position and encoders/lens values linearly,
  rotation by slerp along the shortest arc (``q`` and ``-q`` are the same rotation).
* ``"nearest"``: the sample closest in time (a tie goes to the newer one).
* ``"latest"``: no time matching, the newest sample.

Status of the result: ``"interpolated"`` (``t_eval`` inside the buffered span: blended, nearest, or an exact
sample), ``"extrapolated"`` (interpolate mode, ``t_eval`` newer than the newest sample by at most
``max_prediction_ns``: bounded prediction, see *Prediction*), ``"held"`` (``t_eval`` older than the buffer:
the oldest sample; newer than the prediction bound: the pose predicted at the bound, so the output does not
jump; no pair to predict from: the newest; nearest mode newer than the newest sample: the newest),
``"latest"`` (latest mode), ``"empty"`` (no sample yet) and ``"no_match"`` (timecode matching only). Pose values
of ``"empty"`` / ``"no_match"`` results are NaN: check :attr:`TimelineState.ok` before use.

Prediction (never invents motion)
---------------------------------
Past the newest sample ``h`` the pose is carried forward at the velocity of a **pair** ``j -> h``: ``j`` is
the newest sample at least ``min_pair_fraction`` (default 0.5) of a nominal sample period older than ``h``
(the sample's own ``timing.sample_rate``, else the timeline's ``sample_rate``, default the stage rate). Two
samples that arrive 0.2 ms apart (a late one flushed with the next) are never a pair: 6 cm over 0.2 ms is
300 m/s. No such ``j`` (or only one across a re-acquisition, below): the newest is held. The velocity (m/s)
and the world-frame angular velocity (``log(q_h q_j^-1) / dt``, rad/s) are then bounded by the camera's
:class:`~stagectl.core.sample.MotionLimits`: their change from the previous pair's (``i -> j``) by
``max_accel * (t_h - t_i) / 2`` (the time between the two estimates' midpoints), and their size by
``max_speed``. Position ``p_h + v ahead``, rotation ``exp(omega ahead) q_h``; encoders and lens values
linearly from ``j -> h`` (normalised encoders kept in 0..1, focal length and focus distance kept > 0).
``blend`` reports ``1 + ahead / (t_h - t_j)``. For a move at constant velocity this is exactly the linear
prediction from the two samples.

Plausibility (implausible samples are rejected and counted)
-----------------------------------------------------------
Before a sample is stored: non-finite pose values (``rejected_non_finite``) and a position farther than
``max_distance_m`` from the tracking origin (``rejected_out_of_range``) are rejected. Then the sample must be
reachable from the last accepted one: distance ``<= max_speed * dt`` (``rejected_speed``) and rotation angle
``<= max_angular_speed * dt`` (``rejected_angular_speed``), with ``dt`` the time between them on the
timeline's clock but never less than one nominal sample period (two captures are never closer, whatever
their arrival stamps say). A tracker that really moved (re-localised) is followed: when three rejected
samples in a row agree with each other by the same test, the third is accepted as the start of a new
trajectory (``reacquired``), the smoothing restarts there and prediction never pairs across it. The raw pose
is judged (not the smoothed one). Counters: :meth:`Timeline.counters` (``rejected``, ``rejected_by_reason``).

Dejittered clock
----------------
A sample's own time is ``timing.sample_timestamp_ns``, else its timecode position (frame + sub-frame of
``d`` divisions, at the timecode's exact rate). Its dejittered time is ``own + O`` with ``O`` the smallest
``arrival - own`` seen -- the fastest route from the tracker to us -- so a sample that was held back lands
where it was captured, not where it arrived. ``O`` may creep up by 200 ppm of the elapsed time (clock drift,
a slower route) and drops at once to any smaller offset. A sample whose offset is more than two nominal
periods below ``O`` or more than 1 s above it is a timing outlier: on a dejittered timeline it is rejected
(``rejected_timing``); three agreeing outliers in a row mean the source's clock stepped, and ``O`` follows
(``timing_resyncs``). A sample without an own time (FreeD, OSC) gets its arrival stamp. ``stagectl run``
orders its timelines on this clock.

Out-of-order samples
--------------------
A timeline orders its samples on its ``clock`` (default ``"arrival"``). On the source or dejittered clock a
sample whose time on that clock is older than the newest one is dropped and counted (``dropped_out_of_order``;
an equal time is a duplicate, ``dropped_duplicate``, except for untimed samples on the dejittered clock). On
the other clocks nothing is dropped for such a time (queries on a clock the buffer is out of order on then
raise while the buffer holds such a sample). A sample whose arrival stamp goes back in time is always dropped
(arrival stamps of one receiver are non-decreasing by construction).

Smoothing (One Euro filter)
---------------------------
Optional, applied on **push** (the buffer holds smoothed poses; queries cost nothing extra), following Casiez,
Roussel and Vogel, "1 Euro Filter", CHI 2012, Algorithm 1 -- with ``Te`` the time since the previous sample on
the timeline's clock and ``alpha(fc) = 1 / (1 + tau / Te)``, ``tau = 1 / (2 pi fc)``:

    dx    = (x - x_hat_prev) / Te                  (the paper's ``x.hatxprev()``)
    dx_hat = dx_hat_prev + alpha(d_cutoff) (dx - dx_hat_prev)
    fc    = min_cutoff + beta |dx_hat|
    x_hat = x_hat_prev + alpha(fc) (x - x_hat_prev)

* Position: each axis on its own (the paper's scalar filter three times); ``beta`` in Hz per m/s.
* Rotation: the same update in the tangent space at the previous filtered orientation (a small-angle /
  quaternion method): ``d = log(q * q_hat_prev^-1)`` is the rotation vector (world frame, degrees) from the
  filtered to the new orientation, ``omega = d / Te`` (deg/s, a 3-vector low-passed with ``d_cutoff``),
  ``fc = min_cutoff + beta |omega_hat|`` (``beta`` in Hz per deg/s) and ``q_hat = exp(alpha(fc) d) * q_hat_prev``.
  For a rotation about a fixed axis this is exactly the scalar filter on the angle.
* Added latency: for a first-order low-pass with this ``alpha`` the steady-state lag behind a ramp is
  exactly ``Te (1 - alpha) / alpha = tau = 1 / (2 pi fc)`` seconds; at low speed ``fc = min_cutoff``, so
  :attr:`Timeline.smoothing_latency_ns` reports ``round(1e9 / (2 pi min_cutoff))`` (the larger of the position
  and rotation filters). With ``beta > 0`` the lag of a fast move is smaller; the figure is an upper bound.
* A gap longer than ``reset_after_ns`` restarts the filter at the new sample.

Timecode matching (:meth:`Timeline.pose_at_timecode`)
-----------------------------------------------------
Each sample keeps its SMPTE timecode as a frame count since ``00:00:00:00`` (drop-frame labels converted as
:meth:`stagectl.core.timebase.Timecode.to_frame` does; a drop-frame flag at a rate that has no drop-frame
timecode, as in the official OpenTrackIO 1.0.1 complete example, is ignored) plus its exact rate and its
sub-frame ``s`` of ``d`` divisions, ``d = max(1, round(sample_rate / timecode_rate), s + 1)`` (Unreal's rule,
widened so a sent sub-frame always fits). A sample's timecode position is ``frame + s / d`` frames. A query
returns the sample at exactly that position (status ``"interpolated"``, blend 0), else interpolates between the
nearest samples before and after it (when they are at most ``max_timecode_gap_frames`` apart), else a
``"no_match"`` result whose :attr:`TimelineState.detail` says why. Midnight wrap is not handled.

Threads
-------
One writer (the receiver thread calling :meth:`push`) and any number of readers. Each side does all of its
work on the shared arrays inside **one** Numba call that holds the GIL (the kernels are not ``nogil``), and the
GIL is never released inside a nopython call, so a query can never observe half a push and no lock is taken.
The writer also keeps a sequence counter (a seqlock: odd while a write is in progress, +2 per push). Every
kernel read checks it and retries when it changed, and the multi-statement Python readers
(:meth:`snapshot`, :meth:`counters`) rely on it, because the GIL *can* switch threads between their
statements. (Running the kernels ``nogil`` or on free-threaded CPython would additionally need memory
fences, which Numba does not expose; keep them GIL-holding.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, NamedTuple

import numpy as np
from numba import njit

from stagectl.core.camera_settings import OneEuroParams, Smoothing
from stagectl.core.sample import FRAME_CAMERA, MotionLimits, Pose, TrackingSample
from stagectl.core.sample import Timecode as SampleTimecode
from stagectl.core.timebase import NS_PER_S, FrameRate
from stagectl.core.timebase import Timecode as TimebaseTimecode

__all__ = [
    "CLOCKS",
    "MODES",
    "MotionLimits",
    "STATUS_EMPTY",
    "STATUS_EXTRAPOLATED",
    "STATUS_HELD",
    "STATUS_INTERPOLATED",
    "STATUS_LATEST",
    "STATUS_NO_MATCH",
    "OneEuroParams",
    "Smoothing",
    "Timeline",
    "TimelineCounters",
    "TimelineState",
    "matrix_from_quat",
    "ptr_deg_from_quat",
    "quat_exp",
    "quat_from_matrix",
    "quat_from_ptr_deg",
    "quat_log",
    "quat_multiply",
    "quat_slerp",
    "timecode_frame",
    "warmup",
]

# ------------------------------------------------------------------------------------------------ constants
CLOCKS: Final = ("arrival", "source", "dejittered")
MODES: Final = ("interpolate", "nearest", "latest")

STATUS_INTERPOLATED: Final = "interpolated"
STATUS_EXTRAPOLATED: Final = "extrapolated"
STATUS_HELD: Final = "held"
STATUS_LATEST: Final = "latest"
STATUS_EMPTY: Final = "empty"
STATUS_NO_MATCH: Final = "no_match"
_STATUS_NAMES: Final = (
    STATUS_EMPTY,
    STATUS_INTERPOLATED,
    STATUS_EXTRAPOLATED,
    STATUS_HELD,
    STATUS_LATEST,
    STATUS_NO_MATCH,
)
_S_EMPTY, _S_INTERP, _S_EXTRAP, _S_HELD, _S_LATEST, _S_NOMATCH = range(6)
_S_UNSORTED = 100  # kernel code: source-clock query while the buffer's source times are out of order

_MODE_CODE: Final = {"interpolate": 0, "nearest": 1, "latest": 2}

# int64 columns of Timeline._times
_T_ARR, _T_SRC, _T_TC, _T_TCNUM, _T_TCDEN, _T_TCSUB, _T_TCDIV, _T_ORD, _T_DJ, _T_PER = range(10)
_NT: Final = 10
_CLOCK_COL: Final = {"arrival": _T_ARR, "source": _T_SRC, "dejittered": _T_DJ}
# float64 columns of Timeline._vals
_V_X, _V_Y, _V_Z, _V_QW, _V_QX, _V_QY, _V_QZ = range(7)
_V_ZOOM, _V_FOCUS, _V_IRIS, _V_FL, _V_FD, _V_EP = range(7, 13)
_NV: Final = 13
# int64 slots of Timeline._meta
_M_SEQ, _M_HEAD, _M_COUNT, _M_PUSHED, _M_OVER, _M_OOO, _M_DUP, _M_SRCBREAK, _M_FT, _M_FINIT = range(10)
# plausibility gate: last accepted sample's time, rejected-candidate streak and time, first ordinal of the
# current trajectory (prediction never pairs across it), ordinal from which the dejittered column is unsorted
_M_GINIT, _M_GT, _M_CSTREAK, _M_CT, _M_BREAK, _M_DJBREAK = range(10, 16)
# rejection counters (per reason) and re-acquisitions
_M_RNF, _M_RRANGE, _M_RSPEED, _M_RANG, _M_RTIME, _M_REACQ = range(16, 22)
# dejitter state: initialised, offset arrival - own time (ns), arrival of the last timed sample, timing-outlier
# streak and its offset, resyncs
_M_DJINIT, _M_DJOFF, _M_DJLAST, _M_DJSTREAK, _M_DJCAND, _M_DJRESYNC = range(22, 28)
# a restart (Timeline.restart) waiting for the next stored sample to begin a new trajectory
_M_PENDBRK = 28
_NM: Final = 32
# float64 slots of the gate state: the last accepted raw pose and the last rejected one (x, y, z, qw, qx, qy, qz)
_G_P, _G_C = 0, 7
_NG: Final = 14
# float64 slots of the motion limits (SI units: m/s, m/s^2, rad/s, rad/s^2, m), the pair fraction and the
# nominal sample period (ns) of samples that do not state their rate
_L_V, _L_A, _L_W, _L_WA, _L_DIST, _L_FRAC, _L_PER = range(7)
_NL: Final = 7
# push results
_R_STORED, _R_OOO, _R_DUP, _R_REJECTED, _R_TIMING = range(5)
# samples in a row that agree with each other but not with the accepted trajectory (or the timing): after this
# many the timeline takes them as the new truth (a tracker that re-localised, a clock that stepped)
_REACQUIRE: Final = 3
# the dejitter offset may creep up by 1/_DJ_CREEP_DIV of the elapsed time (200 ppm: clock drift, a slower
# route); a timed sample more than _DJ_LATE_NS later than the fastest route is a timing outlier
_DJ_CREEP_DIV: Final = 5000
_DJ_LATE_NS: Final = 1_000_000_000
# float64 slots of the filter state
_F_P, _F_DP, _F_Q, _F_W = 0, 3, 6, 10
_NF: Final = 16
# float64 slots of the filter parameters
_P_PON, _P_PMIN, _P_PBETA, _P_PDC, _P_RON, _P_RMIN, _P_RBETA, _P_RDC, _P_RESET = range(9)
# kernel outputs
_O_VALS = 13  # fout[0:13] = a row of _vals; then ptr degrees and the blend factor
_O_PAN, _O_TILT, _O_ROLL, _O_BLEND = 13, 14, 15, 16
_NO: Final = 17
_I_OK, _I_STATUS, _I_ORD0, _I_ORD1, _I_T0, _I_T1, _I_NEWEST, _I_EVAL, _I_WHY = range(9)
_NIO: Final = 9

_MAX_RETRIES: Final = 10_000
_NAN = math.nan


# ================================================================================= quaternion kernels (Numba)
@njit(cache=True)
def _qmul(aw, ax, ay, az, bw, bx, by, bz):  # pragma: no cover - compiled
    """Hamilton product ``a * b`` (scalar first)."""
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


@njit(cache=True)
def _q_from_ptr(pan_deg, tilt_deg, roll_deg):  # pragma: no cover - compiled
    """``qz(pan) * qx(tilt) * qy(roll)`` from degrees: the quaternion of ``Rz(pan) @ Rx(tilt) @ Ry(roll)``."""
    hp = math.radians(pan_deg) * 0.5
    ht = math.radians(tilt_deg) * 0.5
    hr = math.radians(roll_deg) * 0.5
    cz, sz = math.cos(hp), math.sin(hp)
    cx, sx = math.cos(ht), math.sin(ht)
    cy, sy = math.cos(hr), math.sin(hr)
    # qz * qx = (cz cx, cz sx, sz sx, sz cx); then * qy = (cy, 0, sy, 0)
    a, b, c, d = cz * cx, cz * sx, sz * sx, sz * cx
    return a * cy - c * sy, b * cy - d * sy, a * sy + c * cy, b * sy + d * cy


@njit(cache=True)
def _ptr_from_q(w, x, y, z):  # pragma: no cover - compiled
    """Pan, tilt, roll (degrees) of a unit quaternion, the same branch rules as
    ``stagectl.core.transforms.ptr_deg_from_rotation`` (tilt in [-90, 90]; at |tilt| = 90 roll is 0)."""
    r21 = 2.0 * (y * z + w * x)
    sb = min(1.0, max(-1.0, r21))
    tilt = math.asin(sb)
    if abs(sb) < 1.0 - 1e-12:
        r01 = 2.0 * (x * y - w * z)
        r11 = 1.0 - 2.0 * (x * x + z * z)
        r20 = 2.0 * (x * z - w * y)
        r22 = 1.0 - 2.0 * (x * x + y * y)
        pan = math.atan2(-r01, r11)
        roll = math.atan2(-r20, r22)
    else:
        r10 = 2.0 * (x * y + w * z)
        r00 = 1.0 - 2.0 * (y * y + z * z)
        pan = math.atan2(r10, r00)
        roll = 0.0
    return math.degrees(pan), math.degrees(tilt), math.degrees(roll)


@njit(cache=True)
def _q_pow_rel(w0, x0, y0, z0, w1, x1, y1, z1, u):  # pragma: no cover - compiled
    """``q0 * (q0^-1 q1)^u`` along the shortest arc, normalised. ``u`` in [0, 1] interpolates (slerp), ``u > 1``
    extrapolates at constant angular velocity (``q1 * exp((u - 1) log(q0^-1 q1))``)."""
    # r = conj(q0) * q1
    rw, rx, ry, rz = _qmul(w0, -x0, -y0, -z0, w1, x1, y1, z1)
    if rw < 0.0:  # q1 and -q1 are the same rotation: take the short way
        rw, rx, ry, rz = -rw, -rx, -ry, -rz
    s = math.sqrt(rx * rx + ry * ry + rz * rz)
    h = math.atan2(s, rw)  # half the relative angle, in [0, pi/2]
    if s > 1e-12:
        k = math.sin(u * h) / s
    else:
        k = u  # sin(u h) / sin(h) -> u
    ew = math.cos(u * h)
    qw, qx, qy, qz = _qmul(w0, x0, y0, z0, ew, k * rx, k * ry, k * rz)
    n = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    return qw / n, qx / n, qy / n, qz / n


@njit(cache=True)
def _q_log(w, x, y, z):  # pragma: no cover - compiled
    """Rotation vector (radians, axis * angle) of a unit quaternion, taken on the shortest arc (w >= 0)."""
    if w < 0.0:
        w, x, y, z = -w, -x, -y, -z
    s = math.sqrt(x * x + y * y + z * z)
    h = math.atan2(s, w)
    if s > 1e-12:
        k = 2.0 * h / s
    else:
        k = 2.0  # angle / sin(angle/2) * 1/2 ... -> 2 for small angles
    return k * x, k * y, k * z


@njit(cache=True)
def _q_exp(vx, vy, vz):  # pragma: no cover - compiled
    """Unit quaternion of a rotation vector (radians)."""
    a = math.sqrt(vx * vx + vy * vy + vz * vz)
    h = 0.5 * a
    if a > 1e-12:
        k = math.sin(h) / a
    else:
        k = 0.5
    return math.cos(h), k * vx, k * vy, k * vz


# --------------------------------------------------------------------------- public array wrappers (Numba)
@njit(cache=True)
def _quat_from_ptr_arr(pan, tilt, roll):  # pragma: no cover - compiled
    out = np.empty(4)
    out[0], out[1], out[2], out[3] = _q_from_ptr(pan, tilt, roll)
    return out


@njit(cache=True)
def _matrix_from_quat_arr(q):  # pragma: no cover - compiled
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    w, x, y, z = q[0] / n, q[1] / n, q[2] / n, q[3] / n
    R = np.empty((3, 3))
    R[0, 0] = 1.0 - 2.0 * (y * y + z * z)
    R[0, 1] = 2.0 * (x * y - w * z)
    R[0, 2] = 2.0 * (x * z + w * y)
    R[1, 0] = 2.0 * (x * y + w * z)
    R[1, 1] = 1.0 - 2.0 * (x * x + z * z)
    R[1, 2] = 2.0 * (y * z - w * x)
    R[2, 0] = 2.0 * (x * z - w * y)
    R[2, 1] = 2.0 * (y * z + w * x)
    R[2, 2] = 1.0 - 2.0 * (x * x + y * y)
    return R


@njit(cache=True)
def _quat_from_matrix_arr(R):  # pragma: no cover - compiled
    """Shepperd's method: pick the largest of 4w^2, 4x^2, 4y^2, 4z^2 to divide by; result has w >= 0."""
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    q = np.empty(4)
    if tr >= R[0, 0] and tr >= R[1, 1] and tr >= R[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + tr, 0.0))
        q[0] = 0.25 * s
        q[1] = (R[2, 1] - R[1, 2]) / s
        q[2] = (R[0, 2] - R[2, 0]) / s
        q[3] = (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] >= R[1, 1] and R[0, 0] >= R[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + R[0, 0] - R[1, 1] - R[2, 2], 0.0))
        q[0] = (R[2, 1] - R[1, 2]) / s
        q[1] = 0.25 * s
        q[2] = (R[0, 1] + R[1, 0]) / s
        q[3] = (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] >= R[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 - R[0, 0] + R[1, 1] - R[2, 2], 0.0))
        q[0] = (R[0, 2] - R[2, 0]) / s
        q[1] = (R[0, 1] + R[1, 0]) / s
        q[2] = 0.25 * s
        q[3] = (R[1, 2] + R[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(max(1.0 - R[0, 0] - R[1, 1] + R[2, 2], 0.0))
        q[0] = (R[1, 0] - R[0, 1]) / s
        q[1] = (R[0, 2] + R[2, 0]) / s
        q[2] = (R[1, 2] + R[2, 1]) / s
        q[3] = 0.25 * s
    if q[0] < 0.0:
        q[:] = -q
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    q /= n
    return q


@njit(cache=True)
def _quat_slerp_arr(q0, q1, u):  # pragma: no cover - compiled
    out = np.empty(4)
    out[0], out[1], out[2], out[3] = _q_pow_rel(q0[0], q0[1], q0[2], q0[3], q1[0], q1[1], q1[2], q1[3], u)
    return out


def _q4(q: Any) -> np.ndarray:
    a = np.ascontiguousarray(q, dtype=np.float64)
    if a.shape != (4,):
        raise ValueError(f"expected a quaternion (w, x, y, z) of shape (4,), got shape {a.shape}")
    return a


def quat_from_ptr_deg(pan: float, tilt: float, roll: float) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` of ``R = Rz(pan) @ Rx(tilt) @ Ry(roll)``; angles in degrees."""
    return _quat_from_ptr_arr(float(pan), float(tilt), float(roll))


def ptr_deg_from_quat(q: Any) -> tuple[float, float, float]:
    """Pan, tilt, roll in degrees of a quaternion ``(w, x, y, z)`` (normalised first); the inverse of
    :func:`quat_from_ptr_deg` with ``stagectl.core.transforms.ptr_deg_from_rotation``'s branch rules."""
    a = _q4(q)
    n = float(np.linalg.norm(a))
    return tuple(float(v) for v in _ptr_from_q(a[0] / n, a[1] / n, a[2] / n, a[3] / n))  # type: ignore[return-value]


def matrix_from_quat(q: Any) -> np.ndarray:
    """3x3 rotation matrix ``R`` (acting on column vectors) of a quaternion ``(w, x, y, z)``, normalised first."""
    return _matrix_from_quat_arr(_q4(q))


def quat_from_matrix(R: Any) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a 3x3 rotation matrix (Shepperd's method)."""
    a = np.ascontiguousarray(R, dtype=np.float64)
    if a.shape != (3, 3):
        raise ValueError(f"expected a 3x3 rotation matrix, got shape {a.shape}")
    return _quat_from_matrix_arr(a)


def quat_multiply(a: Any, b: Any) -> np.ndarray:
    """Hamilton product ``a * b`` of two quaternions ``(w, x, y, z)`` (``R(a b) = R(a) R(b)``)."""
    qa, qb = _q4(a), _q4(b)
    return np.array(_qmul(*qa.tolist(), *qb.tolist()))


def quat_log(q: Any) -> np.ndarray:
    """Rotation vector (axis times angle, **radians**) of a unit quaternion, on the shortest arc."""
    a = _q4(q)
    a = a / np.linalg.norm(a)
    return np.array(_q_log(*a.tolist()))


def quat_exp(v: Any) -> np.ndarray:
    """Unit quaternion of a rotation vector ``v`` (axis times angle, radians)."""
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,):
        raise ValueError(f"expected a rotation vector of shape (3,), got shape {a.shape}")
    return np.array(_q_exp(*a.tolist()))


def quat_slerp(q0: Any, q1: Any, u: float) -> np.ndarray:
    """Spherical linear interpolation from ``q0`` (``u = 0``) to ``q1`` (``u = 1``) along the shortest arc
    (``q1`` and ``-q1`` give the same result). ``u > 1`` or ``< 0`` continues at constant angular velocity."""
    return _quat_slerp_arr(_q4(q0), _q4(q1), float(u))


# ====================================================================================== push kernel (Numba)
@njit(cache=True)
def _alpha(cutoff_hz, dt_s):  # pragma: no cover - compiled
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


@njit(cache=True)
def _angle_between(aw, ax, ay, az, bw, bx, by, bz):  # pragma: no cover - compiled
    """Angle (radians, 0..pi) of the rotation that takes unit quaternion ``a`` to ``b``."""
    d = min(abs(aw * bw + ax * bx + ay * by + az * bz), 1.0)
    return 2.0 * math.acos(d)


@njit(cache=True)
def _plausible(lim, x0, y0, z0, qw0, qx0, qy0, qz0, t0, x, y, z, qw, qx, qy, qz, t, period):  # pragma: no cover
    """0 when pose (x..qz) at t is reachable from pose 0 at t0 within the speed limits, else the reason code:
    1 linear speed, 2 angular speed. The time allowed is at least one nominal sample ``period`` (ns): two
    captures are never closer than that, whatever their arrival stamps say."""
    dt_s = max(t - t0, period) * 1e-9
    dx, dy, dz = x - x0, y - y0, z - z0
    if math.sqrt(dx * dx + dy * dy + dz * dz) > lim[_L_V] * dt_s:
        return 1
    if _angle_between(qw0, qx0, qy0, qz0, qw, qx, qy, qz) > lim[_L_W] * dt_s:
        return 2
    return 0


@njit(cache=True)
def _push_kernel(times, vals, meta, fstate, fparams, gstate, lim, order_col, fresh, arrival, source, own,
                 has_own, period, tc_frame, tc_num, tc_den, tc_sub, tc_div, x, y, z, pan, tilt, roll, zoom, focus, iris,
                 fl, fd, ep):  # pragma: no cover - compiled
    """Append one sample. Returns _R_STORED (0), or why it was dropped: _R_OOO (out of order), _R_DUP
    (duplicate), _R_REJECTED (implausible pose) or _R_TIMING (implausible own time, dejittered clock).
    ``fresh``: start afresh (a source switch): no plausibility reference, a new dejitter offset, the smoothing
    restarted, and the next stored sample begins a new trajectory."""
    cap = times.shape[0]
    head = meta[_M_HEAD]
    n = meta[_M_COUNT]
    if fresh:
        meta[_M_GINIT] = 0
        meta[_M_CSTREAK] = 0
        meta[_M_DJINIT] = 0
        meta[_M_DJSTREAK] = 0
        meta[_M_FINIT] = 0
        meta[_M_PENDBRK] = 1
    # ---- values that cannot be a camera pose
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z) and math.isfinite(pan)
            and math.isfinite(tilt) and math.isfinite(roll)):
        meta[_M_RNF] += 1
        return _R_REJECTED
    if math.sqrt(x * x + y * y + z * z) > lim[_L_DIST]:
        meta[_M_RRANGE] += 1
        return _R_REJECTED
    if period <= 0:
        period = np.int64(lim[_L_PER])

    # ---- dejittered time: the sample's own time plus the smallest transport offset seen (a decaying minimum)
    dj = arrival
    timing_ok = True
    if has_own:
        off = arrival - own
        if meta[_M_DJINIT] == 0:
            meta[_M_DJINIT] = 1
            meta[_M_DJOFF] = off
            meta[_M_DJLAST] = arrival
        else:
            el = arrival - meta[_M_DJLAST]
            o = meta[_M_DJOFF] + (el // _DJ_CREEP_DIV if el > 0 else 0)
            d = off - o
            early = 2 * period
            if d < -early or d > _DJ_LATE_NS:  # earlier than any route allows, or absurdly late
                if meta[_M_DJSTREAK] > 0 and abs(off - meta[_M_DJCAND]) <= early:
                    meta[_M_DJSTREAK] += 1
                else:
                    meta[_M_DJSTREAK] = 1
                meta[_M_DJCAND] = off
                if meta[_M_DJSTREAK] >= _REACQUIRE:  # the source's clock stepped: follow it
                    meta[_M_DJSTREAK] = 0
                    meta[_M_DJRESYNC] += 1
                    meta[_M_DJOFF] = off
                    meta[_M_DJLAST] = arrival
                else:
                    timing_ok = False
            else:
                meta[_M_DJSTREAK] = 0
                meta[_M_DJOFF] = min(o, off)
                meta[_M_DJLAST] = arrival
        if timing_ok:
            dj = own + meta[_M_DJOFF]
    if order_col == _T_DJ and not timing_ok:
        meta[_M_RTIME] += 1
        return _R_TIMING

    # ---- order on the timeline's clock
    newest_src = times[head, _T_SRC]
    newest_dj = times[head, _T_DJ]
    if n > 0:
        if arrival < times[head, _T_ARR]:
            meta[_M_OOO] += 1
            return _R_OOO
        if order_col == _T_SRC:
            if source < newest_src:
                meta[_M_OOO] += 1
                return _R_OOO
            if source == newest_src:
                meta[_M_DUP] += 1
                return _R_DUP
        elif order_col == _T_DJ:
            if dj < newest_dj:
                meta[_M_OOO] += 1
                return _R_OOO
            if dj == newest_dj and has_own:
                meta[_M_DUP] += 1
                return _R_DUP
    qw, qx, qy, qz = _q_from_ptr(pan, tilt, roll)
    t = arrival
    if order_col == _T_SRC:
        t = source
    elif order_col == _T_DJ:
        t = dj

    # ---- plausibility: reachable from the last accepted sample within the speed limits?
    new_trajectory = False
    if meta[_M_GINIT] != 0:
        why = _plausible(lim, gstate[_G_P], gstate[_G_P + 1], gstate[_G_P + 2], gstate[_G_P + 3],
                         gstate[_G_P + 4], gstate[_G_P + 5], gstate[_G_P + 6], meta[_M_GT],
                         x, y, z, qw, qx, qy, qz, t, period)
        if why != 0:
            # consistent with the previous rejected sample? then it may be a new trajectory, not garbage
            if meta[_M_CSTREAK] > 0 and _plausible(
                    lim, gstate[_G_C], gstate[_G_C + 1], gstate[_G_C + 2], gstate[_G_C + 3], gstate[_G_C + 4],
                    gstate[_G_C + 5], gstate[_G_C + 6], meta[_M_CT], x, y, z, qw, qx, qy, qz, t, period) == 0:
                meta[_M_CSTREAK] += 1
            else:
                meta[_M_CSTREAK] = 1
            gstate[_G_C], gstate[_G_C + 1], gstate[_G_C + 2] = x, y, z
            gstate[_G_C + 3], gstate[_G_C + 4], gstate[_G_C + 5], gstate[_G_C + 6] = qw, qx, qy, qz
            meta[_M_CT] = t
            if meta[_M_CSTREAK] < _REACQUIRE:
                if why == 1:
                    meta[_M_RSPEED] += 1
                else:
                    meta[_M_RANG] += 1
                return _R_REJECTED
            new_trajectory = True  # _REACQUIRE samples agree: the tracker is somewhere else now
            meta[_M_REACQ] += 1
            meta[_M_FINIT] = 0  # and the smoothing restarts there instead of gliding across
    meta[_M_GINIT] = 1
    meta[_M_CSTREAK] = 0
    meta[_M_GT] = t
    gstate[_G_P], gstate[_G_P + 1], gstate[_G_P + 2] = x, y, z
    gstate[_G_P + 3], gstate[_G_P + 4], gstate[_G_P + 5], gstate[_G_P + 6] = qw, qx, qy, qz

    # ---- One Euro smoothing (Casiez et al. 2012), on the timeline clock
    pos_on = fparams[_P_PON] > 0.0
    rot_on = fparams[_P_RON] > 0.0
    if pos_on or rot_on:
        dt_ns = t - meta[_M_FT]
        if meta[_M_FINIT] == 0 or dt_ns > fparams[_P_RESET]:
            fstate[_F_P], fstate[_F_P + 1], fstate[_F_P + 2] = x, y, z
            for k in range(3):
                fstate[_F_DP + k] = 0.0
                fstate[_F_W + k] = 0.0
            fstate[_F_Q], fstate[_F_Q + 1], fstate[_F_Q + 2], fstate[_F_Q + 3] = qw, qx, qy, qz
            meta[_M_FINIT] = 1
            meta[_M_FT] = t
        elif dt_ns > 0:
            dt = dt_ns * 1e-9
            if pos_on:
                ad = _alpha(fparams[_P_PDC], dt)
                raw = (x, y, z)
                for k in range(3):
                    prev = fstate[_F_P + k]
                    dx = (raw[k] - prev) / dt
                    edx = fstate[_F_DP + k] + ad * (dx - fstate[_F_DP + k])
                    fstate[_F_DP + k] = edx
                    a = _alpha(fparams[_P_PMIN] + fparams[_P_PBETA] * abs(edx), dt)
                    fstate[_F_P + k] = prev + a * (raw[k] - prev)
            else:
                fstate[_F_P], fstate[_F_P + 1], fstate[_F_P + 2] = x, y, z
            if rot_on:
                pw, px, py, pz = fstate[_F_Q], fstate[_F_Q + 1], fstate[_F_Q + 2], fstate[_F_Q + 3]
                # world-frame rotation from the filtered orientation to the new one: q * conj(q_hat)
                dw, dxq, dyq, dzq = _qmul(qw, qx, qy, qz, pw, -px, -py, -pz)
                vx, vy, vz = _q_log(dw, dxq, dyq, dzq)  # radians
                rad2deg = 180.0 / math.pi
                ad = _alpha(fparams[_P_RDC], dt)
                wx = fstate[_F_W] + ad * (vx * rad2deg / dt - fstate[_F_W])
                wy = fstate[_F_W + 1] + ad * (vy * rad2deg / dt - fstate[_F_W + 1])
                wz = fstate[_F_W + 2] + ad * (vz * rad2deg / dt - fstate[_F_W + 2])
                fstate[_F_W], fstate[_F_W + 1], fstate[_F_W + 2] = wx, wy, wz
                speed = math.sqrt(wx * wx + wy * wy + wz * wz)
                a = _alpha(fparams[_P_RMIN] + fparams[_P_RBETA] * speed, dt)
                ew, ex, ey, ez = _q_exp(a * vx, a * vy, a * vz)
                nw, nx, ny, nz = _qmul(ew, ex, ey, ez, pw, px, py, pz)
                nn = math.sqrt(nw * nw + nx * nx + ny * ny + nz * nz)
                fstate[_F_Q], fstate[_F_Q + 1] = nw / nn, nx / nn
                fstate[_F_Q + 2], fstate[_F_Q + 3] = ny / nn, nz / nn
            else:
                fstate[_F_Q], fstate[_F_Q + 1], fstate[_F_Q + 2], fstate[_F_Q + 3] = qw, qx, qy, qz
            meta[_M_FT] = t
        # dt_ns == 0 (two samples stamped the same ns on the arrival clock): keep the filtered value
        if pos_on:
            x, y, z = fstate[_F_P], fstate[_F_P + 1], fstate[_F_P + 2]
        if rot_on:
            qw, qx, qy, qz = fstate[_F_Q], fstate[_F_Q + 1], fstate[_F_Q + 2], fstate[_F_Q + 3]

    # ---- seqlock write
    meta[_M_SEQ] += 1  # odd: write in progress
    if n > 0:  # a column the timeline is not ordered on may go backwards: remember from where
        if source < newest_src:
            meta[_M_SRCBREAK] = meta[_M_PUSHED]  # the ordinal this sample gets
        if dj < newest_dj:
            meta[_M_DJBREAK] = meta[_M_PUSHED]
    if new_trajectory or meta[_M_PENDBRK] != 0:
        meta[_M_BREAK] = meta[_M_PUSHED]
        meta[_M_PENDBRK] = 0
    p = head + 1
    if p >= cap:
        p = 0
    if n == cap:
        meta[_M_OVER] += 1
    else:
        meta[_M_COUNT] = n + 1
    times[p, _T_ARR] = arrival
    times[p, _T_SRC] = source
    times[p, _T_TC] = tc_frame
    times[p, _T_TCNUM] = tc_num
    times[p, _T_TCDEN] = tc_den
    times[p, _T_TCSUB] = tc_sub
    times[p, _T_TCDIV] = tc_div
    times[p, _T_ORD] = meta[_M_PUSHED]
    times[p, _T_DJ] = dj
    times[p, _T_PER] = period
    vals[p, _V_X] = x
    vals[p, _V_Y] = y
    vals[p, _V_Z] = z
    vals[p, _V_QW] = qw
    vals[p, _V_QX] = qx
    vals[p, _V_QY] = qy
    vals[p, _V_QZ] = qz
    vals[p, _V_ZOOM] = zoom
    vals[p, _V_FOCUS] = focus
    vals[p, _V_IRIS] = iris
    vals[p, _V_FL] = fl
    vals[p, _V_FD] = fd
    vals[p, _V_EP] = ep
    meta[_M_HEAD] = p
    meta[_M_PUSHED] += 1
    meta[_M_SEQ] += 1  # even: consistent
    return _R_STORED


# ===================================================================================== query kernels (Numba)
@njit(cache=True)
def _blend_into(fout, vals, p0, p1, u):  # pragma: no cover - compiled
    """fout[0:13] = lerp/slerp of rows p0 -> p1 at u in [0, 1]; ptr degrees; blend factor."""
    for k in range(3):
        a = vals[p0, k]
        fout[k] = a + u * (vals[p1, k] - a)
    qw, qx, qy, qz = _q_pow_rel(vals[p0, _V_QW], vals[p0, _V_QX], vals[p0, _V_QY], vals[p0, _V_QZ],
                                vals[p1, _V_QW], vals[p1, _V_QX], vals[p1, _V_QY], vals[p1, _V_QZ], u)
    fout[_V_QW], fout[_V_QX], fout[_V_QY], fout[_V_QZ] = qw, qx, qy, qz
    for k in range(_V_ZOOM, _NV):
        a = vals[p0, k]
        fout[k] = a + u * (vals[p1, k] - a)
    fout[_O_PAN], fout[_O_TILT], fout[_O_ROLL] = _ptr_from_q(qw, qx, qy, qz)
    fout[_O_BLEND] = u


@njit(cache=True)
def _copy_into(fout, vals, p):  # pragma: no cover - compiled
    for k in range(_NV):
        fout[k] = vals[p, k]
    fout[_O_PAN], fout[_O_TILT], fout[_O_ROLL] = _ptr_from_q(vals[p, _V_QW], vals[p, _V_QX], vals[p, _V_QY],
                                                             vals[p, _V_QZ])
    fout[_O_BLEND] = 0.0


@njit(cache=True)
def _older_than(times, meta, first, n, p, col, min_gap):  # pragma: no cover - compiled
    """Ring slot of the newest sample at least ``min_gap`` ns older than the one in slot ``p`` on column
    ``col``, within the current trajectory (never before a re-acquisition); -1 when there is none."""
    cap = times.shape[0]
    k = p - first
    if k < 0:
        k += cap
    t = times[p, col]
    brk = meta[_M_BREAK]
    while k > 0:
        k -= 1
        q = first + k
        if q >= cap:
            q -= cap
        if times[q, _T_ORD] < brk:
            return -1
        if t - times[q, col] >= min_gap:
            return q
    return -1


@njit(cache=True)
def _rate(vals, times, col, a, b):  # pragma: no cover - compiled
    """Velocity (m/s) and world-frame angular velocity (rad/s) from sample slot ``a`` to the later ``b``."""
    dt = (times[b, col] - times[a, col]) * 1e-9
    v0 = (vals[b, _V_X] - vals[a, _V_X]) / dt
    v1 = (vals[b, _V_Y] - vals[a, _V_Y]) / dt
    v2 = (vals[b, _V_Z] - vals[a, _V_Z]) / dt
    # q_b * conj(q_a): the world-frame rotation from a to b
    rw, rx, ry, rz = _qmul(vals[b, _V_QW], vals[b, _V_QX], vals[b, _V_QY], vals[b, _V_QZ],
                           vals[a, _V_QW], -vals[a, _V_QX], -vals[a, _V_QY], -vals[a, _V_QZ])
    w0, w1, w2 = _q_log(rw, rx, ry, rz)
    return v0, v1, v2, w0 / dt, w1 / dt, w2 / dt


@njit(cache=True)
def _limit(a0, a1, a2, b0, b1, b2, bound):  # pragma: no cover - compiled
    """``a + d`` with ``d = b - a`` shortened to length ``bound`` when longer (``a = 0``: clamp ``b``)."""
    d0, d1, d2 = b0 - a0, b1 - a1, b2 - a2
    m = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    if m > bound:
        k = bound / m
        return a0 + k * d0, a1 + k * d1, a2 + k * d2
    return b0, b1, b2


@njit(cache=True)
def _predict_into(fout, vals, times, col, pi, pj, ph, ahead, lim):  # pragma: no cover - compiled
    """fout = the newest sample ``ph`` carried ``ahead`` ns forward at the velocity of the pair ``pj -> ph``,
    that velocity's change from the pair before (``pi -> pj``; ``pi < 0``: none) bounded by the acceleration
    limits and the result by the speed limits. Encoders and lens values: linear from ``pj -> ph``."""
    v0, v1, v2, w0, w1, w2 = _rate(vals, times, col, pj, ph)
    if pi >= 0:
        u0, u1, u2, o0, o1, o2 = _rate(vals, times, col, pi, pj)
        mid = 0.5 * (times[ph, col] - times[pi, col]) * 1e-9  # between the two estimates' midpoints
        v0, v1, v2 = _limit(u0, u1, u2, v0, v1, v2, lim[_L_A] * mid)
        w0, w1, w2 = _limit(o0, o1, o2, w0, w1, w2, lim[_L_WA] * mid)
    v0, v1, v2 = _limit(0.0, 0.0, 0.0, v0, v1, v2, lim[_L_V])
    w0, w1, w2 = _limit(0.0, 0.0, 0.0, w0, w1, w2, lim[_L_W])
    h = ahead * 1e-9
    fout[_V_X] = vals[ph, _V_X] + v0 * h
    fout[_V_Y] = vals[ph, _V_Y] + v1 * h
    fout[_V_Z] = vals[ph, _V_Z] + v2 * h
    ew, ex, ey, ez = _q_exp(w0 * h, w1 * h, w2 * h)
    qw, qx, qy, qz = _qmul(ew, ex, ey, ez, vals[ph, _V_QW], vals[ph, _V_QX], vals[ph, _V_QY], vals[ph, _V_QZ])
    nq = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    qw, qx, qy, qz = qw / nq, qx / nq, qy / nq, qz / nq
    fout[_V_QW], fout[_V_QX], fout[_V_QY], fout[_V_QZ] = qw, qx, qy, qz
    u = 1.0 + ahead / (times[ph, col] - times[pj, col])
    for k in range(_V_ZOOM, _NV):
        a = vals[pj, k]
        v = a + u * (vals[ph, k] - a)
        if k <= _V_IRIS:  # normalised encoders stay in 0..1 (NaN compares false and stays NaN)
            if v < 0.0:
                v = 0.0
            elif v > 1.0:
                v = 1.0
        elif k != _V_EP and v <= 0.0:  # focal length and focus distance are > 0: hold the newest
            v = vals[ph, k]
        fout[k] = v
    fout[_O_PAN], fout[_O_TILT], fout[_O_ROLL] = _ptr_from_q(qw, qx, qy, qz)
    fout[_O_BLEND] = u


@njit(cache=True)
def _query_kernel(times, vals, meta, te, col, mode, max_pred, lim):  # pragma: no cover - compiled
    """Evaluate at ``te`` (ns, clock column ``col``). Returns (fout, iout); iout[_I_OK] = 0 means the seqlock saw
    a concurrent write and the caller must retry."""
    fout = np.full(_NO, np.nan)
    iout = np.full(_NIO, -1, dtype=np.int64)
    seq0 = meta[_M_SEQ]
    iout[_I_EVAL] = te
    if seq0 & 1:
        iout[_I_OK] = 0
        return fout, iout
    n = meta[_M_COUNT]
    if n == 0:
        iout[_I_STATUS] = _S_EMPTY
    else:
        cap = times.shape[0]
        head = meta[_M_HEAD]
        first = head - n + 1
        if first < 0:
            first += cap
        if ((col == _T_SRC and meta[_M_SRCBREAK] >= times[first, _T_ORD])
                or (col == _T_DJ and meta[_M_DJBREAK] >= times[first, _T_ORD])):
            iout[_I_STATUS] = _S_UNSORTED
            iout[_I_OK] = 1 if meta[_M_SEQ] == seq0 else 0
            return fout, iout
        newest = times[head, col]
        iout[_I_NEWEST] = newest
        if mode == 2:  # latest
            _copy_into(fout, vals, head)
            iout[_I_STATUS] = _S_LATEST
            iout[_I_ORD0] = times[head, _T_ORD]
            iout[_I_ORD1] = iout[_I_ORD0]
            iout[_I_T0] = newest
            iout[_I_T1] = newest
        elif te < times[first, col]:  # older than the buffer: hold the oldest
            _copy_into(fout, vals, first)
            iout[_I_STATUS] = _S_HELD
            iout[_I_ORD0] = times[first, _T_ORD]
            iout[_I_ORD1] = iout[_I_ORD0]
            iout[_I_T0] = times[first, col]
            iout[_I_T1] = iout[_I_T0]
        elif te >= newest:
            ahead = te - newest
            pj = -1
            if mode == 0 and n >= 2 and ahead > 0 and max_pred > 0:
                # never from a pair closer than a fraction of the nominal sample period (a burst of two)
                per = times[head, _T_PER]
                min_gap = max(np.int64(lim[_L_FRAC] * per), 1)
                pj = _older_than(times, meta, first, n, head, col, min_gap)
            if pj >= 0:
                pi = _older_than(times, meta, first, n, pj, col, min_gap)
                _predict_into(fout, vals, times, col, pi, pj, head, min(ahead, max_pred), lim)
                iout[_I_STATUS] = _S_EXTRAP if ahead <= max_pred else _S_HELD
                iout[_I_ORD0] = times[pj, _T_ORD]
                iout[_I_T0] = times[pj, col]
            else:
                _copy_into(fout, vals, head)
                iout[_I_STATUS] = _S_INTERP if ahead == 0 else _S_HELD
                iout[_I_ORD0] = times[head, _T_ORD]
                iout[_I_T0] = newest
            iout[_I_ORD1] = times[head, _T_ORD]
            iout[_I_T1] = newest
        else:
            # binary search on the logical index: largest k in [0, n-2] with t_k <= te (t_{n-1} > te here)
            lo, hi = 0, n - 1
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                pm = first + mid
                if pm >= cap:
                    pm -= cap
                if times[pm, col] <= te:
                    lo = mid
                else:
                    hi = mid
            p0 = first + lo
            if p0 >= cap:
                p0 -= cap
            p1 = p0 + 1
            if p1 >= cap:
                p1 = 0
            t0 = times[p0, col]
            t1 = times[p1, col]
            if mode == 1:  # nearest; a tie goes to the newer sample
                p = p0 if (te - t0) < (t1 - te) else p1
                _copy_into(fout, vals, p)
                iout[_I_ORD0] = times[p, _T_ORD]
                iout[_I_ORD1] = iout[_I_ORD0]
                iout[_I_T0] = times[p, col]
                iout[_I_T1] = iout[_I_T0]
            else:
                if te == t0:
                    _copy_into(fout, vals, p0)
                else:
                    _blend_into(fout, vals, p0, p1, (te - t0) / (t1 - t0))
                iout[_I_ORD0] = times[p0, _T_ORD]
                iout[_I_ORD1] = times[p1, _T_ORD]
                iout[_I_T0] = t0
                iout[_I_T1] = t1
            iout[_I_STATUS] = _S_INTERP
    iout[_I_OK] = 1 if meta[_M_SEQ] == seq0 else 0
    return fout, iout


# no-match reasons of the timecode kernel
_WHY_NONE, _WHY_RATE, _WHY_BEFORE, _WHY_AFTER, _WHY_GAP = range(5)


@njit(cache=True)
def _timecode_kernel(times, vals, meta, col, frame, sub, div, rnum, rden, max_gap_frames):  # pragma: no cover
    """Match the timecode position ``frame + sub/div`` at rate ``rnum/rden`` (normalised)."""
    fout = np.full(_NO, np.nan)
    iout = np.full(_NIO, -1, dtype=np.int64)
    seq0 = meta[_M_SEQ]
    if seq0 & 1:
        iout[_I_OK] = 0
        return fout, iout
    n = meta[_M_COUNT]
    iout[_I_WHY] = _WHY_NONE
    if n == 0:
        iout[_I_STATUS] = _S_EMPTY
        iout[_I_OK] = 1 if meta[_M_SEQ] == seq0 else 0
        return fout, iout
    cap = times.shape[0]
    head = meta[_M_HEAD]
    iout[_I_NEWEST] = times[head, col]
    first = head - n + 1
    if first < 0:
        first += cap
    # best sample at or before the target (largest position) and at or after it (smallest position);
    # positions compared exactly as fractions: a/b vs c/d  <=>  a*d vs c*b (all > 0 denominators)
    target_num = frame * div + sub  # position * div
    pb, pa = -1, -1
    bn, bd, an, ad = 0, 1, 0, 1
    any_rate = False
    for i in range(n):
        p = first + i
        if p >= cap:
            p -= cap
        if times[p, _T_TC] < 0 or times[p, _T_TCNUM] != rnum or times[p, _T_TCDEN] != rden:
            continue
        any_rate = True
        sd = times[p, _T_TCDIV]
        sn = times[p, _T_TC] * sd + times[p, _T_TCSUB]
        c = sn * div - target_num * sd  # sign of (sample - target)
        if c <= 0 and (pb < 0 or sn * bd >= bn * sd):  # ties: the newer sample
            pb, bn, bd = p, sn, sd
        if c >= 0 and (pa < 0 or sn * ad < an * sd):
            pa, an, ad = p, sn, sd
    if not any_rate:
        iout[_I_STATUS] = _S_NOMATCH
        iout[_I_WHY] = _WHY_RATE
    elif pb >= 0 and bn * div == target_num * bd:  # exact
        _copy_into(fout, vals, pb)
        iout[_I_STATUS] = _S_INTERP
        iout[_I_ORD0] = times[pb, _T_ORD]
        iout[_I_ORD1] = iout[_I_ORD0]
        iout[_I_T0] = times[pb, col]
        iout[_I_T1] = iout[_I_T0]
        iout[_I_EVAL] = iout[_I_T0]
    elif pb < 0:
        iout[_I_STATUS] = _S_NOMATCH
        iout[_I_WHY] = _WHY_BEFORE
    elif pa < 0:
        iout[_I_STATUS] = _S_NOMATCH
        iout[_I_WHY] = _WHY_AFTER
    else:
        gap = an / ad - bn / bd
        if gap > max_gap_frames:
            iout[_I_STATUS] = _S_NOMATCH
            iout[_I_WHY] = _WHY_GAP
        else:
            u = (target_num / div - bn / bd) / gap
            _blend_into(fout, vals, pb, pa, u)
            iout[_I_STATUS] = _S_INTERP
            iout[_I_ORD0] = times[pb, _T_ORD]
            iout[_I_ORD1] = times[pa, _T_ORD]
            t0 = times[pb, col]
            t1 = times[pa, col]
            iout[_I_T0] = t0
            iout[_I_T1] = t1
            iout[_I_EVAL] = t0 + np.int64(round(u * (t1 - t0)))
    iout[_I_OK] = 1 if meta[_M_SEQ] == seq0 else 0
    return fout, iout


# ========================================================================================= Python surface
@dataclass(frozen=True, slots=True)
class TimelineCounters:
    """Counters of a timeline, read consistently (one seqlock-checked snapshot).

    ``pushed``: samples stored; ``overwritten``: stored samples later overwritten by the ring;
    ``dropped_out_of_order``: samples older than the newest (on the timeline's clock, or an arrival stamp going
    back); ``dropped_duplicate``: same source / dejittered time as the newest; ``dropped_no_pose``: samples
    without a pose; ``size`` / ``capacity``: samples held now / at most.

    Implausible samples, rejected per reason (module docstring, *Plausibility*): ``rejected_non_finite`` (NaN
    or infinite pose values), ``rejected_out_of_range`` (farther than ``max_distance_m``), ``rejected_speed`` /
    ``rejected_angular_speed`` (out of reach of the last accepted sample), ``rejected_timing`` (own time
    implausible, dejittered clock). ``reacquired``: times the timeline took a run of agreeing samples as a new
    trajectory; ``timing_resyncs``: times the source's clock was followed to a new offset. :attr:`rejected` is
    the total, :attr:`rejected_by_reason` the nonzero counts by name (what a status line shows).
    """

    pushed: int
    overwritten: int
    dropped_out_of_order: int
    dropped_duplicate: int
    dropped_no_pose: int
    size: int
    capacity: int
    rejected_non_finite: int = 0
    rejected_out_of_range: int = 0
    rejected_speed: int = 0
    rejected_angular_speed: int = 0
    rejected_timing: int = 0
    reacquired: int = 0
    timing_resyncs: int = 0

    @property
    def rejected(self) -> int:
        """Samples rejected as implausible, all reasons together."""
        return (self.rejected_non_finite + self.rejected_out_of_range + self.rejected_speed
                + self.rejected_angular_speed + self.rejected_timing)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Nonzero rejection counts by reason: ``non_finite``, ``out_of_range``, ``speed``, ``angular_speed``,
        ``timing`` (e.g. ``{"speed": 3}``)."""
        counts = {"non_finite": self.rejected_non_finite, "out_of_range": self.rejected_out_of_range,
                  "speed": self.rejected_speed, "angular_speed": self.rejected_angular_speed,
                  "timing": self.rejected_timing}
        return {k: v for k, v in counts.items() if v}


class TimelineState(NamedTuple):
    """The result of a timeline query (immutable; a ``NamedTuple`` because it is built every frame and a
    frozen dataclass costs several microseconds more to construct).

    * ``status``: ``"interpolated"``, ``"extrapolated"``, ``"held"``, ``"latest"``, ``"empty"`` or
      ``"no_match"`` (module docstring). ``mode`` / ``clock``: how it was evaluated.
    * ``query_ns``: the instant asked for; ``eval_ns = query_ns - delay_ns``: the instant evaluated (integer ns
      on ``clock``; for a timecode match, the matched sample's time, interpolated).
    * ``position``: ``(x, y, z)`` metres of ``T_tracking_<pose_frame>``; ``quaternion``: ``(w, x, y, z)`` unit;
      ``pan``, ``tilt``, ``roll``: degrees, ``R = Rz(pan) Rx(tilt) Ry(roll)``.
    * ``zoom``, ``focus``, ``iris``: normalised 0..1 (NaN: not sent); ``focal_length_mm``,
      ``focus_distance_m``, ``entrance_pupil_offset_m``: NaN when not sent.
    * ``sample_ids``: push ordinals (0-based count of stored samples) of the two samples used (equal when one
      was used, ``(-1, -1)`` when none); ``sample_times_ns``: their times on ``clock``; ``blend``: the factor
      ``u`` with ``result = s0 + u (s1 - s0)`` (slerp for the rotation); ``u > 1`` when extrapolated.
    * ``age_ns``: ``eval_ns`` minus the newest sample's time on ``clock`` (negative: newer data is buffered;
      ``None`` when empty).
    * ``detail``: why a timecode query found no match (empty otherwise).
    """

    status: str
    mode: str
    clock: str
    query_ns: int
    eval_ns: int
    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    pan: float
    tilt: float
    roll: float
    zoom: float
    focus: float
    iris: float
    focal_length_mm: float
    focus_distance_m: float
    entrance_pupil_offset_m: float
    sample_ids: tuple[int, int]
    sample_times_ns: tuple[int, int]
    blend: float
    age_ns: int | None
    pose_frame: str = FRAME_CAMERA
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the state carries a pose (any status but ``"empty"`` and ``"no_match"``)."""
        return self.status not in (STATUS_EMPTY, STATUS_NO_MATCH)

    @property
    def pose(self) -> Pose:
        """The pose as a :class:`~stagectl.core.sample.Pose` (metres, degrees)."""
        x, y, z = self.position
        return Pose(x=x, y=y, z=z, pan=self.pan, tilt=self.tilt, roll=self.roll)

    def matrix(self) -> np.ndarray:
        """4x4 ``T_tracking_<pose_frame>`` from the quaternion and position (metres)."""
        T = np.eye(4)
        T[:3, :3] = matrix_from_quat(self.quaternion)
        T[:3, 3] = self.position
        return T


def timecode_frame(tc: SampleTimecode | TimebaseTimecode) -> tuple[int, FrameRate]:
    """Frame count since ``00:00:00:00`` and exact rate of a timecode label.

    Drop-frame labels (29.97 / 59.94) subtract the dropped labels like
    :meth:`stagectl.core.timebase.Timecode.to_frame`; a drop-frame flag at any other rate is ignored.
    """
    if isinstance(tc, TimebaseTimecode):
        return tc.to_frame(), tc.rate
    rate = FrameRate(*tc.rate)
    return _tc_count(tc.hours, tc.minutes, tc.seconds, tc.frames, rate.num, rate.den, tc.drop_frame), rate


def _tc_count(h: int, m: int, s: int, f: int, num: int, den: int, drop: bool) -> int:
    nom = -(-num // den)
    total_minutes = 60 * h + m
    n = (60 * total_minutes + s) * nom + f
    if drop and den == 1001 and num in (30000, 60000):
        n -= 2 * (nom // 30) * (total_minutes - total_minutes // 10)
    return n


def _nan(v: float | None) -> float:
    return _NAN if v is None else v


class Timeline:
    """Ring buffer of one camera's tracking samples with time-matched queries (module docstring).

    :param rate: the stage frame rate (exact); delays and the default prediction bound are in its frames.
    :param capacity: samples kept (ring size); about 0.5-1 s of data is the usual choice.
    :param mode: default query mode, ``"interpolate"`` / ``"nearest"`` / ``"latest"``.
    :param clock: the clock samples are ordered and matched on by default: ``"arrival"``, ``"source"`` or
        ``"dejittered"`` (each sample at its own time on the arrival clock; what ``stagectl run`` uses).
    :param delay_frames: tracking delay in (fractional) frames of ``rate``, >= 0; ``pose_at(t)`` evaluates at
        ``t - delay_ns`` with ``delay_ns = rate.frames_to_ns(delay_frames)``.
    :param max_prediction_frames: longest extrapolation past the newest sample, in frames (default 1.5);
        ``max_prediction_ns`` overrides it in ns. 0 disables prediction (newer queries are held).
    :param motion_limits: how fast the camera can really move (:class:`~stagectl.core.sample.MotionLimits`,
        default: a camera on a crane); judges samples and bounds prediction. ``MotionLimits.unlimited()``
        turns every check off.
    :param sample_rate: nominal tracker sample rate for samples that do not state their own
        (``timing.sample_rate``); default ``rate``. Only a lower bound on the time between two captures.
    :param min_pair_fraction: prediction never uses two samples closer than this fraction of the nominal
        sample period (default 0.5).
    :param smoothing: optional One Euro smoothing applied on push.
    :param max_timecode_gap_frames: widest gap (frames) between two samples that timecode matching
        interpolates across.
    :param name: a label for status output.

    Thread safety: one writer thread (:meth:`push`) and any number of reader threads (module docstring).
    """

    def __init__(
        self,
        rate: FrameRate,
        *,
        capacity: int = 256,
        mode: str = "interpolate",
        clock: str = "arrival",
        delay_frames: float | Fraction | int = 0,
        max_prediction_frames: float | Fraction | int = Fraction(3, 2),
        max_prediction_ns: int | None = None,
        smoothing: Smoothing | None = None,
        max_timecode_gap_frames: float = 2.0,
        motion_limits: MotionLimits | None = None,
        sample_rate: FrameRate | None = None,
        min_pair_fraction: float = 0.5,
        name: str = "",
    ) -> None:
        if not isinstance(rate, FrameRate):
            rate = FrameRate.parse(rate)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ValueError(f"Timeline capacity: expected an integer >= 2, got {capacity!r}")
        if mode not in _MODE_CODE:
            raise ValueError(f"Timeline mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if clock not in _CLOCK_COL:
            raise ValueError(f"Timeline clock: expected one of {', '.join(CLOCKS)}, got {clock!r}")
        if not (max_timecode_gap_frames > 0):
            raise ValueError(f"max_timecode_gap_frames: expected > 0, got {max_timecode_gap_frames!r}")
        self.rate = rate
        self.capacity = capacity
        self.mode = mode
        self.clock = clock
        self.name = name
        self.max_timecode_gap_frames = float(max_timecode_gap_frames)
        self.pose_frame: str = FRAME_CAMERA
        self._col = _CLOCK_COL[clock]
        self._times = np.zeros((capacity, _NT), dtype=np.int64)
        self._vals = np.full((capacity, _NV), np.nan)
        self._meta = np.zeros(_NM, dtype=np.int64)
        self._meta[_M_HEAD] = capacity - 1  # the first push goes to slot 0
        self._meta[_M_SRCBREAK] = -1
        self._meta[_M_DJBREAK] = -1
        self._gstate = np.zeros(_NG)
        self._fstate = np.zeros(_NF)
        self._fparams = np.zeros(9)
        self._dropped_no_pose = 0
        self._restart = False
        self._delay_ns = 0
        self.set_delay_frames(delay_frames)
        if max_prediction_ns is None:
            self.max_prediction_ns = rate.frames_to_ns(max_prediction_frames)
        else:
            self.max_prediction_ns = int(max_prediction_ns)
        if self.max_prediction_ns < 0:
            raise ValueError(f"max prediction: expected >= 0, got {self.max_prediction_ns} ns")
        self.smoothing: Smoothing | None = None
        self.set_smoothing(smoothing)
        if not (isinstance(min_pair_fraction, (int, float)) and 0.0 < min_pair_fraction <= 1.0):
            raise ValueError(f"min_pair_fraction: expected a number in (0, 1], got {min_pair_fraction!r}")
        self.sample_rate = rate if sample_rate is None else FrameRate.parse(sample_rate)
        self.min_pair_fraction = float(min_pair_fraction)
        self.motion_limits = MotionLimits()
        self._lim = np.zeros(_NL)
        self.set_motion_limits(MotionLimits() if motion_limits is None else motion_limits)

    # ------------------------------------------------------------------------------------------ settings
    @property
    def delay_ns(self) -> int:
        """Tracking delay in ns (``pose_at(t)`` evaluates at ``t - delay_ns``)."""
        return self._delay_ns

    def set_delay_frames(self, frames: float | Fraction | int) -> int:
        """Set the delay to ``frames`` (fractional) frames of :attr:`rate`; returns the delay in ns.

        Raises ``ValueError`` for a negative delay (a tracking delay can't look ahead: use prediction).
        """
        ns = self.rate.frames_to_ns(frames)
        if ns < 0:
            raise ValueError(f"tracking delay must be >= 0 frames, got {frames}")
        self._delay_ns = ns
        return ns

    def set_delay_ns(self, ns: int) -> None:
        """Set the delay in integer ns (>= 0)."""
        if isinstance(ns, bool) or not isinstance(ns, (int, np.integer)) or ns < 0:
            raise ValueError(f"tracking delay must be integer ns >= 0, got {ns!r}")
        self._delay_ns = int(ns)

    def set_smoothing(self, smoothing: Smoothing | None) -> None:
        """Switch the One Euro smoothing (None: off) from the next pushed sample on; the filter starts afresh
        from that sample. Safe while another thread pushes: the parameters are swapped as one object."""
        params = np.zeros(9)
        if smoothing is not None:
            if smoothing.position is not None:
                p = smoothing.position
                params[_P_PON: _P_PDC + 1] = (1.0, p.min_cutoff_hz, p.beta, p.d_cutoff_hz)
            if smoothing.rotation is not None:
                r = smoothing.rotation
                params[_P_RON: _P_RDC + 1] = (1.0, r.min_cutoff_hz, r.beta, r.d_cutoff_hz)
            params[_P_RESET] = float(smoothing.reset_after_ns)
        self._meta[_M_FINIT] = 0  # the next sample initialises the filter
        self._fparams = params
        self.smoothing = smoothing

    def set_motion_limits(self, limits: MotionLimits) -> None:
        """Judge samples and bound prediction by ``limits`` from the next push / query on (swapped as one
        array, safe while another thread pushes)."""
        if not isinstance(limits, MotionLimits):
            raise TypeError(f"motion limits: expected a MotionLimits, got {type(limits).__name__}")
        lim = np.empty(_NL)
        lim[_L_V] = limits.max_speed_m_s
        lim[_L_A] = limits.max_accel_m_s2
        lim[_L_W] = math.radians(limits.max_angular_speed_deg_s)
        lim[_L_WA] = math.radians(limits.max_angular_accel_deg_s2)
        lim[_L_DIST] = limits.max_distance_m
        lim[_L_FRAC] = self.min_pair_fraction
        lim[_L_PER] = float(self.sample_rate.frames_to_ns(1))
        self._lim = lim
        self.motion_limits = limits

    def restart(self) -> None:
        """Start afresh from the next pushed sample (a switch to another tracking source): it is not judged
        against the old source's poses nor its timing, the smoothing restarts there, and prediction never pairs
        a sample of the old source with one of the new. The buffered samples stay (queries into the past still
        find them). Safe to call from any thread: the writer picks it up at its next push."""
        self._restart = True

    def _take_restart(self) -> bool:
        if self._restart:
            self._restart = False
            return True
        return False

    @property
    def smoothing_latency_ns(self) -> int:
        """Latency the smoothing adds at low speed, ns: ``round(1e9 / (2 pi min_cutoff))`` (0 without it)."""
        return 0 if self.smoothing is None else self.smoothing.latency_ns

    # ------------------------------------------------------------------------------------------ writing
    def push(self, arrival_ns: int, sample: TrackingSample) -> bool:
        """Store one decoded sample stamped ``arrival_ns`` (``time.monotonic_ns()`` at arrival).

        The source time is ``sample.timing.sample_timestamp_ns`` when sent, else ``arrival_ns``. The sample's own
        time for the dejittered clock is that timestamp, else its timecode position (frame + sub-frame) at the
        timecode's exact rate, else none (the dejittered time is then the arrival stamp). Returns False when
        the sample was dropped (no pose, out of order, duplicate, implausible) -- see :meth:`counters`.
        Single writer: call from one thread only.
        """
        pose = sample.pose
        if pose is None:
            self._dropped_no_pose += 1
            return False
        timing = sample.timing
        source_ns = arrival_ns
        own_ns, has_own, period = 0, False, 0
        tc_frame, tc_num, tc_den, tc_sub, tc_div = -1, 0, 0, 0, 1
        if timing is not None:
            if timing.sample_timestamp_ns is not None:
                source_ns = own_ns = timing.sample_timestamp_ns
                has_own = True
            if timing.sample_rate is not None and timing.sample_rate[0] > 0 and timing.sample_rate[1] > 0:
                period = (NS_PER_S * timing.sample_rate[1]) // timing.sample_rate[0]
            tc = timing.timecode
            if tc is not None:
                num, den = tc.rate
                g = math.gcd(num, den)
                tc_num, tc_den = num // g, den // g
                tc_frame = _tc_count(tc.hours, tc.minutes, tc.seconds, tc.frames, tc_num, tc_den, tc.drop_frame)
                tc_sub = tc.sub_frame
                sr = timing.sample_rate
                if sr is not None:
                    # round(sample_rate / tc_rate), half up, exact
                    q = Fraction(sr[0] * tc_den, sr[1] * tc_num)
                    tc_div = max(1, math.floor(q + Fraction(1, 2)))
                tc_div = max(tc_div, tc_sub + 1)
                if not has_own:  # the timecode position in ns: (frame + sub / div) frames of num/den fps
                    own_ns = ((tc_frame * tc_div + tc_sub) * NS_PER_S * tc_den) // (tc_num * tc_div)
                    has_own = True
        zoom = focus = iris = fl = fd = ep = _NAN
        lens = sample.lens
        if lens is not None:
            enc = lens.encoders
            if enc is not None:
                zoom, focus, iris = _nan(enc.zoom), _nan(enc.focus), _nan(enc.iris)
            fl, fd, ep = _nan(lens.focal_length_mm), _nan(lens.focus_distance_m), _nan(lens.entrance_pupil_offset_m)
        self.pose_frame = sample.pose_frame
        return _push_kernel(self._times, self._vals, self._meta, self._fstate, self._fparams, self._gstate,
                            self._lim, self._col, self._take_restart(), arrival_ns, source_ns, own_ns, has_own,
                            period,
                            tc_frame, tc_num, tc_den, tc_sub, tc_div,
                            float(pose.x), float(pose.y), float(pose.z),
                            float(pose.pan), float(pose.tilt), float(pose.roll),
                            zoom, focus, iris, fl, fd, ep) == _R_STORED

    def push_values(
        self,
        arrival_ns: int,
        x: float,
        y: float,
        z: float,
        pan: float,
        tilt: float,
        roll: float,
        *,
        source_ns: int | None = None,
        zoom: float = _NAN,
        focus: float = _NAN,
        iris: float = _NAN,
        focal_length_mm: float = _NAN,
        focus_distance_m: float = _NAN,
        entrance_pupil_offset_m: float = _NAN,
        sample_period_ns: int = 0,
    ) -> bool:
        """Store a pose given as plain numbers (metres, degrees; simulators, tests, benches). Same rules as
        :meth:`push`; no timecode. ``source_ns`` (the sample's own time, if it has one) also feeds the
        dejittered clock; ``sample_period_ns`` is its nominal sample period (0: the timeline's)."""
        src = int(arrival_ns if source_ns is None else source_ns)
        return _push_kernel(self._times, self._vals, self._meta, self._fstate, self._fparams, self._gstate,
                            self._lim, self._col, self._take_restart(), int(arrival_ns), src, src,
                            source_ns is not None,
                            int(sample_period_ns), -1, 0, 0, 0, 1,
                            float(x), float(y), float(z), float(pan), float(tilt), float(roll),
                            float(zoom), float(focus), float(iris),
                            float(focal_length_mm), float(focus_distance_m), float(entrance_pupil_offset_m)) == _R_STORED

    # ------------------------------------------------------------------------------------------ reading
    def _state(self, fo: np.ndarray, io: np.ndarray, mode: str, clock: str, query_ns: int,
               detail: str = "") -> TimelineState:
        f = fo.tolist()
        i = io.tolist()
        status = i[_I_STATUS]
        newest = i[_I_NEWEST]
        eval_ns = i[_I_EVAL]
        return TimelineState(
            _STATUS_NAMES[status], mode, clock, query_ns, eval_ns,
            (f[0], f[1], f[2]), (f[3], f[4], f[5], f[6]), f[13], f[14], f[15],
            f[7], f[8], f[9], f[10], f[11], f[12],
            (i[_I_ORD0], i[_I_ORD1]), (i[_I_T0], i[_I_T1]), f[16],
            None if status == _S_EMPTY else eval_ns - newest,
            self.pose_frame, detail,
        )

    def pose_at(self, t_ns: int, clock: str | None = None, mode: str | None = None) -> TimelineState:
        """The pose for the instant ``t_ns`` (integer ns on ``clock``, default the timeline's), evaluated at
        ``t_ns - delay_ns`` with ``mode`` (default the timeline's). Never blocks; lock-free (seqlock)."""
        clock = self.clock if clock is None else clock
        mode = self.mode if mode is None else mode
        try:
            col = _CLOCK_COL[clock]
            code = _MODE_CODE[mode]
        except KeyError:
            raise ValueError(f"pose_at: clock must be one of {CLOCKS} and mode one of {MODES}, "
                             f"got {clock!r}, {mode!r}") from None
        te = int(t_ns) - self._delay_ns
        times, vals, meta, mp, lim = self._times, self._vals, self._meta, self.max_prediction_ns, self._lim
        for _ in range(_MAX_RETRIES):
            fo, io = _query_kernel(times, vals, meta, te, col, code, mp, lim)
            if io[_I_OK]:
                break
        else:  # pragma: no cover - needs a writer stuck mid-push
            raise RuntimeError("Timeline.pose_at: the writer never finished a push (seqlock stuck)")
        if io[_I_STATUS] == _S_UNSORTED:
            raise ValueError(
                f"Timeline {self.name!r}: the buffer holds samples whose {clock} times go backwards (it orders on "
                f"the {self.clock} clock); query it on clock={self.clock!r} or build it with clock={clock!r}"
            )
        return self._state(fo, io, mode, clock, int(t_ns))

    def latest(self) -> TimelineState:
        """The newest sample (status ``"latest"``, or ``"empty"``), on the timeline's clock, no delay."""
        st = self.pose_at(0, mode="latest")
        if st.status == STATUS_EMPTY:
            return st
        t = st.sample_times_ns[1]
        return TimelineState(st.status, st.mode, st.clock, t, t, st.position, st.quaternion, st.pan, st.tilt,
                             st.roll, st.zoom, st.focus, st.iris, st.focal_length_mm, st.focus_distance_m,
                             st.entrance_pupil_offset_m, st.sample_ids, st.sample_times_ns, st.blend, 0,
                             st.pose_frame)

    def pose_at_timecode(
        self,
        timecode: int | SampleTimecode | TimebaseTimecode,
        rate: FrameRate | tuple[int, int] | None = None,
        *,
        sub_frame: int = 0,
        sub_frames: int = 1,
    ) -> TimelineState:
        """The pose whose timecode is ``timecode`` (sub-frame ``sub_frame`` of ``sub_frames``).

        ``timecode`` is a frame count since ``00:00:00:00`` at ``rate`` (e.g.
        ``stagectl.core.timebase.Timecode.parse("01:00:00;02", "29.97").to_frame()``) or a timecode object (then
        ``rate`` is optional and a sample timecode's own ``sub_frame`` is used, of ``max(sub_frames, sub_frame +
        1)`` divisions -- pass ``sub_frames`` when the source divides frames more finely). Only samples at
        exactly this rate take part. Status: ``"interpolated"`` (exact match: blend 0; or between the neighbours),
        ``"no_match"`` (see ``detail``), ``"empty"``. ``clock`` / ``eval_ns`` are the timeline clock's.
        """
        if isinstance(timecode, (SampleTimecode, TimebaseTimecode)):
            frame, tc_rate = timecode_frame(timecode)
            if isinstance(timecode, SampleTimecode) and timecode.sub_frame:
                sub_frame = timecode.sub_frame
                sub_frames = max(sub_frames, sub_frame + 1)
            if rate is not None and FrameRate.parse(rate) != tc_rate:
                raise ValueError(f"rate {rate} contradicts the timecode's own rate {tc_rate}")
            rate = tc_rate
        else:
            if rate is None:
                raise ValueError("pose_at_timecode: a frame count needs its rate")
            frame = int(timecode)
        rate = FrameRate.parse(rate)
        if sub_frames < 1 or not 0 <= sub_frame < sub_frames:
            raise ValueError(f"sub_frame must be in 0..sub_frames-1, got {sub_frame} of {sub_frames}")
        for _ in range(_MAX_RETRIES):
            fo, io = _timecode_kernel(self._times, self._vals, self._meta, self._col, frame, sub_frame, sub_frames,
                                      rate.num, rate.den, self.max_timecode_gap_frames)
            if io[_I_OK]:
                break
        else:  # pragma: no cover
            raise RuntimeError("Timeline.pose_at_timecode: seqlock stuck")
        detail = ""
        if io[_I_STATUS] == _S_NOMATCH:
            where = f"frame {frame}" + (f" + {sub_frame}/{sub_frames}" if sub_frame else "") + f" at {rate.label} fps"
            why = int(io[_I_WHY])
            if why == _WHY_RATE:
                detail = f"no sample in the buffer carries timecode at {rate.label} fps ({where})"
            elif why == _WHY_BEFORE:
                detail = f"{where} is older than every buffered timecode"
            elif why == _WHY_AFTER:
                detail = f"{where} is newer than every buffered timecode (not received yet)"
            else:
                detail = (f"{where} falls in a gap wider than {self.max_timecode_gap_frames:g} frames between "
                          "buffered timecodes")
        return self._state(fo, io, "timecode", self.clock, int(io[_I_EVAL]), detail)

    # ------------------------------------------------------------------------------------------ inspection
    def _consistent(self, read: Any) -> Any:
        """Run ``read()`` (several Python statements) until no push happened during it (seqlock)."""
        meta = self._meta
        for _ in range(_MAX_RETRIES):
            s0 = int(meta[_M_SEQ])
            if s0 & 1:
                continue
            out = read()
            if int(meta[_M_SEQ]) == s0:
                return out
        raise RuntimeError("Timeline: seqlock stuck")  # pragma: no cover

    def counters(self) -> TimelineCounters:
        """A consistent snapshot of the counters."""
        m = self._consistent(self._meta.copy)
        return TimelineCounters(int(m[_M_PUSHED]), int(m[_M_OVER]), int(m[_M_OOO]), int(m[_M_DUP]),
                                self._dropped_no_pose, int(m[_M_COUNT]), self.capacity,
                                int(m[_M_RNF]), int(m[_M_RRANGE]), int(m[_M_RSPEED]), int(m[_M_RANG]),
                                int(m[_M_RTIME]), int(m[_M_REACQ]), int(m[_M_DJRESYNC]))

    def __len__(self) -> int:
        return int(self._meta[_M_COUNT])

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the buffered samples, oldest first, read consistently (seqlock):
        ``arrival_ns``, ``source_ns``, ``dejittered_ns``, ``ordinal`` (int64); ``position`` (n, 3) m; ``quaternion`` (n, 4);
        ``encoders`` (n, 3) zoom/focus/iris; ``lens`` (n, 3) focal mm / focus distance m / pupil offset m;
        ``timecode_frame`` (-1 absent), ``timecode_rate`` (n, 2), ``timecode_sub`` (n, 2) sub-frame/divisions."""

        def read() -> tuple[np.ndarray, np.ndarray]:
            n = int(self._meta[_M_COUNT])
            head = int(self._meta[_M_HEAD])
            idx = (np.arange(head - n + 1, head + 1)) % self.capacity
            return self._times[idx].copy(), self._vals[idx].copy()

        t, v = self._consistent(read)
        return {
            "arrival_ns": t[:, _T_ARR],
            "source_ns": t[:, _T_SRC],
            "dejittered_ns": t[:, _T_DJ],
            "ordinal": t[:, _T_ORD],
            "position": v[:, _V_X:_V_Z + 1],
            "quaternion": v[:, _V_QW:_V_QZ + 1],
            "encoders": v[:, _V_ZOOM:_V_IRIS + 1],
            "lens": v[:, _V_FL:_V_EP + 1],
            "timecode_frame": t[:, _T_TC],
            "timecode_rate": t[:, _T_TCNUM:_T_TCDEN + 1],
            "timecode_sub": t[:, _T_TCSUB:_T_TCDIV + 1],
        }

    # column views (live, not copies; for tests and tools)
    @property
    def arrival_ns(self) -> np.ndarray:
        """The ring's arrival-stamp column (int64 ns, ring order; live view)."""
        return self._times[:, _T_ARR]

    @property
    def source_ns(self) -> np.ndarray:
        """The ring's source-time column (int64 ns, ring order; live view)."""
        return self._times[:, _T_SRC]

    @property
    def dejittered_ns(self) -> np.ndarray:
        """The ring's dejittered-time column (int64 ns on the arrival clock, ring order; live view)."""
        return self._times[:, _T_DJ]

    def __repr__(self) -> str:
        c = self.counters()
        return (f"Timeline({self.name!r}, {self.rate.label} fps, {c.size}/{c.capacity} samples, mode={self.mode}, "
                f"clock={self.clock}, delay={self._delay_ns} ns)")


def warmup() -> None:
    """Compile (or load from the Numba cache) every kernel, so the first frame does not pay for it."""
    tl = Timeline(FrameRate(24), capacity=4, smoothing=Smoothing(OneEuroParams(), OneEuroParams()))
    for k in range(3):
        tl.push_values(k * 10_000_000, 0.0, 0.0, 0.0, float(k), 0.0, 0.0)
    for mode in MODES:
        tl.pose_at(15_000_000, mode=mode)
    tl.pose_at(40_000_000)
    tl.pose_at_timecode(0, FrameRate(24))
    quat_slerp(quat_from_ptr_deg(0, 0, 0), quat_from_ptr_deg(1, 2, 3), 0.5)
    quat_from_matrix(matrix_from_quat(np.array([1.0, 0.0, 0.0, 0.0])))
