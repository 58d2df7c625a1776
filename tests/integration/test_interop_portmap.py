"""portmap's nftables rules next to the upstream reference v1.9 build
(/var/cache/pycni-bench/ref-v1.9/bin/portmap), both ways (issue #13).

After switching implementations on a node, each one's DEL and CHECK must
handle the other's rules: ours ADD -> reference DEL leaves nothing (our
comment is the container ID, which the reference matches), reference ADD
-> our CHECK passes and our DEL leaves nothing. A world: a "host"
namespace holding a veth to one container namespace (10.99.0.5,
fd99::5), where both plugins run with the same config.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

REF19_DIR = "/var/cache/pycni-bench/ref-v1.9/bin"
NET = "iopnet"
CID = "iopctr1"
HOST4, CTR4 = "10.99.0.1", "10.99.0.5"
HOST6, CTR6 = "fd99::1", "fd99::5"


@pytest.fixture(scope="module")
def ref19():
    if not os.access(os.path.join(REF19_DIR, "portmap"), os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"the upstream v1.9 reference build is not in {REF19_DIR}")
    return [REF19_DIR]


@pytest.fixture
def node(world):
    host, ctr = world.host, world.container("iopc")
    host.run("ip", "link", "add", "iopv0", "type", "veth", "peer", "name", "eth0",
             "netns", ctr.name)
    host.run("ip", "addr", "add", f"{HOST4}/24", "dev", "iopv0")
    host.run("ip", "addr", "add", f"{HOST6}/64", "dev", "iopv0", "nodad")
    host.run("ip", "link", "set", "iopv0", "up")
    ctr.run("ip", "addr", "add", f"{CTR4}/24", "dev", "eth0")
    ctr.run("ip", "addr", "add", f"{CTR6}/64", "dev", "eth0", "nodad")
    ctr.run("ip", "link", "set", "eth0", "up")
    world.ctr = ctr
    return world


def prev_result(ctr) -> dict:
    return {"cniVersion": "1.0.0",
            "interfaces": [{"name": "iopv0"}, {"name": "eth0", "sandbox": ctr.path}],
            "ips": [{"address": f"{CTR4}/24", "interface": 1, "gateway": HOST4},
                    {"address": f"{CTR6}/64", "interface": 1, "gateway": HOST6}]}


MAPPINGS = [{"hostPort": 18200, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 18200, "containerPort": 80, "protocol": "udp"},
            {"hostPort": 18201, "containerPort": 81, "protocol": "tcp", "hostIP": HOST4}]


def conf(w, command="ADD", name=NET, mappings=MAPPINGS) -> dict:
    out = {"cniVersion": "1.0.0", "name": name, "type": "portmap", "backend": "nftables",
           "runtimeConfig": {"portMappings": mappings}}
    if command != "DEL":
        out["prevResult"] = prev_result(w.ctr)
    return out


def run(w, path, command, config=None, cid=CID):
    proc = w.run_plugin(path, "portmap", command, config or conf(w, command), w.ctr,
                        container_id=cid)
    assert proc.returncode == 0, f"{path} portmap {command}: {proc.stdout} {proc.stderr}"
    return proc


def ruleset(w) -> str:
    text = w.host.run("nft", "list", "ruleset").stdout.decode()
    return "\n".join(l.rstrip() for l in text.splitlines() if l.strip())


def container_rules(w) -> list[str]:
    """Rules that belong to a container: a DNAT or a masquerade."""
    return [l.strip() for l in ruleset(w).splitlines()
            if "dnat to" in l or "masquerade" in l]


def what_ref_leaves(w, ref19, plugin_dir) -> str:
    """The ruleset after the reference's own ADD and DEL: its table and
    chains stay, no rule of the container."""
    run(w, ref19, "ADD")
    run(w, ref19, "DEL")
    left = ruleset(w)
    assert "cni_hostport" in left and container_rules(w) == []
    return left


@pytest.mark.netns
def test_ours_add_then_reference_del_leaves_nothing(node, ref19, plugin_dir):
    w = node
    baseline = what_ref_leaves(w, ref19, plugin_dir)
    run(w, [plugin_dir], "ADD")
    rules = container_rules(w)
    # 3 DNAT (v4) + 2 (v6: the IPv4 hostIP is skipped), masquerade 2 (v4) + 1 (v6)
    assert len([r for r in rules if "dnat to" in r]) == 5
    assert len([r for r in rules if "masquerade" in r]) == 3
    assert all(r.endswith(f'comment "{CID}"') and "meta mark &" in r for r in rules), rules
    run(w, ref19, "CHECK")     # the reference counts our rules as its own
    run(w, ref19, "DEL")
    assert container_rules(w) == []
    assert ruleset(w) == baseline


@pytest.mark.netns
def test_reference_add_then_our_check_and_del_leave_nothing(node, ref19, plugin_dir):
    w = node
    baseline = what_ref_leaves(w, ref19, plugin_dir)
    run(w, ref19, "ADD")
    theirs = container_rules(w)
    assert theirs and all(r.endswith(f'comment "{CID}"') for r in theirs)
    assert not any("meta mark" in r for r in theirs)
    run(w, [plugin_dir], "CHECK")
    run(w, [plugin_dir], "DEL")
    assert container_rules(w) == []
    assert ruleset(w) == baseline
    # a second DEL finds nothing and succeeds
    run(w, [plugin_dir], "DEL")
    assert ruleset(w) == baseline


@pytest.mark.netns
def test_our_add_over_the_references_rules_replaces_them(node, ref19, plugin_dir):
    """Upgrading a node: the reference's rules, then our ADD of the same
    attachment (a repeated ADD): no rule twice; the reference's DEL
    (a downgrade) still removes everything."""
    w = node
    baseline = what_ref_leaves(w, ref19, plugin_dir)
    run(w, ref19, "ADD")
    count = len(container_rules(w))
    run(w, [plugin_dir], "ADD")
    rules = container_rules(w)
    assert len(rules) == count and all("meta mark &" in r for r in rules)
    run(w, ref19, "DEL")
    assert ruleset(w) == baseline


@pytest.mark.netns
def test_our_check_fails_when_a_rule_is_missing_whoever_made_it(node, ref19, plugin_dir):
    w = node
    run(w, ref19, "ADD")
    out = w.host.run("nft", "-a", "list", "chain", "ip", "cni_hostport", "hostports")
    handle = re.search(r"dport 18201 .*# handle (\d+)", out.stdout.decode()).group(1)
    w.host.run("nft", "delete", "rule", "ip", "cni_hostport", "hostports", "handle", handle)
    bad = w.run_plugin([plugin_dir], "portmap", "CHECK", conf(w), w.ctr, container_id=CID)
    assert bad.returncode != 0 and '"hostports" chain (2 of 3)' in bad.json["details"]
    run(w, [plugin_dir], "DEL")
    assert container_rules(w) == []


@pytest.mark.netns
def test_gc_takes_our_networks_rules_only(node, ref19, plugin_dir):
    """GC removes rules tagged with its network; the reference's rules name
    no network and are left to DEL."""
    w = node
    run(w, ref19, "ADD", cid="iopref")
    run(w, [plugin_dir], "ADD")
    run(w, [plugin_dir], "ADD", conf(w, name="iopnet2"), cid="iopother")
    gc = {"cniVersion": "1.1.0", "name": NET, "type": "portmap", "backend": "nftables",
          "cni.dev/valid-attachments": []}
    proc = w.run_plugin([plugin_dir], "portmap", "GC", gc, "")
    assert proc.returncode == 0, proc.stdout
    left = container_rules(w)
    assert not any(f'"{CID}"' in r for r in left)
    assert any('"iopref"' in r for r in left) and any('"iopother"' in r for r in left)


SERVER = textwrap.dedent("""
    import socket
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 80)); s.listen(8); print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(b"hello"); c.close()
""")


@pytest.mark.netns
def test_our_tagged_rules_forward(request, node, plugin_dir):
    """The network tag is a match that is always true: the mapping works."""
    w = node
    proc = subprocess.Popen(["ip", "netns", "exec", w.ctr.name, sys.executable, "-c", SERVER],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    request.addfinalizer(lambda: (proc.kill(), proc.wait()))
    assert proc.stdout.readline().strip() == b"ready"
    run(w, [plugin_dir], "ADD")
    client = ("import socket; s = socket.create_connection(('%s', 18200), timeout=2); "
              "print(s.recv(10).decode())" % HOST4)
    out = w.host.run(sys.executable, "-c", client).stdout.decode().strip()
    assert out == "hello"
    run(w, [plugin_dir], "DEL")
