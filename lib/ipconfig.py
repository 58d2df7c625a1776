"""Apply an IPAM result to an interface inside a container namespace.

The counterpart of the reference ipam.ConfigureIface, shared by every
main plugin that configures addresses (bridge, macvlan, ptp, ...).
`plan_iface` is pure: it decides which addresses and routes go on the
interface; `configure_iface` applies that plan with netlink and sysctls
and must be called inside `netns.entered(container)`.

As in the reference: addresses, link up, then (with IPv6 addresses) a
bounded wait until duplicate address detection has settled
(`addr_dad.settle`: a `dadfailed` address fails the ADD, so the
caller's rollback releases it), then routes, each added beside any
other route to the same destination (`rtroute.add_route_ecmp`: IPv4
keeps them as separate routes, IPv6 joins them into one multipath
route).
"""

import errno

from .model import dataclass, field

from . import netlink, sysctl
from .netlink import link as rtlink, addr as rtaddr, route as rtroute
from .errors import CNIError, INTERNAL
from .result import Result


@dataclass
class RoutePlan:
    dst: str
    gw: str = ""
    priority: int = 0
    table: int | None = None
    scope: int | None = None
    mtu: int = 0
    advmss: int = 0


@dataclass
class IfacePlan:
    addresses: list[str] = field(default_factory=list)
    routes: list[RoutePlan] = field(default_factory=list)
    has_ipv6: bool = False


def plan_iface(result: Result, ifname: str) -> IfacePlan:
    """Addresses for `ifname` (ips whose interface index points at it, or
    that carry no index) and every route, gateways defaulted per family."""
    plan = IfacePlan()
    gateways: dict[int, str] = {}
    for ip in result.ips:
        if ip.interface is not None:
            if not 0 <= ip.interface < len(result.interfaces):
                raise CNIError(INTERNAL, f"failed to add IP addr {ip.address} to "
                               f'"{ifname}": invalid interface index')
            if result.interfaces[ip.interface].name != ifname:
                continue
        plan.addresses.append(ip.address)
        if ip.family == 6:
            plan.has_ipv6 = True
        if ip.gateway and ip.family not in gateways:
            gateways[ip.family] = ip.gateway
    for r in result.routes:
        plan.routes.append(RoutePlan(
            dst=r.dst, gw=r.gw or gateways.get(r.family, ""), priority=r.priority,
            table=r.table, scope=r.scope, mtu=r.mtu, advmss=r.advmss))
    return plan


def should_settle(plan: IfacePlan, settle: bool | None = None) -> bool:
    """Whether ADD waits for DAD: when IPv6 addresses were added, unless
    the caller says otherwise. (The reference waits only when an IPv6
    address has a gateway; an address without one is just as tentative
    and just as likely a duplicate.) Where DAD is off (bridge without
    `enabledad`: accept_dad=0) the wait ends at the first look."""
    return plan.has_ipv6 if settle is None else settle and plan.has_ipv6


def settle_error(ifname: str, failed_address: str = "",
                 timeout: float = 0.0) -> CNIError:
    """The ADD error when DAD failed (`failed_address`) or did not end."""
    prefix = f'failed to settle addresses for "{ifname}": link {ifname}'
    if failed_address:
        return CNIError(INTERNAL, f"{prefix} has address {failed_address} in DADFAILED state",
                        "IPv6 duplicate address detection: another node on the link "
                        "answered for this address")
    return CNIError(INTERNAL, f"{prefix} still has tentative addresses after "
                    f"{timeout:g} seconds")


def configure_iface(ifname: str, result: Result, *, settle: bool | None = None,
                    dad_timeout: float | None = None) -> None:
    """Inside the container netns: addresses, link up, DAD settled (see
    `should_settle`; at most `dad_timeout` seconds, 5 by default, as the
    reference), routes."""
    plan = plan_iface(result, ifname)
    with netlink.RtNetlink() as nl:
        link = rtlink.get_link(nl, ifname)
        if link is None:
            raise CNIError(INTERNAL, f'failed to lookup "{ifname}": no such interface')
        if plan.has_ipv6:
            # Containers often start with IPv6 disabled; keep addresses when
            # the link goes down (as the reference does).
            for name in ("lo", ifname):
                _try_sysctl("0", "net", "ipv6", "conf", name, "disable_ipv6")
            _try_sysctl("1", "net", "ipv6", "conf", ifname, "keep_addr_on_down")
        add_addresses(nl, link.index, plan.addresses, f'"{ifname}"')
        rtlink.set_link_up(nl, link.index)
        if should_settle(plan, settle):
            from .netlink import addr_dad     # only where an IPv6 address was added
            timeout = addr_dad.SETTLE_TIMEOUT if dad_timeout is None else dad_timeout
            try:
                addr_dad.settle(nl, link.index, timeout)
            except addr_dad.DadFailed as exc:
                raise settle_error(ifname, failed_address=exc.address) from None
            except addr_dad.StillTentative:
                raise settle_error(ifname, timeout=timeout) from None
            except netlink.NetlinkError as exc:
                raise CNIError(INTERNAL, f'failed to settle addresses for "{ifname}": '
                               "could not list addresses", exc.strerror) from None
        for r in plan.routes:
            kw = {"priority": r.priority, "mtu": r.mtu, "advmss": r.advmss}
            if r.table is not None:
                kw["table"] = r.table
            if r.scope is not None:
                kw["scope"] = r.scope
            try:
                rtroute.add_route_ecmp(nl, r.dst, gw=r.gw, oif=link.index, **kw)
            except netlink.NetlinkError as exc:
                if exc.errno == errno.EEXIST:   # this very route is already there
                    continue
                raise CNIError(INTERNAL, f"failed to add route {r.dst} via "
                               f"{r.gw or ifname}", exc.strerror) from None


def add_addresses(nl: netlink.RtNetlink, index: int, cidrs: list[str], target: str) -> None:
    """Each of `cidrs` on link `index`, in order; a refusal is code 999
    "failed to add IP addr <cidr> to <target>" with the kernel's words."""
    for cidr in cidrs:
        try:
            rtaddr.add_address(nl, index, cidr)
        except netlink.NetlinkError as exc:
            raise CNIError(INTERNAL, f"failed to add IP addr {cidr} to {target}",
                           exc.strerror) from None


# the keys that make this namespace forward packets between its interfaces
FORWARDING_KEYS = {4: ("net", "ipv4", "ip_forward"),
                   6: ("net", "ipv6", "conf", "all", "forwarding")}


def enable_forwarding(family: int, failure: str) -> None:
    """Forwarding of IP version `family` (4 or 6) on in the current
    namespace (the host; left alone where it is on already: sysctl.ensure),
    as the reference's ip.EnableIP4Forward / EnableIP6Forward; code 999
    "<failure>: <why>" where the key cannot be written."""
    try:
        sysctl.ensure("1", *FORWARDING_KEYS[family])
    except OSError as exc:
        raise CNIError(INTERNAL, f"{failure}: {exc}") from None


# the keys that make the kernel announce an address when its link comes up
ANNOUNCE_KEYS = {"ipv4": "arp_notify", "ipv6": "ndisc_notify"}


def configure_in(netns_path: str, ifname: str, result: Result,
                 announce: tuple[str, ...] = ()) -> None:
    """configure_iface inside the container at `netns_path`. With
    `announce`, the kernel is asked first to announce the new addresses
    when the link comes up (gratuitous ARP for "ipv4", unsolicited
    neighbour advertisements for "ipv6"), so the LAN learns the MAC at
    once; a family whose key is absent (IPv6 disabled or compiled out)
    has nothing to announce."""
    from . import netns
    with netns.entered(netns_path):
        for family in announce:
            _try_sysctl("1", "net", family, "conf", ifname, ANNOUNCE_KEYS[family])
        configure_iface(ifname, result)


def _try_sysctl(value: str, *parts: str) -> None:
    try:
        sysctl.write(value, *parts)
    except OSError:
        pass   # IPv6 compiled out or the key is absent: addresses will say so


def check_iface(nl: netlink.RtNetlink, ifname: str, index: int, ips: list,
                routes: list) -> None:
    """CHECK of what configure_iface made, read through `nl` (a socket in
    the container's namespace): every address of `ips` (result IPConfigs)
    on link `index` with a route to its prefix, and every route of
    `routes` (result Routes) in its table; a multipath route counts once
    per next hop (ECMP). Raises the reference's CHECK errors."""
    from . import checks
    addresses = [a.cidr for a in rtaddr.list_addresses(nl, index)]
    route_dsts = [r.dst for r in rtroute.list_routes_ecmp(nl)]
    checks.check_addresses(ifname, ips, addresses, route_dsts)
    checks.check_routes(routes, lambda table: rtroute.list_routes_ecmp(
        nl, table=rtroute.RT_TABLE_MAIN if table is None else table))
