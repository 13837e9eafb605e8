"""The generated parts of the console docs, from the command declarations (:data:`COMMANDS`).

``python -m stagectl.console.docs`` rewrites, between their ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->`` markers, the command reference of ``docs/console.md`` (every command, its
arguments with types, limits, units and help, what it answers, an example), the OSC address table and the
table of ``s:key value`` keys of ``docs/console-osc.md``, and the OSC table of ``README.md``.
``python -m stagectl.console.docs --check`` changes nothing and exits 1 when a committed page differs from
what the declarations give (the test suite runs the same check).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from stagectl.console.commands import COMMANDS
from stagectl.console.osc_transport import _FORMS, _Pairs, _slot_usage, _usage, address_of

__all__ = ["PAGES", "command_reference", "osc_table", "osc_keys", "generate", "main"]

REPO = Path(__file__).resolve().parents[2]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def command_reference() -> str:
    """Every command of docs/console.md: help, argument table, details, example."""
    out = []
    for spec in COMMANDS.values():
        out.append(f"### `{spec.name}`\n\n{spec.help}\n")
        if spec.args:
            out.append("| argument | required | type | meaning (units) |\n|---|---|---|---|")
            for a in spec.args:
                out.append(f"| `{a.name}` | {'yes' if a.required else 'no'} | {_cell(a.type)} | {_cell(a.help)} |")
            out.append("")
        if spec.doc:
            out.append(f"{spec.doc}\n")
        example = json.dumps({"command": spec.name, "args": spec.example}, ensure_ascii=False)
        out.append(f"```json\n{example}\n```\n")
    return "\n".join(out)


def osc_table() -> str:
    """The OSC address table (docs/console-osc.md and README.md)."""
    rows = ["| address | arguments | example |", "|---|---|---|"]
    for name, form in _FORMS.items():
        spec = form.spec
        address = address_of(name)
        usage = " \\| ".join(f"`{_cell(_usage(alt))}`" for alt in form.alts if alt) or "–"
        if spec.osc_note:
            usage += f" {spec.osc_note}"
        example = " ".join([address, *(json.dumps(v) for v in spec.osc_example)])
        rows.append(f"| `{address}` | {usage} | `{example}` |")
    return "\n".join(rows) + "\n"


def osc_keys() -> str:
    """The ``s:key value`` keys of every command whose OSC form takes them (docs/console-osc.md)."""
    rows = ["| command | key | value |", "|---|---|---|"]
    for name, form in _FORMS.items():
        alt = next((a for a in form.alts if any(isinstance(n, _Pairs) or _has_pairs(n) for n in a)), None)
        if alt is None:
            continue
        first = True
        for key in form.keys(alt):
            a = form.spec.arg(key)
            assert a is not None
            value = f"`{_cell(_slot_usage(a))}` {_cell(a.type)}: {_cell(a.help)}"
            rows.append(f"| {f'`{name}`' if first else ''} | `{key}` | {value} |")
            first = False
    return "\n".join(rows) + "\n"


def _has_pairs(node) -> bool:
    return hasattr(node, "alts") and any(isinstance(n, _Pairs) or _has_pairs(n) for s in node.alts for n in s)


#: page -> generated part -> its text
PAGES: dict[str, dict[str, Callable[[], str]]] = {
    "docs/console.md": {"commands": command_reference},
    "docs/console-osc.md": {"osc-addresses": osc_table, "osc-keys": osc_keys},
    "README.md": {"osc-addresses": osc_table},
}


def generate(text: str, parts: dict[str, Callable[[], str]], page: str = "") -> str:
    """``text`` with every generated part replaced by what the declarations give now."""
    for name, fn in parts.items():
        start, end = f"<!-- generated: {name} -->", f"<!-- end generated: {name} -->"
        pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"{page}: no {start} ... {end} markers")
        body = fn()
        block = f"{start}\n{body}{'' if body.endswith(chr(10)) else chr(10)}{end}"
        text = pattern.sub(lambda _m, block=block: block, text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stagectl.console.docs", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page is out of date")
    p.add_argument("--repo", type=Path, default=REPO, help="the repository root (default: this checkout)")
    args = p.parse_args(argv)
    stale = []
    for page, parts in PAGES.items():
        path = args.repo / page
        text = path.read_text(encoding="utf-8")
        new = generate(text, parts, page)
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for page in stale:
        print(f"{page}: {'out of date' if args.check else 'rewritten'} (python -m stagectl.console.docs)")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
