"""The web console: the stage's operator page, served by the stage process (:class:`WebConsole`).

See :mod:`stagectl.console.web.server` and docs/console-web.md.
"""

from stagectl.console.web.server import WebConsole, WebConsoleError

__all__ = ["WebConsole", "WebConsoleError"]
