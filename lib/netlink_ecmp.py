"""Routes that share a destination: added the way the reference adds IPAM
routes, read back with their multipath next hops.

The reference (pkg/ipam ConfigureIface) adds each route with
RouteAddEcmp: RTM_NEWROUTE with NLM_F_CREATE and neither NLM_F_EXCL nor
NLM_F_APPEND/NLM_F_REPLACE. The kernel then takes a second route to the
same destination and metric via another gateway as:

- IPv4: a separate route, put in front of the first (`ip route` lists
  the later one first; the kernel forwards by the first one);
- IPv6: a sibling of the first, i.e. one multipath route (`ip -6 route`:
  `nexthop via A ... nexthop via B`), dumped as a single RTM_NEWROUTE
  with RTA_MULTIPATH and no RTA_GATEWAY.

An exact duplicate (same destination, metric, gateway and device) is
still refused with EEXIST. `list_routes` expands multipath routes into
one entry per next hop, so CHECK finds each gateway the result lists.
"""

import struct

import _socket as socket

from . import netlink
from .netlink import attr, attr_u32, parse_attrs

RTA_MULTIPATH = 9
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTNEXTHOP = struct.Struct("=HBBi")


def route_body(dst: str, gw: str = "", oif: int = 0, table: int = netlink.RT_TABLE_MAIN,
               priority: int = 0, scope: int | None = None, mtu: int = 0,
               advmss: int = 0) -> bytes:
    """An RTM_NEWROUTE body: unicast, protocol boot, scope link without a
    gateway and universe with one unless `scope` says otherwise."""
    address, _, prefix = dst.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    dst_len = int(prefix) if prefix else (128 if family == socket.AF_INET6 else 32)
    if scope is None:
        scope = netlink.RT_SCOPE_UNIVERSE if gw else netlink.RT_SCOPE_LINK
    body = _RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else 0,
                       netlink.RTPROT_BOOT, scope, netlink.RTN_UNICAST, 0)
    if dst_len:
        body += attr(netlink.RTA_DST, socket.inet_pton(family, address))
    if gw:
        body += attr(netlink.RTA_GATEWAY, socket.inet_pton(family, gw))
    if oif:
        body += attr_u32(netlink.RTA_OIF, oif)
    if priority:
        body += attr_u32(netlink.RTA_PRIORITY, priority)
    if table >= 256:
        body += attr_u32(netlink.RTA_TABLE, table)
    metrics = b""
    if mtu:
        metrics += attr_u32(netlink.RTAX_MTU, mtu)
    if advmss:
        metrics += attr_u32(netlink.RTAX_ADVMSS, advmss)
    if metrics:
        body += attr(netlink.RTA_METRICS, metrics)
    return body


def add_route(nl: netlink.RtNetlink, dst: str, gw: str = "", oif: int = 0, **kw) -> None:
    """Add a route beside any others to `dst` (the reference's
    RouteAddEcmp). Raises NetlinkError; EEXIST for an exact duplicate."""
    nl.request(netlink.RTM_NEWROUTE, netlink.NLM_F_CREATE, route_body(dst, gw, oif, **kw))


def parse_nexthops(family: int, data: bytes) -> list[tuple[str, int]]:
    """(gateway, ifindex) of each rtnexthop in an RTA_MULTIPATH payload;
    "" for a next hop without a gateway of the route's family."""
    out = []
    offset = 0
    while offset + _RTNEXTHOP.size <= len(data):
        length, _flags, _hops, ifindex = _RTNEXTHOP.unpack_from(data, offset)
        if length < _RTNEXTHOP.size or offset + length > len(data):
            break
        attrs = parse_attrs(data[offset + _RTNEXTHOP.size: offset + length])
        raw = attrs.get(netlink.RTA_GATEWAY, b"")
        size = 16 if family == socket.AF_INET6 else 4
        gw = socket.inet_ntop(family, raw) if len(raw) == size else ""
        out.append((gw, ifindex))
        offset += (length + 3) & ~3
    return out


def parse_route(payload: bytes) -> list[netlink.RouteEntry]:
    """One RTM_NEWROUTE body as RouteEntry records: one for a plain
    route, one per next hop for a multipath route; [] for a route that is
    not unicast."""
    fam, dst_len, _src_len, _tos, tbl, _proto, scope, rtype, _flags = \
        _RTMSG.unpack_from(payload)
    if rtype != netlink.RTN_UNICAST or fam not in (socket.AF_INET, socket.AF_INET6):
        return []
    attrs = parse_attrs(payload[_RTMSG.size:])
    if netlink.RTA_TABLE in attrs:
        (tbl,) = struct.unpack("=I", attrs[netlink.RTA_TABLE])
    zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
    dst = socket.inet_ntop(fam, attrs[netlink.RTA_DST]) if netlink.RTA_DST in attrs else zero

    def u32(kind: int) -> int:
        return struct.unpack("=I", attrs[kind])[0] if kind in attrs else 0

    src = socket.inet_ntop(fam, attrs[netlink.RTA_PREFSRC]) \
        if netlink.RTA_PREFSRC in attrs else ""
    if RTA_MULTIPATH in attrs:
        hops = parse_nexthops(fam, attrs[RTA_MULTIPATH])
    else:
        gw = socket.inet_ntop(fam, attrs[netlink.RTA_GATEWAY]) \
            if netlink.RTA_GATEWAY in attrs else ""
        hops = [(gw, u32(netlink.RTA_OIF))]
    return [netlink.RouteEntry(family=fam, dst=f"{dst}/{dst_len}", gw=gw, oif=oif,
                               table=tbl, priority=u32(netlink.RTA_PRIORITY),
                               scope=scope, src=src)
            for gw, oif in hops]


def list_routes(nl: netlink.RtNetlink, family: int = socket.AF_UNSPEC,
                table: int | None = netlink.RT_TABLE_MAIN) -> list[netlink.RouteEntry]:
    """Unicast routes of `table` (every table if None), multipath routes
    expanded into one entry per next hop."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(netlink.RTM_GETROUTE, netlink.NLM_F_DUMP, body):
        if kind != netlink.RTM_NEWROUTE:
            continue
        for entry in parse_route(payload):
            if table is None or entry.table == table:
                out.append(entry)
    return out
