"""Send one operator command to a running stage over its ZeroMQ console, or follow its state stream.

Connects to the console of `stagectl run STAGE.yaml` (console.zmq in the stage file: address and ports) with a
CURVE client key (default keys/ctl.key_secret from `stagectl keys`; the stage must list its public key in
keys/clients/), sends COMMAND with the key=value arguments and prints the console's answer. Values are read as
JSON when they parse (rect=[0.1,0.1,0.3,0.4], on=true, intensity=2.5,
smoothing='{"min_cutoff_hz":1,"beta":0.1}'), otherwise as text (wall=main, content=procedural); quote a number
meant as text as JSON ('id="7"').

A change is acknowledged once the frame loop applied it:
  ok: card.add applied at frame 1234 (seq 17): id card-3
A refused command prints the reason (refused: card.set: id: no light card 'x'; ...) and exits 1. --json prints
the console's answer (the ack) as one JSON object instead. Commands are listed by `ctl STAGE.yaml help` (one
command: `ctl STAGE.yaml help card.add`); `ctl STAGE.yaml status` shows the live status, `state` the operator
state.

`ctl STAGE.yaml watch` takes a snapshot of the operator state and then prints every change as the stage
applies it (seq, frame, who, command, arguments), until Ctrl-C; --status adds the status lines (a few a
second), --json prints the snapshot and the events as JSON lines.

Exit codes: 0 done, 1 the console refused the command, 2 the stage cannot be reached (no reply within
--timeout: is `stagectl run` running with the console, and is the key authorised?) or a bad argument.

Examples:
  stagectl ctl stages/demo.yaml card.add wall=main rect=[0.1,0.1,0.3,0.4] intensity=2
  stagectl ctl stages/demo.yaml output.blackout output=all on=true
  stagectl ctl stages/demo.yaml watch
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "send an operator command to a running stage (ZeroMQ console), or watch its state changes"

_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file of the running stage, e.g. stages/demo.yaml")
    p.add_argument(
        "name",
        metavar="COMMAND",
        help="command name (card.add, output.blackout, status, help, ...) or 'watch'",
    )
    p.add_argument(
        "params", nargs="*", metavar="key=value", help="command arguments (values as JSON or text)"
    )
    p.add_argument(
        "--key",
        default=None,
        metavar="FILE",
        help="client secret key file (default: <keys>/ctl.key_secret of the stage's console.zmq.keys)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the answer (default 5; a change waits for a frame, at most 2 s)",
    )
    p.add_argument(
        "--host",
        default=None,
        metavar="HOST",
        help="address of the stage machine (default: console.zmq.bind; loopback when it binds all "
        "interfaces)",
    )
    p.add_argument("--json", action="store_true", help="print the answer (watch: every event) as JSON")
    p.add_argument("--status", action="store_true", help="watch: print status events too")


def parse_params(command: str, params: list[str]) -> dict[str, Any]:
    """``key=value`` words -> arguments (values as JSON when they parse, else text); ``UsageError`` on a word
    without ``=`` (except ``help NAME``) or a repeated key."""
    from stagectl.core.errors import UsageError

    args: dict[str, Any] = {}
    for word in params:
        key, eq, text = word.partition("=")
        if not eq:
            if command == "help" and not args and len(params) == 1:
                return {"command": word}
            raise UsageError(
                f"{word!r}: expected key=value (e.g. rect=[0.1,0.1,0.3,0.4], on=true, wall=main)"
            )
        if not key or not set(key) <= _KEY_CHARS:
            raise UsageError(f"{word!r}: the key before '=' must be a name of letters, digits and '_'")
        if key in args:
            raise UsageError(f"{key}: given twice")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        args[key] = value
    return args


def _show(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), default=str)


def _format_help(result: dict[str, Any]) -> str:
    lines = []
    for c in result.get("commands", []):
        lines.append(
            f"{c.get('name', '?'):<16} {'(read-only) ' if c.get('read_only') else ''}{c.get('help', '')}"
        )
        for a in c.get("args", []):
            opt = "" if a.get("required") else "?"
            lines.append(f"    {a.get('name')}{opt}: {a.get('type', '')} -- {a.get('help', '')}")
        ex = c.get("example")
        if ex:
            lines.append("    e.g. " + " ".join(f"{k}={_show(v)}" for k, v in ex.items()))
    return "\n".join(lines)


def _format_status(status: dict[str, Any]) -> str:
    top = [f"{k} {_show(v)}" for k, v in status.items() if not isinstance(v, (dict, list))]
    lines = ["  " + ", ".join(top)] if top else []
    for name, cam in (status.get("cameras") or {}).items():
        if isinstance(cam, dict):
            fields = [f"{k} {_show(v)}" for k, v in cam.items() if k != "frustum"]
            lines.append(f"  camera {name}: " + ", ".join(fields))
    for key in ("genlock", "cluster"):
        if isinstance(status.get(key), dict):
            lines.append(f"  {key}: " + ", ".join(f"{k} {_show(v)}" for k, v in status[key].items()))
    return "\n".join(lines)


def format_ack(ack: dict[str, Any]) -> str:
    """The human form of an ok ack: one line for a change, more lines for read-only answers."""
    name = ack.get("command")
    result = ack.get("result")
    frame, seq = ack.get("frame"), ack.get("seq")
    if name == "help" and isinstance(result, dict):
        return _format_help(result)
    if name == "status" and isinstance(result, dict):
        status = result.get("status", result)
        return f"ok: status at frame {frame}\n" + _format_status(status if isinstance(status, dict) else {})
    if name == "state" and isinstance(result, dict):
        return f"ok: state at frame {frame} (seq {result.get('seq', seq)})\n" + json.dumps(
            result.get("state", result), indent=2, default=str
        )
    head = f"ok: {name} applied at frame {frame}" + (f" (seq {seq})" if seq is not None else "")
    if isinstance(result, dict) and result:
        return head + ": " + ", ".join(f"{k} {_show(v)}" for k, v in result.items())
    if result not in (None, {}, []):
        return head + ": " + _show(result)
    return head


def _event_line(ev: dict[str, Any]) -> str:
    if ev.get("type") == "status":
        st = ev.get("status") or {}
        return "status " + ", ".join(
            f"{k} {_show(st[k])}"
            for k in ("frame", "timecode", "fps", "phase_error_us", "late", "dropped")
            if k in st
        )
    cmd = ev.get("command")
    args = ev.get("args")
    if isinstance(cmd, dict):
        args = cmd.get("args", args)
        cmd = cmd.get("name", cmd.get("command"))
    text = f"seq {ev.get('seq')} frame {ev.get('frame')} {ev.get('who', '?')} {cmd}"
    if isinstance(args, dict) and args:
        text += " " + " ".join(f"{k}={_show(v)}" for k, v in args.items())
    return text


def _watch(args: argparse.Namespace, command_ep: str, state_ep: str, keys: Any) -> int:
    from stagectl.commands._signals import StopOnSignals
    from stagectl.console.zmq import StateFollower

    out = sys.stdout
    with (
        StopOnSignals() as stop,
        StateFollower(command_ep, state_ep, keys, timeout_s=args.timeout) as follower,
    ):
        ack = follower.snapshot_ack or {}
        if args.json:
            out.write(
                json.dumps(
                    {
                        "type": "snapshot",
                        "seq": follower.seq,
                        "frame": ack.get("frame"),
                        "state": follower.state,
                    },
                    default=str,
                )
                + "\n"
            )
        else:
            out.write(
                f"watching {state_ep}: snapshot seq {follower.seq} at frame {ack.get('frame')} "
                "(Ctrl-C stops)\n"
            )
        out.flush()
        while not stop.stopped:
            for ev in follower.poll(0.2):
                if ev.get("type") == "status" and not args.status:
                    continue
                out.write((json.dumps(ev, default=str) if args.json else _event_line(ev)) + "\n")
                out.flush()
        gaps = f", {follower.gaps} gaps" if follower.gaps else ""
        print(
            f"stagectl ctl: {stop.reason('stopped')} at seq {follower.seq} after {follower.applied} "
            f"changes{gaps}",
            file=sys.stderr,
        )
    return 0


def main(args: argparse.Namespace) -> int:
    from stagectl.console.zmq import (
        ConsoleClient,
        connect_host,
        load_client_keys,
        resolve_keys_dir,
        tcp_endpoint,
        zmq_settings,
    )
    from stagectl.core.errors import UsageError
    from stagectl.stage import load_stage

    if not args.timeout > 0:
        raise UsageError(f"--timeout: expected a positive number of seconds, got {args.timeout:g}")
    params = parse_params(args.name, args.params)
    if args.name == "watch" and params:
        raise UsageError("watch takes no key=value arguments")
    stage = load_stage(args.stage)
    settings = zmq_settings(stage)
    keys = load_client_keys(resolve_keys_dir(settings, stage.path.parent), args.key)
    host = args.host or connect_host(str(settings.bind))
    command_ep = tcp_endpoint(host, int(settings.port))
    state_ep = tcp_endpoint(host, int(settings.state_port))
    if args.name == "watch":
        return _watch(args, command_ep, state_ep, keys)
    with ConsoleClient(command_ep, keys) as client:
        ack = client.request(args.name, params, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(ack, default=str))
    elif ack.get("ok"):
        print(format_ack(ack))
    else:
        err = str(ack.get("error", "refused"))
        name = ack.get("command")
        print(
            f"refused: {err if not name or err.startswith(str(name)) else f'{name}: {err}'}", file=sys.stderr
        )
    return 0 if ack.get("ok") else 1
