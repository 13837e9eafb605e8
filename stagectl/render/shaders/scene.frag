#version 330 core
// stagectl built-in test world, fragment stage (stagectl/render/scene.py). Output: linear-light RGB, alpha 1.
// Compiled twice, like scene.vert: BACKGROUND defined for the ground + sky pass, not defined for meshes.
//
// Shading model (the numpy model in tests/gl/test_scene.py mirrors it):
//   lit   = albedo * (ambient + sun * max(0, n . l))        (per vertex for meshes; per material, on the CPU,
//                                                            for the ground, whose normal is +Z everywhere)
//   color = mix(lit, fog_color, 1 - exp(-distance * fog_density))
//
// Background: for each pixel's view ray from the eye (u_eye, stage):
//   * rays that go down (ray z < 0) with the eye above the ground plane z = u_ground_z: an infinite ground
//     with a procedural anti-aliased grid (minor line every u_grid_spacing m, major every u_grid_major lines,
//     the major lines x = 0 (stage Y axis) and y = 0 (stage X axis) tinted); gl_FragDepth is the depth of
//     the hit point, so meshes drawn afterwards are occluded correctly;
//   * every other ray: a sky gradient from u_sky_horizon (elevation 0) to u_sky_zenith, depth 1 (u_nadir
//     below the horizon when the eye is under the ground).
//   The ground / sky boundary is therefore exactly the stage horizon (rays with z = 0).
// Per-pixel work is kept small on purpose: CI renders on llvmpipe, where every ALU op of a fullscreen pass
// counts.

uniform vec3 u_eye;            // stage, metres
uniform vec3 u_fog_color;
uniform float u_fog_density;   // 1/m

layout(location = 0) out vec4 o_color;

vec3 fog(vec3 lit, float distance_m) {
    return mix(u_fog_color, lit, exp(-distance_m * u_fog_density));
}

#ifdef BACKGROUND
uniform vec3 u_sky_horizon;
uniform vec3 u_sky_zenith;
uniform vec3 u_nadir;
uniform float u_ground_z;
uniform float u_eye_clip_z;    // (u_view_proj * (u_eye, 1)).z; its x, y, w are 0
uniform vec3 u_ground_lit;     // lit colours of the ground materials (normal +Z)
uniform vec3 u_line_lit;
uniform vec3 u_x_axis_lit;     // the line y = 0 (along stage X)
uniform vec3 u_y_axis_lit;     // the line x = 0 (along stage Y)
uniform vec4 u_grid_scale;     // (1, 1, 1/major, 1/major) / spacing: stage xy -> (minor, major) cells
uniform vec4 u_line_width;     // line widths in cells: (minor, minor, major, major)

in vec3 v_ray;
in vec2 v_ray_clip_zw;

void main() {
    float height = u_eye.z - u_ground_z;
    // the ground hit eye + t * ray, for every pixel so that fwidth() runs in uniform control flow
    float t = height / max(-v_ray.z, 1e-9);
    vec2 p = u_eye.xy + t * v_ray.xy;
    vec4 c = p.xyxy * u_grid_scale;
    vec4 fw = fwidth(c);                                          // pixel footprint, in cells
    if (v_ray.z < 0.0 && height > 0.0) {
        vec4 d = abs(fract(c + 0.5) - 0.5);                       // distance to the nearest line, in cells
        vec4 drawn = max(u_line_width, fw);                       // never thinner than a pixel ...
        vec4 cover = clamp((0.5 * drawn - d) / fw + 0.5, 0.0, 1.0);
        cover *= u_line_width / drawn;                            // ... but fainter
        cover = mix(cover, u_line_width, clamp(4.0 * fw - 1.0, 0.0, 1.0));  // beyond Nyquist: the average
        vec2 axis = cover.zw * vec2(lessThan(abs(c.zw), vec2(0.5)));          // the major line through 0
        vec3 lit = mix(u_ground_lit, u_line_lit, max(max(cover.x, cover.y), max(cover.z, cover.w)));
        lit = mix(lit, u_x_axis_lit, axis.y);                     // |y| small: the stage X axis
        lit = mix(lit, u_y_axis_lit, axis.x);                     // |x| small: the stage Y axis
        o_color = vec4(fog(lit, t * length(v_ray)), 1.0);
        // clip of eye + t * ray = (0, 0, eye_clip_z, 0) + t * ray_clip
        float ndc_z = u_eye_clip_z / (t * v_ray_clip_zw.y) + v_ray_clip_zw.x / v_ray_clip_zw.y;
        gl_FragDepth = clamp(0.5 * ndc_z + 0.5, 0.0, 1.0);
    } else if (v_ray.z >= 0.0) {
        float k = sqrt(v_ray.z * inversesqrt(dot(v_ray, v_ray)));  // sqrt(sin(elevation))
        o_color = vec4(mix(u_sky_horizon, u_sky_zenith, k), 1.0);
        gl_FragDepth = 1.0;
    } else {
        o_color = vec4(u_nadir, 1.0);
        gl_FragDepth = 1.0;
    }
}

#else
in vec3 v_position;
in vec3 v_lit;

void main() {
    o_color = vec4(fog(v_lit, distance(v_position, u_eye)), 1.0);
}
#endif
