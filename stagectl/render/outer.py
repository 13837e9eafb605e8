"""The outer frustum's cube atlas: the scene for the rest of the wall, rendered from the stage's outer
viewpoint into one square tile per cube face (each a 90-degree view with a one-texel gutter), only the faces
some wall is seen through, and sampled by direction ``stage position - viewpoint``.

Frames: stage metres, Z up; ``V`` maps stage to the GL eye (x right, y up, looking down -z); GL viewports in
GL window coordinates (origin bottom-left; the atlas is never read back, so no row flip happens there).
"""

from __future__ import annotations

import numpy as np

from stagectl.render.frustum import coverage, frustum_matrix
from stagectl.render.passes import CUBE_GUTTER, FAR_M, NEAR_M, CubeFace, OuterPass, PlanError
from stagectl.stage.model import Stage

__all__ = ["CUBE_FACES", "cube_face_size", "build_outer_pass"]

#: NDC margin used when deciding which cube faces a wall is seen through (a little more than needed).
_FACE_MARGIN_NDC = 0.02

#: Cube faces: ``(name, forward, up)`` in the stage frame; face ``i`` is sampled for directions whose largest
#: component is axis ``i // 2`` with sign ``+`` for even ``i`` (the composite shader's rule).
CUBE_FACES: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("+x", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    ("-x", (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    ("+y", (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    ("-y", (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    ("+z", (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    ("-z", (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
)
_ATLAS_COLUMNS = 3  # the atlas is 3 x 2 tiles; face i sits at column i % 3, row i // 3 (GL rows, bottom up)


def cube_face_size(outer_resolution: tuple[int, int]) -> int:
    """Face size (texels) of the outer cube atlas for a configured outer resolution ``(w, h)``.

    The configured resolution reads as an equirectangular image (``w`` texels over 360 degrees, ``h`` over
    180), so a 90-degree face gets ``max(w / 4, h / 2)`` texels (at least 16).
    """
    w, h = (int(v) for v in outer_resolution)
    return max(16, int(round(max(w / 4.0, h / 2.0))))


def _face_rotation(forward, up) -> np.ndarray:
    f = np.asarray(forward, dtype=np.float64)
    u = np.asarray(up, dtype=np.float64)
    r = np.cross(f, u)
    return np.array([r, u, f])


def _face_view(rotation: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Stage -> GL eye for a face: GL x = right, y = up, z = -forward, origin at ``eye``."""
    V = np.eye(4)
    R = np.array([rotation[0], rotation[1], -rotation[2]])
    V[:3, :3] = R
    V[:3, 3] = -R @ eye
    return V


def build_outer_pass(stage: Stage, *, face_size: int | None = None, near: float = NEAR_M, far: float = FAR_M,
                     static: bool = True) -> OuterPass:
    """The outer cube atlas for ``stage``: face geometry, tiles, and the faces some wall is seen through.

    A face is needed when any cabinet of any wall is covered by its exact 90-degree frustum (widened by a
    small NDC margin), tested with the frustum core's cabinet coverage (clipped quads, any wall shape).
    """
    eye = np.asarray(stage.render.outer.viewpoint, dtype=np.float64)
    S = int(face_size) if face_size is not None else cube_face_size(stage.render.outer.resolution)
    if S < 4:
        raise PlanError(f"outer cube face size {S} too small")
    tile = S + 2 * CUBE_GUTTER
    gutter_tan = tile / S  # half-extent (tan) of the rendered face, gutter included
    P_exact = np.empty((4, 4))
    frustum_matrix(-near, near, -near, near, near, far, P_exact)
    P_render = np.empty((4, 4))
    g = near * gutter_tan
    frustum_matrix(-g, g, -g, g, near, far, P_render)
    faces = []
    used = []
    for i, (name, fwd, up) in enumerate(CUBE_FACES):
        R = _face_rotation(fwd, up)
        V = _face_view(R, eye)
        col, row = i % _ATLAS_COLUMNS, i // _ATLAS_COLUMNS
        vx, vy = col * tile, row * tile
        face = CubeFace(
            index=i,
            name=name,
            rotation=R,
            V=V,
            P=P_render,
            VP=P_render @ V,
            viewport=(vx, vy, tile, tile),
            origin=(float(vx + CUBE_GUTTER), float(vy + CUBE_GUTTER)),
        )
        faces.append(face)
        VP_exact = P_exact @ V
        for wall in stage.walls:
            g = wall.geometry
            covered, _, _ = coverage(
                VP_exact, g.cabinet_corner_grid(), g.rows, g.cols, margin_ndc=_FACE_MARGIN_NDC
            )
            if covered.any():
                used.append(face)
                break
    atlas = (_ATLAS_COLUMNS * tile, 2 * tile)
    return OuterPass(
        viewpoint=(float(eye[0]), float(eye[1]), float(eye[2])),
        face_size=S,
        tile=tile,
        atlas_size=atlas,
        faces=tuple(used),
        all_faces=tuple(faces),
        static=static,
    )
