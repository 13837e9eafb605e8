"""Shared test fixtures: paths to the repository, its stages and the shared official test data."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.render.gl.platform import ensure_platform

# Headless OpenGL for every test (Mesa llvmpipe through EGL surfaceless): PyOpenGL picks its platform at its
# first import, so it is chosen here, before any test module can import OpenGL.
ensure_platform("egl")

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture
def repo() -> Path:
    return REPO
