"""pycni.entry answers VERSION from the registry without loading the
plugin; the answer is the plugin's own, to the byte."""

import io
import os
import subprocess
import sys

import pytest

import pycni
from pycni import skel, version
from pycni.registry import PLUGINS, SUPPORTED_VERSIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))


def _plugin_class(name):
    module = __import__(PLUGINS[name], fromlist=("_",))
    return next(v for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, skel.Plugin) and v is not skel.Plugin
                and v.__module__ == module.__name__)


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_registry_versions_are_the_plugins(name):
    assert tuple(_plugin_class(name).supported_versions) == SUPPORTED_VERSIONS[name]


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_version_answer_same_as_skel(name):
    out = io.StringIO()
    assert skel.run(_plugin_class(name)(), {"CNI_COMMAND": "VERSION"}, io.BytesIO(), out) == 0
    assert version.answer(SUPPORTED_VERSIONS[name]) == out.getvalue()


def _serve(name, env, **kw):
    code = (f"import sys\nsys.path.append({ROOT!r})\n"
            "import posix\n_exit = posix._exit\n"
            "def report(code):\n"
            "    posix.write(2, ('MODULES ' + ' '.join(sorted(sys.modules))).encode())\n"
            "    _exit(code)\n"
            "posix._exit = report\n"      # before pycni.posixos binds it
            f"from pycni.entry import serve\nserve({name!r})\n")
    return subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], env=env,
                          capture_output=True, timeout=30, **kw)


def test_version_loads_no_plugin_module():
    proc = _serve("bridge", {"CNI_COMMAND": "VERSION"})
    assert proc.returncode == 0
    assert proc.stdout.decode() == version.answer(SUPPORTED_VERSIONS["bridge"])
    modules = proc.stderr.decode().split("MODULES ", 1)[1].split()
    assert not [m for m in modules if m.startswith("pycni.plugins") or m in
                ("pycni.skel", "pycni.netlink", "pycni.result")], modules


def test_version_with_stdout_closed_fails_as_skel_does():
    """No answer can be written: the plugin's own path reports it (exit 1,
    a message on stderr), as without the short cut."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c",
                               f"import sys\nsys.path.append({ROOT!r})\n"
                               "from pycni.entry import serve\nserve('loopback')\n"],
                              env={"CNI_COMMAND": "VERSION"}, stdout=w, stderr=subprocess.PIPE,
                              timeout=30)
    finally:
        os.close(w)
    assert proc.returncode == 1
    assert b"EPIPE" in proc.stderr


def test_other_commands_go_to_the_plugin():
    proc = _serve("loopback", {})   # no CNI_COMMAND: the plugin's about text
    assert proc.returncode == 0
    assert b"CNI protocol versions supported" in proc.stderr


def test_plugin_processes_run_without_the_cycle_collector():
    probe = ("import sys\nsys.path.append(%r)\nimport gc, posix\n"
             "_exit = posix._exit\n"
             "def report(code):\n"
             "    posix.write(2, ('GC ' + str(gc.isenabled())).encode())\n"
             "    _exit(code)\n"
             "posix._exit = report\n"
             "from pycni import entry\nentry.serve('loopback')\n") % ROOT
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", probe], env={},
                          capture_output=True, timeout=30)
    assert proc.returncode == 0 and b"GC False" in proc.stderr, proc.stderr
