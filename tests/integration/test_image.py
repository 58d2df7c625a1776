"""pycni's OCI image (scripts/build-image.sh), built offline FROM scratch
with podman and run with podman the way a DaemonSet runs it: temporary
directories bind-mounted as /host/opt/cni/bin and /host/etc/cni/net.d,
network none, a read-only root file system, no capabilities.

The image is built once per module into a temporary podman storage (never
the machine's default storage) and saved as an OCI archive; the archive is
loaded into a second podman (tests/e2e/podman_harness.py: own storage and
configs, run inside a test world's host namespace), which is what runs the
containers and is reset and removed at the end, with whatever podman
created outside its work directory.

Needs podman and the bundle (./build.sh: dist/cni-bin); for a bundle
without its own interpreter also PyInstaller in the running interpreter's
environment. Skipped without them, a failure under CI=true.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import pytest

from netns_world import World
from pytest_netns import missing_prerequisite

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import podman_harness as ph  # noqa: E402

# PYCNI_BUNDLE: another bundle than ./build.sh's (the build script reads it too)
BUNDLE = os.environ.get("PYCNI_BUNDLE") or os.path.join(ROOT, "dist", "cni-bin")


def self_hosted() -> bool:
    """Whether the bundle's own interpreter runs the installer (as
    build-image.sh decides it)."""
    python = os.path.join(BUNDLE, ".pycni", "python")
    if not os.path.isfile(python):
        return False
    proc = subprocess.run([python, "-I", "-S", "-B", "-m", "pycni.installcni", "version"],
                          env={}, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    return proc.stdout.startswith("pycni ")


SELF_HOSTED = self_hosted()
BUNDLE_ENTRYPOINT = ["/opt/pycni/cni-bin/.pycni/python", "-I", "-S", "-B", "-m",
                     "pycni.installcni"]
BUILD = os.path.join(ROOT, "scripts", "build-image.sh")
POD_CIDR = "10.244.7.0/24"
HOST_BIN, HOST_NET = "/host/opt/cni/bin", "/host/etc/cni/net.d"

pytestmark = pytest.mark.netns


def prerequisites() -> list[str]:
    missing = [t for t in ("podman", "runc", "conmon", "nsenter", "ldd", "ldconfig")
               if not shutil.which(t)]
    if not os.path.isfile(os.path.join(BUNDLE, "loopback")):
        missing.append(f"the bundle {BUNDLE} (./build.sh)")
    if not SELF_HOSTED and not os.path.exists(os.path.join(sys.prefix, "bin", "pyinstaller")):
        missing.append(f"pyinstaller in {sys.prefix} (pip install '.[build]')")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def version() -> str:
    from pycni.installcni import pycni_version
    return pycni_version()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The image, built by the documented script, as an OCI archive."""
    missing = prerequisites()
    if missing:
        missing_prerequisite("the image test needs " + ", ".join(missing))
    out = tmp_path_factory.mktemp("image")
    path = str(out / "pycni.oci.tar")
    env = dict(os.environ, PYCNI_BUILD_VENV=sys.prefix, PYCNI_IMAGE_REINSTALL="0")
    before = set(os.listdir("/tmp"))
    proc = subprocess.run([BUILD, "--output", path], env=env, capture_output=True,
                          text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("pycni-image.")], \
        "the build's temporary podman storage was left behind"
    return path


@pytest.fixture(scope="module")
def podman(archive, tmp_path_factory):
    world = World("img")
    client = None
    try:
        workdir = str(tmp_path_factory.mktemp("podman"))
        plugins = tmp_path_factory.mktemp("no-plugins")      # network none: none run
        client = ph.Podman(world.host.path, workdir, str(plugins))
        client.world = world
        client.run("load", "-i", archive, timeout=300)
        client.image = f"localhost/pycni:v{version()}"
        yield client
    finally:
        problems = client.close() if client else []
        world.close()
        for problem in problems:
            print(f"podman cleanup: {problem}")


@pytest.fixture
def host(tmp_path):
    """The node's two directories, as the DaemonSet's hostPath volumes."""
    paths = {"bin": tmp_path / "opt-cni-bin", "net": tmp_path / "etc-cni-net.d"}
    for p in paths.values():
        p.mkdir()
        p.chmod(0o755)
    return paths


def run_image(podman, host, *args, env=None, check=True):
    argv = ["run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
            "-v", f"{host['bin']}:{HOST_BIN}", "-v", f"{host['net']}:{HOST_NET}"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return podman.run(*argv, podman.image, *args, check=check, timeout=180)


def snapshot(path) -> dict:
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            found[os.path.relpath(full, path)] = (st.st_mode, st.st_ino, st.st_mtime_ns)
    return found


def registry_names() -> list[str]:
    return sorted(n for n in os.listdir(BUNDLE) if not n.startswith("."))


# ------------------------------------------------------------------ tests

def test_the_image_is_the_bundle_the_installer_and_libraries_only(archive):
    """FROM scratch: no shell, no package manager, no Python but the
    bundle's own."""
    with tarfile.open(archive) as tar:
        def blob(digest):
            return tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1])

        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        config = json.load(blob(manifest["config"]["digest"]))
        names = set()
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as layer_tar:
                names.update(n.lstrip("./") for n in layer_tar.getnames())
    if SELF_HOSTED:
        # The bundle's own (static) interpreter runs the installer: the
        # image is the bundle and the template, nothing else.
        assert config["config"]["Entrypoint"] == BUNDLE_ENTRYPOINT
        assert {n.split("/")[0] for n in names if n} == {"opt", "tmp"}
    else:
        assert config["config"]["Entrypoint"] == ["/opt/pycni/installer/install-cni"]
        assert "opt/pycni/installer/install-cni" in names
    assert config["config"]["Cmd"] == ["install-cni"]
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == version()
    for name in registry_names():
        assert f"opt/pycni/cni-bin/{name}" in names
    assert "opt/pycni/10-pycni.conflist.template" in names
    top = {n.split("/")[0] for n in names if n}
    assert top <= {"opt", "lib", "lib64", "usr", "etc", "tmp"}, top
    for unwanted in ("bin/sh", "usr/bin/sh", "usr/bin/python3", "bin/busybox", "usr/bin/apt"):
        assert unwanted not in names


def test_install_cni_into_bind_mounted_host_directories(podman, host):
    proc = run_image(podman, host, env={"PYCNI_POD_CIDR": POD_CIDR})
    out = proc.stdout
    names = registry_names()
    for name in names:
        assert f"installed {HOST_BIN}/{name}\n" in out
        assert f"checked {name}: answers VERSION (" in out
    assert f"wrote {HOST_NET}/10-pycni.conflist" in out
    # What lies on the "node": the bundle's bytes, runnable there without
    # any Python (an empty environment), answering VERSION.
    for name in names:
        with open(os.path.join(BUNDLE, name), "rb") as a, open(host["bin"] / name, "rb") as b:
            assert a.read() == b.read(), name
        answer = subprocess.run(["env", "-i", "CNI_COMMAND=VERSION", str(host["bin"] / name)],
                                capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert answer.returncode == 0, answer.stderr
        assert "1.0.0" in json.loads(answer.stdout)["supportedVersions"]
    from pycni import installcni
    support = os.readlink(host["bin"] / ".pycni")
    assert installcni.SUPPORT_NAME.fullmatch(support)
    assert installcni.read_tree(str(host["bin"] / support)) == \
        installcni.read_tree(os.path.join(BUNDLE, ".pycni"))
    with open(host["net"] / "10-pycni.conflist") as f:
        conf = json.load(f)
    with open(os.path.join(ROOT, "deploy", "image", "10-pycni.conflist.template")) as f:
        expected = json.loads(f.read().replace("__POD_CIDR__", POD_CIDR))
    assert conf == expected
    assert oct(os.stat(host["net"] / "10-pycni.conflist").st_mode & 0o777) == "0o644"

    # The second run (a restarted init container) changes nothing.
    before = snapshot(host["bin"]), snapshot(host["net"])
    again = run_image(podman, host, env={"PYCNI_POD_CIDR": POD_CIDR}).stdout
    assert (snapshot(host["bin"]), snapshot(host["net"])) == before
    assert "installed" not in again and "wrote" not in again
    assert f"unchanged {HOST_NET}/10-pycni.conflist" in again
    for name in names:
        assert f"unchanged {HOST_BIN}/{name}\n" in again


def test_installed_plugins_serve_a_real_call(podman, host, tmp_path):
    """The installed layout (.pycni a symlink to its versioned directory)
    runs a plugin for real: loopback ADD and DEL in a container netns."""
    run_image(podman, host, "install-cni", "--no-config")
    world = podman.world
    ctr = world.container()
    config = {"cniVersion": "1.0.0", "name": "lo-test", "type": "loopback"}
    for command in ("ADD", "DEL"):
        env = world.plugin_env(command, str(host["bin"]), ctr)
        env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        run = world.exec_binary(str(host["bin"] / "loopback"), env, config)
        assert run.ok, run.stderr + run.stdout
    assert ctr.link("lo")["operstate"] in ("UNKNOWN", "DOWN")


def test_without_a_pod_cidr_it_installs_the_plugins_only_when_told_to(podman, host):
    proc = run_image(podman, host, check=False)
    assert proc.returncode == 1
    assert "needs __POD_CIDR__" in proc.stderr
    assert os.listdir(host["bin"]) == [] and os.listdir(host["net"]) == []
    proc = run_image(podman, host, env={"PYCNI_SKIP_CONFIG_WITHOUT_POD_CIDR": "true"})
    assert "no conflist written" in proc.stdout
    assert os.path.exists(host["bin"] / "bridge") and os.listdir(host["net"]) == []


def test_planted_symlinks_in_the_host_directories_are_not_followed(podman, host, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(str(victim), host["net"] / "10-pycni.conflist")
    os.symlink(str(victim), host["bin"] / "bridge")
    os.symlink("/", host["bin"] / ".pycni")
    # A foreign executable (a symlink counts) stops the run, nothing changed.
    proc = run_image(podman, host, env={"PYCNI_POD_CIDR": POD_CIDR}, check=False)
    assert proc.returncode == 1 and "not pycni's" in proc.stderr
    assert sorted(os.listdir(host["bin"])) == [".pycni", "bridge"]
    run_image(podman, host, env={"PYCNI_POD_CIDR": POD_CIDR, "PYCNI_FORCE": "true"})
    assert victim.read_text() == "precious\n"
    assert not os.path.islink(host["bin"] / "bridge")
    assert not os.path.islink(host["net"] / "10-pycni.conflist")
    assert os.readlink(host["bin"] / ".pycni") != "/"


def test_skip_existing_config_leaves_the_operators_file(podman, host):
    conf = host["net"] / "10-pycni.conflist"
    conf.write_text('{"edited": true}\n')
    run_image(podman, host, "install-cni", "--skip-existing-config",
              env={"PYCNI_POD_CIDR": POD_CIDR})
    assert conf.read_text() == '{"edited": true}\n'


def test_pause_runs_unprivileged_and_stops_at_once_on_sigterm(podman):
    name = f"pycni-pause-{os.getpid()}"
    podman.run("run", "-d", "--name", name, "--network", "none", "--read-only",
               "--cap-drop", "ALL", "--user", "65534:65534", podman.image, "pause")
    try:
        time.sleep(1)
        state = podman.json("inspect", name)[0]["State"]
        assert state["Running"], state
        start = time.monotonic()
        podman.run("stop", "--time", "20", name, timeout=60)
        assert time.monotonic() - start < 10, "pause ignored SIGTERM (stopped by SIGKILL)"
        assert podman.json("inspect", name)[0]["State"]["ExitCode"] == 0
    finally:
        podman.run("rm", "--force", name, check=False)


def test_version_command(podman):
    proc = podman.run("run", "--rm", "--network", "none", podman.image, "version")
    assert proc.stdout.strip() == f"pycni {version()}"
