"""Flushing UDP conntrack entries for mapped host ports (ctnetlink).

A UDP "connection" to a host port that existed before the DNAT rule (or
that pointed at a container now gone) stays in conntrack and keeps
blackholing the flow. After rules change we dump the conntrack table of
one family and delete every UDP entry whose original destination port is
a mapped host port, as the reference does through netlink. Failures are
reported to the caller, which only logs them.
"""

import os
import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
CTA_TUPLE_ORIG = 1
CTA_TUPLE_PROTO = 2
CTA_PROTO_NUM = 1
CTA_PROTO_DST_PORT = 3
CTA_ZONE = 18
NLA_F_NESTED = 0x8000
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IPPROTO_UDP = 17
_HDR = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")


def attr(kind: int, payload: bytes) -> bytes:
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (((length + 3) & ~3) - length)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Attribute type (NLA_F_NESTED stripped) -> payload, first occurrence."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        out.setdefault(kind & 0x3FFF, data[offset + _ATTR.size: offset + length])
        offset += (length + 3) & ~3
    return out


def _message(kind: int, flags: int, seq: int, family: int, payload: bytes = b"") -> bytes:
    body = _NFGEN.pack(family, 0, 0) + payload
    return _HDR.pack(_HDR.size + len(body), (NFNL_SUBSYS_CTNETLINK << 8) | kind,
                     flags, seq, 0) + body


def _read(sock, seq: int) -> list[bytes]:
    """Payloads (after nfgenmsg) of the replies to `seq`, until DONE/ACK."""
    out = []
    while True:
        data = sock.recv(1 << 17)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind, _flags, mseq, _ = _HDR.unpack_from(data, offset)
            payload = data[offset + _HDR.size: offset + length]
            offset += (length + 3) & ~3
            if mseq != seq:
                continue
            if kind == NLMSG_DONE:
                return out
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", payload)
                if code:
                    raise OSError(-code, f"ctnetlink: {os.strerror(-code)}")
                return out
            out.append(payload[_NFGEN.size:])


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
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        sock.send(_message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, af))
        doomed = matching_tuples(_read(sock, 1), IPPROTO_UDP, ports)
        deleted = 0
        for seq, (orig, zone) in enumerate(doomed, start=2):
            payload = attr(CTA_TUPLE_ORIG | NLA_F_NESTED, orig)
            if zone:
                payload += attr(CTA_ZONE, zone)
            sock.send(_message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, af, payload))
            try:
                _read(sock, seq)
                deleted += 1
            except OSError as err:
                if err.errno != 2:    # ENOENT: it expired meanwhile
                    raise
        return deleted
