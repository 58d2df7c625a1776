"""Result model: parsing every spec version and converting between them.

Goldens in fixtures/results come from the reference library's converters
(see fixtures/README.md), so these tests pin our output to the reference.
"""

import json
from pathlib import Path

import pytest

from pycni import errors
from pycni.errors import CNIError
from pycni.result import DNS, Interface, IPConfig, Result, Route, parse_result

FIXTURES = Path(__file__).parent / "fixtures" / "results"
OLD_TARGETS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
ALL_VERSIONS = OLD_TARGETS + ("1.1.0",)
INPUTS = sorted(p.stem for p in FIXTURES.glob("*.json") if ".to-" not in p.name)


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def source_version(name: str) -> str:
    return name.rsplit("-", 1)[1]


def test_fixture_set_is_complete():
    assert len(INPUTS) >= 6
    for name in INPUTS:
        for target in OLD_TARGETS:
            assert (FIXTURES / f"{name}.to-{target}.json").exists()


@pytest.mark.parametrize("target", OLD_TARGETS)
@pytest.mark.parametrize("name", INPUTS)
def test_conversion_matches_reference(name, target):
    expected = load(f"{name}.to-{target}")
    result = parse_result(load(name), "1.1.0")
    assert result.cni_version == source_version(name)
    if "error" in expected:
        with pytest.raises(CNIError) as info:
            result.to_dict(target)
        assert info.value.msg == expected["error"]
    else:
        assert result.to_dict(target) == expected


@pytest.mark.parametrize("name", INPUTS)
def test_conversion_to_1_1_only_changes_version(name):
    expected = load(f"{name}.to-1.0.0")
    expected["cniVersion"] = "1.1.0"
    assert parse_result(load(name), "1.1.0").to_dict("1.1.0") == expected


@pytest.mark.parametrize("target", ALL_VERSIONS)
@pytest.mark.parametrize("name", INPUTS)
def test_converted_output_parses_back_to_same_output(name, target):
    """to_dict(v) output is itself a valid result of version v."""
    result = parse_result(load(name), "1.1.0")
    try:
        first = result.to_dict(target)
    except CNIError:
        return
    again = parse_result(json.loads(json.dumps(first)), "0.1.0")
    assert again.cni_version == target
    assert again.to_dict(target) == first


@pytest.mark.parametrize("version", ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"))
def test_interface_index_zero_round_trips(version):
    data = {"cniVersion": version, "interfaces": [{"name": "eth0"}],
            "ips": [{"interface": 0, "address": "10.0.0.2/24"}]}
    result = parse_result(data, version)
    assert result.ips[0].interface == 0
    assert result.to_dict(version)["ips"][0]["interface"] == 0


def test_ip_without_interface_has_no_interface_key():
    result = parse_result(load("ipam-1.0.0"), "1.0.0")
    assert result.ips[0].interface is None
    for version in ("0.3.1", "1.0.0", "1.1.0"):
        assert "interface" not in result.to_dict(version)["ips"][0]


def full_1_1() -> Result:
    return Result(
        cni_version="1.1.0",
        interfaces=[Interface(name="eth0", mac="aa:bb:cc:dd:ee:ff", sandbox="/run/netns/a",
                              mtu=9000, socket_path="/run/vhost.sock", pci_id="0000:04:00.5")],
        ips=[IPConfig(address="10.0.0.2/24", gateway="10.0.0.1", interface=0)],
        routes=[Route(dst="0.0.0.0/0", gw="10.0.0.1", mtu=1400, advmss=1360, priority=5,
                      table=100, scope=0)],
        dns=DNS(nameservers=["10.0.0.1"]))


def test_1_1_fields_written_in_1_1():
    out = full_1_1().to_dict("1.1.0")
    assert out["interfaces"][0] == {
        "name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 9000, "sandbox": "/run/netns/a",
        "socketPath": "/run/vhost.sock", "pciID": "0000:04:00.5"}
    assert out["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400,
                                "advmss": 1360, "priority": 5, "table": 100, "scope": 0}
    assert parse_result(out, "1.1.0").to_dict("1.1.0") == out


def test_1_1_to_1_0_only_changes_version():
    """Reference: 1.0 and 1.1 share one type; extra fields are kept."""
    out_10 = full_1_1().to_dict("1.0.0")
    out_11 = full_1_1().to_dict("1.1.0")
    assert out_10 == {**out_11, "cniVersion": "1.0.0"}


@pytest.mark.parametrize("version", ("0.3.0", "0.3.1", "0.4.0"))
def test_1_1_interface_fields_dropped_in_0_x(version):
    out = full_1_1().to_dict(version)
    assert out["interfaces"] == [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff",
                                  "sandbox": "/run/netns/a"}]
    assert out["ips"] == [{"version": "4", "interface": 0, "address": "10.0.0.2/24",
                           "gateway": "10.0.0.1"}]
    # The reference copies routes whole into 0.3/0.4 results.
    assert out["routes"][0]["mtu"] == 1400


@pytest.mark.parametrize("version", ("0.1.0", "0.2.0"))
def test_1_1_to_legacy_keeps_dst_and_gw_only(version):
    out = full_1_1().to_dict(version)
    assert out == {"cniVersion": version,
                   "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                           "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]},
                   "dns": {"nameservers": ["10.0.0.1"]}}


def test_ips_version_only_in_0_3_and_0_4():
    result = parse_result(load("rich-0.3.1"), "0.3.1")
    for version in ("0.3.0", "0.3.1", "0.4.0"):
        assert [ip["version"] for ip in result.to_dict(version)["ips"]] == ["6", "4"]
    for version in ("1.0.0", "1.1.0"):
        assert all("version" not in ip for ip in result.to_dict(version)["ips"])


def test_legacy_keeps_first_address_of_each_family():
    result = Result(ips=[IPConfig("10.0.0.2/24"), IPConfig("10.0.0.3/24"),
                         IPConfig("fd00::2/64"), IPConfig("fd00::3/64")])
    out = result.to_dict("0.2.0")
    assert out["ip4"] == {"ip": "10.0.0.2/24"}
    assert out["ip6"] == {"ip": "fd00::2/64"}


def test_legacy_drops_routes_of_family_without_address():
    result = Result(ips=[IPConfig("10.0.0.2/24")],
                    routes=[Route("::/0", gw="fd00::1"), Route("0.0.0.0/0")])
    assert result.to_dict("0.1.0") == {"cniVersion": "0.1.0",
                                       "ip4": {"ip": "10.0.0.2/24",
                                               "routes": [{"dst": "0.0.0.0/0"}]},
                                       "dns": {}}


def test_no_ip_to_legacy_is_an_error_with_code():
    with pytest.raises(CNIError) as info:
        Result(interfaces=[Interface("eth0")]).to_dict("0.2.0")
    assert info.value.msg == "cannot convert: no valid IP addresses"


def test_dns_empty_printed_in_0_x_omitted_in_1_x():
    result = Result(ips=[IPConfig("10.0.0.2/24")])
    assert result.to_dict("0.2.0")["dns"] == {}
    assert result.to_dict("0.3.1")["dns"] == {}
    assert result.to_dict("0.4.0")["dns"] == {}
    assert "dns" not in result.to_dict("1.0.0")
    assert "dns" not in result.to_dict("1.1.0")


def test_dns_partial_fields():
    data = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}],
            "dns": {"search": ["a.test"]}}
    assert parse_result(data, "1.0.0").to_dict("1.1.0")["dns"] == {"search": ["a.test"]}


def test_to_dict_defaults_to_own_version():
    result = parse_result(load("rich-0.3.1"), "1.0.0")
    assert result.to_dict()["cniVersion"] == "0.3.1"


def test_missing_version_takes_default():
    result = parse_result({"ips": [{"address": "10.0.0.2/24"}]}, "0.4.0")
    assert result.cni_version == "0.4.0"


def test_legacy_shape_detected_by_keys():
    result = parse_result({"ip4": {"ip": "10.0.0.2/24"}}, "0.2.0")
    assert [ip.address for ip in result.ips] == ["10.0.0.2/24"]
    assert result.cni_version == "0.2.0"


def test_parse_does_not_mutate_input():
    data = load("full-1.0.0")
    before = json.dumps(data, sort_keys=True)
    parse_result(data, "1.0.0").to_dict("0.2.0")
    assert json.dumps(data, sort_keys=True) == before


MALFORMED = [
    pytest.param([], id="list"),
    pytest.param("x", id="string"),
    pytest.param(None, id="null"),
    pytest.param({"cniVersion": 1, "ips": []}, id="version-int"),
    pytest.param({"cniVersion": "one", "ips": []}, id="version-garbage"),
    pytest.param({"cniVersion": "1.0.0", "ips": {}}, id="ips-object"),
    pytest.param({"cniVersion": "1.0.0", "ips": "10.0.0.1/24"}, id="ips-string"),
    pytest.param({"cniVersion": "1.0.0", "ips": [5]}, id="ip-int"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{}]}, id="ip-no-address"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": 5}]}, id="address-int"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}, id="address-no-prefix"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "garbage/24"}]}, id="address-garbage"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/33"}]}, id="prefix-too-long"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "fd00::1/129"}]}, id="prefix6-too-long"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "gateway": "nope"}]},
                 id="gateway-garbage"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "interface": "0"}]},
                 id="interface-string"),
    pytest.param({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "interface": True}]},
                 id="interface-bool"),
    pytest.param({"cniVersion": "1.0.0", "interfaces": [{"name": 1}]}, id="ifname-int"),
    pytest.param({"cniVersion": "1.0.0", "interfaces": ["eth0"]}, id="interface-string-entry"),
    pytest.param({"cniVersion": "1.0.0", "interfaces": [{"name": "a", "mtu": "9000"}]}, id="mtu-string"),
    pytest.param({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}, id="route-no-dst"),
    pytest.param({"cniVersion": "1.0.0", "routes": [{"dst": "default"}]}, id="route-dst-garbage"),
    pytest.param({"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "gw": "x"}]}, id="route-gw-garbage"),
    pytest.param({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "table": "main"}]},
                 id="route-table-string"),
    pytest.param({"cniVersion": "1.0.0", "dns": []}, id="dns-list"),
    pytest.param({"cniVersion": "1.0.0", "dns": {"nameservers": "1.1.1.1"}}, id="nameservers-string"),
    pytest.param({"cniVersion": "1.0.0", "dns": {"search": [1]}}, id="search-int"),
    pytest.param({"cniVersion": "0.2.0", "ip4": "10.0.0.1/24"}, id="ip4-string"),
    pytest.param({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}, id="ip4-no-ip"),
    pytest.param({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.1/24", "routes": {}}},
                 id="ip4-routes-object"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_result_is_decoding_failure(data):
    with pytest.raises(CNIError) as info:
        parse_result(data, "1.0.0")
    assert info.value.code == errors.DECODING_FAILURE


def test_unknown_result_version_is_rejected():
    with pytest.raises(CNIError) as info:
        parse_result({"cniVersion": "9.9.9", "ips": [{"address": "10.0.0.1/24"}]}, "1.0.0")
    assert info.value.code == errors.INCOMPATIBLE_VERSION
    assert "9.9.9" in str(info.value)


def test_null_members_are_tolerated():
    data = {"cniVersion": "1.0.0", "interfaces": None, "ips": None, "routes": None, "dns": None}
    result = parse_result(data, "1.0.0")
    assert result.to_dict("1.0.0") == {"cniVersion": "1.0.0"}


def test_family_from_address():
    assert IPConfig("10.0.0.1/8").family == 4
    assert IPConfig("fd00::1/8").family == 6
    assert Route("::/0").family == 6
    assert Route("0.0.0.0/0").family == 4


def test_merge_appends_and_shifts_interface_indexes():
    from pycni.result import DNS, Interface, IPConfig, Result, Route, merge
    prev = Result(interfaces=[Interface("tap0", sandbox="/x")],
                  ips=[IPConfig("192.0.2.5/24", interface=0)],
                  routes=[Route("198.51.100.0/24")], dns=DNS(nameservers=["192.0.2.53"]))
    new = Result(cni_version="1.0.0",
                 interfaces=[Interface("br0"), Interface("veth1"), Interface("eth0", sandbox="/x")],
                 ips=[IPConfig("10.0.0.2/24", "10.0.0.1", interface=2), IPConfig("10.9.0.2/24")])
    merged = merge(prev, new)
    assert [i.name for i in merged.interfaces] == ["tap0", "br0", "veth1", "eth0"]
    assert [(ip.address, ip.interface) for ip in merged.ips] == [
        ("192.0.2.5/24", 0), ("10.0.0.2/24", 3), ("10.9.0.2/24", None)]
    assert merged.dns.nameservers == ["192.0.2.53"] and merged.cni_version == "1.0.0"
    assert [r.dst for r in merged.routes] == ["198.51.100.0/24"]
