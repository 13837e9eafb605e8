"""Bad option values the subcommands parse themselves (a rate, a profile, an address): one line naming the
option, exit status 2, no traceback (stagectl.commands.option_value)."""

from __future__ import annotations

import pytest

from stagectl.cli import main
from stagectl.commands import option_value
from stagectl.core.errors import UsageError
from stagectl.core.timebase import FrameRate


def test_option_value_parses_or_names_the_option():
    assert option_value("--fps", FrameRate.parse, "25") == FrameRate.parse("25")
    with pytest.raises(UsageError) as err:
        option_value("--fps", FrameRate.parse, "fast")
    assert str(err.value).startswith("--fps: ") and err.value.exit_code == 2


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["listen", "--protocol", "freed", "--port", "0", "--profile", "no-such-profile"], "--profile"),
        (["listen", "--protocol", "opentrackio", "--group", "auto", "--camera-id", "999"], "--camera-id"),
        (["simulate", "--protocol", "freed", "--to", "127.0.0.1:9", "--profile", "no-such-profile"], "--profile"),
        (["simulate", "--protocol", "freed", "--to", "127.0.0.1:9", "--rate", "fast"], "--rate"),
        (["simulate", "--protocol", "freed", "--to", "nowhere"], "--to"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: {flag}: " in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
