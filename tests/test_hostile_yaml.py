"""Hostile and broken YAML files: each is refused with one ``file[:line]: ...`` error, in bounded time and memory.

Stage files and lens files share :func:`stagectl.config.reader.load_document`; an alias bomb, a recursive alias,
deep nesting, a huge file, a huge integer and unreadable paths (symlink loops, folders) must each be a clear
:class:`~stagectl.core.errors.ConfigErrors`, never a RecursionError, a MemoryError or a minute of CPU. Memory is
bounded with tracemalloc peaks; time only with generous subprocess timeouts.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from conftest import STAGES

from stagectl.config.reader import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    Context,
    describe,
    display_path,
    load_document,
    string,
)
from stagectl.core.errors import ConfigErrors
from stagectl.lens.lensfile import load_lens_file
from stagectl.stage import load_stage

EXE = str(Path(sys.executable).parent / "stagectl")
FLAT = (STAGES / "flat_wall.yaml").read_text()


def _bomb(levels: int, key: str = "frame_rate") -> str:
    """A classic "billion laughs": each anchor is a list of nine aliases of the one before (9**levels values)."""
    lines = ["schema_version: 1", "l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines.append(f"{key}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


def _errors(fn, path) -> tuple[list[str], int]:
    """The error lines ``fn(path)`` raises, and the tracemalloc peak (bytes) while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(ConfigErrors) as exc:
            fn(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(exc.value).splitlines(), peak


@pytest.mark.parametrize("loader", [load_stage, load_lens_file], ids=["stage", "lens"])
def test_alias_bomb_is_refused_at_its_line_with_little_memory(tmp_path: Path, loader) -> None:
    p = tmp_path / "bomb.yaml"
    p.write_text(_bomb(6))  # 9**6 = 531441 values once expanded
    lines, peak = _errors(loader, p)
    assert lines == [f"{p}:6: aliases expand to more than {MAX_ALIAS_VALUES} values (an alias bomb?); "
                     "write the values out or use fewer aliases"]
    assert peak < 8 * 1024 * 1024, f"tracemalloc peak {peak / 1e6:.1f} MB"


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "rec.yaml"
    p.write_text("schema_version: 1\nframe_rate: &r [24, *r]\n")
    lines, _ = _errors(load_stage, p)
    assert lines == [f"{p}:2: alias *r is inside the value its anchor &r names (a recursive document); "
                     "write the value out"]
    m = tmp_path / "recmap.yaml"
    m.write_text("schema_version: 1\nlens: &m\n  name: x\n  again: *m\n")
    lines, _ = _errors(load_lens_file, m)
    assert lines[0].startswith(f"{m}:4: alias *m is inside the value its anchor &m names")


@pytest.mark.parametrize("text", [
    "schema_version: 1\nframe_rate: " + "[" * 5000 + "]" * 5000 + "\n",
    "schema_version: 1\nframe_rate: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "schema_version: 1\nframe_rate:\n" + "".join("  " * (i + 1) + "-\n" for i in range(200)) + "  " * 201 + "24\n",
], ids=["flow-lists", "flow-maps", "block-lists"])
def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    p = tmp_path / "deep.yaml"
    p.write_text(text)
    lines, peak = _errors(load_stage, p)
    assert len(lines) == 1 and lines[0].endswith(f": values nested deeper than {MAX_DEPTH} levels"), lines
    assert lines[0].startswith(f"{p}:")
    assert peak < 16 * 1024 * 1024


def test_nesting_up_to_the_limit_is_read_one_more_level_is_refused(tmp_path: Path) -> None:
    over = tmp_path / "deep_over.yaml"
    over.write_text("a: " + "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "\n")
    lines, _ = _errors(load_document, over)
    assert lines == [f"{over}:1: values nested deeper than {MAX_DEPTH} levels"]
    p = tmp_path / "deep_ok.yaml"
    depth = MAX_DEPTH - 1  # plus the top-level mapping
    p.write_text("a: " + "[" * depth + "1" + "]" * depth + "\n")
    _, root = load_document(p)
    node = root.value[0][1]
    for _ in range(depth - 1):
        node = node.value[0]
    assert node.value[0].value == "1"


def test_anchors_and_aliases_within_the_bounds_still_work_beyond_them_they_are_refused(tmp_path: Path) -> None:
    over = tmp_path / "over.yaml"
    over.write_text("a: &a [" + ", ".join(["1"] * 99) + "]\nb: [" + ", ".join(["*a"] * 101) + "]\n")
    lines, _ = _errors(load_document, over)  # 101 aliases of 100 values each: 10100 > MAX_ALIAS_VALUES
    assert lines == [f"{over}:2: aliases expand to more than {MAX_ALIAS_VALUES} values (an alias bomb?); "
                     "write the values out or use fewer aliases"]
    written = tmp_path / "written.yaml"
    written.write_text(FLAT + "    tracker_offset: {translation: [0.0, 4.0, 1.5], rotation: [0, 0, 0]}\n")
    aliased = tmp_path / "aliased.yaml"
    aliased.write_text(FLAT.replace("    center: [0.0, 4.0, 1.5]", "    center: &c [0.0, 4.0, 1.5]")
                       .replace("    rotation: [0, 0, 0]", "    rotation: &zero [0, 0, 0]")
                       + "    tracker_offset: {translation: *c, rotation: *zero}\n")
    a, w = load_stage(aliased), load_stage(written)
    assert a.cameras == w.cameras and a.walls[0].params == w.walls[0].params
    assert a.cameras[0].tracker_offset_translation == (0.0, 4.0, 1.5)
    # a thousand aliases of a small anchor are fine
    r = tmp_path / "many.yaml"
    r.write_text("a: &a [1, 2, 3]\nb: [" + ", ".join(["*a"] * 1000) + "]\n")
    _, root = load_document(r)
    assert len(root.value[1][1].value) == 1000


def test_a_file_over_the_size_bound_is_refused_without_parsing(tmp_path: Path) -> None:
    p = tmp_path / "huge.yaml"
    with open(p, "w") as fh:
        fh.write("schema_version: 1\n")
        line = "# " + "x" * 1000 + "\n"
        fh.write(line * (MAX_FILE_BYTES // len(line) + 2))
    lines, peak = _errors(load_stage, p)
    assert lines == [f"{p}: cannot read: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB "
                     "(stage and lens files are a few kilobytes)"]
    assert peak < 3 * MAX_FILE_BYTES + (1 << 20)


def test_symlink_loops_and_folders_are_one_line_errors(tmp_path: Path) -> None:
    a, b = tmp_path / "loop_a.yaml", tmp_path / "loop_b.yaml"
    os.symlink(b, a)
    os.symlink(a, b)
    lines, _ = _errors(load_stage, a)
    assert lines == [f"{a}: cannot read: Too many levels of symbolic links"]
    lines, _ = _errors(load_lens_file, b)
    assert lines == [f"{b}: cannot read: Too many levels of symbolic links"]
    assert display_path(a) in (str(a), os.path.relpath(a))  # no RuntimeError from resolve()
    Context(str(a))  # its folder is found without resolving the loop
    folder = tmp_path / "stage.yaml"
    folder.mkdir()
    lines, _ = _errors(load_stage, folder)
    assert lines == [f"{folder}: cannot read: it is a folder, not a file"]
    # a stage naming a lens file in a loop: the stage's own located error
    p = tmp_path / "stage_with_lens.yaml"
    p.write_text(FLAT + "    lens: loop_a.yaml\n")
    lines, _ = _errors(load_stage, p)
    assert len(lines) == 1 and "cameras[0].lens: file not found: loop_a.yaml" in lines[0], lines


def test_huge_integers_and_long_texts_make_short_messages(tmp_path: Path) -> None:
    p = tmp_path / "bigint.yaml"
    p.write_text("schema_version: " + "1" * 5000 + "\n")  # beyond Python's 4300-digit int conversion limit
    lines, _ = _errors(load_stage, p)
    first = lines[0]
    assert first.startswith(f"{p}:1: schema_version: expected a whole number, got \"111")
    assert first.endswith('..."') or first.endswith("..."), first
    assert len(first) < 200
    q = tmp_path / "longname.yaml"
    q.write_text(FLAT.replace("name: Flat wall", "name: [" + "x" * 100_000 + "]"))
    ctx, root = load_document(q)
    name_node = [v for k, v in root.value if k.value == "name"][0]
    assert len(describe(name_node)) < 100
    with pytest.raises(Exception) as exc:
        string()(ctx, name_node, "name")
    assert len(str(exc.value)) < 200


def test_describe_of_a_deep_list_is_short(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("a: " + "[" * 40 + "1, 2, 3, 4, 5, 6, 7" + "]" * 40 + "\n")
    _, root = load_document(p)
    assert describe(root.value[0][1]) == "[[[...]]]"


def _limit_memory() -> None:  # in the child: a runaway parse fails with MemoryError instead of eating the machine
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_cli_check_refuses_a_1kb_alias_bomb_with_one_line_and_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "bomb.yaml"
    p.write_text(_bomb(9))  # 9**9 = 387 million values: minutes and gigabytes if expanded
    assert p.stat().st_size < 1024
    proc = subprocess.run([EXE, "check", str(p)], capture_output=True, text=True, timeout=30,
                          preexec_fn=_limit_memory)
    print(f"$ stagectl check bomb.yaml -> exit {proc.returncode}\n{proc.stderr}", end="")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"stagectl check: error: {p}:6: aliases expand to more than {MAX_ALIAS_VALUES} "
                           "values (an alias bomb?); write the values out or use fewer aliases\n")


@pytest.mark.parametrize("name, text", [
    ("deep.yaml", "frame_rate: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("rec.yaml", "schema_version: 1\nframe_rate: &r [*r]\n"),
    ("bigint.yaml", "schema_version: " + "9" * 5000 + "\n"),
])
def test_cli_check_never_prints_a_traceback(tmp_path: Path, name: str, text: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    proc = subprocess.run([EXE, "check", str(p)], capture_output=True, text=True, timeout=30,
                          preexec_fn=_limit_memory)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"stagectl check: error: {p}") or proc.stderr.startswith("stagectl check: error:\n")


def test_cli_check_on_a_symlink_loop(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    os.symlink(b, a)
    os.symlink(a, b)
    proc = subprocess.run([EXE, "check", str(a)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == f"stagectl check: error: {a}: cannot read: Too many levels of symbolic links\n"
