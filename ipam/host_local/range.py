"""One host-local range: a `range` of the config as written (`RangeConf`),
its canonical form `Range` and how the one becomes the other (the
reference's backend/allocator/range.go), with the address helpers both use.

A `Range` holds integers: the subnet's network address and prefix, the
inclusive bounds start..end and the gateway, with the reference's defaults
filled in (start: network + 1; end: the last address, or the one before
the v4 broadcast address; gateway: network + 1). `canonicalize_range`
rejects the same mistakes with the same messages as the reference's
Range.Canonicalize.

A `gateway` outside its subnet, or of the other address family, is
accepted as the reference accepts it (it checks only that it is an IP
address) and reported in the result as written, with a warning
(pycni.log); it is then never one of the range's addresses, so the
subnet's first address is handed out too, as by the reference.
"""

from pycni.model import dataclass


@dataclass
class RangeConf:
    """One `range` of the config as written (also of the ipRanges capability)."""
    subnet: str = ""
    range_start: str = ""
    range_end: str = ""
    gateway: str = ""


class Range:
    """One pool: addresses start..end (inclusive) of a subnet, as integers.
    (A plain class: each dataclass costs ~0.5 ms to create at import.)"""
    __slots__ = ("family", "network", "prefix", "start", "end", "gateway", "foreign_gateway")

    def __init__(self, family: int, network: int, prefix: int, start: int, end: int,
                 gateway: int, foreign_gateway: str = ""):
        self.family = family        # 4 or 6
        self.network = network      # the subnet's network address
        self.prefix = prefix
        self.start = start
        self.end = end
        # A gateway of the other family is FOREIGN here (equal to no
        # address of the range) and its text `foreign_gateway`.
        self.gateway = gateway
        self.foreign_gateway = foreign_gateway

    @property
    def bits(self) -> int:
        return 32 if self.family == 4 else 128

    @property
    def last(self) -> int:
        """The subnet's last address (the v4 broadcast address)."""
        return self.network | ((1 << (self.bits - self.prefix)) - 1)

    def in_subnet(self, family: int, value: int) -> bool:
        return family == self.family and self.network <= value <= self.last

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.start <= value <= self.end \
            and self.in_subnet(family, value)

    def never_handed_out(self, value: int) -> bool:
        """Gateway, network address and (v4) broadcast address."""
        return value == self.gateway or value == self.network or \
            (self.family == 4 and value == self.last)

    def usable(self) -> int:
        """How many addresses of start..end can be handed out."""
        count = self.end - self.start + 1
        skipped = {self.gateway, self.network}
        if self.family == 4:
            skipped.add(self.last)
        return count - sum(1 for v in skipped if self.start <= v <= self.end)

    def text(self, value: int) -> str:
        if value == FOREIGN:
            return self.foreign_gateway
        return ip_text(self.family, value)

    def cidr(self, value: int) -> str:
        return f"{self.text(value)}/{self.prefix}"

    def subnet_text(self) -> str:
        return self.cidr(self.network)

    def __str__(self) -> str:
        return f"{self.text(self.start)}-{self.text(self.end)}"


# Range.gateway of a gateway of the other address family: no address is -1
FOREIGN = -1


# ------------------------------------------------------------ address helpers

def parse_ip(text: str) -> tuple[int, int]:
    """'10.1.2.3' or '10.1.2.3/24' -> (family, integer). v4-mapped v6
    addresses count as v4, as Go's net.IP does. Raises ValueError."""
    from pycni import ipaddr
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    addr = ipaddr.ip_interface(text.strip()).ip if "/" in text \
        else ipaddr.ip_address(text.strip())
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.version, int(addr)


def ip_text(family: int, value: int) -> str:
    from pycni import ipaddr
    if family == 4:
        return str(ipaddr.IPv4Address(value))
    return str(ipaddr.IPv6Address(value))


# ------------------------------------------------------------ canonicalizing

def canonicalize_range(rc: RangeConf) -> Range:
    """The reference's Range.Canonicalize; raises ValueError with its message."""
    from pycni import ipaddr
    if not rc.subnet:
        raise ValueError("subnet is missing")
    try:
        iface = ipaddr.ip_interface(rc.subnet.strip())
    except ValueError:
        raise ValueError(f"invalid CIDR address: {rc.subnet}") from None
    net = iface.network
    family, bits = net.version, net.max_prefixlen
    if net.version == 6 and iface.ip.ipv4_mapped is not None:
        raise ValueError("IPNet IP and Mask version mismatch")
    if net.prefixlen > bits - 2:
        raise ValueError(f"Network {rc.subnet.strip()} too small to allocate from")
    if iface.ip != net.network_address:
        raise ValueError(f"Network has host bits set. For a subnet mask of length "
                         f"{net.prefixlen} the network address is {net.network_address}")
    network = int(net.network_address)
    last = int(net.broadcast_address)
    probe = Range(family, network, net.prefixlen, network, last, network + 1)

    def address(text: str, what: str) -> int:
        try:
            fam, value = parse_ip(text)
        except ValueError:
            raise ValueError(f"invalid {what} {text!r}") from None
        if not probe.in_subnet(fam, value):
            name = {"rangeStart": "RangeStart", "rangeEnd": "RangeEnd"}.get(what, "Gateway")
            raise ValueError(f"{name} {text.strip()} not in network {net}")
        return value

    gateway, foreign = network + 1, ""
    if rc.gateway:
        try:
            gw_family, gateway = parse_ip(rc.gateway)
        except ValueError:
            raise ValueError(f"invalid gateway {rc.gateway!r}") from None
        if not probe.in_subnet(gw_family, gateway):
            # the reference takes any address: see the module doc
            from pycni import log
            log.warning(f"host-local: gateway {ip_text(gw_family, gateway)} is not in "
                        f"network {net}; it is reported as the gateway all the same")
            if gw_family != family:
                gateway, foreign = FOREIGN, ip_text(gw_family, gateway)
    start = address(rc.range_start, "rangeStart") if rc.range_start else network + 1
    if rc.range_end:
        end = address(rc.range_end, "rangeEnd")
    else:
        end = last - 1 if family == 4 else last
    if start > end:
        raise ValueError(f"RangeStart {ip_text(family, start)} is after "
                         f"RangeEnd {ip_text(family, end)}")
    return Range(family, network, net.prefixlen, start, end, gateway, foreign)


def overlaps(a: Range, b: Range) -> bool:
    return a.family == b.family and a.start <= b.end and b.start <= a.end
