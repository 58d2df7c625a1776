"""The network configuration keys every plugin shares.

A plugin's config model is a dataclass extending `NetConf` (an IPAM
plugin's: `IPAMPluginConf`); decode it from `Request.config` with
`decode.decode(MyConf, req.config)`.
"""

from .model import dataclass, field

from .decode import key
from .result import DNS


@dataclass
class IPAMConf:
    """A config's `ipam` as the main plugin reads it: the IPAM plugin's
    type (the rest is that plugin's, in the raw config)."""
    type: str = ""


# A config's `dns` has the result's shape (the reference decodes both into
# types.DNS): one class, pycni.result.DNS, under its config name.
DNSConf = DNS


@dataclass
class NetConf:
    """The keys every network config has; extend it with a plugin's own
    (``@dataclass class MyConf(NetConf): mtu: int = 0``)."""
    cni_version: str = ""
    name: str = ""
    type: str = ""
    capabilities: dict = field(default_factory=dict)
    ipam: IPAMConf = field(default_factory=IPAMConf)
    dns: DNSConf = field(default_factory=DNSConf)
    runtime_config: dict = field(default_factory=dict)
    args: dict = field(default_factory=dict)
    prev_result: dict | None = None
    # logFile/logLevel (pycni diagnostics, Multus spelling) are read by
    # log.py from the raw config, not decoded here: the reference ignores
    # them, so a value of another type must not fail the operation.


@dataclass
class CniArgsConf:
    """`args.cni` of a config (the libcni convention), as the IPAM plugins
    read it: `ips` the runtime asks for."""
    ips: list[str] = field(default_factory=list)


@dataclass
class ArgsConf:
    """A config's `args`, as the IPAM plugins read it."""
    cni: CniArgsConf | None = None


@dataclass
class IPAMRuntimeConf:
    """`runtimeConfig` as an IPAM plugin reads it: the `ips` capability;
    `ipRanges` (host-local's) stays raw JSON here, for the plugin that reads
    it to redefine."""
    ip_ranges: object = None
    ips: list[str] = field(default_factory=list)


@dataclass
class IPAMPluginConf:
    """The keys an IPAM plugin reads from the network config (the `Net`
    struct of the reference's host-local and static): extend it and give
    `ipam` the plugin's own model (``@dataclass class MyConf(IPAMPluginConf):
    ipam: MyIPAMConf | None = None``), `runtime_config` too if it reads
    more. Fields are decoded in this order, a redefined one in its place."""
    name: str = ""
    cni_version: str = ""
    ipam: object = None
    runtime_config: IPAMRuntimeConf = field(default_factory=IPAMRuntimeConf)
    args: ArgsConf | None = None


@dataclass
class ValidAttachment:
    """One entry of GC's cni.dev/valid-attachments (not a cnitool cache
    record, pycni.cnitool.cache.Attachment)."""
    container_id: str = key("containerID", default="")
    ifname: str = key("ifname", default="")
