"""stagectl.runtime.pictures.PictureWorker: jobs run on its own thread, at most one waits per slot (a newer one
replaces it), a failing job is counted and said once, and close() lets the handed-over jobs finish. Real
threads, real blocking functions (gated by events), no timing assertions."""

from __future__ import annotations

import threading

import pytest

from stagectl.runtime.pictures import PictureWorker

WAIT_S = 20.0  # generous bounds for a loaded machine; a passing run never waits them out


def _gate():
    started, release = threading.Event(), threading.Event()

    def blocked(log: list, name: str) -> None:
        started.set()
        assert release.wait(WAIT_S)
        log.append(name)

    return started, release, blocked


def test_submit_returns_while_the_job_runs_and_newer_jobs_replace_waiting_ones() -> None:
    said: list[str] = []
    w = PictureWorker(say=said.append)
    started, release, blocked = _gate()
    log: list[str] = []
    try:
        assert w.submit("a", blocked, log, "a1") is False
        assert started.wait(WAIT_S)  # a1 runs on the worker, blocked until released
        assert threading.current_thread().name != w.name and log == []
        # a1 runs: the slot is free again, so a2 waits; a3 replaces a2; b1 waits in its own slot
        assert w.submit("a", log.append, "a2") is False
        assert w.submit("b", log.append, "b1") is False
        assert w.submit("a", log.append, "a3") is True
        assert w.waiting == 2 and w.busy and w.replaced == 1
        release.set()
        assert w.wait_idle(WAIT_S)
        assert log == ["a1", "b1", "a3"]  # slots in the order of their newest job; a2 never ran
        assert (w.done, w.failed, w.waiting, w.busy) == (3, 0, 0, False)
    finally:
        release.set()
        w.close()
    assert said == []


def test_a_failing_job_is_counted_and_said_once_and_the_worker_goes_on() -> None:
    said: list[str] = []
    w = PictureWorker(say=said.append)
    log: list[str] = []

    def fail(n: int) -> None:
        raise OSError(f"disk full {n}")

    try:
        w.submit(("png", "p/out1"), fail, 1)
        assert w.wait_idle(WAIT_S)
        w.submit(("png", "p/out1"), fail, 2)
        w.submit("thumb", log.append, "after")
        assert w.wait_idle(WAIT_S)
    finally:
        w.close()
    assert w.failed == 2 and isinstance(w.last_error, OSError) and log == ["after"]
    assert len(said) == 1 and said[0].startswith("pictures: png p/out1: OSError('disk full 1')"), said


def test_close_lets_handed_over_jobs_finish_then_refuses_new_ones() -> None:
    w = PictureWorker()
    started, release, blocked = _gate()
    log: list[str] = []
    w.submit("a", blocked, log, "a1")
    assert started.wait(WAIT_S)
    w.submit("b", log.append, "b1")
    closer = threading.Thread(target=lambda: log.append(("closed", w.close(WAIT_S))))
    closer.start()
    release.set()
    closer.join(WAIT_S)
    assert log == ["a1", "b1", ("closed", True)]
    with pytest.raises(RuntimeError, match="closed"):
        w.submit("a", log.append, "late")
    assert not w._thread.is_alive()
