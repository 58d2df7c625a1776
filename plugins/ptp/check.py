"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the links, addresses and routes; these functions say
what, if anything, is wrong, in the reference's words where it has some.
Beyond the reference (which looks only into the container) the host end
is checked too: it must still be the container veth's peer and carry the
gateway addresses and the host routes ADD put there.
"""

from pycni.checks import (  # noqa: F401  (plugin.py reads them through this module)
    container_interface, fail, own_ips, require_prev_result)
from pycni.result import Interface, Result

from . import config

PREV_MISSING = "ptp: Required prevResult missing"      # the reference's words


def host_interface(prev: Result, container: Interface) -> Interface | None:
    """The host veth ADD reported: the interface without a sandbox that
    the container interface's IPs do not name (ptp lists it first)."""
    for intf in prev.interfaces:
        if not intf.sandbox and intf is not container:
            return intf
    return None


def check_container_link(intf: Interface, link) -> None:
    """`link` is the netlink.Link found in the container (or None)."""
    if not intf.name:
        raise fail(f"Container interface name missing in prevResult: {intf.name}")
    if link is None:
        raise fail(f"ptp: Container Interface name in prevResult: {intf.name} not found")
    if not intf.sandbox:
        raise fail(f"ptp: Error: Container interface {link.name} should not be in "
                   "host namespace")
    if link.kind != "veth":
        raise fail(f"Error: Container interface {link.name} not of type veth/p2p",
                   f"it is of kind {link.kind or 'unknown'}")
    if intf.mac and intf.mac.lower() != link.mac:
        raise fail(f"ptp: Interface {intf.name} Mac {intf.mac} doesn't match container "
                   f"Mac: {link.mac}")


def check_container_routes(ifname: str, layout: "config.Plan", routes, index: int) -> None:
    """The /32 (/128) link route to each gateway (the container's way out)."""
    for want in layout.container_routes:
        if want.gw:
            continue
        if not _has_route(routes, want.dst, index):
            raise fail(f"ptp: route to the gateway {want.dst} via {ifname} not found")


def check_host_peer(intf: Interface | None, cont_link, host_link) -> None:
    """`host_link`: the link of the host namespace at the container veth's
    peer index (or None)."""
    if host_link is None or host_link.kind != "veth" or host_link.link != cont_link.index:
        raise fail(f"ptp: the host end of container interface {cont_link.name} was not found")
    if intf is not None:
        if intf.name != host_link.name:
            raise fail(f"ptp: host interface {intf.name} in prevResult is not the peer of "
                       f"container interface {cont_link.name}",
                       f"the peer is {host_link.name}")
        if intf.mac and intf.mac.lower() != host_link.mac:
            raise fail(f"ptp: Interface {intf.name} Mac {intf.mac} doesn't match host Mac: "
                       f"{host_link.mac}")


def check_host_state(name: str, layout: "config.Plan", addresses: list[str],
                     routes, index: int) -> None:
    """The gateway addresses on the host veth, and its routes to the container."""
    from pycni import ipaddr
    present = {ipaddr.ip_interface(a) for a in addresses}
    for cidr in layout.host_addresses:
        if ipaddr.ip_interface(cidr) not in present:
            raise fail(f"ptp: gateway address {cidr} not found on host interface {name}")
    for want in layout.host_routes:
        if not _has_route(routes, want.dst, index):
            raise fail(f"ptp: host route to {want.dst} via {name} not found")


def _has_route(routes, dst: str, index: int) -> bool:
    from pycni import ipaddr
    wanted = ipaddr.ip_network(dst, strict=False)
    return any(r.oif == index and ipaddr.ip_network(r.dst, strict=False) == wanted
               for r in routes)
