"""Applying portmap rules: the iptables and nftables backends.

Both compute their change with the pure functions of rules_iptables /
rules_nftables from a fresh read of the current state, and apply it as
one batch (`iptables-restore --noflush -w`, `nft -f -`). A batch that
fails because the state changed under it (another container's ADD
created a shared chain first, a rule we meant to delete is gone) is
recomputed from a new read and retried.
"""

import json
import os

from pycni.errors import CNIError, INTERNAL

from . import rules_iptables as ipt
from . import rules_nftables as nft
from .config import IPTABLES, NFTABLES, ContainerIP, PortMapConf

FALLBACK_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
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


class ToolError(CNIError):
    def __init__(self, tool: str, returncode: int, stderr: str):
        super().__init__(INTERNAL, f"{tool} failed (exit {returncode})", stderr.strip())
        self.stderr = stderr


def run_tool(argv: list[str], stdin: str = "") -> str:
    import subprocess
    path = find_tool(argv[0])
    if path is None:
        raise CNIError(INTERNAL, f"{argv[0]} not found")
    proc = subprocess.run([path, *argv[1:]], input=stdin.encode(), capture_output=True)
    if proc.returncode != 0:
        raise ToolError(argv[0], proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode(errors="replace")


class NetnsMutex:
    """Serialises our read-compute-apply steps within one network namespace.

    The lock is an abstract unix socket name: abstract names are scoped to
    the network namespace (as the nat table is), vanish when the holder
    exits, and leave no file behind. Without it two iptables ADDs that
    both find a shared rule missing would both add it. Waits up to
    `timeout` seconds, then goes on unlocked (the batch is still atomic
    and retried)."""

    NAME = b"\0pycni-portmap"

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.sock = None

    def __enter__(self):
        import errno
        import _socket as socket  # the C module: `socket` costs ~8 ms more
        import time
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


def _retrying(step) -> None:
    """Run `step()` (read state, compute, apply) until it applies."""
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


def detect() -> str:
    """The reference's default: iptables, unless only nftables is there."""
    if all(find_tool(t) for t in IPT_TOOLS[4]):
        return IPTABLES
    return NFTABLES if find_tool("nft") else IPTABLES


class IptablesBackend:
    name = IPTABLES

    @staticmethod
    def usable(family: int) -> bool:
        return all(find_tool(t) for t in IPT_TOOLS[family])

    @staticmethod
    def saved(family: int) -> ipt.Saved:
        return ipt.parse_saved(run_tool([IPT_TOOLS[family][0], "-t", "nat"]))

    @staticmethod
    def restore(family: int, script: str) -> None:
        run_tool([IPT_TOOLS[family][1], "--noflush", "-w"], script)

    def apply(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> None:
        plan = ipt.plan(conf, network, cid, cip)
        _retrying(lambda: self.restore(cip.family, ipt.add_script(plan, self.saved(cip.family))))

    def check(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> list[str]:
        return ipt.check(ipt.plan(conf, network, cid, cip), self.saved(cip.family))

    def _remove(self, script_for) -> set[int]:
        """Run `script_for(saved)` in each usable family; failing only
        when no family works (IPv6 may be off). Returns the families
        where something was removed."""
        errors, worked, changed = [], False, set()
        for family in (4, 6):
            if not self.usable(family):
                errors.append(f"{IPT_TOOLS[family][1]} not found")
                continue
            try:
                def step(family=family):
                    script = script_for(self.saved(family))
                    if script:
                        self.restore(family, script)
                        changed.add(family)
                _retrying(step)
                worked = True
            except CNIError as err:
                errors.append(str(err))
        if not worked:
            raise CNIError(INTERNAL, "neither iptables nor ip6tables is usable", "; ".join(errors))
        return changed

    def teardown(self, network: str, cid: str) -> set[int]:
        return self._remove(lambda saved: ipt.del_script(network, cid, saved))

    def gc(self, network: str, valid_ids: set[str]) -> None:
        self._remove(lambda saved: ipt.gc_script(network, valid_ids, saved))


class NftablesBackend:
    name = NFTABLES

    @staticmethod
    def listing(family: int) -> tuple[list[nft.ExistingRule], bool]:
        try:
            out = run_tool(["nft", "-j", "list", "table", nft.FAMILY[family], nft.TABLE])
        except ToolError as err:
            if "No such file" in err.stderr:
                return [], False
            raise
        return nft.parse_listing(family, json.loads(out))

    @staticmethod
    def run(script: str) -> None:
        run_tool(["nft", "-f", "-"], script)

    def apply(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> None:
        def step():
            existing, _ = self.listing(cip.family)
            self.run(nft.add_script(conf, network, cid, cip, existing))
        _retrying(step)

    def check(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> list[str]:
        existing, hooks_ok = self.listing(cip.family)
        return nft.check(conf, network, cid, cip.family, existing, hooks_ok)

    def _remove(self, select) -> set[int]:
        """Delete the rules `select` picks, both families in one
        transaction; returns the families where something was removed."""
        if find_tool("nft") is None:
            raise CNIError(INTERNAL, "nft not found")
        changed: set[int] = set()

        def step():
            doomed = []
            for family in (4, 6):
                doomed += select(self.listing(family)[0])
            script = nft.delete_script(doomed)
            if script:
                self.run(script)
            changed.clear()
            changed.update(r.family for r in doomed)
        _retrying(step)
        return changed

    def teardown(self, network: str, cid: str) -> set[int]:
        return self._remove(lambda existing: nft.del_rules(network, cid, existing))

    def gc(self, network: str, valid_ids: set[str]) -> None:
        self._remove(lambda existing: nft.gc_rules(network, valid_ids, existing))


def backend(name: str):
    return IptablesBackend() if name == IPTABLES else NftablesBackend()
