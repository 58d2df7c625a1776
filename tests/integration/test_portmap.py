"""portmap against the real kernel, next to the reference portmap (Debian
containernetworking-plugins 1.1.1, /usr/lib/cni/portmap, iptables only).

The chain is our bridge + host-local, then portmap: CNI_PATH is our
plugin directory, then the reference directory (the reference portmap is
run from there by name where tests compare or interoperate). Every world has a "host" namespace (bridge
`cnipm0`, forwarding on inside it only), an "external" namespace routed
to the host over a veth, and containers running tiny TCP and UDP echo
servers. Clients connect to the mapped host port from the host, from
127.0.0.1, from the external namespace, from the container itself
(hairpin) and from a second container.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

NET = "pmnet"
BRIDGE = "cnipm0"
SUBNET4, GW4 = "10.98.0.0/24", "10.98.0.1"
SUBNET6, GW6 = "fd98::/64", "fd98::1"
EXT_HOST4, EXT_PEER4 = "192.168.77.1", "192.168.77.2"
EXT_HOST6, EXT_PEER6 = "fd77::1", "fd77::2"
CPORT = 8000
BACKENDS = ["iptables", "nftables"]

SERVER = textwrap.dedent("""
    import socket, sys, threading
    port, name = int(sys.argv[1]), sys.argv[2]
    def tcp():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(64)
        while True:
            c, _ = s.accept()
            try:
                c.recv(100); c.sendall(("tcp-" + name).encode())
            finally:
                c.close()
    def udp():
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        while True:
            data, addr = s.recvfrom(100)
            s.sendto(("udp-" + name).encode(), addr)
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    tcp()
""")

CLIENT = textwrap.dedent("""
    import socket, sys
    proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sport = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(int(sys.argv[5]) if len(sys.argv) > 5 else 3):
        try:
            if proto == "tcp":
                s = socket.create_connection((host, port), timeout=1)
                s.sendall(b"hi"); print(s.recv(100).decode()); sys.exit(0)
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if sport:
                s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
            s.settimeout(1); s.sendto(b"hi", (host, port))
            print(s.recvfrom(100)[0].decode()); sys.exit(0)
        except OSError:
            pass
        finally:
            try: s.close()
            except NameError: pass
    sys.exit(1)
""")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def cni_path(plugin_dir, ref_dir):
    return [plugin_dir, ref_dir]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "ipam")


@pytest.fixture
def node(world):
    """The host namespace with forwarding on and an external namespace
    routed to it over a veth."""
    host, ext = world.host, world.external("ext")
    host.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    host.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    host.run("ip", "link", "add", "pmext0", "type", "veth", "peer", "name", "pmext1")
    host.run("ip", "link", "set", "pmext1", "netns", ext.name)
    host.run("ip", "addr", "add", f"{EXT_HOST4}/24", "dev", "pmext0")
    host.run("ip", "addr", "add", f"{EXT_HOST6}/64", "dev", "pmext0", "nodad")
    host.run("ip", "link", "set", "pmext0", "up")
    ext.run("ip", "addr", "add", f"{EXT_PEER4}/24", "dev", "pmext1")
    ext.run("ip", "addr", "add", f"{EXT_PEER6}/64", "dev", "pmext1", "nodad")
    ext.run("ip", "link", "set", "pmext1", "up")
    ext.run("ip", "route", "add", "default", "via", EXT_HOST4)
    ext.run("ip", "-6", "route", "add", "default", "via", EXT_HOST6)
    return world


def bridge_conf(data_dir, version="1.0.0", ipv6=False) -> dict:
    ranges = [[{"subnet": SUBNET4, "gateway": GW4}]]
    if ipv6:
        ranges.append([{"subnet": SUBNET6, "gateway": GW6}])
    return {"cniVersion": version, "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isDefaultGateway": True, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": ranges, "dataDir": data_dir}}


def portmap_conf(version="1.0.0", mappings=None, prev=None, **keys) -> dict:
    conf = {"cniVersion": version, "name": NET, "type": "portmap", **keys}
    if mappings is not None:
        conf["runtimeConfig"] = {"portMappings": mappings}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def maps(host_port: int, *, caps=False, host_ip=None) -> list[dict]:
    keys = ("HostPort", "ContainerPort", "Protocol") if caps else \
        ("hostPort", "containerPort", "protocol")
    out = [dict(zip(keys, (host_port, CPORT, "tcp"))), dict(zip(keys, (host_port, CPORT, "udp")))]
    if host_ip is not None:
        for m in out:
            m["HostIP" if caps else "hostIP"] = host_ip
    return out


def ok(run) -> dict | None:
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    return run.json


class Container:
    def __init__(self, ns, cid, result):
        self.ns, self.cid, self.result = ns, cid, result

    def ip(self, family=4) -> str:
        return next(i["address"].split("/")[0] for i in self.result["ips"]
                    if (":" in i["address"]) == (family == 6))


def start_server(request, ns, name: str, port: int = CPORT) -> None:
    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", SERVER,
                             str(port), name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def stop():
        proc.kill()
        proc.wait()
    request.addfinalizer(stop)
    assert proc.stdout.readline().strip() == b"ready"


def attach(request, w, cni_path, data_dir, cid, mappings, *, label=None, version="1.0.0",
           ipv6=False, portmap="ours", **keys) -> Container:
    """bridge ADD then portmap ADD (prevResult = the bridge's result)."""
    ns = w.container(label or cid)
    ns.run("ip", "link", "set", "lo", "up")
    start_server(request, ns, cid)
    bridge = ok(w.run_plugin(cni_path, "bridge", "ADD", bridge_conf(data_dir, version, ipv6),
                             ns, container_id=cid))
    conf = portmap_conf(version, mappings, bridge, **keys)
    path = cni_path if portmap == "ours" else [cni_path[-1]]
    result = ok(w.run_plugin(path, "portmap", "ADD", conf, ns, container_id=cid))
    # passed through (an empty `dns` is dropped from 1.x results, as newer
    # reference releases do, and kept in 0.x results)
    def without_empty_dns(r):
        return {k: v for k, v in r.items() if v or k != "dns"}
    assert without_empty_dns(result) == without_empty_dns(bridge)
    return Container(ns, cid, result)


def detach(w, cni_path, data_dir, c: Container, mappings, version="1.0.0", ipv6=False,
           portmap="ours", **keys) -> None:
    path = cni_path if portmap == "ours" else [cni_path[-1]]
    ok(w.run_plugin(path, "portmap", "DEL", portmap_conf(version, mappings, c.result, **keys),
                    c.ns, container_id=c.cid))
    ok(w.run_plugin(cni_path, "bridge", "DEL", bridge_conf(data_dir, version, ipv6), c.ns,
                    container_id=c.cid))


def ask(ns, proto, host, port, sport=0, tries=3) -> str | None:
    proc = ns.run(sys.executable, "-c", CLIENT, proto, host, str(port), str(sport), str(tries),
                  check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def nat_rules(w, family=4) -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    out = w.host.run(tool, "-t", "nat").stdout.decode()
    return [l for l in out.splitlines() if l.startswith("-A ")]


def nft_rules(w) -> str:
    return w.host.run("nft", "list", "ruleset").stdout.decode()


def leftover_rules(w, backend: str) -> list[str]:
    if backend == "iptables":
        return [l for f in (4, 6) for l in nat_rules(w, f) if "CNI-DN-" in l]
    return [l for l in nft_rules(w).splitlines() if "net: " + NET in l or "dnat to" in l
            or ("masquerade" in l and "comment" in l)]


def wait_v6_ready(ns, timeout=5.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if b"tentative" not in ns.run("ip", "-6", "addr").stdout:
            return
        time.sleep(0.1)


# ------------------------------------------------------------------ forwarding

@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_forwarding_ipv4_from_everywhere_then_del(request, node, cni_path, data_dir, backend):
    w = node
    m1, m2 = maps(18080, caps=True), maps(18081)
    c1 = attach(request, w, cni_path, data_dir, "ctr1", m1, backend=backend)
    c2 = attach(request, w, cni_path, data_dir, "ctr2", m2, backend=backend)
    ext = w.namespaces[1]
    for proto in ("tcp", "udp"):
        want = f"{proto}-ctr1"
        assert ask(w.host, proto, EXT_HOST4, 18080) == want, "from the host"
        assert ask(w.host, proto, "127.0.0.1", 18080) == want, "from localhost"
        assert ask(ext, proto, EXT_HOST4, 18080) == want, "from outside"
        assert ask(c1.ns, proto, GW4, 18080) == want, "hairpin"
        assert ask(c1.ns, proto, EXT_HOST4, 18080) == want, "hairpin via another host IP"
        assert ask(c2.ns, proto, EXT_HOST4, 18080) == want, "from a second container"
        assert ask(ext, proto, EXT_HOST4, 18081) == f"{proto}-ctr2"
    # route_localnet is what lets 127.0.0.1 reach the bridge
    assert w.host.run("cat", f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").stdout \
        .strip() == b"1"
    ok(w.run_plugin(cni_path, "portmap", "CHECK", portmap_conf("1.0.0", m1, c1.result,
                                                                backend=backend),
                    c1.ns, container_id="ctr1"))

    detach(w, cni_path, data_dir, c1, m1, backend=backend)
    assert ask(ext, "tcp", EXT_HOST4, 18080, tries=1) is None
    assert ask(ext, "tcp", EXT_HOST4, 18081) == "tcp-ctr2", "the other container keeps its rules"
    detach(w, cni_path, data_dir, c2, m2, backend=backend)
    assert leftover_rules(w, backend) == []


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_forwarding_ipv6(request, node, cni_path, data_dir, backend):
    w = node
    m = maps(18090)
    c1 = attach(request, w, cni_path, data_dir, "ctr1", m, ipv6=True, backend=backend)
    c2 = attach(request, w, cni_path, data_dir, "ctr2", maps(18091), ipv6=True, backend=backend)
    for ns in (w.host, c1.ns, c2.ns):
        wait_v6_ready(ns)
    ext = w.namespaces[1]
    for proto in ("tcp", "udp"):
        want = f"{proto}-ctr1"
        assert ask(w.host, proto, EXT_HOST6, 18090) == want, "from the host"
        assert ask(ext, proto, EXT_HOST6, 18090) == want, "from outside"
        assert ask(c1.ns, proto, GW6, 18090) == want, "hairpin"
        assert ask(c2.ns, proto, EXT_HOST6, 18090) == want, "from a second container"
        assert ask(ext, proto, EXT_HOST4, 18090) == want, "IPv4 still works"
    detach(w, cni_path, data_dir, c1, m, ipv6=True, backend=backend)
    detach(w, cni_path, data_dir, c2, maps(18091), ipv6=True, backend=backend)
    assert leftover_rules(w, backend) == []


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_host_ip_limits_the_mapping(request, node, cni_path, data_dir, backend):
    w = node
    w.host.run("ip", "addr", "add", "192.168.77.3/24", "dev", "pmext0")
    m = maps(18100, host_ip="192.168.77.3")
    attach(request, w, cni_path, data_dir, "ctr1", m, backend=backend)
    ext = w.namespaces[1]
    assert ask(ext, "tcp", "192.168.77.3", 18100) == "tcp-ctr1"
    assert ask(ext, "tcp", EXT_HOST4, 18100, tries=1) is None


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_dnat_only_for_local_destinations(request, node, cni_path, data_dir, backend):
    """CVE-2025-67499 (nftables): traffic routed through the host to another
    machine on the mapped port must reach that machine, not the container."""
    w = node
    attach(request, w, cni_path, data_dir, "ctr1", maps(18110), backend=backend)
    other = attach(request, w, cni_path, data_dir, "ctr2", [], backend=backend)
    start_server(request, other.ns, "ctr2-direct", port=18110)
    ext = w.namespaces[1]
    assert ask(ext, "tcp", other.ip(), 18110) == "tcp-ctr2-direct"
    assert ask(ext, "udp", other.ip(), 18110) == "udp-ctr2-direct"
    assert ask(ext, "tcp", EXT_HOST4, 18110) == "tcp-ctr1"


# ------------------------------------------------------------------ interop

def _normal(rules: list[str]) -> list[str]:
    return sorted(rules)


@pytest.mark.netns
def test_same_rules_as_the_reference_and_each_removes_the_others(request, node, cni_path,
                                                                  data_dir):
    w = node
    m = maps(18120)
    ref = attach(request, w, cni_path, data_dir, "ctr1", m, ipv6=True, portmap="reference")
    ref_state = {f: _normal(nat_rules(w, f)) for f in (4, 6)}
    assert any("CNI-DN-" in l for l in ref_state[4])
    # ours removes what the reference made
    ok(w.run_plugin(cni_path, "portmap", "DEL", portmap_conf("1.0.0", m, ref.result), ref.ns,
                    container_id="ctr1"))
    assert leftover_rules(w, "iptables") == []
    # ours makes exactly what the reference made
    ok(w.run_plugin(cni_path, "portmap", "ADD", portmap_conf("1.0.0", m, ref.result), ref.ns,
                    container_id="ctr1"))
    assert {f: _normal(nat_rules(w, f)) for f in (4, 6)} == ref_state
    # a second ADD changes nothing (no duplicates)
    ok(w.run_plugin(cni_path, "portmap", "ADD", portmap_conf("1.0.0", m, ref.result), ref.ns,
                    container_id="ctr1"))
    assert {f: _normal(nat_rules(w, f)) for f in (4, 6)} == ref_state
    # the reference's CHECK (v4) and DEL accept ours
    ok(w.run_plugin([cni_path[-1]], "portmap", "DEL", portmap_conf("1.0.0", m, ref.result),
                    ref.ns, container_id="ctr1"))
    assert leftover_rules(w, "iptables") == []


@pytest.mark.netns
def test_entry_rules_are_appended_after_existing_ones(request, node, cni_path, data_dir):
    """CVE-2019-9946: a hostPort must not shadow rules already in PREROUTING."""
    w = node
    w.host.run("iptables", "-t", "nat", "-N", "KUBE-SERVICES")
    w.host.run("iptables", "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES")
    w.host.run("iptables", "-t", "nat", "-A", "OUTPUT", "-j", "KUBE-SERVICES")
    attach(request, w, cni_path, data_dir, "ctr1", maps(18130))
    rules = nat_rules(w)
    for chain in ("PREROUTING", "OUTPUT"):
        in_chain = [l for l in rules if l.startswith(f"-A {chain} ")]
        assert in_chain[0] == f"-A {chain} -j KUBE-SERVICES"
        assert in_chain[-1].endswith("-j CNI-HOSTPORT-DNAT")


@pytest.mark.netns
def test_nftables_del_removes_rules_tagged_the_reference_way(request, node, cni_path, data_dir):
    """The reference tags its nftables rules with the bare container ID;
    our DEL removes those too (so it cleans up after the reference)."""
    w = node
    m = maps(18125)
    c = attach(request, w, cni_path, data_dir, "ctr1", m, backend="nftables")
    w.host.run("nft", "add rule ip cni_hostport hostports tcp dport 18126 "
               f"dnat to {c.ip()}:{CPORT} comment \"ctr1\"")
    w.host.run("nft", "add rule ip cni_hostport hostports tcp dport 18127 "
               f"dnat to {c.ip()}:{CPORT} comment \"someone-else\"")
    ok(w.run_plugin(cni_path, "portmap", "DEL", portmap_conf("1.0.0", m, c.result,
                                                              backend="nftables"),
                    c.ns, container_id="ctr1"))
    left = [l.strip() for l in nft_rules(w).splitlines() if "dnat to" in l]
    assert len(left) == 1 and "someone-else" in left[0]


# ------------------------------------------------------------------ DEL / CHECK / GC

@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_del_is_idempotent_and_needs_no_prev_result(request, node, cni_path, data_dir, backend):
    w = node
    c = attach(request, w, cni_path, data_dir, "ctr1", maps(18140), backend=backend)
    for _ in range(2):
        # as containerd's RemovePodSandbox: no netns, no prevResult, no runtimeConfig
        ok(w.run_plugin(cni_path, "portmap", "DEL", portmap_conf("1.0.0", backend=backend), "",
                        container_id="ctr1"))
        assert leftover_rules(w, backend) == []
    bad = w.run_plugin(cni_path, "portmap", "CHECK",
                       portmap_conf("1.0.0", maps(18140), c.result, backend=backend), c.ns,
                       container_id="ctr1")
    assert bad.returncode != 0 and "incomplete" in bad.json["msg"]


@pytest.mark.netns
def test_check_detects_a_removed_rule(request, node, cni_path, data_dir):
    w = node
    m = maps(18150)
    c = attach(request, w, cni_path, data_dir, "ctr1", m)
    ok(w.run_plugin(cni_path, "portmap", "CHECK", portmap_conf("1.0.0", m, c.result), c.ns,
                    container_id="ctr1"))
    dnat = next(l for l in nat_rules(w) if "DNAT --to-destination" in l and "udp" in l)
    w.host.run("sh", "-c", f"iptables -t nat {'-D' + dnat[2:]}")
    bad = w.run_plugin(cni_path, "portmap", "CHECK", portmap_conf("1.0.0", m, c.result), c.ns,
                       container_id="ctr1")
    assert bad.returncode != 0 and "DNAT" in bad.json["details"]
    missing = w.run_plugin(cni_path, "portmap", "CHECK", portmap_conf("1.0.0", m), c.ns,
                           container_id="ctr1")
    assert missing.returncode != 0 and "prevResult" in missing.json["msg"]


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_gc_removes_containers_not_listed(request, node, cni_path, data_dir, backend):
    w = node
    attach(request, w, cni_path, data_dir, "ctr1", maps(18160), backend=backend)
    attach(request, w, cni_path, data_dir, "ctr2", maps(18161), backend=backend)
    gc = {"cniVersion": "1.1.0", "name": NET, "type": "portmap", "backend": backend,
          "cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "eth0"}]}
    ok(w.run_plugin(cni_path, "portmap", "GC", gc, ""))
    ext = w.namespaces[1]
    assert ask(ext, "tcp", EXT_HOST4, 18160) == "tcp-ctr1"
    assert ask(ext, "tcp", EXT_HOST4, 18161, tries=1) is None
    gc["cni.dev/valid-attachments"] = []
    ok(w.run_plugin(cni_path, "portmap", "GC", gc, ""))
    assert leftover_rules(w, backend) == []


@pytest.mark.netns
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_empty_port_mappings_pass_prev_result_through(request, node, cni_path, data_dir,
                                                        version):
    w = node
    before = nat_rules(w)
    attach(request, w, cni_path, data_dir, "ctr1", [], version=version)
    assert nat_rules(w) == before


@pytest.mark.netns
def test_missing_prev_result_and_bad_config(request, node, cni_path):
    w = node
    ns = w.container("c")
    run = w.run_plugin(cni_path, "portmap", "ADD", portmap_conf("1.0.0", maps(1)), ns)
    assert run.returncode == 1 and run.json["msg"] == "must be called as chained plugin"
    bad = portmap_conf("1.0.0", [{"hostPort": 0, "containerPort": 1, "protocol": "tcp"}],
                       {"cniVersion": "1.0.0", "ips": [{"address": "10.98.0.9/24"}]})
    run = w.run_plugin(cni_path, "portmap", "ADD", bad, ns)
    assert run.json["code"] == 7 and "host port" in run.json["msg"]
    assert nat_rules(w) == []


@pytest.mark.netns
@pytest.mark.parametrize("backend, conditions", [
    ("iptables", {"conditionsV4": ["-m", "nosuchmatch"]}),
    ("nftables", {"conditionsV4": ["ip nosuchfield 1"]}),
])
def test_a_rejected_batch_changes_nothing(request, node, cni_path, data_dir, backend,
                                          conditions):
    w = node
    ns = w.container("c")
    bridge = ok(w.run_plugin(cni_path, "bridge", "ADD", bridge_conf(data_dir), ns,
                             container_id="ctr1"))
    before = (nat_rules(w), nft_rules(w))
    conf = portmap_conf("1.0.0", maps(18165), bridge, backend=backend, **conditions)
    run = w.run_plugin(cni_path, "portmap", "ADD", conf, ns, container_id="ctr1")
    assert run.returncode == 1 and run.json["code"] == 999 and run.json["details"]
    assert (nat_rules(w), nft_rules(w)) == before
    ok(w.run_plugin(cni_path, "portmap", "DEL", conf, ns, container_id="ctr1"))


# ------------------------------------------------------------------ conntrack

@pytest.mark.netns
def test_stale_udp_conntrack_entry_is_flushed_on_add(request, node, cni_path, data_dir):
    """A UDP flow to the host port seen before the mapping existed would
    stick to its old conntrack entry (no DNAT) without the flush."""
    w = node
    w.host.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "203.0.113.0/24",
               "-j", "MASQUERADE")     # nat hooks on: conntrack tracks the flow
    ext = w.namespaces[1]
    assert ask(ext, "udp", EXT_HOST4, 18170, sport=40000, tries=1) is None
    attach(request, w, cni_path, data_dir, "ctr1", maps(18170))
    assert ask(ext, "udp", EXT_HOST4, 18170, sport=40000, tries=1) == "udp-ctr1"


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_udp_conntrack_entry_is_flushed_on_del(request, node, cni_path, data_dir, backend):
    """After DEL a UDP flow must not keep reaching the container through
    its old (DNATed) conntrack entry."""
    w = node
    m = maps(18175)
    c = attach(request, w, cni_path, data_dir, "ctr1", m, backend=backend)
    ext = w.namespaces[1]
    assert ask(ext, "udp", EXT_HOST4, 18175, sport=40001, tries=1) == "udp-ctr1"
    ok(w.run_plugin(cni_path, "portmap", "DEL", portmap_conf("1.0.0", m, c.result,
                                                              backend=backend),
                    c.ns, container_id="ctr1"))
    assert ask(ext, "udp", EXT_HOST4, 18175, sport=40001, tries=1) is None


# ------------------------------------------------------------------ scale

@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_twenty_containers_added_in_parallel(request, node, cni_path, data_dir, backend):
    w = node
    n = 20
    nss = [w.container(f"p{i}") for i in range(n)]
    for i, ns in enumerate(nss):
        ns.run("ip", "link", "set", "lo", "up")
        start_server(request, ns, f"p{i}")
    # the bridge first, one at a time (host-local and the bridge are not
    # what this test is about), then every portmap ADD at once
    results = [ok(w.run_plugin(cni_path, "bridge", "ADD", bridge_conf(data_dir), ns,
                               container_id=f"p{i}")) for i, ns in enumerate(nss)]

    def pm(i):
        return w.run_plugin(cni_path, "portmap", "ADD",
                            portmap_conf("1.0.0", maps(19000 + i), results[i], backend=backend),
                            nss[i], container_id=f"p{i}")
    with ThreadPoolExecutor(n) as pool:
        runs = list(pool.map(pm, range(n)))
    for run in runs:
        ok(run)
    ext = w.namespaces[1]
    for i in range(n):
        assert ask(ext, "tcp", EXT_HOST4, 19000 + i) == f"tcp-p{i}"
    if backend == "iptables":
        shared = [l for l in nat_rules(w) if "CNI-DN-" not in l]
        assert len(shared) == len(set(shared)) == 5, shared    # no duplicates

    def unpm(i):
        return w.run_plugin(cni_path, "portmap", "DEL",
                            portmap_conf("1.0.0", maps(19000 + i), results[i], backend=backend),
                            nss[i], container_id=f"p{i}")
    with ThreadPoolExecutor(n) as pool:
        for run in pool.map(unpm, range(n)):
            ok(run)
    assert leftover_rules(w, backend) == []


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_container_on_two_networks_del_removes_one(request, node, cni_path, data_dir,
                                                         backend):
    """The same container ID on two networks: DEL on one network leaves the
    other network's rules alone (the nftables rules name both)."""
    w = node
    c = attach(request, w, cni_path, data_dir, "ctr1", maps(18180), backend=backend)
    other = portmap_conf("1.0.0", maps(18181), c.result, backend=backend)
    other["name"] = "pmnet2"
    ok(w.run_plugin(cni_path, "portmap", "ADD", other, c.ns, container_id="ctr1"))
    ext = w.namespaces[1]
    assert ask(ext, "tcp", EXT_HOST4, 18181) == "tcp-ctr1"
    ok(w.run_plugin(cni_path, "portmap", "DEL",
                    portmap_conf("1.0.0", maps(18180), c.result, backend=backend), c.ns,
                    container_id="ctr1"))
    assert ask(ext, "tcp", EXT_HOST4, 18180, tries=1) is None
    assert ask(ext, "tcp", EXT_HOST4, 18181) == "tcp-ctr1"
    ok(w.run_plugin(cni_path, "portmap", "CHECK", other, c.ns, container_id="ctr1"))
    ok(w.run_plugin(cni_path, "portmap", "DEL", other, c.ns, container_id="ctr1"))
    assert leftover_rules(w, backend) == []


# ------------------------------------------------------------------ cnitool

CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")


@pytest.mark.netns
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_bridge_and_portmap_chain_through_cnitool(request, node, cni_path, data_dir, tmp_path,
                                                   version):
    w = node
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    bridge = bridge_conf(data_dir, version)
    del bridge["cniVersion"], bridge["name"]
    conflist = {"cniVersion": version, "name": NET, "plugins": [
        bridge, {"type": "portmap", "capabilities": {"portMappings": True}}]}
    (netconf / "10-pm.conflist").write_text(json.dumps(conflist))
    ns = w.container("c")
    ns.run("ip", "link", "set", "lo", "up")
    start_server(request, ns, "cnitool")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": os.pathsep.join(cni_path),
           "CNI_CACHE_DIR": str(tmp_path / "cache"),
           "CAP_ARGS": json.dumps({"portMappings": maps(18190, caps=True)})}

    def cnitool(*args):
        proc = w.host.run(CNITOOL, *args, NET, ns.path, check=False, env=env)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        return proc
    cnitool("add")
    ext = w.namespaces[1]
    assert ask(ext, "tcp", EXT_HOST4, 18190) == "tcp-cnitool"
    assert ask(w.host, "udp", "127.0.0.1", 18190) == "udp-cnitool"
    cnitool("check")
    cnitool("del")
    assert leftover_rules(w, "iptables") == []
    cnitool("del")


# ------------------------------------------------------------------ benchmark

@pytest.mark.netns
def test_benchmark_add_del_against_the_reference(request, node, cni_path, data_dir, capsys):
    """ADD+DEL wall time of ours and the reference (iptables backend, one
    TCP and one UDP mapping). Reported, and ours must not be much slower."""
    w = node
    c = attach(request, w, cni_path, data_dir, "ctr1", [])
    m = maps(18200)
    timings = {}
    for name, path in (("ours", cni_path), ("reference", [cni_path[-1]])):
        rounds = 10
        start = time.perf_counter()
        for _ in range(rounds):
            ok(w.run_plugin(path, "portmap", "ADD", portmap_conf("1.0.0", m, c.result), c.ns,
                            container_id="ctr1"))
            ok(w.run_plugin(path, "portmap", "DEL", portmap_conf("1.0.0", m, c.result), c.ns,
                            container_id="ctr1"))
        timings[name] = (time.perf_counter() - start) / rounds * 1000
    with capsys.disabled():
        print(f"\nportmap ADD+DEL ms per round: ours {timings['ours']:.1f}, "
              f"reference {timings['reference']:.1f}")
    assert leftover_rules(w, "iptables") == []
    assert timings["ours"] < 3 * timings["reference"] + 50


@pytest.mark.netns
@pytest.mark.parametrize("keys", [{}, {"snat": False}, {"conditionsV4": ["-s", "10.0.0.0/8"]}])
def test_check_sees_the_rules_in_process_where_iptables_is_nft(request, node, cni_path, data_dir,
                                                                keys):
    """CHECK's in-process look (pycni.nftexpr: the expressions iptables-nft
    writes for our rules, compared with one dump per chain) recognises
    every rule a real ADD wrote, IPv4 and IPv6, so that CHECK runs no
    `iptables-restore -C` exec; a rule removed is not seen (then `-C`
    decides, as test_check_detects_a_removed_rule shows). Forms nftexpr
    does not cover (user conditions) are not seen, never wrongly seen."""
    from pycni import fwtools, netns
    from pycni.plugins.portmap import backend, config, rules_iptables as ipt
    from pycni.result import parse_result
    w = node
    if not fwtools.iptables_nft(4):
        pytest.skip("iptables here is not iptables-nft")
    m = maps(18170)
    conf = portmap_conf("1.0.0", m, **keys)
    c = attach(request, w, cni_path, data_dir, "ctr1", m, ipv6=True, **keys)
    parsed = config.parse_config(conf)
    cips = config.container_ips(parse_result(c.result, "1.0.0"), "eth0")
    assert sorted(cip.family for cip in cips) == [4, 6]
    plans = [ipt.plan(parsed, NET, "ctr1", cip) for cip in cips]
    with netns.entered(w.host.path):
        seen = [backend.IptablesBackend.seen_in_process(p) for p in plans]
    assert seen == ([False, True] if keys.get("conditionsV4") else [True, True])
    dnat = next(line for line in nat_rules(w) if "DNAT --to-destination" in line and "udp" in line)
    w.host.run("sh", "-c", f"iptables -t nat {'-D' + dnat[2:]}")
    with netns.entered(w.host.path):
        assert backend.IptablesBackend.seen_in_process(plans[0 if cips[0].family == 4 else 1]) \
            is False
