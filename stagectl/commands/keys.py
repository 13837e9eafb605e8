"""Make the CURVE keys of a stage's ZeroMQ console (the server key pair and client key pairs).

The key directory is the stage's console.zmq.keys (default "keys" next to the stage file). It gets the server
pair (server.key, server.key_secret) when it has none, and one pair per --client (default: one client "ctl",
the key `stagectl ctl` uses): the public key goes to keys/clients/NAME.key, which authorises that client (the
console admits only keys found there; a key added while the stage runs is picked up without a restart; delete
the file to withdraw it), and the secret key to keys/NAME.key_secret (mode 0600), which the client needs
together with keys/server.key. Copy a remote client's two files to it over a secure channel.

An existing key is never overwritten: it is kept and reported, unless --force (a new server key means every
client needs the new server.key). Keep *.key_secret files private and out of version control.

Prints every file it made or kept.

Examples:
  stagectl keys stages/demo.yaml                        # server pair + client "ctl"
  stagectl keys stages/demo.yaml --client osc-bridge --client lighting-desk
"""

from __future__ import annotations

import argparse

HELP = "make the CURVE key pairs of a stage's ZeroMQ console (server, and clients such as stagectl ctl)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, e.g. stages/demo.yaml")
    p.add_argument(
        "--client",
        action="append",
        default=None,
        metavar="NAME",
        help="make a client key pair NAME (repeatable; default: ctl); letters, digits, '_', '.', '-'",
    )
    p.add_argument("--force", action="store_true", help="replace keys that exist (default: keep them)")


def main(args: argparse.Namespace) -> int:
    import os

    from stagectl.console.zmq_transport import (
        SERVER_KEY_NAME,
        make_keys,
        resolve_keys_dir,
        zmq_settings,
    )
    from stagectl.stage import load_stage

    stage = load_stage(args.stage)
    keys_dir = resolve_keys_dir(zmq_settings(stage), stage.path.parent)
    done = make_keys(keys_dir, args.client or ["ctl"], force=args.force)
    print(f"stagectl keys: ZeroMQ console keys in {keys_dir}")
    width = max(len(str(p)) for _, p in done)
    for what, path in done:
        name = path.name.removesuffix(".key_secret").removesuffix(".key")
        secret = path.name.endswith(".key_secret")
        if name == SERVER_KEY_NAME and path.parent == keys_dir:
            role = "server secret key (mode 0600)" if secret else "server public key (every client needs it)"
        else:
            role = (
                f"client {name!r} secret key (mode 0600; stagectl ctl --key)"
                if secret
                else f"authorises client {name!r}"
            )
        print(f"  {what:<8} {path!s:<{width}}  {role}")
        if secret and os.stat(path).st_mode & 0o077:
            print(f"stagectl keys: warning: {path} is readable by other users (chmod 600 it)")
    if any(what == "kept" for what, _ in done):
        print("stagectl keys: existing keys were kept (--force replaces them)")
    return 0
