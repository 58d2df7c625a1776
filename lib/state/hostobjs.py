"""Host-side objects that belong to an attachment.

Found by the names and comments the plugins (ours and the reference's,
which use the same) give them:

  ipMasq, iptables   nat chain `CNI-<sha512(network+id)>`, its rules and
                     the POSTROUTING jumps commented `name: "NET" id: "ID"`
  portmap, iptables  nat chain `CNI-DN-<sha512(network+id)>`, jumped to from
                     CNI-HOSTPORT-DNAT by rules commented
                     `dnat name: "NET" id: "ID"`
  ipMasq, nftables   rules of `inet cni_plugins_masquerade` chain
                     masq_checks commented `<hash(NET)>-<hash(IF:ID)>, net:
                     NET, if: IF, id: ID`
  veth               the interfaces of a cached result outside the sandbox
                     that exist as veths on the host

The parsers are pure; `collect` runs `iptables-save -t nat` (and ip6tables,
nft) through pycni.fwtools, the system's tools from the trusted PATH, and
only for tables that exist.
"""

import re

from pycni.digest import hashed_name
from pycni.ipmasq import chain_name as masq_chain

from .model import HostObject

CHAIN_LEN = 28
MASQ_COMMENT = re.compile(r'^name: "((?:[^"\\]|\\.)*)" id: "((?:[^"\\]|\\.)*)"$')
DNAT_COMMENT = re.compile(r'^dnat name: "((?:[^"\\]|\\.)*)" id: "((?:[^"\\]|\\.)*)"$')
NFT_TABLE = "cni_plugins_masquerade"
NFT_CHAIN = "masq_checks"
NFT_COMMENT = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}), net: (.*), if: (.*), id: (.*)$")


def portmap_chain(network: str, container_id: str) -> str:
    return hashed_name("CNI-DN-", network + container_id, CHAIN_LEN)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _comment_of(args: list[str]) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == "--comment":
            return args[i + 1]
    return None


def iptables_objects(text: str, family: int, networks=None) -> list[HostObject]:
    """Attributable objects in an `iptables-save -t nat` listing. A chain
    is reported when its commented rules or the chain itself exist (the
    chain's name is the hash of the network and ID the comments give)."""
    from pycni.iptsave import parse_saved
    saved = parse_saved(text)
    where = "iptables nat" if family == 4 else "ip6tables nat"
    rules: dict[tuple[str, str, str], int] = {}
    for _chain, args, _line in saved.rules:
        comment = _comment_of(args)
        if not comment:
            continue
        for kind, pattern in (("ipmasq", MASQ_COMMENT), ("portmap", DNAT_COMMENT)):
            m = pattern.match(comment)
            if m:
                owner = (kind, _unquote(m.group(1)), _unquote(m.group(2)))
                rules[owner] = rules.get(owner, 0) + 1
    out = []
    for (kind, network, cid), count in sorted(rules.items()):
        if networks is not None and network not in networks:
            continue
        chain = masq_chain(network, cid) if kind == "ipmasq" else portmap_chain(network, cid)
        inside = len(saved.lines.get(chain, ()))
        exists = chain in saved.chains
        detail = f"{count} commented rule{'s' if count != 1 else ''}"
        if kind == "portmap" or not exists:
            detail += f", chain {'with ' + str(inside) + ' rules' if exists else 'gone'}"
        out.append(HostObject(kind, where, chain, network, cid, "", detail))
    return out


def orphan_chains(text: str, family: int, owners) -> list[HostObject]:
    """Chains of known (network, ID) owners that exist without a single
    commented rule naming them (a half-removed attachment)."""
    from pycni.iptsave import parse_saved
    saved = parse_saved(text)
    where = "iptables nat" if family == 4 else "ip6tables nat"
    found = {(o.name, o.network, o.container_id)
             for o in iptables_objects(text, family)}
    out = []
    for network, cid in sorted(set(owners)):
        for kind, chain in (("ipmasq", masq_chain(network, cid)),
                            ("portmap", portmap_chain(network, cid))):
            if chain in saved.chains and (chain, network, cid) not in found:
                out.append(HostObject(kind, where, chain, network, cid, "",
                                      f"chain with {len(saved.lines.get(chain, ()))} rules, "
                                      "no commented rule"))
    return out


def nft_masq_objects(listing: dict | None, networks=None) -> list[HostObject]:
    """Rules of `nft -j list table inet cni_plugins_masquerade`."""
    from pycni.ipmasq.nftables import instance_comment, network_hash
    out = []
    items = (listing or {}).get("nftables") or []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict) or rule.get("chain") != NFT_CHAIN:
            continue
        m = NFT_COMMENT.match(str(rule.get("comment") or ""))
        if not m:
            continue
        network, ifname, cid = m.group(3), m.group(4), m.group(5)
        if network_hash(network) != m.group(1) or \
                instance_comment(network, ifname, cid) != rule.get("comment"):
            continue        # cut short or not of this shape: not attributable
        if networks is not None and network not in networks:
            continue
        source = ""
        for expr in rule.get("expr") or []:
            match = expr.get("match") if isinstance(expr, dict) else None
            if match and match.get("op") == "==" and \
                    (match.get("left") or {}).get("payload", {}).get("field") == "saddr":
                source = str(match.get("right"))
        out.append(HostObject("ipmasq", f"nft inet {NFT_TABLE}",
                              f"handle {rule.get('handle')}", network, cid, ifname,
                              f"saddr {source}" if source else ""))
    return out


def veth_objects(network: str, container_id: str, ifname: str,
                 links: list[dict]) -> list[HostObject]:
    """`links`: the host-side interfaces of a cached result as found on the
    host ({"name", "kind", "master"}); veths only (a bridge is shared)."""
    out = []
    for link in links:
        if link.get("kind") != "veth":
            continue
        master = link.get("master") or ""
        out.append(HostObject("veth", "link", link["name"], network, container_id, ifname,
                              f"master {master}" if master else ""))
    return out


# --- collecting -----------------------------------------------------------------

def collect_firewall(networks: set[str], owners, problems: list[str]) -> list[HostObject]:
    """The firewall objects of `networks` in this network namespace.
    `owners`: (network, ID) pairs whose chains are looked for also without
    commented rules. Tools that are missing or fail add to `problems`."""
    from pycni import fwtools
    out = []
    for family in (4, 6):
        tool = fwtools.IPT_TOOLS[family][0]
        if fwtools.find_tool(tool) is None or fwtools.no_table(family, "nat"):
            continue
        try:
            text = fwtools.iptables_save(family, "nat")
        except Exception as exc:     # a failing tool is reported, never a traceback
            problems.append(f"{tool} -t nat: {exc}")
            continue
        out += iptables_objects(text, family, networks)
        out += orphan_chains(text, family, [o for o in owners if o[0] in networks])
    out += _collect_nft(networks, problems)
    return out


def _collect_nft(networks: set[str], problems: list[str]) -> list[HostObject]:
    from pycni import fwtools, jsontext, nfnetlink
    if fwtools.find_tool("nft") is None or nfnetlink.table_exists("inet", NFT_TABLE) is False:
        return []
    code, stdout, stderr = fwtools.run_nft(["-j", "list", "table", "inet", NFT_TABLE])
    if code != 0:
        if "No such file" not in stderr:
            problems.append(f"nft list table inet {NFT_TABLE}: {stderr}")
        return []
    try:
        listing = jsontext.loads(stdout)
    except ValueError as exc:
        problems.append(f"nft list table inet {NFT_TABLE}: {exc}")
        return []
    return nft_masq_objects(listing, networks)


def link_facts(names: list[str]) -> list[dict]:
    """{"name", "kind", "master"} of each of `names` that exists here."""
    if not names:
        return []
    from pycni import netlink
    from ..netlink import link as rtlink
    out = []
    with netlink.RtNetlink() as nl:
        for name in names:
            link = rtlink.get_link(nl, name)
            if link is None:
                continue
            master = rtlink.get_link_by_index(nl, link.master) if link.master else None
            out.append({"name": link.name, "kind": link.kind,
                        "master": master.name if master else ""})
    return out

