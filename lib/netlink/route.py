"""Routes (rtmsg): RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE.

- `RouteEntry` and its builder `route_body`: `add_route` adds one
  exclusively (NLM_F_EXCL); `add_route_ecmp` adds one beside any others
  to the same destination, as the reference's RouteAddEcmp (RTM_NEWROUTE
  with NLM_F_CREATE and neither NLM_F_EXCL nor NLM_F_APPEND/REPLACE).
  The kernel then takes a second route to the same destination and
  metric via another gateway as, for IPv4, a separate route put in front
  of the first (the kernel forwards by the first one) and, for IPv6, a
  sibling of the first: one multipath route, dumped as a single
  RTM_NEWROUTE with RTA_MULTIPATH and no RTA_GATEWAY. An exact duplicate
  (same destination, metric, gateway and device) is still refused with
  EEXIST.
- `list_routes` reads routes as the kernel lists them; `list_routes_ecmp`
  expands multipath routes into one entry per next hop, so CHECK finds
  each gateway the result lists.
- Whole route messages (sbr moves a link's routes into a table of its
  own) are `pycni.netlink.route_msg`, which only sbr loads.
- `delete_prefix_route` removes the prefix route the kernel adds with an
  address ("10.1.2.0/24 dev eth0 proto kernel"): our route messages carry
  protocol "boot", which the kernel matches on delete, so this one is
  sent with protocol, type and scope left open (any), as the reference's
  RouteDel does.
- `get_route_oif`: the device the kernel routes an address through
  (`ip route get`).
"""

import struct

import _socket as socket

from ..model import dataclass
from . import (NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE,
               RtNetlink, attr, attr_u32, pack_attrs, parse_attrs)

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

# struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTMSG = struct.Struct("=BBBBBBBBI")
_RTNEXTHOP = struct.Struct("=HBBi")
RTA_DST = 1
RTA_SRC = 2
RTA_IIF = 3
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_MULTIPATH = 9
RTA_FLOW = 11
RTA_CACHEINFO = 12
RTA_TABLE = 15
RTA_VIA = 18
RTA_PREF = 20
RTA_ENCAP_TYPE = 21
RTA_ENCAP = 22
RTAX_MTU = 2
RTAX_ADVMSS = 8

RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254
TABLE_MAX = 0xFFFFFFFF
RTPROT_BOOT = 3
RTN_UNICAST = 1
RT_SCOPE_NOWHERE = 255      # on delete: any scope


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _bits(family: int) -> int:
    return 128 if family == socket.AF_INET6 else 32


def _ntop(family: int, raw: bytes | None) -> str:
    return socket.inet_ntop(family, raw) if raw else ""


def _u32(attrs: dict[int, bytes], kind: int, default=None):
    raw = attrs.get(kind)
    return struct.unpack("=I", raw[:4])[0] if raw is not None and len(raw) >= 4 else default


@dataclass
class RouteEntry:
    family: int
    dst: str            # CIDR; "0.0.0.0/0" / "::/0" for default routes
    gw: str = ""
    oif: int = 0
    table: int = RT_TABLE_MAIN
    priority: int = 0
    scope: int = RT_SCOPE_UNIVERSE
    src: str = ""


def route_body(dst: str, gw: str = "", oif: int = 0, table: int = RT_TABLE_MAIN,
                priority: int = 0, scope: int | None = None, src: str = "",
                mtu: int = 0, advmss: int = 0) -> bytes:
    """An RTM_NEWROUTE/DELROUTE body: unicast, protocol boot, scope link
    without a gateway and universe with one unless `scope` says otherwise."""
    address, _, prefix = dst.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    dst_len = int(prefix) if prefix else bits
    if scope is None:
        scope = RT_SCOPE_UNIVERSE if gw else RT_SCOPE_LINK
    body = RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else 0,
                       RTPROT_BOOT, scope, RTN_UNICAST, 0)
    metrics = pack_attrs((RTAX_MTU, mtu or None), (RTAX_ADVMSS, advmss or None))
    return body + pack_attrs(
        (RTA_DST, socket.inet_pton(family, address) if dst_len else None),
        (RTA_GATEWAY, socket.inet_pton(family, gw) if gw else None),
        (RTA_OIF, oif or None), (RTA_PRIORITY, priority or None),
        (RTA_PREFSRC, socket.inet_pton(family, src) if src else None),
        (RTA_TABLE, table if table >= 256 else None), (RTA_METRICS, metrics or None))


def add_route(nl: RtNetlink, dst: str, gw: str = "", oif: int = 0, **kw) -> None:
    """Add a route; `dst` is a CIDR ("0.0.0.0/0" for the default route)."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route_body(dst, gw, oif, **kw))


def add_route_ecmp(nl: RtNetlink, dst: str, gw: str = "", oif: int = 0, **kw) -> None:
    """Add a route beside any others to `dst` (the reference's
    RouteAddEcmp). Raises NetlinkError; EEXIST for an exact duplicate."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE, route_body(dst, gw, oif, **kw))


def list_routes(nl: RtNetlink, family: int = socket.AF_UNSPEC,
                table: int | None = RT_TABLE_MAIN) -> list[RouteEntry]:
    """Routes of `table` (every table if None)."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETROUTE, NLM_F_DUMP, body):
        if kind != RTM_NEWROUTE:
            continue
        fam, dst_len, _src_len, _tos, tbl, _proto, scope, rtype, _flags = \
            RTMSG.unpack_from(payload)
        attrs = parse_attrs(payload[RTMSG.size:])
        if RTA_TABLE in attrs:
            tbl = struct.unpack("=I", attrs[RTA_TABLE])[0]
        if table is not None and tbl != table:
            continue
        if rtype != RTN_UNICAST:
            continue
        zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        dst = socket.inet_ntop(fam, attrs[RTA_DST]) if RTA_DST in attrs else zero
        out.append(RouteEntry(
            family=fam, dst=f"{dst}/{dst_len}",
            gw=socket.inet_ntop(fam, attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else "",
            oif=struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0,
            table=tbl,
            priority=struct.unpack("=I", attrs[RTA_PRIORITY])[0]
            if RTA_PRIORITY in attrs else 0,
            scope=scope,
            src=socket.inet_ntop(fam, attrs[RTA_PREFSRC]) if RTA_PREFSRC in attrs else ""))
    return out


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
        raw = attrs.get(RTA_GATEWAY, b"")
        size = 16 if family == socket.AF_INET6 else 4
        gw = socket.inet_ntop(family, raw) if len(raw) == size else ""
        out.append((gw, ifindex))
        offset += (length + 3) & ~3
    return out


def parse_route_ecmp(payload: bytes) -> list[RouteEntry]:
    """One RTM_NEWROUTE body as RouteEntry records: one for a plain
    route, one per next hop for a multipath route; [] for a route that is
    not unicast."""
    fam, dst_len, _src_len, _tos, tbl, _proto, scope, rtype, _flags = \
        RTMSG.unpack_from(payload)
    if rtype != RTN_UNICAST or fam not in (socket.AF_INET, socket.AF_INET6):
        return []
    attrs = parse_attrs(payload[RTMSG.size:])
    if RTA_TABLE in attrs:
        (tbl,) = struct.unpack("=I", attrs[RTA_TABLE])
    zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
    dst = socket.inet_ntop(fam, attrs[RTA_DST]) if RTA_DST in attrs else zero

    def u32(kind: int) -> int:
        return struct.unpack("=I", attrs[kind])[0] if kind in attrs else 0

    src = socket.inet_ntop(fam, attrs[RTA_PREFSRC]) \
        if RTA_PREFSRC in attrs else ""
    if RTA_MULTIPATH in attrs:
        hops = parse_nexthops(fam, attrs[RTA_MULTIPATH])
    else:
        gw = socket.inet_ntop(fam, attrs[RTA_GATEWAY]) \
            if RTA_GATEWAY in attrs else ""
        hops = [(gw, u32(RTA_OIF))]
    return [RouteEntry(family=fam, dst=f"{dst}/{dst_len}", gw=gw, oif=oif,
                               table=tbl, priority=u32(RTA_PRIORITY),
                               scope=scope, src=src)
            for gw, oif in hops]


def list_routes_ecmp(nl: RtNetlink, family: int = socket.AF_UNSPEC,
                table: int | None = RT_TABLE_MAIN) -> list[RouteEntry]:
    """Unicast routes of `table` (every table if None), multipath routes
    expanded into one entry per next hop."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETROUTE, NLM_F_DUMP, body):
        if kind != RTM_NEWROUTE:
            continue
        for entry in parse_route_ecmp(payload):
            if table is None or entry.table == table:
                out.append(entry)
    return out


# --- single operations ---------------------------------------------------------

def delete_prefix_route(nl: RtNetlink, index: int, cidr: str) -> None:
    """Delete the kernel's prefix route for address `cidr` on link `index`
    (any protocol, type and scope)."""
    address, _, prefix = cidr.partition("/")
    family = family_of(address)
    body = RTMSG.pack(family, int(prefix), 0, 0, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0, 0)
    body += attr(RTA_DST, socket.inet_pton(family, address))
    body += attr_u32(RTA_OIF, index)
    nl.request(RTM_DELROUTE, 0, body)


def get_route_oif(nl: RtNetlink, ip: str) -> int:
    """The index of the device the kernel routes `ip` through (`ip route
    get IP`), 0 when its answer names none. Raises NetlinkError
    (ENETUNREACH, ...) when there is no route."""
    family = family_of(ip)
    body = RTMSG.pack(family, _bits(family), 0, 0, 0, 0, 0, 0, 0)
    body += attr(RTA_DST, socket.inet_pton(family, ip))
    for _kind, payload in nl.request(RTM_GETROUTE, 0, body):
        attrs = parse_attrs(payload[RTMSG.size:])
        if RTA_OIF in attrs:
            return struct.unpack("=I", attrs[RTA_OIF][:4])[0]
    return 0
