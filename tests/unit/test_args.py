"""CNI_ARGS parsing (reference types.LoadArgs semantics)."""

import pytest

from pycni import errors
from pycni.args import COMMON_KEYS, CniArgs, parse_cni_args, parse_go_bool
from pycni.errors import CNIError

PODMAN = "IgnoreUnknown=1;K8S_POD_NAME=web;MAC=aa:bb:cc:dd:ee:ff;IP=10.88.0.9"
CONTAINERD = ("K8S_POD_UID=1234;IgnoreUnknown=1;K8S_POD_NAMESPACE=default;"
              "K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abcdef")


def test_empty_means_no_args():
    args = parse_cni_args("")
    assert args.pairs == []
    assert args.get("IP") == ""
    assert args.get("IP", "dflt") == "dflt"
    assert args.ignore_unknown is False
    args.require_known([])


def test_pairs_in_order():
    args = parse_cni_args(PODMAN)
    assert args.pairs == [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web"),
                          ("MAC", "aa:bb:cc:dd:ee:ff"), ("IP", "10.88.0.9")]
    assert args.get("MAC") == "aa:bb:cc:dd:ee:ff"
    assert args.get("IP") == "10.88.0.9"


def test_keys_are_case_sensitive():
    args = parse_cni_args("ip=10.0.0.1")
    assert args.get("IP") == ""
    assert args.get("ip") == "10.0.0.1"


def test_empty_value_allowed():
    args = parse_cni_args("IP=;MAC=x")
    assert args.get("IP") == ""
    assert args.get("MAC") == "x"


def test_last_duplicate_wins():
    """LoadArgs assigns each pair in turn, so a later key overrides."""
    assert parse_cni_args("IP=10.0.0.1;IP=10.0.0.2").get("IP") == "10.0.0.2"
    assert parse_cni_args("IgnoreUnknown=0;IgnoreUnknown=1").ignore_unknown is True


@pytest.mark.parametrize("text", [
    "IP", "IP=1=2", "IP=10.0.0.1;", ";IP=10.0.0.1", "a=b;;c=d", "==",
    "MAC=aa:bb;IgnoreUnknown",
])
def test_bad_pairs_rejected(text):
    with pytest.raises(CNIError) as info:
        parse_cni_args(text)
    assert info.value.code == errors.INVALID_ENVIRONMENT
    assert "invalid CNI_ARGS pair" in info.value.msg


def test_empty_key_is_a_pair():
    """"=v" splits into exactly two parts, as in the reference."""
    assert parse_cni_args("=v").pairs == [("", "v")]
    assert parse_cni_args("=").pairs == [("", "")]


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("TRUE", True), ("True", True),
    ("0", False), ("false", False), ("FALSE", False),
])
def test_ignore_unknown_values(value, expected):
    assert parse_cni_args(f"IgnoreUnknown={value}").ignore_unknown is expected


@pytest.mark.parametrize("value", ["yes", "", "2", "t", "on"])
def test_ignore_unknown_bad_value(value):
    args = parse_cni_args(f"IgnoreUnknown={value};FOO=1")
    with pytest.raises(CNIError) as info:
        args.require_known([])
    assert info.value.code == errors.INVALID_ENVIRONMENT
    assert "IgnoreUnknown" in info.value.msg


def test_ignore_unknown_key_is_case_sensitive():
    args = parse_cni_args("ignoreunknown=1;FOO=1")
    with pytest.raises(CNIError):
        args.require_known([])


def test_require_known_rejects_unknown_key():
    args = parse_cni_args("IP=10.0.0.1;FOO=bar")
    with pytest.raises(CNIError) as info:
        args.require_known(["IP"])
    assert info.value.code == errors.INVALID_ENVIRONMENT
    assert '"FOO"' in info.value.msg


def test_require_known_accepts_known_and_common_keys():
    parse_cni_args("IP=10.0.0.1;K8S_POD_NAME=x;K8S_POD_NAMESPACE=y;"
                   "K8S_POD_INFRA_CONTAINER_ID=z;K8S_POD_UID=u").require_known(["IP"])
    assert "IgnoreUnknown" in COMMON_KEYS


@pytest.mark.parametrize("text", [PODMAN, CONTAINERD])
def test_runtime_strings_pass_with_ignore_unknown(text):
    parse_cni_args(text).require_known([])


def test_ignore_unknown_false_still_rejects():
    with pytest.raises(CNIError):
        parse_cni_args("IgnoreUnknown=false;FOO=1").require_known([])


def test_known_keys_accept_any_iterable():
    parse_cni_args("IP=1;MAC=2").require_known({"IP", "MAC"})
    parse_cni_args("IP=1;MAC=2").require_known(("IP", "MAC"))


def test_cniargs_default_constructible():
    assert CniArgs().pairs == []


@pytest.mark.parametrize("value", ["maybe", "", "yes"])
def test_parse_go_bool_errors_name_the_key(value):
    with pytest.raises(CNIError) as info:
        parse_go_bool(value, "SomeKey")
    assert "SomeKey" in info.value.msg
