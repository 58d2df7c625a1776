"""CHECK decisions as pure functions over what the kernel reported.

plugin.py gathers the state (link, its mode, addresses, routes) and these
functions say what, if anything, is wrong, in the reference's words
where it has some.
"""

from pycni.checks import (  # noqa: F401  (plugin.py reads them through this module)
    container_interface, fail, own_ips, require_prev_result)
from pycni.result import Interface

# the reference macvlan's words (lower case, unlike its other plugins)
PREV_MISSING = "required prevResult missing"
SANDBOX_MISMATCH = "sandbox in prevResult {other} doesn't match configured netns: {netns}"


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

