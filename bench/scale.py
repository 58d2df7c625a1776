#!/usr/bin/env python3
"""The measurements issue #12 asks for, pycni against the reference plugins.

    sudo python3 bench/scale.py [--quick] [--case lifecycle --case parallel
                                 --case portmap-500 --case host-local-50k
                                 --case version] [--ref NAME=DIR ...]
                                [--ours DIR]

--ours DIR measures the plugins in DIR as "pycni" (the portable bundle:
--ours dist/cni-bin after ./build.sh) instead of a `pycni install` of the
pycni this Python imports (the venv install).

Cases (each side by side with every reference, runs alternating, medians
and ratios ours ÷ each reference). References (bench/refs.py): --ref
NAME=DIR, repeatable; by default ref-v1.1 = /usr/lib/cni (Debian's 1.1.1)
and ref-v1.9 = /var/cache/pycni-bench/ref-v1.9/bin when
bench/build-reference.sh has built it. The first reference is the one that
fills portmap-500's rules and writes to our host-local store.

  lifecycle       ADD, CHECK, DEL of a conflist bridge (isGateway, ipMasq,
                  hairpinMode) + host-local + portmap (one mapping) through
                  the Go libcni client tests/golibcni/main.go (wall time and
                  CPU of the client process and all its children), plus the
                  same chain by direct plugin exec, per plugin process
                  (wall, CPU, peak RSS)
  parallel        100 parallel ADDs, then 100 parallel DELs of the same list
                  through libcni, each container its own netns: wall time,
                  duplicate IPs, leftovers (links, rules, store, cache)
  portmap-500     portmap ADD and DEL with 500 existing mappings (iptables)
  host-local-50k  host-local ADD (+DEL) at 50,000 existing allocations, the
                  first call after the reference wrote to the store, and
                  ours at 10 allocations
  version         VERSION of every plugin pycni ships (no stdin), and
                  `python -I -S -c pass` as the floor

Every plugin process is waited for with wait4, so its CPU time and peak RSS
(ru_maxrss, which covers what it exec'ed and waited for, e.g. the
reference bridge's host-local) come from the kernel.

Nothing touches the machine's own network: the script creates a "host"
namespace and every container namespace (unique names, pycni-p4b-<pid>-*),
re-executes itself inside the host namespace once (`ip netns exec`), and
removes every namespace and scratch directory in a `finally`.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import refs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLIBCNI_SOURCE = os.path.join(ROOT, "tests", "golibcni", "main.go")
GOPATH = "/usr/share/gocode"
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# The reference portmap v1.1.1 CHECKs an IPv6 DNAT chain whenever ip6tables
# answers, even for an IPv4-only container, and fails ("could not check ipv6
# dnat"; v1.9 checks only the container's family). Every implementation
# therefore gets a PATH of symlinks to /usr/sbin and /usr/bin without
# ip6tables* (set up by tool_path()).
TOOL_PATH = BARE_PATH
OURS = "pycni"
# the references (inner() sets them from --ref): names in order, and REF,
# the first, which plays "a node that ran the reference" (portmap-500's
# fill, host-local's outside writer)
REFS = ["ref-v1.1"]
REF = REFS[0]
PARALLEL = 100


# ------------------------------------------------------------ process runs

class Run:
    __slots__ = ("rc", "out", "err", "wall", "cpu", "rss")

    def __init__(self, rc, out, err, wall, cpu, rss):
        self.rc, self.out, self.err = rc, out, err
        self.wall, self.cpu, self.rss = wall, cpu, rss   # ms, ms, MiB


def _memfd(data: bytes = b"") -> int:
    fd = os.memfd_create("p4bench")
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


RUSAGE_EXEC = None     # the built bench/rusage_exec.c (build_rusage_exec)


def build_rusage_exec(work: str) -> str:
    binary = os.path.join(work, "rusage_exec")
    subprocess.run(["cc", "-O2", "-o", binary, os.path.join(ROOT, "bench", "rusage_exec.c")],
                   check=True, capture_output=True)
    return binary


def spawn(argv: list, env: dict, stdin: bytes = b"") -> Run:
    """Run argv under rusage_exec (fork + wait4 from a 1 MiB process): wall
    ms, CPU ms (user+sys of the process and the children it waited for),
    peak RSS MiB (ru_maxrss), stdout, stderr."""
    fds = [_memfd(stdin), _memfd(), _memfd(), _memfd()]
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(fds)]
        pid = os.posix_spawn(RUSAGE_EXEC, [RUSAGE_EXEC, *argv], env, file_actions=actions)
        _, status, _ = os.wait4(pid, 0)
        outs = []
        for fd in fds[1:]:
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            outs.append(b"".join(chunks))
    finally:
        for fd in fds:
            os.close(fd)
    wall_ns, utime, stime, maxrss = (int(x) for x in outs[2].split())
    return Run(os.waitstatus_to_exitcode(status), outs[0], outs[1], wall_ns / 1e6,
               (utime + stime) / 1000, maxrss / 1024)


def tool_path(work: str) -> str:
    d = os.path.join(work, "tools")
    os.makedirs(d)
    for src in ("/usr/sbin", "/usr/bin"):
        for name in os.listdir(src):
            target = os.path.join(d, name)
            if not name.startswith("ip6tables") and not os.path.lexists(target):
                os.symlink(os.path.join(src, name), target)
    return d


def plugin_env(command: str, cni_path: str, scratch: str, netns: str = "",
               cid: str = "p4-ctr", ifname: str = "eth0") -> dict:
    env = {"PATH": TOOL_PATH, "CNI_COMMAND": command, "CNI_PATH": cni_path,
           # pycni keeps a dataDir below an allowed state root since #11;
           # the reference ignores it
           "PYCNI_STATE_DIRS": scratch}
    if command != "VERSION":
        env.update(CNI_CONTAINERID=cid, CNI_IFNAME=ifname, CNI_ARGS="", CNI_NETNS=netns)
    return env


def call(binary: str, command: str, conf: dict, env: dict) -> Run:
    run = spawn([binary], env, json.dumps(conf).encode())
    if run.rc != 0:
        raise RuntimeError(f"{binary} {command} failed ({run.rc}): "
                           f"{run.out.decode()} {run.err.decode()}")
    return run


def ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.decode()}")


# ------------------------------------------------------------- statistics

def med(values) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(ours: float, ref: float) -> str:
    return f"{ours / ref:.2f}" if ref and ref == ref and ours == ours else "-"


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value == value else "-"


def rows_table(title: str, rows: list, note: str = "") -> str:
    """rows: (label, {impl: {metric: [values]}}) -> one line per label with
    medians of wall/CPU/RSS for pycni and every reference, and the ratios
    pycni ÷ each reference ("-" where an implementation has no value)."""
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    head = ["step"]
    for unit in ("ms", "CPU ms", "RSS MiB"):
        head.append(f"pycni {unit}")
        for r in REFS:
            head += [f"{refs.short(r)} {unit}", f"× {refs.short(r)}"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, per in rows:
        cells = [label]
        for metric in ("wall", "cpu", "rss"):
            mo = med(per.get(OURS, {}).get(metric, []))
            cells.append(fmt_ms(mo))
            for r in REFS:
                mr = med(per.get(r, {}).get(metric, []))
                cells += [fmt_ms(mr), ratio(mo, mr)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def record(store: dict, label: str, impl: str, run: Run) -> None:
    per = store.setdefault(label, {}).setdefault(impl, {})
    for metric in ("wall", "cpu", "rss"):
        per.setdefault(metric, []).append(getattr(run, metric))


# ------------------------------------------------------------------ setup

def install_ours(work: str) -> str:
    directory = os.path.join(work, "bin-pycni")
    subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", directory],
                   check=True, capture_output=True)
    return directory


def build_golibcni(work: str) -> str:
    gowork = os.path.join(work, "go")
    os.makedirs(gowork)
    env = {"PATH": os.environ.get("PATH", BARE_PATH), "HOME": gowork, "GOPATH": GOPATH,
           "GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off", "GOTOOLCHAIN": "local",
           "GOCACHE": os.path.join(gowork, "cache"), "CGO_ENABLED": "0"}
    binary = os.path.join(gowork, "golibcni")
    proc = subprocess.run(["go", "build", "-o", binary, GOLIBCNI_SOURCE], env=env,
                          cwd=gowork, capture_output=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"go build failed: {proc.stderr.decode(errors='replace')}")
    return binary


class World:
    """Namespace names handed from the outer process: host is where we run,
    containers is a pool of container netns paths."""

    def __init__(self, containers: list, scratch: str):
        self.containers = containers
        self.scratch = scratch


def conflist(name: str, bridge: str, subnet: str, data_dir: str, host_port: int) -> dict:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir}},
        # libcni hands a plugin entry on as written: a static runtimeConfig
        # is what a runtime's capability injection would put there
        {"type": "portmap", "capabilities": {"portMappings": True},
         "runtimeConfig": {"portMappings": [
             {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}}]}


def impl_setup(world: World, impls: dict, tag: str) -> dict:
    """Per implementation: its own bridge, subnet, dataDir, cache dir."""
    out = {}
    for k, (name, cni_path) in enumerate(impls.items()):
        d = os.path.join(world.scratch, f"{tag}-{name}")
        os.makedirs(d)
        out[name] = {"cni_path": cni_path, "dir": d, "bridge": f"p4{tag[:4]}{k}",
                     "subnet": f"10.{140 + 10 * k + len(tag) % 5}.0.0/16",
                     "data": os.path.join(d, "ipam"), "cache": os.path.join(d, "cache")}
    return out


def golibcni_run(binary: str, setup: dict, listfile: str, netns: str, cid: str,
                 scratch: str, *ops: str) -> Run:
    env = {"PATH": TOOL_PATH, "PYCNI_STATE_DIRS": scratch}
    run = spawn([binary, "-conflist", listfile, "-netns", netns, "-cni-path",
                 setup["cni_path"], "-cache-dir", setup["cache"], "-container-id", cid,
                 "-ifname", "eth0", *ops], env)
    reports = [json.loads(line) for line in run.out.decode().splitlines() if line.strip()]
    if run.rc != 0 or [r["op"] for r in reports] != list(ops) or not all(r["ok"] for r in reports):
        raise RuntimeError(f"golibcni {ops} via {setup['cni_path']} failed: "
                           f"{run.out.decode()} {run.err.decode()}")
    run.out = reports
    return run


# ---------------------------------------------------------------- lifecycle

def case_lifecycle(world: World, impls: dict, golibcni: str, rounds: int) -> str:
    setups = impl_setup(world, impls, "life")
    ctr = world.containers[0]
    for name, s in setups.items():
        s["list"] = os.path.join(s["dir"], "net.conflist")
        s["conf"] = conflist(f"p4life{name[:3]}", s["bridge"], s["subnet"], s["data"], 18080)
        with open(s["list"], "w") as f:
            json.dump(s["conf"], f)
    client, direct = {}, {}
    names = list(setups)
    for i in range(-2, rounds):            # 2 uncounted warm-up rounds
        for name in refs.alternate(i, names):
            s = setups[name]
            run = golibcni_run(golibcni, s, s["list"], ctr, "p4-life", world.scratch,
                               "add", "check", "del")
            if i >= 0:
                record(client, "ADD+CHECK+DEL through libcni", name, run)
            for label, run in direct_chain(s, ctr, world.scratch):
                if i == -2 and label == "portmap ADD":
                    check_iptables_backend(name, "p4-direct")
                if i >= 0:
                    record(direct, label, name, run)
    # sum over the 6 processes of one direct lifecycle, per round
    total = {name: {} for name in names}
    for name in names:
        for metric in ("wall", "cpu"):
            per_round = zip(*(direct[label][name][metric] for label in direct))
            total[name][metric] = [sum(v) for v in per_round]
        total[name]["rss"] = [max(v) for v in zip(*(direct[l][name]["rss"] for l in direct))]
    direct_rows = list(direct.items()) + [("sum of the 6 processes (RSS: max)", total)]
    return "\n\n".join([
        rows_table("lifecycle through libcni (tests/golibcni)", list(client.items()),
                   f"One golibcni process running add, check, del of bridge (isGateway, "
                   f"ipMasq, hairpinMode) + host-local + portmap (one TCP mapping); "
                   f"{rounds} rounds. CPU: the client and every plugin it waited for; "
                   f"RSS: the largest of them (the Go client itself stays below 5 MiB)."),
        rows_table("lifecycle by direct exec, per plugin process", direct_rows,
                   "The same chain exec'ed plugin by plugin as libcni does it "
                   "(prevResult handed on, DEL in reverse order). The reference bridge "
                   "execs host-local: its CPU and RSS are included (wait4).")])


def check_iptables_backend(name: str, cid: str) -> None:
    """Every implementation must run the iptables backend for bridge's ipMasq
    and portmap with these configs (no backend keys: pycni and v1.9 choose
    iptables when its tools answer, v1.1 has no other): after bridge +
    portmap ADD of `cid` its rules are in iptables' nat table and there is
    no nftables table of the other backend."""
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                         text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True,
                            text=True).stdout if shutil.which("nft") else ""
    masq = any(line.startswith("-A POSTROUTING") and cid in line and "-j CNI-" in line
               for line in nat.splitlines())
    dnat = "CNI-DN-" in nat and "CNI-HOSTPORT-DNAT" in nat
    nft = [t for t in ("cni_plugins_masquerade", "cni_hostport") if t in tables]
    if not (masq and dnat) or nft:
        raise RuntimeError(f"{name}: not the iptables backend after ADD (ipMasq rule "
                           f"{masq}, portmap DNAT {dnat}, nftables tables {nft})")


def direct_chain(s: dict, netns: str, scratch: str):
    """bridge ADD, portmap ADD, bridge CHECK, portmap CHECK, portmap DEL,
    bridge DEL, as libcni runs a two-plugin list; yields (label, Run)."""
    conf = s["conf"]
    common = {"cniVersion": conf["cniVersion"], "name": conf["name"]}
    bridge = {**common, **conf["plugins"][0]}
    portmap = {**common, **conf["plugins"][1]}
    binary = {p: os.path.join(s["cni_path"], p) for p in ("bridge", "portmap")}

    def env(cmd):
        return plugin_env(cmd, s["cni_path"], scratch, netns, "p4-direct")

    add = call(binary["bridge"], "ADD", bridge, env("ADD"))
    yield "bridge ADD", add
    first = json.loads(add.out)
    padd = call(binary["portmap"], "ADD", {**portmap, "prevResult": first}, env("ADD"))
    yield "portmap ADD", padd
    final = json.loads(padd.out)
    yield "bridge CHECK", call(binary["bridge"], "CHECK", {**bridge, "prevResult": final},
                               env("CHECK"))
    yield "portmap CHECK", call(binary["portmap"], "CHECK",
                                {**portmap, "prevResult": final}, env("CHECK"))
    yield "portmap DEL", call(binary["portmap"], "DEL", {**portmap, "prevResult": final},
                              env("DEL"))
    yield "bridge DEL", call(binary["bridge"], "DEL", {**bridge, "prevResult": final},
                             env("DEL"))


# ----------------------------------------------------------------- parallel

def iptables_dump() -> str:
    out = []
    for table in ("nat", "filter"):
        out.append(subprocess.run(["iptables-save", "-t", table], capture_output=True,
                                  text=True).stdout)
    return "\n".join(out)


def leftovers(setup: dict, containers: list, cids: list) -> list:
    """What a complete DEL of every container must have removed."""
    found = []
    data = os.path.join(setup["data"], setup["net"])
    if os.path.isdir(data):
        ips = [f for f in os.listdir(data) if f[0].isdigit() and f != "last_reserved_ip.0"]
        if ips:
            found.append(f"{len(ips)} host-local allocations")
    rules = [line for line in iptables_dump().splitlines()
             if any(c in line for c in cids) or "CNI-DN-" in line and line.startswith("-A")]
    if rules:
        found.append(f"{len(rules)} iptables rules naming the containers")
    links = subprocess.run(["ip", "-o", "link", "show", "master", setup["bridge"]],
                           capture_output=True, text=True).stdout.strip()
    if links:
        found.append(f"{len(links.splitlines())} veths on {setup['bridge']}")
    for ns in containers:
        eth = subprocess.run(["ip", "-n", os.path.basename(ns), "-o", "link", "show", "eth0"],
                             capture_output=True, text=True)
        if eth.returncode == 0:
            found.append(f"eth0 left in {os.path.basename(ns)}")
            break
    cache = os.path.join(setup["cache"], "results")
    if os.path.isdir(cache) and os.listdir(cache):
        found.append(f"{len(os.listdir(cache))} libcni cache entries")
    return found


def parallel_round(golibcni: str, s: dict, containers: list, scratch: str, op: str) -> tuple:
    runs, errors = [None] * len(containers), []

    def one(k):
        try:
            runs[k] = golibcni_run(golibcni, s, s["lists"][k], containers[k], f"p4par{k:03d}",
                                   scratch, op)
        except Exception as exc:            # noqa: BLE001 - reported below
            errors.append(str(exc)[:300])

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(containers))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = (time.perf_counter() - t0) * 1000
    return wall, runs, errors


def case_parallel(world: World, impls: dict, golibcni: str, rounds: int) -> str:
    setups = impl_setup(world, impls, "par")
    containers = world.containers[:PARALLEL]
    for name, s in setups.items():
        s["net"] = f"p4par{name[:3]}"
        s["lists"] = []
        for k in range(len(containers)):
            path = os.path.join(s["dir"], f"net{k}.conflist")
            with open(path, "w") as f:
                json.dump(conflist(s["net"], s["bridge"], s["subnet"], s["data"], 20000 + k), f)
            s["lists"].append(path)
    lines = ["### parallel: 100 ADDs, then 100 DELs, at once (through libcni)", "",
             f"{len(containers)} golibcni processes started together (one thread each), "
             "each container its own netns and its own hostPort; "
             f"{rounds} round(s), alternating. Wall: first start to last exit.", "",
             "| implementation | round | ADD wall ms | DEL wall ms | ADD CPU ms (sum) "
             "| DEL CPU ms (sum) | duplicate IPs | failed calls | leftovers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    summary = {name: {"add": [], "del": []} for name in setups}
    cids = [f"p4par{k:03d}" for k in range(len(containers))]
    for i in range(rounds):
        for name in refs.alternate(i, list(setups)):
            s = setups[name]
            add_wall, adds, add_err = parallel_round(golibcni, s, containers, world.scratch, "add")
            ips = [ip_["address"] for r in adds if r for ip_ in r.out[0]["result"].get("ips", [])]
            dups = len(ips) - len(set(ips))
            del_wall, dels, del_err = parallel_round(golibcni, s, containers, world.scratch, "del")
            left = leftovers(s, containers, cids)
            cpu_a = sum(r.cpu for r in adds if r)
            cpu_d = sum(r.cpu for r in dels if r)
            summary[name]["add"].append(add_wall)
            summary[name]["del"].append(del_wall)
            errs = add_err + del_err
            lines.append(f"| {name} | {i + 1} | {add_wall:.0f} | {del_wall:.0f} | {cpu_a:.0f} "
                         f"| {cpu_d:.0f} | {dups} | {len(errs)} | {'; '.join(left) or 'none'} |")
            for e in errs[:3]:
                print(f"parallel {name}: {e}", file=sys.stderr)
    o = summary[OURS]
    parts = []
    for ref in REFS:
        r = summary[ref]
        parts.append(f"{ref} ADD {med(r['add']):.0f} ms (× {ratio(med(o['add']), med(r['add']))}),"
                     f" DEL {med(r['del']):.0f} ms (× {ratio(med(o['del']), med(r['del']))})")
    lines += ["", f"Medians: pycni ADD {med(o['add']):.0f} ms, DEL {med(o['del']):.0f} ms; "
              + "; ".join(parts) + "."]
    return "\n".join(lines)


# -------------------------------------------------------------- portmap-500

def portmap_conf(k: int, host_port: int, name: str = "p4pm") -> dict:
    return {"cniVersion": "1.0.0", "name": name, "type": "portmap",
            "runtimeConfig": {"portMappings": [
                {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "sandbox": "/run/netns/none"}],
                           "ips": [{"address": f"10.127.{k // 250}.{k % 250 + 2}/16",
                                    "interface": 0}]}}


def case_portmap(world: World, impls: dict, rounds: int, existing: int) -> str:
    ip("link", "add", "p4pm0", "type", "veth", "peer", "name", "p4pm1")
    ip("addr", "add", "10.127.255.1/16", "dev", "p4pm0")
    ip("link", "set", "p4pm0", "up")
    ip("link", "set", "p4pm1", "up")
    ref = os.path.join(impls[REF], "portmap")
    # the existing mappings, as a node running the reference has them
    # (installed by the reference, 8 at a time)
    errors = []

    def fill(ks):
        for k in ks:
            try:
                call(ref, "ADD", portmap_conf(k, 30000 + k),
                     plugin_env("ADD", impls[REF], world.scratch, world.containers[0],
                                f"p4fill{k:04d}"))
            except RuntimeError as exc:
                errors.append(str(exc))
    t0 = time.perf_counter()
    threads = [threading.Thread(target=fill, args=(range(j, existing, 8),)) for j in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"filling portmap rules: {errors[0]}")
    fill_s = time.perf_counter() - t0
    nrules = sum(1 for line in iptables_dump().splitlines() if line.startswith("-A"))
    store: dict = {}
    names = list(impls)
    for i in range(-2, rounds):
        for name in refs.alternate(i, names):
            binary = os.path.join(impls[name], "portmap")
            conf = portmap_conf(existing + 1, 29999)
            for cmd in ("ADD", "DEL"):
                run = call(binary, cmd, conf,
                           plugin_env(cmd, impls[name], world.scratch, world.containers[0],
                                      "p4pm-measured"))
                if i >= 0:
                    record(store, f"portmap {cmd}", name, run)
    return rows_table(f"portmap-500: one mapping ADD and DEL with {existing} existing",
                      list(store.items()),
                      f"{existing} mappings installed first by the {REF} portmap "
                      f"({nrules} iptables rules in nat+filter, filled in {fill_s:.0f} s); "
                      f"then ADD and DEL of one more, {rounds} rounds, alternating.")


# ----------------------------------------------------------- host-local-50k

def fill_store(data_dir: str, net: str, count: int) -> None:
    """`count` allocations from 10.88.0.2 on, in the reference's format."""
    from bench_host_local import fill   # same directory
    fill(data_dir, count, net)


def host_local_conf(data_dir: str, net: str) -> dict:
    return {"cniVersion": "1.0.0", "name": net, "type": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "dataDir": data_dir}}


def case_host_local(world: World, impls: dict, rounds: int, big: int, small: int) -> str:
    net = "p4hl"
    stores = {}
    for name in impls:
        for size in (big, small) if name == OURS else (big,):
            data = os.path.join(world.scratch, f"hl-{name}-{size}")
            fill_store(data, net, size)
            stores[(name, size)] = data

    def hl(name, cmd, cid, size):
        return call(os.path.join(impls[name], "host-local"), cmd,
                    host_local_conf(stores[(name, size)], net),
                    plugin_env(cmd, impls[name], world.scratch, "/run/netns/none", cid))

    store: dict = {}
    cold: dict = {}
    keys = [(OURS, big)] + [(r, big) for r in REFS] + [(OURS, small)]
    for i in range(-2, rounds):
        order = keys if i % 2 == 0 else keys[::-1]
        for name, size in order:
            label = f"at {size:,} allocations"
            if name == OURS and size == big:
                # the first call after the reference wrote to the store: the
                # reference allocates and releases in our store, then ours
                # allocates (recorded), releases, and the steady-state pair
                # below runs on the index that call rebuilt
                ref_hl = os.path.join(impls[REF], "host-local")
                conf = host_local_conf(stores[(OURS, big)], net)
                for cmd in ("ADD", "DEL"):
                    call(ref_hl, cmd, conf, plugin_env(cmd, impls[REF], world.scratch,
                                                       "/run/netns/none", f"p4ref{i + 2:04d}"))
                first = hl(OURS, "ADD", f"p4after{i + 2:04d}", big)
                hl(OURS, "DEL", f"p4after{i + 2:04d}", big)
                if i >= 0:
                    record(cold, "ADD", OURS, first)
            add = hl(name, "ADD", f"p4hl{i + 2:04d}", size)
            dele = hl(name, "DEL", f"p4hl{i + 2:04d}", size)
            if i >= 0:
                record(store, f"{name} ADD {label}", name, add)
                record(store, f"{name} DEL {label}", name, dele)
    # rows: ours big vs ref big; first-after-reference vs ref big; ours big vs ours small
    def per(label_name, label):
        return store[f"{label_name} {label}"][label_name]

    bl, sl = f"at {big:,} allocations", f"at {small:,} allocations"
    rows = []
    for cmd in ("ADD", "DEL"):
        rows.append((f"host-local {cmd} {bl}",
                     {OURS: per(OURS, f"{cmd} {bl}"),
                      **{r: per(r, f"{cmd} {bl}") for r in REFS}}))
    rows.append((f"first ADD after the reference wrote, {bl}",
                 {OURS: cold["ADD"][OURS], **{r: per(r, f"ADD {bl}") for r in REFS}}))
    text = rows_table(f"host-local-50k: {big:,} existing allocations", rows,
                      f"Stores pre-filled in the reference's format, /16; ADD then DEL "
                      f"of one container per round, {rounds} rounds, alternating. "
                      f"'first ADD after the reference wrote': the reference ADDs and "
                      f"DELs in our store, then ours ADDs (its index must notice the "
                      f"outside writer); the steady-state rows run after that call.")
    big_add = med(per(OURS, f"ADD {bl}")["wall"])
    small_add = med(per(OURS, f"ADD {sl}")["wall"])
    cold_add = med(cold["ADD"][OURS]["wall"])
    text += (f"\n\nOurs at {small:,} allocations: ADD {small_add:.1f} ms, DEL "
             f"{med(per(OURS, f'DEL {sl}')['wall']):.1f} ms; ADD at {big:,} ÷ ADD at "
             f"{small:,} = {big_add / small_add:.2f}, first-after-reference ÷ ADD at "
             f"{small:,} = {cold_add / small_add:.2f}.")
    return text


# ------------------------------------------------------------------ version

def case_version(world: World, impls: dict, rounds: int) -> str:
    """VERSION (no stdin, as bench.py's version case) of every plugin pycni
    installs, each implementation that has it, alternating; plus the floor,
    this Python's `-I -S -c pass`, measured in the same rounds."""
    ours = impls[OURS]
    plugins = sorted(p for p in os.listdir(ours) if not p.startswith(".")
                     and os.path.isfile(os.path.join(ours, p))
                     and os.access(os.path.join(ours, p), os.X_OK))
    store: dict = {}
    floor: dict = {}
    names = list(impls)
    for i in range(-3, rounds):             # 3 uncounted warm-up rounds
        for name in refs.alternate(i, names):
            for plugin in plugins:
                binary = os.path.join(impls[name], plugin)
                if not os.access(binary, os.X_OK):
                    continue
                run = spawn([binary], {"PATH": TOOL_PATH, "CNI_COMMAND": "VERSION",
                                       "CNI_PATH": impls[name],
                                       "PYCNI_STATE_DIRS": world.scratch})
                if run.rc != 0 or b"supportedVersions" not in run.out:
                    raise RuntimeError(f"{binary} VERSION failed ({run.rc}): "
                                       f"{run.out.decode()} {run.err.decode()}")
                if i >= 0:
                    record(store, f"{plugin} VERSION", name, run)
            if name == OURS:
                run = spawn([sys.executable, "-I", "-S", "-c", "pass"], {"PATH": TOOL_PATH})
                if i >= 0:
                    record(floor, "floor", OURS, run)
    rows = list(store.items())
    common = [per for per in store.values() if all(n in per for n in names)]
    rows.append((f"the {len(common)} plugins all have (median of every call)",
                 {n: {m: [v for per in common for v in per[n][m]]
                      for m in ("wall", "cpu", "rss")} for n in names}))
    over_text = []
    for metric, what in (("wall", "wall"), ("cpu", "CPU")):
        base = med(floor["floor"][OURS][metric])
        over = {label.split()[0]: med(per[OURS][metric]) - base
                for label, per in store.items()}
        worst = max(over, key=over.get)
        over_text.append(f"{what} median {med(list(over.values())):.1f} ms, most "
                         f"{over[worst]:.1f} ms ({worst})")
    text = rows_table("version: VERSION of every plugin", rows,
                      f"`CNI_COMMAND=VERSION`, no stdin, every plugin `pycni install` "
                      f"writes ({len(plugins)}), each implementation that has it "
                      f"(\"-\": the reference ships no such plugin); {rounds} rounds after "
                      f"3 warm-ups, alternating.")
    text += (f"\n\nFloor `{sys.executable} -I -S -c pass`: "
             f"{med(floor['floor'][OURS]['wall']):.1f} ms "
             f"(CPU {med(floor['floor'][OURS]['cpu']):.1f} ms, RSS "
             f"{med(floor['floor'][OURS]['rss']):.1f} MiB); pycni VERSION over the floor: "
             + "; ".join(over_text) + ".")
    return text


# ------------------------------------------------------------- entry points

CASE_NAMES = ("lifecycle", "parallel", "portmap-500", "host-local-50k", "version")


def machine_info(impls: dict) -> str:
    return "\n".join([
        *refs.machine_lines(stamp=True),
        *(f"- {k} = {v}" + (f" ({refs.describe(v)})" if k != OURS else "")
          for k, v in impls.items())])


def inner(args) -> int:
    containers = json.loads(args.inner)
    cases = args.case or list(CASE_NAMES)
    work = tempfile.mkdtemp(prefix="pycni-p4b-")
    try:
        global TOOL_PATH
        TOOL_PATH = tool_path(work)
        global RUSAGE_EXEC
        RUSAGE_EXEC = build_rusage_exec(work)
        global REFS, REF
        references = refs.parse(args.ref)
        REFS, REF = list(references), next(iter(references))
        impls = {OURS: args.ours or install_ours(work), **references}
        world = World(containers, os.path.join(work, "scratch"))
        os.makedirs(world.scratch)
        quick = args.quick
        print(f"## pycni vs {', '.join(REFS)} at scale ({'quick' if quick else 'full'})\n")
        print(machine_info(impls) + "\n", flush=True)
        golibcni = None
        if {"lifecycle", "parallel"} & set(cases):
            golibcni = build_golibcni(work)
        ip("link", "set", "lo", "up")
        for case in cases:
            t0 = time.perf_counter()
            if case == "lifecycle":
                text = case_lifecycle(world, impls, golibcni, 5 if quick else 30)
            elif case == "parallel":
                text = case_parallel(world, impls, golibcni, 1 if quick else 3)
            elif case == "portmap-500":
                text = case_portmap(world, impls, 5 if quick else 20, 500)
            elif case == "host-local-50k":
                text = case_host_local(world, impls, 5 if quick else 20, 50_000, 10)
            elif case == "version":
                text = case_version(world, impls, 10 if quick else 30)
            else:
                raise SystemExit(f"unknown case {case}")
            print(text + f"\n\n({case}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
        print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def outer(args) -> int:
    if os.geteuid() != 0 or not shutil.which("ip"):
        sys.exit("scale.py: needs root and iproute2 (it creates network namespaces)")
    refs.parse(args.ref)                    # fails before any namespace exists
    cases = args.case or list(CASE_NAMES)
    inner_args = []
    for c in cases:
        inner_args += ["--case", c]
    if args.quick:
        inner_args.append("--quick")
    if args.ours:
        if not os.access(os.path.join(args.ours, "loopback"), os.X_OK):
            sys.exit(f"scale.py: --ours {args.ours}: no pycni plugins there")
        inner_args += ["--ours", os.path.abspath(args.ours)]
    return refs.run_in_namespaces(__file__, f"pycni-p4b-{os.getpid()}", [],
                                  PARALLEL if "parallel" in cases else 1, inner_args,
                                  args.ref, ctr="c")


def add_arguments(parser) -> None:
    parser.add_argument("--case", action="append", choices=CASE_NAMES)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--ours", metavar="DIR",
                        help="measure the pycni plugins in DIR (e.g. the portable bundle, "
                             "dist/cni-bin) instead of a `pycni install` of this Python's pycni")


def main() -> int:
    return refs.main(__doc__, inner, outer, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
