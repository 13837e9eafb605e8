#version 330 core
// Equirectangular 360 plate, fragment stage (stagectl/render/plate.py). Output: linear-light RGB, alpha 1.
//
//   d = normalize(R_plate_stage * (far / far.w - eye))            the pixel's view direction, plate frame
//   u = 0.5 + atan2(d.x, d.y) / (2 pi)       u = 0.5: stage +Y, 0.75: +X, 0.25: -X, 0 / 1: -Y (the seam)
//   v = 0.5 - asin(d.z) / pi                 v = 0: zenith (image row 0 = top), 1: nadir
// GL texture coordinates: s = u (wrap REPEAT), t = 1 - v (the upload flipped rows to GL's row 0 = bottom).
// Derivatives for the mip level are taken from s with the seam's jump of 1 removed, and the s derivatives are
// scaled by cos(latitude): toward the poles a row of the image covers an ever smaller circle, so the raw s
// derivative would pick a far too coarse mip level (blurring in v, mixing the pole with the horizon); scaled,
// the level follows the pixel's angular footprint (the rows near a pole are oversampled in s anyway).

uniform sampler2D u_plate;
uniform mat3 u_plate_from_stage;  // R_plate_stage = transpose(R_stage_plate)
uniform vec3 u_eye;               // stage, metres

in vec4 v_far;

layout(location = 0) out vec4 o_color;

const float INV_2PI = 0.15915494309189535;
const float INV_PI = 0.3183098861837907;

void main() {
    vec3 d = normalize(u_plate_from_stage * (v_far.xyz / v_far.w - u_eye));
    float y = (d.x == 0.0 && d.y == 0.0) ? 1.0 : d.y;  // atan(0, 0) is undefined: straight up or down
    float u = 0.5 + atan(d.x, y) * INV_2PI;
    float v = 0.5 - asin(clamp(d.z, -1.0, 1.0)) * INV_PI;
    vec2 st = vec2(u, 1.0 - v);
    vec2 gx = dFdx(st);
    vec2 gy = dFdy(st);
    float c = sqrt(max(1.0 - d.z * d.z, 0.0));  // cos(latitude)
    gx.x = (gx.x - round(gx.x)) * c;
    gy.x = (gy.x - round(gy.x)) * c;
    o_color = vec4(textureGrad(u_plate, st, gx, gy).rgb, 1.0);
}
