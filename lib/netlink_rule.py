"""Routing-policy rules and whole route messages, on pycni.netlink's core.

Rules (`ip rule`): RTM_NEWRULE / RTM_DELRULE / RTM_GETRULE, a
`struct fib_rule_hdr` followed by FRA_* attributes. A dumped rule keeps
its message, so that deleting it sends back exactly what the kernel
listed (as `ip rule flush` does) and removes that rule, not another one
that merely shares its source.

Routes in other tables (sbr moves a link's routes into a table of its
own): `list_routes` dumps every table and keeps each route's attributes,
`route_message` rebuilds one for another table with the attributes that
define the route (destination, gateway, device, metric, preferred source,
metrics, multipath, preference) and nothing the kernel only reports
(cache info, expiry, the nexthop object id).

Builders are pure functions (tests decode them with pyroute2's message
classes); the rest sends them over an `RtNetlink` socket, which must be
created in the namespace to act on.
"""

import struct

import _socket as socket

from .model import dataclass, field
from .netlink import (NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
                      RtNetlink, attr, attr_u32, parse_attrs)

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34

# struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2,
# action, flags (the same layout as struct rtmsg)
FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_GOTO = 4
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_FLOW = 11
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_PROTOCOL = 21
FR_ACT_TO_TBL = 1

# struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTMSG = struct.Struct("=BBBBBBBBI")
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
# What defines a route and may be sent back to the kernel, in this order.
ROUTE_ATTRS = (RTA_DST, RTA_SRC, RTA_GATEWAY, RTA_VIA, RTA_OIF, RTA_PRIORITY,
               RTA_PREFSRC, RTA_METRICS, RTA_MULTIPATH, RTA_FLOW, RTA_PREF,
               RTA_ENCAP_TYPE, RTA_ENCAP)

RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1
RTM_F_CLONED = 0x200
TABLE_MAX = 0xFFFFFFFF



def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _bits(family: int) -> int:
    return 128 if family == socket.AF_INET6 else 32


def _ntop(family: int, raw: bytes | None) -> str:
    return socket.inet_ntop(family, raw) if raw else ""


def _u32(attrs: dict[int, bytes], kind: int, default=None):
    raw = attrs.get(kind)
    return struct.unpack("=I", raw[:4])[0] if raw is not None and len(raw) >= 4 else default


# --- rules -----------------------------------------------------------------------

@dataclass
class Rule:
    """One dumped routing-policy rule. `src`/`dst` are addresses ("" for
    any), `priority` None when the kernel listed none."""
    family: int
    table: int
    src: str = ""
    src_len: int = 0
    dst: str = ""
    dst_len: int = 0
    priority: int | None = None
    action: int = FR_ACT_TO_TBL
    iifname: str = ""
    oifname: str = ""
    message: bytes = b""    # header + attributes as dumped


def rule_message(src: str, table: int, src_len: int | None = None,
                 priority: int | None = None) -> bytes:
    """RTM_NEWRULE/DELRULE body: `from src/src_len lookup table` (a host
    prefix unless told otherwise). The table goes in FRA_TABLE (all 32
    bits) and, when it fits, in the header too, as iproute2 sends it.
    Without a priority the kernel picks one just above the first rule
    after `local` (32765, 32764, ... for successive rules)."""
    if not 0 < table <= TABLE_MAX:
        raise ValueError(f"routing table {table} out of range")
    family = family_of(src)
    if src_len is None:
        src_len = _bits(family)
    header = FIB_RULE_HDR.pack(family, 0, src_len, 0, table if table < 256 else RT_TABLE_UNSPEC,
                               0, 0, FR_ACT_TO_TBL, 0)
    body = header + attr(FRA_SRC, socket.inet_pton(family, src))
    if priority is not None:
        body += attr_u32(FRA_PRIORITY, priority)
    return body + attr_u32(FRA_TABLE, table)


def parse_rule(body: bytes) -> Rule:
    family, dst_len, src_len, _tos, table, _r1, _r2, action, _flags = \
        FIB_RULE_HDR.unpack_from(body)
    attrs = parse_attrs(body[FIB_RULE_HDR.size:])
    table = _u32(attrs, FRA_TABLE, table)
    ip_family = family if family in (socket.AF_INET, socket.AF_INET6) else 0

    def name(kind: int) -> str:
        return attrs[kind].split(b"\0", 1)[0].decode(errors="replace") if kind in attrs else ""

    return Rule(family=family, table=table,
                src=_ntop(ip_family, attrs.get(FRA_SRC)) if ip_family else "",
                src_len=src_len,
                dst=_ntop(ip_family, attrs.get(FRA_DST)) if ip_family else "",
                dst_len=dst_len, priority=_u32(attrs, FRA_PRIORITY),
                action=action, iifname=name(FRA_IIFNAME), oifname=name(FRA_OIFNAME),
                message=bytes(body))


def list_rules(nl: RtNetlink, family: int = socket.AF_UNSPEC) -> list[Rule]:
    """Every rule of `family` (both IP families for AF_UNSPEC), in order."""
    body = FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return [parse_rule(payload) for kind, payload in nl.request(RTM_GETRULE, NLM_F_DUMP, body)
            if kind == RTM_NEWRULE]


def add_rule(nl: RtNetlink, src: str, table: int) -> None:
    """`ip rule add from SRC/32|128 lookup TABLE` (EEXIST only if an equal
    rule with the priority the kernel would pick exists)."""
    nl.request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, rule_message(src, table))


def delete_rule_like(nl: RtNetlink, src: str, table: int) -> None:
    """Delete one rule `from SRC lookup TABLE`, whatever its priority."""
    nl.request(RTM_DELRULE, 0, rule_message(src, table))


def delete_rule(nl: RtNetlink, rule: Rule) -> None:
    """Delete exactly the dumped `rule` (its own message sent back)."""
    nl.request(RTM_DELRULE, 0, rule.message)


# --- routes ----------------------------------------------------------------------

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


def parse_route(body: bytes) -> RouteMsg:
    family, dst_len, src_len, tos, table, protocol, scope, rtype, flags = \
        RTMSG.unpack_from(body)
    attrs = parse_attrs(body[RTMSG.size:])
    return RouteMsg(family=family, dst_len=dst_len, src_len=src_len, tos=tos,
                    table=_u32(attrs, RTA_TABLE, table), protocol=protocol, scope=scope,
                    type=rtype, flags=flags, attrs=attrs)


def list_routes(nl: RtNetlink, family: int = socket.AF_UNSPEC) -> list[RouteMsg]:
    """Every route of every table (no cached clones), in dump order."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETROUTE, NLM_F_DUMP, body):
        if kind != RTM_NEWROUTE:
            continue
        route = parse_route(payload)
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


def add_route(nl: RtNetlink, route: RouteMsg, table: int) -> None:
    """Add `route` to `table`; EEXIST if it is there already."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route_message(route, table))


def replace_route(nl: RtNetlink, route: RouteMsg, table: int) -> None:
    """Add `route` to `table`, replacing an equal one (`ip route replace`)."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route_message(route, table))


def delete_route(nl: RtNetlink, route: RouteMsg) -> None:
    """Delete `route` from its own table."""
    nl.request(RTM_DELROUTE, 0, route_message(route, route.table))
