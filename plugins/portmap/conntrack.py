"""Flushing UDP conntrack entries for mapped host ports (ctnetlink).

A UDP "connection" to a host port that existed before the DNAT rule (or
that pointed at a container now gone) stays in conntrack and keeps
blackholing the flow. After rules change we dump the conntrack table of
one family and delete every UDP entry whose original destination port is
a mapped host port, as the reference does through netlink. Failures are
reported to the caller, which only logs them.
"""

import errno
import struct

from pycni import netlink
from pycni.netlink import attr, NLA_F_NESTED, parse_attrs

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
CTA_TUPLE_ORIG = 1
CTA_TUPLE_PROTO = 2
CTA_PROTO_NUM = 1
CTA_PROTO_DST_PORT = 3
CTA_ZONE = 18
IPPROTO_UDP = 17
AF_INET, AF_INET6 = 2, 10
_NFGEN = struct.Struct("=BBH")      # nfgenmsg: family, version, resource id


def _ct(kind: int) -> int:
    return (NFNL_SUBSYS_CTNETLINK << 8) | kind


def matching_tuples(entries: list[bytes], proto: int, ports: set[int]) -> list[tuple[bytes, bytes]]:
    """(raw CTA_TUPLE_ORIG, raw CTA_ZONE) of entries for `proto` to `ports`."""
    out = []
    for entry in entries:
        attrs = parse_attrs(entry)
        orig = attrs.get(CTA_TUPLE_ORIG)
        if orig is None:
            continue
        tup = parse_attrs(orig)
        p = parse_attrs(tup.get(CTA_TUPLE_PROTO, b""))
        if p.get(CTA_PROTO_NUM, b"\0")[0] != proto:
            continue
        port = p.get(CTA_PROTO_DST_PORT)
        if port is None or struct.unpack("!H", port[:2])[0] not in ports:
            continue
        out.append((orig, attrs.get(CTA_ZONE, b"")))
    return out


def flush_udp_ports(ports: set[int], family: int) -> int:
    """Delete UDP entries of `family` (4 or 6) to `ports`; how many went."""
    if not ports:
        return 0
    header = _NFGEN.pack(AF_INET6 if family == 6 else AF_INET, 0, 0)
    with netlink.NetlinkSocket(NETLINK_NETFILTER) as nl:
        entries = [payload[_NFGEN.size:] for _kind, payload in
                   nl.request(_ct(IPCTNL_MSG_CT_GET), netlink.NLM_F_DUMP, header)]
        deleted = 0
        for orig, zone in matching_tuples(entries, IPPROTO_UDP, ports):
            payload = attr(CTA_TUPLE_ORIG | NLA_F_NESTED, orig)
            if zone:
                payload += attr(CTA_ZONE, zone)
            try:
                nl.request(_ct(IPCTNL_MSG_CT_DELETE), 0, header + payload)
                deleted += 1
            except netlink.NetlinkError as err:
                if err.errno != errno.ENOENT:    # it expired meanwhile
                    raise
        return deleted
