"""Debian's podman as a test client of our plugins, inside a test world.

podman (4.3, CNI backend) runs with `nsenter --net=/run/netns/HOST podman …`
so that everything it and the plugins do to the network (bridges, veths,
iptables rules, 127.0.0.1, the host ports conmon reserves) stays in the
world's "host" namespace. (`ip netns exec` would remount /sys without the
cgroup hierarchy, which runc needs.) Storage, run state, the network
configs and every podman temp file live in one work directory; a
containers.conf there points the CNI backend at a directory holding only
our plugins.

Every podman command also enters one private mount namespace of the
Podman object (`MountNamespace`, held by a small process), so conmon and
the `podman container cleanup` it starts when a container exits live in
it too. That cleanup runs with conmon's environment, not the test's: a
firewall DEL in it asks the default system bus, /run/dbus/system_bus_socket.
In the private namespace /run/dbus is an empty tmpfs (the machine's bus is
never reached), and `Podman.expose_system_bus(socket)` bind-mounts a
test's private bus there. Mounts podman makes (container netns at
/run/netns/netns-<uuid>, shm) stay in that namespace and go with it.

What podman leaves outside the work directory, and `Podman.close()` (or
`cleanup_host_state()`) removes:
  - container network namespaces, /run/netns/netns-<uuid>
  - host-local's store, /var/lib/cni/networks/<net> (podman's generated
    configs set no dataDir), and libcni's cache, /var/lib/cni/results
  - /dev/shm/libpod_lock, /var/lib/containers/cache, /run/runc and the
    cgroupfs parent `libpod_parent`, when this run created them.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass, field

IMAGE = "localhost/pycni-busybox:e2e"
BUSYBOX = "/bin/busybox"
TOOLS = ("podman", "runc", "conmon", "nsenter")
APPLETS = ("sh", "ip", "cat", "sleep", "httpd", "true", "ls")
CNI_STATE = "/var/lib/cni"
NETNS_DIR = "/run/netns"
CGROUP_ROOT = "/sys/fs/cgroup"
SYSTEM_BUS_DIR = "/run/dbus"          # /var/run/dbus: the default system bus
SYSTEM_BUS_SOCKET = f"{SYSTEM_BUS_DIR}/system_bus_socket"
# A client outside the node, routed to the host over a veth (TEST-NET-2:
# these addresses exist only inside the test world).
EXT_HOST4, EXT_PEER4 = "198.51.100.1", "198.51.100.2"
EXT_HOST_LINK, EXT_PEER_LINK = "e2e-ext0", "e2e-ext1"

# Paths outside the work directory podman may create; each is removed at
# the end only if it did not exist before (files) or is empty (dirs).
CREATED_FILES = ("/dev/shm/libpod_lock",
                 "/var/lib/containers/cache/blob-info-cache-v1.boltdb")
CREATED_DIRS = ("/var/lib/containers/cache", "/var/lib/containers", "/run/runc",
                f"{CNI_STATE}/results", f"{CNI_STATE}/networks/.pycni",
                f"{CNI_STATE}/networks", CNI_STATE)

CONTAINERS_CONF = """\
[containers]
# the machine lacks CAP_SYS_RESOURCE: stay under its limits
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "cni"
cni_plugin_dirs = [{plugin_dir}]
network_config_dir = {netconf}
default_subnet = "10.89.0.0/24"

[engine]
# crun refuses this machine's cgroup layout
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = {tmpdir}
volume_path = {volumes}
image_copy_tmp_dir = {scratch}
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = {root}
runroot = {runroot}
"""


def missing_tools() -> list[str]:
    """What podman needs here and is not installed (empty when all is)."""
    missing = [t for t in TOOLS if not shutil.which(t)]
    if not shutil.which("unshare"):
        missing.append("unshare (util-linux)")
    if not os.path.isdir(SYSTEM_BUS_DIR):
        missing.append(f"a {SYSTEM_BUS_DIR} directory (dbus), where podman's mount "
                       "namespace puts its own system bus")
    if not os.path.isfile(BUSYBOX):
        missing.append(f"{BUSYBOX} (busybox-static)")
    elif not is_static_elf(BUSYBOX):
        missing.append(f"a static {BUSYBOX} (busybox-static, not busybox)")
    return missing


def is_static_elf(path: str) -> bool:
    """True for an ELF64 executable without an interpreter (PT_INTERP)."""
    import struct
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def quote(value: str) -> str:
    return json.dumps(str(value))   # TOML basic strings accept JSON escapes


def build_rootfs_tar(target: str, index_html: str) -> str:
    """A busybox image as a tarball: /bin/busybox, applet links, /www."""
    with tarfile.open(target, "w") as tar:
        for d in ("bin", "www", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        page = index_html.encode()
        info = tarfile.TarInfo("www/index.html")
        info.size, info.mode = len(page), 0o644
        import io
        tar.addfile(info, io.BytesIO(page))
    return target


class MountNamespace:
    """A private mount namespace, alive while its holder process is: a
    shell that `unshare --mount --propagation private` started, that
    mounted an empty tmpfs on /run/dbus and now waits for its stdin to
    close (so it also ends when the test process dies). Every mount made
    in it (nothing else is ever mounted here) is gone with the last process
    in it; nothing of it propagates to the machine's mount namespace."""

    SCRIPT = (f"mount -t tmpfs -o mode=0755,size=64k pycni-e2e-dbus {SYSTEM_BUS_DIR} && "
              "echo ready && exec cat >/dev/null")

    def __init__(self):
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", self.SCRIPT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready = self.holder.stdout.readline()
        if ready != b"ready\n":
            err = self.close() or ""
            raise AssertionError(f"private mount namespace not made: {err}")
        self.path = f"/proc/{self.holder.pid}/ns/mnt"
        self.inode = os.stat(self.path).st_ino

    def enter(self) -> list[str]:
        """nsenter options that run a command in this namespace."""
        return [f"--mount={self.path}"]

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(["nsenter", *self.enter(), *argv], capture_output=True,
                              text=True, timeout=30)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in podman's mount namespace: "
                                 f"{proc.stderr.strip()}")
        return proc

    def processes(self) -> list[int]:
        """Every process in this namespace but the holder."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.holder.pid:
                try:
                    if os.stat(f"/proc/{entry}/ns/mnt").st_ino == self.inode:
                        found.append(int(entry))
                except OSError:
                    pass
        return found

    def close(self) -> str | None:
        """Kill what is still in the namespace, then end the holder; the
        namespace and its mounts go with them. Returns a problem, if any."""
        problem = None
        if self.holder.poll() is None and hasattr(self, "inode"):
            # each look kills what it finds, until a look finds nothing
            gone = wait_for(lambda: not kill(self.processes()), timeout=5, interval=0.2)
            if not gone:
                problem = f"processes left in podman's mount namespace: {self.processes()}"
        self.holder.stdin.close()
        try:
            self.holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait()
        err = self.holder.stderr.read().decode(errors="replace").strip()
        self.holder.stdout.close()
        self.holder.stderr.close()
        return problem or (err if self.holder.returncode not in (0, -signal.SIGKILL) else None)


@dataclass
class Podman:
    """podman with its own storage and configs, running in netns `host_path`."""
    host_path: str
    workdir: str
    plugin_dir: str
    timeout: float = 120
    networks: list[str] = field(default_factory=list)

    def __post_init__(self):
        w = self.workdir
        self.root, self.runroot = f"{w}/root", f"{w}/runroot"
        self.tmpdir, self.netconf = f"{w}/libpod-tmp", f"{w}/net.d"
        self.scratch = f"{w}/scratch"
        for d in (self.netconf, self.scratch):
            os.makedirs(d, exist_ok=True)
        conf = f"{w}/containers.conf"
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF.format(
                plugin_dir=quote(self.plugin_dir), netconf=quote(self.netconf),
                tmpdir=quote(self.tmpdir), volumes=quote(f"{self.root}/volumes"),
                scratch=quote(self.scratch)))
        storage = f"{w}/storage.conf"
        with open(storage, "w") as f:
            f.write(STORAGE_CONF.format(root=quote(self.root), runroot=quote(self.runroot)))
        registries = f"{w}/registries.conf"
        with open(registries, "w") as f:
            f.write('unqualified-search-registries = []\n')
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": w,
            "TMPDIR": self.scratch,
            "CONTAINERS_CONF": conf,
            "CONTAINERS_STORAGE_CONF": storage,
            "CONTAINERS_REGISTRIES_CONF": registries,
            # never the machine's bus: an empty firewall backend asks it for
            # firewalld (test_podman_firewalld.py sets a private one)
            "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/pycni-e2e-no-bus",
        }
        self.before = snapshot_host_paths()
        self.mounts = MountNamespace()

    def expose_system_bus(self, socket: str | None) -> None:
        """Make `socket` the default system bus of podman's mount namespace
        (a bind mount on /run/dbus/system_bus_socket there), or with None
        take it away again."""
        if os.path.lexists(f"/proc/{self.mounts.holder.pid}/root{SYSTEM_BUS_SOCKET}"):
            self.mounts.run("umount", SYSTEM_BUS_SOCKET)
            self.mounts.run("rm", "-f", SYSTEM_BUS_SOCKET)
        if socket is not None:
            self.mounts.run("touch", SYSTEM_BUS_SOCKET)
            self.mounts.run("mount", "--bind", socket, SYSTEM_BUS_SOCKET)

    def argv(self, *args) -> list[str]:
        return ["nsenter", *self.mounts.enter(), f"--net={self.host_path}", "podman",
                "--root", self.root, "--runroot", self.runroot, "--tmpdir", self.tmpdir,
                "--network-config-dir", self.netconf, "--storage-driver", "vfs",
                "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *map(str, args)]

    def run(self, *args, check: bool = True, timeout: float | None = None
            ) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True,
                              text=True, timeout=timeout or self.timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} failed "
                                 f"({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def json(self, *args):
        return json.loads(self.run(*args).stdout)

    def import_image(self, tarball: str) -> None:
        self.run("import", "--change", "CMD=/bin/sh", tarball, IMAGE)

    def conflist_path(self, network: str) -> str:
        return os.path.join(self.netconf, f"{network}.conflist")

    def close(self) -> list[str]:
        """Remove every container, network and stored thing, kill what is
        left of them and undo what podman did outside the work directory.
        Returns the problems met (cleanup goes on regardless)."""
        problems = []
        for args in (("rm", "--all", "--force", "--time", "0"),
                     *(("network", "rm", "--force", n) for n in self.networks),
                     ("system", "reset", "--force")):
            try:
                proc = self.run(*args, check=False, timeout=60)
                if proc.returncode != 0:
                    problems.append(f"podman {' '.join(args)}: {proc.stderr.strip()}")
            except subprocess.TimeoutExpired:
                problems.append(f"podman {' '.join(args)} timed out")
        kill_processes_of(self.workdir)
        problem = self.mounts.close()
        if problem:
            problems.append(problem)
        unmount_below(self.workdir)
        for net in self.networks:
            remove_network_state(net)
        cleanup_host_state(self.before)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


# ---------------------------------------------------------------- host state

def snapshot_host_paths() -> dict:
    """What exists before podman runs, so cleanup removes only its own."""
    return {
        "netns": set(podman_netns()),
        "paths": {p for p in CREATED_FILES + CREATED_DIRS if os.path.lexists(p)},
        "cgroups": {p for p in cgroup_parents() if os.path.isdir(p)},
    }


def podman_netns() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith("netns-"))
    except FileNotFoundError:
        return []


def new_podman_netns(before: dict) -> list[str]:
    return [n for n in podman_netns() if n not in before["netns"]]


def cgroup_parents() -> list[str]:
    try:
        controllers = os.listdir(CGROUP_ROOT)
    except FileNotFoundError:
        return []
    return [os.path.join(CGROUP_ROOT, c, "libpod_parent") for c in controllers]


def cleanup_host_state(before: dict) -> None:
    for name in new_podman_netns(before):
        path = os.path.join(NETNS_DIR, name)
        subprocess.run(["umount", "-l", path], capture_output=True)
        try:
            os.unlink(path)
        except OSError:
            pass
    for path in CREATED_FILES:
        if path not in before["paths"] and os.path.isfile(path):
            os.unlink(path)
    for path in CREATED_DIRS:
        if path not in before["paths"]:
            _rmdir(path)
    for parent in cgroup_parents():
        if parent not in before["cgroups"] and os.path.isdir(parent):
            for child in ("conmon",):
                _rmdir(os.path.join(parent, child))
            _rmdir(parent)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)       # only when empty: never someone else's content
    except OSError:
        pass


def remove_network_state(network: str) -> None:
    """host-local's store and libcni's cached results of `network`."""
    for path in (f"{CNI_STATE}/networks/{network}", f"{CNI_STATE}/networks/.pycni/{network}"):
        shutil.rmtree(path, ignore_errors=True)
    results = f"{CNI_STATE}/results"
    for name in _listdir(results):
        if name.startswith(f"{network}-"):
            os.unlink(os.path.join(results, name))


def allocations(network: str) -> dict[str, str]:
    """host-local's allocation files of `network`: address -> owner line."""
    directory = f"{CNI_STATE}/networks/{network}"
    found = {}
    for name in _listdir(directory):
        if name == "lock" or name.startswith(("last_reserved_ip.", ".")):
            continue
        with open(os.path.join(directory, name), errors="replace", newline="") as f:
            found[name] = f.read()
    return found


def cached_results(network: str) -> list[str]:
    return [n for n in _listdir(f"{CNI_STATE}/results") if n.startswith(f"{network}-")]


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def processes_of(workdir: str) -> list[int]:
    """Every process whose command line names `workdir` (conmon, stray
    podman cleanup commands) and all their descendants (the container
    processes, which live in namespaces of their own)."""
    children: dict[int, list[int]] = {}
    roots = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
        if (workdir.rstrip("/") + "/").encode() in cmdline and pid != os.getpid():
            roots.append(pid)
    doomed, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in doomed:
            continue
        doomed.append(pid)
        todo.extend(children.get(pid, []))
    return doomed


def kill_processes_of(workdir: str) -> list[int]:
    return kill(processes_of(workdir))


def kill(pids: list[int]) -> list[int]:
    """SIGKILL each of `pids` (gone already is fine); returns `pids`."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def unmount_below(workdir: str) -> None:
    """Lazily unmount whatever is still mounted inside `workdir` (shm
    tmpfs of containers, storage mounts), deepest first."""
    prefix = os.path.realpath(workdir) + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


# ------------------------------------------------------------------ checks

def skip_without(net, *plugins: str) -> None:
    """Skip (also under CI=true) when pycni does not provide yet a plugin
    of podman's chain the test needs."""
    import pytest
    lacking = [p for p in plugins if p in net.missing]
    if lacking:
        pytest.skip(f"needs {', '.join(lacking)} of podman's chain, "
                    f"not provided by pycni yet (not in pycni.registry)")


# Chains the reference keeps after the last DEL (shared by all containers).
SHARED_CHAINS = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK",
                 "CNI-FORWARD", "CNI-ADMIN"}


def iptables_leftovers(ruleset: str, needles: list[str]) -> list[str]:
    """Chains and rules of an `iptables-save` text that belong to a
    container: per-container CNI chains, and any line naming one of
    `needles` (container IDs and addresses, the network's name)."""
    found = []
    for line in ruleset.splitlines():
        if line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith("CNI-") and chain not in SHARED_CHAINS:
                found.append(f"chain {chain}")
        elif line.startswith("-A") and any(n and n in line for n in needles):
            found.append(line)
    return found


def wait_for(predicate, timeout: float = 10, interval: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
