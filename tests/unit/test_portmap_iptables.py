"""portmap iptables rules: goldens from the reference plugin's real rules
(fixtures/portmap/reference_iptables.json) and the restore scripts."""

import json
import os

import pytest

from pycni.plugins.portmap import config as c
from pycni.plugins.portmap import rules_iptables as ri
from pycni.result import parse_result

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "portmap", "reference_iptables.json")
REF = json.load(open(FIXTURE))
CHAIN = "CNI-DN-e88f49d94512ff752ebe6"


def plans(extra: dict) -> dict[int, ri.Plan]:
    raw = {**REF["base"], **extra}
    cf = c.parse_config(raw, lambda: "iptables")
    prev = parse_result(raw["prevResult"], "1.0.0")
    return {ip.family: ri.plan(cf, "mynet", "abc", ip) for ip in c.container_ips(prev, "eth0")}


def our_lines(p: ri.Plan) -> list[str]:
    """What the nat table holds after applying `p` to an empty table, in
    iptables-save order (chains in order of creation by the reference)."""
    shared = {}
    for chain, rule, _ in p.shared:
        shared.setdefault(chain, []).append(f"-A {chain} {ri.render(rule)}")
    out = shared.get("PREROUTING", []) + shared.get("OUTPUT", []) + shared.get("POSTROUTING", [])
    out += [f"-A {p.chain} {ri.render(r)}" for r in p.rules]
    out += [f"-A CNI-HOSTPORT-DNAT {ri.render(e)}" for e in p.entries]
    out += shared.get("CNI-HOSTPORT-MASQ", []) + shared.get("CNI-HOSTPORT-SETMARK", [])
    return out


def test_chain_name_is_the_reference_hash():
    assert ri.chain_name("mynet", "abc") == CHAIN
    assert ri.chain_name("mynet", "abc", "SN-").startswith("CNI-SN-")
    assert len(ri.chain_name("x" * 300, "y")) == 28


@pytest.mark.parametrize("variant", ["default", "nosnat", "extmark", "bit5"])
def test_rules_match_the_reference(variant):
    ref = REF["variants"][variant]
    ps = plans(ref["config"])
    assert our_lines(ps[4]) == ref["v4"]
    assert our_lines(ps[6]) == ref["v6"]


def test_masq_all_matches_any_source_and_drops_localhost_rule():
    ps = plans({"masqAll": True})
    assert ps[4].rules[:2] == [
        ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT",
         "--to-destination", "10.88.0.5:80"]]
    assert not any("127.0.0.1/32" in r for r in ps[4].rules)


def test_conditions_go_before_the_jump():
    p = plans({"conditionsV4": ["-d", "192.168.5.5"]})[4]
    assert p.entries[0][-4:] == ["-d", "192.168.5.5", "-j", CHAIN]


def test_multiport_splits_at_15_ports():
    raw = {"cniVersion": "1.0.0", "name": "n", "type": "portmap", "runtimeConfig": {
        "portMappings": [{"hostPort": 1000 + i, "containerPort": 80, "protocol": "tcp"}
                         for i in range(17)]}}
    cf = c.parse_config(raw)
    p = ri.plan(cf, "n", "c", c.ContainerIP("10.0.0.2/24"))
    specs = [e[e.index("--dports") + 1] for e in p.entries]
    assert specs == [",".join(str(1000 + i) for i in range(15)), "1015,1016"]


def test_long_comment_is_trimmed_like_the_reference():
    text = ri.dnat_comment("n" * 200, "c" * 100)
    assert len(text) == 255 and text.endswith("...")


def test_mark_spec():
    assert ri.mark_spec(13) == "0x2000/0x2000"
    assert ri.mark_spec(0) == "0x1/0x1"
    assert ri.mark_spec(31) == "0x80000000/0x80000000"


EMPTY = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
        ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"


def reference_table(family: int, variant: str = "default") -> str:
    lines = REF["variants"][variant][f"v{family}"]
    chains = sorted({l.split()[1] for l in lines} - {"PREROUTING", "OUTPUT", "POSTROUTING"})
    return EMPTY.replace("COMMIT\n", "".join(f":{ch} - [0:0]\n" for ch in chains)
                         + "\n".join(lines) + "\nCOMMIT\n")


def test_add_script_on_empty_table_creates_everything_entries_appended():
    script = ri.add_script(plans({})[4], ri.parse_saved(EMPTY))
    lines = script.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    for chain in ("CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-DNAT"):
        assert f"-N {chain}" in lines
    # CVE-2019-9946: the only insertion at the head is the MASQ jump
    inserts = [l for l in lines if l.startswith("-I ")]
    assert inserts == ['-I POSTROUTING 1 -m comment --comment '
                       '"CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ']
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in lines
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in lines
    assert f":{CHAIN} - [0:0]" in lines
    assert lines.index("-N CNI-HOSTPORT-SETMARK") < lines.index(f":{CHAIN} - [0:0]")


def test_add_script_over_the_reference_state_changes_only_the_container_chain():
    saved = ri.parse_saved(reference_table(4))
    script = ri.add_script(plans({})[4], saved)
    assert script == "\n".join(["*nat", f":{CHAIN} - [0:0]"] +
                               [l for l in REF["variants"]["default"]["v4"]
                                if l.startswith(f"-A {CHAIN} ")] + ["COMMIT"]) + "\n"
    assert ri.check(plans({})[4], saved) == []


def test_add_script_replaces_stale_entry_rules():
    saved = ri.parse_saved(reference_table(4))
    p = plans({"runtimeConfig": {"portMappings": [
        {"hostPort": 9000, "containerPort": 80, "protocol": "tcp"}]}})[4]
    lines = ri.add_script(p, saved).splitlines()
    deletes = [l for l in lines if l.startswith("-D CNI-HOSTPORT-DNAT")]
    assert len(deletes) == 3 and all(l.endswith(CHAIN) for l in deletes)
    assert lines[-2].startswith("-A CNI-HOSTPORT-DNAT -p tcp") and "9000" in lines[-2]


def test_del_script_removes_jumps_then_chain_and_nothing_else():
    saved = ri.parse_saved(reference_table(4))
    script = ri.del_script("mynet", "abc", saved)
    lines = script.splitlines()
    assert [l for l in lines if l.startswith("-D")] == \
        ["-D" + l[2:] for l in REF["variants"]["default"]["v4"] if l.endswith(f"-j {CHAIN}")]
    assert lines[-3:] == [f"-F {CHAIN}", f"-X {CHAIN}", "COMMIT"]
    assert ri.del_script("mynet", "other", saved) is None
    assert ri.del_script("mynet", "abc", ri.parse_saved(EMPTY)) is None


def test_del_script_removes_the_legacy_snat_chain():
    sn = ri.chain_name("mynet", "abc", "SN-")
    saved = ri.parse_saved(EMPTY.replace("COMMIT", f":CNI-HOSTPORT-SNAT - [0:0]\n:{sn} - [0:0]\n"
                                         f"-A CNI-HOSTPORT-SNAT -j {sn}\nCOMMIT"))
    assert ri.del_script("mynet", "abc", saved).splitlines()[1:] == \
        [f"-D CNI-HOSTPORT-SNAT -j {sn}", f"-F {sn}", f"-X {sn}", "COMMIT"]


def test_check_reports_missing_rules():
    p = plans({})[4]
    lines = reference_table(4).replace(
        f"-A {CHAIN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80\n", "")
    problems = ri.check(p, ri.parse_saved(lines))
    assert len(problems) == 1 and "10.88.0.5:80" in problems[0]
    assert "not found" in ri.check(p, ri.parse_saved(EMPTY))[0]


def test_gc_removes_only_invalid_containers_of_this_network():
    other = ri.chain_name("othernet", "abc")
    text = reference_table(4).replace("COMMIT", f":{other} - [0:0]\n"
                                      f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment '
                                      f'"dnat name: \\"othernet\\" id: \\"abc\\"" -m multiport '
                                      f"--dports 1 -j {other}\nCOMMIT")
    saved = ri.parse_saved(text)
    assert ri.gc_script("mynet", {"abc"}, saved) is None
    script = ri.gc_script("mynet", {"zzz"}, saved)
    assert f"-X {CHAIN}" in script and other not in script
    assert f"-X {other}" in ri.gc_script("othernet", set(), saved)


def test_render_quotes_like_iptables_save():
    assert ri.render(["--comment", 'dnat name: "n" id: "c"']) == \
        '--comment "dnat name: \\"n\\" id: \\"c\\""'
    assert ri.split('-A X --comment "a \\"b\\""') == ["-A", "X", "--comment", 'a "b"']
