"""The optional C extension pycni._pycni_linux (lib/_pycni_linux.c, setup.py;
issue #12): a wheel built where a C compiler and Python's headers are has
it, and its source stays out; a build without a compiler still succeeds,
with every module and without the extension (pycni.netns then uses
_ctypes). Built offline as the README's no-network install does: Debian's
setuptools, --no-build-isolation."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
TREE = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "lib", "plugins", "ipam",
        "netns-fixtures")


@pytest.fixture
def source(tmp_path):
    """A copy of the tree per build: setuptools reuses what an earlier
    build left in build/ (the compiled extension among it)."""
    probe = subprocess.run([PYTHON, "-c", "import setuptools, wheel"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{PYTHON} has no setuptools/wheel to build offline with")
    src = tmp_path / "src"
    src.mkdir()
    for name in TREE:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.so", "*.egg-info"))
        elif os.path.exists(path):
            shutil.copy(path, src / name)
    return src


def build(src, out, **env) -> tuple[subprocess.CompletedProcess, set[str]]:
    """pip wheel of `src` into `out`: the process and the wheel's file names."""
    proc = subprocess.run([PYTHON, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_CONFIG_FILE": os.devnull, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("pycni-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return proc, set(zf.namelist())


def compiler_missing() -> str | None:
    code = ("import shutil, sysconfig, os;"
            "cc = (sysconfig.get_config_var('CC') or 'cc').split()[0];"
            "h = os.path.join(sysconfig.get_paths()['include'], 'Python.h');"
            "print('' if shutil.which(cc) and os.path.exists(h) else cc + ' or ' + h)")
    missing = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True).stdout.strip()
    return missing or None


def extensions(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.startswith("pycni/_pycni_linux"))


def test_the_wheel_has_the_extension_where_a_compiler_is(source, tmp_path):
    missing = compiler_missing()
    if missing:
        pytest.skip(f"no C compiler or Python headers here: {missing}")
    _proc, names = build(source, tmp_path / "out")
    (so,) = extensions(names)
    assert so.endswith(".so")
    # the module works: an OSError with errno, as os.setns
    with zipfile.ZipFile(next((tmp_path / "out").glob("pycni-*.whl"))) as zf:
        zf.extract(so, tmp_path / "x")
    code = ("import errno, importlib.util as u, sys\n"
            "spec = u.spec_from_file_location('pycni._pycni_linux', sys.argv[1])\n"
            "mod = u.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "try:\n    mod.setns(-1, 0x40000000)\n"
            "except OSError as e:\n    print(e.errno == errno.EBADF)\n")
    check = subprocess.run([PYTHON, "-I", "-c", code, str(tmp_path / "x" / so)],
                           capture_output=True, text=True)
    assert check.stdout == "True\n", check.stderr


def test_a_build_without_a_compiler_installs_all_but_the_extension(source, tmp_path):
    proc, names = build(source, tmp_path / "out", CC="/nonexistent/cc")
    assert extensions(names) == []
    assert "pycni/netns.py" in names and "pycni/plugins/bridge/plugin.py" in names
    assert 'building extension "pycni._pycni_linux" failed' in proc.stdout + proc.stderr
