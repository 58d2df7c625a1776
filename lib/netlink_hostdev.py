"""rtnetlink messages host-device needs beyond pycni.netlink's.

Links with everything that identifies them (alias, permanent address,
parent device), the alias itself (IFLA_IFALIAS, where host-device keeps a
moved link's host name, as the reference does) and a move into another
namespace that renames in the same request.

Built on pycni.netlink's core only; a socket is bound to the namespace it
was created in.
"""

import struct

import _socket as socket

from .model import dataclass
from .netlink import (IFF_LOOPBACK, IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_KIND,
                      IFLA_LINK, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD,
                      NLM_F_DUMP, RTM_GETLINK, RTM_NEWLINK, Link, NetlinkError,
                      RtNetlink, attr, attr_str, attr_u32, parse_attrs)

IFLA_IFALIAS = 20
IFLA_PERM_ADDRESS = 54
IFLA_PARENT_DEV_NAME = 56
IFLA_PARENT_DEV_BUS_NAME = 57
IFALIASZ = 256
ENODEV, ENOENT = 19, 2

_IFINFOMSG = struct.Struct("=BxHiII")


@dataclass
class LinkInfo:
    """A link as host-device looks at it."""
    link: Link
    alias: str = ""
    perm_mac: str = ""       # IFLA_PERM_ADDRESS ("" when the device has none)
    parent: str = ""         # IFLA_PARENT_DEV_NAME, e.g. a PCI address
    parent_bus: str = ""     # IFLA_PARENT_DEV_BUS_NAME, e.g. "pci"
    raw_mac: bytes = b""     # IFLA_ADDRESS as sent (any length: InfiniBand has 20)

    @property
    def index(self) -> int:
        return self.link.index

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def is_loopback(self) -> bool:
        return bool(self.link.flags & IFF_LOOPBACK)


def _text(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode(errors="replace")


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _u32(attrs: dict, kind: int) -> int:
    raw = attrs.get(kind, b"")
    return struct.unpack("=I", raw[:4])[0] if len(raw) >= 4 else 0


def parse_link_info(body: bytes) -> LinkInfo:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body[_IFINFOMSG.size:])
    info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
    link = Link(index=index, flags=flags, name=_text(attrs.get(IFLA_IFNAME, b"")),
                mtu=_u32(attrs, IFLA_MTU), mac=_mac(attrs.get(IFLA_ADDRESS, b"")),
                kind=_text(info.get(IFLA_INFO_KIND, b"")), master=_u32(attrs, IFLA_MASTER),
                link=_u32(attrs, IFLA_LINK))
    perm = attrs.get(IFLA_PERM_ADDRESS, b"")
    return LinkInfo(link=link,
                    alias=_text(attrs.get(IFLA_IFALIAS, b"")),
                    perm_mac=_mac(perm) if any(perm) else "",
                    parent=_text(attrs.get(IFLA_PARENT_DEV_NAME, b"")),
                    parent_bus=_text(attrs.get(IFLA_PARENT_DEV_BUS_NAME, b"")),
                    raw_mac=attrs.get(IFLA_ADDRESS, b""))


def get_link_info(nl: RtNetlink, name: str = "", index: int = 0) -> LinkInfo | None:
    """Link `name` (or `index`) with its identity, or None if there is none."""
    if name and "\0" in name:
        return None
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if name:
        body += attr_str(IFLA_IFNAME, name)
    try:
        replies = nl.request(RTM_GETLINK, 0, body)
    except NetlinkError as exc:
        if exc.errno in (ENODEV, ENOENT):
            return None
        raise
    for kind, payload in replies:
        if kind == RTM_NEWLINK:
            return parse_link_info(payload)
    return None


def list_link_infos(nl: RtNetlink) -> list[LinkInfo]:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return [parse_link_info(p) for k, p in nl.request(RTM_GETLINK, NLM_F_DUMP, body)
            if k == RTM_NEWLINK]


def _set_link(nl: RtNetlink, index: int, attrs: bytes) -> None:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + attrs
    nl.request(RTM_NEWLINK, 0, body)


def set_alias(nl: RtNetlink, index: int, alias: str) -> None:
    """Set link `index`'s alias; "" removes it."""
    raw = alias.encode()
    if b"\0" in raw or len(raw) >= IFALIASZ:
        raise NetlinkError(22, f"invalid alias {alias!r}")   # EINVAL
    _set_link(nl, index, attr(IFLA_IFALIAS, raw))


def move_link(nl: RtNetlink, index: int, netns_fd: int, name: str) -> None:
    """Move link `index` (of `nl`'s namespace) into the namespace `netns_fd`,
    named `name` there, in one request: the kernel renames while it moves
    when the current name is taken there, and right after the move (under
    the same lock) otherwise; in that second case a failed rename leaves
    the link moved under its old name (the caller checks and undoes)."""
    _set_link(nl, index, attr_u32(IFLA_NET_NS_FD, netns_fd) + attr_str(IFLA_IFNAME, name))
