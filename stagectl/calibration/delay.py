"""Tracking delay from a take: cross-correlate the tracked angular rate with the measured image motion.

Capture: the camera, genlocked and tracked, pans back and forth over a static, textured view (the LED wall
showing a still image, or the set) for 10-30 s, varying speed (a few seconds per swing, some quick reversals);
the take records the tracking, the camera records the video.

Signals (docs/reference/CALIBRATION_AND_TIMING.md section 3.3)
-----------------------------------------------------------------
* **Tracking**: per pair of consecutive samples the rotation ``R_k^T R_k+1`` of the camera frame (``R =
  R_tracking_body @ R_body_camera``), as a rotation vector over the time step: the angular rate in the camera
  frame; its component about the camera's **+Z** (image up) is the pan rate ``omega`` (deg/s, positive =
  turning left), stamped at the pair's mid-time.
* **Image**: per pair of consecutive frames the horizontal shift of the static content, ``cv2.phaseCorrelate``
  (Hanning window) of the greyscale frames: ``dx`` px per frame, positive = content moving right, stamped at
  the pair's mid-time. A camera turning left moves the content right, so ``dx`` follows ``+omega``.

Estimate
--------
The image shows the world **later** than the tracking reports it: ``dx(t) ~ omega(t - d)``. The normalised
cross-correlation ``c(tau) = corr(dx(t), omega(t - tau))`` (``omega`` linearly interpolated at ``t - tau``, only
overlapping samples) is evaluated at whole-frame lags ``-max_lag .. max_lag``; the argmax is refined by a
parabola through it and its two neighbours, then once more by a parabola over a 0.05-frame grid around that
(``c`` is evaluated at any lag directly, so the second step removes the parabola's bias). ``d`` in frames is
what the stage file's ``tracking[].delay_frames`` holds (``pose_at(t)`` evaluates the tracking at ``t - d``); a
negative ``d`` means the video is later than the image path can be delayed by tracking delay alone.

Times: tracking samples carry the take's arrival stamps (``monotonic`` ns). Video frames are placed on the
same clock by a list of capture stamps when there is one, otherwise at ``t0 + k * period`` with ``t0`` the first
tracking sample (capture and take started together; the result says which).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stagectl.calibration import CalibrationError

__all__ = [
    "DelayResult",
    "image_motion",
    "read_frames",
    "angular_rate",
    "take_poses",
    "estimate_delay",
    "correlation",
]


@dataclass
class DelayResult:
    """Delay ``d`` of the image behind the tracking (frames and ms) with its evidence."""

    delay_frames: float
    delay_ms: float
    period_s: float
    peak_correlation: float
    integer_lag: int
    parabola_lag: float
    lags: np.ndarray
    corr: np.ndarray
    samples: int
    sign_flipped: bool = False
    image_t: np.ndarray | None = None
    image_dx: np.ndarray | None = None
    track_t: np.ndarray | None = None
    track_rate: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "delay_frames": self.delay_frames,
            "delay_ms": self.delay_ms,
            "meaning": "the image lags the tracking by this much: the stage file's tracking[].delay_frames",
            "frame_period_ms": self.period_s * 1000.0,
            "peak_correlation": self.peak_correlation,
            "integer_lag_frames": self.integer_lag,
            "parabola_lag_frames": self.parabola_lag,
            "samples": self.samples,
            "sign_flipped": self.sign_flipped,
            "correlation": {"lags_frames": [float(v) for v in self.lags], "values": [float(v) for v in self.corr]},
        }


# ============================================================================================== image motion


def read_frames(source: str | Path, *, max_frames: int | None = None) -> Iterable[np.ndarray]:
    """Greyscale frames from a folder of images (natural name order) or a video file (``cv2.VideoCapture``)."""
    from stagectl.calibration.lens import list_images, load_gray

    p = Path(source)
    if p.is_dir():
        paths = list_images(p)
        if not paths:
            raise CalibrationError(f"{p}: no frames")
        for i, q in enumerate(paths):
            if max_frames is not None and i >= max_frames:
                return
            yield load_gray(q)
        return
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise CalibrationError(f"{p}: cannot open the video (or it is not a folder of frames)")
    try:
        i = 0
        while max_frames is None or i < max_frames:
            ok, img = cap.read()
            if not ok:
                break
            yield cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
            i += 1
    finally:
        cap.release()


def image_motion(frames: Iterable[np.ndarray], *, downscale: int = 1, roi=None) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal shift of the content between consecutive frames, px per frame (positive = moving right), and
    the phase-correlation response (0..1; low = unreliable) of each pair. ``roi = (x, y, w, h)`` crops first;
    ``downscale`` shrinks by an integer factor (shifts are returned in full-resolution pixels)."""
    prev = None
    window = None
    dx, resp = [], []
    for img in frames:
        g = img
        if roi is not None:
            x, y, w, h = roi
            g = g[y:y + h, x:x + w]
        g = g.astype(np.float32)
        if downscale > 1:
            g = cv2.resize(g, (g.shape[1] // downscale, g.shape[0] // downscale), interpolation=cv2.INTER_AREA)
        if window is None:
            window = cv2.createHanningWindow((g.shape[1], g.shape[0]), cv2.CV_32F)
        if prev is not None:
            (sx, _), r = cv2.phaseCorrelate(prev, g, window)
            dx.append(sx * downscale)
            resp.append(r)
        prev = g
    return np.array(dx, dtype=np.float64), np.array(resp, dtype=np.float64)


# ============================================================================================== tracking


def angular_rate(t_s: np.ndarray, R_tracking_camera: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pan rate about the camera's +Z (deg/s, positive = turning left) between consecutive samples, stamped at
    their mid-times: ``(t_mid, omega_z)``. Repeated time stamps are dropped."""
    t = np.asarray(t_s, dtype=np.float64)
    out_t, out_w = [], []
    for k in range(len(t) - 1):
        dt = t[k + 1] - t[k]
        if not dt > 0:
            continue
        rv = cv2.Rodrigues(np.ascontiguousarray(R_tracking_camera[k].T @ R_tracking_camera[k + 1]))[0].ravel()
        out_t.append(0.5 * (t[k] + t[k + 1]))
        out_w.append(math.degrees(rv[2]) / dt)
    return np.array(out_t), np.array(out_w)


def take_poses(path: str | Path, *, source: str | None = None, profile=None) -> tuple[np.ndarray, list[np.ndarray], str]:
    """Tracker poses of a take: ``(arrival times s (monotonic), [T_tracking_<frame>], frame name)``.

    FreeD records decode to ``T_tracking_body``; OpenTrackIO to ``T_tracking_camera``. ``source`` picks one of the
    take's sources by name (default: the first that has poses).
    """
    from stagectl.tracking.codecs import decode_freed_sample, decode_packet
    from stagectl.tracking.errors import DecodeError
    from stagectl.tracking.recording import TakeFormatError, load_take

    try:
        take = load_take(path)
    except (OSError, TakeFormatError) as exc:
        raise CalibrationError(f"{path}: cannot read the take: {exc}") from None
    by_source: dict[str, tuple[list, list, str]] = {}
    for rec in take.records:
        if source is not None and rec.source != source:
            continue
        try:
            if rec.protocol == "freed":
                s = decode_freed_sample(rec.data, profile)
            elif rec.protocol == "opentrackio":
                s = decode_packet(rec.data)
            else:
                continue
        except DecodeError:
            continue
        if s.pose is None:
            continue
        ts, Ts, _ = by_source.setdefault(rec.source, ([], [], s.pose_frame))
        ts.append(rec.arrival_ns)
        Ts.append(s.pose.matrix())
    if not by_source:
        raise CalibrationError(f"{path}: no decodable poses" + (f" from source {source!r}" if source else ""))
    name = next(iter(by_source))
    ts, Ts, frame = by_source[name]
    t = (np.array(ts, dtype=np.int64) - ts[0]).astype(np.float64) / 1e9 + ts[0] / 1e9
    return t, Ts, frame


# ============================================================================================== estimate


def correlation(img_t: np.ndarray, img_v: np.ndarray, trk_t: np.ndarray, trk_w: np.ndarray, tau_s: float) -> tuple[float, int]:
    """Pearson correlation of ``img_v(t)`` with ``trk_w(t - tau)`` over the overlap, and the samples used."""
    te = img_t - tau_s
    m = (te >= trk_t[0]) & (te <= trk_t[-1])
    n = int(np.count_nonzero(m))
    if n < 8:
        return math.nan, n
    a = img_v[m] - img_v[m].mean()
    b = np.interp(te[m], trk_t, trk_w)
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return (float(a @ b) / den if den > 0 else math.nan), n


def _parabola(cm: float, c0: float, cp: float) -> float:
    den = cm - 2.0 * c0 + cp
    return 0.0 if den >= 0 or not math.isfinite(den) else 0.5 * (cm - cp) / den


def estimate_delay(
    img_t: np.ndarray, img_dx: np.ndarray, trk_t: np.ndarray, trk_rate: np.ndarray, period_s: float, *,
    max_lag_frames: int = 15, weights: np.ndarray | None = None,
) -> DelayResult:
    """Delay of the image behind the tracking (module docstring). Times in seconds on one clock.

    ``img_t, img_dx``: image shift per frame pair and its mid-time; ``trk_t, trk_rate``: pan rate and its
    mid-time; ``weights`` (e.g. phase-correlation responses) drop image samples with weight < 0.05.
    """
    img_t = np.asarray(img_t, dtype=np.float64)
    img_v = np.asarray(img_dx, dtype=np.float64)
    if weights is not None:
        keep = np.asarray(weights) >= 0.05
        img_t, img_v = img_t[keep], img_v[keep]
    order = np.argsort(trk_t)
    trk_t = np.asarray(trk_t, dtype=np.float64)[order]
    trk_w = np.asarray(trk_rate, dtype=np.float64)[order]
    if len(img_t) < 16 or len(trk_t) < 16:
        raise CalibrationError(f"too short: {len(img_t)} image and {len(trk_t)} tracking samples; record 10-30 s")
    if float(np.std(trk_w)) < 1e-3 or float(np.std(img_v)) < 1e-3:
        raise CalibrationError("no motion to correlate: pan the camera back and forth during the take")
    lags = np.arange(-max_lag_frames, max_lag_frames + 1)
    corr = np.array([correlation(img_t, img_v, trk_t, trk_w, k * period_s)[0] for k in lags])
    if not np.any(np.isfinite(corr)):
        raise CalibrationError("the take and the video do not overlap in time")
    warnings: list[str] = []
    sign = 1.0
    c_fin = np.where(np.isfinite(corr), corr, 0.0)
    if -c_fin.min() > c_fin.max():
        sign = -1.0
        warnings.append("the image moves against the tracked pan (negative correlation): check the tracker's pan "
                        "sign (FreeD pans right-positive) and the camera orientation; used |correlation|")
    c = sign * c_fin
    i = int(np.argmax(c))
    if i in (0, len(lags) - 1):
        warnings.append(f"the correlation peaks at the edge of the search (+-{max_lag_frames} frames): widen "
                        f"--max-lag or check the frame times")
    k0 = int(lags[i])
    p1 = k0 + (_parabola(c[i - 1], c[i], c[i + 1]) if 0 < i < len(lags) - 1 else 0.0)
    fine = np.arange(-10, 11) * 0.05 + p1
    cf = np.array([sign * correlation(img_t, img_v, trk_t, trk_w, tau * period_s)[0] for tau in fine])
    j = int(np.nanargmax(cf))
    if 0 < j < len(fine) - 1:
        step = fine[1] - fine[0]
        d = float(fine[j] + step * _parabola(cf[j - 1], cf[j], cf[j + 1]))
    else:
        d = float(fine[j])
    peak, n = correlation(img_t, img_v, trk_t, trk_w, d * period_s)
    peak *= sign
    if peak < 0.5:
        warnings.append(f"weak correlation peak ({peak:.2f}): more texture in view, faster pans, or a longer take")
    if d < -0.1:
        warnings.append(f"negative delay ({d:.2f} frames): the image leads the tracking; delay the video or check "
                        f"the frame times")
    return DelayResult(d, d * period_s * 1000.0, period_s, float(peak), k0, float(p1), lags.astype(np.float64), corr,
                       n, sign < 0, img_t, img_v, trk_t, trk_w, warnings)
