#version 330 core
// stagectl built-in test world, vertex stage (stagectl/render/scene.py). Compiled twice: with BACKGROUND
// defined (ground + sky pass) and without (mesh pass); scene.py inserts the #define after the #version line.
//
// u_view_proj maps STAGE coordinates (Z up, metres) to clip space; it is a row-major numpy matrix uploaded
// with transpose = GL_TRUE, so here, as in numpy, it acts on column vectors.

uniform mat4 u_view_proj;
uniform mat4 u_inv_view_proj;
uniform vec3 u_eye;  // stage, metres

#ifdef BACKGROUND
// A fullscreen triangle from gl_VertexID (no vertex attributes). Each corner carries the stage vector from
// the eye to its point on the far plane. For a perspective view-projection the far plane's homogeneous w is
// the same everywhere (1 / far), so that vector is affine in NDC and interpolating it gives every pixel's
// exact (unnormalised) view ray. v_ray_clip_zw = (u_view_proj * (ray, 0)).zw is affine too; the fragment
// stage gets the clip z, w of any point eye + t * ray from it (see scene.frag).
out vec3 v_ray;
out vec2 v_ray_clip_zw;

void main() {
    vec2 ndc = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0);
    vec4 far_h = u_inv_view_proj * vec4(ndc, 1.0, 1.0);
    v_ray = far_h.xyz / far_h.w - u_eye;
    v_ray_clip_zw = (u_view_proj * vec4(v_ray, 0.0)).zw;
    gl_Position = vec4(ndc, 0.0, 1.0);
}

#else
// Mesh pass: stage position, outward normal and linear-light albedo per vertex. Faces are flat, so the
// directional lighting is computed per vertex (the same value at every vertex of a face); fog per pixel.
uniform vec3 u_light_dir;  // stage, unit vector pointing TOWARD the light
uniform vec3 u_sun;
uniform vec3 u_ambient;

layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec3 a_albedo;

out vec3 v_position;
out vec3 v_lit;

void main() {
    v_position = a_position;
    v_lit = a_albedo * (u_ambient + u_sun * max(dot(normalize(a_normal), u_light_dir), 0.0));
    gl_Position = u_view_proj * vec4(a_position, 1.0);
}
#endif
