"""Delegating from inside a plugin: IPAM (the reference's pkg/invoke
delegate.go).

A plugin that configures an interface runs its IPAM plugin with its own
environment (CNI_COMMAND replaced) and its whole config on stdin:
`delegate_add` returns the delegate's Result, `ipam_add` and
`ipam_allocation` release it again when the rest of ADD fails. The
delegate is found on CNI_PATH as a runtime finds it
(execpath.find_in_path) and, when it is one of this installation's own
launchers, served in this process (`in_process_module`, `run_in_process`);
anything else runs as its own process, as a runtime runs a plugin
(pycni.pluginexec).
"""

from . import posixos as os

from . import jsontext
from .errors import CNIError, DECODING_FAILURE
from .result import Result, parse_result


def parse_result_output(stdout: bytes, default_version: str) -> Result:
    """A delegate's stdout as a Result (`default_version` for a result
    without cniVersion); CNIError (code 2) when it is not one."""
    try:
        data = jsontext.loads(stdout)
    except ValueError as exc:
        raise CNIError(DECODING_FAILURE, "failed to parse plugin result", str(exc)) from None
    return parse_result(data, default_version)


def find_in_path(plugin_type: str, path: list[str]) -> str:
    """The plugin executable `plugin_type` on CNI_PATH `path`, found as a
    runtime finds it (execpath.find_in_path: no path separators, only
    trusted absolute directories); CNIError (code 7) when there is none."""
    from .execpath import find_in_path as find
    return find(plugin_type, path)


def delegate(req, plugin_type: str, command: str) -> bytes:
    """Run delegate `plugin_type` with our own env and stdin (whole config)."""
    binary = find_in_path(plugin_type, req.path)
    env = dict(req.env)
    env["CNI_COMMAND"] = command
    module = in_process_module(binary, plugin_type, env)
    if module is not None:
        return run_in_process(module, req.stdin, env)
    from .pluginexec import exec_plugin
    return exec_plugin(binary, req.stdin, env)


def in_process_module(binary: str, plugin_type: str, env) -> str | None:
    """The pycni module behind `binary`, if that file runs exactly the code
    this process runs; then the delegate can be served in-process.

    A delegate is another fresh Python process otherwise: ~50 ms, most of a
    bridge ADD. Safe only when the result is the same: `binary` must be the
    launcher `pycni install` writes for this very installation (same Python,
    same import path), or a plugin of this very PyInstaller bundle.
    PYCNI_EXEC_DELEGATES=1 turns this off.
    """
    from .registry import PLUGINS
    module = PLUGINS.get(plugin_type)
    if module is None or env.get("PYCNI_EXEC_DELEGATES") == "1":
        return None
    import sys
    if getattr(sys, "frozen", False):
        ours = os.path.dirname(os.path.realpath(sys.executable))
        return module if os.path.dirname(os.path.realpath(binary)) == ours else None
    try:
        # non-blocking: the file may have been swapped for a FIFO since
        # find_in_path looked at it
        fd = os.open(binary, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        from _stat import S_ISREG
        if not S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, 8192)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not head.startswith(b"#!"):
        return None
    from .launcher import launcher_text
    text = launcher_text(plugin_type, os.path.dirname(os.path.abspath(binary)))
    return module if head == text.encode() else None


def run_in_process(module_name: str, stdin: bytes, env: dict) -> bytes:
    """Serve a delegate call with the plugin's own skel.run, as its process
    would: same environment and stdin, its stdout captured."""
    import io
    from . import skel
    module = __import__(module_name, fromlist=("_",))   # importlib's package costs ~1 ms more
    plugin_cls = next(v for v in vars(module).values()
                      if isinstance(v, type) and issubclass(v, skel.Plugin)
                      and v is not skel.Plugin and v.__module__ == module_name)
    out = io.StringIO()
    code = skel.run(plugin_cls(), env, io.BytesIO(stdin), out)
    stdout = out.getvalue().encode()
    if code != 0:
        from .pluginexec import error_from_output
        raise error_from_output(stdout, b"", code)
    return stdout


def delegate_add(req, plugin_type: str) -> Result:
    """ADD of delegate `plugin_type` (an IPAM plugin) with this call's
    environment and config; its Result (parsed in the config's version),
    or its CNIError raised. Found on CNI_PATH as a runtime finds it; a
    pycni launcher of this very installation is served in-process."""
    return parse_result_output(delegate(req, plugin_type, "ADD"), req.cni_version)


def delegate_del(req, plugin_type: str) -> None:
    """DEL of delegate `plugin_type`, as delegate_add runs it."""
    delegate(req, plugin_type, "DEL")


def delegate_check(req, plugin_type: str) -> None:
    """CHECK of delegate `plugin_type`, as delegate_add runs it."""
    delegate(req, plugin_type, "CHECK")


def delegate_gc(req, plugin_type: str) -> None:
    """GC of delegate `plugin_type`, as delegate_add runs it."""
    delegate(req, plugin_type, "GC")


def delegate_status(req, plugin_type: str) -> None:
    """STATUS of delegate `plugin_type`, as delegate_add runs it."""
    delegate(req, plugin_type, "STATUS")


def ipam_add(req, plugin_type: str, stack) -> Result:
    """ADD of IPAM delegate `plugin_type` (as delegate_add), its release
    (DEL) pushed on `stack` (an undo.Stack): kept if the command commits,
    released if it fails. A failed ADD pushes nothing."""
    result = delegate_add(req, plugin_type)
    stack.push(delegate_del, req, plugin_type, what="releasing the IPAM allocation")
    return result


class ipam_allocation:
    """ADD an IPAM allocation and release it if the rest of ADD fails.

        with invoke.ipam_allocation(req, conf.ipam.type) as result:
            ...configure the interface with result...

    Leaving the block normally keeps the allocation. A plugin with more
    to undo than the allocation uses ipam_add with its undo.Stack.
    """

    def __init__(self, req, plugin_type: str):
        from .undo import Stack
        self.req = req
        self.plugin_type = plugin_type
        self._stack = Stack("pycni")

    def __enter__(self) -> Result:
        return ipam_add(self.req, self.plugin_type, self._stack)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._stack.commit()
        self._stack.__exit__(exc_type, exc, tb)
