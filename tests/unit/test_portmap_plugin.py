"""portmap plugin paths that need no root: backend choice, pass-through,
errors, start-up cost."""

import io
import json
import os
import subprocess
import sys

import pytest

import pycni
from pycni import fwtools, skel
from pycni.plugins.portmap import backend
from pycni.plugins.portmap.plugin import PortmapPlugin

PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.1.0.5/24", "interface": 0}]}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/x", "CNI_NETNS_OVERRIDE": "1"}


def run(conf: dict, command="ADD"):
    out = io.StringIO()
    code = skel.run(PortmapPlugin(), {**ENV, "CNI_COMMAND": command},
                    io.BytesIO(json.dumps(conf).encode()), out)
    return code, (json.loads(out.getvalue()) if out.getvalue() else None)


@pytest.mark.parametrize("tools, expected", [
    ({"iptables-save", "iptables-restore", "nft"}, "iptables"),
    ({"nft"}, "nftables"),                     # a host with only nftables
    ({"iptables-save", "iptables-restore"}, "iptables"),
    (set(), "iptables"),
])
def test_backend_detection(monkeypatch, tools, expected):
    monkeypatch.setattr(fwtools, "find_tool",
                        lambda name: f"/sbin/{name}" if name in tools else None)
    assert backend.detect() == expected


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_no_mappings_passes_prev_result_through(version):
    prev = {**PREV, "cniVersion": version}
    if version != "1.0.0":
        prev["ips"] = [{**prev["ips"][0], "version": "4"}]
    code, out = run({"cniVersion": version, "name": "n", "type": "portmap", "backend": "iptables",
                     "runtimeConfig": {"portMappings": []}, "prevResult": prev})
    assert code == 0 and out["ips"] == prev["ips"] and out["cniVersion"] == version


def test_add_without_prev_result_is_an_error():
    code, out = run({"cniVersion": "1.0.0", "name": "n", "type": "portmap",
                     "backend": "iptables"})
    assert code == 1 and out["msg"] == "must be called as chained plugin"


def test_check_without_prev_result_is_an_error():
    code, out = run({"cniVersion": "1.0.0", "name": "n", "type": "portmap",
                     "backend": "iptables"}, "CHECK")
    assert code == 1 and out["msg"] == "Required prevResult missing"


class Recorder:
    """A backend recording what the plugin asks of it."""

    def __init__(self):
        self.calls = []

    def setup(self, conf, network, cid, cip):
        self.calls.append(("setup", network, cid, cip.family))

    def teardown(self, network, cid, conf=None, families=()):
        self.calls.append(("teardown", network, cid, families))
        return set()

    def gc(self, network, valid):
        self.calls.append(("gc", network, valid))


@pytest.fixture
def recorder(monkeypatch):
    """The recording backend; the host's own route_localnet and conntrack
    are never touched (ADD's other effects do nothing here)."""
    from pycni.plugins.portmap import plugin
    rec = Recorder()
    monkeypatch.setattr(backend, "backend", lambda name: rec)
    monkeypatch.setattr(plugin, "enable_route_localnet", lambda cip: None)
    monkeypatch.setattr(plugin, "flush_conntrack", lambda conf, family: None)
    return rec


MAPPED = {"cniVersion": "1.0.0", "name": "n", "type": "portmap", "backend": "iptables",
          "runtimeConfig": {"portMappings": [
              {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}
DUAL = {**PREV, "ips": [{"address": "fd00::5/64", "interface": 0}, *PREV["ips"]]}


@pytest.mark.parametrize("prev, families", [
    (PREV, (4,)),
    (DUAL, (4, 6)),
    ({**PREV, "ips": [{"address": "fd00::5/64", "interface": 0}]}, (6,)),
    (None, (4,)),                                   # no prevResult: IPv4 tried first
    ({"cniVersion": "1.0.0", "ips": "garbage"}, (4,)),   # DEL never fails on it
    ({**PREV, "interfaces": [{"name": "net1", "sandbox": "/x"}]}, ()),   # another interface
])
def test_del_tells_the_backend_what_add_wrote(recorder, prev, families):
    conf = MAPPED if prev is None else {**MAPPED, "prevResult": prev}
    code, _ = run(conf, "DEL")
    assert code == 0 and recorder.calls == [("teardown", "n", "c1", families)]


def test_add_calls_setup_per_family(recorder):
    code, _ = run({**MAPPED, "prevResult": DUAL})
    assert code == 0 and recorder.calls == [("setup", "n", "c1", 4), ("setup", "n", "c1", 6)]


def test_gc_passes_attachment_pairs(recorder):
    code, _ = run({**MAPPED, "cniVersion": "1.1.0", "cni.dev/valid-attachments": [
        {"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]}, "GC")
    assert code == 0 and recorder.calls == [("gc", "n", [("c1", "eth0"), ("c2", "net1")])]


def test_bad_config_is_code_7_before_any_tool_runs(monkeypatch):
    monkeypatch.setattr(backend, "run_tool", lambda *a, **k: pytest.fail("tool ran"))
    code, out = run({"cniVersion": "1.0.0", "name": "n", "type": "portmap", "prevResult": PREV,
                     "runtimeConfig": {"portMappings": [
                         {"hostPort": 80, "containerPort": 80, "protocol": "gre"}]}})
    assert code == 1 and out["code"] == 7


def test_importing_the_plugin_is_light():
    parent = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
    code = (f"import sys\nsys.path.insert(0, {parent!r})\n"
            "import pycni.plugins.portmap.plugin\nprint(' '.join(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, check=True)
    heavy = {"subprocess", "ipaddress", "hashlib", "shlex", "pyroute2", "asyncio"}
    assert heavy.isdisjoint(proc.stdout.split())


def test_netns_mutex_excludes_and_releases(tmp_path):
    d = str(tmp_path / "locks")
    with fwtools.NetnsMutex(directory=d) as first:
        assert first.locked
        with fwtools.NetnsMutex(timeout=0.05, directory=d) as second:
            assert not second.locked            # gave up waiting, unlocked
    with fwtools.NetnsMutex(timeout=0.05, directory=d) as third:
        assert third.locked                     # released on exit
