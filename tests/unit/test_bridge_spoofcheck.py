"""macspoofchk nft commands (pure)."""

from pycni.plugins.bridge import spoofcheck


def test_names():
    ref = spoofcheck.ref_id("ctr1", "eth0")
    assert ref == "ctr1-eth0"
    assert spoofcheck.chain_names(ref) == ("cni-br-iface-ctr1-eth0", "cni-br-iface-ctr1-eth0-mac")
    assert spoofcheck.comment(ref) == "macspoofchk-ctr1-eth0"


def test_setup_commands():
    cmds = spoofcheck.setup_commands("veth01020304", "02:00:00:00:00:01", "c-eth0")["nftables"]
    verbs = [next(iter(c)) for c in cmds]
    assert verbs == ["add", "add", "add", "add", "flush", "flush", "add", "add", "add", "add"]
    base = cmds[1]["add"]["chain"]
    assert base == {"family": "bridge", "table": "nat", "name": "PREROUTING", "type": "filter",
                    "hook": "prerouting", "prio": -300, "policy": "accept"}
    jump = cmds[6]["add"]["rule"]
    assert jump["chain"] == "PREROUTING" and jump["comment"] == "macspoofchk-c-eth0"
    assert jump["expr"] == [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth01020304"}},
        {"jump": {"target": "cni-br-iface-c-eth0"}}]
    assert cmds[8]["add"]["rule"]["expr"][0]["match"]["right"] == "02:00:00:00:00:01"
    assert cmds[9]["add"]["rule"]["expr"] == [{"drop": None}]


LISTING = {"nftables": [
    {"metainfo": {}},
    {"table": {"family": "bridge", "name": "nat", "handle": 1}},
    {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING", "handle": 1}},
    {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c-eth0", "handle": 2}},
    {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c-eth0-mac", "handle": 3}},
    {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-d-eth0", "handle": 8}},
    {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4,
              "comment": "macspoofchk-c-eth0",
              "expr": [{"match": {}}, {"jump": {"target": "cni-br-iface-c-eth0"}}]}},
    {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 9,
              "comment": "macspoofchk-d-eth0",
              "expr": [{"match": {}}, {"jump": {"target": "cni-br-iface-d-eth0"}}]}},
    {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-c-eth0", "handle": 5,
              "comment": "macspoofchk-c-eth0", "expr": [{"jump": {"target": "x"}}]}},
]}


def test_teardown_commands_touch_only_this_port():
    cmds = spoofcheck.teardown_commands("c-eth0", LISTING)["nftables"]
    assert cmds == [
        {"delete": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING",
                             "handle": 4}}},
        {"flush": {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c-eth0"}}},
        {"flush": {"chain": {"family": "bridge", "table": "nat",
                             "name": "cni-br-iface-c-eth0-mac"}}},
        {"delete": {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c-eth0"}}},
        {"delete": {"chain": {"family": "bridge", "table": "nat",
                              "name": "cni-br-iface-c-eth0-mac"}}},
    ]


def test_teardown_commands_nothing_there():
    assert spoofcheck.teardown_commands("c-eth0", None) is None
    assert spoofcheck.teardown_commands("zzz-eth0", LISTING) is None
