#version 330 core
// glTF 2.0 meshes, fragment stage (stagectl/render/gltf.py). Output: linear-light RGB.
// Compiled twice: ALPHA_MASK defined for alphaMode MASK (discard below the cutoff), not defined otherwise.
//
//   base  = u_base_color * v_color * texture          (texture: sRGB8 textures are decoded by the sampler)
//   lit   = base.rgb * (ambient + sun * max(0, n . l)) + emissive   (unlit materials: base.rgb + emissive)
//   alpha = 1 for OPAQUE and MASK (u_opaque = 1), base.a for BLEND
// Texture rows: the upload flipped the image to GL's row 0 = bottom, so glTF's v (down from the top) samples
// at t = 1 - v. Double-sided materials light back faces with the flipped normal.

uniform sampler2D u_base_tex;
uniform vec4 u_base_color;
uniform vec3 u_emissive;
uniform float u_unlit;         // 1: KHR_materials_unlit
uniform float u_double_sided;  // 1: doubleSided
uniform float u_opaque;        // 1: write alpha 1
uniform float u_alpha_cutoff;
uniform vec3 u_light_dir;      // stage, unit vector TOWARD the light
uniform vec3 u_sun;
uniform vec3 u_ambient;

in vec3 v_normal;
in vec2 v_uv;
in vec4 v_color;

layout(location = 0) out vec4 o_color;

void main() {
    vec4 base = u_base_color * v_color * texture(u_base_tex, vec2(v_uv.x, 1.0 - v_uv.y));
#ifdef ALPHA_MASK
    if (base.a < u_alpha_cutoff) discard;
#endif
    vec3 n = normalize(v_normal);
    n *= (gl_FrontFacing || u_double_sided < 0.5) ? 1.0 : -1.0;
    vec3 lit = base.rgb * (u_ambient + u_sun * max(dot(n, u_light_dir), 0.0));
    o_color = vec4(mix(lit, base.rgb, u_unlit) + u_emissive, mix(base.a, 1.0, u_opaque));
}
