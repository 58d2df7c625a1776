"""host-local configuration: the JSON model and its canonical, validated form.

The JSON model (`NetConf`) is decoded with pycni.decode; `load()` turns it
into a `Config` whose range sets are canonical `Range` values (integers,
inclusive bounds, defaults filled in), exactly as the reference
canonicalizes them, and rejects the same mistakes with the same messages.
Everything here is pure: no file is read except resolvConf, by the plugin.

A `gateway` outside its subnet, or of the other address family, is
accepted as the reference accepts it (it checks only that it is an IP
address) and reported in the result as written, with a warning
(pycni.log); it is then never one of the range's addresses, so the
subnet's first address is handed out too, as by the reference.
"""

from pycni.model import dataclass, field

from pycni import version as versions
from pycni.config import ArgsConf
from pycni.decode import decode, key
from pycni.errors import CNIError, INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


# ---------------------------------------------------------------- JSON model

@dataclass
class RangeConf:
    subnet: str = ""
    range_start: str = ""
    range_end: str = ""
    gateway: str = ""


@dataclass
class IPAMConf:
    type: str = ""
    # legacy single range, directly under ipam
    subnet: str = ""
    range_start: str = ""
    range_end: str = ""
    gateway: str = ""
    ranges: list[list[RangeConf]] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    data_dir: str = ""
    resolv_conf: str = ""


@dataclass
class RuntimeConf:
    ip_ranges: list[list[RangeConf]] = key("ipRanges", default_factory=list)
    ips: list[str] = field(default_factory=list)


@dataclass
class NetConf:
    name: str = ""
    cni_version: str = ""
    ipam: IPAMConf | None = None
    runtime_config: RuntimeConf = field(default_factory=RuntimeConf)
    args: ArgsConf | None = None


# ----------------------------------------------------------- canonical model

class Range:
    """One pool: addresses start..end (inclusive) of a subnet, as integers.
    (A plain class: each dataclass costs ~0.5 ms to create at import.)"""
    __slots__ = ("family", "network", "prefix", "start", "end", "gateway", "foreign_gateway")

    def __init__(self, family: int, network: int, prefix: int, start: int, end: int,
                 gateway: int, foreign_gateway: str = ""):
        self.family = family        # 4 or 6
        self.network = network      # the subnet's network address
        self.prefix = prefix
        self.start = start
        self.end = end
        # A gateway of the other family is FOREIGN here (equal to no
        # address of the range) and its text `foreign_gateway`.
        self.gateway = gateway
        self.foreign_gateway = foreign_gateway

    @property
    def bits(self) -> int:
        return 32 if self.family == 4 else 128

    @property
    def last(self) -> int:
        """The subnet's last address (the v4 broadcast address)."""
        return self.network | ((1 << (self.bits - self.prefix)) - 1)

    def in_subnet(self, family: int, value: int) -> bool:
        return family == self.family and self.network <= value <= self.last

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.start <= value <= self.end \
            and self.in_subnet(family, value)

    def never_handed_out(self, value: int) -> bool:
        """Gateway, network address and (v4) broadcast address."""
        return value == self.gateway or value == self.network or \
            (self.family == 4 and value == self.last)

    def usable(self) -> int:
        """How many addresses of start..end can be handed out."""
        count = self.end - self.start + 1
        skipped = {self.gateway, self.network}
        if self.family == 4:
            skipped.add(self.last)
        return count - sum(1 for v in skipped if self.start <= v <= self.end)

    def text(self, value: int) -> str:
        if value == FOREIGN:
            return self.foreign_gateway
        return ip_text(self.family, value)

    def cidr(self, value: int) -> str:
        return f"{self.text(value)}/{self.prefix}"

    def subnet_text(self) -> str:
        return self.cidr(self.network)

    def __str__(self) -> str:
        return f"{self.text(self.start)}-{self.text(self.end)}"


# Range.gateway of a gateway of the other address family: no address is -1
FOREIGN = -1

RangeSet = tuple[Range, ...]


def range_set_text(rs: RangeSet) -> str:
    return ",".join(str(r) for r in rs)


def range_set_family(rs: RangeSet) -> int:
    return rs[0].family


def range_for(rs: RangeSet, family: int, value: int) -> Range | None:
    for r in rs:
        if r.contains(family, value):
            return r
    return None


class Config:
    """A loaded, validated host-local configuration."""

    def __init__(self, name: str, cni_version: str, range_sets: list, routes=None,
                 data_dir: str = DEFAULT_DATA_DIR, resolv_conf: str = "", requested=None):
        self.name = name
        self.cni_version = cni_version
        self.range_sets: list[RangeSet] = range_sets
        self.routes = routes or []                  # pycni.result.Route
        self.data_dir = data_dir
        self.resolv_conf = resolv_conf
        self.requested: list[tuple[int, int]] = requested or []    # (family, value)


# ------------------------------------------------------------ address helpers

def parse_ip(text: str) -> tuple[int, int]:
    """'10.1.2.3' or '10.1.2.3/24' -> (family, integer). v4-mapped v6
    addresses count as v4, as Go's net.IP does. Raises ValueError."""
    from pycni import ipaddr
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    addr = ipaddr.ip_interface(text.strip()).ip if "/" in text \
        else ipaddr.ip_address(text.strip())
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.version, int(addr)


def ip_text(family: int, value: int) -> str:
    from pycni import ipaddr
    if family == 4:
        return str(ipaddr.IPv4Address(value))
    return str(ipaddr.IPv6Address(value))


def _cfg_error(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


# ------------------------------------------------------------ canonicalizing

def canonicalize_range(rc: RangeConf) -> Range:
    """The reference's Range.Canonicalize; raises ValueError with its message."""
    from pycni import ipaddr
    if not rc.subnet:
        raise ValueError("subnet is missing")
    try:
        iface = ipaddr.ip_interface(rc.subnet.strip())
    except ValueError:
        raise ValueError(f"invalid CIDR address: {rc.subnet}") from None
    net = iface.network
    family, bits = net.version, net.max_prefixlen
    if net.version == 6 and iface.ip.ipv4_mapped is not None:
        raise ValueError("IPNet IP and Mask version mismatch")
    if net.prefixlen > bits - 2:
        raise ValueError(f"Network {rc.subnet.strip()} too small to allocate from")
    if iface.ip != net.network_address:
        raise ValueError(f"Network has host bits set. For a subnet mask of length "
                         f"{net.prefixlen} the network address is {net.network_address}")
    network = int(net.network_address)
    last = int(net.broadcast_address)
    probe = Range(family, network, net.prefixlen, network, last, network + 1)

    def address(text: str, what: str) -> int:
        try:
            fam, value = parse_ip(text)
        except ValueError:
            raise ValueError(f"invalid {what} {text!r}") from None
        if not probe.in_subnet(fam, value):
            name = {"rangeStart": "RangeStart", "rangeEnd": "RangeEnd"}.get(what, "Gateway")
            raise ValueError(f"{name} {text.strip()} not in network {net}")
        return value

    gateway, foreign = network + 1, ""
    if rc.gateway:
        try:
            gw_family, gateway = parse_ip(rc.gateway)
        except ValueError:
            raise ValueError(f"invalid gateway {rc.gateway!r}") from None
        if not probe.in_subnet(gw_family, gateway):
            # the reference takes any address: see the module doc
            from pycni import log
            log.warning(f"host-local: gateway {ip_text(gw_family, gateway)} is not in "
                        f"network {net}; it is reported as the gateway all the same")
            if gw_family != family:
                gateway, foreign = FOREIGN, ip_text(gw_family, gateway)
    start = address(rc.range_start, "rangeStart") if rc.range_start else network + 1
    if rc.range_end:
        end = address(rc.range_end, "rangeEnd")
    else:
        end = last - 1 if family == 4 else last
    if start > end:
        raise ValueError(f"RangeStart {ip_text(family, start)} is after "
                         f"RangeEnd {ip_text(family, end)}")
    return Range(family, network, net.prefixlen, start, end, gateway, foreign)


def overlaps(a: Range, b: Range) -> bool:
    return a.family == b.family and a.start <= b.end and b.start <= a.end


def canonicalize_set(confs: list[RangeConf]) -> RangeSet:
    """The reference's RangeSet.Canonicalize; raises ValueError."""
    if not confs:
        raise ValueError("empty range set")
    ranges = []
    for rc in confs:
        r = canonicalize_range(rc)
        if ranges and r.family != ranges[0].family:
            raise ValueError("mixed address families")
        ranges.append(r)
    for i, r1 in enumerate(ranges):
        for r2 in ranges[i + 1:]:
            if overlaps(r1, r2):
                raise ValueError(f"subnets {r1} and {r2} overlap")
    return tuple(ranges)


def sets_overlap(s1: RangeSet, s2: RangeSet) -> bool:
    return any(overlaps(a, b) for a in s1 for b in s2)


def requested_ips(conf: NetConf, args_text: str) -> list[tuple[int, int]]:
    """Union of CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips, in that order,
    without duplicates."""
    from pycni.args import parse_cni_args
    texts = []
    if args_text:
        args = parse_cni_args(args_text)
        args.require_known({"IP"})
        if args.get("IP"):
            texts.append(("CNI_ARGS IP", args.get("IP")))
    if conf.args is not None and conf.args.cni is not None:
        texts += [("args.cni.ips", t) for t in conf.args.cni.ips]
    texts += [("runtimeConfig.ips", t) for t in conf.runtime_config.ips]
    out = []
    for source, text in texts:
        try:
            ip = parse_ip(text)
        except ValueError:
            code = INVALID_ENVIRONMENT if source == "CNI_ARGS IP" else INVALID_NETWORK_CONFIG
            raise CNIError(code, f"cannot understand ip: {text!r}",
                           f"from {source}") from None
        if ip not in out:
            out.append(ip)
    return out


def parse_routes(raw: list[dict]) -> list:
    """`routes` are copied into the result; each must have a valid dst."""
    from pycni.result import Route
    from pycni import ipaddr
    out = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            raise _cfg_error(f"invalid route {i}: expected an object")
        from pycni.decode import GoKeys
        r = GoKeys(r)   # Go matches the keys in any case, the last one winning
        dst = r.get("dst")
        try:
            ipaddr.ip_network(dst, strict=False)
            gw = r.get("gw") or ""
            if gw:
                ipaddr.ip_address(gw)
        except (TypeError, ValueError):
            raise _cfg_error(f"invalid route {i}", f"{r!r}") from None
        ints = {}
        for name in ("mtu", "advmss", "priority", "table", "scope"):
            v = r.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise _cfg_error(f"invalid route {i}: {name} must be an integer")
            ints[name] = v
        out.append(Route(dst=dst, gw=gw, mtu=ints["mtu"] or 0, advmss=ints["advmss"] or 0,
                         priority=ints["priority"] or 0, table=ints["table"],
                         scope=ints["scope"]))
    return out


def load(config: dict, args_text: str = "") -> Config:
    """Decode and validate a host-local network config (the reference's
    LoadIPAMConfig). Raises CNIError(7) for bad configs."""
    conf = decode(NetConf, config)
    ipam = conf.ipam
    if ipam is None:
        raise _cfg_error("IPAM config missing 'ipam' key")
    requested = requested_ips(conf, args_text)

    raw_sets = list(conf.runtime_config.ip_ranges)     # the capability is prepended
    if ipam.subnet:
        raw_sets.append([RangeConf(ipam.subnet, ipam.range_start, ipam.range_end,
                                   ipam.gateway)])
    raw_sets += ipam.ranges
    if not raw_sets:
        raise _cfg_error("no IP ranges specified")

    sets: list[RangeSet] = []
    for i, raw in enumerate(raw_sets):
        try:
            sets.append(canonicalize_set(raw))
        except ValueError as exc:
            raise _cfg_error(f"invalid range set {i}: {exc}") from None

    version = conf.cni_version or versions.DEFAULT
    families = [range_set_family(s) for s in sets]
    if (families.count(4) > 1 or families.count(6) > 1) and \
            not _at_least(version, "0.3.0"):
        raise _cfg_error(f"CNI version {conf.cni_version} does not support more "
                         f"than 1 address per family")
    for i, s1 in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if sets_overlap(s1, sets[j]):
                raise _cfg_error(f"range set {i} overlaps with {j}")

    return Config(name=conf.name, cni_version=version, range_sets=sets,
                  routes=parse_routes(ipam.routes),
                  data_dir=ipam.data_dir or DEFAULT_DATA_DIR,
                  resolv_conf=ipam.resolv_conf, requested=requested)


def _at_least(version: str, minimum: str) -> bool:
    try:
        return versions.at_least(version, minimum)
    except ValueError:
        return False


def parse_resolv_conf(text: str):
    """nameserver/domain/search/options lines -> pycni.result.DNS."""
    from pycni.result import DNS
    dns = DNS()
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            dns.nameservers.append(fields[1])
        elif fields[0] == "domain":
            dns.domain = fields[1]
        elif fields[0] == "search":
            dns.search += fields[1:]
        elif fields[0] == "options":
            dns.options += fields[1:]
    return dns


def store_location(config: dict) -> "Config | None":
    """Just the name and dataDir of a config that does not load (for DEL)."""
    from pycni.decode import lookup
    ipam = lookup(config, "ipam")
    name = lookup(config, "name")
    if not isinstance(ipam, dict) or not isinstance(name, str):
        return None
    data_dir = lookup(ipam, "dataDir") or DEFAULT_DATA_DIR
    if not isinstance(data_dir, str):
        return None
    return Config(name=name, cni_version="", range_sets=[], data_dir=data_dir)


def check_problem(conf: Config, held: list[str], prev_result, container_id: str) -> str:
    """CHECK: what is wrong with the addresses `held` by the container, or "".

    The reference only asks for at least one address. We also ask that every
    address of the previous result that lies in our ranges is held, or,
    without a previous result, that every range set has one held address.
    """
    if not held:
        return f"Failed to find address added by container {container_id}"
    owned = set()
    for name in held:
        try:
            owned.add(parse_ip(name))
        except ValueError:
            continue
    if prev_result is not None:
        for ipc in prev_result.ips:
            try:
                ip = parse_ip(ipc.address)
            except ValueError:
                continue
            in_ours = any(range_for(rs, *ip) for rs in conf.range_sets)
            if in_ours and ip not in owned:
                return f"address {ip_text(*ip)} is not allocated to container {container_id}"
        return ""
    for i, rs in enumerate(conf.range_sets):
        if not any(range_for(rs, *ip) for ip in owned):
            return f"no address of range set {i} ({range_set_text(rs)}) is allocated " \
                   f"to container {container_id}"
    return ""
