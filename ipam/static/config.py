"""static configuration: the JSON model, CNI_ARGS, and the addresses ADD hands out.

Everything here is pure. `load()` is the reference's LoadIPAMConfig: the
network config decoded as Go decodes it (pycni.decode), `IP`/`GATEWAY`
from CNI_ARGS appended (parsed as the reference's types.LoadArgs parses
them, IgnoreUnknown included), then `args.cni.ips` and the `ips`
capability (runtimeConfig), each *replacing* what came before, then every
address validated. Addresses are kept in Go's canonical form (an
IPv4-mapped IPv6 address is IPv4, as net.IP.To4 makes it), so results
print what the reference prints.

Every refusal is code 999 with the reference's message: the reference
returns plain errors, which its skel reports as code 999, and a drop-in
replacement keeps the codes callers may test for.
"""

from pycni.model import dataclass, field

from pycni import version as versions
from pycni.config import DNSConf, IPAMPluginConf
from pycni.decode import DecodeError, decode
from pycni.errors import CNIError, INTERNAL


def refusal(msg: str, details: str = "") -> CNIError:
    return CNIError(INTERNAL, msg, details)


# ---------------------------------------------------------------- JSON model

@dataclass
class AddressConf:
    address: str = ""
    gateway: str = ""


@dataclass
class StaticIPAMConf:
    """The config's `ipam`, as static reads it (the reference's IPAMConfig)."""
    name: str = ""          # the Go struct has it (untagged): it must be a string
    type: str = ""
    routes: list[object] = field(default_factory=list)
    addresses: list[AddressConf] = field(default_factory=list)
    dns: DNSConf = field(default_factory=DNSConf)


@dataclass
class StaticConf(IPAMPluginConf):
    """The whole network config, as static reads it (the reference's Net:
    runtimeConfig has the `ips` capability only)."""
    ipam: StaticIPAMConf | None = None


# ----------------------------------------------------------------- addresses

class IP:
    """An address as Go's net.IP holds it after To4/To16: family 4 or 6 and
    its integer value; equal when Go's IP.Equal says so."""
    __slots__ = ("family", "value")

    def __init__(self, family: int, value: int):
        self.family = family
        self.value = value

    def __eq__(self, other) -> bool:
        return isinstance(other, IP) and (self.family, self.value) == (other.family, other.value)

    def __hash__(self) -> int:
        return hash((self.family, self.value))

    def __str__(self) -> str:
        from pycni import ipaddr
        return str(ipaddr.Address(self.family, self.value))

    __repr__ = __str__


class CIDR:
    """An address with its prefix length (the IP is kept, not masked),
    as Go's ParseCIDR returns it with IPNet.IP set to the address."""
    __slots__ = ("ip", "prefix")

    def __init__(self, ip: IP, prefix: int):
        self.ip = ip
        self.prefix = prefix

    def contains(self, ip: IP) -> bool:
        """Go's IPNet.Contains."""
        if ip.family != self.ip.family:
            return False
        host_bits = (32 if ip.family == 4 else 128) - self.prefix
        return ip.value >> host_bits == self.ip.value >> host_bits

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefix}"

    __repr__ = __str__


_MAPPED = 0xFFFF << 32


def parse_ip(text) -> IP | None:
    """Go's net.ParseIP: IPv4 or IPv6 text (no zone, no leading zeros in
    IPv4 octets), an IPv4-mapped IPv6 address being IPv4; None otherwise."""
    from pycni import ipaddr
    if not isinstance(text, str):
        return None
    try:
        addr = ipaddr.ip_address(text)
    except ValueError:
        return None
    value = int(addr)
    if addr.version == 6 and value >> 32 == 0xFFFF:
        return IP(4, value & 0xFFFFFFFF)
    return IP(addr.version, value)


def parse_cidr(text) -> CIDR | None:
    """Go's net.ParseCIDR with the address kept: "a.b.c.d/len" or
    "x::y/len"; the length is decimal digits (leading zeros allowed), at
    most the address's bit length. An IPv4-mapped address becomes IPv4
    with the prefix its mask's last 32 bits give (what Go prints:
    ::ffff:10.0.0.1/120 is 10.0.0.1/24, /90 is 10.0.0.1/0). None otherwise."""
    from pycni import ipaddr
    if not isinstance(text, str):
        return None
    addr_text, sep, prefix_text = text.partition("/")
    if not sep or not prefix_text.isascii() or not prefix_text.isdigit():
        return None
    try:
        addr = ipaddr.ip_address(addr_text)
    except ValueError:
        return None
    digits = prefix_text.lstrip("0")
    if len(digits) > 3:     # Go stops at 2^24; int() would refuse 4,300+ digits
        return None
    prefix = int(digits or "0")
    if prefix > addr.max_prefixlen:
        return None
    value = int(addr)
    if addr.version == 6 and value >> 32 == 0xFFFF:
        return CIDR(IP(4, value & 0xFFFFFFFF), max(0, prefix - 96))
    return CIDR(IP(addr.version, value), prefix)


class Address:
    """One address of the result: where it came from (its text), its
    parsed value (None until validated, as in the reference, where only
    CNI_ARGS addresses are parsed before GATEWAY is applied) and gateway."""
    __slots__ = ("text", "cidr", "gateway")

    def __init__(self, text: str, cidr: CIDR | None = None, gateway: IP | None = None):
        self.text = text
        self.cidr = cidr
        self.gateway = gateway


class Settings:
    """A loaded, validated static configuration."""

    def __init__(self, name: str, cni_version: str, addresses: list, routes: list, dns):
        self.name = name
        self.cni_version = cni_version
        self.addresses: list[Address] = addresses
        self.routes = routes            # pycni.result.Route
        self.dns = dns                  # pycni.result.DNS


# ------------------------------------------------------------------ CNI_ARGS

def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote), for messages."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        elif ord(ch) < 0x10000:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append("\\U%08x" % ord(ch))
    out.append('"')
    return "".join(out)


def load_env_args(text: str) -> tuple[str, str]:
    """(IP, GATEWAY) of CNI_ARGS, parsed as the reference's types.LoadArgs
    fills its IPAMEnvArgs: "K=V" pairs split on ';' and '=', keys matched
    case-sensitively against the struct's fields (IP, GATEWAY,
    IgnoreUnknown; the last of a repeated key wins), unknown keys refused
    unless IgnoreUnknown is true (1/true in any case) when parsing ends."""
    ip = gateway = ""
    ignore_unknown = False
    unknown = []
    if not text:
        return ip, gateway
    for pair in text.split(";"):
        kv = pair.split("=")
        if len(kv) != 2:
            raise refusal(f"ARGS: invalid pair {go_quote(pair)}")
        k, v = kv
        if k == "IP":
            ip = v
        elif k == "GATEWAY":
            gateway = v
        elif k == "IgnoreUnknown":
            lowered = v.lower()
            if lowered not in ("1", "true", "0", "false"):
                raise refusal(f"ARGS: error parsing value of pair {go_quote(pair)}: "
                             f"boolean unmarshal error: invalid input {lowered}")
            ignore_unknown = lowered in ("1", "true")
        elif k == "CommonArgs":     # the embedded struct: a field Go cannot fill
            raise refusal("ARGS: cannot unmarshal into field 'CommonArgs' - type "
                         "'*types.CommonArgs' does not implement encoding.TextUnmarshaler")
        else:
            unknown.append(pair)
    if unknown and not ignore_unknown:
        raise refusal(f"ARGS: unknown args [{' '.join(go_quote(u) for u in unknown)}]")
    return ip, gateway


def env_addresses(ip_text: str, gateway_text: str, addresses: list) -> None:
    """CNI_ARGS IP (comma-separated CIDRs) appended to `addresses`, then each
    GATEWAY set on every address whose subnet contains it (a later one
    wins; only addresses parsed by now, i.e. those of CNI_ARGS, as in the
    reference); a GATEWAY no subnet contains is ignored."""
    if ip_text:
        for item in ip_text.split(","):
            text = item.strip()
            cidr = parse_cidr(text)
            if cidr is None:
                raise refusal(f"the 'ip' field is expected to be in CIDR notation, "
                             f"got: '{text}'")
            addresses.append(Address(text, cidr))
    if gateway_text:
        for item in gateway_text.split(","):
            gw = parse_ip(item.strip())
            if gw is None:
                raise refusal(f"invalid gateway address: {item}")
            for a in addresses:
                if a.cidr is not None and a.cidr.contains(gw):
                    a.gateway = gw


def replacing_addresses(texts: list[str]) -> list:
    """`args.cni.ips` or runtimeConfig `ips`: CIDRs that replace every
    address found so far."""
    out = []
    for text in texts:
        cidr = parse_cidr(text)
        if cidr is None:
            raise refusal(f"an entry in the 'ips' field is NOT in CIDR notation, got: '{text}'")
        out.append(Address(text, cidr))
    return out


# -------------------------------------------------------------------- routes

def parse_routes(raw: list) -> list:
    """`ipam.routes` as the reference's types.Route decodes them: `dst` a
    CIDR (the address kept as written, canonical), `gw` an IP, `mtu`,
    `advmss`, `priority` integers, `table`, `scope` optional integers."""
    from pycni.decode import GoKeys
    from pycni.result import Route as ResultRoute
    out = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            # the reference copies a null route into the result as null,
            # which no runtime or plugin can read back
            raise refusal(f"invalid route {i}: expected an object, got "
                         f"{'null' if r is None else type(r).__name__}")
        r = GoKeys(r)
        dst_raw = r.get("dst")
        if "dst" not in r:
            # the reference prints "dst": "<nil>", which no runtime can read back
            raise refusal(f"invalid route {i}: dst is missing")
        if dst_raw is not None and not isinstance(dst_raw, str):
            raise refusal(f"invalid route {i}: dst must be a string")
        dst = parse_cidr(dst_raw or "")
        if dst is None:
            raise refusal(f"invalid CIDR address: {dst_raw or ''}")
        gw_raw = r.get("gw")
        if gw_raw is not None and not isinstance(gw_raw, str):
            raise refusal(f"invalid route {i}: gw must be a string")
        gw = None
        if gw_raw:
            gw = parse_ip(gw_raw)
            if gw is None:
                raise refusal(f"invalid IP address: {gw_raw}")
        ints = {}
        for name in ("mtu", "advmss", "priority", "table", "scope"):
            v = r.get(name)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or not -(1 << 63) <= v < (1 << 63)):   # Go's int
                raise refusal(f"invalid route {i}: {name} must be an integer")
            ints[name] = v
        out.append(ResultRoute(dst=str(dst), gw=str(gw) if gw else "",
                               mtu=ints["mtu"] or 0, advmss=ints["advmss"] or 0,
                               priority=ints["priority"] or 0, table=ints["table"],
                               scope=ints["scope"]))
    return out


# ---------------------------------------------------------------------- load

def _at_least(version: str, minimum: str) -> bool:
    try:
        return versions.at_least(version, minimum)
    except ValueError:
        return False


def decode_netconf(config: dict) -> tuple[StaticConf, list]:
    """The config decoded as Go decodes it into the reference's Net struct,
    and the parsed value of each address's `Address` key (see
    `parsed_address`); a value of the wrong JSON type is refused (code 999,
    as the reference's json.Unmarshal error is)."""
    parsed = []
    ipam_key = _last_key(config, "ipam")
    ipam = config[ipam_key] if ipam_key is not None else None
    addresses_key = _last_key(ipam, "addresses") if isinstance(ipam, dict) else None
    raw = ipam[addresses_key] if isinstance(ipam, dict) and addresses_key is not None else None
    if isinstance(ipam, dict) and isinstance(raw, list) and \
            any(isinstance(a, dict) and "Address" in a for a in raw):
        stripped = []
        for i, a in enumerate(raw):
            if isinstance(a, dict) and "Address" in a:
                parsed.append(parsed_address(a["Address"], i))
                a = {k: v for k, v in a.items() if k != "Address"}
            else:
                parsed.append(None)
            stripped.append(a)
        # replaced where they stand: the keys Go applies last stay last
        config = {**config, ipam_key: {**ipam, addresses_key: stripped}}
    try:
        return decode(StaticConf, config), parsed
    except DecodeError as err:
        raise refusal(err.msg, err.details) from None


def _last_key(obj: dict, name: str):
    """The key of `obj` that Go's decoding applies last for field `name`."""
    from pycni.decode import fold
    wanted = fold(name)
    return next((k for k in reversed(obj) if isinstance(k, str) and fold(k) == wanted), None)


def parsed_address(raw, i: int) -> "CIDR | None":
    """The reference's Address struct also has an untagged `Address
    net.IPNet` field (where it keeps the parsed `address`): a key spelled
    exactly "Address" fills it, {"IP": "10.0.0.5", "Mask": "<base64>"}, and
    an address with an IP there is taken as is, its `address` text not
    parsed. Go matches the exact spelling first, so this key is not
    `address`. A mask that is not a prefix of ones is refused (the
    reference prints it in hex)."""
    from pycni.decode import GoKeys
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise refusal(f"invalid value for config.ipam.addresses[{i}].Address: expected an "
                      f"IPNet object {{IP, Mask}}")
    raw = GoKeys(raw)
    ip_raw, mask_raw = raw.get("ip"), raw.get("mask")
    if ip_raw is None or ip_raw == "":
        return None
    ip = parse_ip(ip_raw) if isinstance(ip_raw, str) else None
    if ip is None:
        raise refusal(f"invalid IP address: {ip_raw}")
    import binascii
    try:
        mask = binascii.a2b_base64(mask_raw, strict_mode=True) if mask_raw else b""
    except (TypeError, ValueError, binascii.Error):
        raise refusal(f"invalid value for config.ipam.addresses[{i}].Address.Mask: "
                      f"expected base64") from None
    if len(mask) == 16 and ip.family == 4:
        mask = mask[12:]
    bits = len(mask) * 8
    value = int.from_bytes(mask, "big")
    prefix = bin(value).count("1")
    if bits != (32 if ip.family == 4 else 128) or \
            value != ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1):
        raise refusal(f"invalid value for config.ipam.addresses[{i}].Address.Mask: "
                      f"expected a prefix mask of the address's length")
    return CIDR(ip, prefix)


def load(config: dict, args_text: str = "") -> Settings:
    """Decode and validate a static config: the reference's LoadIPAMConfig."""
    from pycni.result import DNS
    conf, parsed = decode_netconf(config)
    ipam = conf.ipam
    # what Go's json.Unmarshal parses (and refuses) while decoding
    gateways = []
    for a in ipam.addresses if ipam is not None else ():
        gw = None
        if a.gateway:
            gw = parse_ip(a.gateway)
            if gw is None:
                raise refusal(f"invalid IP address: {a.gateway}")
        gateways.append(gw)
    routes = parse_routes(ipam.routes) if ipam is not None else []
    if ipam is None:
        raise refusal("IPAM config missing 'ipam' key")

    addresses = [Address(a.address, parsed[i] if i < len(parsed) else None, gw)
                 for i, (a, gw) in enumerate(zip(ipam.addresses, gateways))]
    env_addresses(*load_env_args(args_text), addresses)
    if conf.args is not None and conf.args.cni is not None and conf.args.cni.ips:
        addresses = replacing_addresses(conf.args.cni.ips)
    if conf.runtime_config.ips:
        addresses = replacing_addresses(conf.runtime_config.ips)

    count = {4: 0, 6: 0}
    for address in addresses:
        if address.cidr is None:
            address.cidr = parse_cidr(address.text)
            if address.cidr is None:
                raise refusal(f"the 'address' field is expected to be in CIDR notation, "
                             f"got: '{address.text}'")
        count[address.cidr.ip.family] += 1
    if (count[4] > 1 or count[6] > 1) and not _at_least(conf.cni_version, "0.3.0"):
        raise refusal(f"CNI version {conf.cni_version} does not support more than 1 "
                     f"address per family")

    d = ipam.dns
    dns = DNS(nameservers=list(d.nameservers), domain=d.domain, search=list(d.search),
              options=list(d.options))
    return Settings(conf.name, conf.cni_version or versions.DEFAULT, addresses, routes, dns)


def result_ips(conf: Settings) -> list:
    """The result's `ips`: each address with its gateway, no interface index."""
    from pycni.result import IPConfig
    return [IPConfig(address=str(a.cidr), gateway=str(a.gateway) if a.gateway else "")
            for a in conf.addresses]


# --------------------------------------------------------------------- CHECK

# result versions that parse into one Go result type (the reference parses
# prevResult as the type of the config's version and refuses the others)
_RESULT_TYPES = (("0.1.0", "0.2.0"), ("0.3.0", "0.3.1", "0.4.0"), ("1.0.0", "1.1.0"))


def check_problem(conf: Settings, prev, ifname: str) -> str:
    """The reference's CHECK: every configured address that prevResult
    lists (the first entry with the same IP decides) must carry the
    configured gateway, if one is configured. An address prevResult does
    not list passes, as in the reference. `prev` is a pycni.result.Result.
    Returns the problem, or ""."""
    listed = []
    for ipc in prev.ips:
        cidr = parse_cidr(ipc.address)
        gw = parse_ip(ipc.gateway) if ipc.gateway else None
        if cidr is not None:
            listed.append((cidr.ip, gw))
    for a in conf.addresses:
        assert a.cidr is not None       # load() parsed every address
        for ip, gw in listed:
            if ip == a.cidr.ip:
                if a.gateway is None or a.gateway == gw:
                    break
                return f"static: Failed to match addr {ip} on interface {ifname}"
    return ""


def prev_result(config: dict, cni_version: str):
    """prevResult of a CHECK config (None when absent or null), parsed into
    a pycni.result.Result; refused as the reference refuses it (code 999)."""
    from pycni.decode import lookup
    from pycni.result import parse_result
    raw = lookup(config, "prevResult")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise refusal("failed to load netconf: prevResult must be an object")
    try:
        prev = parse_result(raw, cni_version)
    except CNIError as err:
        raise refusal(f"could not parse prevResult: {err.details or err.msg}") from None
    family = next((t for t in _RESULT_TYPES if cni_version in t), ())
    if prev.cni_version not in family:
        raise refusal(f"could not parse prevResult: result type supports "
                     f"[{' '.join(family)}] but unmarshalled CNIVersion is "
                     f'"{prev.cni_version}"')
    return prev
