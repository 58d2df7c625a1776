"""The SDK's example plugin (examples/extra-routes) the way a third party
ships one (issue #16): built and installed into a fresh venv from a copy
of this source tree (pip install --no-deps --no-build-isolation, no
network), `pycni install --dir` writes its launcher from the `pycni.plugins`
entry point beside pycni's own, `pycni list` shows it, and it runs through
cnitool chained after bridge + host-local in a test world: ADD, CHECK
(passing, then failing once its route is gone), DEL twice. Its launcher
gets pycni's bundle (the fast import path) like pycni's own plugins.
The example's own test suite runs too."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from test_golibcni import golibcni  # noqa: F401  (the Go libcni client binary fixture)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "extra-routes")
# What a fresh clone holds; build outputs and caches of this tree are left out.
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                "__pycache__", ".pytest_cache")
PIP = ("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
       "--disable-pip-version-check")


def _run(*argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv with pycni and the example installed from a copy of the tree."""
    top = tmp_path_factory.mktemp("sdk-example")
    src = top / "src"
    shutil.copytree(REPO, src, ignore=IGNORE, symlinks=True)
    env_dir = top / "venv"
    # The distribution's interpreter, as scripts/install-deps.sh uses it; its
    # venv's setuptools (66 on Debian 12) builds a wheel offline only with
    # the `wheel` package, which the system site-packages have (python3-wheel).
    base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys._base_executable
    _run(base, "-m", "venv", "--system-site-packages", str(env_dir))
    python = str(env_dir / "bin" / "python")
    if subprocess.run([python, "-c", "import wheel"], capture_output=True).returncode != 0:
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"{base} has no `wheel` package (apt-get install python3-wheel)")
    _run(python, *PIP, str(src))
    _run(python, *PIP, str(src / "examples" / "extra-routes"))
    return env_dir


@pytest.fixture(scope="module")
def bin_dir(venv, tmp_path_factory):
    target = tmp_path_factory.mktemp("sdk-cni-bin")
    _run(str(venv / "bin" / "pycni"), "install", "--dir", str(target))
    return target


def test_install_writes_the_third_party_launcher(venv, bin_dir):
    launcher = (bin_dir / "extra-routes").read_text()
    assert launcher.startswith(f"#!{venv / 'bin' / 'python'} -ISB\n")
    assert "serve_module('pycni_extra_routes.plugin'" in launcher
    assert os.stat(bin_dir / "extra-routes").st_mode & 0o777 == 0o755
    assert (bin_dir / "bridge").exists() and (bin_dir / ".pycni-bundle").exists()
    listed = _run(str(venv / "bin" / "pycni"), "list").stdout.splitlines()
    assert "extra-routes\tpycni_extra_routes.plugin\tpycni-extra-routes 0.1.0" in listed
    assert "bridge\tpycni.plugins.bridge.plugin" in listed


def test_install_names_the_third_party_plugin_alone(venv, tmp_path):
    out = _run(str(venv / "bin" / "pycni"), "install", "--dir", str(tmp_path / "d"),
               "extra-routes")
    assert sorted(p.name for p in (tmp_path / "d").iterdir() if not p.name.startswith(".")) \
        == ["extra-routes"], out.stdout


def test_launcher_answers_version(bin_dir):
    proc = subprocess.run([str(bin_dir / "extra-routes")], env={"CNI_COMMAND": "VERSION"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["supportedVersions"][-1] == "1.1.0"


# In front of the launcher's code: when skel.main ends the process, report
# which loader served pycni's modules and the plugin's own.
REPORT = """\
import posix, sys
def _report_and_exit(code, _exit=posix._exit):
    loaders = {{name: type(m.__spec__.loader).__name__ for name, m in list(sys.modules.items())
               if name.startswith(("pycni", "pycni_extra_routes")) and getattr(m, "__spec__", None)}}
    posix.write({fd}, repr(loaders).encode())
    _exit(code)
posix._exit = _report_and_exit
"""


def test_launcher_uses_the_bundle_for_pycni_modules(venv, bin_dir, tmp_path):
    """pycni's modules come from .pycni-bundle (the bundle's finder), the
    plugin's own from its files: the third-party launcher pays what pycni's
    launchers pay for the library."""
    read_fd, write_fd = os.pipe()
    text = (bin_dir / "extra-routes").read_text().split("\n", 1)[1]
    script = tmp_path / "launcher.py"
    script.write_text(REPORT.format(fd=write_fd) + text)
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "extra-routes",
                       "routes": [{"dst": "10.9.0.0/16"}]})
    proc = subprocess.run([str(venv / "bin" / "python"), "-ISB", str(script)],
                          input=conf, capture_output=True, text=True, timeout=60,
                          pass_fds=(write_fd,),
                          env={"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1",
                               "CNI_IFNAME": "eth0", "CNI_PATH": str(bin_dir),
                               "CNI_NETNS": "/nonexistent/sdk-netns"})
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        report = f.read()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import ast
    loaders = ast.literal_eval(report)
    assert loaders["pycni.skel"] == "_Finder", loaders
    assert loaders["pycni.decode"] == "_Finder"
    assert loaders["pycni_extra_routes.plugin"] == "SourceFileLoader"


def _cnitool(world, venv, bin_dir, netconf, cache, *args, ok=True):
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ.get("PYCNI_STATE_DIRS", "/tmp"),
           "NETCONFPATH": str(netconf), "CNI_PATH": str(bin_dir), "CNI_CACHE_DIR": str(cache)}
    proc = world.host.run(str(venv / "bin" / "cnitool"), *args, check=False, env=env)
    if ok:
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    return proc


def _routes(ns) -> set:
    return {(r["dst"], r.get("gateway")) for r in
            json.loads(ns.run("ip", "-j", "route", "show").stdout or b"[]")}


@pytest.mark.netns
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_chained_after_bridge_through_cnitool(world, venv, bin_dir, tmp_path, version):
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    (netconf / "10-xr.conflist").write_text(json.dumps({
        "cniVersion": version, "name": "xrnet",
        "plugins": [
            {"type": "bridge", "bridge": "xr0", "isGateway": True,
             "ipam": {"type": "host-local", "subnet": "10.78.0.0/24",
                      "dataDir": str(tmp_path / "ipam")}},
            {"type": "extra-routes", "routes": [{"dst": "10.99.0.0/16"},
                                                {"dst": "192.168.99.0/24", "priority": 9}]},
        ]}))
    cache = tmp_path / "cache"
    ctr = world.container()
    add = _cnitool(world, venv, bin_dir, netconf, cache, "add", "xrnet", ctr.path)
    result = json.loads(add.stdout)
    assert result["cniVersion"] == version
    assert {"dst": "10.99.0.0/16", "gw": "10.78.0.1"} in result["routes"]
    assert {("10.99.0.0/16", "10.78.0.1"), ("192.168.99.0/24", "10.78.0.1")} <= _routes(ctr)

    _cnitool(world, venv, bin_dir, netconf, cache, "check", "xrnet", ctr.path)
    ctr.run("ip", "route", "del", "192.168.99.0/24")
    check = _cnitool(world, venv, bin_dir, netconf, cache, "check", "xrnet", ctr.path, ok=False)
    assert check.returncode != 0 and b"192.168.99.0/24" in check.stdout + check.stderr

    for _ in range(2):
        _cnitool(world, venv, bin_dir, netconf, cache, "del", "xrnet", ctr.path)
    assert ctr.link("eth0") is None
    assert not list((tmp_path / "ipam" / "xrnet").glob("10.78.*"))


def _conflist(tmp_path, version: str) -> dict:
    return {"cniVersion": version, "name": "xrnet",
            "plugins": [
                {"type": "bridge", "bridge": "xr0", "isGateway": True,
                 "ipam": {"type": "host-local", "subnet": "10.78.0.0/24",
                          "dataDir": str(tmp_path / "ipam")}},
                {"type": "extra-routes", "routes": [{"dst": "10.99.0.0/16"}]},
            ]}


@pytest.mark.netns
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_chained_after_bridge_through_go_libcni(world, golibcni, bin_dir,  # noqa: F811
                                                tmp_path, version):
    """The reference runtime library drives the chain: AddNetworkList,
    CheckNetworkList, DelNetworkList (twice) with the third-party launcher."""
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps(_conflist(tmp_path, version)))
    ctr = world.container("xrgo")

    def run(*ops):
        proc = world.host.run(golibcni, "-conflist", str(path), "-netns", ctr.path,
                              "-cni-path", str(bin_dir), "-cache-dir", str(tmp_path / "cache"),
                              "-container-id", "xrgo", "-ifname", "eth0", *ops, check=False)
        reports = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
        assert [r["op"] for r in reports] == list(ops), proc.stderr.decode()
        for r in reports:
            assert r["ok"], r
        return reports

    (add,) = run("add")
    assert add["version"] == version
    assert {"dst": "10.99.0.0/16", "gw": "10.78.0.1"} in add["result"]["routes"]
    assert ("10.99.0.0/16", "10.78.0.1") in _routes(ctr)
    run("check", "del")
    assert ctr.link("eth0") is None
    run("del")


def test_the_example_own_tests(tmp_path):
    """examples/extra-routes/tests with this interpreter's pycni (its
    fixtures come through the pytest11 entry point, not tests/conftest.py)."""
    env = {**os.environ, "PYTHONPATH": EXAMPLE}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", EXAMPLE, os.path.join(EXAMPLE, "tests")],
                          cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
    if os.geteuid() == 0:       # the real-kernel tests ran, none skipped
        assert "skipped" not in proc.stdout, proc.stdout[-2000:]
