"""OpenColorIO's GPU path as a GL pass: an OCIO shader over a float texture into a float framebuffer.

:class:`OcioPass` takes a :class:`~stagectl.color.ocio.GpuShader` (plain data from
:meth:`ColorProcessor.gpu_shader <stagectl.color.ocio.ColorProcessor.gpu_shader>`) and makes, through the
context's :class:`~stagectl.render.gl.resources.ResourceRegistry`:

* a program: a full-screen triangle from ``gl_VertexID`` (no attributes) and a fragment stage of
  ``#version 330 core`` + OCIO's GLSL 4.0 text + a ``main`` that reads the source texel at the fragment's own
  pixel (``texelFetch``, no filtering: a colour conversion is per pixel) and writes
  ``<function_name>(texel)``;
* OCIO's LUT textures: 3D LUTs as ``GL_TEXTURE_3D`` ``RGB32F``, 1D LUTs as ``GL_TEXTURE_1D`` and folded
  ones as ``GL_TEXTURE_2D``, ``R32F`` or ``RGB32F``, with the filter OCIO asks for, clamp to edge, on units
  ``first_unit``, ``first_unit + 1``, ... (unit 0 holds the source image). They are :class:`LutTexture`
  objects adopted by the registry (:meth:`ResourceRegistry.adopt`), so they are labelled and freed with it;
* the uniforms OCIO declares, set once; the dynamic exposure (stops) is :meth:`OcioPass.set_exposure`;
* with ``code_bits``, RGB rounded to the nearest code of that depth in the shader (see
  :func:`fragment_source`): the way to get exact, driver-independent codes into an ``rgb10_a2`` or
  ``rgba16`` canvas.

:meth:`OcioPass.draw` renders a source texture into a framebuffer of the same size (``rgba32f`` to keep the
result exact; an ``rgb10_a2`` or ``rgba16`` canvas gets GL's unorm rounding). Rows: none are flipped here —
the source texel of GL pixel ``(x, y)`` lands on GL pixel ``(x, y)``, so an image uploaded with
:meth:`Texture2D.upload` (row 0 = top) reads back the same way round with
:func:`~stagectl.render.gl.readback.read_pixels`. :meth:`OcioPass.apply` does upload, draw and readback of a
numpy image in one call (tests, tools; not for the frame loop).

Every draw ends with :func:`~stagectl.render.gl.resources.reset_draw_state` and the LUT units unbound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stagectl.color.ocio import GpuShader, ShaderTexture, ShaderTexture3D
from stagectl.render.gl.errors import ResourceError
from stagectl.render.gl.platform import GL
from stagectl.render.gl.resources import (
    Framebuffer,
    GLObject,
    OwnedObjects,
    ResourceRegistry,
    Texture2D,
    gl_pass,
    reset_draw_state,
)

__all__ = [
    "VERTEX_SOURCE", "fragment_source", "LutTexture", "make_lut", "make_luts", "set_shader_uniform",
    "OcioPass",
]

VERTEX_SOURCE = """#version 330 core
// OCIO pass (stagectl/render/ocio_pass.py): one full-screen triangle from gl_VertexID, no attributes.
void main() {
    vec2 ndc = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0);
    gl_Position = vec4(ndc, 0.0, 1.0);
}
"""


def fragment_source(shader: GpuShader, *, code_bits: int | None = None) -> str:
    """The fragment stage of the pass: ``#version`` + OCIO's text + ``main`` applying the OCIO function to the
    texel of ``u_image`` at this fragment's pixel. ``code_bits`` (8, 10, 12 or 16): RGB is rounded to the
    nearest code in the shader, ``floor(v (2^n - 1) + 0.5) / (2^n - 1)`` on 0..1, so a unorm target of that
    depth stores exactly :func:`stagectl.color.transfer.quantize`'s full-range codes whatever the driver's
    float-to-unorm rounding (GL allows either neighbour; llvmpipe's 10-bit conversion is not round-to-nearest,
    docs/colour.md)."""
    if code_bits is None:
        store = "    frag_color = o;\n"
    else:
        if code_bits not in (8, 10, 12, 16):
            raise ResourceError(f"OCIO pass: code_bits must be 8, 10, 12 or 16, got {code_bits!r}")
        top = f"{(1 << code_bits) - 1}.0"
        store = f"    frag_color = vec4(floor(clamp(o.rgb, 0.0, 1.0) * {top} + 0.5) / {top}, o.a);\n"
    return (
        f"#version {shader.glsl_version}\n"
        f"// OCIO pass (stagectl/render/ocio_pass.py): OpenColorIO {shader.language} text, then main().\n"
        f"{shader.text}\n"
        "uniform sampler2D u_image;\n"
        "out vec4 frag_color;\n"
        "void main() {\n"
        "    vec4 c = texelFetch(u_image, ivec2(gl_FragCoord.xy), 0);\n"
        f"    vec4 o = {shader.function_name}(c);\n"
        f"{store}"
        "}\n"
    )


class LutTexture(GLObject):
    """One LUT texture of an OCIO shader (``target`` ``GL_TEXTURE_1D``, ``_2D`` or ``_3D``), bound to the
    sampler ``sampler`` on texture ``unit``."""

    kind = "texture"

    def __init__(self, registry, glo, label, target: int, sampler: str, unit: int) -> None:
        super().__init__(registry, glo, label)
        self.target = target
        self.sampler = sampler
        self.unit = unit

    def bind(self) -> None:
        self._require_live()
        GL.glActiveTexture(GL.GL_TEXTURE0 + self.unit)
        GL.glBindTexture(self.target, self.glo)

    def unbind(self) -> None:
        GL.glActiveTexture(GL.GL_TEXTURE0 + self.unit)
        GL.glBindTexture(self.target, 0)

    def _delete(self) -> None:
        GL.glDeleteTextures([self.glo])


def _filter(interpolation: str) -> int:
    return GL.GL_NEAREST if interpolation == "nearest" else GL.GL_LINEAR


def make_lut(
    resources: ResourceRegistry, label: str, t: ShaderTexture | ShaderTexture3D, unit: int
) -> LutTexture:
    """One LUT texture of an OCIO shader (labelled ``<label>.<name>``, sampler ``t.sampler``) for texture
    ``unit``; creation binds it on the active unit, which the caller chooses."""
    if isinstance(t, ShaderTexture3D):
        target, internal, fmt = GL.GL_TEXTURE_3D, GL.GL_RGB32F, GL.GL_RGB
    else:
        target = GL.GL_TEXTURE_1D if t.dimensions == 1 else GL.GL_TEXTURE_2D
        internal, fmt = (GL.GL_R32F, GL.GL_RED) if t.channels == 1 else (GL.GL_RGB32F, GL.GL_RGB)
    data = np.ascontiguousarray(t.values, dtype=np.float32)
    glo = int(GL.glGenTextures(1))
    GL.glBindTexture(target, glo)
    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    if target == GL.GL_TEXTURE_3D:
        e = t.edge  # type: ignore[union-attr]
        GL.glTexImage3D(target, 0, internal, e, e, e, 0, fmt, GL.GL_FLOAT, data)
        GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_R, GL.GL_CLAMP_TO_EDGE)
    elif target == GL.GL_TEXTURE_1D:
        GL.glTexImage1D(target, 0, internal, t.width, 0, fmt, GL.GL_FLOAT, data)  # type: ignore[union-attr]
    else:
        GL.glTexImage2D(target, 0, internal, t.width, t.height, 0, fmt, GL.GL_FLOAT, data)  # type: ignore[union-attr]
        GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
    GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
    GL.glTexParameteri(target, GL.GL_TEXTURE_MIN_FILTER, _filter(t.interpolation))
    GL.glTexParameteri(target, GL.GL_TEXTURE_MAG_FILTER, _filter(t.interpolation))
    GL.glTexParameteri(target, GL.GL_TEXTURE_MAX_LEVEL, 0)
    GL.glBindTexture(target, 0)
    return resources.adopt(
        LutTexture(resources, glo, f"{label}.{t.name}", target, t.sampler, unit), GL.GL_TEXTURE
    )


def make_luts(resources: ResourceRegistry, shader: GpuShader | Sequence[ShaderTexture | ShaderTexture3D],
              label: str, first_unit: int) -> list[LutTexture]:
    """Every LUT texture of ``shader`` (3D first, then 1D/2D; or the textures given) on units ``first_unit``,
    ``first_unit + 1``, ... (creation binds them on the active unit, which the caller chooses); freed again if
    one fails."""
    textures = (*shader.textures_3d, *shader.textures) if isinstance(shader, GpuShader) else tuple(shader)
    made: list[LutTexture] = []
    try:
        for i, t in enumerate(textures):
            made.append(make_lut(resources, label, t, first_unit + i))
    except BaseException:
        for lut in made:
            lut.release()
        raise
    return made


def set_shader_uniform(program, name: str, kind: str, value) -> None:
    """Set one OCIO uniform (:class:`~stagectl.color.ocio.ShaderUniform` kind) on ``program`` (in use); a
    uniform the GLSL compiler optimised away is skipped."""
    loc = program.location(name)
    if loc < 0:
        return
    if kind == "float":
        GL.glUniform1f(loc, float(value))
    elif kind == "bool":
        GL.glUniform1i(loc, int(bool(value)))
    elif kind == "vec3":
        GL.glUniform3f(loc, *(float(v) for v in value))
    elif kind == "float_array":
        a = np.ascontiguousarray(value, dtype=np.float32)
        if a.size:
            GL.glUniform1fv(loc, a.size, a)
    elif kind == "int_array":
        a = np.ascontiguousarray(value, dtype=np.int32)
        if a.size:
            GL.glUniform1iv(loc, a.size, a)
    else:  # pragma: no cover - ShaderUniform kinds are fixed in stagectl.color.ocio
        raise ResourceError(f"{program.label}: uniform {name!r} of unknown kind {kind!r}")


class OcioPass:
    """One OCIO shader as a GL pass (see the module docstring). Create and use with the context current;
    ``release()`` frees its program, vertex array and LUT textures (as leaving a ``with OcioPass(...)`` block
    does)."""

    PASS = "ocio"

    def __init__(
        self,
        resources: ResourceRegistry,
        shader: GpuShader,
        *,
        label: str = "ocio",
        first_unit: int = 1,
        code_bits: int | None = None,
    ) -> None:
        self.resources = resources
        self.shader = shader
        self.label = label
        self.code_bits = code_bits
        self._owned = OwnedObjects()
        keep = self._owned.keep
        self.luts: list[LutTexture] = []
        try:
            self.program = keep(
                resources.program(
                    f"{label}.program", VERTEX_SOURCE, fragment_source(shader, code_bits=code_bits)
                )
            )
            self.vao = keep(resources.vertex_array(f"{label}.vao"))
            with gl_pass("create", label):
                for i, t in enumerate((*shader.textures_3d, *shader.textures)):
                    self.luts.append(keep(make_lut(resources, label, t, first_unit + i)))
                self.program.use()
                self.program.set_int("u_image", 0)
                for lut in self.luts:
                    self.program.set_int(lut.sampler, lut.unit)
                for u in shader.uniforms:
                    set_shader_uniform(self.program, u.name, u.kind, u.value)
                GL.glUseProgram(0)
        except BaseException:
            self.release()
            raise

    def set_exposure(self, stops: float) -> None:
        """Set the dynamic exposure (stops) of a shader made with ``Grade(dynamic_exposure=True)``."""
        name = self.shader.exposure_uniform
        if name is None:
            raise ResourceError(f"{self.label}: the OCIO shader has no dynamic exposure")
        with gl_pass(self.PASS, self.program.label):
            self.program.use()
            set_shader_uniform(self.program, name, "float", stops)
            GL.glUseProgram(0)

    def draw(self, source: Texture2D, target: Framebuffer) -> None:
        """Convert ``source`` into ``target`` (same size), every pixel through the OCIO function."""
        if source.size != target.size:
            raise ResourceError(
                f"{self.label}: source {source.label!r} is {source.width}x{source.height}, target "
                f"{target.label!r} is {target.width}x{target.height}; the OCIO pass maps pixel to pixel"
            )
        with gl_pass(self.PASS, target.label):
            target.bind()
            GL.glViewport(0, 0, target.width, target.height)
            self.program.use()
            source.bind(0)
            for lut in self.luts:
                lut.bind()
            self.vao.bind()
            GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
            for lut in self.luts:
                lut.unbind()
            GL.glActiveTexture(GL.GL_TEXTURE0)
            reset_draw_state()

    def apply(self, image: np.ndarray, *, fmt: str = "rgba32f") -> np.ndarray:
        """Upload ``image`` ((H, W, 3) or (H, W, 4) floats, row 0 = top; alpha 1 when absent), draw into a
        temporary ``fmt`` framebuffer, read back (H, W, 4) float32, row 0 = top; frees what it made."""
        from stagectl.render.gl.readback import read_pixels

        img = np.asarray(image, dtype=np.float32)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ResourceError(f"{self.label}: image must be (H, W, 3 or 4), got {img.shape}")
        h, w = img.shape[:2]
        rgba = np.ones((h, w, 4), np.float32)
        rgba[..., : img.shape[2]] = img
        src = self.resources.texture2d(
            f"{self.label}.apply.src", w, h, "rgba32f", data=rgba, filter="nearest"
        )
        try:
            fb = self.resources.framebuffer(
                f"{self.label}.apply.fb", w, h, fmt, depth=False, filter="nearest"
            )
            try:
                self.draw(src, fb)
                return read_pixels(fb, dtype=np.float32)
            finally:
                fb.release()
        finally:
            src.release()

    def release(self) -> None:
        """Free the program, vertex array and LUT textures (context current); idempotent."""
        self._owned.release()
        self.luts.clear()

    def __enter__(self) -> OcioPass:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
