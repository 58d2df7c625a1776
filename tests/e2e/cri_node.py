"""Two Kubernetes nodes on one machine, each a network namespace with its
own containerd, joined by an underlay (tests/e2e/test_two_nodes.py).

    underlay netns   bridge ul0, 198.18.0.1/24 (the nodes' LAN and router)
       |   veth      (198.18.0.0/15 is the benchmarking range: no real net)
    node netns A     eth0 198.18.0.11/24, podCIDR 10.244.1.0/24
    node netns B     eth0 198.18.0.12/24, podCIDR 10.244.2.0/24

Each node routes the other's podCIDR via the other's eth0 address (what
kubenet with cloud routes or flannel's host-gw program). Namespace names
start with `kn<pid>-`: `kn<pid>-<label>-underlay`, `...-node-a`, `...-node-b`.

A node's containerd is started with `ip netns exec NODE unshare --pid
--fork --kill-child --mount-proc sh node-init.sh`:

  - `ip netns exec` gives it the node's network namespace and a mount
    namespace of its own with a fresh /sys for that network namespace.
    That fresh /sys has no cgroup hierarchies (the reason the podman
    harness uses `nsenter --net` instead): node-init.sh mounts the
    machine's hierarchies again under /sys/fs/cgroup, as a booting node
    does, so that runc finds them.
  - the new PID namespace has containerd as its init: when containerd dies
    (or the `unshare` above it is killed), the kernel kills every shim,
    pause and container process of the node with it.
  - node-init.sh mounts tmpfs over /run and /var/lib, as a node has its
    own: containerd's hard-coded shim socket directory (/run/containerd/s),
    the pods' netns mounts (/run/netns/cni-*), libcni's cache and
    host-local's store (/var/lib/cni) live there and vanish with the node.
    The test reads them with `nsenter -t PID -m` (`Node.in_node`).

Everything else is in the node's work directory: containerd's root, state,
socket and config, the conflist directory; cgroups go under a parent of the
node's own (`/kn<pid>-<node>`), removed when the node is closed.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from netns_world import create_namespace, delete_namespace, sh

import cri_image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, "deploy", "containerd", "10-pycni.conflist.tmpl")
TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "unshare", "nsenter",
         "iptables-save")
CONFLIST = "10-containerd-net.conflist"      # the file containerd renders the template to
NETWORK = "pycni"                            # the template's network name
CLUSTER_CIDR = "10.244.0.0/16"
UNDERLAY_GW = "198.18.0.1"
NODE_PREFIX = "198.18.0.0/24"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CONFIG_TOML = """\
version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {socket}
[ttrpc]
  address = {ttrpc}
[debug]
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {pause}
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc_root}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {bin_dir}
    conf_dir = {conf_dir}
    conf_template = {template}
    max_conf_num = 1
"""


def missing_tools() -> list[str]:
    import podman_harness
    missing = [t for t in TOOLS if not shutil.which(t)]
    if not os.path.isfile(cri_image.BUSYBOX) or not podman_harness.is_static_elf(cri_image.BUSYBOX):
        missing.append(f"a static {cri_image.BUSYBOX} (busybox-static)")
    return missing


def quote(value) -> str:
    return json.dumps(str(value))   # TOML basic strings accept JSON escapes


def cgroup_mounts() -> list[tuple[str, str, str]]:
    """The machine's cgroup hierarchies under /sys/fs/cgroup, as this
    process sees them: (mount point, fstype, mount options)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            point = pre.split()[4]
            fstype, _source, options = post.split()[:3]
            if fstype in ("cgroup", "cgroup2") and point.startswith("/sys/fs/cgroup/"):
                opts = [o for o in options.split(",") if o not in ("rw", "ro")]
                found.append((point, fstype, ",".join(opts)))
    if not found and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        found.append(("/sys/fs/cgroup", "cgroup2", ""))      # a unified-only machine
    return found


def node_init_script(config: str, log: str) -> str:
    """The shell that turns a fresh mount namespace into a node's, then
    becomes containerd (see the module docstring)."""
    lines = ["set -e",
             "mount -t tmpfs -o mode=0755 kn-run /run",
             "mkdir -p /run/netns /run/lock",
             "mount -t tmpfs -o mode=0755 kn-varlib /var/lib"]
    mounts = cgroup_mounts()
    if mounts and mounts[0][0] != "/sys/fs/cgroup":
        lines.append("mount -t tmpfs -o mode=0755 kn-cgroup /sys/fs/cgroup")
    for point, fstype, opts in mounts:
        lines.append(f"mkdir -p {point}")
        opt = f"-o {opts} " if opts else ""
        lines.append(f"mount -t {fstype} {opt}kn-{fstype} {point}")
    lines.append(f"exec containerd --config {config} >>{log} 2>&1")
    return "\n".join(lines) + "\n"


@dataclass
class Node:
    name: str                 # "a", "b"
    netns: str                # the node's network namespace
    address: str              # eth0's address on the underlay
    pod_cidr: str
    workdir: str
    bin_dir: str
    proc: subprocess.Popen | None = None
    cri: object = None        # cri_client.CriClient
    pods: list = field(default_factory=list)

    def __post_init__(self):
        w = self.workdir
        self.root, self.state = f"{w}/root", f"{w}/state"
        self.socket, self.conf_dir = f"{w}/containerd.sock", f"{w}/net.d"
        self.log, self.pod_logs = f"{w}/containerd.log", f"{w}/pods"
        self.cgroup_parent = f"/{os.path.basename(self.netns)}"
        for d in (self.conf_dir, self.pod_logs):
            os.makedirs(d, exist_ok=True)

    # -------------------------------------------------------------- life

    def write_config(self) -> str:
        path = f"{self.workdir}/config.toml"
        w = self.workdir
        with open(path, "w") as f:
            f.write(CONFIG_TOML.format(
                root=quote(self.root), state=quote(self.state), socket=quote(self.socket),
                ttrpc=quote(self.socket + ".ttrpc"), opt=quote(f"{w}/opt"),
                pause=quote(cri_image.PAUSE_IMAGE), runc_root=quote(f"{w}/runc"),
                bin_dir=quote(self.bin_dir), conf_dir=quote(self.conf_dir),
                template=quote(TEMPLATE)))
        return path

    def start(self, gen_dir: str, archive: str) -> None:
        import cri_client
        script = f"{self.workdir}/node-init.sh"
        with open(script, "w") as f:
            f.write(node_init_script(self.write_config(), self.log))
        env = {"PATH": PATH, "HOME": self.workdir, "TMPDIR": self.workdir}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--pid", "--fork", "--kill-child",
             "--mount-proc", "/bin/sh", script],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(f"{self.workdir}/node-init.err", "wb"), start_new_session=True)
        self.cri = cri_client.CriClient(self.socket, gen_dir)
        try:
            self.cri.wait_ready(timeout=60)
        except RuntimeError:
            raise RuntimeError(f"node {self.name}: containerd did not come up\n{self.logs()}")
        self.ctr("images", "import", "--snapshotter", "native", "--all-platforms", archive)
        for ref in (cri_image.IMAGE, cri_image.PAUSE_IMAGE):
            deadline = time.monotonic() + 20
            while not self.cri.has_image(ref):
                if time.monotonic() > deadline:
                    raise AssertionError(f"node {self.name}: CRI does not see {ref}")
                time.sleep(0.2)

    def logs(self) -> str:
        text = ""
        for path in (f"{self.workdir}/node-init.err", self.log):
            try:
                with open(path, errors="replace") as f:
                    text += f"--- {os.path.basename(path)}\n" + f.read()[-6000:]
            except OSError:
                pass
        return text

    def ctr(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "--address", self.socket, "--namespace", "k8s.io", *args],
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": PATH, "TMPDIR": self.workdir})
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
        return proc

    def containerd_pid(self) -> int | None:
        """containerd's PID in the machine's PID namespace (the child of
        the `unshare` we started)."""
        if not self.proc or self.proc.poll() is not None:
            return None
        try:
            children = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def in_node(self, *argv, check: bool = True) -> subprocess.CompletedProcess:
        """A command in the node's network and mount namespaces (where its
        /run and /var/lib are)."""
        pid = self.containerd_pid()
        if pid is None:
            raise RuntimeError(f"node {self.name}: containerd is not running")
        proc = subprocess.run(["nsenter", "-t", str(pid), "-m", "-n", *argv],
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} on node {self.name}: {proc.stderr}")
        return proc

    def run(self, *argv, check: bool = True) -> subprocess.CompletedProcess:
        """A command in the node's network namespace only."""
        return sh(*argv, netns=self.netns, check=check)

    def close(self) -> list[str]:
        problems = []
        if self.cri is not None:
            self.cri.close()
        if self.proc is not None:
            # containerd first (the init of the node's PID namespace: the
            # kernel kills its shims and pods with it), reaped by `unshare`,
            # which then exits; `unshare` itself only if it does not.
            pid = self.containerd_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    problems.append(f"node {self.name}: unshare did not exit")
        problems += remove_cgroups(self.cgroup_parent)
        return problems

    # ------------------------------------------------------------ state

    def conflist(self) -> dict | None:
        try:
            with open(os.path.join(self.conf_dir, CONFLIST)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def allocations(self) -> list[str]:
        """host-local's allocation files in the node's store."""
        out = self.in_node("sh", "-c", f"ls -A /var/lib/cni/networks/{NETWORK} 2>/dev/null || true")
        return [n for n in out.stdout.split() if n != "lock" and not n.startswith("last_reserved_ip")]

    def cached_results(self) -> list[str]:
        out = self.in_node("sh", "-c", "ls -A /var/lib/cni/results 2>/dev/null || true")
        return out.stdout.split()

    def pod_netns(self) -> list[str]:
        out = self.in_node("sh", "-c", "ls -A /run/netns 2>/dev/null || true")
        return out.stdout.split()

    def veths(self) -> list[str]:
        links = json.loads(self.run("ip", "-j", "-d", "link", "show").stdout or b"[]")
        return [l["ifname"] for l in links
                if l.get("linkinfo", {}).get("info_kind") == "veth" and l["ifname"] != "eth0"]

    def firewall(self) -> str:
        text = self.run("iptables-save").stdout.decode()
        nft = self.run("nft", "list", "ruleset", check=False)
        if nft.returncode == 0:
            text += nft.stdout.decode()
        return text


def remove_cgroups(parent: str) -> list[str]:
    """rmdir the cgroup tree `parent` in every hierarchy, deepest first,
    after killing whatever is still in it."""
    problems = []
    for point, _fstype, _opts in cgroup_mounts():
        top = point + parent
        if not os.path.isdir(top):
            continue
        for _ in range(50):
            alive = _cgroup_pids(top)
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
            for _ in range(20):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                problems.append(f"cgroup {dirpath} not removed")
    return problems


def _cgroup_pids(top: str) -> list[int]:
    pids = []
    for dirpath, _dirs, files in os.walk(top):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids += [int(p) for p in f.read().split()]
            except OSError:
                pass
    return pids


class Cluster:
    """The underlay, two nodes with routes to each other's podCIDR, and a
    containerd on each (started by `start()`). `close()` undoes all."""

    def __init__(self, workdir: str, bin_dir: str, label: str = "c",
                 nodes: tuple[str, ...] = ("a", "b")):
        self.workdir, self.bin_dir, self.labels = workdir, bin_dir, nodes
        self.prefix = f"kn{os.getpid()}-{label}-"
        self.namespaces: list[str] = []
        self.nodes: list[Node] = []

    def namespace(self, label: str) -> str:
        name = self.prefix + label
        create_namespace(name)
        self.namespaces.append(name)
        return name

    def build(self) -> None:
        ul = self.namespace("underlay")
        sh("ip", "link", "add", "ul0", "type", "bridge", netns=ul)
        sh("ip", "addr", "add", f"{UNDERLAY_GW}/24", "dev", "ul0", netns=ul)
        sh("ip", "link", "set", "ul0", "up", netns=ul)
        for i, label in enumerate(self.labels):
            netns = self.namespace(f"node-{label}")
            address = f"198.18.0.{11 + i}"
            peer = f"ul-{label}"
            sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", peer, netns=netns)
            sh("ip", "link", "set", peer, "netns", ul, netns=netns)
            sh("ip", "link", "set", peer, "master", "ul0", "up", netns=ul)
            sh("ip", "addr", "add", f"{address}/24", "dev", "eth0", netns=netns)
            sh("ip", "link", "set", "eth0", "up", netns=netns)
            sh("ip", "route", "add", "default", "via", UNDERLAY_GW, netns=netns)
            sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", netns=netns)
            workdir = os.path.join(self.workdir, label)
            os.makedirs(workdir, exist_ok=True)
            self.nodes.append(Node(label, netns, address, f"10.244.{1 + i}.0/24",
                                   workdir, self.bin_dir))
        # host-gw: each node reaches the others' pods through the other node
        for node in self.nodes:
            for other in self.nodes:
                if other is not node:
                    node.run("ip", "route", "add", other.pod_cidr, "via", other.address)

    @property
    def underlay(self) -> str:
        return self.namespaces[0]

    def start(self, gen_dir: str, archive: str) -> None:
        for node in self.nodes:
            node.start(gen_dir, archive)

    def close(self) -> list[str]:
        problems = []
        for node in self.nodes:
            problems += node.close()
        for name in reversed(self.namespaces):
            error = delete_namespace(name)
            if error:
                problems.append(f"netns {name}: {error}")
        self.namespaces.clear()
        return problems


def leftover_namespaces(prefix: str | None = None) -> list[str]:
    """Namespaces of this process's clusters (or of the cluster with
    `prefix`) still present."""
    prefix = prefix or f"kn{os.getpid()}-"
    out = sh("ip", "netns", "list").stdout.decode()
    return [l.split()[0] for l in out.splitlines() if l.startswith(prefix)]
