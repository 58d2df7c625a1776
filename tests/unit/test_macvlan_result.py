"""macvlan ADD result shape and CHECK decisions (pure, no root)."""

import pytest

from pycni import checks as shared_checks
from pycni.errors import CNIError
from pycni.netlink.link import Link
from pycni.netlink.route import RouteEntry
from pycni.plugins.macvlan import check, config
from pycni.result import DNS, IPConfig, Result, Route, parse_result

NETNS = "/run/netns/c1"
MAC = "02:11:22:33:44:55"


def ipam_result(dns=None) -> Result:
    return parse_result({
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"address": "fd00::5/64"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": dns or {},
    }, "1.0.0")


def test_l3_result_shape_1_0_0():
    r = config.build_result("eth0", MAC, NETNS, ipam_result(), DNS(), "1.0.0")
    assert r.to_dict() == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": MAC, "sandbox": NETNS}],
        "ips": [{"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"interface": 0, "address": "fd00::5/64"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
    }


def test_l3_result_shape_0_3_1_has_versions_and_dns():
    r = config.build_result("eth0", MAC, NETNS, ipam_result(), DNS(), "0.3.1")
    out = r.to_dict()
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert out["dns"] == {}


def test_l2_result_has_only_the_interface():
    r = config.build_result("net1", MAC, NETNS, None, DNS(), "1.1.0")
    assert r.to_dict() == {"cniVersion": "1.1.0",
                           "interfaces": [{"name": "net1", "mac": MAC, "sandbox": NETNS}]}


def test_l2_result_cannot_be_expressed_in_0_2_0():
    r = config.build_result("net1", MAC, NETNS, None, DNS(), "0.2.0")
    with pytest.raises(CNIError, match="no valid IP addresses"):
        r.to_dict()


def test_ipam_dns_is_kept_unless_the_config_sets_dns():
    ipam_dns = {"nameservers": ["10.1.0.53"], "search": ["lan"]}
    r = config.build_result("eth0", MAC, NETNS, ipam_result(ipam_dns), DNS(), "1.0.0")
    assert r.to_dict()["dns"] == ipam_dns
    own = DNS(nameservers=["192.0.2.53"])
    r = config.build_result("eth0", MAC, NETNS, ipam_result(ipam_dns), own, "1.0.0")
    assert r.to_dict()["dns"] == {"nameservers": ["192.0.2.53"]}


def test_ipam_without_ips_is_an_error():
    empty = parse_result({"cniVersion": "1.0.0"}, "1.0.0")
    with pytest.raises(CNIError, match="IPAM plugin returned missing IP config"):
        config.build_result("eth0", MAC, NETNS, empty, DNS(), "1.0.0")


# --- CHECK ----------------------------------------------------------------------

def prev() -> Result:
    return config.build_result("eth0", MAC, NETNS, ipam_result(), DNS(), "1.0.0")


def link(**kw) -> Link:
    base = dict(index=2, name="eth0", flags=1, mac=MAC, kind="macvlan", link=7)
    base.update(kw)
    return Link(**base)


def test_container_interface_found_by_name_and_sandbox():
    assert check.container_interface(prev(), "eth0", NETNS).mac == MAC
    with pytest.raises(CNIError, match=f"sandbox in prevResult {NETNS} doesn't match"):
        check.container_interface(prev(), "eth0", "/run/netns/other", check.SANDBOX_MISMATCH)
    with pytest.raises(CNIError, match="doesn't match configured netns"):
        check.container_interface(prev(), "eth1", NETNS)


def test_check_link_accepts_the_created_link():
    intf = prev().interfaces[0]
    check.check_link(intf, link(), "bridge", "bridge", 7)


@pytest.mark.parametrize("found, mode, master, message", [
    (None, "bridge", 7, "not found"),
    (link(kind="veth"), "bridge", 7, "not of type macvlan"),
    (link(), "private", 7, "mode private does not match expected value: bridge"),
    (link(mac="02:00:00:00:00:09"), "bridge", 7, "doesn't match container Mac"),
    (link(), "bridge", 8, "not attached to the configured master"),
])
def test_check_link_failures(found, mode, master, message):
    with pytest.raises(CNIError, match=message):
        check.check_link(prev().interfaces[0], found, mode, "bridge", master)


def test_check_addresses():
    ips = prev().ips
    on_link = ["10.1.0.5/24", "fd00:0:0::5/64", "fe80::1/64"]
    routes = ["10.1.0.0/24", "fd00::/64", "0.0.0.0/0"]
    shared_checks.check_addresses("eth0", ips, on_link, routes)
    with pytest.raises(CNIError, match="Failed to match addr 10.1.0.5/24"):
        shared_checks.check_addresses("eth0", ips, ["10.1.0.5/16", "fd00::5/64"], routes)
    with pytest.raises(CNIError, match="Failed to find Gateway"):
        shared_checks.check_addresses("eth0", ips, on_link, ["fd00::/64"])


def entry(dst, gw=""):
    return RouteEntry(family=10 if ":" in dst else 2, dst=dst, gw=gw)


def test_route_matching():
    table = [entry("0.0.0.0/0", "10.1.0.254"), entry("192.0.2.0/24", "10.1.0.1"),
             entry("10.1.0.0/24")]
    # A default route matches any default route of the family, as in the reference.
    assert shared_checks.route_present(Route(dst="0.0.0.0/0", gw="10.1.0.1"), table)
    assert not shared_checks.route_present(Route(dst="::/0"), table)
    assert shared_checks.route_present(Route(dst="192.0.2.0/24", gw="10.1.0.1"), table)
    assert shared_checks.route_present(Route(dst="192.0.2.0/24"), table)
    assert not shared_checks.route_present(Route(dst="192.0.2.0/24", gw="10.1.0.2"), table)
    assert not shared_checks.route_present(Route(dst="198.51.100.0/24"), table)
    with pytest.raises(CNIError, match=r"Expected Route \{Dst:198.51.100.0/24 GW:10.1.0.1\}"):
        shared_checks.check_routes([Route(dst="198.51.100.0/24", gw="10.1.0.1")], lambda t: table)


def test_own_ips_skip_other_interfaces():
    r = prev()
    r.interfaces.append(type(r.interfaces[0])(name="lo", sandbox=NETNS))
    r.ips.append(IPConfig(address="127.0.0.2/8", interface=1))
    assert [ip.address for ip in check.own_ips(r, r.interfaces[0])] == \
        ["10.1.0.5/24", "fd00::5/64"]


def test_prev_result_required():
    with pytest.raises(CNIError, match="required prevResult missing"):
        check.require_prev_result(None, check.PREV_MISSING)
