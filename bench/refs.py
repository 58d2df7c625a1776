"""Which reference plugin directories bench.py and scale.py compare against.

    --ref NAME=DIR      (repeatable) exactly these references, in this order

Without --ref: `ref-v1.1` = /usr/lib/cni (Debian's containernetworking-plugins
1.1.1) and, when bench/build-reference.sh has built it, `ref-v1.9` =
/var/cache/pycni-bench/ref-v1.9/bin ($PYCNI_REF_V19, or
$PYCNI_BENCH_CACHE/ref-v1.9/bin as build-reference.sh). The first reference
is the one that plays "a node that ran the reference" where a case needs one
(scale.py's portmap-500 fill, host-local's outside writer).
"""

import os

DEBIAN_DIR = "/usr/lib/cni"
# bench/build-reference.sh's default output
V19_DIR = os.environ.get("PYCNI_REF_V19") or os.path.join(
    os.environ.get("PYCNI_BENCH_CACHE") or "/var/cache/pycni-bench", "ref-v1.9", "bin")


def has_plugins(directory: str) -> bool:
    return os.access(os.path.join(directory, "loopback"), os.X_OK)


def default_refs() -> list[str]:
    specs = []
    if has_plugins(DEBIAN_DIR):
        specs.append(f"ref-v1.1={DEBIAN_DIR}")
    if has_plugins(V19_DIR):
        specs.append(f"ref-v1.9={V19_DIR}")
    return specs


def parse(specs) -> dict:
    """NAME=DIR specs (None or empty: the defaults) -> {name: absolute dir};
    SystemExit on a malformed spec, a duplicate name or a directory
    without plugins."""
    refs = {}
    for spec in specs or default_refs():
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise SystemExit(f"--ref {spec!r}: expected NAME=DIR")
        if name in refs or name.startswith("pycni"):
            raise SystemExit(f"--ref {spec!r}: name {name!r} already used")
        directory = os.path.abspath(directory)
        if not has_plugins(directory):
            raise SystemExit(f"--ref {spec!r}: no executable {directory}/loopback "
                             "(for ref-v1.9 run bench/build-reference.sh first)")
        refs[name] = directory
    if not refs:
        raise SystemExit("no reference plugins: /usr/lib/cni is missing "
                         "(apt-get install containernetworking-plugins) and no --ref given")
    return refs


def short(name: str) -> str:
    """Column-header form: ref-v1.9 -> v1.9."""
    return name[4:] if name.startswith("ref-") else name


def describe(directory: str) -> str:
    """One line on where a reference came from: its BUILD-INFO source line
    (build-reference.sh) or the Debian package's version."""
    info = os.path.join(os.path.dirname(directory), "BUILD-INFO")
    try:
        with open(info) as f:
            return f.readline().strip().removeprefix("source: ")
    except OSError:
        pass
    if directory == DEBIAN_DIR:
        try:
            with open("/var/lib/dpkg/status") as f:
                block = f.read().split("\n\nPackage: containernetworking-plugins\n", 1)[1]
            version = next(line.split(": ", 1)[1] for line in block.splitlines()
                           if line.startswith("Version: "))
            return f"Debian containernetworking-plugins {version}"
        except (OSError, IndexError, StopIteration):
            pass
    return directory


def add_argument(parser) -> None:
    """The `--ref NAME=DIR` option both benchmark scripts take."""
    parser.add_argument("--ref", action="append", metavar="NAME=DIR",
                        help="a reference to compare against (repeatable; default: "
                             "ref-v1.1=/usr/lib/cni and ref-v1.9=" + V19_DIR +
                             " when built by bench/build-reference.sh)")
