"""The iptables (nat table) rules of portmap, as pure functions.

Names and rule shapes are the reference plugin's, so that either
implementation finds and removes the other's rules:

  PREROUTING, OUTPUT  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT  (appended)
  CNI-HOSTPORT-DNAT   -p P -m comment --comment 'dnat name: "NET" id: "CID"'
                      -m multiport --dports H1,H2.. [conditions] -j CNI-DN-<hash>
  CNI-DN-<hash>       per mapping: hairpin mark, localhost mark (IPv4), DNAT
  CNI-HOSTPORT-SETMARK  -j MARK --set-xmark 0x2000/0x2000
  POSTROUTING         -j CNI-HOSTPORT-MASQ (the only prepended rule)
  CNI-HOSTPORT-MASQ   -m mark --mark 0x2000/0x2000 -j MASQUERADE

Entry rules are appended, never inserted first (CVE-2019-9946: a
prepended hostPort rule shadowed Kubernetes' service rules).

Rules are written in the form `iptables-save` prints them, so the text
we generate can be compared with what the kernel reports (CHECK, and
"is this shared rule already there" on ADD). A change is one
`iptables-restore --noflush` script applied atomically.
"""

from pycni.model import dataclass, field

from pycni.digest import hashed_name
from pycni.fwquote import ipt_script
from pycni.iptsave import Saved, parse_saved, render, split, target_of  # noqa: F401

from .config import ContainerIP, PortMapConf, mappings_for

DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
OLD_SNAT_CHAIN = "CNI-HOSTPORT-SNAT"
CHAIN_LEN = 28
COMMENT_MAX = 255
MULTIPORT_MAX = 15
SETMARK_COMMENT = "CNI portfwd masquerade mark"
MASQ_ENTRY_COMMENT = "CNI portfwd requiring masquerade"
ANY = {4: "0.0.0.0/0", 6: "::/0"}
HOST_BITS = {4: 32, 6: 128}


def chain_name(network: str, container_id: str, prefix: str = "DN-") -> str:
    """`CNI-DN-` + sha512(network + id) in hex, cut to 28 characters."""
    return hashed_name("CNI-" + prefix, network + container_id, CHAIN_LEN)


def trim_comment(text: str) -> str:
    """Cut to iptables' 255-character comment limit. (The reference keeps
    253 characters plus "...", one too many: iptables refuses that.)"""
    return text if len(text) <= COMMENT_MAX else text[:COMMENT_MAX - 3] + "..."


def dnat_comment(network: str, container_id: str) -> str:
    return trim_comment(f'dnat name: "{network}" id: "{container_id}"')


def mark_spec(bit: int) -> str:
    value = 1 << bit
    return f"{value:#x}/{value:#x}"


def fmt_ip_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class Plan:
    """One family's rules for one container, in iptables-save form
    (arguments after `-A <chain>`)."""
    family: int
    chain: str
    rules: list[list[str]] = field(default_factory=list)
    entries: list[list[str]] = field(default_factory=list)    # in CNI-HOSTPORT-DNAT
    shared: list[tuple[str, list[str], bool]] = field(default_factory=list)
    # (chain, rule, prepend) shared by every container; created when missing


def plan(conf: PortMapConf, network: str, container_id: str, cip: ContainerIP) -> Plan:
    family = cip.family
    chain = chain_name(network, container_id)
    p = Plan(family, chain)
    mark_chain = conf.external_set_mark_chain or SETMARK_CHAIN
    if conf.snat_on and conf.external_set_mark_chain is None:
        mark = mark_spec(conf.mark_bit)
        p.shared += [
            (SETMARK_CHAIN, ["-m", "comment", "--comment", SETMARK_COMMENT,
                             "-j", "MARK", "--set-xmark", mark], False),
            (MASQ_CHAIN, ["-m", "mark", "--mark", mark, "-j", "MASQUERADE"], False),
            ("POSTROUTING", ["-m", "comment", "--comment", MASQ_ENTRY_COMMENT,
                             "-j", MASQ_CHAIN], True),
        ]
    for entry_chain in ("PREROUTING", "OUTPUT"):
        p.shared.append((entry_chain, ["-m", "addrtype", "--dst-type", "LOCAL",
                                       "-j", DNAT_CHAIN], False))

    selected = mappings_for(conf.mappings, family)
    p.entries = entry_rules(conf, network, container_id, family)

    masq_src = ANY[family] if conf.masq_all else cip.network
    for m, dest in selected:
        dst = ["-d", f"{dest}/{HOST_BITS[family]}"] if dest else []
        port = ["-p", m.protocol, "-m", m.protocol, "--dport", str(m.host_port)]
        if conf.snat_on:
            src = [] if masq_src == ANY[family] else ["-s", masq_src]
            p.rules.append([*src, *dst, *port, "-j", mark_chain])
            if family == 4 and not conf.masq_all:
                p.rules.append(["-s", "127.0.0.1/32", *dst, *port, "-j", mark_chain])
        p.rules.append([*dst, *port, "-j", "DNAT",
                        "--to-destination", fmt_ip_port(cip.ip, m.container_port)])
    return p


def entry_rules(conf: PortMapConf, network: str, container_id: str, family: int) -> list[list[str]]:
    """The container's rules in CNI-HOSTPORT-DNAT: one per protocol and
    run of up to 15 host ports, jumping to its chain. They depend on the
    config alone (not on the container's address), so DEL can name them."""
    chain = chain_name(network, container_id)
    note = dnat_comment(network, container_id)
    by_proto: dict[str, list[int]] = {}
    # the reference groups every mapping by protocol, hostIP family or not
    for m in conf.mappings:
        by_proto.setdefault(m.protocol, []).append(m.host_port)
    entries = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        for i in range(0, len(ports), MULTIPORT_MAX):
            spec = ",".join(str(x) for x in ports[i:i + MULTIPORT_MAX])
            entries.append(["-p", proto, "-m", "comment", "--comment", note,
                            "-m", "multiport", "--dports", spec,
                            *conf.conditions(family), "-j", chain])
    return entries


# --- iptables-save output ---------------------------------------------------------

def _delete_line(saved_line: str) -> str:
    """`-A CHAIN args` as printed by iptables-save -> `-D CHAIN args`."""
    return "-D" + saved_line[2:]


# --- scripts ----------------------------------------------------------------------

def add_script(p: Plan, saved: Saved) -> str:
    """Create what is missing of the shared chains and rules, then
    (re)build this container's chain and entry rules, in one batch."""
    lines = ["*nat"]
    made: set[str] = set()

    def ensure_chain(name: str) -> None:
        if name not in saved.chains and name not in made and name not in _BUILTIN:
            lines.append(f"-N {name}")
            made.add(name)

    for chain, rule, prepend in p.shared:
        ensure_chain(chain)
        target = target_of(rule)
        if target.startswith("CNI-"):
            ensure_chain(target)
        if rule in saved.chain_rules(chain):
            continue
        op = f"-I {chain} 1" if prepend else f"-A {chain}"
        lines.append(f"{op} {render(rule)}")
    ensure_chain(DNAT_CHAIN)

    current = [(c, args, line) for c, args, line in saved.jumps_to(p.chain)]
    keep = [args for c, args, _ in current if c == DNAT_CHAIN] == p.entries and \
        all(c == DNAT_CHAIN for c, _, _ in current)
    if not keep:
        lines += [_delete_line(line) for _, _, line in current]
    lines.append(f":{p.chain} - [0:0]")    # creates it, or flushes it if present
    lines += [f"-A {p.chain} {render(r)}" for r in p.rules]
    if not keep:
        lines += [f"-A {DNAT_CHAIN} {render(e)}" for e in p.entries]
    lines.append("COMMIT")
    return ipt_script(lines)


_BUILTIN = {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "FORWARD"}


def fresh_add_script(p: Plan) -> str:
    """The ADD batch for the common case, refused by iptables-restore
    unless it holds: every shared rule is in place (`-C`, which also needs
    its chain and target) and the container's chain does not exist (`-N`;
    then no rule can jump to it yet). It then does what add_script would
    do in that state."""
    lines = ["*nat"]
    lines += [f"-C {chain} {render(rule)}" for chain, rule, _prepend in p.shared]
    lines.append(f"-N {p.chain}")
    lines += [f"-A {p.chain} {render(r)}" for r in p.rules]
    lines += [f"-A {DNAT_CHAIN} {render(e)}" for e in p.entries]
    lines.append("COMMIT")
    return ipt_script(lines)


def container_chains(network: str, container_id: str) -> list[str]:
    """This container's chains: the DNAT chain and the legacy SNAT one."""
    return [chain_name(network, container_id), chain_name(network, container_id, "SN-")]


def removal_script(chains: list[str], saved: Saved) -> str | None:
    """Delete every rule jumping to `chains`, then the chains; None when
    none of it exists."""
    lines = []
    for chain in chains:
        lines += [_delete_line(line) for c, _, line in saved.jumps_to(chain) if c not in chains]
    for chain in chains:
        if chain in saved.chains:
            lines += [f"-F {chain}", f"-X {chain}"]
    if not lines:
        return None
    return ipt_script(["*nat", *lines, "COMMIT"])


def del_script(network: str, container_id: str, saved: Saved) -> str | None:
    return removal_script(container_chains(network, container_id), saved)


def del_listed_script(network: str, container_id: str, listed: Saved) -> str | None:
    """DEL's batch from a listing of CNI-HOSTPORT-DNAT alone (`iptables -S
    CNI-HOSTPORT-DNAT`), for the usual case: entry rules there jump to this
    container's chain. None when none does (then `del_script` over the
    whole table decides).

    The batch is what `del_script` would write if the entry chain held the
    only jumps to this container's chains: delete those entry rules, flush
    and delete the DNAT chain, and the legacy SNAT chain if it exists
    (`:CHAIN` creates or flushes it, so it goes either way). iptables-
    restore applies it all or nothing, and deleting a chain that a rule
    elsewhere still jumps to fails, so when that assumption is wrong the
    batch changes nothing and fails: the caller then runs `del_script`."""
    dnat, snat = container_chains(network, container_id)
    entries = [line for chain, _, line in listed.jumps_to(dnat) if chain == DNAT_CHAIN]
    if not entries:
        return None
    entries += [line for chain, _, line in listed.jumps_to(snat) if chain == DNAT_CHAIN]
    return ipt_script(["*nat", *[_delete_line(line) for line in entries],
                       f"-F {dnat}", f"-X {dnat}", f":{snat} - [0:0]", f"-X {snat}", "COMMIT"])


def exact_del_script(network: str, container_id: str, entries: list[list[str]]) -> str:
    """DEL's batch when the container's entry rules are known (those ADD
    wrote for this config, `entry_rules`), needing no read of the table:
    exact `-D` of each, then flush and delete the DNAT chain, and the
    legacy SNAT chain if it exists (`:CHAIN` creates or flushes it).
    iptables-restore applies it all or nothing and refuses it unless that
    is the whole of the container's state: an entry rule missing or
    written otherwise fails its `-D`, a rule elsewhere still jumping to
    either chain fails its `-X`, a missing DNAT chain fails the `-F`. When
    it applies, it has done what del_script does."""
    dnat, snat = container_chains(network, container_id)
    return ipt_script(["*nat", *[f"-D {DNAT_CHAIN} {render(e)}" for e in entries],
                       f"-F {dnat}", f"-X {dnat}", f":{snat} - [0:0]", f"-X {snat}", "COMMIT"])


def check_script(p: Plan) -> str:
    """CHECK's batch: `-C` of every rule of plan `p` (its chain's and its
    entry rules), changing nothing. Accepted only when each is there as
    written (the kernel compares the parsed rules); then `check` would
    find nothing missing. Refused, the whole table says what is missing."""
    return ipt_script(["*nat", *[f"-C {p.chain} {render(r)}" for r in p.rules],
                       *[f"-C {DNAT_CHAIN} {render(e)}" for e in p.entries], "COMMIT"])


def check(p: Plan, saved: Saved) -> list[str]:
    """What is missing of plan `p` in `saved` (empty when all is there).
    Entry rules with user conditions are matched by their port list only:
    iptables rewrites conditions into its own canonical form."""
    problems = []
    if p.chain not in saved.chains:
        return [f"chain {p.chain} not found in iptables table nat"]
    have = saved.chain_rules(p.chain)
    for rule in p.rules:
        if rule not in have:
            problems.append(f"rule {render(rule)} not found in chain {p.chain}")
    # an entry rule (exact or loose) jumps to the container's chain: only
    # those rules of CNI-HOSTPORT-DNAT are split into arguments
    entries = [args for chain, args, _ in saved.jumps_to(p.chain) if chain == DNAT_CHAIN]
    for e in p.entries:
        if e in entries:
            continue
        ports = e[e.index("--dports") + 1]
        loose = any(target_of(x) == p.chain and ports in x for x in entries)
        if not (loose and len(e) > 12):   # 12 args: an entry without conditions
            problems.append(f"rule {render(e)} not found in chain {DNAT_CHAIN}")
    return problems


def gc_script(network: str, valid_ids: set[str], saved: Saved) -> str | None:
    """Remove the chains of `network`'s containers not in `valid_ids`.
    A chain is recognised by its entry rule's comment naming the network
    and a container whose hash is the chain's name."""
    import re
    pattern = re.compile(r'dnat name: "(.*)" id: "(.*)"\Z')
    doomed = set()
    for args in saved.chain_rules(DNAT_CHAIN):
        if "--comment" not in args[:-1]:
            continue
        m = pattern.match(args[args.index("--comment") + 1])
        if not m or m.group(1) != network or m.group(2) in valid_ids:
            continue
        target = target_of(args)
        if target == chain_name(network, m.group(2)):
            doomed.update(container_chains(network, m.group(2)))
    return removal_script(sorted(doomed), saved) if doomed else None
