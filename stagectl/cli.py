"""The ``stagectl`` command line.

Each subcommand lives in ``stagectl/commands/<name>.py`` with ``HELP`` (one line), ``add_arguments(parser)``
and ``main(args)``; the module docstring is its ``--help`` text. Modules import nothing heavy at top level;
arguments are parsed before any heavy import (Numba, OpenGL, OpenCV). User errors print one clear message and
exit with their code (2 for bad files and arguments), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stagectl import __version__
from stagectl.errors import StageError


def _command_names() -> list[str]:
    """Every module in stagectl/commands is a subcommand: it defines HELP, add_arguments(parser) and main(args)."""
    import pkgutil

    import stagectl.commands

    return sorted(m.name for m in pkgutil.iter_modules(stagectl.commands.__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagectl",
        description="Virtual-production stage controller and LED-wall render bridge.",
    )
    parser.add_argument("--version", action="version", version=f"stagectl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_names():
        module = importlib.import_module(f"stagectl.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=(module.__doc__ or module.HELP).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``stagectl`` with ``argv``; returns the exit code.

    A reader that goes away (``stagectl check stages/demo.yaml --json | head -1``, ``stagectl listen ... | head``)
    ends the command quietly with 141 (128 + SIGPIPE, what the shell reports for a program that SIGPIPE ended):
    stdout is flushed inside the handler, then pointed at /dev/null so that Python's exit flush has nowhere to
    fail (no "Exception ignored ... BrokenPipeError")."""
    try:
        try:
            return _main(argv)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"stagectl.commands.{args.command}")
    try:
        return int(module.main(args) or 0)
    except StageError as exc:
        print(f"stagectl {args.command}: error:\n{exc}" if "\n" in str(exc) else f"stagectl {args.command}: error: {exc}",
              file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stagectl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
