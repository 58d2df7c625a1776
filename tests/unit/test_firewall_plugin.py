"""firewall plugin paths that need no root: versions, errors, what reaches
the backend on each command, pass-through of prevResult, start-up cost."""

import io
import json
import os
import subprocess
import sys

import pytest

import pycni
from pycni import fwtools
from pycni import skel
from pycni.plugins.firewall import backend
from pycni.plugins.firewall.config import ContainerIP
from pycni.plugins.firewall.plugin import FirewallPlugin

PREV = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.1.0.5/24", "interface": 1},
                {"address": "fd01::5/64", "interface": 1}]}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/x", "CNI_NETNS_OVERRIDE": "1"}


class FakeBackend:
    def __init__(self, problems=()):
        self.calls = []
        self.problems = list(problems)

    def setup(self, ips, a):
        self.calls.append(("setup", ips, a))

    def teardown(self, ips, a):
        self.calls.append(("teardown", ips, a))

    def check(self, ips, a):
        self.calls.append(("check", ips, a))
        return self.problems

    def gc(self, network, valid):
        self.calls.append(("gc", network, valid))


@pytest.fixture
def fake(monkeypatch):
    fb = FakeBackend()
    monkeypatch.setattr(backend, "backend", lambda name: fb)
    return fb


def conf(version="1.0.0", prev=PREV, **keys):
    out = {"cniVersion": version, "name": "net", "type": "firewall", "backend": "iptables",
           **keys}
    if prev is not None:
        out["prevResult"] = {**prev, "cniVersion": version}
    return out


def run(config: dict, command="ADD", **env):
    out = io.StringIO()
    code = skel.run(FirewallPlugin(), {**ENV, "CNI_COMMAND": command, **env},
                    io.BytesIO(json.dumps(config).encode()), out)
    return code, (json.loads(out.getvalue()) if out.getvalue() else None)


@pytest.mark.parametrize("tools, expected", [
    ({"iptables-save", "iptables-restore", "nft"}, "iptables"),
    ({"nft"}, "nftables"),
    (set(), "iptables"),
])
def test_backend_detection(monkeypatch, tools, expected):
    monkeypatch.setattr(fwtools, "find_tool",
                        lambda name: f"/sbin/{name}" if name in tools else None)
    assert backend.detect() == expected


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
def test_versions_before_040_are_refused(fake, version):
    code, out = run(conf(version, prev=None))
    assert code == 1 and out["code"] == 1 and fake.calls == []


def test_version_lists_040_and_later():
    out = io.StringIO()
    skel.run(FirewallPlugin(), {"CNI_COMMAND": "VERSION"}, io.BytesIO(b""), out)
    assert json.loads(out.getvalue())["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_passes_prev_result_through(fake, version):
    prev = json.loads(json.dumps(PREV))
    if version == "0.4.0":
        for ip in prev["ips"]:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    code, out = run(conf(version, prev))
    assert code == 0
    assert out["ips"] == prev["ips"] and out["interfaces"] == prev["interfaces"]
    assert out["cniVersion"] == version
    (op, ips, a), = fake.calls
    assert op == "setup" and ips == [ContainerIP(4, "10.1.0.5"), ContainerIP(6, "fd01::5")]
    assert (a.network, a.container_id, a.ifname, a.admin_chain, a.policy, a.bridge) == \
        ("net", "c1", "eth0", "CNI-ADMIN", "open", "")


def test_add_with_isolation_names_the_bridge(fake):
    code, _ = run(conf(ingressPolicy="isolated", iptablesAdminChainName="ADM"))
    assert code == 0
    a = fake.calls[0][2]
    assert (a.policy, a.bridge, a.admin_chain) == ("isolated", "cni0", "ADM")


def test_add_without_prev_result_is_an_error(fake):
    code, out = run(conf(prev=None))
    assert code == 1 and out["code"] == 7
    assert out["msg"] == "missing prevResult from earlier plugin"
    assert fake.calls == []


def test_add_isolation_without_interfaces_changes_nothing(fake):
    code, out = run(conf(prev={"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24"}]},
                         ingressPolicy="same-bridge"))
    assert code == 1 and "make sure to chain" in out["msg"] and fake.calls == []


def test_add_with_no_addresses_needs_no_bridge(fake):
    code, _ = run(conf(prev={"cniVersion": "1.0.0"}, ingressPolicy="isolated"))
    assert code == 0 and fake.calls[0][1] == []


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_a_bad_firewalld_zone_is_refused_before_anything_happens(fake, command):
    code, out = run(conf(backend="firewalld", firewalldZone="a b"), command)
    assert code == 1 and out["code"] == 7 and "firewalldZone" in out["msg"]
    assert fake.calls == []


def test_bad_policy_is_refused_before_anything_happens(fake):
    code, out = run(conf(ingressPolicy="closed"))
    assert code == 1 and out["code"] == 7 and out["msg"] == 'unknown ingress policy: "closed"'
    assert fake.calls == []


def test_del_with_prev_result(fake):
    code, out = run(conf(), "DEL")
    assert code == 0 and out is None
    assert fake.calls[0][0] == "teardown" and len(fake.calls[0][1]) == 2


def test_del_without_prev_result_and_netns(fake):
    code, out = run(conf(prev=None), "DEL", CNI_NETNS="")
    assert code == 0 and out is None
    op, ips, a = fake.calls[0]
    assert (op, ips, a.container_id, a.ifname) == ("teardown", [], "c1", "eth0")


BAD_ADMIN = ["has space", "-j", "ACCEPT", "X" * 29, "a\nb"]


@pytest.mark.parametrize("name", BAD_ADMIN)
def test_del_takes_an_invalid_admin_chain_name_and_leaves_the_admin_chain(fake, name):
    # the reference's DEL never reads iptablesAdminChainName
    code, out = run(conf(iptablesAdminChainName=name), "DEL")
    assert code == 0 and out is None
    (op, ips, a), = fake.calls
    assert op == "teardown" and len(ips) == 2 and a.admin_chain == ""


def test_del_passes_a_valid_admin_chain_name(fake):
    assert run(conf(iptablesAdminChainName="MY-ADMIN"), "DEL") == (0, None)
    assert fake.calls[0][2].admin_chain == "MY-ADMIN"
    fake.calls.clear()
    assert run(conf(), "DEL") == (0, None)
    assert fake.calls[0][2].admin_chain == "CNI-ADMIN"


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("name", BAD_ADMIN)
def test_add_and_check_refuse_an_invalid_admin_chain_name(fake, command, name):
    code, out = run(conf(iptablesAdminChainName=name), command)
    assert code == 1 and out["code"] == 7 and "iptablesAdminChainName" in out["msg"]
    assert fake.calls == []


def test_a_plan_without_admin_chain_leaves_it_out():
    from pycni.plugins.firewall import rules_iptables as ipt
    ips = [ContainerIP(4, "10.1.0.5")]
    full, bare = ipt.plan(4, ips, "CNI-ADMIN"), ipt.plan(4, ips, "")
    assert full.chains == [ipt.PRIV_CHAIN, "CNI-ADMIN"] and bare.chains == [ipt.PRIV_CHAIN]
    assert bare.ops == [op for op in full.ops if op.rule[-1] != "CNI-ADMIN"]
    assert len(bare.ops) == len(full.ops) - 1


def test_check_ok_and_failing(monkeypatch, fake):
    assert run(conf(), "CHECK") == (0, None)
    fake.problems = ["expected rule [-s 10.1.0.5/32 -j ACCEPT] not found", "second"]
    code, out = run(conf(), "CHECK")
    assert code == 1 and out["msg"] == "expected rule [-s 10.1.0.5/32 -j ACCEPT] not found"
    assert out["details"] == "second"


def test_check_without_prev_result_is_an_error(fake):
    code, out = run(conf(prev=None), "CHECK")
    assert code == 1 and out["msg"] == "missing prevResult from earlier plugin"


def test_gc_passes_the_valid_attachments(fake):
    config = conf("1.1.0", prev=None, **{"cni.dev/valid-attachments": [
        {"containerID": "c2", "ifname": "eth0"}, {"containerID": "c3", "ifname": "net1"}]})
    code, _ = run(config, "GC")
    assert code == 0
    assert fake.calls == [("gc", "net", [("c2", "eth0"), ("c3", "net1")])]


@pytest.mark.parametrize("name", BAD_ADMIN)
def test_gc_takes_an_invalid_admin_chain_name_as_del_does(fake, name):
    # GC must not fail on a config DEL accepts; the backend's gc gets no
    # admin chain at all, so the name cannot reach a rule
    config = conf("1.1.0", prev=None, iptablesAdminChainName=name, **{
        "cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]})
    assert run(config, "GC") == (0, None)
    assert fake.calls == [("gc", "net", [("c2", "eth0")])]
    assert not any(name in repr(call) for call in fake.calls)


def test_iptables_gc_is_a_no_op():
    assert backend.IptablesBackend().gc("net", []) is None


def test_iptables_teardown_without_addresses_runs_nothing(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("no tool may run")
    monkeypatch.setattr(fwtools, "run_tool", boom)
    monkeypatch.setattr(fwtools, "run_nft", boom)
    backend.IptablesBackend().teardown([], backend.Attachment("n", "c", "eth0"))


def test_nft_teardown_without_nft_is_a_no_op(monkeypatch):
    monkeypatch.setattr(backend, "find_tool", lambda name: None)
    backend.NftablesBackend().teardown([], backend.Attachment("n", "c", "eth0"))


def test_importing_the_plugin_is_light():
    parent = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
    code = (f"import sys\nsys.path.insert(0, {parent!r})\n"
            "import pycni.plugins.firewall.plugin\nimport json\n"
            "sys.__stdout__.write(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=60)
    modules = json.loads(proc.stdout)
    heavy = ("subprocess", "ipaddress", "pyroute2", "asyncio", "logging")
    assert [m for m in modules if m.split(".")[0] in heavy] == []
