"""pycni.ipaddr behaves as the stdlib ipaddress (the oracle here) for what
pycni uses of it, and refuses what Go's parser refuses (zones, netmasks)."""

import ipaddress
import random

import pytest

from pycni import ipaddr

rng = random.Random(12)


def _random_v6() -> str:
    kind = rng.randrange(5)
    if kind == 0:
        value = rng.getrandbits(128)
    elif kind == 1:   # runs of zero groups
        groups = [rng.choice([0, 0, 0, rng.getrandbits(16)]) for _ in range(8)]
        value = int.from_bytes(b"".join(g.to_bytes(2, "big") for g in groups), "big")
    elif kind == 2:
        value = (0xFFFF << 32) | rng.getrandbits(32)
    elif kind == 3:
        value = rng.getrandbits(16) << rng.choice([0, 16, 112])
    else:
        value = rng.choice([0, 1, (1 << 128) - 1, 1 << 127])
    return str(ipaddress.IPv6Address(value))


ADDRESSES = ["127.0.0.1", "127.255.0.3", "128.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.2.3", "192.168.0.1", "::", "::1", "1::",
             "fe80::1", "2001:db8::1:0:0:1", "2001:db8:0:0:1:0:0:1", "::ffff:10.1.2.3",
             "::ffff:a01:203", "1:0:0:2:0:0:0:3", "0:0:1::", "2001:DB8::A", "::10.1.2.3",
             "1:2:3:4:5:6:7:8", "0001:0002::0003"]
ADDRESSES += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(200)]
ADDRESSES += [_random_v6() for _ in range(400)]

BAD_ADDRESSES = ["", " ", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "1.2.3.4 ", "a.b.c.d",
                 "1::2::3", ":1::", "1:2:3:4:5:6:7:8:9", "12345::", "::ffff:01.2.3.4",
                 "１.2.3.4", "1.2.3.4/24", "gggg::"]


@pytest.mark.parametrize("text", ADDRESSES[:40] + ADDRESSES[40::17])
def test_address_as_ipaddress(text):
    want = ipaddress.ip_address(text)
    got = ipaddr.ip_address(text)
    assert (got.version, int(got), str(got), got.compressed, got.max_prefixlen, got.packed,
            got.is_loopback) == \
        (want.version, int(want), str(want), want.compressed, want.max_prefixlen, want.packed,
         want.is_loopback)
    if want.version == 6:
        mapped = want.ipv4_mapped
        assert (str(got.ipv4_mapped) if got.ipv4_mapped else None) == \
            (str(mapped) if mapped else None)
    else:
        with pytest.raises(AttributeError):
            got.ipv4_mapped
    if int(want) + 1 < (1 << want.max_prefixlen):
        assert str(got + 1) == str(want + 1)
    assert got == ipaddr.ip_address(str(want)) and hash(got) == hash(ipaddr.ip_address(str(want)))


def test_all_addresses_format_as_ipaddress():
    for text in ADDRESSES:
        assert str(ipaddr.ip_address(text)) == str(ipaddress.ip_address(text))
        value = int(ipaddress.ip_address(text))
        make = ipaddr.IPv4Address if ":" not in text else ipaddr.IPv6Address
        assert str(make(value)) == str(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", BAD_ADDRESSES)
def test_bad_addresses_refused_as_ipaddress(text):
    with pytest.raises(ValueError):
        ipaddress.ip_address(text)
    with pytest.raises(ValueError):
        ipaddr.ip_address(text)


@pytest.mark.parametrize("text", ["fe80::1%eth0", "10.0.0.0/255.255.255.0", "10.0.0.1/0.0.0.255"])
def test_refused_like_go(text):
    """ipaddress takes these; Go's ParseIP/ParseCIDR (the reference) do not."""
    with pytest.raises(ValueError):
        ipaddr.ip_interface(text)


def test_address_bounds():
    with pytest.raises(ValueError):
        ipaddr.IPv4Address(1 << 32)
    with pytest.raises(ValueError):
        ipaddr.ip_address("255.255.255.255") + 1
    with pytest.raises(ValueError):
        ipaddr.IPv6Address(-1)
    with pytest.raises(ValueError):
        ipaddr.ip_address(None)


INTERFACES = ["10.1.2.3/24", "10.1.2.3/32", "10.1.2.3/0", "10.1.2.3", "2001:db8::5/64",
              "fe80::1/10", "::/0", "::1", "192.168.7.9/017", "10.0.0.0/8", "::ffff:1.2.3.4/96"]
INTERFACES += [f"{rng.choice(ADDRESSES)}/{rng.randrange(33)}" for _ in range(100)]
BAD_INTERFACES = ["10.1.2.3/33", "10.1.2.3/", "10.1.2.3/-1", "10.1.2.3/+8", "10.1.2.3/24/1",
                  "::1/129", "10.1.2.3/ 24", "/24", "10.1.2.3/２4"]


@pytest.mark.parametrize("text", INTERFACES)
def test_interface_and_network_as_ipaddress(text):
    try:
        want = ipaddress.ip_interface(text)
    except ValueError:
        with pytest.raises(ValueError):
            ipaddr.ip_interface(text)
        return
    got = ipaddr.ip_interface(text)
    assert (str(got), str(got.ip), got.version, got.network.prefixlen, str(got.network)) == \
        (str(want), str(want.ip), want.version, want.network.prefixlen, str(want.network))
    net, want_net = got.network, want.network
    assert (str(net.network_address), str(net.broadcast_address), str(net.netmask),
            net.num_addresses, net.max_prefixlen) == \
        (str(want_net.network_address), str(want_net.broadcast_address), str(want_net.netmask),
         want_net.num_addresses, want_net.max_prefixlen)
    assert got.ip in got.network and (want.ip in want.network)
    assert str(ipaddr.ip_network(text, strict=False)) == str(ipaddress.ip_network(text, strict=False))
    strict_ok = True
    try:
        ipaddress.ip_network(text)
    except ValueError:
        strict_ok = False
    if strict_ok:
        assert str(ipaddr.ip_network(text)) == str(ipaddress.ip_network(text))
    else:
        with pytest.raises(ValueError):
            ipaddr.ip_network(text)


@pytest.mark.parametrize("text", BAD_INTERFACES)
def test_bad_interfaces_refused(text):
    with pytest.raises(ValueError):
        ipaddress.ip_interface(text)
    with pytest.raises(ValueError):
        ipaddr.ip_interface(text)
    with pytest.raises(ValueError):
        ipaddr.ip_network(text, strict=False)


def test_membership_equality_ordering():
    net = ipaddr.ip_network("10.1.0.0/16")
    assert ipaddr.ip_address("10.1.255.255") in net
    assert ipaddr.ip_address("10.2.0.0") not in net
    assert ipaddr.ip_address("::a01:0") not in net
    assert "10.1.0.1" not in net
    assert ipaddr.ip_interface("10.1.2.3/24") == ipaddr.ip_interface("10.1.2.3/24")
    assert ipaddr.ip_interface("10.1.2.3/24") != ipaddr.ip_interface("10.1.2.3/25")
    assert len({ipaddr.ip_interface("10.1.2.3/24"), ipaddr.ip_interface("10.1.2.3/24")}) == 1
    assert ipaddr.ip_network("10.0.0.0/8") == ipaddr.ip_network("10.1.2.3/8", strict=False)
    assert sorted([ipaddr.ip_address("10.0.0.2"), ipaddr.ip_address("10.0.0.1")])[0] == \
        ipaddr.ip_address("10.0.0.1")
    assert ipaddr.ip_address("10.0.0.1") != ipaddr.ip_address("::a00:1")
