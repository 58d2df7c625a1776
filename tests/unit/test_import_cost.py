"""Start-up cost guard: every CNI call is a fresh process, so the modules a
plugin pulls in at import (and on its cheapest paths) must stay light.

Nothing is timed: a fresh isolated interpreter (-I -S: no site, no user
paths) imports the installed package and reports which modules got loaded.
"""

import json
import os
import subprocess
import sys

import pytest

import pycni

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))

# Each costs several to hundreds of milliseconds or drags in a large tree.
HEAVY = ("pyroute2", "asyncio", "subprocess", "logging", "netaddr", "unittest",
         "ipaddress", "filelock", "pytest",
         # record classes come from pycni.model, netlink uses `_socket`
         "dataclasses", "inspect", "copy", "socket", "selectors")


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


def test_record_classes_without_dataclasses():
    """Record classes come from pycni.model: no `dataclasses`, `inspect`,
    `copy` or `re` behind them, and they still get a docstring."""
    body = ("import pycni.result as r\n"
            "from pycni.model import dataclass\n"
            "@dataclass\n"
            "class Plain:\n"
            "    a: int = 0\n"
            "    b: str = ''\n"
            "assert Plain.__doc__ == 'Plain(a, b)', Plain.__doc__\n"
            "assert r.Route.__doc__.startswith('One entry'), r.Route.__doc__\n"
            "for name in ('dataclasses', 'inspect', 'copy', 're'):\n"
            "    assert name not in sys.modules, name\n")
    loaded_modules(body)


def test_model_imports_nothing():
    """pycni.model needs no module beyond what a bare interpreter has."""
    before = loaded_modules("")
    after = loaded_modules("import pycni.model")
    assert sorted(after - before) == ["pycni", "pycni.model"]


# ------------------------------------------------------------ exit path
# skel.main ends the process with os._exit (no interpreter finalisation:
# 55-87 ms per pod lifecycle, issue #12) once stdout and stderr are flushed.

PLUGIN_SCRIPT = """
import sys
sys.path.insert(0, {parent!r})
import atexit, os
atexit.register(lambda: os.write(2, b"FINALISED"))   # runs only on a normal exit
from pycni import skel
from pycni.errors import CNIError, INTERNAL
from pycni.result import Result, Route

class Big(skel.Plugin):
    name = "big"
    def add(self, req):
        sys.stderr.write("partial line on stderr")         # no newline: still buffered
        sys.stderr.buffer.write(b" and raw bytes")         # as invoke.py forwards a delegate's
        if req.network_name == "fail":
            raise CNIError(INTERNAL, "failed on purpose")
        return Result(routes=[Route(f"10.{{i // 256}}.{{i % 256}}.0/24") for i in range({routes})])

skel.main(Big())
"""

ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/nonexistent", "CNI_NETNS": "/nonexistent/netns", "PATH": "/usr/bin:/bin"}


def run_plugin(routes: int = 1, name: str = "net", **kwargs):
    code = PLUGIN_SCRIPT.format(parent=PACKAGE_PARENT, routes=routes)
    conf = json.dumps({"cniVersion": "1.0.0", "name": name, "type": "big"}).encode()
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], input=conf, env=ADD_ENV,
                          timeout=60, **kwargs)


def test_main_leaves_without_finalisation_and_flushes_everything():
    """A result far larger than the stdout buffer arrives whole, the
    unterminated stderr text too, and finalisation (atexit) never runs."""
    proc = run_plugin(routes=3000, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["routes"]) == 3000
    # the text layer and the raw buffer are flushed separately: any order
    assert sorted([proc.stderr.replace(b"partial line on stderr", b""),
                   proc.stderr.replace(b" and raw bytes", b"")]) == \
        [b" and raw bytes", b"partial line on stderr"]


def test_main_failure_exits_1_with_the_whole_error():
    proc = run_plugin(name="fail", capture_output=True)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["msg"] == "failed on purpose"
    assert b"FINALISED" not in proc.stderr


@pytest.mark.parametrize("routes", [1, 3000], ids=["result-in-buffer", "result-beyond-buffer"])
def test_main_stdout_broken_pipe(routes):
    """The runtime stopped reading (EPIPE, whether at the final flush or in
    the middle of the write): exit 1 with one line on stderr, no traceback,
    no 'Exception ignored' from a flush at shutdown."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = run_plugin(routes=routes, stdout=w, stderr=subprocess.PIPE)
    finally:
        os.close(w)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "EPIPE" in err
    assert "Traceback" not in err and "Exception ignored" not in err and "FINALISED" not in err


def test_main_with_stdout_closed():
    proc = run_plugin(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      preexec_fn=lambda: os.close(1))
    assert proc.returncode == 1
    assert b"stdout is closed" in proc.stderr and b"Traceback" not in proc.stderr


def test_in_process_delegation_never_exits(monkeypatch):
    """invoke.run_in_process serves a delegate with skel.run: it returns (or
    raises the delegate's error) and the calling plugin goes on; only the
    outermost skel.main may end the process."""
    from pycni import invoke
    from pycni.errors import CNIError

    def no_exit(code):
        raise AssertionError(f"os._exit({code}) inside an in-process delegate")

    from pycni import posixos
    monkeypatch.setattr(posixos, "_exit", no_exit)
    out = invoke.run_in_process("pycni.plugins.loopback.plugin", b"", {"CNI_COMMAND": "VERSION"})
    assert json.loads(out)["supportedVersions"]
    with pytest.raises(CNIError):
        invoke.run_in_process("pycni.plugins.loopback.plugin", b"{",
                              {**ADD_ENV, "CNI_NETNS": "/nonexistent/netns"})
