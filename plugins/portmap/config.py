"""The portmap configuration model and the pure decisions made from it.

Keys are those of the reference plugin (v1.9): `runtimeConfig.portMappings`
(capability `portMappings`), `snat`, `markMasqBit`, `externalSetMarkChain`,
`masqAll`, `conditionsV4`, `conditionsV6` and `backend`. Keys match
case-insensitively: containerd sends `HostPort`, podman `hostPort`.

Where the reference passes bad input on to iptables or nft and fails
there on ADD (an unknown protocol, a port above 65535), we refuse it up
front, on ADD and CHECK, with a clear error and before any state is
touched; DEL and GC accept it as the reference does (it never made a rule)
and skip such a mapping. A hostIP that is no IP address is accepted with a
warning, as the reference accepts it: Go reads it as IPv6, so it does not
apply to an IPv4 address and is skipped there (one with a character no
address or host name has, whitespace, `;`, a control character, is
refused in every command: it can only be meant for a rule script). For an IPv6 address the
reference hands it to ip6tables/nft, which look it up as a host name (root
resolving a tenant's name into rules): we refuse that ADD or CHECK when
prevResult holds an IPv6 address.
"""

from pycni.model import dataclass, field

from pycni.config import NetConf
from pycni.decode import decode, key
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG

IPTABLES = "iptables"
NFTABLES = "nftables"
BACKENDS = (IPTABLES, NFTABLES)
PROTOCOLS = ("tcp", "udp", "sctp")
DEFAULT_MARK_BIT = 13     # Kubernetes uses 14 and 15, Calico 20-31
# what a hostIP that is no address may hold (a name, a zone, a typo)
HOST_IP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:%_-")


@dataclass
class PortMapping:
    host_port: int = key("hostPort", default=0)
    container_port: int = key("containerPort", default=0)
    protocol: str = key("protocol", default="")
    host_ip: str = key("hostIP", default="")
    # set by normalize_mapping: False for a hostIP that is no IP address
    host_ip_ok: bool = field(default=True, init=False)


@dataclass
class RuntimeConfig:
    port_mappings: list[PortMapping] = key("portMappings", default_factory=list)


@dataclass
class PortMapConf(NetConf):
    backend: str | None = None
    snat: bool | None = None
    conditions_v4: list[str] | None = key("conditionsV4", default=None)
    conditions_v6: list[str] | None = key("conditionsV6", default=None)
    masq_all: bool = False
    mark_masq_bit: int | None = None
    external_set_mark_chain: str | None = None
    # filled in by parse_config from runtimeConfig
    mappings: list[PortMapping] = field(default_factory=list, init=False)

    @property
    def snat_on(self) -> bool:
        return self.snat is None or self.snat

    @property
    def mark_bit(self) -> int:
        return DEFAULT_MARK_BIT if self.mark_masq_bit is None else self.mark_masq_bit

    def conditions(self, family: int) -> list[str]:
        return list((self.conditions_v6 if family == 6 else self.conditions_v4) or [])


def _invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


def parse_config(raw: dict, detect_backend=None, scripts: bool = True) -> PortMapConf:
    """Decode and validate; `detect_backend()` picks the backend when the
    config names none (only called then, it execs tools). `scripts`: also
    check what ADD and CHECK write into rules (conditions,
    externalSetMarkChain); DEL and GC find rules by name and write none of
    it, so a config refused there still cleans up."""
    conf = decode(PortMapConf, raw)
    runtime = decode(RuntimeConfig, conf.runtime_config or {}, "config.runtimeConfig")
    normalized = [normalize_mapping(m, i, strict=scripts)
                  for i, m in enumerate(runtime.port_mappings)]
    conf.mappings = dedupe([m for m in normalized if m is not None])
    if conf.mark_masq_bit is not None and conf.external_set_mark_chain is not None:
        raise _invalid("Cannot specify externalSetMarkChain and markMasqBit")
    if not 0 <= conf.mark_bit <= 31:
        raise _invalid("MasqMarkBit must be between 0 and 31", str(conf.mark_bit))
    wanted = backend_options(conf)
    if conf.backend is None:
        conf.backend = detect_backend() if detect_backend else IPTABLES
    if conf.backend not in BACKENDS:
        raise _invalid(f'unrecognized backend "{conf.backend}"')
    wrong = NFTABLES if conf.backend == IPTABLES else IPTABLES
    if wanted.get(wrong):
        raise _invalid(f"{conf.backend} backend was requested but configuration contains "
                       f"{wrong}-specific options [{' '.join(wanted[wrong])}]")
    if scripts:
        validate_script_inputs(conf)
        refuse_name_lookups(conf, raw)
    return conf


def refuse_name_lookups(conf: PortMapConf, raw: dict) -> None:
    """A hostIP that is no address reaches the IPv6 rules as the
    reference treats it (Go's nil IP is not IPv4), where iptables and nft
    would resolve it as a host name: refused (code 7) when prevResult has
    an IPv6 address, before anything is changed."""
    bad = [m.host_ip for m in conf.mappings if m.host_ip and not m.host_ip_ok]
    if bad and _has_ipv6_address(raw):
        raise _invalid(f'Invalid hostIP "{bad[0]}": not an IP address',
                       "the container has an IPv6 address, where the reference would "
                       "look the name up in DNS; use an IP address")


def _has_ipv6_address(raw: dict) -> bool:
    from pycni.decode import lookup
    prev = lookup(raw, "prevResult")
    ips = lookup(prev, "ips") if isinstance(prev, dict) else None
    if not isinstance(ips, list):   # 0.2.0 results: ip6
        return isinstance(prev, dict) and bool(lookup(prev, "ip6"))
    return any(isinstance(ip, dict) and ":" in str(lookup(ip, "address") or "")
               for ip in ips)


def validate_script_inputs(conf: PortMapConf) -> None:
    """Everything of the config that is written into an iptables-restore
    or nft script must be one token of one rule (see pycni.fwquote)."""
    from pycni import fwquote
    if conf.external_set_mark_chain is not None:
        fwquote.ipt_chain(conf.external_set_mark_chain, "externalSetMarkChain")
    for name, conds in (("conditionsV4", conf.conditions_v4),
                        ("conditionsV6", conf.conditions_v6)):
        if conds is None:
            continue
        if conf.backend == IPTABLES:
            fwquote.ipt_conditions(conds, name)
        else:
            fwquote.nft_conditions(conds, name)


def dedupe(mappings: list[PortMapping]) -> list[PortMapping]:
    """Identical mappings (after normalization) once, first-seen order:
    a repeated entry would only repeat rules."""
    seen, out = set(), []
    for m in mappings:
        ident = (m.host_port, m.container_port, m.protocol, m.host_ip)
        if ident not in seen:
            seen.add(ident)
            out.append(m)
    return out


def normalize_mapping(m: PortMapping, index: int, strict: bool = True) -> PortMapping | None:
    """The mapping with protocol lowercased and hostIP canonical. A port
    of 0 or less is refused in every command (the reference's check); a
    port above 65535 or an unknown protocol only when `strict` (ADD,
    CHECK: the reference fails there in iptables/nft), else the mapping
    is dropped (None: it never had a rule). A hostIP that is no address is
    kept as written, flagged, with a warning (see the module doc)."""
    where = f"runtimeConfig.portMappings[{index}]"
    if m.container_port <= 0:
        raise _invalid(f"Invalid container port number: {m.container_port}", where)
    if m.host_port <= 0:
        raise _invalid(f"Invalid host port number: {m.host_port}", where)
    proto = m.protocol.lower()
    problem = ""
    if m.container_port > 65535:
        problem = f"Invalid container port number: {m.container_port}"
    elif m.host_port > 65535:
        problem = f"Invalid host port number: {m.host_port}"
    elif proto not in PROTOCOLS:
        problem = f'Invalid protocol "{m.protocol}": expected tcp, udp or sctp'
    if problem:
        if strict:
            raise _invalid(problem, where)
        return None
    host_ip, ok = m.host_ip, True
    if host_ip:
        from pycni import ipaddr
        try:
            if "%" in host_ip:
                raise ValueError   # an IPv6 zone: Go's ParseIP takes none either
            addr = ipaddr.ip_address(host_ip)
            # an IPv4-mapped IPv6 address is IPv4 (as Go's To4 sees it)
            host_ip = str(getattr(addr, "ipv4_mapped", None) or addr)
        except ValueError:
            if any(c not in HOST_IP_CHARS for c in host_ip):
                # no address or name has these: what iptables or nft would
                # read as more than one word (refused, as every rule input)
                raise _invalid(f"Invalid hostIP {_quoted(host_ip)}", where) from None
            ok = False
            from pycni import log
            log.warning(f"portmap: {where}: hostIP {_quoted(host_ip)} is not an IP address; "
                        "the mapping applies to no IPv4 address (as in the reference)")
    out = PortMapping(m.host_port, m.container_port, proto, host_ip)
    out.host_ip_ok = ok
    return out


def _quoted(text: str) -> str:
    from pycni import jsontext
    return jsontext.dumps(text)


def conditions_backend(conditions: list[str] | None) -> str:
    """iptables conditions start with "-" or "!" (an option or a negation);
    nft expressions never do. "" when there are none."""
    if not conditions or not conditions[0]:
        return ""
    return IPTABLES if conditions[0][0] in "-!" else NFTABLES


def backend_options(conf: PortMapConf) -> dict[str, list[str]]:
    """backend -> the keys in `conf` that only that backend understands."""
    out: dict[str, list[str]] = {}
    if conf.external_set_mark_chain is not None:
        out.setdefault(IPTABLES, []).append("externalSetMarkChain")
    for name, conds in (("conditionsV4", conf.conditions_v4), ("conditionsV6", conf.conditions_v6)):
        backend = conditions_backend(conds)
        if backend:
            out.setdefault(backend, []).append(name)
    return out


# --- which container addresses and mappings ---------------------------------------

@dataclass
class ContainerIP:
    """One container address: "10.1.2.3/24" plus derived parts."""
    cidr: str

    @property
    def family(self) -> int:
        return 6 if ":" in self.cidr else 4

    @property
    def ip(self) -> str:
        return self.cidr.split("/")[0]

    @property
    def network(self) -> str:
        """The subnet in iptables' canonical form ("10.1.2.0/24")."""
        from pycni import ipaddr
        return str(ipaddr.ip_interface(self.cidr).network)


def container_ips(result, ifname: str) -> list[ContainerIP]:
    """The first IPv4 and first IPv6 address of `result` on the container
    interface `ifname`. Addresses with no interface index, or an index
    out of range, count (as in the reference); an index naming another
    interface or one outside a sandbox does not."""
    chosen: dict[int, ContainerIP] = {}
    for ip in result.ips:
        if ip.family in chosen:
            continue
        idx = ip.interface
        if idx is not None and 0 <= idx < len(result.interfaces):
            iface = result.interfaces[idx]
            if iface.name != ifname or not iface.sandbox:
                continue
        chosen[ip.family] = ContainerIP(ip.address if "/" in ip.address
                                        else ip.address + ("/128" if ip.family == 6 else "/32"))
    return [chosen[f] for f in (4, 6) if f in chosen]


def mappings_for(mappings: list[PortMapping], family: int) -> list[tuple[PortMapping, str]]:
    """(mapping, destination host IP or "") for `family`: a hostIP of the
    other family skips the mapping, an unspecified one (0.0.0.0, ::)
    means any local address. A hostIP that is no address counts as IPv6,
    as in the reference (skipped for IPv4; refused for IPv6 by
    parse_config, and here again should a caller get that far)."""
    out = []
    for m in mappings:
        dest = ""
        if m.host_ip:
            host_family = 6 if ":" in m.host_ip or not m.host_ip_ok else 4
            if host_family != family:
                continue
            if not m.host_ip_ok:
                raise _invalid(f'Invalid hostIP "{m.host_ip}": not an IP address')
            if m.host_ip not in ("0.0.0.0", "::"):
                dest = m.host_ip
        out.append((m, dest))
    return out
