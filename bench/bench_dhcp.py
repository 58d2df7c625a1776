#!/usr/bin/env python3
"""Time macvlan + dhcp ADD and DEL, each implementation with its own dhcp daemon.

    sudo python3 bench/bench_dhcp.py [-n 20] [--ref NAME=DIR ...]

The world, all in namespaces of its own (`pycni-bench-<pid>-dh*`, removed in
a `finally`): a "host" namespace where the plugins and the daemons run, a
LAN namespace with dnsmasq (`--no-ping`, so the server answers at once)
behind the host's veth `benchdh0` (the macvlan master), and one container
namespace. Every implementation that has `dhcp` (pycni, ref-v1.1, ref-v1.9:
bench/refs.py) gets its own `dhcp daemon` on a socket in the scratch
directory, named by the config's `ipam.daemonSocketPath`; the daemons'
-timeout is 1s. Steps are macvlan ADD (the daemon's DISCOVER ... ACK
included) and DEL (DHCPRELEASE), alternating implementations as bench.py
does. Prints bench.py's table.
"""

import json
import os
import shutil
import statistics  # noqa: F401  (bench.table)
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import refs  # noqa: E402

LAN_IP = "10.130.0.1"
CASE = bench.Case("macvlan-dhcp-add-del", "dhcp",
                  [bench.Step("ADD", plugin="macvlan"), bench.Step("DEL", plugin="macvlan")],
                  containers=1)


def conf(socket_path: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "bench-dh", "type": "macvlan", "master": "benchdh0",
            "ipam": {"type": "dhcp", "daemonSocketPath": socket_path}}


def start_daemon(name: str, cni_path: str, scratch: str) -> tuple[subprocess.Popen, str]:
    run = os.path.join(scratch, name)
    os.makedirs(run, mode=0o700)
    sock = os.path.join(run, "dhcp.sock")
    argv = [os.path.join(cni_path, "dhcp"), "daemon", "-socketpath", sock, "-timeout", "1s"]
    if name.startswith("pycni"):
        argv += ["-statedir", os.path.join(run, "state")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(run, "log"),
                                                                          "wb"))
    end = time.monotonic() + 10
    while not os.path.exists(sock) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    if not os.path.exists(sock):
        proc.kill()
        raise RuntimeError(f"{name}: dhcp daemon did not start")
    return proc, sock


def run(binary: str, command: str, config: dict, cni_path: str, ctr: str) -> float:
    env = {"PATH": bench.BARE_PATH, "CNI_COMMAND": command, "CNI_PATH": cni_path,
           "CNI_CONTAINERID": "bench-dh", "CNI_IFNAME": "eth0", "CNI_ARGS": "",
           "CNI_NETNS": ctr}
    return refs.timed_call(binary, env, json.dumps(config).encode())[1]


def inner(args) -> int:
    ctr = args.inner
    impls = bench.implementations(frozen=False, references=args.ref or [])
    impls = {n: d for n, d in impls.items() if os.access(os.path.join(d, "dhcp"), os.X_OK)}
    scratch = tempfile.mkdtemp(prefix="pycni-bench-dh-")
    daemons = {}
    try:
        for name, cni_path in impls.items():
            daemons[name] = start_daemon(name, cni_path, scratch)
        times = {name: {"macvlan ADD": [], "macvlan DEL": [], "total": []} for name in impls}
        names = list(impls)
        for i in range(-bench.WARMUP, args.n):
            for name in refs.alternate(i, names):
                binary = os.path.join(impls[name], "macvlan")
                c = conf(daemons[name][1])
                add = run(binary, "ADD", c, impls[name], ctr)
                rm = run(binary, "DEL", c, impls[name], ctr)
                if i >= 0:
                    times[name]["macvlan ADD"].append(add)
                    times[name]["macvlan DEL"].append(rm)
                    times[name]["total"].append(add + rm)
        print(f"## macvlan + dhcp, {args.n} iterations\n")
        print(bench.table(CASE, times))
    finally:
        for proc, _ in daemons.values():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(impls.get("pycni", "/nonexistent-pycni-bench"), ignore_errors=True)
    return 0


def outer(args) -> int:
    if os.geteuid() != 0 or not shutil.which("ip"):
        sys.exit("bench_dhcp.py: needs root and iproute2 (it creates network namespaces)")
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(dnsmasq):
        sys.exit("bench_dhcp.py: needs dnsmasq (apt-get install dnsmasq-base)")
    refs.parse(args.ref)
    prefix = f"pycni-bench-{os.getpid()}-dh"
    host, lan, ctr = f"{prefix}host", f"{prefix}lan", f"{prefix}ctr"
    created, server = [], None
    scratch = tempfile.mkdtemp(prefix="pycni-bench-dhsrv-")
    try:
        for ns in (host, lan, ctr):
            bench.ip("netns", "add", ns)
            created.append(ns)
        bench.ip("-n", host, "link", "set", "lo", "up")
        bench.ip("-n", host, "link", "add", "benchdh0", "type", "veth", "peer", "name", "ext0",
                 "netns", lan)
        bench.ip("-n", host, "link", "set", "benchdh0", "up")
        bench.ip("-n", lan, "addr", "add", f"{LAN_IP}/24", "dev", "ext0")
        bench.ip("-n", lan, "link", "set", "ext0", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", lan, dnsmasq, "--no-daemon", "--conf-file=/dev/null",
             "--port=0", "--interface=ext0", "--bind-interfaces", "--no-ping",
             "--dhcp-authoritative", "--dhcp-range=10.130.0.100,10.130.0.250,255.255.255.0,1h",
             f"--dhcp-leasefile={os.path.join(scratch, 'leases')}",
             f"--pid-file={os.path.join(scratch, 'pid')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        cmd = ["ip", "netns", "exec", host, sys.executable, os.path.abspath(__file__),
               "--inner", f"/run/netns/{ctr}", "-n", str(args.n)]
        for spec in args.ref or []:
            cmd += ["--ref", spec]
        return subprocess.run(cmd).returncode
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def add_arguments(parser) -> None:
    parser.add_argument("-n", type=int, default=20, help="iterations (default 20)")


def main() -> int:
    return refs.main(__doc__, inner, outer, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
