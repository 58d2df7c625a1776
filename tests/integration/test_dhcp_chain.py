"""A `macvlan (ipam dhcp) + tuning` network driven the way runtimes drive it:
through cnitool (conflist, result cache) and through the Go libcni client
(tests/golibcni, see test_golibcni.py), pycni's plugins only, with our
dhcp daemon and dnsmasq in the LAN namespace (tests/integration/dhcp_world.py).
"""

import json
import os
import sys

import pytest

from pytest_netns import missing_prerequisite
from test_golibcni import golibcni  # noqa: F401  (the client binary fixture)

import dhcp_world as dw

pytestmark = pytest.mark.netns

NET = "dhchain"
CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")


def conflist(socket_path: str, version: str = "1.0.0") -> dict:
    return {"cniVersion": version, "name": NET, "plugins": [
        {"type": "macvlan", "master": dw.MASTER,
         "ipam": {"type": "dhcp", "daemonSocketPath": socket_path}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}]}


@pytest.fixture
def lan_daemon(world, plugin_dir, tmp_path):
    if not os.path.exists("/usr/sbin/dnsmasq"):
        missing_prerequisite("dnsmasq not installed (apt-get install dnsmasq-base)")
    lan = dw.make_lan(world, "macvlan")
    srv = dw.Dnsmasq(lan, str(tmp_path))
    d = None
    try:
        d = dw.Daemon(world, os.path.join(plugin_dir, "dhcp"), str(tmp_path),
                      ("-timeout", "1s", "-resendtimeout", "20s"))
        yield srv, d
    finally:
        if d is not None:
            d.stop()
        srv.stop()


def check_attached(ctr, result, srv, d):
    ips = result["ips"]
    assert len(ips) == 1 and ips[0]["gateway"] == dw.SERVER_IP
    assert ips[0]["address"] in ctr.addresses("eth0")
    assert ctr.run("cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").stdout.strip() == b"1"
    assert ctr.pings(dw.SERVER_IP)
    [lease] = d.leases()
    assert srv.leased() == [lease["address"]] == [ips[0]["address"].split("/")[0]]


def test_macvlan_dhcp_tuning_through_cnitool(world, plugin_dir, tmp_path, lan_daemon):
    if not os.access(CNITOOL, os.X_OK):
        missing_prerequisite(f"cnitool not installed next to {sys.executable}")
    srv, d = lan_daemon
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    (netconf / "10-dh.conflist").write_text(json.dumps(conflist(d.socket_path)))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": plugin_dir,
           "CNI_CACHE_DIR": str(tmp_path / "cache"), "CNI_CONTAINERID": "dhpod",
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=dhpod"}

    def cnitool(*args):
        proc = world.host.run(CNITOOL, *args, check=False, env=env)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    ctr = world.container("dhpod")
    result = cnitool("add", NET, ctr.path)
    check_attached(ctr, result, srv, d)
    assert d.leases()[0]["client_id"] == f"dhpod/{NET}/eth0"
    cnitool("check", NET, ctr.path)
    cnitool("del", NET, ctr.path)
    assert d.leases() == [] and dw.wait_for(lambda: srv.leased() == [], 3)
    assert [link["ifname"] for link in ctr.ip_json("link", "show")] == ["lo"]
    cnitool("del", NET, ctr.path)          # containerd's RemovePodSandbox DEL again


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_macvlan_dhcp_tuning_through_go_libcni(world, golibcni, plugin_dir, tmp_path,  # noqa: F811
                                               lan_daemon, version):
    srv, d = lan_daemon
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps(conflist(d.socket_path, version)))
    ctr = world.container("dhgo")

    def run(*ops):
        proc = world.host.run(golibcni, "-conflist", str(path), "-netns", ctr.path,
                              "-cni-path", plugin_dir, "-cache-dir", str(tmp_path / "cache"),
                              "-container-id", "dhgo", "-ifname", "eth0", *ops, check=False)
        reports = [json.loads(line) for line in proc.stdout.decode().splitlines()
                   if line.strip()]
        assert [r["op"] for r in reports] == list(ops), proc.stderr.decode()
        for r in reports:
            assert r["ok"], r
        return reports

    (add,) = run("add")
    assert add["version"] == version
    [iface] = add["result"]["interfaces"]
    assert iface == {"name": "eth0", "mac": ctr.link("eth0")["address"], "sandbox": ctr.path}
    assert add["result"]["ips"][0]["interface"] == 0
    check_attached(ctr, add["result"], srv, d)
    run("check", "del")
    assert d.leases() == [] and dw.wait_for(lambda: srv.leased() == [], 3)
    run("del")
