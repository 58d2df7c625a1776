"""bridge ipMasq with its firewall exec overlapping the netlink work (#12):
ADD starts the iptables-restore batch right after IPAM and waits for it
after configuring the container, DEL starts it just before deleting the
veth. The tools here are slowed down (a wrapper sleeps before exec'ing the
real one), so that whatever else the plugin does happens while the exec
still runs: failures then, and the normal paths, must leave no rule, no
allocation and no process behind.
"""

import os

import pytest

from netns_world import delete_namespace

NET = "overlapnet"
BRIDGE = "ovlbr0"
SUBNET = "10.96.7.0/24"
SLOW = """#!/bin/sh
echo $$ >> {pids}
sleep 0.4
exec /usr/sbin/{tool} "$@"
"""


@pytest.fixture
def slow_path(tmp_path):
    """PATH with slow iptables-restore/ip6tables-restore first; the pid of
    every exec of them is appended to the returned file."""
    d = tmp_path / "slowtools"
    d.mkdir()
    pids = tmp_path / "pids"
    for tool in ("iptables-restore", "ip6tables-restore"):
        (d / tool).write_text(SLOW.format(pids=pids, tool=tool))
        (d / tool).chmod(0o755)
    return f"{d}:/usr/sbin:/usr/bin:/sbin:/bin", pids


def conf(tmp_path, **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True, "ipMasq": True, "ipMasqBackend": "iptables",
            "ipam": {"type": "host-local", "subnet": SUBNET,
                     "dataDir": str(tmp_path / "ipam")}, **keys}


def nat_rules(ns) -> list[str]:
    out = ns.run("iptables-save", "-t", "nat").stdout.decode()
    return [line for line in out.splitlines() if "CNI-" in line]


def execs(pids) -> list[int]:
    return [int(p) for p in pids.read_text().split()] if pids.exists() else []


def still_running(pids) -> list[int]:
    """None may outlive the plugin: it waited for every exec it started."""
    return [p for p in execs(pids) if os.path.exists(f"/proc/{p}")]


def allocations(tmp_path) -> list[str]:
    d = tmp_path / "ipam" / NET
    return sorted(f for f in os.listdir(d) if f[0].isdigit()) if d.is_dir() else []


def run(world, plugin_dir, command, config, ctr, path, cid="ovl1"):
    return world.run_plugin(plugin_dir, "bridge", command, config, ctr, container_id=cid,
                            extra={"PATH": path})


def test_add_and_del_wait_for_the_exec_they_overlap(world, plugin_dir, tmp_path, slow_path):
    path, pids = slow_path
    ctr = world.container("ovl")
    added = run(world, plugin_dir, "ADD", conf(tmp_path), ctr, path)
    assert added.returncode == 0, added.stdout
    assert added.json["ips"][0]["address"] == "10.96.7.2/24"       # stdout: the result only
    assert len(execs(pids)) == 1 and still_running(pids) == []
    assert len(nat_rules(world.host)) == 4           # the chain, its 2 rules, the jump
    cfg = {**conf(tmp_path), "prevResult": added.json}
    for _ in range(2):                               # DEL, then DEL again
        deleted = run(world, plugin_dir, "DEL", cfg, ctr, path)
        assert (deleted.returncode, deleted.stdout) == (0, ""), deleted.stderr
        assert still_running(pids) == [] and nat_rules(world.host) == []
    assert ctr.link("eth0") is None and allocations(tmp_path) == []


def test_add_failing_while_the_exec_runs_waits_and_undoes_it(world, plugin_dir, tmp_path,
                                                            slow_path):
    """The bridge already has another gateway address: configure_l3 fails
    while the masquerade batch is still sleeping. The rollback waits for
    it and removes its rules (one more exec), then the rest."""
    path, pids = slow_path
    ctr = world.container("ovl")
    world.host.run("ip", "link", "add", BRIDGE, "type", "bridge")
    world.host.run("ip", "addr", "add", "10.96.7.1/16", "dev", BRIDGE)
    failed = run(world, plugin_dir, "ADD", conf(tmp_path), ctr, path)
    assert failed.returncode != 0
    assert "already has an IP address different from 10.96.7.1/24" in failed.json["msg"]
    assert len(execs(pids)) == 2 and still_running(pids) == []       # setup, then its undo
    assert nat_rules(world.host) == [] and allocations(tmp_path) == []
    assert ctr.link("eth0") is None


def test_del_failing_while_the_exec_runs_still_waits_for_it(world, plugin_dir, tmp_path,
                                                           slow_path):
    """IPAM DEL fails after the teardown batch was started: DEL reports
    IPAM's error, and the exec it started is waited for all the same."""
    path, pids = slow_path
    ctr = world.container("ovl")
    added = run(world, plugin_dir, "ADD", conf(tmp_path), ctr, path)
    assert added.returncode == 0, added.stdout
    fake = tmp_path / "fakeipam"
    fake.mkdir()
    (fake / "failing-ipam").write_text(
        '#!/bin/sh\ncat >/dev/null\n'
        'echo \'{"cniVersion":"1.0.0","code":11,"msg":"ipam says no"}\'\nexit 1\n')
    (fake / "failing-ipam").chmod(0o755)
    cfg = {**conf(tmp_path), "prevResult": added.json,
           "ipam": {"type": "failing-ipam"}}
    deleted = world.run_plugin([str(fake), plugin_dir], "bridge", "DEL", cfg, ctr,
                               container_id="ovl1", extra={"PATH": path})
    assert deleted.returncode != 0 and "ipam says no" in deleted.json["msg"]
    assert len(execs(pids)) == 2 and still_running(pids) == []
    # the rest is released by a DEL that succeeds (DEL is idempotent)
    ok = run(world, plugin_dir, "DEL", {**conf(tmp_path), "prevResult": added.json}, ctr, path)
    assert ok.returncode == 0, ok.stdout
    assert nat_rules(world.host) == [] and allocations(tmp_path) == []
    assert still_running(pids) == []


def test_del_with_the_netns_gone_starts_the_exec_before_ipam(world, plugin_dir, tmp_path,
                                                            slow_path):
    """No veth to delete: the teardown (from prevResult's addresses) still
    overlaps IPAM's release, and is waited for."""
    path, pids = slow_path
    ctr = world.container("ovl")
    added = run(world, plugin_dir, "ADD", conf(tmp_path), ctr, path)
    assert added.returncode == 0, added.stdout
    gone = ctr.path
    assert delete_namespace(ctr.name) is None
    world.namespaces.remove(ctr)
    cfg = {**conf(tmp_path), "prevResult": added.json}
    deleted = run(world, plugin_dir, "DEL", cfg, gone, path)
    assert deleted.returncode == 0, deleted.stdout
    assert len(execs(pids)) == 2 and still_running(pids) == []
    assert nat_rules(world.host) == [] and allocations(tmp_path) == []
