"""portmap DEL and CHECK with the iptables backend, against a simulated
nat table.

When the config names the container's mappings and prevResult its
families, DEL first tries the batch deleting exactly what ADD wrote
(rules_iptables.exact_del_script), with no read of the table. Otherwise,
or when that batch is refused, DEL lists CNI-HOSTPORT-DNAT alone
(`iptables -S`) and applies one all-or-nothing batch
(rules_iptables.del_listed_script); when the listing shows no entry
rule of the container, or the batch fails, it reads the whole table
(`iptables-save`, del_script) as before. Both only save work: the table
left behind and the families reported as changed must be those of the
whole-table way, whatever the table holds. CHECK's batch of `-C` lines
must give the whole table's verdict. The simulator below applies restore scripts the way
iptables-restore does (all or nothing; `-X` of a chain that a rule still
jumps to fails); the real kernel is in tests/integration/test_portmap_scale.py.
"""

import sys
import os

import pytest

from pycni import fwquote, fwtools, iptsave
from pycni.fwtools import ToolError
from pycni.plugins.portmap import backend
from pycni.plugins.portmap import rules_iptables as ri

sys.path.insert(0, os.path.dirname(__file__))
from test_iptsave import NET, reference_nat  # noqa: E402

BUILTIN = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
CID = "p4pm-measured"
DN, SN = ri.container_chains(NET, CID)


class Table:
    """One family's nat table: chain -> rule lines (`-A CHAIN ...`)."""

    def __init__(self, text: str = ""):
        self.chains: dict[str, list[str]] = {c: [] for c in BUILTIN}
        saved = iptsave.parse_saved(text)
        for c in saved.chains:
            self.chains.setdefault(c, [])
        for c, lines in saved.lines.items():
            self.chains.setdefault(c, []).extend(lines)

    def save(self) -> str:
        out = ["*nat"] + [f":{c} {'ACCEPT' if c in BUILTIN else '-'} [0:0]" for c in self.chains]
        out += [line for lines in self.chains.values() for line in lines]
        return "\n".join(out + ["COMMIT", ""])

    def listing(self, chain: str) -> str:
        if chain not in self.chains:
            raise ToolError("iptables", 1, f"chain `{chain}' in table `nat' is incompatible")
        head = f"-P {chain} ACCEPT" if chain in BUILTIN else f"-N {chain}"
        return "\n".join([head, *self.chains[chain], ""])

    def restore(self, script: str) -> None:
        new = {c: list(lines) for c, lines in self.chains.items()}

        def fail(line):
            raise ToolError("iptables-restore", 1, f"line failed: {line}")
        for line in script.split("\n"):
            if line in ("*nat", "COMMIT", ""):
                continue
            tokens = fwquote.ipt_tokens(line)
            op, chain, args = tokens[0], tokens[1], tokens[2:]
            if line.startswith(":"):
                new[line[1:].split()[0]] = []
            elif op == "-N":
                if chain in new:
                    fail(line)
                new[chain] = []
            elif chain not in new:
                fail(line)
            elif op == "-D":
                rules = [fwquote.ipt_tokens(r)[2:] if r[-4:] == line[-4:] else None
                         for r in new[chain]]
                if args not in rules:
                    fail(line)
                del new[chain][rules.index(args)]
            elif op == "-C":
                if args not in [fwquote.ipt_tokens(r)[2:] for r in new[chain]]:
                    fail(line)
            elif op == "-F":
                new[chain] = []
            elif op == "-X":
                used = any(iptsave.target_of(fwquote.ipt_tokens(r)[2:]) == chain
                           for lines in new.values() for r in lines if chain in r)
                if used or chain in BUILTIN:
                    fail(line)
                del new[chain]
            elif op in ("-A", "-I"):
                rule = "-A " + chain + " " + iptsave.render(args[1:] if op == "-I" else args)
                target = iptsave.target_of(args)
                if target.startswith("CNI-") and target not in new:
                    fail(line)
                new[chain].insert(0, rule) if op == "-I" else new[chain].append(rule)
            else:
                fail(line)
        self.chains = new


@pytest.fixture
def node(monkeypatch):
    """Tables for both families and the calls made to the tools."""
    tables = {4: Table(), 6: Table()}
    calls: list[tuple] = []

    def run_tool(argv, stdin=""):
        family = 6 if argv[0].startswith("ip6") else 4
        assert argv[1:5] == ["-w", "-t", "nat", "-S"] and len(argv) == 6
        calls.append((family, "-S"))
        return tables[family].listing(argv[5])

    def save(family, table):
        assert table == "nat"
        calls.append((family, "save"))
        return tables[family].save()

    def restore(family, script):
        calls.append((family, "restore"))
        tables[family].restore(script)

    def retrying(step):
        for attempt in range(5):
            try:
                return step()
            except ToolError:
                if attempt == 4:
                    raise
    def chain_missing(family, chain):
        calls.append((family, "-S1"))
        return chain not in tables[family].chains
    monkeypatch.setattr(backend.IptablesBackend, "chain_missing", staticmethod(chain_missing))
    monkeypatch.setattr(backend, "run_tool", run_tool)
    monkeypatch.setattr(fwtools, "iptables_save", save)     # read by IptablesTable.saved
    monkeypatch.setattr(backend, "retrying", retrying)
    monkeypatch.setattr(backend.IptablesBackend, "restore", staticmethod(restore))
    monkeypatch.setattr(backend.IptablesBackend, "usable", staticmethod(lambda family: True))
    # a simulated table is never "no nat table" (fwtools.no_table asks the kernel)
    monkeypatch.setattr(backend, "no_table", lambda family, table: False)
    return tables, calls


def ours(net=NET, cid=CID, port=29999, ip="10.127.2.4") -> list[str]:
    """Our ADD's rules for one TCP mapping (chains declared, then rules)."""
    dn = ri.chain_name(net, cid)
    return [f":{dn} - [0:0]",
            f"-A {dn} -s 10.127.0.0/16 -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK",
            f"-A {dn} -s 127.0.0.1/32 -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK",
            f"-A {dn} -p tcp -m tcp --dport {port} -j DNAT --to-destination {ip}:80",
            f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"{net}\\" '
            f'id: \\"{cid}\\"" -m multiport --dports {port} -j {dn}']


def with_lines(text: str, lines: list[str]) -> str:
    assert "COMMIT" in text
    return text.replace("COMMIT", "\n".join(lines) + "\nCOMMIT", 1)


BIG, SMALL = reference_nat(500), reference_nat(1)
STATES = {
    "500 + ours": (with_lines(BIG, ours()), ""),
    "500 + ours, both families": (with_lines(BIG, ours()), with_lines(BIG, ours())),
    "one, ours": (with_lines(SMALL, ours()), ""),
    "500, not ours (repeated DEL)": (BIG, ""),
    "empty": ("", ""),
    "one, not ours": (SMALL, ""),
    "ours only in IPv6": (SMALL, with_lines(SMALL, ours())),
    "another owner jumps to our chain": (
        with_lines(BIG, ours() + [f"-A PREROUTING -p tcp -m comment --comment x -j {DN}"]), ""),
    "goto from another chain": (with_lines(BIG, ours() + [f"-A OUTPUT -g {DN}"]), ""),
    "two entry rules": (with_lines(BIG, ours() + [ours(port=29998)[-1]]), ""),
    "legacy SNAT chain, referenced": (
        with_lines(BIG, ours() + [":CNI-HOSTPORT-SNAT - [0:0]", f":{SN} - [0:0]",
                                  f"-A {SN} -j MASQUERADE", f"-A CNI-HOSTPORT-SNAT -j {SN}"]), ""),
    "legacy SNAT chain, unreferenced": (with_lines(BIG, ours() + [f":{SN} - [0:0]",
                                                                  f"-A {SN} -j MASQUERADE"]), ""),
    "legacy SNAT chain only": (with_lines(BIG, [f":{SN} - [0:0]"]), ""),
    "orphan chain, no entry rule": (with_lines(BIG, ours()[:4]), ""),
    "entry rule jumping to the SNAT chain": (
        with_lines(BIG, ours() + [f":{SN} - [0:0]", f"-A CNI-HOSTPORT-DNAT -p udp -j {SN}"]), ""),
    "no CNI-HOSTPORT-DNAT": ("\n".join(["*nat", *ours()[:4], "COMMIT", ""]), ""),
    "comment naming our chain, no jump": (
        with_lines(BIG, [f'-A CNI-HOSTPORT-DNAT -m comment --comment "-j {DN}" -j RETURN']), ""),
}


def conf_of(port=29999, **extra):
    """The config whose ADD wrote `ours(port=port)` (one TCP mapping)."""
    from pycni.plugins.portmap.config import parse_config
    return parse_config({"cniVersion": "1.0.0", "name": NET, "type": "portmap",
                         "runtimeConfig": {"portMappings": [
                             {"hostPort": port, "containerPort": 80, "protocol": "tcp"}]},
                         **extra}, scripts=False)


def run_teardown(node, state, whole_table_only=False, monkeypatch=None, conf=None,
                 families=()):
    tables, calls = node
    tables[4], tables[6] = Table(state[0]), Table(state[1])
    calls.clear()
    if whole_table_only:
        monkeypatch.setattr(backend.IptablesBackend, "listed", staticmethod(lambda f, c: None))
    changed = backend.IptablesBackend().teardown(NET, CID, conf, families)
    return {f: dict(t.chains) for f, t in tables.items()}, changed, list(calls)


@pytest.mark.parametrize("name", list(STATES))
def test_del_leaves_what_the_whole_table_way_leaves(node, name, monkeypatch):
    fast = run_teardown(node, STATES[name])
    full = run_teardown(node, STATES[name], whole_table_only=True, monkeypatch=monkeypatch)
    assert fast[:2] == full[:2]
    for family in (4, 6):
        left = fast[0][family]
        assert DN not in left and SN not in left
        assert not any(iptsave.target_of(fwquote.ipt_tokens(r)[2:]) in (DN, SN)
                       for lines in left.values() for r in lines)


@pytest.mark.parametrize("name", list(STATES))
def test_del_twice_changes_nothing_more(node, name):
    first = run_teardown(node, STATES[name])
    again = run_teardown(node, (Table.save(_t(first[0][4])), Table.save(_t(first[0][6]))))
    assert again[0] == first[0] and again[1] == set()
    assert all(op != "restore" for _, op in again[2])


def _t(chains):
    t = Table()
    t.chains = chains
    return t


def test_other_owners_rules_are_untouched(node):
    tables, _ = node
    state = STATES["500 + ours"]
    before = Table(state[0]).chains
    after, changed, calls = run_teardown(node, state)
    assert changed == {4}
    removed = {c: [r for r in before[c] if r not in after[4].get(c, [])] for c in before}
    assert {c: r for c, r in removed.items() if r} == {
        DN: ours()[1:4], "CNI-HOSTPORT-DNAT": [ours()[4]]}
    assert set(before) - set(after[4]) == {DN}


def test_execs_of_a_del_at_500_mappings(node):
    # listing + one deleting batch in IPv4; IPv6 is listed too (IPv4's
    # entry chain was big) and, having no entry chain, read whole
    assert run_teardown(node, STATES["500 + ours"])[2] == \
        [(4, "-S"), (4, "restore"), (6, "-S"), (6, "save")]
    assert run_teardown(node, STATES["500 + ours, both families"])[2] == \
        [(4, "-S"), (4, "restore"), (6, "-S"), (6, "restore")]


def test_execs_of_a_del_on_a_small_table(node):
    # as many as before the listing: IPv6 is read whole at once
    assert run_teardown(node, STATES["one, ours"])[2] == [(4, "-S"), (4, "restore"), (6, "save")]
    assert run_teardown(node, STATES["empty"])[2] == [(4, "-S"), (4, "save"), (6, "save")]


def test_execs_of_a_del_with_nothing_to_remove(node):
    # a repeated DEL, or a pod without port mappings, on a node with 500:
    # the listing and an existence check of both chains, no iptables-save
    assert run_teardown(node, STATES["500, not ours (repeated DEL)"])[2] == \
        [(4, "-S"), (4, "-S1"), (4, "-S1"), (6, "-S"), (6, "save")]
    # the chain is there without an entry rule: the whole table decides
    assert run_teardown(node, STATES["orphan chain, no entry rule"])[2] == \
        [(4, "-S"), (4, "-S1"), (4, "save"), (4, "restore"), (6, "-S"), (6, "save")]
    calls = run_teardown(node, STATES["legacy SNAT chain only"])[2]
    assert calls[:4] == [(4, "-S"), (4, "-S1"), (4, "-S1"), (4, "save")]


def test_a_failing_batch_falls_back_to_the_whole_table(node):
    after, changed, calls = run_teardown(node, STATES["another owner jumps to our chain"])
    assert calls[:4] == [(4, "-S"), (4, "restore"), (4, "save"), (4, "restore")]
    assert changed == {4} and DN not in after[4]
    assert not any(DN in r for r in after[4]["PREROUTING"])


def test_listed_batch_is_none_without_an_entry_rule():
    listed = iptsave.parse_saved("-N CNI-HOSTPORT-DNAT\n" + ours(cid="other")[-1] + "\n")
    assert ri.del_listed_script(NET, CID, listed) is None
    listed = iptsave.parse_saved("-N CNI-HOSTPORT-DNAT\n" + ours()[-1] + "\n")
    assert ri.del_listed_script(NET, CID, listed).split("\n") == [
        "*nat", "-D" + ours()[-1][2:], f"-F {DN}", f"-X {DN}", f":{SN} - [0:0]", f"-X {SN}",
        "COMMIT", ""]


def test_listed_batch_keeps_the_line_checks():
    # an echoed line iptables-restore would split is refused, as in del_script
    long_line = f"-A CNI-HOSTPORT-DNAT {'-m comment --comment x ' * 500}-j {DN}"
    from pycni.errors import CNIError
    with pytest.raises(CNIError):
        ri.del_listed_script(NET, CID, iptsave.parse_saved(long_line + "\n"))


def test_fresh_add_script_asserts_shared_rules_and_creates_the_chain():
    """portmap ADD's one-batch form (backend.IptablesBackend.apply): `-C`
    for every shared rule, `-N` for the container's chain, then what
    add_script adds in that state; refused by iptables-restore (and then
    computed from the whole table) unless that is the state."""
    from pycni.plugins.portmap import rules_iptables as ri
    from pycni.plugins.portmap.config import ContainerIP, parse_config
    conf = parse_config({"cniVersion": "1.0.0", "name": "pm", "type": "portmap",
                         "runtimeConfig": {"portMappings": [
                             {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                         "prevResult": {"cniVersion": "1.0.0",
                                        "ips": [{"address": "10.5.0.2/24"}]}})
    cip = ContainerIP("10.5.0.2/24")
    p = ri.plan(conf, "pm", "c1", cip)
    lines = ri.fresh_add_script(p).splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    checks = [l for l in lines if l.startswith("-C ")]
    assert len(checks) == len(p.shared) and any("-j CNI-HOSTPORT-DNAT" in l for l in checks)
    assert lines[len(checks) + 1] == f"-N {p.chain}"
    # in the state it asserts, it adds exactly what add_script would add
    shared_chains = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}
    saved = ri.parse_saved("*nat\n" + "".join(f":{c} - [0:0]\n" for c in sorted(shared_chains))
                           + "".join(f"-A {c} {ri.render(r)}\n" for c, r, _ in p.shared)
                           + "COMMIT\n")
    full = [l for l in ri.add_script(p, saved).splitlines() if l not in ("*nat", "COMMIT")]
    assert full[0] == f":{p.chain} - [0:0]"
    assert full[1:] == [l for l in lines if l.startswith("-A ")]


# --- DEL with the container's mappings known (no listing first) -------------------

KNOWN = [(4,), (6,), (4, 6)]


@pytest.mark.parametrize("families", KNOWN, ids=str)
@pytest.mark.parametrize("name", list(STATES))
def test_exact_del_leaves_what_the_whole_table_way_leaves(node, name, families, monkeypatch):
    exact = run_teardown(node, STATES[name], conf=conf_of(), families=families)
    full = run_teardown(node, STATES[name], whole_table_only=True, monkeypatch=monkeypatch)
    assert exact[:2] == full[:2]


@pytest.mark.parametrize("name", list(STATES))
def test_exact_del_twice_changes_nothing_more(node, name):
    first = run_teardown(node, STATES[name], conf=conf_of(), families=(4, 6))
    again = run_teardown(node, (Table.save(_t(first[0][4])), Table.save(_t(first[0][6]))),
                         conf=conf_of(), families=(4, 6))
    assert again[0] == first[0] and again[1] == set()


def test_exact_del_is_one_batch_without_a_listing(node):
    # IPv4 only in prevResult: one deleting batch, and IPv6 read whole
    # (nothing of ours can be there unless prevResult lied)
    for name in ("500 + ours", "one, ours"):
        assert run_teardown(node, STATES[name], conf=conf_of(), families=(4,))[2] == \
            [(4, "restore"), (6, "save")]
    assert run_teardown(node, STATES["500 + ours, both families"], conf=conf_of(),
                        families=(4, 6))[2] == [(4, "restore"), (6, "restore")]


def test_exact_del_deletes_only_the_container_rules(node):
    before = Table(STATES["500 + ours"][0]).chains
    after, changed, _ = run_teardown(node, STATES["500 + ours"], conf=conf_of(), families=(4,))
    assert changed == {4}
    removed = {c: [r for r in before[c] if r not in after[4].get(c, [])] for c in before}
    assert {c: r for c, r in removed.items() if r} == {
        DN: ours()[1:4], "CNI-HOSTPORT-DNAT": [ours()[4]]}


@pytest.mark.parametrize("name, conf", [
    ("another owner jumps to our chain", conf_of()),
    ("two entry rules", conf_of()),             # a mapping the config does not name
    ("500 + ours", conf_of(port=29998)),        # other mappings than ADD's
    ("legacy SNAT chain, referenced", conf_of()),
    ("500, not ours (repeated DEL)", conf_of()),
])
def test_a_refused_exact_batch_falls_back_to_the_listing(node, name, conf, monkeypatch):
    got = run_teardown(node, STATES[name], conf=conf, families=(4,))
    assert got[2][:2] == [(4, "restore"), (4, "-S")]
    full = run_teardown(node, STATES[name], whole_table_only=True, monkeypatch=monkeypatch)
    assert got[:2] == full[:2]


@pytest.mark.parametrize("conf", [
    conf_of(conditionsV4=["-s 10.0.0.0/8\n-A INPUT -j DROP"]),   # ADD refuses these
    conf_of(backend="nftables"),
])
def test_no_exact_batch_without_a_valid_iptables_config(conf):
    assert not backend.IptablesBackend.nameable(conf)
    assert not backend.IptablesBackend.nameable(None)
    assert not backend.IptablesBackend.nameable(conf_of(port=70000))   # dropped on DEL
    assert backend.IptablesBackend.nameable(conf_of())


def test_no_exact_batch_for_a_line_too_long():
    conf = conf_of(conditionsV4=["-s", "10.0.0.0/8"] * 1000)
    assert backend.IptablesBackend.exact_script(NET, CID, conf, 4) is None


def test_exact_batch_names_the_rules_add_wrote():
    script = ri.exact_del_script(NET, CID, ri.entry_rules(conf_of(), NET, CID, 4))
    assert script.split("\n") == [
        "*nat", "-D" + ours()[-1][2:], f"-F {DN}", f"-X {DN}", f":{SN} - [0:0]", f"-X {SN}",
        "COMMIT", ""]


def test_entry_rules_are_the_plans():
    from pycni.plugins.portmap.config import ContainerIP
    conf = conf_of(conditionsV4=["-s", "10.0.0.0/8"])
    for ip in ("10.127.2.4/16", "fd00::4/64"):
        cip = ContainerIP(ip)
        assert ri.plan(conf, NET, CID, cip).entries == ri.entry_rules(conf, NET, CID, cip.family)


# --- CHECK: one batch of -C lines, the whole table only when it is refused --------

def _check(node, state, conf):
    from pycni.plugins.portmap.config import ContainerIP
    tables, calls = node
    tables[4] = Table(state)
    calls.clear()
    problems = backend.IptablesBackend().check(conf, NET, CID, ContainerIP("10.127.2.4/16"))
    return problems, list(calls)


@pytest.mark.parametrize("name", ["500 + ours", "one, ours", "500, not ours (repeated DEL)",
                                  "orphan chain, no entry rule", "two entry rules", "empty"])
def test_check_batch_gives_the_whole_table_verdict(node, name):
    from pycni.plugins.portmap.config import ContainerIP
    conf = conf_of()
    state = STATES[name][0]
    problems, calls = _check(node, state, conf)
    expected = ri.check(ri.plan(conf, NET, CID, ContainerIP("10.127.2.4/16")),
                        iptsave.parse_saved(state))
    assert problems == expected
    assert calls == ([(4, "restore")] if not expected else [(4, "restore"), (4, "save")])


def test_check_batch_changes_nothing(node):
    state = STATES["500 + ours"][0]
    before = Table(state).chains
    _check(node, state, conf_of())
    assert node[0][4].chains == before


def test_check_batch_asserts_every_rule():
    from pycni.plugins.portmap.config import ContainerIP
    p = ri.plan(conf_of(), NET, CID, ContainerIP("10.127.2.4/16"))
    lines = ri.check_script(p).split("\n")
    assert lines == ["*nat", *[f"-C {DN} {ri.render(r)}" for r in p.rules],
                     f"-C CNI-HOSTPORT-DNAT {ri.render(p.entries[0])}", "COMMIT", ""]
