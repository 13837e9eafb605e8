"""A stage file whose tracking sources would listen on one port (or one multicast group) is refused when it is
loaded -- by `stagectl check` and so by `stagectl run` -- as ``file:line: tracking[i].port: expected ...``.
Sharing a multicast group is allowed only when both sources say ``share_group: true``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stagectl.core.errors import ConfigErrors
from stagectl.stage import load_stage

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "stagectl")
BASE = (REPO / "stages" / "flat_wall.yaml").read_text()
FIRST = """  - name: tracker
    protocol: freed
    bind: 127.0.0.1
    port: 40000
    camera_id: 1
    simulate: dolly
"""


def _stage(tmp_path: Path, first: str, second: str) -> Path:
    """flat_wall.yaml with its tracking section replaced by ``first`` and ``second`` (YAML list items)."""
    assert FIRST in BASE
    p = tmp_path / "stage.yaml"
    p.write_text(BASE.replace(FIRST, first + second))
    return p


def _source(name: str, port: int, *, bind: str = "0.0.0.0", group: str | None = None, share: bool | None = None,
            protocol: str = "freed") -> str:
    text = f"  - name: {name}\n    protocol: {protocol}\n    bind: {bind}\n    port: {port}\n"
    if group is not None:
        text += f"    multicast_group: {group}\n"
    if share is not None:
        text += f"    share_group: {'true' if share else 'false'}\n"
    return text


@pytest.mark.parametrize(
    ("first", "second", "where"),
    [
        (_source("tracker", 40000, bind="127.0.0.1"), _source("b", 40000, bind="127.0.0.1"), "127.0.0.1:40000"),
        (_source("tracker", 40000), _source("b", 40000, bind="127.0.0.1"), "0.0.0.0:40000"),
        (_source("tracker", 40000, bind="127.0.0.1"), _source("b", 40000), "127.0.0.1:40000"),
        (_source("tracker", 55555), _source("b", 55555, group="239.135.1.1"), "0.0.0.0:55555"),
        (_source("tracker", 55555, group="239.135.1.1"), _source("b", 55555, group="239.135.1.1"),
         "group 239.135.1.1:55555"),
        (_source("tracker", 55555, group="239.135.1.1", share=True), _source("b", 55555, group="239.135.1.1"),
         "group 239.135.1.1:55555"),
    ],
    ids=["same-address", "wildcard-first", "wildcard-second", "unicast-wildcard-and-group", "same-group",
         "group-shared-by-one-only"],
)
def test_two_sources_on_one_port_are_refused_with_file_line_and_key(tmp_path, first, second, where) -> None:
    path = _stage(tmp_path, first, second)
    with pytest.raises(ConfigErrors) as err:
        load_stage(path)
    (e,) = err.value.errors
    second_line = path.read_text().splitlines().index("  - name: b") + 1
    first_line = path.read_text().splitlines().index("  - name: tracker") + 1
    assert e.line == second_line and e.key == "tracking[1].port", e.format()
    assert e.message.startswith(f"expected a port no other tracking source listens on, got {where.rsplit(':')[-1]}")
    assert f"source 'tracker' (line {first_line}) already listens on {where}" in e.message, e.message
    if "group" in first and "group" in second:
        assert "set share_group: true on both" in e.message
    else:
        assert "send each tracker to a port of its own" in e.message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (_source("tracker", 40000), _source("b", 40001)),
        (_source("tracker", 40000, bind="127.0.0.1"), _source("b", 40000, bind="127.0.0.2")),
        (_source("tracker", 55555, group="239.135.1.1"), _source("b", 55555, group="239.135.1.2")),
        (_source("tracker", 55555, group="239.135.1.1", share=True), _source("b", 55555, group="239.135.1.1", share=True)),
    ],
    ids=["other-port", "other-interface", "other-group", "group-shared-by-both"],
)
def test_sources_that_do_not_collide_load(tmp_path, first, second) -> None:
    stage = load_stage(_stage(tmp_path, first, second))
    assert [s.name for s in stage.tracking] == ["tracker", "b"]
    assert [s.share_group for s in stage.tracking] == ["share_group: true" in t for t in (first, second)]


def test_share_group_is_for_multicast_sources_only(tmp_path) -> None:
    path = _stage(tmp_path, _source("tracker", 40000, share=True), "")
    with pytest.raises(ConfigErrors) as err:
        load_stage(path)
    (e,) = err.value.errors
    assert e.key == "tracking[0].share_group" and e.line == path.read_text().splitlines().index(
        "    share_group: true") + 1
    assert e.message == ("expected false for a unicast source (only a multicast_group can be shared: a unicast port "
                         "delivers each packet to one program), got true")


def test_stagectl_check_refuses_the_stage_in_one_line_per_problem(tmp_path) -> None:
    path = _stage(tmp_path, _source("tracker", 40000), _source("b", 40000))
    proc = subprocess.run([EXE, "check", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert f"{path}:" in proc.stderr and ": tracking[1].port: expected a port no other tracking source listens on" \
        in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
