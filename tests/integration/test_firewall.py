"""firewall against the real kernel, next to the reference firewall
(Debian containernetworking-plugins 1.1.1, /usr/lib/cni/firewall,
iptables only).

The chain is our bridge + host-local (temporary dataDir), then firewall
with the bridge's result as prevResult, all from our plugin directory.
Every world has a "host" namespace (forwarding on inside it only) and an
"external" namespace routed to it over a veth, without NAT. Rules are
read with iptables-save / nft inside the host namespace only.
"""

import pytest

BACKENDS = ["iptables", "nftables"]
EXT_HOST4, EXT_PEER4 = "192.168.78.1", "192.168.78.2"
NETS = {  # name: (bridge, subnet, gateway)
    "fwa": ("cnifwa0", "10.97.0.0/24", "10.97.0.1"),
    "fwb": ("cnifwb0", "10.97.1.0/24", "10.97.1.1"),
}
TABLE = "inet cni_plugins_firewall"

pytestmark = pytest.mark.netns


@pytest.fixture
def node(world):
    host, ext = world.host, world.external("ext")
    host.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    host.run("ip", "link", "add", "fwext0", "type", "veth", "peer", "name", "fwext1")
    host.run("ip", "link", "set", "fwext1", "netns", ext.name)
    host.run("ip", "addr", "add", f"{EXT_HOST4}/24", "dev", "fwext0")
    host.run("ip", "link", "set", "fwext0", "up")
    ext.run("ip", "addr", "add", f"{EXT_PEER4}/24", "dev", "fwext1")
    ext.run("ip", "link", "set", "fwext1", "up")
    ext.run("ip", "route", "add", "default", "via", EXT_HOST4)
    world.ext = ext
    return world


def bridge_conf(data_dir, net="fwa", version="1.0.0") -> dict:
    bridge, subnet, gw = NETS[net]
    return {"cniVersion": version, "name": net, "type": "bridge", "bridge": bridge,
            "isDefaultGateway": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gw}]],
                     "dataDir": data_dir}}


def fw_conf(net="fwa", prev=None, version="1.0.0", **keys) -> dict:
    conf = {"cniVersion": version, "name": net, "type": "firewall", **keys}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def ok(run):
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    return run.json


class Attached:
    def __init__(self, ns, cid, net, result):
        self.ns, self.cid, self.net, self.result = ns, cid, net, result

    @property
    def ip(self) -> str:
        return self.result["ips"][0]["address"].split("/")[0]


def attach(w, plugin_dir, data_dir, cid, net="fwa", firewall=None, **keys) -> Attached:
    """bridge ADD, then firewall ADD (ours, or the binary `firewall`)."""
    ns = w.container(cid)
    bridge = ok(w.run_plugin(plugin_dir, "bridge", "ADD", bridge_conf(data_dir, net), ns,
                             container_id=cid))
    conf = fw_conf(net, bridge, **keys)
    if firewall:
        run = w.exec_binary(firewall, w.plugin_env("ADD", plugin_dir, ns, container_id=cid),
                            conf)
    else:
        run = w.run_plugin(plugin_dir, "firewall", "ADD", conf, ns, container_id=cid)
    result = ok(run)
    assert result["ips"] == bridge["ips"] and result["interfaces"] == bridge["interfaces"]
    return Attached(ns, cid, net, bridge)


def fw(w, plugin_dir, command, c: Attached, prev=True, netns=None, binary=None, **keys):
    conf = fw_conf(c.net, c.result if prev else None, **keys)
    env = w.plugin_env(command, plugin_dir, c.ns if netns is None else netns,
                       container_id=c.cid)
    if binary:
        return w.exec_binary(binary, env, conf)
    return w.exec_plugin("firewall", env, conf)


def filter_rules(w, family=4) -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    out = w.host.run(tool, "-t", "filter").stdout.decode()
    return [line for line in out.splitlines() if line.startswith("-A ")]


def nft_table(w) -> str:
    proc = w.host.run("nft", "list", "table", *TABLE.split(), check=False)
    return proc.stdout.decode() if proc.returncode == 0 else ""


def container_rules(w, backend, c: Attached) -> list[str]:
    if backend == "iptables":
        return [r for r in filter_rules(w) if f" {c.ip}/32 " in r]
    return [r.strip() for r in nft_table(w).splitlines() if f"id: {c.cid}" in r
            and f"net: {c.net}," in r]


# ------------------------------------------------------------------ lifecycle

@pytest.mark.parametrize("backend", BACKENDS)
def test_add_check_del_del(node, plugin_dir, tmp_path, backend):
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend=backend)
    if backend == "iptables":
        assert container_rules(w, backend, c) == [
            f"-A CNI-FORWARD -d {c.ip}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A CNI-FORWARD -s {c.ip}/32 -j ACCEPT"]
        rules = filter_rules(w)
        assert rules[0] == ('-A FORWARD -m comment --comment "CNI firewall plugin rules" '
                            "-j CNI-FORWARD")
        assert ('-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" '
                "-j CNI-ADMIN") in rules
        assert "table inet cni_plugins_firewall" not in \
            w.host.run("nft", "list", "tables").stdout.decode()
    else:
        assert [r.split(" comment ")[0] for r in container_rules(w, backend, c)] == [
            f"ip daddr {c.ip} ct state established,related accept",
            f"ip saddr {c.ip} accept"]
        assert filter_rules(w) == []        # nothing through iptables
    ok(fw(w, plugin_dir, "CHECK", c, backend=backend))

    ok(fw(w, plugin_dir, "DEL", c, backend=backend))
    assert container_rules(w, backend, c) == []
    failed = fw(w, plugin_dir, "CHECK", c, backend=backend)
    assert failed.returncode == 1 and "not found" in failed.json["msg"]
    ok(fw(w, plugin_dir, "DEL", c, backend=backend))          # twice
    ok(fw(w, plugin_dir, "DEL", c, prev=False, netns="", backend=backend))
    ok(w.run_plugin(plugin_dir, "bridge", "DEL", bridge_conf(str(tmp_path)), c.ns,
                    container_id=c.cid))


@pytest.mark.parametrize("backend", BACKENDS)
def test_del_of_one_container_keeps_the_others(node, plugin_dir, tmp_path, backend):
    w = node
    c1 = attach(w, plugin_dir, str(tmp_path), "fw1", backend=backend)
    c2 = attach(w, plugin_dir, str(tmp_path), "fw2", backend=backend)
    ok(fw(w, plugin_dir, "DEL", c1, backend=backend))
    assert container_rules(w, backend, c1) == []
    assert len(container_rules(w, backend, c2)) == 2
    ok(fw(w, plugin_dir, "CHECK", c2, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_del_with_missing_netns(node, plugin_dir, tmp_path, backend):
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend=backend)
    gone = c.ns.path
    w.host.run("ip", "netns", "del", c.ns.name)
    ok(fw(w, plugin_dir, "DEL", c, netns=gone, backend=backend))
    assert container_rules(w, backend, c) == []
    ok(fw(w, plugin_dir, "DEL", c, netns="", prev=False, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("admin", ["CNI-ADMIN\n-I INPUT 1 -j ACCEPT", "has space", "ACCEPT"])
def test_del_takes_an_invalid_admin_chain_name_and_writes_it_nowhere(node, plugin_dir,
                                                                     tmp_path, backend, admin):
    """The reference's DEL never reads iptablesAdminChainName; ours removes
    the container's rules and leaves everything else, the admin chain and
    its jump included, as it was (ADD and CHECK still refuse the name)."""
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend=backend)
    assert fw(w, plugin_dir, "CHECK", c, backend=backend,
              iptablesAdminChainName=admin).error_code() == 7
    before = filter_rules(w), nft_table(w).splitlines()
    ok(fw(w, plugin_dir, "DEL", c, backend=backend, iptablesAdminChainName=admin))
    assert container_rules(w, backend, c) == []
    after = filter_rules(w), nft_table(w).splitlines()
    assert [r for r in before[0] if r not in after[0]] == \
        ([f"-A CNI-FORWARD -d {c.ip}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
          f"-A CNI-FORWARD -s {c.ip}/32 -j ACCEPT"] if backend == "iptables" else [])
    assert set(after[0]) <= set(before[0]) and set(after[1]) <= set(before[1])
    assert not any("INPUT" in r for r in after[0])
    ok(fw(w, plugin_dir, "DEL", c, backend=backend, iptablesAdminChainName=admin))   # twice


def test_nft_del_without_prev_result_finds_the_rules(node, plugin_dir, tmp_path):
    """containerd's second DEL has neither netns nor prevResult."""
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend="nftables")
    ok(fw(w, plugin_dir, "DEL", c, netns="", prev=False, backend="nftables"))
    assert container_rules(w, "nftables", c) == []


def test_iptables_del_without_prev_result_removes_nothing(node, plugin_dir, tmp_path):
    """The reference's rules name no container: without prevResult they
    cannot be attributed, and DEL succeeds without touching them."""
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend="iptables")
    ok(fw(w, plugin_dir, "DEL", c, netns="", prev=False, backend="iptables"))
    assert len(container_rules(w, "iptables", c)) == 2
    ok(fw(w, plugin_dir, "DEL", c, backend="iptables"))
    assert container_rules(w, "iptables", c) == []


def test_nft_gc_is_scoped_to_network_and_attachment(node, plugin_dir, tmp_path):
    w = node
    a1 = attach(w, plugin_dir, str(tmp_path), "fw1", "fwa", backend="nftables")
    a2 = attach(w, plugin_dir, str(tmp_path), "fw2", "fwa", backend="nftables")
    b1 = attach(w, plugin_dir, str(tmp_path), "fw3", "fwb", backend="nftables")
    conf = fw_conf("fwa", version="1.1.0", backend="nftables",
                   **{"cni.dev/valid-attachments": [{"containerID": "fw2", "ifname": "eth0"}]})
    ok(w.run_plugin(plugin_dir, "firewall", "GC", conf))
    assert container_rules(w, "nftables", a1) == []
    assert len(container_rules(w, "nftables", a2)) == 2
    assert len(container_rules(w, "nftables", b1)) == 2       # other network untouched


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("admin", ["CNI-ADMIN\n-I INPUT 1 -j ACCEPT", "has space"])
def test_gc_takes_an_invalid_admin_chain_name_as_del_does(node, plugin_dir, tmp_path,
                                                          backend, admin):
    """GC does not fail on a config DEL accepts: it still removes the
    stale attachments' rules (nftables; iptables rules carry no owner) and
    the name goes into no rule."""
    w = node
    stale = attach(w, plugin_dir, str(tmp_path), "fxgc1", backend=backend)
    kept = attach(w, plugin_dir, str(tmp_path), "fxgc2", backend=backend)
    before = filter_rules(w), nft_table(w).splitlines()
    conf = fw_conf("fwa", version="1.1.0", backend=backend, iptablesAdminChainName=admin,
                   **{"cni.dev/valid-attachments": [{"containerID": "fxgc2", "ifname": "eth0"}]})
    ok(w.run_plugin(plugin_dir, "firewall", "GC", conf))
    after = filter_rules(w), nft_table(w).splitlines()
    assert len(container_rules(w, backend, kept)) == 2
    if backend == "nftables":
        assert container_rules(w, backend, stale) == []
    else:
        assert after[0] == before[0]        # nothing attributable: nothing removed
    assert set(after[0]) <= set(before[0]) and set(after[1]) <= set(before[1])
    assert not any("INPUT" in r or "has space" in r for r in after[0] + after[1])


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_versions(node, plugin_dir, tmp_path, version):
    w = node
    ns = w.container("fw1")
    bridge = ok(w.run_plugin(plugin_dir, "bridge", "ADD",
                             bridge_conf(str(tmp_path), version=version), ns,
                             container_id="fw1"))
    out = ok(w.run_plugin(plugin_dir, "firewall", "ADD",
                          fw_conf(prev=bridge, version=version, backend="iptables"), ns,
                          container_id="fw1"))
    assert out["cniVersion"] == version and out["ips"] == bridge["ips"]
    ok(w.run_plugin(plugin_dir, "firewall", "CHECK",
                    fw_conf(prev=bridge, version=version, backend="iptables"), ns,
                    container_id="fw1"))


def test_firewalld_backend_without_a_bus_fails_and_leaves_nothing(node, plugin_dir, tmp_path):
    """(With firewalld: tests/integration/test_firewalld.py.) The bus is a
    path that does not exist, never the machine's."""
    w = node
    ns = w.container("fw1")
    run = w.run_plugin(plugin_dir, "firewall", "ADD",
                       fw_conf(prev={"cniVersion": "1.0.0", "ips": [
                           {"address": "10.97.0.9/24"}]}, backend="firewalld"), ns,
                       container_id="fw1",
                       extra={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/pycni-bus"})
    assert run.returncode == 1 and run.json["code"] == 999
    assert run.json["msg"].startswith("failed to connect to the system bus (firewalld)")
    assert filter_rules(w) == [] and nft_table(w) == ""


# ------------------------------------------------------------------ traffic

def deny_forwarding(w, backend) -> None:
    """The host's forward policy becomes drop: the iptables FORWARD
    policy, or the policy of our nft forward chain (which the plugin
    creates as accept and never resets)."""
    if backend == "iptables":
        w.host.run("iptables", "-P", "FORWARD", "DROP")
    else:
        w.host.run("nft", "add", "chain", *TABLE.split(), "forward", "{ policy drop ; }")


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_drop_policy_lets_containers_out(node, plugin_dir, tmp_path, backend):
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend=backend)
    deny_forwarding(w, backend)
    assert c.ns.pings(EXT_PEER4), "container -> external with the firewall rules"
    ok(fw(w, plugin_dir, "DEL", c, backend=backend))
    assert not c.ns.pings(EXT_PEER4, tries=2), "nothing gets through without them"
    assert not w.ext.pings(c.ip, tries=2)
    # a second ADD keeps the administrator's policy (nft) and works again
    ok(fw(w, plugin_dir, "ADD", c, backend=backend))
    assert c.ns.pings(EXT_PEER4)
    assert not w.ext.pings(c.ip, tries=2), "new connections from outside stay blocked"


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_blocks_other_bridges(node, plugin_dir, tmp_path, backend):
    w = node
    a = attach(w, plugin_dir, str(tmp_path), "fw1", "fwa", backend=backend,
               ingressPolicy="isolated")
    b = attach(w, plugin_dir, str(tmp_path), "fw2", "fwb", backend=backend,
               ingressPolicy="isolated")
    assert not a.ns.pings(b.ip, tries=2) and not b.ns.pings(a.ip, tries=2)
    assert a.ns.pings(EXT_PEER4) and b.ns.pings(EXT_PEER4)
    ok(fw(w, plugin_dir, "CHECK", a, backend=backend, ingressPolicy="isolated"))
    if backend == "iptables":
        rules = filter_rules(w)
        assert rules[0].endswith("-j CNI-ISOLATION-STAGE-1")
        assert ('-A CNI-ISOLATION-STAGE-1 -i cnifwa0 -o cnifwa0 -m comment --comment '
                '"CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP') in rules
    else:
        import json
        from pycni.plugins.firewall.rules_nftables import parse_listing
        listing = parse_listing(json.loads(
            w.host.run("nft", "-j", "list", "table", *TABLE.split()).stdout))
        assert listing.sets["isolated_pairs"] == {"cnifwa0 . cnifwa0", "cnifwb0 . cnifwb0"}
        assert listing.sets["isolating_bridges"] == {"cnifwa0", "cnifwb0"}


def filter_bridged_traffic(w, required=True) -> None:
    """Make bridged IPv4 traffic pass the forward hooks (br_netfilter,
    per namespace), which is what lets a policy act within one bridge."""
    proc = w.host.run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", check=False)
    if proc.returncode != 0 and required:
        pytest.skip("br_netfilter is not loaded on this machine")


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_blocks_the_same_bridge_too(node, plugin_dir, tmp_path, backend):
    w = node
    filter_bridged_traffic(w)
    a1 = attach(w, plugin_dir, str(tmp_path), "fw1", "fwa", backend=backend,
                ingressPolicy="isolated")
    a2 = attach(w, plugin_dir, str(tmp_path), "fw2", "fwa", backend=backend,
                ingressPolicy="isolated")
    assert not a1.ns.pings(a2.ip, tries=2) and not a2.ns.pings(a1.ip, tries=2)
    assert a1.ns.pings(EXT_PEER4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_bridge_allows_the_bridge_only(node, plugin_dir, tmp_path, backend):
    w = node
    a1 = attach(w, plugin_dir, str(tmp_path), "fw1", "fwa", backend=backend,
                ingressPolicy="same-bridge")
    a2 = attach(w, plugin_dir, str(tmp_path), "fw2", "fwa", backend=backend,
                ingressPolicy="same-bridge")
    b = attach(w, plugin_dir, str(tmp_path), "fw3", "fwb", backend=backend,
               ingressPolicy="same-bridge")
    filter_bridged_traffic(w, required=False)   # the policy, not the bridge, decides
    assert a1.ns.pings(a2.ip) and a2.ns.pings(a1.ip)
    assert not a1.ns.pings(b.ip, tries=2) and not b.ns.pings(a1.ip, tries=2)
    assert a1.ns.pings(EXT_PEER4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_policy_lets_bridges_talk(node, plugin_dir, tmp_path, backend):
    """The counter-check for the isolation tests: the two bridges route."""
    w = node
    a = attach(w, plugin_dir, str(tmp_path), "fw1", "fwa", backend=backend)
    b = attach(w, plugin_dir, str(tmp_path), "fw2", "fwb", backend=backend)
    assert a.ns.pings(b.ip) and b.ns.pings(a.ip)


# ------------------------------------------------------------------ reference interop

REF = "/usr/lib/cni/firewall"


def test_ours_then_reference(node, plugin_dir, tmp_path, ref_dir):
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", backend="iptables")
    ok(fw(w, plugin_dir, "CHECK", c, binary=REF, backend="iptables"))
    ok(fw(w, plugin_dir, "DEL", c, binary=REF, backend="iptables"))
    assert container_rules(w, "iptables", c) == []
    assert fw(w, plugin_dir, "CHECK", c, backend="iptables").returncode == 1


def test_reference_then_ours(node, plugin_dir, tmp_path, ref_dir):
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", firewall=REF, backend="iptables")
    assert len(container_rules(w, "iptables", c)) == 2
    ok(fw(w, plugin_dir, "CHECK", c, backend="iptables"))
    # a repeated ADD by us adds nothing the reference already made
    before = filter_rules(w)
    ok(fw(w, plugin_dir, "ADD", c, backend="iptables"))
    assert filter_rules(w) == before
    ok(fw(w, plugin_dir, "DEL", c, backend="iptables"))
    assert container_rules(w, "iptables", c) == []
    assert fw(w, plugin_dir, "CHECK", c, binary=REF, backend="iptables").returncode == 1


def test_reference_same_bridge_rules_satisfy_ours(node, plugin_dir, tmp_path, ref_dir):
    """v1.1.1 comments its isolation rules differently; ours are not added twice."""
    w = node
    c = attach(w, plugin_dir, str(tmp_path), "fw1", firewall=REF, backend="iptables",
               ingressPolicy="same-bridge")
    before = filter_rules(w)
    ok(fw(w, plugin_dir, "CHECK", c, backend="iptables", ingressPolicy="same-bridge"))
    ok(fw(w, plugin_dir, "ADD", c, backend="iptables", ingressPolicy="same-bridge"))
    assert filter_rules(w) == before


# ------------------------------------------------------------------ concurrency

@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_add_and_del(node, plugin_dir, backend):
    """Concurrent ADDs create the shared layout once and every container's
    rules; concurrent DELs remove them all (batches that lose a race are
    recomputed)."""
    from concurrent.futures import ThreadPoolExecutor
    w = node
    ns = w.container("fw")
    cids = [f"par{i}" for i in range(8)]

    def prev(i):
        return {"cniVersion": "1.0.0", "interfaces": [{"name": "cnifwa0"}],
                "ips": [{"address": f"10.97.0.{10 + i}/24"},
                        {"address": f"fd97::{10 + i:x}/64"}]}

    def call(command, i):
        return w.run_plugin(plugin_dir, "firewall", command,
                            fw_conf(prev=prev(i), backend=backend, ingressPolicy="same-bridge"),
                            ns, container_id=cids[i])

    with ThreadPoolExecutor(8) as pool:
        for run in pool.map(lambda i: call("ADD", i), range(8)):
            ok(run)
    for i in range(8):
        ok(call("CHECK", i))
    if backend == "iptables":
        for family in (4, 6):
            rules = filter_rules(w, family)
            assert sum(r.endswith("-j CNI-FORWARD") for r in rules) == 1
            assert sum(r.endswith("-j CNI-ISOLATION-STAGE-1") for r in rules) == 1
            assert sum(r.startswith("-A CNI-FORWARD -s ") for r in rules) == 8
    else:
        table = nft_table(w)
        assert table.count("jump containers") == 1
        assert table.count('"cnifwa0" . "cnifwa0"') == 1      # in bridge_pairs
        assert sum("id: par" in line for line in table.splitlines()) == 32
    with ThreadPoolExecutor(8) as pool:
        for run in pool.map(lambda i: call("DEL", i), range(8)):
            ok(run)
    if backend == "iptables":
        assert not [r for f in (4, 6) for r in filter_rules(w, f) if " -s " in r or " -d " in r]
    else:
        assert "id: par" not in nft_table(w)
