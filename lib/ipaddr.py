"""IP addresses, networks and interface addresses, the part of the stdlib
`ipaddress` API pycni uses, on `_socket.inet_pton` alone.

`ipaddress` costs ~5 ms of every plugin process that parses an address
(its own classes plus functools, collections, operator, ...; issue #12).
This module keeps its names and behaviour for what pycni needs:

- `ip_address(text)`, `ip_network(text, strict=True)`, `ip_interface(text)`
  parse strings (ValueError otherwise); `IPv4Address(n)` / `IPv6Address(n)`
  build from an integer.
- `Address`: `.version`, `.max_prefixlen`, `int()`, `str()` / `.compressed`
  (IPv6 in ipaddress' RFC 5952 form), `.ipv4_mapped` (IPv6 only, as in
  ipaddress), `.is_loopback`, `+`/`-` an integer, comparison and hashing.
- `Network`: `.network_address`, `.broadcast_address`, `.prefixlen`,
  `.netmask`, `.num_addresses`, `.version`, `.max_prefixlen`, `in`,
  `str()`, comparison and hashing.
- `Interface`: `.ip`, `.network`, `.prefixlen`, `.version`, `str()`.

Differences from ipaddress, all towards what Go's net.ParseIP/ParseCIDR
(the reference) accepts: an IPv6 zone ("fe80::1%eth0") is not an
address, and an IPv4 prefix must be a length, not a netmask
("10.0.0.0/255.255.255.0"). tests/unit/test_ipaddr.py checks the rest
against ipaddress itself.
"""

import _socket

_FAMILY = {4: _socket.AF_INET, 6: _socket.AF_INET6}
_BITS = {4: 32, 6: 128}
_MAPPED_PREFIX = 0xFFFF << 32


def _parse(text: str) -> tuple[int, int]:
    """(version, integer) of an address string; ValueError if it is none."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 address")
    version = 6 if ":" in text else 4
    try:
        packed = _socket.inet_pton(_FAMILY[version], text)
    except (OSError, ValueError):
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 address") from None
    return version, int.from_bytes(packed, "big")


class _Keyed:
    """Equality, ordering and hashing by `_key()`, among instances of one
    class; `max_prefixlen` from the instance's `version`."""

    __slots__ = ()

    @property
    def max_prefixlen(self) -> int:
        return _BITS[self.version]      # type: ignore[attr-defined]

    def _key(self):
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __lt__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class Address(_Keyed):
    __slots__ = ("version", "_int")

    def __init__(self, version: int, value: int):
        if not 0 <= value < (1 << _BITS[version]):
            raise ValueError(f"{value} does not fit an IPv{version} address")
        self.version = version
        self._int = value

    @property
    def packed(self) -> bytes:
        return self._int.to_bytes(self.max_prefixlen // 8, "big")

    @property
    def compressed(self) -> str:
        return str(self)

    @property
    def ipv4_mapped(self):
        if self.version != 6:
            raise AttributeError("'IPv4Address' object has no attribute 'ipv4_mapped'")
        if self._int >> 32 != 0xFFFF:
            return None
        return Address(4, self._int & 0xFFFFFFFF)

    @property
    def is_loopback(self) -> bool:
        return self._int >> 24 == 127 if self.version == 4 else self._int == 1

    def __int__(self) -> int:
        return self._int

    def __str__(self) -> str:
        return _socket.inet_ntop(_FAMILY[4], self.packed) if self.version == 4 \
            else _format6(self._int)

    def __repr__(self) -> str:
        return f"IPv{self.version}Address({str(self)!r})"

    def __add__(self, other: int) -> "Address":
        if not isinstance(other, int):
            return NotImplemented
        return Address(self.version, self._int + other)

    def __sub__(self, other: int) -> "Address":
        if not isinstance(other, int):
            return NotImplemented
        return Address(self.version, self._int - other)

    def _key(self):
        return self.version, self._int



def _format6(value: int) -> str:
    """ipaddress' IPv6 text: lowercase hex groups without leading zeros, the
    longest run of two or more zero groups (the first of equals) as '::'."""
    groups = ["%x" % ((value >> shift) & 0xFFFF) for shift in range(112, -16, -16)]
    best_start, best_len, start = -1, 0, -1
    for i, group in enumerate(groups + ["end"]):
        if group == "0":
            if start < 0:
                start = i
            continue
        if start >= 0 and i - start > best_len:
            best_start, best_len = start, i - start
        start = -1
    if best_len > 1:
        head = ":".join(groups[:best_start])
        tail = ":".join(groups[best_start + best_len:])
        return head + "::" + tail
    return ":".join(groups)


class Network(_Keyed):
    __slots__ = ("version", "_int", "prefixlen")

    def __init__(self, version: int, value: int, prefixlen: int):
        self.version = version
        self._int = value
        self.prefixlen = prefixlen

    @property
    def network_address(self) -> Address:
        return Address(self.version, self._int)

    @property
    def num_addresses(self) -> int:
        return 1 << (self.max_prefixlen - self.prefixlen)

    @property
    def broadcast_address(self) -> Address:
        return Address(self.version, self._int + self.num_addresses - 1)

    @property
    def netmask(self) -> Address:
        bits = self.max_prefixlen
        return Address(self.version, ((1 << bits) - 1) ^ ((1 << (bits - self.prefixlen)) - 1))

    def __contains__(self, addr) -> bool:
        if not isinstance(addr, Address) or addr.version != self.version:
            return False
        return addr._int >> (self.max_prefixlen - self.prefixlen) == \
            self._int >> (self.max_prefixlen - self.prefixlen)

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv{self.version}Network({str(self)!r})"

    def _key(self):
        return self.version, self._int, self.prefixlen



class Interface(_Keyed):
    """An address with the prefix length of its network (10.1.2.3/24)."""

    __slots__ = ("ip", "prefixlen")

    def __init__(self, ip: Address, prefixlen: int):
        self.ip = ip
        self.prefixlen = prefixlen

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def network(self) -> Network:
        host_bits = self.ip.max_prefixlen - self.prefixlen
        return Network(self.ip.version, self.ip._int >> host_bits << host_bits, self.prefixlen)

    @property
    def compressed(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv{self.version}Interface({str(self)!r})"

    def _key(self):
        return self.ip.version, self.ip._int, self.prefixlen



def ip_address(text: str) -> Address:
    return Address(*_parse(text))


def IPv4Address(value: int) -> Address:   # noqa: N802 - ipaddress' name
    return Address(4, value)


def IPv6Address(value: int) -> Address:   # noqa: N802 - ipaddress' name
    return Address(6, value)


def _split(text: str) -> tuple[Address, int]:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 network")
    addr_text, sep, prefix = text.partition("/")
    addr = ip_address(addr_text)
    if not sep:
        return addr, addr.max_prefixlen
    if not (prefix.isascii() and prefix.isdigit()) or int(prefix) > addr.max_prefixlen:
        raise ValueError(f"{prefix!r} is not a valid prefix length for {text!r}")
    return addr, int(prefix)


def ip_interface(text: str) -> Interface:
    return Interface(*_split(text))


def ip_network(text: str, strict: bool = True) -> Network:
    addr, prefixlen = _split(text)
    network = Interface(addr, prefixlen).network
    if strict and network._int != addr._int:
        raise ValueError(f"{text} has host bits set")
    return network
