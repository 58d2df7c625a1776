"""Test worlds: an isolated "host" network namespace, container namespaces
and optional external namespaces, all torn down when the test ends.

Plugins run inside the host namespace exactly as a runtime runs them: the
binary is looked up on CNI_PATH, executed with the CNI_* environment and
the config on stdin (`ip netns exec HOST binary`). Nothing touches the
machine's own namespace.

    with World() as w:
        host = w.host
        c1 = w.container("c1")          # /run/netns/<unique>
        out = w.run_plugin(plugin_dir, "loopback", "ADD", config, c1)

Namespaces get unique names (`pycni-<pid>-<n>-<label>`); `leftovers()`
lists any that outlived their world, which the test session treats as a
failure.
"""

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field

PREFIX = "pycni-"
_counter = itertools.count()


def sh(*argv, netns: str | None = None, check: bool = True, input: bytes | None = None,
       env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a command, inside namespace `netns` if given."""
    cmd = list(argv)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    proc = subprocess.run(cmd, input=input, env=env, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')}")
    return proc


def namespace_names() -> list[str]:
    """Every named network namespace (`ip netns list`)."""
    out = sh("ip", "netns", "list").stdout.decode()
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def leftovers(pid: int | None = None) -> list[str]:
    """Test namespaces of process `pid` (default: this one) still present."""
    prefix = PREFIX + f"{os.getpid() if pid is None else pid}-"
    return [name for name in namespace_names() if name.startswith(prefix)]


def create_namespace(name: str, lo_up: bool = True) -> "Namespace":
    """Create the named namespace `name` (/run/netns/NAME)."""
    sh("ip", "netns", "add", name)
    ns = Namespace(name)
    try:
        ns.run("ip", "link", "set", "lo", "up" if lo_up else "down")
    except BaseException:
        delete_namespace(name)
        raise
    return ns


def delete_namespace(name: str) -> str | None:
    """Kill what runs in namespace `name` and remove it; an error text or None."""
    pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    proc = sh("ip", "netns", "del", name, check=False)
    if proc.returncode != 0 and os.path.exists(f"/run/netns/{name}"):
        return proc.stderr.decode(errors="replace")
    return None


@dataclass
class PluginRun:
    """What a plugin did: exit code, stdout parsed as JSON (or None), stderr."""
    returncode: int
    stdout: str
    stderr: str
    json: object = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_code(self) -> int | None:
        return self.json.get("code") if isinstance(self.json, dict) else None


@dataclass
class Namespace:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def run(self, *argv, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return sh(*argv, netns=self.name, check=check, **kw)

    def ip_json(self, *args) -> list:
        return json.loads(self.run("ip", "-j", *args).stdout or b"[]")

    def link(self, name: str) -> dict | None:
        proc = self.run("ip", "-j", "-d", "link", "show", "dev", name, check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)[0]

    def pings(self, dst: str, tries: int = 10) -> bool:
        """ICMP echo from this namespace to `dst` (an address in a namespace
        of the same world). Uses a raw socket: no ping binary needed."""
        proc = self.run(sys.executable, "-c", _PING, dst, str(tries), check=False)
        return proc.returncode == 0

    def addresses(self, ifname: str) -> list[str]:
        info = self.ip_json("addr", "show", "dev", ifname)
        return [f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])]


@dataclass
class World:
    """A set of namespaces owned by one test; `close()` removes them all."""
    label: str = "w"
    namespaces: list[Namespace] = field(default_factory=list)

    def __post_init__(self):
        self._host: Namespace | None = None
        self._host_lock = threading.Lock()   # tests touch .host from threads

    def namespace(self, label: str) -> Namespace:
        name = f"{PREFIX}{os.getpid()}-{next(_counter)}-{label}"[:64]
        ns = create_namespace(name)
        self.namespaces.append(ns)
        return ns

    @property
    def host(self) -> Namespace:
        """The namespace plugins run in (the test's stand-in for the node)."""
        with self._host_lock:
            if self._host is None:
                self._host = self.namespace("host")
            return self._host

    def container(self, label: str = "ctr") -> Namespace:
        ns = self.namespace(label)
        # A fresh container netns has lo down, as a runtime creates it.
        ns.run("ip", "link", "set", "lo", "down")
        return ns

    def external(self, label: str = "ext") -> Namespace:
        return self.namespace(label)

    def plugin_env(self, command: str, cni_path, container: Namespace | str | None = None,
                   ifname: str = "eth0", container_id: str = "ctr1",
                   args: str = "", extra: dict | None = None) -> dict:
        if isinstance(cni_path, (list, tuple)):
            cni_path = os.pathsep.join(str(p) for p in cni_path)
        netns_path = container.path if isinstance(container, Namespace) else (container or "")
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns_path,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": args,
            "CNI_PATH": str(cni_path),
            # test stores live in temporary directories (pycni.nodeconf)
            "PYCNI_STATE_DIRS": os.environ.get("PYCNI_STATE_DIRS", "/tmp"),
            # the machine's D-Bus is not the world's: a firewall plugin with
            # an empty backend must never reach a firewalld running on the
            # machine (tests of the firewalld backend pass their own bus)
            "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/pycni-test-world-no-bus",
        }
        env.update(extra or {})
        return {k: v for k, v in env.items() if v is not None}

    def exec_plugin(self, plugin_type: str, env: dict, stdin: bytes | str | dict) -> PluginRun:
        """Exec plugin `plugin_type` found on env["CNI_PATH"], inside the host."""
        binary = find_plugin(plugin_type, env.get("CNI_PATH", ""))
        return self.exec_binary(binary, env, stdin)

    def exec_binary(self, binary: str, env: dict, stdin: bytes | str | dict) -> PluginRun:
        """Exec the plugin executable `binary` inside the host, whatever CNI_PATH
        says (runtimes probe VERSION with CNI_PATH=dummy, for example)."""
        if isinstance(stdin, dict):
            stdin = json.dumps(stdin)
        if isinstance(stdin, str):
            stdin = stdin.encode()
        proc = sh(binary, netns=self.host.name, check=False, input=stdin, env=env)
        out = proc.stdout.decode(errors="replace")
        try:
            parsed = json.loads(out) if out.strip() else None
        except ValueError:
            parsed = None
        return PluginRun(proc.returncode, out, proc.stderr.decode(errors="replace"), parsed)

    def run_plugin(self, cni_path, plugin_type: str, command: str, config: dict | str,
                   container: Namespace | str | None = None, **kw) -> PluginRun:
        env = self.plugin_env(command, cni_path, container, **kw)
        return self.exec_plugin(plugin_type, env, config)

    def close(self) -> None:
        errors = []
        for ns in reversed(self.namespaces):
            # Kill anything a test left running in the namespace, then drop it.
            error = delete_namespace(ns.name)
            if error:
                errors.append(error)
        self.namespaces.clear()
        self._host = None
        if errors:
            raise RuntimeError("could not delete namespaces: " + "; ".join(errors))

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def find_plugin(plugin_type: str, cni_path: str) -> str:
    for directory in cni_path.split(os.pathsep):
        candidate = os.path.join(directory, plugin_type)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"plugin {plugin_type!r} not on CNI_PATH {cni_path!r}")


_PING = textwrap.dedent("""
    import os, socket, struct, sys, time
    dst, tries = sys.argv[1], int(sys.argv[2])
    v6 = ":" in dst
    def csum(b):
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff); s += s >> 16
        return ~s & 0xffff
    ident = os.getpid() & 0xffff
    if v6:   # the kernel fills in the ICMPv6 checksum
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        pkt = struct.pack("!BBHHH", 128, 0, 0, ident, 1) + b"pycni"
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"pycni"
        pkt = body[:2] + struct.pack("!H", csum(body + b"\\0")) + body[4:]
    s.settimeout(0.5)
    for _ in range(tries):
        s.sendto(pkt, (dst, 0))
        end = time.time() + 0.5
        try:
            while time.time() < end:
                data, addr = s.recvfrom(2048)
                icmp = data if v6 else data[(data[0] & 0x0f) * 4:]
                reply = 129 if v6 else 0
                if addr[0] == dst and icmp[0] == reply and \\
                        struct.unpack("!H", icmp[4:6])[0] == ident:
                    sys.exit(0)
        except socket.timeout:
            pass
    sys.exit(1)
""")
