"""Issue #11 findings 4 and 10: CNI_NETNS paths that are not (or no longer)
a network namespace.

- Finding 4: a FIFO (or a device node, a directory, a regular file) as
  CNI_NETNS used to hang ADD and DEL until killed. ADD (and CHECK) now fail
  at once with code 4, leaving nothing behind; the path is never opened
  blocking and nothing but an nsfs file is opened for reading.
- Finding 10: a netns the runtime unmounted, leaving the empty mount-point
  file, made bridge and macvlan DEL fail forever, so the address was never
  released. Every plugin's DEL now treats it (and any other path that is
  no network namespace) like a vanished container, as for an empty
  CNI_NETNS: IPAM and host-side state (masquerading, firewall and portmap
  rules, the bandwidth IFB) are released and DEL succeeds, also again. The
  reference fails such a DEL (NSPathNotNSErr), forever.
"""

import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.netns

NET = "secns"
BRIDGE = "cnisec0"
SUBNET, GW = "10.96.0.0/24", "10.96.0.1"
MASTER = "secmaster0"
BOUND = 5.0     # seconds: "at once", generously


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "ipam")


def bridge_conf(data_dir, **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True, "ipMasq": True, **keys,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": data_dir}}


def macvlan_conf(data_dir) -> dict:
    return {"cniVersion": "1.0.0", "name": NET, "type": "macvlan", "master": MASTER,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": data_dir}}


def chained(plugin: str, prev: dict | None, data_dir: str) -> dict:
    conf = {"cniVersion": "1.0.0", "name": NET, "type": plugin}
    if plugin == "portmap":
        conf["runtimeConfig"] = {"portMappings": [
            {"hostPort": 18443, "containerPort": 443, "protocol": "tcp"}]}
    elif plugin == "bandwidth":
        conf.update(ingressRate=8_000_000, ingressBurst=80_000,
                    egressRate=8_000_000, egressBurst=80_000)
    elif plugin == "tuning":
        conf.update(mtu=1400, promisc=True, dataDir=os.path.join(data_dir, "tuning"))
    elif plugin == "firewall":
        conf["backend"] = "iptables"
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def add_master(world) -> None:
    """macvlan's master in the host: one end of a veth pair (no dummy
    module needed), up."""
    world.host.run("ip", "link", "add", MASTER, "type", "veth", "peer", "name", "secpeer0")
    world.host.run("ip", "link", "set", MASTER, "up")


CHAIN = ("firewall", "portmap", "bandwidth", "tuning")


def reserved(data_dir) -> list[str]:
    store = os.path.join(data_dir, NET)
    if not os.path.isdir(store):
        return []
    return sorted(n for n in os.listdir(store)
                  if n != "lock" and not n.startswith("last_reserved_ip"))


def timed_run(world, plugin_dir, plugin, command, conf, netns, **kw):
    start = time.monotonic()
    run = world.run_plugin(plugin_dir, plugin, command, conf, netns, **kw)
    took = time.monotonic() - start
    assert took < BOUND, f"{plugin} {command} took {took:.1f} s"
    return run


def ok(run):
    assert run.ok, run.stdout + run.stderr
    return run.json


# --- finding 4: never hang, refuse at once ------------------------------------------

@pytest.fixture(params=["fifo", "device", "directory", "regular-file", "symlink-to-fifo"])
def not_a_netns(request, tmp_path):
    kind = request.param
    if kind == "device":
        return "/dev/null"
    if kind == "directory":
        d = tmp_path / "dir"
        d.mkdir()
        return str(d)
    if kind == "regular-file":
        f = tmp_path / "file"
        f.write_text("not a namespace\n")
        return str(f)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    if kind == "symlink-to-fifo":
        (tmp_path / "link").symlink_to(fifo)
        return str(tmp_path / "link")
    return str(fifo)


def test_bridge_add_refuses_at_once_and_leaves_nothing(world, plugin_dir, data_dir,
                                                       not_a_netns):
    run = timed_run(world, plugin_dir, "bridge", "ADD", bridge_conf(data_dir), not_a_netns)
    assert run.error_code() == 4, run.stdout + run.stderr
    assert "not a network namespace" in run.json["msg"]
    assert reserved(data_dir) == []
    assert world.host.link(BRIDGE) is None       # refused before touching the host


def test_macvlan_add_refuses_at_once_and_leaves_nothing(world, plugin_dir, data_dir,
                                                        not_a_netns):
    add_master(world)
    run = timed_run(world, plugin_dir, "macvlan", "ADD", macvlan_conf(data_dir), not_a_netns)
    assert run.error_code() == 4, run.stdout + run.stderr
    assert reserved(data_dir) == []


@pytest.mark.parametrize("plugin", ["loopback", "tuning", "bandwidth"])
def test_other_plugins_add_and_check_refuse_at_once(world, plugin_dir, data_dir,
                                                    not_a_netns, plugin):
    prev = {"cniVersion": "1.0.0",
            "interfaces": [{"name": "vethX", "mac": "02:00:00:00:00:01"},
                           {"name": "eth0", "mac": "02:00:00:00:00:02",
                            "sandbox": not_a_netns}],
            "ips": [{"address": "10.96.0.9/24", "interface": 1}]}
    conf = chained(plugin, None if plugin == "loopback" else prev, data_dir)
    if plugin == "loopback":
        conf["type"] = "loopback"
    for command in ("ADD", "CHECK"):
        run = timed_run(world, plugin_dir, plugin, command, conf, not_a_netns)
        assert not run.ok, run.stdout
        assert run.error_code() == 4, run.stdout


@pytest.mark.parametrize("plugin", ["bridge", "macvlan", "loopback", "tuning", "bandwidth",
                                    "portmap", "firewall"])
def test_del_with_a_non_netns_path_succeeds_at_once(world, plugin_dir, data_dir,
                                                    not_a_netns, plugin):
    if plugin == "bridge":
        conf = bridge_conf(data_dir)
    elif plugin == "macvlan":
        conf = macvlan_conf(data_dir)
    elif plugin == "loopback":
        conf = {"cniVersion": "1.0.0", "name": NET, "type": "loopback"}
    else:
        conf = chained(plugin, None, data_dir)
    for _ in range(2):
        ok(timed_run(world, plugin_dir, plugin, "DEL", conf, not_a_netns))


def test_bridge_check_refuses_at_once(world, plugin_dir, data_dir, not_a_netns):
    prev = {"cniVersion": "1.0.0", "interfaces": [], "ips": []}
    run = timed_run(world, plugin_dir, "bridge", "CHECK",
                    {**bridge_conf(data_dir), "prevResult": prev}, not_a_netns)
    assert run.error_code() == 4, run.stdout


# --- finding 10: the runtime unmounted the netns, its mount point remains -----------

def unmount(ns) -> None:
    """What a runtime does to tear a pod's netns down, minus the unlink."""
    subprocess.run(["umount", ns.path], check=True)
    st = os.stat(ns.path)
    assert st.st_size == 0 and st.st_dev != os.stat("/proc/self/ns/net").st_dev


def ipt_rules(world, table: str) -> list[str]:
    out = world.host.run("iptables-save", "-t", table).stdout.decode()
    return [line for line in out.splitlines() if line.startswith("-A ")]


def test_bridge_del_after_unmount_releases_the_address(world, plugin_dir, data_dir):
    ctr = world.container()
    result = ok(world.run_plugin(plugin_dir, "bridge", "ADD", bridge_conf(data_dir), ctr))
    ip = result["ips"][0]["address"].split("/")[0]
    assert reserved(data_dir) == [ip]
    masq = [r for r in ipt_rules(world, "nat") if ip in r]
    assert masq
    unmount(ctr)
    for _ in range(2):
        ok(timed_run(world, plugin_dir, "bridge", "DEL", bridge_conf(data_dir), ctr))
        assert reserved(data_dir) == []
        assert [r for r in ipt_rules(world, "nat") if ip in r] == []


def test_macvlan_del_after_unmount_releases_the_address(world, plugin_dir, data_dir):
    add_master(world)
    ctr = world.container()
    result = ok(world.run_plugin(plugin_dir, "macvlan", "ADD", macvlan_conf(data_dir), ctr))
    assert reserved(data_dir) == [result["ips"][0]["address"].split("/")[0]]
    unmount(ctr)
    for _ in range(2):
        ok(timed_run(world, plugin_dir, "macvlan", "DEL", macvlan_conf(data_dir), ctr))
        assert reserved(data_dir) == []


def test_loopback_del_after_unmount(world, plugin_dir):
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "loopback"}
    ok(world.run_plugin(plugin_dir, "loopback", "ADD", conf, ctr))
    unmount(ctr)
    for _ in range(2):
        ok(timed_run(world, plugin_dir, "loopback", "DEL", conf, ctr))


def test_chain_del_after_unmount_removes_host_state(world, plugin_dir, data_dir):
    """bridge (ipMasq) + firewall + portmap + bandwidth + tuning: after the
    unmount every DEL succeeds, twice, and nothing of the container is left
    on the host."""
    host = world.host
    host.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    ctr = world.container()
    prev = ok(world.run_plugin(plugin_dir, "bridge", "ADD", bridge_conf(data_dir), ctr))
    ip = prev["ips"][0]["address"].split("/")[0]
    results = {"bridge": prev}
    for plugin in CHAIN:
        prev = ok(world.run_plugin(plugin_dir, plugin, "ADD", chained(plugin, prev, data_dir),
                                   ctr))
        results[plugin] = prev
    ifbs = host.ip_json("link", "show", "type", "ifb")
    assert len(ifbs) == 1
    filter_rules = [r for r in ipt_rules(world, "filter") if ip in r]
    nat_rules = [r for r in ipt_rules(world, "nat") if ip in r]
    assert filter_rules and any("443" in r for r in nat_rules)
    tuning_dir = os.path.join(data_dir, "tuning")
    assert os.listdir(tuning_dir)

    unmount(ctr)
    for _ in range(2):
        for plugin in reversed(CHAIN):
            ok(timed_run(world, plugin_dir, plugin, "DEL",
                         chained(plugin, results[plugin], data_dir), ctr))
        ok(timed_run(world, plugin_dir, "bridge", "DEL", bridge_conf(data_dir), ctr))
        assert reserved(data_dir) == []
        assert host.ip_json("link", "show", "type", "ifb") == []
        assert [r for r in ipt_rules(world, "filter") if ip in r] == []
        assert [r for r in ipt_rules(world, "nat") if ip in r] == []
        assert not any("CNI-DN-" in r for r in ipt_rules(world, "nat"))
        assert os.listdir(tuning_dir) == []
