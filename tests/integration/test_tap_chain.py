"""tap in conflists, driven by the runtimes' side: cnitool (pycni's, libcni's
behaviour: conflist, capabilities, result cache, prevResult chaining) and the
reference Go library (tests/golibcni, libcni 1.1.2). Each chain runs with
pycni's plugins and with the reference v1.9 build, and must give the same
kernel state (but for the MAC, which the reference ignores when both owner
and group are set).

Chains:
  tap on a bridge   tap (bridge in the container, multiQueue, owner/group,
                    mac capability, host-local) + tuning (promisc, as a
                    bridge port is anyway, and a sysctl on the tap)
  tap + host-local  tap with host-local only
"""

import json
import os
import sys

import pytest

from test_golibcni import golibcni  # noqa: F401  (the client build fixture)

pytestmark = pytest.mark.netns

REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")
CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
NET = "tapchain"
BRIDGE = "tapbr0"
IFNAME = "tap0"
MAC = "02:aa:bb:cc:dd:21"


@pytest.fixture(params=["pycni", "ref-v1.9"])
def impl(request, plugin_dir):
    if request.param == "pycni":
        return request.param, plugin_dir
    if not os.access(os.path.join(REF19, "tap"), os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"reference v1.9 tap not built in {REF19}")
    return request.param, REF19


def conflist(tmp_path, chain: str, version: str = "1.0.0") -> dict:
    tap = {"type": "tap", "capabilities": {"mac": True},
           "ipam": {"type": "host-local", "subnet": "10.79.0.0/24",
                    "rangeStart": "10.79.0.10", "dataDir": str(tmp_path / "ipam")}}
    plugins = [tap]
    if chain == "bridge":
        tap.update(bridge=BRIDGE, multiQueue=True, owner=107, group=107)
        # promisc: a bridge port is promiscuous anyway, and the reference
        # tuning's CHECK fails on a promiscuous link unless it is asked for
        plugins.append({"type": "tuning", "promisc": True,
                        "sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1"}})
    return {"cniVersion": version, "name": NET, "plugins": plugins}


def container(world, chain: str):
    ctr = world.container("tapc1")
    if chain == "bridge":       # the VM runtime's in-pod bridge
        ctr.run("ip", "link", "add", BRIDGE, "type", "bridge")
        ctr.run("ip", "link", "set", BRIDGE, "up")
    return ctr


def reserved(tmp_path) -> list[str]:
    store = tmp_path / "ipam" / NET
    return sorted(p.name for p in store.iterdir()
                  if p.name != "lock" and not p.name.startswith("last_reserved_ip")) \
        if store.exists() else []


def link_names(ns) -> list[str]:
    return sorted(link["ifname"] for link in ns.ip_json("link", "show"))


def assert_attached(ctr, chain: str, label: str) -> None:
    link = ctr.link(IFNAME)
    info = link["linkinfo"]["info_data"]
    assert link["linkinfo"]["info_kind"] == "tun" and info["type"] == "tap"
    assert "10.79.0.10/24" in ctr.addresses(IFNAME)
    if chain == "bridge":
        assert link["master"] == BRIDGE and info["multi_queue"] is True
        # with owner and group the reference ignores the MAC (README)
        assert (link["address"] == MAC) == (label == "pycni")
        assert ctr.run("cat", f"/proc/sys/net/ipv4/conf/{IFNAME}/arp_ignore").stdout.strip() \
            == b"1"


@pytest.mark.parametrize("chain", ["bridge", "plain"])
def test_through_cnitool(world, impl, tmp_path, chain):
    if not os.access(CNITOOL, os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"cnitool not installed next to {sys.executable}")
    label, cni_path = impl
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    (netconf / "30-tap.conflist").write_text(json.dumps(conflist(tmp_path, chain)))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": cni_path, "CNI_IFNAME": IFNAME,
           "CNI_CACHE_DIR": str(tmp_path / "cache"), "CAP_ARGS": json.dumps({"mac": MAC})}

    def cnitool(*args):
        proc = world.host.run(CNITOOL, *args, check=False, env=env)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return proc

    ctr = container(world, chain)
    result = json.loads(cnitool("add", NET, ctr.path).stdout)
    assert result["interfaces"][0]["name"] == IFNAME
    assert result["interfaces"][0]["sandbox"] == ctr.path
    assert [ip["address"] for ip in result["ips"]] == ["10.79.0.10/24"]
    assert_attached(ctr, chain, label)
    cnitool("check", NET, ctr.path)
    cnitool("del", NET, ctr.path)
    assert IFNAME not in link_names(ctr) and reserved(tmp_path) == []
    cnitool("del", NET, ctr.path)


@pytest.mark.parametrize("chain", ["bridge", "plain"])
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_through_go_libcni(world, golibcni, impl, tmp_path, chain, version):  # noqa: F811
    label, cni_path = impl
    conf = conflist(tmp_path, chain, version)
    conf["plugins"][0]["runtimeConfig"] = {"mac": MAC}    # libcni client: no CAP_ARGS
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps(conf))
    ctr = container(world, chain)

    def run(*ops):
        proc = world.host.run(golibcni, "-conflist", str(path), "-netns", ctr.path,
                              "-cni-path", cni_path, "-cache-dir", str(tmp_path / "cache"),
                              "-container-id", "libcni-tap", "-ifname", IFNAME, *ops,
                              check=False)
        reports = [json.loads(line) for line in proc.stdout.decode().splitlines() if line]
        assert [r["op"] for r in reports] == list(ops), proc.stderr.decode()
        return reports

    add, check = run("add", "check")
    assert add["ok"] and check["ok"], (add, check)
    assert add["result"]["interfaces"][0]["name"] == IFNAME
    assert add["result"]["ips"][0]["address"] == "10.79.0.10/24"
    assert_attached(ctr, chain, label)
    del1, del2 = run("del", "del")
    assert del1["ok"] and del2["ok"], (del1, del2)
    assert IFNAME not in link_names(ctr) and reserved(tmp_path) == []


def test_validate_and_version_through_libcni(world, golibcni, plugin_dir, tmp_path):  # noqa: F811
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps(conflist(tmp_path, "bridge")))
    proc = world.host.run(golibcni, "-conflist", str(path), "-netns", "/run/netns/none",
                          "-cni-path", plugin_dir, "-cache-dir", str(tmp_path / "cache"),
                          "validate", "version", check=False)
    validate, version = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert validate["ok"], validate
    assert version["ok"] and "1.1.0" in version["supportedVersions"]
