"""Our results through the reference Go library (libcni), as runtimes use it.

tests/golibcni/main.go is a small libcni client, built here with the Debian
package golang-github-appc-cni-dev (libcni 1.1.2 under /usr/share/gocode,
GOPATH mode, offline). It runs AddNetworkList / CheckNetworkList /
DelNetworkList inside the test host namespace and prints what libcni made
of each plugin answer. Without `go` these tests are skipped (failed under
CI=true).
"""

import json
import os
import shutil
import subprocess

import pytest

from pytest_netns import missing_prerequisite

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_SOURCE = os.path.join(os.path.dirname(HERE), "golibcni", "main.go")
GOPATH = "/usr/share/gocode"
LIBCNI_SOURCE = os.path.join(GOPATH, "src/github.com/containernetworking/cni/libcni")

# Every result version libcni 1.1.2 knows. It predates spec 1.1.0: a 1.1.0
# result is "unsupported CNI result version" to it (see the last test).
LIBCNI_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
LEGACY = ("0.1.0", "0.2.0")
WITH_CHECK = ("0.4.0", "1.0.0")


@pytest.fixture(scope="session")
def golibcni(tmp_path_factory) -> str:
    """The client binary, built offline against the packaged libcni."""
    go = shutil.which("go")
    if not go:
        missing_prerequisite("needs the Go toolchain (apt-get install golang-go)")
    if not os.path.isdir(LIBCNI_SOURCE):
        missing_prerequisite("needs libcni sources (apt-get install golang-github-appc-cni-dev)")
    work = tmp_path_factory.mktemp("golibcni")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
        "HOME": str(work),
        "GOPATH": GOPATH,               # read only: the build writes to GOCACHE
        "GO111MODULE": "off",           # GOPATH mode: no module download
        "GOFLAGS": "",                  # -mod=... is refused in GOPATH mode
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOCACHE": str(work / "cache"),
        "GOBIN": str(work / "bin"),
        "CGO_ENABLED": "0",             # no C compiler needed
    }
    binary = str(work / "golibcni")
    proc = subprocess.run([go, "build", "-o", binary, CLIENT_SOURCE], env=env, cwd=work,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, f"go build failed:\n{proc.stderr.decode(errors='replace')}"
    return binary


@pytest.fixture(params=["ours", "reference"])
def impl(request) -> tuple[str, str]:
    """(label, CNI_PATH) of the loopback under test."""
    fixture = "plugin_dir" if request.param == "ours" else "ref_dir"
    return request.param, request.getfixturevalue(fixture)


class Client:
    """Runs golibcni for one conflist against one container."""

    def __init__(self, world, binary, workdir, cni_path, container, version, plugins=None):
        self.world = world
        self.binary = binary
        self.cni_path = cni_path
        self.netns = getattr(container, "path", container)
        self.conflist = workdir / "net.conflist"
        self.cache = workdir / "cache"
        self.conflist.write_text(json.dumps({
            "cniVersion": version, "name": "libcni-test",
            "plugins": plugins or [{"type": "loopback"}]}))

    def run(self, *ops: str) -> list[dict]:
        proc = self.world.host.run(
            self.binary, "-conflist", str(self.conflist), "-netns", self.netns,
            "-cni-path", self.cni_path, "-cache-dir", str(self.cache),
            "-container-id", "libcni-ctr", "-ifname", "lo", *ops, check=False)
        stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
        reports = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        assert [r["op"] for r in reports] == list(ops), f"{stdout}\n{stderr}"
        return reports

    def ok(self, op: str) -> dict:
        (report,) = self.run(op)
        assert report["ok"], report
        return report


@pytest.fixture
def client(world, golibcni, tmp_path):
    def make(cni_path, container, version, plugins=None):
        return Client(world, golibcni, tmp_path, cni_path, container, version, plugins)
    return make


def lo_is_up(ns) -> bool:
    return "UP" in ns.link("lo")["flags"]


def expected_current(version: str, ctr) -> dict:
    """What libcni turns the loopback result into (its current, 1.0.0)."""
    addresses = ctr.addresses("lo")
    firsts = [next((a for a in addresses if (":" in a) == v6), None) for v6 in (False, True)]
    if version in LEGACY:
        # 0.1.0/0.2.0 results have no interfaces, so no ips[].interface either.
        return {"interfaces": None, "ips": [{"address": a} for a in firsts if a]}
    return {"interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ctr.path}],
            "ips": [{"interface": 0, "address": a} for a in firsts if a]}


def shape(result: dict) -> dict:
    return {"interfaces": result.get("interfaces"), "ips": result.get("ips")}


@pytest.mark.parametrize("version", LIBCNI_VERSIONS)
def test_libcni_accepts_the_result_and_the_teardown(world, client, impl, version):
    label, cni_path = impl
    ctr = world.container()
    cni = client(cni_path, ctr, version)

    add = cni.ok("add")
    assert add["version"] == version
    assert add["result"]["cniVersion"] == "1.0.0"
    assert lo_is_up(ctr)
    if label == "reference" and version in LEGACY:
        # The reference prints its 0.1.0/0.2.0 result in the 1.0.0 shape;
        # libcni reads it as a legacy result and finds no IPs in it.
        assert "ips" not in add["result"]
    else:
        assert shape(add["result"]) == expected_current(version, ctr)

    if version in WITH_CHECK:
        cni.ok("check")
    cni.ok("del")
    assert not lo_is_up(ctr)
    cni.ok("del")  # a second teardown: libcni's cache entry is already gone


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
def test_libcni_chain_hands_the_result_on(world, client, impl, version):
    """Two loopbacks in one list: libcni feeds the first result to the second
    as prevResult, which must come back unchanged."""
    _, cni_path = impl
    ctr = world.container()
    cni = client(cni_path, ctr, version, plugins=[{"type": "loopback"}, {"type": "loopback"}])
    add = cni.ok("add")
    assert shape(add["result"]) == expected_current(version, ctr)
    if version in WITH_CHECK:
        cni.ok("check")
    cni.ok("del")
    assert not lo_is_up(ctr)


@pytest.mark.parametrize("version", WITH_CHECK)
def test_libcni_reads_check_errors(world, client, impl, version):
    _, cni_path = impl
    ctr = world.container()
    cni = client(cni_path, ctr, version)
    cni.ok("add")
    ctr.run("ip", "link", "set", "lo", "down")
    (check,) = cni.run("check")
    assert not check["ok"]
    assert check["code"] == 999
    assert "loopback interface is down" in check["error"]


def test_libcni_version_probe_and_validation(world, client, impl):
    _, cni_path = impl
    cni = client(cni_path, world.container(), "1.0.0")
    validate, version = cni.run("validate", "version")
    assert validate["ok"], validate
    assert version["ok"], version
    assert set(LIBCNI_VERSIONS) <= set(version["supportedVersions"])


def test_libcni_reports_plugin_errors_with_their_code(world, client, plugin_dir, tmp_path):
    cni = client(plugin_dir, str(tmp_path / "gone"), "1.0.0")
    (add,) = cni.run("add")
    assert not add["ok"]
    assert add["code"] == 3, add


def test_libcni_1_1_2_predates_spec_1_1_0(world, client, plugin_dir):
    """libcni 1.1.2 knows result versions up to 1.0.0: our 1.1.0 result is
    valid but beyond it. Teardown still works, and a newer library may
    accept the result: then it has to be the right one."""
    ctr = world.container()
    cni = client(plugin_dir, ctr, "1.1.0")
    (add,) = cni.run("add")
    assert lo_is_up(ctr)  # the plugin did its work
    if add["ok"]:
        assert shape(add["result"]) == expected_current("1.1.0", ctr)
    else:
        assert 'unsupported CNI result version "1.1.0"' in add["error"], add
    cni.ok("del")
    assert not lo_is_up(ctr)
