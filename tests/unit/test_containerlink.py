"""pycni.containerlink without a kernel: DEL with no or a vanished netns,
and the DEL/GC/STATUS order of containerlink.Plugin (IPAM stubbed)."""

import pytest

from pycni import containerlink, invoke
from pycni.errors import CNIError, PLUGIN_NOT_AVAILABLE


def test_delete_without_netns_or_with_it_gone(tmp_path):
    containerlink.delete("", "eth0", "macvlan", lambda link, data: True)
    containerlink.delete(str(tmp_path / "gone"), "eth0", "macvlan", lambda link, data: True)
    plain = tmp_path / "file"
    plain.write_text("")        # a mount point the runtime unmounted
    containerlink.delete(str(plain), "eth0", "macvlan", lambda link, data: True)


class Req:
    netns = ""
    ifname = "eth0"
    config = {"ipam": "x"}


class Stub(containerlink.Plugin):
    name = "stub"

    def __init__(self, ipam_type: str, problem: str = ""):
        self.ipam_type, self.problem = ipam_type, problem

    def ipam_type_for_delete(self, conf):
        return self.ipam_type

    def ready(self, conf):
        if self.problem:
            raise CNIError(PLUGIN_NOT_AVAILABLE, self.problem)
        return self.ipam_type


@pytest.fixture
def calls(monkeypatch):
    out = []
    for name in ("delegate_del", "delegate_gc", "delegate_status"):
        monkeypatch.setattr(invoke, name,
                            lambda req, t, name=name: out.append((name, t)))
    return out


def test_delete_gc_status_delegate_to_ipam(calls):
    plugin = Stub("host-local")
    plugin.delete(Req())
    plugin.gc(Req())
    plugin.status(Req())
    assert calls == [("delegate_del", "host-local"), ("delegate_gc", "host-local"),
                     ("delegate_status", "host-local")]


def test_no_ipam_no_delegation(calls):
    plugin = Stub("")
    plugin.delete(Req())
    plugin.gc(Req())
    plugin.status(Req())
    assert calls == []


def test_status_asks_the_plugin_first(calls):
    with pytest.raises(CNIError) as err:
        Stub("host-local", "master interface eth9 not found").status(Req())
    assert err.value.code == PLUGIN_NOT_AVAILABLE
    assert calls == []
