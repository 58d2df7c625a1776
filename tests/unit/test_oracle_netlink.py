"""Every rtnetlink message pycni builds, decoded by pyroute2 (the oracle).

pycni's plugins carry their own netlink codec (lib/netlink/,
plugins/bandwidth/tc.py, lib/nfnetlink.py) because importing pyroute2 costs more than a whole plugin call. Here pyroute2's
message classes (ifinfmsg, ifaddrmsg, rtmsg, tcmsg, nft_table_msg)
decode what our code would send, and every field is compared with what
the call meant; in the other direction our parsers read messages that
pyroute2 encodes the way the kernel dumps them.

No kernel is involved: a `Capture` stands where an RtNetlink socket is
expected and records each request (type, flags, body). The rule messages
(lib/netlink/rule.py) and whole route messages (route.py's RouteMsg) are
covered by test_sbr_netlink_rule.py; this file only adds their request
types and flags.
"""

import socket
import struct

import pytest
from pyroute2.netlink.nfnetlink.nftsocket import nft_table_msg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from pycni import netlink as nl
from pycni.netlink import link as rtlink, addr as rtaddr, route as rtroute, rule as rtrule
from pycni.netlink import addr_dad as rtdad, linkinfo as rtlinkinfo, route_msg as rtroutemsg
from pycni import nfnetlink
from pycni.plugins.bandwidth import tc
from pycni.plugins.bandwidth.config import TbfParams
from pycni.netns_fixtures import netlink_testing as nlt

NLMSGHDR = struct.Struct("=IHHII")
CREATE_EXCL = nl.NLM_F_CREATE | nl.NLM_F_EXCL


class Capture:
    """Stands in for an RtNetlink socket: records requests, answers `replies`."""

    def __init__(self, replies=()):
        self.sent: list[tuple[int, int, bytes]] = []
        self.replies = list(replies)

    def request(self, msg_type, flags, body):
        self.sent.append((msg_type, flags, body))
        return self.replies

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def only(self) -> tuple[int, int, bytes]:
        assert len(self.sent) == 1, self.sent
        return self.sent[0]


def decoded(cls, msg_type: int, body: bytes):
    """`body` as pyroute2 reads it: a message of class `cls`."""
    msg = cls(NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type,
                            nl.NLM_F_REQUEST | nl.NLM_F_ACK, 1, 0) + body)
    msg.decode()
    assert msg["header"]["length"] == NLMSGHDR.size + len(body)
    return msg


def sent(cls, call, *args, **kw):
    """Run `call(capture, ...)` and decode its one request with `cls`:
    (msg_type, flags, decoded message)."""
    cap = Capture()
    call(cap, *args, **kw)
    msg_type, flags, body = cap.only()
    return msg_type, flags, decoded(cls, msg_type, body)


def attrs(msg) -> list[tuple]:
    """(name, value) of every attribute, in order."""
    return [(a[0], a[1]) for a in msg["attrs"]]


def names(msg) -> list[str]:
    return [a[0] for a in msg["attrs"]]


def encoded(msg) -> bytes:
    """The body (no netlink header) of a message pyroute2 encodes."""
    msg.encode()
    return bytes(msg.data[NLMSGHDR.size:msg["header"]["length"]])


def raw_attr(body: bytes, offset: int, path: list[int]) -> bytes | None:
    """The raw payload at nested attribute `path` (types), for attributes
    pyroute2's tables do not name."""
    data = body[offset:]
    for kind in path:
        found = nl.parse_attrs(data)
        if kind not in found:
            return None
        data = found[kind]
    return data


# --- links ---------------------------------------------------------------------

def test_create_veth_names_both_ends_and_puts_the_peer_in_its_namespace():
    msg_type, flags, msg = sent(ifinfmsg, rtlink.create_veth, "veth1", "eth0", peer_netns_fd=7,
                                mtu=1400, mac="02:00:00:00:00:01",
                                peer_mac="02:00:00:00:00:02")
    assert (msg_type, flags) == (rtlink.RTM_NEWLINK, CREATE_EXCL)
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, 0, 0, 0)
    assert msg.get_attr("IFLA_IFNAME") == "veth1"
    assert msg.get_attr("IFLA_MTU") == 1400
    assert msg.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:01"
    assert msg.get_attr("IFLA_NET_NS_FD") is None     # this end stays here
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert (peer["family"], peer["index"]) == (0, 0)
    assert attrs(peer) == [("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1400),
                           ("IFLA_ADDRESS", "02:00:00:00:00:02"), ("IFLA_NET_NS_FD", 7)]


def test_create_veth_minimal_sends_only_the_names():
    _, _, msg = sent(ifinfmsg, rtlink.create_veth, "v0", "p0")
    assert names(msg) == ["IFLA_IFNAME", "IFLA_LINKINFO"]
    peer = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert attrs(peer) == [("IFLA_IFNAME", "p0")]


@pytest.mark.parametrize("filtering", [None, False, True])
def test_create_bridge(filtering):
    msg_type, flags, msg = sent(ifinfmsg, rtlink.create_bridge, "cni0", mtu=9000,
                                vlan_filtering=filtering, mac="0a:58:0a:f4:00:01")
    assert (msg_type, flags) == (rtlink.RTM_NEWLINK, CREATE_EXCL)
    assert msg.get_attr("IFLA_IFNAME") == "cni0"
    assert msg.get_attr("IFLA_MTU") == 9000
    assert msg.get_attr("IFLA_ADDRESS") == "0a:58:0a:f4:00:01"
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "bridge"
    data = info.get_attr("IFLA_INFO_DATA")
    if filtering is None:
        assert data is None
    else:
        assert attrs(data) == [("IFLA_BR_VLAN_FILTERING", int(filtering))]


@pytest.mark.parametrize("mode", sorted(rtlink.MACVLAN_MODES))
def test_create_macvlan_modes(mode):
    _, flags, msg = sent(ifinfmsg, rtlink.create_macvlan_ext, "mv0", 3, mode=mode, netns_fd=9,
                         mtu=1500, mac="02:42:ac:11:00:02")
    assert flags == CREATE_EXCL
    assert attrs(msg)[:5] == [("IFLA_IFNAME", "mv0"), ("IFLA_MTU", 1500),
                              ("IFLA_ADDRESS", "02:42:ac:11:00:02"),
                              ("IFLA_NET_NS_FD", 9), ("IFLA_LINK", 3)]
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "macvlan"
    assert info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_MACVLAN_MODE") == mode


@pytest.mark.parametrize("queue_len", [0, 1, 100, 1 << 20])
def test_create_macvlan_ext_broadcast_queue_length(queue_len):
    cap = Capture()
    rtlink.create_macvlan_ext(cap, "mv1", 4, mode="private", netns_fd=5, bc_queue_len=queue_len)
    _, _, body = cap.only()
    msg = decoded(ifinfmsg, rtlink.RTM_NEWLINK, body)
    assert attrs(msg)[:3] == [("IFLA_IFNAME", "mv1"), ("IFLA_NET_NS_FD", 5), ("IFLA_LINK", 4)]
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert data.get_attr("IFLA_MACVLAN_MODE") == "private"
    # pyroute2 0.9 does not name IFLA_MACVLAN_BC_QUEUE_LEN (7): read it raw
    raw = raw_attr(body, 16, [rtlink.IFLA_LINKINFO, rtlink.IFLA_INFO_DATA,
                              rtlink.IFLA_MACVLAN_BC_QUEUE_LEN])
    if queue_len:
        assert raw == struct.pack("=I", queue_len)
        assert [a[0] for a in data["attrs"]] == ["IFLA_MACVLAN_MODE", "UNKNOWN"]
    else:
        assert raw is None
        assert [a[0] for a in data["attrs"]] == ["IFLA_MACVLAN_MODE"]


@pytest.mark.parametrize("up", [False, True])
def test_create_link_ifb(up):
    _, flags, msg = sent(ifinfmsg, rtlink.create_link, "bwp0", "ifb", mtu=1450, up=up, txqlen=0)
    assert flags == CREATE_EXCL
    want = rtlink.IFF_UP if up else 0
    assert (msg["flags"], msg["change"]) == (want, want)
    assert attrs(msg)[:3] == [("IFLA_IFNAME", "bwp0"), ("IFLA_MTU", 1450), ("IFLA_TXQLEN", 0)]
    assert msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "ifb"


def test_create_link_without_txqlen_keeps_the_driver_default():
    _, _, msg = sent(ifinfmsg, rtlink.create_link, "bwp1", "ifb")
    assert names(msg) == ["IFLA_IFNAME", "IFLA_LINKINFO"]


@pytest.mark.parametrize("call, args, want", [
    (rtlink.set_master, (8,), [("IFLA_MASTER", 8)]),
    (rtlink.set_master, (0,), [("IFLA_MASTER", 0)]),
    (rtlink.set_mtu, (1280,), [("IFLA_MTU", 1280)]),
    (rtlink.set_mac, ("ce:3f:00:12:ab:ff",), [("IFLA_ADDRESS", "ce:3f:00:12:ab:ff")]),
    (rtlink.set_txqlen, (0,), [("IFLA_TXQLEN", 0)]),
    (rtlink.set_txqlen, (5000,), [("IFLA_TXQLEN", 5000)]),
    (rtlink.rename_link, ("eth1",), [("IFLA_IFNAME", "eth1")]),
])
def test_link_attribute_changes(call, args, want):
    msg_type, flags, msg = sent(ifinfmsg, call, 42, *args)
    assert (msg_type, flags) == (rtlink.RTM_NEWLINK, 0)
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, 42, 0, 0)
    assert attrs(msg) == want


@pytest.mark.parametrize("call, bit", [(rtlink.set_promisc, rtlink.IFF_PROMISC),
                                       (rtlink.set_allmulti, rtlink.IFF_ALLMULTI),
                                       (rtlink.set_link_up, rtlink.IFF_UP)])
@pytest.mark.parametrize("on", [True, False])
def test_link_flag_changes_touch_only_their_bit(call, bit, on):
    msg_type, flags, msg = sent(ifinfmsg, call, 6, on)
    assert (msg_type, flags) == (rtlink.RTM_NEWLINK, 0)
    assert msg["index"] == 6
    assert msg["change"] == bit
    assert msg["flags"] == (bit if on else 0)
    assert attrs(msg) == []


def test_delete_link():
    msg_type, flags, msg = sent(ifinfmsg, rtlink.delete_link, 17)
    assert (msg_type, flags) == (rtlink.RTM_DELLINK, 0)
    assert (msg["family"], msg["index"], msg["flags"], msg["change"]) == (0, 17, 0, 0)
    assert attrs(msg) == []


@pytest.mark.parametrize("hairpin, isolated, want", [
    (True, None, [("IFLA_BRPORT_MODE", 1)]),
    (False, None, [("IFLA_BRPORT_MODE", 0)]),
    (None, True, [("IFLA_BRPORT_ISOLATED", 1)]),
    (True, False, [("IFLA_BRPORT_MODE", 1), ("IFLA_BRPORT_ISOLATED", 0)]),
])
def test_bridge_port_flags_are_nested_protinfo_of_the_bridge_family(hairpin, isolated, want):
    cap = Capture()
    rtlink.set_bridge_port(cap, 9, hairpin=hairpin, isolated=isolated)
    msg_type, flags, body = cap.only()
    assert (msg_type, flags) == (rtlink.RTM_SETLINK, 0)
    msg = decoded(ifinfmsg, msg_type, body)
    assert (msg["family"], msg["index"]) == (socket.AF_BRIDGE, 9)
    [protinfo] = msg["attrs"]
    assert protinfo[0] == "IFLA_PROTINFO"
    # the kernel wants NLA_F_NESTED on it (pyroute2 strips the flag when decoding)
    assert struct.unpack_from("=HH", body, 16)[1] == rtlink.IFLA_PROTINFO | nl.NLA_F_NESTED
    assert attrs(protinfo[1]) == want


def test_bridge_port_without_flags_sends_nothing():
    cap = Capture()
    rtlink.set_bridge_port(cap, 9)
    assert cap.sent == []


@pytest.mark.parametrize("call, kw, want_index, want_attrs", [
    (rtlink.get_link, {"name": "eth0"}, 0, [("IFLA_IFNAME", "eth0")]),
    (rtlink.get_link_by_index, {"index": 12}, 12, []),
    (rtlinkinfo.get_link_info, {"name": "ens5"}, 0, [("IFLA_IFNAME", "ens5")]),
    (rtlinkinfo.get_link_info, {"index": 3}, 3, []),
])
def test_link_queries(call, kw, want_index, want_attrs):
    msg_type, flags, msg = sent(ifinfmsg, call, **kw)
    assert (msg_type, flags) == (rtlink.RTM_GETLINK, 0)
    assert (msg["family"], msg["index"]) == (0, want_index)
    assert attrs(msg) == want_attrs


@pytest.mark.parametrize("call", [nlt.list_links, rtlinkinfo.list_link_infos])
def test_link_dumps(call):
    msg_type, flags, msg = sent(ifinfmsg, call)
    assert (msg_type, flags) == (rtlink.RTM_GETLINK, nl.NLM_F_DUMP)
    assert (msg["family"], msg["index"], attrs(msg)) == (0, 0, [])


def test_names_with_a_nul_are_refused_before_anything_is_sent():
    cap = Capture()
    with pytest.raises(nl.NetlinkError):
        rtlink.rename_link(cap, 3, "eth0\0x")
    assert rtlink.get_link(cap, "eth0\0x") is None
    assert rtlinkinfo.get_link_info(cap, "eth0\0x") is None
    assert cap.sent == []


# --- host-device -----------------------------------------------------------------

def test_set_alias():
    msg_type, flags, msg = sent(ifinfmsg, rtlinkinfo.set_alias, 4, "ens5")
    assert (msg_type, flags) == (rtlink.RTM_NEWLINK, 0)
    assert msg["index"] == 4
    # IFLA_IFALIAS goes without a NUL (as iproute2 sends it); pyroute2 reads it as text
    assert attrs(msg) == [("IFLA_IFALIAS", "ens5")]


def test_set_alias_empty_removes_it():
    cap = Capture()
    rtlinkinfo.set_alias(cap, 4, "")
    _, _, body = cap.only()
    assert raw_attr(body, 16, [rtlinkinfo.IFLA_IFALIAS]) == b""


def test_move_link_moves_and_renames_in_one_request():
    msg_type, flags, msg = sent(ifinfmsg, rtlinkinfo.move_link, 5, 8, "net1")
    assert (msg_type, flags) == (rtlink.RTM_NEWLINK, 0)
    assert msg["index"] == 5
    assert attrs(msg) == [("IFLA_NET_NS_FD", 8), ("IFLA_IFNAME", "net1")]


# --- parsing links the kernel dumps (encoded by pyroute2) -------------------------

def kernel_link(index=7, flags=0x11043, **attributes) -> bytes:
    msg = ifinfmsg()
    msg["family"] = 0
    msg["index"] = index
    msg["flags"] = flags
    msg["change"] = 0
    msg["attrs"] = list(attributes.items())
    return encoded(msg)


def test_parse_link_reads_what_pyroute2_encodes():
    body = kernel_link(
        IFLA_IFNAME="mv0", IFLA_MTU=1450, IFLA_ADDRESS="02:11:22:33:44:55",
        IFLA_MASTER=3, IFLA_LINK=4, IFLA_OPERSTATE="UP",
        IFLA_LINKINFO={"attrs": [("IFLA_INFO_KIND", "macvlan"), ("IFLA_INFO_DATA", {
            "attrs": [("IFLA_MACVLAN_MODE", "passthru")]})]})
    link = rtlink._parse_link(body)
    assert link == rtlink.Link(index=7, name="mv0", flags=0x11043, mtu=1450,
                           mac="02:11:22:33:44:55", kind="macvlan", master=3, link=4,
                           operstate=6)
    assert link.is_up
    cap = Capture([(rtlink.RTM_NEWLINK, body)])
    found, data = rtlink.get_link_info_data(cap, "mv0")
    assert found == link
    assert rtlink.macvlan_mode(data) == "passthru"
    assert rtlink.get_link_attrs(cap, "mv0")[1][rtlink.IFLA_MTU] == struct.pack("=I", 1450)


@pytest.mark.parametrize("mode", sorted(rtlink.MACVLAN_MODES))
def test_macvlan_mode_reads_pyroute2s_encoding(mode):
    body = kernel_link(IFLA_IFNAME="m", IFLA_LINKINFO={"attrs": [
        ("IFLA_INFO_KIND", "macvlan"),
        ("IFLA_INFO_DATA", {"attrs": [("IFLA_MACVLAN_MODE", mode)]})]})
    _, data = rtlink.get_link_info_data(Capture([(rtlink.RTM_NEWLINK, body)]), "m")
    assert rtlink.macvlan_mode(data) == mode


def test_list_links_keeps_only_link_messages():
    a = kernel_link(1, 0x49, IFLA_IFNAME="lo", IFLA_MTU=65536)
    b = kernel_link(2, 0x1003, IFLA_IFNAME="eth0", IFLA_ADDRESS="aa:bb:cc:dd:ee:ff")
    links = nlt.list_links(Capture([(rtlink.RTM_NEWLINK, a), (rtaddr.RTM_NEWADDR, b"junk"),
                                    (rtlink.RTM_NEWLINK, b)]))
    assert [(link.index, link.name, link.mtu, link.mac) for link in links] == [
        (1, "lo", 65536, ""), (2, "eth0", 0, "aa:bb:cc:dd:ee:ff")]


def test_parse_link_info_identity():
    perm = bytes.fromhex("02aabbccddee")
    body = kernel_link(IFLA_IFNAME="ens5", IFLA_MTU=9001, IFLA_ADDRESS="02:11:22:33:44:55",
                       IFLA_IFALIAS="uplink", IFLA_PARENT_DEV_NAME="0000:00:05.0",
                       IFLA_PARENT_DEV_BUS_NAME="pci")
    # IFLA_PERM_ADDRESS is raw bytes on the wire (pyroute2 maps it as 'hex' text)
    body += nl.attr(rtlinkinfo.IFLA_PERM_ADDRESS, perm)
    info = rtlinkinfo.parse_link_info(body)
    assert (info.index, info.name, info.link.mtu, info.link.mac) == \
        (7, "ens5", 9001, "02:11:22:33:44:55")
    assert info.alias == "uplink"
    assert info.perm_mac == "02:aa:bb:cc:dd:ee"
    assert (info.parent, info.parent_bus) == ("0000:00:05.0", "pci")
    assert info.raw_mac == bytes.fromhex("021122334455")
    check = decoded(ifinfmsg, rtlink.RTM_NEWLINK, body)      # the oracle agrees on the bytes
    assert check.get_attr("IFLA_PERM_ADDRESS") == "02:aa:bb:cc:dd:ee"


def test_parse_link_info_without_a_permanent_address():
    info = rtlinkinfo.parse_link_info(kernel_link(1, 0x49, IFLA_IFNAME="lo") +
                                   nl.attr(rtlinkinfo.IFLA_PERM_ADDRESS, bytes(6)))
    assert info.perm_mac == ""
    assert info.is_loopback


# --- addresses -------------------------------------------------------------------

@pytest.mark.parametrize("cidr, family, prefixlen, broadcast", [
    ("10.1.2.3/24", socket.AF_INET, 24, "10.1.2.255"),
    ("10.1.2.3/8", socket.AF_INET, 8, "10.255.255.255"),
    ("10.1.2.3/30", socket.AF_INET, 30, "10.1.2.3"),
    ("10.1.2.3/31", socket.AF_INET, 31, None),
    ("10.1.2.3/32", socket.AF_INET, 32, None),
    ("10.1.2.3", socket.AF_INET, 32, None),
    ("0.0.0.1/0", socket.AF_INET, 0, "255.255.255.255"),
    ("fd00::3/64", socket.AF_INET6, 64, None),
    ("fd00::3", socket.AF_INET6, 128, None),
    ("2001:db8::ffff:1/127", socket.AF_INET6, 127, None),
])
@pytest.mark.parametrize("call, msg_type, flags", [
    (rtaddr.add_address, rtaddr.RTM_NEWADDR, CREATE_EXCL),
    (rtaddr.del_address, rtaddr.RTM_DELADDR, 0),
])
def test_address_messages(call, msg_type, flags, cidr, family, prefixlen, broadcast):
    got_type, got_flags, msg = sent(ifaddrmsg, call, 5, cidr)
    assert (got_type, got_flags) == (msg_type, flags)
    assert (msg["family"], msg["prefixlen"], msg["flags"], msg["scope"], msg["index"]) == \
        (family, prefixlen, 0, nl.RT_SCOPE_UNIVERSE, 5)
    address = cidr.split("/")[0]
    want = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    if broadcast:
        want.append(("IFA_BROADCAST", broadcast))
    assert attrs(msg) == want


def kernel_address(family, address, prefixlen, index, scope=0, flags=0, ifa_flags=None,
                   peer=None) -> bytes:
    msg = ifaddrmsg()
    msg["family"] = family
    msg["prefixlen"] = prefixlen
    msg["flags"] = flags & 0xFF
    msg["scope"] = scope
    msg["index"] = index
    msg["attrs"] = [("IFA_ADDRESS", peer or address)]
    if family == socket.AF_INET or peer:
        msg["attrs"].append(("IFA_LOCAL", address))
    if ifa_flags is not None:
        msg["attrs"].append(("IFA_FLAGS", ifa_flags))
    return encoded(msg)


def test_list_addresses_reads_what_pyroute2_encodes():
    replies = [
        (rtaddr.RTM_NEWADDR, kernel_address(socket.AF_INET, "10.1.2.3", 24, 5)),
        (rtaddr.RTM_NEWADDR, kernel_address(socket.AF_INET6, "fd00::3", 64, 5)),
        (rtaddr.RTM_NEWADDR, kernel_address(socket.AF_INET6, "fe80::1", 64, 5, scope=253)),
        (rtaddr.RTM_NEWADDR, kernel_address(socket.AF_INET, "10.9.9.9", 32, 6)),
        # point-to-point: IFA_LOCAL is ours, IFA_ADDRESS the peer
        (rtaddr.RTM_NEWADDR, kernel_address(socket.AF_INET, "10.7.0.1", 32, 5, peer="10.7.0.2")),
        (rtlink.RTM_NEWLINK, b"not an address"),
    ]
    cap = Capture(replies)
    got = rtaddr.list_addresses(cap, 5)
    assert [(a.family, a.cidr, a.scope, a.index) for a in got] == [
        (socket.AF_INET, "10.1.2.3/24", 0, 5),
        (socket.AF_INET6, "fd00::3/64", 0, 5),
        (socket.AF_INET6, "fe80::1/64", 253, 5),
        (socket.AF_INET, "10.7.0.1/32", 0, 5)]
    assert len(rtaddr.list_addresses(cap)) == 5
    msg_type, flags, body = cap.sent[0]
    assert (msg_type, flags) == (rtaddr.RTM_GETADDR, nl.NLM_F_DUMP)
    assert decoded(ifaddrmsg, msg_type, body)["family"] == socket.AF_UNSPEC


# --- duplicate address detection -----------------------------------------------

def test_dad_asks_for_the_links_ipv6_addresses():
    cap = Capture()
    rtdad.address_flags(cap, 9)
    msg_type, flags, body = cap.only()
    assert (msg_type, flags) == (rtaddr.RTM_GETADDR, nl.NLM_F_DUMP)
    msg = decoded(ifaddrmsg, msg_type, body)
    assert (msg["family"], msg["index"]) == (socket.AF_INET6, 9)


@pytest.mark.parametrize("ifa_flags", [None, rtdad.IFA_F_TENTATIVE, rtdad.IFA_F_DADFAILED,
                                       rtdad.IFA_F_TENTATIVE | 0x100, 0x200])
def test_dad_flags_prefer_the_32_bit_attribute(ifa_flags):
    header = 0x80 | (ifa_flags or 0) & 0xFF            # permanent + the low bits
    body = kernel_address(socket.AF_INET6, "fd00::9", 64, 9, flags=header,
                          ifa_flags=ifa_flags)
    assert decoded(ifaddrmsg, rtaddr.RTM_NEWADDR, body)["flags"] == header & 0xFF
    want = header if ifa_flags is None else ifa_flags
    assert rtdad.parse_address(body) == (9, "fd00::9", want)
    cap = Capture([(rtaddr.RTM_NEWADDR, body),
                   (rtaddr.RTM_NEWADDR, kernel_address(socket.AF_INET6, "fd00::8", 64, 8))])
    assert rtdad.address_flags(cap, 9) == [("fd00::9", want)]


def test_dad_ignores_ipv4():
    assert rtdad.parse_address(kernel_address(socket.AF_INET, "10.0.0.1", 24, 1)) is None


# --- routes ----------------------------------------------------------------------

ROUTE_CASES = [
    # (kwargs, family, dst_len, table header, scope, expected attributes)
    (dict(dst="0.0.0.0/0", gw="10.1.2.1"), socket.AF_INET, 0, 254, 0,
     [("RTA_GATEWAY", "10.1.2.1")]),
    (dict(dst="10.9.0.0/16", oif=4), socket.AF_INET, 16, 254, 253,
     [("RTA_DST", "10.9.0.0"), ("RTA_OIF", 4)]),
    (dict(dst="10.9.0.7", gw="10.1.2.1", oif=4), socket.AF_INET, 32, 254, 0,
     [("RTA_DST", "10.9.0.7"), ("RTA_GATEWAY", "10.1.2.1"), ("RTA_OIF", 4)]),
    (dict(dst="192.168.0.0/24", gw="10.1.2.1", priority=100, table=100),
     socket.AF_INET, 24, 100, 0,
     [("RTA_DST", "192.168.0.0"), ("RTA_GATEWAY", "10.1.2.1"), ("RTA_PRIORITY", 100)]),
    (dict(dst="192.168.0.0/24", gw="10.1.2.1", table=1000), socket.AF_INET, 24, 0, 0,
     [("RTA_DST", "192.168.0.0"), ("RTA_GATEWAY", "10.1.2.1"), ("RTA_TABLE", 1000)]),
    (dict(dst="10.9.0.0/16", oif=4, scope=nl.RT_SCOPE_HOST), socket.AF_INET, 16, 254, 254,
     [("RTA_DST", "10.9.0.0"), ("RTA_OIF", 4)]),
    (dict(dst="::/0", gw="fe80::1", oif=3, priority=1024), socket.AF_INET6, 0, 254, 0,
     [("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 3), ("RTA_PRIORITY", 1024)]),
    (dict(dst="fd00:1::/64", oif=3, table=0xFFFFFFFF), socket.AF_INET6, 64, 0, 253,
     [("RTA_DST", "fd00:1::"), ("RTA_OIF", 3), ("RTA_TABLE", 0xFFFFFFFF)]),
]


@pytest.mark.parametrize("kw, family, dst_len, table, scope, want", ROUTE_CASES)
@pytest.mark.parametrize("call, msg_type, flags", [
    (rtroute.add_route, rtroute.RTM_NEWROUTE, CREATE_EXCL),
    (nlt.del_route, rtroute.RTM_DELROUTE, 0),
    (rtroute.add_route_ecmp, rtroute.RTM_NEWROUTE, nl.NLM_F_CREATE),   # RouteAddEcmp: no EXCL
])
def test_route_messages(call, msg_type, flags, kw, family, dst_len, table, scope, want):
    got_type, got_flags, msg = sent(rtmsg, call, **kw)
    assert (got_type, got_flags) == (msg_type, flags)
    assert (msg["family"], msg["dst_len"], msg["src_len"], msg["tos"]) == \
        (family, dst_len, 0, 0)
    assert (msg["table"], msg["proto"], msg["scope"], msg["type"], msg["flags"]) == \
        (table, rtroute.RTPROT_BOOT, scope, rtroute.RTN_UNICAST, 0)
    assert attrs(msg) == want


@pytest.mark.parametrize("builder", [rtroute.route_body, rtroute.route_body])
def test_route_metrics_are_nested(builder):
    body = builder("10.9.0.0/16", gw="10.1.2.1", mtu=1400, advmss=1360)
    msg = decoded(rtmsg, rtroute.RTM_NEWROUTE, body)
    metrics = msg.get_attr("RTA_METRICS")
    assert attrs(metrics) == [("RTAX_MTU", 1400), ("RTAX_ADVMSS", 1360)]
    only_mtu = decoded(rtmsg, rtroute.RTM_NEWROUTE, builder("10.9.0.0/16", oif=2, mtu=9000))
    assert attrs(only_mtu.get_attr("RTA_METRICS")) == [("RTAX_MTU", 9000)]


def test_route_preferred_source():
    msg = decoded(rtmsg, rtroute.RTM_NEWROUTE,
                  rtroute.route_body("10.9.0.0/16", gw="10.1.2.1", src="10.1.2.3"))
    assert msg.get_attr("RTA_PREFSRC") == "10.1.2.3"
    msg6 = decoded(rtmsg, rtroute.RTM_NEWROUTE, rtroute.route_body("::/0", gw="fe80::1", src="fd00::3"))
    assert msg6.get_attr("RTA_PREFSRC") == "fd00::3"


def test_both_route_builders_agree_where_they_overlap():
    for kw, *_ in ROUTE_CASES:
        assert rtroute.route_body(**kw) == rtroute.route_body(**kw)


def test_ptp_deletes_the_kernels_prefix_route_with_any_protocol_and_scope():
    for cidr, family, dst in [("10.1.2.0/24", socket.AF_INET, "10.1.2.0"),
                              ("fd00:1::/64", socket.AF_INET6, "fd00:1::")]:
        msg_type, flags, msg = sent(rtmsg, rtroute.delete_prefix_route, 6, cidr)
        assert (msg_type, flags) == (rtroute.RTM_DELROUTE, 0)
        assert (msg["family"], msg["dst_len"], msg["table"]) == \
            (family, int(cidr.split("/")[1]), rtroute.RT_TABLE_MAIN)
        assert (msg["proto"], msg["scope"], msg["type"]) == (0, 255, 0)   # any
        assert attrs(msg) == [("RTA_DST", dst), ("RTA_OIF", 6)]


def kernel_route(family=socket.AF_INET, dst_len=0, table=254, scope=0, rtype=1,
                 **attributes) -> bytes:
    msg = rtmsg()
    msg["family"] = family
    msg["dst_len"] = dst_len
    msg["table"] = table
    msg["proto"] = 3
    msg["scope"] = scope
    msg["type"] = rtype
    msg["attrs"] = list(attributes.items())
    return encoded(msg)


def test_list_routes_reads_what_pyroute2_encodes():
    replies = [
        (rtroute.RTM_NEWROUTE, kernel_route(RTA_GATEWAY="10.1.2.1", RTA_OIF=2)),
        (rtroute.RTM_NEWROUTE, kernel_route(dst_len=24, scope=253, RTA_DST="10.1.2.0",
                                       RTA_OIF=2, RTA_PREFSRC="10.1.2.3", RTA_PRIORITY=5)),
        (rtroute.RTM_NEWROUTE, kernel_route(table=252, dst_len=24, RTA_DST="10.5.0.0",
                                       RTA_TABLE=1000, RTA_OIF=2)),
        (rtroute.RTM_NEWROUTE, kernel_route(table=255, dst_len=32, rtype=2,      # local
                                       RTA_DST="10.1.2.3", RTA_OIF=2)),
        (rtroute.RTM_NEWROUTE, kernel_route(socket.AF_INET6, 64, RTA_DST="fd00::",
                                       RTA_OIF=2, RTA_PRIORITY=256)),
    ]
    cap = Capture(replies)
    main = rtroute.list_routes(cap)
    assert main == [
        rtroute.RouteEntry(socket.AF_INET, "0.0.0.0/0", gw="10.1.2.1", oif=2),
        rtroute.RouteEntry(socket.AF_INET, "10.1.2.0/24", oif=2, priority=5, scope=253,
                      src="10.1.2.3"),
        rtroute.RouteEntry(socket.AF_INET6, "fd00::/64", oif=2, priority=256)]
    assert rtroute.list_routes_ecmp(cap) == main
    assert [r.dst for r in rtroute.list_routes(cap, table=1000)] == ["10.5.0.0/24"]
    assert len(rtroute.list_routes(cap, table=None)) == 4     # the local route is not unicast
    msg_type, flags, body = cap.sent[0]
    assert (msg_type, flags) == (rtroute.RTM_GETROUTE, nl.NLM_F_DUMP)
    assert decoded(rtmsg, msg_type, body)["family"] == socket.AF_UNSPEC


def test_multipath_route_is_one_entry_per_next_hop():
    body = kernel_route(socket.AF_INET6, 64, RTA_DST="fd00:9::", RTA_PRIORITY=1024,
                        RTA_MULTIPATH=[
                            {"oif": 3, "hops": 0, "attrs": [("RTA_GATEWAY", "fe80::1")]},
                            {"oif": 4, "hops": 1, "attrs": [("RTA_GATEWAY", "fe80::2")]},
                            {"oif": 5, "hops": 0, "attrs": []}])
    assert rtroute.parse_route_ecmp(body) == [
        rtroute.RouteEntry(socket.AF_INET6, "fd00:9::/64", gw="fe80::1", oif=3, priority=1024),
        rtroute.RouteEntry(socket.AF_INET6, "fd00:9::/64", gw="fe80::2", oif=4, priority=1024),
        rtroute.RouteEntry(socket.AF_INET6, "fd00:9::/64", gw="", oif=5, priority=1024)]
    v4 = kernel_route(dst_len=0, RTA_MULTIPATH=[
        {"oif": 7, "attrs": [("RTA_GATEWAY", "10.0.0.1")]},
        {"oif": 7, "attrs": [("RTA_GATEWAY", "10.0.0.2")]}])
    assert [(r.gw, r.oif) for r in rtroute.parse_route_ecmp(v4)] == [("10.0.0.1", 7), ("10.0.0.2", 7)]


def test_netlink_rule_request_types_and_flags():
    cases = [
        (rtrule.add_rule, ("10.9.0.5", 100), rtrule.RTM_NEWRULE, CREATE_EXCL),
        (rtrule.delete_rule_like, ("10.9.0.5", 100), rtrule.RTM_DELRULE, 0),
    ]
    for call, args, msg_type, flags in cases:
        cap = Capture()
        call(cap, *args)
        got_type, got_flags, body = cap.only()
        assert (got_type, got_flags) == (msg_type, flags)
        assert body == rtrule.rule_message(*args)
    route = rtroutemsg.default_route("10.9.0.1", 3, 100)
    for call, msg_type, flags in [(rtroutemsg.add_route_msg, rtroute.RTM_NEWROUTE, CREATE_EXCL),
                                  (rtroutemsg.replace_route_msg, rtroute.RTM_NEWROUTE,
                                   nl.NLM_F_CREATE | nl.NLM_F_REPLACE)]:
        cap = Capture()
        call(cap, route, 100)
        got_type, got_flags, body = cap.only()
        assert (got_type, got_flags) == (msg_type, flags)
        msg = decoded(rtmsg, got_type, body)
        assert msg["table"] == 100
        assert msg.get_attr("RTA_GATEWAY") == "10.9.0.1"
        assert msg.get_attr("RTA_OIF") == 3


# --- traffic control (bandwidth) ----------------------------------------------

@pytest.mark.parametrize("rate", [125_000, tc.UINT32_MAX, tc.UINT32_MAX + 1, 10 ** 11])
def test_tbf_qdisc(rate):
    params = TbfParams(rate=rate, limit=50_000, buffer=12_345)
    body = tc.tbf_qdisc(4, params)
    msg = decoded(tcmsg, tc.RTM_NEWQDISC, body)
    assert (msg["family"], msg["index"], msg["handle"], msg["parent"], msg["info"]) == \
        (0, 4, 0x10000, 0xFFFFFFFF, 0)
    assert msg.get_attr("TCA_KIND") == "tbf"
    parms = msg.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
    assert parms["rate"] == rate & tc.UINT32_MAX
    assert (parms["limit"], parms["buffer"], parms["mtu"], parms["peak"]) == \
        (50_000, 12_345, 0, 0)
    assert (parms["rate_cell_log"], parms["rate_overhead"], parms["rate_mpu"]) == (0, 0, 0)
    # TCA_TBF_RATE64 (4) is not in pyroute2 0.9's table: read it raw
    raw = raw_attr(body, 20, [tc.TCA_OPTIONS, tc.TCA_TBF_RATE64])
    assert raw == (struct.pack("=Q", rate) if rate > tc.UINT32_MAX else None)
    assert tc.parse_qdisc(body).tbf == params       # and our parser reads it back


def test_ingress_qdisc():
    msg = decoded(tcmsg, tc.RTM_NEWQDISC, tc.ingress_qdisc(4))
    assert (msg["index"], msg["handle"], msg["parent"]) == (4, 0xFFFF0000, 0xFFFFFFF1)
    assert msg.get_attr("TCA_KIND") == "ingress"


def test_redirect_filter_matches_everything_and_redirects_twice():
    msg = decoded(tcmsg, tc.RTM_NEWTFILTER, tc.redirect_filter(4, 9))
    assert (msg["index"], msg["handle"], msg["parent"]) == (4, 0, 0xFFFF0000)
    assert msg["info"] >> 16 == 1                                    # priority
    assert socket.ntohs(msg["info"] & 0xFFFF) == 0x0003              # ETH_P_ALL
    assert msg.get_attr("TCA_KIND") == "u32"
    options = msg.get_attr("TCA_OPTIONS")
    sel = options.get_attr("TCA_U32_SEL")
    assert (sel["flags"], sel["nkeys"]) == (1, 1)                    # terminal, one key
    assert sel["keys"] == [{"key_mask": 0, "key_val": 0, "key_off": 0, "key_offmask": 0}]
    assert options.get_attr("TCA_U32_CLASSID") == 0x10001
    actions = options.get_attr("TCA_U32_ACT")
    assert names(actions) == ["TCA_ACT_PRIO_1", "TCA_ACT_PRIO_2"]
    for (_, action), control in zip(attrs(actions), [4, 0]):         # stolen, then ok
        assert action.get_attr("TCA_ACT_KIND") == "mirred"
        parms = action.get_attr("TCA_ACT_OPTIONS").get_attr("TCA_MIRRED_PARMS")
        assert (parms["eaction"], parms["ifindex"], parms["action"]) == (1, 9, control)


@pytest.mark.parametrize("call, args, msg_type, flags", [
    (tc.add_tbf, (TbfParams(1000, 2000, 3000),), tc.RTM_NEWQDISC, CREATE_EXCL),
    (tc.add_ingress, (), tc.RTM_NEWQDISC, CREATE_EXCL),
    (tc.add_redirect, (9,), tc.RTM_NEWTFILTER, CREATE_EXCL),
    (tc.delete_qdisc, (tc.TC_H_ROOT,), tc.RTM_DELQDISC, 0),
    (tc.delete_qdisc, (tc.TC_H_INGRESS, tc.INGRESS_HANDLE), tc.RTM_DELQDISC, 0),
    (tc.list_qdiscs, (), tc.RTM_GETQDISC, nl.NLM_F_DUMP),
    (tc.list_filters, (tc.INGRESS_HANDLE,), tc.RTM_GETTFILTER, nl.NLM_F_DUMP),
])
def test_tc_request_types_and_flags(call, args, msg_type, flags):
    got_type, got_flags, msg = sent(tcmsg, call, 4, *args)
    assert (got_type, got_flags) == (msg_type, flags)
    assert msg["index"] == 4


def test_delete_qdisc_names_parent_and_handle():
    _, _, msg = sent(tcmsg, tc.delete_qdisc, 4, tc.TC_H_INGRESS, tc.INGRESS_HANDLE)
    assert (msg["parent"], msg["handle"], attrs(msg)) == (0xFFFFFFF1, 0xFFFF0000, [])


def kernel_tc(kind, index=4, handle=0, parent=0, info=0, options=None) -> bytes:
    msg = tcmsg()
    msg["family"] = 0
    msg["index"] = index
    msg["handle"] = handle
    msg["parent"] = parent
    msg["info"] = info
    msg["attrs"] = [("TCA_KIND", kind)]
    if options is not None:
        msg["attrs"].append(("TCA_OPTIONS", options))
    return encoded(msg)


def test_parse_qdiscs_that_pyroute2_encodes():
    tbf = kernel_tc("tbf", 4, 0x10000, 0xFFFFFFFF, options={"attrs": [
        ("TCA_TBF_PARMS", {"rate": 1000, "limit": 300, "buffer": 77})]})
    ingress = kernel_tc("ingress", 4, 0xFFFF0000, 0xFFFFFFF1)
    other = kernel_tc("noqueue", 5)
    cap = Capture([(tc.RTM_NEWQDISC, tbf), (tc.RTM_NEWQDISC, ingress),
                   (tc.RTM_NEWQDISC, other)])
    assert tc.list_qdiscs(cap, 4) == [
        tc.Qdisc(4, "tbf", 0x10000, 0xFFFFFFFF, TbfParams(1000, 300, 77)),
        tc.Qdisc(4, "ingress", 0xFFFF0000, 0xFFFFFFF1)]


def test_parse_filter_that_pyroute2_encodes():
    def mirred(control, target):
        return {"attrs": [("TCA_ACT_KIND", "mirred"), ("TCA_ACT_OPTIONS", {"attrs": [
            ("TCA_MIRRED_PARMS", {"index": 1, "action": control, "eaction": 1,
                                  "ifindex": target})]})]}
    options = {"attrs": [
        ("TCA_U32_CLASSID", 0x10001),
        ("TCA_U32_SEL", {"flags": 1, "keys": ["0x0/0x0+0"]}),     # pyroute2's key syntax
        ("TCA_U32_ACT", {"attrs": [("TCA_ACT_PRIO_2", mirred(0, 9)),
                                   ("TCA_ACT_PRIO_1", mirred(4, 9))]})]}
    info = (1 << 16) | socket.htons(3)
    body = kernel_tc("u32", 4, 0x80000800, 0xFFFF0000, info, options)
    assert tc.list_filters(Capture([(tc.RTM_NEWTFILTER, body)]), 4, 0xFFFF0000) == [
        tc.Filter(4, "u32", 0xFFFF0000, 1, 3, classid=0x10001,
                  redirects=[tc.Redirect(9, 1, 4), tc.Redirect(9, 1, 0)])]


# --- nf_tables -------------------------------------------------------------------

class NetfilterCapture(Capture):
    """Stands in for NetlinkSocket(protocol): records the protocol too."""

    def __init__(self, error=None):
        super().__init__()
        self.error = error
        self.protocols: list[int] = []

    def __call__(self, protocol):
        self.protocols.append(protocol)
        return self

    def request(self, msg_type, flags, body):
        super().request(msg_type, flags, body)
        if self.error is not None:
            raise self.error
        return []


@pytest.mark.parametrize("family, number", sorted(nfnetlink.NFPROTO.items()))
def test_nft_gettable_message(monkeypatch, family, number):
    cap = NetfilterCapture()
    monkeypatch.setattr(nl, "NetlinkSocket", cap)
    assert nfnetlink.table_exists(family, "cni_plugins_masquerade") is True
    assert cap.protocols == [nfnetlink.NETLINK_NETFILTER]
    msg_type, flags, body = cap.only()
    assert (msg_type >> 8, msg_type & 0xFF) == (10, 1)      # NFNL_SUBSYS_NFTABLES, GETTABLE
    assert flags == 0
    msg = decoded(nft_table_msg, msg_type, body)
    assert (msg["nfgen_family"], msg["version"], msg["res_id"]) == (number, 0, 0)
    assert attrs(msg) == [("NFTA_TABLE_NAME", "cni_plugins_masquerade")]


@pytest.mark.parametrize("error, want", [(nl.NetlinkError(2, "ENOENT"), False),
                                         (nl.NetlinkError(1, "EPERM"), None),
                                         (OSError(93, "EPROTONOSUPPORT"), None)])
def test_nft_table_exists_answers(monkeypatch, error, want):
    monkeypatch.setattr(nl, "NetlinkSocket", NetfilterCapture(error))
    assert nfnetlink.table_exists("ip", "t") is want


# --- conntrack (portmap) ------------------------------------------------------------

from pyroute2.netlink.nfnetlink.nfctsocket import nfct_msg   # noqa: E402

from pycni.plugins.portmap import conntrack                  # noqa: E402
from pycni.plugins.portmap import plugin as portmap_plugin   # noqa: E402


def kernel_conntrack(family, src, dst, proto, sport, dport, zone=None) -> bytes:
    """A conntrack entry as the kernel dumps it (encoded by pyroute2)."""
    ip = "CTA_IP_V6" if family == socket.AF_INET6 else "CTA_IP_V4"
    msg = nfct_msg()
    msg["nfgen_family"] = family
    msg["version"] = 0
    msg["res_id"] = 0
    orig = {"attrs": [
        ("CTA_TUPLE_IP", {"attrs": [(f"{ip}_SRC", src), (f"{ip}_DST", dst)]}),
        ("CTA_TUPLE_PROTO", {"attrs": [("CTA_PROTO_NUM", proto), ("CTA_PROTO_SRC_PORT", sport),
                                       ("CTA_PROTO_DST_PORT", dport)]})]}
    msg["attrs"] = [("CTA_TUPLE_ORIG", orig)]
    if zone is not None:
        msg["attrs"].append(("CTA_ZONE", zone))
    return encoded(msg)


class ConntrackCapture(NetfilterCapture):
    def __init__(self, dumped):
        super().__init__()
        self.dumped = dumped

    def request(self, msg_type, flags, body):
        self.sent.append((msg_type, flags, body))
        return [(msg_type, entry) for entry in self.dumped] if flags & nl.NLM_F_DUMP else []


@pytest.mark.parametrize("family, src, dst", [(socket.AF_INET, "203.0.113.5", "10.0.0.1"),
                                              (socket.AF_INET6, "2001:db8::5", "fd00::1")])
def test_conntrack_flush_deletes_the_udp_entries_of_mapped_ports(monkeypatch, family, src, dst):
    entries = [kernel_conntrack(family, src, dst, 17, 40000, 18180),
               kernel_conntrack(family, src, dst, 17, 40001, 18180, zone=7),
               kernel_conntrack(family, src, dst, 6, 40002, 18180),        # tcp: kept
               kernel_conntrack(family, src, dst, 17, 40003, 18181)]       # other port
    cap = ConntrackCapture(entries)
    monkeypatch.setattr(nl, "NetlinkSocket", cap)
    assert conntrack.flush_udp_ports({18180}, 6 if family == socket.AF_INET6 else 4) == 2
    assert cap.protocols == [conntrack.NETLINK_NETFILTER]
    (dump_type, dump_flags, dump_body), *deletes = cap.sent
    assert (dump_type, dump_flags) == ((1 << 8) | 1, nl.NLM_F_DUMP)   # CTNETLINK, CT_GET
    assert decoded(nfct_msg, dump_type, dump_body)["nfgen_family"] == family
    assert len(deletes) == 2
    for (msg_type, flags, body), (sport, zone) in zip(deletes, [(40000, None), (40001, 7)]):
        assert (msg_type, flags) == ((1 << 8) | 2, 0)                  # CT_DELETE
        msg = decoded(nfct_msg, msg_type, body)
        assert msg["nfgen_family"] == family
        proto = msg.get_attr("CTA_TUPLE_ORIG").get_attr("CTA_TUPLE_PROTO")
        assert (proto.get_attr("CTA_PROTO_NUM"), proto.get_attr("CTA_PROTO_SRC_PORT"),
                proto.get_attr("CTA_PROTO_DST_PORT")) == (17, sport, 18180)
        ips = msg.get_attr("CTA_TUPLE_ORIG").get_attr("CTA_TUPLE_IP")
        assert [a[1] for a in ips["attrs"]] == [src, dst]
        assert msg.get_attr("CTA_ZONE") == zone
        # the tuple goes back nested, as the kernel wants it
        assert struct.unpack_from("=HH", body, 4)[1] == \
            conntrack.CTA_TUPLE_ORIG | nl.NLA_F_NESTED


def test_portmap_asks_the_kernel_for_the_route_to_the_container(monkeypatch):
    import _socket
    route = kernel_route(dst_len=32, RTA_DST="10.97.0.2", RTA_OIF=5)

    class Routes(Capture):
        def request(self, msg_type, flags, body):
            self.sent.append((msg_type, flags, body))
            return [(rtroute.RTM_NEWROUTE, route)]
    cap = Routes()
    monkeypatch.setattr(nl, "RtNetlink", lambda: cap)
    # the device's name, from its index (the route's RTA_OIF), in this namespace
    monkeypatch.setattr(_socket, "if_indextoname", {5: "cni0"}.__getitem__)
    assert portmap_plugin.host_interface_to("10.97.0.2") == "cni0"
    [(msg_type, flags, body)] = cap.sent
    assert (msg_type, flags) == (rtroute.RTM_GETROUTE, 0)
    msg = decoded(rtmsg, msg_type, body)
    assert (msg["family"], msg["dst_len"]) == (socket.AF_INET, 32)
    assert attrs(msg) == [("RTA_DST", "10.97.0.2")]
