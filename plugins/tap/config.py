"""The tap network configuration: typed model and pure decisions.

Everything here is decided without touching the kernel (unit tested
without root): which keys mean what, which MAC wins, the TUNSETIFF flags
the reference would use, and the ADD result.
"""

from pycni.model import dataclass, field

from pycni.config import NetConf
from pycni.decode import decode, key, lenient
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG, UNSUPPORTED_FIELD
from pycni.result import DNS
from pycni.result import link_result as build_result  # noqa: F401  (the ADD result)

MIN_MTU = 68          # the tun driver's limits (ETH_MIN_MTU, ETH_MAX_MTU - ETH_HLEN)
MAX_MTU = 65521


@dataclass
class TapConf(NetConf):
    multi_queue: bool = key("multiQueue", default=False)
    mtu: int = 0
    mac: str = ""
    owner: int | None = None
    group: int | None = None
    selinux_context: str = key("selinuxContext", default="")
    bridge: str = ""


@dataclass
class Settings:
    """A validated ADD/CHECK request."""
    mac: str                 # normalised MAC, "" = the kernel's random one
    mtu: int                 # 0 = the driver's default (1500)
    multi_queue: bool
    owner: int | None
    group: int | None
    bridge: str              # a bridge in the container namespace, "" = none
    ipam_type: str
    dns: DNS = field(default_factory=DNS)


def go_quote(text: str) -> str:
    from pycni import jsontext
    return jsontext.dumps(text)


def parse_mac(text: str) -> str:
    """A unicast Ethernet address in Go's ParseMAC spellings, lower-case
    colons (pycni.mac.interface_mac)."""
    from pycni import mac
    return mac.interface_mac(text)


def check_mtu(mtu: int) -> None:
    if mtu < 0:
        raise CNIError(INVALID_NETWORK_CONFIG, f"invalid MTU {mtu}, must not be negative")
    if mtu and not MIN_MTU <= mtu <= MAX_MTU:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid MTU {mtu}, must be 0 (the default) or within "
                       f"[{MIN_MTU}, {MAX_MTU}]")


def check_id(what: str, value: int | None) -> int | None:
    """`owner`/`group` as the kernel gets it: a uint32 (Go refuses others),
    None for none. (uint32)-1 is the kernel's "none" (INVALID_UID): the
    reference passes it to `ip tuntap ... user 4294967295`, which sets
    no owner, so it means none here too."""
    if value is None:
        return None
    if not 0 <= value <= 0xFFFFFFFF:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid value for config.{what}: expected a uint32",
                       f"got {value}")
    from pycni import tuntap    # only where a config names an owner or group
    return None if value == tuntap.INVALID_ID else value


def check_bridge(name: str) -> None:
    if not name:
        return
    from pycni import tuntap
    raw = name.encode()
    if len(raw) >= tuntap.IFNAMSIZ or "\0" in name or "/" in name or \
            any(c.isspace() for c in name):
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid bridge name {go_quote(name)}",
                       "an interface name of at most 15 bytes, without / or whitespace")


def check_selinux(context: str) -> None:
    """selinuxContext asks for the tap to be created under an SELinux
    label; pycni does not implement that (see README). The reference,
    on a node without SELinux, fails ADD too (writing
    /proc/thread-self/attr/exec is refused): so a config that sets it
    fails here, before anything is created, and names the key."""
    if context:
        raise CNIError(UNSUPPORTED_FIELD,
                       f"unsupported field selinuxContext={go_quote(context)}: "
                       "pycni's tap cannot create a tap under an SELinux label",
                       "remove selinuxContext from the config, or use the reference tap "
                       "plugin on SELinux nodes")


def choose_mac(conf: TapConf, cni_args_mac: str) -> str:
    """The reference's order: runtimeConfig.mac (capability `mac`), then
    CNI_ARGS MAC=, then `mac`; normalised ("" = the kernel's random one)."""
    from pycni.args import config_string
    candidates = (config_string(conf.runtime_config, "runtimeConfig.mac", "mac"),
                  cni_args_mac, conf.mac)
    if not any(candidates):
        return ""       # the kernel's choice: pycni.mac is not needed
    from pycni import mac
    return mac.choose(*candidates)


def dns_from_conf(conf: TapConf) -> DNS:
    dns = conf.dns
    return DNS(nameservers=list(dns.nameservers), domain=dns.domain,
               search=list(dns.search), options=list(dns.options))


def load(config: dict, cni_args=None) -> Settings:
    """Decode and validate the config (plus CNI_ARGS MAC=) for ADD/CHECK."""
    from pycni.args import mac_from_cni_args
    conf = decode(TapConf, config)
    cni_args_mac = mac_from_cni_args(cni_args)
    check_selinux(conf.selinux_context)
    check_mtu(conf.mtu)
    owner = check_id("owner", conf.owner)
    group = check_id("group", conf.group)
    check_bridge(conf.bridge)
    return Settings(mac=choose_mac(conf, cni_args_mac), mtu=conf.mtu,
                    multi_queue=conf.multi_queue, owner=owner, group=group,
                    bridge=conf.bridge, ipam_type=conf.ipam.type,
                    dns=dns_from_conf(conf))


def load_for_delete(config: dict) -> str:
    """DEL needs only the IPAM type: it must work whatever else is wrong
    (decode.lenient)."""
    return lenient(TapConf, config).ipam.type


def tun_flags(settings: Settings) -> int:
    """TUNSETIFF flags, as the reference sets them.

    With both `owner` and `group` the reference creates the tap through
    vishvananda/netlink: IFF_TAP|IFF_VNET_HDR, plus IFF_MULTI_QUEUE|IFF_NO_PI
    for multiQueue. Otherwise through `ip tuntap add mode tap`, which
    always adds IFF_NO_PI: IFF_TAP|IFF_NO_PI (|IFF_MULTI_QUEUE). The
    kernel shows them as `pi`/`vnet_hdr` in `ip -d link`; whoever
    attaches to the tap later sets pi/vnet_hdr itself, multi_queue must
    match. IFF_TUN_EXCL is added by the plugin (never reuse a device).
    """
    from pycni import tuntap
    if settings.owner is not None and settings.group is not None:
        flags = tuntap.IFF_TAP | tuntap.IFF_VNET_HDR
        if settings.multi_queue:
            flags |= tuntap.IFF_MULTI_QUEUE | tuntap.IFF_NO_PI
        return flags
    flags = tuntap.IFF_TAP | tuntap.IFF_NO_PI
    if settings.multi_queue:
        flags |= tuntap.IFF_MULTI_QUEUE
    return flags

