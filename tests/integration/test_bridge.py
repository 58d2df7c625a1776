"""The bridge plugin against the real kernel, and next to the reference
bridge (Debian containernetworking-plugins 1.1.1, /usr/lib/cni/bridge).

IPAM is the reference host-local for now (CNI_PATH = a directory holding
only our bridge, then the reference directory), with its dataDir in the
test's tmp dir. Every plugin run happens inside the test's own "host"
namespace; traffic only flows between the test's namespaces.
"""

import json
import os
import re
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from netns_world import World, delete_namespace

NET = "bridgenet"
BRIDGE = "cnitest0"
SUBNET = "10.99.0.0/24"
GATEWAY = "10.99.0.1"
VETH_RE = re.compile(r"veth[0-9a-f]{8}\Z")
MAC_RE = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}\Z")


@pytest.fixture(scope="module")
def cni_path(plugin_dir, ref_dir, tmp_path_factory):
    """Our bridge first, the reference host-local behind it."""
    only_bridge = tmp_path_factory.mktemp("bridge-only")
    os.symlink(os.path.join(plugin_dir, "bridge"), only_bridge / "bridge")
    return [str(only_bridge), ref_dir]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "ipam")


def conf(data_dir: str | None, version: str = "1.0.0", ipam: dict | None = None, **keys) -> dict:
    c = {"cniVersion": version, "name": NET, "type": "bridge", "bridge": BRIDGE, **keys}
    if data_dir is not None:
        c["ipam"] = ipam or {"type": "host-local", "subnet": SUBNET, "dataDir": data_dir}
    return c


def ok(run) -> dict | None:
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    return run.json


def add(world, cni_path, config, ctr, cid="ctr1", **kw) -> dict:
    return ok(world.run_plugin(cni_path, "bridge", "ADD", config, ctr, container_id=cid, **kw))


def with_prev(config: dict, result: dict) -> dict:
    return {**config, "prevResult": result}


def host_links(world) -> list[dict]:
    return world.host.ip_json("-d", "link", "show")


def host_veths(world) -> list[str]:
    return [l["ifname"] for l in host_links(world) if l.get("linkinfo", {}).get("info_kind") == "veth"]


def allocations(data_dir: str) -> list[str]:
    d = os.path.join(data_dir, NET)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f[0].isdigit())


PING = textwrap.dedent("""
    import os, socket, struct, sys, time
    dst = sys.argv[1]
    def csum(b):
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff); s += s >> 16
        return ~s & 0xffff
    ident = os.getpid() & 0xffff
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"pycni"
    pkt = body[:2] + struct.pack("!H", csum(body + b"\\0")) + body[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.5)
    for _ in range(10):
        s.sendto(pkt, (dst, 0))
        try:
            end = time.time() + 0.5
            while time.time() < end:
                data, addr = s.recvfrom(2048)
                hl = (data[0] & 0x0f) * 4
                if addr[0] == dst and data[hl] == 0 and struct.unpack("!H", data[hl+4:hl+6])[0] == ident:
                    sys.exit(0)
        except socket.timeout:
            pass
    sys.exit(1)
""")


def pings(ns, dst: str) -> bool:
    return ns.run(sys.executable, "-c", PING, dst, check=False).returncode == 0


def ip_of(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


# ------------------------------------------------------------------ ADD / traffic

def test_two_containers_reach_each_other_and_the_gateway(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    cfg = conf(data_dir, isGateway=True)
    r1 = add(world, cni_path, cfg, c1, "ctr1")
    r2 = add(world, cni_path, cfg, c2, "ctr2")
    assert ip_of(r1) != ip_of(r2)
    assert pings(c1, ip_of(r2)) and pings(c2, ip_of(r1))
    assert pings(c1, GATEWAY)
    assert f"{GATEWAY}/24" in world.host.addresses(BRIDGE)
    assert world.host.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == b"1"


def test_add_result_shape(world, cni_path, data_dir):
    c1 = world.container("c1")
    r = add(world, cni_path, conf(data_dir, isGateway=True), c1)
    br, host, cont = r["interfaces"]
    assert br["name"] == BRIDGE and "sandbox" not in br
    assert VETH_RE.match(host["name"]) and "sandbox" not in host
    assert cont == {"name": "eth0", "mac": c1.link("eth0")["address"], "sandbox": c1.path}
    assert br["mac"] == world.host.link(BRIDGE)["address"]
    assert host["mac"] == world.host.link(host["name"])["address"]
    assert r["ips"] == [{"interface": 2, "address": "10.99.0.2/24", "gateway": GATEWAY}]
    assert "routes" not in r and "dns" not in r
    assert c1.addresses("eth0")[0] == "10.99.0.2/24"
    hv = world.host.link(host["name"])
    assert hv["master"] == BRIDGE and hv["operstate"] == "UP"
    assert world.host.run("cat", f"/proc/sys/net/ipv6/conf/{host['name']}/accept_ra").stdout.strip() == b"0"
    assert world.host.run("cat", f"/proc/sys/net/ipv6/conf/{BRIDGE}/accept_ra").stdout.strip() == b"0"
    assert c1.run("cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").stdout.strip() == b"1"
    assert c1.run("cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad").stdout.strip() == b"0"


def test_result_in_old_versions(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    r = add(world, cni_path, conf(data_dir, version="0.3.1"), c1, "a")
    assert r["ips"][0]["version"] == "4" and r["dns"] == {}
    r = add(world, cni_path, conf(data_dir, version="0.2.0", isDefaultGateway=True), c2, "b")
    assert r["ip4"] == {"ip": "10.99.0.3/24", "gateway": GATEWAY,
                        "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}]}


def test_config_dns_overrides_ipam_dns(world, cni_path, data_dir):
    c1 = world.container("c1")
    dns = {"nameservers": ["10.99.0.53"], "search": ["example.test"]}
    r = add(world, cni_path, conf(data_dir, dns=dns), c1)
    assert r["dns"] == dns


def test_is_default_gateway(world, cni_path, data_dir):
    c1 = world.container("c1")
    r = add(world, cni_path, conf(data_dir, isDefaultGateway=True), c1)
    assert r["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}]
    routes = c1.ip_json("route", "show", "default")
    assert [(x["dst"], x["gateway"], x["dev"]) for x in routes] == [("default", GATEWAY, "eth0")]
    assert f"{GATEWAY}/24" in world.host.addresses(BRIDGE)


def test_dual_stack(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    ipam = {"type": "host-local", "dataDir": data_dir,
            "ranges": [[{"subnet": SUBNET}], [{"subnet": "fd99::/64"}]]}
    cfg = conf(data_dir, ipam=ipam, isDefaultGateway=True)
    r1 = add(world, cni_path, cfg, c1, "a")
    add(world, cni_path, cfg, c2, "b")
    assert [i["address"] for i in r1["ips"]] == ["10.99.0.2/24", "fd99::2/64"]
    assert [i["gateway"] for i in r1["ips"]] == [GATEWAY, "fd99::1"]
    assert r1["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}, {"dst": "::/0", "gw": "fd99::1"}]
    assert "fd99::1/64" in world.host.addresses(BRIDGE)
    assert "fd99::2/64" in c1.addresses("eth0")
    assert world.host.run("cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == b"1"
    assert pings(c2, "10.99.0.2")


def test_mtu(world, cni_path, data_dir):
    c1 = world.container("c1")
    r = add(world, cni_path, conf(data_dir, mtu=1400), c1)
    assert world.host.link(BRIDGE)["mtu"] == 1400
    assert world.host.link(r["interfaces"][1]["name"])["mtu"] == 1400
    assert c1.link("eth0")["mtu"] == 1400


def test_hairpin_and_port_isolation(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    r1 = add(world, cni_path, conf(data_dir, hairpinMode=True, portIsolation=True), c1, "a")
    r2 = add(world, cni_path, conf(data_dir), c2, "b")
    port1 = world.host.link(r1["interfaces"][1]["name"])["linkinfo"]["info_slave_data"]
    port2 = world.host.link(r2["interfaces"][1]["name"])["linkinfo"]["info_slave_data"]
    assert port1["hairpin"] is True and port1["isolated"] is True
    assert port2["hairpin"] is False and port2["isolated"] is False


def test_promisc(world, cni_path, data_dir):
    c1 = world.container("c1")
    cfg = conf(data_dir, promiscMode=True)
    r = add(world, cni_path, cfg, c1)
    assert "PROMISC" in world.host.link(BRIDGE)["flags"]
    ok(world.run_plugin(cni_path, "bridge", "CHECK", with_prev(cfg, r), c1))
    # CHECK compares the bridge's promiscuity with the config
    run = world.run_plugin(cni_path, "bridge", "CHECK", with_prev(conf(data_dir), r), c1)
    assert run.returncode != 0 and "Promisc Mode false doesn't match current state: true" in run.stdout


def test_hairpin_with_promisc_is_refused_without_state(world, cni_path, data_dir):
    c1 = world.container("c1")
    run = world.run_plugin(cni_path, "bridge", "ADD",
                           conf(data_dir, hairpinMode=True, promiscMode=True), c1)
    assert run.error_code() == 7
    assert run.json["msg"] == "cannot set hairpin mode and promiscuous mode at the same time"
    assert world.host.link(BRIDGE) is None and allocations(data_dir) == []


@pytest.mark.parametrize("keys,name", [({"vlan": 5}, "vlan"), ({"vlanTrunk": [{"id": 5}]}, "vlanTrunk")])
def test_not_yet_supported_keys_are_refused_without_state(world, cni_path, data_dir, keys, name):
    c1 = world.container("c1")
    run = world.run_plugin(cni_path, "bridge", "ADD", conf(data_dir, **keys), c1)
    assert run.error_code() == 2 and name in run.json["msg"]
    assert world.host.link(BRIDGE) is None and allocations(data_dir) == []


def test_container_mac(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    r = add(world, cni_path, conf(data_dir, runtimeConfig={"mac": "02:00:00:AA:BB:01"}), c1, "a",
            args="IgnoreUnknown=1;MAC=02:00:00:aa:bb:99")
    assert r["interfaces"][2]["mac"] == "02:00:00:aa:bb:01" == c1.link("eth0")["address"]
    r = add(world, cni_path, conf(data_dir), c2, "b", args="IgnoreUnknown=1;MAC=02:00:00:aa:bb:02")
    assert c2.link("eth0")["address"] == "02:00:00:aa:bb:02"


# ------------------------------------------------------------------ L2 mode

def test_l2_mode(world, cni_path):
    c1, c2 = world.container("c1"), world.container("c2")
    cfg = conf(None)
    r = add(world, cni_path, cfg, c1, "a")
    add(world, cni_path, cfg, c2, "b")
    assert set(r) == {"cniVersion", "interfaces"} and len(r["interfaces"]) == 3
    assert c1.link("eth0")["operstate"] == "UP"
    assert [a for a in c1.addresses("eth0") if not a.startswith("fe80")] == []
    # L2 works: give both ends addresses by hand and talk
    c1.run("ip", "addr", "add", "192.168.77.1/24", "dev", "eth0")
    c2.run("ip", "addr", "add", "192.168.77.2/24", "dev", "eth0")
    assert pings(c1, "192.168.77.2")
    ok(world.run_plugin(cni_path, "bridge", "CHECK", with_prev(cfg, r), c1, container_id="a"))
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), c1, container_id="a"))
    assert c1.link("eth0") is None


def test_l2_disable_container_interface(world, cni_path):
    c1 = world.container("c1")
    r = add(world, cni_path, conf(None, disableContainerInterface=True), c1)
    assert "UP" not in c1.link("eth0")["flags"]
    assert world.host.link(r["interfaces"][1]["name"])["master"] == BRIDGE


def test_status_without_ipam(world, cni_path):
    ok(world.run_plugin(cni_path, "bridge", "STATUS", conf(None, version="1.1.0"), None))


# ------------------------------------------------------------------ CHECK / DEL

def test_add_check_del_del(world, cni_path, data_dir):
    c1 = world.container("c1")
    cfg = conf(data_dir, isDefaultGateway=True)
    r = add(world, cni_path, cfg, c1)
    assert allocations(data_dir) == ["10.99.0.2"]
    ok(world.run_plugin(cni_path, "bridge", "CHECK", with_prev(cfg, r), c1))
    for _ in range(2):
        ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), c1))
        assert c1.link("eth0") is None and host_veths(world) == []
        assert allocations(data_dir) == []
    assert world.host.link(BRIDGE) is not None     # the bridge stays


def test_check_without_prev_result(world, cni_path, data_dir):
    c1 = world.container("c1")
    cfg = conf(data_dir)
    add(world, cni_path, cfg, c1)
    run = world.run_plugin(cni_path, "bridge", "CHECK", cfg, c1)
    assert run.returncode != 0 and run.json["msg"] == "Required prevResult missing"


@pytest.mark.parametrize("damage,message", [
    (lambda w, c, r: c.run("ip", "addr", "del", "10.99.0.2/24", "dev", "eth0"),
     "Failed to match addr 10.99.0.2/24 on interface eth0"),
    (lambda w, c, r: c.run("ip", "route", "del", "default"), "Expected Route"),
    (lambda w, c, r: w.host.run("ip", "link", "set", r["interfaces"][1]["name"], "nomaster"),
     f"CNI veth created for bridge {BRIDGE} was not found"),
    (lambda w, c, r: c.run("ip", "link", "set", "eth0", "address", "02:00:00:00:00:42"),
     "doesn't match container Mac"),
    (lambda w, c, r: w.host.run("ip", "link", "del", BRIDGE), f"Interface name {BRIDGE} not found"),
])
def test_check_finds_damage(world, cni_path, ref_dir, data_dir, damage, message):
    c1 = world.container("c1")
    cfg = conf(data_dir, isDefaultGateway=True)
    r = add(world, cni_path, cfg, c1)
    damage(world, c1, r)
    run = world.run_plugin(cni_path, "bridge", "CHECK", with_prev(cfg, r), c1)
    assert run.returncode != 0 and message in run.json["msg"], run.stdout
    ref = world.run_plugin([ref_dir], "bridge", "CHECK", with_prev(cfg, r), c1)
    assert ref.returncode != 0
    if not message.startswith("Expected Route"):   # Go prints the route struct raw
        assert ref.json["msg"] == run.json["msg"]


def test_del_with_vanished_netns(world, cni_path, data_dir):
    c1 = world.container("c1")
    cfg = conf(data_dir)
    r = add(world, cni_path, cfg, c1)
    path = c1.path
    assert delete_namespace(c1.name) is None
    world.namespaces.remove(c1)
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), path))
    assert allocations(data_dir) == [] and host_veths(world) == []


def test_del_with_empty_netns_releases_ipam(world, cni_path, data_dir):
    c1 = world.container("c1")
    cfg = conf(data_dir)
    add(world, cni_path, cfg, c1)
    ok(world.run_plugin(cni_path, "bridge", "DEL", cfg, None))
    assert allocations(data_dir) == []


def test_del_without_anything_to_delete(world, cni_path, data_dir):
    c1 = world.container("c1")
    ok(world.run_plugin(cni_path, "bridge", "DEL", conf(data_dir), c1))
    ok(world.run_plugin(cni_path, "bridge", "DEL", conf(None), c1))


# ------------------------------------------------------------------ failures leave nothing

def test_exhausted_range_leaves_no_veth(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    ipam = {"type": "host-local", "dataDir": data_dir,
            "ranges": [[{"subnet": SUBNET, "rangeStart": "10.99.0.5", "rangeEnd": "10.99.0.5"}]]}
    cfg = conf(data_dir, ipam=ipam)
    add(world, cni_path, cfg, c1, "a")
    run = world.run_plugin(cni_path, "bridge", "ADD", cfg, c2, container_id="b")
    assert run.returncode != 0 and "no IP addresses available" in run.stdout
    assert c2.link("eth0") is None and len(host_veths(world)) == 1
    assert allocations(data_dir) == ["10.99.0.5"]


def test_failure_after_ipam_releases_the_address(world, cni_path, data_dir):
    """A gateway address clash fails ADD after IPAM: allocation and veth go."""
    c1 = world.container("c1")
    world.host.run("ip", "link", "add", BRIDGE, "type", "bridge")
    world.host.run("ip", "addr", "add", "10.50.0.1/16", "dev", BRIDGE)
    run = world.run_plugin(cni_path, "bridge", "ADD", conf(data_dir, isGateway=True), c1)
    assert run.returncode != 0
    assert f'"{BRIDGE}" already has an IP address different from {GATEWAY}/24' in run.json["msg"]
    assert c1.link("eth0") is None and host_veths(world) == [] and allocations(data_dir) == []
    # forceAddress replaces the clashing address
    add(world, cni_path, conf(data_dir, isGateway=True, forceAddress=True), c1)
    assert world.host.addresses(BRIDGE) == [f"{GATEWAY}/24"] or \
        [a for a in world.host.addresses(BRIDGE) if not a.startswith("fe80")] == [f"{GATEWAY}/24"]


def test_existing_non_bridge_link(world, cni_path, data_dir):
    c1 = world.container("c1")
    world.host.run("ip", "link", "add", BRIDGE, "type", "veth", "peer", "name", "other0")
    run = world.run_plugin(cni_path, "bridge", "ADD", conf(data_dir), c1)
    assert run.returncode != 0 and "already exists but is not a bridge" in run.json["msg"]
    assert allocations(data_dir) == [] and c1.link("eth0") is None


def test_existing_container_ifname(world, cni_path, data_dir):
    c1 = world.container("c1")
    c1.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
    run = world.run_plugin(cni_path, "bridge", "ADD", conf(data_dir), c1)
    assert run.returncode != 0 and "already exists" in run.json["msg"]
    assert allocations(data_dir) == [] and host_veths(world) == []


def test_missing_netns(world, cni_path, data_dir):
    run = world.run_plugin(cni_path, "bridge", "ADD", conf(data_dir), "/run/netns/pycni-no-such-ns")
    assert run.error_code() == 3
    assert world.host.link(BRIDGE) is None and allocations(data_dir) == []


# ------------------------------------------------------------------ concurrency

def test_parallel_adds_and_dels(world, cni_path, data_dir):
    n = 20
    ctrs = [world.container(f"p{i}") for i in range(n)]
    cfg = conf(data_dir, isGateway=True)
    assert world.host    # create it now: World.host is not thread-safe

    def run(command, i, result=None):
        c = with_prev(cfg, result) if result else cfg
        return world.run_plugin(cni_path, "bridge", command, c, ctrs[i], container_id=f"par{i}")

    with ThreadPoolExecutor(n) as pool:
        adds = list(pool.map(lambda i: run("ADD", i), range(n)))
    results = [ok(a) for a in adds]
    assert len({ip_of(r) for r in results}) == n
    assert len(set(host_veths(world))) == n
    assert all(world.host.link(v)["master"] == BRIDGE for v in host_veths(world))
    assert pings(ctrs[0], ip_of(results[-1]))
    with ThreadPoolExecutor(n) as pool:
        dels = list(pool.map(lambda i: run("DEL", i, results[i]), range(n)))
    for d in dels:
        ok(d)
    assert host_veths(world) == [] and allocations(data_dir) == []


# ------------------------------------------------------------------ against the reference

def normalise(result: dict) -> dict:
    """Replace what is random per run (veth name, MACs, netns path). The
    reference (libcni 1.1) prints an empty `dns` in 1.0.0 results, which
    the spec and newer libcni omit."""
    if result.get("cniVersion", "").startswith("1.") and result.get("dns") == {}:
        del result["dns"]
    text = json.dumps(result)
    for intf in result["interfaces"]:
        if VETH_RE.match(intf["name"]):
            text = text.replace(intf["name"], "VETH")
        if "mac" in intf:
            assert MAC_RE.match(intf["mac"])
            text = text.replace(intf["mac"], "MAC")
        if "sandbox" in intf:
            text = text.replace(intf["sandbox"], "SANDBOX")
    return json.loads(text)


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
@pytest.mark.parametrize("keys", [
    {}, {"isGateway": True}, {"isDefaultGateway": True, "mtu": 1400},
    {"dns": {"nameservers": ["10.99.0.53"]}}, {"hairpinMode": True}, {"promiscMode": True},
    {"isDefaultGateway": True, "ipam": "dual"}, {"runtimeConfig": {"mac": "02:00:00:00:00:07"}},
    "l2"])
def test_same_result_as_reference(world, cni_path, ref_dir, tmp_path, version, keys):
    results = {}
    for impl, path in (("ours", cni_path), ("ref", [ref_dir])):
        with World(f"cmp-{impl}") as w:
            c = w.container("c")
            data = None if keys == "l2" else str(tmp_path / impl)
            extra = {} if keys == "l2" else dict(keys)
            if extra.get("ipam") == "dual":
                extra["ipam"] = {"type": "host-local", "dataDir": data,
                                 "ranges": [[{"subnet": SUBNET}], [{"subnet": "fd99::/64"}]]}
            cfg = conf(data, version=version, **extra)
            results[impl] = add(w, path, cfg, c)
            ok(w.run_plugin(path, "bridge", "DEL", with_prev(cfg, results[impl]), c))
    assert normalise(results["ours"]) == normalise(results["ref"])


# ------------------------------------------------------------------ ipMasq (iptables)

def nat_rules(ns) -> list[str]:
    out = ns.run("iptables-save", "-t", "nat").stdout.decode()
    return [l for l in out.splitlines() if l.startswith(("-A", ":CNI-"))]


def chain_of(cid: str) -> str:
    import hashlib
    return ("CNI-" + hashlib.sha512((NET + cid).encode()).hexdigest())[:28]


def test_ipmasq_rules_like_the_reference(world, cni_path, ref_dir, tmp_path):
    rules = {}
    for impl, path in (("ours", cni_path), ("ref", [ref_dir])):
        with World(f"masq-{impl}") as w:
            c = w.container("c")
            cfg = conf(str(tmp_path / impl), isGateway=True, ipMasq=True)
            r = add(w, path, cfg, c, "masq1")
            rules[impl] = nat_rules(w.host)
            ok(w.run_plugin(path, "bridge", "DEL", with_prev(cfg, r), c, container_id="masq1"))
            assert nat_rules(w.host) == []
    chain = chain_of("masq1")
    note = '-m comment --comment "name: \\"bridgenet\\" id: \\"masq1\\""'
    assert rules["ours"] == rules["ref"] == [
        f":{chain} - [0:0]",
        f"-A POSTROUTING -s 10.99.0.2/32 {note} -j {chain}",
        f"-A {chain} -d 10.99.0.0/24 {note} -j ACCEPT",
        f"-A {chain} ! -d 224.0.0.0/4 {note} -j MASQUERADE",
    ]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipmasq_masquerades_to_an_outside_network(world, cni_path, data_dir, backend):
    c1 = world.container("c1")
    ext = world.external("ext")
    world.host.run("ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0",
                   "netns", ext.name)
    world.host.run("ip", "addr", "add", "192.168.200.1/24", "dev", "uplink")
    world.host.run("ip", "link", "set", "uplink", "up")
    ext.run("ip", "addr", "add", "192.168.200.2/24", "dev", "eth0")
    ext.run("ip", "link", "set", "eth0", "up")      # ext has no route back to 10.99/24
    add(world, cni_path, conf(data_dir, isDefaultGateway=True), c1, "plain")
    assert not pings(c1, "192.168.200.2")
    c2 = world.container("c2")
    cfg = conf(data_dir, isDefaultGateway=True, ipMasq=True, ipMasqBackend=backend)
    r = add(world, cni_path, cfg, c2, "masq")
    assert pings(c2, "192.168.200.2")
    assert (nat_rules(world.host) != []) == (backend == "iptables")
    assert (nft_masq_rules(world.host) != []) == (backend == "nftables")
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), c2, container_id="masq"))
    assert nat_rules(world.host) == [] and nft_masq_rules(world.host) == []


def nft_masq_rules(ns) -> list[str]:
    proc = ns.run("nft", "-j", "list", "table", "inet", "cni_plugins_masquerade", check=False)
    if proc.returncode != 0:
        return []
    return [i["rule"]["comment"] for i in json.loads(proc.stdout)["nftables"]
            if "rule" in i and i["rule"]["chain"] == "masq_checks"]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipmasq_removed_on_del_with_vanished_netns(world, cni_path, data_dir, backend):
    c1 = world.container("c1")
    cfg = conf(data_dir, isGateway=True, ipMasq=True, ipMasqBackend=backend)
    r = add(world, cni_path, cfg, c1, "gone")
    assert nat_rules(world.host) or nft_masq_rules(world.host)
    path = c1.path
    assert delete_namespace(c1.name) is None
    world.namespaces.remove(c1)
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), path, container_id="gone"))
    assert nat_rules(world.host) == [] and nft_masq_rules(world.host) == []
    assert allocations(data_dir) == []
    # also without prevResult and netns: both families are searched
    r = add(world, cni_path, cfg, world.container("c2"), "gone2")
    ok(world.run_plugin(cni_path, "bridge", "DEL", cfg, None, container_id="gone2"))
    assert nat_rules(world.host) == [] and nft_masq_rules(world.host) == []


def test_gc_removes_masquerading_of_unlisted_attachments(world, cni_path, data_dir, tmp_path):
    for cid, backend in (("keep4", "iptables"), ("gone4", "iptables"),
                         ("keep6", "nftables"), ("gone6", "nftables")):
        add(world, cni_path, conf(data_dir, ipMasq=True, ipMasqBackend=backend),
            world.container(cid), cid)
    assert len(nat_rules(world.host)) == 8 and len(nft_masq_rules(world.host)) == 2
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir()
    (fake_dir / "fake-ipam").write_text("#!/bin/sh\ncat >/dev/null\n")
    (fake_dir / "fake-ipam").chmod(0o755)
    gc = {**conf(None, version="1.1.0"), "ipam": {"type": "fake-ipam"},
          "cni.dev/valid-attachments": [{"containerID": "keep4", "ifname": "eth0"},
                                        {"containerID": "keep6", "ifname": "eth0"}]}
    ok(world.run_plugin(cni_path + [str(fake_dir)], "bridge", "GC", gc, None))
    assert {l for l in nat_rules(world.host) if l.startswith(":")} == {f":{chain_of('keep4')} - [0:0]"}
    assert [c.split(", id: ")[1] for c in nft_masq_rules(world.host)] == ["keep6"]


def test_ipmasq_readd_does_not_duplicate(world, cni_path, data_dir):
    c1 = world.container("c1")
    cfg = conf(data_dir, ipMasq=True)
    add(world, cni_path, cfg, c1, "dup")
    before = nat_rules(world.host)
    c2 = world.container("c2")        # same container ID, same network (a runtime bug)
    ipam = {"type": "host-local", "dataDir": data_dir + "2", "subnet": SUBNET}
    add(world, cni_path, conf(data_dir, ipMasq=True, ipam=ipam), c2, "dup")
    assert len(nat_rules(world.host)) == len(before)


def test_failed_add_with_ipmasq_leaves_no_rules(world, cni_path, data_dir):
    c1 = world.container("c1")
    world.host.run("ip", "link", "add", BRIDGE, "type", "bridge")
    world.host.run("ip", "addr", "add", "10.50.0.1/16", "dev", BRIDGE)
    run = world.run_plugin(cni_path, "bridge", "ADD",
                           conf(data_dir, isGateway=True, ipMasq=True), c1)
    assert run.returncode != 0
    assert nat_rules(world.host) == [] and allocations(data_dir) == []


# ------------------------------------------------------------------ STATUS / GC delegation

def test_status_and_gc_are_delegated_to_ipam(world, cni_path, tmp_path):
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir()
    log = tmp_path / "ipam.log"
    script = fake_dir / "fake-ipam"
    script.write_text('#!/bin/sh\ncat >/dev/null\necho "$CNI_COMMAND" >> "$FAKE_IPAM_LOG"\n')
    script.chmod(0o755)
    path = cni_path + [str(fake_dir)]
    cfg = conf("unused", version="1.1.0", ipam={"type": "fake-ipam"})
    extra = {"FAKE_IPAM_LOG": str(log)}
    ok(world.run_plugin(path, "bridge", "STATUS", cfg, None, extra=extra))
    gc = {**cfg, "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]}
    ok(world.run_plugin(path, "bridge", "GC", gc, None, extra=extra))
    assert log.read_text().split() == ["STATUS", "GC"]


# ------------------------------------------------------------------ macspoofchk

def nft_table(ns) -> list[dict]:
    """`table bridge nat` without handles and metainfo ([] if absent)."""
    proc = ns.run("nft", "-j", "list", "table", "bridge", "nat", check=False)
    if proc.returncode != 0:
        return []
    items = []
    for item in json.loads(proc.stdout)["nftables"]:
        if "metainfo" in item:
            continue
        body = dict(next(iter(item.values())))
        body.pop("handle", None)
        items.append({next(iter(item)): body})
    return items


def change_mac_and_ping(c1, c2, r2) -> bool:
    assert pings(c1, ip_of(r2))
    c1.run("ip", "link", "set", "eth0", "address", "02:00:00:00:66:66")
    c2.run("ip", "neigh", "flush", "dev", "eth0")
    return pings(c1, ip_of(r2))


def test_without_macspoofchk_a_changed_mac_still_talks(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    add(world, cni_path, conf(data_dir), c1, "a")
    r2 = add(world, cni_path, conf(data_dir), c2, "b")
    assert change_mac_and_ping(c1, c2, r2)


def test_macspoofchk_drops_foreign_source_macs(world, cni_path, data_dir):
    c1, c2 = world.container("c1"), world.container("c2")
    cfg = conf(data_dir, macspoofchk=True)
    r1 = add(world, cni_path, cfg, c1, "a")
    r2 = add(world, cni_path, cfg, c2, "b")
    assert not change_mac_and_ping(c1, c2, r2)
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r1), c1, container_id="a"))
    chains = [i["chain"]["name"] for i in nft_table(world.host) if "chain" in i]
    assert chains == ["PREROUTING", "cni-br-iface-b-eth0", "cni-br-iface-b-eth0-mac"]
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r2), c2, container_id="b"))
    assert nft_table(world.host) == [{"table": {"family": "bridge", "name": "nat"}},
                                     {"chain": {"family": "bridge", "table": "nat",
                                                "name": "PREROUTING", "type": "filter",
                                                "hook": "prerouting", "prio": -300,
                                                "policy": "accept"}}]


def test_macspoofchk_rules_like_the_reference(world, cni_path, ref_dir, tmp_path):
    tables = {}
    for impl, path in (("ours", cni_path), ("ref", [ref_dir])):
        with World(f"spoof-{impl}") as w:
            c = w.container("c")
            cfg = conf(str(tmp_path / impl), macspoofchk=True)
            r = add(w, path, cfg, c, "spoof1")
            host_veth, mac = r["interfaces"][1]["name"], r["interfaces"][2]["mac"]
            text = json.dumps(nft_table(w.host)).replace(host_veth, "VETH").replace(mac, "MAC")
            tables[impl] = json.loads(text)
    assert tables["ours"] == tables["ref"]


def test_macspoofchk_removed_on_failed_add_and_vanished_netns(world, cni_path, data_dir):
    c1 = world.container("c1")
    world.host.run("ip", "link", "add", BRIDGE, "type", "bridge")
    world.host.run("ip", "addr", "add", "10.50.0.1/16", "dev", BRIDGE)
    run = world.run_plugin(cni_path, "bridge", "ADD",
                           conf(data_dir, isGateway=True, macspoofchk=True), c1)
    assert run.returncode != 0
    assert [i for i in nft_table(world.host) if "rule" in i] == []
    cfg = conf(data_dir, macspoofchk=True)
    r = add(world, cni_path, cfg, c1, "gone")
    assert [i for i in nft_table(world.host) if "rule" in i] != []
    assert delete_namespace(c1.name) is None
    world.namespaces.remove(c1)
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), c1.path, container_id="gone"))
    assert [i for i in nft_table(world.host) if "rule" in i] == []


def test_enabledad(world, cni_path, data_dir):
    c1 = world.container("c1")
    ipam = {"type": "host-local", "dataDir": data_dir,
            "ranges": [[{"subnet": SUBNET}], [{"subnet": "fd99::/64"}]]}
    r = add(world, cni_path, conf(data_dir, ipam=ipam, isDefaultGateway=True, enabledad=True), c1)
    def sysctl(key):
        return c1.run("cat", f"/proc/sys/net/ipv6/conf/eth0/{key}").stdout.strip()
    assert sysctl("accept_dad") == b"1" and sysctl("enhanced_dad") == b"1"
    assert "fd99::2/64" in c1.addresses("eth0")
    assert {"dst": "::/0", "gw": "fd99::1"} in r["routes"]


@pytest.mark.parametrize("keys", [{"hairpinMode": True, "promiscMode": True}, {"vlan": 5000}])
def test_same_errors_as_reference(world, cni_path, ref_dir, data_dir, keys):
    """(1.1.1 has no vlanTrunk; its messages are unit-tested against newer
    reference code. 1.1.1 ends the hairpin message with a period, newer
    versions do not.)"""
    c1 = world.container("c1")
    ours = world.run_plugin(cni_path, "bridge", "ADD", conf(data_dir, **keys), c1)
    ref = world.run_plugin([ref_dir], "bridge", "ADD", conf(data_dir, **keys), c1)
    assert ours.returncode == ref.returncode == 1
    assert ours.json["msg"] == ref.json["msg"].rstrip(".")
    assert ours.error_code() == 7       # the reference says 999 (plain Go error)


@pytest.mark.parametrize("first,second", [("ours", "ref"), ("ref", "ours")])
def test_interop_with_the_reference(world, cni_path, ref_dir, data_dir, first, second):
    """One implementation ADDs, the other CHECKs and DELs (an upgrade or a
    downgrade between ADD and DEL): state and names must be the same."""
    paths = {"ours": cni_path, "ref": [ref_dir]}
    c1 = world.container("c1")
    cfg = conf(data_dir, isDefaultGateway=True, ipMasq=True, macspoofchk=True)
    r = add(world, paths[first], cfg, c1, "inter")
    assert nat_rules(world.host) and [i for i in nft_table(world.host) if "rule" in i]
    ok(world.run_plugin(paths[second], "bridge", "CHECK", with_prev(cfg, r), c1,
                        container_id="inter"))
    ok(world.run_plugin(paths[second], "bridge", "DEL", with_prev(cfg, r), c1,
                        container_id="inter"))
    assert c1.link("eth0") is None and host_veths(world) == [] and allocations(data_dir) == []
    assert nat_rules(world.host) == [] and [i for i in nft_table(world.host) if "rule" in i] == []


# ------------------------------------------------------------------ with our own host-local

def test_lifecycle_1_1_0_with_pycni_host_local(world, plugin_dir, data_dir):
    """ADD/CHECK/STATUS/GC/DEL in spec 1.1.0 with pycni's own host-local
    (the reference 1.1.1 host-local speaks neither 1.1.0 nor GC)."""
    path = [plugin_dir]
    c1, c2 = world.container("c1"), world.container("c2")
    cfg = conf(data_dir, version="1.1.0", isDefaultGateway=True, ipMasq=True)
    r1 = add(world, path, cfg, c1, "keep")
    add(world, path, cfg, c2, "stale")
    assert allocations(data_dir) == ["10.99.0.2", "10.99.0.3"]
    ok(world.run_plugin(path, "bridge", "CHECK", with_prev(cfg, r1), c1, container_id="keep"))
    ok(world.run_plugin(path, "bridge", "STATUS", cfg, None))
    gc = {**cfg, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    ok(world.run_plugin(path, "bridge", "GC", gc, None))
    assert allocations(data_dir) == ["10.99.0.2"]
    assert {l for l in nat_rules(world.host) if l.startswith(":")} == {f":{chain_of('keep')} - [0:0]"}
    ok(world.run_plugin(path, "bridge", "DEL", with_prev(cfg, r1), c1, container_id="keep"))
    assert allocations(data_dir) == [] and nat_rules(world.host) == []


def test_l2_in_a_legacy_version_fails_without_leftovers(world, cni_path):
    c1 = world.container("c1")
    run = world.run_plugin(cni_path, "bridge", "ADD", conf(None, version="0.2.0", macspoofchk=True), c1)
    assert run.returncode != 0 and "no valid IP addresses" in run.json["msg"]
    assert c1.link("eth0") is None and host_veths(world) == []
    assert [i for i in nft_table(world.host) if "rule" in i] == []


def test_new_bridge_has_its_own_stable_mac_bridge_id_and_operstate(world, cni_path, data_dir):
    c1, c2 = world.container("m1"), world.container("m2")
    add(world, cni_path, conf(data_dir), c1, cid="m1")
    info = world.host.link(BRIDGE)
    mac = info["address"]
    assert int(mac.split(":")[0], 16) & 0x02          # locally administered
    assert info["linkinfo"]["info_data"]["bridge_id"] != "8000.0:0:0:0:0:0"
    assert info["operstate"] == "UP"
    add(world, cni_path, conf(data_dir), c2, cid="m2")
    ok(world.run_plugin(cni_path, "bridge", "DEL", conf(data_dir), c1, container_id="m1"))
    assert world.host.link(BRIDGE)["address"] == mac   # ports coming and going keep it


def test_status_reports_what_would_break_add(world, plugin_dir, tmp_path):
    """STATUS (1.1.0): code 50 when ADD cannot work, else IPAM's answer."""
    data = str(tmp_path / "ipam")
    good = conf(data, version="1.1.0")
    run = world.run_plugin(plugin_dir, "bridge", "STATUS", good, None)
    assert run.ok, run.stdout
    missing_ipam = {**good, "ipam": {"type": "no-such-ipam"}}
    run = world.run_plugin(plugin_dir, "bridge", "STATUS", missing_ipam, None)
    assert run.json["code"] == 50 and "no-such-ipam" in run.json["msg"]
    world.host.run("ip", "link", "add", BRIDGE, "type", "veth", "peer", "name", "stpeer")
    run = world.run_plugin(plugin_dir, "bridge", "STATUS", good, None)
    assert run.json["code"] == 50 and "not a bridge" in run.json["msg"]


def test_chained_after_another_plugin_keeps_its_result(world, plugin_dir, tmp_path):
    ctr = world.container()
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "tap9", "sandbox": ctr.path}],
            "ips": [{"address": "192.0.2.9/24", "interface": 0}]}
    data = str(tmp_path / "ipam")
    r = add(world, plugin_dir, {**conf(data), "prevResult": prev}, ctr)
    assert [i["name"] for i in r["interfaces"]][0] == "tap9"
    assert r["ips"][0] == prev["ips"][0]
    assert r["ips"][1]["interface"] == 3 and r["interfaces"][3]["name"] == "eth0"


def test_ipmasq_one_batch_paths_fall_back_when_refused(world, cni_path, data_dir):
    """setup and teardown try one exact iptables-restore batch first; a
    refused batch changes nothing and the save-based path does the work:
    ADD again (chain exists), a stale extra jump, a jump removed outside."""
    c1 = world.container("c1")
    cfg = conf(data_dir, isGateway=True, ipMasq=True, ipMasqBackend="iptables")
    r = add(world, cni_path, cfg, c1, "batch")
    chain = chain_of("batch")
    first = nat_rules(world.host)
    assert f":{chain} - [0:0]" in first and len(first) == 4
    # setup again: -N is refused, the save path flushes and re-adds, no duplicates
    ip = r["ips"][0]["address"]
    world.host.run(sys.executable, "-c", "from pycni.ipmasq import iptables; "
                   f"iptables.setup([{ip!r}], {NET!r}, 'eth0', 'batch')")
    assert nat_rules(world.host) == first
    # a stale second jump to the chain: the exact DEL (-X) is refused, the
    # save path removes both jumps and the chain
    world.host.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.77/32",
                   "-j", chain)
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r), c1, container_id="batch"))
    assert nat_rules(world.host) == []
    # the jump deleted outside before DEL: the exact batch (-D) is refused
    c2 = world.container("c2")
    r2 = add(world, cni_path, cfg, c2, "batch2")
    chain2 = chain_of("batch2")
    jump = next(l for l in nat_rules(world.host) if l.startswith("-A POSTROUTING"))
    world.host.run("sh", "-c", f"iptables -t nat {'-D' + jump[2:]}")
    assert f":{chain2} - [0:0]" in nat_rules(world.host)
    ok(world.run_plugin(cni_path, "bridge", "DEL", with_prev(cfg, r2), c2, container_id="batch2"))
    assert nat_rules(world.host) == []
