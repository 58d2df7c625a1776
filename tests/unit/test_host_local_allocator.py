"""host-local allocation: round-robin order, skipped addresses, requested
addresses, multi-range and multi-family, over an in-memory store."""

import pytest

from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.ipam.host_local import allocator, config as cfg, range as hl_range
from pycni.ipam.host_local.store import owner_key


class MemoryStore:
    """The StoreView contract, in memory; counts reservation attempts."""

    def __init__(self, files=None, last=None):
        self.files = dict(files or {})
        self.last = dict(last or {})
        self.attempts = 0
        self.listed = 0

    def reserve(self, name, cid, ifname, index):
        self.attempts += 1
        if name in self.files:
            return False
        self.files[name] = owner_key(cid, ifname)
        self.last[index] = name
        return True

    def last_reserved(self, index):
        return self.last.get(index)

    def owned(self, cid, ifname):
        return [n for n, c in self.files.items() if c in (owner_key(cid, ifname), cid)]

    def taken(self):
        self.listed += 1
        return set(self.files)

    def unreserve(self, names, cid, ifname):
        for n in names:
            self.files.pop(n, None)


def load(ipam, **top):
    raw = {"cniVersion": "1.0.0", "name": "net", "ipam": {"type": "host-local", **ipam}}
    raw.update(top)
    return cfg.load(raw)


def one_set(**range_keys):
    return load({"ranges": [[range_keys]]}).range_sets[0]


def order(rs, last=None, limit=None):
    out = []
    for r, value in allocator.candidates(rs, hl_range.parse_ip(last) if last else None):
        out.append(r.text(value))
        if limit and len(out) == limit:
            break
    return out


def test_fresh_set_starts_at_range_start_skipping_gateway():
    rs = one_set(subnet="10.0.0.0/29")
    assert order(rs) == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]


@pytest.mark.parametrize("last, expected", [
    # wrap at start, middle and end; the last reserved address comes last
    ("10.0.0.2", ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"]),
    ("10.0.0.4", ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
    ("10.0.0.6", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]),
    # a cursor outside the set (ranges changed) restarts at the beginning
    ("10.9.9.9", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]),
    ("fd00::1", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]),
])
def test_round_robin_wraps(last, expected):
    assert order(one_set(subnet="10.0.0.0/29"), last) == expected


def test_network_broadcast_and_gateway_never_handed_out_even_inside_explicit_bounds():
    rs = one_set(subnet="10.0.0.0/29", rangeStart="10.0.0.0", rangeEnd="10.0.0.7",
                 gateway="10.0.0.4")
    assert order(rs) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]


def test_v6_hands_out_the_all_ones_address():
    rs = one_set(subnet="fd00::/126")
    assert order(rs) == ["fd00::2", "fd00::3"]


def test_multi_range_set_crosses_ranges_and_wraps():
    rs = load({"ranges": [[{"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.5"},
                           {"subnet": "10.0.1.0/29", "rangeEnd": "10.0.1.3"}]]}).range_sets[0]
    assert order(rs) == ["10.0.0.5", "10.0.0.6", "10.0.1.2", "10.0.1.3"]
    assert order(rs, "10.0.0.6") == ["10.0.1.2", "10.0.1.3", "10.0.0.5", "10.0.0.6"]
    assert order(rs, "10.0.1.3") == ["10.0.0.5", "10.0.0.6", "10.0.1.2", "10.0.1.3"]
    assert order(rs, "10.0.1.2") == ["10.0.1.3", "10.0.0.5", "10.0.0.6", "10.0.1.2"]


def test_allocate_round_robin_continues_after_last_reserved():
    c = load({"subnet": "10.0.0.0/24"})
    store = MemoryStore(files={"10.0.0.7": "old\r\neth0"}, last={0: "10.0.0.6"})
    (ip,) = allocator.allocate(c, store, "c1", "eth0")
    assert (ip.address, ip.gateway, ip.interface) == ("10.0.0.8/24", "10.0.0.1", None)
    assert store.files["10.0.0.8"] == "c1\r\neth0"
    assert store.last[0] == "10.0.0.8"


def test_allocate_dual_stack_one_address_per_set():
    c = load({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]})
    store = MemoryStore()
    ips = allocator.allocate(c, store, "c1", "eth0")
    assert [(i.address, i.gateway) for i in ips] == [("10.0.0.2/24", "10.0.0.1"),
                                                     ("fd00::2/64", "fd00::1")]
    assert store.last == {0: "10.0.0.2", 1: "fd00::2"}


def test_duplicate_allocation_is_refused():
    c = load({"subnet": "10.0.0.0/24"})
    store = MemoryStore(files={"10.0.0.9": "c1\r\neth0"})
    with pytest.raises(CNIError) as info:
        allocator.allocate(c, store, "c1", "eth0")
    assert info.value.msg == ("failed to allocate for range 0: 10.0.0.9 has been allocated "
                              "to c1, duplicate allocation is not allowed")
    # a legacy file of the same container counts too; another ifname does not
    with pytest.raises(CNIError):
        allocator.allocate(c, MemoryStore(files={"10.0.0.9": "c1"}), "c1", "eth0")
    assert allocator.allocate(c, store, "c1", "eth1")[0].address == "10.0.0.2/24"


def test_requested_address():
    c = load({"subnet": "10.0.0.0/24"}, runtimeConfig={"ips": ["10.0.0.77"]})
    store = MemoryStore(files={"10.0.0.78": "c1\r\neth0"})
    (ip,) = allocator.allocate(c, store, "c1", "eth0")     # no duplicate rule for requests
    assert ip.address == "10.0.0.77/24"
    assert store.last[0] == "10.0.0.77"


@pytest.mark.parametrize("wanted, code, message", [
    ("10.0.0.1", INVALID_NETWORK_CONFIG, "failed to allocate for range 0: requested ip 10.0.0.1 is subnet's gateway"),
    ("10.0.0.5", INTERNAL, "failed to allocate for range 0: requested IP address 10.0.0.5 is "
                          "not available in range set 10.0.0.1-10.0.0.254"),
    ("10.0.1.5", INVALID_NETWORK_CONFIG, "failed to allocate all requested IPs: 10.0.1.5"),
])
def test_requested_address_errors_write_nothing(wanted, code, message):
    c = load({"subnet": "10.0.0.0/24"}, runtimeConfig={"ips": [wanted]})
    store = MemoryStore(files={"10.0.0.5": "other\r\neth0"})
    with pytest.raises(CNIError) as info:
        allocator.allocate(c, store, "c1", "eth0")
    assert (info.value.code, info.value.msg) == (code, message)
    assert store.files == {"10.0.0.5": "other\r\neth0"}


def test_requested_broadcast_is_refused():
    c = load({"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.255"},
             runtimeConfig={"ips": ["10.0.0.255"]})
    with pytest.raises(CNIError) as info:
        allocator.allocate(c, MemoryStore(), "c1", "eth0")
    assert "network or broadcast address of 10.0.0.0/24" in info.value.msg


def test_failure_in_second_set_releases_only_this_calls_addresses():
    c = load({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}]]})
    store = MemoryStore(files={"10.1.0.2": "other\r\neth0", "10.0.0.50": "c1\r\neth1"})
    with pytest.raises(CNIError) as info:
        allocator.allocate(c, store, "c1", "eth0")
    assert info.value.msg == ("failed to allocate for range 1: no IP addresses available "
                              "in range set: 10.1.0.1-10.1.0.2")
    assert store.files == {"10.1.0.2": "other\r\neth0", "10.0.0.50": "c1\r\neth1"}


def test_request_matched_to_its_family_and_other_sets_allocate_normally():
    c = load({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]},
             runtimeConfig={"ips": ["fd00::99"]})
    ips = allocator.allocate(c, MemoryStore(), "c1", "eth0")
    assert [i.address for i in ips] == ["10.0.0.2/24", "fd00::99/64"]


def test_full_range_lists_taken_names_instead_of_probing_each():
    c = load({"subnet": "10.0.0.0/22"})
    rs = c.range_sets[0]
    files = {r.text(v): "x\r\neth0" for r, v in allocator.candidates(rs, None)}
    store = MemoryStore(files=files)
    with pytest.raises(CNIError) as info:
        allocator.allocate(c, store, "c1", "eth0")
    assert "no IP addresses available in range set: 10.0.0.1-10.0.3.254" in info.value.msg
    assert store.attempts == allocator.PROBES_BEFORE_LISTING and store.listed == 1


def test_free_address_found_after_a_long_taken_run():
    c = load({"subnet": "10.0.0.0/24"})
    files = {f"10.0.0.{i}": "x\r\neth0" for i in range(2, 200)}
    store = MemoryStore(files=files)
    (ip,) = allocator.allocate(c, store, "c1", "eth0")
    assert ip.address == "10.0.0.200/24"
    assert store.attempts == allocator.PROBES_BEFORE_LISTING + 1
