"""Routing-policy rules (fib_rule_hdr): RTM_NEWRULE / RTM_DELRULE /
RTM_GETRULE (`ip rule`), a `struct fib_rule_hdr` followed by FRA_*
attributes. A dumped rule keeps its message, so that deleting it sends
back exactly what the kernel listed (as `ip rule flush` does) and removes
that rule, not another one that merely shares its source.

Builders are pure functions (tests decode them with pyroute2's message
classes); the rest sends them over an `RtNetlink` socket, which must be
created in the namespace to act on.
"""

import struct

import _socket as socket

from ..model import dataclass
from . import (NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, RtNetlink, attr, attr_str_value,
               attr_u32, parse_attrs)
from .route import RT_TABLE_UNSPEC, TABLE_MAX, _bits, _ntop, _u32, family_of

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
    return Rule(family=family, table=table,
                src=_ntop(ip_family, attrs.get(FRA_SRC)) if ip_family else "",
                src_len=src_len,
                dst=_ntop(ip_family, attrs.get(FRA_DST)) if ip_family else "",
                dst_len=dst_len, priority=_u32(attrs, FRA_PRIORITY),
                action=action, iifname=attr_str_value(attrs, FRA_IIFNAME, "replace"),
                oifname=attr_str_value(attrs, FRA_OIFNAME, "replace"),
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
