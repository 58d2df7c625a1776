"""tap against the real kernel, exec'ed as a runtime execs it, side by side
with the reference v1.9 tap (/var/cache/pycni-bench/ref-v1.9/bin; Debian's
v1.1 has none).

The world: a host namespace where the plugins run and container namespaces;
the tap is born in the container. IPAM is pycni's host-local with a private
dataDir per test.
"""

import json
import os
import struct
import sys

import pytest
from netns_world import delete_namespace

pytestmark = pytest.mark.netns

REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")
NET = "tapnet"
SUBNET = "10.78.0.0/24"
BRIDGE = "tapbr0"


@pytest.fixture
def ref19():
    if not os.access(os.path.join(REF19, "tap"), os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"reference v1.9 tap not built in {REF19} "
                             "(bench/build-reference.sh)")
    return REF19


@pytest.fixture
def make_conf(tmp_path):
    def make(version="1.0.0", ipam=False, **extra):
        conf = {"cniVersion": version, "name": NET, "type": "tap"}
        if ipam:
            conf["ipam"] = {"type": "host-local", "subnet": SUBNET,
                            "rangeStart": "10.78.0.10", "dataDir": str(tmp_path / "ipam"),
                            "routes": [{"dst": "0.0.0.0/0"}]}
        conf.update(extra)
        return conf
    return make


def reserved(tmp_path) -> list[str]:
    store = tmp_path / "ipam" / NET
    if not store.exists():
        return []
    return sorted(p.name for p in store.iterdir()
                  if p.name != "lock" and not p.name.startswith("last_reserved_ip"))


def link_names(ns) -> list[str]:
    return sorted(link["ifname"] for link in ns.ip_json("link", "show"))


def add(world, path, conf, ctr, **kw):
    run = world.run_plugin(path, "tap", "ADD", conf, ctr, **kw)
    assert run.ok, run.stdout + run.stderr
    return run.json


def tun_info(ns, name="eth0") -> dict:
    """`ip -d -j link`'s view of a tun device: type, pi, vnet_hdr,
    multi_queue, persist, user, group."""
    link = ns.link(name)
    assert link is not None, f"no {name}"
    assert link["linkinfo"]["info_kind"] == "tun"
    return link["linkinfo"]["info_data"]


def pyroute2_tun(ns, name="eth0") -> dict:
    """The same attributes read with pyroute2 (an independent decoder)."""
    code = r"""
import json, sys
from pyroute2 import IPRoute
with IPRoute() as ipr:
    (link,) = ipr.get_links(ifname=sys.argv[1])
    info = link.get_attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_DATA")
    out = {"kind": info.get_attr("IFLA_INFO_KIND"), "mtu": link.get_attr("IFLA_MTU"),
           "mac": link.get_attr("IFLA_ADDRESS"), "master": link.get_attr("IFLA_MASTER")}
    for key, value in (data.get("attrs") if isinstance(data, dict) else data["attrs"]):
        out[key] = value
    print(json.dumps(out))
"""
    proc = ns.run(sys.executable, "-c", code, name, check=False)
    if proc.returncode != 0:
        pytest.skip(f"pyroute2 cannot decode tun attributes here: {proc.stderr.decode()[-300:]}")
    return json.loads(proc.stdout)


# --- lifecycle ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del_with_ipam(world, plugin_dir, make_conf, tmp_path, version):
    ctr = world.container("tapc1")
    conf = make_conf(version, ipam=True)
    result = add(world, plugin_dir, conf, ctr)

    link = ctr.link("eth0")
    assert link["linkinfo"]["info_kind"] == "tun"
    assert link["linkinfo"]["info_data"]["type"] == "tap"
    assert link["linkinfo"]["info_data"]["persist"] is True
    assert "UP" in link["flags"]
    assert result["interfaces"] == [{"name": "eth0", "mac": link["address"],
                                     "sandbox": ctr.path}]
    assert [ip["address"] for ip in result["ips"]] == ["10.78.0.10/24"]
    assert all(ip["interface"] == 0 for ip in result["ips"])
    assert "10.78.0.10/24" in ctr.addresses("eth0")
    assert ctr.run("cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").stdout.strip() == b"1"
    assert reserved(tmp_path) == ["10.78.0.10"]
    assert link_names(world.host) == ["lo"]        # nothing on the host

    if version != "0.3.1":
        check = world.run_plugin(plugin_dir, "tap", "CHECK", dict(conf, prevResult=result), ctr)
        assert check.ok, check.stdout + check.stderr

    for _ in range(2):          # DEL is idempotent
        run = world.run_plugin(plugin_dir, "tap", "DEL", dict(conf, prevResult=result), ctr)
        assert run.ok, run.stdout + run.stderr
        assert link_names(ctr) == ["lo"]
        assert reserved(tmp_path) == []


def test_l2_only_without_ipam(world, plugin_dir, make_conf):
    ctr = world.container("tapc1")
    result = add(world, plugin_dir, make_conf(), ctr)
    assert set(result) == {"cniVersion", "interfaces"}
    assert "UP" in ctr.link("eth0")["flags"]
    assert not [a for a in ctr.addresses("eth0") if not a.startswith("fe80:")]
    check = world.run_plugin(plugin_dir, "tap", "CHECK",
                             dict(make_conf(), prevResult=result), ctr)
    assert check.ok, check.stdout
    assert world.run_plugin(plugin_dir, "tap", "DEL", make_conf(), ctr).ok
    assert link_names(ctr) == ["lo"]


def test_del_with_netns_gone_or_empty_releases_ipam(world, plugin_dir, make_conf, tmp_path):
    ctr = world.container("tapc1")
    conf = make_conf(ipam=True)
    add(world, plugin_dir, conf, ctr)
    path = ctr.path
    world.namespaces.remove(ctr)        # the container goes away before its DEL
    assert delete_namespace(ctr.name) is None
    run = world.run_plugin(plugin_dir, "tap", "DEL", conf, path)
    assert run.ok, run.stdout + run.stderr
    assert reserved(tmp_path) == []
    assert world.run_plugin(plugin_dir, "tap", "DEL", conf, path).ok
    run = world.run_plugin(plugin_dir, "tap", "DEL", conf, None)   # CNI_NETNS=""
    assert run.ok, run.stdout + run.stderr


def test_del_with_the_mount_point_left_behind(world, plugin_dir, make_conf, tmp_path):
    """The runtime unmounted the namespace and left the file: gone."""
    stale = tmp_path / "netns-file"
    stale.write_text("")
    run = world.run_plugin(plugin_dir, "tap", "DEL", make_conf(ipam=True), str(stale))
    assert run.ok, run.stdout + run.stderr


# --- every key visible in the kernel --------------------------------------------------

def test_owner_group_multiqueue_mtu_mac_on_the_device(world, plugin_dir, make_conf):
    ctr = world.container("tapc1")
    mac = "02:aa:bb:cc:dd:01"
    conf = make_conf(owner=1000, group=3000000000, multiQueue=True, mtu=1400, mac=mac)
    result = add(world, plugin_dir, conf, ctr)
    info = tun_info(ctr)
    assert info["type"] == "tap" and info["multi_queue"] is True
    assert info["pi"] is False and info["vnet_hdr"] is True     # the reference's netlink path
    assert info["persist"] is True and "user" in info and "group" in info
    link = ctr.link("eth0")
    assert (link["mtu"], link["address"]) == (1400, mac)
    assert result["interfaces"][0]["mac"] == mac
    decoded = pyroute2_tun(ctr)
    assert decoded["IFLA_TUN_OWNER"] == 1000
    assert decoded["IFLA_TUN_GROUP"] == 3000000000
    assert decoded["IFLA_TUN_MULTI_QUEUE"] == 1 and decoded["IFLA_TUN_TYPE"] == 2
    assert (decoded["mtu"], decoded["mac"]) == (1400, mac)
    check = world.run_plugin(plugin_dir, "tap", "CHECK", dict(conf, prevResult=result), ctr)
    assert check.ok, check.stdout


@pytest.mark.parametrize("how", ["mac", "runtimeConfig", "CNI_ARGS"])
def test_requested_mac(world, plugin_dir, make_conf, how):
    mac = "02:aa:bb:cc:dd:0e"
    ctr = world.container("tapc1")
    conf, kw = make_conf(), {}
    if how == "mac":
        conf["mac"] = mac
    elif how == "runtimeConfig":
        conf.update(mac="02:00:00:00:00:01", runtimeConfig={"mac": mac})
    else:
        kw["args"] = f"IgnoreUnknown=1;MAC={mac}"
        conf["mac"] = "02:00:00:00:00:01"
    result = add(world, plugin_dir, conf, ctr, **kw)
    assert ctr.link("eth0")["address"] == mac == result["interfaces"][0]["mac"]


def test_owner_may_attach_others_may_not(world, plugin_dir, make_conf):
    """What `owner` is for: that user, without any capability, can attach
    to the tap (TUNSETIFF on a persistent device); another user cannot."""
    ctr = world.container("tapc1")
    add(world, plugin_dir, make_conf(owner=4321), ctr)
    attach = r"""
import fcntl, os, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)        # as root: the device file is root's
os.setgroups([]); os.setresgid(4321, 4321, 4321); os.setresuid(int(sys.argv[1]), int(sys.argv[1]), int(sys.argv[1]))
try:
    fcntl.ioctl(fd, 0x400454CA, struct.pack("=16sH22x", b"eth0", 0x0002 | 0x1000))
except OSError as e:
    print(e.errno); sys.exit(0)
print("attached")
"""
    owner = ctr.run(sys.executable, "-c", attach, "4321").stdout.decode().strip()
    other = ctr.run(sys.executable, "-c", attach, "4322").stdout.decode().strip()
    assert owner == "attached"
    assert other == "1"                        # EPERM


def test_bridge_in_the_container(world, plugin_dir, make_conf, tmp_path):
    ctr = world.container("tapc1")
    ctr.run("ip", "link", "add", BRIDGE, "type", "bridge")
    conf = make_conf(ipam=True, bridge=BRIDGE)
    result = add(world, plugin_dir, conf, ctr)
    assert ctr.link("eth0")["master"] == BRIDGE
    check = world.run_plugin(plugin_dir, "tap", "CHECK", dict(conf, prevResult=result), ctr)
    assert check.ok, check.stdout
    ctr.run("ip", "link", "set", "eth0", "nomaster")
    off = world.run_plugin(plugin_dir, "tap", "CHECK", dict(conf, prevResult=result), ctr)
    assert not off.ok and "not a port of bridge tapbr0" in off.json["msg"]
    assert world.run_plugin(plugin_dir, "tap", "DEL", conf, ctr).ok
    assert link_names(ctr) == ["lo", BRIDGE] and reserved(tmp_path) == []


def test_a_vm_attached_to_the_tap_sees_the_containers_frames(world, plugin_dir, make_conf):
    """Traffic: a process attached to the tap (the VM's side) reads the ARP
    request the container sends when it talks to the VM's address."""
    ctr = world.container("tapc1")
    add(world, plugin_dir, make_conf(ipam=True), ctr)
    vm = r"""
import fcntl, os, select, socket, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("=16sH22x", b"eth0", 0x0002 | 0x1000))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
deadline = time.time() + 5
while time.time() < deadline:
    try:
        s.sendto(b"x", ("10.78.0.99", 9))
    except OSError:
        pass
    if select.select([fd], [], [], 0.3)[0]:
        frame = os.read(fd, 2048)
        if frame[12:14] == b"\x08\x06" and frame[38:42] == socket.inet_aton("10.78.0.99"):
            print("arp"); sys.exit(0)
sys.exit(1)
"""
    proc = ctr.run(sys.executable, "-c", vm, check=False)
    assert proc.stdout.strip() == b"arp", proc.stderr.decode()


# --- CHECK notices changes -------------------------------------------------------------

def test_check_notices_changes(world, plugin_dir, make_conf):
    ctr = world.container("tapc1")
    conf = make_conf(ipam=True, mtu=1400)
    result = add(world, plugin_dir, conf, ctr)
    chk = dict(conf, prevResult=result)
    assert world.run_plugin(plugin_dir, "tap", "CHECK", chk, ctr).ok

    mq = world.run_plugin(plugin_dir, "tap", "CHECK", dict(chk, multiQueue=True), ctr)
    assert not mq.ok and "multi_queue is off" in mq.json["msg"]
    ctr.run("ip", "link", "set", "eth0", "mtu", "1300")
    mtu = world.run_plugin(plugin_dir, "tap", "CHECK", chk, ctr)
    assert not mtu.ok and "MTU 1300" in mtu.json["msg"]
    ctr.run("ip", "link", "set", "eth0", "mtu", "1400")
    ctr.run("ip", "addr", "del", "10.78.0.10/24", "dev", "eth0")
    gone = world.run_plugin(plugin_dir, "tap", "CHECK", chk, ctr)
    assert not gone.ok and "Failed to match addr 10.78.0.10/24" in gone.json["msg"]
    no_prev = world.run_plugin(plugin_dir, "tap", "CHECK", conf, ctr)
    assert no_prev.error_code() == 7 and "Required prevResult missing" in no_prev.stdout


def test_check_of_a_deleted_l2_tap_fails(world, plugin_dir, ref19, make_conf):
    """The reference's CHECK of a layer-2 tap passes with the tap gone."""
    ctr = world.container("tapc1")
    result = add(world, plugin_dir, make_conf(), ctr)
    ctr.run("ip", "link", "del", "eth0")
    chk = dict(make_conf(), prevResult=result)
    ours = world.run_plugin(plugin_dir, "tap", "CHECK", chk, ctr)
    assert not ours.ok and "eth0 not found" in ours.json["msg"]
    assert world.run_plugin(ref19, "tap", "CHECK", chk, ctr).ok     # the reference's gap


# --- failures leave nothing -------------------------------------------------------------

@pytest.mark.parametrize("change, code, message", [
    ({"mtu": 70000}, 7, "invalid MTU 70000"),
    ({"mtu": -1}, 7, "invalid MTU -1"),
    ({"mac": "zz"}, 7, "invalid args zz for MAC addr"),
    ({"mac": "01:00:5e:00:00:01"}, 7, "multicast"),
    ({"owner": -1}, 7, "config.owner: expected a uint32"),
    ({"multiQueue": "yes"}, 7, "config.multiQueue: expected a boolean"),
    ({"selinuxContext": "system_u:system_r:container_t:s0"}, 2, "selinuxContext"),
    ({"bridge": "nosuch0"}, 7, "failed to get bridge nosuch0"),
])
def test_config_errors_leave_nothing(world, plugin_dir, make_conf, tmp_path, change, code,
                                     message):
    ctr = world.container("tapc1")
    run = world.run_plugin(plugin_dir, "tap", "ADD", make_conf(ipam=True, **change), ctr)
    assert run.returncode == 1 and run.error_code() == code, run.stdout
    assert message in run.json["msg"]
    assert link_names(ctr) == ["lo"] and link_names(world.host) == ["lo"]
    assert reserved(tmp_path) == []


@pytest.mark.parametrize("impl", ["pycni", "ref-v1.9"])
def test_failed_adds_leave_nothing_where_the_reference_leaks(world, plugin_dir, ref19,
                                                             make_conf, tmp_path, impl):
    """IPAM failure, a `bridge` that cannot take ports, a 0.2.0 layer-2
    result, an MTU `ip` refuses: pycni removes the tap each time; the
    reference leaves a tap behind in each case (asserted, so a fixed
    reference shows up here)."""
    path = plugin_dir if impl == "pycni" else ref19
    bad_ipam = make_conf(ipam=True)
    bad_ipam["ipam"]["subnet"] = "not-a-subnet"
    cases = [(bad_ipam, ["lo"]),
             (make_conf(bridge="notbr0"), ["lo", "notbr0", "notbr1"]),
             (make_conf("0.2.0"), ["lo"])]
    leaked = []
    for conf, expected in cases:
        ctr = world.container("tapc")
        if "notbr0" in expected:        # a veth: no master device
            ctr.run("ip", "link", "add", "notbr0", "type", "veth", "peer", "name", "notbr1")
        run = world.run_plugin(path, "tap", "ADD", conf, ctr)
        assert not run.ok, run.stdout
        leaked.append(link_names(ctr) != expected)
    assert reserved(tmp_path) == []
    assert leaked == ([False] * 3 if impl == "pycni" else [True] * 3)


def test_taken_ifname_fails_cleanly_and_del_spares_the_other_link(world, plugin_dir, ref19,
                                                                  make_conf):
    ctr = world.container("tapc1")
    ctr.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    run = world.run_plugin(plugin_dir, "tap", "ADD", make_conf(), ctr)
    assert not run.ok and "already exists in the container" in run.json["details"]
    assert link_names(ctr) == ["eth0", "lo", "other0"]
    assert world.run_plugin(plugin_dir, "tap", "DEL", make_conf(), ctr).ok
    assert link_names(ctr) == ["eth0", "lo", "other0"]
    # the reference carries on with the existing veth and leaves its own tap
    ref = world.run_plugin(ref19, "tap", "ADD", make_conf(), ctr)
    assert ref.ok and len(link_names(ctr)) == 4


def test_an_existing_tap_is_not_taken_over(world, plugin_dir, make_conf):
    ctr = world.container("tapc1")
    ctr.run("ip", "tuntap", "add", "mode", "tap", "name", "eth0", "user", "7")
    before = ctr.link("eth0")
    run = world.run_plugin(plugin_dir, "tap", "ADD", make_conf(owner=1000, mtu=1400), ctr)
    assert not run.ok
    after = ctr.link("eth0")
    assert (after["ifindex"], after["mtu"], after["linkinfo"]["info_data"]["user"]) == \
        (before["ifindex"], before["mtu"], before["linkinfo"]["info_data"]["user"])


def test_a_name_template_is_refused(world, plugin_dir, make_conf):
    """CNI_IFNAME "tap%d" would make the kernel pick a name: refused, nothing left."""
    ctr = world.container("tapc1")
    run = world.run_plugin(plugin_dir, "tap", "ADD", make_conf(), ctr, ifname="tap%d")
    assert not run.ok and "the kernel named it tap0" in run.json["details"]
    assert link_names(ctr) == ["lo"]


def test_missing_netns(world, plugin_dir, make_conf):
    run = world.run_plugin(plugin_dir, "tap", "ADD", make_conf(), "/run/netns/pycni-none")
    assert run.error_code() == 3


# --- STATUS and GC ---------------------------------------------------------------------

def test_status_and_gc(world, plugin_dir, make_conf, tmp_path):
    conf = make_conf("1.1.0", ipam=True)
    ok = world.run_plugin(plugin_dir, "tap", "STATUS", conf)
    assert ok.ok, ok.stdout + ok.stderr
    assert world.run_plugin(plugin_dir, "tap", "STATUS", make_conf("1.0.0")).error_code() == 1
    c1, c2 = world.container("tapc1"), world.container("tapc2")
    add(world, plugin_dir, conf, c1, container_id="c1")
    add(world, plugin_dir, conf, c2, container_id="c2")
    assert reserved(tmp_path) == ["10.78.0.10", "10.78.0.11"]
    keep = [{"containerID": "c2", "ifname": "eth0"}]
    gc = world.run_plugin(plugin_dir, "tap", "GC",
                          dict(conf, **{"cni.dev/valid-attachments": keep}))
    assert gc.ok, gc.stdout + gc.stderr
    assert reserved(tmp_path) == ["10.78.0.11"]


# --- side by side with the reference v1.9 ------------------------------------------------

def shape(result: dict) -> dict:
    out = json.loads(json.dumps(result))
    for intf in out.get("interfaces", []):
        intf["mac"] = intf["mac"] and "MAC"
        intf["sandbox"] = "NS"
    for ip in out.get("ips", []):
        ip["address"] = "ADDR"
    if not out.get("dns"):
        out.pop("dns", None)
    return out


@pytest.mark.parametrize("version", ["0.1.0", "0.3.0", "0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.parametrize("ipam", [True, False])
def test_result_shape_matches_the_reference(world, plugin_dir, ref19, make_conf, tmp_path,
                                            version, ipam):
    if version == "0.1.0" and not ipam:
        pytest.skip("no layer-2 result in 0.1.0 (both fail; see the leak test)")
    conf = make_conf(version, ipam=ipam)
    ours = add(world, plugin_dir, conf, world.container("ours"), container_id="ours")
    ref = add(world, [ref19], dict(conf, ipam=dict(conf["ipam"], dataDir=str(
        tmp_path / "ref-ipam"))) if ipam else conf, world.container("ref"), container_id="ref")
    assert shape(ours) == shape(ref)


FLAG_KEYS = ("type", "pi", "vnet_hdr", "multi_queue", "persist", "user", "group")


@pytest.mark.parametrize("keys", [
    {}, {"multiQueue": True}, {"owner": 1000}, {"group": 1000, "multiQueue": True},
    {"owner": 1000, "group": 1000}, {"owner": 1000, "group": 1000, "multiQueue": True},
    {"mtu": 1400, "mac": "02:aa:bb:cc:dd:02"},
], ids=lambda keys: "-".join(f"{k}" for k in keys) or "plain")
def test_same_device_as_the_reference(world, plugin_dir, ref19, make_conf, keys):
    ours_ns, ref_ns = world.container("ours"), world.container("ref")
    add(world, plugin_dir, make_conf(**keys), ours_ns)
    add(world, ref19, make_conf(**keys), ref_ns)
    ours, ref = tun_info(ours_ns), tun_info(ref_ns)
    assert {k: ours.get(k) for k in FLAG_KEYS} == {k: ref.get(k) for k in FLAG_KEYS}
    o, r = ours_ns.link("eth0"), ref_ns.link("eth0")
    assert (o["mtu"], o["flags"], o.get("master")) == (r["mtu"], r["flags"], r.get("master"))
    if "mac" in keys:
        assert o["address"] == r["address"] == keys["mac"]


def test_mtu_and_mac_with_owner_and_group_where_the_reference_ignores_them(
        world, plugin_dir, ref19, make_conf):
    keys = {"owner": 1000, "group": 1000, "mtu": 1400, "mac": "02:aa:bb:cc:dd:03"}
    ours_ns, ref_ns = world.container("ours"), world.container("ref")
    add(world, plugin_dir, make_conf(**keys), ours_ns)
    add(world, ref19, make_conf(**keys), ref_ns)
    assert (ours_ns.link("eth0")["mtu"], ours_ns.link("eth0")["address"]) == \
        (1400, "02:aa:bb:cc:dd:03")
    assert ref_ns.link("eth0")["mtu"] == 1500           # the reference's netlink path


def test_each_deletes_the_others_tap(world, plugin_dir, ref19, make_conf):
    """Switching implementations: a tap made by one is removed by the other."""
    for first, second in ((plugin_dir, ref19), (ref19, plugin_dir)):
        ctr = world.container("tapx")
        add(world, first, make_conf(), ctr)
        run = world.run_plugin(second, "tap", "DEL", make_conf(), ctr)
        assert run.ok, run.stdout
        assert link_names(ctr) == ["lo"]


def test_ioctl_struct_sizes():
    """The VM helpers above hand-pack struct ifreq like pycni.tuntap."""
    from pycni import tuntap
    assert struct.calcsize("=16sH22x") == 40 == len(tuntap.ifreq("x", 0))
