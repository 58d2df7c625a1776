#!/usr/bin/env python3
"""Start-up and per-call cost of pycni plugins against the reference Go plugins.

    sudo python3 bench/bench.py            # 50 iterations per case
    sudo python3 bench/bench.py -n 200 --case version
    sudo python3 bench/bench.py --ref ref-v1.9=/path/to/bin   # only this reference

Implementations compared, each a CNI_PATH directory:
  pycni          launchers written by `pycni install --dir` (this Python)
  pycni-frozen   the standalone bundle in dist/cni-bin (./build.sh), if built
  --impl N=DIR   any other directory (another build of ours)
  references     --ref NAME=DIR (repeatable); by default ref-v1.1 = Debian's
                 containernetworking-plugins in /usr/lib/cni and ref-v1.9 =
                 /var/cache/pycni-bench/ref-v1.9/bin when
                 bench/build-reference.sh has built it (bench/refs.py)

The tables give every implementation's median ÷ each reference's median.

Runs alternate between implementations (A B C, B C A, ...) so that load
changes on the machine hit all of them alike; a few warm-up runs are not
counted. Prints medians, p90 and the ratio to the reference as markdown,
followed by the Python import profile of the loopback ADD path.

Nothing touches the machine's own network namespace: the script creates a
"host" namespace and the container namespaces it needs (unique names),
re-executes itself inside the host namespace (`ip netns exec`, once, so the
per-call timings do not include it) and removes every namespace it created
in a `finally`.

A case is a small object (see CASES): a name, the plugin, and the steps of
one iteration, each a CNI command with its config. Adding host-local or
bridge means appending a case.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import refs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FROZEN_DIR = os.path.join(ROOT, "dist", "cni-bin")
REFERENCES: list[str] = []     # reference names, set by implementations()
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
WARMUP = 3


# ------------------------------------------------------------------ cases

@dataclass
class Step:
    """One plugin exec: CNI command plus config (a dict or a function of
    the context, for configs that depend on paths or namespaces)."""
    command: str
    config: dict | Callable[["Context"], dict] | None = None
    ifname: str = "eth0"
    plugin: str = ""             # another plugin than the case's (a chain's first)


@dataclass
class Case:
    name: str
    plugin: str
    steps: list[Step]
    containers: int = 0          # container namespaces the case needs
    # `ip` argument lists run in the host namespace before measuring
    # (e.g. a veth to serve as macvlan master)
    host_setup: list[list[str]] | None = None

    def label(self, step: Step) -> str:
        return f"{step.plugin or self.plugin} {step.command}"


@dataclass
class Context:
    """What a step may refer to: container namespace paths, a scratch dir,
    and the result of the previous ADD (for CHECK/DEL prevResult)."""
    containers: list[str]
    scratch: str
    last_result: dict | None = None


def loopback_conf(ctx: Context) -> dict:
    return {"cniVersion": "1.0.0", "name": "bench-lo", "type": "loopback"}


def host_local(ctx: Context, subnet: str) -> dict:
    return {"type": "host-local", "subnet": subnet,
            "dataDir": os.path.join(ctx.scratch, "ipam")}


def bridge_conf(ctx: Context) -> dict:
    return {"cniVersion": "1.0.0", "name": "bench-br", "type": "bridge",
            "bridge": "benchbr0", "isGateway": True,
            "ipam": host_local(ctx, "10.123.0.0/24")}


def ptp_conf(ctx: Context) -> dict:
    return {"cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp",
            "ipam": host_local(ctx, "10.126.0.0/24")}


def macvlan_conf(ctx: Context) -> dict:
    return {"cniVersion": "1.0.0", "name": "bench-mv", "type": "macvlan",
            "master": "benchm0", "ipam": host_local(ctx, "10.124.0.0/24")}


def portmap_conf(ctx: Context) -> dict:
    """portmap after a (simulated) bridge: the container address sits behind
    the host-side veth `benchpm0` that the case's host_setup creates."""
    return {"cniVersion": "1.0.0", "name": "bench-pm", "type": "portmap",
            "runtimeConfig": {"portMappings": [
                {"hostPort": 18081, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 18082, "containerPort": 53, "protocol": "udp"}]},
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "sandbox": ctx.containers[0]}],
                           "ips": [{"address": "10.125.0.2/24", "interface": 0}]}}


def static_conf(ctx: Context) -> dict:
    """static called directly as an IPAM plugin (as a main plugin would):
    dual-stack addresses, a route and DNS; it touches nothing."""
    return {"cniVersion": "1.0.0", "name": "bench-st",
            "ipam": {"type": "static",
                     "addresses": [{"address": "10.126.0.2/24", "gateway": "10.126.0.1"},
                                   {"address": "fd00:126::2/64"}],
                     "routes": [{"dst": "0.0.0.0/0"}],
                     "dns": {"nameservers": ["10.126.0.1"]}}}


def sbr_conf(ctx: Context) -> dict:
    return {"cniVersion": "1.0.0", "name": "bench-mv", "type": "sbr"}


def tap_conf(ctx: Context) -> dict:
    """A tap in the container (the reference's `ip tuntap` path) with
    host-local addresses on it."""
    return {"cniVersion": "1.0.0", "name": "bench-tap", "type": "tap",
            "ipam": host_local(ctx, "10.128.0.0/24")}


def host_device_conf(ctx: Context) -> dict:
    """host-device moving the host veth end `benchhd0` in, host-local
    addresses; its state in the scratch directory (pycni's dataDir)."""
    return {"cniVersion": "1.0.0", "name": "bench-hd", "type": "host-device",
            "device": "benchhd0", "dataDir": os.path.join(ctx.scratch, "host-device"),
            "ipam": host_local(ctx, "10.129.0.0/24")}


def with_prev(conf_fn):
    """The same config plus the previous ADD's result as prevResult."""
    return lambda ctx: {**conf_fn(ctx), "prevResult": ctx.last_result}


CASES = [
    Case("version", "loopback", [Step("VERSION")]),
    Case("loopback-add-del", "loopback",
         [Step("ADD", loopback_conf, ifname="lo"), Step("DEL", loopback_conf, ifname="lo")],
         containers=1),
    Case("bridge-add-check-del", "bridge",
         [Step("ADD", bridge_conf), Step("CHECK", with_prev(bridge_conf)),
          Step("DEL", with_prev(bridge_conf))], containers=1),
    Case("ptp-add-check-del", "ptp",
         [Step("ADD", ptp_conf), Step("CHECK", with_prev(ptp_conf)),
          Step("DEL", with_prev(ptp_conf))], containers=1),
    Case("macvlan-add-del", "macvlan",
         [Step("ADD", macvlan_conf), Step("DEL", with_prev(macvlan_conf))], containers=1,
         host_setup=[["link", "add", "benchm0", "type", "veth", "peer", "name", "benchm1"],
                     ["link", "set", "benchm0", "up"], ["link", "set", "benchm1", "up"]]),
    Case("macvlan-sbr-add-del", "sbr",
         [Step("ADD", macvlan_conf, plugin="macvlan"), Step("ADD", with_prev(sbr_conf)),
          Step("DEL", with_prev(sbr_conf)),
          Step("DEL", with_prev(macvlan_conf), plugin="macvlan")],
         containers=1,
         host_setup=[["link", "add", "benchm0", "type", "veth", "peer", "name", "benchm1"],
                     ["link", "set", "benchm0", "up"], ["link", "set", "benchm1", "up"]]),
    Case("static-add-del", "static",
         [Step("ADD", static_conf), Step("DEL", static_conf)], containers=1),
    Case("tap-add-del", "tap",
         [Step("ADD", tap_conf), Step("DEL", with_prev(tap_conf))], containers=1),
    Case("host-device-add-del", "host-device",
         [Step("ADD", host_device_conf), Step("DEL", with_prev(host_device_conf))],
         containers=1,
         host_setup=[["link", "add", "benchhd0", "type", "veth", "peer", "name", "benchhd1"],
                     ["link", "set", "benchhd0", "up"], ["link", "set", "benchhd1", "up"]]),
    Case("portmap-add-del", "portmap",
         [Step("ADD", portmap_conf), Step("DEL", portmap_conf)], containers=1,
         host_setup=[["link", "add", "benchpm0", "type", "veth", "peer", "name", "benchpm1"],
                     ["addr", "add", "10.125.0.1/24", "dev", "benchpm0"],
                     ["link", "set", "benchpm0", "up"], ["link", "set", "benchpm1", "up"]]),
]


# ------------------------------------------------------------ measuring

def implementations(frozen: bool = True, extra: list[str] = (),
                    references: list[str] = ()) -> dict[str, str]:
    """pycni, pycni-frozen, the --impl directories, then the references
    (refs.parse: --ref specs or the defaults)."""
    impls = {}
    reference_dirs = refs.parse(references)
    ours = tempfile.mkdtemp(prefix="pycni-bench-bin-")
    subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", ours],
                   check=True, capture_output=True)
    impls["pycni"] = ours
    if frozen and os.path.isfile(os.path.join(FROZEN_DIR, "loopback")):
        impls["pycni-frozen"] = FROZEN_DIR
    for spec in extra:              # NAME=DIR, e.g. another bundle shape
        name, _, directory = spec.partition("=")
        impls[name] = os.path.abspath(directory)
    REFERENCES[:] = reference_dirs
    impls.update(reference_dirs)
    return impls


def step_env(step: Step, cni_path: str, ctx: Context) -> dict:
    # PYCNI_STATE_DIRS: pycni keeps a dataDir below an allowed state root
    # (the bench's scratch directory here); the reference ignores it
    env = {"PATH": BARE_PATH, "CNI_COMMAND": step.command, "CNI_PATH": cni_path,
           "PYCNI_STATE_DIRS": ctx.scratch}
    if step.command != "VERSION":
        env.update(CNI_CONTAINERID="bench-ctr", CNI_IFNAME=step.ifname, CNI_ARGS="",
                   CNI_NETNS=ctx.containers[0] if ctx.containers else "")
    return env


def run_step(binary: str, step: Step, cni_path: str, ctx: Context) -> float:
    """Exec one plugin call; its wall time in ms. Fails loudly on error."""
    conf = step.config(ctx) if callable(step.config) else step.config
    stdin = json.dumps(conf).encode() if conf is not None else b""
    out, elapsed = refs.timed_call(binary, step_env(step, cni_path, ctx), stdin)
    if step.command == "ADD":
        ctx.last_result = json.loads(out)
    return elapsed


def measure(case: Case, impls: dict[str, str], ctx: Context, n: int) -> dict:
    """{impl: {step label: [ms, ...], "total": [ms, ...]}}; implementations
    without the case's plugin are left out."""
    names = [name for name, cni_path in impls.items()
             if os.access(os.path.join(cni_path, case.plugin), os.X_OK)]
    times = {name: {} for name in names}
    if not names:
        return times
    for i in range(-WARMUP, n):
        for name in refs.alternate(i, names):
            cni_path = impls[name]
            total = 0.0
            for step in case.steps:
                binary = os.path.join(cni_path, step.plugin or case.plugin)
                ms = run_step(binary, step, cni_path, ctx)
                total += ms
                if i >= 0:
                    times[name].setdefault(case.label(step), []).append(ms)
            if i >= 0 and len(case.steps) > 1:
                times[name].setdefault("total", []).append(total)
    return times


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def table(case: Case, times: dict) -> str:
    ratio_heads = "".join(f" × {refs.short(r)} |" for r in REFERENCES)
    lines = [f"### {case.name}", "",
             "| step | implementation | median ms | p90 ms |" + ratio_heads,
             "|---|---|---:|---:|" + "---:|" * len(REFERENCES)]
    if not times:
        return "\n".join(lines[:2] + [f"(no implementation has `{case.plugin}`)"])
    labels = list(next(iter(times.values())))
    for label in labels:
        ref_medians = [statistics.median(times[r][label]) if r in times else None
                       for r in REFERENCES]
        for name, per_label in times.items():
            values = per_label[label]
            median = statistics.median(values)
            ratios = "".join(f" {median / rm:.2f} |" if rm else " - |" for rm in ref_medians)
            lines.append(f"| {label} | {name} | {median:.1f} | {p90(values):.1f} |" + ratios)
    return "\n".join(lines)


# ------------------------------------------------------- import profile

def import_profile(ctx: Context, runs: int = 5, top: int = 12) -> str:
    """`python -X importtime` of loopback ADD, run as the launcher runs it
    (-I -S, pycni's import path first); per-module medians over `runs`."""
    from pycni.launcher import import_paths
    code = ("import sys; sys.path[:0] = %r; "
            "from pycni.plugins.loopback.plugin import main; main()" % import_paths())
    conf = json.dumps(loopback_conf(ctx)).encode()
    env = step_env(Step("ADD", ifname="lo"), "/nonexistent", ctx)
    samples: dict[str, list] = {}
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", code],
                              input=conf, env=env, capture_output=True)
        subprocess.run([sys.executable, "-I", "-S", "-c", code], input=conf,
                       env={**env, "CNI_COMMAND": "DEL"}, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"import profile run failed: {proc.stdout} {proc.stderr}")
        for line in proc.stderr.decode().splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            _, self_us, cumulative, name = line.replace("import time:", "|", 1).split("|")
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            samples.setdefault(name.strip(), []).append((int(self_us), int(cumulative), depth))
    rows = [(name, statistics.median(v[0] for v in vals) / 1000,
             statistics.median(v[1] for v in vals) / 1000, vals[0][2])
            for name, vals in samples.items()]
    top_level = [r for r in rows if r[3] == 0]
    lines = ["### import time, loopback ADD (`python -X importtime -I -S`)", "",
             f"{len(rows)} modules, {sum(r[2] for r in top_level):.1f} ms in imports "
             f"(median of {runs} runs; importtime itself adds overhead).", "",
             "| top-level import | self ms | cumulative ms |", "|---|---:|---:|"]
    for name, self_ms, cumulative, _ in sorted(top_level, key=lambda r: -r[2])[:top]:
        lines.append(f"| {name} | {self_ms:.1f} | {cumulative:.1f} |")
    lines += ["", "| any module, by cumulative time | self ms | cumulative ms |", "|---|---:|---:|"]
    for name, self_ms, cumulative, _ in sorted(rows, key=lambda r: -r[2])[:top]:
        lines.append(f"| {name} | {self_ms:.1f} | {cumulative:.1f} |")
    return "\n".join(lines)


def machine_info(impls: dict[str, str]) -> str:
    lines = [*refs.machine_lines(),
             "- implementations: " + ", ".join(f"{k} = {v}" for k, v in impls.items())]
    lines += [f"- {r}: {refs.describe(impls[r])}" for r in REFERENCES]
    if impls.get("pycni-frozen") == FROZEN_DIR:
        built = time.gmtime(os.path.getmtime(FROZEN_DIR))
        lines.append(f"- dist/cni-bin built {time.strftime('%Y-%m-%d %H:%M', built)} UTC")
    return "\n".join(lines)


# ------------------------------------------------------------ namespaces

def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def outer(args) -> int:
    """Create the namespaces, run the measurements inside, always clean up."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        sys.exit("bench.py: needs root and iproute2 (it creates network namespaces)")
    refs.parse(args.ref)                    # fails before any namespace exists
    cases = [c for c in CASES if not args.case or c.name in args.case]
    host_setup = [["link", "set", "lo", "up"]]
    for case in cases:
        host_setup += case.host_setup or []
    inner_args = ["-n", str(args.n)]
    for c in args.case or []:
        inner_args += ["--case", c]
    if args.no_frozen:
        inner_args.append("--no-frozen")
    for spec in args.impl or []:
        inner_args += ["--impl", spec]
    return refs.run_in_namespaces(__file__, f"pycni-bench-{os.getpid()}", host_setup,
                                  max((c.containers for c in cases), default=0),
                                  inner_args, args.ref)


def inner(args) -> int:
    containers = json.loads(args.inner)
    cases = [c for c in CASES if not args.case or c.name in args.case]
    impls = implementations(frozen=not args.no_frozen, extra=args.impl or [],
                            references=args.ref or [])
    scratch = tempfile.mkdtemp(prefix="pycni-bench-")
    ctx = Context(containers=containers, scratch=scratch)
    try:
        print(f"## pycni vs reference plugins, {args.n} iterations per case\n")
        print(machine_info(impls) + "\n")
        for case in cases:
            print(table(case, measure(case, impls, ctx, args.n)) + "\n", flush=True)
        if containers:
            print(import_profile(ctx) + "\n")
        print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(impls["pycni"], ignore_errors=True)
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("-n", type=int, default=50, help="iterations per case (default 50)")
    parser.add_argument("--case", action="append",
                        help=f"only these cases ({', '.join(c.name for c in CASES)})")
    parser.add_argument("--no-frozen", action="store_true", help="skip dist/cni-bin")
    parser.add_argument("--impl", action="append", metavar="NAME=DIR",
                        help="also time the plugins in DIR (e.g. another build)")


def main() -> int:
    return refs.main(__doc__, inner, outer, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
