"""Running other plugins: IPAM delegation and the runtime side (cnitool).

`find_in_path` refuses plugin types with path separators (CVE-2021-20206:
``"type": "../../sbin/reboot"`` must not run /sbin/reboot).
`exec_plugin` runs a plugin the way a runtime does: environment plus
config on stdin, result or error object read from stdout, stderr passed
through.
"""

import json
import os

from .errors import CNIError, DECODING_FAILURE, INTERNAL, INVALID_NETWORK_CONFIG
from .result import Result, parse_result


def find_in_path(plugin_type: str, path: list[str]) -> str:
    if not plugin_type:
        raise CNIError(INVALID_NETWORK_CONFIG, "no plugin name provided")
    if "/" in plugin_type or "\\" in plugin_type or plugin_type in (".", ".."):
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f'invalid plugin name "{plugin_type}": must not contain a path separator')
    if not path:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f'no paths provided to find plugin "{plugin_type}"')
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        import stat
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    raise CNIError(INVALID_NETWORK_CONFIG,
                   f'failed to find plugin "{plugin_type}" in path [{" ".join(path)}]')


def exec_plugin(binary: str, stdin: bytes, env: dict) -> bytes:
    """Run `binary`; return its stdout, or raise the CNIError it printed."""
    import subprocess
    try:
        proc = subprocess.run([binary], input=stdin, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, close_fds=True)
    except OSError as exc:
        raise CNIError(INTERNAL, f"failed to run plugin {binary}", str(exc)) from None
    if proc.stderr:
        import sys
        sys.stderr.buffer.write(proc.stderr)
        sys.stderr.flush()
    if proc.returncode != 0:
        raise error_from_output(proc.stdout, proc.stderr, proc.returncode)
    return proc.stdout


def error_from_output(stdout: bytes, stderr: bytes, returncode: int | None = None) -> CNIError:
    """The error a failed plugin reported: its error object on stdout, else
    its stderr, as the reference runtime (invoke) builds it."""
    if stdout.strip():
        try:
            data = json.loads(stdout)
        except ValueError:
            data = None
        if isinstance(data, dict) and ("code" in data or "msg" in data):
            return CNIError.from_dict(data)
        return CNIError(INTERNAL, "netplugin failed with an unparsable error",
                        stdout.decode(errors="replace"))
    text = stderr.decode(errors="replace").strip()
    if not text:
        status = "" if returncode is None else f": exit status {returncode}"
        return CNIError(INTERNAL, f"netplugin failed with no error message{status}")
    return CNIError(INTERNAL, f'netplugin failed: "{text}"')


def parse_result_output(stdout: bytes, default_version: str) -> Result:
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise CNIError(DECODING_FAILURE, "failed to parse plugin result", str(exc)) from None
    return parse_result(data, default_version)


# --- delegation from inside a plugin (IPAM) -------------------------------

def delegate(req, plugin_type: str, command: str) -> bytes:
    """Run delegate `plugin_type` with our own env and stdin (whole config)."""
    binary = find_in_path(plugin_type, req.path)
    env = dict(req.env)
    env["CNI_COMMAND"] = command
    return exec_plugin(binary, req.stdin, env)


def delegate_add(req, plugin_type: str) -> Result:
    return parse_result_output(delegate(req, plugin_type, "ADD"), req.cni_version)


def delegate_del(req, plugin_type: str) -> None:
    delegate(req, plugin_type, "DEL")


def delegate_check(req, plugin_type: str) -> None:
    delegate(req, plugin_type, "CHECK")


def delegate_gc(req, plugin_type: str) -> None:
    delegate(req, plugin_type, "GC")


def delegate_status(req, plugin_type: str) -> None:
    delegate(req, plugin_type, "STATUS")


class ipam_allocation:
    """ADD an IPAM allocation and release it if the rest of ADD fails.

        with invoke.ipam_allocation(req, conf.ipam.type) as result:
            ...configure the interface with result...
    """

    def __init__(self, req, plugin_type: str):
        self.req = req
        self.plugin_type = plugin_type

    def __enter__(self) -> Result:
        return delegate_add(self.req, self.plugin_type)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            try:
                delegate_del(self.req, self.plugin_type)
            except CNIError as err:
                import sys
                sys.stderr.write(f"pycni: releasing IPAM allocation failed: {err}\n")
        return False
