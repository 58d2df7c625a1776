"""extra-routes without root: the config model, its refusals, the result,
and DEL's leniency, all through pycni.testing (the plugin runs in-process
through skel.run, as its executable would)."""

import pytest

from pycni import testing
from pycni.result import IPConfig, Interface, Result, Route

from pycni_extra_routes import config
from pycni_extra_routes.plugin import ExtraRoutes

PREV = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.22.0.5/24", "gateway": "10.22.0.1", "interface": 1},
                {"address": "fd22::5/64", "gateway": "fd22::1", "interface": 1}]}


def conf(**kw):
    return {"cniVersion": "1.0.0", "name": "net", "type": "extra-routes",
            "prevResult": PREV, **kw}


@pytest.mark.parametrize("routes, message", [
    (None, "no routes configured"),
    ([], "no routes configured"),
    ([{"dst": "nonsense"}], "routes[0].dst 'nonsense' is not a CIDR"),
    ([{"dst": "10.9.0.0/16", "gw": "fd22::1"}], "different address families"),
    ([{"dst": "10.9.0.0/16", "gw": "10.0.0.300"}], "is not an IP address"),
    ([{"dst": "10.9.0.0/16", "priority": -1}], "priority -1 out of range"),
])
def test_refused_configs(routes, message):
    raw = conf() if routes is None else conf(routes=routes)
    out = testing.run(ExtraRoutes(), "ADD", raw, netns="/nonexistent")
    assert not out.ok
    assert out.error.code == 7
    assert message in out.error.msg


def test_wrong_json_type_is_a_decode_error():
    out = testing.run(ExtraRoutes(), "ADD", conf(routes=[{"dst": 10}]), netns="/nonexistent")
    assert out.error.code == 7
    assert "routes[0].dst" in out.error.msg


def test_must_be_chained():
    raw = conf(routes=[{"dst": "10.9.0.0/16"}])
    del raw["prevResult"]
    out = testing.run(ExtraRoutes(), "ADD", raw, netns="/nonexistent")
    assert out.error.code == 7 and "chained" in out.error.msg


def test_no_gateway_for_the_family():
    raw = conf(routes=[{"dst": "10.9.0.0/16"}])
    raw["prevResult"] = {"cniVersion": "1.0.0", "ips": [{"address": "10.22.0.5/24"}]}
    out = testing.run(ExtraRoutes(), "ADD", raw, netns="/nonexistent")
    assert out.error.code == 7 and "no gateway for 10.9.0.0/16" in out.error.msg


def test_plan_takes_the_interface_gateway_per_family():
    prev = Result(interfaces=[Interface(name="cni0"), Interface(name="eth0")],
                  ips=[IPConfig(address="10.1.0.2/24", gateway="10.1.0.9", interface=0),
                       IPConfig(address="10.22.0.5/24", gateway="10.22.0.1", interface=1),
                       IPConfig(address="fd22::5/64", gateway="fd22::1", interface=1)])
    routes = config.load(conf(routes=[{"dst": "10.9.1.1/16"}, {"dst": "fd99::/64"},
                                      {"dst": "192.168.0.0/24", "gw": "10.22.0.254",
                                       "priority": 5}]))
    assert config.plan(routes, prev, "eth0") == [
        Route(dst="10.9.0.0/16", gw="10.22.0.1"), Route(dst="fd99::/64", gw="fd22::1"),
        Route(dst="192.168.0.0/24", gw="10.22.0.254", priority=5)]


def test_result_is_prev_result_with_the_routes():
    prev = Result(ips=[IPConfig(address="10.22.0.5/24", gateway="10.22.0.1")],
                  routes=[Route(dst="0.0.0.0/0", gw="10.22.0.1")])
    out = config.build_result(prev, [Route(dst="0.0.0.0/0", gw="10.22.0.1"),
                                     Route(dst="10.9.0.0/16", gw="10.22.0.1")], "0.4.0")
    assert out.to_dict()["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"},
                                       {"dst": "10.9.0.0/16", "gw": "10.22.0.1"}]
    assert out.to_dict()["cniVersion"] == "0.4.0"


@pytest.mark.parametrize("routes", ["nonsense", [{"dst": 10}], [7, {"dst": "bad"}],
                                    [{"dst": "10.9.0.0/16", "gw": "fd00::1"}]])
def test_delete_never_fails_on_what_add_refuses(routes):
    """The runtime's DEL chain must go on to the plugins before this one."""
    raw = conf(routes=routes)
    raw["prevResult"] = "not a result"
    assert testing.run(ExtraRoutes(), "DEL", raw, netns="/nonexistent/netns").ok


def test_delete_with_the_netns_gone_succeeds():
    out = testing.run(ExtraRoutes(), "DEL", conf(routes=[{"dst": "10.9.0.0/16"}]),
                      netns="/nonexistent/netns")
    assert out.ok and out.stdout == ""


def test_version_answer():
    out = testing.run(ExtraRoutes(), "VERSION", None)
    assert out.json["supportedVersions"][-1] == "1.1.0"
