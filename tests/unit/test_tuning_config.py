"""tuning: config decoding, precedence and validation (pure, no root)."""

import json

import pytest

from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.plugins.tuning import config as c


def conf(**extra) -> c.TuningConf:
    return c.decode_conf({"cniVersion": "1.0.0", "name": "net", "type": "tuning", **extra})


def settings(ifname="eth0", cni_args_mac="", allowlist=None, **extra) -> c.Settings:
    return c.build_settings(conf(**extra), ifname, cni_args_mac, allowlist)


def refused(fn, *args, **kw) -> CNIError:
    with pytest.raises(CNIError) as info:
        fn(*args, **kw)
    assert info.value.code == INVALID_NETWORK_CONFIG
    return info.value


# --- decoding -----------------------------------------------------------------

def test_defaults():
    s = settings()
    assert s.data_dir == "/run/cni/tuning"
    assert (s.sysctls, s.mac, s.promisc, s.mtu, s.allmulti, s.txqlen) == \
        ([], "", False, 0, None, None)
    assert not s.touches_link


def test_every_key_decoded_case_insensitively():
    s = settings(DataDir="/tmp/x", Sysctl={"net.core.somaxconn": "512"},
                 MAC="02:00:00:00:00:01", Promisc=True, MTU=1400, txqlen=500,
                 AllMulti=False)
    assert s.data_dir == "/tmp/x"
    assert s.sysctls == [("net.core.somaxconn", "/proc/sys/net/core/somaxconn", "512")]
    assert (s.mac, s.promisc, s.mtu, s.allmulti, s.txqlen) == \
        ("02:00:00:00:00:01", True, 1400, False, 500)
    assert s.touches_link


@pytest.mark.parametrize("extra", [
    {"mtu": "1500"}, {"promisc": "true"}, {"txQLen": 1.5}, {"allmulti": 1},
    {"sysctl": {"net.core.somaxconn": 512}}, {"sysctl": ["net.core.somaxconn"]},
    {"mac": 12}, {"runtimeConfig": {"mac": 1}}, {"args": {"cni": {"mtu": "9000"}}},
])
def test_wrong_types_refused(extra):
    refused(conf, **extra)


@pytest.mark.parametrize("value", [-1, 2**32])
def test_out_of_range_numbers_refused(value):
    assert "mtu" in refused(settings, mtu=value).msg
    assert "txQLen" in refused(settings, txQLen=value).msg


def test_txqlen_zero_is_a_setting():
    assert settings(txQLen=0).txqlen == 0
    assert settings(txQLen=0).touches_link


def test_promisc_false_changes_nothing():
    assert not settings(promisc=False).touches_link


# --- precedence ---------------------------------------------------------------

def test_mac_precedence_config_cniargs_runtimeconfig_args():
    base = {"mac": "02:00:00:00:00:01"}
    assert settings(**base).mac == "02:00:00:00:00:01"
    assert settings(cni_args_mac="02:00:00:00:00:02", **base).mac == "02:00:00:00:00:02"
    assert settings(cni_args_mac="02:00:00:00:00:02",
                    runtimeConfig={"mac": "02:00:00:00:00:03"}, **base).mac == \
        "02:00:00:00:00:03"
    assert settings(cni_args_mac="02:00:00:00:00:02",
                    runtimeConfig={"mac": "02:00:00:00:00:03"},
                    args={"cni": {"mac": "02:00:00:00:00:04"}}, **base).mac == \
        "02:00:00:00:00:04"


def test_empty_values_do_not_override_except_args():
    assert settings(mac="02:00:00:00:00:01", runtimeConfig={"mac": ""}).mac == \
        "02:00:00:00:00:01"
    # an explicit args.cni.mac replaces even when empty, as in the reference
    assert settings(mac="02:00:00:00:00:01", args={"cni": {"mac": ""}}).mac == ""


def test_args_cni_replace_link_settings():
    s = settings(promisc=True, mtu=1400, allmulti=True, txQLen=10,
                 args={"cni": {"promisc": False, "mtu": 1300, "allmulti": False,
                               "txQLen": 20}})
    assert (s.promisc, s.mtu, s.allmulti, s.txqlen) == (False, 1300, False, 20)


def test_args_cni_absent_keys_keep_config():
    s = settings(promisc=True, mtu=1400, args={"cni": {}})
    assert (s.promisc, s.mtu) == (True, 1400)
    assert settings(mtu=1400, args={"other": 1}).mtu == 1400


def test_args_sysctl_merges_and_overrides():
    s = settings(sysctl={"net.core.somaxconn": "512", "net.ipv4.ip_forward": "0"},
                 args={"cni": {"sysctl": {"net.ipv4.ip_forward": "1",
                                          "net.ipv4.conf.IFNAME.rp_filter": "2"}}})
    assert [(k, v) for k, _, v in s.sysctls] == [
        ("net.core.somaxconn", "512"), ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.IFNAME.rp_filter", "2")]


def test_args_sysctl_without_config_sysctl():
    # the reference crashes here (a write to a nil map)
    s = settings(args={"cni": {"sysctl": {"net.core.somaxconn": "100"}}})
    assert s.sysctls == [("net.core.somaxconn", "/proc/sys/net/core/somaxconn", "100")]


# --- sysctl keys --------------------------------------------------------------

@pytest.mark.parametrize("key, path", [
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
    ("net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"),
    ("net.ipv4.conf.IFNAME.rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"),
    ("net.ipv6.conf.IFNAME.IFNAME", "/proc/sys/net/ipv6/conf/eth0.100/IFNAME"),
    ("net//core///somaxconn", "/proc/sys/net/core/somaxconn"),
    ("/net/core/somaxconn", "/proc/sys/net/core/somaxconn"),
    # a dot-dot becomes two slashes before the path is resolved
    ("net/../kernel/x", "/proc/sys/net/kernel/x"),
])
def test_sysctl_path(key, path):
    assert c.sysctl_path(key, "eth0.100") == path


@pytest.mark.parametrize("key", [
    "kernel.hostname", "kernel/hostname", "vm.swappiness", "net", "net.", "net/",
    "../../etc/passwd", "netx.core.somaxconn", "", "fs.file-max",
])
def test_sysctl_outside_net_refused(key):
    err = refused(c.sysctl_path, key, "eth0")
    assert err.msg.startswith("invalid net sysctl key: ")


def test_ifname_cannot_escape_through_placeholder():
    # the skeleton refuses such names; the rule holds on its own as well
    refused(c.sysctl_path, "net.IFNAME.x", "/../../kernel")
    refused(c.check_ifname, "a/b")


def test_same_file_twice_refused():
    err = refused(settings, sysctl={"net.ipv4.ip_forward": "1",
                                    "net/ipv4/ip_forward": "0"})
    assert err.msg == c.DUPLICATE_MSG


def test_forbidden_key_anywhere_refuses_all():
    refused(settings, sysctl={"net.core.somaxconn": "1", "kernel.panic": "1"})


# --- duplicate keys in the JSON text ---------------------------------------------

def raw(text: str) -> bytes:
    return ('{"cniVersion":"1.0.0","name":"n","type":"tuning",' + text + "}").encode()


def test_duplicate_json_keys_refused():
    err = refused(c.check_duplicate_sysctl_keys,
                  raw('"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}'))
    assert err.msg == "duplicated sysctl keys are not allowed"


def test_duplicate_across_case_variants_refused():
    refused(c.check_duplicate_sysctl_keys,
            raw('"sysctl":{"net.core.somaxconn":"1"},"Sysctl":{"net.core.somaxconn":"2"}'))


def test_duplicate_in_args_sysctl_refused():
    refused(c.check_duplicate_sysctl_keys,
            raw('"args":{"cni":{"sysctl":{"net.a":"1","net.a":"2"}}}'))
    # overriding a config key is what args are for
    c.check_duplicate_sysctl_keys(
        raw('"sysctl":{"net.a":"1"},"args":{"cni":{"sysctl":{"net.a":"2"}}}'))


def test_distinct_keys_and_other_objects_pass():
    c.check_duplicate_sysctl_keys(raw('"sysctl":{"a":"1","b":"2"},"x":{"a":1,"a":2}'))
    c.check_duplicate_sysctl_keys(raw('"sysctl":null'))
    c.check_duplicate_sysctl_keys(b"[1]")


# --- allowlist ----------------------------------------------------------------

def test_allowlist_parsing():
    assert c.parse_allowlist("  ^net\\.core\\..*  \n\n\t\n^net\\.ipv4\\.ip_forward$\n") == \
        ["^net\\.core\\..*", "^net\\.ipv4\\.ip_forward$"]


def test_allowlist_match_is_unanchored_on_the_key_as_written():
    allow = ["^net\\.core\\.", "rp_filter"]
    settings(allowlist=allow, sysctl={"net.core.somaxconn": "1",
                                      "net.ipv4.conf.IFNAME.rp_filter": "1"})
    err = refused(settings, allowlist=allow, sysctl={"net/core/somaxconn": "1"})
    assert err.msg == ("Sysctl net/core/somaxconn is not allowed. Only the following "
                       "sysctls are allowed: [^net\\.core\\. rp_filter]")


def test_allowlist_checks_args_sysctls():
    refused(settings, allowlist=["^net\\.core\\."],
            args={"cni": {"sysctl": {"net.ipv4.ip_forward": "1"}}})


def test_empty_allowlist_allows_nothing_but_no_file_allows_all():
    refused(settings, allowlist=[], sysctl={"net.core.somaxconn": "1"})
    settings(allowlist=[])      # no sysctls: nothing to refuse
    settings(allowlist=None, sysctl={"net.core.somaxconn": "1"})


def test_invalid_allowlist_pattern():
    err = refused(settings, allowlist=["net.(core"], sysctl={"net.core.x": "1"})
    assert "allowlist" in err.msg


def test_read_allowlist(tmp_path):
    assert c.read_allowlist(str(tmp_path / "missing.conf")) is None
    f = tmp_path / "allowlist.conf"
    f.write_text("^net\\.core\\.somaxconn$\n")
    assert c.read_allowlist(str(f)) == ["^net\\.core\\.somaxconn$"]


# --- MAC ----------------------------------------------------------------------

@pytest.mark.parametrize("text, mac", [
    ("02:AA:bb:cc:dd:ee", "02:aa:bb:cc:dd:ee"),
    ("02-aa-bb-cc-dd-ee", "02:aa:bb:cc:dd:ee"),
    ("02aa.bbcc.ddee", "02:aa:bb:cc:dd:ee"),
    ("02:00:5e:10:00:00:00:01", "02:00:5e:10:00:00:00:01"),
    ("0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001",
     "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"),
])
def test_parse_mac(text, mac):
    assert c.parse_mac(text) == mac


@pytest.mark.parametrize("text", [
    "02:aa:bb:cc:dd", "02:aa:bb:cc:dd:ee:ff", "02:aa:bb:cc:dd:eg", "02aabbccddee",
    "02:aa-bb:cc:dd:ee", "2:aa:bb:cc:dd:ee:", "02aa.bbcc.dde", "xyz",
])
def test_bad_mac(text):
    err = refused(c.parse_mac, text)
    assert err.msg == f"invalid args {text} for MAC addr: address {text}: invalid MAC address"


def test_bad_mac_from_any_source_refused():
    refused(settings, runtimeConfig={"mac": "nope"})
    refused(settings, cni_args_mac="nope")


def test_data_dir_of():
    assert c.data_dir_of({"dataDir": "/tmp/d"}) == "/tmp/d"
    assert c.data_dir_of({"DATADIR": "/tmp/d"}) == "/tmp/d"
    assert c.data_dir_of({"dataDir": 3}) == "/run/cni/tuning"
    assert c.data_dir_of({}) == "/run/cni/tuning"


def test_settings_are_json_friendly():
    json.dumps(settings(sysctl={"net.core.somaxconn": "1"}).sysctls)


def test_duplicate_sysctl_keys_refused_also_with_invalid_utf8():
    """The duplicate check used to skip configs with invalid UTF-8, which
    Go (and our decoder) accept with U+FFFD."""
    from pycni.errors import CNIError
    from pycni.plugins.tuning.config import check_duplicate_sysctl_keys
    raw = (b'{"name":"n\xff","sysctl":{"net.ipv4.ip_forward":"1",'
           b'"net.ipv4.ip_forward":"0"}}')
    with pytest.raises(CNIError) as err:
        check_duplicate_sysctl_keys(raw)
    assert err.value.code == 7
