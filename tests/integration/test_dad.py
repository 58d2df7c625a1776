"""IPv6 duplicate address detection in bridge and macvlan ADD (issue #13),
against the real kernel and side by side with the reference v1.9 bridge.

Where DAD runs (bridge with `enabledad`, macvlan always, as the
reference), ADD returns only once the container's addresses are no
longer tentative, and an address another node already holds (a second
network on the same bridge with the same range; the LAN peer of a
macvlan master) fails ADD with the reference's message and leaves
nothing: no interface in the container, no host veth, the IPAM
allocation released. Without `enabledad` the bridge turns DAD off
(accept_dad=0), as the reference, and ADD does not wait.

IPAM is our host-local, each test with its own dataDir.
"""

import json
import os

import pytest

from pytest_netns import missing_prerequisite

pytestmark = pytest.mark.netns

REF19 = "/var/cache/pycni-bench/ref-v1.9/bin"
SUBNET6 = "fd77::/64"
GW6 = "fd77::1"
DADFAILED = ('failed to settle addresses for "eth0": link eth0 has address fd77::2 '
             "in DADFAILED state")


@pytest.fixture
def ref19():
    if not os.path.exists(os.path.join(REF19, "bridge")):
        missing_prerequisite(f"reference v1.9 plugins not in {REF19}")
    return [REF19]


def bridge_conf(name: str, data_dir, bridge: str = "dadbr0", **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
            **keys,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": SUBNET6, "gateway": GW6}]]}}


def v6_addresses(ns, ifname: str = "eth0") -> list[dict]:
    links = ns.ip_json("-6", "addr", "show", "dev", ifname)
    return [a for link in links for a in link.get("addr_info", [])]


def tentative(ns, ifname: str = "eth0") -> list[str]:
    return [a["local"] for a in v6_addresses(ns, ifname)
            if a.get("tentative") or a.get("dadfailed")]


def allocated(data_dir, net: str) -> list[str]:
    d = os.path.join(str(data_dir), net)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f != "lock" and not f.startswith("last_"))


def host_veths(world) -> list[str]:
    return sorted(l["ifname"] for l in world.host.ip_json("-d", "link", "show")
                  if l.get("linkinfo", {}).get("info_kind") == "veth")


def link_names(ns) -> list[str]:
    return sorted(l["ifname"] for l in ns.ip_json("link", "show"))


def sysctl_in(ns, key: str) -> str:
    return ns.run("cat", "/proc/sys/" + key.replace(".", "/")).stdout.decode().strip()


# --- bridge ---------------------------------------------------------------------

def test_bridge_duplicate_ipv6_fails_the_second_add_and_leaves_nothing(world, plugin_dir,
                                                                       tmp_path):
    path = [plugin_dir]
    c1, c2 = world.container("dadc1"), world.container("dadc2")
    # two networks on one bridge, each with its own store: both hand out fd77::2
    net1 = bridge_conf("dadnet1", tmp_path, enabledad=True)
    net2 = bridge_conf("dadnet2", tmp_path, enabledad=True)
    first = world.run_plugin(path, "bridge", "ADD", net1, c1, container_id="dadc1")
    assert first.ok, first.stdout + first.stderr
    assert [ip["address"] for ip in first.json["ips"]] == ["fd77::2/64"]
    assert tentative(c1) == []
    veths = host_veths(world)

    second = world.run_plugin(path, "bridge", "ADD", net2, c2, container_id="dadc2")
    assert second.returncode != 0
    err = json.loads(second.stdout)
    assert err["code"] == 999 and err["msg"] == DADFAILED, err
    # nothing left: the container has only lo, the host only the first
    # container's veth, the second network's address is free again
    assert link_names(c2) == ["lo"]
    assert host_veths(world) == veths
    assert allocated(tmp_path, "dadnet2") == []
    assert allocated(tmp_path, "dadnet1") == ["fd77::2"]
    # the first container is untouched and still checks out
    check = world.run_plugin(path, "bridge", "CHECK", {**net1, "prevResult": first.json},
                             c1, container_id="dadc1")
    assert check.ok, check.stdout + check.stderr
    # the runtime's DEL after a failed ADD succeeds and finds nothing to do
    for _ in range(2):
        run = world.run_plugin(path, "bridge", "DEL", net2, c2, container_id="dadc2")
        assert run.ok, run.stdout + run.stderr
    run = world.run_plugin(path, "bridge", "DEL", net1, c1, container_id="dadc1")
    assert run.ok, run.stdout + run.stderr
    assert host_veths(world) == [] and allocated(tmp_path, "dadnet1") == []


def test_bridge_duplicate_fails_with_the_reference_v19_message(world, ref19, tmp_path):
    """The reference fails the same ADD with the same words (it leaves its
    veth behind, which ours does not: see the test above)."""
    c1, c2 = world.container("dadr1"), world.container("dadr2")
    first = world.run_plugin(ref19, "bridge", "ADD",
                             bridge_conf("dadnet1", tmp_path, enabledad=True), c1,
                             container_id="dadr1")
    assert first.ok, first.stdout + first.stderr
    second = world.run_plugin(ref19, "bridge", "ADD",
                              bridge_conf("dadnet2", tmp_path, enabledad=True), c2,
                              container_id="dadr2")
    err = json.loads(second.stdout)
    assert second.returncode != 0 and err["code"] == 999 and err["msg"] == DADFAILED
    for ctr, net in ((c2, "dadnet2"), (c1, "dadnet1")):
        world.run_plugin(ref19, "bridge", "DEL", bridge_conf(net, tmp_path), ctr,
                         container_id=ctr.name[-5:])


def test_bridge_enabledad_add_returns_with_no_tentative_address(world, plugin_dir, tmp_path):
    ctr = world.container("dadc1")
    conf = bridge_conf("dadnet", tmp_path, enabledad=True)
    run = world.run_plugin([plugin_dir], "bridge", "ADD", conf, ctr)
    assert run.ok, run.stdout + run.stderr
    # DAD ran (accept_dad on, the reference's enhanced_dad too) and is over,
    # for the global address and the link-local one alike
    assert sysctl_in(ctr, "net.ipv6.conf.eth0.accept_dad") == "1"
    assert sysctl_in(ctr, "net.ipv6.conf.eth0.enhanced_dad") == "1"
    addrs = v6_addresses(ctr)
    assert {a["local"] for a in addrs if a["scope"] == "global"} == {"fd77::2"}
    assert any(a["scope"] == "link" for a in addrs)
    assert tentative(ctr) == []
    check = world.run_plugin([plugin_dir], "bridge", "CHECK",
                             {**conf, "prevResult": run.json}, ctr)
    assert check.ok, check.stdout + check.stderr
    assert world.run_plugin([plugin_dir], "bridge", "DEL", conf, ctr).ok
    assert link_names(ctr) == ["lo"] and allocated(tmp_path, "dadnet") == []


@pytest.mark.parametrize("impl", ["pycni", "ref-v1.9"])
def test_bridge_without_enabledad_turns_dad_off_and_tolerates_a_duplicate(
        impl, world, plugin_dir, tmp_path):
    """The reference's default: accept_dad=0 in the container, so ADD has
    nothing to wait for, and a duplicate goes unnoticed (both alike)."""
    if impl == "pycni":
        path = [plugin_dir]
    else:
        if not os.path.exists(os.path.join(REF19, "bridge")):
            missing_prerequisite(f"reference v1.9 plugins not in {REF19}")
        path = [REF19]
    c1, c2 = world.container("dadc1"), world.container("dadc2")
    for ctr, net in ((c1, "dadnet1"), (c2, "dadnet2")):
        run = world.run_plugin(path, "bridge", "ADD", bridge_conf(net, tmp_path), ctr,
                               container_id=net)
        assert run.ok, run.stdout + run.stderr
        assert sysctl_in(ctr, "net.ipv6.conf.eth0.accept_dad") == "0"
        assert tentative(ctr) == []
    for ctr, net in ((c1, "dadnet1"), (c2, "dadnet2")):
        assert world.run_plugin(path, "bridge", "DEL", bridge_conf(net, tmp_path), ctr,
                                container_id=net).ok


# --- macvlan -----------------------------------------------------------------------

@pytest.fixture
def lan(world):
    """The host's master veth `dadm0`; its peer in a LAN namespace."""
    ext = world.external("dadlan")
    world.host.run("ip", "link", "add", "dadm0", "type", "veth", "peer", "name", "dadx0")
    world.host.run("ip", "link", "set", "dadx0", "netns", ext.name)
    world.host.run("ip", "link", "set", "dadm0", "up")
    ext.run("ip", "link", "set", "dadx0", "up")
    return ext


def macvlan_conf(data_dir, **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "dadmv", "type": "macvlan", "master": "dadm0",
            **keys,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": SUBNET6, "gateway": GW6}]]}}


def test_macvlan_add_waits_for_dad(world, plugin_dir, lan, tmp_path):
    ctr = world.container("dadc1")
    conf = macvlan_conf(tmp_path)
    run = world.run_plugin([plugin_dir], "macvlan", "ADD", conf, ctr)
    assert run.ok, run.stdout + run.stderr
    assert [ip["address"] for ip in run.json["ips"]] == ["fd77::2/64"]
    assert tentative(ctr) == []
    check = world.run_plugin([plugin_dir], "macvlan", "CHECK",
                             {**conf, "prevResult": run.json}, ctr)
    assert check.ok, check.stdout + check.stderr
    for _ in range(2):
        assert world.run_plugin([plugin_dir], "macvlan", "DEL", conf, ctr).ok
    assert link_names(ctr) == ["lo"] and allocated(tmp_path, "dadmv") == []


def test_macvlan_address_held_on_the_lan_fails_add_and_leaves_nothing(world, plugin_dir,
                                                                     lan, tmp_path):
    # a LAN node already has fd77::2 (its own DAD done, nodad for speed)
    lan.run("ip", "-6", "addr", "add", "fd77::2/64", "dev", "dadx0", "nodad")
    ctr = world.container("dadc1")
    conf = macvlan_conf(tmp_path)
    run = world.run_plugin([plugin_dir], "macvlan", "ADD", conf, ctr)
    assert run.returncode != 0
    err = json.loads(run.stdout)
    assert err["code"] == 999 and err["msg"] == DADFAILED, err
    assert link_names(ctr) == ["lo"]
    assert allocated(tmp_path, "dadmv") == []
    assert [l["ifname"] for l in world.host.ip_json("-d", "link", "show")
            if l.get("linkinfo", {}).get("info_kind") == "macvlan"] == []
    assert world.run_plugin([plugin_dir], "macvlan", "DEL", conf, ctr).ok
