"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the state (link, its mode, addresses, routes) and these
functions say what, if anything, is wrong, in the reference's words
where it has some.
"""

from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.checks import check_addresses, check_routes, route_present  # noqa: F401
from pycni.result import Interface, IPConfig, Result


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
