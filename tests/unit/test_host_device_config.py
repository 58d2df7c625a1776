"""host-device config model, decisions and state records (pure, no root)."""

import os

import pytest

from pycni.errors import CNIError
from pycni.netlink.link import IFF_LOOPBACK, IFF_UP, Link
from pycni.netlink.linkinfo import LinkInfo
from pycni.plugins.host_device import check, config, state
from pycni.result import DNS, IPConfig, Result, Route, parse_result

ENV = {"PYCNI_STATE_DIRS": "/tmp"}


class NoTree:
    """A sysfs.Tree stand-in for configs that never look into sysfs."""

    def device_id_kind(self, _):
        return ""

    def has_dpdk_driver(self, _):
        return False


def conf(**extra) -> dict:
    base = {"cniVersion": "1.0.0", "name": "hd", "type": "host-device"}
    base.update(extra)
    return base


def load(**extra):
    return config.load(conf(**extra), NoTree(), ENV)


def refused(**extra) -> CNIError:
    with pytest.raises(CNIError) as err:
        load(**extra)
    return err.value


def test_defaults_and_every_key():
    s = load(device="eth1")
    assert (s.selector.kind, s.selector.value, s.dpdk, s.pci_address, s.ipam_type,
            s.data_dir) == ("device", "eth1", False, "", "", "/run/cni/host-device")
    s = load(Device="eth2", HWADDR="02:00:00:00:00:01", ipam={"type": "static"},
             dns={"nameservers": ["10.0.0.53"]}, datadir="/tmp/hd")
    assert (s.selector.kind, s.selector.value, s.ipam_type, s.data_dir) == \
        ("device", "eth2", "static", "/tmp/hd")
    assert s.dns.nameservers == ["10.0.0.53"]


def test_precedence_is_the_references():
    assert load(hwaddr="02:00:00:00:00:01", kernelpath="/sys/devices/x/y").selector.kind == \
        "hwaddr"
    assert load(kernelpath="/sys/devices/x/y", pciBusID="0000:00:03.0").selector.kind == \
        "kernelpath"
    assert load(pciBusID="0000:00:03.0").selector.kind == "pci"


def test_nothing_named():
    err = refused()
    assert err.code == 7
    assert err.msg == 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'


@pytest.mark.parametrize("name", ["", "a" * 16, "eth/0", "eth 0", "eth:0", "..", "e\0x"])
def test_bad_device_names(name):
    if not name:
        assert refused(device=name).msg.startswith("specify either")
        return
    err = refused(device=name)
    assert err.code == 7 and "not an interface name" in err.msg


@pytest.mark.parametrize("text, raw", [
    ("02:00:00:00:00:01", bytes([2, 0, 0, 0, 0, 1])),
    ("02-AA-bb-00-00-01", bytes([2, 0xaa, 0xbb, 0, 0, 1])),
    ("02aa.bb00.0001", bytes([2, 0xaa, 0xbb, 0, 0, 1])),
    ("00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", bytes(
        [0, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0x5e, 0x10, 0, 0, 0, 1])),
])
def test_hwaddr_spellings(text, raw):
    assert config.parse_hwaddr(text) == raw


@pytest.mark.parametrize("text", ["02:00:00:00:00", "02:00:00:00:00:0g", "0200.0000.0001.",
                                  "02:00-00:00:00:01", "nonsense", "02:00:00:00:00:001"])
def test_bad_hwaddr(text):
    err = refused(hwaddr=text)
    assert err.code == 7 and err.msg.startswith(f'failed to parse MAC address "{text}"')


def test_kernelpath_and_pci_refusals():
    assert "must be absolute and begin with /sys/devices/" in \
        refused(kernelpath="/etc/passwd").msg
    assert 'must not contain "." or ".."' in refused(kernelpath="/sys/devices/../../tmp").msg
    err = refused(pciBusID="../../../../home/u")
    assert err.code == 7 and err.msg == 'invalid pciBusID "../../../../home/u": not a PCI address'


def test_data_dir_must_be_allowed():
    err = refused(device="eth1", dataDir="/etc/cni")
    assert err.code == 7 and "not below a state directory" in err.msg


def test_wrong_types_are_config_errors():
    assert refused(device=5).code == 7
    assert refused(device="eth1", runtimeConfig={"deviceID": 4}).code == 7


def test_del_reads_only_ipam_and_data_dir():
    assert config.ipam_type_of(conf(ipam={"type": "static"}, device=7)) == "static"
    assert config.ipam_type_of(conf(ipam="x")) == ""
    assert config.data_dir_of(conf(), ENV) == "/run/cni/host-device"
    assert config.data_dir_of(conf(dataDir="/tmp/x"), ENV) == "/tmp/x"
    assert config.data_dir_of(conf(dataDir="/etc"), ENV) == ""       # no state there
    assert config.data_dir_of(conf(dataDir=3), ENV) == ""


def test_legacy_version_without_ipam_is_refused_up_front():
    config.check_result_version("0.3.1", "")
    config.check_result_version("0.2.0", "static")
    with pytest.raises(CNIError, match="cannot convert: no valid IP addresses"):
        config.check_result_version("0.2.0", "")


# --- link decisions ---------------------------------------------------------------

def info(index, name, mac, perm="", flags=IFF_UP, alias="", kind="", parent=""):
    raw = bytes(int(x, 16) for x in mac.split(":"))
    return LinkInfo(link=Link(index=index, name=name, flags=flags, mtu=1500, mac=mac,
                              kind=kind),
                    alias=alias, perm_mac=perm, parent=parent, raw_mac=raw)


def test_pick_by_hwaddr():
    mac = "02:00:00:00:00:01"
    lo = info(1, "lo", "00:00:00:00:00:00", flags=IFF_LOOPBACK)
    nic = info(5, "eth1", mac, perm=mac)
    bridge = info(3, "br0", mac, kind="bridge")   # a bridge takes a port's address
    raw = config.parse_hwaddr(mac)
    assert config.pick_by_hwaddr([lo, bridge, nic], raw) is nic
    assert config.pick_by_hwaddr([lo, bridge], raw) is bridge
    assert config.pick_by_hwaddr([lo], bytes(6)) is None          # never loopback


def test_check_movable():
    sel = config.Selector("device", "lo")
    with pytest.raises(CNIError, match="is the loopback device") as err:
        config.check_movable(info(1, "lo", "00:00:00:00:00:00", flags=IFF_LOOPBACK), sel, "")
    assert err.value.code == 7
    with pytest.raises(CNIError, match="in use by another container"):
        config.check_movable(info(4, "dev7", "02:00:00:00:00:01"), sel, "container a")
    config.check_movable(info(4, "eth1", "02:00:00:00:00:01"), sel, "")


def test_build_result():
    ipam = Result(ips=[IPConfig("10.1.0.5/24", "10.1.0.1")], routes=[Route("0.0.0.0/0")],
                  dns=DNS(nameservers=["10.1.0.53"]))
    r = config.build_result("net1", "02:00:00:00:00:01", "/run/netns/x", ipam, DNS(), "1.0.0")
    assert r.to_dict("1.0.0") == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/x"}],
        "ips": [{"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.1.0.53"]}}
    own = config.build_result("net1", "m", "/x", ipam, DNS(domain="d"), "1.0.0")
    assert own.dns.domain == "d" and not own.dns.nameservers
    dpdk = config.build_result("net1", "", "/x", None, DNS(), "0.4.0").to_dict("0.4.0")
    assert dpdk == {"cniVersion": "0.4.0", "interfaces": [{"name": "net1", "sandbox": "/x"}],
                    "dns": {}}
    with pytest.raises(CNIError, match="IPAM plugin returned missing IP config"):
        config.build_result("net1", "m", "/x", Result(), DNS(), "1.0.0")


# --- state records -------------------------------------------------------------------

def record(**kw):
    base = dict(container_id="c1", ifname="eth0", name="ens3", mtu=9000, alias="uplink",
                mac="02:00:00:00:00:01", perm_mac="", parent="", kind="", index=7, up=True)
    base.update(kw)
    return state.Record(**base)


def test_record_round_trip_and_junk():
    rec = record(perm_mac="02:00:00:00:00:09", parent="0000:00:03.0")
    assert state.from_json(state.to_json(rec)) == rec
    for junk in (b"", b"[]", b"{}", b'{"containerID": 1}', b"\xff",
                 state.to_json(rec).replace(b'"mtu": 9000', b'"mtu": true')):
        assert state.from_json(junk) is None


def test_store(tmp_path):
    store = state.Store(str(tmp_path / "hd"), "net")
    assert store.load("c1", "eth0") is None and store.records() == []
    store.remove("c1", "eth0")                       # nothing there: fine
    rec = record()
    store.save(rec)
    assert store.load("c1", "eth0") == rec
    assert oct(os.stat(tmp_path / "hd").st_mode & 0o777) == "0o700"
    assert oct(os.stat(tmp_path / "hd" / "net").st_mode & 0o777) == "0o700"
    assert oct(os.stat(tmp_path / "hd" / "net" / "c1_eth0").st_mode & 0o777) == "0o600"
    (tmp_path / "hd" / "net" / "junk").write_text("{}")
    (tmp_path / "hd" / "net" / "c9_eth9").write_bytes(state.to_json(rec))   # wrong name
    assert store.records() == [rec]
    assert state.all_records(str(tmp_path / "hd")) == [("net", rec)]
    store.remove("c1", "eth0")
    assert store.load("c1", "eth0") is None


def test_store_never_follows_a_planted_symlink(tmp_path):
    (tmp_path / "hd" / "net").mkdir(parents=True, mode=0o700)
    target = tmp_path / "target"
    target.write_text("keep")
    os.symlink(target, tmp_path / "hd" / "net" / "c1_eth0")
    store = state.Store(str(tmp_path / "hd"), "net")
    with pytest.raises(OSError):
        store.load("c1", "eth0")
    store.save(record())                             # replaces the link, never writes through
    assert target.read_text() == "keep"
    assert store.load("c1", "eth0") == record()


def test_find_returned_and_claims():
    rec = record(mac="02:00:00:00:00:01")
    back = info(9, "dev7", "02:00:00:00:00:01", alias="ens3")
    assert state.find_returned(rec, [back]) is back
    assert state.claims(rec, back)
    other_mac = info(9, "dev7", "02:00:00:00:00:02", alias="ens3")
    no_alias = info(9, "ens3", "02:00:00:00:00:01")
    assert state.find_returned(rec, [other_mac, no_alias]) is None
    assert not state.claims(rec, no_alias)            # brought home without our DEL
    phys = record(perm_mac="0a:00:00:00:00:01")
    renamed = info(9, "dev3", "02:99:00:00:00:01", perm="0a:00:00:00:00:01")
    assert state.find_returned(phys, [renamed]) is renamed   # the container changed the MAC
    fake = info(9, "dev3", "02:00:00:00:00:01", alias="ens3")
    assert state.find_returned(phys, [fake]) is None          # no permanent address: not it
    assert state.find_returned(record(kind="veth"), [back]) is None


# --- CHECK decisions -------------------------------------------------------------------

def prev(sandbox="/run/netns/c1"):
    return parse_result({"cniVersion": "1.0.0",
                         "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01",
                                         "sandbox": sandbox}],
                         "ips": [{"address": "10.1.0.5/24", "interface": 0}]}, "1.0.0")


def test_check_decisions():
    p = prev()
    intf = check.container_interface(p, "eth0", "/run/netns/c1")
    with pytest.raises(CNIError, match="Sandbox in prevResult"):
        check.container_interface(p, "eth0", "/run/netns/other")
    link = info(7, "eth0", "02:00:00:00:00:01", alias="ens3")
    check.check_link(intf, link, record())
    check.check_link(intf, link, None)
    with pytest.raises(CNIError, match="eth0 not found"):
        check.check_link(intf, None, None)
    with pytest.raises(CNIError, match="doesn't match container Mac"):
        check.check_link(intf, info(7, "eth0", "02:00:00:00:00:02"), None)
    with pytest.raises(CNIError, match="not the link host-device moved in"):
        check.check_link(intf, link, record(index=8))
    with pytest.raises(CNIError, match="alias is not set"):
        check.check_link(intf, info(7, "eth0", "02:00:00:00:00:01"), None)
    assert [ip.address for ip in check.own_ips(p, intf)] == ["10.1.0.5/24"]
    with pytest.raises(CNIError) as err:
        check.require_prev_result(None)
    assert err.value.code == 7
