"""sbr's plugin layer without root: refusals come before the namespace is
touched (through skel.run, as a process would see them), DEL's early
successes, CHECK's verdict on a rule list, Go's errno texts."""

import io
import json
import socket

import pytest

from pycni import netlink_rule, skel
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

def rule(src: str, table: int, src_len: int | None = None, **kw) -> netlink_rule.Rule:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    return netlink_rule.Rule(family=family, table=table, src=src,
                             src_len=bits if src_len is None else src_len, **kw)


def ips(*addresses):
    return parse_result({"cniVersion": "1.0.0",
                         "ips": [{"address": a} for a in addresses]}, "1.0.0").ips


DEFAULT_RULES = [netlink_rule.Rule(family=2, table=255, priority=0),
                 netlink_rule.Rule(family=2, table=254, priority=32766)]


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
