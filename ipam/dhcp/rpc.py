"""The plugin <-> daemon protocol on the daemon's unix socket.

One request per connection:
  daemon -> plugin   banner line  b"PYCNI-DHCP/1 <seconds>\\n"  (the longest
                     the daemon takes to answer one request)
  plugin -> daemon   one JSON object, newline-terminated:
                     {"method": "Allocate"|"Check"|"Release"|"Status",
                      "containerID", "netns", "ifName", "args", "config"}
  daemon -> plugin   one JSON object line: {"result": {...}} (a 1.1.0
                     result, or {} for Release/Status) or
                     {"error": {"code", "msg", "details"}}

The plugin reads the banner before it sends a byte: a socket that is not
our daemon's (ipam.daemonSocketPath is chosen by whoever writes the
config) never receives the request, and a peer that never greets is left
after BANNER_TIMEOUT. The reference speaks Go net/rpc over HTTP here; the
two cannot talk to each other (each `dhcp` executable pairs with its own
daemon).

Plugin side: `_socket` and pycni.jsontext only (the plugin's import set).
"""

import _socket

from pycni.errors import CNIError, INTERNAL, PLUGIN_NOT_AVAILABLE
from pycni import jsontext

BANNER = b"PYCNI-DHCP/1 "
BANNER_TIMEOUT = 5.0
MAX_MESSAGE = 1 << 20
MAX_WAIT = 900.0            # the plugin never waits longer than this for an answer


class Unreachable(CNIError):
    def __init__(self, path: str, why: str):
        super().__init__(PLUGIN_NOT_AVAILABLE,
                         f"error dialing DHCP daemon: dial unix {path}: {why}")


def read_line(sock, deadline_s: float, limit: int = MAX_MESSAGE) -> bytes:
    """Bytes up to and including the first newline (or EOF); `sock` has
    its timeout set by the caller."""
    buf = b""
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ValueError("message too long")
    return buf


def call(path: str, request: dict) -> dict:
    """Send `request` to the daemon at `path`; its result dict, or its
    error raised as CNIError. Unreachable (code 50) when nothing that
    speaks our protocol listens there."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(BANNER_TIMEOUT)
        try:
            sock.connect(path)
            banner = read_line(sock, BANNER_TIMEOUT, 64)
        except OSError as exc:
            raise Unreachable(path, _why(exc)) from None
        except ValueError:
            raise Unreachable(path, "not a pycni dhcp daemon") from None
        if not banner.startswith(BANNER) or not banner.endswith(b"\n"):
            raise Unreachable(path, "not a pycni dhcp daemon")
        try:
            wait = min(float(banner[len(BANNER):-1]), MAX_WAIT)
        except ValueError:
            raise Unreachable(path, "not a pycni dhcp daemon") from None
        sock.settimeout(wait + 5.0)
        try:
            sock.sendall(jsontext.dumps(request).encode() + b"\n")
            reply = read_line(sock, wait)
        except (OSError, ValueError) as exc:
            raise CNIError(INTERNAL, f"error calling DHCP.{request.get('method')}: "
                           f"{_why(exc) if isinstance(exc, OSError) else exc}") from None
    finally:
        sock.close()
    try:
        answer = jsontext.loads(reply.decode())
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CNIError(INTERNAL, f"error calling DHCP.{request.get('method')}: "
                       "the daemon closed the connection without an answer")
    if "error" in answer:
        err = answer["error"] if isinstance(answer["error"], dict) else {}
        code = err.get("code")
        raise CNIError(code if isinstance(code, int) else INTERNAL,
                       str(err.get("msg", "")), str(err.get("details", "")))
    result = answer.get("result")
    return result if isinstance(result, dict) else {}


def _why(exc: OSError) -> str:
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout":
        return "no answer (timed out)"
    if exc.strerror:
        return f"connect: {exc.strerror.lower()}" if exc.errno else exc.strerror
    return str(exc) or type(exc).__name__
