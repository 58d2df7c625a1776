"""dhcp configuration: the JSON model, the DHCP options a request carries.

Pure. The plugin loads it to refuse a bad config before it talks to the
daemon; the daemon loads the same config again (it never trusts what the
plugin made of it) and builds the options with `prepare_options`, the
reference's prepareOptions (lease.go): `provide` values (literal or from
a CNI_ARGS key) and the parameter request list (`request`, plus routers
and subnet-mask unless an entry says skipDefault).

Refusals are code 999 with the reference's texts: the reference returns
plain errors (from its daemon, through net/rpc), which skel reports as 999.
"""

from pycni.model import dataclass, field

from pycni.decode import decode, key
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG

DEFAULT_SOCKET_PATH = "/run/cni/dhcp.sock"
SUN_PATH_MAX = 107          # sockaddr_un.sun_path less its terminating NUL
_OPT_ROUTER, _OPT_SUBNET_MASK, _OPT_PARAMETER_LIST = 3, 1, 55
# Options a `provide` entry may not set: they would break every message
# (pad, end) or turn it into another one (the message type).
_NOT_PROVIDED = {0: "it is the pad option", 255: "it is the end option",
                 53: "the daemon sets the message type"}


@dataclass
class ProvideOption:
    option: str = ""
    value: str = ""
    value_from_cni_arg: str = key("fromArg", default="")


@dataclass
class RequestOption:
    skip_default: bool = False
    option: str = ""


@dataclass
class DhcpIPAMConf:
    """The config's `ipam`, as dhcp reads it (the reference's IPAMConfig)."""
    type: str = ""
    daemon_socket_path: str = ""
    provide: list[ProvideOption] = field(default_factory=list)
    request: list[RequestOption] = field(default_factory=list)
    priority: int = 0


@dataclass
class DhcpConf:
    """The keys of the network config dhcp reads (of the reference's
    NetConf: the common types.NetConf keys and `ipam`)."""
    name: str = ""
    cni_version: str = ""
    ipam: DhcpIPAMConf | None = None


def refusal(msg: str, details: str = "") -> CNIError:
    return CNIError(INTERNAL, msg, details)


def load(config: dict) -> DhcpConf:
    """Decode the network config; `ipam` must be there (the reference
    dereferences it and panics without it)."""
    conf = decode(DhcpConf, config)
    if conf.ipam is None:
        raise CNIError(INVALID_NETWORK_CONFIG, "IPAM config missing 'ipam' key")
    if not -(1 << 63) <= conf.ipam.priority < 1 << 63:
        raise refusal(f"json: cannot unmarshal number {conf.ipam.priority} into Go struct "
                      "field IPAMConfig.ipam.priority of type int")
    return conf


def socket_path(conf: DhcpConf) -> str:
    """Where the daemon listens: ipam.daemonSocketPath or the default.
    Refused when it is no absolute path a unix socket can have."""
    assert conf.ipam is not None        # load refuses a config without it
    path = conf.ipam.daemon_socket_path or DEFAULT_SOCKET_PATH
    if not path.startswith("/") or "\0" in path or len(path.encode()) > SUN_PATH_MAX:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"daemonSocketPath {path!r} is not an absolute unix socket path "
                       f"of at most {SUN_PATH_MAX} bytes")
    return path


def parse_option(name: str) -> int:
    """options.go parseOptionName, with the reference's error text."""
    from pycni.dhcp4 import parse_option_name
    try:
        return parse_option_name(name)
    except ValueError as exc:
        raise refusal(f"Can not parse option {_go_quote(name)}: {exc}") from None


def _go_quote(text: str) -> str:
    from pycni.jsontext import dumps
    return dumps(text)


def _cni_args_map(args_text: str) -> dict:
    """CNI_ARGS as prepareOptions reads it: split on ';', each pair on the
    first '='; pairs without '=' are skipped; the last of a key wins."""
    out = {}
    for pair in args_text.split(";"):
        k, sep, v = pair.partition("=")
        if sep:
            out[k] = v
    return out


def prepare_options(conf: DhcpConf, args_text: str) -> list[tuple[int, bytes]]:
    """The options (code, value) every DHCP request of this attachment
    carries, in the order the reference applies them (a later one of the
    same code replaces an earlier one: Options.Update)."""
    assert conf.ipam is not None        # load refuses a config without it
    opts: list[tuple[int, bytes]] = []
    cni_args = _cni_args_map(args_text)
    for opt in conf.ipam.provide:
        code = parse_option(opt.option)
        if code in _NOT_PROVIDED:
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f"option {_go_quote(opt.option)} cannot be provided: "
                           f"{_NOT_PROVIDED[code]}")
        if opt.value:
            if len(opt.value.encode()) > 255:
                raise refusal(f"value too long for option {_go_quote(opt.option)}: "
                              f"{_go_quote(opt.value)}")
            opts.append((code, opt.value.encode()))
        if opt.value_from_cni_arg in cni_args:
            value = cni_args[opt.value_from_cni_arg]
            if len(value.encode()) > 255:
                raise refusal(f"value too long for option {_go_quote(opt.option)} from "
                              f"CNI_ARGS {_go_quote(opt.value_from_cni_arg)}: "
                              f"{_go_quote(opt.value)}")
            opts.append((code, value.encode()))
    requested: list[int] = []
    skip_default = False
    for req in conf.ipam.request:
        if req.skip_default:
            skip_default = True
        if not req.option:
            continue
        code = parse_option(req.option)
        if code not in requested:
            requested.append(code)
    if not skip_default:
        for code in (_OPT_ROUTER, _OPT_SUBNET_MASK):
            if code not in requested:
                requested.append(code)
    if requested:
        opts.append((_OPT_PARAMETER_LIST, bytes(requested)))
    return opts
