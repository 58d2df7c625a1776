"""bandwidth: the rtnetlink traffic-control messages and dump parsing (pure).

The expected request bytes were captured (strace) from the reference binary
(Debian v1.1.1) adding ingress and egress limits of 8 Mbit/s, burst 80000
bits, on host veth index 2 with the IFB at index 4; the dumps are kernel
replies for that state.
"""

import pytest

from pycni.plugins.bandwidth import config as c
from pycni.plugins.bandwidth import tc

REF_TBF = (
    "000000000200000000000100ffffffff0000000008000100746266002c000200280001000000"
    "00000000000040420f00000000000000000000000000b88800005a62020000000000")
REF_INGRESS = "00000000020000000000fffff1ffffff000000000c000100696e67726573730004000200"
REF_FILTER = (
    "0000000002000000000000000000ffff0003010008000100753332009c00020024000500"
    "010001000000000000000000000000000000000000000000000000000000000008000100"
    "010001006c000700340001000b0001006d69727265640000240002002000020000000000"
    "000000000400000000000000000000000100000004000000340002000b0001006d697272"
    "656400002400020020000200000000000000000000000000000000000000000001000000"
    "04000000")

# RTM_NEWQDISC (dump) of the reference's TBF on ifindex 2
QDISC_DUMP = (
    "000000000200000000000100ffffffff0300000008000100746266002c00020028000100"
    "000000000000000040420f00000000000000000000000000b88800005a62020000000000"
    "05000c000000000030000700140001004600000000000000010000000000000018000300"
    "00000000000000000000000000000000000000002c000300460000000000000001000000"
    "00000000000000000000000000000000000000000000000000000000")
# RTM_NEWTFILTER (dump) of the reference's redirect filter on ifindex 2
FILTER_DUMP = (
    "0000000002000000000800800000ffff00030100080001007533320008000b0000000000"
    "8c0102002400050001000100000000000000000000000000000000000000000000000000"
    "000000000800020000000080080001000100010008000b00080000004c010700a4000100"
    "0b0001006d69727265640000440004001400010038000000000000000100000000000000"
    "140007000000000000000000000000000000000018000300000000000000000000000000"
    "000000000000000008000a00000000004800020020000200010000000000000004000000"
    "01000000010000000100000004000000240001001e070000000000009304000000000000"
    "00000000000000009304000000000000a40002000b0001006d6972726564000044000400"
    "140001000000000000000000000000000000000014000700000000000000000000000000"
    "0000000018000300000000000000000000000000000000000000000008000a0000000000"
    "480002002000020002000000000000000000000001000000010000000100000004000000"
    "240001001e070000000000001e0700000000000000000000000000000000000000000000")


def test_tbf_request_is_the_reference_message():
    params = c.tbf_params(8000000, 80000)
    assert tc.tbf_qdisc(2, params).hex() == REF_TBF


def test_ingress_request_is_the_reference_message():
    assert tc.ingress_qdisc(2).hex() == REF_INGRESS


def test_redirect_filter_is_the_reference_message():
    assert tc.redirect_filter(2, 4).hex() == REF_FILTER


def test_rate_beyond_32_bits_goes_in_rate64():
    params = c.tbf_params(40_000_000_000, 8_000_000)     # 5e9 bytes/s
    parsed = tc.parse_qdisc(tc.tbf_qdisc(3, params))
    assert parsed.tbf == params
    assert len(tc.tbf_qdisc(3, params)) == len(tc.tbf_qdisc(3, c.tbf_params(8000, 800))) + 12


def test_request_round_trips_through_the_parser():
    params = c.tbf_params(123456789, 987654)
    q = tc.parse_qdisc(tc.tbf_qdisc(7, params))
    assert (q.ifindex, q.kind, q.handle, q.parent, q.tbf) == \
        (7, "tbf", tc.TBF_HANDLE, tc.TC_H_ROOT, params)
    f = tc.parse_filter(tc.redirect_filter(7, 9))
    assert (f.kind, f.parent, f.priority, f.protocol, f.classid) == \
        ("u32", tc.INGRESS_HANDLE, 1, tc.ETH_P_ALL, tc.REDIRECT_CLASSID)
    assert [(r.ifindex, r.eaction, r.control) for r in f.redirects] == \
        [(9, tc.TCA_EGRESS_REDIR, tc.TC_ACT_STOLEN), (9, tc.TCA_EGRESS_REDIR, tc.TC_ACT_OK)]


def test_parse_kernel_qdisc_dump():
    q = tc.parse_qdisc(bytes.fromhex(QDISC_DUMP))
    assert (q.ifindex, q.kind, q.handle, q.parent) == (2, "tbf", tc.TBF_HANDLE, tc.TC_H_ROOT)
    assert q.tbf == c.TbfParams(rate=1000000, limit=35000, buffer=156250)


def test_parse_kernel_filter_dump():
    f = tc.parse_filter(bytes.fromhex(FILTER_DUMP))
    assert (f.ifindex, f.kind, f.priority, f.protocol, f.classid) == \
        (2, "u32", 1, tc.ETH_P_ALL, tc.REDIRECT_CLASSID)
    assert [(r.ifindex, r.control) for r in f.redirects] == \
        [(4, tc.TC_ACT_STOLEN), (4, tc.TC_ACT_OK)]


def test_non_tbf_qdisc_has_no_params():
    assert tc.parse_qdisc(bytes.fromhex(REF_INGRESS)).tbf is None


@pytest.mark.parametrize("truncated", [REF_FILTER[:80], REF_TBF[:120]])
def test_truncated_messages_do_not_crash(truncated):
    data = bytes.fromhex(truncated)
    tc.parse_filter(data)
    tc.parse_qdisc(data)
