"""The nftables rules of portmap, as pure functions.

Layout (the reference's, v1.9): per family a table `ip cni_hostport` /
`ip6 cni_hostport` with

  prerouting, output   nat hooks at dstnat priority, rebuilt on every ADD:
                       `[conditions] fib daddr type local jump hostports_all`
  hostports_all        jumps to hostip_hostports (legacy, kept empty) and hostports
  hostports            per mapping `[ip daddr HOSTIP] P dport H dnat to IP:PORT`
  masquerading         nat hook at srcnat priority (only with snat):
                       `ip saddr <container|0/0> ip daddr <container> masquerade`,
                       plus the same from 127.0.0.1 (IPv4)

`fib daddr type local` limits DNAT to traffic addressed to this host
(CVE-2025-67499: matching the port alone also captured traffic routed
through the host to other machines on that port).

Tags. The reference finds a container's rules by their comment, which is
the bare container ID (its DEL and CHECK compare it exactly), so a
container attached to two networks loses the rules of both on the first
DEL. Our rules carry what the reference matches on, the comment is the
container ID, so that the reference's DEL removes them and its CHECK
counts them after switching implementations; and they carry the network
too, in a match that is always true:

  tcp dport 8080 meta mark & 0xNNNNNNNN | 0xNNNNNNNN == 0xNNNNNNNN dnat to ... comment "CID"

(`(mark & N) | N` is N whatever the mark; N is 32 bits of the network
name's SHA-512, never 0). nft lists and re-reads that match as written
(text and JSON), so a ruleset saved and restored keeps it. It sits after
the port match: only packets of the mapping evaluate it. Our DEL, CHECK
and re-ADD take a rule with the container ID as comment and either our
network's tag or no tag (the reference's rules, which name no network);
GC takes only rules with our network's tag (a rule without one may be any
network's). Rules of earlier pycni versions (comment
`<hash16(network)>-<hash16(containerID)>, net: N, id: C`) are recognised
as before; that form is still written for a container ID longer than
nft's 128-byte comment (the reference can not tag those at all).
"""

from pycni.model import dataclass

from pycni.digest import sha512_hex
from pycni.fwquote import nft_comment, nft_conditions, nft_word
from pycni.nftscript import IP_FAMILY, Table

from .config import PROTOCOLS, ContainerIP, PortMapConf, mappings_for

TABLE = "cni_hostport"
TABLES = {version: Table(family, TABLE, "CNI portmap plugin")
          for version, family in IP_FAMILY.items()}
HOSTPORTS = "hostports"
HOSTIP_HOSTPORTS = "hostip_hostports"
HOSTPORTS_ALL = "hostports_all"
MASQUERADING = "masquerading"
RULE_CHAINS = (HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING)
DSTNAT, SRCNAT = -100, 100
COMMENT_MAX = 128
ANY = {4: "0.0.0.0/0", 6: "::/0"}


def _hash16(text: str) -> str:
    return sha512_hex(text)[:16]


def tag(network: str, container_id: str) -> str:
    """The identifying prefix of the comments of earlier pycni versions
    (still written for a container ID too long for a comment)."""
    return f"{_hash16(network)}-{_hash16(container_id)}"


def network_tag(network: str) -> str:
    return _hash16(network) + "-"


def net_mark(network: str) -> int:
    """The network's tag: the value of the always-true mark match."""
    return int(_hash16(network)[:8], 16) or 1


def mark_match(network: str) -> str:
    value = f"0x{net_mark(network):08x}"
    return f"meta mark & {value} | {value} == {value}"


def legacy_comment(network: str, container_id: str) -> str:
    text = f"{tag(network, container_id)}, net: {network}, id: {container_id}"
    return text.replace('"', "")[:COMMENT_MAX]


def bare_id(container_id: str) -> bool:
    """Can the comment be the container ID itself, as the reference's?"""
    return 0 < len(container_id.encode()) <= COMMENT_MAX and '"' not in container_id


def comment(network: str, container_id: str) -> str:
    """The comment of this attachment's rules."""
    return container_id if bare_id(container_id) else legacy_comment(network, container_id)


def _quoted_comment(network: str, container_id: str) -> str:
    return nft_comment(comment(network, container_id), COMMENT_MAX)


def is_ours(rule: "ExistingRule", network: str, container_id: str) -> bool:
    """Does `rule` belong to the attachment? See the module doc."""
    return ours_test(network, container_id)(rule)


def ours_test(network: str, container_id: str):
    """`is_ours` for one attachment, its tags hashed once (not per rule:
    a table of 500 mappings holds ~1,500 rules)."""
    prefix = tag(network, container_id)
    mark = net_mark(network)

    def test(rule: "ExistingRule") -> bool:
        text = rule.comment
        if not text:
            return False
        if text == container_id:
            return rule.mark is None or rule.mark == mark
        return text.startswith(prefix)
    return test


def _ip_port(ip: str, port: int) -> str:
    nft_word(ip)
    return f"[{ip}]:{port:d}" if ":" in ip else f"{ip}:{port:d}"


@dataclass
class ExistingRule:
    family: int
    chain: str
    handle: int
    comment: str | None
    mark: int | None = None     # the network tag (see the module doc), None without one


def add_script(conf: PortMapConf, network: str, container_id: str, cip: ContainerIP,
               existing: list[ExistingRule] = ()) -> str:
    """One `nft -f` transaction: ensure the layout, replace this
    attachment's rules in `cip`'s family (stale ones listed in `existing`)."""
    family = cip.family
    fam = IP_FAMILY[family]
    table = TABLES[family]
    t = table.ref
    conds = nft_conditions(conf.conditions(family), f"conditionsV{family}")
    jump = (conds + " " if conds else "") + f"fib daddr type local jump {HOSTPORTS_ALL}"
    note = _quoted_comment(network, container_id)
    # the network's tag, on rules whose comment is the bare container ID
    netm = mark_match(network) + " " if bare_id(container_id) else ""
    ip = nft_word(cip.ip, "container address")
    lines = [
        *table.declare((HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL)),
        f"flush chain {t} {HOSTPORTS_ALL}",
        f"add rule {t} {HOSTPORTS_ALL} jump {HOSTIP_HOSTPORTS}",
        f"add rule {t} {HOSTPORTS_ALL} jump {HOSTPORTS}",
    ]
    for chain, hook in (("prerouting", "prerouting"), ("output", "output")):
        lines += [f"add chain {t} {chain} {{ type nat hook {hook} priority {DSTNAT} ; }}",
                  f"flush chain {t} {chain}",
                  f"add rule {t} {chain} {jump}"]
    if conf.snat_on:
        lines.append(f"add chain {t} {MASQUERADING} "
                     f"{{ type nat hook postrouting priority {SRCNAT} ; }}")
    ours = ours_test(network, container_id)
    for r in existing:
        if r.family == family and r.chain in RULE_CHAINS and ours(r):
            lines.append(table.delete_rule(r.chain, r.handle))
    for m, dest in mappings_for(conf.mappings, family):
        match = f"{fam} daddr {nft_word(dest, 'hostIP')} " if dest else ""
        lines.append(f"add rule {t} {HOSTPORTS} {match}{_protocol(m.protocol)} "
                     f"dport {m.host_port:d} {netm}dnat to {_ip_port(ip, m.container_port)} "
                     f"comment {note}")
    if conf.snat_on:
        src = ANY[family] if conf.masq_all else ip
        lines.append(f"add rule {t} {MASQUERADING} {fam} saddr {src} {fam} daddr {ip} "
                     f"{netm}masquerade comment {note}")
        if family == 4 and not conf.masq_all:
            lines.append(f"add rule {t} {MASQUERADING} ip saddr 127.0.0.1 ip daddr {ip} "
                         f"{netm}masquerade comment {note}")
    return "\n".join(lines) + "\n"


def _protocol(proto: str) -> str:
    if proto not in PROTOCOLS:
        raise ValueError(f"unexpected protocol {proto!r}")    # config.py validates
    return proto


def expected_counts(conf: PortMapConf, family: int) -> dict[str, int]:
    """How many tagged rules each chain holds for one attachment."""
    counts = {HOSTPORTS: len(mappings_for(conf.mappings, family))}
    if conf.snat_on:
        counts[MASQUERADING] = 2 if family == 4 and not conf.masq_all else 1
    return counts


def check(conf: PortMapConf, network: str, container_id: str, family: int,
          existing: list[ExistingRule], hooks_ok: bool) -> list[str]:
    problems = [] if hooks_ok else [f"{TABLES[family].ref}: prerouting/output jumps missing"]
    ours = ours_test(network, container_id)
    for chain, want in expected_counts(conf, family).items():
        found = sum(1 for r in existing if r.family == family and r.chain == chain and ours(r))
        if found < want:
            problems.append(f'missing hostport rules in "{chain}" chain '
                            f"({found} of {want})")
    return problems


def delete_script(doomed: list[ExistingRule]) -> str | None:
    if not doomed:
        return None
    return "\n".join(TABLES[r.family].delete_rule(r.chain, r.handle) for r in doomed) + "\n"


def del_rules(network: str, container_id: str, existing: list[ExistingRule]) -> list[ExistingRule]:
    ours = ours_test(network, container_id)
    return [r for r in existing if r.chain in RULE_CHAINS and ours(r)]


def gc_rules(network: str, valid_ids: set[str], existing: list[ExistingRule]) -> list[ExistingRule]:
    """Rules of `network` whose container is not in `valid_ids`: those
    with the network's tag, and those of earlier versions naming it. A
    rule without a tag (the reference's) may be any network's: kept."""
    prefix = network_tag(network)
    mark = net_mark(network)
    keep = {tag(network, cid) for cid in valid_ids}

    def doomed(r: ExistingRule) -> bool:
        if r.chain not in RULE_CHAINS or not r.comment:
            return False
        if r.mark is not None:
            return r.mark == mark and r.comment not in valid_ids
        return r.comment.startswith(prefix) and r.comment[:33] not in keep
    return [r for r in existing if doomed(r)]


def parse_listing(family: int, data: dict) -> tuple[list[ExistingRule], bool]:
    """`nft -j list table <fam> cni_hostport` -> tagged rules, and whether
    both hook chains jump to hostports_all behind a fib check."""
    rules = []
    hooks = set()
    for item in data.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule:
            continue
        rules.append(ExistingRule(family, rule.get("chain", ""), rule.get("handle", 0),
                                  rule.get("comment"), _mark_of(rule)))
        if rule.get("chain") in ("prerouting", "output") and _is_guarded_jump(rule):
            hooks.add(rule["chain"])
    return rules, hooks == {"prerouting", "output"}


def _is_guarded_jump(rule: dict) -> bool:
    exprs = rule.get("expr", [])
    fib = any("fib" in str(e.get("match", {}).get("left", "")) and
              "local" in str(e.get("match", {}).get("right", "")) for e in exprs
              if isinstance(e, dict))
    jump = any(isinstance(e, dict) and e.get("jump", {}).get("target") == HOSTPORTS_ALL
               for e in exprs)
    return fib and jump


def _mark_of(rule: dict) -> int | None:
    """The network tag of a listed rule: the value of an always-true
    `meta mark & N | N == N` match, or None."""
    for e in rule.get("expr", ()):
        match = e.get("match") if isinstance(e, dict) else None
        if not isinstance(match, dict) or match.get("op") != "==":
            continue
        left, right = match.get("left"), match.get("right")
        if type(right) is not int or not isinstance(left, dict) or list(left) != ["|"]:
            continue
        parts = left["|"]
        if not (isinstance(parts, list) and len(parts) == 2 and parts[1] == right):
            continue
        inner = parts[0]
        if isinstance(inner, dict) and list(inner) == ["&"] and \
                inner["&"] == [{"meta": {"key": "mark"}}, right]:
            return right
    return None
