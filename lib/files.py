"""File helpers for plugin state: explicit modes, no symlink followed.

Plugins run as root in directories that other users may be able to reach.
The rules every state writer follows (host-local's store, tuning's
backups, cnitool's result cache):

- The configured base directory (a `dataDir`, the cache dir) is trusted as
  a path: existing components are followed as the operator laid them out.
  Components that are missing are created here with exactly the mode asked
  for (mkdir, then fchmod: the umask plays no part), each one opened with
  O_NOFOLLOW relative to its parent, so nobody can swap a symlink into a
  path while we create it.
- Directories *below* the base (a network directory, `.pycni`) are opened
  with `open_subdir`: never through a symlink, only when owned by us (the
  effective uid), and never left writable by group or others (a directory
  of ours that is, e.g. made under umask 000 by an older version, gets
  those write bits dropped).
- Every file is opened relative to its directory's fd with O_NOFOLLOW and
  O_NONBLOCK (a FIFO never hangs us) and must be a regular file.
- Files are replaced, never rewritten in place: a temporary file created
  O_EXCL next to the target, then renamed over it. A planted symlink or
  hard link at the target is replaced, never written through.
"""

import errno
from . import posixos as os
import _stat as stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path in a state directory that we refuse to use."""


class NotRegular(OSError):
    """A path names something other than a regular file (its st_mode in
    `.st_mode`)."""

    st_mode = 0


_REOPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_path_regular(path: str) -> int:
    """A read-only fd of the regular file at `path`, a path a config or the
    environment chose (CNI_NETNS, host-local's `resolvConf`), symlinks
    followed as the path was meant, without ever blocking or touching a
    device.

    A plain open() of a FIFO blocks until someone opens the other end, and
    opening a device node as root can have side effects (a tape rewinds,
    /dev/watchdog arms). So the path is first opened O_PATH, which opens
    nothing, the inode is checked to be a regular file, and only then is
    that very inode reopened for reading through /proc/self/fd, O_NONBLOCK
    and O_NOCTTY: swapping the path in between changes nothing.
    FileNotFoundError (and other OSErrors) as open() raises them; NotRegular
    for a FIFO, device, directory or socket; OSError (EINVAL) for a NUL."""
    if "\0" in path:
        raise OSError(errno.EINVAL, "path contains a NUL byte")
    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        mode = os.fstat(pfd).st_mode
        if not stat.S_ISREG(mode):
            err = NotRegular(errno.EINVAL, "not a regular file", path)
            err.st_mode = mode
            raise err
        return os.open(f"/proc/self/fd/{pfd}", _REOPEN)
    finally:
        os.close(pfd)


_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO",
          stat.S_IFSOCK: "a socket", stat.S_IFREG: "a regular file"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "a device")


def _kind_at(dir_fd: int, name: str) -> str:
    try:
        return _kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return "not a directory"


def open_dir(path: str) -> int | None:
    """fd of the existing directory `path` (followed as a path); None if missing."""
    try:
        return os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return None


def open_tree(path: str, mode: int) -> int:
    """fd of directory `path`, creating missing components with `mode`."""
    try:
        return os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        pass
    stripped = path.rstrip("/") or "/"
    parent, name = os.path.split(stripped)
    if not name or name in (".", ".."):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    parent_fd = open_tree(parent or ".", mode)
    try:
        fd = open_subdir(parent_fd, name, mode, create=True)
    finally:
        os.close(parent_fd)
    assert fd is not None       # create=True: a missing directory is made or raises
    return fd


def open_subdir(dir_fd: int, name: str, mode: int, create: bool = True) -> int | None:
    """fd of directory `name` inside `dir_fd`, created with exactly `mode`
    when missing (None when missing and not `create`). Refused (UnsafePath):
    a symlink, not a directory, owned by another user. A directory of ours
    writable by group or others loses those bits."""
    created = False
    if create:
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
            created = True
        except FileExistsError:
            pass
    try:
        fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(exc.errno, f"{name} is {_kind_at(dir_fd, name)}") from None
        raise
    try:
        st = os.fstat(fd)
        euid = os.geteuid()
        if st.st_uid != euid:
            raise UnsafePath(errno.EPERM, f"{name} is owned by uid {st.st_uid}, not {euid}")
        if created:
            os.fchmod(fd, mode)
        elif os.others_can_write(st):
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~0o022)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(dir_fd: int, name: str, flags: int = os.O_RDONLY,
                 create_mode: int | None = None) -> int:
    """fd of the regular file `name` in `dir_fd`, never through a symlink,
    never blocking on a FIFO. With `create_mode`, a missing file is created
    with exactly that mode. UnsafePath for anything but a regular file."""
    flags |= _FILE_FLAGS
    while True:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
            break
        except FileNotFoundError:
            if create_mode is None:
                raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise UnsafePath(exc.errno, f"{name} is {_kind_at(dir_fd, name)}") from None
            raise
        try:
            fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, create_mode, dir_fd=dir_fd)
        except FileExistsError:
            continue                        # created meanwhile: open that one
        try:
            os.fchmod(fd, create_mode)
        except BaseException:
            os.close(fd)
            raise
        return fd
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePath(errno.EINVAL, f"{name} is {_kind(mode)}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_at(dir_fd: int, name: str, limit: int = 1 << 20) -> bytes | None:
    """Up to `limit` bytes of the regular file `name`; None if it is missing."""
    try:
        fd = open_regular(dir_fd, name)
    except FileNotFoundError:
        return None
    return read_fd(fd, limit)


def read_fd(fd: int, limit: int, close: bool = True) -> bytes:
    """What `fd` holds from its offset to its end, `limit` bytes at most;
    `fd` is closed (also on an error) unless `close` is False."""
    try:
        chunks = []
        while limit > 0:
            chunk = os.read(fd, min(limit, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            limit -= len(chunk)
        return b"".join(chunks)
    finally:
        if close:
            os.close(fd)


def read_file(path: str, limit: int = 1 << 20, follow_symlinks: bool = False) -> bytes | None:
    """`read_at` for a path whose directory is trusted; with
    `follow_symlinks` the whole path is (e.g. a resolv.conf symlink), but
    it must still lead to a regular file (no FIFO hang, no /dev/zero)."""
    if follow_symlinks:
        # checked before it is opened: opening a device node (say
        # /dev/watchdog, which arms it) can have side effects
        try:
            fd = open_path_regular(path)
        except FileNotFoundError:
            return None
        except NotRegular as err:
            raise UnsafePath(errno.EINVAL, f"{path} is {_kind(err.st_mode)}") from None
        return read_fd(fd, limit)
    directory, name = os.path.split(path)
    dir_fd = open_dir(directory or ".")
    if dir_fd is None:
        return None
    try:
        return read_at(dir_fd, name, limit)
    finally:
        os.close(dir_fd)


def write_atomic_at(dir_fd: int, name: str, data: bytes, mode: int = 0o600,
                    sync: bool = False, tmp: str = "") -> None:
    """Replace `name` in `dir_fd` by a file of exactly `mode` holding `data`:
    readers see the old or the new content, never half a file; whatever was
    at `name` (a symlink included) is replaced, never written through.
    The temporary file is `.NAME.tmpPID` (one a killed process of the same
    pid left is replaced), or `tmp` when given (FileExistsError if taken)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    if tmp:
        fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
    else:
        tmp = f".{name}.tmp{os.getpid()}"
        try:
            fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
        except FileExistsError:          # left by a killed process of the same pid
            os.unlink(tmp, dir_fd=dir_fd)
            fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def rewrite_at(dir_fd: int, name: str, data: bytes, mode: int = 0o600) -> None:
    """Set `name` in `dir_fd` to `data` (mode `mode`): in place when it is a
    regular file with a single link (cheaper than a rename in a large
    directory; not atomic, for files read under a lock), else by
    `write_atomic_at`, which replaces a symlink, FIFO or hard link."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EACCES):
            raise
        return write_atomic_at(dir_fd, name, data, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            fd = -1
            return write_atomic_at(dir_fd, name, data, mode)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        if fd >= 0:
            os.close(fd)


def write_atomic(path: str, data: bytes, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    """`write_atomic_at` for a path; missing directories are created with
    `dir_mode` (the directory itself is trusted as a path)."""
    directory, name = os.path.split(path)
    dir_fd = open_tree(directory or ".", dir_mode)
    try:
        write_atomic_at(dir_fd, name, data, mode)
    finally:
        os.close(dir_fd)


def unlink_at(dir_fd: int, name: str) -> bool:
    """Remove `name` (never follows it); False if it was not there."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True
