"""One module per ``stagectl`` subcommand (see stagectl.cli)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from stagectl.core.errors import UsageError

_T = TypeVar("_T")


def option_value(flag: str, parse: Callable[[Any], _T], value: Any) -> _T:
    """``parse(value)``, the value of the command-line option ``flag`` (``"--rate"``); its ValueError becomes
    the :class:`UsageError` ``<flag>: <why>`` (exit status 2)."""
    try:
        return parse(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
