"""Fixtures of the console core tests: a private copy of the shipped stages (state files land in the test's
temporary folder, never in the repository), a hub on it, and a real frame-loop thread.

The frame loop is a plain thread calling ``hub.apply_pending(k)`` every ``period_s`` (10 ms by default) with
k = 0, 1, 2, ..., as ``stagectl run`` does at its frame boundaries; it records what each frame applied. Waits
are on conditions with timeouts; every test here is bounded by a pytest-timeout limit.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagectl.console.hub import Applied, ControlHub
from stagectl.stage.loader import load_stage

REPO = Path(__file__).resolve().parents[2]
_HERE = Path(__file__).resolve().parent
CONSOLE_TEST_TIMEOUT_S = 60


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(CONSOLE_TEST_TIMEOUT_S))


@pytest.fixture
def stage_dir(tmp_path: Path) -> Path:
    """``stages/`` (demo.yaml, flat_wall.yaml, lenses/) copied into the test's folder, plus a 2^3 LUT."""
    d = tmp_path / "stages"
    d.mkdir()
    for name in ("demo.yaml", "flat_wall.yaml"):
        shutil.copy(REPO / "stages" / name, d / name)
    shutil.copytree(REPO / "stages" / "lenses", d / "lenses")
    (d / "luts").mkdir()
    rows = [f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]
    (d / "luts" / "identity.cube").write_text('TITLE "identity"\nLUT_3D_SIZE 2\n' + "\n".join(rows) + "\n")
    # a LUT that swaps red and blue (red fastest in the file: the entry at r, g, b holds b, g, r)
    rows = [f"{b} {g} {r}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]
    (d / "luts" / "swap.cube").write_text("LUT_3D_SIZE 2\n" + "\n".join(rows) + "\n")
    return d


@pytest.fixture
def demo(stage_dir: Path):
    return load_stage(stage_dir / "demo.yaml")


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "operator.json"


@pytest.fixture
def hub(demo, state_path: Path) -> Iterator[ControlHub]:
    h = ControlHub(demo, state_path)
    yield h
    h.close()


class FrameLoop:
    """A render-thread stand-in: ``hub.apply_pending(k)`` every ``period_s`` seconds, k counting from
    ``first``."""

    def __init__(self, hub: ControlHub, period_s: float = 0.010, first: int = 0) -> None:
        self.hub = hub
        self.period_s = period_s
        self.frame = first
        self.applied: dict[int, list[Applied]] = {}
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-loop", daemon=True)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                done = self.hub.apply_pending(self.frame)
            except BaseException as exc:  # recorded: apply_pending must never raise
                self.errors.append(exc)
                done = []
            if done:
                self.applied[self.frame] = done
            self.frame += 1
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def start(self) -> FrameLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        assert not self._thread.is_alive()

    def all_applied(self) -> list[tuple[int, Applied]]:
        return [(k, a) for k in sorted(self.applied) for a in self.applied[k]]


def submit_applied_at(hub: ControlHub, name: str, args: dict, frame: int) -> dict:
    """``hub.submit(name, args)`` from a thread (as a console would) while this thread, as the frame loop, calls
    ``hub.apply_pending(frame)`` until it is applied; the submitter's acknowledgement."""
    ack: dict = {}
    t = threading.Thread(target=lambda: ack.update(hub.submit(name, args, who="test")))
    t.start()
    while not hub.apply_pending(frame) and t.is_alive():
        pass
    t.join(5)
    return ack


@pytest.fixture
def frame_loop(hub: ControlHub) -> Iterator[FrameLoop]:
    loop = FrameLoop(hub).start()
    yield loop
    loop.stop()
    assert not loop.errors, loop.errors
