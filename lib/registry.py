"""Which executables pycni provides and the module that serves each.

The executable names are the reference plugins' names: runtimes find a
plugin by its `type` in CNI_PATH. Each module has a `main()`.
"""

PLUGINS = {
    "loopback": "pycni.plugins.loopback.plugin",
    "macvlan": "pycni.plugins.macvlan.plugin",
    "bridge": "pycni.plugins.bridge.plugin",
    "portmap": "pycni.plugins.portmap.plugin",
    "host-local": "pycni.ipam.host_local.plugin",
    "tuning": "pycni.plugins.tuning.plugin",
    "firewall": "pycni.plugins.firewall.plugin",
    "bandwidth": "pycni.plugins.bandwidth.plugin",
}
