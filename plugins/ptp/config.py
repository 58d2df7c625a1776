"""The ptp network configuration, and the pure decisions of an attachment.

ptp joins the container to the host with a veth pair and routes, no
bridge: the host end carries the gateway's address as a /32 (/128) and a
host route to each container address; the container reaches everything
through the gateway. `plan(ips)` computes those addresses and routes from
the IPAM result, `build_result` the ADD result; both are pure, so unit
tests run them without root.

Keys (the reference v1.9 NetConf): the common ones (`ipam`, `dns`, ...),
`ipMasq`, `ipMasqBackend`, `mtu`. ptp reads no CNI_ARGS and no
capability of its own: both go to IPAM untouched.
"""

from pycni.model import dataclass, field

from pycni.config import NetConf
from pycni.decode import decode, lenient, lookup
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import DNS, Interface, IPConfig, Result, Route

IPMASQ_BACKENDS = ("iptables", "nftables")
VETH_MIN_MTU = 68        # ETH_MIN_MTU
VETH_MAX_MTU = 65535     # ETH_MAX_MTU: the kernel refuses a larger veth
RT_SCOPE_HOST = 254
RT_SCOPE_LINK = 253
RT_SCOPE_UNIVERSE = 0


@dataclass
class PtpConf(NetConf):
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mtu: int = 0


@dataclass
class Settings:
    """A validated ADD/CHECK request."""
    conf: PtpConf
    mtu: int                     # 0 = the kernel's default
    dns: DNS | None = None       # the config's `dns` when it is set
    warnings: list[str] = field(default_factory=list)

    @property
    def ipam_type(self) -> str:
        return self.conf.ipam.type


def load(raw: dict, masq_setup: bool = False) -> Settings:
    """Decode and validate the config (ADD, CHECK, STATUS). `masq_setup`:
    the command would write ipMasq rules (ADD, and STATUS, which answers
    for ADD); only there an unknown `ipMasqBackend` is refused, as the
    reference fails only there. Elsewhere it is a warning."""
    conf = decode(PtpConf, raw)
    if not conf.ipam.type:
        # the reference's words (its IPAM exec finds no plugin name)
        raise CNIError(INVALID_NETWORK_CONFIG, "no plugin name provided",
                       'ptp needs an IPAM plugin: set "ipam": {"type": ...}')
    warnings = []
    if conf.ip_masq_backend is not None and conf.ip_masq_backend not in IPMASQ_BACKENDS:
        if masq_setup and conf.ip_masq:
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f'unknown ipmasq backend "{conf.ip_masq_backend}"',
                           f"ipMasqBackend must be one of {', '.join(IPMASQ_BACKENDS)}")
        from pycni import jsontext
        warnings.append(f"unknown ipMasqBackend {jsontext.dumps(conf.ip_masq_backend)}: "
                        f"ipMasq needs one of {', '.join(IPMASQ_BACKENDS)}")
    mtu = conf.mtu
    if mtu < 0:
        # The reference takes a negative MTU as "not set": accept it, as
        # it does, so that no running node's config breaks, and say so.
        warnings.append(f"mtu {mtu} is negative: the kernel's default is used "
                        "(as for 0, and as the reference does)")
        mtu = 0
    elif mtu and not VETH_MIN_MTU <= mtu <= VETH_MAX_MTU:
        # the reference fails ADD too ("failed to make veth pair: invalid
        # argument"), after IPAM; here before anything is changed
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid MTU {mtu} (must be between {VETH_MIN_MTU} and "
                       f"{VETH_MAX_MTU}, or 0 for the kernel's default)")
    return Settings(conf=conf, mtu=mtu, dns=dns_override(raw, conf), warnings=warnings)


def dns_override(raw: dict, conf: PtpConf) -> DNS | None:
    """The config's `dns`, when it is "set" as the reference decides: any of
    nameservers/search/options present (even empty) or a domain. It then
    replaces IPAM's DNS in the result."""
    dns = lookup(raw, "dns")
    if not isinstance(dns, dict):
        return None
    present = any(lookup(dns, k) is not None for k in ("nameservers", "search", "options"))
    if not (present or conf.dns.domain):
        return None
    d = conf.dns
    return DNS(nameservers=list(d.nameservers), domain=d.domain,
               search=list(d.search), options=list(d.options))


@dataclass
class DeleteSettings:
    ipam_type: str = ""
    ip_masq: bool = False


def load_for_delete(raw: dict) -> DeleteSettings:
    """DEL (and GC) read only what they need and validate nothing else: a
    config that ADD would now refuse (a bad backend, an MTU) must still
    release what an earlier ADD made. Values of the wrong JSON type are
    ignored here, not fatal (decode.lenient)."""
    conf = lenient(PtpConf, raw)
    return DeleteSettings(ipam_type=conf.ipam.type, ip_masq=conf.ip_masq)


# --- the addresses and routes of an attachment ---------------------------------

@dataclass
class HostRoute:
    dst: str            # CIDR
    gw: str = ""
    src: str = ""
    scope: int = RT_SCOPE_UNIVERSE


@dataclass
class Plan:
    """What ADD puts where, for the IPs of the IPAM result."""
    host_addresses: list[str] = field(default_factory=list)     # gw/32, gw/128
    host_routes: list[HostRoute] = field(default_factory=list)  # ip/32 dev host-veth
    # container: the kernel's prefix route of each address goes, these come
    connected: list[str] = field(default_factory=list)          # prefixes to remove
    container_routes: list[HostRoute] = field(default_factory=list)
    families: list[int] = field(default_factory=list)


def plan(ips: list[IPConfig]) -> Plan:
    """The reference's layout. For IP 10.1.2.5/24 with gateway 10.1.2.1:

      container: 10.1.2.5/24 (its 10.1.2.0/24 prefix route removed),
                 10.1.2.1/32 dev eth0 scope link src 10.1.2.5,
                 10.1.2.0/24 via 10.1.2.1 src 10.1.2.5
      host veth: 10.1.2.1/32, route 10.1.2.5/32 dev veth scope host

    so all container traffic goes through the gateway, i.e. the host. The
    same for IPv6 with /128. An address whose prefix is already a single
    host (/32, /128) has no prefix route to remove or re-route (the
    reference fails on it)."""
    from pycni import ipaddr
    out = Plan()
    for ip in ips:
        iface = ipaddr.ip_interface(ip.address)
        if not ip.gateway:
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f"IPAM returned no gateway for {ip.address}",
                           "ptp puts the gateway's address on the host end of the veth: "
                           "configure a gateway in the IPAM config")
        gw = ipaddr.ip_address(ip.gateway)
        if gw.version != iface.version:
            raise CNIError(INTERNAL, f"IPAM returned gateway {ip.gateway} of another "
                           f"family than {ip.address}")
        bits = iface.max_prefixlen
        gw_host = f"{gw}/{bits}"
        if gw_host not in out.host_addresses:
            out.host_addresses.append(gw_host)
        out.host_routes.append(HostRoute(dst=f"{iface.ip}/{bits}", scope=RT_SCOPE_HOST))
        if iface.version not in out.families:
            out.families.append(iface.version)
        out.container_routes.append(HostRoute(dst=gw_host, src=str(iface.ip),
                                              scope=RT_SCOPE_LINK))
        if iface.network.prefixlen < bits:
            out.connected.append(str(iface.network))
            out.container_routes.append(HostRoute(dst=str(iface.network), gw=str(gw),
                                                  src=str(iface.ip)))
    return out


# --- the result -------------------------------------------------------------------

def build_result(cni_version: str, ipam_result: Result, host: Interface,
                 container: Interface, dns: DNS | None) -> Result:
    """interfaces=[host veth, container veth], every IP on interface 1,
    IPAM's routes, and IPAM's DNS unless the config sets its own."""
    if not ipam_result.ips:
        raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
    ips = [IPConfig(ip.address, ip.gateway, 1) for ip in ipam_result.ips]
    return Result(cni_version=cni_version, interfaces=[host, container], ips=ips,
                  routes=[Route(r.dst, r.gw, r.mtu, r.advmss, r.priority, r.table, r.scope)
                          for r in ipam_result.routes],
                  dns=dns if dns is not None else ipam_result.dns)
