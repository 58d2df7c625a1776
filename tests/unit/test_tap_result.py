"""tap ADD result shape and CHECK decisions (pure, no root)."""

import pytest

from pycni.errors import CNIError
from pycni.netlink.link import Link
from pycni.plugins.tap import check, config
from pycni.result import DNS, Interface, Result, parse_result

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


def test_l2_result_is_the_tap_only():
    r = config.build_result("tap0", MAC, NETNS, None, DNS(), "1.0.0")
    assert r.to_dict() == {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "tap0", "mac": MAC, "sandbox": NETNS}]}


def test_l3_result_shape_1_0_0():
    r = config.build_result("eth0", MAC, NETNS, ipam_result(), DNS(), "1.0.0")
    assert r.to_dict() == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": MAC, "sandbox": NETNS}],
        "ips": [{"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"interface": 0, "address": "fd00::5/64"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
    }


def test_l3_result_0_3_1_and_0_1_0():
    r = config.build_result("eth0", MAC, NETNS, ipam_result(), DNS(), "0.3.1")
    assert [ip["version"] for ip in r.to_dict()["ips"]] == ["4", "6"]
    legacy = r.to_dict("0.1.0")
    assert legacy["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                             "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}
    assert legacy["ip6"] == {"ip": "fd00::5/64"}


def test_l2_result_cannot_be_a_legacy_result():
    r = config.build_result("eth0", MAC, NETNS, None, DNS(), "0.2.0")
    with pytest.raises(CNIError) as err:
        r.to_dict("0.2.0")
    assert "no valid IP addresses" in err.value.msg


def test_config_dns_wins_over_ipam_dns():
    ipam = ipam_result({"nameservers": ["10.1.0.53"]})
    r = config.build_result("eth0", MAC, NETNS, ipam, DNS(), "1.0.0")
    assert r.dns.nameservers == ["10.1.0.53"]
    mine = DNS(nameservers=["192.0.2.53"], search=["example"])
    r = config.build_result("eth0", MAC, NETNS, ipam_result({"nameservers": ["x"]}),
                            mine, "1.0.0")
    assert r.to_dict()["dns"] == {"nameservers": ["192.0.2.53"], "search": ["example"]}


def test_ipam_without_ips_is_an_error():
    empty = parse_result({"cniVersion": "1.0.0"}, "1.0.0")
    with pytest.raises(CNIError) as err:
        config.build_result("eth0", MAC, NETNS, empty, DNS(), "1.0.0")
    assert err.value.msg == "IPAM plugin returned missing IP config"


# --- CHECK decisions ------------------------------------------------------------------

def settings(**keys):
    return config.load({"cniVersion": "1.0.0", "name": "n", "type": "tap", **keys})


def tap(**kw) -> Link:
    base = dict(index=5, name="eth0", flags=1, mtu=1500, mac=MAC, kind="tun", master=0)
    base.update(kw)
    return Link(**base)


TAP_INFO = {"type": "tap", "multi_queue": False, "owner": None, "group": None}
INTF = Interface(name="eth0", mac=MAC, sandbox=NETNS)


def failure(*args) -> str:
    with pytest.raises(CNIError) as err:
        check.check_link(*args)
    assert err.value.code == 999
    return err.value.msg


def test_check_passes_on_the_tap_it_made():
    check.check_link(INTF, tap(), TAP_INFO, settings(), None)
    s = settings(mtu=1400, multiQueue=True, owner=7, group=8, bridge="br0", mac=MAC)
    check.check_link(INTF, tap(mtu=1400, master=3),
                     dict(TAP_INFO, multi_queue=True, owner=7, group=8), s,
                     Link(index=3, name="br0", flags=1, kind="bridge"))


def test_check_missing_link_and_wrong_kind():
    assert "not found" in failure(INTF, None, {}, settings(), None)
    assert "not of type tap" in failure(INTF, tap(kind="veth"), {}, settings(), None)
    assert "not of type tap" in failure(INTF, tap(), dict(TAP_INFO, type="tun"),
                                        settings(), None)


def test_check_mac_mtu_queues_owner_group_bridge():
    assert "doesn't match container Mac" in failure(
        INTF, tap(mac="02:00:00:00:00:99"), TAP_INFO, settings(), None)
    assert "MTU 1500" in failure(INTF, tap(), TAP_INFO, settings(mtu=1400), None)
    assert "multi_queue is off" in failure(INTF, tap(), TAP_INFO,
                                           settings(multiQueue=True), None)
    assert "owner is none" in failure(INTF, tap(), TAP_INFO, settings(owner=7), None)
    assert "group is 9" in failure(INTF, tap(), dict(TAP_INFO, group=9),
                                   settings(group=8), None)
    assert "bridge br0 of tap eth0 not found" in failure(
        INTF, tap(), TAP_INFO, settings(bridge="br0"), None)
    assert "not a port of bridge br0" in failure(
        INTF, tap(master=0), TAP_INFO, settings(bridge="br0"),
        Link(index=3, name="br0", flags=1, kind="bridge"))


def test_container_interface_needs_name_and_sandbox():
    prev = parse_result({"cniVersion": "1.0.0", "interfaces": [
        {"name": "eth0", "sandbox": "/run/netns/other"}]}, "1.0.0")
    with pytest.raises(CNIError) as err:
        check.container_interface(prev, "eth0", NETNS)
    assert "Sandbox in prevResult /run/netns/other doesn't match configured netns" \
        in err.value.msg
    with pytest.raises(CNIError) as err:
        check.require_prev_result(None)
    assert err.value.code == 7


def test_own_ips():
    prev = parse_result({"cniVersion": "1.0.0",
                         "interfaces": [{"name": "eth0", "sandbox": NETNS},
                                        {"name": "x", "sandbox": NETNS}],
                         "ips": [{"address": "10.0.0.2/24", "interface": 0},
                                 {"address": "10.0.1.2/24", "interface": 1},
                                 {"address": "10.0.2.2/24"}]}, "1.0.0")
    mine = check.own_ips(prev, prev.interfaces[0])
    assert [ip.address for ip in mine] == ["10.0.0.2/24", "10.0.2.2/24"]
