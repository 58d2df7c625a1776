"""host-device against the real kernel, exec'ed as a runtime execs it.

The world: the host namespace holds a veth end `hdv0` (MTU 1400, up, an
alias of its own), the link host-device moves; its peer `hdp0` sits in an
external namespace with 10.78.0.1/24, standing in for the LAN. Addresses
come from pycni's host-local with a private dataDir per test, and
host-device keeps its records in a private dataDir too.

A physical device whose container namespace goes away is returned by the
kernel to the initial namespace, which a test must not touch; that is
played by moving the link into the world's host under another name
(what the kernel does when the container's name is taken) before the
namespace is deleted.
"""

import json
import os
import time

import pytest
from netns_world import delete_namespace

pytestmark = pytest.mark.netns

DEV = "hdv0"
PEER = "hdp0"
SUBNET = "10.78.0.0/24"
EXT_IP = "10.78.0.1"
NET = "hdnet"
REF_V19 = "/var/cache/pycni-bench/ref-v1.9/bin"


@pytest.fixture
def lan(world):
    ext = world.external("lan")
    world.host.run("ip", "link", "add", DEV, "mtu", "1400", "type", "veth", "peer", "name",
                   PEER, "netns", ext.name)
    world.host.run("ip", "link", "set", DEV, "alias", "uplink-3", "up")
    ext.run("ip", "addr", "add", f"{EXT_IP}/24", "dev", PEER)
    ext.run("ip", "link", "set", PEER, "up")
    return ext


@pytest.fixture
def make_conf(tmp_path):
    def make(version="1.0.0", ipam=True, **extra):
        conf = {"cniVersion": version, "name": NET, "type": "host-device", "device": DEV,
                "dataDir": str(tmp_path / "hd")}
        if ipam:
            conf["ipam"] = {"type": "host-local", "subnet": SUBNET,
                            "rangeStart": "10.78.0.10", "dataDir": str(tmp_path / "ipam"),
                            "routes": [{"dst": "0.0.0.0/0", "gw": EXT_IP}]}
        conf.update(extra)
        return conf
    return make


def reserved(tmp_path) -> list[str]:
    store = tmp_path / "ipam" / NET
    if not store.exists():
        return []
    return sorted(p.name for p in store.iterdir()
                  if p.name != "lock" and not p.name.startswith("last_reserved_ip"))


def records(tmp_path) -> list[str]:
    store = tmp_path / "hd" / NET
    return sorted(p.name for p in store.iterdir()) if store.exists() else []


def link_names(ns) -> list[str]:
    return sorted(link["ifname"] for link in ns.ip_json("link", "show"))


def run(world, path, command, conf, ctr, **kw):
    return world.run_plugin(path, "host-device", command, conf, ctr, **kw)


def add(world, path, conf, ctr, **kw):
    r = run(world, path, "ADD", conf, ctr, **kw)
    assert r.ok, r.stdout + r.stderr
    return r.json


def host_state(world, name=DEV) -> dict:
    link = world.host.link(name)
    assert link is not None, f"{name} is not in the host: {link_names(world.host)}"
    return {"mtu": link["mtu"], "alias": link.get("ifalias", ""), "address": link["address"],
            "up": "UP" in link["flags"]}


def assert_home(world, mac, up=True):
    assert host_state(world) == {"mtu": 1400, "alias": "uplink-3", "address": mac, "up": up}


# --- lifecycle ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(world, lan, plugin_dir, make_conf, tmp_path, version):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf(version)
    result = add(world, plugin_dir, conf, ctr)

    assert world.host.link(DEV) is None
    link = ctr.link("eth0")
    assert link["address"] == mac and link["mtu"] == 1400
    assert link["ifalias"] == DEV               # the reference's marker, for its DEL
    assert "UP" in link["flags"]
    if version == "0.2.0":
        assert result == {"cniVersion": "0.2.0", "dns": {},
                          "ip4": {"ip": "10.78.0.10/24", "gateway": EXT_IP,
                                  "routes": [{"dst": "0.0.0.0/0", "gw": EXT_IP}]}}
    else:
        assert result["interfaces"] == [{"name": "eth0", "mac": mac, "sandbox": ctr.path}]
        assert [ip["address"] for ip in result["ips"]] == ["10.78.0.10/24"]
        assert all(ip["interface"] == 0 for ip in result["ips"])
    assert "10.78.0.10/24" in ctr.addresses("eth0")
    assert ctr.pings(EXT_IP)
    assert reserved(tmp_path) == ["10.78.0.10"]
    assert records(tmp_path) == ["ctr1_eth0"]
    assert oct(os.stat(tmp_path / "hd" / NET / "ctr1_eth0").st_mode & 0o777) == "0o600"

    if version not in ("0.2.0", "0.3.1"):
        check = run(world, plugin_dir, "CHECK", dict(conf, prevResult=result), ctr)
        assert check.ok, check.stdout + check.stderr

    ctr.run("ip", "link", "set", "eth0", "mtu", "1300")     # the container changed it
    for _ in range(2):
        r = run(world, plugin_dir, "DEL", dict(conf, prevResult=result), ctr)
        assert r.ok, r.stdout + r.stderr
        assert link_names(ctr) == ["lo"]
        assert_home(world, mac)
        assert reserved(tmp_path) == []
        assert records(tmp_path) == []


def test_a_device_in_a_container_is_named_as_such(world, lan, plugin_dir, make_conf):
    c1, c2 = world.container("c1"), world.container("c2")
    add(world, plugin_dir, make_conf(ipam=False), c1)
    r = run(world, plugin_dir, "ADD", make_conf(ipam=False), c2, container_id="ctr2")
    assert r.error_code() == 7
    assert r.json["msg"] == f"failed to find host device: {DEV} is in use by another container"
    assert "moved to container ctr1 as eth0" in r.json["details"]
    assert link_names(c2) == ["lo"]


def test_layer2_only_and_legacy_version_refused_before_moving(world, lan, plugin_dir,
                                                              make_conf, tmp_path):
    ctr = world.container("c1")
    result = add(world, plugin_dir, make_conf(ipam=False), ctr)
    assert set(result) == {"cniVersion", "interfaces"}
    assert "UP" in ctr.link("eth0")["flags"]
    r = run(world, plugin_dir, "DEL", make_conf(ipam=False), ctr)
    assert r.ok, r.stdout

    legacy = run(world, plugin_dir, "ADD", make_conf("0.2.0", ipam=False), ctr)
    assert not legacy.ok and "cannot convert: no valid IP addresses" in legacy.stdout
    assert_home(world, host_state(world)["address"])


def test_check_notices_changes(world, lan, plugin_dir, make_conf):
    ctr = world.container("c1")
    conf = make_conf()
    result = add(world, plugin_dir, conf, ctr)
    chk = dict(conf, prevResult=result)
    ctr.run("ip", "addr", "del", "10.78.0.10/24", "dev", "eth0")
    gone = run(world, plugin_dir, "CHECK", chk, ctr)
    assert not gone.ok and "Failed to match addr 10.78.0.10/24" in gone.stdout
    ctr.run("ip", "link", "set", "eth0", "address", "02:00:00:00:00:77")
    mac = run(world, plugin_dir, "CHECK", chk, ctr)
    assert not mac.ok and "doesn't match container Mac" in mac.stdout
    no_prev = run(world, plugin_dir, "CHECK", conf, ctr)
    assert no_prev.error_code() == 7 and "Required prevResult missing" in no_prev.stdout


@pytest.mark.parametrize("how", ["hwaddr", "kernelpath"])
def test_other_selectors(world, lan, plugin_dir, make_conf, how):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf(ipam=False)
    del conf["device"]
    if how == "hwaddr":
        conf["hwaddr"] = mac.upper().replace(":", "-")
    else:
        # /sys of the plugin's namespace lists hdv0 before lo
        conf["kernelpath"] = "/sys/devices/virtual"
    result = add(world, plugin_dir, conf, ctr)
    assert result["interfaces"][0]["mac"] == mac
    assert ctr.link("eth0")["ifalias"] == DEV
    r = run(world, plugin_dir, "DEL", conf, ctr)
    assert r.ok, r.stdout
    assert_home(world, mac)


def test_kernelpath_needs_the_sysfs_of_its_namespace(world, lan, plugin_dir, make_conf,
                                                      tmp_path):
    """Run with another namespace's /sys (nsenter, no remount), a sysfs
    name may be another link: refused, nothing moved."""
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    other = world.external("other")          # its /sys lists only lo and hdo0
    other.run("ip", "link", "add", "hdo0", "type", "veth", "peer", "name", "hdo1")
    world.host.run("ip", "link", "add", "hdo0", "type", "veth", "peer", "name", "hdo9")
    conf = make_conf(ipam=False)
    del conf["device"]
    conf["kernelpath"] = "/sys/devices/virtual"
    env = world.plugin_env("ADD", plugin_dir, ctr)
    # `ip netns exec` gave `other` its own /sys; nsenter changes the netns only
    proc = other.run("nsenter", f"--net={world.host.path}", f"{plugin_dir}/host-device",
                     check=False, env=env, input=json.dumps(conf).encode())
    out = json.loads(proc.stdout)
    assert out["code"] == 7 and "is not the link hdo0 of this network namespace" in out["msg"]
    assert world.host.link("hdo0") is not None and link_names(ctr) == ["lo"]
    assert_home(world, mac)


def test_macvlan_link(world, lan, plugin_dir, make_conf):
    world.host.run("ip", "link", "add", "hdmv0", "link", DEV, "type", "macvlan",
                   "mode", "bridge")
    ctr = world.container("c1")
    conf = make_conf(device="hdmv0")
    result = add(world, plugin_dir, conf, ctr)
    assert ctr.link("eth0")["linkinfo"]["info_kind"] == "macvlan"
    assert ctr.pings(EXT_IP)
    check = run(world, plugin_dir, "CHECK", dict(conf, prevResult=result), ctr)
    assert check.ok, check.stdout
    r = run(world, plugin_dir, "DEL", dict(conf, prevResult=result), ctr)
    assert r.ok, r.stdout
    assert world.host.link("hdmv0")["linkinfo"]["info_kind"] == "macvlan"
    assert link_names(ctr) == ["lo"]


def static_conf(make_conf, *addresses):
    conf = make_conf()
    conf["ipam"] = {"type": "static",
                    "addresses": [{"address": a} for a in addresses],
                    "routes": [{"dst": "fd00:79::/64", "gw": "fd00:78::1"}]}
    return conf


def test_dual_stack_with_static_settles_dad(world, lan, plugin_dir, make_conf):
    lan.run("ip", "addr", "add", "fd00:78::1/64", "dev", PEER, "nodad")
    ctr = world.container("c1")
    conf = static_conf(make_conf, "10.78.0.20/24", "fd00:78::20/64")
    result = add(world, plugin_dir, conf, ctr)
    assert [ip["address"] for ip in result["ips"]] == ["10.78.0.20/24", "fd00:78::20/64"]
    v6 = [a for a in ctr.ip_json("-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
          if a["local"] == "fd00:78::20"]
    assert v6 and not v6[0].get("tentative")       # DAD was waited for
    assert ctr.pings("fd00:78::1")
    check = run(world, plugin_dir, "CHECK", dict(conf, prevResult=result), ctr)
    assert check.ok, check.stdout
    d = run(world, plugin_dir, "DEL", dict(conf, prevResult=result), ctr)
    assert d.ok, d.stdout


def test_duplicate_ipv6_address_fails_add_and_leaves_nothing(world, lan, plugin_dir,
                                                            make_conf, tmp_path):
    lan.run("ip", "addr", "add", "fd00:78::30/64", "dev", PEER, "nodad")
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    r = run(world, plugin_dir, "ADD", static_conf(make_conf, "fd00:78::30/64"), ctr)
    assert not r.ok
    assert "DADFAILED" in r.json["msg"], r.stdout
    _untouched(world, ctr, mac, tmp_path)
    assert link_names(ctr) == ["lo"]


# --- the container's namespace goes first ----------------------------------------------

def test_del_with_netns_gone_releases_ipam(world, lan, plugin_dir, make_conf, tmp_path):
    ctr = world.container("c1")
    conf = make_conf()
    add(world, plugin_dir, conf, ctr)
    path = ctr.path
    world.namespaces.remove(ctr)
    assert delete_namespace(ctr.name) is None     # a veth dies with its namespace
    for netns in (path, None):                    # gone, and CNI_NETNS=""
        r = run(world, plugin_dir, "DEL", conf, netns)
        assert r.ok, r.stdout + r.stderr
        assert reserved(tmp_path) == []
        assert records(tmp_path) == []


def _kernel_returns(world, ctr, name="dev7"):
    """What the kernel does to a physical device when its namespace goes."""
    ctr.run("ip", "link", "set", "eth0", "netns", world.host.name)
    world.host.run("ip", "link", "set", "eth0", "name", name)
    path = ctr.path
    world.namespaces.remove(ctr)
    assert delete_namespace(ctr.name) is None
    return path


def test_del_puts_returned_device_back_with_name_and_mtu(world, lan, plugin_dir, make_conf,
                                                          tmp_path):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf()
    add(world, plugin_dir, conf, ctr)
    ctr.run("ip", "link", "set", "eth0", "mtu", "1280")
    path = _kernel_returns(world, ctr)
    assert world.host.link("dev7")["ifalias"] == DEV

    # meanwhile nobody else may take it: its attachment is not deleted yet
    c2 = world.container("c2")
    other = make_conf(ipam=False, device="dev7")
    taken = run(world, plugin_dir, "ADD", other, c2, container_id="ctr2")
    assert taken.error_code() == 7 and "in use by another container" in taken.stdout
    assert world.host.link("dev7") is not None

    r = run(world, plugin_dir, "DEL", conf, path)
    assert r.ok, r.stdout + r.stderr
    assert world.host.link("dev7") is None
    assert_home(world, mac, up=True)
    assert reserved(tmp_path) == [] and records(tmp_path) == []


def test_gc_puts_returned_device_back(world, lan, plugin_dir, make_conf, tmp_path):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf("1.1.0")
    add(world, plugin_dir, conf, ctr)
    _kernel_returns(world, ctr, name="dev9")
    keep = make_conf("1.1.0")
    keep["cni.dev/valid-attachments"] = [{"containerID": "other", "ifname": "eth0"}]
    r = run(world, plugin_dir, "GC", keep, None)
    assert r.ok, r.stdout + r.stderr
    assert_home(world, mac)
    assert records(tmp_path) == [] and reserved(tmp_path) == []


# --- refusals and failures leave nothing -------------------------------------------------

def _untouched(world, ctr, mac, tmp_path):
    assert_home(world, mac)
    assert DEV not in link_names(ctr)
    assert all(link.get("ifalias") != DEV for link in ctr.ip_json("link", "show"))
    assert reserved(tmp_path) == [] and records(tmp_path) == []


@pytest.mark.parametrize("change, code, text", [
    ({"device": "lo"}, 7, "is the loopback device"),
    ({"device": "hdnone"}, 7, "failed to find host device: Link not found"),
    ({"device": "", "hwaddr": "00:00:00:00:00:00"}, 7, "failed to find physical interface"),
    ({"device": "", "kernelpath": "/sys/devices/../../tmp"}, 7, "must not contain"),
    ({"device": "", "pciBusID": "../../../../tmp"}, 7, "not a PCI address"),
    ({"device": ""}, 7, 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'),
    ({"dataDir": "/etc/hd"}, 7, "not below a state directory"),
    ({"ipam": {"type": "hd-no-such-ipam"}}, 7, "failed to find plugin"),
])
def test_refused_add_changes_nothing(world, lan, plugin_dir, make_conf, tmp_path,
                                     change, code, text):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf()
    conf.update(change)
    r = run(world, plugin_dir, "ADD", conf, ctr)
    assert r.error_code() == code, r.stdout
    assert text in r.json["msg"]
    _untouched(world, ctr, mac, tmp_path)


def test_name_taken_in_container(world, lan, plugin_dir, make_conf, tmp_path):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    ctr.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "hdx")
    r = run(world, plugin_dir, "ADD", make_conf(), ctr)
    assert not r.ok and "already exists in the container" in r.stdout
    _untouched(world, ctr, mac, tmp_path)
    d = run(world, plugin_dir, "DEL", make_conf(), ctr)     # the runtime's DEL after it
    assert d.ok, d.stdout
    assert ctr.link("eth0")["linkinfo"]["info_kind"] == "veth"   # not ours: left alone
    _untouched(world, ctr, mac, tmp_path)


def test_ipam_failure_after_the_move_puts_it_back(world, lan, plugin_dir, make_conf,
                                                  tmp_path):
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf()
    # an address the container cannot take: the route's gateway is off-link
    conf["ipam"]["routes"] = [{"dst": "10.99.0.0/16", "gw": "10.200.0.1"}]
    r = run(world, plugin_dir, "ADD", conf, ctr)
    assert not r.ok, r.stdout
    assert "failed to add route" in r.stdout
    _untouched(world, ctr, mac, tmp_path)
    assert link_names(ctr) == ["lo"]


# --- the reference v1.9 side by side ---------------------------------------------------

def _ref():
    if not os.path.exists(os.path.join(REF_V19, "host-device")):
        pytest.skip("reference v1.9 binaries not built")
    return REF_V19


def _container_state(ctr) -> dict:
    link = ctr.link("eth0")
    routes = sorted((r["dst"], r.get("gateway", "")) for r in ctr.ip_json("route", "show"))
    return {"mtu": link["mtu"], "address": link["address"], "alias": link.get("ifalias"),
            "up": "UP" in link["flags"],
            "addresses": [a for a in ctr.addresses("eth0") if not a.startswith("fe80:")],
            "routes": routes, "names": link_names(ctr)}


@pytest.mark.parametrize("version", ["0.2.0", "0.3.1", "1.0.0", "1.1.0"])
def test_same_result_and_state_as_reference(world, lan, plugin_dir, make_conf, tmp_path,
                                            version):
    ref = _ref()
    # both delegate to the same (our) host-local
    c1, c2 = world.container("c1"), world.container("c2")
    conf = make_conf(version)
    ref_conf = json.loads(json.dumps(conf))
    ref_conf["ipam"]["dataDir"] = str(tmp_path / "ipam-ref")   # both start at .10
    ref_run = world.run_plugin([ref, plugin_dir], "host-device", "ADD", ref_conf, c1)
    assert ref_run.ok, ref_run.stdout + ref_run.stderr
    theirs, theirs_state = ref_run.json, _container_state(c1)
    r = world.run_plugin([ref, plugin_dir], "host-device", "DEL", ref_conf, c1)
    assert r.ok, r.stdout + r.stderr
    world.host.run("ip", "link", "set", DEV, "up")          # the reference leaves it down
    world.host.run("ip", "link", "set", DEV, "alias", "uplink-3")

    ours = add(world, plugin_dir, conf, c2)
    assert json.loads(json.dumps(ours).replace(c2.path, c1.path)) == theirs
    assert _container_state(c2) == theirs_state


def test_reference_and_pycni_undo_each_other(world, lan, plugin_dir, make_conf, tmp_path):
    ref = _ref()
    ctr = world.container("c1")
    mac = host_state(world)["address"]
    conf = make_conf(ipam=False)
    # the reference's ADD, our DEL: the alias is all we have
    r = world.run_plugin([ref], "host-device", "ADD", conf, ctr)
    assert r.ok, r.stdout + r.stderr
    d = run(world, plugin_dir, "DEL", conf, ctr)
    assert d.ok, d.stdout + d.stderr
    state = host_state(world)
    assert (state["mtu"], state["address"]) == (1400, mac) and link_names(ctr) == ["lo"]
    world.host.run("ip", "link", "set", DEV, "alias", "uplink-3", "up")
    # our ADD, the reference's DEL (it reads the alias we set)
    add(world, plugin_dir, conf, ctr)
    d = world.run_plugin([ref], "host-device", "DEL", conf, ctr)
    assert d.ok, d.stdout + d.stderr
    assert world.host.link(DEV) is not None and link_names(ctr) == ["lo"]


def test_netns_gone_reference_leaks_the_address_pycni_does_not(world, lan, plugin_dir,
                                                                make_conf, tmp_path):
    """plugins#1196, side by side: the same ADD, the namespace deleted, DEL."""
    ref = _ref()
    conf = make_conf()
    for impl, path in (("ref", [ref, plugin_dir]), ("pycni", plugin_dir)):
        world.host.run("ip", "link", "del", DEV, check=False)
        # the previous round's pair goes with its namespace, which the
        # kernel tears down asynchronously: wait for its host end
        for _ in range(100):
            if world.host.run("ip", "link", "show", "hdq0", check=False).returncode != 0:
                break
            time.sleep(0.05)
        world.host.run("ip", "link", "add", DEV, "type", "veth", "peer", "name", "hdq0")
        ctr = world.container(f"g{impl}")
        r = world.run_plugin(path, "host-device", "ADD", conf, ctr, container_id=impl)
        assert r.ok, r.stdout + r.stderr
        netns_path = ctr.path
        world.namespaces.remove(ctr)
        assert delete_namespace(ctr.name) is None
        d = world.run_plugin(path, "host-device", "DEL", conf, netns_path, container_id=impl)
        if impl == "ref":
            assert not d.ok and "failed to open netns" in d.stdout
            assert reserved(tmp_path) == ["10.78.0.10"]          # leaked
            (tmp_path / "ipam" / NET / "10.78.0.10").unlink()    # as an operator would
        else:
            assert d.ok, d.stdout + d.stderr
            assert reserved(tmp_path) == []
