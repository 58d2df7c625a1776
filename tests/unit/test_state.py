"""pycni.state over real stores and caches: host-local stores written by the
reference host-local v1.9 and by ours, libcni result caches written by
cnitool; `pycni gc` (dry run and real) on an IPAM-only network.

Nothing here touches a network: host-local never looks at the netns, so
attachments are made with cnitool against netns paths that exist
(/proc/<pid>/ns/net), are gone, or are no namespace. Host objects (which
would read the machine's firewall) are left out (`--no-host-objects`); the
real-kernel tests in tests/integration/test_state*.py cover them.
"""

import io
import json
import os
import subprocess
import sys

import pytest

from pycni.state import model, read, runner

REF_BIN = "/var/cache/pycni-bench/ref-v1.9/bin"
CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
NET = "sttnet"


def ref_host_local() -> str:
    path = os.path.join(REF_BIN, "host-local")
    if not os.access(path, os.X_OK):
        pytest.skip("reference host-local v1.9 not installed")
    return path


@pytest.fixture(params=["ours", "reference"])
def cni_path(request, tmp_path_factory):
    """A CNI_PATH holding host-local: ours (pycni install) or the reference v1.9."""
    if request.param == "reference":
        return os.path.dirname(ref_host_local())
    return request.getfixturevalue("plugin_dir")


class Node:
    """A conflist dir, a data dir and a cache dir under tmp_path."""

    def __init__(self, tmp_path, cni_path, version="1.1.0"):
        self.tmp = tmp_path
        self.cni_path = cni_path
        self.netconf = tmp_path / "net.d"
        self.netconf.mkdir()
        self.data = tmp_path / "networks"
        self.cache = tmp_path / "cache"
        (self.netconf / "10-stt.conflist").write_text(json.dumps({
            "cniVersion": version, "name": NET,
            "plugins": [{"type": "host-local", "ipam": {
                "type": "host-local", "subnet": "10.77.0.0/24",
                "dataDir": str(self.data)}}]}))

    def env(self, **extra) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
                "NETCONFPATH": str(self.netconf), "CNI_PATH": self.cni_path,
                "CNI_CACHE_DIR": str(self.cache),
                # the live netns is this process's own: host-local never enters it
                "CNI_NETNS_OVERRIDE": "1", **extra}

    def cnitool(self, *args, **env):
        proc = subprocess.run([CNITOOL, *args], env=self.env(**env), capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def add(self, cid: str, netns: str, ifname: str = "eth0") -> str:
        result = self.cnitool("-i", ifname, "add", NET, netns, CNI_CONTAINERID=cid)
        return result["ips"][0]["address"].split("/")[0]

    def pycni(self, *argv) -> tuple[int, str, str]:
        """`pycni state|gc ...` in process (the same code the CLI runs)."""
        import argparse
        parser = argparse.ArgumentParser(prog="pycni")
        sub = parser.add_subparsers(dest="cmd", required=True)
        runner.add_parsers(sub)
        args = parser.parse_args([argv[0], "--no-host-objects", *argv[1:]])
        out, err = io.StringIO(), io.StringIO()
        code = runner.run(args, env=self.env(), out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def tree(self) -> dict:
        """Every file below data and cache: bytes and mode (what must not change)."""
        found = {}
        for top in (self.data, self.cache):
            for root, dirs, names in os.walk(top):
                for name in dirs + names:
                    path = os.path.join(root, name)
                    st = os.lstat(path)
                    data = None
                    if os.path.isfile(path) and not os.path.islink(path):
                        with open(path, "rb") as f:
                            data = f.read()
                    found[path] = (st.st_mode, st.st_mtime_ns, data)
        return found


def own_netns() -> str:
    return f"/proc/{os.getpid()}/ns/net"


# --- stores written by host-local -------------------------------------------------

def run_host_local(binary_argv, command, data_dir, cid, ifname, subnet="10.78.0.0/24"):
    conf = {"cniVersion": "1.0.0", "name": NET,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)}}
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/stt-none", "CNI_IFNAME": ifname,
           "CNI_PATH": "/nonexistent", "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"]}
    proc = subprocess.run(binary_argv, input=json.dumps(conf).encode(), env=env,
                          capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    return json.loads(proc.stdout) if proc.stdout.strip() else None


OURS = [sys.executable, "-c", "from pycni.ipam.host_local.plugin import main; main()"]


@pytest.mark.parametrize("impl", ["reference", "ours"])
def test_reads_a_store_host_local_wrote(tmp_path, impl):
    argv = [ref_host_local()] if impl == "reference" else OURS
    data = tmp_path / "networks"
    run_host_local(argv, "ADD", data, "ctr-a", "eth0")
    run_host_local(argv, "ADD", data, "ctr-b", "net1")
    run_host_local(argv, "ADD", data, "ctr-c", "eth0")
    run_host_local(argv, "DEL", data, "ctr-c", "eth0")
    directory, allocs = read.read_store(str(data), NET)
    assert directory == str(data / NET)
    assert sorted(allocs, key=lambda a: a.ip) == [
        model.Allocation("10.78.0.2", "ctr-a", "eth0"),
        model.Allocation("10.78.0.3", "ctr-b", "net1")]
    # the lock, the round-robin cursor and (ours) the .pycni index are no allocations
    assert read.store_networks(str(data)) == [NET]


def test_reader_changes_nothing_and_follows_nothing(tmp_path):
    data = tmp_path / "networks"
    run_host_local(OURS, "ADD", data, "ctr-a", "eth0")
    net_dir = data / NET
    os.chmod(net_dir, 0o777)            # a store an old version left writable:
    (net_dir / "10.78.0.9").symlink_to("/etc/hostname")     # a planted link,
    os.mkfifo(net_dir / "10.78.0.10")                        # a FIFO (never hangs),
    (net_dir / "10.78.0.11").write_text("legacy-ctr")        # a legacy file
    before = {p: (os.lstat(p).st_mode, os.lstat(p).st_mtime_ns) for p in net_dir.iterdir()}
    mode = os.stat(net_dir).st_mode
    _, allocs = read.read_store(str(data), NET)
    assert sorted(allocs, key=lambda a: a.ip) == [
        model.Allocation("10.78.0.11", "legacy-ctr", None),
        model.Allocation("10.78.0.2", "ctr-a", "eth0")]
    # the plugin would chmod the directory; a reader does not
    assert os.stat(net_dir).st_mode == mode
    assert before == {p: (os.lstat(p).st_mode, os.lstat(p).st_mtime_ns)
                      for p in net_dir.iterdir()}


def test_a_symlinked_network_dir_is_not_read(tmp_path):
    data = tmp_path / "networks"
    other = tmp_path / "elsewhere"
    run_host_local(OURS, "ADD", other, "ctr-a", "eth0")
    data.mkdir()
    (data / NET).symlink_to(other / NET)
    assert read.store_networks(str(data)) == []
    with pytest.raises(read.Unreadable, match="symbolic link"):
        read.read_store(str(data), NET)
    (state,) = read.snapshot([NET], str(data), str(tmp_path / "cache"), host_objects=False)
    assert state.allocations == [] and "symbolic link" in state.problems[0]


def test_a_missing_store_and_cache_are_empty(tmp_path):
    assert read.read_store(str(tmp_path / "none"), NET) is None
    assert read.snapshot(None, str(tmp_path / "none"), str(tmp_path / "none"),
                         host_objects=False) == []


# --- caches written by cnitool ------------------------------------------------------

def test_owner_states_from_a_cnitool_cache(tmp_path, cni_path):
    node = Node(tmp_path, cni_path)
    not_netns = tmp_path / "plain-file"
    not_netns.write_text("")
    ips = {cid: node.add(cid, netns) for cid, netns in [
        ("live", own_netns()), ("dead", str(tmp_path / "gone")),
        ("unmounted", str(not_netns)), ("uncached", own_netns())]}
    for entry in (node.cache / "results").iterdir():
        if "uncached" in entry.name:
            entry.unlink()
    (state,) = read.snapshot([NET], str(node.data), str(node.cache), host_objects=False)
    status = {a.container_id: model.owner_status(state, a.container_id, a.ifname)
              for a in state.allocations}
    assert status == {
        "live": (model.LIVE, f"netns {own_netns()}"),
        "dead": (model.STALE, f"netns {tmp_path / 'gone'} is gone"),
        "unmounted": (model.STALE, f"{not_netns} is not a network namespace"),
        "uncached": (model.NO_CACHE, "no libcni cache entry")}
    assert {a.ip: a.container_id for a in state.allocations} == \
        {ip: cid for cid, ip in ips.items()}
    cached = {a.container_id: a for a in state.attachments}
    assert cached["live"].ips == [f"{ips['live']}/24"] and cached["live"].host_links == []

    code, out, _ = node.pycni("state", "--json")
    assert code == 0
    doc = json.loads(out)
    (net,) = doc["networks"]
    assert {a["containerID"]: a["owner"] for a in net["allocations"]} == {
        "live": "live", "dead": "stale", "unmounted": "stale", "uncached": "no-cache"}
    code, text, _ = node.pycni("state", NET)
    assert code == 0 and text.startswith(f"network {NET}: 4 addresses (1 live, 1 no-cache, "
                                         "2 stale)")


def test_gc_dry_run_lists_the_leaks_and_gc_frees_exactly_them(tmp_path, cni_path):
    """The stale cached attachment goes by DEL (with either host-local); the
    address without a cache entry only by host-local's GC, which ours has
    and the reference v1.9 has not (its cmdGC is a FIXME)."""
    node = Node(tmp_path, cni_path)
    ours = cni_path != REF_BIN
    live = node.add("live", own_netns())
    node.add("live", own_netns(), ifname="net1")
    dead = node.add("dead", str(tmp_path / "gone"))
    orphan = node.add("orphan", own_netns())
    (node.cache / "results" / f"{NET}-orphan-eth0").unlink()
    snapshot = node.tree()

    code, out, err = node.pycni("gc", "--min-age", "0", "--dry-run", NET)
    assert code == 0, err
    assert out.splitlines() == [
        f"would remove cache entry {NET}-dead-eth0 (netns {tmp_path / 'gone'} is gone)",
        f"would remove address {dead} (dead eth0)",
        f"would remove address {orphan} (orphan eth0; by the plugins' GC)"]
    assert node.tree() == snapshot      # nothing changed, not even a mode or a time

    code, out, err = node.pycni("gc", "--min-age", "0", "--json", "--dry-run", NET)
    doc = json.loads(out)
    assert doc["valid"] == [{"containerID": "live", "ifname": "eth0"},
                            {"containerID": "live", "ifname": "net1"}]
    assert doc["wouldRemove"]["allocations"] == [
        {"ip": dead, "containerID": "dead", "ifname": "eth0"},
        {"ip": orphan, "containerID": "orphan", "ifname": "eth0", "by": "GC"}]

    code, out, err = node.pycni("gc", "--min-age", "0", NET)
    assert code == 0, err
    assert out.splitlines() == [
        f"removed cache entry {NET}-dead-eth0 (netns {tmp_path / 'gone'} is gone)",
        f"removed address {dead} (dead eth0)"] + \
        ([f"removed address {orphan} (orphan eth0)"] if ours else [])
    (state,) = read.snapshot([NET], str(node.data), str(node.cache), host_objects=False)
    assert sorted((a.container_id, a.ifname) for a in state.allocations) == \
        [("live", "eth0"), ("live", "net1")] + ([] if ours else [("orphan", "eth0")])
    assert live in {a.ip for a in state.allocations}
    assert [a.key for a in state.attachments] == [("live", "eth0"), ("live", "net1")]

    code, out, _ = node.pycni("gc", "--min-age", "0", NET)
    assert code == 0 and out == f"network {NET}: nothing to remove\n"


def test_gc_of_a_list_older_than_1_1_0_only_deletes_stale_cached_attachments(tmp_path):
    node = Node(tmp_path, ref_host_local() and REF_BIN, version="1.0.0")
    node.add("live", own_netns())
    dead = node.add("dead", str(tmp_path / "gone"))
    node.add("orphan", own_netns())
    (node.cache / "results" / f"{NET}-orphan-eth0").unlink()
    code, out, _ = node.pycni("gc", "--min-age", "0", "--dry-run", NET)
    assert out.splitlines()[1:] == [f"would remove address {dead} (dead eth0)"]
    code, out, err = node.pycni("gc", "--min-age", "0", NET)
    assert code == 0, err
    assert out.splitlines()[1:] == [f"removed address {dead} (dead eth0)"]
    (state,) = read.snapshot([NET], str(node.data), str(node.cache), host_objects=False)
    assert sorted(a.container_id for a in state.allocations) == ["live", "orphan"]


def test_gc_with_disable_gc_does_nothing(tmp_path, plugin_dir):
    node = Node(tmp_path, plugin_dir)
    conf = json.loads((node.netconf / "10-stt.conflist").read_text())
    conf["disableGC"] = True
    (node.netconf / "10-stt.conflist").write_text(json.dumps(conf))
    node.add("dead", str(tmp_path / "gone"))
    snapshot = node.tree()
    code, out, _ = node.pycni("gc", "--min-age", "0", NET)
    assert code == 0 and "disableGC is set" in out
    assert node.tree() == snapshot


def test_gc_of_an_unknown_network_fails_cleanly(tmp_path, plugin_dir):
    node = Node(tmp_path, plugin_dir)
    code, out, err = node.pycni("gc", "--min-age", "0", "nonet")
    assert code == 1 and out == "" and 'no net configuration with name "nonet"' in err


def test_gc_reports_a_failing_plugin_and_what_still_went(tmp_path, plugin_dir):
    node = Node(tmp_path, plugin_dir)
    dead = node.add("dead", str(tmp_path / "gone"))
    node.cni_path = str(tmp_path / "no-plugins")      # host-local can not be found now
    code, out, err = node.pycni("gc", "--min-age", "0", NET)
    assert code == 1
    assert "host-local" in err and out == f"network {NET}: nothing to remove\n"
    (state,) = read.snapshot([NET], str(node.data), str(node.cache), host_objects=False)
    assert dead in {a.ip for a in state.allocations}


def test_cli_entry_point_has_the_subcommands(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pycni.cli", "state", "--no-host-objects",
                           "--data-dir", str(tmp_path / "d"), "--cache-dir",
                           str(tmp_path / "c"), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["networks"] == []
    proc = subprocess.run([sys.executable, "-m", "pycni.cli", "gc"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "network" in proc.stderr


def test_gc_keeps_a_fresh_address_without_cache_entry(tmp_path, plugin_dir):
    """An ADD in flight holds its address before the runtime caches the
    result: by default an uncached address younger than --min-age (60 s)
    is taken for one, its owner declared valid, and kept."""
    node = Node(tmp_path, plugin_dir)
    fresh = node.add("inflight", own_netns())
    old = node.add("forgotten", own_netns())
    for cid in ("inflight", "forgotten"):
        (node.cache / "results" / f"{NET}-{cid}-eth0").unlink()
    store = node.data / NET
    os.utime(store / old, (0, os.stat(store / old).st_mtime - 3600))
    code, out, _ = node.pycni("gc", "--json", "--dry-run", NET)
    doc = json.loads(out)
    assert doc["valid"] == [{"containerID": "inflight", "ifname": "eth0"}]
    assert [a["ip"] for a in doc["wouldRemove"]["allocations"]] == [old]
    code, out, err = node.pycni("gc", NET)
    assert code == 0, err
    assert out == f"removed address {old} (forgotten eth0)\n"
    assert os.path.exists(store / fresh)
    code, _, err = node.pycni("gc", "--min-age", "-1", NET)
    assert code == 2 and "negative" in err


def test_a_symlinked_results_dir_is_reported_and_gc_refuses(tmp_path, plugin_dir):
    node = Node(tmp_path, plugin_dir)
    live = node.add("live", own_netns())
    results = node.cache / "results"
    results.rename(tmp_path / "elsewhere")
    results.symlink_to(tmp_path / "elsewhere")
    (state,) = read.snapshot([NET], str(node.data), str(node.cache), host_objects=False)
    assert state.attachments == [] and "not a directory" in state.problems[0]
    snapshot = node.tree()
    code, out, err = node.pycni("gc", "--min-age", "0", NET)
    assert code == 1 and out == "" and "refusing to collect" in err
    assert node.tree() == snapshot
    assert os.path.exists(node.data / NET / live)


def test_a_results_dir_others_can_write_is_reported_not_fixed(tmp_path, plugin_dir):
    node = Node(tmp_path, plugin_dir)
    node.add("live", own_netns())
    os.chmod(node.cache / "results", 0o777)
    (state,) = read.snapshot([NET], str(node.data), str(node.cache), host_objects=False)
    assert state.attachments == []
    assert "writable by group or others (mode 0777): not read" in state.problems[0]
    assert os.stat(node.cache / "results").st_mode & 0o777 == 0o777     # left as it was
