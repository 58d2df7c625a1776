"""Issue #11 finding 2 (and the portMappings dedupe of finding 11): every
config-, CNI_*- or prevResult-derived string that reaches an
iptables-restore or nft script is exactly one token of one rule.

`restore_lines` reads a script as iptables-restore does: lines split as
fgets splits them, each tokenized by `fwquote.ipt_tokens`, pycni's port of
iptables' own tokenizer (xshared.c add_param_to_argv), which
test_ipt_tokens_reads_as_iptables_restore_does pins to what that C code
does. So these tests check what iptables-restore would really read from
our scripts.
"""

import json

import pytest

from pycni import fwquote, iptsave
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.ipmasq import iptables as masq_ipt
from pycni.ipmasq import nftables as masq_nft
from pycni.plugins.bandwidth.config import ifb_name
from pycni.plugins.bridge import config as bridge_config
from pycni.plugins.bridge import spoofcheck
from pycni.plugins.firewall import config as fw_config
from pycni.plugins.firewall import rules_iptables as fw_ipt
from pycni.plugins.firewall import rules_nftables as fw_nft
from pycni.plugins.portmap import config as pm
from pycni.plugins.portmap import rules_iptables as pm_ipt
from pycni.plugins.portmap import rules_nftables as pm_nft
from pycni.result import parse_result


def restore_lines(script: str) -> list[list[str]]:
    """What iptables-restore reads: lines (fgets keeps the newline), each
    tokenized as add_param_to_argv does."""
    out = []
    for raw in script.splitlines(keepends=True):
        out.append(fwquote.ipt_tokens(raw.split("\0")[0]))
    return out


NASTY = ["plain", "two words", 'a"b', "back\\slash", 'end\\', '\\"',
         "dnat name: \"n\" id: \"c\"", "#hash", "*filter", "COMMIT", "-A", "ünïcode", "",
         "[0:0]", ":CHAIN", "'single'"]


def code7(fn, *args, **kw) -> CNIError:
    with pytest.raises(CNIError) as info:
        fn(*args, **kw)
    assert info.value.code == INVALID_NETWORK_CONFIG, info.value.msg
    return info.value


# --- the quoting itself -------------------------------------------------------------

# add_param_to_argv, read by hand: blanks separate outside quotes; `"` opens
# a quoted part and the closing `"` ends the token (even an empty one);
# inside quotes a backslash takes the next character; outside quotes a
# backslash and a `'` are plain characters.
IPT_TOKENS = [
    ("-A X -j Y\n", ["-A", "X", "-j", "Y"]),
    ("  a \t b  \n", ["a", "b"]),
    ('"two words"', ["two words"]),
    ('""', [""]),
    ('a"b c"d', ["ab c", "d"]),
    ('"a""b"', ["a", "b"]),
    ('x"" y', ["x", "y"]),
    ('"a\\"b"', ['a"b']),
    ('"back\\\\slash"', ["back\\slash"]),
    ("\"it\\'s\"", ["it's"]),
    ("a\\b", ["a\\b"]),
    ("'single quoted'", ["'single", "quoted'"]),
    ('"open x', ["open x"]),
]


@pytest.mark.parametrize("line, tokens", IPT_TOKENS)
def test_ipt_tokens_reads_as_iptables_restore_does(line, tokens):
    assert fwquote.ipt_tokens(line) == tokens


@pytest.mark.parametrize("arg", NASTY)
def test_ipt_token_is_read_back_as_exactly_that_argument(arg):
    line = "-A X " + fwquote.ipt_line(["-m", "comment", "--comment", arg, "-j", "Y"]) + "\n"
    assert restore_lines(line) == [["-A", "X", "-m", "comment", "--comment", arg, "-j", "Y"]]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\tb", "a\0b", "\x1b[31m", "x\x7f", "\x85", "\n"])
def test_ipt_token_refuses_control_characters(bad):
    code7(fwquote.ipt_token, bad)
    code7(iptsave.render, ["-s", bad])


def test_ipt_token_refuses_what_iptables_cannot_hold():
    code7(fwquote.ipt_token, "x" * 1024)
    assert fwquote.ipt_token("x" * 1023) == "x" * 1023


def test_ipt_chain():
    assert fwquote.ipt_chain("KUBE-MARK-MASQ") == "KUBE-MARK-MASQ"
    for bad in ["", "x" * 29, "a b", "a\nb", "-A", "!x", 'a"b', "a\\b", "a\0"]:
        code7(fwquote.ipt_chain, bad)


GOOD_IPT = [["-s", "1.2.3.4"], ["!", "-s", "12::34"], ["-s10.0.0.0/8"], ["--src", "1.2.3.4"],
            ["-m", "comment", "--comment", "hi there"], ["-i", "eth0"], ["-p", "tcp"],
            ["-m", "conntrack", "--ctstate", "NEW,RELATED"], ["--match=set", "--match-set",
                                                              "x", "src"],
            ["-m", "policy", "--dir", "in", "--pol", "ipsec"], ["-f"], ["-nd", "1.2.3.4"]]


@pytest.mark.parametrize("conds", GOOD_IPT)
def test_ipt_conditions_accept_match_arguments(conds):
    assert fwquote.ipt_conditions(conds) == conds


BAD_IPT = [["-I", "INPUT", "1", "-j", "ACCEPT"], ["-A", "INPUT"], ["-D", "X"], ["-F"], ["-X"],
           ["-t", "filter"], ["-N", "X"], ["-P", "INPUT", "DROP"], ["-E", "a", "b"], ["-Z"],
           ["-L"], ["-S"], ["-R", "X", "1"], ["-C", "X"], ["-j", "ACCEPT"], ["-g", "X"],
           ["-M", "/tmp/evil"], ["--modprobe=/tmp/evil"], ["--modp", "/tmp/evil"], ["-h"],
           ["--help"], ["-V"], ["-4"], ["-6"], ["-w"], ["--wait", "5"], ["-c", "1", "2"],
           ["--table", "filter"], ["--jump", "ACCEPT"], ["--goto", "X"], ["--insert", "INPUT"],
           ["--append", "X"], ["--flush"], ["--delete-chain"], ["-nA", "X"], ["-vF"], ["--"],
           [""], ["-m", "../../tmp/x"], ["-m../x"], ["--match=a/b"],
           ["-s", "1.2.3.4\n-I INPUT 1 -j ACCEPT"], ["-s", "1.2.3.4\0"],
           ["-m", "comment", "--comment", "x\nCOMMIT\n*filter\n-I INPUT 1 -j ACCEPT\nCOMMIT"]]


@pytest.mark.parametrize("conds", BAD_IPT)
def test_ipt_conditions_refuse_commands_tables_jumps_and_tool_options(conds):
    code7(fwquote.ipt_conditions, conds)


GOOD_NFT = [["ip saddr 1.2.3.4"], ["ip", "saddr", "{ 1.1.1.1, 2.2.2.2 }"], ['iifname "eth0"'],
            ['iifname { "a b", "c" }'], ["ip6 saddr != ::5"], ["ip saddr", "{", "1.1.1.1", "}"],
            ["tcp dport 80-90", "ct state established,related"], ["meta mark & 0x1 == 0x1"],
            ['iifname "weird;#{ name"'], ["fib saddr type local"], ["limit rate 10/second"]]


@pytest.mark.parametrize("conds", GOOD_NFT)
def test_nft_conditions_accept_match_expressions(conds):
    assert fwquote.nft_conditions(conds) == " ".join(conds)


BAD_NFT = [["ip saddr 1.2.3.4\nadd table ip evil"], ["ip saddr 1.2.3.4 ; flush ruleset"],
           ["ip saddr 1.2.3.4 }"], ["{ ip saddr 1.2.3.4"], ["ip saddr 1.2.3.4 #"],
           ["accept"], ["ip saddr 1.1.1.1 drop"], ["jump", "x"], ["goto x"], ["return"],
           ["ip saddr vmap { 1.1.1.1 : accept }"], ["meta mark set 1"], ["ct mark set 1"],
           ["add @s { ip saddr }"], ["dnat to 1.2.3.4"], ["masquerade"], ['iifname "eth0'],
           ["$var"], ["ip saddr 1.2.3.4\0"], ["ip saddr 1.1.1.1:accept"], ["counter log"],
           ["ACCEPT"], ["iifname 'x'"], ["include \"/etc/x\""], ["ip saddr \\"]]


@pytest.mark.parametrize("conds", BAD_NFT)
def test_nft_conditions_refuse_commands_verdicts_and_statements(conds):
    code7(fwquote.nft_conditions, conds)


def test_nft_string_comment_word_identifier():
    assert fwquote.nft_string("br0") == '"br0"'
    for bad in ['a"b', "a\nb", "a\0"]:
        code7(fwquote.nft_string, bad)
    assert fwquote.nft_comment('a"b\nc;d') == '"abc;d"'
    assert fwquote.nft_comment("é" * 100) == '"' + "é" * 64 + '"'     # 128 bytes
    assert fwquote.nft_word("fd00::5") == "fd00::5"
    for bad in ["1.2.3.4 accept", "1.2.3.4;", "", "fe80::1%eth0", "a\n"]:
        code7(fwquote.nft_word, bad)
    assert fwquote.nft_identifier("cni_hostport") == "cni_hostport"
    for bad in ["", "1x", "a b", "a;b", 'a"']:
        code7(fwquote.nft_identifier, bad)


# --- portmap --------------------------------------------------------------------------

MAPS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": "10.1.2.3/24", "interface": 0}]}


def pm_raw(backend="iptables", maps=MAPS, **keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "net", "type": "portmap", "backend": backend,
            "runtimeConfig": {"portMappings": maps}, **keys}


def pm_scripts(conf, family=4) -> str:
    cip = pm.ContainerIP("10.1.2.3/24" if family == 4 else "fd00::3/64")
    if conf.backend == "iptables":
        return pm_ipt.add_script(pm_ipt.plan(conf, "net", "cid", cip), pm_ipt.Saved())
    return pm_nft.add_script(conf, "net", "cid", cip)


@pytest.mark.parametrize("conds", BAD_IPT)
def test_portmap_iptables_conditions_refused_by_parse_config(conds):
    for key in ("conditionsV4", "conditionsV6"):
        code7(pm.parse_config, pm_raw(**{key: conds}))


def test_portmap_injected_iptables_condition_never_reaches_a_script():
    inject = ["-m", "comment", "--comment", "x\nCOMMIT\n*filter\n-I INPUT 1 -j ACCEPT\nCOMMIT"]
    code7(pm.parse_config, pm_raw(conditionsV4=inject))
    # and the renderer refuses it on its own (defence in depth)
    conf = pm.parse_config(pm_raw())
    conf.conditions_v4 = inject
    code7(pm_scripts, conf)


@pytest.mark.parametrize("conds", GOOD_IPT)
def test_portmap_iptables_conditions_are_extra_arguments_of_the_entry_rule(conds):
    conf = pm.parse_config(pm_raw(conditionsV4=conds))
    lines = restore_lines(pm_scripts(conf))
    entries = [t for t in lines if t[:2] == ["-A", pm_ipt.DNAT_CHAIN]]
    assert len(entries) == 1
    entry = entries[0]
    start = entry.index("--dports") + 2
    assert entry[start:start + len(conds)] == conds
    assert entry[start + len(conds):] == ["-j", pm_ipt.chain_name("net", "cid")]
    # nothing but our table, chains and rules
    assert lines[0] == ["*nat"] and lines[-1] == ["COMMIT"]
    assert all(t[0] in ("-N", "-A", "-I", "-D", ":" + pm_ipt.chain_name("net", "cid"))
               for t in lines[1:-1])


@pytest.mark.parametrize("conds", BAD_NFT)
def test_portmap_nft_conditions_refused_by_parse_config(conds):
    for key in ("conditionsV4", "conditionsV6"):
        raw = pm_raw("nftables", **{key: conds})
        with pytest.raises(CNIError) as info:
            pm.parse_config(raw)
        assert info.value.code == INVALID_NETWORK_CONFIG


@pytest.mark.parametrize("conds", GOOD_NFT)
def test_portmap_nft_conditions_stay_in_front_of_the_jump(conds):
    conf = pm.parse_config(pm_raw("nftables", conditionsV4=conds))
    script = pm_scripts(conf)
    text = " ".join(conds)
    assert f"add rule ip cni_hostport prerouting {text} fib daddr type local jump " \
           "hostports_all\n" in script
    assert all(line.split()[0] in ("add", "flush", "delete") for line in script.splitlines())


def test_portmap_external_set_mark_chain_is_one_chain_name():
    for bad in ["X\n-A INPUT -j ACCEPT", "a b", "-j", "x" * 29, "a\0"]:
        code7(pm.parse_config, pm_raw(externalSetMarkChain=bad))
    conf = pm.parse_config(pm_raw(externalSetMarkChain="KUBE-MARK-MASQ"))
    assert "-j KUBE-MARK-MASQ" in pm_scripts(conf)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("host_ip", ["fe80::1%x\n-I INPUT 1 -j ACCEPT",
                                     "fe80::1%x;flush ruleset", "1.2.3.4 ", "1.2.3.4\n"])
def test_portmap_host_ip_is_an_address(backend, host_ip):
    maps = [{"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": host_ip}]
    code7(pm.parse_config, pm_raw(backend, maps))


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_portmap_host_ip_that_is_no_address_never_reaches_a_script(backend):
    """Accepted as the reference accepts it (issue #13), skipped for IPv4,
    refused for IPv6 (where iptables/nft would resolve it as a name)."""
    maps = [{"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": "fe80::1%eth0"}]
    conf = pm.parse_config(pm_raw(backend, maps))
    script = pm_scripts(conf)
    assert "fe80" not in script and "dport 80" not in script
    with pytest.raises(CNIError) as info:
        pm_scripts(conf, family=6)
    assert info.value.code == 7


@pytest.mark.parametrize("proto", ["tcp\n", "tcp;", "tcp accept", "icmp"])
def test_portmap_protocol_is_one_of_three(proto):
    maps = [{"hostPort": 80, "containerPort": 80, "protocol": proto}]
    code7(pm.parse_config, pm_raw("nftables", maps))


@pytest.mark.parametrize("address", ["10.1.2.3 accept/24", "10.1.2.3/24\n", "fe80::1%x/64",
                                     "10.1.2.3;/24"])
def test_prev_result_addresses_are_addresses(address):
    prev = json.loads(json.dumps(PREV))
    prev["ips"][0]["address"] = address
    with pytest.raises((ValueError, TypeError, CNIError)):
        parse_result(prev, "1.0.0")


def test_portmap_nft_container_address_is_one_word():
    conf = pm.parse_config(pm_raw("nftables"))
    with pytest.raises(CNIError):
        pm_nft.add_script(conf, "net", "cid", pm.ContainerIP("10.1.2.3;flush ruleset/24"))


def test_portmap_comments_carry_names_as_data():
    # network names and container IDs are checked by skel (ID_RE); the
    # comment writers still cannot produce a second token or command
    conf = pm.parse_config(pm_raw("nftables"))
    script = pm_nft.add_script(conf, 'we"ird', "c;}\nid", pm.ContainerIP("10.1.2.3/24"))
    assert len(script.splitlines()) == 17
    conf = pm.parse_config(pm_raw())
    plan = pm_ipt.plan(conf, 'we"ird', "c d", pm.ContainerIP("10.1.2.3/24"))
    lines = restore_lines(pm_ipt.add_script(plan, pm_ipt.Saved()))
    entry = [t for t in lines if t[:2] == ["-A", pm_ipt.DNAT_CHAIN]][0]
    assert entry[entry.index("--comment") + 1] == 'dnat name: "we"ird" id: "c d"'


# --- dedupe -------------------------------------------------------------------------

DUPS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8081, "containerPort": 81, "protocol": "udp", "hostIP": "10.0.0.9"},
        {"HostPort": 8080, "ContainerPort": 80, "Protocol": "TCP"},
        {"hostPort": 8081, "containerPort": 81, "protocol": "udp", "hostIP": "10.0.0.9"},
        {"hostPort": 8080, "containerPort": 80, "protocol": "udp"},
        {"hostPort": 8082, "containerPort": 82, "protocol": "tcp", "hostIP": "::ffff:10.0.0.9"},
        {"hostPort": 8082, "containerPort": 82, "protocol": "tcp", "hostIP": "10.0.0.9"},
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "0.0.0.0"}]


def test_duplicated_port_mappings_are_kept_once_in_first_seen_order():
    conf = pm.parse_config(pm_raw(maps=DUPS))
    got = [(m.host_port, m.container_port, m.protocol, m.host_ip) for m in conf.mappings]
    assert got == [(8080, 80, "tcp", ""), (8081, 81, "udp", "10.0.0.9"),
                   (8080, 80, "udp", ""), (8082, 82, "tcp", "10.0.0.9"),
                   (8080, 80, "tcp", "0.0.0.0")]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_duplicated_port_mappings_give_no_duplicated_rules(backend):
    once = pm.parse_config(pm_raw(backend, DUPS[:2]))
    twice = pm.parse_config(pm_raw(backend, DUPS[:4]))
    assert pm_scripts(once) == pm_scripts(twice)
    lines = [line for line in pm_scripts(twice).splitlines() if "add rule" in line
             or line.startswith("-A")]
    assert len(lines) == len(set(lines))
    if backend == "nftables":
        assert pm_nft.expected_counts(twice, 4) == pm_nft.expected_counts(once, 4)


# --- firewall -------------------------------------------------------------------------

def fw_prev(bridge: str):
    return parse_result({"cniVersion": "1.0.0", "interfaces": [{"name": bridge}],
                         "ips": [{"address": "10.1.2.3/24"}]}, "1.0.0")


@pytest.mark.parametrize("bridge", ["br+", "cni*", "br\x01", "br\0x", "br\n", 'b"r', "b:r",
                                    "b r", "b\\r", "..", "x" * 16])
def test_firewall_bridge_from_prev_result_is_one_exact_interface(bridge):
    conf = fw_config.parse_config({"cniVersion": "1.0.0", "name": "n", "type": "firewall",
                                   "backend": "iptables", "ingressPolicy": "isolated"})
    code7(fw_config.bridge_name, conf, fw_prev(bridge))


def test_firewall_bridge_rules_name_the_bridge_as_data():
    conf = fw_config.parse_config({"cniVersion": "1.0.0", "name": "n", "type": "firewall",
                                   "ingressPolicy": "isolated", "backend": "nftables"})
    name = fw_config.bridge_name(conf, fw_prev("br-é.x;{"))
    ips = [fw_config.ContainerIP(4, "10.1.2.3")]
    script = fw_nft.add_script(ips, "n", "eth0", "cid", "isolated", name, fw_nft.Listing())
    assert 'add element inet cni_plugins_firewall isolating_bridges { "br-é.x;{" }' in script
    plan = fw_ipt.plan(4, ips, "CNI-ADMIN", "isolated", name)
    lines = restore_lines(fw_ipt.add_script(plan, fw_ipt.Saved()))
    drop = [t for t in lines if "DROP" in t and "-i" in t][0]
    at = drop.index("-i")
    assert drop[at:at + 4] == ["-i", "br-é.x;{", "-o", "br-é.x;{"]


@pytest.mark.parametrize("chain", ["A\nB", "A\0", "A\x1b", "a b", "-A", "x" * 29, "ACCEPT"])
def test_firewall_admin_chain_is_one_chain_name(chain):
    code7(fw_config.parse_config, {"cniVersion": "1.0.0", "name": "n", "type": "firewall",
                                   "iptablesAdminChainName": chain})


def test_firewall_nft_comment_of_a_strange_ifname_stays_a_comment():
    ips = [fw_config.ContainerIP(4, "10.1.2.3")]
    script = fw_nft.add_script(ips, "n", 'e"t;}#\x01', "cid", "open", "", fw_nft.Listing())
    rules = [line for line in script.splitlines() if "containers ip" in line]
    assert len(rules) == 2
    for line in rules:
        assert line.endswith('if: et;}#, id: cid"')
        assert line.count('"') == 2


# --- ipmasq, spoofcheck, bandwidth ------------------------------------------------------

def test_ipmasq_iptables_script_has_one_line_per_rule():
    rs = masq_ipt.plan(["10.1.2.3/24", "fd00::3/64"], 'n"et', "c id")
    script = masq_ipt.setup_script(rs[4], "")
    lines = restore_lines(script)
    assert [t[0] for t in lines] == ["*nat", ":" + rs[4].chain, "-A", "-A", "-A", "COMMIT"]
    assert lines[2][lines[2].index("--comment") + 1] == 'name: "n\\"et" id: "c id"'


def test_ipmasq_nft_and_spoofcheck_write_json_so_names_are_data():
    cmds = masq_nft.setup_commands(["10.1.2.3/24"], "n", 'e";}\n', "cid", None)
    assert json.loads(json.dumps(cmds)) == cmds
    assert sum(1 for c in cmds["nftables"] if "masq_checks" in json.dumps(c)) >= 1
    ref = spoofcheck.ref_id('c"}; flush ruleset', 'e";}\n')
    cmds = spoofcheck.setup_commands("veth1", "02:00:00:00:00:01", ref)
    names = {c["add"]["chain"]["name"] for c in cmds["nftables"]
             if "add" in c and "chain" in c["add"]}
    assert names == {"PREROUTING", *spoofcheck.chain_names(ref)}


def test_bandwidth_ifb_name_is_a_hash():
    name = ifb_name('n";\n', "c id")
    assert len(name) == 15 and name.startswith("bwp")
    assert all(c in "0123456789abcdef" for c in name[3:])


@pytest.mark.parametrize("name", ["br\x01", "br\x7f", "b\0r"])
def test_bridge_name_with_control_characters_is_refused(name):
    code7(bridge_config.validate_bridge_name, name)


# --- echoing saved lines back, names read from listings ---------------------------------

def test_saved_lines_split_where_iptables_restore_splits():
    chain = pm_ipt.chain_name("net", "cid")
    text = (f'-A CNI-HOSTPORT-DNAT -m comment --comment "a\rb\x1cc" -j {chain}\n'
            f":{chain} - [0:0]\n")
    saved = iptsave.parse_saved(text)
    assert len(saved.jumps_to(chain)) == 1
    script = pm_ipt.del_script("net", "cid", saved)
    assert script.count("\n") == 5          # *nat, -D, -F, -X, COMMIT
    assert masq_ipt.jumps_to(chain, "-A POSTROUTING -m comment --comment \"a\rb\" -j "
                                    f"{chain}\n") != []


def test_firewall_script_refuses_a_bad_admin_chain_even_past_the_config():
    ips = [fw_config.ContainerIP(4, "10.1.2.3")]
    plan = fw_ipt.plan(4, ips, "CNI-ADMIN\n-I INPUT 1 -j ACCEPT")
    code7(fw_ipt.add_script, plan, fw_ipt.Saved())


def test_nft_deletes_name_only_identifiers_and_handles():
    bad = pm_nft.ExistingRule(4, "hostports ; flush ruleset", 5, "x")
    code7(pm_nft.delete_script, [bad])
    assert pm_nft.delete_script([pm_nft.ExistingRule(4, "hostports", 5, "x")]) == \
        "delete rule ip cni_hostport hostports handle 5\n"
    with pytest.raises((ValueError, TypeError)):
        pm_nft.delete_script([pm_nft.ExistingRule(4, "hostports", "5 ; flush ruleset", "x")])
    fw_bad = fw_nft.Existing("containers\nflush ruleset", 3, "x", ())
    code7(fw_nft.delete_script, [fw_bad])


# --- iptables-restore's line buffer ---------------------------------------------------------

def split_attack(raw_base: dict, family_key: str = "conditionsV4") -> dict:
    """Conditions made only of allowed tokens whose entry rule is longer
    than iptables-restore's 10240-byte line buffer, placed so that the
    tail it reads as a line of its own is `-I PREROUTING 1 -j ACCEPT ...`."""
    raw = json.loads(json.dumps(raw_base))
    conds = []
    pad = ["-m", "comment", "--comment", "b" * 200]
    while len(fwquote.ipt_line(conds + pad)) < 10239 - 500:
        conds += pad
    conds += ["-m", "comment", "--comment", "a" * 300 + "-I PREROUTING 1 -j ACCEPT -m comment "
              "--comment "]
    raw[family_key] = conds
    return raw


def test_conditions_longer_than_the_line_buffer_allows_are_refused():
    raw = split_attack(pm_raw())
    assert len(fwquote.ipt_line(raw["conditionsV4"])) > fwquote.IPT_CONDITIONS_MAX
    code7(pm.parse_config, raw)
    # right at the limit they are fine, and the entry rule fits a line
    conds = []
    while len(fwquote.ipt_line(conds + ["-m", "comment", "--comment", "c" * 250])) <= \
            fwquote.IPT_CONDITIONS_MAX:
        conds += ["-m", "comment", "--comment", "c" * 250]
    conf = pm.parse_config(pm_raw(conditionsV4=conds))
    script = pm_scripts(conf)
    assert max(len(line) for line in script.split("\n")) <= fwquote.IPT_LINE_MAX


def test_ipt_script_refuses_lines_iptables_restore_would_split():
    assert fwquote.ipt_script(["*nat", "-A X -j Y", "COMMIT"]) == "*nat\n-A X -j Y\nCOMMIT\n"
    code7(fwquote.ipt_script, ["*nat", "-A X " + "x" * fwquote.IPT_LINE_MAX, "COMMIT"])
    code7(fwquote.ipt_script, ["*nat", "-A X -j Y\n-I INPUT 1 -j ACCEPT", "COMMIT"])
    code7(fwquote.ipt_script, ["*nat", "-A X -j Y\0", "COMMIT"])
    # a saved line echoed back by DEL is held to the same limit
    chain = pm_ipt.chain_name("net", "cid")
    long_line = f"-A CNI-HOSTPORT-DNAT {'-m comment --comment x ' * 500}-j {chain}"
    saved = iptsave.parse_saved(f"{long_line}\n:{chain} - [0:0]\n")
    code7(pm_ipt.del_script, "net", "cid", saved)


@pytest.mark.parametrize("arg", NASTY + ["it's", "a'b\"c\\d"])
def test_saved_lines_are_tokenized_as_iptables_restore_does(arg):
    line = "-A X " + fwquote.ipt_line(["-m", "comment", "--comment", arg, "-j", "Y"])
    assert iptsave.split(line) == ["-A", "X", "-m", "comment", "--comment", arg, "-j", "Y"]


def test_iptables_save_quoting_is_undone():
    # iptables-save (xtables_save_string) escapes ", \ and ' inside quotes
    line = '-A X -m comment --comment "it\\\'s \\"q\\" \\\\" -j Y'
    assert iptsave.split(line) == ["-A", "X", "-m", "comment", "--comment", 'it\'s "q" \\',
                                   "-j", "Y"]


def test_portmap_del_and_gc_parse_without_the_script_checks():
    raw = pm_raw(conditionsV4=["-s", "1.2.3.4\n-I INPUT 1 -j ACCEPT"])
    code7(pm.parse_config, raw)
    assert pm.parse_config(raw, scripts=False).mappings
