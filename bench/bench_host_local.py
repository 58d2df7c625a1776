#!/usr/bin/env python3
"""Time host-local ADD and DEL, ours against the reference, on stores that
already hold 10 and 5,000 allocations in a /16.

Each call is a fresh process fed the config on stdin, as a runtime runs
it. The store is pre-filled with files in the reference's format (as a
node that ran the reference would have them); the first call of ours then
rebuilds its index once, and that cold call is reported separately.

    python3 bench/bench_host_local.py [--runs 30] [--sizes 10,5000]
        [--ours DIR-with-host-local] [--ref /usr/lib/cni/host-local]

Without --ours, our plugins are installed into a temp dir with `pycni install`;
the PyInstaller build in dist/cni-bin (./build.sh) is timed too when present.
Prints a Markdown table (milliseconds, median and 90th percentile). The
VERSION column is the cost of starting the process (interpreter, imports)
without touching the store: what is left of ADD/DEL after it is the work.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import refs

NETWORK = "benchnet"
SUBNET_BASE = (10 << 24) | (88 << 16)      # 10.88.0.0/16


def ip(value: int) -> str:
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


def fill(data_dir: str, count: int, network: str = NETWORK) -> None:
    """`count` allocations 10.88.0.2 onwards, as the reference writes them
    (also used by scale.py)."""
    net = os.path.join(data_dir, network)
    shutil.rmtree(data_dir, ignore_errors=True)
    os.makedirs(net, 0o755)
    last = None
    for i in range(count):
        last = ip(SUBNET_BASE + 2 + i)
        fd = os.open(os.path.join(net, last), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, f"prefill{i:05d}{'0' * 48}\r\neth0".encode())
        os.close(fd)
    if last:
        with open(os.path.join(net, "last_reserved_ip.0"), "w") as f:
            f.write(last)


def plugin_env(command: str, cid: str, cni_path: str, work: str) -> dict:
    """The CNI_* environment of one call, for a process and in-process alike.
    The bench's stores live below `work`, a temporary directory: listed in
    PYCNI_STATE_DIRS, or ours refuses the dataDir (code 7, pycni.nodeconf)."""
    state_dirs = ":".join(d for d in (os.environ.get("PYCNI_STATE_DIRS", ""), work) if d)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/bench-none",
            "CNI_IFNAME": "eth0", "CNI_PATH": cni_path, "PYCNI_STATE_DIRS": state_dirs}


def call(binary: str, command: str, cid: str, conf: bytes, work: str) -> float:
    env = plugin_env(command, cid, os.path.dirname(binary), work)
    return refs.timed_call(binary, env, conf)[1]


def config(data_dir: str) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": NETWORK, "type": "bridge",
                       "ipam": {"type": "host-local", "subnet": "10.88.0.0/16",
                                "dataDir": data_dir}}).encode()


def measure(impls: list, size: int, runs: int, work: str) -> dict:
    """ADD and DEL timings per implementation; calls of the implementations
    are interleaved so that load on the machine hits them alike."""
    out = {}
    confs = {}
    for label, binary in impls:
        data_dir = os.path.join(work, f"data-{label}")
        fill(data_dir, size)
        confs[label] = config(data_dir)
        out[label] = {"version": [], "add": [], "del": []}
        out[label]["cold_add"] = call(binary, "ADD", "cold", confs[label], work)
        call(binary, "DEL", "cold", confs[label], work)
    for i in range(runs):
        for label, binary in impls:
            out[label]["version"].append(call(binary, "VERSION", "", b"", work))
            out[label]["add"].append(call(binary, "ADD", f"bench{i}", confs[label], work))
    for i in range(runs):
        for label, binary in impls:
            out[label]["del"].append(call(binary, "DEL", f"bench{i}", confs[label], work))
    return out


def measure_in_process(size: int, runs: int, work: str) -> dict:
    """Our ADD/DEL without process start-up: the work itself."""
    import io
    from pycni import skel
    from pycni.ipam.host_local.plugin import HostLocalPlugin
    data_dir = os.path.join(work, "data-inprocess")
    fill(data_dir, size)
    conf = config(data_dir)

    def run(command, cid):
        env = plugin_env(command, cid, "/nonexistent", work)
        out = io.StringIO()
        start = time.perf_counter()
        code = skel.run(HostLocalPlugin(), env, io.BytesIO(conf), out)
        elapsed = (time.perf_counter() - start) * 1000
        if code != 0:
            raise SystemExit(f"in-process {command} failed: {out.getvalue()}")
        return elapsed

    cold = run("ADD", "cold")
    run("DEL", "cold")
    adds = [run("ADD", f"bench{i}") for i in range(runs)]
    dels = [run("DEL", f"bench{i}") for i in range(runs)]
    return {"cold_add": cold, "add": adds, "del": dels}


def p90(values):
    return sorted(values)[max(0, int(len(values) * 0.9) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sizes", default="10,5000")
    parser.add_argument("--ours", help="directory holding our host-local executable")
    parser.add_argument("--ref", default="/usr/lib/cni/host-local")
    parser.add_argument("--impl", action="append", default=[], metavar="NAME=DIR",
                        help="another directory with a host-local to time (repeatable)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-host-local-")
    try:
        ours_dir = args.ours
        if not ours_dir:
            ours_dir = os.path.join(work, "bin")
            subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", ours_dir],
                           check=True, capture_output=True)
        impls = [("pycni", os.path.join(ours_dir, "host-local"))]
        frozen = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "dist", "cni-bin", "host-local")
        if os.path.exists(frozen):          # ./build.sh output
            impls.append(("pycni-frozen", frozen))
        for spec in args.impl:
            name, _, directory = spec.partition("=")
            impls.append((name, os.path.join(directory, "host-local")))
        if os.path.exists(args.ref):
            impls.append(("reference", args.ref))
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            results = measure(impls, size, args.runs, work)
            rows += [(label, size, results[label]) for label, _ in impls]
        print("| implementation | existing allocations | ADD median | ADD p90 | "
              "DEL median | DEL p90 | first ADD | VERSION median | ADD − VERSION |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, size, r in rows:
            add, version = statistics.median(r["add"]), statistics.median(r["version"])
            print(f"| {label} | {size} | {add:.1f} | {p90(r['add']):.1f} | "
                  f"{statistics.median(r['del']):.1f} | {p90(r['del']):.1f} | "
                  f"{r['cold_add']:.1f} | {version:.1f} | {add - version:.1f} |")
        print(f"\n(milliseconds per call, {args.runs} calls each, implementations interleaved; "
              f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f})")
        print("\npycni in-process (no interpreter start-up), milliseconds:\n")
        print("| existing allocations | ADD median | DEL median | first ADD (index rebuild) |")
        print("|---:|---:|---:|---:|")
        for size in (int(s) for s in args.sizes.split(",")):
            r = measure_in_process(size, args.runs, work)
            print(f"| {size} | {statistics.median(r['add']):.2f} | "
                  f"{statistics.median(r['del']):.2f} | {r['cold_add']:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
