"""Test-pattern data made in numpy: ArUco marker bits and cabinet-ID labels per cabinet, a 5 x 7 bitmap font,
75 % colour bars, burn-in text; and a numpy reference of every pattern at wall raster resolution.

The composite shader (``PATTERN`` variants of ``shaders/composite.frag``) draws the patterns per fragment from
its wall raster position (docs/conventions.md: raster ``(0, 0)`` top-left, y down, pixel centre ``+0.5``), so
mappings, rotations and curved walls need nothing special. Where a texture is easier than shader code — marker
bits and label glyphs — this module builds a small **cell atlas**: one cell of ``cw x ch`` texels per cabinet,
the cells of a wall side by side like its cabinets, walls stacked top to bottom. A cell is drawn inside its
cabinet magnified by a whole number ``scale`` (pixels per texel) at a whole-pixel ``offset`` from the cabinet's
top-left corner: cabinet-local pixel ``(lx, ly)`` shows cell texel ``floor(((lx, ly) - offset) / scale)`` when
that lies inside the cell, the pattern's background otherwise.

Patterns (all in wall raster space; 8-bit sRGB codes on the canvas):

* ``checkerboard``: squares of ``(pw / squares, ph / squares)`` pixels (``pw x ph`` the cabinet's pixels),
  white (255) where ``floor(x / sx) + floor(y / sy)`` is even (the wall's top-left square is white), black
  elsewhere.
* ``color_bars``: 75 % bars (the top row of SMPTE EG 1 / EBU bars, 75 % amplitude of the *encoded* signal:
  code 191): white, yellow, cyan, green, magenta, red, blue, seven equal bars across the wall's width, bar
  ``floor(7 x / W)``. Codes in :data:`COLOR_BARS_75`.
* ``solid``: one linear colour, sRGB-encoded like the composition.
* ``aruco``: one ArUco marker per cabinet (``DICT_6X6_1000``: 6 x 6 data bits plus a one-module black border,
  8 x 8 modules), black on white; module size ``m = floor(min(pw, ph) / 10)`` pixels (so at least one module
  of white quiet zone surrounds it inside the cabinet), centred: ``offset = ((pw - 8m) // 2, (ph - 8m) // 2)``.
  Marker id (:func:`aruco_marker_id`): cabinets numbered through the stage, walls in stage order, rows top to
  bottom, columns left to right: ``id = sum(cols_k * rows_k for walls k < w) + row * cols_w + col``; at most
  1000 cabinets (the dictionary's size).
* ``cabinet_id``: dark grey cabinets (codes 40 and 72, alternating like a checkerboard of cabinets), a one-pixel
  white outline on each cabinet's edge pixels, and a white label centred in the cabinet: the wall's name (upper
  case, at most 8 characters) over ``"col,row"``, in the 5 x 7 font, scale ``floor(0.8 min(pw / cw, ph / ch))``
  (at least 1).
* burn-in (any pattern, also over the normal composition): white text on a black box filling the top-left
  cabinet of every mapping of the output, lines ``F0001234`` (frame counter) and ``HH:MM:SS:FF`` (timecode at
  the stage's rate, non-drop-frame), scale as the cabinet label (:func:`burn_in_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stagectl.core.fields import FeatureError
from stagectl.core.grade import srgb_encode

__all__ = [
    "ARUCO_DICTIONARY",
    "ARUCO_MODULES",
    "ARUCO_QUIET_MODULES",
    "COLOR_BARS_75",
    "CABINET_ID_CODES",
    "FONT_5X7",
    "GLYPH_W",
    "GLYPH_H",
    "text_bitmap",
    "aruco_dictionary",
    "aruco_marker_id",
    "aruco_cabinet",
    "aruco_marker_bits",
    "CellAtlas",
    "aruco_atlas",
    "cabinet_id_atlas",
    "cabinet_label",
    "burn_in_lines",
    "burn_in_layout",
    "pattern_raster",
    "burn_in_raster",
]

#: OpenCV's predefined dictionary used for the wall-registration markers.
ARUCO_DICTIONARY = "DICT_6X6_1000"
ARUCO_MODULES = 8  # 6 data bits + a one-module border each side
ARUCO_QUIET_MODULES = 1  # at least this many white modules around each marker, inside its cabinet
#: 75 % colour bars, 8-bit sRGB codes, left to right.
COLOR_BARS_75 = (
    (191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191),
)
#: cabinet-ID pattern codes: background (even, odd cabinet parity), outline, label.
CABINET_ID_CODES = {"even": 40, "odd": 72, "outline": 255, "label": 255}

GLYPH_W, GLYPH_H = 5, 7
_ADVANCE, _LINE = GLYPH_W + 1, GLYPH_H + 2

_GLYPHS = {
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 10001 11111 10001 10001", "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110", "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111", "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111", "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110", "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001", "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001", "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110", "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101", "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110", "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110", "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010", "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100", "Z": "11111 00001 00010 00100 01000 10000 11111",
    " ": "00000 00000 00000 00000 00000 00000 00000", ":": "00000 01100 01100 00000 01100 01100 00000",
    ";": "00000 01100 01100 00000 01100 00100 01000", ",": "00000 00000 00000 00000 01100 00100 01000",
    ".": "00000 00000 00000 00000 00000 01100 01100", "-": "00000 00000 00000 11111 00000 00000 00000",
    "_": "00000 00000 00000 00000 00000 00000 11111", "/": "00000 00001 00010 00100 01000 10000 00000",
    "#": "01010 01010 11111 01010 11111 01010 01010", "+": "00000 00100 00100 11111 00100 00100 00000",
    "(": "00010 00100 01000 01000 01000 00100 00010", ")": "01000 00100 00010 00010 00010 00100 01000",
    "?": "01110 10001 00001 00010 00100 00000 00100", "=": "00000 00000 11111 00000 11111 00000 00000",
}
#: The bitmap font: character -> (7, 5) uint8 of 0/1, row 0 = top. Lower case is drawn as upper case,
#: anything else as ``?``.
FONT_5X7: dict[str, np.ndarray] = {
    ch: np.array([[int(b) for b in row] for row in rows.split()], dtype=np.uint8) for ch, rows in _GLYPHS.items()
}


def text_bitmap(lines, width_chars: int | None = None) -> np.ndarray:
    """Lines of text -> (h, w) uint8 0/1, row 0 = top: 5 x 7 glyphs, advance 6 texels, line pitch 9 texels
    (so ``w = 6 n - 1``, ``h = 9 k - 2`` for ``n`` characters and ``k`` lines). ``width_chars`` pads (or
    clips) every line to that many characters, so the size does not depend on the text."""
    lines = [str(s).upper() for s in lines]
    n = width_chars if width_chars is not None else max((len(s) for s in lines), default=0)
    h = max(1, _LINE * len(lines) - 2)
    w = max(1, _ADVANCE * n - 1)
    img = np.zeros((h, w), dtype=np.uint8)
    for j, s in enumerate(lines):
        for i, ch in enumerate(s[:n]):
            g = FONT_5X7.get(ch, FONT_5X7["?"])
            img[j * _LINE:j * _LINE + GLYPH_H, i * _ADVANCE:i * _ADVANCE + GLYPH_W] = g
    return img


# --------------------------------------------------------------------------------------------- ArUco


def aruco_dictionary():
    """OpenCV's :data:`ARUCO_DICTIONARY`."""
    import cv2

    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))


def _cabinet_counts(stage) -> list[tuple[int, int]]:
    return [(int(w.cabinets[0]), int(w.cabinets[1])) for w in stage.walls]


def aruco_marker_id(stage, wall_index: int, col: int, row: int) -> int:
    """The marker id of cabinet ``(col, row)`` of wall ``wall_index``: cabinets numbered through the stage
    (walls in stage order, then rows top to bottom, then columns left to right)."""
    counts = _cabinet_counts(stage)
    cols, rows = counts[wall_index]
    if not (0 <= col < cols and 0 <= row < rows):
        raise FeatureError(f"wall {wall_index} has no cabinet (col {col}, row {row})")
    return sum(c * r for c, r in counts[:wall_index]) + row * cols + col


def aruco_cabinet(stage, marker_id: int) -> tuple[int, int, int]:
    """Inverse of :func:`aruco_marker_id`: ``(wall index, col, row)``."""
    k = int(marker_id)
    for wi, (cols, rows) in enumerate(_cabinet_counts(stage)):
        if k < cols * rows:
            return wi, k % cols, k // cols
        k -= cols * rows
    raise FeatureError(f"marker id {marker_id} is beyond the stage's cabinets")


def aruco_marker_bits(marker_id: int) -> np.ndarray:
    """(8, 8) uint8, 1 = white, 0 = black (border included), row 0 = top, as ``cv2.aruco`` draws it."""
    import cv2

    img = cv2.aruco.generateImageMarker(aruco_dictionary(), int(marker_id), ARUCO_MODULES, borderBits=1)
    return (img > 127).astype(np.uint8)


# --------------------------------------------------------------------------------------------- cell atlases


@dataclass(frozen=True, eq=False)
class CellAtlas:
    """Per-cabinet cells of one pattern for every wall (see the module docstring).

    ``image`` (H, W) uint8 texel values (row 0 = top; uploaded to GL as an ``rgba8`` texture, value in every
    channel); per wall ``w``: ``origin[w]`` the texel (x, y) of its cabinet (0, 0) cell, ``cell`` ``(cw, ch)``
    texels per cabinet, ``scale[w]`` pixels per texel, ``offset[w]`` pixels from the cabinet's top-left corner
    to the cell's. ``kind`` names the pattern.
    """

    kind: str
    image: np.ndarray
    cell: tuple[int, int]
    origin: np.ndarray  # (walls, 2) int
    scale: np.ndarray  # (walls,) int
    offset: np.ndarray  # (walls, 2) int

    def cell_of(self, wall_index: int, col: int, row: int) -> np.ndarray:
        cw, ch = self.cell
        x, y = self.origin[wall_index]
        return self.image[y + row * ch:y + (row + 1) * ch, x + col * cw:x + (col + 1) * cw]


def _stack_cells(kind: str, stage, cell: tuple[int, int], fill, scale_of) -> CellAtlas:
    cw, ch = cell
    blocks, origin, scale, offset = [], [], [], []
    y = 0
    for wi, wall in enumerate(stage.walls):
        cols, rows = wall.cabinets
        pw, ph = wall.cabinet.pixels
        block = np.zeros((rows * ch, cols * cw), dtype=np.uint8)
        for r in range(rows):
            for c in range(cols):
                block[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = fill(wi, wall, c, r)
        s = int(scale_of(pw, ph))
        blocks.append(block)
        origin.append((0, y))
        scale.append(s)
        offset.append(((pw - s * cw) // 2, (ph - s * ch) // 2))
        y += rows * ch
    width = max(b.shape[1] for b in blocks)
    image = np.zeros((y, width), dtype=np.uint8)
    for (ox, oy), b in zip(origin, blocks):
        image[oy:oy + b.shape[0], ox:ox + b.shape[1]] = b
    return CellAtlas(kind, image, cell, np.array(origin, dtype=np.int64), np.array(scale, dtype=np.int64),
                     np.array(offset, dtype=np.int64))


def aruco_atlas(stage) -> CellAtlas:
    """The ``aruco`` pattern's cells: each cabinet's marker bits (8 x 8, 255 = white)."""
    total = sum(c * r for c, r in _cabinet_counts(stage))
    if total > 1000:
        raise FeatureError(f"the stage has {total} cabinets; the ArUco pattern ({ARUCO_DICTIONARY}) marks at most "
                           "1000")
    modules = ARUCO_MODULES + 2 * ARUCO_QUIET_MODULES
    for w in stage.walls:
        if min(w.cabinet.pixels) < modules:
            raise FeatureError(f"wall {w.name!r}: cabinets of {w.cabinet.pixels} px are too small for an ArUco "
                               f"marker ({modules} px at least)")

    def fill(wi, wall, c, r):
        return aruco_marker_bits(aruco_marker_id(stage, wi, c, r)) * 255

    return _stack_cells("aruco", stage, (ARUCO_MODULES, ARUCO_MODULES), fill,
                        lambda pw, ph: min(pw, ph) // modules)


def cabinet_label(wall_name: str, col: int, row: int) -> tuple[str, str]:
    """The two label lines of a cabinet: the wall's name (upper case, 8 characters at most) and ``col,row``."""
    return wall_name.upper()[:8], f"{col},{row}"


_LABEL_CHARS = 8


def _label_scale(pw: int, ph: int, cw: int, ch: int) -> int:
    return max(1, int(np.floor(0.8 * min(pw / cw, ph / ch))))


def cabinet_id_atlas(stage) -> CellAtlas:
    """The ``cabinet_id`` pattern's cells: the label of each cabinet (255 = text)."""
    probe = text_bitmap(["", ""], _LABEL_CHARS)
    ch, cw = probe.shape

    def fill(wi, wall, c, r):
        return text_bitmap(cabinet_label(wall.name, c, r), _LABEL_CHARS) * 255

    return _stack_cells("cabinet_id", stage, (cw, ch), fill, lambda pw, ph: _label_scale(pw, ph, cw, ch))


# --------------------------------------------------------------------------------------------- burn-in


BURN_IN_CHARS = 11  # "HH:MM:SS:FF"


def burn_in_lines(frame: int, fields, rate=None) -> tuple[str, ...]:
    """The burn-in text of ``frame``: ``F%07d`` for ``"frame"``, the non-drop-frame timecode at ``rate`` (a
    :class:`~stagectl.core.timebase.FrameRate`) for ``"timecode"``, in that order."""
    out = []
    if "frame" in fields:
        out.append(f"F{int(frame) % 10_000_000:07d}")
    if "timecode" in fields:
        from stagectl.core.timebase import FrameRate, Timecode

        r = rate if rate is not None else FrameRate(24)
        out.append(str(Timecode.from_frame(int(frame), r, drop_frame=False)))
    return tuple(out)


def burn_in_layout(cabinet_px: tuple[int, int], text_shape: tuple[int, int]) -> tuple[int, int, int]:
    """``(offset x, offset y, scale)``: the text (h, w) texels centred in a cabinet of ``(pw, ph)`` pixels at
    scale ``floor(0.8 min(pw / w, ph / h))`` (at least 1)."""
    pw, ph = cabinet_px
    th, tw = text_shape
    s = _label_scale(pw, ph, tw, th)
    return (pw - s * tw) // 2, (ph - s * th) // 2, s


# --------------------------------------------------------------------------------------------- numpy reference


def _cell_lookup(atlas: CellAtlas, wi: int, wall, x: np.ndarray, y: np.ndarray):
    """Cell texel values at integer raster pixels (x, y) of wall ``wi`` and an 'inside the cell' mask."""
    pw, ph = wall.cabinet.pixels
    cw, ch = atlas.cell
    col, row = x // pw, y // ph
    s = int(atlas.scale[wi])
    ox, oy = atlas.offset[wi]
    qx = np.floor_divide(x - col * pw - ox, s)
    qy = np.floor_divide(y - row * ph - oy, s)
    inside = (qx >= 0) & (qx < cw) & (qy >= 0) & (qy < ch)
    ax, ay = atlas.origin[wi]
    tx = np.clip(ax + col * cw + qx, 0, atlas.image.shape[1] - 1)
    ty = np.clip(ay + row * ch + qy, 0, atlas.image.shape[0] - 1)
    return atlas.image[ty, tx], inside


def pattern_raster(kind: str, stage, wall_index: int, *, color=(1.0, 1.0, 1.0), squares: int = 1,
                   atlas: CellAtlas | None = None) -> np.ndarray:
    """The expected 8-bit sRGB codes (H, W, 3) of a pattern on a whole wall raster (row 0 = top): the oracle
    of the GL tests (independent of the canvas mapping). ``atlas`` for ``aruco`` / ``cabinet_id`` (built when
    not given)."""
    wall = stage.walls[wall_index]
    W, H = wall.raster
    pw, ph = wall.cabinet.pixels
    y, x = np.mgrid[0:H, 0:W]
    out = np.zeros((H, W, 3), dtype=np.uint8)
    if kind == "solid":
        out[...] = np.rint(srgb_encode(np.asarray(color)) * 255).astype(np.uint8)
    elif kind == "checkerboard":
        sx, sy = pw / squares, ph / squares
        even = ((np.floor((x + 0.5) / sx) + np.floor((y + 0.5) / sy)) % 2) == 0
        out[even] = 255
    elif kind == "color_bars":
        bar = np.minimum(np.floor((x + 0.5) * 7.0 / W).astype(int), 6)
        out[...] = np.asarray(COLOR_BARS_75, dtype=np.uint8)[bar]
    elif kind == "aruco":
        atlas = atlas or aruco_atlas(stage)
        v, inside = _cell_lookup(atlas, wall_index, wall, x, y)
        out[...] = np.where(inside, v, 255)[..., None]
    elif kind == "cabinet_id":
        atlas = atlas or cabinet_id_atlas(stage)
        v, inside = _cell_lookup(atlas, wall_index, wall, x, y)
        col, row = x // pw, y // ph
        lx, ly = x - col * pw, y - row * ph
        bg = np.where((col + row) % 2 == 0, CABINET_ID_CODES["even"], CABINET_ID_CODES["odd"])
        edge = (lx == 0) | (ly == 0) | (lx == pw - 1) | (ly == ph - 1)
        val = np.where(edge, CABINET_ID_CODES["outline"], bg)
        val = np.where(inside & (v > 127), CABINET_ID_CODES["label"], val)
        out[...] = val[..., None].astype(np.uint8)
    else:
        raise FeatureError(f"no raster for pattern {kind!r}")
    return out


def burn_in_raster(lines, cabinet_px) -> np.ndarray:
    """The expected burn-in box (ph, pw) of 0/255 codes for one cabinet (the oracle of the GL tests)."""
    bits = text_bitmap(lines, BURN_IN_CHARS)
    pw, ph = cabinet_px
    ox, oy, s = burn_in_layout((pw, ph), bits.shape)
    box = np.zeros((ph, pw), dtype=np.uint8)
    big = np.kron(bits, np.ones((s, s), dtype=np.uint8)) * 255
    y0, x0 = max(oy, 0), max(ox, 0)
    sub = big[y0 - oy:y0 - oy + ph - y0, x0 - ox:x0 - ox + pw - x0]
    box[y0:y0 + sub.shape[0], x0:x0 + sub.shape[1]] = sub
    return box
