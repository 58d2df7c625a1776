"""pycni.mac: Go's net.ParseMAC grammar (cases from its documented
spellings and its parser's rules)."""

import pytest

from pycni import mac

GOOD = {
    "00:00:5e:00:53:01": "00:00:5e:00:53:01",
    "02:00:5E:10:00:00": "02:00:5e:10:00:00",
    "00-00-5e-00-53-01": "00:00:5e:00:53:01",
    "0000.5e00.5301": "00:00:5e:00:53:01",
    "02:00:5e:10:00:00:00:01": "02:00:5e:10:00:00:00:01",
    "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01":
        "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
    "0200.5e10.0000.0001": "02:00:5e:10:00:00:00:01",
}
BAD = ["", "01.02.03.04.05.06", "01:02:03:04:05:06:", "x1:02:03:04:05:06",
       "01002:03:04:05:06", "01:02003:04:05:06", "01:02:03:04:05:06:07",
       "01-02:03:04:05:06", "0123.4567.89AB.", "0123.4567.89ab.cdef.0123.4567",
       "01:02:03:04:05", "0102.0304.05", "01:02:03:04:05:0g", " 01:02:03:04:05:06",
       "01:02:03:04:05:06 ", "0102.0304.0506.0708.090a"]


@pytest.mark.parametrize("spelling", sorted(GOOD))
def test_accepts_go_spellings(spelling):
    assert mac.text(mac.parse(spelling)) == GOOD[spelling]


@pytest.mark.parametrize("spelling", BAD)
def test_refuses_what_go_refuses(spelling):
    assert mac.parse(spelling) is None


def test_unicast_problem():
    assert mac.unicast_problem(bytes.fromhex("020000000001")) is None
    assert "multicast" in mac.unicast_problem(bytes.fromhex("010000000001"))
    assert "all-zero" in mac.unicast_problem(bytes(6))


# --- the MAC of a new link: CNI_ARGS, config strings (pycni.args), the choice ----

def test_from_cni_args():
    from pycni.args import mac_from_cni_args, parse_cni_args
    from pycni.errors import CNIError, INVALID_ENVIRONMENT
    assert mac_from_cni_args(None) == ""
    assert mac_from_cni_args(parse_cni_args("")) == ""
    assert mac_from_cni_args(parse_cni_args("MAC=02:00:00:00:00:01")) == "02:00:00:00:00:01"
    assert mac_from_cni_args(parse_cni_args("IgnoreUnknown=1;X=1")) == ""
    with pytest.raises(CNIError) as err:
        mac_from_cni_args(parse_cni_args("MAC=02:00:00:00:00:01;X=1"))
    assert (err.value.code, err.value.msg) == (INVALID_ENVIRONMENT, 'unknown CNI_ARGS key "X"')


def test_config_string():
    from pycni.args import config_string
    from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
    assert config_string({"cni": {"MAC": "x"}}, "args.cni.mac", "cni", "mac") == "x"
    for absent in ({}, {"cni": None}, {"cni": "text"}, {"cni": {}}, None):
        assert config_string(absent, "args.cni.mac", "cni", "mac") == ""
    with pytest.raises(CNIError) as err:
        config_string({"mac": 1}, "runtimeConfig.mac", "mac")
    assert (err.value.code, err.value.msg) == (
        INVALID_NETWORK_CONFIG, "invalid value for runtimeConfig.mac: expected a string")


def test_choose_first_set_normalised():
    from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
    assert mac.choose("", "", "") == ""
    assert mac.choose("", "02-00-00-00-00-0A", "02:00:00:00:00:01") == "02:00:00:00:00:0a"
    with pytest.raises(CNIError) as err:     # only the chosen one is parsed
        mac.choose("01:00:00:00:00:01", "nonsense")
    assert err.value.code == INVALID_NETWORK_CONFIG
    assert err.value.msg == ("invalid args 01:00:00:00:00:01 for MAC addr: "
                             "a multicast address cannot be an interface address")
