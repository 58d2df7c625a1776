"""rtnetlink requests only tests make, on pycni.netlink's codec: listing
every link and deleting a route (no plugin does either: a plugin looks
links up by name or index, and its routes go with its links)."""

from pycni import netlink
from pycni.netlink import link as rtlink, route as rtroute
from pycni.netlink import RtNetlink

import _socket as socket


def list_links(nl: RtNetlink) -> list:
    """Every link of the socket's namespace (pycni.netlink.Link)."""
    body = rtlink._IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return [rtlink._parse_link(p)
            for k, p in nl.request(rtlink.RTM_GETLINK, netlink.NLM_F_DUMP, body)
            if k == rtlink.RTM_NEWLINK]


def del_route(nl: RtNetlink, dst: str, gw: str = "", oif: int = 0, **kw) -> None:
    """The route add_route(nl, dst, gw, oif, **kw) made."""
    nl.request(rtroute.RTM_DELROUTE, 0, rtroute.route_body(dst, gw, oif, **kw))
