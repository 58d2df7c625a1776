"""ptp against the real kernel, exec'ed as a runtime execs it, and next to
the reference ptp v1.9 (/var/cache/pycni-bench/ref-v1.9/bin).

IPAM is pycni's host-local (CNI_PATH = a directory holding only our ptp,
then our plugin directory) with its dataDir in the test's tmp dir; the
reference runs with its own directory only. Every plugin run happens in
the test's "host" namespace; traffic only flows between the test's
namespaces.
"""

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from netns_world import World, delete_namespace
from pytest_netns import missing_prerequisite

pytestmark = pytest.mark.netns

NET = "ptpnet"
SUBNET, GW = "10.96.0.0/24", "10.96.0.1"
SUBNET6, GW6 = "fd96::/64", "fd96::1"
REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")
VETH_RE = re.compile(r"veth[0-9a-f]{8}\Z")


@pytest.fixture
def cni_path(plugin_dir, tmp_path):
    """Our ptp first, then our plugins (host-local, portmap)."""
    only = tmp_path / "ptp-only"
    only.mkdir()
    os.symlink(os.path.join(plugin_dir, "ptp"), only / "ptp")
    return [str(only), plugin_dir]


@pytest.fixture
def ref19():
    if not os.path.isfile(os.path.join(REF19, "ptp")):
        missing_prerequisite(f"reference v1.9 plugins not built in {REF19} "
                             "(bench/build-reference.sh)")
    return [REF19]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "ipam")


def ipam(data_dir: str, dual: bool = False, v6_only: bool = False, **extra) -> dict:
    ranges = [[{"subnet": SUBNET}]] if not v6_only else []
    if dual or v6_only:
        ranges.append([{"subnet": SUBNET6}])
    return {"type": "host-local", "dataDir": data_dir, "ranges": ranges, **extra}


def conf(data_dir: str, version: str = "1.0.0", dual: bool = False, **keys) -> dict:
    c = {"cniVersion": version, "name": NET, "type": "ptp", "ipam": ipam(data_dir, dual)}
    c.update(keys)
    return c


def ok(run) -> dict | None:
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    return run.json


def add(world, path, config, ctr, cid="ctr1", **kw) -> dict:
    return ok(world.run_plugin(path, "ptp", "ADD", config, ctr, container_id=cid, **kw))


def delete(world, path, config, ctr, cid="ctr1", **kw) -> None:
    ok(world.run_plugin(path, "ptp", "DEL", config, ctr, container_id=cid, **kw))


def with_prev(config: dict, result: dict) -> dict:
    return {**config, "prevResult": result}


def host_veths(ns) -> list[str]:
    return [l["ifname"] for l in ns.ip_json("-d", "link", "show")
            if l.get("linkinfo", {}).get("info_kind") == "veth"]


def allocations(data_dir: str) -> list[str]:
    d = os.path.join(data_dir, NET)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f[0].isdigit() or ":" in f)


def routes(ns, family: str = "-4") -> list[str]:
    """`ip route` lines of the main table, link names replaced by DEV."""
    out = ns.run("ip", family, "route", "show").stdout.decode()
    return sorted(re.sub(r"dev veth[0-9a-f]{8}", "dev DEV", l.strip())
                  for l in out.splitlines() if l.strip())


def global_addresses(ns, ifname: str) -> list[str]:
    info = ns.ip_json("addr", "show", "dev", ifname)
    return sorted(f"{a['local']}/{a['prefixlen']}" for i in info for a in i["addr_info"]
                  if a.get("scope") == "global")


def nat_rules(ns, tool: str = "iptables-save") -> list[str]:
    out = ns.run(tool, "-t", "nat").stdout.decode()
    return [l for l in out.splitlines() if l.startswith(("-A", ":CNI-"))]


def nft_masq_rules(ns) -> list[str]:
    proc = ns.run("nft", "-j", "list", "table", "inet", "cni_plugins_masquerade", check=False)
    if proc.returncode != 0:
        return []
    return [i["rule"]["comment"] for i in json.loads(proc.stdout)["nftables"]
            if "rule" in i and i["rule"]["chain"] == "masq_checks"]


def no_masq(ns) -> bool:
    return not nat_rules(ns) and not nat_rules(ns, "ip6tables-save") and not nft_masq_rules(ns)


def sysctl(ns, key: str) -> str:
    return ns.run("sysctl", "-n", key).stdout.decode().strip()


def fake_ipam(tmp_path, result: dict) -> tuple[str, str]:
    """A directory with an IPAM `fake-ipam` that answers ADD with `result`
    and logs each command; (directory, log file)."""
    d = tmp_path / "fake"
    d.mkdir(exist_ok=True)
    log = tmp_path / "fake-ipam.log"
    script = d / "fake-ipam"
    script.write_text("#!/bin/sh\ncat >/dev/null\n"
                      f'echo "$CNI_COMMAND" >> {log}\n'
                      f"[ \"$CNI_COMMAND\" = ADD ] && echo '{json.dumps(result)}'\nexit 0\n")
    script.chmod(0o755)
    return str(d), str(log)


# ------------------------------------------------------------------ ADD: the layout

def test_add_result_and_kernel_state(world, cni_path, data_dir):
    c = world.container("ptpc")
    r = add(world, cni_path, conf(data_dir), c)
    host, cont = r["interfaces"]
    assert VETH_RE.match(host["name"]) and "sandbox" not in host
    assert host["mac"] == world.host.link(host["name"])["address"]
    assert cont == {"name": "eth0", "mac": c.link("eth0")["address"], "sandbox": c.path}
    assert r["ips"] == [{"interface": 1, "address": "10.96.0.2/24", "gateway": GW}]
    assert "routes" not in r and "dns" not in r
    # container: its address, no prefix route, everything via the gateway
    assert global_addresses(c, "eth0") == ["10.96.0.2/24"]
    assert routes(c) == ["10.96.0.0/24 via 10.96.0.1 dev eth0 src 10.96.0.2",
                         "10.96.0.1 dev eth0 scope link src 10.96.0.2"]
    # host: the gateway's /32 on the host end and a host route to the container
    assert global_addresses(world.host, host["name"]) == ["10.96.0.1/32"]
    assert routes(world.host) == ["10.96.0.2 dev DEV scope host"]
    assert world.host.link(host["name"])["operstate"] == "UP"
    assert sysctl(world.host, f"net.ipv6.conf.{host['name']}.accept_ra") == "0"
    assert sysctl(world.host, "net.ipv4.ip_forward") == "1"


def test_dual_stack_traffic_both_ways(world, cni_path, data_dir):
    c1, c2 = world.container("ptp1"), world.container("ptp2")
    cfg = conf(data_dir, dual=True)
    r1 = add(world, cni_path, cfg, c1, "a")
    add(world, cni_path, cfg, c2, "b")
    assert [ip["address"] for ip in r1["ips"]] == ["10.96.0.2/24", "fd96::2/64"]
    assert [ip["gateway"] for ip in r1["ips"]] == [GW, GW6]
    assert routes(c1, "-6") == [
        "fd96::/64 via fd96::1 dev eth0 src fd96::2 metric 1024 pref medium",
        "fd96::1 dev eth0 src fd96::2 metric 1024 pref medium",
        "fe80::/64 dev eth0 proto kernel metric 256 pref medium"]
    hv = r1["interfaces"][0]["name"]
    assert global_addresses(world.host, hv) == ["10.96.0.1/32", "fd96::1/128"]
    assert "fd96::2 dev DEV metric 1024 pref medium" in routes(world.host, "-6")
    assert sysctl(world.host, "net.ipv6.conf.all.forwarding") == "1"
    # the container's addresses left DAD before ADD returned
    assert "tentative" not in c1.run("ip", "-6", "addr", "show", "dev", "eth0").stdout.decode()
    for dst in (GW, GW6, "10.96.0.3", "fd96::3"):       # the host, the other container
        assert c1.pings(dst), dst
    for dst in ("10.96.0.2", "fd96::2", "10.96.0.3", "fd96::3"):
        assert world.host.pings(dst), dst


def test_ipv6_only(world, cni_path, data_dir):
    c = world.container("ptp6")
    cfg = {**conf(data_dir), "ipam": ipam(data_dir, v6_only=True,
                                          routes=[{"dst": "::/0"}])}
    r = add(world, cni_path, cfg, c)
    assert r["ips"] == [{"interface": 1, "address": "fd96::2/64", "gateway": GW6}]
    assert "default via fd96::1 dev eth0 metric 1024 pref medium" in routes(c, "-6")
    assert c.pings(GW6) and world.host.pings("fd96::2")
    ok(world.run_plugin(cni_path, "ptp", "CHECK", with_prev(cfg, r), c))
    delete(world, cni_path, with_prev(cfg, r), c)
    assert host_veths(world.host) == [] and allocations(data_dir) == []


def test_mtu_and_ipam_routes_and_dns(world, cni_path, data_dir):
    c = world.container("ptpm")
    cfg = conf(data_dir, mtu=1400, dns={"nameservers": ["10.96.0.53"], "search": ["x.local"]})
    cfg["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": GW}]
    r = add(world, cni_path, cfg, c)
    assert c.link("eth0")["mtu"] == 1400
    assert world.host.link(r["interfaces"][0]["name"])["mtu"] == 1400
    assert "default via 10.96.0.1 dev eth0" in routes(c)
    assert "192.0.2.0/24 via 10.96.0.1 dev eth0" in routes(c)
    assert r["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": GW}]
    assert r["dns"] == {"nameservers": ["10.96.0.53"], "search": ["x.local"]}
    ok(world.run_plugin(cni_path, "ptp", "CHECK", with_prev(cfg, r), c))


def test_what_the_reference_accepts_is_accepted_with_a_warning(world, cni_path, data_dir):
    """A negative mtu (the kernel's default), an unknown ipMasqBackend
    without ipMasq (never read)."""
    c = world.container("ptpn")
    run = world.run_plugin(cni_path, "ptp", "ADD", conf(data_dir, mtu=-5, ipMasqBackend="pf"), c)
    assert run.ok, run.stdout
    assert "ptp: mtu -5 is negative" in run.stderr
    assert 'ptp: unknown ipMasqBackend "pf"' in run.stderr
    assert c.link("eth0")["mtu"] == 1500
    assert no_masq(world.host)


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
def test_old_versions(world, cni_path, data_dir, version):
    c = world.container("ptpo")
    cfg = conf(data_dir, version=version)
    r = add(world, cni_path, cfg, c)
    if version in ("0.1.0", "0.2.0"):
        assert r == {"cniVersion": version, "ip4": {"ip": "10.96.0.2/24", "gateway": GW},
                     "dns": {}}
    else:
        assert r["ips"] == [{"version": "4", "interface": 1, "address": "10.96.0.2/24",
                             "gateway": GW}]
    delete(world, cni_path, cfg, c)
    assert host_veths(world.host) == [] and allocations(data_dir) == []


# ------------------------------------------------------------------ CHECK / DEL

@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(world, cni_path, data_dir, version):
    c = world.container("ptpl")
    cfg = conf(data_dir, version=version, dual=True)
    r = add(world, cni_path, cfg, c)
    assert allocations(data_dir) == ["10.96.0.2", "fd96::2"]
    ok(world.run_plugin(cni_path, "ptp", "CHECK", with_prev(cfg, r), c))
    for _ in range(2):
        delete(world, cni_path, with_prev(cfg, r), c)
        assert c.link("eth0") is None and host_veths(world.host) == []
        assert allocations(data_dir) == [] and routes(world.host) == []


def test_check_without_prev_result(world, cni_path, data_dir):
    c = world.container("ptpx")
    add(world, cni_path, conf(data_dir), c)
    run = world.run_plugin(cni_path, "ptp", "CHECK", conf(data_dir), c)
    assert run.error_code() == 7 and run.json["msg"] == "ptp: Required prevResult missing"


def _host_veth(r):
    return r["interfaces"][0]["name"]


# (damage, our message, whether the reference v1.9 notices it too)
DAMAGE = [
    (lambda w, c, r: c.run("ip", "addr", "del", "10.96.0.2/24", "dev", "eth0"),
     "Failed to match addr 10.96.0.2/24 on interface eth0", True),
    (lambda w, c, r: c.run("ip", "link", "set", "eth0", "address", "02:00:00:00:00:42"),
     "doesn't match container Mac", True),
    (lambda w, c, r: c.run("ip", "route", "del", "default"), "Expected Route", True),
    (lambda w, c, r: c.run("ip", "route", "del", "10.96.0.1/32", "dev", "eth0"),
     "ptp: route to the gateway 10.96.0.1/32 via eth0 not found", False),
    (lambda w, c, r: w.host.run("ip", "addr", "del", "10.96.0.1/32", "dev", _host_veth(r)),
     "ptp: gateway address 10.96.0.1/32 not found on host interface", False),
    (lambda w, c, r: w.host.run("ip", "route", "del", "10.96.0.2/32"),
     "ptp: host route to 10.96.0.2/32 via", False),
]


@pytest.mark.parametrize("damage,message,ref_notices", DAMAGE)
def test_check_finds_damage(world, cni_path, ref19, data_dir, damage, message, ref_notices):
    c = world.container("ptpd")
    cfg = conf(data_dir)
    cfg["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}]
    r = add(world, cni_path, cfg, c)
    damage(world, c, r)
    run = world.run_plugin(cni_path, "ptp", "CHECK", with_prev(cfg, r), c)
    assert run.returncode != 0 and message in run.json["msg"], run.stdout
    ref = world.run_plugin(ref19 + [cni_path[1]], "ptp", "CHECK", with_prev(cfg, r), c)
    assert (ref.returncode != 0) == ref_notices, ref.stdout
    if ref_notices and not message.startswith("Expected Route"):   # Go prints a struct
        assert ref.json["msg"] == run.json["msg"]


def test_del_with_vanished_netns(world, cni_path, data_dir):
    c = world.container("ptpv")
    cfg = conf(data_dir, dual=True)
    r = add(world, cni_path, cfg, c)
    path = c.path
    assert delete_namespace(c.name) is None
    world.namespaces.remove(c)
    delete(world, cni_path, with_prev(cfg, r), path)
    assert allocations(data_dir) == [] and host_veths(world.host) == []
    assert routes(world.host) == []
    delete(world, cni_path, with_prev(cfg, r), path)


def test_del_with_empty_netns_or_nothing_there(world, cni_path, data_dir):
    c = world.container("ptpe")
    add(world, cni_path, conf(data_dir), c)
    delete(world, cni_path, conf(data_dir), None)
    assert allocations(data_dir) == []
    delete(world, cni_path, conf(data_dir), None)
    # a config ADD would refuse (no IPAM, a bad backend) still deletes
    delete(world, cni_path, {"cniVersion": "1.0.0", "name": NET, "type": "ptp",
                             "ipMasqBackend": "bogus", "mtu": 1}, c)
    assert c.link("eth0") is None


# ------------------------------------------------------------------ failures leave nothing

def test_existing_container_ifname(world, cni_path, data_dir):
    c = world.container("ptpi")
    c.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
    run = world.run_plugin(cni_path, "ptp", "ADD", conf(data_dir, ipMasq=True), c)
    assert run.returncode != 0 and "already exists" in run.json["msg"]
    assert allocations(data_dir) == [] and host_veths(world.host) == []
    assert no_masq(world.host)


def test_failure_in_the_container_undoes_everything(world, cni_path, data_dir):
    """An IPAM route the kernel refuses (its gateway is on no link) fails
    ADD after the veth and the addresses exist: all of it goes."""
    c = world.container("ptpf")
    cfg = conf(data_dir, dual=True, ipMasq=True)
    cfg["ipam"]["routes"] = [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]
    run = world.run_plugin(cni_path, "ptp", "ADD", cfg, c)
    assert run.returncode != 0 and "failed to add route 192.0.2.0/24" in run.json["msg"]
    assert c.link("eth0") is None and host_veths(world.host) == []
    assert allocations(data_dir) == [] and routes(world.host) == []
    assert no_masq(world.host)


def test_ipam_without_gateway_is_refused_and_released(world, cni_path, tmp_path):
    c = world.container("ptpg")
    fake, log = fake_ipam(tmp_path, {"cniVersion": "1.0.0",
                                     "ips": [{"address": "10.96.0.9/24"}]})
    cfg = {"cniVersion": "1.0.0", "name": NET, "type": "ptp", "ipam": {"type": "fake-ipam"}}
    run = world.run_plugin(cni_path + [fake], "ptp", "ADD", cfg, c)
    assert run.error_code() == 7
    assert run.json["msg"] == "IPAM returned no gateway for 10.96.0.9/24"
    assert open(log).read().split() == ["ADD", "DEL"]
    assert c.link("eth0") is None and host_veths(world.host) == []


@pytest.mark.parametrize("keys,message", [
    ({"mtu": 70000}, "invalid MTU 70000"),
    ({"mtu": 10}, "invalid MTU 10"),
    ({"ipMasq": True, "ipMasqBackend": "pf"}, 'unknown ipmasq backend "pf"'),
    ({"ipam": {}}, "no plugin name provided"),
    ({"mtu": "1400"}, "mtu"),
])
def test_bad_config_is_refused_before_anything(world, cni_path, data_dir, keys, message):
    c = world.container("ptpb")
    run = world.run_plugin(cni_path, "ptp", "ADD", conf(data_dir, **keys), c)
    assert run.returncode == 1 and message in run.json["msg"], run.stdout
    assert run.error_code() in (6, 7)
    assert c.link("eth0") is None and host_veths(world.host) == []
    assert allocations(data_dir) == []


def test_missing_netns(world, cni_path, data_dir):
    run = world.run_plugin(cni_path, "ptp", "ADD", conf(data_dir), "/run/netns/pycni-no-such-ns")
    assert run.error_code() == 3
    assert allocations(data_dir) == [] and host_veths(world.host) == []


# ------------------------------------------------------------------ ipMasq

@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipmasq_rules_present_and_removed(world, cni_path, data_dir, backend):
    c = world.container("ptpq")
    cfg = conf(data_dir, dual=True, ipMasq=True, ipMasqBackend=backend)
    r = add(world, cni_path, cfg, c, "masq")
    if backend == "iptables":
        assert len(nat_rules(world.host)) == 4 and len(nat_rules(world.host, "ip6tables-save")) == 4
    else:
        assert len(nft_masq_rules(world.host)) == 2
    ok(world.run_plugin(cni_path, "ptp", "CHECK", with_prev(cfg, r), c, container_id="masq"))
    delete(world, cni_path, with_prev(cfg, r), c, "masq")
    assert no_masq(world.host)


def test_ipmasq_masquerades_to_an_outside_network(world, cni_path, data_dir):
    c = world.container("ptpo")
    ext = world.external("ptpext")
    world.host.run("ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0",
                   "netns", ext.name)
    world.host.run("ip", "addr", "add", "192.168.201.1/24", "dev", "uplink")
    world.host.run("ip", "link", "set", "uplink", "up")
    ext.run("ip", "addr", "add", "192.168.201.2/24", "dev", "eth0")
    ext.run("ip", "link", "set", "eth0", "up")     # no route back to 10.96/24
    cfg = conf(data_dir, ipMasq=True)
    cfg["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}]
    add(world, cni_path, cfg, c, "out")
    assert c.pings("192.168.201.2")
    delete(world, cni_path, cfg, c, "out")
    assert no_masq(world.host)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipmasq_removed_when_the_netns_is_gone_or_not_given(world, cni_path, data_dir, backend):
    """plugins#810: the reference leaks the rules in both cases."""
    c = world.container("ptpr")
    cfg = conf(data_dir, dual=True, ipMasq=True, ipMasqBackend=backend)
    r = add(world, cni_path, cfg, c, "gone")
    assert not no_masq(world.host)
    path = c.path
    assert delete_namespace(c.name) is None
    world.namespaces.remove(c)
    delete(world, cni_path, with_prev(cfg, r), path, "gone")
    assert no_masq(world.host) and allocations(data_dir) == []
    add(world, cni_path, cfg, world.container("ptpr2"), "gone2")
    delete(world, cni_path, cfg, None, "gone2")      # no netns, no prevResult
    assert no_masq(world.host) and allocations(data_dir) == []


def test_gc_removes_masquerading_and_allocations_of_unlisted_attachments(
        world, cni_path, data_dir):
    for cid, backend in (("keep4", "iptables"), ("gone4", "iptables"),
                         ("keep6", "nftables"), ("gone6", "nftables")):
        add(world, cni_path, conf(data_dir, "1.1.0", ipMasq=True, ipMasqBackend=backend),
            world.container(cid), cid)
    assert len(nat_rules(world.host)) == 8 and len(nft_masq_rules(world.host)) == 2
    gc = {**conf(data_dir, "1.1.0"),
          "cni.dev/valid-attachments": [{"containerID": "keep4", "ifname": "eth0"},
                                        {"containerID": "keep6", "ifname": "eth0"}]}
    ok(world.run_plugin(cni_path, "ptp", "GC", gc, None))
    chains = {l for l in nat_rules(world.host) if l.startswith(":")}
    assert len(chains) == 1
    assert [c.split(", id: ")[1] for c in nft_masq_rules(world.host)] == ["keep6"]
    assert len(allocations(data_dir)) == 2


# ------------------------------------------------------------------ STATUS

def test_status(world, cni_path, data_dir, tmp_path):
    ok(world.run_plugin(cni_path, "ptp", "STATUS", conf(data_dir, "1.1.0", ipMasq=True), None))
    cfg = {**conf(data_dir, "1.1.0"), "ipam": {"type": "no-such-ipam"}}
    run = world.run_plugin(cni_path, "ptp", "STATUS", cfg, None)
    assert run.error_code() == 50, run.stdout
    fake, log = fake_ipam(tmp_path, {})
    cfg = {**conf(data_dir, "1.1.0"), "ipam": {"type": "fake-ipam"}}
    ok(world.run_plugin(cni_path + [fake], "ptp", "STATUS", cfg, None))
    assert open(log).read().split() == ["STATUS"]


# ------------------------------------------------------------------ against the reference v1.9

def kernel_state(w: World, c, r: dict) -> dict:
    hv = r["interfaces"][0]["name"]
    return {
        "host_addresses": global_addresses(w.host, hv),
        "host_routes": routes(w.host) + routes(w.host, "-6"),
        "container_addresses": global_addresses(c, "eth0"),
        "container_routes": routes(c) + routes(c, "-6"),
        "mtu": (w.host.link(hv)["mtu"], c.link("eth0")["mtu"]),
        "forwarding": (sysctl(w.host, "net.ipv4.ip_forward"),
                       sysctl(w.host, "net.ipv6.conf.all.forwarding")),
        "accept_ra": sysctl(w.host, f"net.ipv6.conf.{hv}.accept_ra"),
        "nat": nat_rules(w.host) + nat_rules(w.host, "ip6tables-save"),
        "nft": nft_masq_rules(w.host),
    }


def normalise(result: dict) -> dict:
    text = json.dumps(result)
    for intf in result["interfaces"]:
        if VETH_RE.match(intf["name"]):
            text = text.replace(intf["name"], "VETH")
        text = text.replace(intf["mac"], "MAC")
        if "sandbox" in intf:
            text = text.replace(intf["sandbox"], "SANDBOX")
    out = json.loads(text)
    if out.get("dns") == {}:
        del out["dns"]
    return out


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.parametrize("keys", [
    {"dual": True, "ipMasq": True}, {"mtu": 1400},
    {"ipMasq": True, "ipMasqBackend": "nftables"},
    {"dns": {"nameservers": ["10.96.0.53"]}, "routes": True}])
def test_same_result_and_state_as_reference(world, cni_path, ref19, tmp_path, version, keys):
    keys = dict(keys)
    dual, want_routes = keys.pop("dual", False), keys.pop("routes", False)
    seen = {}
    for impl, path in (("ours", cni_path), ("ref", ref19)):
        with World(f"ptpcmp-{impl}") as w:
            c = w.container("ptpc")
            cfg = conf(str(tmp_path / impl), version=version, dual=dual, **keys)
            if want_routes:
                cfg["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "198.18.0.0/15"}]
            r = add(w, path, cfg, c, "cmp")
            seen[impl] = (normalise(r), kernel_state(w, c, r))
            delete(w, path, with_prev(cfg, r), c, "cmp")
            assert host_veths(w.host) == [] and no_masq(w.host)
    assert seen["ours"][0] == seen["ref"][0]
    assert seen["ours"][1] == seen["ref"][1]


@pytest.mark.parametrize("first,second", [("ours", "ref"), ("ref", "ours")])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_interop_with_the_reference(world, cni_path, ref19, data_dir, first, second, backend):
    """One implementation ADDs, the other CHECKs and DELs (an upgrade or a
    downgrade of /opt/cni/bin between the two)."""
    paths = {"ours": cni_path, "ref": ref19 + [cni_path[1]]}
    c = world.container("ptpx")
    cfg = conf(data_dir, dual=True, ipMasq=True, ipMasqBackend=backend)
    r = add(world, paths[first], cfg, c, "interop")
    ok(world.run_plugin(paths[second], "ptp", "CHECK", with_prev(cfg, r), c,
                        container_id="interop"))
    delete(world, paths[second], with_prev(cfg, r), c, "interop")
    assert host_veths(world.host) == [] and allocations(data_dir) == []
    assert no_masq(world.host)


# ------------------------------------------------------------------ untrusted CNI_NETNS, concurrency

@pytest.mark.parametrize("kind", ["fifo", "device", "regular-file"])
def test_not_a_netns_is_refused_at_once(world, cni_path, data_dir, tmp_path, kind):
    if kind == "device":
        path = "/dev/null"
    elif kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    else:
        path = str(tmp_path / "file")
        open(path, "w").write("not a namespace\n")
    start = time.monotonic()
    run = world.run_plugin(cni_path, "ptp", "ADD", conf(data_dir, ipMasq=True), path)
    assert time.monotonic() - start < 10
    assert run.error_code() == 4, run.stdout
    assert allocations(data_dir) == [] and host_veths(world.host) == []
    assert no_masq(world.host)
    delete(world, cni_path, conf(data_dir, ipMasq=True), path)


def test_del_after_unmount_releases_the_address_and_the_rules(world, cni_path, data_dir):
    """A runtime unmounts the netns and leaves the mount-point file."""
    c = world.container("ptpu")
    cfg = conf(data_dir, dual=True, ipMasq=True)
    add(world, cni_path, cfg, c, "umnt")
    subprocess.run(["umount", c.path], check=True)
    for _ in range(2):
        delete(world, cni_path, cfg, c, "umnt")
        assert allocations(data_dir) == [] and no_masq(world.host)
        assert host_veths(world.host) == []


def test_parallel_adds_and_dels(world, cni_path, data_dir):
    n = 8
    ctrs = [world.container(f"ptpp{i}") for i in range(n)]
    cfg = conf(data_dir, ipMasq=True)
    assert world.host    # create it now: World.host is not thread-safe

    def run(command, i, result=None):
        c = with_prev(cfg, result) if result else cfg
        return world.run_plugin(cni_path, "ptp", command, c, ctrs[i], container_id=f"par{i}")

    with ThreadPoolExecutor(n) as pool:
        results = [ok(a) for a in pool.map(lambda i: run("ADD", i), range(n))]
    assert len({r["ips"][0]["address"] for r in results}) == n
    assert len(set(host_veths(world.host))) == n
    assert ctrs[0].pings(results[-1]["ips"][0]["address"].split("/")[0])
    with ThreadPoolExecutor(n) as pool:
        for d in pool.map(lambda i: run("DEL", i, results[i]), range(n)):
            ok(d)
    assert host_veths(world.host) == [] and allocations(data_dir) == []
    assert no_masq(world.host) and routes(world.host) == []


@pytest.mark.parametrize("keys", [{"ipam": {}}, {"ipMasq": True, "ipMasqBackend": "pf"}])
def test_error_messages_match_the_reference(world, cni_path, ref19, tmp_path, keys):
    runs = {}
    for impl, path in (("ours", cni_path), ("ref", ref19)):
        cfg = conf(str(tmp_path / impl), **keys)
        runs[impl] = world.run_plugin(path, "ptp", "ADD", cfg, world.container(f"ptp{impl}"),
                                      container_id=impl)
    assert runs["ours"].returncode == runs["ref"].returncode == 1
    assert runs["ours"].json["msg"] == runs["ref"].json["msg"]
    assert (runs["ours"].error_code(), runs["ref"].error_code()) == (7, 999)
    assert allocations(str(tmp_path / "ours")) == []
