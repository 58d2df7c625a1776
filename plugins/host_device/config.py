"""The host-device network configuration: typed model and pure decisions.

Keys are those of the reference v1.9 NetConf: `device`, `hwaddr`,
`kernelpath`, `pciBusID`, `DPDKMode` (a Go field without a JSON tag, so
its key is the field name, matched case-insensitively), and
`runtimeConfig.deviceID` (the `deviceID` capability), plus pycni's
`dataDir` (where the original link state is kept, see state.py).

What needs sysfs or the kernel (does deviceID exist, which driver is
bound) is looked up by plugin.py through sysfs.Tree and handed to the
functions here.
"""

from pycni.model import dataclass, field

from pycni.config import DNSConf, NetConf
from pycni.decode import decode, key, lookup
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import DNS
from pycni.result import link_result as build_result  # noqa: F401  (the ADD result)

from . import sysfs

DEFAULT_DATA_DIR = "/run/cni/host-device"
IFNAMSIZ = 16


@dataclass
class HostDeviceConf(NetConf):
    device: str = ""
    hwaddr: str = ""
    kernelpath: str = ""
    pci_bus_id: str = key("pciBusID", default="")
    dpdk_mode: bool = key("DPDKMode", default=False)
    data_dir: str = key("dataDir", default="")


@dataclass
class Selector:
    """How the host link is found: exactly one of the keys, in the
    reference's order of precedence (device, hwaddr, kernelpath, pciBusID,
    auxiliary device)."""
    kind: str        # "device" | "hwaddr" | "kernelpath" | "pci" | "aux"
    value: str       # the name, normalised MAC, path, PCI address, aux name
    mac: bytes = b""  # the parsed hwaddr

    def describe(self) -> str:
        label = {"device": "device", "hwaddr": "hwaddr", "kernelpath": "kernelpath",
                 "pci": "pciBusID", "aux": "auxiliary device"}[self.kind]
        return f"{label} {self.value}"


@dataclass
class Settings:
    """A validated request, minus what needs the kernel."""
    selector: Selector
    dpdk: bool                 # no netdev to move (a user-space driver)
    pci_address: str           # "" unless chosen by pciBusID / deviceID
    ipam_type: str
    data_dir: str
    dns: DNS = field(default_factory=DNS)


def invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


def go_quote(text: str) -> str:
    from pycni import jsontext
    return jsontext.dumps(text)


def check_ifname(name: str, what: str) -> str:
    """A link name the kernel could have: 1-15 bytes, no `/`, `:`, NUL or
    whitespace, not `.`/`..`."""
    raw = name.encode(errors="surrogateescape")
    if (not raw or len(raw) >= IFNAMSIZ or name in (".", "..")
            or any(c in name for c in "/:\0") or any(c.isspace() for c in name)):
        raise invalid(f"invalid {what} {go_quote(name)}: not an interface name",
                      "1-15 bytes, no '/', ':', NUL or whitespace")
    return name


def parse_hwaddr(text: str) -> bytes:
    """A hardware address in any of Go's net.ParseMAC spellings (pycni.mac:
    6, 8 or 20 octets)."""
    from pycni import mac
    octets = mac.parse(text)
    if octets is None:
        raise invalid(f'failed to parse MAC address "{text}": address {text}: '
                      "invalid MAC address")
    return octets


def format_mac(raw: bytes) -> str:
    from pycni import mac
    return mac.text(raw)


def _device_id(conf: HostDeviceConf) -> str:
    value = lookup(conf.runtime_config, "deviceID") if conf.runtime_config else None
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("invalid value for runtimeConfig.deviceID: expected a string")
    return value


def dns_from_conf(dns: DNSConf) -> DNS:
    return DNS(nameservers=list(dns.nameservers), domain=dns.domain,
               search=list(dns.search), options=list(dns.options))


def load(config: dict, tree, env) -> Settings:
    """Decode and validate the config for ADD/CHECK. `tree` is an open
    sysfs.Tree (runtimeConfig.deviceID and pciBusID are looked up in it);
    `env` decides which dataDir root allows."""
    conf = decode(HostDeviceConf, config)
    if conf.data_dir:
        from pycni import nodeconf
        nodeconf.require_state_dir(conf.data_dir, env)
    pci = conf.pci_bus_id
    aux = ""
    device_id = _device_id(conf)
    if device_id:
        # the runtime's deviceID replaces pciBusID (not device or hwaddr,
        # which still take precedence, as in the reference)
        kind = tree.device_id_kind(device_id)
        if kind == "pci":
            pci = device_id
        elif kind == "aux":
            pci, aux = "", device_id
        else:
            raise invalid(f"runtime config DeviceID {device_id} not found or unsupported")
    if not (conf.device or conf.hwaddr or conf.kernelpath or pci or aux):
        raise invalid('specify either "device", "hwaddr", "kernelpath" or "pciBusID"')
    if pci and not sysfs.is_pci_address(pci):
        raise invalid(f"invalid pciBusID {go_quote(pci)}: not a PCI address",
                      "expected DOMAIN:BUS:SLOT.FUNCTION, e.g. 0000:04:00.5")
    selector = choose_selector(conf.device, conf.hwaddr, conf.kernelpath, pci, aux)
    dpdk = conf.dpdk_mode
    if pci:
        try:
            dpdk = tree.has_dpdk_driver(pci)
        except sysfs.LookupError_ as err:
            raise CNIError(INTERNAL, f"error with host device: {err}") from None
    return Settings(selector=selector, dpdk=dpdk, pci_address=pci,
                    ipam_type=conf.ipam.type, data_dir=conf.data_dir or DEFAULT_DATA_DIR,
                    dns=dns_from_conf(conf.dns))


def choose_selector(device: str, hwaddr: str, kernelpath: str, pci: str,
                    aux: str) -> Selector:
    """The one key that finds the link, in the reference's precedence;
    each value validated so that no lookup can be steered elsewhere."""
    if device:
        return Selector("device", check_ifname(device, "device"))
    if hwaddr:
        raw = parse_hwaddr(hwaddr)
        return Selector("hwaddr", format_mac(raw), raw)
    if kernelpath:
        try:
            sysfs.kernelpath_components(kernelpath)
        except ValueError as err:
            raise invalid(str(err)) from None
        return Selector("kernelpath", kernelpath)
    if pci:
        return Selector("pci", pci)
    return Selector("aux", aux)


def ipam_type_of(config: dict) -> str:
    """DEL and GC need only the IPAM type: they must work whatever else is
    wrong with the config (a device that is gone, a key that no longer
    validates)."""
    ipam = lookup(config, "ipam")
    if isinstance(ipam, dict):
        kind = lookup(ipam, "type")
        if isinstance(kind, str):
            return kind
    return ""


def data_dir_of(config: dict, env) -> str:
    """DEL/GC: the state directory, or "" when the config names one root
    does not allow (then there is no state to use)."""
    value = lookup(config, "dataDir")
    if value is None or value == "":
        return DEFAULT_DATA_DIR
    from pycni import nodeconf
    if isinstance(value, str) and nodeconf.state_dir_allowed(value, env):
        return value
    return ""


def pick_by_hwaddr(links, mac: bytes):
    """The link with hardware address `mac`: loopback never; where several
    share it (a bridge takes a port's address), the one whose permanent
    address it is, then the lowest index (the reference takes the first
    of the kernel's list, in index order)."""
    candidates = [li for li in links if li.raw_mac == mac and not li.is_loopback]
    own = [li for li in candidates if li.perm_mac == format_mac(mac)]
    pool = own or candidates
    return min(pool, key=lambda li: li.index) if pool else None


def check_movable(info, selector: Selector, claimed_by: str) -> None:
    """Refuse what must not go into a container: the loopback device, or a
    device another attachment's state still claims."""
    if info.is_loopback:
        raise invalid(f"failed to find host device: {info.name} is the loopback device",
                      f"{selector.describe()} names the loopback interface")
    if claimed_by:
        raise invalid(f"failed to find host device: {info.name} is in use by another "
                      "container", f"claimed by {claimed_by}")


def check_result_version(cni_version: str, ipam_type: str) -> None:
    """A 0.1.0/0.2.0 result must carry an IP address: without IPAM there is
    none, and the reference only finds out after the link moved (and
    leaves it there). Refused before anything changes."""
    from pycni import version as versions
    if not ipam_type and versions.is_legacy_result(cni_version):
        raise CNIError(INTERNAL, "cannot convert: no valid IP addresses",
                       f"a {cni_version} result needs an IP address: configure ipam")

