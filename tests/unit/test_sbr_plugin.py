"""sbr's plugin layer without root: refusals come before the namespace is
touched (through skel.run, as a process would see them), DEL's early
successes, CHECK's verdict on a rule list, Go's errno texts."""

import io
import json
import socket

import pytest

from pycni import skel
from pycni.netlink import route as rtroute, rule as rtrule
from pycni.netlink import route_msg as rtroutemsg
from pycni.plugins.sbr import plugin
from pycni.result import parse_result

MISSING = "/nonexistent/pycni-sbr-unit"
ENV = {"CNI_CONTAINERID": "cid", "CNI_IFNAME": "eth0", "CNI_NETNS": MISSING,
       "CNI_PATH": "/opt/cni/bin"}
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": MISSING}],
        "ips": [{"address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 0}]}


def conf(version="1.0.0", **keys) -> dict:
    return {"cniVersion": version, "name": "sbrnet", "type": "sbr", **keys}


def run(command: str, config: dict, **env) -> tuple[int, dict | None]:
    out = io.StringIO()
    code = skel.run(plugin.SbrPlugin(), {**ENV, "CNI_COMMAND": command, **env},
                    io.BytesIO(json.dumps(config).encode()), out)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("config, message", [
    (conf(), "This plugin must be called as chained plugin"),
    (conf(prevResult={**PREV, "ips": []}), "No IP addresses supplied on interface: eth0"),
    (conf(prevResult=PREV, table=0), "invalid table 0, must be [1, 4294967295]"),
    (conf(prevResult=PREV, table="100"), None),
])
def test_refusals_come_before_the_namespace(command, config, message):
    code, err = run(command, config)
    assert code == 1
    assert err["code"] == 7, err          # not 3: the missing netns was never opened
    if message:
        assert err["msg"] == message


def test_bad_prev_result_is_a_decoding_failure():
    code, err = run("ADD", conf(prevResult={**PREV, "ips": [{"address": "10.9.0.5"}]}))
    assert (code, err["code"]) == (1, 6)


def test_add_with_a_missing_namespace_is_code_3():
    code, err = run("ADD", conf(prevResult=PREV))
    assert (code, err["code"]) == (1, 3)


@pytest.mark.parametrize("netns", ["", MISSING])
def test_del_succeeds_without_namespace_whatever_the_config(netns):
    bad = conf(table="not a number", prevResult={"ips": "garbage"})
    assert run("DEL", bad, CNI_NETNS=netns) == (0, None)
    assert run("DEL", conf(), CNI_NETNS=netns) == (0, None)


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_have_nothing_to_do(command):
    assert run(command, conf("1.1.0")) == (0, None)


def test_supports_every_version():
    assert plugin.SbrPlugin.supported_versions == \
        ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


# --- CHECK's verdict -------------------------------------------------------------

def rule(src: str, table: int, src_len: int | None = None, **kw) -> rtrule.Rule:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    return rtrule.Rule(family=family, table=table, src=src,
                             src_len=bits if src_len is None else src_len, **kw)


def ips(*addresses):
    return parse_result({"cniVersion": "1.0.0",
                         "ips": [{"address": a} for a in addresses]}, "1.0.0").ips


DEFAULT_RULES = [rtrule.Rule(family=2, table=255, priority=0),
                 rtrule.Rule(family=2, table=254, priority=32766)]


def test_check_finds_every_rule():
    rules = DEFAULT_RULES + [rule("10.9.0.5", 100), rule("fd09::5", 101)]
    assert plugin.missing_rules(rules, ips("10.9.0.5/24", "fd09::5/64"), None) == []


def test_check_names_the_addresses_without_a_rule():
    rules = DEFAULT_RULES + [rule("10.9.0.5", 100)]
    assert plugin.missing_rules(rules, ips("10.9.0.5/24", "10.9.0.6/24"), None) == ["10.9.0.6"]


def test_check_with_table_wants_that_table():
    rules = [rule("10.9.0.5", 100)]
    assert plugin.missing_rules(rules, ips("10.9.0.5/24"), 100) == []
    assert plugin.missing_rules(rules, ips("10.9.0.5/24"), 200) == ["10.9.0.5"]


@pytest.mark.parametrize("other", [
    rule("10.9.0.5", 100, src_len=24),                 # a subnet rule, not ours
    rule("10.9.0.5", 100, dst="10.1.0.0", dst_len=16),  # only to some destinations
    rule("10.9.0.5", 100, action=2),                   # goto, not lookup
])
def test_check_ignores_rules_that_are_not_the_source_rule(other):
    assert plugin.missing_rules([other], ips("10.9.0.5/24"), None) == ["10.9.0.5"]


@pytest.mark.parametrize("errno, text", [(17, "file exists"), (3, "no such process"),
                                         (101, "network is unreachable")])
def test_errors_read_as_go_prints_them(errno, text):
    import os
    assert plugin.go_error(OSError(errno, os.strerror(errno))) == text


def test_check_compares_addresses_not_their_spelling():
    assert plugin.missing_rules([rule("fd09::5", 100)], ips("fd09:0:0::5/64"), None) == []
    assert plugin.same_address("10.9.0.1", "10.9.0.1")
    assert not plugin.same_address("", "")
    assert not plugin.same_address("10.9.0.1", "fd09::1")


def route(table: int, gw: str, oif: int = 2, dst_len: int = 0) -> rtroutemsg.RouteMsg:
    r = rtroutemsg.default_route(gw, oif, table)
    r.dst_len = dst_len
    return r


def gw_ips():
    return parse_result({"cniVersion": "1.0.0", "ips": [
        {"address": "10.9.0.5/24", "gateway": "10.9.0.1"}, {"address": "10.9.0.6/24"},
        {"address": "fd09::5/64", "gateway": "fd09:0::1"}]}, "1.0.0").ips


def test_check_finds_the_default_route_of_each_gateway():
    rules = [rule("10.9.0.5", 100), rule("10.9.0.6", 101), rule("fd09::5", 102)]
    routes = [route(100, "10.9.0.1"), route(102, "fd09::1")]
    assert plugin.missing_gateways(rules, routes, gw_ips(), 2) == []


@pytest.mark.parametrize("routes", [
    [route(102, "fd09::1")],                              # gone
    [route(101, "10.9.0.1"), route(102, "fd09::1")],      # in another address's table
    [route(100, "10.9.0.1", oif=3), route(102, "fd09::1")],   # on another interface
    [route(100, "10.9.0.1", dst_len=8), route(102, "fd09::1")],   # not the default
])
def test_check_notices_a_missing_default_route(routes):
    rules = [rule("10.9.0.5", 100), rule("10.9.0.6", 101), rule("fd09::5", 102)]
    assert plugin.missing_gateways(rules, routes, gw_ips(), 2) == ["10.9.0.1 (for 10.9.0.5)"]


# --- ADD's rollback --------------------------------------------------------------

def test_rollback_deletes_rules_empties_the_tables_and_restores_device_routes_first(
        monkeypatch):
    calls = []
    main = [rtroutemsg.parse_route_msg(rtroutemsg.route_message(r, 254)) for r in (
        rtroutemsg.default_route("10.9.0.1", 2, 254),
        rtroutemsg.RouteMsg(family=socket.AF_INET, dst_len=24, src_len=0, tos=0, table=254,
                              protocol=2, scope=253, type=1, flags=0,
                              attrs={rtroute.RTA_DST: socket.inet_aton("10.9.0.0"),
                                     rtroute.RTA_OIF: (2).to_bytes(4, "little")}))]
    in_tables = [route(100, "10.9.0.1"), route(101, "10.9.0.1"), route(300, "10.9.0.1")]
    monkeypatch.setattr(rtrule, "delete_rule_like",
                        lambda nl, src, table: calls.append(("del rule", src, table)))
    monkeypatch.setattr(rtroutemsg, "list_route_msgs", lambda nl: in_tables)
    monkeypatch.setattr(rtroutemsg, "delete_route_msg",
                        lambda nl, r: calls.append(("del route", r.table)))

    def add_route(nl, r, table):
        calls.append(("add route", r.dst, table))
        if r.gw:
            raise OSError(101, "Network is unreachable")   # logged, the rest goes on
    monkeypatch.setattr(rtroutemsg, "add_route_msg", add_route)
    undo = plugin._Undo(object())
    undo.rules = [("10.9.0.5", 100), ("10.9.0.6", 101)]
    undo.tables = [100, 101]
    undo.removed = main
    undo.run()
    assert calls == [("del rule", "10.9.0.6", 101), ("del rule", "10.9.0.5", 100),
                     ("del route", 100), ("del route", 101),
                     ("add route", "10.9.0.0/24", 254), ("add route", "0.0.0.0/0", 254)]
