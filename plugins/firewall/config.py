"""The firewall configuration model and the pure decisions made from it.

Keys are those of the reference plugin: `backend`, `iptablesAdminChainName`
(default CNI-ADMIN), `ingressPolicy` (`open`, `same-bridge`, `isolated`)
and `firewalldZone` (default `trusted`, used by the firewalld backend).
`backend` is `iptables`, `firewalld` or `nftables`. Without one, the
backend is detected: firewalld when it runs on the system bus (as the
reference), else iptables (nftables when only nft is installed). Any
other value is accepted with a warning and the backend chosen as for
none, as the reference (v1.9: iptables or firewalld) treats a backend it
does not know, `nftables` included.

Unlike the reference, which only notices an unknown ingress policy after
it has installed the per-container rules (it refuses it on DEL too),
every value is checked before anything is touched, the ingress policy
first. A `firewalldZone` is checked (firewalld's own rules for a zone
name) only when the firewalld backend is chosen: before it reaches D-Bus.
"""

from pycni.model import dataclass

from pycni.config import NetConf
from pycni.decode import decode
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG

IPTABLES = "iptables"
NFTABLES = "nftables"
FIREWALLD = "firewalld"
BACKENDS = (IPTABLES, NFTABLES, FIREWALLD)
DEFAULT_ZONE = "trusted"
ZONE_NAME_MAX = 17      # firewalld: 28 (a netfilter chain name) - 11 (its "POST_<zone>_allow")
DEFAULT_ADMIN_CHAIN = "CNI-ADMIN"
OPEN, SAME_BRIDGE, ISOLATED = "open", "same-bridge", "isolated"
INGRESS_POLICIES = (OPEN, SAME_BRIDGE, ISOLATED)
CHAIN_NAME_MAX = 28     # iptables: XT_EXTENSION_MAXNAMELEN - 1
RESERVED_CHAIN_NAMES = {"ACCEPT", "DROP", "QUEUE", "RETURN", "INPUT", "OUTPUT",
                        "FORWARD", "PREROUTING", "POSTROUTING", "CNI-FORWARD"}


@dataclass
class FirewallConf(NetConf):
    backend: str | None = None
    iptables_admin_chain_name: str = ""
    firewalld_zone: str = ""
    ingress_policy: str = ""

    @property
    def admin_chain(self) -> str:
        return self.iptables_admin_chain_name or DEFAULT_ADMIN_CHAIN

    @property
    def zone(self) -> str:
        return self.firewalld_zone or DEFAULT_ZONE

    @property
    def policy(self) -> str:
        return self.ingress_policy or OPEN

    @property
    def isolates(self) -> bool:
        return self.policy != OPEN


def _invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


def parse_config(raw: dict, detect_backend=None, check_zone: bool = True,
                 check_admin: bool = True) -> FirewallConf:
    """Decode and validate; `detect_backend()` picks the backend when the
    config names none (only called then: it looks for tools and asks the
    system bus). `check_zone=False` (DEL) leaves an invalid firewalldZone
    to the caller: no source can have been added to it. `check_admin=False`
    (DEL, which never reads iptablesAdminChainName, as the reference's, and
    GC, which never needs it) leaves an invalid one to the caller too:
    `usable_admin_chain`."""
    conf = decode(FirewallConf, raw)
    if conf.ingress_policy and conf.ingress_policy not in INGRESS_POLICIES:
        raise _invalid(f"unknown ingress policy: {_go_quote(conf.ingress_policy)}",
                       "use open, same-bridge or isolated")
    if conf.iptables_admin_chain_name and check_admin:
        validate_chain_name(conf.iptables_admin_chain_name)
    if conf.backend and conf.backend not in BACKENDS:
        # the reference falls back to its default for a backend it does not know
        from pycni import log
        log.warning(f"firewall: unknown backend {_go_quote(conf.backend)}, choosing one as "
                    'for none (use "iptables", "firewalld" or "nftables")')
        conf.backend = None
    if not conf.backend:
        conf.backend = detect_backend() if detect_backend else IPTABLES
    if conf.backend == FIREWALLD and check_zone:
        problem = zone_problem(conf.zone)
        if problem:
            raise _invalid(f"invalid firewalldZone {_go_quote(conf.zone)}: {problem}")
    return conf


def zone_problem(name: str) -> str:
    """Why firewalld would refuse `name` as a zone name ("" if it would
    not): letters, digits, "_", "-" and at most one "/" that neither
    starts nor ends it; at most 17 characters before the "/"
    (firewalld's Zone.check_name). Nothing else reaches D-Bus: no NUL,
    control character or whitespace."""
    if not name:
        return "empty"
    bad = [c for c in name if not (c.isalnum() or c in "_-/")]
    if bad:
        return f"{_go_quote(bad[0])} is not allowed (letters, digits, _, - and /)"
    if name.startswith("/") or name.endswith("/"):
        return 'starts or ends with "/"'
    if name.count("/") > 1:
        return 'has more than one "/"'
    base = name.split("/", 1)[0]
    if len(base) > ZONE_NAME_MAX:
        return f"{len(base)} characters, firewalld allows at most {ZONE_NAME_MAX}"
    return ""


def usable_admin_chain(conf: FirewallConf) -> str:
    """The admin chain's name, or "" when iptablesAdminChainName is not a
    valid one (possible only with check_admin=False): what takes it then
    leaves the admin chain alone, so that no unvalidated name ever goes
    into a rule."""
    name = conf.iptables_admin_chain_name
    return conf.admin_chain if not name or not chain_name_problem(name) else ""


def validate_chain_name(name: str) -> None:
    """iptables accepts at most 28 characters, no whitespace, and a name
    that is neither an option nor a built-in target or chain."""
    problem = chain_name_problem(name)
    if problem:
        raise _invalid(f'invalid iptablesAdminChainName "{name}": {problem}')


def chain_name_problem(name: str) -> str:
    """Why `name` is no valid chain name for validate_chain_name ("" if it is)."""
    from pycni.fwquote import control_char
    problem = ""
    if control_char(name) is not None:
        problem = "contains a control character"
    elif len(name.encode()) > CHAIN_NAME_MAX:
        problem = f"longer than {CHAIN_NAME_MAX} characters"
    elif any(c.isspace() or not c.isprintable() for c in name) or '"' in name or "'" in name:
        problem = "contains whitespace or quotes"
    elif name[0] in "-!":
        problem = 'starts with "-" or "!"'
    elif name.upper() in RESERVED_CHAIN_NAMES:
        problem = "is a built-in chain or target name"
    return problem


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- what the rules are about ---------------------------------------------------

@dataclass(frozen=True)
class ContainerIP:
    family: int
    ip: str             # canonical text, as iptables-save / nft print it

    @property
    def host_cidr(self) -> str:
        return f"{self.ip}/{32 if self.family == 4 else 128}"


def container_ips(result) -> list[ContainerIP]:
    """Every address in prevResult, in order, without repeats. The
    reference allows traffic for all of them, whichever interface they
    sit on, so we do too."""
    from pycni import ipaddr
    out: list[ContainerIP] = []
    for ipc in result.ips if result is not None else []:
        addr = ipaddr.ip_interface(ipc.address).ip
        cip = ContainerIP(addr.version, addr.compressed)
        if cip not in out:
            out.append(cip)
    return out


def bridge_name(conf: FirewallConf, result) -> str:
    """The bridge the ingress policy isolates: the first interface of
    prevResult, which is the bridge when chained after the bridge plugin."""
    if not conf.isolates:
        return ""
    if result is None or not result.interfaces:
        raise _invalid(f"interface needs to be set for ingress policy {_go_quote(conf.policy)}, "
                       'make sure to chain "firewall" plugin with "bridge"')
    name = result.interfaces[0].name
    if not name:
        raise _invalid("got empty bridge name")
    if not valid_bridge_name(name):
        raise _invalid(f"invalid bridge name {_go_quote(name)} in prevResult")
    return name


def valid_bridge_name(name: str) -> bool:
    """A Linux interface name that iptables and nft match as exactly that
    interface: at most 15 bytes, no whitespace, quote, backslash, slash,
    colon or control character, and no wildcard (iptables reads a
    trailing "+", nft a "*" as "any name starting with")."""
    from pycni.fwquote import control_char
    return len(name.encode()) <= 15 and name not in (".", "..") and \
        control_char(name) is None and \
        not any(c.isspace() or c in "\"'\\/:+*" for c in name)
