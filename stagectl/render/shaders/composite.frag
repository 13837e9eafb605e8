#version 330 core
// Canvas composition, fragment stage (stagectl/render/compositor.py). compositor.py inserts defines after the
// #version line and compiles one program per variant:
//   CAMERAS n (0..4)  full composition: the outer image, then inner frusta 0..n-1 over it (0: outer only);
//                     unrolled, so no sampler is indexed dynamically and llvmpipe runs no loop;
//   INNER_ONLY        tiles wholly inside the top camera's full-weight region: that camera's image alone
//                     (what the full composition gives there, with weight exactly 1);
//   COPY              restore tiles from the output's cached outer-only canvas (texelFetch, same size);
//   PATTERN k         a test pattern over every mapped pixel (1 solid, 2 checkerboard, 3 colour bars, 4 ArUco,
//                     5 cabinet ID; stagectl/render/patterns.py documents each);
//   BURNIN            burn-in text boxes (other fragments are discarded: drawn over what the canvas holds).
// Always defined: MAX_WALLS, MAX_CARDS, MAX_BURN_IN (the uniform array sizes, from plan.py / features.py).
// Feature defines (stagectl/render/features.py; none of them when every feature is off, so the plain
// composition is unchanged): CARDS (light cards), WALL_CC / WALL_LUT (per-wall colour correction of the outer
// image), INNER_CC / INNER_LUT (colour correction of the inner frusta), KEY (chroma key instead of the inner
// image), MARKERS (tracking markers in the key).
// Grades as OpenColorIO functions (stagectl/render/grades.py, the compositor's default): WALL_GRADE and
// INNER_GRADE take the place of WALL_CC / WALL_LUT and INNER_CC / INNER_LUT; compositor.py inserts the grade
// text (OCIO's functions, their LUT samplers and exposure uniforms, and the selectors
// vec3 wall_grade(vec3 c, int w) and vec3 inner_grade(vec3 c, int look)) after the defines. The walls' and the
// cameras' OCIO looks are part of those functions (a wall's: its look, then its grade; a camera's look: its own
// function in the inner part, chosen per inner slot by u_inner_look, the camera in that slot).
//
// For the fragment's stage position p (metres):
//   outer: d = p - u_outer_eye; the cube face is the axis of the largest |d| component and its sign (face
//          2*axis for +, 2*axis+1 for -, plan.CUBE_FACES order); e = u_face_rotation[face] * d (rows right,
//          up, forward), face NDC = e.xy / e.z in [-1, 1]; atlas texel = u_face_origin[face]
//          + (ndc + 1) / 2 * u_face_size (GL texel coordinates; each tile has a 1-texel gutter rendered
//          beyond 90 degrees, so bilinear filtering never reads another face).
//          Then the wall's grade (WALL_GRADE, or WALL_CC / WALL_LUT) and the light cards under the frustum.
//   inner i (in order, later over earlier): clip = u_inner_vp[i] * (p, 1) (the camera's P @ V with overscan,
//          computed per vertex and interpolated: it is affine in p);
//          in front when clip.w > W_EPS (conventions.md, frustum.W_EPS); ndc = clip.xy / clip.w;
//          d = 1 - max(|ndc.x|, |ndc.y|)  (= 1 - max(|2u - 1|, |2v - 1|): 1 at the centre, 0 on the border);
//          a = clamp(d / soft_edge, 0, 1); weight = a * a * (3 - 2 a) (smoothstep), 0 behind the eye;
//          colour = mix(colour, inner_i(s, t), weight) with GL texture coordinates (s, t) = (ndc + 1) / 2
//          (t = 1 - v: the inner target was rendered by GL, row 0 = bottom, and is never flipped);
//          inner_i is graded (INNER_GRADE: its camera's look and the inner grade, or INNER_CC / INNER_LUT), or
//          replaced by the key colour and markers (KEY). The blend is in the working space (linear light),
//          before the output's encode.
//   then the light cards over the frustum.
//   output: OUTPUT_ENCODE(linear colour), alpha 1. Without OCIO_OUTPUT (every output of a stage without a
//          colour: section) that is the sRGB encoding (IEC 61966-2-1 piecewise curve) and the rgba8 canvas
//          quantises it (round to nearest). With OCIO_OUTPUT (stagectl/color/output.py) compositor.py inserts
//          OpenColorIO's GPU text (function ocio_output, its LUT samplers and uniforms) after the defines,
//          and the encode is ocio_output() then RGB rounded in the shader to the canvas depth: code
//          d = floor(v * CODE_TOP + 0.5) (full range) or floor((219 v + 16) * CODE_SCALE + 0.5) (NARROW,
//          BT.2100), clamped to the allowed codes, stored as d / CODE_TOP (CODE_TOP = 2^n - 1,
//          CODE_SCALE = 2^(n-8)); so the unorm canvas holds exactly stagectl.color.transfer.quantize's codes
//          whatever the driver's float->unorm rounding (llvmpipe's 10-bit conversion is not round-to-
//          nearest, docs/colour.md). Patterns and burn-in give 8-bit sRGB codes: OUTPUT_CODE shows them as
//          the same light on any output (decoded to linear, then OUTPUT_ENCODE); unchanged without OCIO.
// Wall raster positions (v_raster) are pixels, top-left origin, y down; a fragment centre is at +0.5.
// No data-dependent branches in the composition: llvmpipe pays for both sides of a branch.

const float W_EPS = 1e-6;

#ifndef MAX_WALLS
#define MAX_WALLS 16
#endif
#ifndef MAX_CARDS
#define MAX_CARDS 16
#endif
#ifndef MAX_BURN_IN
#define MAX_BURN_IN 32
#endif

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

vec3 srgb_decode(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    vec3 lo = c / 12.92;
    vec3 hi = pow((c + 0.055) / 1.055, vec3(2.4));
    return mix(hi, lo, vec3(lessThanEqual(c, vec3(0.04045))));
}

// ---------------------------------------------------------------------------------------------- output encode
#ifdef OCIO_OUTPUT
// quantised codes of signal v at the canvas depth, as unorm floats (see the header)
vec3 output_round(vec3 v) {
#ifdef NARROW
    vec3 d = floor((219.0 * v + 16.0) * CODE_SCALE + 0.5);
    d = clamp(d, vec3(CODE_SCALE), vec3(CODE_TOP - CODE_SCALE));
#else
    vec3 d = clamp(floor(v * CODE_TOP + 0.5), 0.0, CODE_TOP);
#endif
    return d / CODE_TOP;
}
vec3 output_encode(vec3 c) {
    return output_round(ocio_output(vec4(c, 1.0)).rgb);
}
#define OUTPUT_ENCODE(c) output_encode(c)
#define OUTPUT_CODE(c) output_encode(srgb_decode(c))
#else
#define OUTPUT_ENCODE(c) srgb_encode(c)
#define OUTPUT_CODE(c) (c)
#endif

int wall_id() {
    return int(v_ids.x + 0.5);
}

// ---------------------------------------------------------------------------------------------- light cards
#if defined(CARDS)
uniform vec4 u_card_rect[MAX_CARDS];        // x0, y0, x1, y1 wall raster pixels
uniform vec4 u_card_color[MAX_CARDS];       // linear rgb * intensity, wall index
uniform float u_card_inv_feather[MAX_CARDS];  // 1 / feather (pixels); 0: hard edge
uniform int u_cards_under;                  // cards [0, under) lie under the inner frustum
uniform int u_cards_total;                  // cards [under, total) over it

// cards [first, last) mixed over color, in order: d = min(x - x0, x1 - x, y - y0, y1 - y),
// a = clamp(d / feather, 0, 1) (hard edge: centre in [x0, x1) x [y0, y1)), weight = a^2 (3 - 2a) on its wall.
vec3 cards(vec3 color, int first, int last) {
    vec2 p = v_raster;
    for (int i = first; i < last; ++i) {
        vec4 r = u_card_rect[i];
        float d = min(min(p.x - r.x, r.z - p.x), min(p.y - r.y, r.w - p.y));
        float inv = u_card_inv_feather[i];
        float hard = (p.x >= r.x && p.x < r.z && p.y >= r.y && p.y < r.w) ? 1.0 : 0.0;
        float a = inv > 0.0 ? clamp(d * inv, 0.0, 1.0) : hard;
        float on_wall = abs(u_card_color[i].w - v_ids.x) < 0.5 ? 1.0 : 0.0;
        color = mix(color, u_card_color[i].rgb, a * a * (3.0 - 2.0 * a) * on_wall);
    }
    return color;
}
#endif

// ---------------------------------------------------------------------------------------------- colour
#if defined(WALL_CC) || defined(INNER_CC)
const vec3 LUMA_709 = vec3(0.2126, 0.7152, 0.0722);

// ASC CDL v1.2: clamp(c * slope + offset, 0, 1) ^ power, saturation about Rec. 709 luma, clamp to [0, 1].
vec3 cdl(vec3 c, vec3 slope, vec3 offset, vec3 power, float sat) {
    vec3 v = pow(clamp(c * slope + offset, 0.0, 1.0), power);
    float l = dot(v, LUMA_709);
    return clamp(vec3(l) + sat * (v - vec3(l)), 0.0, 1.0);
}
#endif

#if defined(WALL_LUT) || defined(INNER_LUT)
uniform sampler2D u_lut;        // LUT atlas (rgba32f): LUT rows [y0, y0 + N) from the top, texel (r + N b, g)
uniform vec2 u_lut_inv_size;    // 1 / atlas (w, h)

// lut = (first atlas row, N, on, 0); the LUT reads and writes sRGB-encoded values: e = encode(c),
// t = clamp((e - dmin) * dinv, 0, 1), x = t (N - 1); bilinear in (r, g) inside blue slices b0 and b0 + 1
// (hardware filtering, the sample point stays inside the slice), mixed by the blue fraction = trilinear.
vec3 lut_apply(vec3 c, vec4 lut, vec3 dmin, vec3 dinv) {
    vec3 t = clamp((srgb_encode(c) - dmin) * dinv, 0.0, 1.0);
    float n = lut.y;
    vec3 x = t * (n - 1.0);
    float b0 = min(floor(x.b), n - 2.0);
    float fb = x.b - b0;
    vec2 px = vec2(b0 * n + x.r + 0.5, lut.x + x.g + 0.5);   // image texels from the top-left
    vec2 uv = vec2(px.x * u_lut_inv_size.x, 1.0 - px.y * u_lut_inv_size.y);  // GL: t = 1 - v
    vec3 s0 = texture(u_lut, uv).rgb;
    vec3 s1 = texture(u_lut, uv + vec2(n * u_lut_inv_size.x, 0.0)).rgb;
    return mix(c, srgb_decode(mix(s0, s1, fb)), lut.z);
}
#endif

#if defined(WALL_CC) || defined(WALL_LUT)
#ifdef WALL_CC
uniform vec3 u_wall_gain[MAX_WALLS];     // 2^exposure * white balance
uniform vec3 u_wall_slope[MAX_WALLS];
uniform vec3 u_wall_offset[MAX_WALLS];
uniform vec3 u_wall_power[MAX_WALLS];
uniform float u_wall_sat[MAX_WALLS];
uniform float u_wall_cdl[MAX_WALLS];     // 1: apply the CDL
#endif
#ifdef WALL_LUT
uniform vec4 u_wall_lut[MAX_WALLS];
uniform vec3 u_wall_lut_min[MAX_WALLS];
uniform vec3 u_wall_lut_inv[MAX_WALLS];
#endif

vec3 wall_cc(vec3 c) {
    int w = wall_id();
#ifdef WALL_CC
    c = c * u_wall_gain[w];
    c = mix(c, cdl(c, u_wall_slope[w], u_wall_offset[w], u_wall_power[w], u_wall_sat[w]), u_wall_cdl[w]);
#endif
#ifdef WALL_LUT
    c = lut_apply(c, u_wall_lut[w], u_wall_lut_min[w], u_wall_lut_inv[w]);
#endif
    return c;
}
#endif

#if defined(INNER_CC) || defined(INNER_LUT)
#ifdef INNER_CC
uniform vec3 u_inner_gain;
uniform vec3 u_inner_slope;
uniform vec3 u_inner_offset;
uniform vec3 u_inner_power;
uniform float u_inner_sat;
uniform float u_inner_cdl;
#endif
#ifdef INNER_LUT
uniform vec4 u_inner_lut;
uniform vec3 u_inner_lut_min;
uniform vec3 u_inner_lut_inv;
#endif

vec3 inner_cc(vec3 c) {
#ifdef INNER_CC
    c = c * u_inner_gain;
    c = mix(c, cdl(c, u_inner_slope, u_inner_offset, u_inner_power, u_inner_sat), u_inner_cdl);
#endif
#ifdef INNER_LUT
    c = lut_apply(c, u_inner_lut, u_inner_lut_min, u_inner_lut_inv);
#endif
    return c;
}
#endif

// ---------------------------------------------------------------------------------------------- chroma key
#ifdef KEY
uniform vec3 u_key_color;                // linear
#ifdef MARKERS
uniform vec3 u_marker_color;             // linear
uniform vec4 u_marker_grid[MAX_WALLS];   // spacing x, y (raster pixels), 0, 0
uniform vec4 u_marker_size[MAX_WALLS];   // half arm length x, y; half thickness x, y (raster pixels)
#endif

// crosses centred at ((i + 0.5) sx, (j + 0.5) sy): d = |mod(p, s) - s / 2|,
// on = (d.x < len.x && d.y < thick.y) || (d.y < len.y && d.x < thick.x)
vec3 key_color() {
#ifdef MARKERS
    int w = wall_id();
    vec2 s = u_marker_grid[w].xy;
    vec4 m = u_marker_size[w];
    vec2 d = abs(mod(v_raster, s) - 0.5 * s);
    bool on = (d.x < m.x && d.y < m.w) || (d.y < m.y && d.x < m.z);
    return on ? u_marker_color : u_key_color;
#else
    return u_key_color;
#endif
}
#endif

#if !defined(COPY) && !defined(PATTERN) && !defined(BURNIN)
#if defined(INNER_GRADE)
uniform int u_inner_look[4];  // per inner slot (INNER_ONLY: [0], the top camera): its look function, -1 none
#define INNER_LOOK(i) u_inner_look[i]
#else
#define INNER_LOOK(i) -1
#endif
// what an inner frustum shows at GL texture coordinate uv: the key, or the corrected inner image (look: the
// camera's look function in the inner grade part, -1: none)
vec3 inner_source(sampler2D tex, vec2 uv, int look) {
#ifdef KEY
    return key_color();
#else
    vec3 s = texture(tex, uv).rgb;
#if defined(INNER_GRADE)
    s = inner_grade(s, look);
#elif defined(INNER_CC) || defined(INNER_LUT)
    s = inner_cc(s);
#endif
    return s;
#endif
}
#endif

#if defined(COPY)
uniform sampler2D u_source;          // the cached outer-only canvas of this output (its canvas format)

void main() {
    o_color = texelFetch(u_source, ivec2(gl_FragCoord.xy), 0);
#ifdef OCIO_OUTPUT
    o_color.rgb = floor(o_color.rgb * CODE_TOP + 0.5) / CODE_TOP;  // the same code again, on any driver
#endif
}

#elif defined(PATTERN)
uniform vec4 u_wall_info[MAX_WALLS];  // raster W, H, cabinet pw, ph (pixels)
uniform vec3 u_pattern_color;         // solid: linear
uniform float u_squares;              // checkerboard squares per cabinet side
uniform sampler2D u_cells;            // cell atlas (rgba8, value in r), image row 0 = top
uniform vec2 u_cells_size;            // atlas (w, h) texels
uniform vec4 u_cell_place[MAX_WALLS]; // atlas x, y of the wall's cabinet (0, 0) cell; offset x, y (pixels)
uniform vec4 u_cell_geom[MAX_WALLS];  // cell w, h (texels); scale (pixels per texel); 0

// the cell texel shown at integer raster pixel pi (inside = 0 outside the cell); integer maths only
float cell_value(int w, ivec2 pi, ivec2 cab, ivec2 local, out float inside) {
    vec4 place = u_cell_place[w];
    vec4 geom = u_cell_geom[w];
    ivec2 rel = local - ivec2(place.zw);
    int s = max(int(geom.z), 1);
    ivec2 q = rel / s;
    ivec2 cell = ivec2(geom.xy);
    inside = (all(greaterThanEqual(rel, ivec2(0))) && all(lessThan(q, cell))) ? 1.0 : 0.0;
    ivec2 t = clamp(ivec2(place.xy) + cab * cell + q, ivec2(0), ivec2(u_cells_size) - 1);
    return texelFetch(u_cells, ivec2(t.x, int(u_cells_size.y) - 1 - t.y), 0).r;  // GL row 0 = bottom
}

void main() {
    int w = wall_id();
    vec4 info = u_wall_info[w];
    vec2 p = v_raster;
    ivec2 pi = ivec2(floor(p));
    ivec2 cab_px = ivec2(info.zw);
    ivec2 cab = pi / cab_px;
    ivec2 local = pi - cab * cab_px;
    vec3 code = vec3(0.0);  // 8-bit sRGB codes / 255
#if PATTERN == 1
    code = srgb_encode(u_pattern_color);
#elif PATTERN == 2
    vec2 sq = floor(p * u_squares / info.zw);
    code = vec3(mod(sq.x + sq.y, 2.0) < 0.5 ? 1.0 : 0.0);
#elif PATTERN == 3
    int bar = min(int(floor(p.x * 7.0 / info.x)), 6);
    const float L = 191.0 / 255.0;
    vec3 bars[7] = vec3[7](vec3(L, L, L), vec3(L, L, 0.0), vec3(0.0, L, L), vec3(0.0, L, 0.0),
                           vec3(L, 0.0, L), vec3(L, 0.0, 0.0), vec3(0.0, 0.0, L));
    code = bars[bar];
#elif PATTERN == 4
    float inside;
    float v = cell_value(w, pi, cab, local, inside);
    code = vec3(inside > 0.5 ? v : 1.0);
#elif PATTERN == 5
    float inside;
    float v = cell_value(w, pi, cab, local, inside);
    float bg = ((cab.x + cab.y) % 2 == 0) ? 40.0 / 255.0 : 72.0 / 255.0;
    bool edge = local.x == 0 || local.y == 0 || local.x == cab_px.x - 1 || local.y == cab_px.y - 1;
    float c = edge ? 1.0 : bg;
    c = (inside > 0.5 && v > 0.5) ? 1.0 : c;
    code = vec3(c);
#endif
    o_color = vec4(OUTPUT_CODE(code), 1.0);
}

#elif defined(BURNIN)
uniform vec4 u_burn_box[MAX_BURN_IN];    // per mapping: raster x, y, w, h of the box (w = 0: none)
uniform vec4 u_burn_place[MAX_BURN_IN];  // text offset x, y in the box (pixels), scale, 0
uniform sampler2D u_burn_text;           // text bits (rgba8, value in r), image row 0 = top
uniform vec2 u_burn_text_size;           // texels (w, h)

void main() {
    int m = int(v_ids.y + 0.5);
    if (m >= MAX_BURN_IN) discard;
    vec4 box = u_burn_box[m];
    ivec2 pi = ivec2(floor(v_raster)) - ivec2(box.xy);
    if (pi.x < 0 || pi.y < 0 || pi.x >= int(box.z) || pi.y >= int(box.w)) discard;
    vec4 place = u_burn_place[m];
    ivec2 rel = pi - ivec2(place.xy);
    ivec2 q = rel / max(int(place.z), 1);
    ivec2 size = ivec2(u_burn_text_size);
    bool inside = all(greaterThanEqual(rel, ivec2(0))) && all(lessThan(q, size));
    ivec2 t = clamp(q, ivec2(0), size - 1);
    float bit = texelFetch(u_burn_text, ivec2(t.x, size.y - 1 - t.y), 0).r;
    o_color = vec4(OUTPUT_CODE(vec3(inside && bit > 0.5 ? 1.0 : 0.0)), 1.0);
}

#elif defined(INNER_ONLY)
uniform sampler2D u_inner_top;
noperspective in vec4 v_inner_clip0;  // u_inner_top_vp * (stage, 1), from the vertex stage

void main() {
    vec4 clip = v_inner_clip0;
    vec2 ndc = clip.xy / clip.w;     // the plan guarantees clip.w > W_EPS on the whole tile
    vec3 color = inner_source(u_inner_top, 0.5 * ndc + 0.5, INNER_LOOK(0));
#ifdef CARDS
    color = cards(color, u_cards_under, u_cards_total);
#endif
    o_color = vec4(OUTPUT_ENCODE(color), 1.0);
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

vec3 over_inner(vec3 color, vec4 clip, float inv_soft, sampler2D tex, int look) {
    float front = clip.w > W_EPS ? 1.0 : 0.0;
    vec2 ndc = clip.xy / max(clip.w, W_EPS);
    float d = 1.0 - max(abs(ndc.x), abs(ndc.y));
    float a = clamp(d * inv_soft, 0.0, 1.0);
    float weight = a * a * (3.0 - 2.0 * a) * front;
    vec3 s = inner_source(tex, 0.5 * ndc + 0.5, look);
    return mix(color, s, weight);
}

void main() {
    vec3 color = outer_color(v_stage);
#if defined(WALL_GRADE)
    color = wall_grade(color, wall_id());
#elif defined(WALL_CC) || defined(WALL_LUT)
    color = wall_cc(color);
#endif
#ifdef CARDS
    color = cards(color, 0, u_cards_under);
#endif
#if CAMERAS > 0
    color = over_inner(color, v_inner_clip[0], u_inner_inv_soft[0], u_inner0, INNER_LOOK(0));
#endif
#if CAMERAS > 1
    color = over_inner(color, v_inner_clip[1], u_inner_inv_soft[1], u_inner1, INNER_LOOK(1));
#endif
#if CAMERAS > 2
    color = over_inner(color, v_inner_clip[2], u_inner_inv_soft[2], u_inner2, INNER_LOOK(2));
#endif
#if CAMERAS > 3
    color = over_inner(color, v_inner_clip[3], u_inner_inv_soft[3], u_inner3, INNER_LOOK(3));
#endif
#ifdef CARDS
    color = cards(color, u_cards_under, u_cards_total);
#endif
    o_color = vec4(OUTPUT_ENCODE(color), 1.0);
}
#endif
