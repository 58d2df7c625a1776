"""Conflists with static as the IPAM of their main plugin, driven the way
runtimes drive them: through cnitool (ours, with CAP_ARGS and CNI_ARGS)
and through the Go libcni client (tests/golibcni, the reference library).
pycni plugins only; every container and link lives in the test's world.

  bridge + static + tuning     a bridge network with fixed addresses
  macvlan + static + tuning    macvlan on a veth whose peer is the "LAN"
"""

import json
import os
import sys

import pytest

from test_golibcni import golibcni  # noqa: F401 - the session fixture (builds the client)

pytestmark = pytest.mark.netns

CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
MASTER = "stcm0"
EXT4 = "10.81.0.1"


@pytest.fixture
def lan(world):
    ext = world.external("stlan")
    world.host.run("ip", "link", "add", MASTER, "type", "veth", "peer", "name", "stcext0")
    world.host.run("ip", "link", "set", "stcext0", "netns", ext.name)
    world.host.run("ip", "link", "set", MASTER, "up")
    ext.run("ip", "addr", "add", f"{EXT4}/24", "dev", "stcext0")
    ext.run("ip", "link", "set", "stcext0", "up")
    return ext


def bridge_list(version: str) -> dict:
    return {"cniVersion": version, "name": "stbrnet", "plugins": [
        {"type": "bridge", "bridge": "stcbr0", "isGateway": True,
         "ipam": {"type": "static",
                  "addresses": [{"address": "10.82.0.5/24", "gateway": "10.82.0.1"}],
                  "routes": [{"dst": "0.0.0.0/0"}],
                  "dns": {"nameservers": ["10.82.0.1"]}},
         "capabilities": {"ips": True}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}},
    ]}


def macvlan_list(version: str) -> dict:
    return {"cniVersion": version, "name": "stmvnet", "plugins": [
        {"type": "macvlan", "master": MASTER,
         "ipam": {"type": "static",
                  "addresses": [{"address": "10.81.0.5/24", "gateway": EXT4}],
                  "routes": [{"dst": "0.0.0.0/0"}]},
         "capabilities": {"ips": True}},
        {"type": "tuning", "mtu": 1400},
    ]}


def addrs(ns, ifname="eth0"):
    info = ns.ip_json("-4", "addr", "show", "dev", ifname)
    return [f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])
            if "local" in a]


def has_eth0(ns) -> bool:
    return any(link["ifname"] == "eth0" for link in ns.ip_json("link", "show"))


# --- cnitool ------------------------------------------------------------------

def cnitool(world, plugin_dir, tmp_path, *args, ok=True, **env):
    netconf = tmp_path / "net.d"
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
                "NETCONFPATH": str(netconf), "CNI_PATH": plugin_dir,
                "CNI_CACHE_DIR": str(tmp_path / "cache"), **env}
    proc = world.host.run(CNITOOL, *args, check=False, env=full_env)
    if ok:
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    return proc


def write_list(tmp_path, doc: dict) -> None:
    netconf = tmp_path / "net.d"
    netconf.mkdir(exist_ok=True)
    (netconf / f"10-{doc['name']}.conflist").write_text(json.dumps(doc))


@pytest.mark.parametrize("chain", ["bridge", "macvlan"])
def test_cnitool_chain_add_check_del(world, lan, plugin_dir, tmp_path, chain):
    doc = bridge_list("1.1.0") if chain == "bridge" else macvlan_list("1.1.0")
    write_list(tmp_path, doc)
    ctr = world.container("st1")
    env = {"CNI_CONTAINERID": "st-pod1"}
    proc = cnitool(world, plugin_dir, tmp_path, "add", doc["name"], ctr.path, **env)
    result = json.loads(proc.stdout)
    want = doc["plugins"][0]["ipam"]["addresses"][0]
    assert [(ip["address"], ip["gateway"]) for ip in result["ips"]] == \
        [(want["address"], want["gateway"])]
    assert addrs(ctr) == [want["address"]]
    assert ctr.pings(want["gateway"])
    if chain == "macvlan":
        assert ctr.link("eth0")["mtu"] == 1400          # tuning ran after static's result
    else:
        assert result["dns"] == {"nameservers": ["10.82.0.1"]}
    cnitool(world, plugin_dir, tmp_path, "check", doc["name"], ctr.path, **env)
    cnitool(world, plugin_dir, tmp_path, "del", doc["name"], ctr.path, **env)
    assert not has_eth0(ctr)
    cnitool(world, plugin_dir, tmp_path, "del", doc["name"], ctr.path, **env)


def test_cnitool_capability_and_cni_args(world, lan, plugin_dir, tmp_path):
    """CAP_ARGS ips (the capability) replaces the configured address; CNI_ARGS
    IP= alone (IgnoreUnknown for the runtime's keys) is appended."""
    doc = macvlan_list("1.0.0")
    write_list(tmp_path, doc)
    ctr = world.container("st1")
    env = {"CNI_CONTAINERID": "st-pod1", "CAP_ARGS": json.dumps({"ips": ["10.81.0.9/24"]}),
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.81.0.10/24"}
    proc = cnitool(world, plugin_dir, tmp_path, "add", doc["name"], ctr.path, **env)
    assert [ip["address"] for ip in json.loads(proc.stdout)["ips"]] == ["10.81.0.9/24"]
    assert addrs(ctr) == ["10.81.0.9/24"]
    cnitool(world, plugin_dir, tmp_path, "del", doc["name"], ctr.path, **env)

    ctr2 = world.container("st2")
    env = {"CNI_CONTAINERID": "st-pod2", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.81.0.10/24"}
    proc = cnitool(world, plugin_dir, tmp_path, "add", doc["name"], ctr2.path, **env)
    assert [ip["address"] for ip in json.loads(proc.stdout)["ips"]] == \
        ["10.81.0.5/24", "10.81.0.10/24"]
    assert sorted(addrs(ctr2)) == ["10.81.0.10/24", "10.81.0.5/24"]
    cnitool(world, plugin_dir, tmp_path, "del", doc["name"], ctr2.path, **env)

    # without IgnoreUnknown, the runtime's keys are refused as the reference refuses them
    ctr3 = world.container("st3")
    env = {"CNI_CONTAINERID": "st-pod3", "CNI_ARGS": "K8S_POD_NAME=p"}
    proc = cnitool(world, plugin_dir, tmp_path, "add", doc["name"], ctr3.path, ok=False, **env)
    assert proc.returncode != 0
    assert 'ARGS: unknown args ["K8S_POD_NAME=p"]' in proc.stderr.decode()
    assert not has_eth0(ctr3)


# --- the Go libcni client ------------------------------------------------------

LIBCNI_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")     # libcni 1.1.2 predates 1.1.0


def libcni(world, binary, tmp_path, plugin_dir, doc, ctr, *ops, args=""):
    conflist = tmp_path / "static.conflist"
    conflist.write_text(json.dumps(doc))
    proc = world.host.run(binary, "-conflist", str(conflist), "-netns", ctr.path,
                          "-cni-path", plugin_dir, "-cache-dir", str(tmp_path / "cache"),
                          "-container-id", "st-libcni", "-ifname", "eth0",
                          "-args", args, *ops, check=False)
    reports = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    assert [r["op"] for r in reports] == list(ops), proc.stdout.decode() + proc.stderr.decode()
    return reports


@pytest.mark.parametrize("version", LIBCNI_VERSIONS)
@pytest.mark.parametrize("chain", ["bridge", "macvlan"])
def test_libcni_chain(world, lan, golibcni, plugin_dir, tmp_path, chain, version):  # noqa: F811
    doc = bridge_list(version) if chain == "bridge" else macvlan_list(version)
    ctr = world.container("st1")
    ops = ("add", "check", "del", "del") if version != "0.3.1" else ("add", "del", "del")
    reports = libcni(world, golibcni, tmp_path, plugin_dir, doc, ctr, *ops,
                     args="IgnoreUnknown=1;K8S_POD_NAME=st-pod")
    assert all(r["ok"] for r in reports), reports
    add = reports[0]
    assert add["version"] == version
    want = doc["plugins"][0]["ipam"]["addresses"][0]
    ips = add["result"]["ips"]
    assert [(ip["address"], ip["gateway"]) for ip in ips] == [(want["address"], want["gateway"])]
    assert ips[0]["interface"] == next(i for i, itf in enumerate(add["result"]["interfaces"])
                                       if itf["name"] == "eth0")
    assert add["result"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert not has_eth0(ctr)


def test_libcni_reads_static_errors(world, lan, golibcni, plugin_dir, tmp_path):  # noqa: F811
    doc = macvlan_list("1.0.0")
    doc["plugins"][0]["ipam"]["addresses"] = [{"address": "10.81.0.5"}]
    ctr = world.container("st1")
    (add,) = libcni(world, golibcni, tmp_path, plugin_dir, doc, ctr, "add")
    assert not add["ok"] and add["code"] == 999
    assert "the 'address' field is expected to be in CIDR notation, got: '10.81.0.5'" \
        in add["error"]
    assert not has_eth0(ctr)
