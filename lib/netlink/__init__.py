"""A small netlink client, by message family as pyroute2 arranges it.

This package is the core every family builds on: the socket
(`NetlinkSocket`, `RtNetlink`), attributes (building: `attr`, `attr_str`,
`attr_u32`, `pack_attrs`; reading: `parse_attrs`, `attr_items`,
`attr_u32_value`, `attr_str_value`), the NLMSG_*/NLM_F_* constants and
`NetlinkError`. The rtnetlink message families live in modules of their
own, each with its RTM_*, IFLA_/IFA_/RTA_/FRA_* constants; what only one
plugin or one rare path needs is a module of its own beside its family
(named after it), so that the other plugins never load it:

- `link` (ifinfomsg): Link, look-ups, creating veth/bridge/macvlan/any
  kind, changing and deleting links, bridge-port flags;
  `linkinfo`: what host-device needs besides (every link with its alias,
  permanent address and parent device, the alias itself, a move into
  another namespace that renames in the same request);
- `addr` (ifaddrmsg): Address, list/add/delete;
  `addr_dad`: waiting for IPv6 duplicate address detection (`settle`);
- `route` (rtmsg): RouteEntry, add (exclusive or beside others, as the
  reference's RouteAddEcmp), list (multipath expanded or not), a
  prefix-route delete and a single-route look-up (`get_route_oif`);
  `route_msg`: the whole route messages sbr moves between tables;
- `rule` (fib_rule_hdr): routing-policy rules.

Callers import the families they use, under an `rt` prefix so that a
local variable named `link` or `route` never hides them:
`from pycni.netlink import link as rtlink` then `rtlink.get_link(nl, name)`.
A plugin process thus loads only the families it uses; nf_tables
(pycni.nfnetlink) builds on the same core.

Why not pyroute2 here: importing it costs 122-206 ms even through its
narrowest usable imports (README, design notes), and a plugin is a fresh
process per call. The messages a CNI plugin needs are fixed structs plus
attributes, encoded here with `struct`. Tests decode every message built
here with pyroute2's message classes and read the kernel state back with
pyroute2 and `ip -j`.

A socket is bound to the network namespace it was created in: create it
inside `netns.entered(...)` to work on a container.
"""

from .. import posixos as os
import errno
import struct

# The C module: `socket` itself adds ~8 ms of imports (selectors, enum
# conversion of every constant) to each plugin call for nothing we use.
import _socket as socket

NETLINK_ROUTE = 0

NLMSG_ERROR = 2
NLMSG_DONE = 3

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

NLA_F_NESTED = 0x8000

# Scopes of addresses (ifaddrmsg) and routes (rtmsg) alike.
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254

# struct nlattr: length (header included), type; payloads padded to 4 bytes
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
        raise NetlinkError(errno.EINVAL, f"name contains a NUL byte: {text!r}")
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def pack_attrs(*items: tuple[int, bytes | int | str | None]) -> bytes:
    """The attributes of the (type, value) `items`, in order, leaving out
    those whose value is None: bytes as they are, an int as u32, a str
    NUL-terminated (`attr_str`)."""
    out = b""
    for kind, value in items:
        if value is None:
            continue
        if isinstance(value, int):
            out += attr_u32(kind, value)
        elif isinstance(value, str):
            out += attr_str(kind, value)
        else:
            out += attr(kind, value)
    return out


def attr_items(data: bytes) -> list[tuple[int, bytes]]:
    """Every attribute as (type, payload), repeats included, in order
    (NLA_F_NESTED stripped from the type)."""
    out = []
    offset = 0
    while offset + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            break
        out.append((kind & 0x3FFF, data[offset + _NLATTR.size: offset + length]))
        offset += _align(length)
    return out


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Attribute type -> payload (first occurrence; NLA_F_NESTED stripped)."""
    attrs: dict[int, bytes] = {}
    for kind, payload in attr_items(data):
        attrs.setdefault(kind, payload)
    return attrs


def attr_str_value(attrs: dict[int, bytes], kind: int, errors: str = "strict") -> str:
    """A string attribute's text up to its NUL ("" if absent); `errors`
    as for bytes.decode."""
    return attrs.get(kind, b"").split(b"\0", 1)[0].decode(errors=errors)


class NetlinkError(OSError):
    pass


# struct nlmsghdr: length, type, flags, sequence number, port id
_NLMSGHDR = struct.Struct("=IHHII")


class NetlinkSocket:
    """A netlink socket of `protocol` (rtnetlink unless told otherwise) in
    the current network namespace."""

    def __init__(self, protocol: int = NETLINK_ROUTE):
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
        replies: list[tuple[int, bytes]] = []
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

    def send_batch(self, messages: list[tuple[int, int, bytes]]) -> list[int]:
        """Send `messages` ((type, flags, body) each; NLM_F_REQUEST is
        added) in one datagram, as nfnetlink takes a transaction, and
        return the error codes of the NLMSG_ERROR replies to them (0: an
        ACK), in order. The kernel handles such a datagram within the send
        (nfnetlink's batches do): the replies are queued when it returns,
        so they are read without waiting, and whatever is not there then
        is not coming (never a hang)."""
        first = self.seq + 1
        data = b""
        for msg_type, flags, body in messages:
            self.seq += 1
            data += _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags | NLM_F_REQUEST,
                                   self.seq, 0) + body
        self.sock.send(data)
        codes: list[int] = []
        while True:
            try:
                data = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return codes
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, mseq, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                if kind == NLMSG_ERROR and first <= mseq <= self.seq:
                    codes.append(struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0])
                offset += _align(length)


# An rtnetlink socket in the current network namespace: `RtNetlink()`. The
# same class under the name the families use (a subclass that only fixed
# the protocol would cost its creation in every plugin process).
RtNetlink = NetlinkSocket


def attr_u32_value(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    raw = attrs.get(kind)
    return struct.unpack("=I", raw[:4])[0] if raw and len(raw) >= 4 else default
