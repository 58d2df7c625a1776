"""Issue #11 finding 2 against the real kernel: no config-, CNI_*- or
prevResult-derived string makes portmap or firewall write a second
command into an iptables-restore or nft script.

Each test runs the plugins in a world's host namespace, snapshots its
whole firewall (iptables-save, ip6tables-save, nft list ruleset) before
and after, and asserts: a refused input fails with code 7 and changes
nothing; an accepted one writes only its own rules, and DEL takes them
away again. Also the dedupe of duplicated portMappings (finding 11).
"""

import json

import pytest

pytestmark = pytest.mark.netns

CID = "ctr1"
C4, C6 = "10.96.0.5", "fd96::5"


def snapshot(ns) -> dict:
    """The host namespace's whole firewall, counters and comments aside."""
    out = {}
    for tool in ("iptables-save", "ip6tables-save"):
        text = ns.run(tool, check=False).stdout.decode()
        out[tool] = [line.split(" [")[0] if line.startswith(":") else line
                     for line in text.splitlines() if not line.startswith("#")]
    out["nft"] = ns.run("nft", "list", "ruleset", check=False).stdout.decode().splitlines()
    return out


def rule_lines(snap: dict, backend: str = "") -> list[str]:
    """Rules as iptables-save (backend iptables) or nft (nftables) shows
    them; both when no backend is named (iptables-nft rules show in both)."""
    tools = {"iptables": ("iptables-save", "ip6tables-save"), "nftables": ("nft",)}
    return [line.strip() for tool in tools.get(backend, snap) for line in snap[tool]
            if line.startswith("-A") or line.strip().startswith(("ip", "tcp", "udp", "iif",
                                                                  "jump", "fib", "meta"))]


def prev(ctr, ips=(C4 + "/24",), interfaces=None) -> dict:
    return {"cniVersion": "1.0.0",
            "interfaces": interfaces or [{"name": "eth0", "sandbox": ctr.path}],
            "ips": [{"address": a, "interface": 0} for a in ips]}


def portmap_conf(ctr, backend, maps=None, ips=(C4 + "/24",), **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "secnet", "type": "portmap", "backend": backend,
            "runtimeConfig": {"portMappings": maps or [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": prev(ctr, ips), **keys}


def refused(world, plugin_dir, plugin, conf, ctr, **kw):
    host = world.host
    before = snapshot(host)
    run = world.run_plugin(plugin_dir, plugin, "ADD", conf, ctr, **kw)
    assert run.returncode != 0, run.stdout
    assert run.error_code() == 7, run.stdout
    assert set(run.json) <= {"cniVersion", "code", "msg", "details"}
    assert snapshot(host) == before, "a refused ADD changed the firewall"
    return run


INJECTED_IPT = [
    ["-m", "comment", "--comment", "x\nCOMMIT\n*filter\n-I INPUT 1 -j ACCEPT\nCOMMIT\n*nat\n#"],
    ["-s", "1.2.3.4\n-I INPUT 1 -j ACCEPT"],
    ["-m", "comment", "--comment", "x\nCOMMIT\n*filter\n-F\nCOMMIT\n*nat\n#"],
    ["-I", "INPUT", "1", "-j", "ACCEPT"],
    ["-j", "ACCEPT"],
    ["-t", "filter"],
    ["-M", "/tmp/evil-modprobe"],
    ["-h"],
    ["-s", "1.2.3.4\0"],
]


@pytest.mark.parametrize("conds", INJECTED_IPT)
@pytest.mark.parametrize("key", ["conditionsV4", "conditionsV6"])
def test_portmap_iptables_conditions_cannot_inject(world, plugin_dir, conds, key):
    ctr = world.container()
    # a filter INPUT rule of "another tenant" that an injected -F would flush
    world.host.run("iptables", "-A", "INPUT", "-s", "10.200.0.1", "-j", "DROP")
    refused(world, plugin_dir, "portmap",
            portmap_conf(ctr, "iptables", ips=(C4 + "/24", C6 + "/64"), **{key: conds}), ctr)


def line_split_conditions() -> list[str]:
    """Allowed tokens only, but the entry rule is longer than
    iptables-restore's 10240-byte line buffer, and the tail it would read
    as a line of its own is `-I PREROUTING 1 -j ACCEPT -m comment --comment "...`."""
    def ipt_line(args):      # iptables-restore quoting, as the plugin writes it
        return " ".join(a if all(c.isalnum() or c in "-_./:,!+@%=[]" for c in a)
                        else '"' + a + '"' for a in args)
    prefix = ('-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"secnet\\" id: '
              '\\"ctr1\\"" -m multiport --dports 8080 ')
    conds, pad = [], ["-m", "comment", "--comment", "b" * 200]
    while len(prefix + ipt_line(conds + pad)) < 10239 - 300:
        conds += pad
    conds += ["-m", "comment", "--comment"]
    at = len(prefix + ipt_line(conds)) + 2          # after the opening quote
    conds.append("a" * (10239 - at) + "-I PREROUTING 1 -j ACCEPT -m comment --comment ")
    return conds


def test_portmap_conditions_cannot_overflow_the_restore_line_buffer(world, plugin_dir):
    ctr = world.container()
    refused(world, plugin_dir, "portmap",
            portmap_conf(ctr, "iptables", conditionsV4=line_split_conditions()), ctr)


INJECTED_NFT = [
    ["ip saddr 1.2.3.4\nadd table ip evil\nadd chain ip evil c"],
    ["ip saddr 1.2.3.4 ; add table ip evil"],
    ["ip saddr 1.2.3.4 jump hostports_all ; }\nadd table ip evil\n#"],
    ["}", "add table ip evil"],
    ["accept"],
    ["meta mark set 0x1"],
    ["ip saddr 1.2.3.4 #"],
]


@pytest.mark.parametrize("conds", INJECTED_NFT)
def test_portmap_nft_conditions_cannot_inject(world, plugin_dir, conds):
    ctr = world.container()
    world.host.run("nft", "add table inet tenant ; add chain inet tenant c ; "
                          "add rule inet tenant c ip saddr 10.200.0.1 drop")
    refused(world, plugin_dir, "portmap", portmap_conf(ctr, "nftables", conditionsV4=conds), ctr)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("host_ip", ["fe80::1%x\n-I INPUT 1 -j ACCEPT", "fe80::1%x;add table ip evil"])
def test_portmap_host_ip_cannot_inject(world, plugin_dir, backend, host_ip):
    ctr = world.container()
    maps = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": host_ip}]
    refused(world, plugin_dir, "portmap",
            portmap_conf(ctr, backend, maps, ips=(C4 + "/24", C6 + "/64")), ctr)


@pytest.mark.parametrize("chain", ["CNI-X\n-I INPUT 1 -j ACCEPT", "-j ACCEPT"])
def test_portmap_external_set_mark_chain_cannot_inject(world, plugin_dir, chain):
    ctr = world.container()
    refused(world, plugin_dir, "portmap",
            portmap_conf(ctr, "iptables", externalSetMarkChain=chain), ctr)


@pytest.mark.parametrize("backend,conds,expect", [
    ("iptables", ["-s", "10.200.0.9"], "-s 10.200.0.9/32"),
    ("iptables", ["!", "-s", "10.200.0.0/16"], "! -s 10.200.0.0/16"),
    ("iptables", ["-m", "comment", "--comment", 'it\'s "q" \\ x'],
     '--comment "it\\\'s \\"q\\" \\\\ x"'),
    ("nftables", ["ip saddr 10.200.0.9"], "ip saddr 10.200.0.9 fib daddr type local"),
    ("nftables", ['iifname { "a", "b" }'], 'iifname { "a", "b" } fib daddr type local'),
])
def test_portmap_harmless_conditions_are_just_matches(world, plugin_dir, backend, conds, expect):
    ctr, host = world.container(), world.host
    conf = portmap_conf(ctr, backend, conditionsV4=conds)
    run = world.run_plugin(plugin_dir, "portmap", "ADD", conf, ctr)
    assert run.ok, run.stdout
    after = snapshot(host)
    assert any(expect in line for line in rule_lines(after, backend))
    assert not any("INPUT" in line and "ACCEPT" in line for line in rule_lines(after))
    assert world.run_plugin(plugin_dir, "portmap", "CHECK", conf, ctr).ok
    assert world.run_plugin(plugin_dir, "portmap", "DEL", conf, ctr).ok
    gone = snapshot(host)
    assert not any("10.96.0.5" in line or "secnet" in line for line in rule_lines(gone))


DUPS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8081, "containerPort": 81, "protocol": "udp"},
        {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
        {"HostPort": 8081, "ContainerPort": 81, "Protocol": "udp"},
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_portmap_duplicated_mappings_give_each_rule_once(world, plugin_dir, backend):
    ctr, host = world.container(), world.host
    conf = portmap_conf(ctr, backend, DUPS, ips=(C4 + "/24", C6 + "/64"))
    single = portmap_conf(ctr, backend, DUPS[:2], ips=(C4 + "/24", C6 + "/64"))
    run = world.run_plugin(plugin_dir, "portmap", "ADD", conf, ctr)
    assert run.ok, run.stdout
    snap = snapshot(host)
    rules = rule_lines(snap, backend)
    for tool in ("iptables-save", "ip6tables-save") if backend == "iptables" else ("nft",):
        mine = [line for line in rule_lines({tool: snap[tool]})
                if "8080" in line or "8081" in line]
        assert mine and len(mine) == len(set(mine)), mine
    if backend == "iptables":
        assert sum("--dport 8080 -j DNAT" in line for line in rules) == 2    # v4 + v6
        assert any("--dports 8080,8081" in line for line in rules) or \
            sum("--dports" in line for line in rules) == 4                 # tcp + udp per family
        assert not any("8080,8080" in line or "8081,8081" in line for line in rules)
    else:
        # (between the port and the dnat: the network's tag, rules_nftables)
        assert sum("tcp dport 8080 " in line and " dnat to " in line for line in rules) == 2
        assert sum("udp dport 8081 " in line and " dnat to " in line for line in rules) == 2
    # CHECK agrees with what ADD made, with and without the repeats
    assert world.run_plugin(plugin_dir, "portmap", "CHECK", conf, ctr).ok
    assert world.run_plugin(plugin_dir, "portmap", "CHECK", single, ctr).ok
    assert world.run_plugin(plugin_dir, "portmap", "DEL", conf, ctr).ok
    assert not any("8080" in line or "8081" in line for line in rule_lines(snapshot(host)))


# --- firewall -------------------------------------------------------------------------

def fw_conf(ctr, backend, bridge="cnisec0", **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "secfw", "type": "firewall", "backend": backend,
            "prevResult": prev(ctr, interfaces=[{"name": bridge}, {"name": "veth0"},
                                                {"name": "eth0", "sandbox": ctr.path}]),
            **keys}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("bridge", ["br\n-I INPUT 1 -j ACCEPT", 'br";flush ruleset', "cni+",
                                    "cni*", "br\0x"])
def test_firewall_bridge_name_from_prev_result_cannot_inject(world, plugin_dir, backend, bridge):
    ctr = world.container()
    refused(world, plugin_dir, "firewall",
            fw_conf(ctr, backend, bridge, ingressPolicy="isolated"), ctr)


@pytest.mark.parametrize("chain", ["CNI-ADMIN\n-I INPUT 1 -j ACCEPT", "A\0B", "-j"])
def test_firewall_admin_chain_cannot_inject(world, plugin_dir, chain):
    ctr = world.container()
    refused(world, plugin_dir, "firewall",
            fw_conf(ctr, "iptables", iptablesAdminChainName=chain), ctr)


def test_firewall_nft_strange_ifname_stays_inside_its_comment(world, plugin_dir):
    ctr, host = world.container(), world.host
    ifname = 'e";}#{x'
    conf = fw_conf(ctr, "nftables", ingressPolicy="same-bridge")
    run = world.run_plugin(plugin_dir, "firewall", "ADD", conf, ctr, ifname=ifname)
    assert run.ok, run.stdout
    listing = json.loads(host.run("nft", "-j", "list", "ruleset").stdout)["nftables"]
    tables = {(i["table"]["family"], i["table"]["name"]) for i in listing if "table" in i}
    assert tables == {("inet", "cni_plugins_firewall")}
    comments = [i["rule"].get("comment", "") for i in listing
                if "rule" in i and i["rule"]["chain"] == "containers"]
    assert len(comments) == 2 and all("if: e;}#{x, id: ctr1" in c for c in comments)
    assert world.run_plugin(plugin_dir, "firewall", "CHECK", conf, ctr, ifname=ifname).ok
    assert world.run_plugin(plugin_dir, "firewall", "DEL", conf, ctr, ifname=ifname).ok
    listing = json.loads(host.run("nft", "-j", "list", "ruleset").stdout)["nftables"]
    assert not [i for i in listing if "rule" in i and i["rule"]["chain"] == "containers"]


# --- bridge: macspoofchk and ipMasq with a strange CNI_IFNAME --------------------------

@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_bridge_spoofcheck_and_ipmasq_keep_a_strange_ifname_as_data(world, plugin_dir,
                                                                      tmp_path, backend):
    ctr, host = world.container(), world.host
    ifname = 'e";}#{x'
    conf = {"cniVersion": "1.0.0", "name": "secbr", "type": "bridge", "bridge": "cnisec1",
            "isGateway": True, "ipMasq": True, "ipMasqBackend": backend, "macspoofchk": True,
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.95.0.0/24"}]]}}
    before = snapshot(host)
    run = world.run_plugin(plugin_dir, "bridge", "ADD", conf, ctr, ifname=ifname,
                           container_id="c-1")
    assert run.ok, run.stdout
    listing = json.loads(host.run("nft", "-j", "list", "ruleset").stdout)["nftables"]
    tables = {(i["table"]["family"], i["table"]["name"]) for i in listing if "table" in i}
    assert ("bridge", "nat") in tables
    assert not any(name == "evil" or "flush" in name for _, name in tables)
    chains = {i["chain"]["name"] for i in listing if "chain" in i
              and i["chain"]["table"] == "nat" and i["chain"]["family"] == "bridge"}
    assert chains == {"PREROUTING", f"cni-br-iface-c-1-{ifname}",
                      f"cni-br-iface-c-1-{ifname}-mac"}
    assert world.run_plugin(plugin_dir, "bridge", "DEL", conf, ctr, ifname=ifname,
                            container_id="c-1").ok
    after = rule_lines(snapshot(host))
    assert not any("10.95.0." in line or "cni-br-iface" in line for line in after)
    # only the shared postrouting skeleton of the nft masquerading may stay
    assert set(after) <= {"ip daddr 224.0.0.0/4 return", "ip6 daddr ff00::/8 return"}
    assert rule_lines(before) == []


@pytest.mark.parametrize("backend,bad", [
    ("iptables", ["-s", "1.2.3.4\n-I INPUT 1 -j ACCEPT"]),
    ("nftables", ["ip saddr 1.2.3.4 ; add table ip evil"]),
])
def test_portmap_del_with_a_refused_condition_still_cleans_up(world, plugin_dir, backend, bad):
    """DEL and GC write no condition into any rule: a config that ADD
    would refuse must not keep DEL from removing the container's rules."""
    ctr, host = world.container(), world.host
    before = snapshot(host)
    good = portmap_conf(ctr, backend)
    assert world.run_plugin(plugin_dir, "portmap", "ADD", good, ctr).ok
    evil = portmap_conf(ctr, backend, conditionsV4=bad)
    check = world.run_plugin(plugin_dir, "portmap", "CHECK", evil, ctr)
    assert check.error_code() == 7, check.stdout
    run = world.run_plugin(plugin_dir, "portmap", "DEL", evil, ctr)
    assert run.ok, run.stdout
    after = snapshot(host)
    assert not any("10.96.0.5" in line for line in rule_lines(after))
    assert not any("evil" in line or "INPUT -j ACCEPT" in line for line in rule_lines(after))
    assert rule_lines(before) == []
