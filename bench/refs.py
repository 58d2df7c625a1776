"""Which reference plugin directories bench.py and scale.py compare against.

    --ref NAME=DIR      (repeatable) exactly these references, in this order

Without --ref: `ref-v1.1` = /usr/lib/cni (Debian's containernetworking-plugins
1.1.1) and, when bench/build-reference.sh has built it, `ref-v1.9` =
/var/cache/pycni-bench/ref-v1.9/bin ($PYCNI_REF_V19, or
$PYCNI_BENCH_CACHE/ref-v1.9/bin as build-reference.sh). The first reference
is the one that plays "a node that ran the reference" where a case needs one
(scale.py's portmap-500 fill, host-local's outside writer).

Also what every benchmark script shares: the order of one round of
alternating runs (`alternate`), the machine lines of a report
(`machine_lines`), one timed plugin exec (`timed_call`), the namespaces
a script re-executes itself in (`run_in_namespaces`) and its `main`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

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


# ---------------------------------------------- shared by the bench scripts

def alternate(i: int, names: list) -> list:
    """Round i's order: rotated by i (A B C, B C A, C A B, ...), so every
    implementation takes every place in turn and load changes on the
    machine hit them alike."""
    shift = i % len(names)
    return names[shift:] + names[:shift]


def machine_lines(stamp: bool = False) -> list[str]:
    """The report's first lines: CPU, load, kernel and Python (with the
    time of the run first when `stamp`)."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    when = f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; " if stamp else ""
    return [f"- {when}CPU: {cpu}, nproc {os.cpu_count()}, load average {load} at start",
            f"- kernel {platform.release()}, Python {platform.python_version()} "
            f"({sys.executable})"]


def timed_call(binary: str, env: dict, stdin: bytes, what: str = "") -> tuple[bytes, float]:
    """Exec `binary` once as a runtime does (config on stdin): (its stdout,
    wall time in ms). SystemExit when it fails."""
    start = time.perf_counter()
    proc = subprocess.run([binary], input=stdin, env=env, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{binary} {what or env.get('CNI_COMMAND', '')} failed "
                         f"({proc.returncode}): {proc.stdout.decode()} {proc.stderr.decode()}")
    return proc.stdout, elapsed


def run_in_namespaces(script: str, prefix: str, host_setup: list[list[str]],
                      containers: int, inner_args: list[str], ref_specs,
                      ctr: str = "ctr") -> int:
    """Create the "host" namespace `PREFIX-host` (then `ip -n HOST ARGS` for
    each of `host_setup`) and `containers` container namespaces
    `PREFIX-CTRi`, run `script --inner JSON-of-their-paths INNER_ARGS
    --ref ...` inside the host namespace, and delete every namespace
    created, always. The script's exit status."""
    created = []

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        host = f"{prefix}-host"
        ip("netns", "add", host)
        created.append(host)
        for argv in host_setup:
            ip("-n", host, *argv)
        paths = []
        for i in range(containers):
            name = f"{prefix}-{ctr}{i}"
            ip("netns", "add", name)
            created.append(name)
            paths.append(f"/run/netns/{name}")
        cmd = ["ip", "netns", "exec", host, sys.executable, os.path.abspath(script),
               "--inner", json.dumps(paths), *inner_args]
        for spec in ref_specs or []:
            cmd += ["--ref", spec]
        return subprocess.run(cmd).returncode
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def main(doc: str, inner, outer, add_arguments) -> int:
    """A bench script's entry: its options (`add_arguments(parser)`), then
    --ref and the hidden --inner; `inner(args)` when re-executed inside the
    host namespace, else `outer(args)`, which sets the namespaces up."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    add_arguments(parser)
    add_argument(parser)
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return inner(args) if args.inner is not None else outer(args)
