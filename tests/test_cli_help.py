"""Every help a user can ask for prints and exits 0: ``stagectl --help``, each subcommand's ``--help`` and the
calibration tools' (argparse formats help strings with ``%``, so one stray ``18 %`` in a help text is a
traceback for the user). The subcommands are exactly the public modules of stagectl/commands."""

from __future__ import annotations

import pkgutil
import subprocess

import pytest
from helpers import EXE

import stagectl.commands
from stagectl.cli import build_parser

SUBCOMMANDS = sorted(m.name for m in pkgutil.iter_modules(stagectl.commands.__path__) if not m.name.startswith("_"))


def _help(*args: str) -> None:
    """``stagectl ARGS --help`` in this process: argparse prints the help and exits 0."""
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*args, "--help"])
    assert exit_.value.code == 0


def test_the_top_level_help_lists_every_subcommand_and_nothing_else(capsys):
    _help()
    out = capsys.readouterr().out
    listed = sorted({line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()
                     and not line.startswith("     ")})
    assert listed == SUBCOMMANDS, out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_help_prints(command, capsys):
    _help(command)
    assert f"stagectl {command}" in capsys.readouterr().out


@pytest.mark.parametrize("tool", ["lens", "pupil", "handeye", "wall", "delay", "colour"])
def test_each_calibration_tool_help_prints(tool, capsys):
    _help("calibrate", tool)
    assert "usage:" in capsys.readouterr().out


def test_the_installed_command_prints_its_help():
    r = subprocess.run([str(EXE), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr and "calibrate" in r.stdout, r.stderr
