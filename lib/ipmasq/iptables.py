"""The iptables ipMasq backend.

Rules are computed by pure functions and applied per address family with
a single `iptables-restore --noflush -w` batch: the whole change lands
atomically, and re-declaring the attachment's chain flushes it, so a
repeated setup never duplicates rules. Stale POSTROUTING jumps to the
chain are found in `iptables-save -t nat` output and deleted in the same
batch; teardown deletes every jump to the chain, then the chain itself,
so it needs no container addresses (it works after the container and its
interface are gone).

The common case first, in one exec instead of two: setup first tries a
batch that creates the chain (`-N`, which fails if it exists), teardown
one that deletes exactly the jumps setup made for the container's
addresses and then the chain (`-D` fails on a missing rule, `-X` on a
chain still referenced). iptables-restore applies a batch all or
nothing, so a refused batch changes nothing, and the save-based path
above then does the work as before (a repeated ADD, stale jumps, a DEL
without addresses or after something else touched the rules).

`start_setup` / `start_teardown` begin the same work and return at once:
the one-batch execs run (spawn.start) while the caller does its netlink
work, and `finish()` then waits for them and runs the save-based path for
a refused batch, synchronously, exactly as `setup` / `teardown` do (they
are start + finish, each batch started only when its family's turn comes).

The saved table is read with pycni.iptsave (as portmap and firewall read
theirs); the functions below that take `saved` accept its text too. Every
save-compute-restore step runs in `fwtools.retrying`: a batch refused
because another plugin changed the table in between is recomputed from a
fresh read.
"""

from ..model import dataclass, field

from . import CHAIN_PREFIX, chain_name, comment
from ..errors import CNIError, INTERNAL
from ..fwquote import ipt_script
from ..iptsave import Saved, parse_saved, render
from ..fwtools import (iptables_restore, iptables_save, iptables_usable,
                       remove_chains_in_process, restore_if_accepted, retrying)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..netlink import NetlinkSocket

MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


@dataclass
class RuleSet:
    """One family's rules for one attachment (args after the chain name)."""
    family: int
    chain: str
    chain_rules: list[list[str]] = field(default_factory=list)
    jumps: list[list[str]] = field(default_factory=list)     # in POSTROUTING


def family_of(cidr: str) -> int:
    return 6 if ":" in cidr else 4


def plan(ips: list[str], network: str, container_id: str) -> dict[int, RuleSet]:
    """The rules for `ips`, per family, in the order the reference's
    sequence of unique appends leaves them."""
    from pycni import ipaddr
    chain = chain_name(network, container_id)
    note = ["-m", "comment", "--comment", comment(network, container_id)]
    out: dict[int, RuleSet] = {}
    for cidr in ips:
        iface = ipaddr.ip_interface(cidr)
        family = iface.version
        rs = out.setdefault(family, RuleSet(family, chain))
        for rule in (["-d", str(iface.network), *note, "-j", "ACCEPT"],
                     ["!", "-d", MULTICAST[family], *note, "-j", "MASQUERADE"]):
            if rule not in rs.chain_rules:
                rs.chain_rules.append(rule)
        jump = ["-s", f"{iface.ip}/{iface.max_prefixlen}", *note, "-j", chain]
        if jump not in rs.jumps:
            rs.jumps.append(jump)
    return out


def _saved(saved: "Saved | str") -> Saved:
    """`iptables-save -t nat` output, parsed unless it already is."""
    return parse_saved(saved) if isinstance(saved, str) else saved


def jumps_to(chain: str, saved: "Saved | str") -> list[str]:
    """POSTROUTING rules in `iptables-save -t nat` output that jump (-j)
    to `chain`."""
    rules = _saved(saved).jumps_to(chain)
    return [line for name, args, line in rules if name == "POSTROUTING"
            and any(a == "-j" and b == chain for a, b in zip(args, args[1:]))]


def chain_exists(chain: str, saved: "Saved | str") -> bool:
    return chain in _saved(saved).chains


def setup_script(rs: RuleSet, saved: "Saved | str") -> str:
    lines = ["*nat"]
    lines += ["-D" + line[2:] for line in jumps_to(rs.chain, saved)]
    lines.append(f":{rs.chain} - [0:0]")        # creates, or flushes if present
    lines += [f"-A {rs.chain} {render(r)}" for r in rs.chain_rules]
    lines += [f"-A POSTROUTING {render(j)}" for j in rs.jumps]
    lines.append("COMMIT")
    return ipt_script(lines)


def fresh_setup_script(rs: RuleSet) -> str:
    """The setup batch when the chain does not exist yet (refused if it does)."""
    lines = ["*nat", f"-N {rs.chain}"]
    lines += [f"-A {rs.chain} {render(r)}" for r in rs.chain_rules]
    lines += [f"-A POSTROUTING {render(j)}" for j in rs.jumps]
    lines.append("COMMIT")
    return ipt_script(lines)


def exact_teardown_script(rs: RuleSet) -> str:
    """The teardown batch when the rules are exactly what setup made for
    these addresses (refused otherwise)."""
    lines = ["*nat"]
    lines += [f"-D POSTROUTING {render(j)}" for j in rs.jumps]
    lines += [f"-F {rs.chain}", f"-X {rs.chain}", "COMMIT"]
    return ipt_script(lines)


def assigned(cidrs: list[str]) -> list[str]:
    """The addresses setup can have masqueraded: an interface's IPv6
    link-local address (fe80::/10) never comes from IPAM."""
    return [c for c in cidrs if not c.lower().startswith(("fe8", "fe9", "fea", "feb"))]


def teardown_script(chain: str, saved: "Saved | str") -> str | None:
    """None when there is nothing of `chain` left."""
    return removal_script([chain], saved)


def removal_script(chains: list[str], saved: "Saved | str") -> str | None:
    """Delete every POSTROUTING jump to `chains`, then the chains."""
    saved = _saved(saved)
    lines = []
    for chain in chains:
        lines += ["-D" + line[2:] for line in jumps_to(chain, saved)]
    for chain in chains:
        if chain_exists(chain, saved):
            lines += [f"-F {chain}", f"-X {chain}"]
    if not lines:
        return None
    return ipt_script(["*nat", *lines, "COMMIT"])


_NAME, _ID = 'name: "', '" id: "'


def parse_comment(text: str) -> tuple[str, str] | None:
    """(network, container ID) of a comment `comment()` wrote, read as the
    reference's pattern `name: "(.*)" id: "(.*)"` reads it (the network
    part runs to the last `" id: "`); None if it is not one."""
    if not (text.startswith(_NAME) and text.endswith('"') and len(text) > len(_NAME)):
        return None
    middle = text[len(_NAME):-1]
    cut = middle.rfind(_ID)
    if cut < 0:
        return None
    return middle[:cut], middle[cut + len(_ID):]


def attachment_chains(network: str, saved: "Saved | str") -> dict[str, str]:
    """chain -> container ID for the masquerading chains of `network` in
    `iptables-save -t nat` output. A chain counts only if its name is the
    hash of network + the ID its rule comments name (portmap's chains
    carry the same comments under other names)."""
    saved = _saved(saved)
    found: dict[str, str] = {}
    for chain in saved.lines:
        if not chain.startswith(CHAIN_PREFIX):
            continue
        for args in saved.chain_rules(chain):
            if "--comment" not in args[:-1]:
                continue
            named = parse_comment(args[args.index("--comment") + 1])
            if not named or named[0] != network:
                continue
            if chain == chain_name(network, named[1]):
                found[chain] = named[1]
    return found


def gc_script(network: str, valid_ids: set[str], saved: "Saved | str") -> str | None:
    saved = _saved(saved)
    doomed = [chain for chain, cid in attachment_chains(network, saved).items()
              if cid not in valid_ids]
    return removal_script(sorted(doomed), saved)


# --- running the tools ----------------------------------------------------------

def available(family: int = 4) -> bool:
    return iptables_usable(family)


def save_nat(family: int) -> Saved:
    return parse_saved(iptables_save(family, "nat"))


restore = iptables_restore


def _restore_computed(family: int, compute) -> None:
    """Apply `compute(saved nat table)` (None: nothing to do), recomputed
    from a fresh read when the batch is refused (fwtools.retrying)."""
    def step() -> None:
        script = compute(save_nat(family))
        if script:
            restore(family, script)
    retrying(step)


class _Batches:
    """The one-batch fast paths of one setup or teardown: per family a
    script for `iptables-restore --noflush -w`, all or nothing.
    `start()` spawns them all without waiting; `accepted(family)` tells
    whether that family's applied, waiting for it if it was started and
    running it now (restore_if_accepted) if not; `reap()` waits for those
    still running."""

    __slots__ = ("scripts", "_children", "_applied")

    def __init__(self, scripts: dict[int, str]):
        self.scripts = scripts
        self._children: dict = {}
        self._applied = False

    def start(self) -> None:
        from ..fwtools import IPT_TOOLS, TOOL_ENV, find_tool
        from ..spawn import start
        try:
            for family, script in self.scripts.items():
                path = find_tool(IPT_TOOLS[family][1])
                try:
                    child = start([path, "--noflush", "-w"], TOOL_ENV,
                                  script.encode()) if path else None
                except OSError:
                    child = None    # accepted() runs it again and reports why
                self._children[family] = child
        except BaseException:
            self.reap()
            raise

    def accepted(self, family: int) -> bool:
        child = self._children.pop(family, None)
        if child is None:
            ok = restore_if_accepted(family, self.scripts[family])
        else:
            ok = child.wait()[0] == 0
        self._applied = self._applied or ok
        return ok

    def reap(self) -> bool:
        """Wait for every batch not waited for yet (one interrupted is
        killed); whether any batch applied or may have (killed)."""
        children, self._children = self._children, {}
        interrupt = None
        for child in children.values():
            if child is None:
                continue
            try:
                self._applied = child.wait()[0] == 0 or self._applied
            except BaseException as err:    # killed and reaped by wait()
                self._applied = True
                interrupt = interrupt or err
        if interrupt is not None:
            raise interrupt
        return self._applied


class StartedSetup:
    """`setup` under way (see the module docstring): `finish()`, or on a
    failure path `reap()`: whether any of it may be in place (then the
    caller undoes it with `teardown`)."""

    __slots__ = ("rulesets", "batches", "_fell_back")

    def __init__(self, ips: list[str], network: str, container_id: str, eager: bool = True):
        self.rulesets = plan(ips, network, container_id)
        self.batches = _Batches({f: fresh_setup_script(rs) for f, rs in self.rulesets.items()})
        self._fell_back = False
        if eager:
            self.batches.start()

    def finish(self) -> None:
        for family, rs in self.rulesets.items():
            if not self.batches.accepted(family):
                _restore_computed(family, lambda saved, rs=rs: setup_script(rs, saved))
                self._fell_back = True
        self.batches.reap()

    def reap(self) -> bool:
        """Waits for the batches still running first."""
        return self.batches.reap() or self._fell_back


class StartedTeardown:
    """`teardown` under way (see the module docstring). Where iptables is
    iptables-nft, the chain and its POSTROUTING jumps are removed here and
    now, in-process (pycni.nfnetlink.remove_chains: no exec); its socket
    stays open until finish() or reap(), so that the kernel's grace period
    for the deleted rules passes during the caller's work rather than in
    the close. Only a family where that was not done runs a batch."""

    __slots__ = ("chain", "families", "strict", "usable", "batches", "_sockets")

    def __init__(self, ips: list[str], network: str, container_id: str, eager: bool = True):
        self.chain = chain_name(network, container_id)
        self.families = sorted({family_of(c) for c in ips})
        self.strict = bool(self.families)
        self.usable = [f for f in self.families or (4, 6) if available(f)]
        self._sockets: "list[NetlinkSocket]" = []
        self.usable = [f for f in self.usable if not self._removed_in_process(f)]
        exact = plan(assigned(ips), network, container_id)
        self.batches = _Batches({f: exact_teardown_script(exact[f])
                                 for f in self.usable if f in exact})
        if eager:
            self.batches.start()

    def _removed_in_process(self, family: int) -> bool:
        """Removed (or found absent) over nf_tables; False: the batch decides."""
        return remove_chains_in_process(family, "POSTROUTING", [self.chain],
                                        keep=self._sockets) is not None

    def _close(self) -> None:
        sockets, self._sockets = self._sockets, []
        for nl in sockets:
            nl.close()

    def finish(self) -> None:
        """The families of `ips` (failures raised); with no ips, both
        families, ignoring failures (IPv6 may be off). A family without
        tools has nothing to remove."""
        self._close()
        errors = []
        for family in self.usable:
            if family in self.batches.scripts and self.batches.accepted(family):
                continue
            try:
                _restore_computed(family, lambda saved: teardown_script(self.chain, saved))
            except CNIError as err:
                if self.strict:
                    errors.append(str(err))
        self.batches.reap()
        if errors:
            raise CNIError(INTERNAL, "failed to tear down IP masquerading", "; ".join(errors))

    def reap(self) -> bool:
        self._close()
        return self.batches.reap()


def start_setup(ips: list[str], network: str, ifname: str, container_id: str) -> StartedSetup:
    return StartedSetup(ips, network, container_id)


def start_teardown(ips: list[str], network: str, ifname: str,
                   container_id: str) -> StartedTeardown:
    return StartedTeardown(ips, network, container_id)


def setup(ips: list[str], network: str, ifname: str, container_id: str) -> None:
    """ifname is not part of the chain name (reference compatibility)."""
    StartedSetup(ips, network, container_id, eager=False).finish()


def teardown(ips: list[str], network: str, ifname: str, container_id: str) -> None:
    """The families of `ips` (failures raised); with no ips, both families,
    ignoring failures (IPv6 may be off). A family without tools has nothing
    to remove."""
    StartedTeardown(ips, network, container_id, eager=False).finish()


def gc(network: str, valid: list[tuple[str, str]]) -> None:
    """Remove the chains of attachments of `network` not in `valid`
    ((container ID, ifname) pairs; the chain names carry no ifname, so
    only the IDs count). The reference iptables backend has no GC."""
    valid_ids = {cid for cid, _ifname in valid}
    errors = []
    for family in (4, 6):
        if not available(family):
            continue
        try:
            _restore_computed(family, lambda saved: gc_script(network, valid_ids, saved))
        except CNIError as err:
            errors.append(str(err))
    if errors:
        raise CNIError(INTERNAL, "failed to garbage-collect IP masquerading", "; ".join(errors))
