#version 330 core
// Canvas composition, vertex stage (stagectl/render/compositor.py); compiled with the same defines as
// composite.frag (CAMERAS n, INNER_ONLY, COPY, PATTERN or BURNIN, and the feature defines).
//
// One vertex buffer per output canvas (plan.CanvasTiles.vertices(): four corners per tile of a mapped wall
// region). Each vertex carries its CANVAS position in pixels (origin top-left, y down, docs/conventions.md
// "Output canvases"), its STAGE position (metres, Z up), its wall RASTER position (pixels, top-left origin)
// and the wall / mapping indices. Inside a tile all three positions are affine in one another (a facet is
// planar, a mapping is a rotation plus a shift), so plain screen-space interpolation (w = 1, noperspective)
// gives every fragment its exact stage point and LED pixel. For the same reason the inner cameras' clip
// coordinates (VP * stage, affine in the stage position) are computed here per vertex and interpolated
// exactly; the fragment stage only divides by w.
//
// Canvas px -> NDC: x_ndc = 2 x / W - 1, y_ndc = 1 - 2 y / H. The y flip puts canvas row 0 at the top of the
// GL framebuffer (GL row H - 1); the readback (stagectl.render.gl.readback) flips GL rows back, so the numpy
// canvas has row 0 = top. This shader and the readback are the only places the row order changes.

uniform vec2 u_canvas_size;     // canvas (W, H) pixels

layout(location = 0) in vec2 a_canvas;   // canvas pixels
layout(location = 1) in vec3 a_stage;    // stage metres
layout(location = 2) in vec2 a_raster;   // wall raster pixels (for wall-UV content: light cards, patterns)
layout(location = 3) in vec2 a_ids;      // wall index, mapping index

noperspective out vec3 v_stage;
noperspective out vec2 v_raster;
flat out vec2 v_ids;

#if defined(COPY) || defined(PATTERN) || defined(BURNIN)
#define NO_INNER 1
#endif

#if defined(INNER_ONLY)
uniform mat4 u_inner_top_vp;
noperspective out vec4 v_inner_clip0;
#elif !defined(NO_INNER)
#ifndef CAMERAS
#define CAMERAS 1
#endif
#if CAMERAS > 0
uniform mat4 u_inner_vp[CAMERAS];
noperspective out vec4 v_inner_clip[CAMERAS];
#endif
#endif

void main() {
    v_stage = a_stage;
    v_raster = a_raster;
    v_ids = a_ids;
#if defined(INNER_ONLY)
    v_inner_clip0 = u_inner_top_vp * vec4(a_stage, 1.0);
#elif !defined(NO_INNER) && CAMERAS > 0
    for (int i = 0; i < CAMERAS; ++i) {
        v_inner_clip[i] = u_inner_vp[i] * vec4(a_stage, 1.0);
    }
#endif
    vec2 ndc = vec2(2.0 * a_canvas.x / u_canvas_size.x - 1.0, 1.0 - 2.0 * a_canvas.y / u_canvas_size.y);
    gl_Position = vec4(ndc, 0.0, 1.0);
}
