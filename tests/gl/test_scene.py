"""The scene pass against a plain-numpy model of the camera, the projection and the shading.

The camera model here is written from docs/conventions.md only (no stagectl maths): a camera pose in the
stage, ``V = T_gl_camera @ inv(T_stage_camera)`` with ``T_gl_camera`` mapping camera (x, y, z) to GL eye
(x, z, -y), ``P = glFrustum(l, r, b, t, n, f)`` and ``VP = P @ V``; NDC -> image ``u = (x + 1) / 2``,
``v = (1 - y) / 2``, row 0 = top.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stagectl.render.scene import (
    DEFAULT_COLUMNS,
    Column,
    RenderTarget,
    SceneLook,
    SceneRenderer,
    box_mesh,
    build_scene_mesh,
    eye_from_view_proj,
)

W, H = 256, 144
NEAR, FAR = 0.1, 1000.0
LOOK = SceneLook()

T_GL_CAMERA = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


# ---- the numpy model ---------------------------------------------------------------------------------------
def rz(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rx(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def pose(position, pan=0.0, tilt=0.0) -> np.ndarray:
    """T_stage_camera: pan about +Z (left), then tilt about +X (up)."""
    T = np.eye(4)
    T[:3, :3] = rz(pan) @ rx(tilt)
    T[:3, 3] = position
    return T


def gl_frustum(l, r, b, t, n, f) -> np.ndarray:
    return np.array(
        [
            [2 * n / (r - l), 0, (r + l) / (r - l), 0],
            [0, 2 * n / (t - b), (t + b) / (t - b), 0],
            [0, 0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0, 0, -1, 0],
        ]
    )


def projection(width=W, height=H, hfov_deg=60.0, v_shift=0.15) -> np.ndarray:
    """glFrustum with the given horizontal field of view; the vertical window is shifted up by ``v_shift`` of
    its height (an off-centre principal point), so the level horizon is not the middle row."""
    half_w = NEAR * math.tan(math.radians(hfov_deg / 2))
    half_h = half_w * height / width
    shift = 2 * half_h * v_shift
    return gl_frustum(-half_w, half_w, -half_h + shift, half_h + shift, NEAR, FAR)


def view_proj(position=(0.0, 0.0, 1.7), pan=0.0, tilt=0.0, **proj) -> np.ndarray:
    V = T_GL_CAMERA @ np.linalg.inv(pose(position, pan, tilt))
    return projection(**proj) @ V


def project(vp: np.ndarray, p_stage, width=W, height=H) -> tuple[float, float]:
    """Stage point -> continuous image coordinates (x right, y down, pixel centres at +0.5)."""
    clip = vp @ np.append(np.asarray(p_stage, np.float64), 1.0)
    assert clip[3] > 0, "point behind the camera"
    x_ndc, y_ndc = clip[0] / clip[3], clip[1] / clip[3]
    return (x_ndc + 1) / 2 * width, (1 - y_ndc) / 2 * height


def pixel_ray(vp: np.ndarray, eye: np.ndarray, i: int, j: int, width=W, height=H) -> np.ndarray:
    ndc = np.array([(i + 0.5) / width * 2 - 1, 1 - (j + 0.5) / height * 2, 1.0, 1.0])
    far = np.linalg.solve(vp, ndc)
    return far[:3] / far[3] - eye


def sky_model(ray: np.ndarray) -> np.ndarray:
    k = math.sqrt(max(ray[2], 0.0) / np.linalg.norm(ray))
    return np.asarray(LOOK.sky_horizon) * (1 - k) + np.asarray(LOOK.sky_zenith) * k


def surface_model(albedo, normal, point, eye) -> np.ndarray:
    """albedo * (ambient + sun * max(0, n . l)), then fog by distance from the eye (see scene.frag)."""
    light = np.asarray(LOOK.light_dir, np.float64)
    light /= np.linalg.norm(light)
    ndotl = max(float(np.dot(normal, light)), 0.0)
    lit = np.asarray(albedo) * (np.asarray(LOOK.ambient) + np.asarray(LOOK.sun) * ndotl)
    keep = math.exp(-np.linalg.norm(np.asarray(point) - eye) * LOOK.fog_density)
    return lit * keep + np.asarray(LOOK.fog_color) * (1 - keep)


def to_u8(rgb) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) * 255).astype(int)


def front_face_center(col: Column, z: float | None = None) -> np.ndarray:
    """Centre of the face looking at -Y (toward a camera at the origin looking along +Y)."""
    zc = col.base_z + col.height / 2 if z is None else z
    return np.array([col.center[0], col.center[1] - col.size[1] / 2, zc])


def _image_xy(vp: np.ndarray, p_stage) -> tuple[float, float] | None:
    """Like :func:`project`, but None for points behind (or almost at) the eye."""
    clip = vp @ np.append(np.asarray(p_stage, np.float64), 1.0)
    if clip[3] < 0.05:
        return None
    return (clip[0] / clip[3] + 1) / 2 * W, (1 - clip[1] / clip[3]) / 2 * H


def free_pixel_columns(vp: np.ndarray, columns=DEFAULT_COLUMNS, margin=2) -> list[int]:
    """Image columns that no box covers (by the x-extent of its projected corners) and that miss the green
    stage Y-axis line, so that only sky and warm ground appear in them."""
    covered = np.zeros(W, bool)

    def cover(xs):
        lo, hi = max(0, int(min(xs)) - margin), min(W, int(max(xs)) + margin + 1)
        covered[lo:hi] = True

    for col in columns:
        v, _ = box_mesh(col)
        xy = [_image_xy(vp, p) for p in v[:, :3].astype(np.float64)]
        if all(q is None for q in xy):
            continue  # behind the camera
        if any(q is None for q in xy):
            covered[:] = True  # straddles the eye plane: give up on this view
            continue
        cover([q[0] for q in xy])
    axis = [_image_xy(vp, (0.0, y, 0.0)) for y in np.linspace(-2000.0, 2000.0, 8001)]
    xs = [q[0] for q in axis if q is not None and 0 <= q[1] < H and -W <= q[0] < 2 * W]
    if xs:
        cover(xs)
    return [i for i in range(W) if not covered[i]]


# ---- pure tests (no GL) ------------------------------------------------------------------------------------
def test_default_world_has_columns_at_several_distances_on_both_sides_with_distinct_colours():
    dists = sorted({c.center[1] for c in DEFAULT_COLUMNS})
    assert dists == [6.0, 10.0, 20.0, 40.0]
    for d in dists:
        xs = sorted(c.center[0] for c in DEFAULT_COLUMNS if c.center[1] == d)
        assert xs[0] < 0 < xs[-1]
    albedos = np.array([c.albedo for c in DEFAULT_COLUMNS])
    diffs = np.abs(albedos[:, None] - albedos[None]).max(-1) + np.eye(len(albedos))
    assert diffs.min() > 0.15


def test_box_faces_point_outward_and_wind_counter_clockwise_from_outside():
    mesh = build_scene_mesh(DEFAULT_COLUMNS)
    assert mesh.vertices.dtype == np.float32 and mesh.indices.dtype == np.uint32
    assert len(mesh.indices) == 36 * len(DEFAULT_COLUMNS)
    tris = mesh.positions[mesh.indices.reshape(-1, 3)].astype(np.float64)
    normals = mesh.normals[mesh.indices.reshape(-1, 3)[:, 0]].astype(np.float64)
    geometric = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    # counter-clockwise seen from outside == the right-hand normal points along the outward normal
    assert np.all(np.einsum("ij,ij->i", geometric, normals) > 0)
    for k, col in enumerate(DEFAULT_COLUMNS):
        centre = np.array([*col.center, col.base_z + col.height / 2])
        t = tris[12 * k : 12 * (k + 1)].mean(axis=1)
        assert np.all(np.einsum("ij,ij->i", t - centre, normals[12 * k : 12 * (k + 1)]) > 0)
        box = mesh.positions[24 * k : 24 * (k + 1)]
        np.testing.assert_allclose(box.min(0), [col.center[0] - 0.3, col.center[1] - 0.3, 0.0], atol=1e-6)
        np.testing.assert_allclose(box.max(0), [col.center[0] + 0.3, col.center[1] + 0.3, 3.0], atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_eye_from_view_proj_recovers_the_camera_position(seed):
    rng = np.random.default_rng(seed)
    position = rng.uniform(-10, 10, 3)
    pan, tilt, shift = rng.uniform(-180, 180), rng.uniform(-60, 60), rng.uniform(-0.3, 0.3)
    vp = view_proj(position, pan=pan, tilt=tilt, v_shift=shift)
    np.testing.assert_allclose(eye_from_view_proj(vp), position, atol=1e-6)


# ---- GL tests ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene(gl_context):
    gl_context.make_current()
    renderer = SceneRenderer(gl_context.resources, label="test.scene")
    target = RenderTarget(gl_context.resources, W, H, label="test.scene.target")
    yield renderer, target
    gl_context.make_current()
    target.release()
    renderer.release()


def render(scene, vp) -> np.ndarray:
    renderer, target = scene
    renderer.draw(vp, target)
    return target.read()


@pytest.mark.gl
def test_column_front_faces_land_where_numpy_projects_them_with_the_modelled_colour(scene):
    vp = view_proj()
    eye = np.array([0.0, 0.0, 1.7])
    img = render(scene, vp)
    seen = {}
    for col in DEFAULT_COLUMNS:
        centre = front_face_center(col)
        x, y = project(vp, centre)
        assert 0 <= x < W and 0 <= y < H, col.name
        pixel = img[int(y), int(x), :3].astype(int)
        expected = to_u8(surface_model(col.albedo, np.array([0.0, -1.0, 0.0]), centre, eye))
        assert np.abs(pixel - expected).max() <= 2, (col.name, pixel, expected)
        seen[col.name] = pixel
    # the faces turned toward the Y axis: lit on the right-hand columns (n . l > 0), ambient only on the left
    for name in ("L6", "L10", "R6", "R10"):
        col = next(c for c in DEFAULT_COLUMNS if c.name == name)
        inward = np.array([-np.sign(col.center[0]), 0.0, 0.0])
        centre = np.array([col.center[0] + inward[0] * col.size[0] / 2, col.center[1], 1.5])
        x, y = project(vp, centre)
        expected = to_u8(surface_model(col.albedo, inward, centre, eye))
        assert np.abs(img[int(y), int(x), :3].astype(int) - expected).max() <= 2, (name, "side face")
    names = list(seen)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert np.abs(seen[names[a]] - seen[names[b]]).max() > 10, (names[a], names[b])


@pytest.mark.gl
@pytest.mark.parametrize("pan, tilt", [(0.0, 0.0), (25.0, 6.0), (-40.0, -8.0), (170.0, 3.0)])
def test_sky_above_and_ground_below_the_numpy_horizon_row(scene, pan, tilt):
    vp = view_proj(pan=pan, tilt=tilt)
    eye = np.array([0.0, 0.0, 1.7])
    img = render(scene, vp)
    heading = np.array([-math.sin(math.radians(pan)), math.cos(math.radians(pan)), 0.0])
    _, horizon_y = project(vp, eye + 1e6 * heading)  # a far point on the horizon
    assert 5 < horizon_y < H - 5
    first_ground_row = math.ceil(horizon_y - 0.5)  # pixel centres below the horizon see the ground
    columns = free_pixel_columns(vp)[::3]
    assert len(columns) >= 8
    for i in columns:
        rgb = img[:, i, :3].astype(int)
        sky = np.array([to_u8(sky_model(pixel_ray(vp, eye, i, j))) for j in range(H)])
        is_sky = np.abs(rgb - sky).max(axis=1) <= 2
        warm = rgb[:, 0] > rgb[:, 2]  # ground, grid lines and haze are warm; the sky is blue
        boundary = int(np.argmin(is_sky)) if not is_sky.all() else H
        assert is_sky[:boundary].all() and not is_sky[boundary:].any(), (i, is_sky)
        assert warm[boundary:].all() and not warm[:boundary].any(), i
        assert abs(boundary - first_ground_row) <= 1, (i, boundary, horizon_y)


@pytest.mark.gl
def test_nearer_column_occludes_the_ones_behind_it(scene):
    eye = np.array([3.0, 0.0, 1.7])  # right in front of the R6, R10, R20, R40 row
    vp = view_proj(eye)
    img = render(scene, vp)
    r6 = next(c for c in DEFAULT_COLUMNS if c.name == "R6")
    for name in ("R10", "R20", "R40"):
        behind = next(c for c in DEFAULT_COLUMNS if c.name == name)
        target = front_face_center(behind)
        x, y = project(vp, target)
        # the ray to the hidden face meets R6's front face first
        hit = eye + (target - eye) * (r6.center[1] - 0.3 - eye[1]) / (target[1] - eye[1])
        expected = to_u8(surface_model(r6.albedo, np.array([0.0, -1.0, 0.0]), hit, eye))
        assert np.abs(img[int(y), int(x), :3].astype(int) - expected).max() <= 2, name


@pytest.mark.gl
def test_ground_occludes_the_part_of_a_column_below_it(gl_context):
    sunk = Column("sunk", (0.0, 15.0), (1.0, 1.0), 3.0, (0.10, 0.20, 0.90), base_z=-1.5)
    renderer = SceneRenderer(gl_context.resources, columns=(sunk,), label="test.sunk")
    target = RenderTarget(gl_context.resources, W, H, label="test.sunk.target")
    try:
        vp = view_proj()
        renderer.draw(vp, target)
        img = target.read()
        above = project(vp, front_face_center(sunk, z=0.75))
        below = project(vp, front_face_center(sunk, z=-0.5))
        assert 0 <= below[1] < H
        px_above = img[int(above[1]), int(above[0]), :3].astype(int)
        px_below = img[int(below[1]), int(below[0]), :3].astype(int)
        assert px_above[2] > px_above[0] + 60  # the blue column
        assert px_below[0] > px_below[2]  # the warm ground, drawn in front of the sunk part
    finally:
        target.release()
        renderer.release()


@pytest.mark.gl
def test_viewport_is_in_gl_coordinates_and_nothing_outside_it_is_touched(gl_context, scene):
    from OpenGL import GL

    renderer, small = scene  # W x H
    big = RenderTarget(gl_context.resources, 2 * W, 2 * H, label="test.scene.big")
    try:
        vp = view_proj()
        renderer.draw(vp, small)
        reference = small.read()
        big.framebuffer.bind()
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        renderer.draw(vp, big, viewport=(W, H, W, H))  # GL: right half, TOP half
        img = big.read()
        assert np.abs(img[:H, W:].astype(int) - reference.astype(int)).max() <= 1
        assert not img[H:].any() and not img[:, :W].any()
    finally:
        big.release()


@pytest.mark.gl
def test_float_target_holds_linear_sky_values(gl_context):
    renderer = SceneRenderer(gl_context.resources, columns=(), label="test.hdr")
    target = RenderTarget(gl_context.resources, W, H, color="rgba16f", label="test.hdr.target")
    try:
        vp = view_proj(tilt=30.0)
        renderer.draw(vp, target)
        img = target.read(dtype=np.float32)
        eye = np.array([0.0, 0.0, 1.7])
        for i, j in ((3, 2), (W // 2, 10), (W - 5, 20)):
            np.testing.assert_allclose(img[j, i, :3], sky_model(pixel_ray(vp, eye, i, j)), atol=4e-3)
    finally:
        target.release()
        renderer.release()


@pytest.mark.gl
def test_scene_objects_are_labelled_for_gpu_debuggers(gl_context, scene):
    res = gl_context.resources
    for label in ("test.scene.background.program", "test.scene.mesh.program", "test.scene.mesh.vbo"):
        obj = res.find(label)
        assert obj is not None and res.object_label(obj) == label
