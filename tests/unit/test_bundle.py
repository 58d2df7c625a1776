"""pycni.bundle: the launchers' compiled-module cache serves exactly the
installed code, and is ignored whenever it cannot be trusted or is stale."""

import marshal
import os
import subprocess
import sys

import pytest

import pycni
from pycni import bundle, cli
from pycni.launcher import launcher_text

PACKAGE = os.path.dirname(os.path.abspath(pycni.__file__))


def _read(data: bytes):
    """(format, version, index, code area offset) of a bundle."""
    start = len(bundle._MAGIC) + 8
    size = int.from_bytes(data[len(bundle._MAGIC):start], "big")
    fmt, version, index = marshal.loads(data[start:start + size])
    return fmt, version, index, start + size


def _write(path, data: bytes, fmt, version, index, base) -> None:
    head = marshal.dumps((fmt, version, index))
    path.write_bytes(bundle._MAGIC + len(head).to_bytes(8, "big") + head + data[base:])


def test_build_holds_every_plugin_module_and_not_the_cli():
    data = bundle.build(PACKAGE)
    fmt, version, index, base = _read(data)
    assert fmt == bundle.FORMAT and tuple(version) == sys.version_info[:2]
    assert {"pycni", "pycni.skel", "pycni.plugins.bridge.plugin",
            "pycni.ipam.host_local.store", "pycni.entry"} <= set(index)
    assert not [n for n in index if n == "pycni.cli" or n.startswith("pycni.cnitool")]
    assert index["pycni.plugins"][0] is True and index["pycni.skel"][0] is False
    assert index["pycni.skel"][1] == os.path.join(PACKAGE, "skel.py")
    offset, length = index["pycni.skel"][4:6]
    code = marshal.loads(data[base + offset:base + offset + length])
    assert "parse_cni_args" in code.co_names or code.co_filename.endswith("skel.py")


def _launch(directory, name="loopback", env=None, probe=""):
    """Run plugin `name`'s launcher text from `directory`, `probe` run
    after the bundle is in place; stderr gets which loader served
    pycni.skel."""
    text = launcher_text(name, str(directory))
    head, last = text.rsplit("\n", 2)[0], text.rsplit("\n", 2)[1]
    bundle_path = os.path.join(str(directory), bundle.FILE_NAME)
    code = (head + f"\nfrom pycni.bundle import use\nuse({bundle_path!r})\n"
            "import pycni.skel as _s, os as _os\n"
            "_os.write(2, ('LOADER ' + type(_s.__spec__.loader).__name__ + '\\n').encode())\n"
            + probe + last + "\n")
    return subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code],
                          env=env or {"CNI_COMMAND": "VERSION"}, capture_output=True, timeout=30)


@pytest.fixture
def installed(tmp_path):
    cli.install(str(tmp_path), ["loopback"])
    return tmp_path


def test_launcher_uses_the_bundle(installed):
    proc = _launch(installed)
    assert proc.returncode == 0, proc.stderr
    assert b"LOADER _Finder" in proc.stderr
    assert b'"supportedVersions"' in proc.stdout


def test_missing_bundle_means_regular_imports(installed):
    os.unlink(installed / bundle.FILE_NAME)
    proc = _launch(installed)
    assert proc.returncode == 0 and b"LOADER SourceFileLoader" in proc.stderr


def test_a_changed_module_comes_from_its_file(installed, tmp_path):
    """A source file whose size or mtime differs from what was bundled (an
    upgrade without `pycni install`, an edit): that module is imported
    from the installed file, the others from the bundle."""
    path = installed / bundle.FILE_NAME
    data = path.read_bytes()
    fmt, version, index, base = _read(data)
    entry = list(index["pycni.skel"])
    entry[3] -= 1
    index["pycni.skel"] = tuple(entry)
    _write(path, data, fmt, version, index, base)
    probe = ("import pycni.version as _v\n"
             "_os.write(2, ('VERSION_LOADER ' + type(_v.__spec__.loader).__name__ + '\\n')"
             ".encode())\n")
    proc = _launch(installed, probe=probe)
    assert proc.returncode == 0, proc.stderr
    assert b"LOADER SourceFileLoader" in proc.stderr        # pycni.skel
    assert b"VERSION_LOADER _Finder" in proc.stderr          # the rest


@pytest.mark.parametrize("how", ["group-writable", "symlink", "foreign-owner", "garbage",
                                 "truncated", "other-python"])
def test_untrustworthy_bundle_is_ignored(installed, tmp_path, how):
    path = installed / bundle.FILE_NAME
    if how == "group-writable":
        os.chmod(path, 0o664)
    elif how == "symlink":
        os.rename(path, tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", path)
    elif how == "foreign-owner":
        os.chown(path, 65534, -1)
    elif how == "garbage":
        path.write_bytes(b"not a bundle at all")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif how == "other-python":
        data = path.read_bytes()
        fmt, _version, index, base = _read(data)
        _write(path, data, fmt, (3, 99), index, base)
    proc = _launch(installed)
    assert proc.returncode == 0, proc.stderr
    assert b"LOADER SourceFileLoader" in proc.stderr


def test_served_modules_look_like_regular_ones(installed):
    probe = ("import pycni.plugins.loopback.plugin as _p, pycni as _pkg\n"
             "_os.write(2, ('FILE ' + _p.__file__ + ' ' + _pkg.__file__ + ' '"
             " + repr(_pkg.__path__) + '\\n').encode())\n")
    proc = _launch(installed, probe=probe)
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stderr.decode().splitlines() if l.startswith("FILE "))
    assert line == (f"FILE {PACKAGE}/plugins/loopback/plugin.py {PACKAGE}/__init__.py "
                    f"{[PACKAGE]!r}")


def test_a_real_call_is_served_from_the_bundle(tmp_path):
    """The installed launcher itself: a host-local DEL (nothing to release)
    imports its modules through the bundle."""
    cli.install(str(tmp_path / "bin"), ["host-local"])
    prelude = ("import posix, sys\n_exit = posix._exit\n"
               "def report(code):\n"
               "    loader = type(sys.modules['pycni.ipam.host_local.plugin'].__spec__.loader)\n"
               "    posix.write(2, ('LOADER ' + loader.__name__ + '\\n').encode())\n"
               "    _exit(code)\n"
               "posix._exit = report\n")
    text = (tmp_path / "bin" / "host-local").read_text()
    conf = ('{"cniVersion": "1.0.0", "name": "b", "type": "x", "ipam": {"type": "host-local",'
            f' "subnet": "10.9.0.0/24", "dataDir": "{tmp_path}/store"}}}}')
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/x", "CNI_PATH": str(tmp_path / "bin"), "PATH": "/usr/bin:/bin",
           "PYCNI_STATE_DIRS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", prelude + text],
                          input=conf.encode(), env=env, capture_output=True, timeout=30)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert b"LOADER _Finder" in proc.stderr


def test_install_compiles_with_the_launchers_python_without_column_tables(tmp_path):
    cli.install(str(tmp_path), ["loopback"])
    data = (tmp_path / bundle.FILE_NAME).read_bytes()
    _fmt, _version, index, base = _read(data)
    offset, length = index["pycni.skel"][4:6]
    code = marshal.loads(data[base + offset:base + offset + length])
    assert all(col is None for _l1, _l2, col, _end in code.co_positions())


def test_a_sealed_bundle_serves_its_modules_without_their_sources(tmp_path):
    """build.sh's bundle (sealed_in: the portable bundle ships no sources):
    paths relative to the bundle's directory, no size or mtime to compare,
    the module served from the bundle although no source file exists."""
    import shutil
    tree = tmp_path / "tree"
    shutil.copytree(PACKAGE, tree / "lib" / "pycni",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    data = bundle.build(str(tree / "lib" / "pycni"), sealed_in=str(tree))
    _, _, index, _ = _read(data)
    assert index["pycni.skel"][1:4] == (os.path.join("lib", "pycni", "skel.py"), None, None)
    assert index["pycni.plugins"][0] is True
    for py in (tree / "lib").rglob("*.py"):
        py.unlink()
    (tree / "pycni.bundle").write_bytes(data)
    os.chmod(tree / "pycni.bundle", 0o644)
    code = (f"import sys\nsys.path.append({os.path.dirname(PACKAGE)!r})\n"
            f"from pycni.bundle import use\nassert use({str(tree / 'pycni.bundle')!r})\n"
            "import pycni.plugins.loopback.plugin as m\n"
            "print(type(m.__spec__.loader).__name__, m.__file__)\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code],
                          capture_output=True, text=True, timeout=30,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "_Finder", str(tree / "lib" / "pycni" / "plugins" / "loopback" / "plugin.py")]
