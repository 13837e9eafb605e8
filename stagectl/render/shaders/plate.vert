#version 330 core
// Equirectangular 360 plate, vertex stage (stagectl/render/plate.py): one fullscreen triangle from
// gl_VertexID, no attributes. Each corner carries its homogeneous far-plane point in the STAGE frame,
// inv(view_proj) * (x_ndc, y_ndc, 1, 1); that is linear in NDC and gl_Position.w = 1, so the interpolated
// value is exact at every pixel and the fragment stage divides it. u_inv_view_proj is row-major numpy
// uploaded with transpose = GL_TRUE.

uniform mat4 u_inv_view_proj;

out vec4 v_far;

void main() {
    vec2 ndc = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0);
    v_far = u_inv_view_proj * vec4(ndc, 1.0, 1.0);
    gl_Position = vec4(ndc, 0.0, 1.0);
}
