"""The nf_tables expressions iptables-nft writes for the rule shapes
pycni's iptables backends write, as pure functions.

With iptables-nft an iptables rule is an nf_tables rule: a list of
expressions (meta, payload, cmp, counter, immediate, xt match/target)
that the kernel dumps attribute by attribute. `expressions(args, family)`
computes that list for a rule in iptables-save form (the arguments after
`-A CHAIN`) as the kernel dumps it, for the few forms pycni writes:
`-p tcp|udp`, `-s`/`-d` with a whole-byte prefix, `-m tcp|udp --dport N`,
`-m comment --comment TEXT`, `-m multiport --dports P,...`, and a jump to
a chain or `-j DNAT --to-destination ADDR:PORT`. Any other argument gives
None. `rule_expressions(body)` reads a dumped rule the same way (a
counter's values left out).

The use: CHECK compares the two to see in-process (one dump of a chain)
that a rule is there, where an exec of iptables-restore with `-C` lines
costs ~10 ms. Equal lists are the same rule, byte for byte. Anything else
(another iptables version writing a rule otherwise, a form not covered
here) only means "not seen": the caller then asks iptables itself, so
this encoding can cost a fallback, never a wrong answer.

The order is iptables-nft's (1.8.x): protocol, source, destination, the
matches in the order given, a counter, the verdict or target.
"""

import struct

from . import ipaddr
from .netlink import attr, attr_items, attr_str_value, parse_attrs

NFT_REG_VERDICT, NFT_REG_1 = 0, 1
NFT_META_L4PROTO = 16
NFT_PAYLOAD_NETWORK, NFT_PAYLOAD_TRANSPORT = 1, 2
NFT_CMP_EQ = 0
NFT_JUMP = -3
PROTOCOLS = {"tcp": 6, "udp": 17}
# where saddr and daddr are in the IPv4 / IPv6 header
ADDRESS_OFFSET = {4: {"-s": 12, "-d": 16}, 6: {"-s": 8, "-d": 24}}
XT_MULTIPORT_DESTINATION = 1
XT_MULTIPORT_SIZE = 15
NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED = 1, 2
COMMENT_LEN = 256
# the counter's values change; only its place in the rule is compared
COUNTER = ("counter", b"")

Expr = tuple[str, bytes]


def _be32(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def _attrs(*items: tuple[int, bytes]) -> bytes:
    return b"".join(attr(kind, value) for kind, value in items)


def _xt_align(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def _cmp(value: bytes) -> Expr:
    return ("cmp", _attrs((1, _be32(NFT_REG_1)), (2, _be32(NFT_CMP_EQ)), (3, attr(1, value))))


def _payload(base: int, offset: int, length: int) -> Expr:
    return ("payload", _attrs((1, _be32(NFT_REG_1)), (2, _be32(base)), (3, _be32(offset)),
                              (4, _be32(length))))


def _protocol(name: str) -> list[Expr]:
    return [("meta", _attrs((2, _be32(NFT_META_L4PROTO)), (1, _be32(NFT_REG_1)))),
            _cmp(bytes([PROTOCOLS[name]]))]


def _address(flag: str, cidr: str, family: int) -> list[Expr] | None:
    net = ipaddr.ip_network(cidr)
    if net.version != family or net.prefixlen % 8:
        return None     # a bit mask: iptables adds a bitwise expression
    size = net.prefixlen // 8
    if size == 0:
        return []
    return [_payload(NFT_PAYLOAD_NETWORK, ADDRESS_OFFSET[family][flag], size),
            _cmp(net.network_address.packed[:size])]


def _xt(kind: str, name: str, revision: int, info: bytes) -> Expr:
    return (kind, _attrs((1, name.encode() + b"\0"), (2, _be32(revision)), (3, _xt_align(info))))


def _multiport(ports: str) -> Expr | None:
    numbers = [int(p) for p in ports.split(",") if p.isdigit()]
    if not numbers or len(numbers) > XT_MULTIPORT_SIZE or ",".join(map(str, numbers)) != ports:
        return None
    unused = [0] * (XT_MULTIPORT_SIZE - len(numbers))
    packed = struct.pack(f"={XT_MULTIPORT_SIZE}H", *numbers, *unused)
    # flags, count, the ports, a flag per port (ranges: none), invert
    info = bytes([XT_MULTIPORT_DESTINATION, len(numbers)]) + packed + bytes(XT_MULTIPORT_SIZE + 1)
    return _xt("match", "multiport", 1, info)


def _dnat(target: str, family: int) -> Expr | None:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None     # iptables-save writes an IPv6 address in brackets
    try:
        address = ipaddr.ip_address(host)
    except ValueError:
        return None
    if address.version != family or not 0 < int(port) < 65536:
        return None
    addr = address.packed.ljust(16, b"\0")
    proto = struct.pack(">H", int(port))
    info = (struct.pack("=I", NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED) + addr + addr
            + proto + proto + b"\0\0")
    return _xt("target", "DNAT", 2, info)


def _jump(chain: str) -> Expr:
    verdict = attr(2, _attrs((1, _be32(NFT_JUMP)), (2, chain.encode() + b"\0")))
    return ("immediate", _attrs((1, _be32(NFT_REG_VERDICT)), (2, verdict)))


def expressions(args: list[str], family: int) -> list[Expr] | None:
    """The expressions of the rule `args` (iptables-save form, no chain),
    as the kernel dumps a rule iptables-nft wrote; None for any form this
    module does not cover."""
    proto: list[Expr] = []
    addresses: dict[str, list[Expr]] = {"-s": [], "-d": []}
    matches: list[Expr] = []
    target: Expr | None = None
    i = 0
    try:
        while i < len(args):
            flag = args[i]
            if flag == "-p" and args[i + 1] in PROTOCOLS and not proto:
                proto = _protocol(args[i + 1])
                i += 2
            elif flag in addresses and not addresses[flag] and not matches:
                found = _address(flag, args[i + 1], family)
                if found is None:
                    return None
                addresses[flag] = found
                i += 2
            elif flag == "-m" and args[i + 1] in PROTOCOLS and args[i + 2] == "--dport" \
                    and args[i + 3].isdigit():
                port = int(args[i + 3])
                if not 0 < port < 65536 or not proto or str(port) != args[i + 3]:
                    return None
                matches += [_payload(NFT_PAYLOAD_TRANSPORT, 2, 2), _cmp(struct.pack(">H", port))]
                i += 4
            elif flag == "-m" and args[i + 1] == "comment" and args[i + 2] == "--comment":
                text = args[i + 3].encode()
                if len(text) >= COMMENT_LEN or b"\0" in text:
                    return None
                matches.append(_xt("match", "comment", 0, text.ljust(COMMENT_LEN, b"\0")))
                i += 4
            elif flag == "-m" and args[i + 1] == "multiport" and args[i + 2] == "--dports":
                found_port = _multiport(args[i + 3])
                if found_port is None:
                    return None
                matches.append(found_port)
                i += 4
            elif flag == "-j" and i + 2 == len(args) and args[i + 1].startswith("CNI-"):
                target = _jump(args[i + 1])
                i += 2
            elif flag == "-j" and args[i + 1] == "DNAT" and args[i + 2] == "--to-destination" \
                    and i + 4 == len(args):
                target = _dnat(args[i + 3], family)
                if target is None:
                    return None
                i += 4
            else:
                return None
    except (IndexError, ValueError):
        return None
    if target is None:
        return None
    return [*proto, *addresses["-s"], *addresses["-d"], *matches, COUNTER, target]


def rule_expressions(body: bytes) -> list[Expr]:
    """The expressions of a dumped rule (an NFT_MSG_NEWRULE body without
    its nfgenmsg header): (name, its data attributes as dumped), a
    counter's data left out."""
    out = []
    for _kind, raw in attr_items(parse_attrs(body).get(4, b"")):   # NFTA_RULE_EXPRESSIONS
        e = parse_attrs(raw)
        name = attr_str_value(e, 1, "replace")                      # NFTA_EXPR_NAME
        out.append(COUNTER if name == "counter" else (name, e.get(2, b"")))  # NFTA_EXPR_DATA
    return out
