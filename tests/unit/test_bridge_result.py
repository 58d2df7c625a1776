"""bridge gateway decisions and result shape (pure)."""

from pycni.plugins.bridge import gateway
from pycni.plugins.bridge.plugin import dns_override
from pycni.plugins.bridge.config import load
from pycni.result import DNS, Interface, IPConfig, Result, Route


def ipam_result(*ips, routes=()) -> Result:
    return Result(cni_version="1.0.0",
                  interfaces=[Interface("br0", "aa:aa:aa:aa:aa:01"),
                              Interface("veth1", "aa:aa:aa:aa:aa:02"),
                              Interface("eth0", "aa:aa:aa:aa:aa:03", sandbox="/run/netns/x")],
                  ips=[IPConfig(a, gw) for a, gw in ips], routes=list(routes))


def test_first_host():
    assert gateway.first_host("10.1.2.77/24") == "10.1.2.1"
    assert gateway.first_host("fd00:1::99/64") == "fd00:1::1"


def test_no_gateway_mode_points_ips_at_container_only():
    r = ipam_result(("10.1.2.3/24", ""))
    gws = gateway.calc_gateways(r, False, False)
    assert r.ips[0].interface == 2 and r.ips[0].gateway == ""
    assert gws.v4 == [] and gws.v6 == [] and r.routes == []


def test_gateway_filled_in_and_collected_per_family():
    r = ipam_result(("10.1.2.3/24", ""), ("fd00::5/64", "fd00::fe"))
    gws = gateway.calc_gateways(r, True, False)
    assert [i.gateway for i in r.ips] == ["10.1.2.1", "fd00::fe"]
    assert gws.v4 == ["10.1.2.1/24"] and gws.v6 == ["fd00::fe/64"]
    assert r.routes == []


def test_default_gateway_adds_one_default_route_per_family():
    r = ipam_result(("10.1.2.3/24", ""), ("10.1.3.3/24", ""), ("fd00::5/64", ""))
    gateway.calc_gateways(r, False, True)
    assert r.routes == [Route("0.0.0.0/0", "10.1.2.1"), Route("::/0", "fd00::1")]


def test_ipam_default_route_with_gateway_wins():
    r = ipam_result(("10.1.2.3/24", ""), routes=[Route("0.0.0.0/0", "10.1.2.254")])
    gateway.calc_gateways(r, False, True)
    assert r.routes == [Route("0.0.0.0/0", "10.1.2.254")]


def test_ipam_default_route_without_gateway_does_not_count():
    r = ipam_result(("10.1.2.3/24", ""), routes=[Route("0.0.0.0/0")])
    gateway.calc_gateways(r, False, True)
    assert r.routes == [Route("0.0.0.0/0"), Route("0.0.0.0/0", "10.1.2.1")]


def test_result_shape_in_1_0_0():
    r = ipam_result(("10.1.2.3/24", ""))
    gateway.calc_gateways(r, True, True)
    assert r.to_dict("1.0.0") == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "br0", "mac": "aa:aa:aa:aa:aa:01"},
                       {"name": "veth1", "mac": "aa:aa:aa:aa:aa:02"},
                       {"name": "eth0", "mac": "aa:aa:aa:aa:aa:03", "sandbox": "/run/netns/x"}],
        "ips": [{"interface": 2, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}],
    }


def test_address_conflicts():
    assert gateway.conflicts("10.9.0.1/16", "10.1.0.1/24")          # any other v4
    assert gateway.conflicts("fd00::1/64", "fd00::2/64")            # overlapping v6
    assert gateway.conflicts("fd00::1/48", "fd00:0:0:1::1/64")
    assert not gateway.conflicts("fd01::1/64", "fd00::1/64")       # disjoint v6
    assert not gateway.conflicts("fe80::1/64", "fd00::1/64")       # link-local stays


def test_dns_override_only_when_configured():
    assert dns_override(load({"name": "n", "dns": {}}).conf) is None
    d = dns_override(load({"name": "n", "dns": {"nameservers": ["1.1.1.1"],
                                                 "search": ["a"]}}).conf)
    assert d == DNS(nameservers=["1.1.1.1"], search=["a"])


def test_global_unicast_matches_go():
    import socket
    from pycni.netlink.addr import Address
    from pycni.veth import _global_unicast

    def g(a):
        fam = socket.AF_INET6 if ":" in a else socket.AF_INET
        return _global_unicast(Address(fam, a, 24, 0, 1))
    assert g("10.1.2.3") and g("fd00::1") and g("2001:db8::1") and g("192.168.1.255")
    for a in ("0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.1", "239.1.1.1",
              "169.254.1.1", "::", "::1", "fe80::1", "febf::1", "ff02::1"):
        assert not g(a), a
