"""Running one program and capturing its output, without `subprocess`.

`import subprocess` costs ~26 ms per plugin process (it pulls in
`selectors`, `threading`, `signal`, ...), more than most tool execs it is
used for. `run` does the same job with what a plugin process has already
loaded: `os.posix_spawn` (vfork + exec in glibc) and memory files.

The child's stdin, stdout and stderr are memfds: stdin holds the input,
written and rewound before the spawn; stdout and stderr are read back from
offset 0 once the child has exited. No pipes, so no select loop and no
deadlock whatever the sizes (an iptables-save of thousands of rules, a
restore script of megabytes), and a child that leaves a daemon holding its
stdout open cannot make us wait for EOF.

What the child gets, as `subprocess.run(..., close_fds=True)` would give
it:
- exactly `env`, nothing of ours;
- fds 0, 1 and 2 only: ours are all close-on-exec (Python's default), and
  any inheritable fd this process was started with (a runtime's leak) is
  closed in the child by a file action;
- SIGPIPE and SIGXFSZ at their default action (Python ignores SIGPIPE).

Exec failure (ENOENT, EACCES, ENOEXEC) raises OSError with the program's
path, as subprocess does; a child killed by a signal returns -signum.

`start` is `run` without the wait: it returns the running `Child` at once,
so the caller can do other work (netlink requests whose kernel waits
overlap the tool's) before `Child.wait()` gives the same triple `run`
returns. Every started child must be waited for: `Child` is a context
manager whose exit waits for it if nobody did, so an exception between
start and wait leaves no zombie and no stray process.
"""

from . import posixos as os

_SIGPIPE = 13     # signal.SIGPIPE, SIGXFSZ on Linux, without importing signal
_SIGXFSZ = 25
_MAX_FD_FALLBACK = 4096


def _memfd(name: str) -> int:
    """A close-on-exec memfd numbered 3 or above (our 0/1/2 may be closed,
    and a memfd landing on 0-2 would be clobbered by another's dup2)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    low = []
    while fd < 3:
        low.append(fd)
        fd = os.dup(fd)          # non-inheritable, lowest free number
    for f in low:
        os.close(f)
    return fd


def _inherited_fds() -> list[int]:
    """Our fds above 2 that an exec would pass on (not close-on-exec)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(fd) for fd in range(3, _MAX_FD_FALLBACK)]
    leaks = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    leaks.append(fd)
            except OSError:          # the listing's own fd, or not open
                pass
    return leaks


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)      # retried on EINTR by Python (PEP 475)
    return os.waitstatus_to_exitcode(status)


class Child:
    """A program `start` started. `wait()` reaps it (once; later calls
    return the same result) and frees its memfds; leaving a `with` block
    waits too. Interrupted while waiting (any exception, KeyboardInterrupt
    included), it kills and reaps the child before the exception goes on,
    as `subprocess.run` does."""

    __slots__ = ("pid", "_fds", "_result")

    def __init__(self, pid: int, fd_out: int, fd_err: int):
        self.pid = pid
        self._fds = [fd_out, fd_err]
        self._result: tuple[int, bytes, bytes] | None = None

    def wait(self) -> tuple[int, bytes, bytes]:
        """(returncode, stdout, stderr), as `run` returns them."""
        if self._result is None:
            try:
                try:
                    returncode = _wait(self.pid)
                except BaseException:
                    _kill(self.pid)
                    self._result = (-9, b"", b"")
                    raise
                self._result = (returncode, b"", b"")     # reaped, whatever follows
                self._result = (returncode, _read_all(self._fds[0]), _read_all(self._fds[1]))
            finally:
                fds, self._fds = self._fds, []
                for fd in fds:
                    os.close(fd)
        return self._result

    @property
    def done(self) -> bool:
        """Reaped already (by `wait`)."""
        return self._result is not None

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.wait()


def start(argv: list[str], env: dict, stdin: bytes = b"") -> Child:
    """Start `argv[0]` (an absolute path; no PATH search) with arguments
    `argv`, environment `env` and `stdin` (all of it written before the
    exec); the running child, to `wait()` for."""
    fds: list[int] = []
    try:
        for name in ("stdin", "stdout", "stderr"):
            fds.append(_memfd(name))
        fd_in, fd_out, fd_err = fds
        if stdin:
            _write_all(fd_in, stdin)
            os.lseek(fd_in, 0, os.SEEK_SET)
        actions: list[tuple] = [(os.POSIX_SPAWN_DUP2, fd_in, 0),
                                (os.POSIX_SPAWN_DUP2, fd_out, 1),
                                (os.POSIX_SPAWN_DUP2, fd_err, 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions,
                             setsigdef=(_SIGPIPE, _SIGXFSZ))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    os.close(fd_in)      # the child has its own (posix_spawn returns after the exec)
    return Child(pid, fd_out, fd_err)


def run(argv: list[str], env: dict, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """Run `argv[0]` (an absolute path; no PATH search) with arguments
    `argv`, environment `env` and `stdin`; (returncode, stdout, stderr).
    returncode is negative (-signum) if a signal killed the child."""
    with start(argv, env, stdin) as child:
        return child.wait()


def _kill(pid: int) -> None:
    """Interrupted while waiting: do not leave the child behind (as
    subprocess.run does)."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
