"""tuning: the plugin's pure parts (request -> settings, CHECK verdicts,
what gets saved, the result's MAC), without root."""

import json

import pytest

from pycni import skel
from pycni.netlink import link as rtlink
from pycni.errors import CNIError
from pycni.plugins.tuning import config as c
from pycni.plugins.tuning import plugin as p
from pycni.result import Interface, Result

ENV = {"CNI_CONTAINERID": "cid", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x",
       "CNI_PATH": "/opt/cni/bin"}


def request(config: dict | str, command="ADD", **env) -> skel.Request:
    text = config if isinstance(config, str) else json.dumps(config)
    req = skel.Request(command, {**ENV, **env}, text.encode(), json.loads(text))
    req.cni_version = "1.0.0"
    return req


def base(**keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "n", "type": "tuning", **keys}


def test_settings_for_request():
    s = p.settings_for(request(base(mtu=1400, sysctl={"net.core.somaxconn": "9"}),
                               CNI_ARGS="IgnoreUnknown=1;MAC=02:00:00:00:00:07"), None)
    assert (s.mtu, s.mac) == (1400, "02:00:00:00:00:07")
    assert s.sysctls == [("net.core.somaxconn", "/proc/sys/net/core/somaxconn", "9")]


def test_unknown_cni_args_refused_unless_ignored():
    with pytest.raises(CNIError) as info:
        p.settings_for(request(base(), CNI_ARGS="FOO=bar"), None)
    assert info.value.code == 4
    p.settings_for(request(base(), CNI_ARGS="K8S_POD_NAME=x;MAC=02:00:00:00:00:07"), None)


def test_duplicate_keys_found_in_raw_stdin():
    text = json.dumps(base())[:-1] + ', "sysctl": {"net.a": "1", "net.a": "2"}}'
    with pytest.raises(CNIError) as info:
        p.settings_for(request(text), None)
    assert info.value.msg == "duplicated sysctl keys are not allowed"


def test_prev_result_required():
    with pytest.raises(CNIError) as info:
        p.required_prev_result(request(base()))
    assert (info.value.code, info.value.msg) == (7, "Required prevResult missing")
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]}
    assert p.required_prev_result(request(base(prevResult=prev))).interfaces[0].name == "eth0"


def test_result_mac_updated_for_the_interface_only():
    result = Result(interfaces=[Interface("br0", "02:00:00:00:00:01"),
                                Interface("veth1", "02:00:00:00:00:02"),
                                Interface("eth0", "02:00:00:00:00:03", "/run/netns/x")])
    p.update_result_mac(result, "eth0", "02:00:00:00:00:09")
    assert [i.mac for i in result.interfaces] == \
        ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:09"]


def link(flags=0, mtu=1500, mac="02:00:00:00:00:01") -> rtlink.Link:
    return rtlink.Link(index=3, name="eth0", flags=flags, mtu=mtu, mac=mac)


def settings(**keys) -> c.Settings:
    return c.Settings(data_dir="/d", **keys)


def test_original_state_records_only_what_changes():
    now = link(flags=rtlink.IFF_PROMISC | rtlink.IFF_ALLMULTI, mtu=9000)
    assert p.original_state(now, 1000, settings(mtu=1400)) == \
        p.backup.LinkState(mtu=9000)
    assert p.original_state(now, 1000, settings(mac="02:00:00:00:00:09", promisc=True,
                                                allmulti=False, txqlen=5)) == \
        p.backup.LinkState(mac="02:00:00:00:00:01", promisc=True, allmulti=True, txqlen=1000)


def test_check_link_passes():
    now = link(flags=rtlink.IFF_PROMISC | rtlink.IFF_ALLMULTI, mtu=1400)
    assert p.check_link(now, 7, settings(mac="02:00:00:00:00:01", promisc=True, mtu=1400,
                                         allmulti=True, txqlen=7), "eth0") == ""


@pytest.mark.parametrize("keys, flags, message", [
    ({"mac": "02:00:00:00:00:09"}, 0,
     "Error: Tuning configured Ethernet of eth0 is 02:00:00:00:00:09, "
     "current value is 02:00:00:00:00:01"),
    ({"promisc": True}, 0,
     "Error: Tuning link eth0 configured promisc is true, current value is 0"),
    ({}, rtlink.IFF_PROMISC,
     "Error: Tuning link eth0 configured promisc is false, current value is 1"),
    ({"mtu": 1400}, 0, "Error: Tuning configured MTU of eth0 is 1400, current value is 1500"),
    ({"allmulti": False}, rtlink.IFF_ALLMULTI,
     "Error: Tuning configured all-multicast mode of eth0 is false, current value is true"),
    ({"txqlen": 0}, 0,
     "Error: Tuning configured Transmit Queue Length of eth0 is 0, current value is 7"),
])
def test_check_link_mismatch(keys, flags, message):
    assert p.check_link(link(flags=flags), 7, settings(**keys), "eth0") == message
