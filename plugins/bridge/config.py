"""The bridge plugin's configuration: every key the reference accepts.

`load(raw_config, cni_args)` decodes and validates what every command
needs (the reference's loadNetConf: VLAN ranges, trunk list, container
MAC). `validate_add(settings)` holds the checks the reference runs only on
ADD. Both are pure; errors are CNIErrors naming the offending key.

What the reference accepts is accepted (an upgrade must not break a
running node's configs), with a warning (pycni.log) where the value does
nothing: an `mtu` below 0 (its netlink library sets no MTU then: the
kernel's default, as for 0), an unknown `ipMasqBackend` where no ipMasq
rule is written (`ipMasq` off, no IPAM, and every command but ADD; ADD
with ipMasq refuses it as the reference fails there). A container MAC
that is no unicast Ethernet address is refused by ADD only (the reference
fails setting it), not by the other commands, which never read it.
"""

from pycni.model import dataclass, field

from pycni.config import NetConf
from pycni.decode import DecodeError, decode, key, lookup
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG, UNSUPPORTED_FIELD
from pycni.text import control_char

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094
IPMASQ_BACKENDS = ("iptables", "nftables")

# Keys that are decoded and validated but whose behaviour is not built yet:
# asking for them fails with code 2 instead of being silently ignored.
NOT_IMPLEMENTED = {
    "vlan": lambda c: c.vlan != 0,
    "vlanTrunk": lambda c: bool(c.vlan_trunk),
}


@dataclass
class VlanTrunk:
    min_id: int | None = key("minID", default=None)
    max_id: int | None = key("maxID", default=None)
    id: int | None = key("id", default=None)


@dataclass
class BridgeConf(NetConf):
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = key("isGateway", default=False)
    is_default_gateway: bool = key("isDefaultGateway", default=False)
    force_address: bool = False
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mtu: int = 0
    hairpin_mode: bool = False
    promisc_mode: bool = False
    vlan: int = 0
    vlan_trunk: list[VlanTrunk] | None = None
    preserve_default_vlan: bool = False
    macspoofchk: bool = key("macspoofchk", default=False)
    enabledad: bool = key("enabledad", default=False)
    disable_container_interface: bool = False
    port_isolation: bool = False


@dataclass
class Settings:
    """A validated configuration plus the values derived from it."""
    conf: BridgeConf
    vlans: list[int] = field(default_factory=list)   # trunk VLAN IDs, sorted
    mac: str = ""                                     # container veth MAC
    mac_error: CNIError | None = None                 # a MAC ADD refuses (validate_add)

    @property
    def layer3(self) -> bool:
        return bool(self.conf.ipam.type)

    @property
    def is_gateway(self) -> bool:
        return self.conf.is_gateway or self.conf.is_default_gateway


def load(raw: dict, cni_args=None) -> Settings:
    """Decode and validate the config (every command)."""
    conf = decode(BridgeConf, raw)
    if lookup(raw, "bridge") is None:
        conf.bridge = DEFAULT_BRIDGE     # JSON null keeps the default, as in Go
    validate_bridge_name(conf.bridge)
    if not 0 <= conf.vlan <= MAX_VLAN:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid VLAN ID {conf.vlan} (must be between 0 and {MAX_VLAN})")
    if conf.mtu < 0:
        from pycni import log
        log.warning(f"bridge: mtu {conf.mtu} is negative: the kernel's default is used "
                    "(as for 0, and as the reference does)")
        conf.mtu = 0
    if conf.ip_masq_backend is not None and conf.ip_masq_backend not in IPMASQ_BACKENDS:
        from pycni import log
        log.warning(f"bridge: unknown ipMasqBackend {_json(conf.ip_masq_backend)}: "
                    f"ipMasq needs one of {', '.join(IPMASQ_BACKENDS)}")
    vlans = collect_vlan_trunk(conf.vlan_trunk)
    mac, source = requested_mac(raw, cni_args)
    mac_error = None
    if mac:
        try:
            mac = normalize_mac(mac, source)
        except CNIError as err:
            # only ADD sets the MAC (the reference fails there); DEL, CHECK,
            # GC and STATUS of the config go on, as the reference's
            mac, mac_error = "", err
    return Settings(conf=conf, vlans=vlans, mac=mac, mac_error=mac_error)


def validate_add(settings: Settings) -> None:
    """The combinations the reference refuses on ADD, then the keys this
    implementation does not support yet (code 2, naming the key)."""
    conf = settings.conf
    if settings.mac_error is not None:
        raise settings.mac_error
    if conf.mtu > 65535:   # ETH_MAX_MTU: the kernel refuses more for bridge and veth
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid MTU {conf.mtu} (must be between 0 and 65535)")
    if conf.ip_masq and settings.layer3 and conf.ip_masq_backend is not None and \
            conf.ip_masq_backend not in IPMASQ_BACKENDS:
        # the reference's ADD fails at the ipMasq step: ours before any change
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f'unknown ipmasq backend "{conf.ip_masq_backend}"',
                       f"ipMasqBackend must be one of {', '.join(IPMASQ_BACKENDS)}")
    if settings.layer3 and conf.disable_container_interface:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       "cannot use IPAM when DisableContainerInterface flag is set")
    if conf.hairpin_mode and conf.promisc_mode:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       "cannot set hairpin mode and promiscuous mode at the same time")
    for name, requested in NOT_IMPLEMENTED.items():
        if requested(conf):
            raise CNIError(UNSUPPORTED_FIELD,
                           f'bridge: "{name}" is not supported yet',
                           f"{name}={_json(lookup_field(conf, name))}")


def lookup_field(conf: BridgeConf, name: str):
    from pycni import model
    from pycni.decode import json_name
    for f in model.fields(conf):
        if json_name(f) == name:
            value = getattr(conf, f.name)
            if name == "vlanTrunk" and value is not None:
                return [model.asdict(v) for v in value]
            return value
    return None


def _json(value) -> str:
    from pycni import jsontext
    return jsontext.dumps(value)


def validate_bridge_name(name: str) -> None:
    problem = None
    if not name:
        problem = "must not be empty"
    elif len(name.encode()) > 15:
        problem = "is longer than 15 bytes"
    elif name in (".", "..") or any(c in name for c in "/:") or \
            any(c.isspace() for c in name):
        problem = "must not be . or .. or contain / : or whitespace"
    elif control_char(name) is not None:
        problem = "must not contain control characters"
    if problem:
        raise CNIError(INVALID_NETWORK_CONFIG, f'invalid bridge name "{name}": {problem}')


def collect_vlan_trunk(trunk: list[VlanTrunk] | None) -> list[int]:
    """The sorted, de-duplicated VLAN IDs of `vlanTrunk` (reference rules)."""
    if not trunk:
        return []
    ids: set[int] = set()
    for item in trunk:
        if item.min_id is not None and item.max_id is not None:
            if not 0 < item.min_id <= MAX_VLAN:
                raise _trunk_error("incorrect trunk minID parameter")
            if not 0 < item.max_id <= MAX_VLAN:
                raise _trunk_error("incorrect trunk maxID parameter")
            if item.max_id < item.min_id:
                raise _trunk_error("minID is greater than maxID in trunk parameter")
            ids.update(range(item.min_id, item.max_id + 1))
        elif item.max_id is not None:
            raise _trunk_error("minID and maxID should be configured simultaneously, "
                               "minID is missing")
        elif item.min_id is not None:
            raise _trunk_error("minID and maxID should be configured simultaneously, "
                               "maxID is missing")
        if item.id is not None:
            if not 0 < item.id <= MAX_VLAN:
                raise _trunk_error("incorrect trunk id parameter")
            ids.add(item.id)
    return sorted(ids)


def _trunk_error(msg: str) -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg)


def container_mac(raw: dict, cni_args) -> str:
    """The requested container MAC: runtimeConfig.mac, else args.cni.mac,
    else CNI_ARGS MAC (the reference's precedence). Normalised lowercase."""
    mac, source = requested_mac(raw, cni_args)
    return normalize_mac(mac, source) if mac else ""


def requested_mac(raw: dict, cni_args) -> tuple[str, str]:
    """(the requested MAC as written, where it came from), ("", "") for
    none. Refuses what the reference refuses in every command: a CNI_ARGS
    key it does not know, a MAC that is not a string."""
    mac = ""
    source = ""
    if cni_args is not None:
        cni_args.require_known({"MAC"})
        if cni_args.get("MAC"):
            mac, source = cni_args.get("MAC"), "CNI_ARGS MAC"
    args_mac = _nested_str(raw, ("args", "cni", "mac"))
    if args_mac:
        mac, source = args_mac, "args.cni.mac"
    rc_mac = _nested_str(raw, ("runtimeConfig", "mac"))
    if rc_mac:
        mac, source = rc_mac, "runtimeConfig.mac"
    return mac, source


def _nested_str(raw: dict, path: tuple[str, ...]) -> str:
    value = raw
    walked = "config"
    for part in path:
        walked += "." + part
        if value is None:
            return ""
        if not isinstance(value, dict):
            raise DecodeError(walked.rsplit(".", 1)[0], "an object", value)
        value = lookup(value, part)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(walked, "a string", value)
    return value


def normalize_mac(mac: str, source: str = "mac") -> str:
    """A unicast Ethernet MAC in Go's ParseMAC spellings -> '02:ab:..'."""
    from pycni import mac as hwaddr
    octets = hwaddr.parse(mac)
    if octets is None or len(octets) != 6:
        raise CNIError(INVALID_NETWORK_CONFIG, f'invalid MAC address "{mac}" in {source}')
    if not any(octets):
        raise CNIError(INVALID_NETWORK_CONFIG, f'invalid MAC address "{mac}" in {source}: all zero')
    if octets[0] & 1:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f'invalid MAC address "{mac}" in {source}: multicast address')
    return hwaddr.text(octets)
