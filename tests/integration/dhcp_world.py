"""Helpers for the dhcp tests: DHCP servers and the dhcp daemon in a test world.

The LAN is an external namespace ("dhlan") holding `ext0` with 10.77.0.1/24;
its peer is `mst0` in the world's host namespace, either the macvlan
master or a port of the bridge `dhbr0`. Servers (Debian's dnsmasq,
busybox udhcpd, or a scripted one) run inside the LAN namespace; the
daemon runs inside the host namespace, as on a node. Everything started
here is stopped by `stop()` (and the world kills what still runs in its
namespaces).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

SERVER_IP = "10.77.0.1"
POOL = ("10.77.0.100", "10.77.0.150")
MASTER = "mst0"
BRIDGE = "dhbr0"


def wait_for(pred, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def make_lan(world, topology: str):
    lan = world.external("dhlan")
    host = world.host
    host.run("ip", "link", "add", MASTER, "type", "veth", "peer", "name", "ext0")
    host.run("ip", "link", "set", "ext0", "netns", lan.name)
    if topology == "bridge":
        host.run("ip", "link", "add", BRIDGE, "type", "bridge")
        host.run("ip", "link", "set", MASTER, "master", BRIDGE)
        host.run("ip", "link", "set", BRIDGE, "up")
    host.run("ip", "link", "set", MASTER, "up")
    lan.run("ip", "addr", "add", f"{SERVER_IP}/24", "dev", "ext0")
    lan.run("ip", "link", "set", "ext0", "up")
    return lan


def net_conf(topology: str, socket_path: str, version: str = "1.0.0", name: str = "dhnet",
             **ipam) -> dict:
    conf = {"cniVersion": version, "name": name}
    if topology == "macvlan":
        conf.update(type="macvlan", master=MASTER)
    else:
        conf.update(type="bridge", bridge=BRIDGE)
    conf["ipam"] = {"type": "dhcp", "daemonSocketPath": socket_path, **ipam}
    return conf


class Proc:
    """A background process inside a namespace, stopped by stop()."""

    def __init__(self, ns, argv, log_path: str, env=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *argv],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)

    def text(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Dnsmasq(Proc):
    name = "dnsmasq"

    def __init__(self, lan, tmp, lease: str = "1h", extra=()):
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.leasefile = os.path.join(tmp, "dnsmasq.leases")
        super().__init__(lan, [binary, "--no-daemon", "--conf-file=/dev/null", "--port=0",
                               "--interface=ext0", "--bind-interfaces", "--log-dhcp",
                               f"--dhcp-range={POOL[0]},{POOL[1]},255.255.255.0,{lease}",
                               f"--dhcp-leasefile={self.leasefile}",
                               f"--pid-file={os.path.join(tmp, 'dnsmasq.pid')}",
                               "--dhcp-authoritative", "--no-ping", *extra],
                         os.path.join(tmp, "dnsmasq.log"))
        time.sleep(0.3)

    def leased(self) -> list[str]:
        """Addresses in dnsmasq's lease file (updated on every ACK and RELEASE)."""
        try:
            with open(self.leasefile) as f:
                return [line.split()[2] for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def saw(self, what: str) -> bool:
        return what in self.text()


class Udhcpd(Proc):
    name = "udhcpd"

    def __init__(self, lan, tmp, lease: int = 3600):
        conf = os.path.join(tmp, "udhcpd.conf")
        with open(conf, "w") as f:
            f.write(f"start {POOL[0]}\nend {POOL[1]}\ninterface ext0\n"
                    f"lease_file {os.path.join(tmp, 'udhcpd.leases')}\n"
                    f"pidfile {os.path.join(tmp, 'udhcpd.pid')}\n"
                    f"min_lease 1\nopt subnet 255.255.255.0\nopt router {SERVER_IP}\n"
                    f"opt lease {lease}\n")
        super().__init__(lan, ["busybox", "udhcpd", "-f", "-a", "200", conf],
                         os.path.join(tmp, "udhcpd.log"))
        time.sleep(0.3)

    def saw(self, what: str) -> bool:
        return True         # udhcpd logs little; tests check the daemon's side


def start_server(kind: str, lan, tmp, **kw):
    if kind == "dnsmasq":
        return Dnsmasq(lan, tmp, **kw)
    return Udhcpd(lan, tmp, **kw)


class Daemon(Proc):
    """Our `dhcp daemon` (or the reference's), inside the host namespace."""
    started = 0

    def __init__(self, world, binary: str, tmp, flags=(), ours: bool = True):
        self.socket_path = os.path.join(tmp, "run", "dhcp.sock")
        self.state_dir = os.path.join(tmp, "state")
        os.makedirs(os.path.dirname(self.socket_path), mode=0o700, exist_ok=True)
        argv = [binary, "daemon", "-socketpath", self.socket_path]
        if ours:
            argv += ["-statedir", self.state_dir]
        argv += list(flags)
        Daemon.started += 1
        super().__init__(world.host, argv, os.path.join(tmp, f"daemon{Daemon.started}.log"))
        def up():
            ready = "listening on" in self.text() if ours else os.path.exists(self.socket_path)
            return ready or self.proc.poll() is not None
        if not wait_for(up, 10):
            raise RuntimeError("daemon did not start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited: {self.text()}")

    def leases(self) -> list[dict]:
        if not os.path.isdir(self.state_dir):
            return []
        out = []
        for name in sorted(os.listdir(self.state_dir)):
            if name.endswith(".lease"):
                with open(os.path.join(self.state_dir, name)) as f:
                    out.append(json.load(f))
        return out


# A scripted server: OFFERs the first pool address, then answers each
# REQUEST with a NAK (mode "nak") or stays silent (mode "silent").
FAKE_SERVER = r"""
import socket, struct, sys
sys.path[:0] = sys.argv[3:]
from pycni import dhcp4
mode, server = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"ext0")
s.bind(("0.0.0.0", 67))
def reply(req, kind, yiaddr):
    hdr = struct.pack("!BBBBIHHIIII16s64s128s", 2, 1, 6, 0, req.xid, 0, 0x8000, 0,
                      int.from_bytes(dhcp4.ip_bytes(yiaddr), "big"), 0, 0, req.chaddr, b"", b"")
    opts = [(53, bytes((kind,))), (54, dhcp4.ip_bytes(server)), (51, (3600).to_bytes(4, "big")),
            (1, bytes((255, 255, 255, 0)))]
    if kind == 6:
        opts = [(53, bytes((6,))), (54, dhcp4.ip_bytes(server)), (56, b"address not available")]
    s.sendto(hdr + dhcp4.MAGIC + dhcp4.encode_options(opts), ("255.255.255.255", 68))
print("ready", flush=True)
while True:
    data, _ = s.recvfrom(4096)
    try:
        m = dhcp4.parse(data)
    except Exception:
        continue
    print("got", dhcp4.TYPE_NAMES.get(m.type), flush=True)
    if m.type == 1:
        reply(m, 2, "10.77.0.100")
    elif m.type == 3 and mode == "nak":
        reply(m, 6, "0.0.0.0")
"""


def start_fake_server(lan, tmp, mode: str) -> Proc:
    import pycni
    lib_parent = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
    proc = Proc(lan, [sys.executable, "-c", FAKE_SERVER, mode, SERVER_IP, lib_parent],
                os.path.join(tmp, "fake.log"))
    wait_for(lambda: "ready" in proc.text(), 10)
    return proc
