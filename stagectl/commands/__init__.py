"""One module per ``stagectl`` subcommand (see stagectl.cli)."""
