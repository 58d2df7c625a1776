"""cnitool list operations with a recording fake in place of plugin
execution: order, prevResult, cache use, error handling, GC and STATUS."""

import json

import pytest

from pycni.cnitool import cache
from pycni.cnitool.conf import parse_list
from pycni.cnitool.request import RuntimeConf
from pycni.cnitool.runtime import Runtime, CnitoolError
from pycni.errors import CNIError

RT = RuntimeConf(container_id="ctr1", netns="/run/netns/x", ifname="eth0",
                 capability_args={"mac": "aa"})


def netlist(version="1.0.0", **top):
    return parse_list(json.dumps({
        "cniVersion": version, "name": "net",
        "plugins": [{"type": "first", "capabilities": {"mac": True}}, {"type": "second"}],
        **top}).encode())


class FakePlugins:
    """Records calls; ADD answers with an address per plugin."""

    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail or {}

    def __call__(self, plugin_type, path, stdin, env):
        config = json.loads(stdin)
        command = env["CNI_COMMAND"]
        self.calls.append((command, plugin_type, config, env))
        if (command, plugin_type) in self.fail:
            raise self.fail[(command, plugin_type)]
        if command != "ADD":
            return b""
        prev = json.loads(stdin).get("prevResult") or {"cniVersion": config["cniVersion"],
                                                       "ips": []}
        n = len(prev["ips"]) + 1
        prev["ips"].append({"address": f"10.0.0.{n}/24"})
        return json.dumps(prev).encode()

    def seen(self):
        return [(command, plugin_type) for command, plugin_type, _, _ in self.calls]


@pytest.fixture
def runtime(tmp_path):
    fake = FakePlugins()
    return Runtime(path=["/opt/cni/bin"], cache_dir=str(tmp_path), environ={"PATH": "/bin"},
                   run_plugin=fake)


def test_add_chains_results_and_caches(runtime, monkeypatch):
    monkeypatch.setattr("pycni.execpath.find_in_path", lambda t, p: f"/opt/cni/bin/{t}")
    nl = netlist()
    result = runtime.add(nl, RT)
    fake = runtime.run_plugin
    assert fake.seen() == [("ADD", "first"), ("ADD", "second")]
    first, second = fake.calls[0][2], fake.calls[1][2]
    assert "prevResult" not in first and first["runtimeConfig"] == {"mac": "aa"}
    assert second["prevResult"]["ips"] == [{"address": "10.0.0.1/24"}]
    assert "runtimeConfig" not in second
    assert result == {"cniVersion": "1.0.0",
                      "ips": [{"address": "10.0.0.1/24"}, {"address": "10.0.0.2/24"}]}
    env = fake.calls[0][3]
    assert (env["CNI_CONTAINERID"], env["CNI_NETNS"], env["CNI_IFNAME"], env["CNI_PATH"]) == \
        ("ctr1", "/run/netns/x", "eth0", "/opt/cni/bin")
    stored = cache.read(runtime.cache_dir, "net", RT)
    assert cache.cached_result(stored, "1.0.0") == result
    assert cache.decode_attachment(stored).config == nl.raw


def test_add_stops_at_first_error_and_caches_nothing(runtime, monkeypatch):
    monkeypatch.setattr("pycni.execpath.find_in_path", lambda t, p: t)
    runtime.run_plugin.fail[("ADD", "first")] = CNIError(11, "busy", "later")
    with pytest.raises(CnitoolError, match=r'plugin type="first" failed \(add\): busy; later'):
        runtime.add(netlist(), RT)
    assert runtime.run_plugin.seen() == [("ADD", "first")]
    assert cache.read(runtime.cache_dir, "net", RT) is None


def test_add_validates_attachment(runtime, monkeypatch):
    monkeypatch.setattr("pycni.execpath.find_in_path", lambda t, p: t)
    with pytest.raises(CnitoolError, match="interface name is too long"):
        runtime.add(netlist(), RuntimeConf("ctr1", "/n", "x" * 20))
    assert runtime.run_plugin.calls == []


def test_add_result_without_version_gets_list_version(runtime, monkeypatch):
    monkeypatch.setattr("pycni.execpath.find_in_path", lambda t, p: t)
    runtime.run_plugin = lambda *a: b'{"ips":[{"address":"10.0.0.1/24"}]}'
    nl = parse_list(b'{"cniVersion":"0.4.0","name":"net","plugins":[{"type":"x"}]}')
    assert runtime.add(nl, RT)["ips"] == [{"version": "4", "address": "10.0.0.1/24"}]


def test_add_unparsable_result(runtime, monkeypatch):
    monkeypatch.setattr("pycni.execpath.find_in_path", lambda t, p: t)
    runtime.run_plugin = lambda *a: b"nope"
    with pytest.raises(CnitoolError, match="failed to parse plugin result"):
        runtime.add(netlist(), RT)


def seed_cache(runtime, result=None, rt=RT, net="net"):
    result = result or {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.9/24"}]}
    cache.write(runtime.cache_dir, net, rt, b"{}", result)


def test_check_in_order_with_cached_result_converted(runtime):
    seed_cache(runtime)
    runtime.check(netlist(), RT)
    fake = runtime.run_plugin
    assert fake.seen() == [("CHECK", "first"), ("CHECK", "second")]
    for _, _, config, _ in fake.calls:
        assert config["prevResult"] == {"cniVersion": "1.0.0",
                                        "ips": [{"address": "10.0.0.9/24"}]}
    assert fake.calls[0][2]["runtimeConfig"] == {"mac": "aa"}


def test_check_refused_before_0_4_0(runtime):
    with pytest.raises(CnitoolError, match='configuration version "0.3.1" does not support '
                                        'the CHECK command'):
        runtime.check(netlist("0.3.1"), RT)
    assert runtime.run_plugin.calls == []


def test_check_skipped_when_disabled(runtime):
    runtime.check(netlist(disableCheck="true"), RT)
    assert runtime.run_plugin.calls == []


def test_check_bad_cache_is_an_error(runtime):
    seed_cache(runtime)
    with open(cache.cache_path(runtime.cache_dir, "net", RT), "w") as f:
        f.write('{"kind":"cniCacheV1","result":{"cniVersion":"7.0.0"}}')
    with pytest.raises(CnitoolError, match='failed to get network "net" cached result'):
        runtime.check(netlist(), RT)


def test_check_stops_at_first_error(runtime):
    runtime.run_plugin.fail[("CHECK", "first")] = CNIError(999, "lo is down")
    with pytest.raises(CNIError, match="lo is down"):
        runtime.check(netlist(), RT)
    assert runtime.run_plugin.seen() == [("CHECK", "first")]


def test_del_reverse_order_with_cache_then_removes_it(runtime):
    seed_cache(runtime)
    runtime.delete(netlist(), RT)
    fake = runtime.run_plugin
    assert fake.seen() == [("DEL", "second"), ("DEL", "first")]
    assert all(c[2]["prevResult"]["ips"] == [{"address": "10.0.0.9/24"}] for c in fake.calls)
    assert cache.read(runtime.cache_dir, "net", RT) is None


def test_del_without_cache_has_no_prev_result(runtime):
    runtime.delete(netlist(), RT)
    assert all("prevResult" not in c[2] for c in runtime.run_plugin.calls)


def test_del_before_0_4_0_ignores_cache(runtime):
    seed_cache(runtime)
    runtime.delete(netlist("0.3.1"), RT)
    assert all("prevResult" not in c[2] for c in runtime.run_plugin.calls)
    assert cache.read(runtime.cache_dir, "net", RT) is None


def test_del_invalid_cache_deleted_and_del_proceeds(runtime):
    seed_cache(runtime)
    with open(cache.cache_path(runtime.cache_dir, "net", RT), "w") as f:
        f.write("{garbage")
    runtime.run_plugin.fail[("DEL", "first")] = CNIError(999, "boom")
    with pytest.raises(CnitoolError, match=r'plugin type="first" failed \(delete\): boom'):
        runtime.delete(netlist(), RT)
    assert all("prevResult" not in c[2] for c in runtime.run_plugin.calls)
    assert cache.read(runtime.cache_dir, "net", RT) is None


def test_del_failure_keeps_cache(runtime):
    seed_cache(runtime)
    runtime.run_plugin.fail[("DEL", "second")] = CNIError(999, "boom")
    with pytest.raises(CnitoolError):
        runtime.delete(netlist(), RT)
    assert runtime.run_plugin.seen() == [("DEL", "second")]
    assert cache.read(runtime.cache_dir, "net", RT) is not None


def test_gc_deletes_cached_attachments_of_this_network_then_gcs(runtime):
    other_rt = RuntimeConf("ctr2", "/run/netns/y", "eth1", args=[("K", "v")],
                           capability_args={"mac": "bb"})
    seed_cache(runtime)
    seed_cache(runtime, rt=other_rt)
    seed_cache(runtime, rt=RuntimeConf("ctr3", "/n", "eth0"), net="othernet")
    runtime.gc(netlist("1.1.0"), None)
    fake = runtime.run_plugin
    assert fake.seen() == [("DEL", "second"), ("DEL", "first")] * 2 + \
        [("GC", "first"), ("GC", "second")]
    # The synthesized DEL uses what the cache remembers of each attachment.
    del_env = fake.calls[2][3]
    assert (del_env["CNI_CONTAINERID"], del_env["CNI_NETNS"], del_env["CNI_IFNAME"],
            del_env["CNI_ARGS"]) == ("ctr2", "/run/netns/y", "eth1", "K=v")
    assert fake.calls[3][2]["runtimeConfig"] == {"mac": "bb"}
    gc_config, gc_env = fake.calls[4][2], fake.calls[4][3]
    assert "cni.dev/valid-attachments" not in gc_config
    assert gc_env["CNI_CONTAINERID"] == "" and gc_env["CNI_COMMAND"] == "GC"
    assert [a.network for a in cache.attachments(runtime.cache_dir)] == ["othernet"]


def test_gc_keeps_valid_attachments_and_sends_the_list(runtime):
    seed_cache(runtime)
    valid = [{"containerID": "ctr1", "ifname": "eth0"}]
    runtime.gc(netlist("1.1.0"), valid)
    assert runtime.run_plugin.seen() == [("GC", "first"), ("GC", "second")]
    assert runtime.run_plugin.calls[0][2]["cni.dev/valid-attachments"] == valid


def test_gc_before_1_1_0_only_deletes(runtime):
    seed_cache(runtime)
    runtime.gc(netlist("1.0.0"), None)
    assert runtime.run_plugin.seen() == [("DEL", "second"), ("DEL", "first")]


def test_gc_disabled(runtime):
    seed_cache(runtime)
    runtime.gc(netlist("1.1.0", disableGC=True), None)
    assert runtime.run_plugin.calls == []


def test_gc_collects_errors(runtime):
    seed_cache(runtime)
    runtime.run_plugin.fail[("DEL", "second")] = CNIError(999, "del failed")
    runtime.run_plugin.fail[("GC", "first")] = CNIError(999, "gc failed")
    with pytest.raises(CnitoolError) as info:
        runtime.gc(netlist("1.1.0"), None)
    assert str(info.value).splitlines() == [
        'failed to delete stale attachment ctr1 eth0: plugin type="second" failed '
        '(delete): del failed',
        "failed to GC plugin first: gc failed"]
    assert runtime.run_plugin.seen()[-1] == ("GC", "second")


def test_status(runtime):
    runtime.status(netlist("1.1.0"))
    assert runtime.run_plugin.seen() == [("STATUS", "first"), ("STATUS", "second")]
    assert runtime.run_plugin.calls[0][2] == {"type": "first", "capabilities": {"mac": True},
                                              "name": "net", "cniVersion": "1.1.0"}


def test_status_stops_at_first_error_and_skips_old_versions(runtime):
    runtime.run_plugin.fail[("STATUS", "first")] = CNIError(50, "not ready")
    with pytest.raises(CNIError, match="not ready"):
        runtime.status(netlist("1.1.0"))
    assert runtime.run_plugin.seen() == [("STATUS", "first")]
    runtime.run_plugin.calls.clear()
    runtime.status(netlist("1.0.0"))
    assert runtime.run_plugin.calls == []


def test_plugin_type_with_path_separator_never_runs(tmp_path):
    ran = []
    runtime = Runtime(path=[str(tmp_path)], cache_dir=str(tmp_path),
                      run_plugin=lambda *a: ran.append(a) or b"{}")
    nl = parse_list(b'{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"../../sbin/x"}]}')
    with pytest.raises(CnitoolError, match='must not contain a path separator'):
        runtime.add(nl, RT)
    assert ran == []
