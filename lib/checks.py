"""CHECK decisions shared by the main plugins, as pure functions over what
the kernel reported (the plugins gather addresses and routes with netlink).
Messages follow the reference's ip.ValidateExpectedInterfaceIPs and
ip.ValidateExpectedRoute.
"""

from .errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from .result import Interface, IPConfig, Result, Route


def fail(msg: str, details: str = "") -> CNIError:
    """A CHECK finding: code 999 (INTERNAL), as the reference's plain errors."""
    return CNIError(INTERNAL, msg, details)


_fail = fail

# The reference's words, which differ between its plugins:
REQUIRED_PREV = "Required prevResult missing"
SANDBOX_MISMATCH = "Sandbox in prevResult {other} doesn't match configured netns: {netns}"


def require_prev_result(prev: Result | None, message: str = REQUIRED_PREV) -> Result:
    """`prev` (a CHECK's parsed prevResult), or code 7 with `message`."""
    if prev is None:
        raise CNIError(INVALID_NETWORK_CONFIG, message)
    return prev


def container_interface(prev: Result, ifname: str, netns: str,
                        mismatch: str = SANDBOX_MISMATCH, name_other: bool = True) -> Interface:
    """The prevResult interface this attachment created: `ifname` in
    sandbox `netns`. `mismatch` is the error's text ({other}: the sandbox
    of an interface with that name elsewhere, when `name_other`)."""
    for intf in prev.interfaces:
        if intf.name == ifname and intf.sandbox == netns:
            return intf
    other = next((i.sandbox for i in prev.interfaces if i.name == ifname), "") \
        if name_other else ""
    raise fail(mismatch.format(other=other, netns=netns),
               f"prevResult has no interface {ifname} in {netns}")


def own_ips(prev: Result, intf: Interface) -> list[IPConfig]:
    """prevResult addresses that belong to `intf` (or name no interface)."""
    out = []
    for ip in prev.ips:
        if ip.interface is None:
            out.append(ip)
        elif 0 <= ip.interface < len(prev.interfaces) and prev.interfaces[ip.interface] is intf:
            out.append(ip)
    return out


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
