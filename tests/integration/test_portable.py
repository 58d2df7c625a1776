"""The portable bundle and release tarball (./build.sh, issue #15).

The plugins must run on any x86_64 Linux whatever its libc: every ELF file
in dist/cni-bin is checked for a program interpreter, NEEDED libraries and
versioned libc symbols (with scripts/portable/elfcheck.py and, as an
independent oracle, binutils), and the release tarball is unpacked into
two roots where the plugins then run under chroot, exec'ed inside a test
world's host namespace as a runtime on that node would:

  * "empty": nothing but the unpacked tarball in /opt/cni/bin (and /proc,
    /sys mounted for the plugin, the container's netns file bound in):
    no libc, no loader, no shell, no Python at all;
  * "bullseye": the oldest Debian suite the package archive serves
    (glibc 2.31, older than the build machine's), made with
    `debootstrap --variant=minbase`, once per test session.

In each: VERSION and the about text of every plugin, host-local ADD/DEL
(its store in the root's /var/lib/cni), and bridge + host-local ADD, CHECK,
DEL, DEL again. Mounts are made in a private mount namespace of the plugin
process only (`ip netns exec` + `unshare --mount`): nothing is left mounted,
and the roots are removed at the end.

Skipped when the bundle is not built (run ./build.sh); under CI=true a
missing bundle, debootstrap or package archive is a failure.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import pytest

from pytest_netns import missing_prerequisite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIST = os.path.join(ROOT, "dist")
BUNDLE = os.path.join(DIST, "cni-bin")
CONTENTS_DIR = ".pycni"
OLD_SUITE = os.environ.get("PYCNI_OLD_SUITE", "bullseye")
MIRROR = os.environ.get("PYCNI_DEBIAN_MIRROR", "http://deb.debian.org/debian")

sys.path.insert(0, os.path.join(ROOT, "scripts", "portable"))
import elfcheck  # noqa: E402


def registry_names() -> list[str]:
    from pycni.registry import PLUGINS
    return sorted(PLUGINS)


def tree_version() -> str:
    """The version build.sh names the tarball with (lib/__init__.py's
    __version__, else pyproject.toml's)."""
    for path, pattern in (("lib/__init__.py", r'^__version__ = "([^"]+)"'),
                          ("pyproject.toml", r'^version = "([^"]+)"')):
        with open(os.path.join(ROOT, path)) as f:
            m = re.search(pattern, f.read(), re.M)
        if m:
            return m.group(1)
    return "0.1.0"


@pytest.fixture(scope="module")
def bundle():
    if not os.path.isfile(os.path.join(BUNDLE, CONTENTS_DIR, "python")):
        missing_prerequisite(f"{BUNDLE} is not the portable build (run ./build.sh)")
    return BUNDLE


@pytest.fixture(scope="module")
def tarball(bundle):
    path = os.path.join(DIST, f"cni-plugins-pycni-linux-amd64-v{tree_version()}.tgz")
    if not os.path.isfile(path):
        missing_prerequisite(f"{path} not built (run ./build.sh)")
    return path


# -- what the files need ----------------------------------------------------

def test_every_elf_file_is_static(bundle):
    infos = list(elfcheck.elf_files(bundle))
    assert sorted(os.path.relpath(i.path, bundle) for i in infos) == \
        sorted(registry_names() + [f"{CONTENTS_DIR}/python"])
    for info in infos:
        assert elfcheck.problems(info, static=True, max_glibc="2.17") == [], info.path
        assert (info.interp, info.dynamic, info.needed, info.versions) == (None, False, [], {})


def test_binutils_agree_nothing_is_dynamic(bundle):
    """objdump -T (the dynamic symbol table: GLIBC_2.x versions) and readelf
    (program headers, dynamic section) on every file that is an ELF."""
    for name in [*registry_names(), f"{CONTENTS_DIR}/python"]:
        path = os.path.join(bundle, name)
        symbols = subprocess.run(["objdump", "-T", path], capture_output=True, text=True)
        assert "not a dynamic object" in symbols.stderr, (name, symbols.stdout, symbols.stderr)
        assert "GLIBC" not in symbols.stdout + symbols.stderr
        headers = subprocess.run(["readelf", "-lW", "-d", path], capture_output=True,
                                 text=True, check=True).stdout
        assert "INTERP" not in headers and "There is no dynamic section" in headers, name


def test_elfcheck_sees_what_a_dynamic_executable_needs():
    """The checker itself, on a glibc program of this machine: the same
    interpreter, libraries and newest GLIBC_ version binutils report."""
    path = os.path.realpath(shutil.which("ip"))
    info = elfcheck.read_elf(path)
    headers = subprocess.run(["readelf", "-lW", "-d", path], capture_output=True,
                             text=True, check=True).stdout
    assert info.interp and f"[Requesting program interpreter: {info.interp}]" in headers
    assert info.needed == re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", headers)
    dump = subprocess.run(["objdump", "-T", path], capture_output=True, text=True, check=True).stdout
    seen = set(re.findall(r"\b(GLIBC_2\.[0-9.]+)\b", dump))
    assert seen and seen <= info.glibc_versions
    newest = max(info.glibc_versions, key=elfcheck._version_key)
    assert elfcheck.problems(info, static=True)
    limit = newest.split("_", 1)[1]
    assert elfcheck.problems(info, max_glibc=limit) == []
    older = "2.%d" % (elfcheck._version_key(newest)[1] - 1)
    assert elfcheck.problems(info, max_glibc=older) == [f"needs {newest}"]


def test_build_output_has_no_writable_or_foreign_files(bundle):
    for dirpath, dirnames, filenames in os.walk(bundle):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            assert not st.st_mode & 0o022, os.path.join(dirpath, name)
            assert not os.path.islink(os.path.join(dirpath, name))
    lib = os.path.join(bundle, CONTENTS_DIR, "lib")
    pys = [f for _d, _s, files in os.walk(lib) for f in files if f.endswith(".py")]
    assert pys == [], "sources are compiled: .pyc files only"
    # sys.path is fixed to the bundle's standard library (no search of the
    # parent directories for a python3X.zip or lib/python3.X)
    assert [d for d in os.listdir(lib)] == [stdlib := os.listdir(lib)[0]]
    with open(os.path.join(bundle, CONTENTS_DIR, "python._pth")) as f:
        assert f.read() == f"lib/{stdlib}\n"


def test_launcher_runs_its_own_plugin_whatever_its_name(bundle, tmp_path):
    """The plugin's name is compiled into its launcher: a renamed copy (or
    a symlink elsewhere) still runs that plugin from its bundle."""
    copy = tmp_path / "bin"
    shutil.copytree(bundle, copy, symlinks=True)
    os.rename(copy / "loopback", copy / "renamed")
    os.symlink(copy / "bridge", tmp_path / "link-to-bridge")
    for path, name in ((copy / "renamed", "loopback"), (tmp_path / "link-to-bridge", "bridge")):
        about = subprocess.run([str(path)], env={}, capture_output=True, text=True, timeout=60)
        assert f"CNI {name} plugin pycni" in about.stdout + about.stderr, (path, about)


def test_launcher_without_its_bundle_fails_as_a_plugin(bundle, tmp_path):
    """A launcher copied away from .pycni/ answers with a CNI error object
    on stdout and exit code 1, and says what is missing on stderr."""
    lone = tmp_path / "host-local"
    shutil.copy(os.path.join(bundle, "host-local"), lone)
    proc = subprocess.run([str(lone)], env={"CNI_COMMAND": "VERSION"}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert error["code"] == 999 and error["cniVersion"] == "1.0.0"
    assert error["msg"] == f"pycni host-local: cannot run {tmp_path}/.pycni/python: No such file or directory"
    assert error["msg"] in proc.stderr


# -- the release tarball ----------------------------------------------------

def test_release_tarball_checksums_in_sha256sum_format(tarball):
    base = os.path.basename(tarball)
    for tool, algo in (("sha256sum", "sha256"), ("sha512sum", "sha512")):
        with open(f"{tarball}.{algo}") as f:
            text = f.read()
        with open(tarball, "rb") as f:
            digest = hashlib.new(algo, f.read()).hexdigest()
        assert text == f"{digest}  {base}\n"
        check = subprocess.run([tool, "-c", f"{base}.{algo}"], cwd=DIST, capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.strip() == f"{base}: OK", check.stdout + check.stderr


def test_release_tarball_is_flat_like_the_reference(tarball, bundle):
    """./<plugin> at the top level (tar cfzp . from the bin directory, as
    the reference's release workflow), .pycni/ beside them, README.md and
    LICENSE; root-owned; byte for byte the files of dist/cni-bin."""
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
        top = sorted({m.name.split("/")[1] for m in members if m.name != "."})
        docs = ["README.md"] + (["LICENSE"] if os.path.isfile(os.path.join(ROOT, "LICENSE")) else [])
        assert top == sorted(registry_names() + [CONTENTS_DIR] + docs)
        assert all(m.name == "." or m.name.startswith("./") for m in members)
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert all(m.isfile() or m.isdir() for m in members)
        assert not [m.name for m in members if m.mode & 0o022]
        for name in registry_names():
            m = tar.getmember(f"./{name}")
            assert m.mode & 0o111 == 0o111
        files = {m.name[2:]: m for m in members if m.isfile()}
        on_disk = {os.path.relpath(os.path.join(d, f), bundle)
                   for d, _s, fs in os.walk(bundle) for f in fs}
        assert set(files) - set(docs) == on_disk
        for rel in on_disk:
            with open(os.path.join(bundle, rel), "rb") as f:
                assert tar.extractfile(files[rel]).read() == f.read(), rel


# -- running it on other roots ------------------------------------------------

def _unpack(tarball: str, root: str) -> None:
    target = os.path.join(root, "opt", "cni", "bin")
    os.makedirs(target, exist_ok=True)
    subprocess.run(["tar", "-C", target, "-xzf", tarball], check=True)
    for d in ("proc", "sys", "run/netns", "var/lib/cni", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)


def _mounted_below(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path.rstrip("/") + "/")]


def _remove_root(path: str) -> None:
    left = _mounted_below(path)
    assert not left, f"mounts left below {path}: {left}"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def old_root(tmp_path_factory):
    """A minbase debootstrap of OLD_SUITE, made once per session."""
    if os.geteuid() != 0:
        missing_prerequisite("debootstrap needs root")
    if not shutil.which("debootstrap"):
        missing_prerequisite("needs debootstrap (scripts/install-deps.sh)")
    path = str(tmp_path_factory.mktemp(f"root-{OLD_SUITE}"))
    try:
        proc = subprocess.run(["debootstrap", "--variant=minbase", OLD_SUITE, path, MIRROR],
                              capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            missing_prerequisite(f"debootstrap {OLD_SUITE} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        yield path
    finally:
        _remove_root(path)


def _glibc_of(root: str | None) -> tuple[int, int]:
    argv = ["chroot", root, "ldd", "--version"] if root else ["ldd", "--version"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    major, minor = re.search(r"(\d+)\.(\d+)\s*$", out.splitlines()[0]).groups()
    return int(major), int(minor)


@pytest.fixture(params=["empty", OLD_SUITE])
def node_root(request, tarball, tmp_path_factory):
    """A root to run the unpacked release in, as /opt/cni/bin."""
    if request.param == "empty":
        path = str(tmp_path_factory.mktemp("root-empty"))
        _unpack(tarball, path)
        assert sorted(os.listdir(path)) == ["opt", "proc", "run", "sys", "tmp", "var"]
        try:
            yield path
        finally:
            _remove_root(path)
        return
    path = request.getfixturevalue("old_root")
    assert _glibc_of(path) < _glibc_of(None), "the old root must have an older glibc than the build host"
    shutil.rmtree(os.path.join(path, "opt", "cni"), ignore_errors=True)
    shutil.rmtree(os.path.join(path, "var", "lib", "cni"), ignore_errors=True)
    _unpack(tarball, path)
    try:
        yield path
    finally:
        shutil.rmtree(os.path.join(path, "opt", "cni"), ignore_errors=True)
        shutil.rmtree(os.path.join(path, "var", "lib", "cni"), ignore_errors=True)


class Run:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode(errors="replace")
        self.stderr = proc.stderr.decode(errors="replace")
        try:
            self.json = json.loads(self.stdout) if self.stdout.strip() else None
        except ValueError:
            self.json = None

    @property
    def ok(self):
        return self.returncode == 0


def in_root(root: str, plugin: str, env: dict, stdin=b"", world=None, netns=()) -> Run:
    """Exec /opt/cni/bin/<plugin> chrooted into `root`, inside the world's
    host namespace when a world is given, with /proc and /sys mounted and
    the netns files `netns` bound at their paths, in a mount namespace of
    its own (gone with the process)."""
    if isinstance(stdin, dict):
        stdin = json.dumps(stdin).encode()
    q = shlex.quote
    steps = [f"mount -t proc proc {q(root + '/proc')}", f"mount -t sysfs sysfs {q(root + '/sys')}"]
    for path in netns:
        inside = root + path
        steps += [f"mkdir -p {q(os.path.dirname(inside))}", f": > {q(inside)}",
                  f"mount --bind {q(path)} {q(inside)}"]
    steps.append(f"exec chroot {q(root)} /opt/cni/bin/{q(plugin)}")
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(steps)]
    if world is not None:
        argv = ["ip", "netns", "exec", world.host.name] + argv
    # chroot(8) and sh are the build machine's; the environment the plugin
    # gets is exactly `env` (exec passes it on).
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=120)
    return Run(proc)


def cni_env(command: str, ctr=None, ifname="eth0", **extra) -> dict:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
            "CNI_CONTAINERID": "portable1", "CNI_NETNS": ctr.path if ctr else "",
            "CNI_IFNAME": ifname, "CNI_PATH": "/opt/cni/bin", **extra}


def test_every_plugin_runs_in_the_root(node_root):
    for name in registry_names():
        version = in_root(node_root, name, {"CNI_COMMAND": "VERSION"})
        assert version.ok, (name, version.stdout, version.stderr)
        assert "1.0.0" in version.json["supportedVersions"], name
        assert version.stderr == "", (name, version.stderr)
        about = in_root(node_root, name, {})
        assert f"CNI {name} plugin pycni" in about.stdout + about.stderr, (name, about.stdout, about.stderr)


def test_host_local_add_del_in_the_root(node_root, world):
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": "portable-hl", "type": "host-local",
            "ipam": {"type": "host-local", "subnet": "10.250.7.0/24"}}
    store = os.path.join(node_root, "var/lib/cni/networks/portable-hl")
    add = in_root(node_root, "host-local", cni_env("ADD", ctr), conf, world, [ctr.path])
    assert add.ok, add.stdout + add.stderr
    assert [ip["address"] for ip in add.json["ips"]] == ["10.250.7.2/24"]
    with open(os.path.join(store, "10.250.7.2")) as f:
        assert f.read().split()[0] == "portable1"
    for _ in range(2):
        delete = in_root(node_root, "host-local", cni_env("DEL", ctr), conf, world, [ctr.path])
        assert delete.ok and delete.stdout.strip() == "", delete.stdout + delete.stderr
    assert not os.path.exists(os.path.join(store, "10.250.7.2"))


def test_bridge_add_check_del_in_the_root(node_root, world):
    """bridge delegating to the bundle's host-local (served in-process: same
    bundle), the container's eth0 addressed, CHECK, DEL twice."""
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": "portable-br", "type": "bridge", "bridge": "pbr0",
            "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.250.8.0/24"}}
    add = in_root(node_root, "bridge", cni_env("ADD", ctr), conf, world, [ctr.path])
    assert add.ok, add.stdout + add.stderr
    assert [ip["address"] for ip in add.json["ips"]] == ["10.250.8.2/24"]
    assert "10.250.8.2/24" in ctr.addresses("eth0")
    assert "10.250.8.1/24" in world.host.addresses("pbr0")
    assert ctr.pings("10.250.8.1")
    check = in_root(node_root, "bridge", cni_env("CHECK", ctr), {**conf, "prevResult": add.json},
                    world, [ctr.path])
    assert check.ok and check.stdout.strip() == "", check.stdout + check.stderr
    for _ in range(2):
        delete = in_root(node_root, "bridge", cni_env("DEL", ctr), conf, world, [ctr.path])
        assert delete.ok and delete.stdout.strip() == "", delete.stdout + delete.stderr
    assert ctr.link("eth0") is None
    assert not os.path.exists(os.path.join(node_root, "var/lib/cni/networks/portable-br/10.250.8.2"))
