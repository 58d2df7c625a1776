"""tap config model, validation and TUNSETIFF flag decisions (pure, no root)."""

import pytest

from pycni import tuntap
from pycni.args import parse_cni_args
from pycni.errors import CNIError
from pycni.plugins.tap import config


def conf(**extra) -> dict:
    base = {"cniVersion": "1.0.0", "name": "tapnet", "type": "tap"}
    base.update(extra)
    return base


def refusal(config_dict, cni_args=None) -> CNIError:
    with pytest.raises(CNIError) as err:
        config.load(config_dict, cni_args)
    return err.value


def test_defaults():
    s = config.load(conf())
    assert (s.mac, s.mtu, s.multi_queue, s.owner, s.group, s.bridge, s.ipam_type) == \
        ("", 0, False, None, None, "", "")
    assert s.dns.is_empty()


def test_every_key_and_go_style_key_matching():
    s = config.load(conf(MAC="02-00-00-00-00-01", Mtu=1400, multiqueue=True, OWNER=1000,
                         group=3000000000, Bridge="br0", ipam={"type": "host-local"},
                         dns={"nameservers": ["10.0.0.53"]}))
    assert (s.mac, s.mtu, s.multi_queue, s.owner, s.group, s.bridge, s.ipam_type) == \
        ("02:00:00:00:00:01", 1400, True, 1000, 3000000000, "br0", "host-local")
    assert s.dns.nameservers == ["10.0.0.53"]


def test_last_matching_key_wins_as_in_go():
    assert config.load({"cniVersion": "1.0.0", "name": "n", "type": "tap",
                        "mtu": 1400, "MTU": 1300}).mtu == 1300


@pytest.mark.parametrize("mtu, ok", [(0, True), (68, True), (1500, True), (65521, True),
                                     (67, False), (65522, False), (70000, False),
                                     (-1, False)])
def test_mtu_bounds(mtu, ok):
    if ok:
        assert config.load(conf(mtu=mtu)).mtu == mtu
        return
    err = refusal(conf(mtu=mtu))
    assert err.code == 7
    assert err.msg.startswith(f"invalid MTU {mtu}, must")


@pytest.mark.parametrize("what", ["owner", "group"])
@pytest.mark.parametrize("value", [-1, 4294967296, 1 << 40])
def test_owner_and_group_must_be_uint32(what, value):
    err = refusal(conf(**{what: value}))
    assert err.code == 7
    assert err.msg == f"invalid value for config.{what}: expected a uint32"


@pytest.mark.parametrize("what", ["owner", "group"])
@pytest.mark.parametrize("value", ["1000", True, 1.5, [1]])
def test_owner_and_group_wrong_json_types(what, value):
    assert refusal(conf(**{what: value})).code == 7


def test_uint32_minus_one_means_none_and_null_is_none():
    s = config.load(conf(owner=4294967295, group=None))
    assert (s.owner, s.group) == (None, None)
    assert config.load(conf(owner=0, group=0)).owner == 0   # root is an id


def test_wrong_types_are_config_errors():
    for bad in ({"multiQueue": "yes"}, {"mtu": "1400"}, {"mac": 5}, {"bridge": []},
                {"selinuxContext": 1}):
        assert refusal(conf(**bad)).code == 7, bad


@pytest.mark.parametrize("key", ["selinuxContext", "selinuxcontext", "SELINUXCONTEXT"])
def test_selinux_context_is_an_unsupported_field(key):
    err = refusal(conf(**{key: "system_u:system_r:container_t:s0"}))
    assert err.code == 2
    assert "selinuxContext" in err.msg and "system_u:system_r:container_t:s0" in err.msg


def test_empty_selinux_context_is_no_request():
    assert config.load(conf(selinuxContext="")).mac == ""


# --- MAC ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, norm", [
    ("02:AA:bb:cc:dd:ee", "02:aa:bb:cc:dd:ee"), ("02-aa-bb-cc-dd-ee", "02:aa:bb:cc:dd:ee"),
    ("02aa.bbcc.ddee", "02:aa:bb:cc:dd:ee")])
def test_mac_spellings(text, norm):
    assert config.parse_mac(text) == norm


@pytest.mark.parametrize("text, reason", [
    ("zz", "invalid MAC address"), ("02:aa:bb:cc:dd", "invalid MAC address"),
    ("02:aa:bb:cc:dd:eg", "invalid MAC address"),
    ("02:00:5e:10:00:00:00:01", "invalid MAC address"),     # EUI-64: no Ethernet
    ("01:00:5e:00:00:01", "multicast"), ("00:00:00:00:00:00", "all-zero")])
def test_bad_macs(text, reason):
    err = refusal(conf(mac=text))
    assert err.code == 7
    assert err.msg.startswith(f"invalid args {text} for MAC addr: ")
    assert reason in err.msg


def test_mac_precedence_runtime_config_then_cni_args_then_mac():
    args = parse_cni_args("MAC=02:00:00:00:00:02")
    full = conf(mac="02:00:00:00:00:03", runtimeConfig={"mac": "02:00:00:00:00:01"})
    assert config.load(full, args).mac == "02:00:00:00:00:01"
    del full["runtimeConfig"]
    assert config.load(full, args).mac == "02:00:00:00:00:02"
    assert config.load(full, parse_cni_args("")).mac == "02:00:00:00:00:03"


def test_args_cni_mac_is_not_read_as_in_the_reference():
    s = config.load(conf(args={"cni": {"mac": "02:00:00:00:00:07"}}))
    assert s.mac == ""


def test_runtime_config_mac_must_be_a_string():
    assert refusal(conf(runtimeConfig={"mac": 5})).code == 7


def test_unknown_cni_args_need_ignore_unknown():
    err = refusal(conf(), parse_cni_args("FOO=1"))
    assert err.code == 4 and 'unknown CNI_ARGS key "FOO"' in err.msg
    s = config.load(conf(), parse_cni_args("IgnoreUnknown=1;FOO=1;MAC=02:00:00:00:00:05"))
    assert s.mac == "02:00:00:00:00:05"
    assert config.load(conf(), parse_cni_args("K8S_POD_NAME=p")).mac == ""


# --- bridge --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a" * 16, "br 0", "br/0", "br\n0", "br\x000"])
def test_bad_bridge_names(name):
    err = refusal(conf(bridge=name))
    assert err.code == 7 and err.msg.startswith("invalid bridge name")


def test_bridge_name_of_15_bytes():
    assert config.load(conf(bridge="b" * 15)).bridge == "b" * 15


# --- DEL reads only the IPAM type ------------------------------------------------------

def test_load_for_delete_ignores_everything_else():
    broken = conf(mtu="x", mac=5, selinuxContext="s", owner=-7,
                  IPAM={"TYPE": "host-local"})
    assert config.load_for_delete(broken) == "host-local"
    assert config.load_for_delete(conf(ipam="nonsense")) == ""
    assert config.load_for_delete(conf()) == ""


# --- TUNSETIFF flags, as the reference's two creation paths set them -------------------

T = tuntap


@pytest.mark.parametrize("owner, group, mq, flags", [
    (None, None, False, T.IFF_TAP | T.IFF_NO_PI),                          # ip tuntap
    (None, None, True, T.IFF_TAP | T.IFF_NO_PI | T.IFF_MULTI_QUEUE),
    (1000, None, False, T.IFF_TAP | T.IFF_NO_PI),
    (None, 1000, True, T.IFF_TAP | T.IFF_NO_PI | T.IFF_MULTI_QUEUE),
    (1000, 1000, False, T.IFF_TAP | T.IFF_VNET_HDR),                       # netlink
    (0, 0, True, T.IFF_TAP | T.IFF_VNET_HDR | T.IFF_MULTI_QUEUE | T.IFF_NO_PI),
])
def test_tun_flags(owner, group, mq, flags):
    s = config.load(conf(owner=owner, group=group, multiQueue=mq))
    assert config.tun_flags(s) == flags
    assert not config.tun_flags(s) & T.IFF_TUN


# --- lib/tuntap's pure parts -----------------------------------------------------------

def test_ioctl_numbers_match_linux_headers():
    import os
    if os.uname().machine not in ("x86_64", "aarch64", "i686", "armv7l", "riscv64", "s390x"):
        pytest.skip("ioctl encoding differs on this architecture")
    assert (T.TUNSETIFF, T.TUNSETPERSIST, T.TUNSETOWNER, T.TUNSETGROUP) == \
        (0x400454CA, 0x400454CB, 0x400454CC, 0x400454CE)


def test_ifreq_layout():
    buf = T.ifreq("eth0", T.IFF_TAP | T.IFF_TUN_EXCL)
    assert len(buf) == 40
    assert bytes(buf[:16]) == b"eth0" + b"\0" * 12
    assert int.from_bytes(buf[16:18], "little" if __import__("sys").byteorder == "little"
                          else "big") == T.IFF_TAP | T.IFF_TUN_EXCL
    assert T.ifreq_name(buf) == "eth0"


@pytest.mark.parametrize("name", ["", "x" * 16, "a\0b"])
def test_ifreq_refuses_bad_names(name):
    with pytest.raises(ValueError):
        T.ifreq(name, T.IFF_TAP)


def test_ids_are_passed_as_c_ints():
    assert T._as_c_int(1000) == 1000
    assert T._as_c_int(0xFFFFFFFE) == -2
    with pytest.raises(ValueError):
        T._as_c_int(1 << 32)


def test_info_of_tun_attributes():
    import struct
    data = {T.IFLA_TUN_TYPE: b"\x02", T.IFLA_TUN_PI: b"\x00", T.IFLA_TUN_VNET_HDR: b"\x01",
            T.IFLA_TUN_PERSIST: b"\x01", T.IFLA_TUN_MULTI_QUEUE: b"\x00",
            T.IFLA_TUN_OWNER: struct.pack("=I", 1000)}
    assert T.info(data) == {"type": "tap", "pi": False, "vnet_hdr": True, "persist": True,
                            "multi_queue": False, "owner": 1000, "group": None}
    assert T.info({})["type"] == ""
