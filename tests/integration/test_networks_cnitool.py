"""Whole networks driven through cnitool with pycni plugins only, the way
an operator or a runtime uses them: a loopback + host-local network whose
allocation shows on disk, and containerd's default bridge network."""

import json
import os
import sys

import pytest

CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")


@pytest.fixture
def netconf(tmp_path):
    d = tmp_path / "net.d"
    d.mkdir()
    return d


def write(netconf, name: str, doc: dict) -> None:
    (netconf / name).write_text(json.dumps(doc, indent=2))


def cnitool(world, plugin_dir, netconf, tmp_path, *args, **env):
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
                "NETCONFPATH": str(netconf), "CNI_PATH": plugin_dir,
                "CNI_CACHE_DIR": str(tmp_path / "cache"), **env}
    proc = world.host.run(CNITOOL, *args, check=False, env=full_env)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def test_loopback_and_host_local_allocation_on_disk(world, plugin_dir, netconf, tmp_path):
    data_dir = tmp_path / "networks"
    write(netconf, "10-ipam.conflist", {
        "cniVersion": "1.1.0", "name": "ipamnet",
        "plugins": [
            {"type": "loopback"},
            {"type": "host-local", "ipam": {"type": "host-local", "subnet": "10.55.0.0/24",
                                            "dataDir": str(data_dir)}},
        ]})
    ctr = world.container()
    result = cnitool(world, plugin_dir, netconf, tmp_path, "add", "ipamnet", ctr.path,
                     CNI_CONTAINERID="pod1")
    assert result["ips"][0]["address"] == "10.55.0.2/24"
    stored = data_dir / "ipamnet" / "10.55.0.2"
    assert stored.read_bytes() == b"pod1\r\neth0"
    assert "UP" in ctr.link("lo")["flags"]
    cnitool(world, plugin_dir, netconf, tmp_path, "check", "ipamnet", ctr.path,
            CNI_CONTAINERID="pod1")
    cnitool(world, plugin_dir, netconf, tmp_path, "del", "ipamnet", ctr.path,
            CNI_CONTAINERID="pod1")
    assert not stored.exists()
    cnitool(world, plugin_dir, netconf, tmp_path, "del", "ipamnet", ctr.path,
            CNI_CONTAINERID="pod1")


def containerd_default(data_dir) -> dict:
    """containerd's 10-containerd-net.conflist, only dataDir moved to tmp."""
    return {
        "cniVersion": "1.0.0", "name": "containerd-net",
        "plugins": [{
            "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
            "promiscMode": True,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": "10.88.0.0/16"}],
                                [{"subnet": "2001:4860:4860::/64"}]],
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]},
        }, {
            "type": "portmap", "capabilities": {"portMappings": True},
            "externalSetMarkChain": "KUBE-MARK-MASQ",
        }]}


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


def test_containerd_default_network(world, plugin_dir, netconf, tmp_path):
    data_dir = tmp_path / "networks"
    write(netconf, "10-containerd-net.conflist", containerd_default(data_dir))
    for tool in ("iptables", "ip6tables"):   # kube-proxy's chain, both families
        world.host.run(tool, "-t", "nat", "-N", "KUBE-MARK-MASQ")
    ctrs = [world.container(f"c{i}") for i in range(2)]
    cap_args = json.dumps({"portMappings": [
        {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]})
    results = [cnitool(world, plugin_dir, netconf, tmp_path, "add", "containerd-net", c.path,
                       CNI_CONTAINERID=f"pod{i}", CAP_ARGS=cap_args if i == 0 else "{}")
               for i, c in enumerate(ctrs)]
    v4 = [r["ips"][0]["address"].split("/")[0] for r in results]
    assert v4 == ["10.88.0.2", "10.88.0.3"]
    assert [r["ips"][1]["address"] for r in results] == \
        ["2001:4860:4860::2/64", "2001:4860:4860::3/64"]
    assert [i["name"] for i in results[0]["interfaces"]][0] == "cni0"
    assert ctrs[0].pings(v4[1]) and ctrs[1].pings("10.88.0.1")
    nat = world.host.run("iptables-save", "-t", "nat").stdout.decode()
    assert nat.count('name: \\"containerd-net\\"') >= 4   # per-container masq rules
    # hostPort 18080 -> pod0:80, reached from the node through the bridge address
    import subprocess
    server = subprocess.Popen(["ip", "netns", "exec", ctrs[0].name, sys.executable, "-c",
                               SERVER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reply = world.host.run(sys.executable, "-c", CLIENT, "10.88.0.1", "18080",
                               check=False)
        assert reply.stdout.decode().strip() == "hello from the pod", reply.stderr
    finally:
        server.kill()
        server.wait()
    for i, c in enumerate(ctrs):
        cnitool(world, plugin_dir, netconf, tmp_path, "check", "containerd-net", c.path,
                CNI_CONTAINERID=f"pod{i}")
    for i, c in enumerate(ctrs):
        cnitool(world, plugin_dir, netconf, tmp_path, "del", "containerd-net", c.path,
                CNI_CONTAINERID=f"pod{i}")
    for i, c in enumerate(ctrs):   # DEL again, as containerd's RemovePodSandbox does
        cnitool(world, plugin_dir, netconf, tmp_path, "del", "containerd-net", c.path,
                CNI_CONTAINERID=f"pod{i}")
    nat = world.host.run("iptables-save", "-t", "nat").stdout.decode()
    assert "containerd-net" not in nat and "CNI-DN-" not in nat
    leftover = [f for f in os.listdir(data_dir / "containerd-net") if f[0].isdigit()]
    assert leftover == []
    assert not [l for l in world.host.ip_json("-d", "link", "show")
                if l.get("linkinfo", {}).get("info_kind") == "veth"]
