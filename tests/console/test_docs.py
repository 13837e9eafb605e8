"""The generated parts of the console docs match the command declarations they are generated from."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagectl.console import docs
from stagectl.console.commands import COMMANDS
from stagectl.console.osc_transport import USAGE

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("page", list(docs.PAGES))
def test_committed_docs_are_what_the_declarations_give(page: str) -> None:
    text = (REPO / page).read_text(encoding="utf-8")
    assert docs.generate(text, docs.PAGES[page], page) == text, (
        f"{page} is out of date: run python -m stagectl.console.docs")


def test_the_check_fails_on_a_stale_page(tmp_path: Path) -> None:
    for page in docs.PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((REPO / page).read_text(encoding="utf-8"), encoding="utf-8")
    assert docs.main(["--check", "--repo", str(tmp_path)]) == 0
    stale = (tmp_path / "docs/console.md").read_text().replace("number 0..1000", "number 0..999", 1)
    (tmp_path / "docs/console.md").write_text(stale)
    assert docs.main(["--check", "--repo", str(tmp_path)]) == 1
    assert docs.main(["--repo", str(tmp_path)]) == 0  # rewrites it
    assert (tmp_path / "docs/console.md").read_text() == (REPO / "docs/console.md").read_text()


def test_the_docs_carry_every_declared_limit_and_osc_form() -> None:
    console = (REPO / "docs/console.md").read_text()
    osc = (REPO / "docs/console-osc.md").read_text()
    for name, spec in COMMANDS.items():
        assert f"### `{name}`" in console
        for a in spec.args:
            assert f"| `{a.name}` | {'yes' if a.required else 'no'} | {a.type.replace('|', chr(92) + '|')} |" in console
        if USAGE[name]:
            assert USAGE[name].split("  |  ")[0].replace("|", "\\|") in osc, name
