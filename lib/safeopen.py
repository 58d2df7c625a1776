"""Opening a file whose path a config or the environment chose (CNI_NETNS,
host-local's `resolvConf`), without ever blocking or touching a device.

A plain open() of a FIFO blocks until someone opens the other end, and
opening a device node as root can have side effects (a tape rewinds, a
terminal becomes ours). So the path is first opened O_PATH, which opens
nothing (symlinks are followed, as the path was meant), the inode is
checked to be a regular file, and only then is that very inode reopened
for reading through /proc/self/fd, O_NONBLOCK and O_NOCTTY: the check and
the open cannot be told apart by swapping the path in between.
"""

import errno
import os
from stat import S_ISREG   # loaded by os already

_REOPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class NotRegular(OSError):
    """The path names something other than a regular file (its st_mode in
    `.st_mode`)."""

    st_mode = 0


def open_regular(path: str) -> int:
    """A read-only fd of the regular file at `path`. FileNotFoundError (and
    other OSErrors) as open() raises them; NotRegular for a FIFO, device,
    directory or socket; an OSError (EINVAL) for a NUL byte."""
    if "\0" in path:
        raise OSError(errno.EINVAL, "path contains a NUL byte")
    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        mode = os.fstat(pfd).st_mode
        if not S_ISREG(mode):
            err = NotRegular(errno.EINVAL, "not a regular file", path)
            err.st_mode = mode
            raise err
        return os.open(f"/proc/self/fd/{pfd}", _REOPEN)
    finally:
        os.close(pfd)


def read_regular(path: str, limit: int = 1 << 20) -> bytes:
    """The content of the regular file at `path`, at most `limit` bytes
    (EFBIG beyond that: /proc/kcore is a regular file too)."""
    fd = open_regular(path)
    try:
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
            chunks.append(chunk)
    finally:
        os.close(fd)
