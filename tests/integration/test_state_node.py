"""`pycni state` and `pycni gc` on a real node stand-in: attachments made with
cnitool (and with the Go libcni client), a container whose netns vanished
behind the runtime's back (what a reboot does to every container), one the
runtime forgot (its cache entry gone). `pycni state` shows the leak,
`pycni gc --dry-run` lists it and changes nothing, `pycni gc` frees exactly
the leaked addresses and rules and nothing live.

Everything runs in the world's host namespace (`ip netns exec`): the
firewall and links it reads and the plugins it runs are the world's."""

import json
import os
import sys

import pytest

from netns_world import delete_namespace
from test_golibcni import golibcni  # noqa: F401  (the Go libcni client fixture)

BIN = os.path.dirname(sys.executable)
CNITOOL = os.path.join(BIN, "cnitool")
PYCNI = os.path.join(BIN, "pycni")
NET = "sttnet"


class Node:
    def __init__(self, world, plugin_dir, tmp_path, conflist: dict):
        self.world = world
        self.plugin_dir = plugin_dir
        self.netconf = tmp_path / "net.d"
        self.netconf.mkdir()
        self.data = tmp_path / "networks"
        self.cache = tmp_path / "cache"
        (self.netconf / "10-stt.conflist").write_text(json.dumps(conflist))

    def env(self, **extra) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
                "NETCONFPATH": str(self.netconf), "CNI_PATH": self.plugin_dir,
                "CNI_CACHE_DIR": str(self.cache), **extra}

    def run(self, *argv, ok=True, **env):
        proc = self.world.host.run(*argv, check=False, env=self.env(**env))
        if ok:
            assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return proc

    def cnitool(self, *args, **env):
        proc = self.run(CNITOOL, *args, **env)
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def pycni(self, *args) -> str:
        return self.run(PYCNI, *args).stdout.decode()

    def state(self) -> dict:
        (net,) = json.loads(self.pycni("state", "--json", NET))["networks"]
        return net

    def kernel(self) -> dict:
        """What gc --dry-run must leave exactly as it is."""
        saved = {tool: self.run(tool, "-t", "nat").stdout.decode()
                 for tool in ("iptables-save", "ip6tables-save")}
        # counters change with traffic: compare the rules only
        saved = {k: [l for l in v.splitlines() if not l.startswith(("#", ":"))]
                 for k, v in saved.items()}
        store = {}
        for top in (self.data, self.cache):
            for root, _dirs, names in os.walk(top):
                for name in names:
                    path = os.path.join(root, name)
                    with open(path, "rb") as f:
                        store[path] = (os.lstat(path).st_mode, f.read())
        saved["nft"] = self.run("nft", "list", "ruleset").stdout.decode().splitlines()
        links = sorted(l["ifname"] for l in self.world.host.ip_json("link", "show"))
        return {"firewall": saved, "files": store, "links": links}


def bridge_portmap(data_dir, version="1.1.0", backend="iptables") -> dict:
    return {"cniVersion": version, "name": NET, "plugins": [
        {"type": "bridge", "bridge": "sttbr0", "isGateway": True, "ipMasq": True,
         "ipMasqBackend": backend,
         "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": str(data_dir)}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


MASQ_WHERE = {"iptables": "iptables nat", "nftables": "nft inet cni_plugins_masquerade"}


def ports(host_port: int) -> str:
    return json.dumps({"portMappings": [
        {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]})


def owner_of(net: dict, cid: str) -> str:
    (owner,) = {a["owner"] for a in net["allocations"] if a["containerID"] == cid}
    return owner


def objects_of(net: dict, cid: str) -> set:
    return {(o["kind"], o["where"]) for o in net["hostObjects"] if o["containerID"] == cid}


def line_of(obj: dict, gc: bool = False) -> str:
    owner = f"{obj['containerID']} {obj['ifname']}" if obj["ifname"] \
        else f"{obj['containerID']}, any interface"
    return f"{obj['kind']} {obj['where']} {obj['name']} ({owner}" + \
        ("; by the plugins' GC)" if gc else ")")


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_reboot_leak_state_dry_run_and_gc(world, plugin_dir, tmp_path, backend):
    node = Node(world, plugin_dir, tmp_path,
                bridge_portmap(tmp_path / "networks", backend=backend))
    owned = {("ipmasq", MASQ_WHERE[backend]), ("portmap", "iptables nat"), ("veth", "link")}
    ctrs = {cid: world.container(cid) for cid in ("stt-a", "stt-b", "stt-c", "stt-d")}
    ips = {}
    for i, (cid, ctr) in enumerate(ctrs.items()):
        result = node.cnitool("add", NET, ctr.path, CNI_CONTAINERID=cid,
                              CAP_ARGS=ports(18081 + i))
        ips[cid] = result["ips"][0]["address"].split("/")[0]

    net = node.state()
    assert {a["containerID"]: a["owner"] for a in net["allocations"]} == \
        dict.fromkeys(ctrs, "live")
    for cid in ctrs:
        assert objects_of(net, cid) == owned
    veth_a = next(o for o in net["hostObjects"]
                  if o["containerID"] == "stt-a" and o["kind"] == "veth")
    assert veth_a["detail"] == "master sttbr0" and veth_a["ifname"] == "eth0"

    # The "reboot": stt-b's namespace goes without a DEL (its veth with it);
    # the runtime forgets stt-d (its cache entry goes; the container runs on).
    assert delete_namespace(ctrs["stt-b"].name) is None
    world.namespaces.remove(ctrs["stt-b"])
    os.unlink(node.cache / "results" / f"{NET}-stt-d-eth0")

    net = node.state()
    assert owner_of(net, "stt-a") == owner_of(net, "stt-c") == "live"
    assert owner_of(net, "stt-b") == "stale" and owner_of(net, "stt-d") == "no-cache"
    # the leak: the address and the rules of the dead container are still there
    assert objects_of(net, "stt-b") == owned - {("veth", "link")}
    text = node.pycni("state", NET)
    assert f"{ips['stt-b']}  stt-b  eth0  stale" in text, text
    leaked = [o for o in net["hostObjects"]
              if o["containerID"] in ("stt-b", "stt-d") and o["kind"] != "veth"]
    assert len(leaked) == 4

    before = node.kernel()
    plan = node.pycni("gc", "--min-age", "0", "--dry-run", NET).splitlines()
    assert node.kernel() == before          # a dry run changes nothing
    expected = {
        f"cache entry {NET}-stt-b-eth0 (netns {ctrs['stt-b'].path} is gone)",
        f"address {ips['stt-b']} (stt-b eth0)",
        f"address {ips['stt-d']} (stt-d eth0; by the plugins' GC)"}
    expected |= {line_of(o, gc=o["containerID"] == "stt-d") for o in leaked}
    assert {line.removeprefix("would remove ") for line in plan} == expected, plan

    done = node.pycni("gc", "--min-age", "0", NET).splitlines()
    assert {line.removeprefix("removed ") for line in done} == \
        {e.replace("; by the plugins' GC", "") for e in expected}, done

    net = node.state()
    assert sorted(a["containerID"] for a in net["allocations"]) == ["stt-a", "stt-c"]
    for cid in ("stt-a", "stt-c"):          # nothing live was touched
        assert objects_of(net, cid) == owned
        assert ctrs[cid].pings("10.66.0.1")
    assert not {(o["where"], o["name"]) for o in leaked} & \
        {(o["where"], o["name"]) for o in net["hostObjects"]}
    assert node.pycni("gc", "--min-age", "0", NET) == f"network {NET}: nothing to remove\n"

    for cid in ("stt-a", "stt-c", "stt-d"):
        node.cnitool("del", NET, ctrs[cid].path, CNI_CONTAINERID=cid)
    net = node.state()
    assert net["allocations"] == [] and net["hostObjects"] == []


def test_gc_of_a_1_0_0_list_deletes_only_the_dead(world, plugin_dir, tmp_path):
    """Without spec 1.1.0 there is no GC command: the stale cached attachment
    gets its DEL (address and rules freed), the forgotten one stays."""
    node = Node(world, plugin_dir, tmp_path, bridge_portmap(tmp_path / "networks", "1.0.0"))
    ctrs = {cid: world.container(cid) for cid in ("stt-a", "stt-b", "stt-d")}
    for i, (cid, ctr) in enumerate(ctrs.items()):
        node.cnitool("add", NET, ctr.path, CNI_CONTAINERID=cid, CAP_ARGS=ports(18091 + i))
    assert delete_namespace(ctrs["stt-b"].name) is None
    world.namespaces.remove(ctrs["stt-b"])
    os.unlink(node.cache / "results" / f"{NET}-stt-d-eth0")
    plan = node.pycni("gc", "--min-age", "0", "--dry-run", NET).splitlines()
    assert all("stt-b" in line for line in plan) and len(plan) == 4, plan
    done = node.pycni("gc", "--min-age", "0", NET).splitlines()
    assert [l.removeprefix("removed ") for l in done] == \
        [l.removeprefix("would remove ") for l in plan]
    net = node.state()
    assert sorted(a["containerID"] for a in net["allocations"]) == ["stt-a", "stt-d"]
    for cid in ("stt-a", "stt-d"):
        node.cnitool("del", NET, ctrs[cid].path, CNI_CONTAINERID=cid)


def test_state_reads_the_go_libcni_cache(world, plugin_dir, tmp_path, golibcni):  # noqa: F811
    """A cache written by libcni itself (the Go library containerd and CRI-O
    use): pycni state attributes its attachments, gc DELs the dead one."""
    data = tmp_path / "networks"
    conflist = bridge_portmap(data, "1.0.0")
    conflist["plugins"] = conflist["plugins"][:1]
    node = Node(world, plugin_dir, tmp_path, conflist)
    ctrs = {cid: world.container(cid) for cid in ("stt-go-a", "stt-go-b")}
    for cid, ctr in ctrs.items():
        proc = node.run(golibcni, "-conflist", str(node.netconf / "10-stt.conflist"),
                        "-netns", ctr.path, "-cni-path", plugin_dir, "-cache-dir",
                        str(node.cache), "-container-id", cid, "-ifname", "eth0", "add")
        assert json.loads(proc.stdout)["ok"], proc.stdout
    entry = json.loads((node.cache / "results" / f"{NET}-stt-go-a-eth0").read_text())
    # libcni before 1.2 writes no "netns": the result's sandbox tells where it was
    assert entry["kind"] == "cniCacheV1" and "netns" not in entry
    assert ctrs["stt-go-a"].path in [i.get("sandbox") for i in entry["result"]["interfaces"]]
    assert delete_namespace(ctrs["stt-go-b"].name) is None
    world.namespaces.remove(ctrs["stt-go-b"])

    net = node.state()
    assert {a["containerID"]: a["owner"] for a in net["allocations"]} == \
        {"stt-go-a": "live", "stt-go-b": "stale"}
    cached = {a["containerID"]: a for a in net["attachments"]}
    assert cached["stt-go-a"]["ips"] == ["10.66.0.2/24"]
    assert cached["stt-go-b"]["reason"] == f"netns {ctrs['stt-go-b'].path} is gone"
    assert objects_of(net, "stt-go-a") == {("ipmasq", "iptables nat"), ("veth", "link")}
    done = node.pycni("gc", "--min-age", "0", NET)
    assert "removed address 10.66.0.3 (stt-go-b eth0)" in done, done
    assert [a["containerID"] for a in node.state()["allocations"]] == ["stt-go-a"]
    # libcni still knows its live attachment: its own DEL works on our GC's cache
    proc = node.run(golibcni, "-conflist", str(node.netconf / "10-stt.conflist"),
                    "-netns", ctrs["stt-go-a"].path, "-cni-path", plugin_dir, "-cache-dir",
                    str(node.cache), "-container-id", "stt-go-a", "-ifname", "eth0", "del")
    assert json.loads(proc.stdout)["ok"]
    assert node.state()["allocations"] == []


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_state_follows_nothing_planted_in_the_cache(world, plugin_dir, tmp_path, planted):
    """A symlink or FIFO in the results directory is not followed, read or
    hung on; the rest of the cache is read."""
    node = Node(world, plugin_dir, tmp_path, bridge_portmap(tmp_path / "networks"))
    ctr = world.container("stt-a")
    node.cnitool("add", NET, ctr.path, CNI_CONTAINERID="stt-a")
    target = node.cache / "results" / f"{NET}-stt-x-eth0"
    if planted == "symlink":
        target.symlink_to(node.cache / "results" / f"{NET}-stt-a-eth0")
    else:
        os.mkfifo(target)
    net = node.state()
    assert [a["containerID"] for a in net["attachments"]] == ["stt-a"]
    node.cnitool("del", NET, ctr.path, CNI_CONTAINERID="stt-a")


REF_V19 = "/var/cache/pycni-bench/ref-v1.9/bin"


def test_reference_v1_9_chain_state_and_gc(world, tmp_path):
    """The reference v1.9 bridge, portmap and host-local, side by side: their
    chains and veths are attributed the same way; their GC is a FIXME in
    all three, so `pycni gc` frees the dead container (by DEL) and leaves
    what only the plugins' GC would have freed, as --dry-run marks it."""
    if not os.access(os.path.join(REF_V19, "bridge"), os.X_OK):
        pytest.skip("reference v1.9 plugins not installed")
    node = Node(world, REF_V19, tmp_path, bridge_portmap(tmp_path / "networks"))
    conf = json.loads((node.netconf / "10-stt.conflist").read_text())
    del conf["plugins"][0]["ipMasqBackend"]     # the reference's default (iptables)
    (node.netconf / "10-stt.conflist").write_text(json.dumps(conf))
    owned = {("ipmasq", "iptables nat"), ("portmap", "iptables nat"), ("veth", "link")}
    ctrs = {cid: world.container(cid) for cid in ("stt-a", "stt-b", "stt-d")}
    ips = {}
    for i, (cid, ctr) in enumerate(ctrs.items()):
        result = node.cnitool("add", NET, ctr.path, CNI_CONTAINERID=cid,
                              CAP_ARGS=ports(18101 + i))
        ips[cid] = result["ips"][0]["address"].split("/")[0]
    net = node.state()
    for cid in ctrs:
        assert objects_of(net, cid) == owned
    assert delete_namespace(ctrs["stt-b"].name) is None
    world.namespaces.remove(ctrs["stt-b"])
    os.unlink(node.cache / "results" / f"{NET}-stt-d-eth0")

    net = node.state()
    assert owner_of(net, "stt-b") == "stale" and owner_of(net, "stt-d") == "no-cache"
    plan = node.pycni("gc", "--min-age", "0", "--dry-run", NET).splitlines()
    by_del = [line for line in plan if "by the plugins' GC" not in line]
    assert len(by_del) == 4 and all("stt-b" in line for line in by_del), plan
    assert len(plan) == 7       # stt-d's address and two chains: plugins' GC only
    done = node.pycni("gc", "--min-age", "0", NET).splitlines()
    # The reference bridge's DEL without the netns does not remove the
    # masquerading chain (it needs the container's addresses from inside):
    # the dry run said what a DEL should free, `state` shows what stayed.
    masq_b = [l for l in by_del if l.startswith("would remove ipmasq ")]
    assert [l.removeprefix("removed ") for l in done] == \
        [l.removeprefix("would remove ") for l in by_del if l not in masq_b]
    net = node.state()
    assert sorted(a["containerID"] for a in net["allocations"]) == ["stt-a", "stt-d"]
    # (stt-d's veth is not attributable: veths come from cached results)
    assert objects_of(net, "stt-d") == owned - {("veth", "link")}
    assert objects_of(net, "stt-b") == {("ipmasq", "iptables nat")}
    assert {o["owner"] for o in net["hostObjects"] if o["containerID"] == "stt-b"} == \
        {"no-cache"}
    for i, cid in ((0, "stt-a"), (2, "stt-d")):   # the reference's DEL needs the ports
        node.cnitool("del", NET, ctrs[cid].path, CNI_CONTAINERID=cid,
                     CAP_ARGS=ports(18101 + i))
    net = node.state()
    assert net["allocations"] == []
    assert [o["containerID"] for o in net["hostObjects"]] == ["stt-b"]


def test_state_of_every_network_each_with_its_data_dir(world, plugin_dir, tmp_path):
    """Without NETWORK: every network of NETCONFPATH, each store found
    through its own conflist's dataDir; ptp's host veth (no bridge) too."""
    node = Node(world, plugin_dir, tmp_path, bridge_portmap(tmp_path / "networks"))
    ptp_data = tmp_path / "ptp-networks"
    (node.netconf / "20-ptp.conflist").write_text(json.dumps({
        "cniVersion": "1.1.0", "name": "sttptp", "plugins": [
            {"type": "ptp", "ipMasq": True,
             "ipam": {"type": "host-local", "subnet": "10.67.0.0/24",
                      "dataDir": str(ptp_data)}}]}))
    a, p = world.container("stt-a"), world.container("stt-p")
    node.cnitool("add", NET, a.path, CNI_CONTAINERID="stt-a")
    node.cnitool("add", "sttptp", p.path, CNI_CONTAINERID="stt-p")
    doc = json.loads(node.pycni("state", "--json"))
    nets = {n["name"]: n for n in doc["networks"]}
    assert sorted(nets) == [NET, "sttptp"]
    assert nets["sttptp"]["storeDir"] == str(ptp_data / "sttptp")
    assert nets[NET]["storeDir"] == str(tmp_path / "networks" / NET)
    assert [(x["ip"], x["owner"]) for x in nets["sttptp"]["allocations"]] == \
        [("10.67.0.2", "live")]
    assert objects_of(nets["sttptp"], "stt-p") == {("ipmasq", "iptables nat"),
                                                   ("veth", "link")}
    (veth,) = [o for o in nets["sttptp"]["hostObjects"] if o["kind"] == "veth"]
    assert veth["detail"] == ""         # ptp: no bridge
    assert objects_of(nets[NET], "stt-p") == set()      # nothing crosses networks
    text = node.pycni("state")
    assert text.index(f"network {NET}:") < text.index("network sttptp:")
    node.cnitool("del", NET, a.path, CNI_CONTAINERID="stt-a")
    node.cnitool("del", "sttptp", p.path, CNI_CONTAINERID="stt-p")
