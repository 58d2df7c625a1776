"""DHCPv4 messages (RFC 2131/2132, 3396, 3442), pure: build and parse.

Used by the dhcp daemon (ipam/dhcp/daemon.py), which does the sending;
the plugin side never loads this module. Only what a client needs:
DISCOVER, REQUEST (selecting, renewing, rebinding), RELEASE; parsing of
OFFER, ACK and NAK with the options the reference reads (subnet mask,
router, static routes 33, classless static routes 121, lease times).
"""

import struct

from .model import dataclass

BOOTREQUEST, BOOTREPLY = 1, 2
MAGIC = b"\x63\x82\x53\x63"
BROADCAST_FLAG = 0x8000
SERVER_PORT, CLIENT_PORT = 67, 68

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {1: "DHCPDISCOVER", 2: "DHCPOFFER", 3: "DHCPREQUEST", 4: "DHCPDECLINE",
              5: "DHCPACK", 6: "DHCPNAK", 7: "DHCPRELEASE", 8: "DHCPINFORM"}

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_HOST_NAME = 12
OPT_STATIC_ROUTES = 33
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_LIST = 55
OPT_MESSAGE = 56
OPT_MAX_SIZE = 57
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_CLASS_ID = 60
OPT_CLIENT_ID = 61
OPT_USER_CLASS = 77
OPT_CLASSLESS_ROUTES = 121
OPT_END = 255

# The option names the reference accepts in `request`/`provide` (options.go).
OPTION_NAMES = {
    "dhcp-client-identifier": OPT_CLIENT_ID,
    "subnet-mask": OPT_SUBNET_MASK,
    "routers": OPT_ROUTER,
    "host-name": OPT_HOST_NAME,
    "user-class": OPT_USER_CLASS,
    "vendor-class-identifier": OPT_CLASS_ID,
}

DEFAULT_LEASE_TIME = 3600       # the reference's defaultLeaseTime when the ACK has none
_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s")   # 236 bytes, then the magic cookie


class BadMessage(ValueError):
    pass


def parse_option_name(name: str) -> int:
    """options.go parseOptionName: a known name, else a decimal 0..255
    (strconv.ParseUint(name, 10, 8)). ValueError with Go's text otherwise."""
    if name in OPTION_NAMES:
        return OPTION_NAMES[name]
    if name and name.isascii() and name.isdigit():
        if int(name) <= 255:
            return int(name)
        raise ValueError(f'Can not parse option: strconv.ParseUint: parsing "{name}": '
                         "value out of range")
    raise ValueError(f'Can not parse option: strconv.ParseUint: parsing "{name}": '
                     "invalid syntax")


def ip_bytes(text: str) -> bytes:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return bytes(int(p) for p in parts)


def ip_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not an Ethernet address: {mac!r}")
    return raw


def encode_options(options) -> bytes:
    """(code, value) pairs; values longer than 255 bytes are split into
    several instances of the option (RFC 3396)."""
    out = bytearray()
    for code, value in options:
        value = bytes(value)
        if not value:
            out += bytes((code, 0))
        for i in range(0, len(value), 255):
            chunk = value[i:i + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(OPT_END)
    return bytes(out)


def build(msg_type: int, xid: int, mac: str, options=(), *, ciaddr: str = "0.0.0.0",
          broadcast: bool = False, secs: int = 0) -> bytes:
    """A BOOTREQUEST of DHCP type `msg_type`; `options` (code, bytes) pairs
    follow the message type option in the order given."""
    chaddr = mac_bytes(mac)
    header = _HEADER.pack(BOOTREQUEST, 1, 6, 0, xid & 0xFFFFFFFF, min(secs, 0xFFFF),
                          BROADCAST_FLAG if broadcast else 0,
                          int.from_bytes(ip_bytes(ciaddr), "big"), 0, 0, 0,
                          chaddr, b"", b"")
    msg = header + MAGIC + encode_options([(OPT_MESSAGE_TYPE, bytes((msg_type,)))] + list(options))
    if len(msg) < 300:          # BOOTP minimum; some servers drop shorter requests
        msg += bytes(300 - len(msg))
    return msg


@dataclass
class Message:
    """A parsed DHCP message: header fields (addresses as text) and options
    (code -> bytes, split instances concatenated as RFC 3396 says)."""
    op: int
    xid: int
    flags: int
    ciaddr: str
    yiaddr: str
    siaddr: str
    chaddr: bytes
    options: dict[int, bytes]

    @property
    def type(self) -> int:
        value = self.options.get(OPT_MESSAGE_TYPE, b"")
        return value[0] if len(value) == 1 else 0

    def ip_option(self, code: int) -> str:
        value = self.options.get(code, b"")
        return ip_text(value[:4]) if len(value) >= 4 else ""

    def ip_list(self, code: int) -> list[str]:
        value = self.options.get(code, b"")
        return [ip_text(value[i:i + 4]) for i in range(0, len(value) - 3, 4)]

    def u32(self, code: int, default: int) -> int:
        value = self.options.get(code, b"")
        return int.from_bytes(value, "big") if len(value) == 4 else default

    @property
    def server_id(self) -> str:
        return self.ip_option(OPT_SERVER_ID)

    def message_text(self) -> str:
        return self.options.get(OPT_MESSAGE, b"").decode("utf-8", "replace")

    def lease_times(self) -> tuple[int, int, int]:
        """(lease, renewal T1, rebinding T2) in seconds, with the
        reference's defaults: 1 h lease, T1 = lease/2, T2 = lease*85/100."""
        lease = self.u32(OPT_LEASE_TIME, DEFAULT_LEASE_TIME)
        t2 = self.u32(OPT_REBINDING_TIME, lease * 85 // 100)
        t1 = self.u32(OPT_RENEWAL_TIME, lease // 2)
        return lease, t1, t2


def _parse_options(data: bytes, into: dict) -> int:
    """Options from `data` into `into` (concatenating repeats); returns the
    overload option's value (0 when absent)."""
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= len(data):
            raise BadMessage("truncated option")
        length = data[i + 1]
        value = data[i + 2:i + 2 + length]
        if len(value) != length:
            raise BadMessage(f"option {code} is truncated")
        into[code] = into.get(code, b"") + value
        i += 2 + length
    overload = into.get(OPT_OVERLOAD, b"")
    return overload[0] if len(overload) == 1 else 0


def parse(data: bytes) -> Message:
    if len(data) < _HEADER.size + 4:
        raise BadMessage("shorter than a DHCP message")
    (op, _htype, hlen, _hops, xid, _secs, flags, ciaddr, yiaddr, siaddr, _giaddr,
     chaddr, sname, filename) = _HEADER.unpack_from(data)
    if data[_HEADER.size:_HEADER.size + 4] != MAGIC:
        raise BadMessage("no DHCP magic cookie")
    options: dict = {}
    overload = _parse_options(data[_HEADER.size + 4:], options)
    if overload & 1:
        _parse_options(filename, options)
    if overload & 2:
        _parse_options(sname, options)
    as_ip = lambda n: ip_text(n.to_bytes(4, "big"))  # noqa: E731
    return Message(op, xid, flags, as_ip(ciaddr), as_ip(yiaddr), as_ip(siaddr),
                   chaddr[:min(hlen, 16)], options)


def mask_prefix(mask: bytes) -> int | None:
    """The prefix length of a contiguous netmask, None for another mask."""
    value = int.from_bytes(mask, "big")
    bits = bin(value).count("1")
    if len(mask) != 4 or value != (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF:
        return None
    return bits


def classless_routes(value: bytes) -> list[tuple[str, str]]:
    """Option 121 (RFC 3442): [(dst CIDR, router)]; BadMessage if malformed."""
    routes = []
    i = 0
    while i < len(value):
        width = value[i]
        if width > 32:
            raise BadMessage("classless route with a prefix longer than 32")
        size = (width + 7) // 8
        if i + 1 + size + 4 > len(value):
            raise BadMessage("truncated classless route")
        dst = value[i + 1:i + 1 + size] + bytes(4 - size)
        router = value[i + 1 + size:i + 5 + size]
        routes.append((f"{ip_text(dst)}/{width}", ip_text(router)))
        i += 5 + size
    return routes


def classful_prefix(first_octet: int) -> int:
    """Go's net.IP.DefaultMask: class A /8, B /16, C /24; D and E have
    none (Go prints such an IPNet's mask as <nil>); 32 is returned here."""
    if first_octet < 0x80:
        return 8
    if first_octet < 0xC0:
        return 16
    if first_octet < 0xE0:
        return 24
    return 32


def static_routes(value: bytes) -> list[tuple[str, str]]:
    """Option 33: pairs of (classful destination, router), as the
    reference's parseRoutes reads them (the destination is not masked)."""
    routes = []
    for i in range(0, len(value) - 7, 8):
        dst, router = value[i:i + 4], value[i + 4:i + 8]
        routes.append((f"{ip_text(dst)}/{classful_prefix(dst[0])}", ip_text(router)))
    return routes


def client_id_option(client_id: str) -> bytes:
    """The reference's withClientID: type 0 (not a hardware address),
    then the text."""
    return b"\x00" + client_id.encode()


def generate_client_id(container_id: str, net_name: str, ifname: str) -> str:
    """daemon.go generateClientID: "ID/network/ifname", cut to 254 bytes."""
    cid = f"{container_id}/{net_name}/{ifname}"
    raw = cid.encode()
    if len(raw) > 254:
        cid = raw[:254].decode("utf-8", "ignore")
    return cid
