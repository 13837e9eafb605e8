"""Shared test fixtures: paths to the repository, its stages and the vendored official test data (tests/data), and
two shipped stages loaded once per module (``demo``, ``flat``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.render.gl.platform import ensure_platform
from stagectl.stage import load_stage

# Headless OpenGL for every test (Mesa llvmpipe through EGL surfaceless): PyOpenGL picks its platform at its
# first import, so it is chosen here, before any test module can import OpenGL.
ensure_platform("egl")

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
TESTDATA = REPO / "tests" / "data"  # vendored test data, each folder with its provenance README


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def demo():
    """stages/demo.yaml, loaded (tests/console has its own: a copy in a folder of its own)."""
    return load_stage(STAGES / "demo.yaml")


@pytest.fixture(scope="module")
def flat():
    """stages/flat_wall.yaml, loaded."""
    return load_stage(STAGES / "flat_wall.yaml")
