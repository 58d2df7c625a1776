"""Real plugin ADDs, with the kernel state read by pyroute2 (the oracle).

Each test runs our plugins as a runtime does (exec'ed in the world's
"host" namespace), then reads links, addresses, routes, qdiscs and
filters with pyroute2's IPRoute inside the world's namespaces and checks
them against two things: what the plugin's result says, and what our own
netlink codec (pycni.netlink and its families, bandwidth's tc) reads from
the same namespace. A plugin could agree with its own codec and still be
wrong; pyroute2 is written by others.

After DEL pyroute2 must see nothing the ADD made. Namespaces are the
world's (torn down by the fixture, also on failure); container labels
start with "orc".
"""

import contextlib
import json
import os
import re
import socket

import pytest

pyroute2 = pytest.importorskip("pyroute2")
from pyroute2 import IPRoute   # noqa: E402

from netns_world import World                    # noqa: E402
from pytest_netns import missing_prerequisite    # noqa: E402

from pycni import netlink, netns   # noqa: E402
from pycni.netlink import link as rtlink, addr as rtaddr, route as rtroute   # noqa: E402
from pycni.netlink import addr_dad as rtdad, linkinfo as rtlinkinfo   # noqa: E402
from pycni.netns_fixtures import netlink_testing as nlt   # noqa: E402
from pycni.plugins.bandwidth import tc           # noqa: E402

pytestmark = pytest.mark.netns

NET = "orcnet"
SUBNET, GW = "10.97.0.0/24", "10.97.0.1"
SUBNET6 = "fd97::/64"
BRIDGE = "orcbr0"
MASTER = "orcm0"


@pytest.fixture
def cni_path(plugin_dir):
    return [plugin_dir]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "ipam")


def ipam(data_dir, dual=False, **extra) -> dict:
    ranges = [[{"subnet": SUBNET}]] + ([[{"subnet": SUBNET6}]] if dual else [])
    return {"type": "host-local", "ranges": ranges, "dataDir": data_dir, **extra}


def ok(run) -> dict:
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    return run.json


def add(world, path, plugin, conf, ctr, **kw) -> dict:
    return ok(world.run_plugin(path, plugin, "ADD", conf, ctr, **kw))


def delete(world, path, plugin, conf, ctr, **kw) -> None:
    ok(world.run_plugin(path, plugin, "DEL", conf, ctr, **kw))


def check(world, path, plugin, conf, result, ctr, **kw) -> None:
    ok(world.run_plugin(path, plugin, "CHECK", {**conf, "prevResult": result}, ctr, **kw))


# --- the two readers --------------------------------------------------------------

@contextlib.contextmanager
def oracle(ns):
    """pyroute2's IPRoute in namespace `ns`."""
    with IPRoute(netns=ns.name) as ipr:
        yield ipr


@contextlib.contextmanager
def ours(ns):
    """Our codec's socket, opened in namespace `ns` (a socket stays bound to
    the namespace it was created in)."""
    with netns.entered(ns.path):
        sock = netlink.RtNetlink()
    try:
        yield sock
    finally:
        sock.close()


def oracle_links(ipr) -> dict[int, tuple]:
    out = {}
    for m in ipr.get_links():
        info = m.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        out[m["index"]] = (m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU") or 0,
                           m.get_attr("IFLA_ADDRESS") or "", kind or "",
                           m.get_attr("IFLA_MASTER") or 0, m.get_attr("IFLA_LINK") or 0,
                           m["flags"] & rtlink.IFF_UP)
    return out


def our_links(nl) -> dict[int, tuple]:
    return {l.index: (l.name, l.mtu, l.mac, l.kind, l.master, l.link, l.flags & rtlink.IFF_UP)
            for l in nlt.list_links(nl)}


def oracle_addresses(ipr) -> list[tuple]:
    out = []
    for m in ipr.get_addr():
        address = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
        out.append((m["family"], address, m["prefixlen"], m["scope"], m["index"]))
    return sorted(out)


def our_addresses(nl) -> list[tuple]:
    return sorted((a.family, a.address, a.prefixlen, a.scope, a.index)
                  for a in rtaddr.list_addresses(nl))


def oracle_routes(ipr) -> list[tuple]:
    """Unicast routes of the main table, one entry per next hop."""
    out = []
    for m in ipr.get_routes():
        table = m.get_attr("RTA_TABLE") or m["table"]
        if table != rtroute.RT_TABLE_MAIN or m["type"] != rtroute.RTN_UNICAST:
            continue
        family = m["family"]
        zero = "::" if family == socket.AF_INET6 else "0.0.0.0"
        dst = f"{m.get_attr('RTA_DST') or zero}/{m['dst_len']}"
        hops = m.get_attr("RTA_MULTIPATH")
        if hops:
            pairs = [(h.get_attr("RTA_GATEWAY") or "", h["oif"]) for h in hops]
        else:
            pairs = [(m.get_attr("RTA_GATEWAY") or "", m.get_attr("RTA_OIF") or 0)]
        for gw, oif in pairs:
            out.append((family, dst, gw, oif, m.get_attr("RTA_PRIORITY") or 0, m["scope"],
                        m.get_attr("RTA_PREFSRC") or ""))
    return sorted(out)


def our_routes(nl) -> list[tuple]:
    return sorted((r.family, r.dst, r.gw, r.oif, r.priority, r.scope, r.src)
                  for r in rtroute.list_routes_ecmp(nl))


def state(ns) -> dict:
    """Links, addresses and main-table routes of `ns`, as pyroute2 reads
    them; asserts that our codec reads exactly the same."""
    with oracle(ns) as ipr:
        theirs = {"links": oracle_links(ipr), "addresses": oracle_addresses(ipr),
                  "routes": oracle_routes(ipr)}
    with ours(ns) as nl:
        mine = {"links": our_links(nl), "addresses": our_addresses(nl),
                "routes": our_routes(nl)}
    for key in theirs:
        assert mine[key] == theirs[key], key
    return theirs


def link_named(view: dict, name: str) -> tuple[int, tuple] | None:
    return next(((i, l) for i, l in view["links"].items() if l[0] == name), None)


def global_cidrs(view: dict, index: int) -> list[str]:
    return sorted(f"{a[1]}/{a[2]}" for a in view["addresses"]
                  if a[4] == index and a[3] == 0)


def result_cidrs(result: dict, iface_index: int) -> list[str]:
    return sorted(ip["address"] for ip in result["ips"] if ip.get("interface") == iface_index)


def sandbox_iface(result: dict, ctr) -> tuple[int, dict]:
    return next((i, iface) for i, iface in enumerate(result["interfaces"])
                if iface.get("sandbox") == ctr.path)


def canonical(cidr: str) -> str:
    address, _, prefix = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return f"{socket.inet_ntop(family, socket.inet_pton(family, address))}/{prefix}"


def assert_container_matches_result(ctr, result: dict, ifname: str = "eth0") -> dict:
    """The container's interface, addresses and routes as the result says."""
    view = state(ctr)
    at, iface = sandbox_iface(result, ctr)
    index, link = link_named(view, ifname)
    assert iface["name"] == ifname
    if iface.get("mac"):
        assert link[2] == iface["mac"].lower()
    assert link[6], f"{ifname} is not up"
    assert global_cidrs(view, index) == sorted(canonical(c) for c in result_cidrs(result, at))
    for route in result.get("routes", []):
        family = socket.AF_INET6 if ":" in route["dst"] else socket.AF_INET
        gw = route.get("gw") or next(
            (ip["gateway"] for ip in result["ips"]
             if ip.get("gateway") and (":" in ip["gateway"]) == (family == socket.AF_INET6)),
            "")
        assert any(r[0] == family and r[1] == canonical(route["dst"]) and r[3] == index
                   and r[2] == gw for r in view["routes"]), (route, view["routes"])
    return view


def bridge_ports(ns) -> dict[str, dict]:
    """Bridge port flags of every enslaved link (AF_BRIDGE dump), by name."""
    out = {}
    with oracle(ns) as ipr:
        for m in ipr.get_links(family=socket.AF_BRIDGE):
            protinfo = m.get_attr("IFLA_PROTINFO")
            if protinfo is None:
                continue
            out[m.get_attr("IFLA_IFNAME")] = {
                "hairpin": protinfo.get_attr("IFLA_BRPORT_MODE"),
                "isolated": protinfo.get_attr("IFLA_BRPORT_ISOLATED"),
                "master": m.get_attr("IFLA_MASTER")}
    return out


# --- bridge -----------------------------------------------------------------------

def test_bridge_add_as_pyroute2_reads_it(world, cni_path, data_dir):
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True, "hairpinMode": True, "mtu": 1400,
            "ipam": ipam(data_dir, dual=True, routes=[{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])}
    ctr = world.container("orcbr")
    result = add(world, cni_path, "bridge", conf, ctr)
    container = assert_container_matches_result(ctr, result)
    _, eth0 = link_named(container, "eth0")
    assert (eth0[1], eth0[3]) == (1400, "veth")

    host = state(world.host)
    bridge_index, bridge = link_named(host, BRIDGE)
    assert bridge[3] == "bridge"
    [host_iface] = [i for i in result["interfaces"]
                    if "sandbox" not in i and i["name"] != BRIDGE]
    veth_index, veth = link_named(host, host_iface["name"])
    assert (veth[3], veth[4], veth[1]) == ("veth", bridge_index, 1400)
    assert veth[2] == host_iface["mac"]
    # isGateway: the gateways on the bridge
    assert global_cidrs(host, bridge_index) == sorted(
        canonical(f"{ip['gateway']}/{ip['address'].split('/')[1]}") for ip in result["ips"])
    ports = bridge_ports(world.host)
    assert ports[host_iface["name"]]["hairpin"] == 1
    assert ports[host_iface["name"]]["master"] == bridge_index
    check(world, cni_path, "bridge", conf, result, ctr)

    delete(world, cni_path, "bridge", conf, ctr)
    after = state(world.host)
    assert link_named(after, host_iface["name"]) is None
    assert link_named(state(ctr), "eth0") is None
    delete(world, cni_path, "bridge", conf, ctr)          # DEL twice


# --- macvlan ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bridge", "private", "vepa"])
def test_macvlan_add_as_pyroute2_reads_it(world, cni_path, data_dir, mode):
    lan = world.external("orclan")
    world.host.run("ip", "link", "add", MASTER, "mtu", "1450", "type", "veth", "peer",
                   "name", "orcp0", "netns", lan.name)
    world.host.run("ip", "link", "set", MASTER, "up")
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "macvlan", "master": MASTER,
            "mode": mode, "mtu": 1400, "ipam": ipam(data_dir, routes=[{"dst": "0.0.0.0/0"}])}
    ctr = world.container("orcmv")
    result = add(world, cni_path, "macvlan", conf, ctr)
    view = assert_container_matches_result(ctr, result)
    index, link = link_named(view, "eth0")
    assert (link[1], link[3]) == (1400, "macvlan")
    host = state(world.host)
    master_index, _ = link_named(host, MASTER)
    assert link[5] == master_index        # IFLA_LINK: the master, in the host's numbering
    with oracle(ctr) as ipr:
        [m] = ipr.get_links(index)
        data = m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        assert data.get_attr("IFLA_MACVLAN_MODE") == mode
    with ours(ctr) as nl:
        _, our_data = rtlink.get_link_info_data(nl, "eth0")
        assert rtlink.macvlan_mode(our_data) == mode
    check(world, cni_path, "macvlan", conf, result, ctr)
    delete(world, cni_path, "macvlan", conf, ctr)
    assert link_named(state(ctr), "eth0") is None
    assert link_named(state(world.host), MASTER) is not None


# --- ptp --------------------------------------------------------------------------

def test_ptp_add_as_pyroute2_reads_it(world, cni_path, data_dir):
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "ptp", "mtu": 1380,
            "ipam": ipam(data_dir, dual=True, routes=[{"dst": "0.0.0.0/0"}])}
    ctr = world.container("orcptp")
    result = add(world, cni_path, "ptp", conf, ctr)
    container = state(ctr)
    at, _ = sandbox_iface(result, ctr)
    index, eth0 = link_named(container, "eth0")
    assert (eth0[1], eth0[3]) == (1380, "veth")
    assert global_cidrs(container, index) == sorted(canonical(c) for c in result_cidrs(result, at))
    # the gateway is reached over the veth, on link, from the container's
    # address; the subnet via the gateway; the kernel's v4 prefix route is gone
    v4 = next(ip for ip in result["ips"] if ":" not in ip["address"])
    container_ip = v4["address"].split("/")[0]
    routes = [r for r in container["routes"] if r[0] == socket.AF_INET]
    assert (socket.AF_INET, f"{v4['gateway']}/32", "", index, 0, netlink.RT_SCOPE_LINK,
            container_ip) in routes
    heads = [r[:4] for r in routes]
    assert (socket.AF_INET, SUBNET, v4["gateway"], index) in heads, routes
    assert (socket.AF_INET, "0.0.0.0/0", v4["gateway"], index) in heads, routes
    assert not any(r[1] == SUBNET and r[2] == "" for r in routes)

    host = state(world.host)
    [host_iface] = [i for i in result["interfaces"] if "sandbox" not in i]
    veth_index, veth = link_named(host, host_iface["name"])
    assert (veth[1], veth[3], veth[2]) == (1380, "veth", host_iface["mac"])
    assert f"{v4['gateway']}/32" in global_cidrs(host, veth_index)
    assert any(r[1] == f"{container_ip}/32" and r[3] == veth_index
               and r[5] == netlink.RT_SCOPE_HOST     # ip.AddHostRoute: scope host
               for r in host["routes"]), host["routes"]
    check(world, cni_path, "ptp", conf, result, ctr)
    delete(world, cni_path, "ptp", conf, ctr)
    after = state(world.host)
    assert link_named(after, host_iface["name"]) is None
    assert not any(r[1] == f"{container_ip}/32" for r in after["routes"])


# --- tap --------------------------------------------------------------------------

def test_tap_add_as_pyroute2_reads_it(world, cni_path, data_dir):
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "tap", "mtu": 1500,
            "mac": "02:97:00:00:00:11", "ipam": ipam(data_dir)}
    ctr = world.container("orctap")
    result = add(world, cni_path, "tap", conf, ctr)
    view = assert_container_matches_result(ctr, result)
    index, link = link_named(view, "eth0")
    assert (link[1], link[2], link[3]) == (1500, "02:97:00:00:00:11", "tun")
    with oracle(ctr) as ipr:
        [m] = ipr.get_links(index)
        data = m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        assert data.get_attr("IFLA_TUN_TYPE") == 2          # IFF_TAP
        assert data.get_attr("IFLA_TUN_PERSIST") == 1
    delete(world, cni_path, "tap", conf, ctr)
    assert link_named(state(ctr), "eth0") is None


# --- bandwidth --------------------------------------------------------------------

RATE, BURST = 8_000_000, 80_000     # bits/s, bits


def oracle_qdiscs(ns, index) -> list[tuple]:
    out = []
    with oracle(ns) as ipr:
        for m in ipr.get_qdiscs(index):
            if m["index"] != index:
                continue
            kind = m.get_attr("TCA_KIND")
            tbf = None
            if kind == "tbf":
                parms = m.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
                tbf = (parms["rate"], parms["limit"], parms["buffer"])
            out.append((kind, m["handle"], m["parent"], tbf))
    return sorted(out, key=repr)


def our_qdiscs(ns, index) -> list[tuple]:
    with ours(ns) as nl:
        return sorted(((q.kind, q.handle, q.parent,
                        (q.tbf.rate, q.tbf.limit, q.tbf.buffer) if q.tbf else None)
                       for q in tc.list_qdiscs(nl, index)), key=repr)


def test_bandwidth_add_as_pyroute2_reads_it(world, cni_path, data_dir):
    bridge = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
              "isGateway": True, "ipam": ipam(data_dir)}
    ctr = world.container("orcbw")
    prev = add(world, cni_path, "bridge", bridge, ctr)
    bw = {"cniVersion": "1.0.0", "name": NET, "type": "bandwidth", "ingressRate": RATE,
          "ingressBurst": BURST, "egressRate": RATE, "egressBurst": BURST}
    result = add(world, cni_path, "bandwidth", {**bw, "prevResult": prev}, ctr)
    host = state(world.host)
    veth_name = next(i["name"] for i in prev["interfaces"]
                     if "sandbox" not in i and i["name"] != BRIDGE)
    veth_index, _ = link_named(host, veth_name)
    ifb = [(i, l) for i, l in host["links"].items() if l[3] == "ifb"]
    assert len(ifb) == 1
    ifb_index, ifb_link = ifb[0]
    assert any(i["name"] == ifb_link[0] for i in result["interfaces"])
    assert ifb_link[6]                                     # up

    # egress shaping: ingress qdisc + redirect on the veth, TBF on the ifb;
    # ingress shaping: TBF on the veth
    for index in (veth_index, ifb_index):
        assert oracle_qdiscs(world.host, index) == our_qdiscs(world.host, index)
    veth_qdiscs = oracle_qdiscs(world.host, veth_index)
    kinds = {q[0]: q for q in veth_qdiscs}
    assert kinds["ingress"][1:3] == (tc.INGRESS_HANDLE, tc.TC_H_INGRESS)
    assert kinds["tbf"][1:3] == (tc.TBF_HANDLE, tc.TC_H_ROOT)
    assert kinds["tbf"][3][0] == RATE // 8                 # bytes per second
    [ifb_tbf] = [q for q in oracle_qdiscs(world.host, ifb_index) if q[0] == "tbf"]
    assert ifb_tbf[3][0] == RATE // 8

    with oracle(world.host) as ipr:
        filters = [m for m in ipr.get_filters(veth_index, parent=tc.INGRESS_HANDLE)
                   if m.get_attr("TCA_KIND") == "u32" and m.get_attr("TCA_OPTIONS")]
        redirects = []
        for m in filters:
            acts = m.get_attr("TCA_OPTIONS").get_attr("TCA_U32_ACT")
            if acts is None:
                continue
            for _, act in sorted(((a[0], a[1]) for a in acts["attrs"]), key=lambda a: a[0]):
                parms = act.get_attr("TCA_ACT_OPTIONS").get_attr("TCA_MIRRED_PARMS")
                redirects.append((parms["ifindex"], parms["eaction"], parms["action"]))
    with ours(world.host) as nl:
        mine = [(r.ifindex, r.eaction, r.control)
                for f in tc.list_filters(nl, veth_index, tc.INGRESS_HANDLE)
                for r in f.redirects]
    assert redirects == mine
    assert redirects and all(r[0] == ifb_index and r[1] == tc.TCA_EGRESS_REDIR
                             for r in redirects)

    check(world, cni_path, "bandwidth", bw, result, ctr)
    delete(world, cni_path, "bandwidth", {**bw, "prevResult": result}, ctr)
    # DEL removes the IFB and the redirect to it; the veth's own TBF stays
    # until the veth goes, as with the reference (its DEL tears down the IFB only)
    assert not [l for l in state(world.host)["links"].values() if l[3] == "ifb"]
    with ours(world.host) as nl:
        assert [r for f in tc.list_filters(nl, veth_index, tc.INGRESS_HANDLE)
                for r in f.redirects] == []
    assert oracle_qdiscs(world.host, veth_index) == our_qdiscs(world.host, veth_index)
    delete(world, cni_path, "bridge", bridge, ctr)


# --- host-device ------------------------------------------------------------------

def test_host_device_add_as_pyroute2_reads_it(world, cni_path, data_dir, tmp_path):
    lan = world.external("orclan")
    world.host.run("ip", "link", "add", "orchd0", "mtu", "1420", "type", "veth", "peer",
                   "name", "orchdp", "netns", lan.name)
    world.host.run("ip", "link", "set", "orchd0", "address", "02:97:00:00:00:22")
    before = state(world.host)
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "host-device", "device": "orchd0",
            "dataDir": str(tmp_path / "hd"), "ipam": ipam(data_dir)}
    ctr = world.container("orchd")
    result = add(world, cni_path, "host-device", conf, ctr)
    assert link_named(state(world.host), "orchd0") is None
    view = assert_container_matches_result(ctr, result)
    index, link = link_named(view, "eth0")
    assert (link[1], link[2], link[3]) == (1420, "02:97:00:00:00:22", "veth")
    with oracle(ctr) as ipr:
        [m] = ipr.get_links(index)
        oracle_alias = m.get_attr("IFLA_IFALIAS")
    with ours(ctr) as nl:
        info = rtlinkinfo.get_link_info(nl, "eth0")
    assert info.alias == (oracle_alias or "")
    check(world, cni_path, "host-device", conf, result, ctr)
    delete(world, cni_path, "host-device", conf, ctr)
    assert link_named(state(ctr), "eth0") is None
    back = link_named(state(world.host), "orchd0")
    assert back is not None
    assert back[1][1:3] == link_named(before, "orchd0")[1][1:3]      # mtu, mac


# --- conntrack (portmap) ------------------------------------------------------------

def add_udp_entries(ns, family, src, dst, ports) -> None:
    """UDP conntrack entries src:40000+i -> dst:port, made by pyroute2."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple
    with Conntrack(nfgen_family=family, netns=ns.name) as ct:
        for i, port in enumerate(ports):
            ct.entry("add", timeout=120,
                     tuple_orig=NFCTAttrTuple(family=family, saddr=src, daddr=dst, proto=17,
                                              sport=40000 + i, dport=port),
                     tuple_reply=NFCTAttrTuple(family=family, saddr=dst, daddr=src, proto=17,
                                               sport=port, dport=40000 + i))


def udp_ports_tracked(ns, family) -> list[int]:
    from pyroute2 import Conntrack
    out = []
    with Conntrack(nfgen_family=family, netns=ns.name) as ct:
        for entry in ct.dump():
            proto = entry.get_attr("CTA_TUPLE_ORIG").get_attr("CTA_TUPLE_PROTO")
            if proto.get_attr("CTA_PROTO_NUM") == 17:
                out.append(proto.get_attr("CTA_PROTO_DST_PORT"))
    return sorted(out)


@pytest.mark.parametrize("family, src, dst", [(socket.AF_INET, "203.0.113.5", "10.97.0.1"),
                                              (socket.AF_INET6, "2001:db8::5", "fd97::1")])
def test_conntrack_flush_as_pyroute2_sees_it(world, family, src, dst):
    """Our ctnetlink codec deletes exactly the UDP entries of the ports it
    is given, of its family; pyroute2 made them and counts what is left."""
    from pycni.plugins.portmap import conntrack
    ns = world.container("orcct")
    add_udp_entries(ns, family, src, dst, [18180, 18180, 18181])
    other = socket.AF_INET if family == socket.AF_INET6 else socket.AF_INET6
    add_udp_entries(ns, other, *(("203.0.113.5", "10.97.0.1") if other == socket.AF_INET
                                 else ("2001:db8::5", "fd97::1")), [18180])
    assert udp_ports_tracked(ns, family) == [18180, 18180, 18181]
    with netns.entered(ns.path):
        deleted = conntrack.flush_udp_ports({18180}, 6 if family == socket.AF_INET6 else 4)
    assert deleted == 2
    assert udp_ports_tracked(ns, family) == [18181]
    assert udp_ports_tracked(ns, other) == [18180]          # the other family untouched


def test_portmap_add_flushes_stale_udp_entries(world, cni_path, data_dir):
    """A UDP entry to a host port that predates the mapping is gone after
    portmap's ADD (pyroute2 made it and looks for it)."""
    bridge = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
              "isGateway": True, "ipam": ipam(data_dir)}
    ctr = world.container("orcpm")
    prev = add(world, cni_path, "bridge", bridge, ctr)
    add_udp_entries(world.host, socket.AF_INET, "203.0.113.5", "10.97.0.1", [18190, 18191])
    pm = {"cniVersion": "1.0.0", "name": NET, "type": "portmap",
          "runtimeConfig": {"portMappings": [
              {"hostPort": 18190, "containerPort": 80, "protocol": "udp"}]}}
    result = add(world, cni_path, "portmap", {**pm, "prevResult": prev}, ctr)
    assert udp_ports_tracked(world.host, socket.AF_INET) == [18191]
    delete(world, cni_path, "portmap", {**pm, "prevResult": result}, ctr)
    delete(world, cni_path, "bridge", bridge, ctr)


# --- side by side with the reference v1.9 -----------------------------------------

REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")
VETH_RE = re.compile(r"veth[0-9a-f]{8}\Z")


@pytest.fixture
def ref19():
    if not os.path.isfile(os.path.join(REF19, "ptp")):
        missing_prerequisite(f"reference v1.9 plugins not built in {REF19} "
                             "(bench/build-reference.sh)")
    return [REF19]


@pytest.fixture
def ref_world(request):
    """A second world, where the reference runs."""
    w = World(request.node.name + "-ref")
    try:
        yield w
    finally:
        w.close()


def normalized(ns) -> dict:
    """pyroute2's view of `ns` without what differs by chance between two
    runs: indexes (links named instead), random veth names, MACs, link-local
    addresses (derived from the MACs)."""
    view = state(ns)
    names = {i: l[0] for i, l in view["links"].items()}

    def name(index):
        text = names.get(index, "") if index else ""
        return "VETH" if VETH_RE.match(text) else text

    return {
        "links": sorted((name(i), l[1], l[3], name(l[4]), l[6])
                        for i, l in view["links"].items()),
        "addresses": sorted((name(a[4]), a[0], f"{a[1]}/{a[2]}", a[3])
                            for a in view["addresses"] if a[3] != netlink.RT_SCOPE_LINK),
        "routes": sorted((r[0], r[1], r[2], name(r[3]), r[4], r[5], r[6])
                         for r in view["routes"] if not r[1].startswith("fe80:")),
    }


def side_by_side(world, ref_world, cni_path, ref19, tmp_path, plugin, conf, chain=()):
    """ADD `conf` (then each chained conf with the previous result) with our
    plugins in `world` and the reference's in `ref_world`; the two worlds'
    normalized states."""
    views = []
    for label, w, path in (("ours", world, cni_path), ("ref", ref_world, ref19)):
        c = json.loads(json.dumps(conf).replace("@DATA@", str(tmp_path / label)))
        ctr = w.container("orcsbs")
        result = add(w, path, plugin, c, ctr, container_id="orc1")
        for link in chain:
            result = add(w, path, link["type"], {**link, "prevResult": result}, ctr,
                         container_id="orc1")
        views.append((normalized(w.host), normalized(ctr), w, ctr))
    return views


@pytest.mark.parametrize("plugin, keys", [
    ("ptp", {"mtu": 1380}),
    ("bridge", {"bridge": BRIDGE, "isGateway": True, "mtu": 1400}),
])
def test_same_kernel_state_as_the_reference(world, ref_world, cni_path, ref19, tmp_path,
                                            plugin, keys):
    conf = {"cniVersion": "1.0.0", "name": NET, "type": plugin, **keys,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "@DATA@"}}
    (our_host, our_ctr, _, _), (ref_host, ref_ctr, _, _) = side_by_side(
        world, ref_world, cni_path, ref19, tmp_path, plugin, conf)
    assert our_ctr == ref_ctr
    assert our_host == ref_host


def test_same_qdiscs_as_the_reference_bandwidth(world, ref_world, cni_path, ref19, tmp_path):
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                     "dataDir": "@DATA@"}}
    bw = {"cniVersion": "1.0.0", "name": NET, "type": "bandwidth", "ingressRate": RATE,
          "ingressBurst": BURST, "egressRate": RATE, "egressBurst": BURST}
    views = side_by_side(world, ref_world, cni_path, ref19, tmp_path, "bridge", conf, [bw])
    (our_host, _, ours_w, _), (ref_host, _, ref_w, _) = views
    assert our_host == ref_host

    def shaping(w):
        out = {}
        with oracle(w.host) as ipr:
            for m in ipr.get_links():
                name = m.get_attr("IFLA_IFNAME")
                key = "VETH" if VETH_RE.match(name) else name
                q = [x for x in oracle_qdiscs(w.host, m["index"]) if x[0] in ("tbf", "ingress")]
                if q:
                    out[key] = q
        return out
    ours_q, ref_q = shaping(ours_w), shaping(ref_w)
    assert len(ours_q) == 2            # the veth and the IFB
    assert ours_q == ref_q


# --- our codec's requests on a real kernel, read back by pyroute2 -----------------

def oracle_link(ns, name):
    with oracle(ns) as ipr:
        found = ipr.link_lookup(ifname=name)
        return ipr.get_links(found[0])[0] if found else None


def test_link_requests_do_what_they_say(world):
    ns = world.container("orccodec")
    other = world.container("orcother")
    with ours(ns) as nl:
        rtlink.create_veth(nl, "orcv0", "orcv1", mtu=1400, mac="02:97:00:00:00:01",
                            peer_mac="02:97:00:00:00:02")
        v0, v1 = rtlink.get_link(nl, "orcv0"), rtlink.get_link(nl, "orcv1")
        a, b = oracle_link(ns, "orcv0"), oracle_link(ns, "orcv1")
        assert (a["index"], b["index"]) == (v0.index, v1.index)
        assert (a.get_attr("IFLA_LINK"), b.get_attr("IFLA_LINK")) == (v1.index, v0.index)
        assert (a.get_attr("IFLA_MTU"), b.get_attr("IFLA_MTU")) == (1400, 1400)
        assert (a.get_attr("IFLA_ADDRESS"), b.get_attr("IFLA_ADDRESS")) == \
            ("02:97:00:00:00:01", "02:97:00:00:00:02")

        rtlink.set_mtu(nl, v0.index, 1280)
        rtlink.set_mac(nl, v0.index, "02:97:00:00:00:09")
        rtlink.set_txqlen(nl, v0.index, 77)
        rtlink.set_promisc(nl, v0.index, True)
        rtlink.set_allmulti(nl, v0.index, True)
        rtlink.set_link_up(nl, v0.index)
        a = oracle_link(ns, "orcv0")
        assert (a.get_attr("IFLA_MTU"), a.get_attr("IFLA_ADDRESS"), a.get_attr("IFLA_TXQLEN")) \
            == (1280, "02:97:00:00:00:09", 77)
        bits = rtlink.IFF_PROMISC | rtlink.IFF_ALLMULTI | rtlink.IFF_UP
        assert a["flags"] & bits == bits
        rtlink.set_promisc(nl, v0.index, False)
        rtlink.set_allmulti(nl, v0.index, False)
        rtlink.set_link_up(nl, v0.index, False)
        assert oracle_link(ns, "orcv0")["flags"] & bits == 0

        rtlink.rename_link(nl, v0.index, "orcv9")
        assert oracle_link(ns, "orcv0") is None
        assert oracle_link(ns, "orcv9")["index"] == v0.index

        rtlink.create_bridge(nl, "orcb0", mtu=1280)
        bridge = rtlink.get_link(nl, "orcb0")
        rtlink.set_master(nl, v0.index, bridge.index)
        rtlink.set_bridge_port(nl, v0.index, hairpin=True, isolated=True)
        assert oracle_link(ns, "orcv9").get_attr("IFLA_MASTER") == bridge.index
        port = bridge_ports(ns)["orcv9"]
        assert (port["hairpin"], port["isolated"], port["master"]) == (1, 1, bridge.index)
        rtlink.set_bridge_port(nl, v0.index, hairpin=False)
        assert bridge_ports(ns)["orcv9"]["hairpin"] == 0
        rtlink.set_master(nl, v0.index, 0)
        assert not oracle_link(ns, "orcv9").get_attr("IFLA_MASTER")

        rtlink.create_macvlan_ext(nl, "orcmv", v1.index, mode="private", mtu=1200,
                                   bc_queue_len=2000)
        mv = oracle_link(ns, "orcmv")
        assert mv.get_attr("IFLA_LINK") == v1.index
        data = mv.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        assert data.get_attr("IFLA_MACVLAN_MODE") == "private"
        _, ours_data = rtlink.get_link_info_data(nl, "orcmv")
        assert rtlink.macvlan_mode(ours_data) == "private"
        if rtlink.IFLA_MACVLAN_BC_QUEUE_LEN in ours_data:        # kernel >= 5.11
            assert netlink.attr_u32_value(ours_data, rtlink.IFLA_MACVLAN_BC_QUEUE_LEN) == 2000

        rtlink.create_link(nl, "orcifb", "ifb", up=True, txqlen=0)
        ifb = oracle_link(ns, "orcifb")
        assert ifb.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "ifb"
        assert (ifb.get_attr("IFLA_TXQLEN"), ifb["flags"] & rtlink.IFF_UP) == (0, 1)

        # a move into another namespace that renames there (host-device)
        rtlinkinfo.set_alias(nl, v1.index, "orc-uplink")
        assert oracle_link(ns, "orcv1").get_attr("IFLA_IFALIAS") == "orc-uplink"
        rtlink.delete_link(nl, rtlink.get_link(nl, "orcmv").index)
        fd = os.open(other.path, os.O_RDONLY)
        try:
            rtlinkinfo.move_link(nl, v1.index, fd, "net1")
        finally:
            os.close(fd)
        assert oracle_link(ns, "orcv1") is None
        moved = oracle_link(other, "net1")
        assert moved.get_attr("IFLA_IFALIAS") == "orc-uplink"
        assert moved.get_attr("IFLA_ADDRESS") == "02:97:00:00:00:02"
        rtlink.delete_link(nl, rtlink.get_link(nl, "orcifb").index)
        assert oracle_link(ns, "orcifb") is None
    state(ns)
    state(other)


def test_address_and_route_requests_do_what_they_say(world):
    ns = world.container("orcroutes")
    ns.run("ip", "link", "add", "orca0", "type", "veth", "peer", "name", "orca1")
    ns.run("ip", "link", "set", "orca0", "up")
    ns.run("ip", "link", "set", "orca1", "up")
    with ours(ns) as nl:
        index = rtlink.get_link(nl, "orca0").index
        rtaddr.add_address(nl, index, "10.97.0.2/24")
        rtaddr.add_address(nl, index, "10.98.0.4/31")
        rtaddr.add_address(nl, index, "fd97::2/64")
        with oracle(ns) as ipr:
            v4 = {m.get_attr("IFA_LOCAL"): m for m in ipr.get_addr(index=index, family=2)}
        assert v4["10.97.0.2"].get_attr("IFA_BROADCAST") == "10.97.0.255"
        assert v4["10.97.0.2"]["prefixlen"] == 24
        assert v4["10.98.0.4"].get_attr("IFA_BROADCAST") is None
        # the kernel's prefix routes, removed the way ptp removes them
        assert any(r[1] == "10.97.0.0/24" and r[3] == index for r in state(ns)["routes"])
        rtroute.delete_prefix_route(nl, index, "10.97.0.0/24")
        assert not any(r[1] == "10.97.0.0/24" for r in state(ns)["routes"])

        rtroute.add_route(nl, "10.97.0.1/32", oif=index, src="10.97.0.2")
        rtroute.add_route(nl, "10.50.0.0/16", gw="10.97.0.1", oif=index, priority=300,
                          mtu=1300, advmss=1260)
        rtroute.add_route(nl, "0.0.0.0/0", gw="10.97.0.1", oif=index, table=1000)
        with oracle(ns) as ipr:
            [m] = [r for r in ipr.get_routes(family=2) if r["dst_len"] == 16]
            assert (m.get_attr("RTA_DST"), m.get_attr("RTA_GATEWAY"),
                    m.get_attr("RTA_PRIORITY"), m.get_attr("RTA_OIF")) == \
                ("10.50.0.0", "10.97.0.1", 300, index)
            metrics = m.get_attr("RTA_METRICS")
            assert (metrics.get_attr("RTAX_MTU"), metrics.get_attr("RTAX_ADVMSS")) == (1300, 1260)
            [gw] = [r for r in ipr.get_routes(family=2) if r.get_attr("RTA_DST") == "10.97.0.1"]
            assert (gw["scope"], gw.get_attr("RTA_PREFSRC")) == (253, "10.97.0.2")
            [t1000] = [r for r in ipr.get_routes(family=2, table=1000)]
            assert (t1000.get_attr("RTA_TABLE"), t1000["dst_len"],
                    t1000.get_attr("RTA_GATEWAY")) == (1000, 0, "10.97.0.1")
        assert [r.gw for r in rtroute.list_routes(nl, table=1000)] == ["10.97.0.1"]
        nlt.del_route(nl, "0.0.0.0/0", gw="10.97.0.1", oif=index, table=1000)
        assert rtroute.list_routes(nl, table=1000) == []

        # IPv6 routes to one destination via two gateways: one multipath route
        ecmp_hops = [("fd97::a", index), ("fd97::b", index)]
        for gw, oif in ecmp_hops:
            rtroute.add_route_ecmp(nl, "fd50::/64", gw=gw, oif=oif, priority=1024)
        with oracle(ns) as ipr:
            [m] = [r for r in ipr.get_routes(family=10) if r.get_attr("RTA_DST") == "fd50::"]
            hops = sorted((h.get_attr("RTA_GATEWAY"), h["oif"])
                          for h in m.get_attr("RTA_MULTIPATH"))
        assert hops == ecmp_hops
        ours_hops = sorted((r.gw, r.oif) for r in rtroute.list_routes_ecmp(nl)
                           if r.dst == "fd50::/64")
        assert ours_hops == ecmp_hops
        rtaddr.del_address(nl, index, "10.98.0.4/31")
        state(ns)


def test_dad_flags_as_pyroute2_reads_them(world):
    """An IPv6 address on a link without carrier stays tentative: both
    readers see the same 32-bit flags."""
    ns = world.container("orcdad")
    ns.run("ip", "link", "add", "orcd0", "type", "veth", "peer", "name", "orcd1")
    ns.run("ip", "link", "set", "orcd0", "up")            # the peer stays down: no carrier
    with ours(ns) as nl:
        index = rtlink.get_link(nl, "orcd0").index
        rtaddr.add_address(nl, index, "fd97::d/64")
        ours_flags = dict(rtdad.address_flags(nl, index))
    with oracle(ns) as ipr:
        theirs = {m.get_attr("IFA_ADDRESS"): m.get_attr("IFA_FLAGS")
                  for m in ipr.get_addr(index=index, family=socket.AF_INET6)}
    assert ours_flags["fd97::d"] == theirs["fd97::d"]
    assert ours_flags["fd97::d"] & rtdad.IFA_F_TENTATIVE


def test_rule_requests_do_what_they_say(world):
    from pycni.netlink import rule as rtrule
    ns = world.container("orcrule")
    with ours(ns) as nl:
        rtrule.add_rule(nl, "10.97.0.5", 100)
        rtrule.add_rule(nl, "fd97::5", 5000)
        with oracle(ns) as ipr:
            theirs = sorted((m["family"], m.get_attr("FRA_SRC"), m["src_len"],
                             m.get_attr("FRA_TABLE"), m.get_attr("FRA_PRIORITY"))
                            for m in ipr.get_rules() if m.get_attr("FRA_SRC"))
        mine = sorted((r.family, r.src, r.src_len, r.table, r.priority)
                      for r in rtrule.list_rules(nl) if r.src)
        assert mine == theirs
        assert [t[1:4] for t in theirs] == [("10.97.0.5", 32, 100), ("fd97::5", 128, 5000)]
        for r in rtrule.list_rules(nl):
            if r.src:
                rtrule.delete_rule(nl, r)
        with oracle(ns) as ipr:
            assert not [m for m in ipr.get_rules() if m.get_attr("FRA_SRC")]


def test_nft_table_question_as_the_kernel_answers(world):
    from pycni import nfnetlink
    ns = world.container("orcnft")
    with netns.entered(ns.path):
        assert nfnetlink.table_exists("inet", "orc_t") is False
    ns.run("nft", "add", "table", "inet", "orc_t")
    with netns.entered(ns.path):
        assert nfnetlink.table_exists("inet", "orc_t") is True
        assert nfnetlink.table_exists("ip", "orc_t") is False


def test_codecs_agree_on_an_empty_world(world):
    """The baseline: a fresh namespace (loopback only)."""
    view = state(world.container("orcempty"))
    assert [l[0] for l in view["links"].values()] == ["lo"]


def test_no_pyroute2_in_the_plugins():
    """pyroute2 is the tests' oracle only: no plugin module imports it."""
    import pycni
    root = os.path.dirname(pycni.__file__)
    offenders = []
    for folder, _, files in os.walk(root):
        if "netns_fixtures" in folder:
            continue
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    text = f.read()
                if "import pyroute2" in text or "from pyroute2" in text:
                    offenders.append(os.path.relpath(os.path.join(folder, name), root))
    assert offenders == []
