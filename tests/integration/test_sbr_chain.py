"""macvlan + static + sbr as one conflist, through runtimes' client code:
pycni's cnitool and the reference Go library (libcni, tests/golibcni).

The world: the host's master `sbrm0` is a veth whose peer sits in a LAN
namespace holding the gateway 10.78.0.1 and fd78::1. The container gets a
macvlan on sbrm0 with static addresses; sbr then moves its routes into
table 100 (IPv4) and 101 (IPv6) behind source rules.
"""

import json
import os
import sys

import pytest

from pytest_netns import missing_prerequisite
from test_golibcni import golibcni  # noqa: F401 - the session fixture that builds the client

pytestmark = pytest.mark.netns

REF19 = "/var/cache/pycni-bench/ref-v1.9/bin"
NET = "sbrchain"
MASTER = "sbrm0"
CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
# A chain CHECK stops at macvlan, ours and the reference's alike: it looks
# for the gateway's route in the main table, which sbr emptied
# (plugins#297). sbr's own CHECK is covered in test_sbr.py.
MACVLAN_CHECK = "Failed to find Gateway 10.78.0.1 for interface eth0"


@pytest.fixture
def lan(world):
    ext = world.external("sbrlan")
    world.host.run("ip", "link", "add", MASTER, "type", "veth", "peer", "name", "sbrx0")
    world.host.run("ip", "link", "set", "sbrx0", "netns", ext.name)
    world.host.run("ip", "link", "set", MASTER, "up")
    ext.run("ip", "addr", "add", "10.78.0.1/24", "dev", "sbrx0")
    ext.run("ip", "addr", "add", "fd78::1/64", "dev", "sbrx0", "nodad")
    ext.run("ip", "link", "set", "sbrx0", "up")
    return ext


@pytest.fixture(params=["ours", "reference"])
def impl(request, plugin_dir):
    if request.param == "ours":
        return "ours", plugin_dir
    if not os.access(os.path.join(REF19, "sbr"), os.X_OK):
        missing_prerequisite(f"the reference v1.9 plugins are not in {REF19}")
    return "reference", REF19


def plugins(static_addresses=None) -> list[dict]:
    return [
        {"type": "macvlan", "master": MASTER,
         "ipam": {"type": "static",
                  "addresses": static_addresses or [
                      {"address": "10.78.0.10/24", "gateway": "10.78.0.1"},
                      {"address": "fd78::10/64", "gateway": "fd78::1"}],
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
        {"type": "sbr"},
    ]


def source_rules(ns) -> list[tuple]:
    found = ns.ip_json("-4", "rule") + ns.ip_json("-6", "rule")
    return [(r["src"], r["table"]) for r in found if r["src"] != "all"]


def table(ns, family: str, number: str) -> set[tuple]:
    proc = ns.run("ip", "-j", family, "route", "show", "table", number, check=False)
    found = json.loads(proc.stdout or b"[]") if proc.returncode == 0 else []
    return {(r["dst"], r.get("gateway"), r["dev"]) for r in found}


def main_routes_of(ns, dev: str) -> list[dict]:
    return [r for family in ("-4", "-6") for r in ns.ip_json(family, "route", "show")
            if r.get("dev") == dev]


def assert_routed_by_source(ctr):
    assert source_rules(ctr) == [("10.78.0.10", "100"), ("fd78::10", "101")]
    assert ("default", "10.78.0.1", "eth0") in table(ctr, "-4", "100")
    assert ("10.78.0.0/24", None, "eth0") in table(ctr, "-4", "100")
    assert ("default", "fd78::1", "eth0") in table(ctr, "-6", "101")
    assert main_routes_of(ctr, "eth0") == []
    got = ctr.ip_json("route", "get", "10.50.0.9", "from", "10.78.0.10")
    assert (got[0]["gateway"], got[0]["dev"]) == ("10.78.0.1", "eth0")


def test_through_cnitool(world, lan, impl, tmp_path):
    if not os.access(CNITOOL, os.X_OK):
        missing_prerequisite(f"cnitool not installed next to {sys.executable}")
    label, path = impl
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    (netconf / "30-sbr.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": NET, "plugins": plugins()}))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": path,
           "CNI_CACHE_DIR": str(tmp_path / "cache")}

    def cnitool(*args, check=True):
        proc = world.host.run(CNITOOL, *args, check=False, env=env)
        if check:
            assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        return proc

    ctr = world.container("sbrc")
    result = json.loads(cnitool("add", NET, ctr.path).stdout)
    assert [ip["address"] for ip in result["ips"]] == ["10.78.0.10/24", "fd78::10/64"]
    assert result["interfaces"][0]["name"] == "eth0"
    assert_routed_by_source(ctr)
    assert lan.pings("10.78.0.10")
    check = cnitool("check", NET, ctr.path, check=False)
    assert check.returncode != 0
    assert check.stderr.decode().startswith(MACVLAN_CHECK), check
    cnitool("del", NET, ctr.path)
    assert source_rules(ctr) == []
    assert [link["ifname"] for link in ctr.ip_json("link", "show")] == ["lo"]
    cnitool("del", NET, ctr.path)


# --- through libcni ---------------------------------------------------------------

def run_libcni(world, binary, conflist, netns, cni_path, cache, *ops) -> list[dict]:
    proc = world.host.run(binary, "-conflist", str(conflist), "-netns", netns,
                          "-cni-path", cni_path, "-cache-dir", str(cache),
                          "-container-id", "sbr-libcni", "-ifname", "eth0", *ops, check=False)
    stdout = proc.stdout.decode()
    reports = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert [r["op"] for r in reports] == list(ops), stdout + proc.stderr.decode()
    return reports


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_through_libcni(world, lan, impl, golibcni, tmp_path, version):  # noqa: F811
    label, path = impl
    conflist = tmp_path / "sbr.conflist"
    conflist.write_text(json.dumps({"cniVersion": version, "name": NET,
                                    "plugins": plugins()}))
    ctr = world.container("sbrc")
    (add,) = run_libcni(world, golibcni, conflist, ctr.path, path, tmp_path / "cache", "add")
    assert add["ok"], add
    assert [ip["address"] for ip in add["result"]["ips"]] == ["10.78.0.10/24", "fd78::10/64"]
    assert add["result"]["interfaces"][0]["sandbox"] == ctr.path
    assert_routed_by_source(ctr)
    (check, dele, again) = run_libcni(world, golibcni, conflist, ctr.path, path,
                                      tmp_path / "cache", "check", "del", "del")
    assert not check["ok"] and check["error"].startswith(MACVLAN_CHECK), check
    assert dele["ok"] and again["ok"], (dele, again)
    assert source_rules(ctr) == []
    assert [link["ifname"] for link in ctr.ip_json("link", "show")] == ["lo"]
