"""The nftables ipMasq backend (the reference's layout, for interop).

`table inet cni_plugins_masquerade`:
  chain postrouting  nat hook, srcnat priority; rebuilt on every setup:
                     multicast destinations return, everything else
                     `goto masq_checks`
  chain masq_checks  one rule per attachment IP:
                     `ip saddr X ip daddr != <subnet> masquerade`, with the
                     comment `<hash(net)>-<hash(ifname:id)>, net: .., if: ..,
                     id: ..` (cut to 128 characters)

The hashed comment identifies an attachment exactly, so DEL and GC never
remove another attachment's rule even when an IP is reused. Commands are
nft JSON applied in one `nft -j -f -` transaction (fwtools.nft_apply);
building them is pure.
"""

from ..digest import sha512_hex
from ..errors import CNIError, INTERNAL

FAMILY = "inet"
TABLE = "cni_plugins_masquerade"
MASQ_CHAIN = "masq_checks"
POSTROUTING = "postrouting"
SRCNAT_PRIORITY = 100
COMMENT_MAX = 128
TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
CHAIN_COMMENT = ("Masquerade traffic from certain IPs to any (non-multicast) IP "
                 "outside their subnet")


def _hash16(text: str) -> str:
    return sha512_hex(text)[:16]


def network_hash(network: str) -> str:
    return _hash16(network)


def instance_hash(network: str, ifname: str, container_id: str) -> str:
    return network_hash(network) + "-" + _hash16(f"{ifname}:{container_id}")


def instance_comment(network: str, ifname: str, container_id: str) -> str:
    def clean(s: str) -> str:
        return s.replace('"', "")
    text = (f"{instance_hash(network, ifname, container_id)}, net: {clean(network)}, "
            f"if: {clean(ifname)}, id: {clean(container_id)}")
    return text[:COMMENT_MAX]


def _chain(name: str, **extra) -> dict:
    return {"chain": {"family": FAMILY, "table": TABLE, "name": name, **extra}}


def _rule(chain: str, expr: list, comment: str | None = None) -> dict:
    rule = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
    if comment is not None:
        rule["comment"] = comment
    return {"rule": rule}


def _match(proto: str, field: str, op: str, right) -> dict:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}},
                      "right": right}}


def masq_rule(cidr: str, comment: str) -> dict:
    from pycni import ipaddr
    iface = ipaddr.ip_interface(cidr)
    proto = "ip" if iface.version == 4 else "ip6"
    net = iface.network
    return _rule(MASQ_CHAIN, [
        _match(proto, "saddr", "==", str(iface.ip)),
        _match(proto, "daddr", "!=", {"prefix": {"addr": str(net.network_address),
                                                 "len": net.prefixlen}}),
        {"masquerade": None}], comment)


def rules_with_prefix(listing: dict | None, prefix: str) -> list[dict]:
    """masq_checks rules (from `nft -j list table ...`) whose comment starts
    with `prefix`."""
    if not listing:
        return []
    out = []
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("chain") == MASQ_CHAIN and \
                str(rule.get("comment", "")).startswith(prefix):
            out.append(rule)
    return out


def _delete(rule: dict) -> dict:
    return {"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": rule["chain"],
                                "handle": rule["handle"]}}}


def setup_commands(ips: list[str], network: str, ifname: str, container_id: str,
                   listing: dict | None) -> dict:
    comment = instance_comment(network, ifname, container_id)
    stale = rules_with_prefix(listing, instance_hash(network, ifname, container_id))
    cmds = [
        {"add": {"table": {"family": FAMILY, "name": TABLE, "comment": TABLE_COMMENT}}},
        {"add": _chain(MASQ_CHAIN, comment=CHAIN_COMMENT)},
        {"add": _chain(POSTROUTING, type="nat", hook="postrouting", prio=SRCNAT_PRIORITY,
                       policy="accept")},
        {"flush": _chain(POSTROUTING)},
        {"add": _rule(POSTROUTING, [_match("ip", "daddr", "==",
                                           {"prefix": {"addr": "224.0.0.0", "len": 4}}),
                                    {"return": None}])},
        {"add": _rule(POSTROUTING, [_match("ip6", "daddr", "==",
                                           {"prefix": {"addr": "ff00::", "len": 8}}),
                                    {"return": None}])},
        {"add": _rule(POSTROUTING, [{"goto": {"target": MASQ_CHAIN}}])},
    ]
    cmds += [_delete(r) for r in stale]
    cmds += [{"add": masq_rule(cidr, comment)} for cidr in ips]
    return {"nftables": cmds}


def teardown_commands(network: str, ifname: str, container_id: str,
                      listing: dict | None) -> dict | None:
    stale = rules_with_prefix(listing, instance_hash(network, ifname, container_id))
    return {"nftables": [_delete(r) for r in stale]} if stale else None


def gc_commands(network: str, valid: list[tuple[str, str]], listing: dict | None) -> dict | None:
    """Delete this network's rules whose attachment (container ID, ifname)
    is not in `valid`."""
    keep = {instance_comment(network, ifname, cid) for cid, ifname in valid}
    doomed = [r for r in rules_with_prefix(listing, network_hash(network))
              if r.get("comment") not in keep]
    return {"nftables": [_delete(r) for r in doomed]} if doomed else None


# --- running nft ------------------------------------------------------------------
# fwtools.nft_list / nft_apply, each read-compute-apply step in fwtools.retrying.

WHAT = "run nft"    # the step named when nft is not installed


def available() -> bool:
    from ..fwtools import find_tool
    return find_tool("nft") is not None


def list_table() -> dict | None:
    """The table as `nft -j list table` gives it; None when it does not
    exist or cannot be read (then there is nothing of ours to find)."""
    from ..fwtools import ToolError, nft_list
    try:
        return nft_list(FAMILY, TABLE, WHAT)
    except ToolError:
        return None


def _apply_computed(compute) -> None:
    """Apply `compute(listing)` (None: nothing to do) in one transaction,
    recomputed from a fresh listing when nft refuses it."""
    from ..fwtools import ToolError, nft_apply, retrying

    def step() -> None:
        commands = compute(list_table())
        if commands:
            nft_apply(commands, WHAT)
    try:
        retrying(step)
    except ToolError as err:
        raise CNIError(INTERNAL, "nft failed to apply the masquerading rules", err.details)


def setup(ips: list[str], network: str, ifname: str, container_id: str) -> None:
    _apply_computed(lambda listing: setup_commands(ips, network, ifname, container_id, listing))


def start_setup(ips: list[str], network: str, ifname: str, container_id: str):
    """Nothing to start early: the transaction needs the listing first."""
    from . import Deferred
    return Deferred(lambda: setup(ips, network, ifname, container_id))


def start_teardown(ips: list[str], network: str, ifname: str, container_id: str):
    from . import Deferred
    return Deferred(lambda: teardown(ips, network, ifname, container_id))


def _table_absent() -> bool:
    """Nothing to remove: the kernel says the table does not exist (see
    pycni.nfnetlink; no nft exec then)."""
    from ..nfnetlink import table_exists
    return table_exists(FAMILY, TABLE) is False


def teardown(ips: list[str], network: str, ifname: str, container_id: str) -> None:
    if _table_absent():
        return
    _apply_computed(lambda listing: teardown_commands(network, ifname, container_id, listing))


def gc(network: str, valid: list[tuple[str, str]]) -> None:
    if _table_absent():
        return
    _apply_computed(lambda listing: gc_commands(network, valid, listing))
