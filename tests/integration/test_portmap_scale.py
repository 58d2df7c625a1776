"""portmap (iptables) on a node where the reference portmap installed 500
mappings: ~2,000 rules in nat. Our DEL removes exactly its own rules (and
those of a reference container it is asked to remove), through one batch
naming them (the config's mappings), else the listing of
CNI-HOSTPORT-DNAT and one batch, and still through the whole
table when another chain jumps to the container's chain or a legacy
CNI-SN- chain is in the way; our ADD then DEL leave the table as it was.

The 500 mappings are loaded in one iptables-restore in the exact form the
reference v1.1.1 writes (checked against a node filled by 500 reference
ADDs: the same set of lines), and a few more are ADDed by the reference
binary itself, so that real reference rules are among them. Every tool
exec of our plugin is counted through wrappers on PATH (root-owned
scripts that log and exec the real tool).
"""

import os
import stat
import sys

import pytest

from pycni.plugins.portmap import rules_iptables as ri

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import scale  # noqa: E402  (bench/scale.py: the same mappings as its portmap-500 case)

NET = "p4pm"
COUNT = 500
TOOLS = ("iptables", "iptables-save", "iptables-restore",
         "ip6tables", "ip6tables-save", "ip6tables-restore")


def reference_nat(count: int) -> str:
    """An iptables-restore script: the reference's rules for `count`
    one-port TCP mappings of containers p4fill0000.. on network p4pm."""
    chains = {k: ri.chain_name(NET, f"p4fill{k:04d}") for k in range(count)}
    out = ["*nat", ":CNI-HOSTPORT-DNAT - [0:0]", ":CNI-HOSTPORT-MASQ - [0:0]",
           ":CNI-HOSTPORT-SETMARK - [0:0]", *[f":{c} - [0:0]" for c in chains.values()],
           "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
           "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
           '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" '
           "-j CNI-HOSTPORT-MASQ",
           "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
           '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" '
           "-j MARK --set-xmark 0x2000/0x2000"]
    for k, c in chains.items():
        port, ip = 30000 + k, f"10.127.{k // 250}.{k % 250 + 2}"
        out += [f"-A {c} -s 10.127.0.0/16 -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK",
                f"-A {c} -s 127.0.0.1/32 -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK",
                f"-A {c} -p tcp -m tcp --dport {port} -j DNAT --to-destination {ip}:80",
                f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"{NET}\\" '
                f'id: \\"p4fill{k:04d}\\"" -m multiport --dports {port} -j {c}']
    return "\n".join(out + ["COMMIT", ""])


def conf(k: int, host_port: int) -> dict:
    """Container k's one TCP mapping (its address 10.127.k/250.k%250+2)."""
    return scale.portmap_conf(k, host_port, NET)


class Node:
    def __init__(self, world, plugin_dir, ref_dir, tools_dir, log):
        self.world, self.host = world, world.host
        self.plugin_dir, self.ref_dir = plugin_dir, ref_dir
        self.tools_dir, self.log = tools_dir, log
        self.ctr = world.container("c")

    def nat(self, family: int = 4) -> list[str]:
        """Chains and rules of nat, without counters, sorted."""
        tool = "iptables-save" if family == 4 else "ip6tables-save"
        out = self.host.run(f"/usr/sbin/{tool}", "-t", "nat").stdout.decode()
        return sorted(line.split(" [")[0] if line.startswith(":") else line
                      for line in out.splitlines() if line.startswith(("-A ", ":")))

    def call(self, impl: str, command: str, k: int, host_port: int, cid: str):
        """One portmap call; the tool execs it made ([tool, args...])."""
        open(self.log, "w").close()
        directory = self.plugin_dir if impl == "ours" else self.ref_dir
        run = self.world.run_plugin(directory, "portmap", command, conf(k, host_port), self.ctr,
                                    container_id=cid,
                                    extra={"PATH": f"{self.tools_dir}:/usr/sbin:/usr/bin"})
        assert run.returncode == 0, f"{impl} portmap {command}: {run.stdout} {run.stderr}"
        with open(self.log) as f:
            return [line.split() for line in f.read().splitlines()]


@pytest.fixture
def node(world, plugin_dir, ref_dir, tmp_path):
    host = world.host
    host.run("ip", "link", "set", "lo", "up")
    host.run("ip", "link", "add", "pmsc0", "type", "veth", "peer", "name", "pmsc1")
    host.run("ip", "addr", "add", "10.127.255.1/16", "dev", "pmsc0")
    host.run("ip", "link", "set", "pmsc0", "up")
    host.run("ip", "link", "set", "pmsc1", "up")
    host.run("iptables-restore", "--noflush", "-w", input=reference_nat(COUNT).encode())
    # wrappers: root's, 0755, in a 0755 directory (a directory the plugin trusts)
    tools = tmp_path / "tools"
    tools.mkdir(mode=0o755)
    log = str(tmp_path / "execs.log")
    for tool in TOOLS:
        path = tools / tool
        path.write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\n'
                        f'exec -a {tool} /usr/sbin/{tool} "$@"\n')
        path.chmod(0o755)
    for p in (tmp_path, tools):
        os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))
    n = Node(world, plugin_dir, ref_dir, str(tools), log)
    for k in range(COUNT, COUNT + 3):        # real reference rules among them
        n.call("ref", "ADD", k, 30000 + k, f"p4fill{k:04d}")
    return n


def diff(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    return sorted(set(before) - set(after)), sorted(set(after) - set(before))


def own_lines(table: list[str], cid: str) -> list[str]:
    """The lines naming the container's chains (CNI-DN-, CNI-SN-)."""
    names = ri.container_chains(NET, cid)
    return sorted(line for line in table if any(n in line for n in names))


def test_our_del_removes_exactly_our_rules(node):
    start = node.nat()
    assert sum(line.startswith("-A ") for line in start) == (COUNT + 3) * 4 + 5
    execs = node.call("ours", "ADD", 777, 29999, "p4pm-measured")
    # the shared chains are there: one batch asserting them (-C), no save
    assert [e[0] for e in execs] == ["iptables-restore"]
    added = node.nat()
    gone, new = diff(start, added)
    assert gone == [] and new == own_lines(added, "p4pm-measured") and len(new) == 5

    # CHECK: one batch of -C lines, no iptables-save
    assert node.call("ours", "CHECK", 777, 29999, "p4pm-measured") == \
        [["iptables-restore", "--noflush", "-w"]]
    assert node.nat() == added

    execs = node.call("ours", "DEL", 777, 29999, "p4pm-measured")
    # one exec: the batch deleting exactly what ADD wrote (the config names
    # the mappings, prevResult the family), no listing; no IPv6 nat table in
    # this namespace (fwtools.no_table), so nothing is run for IPv6
    assert execs == [["iptables-restore", "--noflush", "-w"]]
    assert node.nat() == start

    # DEL again: nothing to remove; that batch is refused, then the listing
    # and `-S CHAIN 1` of both chains tell so without iptables-save
    execs = node.call("ours", "DEL", 777, 29999, "p4pm-measured")
    dn, sn = ri.container_chains(NET, "p4pm-measured")
    assert execs[:4] == [["iptables-restore", "--noflush", "-w"],
                         ["iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"],
                         ["iptables", "-w", "-t", "nat", "-S", dn, "1"],
                         ["iptables", "-w", "-t", "nat", "-S", sn, "1"]]
    assert not any(e[0].endswith("restore") or e[0] == "iptables-save" for e in execs[1:])
    assert node.nat() == start


def test_an_orphan_chain_without_entry_rule_is_removed(node):
    # the chain exists (empty), no entry rule jumps to it: `-S CHAIN 1`
    # finds it, and the whole table is read
    cid = "p4pm-orphan"
    dn = ri.chain_name(NET, cid)
    node.host.run("iptables", "-w", "-t", "nat", "-N", dn)
    start = node.nat()
    execs = node.call("ours", "DEL", 779, 29997, cid)
    assert ["iptables-save", "-t", "nat"] in execs
    assert diff(start, node.nat()) == ([f":{dn} -"], [])


@pytest.mark.parametrize("k", [7, COUNT + 1])    # loaded, and ADDed by the reference binary
def test_our_del_of_a_reference_container(node, k):
    start = node.nat()
    cid = f"p4fill{k:04d}"
    mine = own_lines(start, cid)
    assert len(mine) == 5
    execs = node.call("ours", "DEL", k, 30000 + k, cid)
    assert sum(e[0].endswith("restore") for e in execs) == 1
    assert diff(start, node.nat()) == (mine, [])


def test_a_jump_from_another_chain_is_removed_through_the_whole_table(node):
    cid = "p4fill0042"
    chain = ri.chain_name(NET, cid)
    node.host.run("iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-p", "udp", "-m", "comment",
                  "--comment", "someone else's", "-j", chain)
    start = node.nat()
    assert [line for line in start if line.startswith("-A PREROUTING") and chain in line]
    execs = node.call("ours", "DEL", 42, 30042, cid)
    # the batches failed (the chain still referenced): nothing changed by
    # them, then the whole table was read and the jump removed too, as before
    assert [e[0] for e in execs][:5] == ["iptables-restore", "iptables", "iptables-restore",
                                         "iptables-save", "iptables-restore"]
    gone, new = diff(start, node.nat())
    assert new == [] and gone == own_lines(start, cid) and len(gone) == 6


def test_legacy_snat_chain_is_removed(node):
    cid = "p4fill0009"
    sn = ri.chain_name(NET, cid, "SN-")
    node.host.run("iptables-restore", "--noflush", "-w", input=(
        f"*nat\n:CNI-HOSTPORT-SNAT - [0:0]\n:{sn} - [0:0]\n-A {sn} -j MASQUERADE\n"
        f"-A CNI-HOSTPORT-SNAT -j {sn}\nCOMMIT\n").encode())
    start = node.nat()
    node.call("ours", "DEL", 9, 30009, cid)
    gone, new = diff(start, node.nat())
    assert new == [] and gone == own_lines(start, cid) and len(gone) == 8
    assert f"-A CNI-HOSTPORT-SNAT -j {sn}" in gone
    # unreferenced, it goes with the fast batch
    cid = "p4fill0010"
    sn = ri.chain_name(NET, cid, "SN-")
    node.host.run("iptables-restore", "--noflush", "-w",
                  input=f"*nat\n:{sn} - [0:0]\n-A {sn} -j MASQUERADE\nCOMMIT\n".encode())
    start = node.nat()
    execs = node.call("ours", "DEL", 10, 30010, cid)
    assert sum(e[0].endswith("restore") for e in execs) == 1
    gone, new = diff(start, node.nat())
    assert new == [] and gone == own_lines(start, cid) and len(gone) == 7


def test_the_reference_removes_what_our_add_made(node):
    start = node.nat()
    node.call("ours", "ADD", 778, 29998, "p4pm-ours")
    node.call("ref", "DEL", 778, 29998, "p4pm-ours")
    assert node.nat() == start


def test_del_naming_other_mappings_than_add_removes_all_of_it(node):
    # the runtime's DEL config names another port than the ADD's: the
    # exact batch is refused (changing nothing) and the listing's removes
    # every rule of the container, as before
    start = node.nat()
    node.call("ours", "ADD", 780, 29996, "p4pm-other")
    execs = node.call("ours", "DEL", 780, 29995, "p4pm-other")
    assert [e[0] for e in execs][:3] == ["iptables-restore", "iptables", "iptables-restore"]
    assert node.nat() == start
