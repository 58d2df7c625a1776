"""The extra-routes config model and every decision that needs no kernel.

    {"type": "extra-routes",
     "routes": [{"dst": "10.99.0.0/16"}, {"dst": "fd99::/64", "gw": "fd00::1", "priority": 10}]}

Each route goes on CNI_IFNAME in the container, via its `gw` or, without
one, via the gateway the previous plugin's result gives the interface for
that address family.
"""

from pycni import ipaddr
from pycni.config import NetConf
from pycni.decode import decode, lenient
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.model import dataclass, field
from pycni.result import Result, Route

MAX_ROUTES = 64
PRIORITY_MAX = 0xFFFFFFFF


@dataclass
class RouteConf:
    dst: str = ""
    gw: str = ""
    priority: int = 0


@dataclass
class Conf(NetConf):
    routes: list[RouteConf] = field(default_factory=list)


def invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


def load(raw: dict) -> list[Route]:
    """ADD and CHECK: the configured routes, validated (code 7 otherwise)."""
    conf = decode(Conf, raw)
    if not conf.routes:
        raise invalid("extra-routes: no routes configured", 'give "routes": [{"dst": CIDR}]')
    if len(conf.routes) > MAX_ROUTES:
        raise invalid(f"extra-routes: too many routes ({len(conf.routes)}, at most {MAX_ROUTES})")
    return [_route(i, r) for i, r in enumerate(conf.routes)]


def _route(i: int, r: RouteConf) -> Route:
    where = f"routes[{i}]"
    try:
        dst = ipaddr.ip_network(r.dst, strict=False)
    except ValueError:
        raise invalid(f"extra-routes: {where}.dst {r.dst!r} is not a CIDR") from None
    if r.gw:
        try:
            gw = ipaddr.ip_address(r.gw)
        except ValueError:
            raise invalid(f"extra-routes: {where}.gw {r.gw!r} is not an IP address") from None
        if gw.version != dst.version:
            raise invalid(f"extra-routes: {where}: gw {r.gw} and dst {r.dst} are of "
                          "different address families")
    if not 0 <= r.priority <= PRIORITY_MAX:
        raise invalid(f"extra-routes: {where}.priority {r.priority} out of range")
    return Route(dst=str(dst), gw=r.gw, priority=r.priority)


def load_for_delete(raw: dict) -> list[Route]:
    """DEL: the routes to remove, read leniently (pycni.decode.lenient): a
    value ADD would refuse never fails DEL, it only drops that route."""
    conf = lenient(Conf, raw)
    out = []
    for i, r in enumerate(conf.routes[:MAX_ROUTES]):
        try:
            out.append(_route(i, r))
        except CNIError:
            continue
    return out


def gateways(prev: Result, ifname: str) -> dict[int, str]:
    """Address family -> the first gateway prevResult gives `ifname` (an
    address whose interface index points at it, or that has no index)."""
    out: dict[int, str] = {}
    for ip in prev.ips:
        if ip.interface is not None:
            if not 0 <= ip.interface < len(prev.interfaces) \
                    or prev.interfaces[ip.interface].name != ifname:
                continue
        if ip.gateway and ip.family not in out:
            out[ip.family] = ip.gateway
    return out


def plan(routes: list[Route], prev: Result | None, ifname: str, strict: bool = True) -> list[Route]:
    """The routes with every gateway filled in. Without a gw and without
    a gateway for its family in prevResult, ADD fails (`strict`) and DEL
    leaves the gateway out (the kernel then matches on the destination)."""
    found = gateways(prev, ifname) if prev is not None else {}
    out = []
    for r in routes:
        gw = r.gw or found.get(r.family, "")
        if not gw and strict:
            raise invalid(f"extra-routes: no gateway for {r.dst}",
                          f"give its gw, or chain after a plugin whose result has an "
                          f"IPv{r.family} gateway for {ifname}")
        out.append(Route(dst=r.dst, gw=gw, priority=r.priority))
    return out


def build_result(prev: Result, routes: list[Route], cni_version: str) -> Result:
    """prevResult with the routes added (those already listed once)."""
    have = {(r.dst, r.gw) for r in prev.routes}
    prev.routes = list(prev.routes) + [r for r in routes if (r.dst, r.gw) not in have]
    prev.cni_version = cni_version
    return prev
