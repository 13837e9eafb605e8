#version 330 core
// glTF 2.0 meshes, vertex stage (stagectl/render/gltf.py).
//
// u_mvp = view_proj @ T_stage_object (float64 product on the CPU, uploaded with transpose = GL_TRUE): object
// (glTF mesh) coordinates -> clip. T_stage_object already holds the glTF -> stage axis change (T_STAGE_GLTF),
// the node hierarchy and the placement. u_normal_matrix: the inverse transpose of its 3x3 part (object ->
// stage normals), in the upper-left of a 4x4.

uniform mat4 u_mvp;
uniform mat4 u_normal_matrix;

layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec2 a_uv;      // glTF UV: (0, 0) = top-left of the image
layout(location = 3) in vec4 a_color;   // COLOR_0, linear (white when absent)

out vec3 v_normal;  // stage frame, not normalised
out vec2 v_uv;
out vec4 v_color;

void main() {
    v_normal = mat3(u_normal_matrix) * a_normal;
    v_uv = a_uv;
    v_color = a_color;
    gl_Position = u_mvp * vec4(a_position, 1.0);
}
