"""ptp's pure decisions: the layout of an attachment, the ADD result and
CHECK (no root)."""

import pytest

from pycni.errors import CNIError
from pycni.netlink.link import Link
from pycni.netlink.route import RouteEntry
from pycni.plugins.ptp import check, config
from pycni.result import DNS, Interface, IPConfig, Result, parse_result

NETNS = "/run/netns/c1"
HOST = Interface(name="veth0a1b2c3d", mac="02:00:00:00:00:01")
CONT = Interface(name="eth0", mac="02:00:00:00:00:02", sandbox=NETNS)


def ipam_result(dns=None) -> Result:
    return parse_result({
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"address": "fd00::5/64", "gateway": "fd00::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}],
        "dns": dns or {},
    }, "1.0.0")


# --- the layout -------------------------------------------------------------------

def test_plan_dual_stack():
    p = config.plan(ipam_result().ips)
    assert p.host_addresses == ["10.1.0.1/32", "fd00::1/128"]
    assert [(r.dst, r.scope) for r in p.host_routes] == [("10.1.0.5/32", 254),
                                                         ("fd00::5/128", 254)]
    assert p.connected == ["10.1.0.0/24", "fd00::/64"]
    assert [(r.dst, r.gw, r.src, r.scope) for r in p.container_routes] == [
        ("10.1.0.1/32", "", "10.1.0.5", 253),
        ("10.1.0.0/24", "10.1.0.1", "10.1.0.5", 0),
        ("fd00::1/128", "", "fd00::5", 253),
        ("fd00::/64", "fd00::1", "fd00::5", 0)]
    assert p.families == [4, 6]


def test_plan_single_host_prefix_has_no_prefix_route():
    p = config.plan([IPConfig("10.1.0.5/32", "10.1.0.1")])
    assert p.connected == []
    assert [(r.dst, r.gw) for r in p.container_routes] == [("10.1.0.1/32", "")]


def test_plan_shared_gateway_once_on_the_host():
    p = config.plan([IPConfig("10.1.0.5/24", "10.1.0.1"), IPConfig("10.1.0.6/24", "10.1.0.1")])
    assert p.host_addresses == ["10.1.0.1/32"]
    assert [r.dst for r in p.host_routes] == ["10.1.0.5/32", "10.1.0.6/32"]


def test_plan_gateway_outside_the_subnet():
    p = config.plan([IPConfig("10.1.0.5/24", "10.9.9.9")])
    assert p.host_addresses == ["10.9.9.9/32"]
    assert [(r.dst, r.gw) for r in p.container_routes] == [("10.9.9.9/32", ""),
                                                           ("10.1.0.0/24", "10.9.9.9")]


def test_plan_needs_a_gateway():
    with pytest.raises(CNIError) as err:
        config.plan([IPConfig("10.1.0.5/24")])
    assert err.value.code == 7
    assert err.value.msg == "IPAM returned no gateway for 10.1.0.5/24"


def test_plan_refuses_a_gateway_of_the_other_family():
    with pytest.raises(CNIError) as err:
        config.plan([IPConfig("10.1.0.5/24", "fd00::1")])
    assert "another family" in err.value.msg


# --- the result -------------------------------------------------------------------

def test_result_shape_1_0_0():
    r = config.build_result("1.0.0", ipam_result(), HOST, CONT, None)
    assert r.to_dict() == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": HOST.name, "mac": HOST.mac},
                       {"name": "eth0", "mac": CONT.mac, "sandbox": NETNS}],
        "ips": [{"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"interface": 1, "address": "fd00::5/64", "gateway": "fd00::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}],
    }


def test_result_in_legacy_and_0_3_versions():
    r = config.build_result("0.2.0", ipam_result(), HOST, CONT, None)
    assert r.to_dict("0.2.0")["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                                         "routes": [{"dst": "0.0.0.0/0"}]}
    assert r.to_dict("0.3.1")["ips"][0] == {"version": "4", "interface": 1,
                                            "address": "10.1.0.5/24", "gateway": "10.1.0.1"}


def test_dns_config_replaces_ipam_dns():
    ipam_dns = {"nameservers": ["10.1.0.53"]}
    r = config.build_result("1.0.0", ipam_result(ipam_dns), HOST, CONT, None)
    assert r.dns.nameservers == ["10.1.0.53"]
    own = DNS(nameservers=["9.9.9.9"], search=["s"])
    r = config.build_result("1.0.0", ipam_result(ipam_dns), HOST, CONT, own)
    assert (r.dns.nameservers, r.dns.search) == (["9.9.9.9"], ["s"])


def test_result_needs_ips():
    with pytest.raises(CNIError) as err:
        config.build_result("1.0.0", Result(), HOST, CONT, None)
    assert err.value.msg == "IPAM plugin returned missing IP config"


# --- CHECK ------------------------------------------------------------------------

def prev() -> Result:
    return config.build_result("1.0.0", ipam_result(), HOST, CONT, None)


def veth(name, index, peer, mac) -> Link:
    return Link(index=index, name=name, flags=1, mac=mac, kind="veth", link=peer)


def test_prev_result_required():
    with pytest.raises(CNIError) as err:
        check.require_prev_result(None, check.PREV_MISSING)
    assert (err.value.code, err.value.msg) == (7, "ptp: Required prevResult missing")


def test_container_interface_by_name_and_sandbox():
    p = prev()
    assert check.container_interface(p, "eth0", NETNS) is p.interfaces[1]
    with pytest.raises(CNIError) as err:
        check.container_interface(p, "eth0", "/run/netns/other", name_other=False)
    assert err.value.msg == ("Sandbox in prevResult  doesn't match configured netns: "
                             "/run/netns/other")
    assert check.host_interface(p, p.interfaces[1]) is p.interfaces[0]
    assert [ip.address for ip in check.own_ips(p, p.interfaces[1])] == \
        ["10.1.0.5/24", "fd00::5/64"]
    assert check.own_ips(p, p.interfaces[0]) == []


@pytest.mark.parametrize("link,message", [
    (None, "ptp: Container Interface name in prevResult: eth0 not found"),
    (Link(index=2, name="eth0", flags=1, mac=CONT.mac, kind="macvlan"),
     "Error: Container interface eth0 not of type veth/p2p"),
    (veth("eth0", 2, 7, "02:00:00:00:00:99"),
     f"ptp: Interface eth0 Mac {CONT.mac} doesn't match container Mac: 02:00:00:00:00:99"),
])
def test_container_link_refusals(link, message):
    with pytest.raises(CNIError) as err:
        check.check_container_link(CONT, link)
    assert err.value.msg == message


def test_container_link_ok_and_in_host_namespace():
    check.check_container_link(CONT, veth("eth0", 2, 7, CONT.mac))
    with pytest.raises(CNIError) as err:
        check.check_container_link(Interface(name="eth0"), veth("eth0", 2, 7, CONT.mac))
    assert "should not be in host namespace" in err.value.msg


def test_host_peer():
    cont = veth("eth0", 2, 7, CONT.mac)
    check.check_host_peer(HOST, cont, veth(HOST.name, 7, 2, HOST.mac))
    check.check_host_peer(None, cont, veth(HOST.name, 7, 2, HOST.mac))
    for host in (None, veth(HOST.name, 7, 3, HOST.mac),
                 Link(index=7, name=HOST.name, flags=1, kind="bridge", link=2)):
        with pytest.raises(CNIError) as err:
            check.check_host_peer(HOST, cont, host)
        assert err.value.msg == "ptp: the host end of container interface eth0 was not found"
    with pytest.raises(CNIError) as err:
        check.check_host_peer(HOST, cont, veth("vethother0", 7, 2, HOST.mac))
    assert "is not the peer" in err.value.msg
    with pytest.raises(CNIError) as err:
        check.check_host_peer(HOST, cont, veth(HOST.name, 7, 2, "02:00:00:00:00:98"))
    assert "doesn't match host Mac" in err.value.msg


def test_host_and_container_routes():
    layout = config.plan(prev().ips)
    host_routes = [RouteEntry(family=2, dst="10.1.0.5/32", oif=7),
                   RouteEntry(family=10, dst="fd00::5/128", oif=7)]
    check.check_host_state(HOST.name, layout, ["10.1.0.1/32", "fd00::1/128",
                                               "fe80::1/64"], host_routes, 7)
    with pytest.raises(CNIError) as err:
        check.check_host_state(HOST.name, layout, ["10.1.0.1/32"], host_routes, 7)
    assert err.value.msg == f"ptp: gateway address fd00::1/128 not found on host interface {HOST.name}"
    with pytest.raises(CNIError) as err:
        check.check_host_state(HOST.name, layout, ["10.1.0.1/32", "fd00::1/128"],
                               host_routes[:1], 7)
    assert err.value.msg == f"ptp: host route to fd00::5/128 via {HOST.name} not found"
    with pytest.raises(CNIError):     # a route of another link does not count
        check.check_host_state(HOST.name, layout, ["10.1.0.1/32", "fd00::1/128"],
                               host_routes, 8)
    cont_routes = [RouteEntry(family=2, dst="10.1.0.1/32", oif=2),
                   RouteEntry(family=10, dst="fd00::1/128", oif=2)]
    check.check_container_routes("eth0", layout, cont_routes, 2)
    with pytest.raises(CNIError) as err:
        check.check_container_routes("eth0", layout, cont_routes[1:], 2)
    assert err.value.msg == "ptp: route to the gateway 10.1.0.1/32 via eth0 not found"


# --- the prefix route delete -------------------------------------------------------------

class RecordingSocket:
    def __init__(self):
        self.sent = []

    def request(self, msg_type, flags, body):
        self.sent.append((msg_type, flags, body))
        return []


@pytest.mark.parametrize("cidr,family,dst", [
    ("10.1.0.0/24", 2, bytes([10, 1, 0, 0])),
    ("fd00::/64", 10, bytes([0xfd]) + bytes(15))])
def test_prefix_route_delete_matches_any_protocol_and_scope(cidr, family, dst):
    import struct
    from pycni import netlink
    from pycni.netlink import route as rtroute
    nl = RecordingSocket()
    rtroute.delete_prefix_route(nl, 7, cidr)
    (msg_type, flags, body), = nl.sent
    assert (msg_type, flags) == (rtroute.RTM_DELROUTE, 0)
    fam, dst_len, _src_len, _tos, table, proto, scope, rtype, _f = \
        struct.unpack_from("=BBBBBBBBI", body)
    # protocol 0 and scope "nowhere" match the kernel's own route
    assert (fam, dst_len, table, proto, scope, rtype) == \
        (family, int(cidr.split("/")[1]), 254, 0, 255, 0)
    attrs = netlink.parse_attrs(body[12:])
    assert attrs[rtroute.RTA_DST] == dst
    assert struct.unpack("=I", attrs[rtroute.RTA_OIF]) == (7,)
