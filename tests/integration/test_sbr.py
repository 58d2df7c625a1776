"""sbr against the real kernel, exec'ed as a runtime execs it, side by side
with the reference v1.9 sbr on the same prevResult.

The world: a container whose eth0 is a veth to the host (`sbrh0`, the
gateways 10.9.0.1 and fd09::1), configured the way an earlier plugin
leaves it: 10.9.0.5/24, 10.9.0.6/24 and fd09::5/64, default routes via
both gateways and a device route 192.168.7.0/24. sbr then gets that
prevResult; rules and routes are read back with `ip -j rule` and
`ip -j route show table all`.
"""

import json
import os

import pytest

from pytest_netns import missing_prerequisite

pytestmark = pytest.mark.netns

REF19 = "/var/cache/pycni-bench/ref-v1.9/bin"
NET = "sbrnet"
VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


@pytest.fixture
def ref_path():
    if not os.access(os.path.join(REF19, "sbr"), os.X_OK):
        missing_prerequisite(f"the reference v1.9 sbr is not in {REF19}")
    return [REF19]


@pytest.fixture
def ours(plugin_dir):
    return [plugin_dir]


def prev(ctr, version="1.0.0", v6=True, second=True, gateway="10.9.0.1") -> dict:
    ips = [{"address": "10.9.0.5/24", "gateway": gateway, "interface": 0}]
    if second:
        ips.append({"address": "10.9.0.6/24", "interface": 0})
    if v6:
        ips.append({"address": "fd09::5/64", "gateway": "fd09::1", "interface": 0})
    return {"cniVersion": version,
            "interfaces": [{"name": "eth0", "mac": "02:00:00:00:09:05", "sandbox": ctr.path}],
            "ips": ips, "dns": {}}


def conf(ctr, version="1.0.0", **keys) -> dict:
    prev_result = keys.pop("prevResult", None) or prev(ctr, version)
    return {"cniVersion": version, "name": NET, "type": "sbr", "prevResult": prev_result,
            **keys}


def container(world, label="sbrc"):
    """A container with eth0 configured as an earlier plugin leaves it."""
    ctr = world.container(label)
    peer = f"sbrh{len(world.namespaces)}"
    world.host.run("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0",
                   "netns", ctr.name)
    world.host.run("ip", "addr", "add", "10.9.0.1/24", "dev", peer)
    world.host.run("ip", "addr", "add", "fd09::1/64", "dev", peer, "nodad")
    world.host.run("ip", "link", "set", peer, "up")
    ctr.run("ip", "link", "set", "eth0", "address", "02:00:00:00:09:05")
    ctr.run("ip", "addr", "add", "10.9.0.5/24", "dev", "eth0")
    ctr.run("ip", "addr", "add", "10.9.0.6/24", "dev", "eth0")
    ctr.run("ip", "addr", "add", "fd09::5/64", "dev", "eth0", "nodad")
    ctr.run("ip", "link", "set", "eth0", "up")
    ctr.run("ip", "route", "add", "default", "via", "10.9.0.1")
    ctr.run("ip", "route", "add", "192.168.7.0/24", "dev", "eth0")
    ctr.run("ip", "-6", "route", "add", "default", "via", "fd09::1")
    return ctr


def rules(ns) -> list[dict]:
    return ns.ip_json("-4", "rule") + ns.ip_json("-6", "rule")


def routes(ns, table: str = "all") -> list[dict]:
    """Every route but the local table's (which sbr never touches)."""
    found = []
    for family in ("-4", "-6"):    # a table a family never had is an error to ip
        proc = ns.run("ip", "-j", family, "route", "show", "table", table, check=False)
        found += json.loads(proc.stdout or b"[]") if proc.returncode == 0 else []
    return [r for r in found if r.get("table") != "local" and r.get("type") not in
            ("local", "broadcast", "multicast", "anycast")]


def state(ns) -> tuple:
    return rules(ns), routes(ns)


def source_rules(ns) -> list[tuple]:
    return [(r["src"], r["table"], r["priority"]) for r in rules(ns) if r["src"] != "all"]


def cmd(world, path, command, config, ctr, **kw):
    run = world.run_plugin(path, "sbr", command, config, ctr, **kw)
    return run


def ok(world, path, command, config, ctr, **kw):
    run = cmd(world, path, command, config, ctr, **kw)
    assert run.ok, run.stdout + run.stderr
    return run.json


EXPECTED_RULES = [("10.9.0.6", "101", 32764), ("10.9.0.5", "100", 32765),
                  ("fd09::5", "102", 32765)]


def test_add_check_del_del(world, ours):
    ctr = container(world)
    config = conf(ctr)
    result = ok(world, ours, "ADD", config, ctr)
    assert result == {k: v for k, v in prev(ctr).items() if k != "dns"}   # prevResult as is
    assert source_rules(ctr) == EXPECTED_RULES
    # the interface's routes left the main table...
    assert [r for r in routes(ctr, "main") if r.get("dev") == "eth0"] == []
    # ...for one table per address
    t100 = {(r["dst"], r.get("gateway")) for r in routes(ctr, "100")}
    assert t100 == {("default", "10.9.0.1"), ("10.9.0.0/24", None), ("192.168.7.0/24", None),
                    ("fd09::/64", None), ("fe80::/64", None)}
    assert {(r["dst"], r.get("gateway")) for r in routes(ctr, "101")} == \
        t100                                    # same subnet, no gateway of its own
    assert {(r["dst"], r.get("gateway")) for r in routes(ctr, "102")} == {
        ("default", "fd09::1"), ("192.168.7.0/24", None), ("fd09::/64", None),
        ("fe80::/64", None)}
    # replies from 10.9.0.5 find the way out whatever the main table says
    got = ctr.ip_json("route", "get", "10.50.0.9", "from", "10.9.0.5")
    assert (got[0]["gateway"], got[0]["dev"]) == ("10.9.0.1", "eth0")

    assert ok(world, ours, "CHECK", config, ctr) is None
    assert ok(world, ours, "DEL", config, ctr) is None
    assert source_rules(ctr) == []
    assert ok(world, ours, "DEL", config, ctr) is None


def test_same_kernel_state_as_the_reference(world, ours, ref_path):
    mine, theirs = container(world, "sbro"), container(world, "sbrr")
    assert state(mine) == state(theirs)
    ok(world, ours, "ADD", conf(mine), mine)
    ok(world, ref_path, "ADD", conf(theirs), theirs)
    assert state(mine) == state(theirs)
    assert source_rules(mine) == EXPECTED_RULES
    ok(world, ours, "DEL", conf(mine), mine)
    ok(world, ref_path, "DEL", conf(theirs), theirs)
    assert state(mine) == state(theirs)


@pytest.mark.parametrize("version", VERSIONS)
def test_result_is_the_prev_result_in_every_version_as_the_reference(world, ours, ref_path,
                                                                     version):
    mine, theirs = container(world, "sbro"), container(world, "sbrr")
    if version in ("0.1.0", "0.2.0"):
        legacy = {"cniVersion": version, "ip4": {"ip": "10.9.0.5/24", "gateway": "10.9.0.1"},
                  "ip6": {"ip": "fd09::5/64", "gateway": "fd09::1"}, "dns": {}}
        mine_conf = conf(mine, version, prevResult=legacy)
        theirs_conf = conf(theirs, version, prevResult=legacy)
    else:
        mine_conf, theirs_conf = conf(mine, version), conf(theirs, version)
    a = ok(world, ours, "ADD", mine_conf, mine)
    b = ok(world, ref_path, "ADD", theirs_conf, theirs)
    for r in (a, b):
        for i in r.get("interfaces", []):
            i.pop("sandbox")
    assert a == b
    assert state(mine) == state(theirs)


def test_table_option_adds_only_rules(world, ours, ref_path):
    mine, theirs = container(world, "sbro"), container(world, "sbrr")
    before = routes(mine)
    for ns, path in ((mine, ours), (theirs, ref_path)):
        ok(world, path, "ADD", conf(ns, table=500), ns)
    assert state(mine) == state(theirs)
    assert source_rules(mine) == [("10.9.0.6", "500", 32764), ("10.9.0.5", "500", 32765),
                                  ("fd09::5", "500", 32765)]
    assert routes(mine) == before              # nothing moved
    assert ok(world, ours, "CHECK", conf(mine, table=500), mine) is None
    check = cmd(world, ours, "CHECK", conf(mine, table=501), mine)
    assert not check.ok and "10.9.0.5, 10.9.0.6, fd09::5" in check.json["msg"]
    # DEL with a table removes that table's rules only
    mine.run("ip", "rule", "add", "from", "10.9.0.5", "table", "600")
    theirs.run("ip", "rule", "add", "from", "10.9.0.5", "table", "600")
    for ns, path in ((mine, ours), (theirs, ref_path)):
        ok(world, path, "DEL", conf(ns, table=500), ns)
    assert state(mine) == state(theirs)
    assert source_rules(mine) == [("10.9.0.5", "600", 32763)]
    # without a table DEL removes every rule from the interface's addresses
    ok(world, ours, "DEL", conf(mine), mine)
    assert source_rules(mine) == []


def test_table_option_without_the_interface(world, ours):
    ctr = world.container("sbrc")
    ok(world, ours, "ADD", conf(ctr, table=300), ctr)
    assert source_rules(ctr) == [("10.9.0.6", "300", 32764), ("10.9.0.5", "300", 32765),
                                 ("fd09::5", "300", 32765)]
    # DEL finds no interface, so no addresses: the rules stay, as with the reference
    ok(world, ours, "DEL", conf(ctr, table=300), ctr)
    assert len(source_rules(ctr)) == 3


def test_del_with_namespace_gone_or_empty(world, ours, ref_path):
    ctr = container(world)
    ok(world, ours, "ADD", conf(ctr), ctr)
    gone = ctr.path
    world.namespaces.remove(ctr)
    from netns_world import delete_namespace
    assert delete_namespace(ctr.name) is None
    for netns in (gone, ""):
        run = world.run_plugin(ours, "sbr", "DEL", conf(ctr), netns)
        assert run.ok and run.stdout == "", run.stdout + run.stderr
    assert not os.path.exists(gone)            # DEL made nothing at that path
    # the reference's lock creates a file at CNI_NETNS and then fails
    ref = world.run_plugin(ref_path, "sbr", "DEL", conf(ctr), gone)
    if os.path.exists(gone):
        os.unlink(gone)
    assert not ref.ok


def test_del_without_the_interface_succeeds(world, ours):
    ctr = container(world)
    ok(world, ours, "ADD", conf(ctr), ctr)
    ctr.run("ip", "link", "del", "eth0")
    assert ok(world, ours, "DEL", conf(ctr), ctr) is None
    assert ok(world, ours, "DEL", conf(ctr, table="garbage"), ctr) is None


@pytest.mark.parametrize("prev_keys", [
    {"gateway": "10.99.0.1"},                     # first address: its default route fails
    {"second_bad": True},                         # second address fails after the first
])
def test_failed_add_leaves_nothing(world, ours, ref_path, prev_keys):
    ctr = container(world)
    before = state(ctr)
    if prev_keys.get("second_bad"):
        bad = prev(ctr)
        bad["ips"][2]["gateway"] = "fd99::1"      # not on any link: unreachable
    else:
        bad = prev(ctr, gateway=prev_keys["gateway"])
    run = cmd(world, ours, "ADD", conf(ctr, prevResult=bad), ctr)
    assert not run.ok
    assert run.json["msg"].startswith("Failed to add default route to "), run.json
    assert run.json["code"] == 999
    assert state(ctr) == before
    # the reference stops half-way
    theirs = container(world, "sbrr")
    before = state(theirs)
    bad_ref = json.loads(json.dumps(bad).replace(ctr.path, theirs.path))
    ref = cmd(world, ref_path, "ADD", conf(theirs, prevResult=bad_ref), theirs)
    assert not ref.ok and ref.json["msg"] == run.json["msg"]
    assert state(theirs) != before


def test_check_notices_a_missing_rule_or_interface(world, ours):
    ctr = container(world)
    config = conf(ctr)
    ok(world, ours, "ADD", config, ctr)
    ctr.run("ip", "route", "del", "default", "table", "100")
    check = cmd(world, ours, "CHECK", config, ctr)
    assert not check.ok and check.json["msg"] == \
        "sbr: no default route via 10.9.0.1 (for 10.9.0.5) in its source table on eth0"
    ctr.run("ip", "route", "add", "default", "via", "10.9.0.1", "table", "100")
    assert ok(world, ours, "CHECK", config, ctr) is None
    ctr.run("ip", "-6", "rule", "del", "from", "fd09::5", "table", "102")
    check = cmd(world, ours, "CHECK", config, ctr)
    assert not check.ok and check.json["msg"] == \
        "sbr: no rule sends traffic from fd09::5 of eth0 to a table"
    ctr.run("ip", "link", "del", "eth0")
    check = cmd(world, ours, "CHECK", config, ctr)
    assert not check.ok and "Cannot find network interface eth0" in check.json["msg"]


def test_table_choice_skips_tables_in_use(world, ours, ref_path):
    """Table 100 taken by a rule, 101 holding routes without a rule: ours
    takes 102; the reference, which sees only the rules, takes 101."""
    mine, theirs = container(world, "sbro"), container(world, "sbrr")
    for ns in (mine, theirs):
        ns.run("ip", "rule", "add", "from", "10.200.0.1", "table", "100")
        ns.run("ip", "route", "add", "10.201.0.0/16", "dev", "eth0", "table", "101")
    ok(world, ours, "ADD", conf(mine, prevResult=prev(mine, v6=False, second=False)), mine)
    ok(world, ref_path, "ADD", conf(theirs, prevResult=prev(theirs, v6=False, second=False)),
       theirs)
    assert ("10.9.0.5", "102", 32764) in source_rules(mine)
    assert ("10.9.0.5", "101", 32764) in source_rules(theirs)
    assert {r["dst"] for r in routes(mine, "101")} == {"10.201.0.0/16"}   # left alone


def test_addresses_of_another_interface_change_nothing(world, ours, ref_path):
    """The reference takes the interface's routes out of the main table
    even when none of its addresses is there to route by source."""
    ctr, theirs = container(world), container(world, "sbrr")
    before = state(ctr)
    for ns, path in ((ctr, ours), (theirs, ref_path)):
        other = prev(ns)
        other["interfaces"] = [{"name": "net1"}]
        assert ok(world, path, "ADD", conf(ns, prevResult=other), ns)["ips"]
    assert state(ctr) == before
    assert routes(theirs, "main") == []


def test_two_interfaces_get_their_own_tables(world, ours):
    """Two sbr calls for two interfaces of one container (a Multus pod)."""
    ctr = container(world)
    world.host.run("ip", "link", "add", "sbrh9", "type", "veth", "peer", "name", "net1",
                   "netns", ctr.name)
    world.host.run("ip", "link", "set", "sbrh9", "up")
    ctr.run("ip", "addr", "add", "10.19.0.5/24", "dev", "net1")
    ctr.run("ip", "link", "set", "net1", "up")
    ok(world, ours, "ADD", conf(ctr, prevResult=prev(ctr, v6=False, second=False)), ctr)
    net1 = {"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": ctr.path}],
            "ips": [{"address": "10.19.0.5/24", "gateway": "10.19.0.1", "interface": 0}]}
    ok(world, ours, "ADD", conf(ctr, prevResult=net1), ctr, ifname="net1")
    assert source_rules(ctr) == [("10.19.0.5", "101", 32764), ("10.9.0.5", "100", 32765)]
    assert {(r["dst"], r.get("gateway"), r["dev"]) for r in routes(ctr, "101")
            if ":" not in r["dst"]} == {("default", "10.19.0.1", "net1"),
                                        ("10.19.0.0/24", None, "net1")}
    ok(world, ours, "DEL", conf(ctr, prevResult=net1), ctr, ifname="net1")
    assert source_rules(ctr) == [("10.9.0.5", "100", 32765)]


def test_concurrent_adds_for_two_interfaces_pick_different_tables(world, ours):
    """The namespace lock: two sbr ADDs at once (two networks of one pod)
    must not both take table 100."""
    import threading
    ctr = container(world)
    world.host.run("ip", "link", "add", "sbrh8", "type", "veth", "peer", "name", "net1",
                   "netns", ctr.name)
    ctr.run("ip", "addr", "add", "10.19.0.5/24", "dev", "net1")
    ctr.run("ip", "link", "set", "net1", "up")
    world.host.run("ip", "link", "set", "sbrh8", "up")
    net1 = {"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": ctr.path}],
            "ips": [{"address": "10.19.0.5/24", "interface": 0}]}
    calls = [(conf(ctr, prevResult=prev(ctr, v6=False, second=False)), "eth0"),
             (conf(ctr, prevResult=net1), "net1")]
    runs = [None, None]

    def call(i):
        config, ifname = calls[i]
        runs[i] = cmd(world, ours, "ADD", config, ctr, ifname=ifname)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in runs), [r.stdout + r.stderr for r in runs]
    tables = sorted(table for _src, table, _prio in source_rules(ctr))
    assert tables == ["100", "101"]
