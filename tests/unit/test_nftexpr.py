"""pycni.nftexpr: the expressions iptables-nft writes for pycni's rule
forms. The real-kernel comparison with rules iptables-nft wrote is
tests/integration/test_portmap.py::test_check_sees_the_rules_in_process_where_iptables_is_nft;
here the pure parts: which forms are covered (anything else is None, so
that CHECK asks iptables), the layout of what is covered, and the reading
of a dumped rule (pyroute2 encodes it)."""

import pytest
from pyroute2.netlink.nfnetlink.nftsocket import nft_rule_msg

from pycni import nftexpr

from test_oracle_netlink import encoded

DNAT = ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.1.0.5:80"]
ENTRY = ["-p", "udp", "-m", "comment", "--comment", 'dnat name: "n" id: "c"', "-m", "multiport",
         "--dports", "53,5353", "-j", "CNI-DN-abc"]


def test_covered_forms_in_iptables_nft_order():
    names = [n for n, _ in nftexpr.expressions(
        ["-s", "10.1.0.0/16", "-d", "10.1.0.5/32", "-p", "tcp", "-m", "tcp", "--dport", "1",
         "-j", "CNI-HOSTPORT-SETMARK"], 4)]
    # protocol first, then source, destination, the port, the counter, the jump
    assert names == ["meta", "cmp", "payload", "cmp", "payload", "cmp", "payload", "cmp",
                     "counter", "immediate"]
    assert [n for n, _ in nftexpr.expressions(DNAT, 4)][-1] == "target"
    assert [n for n, _ in nftexpr.expressions(ENTRY, 4)] == \
        ["meta", "cmp", "match", "match", "counter", "immediate"]
    six = nftexpr.expressions(["-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "DNAT",
                               "--to-destination", "[fd00::5]:8080"], 6)
    assert six is not None and six[-1][0] == "target"


@pytest.mark.parametrize("args, family", [
    (["!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"], 4),                 # negation, MASQUERADE
    (["-s", "10.1.0.0/23", "-j", "CNI-X"], 4),                           # a bit mask
    (["-s", "10.1.0.0/24", "-j", "CNI-X"], 6),                           # another family
    (["-i", "eth0", "-j", "CNI-X"], 4),                                  # interfaces
    (["-p", "sctp", "-j", "CNI-X"], 4),
    (["-p", "tcp", "-m", "tcp", "--dport", "0", "-j", "CNI-X"], 4),
    (["-p", "tcp", "-m", "tcp", "--dport", "080", "-j", "CNI-X"], 4),
    (["-p", "tcp", "-m", "multiport", "--dports", "1:5", "-j", "CNI-X"], 4),
    (["-p", "tcp", "-m", "multiport", "--dports", ",".join(map(str, range(1, 17))), "-j", "CNI-X"], 4),
    (["-p", "tcp", "-m", "comment", "--comment", "x" * 256, "-j", "CNI-X"], 4),
    (["-j", "DNAT", "--to-destination", "10.1.0.5"], 4),                 # no port
    (["-j", "DNAT", "--to-destination", "fd00::5:80"], 6),               # no brackets
    (["-j", "DNAT", "--to-destination", "10.1.0.5:80", "--random"], 4),
    (["-j", "ACCEPT"], 4),
    (["-p", "tcp"], 4),                                                  # no target
    (["-p"], 4),
])
def test_uncovered_forms_are_none(args, family):
    assert nftexpr.expressions(args, family) is None


def test_multiport_and_dnat_layout():
    import struct
    from pycni.netlink import parse_attrs
    multiport = parse_attrs(nftexpr.expressions(ENTRY, 4)[3][1])
    assert multiport[1] == b"multiport\0" and multiport[2] == struct.pack(">I", 1)
    # xt_multiport_v1: flags (destination), count, 15 ports, 15 pflags, invert; 48 bytes
    assert multiport[3] == bytes([1, 2]) + struct.pack("=15H", 53, 5353, *[0] * 13) + bytes(16)
    dnat = parse_attrs(nftexpr.expressions(DNAT, 4)[-1][1])
    assert dnat[1] == b"DNAT\0" and dnat[2] == struct.pack(">I", 2)
    # nf_nat_range2: flags (map IPs, proto specified), min and max address, min, max and
    # base port, padded to 48 bytes
    addr = bytes([10, 1, 0, 5]).ljust(16, b"\0")
    assert dnat[3] == struct.pack("=I", 3) + addr + addr + struct.pack(">HH", 80, 80) + bytes(8)


def test_rule_expressions_reads_a_dumped_rule():
    want = nftexpr.expressions(["-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "CNI-DN-x"], 4)
    m = nft_rule_msg()
    m["attrs"] = [("NFTA_RULE_TABLE", "nat"), ("NFTA_RULE_EXPRESSIONS", [
        {"attrs": [("NFTA_EXPR_NAME", "meta"), ("NFTA_EXPR_DATA", {"attrs": [
            ("NFTA_META_KEY", 16), ("NFTA_META_DREG", 1)]})]},
        {"attrs": [("NFTA_EXPR_NAME", "counter"), ("NFTA_EXPR_DATA", {"attrs": [
            ("NFTA_COUNTER_BYTES", 99), ("NFTA_COUNTER_PACKETS", 1)]})]},
    ])]
    body = encoded(m)[4:]       # without the nfgenmsg header
    got = nftexpr.rule_expressions(body)
    assert got[0] == want[0] and got[1] == nftexpr.COUNTER
