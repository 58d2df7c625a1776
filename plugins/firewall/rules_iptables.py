"""The iptables (filter table) rules of the firewall plugin, as pure functions.

Chains, rules, comments and their order are the reference plugin's, so
either implementation checks and removes what the other wrote:

  FORWARD                -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
                         (inserted first)
  CNI-FORWARD            -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
                         (inserted first), then per container address:
                         -d IP/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
                         -s IP/32 -j ACCEPT
  CNI-ADMIN              left to the administrator (iptablesAdminChainName)

ingressPolicy same-bridge / isolated adds, per bridge (never removed: other
containers may use the bridge):

  FORWARD                -j CNI-ISOLATION-STAGE-1 (inserted first, before CNI-FORWARD)
  CNI-ISOLATION-STAGE-1  [isolated] -i BR -o BR -j DROP
                         -i BR ! -o BR -j CNI-ISOLATION-STAGE-2
                         -j RETURN (last)
  CNI-ISOLATION-STAGE-2  -o BR -j DROP
                         -j RETURN (last)

The per-address rules carry no comment (they are the reference's), so
they cannot be attributed to a container without prevResult: DEL without
prevResult has nothing to remove and GC has nothing it may remove.

Rules are written in the form `iptables-save` prints them, so they can be
compared with what the kernel reports; a change is one
`iptables-restore --noflush` script.
"""

from pycni.model import dataclass, field

from pycni.fwquote import ipt_chain, ipt_script
from pycni.iptsave import Saved, parse_saved, render, split, without_comment  # noqa: F401

from .config import ContainerIP, ISOLATED

FORWARD = "FORWARD"
PRIV_CHAIN = "CNI-FORWARD"
STAGE1 = "CNI-ISOLATION-STAGE-1"
STAGE2 = "CNI-ISOLATION-STAGE-2"
FORWARD_COMMENT = "CNI firewall plugin rules"
ADMIN_COMMENT = "CNI firewall plugin admin overrides"
ISOLATION_COMMENT = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)"
BUILTIN = {"INPUT", "FORWARD", "OUTPUT"}


def _comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", text]


def policy_comment(policy: str) -> str:
    return f"CNI firewall plugin rules (ingressPolicy: {policy})"


def forward_jump() -> list[str]:
    return [*_comment(FORWARD_COMMENT), "-j", PRIV_CHAIN]


def admin_jump(admin_chain: str) -> list[str]:
    return [*_comment(ADMIN_COMMENT), "-j", admin_chain]


def address_rules(cip: ContainerIP) -> list[list[str]]:
    cidr = cip.host_cidr
    return [["-d", cidr, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
            ["-s", cidr, "-j", "ACCEPT"]]


@dataclass
class Op:
    """Ensure `rule` is in `chain`: inserted first or appended when missing.
    `loose` rules count as present when a rule differing only in its
    comment is there (older reference versions used other comments)."""
    chain: str
    rule: list[str]
    first: bool = False
    loose: bool = False


@dataclass
class Plan:
    """One family's changes for one container, in the reference's order."""
    family: int
    chains: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)


def plan(family: int, ips: list[ContainerIP], admin_chain: str,
         policy: str = "open", bridge: str = "") -> Plan:
    """What ADD ensures in `family` for the container addresses `ips`
    (all of them; other families are skipped). No address of the family:
    nothing at all, as in the reference. `admin_chain` "": none (the
    admin chain and its jump are left out)."""
    p = Plan(family)
    mine = [c for c in ips if c.family == family]
    if not mine:
        return p
    p.chains.append(PRIV_CHAIN)
    p.ops.append(Op(FORWARD, forward_jump(), first=True))
    if admin_chain:
        p.chains.append(admin_chain)
        p.ops.append(Op(PRIV_CHAIN, admin_jump(admin_chain), first=True))
    for cip in mine:
        p.ops += [Op(PRIV_CHAIN, r) for r in address_rules(cip)]
    if bridge:
        p.chains += [STAGE1, STAGE2]
        note = _comment(policy_comment(policy))
        p.ops.append(Op(FORWARD, [*_comment(ISOLATION_COMMENT), "-j", STAGE1],
                        first=True, loose=True))
        p.ops.append(Op(STAGE1, ["-i", bridge, "!", "-o", bridge, *note, "-j", STAGE2],
                        first=True, loose=True))
        if policy == ISOLATED:
            p.ops.append(Op(STAGE1, ["-i", bridge, "-o", bridge, *note, "-j", "DROP"],
                            first=True, loose=True))
        p.ops.append(Op(STAGE1, [*_comment(ISOLATION_COMMENT), "-j", "RETURN"], loose=True))
        p.ops.append(Op(STAGE2, ["-o", bridge, *_comment(ISOLATION_COMMENT), "-j", "DROP"],
                        first=True, loose=True))
        p.ops.append(Op(STAGE2, [*_comment(ISOLATION_COMMENT), "-j", "RETURN"], loose=True))
    return p


# --- iptables-save output ---------------------------------------------------------

def go_list(rule: list[str]) -> str:
    """A rule as the reference's error messages print it (Go's %v)."""
    return "[" + " ".join(rule) + "]"


# --- scripts ----------------------------------------------------------------------

def add_script(p: Plan, saved: Saved) -> str | None:
    """Create the missing chains and rules of `p`; None if all is there.
    An existing chain is never re-declared (that would flush it)."""
    lines = []
    for chain in p.chains:
        if chain not in saved.chains and chain not in BUILTIN and f"-N {chain}" not in lines:
            lines.append(f"-N {ipt_chain(chain, 'iptablesAdminChainName')}")
    done: list[tuple[str, list[str]]] = []
    for op in p.ops:
        if saved.has(op.chain, op.rule, op.loose) or (op.chain, op.rule) in done:
            continue
        done.append((op.chain, op.rule))
        chain = ipt_chain(op.chain, "iptablesAdminChainName")
        verb = f"-I {chain} 1" if op.first else f"-A {chain}"
        lines.append(f"{verb} {render(op.rule)}")
    if not lines:
        return None
    return ipt_script(["*filter", *lines, "COMMIT"])


def del_script(family: int, ips: list[ContainerIP], saved: Saved) -> str | None:
    """Delete every copy of the per-address rules of `ips` in `family`.
    The shared chains and jumps stay, as with the reference."""
    wanted = [r for c in ips if c.family == family for r in address_rules(c)]
    lines = [f"-D{line[2:]}" for chain, args, line in saved.rules
             if chain == PRIV_CHAIN and args in wanted]
    if not lines:
        return None
    return ipt_script(["*filter", *lines, "COMMIT"])


def check(p: Plan, saved: Saved) -> list[str]:
    """What of plan `p` is missing from `saved` (empty: all there). The
    isolation rules are matched regardless of their comment."""
    problems = [f"chain {c} not found in iptables table filter"
                for c in p.chains if c not in saved.chains]
    if problems:
        return problems
    for op in p.ops:
        if saved.has(op.chain, op.rule, op.loose):
            continue
        if op.chain == PRIV_CHAIN and op.rule[0] in ("-d", "-s"):
            problems.append(f"expected rule {go_list(op.rule)} not found")
        else:
            problems.append(f"expected {op.chain} rule {go_list(op.rule)} not found")
    return problems
