"""Brown-Conrady lens distortion in OpenCV's meaning: forward model, numerical inverse, least-squares fits.

Coordinates are **normalised OpenCV camera coordinates** on the ``z = 1`` plane about the principal point:
``x = X_cv / Z_cv`` to the right, ``y = Y_cv / Z_cv`` **down** (OpenCV's ``cv`` frame, docs/conventions.md), unitless.
A pixel is ``u = fx * x + cx``, ``v = fy * y + cy``.

The model maps **undistorted -> distorted** (OpenCV's direction, OpenTrackIO's "Brown-Conrady U-D")::

    r2  = x^2 + y^2
    R   = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    x_d = x R + 2 p1 x y + p2 (r2 + 2 x^2)
    y_d = y R + p1 (r2 + 2 y^2) + 2 p2 x y

:func:`distort` evaluates it (exactly what ``cv2.projectPoints`` does with ``distCoeffs = [k1, k2, p1, p2, k3]``);
:func:`undistort` inverts it numerically (damped Newton, converged to 1e-12 in normalised units).

The same polynomial applied in the reverse direction (distorted -> undistorted, "Brown-Conrady D-U") is a
*different* lens; :func:`apply_reverse` evaluates such a model and :func:`fit_forward` / :func:`fit_reverse` find
the best coefficients of one direction for a sampled map of the other, by linear least squares (the model is
linear in its coefficients once the input points are fixed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BrownConrady",
    "DistortionError",
    "FitResult",
    "distort",
    "undistort",
    "apply_reverse",
    "fit_forward",
    "fit_reverse",
    "fold_radius",
    "frame_border",
    "UNDISTORT_TOL",
]

UNDISTORT_TOL = 1e-12
"""Convergence tolerance of :func:`undistort`: ``|distort(x_u) - x_d| <= 1e-12`` (normalised units)."""


class DistortionError(ValueError):
    """A distortion could not be inverted (points beyond the model's fold, or no convergence)."""


@dataclass(frozen=True, slots=True)
class BrownConrady:
    """Brown-Conrady coefficients, OpenCV meaning and direction (undistorted -> distorted), unitless.

    ``k1, k2, k3`` radial (``r^2, r^4, r^6`` of the normalised radius), ``p1, p2`` tangential, for OpenCV's
    normalised coordinates (x right, y down). ``k1 < 0`` is barrel, ``k1 > 0`` pincushion.
    """

    k1: float = 0.0
    k2: float = 0.0
    k3: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    @property
    def is_zero(self) -> bool:
        """True for a distortion-free (pinhole) lens."""
        return self.k1 == 0.0 and self.k2 == 0.0 and self.k3 == 0.0 and self.p1 == 0.0 and self.p2 == 0.0

    def opencv(self) -> np.ndarray:
        """OpenCV's ``distCoeffs`` vector ``[k1, k2, p1, p2, k3]`` (float64)."""
        return np.array([self.k1, self.k2, self.p1, self.p2, self.k3], dtype=np.float64)

    @classmethod
    def from_opencv(cls, coeffs) -> BrownConrady:
        """From OpenCV's ``[k1, k2, p1, p2[, k3]]``; longer vectors must have zero k4..k6 / prism terms."""
        c = [float(v) for v in np.asarray(coeffs, dtype=np.float64).ravel()]
        if len(c) < 4:
            raise ValueError(f"expected at least 4 OpenCV distortion coefficients, got {len(c)}")
        if any(v != 0.0 for v in c[5:]):
            raise ValueError("OpenCV coefficients beyond k3 (rational, thin-prism, tilt) are not supported")
        return cls(c[0], c[1], c[4] if len(c) > 4 else 0.0, c[2], c[3])

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """``(k1, k2, k3, p1, p2)``."""
        return (self.k1, self.k2, self.k3, self.p1, self.p2)

    def distort(self, xy: np.ndarray) -> np.ndarray:
        """Undistorted -> distorted normalised points; see :func:`distort`."""
        return distort(xy, self)

    def undistort(self, xy: np.ndarray, *, tol: float = UNDISTORT_TOL, max_iter: int = 60) -> np.ndarray:
        """Distorted -> undistorted normalised points; see :func:`undistort`."""
        return undistort(xy, self, tol=tol, max_iter=max_iter)


def _split(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(xy, dtype=np.float64)
    if a.shape[-1:] != (2,):
        raise ValueError(f"expected points of shape (..., 2), got {a.shape}")
    return a[..., 0], a[..., 1]


def _forward(x: np.ndarray, y: np.ndarray, d: BrownConrady) -> tuple[np.ndarray, np.ndarray]:
    r2 = x * x + y * y
    radial = 1.0 + r2 * (d.k1 + r2 * (d.k2 + r2 * d.k3))
    xd = x * radial + 2.0 * d.p1 * x * y + d.p2 * (r2 + 2.0 * x * x)
    yd = y * radial + d.p1 * (r2 + 2.0 * y * y) + 2.0 * d.p2 * x * y
    return xd, yd


def distort(xy: np.ndarray, d: BrownConrady) -> np.ndarray:
    """Apply the distortion: undistorted normalised points ``(..., 2)`` -> distorted ``(..., 2)`` (float64).

    Frame: OpenCV normalised coordinates (x right, y down, unitless), origin at the principal point.
    """
    x, y = _split(xy)
    xd, yd = _forward(x, y, d)
    return np.stack([xd, yd], axis=-1)


def _jacobian(x: np.ndarray, y: np.ndarray, d: BrownConrady) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The symmetric Jacobian ``[[a, b], [b, c]]`` of :func:`distort` at undistorted ``(x, y)``."""
    r2 = x * x + y * y
    radial = 1.0 + r2 * (d.k1 + r2 * (d.k2 + r2 * d.k3))
    dradial = d.k1 + r2 * (2.0 * d.k2 + 3.0 * d.k3 * r2)  # dR / d(r2)
    a = radial + 2.0 * x * x * dradial + 2.0 * d.p1 * y + 6.0 * d.p2 * x
    b = 2.0 * x * y * dradial + 2.0 * d.p1 * x + 2.0 * d.p2 * y
    c = radial + 2.0 * y * y * dradial + 6.0 * d.p1 * y + 2.0 * d.p2 * x
    return a, b, c


def undistort(xy: np.ndarray, d: BrownConrady, *, tol: float = UNDISTORT_TOL, max_iter: int = 60) -> np.ndarray:
    """Invert :func:`distort` numerically: distorted normalised points ``(..., 2)`` -> undistorted ``(..., 2)``.

    Damped Newton iterations with the analytic Jacobian, started at the distorted point, run until every point
    satisfies ``|distort(x_u) - x_d| <= tol`` (Euclidean, normalised units), then polished by one more step (so
    the round trip is at machine precision). Raises :class:`DistortionError` when some point does not converge in
    ``max_iter`` steps or converges onto a branch of the model beyond its fold (Jacobian not positive definite):
    such a point lies outside the region where the distortion is one-to-one.
    """
    xd, yd = _split(xy)
    if d.is_zero:
        return np.stack([xd, yd], axis=-1).copy()
    x, y = xd.copy(), yd.copy()
    fx, fy = _forward(x, y, d)
    ex, ey = fx - xd, fy - yd
    err = np.hypot(ex, ey)
    for _ in range(max_iter):
        if not np.any(err > tol):
            break
        a, b, c = _jacobian(x, y, d)
        det = a * c - b * b
        bad = ~(np.abs(det) > 1e-300)
        det = np.where(bad, 1.0, det)
        sx = (c * ex - b * ey) / det
        sy = (a * ey - b * ex) / det
        sx = np.where(bad, ex, sx)
        sy = np.where(bad, ey, sy)
        step = np.ones_like(x)
        active = err > tol
        for _halving in range(30):
            nx, ny = x - step * sx, y - step * sy
            gx, gy = _forward(nx, ny, d)
            nerr = np.hypot(gx - xd, gy - yd)
            worse = active & ~(nerr < err) & (nerr > tol)
            if not np.any(worse):
                break
            step = np.where(worse, step * 0.5, step)
        x = np.where(active, nx, x)
        y = np.where(active, ny, y)
        ex = np.where(active, gx - xd, ex)
        ey = np.where(active, gy - yd, ey)
        err = np.where(active, nerr, err)
    # one polishing step (kept only where it helps) takes converged points to machine precision
    a, b, c = _jacobian(x, y, d)
    det = a * c - b * b
    safe = np.where(det > 0.0, det, 1.0)
    nx = x - (c * ex - b * ey) / safe
    ny = y - (a * ey - b * ex) / safe
    gx, gy = _forward(nx, ny, d)
    nerr = np.hypot(gx - xd, gy - yd)
    better = (det > 0.0) & (nerr < err)
    x, y, err = np.where(better, nx, x), np.where(better, ny, y), np.where(better, nerr, err)
    # the inverse we want is the branch through the origin, where the (symmetric) Jacobian is positive definite;
    # a root elsewhere lies beyond the fold of the model (e.g. x (1 + k1 x^2) = x_d solved at x < -1/sqrt(-k1))
    failed = ~(err <= tol) | ~(det > 0.0) | ~(a > 0.0)
    if np.any(failed):
        n = int(np.count_nonzero(failed))
        worst = float(np.nanmax(np.where(failed, err, 0.0))) if np.any(np.isfinite(err)) else math.nan
        raise DistortionError(
            f"undistort did not converge for {n} point(s) (worst residual {worst:.3g}); they probably lie beyond "
            f"the radius where this distortion folds over"
        )
    return np.stack([x, y], axis=-1)


def apply_reverse(xy: np.ndarray, d: BrownConrady) -> np.ndarray:
    """Apply the coefficients in the reverse direction ("Brown-Conrady D-U"): distorted -> undistorted.

    Same polynomial as :func:`distort`, evaluated at the *distorted* point; the result is the undistorted point.
    Normalised OpenCV coordinates in and out.
    """
    return distort(xy, d)


# ------------------------------------------------------------------------------------------------ fitting


@dataclass(frozen=True, slots=True)
class FitResult:
    """A least-squares fit of Brown-Conrady coefficients to a sampled map.

    ``rms`` and ``max`` are the Euclidean residuals of the fitted map against the sampled target, in normalised
    units (multiply by the focal length in mm for mm on the sensor, or by ``fx`` for pixels). ``samples`` is the
    number of points fitted.
    """

    distortion: BrownConrady
    rms: float
    max: float
    samples: int


def _design(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Columns for (k1, k2, k3, p1, p2) of the displacement ``model(x) - x``, x rows then y rows."""
    r2 = x * x + y * y
    cols_x = [x * r2, x * r2**2, x * r2**3, 2.0 * x * y, r2 + 2.0 * x * x]
    cols_y = [y * r2, y * r2**2, y * r2**3, r2 + 2.0 * y * y, 2.0 * x * y]
    return np.concatenate([np.stack(cols_x, axis=1), np.stack(cols_y, axis=1)], axis=0)


def _fit(src: np.ndarray, dst: np.ndarray) -> FitResult:
    s = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if s.shape != t.shape or len(s) < 3:
        raise ValueError(f"expected matching point sets of at least 3 points, got {s.shape} and {t.shape}")
    A = _design(s[:, 0], s[:, 1])
    rhs = np.concatenate([t[:, 0] - s[:, 0], t[:, 1] - s[:, 1]])
    scale = np.linalg.norm(A, axis=0)
    scale[scale == 0.0] = 1.0
    coef, *_ = np.linalg.lstsq(A / scale, rhs, rcond=None)
    coef = coef / scale
    d = BrownConrady(k1=float(coef[0]), k2=float(coef[1]), k3=float(coef[2]), p1=float(coef[3]), p2=float(coef[4]))
    res = np.hypot(*(distort(s, d) - t).T)
    return FitResult(d, float(np.sqrt(np.mean(res**2))), float(np.max(res)), len(s))


def fit_forward(undistorted: np.ndarray, distorted: np.ndarray) -> FitResult:
    """Fit U-D coefficients ``d`` so that ``distort(undistorted, d) ~= distorted`` (least squares, normalised)."""
    return _fit(undistorted, distorted)


def fit_reverse(distorted: np.ndarray, undistorted: np.ndarray) -> FitResult:
    """Fit D-U coefficients ``d`` so that ``apply_reverse(distorted, d) ~= undistorted`` (least squares)."""
    return _fit(distorted, undistorted)


# ------------------------------------------------------------------------------------------------ helpers


def fold_radius(d: BrownConrady, r_max: float, samples: int = 4096) -> float | None:
    """Smallest undistorted radius in ``(0, r_max]`` where the radial map ``r R(r)`` stops increasing, or None.

    Radial terms only (the tangential terms of real lenses are far too small to fold the map). Beyond this radius
    the distortion is no longer one-to-one and cannot be inverted.
    """
    r = np.linspace(0.0, r_max, samples + 1)[1:]
    r2 = r * r
    deriv = 1.0 + r2 * (3.0 * d.k1 + r2 * (5.0 * d.k2 + r2 * 7.0 * d.k3))
    bad = np.nonzero(deriv <= 0.0)[0]
    return float(r[bad[0]]) if bad.size else None


def frame_border(extent: tuple[float, float, float, float], per_edge: int = 256) -> np.ndarray:
    """Points on the border of a rectangle, corners included, shape ``(4 * per_edge, 2)``.

    ``extent = (left, right, top, bottom)`` as **positive** distances from the origin in normalised OpenCV
    coordinates: the rectangle is ``x in [-left, right]``, ``y in [-top, bottom]`` (y down).
    """
    left, right, top, bottom = extent
    t = np.linspace(0.0, 1.0, per_edge, endpoint=False)
    xs = -left + t * (left + right)
    ys = -top + t * (top + bottom)
    edges = [
        np.stack([xs, np.full_like(xs, -top)], axis=1),  # top edge, left -> right
        np.stack([np.full_like(ys, right), ys], axis=1),  # right edge, top -> bottom
        np.stack([xs[::-1] + (left + right) / per_edge, np.full_like(xs, bottom)], axis=1),  # bottom, right -> left
        np.stack([np.full_like(ys, -left), ys[::-1] + (top + bottom) / per_edge], axis=1),  # left, bottom -> top
    ]
    return np.concatenate(edges, axis=0)
