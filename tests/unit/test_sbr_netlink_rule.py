"""pycni.netlink.rule's messages and pycni.netlink.route's whole route
messages, decoded field by field with pyroute2's message classes (the
oracle), and ours parsing what pyroute2 encodes."""

import socket
import struct

import pytest
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from pycni import netlink
from pycni.netlink import route as rtroute, rule as rtrule
from pycni.netlink import route_msg as rtroutemsg

NLMSGHDR = struct.Struct("=IHHII")


def decoded(cls, msg_type: int, body: bytes):
    msg = cls(NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, 5, 1, 0) + body)
    msg.decode()
    return msg


def attrs(msg) -> list[tuple]:
    """(name, value) of every attribute, in order."""
    return [(a[0], a[1]) for a in msg["attrs"]]


def encoded_body(msg) -> bytes:
    msg.encode()
    return bytes(msg.data[NLMSGHDR.size:msg["header"]["length"]])


# --- rules -----------------------------------------------------------------------

@pytest.mark.parametrize("src, family, bits", [("10.9.0.5", socket.AF_INET, 32),
                                               ("fd09::5", socket.AF_INET6, 128)])
def test_rule_message_is_from_host_address_lookup_table(src, family, bits):
    msg = decoded(fibmsg, rtrule.RTM_NEWRULE, rtrule.rule_message(src, 100))
    assert msg["family"] == family
    assert msg["src_len"] == bits
    assert msg["dst_len"] == 0
    assert msg["tos"] == 0
    assert msg["table"] == 100
    assert (msg["res1"], msg["res2"]) == (0, 0)
    assert msg["action"] == rtrule.FR_ACT_TO_TBL
    assert msg["flags"] == 0
    assert attrs(msg) == [("FRA_SRC", src), ("FRA_TABLE", 100)]


def test_rule_message_large_table_only_in_the_attribute():
    msg = decoded(fibmsg, rtrule.RTM_NEWRULE, rtrule.rule_message("10.9.0.5", 70000))
    assert msg["table"] == rtroute.RT_TABLE_UNSPEC
    assert msg.get_attr("FRA_TABLE") == 70000


def test_rule_message_with_priority_and_prefix():
    msg = decoded(fibmsg, rtrule.RTM_DELRULE,
                  rtrule.rule_message("10.9.0.0", 4294967295, src_len=24, priority=32765))
    assert msg["src_len"] == 24
    assert msg.get_attr("FRA_PRIORITY") == 32765
    assert msg.get_attr("FRA_TABLE") == 4294967295
    assert [name for name, _ in msg["attrs"]] == ["FRA_SRC", "FRA_PRIORITY", "FRA_TABLE"]


@pytest.mark.parametrize("table", [0, -1, 1 << 32])
def test_rule_message_refuses_tables_out_of_range(table):
    with pytest.raises(ValueError):
        rtrule.rule_message("10.9.0.5", table)


def test_parse_rule_reads_what_pyroute2_encodes():
    msg = fibmsg()
    msg["family"] = socket.AF_INET6
    msg["src_len"] = 128
    msg["table"] = 0
    msg["action"] = rtrule.FR_ACT_TO_TBL
    msg["attrs"] = [("FRA_SRC", "fd09::5"), ("FRA_PRIORITY", 32765), ("FRA_TABLE", 300),
                    ("FRA_IIFNAME", "eth1")]
    body = encoded_body(msg)
    rule = rtrule.parse_rule(body)
    assert (rule.family, rule.src, rule.src_len, rule.table, rule.priority) == \
        (socket.AF_INET6, "fd09::5", 128, 300, 32765)
    assert (rule.dst, rule.dst_len, rule.iifname, rule.oifname) == ("", 0, "eth1", "")
    assert rule.action == rtrule.FR_ACT_TO_TBL
    assert rule.message == body      # DEL sends exactly this back


def test_parse_rule_without_attributes_is_from_all():
    msg = fibmsg()
    msg["family"] = socket.AF_INET
    msg["table"] = 254
    msg["action"] = rtrule.FR_ACT_TO_TBL
    msg["attrs"] = [("FRA_PRIORITY", 32766)]
    rule = rtrule.parse_rule(encoded_body(msg))
    assert (rule.src, rule.table, rule.priority) == ("", 254, 32766)


# --- routes ----------------------------------------------------------------------

def kernel_route(family=socket.AF_INET, **attrs) -> bytes:
    """A route as the kernel dumps it (encoded by pyroute2)."""
    msg = rtmsg()
    msg["family"] = family
    msg["dst_len"] = attrs.pop("dst_len", 24)
    msg["table"] = 254
    msg["proto"] = attrs.pop("proto", 2)
    msg["scope"] = attrs.pop("scope", 253)
    msg["type"] = 1
    msg["flags"] = attrs.pop("flags", 0)
    msg["attrs"] = list(attrs.pop("attrs"))
    return encoded_body(msg)


def test_parse_route_and_its_copy_into_another_table():
    body = kernel_route(flags=0x10, attrs=[   # RTNH_F_LINKDOWN as dumped
        ("RTA_TABLE", 254), ("RTA_DST", "10.9.0.0"), ("RTA_OIF", 2),
        ("RTA_PREFSRC", "10.9.0.5"), ("RTA_PRIORITY", 5),
        ("RTA_CACHEINFO", {"rta_clntref": 0, "rta_lastuse": 0, "rta_expires": 0,
                           "rta_error": 0, "rta_used": 0, "rta_id": 0, "rta_ts": 0,
                           "rta_tsage": 0})])
    route = rtroutemsg.parse_route_msg(body)
    assert (route.dst, route.oif, route.prefsrc, route.gw, route.table, route.priority) == \
        ("10.9.0.0/24", 2, "10.9.0.5", "", 254, 5)
    msg = decoded(rtmsg, rtroute.RTM_NEWROUTE, rtroutemsg.route_message(route, 100))
    assert (msg["family"], msg["dst_len"], msg["src_len"], msg["tos"]) == (socket.AF_INET, 24, 0, 0)
    assert msg["table"] == 100
    assert (msg["proto"], msg["scope"], msg["type"]) == (2, 253, 1)
    assert msg["flags"] == 0       # linkdown cleared: the kernel refuses it
    assert attrs(msg) == [("RTA_DST", "10.9.0.0"), ("RTA_OIF", 2), ("RTA_PRIORITY", 5),
                            ("RTA_PREFSRC", "10.9.0.5"), ("RTA_TABLE", 100)]


def test_route_copy_keeps_metrics_and_preference_drops_kernel_only_attributes():
    body = kernel_route(socket.AF_INET6, dst_len=0, proto=3, scope=0, attrs=[
        ("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fd09::1"),
        ("RTA_OIF", 7), ("RTA_METRICS", {"attrs": [("RTAX_MTU", 1400)]}),
        ("RTA_PREF", 0), ("RTA_EXPIRES", "00:00:01:2c")])
    route = rtroutemsg.parse_route_msg(body)
    assert (route.dst, route.gw, route.oif) == ("::/0", "fd09::1", 7)
    msg = decoded(rtmsg, rtroute.RTM_NEWROUTE, rtroutemsg.route_message(route, 70000))
    assert msg["table"] == rtroute.RT_TABLE_UNSPEC and msg.get_attr("RTA_TABLE") == 70000
    assert [name for name, _ in msg["attrs"]] == [
        "RTA_GATEWAY", "RTA_OIF", "RTA_PRIORITY", "RTA_METRICS", "RTA_PREF", "RTA_TABLE"]
    assert msg.get_attr("RTA_METRICS").get_attr("RTAX_MTU") == 1400
    assert msg.get_attr("RTA_GATEWAY") == "fd09::1"


def test_delete_route_message_names_its_own_table():
    route = rtroutemsg.parse_route_msg(kernel_route(attrs=[("RTA_TABLE", 254), ("RTA_DST", "10.9.0.0"),
                                               ("RTA_OIF", 2)]))
    msg = decoded(rtmsg, rtroute.RTM_DELROUTE, rtroutemsg.route_message(route, route.table))
    assert msg["table"] == 254 and msg.get_attr("RTA_TABLE") == 254


@pytest.mark.parametrize("gw, family", [("10.9.0.1", socket.AF_INET),
                                        ("fd09::1", socket.AF_INET6)])
def test_default_route_via_gateway_in_table(gw, family):
    msg = decoded(rtmsg, rtroute.RTM_NEWROUTE, rtroutemsg.route_message(rtroutemsg.default_route(gw, 4, 101), 101))
    assert (msg["family"], msg["dst_len"], msg["src_len"]) == (family, 0, 0)
    assert (msg["table"], msg["proto"], msg["scope"], msg["type"], msg["flags"]) == \
        (101, rtroute.RTPROT_BOOT, netlink.RT_SCOPE_UNIVERSE, rtroute.RTN_UNICAST, 0)
    assert attrs(msg) == [("RTA_GATEWAY", gw), ("RTA_OIF", 4), ("RTA_TABLE", 101)]
