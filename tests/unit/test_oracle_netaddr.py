"""host-local's range logic and allocator, property-tested against netaddr.

netaddr (IPNetwork, IPRange, IPSet, IPAddress) is the oracle: for ranges
and range sets that hypothesis draws (IPv4 and IPv6, the /30 /31 /32 and
/126 /127 /128 edges included) it says which configs must be refused,
what the defaults are, what a range contains, which addresses are never
handed out, how many can be, and in which order the allocator must offer
them (the reference's RangeIter: the set as one cyclic sequence, starting
right after the last reserved address when that is in the set).
"""

import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
netaddr = pytest.importorskip("netaddr")

from hypothesis import assume, example, given, settings, strategies as st   # noqa: E402
from netaddr import IPAddress, IPNetwork, IPRange, IPSet                    # noqa: E402

from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG          # noqa: E402
from pycni.ipam.host_local import allocator, config as cfg                  # noqa: E402
from pycni.ipam.host_local import range as rng, range_set as rset          # noqa: E402
from pycni.ipam.host_local.store import owner_key                           # noqa: E402

BITS = {4: 32, 6: 128}
# Kept small enough to enumerate: a range of up to 2**SMALL addresses
SMALL = 9

# no example database: nothing written into the working tree
settings.register_profile("pycni", max_examples=100, deadline=None, database=None,
                          derandomize=os.environ.get("CI") == "true")   # tests/conftest.py
settings.load_profile("pycni")


class MemoryStore:
    """The allocator's StoreView, in memory."""

    def __init__(self):
        self.files: dict[str, str] = {}
        self.last: dict[int, str] = {}

    def reserve(self, name, cid, ifname, index):
        if name in self.files:
            return False
        self.files[name] = owner_key(cid, ifname)
        self.last[index] = name
        return True

    def last_reserved(self, index):
        return self.last.get(index)

    def owned(self, cid, ifname):
        return [n for n, c in self.files.items() if c == owner_key(cid, ifname)]

    def taken(self):
        return set(self.files)

    def unreserve(self, names, cid, ifname):
        for name in names:
            self.files.pop(name, None)


# --- strategies ------------------------------------------------------------------

def text(family: int, value: int) -> str:
    return str(IPAddress(value, family))


@st.composite
def subnets(draw, family=None, min_host_bits=0, max_host_bits=None):
    """An IPNetwork with no host bits set, of `family` (drawn if None)."""
    family = family or draw(st.sampled_from([4, 6]))
    bits = BITS[family]
    top = bits if max_host_bits is None else min(bits, max_host_bits)
    host_bits = draw(st.integers(min_host_bits, top))
    prefix = bits - host_bits
    value = draw(st.integers(0, (1 << bits) - 1)) >> host_bits << host_bits
    net = IPNetwork(f"{text(family, value)}/{prefix}")
    # v4-mapped v6 subnets are refused (test_v4_mapped_subnets_are_refused)
    assume(not (family == 6 and net.network.is_ipv4_mapped()))
    return net


def offset_in(draw, net: IPNetwork) -> int:
    """An address of `net`, edges favoured."""
    size = net.size
    return net.first + draw(st.one_of(st.sampled_from([0, 1, 2, size - 2, size - 1]),
                                      st.integers(0, size - 1)).filter(lambda o: 0 <= o < size))


@st.composite
def range_confs(draw, family=None, max_host_bits=None, net=None):
    """(RangeConf, IPNetwork) of a valid subnet (at least /30, /126), with
    rangeStart, rangeEnd and gateway each given or not."""
    if net is None:
        net = draw(subnets(family, 2, max_host_bits))
    fam = net.version
    start = end = None
    if draw(st.booleans()):
        start = offset_in(draw, net)
    if draw(st.booleans()):
        end = offset_in(draw, net)
    gateway = offset_in(draw, net) if draw(st.booleans()) else None
    rc = rng.RangeConf(subnet=str(net),
                       range_start=text(fam, start) if start is not None else "",
                       range_end=text(fam, end) if end is not None else "",
                       gateway=text(fam, gateway) if gateway is not None else "")
    # Go's net.IP (and so the reference and pycni) takes ::ffff:a.b.c.d for
    # the IPv4 address a.b.c.d, never inside an IPv6 subnet; netaddr does
    # not: such draws are test_v4_mapped_addresses_are_ipv4_as_in_go's
    assume(not any(t and IPAddress(t).version == 6 and IPAddress(t).is_ipv4_mapped()
                   for t in (rc.range_start, rc.range_end, rc.gateway)))
    return rc, net


def test_v4_mapped_addresses_are_ipv4_as_in_go():
    rc = rng.RangeConf(subnet="::/80", range_start="::ffff:255.255.255.254")
    with pytest.raises(ValueError, match="not in network"):
        rng.canonicalize_range(rc)


def oracle_range(rc: rng.RangeConf, net: IPNetwork):
    """What netaddr says the range is: (start, end, gateway) as integers."""
    start = int(IPAddress(rc.range_start)) if rc.range_start else net.first + 1
    if rc.range_end:
        end = int(IPAddress(rc.range_end))
    else:
        end = net.last - 1 if net.version == 4 else net.last
    gateway = int(IPAddress(rc.gateway)) if rc.gateway else net.first + 1
    return start, end, gateway


def iprange(family: int, start: int, end: int) -> IPRange:
    return IPRange(IPAddress(start, family), IPAddress(end, family))


def excluded(net: IPNetwork, gateway: int) -> IPSet:
    """Never handed out: the gateway, the network address, the v4 broadcast."""
    out = IPSet([IPAddress(gateway, net.version), net.network])
    if net.version == 4:
        out.add(net.broadcast)
    return out


# --- single ranges ---------------------------------------------------------------

@given(range_confs())
@example((rng.RangeConf(subnet="10.0.0.0/30"), IPNetwork("10.0.0.0/30")))
@example((rng.RangeConf(subnet="fd00::/126"), IPNetwork("fd00::/126")))
@example((rng.RangeConf(subnet="0.0.0.0/0"), IPNetwork("0.0.0.0/0")))
@example((rng.RangeConf(subnet="::/0"), IPNetwork("::/0")))
def test_canonical_range_matches_netaddr(case):
    rc, net = case
    start, end, gateway = oracle_range(rc, net)
    if start > end:
        with pytest.raises(ValueError, match="is after"):
            rng.canonicalize_range(rc)
        return
    r = rng.canonicalize_range(rc)
    assert (r.family, r.network, r.prefix) == (net.version, net.first, net.prefixlen)
    assert (r.start, r.end, r.gateway) == (start, end, gateway)
    assert r.last == net.last
    assert IPNetwork(r.subnet_text()) == net
    first, _, second = str(r).partition("-")
    assert (IPAddress(first), IPAddress(second)) == \
        (IPAddress(start, net.version), IPAddress(end, net.version))
    pool = IPSet(iprange(net.version, start, end))
    assert r.usable() == (pool - excluded(net, gateway)).size


@given(range_confs(), st.data())
def test_contains_and_never_handed_out_match_netaddr(case, data):
    rc, net = case
    start, end, gateway = oracle_range(rc, net)
    assume(start <= end)
    r = rng.canonicalize_range(rc)
    pool = iprange(net.version, start, end)
    never = excluded(net, gateway)
    bits = BITS[net.version]
    probes = {start, end, start - 1, end + 1, net.first, net.last, net.first - 1,
              net.last + 1, gateway}
    probes |= {data.draw(st.integers(0, (1 << bits) - 1)) for _ in range(5)}
    for value in probes:
        if not 0 <= value < (1 << bits):
            continue
        address = IPAddress(value, net.version)
        assert r.in_subnet(net.version, value) == (address in net)
        assert r.contains(net.version, value) == (address in pool)
        assert r.never_handed_out(value) == (address in never)
        other = 6 if net.version == 4 else 4
        assert not r.contains(other, value)


@pytest.mark.parametrize("subnet", ["::ffff:10.0.0.0/120", "::ffff:0.0.0.0/96"])
def test_v4_mapped_subnets_are_refused(subnet):
    assert IPNetwork(subnet).network.is_ipv4_mapped()
    with pytest.raises(ValueError, match="version mismatch"):
        rng.canonicalize_range(rng.RangeConf(subnet=subnet))


@pytest.mark.parametrize("subnet", ["10.0.0.0/31", "10.0.0.0/32", "10.0.0.1/32",
                                    "fd00::/127", "fd00::/128", "fd00::1/128"])
def test_too_small_subnets_are_refused(subnet):
    with pytest.raises(ValueError, match="too small to allocate from"):
        rng.canonicalize_range(rng.RangeConf(subnet=subnet))


@pytest.mark.parametrize("subnet, usable", [("10.0.0.0/30", ["10.0.0.2"]),
                                            ("fd00::/126", ["fd00::2", "fd00::3"])])
def test_smallest_subnets_hand_out_what_netaddr_leaves(subnet, usable):
    net = IPNetwork(subnet)
    oracle = IPSet(iprange(net.version, net.first + 1, net.last - (net.version == 4)))
    oracle -= excluded(net, net.first + 1)
    assert [str(ip) for ip in oracle] == usable
    rs = rset.canonicalize_set([rng.RangeConf(subnet=subnet)])
    assert [r.text(v) for r, v in allocator.candidates(rs, None)] == usable


@given(subnets(min_host_bits=2), st.data())
def test_host_bits_are_refused(net, data):
    host = data.draw(st.integers(1, net.size - 1))
    address = IPAddress(net.first + host, net.version)
    with pytest.raises(ValueError, match="host bits set") as err:
        rng.canonicalize_range(rng.RangeConf(subnet=f"{address}/{net.prefixlen}"))
    assert IPAddress(str(err.value).rsplit(" ", 1)[1]) == net.network


@given(subnets(min_host_bits=2, max_host_bits=100), st.data())
def test_range_ends_outside_the_subnet_are_refused(net, data):
    bits = BITS[net.version]
    outside = data.draw(st.one_of(
        st.integers(0, net.first - 1) if net.first > 0 else st.nothing(),
        st.integers(net.last + 1, (1 << bits) - 1) if net.last < (1 << bits) - 1
        else st.nothing()))
    key = data.draw(st.sampled_from(["range_start", "range_end"]))
    rc = rng.RangeConf(subnet=str(net), **{key: text(net.version, outside)})
    with pytest.raises(ValueError, match="not in network"):
        rng.canonicalize_range(rc)


@given(st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 128) - 1))
def test_parse_ip_and_ip_text_agree_with_netaddr(v4, v6):
    assert rng.parse_ip(str(IPAddress(v4, 4))) == (4, v4)
    assert rng.ip_text(4, v4) == str(IPAddress(v4, 4))     # dotted quad: one spelling
    mapped = IPAddress(v4, 4).ipv6(ipv4_compatible=False)
    assert rng.parse_ip(str(mapped)) == (4, v4)            # as Go's net.IP
    if not IPAddress(v6, 6).is_ipv4_mapped():
        assert rng.parse_ip(str(IPAddress(v6, 6))) == (6, v6)
        assert rng.parse_ip(f"{IPAddress(v6, 6)}/64") == (6, v6)
    assert IPAddress(rng.ip_text(6, v6), 6) == IPAddress(v6, 6)
    assert rng.parse_ip(rng.ip_text(6, v6))[1] == v6 or IPAddress(v6, 6).is_ipv4_mapped()


# --- range sets and the allocation order ------------------------------------------

@st.composite
def range_sets(draw, family=None, max_ranges=3):
    """1..max_ranges small ranges of one family, valid each, overlapping or
    not; with the netaddr view of each."""
    family = family or draw(st.sampled_from([4, 6]))
    count = draw(st.integers(1, max_ranges))
    # ranges inside one /(bits-12) block so that overlaps happen often
    block = draw(subnets(family, 12, 12))
    out = []
    for _ in range(count):
        host_bits = draw(st.integers(2, SMALL))
        value = draw(st.integers(block.first, block.last)) >> host_bits << host_bits
        net = IPNetwork(f"{text(family, value)}/{BITS[family] - host_bits}")
        assume(not (family == 6 and net.network.is_ipv4_mapped()))
        rc, _ = draw(range_confs(net=net))
        start, end, gateway = oracle_range(rc, net)
        assume(start <= end)
        out.append((rc, net, start, end, gateway))
    return out


def oracle_sequence(ranges) -> list[tuple[int, int]]:
    """Every address of the set in range order (range index, value),
    excluded ones included."""
    return [(i, v) for i, (_, _, start, end, _) in enumerate(ranges)
            for v in range(start, end + 1)]


def oracle_overlap(ranges) -> bool:
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if IPSet(iprange(a[1].version, a[2], a[3])) & IPSet(iprange(b[1].version, b[2], b[3])):
                return True
    return False


@given(range_sets())
def test_range_set_overlap_matches_netaddr(ranges):
    confs = [r[0] for r in ranges]
    if oracle_overlap(ranges):
        with pytest.raises(ValueError, match="overlap"):
            rset.canonicalize_set(confs)
    else:
        rs = rset.canonicalize_set(confs)
        assert len(rs) == len(ranges)


def test_mixed_families_are_refused():
    with pytest.raises(ValueError, match="mixed address families"):
        rset.canonicalize_set([rng.RangeConf(subnet="10.0.0.0/24"),
                              rng.RangeConf(subnet="fd00::/64")])


@given(range_sets(), st.data())
def test_candidates_follow_the_cyclic_order(ranges, data):
    assume(not oracle_overlap(ranges))
    rs = rset.canonicalize_set([r[0] for r in ranges])
    family = rs[0].family
    sequence = oracle_sequence(ranges)
    # the last reserved address: one of the set, or anything at all
    if data.draw(st.booleans()):
        last = data.draw(st.sampled_from(sequence))[1]
    else:
        last = data.draw(st.integers(ranges[0][1].first - 4, ranges[0][1].last + 4)
                         .filter(lambda v: v >= 0))
    pool = IPSet()
    for _, _, start, end, _ in ranges:
        pool.add(iprange(family, start, end))
    if IPAddress(last, family) in pool:
        at = next(k for k, (_, v) in enumerate(sequence) if v == last)
        rotated = sequence[at + 1:] + sequence[:at + 1]
    else:
        rotated = sequence
    want = [v for i, v in rotated
            if IPAddress(v, family) not in excluded(ranges[i][1], ranges[i][4])]
    got = [v for _, v in allocator.candidates(rs, (family, last))]
    assert got == want
    assert len(set(got)) == len(got)
    if IPAddress(last, family) not in pool:
        assert got == [v for _, v in allocator.candidates(rs, None)]


@given(range_sets(), st.data())
def test_range_for_finds_the_range_netaddr_finds(ranges, data):
    assume(not oracle_overlap(ranges))
    rs = rset.canonicalize_set([r[0] for r in ranges])
    family = rs[0].family
    for _ in range(10):
        value = data.draw(st.integers(max(0, min(r[1].first for r in ranges) - 8),
                                      max(r[1].last for r in ranges) + 8))
        found = rset.range_for(rs, family, value)
        owners = [k for k, r in enumerate(ranges)
                  if IPAddress(value, family) in iprange(family, r[2], r[3])]
        assert (None if found is None else rs.index(found)) == \
            (owners[0] if owners else None)


@settings(max_examples=40)
@given(range_sets(max_ranges=2))
def test_allocating_until_full_hands_out_exactly_the_usable_set(ranges):
    assume(not oracle_overlap(ranges))
    confs = [r[0] for r in ranges]
    rs = rset.canonicalize_set(confs)
    family = rs[0].family
    usable = IPSet()
    for _, net, start, end, gateway in ranges:
        usable |= IPSet(iprange(family, start, end)) - excluded(net, gateway)
    assume(usable.size <= 300)
    store = MemoryStore()
    conf = cfg.Settings("net", "1.0.0", [rs])
    got = []
    for n in range(usable.size):
        [ip] = allocator.allocate(conf, store, f"c{n}", "eth0")
        address, _, prefix = ip.address.partition("/")
        r = rset.range_for(rs, *rng.parse_ip(address))
        assert int(prefix) == r.prefix
        assert ip.gateway == r.text(r.gateway)
        got.append(IPAddress(address))
        assert IPAddress(address).version == family
    assert IPSet(got) == usable and len(got) == usable.size
    assert got == [IPAddress(v, family) for _, v in allocator.candidates(rs, None)]
    with pytest.raises(CNIError) as err:
        allocator.allocate(conf, store, "one-too-many", "eth0")
    assert err.value.code == INTERNAL
    assert "no IP addresses available" in err.value.msg


@given(range_sets(max_ranges=1), st.data())
def test_requested_addresses(ranges, data):
    [(rc, net, start, end, gateway)] = ranges
    rs = rset.canonicalize_set([rc])
    family = rs[0].family
    value = data.draw(st.integers(start, end))
    store = MemoryStore()
    conf = cfg.Settings("net", "1.0.0", [rs], requested=[(family, value)])
    address = IPAddress(value, family)
    if address in excluded(net, gateway):
        with pytest.raises(CNIError) as err:
            allocator.allocate(conf, store, "c", "eth0")
        assert err.value.code == INVALID_NETWORK_CONFIG
        assert store.files == {}
    else:
        [ip] = allocator.allocate(conf, store, "c", "eth0")
        assert IPNetwork(ip.address) == IPNetwork(f"{address}/{net.prefixlen}")
        with pytest.raises(CNIError):         # taken now
            allocator.allocate(conf, store, "d", "eth0")


@given(range_sets(family=4, max_ranges=1), range_sets(family=6, max_ranges=1))
def test_dual_stack_allocates_one_per_family(v4, v6):
    sets = [rset.canonicalize_set([v4[0][0]]), rset.canonicalize_set([v6[0][0]])]
    usable = [IPSet(iprange(r[1].version, r[2], r[3])) - excluded(r[1], r[4])
              for r in (v4[0], v6[0])]
    assume(all(u.size for u in usable))
    ips = allocator.allocate(cfg.Settings("net", "1.0.0", sets), MemoryStore(), "c", "eth0")
    assert [IPAddress(ip.address.split("/")[0]) in u for ip, u in zip(ips, usable)] == \
        [True, True]


@given(range_sets(max_ranges=1), range_sets(max_ranges=1))
def test_loaded_range_sets_must_not_overlap(a, b):
    assume(a[0][1].version == b[0][1].version)
    raw = {"cniVersion": "1.0.0", "name": "n", "ipam": {
        "type": "host-local", "ranges": [[vars_of(a[0][0])], [vars_of(b[0][0])]]}}
    overlap = oracle_overlap([a[0], b[0]])
    if overlap:
        with pytest.raises(CNIError) as err:
            cfg.load(raw)
        assert err.value.code == INVALID_NETWORK_CONFIG
        assert "range set 0 overlaps with 1" in err.value.msg
    else:
        assert len(cfg.load(raw).range_sets) == 2


def vars_of(rc: rng.RangeConf) -> dict:
    out = {"subnet": rc.subnet}
    for key, name in [("range_start", "rangeStart"), ("range_end", "rangeEnd"),
                      ("gateway", "gateway")]:
        if getattr(rc, key):
            out[name] = getattr(rc, key)
    return out


@given(range_confs(max_host_bits=SMALL), subnets(min_host_bits=0))
def test_a_gateway_outside_the_subnet_is_kept_and_hands_out_nothing_less(case, elsewhere):
    """The reference takes any gateway (a warning here): it is reported as
    given, and every address of the range stays allocatable."""
    rc, net = case
    assume(not (elsewhere.first <= net.last and net.first <= elsewhere.last))
    start, end, _ = oracle_range(rc, net)
    assume(start <= end)
    gateway = IPAddress(elsewhere.first, elsewhere.version)
    r = rng.canonicalize_range(rng.RangeConf(rc.subnet, rc.range_start, rc.range_end,
                                             str(gateway)))
    assert IPAddress(r.text(r.gateway)) == gateway
    network_only = IPSet([net.network] + ([net.broadcast] if net.version == 4 else []))
    assert r.usable() == (IPSet(iprange(net.version, start, end)) - network_only).size
    if elsewhere.version != net.version:
        assert r.gateway == rng.FOREIGN
    rs = (r,)
    assert not any(r.text(v) == r.text(r.gateway) for _, v in
                   zip(range(64), (v for _, v in allocator.candidates(rs, None))))


@given(range_sets(family=4, max_ranges=1), st.data())
def test_requested_v4_mapped_addresses_count_as_v4(ranges, data):
    [(rc, net, start, end, gateway)] = ranges
    value = data.draw(st.integers(start, end))
    address = IPAddress(value, 4)
    assume(address not in excluded(net, gateway))
    raw = {"cniVersion": "1.0.0", "name": "n",
           "ipam": {"type": "host-local", "ranges": [[vars_of(rc)]]}}
    mapped = str(address.ipv6(ipv4_compatible=False))
    conf = cfg.load(raw, f"IP={mapped}")
    assert conf.requested == [(4, value)]
    [ip] = allocator.allocate(conf, MemoryStore(), "c", "eth0")
    assert IPNetwork(ip.address) == IPNetwork(f"{address}/{net.prefixlen}")
