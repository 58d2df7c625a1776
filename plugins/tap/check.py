"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the state (the link, its tun attributes, the bridge,
addresses, routes); these functions say what, if anything, is wrong.
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
    """The prevResult interface this attachment created."""
    for intf in prev.interfaces:
        if intf.name == ifname and intf.sandbox == netns:
            return intf
    other = next((i.sandbox for i in prev.interfaces if i.name == ifname), "")
    raise fail(f"Sandbox in prevResult {other} doesn't match configured netns: {netns}",
               f"prevResult has no interface {ifname} in {netns}")


def check_link(intf: Interface, link, tun: dict, settings, bridge) -> None:
    """`link`: the netlink.Link found in the container (or None); `tun`:
    tuntap.info of its attributes; `settings`: config.Settings; `bridge`:
    the configured bridge's netlink.Link (None if absent or not configured)."""
    if link is None:
        raise fail(f"container Interface name in prevResult: {intf.name} not found")
    if link.kind != "tun" or tun.get("type") != "tap":
        raise fail(f"error: Container interface {intf.name} not of type tap",
                   f"it is of kind {link.kind or 'unknown'} {tun.get('type') or ''}".strip())
    if intf.mac and intf.mac.lower() != link.mac:
        raise fail(f"interface {intf.name} Mac {intf.mac} doesn't match container Mac: "
                   f"{link.mac}")
    if settings.mac and settings.mac != link.mac:
        raise fail(f"tap {intf.name} has MAC {link.mac}, the config asks for {settings.mac}")
    if settings.mtu and settings.mtu != link.mtu:
        raise fail(f"tap {intf.name} has MTU {link.mtu}, the config asks for {settings.mtu}")
    if bool(tun.get("multi_queue")) != settings.multi_queue:
        raise fail(f"tap {intf.name} multi_queue is "
                   f"{'on' if tun.get('multi_queue') else 'off'}, the config asks for "
                   f"multiQueue {str(settings.multi_queue).lower()}")
    for what, wanted in (("owner", settings.owner), ("group", settings.group)):
        have = tun.get(what)
        if wanted is not None and have != wanted:
            raise fail(f"tap {intf.name} {what} is {'none' if have is None else have}, "
                       f"the config asks for {wanted}")
    if settings.bridge:
        if bridge is None:
            raise fail(f"bridge {settings.bridge} of tap {intf.name} not found")
        if link.master != bridge.index:
            raise fail(f"tap {intf.name} is not a port of bridge {settings.bridge}")


def own_ips(prev: Result, intf: Interface) -> list[IPConfig]:
    """prevResult addresses that belong to `intf` (or name no interface)."""
    out = []
    for ip in prev.ips:
        if ip.interface is None:
            out.append(ip)
        elif 0 <= ip.interface < len(prev.interfaces) and prev.interfaces[ip.interface] is intf:
            out.append(ip)
    return out
