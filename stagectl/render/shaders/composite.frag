#version 330 core
// Canvas composition, fragment stage (stagectl/render/compositor.py). compositor.py inserts defines after the
// #version line and compiles one program per variant:
//   CAMERAS n (0..4)  full composition: the outer image, then inner frusta 0..n-1 over it (0: outer only);
//                     unrolled, so no sampler is indexed dynamically and llvmpipe runs no loop;
//   INNER_ONLY        tiles wholly inside the top camera's full-weight region: that camera's image alone
//                     (what the full composition gives there, with weight exactly 1);
//   COPY              restore tiles from the output's cached outer-only canvas (texelFetch, same size).
//
// For the fragment's stage position p (metres):
//   outer: d = p - u_outer_eye; the cube face is the axis of the largest |d| component and its sign (face
//          2*axis for +, 2*axis+1 for -, plan.CUBE_FACES order); e = u_face_rotation[face] * d (rows right,
//          up, forward), face NDC = e.xy / e.z in [-1, 1]; atlas texel = u_face_origin[face]
//          + (ndc + 1) / 2 * u_face_size (GL texel coordinates; each tile has a 1-texel gutter rendered
//          beyond 90 degrees, so bilinear filtering never reads another face).
//   inner i (in order, later over earlier): clip = u_inner_vp[i] * (p, 1) (the camera's P @ V with overscan,
//          computed per vertex and interpolated: it is affine in p);
//          in front when clip.w > W_EPS (conventions.md, frustum.W_EPS); ndc = clip.xy / clip.w;
//          d = 1 - max(|ndc.x|, |ndc.y|)  (= 1 - max(|2u - 1|, |2v - 1|): 1 at the centre, 0 on the border);
//          a = clamp(d / soft_edge, 0, 1); weight = a * a * (3 - 2 a) (smoothstep), 0 behind the eye;
//          colour = mix(colour, inner_i(s, t), weight) with GL texture coordinates (s, t) = (ndc + 1) / 2
//          (t = 1 - v: the inner target was rendered by GL, row 0 = bottom, and is never flipped).
//   output: sRGB encoding (IEC 61966-2-1 piecewise curve) of the linear-light colour, alpha 1; the rgba8
//          canvas quantises it (round to nearest).
// No data-dependent branches: llvmpipe pays for both sides of a branch.

const float W_EPS = 1e-6;

noperspective in vec3 v_stage;
noperspective in vec2 v_raster;
flat in vec2 v_ids;

layout(location = 0) out vec4 o_color;

vec3 srgb_encode(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    vec3 lo = 12.92 * c;
    vec3 hi = 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055;
    return mix(hi, lo, vec3(lessThanEqual(c, vec3(0.0031308))));
}

#if defined(COPY)
uniform sampler2D u_source;          // the cached outer-only canvas of this output (rgba8, sRGB codes)

void main() {
    o_color = texelFetch(u_source, ivec2(gl_FragCoord.xy), 0);
}

#elif defined(INNER_ONLY)
uniform sampler2D u_inner_top;
noperspective in vec4 v_inner_clip0;  // u_inner_top_vp * (stage, 1), from the vertex stage

void main() {
    vec4 clip = v_inner_clip0;
    vec2 ndc = clip.xy / clip.w;     // the plan guarantees clip.w > W_EPS on the whole tile
    o_color = vec4(srgb_encode(texture(u_inner_top, 0.5 * ndc + 0.5).rgb), 1.0);
}

#else
#ifndef CAMERAS
#define CAMERAS 1
#endif

uniform vec3 u_outer_eye;            // stage metres
uniform mat3 u_face_rotation[6];     // rows right, up, forward (uploaded transposed: acts on column vectors)
uniform vec2 u_face_origin[6];       // GL texels
uniform float u_face_size;           // texels
uniform vec2 u_atlas_inv_size;       // 1 / atlas (w, h)
uniform sampler2D u_outer;

#if CAMERAS > 0
uniform float u_inner_inv_soft[CAMERAS];
noperspective in vec4 v_inner_clip[CAMERAS];  // u_inner_vp[i] * (stage, 1), from the vertex stage
uniform sampler2D u_inner0;
#endif
#if CAMERAS > 1
uniform sampler2D u_inner1;
#endif
#if CAMERAS > 2
uniform sampler2D u_inner2;
#endif
#if CAMERAS > 3
uniform sampler2D u_inner3;
#endif

vec3 outer_color(vec3 p) {
    vec3 d = p - u_outer_eye;
    vec3 a = abs(d);
    int axis = a.x >= a.y ? (a.x >= a.z ? 0 : 2) : (a.y >= a.z ? 1 : 2);
    float major = axis == 0 ? d.x : (axis == 1 ? d.y : d.z);
    int face = 2 * axis + (major < 0.0 ? 1 : 0);
    vec3 e = u_face_rotation[face] * d;
    vec2 ndc = e.xy / max(e.z, 1e-12);
    vec2 texel = u_face_origin[face] + (0.5 * ndc + 0.5) * u_face_size;
    return texture(u_outer, texel * u_atlas_inv_size).rgb;
}

vec3 over_inner(vec3 color, vec4 clip, float inv_soft, sampler2D tex) {
    float front = clip.w > W_EPS ? 1.0 : 0.0;
    vec2 ndc = clip.xy / max(clip.w, W_EPS);
    float d = 1.0 - max(abs(ndc.x), abs(ndc.y));
    float a = clamp(d * inv_soft, 0.0, 1.0);
    float weight = a * a * (3.0 - 2.0 * a) * front;
    vec3 s = texture(tex, 0.5 * ndc + 0.5).rgb;
    return mix(color, s, weight);
}

void main() {
    vec3 color = outer_color(v_stage);
#if CAMERAS > 0
    color = over_inner(color, v_inner_clip[0], u_inner_inv_soft[0], u_inner0);
#endif
#if CAMERAS > 1
    color = over_inner(color, v_inner_clip[1], u_inner_inv_soft[1], u_inner1);
#endif
#if CAMERAS > 2
    color = over_inner(color, v_inner_clip[2], u_inner_inv_soft[2], u_inner2);
#endif
#if CAMERAS > 3
    color = over_inner(color, v_inner_clip[3], u_inner_inv_soft[3], u_inner3);
#endif
    o_color = vec4(srgb_encode(color), 1.0);
}
#endif
