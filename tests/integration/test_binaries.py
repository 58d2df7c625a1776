"""The standalone executables built by ./build.sh (dist/cni-bin): static
launchers and a static CPython in .pycni/ (tests/integration/test_portable.py
checks that no file needs a libc and runs them on other roots).

The bundle is copied to a temporary directory, as `cp -a --no-preserve=ownership dist/cni-bin/. DIR/`
installs it on a node, and every plugin is run there with an environment
holding nothing but what a runtime passes (no PYTHONPATH, no virtualenv on
PATH); one test also hides every Python installation on the machine behind
tmpfs mounts (in a private mount namespace) and still does ADD and DEL.

Skipped when dist/cni-bin does not exist (run ./build.sh first); under
CI=true a missing bundle is a failure.
"""

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from pytest_netns import missing_prerequisite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(ROOT, "dist", "cni-bin")
CONTENTS_DIR = ".pycni"
# What a runtime's environment may be reduced to: no Python anywhere.
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    """A copy of the bundle, installed the documented way."""
    if not os.path.isdir(BUNDLE):
        missing_prerequisite(f"{BUNDLE} not built (run ./build.sh)")
    target = tmp_path_factory.mktemp("cni-bin-copy")
    subprocess.run(["cp", "-a", BUNDLE + "/.", str(target)], check=True)
    return str(target)


def bare_env(**cni) -> dict:
    return {"PATH": BARE_PATH, **cni}


def run(binary: str, env: dict, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([binary], input=stdin, env=env, capture_output=True, timeout=60)


def registry_names() -> list[str]:
    from pycni.registry import PLUGINS
    return sorted(PLUGINS)


def test_bundle_is_plugins_plus_one_hidden_directory(bin_dir):
    entries = sorted(os.listdir(bin_dir))
    assert entries == sorted(registry_names() + [CONTENTS_DIR]), \
        "dist/cni-bin does not match pycni.registry: rebuild with ./build.sh"
    for name in registry_names():
        assert os.access(os.path.join(bin_dir, name), os.X_OK)


@pytest.mark.parametrize("name", registry_names())
def test_every_plugin_answers_version_with_an_empty_environment(bin_dir, name):
    proc = subprocess.run(["env", "-i", "CNI_COMMAND=VERSION", os.path.join(bin_dir, name)],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    doc = json.loads(proc.stdout)
    assert "1.0.0" in doc["supportedVersions"]


def test_arguments_reach_the_plugin(bin_dir):
    """`dhcp daemon ...` is the same executable with arguments: the
    launcher passes them on (here a flag the daemon refuses, so nothing
    starts)."""
    proc = subprocess.run([os.path.join(bin_dir, "dhcp"), "daemon", "-no-such-flag"],
                          env=bare_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)
    assert proc.returncode != 0
    assert b"Usage of daemon" in proc.stderr, proc.stderr.decode()


def test_python_variables_of_the_caller_are_ignored(bin_dir):
    """A node's PYTHONHOME/PYTHONPATH (for some other tool) must not reach
    the bundled interpreter, and running must not write into the bundle."""
    before = sorted(os.walk(bin_dir))
    env = bare_env(CNI_COMMAND="VERSION", PYTHONHOME="/nonexistent",
                   PYTHONPATH="/nonexistent", PYTHONWARNINGS="error", PYTHONINSPECT="1")
    proc = run(os.path.join(bin_dir, "loopback"), env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "supportedVersions" in json.loads(proc.stdout)
    assert sorted(os.walk(bin_dir)) == before


def test_runtime_comes_from_the_bundle(bin_dir):
    """Every program exec'ed and every file opened or looked at on the way
    to a VERSION answer lies in the copy (the launcher, .pycni/python, its
    python._pth and standard library), apart from /etc/localtime (the C
    library's time zone) and /proc/self/exe (how the launcher finds its
    directory): nothing from the build machine's Python, no search of
    parent directories, no loader, no shared library."""
    if not shutil.which("strace"):
        missing_prerequisite("needs strace (scripts/install-deps.sh)")
    log = os.path.join(bin_dir, "..", "strace-version.txt")
    proc = subprocess.run(["strace", "-f", "-qq", "-o", log, "-e",
                           "trace=execve,open,openat,stat,lstat,newfstatat,access,readlink",
                           os.path.join(bin_dir, "loopback")],
                          env=bare_env(CNI_COMMAND="VERSION"), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    with open(log) as f:
        lines = f.read().splitlines()
    os.unlink(log)
    paths = [line.split('"')[1] for line in lines if '"' in line]
    assert paths[0] == os.path.join(bin_dir, "loopback")
    assert os.path.join(bin_dir, CONTENTS_DIR, "python") in paths
    outside = {p for p in paths if not p.startswith(bin_dir + "/")}
    assert outside <= {"/etc/localtime", "/proc/self/exe"}, sorted(outside)


def test_loopback_add_check_del_in_a_fresh_namespace(world, bin_dir):
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": "lo-net", "type": "loopback"}
    env = world.plugin_env("ADD", bin_dir, ctr, ifname="lo", extra={"PATH": BARE_PATH})
    assert not any(k.startswith(("PYTHON", "VIRTUAL_ENV")) for k in env)

    add = world.exec_plugin("loopback", env, conf)
    assert add.ok, add.stdout + add.stderr
    assert [(i["name"], i.get("sandbox")) for i in add.json["interfaces"]] == [("lo", ctr.path)]
    assert "127.0.0.1/8" in [ip["address"] for ip in add.json["ips"]]
    assert "UP" in ctr.link("lo")["flags"]

    check = world.exec_plugin("loopback", {**env, "CNI_COMMAND": "CHECK"},
                              {**conf, "prevResult": add.json})
    assert check.ok and check.stdout.strip() == "", check.stdout + check.stderr

    for _ in range(2):  # DEL is idempotent
        delete = world.exec_plugin("loopback", {**env, "CNI_COMMAND": "DEL"}, conf)
        assert delete.ok and delete.stdout.strip() == "", delete.stdout + delete.stderr
    assert "UP" not in ctr.link("lo")["flags"]


def test_delegated_plugins_get_the_runtimes_environment(world, bin_dir, tmp_path):
    """A delegated IPAM plugin (and any tool a plugin runs) gets exactly the
    environment the runtime passed: nothing added (no LD_LIBRARY_PATH or
    PyInstaller variables, no locale coercion's LC_CTYPE), nothing lost."""
    if "bridge" not in registry_names():
        pytest.skip("needs the bridge plugin")
    dump = tmp_path / "env.txt"
    ipam_dir = tmp_path / "ipam"
    ipam_dir.mkdir()
    spy = ipam_dir / "env-spy"
    spy.write_text(f"#!/bin/sh\nenv > {dump}\n")
    spy.chmod(0o755)
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": "spy-net", "type": "bridge",
            "bridge": "spybr0", "ipam": {"type": "env-spy"}}
    env = world.plugin_env("DEL", [bin_dir, str(ipam_dir)], ctr,
                           extra={"PATH": BARE_PATH, "LD_LIBRARY_PATH": "/opt/runtime-lib"})
    result = world.exec_plugin("bridge", env, conf)
    assert result.ok, result.stdout + result.stderr
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert seen.get("LD_LIBRARY_PATH") == "/opt/runtime-lib"
    assert not [k for k in seen if k.startswith("_PYI_") or k == "LD_LIBRARY_PATH_ORIG"]
    assert seen["CNI_COMMAND"] == "DEL"
    # what the spy's sh adds itself: PWD (and SHLVL with some shells)
    assert {k: v for k, v in seen.items() if k not in ("PWD", "SHLVL", "_")} == env


def python_installations(keep: str) -> list[str]:
    """Every directory a Python could come from here (build interpreter,
    virtualenv, system Pythons, this source tree), except parents of `keep`."""
    candidates = {sys.base_prefix, sys.prefix, ROOT,
                  *glob.glob("/usr/lib/python3*"), *glob.glob("/usr/local/lib/python3*")}
    dirs = sorted(d.rstrip("/") for d in candidates
                  if os.path.isdir(d) and d != "/usr" and not keep.startswith(d.rstrip("/") + "/"))
    # Hiding a directory hides what is inside it (e.g. a .venv in the tree).
    return [d for d in dirs if not any(d.startswith(o + "/") for o in dirs if o != d)]


def test_add_and_del_with_every_python_hidden(world, bin_dir):
    """In a private mount namespace with tmpfs over every Python on this
    machine, the copied loopback still does ADD and DEL: a node without
    Python is enough."""
    if not shutil.which("unshare"):
        missing_prerequisite("needs unshare (util-linux)")
    hidden = python_installations(keep=bin_dir)
    assert sys.base_prefix in hidden or sys.base_prefix == "/usr"
    ctr = world.container()
    conf = json.dumps({"cniVersion": "1.0.0", "name": "lo-net", "type": "loopback"})
    mounts = "".join(f"mount -t tmpfs pycni-hide {shlex.quote(d)} && " for d in hidden)
    for command in ("ADD", "DEL"):
        env = world.plugin_env(command, bin_dir, ctr, ifname="lo", extra={"PATH": BARE_PATH})
        script = (f"{mounts}exec ip netns exec {shlex.quote(world.host.name)} "
                  f"{shlex.quote(os.path.join(bin_dir, 'loopback'))}")
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              input=conf.encode(), env=env, capture_output=True, timeout=60)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        if command == "ADD":
            assert json.loads(proc.stdout)["interfaces"][0]["name"] == "lo"
            assert "UP" in ctr.link("lo")["flags"]
    assert "UP" not in ctr.link("lo")["flags"]


def test_bundled_ipam_is_served_in_process(world, bin_dir, tmp_path):
    """bridge finds host-local of the same bundle on CNI_PATH and serves it
    in its own process (pycni.invoke: sys.executable, which the launcher
    sets to itself, lies in the same directory): no second interpreter."""
    if not shutil.which("strace"):
        missing_prerequisite("needs strace (scripts/install-deps.sh)")
    ctr = world.container()
    conf = json.dumps({"cniVersion": "1.0.0", "name": "inproc-net", "type": "bridge",
                       "bridge": "inprocbr0", "ipam": {"type": "host-local", "subnet": "10.250.9.0/24",
                                                       "dataDir": str(tmp_path / "ipam")}})
    log = tmp_path / "strace.txt"
    execs = {}
    for command in ("ADD", "DEL"):
        env = world.plugin_env(command, bin_dir, ctr, extra={"PATH": BARE_PATH})
        proc = subprocess.run(["ip", "netns", "exec", world.host.name, "strace", "-f", "-qq",
                               "-e", "trace=execve", "-o", str(log), os.path.join(bin_dir, "bridge")],
                              input=conf.encode(), env=env, capture_output=True, timeout=60)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        execs[command] = [line.split('"')[1] for line in log.read_text().splitlines()
                          if "execve(" in line and '"' in line]
    for command, programs in execs.items():
        assert programs == [os.path.join(bin_dir, "bridge"),
                            os.path.join(bin_dir, CONTENTS_DIR, "python")], (command, programs)
