"""Links as host-device looks at them (ifinfomsg, beside `link`): every
link with what identifies it (alias, permanent address, parent device:
`LinkInfo`), the alias itself (IFLA_IFALIAS, where host-device keeps a
moved link's host name, as the reference does) and a move into another
namespace that renames in the same request.

Only host-device needs these, so they live apart from `link`, which
every link plugin loads.
"""

import errno

import _socket as socket

from ..model import dataclass
from . import NLM_F_DUMP, NetlinkError, RtNetlink, attr, attr_str, attr_str_value, attr_u32, \
    attr_u32_value, parse_attrs
from .link import (IFF_LOOPBACK, IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_KIND, IFLA_LINK,
                   IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD, RTM_GETLINK,
                   RTM_NEWLINK, _IFINFOMSG, Link, _format_mac, _set_link, get_link_message)

IFLA_IFALIAS = 20
IFLA_PERM_ADDRESS = 54
IFLA_PARENT_DEV_NAME = 56
IFLA_PARENT_DEV_BUS_NAME = 57
IFALIASZ = 256


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


def parse_link_info(body: bytes) -> LinkInfo:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body[_IFINFOMSG.size:])
    info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
    link = Link(index=index, flags=flags, name=attr_str_value(attrs, IFLA_IFNAME, "replace"),
                mtu=attr_u32_value(attrs, IFLA_MTU),
                mac=_format_mac(attrs.get(IFLA_ADDRESS, b"")),
                kind=attr_str_value(info, IFLA_INFO_KIND, "replace"),
                master=attr_u32_value(attrs, IFLA_MASTER), link=attr_u32_value(attrs, IFLA_LINK))
    perm = attrs.get(IFLA_PERM_ADDRESS, b"")
    return LinkInfo(link=link,
                    alias=attr_str_value(attrs, IFLA_IFALIAS, "replace"),
                    perm_mac=_format_mac(perm) if any(perm) else "",
                    parent=attr_str_value(attrs, IFLA_PARENT_DEV_NAME, "replace"),
                    parent_bus=attr_str_value(attrs, IFLA_PARENT_DEV_BUS_NAME, "replace"),
                    raw_mac=attrs.get(IFLA_ADDRESS, b""))


def get_link_info(nl: RtNetlink, name: str = "", index: int = 0) -> LinkInfo | None:
    """Link `name` (or `index`) with its identity, or None if there is none."""
    payload = get_link_message(nl, index=index, name=name)
    return None if payload is None else parse_link_info(payload)


def list_link_infos(nl: RtNetlink) -> list[LinkInfo]:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return [parse_link_info(p) for k, p in nl.request(RTM_GETLINK, NLM_F_DUMP, body)
            if k == RTM_NEWLINK]


def set_alias(nl: RtNetlink, index: int, alias: str) -> None:
    """Set link `index`'s alias; "" removes it."""
    raw = alias.encode()
    if b"\0" in raw or len(raw) >= IFALIASZ:
        raise NetlinkError(errno.EINVAL, f"invalid alias {alias!r}")
    _set_link(nl, index, attr(IFLA_IFALIAS, raw))


def move_link(nl: RtNetlink, index: int, netns_fd: int, name: str) -> None:
    """Move link `index` (of `nl`'s namespace) into the namespace `netns_fd`,
    named `name` there, in one request: the kernel renames while it moves
    when the current name is taken there, and right after the move (under
    the same lock) otherwise; in that second case a failed rename leaves
    the link moved under its old name (the caller checks and undoes)."""
    _set_link(nl, index, attr_u32(IFLA_NET_NS_FD, netns_fd) + attr_str(IFLA_IFNAME, name))
