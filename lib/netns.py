"""Entering network namespaces.

`entered(path)` switches the calling thread into the namespace at `path`
and always switches back, also when the body raises. Netlink sockets and
/proc/sys/net files opened inside stay bound to that namespace after
leaving it, so most work is: enter, open socket, leave.
"""

import errno
from . import posixos as os

from .errors import CNIError, INVALID_ENVIRONMENT, UNKNOWN_CONTAINER

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl: which kind of namespace an nsfs fd is

_setns = None   # setns(fd, nstype) of pycni's extension or of libc: _own_setns()


def _own_setns():
    """setns(2) where os has none (Python 3.11): the extension module
    pycni._pycni_linux (lib/_pycni_linux.c), which `pip install .` builds
    when a C compiler and Python's headers are there; else libc's through
    `_ctypes` alone, whose import costs ~1-2 ms of every call that enters a
    namespace (dlopen of _ctypes and libffi, its type objects; issue #12).
    Both raise OSError(errno, strerror) as os.setns does."""
    global _setns
    if _setns is None:
        try:
            from ._pycni_linux import setns as own  # type: ignore[import-not-found]
        except ImportError:
            own = _libc_setns()
        _setns = own
    return _setns


def _libc_setns():
    """libc's setns(2) through `_ctypes` alone: the `ctypes` package
    defines ~60 classes on import (~1.5 ms) where this needs two."""
    import _ctypes

    class c_int(_ctypes._SimpleCData):
        _type_ = "i"

    class LibcFunction(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = c_int

    class Libc:
        _handle = _ctypes.dlopen(None, os.RTLD_NOW)

    libc_setns = LibcFunction(("setns", Libc))

    def setns(fd: int, nstype: int = 0) -> None:
        if libc_setns(fd, nstype) != 0:
            err = _ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return setns


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace of `fd`."""
    if hasattr(os, "setns"):  # Python 3.12+, and the portable bundle's launcher
        os.setns(fd, CLONE_NEWNET)
        return
    try:
        _own_setns()(fd, CLONE_NEWNET)
    except OSError as err:      # the wording of Python 3.11 installs, as before
        raise OSError(err.errno, f"setns: {err.strerror}") from None


class NetnsNotFound(CNIError):
    """The path does not exist (code 3): on DEL, the container is gone."""

    def __init__(self, path: str):
        super().__init__(UNKNOWN_CONTAINER, f'network namespace "{path}" does not exist')
        self.path = path


class NotANetns(CNIError):
    """The path exists but is no network namespace. On DEL this usually means
    the runtime unmounted the namespace and left the mount point behind:
    the container is gone."""

    def __init__(self, path: str):
        super().__init__(INVALID_ENVIRONMENT, f'"{path}" is not a network namespace')
        self.path = path


# What DEL treats as "the container is already gone".
GONE = (NetnsNotFound, NotANetns)


def open_netns(path: str) -> int:
    """Open `path` and make sure it really is a network namespace; never
    blocks and never opens anything else for reading.

    CNI_NETNS is chosen by the caller: a FIFO would block a plain open()
    forever, and opening a device node can have side effects. So
    files.open_path_regular refuses anything but a regular file (nsfs inodes
    are regular files) before opening it, non-blocking, and the
    NS_GET_NSTYPE ioctl, which only nsfs answers, confirms a network
    namespace.
    """
    from .files import NotRegular, open_path_regular
    if "\0" in path:
        raise NotANetns(path)
    try:
        fd = open_path_regular(path)
    except (FileNotFoundError, NotADirectoryError):
        raise NetnsNotFound(path) from None
    except NotRegular:
        raise NotANetns(path) from None
    except OSError as exc:
        raise CNIError(INVALID_ENVIRONMENT, f'cannot open network namespace "{path}"',
                       exc.strerror or str(exc)) from None
    import fcntl
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        kind = None
    if kind != CLONE_NEWNET:
        os.close(fd)
        raise NotANetns(path)
    return fd


def probe(path: str) -> None:
    """Raise NetnsNotFound / NotANetns (or another CNIError) unless `path`
    is a network namespace; opens nothing blocking."""
    os.close(open_netns(path))


def exists(path: str) -> bool:
    """Whether something exists at `path` (opens nothing)."""
    return bool(path) and "\0" not in path and os.path.exists(path)


def is_current(path: str) -> bool:
    """True if `path` is the namespace this process runs in (stat only:
    nothing is opened)."""
    try:
        a = os.stat(path)
        b = os.stat("/proc/thread-self/ns/net")
    except (OSError, ValueError):   # ValueError: a NUL byte in the path
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class entered:
    """Context manager: run the body inside the network namespace at `path`."""

    def __init__(self, path: str):
        self.path = path
        self._orig = -1
        self._target = -1

    def __enter__(self):
        self._target = open_netns(self.path)
        self._orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(self._target)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc):
        try:
            setns(self._orig)
        except OSError as err:
            # Continuing in the wrong namespace would act on the wrong host.
            os.write(2, f"pycni: cannot return to original netns: {err}\n".encode())
            os._exit(70)
        finally:
            self._close()
        return False

    def _close(self):
        for fd in (self._target, self._orig):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError as e:
                    if e.errno != errno.EBADF:
                        raise
        self._target = self._orig = -1
