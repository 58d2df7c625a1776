"""The nftables rules of the firewall plugin, as pure functions.

The reference has no nftables backend; this one mirrors its iptables
layout in a table of its own, `inet cni_plugins_firewall`:

  chain forward       filter hook forward, priority filter, created with
                      policy accept; its policy is never reset afterwards,
                      so an administrator may set it to drop (the
                      equivalent of `iptables -P FORWARD DROP`). Exactly:
                        jump isolation     (ingress policies)
                        jump admin         (administrator overrides)
                        jump containers
  chain admin         left to the administrator, never written by the plugin
  chain containers    per container address, as the iptables backend:
                        ip daddr IP ct state established,related accept
                        ip saddr IP accept
  chain isolation     fixed rules over three sets of bridges:
                        iifname . oifname @isolated_pairs drop
                        iifname . oifname @bridge_pairs return
                        iifname @isolating_bridges oifname @isolating_bridges drop
  sets                isolating_bridges {BR}, bridge_pairs {BR . BR} for every
                      bridge with ingressPolicy same-bridge or isolated;
                      isolated_pairs {BR . BR} for isolated ones

Between two isolating bridges traffic is dropped, within one it passes
unless the bridge is isolated: the reference's CNI-ISOLATION-STAGE-1/2
semantics. With sets, a bridge joins by adding elements (idempotent), so
concurrent ADDs never duplicate anything; like the reference's rules, the
elements stay when a container goes (other containers may use the bridge).

Every rule in `containers` carries the comment the bridge plugin's nft
masquerading uses: `<hash(network)>-<hash(ifname:containerID)>, net: N,
if: I, id: C`. DEL finds an attachment's rules by that tag alone (no
prevResult needed) and GC by the network's hash, so neither ever removes
another network's or another attachment's rules.

A change is one `nft -f -` transaction; the current state is read with
`nft -j list table` and parsed by `parse_listing`. The fixed chains are
rebuilt (flush and refill, inside the transaction) whenever they differ
from what they must hold, so racing ADDs converge on one copy.
"""

from pycni.model import dataclass, field

from pycni.fwquote import nft_comment, nft_string, nft_word
from pycni.ipmasq.nftables import instance_comment, instance_hash, network_hash
from pycni.nftscript import IP_FAMILY, Table

from .config import ContainerIP, ISOLATED

TABLE = Table("inet", "cni_plugins_firewall", "CNI firewall plugin")
T = TABLE.ref
FORWARD = "forward"
ADMIN = "admin"
CONTAINERS = "containers"
ISOLATION = "isolation"
BRIDGES = "isolating_bridges"
BRIDGE_PAIRS = "bridge_pairs"
ISOLATED_PAIRS = "isolated_pairs"
REGULAR_CHAINS = (ADMIN, CONTAINERS, ISOLATION)
SETS = ((BRIDGES, "ifname"), (BRIDGE_PAIRS, "ifname . ifname"),
        (ISOLATED_PAIRS, "ifname . ifname"))
TAG_LEN = 33            # "<16 hex>-<16 hex>"
IO = "meta iifname . meta oifname"


@dataclass(frozen=True)
class Rule:
    """A rule we write: its nft text and its signature, the normalized
    form `parse_listing` derives from `nft -j` output for the same rule."""
    chain: str
    text: str
    signature: tuple
    comment: str | None = None

    def line(self) -> str:
        note = f" comment {nft_comment(self.comment)}" if self.comment is not None else ""
        return f"add rule {T} {self.chain} {self.text}{note}"


def jump(chain: str) -> Rule:
    return Rule(FORWARD, f"jump {chain}", (f"jump {chain}",))


FORWARD_RULES = tuple(jump(c) for c in (ISOLATION, ADMIN, CONTAINERS))
ISOLATION_RULES = (
    Rule(ISOLATION, f"iifname . oifname @{ISOLATED_PAIRS} drop",
         (f"{IO} == @{ISOLATED_PAIRS}", "drop")),
    Rule(ISOLATION, f"iifname . oifname @{BRIDGE_PAIRS} return",
         (f"{IO} == @{BRIDGE_PAIRS}", "return")),
    Rule(ISOLATION, f"iifname @{BRIDGES} oifname @{BRIDGES} drop",
         (f"meta iifname == @{BRIDGES}", f"meta oifname == @{BRIDGES}", "drop")),
)


def address_rules(cip: ContainerIP, comment: str | None = None) -> list[Rule]:
    p = IP_FAMILY[cip.family]
    nft_word(cip.ip, "container address")
    return [Rule(CONTAINERS, f"{p} daddr {cip.ip} ct state established,related accept",
                 (f"{p} daddr == {cip.ip}", "ct state in established,related", "accept"),
                 comment),
            Rule(CONTAINERS, f"{p} saddr {cip.ip} accept",
                 (f"{p} saddr == {cip.ip}", "accept"), comment)]


def bridge_elements(bridge: str, policy: str) -> list[tuple[str, str]]:
    """(set, element as `parse_listing` shows it) for a bridge's policy."""
    out = [(BRIDGES, bridge), (BRIDGE_PAIRS, f"{bridge} . {bridge}")]
    if policy == ISOLATED:
        out.append((ISOLATED_PAIRS, f"{bridge} . {bridge}"))
    return out


def _element_text(element: str) -> str:
    return " . ".join(nft_string(part, "bridge name") for part in element.split(" . "))


# --- the current state ------------------------------------------------------------

@dataclass
class Existing:
    chain: str
    handle: int
    comment: str | None
    signature: tuple


@dataclass
class Listing:
    """`nft -j list table inet cni_plugins_firewall`, reduced."""
    table: bool = False
    chains: dict = field(default_factory=dict)        # name -> chain object
    sets: dict = field(default_factory=dict)          # name -> set of elements
    rules: list[Existing] = field(default_factory=list)

    def in_chain(self, chain: str) -> list[Existing]:
        return [r for r in self.rules if r.chain == chain]

    def holds_exactly(self, chain: str, rules) -> bool:
        return [r.signature for r in self.in_chain(chain)] == [r.signature for r in rules]


def _operand(value) -> str:
    if isinstance(value, dict):
        if "payload" in value:
            return f"{value['payload'].get('protocol')} {value['payload'].get('field')}"
        for key in ("meta", "ct"):
            if key in value:
                return f"{key} {value[key].get('key')}"
        if "concat" in value:
            return " . ".join(_operand(v) for v in value["concat"])
        if "set" in value:
            return "{" + ",".join(sorted(_operand(v) for v in value["set"])) + "}"
    if isinstance(value, list):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


def _expr_signature(expr: dict) -> str:
    from pycni import jsontext
    match = expr.get("match")
    if isinstance(match, dict):
        return f"{_operand(match.get('left'))} {match.get('op', '==')} " \
               f"{_operand(match.get('right'))}"
    for verdict in ("accept", "drop", "return", "continue"):
        if verdict in expr:
            return verdict
    for verdict in ("jump", "goto"):
        if verdict in expr:
            return f"{verdict} {expr[verdict].get('target')}"
    return jsontext.dumps(expr, sort_keys=True)


def parse_listing(data: dict | None) -> Listing:
    listing = Listing()
    for item in (data or {}).get("nftables", []):
        if not isinstance(item, dict):
            continue
        if "table" in item:
            listing.table = True
        elif "chain" in item:
            listing.chains[item["chain"].get("name")] = item["chain"]
        elif "set" in item:
            s = item["set"]
            listing.sets[s.get("name")] = {_operand(e.get("elem", {}).get("val", e))
                                           if isinstance(e, dict) and "elem" in e
                                           else _operand(e) for e in s.get("elem", [])}
        elif "rule" in item:
            rule = item["rule"]
            sig = tuple(_expr_signature(e) for e in rule.get("expr", []) if isinstance(e, dict))
            listing.rules.append(Existing(rule.get("chain", ""), rule.get("handle", 0),
                                          rule.get("comment"), sig))
    return listing


# --- scripts ----------------------------------------------------------------------

def _owned(listing: Listing, network: str, ifname: str, container_id: str) -> list[Existing]:
    tag = instance_hash(network, ifname, container_id)
    return [r for r in listing.in_chain(CONTAINERS) if (r.comment or "").startswith(tag)]


def add_script(ips: list[ContainerIP], network: str, ifname: str, container_id: str,
               policy: str, bridge: str, listing: Listing) -> str:
    """One transaction: make sure the layout exists, replace this
    attachment's address rules, put the bridge in the isolation sets."""
    lines = TABLE.declare(REGULAR_CHAINS)
    lines += [f"add set {T} {name} {{ type {kind} ; }}" for name, kind in SETS]
    if FORWARD not in listing.chains:
        lines.append(f"add chain {T} {FORWARD} "
                     "{ type filter hook forward priority filter ; policy accept ; }")
    for chain, rules in ((ISOLATION, ISOLATION_RULES), (FORWARD, FORWARD_RULES)):
        if not listing.holds_exactly(chain, rules):
            lines.append(f"flush chain {T} {chain}")
            lines += [r.line() for r in rules]
    lines += [TABLE.delete_rule(r.chain, r.handle)
              for r in _owned(listing, network, ifname, container_id)]
    comment = instance_comment(network, ifname, container_id)
    for cip in ips:
        lines += [r.line() for r in address_rules(cip, comment)]
    if bridge:
        lines += [f"add element {T} {name} {{ {_element_text(e)} }}"
                  for name, e in bridge_elements(bridge, policy)]
    return "\n".join(lines) + "\n"


def delete_script(doomed: list[Existing]) -> str | None:
    if not doomed:
        return None
    return "\n".join(TABLE.delete_rule(r.chain, r.handle) for r in doomed) + "\n"


def del_rules(network: str, ifname: str, container_id: str, listing: Listing) -> list[Existing]:
    return _owned(listing, network, ifname, container_id)


def gc_rules(network: str, valid: list[tuple[str, str]], listing: Listing) -> list[Existing]:
    """Rules of `network` whose attachment (container ID, ifname) is not in `valid`."""
    prefix = network_hash(network) + "-"
    keep = {instance_hash(network, ifname, cid) for cid, ifname in valid}
    return [r for r in listing.in_chain(CONTAINERS)
            if (r.comment or "").startswith(prefix) and r.comment[:TAG_LEN] not in keep]


def check(ips: list[ContainerIP], network: str, ifname: str, container_id: str,
          policy: str, bridge: str, listing: Listing) -> list[str]:
    if not listing.table:
        return [f"table {T} not found"]
    problems = []
    forward = listing.chains.get(FORWARD)
    if not forward or forward.get("hook") != "forward":
        problems.append(f"chain {FORWARD} of table {T} is missing or not a forward hook")
    for chain, rules in ((FORWARD, FORWARD_RULES), (ISOLATION, ISOLATION_RULES)):
        have = {r.signature for r in listing.in_chain(chain)}
        problems += [f"expected {chain} rule `{r.text}` not found"
                     for r in rules if r.signature not in have]
    owned = {r.signature for r in _owned(listing, network, ifname, container_id)}
    for cip in ips:
        problems += [f"expected rule `{r.text}` of {container_id} not found in chain "
                     f"{CONTAINERS}" for r in address_rules(cip) if r.signature not in owned]
    if bridge:
        problems += [f"bridge {bridge} missing from set {name}"
                     for name, e in bridge_elements(bridge, policy)
                     if e not in listing.sets.get(name, set())]
    return problems
