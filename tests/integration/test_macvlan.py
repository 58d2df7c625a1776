"""macvlan against the real kernel, exec'ed as a runtime execs it.

The world: the host namespace holds a veth end `mst0`, the master; its
peer `ext0` sits in an external namespace with 10.77.0.1/24, standing in
for the LAN. Containers get macvlans on mst0 and addresses from the
reference host-local (a private dataDir per test); spec 1.1.0 configs use
pycni's host-local, as the installed reference (v1.1.1) predates 1.1.0.
"""

import json
import os
import sys
import time

import pytest
from netns_world import delete_namespace

pytestmark = pytest.mark.netns

SUBNET = "10.77.0.0/24"
EXT_IP = "10.77.0.1"
MASTER = "mst0"
NET = "mvnet"

# ICMP echo from inside a namespace (the machine has no ping): exit 0 on a reply.
PING = r"""
import socket, struct, sys, time, os
dst, deadline = sys.argv[1], time.time() + float(sys.argv[2])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
ident = os.getpid() & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
seq = 0
while time.time() < deadline:
    seq += 1
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"pycni-ping"
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr), ident, seq) + b"pycni-ping", (dst, 0))
    s.settimeout(0.3)
    try:
        while True:
            data, addr = s.recvfrom(2048)
            icmp = data[(data[0] & 0xf) * 4:]
            if addr[0] == dst and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"""


def reaches(ns, dst: str, timeout: float = 3.0) -> bool:
    return ns.run(sys.executable, "-c", PING, dst, str(timeout), check=False).returncode == 0


@pytest.fixture
def cni_path(plugin_dir, ref_dir, tmp_path):
    """Our macvlan, then the reference plugins (host-local IPAM)."""
    ours = tmp_path / "bin"
    ours.mkdir()
    os.symlink(os.path.join(plugin_dir, "macvlan"), ours / "macvlan")
    return [str(ours), ref_dir]


@pytest.fixture
def cni_path_v11(plugin_dir, ref_dir):
    """Our macvlan and our host-local (spec 1.1.0: GC, STATUS)."""
    return [plugin_dir, ref_dir]


@pytest.fixture
def ref_path(ref_dir):
    return [ref_dir]


@pytest.fixture
def lan(world):
    """The host's master veth and the LAN namespace behind it."""
    ext = world.external("lan")
    world.host.run("ip", "link", "add", MASTER, "type", "veth", "peer", "name", "ext0")
    world.host.run("ip", "link", "set", "ext0", "netns", ext.name)
    world.host.run("ip", "link", "set", MASTER, "up")
    ext.run("ip", "addr", "add", f"{EXT_IP}/24", "dev", "ext0")
    ext.run("ip", "link", "set", "ext0", "up")
    return ext


@pytest.fixture
def make_conf(tmp_path):
    def make(version="1.0.0", ipam=True, **extra):
        conf = {"cniVersion": version, "name": NET, "type": "macvlan", "master": MASTER}
        if ipam:
            conf["ipam"] = {"type": "host-local", "subnet": SUBNET,
                            "rangeStart": "10.77.0.10", "dataDir": str(tmp_path / "ipam"),
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


def link_names(ns) -> list[str]:
    return sorted(link["ifname"] for link in ns.ip_json("link", "show"))


def add(world, path, conf, ctr, **kw):
    run = world.run_plugin(path, "macvlan", "ADD", conf, ctr, **kw)
    assert run.ok, run.stdout + run.stderr
    return run.json


def details(ns, name="eth0") -> dict:
    return ns.link(name)


# --- lifecycle ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(world, lan, cni_path, cni_path_v11, make_conf, tmp_path,
                           version):
    if version == "1.1.0":
        cni_path = cni_path_v11
    ctr = world.container("c1")
    conf = make_conf(version)
    result = add(world, cni_path, conf, ctr)

    link = details(ctr)
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    master_index = world.host.link(MASTER)["ifindex"]
    assert link["link_index"] == master_index
    assert "UP" in link["flags"]
    assert result["interfaces"] == [{"name": "eth0", "mac": link["address"],
                                     "sandbox": ctr.path}]
    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.10/24"]
    assert all(ip["interface"] == 0 for ip in result["ips"])
    assert "10.77.0.10/24" in ctr.addresses("eth0")
    default = ctr.ip_json("route", "show", "default")
    assert default and default[0]["gateway"] == EXT_IP
    assert ctr.run("cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").stdout.strip() == b"1"
    assert reserved(tmp_path) == ["10.77.0.10"]
    assert link_names(world.host) == ["lo", MASTER]      # nothing left on the host

    if version != "0.3.1":
        check = world.run_plugin(cni_path, "macvlan", "CHECK",
                                 dict(conf, prevResult=result), ctr)
        assert check.ok, check.stdout + check.stderr

    for _ in range(2):          # DEL is idempotent
        run = world.run_plugin(cni_path, "macvlan", "DEL", dict(conf, prevResult=result), ctr)
        assert run.ok, run.stdout + run.stderr
        assert link_names(ctr) == ["lo"]
        assert reserved(tmp_path) == []


def test_check_notices_changes(world, lan, cni_path, make_conf):
    ctr = world.container("c1")
    conf = make_conf()
    result = add(world, cni_path, conf, ctr)
    chk = dict(conf, prevResult=result)

    wrong_mode = world.run_plugin(cni_path, "macvlan", "CHECK", dict(chk, mode="private"), ctr)
    assert not wrong_mode.ok and "does not match expected value: private" in wrong_mode.stdout

    ctr.run("ip", "addr", "del", "10.77.0.10/24", "dev", "eth0")
    gone = world.run_plugin(cni_path, "macvlan", "CHECK", chk, ctr)
    assert not gone.ok and "Failed to match addr 10.77.0.10/24" in gone.stdout

    no_prev = world.run_plugin(cni_path, "macvlan", "CHECK", conf, ctr)
    assert no_prev.error_code() == 7 and "required prevResult missing" in no_prev.stdout


def test_del_with_vanished_or_empty_netns_releases_ipam(world, lan, cni_path, make_conf,
                                                        tmp_path):
    ctr = world.container("c1")
    conf = make_conf()
    add(world, cni_path, conf, ctr)
    path = ctr.path
    world.namespaces.remove(ctr)        # the container goes away before its DEL
    assert delete_namespace(ctr.name) is None
    run = world.run_plugin(cni_path, "macvlan", "DEL", conf, path)
    assert run.ok, run.stdout + run.stderr
    assert reserved(tmp_path) == []
    run = world.run_plugin(cni_path, "macvlan", "DEL", conf, None)   # CNI_NETNS=""
    assert run.ok, run.stdout + run.stderr


def test_l2_only_without_ipam(world, lan, cni_path, make_conf):
    ctr = world.container("c1")
    result = add(world, cni_path, make_conf(ipam=False), ctr)
    assert set(result) == {"cniVersion", "interfaces"}
    assert "UP" in details(ctr)["flags"]
    assert not [a for a in ctr.addresses("eth0") if not a.startswith("fe80:")]
    run = world.run_plugin(cni_path, "macvlan", "DEL", make_conf(ipam=False), ctr)
    assert run.ok and link_names(ctr) == ["lo"]


def test_dual_stack(world, lan, cni_path, make_conf, tmp_path):
    lan.run("ip", "addr", "add", "fd77::1/64", "dev", "ext0", "nodad")
    ctr = world.container("c1")
    conf = make_conf()
    conf["ipam"] = {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                    "ranges": [[{"subnet": SUBNET, "rangeStart": "10.77.0.10"}],
                               [{"subnet": "fd77::/64", "rangeStart": "fd77::10"}]]}
    result = add(world, cni_path, conf, ctr)
    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.10/24", "fd77::10/64"]
    on_link = ctr.addresses("eth0")
    assert "10.77.0.10/24" in on_link and "fd77::10/64" in on_link
    assert ctr.run("cat", "/proc/sys/net/ipv6/conf/eth0/ndisc_notify").stdout.strip() == b"1"
    check = world.run_plugin(cni_path, "macvlan", "CHECK", dict(conf, prevResult=result), ctr)
    assert check.ok, check.stdout + check.stderr
    assert world.run_plugin(cni_path, "macvlan", "DEL", conf, ctr).ok
    assert reserved(tmp_path) == []


# --- traffic ---------------------------------------------------------------------

def test_bridge_mode_containers_reach_the_lan_and_each_other(world, lan, cni_path,
                                                              make_conf):
    c1, c2 = world.container("c1"), world.container("c2")
    add(world, cni_path, make_conf(), c1, container_id="c1")
    add(world, cni_path, make_conf(), c2, container_id="c2")
    assert reaches(c1, EXT_IP)
    assert reaches(c2, EXT_IP)
    assert reaches(c1, "10.77.0.11")
    assert reaches(c2, "10.77.0.10")


def test_private_mode_isolates_containers(world, lan, cni_path, make_conf):
    c1, c2 = world.container("c1"), world.container("c2")
    add(world, cni_path, make_conf(mode="private"), c1, container_id="c1")
    add(world, cni_path, make_conf(mode="private"), c2, container_id="c2")
    assert details(c1)["linkinfo"]["info_data"]["mode"] == "private"
    assert reaches(c1, EXT_IP) and reaches(c2, EXT_IP)
    assert not reaches(c1, "10.77.0.11", timeout=1.5)


def test_addresses_are_announced_with_gratuitous_arp(world, lan, cni_path, make_conf):
    # The LAN learns the container's MAC without any traffic from it.
    lan.run("sysctl", "-qw", "net.ipv4.conf.all.arp_accept=1")
    lan.run("sysctl", "-qw", "net.ipv4.conf.ext0.arp_accept=1")
    ctr = world.container("c1")
    result = add(world, cni_path, make_conf(), ctr)
    mac = result["interfaces"][0]["mac"]
    for _ in range(20):
        neigh = lan.ip_json("neigh", "show", "dev", "ext0")
        if any(n.get("dst") == "10.77.0.10" and n.get("lladdr") == mac for n in neigh):
            return
        time.sleep(0.1)
    pytest.fail(f"no ARP entry for 10.77.0.10 at {mac} in the LAN: {neigh}")


def test_link_in_container(world, cni_path, make_conf):
    """The master (a veth to its own LAN) lives in the container namespace."""
    ctr, lan2 = world.container("c1"), world.external("lan2")
    ctr.run("ip", "link", "add", "inner0", "type", "veth", "peer", "name", "ext1")
    ctr.run("ip", "link", "set", "ext1", "netns", lan2.name)
    ctr.run("ip", "link", "set", "inner0", "up")
    lan2.run("ip", "addr", "add", f"{EXT_IP}/24", "dev", "ext1")
    lan2.run("ip", "link", "set", "ext1", "up")
    conf = make_conf(master="inner0", linkInContainer=True)
    result = add(world, cni_path, conf, ctr)
    link = details(ctr)
    assert link["link"] == "inner0" and link["linkinfo"]["info_kind"] == "macvlan"
    assert reaches(ctr, EXT_IP)
    assert world.run_plugin(cni_path, "macvlan", "CHECK", dict(conf, prevResult=result),
                            ctr).ok
    assert world.run_plugin(cni_path, "macvlan", "DEL", conf, ctr).ok
    assert link_names(ctr) == ["inner0", "lo"]


@pytest.mark.parametrize("how", ["mac", "runtimeConfig", "args", "CNI_ARGS"])
def test_requested_mac_is_applied(world, lan, cni_path, make_conf, how):
    mac = "02:aa:bb:cc:dd:0e"
    ctr = world.container("c1")
    conf, kw = make_conf(), {}
    if how == "mac":
        conf["mac"] = mac
    elif how == "runtimeConfig":
        conf["runtimeConfig"] = {"mac": mac}
    elif how == "args":
        conf["args"] = {"cni": {"mac": mac}}
    else:
        kw["args"] = f"IgnoreUnknown=1;MAC={mac}"
    result = add(world, cni_path, conf, ctr, **kw)
    assert details(ctr)["address"] == mac
    assert result["interfaces"][0]["mac"] == mac
    assert reaches(ctr, EXT_IP)


def test_mtu_and_bcqueuelen(world, lan, cni_path, make_conf):
    ctr = world.container("c1")
    add(world, cni_path, make_conf(mtu=1400, bcqueuelen=4000), ctr)
    link = details(ctr)
    assert link["mtu"] == 1400
    assert link["linkinfo"]["info_data"].get("bcqueuelen") == 4000


def test_master_defaults_to_the_default_route_interface(world, lan, cni_path, make_conf):
    world.host.run("ip", "route", "add", "default", "dev", MASTER)
    ctr = world.container("c1")
    conf = make_conf()
    del conf["master"]
    add(world, cni_path, conf, ctr)
    assert details(ctr)["link_index"] == world.host.link(MASTER)["ifindex"]


# --- errors leave nothing behind -------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"master": "nosuch0"}, 'failed to lookup master "nosuch0"'),
    ({"mode": "bogus"}, 'unknown macvlan mode: "bogus"'),
    ({"mtu": 9000}, "invalid MTU 9000, must be [0, master MTU(1500)]"),
    ({"mac": "01:00:5e:00:00:01"}, "invalid args 01:00:5e:00:00:01 for MAC addr"),
])
def test_config_errors(world, lan, cni_path, make_conf, tmp_path, change, message):
    ctr = world.container("c1")
    run = world.run_plugin(cni_path, "macvlan", "ADD", make_conf(**change), ctr)
    assert run.returncode == 1 and run.error_code() == 7, run.stdout
    assert message in run.json["msg"]
    assert link_names(ctr) == ["lo"]
    assert link_names(world.host) == ["lo", MASTER]
    assert reserved(tmp_path) == []


def test_no_default_route_and_no_master(world, lan, cni_path, make_conf):
    conf = make_conf()
    del conf["master"]
    run = world.run_plugin(cni_path, "macvlan", "ADD", conf, world.container("c1"))
    assert run.error_code() == 7 and run.json["msg"] == "no default route interface found"


def test_taken_ifname_fails_cleanly_and_del_spares_the_other_link(world, lan, cni_path,
                                                                  make_conf, tmp_path):
    ctr = world.container("c1")
    ctr.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    run = world.run_plugin(cni_path, "macvlan", "ADD", make_conf(), ctr)
    assert not run.ok and 'failed to rename macvlan to "eth0"' in run.json["msg"]
    assert link_names(ctr) == ["eth0", "lo", "other0"]
    assert reserved(tmp_path) == []
    assert world.run_plugin(cni_path, "macvlan", "DEL", make_conf(), ctr).ok
    assert link_names(ctr) == ["eth0", "lo", "other0"]


def test_ipam_failure_removes_the_link(world, lan, cni_path, make_conf):
    ctr = world.container("c1")
    conf = make_conf()
    conf["ipam"]["subnet"] = "not-a-subnet"
    run = world.run_plugin(cni_path, "macvlan", "ADD", conf, ctr)
    assert not run.ok
    assert link_names(ctr) == ["lo"]


def test_missing_netns(world, lan, cni_path, make_conf):
    run = world.run_plugin(cni_path, "macvlan", "ADD", make_conf(), "/run/netns/pycni-none")
    assert run.error_code() == 3


# --- STATUS and GC ----------------------------------------------------------------

def test_status_reports_the_master(world, lan, cni_path_v11, make_conf):
    cni_path = cni_path_v11
    conf = make_conf("1.1.0")
    ok = world.run_plugin(cni_path, "macvlan", "STATUS", conf)
    assert ok.ok, ok.stdout + ok.stderr
    world.host.run("ip", "link", "set", MASTER, "down")
    down = world.run_plugin(cni_path, "macvlan", "STATUS", conf)
    assert down.error_code() == 50 and "is down" in down.json["msg"]
    missing = world.run_plugin(cni_path, "macvlan", "STATUS", make_conf("1.1.0", master="x9"))
    assert missing.error_code() == 50 and "not found" in missing.json["msg"]
    old = world.run_plugin(cni_path, "macvlan", "STATUS", make_conf("1.0.0"))
    assert old.error_code() == 1


def test_gc_delegates_to_ipam(world, lan, cni_path_v11, make_conf, tmp_path):
    conf = make_conf("1.1.0")
    c1, c2 = world.container("c1"), world.container("c2")
    add(world, cni_path_v11, conf, c1, container_id="c1")
    add(world, cni_path_v11, conf, c2, container_id="c2")
    assert reserved(tmp_path) == ["10.77.0.10", "10.77.0.11"]
    keep = [{"containerID": "c2", "ifname": "eth0"}]
    gc = world.run_plugin(cni_path_v11, "macvlan", "GC",
                          dict(conf, **{"cni.dev/valid-attachments": keep}))
    assert gc.ok, gc.stdout + gc.stderr
    assert reserved(tmp_path) == ["10.77.0.11"]


# --- same answers as the reference ------------------------------------------------

def shape(result: dict) -> dict:
    """A result with per-run values (MACs, sandboxes, addresses) blanked."""
    text = json.dumps(result)
    out = json.loads(text)
    for intf in out.get("interfaces", []):
        intf["mac"] = intf["mac"] and "MAC"
        intf["sandbox"] = "NS"
    for ip in out.get("ips", []):
        ip["address"] = "ADDR"
    if not out.get("dns"):
        out.pop("dns", None)
    return out


@pytest.mark.parametrize("version", ["0.3.0", "0.4.0", "1.0.0"])
@pytest.mark.parametrize("ipam", [True, False])
def test_result_shape_matches_the_reference(world, lan, cni_path, ref_path, make_conf,
                                            version, ipam):
    conf = make_conf(version, ipam=ipam)
    ours = add(world, cni_path, conf, world.container("ours"), container_id="ours")
    ref = add(world, ref_path, conf, world.container("ref"), container_id="ref")
    assert shape(ours) == shape(ref)


def test_legacy_version_l2_error_like_the_reference(world, lan, cni_path, ref_path,
                                                   make_conf):
    conf = make_conf("0.2.0", ipam=False)
    ours = world.run_plugin(cni_path, "macvlan", "ADD", conf, world.container("ours"))
    ref = world.run_plugin(ref_path, "macvlan", "ADD", conf, world.container("ref"))
    assert not ours.ok and not ref.ok
    assert "cannot convert: no valid IP addresses" in ref.stdout
    assert "no valid IP addresses" in ours.stdout


# --- through cnitool (libcni-style runtime: conflist, capabilities, result cache) ---------

CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_through_cnitool(world, lan, cni_path, ref_path, tmp_path, impl):
    if not os.access(CNITOOL, os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"cnitool not installed next to {sys.executable}")
    path = os.pathsep.join(cni_path if impl == "ours" else ref_path)
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    mac = "02:aa:bb:cc:dd:01"
    (netconf / "20-mv.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": NET,
        "plugins": [{"type": "macvlan", "master": MASTER, "capabilities": {"mac": True},
                     "ipam": {"type": "host-local", "subnet": SUBNET,
                              "rangeStart": "10.77.0.10",
                              "dataDir": str(tmp_path / "ipam")}}]}))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": path,
           "CNI_CACHE_DIR": str(tmp_path / "cache"), "CAP_ARGS": json.dumps({"mac": mac})}

    def cnitool(*args):
        proc = world.host.run(CNITOOL, *args, check=False, env=env)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc

    ctr = world.container("c1")
    result = json.loads(cnitool("add", NET, ctr.path).stdout)
    assert result["interfaces"] == [{"name": "eth0", "mac": mac, "sandbox": ctr.path}]
    assert details(ctr)["address"] == mac
    assert reaches(ctr, EXT_IP)
    cnitool("check", NET, ctr.path)
    cnitool("del", NET, ctr.path)
    assert link_names(ctr) == ["lo"] and reserved(tmp_path) == []
    cnitool("del", NET, ctr.path)


@pytest.mark.parametrize("change", [{"mode": "bogus"}, {"mtu": 9000}])
def test_error_messages_match_the_reference(world, lan, cni_path, ref_path, make_conf,
                                            change):
    conf = make_conf(**change)
    ours = world.run_plugin(cni_path, "macvlan", "ADD", conf, world.container("ours"))
    ref = world.run_plugin(ref_path, "macvlan", "ADD", conf, world.container("ref"))
    assert (ours.returncode, ref.returncode) == (1, 1)
    assert ours.json["msg"] == ref.json["msg"]
    assert (ours.error_code(), ref.error_code()) == (7, 999)    # ours: invalid config
