"""macspoofchk: drop frames from a container port whose source MAC is not
the container's.

The layout is the reference's (so either implementation removes the
other's rules): nft `table bridge nat`, base chain `PREROUTING` (filter
hook, priority -300, policy accept) with one rule per port,
`iifname "<host veth>" jump cni-br-iface-<id>`; that chain jumps to
`cni-br-iface-<id>-mac`, which returns for `ether saddr <mac>` and drops
the rest. `<id>` is `<containerID>-<ifname>`; every rule carries the
comment `macspoofchk-<id>`.

Commands are nft JSON (no quoting pitfalls), applied as one transaction
with `nft -j -f -` (fwtools.nft_apply, in fwtools.retrying). Building them
is pure; only `setup`/`teardown` run nft.
"""

from pycni.errors import CNIError, INTERNAL

FAMILY = "bridge"
TABLE = "nat"
BASE_CHAIN = "PREROUTING"
BASE_PRIORITY = -300


def ref_id(container_id: str, ifname: str) -> str:
    return f"{container_id}-{ifname}"


def chain_names(ref: str) -> tuple[str, str]:
    iface = "cni-br-iface-" + ref
    return iface, iface + "-mac"


def comment(ref: str) -> str:
    return "macspoofchk-" + ref


def _chain(name: str, **extra) -> dict:
    return {"chain": {"family": FAMILY, "table": TABLE, "name": name, **extra}}


def _rule(chain: str, expr: list, ref: str) -> dict:
    return {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr,
                     "comment": comment(ref)}}


def setup_commands(host_iface: str, mac: str, ref: str) -> dict:
    iface_chain, mac_chain = chain_names(ref)
    return {"nftables": [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": _chain(BASE_CHAIN, type="filter", hook="prerouting", prio=BASE_PRIORITY,
                       policy="accept")},
        {"add": _chain(iface_chain)},
        {"add": _chain(mac_chain)},
        {"flush": _chain(iface_chain)},
        {"flush": _chain(mac_chain)},
        {"add": _rule(BASE_CHAIN, [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_iface}},
            {"jump": {"target": iface_chain}}], ref)},
        {"add": _rule(iface_chain, [{"jump": {"target": mac_chain}}], ref)},
        {"add": _rule(mac_chain, [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                       "right": mac}},
            {"return": None}], ref)},
        {"add": _rule(mac_chain, [{"drop": None}], ref)},
    ]}


def teardown_commands(ref: str, listing: dict | None) -> dict | None:
    """Delete the port's base-chain rules and its two chains, as far as
    `listing` (`nft -j list table bridge nat`) has them; None if nothing."""
    if not listing:
        return None
    iface_chain, mac_chain = chain_names(ref)
    items = listing.get("nftables", [])
    chains = {i["chain"]["name"] for i in items if "chain" in i}
    commands = []
    for item in items:
        rule = item.get("rule")
        if not rule or rule.get("chain") != BASE_CHAIN:
            continue
        jumps = [e["jump"].get("target") for e in rule.get("expr", []) if "jump" in e]
        if rule.get("comment") == comment(ref) or iface_chain in jumps:
            commands.append({"delete": {"rule": {"family": FAMILY, "table": TABLE,
                                                 "chain": BASE_CHAIN,
                                                 "handle": rule["handle"]}}})
    for name in (iface_chain, mac_chain):
        if name in chains:
            commands.append({"flush": _chain(name)})
    for name in (iface_chain, mac_chain):
        if name in chains:
            commands.append({"delete": _chain(name)})
    return {"nftables": commands} if commands else None


# --- running nft ------------------------------------------------------------------
# fwtools.nft_list / nft_apply, each step in fwtools.retrying.

WHAT = "setup spoof-check"    # the step named when nft is not installed


def _apply(compute, what: str) -> None:
    """Apply `compute()` (None: nothing to do) in one transaction, computed
    again when nft refuses it."""
    from pycni.fwtools import ToolError, nft_apply, retrying

    def step() -> None:
        commands = compute()
        if commands:
            nft_apply(commands, WHAT)
    try:
        retrying(step)
    except ToolError as err:
        raise CNIError(INTERNAL, f"failed to {what} spoof-check", err.details)


def list_table() -> dict | None:
    """`nft -j list table bridge nat`; None when it does not exist or
    cannot be read (nothing of ours either)."""
    from pycni.fwtools import ToolError, nft_list
    try:
        return nft_list(FAMILY, TABLE, WHAT)
    except ToolError:
        return None


def setup(host_iface: str, mac: str, ref: str) -> None:
    _apply(lambda: setup_commands(host_iface, mac, ref), "setup")


def teardown(ref: str) -> None:
    _apply(lambda: teardown_commands(ref, list_table()), "teardown")
