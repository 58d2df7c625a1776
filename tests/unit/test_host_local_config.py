"""host-local config: canonicalization and validation, message for message."""

import pytest

from pycni.errors import CNIError, INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG
from pycni.ipam.host_local import config as cfg, dns as hl_dns, range as hl_range


def conf(ipam=None, **top):
    out = {"cniVersion": "1.0.0", "name": "net", "type": "bridge",
           "ipam": {"type": "host-local", **(ipam or {})}}
    out.update(top)
    return out


def load(ipam=None, args="", **top):
    return cfg.load(conf(ipam, **top), args)


def error(ipam=None, args="", **top) -> CNIError:
    with pytest.raises(CNIError) as info:
        load(ipam, args, **top)
    return info.value


def v4(text):
    return hl_range.parse_ip(text)


def test_legacy_single_range_defaults():
    c = load({"subnet": "10.1.2.0/24"})
    (r,), = c.range_sets
    assert str(r) == "10.1.2.1-10.1.2.254"
    assert r.text(r.gateway) == "10.1.2.1"
    assert c.data_dir == "/var/lib/cni/networks"
    assert c.name == "net"


def test_v6_default_end_is_all_ones():
    (r,), = load({"subnet": "fd00:1::/120"}).range_sets
    assert str(r) == "fd00:1::1-fd00:1::ff"


def test_explicit_bounds_and_gateway():
    (r,), = load({"ranges": [[{"subnet": "10.1.0.0/16", "rangeStart": "10.1.5.10",
                               "rangeEnd": "10.1.5.20", "gateway": "10.1.0.254"}]]}).range_sets
    assert str(r) == "10.1.5.10-10.1.5.20"
    assert r.text(r.gateway) == "10.1.0.254"


def test_keys_are_case_insensitive_like_go():
    (r,), = load({"Ranges": [[{"Subnet": "10.1.0.0/24", "RANGESTART": "10.1.0.5"}]],
                  "DataDir": "/x"}).range_sets
    assert str(r) == "10.1.0.5-10.1.0.254"


def test_legacy_range_comes_before_ranges_and_ip_ranges_before_both():
    c = load({"subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.2.0.0/24"}]]},
             runtimeConfig={"ipRanges": [[{"subnet": "10.3.0.0/24"}]]})
    assert [str(s[0]) for s in c.range_sets] == [
        "10.3.0.1-10.3.0.254", "10.1.0.1-10.1.0.254", "10.2.0.1-10.2.0.254"]


def test_missing_ipam_and_missing_ranges():
    with pytest.raises(CNIError) as info:
        cfg.load({"name": "net", "cniVersion": "1.0.0"})
    assert info.value.msg == "IPAM config missing 'ipam' key"
    assert error({}).msg == "no IP ranges specified"


@pytest.mark.parametrize("ipam, message", [
    ({"subnet": "10.1.2.3/24"},
     "invalid range set 0: Network has host bits set. For a subnet mask of length 24 "
     "the network address is 10.1.2.0"),
    ({"subnet": "10.1.2.0/31"}, "invalid range set 0: Network 10.1.2.0/31 too small to allocate from"),
    ({"subnet": "10.1.2.4/32"}, "invalid range set 0: Network 10.1.2.4/32 too small to allocate from"),
    ({"subnet": "fd00::/127"}, "invalid range set 0: Network fd00::/127 too small to allocate from"),
    ({"subnet": "10.1.2.0/24", "rangeStart": "10.1.3.1"},
     "invalid range set 0: RangeStart 10.1.3.1 not in network 10.1.2.0/24"),
    ({"subnet": "10.1.2.0/24", "rangeEnd": "10.1.3.1"},
     "invalid range set 0: RangeEnd 10.1.3.1 not in network 10.1.2.0/24"),
    ({"subnet": "10.1.2.0/24", "gateway": "10.1.2"}, "invalid range set 0: invalid gateway '10.1.2'"),
    ({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.50", "rangeEnd": "10.1.2.40"},
     "invalid range set 0: RangeStart 10.1.2.50 is after RangeEnd 10.1.2.40"),
    ({"subnet": "bogus"}, "invalid range set 0: invalid CIDR address: bogus"),
    ({"ranges": [[]]}, "invalid range set 0: empty range set"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "fd00::/64"}]]},
     "invalid range set 0: mixed address families"),
    ({"ranges": [[{"subnet": "10.1.0.0/16"}, {"subnet": "10.1.2.0/24"}]]},
     "invalid range set 0: subnets 10.1.0.1-10.1.255.254 and 10.1.2.1-10.1.2.254 overlap"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.200"}]]},
     "range set 0 overlaps with 1"),
    ({"ranges": [[{"rangeStart": "10.1.0.3"}]]}, "invalid range set 0: subnet is missing"),
])
def test_validation_errors(ipam, message):
    err = error(ipam)
    assert err.code == INVALID_NETWORK_CONFIG
    assert err.msg == message


def test_disjoint_pools_of_one_subnet_do_not_overlap():
    c = load({"ranges": [[{"subnet": "10.1.0.0/24", "rangeEnd": "10.1.0.99"},
                          {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.100"}]]})
    assert [str(r) for r in c.range_sets[0]] == ["10.1.0.1-10.1.0.99", "10.1.0.100-10.1.0.254"]


def test_old_versions_allow_one_set_per_family():
    ipam = {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}
    err = error(ipam, cniVersion="0.2.0")
    assert err.msg == "CNI version 0.2.0 does not support more than 1 address per family"
    assert len(load({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]]},
                    cniVersion="0.2.0").range_sets) == 2
    assert len(load(ipam, cniVersion="0.3.0").range_sets) == 2


def test_requested_ips_from_all_three_sources_in_order_without_duplicates():
    raw = conf({"subnet": "10.1.0.0/24"}, args={"cni": {"ips": ["10.1.0.8/24", "10.1.0.9"]}},
               runtimeConfig={"ips": ["fd00::5/64"]})
    c = cfg.load(raw, "IgnoreUnknown=1;IP=10.1.0.9;K8S_POD_NAME=p")
    assert c.requested == [v4("10.1.0.9"), v4("10.1.0.8"), v4("fd00::5")]


def test_bad_requested_ip():
    err = error({"subnet": "10.1.0.0/24"}, runtimeConfig={"ips": ["10.1.0.300"]})
    assert err.code == INVALID_NETWORK_CONFIG and "10.1.0.300" in err.msg
    err = error({"subnet": "10.1.0.0/24"}, args="IP=nope")
    assert err.code == INVALID_ENVIRONMENT


def test_unknown_cni_args_key_needs_ignore_unknown():
    err = error({"subnet": "10.1.0.0/24"}, args="FOO=bar")
    assert err.code == INVALID_ENVIRONMENT
    load({"subnet": "10.1.0.0/24"}, args="IgnoreUnknown=true;FOO=bar")


def test_v4_mapped_addresses_count_as_v4():
    assert hl_range.parse_ip("::ffff:10.1.0.3") == (4, hl_range.parse_ip("10.1.0.3")[1])


def test_routes_are_copied_and_checked():
    c = load({"subnet": "10.1.0.0/24",
              "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.7", "mtu": 1400}]})
    assert [(r.dst, r.gw, r.mtu) for r in c.routes] == [("0.0.0.0/0", "", 0),
                                                         ("10.9.0.0/16", "10.1.0.7", 1400)]
    assert error({"subnet": "10.1.0.0/24", "routes": [{"dst": "nope"}]}).msg == "invalid route 0"


def test_resolv_conf_parsing():
    dns = hl_dns.parse_resolv_conf(
        "# comment\n; also\nnameserver 10.0.0.53\nnameserver fd00::53\n"
        "domain example.com\nsearch a.example b.example\noptions ndots:2 edns0\nbogus\n")
    assert dns.nameservers == ["10.0.0.53", "fd00::53"]
    assert dns.domain == "example.com"
    assert dns.search == ["a.example", "b.example"]
    assert dns.options == ["ndots:2", "edns0"]


# --- what the reference accepts (issue #13) ---------------------------------------

from pycni import log  # noqa: E402
from pycni.ipam.host_local import allocator  # noqa: E402


@pytest.fixture
def warnings():
    del log._warnings[:]
    yield log._warnings
    del log._warnings[:]


@pytest.mark.parametrize("gateway, text", [
    ("10.9.9.9", "10.9.9.9"), ("::ffff:10.9.9.9", "10.9.9.9"), ("fd00::1", "fd00::1")])
def test_gateway_outside_the_subnet_is_accepted_with_a_warning(warnings, gateway, text):
    """The reference checks only that the gateway is an IP address (of
    either family) and reports it as the gateway; the subnet's first
    address is then handed out too."""
    (r,), = load({"subnet": "10.1.2.0/24", "gateway": gateway}).range_sets
    assert r.text(r.gateway) == text
    assert not r.never_handed_out(r.network + 1) and r.usable() == 254
    assert len(warnings) == 1 and f"gateway {text} is not in network 10.1.2.0/24" in warnings[0]


class _Store(allocator.StoreView):
    def __init__(self):
        self.names = {}

    def reserve(self, name, container_id, ifname, set_index):
        return self.names.setdefault(name, container_id) == container_id

    def last_reserved(self, set_index):
        return None

    def owned(self, container_id, ifname):
        return []

    def taken(self):
        return set(self.names)


@pytest.mark.parametrize("gateway", ["10.9.9.9", "fd00::1"])
def test_the_result_reports_the_outside_gateway(warnings, gateway):
    """As the reference's: address 10.1.2.1/24, gateway as configured."""
    rs = load({"subnet": "10.1.2.0/24", "gateway": gateway}).range_sets[0]
    ipc = allocator.allocate_in_set(rs, 0, _Store(), "c1", "eth0", None)
    assert (ipc.address, ipc.gateway) == ("10.1.2.1/24", gateway)
    asked = allocator.allocate_in_set(rs, 0, _Store(), "c1", "eth0", v4("10.1.2.7"))
    assert (asked.address, asked.gateway) == ("10.1.2.7/24", gateway)


def test_gateway_inside_the_subnet_warns_nothing(warnings):
    load({"subnet": "10.1.2.0/24", "gateway": "10.1.2.254"})
    assert warnings == []
