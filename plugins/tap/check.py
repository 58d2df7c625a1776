"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the state (the link, its tun attributes, the bridge,
addresses, routes); these functions say what, if anything, is wrong.
"""

from pycni.checks import (  # noqa: F401  (plugin.py reads them through this module)
    container_interface, fail, own_ips, require_prev_result)
from pycni.result import Interface


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
