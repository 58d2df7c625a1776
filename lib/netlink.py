"""A small rtnetlink client: the core (socket, attributes, errors) and
links, addresses and routes (RTM_*LINK, RTM_*ADDR, RTM_*ROUTE).

Other messages build on this core in modules of their own: rules and
whole route messages in netlink_rule, multipath routes in netlink_ecmp,
duplicate address detection in netlink_dad, host-device's link details in
netlink_hostdev, nf_tables in nfnetlink.

Why not pyroute2 here: importing it costs 122-206 ms even through its
narrowest usable imports (README, design notes), and a plugin is a fresh
process per call. The messages a CNI plugin needs are fixed structs plus
attributes, encoded here with `struct`. Tests decode every message built
here with pyroute2's message classes and read the kernel state back with
pyroute2 and `ip -j`.

A socket is bound to the network namespace it was created in: create it
inside `netns.entered(...)` to work on a container.
"""

from . import posixos as os
import struct
from .model import dataclass

# The C module: `socket` itself adds ~8 ms of imports (selectors, enum
# conversion of every constant) to each plugin call for nothing we use.
import _socket as socket

NETLINK_ROUTE = 0

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_HOST = 254

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_NLATTR = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def attr_str(kind: int, text: str) -> bytes:
    """A NUL-terminated string attribute. A NUL inside `text` would make the
    kernel read a shorter string (a config's master "eth0\\0x" would name
    eth0), so it is refused."""
    if "\0" in text:
        raise NetlinkError(22, f"name contains a NUL byte: {text!r}")   # EINVAL
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Attribute type -> payload (first occurrence; NLA_F_NESTED stripped)."""
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            break
        attrs.setdefault(kind & 0x3FFF, data[offset + _NLATTR.size: offset + length])
        offset += _align(length)
    return attrs


def _cstr(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode()


class NetlinkError(OSError):
    pass


class NetlinkSocket:
    """A netlink socket of `protocol` in the current network namespace."""

    def __init__(self, protocol: int):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  protocol)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request; return the reply messages (type, body).

        Raises NetlinkError with the kernel's errno on failure.
        """
        self.seq += 1
        seq = self.seq
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type,
                                flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0)
        self.sock.send(header + body)
        replies = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, mseq, _ = _NLMSGHDR.unpack_from(data, offset)
                payload = data[offset + _NLMSGHDR.size: offset + length]
                offset += _align(length)
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise NetlinkError(-code, os.strerror(-code))
                    return replies
                if kind == NLMSG_DONE:
                    return replies
                replies.append((kind, payload))  # a reply; the ACK follows


class RtNetlink(NetlinkSocket):
    """An rtnetlink socket in the current network namespace."""

    def __init__(self):
        super().__init__(NETLINK_ROUTE)


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


@dataclass
class Address:
    family: int
    address: str
    prefixlen: int
    scope: int
    index: int

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


def _format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body[_IFINFOMSG.size:])
    kind = ""
    if IFLA_LINKINFO in attrs:
        info = parse_attrs(attrs[IFLA_LINKINFO])
        if IFLA_INFO_KIND in info:
            kind = _cstr(info[IFLA_INFO_KIND])
    return Link(
        index=index, flags=flags,
        name=_cstr(attrs.get(IFLA_IFNAME, b"")),
        mtu=struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        mac=_format_mac(attrs.get(IFLA_ADDRESS, b"")),
        kind=kind,
        master=struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0,
        link=struct.unpack("=I", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else 0,
        operstate=attrs[IFLA_OPERSTATE][0] if IFLA_OPERSTATE in attrs else 0,
    )


def _get_link_message(nl: RtNetlink, index: int = 0, name: str = "") -> bytes | None:
    """The kernel's RTM_NEWLINK body for one link (by index or name), or None."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if name:
        if "\0" in name:
            return None   # no link has such a name (the kernel would cut it short)
        body += attr_str(IFLA_IFNAME, name)
    try:
        replies = nl.request(RTM_GETLINK, 0, body)
    except NetlinkError as exc:
        if exc.errno in (19, 2):  # ENODEV, ENOENT
            return None
        raise
    return next((payload for kind, payload in replies if kind == RTM_NEWLINK), None)


def get_link(nl: RtNetlink, name: str) -> Link | None:
    payload = _get_link_message(nl, name=name)
    return None if payload is None else _parse_link(payload)


def set_link_up(nl: RtNetlink, index: int, up: bool = True) -> None:
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP)
    nl.request(RTM_NEWLINK, 0, body)


def list_addresses(nl: RtNetlink, index: int = 0,
                   family: int = socket.AF_UNSPEC) -> list[Address]:
    """Addresses of link `index` (all links if 0), in kernel order."""
    body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETADDR, NLM_F_DUMP, body):
        if kind != RTM_NEWADDR:
            continue
        fam, prefixlen, _flags, scope, ifindex = _IFADDRMSG.unpack_from(payload)
        if index and ifindex != index:
            continue
        attrs = parse_attrs(payload[_IFADDRMSG.size:])
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is None:
            continue
        out.append(Address(fam, socket.inet_ntop(fam, raw), prefixlen, scope, ifindex))
    return out


# --- addresses ---------------------------------------------------------------

IFA_BROADCAST = 4


def _addr_body(index: int, cidr: str) -> tuple[int, bytes]:
    address, _, prefix = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    prefixlen = int(prefix) if prefix else bits
    raw = socket.inet_pton(family, address)
    body = _IFADDRMSG.pack(family, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    if family == socket.AF_INET and prefixlen < 31:
        host_bits = (1 << (32 - prefixlen)) - 1
        (value,) = struct.unpack("!I", raw)
        body += attr(IFA_BROADCAST, struct.pack("!I", value | host_bits))
    return family, body


def add_address(nl: RtNetlink, index: int, cidr: str) -> None:
    """Add `cidr` ("10.1.2.3/24", "fd00::3/64") to link `index`."""
    _, body = _addr_body(index, cidr)
    nl.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)


def del_address(nl: RtNetlink, index: int, cidr: str) -> None:
    _, body = _addr_body(index, cidr)
    nl.request(RTM_DELADDR, 0, body)


# --- routes ------------------------------------------------------------------

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_TABLE = 15
RTAX_MTU = 2
RTAX_ADVMSS = 8
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RTN_UNICAST = 1
RT_SCOPE_LINK = 253
_RTMSG = struct.Struct("=BBBBBBBBI")


@dataclass
class RouteEntry:
    family: int
    dst: str            # CIDR; "0.0.0.0/0" / "::/0" for default routes
    gw: str = ""
    oif: int = 0
    table: int = RT_TABLE_MAIN
    priority: int = 0
    scope: int = RT_SCOPE_UNIVERSE
    src: str = ""


def _route_body(dst: str, gw: str = "", oif: int = 0, table: int = RT_TABLE_MAIN,
                priority: int = 0, scope: int | None = None, src: str = "",
                mtu: int = 0, advmss: int = 0) -> bytes:
    address, _, prefix = dst.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    bits = 128 if family == socket.AF_INET6 else 32
    dst_len = int(prefix) if prefix else bits
    if scope is None:
        scope = RT_SCOPE_UNIVERSE if gw else RT_SCOPE_LINK
    body = _RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else 0,
                       RTPROT_BOOT, scope, RTN_UNICAST, 0)
    if dst_len:
        body += attr(RTA_DST, socket.inet_pton(family, address))
    if gw:
        body += attr(RTA_GATEWAY, socket.inet_pton(family, gw))
    if oif:
        body += attr_u32(RTA_OIF, oif)
    if priority:
        body += attr_u32(RTA_PRIORITY, priority)
    if src:
        body += attr(RTA_PREFSRC, socket.inet_pton(family, src))
    if table >= 256:
        body += attr_u32(RTA_TABLE, table)
    metrics = b""
    if mtu:
        metrics += attr_u32(RTAX_MTU, mtu)
    if advmss:
        metrics += attr_u32(RTAX_ADVMSS, advmss)
    if metrics:
        body += attr(RTA_METRICS, metrics)
    return body


def add_route(nl: RtNetlink, dst: str, gw: str = "", oif: int = 0, **kw) -> None:
    """Add a route; `dst` is a CIDR ("0.0.0.0/0" for the default route)."""
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, _route_body(dst, gw, oif, **kw))


def list_routes(nl: RtNetlink, family: int = socket.AF_UNSPEC,
                table: int | None = RT_TABLE_MAIN) -> list[RouteEntry]:
    """Routes of `table` (every table if None)."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    out = []
    for kind, payload in nl.request(RTM_GETROUTE, NLM_F_DUMP, body):
        if kind != RTM_NEWROUTE:
            continue
        fam, dst_len, _src_len, _tos, tbl, _proto, scope, rtype, _flags = \
            _RTMSG.unpack_from(payload)
        attrs = parse_attrs(payload[_RTMSG.size:])
        if RTA_TABLE in attrs:
            tbl = struct.unpack("=I", attrs[RTA_TABLE])[0]
        if table is not None and tbl != table:
            continue
        if rtype != RTN_UNICAST:
            continue
        zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        dst = socket.inet_ntop(fam, attrs[RTA_DST]) if RTA_DST in attrs else zero
        out.append(RouteEntry(
            family=fam, dst=f"{dst}/{dst_len}",
            gw=socket.inet_ntop(fam, attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else "",
            oif=struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0,
            table=tbl,
            priority=struct.unpack("=I", attrs[RTA_PRIORITY])[0]
            if RTA_PRIORITY in attrs else 0,
            scope=scope,
            src=socket.inet_ntop(fam, attrs[RTA_PREFSRC]) if RTA_PREFSRC in attrs else ""))
    return out


# --- creating and changing links -----------------------------------------------

IFLA_NET_NS_FD = 28
IFLA_PROTINFO = 12
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE = 1
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4          # hairpin
IFLA_BRPORT_ISOLATED = 33
NLA_F_NESTED = 0x8000
AF_BRIDGE = 7
IFF_PROMISC = 0x100

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _link_attrs(name: str = "", mtu: int = 0, mac: str = "", netns_fd: int | None = None,
                master: int = 0, link: int = 0) -> bytes:
    out = b""
    if name:
        out += attr_str(IFLA_IFNAME, name)
    if mtu:
        out += attr_u32(IFLA_MTU, mtu)
    if mac:
        out += attr(IFLA_ADDRESS, _mac_bytes(mac))
    if netns_fd is not None:
        out += attr_u32(IFLA_NET_NS_FD, netns_fd)
    if master:
        out += attr_u32(IFLA_MASTER, master)
    if link:
        out += attr_u32(IFLA_LINK, link)
    return out


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


def get_link_by_index(nl: RtNetlink, index: int) -> Link | None:
    payload = _get_link_message(nl, index=index)
    return None if payload is None else _parse_link(payload)


# --- macvlan details -----------------------------------------------------------

IFLA_MACVLAN_BC_QUEUE_LEN = 7
IFLA_MACVLAN_BC_QUEUE_LEN_USED = 8
MACVLAN_MODE_NAMES = {value: name for name, value in MACVLAN_MODES.items()}


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


# --- link flags and queue length (tuning) ----------------------------------------

IFF_ALLMULTI = 0x200
IFLA_TXQLEN = 13


def get_link_attrs(nl: RtNetlink, name: str) -> tuple[Link, dict[int, bytes]] | None:
    """Link `name` plus all its raw IFLA_* attributes, or None if absent."""
    payload = _get_link_message(nl, name=name)
    if payload is None:
        return None
    return _parse_link(payload), parse_attrs(payload[_IFINFOMSG.size:])


def attr_u32_value(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    raw = attrs.get(kind)
    return struct.unpack("=I", raw[:4])[0] if raw and len(raw) >= 4 else default


def set_allmulti(nl: RtNetlink, index: int, on: bool = True) -> None:
    _set_link(nl, index, b"", IFF_ALLMULTI if on else 0, IFF_ALLMULTI)


def set_txqlen(nl: RtNetlink, index: int, qlen: int) -> None:
    _set_link(nl, index, attr_u32(IFLA_TXQLEN, qlen))


# --- generic link creation -------------------------------------------------------

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
