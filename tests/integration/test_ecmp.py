"""IPAM routes to one destination via several gateways (issue #13), against
the real kernel and side by side with the reference v1.9 bridge.

host-local `routes` with the same `dst` and different `gw`: the reference
adds each with RouteAddEcmp, and the kernel keeps IPv4 ones as separate
routes (the later first) and joins IPv6 ones into one multipath route.
Ours must leave exactly that state (it used to skip all but the first on
EEXIST while the result listed them all), and its CHECK must find every
route of the result (the reference's own CHECK fails on the IPv6
multipath route).
"""

import json
import os

import pytest

from pytest_netns import missing_prerequisite

pytestmark = pytest.mark.netns

REF19 = "/var/cache/pycni-bench/ref-v1.9/bin"
ROUTES = [{"dst": "10.88.0.0/16", "gw": "10.77.0.253"},
          {"dst": "10.88.0.0/16", "gw": "10.77.0.254"},
          {"dst": "fd88::/64", "gw": "fd77::fd"},
          {"dst": "fd88::/64", "gw": "fd77::fe"},
          {"dst": "0.0.0.0/0"}, {"dst": "::/0"}]


def ipam(data_dir, routes=ROUTES, v6=True) -> dict:
    ranges = [[{"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}]]
    if v6:
        ranges.append([{"subnet": "fd77::/64", "gateway": "fd77::1"}])
    return {"type": "host-local", "dataDir": str(data_dir), "ranges": ranges,
            "routes": routes}


def bridge_conf(data_dir, bridge="dadbr0", **kw) -> dict:
    return {"cniVersion": "1.0.0", "name": "dadecmp", "type": "bridge", "bridge": bridge,
            "ipam": ipam(data_dir, **kw)}


def routes(ns) -> dict:
    """The container's main table as `ip -j` shows it, per family."""
    return {"v4": ns.ip_json("route", "show"), "v6": ns.ip_json("-6", "route", "show")}


def of(table: list, dst: str) -> list:
    return [r for r in table if r["dst"] == dst]


def allocated(data_dir, net="dadecmp") -> list[str]:
    d = os.path.join(str(data_dir), net)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f != "lock" and not f.startswith("last_"))


def link_names(ns) -> list[str]:
    return sorted(l["ifname"] for l in ns.ip_json("link", "show"))


def run_ok(world, path, plugin, command, conf, ctr, **kw):
    run = world.run_plugin(path, plugin, command, conf, ctr, **kw)
    assert run.ok, f"{command}: {run.stdout} {run.stderr}"
    return run.json


def test_bridge_ecmp_routes_as_the_reference_v19_and_check_passes(world, plugin_dir,
                                                                  tmp_path):
    if not os.path.exists(os.path.join(REF19, "bridge")):
        missing_prerequisite(f"reference v1.9 plugins not in {REF19}")
    ref_ctr, ctr = world.container("dadref"), world.container("dadours")
    ref_conf = bridge_conf(tmp_path / "ref", bridge="dadbr1")
    run_ok(world, [REF19], "bridge", "ADD", ref_conf, ref_ctr, container_id="dadref")
    conf = bridge_conf(tmp_path / "ours")
    result = run_ok(world, [plugin_dir], "bridge", "ADD", conf, ctr, container_id="dadours")
    assert [r for r in result["routes"]] == ROUTES

    state = routes(ctr)
    # the same kernel state as the reference's, route for route
    assert state == routes(ref_ctr)
    # IPv4: two routes, the one added later in front
    assert [r.get("gateway") for r in of(state["v4"], "10.88.0.0/16")] == [
        "10.77.0.254", "10.77.0.253"]
    # IPv6: one route with both next hops
    (multi,) = of(state["v6"], "fd88::/64")
    assert [h["gateway"] for h in multi["nexthops"]] == ["fd77::fd", "fd77::fe"]
    assert of(state["v4"], "default")[0]["gateway"] == "10.77.0.1"
    assert of(state["v6"], "default")[0]["gateway"] == "fd77::1"

    run_ok(world, [plugin_dir], "bridge", "CHECK", {**conf, "prevResult": result}, ctr,
           container_id="dadours")
    for _ in range(2):
        run_ok(world, [plugin_dir], "bridge", "DEL", conf, ctr, container_id="dadours")
    assert link_names(ctr) == ["lo"] and allocated(tmp_path / "ours") == []
    run_ok(world, [REF19], "bridge", "DEL", ref_conf, ref_ctr, container_id="dadref")


@pytest.mark.parametrize("dst,gw", [("fd88::/64", "fd77::fe"), ("10.88.0.0/16", "10.77.0.253")])
def test_check_fails_when_one_gateway_is_gone(world, plugin_dir, tmp_path, dst, gw):
    ctr = world.container("dadc1")
    conf = bridge_conf(tmp_path)
    result = run_ok(world, [plugin_dir], "bridge", "ADD", conf, ctr)
    ctr.run("ip", "route", "del", dst, "via", gw, "dev", "eth0")
    check = world.run_plugin([plugin_dir], "bridge", "CHECK",
                             {**conf, "prevResult": result}, ctr)
    assert check.returncode != 0
    err = json.loads(check.stdout)
    assert err["msg"] == f"Expected Route {{Dst:{dst} GW:{gw}}} not found in routing table"
    run_ok(world, [plugin_dir], "bridge", "DEL", conf, ctr)
    assert link_names(ctr) == ["lo"] and allocated(tmp_path) == []


def test_a_route_listed_twice_is_added_once(world, plugin_dir, tmp_path):
    twice = [{"dst": "10.88.0.0/16", "gw": "10.77.0.253"}] * 2 + \
        [{"dst": "fd88::/64", "gw": "fd77::fd"}] * 2
    ctr = world.container("dadc1")
    conf = bridge_conf(tmp_path, routes=twice)
    result = run_ok(world, [plugin_dir], "bridge", "ADD", conf, ctr)
    state = routes(ctr)
    assert [r["gateway"] for r in of(state["v4"], "10.88.0.0/16")] == ["10.77.0.253"]
    assert [r["gateway"] for r in of(state["v6"], "fd88::/64")] == ["fd77::fd"]
    run_ok(world, [plugin_dir], "bridge", "CHECK", {**conf, "prevResult": result}, ctr)
    run_ok(world, [plugin_dir], "bridge", "DEL", conf, ctr)


@pytest.fixture
def lan(world):
    """The host's macvlan master `dadm0`, its peer in a LAN namespace."""
    ext = world.external("dadlan")
    world.host.run("ip", "link", "add", "dadm0", "type", "veth", "peer", "name", "dadx0")
    world.host.run("ip", "link", "set", "dadx0", "netns", ext.name)
    world.host.run("ip", "link", "set", "dadm0", "up")
    ext.run("ip", "link", "set", "dadx0", "up")
    return ext


def test_macvlan_ecmp_routes_and_check(world, plugin_dir, lan, tmp_path):
    ctr = world.container("dadc1")
    conf = {"cniVersion": "1.0.0", "name": "dadecmp", "type": "macvlan", "master": "dadm0",
            "ipam": ipam(tmp_path)}
    result = run_ok(world, [plugin_dir], "macvlan", "ADD", conf, ctr)
    state = routes(ctr)
    assert [r["gateway"] for r in of(state["v4"], "10.88.0.0/16")] == [
        "10.77.0.254", "10.77.0.253"]
    (multi,) = of(state["v6"], "fd88::/64")
    assert [h["gateway"] for h in multi["nexthops"]] == ["fd77::fd", "fd77::fe"]
    run_ok(world, [plugin_dir], "macvlan", "CHECK", {**conf, "prevResult": result}, ctr)
    for _ in range(2):
        run_ok(world, [plugin_dir], "macvlan", "DEL", conf, ctr)
    assert link_names(ctr) == ["lo"] and allocated(tmp_path) == []


@pytest.mark.parametrize("plugin", ["tap"])
def test_ecmp_check_of_other_link_plugins(world, plugin_dir, tmp_path, plugin):
    """Every plugin that configures addresses through pycni.ipconfig also
    CHECKs multipath routes (ipconfig.check_iface)."""
    ctr = world.container("dadc2")
    conf = {"cniVersion": "1.0.0", "name": "dadecmp", "type": plugin, "ipam": ipam(tmp_path)}
    result = run_ok(world, [plugin_dir], plugin, "ADD", conf, ctr)
    (multi,) = of(routes(ctr)["v6"], "fd88::/64")
    assert [h["gateway"] for h in multi["nexthops"]] == ["fd77::fd", "fd77::fe"]
    run_ok(world, [plugin_dir], plugin, "CHECK", {**conf, "prevResult": result}, ctr)
    for _ in range(2):
        run_ok(world, [plugin_dir], plugin, "DEL", conf, ctr)
    assert link_names(ctr) == ["lo"] and allocated(tmp_path) == []
