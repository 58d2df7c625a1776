"""Routes to one destination via several gateways (pycni.netlink.route):
the RTM_NEWROUTE the reference sends, multipath dumps expanded, and CHECK
finding every gateway."""

import socket
import struct

import pytest

from pycni import checks, netlink
from pycni.netlink import route as rtroute
from pycni.errors import CNIError
from pycni.result import Route


class Recorder:
    def __init__(self, error=None):
        self.sent = []
        self.error = error

    def request(self, msg_type, flags, body):
        self.sent.append((msg_type, flags, body))
        if self.error:
            raise self.error
        return []


def attrs_of(body: bytes) -> dict:
    return netlink.parse_attrs(body[12:])


def test_add_route_creates_beside_others_like_route_add_ecmp():
    nl = Recorder()
    rtroute.add_route_ecmp(nl, "fd88::/64", gw="fd77::fd", oif=2)
    ((msg_type, flags, body),) = nl.sent
    assert msg_type == rtroute.RTM_NEWROUTE
    # NLM_F_CREATE only: no EXCL (a second gateway is not refused), no
    # APPEND or REPLACE (the kernel's default placement, as the reference)
    assert flags == netlink.NLM_F_CREATE


def test_route_body_fields():
    body = rtroute.route_body("10.88.0.0/16", gw="10.77.0.253", oif=3, priority=7,
                                   table=300, mtu=1400, advmss=1360)
    family, dst_len, _, _, table, proto, scope, rtype, _ = struct.unpack_from("=BBBBBBBBI", body)
    assert (family, dst_len, table, proto, scope, rtype) == (
        socket.AF_INET, 16, 0, rtroute.RTPROT_BOOT, netlink.RT_SCOPE_UNIVERSE,
        rtroute.RTN_UNICAST)
    a = attrs_of(body)
    assert a[rtroute.RTA_DST] == socket.inet_pton(socket.AF_INET, "10.88.0.0")
    assert a[rtroute.RTA_GATEWAY] == socket.inet_pton(socket.AF_INET, "10.77.0.253")
    assert struct.unpack("=I", a[rtroute.RTA_OIF]) == (3,)
    assert struct.unpack("=I", a[rtroute.RTA_PRIORITY]) == (7,)
    assert struct.unpack("=I", a[rtroute.RTA_TABLE]) == (300,)
    metrics = netlink.parse_attrs(a[rtroute.RTA_METRICS])
    assert struct.unpack("=I", metrics[rtroute.RTAX_MTU]) == (1400,)
    assert struct.unpack("=I", metrics[rtroute.RTAX_ADVMSS]) == (1360,)


def test_route_body_without_gateway_is_link_scoped_and_default_has_no_dst():
    body = rtroute.route_body("::/0", oif=2)
    _, dst_len, _, _, table, _, scope, _, _ = struct.unpack_from("=BBBBBBBBI", body)
    assert (dst_len, table, scope) == (0, rtroute.RT_TABLE_MAIN, netlink.RT_SCOPE_LINK)
    assert rtroute.RTA_DST not in attrs_of(body)


def test_route_body_matches_netlinks_own_for_the_same_route():
    # the same message rtroute.add_route sends, only the flags differ
    own = getattr(rtroute, "route_body", None)
    if own is None:
        pytest.skip("netlink builds its route messages elsewhere now")
    for kw in ({"dst": "10.1.0.0/16", "gw": "10.0.0.1", "oif": 2},
               {"dst": "fd00::/8", "oif": 4, "priority": 9, "scope": 0},
               {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "table": 1000, "mtu": 1300}):
        assert rtroute.route_body(**kw) == own(**kw)


def test_add_route_passes_eexist_on():
    nl = Recorder(netlink.NetlinkError(17, "File exists"))
    with pytest.raises(netlink.NetlinkError) as exc:
        rtroute.add_route_ecmp(nl, "10.0.0.0/8", gw="10.0.0.1")
    assert exc.value.errno == 17


# --- dumps ------------------------------------------------------------------------

def rtnexthop(gw: str, ifindex: int, family=socket.AF_INET6) -> bytes:
    a = netlink.attr(rtroute.RTA_GATEWAY, socket.inet_pton(family, gw))
    return struct.pack("=HBBi", 8 + len(a), 0, 0, ifindex) + a


def newroute(dst: str, dst_len: int, family=socket.AF_INET6, gw="", oif=0,
             hops=(), priority=1024, rtype=rtroute.RTN_UNICAST, table=254) -> bytes:
    body = struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, rtroute.RTPROT_BOOT,
                       0, rtype, 0)
    body += netlink.attr(rtroute.RTA_DST, socket.inet_pton(family, dst))
    body += netlink.attr_u32(rtroute.RTA_PRIORITY, priority)
    if gw:
        body += netlink.attr(rtroute.RTA_GATEWAY, socket.inet_pton(family, gw))
    if oif:
        body += netlink.attr_u32(rtroute.RTA_OIF, oif)
    if hops:
        body += netlink.attr(rtroute.RTA_MULTIPATH,
                             b"".join(rtnexthop(g, i, family) for g, i in hops))
    return body


def test_a_multipath_route_becomes_one_entry_per_next_hop():
    entries = rtroute.parse_route_ecmp(
        newroute("fd88::", 64, hops=[("fd77::fd", 2), ("fd77::fe", 3)]))
    assert [(e.dst, e.gw, e.oif, e.priority, e.table) for e in entries] == [
        ("fd88::/64", "fd77::fd", 2, 1024, 254), ("fd88::/64", "fd77::fe", 3, 1024, 254)]


def test_a_plain_route_is_one_entry():
    (entry,) = rtroute.parse_route_ecmp(
        newroute("10.88.0.0", 16, family=socket.AF_INET, gw="10.77.0.254", oif=2, priority=0))
    assert (entry.family, entry.dst, entry.gw, entry.oif) == (
        socket.AF_INET, "10.88.0.0/16", "10.77.0.254", 2)


def test_parse_route_matches_netlinks_list_for_plain_routes():
    payload = newroute("fd00::", 8, gw="fe80::1", oif=5)

    class One:
        def request(self, *a):
            return [(rtroute.RTM_NEWROUTE, payload)]
    assert rtroute.list_routes_ecmp(One()) == rtroute.list_routes(One())


def test_non_unicast_routes_are_skipped():
    assert rtroute.parse_route_ecmp(newroute("fd00::", 8, rtype=2)) == []   # RTN_LOCAL


def test_truncated_next_hops_stop_the_parse():
    data = rtnexthop("fd77::fd", 2) + struct.pack("=HBBi", 200, 0, 0, 3)
    assert rtroute.parse_nexthops(socket.AF_INET6, data) == [("fd77::fd", 2)]


def test_list_routes_filters_by_table():
    payloads = [newroute("fd88::", 64, hops=[("fd77::fd", 2), ("fd77::fe", 2)]),
                newroute("fd99::", 64, gw="fd77::1", oif=2, table=100)]

    class Dump:
        def request(self, *a):
            return [(rtroute.RTM_NEWROUTE, p) for p in payloads]
    assert [e.gw for e in rtroute.list_routes_ecmp(Dump())] == ["fd77::fd", "fd77::fe"]
    assert [e.gw for e in rtroute.list_routes_ecmp(Dump(), table=100)] == ["fd77::1"]
    assert len(rtroute.list_routes_ecmp(Dump(), table=None)) == 3


# --- CHECK over the expanded dump ------------------------------------------------------

def test_check_finds_every_gateway_of_a_multipath_route():
    table = rtroute.parse_route_ecmp(
        newroute("fd88::", 64, hops=[("fd77::fd", 2), ("fd77::fe", 2)]))
    routes = [Route("fd88::/64", gw="fd77::fd"), Route("fd88::/64", gw="fd77::fe")]
    checks.check_routes(routes, lambda t: table)


def test_check_still_refuses_a_gateway_no_next_hop_has():
    table = rtroute.parse_route_ecmp(
        newroute("fd88::", 64, hops=[("fd77::fd", 2), ("fd77::fe", 2)]))
    with pytest.raises(CNIError) as exc:
        checks.check_routes([Route("fd88::/64", gw="fd77::fc")], lambda t: table)
    assert "fd77::fc" in exc.value.msg


def test_check_finds_separate_ipv4_routes():
    table = [e for p in (newroute("10.88.0.0", 16, socket.AF_INET, gw="10.77.0.254", oif=2),
                         newroute("10.88.0.0", 16, socket.AF_INET, gw="10.77.0.253", oif=2))
             for e in rtroute.parse_route_ecmp(p)]
    checks.check_routes([Route("10.88.0.0/16", gw="10.77.0.253"),
                         Route("10.88.0.0/16", gw="10.77.0.254")], lambda t: table)
