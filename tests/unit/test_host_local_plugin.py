"""host-local commands end to end in-process (skel.run) on a temp dataDir:
results per spec version, DEL/CHECK/GC/STATUS, errors that write nothing."""

import io
import json
import os

import pytest

from pycni import skel
from pycni.ipam.host_local.plugin import HostLocalPlugin


@pytest.fixture
def net(tmp_path):
    def make(ipam=None, version="1.1.0", **top):
        raw = {"cniVersion": version, "name": "net", "type": "bridge",
               "ipam": {"type": "host-local", "dataDir": str(tmp_path),
                        **(ipam if ipam is not None else {"subnet": "10.0.0.0/29"})}}
        raw.update(top)
        return raw
    make.dir = tmp_path / "net"
    return make


def call(command, conf, cid="c1", ifname="eth0", args=""):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/none",
           "CNI_IFNAME": ifname, "CNI_PATH": "/nonexistent", "CNI_ARGS": args,
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"]}   # tmp_path allowed
    out = io.StringIO()
    code = skel.run(HostLocalPlugin(), env, io.BytesIO(json.dumps(conf).encode()), out)
    text = out.getvalue()
    return code, (json.loads(text) if text else None)


def files(net):
    return sorted(os.listdir(net.dir)) if net.dir.exists() else []


def test_add_result_1_0_0(net, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.53\nsearch example\n")
    conf = net({"subnet": "10.0.0.0/29", "resolvConf": str(resolv),
                "routes": [{"dst": "0.0.0.0/0"}]}, version="1.0.0")
    code, out = call("ADD", conf)
    assert code == 0
    assert out == {"cniVersion": "1.0.0",
                   "ips": [{"address": "10.0.0.2/29", "gateway": "10.0.0.1"}],
                   "routes": [{"dst": "0.0.0.0/0"}],
                   "dns": {"nameservers": ["10.0.0.53"], "search": ["example"]}}


def test_add_result_0_4_0_and_0_2_0(net):
    code, out = call("ADD", net(version="0.4.0"))
    assert out["ips"] == [{"version": "4", "address": "10.0.0.2/29", "gateway": "10.0.0.1"}]
    code, out = call("ADD", net({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]]},
                                version="0.2.0"), cid="c2")
    assert code == 0
    assert out["ip4"] == {"ip": "10.1.0.2/24", "gateway": "10.1.0.1"}
    assert out["ip6"] == {"ip": "fd00::2/64", "gateway": "fd00::1"}


def test_add_del_check_cycle(net):
    conf = net()
    assert call("ADD", conf)[0] == 0
    assert call("CHECK", conf)[0] == 0
    code, err = call("CHECK", conf, cid="other")
    assert code == 1 and err["msg"] == "host-local: Failed to find address added by container other"
    assert call("DEL", conf)[0] == 0
    assert call("DEL", conf)[0] == 0            # idempotent
    assert files(net) == ["last_reserved_ip.0", "lock"]
    assert call("CHECK", conf)[0] == 1


def test_full_range_is_a_clear_error_and_writes_nothing(net):
    conf = net()
    for i in range(5):
        assert call("ADD", conf, cid=f"c{i}")[0] == 0
    before = {n: (net.dir / n).read_bytes() for n in files(net)}
    code, err = call("ADD", conf, cid="late")
    assert code == 1
    assert err["code"] == 999
    assert err["msg"] == ("failed to allocate for range 0: no IP addresses available "
                          "in range set: 10.0.0.1-10.0.0.6")
    assert {n: (net.dir / n).read_bytes() for n in files(net)} == before


def test_bad_config_writes_nothing(net):
    code, err = call("ADD", net({"subnet": "10.0.0.0/31"}))
    assert code == 1 and err["code"] == 7
    assert not net.dir.exists()


def test_requested_ip_taken(net):
    conf = net(runtimeConfig={"ips": ["10.0.0.4"]})
    assert call("ADD", conf)[0] == 0
    code, err = call("ADD", conf, cid="c2")
    assert code == 1
    assert err["msg"] == ("failed to allocate for range 0: requested IP address 10.0.0.4 "
                          "is not available in range set 10.0.0.1-10.0.0.6")
    code, out = call("ADD", net(), cid="c3", args="IP=10.0.0.5")
    assert out["ips"][0]["address"] == "10.0.0.5/29"


def gc(conf, attachments):
    conf = dict(conf, **{"cni.dev/valid-attachments": attachments})
    return call("GC", conf, cid="")


def test_gc(net, tmp_path):
    conf = net()
    for cid, ifname in (("a", "eth0"), ("a", "eth1"), ("b", "eth0")):
        assert call("ADD", conf, cid=cid, ifname=ifname)[0] == 0
    # .2 a/eth0, .3 a/eth1, .4 b/eth0; two legacy files from an old version
    (net.dir / "10.0.0.6").write_text("legacy-keep")
    (net.dir / "10.0.0.5").write_text("legacy-gone")
    other = tmp_path / "other"
    other.mkdir()
    (other / "10.0.0.2").write_text("x\r\neth0")
    code, _ = gc(conf, [{"containerID": "a", "ifname": "eth0"},
                        {"containerID": "legacy-keep", "ifname": "eth0"}])
    assert code == 0
    assert files(net) == ["10.0.0.2", "10.0.0.6", "last_reserved_ip.0", "lock"]
    assert (other / "10.0.0.2").exists()          # other networks are not ours
    assert gc(conf, [])[0] == 0                    # empty list: everything goes
    assert files(net) == ["last_reserved_ip.0", "lock"]


def test_gc_and_status_on_missing_store_create_nothing(net):
    assert gc(net(), [])[0] == 0
    assert call("STATUS", net())[0] == 0
    assert not net.dir.exists()


def test_status(net):
    conf = net({"ranges": [[{"subnet": "10.0.0.0/29"}], [{"subnet": "fd00::/64"}]]})
    assert call("STATUS", conf)[0] == 0
    for i in range(5):
        assert call("ADD", conf, cid=f"c{i}")[0] == 0
    code, err = call("STATUS", conf)
    assert code == 1 and err["code"] == 50
    assert err["msg"] == "no IP addresses available in range set 0: 10.0.0.1-10.0.0.6"
    assert call("DEL", conf, cid="c3")[0] == 0
    assert call("STATUS", conf)[0] == 0


def test_check_wants_every_address_it_handed_out(net):
    conf = net({"ranges": [[{"subnet": "10.0.0.0/29"}], [{"subnet": "fd00::/64"}]]})
    code, result = call("ADD", conf)
    assert code == 0
    assert call("CHECK", conf)[0] == 0
    assert call("CHECK", dict(conf, prevResult=result))[0] == 0
    (net.dir / "fd00::2").unlink()
    code, err = call("CHECK", dict(conf, prevResult=result))
    assert code == 1 and err["msg"] == "host-local: address fd00::2 is not allocated to container c1"
    code, err = call("CHECK", conf)
    assert err["msg"] == ("host-local: no address of range set 1 (fd00::1-fd00::ffff:ffff:ffff:ffff) "
                          "is allocated to container c1")
    # addresses outside our ranges (another IPAM's) are not ours to check
    other = dict(result, ips=[result["ips"][0], {"address": "192.168.9.9/24"}])
    assert call("CHECK", dict(conf, prevResult=other))[0] == 0


def test_del_works_with_a_config_that_no_longer_validates(net):
    assert call("ADD", net())[0] == 0
    broken = net({"subnet": "10.0.0.0/31"})
    assert call("DEL", broken)[0] == 0
    assert files(net) == ["last_reserved_ip.0", "lock"]
    assert call("ADD", broken)[0] == 1
