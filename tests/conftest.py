"""Shared test fixtures: paths to the repository, its stages and the vendored official test data (tests/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.render.gl.platform import ensure_platform

# Headless OpenGL for every test (Mesa llvmpipe through EGL surfaceless): PyOpenGL picks its platform at its
# first import, so it is chosen here, before any test module can import OpenGL.
ensure_platform("egl")

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
TESTDATA = REPO / "tests" / "data"  # vendored test data, each folder with its provenance README


@pytest.fixture
def repo() -> Path:
    return REPO
