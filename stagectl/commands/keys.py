"""Make the CURVE keys of a stage's ZeroMQ console and cluster (the server key pair, console client key pairs
and cluster node key pairs).

The key directory is the stage's console.zmq.keys (default "keys" next to the stage file). It gets the server
pair (server.key, server.key_secret) when it has none; the stage console and the cluster primary (`stagectl
run --cluster`) both use it.

Console clients: one pair per --client (default, when neither --client nor --node is given: one client "ctl",
the key `stagectl ctl` uses). The public key goes to keys/clients/NAME.key, which authorises that client (the
console admits only keys found there; a key added while the stage runs is picked up without a restart; delete
the file to withdraw it), and the secret key to keys/NAME.key_secret (mode 0600), which the client needs
together with keys/server.key.

Cluster nodes: one pair per --node, named as the node (`stagectl node --name NAME`). The public key goes to
keys/nodes/NAME.key, which authorises node NAME and only NAME: the primary accepts messages naming node NAME
from that key alone. The secret key goes to keys/nodes/NAME.key_secret (mode 0600). Once keys/nodes exists the
cluster requires CURVE: copy keys/server.key and keys/nodes/NAME.key_secret to node NAME's machine (same
folders next to its stage file). Without node keys the cluster runs unauthenticated (`stagectl run --cluster`
warns).

An existing key is never overwritten: it is kept and reported, unless --force (a new server key means every
client and node needs the new server.key). Keep *.key_secret files private and out of version control; copy
them over a secure channel.

Prints every file it made or kept.

Examples:
  stagectl keys stages/demo.yaml                        # server pair + client "ctl"
  stagectl keys stages/demo.yaml --client osc-bridge --client lighting-desk
  stagectl keys stages/demo.yaml --node n1 --node n2    # server pair + cluster nodes n1 and n2
"""

from __future__ import annotations

import argparse

HELP = ("make the CURVE key pairs of a stage's ZeroMQ console and cluster (server, clients such as stagectl "
        "ctl, render nodes)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="stage file, e.g. stages/demo.yaml")
    p.add_argument(
        "--client",
        action="append",
        default=None,
        metavar="NAME",
        help="make a console client key pair NAME (repeatable; default, without --node: ctl); letters, digits, "
             "'_', '.', '-'",
    )
    p.add_argument(
        "--node",
        action="append",
        default=None,
        metavar="NAME",
        help="make a key pair for cluster render node NAME (stagectl node --name NAME; repeatable); once node "
             "keys exist the cluster requires them",
    )
    p.add_argument("--force", action="store_true", help="replace keys that exist (default: keep them)")


def main(args: argparse.Namespace) -> int:
    import os

    from stagectl.console.zmq import zmq_settings
    from stagectl.core.errors import UsageError
    from stagectl.stage import load_stage
    from stagectl.sync.zmq_security import NODES_DIR, SERVER_KEY_NAME, make_keys, resolve_keys_dir

    nodes = args.node or []
    if "primary" in nodes:
        raise UsageError('--node: "primary" is the primary\'s own name in the swap barrier; pick another')
    clients = args.client if args.client is not None else ([] if nodes else ["ctl"])
    stage = load_stage(args.stage)
    keys_dir = resolve_keys_dir(zmq_settings(stage), stage.path.parent)
    done = make_keys(keys_dir, clients, nodes=nodes, force=args.force)
    print(f"stagectl keys: ZeroMQ keys in {keys_dir}")
    width = max(len(str(p)) for _, p in done)
    for what, path in done:
        name = path.name.removesuffix(".key_secret").removesuffix(".key")
        secret = path.name.endswith(".key_secret")
        if name == SERVER_KEY_NAME and path.parent == keys_dir:
            role = ("server secret key (mode 0600)" if secret
                    else "server public key (every client and node needs it)")
        elif path.parent.name == NODES_DIR and path.parent.parent == keys_dir:
            role = (f"node {name!r} secret key (mode 0600; copy to that node with server.key)" if secret
                    else f"authorises cluster node {name!r}")
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
    if nodes:
        print(f"stagectl keys: the cluster now requires node keys (CURVE): `stagectl node --name NAME` finds "
              f"{keys_dir}/{NODES_DIR}/NAME.key_secret and {keys_dir}/server.key (or --key FILE)")
    return 0
