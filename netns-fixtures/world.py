#!/usr/bin/env python3
"""Create and remove test worlds by hand: named network namespaces to try
plugins in without touching the machine's own network.

    world.py create NAME [--containers N] [--external]
        NAME-host          stands in for the node: run plugins in it
        NAME-c1..NAME-cN   containers (lo down, as a runtime creates them)
        NAME-ext           with --external: a peer outside the node
        prints the namespace paths, one per line, host first
    world.py destroy NAME
        kills what runs in NAME's namespaces and removes them
    world.py destroy --leftovers
        removes namespaces left behind by test runs that are no longer running
    world.py list
        worlds made here, and test leftovers

Needs root and iproute2. Standard library only.
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from netns_world import (PREFIX, create_namespace, delete_namespace,  # noqa: E402
                         namespace_names)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}\Z")
LEFTOVER_RE = re.compile(re.escape(PREFIX) + r"(\d+)-")


def member_names(world: str, containers: int, external: bool) -> list[tuple[str, str]]:
    """(namespace name, role) for every member of a world, host first."""
    members = [(f"{world}-host", "host")]
    members += [(f"{world}-c{i}", "container") for i in range(1, containers + 1)]
    if external:
        members.append((f"{world}-ext", "external"))
    return members


def members_of(world: str, names: list[str]) -> list[str]:
    """The existing namespaces that belong to `world`, host first."""
    pattern = re.compile(re.escape(world) + r"-(host|ext|c\d+)\Z")
    found = [n for n in names if pattern.match(n)]

    def order(name: str) -> tuple[int, int]:
        role = name[len(world) + 1:]
        if role == "host":
            return 0, 0
        if role == "ext":
            return 2, 0
        return 1, int(role[1:])

    return sorted(found, key=order)


def worlds(names: list[str]) -> dict[str, list[str]]:
    """World name -> members, for every `NAME-host` namespace."""
    return {n[:-len("-host")]: members_of(n[:-len("-host")], names)
            for n in sorted(names) if n.endswith("-host") and not LEFTOVER_RE.match(n)}


def leftovers(names: list[str]) -> list[str]:
    """Test namespaces whose test process is gone."""
    stale = []
    for name in names:
        match = LEFTOVER_RE.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            stale.append(name)
    return stale


def create(world: str, containers: int, external: bool) -> int:
    existing = set(namespace_names())
    members = member_names(world, containers, external)
    clash = [name for name, _ in members if name in existing] or members_of(world, existing)
    if clash:
        print(f"world.py: {world!r} exists already ({', '.join(sorted(clash))}); "
              f"`world.py destroy {world}` first", file=sys.stderr)
        return 1
    made = []
    try:
        for name, role in members:
            # Containers start with lo down, like a runtime's fresh netns.
            made.append(create_namespace(name, lo_up=role != "container"))
    except (RuntimeError, OSError) as err:
        for ns in made:
            delete_namespace(ns.name)
        print(f"world.py: {err}", file=sys.stderr)
        return 1
    for ns in made:
        print(ns.path)
    print(f"run plugins in the host: ip netns exec {world}-host PLUGIN ...; "
          f"remove with: world.py destroy {world}", file=sys.stderr)
    return 0


def destroy(names_to_remove: list[str], what: str, none_is_error: bool = True) -> int:
    if not names_to_remove:
        print(f"world.py: nothing to remove for {what}", file=sys.stderr)
        return 1 if none_is_error else 0
    failed = False
    for name in names_to_remove:
        error = delete_namespace(name)
        if error:
            failed = True
            print(f"world.py: {name}: {error.strip()}", file=sys.stderr)
        else:
            print(f"removed {name}")
    return 1 if failed else 0


def show(names: list[str]) -> int:
    for world, members in worlds(names).items():
        roles = [m[len(world) + 1:] for m in members]
        print(f"{world}\t{' '.join(roles)}")
    stale = leftovers(names)
    if stale:
        print(f"{len(stale)} namespace(s) left by finished test runs "
              "(world.py destroy --leftovers):", file=sys.stderr)
        for name in stale:
            print(f"  {name}", file=sys.stderr)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="world.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_create = sub.add_parser("create", help="create NAME-host, NAME-c1.. (and NAME-ext)")
    p_create.add_argument("name")
    p_create.add_argument("--containers", type=int, default=1, metavar="N",
                          help="number of container namespaces (default 1)")
    p_create.add_argument("--external", action="store_true",
                          help="also create NAME-ext, a namespace outside the node")
    p_destroy = sub.add_parser("destroy", help="remove a world's namespaces")
    target = p_destroy.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?")
    target.add_argument("--leftovers", action="store_true",
                        help="remove namespaces of test runs that have ended")
    sub.add_parser("list", help="list worlds and test leftovers")
    args = parser.parse_args(argv)
    name = getattr(args, "name", None)
    if name is not None and not NAME_RE.match(name):
        parser.error(f"invalid world name {name!r}: letters, digits, '_', '.', '-', "
                     "at most 40 characters")
    if args.cmd == "create" and not 0 <= args.containers <= 64:
        parser.error("--containers must be between 0 and 64")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("world.py: needs root (network namespaces)", file=sys.stderr)
        return 1
    try:
        names = namespace_names()
    except (RuntimeError, OSError) as err:
        print(f"world.py: cannot list namespaces (is iproute2 installed?): {err}",
              file=sys.stderr)
        return 1
    if args.cmd == "create":
        return create(args.name, args.containers, args.external)
    if args.cmd == "destroy":
        if args.leftovers:
            return destroy(leftovers(names), "finished test runs", none_is_error=False)
        return destroy(members_of(args.name, names), args.name)
    return show(names)


if __name__ == "__main__":
    sys.exit(main())
