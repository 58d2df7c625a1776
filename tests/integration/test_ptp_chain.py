"""A `ptp + portmap` network driven the way runtimes drive it: through
cnitool (conflist, capabilities, result cache) and through the Go libcni
client (tests/golibcni, see test_golibcni.py), with pycni's plugins only.

The hostPort is reached from the host namespace through the gateway
address ptp puts on the host end of the veth; the "pod" is a small TCP
server in the container namespace.
"""

import json
import os
import subprocess
import sys

import pytest

from pytest_netns import missing_prerequisite
from test_golibcni import golibcni  # noqa: F401  (the client binary fixture)

pytestmark = pytest.mark.netns

NET = "ptpchain"
SUBNET, GW = "10.95.0.0/24", "10.95.0.1"
HOST_PORT = 18095
REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")
CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")

SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(5)
while True:
    c, _ = s.accept(); c.sendall(b"hello from the pod"); c.close()
"""

CLIENT = """
import socket, sys, time
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
        print(c.recv(100).decode()); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
"""


def conflist(data_dir: str, version: str = "1.0.0", runtime_config: bool = False) -> dict:
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    if runtime_config:
        # the Go client passes no capability arguments: a literal
        # runtimeConfig reaches the plugin as libcni would have built it
        portmap["runtimeConfig"] = {"portMappings": [
            {"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]}
    return {"cniVersion": version, "name": NET, "plugins": [
        {"type": "ptp", "ipMasq": True, "mtu": 1400,
         "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": data_dir,
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        portmap]}


def serve_and_fetch(world, ctr) -> str:
    server = subprocess.Popen(["ip", "netns", "exec", ctr.name, sys.executable, "-c", SERVER],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reply = world.host.run(sys.executable, "-c", CLIENT, GW, str(HOST_PORT), check=False)
        return reply.stdout.decode().strip()
    finally:
        server.kill()
        server.wait()


def nothing_left(world, data_dir: str) -> None:
    nat = world.host.run("iptables-save", "-t", "nat").stdout.decode()
    assert NET not in nat and "CNI-DN-" not in nat
    store = os.path.join(data_dir, NET)
    assert not os.path.isdir(store) or [f for f in os.listdir(store) if f[0].isdigit()] == []
    assert not [l for l in world.host.ip_json("-d", "link", "show")
                if l.get("linkinfo", {}).get("info_kind") == "veth"]


@pytest.fixture(params=["ours", "reference-v1.9"])
def impl_path(request, plugin_dir) -> str:
    if request.param == "ours":
        return plugin_dir
    if not os.path.isfile(os.path.join(REF19, "ptp")):
        missing_prerequisite(f"reference v1.9 plugins not built in {REF19}")
    return REF19


def test_ptp_and_portmap_through_cnitool(world, impl_path, tmp_path):
    if not os.access(CNITOOL, os.X_OK):
        missing_prerequisite(f"cnitool not installed next to {sys.executable}")
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    data_dir = str(tmp_path / "ipam")
    (netconf / "10-ptp.conflist").write_text(json.dumps(conflist(data_dir)))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": impl_path,
           "CNI_CACHE_DIR": str(tmp_path / "cache"), "CNI_CONTAINERID": "ptppod",
           "CAP_ARGS": json.dumps({"portMappings": [
               {"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]})}

    def cnitool(*args):
        proc = world.host.run(CNITOOL, *args, check=False, env=env)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    ctr = world.container("ptppod")
    result = cnitool("add", NET, ctr.path)
    assert [i.get("sandbox") for i in result["interfaces"]] == [None, ctr.path]
    assert result["ips"] == [{"interface": 1, "address": "10.95.0.2/24", "gateway": GW}]
    assert ctr.link("eth0")["mtu"] == 1400
    assert serve_and_fetch(world, ctr) == "hello from the pod"
    cnitool("check", NET, ctr.path)
    cnitool("del", NET, ctr.path)
    nothing_left(world, data_dir)
    cnitool("del", NET, ctr.path)          # containerd's RemovePodSandbox DEL again


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_ptp_and_portmap_through_go_libcni(world, golibcni, plugin_dir, tmp_path,  # noqa: F811
                                           version):
    data_dir = str(tmp_path / "ipam")
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps(conflist(data_dir, version, runtime_config=True)))
    ctr = world.container("ptpgo")

    def run(*ops):
        proc = world.host.run(golibcni, "-conflist", str(path), "-netns", ctr.path,
                              "-cni-path", plugin_dir, "-cache-dir", str(tmp_path / "cache"),
                              "-container-id", "ptpgo", "-ifname", "eth0", *ops, check=False)
        reports = [json.loads(l) for l in proc.stdout.decode().splitlines() if l.strip()]
        assert [r["op"] for r in reports] == list(ops), proc.stderr.decode()
        for r in reports:
            assert r["ok"], r
        return reports

    (add,) = run("add")
    assert add["version"] == version
    host, cont = add["result"]["interfaces"]
    assert cont == {"name": "eth0", "mac": ctr.link("eth0")["address"], "sandbox": ctr.path}
    assert "sandbox" not in host
    assert add["result"]["ips"] == [{"interface": 1, "address": "10.95.0.2/24",
                                     "gateway": GW}]
    assert serve_and_fetch(world, ctr) == "hello from the pod"
    run("check", "del")
    nothing_left(world, data_dir)
    run("del")
