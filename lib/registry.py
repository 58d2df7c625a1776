"""Which executables pycni provides and the module that serves each.

The executable names are the reference plugins' names: runtimes find a
plugin by its `type` in CNI_PATH. Each module has a `main()`.
"""

PLUGINS = {
    "loopback": "pycni.plugins.loopback.plugin",
}
