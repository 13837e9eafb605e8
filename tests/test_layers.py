"""Imports inside stagectl run one way (docs/architecture.md): a package imports only from packages below it.

The order is ``stagectl.core`` at the bottom, then config, color, lens, stage, tracking, render, sync, runtime,
console, calibration and post (side by side), commands, cli. Every ``import`` and ``from ... import`` in the
package is read with ``ast`` (function-local imports included: a lazy import is still a dependency); imports
under ``if TYPE_CHECKING:`` are skipped, they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "stagectl"

#: package -> its layer; a module may import its own package and any package of a lower layer
LAYERS = {
    "core": 0,
    "config": 1,
    "color": 2,
    "lens": 3,
    "stage": 4,
    "tracking": 5,
    "render": 6,
    "sync": 7,
    "runtime": 8,
    "console": 9,
    "calibration": 10,
    "post": 10,
    "commands": 11,
    "cli": 12,
    "__main__": 12,
    # stagectl/__init__.py holds only __version__ and imports nothing: any layer may read the version
    "__init__": -1,
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for inner in node.body:
                    skip.update(id(n) for n in ast.walk(inner))
    return skip


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, module)`` of every stagectl import in ``path`` (relative imports resolved)."""
    module, is_pkg = _module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return [(line, name) for line, name in found if name == "stagectl" or name.startswith("stagectl.")]


def violations(root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        module, _ = _module_name(path, root)
        own = _package(module)
        if own not in LAYERS:
            bad.append(f"{path.relative_to(root.parent)}: package {own!r} has no layer in tests/test_layers.py")
            continue
        for line, name in imports_of(path, root):
            other = _package(name)
            if other == own:
                continue
            if other not in LAYERS or LAYERS[other] >= LAYERS[own]:
                bad.append(f"{path.relative_to(root.parent)}:{line}: {own} imports {name} "
                           f"(layer {LAYERS.get(other, '?')} >= {LAYERS[own]})")
    return bad


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in ROOT.glob("*.py")}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_imports_run_one_way():
    assert violations() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: an upward import (core -> render), a relative one and a lazy one are all caught;
    a TYPE_CHECKING import is not."""
    pkg = tmp_path / "stagectl"
    (pkg / "core").mkdir(parents=True)
    (pkg / "render").mkdir()
    for p in (pkg, pkg / "core", pkg / "render"):
        (p / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from stagectl.core import b\n"
        "from ..render import plan\n"
        "def f():\n    import stagectl.render.gl\n"
        "if TYPE_CHECKING:\n    from stagectl.render import x\n")
    (pkg / "render" / "plan.py").write_text("from stagectl.core.a import f\n")
    got = violations(pkg)
    assert got == [
        "stagectl/core/a.py:3: core imports stagectl.render (layer 6 >= 0)",
        "stagectl/core/a.py:5: core imports stagectl.render.gl (layer 6 >= 0)",
    ]


@pytest.mark.parametrize("package", sorted(set(LAYERS) - {"__init__", "__main__", "cli"}))
def test_each_package_imports_on_its_own(package):
    """No package needs a higher one at import time either (a fresh interpreter imports it alone)."""
    import subprocess
    import sys

    path = ROOT / package
    if not (path / "__init__.py").exists():
        pytest.skip(f"{package} is a module")
    r = subprocess.run([sys.executable, "-c", f"import stagectl.{package}"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
