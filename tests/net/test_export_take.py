"""`stagectl export` as a script supervisor runs it: `stagectl simulate` -> `stagectl record` (real processes,
real loopback UDP) -> `stagectl export --format all --sheet`, and the files read back by their own readers;
plus the one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import free_udp_port
from .post_take import write_stage

EXE = str(Path(sys.executable).parent / "stagectl")
N = 30


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def take(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("export")
    stage = write_stage(d / "stage.yaml", "25", "opentrackio")
    path = d / "A001_C002.stgtake"
    port = free_udp_port()
    rec = subprocess.Popen([EXE, "record", "--protocol", "opentrackio", "--bind", "127.0.0.1", "--port", str(port),
                            "--count", str(N), "--duration", "20", "--out", str(path), "--stage", "Post test"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = ""
        while "listening" not in out:  # the first line says the socket is bound
            line = rec.stdout.readline()
            assert line, rec.stderr.read()
            out += line
        sim = _run("simulate", "--protocol", "opentrackio", "--to", f"127.0.0.1:{port}", "--rate", "25",
                   "--move", "dolly", "--count", str(N))
        assert sim.returncode == 0, sim.stderr
        assert rec.wait(20) == 0, rec.stderr.read()
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    return stage, path


def test_export_all_formats_and_the_sheet(take: tuple[Path, Path], tmp_path: Path) -> None:
    import opentimelineio as otio
    from pxr import Sdf, Usd

    stage, path = take
    out = tmp_path / "post"
    r = _run("export", str(path), "--stage", str(stage), "--format", "all", "--sheet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"{N} frames at 25 fps" in r.stdout and "matched by timecode" in r.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["A001_C002.usda", "A001_C002.chan", "A001_C002.csv", "A001_C002.raw.csv",
                            "A001_C002.opentrackio.jsonl", "takes.ale", "takes.otio"])
    u = Usd.Stage.Open(str(out / "A001_C002.usda"))
    assert (u.GetStartTimeCode(), u.GetEndTimeCode()) == (1001, 1001 + N - 1)
    lines = (out / "A001_C002.opentrackio.jsonl").read_text().splitlines()
    assert len(lines) == N and json.loads(lines[0])["timing"]["sampleRate"] == {"num": 25, "denom": 1}
    assert len((out / "A001_C002.chan").read_text().splitlines()) == N
    tl = otio.adapters.read_from_file(str(out / "takes.otio"))
    (clip,) = tl.find_clips()
    assert clip.source_range.duration.value == N
    tc_in = u.GetRootLayer().customLayerData["stagectl"]["timecodeIn"]
    assert otio.opentime.to_timecode(clip.source_range.start_time, 25) == tc_in
    assert clip.metadata["stagectl"]["files"][0].endswith("A001_C002.usda")

    # a second export into the same folder refuses to overwrite; --force does
    again = _run("export", str(path), "--stage", str(stage), "--format", "chan", "--out", str(out))
    assert again.returncode == 2 and "exists (add --force" in again.stderr and "Traceback" not in again.stderr
    forced = _run("export", str(path), "--stage", str(stage), "--format", "chan", "--format", "usd", "--out",
                  str(out), "--force", "--start-frame", "1")
    assert forced.returncode == 0, forced.stderr
    layer = Sdf.Layer.FindOrOpen(str(out / "A001_C002.usda"))
    layer.Reload()  # this process opened the first export: read the file again
    assert (layer.startTimeCode, layer.endTimeCode) == (1, N)


def test_export_errors_are_one_line(take: tuple[Path, Path], tmp_path: Path) -> None:
    stage, path = take
    cases = [
        (["--camera", "cam-z"], "no camera 'cam-z'; cameras: cam-a"),
        (["--match", "nearest", "--drop-frame"], "drop-frame timecode exists only"),
    ]
    for extra, expected in cases:
        r = _run("export", str(path), "--stage", str(stage), "--out", str(tmp_path / "x"), *extra)
        assert r.returncode == 2, (extra, r.stdout, r.stderr)
        assert expected in r.stderr and "Traceback" not in r.stderr
        assert r.stderr.startswith("stagectl export: error:") and r.stderr.count("\n") == 1
    bad = tmp_path / "bad.stgtake"
    bad.write_bytes(b"STGTAKE?garbage")
    r = _run("export", str(bad), "--stage", str(stage), "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "not a take" in r.stderr and "Traceback" not in r.stderr
    r = _run("export", str(tmp_path / "missing.stgtake"), "--stage", str(stage), "--out", str(tmp_path / "z"))
    assert r.returncode == 2 and "no such take file" in r.stderr
