"""The packet-filter tools, shared by every plugin that touches firewall
state (bridge ipMasq and macspoofchk, portmap, firewall).

- `find_tool`: iptables-save/-restore, ip6tables-*, nft on PATH, falling
  back to the sbin directories (runtimes often pass a minimal PATH).
- `run_tool`: one exec with stdin, failing with `ToolError`.
- `retrying`: the read-compute-apply loop. A batch computed from a read of
  the current state fails when another plugin changed that state in the
  meantime (created the shared chain first, removed the rule we meant to
  delete); it is then recomputed from a fresh read and applied again.
  `NetnsMutex` serialises these loops within one network namespace.
- `default_backend`: iptables when its tools are installed, else nftables
  (the reference's default choice).
"""

import os

from .errors import CNIError, INTERNAL

IPTABLES = "iptables"
NFTABLES = "nftables"
FALLBACK_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
# (save, restore) per IP family
IPT_TOOLS = {4: ("iptables-save", "iptables-restore"),
             6: ("ip6tables-save", "ip6tables-restore")}
ATTEMPTS = 5


def find_tool(name: str) -> str | None:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for directory in dirs + [d for d in FALLBACK_DIRS if d not in dirs]:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def iptables_usable(family: int = 4) -> bool:
    return all(find_tool(t) for t in IPT_TOOLS[family])


def default_backend() -> str:
    if iptables_usable(4):
        return IPTABLES
    return NFTABLES if find_tool("nft") else IPTABLES


def iptables_save(family: int, table: str) -> str:
    """`iptables-save -t TABLE` (ip6tables-save for family 6)."""
    return run_tool([IPT_TOOLS[family][0], "-t", table])


def iptables_restore(family: int, script: str) -> None:
    """Apply `script` as one batch, keeping other rules, under the xtables lock."""
    run_tool([IPT_TOOLS[family][1], "--noflush", "-w"], script)


class ToolError(CNIError):
    def __init__(self, tool: str, returncode: int, stderr: str):
        super().__init__(INTERNAL, f"{tool} failed (exit {returncode})", stderr.strip())
        self.stderr = stderr


def run_tool(argv: list[str], stdin: str = "") -> str:
    """Run a tool (looked up with find_tool); its stdout."""
    import subprocess
    path = find_tool(argv[0])
    if path is None:
        raise CNIError(INTERNAL, f"{argv[0]} not found")
    proc = subprocess.run([path, *argv[1:]], input=stdin.encode(), capture_output=True)
    if proc.returncode != 0:
        raise ToolError(argv[0], proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode(errors="replace")


class NetnsMutex:
    """Serialises read-compute-apply steps within one network namespace.

    The lock is an abstract unix socket name: abstract names are scoped to
    the network namespace (as the firewall tables are), vanish when the
    holder exits (also when killed) and leave no file behind. Waits up to
    `timeout` seconds, then proceeds without the lock (the retry loop still
    converges, only with more attempts).
    """

    NAME = b"\0pycni-xtables"

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.sock = None

    def __enter__(self):
        import errno
        import time
        import _socket as socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                sock.bind(self.NAME)
                self.sock = sock
                return self
            except OSError as err:
                if err.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    sock.close()
                    return self
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def retrying(step) -> None:
    """Run `step()` (read state, compute, apply) under the namespace's
    mutex until it applies; ToolError after ATTEMPTS failures."""
    for attempt in range(ATTEMPTS):
        try:
            with NetnsMutex():
                step()
            return
        except ToolError:
            if attempt == ATTEMPTS - 1:
                raise
            import time
            time.sleep(0.01 * (attempt + 1))


def run_nft(args: list[str], stdin: str = "", what: str = "run nft") -> tuple[int, str, str]:
    """Run nft; (exit code, stdout, stderr). For callers that tell a
    missing table apart from a failure by the exit code and message."""
    import subprocess
    nft = find_tool("nft")
    if nft is None:
        raise CNIError(INTERNAL, f"failed to {what}: nft not found")
    proc = subprocess.run([nft, *args], input=stdin.encode(), capture_output=True)
    return proc.returncode, proc.stdout.decode(errors="replace"), \
        proc.stderr.decode(errors="replace").strip()
