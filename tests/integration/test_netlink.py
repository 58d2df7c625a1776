"""lib/netlink.py, lib/netns.py and lib/sysctl.py against the real kernel,
cross-checked with iproute2's JSON output."""

import os
import socket

import pytest

from pycni import netlink, netns, sysctl
from pycni.netlink import link as rtlink, addr as rtaddr, route as rtroute
from pycni.netns_fixtures import netlink_testing as nlt


@pytest.fixture
def ns(world):
    """A namespace with a veth pair (a0 <-> a1) to play with."""
    n = world.external("nl")
    n.run("ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1")
    n.run("ip", "link", "set", "a0", "up")
    n.run("ip", "link", "set", "a1", "up")
    return n


def sock(n) -> netlink.RtNetlink:
    with netns.entered(n.path):
        return netlink.RtNetlink()


def test_entered_restores_namespace_on_exception(ns):
    before = os.stat("/proc/thread-self/ns/net").st_ino
    with pytest.raises(RuntimeError):
        with netns.entered(ns.path):
            assert os.stat("/proc/thread-self/ns/net").st_ino != before
            raise RuntimeError("boom")
    assert os.stat("/proc/thread-self/ns/net").st_ino == before


def test_open_netns_rejects_missing_and_non_netns(tmp_path):
    with pytest.raises(netns.NetnsNotFound) as err:
        netns.open_netns(str(tmp_path / "gone"))
    assert err.value.code == 3
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(Exception) as err:
        netns.open_netns(str(regular))
    assert err.value.code == 4


def test_links_and_flags(ns):
    with sock(ns) as nl:
        a0 = rtlink.get_link(nl, "a0")
        assert a0 is not None and a0.kind == "veth" and a0.is_up
        assert a0.mac == ns.link("a0")["address"]
        assert rtlink.get_link(nl, "nope") is None
        rtlink.set_link_up(nl, a0.index, up=False)
        assert "UP" not in ns.link("a0")["flags"]
        names = {link.name for link in nlt.list_links(nl)}
    assert {"lo", "a0", "a1"} <= names


def test_addresses(ns):
    with sock(ns) as nl:
        a0 = rtlink.get_link(nl, "a0")
        rtaddr.add_address(nl, a0.index, "10.99.0.2/24")
        rtaddr.add_address(nl, a0.index, "fd99::2/64")
        with pytest.raises(netlink.NetlinkError):   # EEXIST
            rtaddr.add_address(nl, a0.index, "10.99.0.2/24")
        ours = {a.cidr for a in rtaddr.list_addresses(nl, a0.index)}
        assert {"10.99.0.2/24", "fd99::2/64"} <= ours
        info = ns.ip_json("addr", "show", "dev", "a0")[0]["addr_info"]
        v4 = next(a for a in info if a["family"] == "inet")
        assert v4["broadcast"] == "10.99.0.255"
        rtaddr.del_address(nl, a0.index, "10.99.0.2/24")
    assert "10.99.0.2/24" not in ns.addresses("a0")


def test_routes(ns):
    with sock(ns) as nl:
        a0 = rtlink.get_link(nl, "a0")
        rtaddr.add_address(nl, a0.index, "10.98.0.2/24")
        rtroute.add_route(nl, "0.0.0.0/0", gw="10.98.0.1", oif=a0.index)
        rtroute.add_route(nl, "192.0.2.0/24", gw="10.98.0.1", oif=a0.index,
                          priority=50, mtu=1400)
        routes = rtroute.list_routes(nl, socket.AF_INET)
        default = next(r for r in routes if r.dst == "0.0.0.0/0")
        assert default.gw == "10.98.0.1" and default.oif == a0.index
        ip_routes = ns.ip_json("route", "show")
        doc = next(r for r in ip_routes if r["dst"] == "192.0.2.0/24")
        assert doc["metric"] == 50 and doc["gateway"] == "10.98.0.1"
        assert "mtu" in (doc.get("metrics") or [{}])[0]
        nlt.del_route(nl, "192.0.2.0/24", gw="10.98.0.1", oif=a0.index, priority=50)
        assert not any(r.dst == "192.0.2.0/24" for r in rtroute.list_routes(nl))


def test_sysctl_is_per_namespace(ns):
    outside = sysctl.read("net", "ipv4", "conf", "lo", "arp_notify")
    with netns.entered(ns.path):
        sysctl.write("1", "net", "ipv4", "conf", "a0", "arp_notify")
        assert sysctl.read("net", "ipv4", "conf", "a0", "arp_notify") == "1"
        assert sysctl.ensure("1", "net", "ipv4", "conf", "a0", "arp_notify") is False
    assert sysctl.read("net", "ipv4", "conf", "lo", "arp_notify") == outside
    assert ns.run("sysctl", "-n", "net.ipv4.conf.a0.arp_notify").stdout.strip() == b"1"
    with pytest.raises(ValueError):
        sysctl.path("net", "..", "x")


def test_veth_with_peer_in_other_namespace(world):
    host = world.external("vh")
    ctr = world.container("vc")
    ctr_fd = netns.open_netns(ctr.path)
    try:
        with sock(host) as nl:
            rtlink.create_veth(nl, "vethtest0", "eth0", peer_netns_fd=ctr_fd, mtu=1400,
                                peer_mac="0a:58:0a:00:00:05")
            v = rtlink.get_link(nl, "vethtest0")
            assert v.kind == "veth" and v.mtu == 1400
            with pytest.raises(netlink.NetlinkError):   # EEXIST
                rtlink.create_veth(nl, "vethtest0", "x1")
    finally:
        os.close(ctr_fd)
    peer = ctr.link("eth0")
    assert peer["address"] == "0a:58:0a:00:00:05" and peer["mtu"] == 1400
    with sock(ctr) as nl:
        eth0 = rtlink.get_link(nl, "eth0")
        rtlink.set_link_up(nl, eth0.index)
        rtlink.set_link_up(nl, eth0.index, up=False)
        rtlink.rename_link(nl, eth0.index, "net1")
        rtlink.set_mac(nl, eth0.index, "0a:58:0a:00:00:06")
        rtlink.set_mtu(nl, eth0.index, 1300)
        assert rtlink.get_link_by_index(nl, eth0.index).name == "net1"
        rtlink.delete_link(nl, eth0.index)
        assert rtlink.get_link_by_index(nl, eth0.index) is None
    assert host.link("vethtest0") is None   # deleting one end removes both


def test_bridge_ports_and_flags(ns):
    with sock(ns) as nl:
        rtlink.create_bridge(nl, "br-test", mtu=1450)
        br = rtlink.get_link(nl, "br-test")
        assert br.kind == "bridge"
        a0 = rtlink.get_link(nl, "a0")
        rtlink.set_master(nl, a0.index, br.index)
        rtlink.set_bridge_port(nl, a0.index, hairpin=True, isolated=True)
        rtlink.set_promisc(nl, br.index)
        assert rtlink.get_link(nl, "a0").master == br.index
        assert rtlink.get_link(nl, "br-test").flags & rtlink.IFF_PROMISC
    info = ns.link("a0")["linkinfo"]["info_slave_data"]
    assert info["hairpin"] is True and info["isolated"] is True
    with sock(ns) as nl:
        rtlink.set_master(nl, rtlink.get_link(nl, "a0").index, 0)
    assert "master" not in ns.link("a0")


def test_macvlan_on_veth_parent(ns, world):
    ctr = world.container("mc")
    fd = netns.open_netns(ctr.path)
    try:
        with sock(ns) as nl:
            a0 = rtlink.get_link(nl, "a0")
            rtlink.create_macvlan_ext(nl, "mv0", a0.index, mode="private", netns_fd=fd)
    finally:
        os.close(fd)
    info = ctr.link("mv0")
    assert info["linkinfo"]["info_kind"] == "macvlan"
    assert info["linkinfo"]["info_data"]["mode"] == "private"


def test_configure_iface_applies_result(world):
    from pycni.ipconfig import configure_iface
    from pycni.result import Interface, IPConfig, Result, Route
    ctr = world.container("cfg")
    ctr.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    r = Result(interfaces=[Interface("eth0", sandbox=ctr.path)],
               ips=[IPConfig("10.77.0.5/24", "10.77.0.1", interface=0),
                    IPConfig("fd77::5/64", "fd77::1", interface=0)],
               routes=[Route("0.0.0.0/0"), Route("198.51.100.0/24", gw="10.77.0.9", priority=7)])
    with netns.entered(ctr.path):
        configure_iface("eth0", r)
    assert {"10.77.0.5/24", "fd77::5/64"} <= set(ctr.addresses("eth0"))
    routes = ctr.ip_json("route", "show")
    assert any(x["dst"] == "default" and x["gateway"] == "10.77.0.1" for x in routes)
    assert any(x["dst"] == "198.51.100.0/24" and x.get("metric") == 7 for x in routes)
    assert "UP" in ctr.link("eth0")["flags"]


def test_nfnetlink_table_exists_as_nft_sees_it(world):
    """pycni.nfnetlink asks the kernel what `nft list table` would find,
    in the namespace it runs in, and creates nothing."""
    from pycni import nfnetlink
    n = world.external("nft")

    def exists(family, name):
        with netns.entered(n.path):
            return nfnetlink.table_exists(family, name)
    assert exists("inet", "cni_plugins_masquerade") is False
    n.run("nft", "add", "table", "inet", "cni_plugins_masquerade")
    assert exists("inet", "cni_plugins_masquerade") is True
    assert exists("ip", "cni_plugins_masquerade") is False
    assert exists("inet", "cni_plugins_masquerad") is False
    n.run("nft", "delete", "table", "inet", "cni_plugins_masquerade")
    assert exists("inet", "cni_plugins_masquerade") is False
    assert n.run("nft", "list", "tables").stdout.strip() == b""


def test_nfnetlink_remove_chains_as_iptables_nft_sees_it(world):
    """The in-process teardown (bridge ipMasq, portmap DEL) on rules that
    iptables-nft wrote: the entry rules jumping to the chains and the
    chains go in one transaction; other rules stay; a chain still jumped
    to from elsewhere is refused with nothing changed; read back with
    iptables-save."""
    from pycni import netlink as nlcore, nfnetlink
    n = world.external("ipt")
    for line in ("-N CNI-HOSTPORT-DNAT", "-N CNI-DN-t1", "-N CNI-DN-t2",
                 "-A CNI-DN-t1 -p tcp -j DNAT --to-destination 10.0.0.2:80",
                 "-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment t1 -m multiport --dports 80,81 -j CNI-DN-t1",
                 "-A CNI-HOSTPORT-DNAT -p udp -m multiport --dports 53 -j CNI-DN-t1",
                 "-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-t2",
                 "-A CNI-HOSTPORT-DNAT -p tcp --dport 9 -j ACCEPT"):
        n.run("iptables", "-w", "-t", "nat", *line.split())

    def saved():
        return [x for x in n.run("iptables-save", "-t", "nat").stdout.decode().splitlines()
                if x.startswith(("-A", ":CNI"))]

    def remove(entry, chains):
        with netns.entered(n.path), nlcore.NetlinkSocket(nfnetlink.NETLINK_NETFILTER) as s:
            assert [t for _h, t in nfnetlink.jumps_in(s, "ip", "nat", entry)] == \
                [line.split()[-1] for line in saved() if line.startswith(f"-A {entry} ")
                 and line.split()[-2] == "-j" and line.split()[-1].startswith("CNI-")]
            return nfnetlink.remove_chains(s, "ip", "nat", entry, chains)

    assert remove("CNI-HOSTPORT-DNAT", ["CNI-DN-t1", "CNI-SN-t1"]) is True
    assert saved() == [":CNI-DN-t2 - [0:0]", ":CNI-HOSTPORT-DNAT - [0:0]",
                       "-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-t2",
                       "-A CNI-HOSTPORT-DNAT -p tcp -m tcp --dport 9 -j ACCEPT"]
    assert remove("CNI-HOSTPORT-DNAT", ["CNI-DN-t1", "CNI-SN-t1"]) is False
    n.run("iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-j", "CNI-DN-t2")
    before = saved()
    assert remove("CNI-HOSTPORT-DNAT", ["CNI-DN-t2"]) is None
    assert saved() == before
    with netns.entered(n.path), nlcore.NetlinkSocket(nfnetlink.NETLINK_NETFILTER) as s:
        assert nfnetlink.remove_chains(s, "ip6", "nat", "POSTROUTING", ["CNI-x"]) is False
