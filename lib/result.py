"""The CNI result model and its conversion between spec versions.

Internally a result always has the newest (1.1.0) shape, which is a
superset of every older one. `parse_result` reads any version's JSON;
`Result.to_dict(version)` writes any version's JSON. Both are pure.

Shapes:
  0.1.0/0.2.0  {ip4: {ip, gateway, routes}, ip6: {...}, dns}
  0.3.x/0.4.0  {interfaces, ips: [{version, interface, address, gateway}], routes, dns}
  1.0.0/1.1.0  as 0.3.x without ips[].version; 1.1.0 adds interface mtu,
               socketPath, pciID and route mtu, advmss, priority, table, scope
"""

from .model import dataclass, field

from . import version as versions
from .errors import CNIError, DECODING_FAILURE, INCOMPATIBLE_VERSION, INTERNAL


# How omit_empty writes a field, after its Go struct tag: always (no
# omitempty), left out when empty ("", 0, False, None, []: `omitempty`), or
# left out only when None (a pointer field tagged `omitempty`: its zero
# value is written).
ALWAYS, OMITEMPTY, POINTER = 0, 1, 2


def omit_empty(*fields: tuple) -> dict:
    """A JSON object as Go's encoding/json writes a struct: `fields` are
    (key, value, ALWAYS | OMITEMPTY | POINTER), in the struct's order."""
    out = {}
    for key, value, tag in fields:
        if value if tag == OMITEMPTY else (tag == ALWAYS or value is not None):
            out[key] = value
    return out


@dataclass
class Interface:
    """One entry of a result's `interfaces`: a link the plugin created or
    configured; `sandbox` is the netns path for links inside a container,
    empty on the host. mtu, socketPath and pciID exist from 1.1.0 on."""
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int = 0
    socket_path: str = ""
    pci_id: str = ""

    def to_dict(self, new_fields: bool) -> dict:
        """The JSON object; `new_fields`: include 1.1.0's fields."""
        out: dict = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if new_fields and self.mtu:
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        if new_fields and self.socket_path:
            out["socketPath"] = self.socket_path
        if new_fields and self.pci_id:
            out["pciID"] = self.pci_id
        return out


@dataclass
class IPConfig:
    """One entry of a result's `ips`: an address (CIDR), its gateway, and
    the index into `interfaces` of the link it is on (None: unspecified)."""
    address: str            # CIDR, e.g. "10.1.2.3/24"
    gateway: str = ""
    interface: int | None = None   # index into Result.interfaces; 0 is valid

    @property
    def family(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.address else 4

    def to_dict(self, with_version: bool) -> dict:
        """The JSON object; `with_version`: 0.3.x/0.4.0's "version" key."""
        out: dict = {}
        if with_version:
            out["version"] = str(self.family)
        if self.interface is not None:
            out["interface"] = self.interface
        out["address"] = self.address
        if self.gateway:
            out["gateway"] = self.gateway
        return out


@dataclass
class Route:
    """One entry of a result's `routes`: destination CIDR, gateway (empty:
    the interface's gateway of that family, as the runtime reads it);
    mtu, advmss, priority, table and scope exist from 1.1.0 on."""
    dst: str                # CIDR
    gw: str = ""
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None

    @property
    def family(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.dst else 4

    def to_dict(self) -> dict:
        """The JSON object (keys with zero values left out)."""
        return omit_empty(("dst", self.dst, ALWAYS), ("gw", self.gw, OMITEMPTY),
                          ("mtu", self.mtu, OMITEMPTY), ("advmss", self.advmss, OMITEMPTY),
                          ("priority", self.priority, OMITEMPTY),
                          ("table", self.table, POINTER), ("scope", self.scope, POINTER))


@dataclass
class DNS:
    """A result's `dns` (also the shape of a config's `dns`)."""
    nameservers: list[str] = field(default_factory=list)
    domain: str = ""
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        """True when no field is set."""
        return not (self.nameservers or self.domain or self.search or self.options)

    def to_dict(self) -> dict:
        """The JSON object, empty fields left out."""
        out: dict = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


@dataclass
class Result:
    """A plugin's ADD result (and a prevResult), always in the newest
    shape; `to_dict(version)` writes it in any spec version's shape (skel
    does that with the config's cniVersion), `parse_result` reads any."""
    cni_version: str = versions.CURRENT
    interfaces: list[Interface] = field(default_factory=list)
    ips: list[IPConfig] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    dns: DNS = field(default_factory=DNS)

    def to_dict(self, version: str | None = None) -> dict:
        """The result as JSON-ready dict in spec version `version`."""
        version = version or self.cni_version
        if versions.is_legacy_result(version):
            return self._to_legacy(version)
        new_fields = not versions.has_ip_version_field(version)
        out: dict = {"cniVersion": version}
        if self.interfaces:
            out["interfaces"] = [i.to_dict(new_fields) for i in self.interfaces]
        if self.ips:
            out["ips"] = [ip.to_dict(not new_fields) for ip in self.ips]
        if self.routes:
            out["routes"] = [r.to_dict() for r in self.routes]
        if not new_fields:
            out["dns"] = self.dns.to_dict()     # 0.3.x/0.4.0 always print dns
        elif not self.dns.is_empty():
            out["dns"] = self.dns.to_dict()
        return out

    def _to_legacy(self, version: str) -> dict:
        out: dict = {"cniVersion": version}
        found = False
        for family, key in ((4, "ip4"), (6, "ip6")):
            ip = next((i for i in self.ips if i.family == family), None)
            if ip is None:
                continue
            found = True
            entry: dict = {"ip": ip.address}
            if ip.gateway:
                entry["gateway"] = ip.gateway
            routes = [r for r in self.routes if r.family == family]
            if routes:
                entry["routes"] = [
                    {"dst": r.dst, **({"gw": r.gw} if r.gw else {})} for r in routes]
            out[key] = entry
        if not found:
            raise CNIError(INTERNAL, "cannot convert: no valid IP addresses")
        out["dns"] = self.dns.to_dict()
        return out


def parse_result(data, default_version: str) -> Result:
    """Parse a result of any spec version. A missing cniVersion means the
    caller's (config's) version, as the reference runtime assumes.

    Anything malformed (wrong JSON types, addresses that are not CIDRs,
    gateways that are not IPs) is a decoding failure (code 6), so plugins
    never trip over a bad prevResult later on."""
    if not isinstance(data, dict):
        raise CNIError(DECODING_FAILURE, "failed to parse result",
                       "result is not a JSON object")
    data = _obj(data, "result")
    version = data.get("cniVersion") or default_version
    try:
        if not isinstance(version, str):
            raise ValueError("cniVersion is not a string")
        versions.parse(version)
        if version not in versions.ALL:
            raise CNIError(INCOMPATIBLE_VERSION,
                           f'unsupported CNI result version "{version}"')
        if "ip4" in data or "ip6" in data:
            result = _parse_legacy(data)
        else:
            result = _parse_current(data)
        result.dns = _parse_dns(data.get("dns"))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CNIError(DECODING_FAILURE, "failed to parse result", str(exc)) from exc
    result.cni_version = version
    return result


def _parse_legacy(data: dict) -> Result:
    result = Result()
    for key in ("ip4", "ip6"):
        entry = data.get(key)
        if entry is None:
            continue
        entry = _obj(entry, key)
        result.ips.append(IPConfig(address=_cidr(entry["ip"]),
                                   gateway=_ip(entry.get("gateway", ""))))
        for r in _list(entry.get("routes"), f"{key}.routes"):
            r = _obj(r, "route")
            result.routes.append(Route(dst=_cidr(r["dst"]), gw=_ip(r.get("gw", ""))))
    return result


def _parse_current(data: dict) -> Result:
    result = Result()
    for i in _list(data.get("interfaces"), "interfaces"):
        i = _obj(i, "interface")
        result.interfaces.append(Interface(
            name=_str(i.get("name", "")), mac=_str(i.get("mac", "")),
            sandbox=_str(i.get("sandbox", "")), mtu=_int(i.get("mtu", 0)),
            socket_path=_str(i.get("socketPath", "")), pci_id=_str(i.get("pciID", ""))))
    for ip in _list(data.get("ips"), "ips"):
        ip = _obj(ip, "ips entry")
        index = ip.get("interface")
        result.ips.append(IPConfig(
            address=_cidr(ip["address"]), gateway=_ip(ip.get("gateway", "")),
            interface=None if index is None else _int(index)))
    for r in _list(data.get("routes"), "routes"):
        r = _obj(r, "route")
        result.routes.append(Route(
            dst=_cidr(r["dst"]), gw=_ip(r.get("gw", "")), mtu=_int(r.get("mtu", 0)),
            advmss=_int(r.get("advmss", 0)), priority=_int(r.get("priority", 0)),
            table=_opt_int(r.get("table")), scope=_opt_int(r.get("scope"))))
    return result


def _parse_dns(data) -> DNS:
    if data is None:
        return DNS()
    data = _obj(data, "dns")
    return DNS(nameservers=_strs(data.get("nameservers"), "dns.nameservers"),
               domain=_str(data.get("domain", "")),
               search=_strs(data.get("search"), "dns.search"),
               options=_strs(data.get("options"), "dns.options"))


def _obj(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be an object, got {value!r}")
    from .decode import GoKeys
    return GoKeys(value)   # keys match as in Go: any case, last one wins


def _list(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{what} must be a list, got {value!r}")
    return value


def _strs(value, what: str) -> list[str]:
    return [_str(s) for s in _list(value, what)]


def _str(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _ip(value) -> str:
    """An optional IP address (gateways). socket is already loaded by every
    plugin that talks netlink; ipaddress would cost ~15 ms of start-up."""
    text = _str(value)
    if text and _family(text) is None:
        raise ValueError(f"invalid IP address {text!r}")
    return text


def _cidr(value) -> str:
    """A required address with prefix length, e.g. 10.1.2.3/24."""
    text = _str(value)
    addr, sep, prefix = text.partition("/")
    family = _family(addr) if sep else None
    if family is None or not prefix.isascii() or not prefix.isdigit() \
            or int(prefix) > (32 if family == 4 else 128):
        raise ValueError(f"invalid CIDR address {text!r}")
    return text


def _family(addr: str):
    import _socket as socket  # the C module: `socket` costs ~8 ms more
    for family, number in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            socket.inet_pton(family, addr)
            return number
        except (OSError, ValueError):
            continue
    return None


def _int(value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _opt_int(value):
    return None if value is None else _int(value)


def merge(prev: Result, new: Result) -> Result:
    """A chained plugin's result on top of the previous one: interfaces and
    IPs appended (the new IPs' interface indexes shifted past the previous
    interfaces), routes appended, DNS from the new result unless empty."""
    offset = len(prev.interfaces)
    shifted = [IPConfig(ip.address, ip.gateway,
                        None if ip.interface is None else ip.interface + offset)
               for ip in new.ips]
    return Result(cni_version=new.cni_version,
                  interfaces=list(prev.interfaces) + list(new.interfaces),
                  ips=list(prev.ips) + shifted,
                  routes=list(prev.routes) + list(new.routes),
                  dns=prev.dns if new.dns.is_empty() else new.dns)


def link_result(ifname: str, mac: str, sandbox: str, ipam_result: Result | None,
                dns: DNS, cni_version: str) -> Result:
    """The ADD result of a plugin that puts one link into the container
    (macvlan, tap, host-device): that link in its sandbox and IPAM's
    addresses and routes, all on interface 0. DNS: the config's `dns` if
    set, else IPAM's (the reference drops IPAM's; see the plugins' READMEs)."""
    result = Result(cni_version=cni_version,
                    interfaces=[Interface(name=ifname, mac=mac, sandbox=sandbox)])
    if ipam_result is not None:
        if not ipam_result.ips:
            raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
        for ip in ipam_result.ips:
            ip.interface = 0
        result.ips = list(ipam_result.ips)
        result.routes = list(ipam_result.routes)
        result.dns = ipam_result.dns
    if not dns.is_empty():
        result.dns = dns
    return result
