"""The composite shader's uniforms of a frame: :func:`composite_uniforms` (the inner frusta and the outer
atlas) and :func:`feature_uniforms` (the stage features: light cards, colour correction and LUTs, the walls'
and cameras' OCIO looks, chroma key, markers). Pure functions of plain data (no GL); the arrays are float32,
ready to upload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from stagectl.color.stagefile import looks_of
from stagectl.core.features import MAX_CARDS, MAX_WALLS, FeatureState
from stagectl.core.fields import FeatureError
from stagectl.render.passes import CompositeUniforms, FeatureUniforms, InnerPass, OuterPass, PlanError
from stagectl.stage.model import Stage

__all__ = ["feature_uniforms", "composite_uniforms"]

def _cc_arrays(cc, lut_rows: dict[str, tuple[int, int]]):
    """(gain, slope, offset, power, sat, cdl on, lut (4,), lut min (3,), lut inv (3,)) of a colour correction
    (identity for None)."""
    if cc is None:
        return ((1.0,) * 3, (1.0,) * 3, (0.0,) * 3, (1.0,) * 3, 1.0, 0.0, (0.0, 2.0, 0.0, 0.0), (0.0,) * 3,
                (1.0,) * 3)
    lut = (0.0, 2.0, 0.0, 0.0)
    lmin, linv = (0.0,) * 3, (1.0,) * 3
    if cc.lut is not None:
        y0, n = lut_rows[cc.lut.digest]
        lut = (float(y0), float(n), 1.0, 0.0)
        lmin = cc.lut.domain_min
        linv = tuple(1.0 / (h - l) for l, h in zip(cc.lut.domain_min, cc.lut.domain_max))
    return (cc.gain, cc.slope, cc.offset, cc.power, cc.saturation, 1.0 if cc.has_cdl else 0.0, lut, lmin, linv)


def feature_uniforms(stage: Stage, fs: FeatureState, outputs: Sequence[str] | None = None) -> FeatureUniforms:
    """The composite shader's feature uniforms for ``fs`` on ``stage`` (pure; see :class:`FeatureUniforms`).

    Raises :class:`PlanError` for a wall or output the stage does not have, or for a per-wall feature on a
    stage of more than ``MAX_WALLS`` walls.
    """
    walls = [w.name for w in stage.walls]
    try:
        fs.check(walls, outputs if outputs is not None else [f"{p.name}/{o.name}" for p, o in stage.outputs()])
    except FeatureError as exc:
        raise PlanError(str(exc)) from None
    index = {n: i for i, n in enumerate(walls)}
    per_wall = bool(fs.wall_color) or (fs.key_enabled and fs.chroma_key.markers is not None)
    if per_wall and len(walls) > MAX_WALLS:
        raise PlanError(f"per-wall colour correction and markers handle at most {MAX_WALLS} walls; the stage has "
                        f"{len(walls)}")
    defines: list[str] = []
    # ---- light cards: under first, then over, each in list order
    cards = [c for c in fs.light_cards if c.layer == "under"] + [c for c in fs.light_cards if c.layer == "over"]
    card_rect = np.zeros((MAX_CARDS, 4), dtype=np.float32)
    card_color = np.zeros((MAX_CARDS, 4), dtype=np.float32)
    card_inv = np.zeros(MAX_CARDS, dtype=np.float32)
    entries = []
    for k, c in enumerate(cards):
        wi = index[c.wall]
        rect = c.raster_rect(stage.walls[wi].raster)
        card_rect[k] = rect
        card_color[k] = (*c.rgb, wi)
        card_inv[k] = 1.0 / c.feather_px if c.feather_px > 0 else 0.0
        entries.append((wi, tuple(float(v) for v in card_rect[k]), tuple(float(v) for v in card_color[k, :3]),
                        float(card_inv[k]), c.layer))
    if cards:
        defines.append("CARDS")
    # ---- colour correction and the LUT atlas
    key_on = fs.key_enabled
    luts = []
    for _, cc in fs.wall_color:
        if cc.lut is not None:
            luts.append(cc.lut)
    if fs.inner_color is not None and fs.inner_color.lut is not None and not key_on:
        luts.append(fs.inner_color.lut)
    lut_rows: dict[str, tuple[int, int]] = {}
    blocks = []
    y = 0
    for lut in luts:
        if lut.digest in lut_rows:
            continue
        lut_rows[lut.digest] = (y, lut.size)
        blocks.append((y, lut.atlas_block()))
        y += lut.size
    lut_atlas = None
    if blocks:
        width = max(b.shape[1] for _, b in blocks)
        lut_atlas = np.zeros((y, width, 4), dtype=np.float32)
        lut_atlas[..., 3] = 1.0
        for y0, b in blocks:
            lut_atlas[y0:y0 + b.shape[0], :b.shape[1], :3] = b
    W = MAX_WALLS
    wall = {k: np.zeros((W, 3), np.float32) for k in ("gain", "slope", "offset", "power", "lut_min", "lut_inv")}
    wall_sat = np.ones(W, np.float32)
    wall_cdl = np.zeros(W, np.float32)
    wall_lut = np.zeros((W, 4), np.float32)
    ident = _cc_arrays(None, lut_rows)
    for w in range(min(len(walls), W)):
        arr = _cc_arrays(fs.color_of(walls[w]), lut_rows)
        for k, v in zip(("gain", "slope", "offset", "power"), arr[:4]):
            wall[k][w] = v
        wall_sat[w], wall_cdl[w], wall_lut[w] = arr[4], arr[5], arr[6]
        wall["lut_min"][w], wall["lut_inv"][w] = arr[7], arr[8]
    for w in range(min(len(walls), W), W):
        for k, v in zip(("gain", "slope", "offset", "power"), ident[:4]):
            wall[k][w] = v
        wall_lut[w] = ident[6]
        wall["lut_inv"][w] = ident[8]
    wall_ccs = [cc for _, cc in fs.wall_color]
    if any(cc.gain != (1.0, 1.0, 1.0) or cc.has_cdl for cc in wall_ccs):
        defines.append("WALL_CC")
    if any(cc.lut is not None for cc in wall_ccs):
        defines.append("WALL_LUT")
    icc = fs.inner_color if not key_on else None
    inner = _cc_arrays(icc, lut_rows)
    if icc is not None and (icc.gain != (1.0, 1.0, 1.0) or icc.has_cdl):
        defines.append("INNER_CC")
    if icc is not None and icc.lut is not None:
        defines.append("INNER_LUT")
    # ---- chroma key and markers
    key_color = np.zeros(3, np.float32)
    marker_color = np.zeros(3, np.float32)
    marker_grid = np.zeros((W, 4), np.float32)
    marker_size = np.zeros((W, 4), np.float32)
    marker_grid[:, :2] = 1.0
    if key_on:
        defines.append("KEY")
        key_color[:] = fs.chroma_key.linear_color
        mk = fs.chroma_key.markers
        if mk is not None:
            defines.append("MARKERS")
            marker_color[:] = mk.linear_color
            for w, wl in enumerate(stage.walls[:W]):
                pitch = (wl.cabinet.size_mm[0] / 1000.0 / wl.cabinet.pixels[0],
                         wl.cabinet.size_mm[1] / 1000.0 / wl.cabinet.pixels[1])
                sp, hs, ht = mk.pixels(pitch)
                marker_grid[w, :2] = sp
                marker_size[w] = (*hs, *ht)
    # ---- OCIO looks of the walls and the cameras (stage file colour: walls / cameras); one switched off keeps
    # its working space (the grade still runs there), without the looks
    def looks(kind: str, prefix: str) -> list:
        got = []
        for n, spec in sorted(looks_of(stage, kind).items()):
            if f"{prefix}:{n}" in fs.looks_off:
                spec = replace(spec, looks=())
            if not spec.is_identity:
                got.append((n, spec))
        return got

    wall_looks = tuple((index[n], spec) for n, spec in looks("walls", "wall"))
    camera_looks = () if key_on else tuple(looks("cameras", "camera"))
    outer_key = tuple(
        (index[n], cc.gain, cc.slope, cc.offset, cc.power, cc.saturation, cc.lut.digest if cc.lut else None)
        for n, cc in fs.wall_color
    ) + tuple(("look", w, spec) for w, spec in wall_looks)
    f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
    return FeatureUniforms(
        state=fs,
        defines=tuple(defines),
        cards=tuple(entries),
        card_rect=card_rect,
        card_color=card_color,
        card_inv_feather=card_inv,
        cards_under=sum(1 for c in cards if c.layer == "under"),
        cards_total=len(cards),
        wall_gain=wall["gain"], wall_slope=wall["slope"], wall_offset=wall["offset"], wall_power=wall["power"],
        wall_sat=wall_sat, wall_cdl=wall_cdl, wall_lut=wall_lut, wall_lut_min=wall["lut_min"],
        wall_lut_inv=wall["lut_inv"],
        inner_gain=f32(inner[0]), inner_slope=f32(inner[1]), inner_offset=f32(inner[2]), inner_power=f32(inner[3]),
        inner_sat=float(inner[4]), inner_cdl=float(inner[5]), inner_lut=f32(inner[6]), inner_lut_min=f32(inner[7]),
        inner_lut_inv=f32(inner[8]),
        lut_atlas=lut_atlas,
        lut_key=tuple(lut_rows),
        key_color=key_color,
        marker_color=marker_color,
        marker_grid=marker_grid,
        marker_size=marker_size,
        outer_key=outer_key,
        wall_grades=tuple((index[n], cc) for n, cc in fs.wall_color),
        inner_grade=icc,
        wall_looks=wall_looks,
        camera_looks=camera_looks,
    )


def composite_uniforms(inner: Sequence[InnerPass], outer: OuterPass) -> CompositeUniforms:
    """The composite program's uniforms for inner passes (composition order) and the outer atlas."""
    n = len(inner)
    vp = np.zeros((n, 4, 4), dtype=np.float32)
    inv = np.zeros(n, dtype=np.float32)
    for i, p in enumerate(inner):
        vp[i] = p.VP
        inv[i] = 1.0 / max(p.soft_edge, 1e-9)
    rot = np.stack([f.rotation for f in outer.all_faces]).astype(np.float32)
    origin = np.array([f.origin for f in outer.all_faces], dtype=np.float32)
    return CompositeUniforms(
        inner_vp=vp,
        inv_soft_edge=inv,
        outer_eye=np.asarray(outer.viewpoint, dtype=np.float32),
        face_rotation=rot,
        face_origin=origin,
        face_size=float(outer.face_size),
        atlas_size=outer.atlas_size,
        inner_cameras=tuple(p.camera for p in inner),
    )
