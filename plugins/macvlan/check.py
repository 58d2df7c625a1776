"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the state (link, its mode, addresses, routes) and these
functions say what, if anything, is wrong, in the reference's words
where it has some.
"""

from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import Interface, IPConfig, Result, Route


def fail(msg: str, details: str = "") -> CNIError:
    return CNIError(INTERNAL, msg, details)


def container_interface(prev: Result, ifname: str, netns: str) -> Interface:
    """The prevResult interface this attachment created."""
    for intf in prev.interfaces:
        if intf.name == ifname and intf.sandbox == netns:
            return intf
    other = next((i.sandbox for i in prev.interfaces if i.name == ifname), "")
    raise fail(f"sandbox in prevResult {other} doesn't match configured netns: {netns}",
               f"prevResult has no interface {ifname} in {netns}")


def check_link(intf: Interface, link, mode: str, expected_mode: str,
               master_index: int) -> None:
    """`link` is the netlink.Link found in the container (or None)."""
    if link is None:
        raise fail(f"container Interface name in prevResult: {intf.name} not found")
    if link.kind != "macvlan":
        raise fail(f"error: Container interface {intf.name} not of type macvlan",
                   f"it is of kind {link.kind or 'unknown'}")
    if mode != expected_mode:
        raise fail(f"container macvlan mode {mode or 'unknown'} does not match "
                   f"expected value: {expected_mode}")
    if intf.mac and intf.mac.lower() != link.mac:
        raise fail(f"interface {intf.name} Mac {intf.mac} doesn't match container Mac: "
                   f"{link.mac}")
    if master_index and link.link != master_index:
        raise fail(f"container macvlan {intf.name} is not attached to the configured master",
                   f"parent index {link.link}, master index {master_index}")


def _iface(cidr: str):
    import ipaddress
    return ipaddress.ip_interface(cidr)


def check_addresses(ifname: str, ips: list[IPConfig], addresses: list[str],
                    route_dsts: list[str]) -> None:
    """Every prevResult address is on the link with a route to its prefix.

    addresses: CIDRs on the link; route_dsts: destination CIDRs of the
    main table (both families).
    """
    present = {_iface(a) for a in addresses}
    networks = {_iface(d).network for d in route_dsts}
    for ip in ips:
        wanted = _iface(ip.address)
        if wanted not in present:
            raise fail(f"Failed to match addr {ip.address} on interface {ifname}")
        if wanted.network not in networks:
            raise fail(f"Failed to find Gateway {ip.gateway} for interface {ifname}",
                       f"no route to {wanted.network}")


def route_present(route: Route, table_routes) -> bool:
    """`table_routes`: netlink.RouteEntry list of the route's table.
    A default route matches any default route of its family (as in the
    reference); others need the same destination and, if given, gateway."""
    import ipaddress
    dst = ipaddress.ip_network(route.dst, strict=False)
    for entry in table_routes:
        have = ipaddress.ip_network(entry.dst, strict=False)
        if have.version != dst.version:
            continue
        if dst.prefixlen == 0:
            if have.prefixlen == 0:
                return True
            continue
        if have != dst:
            continue
        if route.gw and (not entry.gw or
                         ipaddress.ip_address(entry.gw) != ipaddress.ip_address(route.gw)):
            continue
        return True
    return False


def check_routes(routes: list[Route], routes_by_table) -> None:
    """routes_by_table(table or None) -> RouteEntry list."""
    for route in routes:
        if not route_present(route, routes_by_table(route.table)):
            via = f" via {route.gw}" if route.gw else ""
            raise fail(f"Expected Route {route.dst}{via} not found in routing table")


def require_prev_result(prev: Result | None) -> Result:
    if prev is None:
        raise CNIError(INVALID_NETWORK_CONFIG, "required prevResult missing")
    return prev


def own_ips(prev: Result, intf: Interface) -> list[IPConfig]:
    """prevResult addresses that belong to `intf` (or name no interface)."""
    out = []
    for ip in prev.ips:
        if ip.interface is None:
            out.append(ip)
        elif 0 <= ip.interface < len(prev.interfaces) and prev.interfaces[ip.interface] is intf:
            out.append(ip)
    return out
