import pytest

from pycni.errors import CNIError
from pycni.ipconfig import plan_iface
from pycni.result import Interface, IPConfig, Result, Route


def result(**kw):
    return Result(interfaces=[Interface("br0"), Interface("veth1"),
                              Interface("eth0", sandbox="/run/netns/x")], **kw)


def test_addresses_for_the_named_interface_only_and_gateway_defaults():
    r = result(ips=[IPConfig("10.0.0.5/24", "10.0.0.1", interface=2),
                    IPConfig("10.9.0.1/24", interface=0),
                    IPConfig("fd00::5/64", "fd00::1", interface=2)],
               routes=[Route("0.0.0.0/0"), Route("::/0"), Route("192.0.2.0/24", gw="10.0.0.9")])
    plan = plan_iface(r, "eth0")
    assert plan.addresses == ["10.0.0.5/24", "fd00::5/64"]
    assert plan.has_ipv6
    assert [(p.dst, p.gw) for p in plan.routes] == [
        ("0.0.0.0/0", "10.0.0.1"), ("::/0", "fd00::1"), ("192.0.2.0/24", "10.0.0.9")]


def test_ips_without_interface_index_apply():
    plan = plan_iface(Result(ips=[IPConfig("10.0.0.5/24")]), "eth0")
    assert plan.addresses == ["10.0.0.5/24"] and not plan.has_ipv6


def test_bad_interface_index_is_an_error():
    with pytest.raises(CNIError):
        plan_iface(result(ips=[IPConfig("10.0.0.5/24", interface=7)]), "eth0")
