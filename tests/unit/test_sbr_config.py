"""sbr's pure decisions: the config model and every refusal, which
prevResult addresses count, which tables are free, which routes go where."""

import pytest

from pycni.errors import CNIError, DECODING_FAILURE, INVALID_NETWORK_CONFIG
from pycni.plugins.sbr import config
from pycni.result import parse_result


def conf(**keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "sbrnet", "type": "sbr", **keys}


def prev(ips, interfaces=("eth0",)) -> dict:
    return {"cniVersion": "1.0.0",
            "interfaces": [{"name": n, "sandbox": "/run/netns/x"} for n in interfaces],
            "ips": ips}


def result(ips, interfaces=("eth0",)):
    return parse_result(prev(ips, interfaces), "1.0.0")


# --- config ----------------------------------------------------------------------

def test_no_table_means_automatic():
    assert config.load(conf()) is None
    assert config.load(conf(table=None)) is None


@pytest.mark.parametrize("table", [1, 100, 255, 4294967295])
def test_table_in_range(table):
    assert config.load(conf(table=table)) == table


def test_table_key_matches_as_go_does():
    assert config.load(conf(Table=7, TABLE=9)) == 9


@pytest.mark.parametrize("table", [0, -1, 4294967296, 1 << 40])
def test_table_out_of_range_is_refused(table):
    with pytest.raises(CNIError) as err:
        config.load(conf(table=table))
    assert err.value.code == INVALID_NETWORK_CONFIG
    assert err.value.msg == f"invalid table {table}, must be [1, 4294967295]"


@pytest.mark.parametrize("table", ["100", 1.5, True, [100], {"id": 1}])
def test_table_of_another_type_is_refused(table):
    with pytest.raises(CNIError) as err:
        config.load(conf(table=table))
    assert err.value.code == INVALID_NETWORK_CONFIG
    assert "config.table" in err.value.msg


def test_integral_float_table_is_taken_as_pycni_decode_takes_integers():
    # (Go would refuse 100.0 for an int; pycni.decode accepts integral floats)
    assert config.load(conf(table=100.0)) == 100


@pytest.mark.parametrize("table, expected", [(100, 100), (100.0, 100), (None, None),
                                             ("100", None), (True, None), (0, None),
                                             (-5, None), (1 << 32, None), ([1], None)])
def test_delete_reads_table_leniently(table, expected):
    assert config.table_for_delete(conf(table=table)) == expected
    assert config.table_for_delete(conf()) is None


# --- prevResult ------------------------------------------------------------------

def test_prev_result_is_required():
    with pytest.raises(CNIError) as err:
        config.require_prev_result(None)
    assert (err.value.code, err.value.msg) == \
        (INVALID_NETWORK_CONFIG, "This plugin must be called as chained plugin")


def test_no_addresses_at_all_is_an_error():
    with pytest.raises(CNIError) as err:
        config.interface_ips(result([]), "eth0")
    assert (err.value.code, err.value.msg) == \
        (INVALID_NETWORK_CONFIG, "No IP addresses supplied on interface: eth0")


def test_which_addresses_belong_to_the_interface():
    res = result([
        {"address": "10.0.0.5/24", "interface": 0},            # eth0
        {"address": "10.1.0.5/24", "interface": 1},            # net1: skipped
        {"address": "10.2.0.5/24"},                            # no index: counts
        {"address": "10.3.0.5/24", "interface": 7},            # out of range: counts
        {"address": "10.4.0.5/24", "interface": -1},           # out of range: counts
    ], interfaces=("eth0", "net1"))
    assert [ip.address for ip in config.interface_ips(res, "eth0")] == \
        ["10.0.0.5/24", "10.2.0.5/24", "10.3.0.5/24", "10.4.0.5/24"]
    assert [ip.address for ip in config.interface_ips(res, "net1")] == \
        ["10.1.0.5/24", "10.2.0.5/24", "10.3.0.5/24", "10.4.0.5/24"]


def test_addresses_of_other_interfaces_only_is_no_error():
    res = result([{"address": "10.1.0.5/24", "interface": 0}], interfaces=("net1",))
    assert config.interface_ips(res, "eth0") == []


def test_legacy_prev_result_addresses_have_no_index():
    res = parse_result({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5/24",
                                                       "gateway": "10.0.0.1"},
                        "ip6": {"ip": "fd00::5/64"}}, "0.2.0")
    ips = config.interface_ips(res, "eth0")
    assert [(ip.address, ip.gateway) for ip in ips] == \
        [("10.0.0.5/24", "10.0.0.1"), ("fd00::5/64", "")]


def test_malformed_prev_result_is_a_decoding_failure():
    with pytest.raises(CNIError) as err:
        parse_result(prev([{"address": "10.0.0.5"}]), "1.0.0")
    assert err.value.code == DECODING_FAILURE


@pytest.mark.parametrize("address, source", [("10.0.0.5/24", "10.0.0.5"),
                                             ("fd00:0::0:5/64", "fd00::5"),
                                             ("192.168.1.1/32", "192.168.1.1")])
def test_rule_source_is_the_address_alone(address, source):
    (ip,) = result([{"address": address}]).ips
    assert config.host_address(ip) == source


# --- tables ----------------------------------------------------------------------

def test_first_free_table_from_100():
    assert config.next_free_table({253, 254, 255}, 100) == 100
    assert config.next_free_table({100, 101, 103}, 100) == 101 + 1
    assert config.next_free_table(set(), 4294967295) == 4294967295
    with pytest.raises(CNIError):
        config.next_free_table({4294967295}, 4294967295)


ROUTES = [("", "10.9.0.1"),           # default via 10.9.0.1
          ("10.9.0.5", ""),           # 10.9.0.0/24 proto kernel src 10.9.0.5
          ("", ""),                   # 192.168.7.0/24 dev eth0 (a device route)
          ("", ""),                   # fd09::/64 (kernel, no src)
          ("", ""),                   # fe80::/64
          ("", "fd09::1"),            # default via fd09::1
          ("", "10.50.0.1")]          # a route via a gateway in no address's subnet


def test_plan_one_table_per_address_and_the_routes_that_belong_to_it():
    res = result([{"address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 0},
                  {"address": "10.9.0.6/24", "interface": 0},
                  {"address": "fd09::5/64", "gateway": "fd09::1", "interface": 0}])
    plans = config.plan_tables(res.ips, ROUTES, {253, 254, 255, 101})
    assert [(p.source, p.table, p.gateway) for p in plans] == [
        ("10.9.0.5", 100, "10.9.0.1"), ("10.9.0.6", 102, ""), ("fd09::5", 103, "fd09::1")]
    assert plans[0].copies == [0, 1, 2, 3, 4]
    assert plans[1].copies == [0, 1, 2, 3, 4]    # same subnet: same routes
    assert plans[2].copies == [2, 3, 4, 5]       # device routes of any family go too


def test_plan_without_addresses_is_empty():
    assert config.plan_tables([], ROUTES, set()) == []


@pytest.mark.parametrize("prefsrc, gw, expected", [
    ("10.9.0.7", "", True), ("", "10.9.0.254", True), ("", "", True),
    ("10.8.0.1", "", False), ("", "10.8.0.1", False), ("", "fd09::1", False),
    ("fd09::9", "", False)])
def test_route_belongs_to_the_address_of_its_source_or_gateway(prefsrc, gw, expected):
    (ip,) = result([{"address": "10.9.0.5/24"}]).ips
    assert config.belongs_to(ip, prefsrc, gw) is expected
