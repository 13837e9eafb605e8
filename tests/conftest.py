"""Shared test fixtures: paths to the repository, its stages and the shared official test data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture
def repo() -> Path:
    return REPO
