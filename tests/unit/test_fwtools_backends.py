"""The firewall mechanisms, once (issue #17): one iptables-table base for
the portmap and firewall backends, one nft runner (fwtools.nft_list /
nft_apply, refusals as ToolError so fwtools.retrying recomputes them),
one ipMasq backend protocol and one default backend. Nothing here runs a
tool: the execs are replaced."""

import inspect
import json
import re

import pytest
from hypothesis import given, strategies as st

from pycni import fwtools, ipmasq, iptsave
from pycni.errors import CNIError
from pycni.fwtools import ToolError
from pycni.ipmasq import iptables, nftables
from pycni.plugins.bridge import spoofcheck
from pycni.plugins.firewall import backend as fw_backend
from pycni.plugins.portmap import backend as pm_backend


# ------------------------------------------------------------ one base class

def test_portmap_and_firewall_iptables_backends_share_one_base():
    for cls, table in ((pm_backend.IptablesBackend, "nat"), (fw_backend.IptablesBackend, "filter")):
        assert issubclass(cls, fwtools.IptablesTable)
        assert cls.table == table
        for name in ("usable", "restore", "saved", "restore_if_accepted"):
            assert name not in vars(cls), (cls, name)


def test_saved_reads_the_backends_table(monkeypatch):
    asked = []

    def save(family, table):
        asked.append((family, table))
        return "*nat\n:CNI-X - [0:0]\n-A CNI-X -j ACCEPT\nCOMMIT\n"
    monkeypatch.setattr(fwtools, "iptables_save", save)
    saved = pm_backend.IptablesBackend().saved(6)
    assert isinstance(saved, iptsave.Saved) and "CNI-X" in saved.chains
    fw_backend.IptablesBackend().saved(4)
    assert asked == [(6, "nat"), (4, "filter")]


def test_restore_if_accepted_uses_the_given_restore():
    seen = []

    def refuse(family, script):
        seen.append((family, script))
        raise ToolError("iptables-restore", 1, "refused")
    assert fwtools.restore_if_accepted(4, "x", refuse) is False
    assert fwtools.restore_if_accepted(6, "y", lambda f, s: seen.append((f, s))) is True
    assert seen == [(4, "x"), (6, "y")]

    class Fake(fwtools.IptablesTable):
        restore = staticmethod(refuse)
    assert Fake().restore_if_accepted(4, "z") is False


def test_restore_if_accepted_lets_other_errors_through():
    def missing(family, script):
        raise CNIError(999, "iptables-restore not found")
    with pytest.raises(CNIError, match="not found"):
        fwtools.restore_if_accepted(4, "x", missing)


# ------------------------------------------------------------ one nft runner

@pytest.fixture
def nft(monkeypatch):
    """run_nft replaced: records (args, stdin), answers from `replies`."""
    calls, replies = [], []

    def run_nft(args, stdin="", what="run nft"):
        calls.append((args, stdin, what))
        return replies.pop(0) if replies else (0, "", "")
    monkeypatch.setattr(fwtools, "run_nft", run_nft)
    return calls, replies


def test_nft_list_decodes_the_table_or_none_when_missing(nft):
    calls, replies = nft
    replies += [(0, '{"nftables": [{"table": {"name": "t"}}]}', ""),
                (1, "", "Error: No such file or directory"),
                (1, "", "Error: Operation not permitted")]
    assert fwtools.nft_list("inet", "t") == {"nftables": [{"table": {"name": "t"}}]}
    assert fwtools.nft_list("inet", "t", "x") is None
    with pytest.raises(ToolError) as err:
        fwtools.nft_list("inet", "t")
    assert err.value.details == "Error: Operation not permitted"
    assert [c[0] for c in calls] == [["-j", "list", "table", "inet", "t"]] * 3
    assert [c[2] for c in calls] == ["", "x", ""]


def test_nft_apply_json_or_script(nft):
    calls, replies = nft
    fwtools.nft_apply({"nftables": [{"add": {"table": {"family": "inet", "name": "t"}}}]})
    fwtools.nft_apply("add table inet t\n", "setup spoof-check")
    assert calls[0][0] == ["-j", "-f", "-"]
    assert json.loads(calls[0][1]) == {"nftables": [{"add": {"table": {"family": "inet",
                                                                      "name": "t"}}}]}
    assert calls[1] == (["-f", "-"], "add table inet t\n", "setup spoof-check")
    replies.append((1, "", "Error: Could not process rule"))
    with pytest.raises(ToolError):
        fwtools.nft_apply("x")


def test_nft_not_installed_names_the_step(monkeypatch):
    monkeypatch.setattr(fwtools, "find_tool", lambda name: None)
    with pytest.raises(CNIError) as err:
        fwtools.nft_list("inet", "t")
    assert err.value.msg == "nft not found"
    with pytest.raises(CNIError) as err:
        spoofcheck.setup("veth0", "02:00:00:00:00:01", "c-eth0")
    assert err.value.msg == "failed to setup spoof-check: nft not found"


def _no_lock(monkeypatch):
    """retrying without the real per-namespace lock file."""
    class NoMutex:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    monkeypatch.setattr(fwtools, "NetnsMutex", NoMutex)
    monkeypatch.setattr("time.sleep", lambda s: None)


def test_spoofcheck_and_ipmasq_nft_retry_a_refused_transaction(nft, monkeypatch):
    _no_lock(monkeypatch)
    calls, replies = nft
    replies += [(1, "", "Error: busy"), (0, "", "")]
    spoofcheck.setup("veth0", "02:00:00:00:00:01", "c-eth0")
    assert [c[0] for c in calls] == [["-j", "-f", "-"]] * 2

    calls.clear()
    replies += [(1, "", "No such file or directory"), (1, "", "Error: busy"),
                (1, "", "No such file or directory"), (0, "", "")]
    nftables.setup(["10.1.2.3/24"], "n", "eth0", "c")
    assert [c[0][:2] for c in calls] == [["-j", "list"], ["-j", "-f"]] * 2


def test_refusals_keep_their_messages(nft, monkeypatch):
    _no_lock(monkeypatch)
    calls, replies = nft
    replies += [(1, "", "Error: nope")] * fwtools.ATTEMPTS
    with pytest.raises(CNIError) as err:
        spoofcheck.setup("veth0", "02:00:00:00:00:01", "c-eth0")
    assert (err.value.msg, err.value.details) == ("failed to setup spoof-check", "Error: nope")
    replies += [(1, "", "No such file"), (1, "", "Error: nope")] * fwtools.ATTEMPTS
    with pytest.raises(CNIError) as err:
        nftables.setup(["10.1.2.3/24"], "n", "eth0", "c")
    assert (err.value.msg, err.value.details) == \
        ("nft failed to apply the masquerading rules", "Error: nope")


def test_every_nft_caller_goes_through_the_runner():
    for module in (pm_backend, fw_backend, nftables, spoofcheck):
        text = inspect.getsource(module)
        assert "run_tool([\"nft\"" not in text and "run_nft(" not in text, module.__name__


# ------------------------------------------------------------ ipmasq: one protocol, one default

def test_ipmasq_backends_have_the_same_protocol():
    want = {"available": [], "setup": ["ips", "network", "ifname", "container_id"],
            "teardown": ["ips", "network", "ifname", "container_id"],
            "gc": ["network", "valid"]}
    for module in (iptables, nftables):
        for name, params in want.items():
            sig = inspect.signature(getattr(module, name))
            required = [p.name for p in sig.parameters.values() if p.default is p.empty]
            assert required == params, (module.__name__, name)


def test_ipmasq_gc_hands_every_backend_the_same_pairs(monkeypatch):
    got = []
    for module in (iptables, nftables):
        monkeypatch.setattr(module, "available", lambda *a: True)
        monkeypatch.setattr(module, "gc", lambda net, valid, m=module: got.append((m, net, valid)))
    ipmasq.gc("n", [("c1", "eth0")])
    assert got == [(iptables, "n", [("c1", "eth0")]), (nftables, "n", [("c1", "eth0")])]


def test_iptables_gc_keeps_the_ids_of_the_valid_pairs(monkeypatch):
    keep, stale = ipmasq.chain_name("n", "keep"), ipmasq.chain_name("n", "stale")
    saved = "*nat\n" + "".join(
        f":{c} - [0:0]\n-A {c} -d 10.0.0.0/24 -m comment --comment "
        f"\"name: \\\"n\\\" id: \\\"{cid}\\\"\" -j ACCEPT\n"
        for c, cid in ((keep, "keep"), (stale, "stale"))) + "COMMIT\n"
    restored = []
    _no_lock(monkeypatch)
    monkeypatch.setattr(iptables, "available", lambda family=4: family == 4)
    monkeypatch.setattr(iptables, "iptables_save", lambda family, table: saved)
    monkeypatch.setattr(iptables, "restore", lambda family, script: restored.append(script))
    iptables.gc("n", [("keep", "eth0")])
    assert len(restored) == 1 and f"-X {stale}" in restored[0] and keep not in restored[0]


@pytest.mark.parametrize("tools, expected", [
    ({"iptables-save", "iptables-restore", "nft"}, "iptables"),
    ({"nft"}, "nftables"),
    (set(), "iptables"),        # the reference's default when neither is installed
])
def test_one_default_backend(monkeypatch, tools, expected):
    monkeypatch.setattr(fwtools, "find_tool", lambda name: f"/usr/sbin/{name}" if name in tools
                        else None)
    assert ipmasq.default_backend() == fwtools.default_backend() == expected
    assert pm_backend.detect() == expected


# ------------------------------------------------------------ ipmasq iptables reads through iptsave

REF_PATTERN = re.compile(r'name: "(.*)" id: "(.*)"\Z')


@given(st.text(alphabet='na:me" id\\x', max_size=30))
def test_parse_comment_reads_as_the_reference_pattern(text):
    m = REF_PATTERN.match(text)
    assert iptables.parse_comment(text) == (m.groups() if m else None)


@pytest.mark.parametrize("text", ['name: "a" id: "b"', 'name: "a" id: "b" id: "c"',
                                  'name: "" id: ""', 'name: "x" id: "', 'name: "', '',
                                  'name: "a" id: "b"x', 'xname: "a" id: "b"'])
def test_parse_comment_cases(text):
    m = REF_PATTERN.match(text)
    assert iptables.parse_comment(text) == (m.groups() if m else None)


def test_text_and_parsed_saved_give_the_same_scripts():
    chain = ipmasq.chain_name("mynet", "c1")
    note = '-m comment --comment "name: \\"mynet\\" id: \\"c1\\""'
    text = (f"*nat\n:POSTROUTING ACCEPT [0:0]\n:{chain} - [0:0]\n"
            f"-A POSTROUTING -s 10.1.0.5/32 {note} -j {chain}\n"
            f"-A POSTROUTING -s 10.1.0.6/32 {note} -g {chain}\n"
            f"-A {chain} -d 10.1.0.0/24 {note} -j ACCEPT\nCOMMIT\n")
    parsed = iptsave.parse_saved(text)
    assert iptables.jumps_to(chain, text) == iptables.jumps_to(chain, parsed) == \
        [f"-A POSTROUTING -s 10.1.0.5/32 {note} -j {chain}"]     # -j only, as before
    assert iptables.chain_exists(chain, parsed) and not iptables.chain_exists("CNI-no", parsed)
    assert iptables.teardown_script(chain, text) == iptables.teardown_script(chain, parsed)
    assert iptables.attachment_chains("mynet", parsed) == {chain: "c1"}
    assert iptables.gc_script("mynet", set(), text) == iptables.gc_script("mynet", set(), parsed)


def test_ipmasq_iptables_loads_no_re():
    assert "import re" not in inspect.getsource(iptables)


# ------------------------------------------------------------ one protocol for every firewall backend

@pytest.mark.parametrize("impl", [pm_backend.IptablesBackend, pm_backend.NftablesBackend,
                                  fw_backend.IptablesBackend, fw_backend.NftablesBackend,
                                  fw_backend.FirewalldBackend, iptables, nftables])
def test_every_backend_offers_the_protocol(impl):
    for name in ("setup", "teardown", "gc"):
        assert callable(getattr(impl, name)), (impl, name)
    params = list(inspect.signature(getattr(impl, "gc")).parameters)
    assert params[-2:] == ["network", "valid"]


def test_portmap_backends_have_setup_only():
    for cls in (pm_backend.IptablesBackend, pm_backend.NftablesBackend):
        assert not hasattr(cls, "apply")


def test_portmap_gc_takes_pairs():
    assert pm_backend.attachment_ids([("c1", "eth0"), ("c2", "net1"), ("c1", "net2")]) == \
        {"c1", "c2"}
    assert pm_backend.attachment_ids([]) == set()
