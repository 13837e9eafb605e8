"""The colour pipeline: transfer functions, OpenColorIO processors and their GPU shaders.

* :mod:`stagectl.color.transfer` — numpy reference transfer functions (ST 2084 PQ, BT.2100 HLG, BT.1886, pure
  gamma, sRGB) and integer code quantisation (8/10/12/16 bit, full and narrow range). Pure numpy.
* :mod:`stagectl.color.ocio` — a typed wrapper around PyOpenColorIO 2.x: configs, processors for
  (working space -> display, view) with an operator grade in front, CPU application, and the GPU shader as a
  plain frozen dataclass (:class:`~stagectl.color.ocio.GpuShader`, no GL in it).
* :mod:`stagectl.render.ocio_pass` — the GL side: an OCIO shader compiled into a full-screen pass over a float
  texture (through :mod:`stagectl.render.gl`).

Importing this package imports neither PyOpenColorIO nor OpenGL. Conventions: docs/colour.md.
"""

from stagectl.color.errors import ColorError

__all__ = ["ColorError"]
