"""The macvlan network configuration: typed model and pure validation.

Everything here is decided without touching the kernel, so it is unit
tested without root. What needs the kernel (the default-route master,
the master's MTU) is looked up by plugin.py and then validated here.
"""

from pycni.model import dataclass, field

from pycni.config import DNSConf, NetConf
from pycni.decode import decode, key, lenient
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.result import DNS
from pycni.result import link_result as build_result  # noqa: F401  (the ADD result)

# Config mode name -> kernel mode name. An empty mode means bridge.
MODES = {"": "bridge", "bridge": "bridge", "private": "private",
         "vepa": "vepa", "passthru": "passthru"}
U32_MAX = 0xFFFFFFFF


@dataclass
class MacvlanConf(NetConf):
    master: str = ""
    mode: str = ""
    mtu: int = 0
    mac: str = ""
    link_in_container: bool = key("linkInContainer", default=False)
    bcqueuelen: int = key("bcqueuelen", default=0)


@dataclass
class Settings:
    """A validated ADD/CHECK request, minus what needs the kernel."""
    master: str             # "" = the interface of the default route
    mode: str               # kernel mode name
    mtu: int                # 0 = inherit the master's
    mac: str                # normalised "aa:bb:cc:dd:ee:ff", "" = kernel's choice
    link_in_container: bool
    bc_queue_len: int
    ipam_type: str
    dns: DNS = field(default_factory=DNS)


def go_quote(text: str) -> str:
    """A string as Go's %q prints it (close enough for messages)."""
    from pycni import jsontext
    return jsontext.dumps(text)


def parse_mode(mode: str) -> str:
    try:
        return MODES[mode]
    except KeyError:
        raise CNIError(INVALID_NETWORK_CONFIG, f"unknown macvlan mode: {go_quote(mode)}",
                       "mode must be one of bridge, private, vepa, passthru") from None


def check_mtu(mtu: int, master_mtu: int) -> None:
    if mtu < 0 or mtu > master_mtu:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid MTU {mtu}, must be [0, master MTU({master_mtu})]")


def check_bc_queue_len(value: int) -> None:
    if not 0 <= value <= U32_MAX:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid bcqueuelen {value}, must be [0, {U32_MAX}]")


def parse_mac(text: str) -> str:
    """A unicast Ethernet address in Go's ParseMAC spellings, lower-case
    colons (pycni.mac.interface_mac)."""
    from pycni import mac
    return mac.interface_mac(text)


def choose_mac(conf: MacvlanConf, cni_args_mac: str) -> str:
    """The first one set of runtimeConfig.mac, args.cni.mac, CNI_ARGS MAC
    and mac, normalised ("" = the kernel's choice): per-container values
    beat the network-wide `mac`, the runtime's capability beats `args`,
    and `args` supersedes the deprecated CNI_ARGS."""
    from pycni.args import config_string
    candidates = (config_string(conf.runtime_config, "runtimeConfig.mac", "mac"),
                  config_string(conf.args, "args.cni.mac", "cni", "mac"), cni_args_mac, conf.mac)
    if not any(candidates):
        return ""       # the kernel's choice: pycni.mac is not needed
    from pycni import mac
    return mac.choose(*candidates)


def dns_from_conf(dns: DNSConf) -> DNS:
    return DNS(nameservers=list(dns.nameservers), domain=dns.domain,
               search=list(dns.search), options=list(dns.options))


def load(config: dict, cni_args=None) -> Settings:
    """Decode and validate the config (plus CNI_ARGS MAC=) for ADD/CHECK."""
    from pycni.args import mac_from_cni_args
    conf = decode(MacvlanConf, config)
    cni_args_mac = mac_from_cni_args(cni_args)
    mode = parse_mode(conf.mode)
    check_bc_queue_len(conf.bcqueuelen)
    if conf.mtu < 0:
        raise CNIError(INVALID_NETWORK_CONFIG, f"invalid MTU {conf.mtu}, must not be negative")
    return Settings(master=conf.master, mode=mode, mtu=conf.mtu,
                    mac=choose_mac(conf, cni_args_mac),
                    link_in_container=conf.link_in_container,
                    bc_queue_len=conf.bcqueuelen, ipam_type=conf.ipam.type,
                    dns=dns_from_conf(conf.dns))


def load_for_delete(config: dict) -> str:
    """DEL needs only the IPAM type: it must work whatever else is wrong
    (a master that is gone, a mode that no longer validates): decode.lenient."""
    return lenient(MacvlanConf, config).ipam.type

