"""Apply an IPAM result to an interface inside a container namespace.

The counterpart of the reference ipam.ConfigureIface, shared by every
main plugin that configures addresses (bridge, macvlan, ptp, ...).
`plan_iface` is pure: it decides which addresses and routes go on the
interface; `configure_iface` applies that plan with netlink and sysctls
and must be called inside `netns.entered(container)`.
"""

from .model import dataclass, field

from . import netlink, sysctl
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


def configure_iface(ifname: str, result: Result) -> None:
    """Inside the container netns: addresses, link up, routes."""
    plan = plan_iface(result, ifname)
    with netlink.RtNetlink() as nl:
        link = netlink.get_link(nl, ifname)
        if link is None:
            raise CNIError(INTERNAL, f'failed to lookup "{ifname}": no such interface')
        if plan.has_ipv6:
            # Containers often start with IPv6 disabled; keep addresses when
            # the link goes down (as the reference does).
            for name in ("lo", ifname):
                _try_sysctl("0", "net", "ipv6", "conf", name, "disable_ipv6")
            _try_sysctl("1", "net", "ipv6", "conf", ifname, "keep_addr_on_down")
        for cidr in plan.addresses:
            try:
                netlink.add_address(nl, link.index, cidr)
            except netlink.NetlinkError as exc:
                raise CNIError(INTERNAL, f'failed to add IP addr {cidr} to "{ifname}"',
                               exc.strerror) from None
        netlink.set_link_up(nl, link.index)
        for r in plan.routes:
            kw = {"priority": r.priority, "mtu": r.mtu, "advmss": r.advmss}
            if r.table is not None:
                kw["table"] = r.table
            if r.scope is not None:
                kw["scope"] = r.scope
            try:
                netlink.add_route(nl, r.dst, gw=r.gw, oif=link.index, **kw)
            except netlink.NetlinkError as exc:
                if exc.errno == 17:   # EEXIST: an equal route is already there
                    continue
                raise CNIError(INTERNAL, f"failed to add route {r.dst} via "
                               f"{r.gw or ifname}", exc.strerror) from None


def _try_sysctl(value: str, *parts: str) -> None:
    try:
        sysctl.write(value, *parts)
    except OSError:
        pass   # IPv6 compiled out or the key is absent: addresses will say so
