"""Which executables pycni provides and the module that serves each.

The executable names are the reference plugins' names: runtimes find a
plugin by its `type` in CNI_PATH. Each module has a `main()`.
"""

PLUGINS = {
    "loopback": "pycni.plugins.loopback.plugin",
    "macvlan": "pycni.plugins.macvlan.plugin",
    "ptp": "pycni.plugins.ptp.plugin",
    "bridge": "pycni.plugins.bridge.plugin",
    "portmap": "pycni.plugins.portmap.plugin",
    "host-local": "pycni.ipam.host_local.plugin",
    "static": "pycni.ipam.static.plugin",
    "dhcp": "pycni.ipam.dhcp.plugin",
    "tuning": "pycni.plugins.tuning.plugin",
    "firewall": "pycni.plugins.firewall.plugin",
    "bandwidth": "pycni.plugins.bandwidth.plugin",
    "sbr": "pycni.plugins.sbr.plugin",
    "host-device": "pycni.plugins.host_device.plugin",
    "tap": "pycni.plugins.tap.plugin",
}

# What each plugin answers to VERSION (its class's `supported_versions`,
# kept here so that pycni.entry can answer without importing the plugin;
# tests/unit/test_entry.py checks they agree).
_ALL = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")   # version.ALL
SUPPORTED_VERSIONS: dict[str, tuple[str, ...]] = {name: _ALL for name in PLUGINS}
SUPPORTED_VERSIONS["bandwidth"] = _ALL[2:]
SUPPORTED_VERSIONS["firewall"] = ("0.4.0", "1.0.0", "1.1.0")
