"""The ``stagectl`` command line.

Each subcommand lives in ``stagectl/commands/<name>.py`` with ``HELP`` (one line), ``add_arguments(parser)``
and ``main(args)``; the module docstring is its ``--help`` text. Modules import nothing heavy at top level;
arguments are parsed before any heavy import (Numba, OpenGL, OpenCV). User errors print one clear message and
exit with their code (2 for bad files and arguments), never a traceback.

Logging is configured once, here, before the subcommand runs: ``--log-level`` (debug, info, warning, error;
default warning) and ``--log-file FILE`` (appended to, in addition to stderr), accepted before or after the
subcommand's name. Every record carries its local time with milliseconds and UTC offset, its level and its
logger: ``2026-11-25T14:03:07.123+01:00 WARNING stagectl.tracking.receiver: tracker: bad packet ...``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stagectl import __version__
from stagectl.core.errors import StageError


def _command_names() -> list[str]:
    """Every module in stagectl/commands is a subcommand: it defines HELP, add_arguments(parser) and main(args)."""
    import pkgutil

    import stagectl.commands

    return sorted(m.name for m in pkgutil.iter_modules(stagectl.commands.__path__) if not m.name.startswith("_"))


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _add_logging_arguments(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``--log-level`` / ``--log-file`` on the main parser (with the defaults) and on every subcommand
    (without defaults, so that ``stagectl --log-level info run ...`` is not undone by the subcommand)."""
    p.add_argument("--log-level", choices=LOG_LEVELS, default="warning" if top else argparse.SUPPRESS,
                   help="log records at this level and above: debug, info, warning (default) or error")
    p.add_argument("--log-file", default=None if top else argparse.SUPPRESS, metavar="FILE",
                   help="also append the log to FILE (stderr keeps getting it)")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (not the stream of the moment it was made)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


class _Formatter(logging.Formatter):
    """``LOG_FORMAT`` with ISO 8601 local time, milliseconds and the UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        from datetime import datetime

        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


_installed: list[logging.Handler] = []


def configure_logging(level: str = "warning", log_file: str | None = None) -> None:
    """Send log records at ``level`` and above to stderr (and appended to ``log_file``), timestamped, through
    the root logger. Calling it again replaces what the previous call installed (and nothing else). Raises
    :class:`~stagectl.core.errors.UsageError` when ``log_file`` cannot be opened."""
    from stagectl.core.errors import UsageError

    root = logging.getLogger()
    for h in _installed:
        root.removeHandler(h)
        h.close()
    _installed.clear()
    handlers: list[logging.Handler] = [_StderrHandler()]
    if log_file is not None:
        try:
            handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--log-file: cannot open {log_file}: {exc.strerror or exc}") from None
    formatter = _Formatter(LOG_FORMAT)
    for h in handlers:
        h.setFormatter(formatter)
        root.addHandler(h)
        _installed.append(h)
    root.setLevel(getattr(logging, level.upper()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagectl",
        description="Virtual-production stage controller and LED-wall render bridge.",
    )
    parser.add_argument("--version", action="version", version=f"stagectl {__version__}")
    _add_logging_arguments(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_names():
        module = importlib.import_module(f"stagectl.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=(module.__doc__ or module.HELP).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        _add_logging_arguments(p, top=False)
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
        configure_logging(args.log_level, args.log_file)
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
