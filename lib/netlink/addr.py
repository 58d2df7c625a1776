"""Addresses (ifaddrmsg): RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR.

Waiting for IPv6 duplicate address detection (DAD) on a link's new
addresses is `pycni.netlink.addr_dad`, loaded only where an IPv6 address
was added.
"""

import struct

import _socket as socket

from ..model import dataclass
from . import NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, RT_SCOPE_UNIVERSE, RtNetlink, attr, \
    parse_attrs

RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
IFA_FLAGS = 8

_IFADDRMSG = struct.Struct("=BBBBI")


@dataclass
class Address:
    family: int
    address: str
    prefixlen: int
    scope: int
    index: int

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


def list_addresses(nl: RtNetlink, index: int = 0,
                   family: int = socket.AF_UNSPEC) -> list[Address]:
    """Addresses of link `index` (all links if 0), in kernel order."""
    body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETADDR, NLM_F_DUMP, body):
        if kind != RTM_NEWADDR:
            continue
        fam, prefixlen, _flags, scope, ifindex = _IFADDRMSG.unpack_from(payload)
        if index and ifindex != index:
            continue
        attrs = parse_attrs(payload[_IFADDRMSG.size:])
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is None:
            continue
        out.append(Address(fam, socket.inet_ntop(fam, raw), prefixlen, scope, ifindex))
    return out


def _addr_body(index: int, cidr: str) -> tuple[int, bytes]:
    address, _, prefix = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    prefixlen = int(prefix) if prefix else bits
    raw = socket.inet_pton(family, address)
    body = _IFADDRMSG.pack(family, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    if family == socket.AF_INET and prefixlen < 31:
        host_bits = (1 << (32 - prefixlen)) - 1
        (value,) = struct.unpack("!I", raw)
        body += attr(IFA_BROADCAST, struct.pack("!I", value | host_bits))
    return family, body


def add_address(nl: RtNetlink, index: int, cidr: str) -> None:
    """Add `cidr` ("10.1.2.3/24", "fd00::3/64") to link `index`."""
    _, body = _addr_body(index, cidr)
    nl.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)


def del_address(nl: RtNetlink, index: int, cidr: str) -> None:
    _, body = _addr_body(index, cidr)
    nl.request(RTM_DELADDR, 0, body)
