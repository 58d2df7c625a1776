"""The tuning network configuration: typed model and pure validation.

Every decision that does not need the kernel lives here, so it is unit
tested without root: where each setting comes from (config, CNI_ARGS,
runtimeConfig, args.cni), which /proc/sys file a sysctl key names, the
admin allowlist and duplicate keys.
"""

from pycni import jsontext
from pycni.model import dataclass, field

from pycni.config import NetConf
from pycni.decode import decode, key, lookup
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG

DEFAULT_DATA_DIR = "/run/cni/tuning"
ALLOWLIST_FILE = "/etc/cni/tuning/allowlist.conf"
SYSCTL_ROOT = "/proc/sys"
# Only per-network-namespace sysctls: everything else would change the host.
NET_SYSCTL_PREFIX = "/proc/sys/net/"
U32_MAX = 0xFFFFFFFF
DUPLICATE_MSG = "duplicated sysctl keys are not allowed"


@dataclass
class CniArgsSection:
    """`args.cni`: per-container values that replace the config's."""
    sysctl: dict[str, str] | None = None
    mac: str | None = None
    promisc: bool | None = None
    mtu: int | None = None
    allmulti: bool | None = None
    tx_q_len: int | None = key("txQLen", default=None)


@dataclass
class Args:
    cni: CniArgsSection | None = None


@dataclass
class RuntimeConfig:
    mac: str = ""


@dataclass
class TuningConf(NetConf):
    data_dir: str = key("dataDir", default="")
    sysctl: dict[str, str] = field(default_factory=dict)
    mac: str = ""
    promisc: bool = False
    mtu: int = 0
    tx_q_len: int | None = key("txQLen", default=None)
    allmulti: bool | None = None
    # shadow the base class's raw dicts with typed sections
    runtime_config: RuntimeConfig = field(default_factory=RuntimeConfig)
    args: Args = field(default_factory=Args)


@dataclass
class Settings:
    """What one ADD/CHECK asks for, after precedence and validation.

    `sysctls` lists (key as configured, /proc/sys file, value) in order.
    None means "leave alone" for allmulti and txqlen.
    """
    data_dir: str
    sysctls: list[tuple[str, str, str]] = field(default_factory=list)  # key, path, value
    mac: str = ""              # canonical lower-case colon form, "" = leave alone
    promisc: bool = False      # True: turn promiscuous mode on (never turned off)
    mtu: int = 0               # 0 = leave alone
    allmulti: bool | None = None
    txqlen: int | None = None

    @property
    def touches_link(self) -> bool:
        """Whether the link's state is changed (and so backed up)."""
        return bool(self.mac or self.mtu or self.promisc
                    or self.allmulti is not None or self.txqlen is not None)


def invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


# --- decoding ----------------------------------------------------------------

def decode_conf(config: dict) -> TuningConf:
    conf = decode(TuningConf, config)
    if not conf.data_dir:
        conf.data_dir = DEFAULT_DATA_DIR
    return conf


def data_dir_of(config: dict) -> str:
    """Only the dataDir: all DEL needs, so DEL works with a config that no
    longer validates in other respects."""
    value = lookup(config, "dataDir")
    return value if isinstance(value, str) and value else DEFAULT_DATA_DIR


def check_duplicate_sysctl_keys(stdin: bytes) -> None:
    """Refuse a `sysctl` object that names the same key twice.

    A JSON object may repeat a key; a plain decoder keeps the last value
    silently. Like Go's decoder, every top-level key spelled "sysctl" in
    any case feeds the same map, so a key repeated across them counts too.
    args.cni.sysctl gets the same rule (the reference does not check it).
    """
    def pairs_hook(pairs):
        return _Pairs(pairs)

    from pycni.decode import utf8_as_go
    try:
        top = jsontext.loads(utf8_as_go(stdin), object_pairs_hook=pairs_hook)
    except ValueError:
        return  # the skeleton already refused undecodable input
    if not isinstance(top, _Pairs):
        return
    _refuse_repeats(_objects_named(top, "sysctl"))
    # args.cni.sysctl may repeat the config's keys (it overrides them),
    # but not its own
    for args in _objects_named(top, "args"):
        for cni in _objects_named(args, "cni"):
            _refuse_repeats(_objects_named(cni, "sysctl"))


def _objects_named(obj: "_Pairs", name: str) -> list["_Pairs"]:
    """The JSON objects under every key spelled `name` in any case."""
    return [v for k, v in obj if k.lower() == name and isinstance(v, _Pairs)]


def _refuse_repeats(objects: list["_Pairs"]) -> None:
    seen: set[str] = set()
    for obj in objects:
        for k, _ in obj:
            if k in seen:
                raise invalid(DUPLICATE_MSG, f"sysctl key {k!r} appears more than once")
            seen.add(k)


class _Pairs(list):
    """A JSON object kept as its (key, value) pairs, repeats included."""


# --- precedence --------------------------------------------------------------

def merged_sysctls(conf: TuningConf) -> dict[str, str]:
    """The config's sysctls, with args.cni.sysctl replacing equal keys
    and adding new ones (config order first, then the new keys)."""
    merged = dict(conf.sysctl)
    section = conf.args.cni
    if section is not None and section.sysctl:
        merged.update(section.sysctl)
    return merged


def choose_mac(conf: TuningConf, cni_args_mac: str) -> str:
    """The reference's order, lowest first: `mac`, CNI_ARGS MAC=,
    runtimeConfig.mac (capability), args.cni.mac. A non-empty value
    replaces the one before it; args.cni.mac replaces it even when empty."""
    mac = conf.mac
    if cni_args_mac:
        mac = cni_args_mac
    if conf.runtime_config.mac:
        mac = conf.runtime_config.mac
    section = conf.args.cni
    if section is not None and section.mac is not None:
        mac = section.mac
    return mac


def effective(conf: TuningConf) -> tuple[bool, int, bool | None, int | None]:
    """promisc, mtu, allmulti, txQLen after args.cni."""
    promisc, mtu, allmulti, txqlen = conf.promisc, conf.mtu, conf.allmulti, conf.tx_q_len
    section = conf.args.cni
    if section is not None:
        if section.promisc is not None:
            promisc = section.promisc
        if section.mtu is not None:
            mtu = section.mtu
        if section.allmulti is not None:
            allmulti = section.allmulti
        if section.tx_q_len is not None:
            txqlen = section.tx_q_len
    return promisc, mtu, allmulti, txqlen


# --- validation --------------------------------------------------------------

def parse_mac(text: str) -> str:
    """A hardware address in any spelling Go's net.ParseMAC accepts
    (pycni.mac: 6, 8 or 20 octets), in canonical lower-case colon form."""
    from pycni import mac
    octets = mac.parse(text)
    if octets is None:
        raise invalid(f"invalid args {text} for MAC addr: address {text}: invalid MAC address")
    return mac.text(octets)


def check_ifname(ifname: str) -> None:
    if "/" in ifname:
        raise invalid(f"Interface name ({ifname}) contains an invalid character /")


def clean_path(path: str) -> str:
    """Lexical clean-up of an absolute path like Go's filepath.Clean:
    repeated slashes, `.` and `..` resolved without touching the disk."""
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


def sysctl_path(key_text: str, ifname: str) -> str:
    """The /proc/sys file a sysctl key names, as the reference derives it:
    every `.` becomes `/` (so `net.ipv4.ip_forward` and `net/ipv4/ip_forward`
    are the same key), then the first `IFNAME` becomes the interface name
    (which may itself contain dots). The result must lie below
    /proc/sys/net/, the per-namespace part."""
    relative = key_text.replace(".", "/").replace("IFNAME", ifname, 1)
    path = clean_path(SYSCTL_ROOT + "/" + relative)
    if not path.startswith(NET_SYSCTL_PREFIX):
        raise invalid(f"invalid net sysctl key: {jsontext.dumps(relative)}",
                      "only keys below net. (/proc/sys/net/) may be set")
    return path


def resolve_sysctls(sysctls: dict[str, str], ifname: str) -> list[tuple[str, str, str]]:
    """(key, path, value) per sysctl, in order; two keys naming the same
    file (`net.ipv4.ip_forward` and `net/ipv4/ip_forward`) are refused, as
    which one wins would be arbitrary."""
    out = []
    by_path: dict[str, str] = {}
    for k, value in sysctls.items():
        path = sysctl_path(k, ifname)
        if path in by_path:
            raise invalid(DUPLICATE_MSG,
                          f"sysctl keys {by_path[path]!r} and {k!r} both name {path}")
        by_path[path] = k
        out.append((k, path, value))
    return out


def parse_allowlist(text: str) -> list[str]:
    """One regular expression per non-blank line, surrounding space trimmed."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def read_allowlist(path: str = ALLOWLIST_FILE) -> list[str] | None:
    """The admin's allowlist, or None when there is none (no restriction)."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_allowlist(f.read())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CNIError(INVALID_NETWORK_CONFIG, f"cannot read sysctl allowlist {path}",
                       str(exc)) from None


def check_allowlist(keys, allowlist: list[str] | None) -> None:
    """Every key must match (anywhere, unanchored) one of the patterns."""
    if allowlist is None:
        return
    import re
    compiled = []
    for pattern in allowlist:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise invalid(f"invalid regular expression in sysctl allowlist: {pattern}",
                          str(exc)) from None
    for k in keys:
        if not any(p.search(k) for p in compiled):
            raise invalid(f"Sysctl {k} is not allowed. Only the following sysctls "
                          f"are allowed: [{' '.join(allowlist)}]")


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= U32_MAX:
        raise invalid(f"invalid {name} {value}, must be [0, {U32_MAX}]")


def build_settings(conf: TuningConf, ifname: str, cni_args_mac: str,
                   allowlist: list[str] | None) -> Settings:
    """Validate a decoded config for ADD/CHECK; nothing is touched yet."""
    check_ifname(ifname)
    sysctls = merged_sysctls(conf)
    check_allowlist(sysctls, allowlist)
    resolved = resolve_sysctls(sysctls, ifname)
    mac_text = choose_mac(conf, cni_args_mac)
    mac = parse_mac(mac_text) if mac_text else ""
    promisc, mtu, allmulti, txqlen = effective(conf)
    _check_u32("mtu", mtu)
    if txqlen is not None:
        _check_u32("txQLen", txqlen)
    return Settings(data_dir=conf.data_dir, sysctls=resolved, mac=mac, promisc=promisc,
                    mtu=mtu, allmulti=allmulti, txqlen=txqlen)

