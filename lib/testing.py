"""Test helpers for CNI plugins written with pycni (stable API, see docs/sdk.md).

Run a plugin in-process, the way its executable would serve one call, and
look at what it answered:

    from pycni import testing
    out = testing.run(MyPlugin(), "ADD", {"cniVersion": "1.0.0", "name": "n",
                                          "type": "mine", "prevResult": {...}})
    assert out.ok, out.error
    out.result.routes          # a pycni.result.Result in the config's version

`run` goes through `skel.run`, the very code the executable runs: the
environment checks, version negotiation, config parsing, the error object
and the exit status are the ones a runtime would see, without a process or
an installed launcher. It never exits and never touches the process's
environment: the plugin sees only the environment `run` builds.

The real-kernel fixtures (`world`, `plugin_dir`, `ref_dir`, from
netns-fixtures/, installed as `pycni.netns_fixtures`) are a pytest plugin
that pytest loads by itself once pycni is installed (entry point
`pytest11`); `World`, `Namespace` and `missing_prerequisite` are
re-exported here for tests that build worlds of their own.

Not on any plugin path: this module may import what it likes.
"""

import contextlib
import io
import json

from . import skel
from .errors import CNIError
from .model import dataclass
from .result import Result, parse_result

# World, Namespace, missing_prerequisite: served by __getattr__ below (F822).
__all__ = ["Outcome", "run", "call", "plugin_instance", "World", "Namespace",  # noqa: F822
           "missing_prerequisite"]  # noqa: F822


@dataclass
class Outcome:
    """What one in-process call answered.

    `code` is the exit status the executable would have ended with (0 on
    success), `stdout` what it printed there (the result or the error
    object; empty for DEL, CHECK, GC and STATUS on success), `stderr` its
    diagnostics (a traceback for a bug in the plugin)."""
    command: str
    cni_version: str
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the call succeeded (exit status 0)."""
        return self.code == 0

    @property
    def json(self):
        """stdout parsed as JSON; None when it is empty."""
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def result(self) -> Result | None:
        """An ADD's result as a `pycni.result.Result` (None when the call
        failed or printed nothing). Raises CNIError if it does not parse."""
        if not self.ok or not self.stdout.strip():
            return None
        return parse_result(self.json, self.cni_version)

    @property
    def error(self) -> CNIError | None:
        """The error object the call printed, as a CNIError (code, msg,
        details); None when it succeeded."""
        if self.ok:
            return None
        data = self.json if self.stdout.strip() else None
        if isinstance(data, dict):
            return CNIError.from_dict(data)
        return CNIError(999, "plugin failed without an error object", self.stderr)

    def raise_for_error(self) -> "Outcome":
        """Raise the call's CNIError if it failed; return self otherwise."""
        err = self.error
        if err is not None:
            raise err
        return self

    def __repr__(self) -> str:
        return f"<Outcome {self.command} code={self.code} stdout={self.stdout[:200]!r}>"


def plugin_instance(plugin) -> skel.Plugin:
    """A `skel.Plugin` from an instance, a Plugin subclass, a module or a
    module name (the one Plugin subclass the module defines)."""
    if isinstance(plugin, skel.Plugin):
        return plugin
    if isinstance(plugin, type) and issubclass(plugin, skel.Plugin):
        return plugin()
    module = plugin
    if isinstance(plugin, str):
        import importlib
        module = importlib.import_module(plugin)
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, skel.Plugin)
             and v is not skel.Plugin and v.__module__ == module.__name__]
    if len(found) != 1:
        raise ValueError(f"{module.__name__} defines {len(found)} skel.Plugin subclasses, "
                         "pass the one to run")
    return found[0]()


def run(plugin, command: str, config=None, *, container_id: str = "sdk-test",
        netns: str = "", ifname: str = "eth0", cni_path=(), args: str = "",
        env: dict | None = None, host_netns: str | None = None) -> Outcome:
    """Serve one call of `plugin` in this process; return its Outcome.

    `config` is the stdin: a dict (serialised as JSON), str or bytes (sent
    as is), or None (empty). The environment is CNI_COMMAND, CNI_CONTAINERID,
    CNI_NETNS, CNI_IFNAME, CNI_PATH (`cni_path`: a list of directories or
    one string) and CNI_ARGS from the keyword arguments, a PATH of the
    system directories, then `env` on top (a value of None removes a
    variable: ``env={"CNI_IFNAME": None}``). Nothing comes from
    os.environ. With `host_netns` (a path such as /run/netns/NAME) the
    call runs with this thread inside that network namespace, as a plugin
    runs in the node's namespace; it returns to its own afterwards.
    """
    instance = plugin_instance(plugin)
    if isinstance(cni_path, str):
        cni_path = [cni_path] if cni_path else []
    full = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_PATH": ":".join(str(p) for p in cni_path) or "/nonexistent",
            "CNI_ARGS": args,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    if config is None:
        data = b""
    elif isinstance(config, (bytes, bytearray)):
        data = bytes(config)
    elif isinstance(config, str):
        data = config.encode()
    else:
        data = json.dumps(config).encode()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        if host_netns is not None:
            from . import netns as _netns
            with _netns.entered(host_netns):
                code = skel.run(instance, full, io.BytesIO(data), out)
        else:
            code = skel.run(instance, full, io.BytesIO(data), out)
    return Outcome(command, _version_of(data), code, out.getvalue(), err.getvalue())


def call(plugin, command: str, config=None, **kwargs) -> Result | None:
    """`run`, then raise its CNIError if it failed; the ADD result (or
    None for the other commands) otherwise."""
    return run(plugin, command, config, **kwargs).raise_for_error().result


def _version_of(data: bytes) -> str:
    from . import version
    try:
        conf = json.loads(data) if data.strip() else {}
    except ValueError:
        return version.CURRENT
    v = conf.get("cniVersion") if isinstance(conf, dict) else None
    return v if isinstance(v, str) and v in version.ALL else version.DEFAULT


def __getattr__(name: str):
    if name in ("World", "Namespace"):
        from .netns_fixtures import netns_world
        return getattr(netns_world, name)
    if name == "missing_prerequisite":
        from .netns_fixtures import pytest_netns
        return pytest_netns.missing_prerequisite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
