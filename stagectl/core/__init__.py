"""The shared vocabulary every other package speaks, importing nothing of stagectl outside ``core``.

* :mod:`~stagectl.core.errors` — the error types (``file:line: key: what was expected``);
* :mod:`~stagectl.core.timebase` — named clocks, integer-nanosecond instants, exact frame rates, timecode;
* :mod:`~stagectl.core.transforms` — rigid transforms named by their frames (``T_stage_camera``);
* :mod:`~stagectl.core.sample` — one tracking sample (pose, lens, timing) as every codec decodes it;
* :mod:`~stagectl.core.camera` — the camera at one frame (``CameraState``, ``LensValues``, ``OperatorFlags``);
* :mod:`~stagectl.core.camera_settings` — the operator's settings of a camera (``CameraSettings``) and the One
  Euro smoothing's parameters, declared once for the stage file, the console, the runtime and post;
* :mod:`~stagectl.core.fields` — one declaration per operator value (type, limits, unit, help) and its codec;
* :mod:`~stagectl.core.features` — the operator's feature model (light cards, key, grades, patterns, freeze);
* :mod:`~stagectl.core.grade` and :mod:`~stagectl.core.lut` — the grades' reference maths and 3D LUTs.

Imports run one way (tests/test_layers.py checks it; docs/architecture.md draws it):
``core <- config <- color <- lens <- stage <- tracking <- render <- sync <- runtime <- console <- calibration,
post <- commands <- cli``.
"""
