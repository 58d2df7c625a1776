"""The plugin skeleton: environment, stdin, version negotiation, dispatch.

A plugin is a `Plugin` subclass (config model plus add/delete/check and
optionally gc/status); its executable calls `skel.main(MyPlugin())`.

Behaviour follows the spec and, where the spec is vague, the reference
pkg/skel: which variables each command needs, the container-ID and
interface-name rules, VERSION without reading stdin, error objects on
stdout with exit code 1, results printed in the config's cniVersion.
"""

import io
from . import posixos as os
import sys

from . import jsontext
from . import version as versions
from .args import CniArgs, parse_cni_args
from .errors import (CNIError, DECODING_FAILURE, INCOMPATIBLE_VERSION, INTERNAL,
                     INVALID_ENVIRONMENT, INVALID_NETNS, INVALID_NETWORK_CONFIG,
                     IO_FAILURE)
from .result import Result, parse_result

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
# Required variables per command, as the reference skel requires them.
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}
MAX_ID_LEN = 255
IFNAMSIZ = 16


def is_valid_id(text: str) -> bool:
    r"""The reference's rule for container IDs and network names (they end
    up in file names: no path separators, no dot-dot), regexp
    `[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z` (no newline at the end), checked
    without loading `re`: an ASCII letter or digit, then ASCII letters,
    digits, `_`, `.` and `-`. On ASCII text str.isalnum is exactly
    [a-zA-Z0-9]."""
    return (text.isascii() and text[:1].isalnum()
            and text.replace("_", "a").replace(".", "a").replace("-", "a").isalnum())


class Request:
    """One plugin invocation: environment plus the decoded stdin config."""

    def __init__(self, command: str, env, stdin: bytes = b"", config: dict | None = None):
        self.command = command
        self.env = env
        self.container_id = env.get("CNI_CONTAINERID", "")
        self.netns = env.get("CNI_NETNS", "")
        self.ifname = env.get("CNI_IFNAME", "")
        self.args_text = env.get("CNI_ARGS", "")
        self.path = [p for p in env.get("CNI_PATH", "").split(os.pathsep) if p]
        self.stdin = stdin
        self.config = config or {}
        self.cni_version = versions.DEFAULT
        self.network_name = ""
        self._args = None
        self._prev = None       # (cni_version, parsed prevResult or its CNIError)

    @property
    def cni_args(self) -> CniArgs:
        """CNI_ARGS parsed (K=V;K=V); an invalid pair raises code 4."""
        if self._args is None:
            self._args = parse_cni_args(self.args_text)
        return self._args

    @property
    def prev_result(self) -> Result | None:
        """The config's prevResult parsed (any version, once per request),
        None without one; a malformed one raises CNIError (code 6), every
        time it is asked for. On DEL catch that (or use prev_addresses):
        DEL must not fail on what only ADD needs."""
        if self._prev is None or self._prev[0] != self.cni_version:
            from .decode import lookup
            raw = lookup(self.config, "prevResult")
            try:
                parsed = parse_result(raw, self.cni_version) if raw else None
            except CNIError as err:
                parsed = err
            self._prev = (self.cni_version, parsed)
        parsed = self._prev[1]
        if isinstance(parsed, CNIError):
            raise parsed
        return parsed

    def prev_addresses(self) -> list[str]:
        """The CIDRs of prevResult's ips; [] without a prevResult or when
        it does not parse (DEL's fallback, which must not fail on it)."""
        try:
            prev = self.prev_result
        except CNIError:
            return []
        return [ip.address for ip in prev.ips] if prev else []

    @property
    def valid_attachments(self) -> list:
        """GC: the attachments to keep (cni.dev/valid-attachments)."""
        from .config import ValidAttachment
        from .decode import decode
        from .decode import lookup
        raw = lookup(self.config, "cni.dev/valid-attachments")
        if raw is None:
            raw = lookup(self.config, "cni.dev/attachments") or []
        if not isinstance(raw, list):
            raise CNIError(INVALID_NETWORK_CONFIG,
                           "cni.dev/valid-attachments must be a list")
        return [decode(ValidAttachment, a, f"cni.dev/valid-attachments[{i}]")
                for i, a in enumerate(raw)]


class Plugin:
    """Base class: override what the plugin supports.

    Not overriding gc/status makes them succeed silently, which is what
    the reference plugins do for commands they do not implement.
    """

    name = "plugin"
    about = ""
    supported_versions = versions.ALL

    def add(self, req: Request) -> Result:
        """ADD: create and configure; return the Result (skel prints it in
        the config's version). Raise CNIError to fail; undo what was done
        first, a failed ADD must leave nothing."""
        raise CNIError(INTERNAL, f"{self.name} does not implement ADD")

    def delete(self, req: Request) -> None:
        """DEL: remove what ADD made. Must succeed when it is already gone
        (twice, netns gone: catch netns.GONE) and should not fail on config
        values only ADD needs (decode.lenient)."""
        raise CNIError(INTERNAL, f"{self.name} does not implement DEL")

    def check(self, req: Request) -> None:
        """CHECK (0.4.0 and later): raise CNIError if what ADD made (as
        prevResult describes it) is not in place; return None if it is."""
        raise CNIError(INTERNAL, f"{self.name} does not implement CHECK")

    def gc(self, req: Request) -> None:
        """GC (1.1.0): release what belongs to no attachment of
        `req.valid_attachments`. The default does nothing."""
        return None

    def status(self, req: Request) -> None:
        """STATUS (1.1.0): raise CNIError (codes 50/51) when the plugin
        cannot serve ADD now. The default reports ready."""
        return None


def main(plugin: Plugin) -> None:
    """The plugin executable's entry point: serve the call, then leave
    with `os._exit`, skipping interpreter finalisation (tens of ms per
    call: module teardown, GC of everything still alive).

    That is safe because nothing is left for finalisation to do: every
    file a plugin writes (log, host-local store, tuning backup) is written
    with os.write and closed before `run` returns, there are no atexit
    handlers, threads or objects whose `__del__` writes; what remains is
    the buffered sys.stdout/sys.stderr, flushed by `finish`. Only the
    outermost process calls this: in-process delegation (invoke.py) calls
    `run`, which returns the code and never exits.
    """
    if sys.stdout is None:           # started with fd 1 closed: nowhere to answer
        finish(_stdout_gone("stdout is closed"))
    # fd 0 closed: read as empty input (VERSION needs none, the rest fail)
    stdin = sys.stdin.buffer if sys.stdin is not None else io.BytesIO()
    try:
        code = run(plugin, os.environ, stdin, sys.stdout)
    except BrokenPipeError:
        code = _stdout_gone()
    finish(code)


def finish(code: int) -> None:
    """Flush what the process printed and end it now with `code`."""
    for stream in _std_streams():
        try:
            stream.flush()
        except BrokenPipeError:
            if _is_stdout(stream):
                code = code or _stdout_gone()
            # stderr's reader went away: only diagnostics are lost
        except (OSError, ValueError):   # closed, or a full disk under a redirect
            code = code or (1 if _is_stdout(stream) else 0)
    os._exit(code)


def _std_streams() -> list:
    streams = []
    for stream in (sys.stdout, sys.__stdout__, sys.stderr, sys.__stderr__):
        if stream is not None and all(stream is not s for s in streams):
            streams.append(stream)
    return streams


def _is_stdout(stream) -> bool:
    try:
        return stream.fileno() == 1
    except (OSError, ValueError, AttributeError):
        return stream is sys.stdout


def _stdout_gone(why: str = "stdout closed before the result was written (EPIPE)") -> int:
    """EPIPE on stdout: the runtime stopped reading, so the result (or
    error) is lost and the call fails with 1. stdout is pointed at
    /dev/null so that what is still buffered drains there instead of
    raising again, and stderr says why. (The reference, a Go program,
    is killed by SIGPIPE instead.)"""
    try:
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
    try:
        os.write(2, f"pycni: {why}\n".encode())
    except OSError:
        pass
    return 1


def run(plugin: Plugin, env, stdin, stdout) -> int:
    """Serve one invocation; return the process exit code."""
    command = env.get("CNI_COMMAND", "")
    if not command:
        sys.stderr.write(about_text(plugin))
        return 0
    if command == "VERSION":
        stdout.write(versions.answer(plugin.supported_versions))
        return 0

    req = None
    # With a log directory set by the node (log.py), failures that happen
    # before the config is read are logged too; a logFile in the config
    # (a file of that directory) takes over once it is.
    log = _operation_log(None, env)
    cni_version = versions.CURRENT
    try:
        if command not in COMMANDS:
            raise CNIError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
        validate_env(command, env)
        try:
            data = stdin.read()
        except OSError as exc:
            raise CNIError(IO_FAILURE, "error reading from stdin", str(exc)) from None
        config = parse_config(data)
        log = _operation_log(config, env, started=log.started if log else None)
        req = Request(command, env, data, config)
        req.network_name = _get(config, "name")
        requested = _get(config, "cniVersion")
        if requested in versions.ALL:
            cni_version = requested   # errors speak the config's version
        req.cni_version = cni_version = negotiate(config, plugin.supported_versions)
        check_command_allowed(command, cni_version)
        if command in ("ADD", "DEL") and req.netns:
            refuse_own_netns(req.netns, env)
        output = dispatch(plugin, req)
    except CNIError as err:
        _print_error(stdout, err, cni_version)
        _log(log, plugin, command, req, env, err)
        return 1
    except Exception as exc:  # a bug or an unexpected OS failure
        import traceback
        traceback.print_exc(file=sys.stderr)
        err = CNIError(INTERNAL, str(exc) or type(exc).__name__)
        _print_error(stdout, err, cni_version)
        _log(log, plugin, command, req, env, err)
        return 1
    if output is not None:
        stdout.write(jsontext.dumps(output, indent=4))
    _log(log, plugin, command, req, env, None, output)
    return 0


def dispatch(plugin: Plugin, req: Request) -> dict | None:
    if req.command == "ADD":
        result = plugin.add(req)
        if result is None:
            raise CNIError(INTERNAL, f"{plugin.name} returned no result")
        return result.to_dict(req.cni_version)
    handler = {"DEL": plugin.delete, "CHECK": plugin.check,
               "GC": plugin.gc, "STATUS": plugin.status}[req.command]
    handler(req)
    return None


def validate_env(command: str, env) -> None:
    missing = [name for name in REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise CNIError(INVALID_ENVIRONMENT,
                       f"required env variables [{','.join(missing)}] missing")
    cid = env.get("CNI_CONTAINERID", "")
    if "CNI_CONTAINERID" in REQUIRED_ENV[command]:
        validate_container_id(cid)
    if "CNI_IFNAME" in REQUIRED_ENV[command]:
        validate_ifname(env.get("CNI_IFNAME", ""))


def validate_container_id(cid: str) -> None:
    if len(cid) > MAX_ID_LEN:
        raise CNIError(INVALID_ENVIRONMENT, "containerID is too long",
                       f"{len(cid)} characters, at most {MAX_ID_LEN}")
    if not is_valid_id(cid):
        raise CNIError(INVALID_ENVIRONMENT, "invalid characters in containerID", cid)


def validate_ifname(name: str) -> None:
    problem = None
    if not name:
        problem = "interface name is empty"
    elif not _is_utf8(name):
        problem = "interface name is not valid UTF-8"
    elif len(name.encode()) >= IFNAMSIZ:
        problem = f"interface name is too long (max {IFNAMSIZ - 1} bytes)"
    elif name in (".", ".."):
        problem = "interface name is . or .."
    elif any(c in name for c in "/:") or any(c.isspace() for c in name):
        problem = "interface name contains / or : or whitespace characters"
    if problem:
        raise CNIError(INVALID_ENVIRONMENT, problem, name)


def _is_utf8(text: str) -> bool:
    """False for environment text that was not UTF-8 (os.environ keeps
    such bytes as lone surrogates, which nothing can encode later)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_config(data: bytes) -> dict:
    from .decode import loads
    config = loads(data)   # Go's rules: order, depth, no NaN; DECODING_FAILURE
    if not isinstance(config, dict):
        raise CNIError(DECODING_FAILURE, "error unmarshalling network config",
                       "network config is not a JSON object")
    name = _get(config, "name")
    if not name:
        raise CNIError(INVALID_NETWORK_CONFIG, "missing network name")
    if not isinstance(name, str) or len(name) > MAX_ID_LEN or not is_valid_id(name):
        raise CNIError(INVALID_NETWORK_CONFIG, "invalid characters found in network name",
                       str(name))
    return config


def _get(config: dict, name: str):
    """Top-level keys match case-insensitively, as Go decodes them."""
    from .decode import lookup
    return lookup(config, name)


def negotiate(config: dict, supported) -> str:
    """The config's cniVersion if we speak it; a missing one means 0.1.0."""
    version = _get(config, "cniVersion") or versions.DEFAULT
    if not isinstance(version, str):
        raise CNIError(DECODING_FAILURE, "cniVersion must be a string", repr(version))
    if version not in supported:
        listed = " ".join(f'"{v}"' for v in supported)
        raise CNIError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f'config is "{version}", plugin supports [{listed}]')
    return version


def about_text(plugin: Plugin) -> str:
    """What a plugin run without CNI_COMMAND prints on stderr: its name and
    pycni's version, as the reference prints "CNI bridge plugin v1.9.1",
    then the protocol versions. (A plugin's own `about` is not used: the
    version must be pycni's.)"""
    from . import __version__
    return (f"CNI {plugin.name} plugin pycni v{__version__}\n"
            f"CNI protocol versions supported: {', '.join(plugin.supported_versions)}\n")


def check_command_allowed(command: str, cni_version: str) -> None:
    if command == "CHECK" and not versions.has_check(cni_version):
        raise CNIError(INCOMPATIBLE_VERSION, "config version does not allow CHECK")
    if command in ("GC", "STATUS") and not versions.has_gc_and_status(cni_version):
        raise CNIError(INCOMPATIBLE_VERSION, f"config version does not allow {command}")


def refuse_own_netns(path: str, env) -> None:
    """Acting on our own namespace as if it were a container's is a runtime
    bug that would wreck the host's networking; the reference refuses it
    unless CNI_NETNS_OVERRIDE is set."""
    from . import netns
    if env.get("CNI_NETNS_OVERRIDE", "").upper() in ("1", "TRUE"):
        return
    if netns.is_current(path):
        raise CNIError(INVALID_NETNS,
                       f'netns "{path}" is the plugin\'s own network namespace',
                       "set CNI_NETNS_OVERRIDE=1 if this is intended")


# nodeconf.CONF_FILE, named here so that a node without it never loads
# nodeconf or log (tests/unit/test_skel.py checks they agree; where
# nodeconf is loaded, its value counts)
NODE_CONF = "/etc/cni/pycni.conf"


def _operation_log(config, env, started=None):
    """log.OperationLog.from_config; pycni.log (and nodeconf) load only
    when a log directory may be set (PYCNI_LOG_DIR, or the node's
    pycni.conf exists) or the config names a logFile (to warn that it is
    ignored): most nodes log nothing, and that code is paid per call."""
    loaded = sys.modules.get(__package__ + ".nodeconf")
    node_conf = loaded.CONF_FILE if loaded is not None else NODE_CONF
    if not (env.get("PYCNI_LOG_DIR") or os.path.lexists(node_conf)
            or (config and _get(config, "logFile"))):
        return None
    from .log import OperationLog
    return OperationLog.from_config(config, env, started=started)


def _print_error(stdout, err: CNIError, cni_version: str) -> None:
    stdout.write(jsontext.dumps(err.to_dict(cni_version), indent=4))


def _log(log, plugin, command, req, env, err, output=None):
    if log is None:
        return
    log.finish(plugin.name, command, req.network_name if req else "",
               env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""),
               err, req.config if req else None, output)
