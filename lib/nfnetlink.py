"""nf_tables over netlink, for what DEL does on every call.

- `table_exists`: does a table exist at all? Removing what the nftables
  ipMasq backend made starts with listing its table, `nft -j list table
  ...`: an exec (~5-9 ms) on every bridge DEL, even on the many nodes
  where nothing ever used nftables. Asking the kernel directly
  (NFT_MSG_GETTABLE on a NETLINK_NETFILTER socket in this network
  namespace) takes well under a millisecond and changes nothing; only
  when the table exists is nft run to read and edit it.
- `remove_chains`: the teardown of an attachment's iptables chains
  (bridge ipMasq, portmap) where iptables is iptables-nft, whose rules
  are nf_tables rules in the `ip`/`ip6` tables of iptables' names: the
  rules of the entry chain that jump to the attachment's chains are
  listed (a dump of that one chain) and deleted with those chains in one
  nf_tables transaction, in-process. It replaces an exec of
  iptables-restore (3-5 ms of exec and start-up, plus its listing).

Deleting rules has a cost at the end: the kernel frees them after an RCU
grace period (~10-15 ms here), and closing a NETLINK_NETFILTER socket
waits for a grace period still running. A caller with other work to do
(bridge DEL deletes the veth) keeps the socket open across that work, so
the grace period passes in the meantime and the close is free.
"""

import errno
import struct

from . import netlink

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFT_MSG_GETTABLE = 1
NFT_MSG_GETCHAIN = 4
NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_DELRULE = 8
NFTA_TABLE_NAME = 1
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_HANDLE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NFTA_VERDICT_CHAIN = 2
NFT_JUMP = -3
AF_UNSPEC = 0
NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
_NFGENMSG = struct.Struct("=BBH")   # family, version (NFNETLINK_V0), resource id
# a batch's begin and end: family AF_UNSPEC, the subsystem as resource id (big-endian)
_BATCH_BODY = struct.pack("=BB", AF_UNSPEC, 0) + struct.pack(">H", NFNL_SUBSYS_NFTABLES)


def table_exists(family: str, name: str) -> bool | None:
    """Whether nf_tables holds table `family name` in this network
    namespace: True or False as the kernel answers, None when it could
    not be asked (then the caller runs nft, as without this check)."""
    body = _NFGENMSG.pack(NFPROTO[family], 0, 0) + netlink.attr_str(NFTA_TABLE_NAME, name)
    try:
        with netlink.NetlinkSocket(NETLINK_NETFILTER) as nl:
            nl.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 0, body)
    except netlink.NetlinkError as err:
        return False if err.errno == errno.ENOENT else None
    except OSError:
        return None
    return True


def _nft(kind: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | kind


def _head(family: str) -> bytes:
    return _NFGENMSG.pack(NFPROTO[family], 0, 0)


def chain_body(family: str, table: str, chain: str) -> bytes:
    """The body naming one chain (NFT_MSG_GETCHAIN, NFT_MSG_DELCHAIN)."""
    return _head(family) + netlink.pack_attrs((NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain))


def rule_body(family: str, table: str, chain: str, handle: int | None = None) -> bytes:
    """The body naming one rule by its handle, or (no handle) every rule
    of the chain: NFT_MSG_GETRULE's dump filter, NFT_MSG_DELRULE (which
    flushes the chain without a handle)."""
    body = _head(family) + netlink.pack_attrs((NFTA_RULE_TABLE, table), (NFTA_RULE_CHAIN, chain))
    if handle is not None:
        body += netlink.attr(NFTA_RULE_HANDLE, struct.pack(">Q", handle))
    return body


def rule_jump(body: bytes) -> tuple[int, str] | None:
    """(handle, chain) of a rule (an NFT_MSG_NEWRULE body) whose verdict
    is a jump to that chain (`-j CHAIN`); None for any other rule."""
    attrs = netlink.parse_attrs(body[_NFGENMSG.size:])
    raw_handle = attrs.get(NFTA_RULE_HANDLE, b"")
    if len(raw_handle) != 8:
        return None
    for _kind, expr in netlink.attr_items(attrs.get(NFTA_RULE_EXPRESSIONS, b"")):
        e = netlink.parse_attrs(expr)
        if netlink.attr_str_value(e, NFTA_EXPR_NAME, "replace") != "immediate":
            continue
        data = netlink.parse_attrs(e.get(NFTA_EXPR_DATA, b""))
        verdict = netlink.parse_attrs(netlink.parse_attrs(
            data.get(NFTA_IMMEDIATE_DATA, b"")).get(NFTA_DATA_VERDICT, b""))
        code = verdict.get(NFTA_VERDICT_CODE, b"")
        if len(code) == 4 and struct.unpack(">i", code)[0] == NFT_JUMP:
            return (struct.unpack(">Q", raw_handle)[0],
                    netlink.attr_str_value(verdict, NFTA_VERDICT_CHAIN, "replace"))
    return None


def removal_batch(family: str, table: str, entry: str, handles: list[int],
                  chains: list[str]) -> list[tuple[int, int, bytes]]:
    """The transaction deleting rules `handles` of chain `entry`, then
    flushing and deleting `chains`: (type, flags, body) messages for
    NetlinkSocket.send_batch, each content message asking for its ACK."""
    ack = netlink.NLM_F_ACK
    batch = [(NFNL_MSG_BATCH_BEGIN, 0, _BATCH_BODY)]
    batch += [(_nft(NFT_MSG_DELRULE), ack, rule_body(family, table, entry, h)) for h in handles]
    for chain in chains:
        batch.append((_nft(NFT_MSG_DELRULE), ack, rule_body(family, table, chain)))
        batch.append((_nft(NFT_MSG_DELCHAIN), ack, chain_body(family, table, chain)))
    batch.append((NFNL_MSG_BATCH_END, 0, _BATCH_BODY))
    return batch


def chain_exists(nl: netlink.NetlinkSocket, family: str, table: str, chain: str) -> bool:
    try:
        nl.request(_nft(NFT_MSG_GETCHAIN), 0, chain_body(family, table, chain))
    except netlink.NetlinkError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def _rules(nl: netlink.NetlinkSocket, family: str, table: str, chain: str,
           naming: list[str] | None) -> list[bytes]:
    """The NFT_MSG_NEWRULE bodies of every rule of `chain`, in order (a
    dump of that one chain); with `naming`, only those whose bytes hold
    one of these chain names NUL-terminated, as a jump's target is: a
    cheap filter before any parsing (an entry chain holds a rule per
    container, 500 on a busy node)."""
    replies = nl.request(_nft(NFT_MSG_GETRULE), netlink.NLM_F_DUMP, rule_body(family, table, chain))
    keys = [name.encode() + b"\0" for name in naming] if naming is not None else None
    return [body for kind, body in replies if kind == _nft(NFT_MSG_NEWRULE)
            and (keys is None or any(key in body for key in keys))]


def rule_bodies(nl: netlink.NetlinkSocket, family: str, table: str, chain: str,
                naming: list[str] | None = None) -> list[bytes]:
    """The rules of `chain` (as `_rules`), without their nfgenmsg header."""
    return [body[_NFGENMSG.size:] for body in _rules(nl, family, table, chain, naming)]


def jumps_in(nl: netlink.NetlinkSocket, family: str, table: str, chain: str,
             targets: list[str] | None = None) -> list[tuple[int, str]]:
    """(handle, target) of every rule of `chain` that jumps to a chain;
    with `targets`, only of the rules that name one of them."""
    found = (rule_jump(body) for body in _rules(nl, family, table, chain, targets))
    return [j for j in found if j is not None]


def remove_chains(nl: netlink.NetlinkSocket, family: str, table: str, entry: str,
                  chains: list[str]) -> bool | None:
    """Delete every rule of chain `entry` that jumps to one of `chains`,
    then flush and delete those of `chains` that exist, in one nf_tables
    transaction over `nl` (iptables-nft's `-D`, `-F`, `-X` of them).
    True: removed; False: none of it existed (no such chains, no such
    table); None: not done, for any reason (a rule in another chain still
    jumping to one of `chains`, a change under us, an error or an
    unexpected reply): the caller then runs its iptables-restore way,
    which decides as before. Verified: after the transaction the chains
    must be gone."""
    try:
        present = [c for c in chains if chain_exists(nl, family, table, c)]
        handles = [h for h, target in jumps_in(nl, family, table, entry, chains)
                   if target in chains]
        if not present and not handles:
            return False
        codes = nl.send_batch(removal_batch(family, table, entry, handles, present))
        if len(codes) != len(handles) + 2 * len(present) or any(codes):
            return None
        if any(chain_exists(nl, family, table, c) for c in present):
            return None
    except OSError:
        return None
    return True
