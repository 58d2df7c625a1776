"""Settings only the node's operator (root) makes, never a network config.

A network config is written by people who are not root (Multus tenants,
local users), so what a plugin may write outside its own netns — a log
file, a state store — is bounded by settings root makes:

- the runtime's environment: ``PYCNI_LOG_DIR``, ``PYCNI_LOG_LEVEL``,
  ``PYCNI_STATE_DIRS`` (absolute directories separated by ``:``);
- ``/etc/cni/pycni.conf``, a small JSON object such as
  ``{"logDir": "/var/log/pycni", "logLevel": "info",
  "stateDirs": ["/srv/cni-state"]}``, honoured only if it is a regular file
  (not a symlink) owned by root and not writable by group or others;
  otherwise it is ignored with one warning on stderr. Read at most once per
  process; when absent, the whole cost is one failed open.

State directories: a config's ``dataDir`` (host-local, tuning) must be one
of, or lie below, ``DEFAULT_STATE_DIRS`` (where the reference plugins keep
their state) or a directory root listed in ``stateDirs`` /
``PYCNI_STATE_DIRS``.
"""

from . import posixos as os
from . import jsontext

CONF_FILE = "/etc/cni/pycni.conf"
# Where the reference plugins and libcni keep state by default.
DEFAULT_STATE_DIRS = ("/var/lib/cni", "/run/cni", "/var/run/cni")

_cache: dict | None = None
_warned: set = set()


def warn(message: str) -> None:
    """One line on stderr (never stdout), once per process."""
    if message in _warned:
        return
    _warned.add(message)
    try:
        os.write(2, f"pycni: {message}\n".encode())
    except OSError:
        pass


def settings() -> dict:
    """The trusted contents of CONF_FILE ({} when absent or untrusted)."""
    global _cache
    if _cache is None:
        _cache = _read(CONF_FILE)
    return _cache


def get_str(name: str) -> str:
    value = settings().get(name, "")
    if not isinstance(value, str):
        warn(f"{name} in {CONF_FILE} ignored: must be a string")
        return ""
    return value


def _read(path: str) -> dict:
    import _stat as stat
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                     | os.O_NOCTTY)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        reason = "it is a symlink" if os.path.islink(path) else (exc.strerror or str(exc))
        warn(f"{path} ignored: {reason}")
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            reason = "not a regular file"
        elif st.st_uid != 0:
            reason = "not owned by root"
        elif os.others_can_write(st):
            reason = "writable by group or others"
        else:
            reason = ""
            data = os.read(fd, 65536)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    finally:
        os.close(fd)
    if reason:
        warn(f"{path} ignored: {reason}")
        return {}
    try:
        conf = jsontext.loads(data)
    except ValueError as exc:
        warn(f"{path} ignored: not JSON ({jsontext.dumps(str(exc))})")
        return {}
    if not isinstance(conf, dict):
        warn(f"{path} ignored: not a JSON object")
        return {}
    return conf


# --- state directories ----------------------------------------------------------

def state_dirs(env) -> list[str]:
    """The directories below which a config may place a store."""
    dirs = list(DEFAULT_STATE_DIRS)
    listed = settings().get("stateDirs", [])
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        warn(f"stateDirs in {CONF_FILE} ignored: must be a list of strings")
        listed = []
    dirs += listed
    dirs += [d for d in env.get("PYCNI_STATE_DIRS", "").split(":") if d]
    return [os.path.normpath(d) for d in dirs if d.startswith("/") and "\0" not in d]


def state_dir_allowed(path: str, env) -> bool:
    """True if `path` (a config's dataDir) is a state directory root allows:
    absolute, and equal to or below one of `state_dirs`, judged on the real
    path (symlinks of existing components resolved, `..` applied), so
    neither `..` nor a symlink met on the way can lead out of them."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        return False
    path = os.path.realpath(path)
    for root in state_dirs(env):
        root = os.path.realpath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


def require_state_dir(path, env, key: str = "dataDir") -> None:
    """Raise refuse_state_dir(...) unless `path` is an allowed state directory."""
    if not state_dir_allowed(path, env):
        raise refuse_state_dir(path, key)


def refuse_state_dir(path, key: str = "dataDir"):
    """The CNIError for a store location root has not allowed (code 7)."""
    from .errors import CNIError, INVALID_NETWORK_CONFIG
    return CNIError(INVALID_NETWORK_CONFIG,
                    f"{key} {jsontext.dumps(path)} is not below a state directory the node "
                    f"allows",
                    f"allowed: {', '.join(DEFAULT_STATE_DIRS)}, or a directory listed in "
                    f"stateDirs of {CONF_FILE} or in PYCNI_STATE_DIRS")
