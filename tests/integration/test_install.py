"""Installing pycni as the README says, and `pycni install --dir` /
`pycni uninstall --dir` on real files (issue #15):

- the README's commands, run as written (a temporary directory instead of
  /opt, pip offline as the README's no-network variant): a venv made with
  the distribution's Python (PEP 668 refuses the system one), the
  launchers bound to that venv, a bridge + host-local network through the
  venv's cnitool, uninstall leaving nothing;
- a reference binary at a plugin's name is refused without --force, and
  uninstall leaves the reference's files beside ours alone;
- installing twice changes nothing;
- symlinks planted in the directory (by another user, before it was
  locked down) are never followed;
- a runtime exec'ing plugins while install rewrites them never sees a
  partial file.
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import threading

import pytest

import pycni
from pycni import cli
from pycni.launcher import launcher_text
from pycni.registry import PLUGINS
from pytest_netns import missing_prerequisite

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEBIAN_PYTHON = "/usr/bin/python3"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
BARE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VERSION = pycni.__version__
# Not copied into the source tree pip builds from: other checkouts' state.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", "node_modules")


def snapshot(directory) -> dict:
    """name -> (inode, mtime, mode, size, content digest) of every entry."""
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        st = os.lstat(path)
        content = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                content = cli.digest(f.read())
        out[name] = (st.st_ino, st.st_mtime_ns, st.st_mode, st.st_size, content)
    return out


def run(*argv, env=None, cwd=None, timeout=300):
    return subprocess.run([str(a) for a in argv], env=env or {"PATH": BARE_PATH}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ok(proc):
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


# ------------------------------------------------------------ the README's install

@pytest.fixture(scope="module")
def readme_install(tmp_path_factory):
    """`python3 -m venv /opt/pycni`, `/opt/pycni/bin/pip install .` (offline:
    the distribution's setuptools, no index), `/opt/pycni/bin/pycni install
    --dir /opt/cni/bin`, with PREFIX/opt for /opt."""
    if os.geteuid() != 0:
        missing_prerequisite("needs root (pycni install trusts root's files only)")
    for need, why in ((DEBIAN_PYTHON, "the distribution's python3"),
                      (os.path.join(DIST_PACKAGES, "setuptools"), "python3-setuptools"),
                      (os.path.join(DIST_PACKAGES, "wheel"), "python3-wheel")):
        if not os.path.exists(need):
            missing_prerequisite(f"needs {why} ({need})")
    if run(DEBIAN_PYTHON, "-c", "import venv, ensurepip").returncode != 0:
        missing_prerequisite("needs python3-venv")
    prefix = tmp_path_factory.mktemp("prefix")
    src = prefix / "src" / "pycni"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE, symlinks=True)
    venv, bin_dir = prefix / "opt" / "pycni", prefix / "opt" / "cni" / "bin"
    home = prefix / "home"
    home.mkdir()
    ok(run(DEBIAN_PYTHON, "-m", "venv", venv))
    pip_env = {"PATH": BARE_PATH, "HOME": str(home), "PYTHONPATH": DIST_PACKAGES,
               "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull,
               "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    ok(run(venv / "bin" / "pip", "install", "--no-build-isolation", "--no-deps", ".",
           env=pip_env, cwd=src))
    install = ok(run(venv / "bin" / "pycni", "install", "--dir", bin_dir))
    return {"prefix": prefix, "venv": venv, "bin": bin_dir, "src": src, "install": install}


def test_the_system_python_refuses_pip_install(readme_install):
    """Why the README installs into a venv: PEP 668 on Debian 12."""
    if not os.path.exists("/usr/lib/python3.11/EXTERNALLY-MANAGED"):
        missing_prerequisite("the system Python is not marked externally managed")
    proc = run(DEBIAN_PYTHON, "-m", "pip", "install", "--no-index", "--no-deps",
               readme_install["src"] / "no-such-dir")
    assert proc.returncode != 0
    assert "externally-managed-environment" in proc.stderr


def test_readme_install_writes_every_plugin_bound_to_the_venv(readme_install):
    venv, bin_dir = readme_install["venv"], readme_install["bin"]
    assert sorted(os.listdir(bin_dir)) == sorted([".pycni-bundle", ".pycni-manifest", *PLUGINS])
    site = run(venv / "bin" / "python", "-I", "-c",
               "import pycni, os; print(os.path.dirname(os.path.dirname(pycni.__file__)))")
    site_packages = ok(site).stdout.strip()
    assert site_packages.startswith(f"{venv}/lib/")
    for name in PLUGINS:
        with open(bin_dir / name) as f:
            lines = f.read().splitlines()
        # the venv's interpreter (not the system's, not whatever is on PATH)
        assert lines[0] == f"#!{venv}/bin/python3 -ISB", name
        assert lines[1] == (f"# pycni v{VERSION} {name} plugin, written by `pycni install`; "
                            "reinstall after upgrading."), name
        assert lines[3] == f"sys.path += {[site_packages]!r}", name
    out = readme_install["install"].stdout.splitlines()
    assert len(out) == len(PLUGINS) + 2 and all(line.startswith("new ") for line in out[:-1])


def test_readme_install_versions_and_metadata(readme_install):
    venv, bin_dir = readme_install["venv"], readme_install["bin"]
    assert ok(run(venv / "bin" / "pycni", "--version")).stdout == f"pycni v{VERSION}\n"
    assert ok(run(venv / "bin" / "cnitool", "--version")).stdout == f"cnitool pycni v{VERSION}\n"
    about = run(bin_dir / "bridge", env={})
    assert (about.returncode, about.stdout) == (0, "")
    assert about.stderr.startswith(f"CNI bridge plugin pycni v{VERSION}\n")
    meta = ok(run(venv / "bin" / "python", "-I", "-c", """if 1:
        import importlib.metadata as m, json
        d = m.distribution("pycni")
        print(json.dumps({"version": d.version, "license": d.metadata["License"],
                          "classifiers": d.metadata.get_all("Classifier"),
                          "urls": d.metadata.get_all("Project-URL"),
                          "files": [str(f) for f in d.files if "LICENSE" in str(f)]}))
    """)).stdout
    meta = json.loads(meta)
    assert meta["version"] == VERSION and meta["license"] == "Apache-2.0"
    assert "License :: OSI Approved :: Apache Software License" in meta["classifiers"]
    assert meta["urls"]
    assert any(f.endswith(".dist-info/LICENSE") for f in meta["files"])


def test_readme_install_runs_a_network_through_the_venvs_cnitool(world, readme_install,
                                                                   tmp_path):
    """bridge + host-local, exec'ed by the venv's cnitool from the installed
    launchers, with the runtime's environment reduced to PATH."""
    venv, bin_dir = readme_install["venv"], readme_install["bin"]
    netconf, cache, store = tmp_path / "net.d", tmp_path / "cache", tmp_path / "store"
    netconf.mkdir()
    conf = {"cniVersion": "1.0.0", "name": "readme-net", "plugins": [
        {"type": "bridge", "bridge": "brreadme", "isGateway": True,
         "ipam": {"type": "host-local", "dataDir": str(store),
                  "ranges": [[{"subnet": "10.244.7.0/24"}]]}}]}
    (netconf / "10-readme.conflist").write_text(json.dumps(conf))
    ctr = world.container()
    env = {"PATH": BARE_PATH, "NETCONFPATH": str(netconf), "CNI_PATH": str(bin_dir),
           "CNI_CACHE_DIR": str(cache), "PYCNI_STATE_DIRS": str(tmp_path)}
    add = world.host.run(str(venv / "bin" / "cnitool"), "add", "readme-net", ctr.path,
                         check=False, env=env)
    assert add.returncode == 0, add.stderr.decode()
    result = json.loads(add.stdout)
    assert result["ips"][0]["address"] == "10.244.7.2/24"
    assert "10.244.7.2/24" in ctr.addresses("eth0")
    assert ctr.pings("10.244.7.1")
    for _ in range(2):      # DEL twice
        dele = world.host.run(str(venv / "bin" / "cnitool"), "del", "readme-net", ctr.path,
                              check=False, env=env)
        assert dele.returncode == 0, dele.stderr.decode()
    assert ctr.link("eth0") is None
    assert [n for n in os.listdir(store / "readme-net") if n[0].isdigit()] == []


def test_readme_install_twice_changes_nothing(readme_install):
    venv, bin_dir = readme_install["venv"], readme_install["bin"]
    before = snapshot(bin_dir)
    again = ok(run(venv / "bin" / "pycni", "install", "--dir", bin_dir))
    assert snapshot(bin_dir) == before
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["unchanged"] * (
        len(PLUGINS) + 2)


def test_readme_uninstall_removes_everything_it_installed(readme_install, tmp_path):
    """Last of the module (pytest keeps file order): on a copy of the
    directory, so the other tests keep theirs."""
    venv, bin_dir = readme_install["venv"], readme_install["bin"]
    copy = readme_install["prefix"] / "opt" / "cni" / "bin-copy"
    shutil.copytree(bin_dir, copy, symlinks=True)
    proc = ok(run(venv / "bin" / "pycni", "uninstall", "--dir", copy))
    assert os.listdir(copy) == []
    assert len(proc.stdout.splitlines()) == len(PLUGINS) + 2
    assert proc.stderr == ""


# ------------------------------------------------------------ beside the reference

@pytest.fixture
def bin_dir(tmp_path):
    if os.geteuid() != 0:
        missing_prerequisite("needs root")
    d = tmp_path / "bin"
    d.mkdir(mode=0o755)
    return d


def pycni_cli(*args):
    return run(sys.executable, "-m", "pycni.cli", *args,
               env={"PATH": BARE_PATH, "PYTHONDONTWRITEBYTECODE": "1"})


def copy_reference(ref_dir, bin_dir, names):
    for name in names:
        shutil.copy2(os.path.join(ref_dir, name), bin_dir / name)


def test_a_reference_binary_is_refused_without_force(ref_dir, bin_dir):
    copy_reference(ref_dir, bin_dir, ["bridge", "loopback", "vlan"])
    before = snapshot(bin_dir)
    proc = pycni_cli("install", "--dir", bin_dir)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "refusing to replace what pycni did not install" in proc.stderr
    for name in ("bridge", "loopback"):
        assert f"{bin_dir}/{name} is not pycni's" in proc.stderr
    assert "vlan" not in proc.stderr
    assert snapshot(bin_dir) == before          # nothing written, not even the manifest
    # the reference bridge still works
    about = run(bin_dir / "bridge", env={})
    assert "CNI bridge plugin v" in about.stderr and "pycni" not in about.stderr

    forced = ok(pycni_cli("install", "--dir", bin_dir, "--force"))
    assert f"replaced  {bin_dir}/bridge" in forced.stdout.splitlines()
    assert "pycni" in run(bin_dir / "bridge", env={}).stderr
    with open(os.path.join(ref_dir, "vlan"), "rb") as f:
        assert (bin_dir / "vlan").read_bytes() == f.read()


def test_uninstall_leaves_the_references_files(ref_dir, bin_dir):
    """The reference's plugins pycni has none of, beside ours: install all
    of ours but the colliding ones, then uninstall: exactly the reference's
    files are left, unchanged."""
    theirs = ["vlan", "ipvlan", "dhcp", "vrf"]
    copy_reference(ref_dir, bin_dir, theirs)
    (bin_dir / "README").write_text("the admin's notes\n")
    before = snapshot(bin_dir)
    ours = [n for n in PLUGINS if n not in theirs]
    ok(pycni_cli("install", "--dir", bin_dir, *ours))
    assert sorted(os.listdir(bin_dir)) == sorted([*before, *ours, ".pycni-bundle",
                                                  ".pycni-manifest"])
    proc = ok(pycni_cli("uninstall", "--dir", bin_dir))
    assert snapshot(bin_dir) == before
    assert proc.stderr == ""
    assert sorted(line.split()[1] for line in proc.stdout.splitlines()) == sorted(
        f"{bin_dir}/{n}" for n in [*ours, ".pycni-bundle", ".pycni-manifest"])


def test_uninstall_keeps_a_launcher_the_admin_edited(bin_dir):
    ok(pycni_cli("install", "--dir", bin_dir, "loopback", "ptp"))
    with open(bin_dir / "ptp", "a") as f:
        f.write("# local change\n")
    proc = ok(pycni_cli("uninstall", "--dir", bin_dir))
    assert f"{bin_dir}/ptp changed since pycni installed it: kept" in proc.stderr
    assert sorted(os.listdir(bin_dir)) == ["ptp"]


# ------------------------------------------------------------ planted symlinks

def test_planted_symlinks_are_never_followed(bin_dir, tmp_path):
    """Symlinks another user planted while the directory was open to them
    (it was locked down since): at a launcher's name, at the bundle's and
    at the manifest's. Install refuses the first two and ignores the
    manifest; with --force it replaces the links themselves; the files
    they point at are never written, read as a manifest or removed."""
    nobody = pwd.getpwnam("nobody").pw_uid
    victims = {}
    for name in ("ptp", ".pycni-bundle", ".pycni-manifest"):
        victim = tmp_path / f"victim-{name.strip('.')}"
        victim.write_text(f"root's file behind {name}\n")
        victims[name] = victim
        os.symlink(victim, bin_dir / name)
        os.lchown(bin_dir / name, nobody, -1)
    # a manifest the link points at claims the victims as pycni's
    victims[".pycni-manifest"].write_text("".join(
        f"{cli.digest(v.read_bytes())} {n}\n" for n, v in victims.items()
        if n != ".pycni-manifest"))
    contents = {n: v.read_bytes() for n, v in victims.items()}
    before = snapshot(bin_dir)

    proc = pycni_cli("install", "--dir", bin_dir)
    assert proc.returncode == 1
    assert f"{bin_dir}/ptp is a symbolic link (install never follows one)" in proc.stderr
    assert f"{bin_dir}/.pycni-bundle is a symbolic link" in proc.stderr
    assert f"ignoring {bin_dir}/.pycni-manifest: it is a symlink" in proc.stderr
    assert snapshot(bin_dir) == before

    # uninstall does not act on a symlinked manifest either
    proc = pycni_cli("uninstall", "--dir", bin_dir)
    assert proc.returncode == 1 and "is a symlink, not a regular file" in proc.stderr
    assert snapshot(bin_dir) == before

    ok(pycni_cli("install", "--dir", bin_dir, "--force"))
    for name in victims:
        st = os.lstat(bin_dir / name)
        assert stat.S_ISREG(st.st_mode) and st.st_uid == 0, name
    assert {n: v.read_bytes() for n, v in victims.items()} == contents

    # planted again after install, at a recorded name: uninstall keeps the link
    os.unlink(bin_dir / "loopback")
    os.symlink(victims["ptp"], bin_dir / "loopback")
    proc = ok(pycni_cli("uninstall", "--dir", bin_dir))
    assert f"{bin_dir}/loopback is now a symlink: kept" in proc.stderr
    assert os.listdir(bin_dir) == ["loopback"] and os.path.islink(bin_dir / "loopback")
    assert {n: v.read_bytes() for n, v in victims.items()} == contents


# ------------------------------------------------------------ exec during install

def test_exec_during_install_never_sees_a_partial_file(bin_dir):
    """While install rewrites the launchers over and over (two spellings of
    the interpreter, so each install changes every launcher), a runtime
    keeps exec'ing them and a reader keeps reading them: every exec
    answers VERSION, every read is one whole launcher, old or new."""
    pythons = [sys.executable, os.path.realpath(sys.executable)]
    if pythons[0] == pythons[1]:
        pytest.skip("needs an interpreter reached through a symlink (a venv)")
    names = ["loopback", "host-local", "bridge"]
    texts = {n: {launcher_text(n, str(bin_dir), p).encode() for p in pythons} for n in names}
    cli.install(str(bin_dir), names, python=pythons[0])
    stop = threading.Event()
    failures, counts = [], {"exec": 0, "read": 0}

    def exec_loop():
        while not stop.is_set():
            for name in names:
                try:
                    proc = subprocess.run([str(bin_dir / name)], env={"CNI_COMMAND": "VERSION"},
                                          capture_output=True, timeout=60)
                except OSError as err:      # ETXTBSY, ENOEXEC, ENOENT: all failures
                    failures.append(f"exec {name}: {err}")
                    continue
                if proc.returncode != 0 or b'"supportedVersions"' not in proc.stdout:
                    failures.append(f"exec {name}: {proc.returncode} {proc.stdout!r} "
                                    f"{proc.stderr[-300:]!r}")
                counts["exec"] += 1

    def read_loop():
        while not stop.is_set():
            for name in names:
                try:
                    with open(bin_dir / name, "rb") as f:
                        data = f.read()
                except OSError as err:
                    failures.append(f"read {name}: {err}")
                    continue
                if data not in texts[name]:
                    failures.append(f"read {name}: {len(data)} bytes, no whole launcher")
                counts["read"] += 1

    threads = [threading.Thread(target=exec_loop), threading.Thread(target=read_loop)]
    for t in threads:
        t.start()
    rewrites = 0
    try:
        for i in range(1, 7):
            done = []
            cli.install(str(bin_dir), names, python=pythons[i % 2], report=done)
            rewrites += sum(1 for what, path in done
                            if what == "updated" and os.path.basename(path) in names)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert rewrites == 6 * len(names)
    assert failures == []
    assert counts["exec"] >= len(names) and counts["read"] >= len(names)
    leftovers = [n for n in os.listdir(bin_dir) if "pycni-tmp" in n]
    assert leftovers == []


def test_concurrent_installs_keep_one_whole_manifest(bin_dir):
    """Two installs of different plugins into one directory at once: the
    directory lock serialises them, so the manifest records both."""
    procs = [subprocess.Popen([sys.executable, "-m", "pycni.cli", "install", "--dir",
                               str(bin_dir), *names], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={"PATH": BARE_PATH})
             for names in (["loopback", "ptp"], ["bridge", "host-local"])]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    recorded = cli.parse_manifest((bin_dir / ".pycni-manifest").read_text())
    assert sorted(recorded) == [".pycni-bundle", "bridge", "host-local", "loopback", "ptp"]
