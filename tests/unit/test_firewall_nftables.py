"""nftables rule generation of the firewall plugin: script goldens, the
parse of real `nft -j` output, attachment identity for DEL/GC, CHECK (pure)."""

import copy

from pycni.plugins.firewall import rules_nftables as nft
from pycni.plugins.firewall.config import ContainerIP

V4 = ContainerIP(4, "10.0.0.2")
V6 = ContainerIP(6, "2001:db8::2")
TAG1 = "8e48f37d5de60467-f4d01f2ef4b92245"     # net1, eth0, c1
COMMENT1 = f"{TAG1}, net: net1, if: eth0, id: c1"

# `nft -j list table inet cni_plugins_firewall` (nft 1.0.6) after ADD of
# container c1 / eth0 to networks net1 (10.0.0.2) and net2 (10.0.1.2),
# both with ingressPolicy isolated on bridge cni0.
LISTING = {"nftables": [
    {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
    {"table": {"family": "inet", "name": "cni_plugins_firewall", "handle": 1}},
    {"set": {"family": "inet", "name": "isolating_bridges", "table": "cni_plugins_firewall", "type": "ifname", "handle": 4, "elem": ["cni0"]}},
    {"set": {"family": "inet", "name": "bridge_pairs", "table": "cni_plugins_firewall", "type": ["ifname", "ifname"], "handle": 5, "elem": [{"concat": ["cni0", "cni0"]}]}},
    {"set": {"family": "inet", "name": "isolated_pairs", "table": "cni_plugins_firewall", "type": ["ifname", "ifname"], "handle": 6, "elem": [{"concat": ["cni0", "cni0"]}]}},
    {"chain": {"family": "inet", "table": "cni_plugins_firewall", "name": "admin", "handle": 1}},
    {"chain": {"family": "inet", "table": "cni_plugins_firewall", "name": "containers", "handle": 2}},
    {"chain": {"family": "inet", "table": "cni_plugins_firewall", "name": "isolation", "handle": 3}},
    {"chain": {"family": "inet", "table": "cni_plugins_firewall", "name": "forward", "handle": 7, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "containers", "handle": 14, "comment": "8e48f37d5de60467-f4d01f2ef4b92245, net: net1, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.2"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "containers", "handle": 15, "comment": "8e48f37d5de60467-f4d01f2ef4b92245, net: net1, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.2"}}, {"accept": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "containers", "handle": 16, "comment": "a5855bd82c6a57c4-f4d01f2ef4b92245, net: net2, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.1.2"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "containers", "handle": 17, "comment": "a5855bd82c6a57c4-f4d01f2ef4b92245, net: net2, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.1.2"}}, {"accept": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "isolation", "handle": 8, "expr": [{"match": {"op": "==", "left": {"concat": [{"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}]}, "right": "@isolated_pairs"}}, {"drop": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "isolation", "handle": 9, "expr": [{"match": {"op": "==", "left": {"concat": [{"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}]}, "right": "@bridge_pairs"}}, {"return": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "isolation", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "@isolating_bridges"}}, {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "@isolating_bridges"}}, {"drop": None}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "forward", "handle": 11, "expr": [{"jump": {"target": "isolation"}}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "forward", "handle": 12, "expr": [{"jump": {"target": "admin"}}]}},
    {"rule": {"family": "inet", "table": "cni_plugins_firewall", "chain": "forward", "handle": 13, "expr": [{"jump": {"target": "containers"}}]}},
]}

ADD_EMPTY = f"""\
add table inet cni_plugins_firewall {{ comment "CNI firewall plugin" ; }}
add chain inet cni_plugins_firewall admin
add chain inet cni_plugins_firewall containers
add chain inet cni_plugins_firewall isolation
add set inet cni_plugins_firewall isolating_bridges {{ type ifname ; }}
add set inet cni_plugins_firewall bridge_pairs {{ type ifname . ifname ; }}
add set inet cni_plugins_firewall isolated_pairs {{ type ifname . ifname ; }}
add chain inet cni_plugins_firewall forward {{ type filter hook forward priority filter ; policy accept ; }}
flush chain inet cni_plugins_firewall isolation
add rule inet cni_plugins_firewall isolation iifname . oifname @isolated_pairs drop
add rule inet cni_plugins_firewall isolation iifname . oifname @bridge_pairs return
add rule inet cni_plugins_firewall isolation iifname @isolating_bridges oifname @isolating_bridges drop
flush chain inet cni_plugins_firewall forward
add rule inet cni_plugins_firewall forward jump isolation
add rule inet cni_plugins_firewall forward jump admin
add rule inet cni_plugins_firewall forward jump containers
add rule inet cni_plugins_firewall containers ip daddr 10.0.0.2 ct state established,related accept comment "{COMMENT1}"
add rule inet cni_plugins_firewall containers ip saddr 10.0.0.2 accept comment "{COMMENT1}"
add rule inet cni_plugins_firewall containers ip6 daddr 2001:db8::2 ct state established,related accept comment "{COMMENT1}"
add rule inet cni_plugins_firewall containers ip6 saddr 2001:db8::2 accept comment "{COMMENT1}"
"""


def listing():
    return nft.parse_listing(copy.deepcopy(LISTING))


def without(handle):
    data = copy.deepcopy(LISTING)
    data["nftables"] = [i for i in data["nftables"]
                        if not ("rule" in i and i["rule"]["handle"] == handle)]
    return nft.parse_listing(data)


def test_comment_carries_network_interface_and_container():
    assert nft.address_rules(V4, COMMENT1)[0].comment == COMMENT1
    assert COMMENT1.startswith(TAG1)


def test_add_on_an_empty_host_golden():
    """Fixed chains are flushed and refilled inside the transaction:
    two racing ADDs leave one copy."""
    assert nft.add_script([V4, V6], "net1", "eth0", "c1", "open", "",
                          nft.parse_listing(None)) == ADD_EMPTY


def test_isolation_puts_the_bridge_in_the_sets():
    script = nft.add_script([V4], "net1", "eth0", "c1", "isolated", "cni0",
                            nft.parse_listing(None))
    assert script.endswith(
        'add element inet cni_plugins_firewall isolating_bridges { "cni0" }\n'
        'add element inet cni_plugins_firewall bridge_pairs { "cni0" . "cni0" }\n'
        'add element inet cni_plugins_firewall isolated_pairs { "cni0" . "cni0" }\n')


def test_same_bridge_is_not_in_the_isolated_pairs():
    assert nft.bridge_elements("cni0", "same-bridge") == [
        ("isolating_bridges", "cni0"), ("bridge_pairs", "cni0 . cni0")]


def test_parse_real_listing():
    lst = listing()
    assert lst.table and set(lst.chains) == {"admin", "containers", "isolation", "forward"}
    assert lst.chains["forward"]["policy"] == "accept"
    assert lst.sets == {"isolating_bridges": {"cni0"}, "bridge_pairs": {"cni0 . cni0"},
                        "isolated_pairs": {"cni0 . cni0"}}
    mine = [r for r in lst.rules if (r.comment or "").startswith(TAG1)]
    assert [r.handle for r in mine] == [14, 15]
    assert [r.signature for r in mine] == [r.signature for r in nft.address_rules(V4)]
    # the signatures we expect are the ones nft reports for what we wrote
    assert lst.holds_exactly("forward", nft.FORWARD_RULES)
    assert lst.holds_exactly("isolation", nft.ISOLATION_RULES)


def test_repeated_add_replaces_own_rules_and_keeps_the_layout():
    """The forward chain is neither re-declared (its policy is the
    administrator's) nor rebuilt when it is right."""
    script = nft.add_script([V4], "net1", "eth0", "c1", "isolated", "cni0", listing())
    assert "forward {" not in script and "flush" not in script
    assert "delete rule inet cni_plugins_firewall containers handle 14\n" in script
    assert "delete rule inet cni_plugins_firewall containers handle 15\n" in script
    assert "handle 16" not in script and "handle 17" not in script   # net2's


def test_fixed_chain_is_rebuilt_when_wrong():
    script = nft.add_script([V4], "net1", "eth0", "c1", "open", "", without(12))
    assert "flush chain inet cni_plugins_firewall forward\n" \
           "add rule inet cni_plugins_firewall forward jump isolation\n" \
           "add rule inet cni_plugins_firewall forward jump admin\n" \
           "add rule inet cni_plugins_firewall forward jump containers\n" in script
    assert "type filter hook" not in script and "flush chain inet cni_plugins_firewall " \
        "isolation" not in script


def test_del_takes_only_this_attachment():
    lst = listing()
    assert [r.handle for r in nft.del_rules("net1", "eth0", "c1", lst)] == [14, 15]
    assert [r.handle for r in nft.del_rules("net2", "eth0", "c1", lst)] == [16, 17]
    assert nft.del_rules("net1", "eth1", "c1", lst) == []       # other interface
    assert nft.del_rules("net3", "eth0", "c1", lst) == []       # other network
    assert nft.delete_script(nft.del_rules("net1", "eth0", "c1", lst)) == (
        "delete rule inet cni_plugins_firewall containers handle 14\n"
        "delete rule inet cni_plugins_firewall containers handle 15\n")
    assert nft.delete_script([]) is None


def test_gc_is_scoped_to_the_network():
    lst = listing()
    assert [r.handle for r in nft.gc_rules("net1", [], lst)] == [14, 15]
    assert nft.gc_rules("net1", [("c1", "eth0")], lst) == []
    assert [r.handle for r in nft.gc_rules("net1", [("c1", "eth1")], lst)] == [14, 15]
    assert [r.handle for r in nft.gc_rules("net2", [("c2", "eth0")], lst)] == [16, 17]
    assert nft.gc_rules("other", [], lst) == []


def test_check_all_present():
    assert nft.check([V4], "net1", "eth0", "c1", "isolated", "cni0", listing()) == []
    assert nft.check([ContainerIP(4, "10.0.1.2")], "net2", "eth0", "c1", "open", "",
                     listing()) == []


def test_check_problems():
    lst = listing()
    # right address, but the rules belong to another network
    problems = nft.check([ContainerIP(4, "10.0.1.2")], "net1", "eth0", "c1", "open", "", lst)
    assert problems == [
        "expected rule `ip daddr 10.0.1.2 ct state established,related accept` of c1 not "
        "found in chain containers",
        "expected rule `ip saddr 10.0.1.2 accept` of c1 not found in chain containers"]
    assert nft.check([V4], "net1", "eth0", "c1", "isolated", "cni1", lst) == [
        "bridge cni1 missing from set isolating_bridges",
        "bridge cni1 missing from set bridge_pairs",
        "bridge cni1 missing from set isolated_pairs"]
    assert nft.check([V4], "net1", "eth0", "c1", "open", "", nft.parse_listing(None)) == \
        ["table inet cni_plugins_firewall not found"]


def test_check_missing_fixed_rules():
    assert nft.check([V4], "net1", "eth0", "c1", "open", "", without(13)) == \
        ["expected forward rule `jump containers` not found"]
    assert nft.check([V4], "net1", "eth0", "c1", "open", "", without(9)) == \
        ["expected isolation rule `iifname . oifname @bridge_pairs return` not found"]


def test_unknown_expressions_do_not_match():
    data = {"nftables": [{"rule": {"chain": "containers", "handle": 1, "comment": COMMENT1,
                                   "expr": [{"counter": {"packets": 0, "bytes": 0}},
                                            {"accept": None}]}}]}
    lst = nft.parse_listing(data)
    assert lst.rules[0].signature == ('{"counter": {"bytes": 0, "packets": 0}}', "accept")
