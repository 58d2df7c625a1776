"""Optional operation log, in a directory the node's operator chose.

A plugin runs as root, and its config is written by people who are not
(Multus tenants, local users), so no config may choose a file to write.
Only root chooses *where* logs go, by naming a log directory:

- the environment variable ``PYCNI_LOG_DIR`` (set by the runtime), else
- the key ``logDir`` of ``/etc/cni/pycni.conf``, a small JSON object
  (``{"logDir": "/var/log/pycni", "logLevel": "info"}``), honoured only if
  it is a regular file (not a symlink) owned by root and not writable by
  group or others; otherwise it is ignored with a warning on stderr.

Without a log directory nothing is logged, whatever the config says (a
config's ``logFile`` is then ignored, with a warning on stderr). The
directory must be an absolute path to a directory (not a symlink) owned
by root and not writable by group or others; otherwise nothing is logged
and stderr says why. (Only its last component is checked: name a path
whose every directory is root's, e.g. /var/log/pycni.)

With one, the file is ``pycni.log`` in it, unless ``PYCNI_LOG_FILE`` or a
config's ``logFile`` (Multus spelling; the config wins) names another file
*in that directory*: a plain file name, or an absolute path whose parent is
exactly the log directory (same spelling). Anything else (another
directory, ``..``, a symlink, a FIFO, a device, ``/dev/stdout``) is refused
with a warning on stderr; the operation itself is never affected. The file
is opened relative to the directory, never following a symlink, never
blocking, created mode 0600 whatever the umask, and must be a regular
file. Nothing of the log ever goes to stdout.

Levels (config ``logLevel``, else ``PYCNI_LOG_LEVEL``, else pycni.conf's
``logLevel``): ``error`` logs failed operations only; ``info`` (default,
also ``verbose``) one line per operation; ``debug`` adds the config and the
result. One line per operation:

  2026-11-25T03:50:01.123Z loopback ADD net=mynet cid=abc ifname=eth0 ok 3.1ms pid=4242

Every value that comes from a config or the environment is escaped: a
field that is not plain ``[A-Za-z0-9._:/@+=%,-]`` text, the error message,
the config and the result are JSON strings/objects with every non-ASCII
or control character, space (in fields) and shell metacharacter
(``$ ` ; | & < > ( ) ' !``) written as a \\uXXXX escape: a line is always
one line, and no shell reading it would run anything.
"""

from . import posixos as os
import time

from . import jsontext, nodeconf
from .nodeconf import CONF_FILE, warn

LEVELS = {"panic": 0, "error": 0, "info": 1, "verbose": 1, "debug": 2}
DEFAULT_FILE = "pycni.log"

_FILE_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
               | os.O_CLOEXEC | os.O_NOCTTY)
_SHELL = str.maketrans({c: f"\\u{ord(c):04x}" for c in "$`;|&<>()'!"})
_SAFE_CHARS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
               "._:/@+=%,-")


# This operation's warnings (`warning`), also written on its log line.
_warnings: list[str] = []


def warning(message: str) -> None:
    """Something accepted for compatibility that the operator should see
    (a config value the reference takes that we would rather refuse): one
    line on stderr now, and a `warnings=` field on the operation's log
    line (logged at every level)."""
    if message not in _warnings:
        _warnings.append(message)
    warn(message)


class OperationLog:
    def __init__(self, directory: str, level: str, started: float | None = None,
                 name: str = DEFAULT_FILE):
        self.directory = directory
        self.name = name
        self.level = LEVELS.get((level or "info").lower(), 1)
        self.started = time.perf_counter() if started is None else started
        del _warnings[:]    # one log per operation (skel.run makes it first)

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.name)

    @classmethod
    def from_config(cls, config: dict | None, env,
                    started: float | None = None) -> "OperationLog | None":
        config = config or {}
        requested = _get(config, "logFile")
        directory, node_level = log_directory(env)
        if not directory:
            if requested:
                warn(f"logFile {quote(requested)} ignored: no log directory is set "
                     f"(PYCNI_LOG_DIR or logDir in {CONF_FILE})")
            return None
        name = DEFAULT_FILE
        for source, value in (("PYCNI_LOG_FILE", env.get("PYCNI_LOG_FILE", "")),
                              ("logFile", requested)):
            if not value:
                continue
            confined = file_in(directory, value)
            if confined is None:
                warn(f"{source} {quote(value)} ignored: not a file in the log directory "
                     f"{quote(directory)}")
            else:
                name = confined
        level = _get(config, "logLevel") or env.get("PYCNI_LOG_LEVEL", "") or node_level
        return cls(directory, level, started, name)

    def finish(self, plugin: str, command: str, net: str, cid: str, ifname: str,
               error=None, config=None, result=None) -> None:
        if error is None and self.level < 1 and not _warnings:
            return
        try:
            line = self.format(plugin, command, net, cid, ifname, error, config, result)
        except (ValueError, RecursionError) as exc:   # never fail the operation
            line = self.format(plugin, command, net, cid, ifname, error) + \
                f" unloggable={quote(str(exc))}"
        try:
            fd = open_log(self.directory, self.name)
        except OSError as exc:
            warn(f"cannot write log {quote(self.path)}: {quote(exc.strerror or str(exc))}")
            return
        try:
            os.write(fd, (line + "\n").encode())
        except OSError as exc:
            warn(f"cannot write log {quote(self.path)}: {quote(exc.strerror or str(exc))}")
        finally:
            os.close(fd)

    def format(self, plugin, command, net, cid, ifname, error=None, config=None,
               result=None) -> str:
        elapsed = (time.perf_counter() - self.started) * 1000
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
            f".{int(now * 1000) % 1000:03d}Z"
        outcome = "ok" if error is None else \
            f"error code={field(str(error.code))} msg={quote(str(error))}"
        line = (f"{stamp} {field(plugin)} {field(command)} net={field(net)} "
                f"cid={field(cid)} ifname={field(ifname)} {outcome} {elapsed:.1f}ms "
                f"pid={os.getpid()}")
        if _warnings:
            line += f" warnings={quote(_warnings)}"
        if self.level >= 2:
            if config is not None:
                line += f" config={quote(config)}"
            if result is not None:
                line += f" result={quote(result)}"
        return line


def quote(value) -> str:
    """`value` as compact JSON, ASCII only, shell metacharacters escaped:
    one line, and inert if a shell ever reads it."""
    return jsontext.dumps(value, separators=(",", ":")).translate(_SHELL)


def field(value) -> str:
    """One space-free token: plain text as is, anything else quoted."""
    text = value if isinstance(value, str) else str(value)
    if not text:
        return "-"
    if not text.strip(_SAFE_CHARS):
        return text
    return quote(text).replace(" ", "\\u0020")


def file_in(directory: str, value) -> str | None:
    """The file name `value` names inside `directory`, or None if it names
    anything else: a plain name, or an absolute path whose parent is
    exactly `directory`."""
    if not isinstance(value, str) or "\0" in value:
        return None
    if "/" in value:
        head, name = os.path.split(value)
        if not value.startswith("/") or head != directory:
            return None
    else:
        name = value
    if name in ("", ".", "..") or len(name.encode(errors="replace")) > 255:
        return None
    return name


def log_directory(env) -> tuple[str, str]:
    """(log directory, default level) the node's operator chose, or ("", "")."""
    directory = env.get("PYCNI_LOG_DIR", "")
    level = ""
    if not directory:
        directory, level = node_conf()
        if not directory:
            return "", ""
        source = f"logDir in {CONF_FILE}"
    else:
        source = "PYCNI_LOG_DIR"
    if not directory.startswith("/") or "\0" in directory:
        warn(f"{source} {quote(directory)} ignored: not an absolute path")
        return "", ""
    return os.path.normpath(directory), level


def node_conf() -> tuple[str, str]:
    """logDir and logLevel of /etc/cni/pycni.conf (see nodeconf): ("", "")
    when absent or not to be trusted."""
    return nodeconf.get_str("logDir"), nodeconf.get_str("logLevel")


def open_log(directory: str, name: str) -> int:
    """An fd appending to regular file `name` of `directory`; OSError if the
    directory is not root's alone or the file is anything but a regular
    file (a symlink, FIFO, device...). Never follows a symlink, never
    blocks, creates the file 0600 whatever the umask."""
    import errno
    import _stat as stat
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(dfd)
        if not os.held_only_by(st, (0,)):
            raise OSError(errno.EPERM, "log directory must be owned by root and not "
                          "writable by group or others")
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:   # not even opened: opening a device can have effects
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
        mask = os.umask(0o077)
        try:
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=dfd)
        finally:
            os.umask(mask)
    finally:
        os.close(dfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def _get(config: dict, name: str) -> str:
    from .decode import lookup
    value = lookup(config, name, "")
    return value if isinstance(value, str) else ""
