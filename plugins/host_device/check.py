"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the link, its addresses and routes; these functions say
what, if anything, is wrong, in the reference's words where it has some.
"""

from pycni.checks import (  # noqa: F401  (plugin.py reads them through this module)
    container_interface, fail, own_ips, require_prev_result)
from pycni.result import Interface


def check_link(intf: Interface, link, rec) -> None:
    """`link`: the pycni.netlink.linkinfo.LinkInfo found in the container (or
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
