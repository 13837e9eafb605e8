"""Dispatcher: ``python -m bench NAME [ARGS...]`` imports ``bench.NAME`` and calls its ``main(argv)``.

A new bench is a module ``bench/NAME.py`` with ``main(argv: list[str]) -> int``; nothing to register.
``python -m bench`` (or ``list``) prints the available names; ``python -m bench all`` runs every bench in turn
and ends by writing ``bench/results/REPORT.md`` (``python -m bench report``, which is not a bench itself).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

_NOT_BENCHES = {"common"}
_REPORT = "report"  # summarises the benches' results: run by name, and by `all` after every bench


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and m.name not in _NOT_BENCHES
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print("usage: python -m bench NAME [ARGS...]   (NAME --help for its options)")
        print("benches: " + (", ".join(names) or "(none)"))
        return 0
    name, rest = argv[0], argv[1:]
    if name == "all":
        worst = 0
        for n in names:
            if n == _REPORT:
                continue
            print(f"== bench {n}", flush=True)
            worst = max(worst, int(importlib.import_module(f"bench.{n}").main(rest) or 0))
        print(f"== {_REPORT}", flush=True)
        worst = max(worst, int(importlib.import_module(f"bench.{_REPORT}").main([]) or 0))
        return worst
    if name not in names:
        print(f"unknown bench {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
