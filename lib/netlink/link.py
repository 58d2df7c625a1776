"""Links (ifinfomsg): RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK / RTM_SETLINK.

Look-ups (`get_link`, `get_link_by_index`, `get_link_attrs`,
`get_link_info_data`, the raw `get_link_message`), creation (veth,
bridge, macvlan, any kind), changes (up, master, name, MTU, MAC,
promiscuous and all-multicast flags, queue length), deletion and
bridge-port flags. What host-device needs besides (links with their
alias, permanent address and parent device; moves between namespaces)
is in `pycni.netlink.linkinfo`, which only host-device loads.
"""

from .. import posixos as os
import errno
import struct

import _socket as socket

from ..model import dataclass
from . import (NLA_F_NESTED, NLM_F_CREATE, NLM_F_EXCL, NetlinkError, RtNetlink, attr,
               attr_str, attr_str_value, attr_u32, pack_attrs, parse_attrs)

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFF_LOWER_UP = 0x10000

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_PROTINFO = 12
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE = 1
IFLA_MACVLAN_BC_QUEUE_LEN = 7
IFLA_MACVLAN_BC_QUEUE_LEN_USED = 8
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4          # hairpin
IFLA_BRPORT_ISOLATED = 33
AF_BRIDGE = 7

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
MACVLAN_MODE_NAMES = {value: name for name, value in MACVLAN_MODES.items()}

_IFINFOMSG = struct.Struct("=BxHiII")


@dataclass
class Link:
    index: int
    name: str
    flags: int
    mtu: int = 0
    mac: str = ""
    kind: str = ""
    master: int = 0
    link: int = 0          # IFLA_LINK: a veth's peer index, a macvlan's parent
    operstate: int = 0     # IFLA_OPERSTATE (RFC 2863): 2 down, 6 up, ...

    @property
    def is_up(self) -> bool:
        return bool(self.flags & IFF_UP)


def _format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body[_IFINFOMSG.size:])
    kind = ""
    if IFLA_LINKINFO in attrs:
        kind = attr_str_value(parse_attrs(attrs[IFLA_LINKINFO]), IFLA_INFO_KIND)
    return Link(
        index=index, flags=flags,
        name=attr_str_value(attrs, IFLA_IFNAME),
        mtu=struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        mac=_format_mac(attrs.get(IFLA_ADDRESS, b"")),
        kind=kind,
        master=struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0,
        link=struct.unpack("=I", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else 0,
        operstate=attrs[IFLA_OPERSTATE][0] if IFLA_OPERSTATE in attrs else 0,
    )


def get_link_message(nl: RtNetlink, index: int = 0, name: str = "") -> bytes | None:
    """The kernel's RTM_NEWLINK body for one link (by index or name), or None."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if name:
        if "\0" in name:
            return None   # no link has such a name (the kernel would cut it short)
        body += attr_str(IFLA_IFNAME, name)
    try:
        replies = nl.request(RTM_GETLINK, 0, body)
    except NetlinkError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    return next((payload for kind, payload in replies if kind == RTM_NEWLINK), None)


def get_link(nl: RtNetlink, name: str) -> Link | None:
    payload = get_link_message(nl, name=name)
    return None if payload is None else _parse_link(payload)


def get_link_by_index(nl: RtNetlink, index: int) -> Link | None:
    payload = get_link_message(nl, index=index)
    return None if payload is None else _parse_link(payload)


def get_link_attrs(nl: RtNetlink, name: str) -> tuple[Link, dict[int, bytes]] | None:
    """Link `name` plus all its raw IFLA_* attributes, or None if absent."""
    payload = get_link_message(nl, name=name)
    if payload is None:
        return None
    return _parse_link(payload), parse_attrs(payload[_IFINFOMSG.size:])


def get_link_info_data(nl: RtNetlink, name: str) -> tuple[Link, dict[int, bytes]] | None:
    """Link `name` and its kind-specific attributes (IFLA_INFO_DATA), or None."""
    found = get_link_attrs(nl, name)
    if found is None:
        return None
    link, attrs = found
    info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
    return link, parse_attrs(info.get(IFLA_INFO_DATA, b""))


def macvlan_mode(data: dict[int, bytes]) -> str:
    """The mode name in a macvlan's IFLA_INFO_DATA ("" if absent or unknown)."""
    raw = data.get(IFLA_MACVLAN_MODE)
    if raw is None:
        return ""
    return MACVLAN_MODE_NAMES.get(struct.unpack("=I", raw[:4])[0], "")


def set_link_up(nl: RtNetlink, index: int, up: bool = True) -> None:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP)
    nl.request(RTM_NEWLINK, 0, body)


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _link_attrs(name: str = "", mtu: int = 0, mac: str = "", netns_fd: int | None = None,
                master: int = 0, link: int = 0) -> bytes:
    """The attributes of what is set ("" and 0 are not; a netns fd is
    unless None)."""
    return pack_attrs((IFLA_IFNAME, name or None), (IFLA_MTU, mtu or None),
                      (IFLA_ADDRESS, _mac_bytes(mac) if mac else None),
                      (IFLA_NET_NS_FD, netns_fd), (IFLA_MASTER, master or None),
                      (IFLA_LINK, link or None))


def _linkinfo(kind: str, data: bytes = b"") -> bytes:
    info = attr_str(IFLA_INFO_KIND, kind)
    if data:
        info += attr(IFLA_INFO_DATA, data)
    return attr(IFLA_LINKINFO, info)


def _new_link(nl: RtNetlink, attrs: bytes) -> None:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attrs
    nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)


def create_veth(nl: RtNetlink, name: str, peer: str, peer_netns_fd: int | None = None,
                mtu: int = 0, mac: str = "", peer_mac: str = "") -> None:
    """Create veth `name` here and its peer `peer` (in `peer_netns_fd` if given)."""
    peer_msg = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + \
        _link_attrs(peer, mtu, peer_mac, peer_netns_fd)
    _new_link(nl, _link_attrs(name, mtu, mac) +
              _linkinfo("veth", attr(VETH_INFO_PEER, peer_msg)))


def create_bridge(nl: RtNetlink, name: str, mtu: int = 0,
                  vlan_filtering: bool | None = None, mac: str = "") -> None:
    data = b""
    if vlan_filtering is not None:
        data = attr(IFLA_BR_VLAN_FILTERING, struct.pack("=B", int(vlan_filtering)))
    _new_link(nl, _link_attrs(name, mtu, mac) + _linkinfo("bridge", data))


def create_macvlan_ext(nl: RtNetlink, name: str, master: int, mode: str = "bridge",
                       netns_fd: int | None = None, mtu: int = 0, mac: str = "",
                       bc_queue_len: int = 0) -> None:
    """A macvlan on `master`, with the broadcast/multicast queue length
    (IFLA_MACVLAN_BC_QUEUE_LEN, kernel >= 5.11; 0 keeps the driver default)."""
    data = attr_u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])
    if bc_queue_len:
        data += attr_u32(IFLA_MACVLAN_BC_QUEUE_LEN, bc_queue_len)
    _new_link(nl, _link_attrs(name, mtu, mac, netns_fd, link=master) +
              _linkinfo("macvlan", data))


def create_link(nl: RtNetlink, name: str, kind: str, mtu: int = 0, up: bool = False,
                txqlen: int | None = None, data: bytes = b"") -> None:
    """Create link `name` of `kind` ("ifb", ...) here; `data` is its raw
    IFLA_INFO_DATA. `up` brings it up in the same request; `txqlen` (0 is
    a value) overrides the driver's default queue length."""
    flags = IFF_UP if up else 0
    attrs = _link_attrs(name, mtu)
    if txqlen is not None:
        attrs += attr_u32(IFLA_TXQLEN, txqlen)
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, flags, flags) + attrs + _linkinfo(kind, data)
    nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)


def random_mac() -> str:
    """A random locally administered unicast MAC address."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return _format_mac(bytes(raw))


def _set_link(nl: RtNetlink, index: int, attrs: bytes, flags: int = 0,
              change: int = 0) -> None:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change) + attrs
    nl.request(RTM_NEWLINK, 0, body)


def set_master(nl: RtNetlink, index: int, master: int) -> None:
    """Enslave link `index` to bridge `master` (0 to release it)."""
    _set_link(nl, index, attr_u32(IFLA_MASTER, master))


def rename_link(nl: RtNetlink, index: int, name: str) -> None:
    """Rename (the link must be down)."""
    _set_link(nl, index, attr_str(IFLA_IFNAME, name))


def set_mtu(nl: RtNetlink, index: int, mtu: int) -> None:
    _set_link(nl, index, attr_u32(IFLA_MTU, mtu))


def set_mac(nl: RtNetlink, index: int, mac: str) -> None:
    _set_link(nl, index, attr(IFLA_ADDRESS, _mac_bytes(mac)))


def set_promisc(nl: RtNetlink, index: int, on: bool = True) -> None:
    _set_link(nl, index, b"", IFF_PROMISC if on else 0, IFF_PROMISC)


def set_allmulti(nl: RtNetlink, index: int, on: bool = True) -> None:
    _set_link(nl, index, b"", IFF_ALLMULTI if on else 0, IFF_ALLMULTI)


def set_txqlen(nl: RtNetlink, index: int, qlen: int) -> None:
    _set_link(nl, index, attr_u32(IFLA_TXQLEN, qlen))


def delete_link(nl: RtNetlink, index: int) -> None:
    nl.request(RTM_DELLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))


def set_bridge_port(nl: RtNetlink, index: int, hairpin: bool | None = None,
                    isolated: bool | None = None) -> None:
    """Bridge-port flags of link `index` (it must be enslaved to a bridge)."""
    protinfo = b""
    if hairpin is not None:
        protinfo += attr(IFLA_BRPORT_MODE, struct.pack("=B", int(hairpin)))
    if isolated is not None:
        protinfo += attr(IFLA_BRPORT_ISOLATED, struct.pack("=B", int(isolated)))
    if not protinfo:
        return
    body = _IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0) + \
        attr(IFLA_PROTINFO | NLA_F_NESTED, protinfo)
    nl.request(RTM_SETLINK, 0, body)
