"""static as the IPAM of a real main plugin, against the real kernel.

The world: the host namespace holds a veth end `stm0`, the macvlan master
(and a bridge `stbr0` for the bridge cases); its peer sits in an external
namespace with 10.78.0.1/24 and fd00:78::1/64, standing in for the LAN.
Containers get macvlans (or bridge veths) whose addresses come from our
static plugin, which the main plugin runs in-process from the installed
launchers (PYCNI_EXEC_DELEGATES=1 makes it exec the static launcher
instead, as with a foreign main plugin). Side by side, the reference v1.9
macvlan + static build the same container: results and kernel state must
agree.
"""

import json
import os

import pytest
from netns_world import delete_namespace

pytestmark = pytest.mark.netns

MASTER = "stm0"
NET = "stnet"
EXT4, EXT6 = "10.78.0.1", "fd00:78::1"
REF_V19_DIR = "/var/cache/pycni-bench/ref-v1.9/bin"

ADDRESSES = [{"address": "10.78.0.5/24", "gateway": EXT4}, {"address": "fd00:78::5/64"}]
ROUTES = [{"dst": "0.0.0.0/0", "gw": EXT4}, {"dst": "10.79.0.0/16"}]
DNS = {"nameservers": [EXT4], "search": ["st.example"]}


@pytest.fixture
def lan(world):
    ext = world.external("stlan")
    world.host.run("ip", "link", "add", MASTER, "type", "veth", "peer", "name", "stext0")
    world.host.run("ip", "link", "set", "stext0", "netns", ext.name)
    world.host.run("ip", "link", "set", MASTER, "up")
    ext.run("ip", "addr", "add", f"{EXT4}/24", "dev", "stext0")
    ext.run("ip", "addr", "add", f"{EXT6}/64", "dev", "stext0", "nodad")
    ext.run("ip", "link", "set", "stext0", "up")
    return ext


def macvlan_conf(version="1.0.0", **ipam):
    return {"cniVersion": version, "name": NET, "type": "macvlan", "master": MASTER,
            "ipam": {"type": "static", **ipam}}


def bridge_conf(version="1.0.0", **ipam):
    return {"cniVersion": version, "name": NET, "type": "bridge", "bridge": "stbr0",
            "ipam": {"type": "static", **ipam}}


def run(world, path, command, conf, ctr, ok=True, **kw):
    r = world.run_plugin(path, conf["type"], command, conf, ctr, **kw)
    if ok:
        assert r.ok, r.stdout + r.stderr
    return r


def with_prev(conf, result):
    return {**conf, "prevResult": result}


def addrs(ns, family, ifname="eth0"):
    info = ns.ip_json(f"-{family}", "addr", "show", "dev", ifname, "scope", "global")
    return sorted(f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])
                  if "local" in a)


def routes(ns, family, ifname="eth0"):
    out = []
    for r in ns.ip_json(f"-{family}", "route", "show", "dev", ifname):
        if r["dst"].startswith("fe80:") or r["dst"] == "multicast":
            continue
        out.append((r["dst"], r.get("gateway", "")))
    return sorted(out)


def link_names(ns):
    return sorted(link["ifname"] for link in ns.ip_json("link", "show"))


# --- macvlan + static ---------------------------------------------------------

@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.parametrize("delegation", ["in-process", "exec"])
def test_macvlan_add_check_del_del(world, lan, plugin_dir, version, delegation):
    extra = {"PYCNI_EXEC_DELEGATES": "1"} if delegation == "exec" else {}
    ctr = world.container("st1")
    conf = macvlan_conf(version, addresses=ADDRESSES, routes=ROUTES, dns=DNS)
    result = run(world, plugin_dir, "ADD", conf, ctr, extra=extra).json

    ips = [{k: v for k, v in ip.items() if k != "version"} for ip in result["ips"]]
    assert ips == [{"interface": 0, "address": "10.78.0.5/24", "gateway": EXT4},
                   {"interface": 0, "address": "fd00:78::5/64"}]
    assert result["routes"] == ROUTES
    assert result["dns"] == DNS
    assert addrs(ctr, 4) == ["10.78.0.5/24"] and addrs(ctr, 6) == ["fd00:78::5/64"]
    assert ("default", EXT4) in routes(ctr, 4) \
        and ("10.79.0.0/16", EXT4) in routes(ctr, 4)   # no gw: the address's gateway
    assert ctr.pings(EXT4)

    run(world, plugin_dir, "CHECK", with_prev(conf, result), ctr, extra=extra)
    run(world, plugin_dir, "DEL", with_prev(conf, result), ctr, extra=extra)
    assert "eth0" not in link_names(ctr)
    run(world, plugin_dir, "DEL", with_prev(conf, result), ctr, extra=extra)


def test_check_fails_when_the_gateway_differs(world, lan, plugin_dir):
    ctr = world.container("st1")
    conf = macvlan_conf(addresses=ADDRESSES)
    result = run(world, plugin_dir, "ADD", conf, ctr).json
    changed = macvlan_conf(addresses=[{"address": "10.78.0.5/24", "gateway": "10.78.0.9"}])
    check = run(world, plugin_dir, "CHECK", with_prev(changed, result), ctr, ok=False)
    assert check.error_code() == 999
    assert check.json["msg"] == "static: Failed to match addr 10.78.0.5 on interface eth0"
    run(world, plugin_dir, "DEL", conf, ctr)


def test_del_with_netns_gone(world, lan, plugin_dir):
    ctr = world.container("st1")
    conf = macvlan_conf(addresses=ADDRESSES)
    result = run(world, plugin_dir, "ADD", conf, ctr).json
    path = ctr.path
    assert delete_namespace(ctr.name) is None
    run(world, plugin_dir, "DEL", with_prev(conf, result), path)
    run(world, plugin_dir, "DEL", with_prev(conf, result), path)


def test_cni_args_and_capability_through_the_main_plugin(world, lan, plugin_dir):
    ctr = world.container("st1")
    conf = macvlan_conf()
    args = "IgnoreUnknown=1;K8S_POD_NAME=st-pod;IP=10.78.0.7/24,fd00:78::7/64;GATEWAY=10.78.0.1"
    result = run(world, plugin_dir, "ADD", conf, ctr, args=args).json
    assert [(ip["address"], ip.get("gateway")) for ip in result["ips"]] == \
        [("10.78.0.7/24", EXT4), ("fd00:78::7/64", None)]
    assert addrs(ctr, 4) == ["10.78.0.7/24"]
    run(world, plugin_dir, "DEL", conf, ctr, args=args)

    ctr2 = world.container("st2")
    conf = macvlan_conf(addresses=ADDRESSES, capabilities={"ips": True})
    conf["runtimeConfig"] = {"ips": ["10.78.0.8/24"]}
    result = run(world, plugin_dir, "ADD", conf, ctr2, args=args).json
    assert [ip["address"] for ip in result["ips"]] == ["10.78.0.8/24"]
    assert addrs(ctr2, 4) == ["10.78.0.8/24"] and addrs(ctr2, 6) == []
    run(world, plugin_dir, "DEL", conf, ctr2)


@pytest.mark.parametrize("ipam, args, message", [
    ({"addresses": [{"address": "10.78.0.5"}]}, "",
     "the 'address' field is expected to be in CIDR notation, got: '10.78.0.5'"),
    ({}, "K8S_POD_NAME=st-pod", 'ARGS: unknown args ["K8S_POD_NAME=st-pod"]'),
])
def test_refused_ipam_leaves_nothing(world, lan, plugin_dir, ipam, args, message):
    ctr = world.container("st1")
    before = link_names(ctr)
    r = run(world, plugin_dir, "ADD", macvlan_conf(**ipam), ctr, ok=False, args=args)
    assert r.error_code() == 999 and r.json["msg"] == message
    assert link_names(ctr) == before


def test_failure_after_ipam_leaves_nothing(world, lan, plugin_dir):
    """static answers, then the kernel refuses a route (its gateway is not
    on-link): macvlan undoes the link, static has nothing to release."""
    ctr = world.container("st1")
    before = link_names(ctr), world.host.ip_json("link", "show")
    conf = macvlan_conf(addresses=ADDRESSES, routes=[{"dst": "10.99.0.0/16", "gw": "10.200.0.1"}])
    r = run(world, plugin_dir, "ADD", conf, ctr, ok=False)
    assert not r.ok
    assert link_names(ctr) == before[0]
    assert len(world.host.ip_json("link", "show")) == len(before[1])
    run(world, plugin_dir, "DEL", conf, ctr)


def test_side_by_side_with_the_reference(world, lan, plugin_dir):
    if not os.access(os.path.join(REF_V19_DIR, "static"), os.X_OK):
        pytest.skip(f"{REF_V19_DIR} not built (bench/build-reference.sh)")
    conf = macvlan_conf(addresses=[{"address": "10.78.0.5/24", "gateway": EXT4},
                                   {"address": "fd00:78::5/64", "gateway": EXT6}],
                        routes=ROUTES + [{"dst": "::/0", "gw": EXT6}], dns=DNS)
    ours, ref = world.container("st-ours"), world.container("st-ref")
    got = run(world, plugin_dir, "ADD", conf, ours).json
    conf_ref = {**conf, "ipam": {**conf["ipam"],
                                 "addresses": [{"address": "10.78.0.6/24", "gateway": EXT4},
                                               {"address": "fd00:78::6/64", "gateway": EXT6}]}}
    want = run(world, REF_V19_DIR, "ADD", conf_ref, ref).json

    def shape(result, host):
        # dns: the reference macvlan replaces IPAM's with its own config's
        # (empty here); ours keeps IPAM's unless the config sets one
        text = json.dumps({k: v for k, v in result.items() if k not in ("interfaces", "dns")})
        return json.loads(text.replace(f"10.78.0.{host}/", "10.78.0.X/")
                          .replace(f"fd00:78::{host}/", "fd00:78::X/"))

    assert shape(got, 5) == shape(want, 6)
    for family in (4, 6):
        assert routes(ours, family) == routes(ref, family)
    assert [a.replace("::5/", "::6/").replace(".5/", ".6/")
            for a in addrs(ours, 4) + addrs(ours, 6)] == addrs(ref, 4) + addrs(ref, 6)
    run(world, plugin_dir, "CHECK", with_prev(conf, got), ours)
    run(world, REF_V19_DIR, "CHECK", with_prev(conf_ref, want), ref)
    # each implementation's CHECK also accepts the other's result
    run(world, REF_V19_DIR, "CHECK", with_prev(conf, got), ours)
    run(world, plugin_dir, "DEL", with_prev(conf, got), ours)
    run(world, REF_V19_DIR, "DEL", with_prev(conf_ref, want), ref)
    assert "eth0" not in link_names(ours) and "eth0" not in link_names(ref)


# --- bridge + static ----------------------------------------------------------

def test_bridge_add_check_del_del(world, plugin_dir):
    ctr = world.container("st1")
    conf = bridge_conf(addresses=[{"address": "10.80.0.5/24", "gateway": "10.80.0.1"}],
                       routes=[{"dst": "0.0.0.0/0"}])
    conf["isGateway"] = True
    conf["ipam"]["dns"] = DNS
    result = run(world, plugin_dir, "ADD", conf, ctr).json
    assert [ip["address"] for ip in result["ips"]] == ["10.80.0.5/24"]
    assert result["dns"] == DNS
    assert addrs(ctr, 4) == ["10.80.0.5/24"]
    assert addrs(world.host, 4, "stbr0") == ["10.80.0.1/24"]
    assert ctr.pings("10.80.0.1")
    run(world, plugin_dir, "CHECK", with_prev(conf, result), ctr)
    run(world, plugin_dir, "DEL", with_prev(conf, result), ctr)
    assert "eth0" not in link_names(ctr)
    run(world, plugin_dir, "DEL", with_prev(conf, result), ctr)
