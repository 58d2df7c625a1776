"""decode(): Go encoding/json semantics for configs, typed at the edge."""

from pycni.model import dataclass, field
from typing import Optional

import pytest

from pycni import errors
from pycni.config import NetConf
from pycni.decode import DecodeError, decode, json_name, key, lookup, parse_bool_or_string
from pycni.errors import CNIError


@dataclass
class Mapping:
    host_port: int = 0
    container_port: int = 0
    protocol: str = "tcp"
    host_ip: str = key("hostIP", default="")


@dataclass
class Inner:
    enabled: bool = False
    rate: float = 0.0


@dataclass
class Conf:
    name: str = ""
    mtu: int = 1500
    ip_masq: bool = False
    bridge: str = "cni0"
    mappings: list[Mapping] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None
    maybe_inner: Inner | None = None
    extra: dict = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    raw: object = None
    nested_lists: list[list[int]] = field(default_factory=list)


@dataclass
class Required:
    addr: str
    port: int = 0


def test_json_name_camel_case_and_explicit_key():
    fields = {f.name: f for f in Mapping.__dataclass_fields__.values()}
    assert json_name(fields["host_port"]) == "hostPort"
    assert json_name(fields["protocol"]) == "protocol"
    assert json_name(fields["host_ip"]) == "hostIP"


def test_defaults_when_keys_absent():
    assert decode(Conf, {}) == Conf()


def test_unknown_keys_ignored():
    assert decode(Conf, {"whatever": [1, 2], "name": "x"}).name == "x"


@pytest.mark.parametrize("spelling", ["hostPort", "HostPort", "HOSTPORT", "hostport"])
def test_keys_match_case_insensitively(spelling):
    assert decode(Mapping, {spelling: 8080}).host_port == 8080


def test_containerd_and_podman_spellings():
    podman = {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
    containerd = {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
    assert decode(Mapping, podman) == decode(Mapping, containerd) == \
        Mapping(host_port=18080, container_port=80)


@pytest.mark.parametrize("obj", [
    {"HostPort": 1, "hostPort": 2},
    {"hostPort": 1, "HostPort": 2},
    {"HOSTPORT": 1, "hostport": 2},
])
def test_last_case_insensitive_match_wins(obj):
    """Go sets the field once per matching key, in document order."""
    assert decode(Mapping, obj).host_port == 2


def test_lookup():
    assert lookup({"prevResult": 1}, "prevResult") == 1
    assert lookup({"PrevResult": 1}, "prevResult") == 1
    assert lookup({}, "prevResult") is None
    assert lookup({}, "prevResult", "d") == "d"
    assert lookup({"prevResult": 1, "prevresult": 2}, "prevresult") == 2
    assert lookup({"prevresult": 2, "prevResult": 1}, "prevresult") == 1


def test_nested_dataclasses_and_lists():
    conf = decode(Conf, {
        "mappings": [{"hostPort": 1, "containerPort": 2}, {"HostPort": 3, "Protocol": "udp"}],
        "tags": ["a", "b"],
        "inner": {"Enabled": True, "rate": 1.5},
        "maybeInner": {"enabled": True},
        "labels": {"a": 1},
        "raw": {"anything": [1, "x"]},
        "nestedLists": [[1, 2], []],
    })
    assert conf.mappings == [Mapping(1, 2), Mapping(3, 0, "udp")]
    assert conf.tags == ["a", "b"]
    assert conf.inner == Inner(True, 1.5)
    assert conf.maybe_inner == Inner(True, 0.0)
    assert conf.labels == {"a": 1}
    assert conf.raw == {"anything": [1, "x"]}
    assert conf.nested_lists == [[1, 2], []]


def test_int_and_float_coercions():
    assert decode(Conf, {"mtu": 9000.0}).mtu == 9000
    assert decode(Inner, {"rate": 3}).rate == 3.0


@pytest.mark.parametrize("obj, path", [
    ({"mtu": "1500"}, "config.mtu"),
    ({"mtu": 1.5}, "config.mtu"),
    ({"mtu": True}, "config.mtu"),
    ({"ipMasq": "true"}, "config.ipMasq"),
    ({"ipMasq": 1}, "config.ipMasq"),
    ({"name": 5}, "config.name"),
    ({"tags": "a"}, "config.tags"),
    ({"tags": ["a", 1]}, "config.tags[1]"),
    ({"mappings": [{"hostPort": "80"}]}, "config.mappings[0].hostPort"),
    ({"mappings": [5]}, "config.mappings[0]"),
    ({"inner": []}, "config.inner"),
    ({"inner": {"rate": "fast"}}, "config.inner.rate"),
    ({"inner": {"rate": False}}, "config.inner.rate"),
    ({"maybe": "x"}, "config.maybe"),
    ({"extra": []}, "config.extra"),
    ({"labels": {"a": "b"}}, "config.labels.a"),
    ({"labels": []}, "config.labels"),
])
def test_wrong_types_are_invalid_config_naming_the_key(obj, path):
    with pytest.raises(DecodeError) as info:
        decode(Conf, obj)
    assert info.value.code == errors.INVALID_NETWORK_CONFIG
    assert info.value.path == path
    assert path in info.value.msg


def test_wrong_type_details_show_the_value():
    with pytest.raises(CNIError) as info:
        decode(Conf, {"mtu": "big"})
    assert '"big"' in info.value.details


def test_long_values_are_shortened_in_details():
    with pytest.raises(CNIError) as info:
        decode(Conf, {"mtu": "x" * 500})
    assert len(info.value.details) < 100


def test_top_level_must_be_object():
    for bad in ([], "x", 5, None):
        with pytest.raises(CNIError) as info:
            decode(Conf, bad)
        assert info.value.code == errors.INVALID_NETWORK_CONFIG


def test_path_prefix_used():
    with pytest.raises(DecodeError) as info:
        decode(Mapping, {"hostPort": "x"}, "runtimeConfig.portMappings[3]")
    assert info.value.path == "runtimeConfig.portMappings[3].hostPort"


def test_missing_required_field_is_invalid_config():
    with pytest.raises(CNIError) as info:
        decode(Required, {"port": 1})
    assert info.value.code == errors.INVALID_NETWORK_CONFIG
    assert "config.addr" in info.value.msg
    assert decode(Required, {"ADDR": "x"}) == Required("x")


class TestNull:
    """JSON null: Go leaves non-pointer values untouched and sets
    slices, maps and pointers to nil."""

    def test_null_scalar_keeps_default(self):
        conf = decode(Conf, {"mtu": None, "bridge": None, "ipMasq": None, "name": None})
        assert (conf.mtu, conf.bridge, conf.ip_masq, conf.name) == (1500, "cni0", False, "")

    def test_null_nested_dataclass_keeps_default(self):
        assert decode(Conf, {"inner": None}).inner == Inner()
        conf = decode(NetConf, {"ipam": None, "dns": None})
        assert conf.ipam.type == ""
        assert conf.dns.nameservers == []

    def test_null_optional_is_none(self):
        conf = decode(Conf, {"maybe": None, "maybeInner": None})
        assert conf.maybe is None and conf.maybe_inner is None

    def test_null_collections_are_empty(self):
        conf = decode(Conf, {"tags": None, "mappings": None, "extra": None, "labels": None})
        assert (conf.tags, conf.mappings, conf.extra, conf.labels) == ([], [], {}, {})

    def test_null_in_list_is_zero_value(self):
        assert decode(Conf, {"tags": ["a", None]}).tags == ["a", ""]
        assert decode(Conf, {"mappings": [None]}).mappings == [Mapping()]
        assert decode(Conf, {"labels": {"a": None}}).labels == {"a": 0}

    def test_null_object_field_is_none(self):
        assert decode(Conf, {"raw": None}).raw is None

    def test_null_required_field_is_missing(self):
        with pytest.raises(CNIError) as info:
            decode(Required, {"addr": None})
        assert info.value.code == errors.INVALID_NETWORK_CONFIG


def test_typing_optional_supported():
    @dataclass
    class WithOptional:
        value: Optional[int] = None
        names: Optional[list[str]] = None

    assert decode(WithOptional, {"value": 3, "names": ["a"]}) == WithOptional(3, ["a"])
    assert decode(WithOptional, {"value": None}) == WithOptional()
    with pytest.raises(DecodeError):
        decode(WithOptional, {"value": "3"})


def test_string_annotations_supported():
    namespace: dict = {}
    exec("from __future__ import annotations\n"
         "from pycni.model import dataclass, field\n"
         "@dataclass\n"
         "class Postponed:\n"
         "    mtu: int = 0\n"
         "    names: list[str] = field(default_factory=list)\n"
         "    maybe: int | None = None\n", namespace)
    cls = namespace["Postponed"]
    assert decode(cls, {"MTU": 5, "names": ["x"], "maybe": 2}) == cls(5, ["x"], 2)
    with pytest.raises(DecodeError):
        decode(cls, {"mtu": "5"})


def test_netconf_decodes_common_keys():
    conf = decode(NetConf, {
        "cniVersion": "1.0.0", "name": "net", "type": "bridge",
        "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"},
        "dns": {"nameservers": ["10.0.0.1"]},
        "runtimeConfig": {"portMappings": []},
        "prevResult": {"cniVersion": "1.0.0"},
        "capabilities": {"portMappings": True},
    })
    assert conf.cni_version == "1.0.0"
    assert conf.ipam.type == "host-local"
    assert conf.dns.nameservers == ["10.0.0.1"]
    assert conf.runtime_config == {"portMappings": []}
    assert conf.prev_result == {"cniVersion": "1.0.0"}
    assert conf.capabilities == {"portMappings": True}


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("TRUE", True), ("True", True),
    ("false", False), ("FaLsE", False),
])
def test_parse_bool_or_string(value, expected):
    assert parse_bool_or_string(value, "disableCheck") is expected


@pytest.mark.parametrize("value", ["yes", "1", "0", "", 1, 0, None, [], "t"])
def test_parse_bool_or_string_rejects(value):
    with pytest.raises(CNIError) as info:
        parse_bool_or_string(value, "disableCheck")
    assert info.value.code == errors.INVALID_NETWORK_CONFIG
    assert "disableCheck" in info.value.msg
