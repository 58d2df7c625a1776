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

from dataclasses import dataclass, field

from . import version as versions
from .errors import CNIError, DECODING_FAILURE, INTERNAL


@dataclass
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int = 0
    socket_path: str = ""
    pci_id: str = ""

    def to_dict(self, new_fields: bool) -> dict:
        out = {"name": self.name}
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
    address: str            # CIDR, e.g. "10.1.2.3/24"
    gateway: str = ""
    interface: int | None = None   # index into Result.interfaces; 0 is valid

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    def to_dict(self, with_version: bool) -> dict:
        out = {}
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
    dst: str                # CIDR
    gw: str = ""
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None

    @property
    def family(self) -> int:
        return 6 if ":" in self.dst else 4

    def to_dict(self) -> dict:
        out = {"dst": self.dst}
        if self.gw:
            out["gw"] = self.gw
        if self.mtu:
            out["mtu"] = self.mtu
        if self.advmss:
            out["advmss"] = self.advmss
        if self.priority:
            out["priority"] = self.priority
        if self.table is not None:
            out["table"] = self.table
        if self.scope is not None:
            out["scope"] = self.scope
        return out


@dataclass
class DNS:
    nameservers: list[str] = field(default_factory=list)
    domain: str = ""
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)

    def to_dict(self) -> dict:
        out = {}
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
    caller's (config's) version, as the reference runtime assumes."""
    if not isinstance(data, dict):
        raise CNIError(DECODING_FAILURE, "failed to parse result",
                       "result is not a JSON object")
    version = data.get("cniVersion") or default_version
    try:
        if not isinstance(version, str):
            raise ValueError("cniVersion is not a string")
        versions.parse(version)
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
        if not entry:
            continue
        result.ips.append(IPConfig(address=_str(entry["ip"]),
                                   gateway=_str(entry.get("gateway", ""))))
        for r in entry.get("routes") or []:
            result.routes.append(Route(dst=_str(r["dst"]), gw=_str(r.get("gw", ""))))
    return result


def _parse_current(data: dict) -> Result:
    result = Result()
    for i in data.get("interfaces") or []:
        result.interfaces.append(Interface(
            name=_str(i.get("name", "")), mac=_str(i.get("mac", "")),
            sandbox=_str(i.get("sandbox", "")), mtu=_int(i.get("mtu", 0)),
            socket_path=_str(i.get("socketPath", "")), pci_id=_str(i.get("pciID", ""))))
    for ip in data.get("ips") or []:
        index = ip.get("interface")
        result.ips.append(IPConfig(
            address=_str(ip["address"]), gateway=_str(ip.get("gateway", "")),
            interface=None if index is None else _int(index)))
    for r in data.get("routes") or []:
        result.routes.append(Route(
            dst=_str(r["dst"]), gw=_str(r.get("gw", "")), mtu=_int(r.get("mtu", 0)),
            advmss=_int(r.get("advmss", 0)), priority=_int(r.get("priority", 0)),
            table=_opt_int(r.get("table")), scope=_opt_int(r.get("scope"))))
    return result


def _parse_dns(data) -> DNS:
    if not data:
        return DNS()
    return DNS(nameservers=[_str(s) for s in data.get("nameservers") or []],
               domain=_str(data.get("domain", "")),
               search=[_str(s) for s in data.get("search") or []],
               options=[_str(s) for s in data.get("options") or []])


def _str(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _opt_int(value):
    return None if value is None else _int(value)
