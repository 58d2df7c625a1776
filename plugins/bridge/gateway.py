"""Pure decisions about gateways: which addresses go on the bridge, which
default routes the container gets, and whether a bridge address clashes.
"""

from pycni.model import dataclass, field

from pycni.result import Result, Route

DEFAULT_DST = {4: "0.0.0.0/0", 6: "::/0"}


@dataclass
class Gateways:
    """Per family: the gateway CIDRs to put on the bridge ("10.1.0.1/24")."""
    v4: list[str] = field(default_factory=list)
    v6: list[str] = field(default_factory=list)

    def of(self, family: int) -> list[str]:
        return self.v4 if family == 4 else self.v6


def first_host(cidr: str) -> str:
    """The network address plus one: the implicit gateway of `cidr`."""
    from pycni import ipaddr
    net = ipaddr.ip_interface(cidr).network
    return str(net.network_address + 1)


def calc_gateways(result: Result, is_gateway: bool, is_default_gateway: bool,
                  container_index: int = 2) -> Gateways:
    """Point every IP at the container interface, fill in missing gateways
    (network+1) when the bridge is the gateway, add a default route per
    family unless IPAM already gave one with a gateway. Mutates `result`."""
    is_gateway = is_gateway or is_default_gateway
    gws = Gateways()
    default_found = {4: False, 6: False}
    for ip in result.ips:
        family = ip.family
        ip.interface = container_index
        if not ip.gateway and is_gateway:
            ip.gateway = first_host(ip.address)
        if is_default_gateway and not default_found[family]:
            default_found[family] = any(
                r.gw and _same_net(r.dst, DEFAULT_DST[family]) for r in result.routes)
            if not default_found[family]:
                result.routes.append(Route(dst=DEFAULT_DST[family], gw=ip.gateway))
                default_found[family] = True
        if is_gateway:
            prefix = ip.address.partition("/")[2]
            gws.of(family).append(f"{ip.gateway}/{prefix}")
    return gws


def _same_net(a: str, b: str) -> bool:
    from pycni import ipaddr
    try:
        return ipaddr.ip_network(a, strict=False) == ipaddr.ip_network(b)
    except ValueError:
        return False


def conflicts(existing: str, wanted: str) -> bool:
    """Whether bridge address `existing` must give way to gateway `wanted`
    (both CIDRs, same family, not equal): every other IPv4 address does,
    an IPv6 address only if the two prefixes overlap."""
    from pycni import ipaddr
    a = ipaddr.ip_interface(existing)
    b = ipaddr.ip_interface(wanted)
    if a.version == 4:
        return True
    return a.ip in b.network or b.ip in a.network


def normalize_cidr(cidr: str) -> str:
    from pycni import ipaddr
    return str(ipaddr.ip_interface(cidr))
