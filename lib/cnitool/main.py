"""The cnitool command line (same commands, flags and environment as the
reference cnitool).

    cnitool [-i IFNAME] add|check|del|gc|status <network-name> [<netns>]

Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME
(default eth0), CNI_ARGS, CAP_ARGS (a JSON object); pycni extensions:
CNI_CONTAINERID (instead of the ID derived from the netns path) and
CNI_CACHE_DIR (default /var/lib/cni).
"""

import json
import os
import sys
from dataclasses import dataclass

from .conf import go_escape

DEFAULT_NET_DIR = "/etc/cni/net.d"
IFNAME_HELP = "Interface name (defaults to env var CNI_IFNAME or 'eth0')"

LONG = ("CNI Tool is a simple program that executes a CNI configuration.\n"
        "It will add, check, remove, gc, or get status of an interface in an "
        "already-created network namespace.")

# command -> (short help, long help, needs a netns)
COMMANDS = {
    "add": ("Add network interface to a network namespace",
            "Add network interface to a network namespace.\nThis command will create a new "
            "network interface and add it to the specified network namespace.", True),
    "check": ("Check network interface in a network namespace",
              "Check network interface in a network namespace.\nThis command will check if "
              "the network interface is properly configured in the specified network "
              "namespace.", True),
    "del": ("Delete network interface from a network namespace",
            "Delete network interface from a network namespace.\nThis command will remove "
            "the network interface from the specified network namespace.", False),
    "gc": ("Garbage collect network interfaces",
           "Garbage collect network interfaces.\nThis command will clean up unused network "
           "interfaces in the specified network namespace.", False),
    "status": ("Get status of network interfaces",
               "Get status of network interfaces.\nThis command will retrieve the status of "
               "network interfaces in the specified network namespace.", False),
}


class UsageError(Exception):
    def __init__(self, msg: str, command: str | None = None):
        super().__init__(msg)
        self.command = command


@dataclass
class Invocation:
    command: str | None = None      # None: show help
    net_name: str = ""
    netns: str = ""
    ifname: str = ""
    help: bool = False


def parse_argv(argv: list[str]) -> Invocation:
    """Flags may appear anywhere, as with the reference's cobra parser."""
    inv = Invocation()
    positional = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1:])
            break
        if arg in ("-h", "--help"):
            inv.help = True
        elif arg in ("-i", "--ifname"):
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: {arg!r} in {arg}"
                                 if arg == "-i" else f"flag needs an argument: {arg}")
            i += 1
            inv.ifname = argv[i]
        elif arg.startswith("--ifname="):
            inv.ifname = arg.split("=", 1)[1]
        elif arg.startswith("-i") and not arg.startswith("--"):
            inv.ifname = arg[2:].removeprefix("=")
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown flag: {arg}" if arg.startswith("--")
                             else f"unknown shorthand flag: {arg[1]!r} in {arg}")
        else:
            positional.append(arg)
        i += 1
    if positional and positional[0] == "help":
        inv.help = True
        positional = positional[1:]
    if not positional:
        return inv
    inv.command = positional[0]
    if inv.command not in COMMANDS:
        raise UsageError(f'unknown command "{inv.command}" for "cnitool"')
    if inv.help:
        return inv
    args = positional[1:]
    needed = 2 if COMMANDS[inv.command][2] else 1
    if len(args) < needed:
        raise UsageError(f"requires at least {needed} arg(s), only received {len(args)}",
                         inv.command)
    inv.net_name = args[0]
    inv.netns = args[1] if len(args) > 1 else ""
    return inv


def root_help() -> str:
    lines = [LONG, "", "Usage:", "  cnitool [command]", "", "Available Commands:"]
    shorts = {name: short for name, (short, _, _) in COMMANDS.items()}
    shorts["help"] = "Help about any command"
    for name in sorted(shorts):
        lines.append(f"  {name:<11} {shorts[name]}")
    lines += ["", "Flags:", "  -h, --help            help for cnitool",
              f"  -i, --ifname string   {IFNAME_HELP}", "",
              'Use "cnitool [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


def command_usage(command: str) -> str:
    netns = "<netns>" if COMMANDS[command][2] else "[<netns>]"
    return "\n".join([
        "Usage:", f"  cnitool {command} <network-name> {netns} [flags]", "",
        "Flags:", f"  -h, --help   help for {command}", "",
        "Global Flags:", f"  -i, --ifname string   {IFNAME_HELP}", ""])


def command_help(command: str) -> str:
    return COMMANDS[command][1] + "\n\n" + command_usage(command)


def go_indent(obj) -> str:
    """Go's json.MarshalIndent(obj, "", "    ")."""
    return go_escape(json.dumps(obj, indent=4, ensure_ascii=False))


def build_runtime_conf(inv: Invocation, env: dict):
    """The attachment arguments from the command line and environment."""
    from .request import (RuntimeConf, absolute_netns, container_id_for,
                          parse_capability_args, parse_cni_args)
    capability_args = parse_capability_args(env.get("CAP_ARGS", ""))
    cni_args = parse_cni_args(env["CNI_ARGS"]) if env.get("CNI_ARGS") else []
    ifname = inv.ifname or env.get("CNI_IFNAME") or "eth0"
    netns = absolute_netns(inv.netns) if inv.netns else ""
    container_id = env.get("CNI_CONTAINERID") or (container_id_for(netns) if netns else "")
    return RuntimeConf(container_id=container_id, netns=netns, ifname=ifname,
                       args=cni_args, capability_args=capability_args)


def execute(inv: Invocation, env: dict, stdout) -> None:
    """Run one command; raises on failure."""
    from .cache import DEFAULT_CACHE_DIR
    from .conf import load_network
    from .runtime import Runtime, CnitoolError

    netlist = load_network(env.get("NETCONFPATH") or DEFAULT_NET_DIR, inv.net_name)
    rt = build_runtime_conf(inv, env)
    path = [p for p in env.get("CNI_PATH", "").split(os.pathsep) if p]
    runtime = Runtime(path=path, cache_dir=env.get("CNI_CACHE_DIR") or DEFAULT_CACHE_DIR,
                      environ=dict(env))
    if inv.command in ("add", "check", "del") and not rt.container_id:
        raise CnitoolError("a network namespace path or CNI_CONTAINERID is required")
    if inv.command == "add":
        result = runtime.add(netlist, rt)
        stdout.write(go_indent(result))
        stdout.flush()
    elif inv.command == "check":
        runtime.check(netlist, rt)
    elif inv.command == "del":
        runtime.delete(netlist, rt)
    elif inv.command == "gc":
        # As the reference: no valid attachments, so every cached attachment
        # of this network is deleted before the plugins get GC.
        runtime.gc(netlist, None)
    elif inv.command == "status":
        runtime.status(netlist)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--version" in (argv[:argv.index("--")] if "--" in argv else argv):
        from pycni import __version__     # a pycni extension: the reference has no --version
        sys.stdout.write(f"cnitool pycni v{__version__}\n")
        sys.exit(0)
    try:
        inv = parse_argv(argv)
    except UsageError as err:
        sys.stderr.write(f"Error: {err}\n")
        if err.command:
            sys.stderr.write(command_usage(err.command) + "\n")
        else:
            sys.stderr.write("Run 'cnitool --help' for usage.\n")
        sys.exit(1)
    if inv.command is None:
        sys.stdout.write(root_help())
        sys.exit(0)
    if inv.help:
        sys.stdout.write(command_help(inv.command))
        sys.exit(0)

    from pycni.errors import CNIError
    from .cache import CacheError
    from .conf import ConfError
    from .runtime import CnitoolError
    try:
        execute(inv, dict(os.environ), sys.stdout)
    except (CNIError, ConfError, CnitoolError, CacheError, ValueError, OSError) as err:
        sys.stdout.flush()
        sys.stderr.write(f"{err}\n")
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
