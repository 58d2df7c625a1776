"""What lint knows about plugins, as data.

Key sets of the reference plugins pycni does not ship come from their Go
config structs in containernetworking/plugins v1.9.1 (the `json:"..."`
tags; every plugin embeds types.NetConf, whose keys are COMMON_KEYS).
tests/unit/test_lint_refdata.py re-reads those structs from the
reference source when it is at hand and fails when they drift. Keys of
pycni's own plugins are not listed here: they are derived from their
config models (lint.plugins).
"""

# types.NetConf (containernetworking/cni pkg/types) plus what every
# plugin receives from the runtime (runtimeConfig, args, prevResult).
COMMON_KEYS = ("cniVersion", "name", "type", "capabilities", "ipam", "dns",
               "runtimeConfig", "args", "prevResult")
# Read by every pycni plugin from the raw config (lib/log.py), ignored
# by the reference: never reported as unknown.
PYCNI_KEYS = ("logFile", "logLevel")

REFERENCE_KEYS = {
    # plugins/main/dummy/dummy.go: parseNetConf decodes types.NetConf only
    "dummy": (),
    # plugins/main/ipvlan/ipvlan.go: type NetConf
    "ipvlan": ("master", "mode", "mtu", "linkInContainer"),
    # plugins/main/vlan/vlan.go: type NetConf
    "vlan": ("master", "vlanId", "mtu", "linkInContainer"),
    # plugins/meta/vrf/main.go: type VRFNetConf
    "vrf": ("vrfname", "table"),
}
# plugins/ipam/dhcp/main.go: type IPAMConfig (types.IPAM gives `type`)
REFERENCE_IPAM_KEYS = {
    "dhcp": ("type", "daemonSocketPath", "provide", "request", "priority"),
}

IPAM_TYPES = ("host-local", "static", "dhcp")

# Capabilities each plugin reads from runtimeConfig (reference v1.9.1:
# the RuntimeConfig structs of bridge, macvlan, tap, tuning, host-device,
# portmap, bandwidth, host-local, static; pycni's plugins read the same).
# A plugin with IPAM also passes its whole config, runtimeConfig included,
# to the IPAM plugin: the IPAM plugin's capabilities count for it.
CAPABILITIES = {
    "bridge": ("mac",),
    "macvlan": ("mac",),
    "tap": ("mac",),
    "tuning": ("mac",),
    "host-device": ("deviceID",),
    "portmap": ("portMappings",),
    "bandwidth": ("bandwidth",),
    "host-local": ("ips", "ipRanges"),
    "static": ("ips",),
    "loopback": (),
    "ptp": (),
    "firewall": (),
    "sbr": (),
    "ipvlan": (),
    "vlan": (),
    "dummy": (),
    "vrf": (),
    "dhcp": (),
}

# Plugins that only act on the result of the plugins before them: placed
# first in a chain, their ADD fails ("must be called as chained plugin").
CHAINED = ("portmap", "firewall", "tuning", "bandwidth", "sbr", "vrf")
# Plugins that create the container's interface: their result replaces
# whatever came before them.
INTERFACE_PLUGINS = ("bridge", "macvlan", "ptp", "tap", "host-device", "vlan", "dummy")
# Interface plugins whose ADD fails without an IPAM plugin (pycni's own
# are also refused by their config models; this covers the others).
IPAM_REQUIRED = ("ptp", "vlan", "dummy")
