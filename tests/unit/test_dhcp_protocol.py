"""pycni.dhcp4: DHCPv4 messages built and parsed (pure)."""

import struct

import pytest

from pycni import dhcp4

MAC = "02:00:00:aa:bb:cc"


def reply(msg_type: int, xid: int, yiaddr: str, options, sname=b"", file=b"", mac=MAC) -> bytes:
    hdr = struct.pack("!BBBBIHHIIII16s64s128s", 2, 1, 6, 0, xid, 0, 0, 0,
                      int.from_bytes(dhcp4.ip_bytes(yiaddr), "big"), 0, 0,
                      dhcp4.mac_bytes(mac), sname, file)
    return hdr + dhcp4.MAGIC + dhcp4.encode_options([(53, bytes((msg_type,)))] + list(options))


def test_discover_layout():
    raw = dhcp4.build(dhcp4.DISCOVER, 0x01020304, MAC,
                      [(dhcp4.OPT_CLIENT_ID, dhcp4.client_id_option("c/n/eth0"))], broadcast=True)
    assert len(raw) >= 300
    assert raw[0] == 1 and raw[1] == 1 and raw[2] == 6
    assert raw[4:8] == b"\x01\x02\x03\x04"
    assert raw[10:12] == b"\x80\x00"                  # the broadcast flag
    assert raw[28:34] == dhcp4.mac_bytes(MAC)
    msg = dhcp4.parse(raw)
    assert msg.type == dhcp4.DISCOVER and msg.xid == 0x01020304
    assert msg.options[dhcp4.OPT_CLIENT_ID] == b"\x00c/n/eth0"
    assert msg.ciaddr == "0.0.0.0"


def test_renewal_request_carries_ciaddr_without_broadcast():
    msg = dhcp4.parse(dhcp4.build(dhcp4.REQUEST, 7, MAC, ciaddr="10.0.0.5"))
    assert msg.ciaddr == "10.0.0.5" and msg.flags == 0 and msg.type == dhcp4.REQUEST


def test_long_options_are_split_and_joined():
    value = bytes(range(256)) * 2
    raw = dhcp4.build(dhcp4.REQUEST, 1, MAC, [(200, value)])
    assert dhcp4.parse(raw).options[200] == value


def test_ack_fields_and_lease_times():
    raw = reply(dhcp4.ACK, 9, "10.1.2.3", [(54, dhcp4.ip_bytes("10.1.2.1")),
                                           (51, (600).to_bytes(4, "big")),
                                           (1, bytes((255, 255, 255, 0))),
                                           (3, dhcp4.ip_bytes("10.1.2.1")
                                            + dhcp4.ip_bytes("10.1.2.2"))])
    msg = dhcp4.parse(raw)
    assert msg.type == dhcp4.ACK and msg.yiaddr == "10.1.2.3" and msg.server_id == "10.1.2.1"
    assert msg.ip_list(dhcp4.OPT_ROUTER) == ["10.1.2.1", "10.1.2.2"]
    assert msg.lease_times() == (600, 300, 510)
    raw = reply(dhcp4.ACK, 9, "10.1.2.3", [(51, (100).to_bytes(4, "big")),
                                           (58, (10).to_bytes(4, "big")),
                                           (59, (20).to_bytes(4, "big"))])
    assert dhcp4.parse(raw).lease_times() == (100, 10, 20)
    assert dhcp4.parse(reply(dhcp4.ACK, 9, "10.1.2.3", [])).lease_times() == (3600, 1800, 3060)


def test_option_overload_reads_file_and_sname():
    file = dhcp4.encode_options([(1, bytes((255, 255, 0, 0)))]).ljust(128, b"\0")
    sname = dhcp4.encode_options([(3, dhcp4.ip_bytes("10.0.0.1"))]).ljust(64, b"\0")
    msg = dhcp4.parse(reply(dhcp4.ACK, 1, "10.0.0.9", [(52, b"\x03")], sname=sname, file=file))
    assert msg.options[1] == bytes((255, 255, 0, 0))
    assert msg.ip_option(3) == "10.0.0.1"


@pytest.mark.parametrize("data", [b"", b"\x02" * 100, b"\x02" * 236 + b"nope",
                                  b"\x02" * 236 + dhcp4.MAGIC + b"\x35\x05\x01"])
def test_malformed_messages(data):
    with pytest.raises(dhcp4.BadMessage):
        dhcp4.parse(data)


def test_classless_routes():
    value = bytes([24, 10, 9, 8, 10, 0, 0, 1, 0, 10, 0, 0, 2, 32, 1, 2, 3, 4, 0, 0, 0, 0])
    assert dhcp4.classless_routes(value) == [("10.9.8.0/24", "10.0.0.1"),
                                             ("0.0.0.0/0", "10.0.0.2"),
                                             ("1.2.3.4/32", "0.0.0.0")]
    with pytest.raises(dhcp4.BadMessage):
        dhcp4.classless_routes(bytes([33, 1, 2, 3, 4, 5, 1, 1, 1, 1]))
    with pytest.raises(dhcp4.BadMessage):
        dhcp4.classless_routes(bytes([24, 10, 9]))


def test_static_routes_are_classful():
    value = dhcp4.ip_bytes("10.5.0.0") + dhcp4.ip_bytes("10.0.0.1") + \
        dhcp4.ip_bytes("172.16.0.0") + dhcp4.ip_bytes("10.0.0.1") + \
        dhcp4.ip_bytes("192.168.7.0") + dhcp4.ip_bytes("10.0.0.2") + b"\x01\x02"
    assert dhcp4.static_routes(value) == [("10.5.0.0/8", "10.0.0.1"),
                                          ("172.16.0.0/16", "10.0.0.1"),
                                          ("192.168.7.0/24", "10.0.0.2")]


def test_mask_prefix():
    assert dhcp4.mask_prefix(bytes((255, 255, 255, 0))) == 24
    assert dhcp4.mask_prefix(bytes(4)) == 0
    assert dhcp4.mask_prefix(bytes((255, 0, 255, 0))) is None


@pytest.mark.parametrize("name,code", [("routers", 3), ("subnet-mask", 1), ("host-name", 12),
                                       ("dhcp-client-identifier", 61), ("user-class", 77),
                                       ("vendor-class-identifier", 60), ("0", 0), ("255", 255),
                                       ("121", 121)])
def test_option_names(name, code):
    assert dhcp4.parse_option_name(name) == code


@pytest.mark.parametrize("name,why", [("256", "value out of range"), ("-1", "invalid syntax"),
                                      ("", "invalid syntax"), ("0x10", "invalid syntax"),
                                      ("Routers", "invalid syntax"), ("١", "invalid syntax")])
def test_option_names_refused(name, why):
    with pytest.raises(ValueError) as exc:
        dhcp4.parse_option_name(name)
    assert str(exc.value) == f'Can not parse option: strconv.ParseUint: parsing "{name}": {why}'


def test_client_id():
    assert dhcp4.generate_client_id("abc", "net", "eth0") == "abc/net/eth0"
    long = dhcp4.generate_client_id("a" * 255, "net", "eth0")
    assert len(long) == 254 and long == "a" * 254


def test_configured_options_cannot_replace_the_message_s_own():
    from pycni.ipam.dhcp.client import Exchange, Params
    ex = Exchange(None, MAC, "c/n/eth0", [(61, b"\x01mine"), (50, b"\x01\x01\x01\x01"),
                                          (12, b"h")], Params())
    merged = dict(ex._opts((50, dhcp4.ip_bytes("10.0.0.7")), (54, dhcp4.ip_bytes("10.0.0.1"))))
    assert merged[61] == b"\x01mine"                    # the client ID may be replaced
    assert merged[50] == dhcp4.ip_bytes("10.0.0.7")     # the requested address may not
    assert merged[12] == b"h" and merged[54] == dhcp4.ip_bytes("10.0.0.1")
    assert dict(ex._opts())[61] == b"\x01mine"
