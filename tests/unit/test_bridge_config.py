"""bridge config model and validation (pure)."""

import pytest

from pycni.args import parse_cni_args
from pycni.errors import CNIError
from pycni.plugins.bridge import config

BASE = {"cniVersion": "1.0.0", "name": "net", "type": "bridge"}


def load(cni_args: str = "", **keys) -> config.Settings:
    return config.load({**BASE, **keys}, parse_cni_args(cni_args))


def error_of(fn, *args, **kw) -> CNIError:
    with pytest.raises(CNIError) as info:
        fn(*args, **kw)
    return info.value


def test_defaults():
    s = load()
    c = s.conf
    assert c.bridge == "cni0"
    assert not (c.is_gateway or c.is_default_gateway or c.force_address or c.ip_masq)
    assert c.ip_masq_backend is None and c.mtu == 0 and c.vlan == 0
    assert c.vlan_trunk is None and s.vlans == [] and s.mac == ""
    assert not (c.hairpin_mode or c.promisc_mode or c.preserve_default_vlan or c.macspoofchk
                or c.enabledad or c.disable_container_interface or c.port_isolation)
    assert not s.layer3 and not s.is_gateway
    config.validate_add(s)


def test_every_key_decodes():
    s = load(bridge="br9", isGateway=True, isDefaultGateway=True, forceAddress=True,
             ipMasq=True, ipMasqBackend="nftables", mtu=1400, hairpinMode=True,
             promiscMode=False, vlan=0, vlanTrunk=[{"id": 5}], preserveDefaultVlan=True,
             macspoofchk=True, enabledad=True, disableContainerInterface=True,
             portIsolation=True, ipam={"type": "host-local"})
    c = s.conf
    assert (c.bridge, c.is_gateway, c.is_default_gateway, c.force_address) == \
        ("br9", True, True, True)
    assert (c.ip_masq, c.ip_masq_backend, c.mtu, c.hairpin_mode) == (True, "nftables", 1400, True)
    assert s.vlans == [5] and c.preserve_default_vlan and c.macspoofchk and c.enabledad
    assert c.disable_container_interface and c.port_isolation and s.layer3


def test_keys_are_case_insensitive_like_go():
    s = load(ISGATEWAY=True, HairpinMode=True)
    assert s.conf.is_gateway and s.conf.hairpin_mode


def test_null_bridge_keeps_default():
    assert load(bridge=None).conf.bridge == "cni0"


@pytest.mark.parametrize("name", ["", "a" * 16, "br/x", "br x", "..", "a:b"])
def test_bad_bridge_names(name):
    assert error_of(load, bridge=name).code == 7


def test_is_default_gateway_implies_gateway():
    assert load(isDefaultGateway=True).is_gateway


def test_wrong_types_are_decode_errors():
    err = error_of(load, mtu="1500")
    assert err.code == 7 and "mtu" in err.msg
    assert error_of(load, isGateway="yes").code == 7


@pytest.mark.parametrize("vlan", [-1, 4095])
def test_vlan_range(vlan):
    err = error_of(load, vlan=vlan)
    assert err.msg == f"invalid VLAN ID {vlan} (must be between 0 and 4094)"


@pytest.fixture
def warnings():
    from pycni import log
    del log._warnings[:]
    yield log._warnings
    del log._warnings[:]


@pytest.mark.parametrize("mtu", [-1, -9000])
def test_negative_mtu_is_the_kernels_default_with_a_warning(warnings, mtu):
    """The reference accepts it and its netlink library sets no MTU (as
    for 0): the bridge and veth get the kernel's default."""
    s = load(mtu=mtu, ipam={"type": "host-local"})
    assert s.conf.mtu == 0
    config.validate_add(s)
    assert len(warnings) == 1 and f"mtu {mtu} is negative" in warnings[0]


def test_mtu_above_65535_is_refused_on_add():
    """The kernel refuses it, so the reference's ADD fails: ours first."""
    config.validate_add(load(mtu=65535))
    s = load(mtu=65536)                 # DEL, CHECK, GC accept it
    assert error_of(config.validate_add, s).code == 7


def test_unknown_ipmasq_backend_is_refused_only_where_it_would_be_used(warnings):
    """The reference only reads ipMasqBackend when ADD sets up ipMasq
    (and fails there): every other command and config accepts it."""
    for keys in ({}, {"ipMasq": True}, {"ipMasq": False, "ipam": {"type": "host-local"}}):
        config.validate_add(load(ipMasqBackend="pf", **keys))
    assert any('unknown ipMasqBackend "pf"' in w for w in warnings)
    with_masq = load(ipMasq=True, ipMasqBackend="pf", ipam={"type": "host-local"})
    err = error_of(config.validate_add, with_masq)
    assert err.code == 7 and err.msg == 'unknown ipmasq backend "pf"'


@pytest.mark.parametrize("trunk,vlans", [
    ([{"id": 10}, {"id": 3}, {"id": 10}], [3, 10]),
    ([{"minID": 5, "maxID": 7}, {"id": 6}, {"id": 1}], [1, 5, 6, 7]),
    ([{"minID": 4094, "maxID": 4094}], [4094]),
    ([], []),
])
def test_trunk_collect(trunk, vlans):
    assert load(vlanTrunk=trunk).vlans == vlans


@pytest.mark.parametrize("trunk,msg", [
    ([{"minID": 0, "maxID": 3}], "incorrect trunk minID parameter"),
    ([{"minID": 1, "maxID": 4095}], "incorrect trunk maxID parameter"),
    ([{"minID": 9, "maxID": 3}], "minID is greater than maxID in trunk parameter"),
    ([{"maxID": 3}], "minID and maxID should be configured simultaneously, minID is missing"),
    ([{"minID": 3}], "minID and maxID should be configured simultaneously, maxID is missing"),
    ([{"id": 0}], "incorrect trunk id parameter"),
    ([{"id": 4095}], "incorrect trunk id parameter"),
])
def test_trunk_errors(trunk, msg):
    err = error_of(load, vlanTrunk=trunk)
    assert err.code == 7 and err.msg == msg


def test_mac_precedence_runtime_config_args_cni_args():
    rc, args, env = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
    assert load(f"MAC={env}").mac == env
    assert load(f"MAC={env}", args={"cni": {"mac": args}}).mac == args
    assert load(f"MAC={env}", args={"cni": {"mac": args}},
                runtimeConfig={"mac": rc}).mac == rc


def test_mac_is_normalised():
    assert load(runtimeConfig={"mac": "02-AB-CD-EF-00-01"}).mac == "02:ab:cd:ef:00:01"


@pytest.mark.parametrize("mac", ["zz:00:00:00:00:01", "02:00:00:00:01", "01:00:5e:00:00:01",
                                 "00:00:00:00:00:00"])
def test_bad_mac(mac):
    """Refused by ADD (the reference fails setting it); DEL, CHECK, GC
    and STATUS, which never read it, accept the config as the reference."""
    s = load(runtimeConfig={"mac": mac})
    assert s.mac == ""
    err = error_of(config.validate_add, s)
    assert err.code == 7 and mac in err.msg and "runtimeConfig.mac" in err.msg
    assert error_of(config.container_mac, {"runtimeConfig": {"mac": mac}}, None).code == 7


def test_mac_keys_the_reference_refuses_everywhere():
    assert error_of(load, "FOO=1").code == 4               # an unknown CNI_ARGS key
    assert error_of(load, runtimeConfig={"mac": 5}).code == 7   # not a string


def test_unknown_cni_args_key_rejected_unless_ignore_unknown():
    assert error_of(load, "FOO=1").code == 4
    assert load("IgnoreUnknown=1;FOO=1;MAC=02:00:00:00:00:09").mac == "02:00:00:00:00:09"


def test_add_rejects_ipam_with_disabled_container_interface():
    s = load(disableContainerInterface=True, ipam={"type": "host-local"})
    err = error_of(config.validate_add, s)
    assert err.msg == "cannot use IPAM when DisableContainerInterface flag is set"
    config.validate_add(load(disableContainerInterface=True))   # L2 only is fine


def test_add_rejects_hairpin_with_promisc():
    err = error_of(config.validate_add, load(hairpinMode=True, promiscMode=True))
    assert err.msg == "cannot set hairpin mode and promiscuous mode at the same time"


@pytest.mark.parametrize("keys,name", [
    ({"vlan": 10}, "vlan"),
    ({"vlanTrunk": [{"id": 3}]}, "vlanTrunk"),
])
def test_unimplemented_keys_are_code_2_naming_the_key(keys, name):
    err = error_of(config.validate_add, load(**keys))
    assert err.code == 2 and f'"{name}"' in err.msg and err.details.startswith(name + "=")


def test_unimplemented_keys_at_their_zero_value_are_fine():
    config.validate_add(load(vlan=0, vlanTrunk=[], macspoofchk=False, ipMasq=True,
                             preserveDefaultVlan=True))
