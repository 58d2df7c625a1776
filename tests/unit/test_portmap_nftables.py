"""portmap nftables script generation (golden) and listing parsing."""

import struct

from pycni.plugins.portmap import config as c
from pycni.plugins.portmap import conntrack
from pycni.plugins.portmap import rules_nftables as rn

MAPS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8081, "containerPort": 81, "protocol": "udp", "hostIP": "10.0.0.9"},
        {"hostPort": 8082, "containerPort": 82, "protocol": "sctp", "hostIP": "::1"}]
TAG = rn.comment("mynet", "abc")
MARK = rn.mark_match("mynet")


def conf(**keys) -> c.PortMapConf:
    raw = {"cniVersion": "1.0.0", "name": "mynet", "type": "portmap", "backend": "nftables",
           "runtimeConfig": {"portMappings": MAPS}, **keys}
    return c.parse_config(raw)


GOLDEN_V4 = f"""\
add table ip cni_hostport {{ comment "CNI portmap plugin" ; }}
add chain ip cni_hostport hostports
add chain ip cni_hostport hostip_hostports
add chain ip cni_hostport hostports_all
flush chain ip cni_hostport hostports_all
add rule ip cni_hostport hostports_all jump hostip_hostports
add rule ip cni_hostport hostports_all jump hostports
add chain ip cni_hostport prerouting {{ type nat hook prerouting priority -100 ; }}
flush chain ip cni_hostport prerouting
add rule ip cni_hostport prerouting fib daddr type local jump hostports_all
add chain ip cni_hostport output {{ type nat hook output priority -100 ; }}
flush chain ip cni_hostport output
add rule ip cni_hostport output fib daddr type local jump hostports_all
add chain ip cni_hostport masquerading {{ type nat hook postrouting priority 100 ; }}
add rule ip cni_hostport hostports tcp dport 8080 {MARK} dnat to 10.88.0.5:80 comment "{TAG}"
add rule ip cni_hostport hostports ip daddr 10.0.0.9 udp dport 8081 {MARK} dnat to 10.88.0.5:81 comment "{TAG}"
add rule ip cni_hostport masquerading ip saddr 10.88.0.5 ip daddr 10.88.0.5 {MARK} masquerade comment "{TAG}"
add rule ip cni_hostport masquerading ip saddr 127.0.0.1 ip daddr 10.88.0.5 {MARK} masquerade comment "{TAG}"
"""


def test_golden_ipv4():
    assert rn.add_script(conf(), "mynet", "abc", c.ContainerIP("10.88.0.5/16")) == GOLDEN_V4


def test_ipv6_masq_all_conditions_and_no_snat():
    script = rn.add_script(conf(masqAll=True, conditionsV6=["ip6 saddr != ::5"]), "mynet", "abc",
                           c.ContainerIP("fd00::5/64"))
    assert "add rule ip6 cni_hostport prerouting ip6 saddr != ::5 fib daddr type local " \
           "jump hostports_all" in script
    assert f'add rule ip6 cni_hostport hostports ip6 daddr ::1 sctp dport 8082 {MARK} dnat to ' \
           f'[fd00::5]:82 comment "{TAG}"' in script
    assert f'add rule ip6 cni_hostport masquerading ip6 saddr ::/0 ip6 daddr fd00::5 ' \
           f'{MARK} masquerade comment "{TAG}"' in script
    assert "udp dport 8081" not in script and "127.0.0.1" not in script
    nosnat = rn.add_script(conf(snat=False), "mynet", "abc", c.ContainerIP("10.88.0.5/16"))
    assert "masquerad" not in nosnat


def test_every_dnat_is_guarded_by_fib_local():
    """CVE-2025-67499: no path to hostports without `fib daddr type local`."""
    script = rn.add_script(conf(), "mynet", "abc", c.ContainerIP("10.88.0.5/16"))
    jumps = [l for l in script.splitlines() if "jump hostports_all" in l]
    assert len(jumps) == 2 and all("fib daddr type local" in l for l in jumps)


def test_comment_is_the_container_id_and_the_tag_names_the_network():
    """The reference's DEL and CHECK find rules by comment == container ID;
    the network is in the always-true mark match."""
    assert TAG == "abc"
    assert MARK == f"meta mark & 0x{rn.net_mark('mynet'):08x} | " \
                   f"0x{rn.net_mark('mynet'):08x} == 0x{rn.net_mark('mynet'):08x}"
    assert rn.net_mark("mynet") != rn.net_mark("othernet") and rn.net_mark("mynet") > 0


def test_a_container_id_too_long_for_a_comment_gets_the_hashed_form():
    long_id = "c" * 200
    text = rn.comment("n" * 200, long_id)
    assert len(text) == 128 and text.startswith(rn.tag("n" * 200, long_id) + ", net: ")
    script = rn.add_script(conf(), "mynet", long_id, c.ContainerIP("10.88.0.5/16"))
    assert "meta mark" not in script     # the comment names the network already
    assert rn.comment("mynet", "c" * 128) == "c" * 128


def rule(chain, handle, comment, family=4, mark=None):
    return rn.ExistingRule(family, chain, handle, comment, mark)


OURS = rn.net_mark("mynet")
OTHER = rn.net_mark("other")
LEGACY = rn.legacy_comment("mynet", "abc")


def test_readd_deletes_this_attachments_old_rules_only():
    existing = [rule("hostports", 5, TAG, mark=OURS), rule("hostports", 6, TAG, mark=OTHER),
                rule("masquerading", 7, TAG), rule("hostports", 8, TAG, family=6, mark=OURS),
                rule("hostports", 9, LEGACY), rule("hostports", 10, rn.legacy_comment("x", "abc"))]
    script = rn.add_script(conf(), "mynet", "abc", c.ContainerIP("10.88.0.5/16"), existing)
    deletes = [l for l in script.splitlines() if l.startswith("delete")]
    assert deletes == ["delete rule ip cni_hostport hostports handle 5",
                       "delete rule ip cni_hostport masquerading handle 7",
                       "delete rule ip cni_hostport hostports handle 9"]


def test_del_and_gc_selection():
    existing = [rule("hostports", 1, TAG, mark=OURS), rule("hostports", 2, TAG, mark=OTHER),
                rule("masquerading", 3, TAG, 6, mark=OURS), rule("hostports", 4, "abc"),
                rule("hostports", 5, "zzz", mark=OURS), rule("prerouting", 6, None),
                rule("hostports", 7, LEGACY), rule("hostports", 8, rn.legacy_comment("mynet", "zzz")),
                rule("hostports", 9, "zzz"), rule("hostports", 10, "zzz", mark=OTHER),
                rule("output", 11, "abc", mark=OURS)]
    # DEL: our tag or the reference's (no tag), and the earlier pycni form
    assert [r.handle for r in rn.del_rules("mynet", "abc", existing)] == [1, 3, 4, 7]
    # GC: only rules that name this network
    assert [r.handle for r in rn.gc_rules("mynet", {"abc"}, existing)] == [5, 8]
    assert [r.handle for r in rn.gc_rules("mynet", set(), existing)] == [1, 3, 5, 7, 8]
    assert rn.delete_script([]) is None
    assert rn.delete_script(rn.del_rules("mynet", "abc", existing)[:3]) == (
        "delete rule ip cni_hostport hostports handle 1\n"
        "delete rule ip6 cni_hostport masquerading handle 3\n"
        "delete rule ip cni_hostport hostports handle 4\n")


def test_check_counts_the_references_rules_and_ours_not_another_networks():
    existing = [rule("hostports", 1, "abc"), rule("hostports", 2, "abc", mark=OURS),
                rule("masquerading", 3, "abc"), rule("masquerading", 4, LEGACY)]
    assert rn.check(conf(), "mynet", "abc", 4, existing, True) == []
    other = [rule("hostports", 1, "abc", mark=OTHER), rule("hostports", 2, "abc", mark=OTHER),
             rule("masquerading", 3, "abc", mark=OTHER), rule("masquerading", 4, "abc", mark=OTHER)]
    problems = rn.check(conf(), "mynet", "abc", 4, other, True)
    assert problems == ['missing hostport rules in "hostports" chain (0 of 2)',
                        'missing hostport rules in "masquerading" chain (0 of 2)']


def test_the_mark_match_is_read_back_from_a_listing():
    value = rn.net_mark("mynet")
    listed = {"nftables": [{"rule": {
        "family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 3,
        "comment": "abc", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": 80}},
            {"match": {"op": "==", "left": {"|": [{"&": [{"meta": {"key": "mark"}}, value]},
                                                  value]}, "right": value}},
            {"dnat": {"addr": "10.0.0.2", "port": 80}}]}},
        {"rule": {"family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 4,
                  "comment": "abc", "expr": [
                      {"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 5}}]}},
    ]}
    rules, _ = rn.parse_listing(4, listed)
    assert [(r.handle, r.mark) for r in rules] == [(3, value), (4, None)]


LISTING = {"nftables": [
    {"metainfo": {"json_schema_version": 1}},
    {"table": {"family": "ip", "name": "cni_hostport", "handle": 1}},
    {"rule": {"family": "ip", "table": "cni_hostport", "chain": "prerouting", "handle": 9,
              "expr": [{"match": {"op": "==", "left": {"fib": {"result": "type",
                                                              "flags": ["daddr"]}},
                                  "right": "local"}},
                       {"jump": {"target": "hostports_all"}}]}},
    {"rule": {"family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 12,
              "comment": TAG, "expr": []}},
]}


def test_parse_listing_and_check():
    rules, hooks = rn.parse_listing(4, LISTING)
    assert [(r.chain, r.handle, r.comment) for r in rules] == \
        [("prerouting", 9, None), ("hostports", 12, TAG)]
    assert not hooks            # output's jump is missing
    problems = rn.check(conf(), "mynet", "abc", 4, rules, hooks)
    assert any("prerouting/output" in p for p in problems)
    assert any('"hostports" chain (1 of 2)' in p for p in problems)
    assert any('"masquerading" chain (0 of 2)' in p for p in problems)


def test_expected_counts():
    assert rn.expected_counts(conf(), 4) == {"hostports": 2, "masquerading": 2}
    assert rn.expected_counts(conf(), 6) == {"hostports": 2, "masquerading": 1}
    assert rn.expected_counts(conf(masqAll=True), 4) == {"hostports": 2, "masquerading": 1}
    assert rn.expected_counts(conf(snat=False), 4) == {"hostports": 2}


def ct_entry(proto: int, dport: int) -> bytes:
    attr = conntrack.attr
    nested = conntrack.NLA_F_NESTED
    ip = attr(1 | nested, attr(1, bytes([10, 0, 0, 1])) + attr(2, bytes([10, 0, 0, 2])))
    pr = attr(2 | nested, attr(1, bytes([proto])) + attr(2, struct.pack("!H", 5555))
              + attr(3, struct.pack("!H", dport)))
    return attr(conntrack.CTA_TUPLE_ORIG | nested, ip + pr) + attr(conntrack.CTA_ZONE,
                                                                   struct.pack("!H", 0))


def test_conntrack_selection():
    entries = [ct_entry(17, 8081), ct_entry(6, 8081), ct_entry(17, 9999)]
    found = conntrack.matching_tuples(entries, 17, {8081})
    assert len(found) == 1 and found[0][1] == struct.pack("!H", 0)
