"""Running a plugin executable the way a runtime does (the reference's
pkg/invoke exec.go): environment plus config on stdin, the result or
error object read from its stdout, its stderr passed through.

The runtime side of the plugin protocol: cnitool (lib/cnitool/runtime.py)
and a delegate that is not one of this installation's own plugins
(pycni.invoke) run through here. Finding the executable first is
`pycni.execpath.find_in_path`; delegating from inside a plugin (IPAM, in
process where it can) is `pycni.invoke`.

Programs run with spawn.run (posix_spawn, no `subprocess` import).
"""

from . import jsontext
from .errors import CNIError, INTERNAL


def exec_plugin(binary: str, stdin: bytes, env: dict) -> bytes:
    """Run `binary` (found with execpath.find_in_path) with environment
    `env` and `stdin`; return its stdout, or raise the CNIError it printed
    (`error_from_output`). Its stderr goes to ours."""
    from .spawn import run
    try:
        returncode, stdout, stderr = run([binary], env, stdin)
    except OSError as exc:
        raise CNIError(INTERNAL, f"failed to run plugin {binary}", str(exc)) from None
    if stderr:
        import sys
        sys.stderr.buffer.write(stderr)
        sys.stderr.flush()
    if returncode != 0:
        raise error_from_output(stdout, stderr, returncode)
    return stdout


def error_from_output(stdout: bytes, stderr: bytes, returncode: int | None = None) -> CNIError:
    """The error a failed plugin reported: its error object on stdout, else
    its stderr, as the reference runtime (invoke) builds it."""
    if stdout.strip():
        try:
            data = jsontext.loads(stdout)
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
