"""3D LUTs: :class:`Lut3D` (a table, its domain and content digest, the numpy reference lookup and the atlas
block the composite shader samples) and the ``.cube`` reader (Resolve/Adobe format) with ``file:line`` errors.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from stagectl.core.errors import ConfigError, ConfigErrors
from stagectl.core.fields import FeatureError


def _triple(value, what: str, *, lo: float | None = None) -> tuple[float, float, float]:
    try:
        t = tuple(float(v) for v in value)
    except TypeError:
        t = (float(value),) * 3
    if len(t) != 3 or not all(math.isfinite(v) for v in t):
        raise FeatureError(f"{what}: expected three finite numbers, got {value!r}")
    if lo is not None and min(t) < lo:
        raise FeatureError(f"{what}: expected values >= {lo:g}, got {value!r}")
    return t  # type: ignore[return-value]


class Lut3D:
    """A 3D LUT: ``table`` (N, N, N, 3) float32 indexed ``[r, g, b]``, input domain ``domain_min`` ..
    ``domain_max`` per channel. Equal (and hashed) by content (:attr:`digest`).

    :meth:`apply` is the reference: input clamped to the domain, normalised to ``t`` in [0, 1], trilinear
    interpolation between the 8 surrounding grid points (``x = t (N - 1)``).
    """

    __slots__ = ("title", "size", "domain_min", "domain_max", "table", "source", "digest")

    def __init__(self, table, *, title: str = "", domain_min=(0.0, 0.0, 0.0), domain_max=(1.0, 1.0, 1.0),
                 source: str = "") -> None:
        t = np.ascontiguousarray(table, dtype=np.float32)
        n = t.shape[0]
        if t.ndim != 4 or t.shape != (n, n, n, 3) or n < 2:
            raise FeatureError(f"3D LUT table must be (N, N, N, 3) with N >= 2, got {t.shape}")
        if not np.all(np.isfinite(t)):
            raise FeatureError("3D LUT table has non-finite values")
        lo = np.asarray(_triple(domain_min, "LUT domain_min"))
        hi = np.asarray(_triple(domain_max, "LUT domain_max"))
        if np.any(hi <= lo):
            raise FeatureError(f"LUT domain_max {tuple(hi)} must exceed domain_min {tuple(lo)}")
        t.setflags(write=False)
        self.table = t
        self.size = n
        self.title = title
        self.domain_min = tuple(float(v) for v in lo)
        self.domain_max = tuple(float(v) for v in hi)
        self.source = source
        h = hashlib.sha1(t.tobytes())
        h.update(np.asarray(self.domain_min + self.domain_max).tobytes())
        self.digest = h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lut3D) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Lut3D({self.title or self.source or 'untitled'!r}, size={self.size})"

    @classmethod
    def identity(cls, size: int = 2) -> Lut3D:
        g = np.linspace(0.0, 1.0, size)
        r, gg, b = np.meshgrid(g, g, g, indexing="ij")
        return cls(np.stack([r, gg, b], axis=-1), title=f"identity {size}")

    @classmethod
    def from_function(cls, fn, size: int = 33, **kw) -> Lut3D:
        """A LUT sampling ``fn`` ((..., 3) -> (..., 3), on the normalised grid ``[0, 1]^3``)."""
        g = np.linspace(0.0, 1.0, size)
        r, gg, b = np.meshgrid(g, g, g, indexing="ij")
        return cls(fn(np.stack([r, gg, b], axis=-1)), **kw)

    def normalise(self, rgb) -> np.ndarray:
        c = np.asarray(rgb, dtype=np.float64)
        lo, hi = np.asarray(self.domain_min), np.asarray(self.domain_max)
        return np.clip((c - lo) / (hi - lo), 0.0, 1.0)

    def apply(self, rgb) -> np.ndarray:
        """Trilinear lookup of ``rgb`` (..., 3) (the reference of the shader's lookup)."""
        t = self.normalise(rgb)
        n = self.size
        x = t * (n - 1)
        i0 = np.minimum(np.floor(x).astype(np.int64), n - 2)
        f = x - i0
        T = self.table.astype(np.float64)
        out = np.zeros(t.shape, dtype=np.float64)
        for dr in (0, 1):
            wr = f[..., 0] if dr else 1.0 - f[..., 0]
            for dg in (0, 1):
                wg = f[..., 1] if dg else 1.0 - f[..., 1]
                for db in (0, 1):
                    wb = f[..., 2] if db else 1.0 - f[..., 2]
                    v = T[i0[..., 0] + dr, i0[..., 1] + dg, i0[..., 2] + db]
                    out += (wr * wg * wb)[..., None] * v
        return out

    def atlas_block(self) -> np.ndarray:
        """The LUT as a 2D image (N, N * N, 3), row 0 = top: row ``g``, column ``r + N * b`` (blue slices side
        by side), the layout the composite shader samples (bilinear in r, g inside a slice, mixed between two
        slices along b)."""
        n = self.size
        # table[r, g, b] -> image[g, b * n + r]
        return np.ascontiguousarray(self.table.transpose(1, 2, 0, 3).reshape(n, n * n, 3))


_CUBE_KEYWORDS = ("TITLE", "LUT_3D_SIZE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE", "LUT_1D_SIZE",
                  "LUT_1D_INPUT_RANGE")
_MAX_CUBE_ERRORS = 20


def parse_cube(text: str, file: str = "<cube>") -> Lut3D:
    """Parse the text of an Adobe / Resolve ``.cube`` 3D LUT.

    Accepted: ``#`` comments and blank lines anywhere; before the data, ``TITLE "..."``, ``LUT_3D_SIZE N``
    (2..256, required), ``DOMAIN_MIN r g b`` / ``DOMAIN_MAX r g b`` (default 0 and 1) or Resolve's
    ``LUT_3D_INPUT_RANGE min max``; then exactly ``N^3`` data lines of three numbers, red changing fastest,
    then green, then blue. Every problem is reported as ``file:LINE: what was expected``
    (:class:`~stagectl.core.errors.ConfigErrors` of :class:`~stagectl.core.errors.ConfigError`).
    """
    errors: list[ConfigError] = []

    def err(line: int | None, key: str, msg: str) -> None:
        if len(errors) < _MAX_CUBE_ERRORS:
            errors.append(ConfigError(file, line, key, msg))

    title = ""
    size: int | None = None
    size_line: int | None = None
    dmin: tuple[float, ...] | None = None
    dmax: tuple[float, ...] | None = None
    dom_line: int | None = None
    rows: list[tuple[float, float, float]] = []
    first_data: int | None = None
    last_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        last_line = lineno
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "#" in line and not line.startswith("TITLE"):
            line = line.split("#", 1)[0].strip()
        head = line.split(None, 1)[0]
        if head[0].isalpha() or head[0] == "_":
            rest = line[len(head):].strip()
            if first_data is not None:
                err(lineno, head, f"keyword after the first data line (line {first_data}); expected a data "
                                  "line of three numbers")
                continue
            if head == "TITLE":
                if len(rest) >= 2 and rest[0] == rest[-1] == '"':
                    title = rest[1:-1]
                else:
                    err(lineno, "TITLE", f'expected TITLE "text in double quotes", got {raw.strip()!r}')
            elif head == "LUT_3D_SIZE":
                try:
                    n = int(rest)
                except ValueError:
                    n = -1
                if not 2 <= n <= 256 or rest != str(n):
                    err(lineno, "LUT_3D_SIZE", f"expected a whole number 2..256, got {rest!r}")
                elif size is not None:
                    err(lineno, "LUT_3D_SIZE", f"given twice (first at line {size_line})")
                else:
                    size, size_line = n, lineno
            elif head in ("DOMAIN_MIN", "DOMAIN_MAX"):
                vals = _numbers(rest, 3)
                if vals is None:
                    err(lineno, head, f"expected three numbers, got {rest!r}")
                elif head == "DOMAIN_MIN":
                    dmin, dom_line = vals, lineno
                else:
                    dmax, dom_line = vals, lineno
            elif head == "LUT_3D_INPUT_RANGE":
                vals = _numbers(rest, 2)
                if vals is None:
                    err(lineno, head, f"expected two numbers (min max), got {rest!r}")
                else:
                    dmin, dmax, dom_line = (vals[0],) * 3, (vals[1],) * 3, lineno
            elif head in ("LUT_1D_SIZE", "LUT_1D_INPUT_RANGE"):
                err(lineno, head, "1D LUTs are not supported; expected a 3D LUT (LUT_3D_SIZE)")
            else:
                err(lineno, head, "unknown keyword; expected one of TITLE, LUT_3D_SIZE, DOMAIN_MIN, DOMAIN_MAX, "
                                  "LUT_3D_INPUT_RANGE, or a data line of three numbers")
            continue
        vals = _numbers(line, 3)
        if vals is None:
            err(lineno, "", f"expected a data line of three numbers, got {raw.strip()!r}")
            continue
        if first_data is None:
            first_data = lineno
            if size is None:
                err(lineno, "LUT_3D_SIZE", "missing before the first data line; expected LUT_3D_SIZE N")
        rows.append(vals)  # type: ignore[arg-type]
    lo = dmin if dmin is not None else (0.0, 0.0, 0.0)
    hi = dmax if dmax is not None else (1.0, 1.0, 1.0)
    if any(h <= l for l, h in zip(lo, hi)):
        err(dom_line, "DOMAIN_MAX", f"expected DOMAIN_MAX {tuple(hi)} above DOMAIN_MIN {tuple(lo)} in every channel")
    if size is None and first_data is None:
        err(last_line or None, "LUT_3D_SIZE", "missing; expected LUT_3D_SIZE N and N^3 data lines")
    if size is not None and not errors and len(rows) != size**3:
        err(last_line, "", f"expected {size}^3 = {size**3} data lines for LUT_3D_SIZE {size} (line {size_line}), "
                           f"got {len(rows)}")
    if errors:
        raise ConfigErrors(errors)
    assert size is not None
    data = np.asarray(rows, dtype=np.float64).reshape(size, size, size, 3)  # [b, g, r]
    return Lut3D(data.transpose(2, 1, 0, 3), title=title, domain_min=lo, domain_max=hi, source=file)


def _numbers(text: str, n: int) -> tuple[float, ...] | None:
    parts = text.split()
    if len(parts) != n:
        return None
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        return None
    return vals if all(math.isfinite(v) for v in vals) else None


def read_cube(path: str | Path, display: str | None = None) -> Lut3D:
    """Read a ``.cube`` file (:func:`parse_cube`); errors name ``display`` (default: the path)."""
    name = display if display is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigErrors([ConfigError(name, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(name, None, "", f"cannot read: {exc}")]) from None
    return parse_cube(text, name)
