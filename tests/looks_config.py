"""An OCIO config with looks for the look tests (tests/test_colour_looks.py, tests/gl/test_looks.py), and the
looks' maths written out in numpy from the published formulas, independent of OpenColorIO.

The config is OCIO's built-in studio config with three looks added:

* ``Warm``: an ASC CDL (no clamp) with saturation, in ``ACEScct`` (the log space colourists grade in);
* ``Show LUT``: a 17-point non-separable ``.cube`` (``show.cube`` beside the config), in ``ACEScct``;
* ``Cool``: a 3x3 matrix in ``ACEScg``.

Colour space conversions come from colour-science (Bradford adaptation, S-2016-001 ACEScct), not from OCIO.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WARM = dict(slope=(1.08, 1.0, 0.9), offset=(0.02, 0.0, -0.015), power=(1.05, 1.0, 0.95), sat=1.15)
COOL = np.array([[0.92, 0.05, 0.03], [0.02, 0.97, 0.01], [0.0, 0.06, 1.1]])
LUT_SIZE = 17


def _show_lut(c: np.ndarray) -> np.ndarray:
    """The ``Show LUT`` function on 0..1 ACEScct (channels mixed, so a wrong axis order shows)."""
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    return np.stack([0.9 * r + 0.08 * g * b + 0.02, 0.95 * g ** 1.1 + 0.04 * r, 0.85 * b + 0.1 * r * g], -1)


def show_lut_table() -> np.ndarray:
    """``[r, g, b, 3]`` table of the cube."""
    x = np.linspace(0.0, 1.0, LUT_SIZE)
    grid = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1)
    return _show_lut(grid)


def write_looks_config(folder: Path) -> Path:
    """Write ``looks.ocio`` (and ``show.cube``) into ``folder``; returns the config's path."""
    import PyOpenColorIO as ocio

    folder = Path(folder)
    t = show_lut_table()
    lines = ["TITLE \"show\"", f"LUT_3D_SIZE {LUT_SIZE}"]
    for b in range(LUT_SIZE):  # .cube: red fastest
        for g in range(LUT_SIZE):
            for r in range(LUT_SIZE):
                lines.append(" ".join(f"{v:.8f}" for v in t[r, g, b]))
    (folder / "show.cube").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = ocio.Config.CreateFromFile("ocio://studio-config-latest")
    cfg.setSearchPath(".")
    cdl = ocio.CDLTransform(slope=list(WARM["slope"]), offset=list(WARM["offset"]), power=list(WARM["power"]),
                            sat=WARM["sat"])
    cdl.setStyle(ocio.CDL_NO_CLAMP)
    cfg.addLook(ocio.Look(name="Warm", processSpace="ACEScct", transform=cdl))
    cfg.addLook(ocio.Look(name="Show LUT", processSpace="ACEScct",
                          transform=ocio.FileTransform(src="show.cube", interpolation=ocio.INTERP_LINEAR)))
    m = [*COOL[0], 0.0, *COOL[1], 0.0, *COOL[2], 0.0, 0.0, 0.0, 0.0, 1.0]
    cfg.addLook(ocio.Look(name="Cool", processSpace="ACEScg", transform=ocio.MatrixTransform(matrix=m)))
    cfg.validate()
    path = folder / "looks.ocio"
    path.write_text(cfg.serialize(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- numpy


def convert(rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Linear RGB between colour spaces named as OCIO's studio config names them (Bradford adaptation)."""
    import colour

    names = {"Linear Rec.709 (sRGB)": "ITU-R BT.709", "ACEScg": "ACEScg", "Linear Rec.2020": "ITU-R BT.2020"}
    if src == dst:
        return np.asarray(rgb, dtype=np.float64)
    return colour.RGB_to_RGB(np.asarray(rgb, dtype=np.float64), colour.RGB_COLOURSPACES[names[src]],
                             colour.RGB_COLOURSPACES[names[dst]], chromatic_adaptation_transform="Bradford")


def acescct_encode(x: np.ndarray) -> np.ndarray:
    """ACEScct from ACEScg linear (Academy S-2016-001)."""
    x = np.asarray(x, dtype=np.float64)
    lin = 10.5402377416545 * x + 0.0729055341958355
    log = (np.log2(np.maximum(x, 1e-30)) + 9.72) / 17.52
    return np.where(x <= 0.0078125, lin, log)


def acescct_decode(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    lin = (y - 0.0729055341958355) / 10.5402377416545
    log = 2.0 ** (y * 17.52 - 9.72)
    return np.where(y <= 0.155251141552511, lin, log)


def warm(acescg: np.ndarray) -> np.ndarray:
    """The ``Warm`` look on ACEScg light: to ACEScct, the CDL (ASC v1.2 maths without the clamp: slope,
    offset, power of the positive part, saturation with Rec. 709 luma weights), back."""
    c = acescct_encode(acescg)
    c = c * np.array(WARM["slope"]) + np.array(WARM["offset"])
    c = np.where(c > 0.0, np.abs(c) ** np.array(WARM["power"]), c)
    luma = c @ np.array([0.2126, 0.7152, 0.0722])
    c = luma[..., None] + WARM["sat"] * (c - luma[..., None])
    return acescct_decode(c)


def trilinear(table: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Trilinear lookup of ``table[r, g, b, 3]`` (domain 0..1, input clamped)."""
    n = table.shape[0]
    x = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0) * (n - 1)
    i0 = np.minimum(np.floor(x).astype(int), n - 2)
    f = x - i0
    out = np.zeros(x.shape, dtype=np.float64)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = ((f[..., 0] if dr else 1 - f[..., 0]) * (f[..., 1] if dg else 1 - f[..., 1])
                     * (f[..., 2] if db else 1 - f[..., 2]))
                out += w[..., None] * table[i0[..., 0] + dr, i0[..., 1] + dg, i0[..., 2] + db]
    return out


def show_lut(acescg: np.ndarray) -> np.ndarray:
    """The ``Show LUT`` look on ACEScg light."""
    return acescct_decode(trilinear(show_lut_table(), acescct_encode(acescg)))


def cool(acescg: np.ndarray) -> np.ndarray:
    return np.asarray(acescg, dtype=np.float64) @ COOL.T


LOOKS = {"Warm": warm, "Show LUT": show_lut, "Cool": cool}


def reference(rgb: np.ndarray, stage_space: str, looks, working_space: str | None = None, grade=None):
    """A wall's or camera's light in numpy: ``stage_space`` -> ``working_space``, the looks in order (each in
    its process space: ACEScg light in, ACEScg light out), ``grade`` (a callable on working-space light, e.g.
    ``ColorCorrection.apply``), back to ``stage_space``."""
    space = working_space or stage_space
    c = convert(rgb, stage_space, space)
    for name in looks:
        c = convert(LOOKS[name](convert(c, space, "ACEScg")), "ACEScg", space)
    if grade is not None:
        c = np.asarray(grade(c), dtype=np.float64)
    return convert(c, space, stage_space)
