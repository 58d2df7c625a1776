"""CHECK: the attachment in prevResult still matches the kernel state.

Bridge (exists, is a bridge, same MAC, promiscuous as configured), the
container veth (in the sandbox, same MAC), a host veth that is its peer and
a port of the bridge, then the container's addresses and routes. Messages
follow the reference plugin's.
"""

from pycni import checks, netlink, netns
from pycni.netlink import link as rtlink, addr as rtaddr, route as rtroute
from pycni.errors import CNIError, INTERNAL
from pycni.result import Interface, Result

IFF_PROMISC = 0x100


def _fail(msg: str) -> CNIError:
    return CNIError(INTERNAL, msg)


def _lookup(nl, intf: Interface, expect_in_sandbox: bool) -> rtlink.Link:
    if not intf.name:
        raise _fail("Interface name missing ")
    link = rtlink.get_link(nl, intf.name)
    if link is None:
        raise _fail(f"Interface name {intf.name} not found")
    if expect_in_sandbox and not intf.sandbox:
        raise _fail(f"Interface {intf.name} is expected to be in a sandbox")
    if not expect_in_sandbox and intf.sandbox:
        raise _fail(f"Interface {intf.name} should not be in sandbox")
    return link


def validate_bridge(nl, intf: Interface, promisc: bool) -> rtlink.Link:
    link = _lookup(nl, intf, False)
    if link.kind != "bridge":
        raise _fail(f"Interface {intf.name} does not have link type of bridge")
    if intf.mac and intf.mac.lower() != link.mac:
        raise _fail(f"Bridge interface {intf.name} Mac doesn't match: {intf.mac}")
    current = bool(link.flags & IFF_PROMISC)
    if current != promisc:
        raise _fail(f"Bridge interface {intf.name} configured Promisc Mode "
                    f"{str(promisc).lower()} doesn't match current state: "
                    f"{str(current).lower()} ")
    return link


def validate_container(nl, intf: Interface) -> rtlink.Link:
    link = _lookup(nl, intf, True)
    if link.kind != "veth":
        raise _fail(f"Error: Container interface {link.name} not of type veth")
    if intf.mac and intf.mac.lower() != link.mac:
        raise _fail(f"Interface {intf.name} Mac {intf.mac} doesn't match container "
                    f"Mac: {link.mac}")
    return link


def is_host_peer(nl, intf: Interface, br: rtlink.Link, cont: rtlink.Link) -> bool:
    """Whether `intf` is the host end of `cont` on bridge `br`."""
    link = _lookup(nl, intf, False)
    if link.kind != "veth":
        return False     # not something we created: skip it
    if link.index != cont.link or cont.index != link.link or link.master != br.index:
        return False
    if intf.mac and intf.mac.lower() != link.mac:
        raise _fail(f"Interface {intf.name} Mac doesn't match: {intf.mac} not found")
    return True


def check_addresses(nl, ifname: str, result: Result) -> None:
    link = rtlink.get_link(nl, ifname)
    if link is None:
        raise _fail(f"Cannot find container link {ifname}")
    addresses = [a.cidr for a in rtaddr.list_addresses(nl, link.index)]
    route_dsts = [r.dst for r in rtroute.list_routes(nl)]
    checks.check_addresses(ifname, result.ips, addresses, route_dsts)


def check_routes(nl, result: Result) -> None:
    """Each route of the result, also one of several next hops of an
    IPv6 multipath route (how the kernel keeps ECMP routes)."""
    checks.check_routes(result.routes, lambda table: rtroute.list_routes_ecmp(
        nl, table=rtroute.RT_TABLE_MAIN if table is None else table))


def check_attachment(settings, netns_path: str, ifname: str, prev: Result) -> None:
    conf = settings.conf
    br_map = Interface(name="")
    cont_map = Interface(name="")
    for intf in prev.interfaces:
        if intf.name == conf.bridge:
            br_map = intf
        elif intf.name == ifname and intf.sandbox == netns_path:
            cont_map = intf
    with netlink.RtNetlink() as hnl:
        br = validate_bridge(hnl, br_map, conf.promisc_mode)
        if cont_map.sandbox != netns_path:
            raise _fail(f"Sandbox in prevResult {cont_map.sandbox} doesn't match "
                        f"configured netns: {netns_path}")
        with netns.entered(netns_path):
            cnl = netlink.RtNetlink()
        with cnl:
            cont = validate_container(cnl, cont_map)
            host_found = False
            for intf in prev.interfaces:
                if intf.name in (br_map.name, cont_map.name):
                    continue
                if is_host_peer(hnl, intf, br, cont):
                    host_found = True
                    break
            if not host_found:
                raise _fail(f"CNI veth created for bridge {conf.bridge} was not found")
            check_addresses(cnl, ifname, prev)
            check_routes(cnl, prev)
