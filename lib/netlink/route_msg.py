"""Whole route messages (rtmsg, beside `route`): sbr moves a link's routes
into a table of its own.

`list_route_msgs` dumps every table and keeps each route's attributes
(`RouteMsg`); `route_message` rebuilds one for another table with the
attributes that define the route (destination, gateway, device, metric,
preferred source, metrics, multipath, preference) and nothing the kernel
only reports (cache info, expiry, the nexthop object id). Only sbr needs
these, so they live apart from `route`, which every plugin that sets
routes loads.
"""

import struct

import _socket as socket

from ..model import dataclass, field
from . import (NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, RT_SCOPE_UNIVERSE,
               RtNetlink, attr, attr_u32, parse_attrs)
from .route import (RTA_DST, RTA_ENCAP, RTA_ENCAP_TYPE, RTA_FLOW, RTA_GATEWAY, RTA_METRICS,
                    RTA_MULTIPATH, RTA_OIF, RTA_PREF, RTA_PREFSRC, RTA_PRIORITY, RTA_SRC,
                    RTA_TABLE, RTA_VIA, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE, RTMSG,
                    RT_TABLE_UNSPEC, RTN_UNICAST, RTPROT_BOOT, _ntop, _u32, family_of)

# What defines a route and may be sent back to the kernel, in this order.
ROUTE_ATTRS = (RTA_DST, RTA_SRC, RTA_GATEWAY, RTA_VIA, RTA_OIF, RTA_PRIORITY,
               RTA_PREFSRC, RTA_METRICS, RTA_MULTIPATH, RTA_FLOW, RTA_PREF,
               RTA_ENCAP_TYPE, RTA_ENCAP)
RTM_F_CLONED = 0x200


@dataclass
class RouteMsg:
    """One dumped route with its attributes (type -> payload)."""
    family: int
    dst_len: int
    src_len: int
    tos: int
    table: int
    protocol: int
    scope: int
    type: int
    flags: int
    attrs: dict[int, bytes] = field(default_factory=dict)

    @property
    def dst(self) -> str:
        """The destination as CIDR ("0.0.0.0/0", "::/0" for default)."""
        zero = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        return f"{_ntop(self.family, self.attrs.get(RTA_DST)) or zero}/{self.dst_len}"

    @property
    def gw(self) -> str:
        return _ntop(self.family, self.attrs.get(RTA_GATEWAY))

    @property
    def prefsrc(self) -> str:
        return _ntop(self.family, self.attrs.get(RTA_PREFSRC))

    @property
    def oif(self) -> int:
        return _u32(self.attrs, RTA_OIF, 0)

    @property
    def priority(self) -> int:
        return _u32(self.attrs, RTA_PRIORITY, 0)


def parse_route_msg(body: bytes) -> RouteMsg:
    family, dst_len, src_len, tos, table, protocol, scope, rtype, flags = \
        RTMSG.unpack_from(body)
    attrs = parse_attrs(body[RTMSG.size:])
    return RouteMsg(family=family, dst_len=dst_len, src_len=src_len, tos=tos,
                    table=_u32(attrs, RTA_TABLE, table), protocol=protocol, scope=scope,
                    type=rtype, flags=flags, attrs=attrs)


def list_route_msgs(nl: RtNetlink, family: int = socket.AF_UNSPEC) -> list[RouteMsg]:
    """Every route of every table (no cached clones), in dump order."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETROUTE, NLM_F_DUMP, body):
        if kind != RTM_NEWROUTE:
            continue
        route = parse_route_msg(payload)
        if route.flags & RTM_F_CLONED:
            continue
        out.append(route)
    return out


def route_message(route: RouteMsg, table: int) -> bytes:
    """The route as an RTM_NEWROUTE/DELROUTE body in `table`: header
    flags cleared (a flag the kernel set, such as linkdown, would make it
    refuse the route), only the attributes in ROUTE_ATTRS, the table in
    RTA_TABLE and, when it fits, the header."""
    header = RTMSG.pack(route.family, route.dst_len, route.src_len, route.tos,
                        table if table < 256 else RT_TABLE_UNSPEC, route.protocol,
                        route.scope, route.type, 0)
    body = header
    for kind in ROUTE_ATTRS:
        if kind in route.attrs:
            body += attr(kind, route.attrs[kind])   # nested ones as dumped
    return body + attr_u32(RTA_TABLE, table)


def default_route(gateway: str, oif: int, table: int) -> RouteMsg:
    """`default via GATEWAY dev OIF table TABLE` (protocol boot, scope
    universe, as `ip route add` makes it)."""
    family = family_of(gateway)
    return RouteMsg(family=family, dst_len=0, src_len=0, tos=0, table=table,
                    protocol=RTPROT_BOOT, scope=RT_SCOPE_UNIVERSE, type=RTN_UNICAST, flags=0,
                    attrs={RTA_GATEWAY: socket.inet_pton(family, gateway),
                           RTA_OIF: struct.pack("=I", oif)})


def add_route_msg(nl: RtNetlink, route: RouteMsg, table: int) -> None:
    """Add `route` to `table`; EEXIST if it is there already."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route_message(route, table))


def replace_route_msg(nl: RtNetlink, route: RouteMsg, table: int) -> None:
    """Add `route` to `table`, replacing an equal one (`ip route replace`)."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route_message(route, table))


def delete_route_msg(nl: RtNetlink, route: RouteMsg) -> None:
    """Delete `route` from its own table."""
    nl.request(RTM_DELROUTE, 0, route_message(route, route.table))
