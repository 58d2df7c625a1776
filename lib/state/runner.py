"""`pycni state` and `pycni gc`: the command-line layer.

    pycni state [--data-dir D] [--cache-dir C] [--json] [NETWORK]
    pycni gc    [--dry-run] [--data-dir D] [--cache-dir C] [--json] NETWORK

Environment as cnitool's: NETCONFPATH (default /etc/cni/net.d) to find
the network's conflist, CNI_PATH for its plugins, CNI_CACHE_DIR (default
/var/lib/cni) for the result cache. Exit status 0, 1 on a failure (a
config that does not load, a plugin's GC that failed), 2 on usage errors.
"""

import os
import sys

DEFAULT_NET_DIR = "/etc/cni/net.d"
DEFAULT_MIN_AGE = 60.0


def _json_text(doc, indent=None) -> str:
    # json loads only when --json asks for it: `pycni install` builds this
    # parser too, and must not import what a planted PYTHONPATH could shadow
    # (tests/integration/test_security_install.py)
    import json
    return json.dumps(doc, indent=indent)


def add_parsers(sub) -> None:
    """The two subcommands, on an argparse subparsers object."""
    p = sub.add_parser("state", help="addresses, their owners and host objects, per network")
    _common(p)
    p.add_argument("network", nargs="?", help="only this network")
    p = sub.add_parser("gc", help="GC a network with the valid attachments from the "
                       "runtime's cache; prints what it removes")
    _common(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be removed; change nothing")
    p.add_argument("--min-age", type=float, default=DEFAULT_MIN_AGE, metavar="SECONDS",
                   help="an address without a cache entry reserved less than this ago "
                   "belongs to an ADD in flight and is kept (default: %(default)s)")
    p.add_argument("network")


def _common(p) -> None:
    p.add_argument("--data-dir", help="host-local data dir (default: the network "
                   "config's ipam dataDir, else /var/lib/cni/networks)")
    p.add_argument("--cache-dir", help="libcni cache dir (default: $CNI_CACHE_DIR, "
                   "else /var/lib/cni)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument("--no-host-objects", action="store_true",
                   help="addresses and cache only: no firewall or link lookups (no tool runs)")


def config_data_dir(netlist) -> str | None:
    """The dataDir of the list's host-local IPAM (a delegating plugin's
    `ipam`, or host-local itself at the top level); None when it has none."""
    from pycni.decode import lookup
    for plugin in netlist.plugins:
        for conf in (lookup(plugin, "ipam"), plugin):
            if isinstance(conf, dict) and lookup(conf, "type") == "host-local":
                data_dir = lookup(conf, "dataDir")
                from .read import DEFAULT_DATA_DIR
                return data_dir if isinstance(data_dir, str) and data_dir else DEFAULT_DATA_DIR
    return None


def _dirs(args, env, netlist=None) -> tuple[str, str]:
    from .read import DEFAULT_CACHE_DIR, DEFAULT_DATA_DIR
    cache_dir = args.cache_dir or env.get("CNI_CACHE_DIR") or DEFAULT_CACHE_DIR
    data_dir = args.data_dir or (config_data_dir(netlist) if netlist else None) \
        or DEFAULT_DATA_DIR
    return data_dir, cache_dir


def _load(env, name: str):
    from pycni.cnitool.conf import load_network
    return load_network(env.get("NETCONFPATH") or DEFAULT_NET_DIR, name)


def run(args, env=None, out=None, err=None) -> int:
    env = dict(os.environ) if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    if args.cmd == "state":
        return cmd_state(args, env, out, err)
    return cmd_gc(args, env, out, err)


def config_data_dirs(env) -> dict[str, str]:
    """network -> its host-local dataDir, for every conflist in NETCONFPATH
    that has one (files that do not load are left out: `pycni lint` is
    the tool for them)."""
    from pycni.cnitool.conf import (CONFLIST_EXTENSIONS, ConfError, conf_files,
                                    load_list_file)
    out: dict[str, str] = {}
    try:
        paths = conf_files(env.get("NETCONFPATH") or DEFAULT_NET_DIR, CONFLIST_EXTENSIONS)
    except (ConfError, OSError):
        return out
    for path in paths:
        try:
            netlist = load_list_file(path)
        except (ConfError, OSError):
            continue
        data_dir = config_data_dir(netlist)
        if data_dir and netlist.name not in out:    # the first file of a name wins
            out[netlist.name] = data_dir
    return out


def cmd_state(args, env, out, err) -> int:
    from . import model, read
    data_dir, cache_dir = _dirs(args, env)
    per_network = {} if args.data_dir else config_data_dirs(env)
    networks = [args.network] if args.network else None
    if networks is None and per_network:
        networks = sorted(set(per_network) | set(_listed(data_dir, cache_dir)))
    states = read.snapshot(networks, data_dir, cache_dir,
                           host_objects=not args.no_host_objects, data_dirs=per_network)
    if args.json:
        out.write(_json_text({"cacheDir": cache_dir,
                              "networks": [model.state_json(s) for s in states]},
                             indent=2) + "\n")
        return 0
    if not states:
        out.write(f"no networks in {data_dir} or {os.path.join(cache_dir, 'results')}\n")
    out.write("\n".join(model.state_text(s) for s in states))
    return 0


def _listed(data_dir: str, cache_dir: str) -> list[str]:
    """Networks with a store in the data dir or an entry in the cache."""
    from pycni.cnitool import cache
    from . import read
    names = {a.network for a in cache.attachments(cache_dir)}
    try:
        names.update(read.store_networks(data_dir))
    except OSError:
        pass
    return sorted(names)


def cmd_gc(args, env, out, err) -> int:
    from pycni.cnitool import versions
    from pycni.cnitool.conf import ConfError
    from . import model, read
    try:
        netlist = _load(env, args.network)
    except (ConfError, OSError) as exc:
        err.write(f"pycni gc: {exc}\n")
        return 1
    data_dir, cache_dir = _dirs(args, env, netlist)
    before = read.snapshot([args.network], data_dir, cache_dir,
                           host_objects=not args.no_host_objects)[0]
    unread = [p for p in before.problems if p.startswith(("cache ", "store "))]
    if unread and not args.dry_run:
        # without the cache every attachment would look dead
        for problem in unread:
            err.write(f"pycni gc: {problem}\n")
        err.write("pycni gc: refusing to collect on a state it could not read\n")
        return 1
    if args.min_age < 0:
        err.write("pycni gc: --min-age must not be negative\n")
        return 2
    valid = model.valid_attachments(before, args.min_age)
    if netlist.disable_gc:
        plan = model.Removal(args.network)
    else:
        plan = model.plan_gc(before, versions.at_least(netlist.cni_version, "1.1.0"),
                             args.min_age)
    doc = {"network": args.network, "dryRun": bool(args.dry_run),
           "valid": [{"containerID": c, "ifname": i} for c, i in valid]}
    if args.dry_run or netlist.disable_gc:
        if args.json:
            doc["wouldRemove"] = model.removal_json(plan)
            out.write(_json_text(doc, indent=2) + "\n")
        elif netlist.disable_gc:
            out.write(f"network {args.network}: disableGC is set, nothing is collected\n")
        else:
            out.write(model.removal_text(plan, "would remove"))
        return 0
    # taken again right before the plugins run: what was ADDed meanwhile is valid too
    latest = read.snapshot([args.network], data_dir, cache_dir, host_objects=False)[0]
    known = set(valid)
    valid += [v for v in model.valid_attachments(latest, args.min_age) if v not in known]
    errors = _run_gc(netlist, valid, cache_dir, env)
    doc["valid"] = [{"containerID": c, "ifname": i} for c, i in valid]
    after = read.snapshot([args.network], data_dir, cache_dir,
                          host_objects=not args.no_host_objects)[0]
    removed = model.diff(before, after)
    if args.json:
        doc["removed"] = model.removal_json(removed)
        doc["errors"] = errors
        out.write(_json_text(doc, indent=2) + "\n")
    else:
        out.write(model.removal_text(removed, "removed"))
    for line in errors:
        err.write(f"pycni gc: {line}\n")
    return 1 if errors else 0


def _run_gc(netlist, valid, cache_dir: str, env) -> list[str]:
    """libcni's GCNetworkList through cnitool's runtime (its plugin lookup
    on CNI_PATH and its exec path). The failures, one per line."""
    from pycni.cnitool.runtime import Runtime, CnitoolError
    from pycni.errors import CNIError
    path = [p for p in env.get("CNI_PATH", "").split(os.pathsep) if p]
    runtime = Runtime(path=path, cache_dir=cache_dir, environ=dict(env))
    try:
        runtime.gc(netlist, [{"containerID": c, "ifname": i} for c, i in valid])
    except (CnitoolError, CNIError, OSError) as exc:
        return str(exc).splitlines() or [type(exc).__name__]
    return []


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="pycni")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_parsers(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
