"""CHECK decisions shared by the main plugins, as pure functions over what
the kernel reported (the plugins gather addresses and routes with netlink).
Messages follow the reference's ip.ValidateExpectedInterfaceIPs and
ip.ValidateExpectedRoute.
"""

from .errors import CNIError, INTERNAL
from .result import IPConfig, Route


def _fail(msg: str, details: str = "") -> CNIError:
    return CNIError(INTERNAL, msg, details)


def check_addresses(ifname: str, ips: list[IPConfig], addresses: list[str],
                    route_dsts: list[str]) -> None:
    """Every address in `ips` is on the link, with a route to its prefix.

    addresses: CIDRs on the link; route_dsts: destination CIDRs of the
    main table (both families).
    """
    from pycni import ipaddr
    present = {ipaddr.ip_interface(a) for a in addresses}
    networks = {ipaddr.ip_network(d, strict=False) for d in route_dsts}
    for ip in ips:
        wanted = ipaddr.ip_interface(ip.address)
        if wanted not in present:
            raise _fail(f"Failed to match addr {wanted} on interface {ifname}")
        if wanted.network not in networks:
            raise _fail(f"Failed to find Gateway {ip.gateway or '<nil>'} for interface "
                        f"{ifname}", f"no route to {wanted.network}")


def route_present(route: Route, table_routes) -> bool:
    """`table_routes`: netlink.RouteEntry list of the route's table.
    A default route matches any default route of its family (as in the
    reference); others need the same destination and, if given, gateway."""
    from pycni import ipaddr
    dst = ipaddr.ip_network(route.dst, strict=False)
    for entry in table_routes:
        have = ipaddr.ip_network(entry.dst, strict=False)
        if have.version != dst.version:
            continue
        if dst.prefixlen == 0:
            if have.prefixlen == 0:
                return True
            continue
        if have != dst:
            continue
        if route.gw and (not entry.gw or
                         ipaddr.ip_address(entry.gw) != ipaddr.ip_address(route.gw)):
            continue
        return True
    return False


def check_routes(routes: list[Route], routes_by_table) -> None:
    """routes_by_table(table or None for main) -> RouteEntry list."""
    for route in routes:
        if not route_present(route, routes_by_table(route.table)):
            raise _fail(f"Expected Route {{Dst:{route.dst} GW:{route.gw or '<nil>'}}} "
                        "not found in routing table")
