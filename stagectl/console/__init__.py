"""The stage console core: the operator command set, the operator state and the control hub.

Pure Python (no GL, no sockets). Transports (ZeroMQ, OSC, web) turn their wire format into
:meth:`ControlHub.submit` calls and forward the hub's events; ``stagectl run`` calls
:meth:`ControlHub.apply_pending` at every frame boundary. Operator reference: docs/console.md.
"""

from stagectl.console.commands import COMMANDS, GROUPS, CommandError, CommandSpec, apply, validate
from stagectl.console.hub import Applied, ControlHub, Subscription, stage_description
from stagectl.console.state import OperatorState, StateError, StateStore

__all__ = [
    "COMMANDS",
    "GROUPS",
    "CommandError",
    "CommandSpec",
    "apply",
    "validate",
    "Applied",
    "ControlHub",
    "Subscription",
    "stage_description",
    "OperatorState",
    "StateError",
    "StateStore",
]
