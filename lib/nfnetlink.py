"""nf_tables over netlink, for the one question DEL asks on every call:
does a table exist at all?

Removing what the nftables ipMasq backend made starts with listing its
table, `nft -j list table ...`: an exec (~5-9 ms) on every bridge DEL,
even on the many nodes where nothing ever used nftables. Asking the kernel
directly (NFT_MSG_GETTABLE on a NETLINK_NETFILTER socket in this network
namespace) takes well under a millisecond and changes nothing; only when
the table exists is nft run to read and edit it.
"""

import errno
import struct

from . import netlink

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = 1
NFTA_TABLE_NAME = 1
NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
_NFGENMSG = struct.Struct("=BBH")   # family, version (NFNETLINK_V0), resource id


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
