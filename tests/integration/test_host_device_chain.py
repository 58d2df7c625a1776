"""host-device + static in a conflist, driven by the runtimes' side: cnitool
(pycni's: conflist, capabilities, result cache, prevResult chaining) and
the reference Go library (tests/golibcni, libcni 1.1.2). Each chain runs
with pycni's plugins and with the reference v1.9 build; the container must
end up the same, and the link must be back in the host after DEL.

The chain: host-device moves the host veth end `hdcv0` in as `net1`,
static gives it 10.80.0.5/24 and a route via the LAN end 10.80.0.1
(the `ips` capability overrides the address through cnitool's CAP_ARGS),
and tuning sets a sysctl on it (a chained plugin after it).
"""

import json
import os
import sys

import pytest

from test_golibcni import golibcni  # noqa: F401  (the client build fixture)

pytestmark = pytest.mark.netns

REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")
CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
NET = "hdchain"
DEV = "hdcv0"
IFNAME = "net1"
LAN_IP = "10.80.0.1"


@pytest.fixture(params=["pycni", "ref-v1.9"])
def impl(request, plugin_dir):
    if request.param == "pycni":
        return request.param, plugin_dir
    if not os.access(os.path.join(REF19, "host-device"), os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"reference v1.9 host-device not built in {REF19}")
    return request.param, REF19


@pytest.fixture
def lan(world):
    ext = world.external("lan")
    world.host.run("ip", "link", "add", DEV, "mtu", "1450", "type", "veth", "peer", "name",
                   "hdcp0", "netns", ext.name)
    world.host.run("ip", "link", "set", DEV, "up")
    ext.run("ip", "addr", "add", f"{LAN_IP}/24", "dev", "hdcp0")
    ext.run("ip", "link", "set", "hdcp0", "up")
    return ext


def conflist(tmp_path, version: str = "1.0.0", address: str = "10.80.0.5/24") -> dict:
    return {"cniVersion": version, "name": NET, "plugins": [
        {"type": "host-device", "device": DEV, "dataDir": str(tmp_path / "hd"),
         "ipam": {"type": "static", "addresses": [{"address": address, "gateway": LAN_IP}],
                  "routes": [{"dst": "10.81.0.0/16", "gw": LAN_IP}]},
         "capabilities": {"ips": True}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1"},
         "dataDir": str(tmp_path / "tuning")},
    ]}


def link_names(ns) -> list[str]:
    return sorted(link["ifname"] for link in ns.ip_json("link", "show"))


def assert_attached(ctr, mac: str, address: str) -> None:
    link = ctr.link(IFNAME)
    assert link["address"] == mac and link["mtu"] == 1450 and "UP" in link["flags"]
    assert link["ifalias"] == DEV
    assert address in ctr.addresses(IFNAME)
    routes = {r["dst"]: r.get("gateway") for r in ctr.ip_json("route", "show")}
    assert routes.get("10.81.0.0/16") == LAN_IP
    assert ctr.run("cat", f"/proc/sys/net/ipv4/conf/{IFNAME}/arp_ignore").stdout.strip() == b"1"
    assert ctr.pings(LAN_IP)


def assert_home(world, ctr, mac: str) -> None:
    link = world.host.link(DEV)
    assert link is not None, link_names(world.host)
    assert link["address"] == mac and link["mtu"] == 1450
    assert IFNAME not in link_names(ctr)


def test_through_cnitool(world, lan, impl, tmp_path):
    if not os.access(CNITOOL, os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"cnitool not installed next to {sys.executable}")
    label, cni_path = impl
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    (netconf / "30-hd.conflist").write_text(json.dumps(conflist(tmp_path)))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": cni_path, "CNI_IFNAME": IFNAME,
           "CNI_CACHE_DIR": str(tmp_path / "cache"),
           "CAP_ARGS": json.dumps({"ips": ["10.80.0.7/24"]})}

    def cnitool(*args):
        proc = world.host.run(CNITOOL, *args, check=False, env=env)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return proc

    mac = world.host.link(DEV)["address"]
    ctr = world.container("hdc1")
    result = json.loads(cnitool("add", NET, ctr.path).stdout)
    assert result["interfaces"] == [{"name": IFNAME, "mac": mac, "sandbox": ctr.path}]
    assert [ip["address"] for ip in result["ips"]] == ["10.80.0.7/24"]
    assert world.host.link(DEV) is None
    assert_attached(ctr, mac, "10.80.0.7/24")
    cnitool("check", NET, ctr.path)
    cnitool("del", NET, ctr.path)
    assert_home(world, ctr, mac)
    if label == "pycni":      # the reference's second DEL fails: "failed to find net1"
        cnitool("del", NET, ctr.path)
        assert_home(world, ctr, mac)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_through_go_libcni(world, lan, golibcni, impl, tmp_path, version):  # noqa: F811
    label, cni_path = impl
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps(conflist(tmp_path, version)))
    mac = world.host.link(DEV)["address"]
    ctr = world.container("hdc1")

    def run(*ops):
        proc = world.host.run(golibcni, "-conflist", str(path), "-netns", ctr.path,
                              "-cni-path", cni_path, "-cache-dir", str(tmp_path / "cache"),
                              "-container-id", "libcni-hd", "-ifname", IFNAME, *ops,
                              check=False)
        reports = [json.loads(line) for line in proc.stdout.decode().splitlines() if line]
        assert [r["op"] for r in reports] == list(ops), proc.stderr.decode()
        return reports

    add, check = run("add", "check")
    assert add["ok"] and check["ok"], (add, check)
    assert add["result"]["interfaces"] == [{"name": IFNAME, "mac": mac, "sandbox": ctr.path}]
    assert add["result"]["ips"][0]["address"] == "10.80.0.5/24"
    assert_attached(ctr, mac, "10.80.0.5/24")
    del1, del2 = run("del", "del")
    assert del1["ok"], del1
    assert_home(world, ctr, mac)
    if label == "pycni":
        assert del2["ok"], del2              # idempotent
        assert not (tmp_path / "hd" / NET / "libcni-hd_net1").exists()
    else:                                    # the reference's DEL is not (v1.9.1)
        assert 'failed to find "net1" in containerNS' in del2["error"]
