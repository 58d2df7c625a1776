"""pycni.netns.setns: which setns(2) a process uses, and that they all
behave alike (issue #12).

Python 3.12+ has os.setns, and the portable bundle's launcher installs its
built-in _pycni_linux.setns there; a Python 3.11 install uses the extension
module pycni._pycni_linux that `pip install .` builds where a C compiler
is (lib/_pycni_linux.c), and only without it libc's setns through
`_ctypes`, whose import costs ~1 ms of every process that enters a
namespace. Whichever it is, a failure is the same OSError.

The tests that enter a namespace re-enter the process's own one (a no-op
for the kernel, but a real setns(2): it needs root).
"""

import errno
import importlib.util
import os
import subprocess
import sys

import pytest

from pycni import netns, posixos
from pycni.launcher import import_paths

HAVE_EXTENSION = importlib.util.find_spec("pycni._pycni_linux") is not None
needs_extension = pytest.mark.skipif(not HAVE_EXTENSION,
                                     reason="pycni was installed without its C extension")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setns(2) needs CAP_SYS_ADMIN")


@pytest.fixture
def fresh(monkeypatch):
    """netns as a Python 3.11 process starts: no os.setns, nothing chosen."""
    monkeypatch.delattr(posixos, "setns", raising=False)
    monkeypatch.setattr(netns, "_setns", None)


@pytest.fixture
def without_extension(fresh, monkeypatch):
    """As an install built without a C compiler: the extension is not there."""
    monkeypatch.setitem(sys.modules, "pycni._pycni_linux", None)   # import raises ImportError


def own_netns_fd() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


# ------------------------------------------------------------ the choice

def test_os_setns_comes_first(monkeypatch):
    calls = []
    monkeypatch.setattr(posixos, "setns", lambda fd, nstype: calls.append((fd, nstype)),
                        raising=False)
    monkeypatch.setattr(netns, "_setns", None)
    netns.setns(7)
    assert calls == [(7, netns.CLONE_NEWNET)]
    assert netns._setns is None          # neither the extension nor _ctypes was needed


@needs_extension
def test_the_extension_comes_before_ctypes(fresh):
    from pycni import _pycni_linux
    assert netns._own_setns() is _pycni_linux.setns
    assert netns._own_setns() is _pycni_linux.setns      # chosen once


def test_ctypes_when_the_extension_is_missing(without_extension):
    chosen = netns._own_setns()
    assert chosen.__module__ == "pycni.netns"
    with pytest.raises(OSError) as exc:
        chosen(-1, netns.CLONE_NEWNET)
    assert exc.value.errno == errno.EBADF
    assert exc.value.strerror == os.strerror(errno.EBADF)


# ------------------------------------------------------- same behaviour

IMPLEMENTATIONS = [pytest.param("extension", marks=needs_extension), "ctypes"]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request, fresh, monkeypatch):
    if request.param == "ctypes":
        monkeypatch.setitem(sys.modules, "pycni._pycni_linux", None)
    return request.param


def test_a_bad_fd_is_an_oserror_with_errno(implementation):
    with pytest.raises(OSError) as exc:
        netns.setns(-1)
    assert exc.value.errno == errno.EBADF
    # the wording Python 3.11 installs have always had
    assert str(exc.value) == f"[Errno {errno.EBADF}] setns: {os.strerror(errno.EBADF)}"


def test_a_file_that_is_no_namespace_is_einval(implementation):
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as exc:
            netns.setns(fd)
    finally:
        os.close(fd)
    assert exc.value.errno == errno.EINVAL


@needs_root
def test_entering_the_own_namespace_works(implementation):
    fd = own_netns_fd()
    try:
        netns.setns(fd)
        netns.setns(fd)
    finally:
        os.close(fd)
    assert netns._setns is not None


@needs_extension
def test_the_extension_has_os_setns_signature():
    """setns(fd, nstype=0), as os.setns of Python 3.12 (the bundle's
    launcher installs the same function as posix.setns)."""
    from pycni._pycni_linux import setns
    for call in (lambda: setns(-1), lambda: setns(-1, 0), lambda: setns(fd=-1, nstype=0)):
        with pytest.raises(OSError) as exc:
            call()
        assert exc.value.errno == errno.EBADF
    with pytest.raises(TypeError):
        setns("3")
    with pytest.raises(TypeError):
        setns()


# --------------------------------------- what a plugin process loads

PROBE = """\
import posix, sys
sys.path += {paths!r}
from pycni.bundle import use
assert use({bundle!r})
{block}
from pycni import netns
fd = posix.open("/proc/thread-self/ns/net", posix.O_RDONLY)
netns.setns(fd)
print(" ".join(sorted(m for m, mod in sys.modules.items()
                     if mod is not None and ("ctypes" in m or "pycni_linux" in m))))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The launchers' directory with its .pycni-bundle, as `pycni install` writes it."""
    if os.path.basename(os.path.dirname(os.path.abspath(netns.__file__))) != "pycni":
        pytest.skip("needs a regular (non-editable) install of the package")
    directory = tmp_path_factory.mktemp("netns-bin")
    proc = subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", str(directory)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"pycni install refused this installation: {proc.stderr.strip()}")
    return str(directory / ".pycni-bundle")


def loaded_for_setns(bundle: str, block: bool = False) -> list[str]:
    """The ctypes/_pycni_linux modules of a process that starts as a
    launcher does (-I -S -B, pycni's directory appended, the bundle in
    use) and enters its own namespace."""
    code = PROBE.format(paths=import_paths(), bundle=bundle,
                        block="sys.modules['pycni._pycni_linux'] = None" if block else "")
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], env={},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@needs_root
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="os.setns: neither is loaded")
def test_a_launcher_process_loads_the_extension_not_ctypes(bundle):
    if HAVE_EXTENSION:
        assert loaded_for_setns(bundle) == ["pycni._pycni_linux"]
    else:
        assert loaded_for_setns(bundle) == ["_ctypes"]


@needs_root
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="os.setns: neither is loaded")
def test_a_launcher_process_without_the_extension_uses_ctypes(bundle):
    assert loaded_for_setns(bundle, block=True) == ["_ctypes"]
