"""Start-up cost guard: every CNI call is a fresh process, so the modules a
plugin pulls in at import (and on its cheapest paths) must stay light.

Nothing is timed: a fresh isolated interpreter (-I -S: no site, no user
paths) imports the installed package and reports which modules got loaded.
"""

import json
import os
import subprocess
import sys

import pycni

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))

# Each costs several to hundreds of milliseconds or drags in a large tree.
HEAVY = ("pyroute2", "asyncio", "subprocess", "logging", "netaddr", "unittest",
         "ipaddress", "filelock", "pytest",
         # trimmed by pycni._startup and netlink (`_socket` instead of `socket`)
         "inspect", "socket", "selectors")


def setup_module(module):
    if os.path.basename(os.path.dirname(os.path.abspath(pycni.__file__))) != "pycni":
        import pytest
        pytest.skip("needs a regular (non-editable) install of the package")


def loaded_modules(body: str) -> set[str]:
    code = (f"import sys\nsys.path.insert(0, {PACKAGE_PARENT!r})\n{body}\n"
            "import json\nsys.__stdout__.write('\\n' + json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_isolated_interpreter_uses_installed_package():
    modules = loaded_modules("import pycni.skel\nprint(pycni.skel.__file__)")
    assert "pycni.skel" in modules


def test_importing_loopback_plugin_and_skel_is_light():
    modules = loaded_modules("import pycni.plugins.loopback.plugin\nimport pycni.skel")
    assert "pycni.plugins.loopback.plugin" in modules
    assert heavy_in(modules) == []


def test_cheap_invocations_stay_light():
    """VERSION, a DEL of a vanished container and a rejected request load
    nothing heavy either."""
    body = """
import io
from pycni import skel
from pycni.plugins.loopback.plugin import LoopbackPlugin
env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "lo", "CNI_PATH": "/x", "CNI_NETNS": ""}
conf = b'{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}'
codes = []
for command, stdin in (("VERSION", b""), ("DEL", conf), ("ADD", conf), ("DEL", b"{")):
    out = io.StringIO()
    codes.append(skel.run(LoopbackPlugin(), {**env, "CNI_COMMAND": command},
                          io.BytesIO(stdin), out))
assert codes == [0, 0, 1, 1], codes
"""
    assert heavy_in(loaded_modules(body)) == []


def test_plugin_modules_import_light():
    """Every registered plugin's module imports without the heavy set."""
    from pycni.registry import PLUGINS
    body = "\n".join(f"import {module}" for module in PLUGINS.values())
    assert heavy_in(loaded_modules(body)) == []


def test_dataclass_docstrings_without_inspect():
    """The stand-in for inspect still gives dataclasses a docstring, and the
    real inspect is there for whoever asks for it later."""
    body = ("import pycni.result as r\n"
            "assert r.Route.__doc__ == 'Route(dst, gw, mtu, advmss, priority, table, scope)'"
            ", r.Route.__doc__\n"
            "assert 'inspect' not in sys.modules\n"
            "import inspect\n"
            "assert inspect.signature(r.Route.__init__)\n"
            "import dataclasses\n"
            "assert dataclasses.inspect.isclass(r.Route)\n")
    loaded_modules(body)
