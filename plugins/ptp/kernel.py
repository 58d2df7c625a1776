"""The netlink operation ptp needs beyond pycni.netlink, built on its core.

`delete_prefix_route` removes the prefix route the kernel adds with an
address ("10.1.2.0/24 dev eth0 proto kernel"). pycni.netlink's route
messages carry protocol "boot", which the kernel matches on delete, so
this one is sent with protocol, type and scope left open (any), as the
reference's RouteDel does.
"""

import struct

import _socket as socket

from pycni import netlink

RT_SCOPE_NOWHERE = 255      # on delete: any scope
_RTMSG = struct.Struct("=BBBBBBBBI")


def delete_prefix_route(nl: netlink.RtNetlink, index: int, cidr: str) -> None:
    address, _, prefix = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    body = _RTMSG.pack(family, int(prefix), 0, 0, netlink.RT_TABLE_MAIN, 0,
                       RT_SCOPE_NOWHERE, 0, 0)
    body += netlink.attr(netlink.RTA_DST, socket.inet_pton(family, address))
    body += netlink.attr_u32(netlink.RTA_OIF, index)
    nl.request(netlink.RTM_DELROUTE, 0, body)
