"""static's config model, pure: Go's address parsing, CNI_ARGS as the
reference's types.LoadArgs reads them, the precedence of the address
sources, routes, and CHECK's decision. (Case-by-case agreement with the
reference binaries: test_static_reference.py.)"""

import pytest

from pycni.errors import CNIError, INTERNAL
from pycni.ipam.static import config as cfg
from pycni.result import Result, IPConfig


def conf(ipam=None, v="1.0.0", **top):
    return {"cniVersion": v, "name": "st-net", "ipam": {"type": "static", **(ipam or {})}, **top}


def texts(c: cfg.Settings) -> list[tuple[str, str]]:
    return [(str(a.cidr), str(a.gateway) if a.gateway else "") for a in c.addresses]


def refused(fn, *args) -> str:
    with pytest.raises(CNIError) as info:
        fn(*args)
    assert info.value.code == INTERNAL      # the reference's code for all of them
    return info.value.msg


# ------------------------------------------------------------ addresses

@pytest.mark.parametrize("text, want", [
    ("10.0.0.5/24", "10.0.0.5/24"),
    ("10.0.0.5/0", "10.0.0.5/0"),
    ("10.0.0.5/32", "10.0.0.5/32"),
    ("10.0.0.5/024", "10.0.0.5/24"),               # Go's dtoi takes leading zeros
    ("FD00:0:0::1/64", "fd00::1/64"),
    ("fd00::/128", "fd00::/128"),
    ("::ffff:10.0.0.1/120", "10.0.0.1/24"),          # IPv4-mapped: IPv4, the mask's tail
    ("::ffff:10.0.0.1/96", "10.0.0.1/0"),
    ("::ffff:10.0.0.1/90", "10.0.0.1/0"),
    ("::ffff:0a00:0001/128", "10.0.0.1/32"),
    ("::10.0.0.1/128", "::a00:1/128"),               # IPv4-compatible stays IPv6
    ("10.0.0.1/" + "0" * 5000 + "8", "10.0.0.1/8"),
])
def test_parse_cidr_as_go(text, want):
    assert str(cfg.parse_cidr(text)) == want


@pytest.mark.parametrize("text", [
    "10.0.0.5", "10.0.0.5/", "10.0.0.5/33", "fd00::1/129", "010.0.0.1/24", " 10.0.0.1/24",
    "10.0.0.1/24 ", "10.0.0.1/+24", "10.0.0.1/-1", "10.0.0.1/２４", "fe80::1%eth0/64",
    "10.0.0.0/255.255.255.0", "", None, 5, "10.0.0.1/24/8", "a.b.c.d/8",
    "10.0.0.1/" + "9" * 5000, "10.0.0.1/1000",
])
def test_parse_cidr_refuses_what_go_refuses(text):
    assert cfg.parse_cidr(text) is None


@pytest.mark.parametrize("text, want", [
    ("10.0.0.1", "10.0.0.1"), ("::ffff:10.0.0.1", "10.0.0.1"), ("FD00::0001", "fd00::1"),
])
def test_parse_ip(text, want):
    assert str(cfg.parse_ip(text)) == want


@pytest.mark.parametrize("text", ["", "10.0.0.1/24", "01.0.0.1", "fe80::1%1", " 10.0.0.1", None])
def test_parse_ip_refuses(text):
    assert cfg.parse_ip(text) is None


def test_contains_is_go_ipnet_contains():
    net = cfg.parse_cidr("10.0.0.7/24")
    assert net.contains(cfg.parse_ip("10.0.0.1"))
    assert net.contains(cfg.parse_ip("::ffff:10.0.0.200"))
    assert not net.contains(cfg.parse_ip("10.0.1.1"))
    assert not net.contains(cfg.parse_ip("::a00:1"))
    assert cfg.parse_cidr("10.0.0.7/0").contains(cfg.parse_ip("192.0.2.1"))


# ------------------------------------------------------------- CNI_ARGS

def test_env_args_fields_and_last_wins():
    assert cfg.load_env_args("") == ("", "")
    assert cfg.load_env_args("IP=10.0.0.7/24;GATEWAY=10.0.0.1") == ("10.0.0.7/24", "10.0.0.1")
    assert cfg.load_env_args("IP=a;IP=b") == ("b", "")
    assert cfg.load_env_args("IgnoreUnknown=TRUE;x=y;IP=a") == ("a", "")
    assert cfg.load_env_args("x=y;IgnoreUnknown=1") == ("", "")   # checked when parsing ends


@pytest.mark.parametrize("text, msg", [
    ("K8S_POD_NAME=x;K8S_POD_UID=u", 'ARGS: unknown args ["K8S_POD_NAME=x" "K8S_POD_UID=u"]'),
    ("ip=10.0.0.7/24", 'ARGS: unknown args ["ip=10.0.0.7/24"]'),
    ("IgnoreUnknown=1;IgnoreUnknown=false;a=b", 'ARGS: unknown args ["a=b"]'),
    ("IP=1;", 'ARGS: invalid pair ""'),
    ("IP", 'ARGS: invalid pair "IP"'),
    ("IP=a=b", 'ARGS: invalid pair "IP=a=b"'),
    ('a"b', 'ARGS: invalid pair "a\\"b"'),
    ("IgnoreUnknown=Yes", 'ARGS: error parsing value of pair "IgnoreUnknown=Yes": '
                          'boolean unmarshal error: invalid input yes'),
    ("a=b;IgnoreUnknown=x", 'ARGS: error parsing value of pair "IgnoreUnknown=x": '
                            'boolean unmarshal error: invalid input x'),
    ("CommonArgs=1", "ARGS: cannot unmarshal into field 'CommonArgs' - type "
                     "'*types.CommonArgs' does not implement encoding.TextUnmarshaler"),
])
def test_env_args_refusals(text, msg):
    assert refused(cfg.load_env_args, text) == msg


def test_go_quote():
    assert cfg.go_quote('a"\\b\n\x01é\u200b') == '"a\\"\\\\b\\n\\x01é\\u200b"'


# ----------------------------------------------------------- precedence

A = [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}]


def test_cni_args_append_and_gateways_only_for_their_own_addresses():
    c = cfg.load(conf({"addresses": [{"address": "10.0.0.5/24"}]}),
                 "IP=10.0.0.7/24, fd00::7/64;GATEWAY=10.0.0.1,fd00::1,10.0.0.2,192.0.2.1")
    assert texts(c) == [("10.0.0.5/24", ""), ("10.0.0.7/24", "10.0.0.2"),
                        ("fd00::7/64", "fd00::1")]


def test_args_cni_ips_replace_cni_args_and_config():
    c = cfg.load(conf({"addresses": A}, args={"cni": {"ips": ["10.1.0.5/16", "fd01::5/64"]}}),
                 "IP=10.0.0.7/24;GATEWAY=10.0.0.1")
    assert texts(c) == [("10.1.0.5/16", ""), ("fd01::5/64", "")]


def test_capability_replaces_everything():
    c = cfg.load(conf({"addresses": A}, args={"cni": {"ips": ["10.1.0.5/16"]}},
                      runtimeConfig={"ips": ["10.2.0.5/16"]}), "IP=10.0.0.7/24")
    assert texts(c) == [("10.2.0.5/16", "")]


def test_empty_lists_replace_nothing():
    c = cfg.load(conf({"addresses": A}, args={"cni": {"ips": []}}, runtimeConfig={"ips": []}))
    assert texts(c) == [("10.0.0.5/24", "10.0.0.1")]


def test_cni_args_are_read_before_the_sources_that_replace_them():
    # a bad CNI_ARGS fails ADD even though runtimeConfig.ips would replace it
    msg = refused(cfg.load, conf(runtimeConfig={"ips": ["10.2.0.5/16"]}), "IP=bad")
    assert msg == "the 'ip' field is expected to be in CIDR notation, got: 'bad'"


def test_more_than_one_per_family_needs_0_3_0():
    two = {"addresses": [{"address": "10.0.0.5/24"}, {"address": "10.0.0.6/24"}]}
    assert refused(cfg.load, conf(two, v="0.2.0")) == \
        "CNI version 0.2.0 does not support more than 1 address per family"
    assert refused(cfg.load, conf(two, v="")) == \
        "CNI version  does not support more than 1 address per family"
    assert len(cfg.load(conf(two, v="0.3.0")).addresses) == 2
    one_each = {"addresses": [{"address": "10.0.0.5/24"}, {"address": "fd00::5/64"}]}
    assert len(cfg.load(conf(one_each, v="0.1.0")).addresses) == 2
    # CNI_ARGS addresses count too
    assert refused(cfg.load, conf({"addresses": A}, v="0.2.0"), "IP=10.0.0.9/24").startswith(
        "CNI version 0.2.0")


def test_refusal_order_json_before_missing_ipam_before_cni_args():
    assert refused(cfg.load, conf({"addresses": [{"address": "x", "gateway": "bad"}]}),
                   "IP=bad") == "invalid IP address: bad"
    assert refused(cfg.load, {"name": "n", "ipam": None}, "IP=bad") == \
        "IPAM config missing 'ipam' key"
    assert refused(cfg.load, conf({"addresses": [{"address": "x"}]}), "IP=bad") == \
        "the 'ip' field is expected to be in CIDR notation, got: 'bad'"


def test_wrong_types_are_code_999_with_the_path():
    msg = refused(cfg.load, conf({"addresses": [{"address": 5}]}))
    assert msg == "invalid value for config.ipam.addresses[0].address: expected a string"
    assert refused(cfg.load, conf({"name": 5})).startswith("invalid value for config.ipam.name")
    assert refused(cfg.load, conf({"type": ["static"]})).startswith(
        "invalid value for config.ipam.type")


# -------------------------------------------------------- Address (IPNet)

@pytest.mark.parametrize("ipnet, want", [
    ({"IP": "10.0.0.5", "Mask": "////AA=="}, "10.0.0.5/24"),
    ({"ip": "10.0.0.5", "mask": "AAAAAAAAAAAAAP//////AA=="}, "10.0.0.5/24"),   # 16-byte mask
    ({"IP": "fd00::5", "Mask": "//////////8AAAAAAAAAAA=="}, "fd00::5/64"),
])
def test_the_go_structs_address_key(ipnet, want):
    c = cfg.load(conf({"addresses": [{"Address": ipnet, "address": "ignored"}]}))
    assert texts(c) == [(want, "")]


def test_address_key_without_ip_falls_back_to_the_text():
    c = cfg.load(conf({"addresses": [{"Address": {"Mask": "////AA=="}, "address": "10.0.0.9/8"}]}))
    assert texts(c) == [("10.0.0.9/8", "")]


@pytest.mark.parametrize("ipnet", [
    "10.0.0.5/24", {"IP": "10.0.0.5", "Mask": "/w=="}, {"IP": "10.0.0.5", "Mask": "/wD/AA=="},
    {"IP": "10.0.0.5", "Mask": "not base64"}, {"IP": "bad", "Mask": "////AA=="},
    {"IP": "fd00::5", "Mask": "////AA=="},
])
def test_address_key_refusals(ipnet):
    refused(cfg.load, conf({"addresses": [{"Address": ipnet}]}))


# ----------------------------------------------------------------- routes

def test_routes_canonical_and_extras():
    routes = cfg.parse_routes([
        {"dst": "10.1.2.3/8", "gw": "::ffff:10.0.0.1", "mtu": 1400, "table": 0, "scope": 253},
        {"DST": "FD00::/64", "priority": 7.0}, {"dst": "::ffff:10.0.0.0/104"}])
    assert [r.to_dict() for r in routes] == [
        {"dst": "10.1.2.3/8", "gw": "10.0.0.1", "mtu": 1400, "table": 0, "scope": 253},
        {"dst": "fd00::/64", "priority": 7}, {"dst": "10.0.0.0/8"}]


@pytest.mark.parametrize("route, msg", [
    ({"dst": "bad"}, "invalid CIDR address: bad"),
    ({"dst": None}, "invalid CIDR address: "),
    ({"dst": "10.0.0.0/8", "gw": "x"}, "invalid IP address: x"),
    ({"gw": "10.0.0.1"}, "invalid route 0: dst is missing"),
    (None, "invalid route 0: expected an object, got null"),
    ({"dst": 5}, "invalid route 0: dst must be a string"),
    ({"dst": "10.0.0.0/8", "gw": 5}, "invalid route 0: gw must be a string"),
    ({"dst": "10.0.0.0/8", "mtu": "1400"}, "invalid route 0: mtu must be an integer"),
    ({"dst": "10.0.0.0/8", "table": True}, "invalid route 0: table must be an integer"),
    ({"dst": "10.0.0.0/8", "mtu": 1 << 63}, "invalid route 0: mtu must be an integer"),
    ({"dst": "10.0.0.0/8", "priority": 1.5}, "invalid route 0: priority must be an integer"),
])
def test_route_refusals(route, msg):
    assert refused(cfg.parse_routes, [route]) == msg


# ------------------------------------------------------------------ CHECK

def prev(*pairs) -> Result:
    return Result(ips=[IPConfig(address=a, gateway=g) for a, g in pairs])


CONFIGURED = conf({"addresses": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
                                 {"address": "fd00::5/64"}]})


@pytest.mark.parametrize("pairs, problem", [
    ([("10.0.0.5/24", "10.0.0.1"), ("fd00::5/64", "")], ""),
    ([("10.0.0.5/16", "10.0.0.1")], ""),                       # the prefix is not compared
    ([("10.0.0.6/24", "")], ""),                               # absent: passes, as the reference
    ([], ""),
    ([("fd00::5/64", "fd00::1")], ""),                         # no gateway configured for it
    ([("10.0.0.5/24", "10.0.0.2")], "static: Failed to match addr 10.0.0.5 on interface eth0"),
    ([("10.0.0.5/24", "")], "static: Failed to match addr 10.0.0.5 on interface eth0"),
    ([("::ffff:10.0.0.5/120", "::ffff:10.0.0.1")], ""),        # Go's IP.Equal
    ([("10.0.0.5/24", "10.0.0.2"), ("10.0.0.5/24", "10.0.0.1")],
     "static: Failed to match addr 10.0.0.5 on interface eth0"),   # the first entry decides
])
def test_check_problem(pairs, problem):
    assert cfg.check_problem(cfg.load(CONFIGURED), prev(*pairs), "eth0") == problem


def test_prev_result_parsing():
    assert cfg.prev_result({"name": "n"}, "1.0.0") is None
    assert cfg.prev_result({"name": "n", "prevResult": None}, "1.0.0") is None
    assert cfg.prev_result({"name": "n", "prevResult": {}}, "1.0.0").ips == []
    assert refused(cfg.prev_result, {"prevResult": {"cniVersion": "0.4.0"}}, "1.1.0") == (
        'could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled '
        'CNIVersion is "0.4.0"')
    assert refused(cfg.prev_result, {"prevResult": []}, "1.1.0").startswith(
        "failed to load netconf")


def test_address_key_under_keys_of_another_case():
    c = cfg.load({"cniVersion": "1.0.0", "name": "n", "IPAM": {
        "type": "static", "Addresses": [{"Address": {"IP": "10.0.0.5", "Mask": "////AA=="}}]}})
    assert texts(c) == [("10.0.0.5/24", "")]
