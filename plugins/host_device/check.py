"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the link, its addresses and routes; these functions say
what, if anything, is wrong, in the reference's words where it has some.
"""

from pycni.checks import check_addresses, check_routes  # noqa: F401
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import Interface, IPConfig, Result


def fail(msg: str, details: str = "") -> CNIError:
    return CNIError(INTERNAL, msg, details)


def require_prev_result(prev: Result | None) -> Result:
    if prev is None:
        raise CNIError(INVALID_NETWORK_CONFIG, "required prevResult missing")
    return prev


def container_interface(prev: Result, ifname: str, netns: str) -> Interface:
    """The prevResult interface this attachment moved in."""
    for intf in prev.interfaces:
        if intf.name == ifname and intf.sandbox == netns:
            return intf
    other = next((i.sandbox for i in prev.interfaces if i.name == ifname), "")
    raise fail(f"Sandbox in prevResult {other} doesn't match configured netns: {netns}",
               f"prevResult has no interface {ifname} in {netns}")


def check_link(intf: Interface, link, rec) -> None:
    """`link`: the netlink_hostdev.LinkInfo found in the container (or
    None); `rec`: our state.Record of the attachment (None if there is
    none, e.g. after an ADD by the reference)."""
    if link is None:
        raise fail(f"Container Interface name in prevResult: {intf.name} not found")
    if intf.mac and intf.mac.lower() != link.link.mac:
        raise fail(f"Interface {intf.name} Mac {intf.mac} doesn't match container Mac: "
                   f"{link.link.mac}")
    if rec is not None:
        if rec.index and link.index != rec.index:
            raise fail(f"container interface {intf.name} is not the link host-device moved in",
                       f"index {link.index}, moved in: {rec.index} ({rec.name})")
    elif not link.alias:
        raise fail(f"failed to find original ifname for {intf.name} (alias is not set)",
                   "DEL could not bring it back to the host")


def own_ips(prev: Result, intf: Interface) -> list[IPConfig]:
    """prevResult addresses that belong to `intf` (or name no interface)."""
    out = []
    for ip in prev.ips:
        if ip.interface is None:
            out.append(ip)
        elif 0 <= ip.interface < len(prev.interfaces) and prev.interfaces[ip.interface] is intf:
            out.append(ip)
    return out
