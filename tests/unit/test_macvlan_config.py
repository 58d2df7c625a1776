"""macvlan config model and validation (pure, no root)."""

import pytest

from pycni.args import parse_cni_args
from pycni.errors import CNIError
from pycni.plugins.macvlan import config


def conf(**extra) -> dict:
    base = {"cniVersion": "1.0.0", "name": "mv", "type": "macvlan"}
    base.update(extra)
    return base


@pytest.mark.parametrize("mode, kernel", [
    ("", "bridge"), ("bridge", "bridge"), ("private", "private"),
    ("vepa", "vepa"), ("passthru", "passthru")])
def test_modes(mode, kernel):
    assert config.parse_mode(mode) == kernel


@pytest.mark.parametrize("mode", ["source", "Bridge", "bridged", " private"])
def test_unknown_mode_is_a_config_error(mode):
    with pytest.raises(CNIError) as err:
        config.parse_mode(mode)
    assert err.value.code == 7
    assert err.value.msg == f'unknown macvlan mode: "{mode}"'


def test_defaults():
    s = config.load(conf())
    assert (s.master, s.mode, s.mtu, s.mac, s.link_in_container, s.bc_queue_len,
            s.ipam_type) == ("", "bridge", 0, "", False, 0, "")
    assert s.dns.is_empty()


def test_every_key_and_go_style_key_matching():
    s = config.load(conf(Master="eth1", MODE="vepa", mtu=1400, mac="02:00:00:00:00:01",
                         linkincontainer=True, bcqueuelen=5000,
                         ipam={"type": "host-local"},
                         dns={"nameservers": ["10.0.0.53"]}))
    assert (s.master, s.mode, s.mtu, s.mac, s.link_in_container, s.bc_queue_len,
            s.ipam_type) == ("eth1", "vepa", 1400, "02:00:00:00:00:01", True, 5000,
                             "host-local")
    assert s.dns.nameservers == ["10.0.0.53"]


@pytest.mark.parametrize("mtu, master_mtu, ok", [
    (0, 1500, True), (1500, 1500, True), (68, 1500, True), (1501, 1500, False),
    (9000, 1500, False), (-1, 1500, False)])
def test_mtu_bounds(mtu, master_mtu, ok):
    if ok:
        config.check_mtu(mtu, master_mtu)
        return
    with pytest.raises(CNIError) as err:
        config.check_mtu(mtu, master_mtu)
    assert err.value.code == 7
    assert err.value.msg == f"invalid MTU {mtu}, must be [0, master MTU({master_mtu})]"


def test_negative_mtu_refused_before_looking_at_the_master():
    with pytest.raises(CNIError) as err:
        config.load(conf(mtu=-5))
    assert err.value.code == 7


@pytest.mark.parametrize("value", [-1, 1 << 32])
def test_bcqueuelen_must_fit_u32(value):
    with pytest.raises(CNIError) as err:
        config.load(conf(bcqueuelen=value))
    assert err.value.code == 7 and "bcqueuelen" in err.value.msg


@pytest.mark.parametrize("text, normal", [
    ("02:AB:cd:00:00:01", "02:ab:cd:00:00:01"),
    ("02-ab-cd-00-00-01", "02:ab:cd:00:00:01"),
    ("02ab.cd00.0001", "02:ab:cd:00:00:01"),
])
def test_mac_spellings(text, normal):
    assert config.parse_mac(text) == normal


@pytest.mark.parametrize("text", [
    "02:ab:cd:00:00", "02:ab:cd:00:00:0g", "02:ab-cd:00:00:01", "hello",
    "02:ab:cd:00:00:01:02:03", "01:00:5e:00:00:01", "00:00:00:00:00:00"])
def test_bad_macs(text):
    with pytest.raises(CNIError) as err:
        config.parse_mac(text)
    assert err.value.code == 7
    assert err.value.msg.startswith(f"invalid args {text} for MAC addr: ")


def test_mac_precedence():
    full = conf(mac="02:00:00:00:00:01", args={"cni": {"mac": "02:00:00:00:00:03"}},
                runtimeConfig={"mac": "02:00:00:00:00:04"})
    env = parse_cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:02")
    assert config.load(full, env).mac == "02:00:00:00:00:04"
    del full["runtimeConfig"]
    assert config.load(full, env).mac == "02:00:00:00:00:03"
    del full["args"]
    assert config.load(full, env).mac == "02:00:00:00:00:02"
    assert config.load(full, parse_cni_args("")).mac == "02:00:00:00:00:01"


def test_cni_args_unknown_key_needs_ignore_unknown():
    with pytest.raises(CNIError) as err:
        config.load(conf(), parse_cni_args("FOO=bar"))
    assert err.value.code == 4
    s = config.load(conf(), parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=p;FOO=bar"))
    assert s.mac == ""


@pytest.mark.parametrize("bad", [
    {"mtu": "1500"}, {"linkInContainer": "yes"}, {"master": 3},
    {"runtimeConfig": {"mac": 5}}, {"args": {"cni": {"mac": ["x"]}}}])
def test_wrong_types_are_config_errors(bad):
    with pytest.raises(CNIError) as err:
        config.load(conf(**bad))
    assert err.value.code == 7


def test_delete_needs_only_the_ipam_type():
    assert config.load_for_delete(conf(mode="nonsense", mtu="x",
                                       ipam={"type": "host-local"})) == "host-local"
    assert config.load_for_delete(conf()) == ""
    assert config.load_for_delete(conf(IPAM={"Type": "static"})) == "static"


def test_temporary_names_look_like_the_reference_ones():
    import re
    from pycni.plugins.macvlan.plugin import temp_name
    names = {temp_name() for _ in range(20)}
    assert len(names) == 20
    assert all(re.fullmatch(r"veth[0-9a-f]{8}", n) for n in names)
