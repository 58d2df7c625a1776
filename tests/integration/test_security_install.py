"""`pycni install` and its launchers against a hostile environment (issue
#11, finding 7): launchers import only from the installation itself, install
refuses an installation a local user could change, and what an accepted
install runs cannot be edited by an unprivileged user (`nobody`, acting
inside the test world's host namespace).

Installations under test are copies of the installed pycni package in a
fresh root-owned 0755 directory under /tmp (so that `nobody` can reach
them), removed after each test.
"""

import ast
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

import pycni
from pycni.registry import PLUGINS

PACKAGE = os.path.dirname(os.path.abspath(pycni.__file__))
BUILD_SH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build.sh")
PACKAGE_PARENT = os.path.dirname(PACKAGE)
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
LOOPBACK = {"cniVersion": "1.0.0", "name": "lo-net", "type": "loopback"}

PLANT = """import os
open({marker!r}, "a").write(__name__ + " imported from " + __file__ + "\\n")
raise SystemExit("planted " + __name__ + " ran")
"""


@pytest.fixture
def root_dir():
    """A root-owned 0755 directory under /tmp that `nobody` can traverse."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    path = tempfile.mkdtemp(prefix="pycni-install-test-")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def copy_installation(root: str, pycache: bool = True) -> str:
    """A copy of the installed pycni package in ROOT/site; returns site."""
    site = os.path.join(root, "site")
    os.mkdir(site, 0o755)
    ignore = None if pycache else shutil.ignore_patterns("__pycache__")
    shutil.copytree(PACKAGE, os.path.join(site, "pycni"), ignore=ignore)
    return site


def run_install(directory: str, python: str = sys.executable, pythonpath: str = "",
                umask: int = 0o022, extra_env: dict | None = None, args=()):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(extra_env or {})
    return subprocess.run([python, "-m", "pycni.cli", "install", "--dir", directory, *args],
                          env=env, capture_output=True, text=True, umask=umask, timeout=60)


def as_nobody(world, script: str, *args):
    """Run `sh -c script` as nobody inside the world's host namespace."""
    return world.host.run(*NOBODY, "sh", "-c", script, "sh", *args, check=False)


def launcher_sys_path(python: str, launcher: str) -> list[str]:
    """The launcher's sys.path, as the launcher builds it."""
    with open(launcher) as f:
        line = next(l for l in f if l.startswith("sys.path"))
    code = f"import sys\n{line}print(repr(sys.path))"
    out = subprocess.run([python, "-ISB", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return ast.literal_eval(out)


def loopback_round_trip(world, launcher: str, env_extra: dict | None = None):
    """VERSION, ADD (lo comes up in the container) and DEL via the launcher."""
    ctr = world.container()
    bin_dir = os.path.dirname(launcher)
    run = world.exec_binary(launcher, world.plugin_env("VERSION", bin_dir, extra=env_extra),
                            b"")
    assert run.ok, run.stderr
    assert "1.0.0" in run.json["supportedVersions"]
    run = world.exec_binary(launcher, world.plugin_env("ADD", bin_dir, ctr, ifname="lo",
                                                       extra=env_extra), LOOPBACK)
    assert run.ok, (run.stdout, run.stderr)
    assert "UP" in ctr.link("lo")["flags"]
    run = world.exec_binary(launcher, world.plugin_env("DEL", bin_dir, ctr, ifname="lo",
                                                       extra=env_extra), LOOPBACK)
    assert run.ok, (run.stdout, run.stderr)


# ---------------------------------------------------- what launchers import

def test_pythonpath_and_user_site_packages_never_reach_the_launcher(world, root_dir):
    """A PYTHONPATH entry ending in site-packages and the installing user's
    ~/.local site-packages, each with a planted pycni/, json/ or enum/:
    nothing of them is baked into the launchers, which still work."""
    base = getattr(sys, "_base_executable", sys.executable)
    marker = os.path.join(root_dir, "planted-code-ran")
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    evil_pythonpath = os.path.join(root_dir, "pythonpath", "site-packages")
    home = os.path.join(root_dir, "home")
    user_site = os.path.join(home, ".local", "lib", version, "site-packages")
    # PYTHONPATH comes before the standard library for the installer too, so
    # only what the installer itself does not import (json) is planted there.
    for site, names in ((evil_pythonpath, ["json", "pycni"]),
                        (user_site, ["enum", "json", "pycni"])):
        for name in names:
            os.makedirs(os.path.join(site, name))
            with open(os.path.join(site, name, "__init__.py"), "w") as f:
                f.write(PLANT.format(marker=marker))
    # The set-up is what it claims: this interpreter does put that user
    # site-packages directory on its path.
    probe = subprocess.run([base, "-c", "import site, sys; print(site.ENABLE_USER_SITE, "
                            "site.getusersitepackages() in sys.path)"],
                           env={"HOME": home}, capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["True", "True"]

    bin_dir = os.path.join(root_dir, "bin")
    proc = run_install(bin_dir, python=base,
                       pythonpath=os.pathsep.join([PACKAGE_PARENT, evil_pythonpath]),
                       extra_env={"HOME": home})
    assert proc.returncode == 0, proc.stderr
    launcher = os.path.join(bin_dir, "loopback")
    with open(launcher) as f:
        text = f.read()
    # the only path of the installer's making in it is the bundle beside the
    # launcher (pycni.bundle), in the directory the runtime execs it from
    bundle_path = os.path.join(bin_dir, ".pycni-bundle")
    assert root_dir not in text.replace(bundle_path, "") and ".local" not in text
    path = launcher_sys_path(base, launcher)
    assert path[-1] == PACKAGE_PARENT and not any(p.startswith(root_dir) for p in path)
    assert "" not in path and "." not in path and os.getcwd() not in path

    loopback_round_trip(world, launcher, {"PYTHONPATH": evil_pythonpath, "HOME": home})
    assert not os.path.exists(marker), open(marker).read()


def test_stdlib_comes_before_the_installation(root_dir):
    """A stray top-level enum/ beside pycni cannot shadow the standard library."""
    site = copy_installation(root_dir)
    bin_dir = os.path.join(root_dir, "bin")
    proc = run_install(bin_dir, pythonpath=site)
    assert proc.returncode == 0, proc.stderr
    marker = os.path.join(root_dir, "planted-code-ran")
    os.mkdir(os.path.join(site, "enum"), 0o755)
    with open(os.path.join(site, "enum", "__init__.py"), "w") as f:
        f.write(PLANT.format(marker=marker))
    out = subprocess.run([os.path.join(bin_dir, "loopback")], env={"CNI_COMMAND": "VERSION"},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "supportedVersions" in json.loads(out.stdout)
    assert not os.path.exists(marker)


def test_our_launchers_are_still_recognised_for_in_process_delegation(root_dir):
    bin_dir = os.path.join(root_dir, "bin")
    proc = run_install(bin_dir)
    assert proc.returncode == 0, proc.stderr
    launcher = os.path.join(bin_dir, "host-local")
    with open(launcher) as f:
        line = next(l for l in f if l.startswith("sys.path"))
    code = (f"import sys\n{line}from pycni import invoke\n"
            f"print(invoke.in_process_module({launcher!r}, 'host-local', {{}}))")
    out = subprocess.run([sys.executable, "-ISB", "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "pycni.ipam.host_local.plugin"


# ---------------------------------------------------- what install refuses

@pytest.mark.parametrize("how", ["site-o+w", "package-o+w", "file-owned-by-nobody",
                                 "dir-parent-o+w", "dir-owned-by-nobody"])
def test_install_refuses_what_nobody_could_change(world, root_dir, how):
    site = copy_installation(root_dir)
    parent = os.path.join(root_dir, "opt")
    os.mkdir(parent, 0o755)
    bin_dir = os.path.join(parent, "bin")
    nobody = pwd.getpwnam("nobody").pw_uid
    if how == "site-o+w":
        target = site
        os.chmod(site, 0o757)
    elif how == "package-o+w":
        target = os.path.join(site, "pycni", "plugins", "loopback")
        os.chmod(target, 0o777)
    elif how == "file-owned-by-nobody":
        target = os.path.join(site, "pycni", "skel.py")
        os.chown(target, nobody, -1)
    elif how == "dir-parent-o+w":
        target = parent
        os.chmod(parent, 0o777)
    else:
        os.mkdir(bin_dir, 0o755)
        os.chown(bin_dir, nobody, -1)
        target = bin_dir
    # The refusal is real: nobody can indeed change it.
    if os.path.isdir(target):
        proc = as_nobody(world, 'echo planted > "$1/planted.py" && rm "$1/planted.py"', target)
    else:
        proc = as_nobody(world, 'echo "# planted" >> "$1"', target)
    assert proc.returncode == 0, proc.stderr

    before = sorted(os.listdir(root_dir)), sorted(os.listdir(parent))
    proc = run_install(bin_dir, pythonpath=site)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "refusing to install" in proc.stderr and target in proc.stderr
    assert (sorted(os.listdir(root_dir)), sorted(os.listdir(parent))) == before
    if os.path.isdir(bin_dir):
        assert os.listdir(bin_dir) == []


def test_install_refuses_an_interpreter_symlink_nobody_owns(root_dir):
    link = os.path.join(root_dir, "python3")
    os.symlink(sys.executable, link)
    os.lchown(link, pwd.getpwnam("nobody").pw_uid, -1)
    proc = run_install(os.path.join(root_dir, "bin"), args=["--python", link])
    assert proc.returncode == 1 and f"{link} is owned by uid" in proc.stderr
    assert not os.path.exists(os.path.join(root_dir, "bin"))


# ---------------------------------------------------- an accepted install

def test_nobody_cannot_edit_what_an_accepted_install_runs(world, root_dir):
    site = copy_installation(root_dir)
    bin_dir = os.path.join(root_dir, "bin")
    proc = run_install(bin_dir, pythonpath=site)
    assert proc.returncode == 0, proc.stderr
    launcher = os.path.join(bin_dir, "loopback")
    loopback_round_trip(world, launcher)

    path = launcher_sys_path(sys.executable, launcher)
    assert path[-1] == site
    dirs = [p for p in path if os.path.isdir(p)]
    dirs += [os.path.join(site, "pycni"), os.path.join(site, "pycni", "__pycache__"),
             os.path.join(site, "pycni", "plugins", "loopback"), bin_dir]
    files = [os.path.join(site, "pycni", "__init__.py"), os.path.join(site, "pycni", "skel.py"),
             os.path.join(site, "pycni", "plugins", "loopback", "plugin.py"), launcher,
             os.path.realpath(sys.executable)]
    cfg = os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "pyvenv.cfg")
    if os.path.exists(cfg):
        files.append(cfg)
    for d in dirs:
        proc = as_nobody(world, 'echo planted > "$1/pycni_planted.py"', d)
        assert proc.returncode != 0 and b"Permission denied" in proc.stderr, d
        assert not os.path.exists(os.path.join(d, "pycni_planted.py"))
    for f in files:
        proc = as_nobody(world, 'echo "# planted" >> "$1"', f)
        assert proc.returncode != 0 and b"Permission denied" in proc.stderr, f
        proc = as_nobody(world, 'mv "$1" "$1.moved"', f)
        assert proc.returncode != 0, f
    loopback_round_trip(world, launcher)


# ---------------------------------------------------- umask

def test_umask_000_install_gives_0755_and_launchers_write_no_bytecode(world, root_dir):
    """Under umask 000: --dir and the parents install creates are 0755,
    launchers 0755; and a launcher run by root with umask 000 does not
    create __pycache__ directories (which would be 0777) in the package."""
    site = copy_installation(root_dir, pycache=False)
    bin_dir = os.path.join(root_dir, "opt", "cni", "bin")
    proc = run_install(bin_dir, pythonpath=site, umask=0)
    assert proc.returncode == 0, proc.stderr
    for d in ("opt", "opt/cni", "opt/cni/bin"):
        assert stat.S_IMODE(os.stat(os.path.join(root_dir, d)).st_mode) == 0o755, d
    names = sorted(os.listdir(bin_dir))
    assert names == sorted([".pycni-bundle", ".pycni-manifest", *PLUGINS])
    for support in (".pycni-bundle", ".pycni-manifest"):
        st = os.lstat(os.path.join(bin_dir, support))
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644, support
        names.remove(support)
    for name in names:
        st = os.lstat(os.path.join(bin_dir, name))
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, name

    launcher = os.path.join(bin_dir, "loopback")
    out = subprocess.run([launcher], env={"CNI_COMMAND": "VERSION"}, umask=0,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    created = [root for root, dirs, _ in os.walk(site) if "__pycache__" in dirs]
    assert created == []
    assert "not byte-compiled" in proc.stderr    # install said it would be slow


# ---------------------------------------------------- build.sh (the standalone bundle)

def test_build_sh_bundle_is_not_writable_by_others_under_umask_000(tmp_path):
    """Root runs the bundle's files (and `cp -a` keeps their modes): under
    umask 000, and with loosely-moded files in the interpreter it copies
    from, build.sh still produces nothing group/other-writable. The
    interpreter is the one ./build.sh already built (PYCNI_PYTHON_ROOT): only
    build.sh's own handling is under test."""
    src = os.path.dirname(BUILD_SH)
    built = os.path.join(src, "build", "portable", "python-root")
    if not os.path.isfile(os.path.join(built, "python")):
        from pytest_netns import missing_prerequisite
        missing_prerequisite("the static interpreter is not built (run ./build.sh)")
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("build.sh", "lib", "plugins", "ipam", "scripts", "README.md", "pyproject.toml"):
        path = os.path.join(src, name)
        if os.path.isdir(path):
            shutil.copytree(path, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, tree / name)
    pyroot = tmp_path / "python-root"
    shutil.copytree(built, pyroot)
    for dirpath, dirnames, filenames in os.walk(pyroot):
        for name in dirnames + filenames:
            os.chmod(os.path.join(dirpath, name), 0o777)
    proc = subprocess.run(["bash", str(tree / "build.sh")], umask=0, capture_output=True,
                          text=True, timeout=600,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "PYCNI_PYTHON_ROOT": str(pyroot)})
    assert proc.returncode == 0, proc.stderr
    bundle = tree / "dist" / "cni-bin"
    assert sorted(os.listdir(bundle)) == sorted([".pycni", *PLUGINS])
    loose = []
    for top in (tree / "dist", tree / "build"):
        for root, dirs, files in os.walk(top):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                st = os.lstat(name)
                if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:
                    loose.append(f"{name} {stat.S_IMODE(st.st_mode):04o}")
    assert loose == []
