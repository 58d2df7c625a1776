"""host-local configuration: the JSON model and its loaded, validated form
(the reference's backend/allocator/config.go).

The JSON model (`HostLocalConf`) is decoded with pycni.decode; `load()`
turns it into `Settings` whose range sets are canonical (range_set.py,
range.py: integers, inclusive bounds, defaults filled in), exactly as the
reference canonicalizes them, and rejects the same mistakes with the same
messages. Everything here is pure: no file is read (resolvConf is read by
dns.py, for ADD).
"""

from pycni.model import dataclass, field

from pycni import version as versions
from pycni.config import IPAMConf, IPAMPluginConf, IPAMRuntimeConf
from pycni.decode import decode, key
from pycni.errors import CNIError, INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG, invalid_config

from .range import RangeConf, parse_ip
from .range_set import RangeSet, canonicalize_set, range_set_family, sets_overlap

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


# ---------------------------------------------------------------- JSON model

@dataclass
class HostLocalIPAMConf(RangeConf, IPAMConf):
    """The config's `ipam`, as host-local reads it (the reference's
    IPAMConfig): the IPAM `type`, a legacy single range directly under ipam
    (RangeConf's keys), then host-local's own keys."""
    ranges: list[list[RangeConf]] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    data_dir: str = ""
    resolv_conf: str = ""


@dataclass
class RuntimeConf(IPAMRuntimeConf):
    """runtimeConfig: the ipRanges and ips capabilities."""
    ip_ranges: list[list[RangeConf]] = key("ipRanges", default_factory=list)


@dataclass
class HostLocalConf(IPAMPluginConf):
    """The whole network config, as host-local reads it (the reference's Net)."""
    ipam: HostLocalIPAMConf | None = None
    runtime_config: RuntimeConf = field(default_factory=RuntimeConf)


# ------------------------------------------------------------ loaded form

class Settings:
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


# ------------------------------------------------------------------ loading

def requested_ips(conf: HostLocalConf, args_text: str) -> list[tuple[int, int]]:
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
            raise invalid_config(f"invalid route {i}: expected an object")
        from pycni.decode import GoKeys
        r = GoKeys(r)   # Go matches the keys in any case, the last one winning
        dst = r.get("dst")
        try:
            ipaddr.ip_network(dst, strict=False)
            gw = r.get("gw") or ""
            if gw:
                ipaddr.ip_address(gw)
        except (TypeError, ValueError):
            raise invalid_config(f"invalid route {i}", f"{r!r}") from None
        ints = {}
        for name in ("mtu", "advmss", "priority", "table", "scope"):
            v = r.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise invalid_config(f"invalid route {i}: {name} must be an integer")
            ints[name] = v
        out.append(Route(dst=dst, gw=gw, mtu=ints["mtu"] or 0, advmss=ints["advmss"] or 0,
                         priority=ints["priority"] or 0, table=ints["table"],
                         scope=ints["scope"]))
    return out


def load(config: dict, args_text: str = "") -> Settings:
    """Decode and validate a host-local network config (the reference's
    LoadIPAMConfig). Raises CNIError(7) for bad configs."""
    conf = decode(HostLocalConf, config)
    ipam = conf.ipam
    if ipam is None:
        raise invalid_config("IPAM config missing 'ipam' key")
    requested = requested_ips(conf, args_text)

    raw_sets = list(conf.runtime_config.ip_ranges)     # the capability is prepended
    if ipam.subnet:
        raw_sets.append([RangeConf(ipam.subnet, ipam.range_start, ipam.range_end,
                                   ipam.gateway)])
    raw_sets += ipam.ranges
    if not raw_sets:
        raise invalid_config("no IP ranges specified")

    sets: list[RangeSet] = []
    for i, raw in enumerate(raw_sets):
        try:
            sets.append(canonicalize_set(raw))
        except ValueError as exc:
            raise invalid_config(f"invalid range set {i}: {exc}") from None

    version = conf.cni_version or versions.DEFAULT
    families = [range_set_family(s) for s in sets]
    if (families.count(4) > 1 or families.count(6) > 1) and \
            not _at_least(version, "0.3.0"):
        raise invalid_config(f"CNI version {conf.cni_version} does not support more "
                         f"than 1 address per family")
    for i, s1 in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if sets_overlap(s1, sets[j]):
                raise invalid_config(f"range set {i} overlaps with {j}")

    return Settings(name=conf.name, cni_version=version, range_sets=sets,
                    routes=parse_routes(ipam.routes),
                    data_dir=ipam.data_dir or DEFAULT_DATA_DIR,
                    resolv_conf=ipam.resolv_conf, requested=requested)


def _at_least(version: str, minimum: str) -> bool:
    try:
        return versions.at_least(version, minimum)
    except ValueError:
        return False


def store_location(config: dict) -> "Settings | None":
    """Just the name and dataDir of a config that does not load (for DEL)."""
    from pycni.decode import lookup
    ipam = lookup(config, "ipam")
    name = lookup(config, "name")
    if not isinstance(ipam, dict) or not isinstance(name, str):
        return None
    data_dir = lookup(ipam, "dataDir") or DEFAULT_DATA_DIR
    if not isinstance(data_dir, str):
        return None
    return Settings(name=name, cni_version="", range_sets=[], data_dir=data_dir)
