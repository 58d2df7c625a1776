"""The two netlink operations ptp needs beyond pycni.netlink, built on its core.

- `delete_prefix_route`: remove the prefix route the kernel adds with an
  address ("10.1.2.0/24 dev eth0 proto kernel"). pycni.netlink's route
  messages carry protocol "boot", which the kernel matches on delete, so
  this one is sent with protocol and scope left open (any), as the
  reference's RouteDel does.
- `settle`: wait (bounded, as the reference's ip.SettleAddresses) until no
  IPv6 address of a link is tentative; DAD failure is an error. A route
  with `src` on a tentative address is refused by the kernel ("invalid
  source address"), so the container's routes must wait for it.
"""

import struct
import time

import _socket as socket

from pycni import netlink
from pycni.errors import CNIError, INTERNAL

IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
RT_SCOPE_NOWHERE = 255
SETTLE_INTERVAL = 0.05
SETTLE_TIMEOUT = 5.0
IF_OPER_UP = 6
_RTMSG = struct.Struct("=BBBBBBBBI")
_IFADDRMSG = struct.Struct("=BBBBI")


def delete_prefix_route(nl: netlink.RtNetlink, index: int, cidr: str) -> None:
    address, _, prefix = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    body = _RTMSG.pack(family, int(prefix), 0, 0, netlink.RT_TABLE_MAIN, 0,
                       RT_SCOPE_NOWHERE, 0, 0)
    body += netlink.attr(netlink.RTA_DST, socket.inet_pton(family, address))
    body += netlink.attr_u32(netlink.RTA_OIF, index)
    nl.request(netlink.RTM_DELROUTE, 0, body)


def address_flags(nl: netlink.RtNetlink, index: int, family: int) -> list[tuple[str, int]]:
    """(address, flags) of link `index`; flags from IFA_FLAGS (32 bits) when
    the kernel sends it, else the 8-bit ifa_flags."""
    out = []
    body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
    for kind, payload in nl.request(netlink.RTM_GETADDR, netlink.NLM_F_DUMP, body):
        if kind != netlink.RTM_NEWADDR:
            continue
        fam, _plen, flags, _scope, ifindex = _IFADDRMSG.unpack_from(payload)
        if ifindex != index or fam != family:
            continue
        attrs = netlink.parse_attrs(payload[_IFADDRMSG.size:])
        if netlink.IFA_FLAGS in attrs:
            (flags,) = struct.unpack_from("=I", attrs[netlink.IFA_FLAGS])
        raw = attrs.get(netlink.IFA_LOCAL) or attrs.get(netlink.IFA_ADDRESS)
        if raw is not None:
            out.append((socket.inet_ntop(fam, raw), flags))
    return out


def settle(nl: netlink.RtNetlink, index: int, ifname: str,
           timeout: float = SETTLE_TIMEOUT, clock=time.monotonic, sleep=time.sleep) -> None:
    """Wait until no IPv6 address on `index` is tentative (also the
    link-local one); a DAD failure is an error at once. After `timeout`
    an interface that is up but still tentative is an error; one whose
    link is not up (DAD cannot run) is left as it is, as the reference."""
    deadline = clock() + timeout
    while True:
        flags = address_flags(nl, index, socket.AF_INET6)
        for address, f in flags:
            if f & IFA_F_DADFAILED:
                raise CNIError(INTERNAL, f"link {ifname} has address {address} in "
                               "DADFAILED state", "duplicate address detection failed: "
                               "another node on the link uses this address")
        if not any(f & IFA_F_TENTATIVE for _, f in flags):
            return
        if clock() > deadline:
            link = netlink.get_link_by_index(nl, index)
            if link is not None and link.operstate == IF_OPER_UP:
                raise CNIError(INTERNAL, f"link {ifname} still has tentative addresses "
                               f"after {timeout:g} seconds")
            return
        sleep(SETTLE_INTERVAL)
