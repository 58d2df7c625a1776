"""`pycni lint [--json] [PATH ...]`: the runner and its output.

Exit 0: no error found; 1: at least one error; 2: usage error.
"""

import argparse
import os
import sys

# The checks are imported when they run: `pycni --help` and the other
# subcommands do not pay for them.

DEFAULT_DIR = "/etc/cni/net.d"


def default_paths(env) -> list[str]:
    return [env.get("NETCONFPATH") or DEFAULT_DIR]


def lint(paths: list[str], env, prober):
    """Load `paths` and run every check; (what was loaded, all findings)."""
    from . import checks
    from .load import load_paths
    loaded = load_paths(paths)
    ctx = checks.Context(prober, env)
    for net in loaded.networks:
        checks.check_network(net, ctx)
    checks.check_node(loaded.networks, ctx)
    return loaded, sort_findings(loaded, loaded.findings + ctx.findings)


def sort_findings(loaded, findings: list) -> list:
    """By file (in the order the files were read), then as found."""
    order = {f: i for i, f in enumerate(dict.fromkeys(
        [*loaded.directories, *loaded.files, *(f.file for f in findings)]))}
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: order.get(f.file, len(order)))


def summary(loaded) -> list[dict]:
    from . import checks
    out = []
    for net in loaded.networks:
        out.append({
            "file": net.file, "name": net.name, "format": net.kind,
            "cniVersion": net.cni_version, "plugins": [checks._type(p.conf) for p in net.plugins],
            "commands": checks.commands_of(net.cni_version) if net.loads else "",
            "loads": net.loads, "shadowedBy": net.shadowed_by or None,
            "runtimeDefault": loaded.defaults.get(net.file, []),
        })
    return out


def document(paths, cni_dirs, source, loaded, findings) -> dict:
    from .findings import ERROR, WARNING
    errors = sum(f.severity == ERROR for f in findings)
    return {"paths": paths, "cniPath": cni_dirs, "cniPathSource": source,
            "networks": summary(loaded), "findings": [f.to_dict() for f in findings],
            "errors": errors, "warnings": sum(f.severity == WARNING for f in findings)}


def _safe(text: str) -> str:
    """A file name or message on one terminal line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def text_report(doc: dict) -> str:
    lines = []
    for net in doc["networks"]:
        tags = []
        if net["runtimeDefault"]:
            tags.append(" and ".join(f"{r}'s" for r in net["runtimeDefault"]) + " default")
        if net["shadowedBy"]:
            tags.append(f"unused: {net['shadowedBy']} defines it first")
        if not net["loads"]:
            tags.append("does not load")
        chain = " -> ".join(net["plugins"]) or "no plugins"
        version = net["cniVersion"] or "none"
        commands = f": {net['commands']}" if net["commands"] else ""
        lines.append(_safe(f"{net['file']}: network {net['name']!r}, cniVersion {version}"
                           f"{commands}; {chain}" + (f" [{'; '.join(tags)}]" if tags else "")))
    if lines:
        lines.append("")
    for f in doc["findings"]:
        where = f["file"] + (f"#{f['pointer']}" if f["pointer"] else "")
        lines.append(_safe(f"{where}: {f['severity']}: {f['message']}"))
    lines.append(f"{doc['errors']} error(s), {doc['warnings']} warning(s)")
    return "\n".join(lines) + "\n"


def main(argv=None, env=None) -> int:
    parser = argparse.ArgumentParser(
        prog="pycni lint",
        description="Check CNI network configurations the way a runtime loads them.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, env)


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--cni-path", metavar="DIRS",
                        help="plugin directories, ':'-separated (default: $CNI_PATH, "
                        "else /opt/cni/bin)")
    parser.add_argument("--no-exec", action="store_true",
                        help="do not ask the plugins found their versions (VERSION)")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="config files or directories (default: $NETCONFPATH, "
                        f"else {DEFAULT_DIR})")


def run(args, env=None) -> int:
    import json
    from . import probe
    env = os.environ if env is None else env
    paths = args.paths or default_paths(env)
    dirs, source = probe.cni_path(env, args.cni_path)
    prober = probe.Prober(dirs, source, run_version=not args.no_exec)
    loaded, findings = lint(paths, env, prober)
    doc = document(paths, dirs, source, loaded, findings)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(text_report(doc))
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
