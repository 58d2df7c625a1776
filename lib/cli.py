"""The `pycni` command: install plugin executables, list them.

    pycni install --dir /opt/cni/bin    one executable per plugin
    pycni list                          plugin names and their modules

An installed plugin is a tiny launcher script (see launcher.py).
"""

import argparse
import os
import sys

from .launcher import launcher_text
from .registry import PLUGINS

def install(directory: str, names=None, python: str | None = None) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    written = []
    for name in names or PLUGINS:
        target = os.path.join(directory, name)
        tmp = f"{target}.pycni-tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(launcher_text(name, python))
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)   # atomic: a runtime never sees half a file
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pycni", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_install = sub.add_parser("install", help="write plugin executables into a directory")
    p_install.add_argument("--dir", required=True, help="e.g. /opt/cni/bin")
    p_install.add_argument("--python", help="interpreter for the launchers "
                           "(default: this one)")
    p_install.add_argument("plugins", nargs="*", help="only these (default: all)")
    sub.add_parser("list", help="list the plugins")
    args = parser.parse_args(argv)
    if args.cmd == "install":
        unknown = [n for n in args.plugins if n not in PLUGINS]
        if unknown:
            parser.error(f"unknown plugin(s): {', '.join(unknown)}")
        for path in install(args.dir, args.plugins or None, args.python):
            print(path)
    elif args.cmd == "list":
        for name, module in PLUGINS.items():
            print(f"{name}\t{module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
