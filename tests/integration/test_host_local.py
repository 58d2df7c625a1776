"""host-local exec'ed from CNI_PATH as a runtime does, in a test host
namespace, on a temporary dataDir: concurrency, a killed lock holder, a
full range, and interop with the reference Go host-local on one store."""

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.netns

NETWORK = "hlnet"


@pytest.fixture
def setup(world, plugin_dir, ref_dir, tmp_path):
    world.host                      # create the namespace before threads use it
    ctr = world.container()

    class Setup:
        data_dir = tmp_path / "data"
        net_dir = tmp_path / "data" / NETWORK

        @staticmethod
        def conf(ipam=None, version="1.0.0", **top):
            raw = {"cniVersion": version, "name": NETWORK, "type": "bridge",
                   "ipam": {"type": "host-local", "dataDir": str(tmp_path / "data"),
                            **(ipam or {"subnet": "10.77.0.0/24"})}}
            raw.update(top)
            return raw

        @staticmethod
        def run(command, conf, cid="c1", ifname="eth0", impl="ours", **kw):
            cni_path = plugin_dir if impl == "ours" else ref_dir
            return world.run_plugin(cni_path, "host-local", command, conf, ctr,
                                    container_id=cid, ifname=ifname, **kw)

        @staticmethod
        def files():
            d = tmp_path / "data" / NETWORK
            return sorted(os.listdir(d)) if d.exists() else []

        @classmethod
        def allocations(cls):
            return {n: (cls.net_dir / n).read_bytes().decode() for n in cls.files()
                    if n != "lock" and not n.startswith("last_reserved_ip.")}

    return Setup


def address(run):
    assert run.ok, run.stdout + run.stderr
    return run.json["ips"][0]["address"].split("/")[0]


def test_add_check_del(setup):
    conf = setup.conf()
    run = setup.run("ADD", conf)
    assert run.ok, run.stdout + run.stderr
    assert run.json == {"cniVersion": "1.0.0",
                        "ips": [{"address": "10.77.0.2/24", "gateway": "10.77.0.1"}]}
    assert setup.allocations() == {"10.77.0.2": "c1\r\neth0"}
    assert setup.run("CHECK", conf).ok
    assert setup.run("DEL", conf).ok
    assert setup.run("DEL", conf).ok
    assert setup.files() == ["last_reserved_ip.0", "lock"]


def test_100_parallel_adds_then_100_parallel_dels(setup):
    conf = setup.conf({"subnet": "10.77.0.0/16"})
    with ThreadPoolExecutor(max_workers=100) as pool:
        runs = list(pool.map(lambda i: setup.run("ADD", conf, cid=f"ctr{i}"), range(100)))
    addresses = [address(r) for r in runs]
    assert len(set(addresses)) == 100
    allocs = setup.allocations()
    assert len(allocs) == 100
    assert {allocs[a] for a in addresses} == {f"ctr{i}\r\neth0" for i in range(100)}
    with ThreadPoolExecutor(max_workers=100) as pool:
        runs = list(pool.map(lambda i: setup.run("DEL", conf, cid=f"ctr{i}"), range(100)))
    assert all(r.ok for r in runs), [r.stdout for r in runs if not r.ok]
    assert setup.allocations() == {}


def _lock_is_held(path) -> bool:
    return subprocess.run(["flock", "-n", str(path), "true"]).returncode != 0


BULK = 20000


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_killed_lock_holder_does_not_wedge_the_next_call(setup, world, plugin_dir, ref_dir, impl):
    """A holder inside the lock is killed with SIGKILL; the kernel drops its
    flock and the next call proceeds. The reference is stuck there on a FIFO
    where the round-robin cursor should be; ours never blocks on one, so it
    is caught reading a large store whose index it must rebuild."""
    conf = setup.conf({"subnet": "10.77.0.0/16"})
    assert setup.run("ADD", conf, cid="first").ok
    cursor = setup.net_dir / "last_reserved_ip.0"
    if impl == "reference":
        cursor.unlink()
        os.mkfifo(cursor)
    else:
        for i in range(BULK):
            (setup.net_dir / f"10.77.{100 + i // 250}.{i % 250 + 1}").write_bytes(
                f"bulk{i}\r\neth0".encode())
        # files made by hand do not invalidate the index (no cursor moved:
        # see store.py); without one the call must read them all
        (setup.data_dir / ".pycni" / NETWORK / "stamp").unlink()
    env = world.plugin_env("ADD", plugin_dir if impl == "ours" else ref_dir,
                           container="/run/netns/none", container_id="stuck")
    binary = os.path.join(plugin_dir if impl == "ours" else ref_dir, "host-local")
    proc = subprocess.Popen(["ip", "netns", "exec", world.host.name, binary], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    try:
        deadline = time.monotonic() + 10
        while not _lock_is_held(setup.net_dir / "lock"):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the plugin never took the lock"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if impl == "reference":
        cursor.unlink()
    started = time.monotonic()
    run = setup.run("ADD", conf, cid="next")
    assert run.ok, run.stdout + run.stderr
    assert time.monotonic() - started < 5
    allocs = setup.allocations()
    assert allocs[address(run)] == "next\r\neth0"
    assert "stuck\r\neth0" not in allocs.values()


def test_full_range_answers_clear_error_and_writes_nothing(setup):
    conf = setup.conf({"subnet": "10.77.0.0/29"})
    got = [address(setup.run("ADD", conf, cid=f"c{i}")) for i in range(5)]
    assert got == [f"10.77.0.{i}" for i in range(2, 7)]
    snapshot = {n: (setup.net_dir / n).read_bytes() for n in setup.files()}
    run = setup.run("ADD", conf, cid="late")
    assert not run.ok and run.returncode == 1
    assert run.json["msg"] == ("failed to allocate for range 0: no IP addresses available "
                               "in range set: 10.77.0.1-10.77.0.6")
    assert {n: (setup.net_dir / n).read_bytes() for n in setup.files()} == snapshot
    run = setup.run("STATUS", setup.conf({"subnet": "10.77.0.0/29"}, version="1.1.0"))
    assert run.json["code"] == 50


@pytest.mark.parametrize("first, second", [("reference", "ours"), ("ours", "reference")])
def test_interop_allocations_seen_and_released_by_the_other(setup, first, second):
    conf = setup.conf({"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]]})
    run = setup.run("ADD", conf, cid="a", impl=first)
    assert run.ok, run.stdout + run.stderr
    assert [i["address"] for i in run.json["ips"]] == ["10.77.0.2/24", "fd77::2/64"]
    # the other one sees it: CHECK passes, a second ADD is a duplicate
    assert setup.run("CHECK", conf, cid="a", impl=second).ok
    dup = setup.run("ADD", conf, cid="a", impl=second)
    assert not dup.ok and "duplicate allocation is not allowed" in dup.json["msg"]
    # and continues round-robin after it
    run = setup.run("ADD", conf, cid="b", impl=second)
    assert [i["address"] for i in run.json["ips"]] == ["10.77.0.3/24", "fd77::3/64"]
    assert setup.run("CHECK", conf, cid="b", impl=first).ok
    # each releases the other's allocation
    assert setup.run("DEL", conf, cid="a", impl=second).ok
    assert setup.run("DEL", conf, cid="b", impl=first).ok
    assert setup.allocations() == {}
    assert not setup.run("CHECK", conf, cid="a", impl=first).ok
    assert not setup.run("CHECK", conf, cid="b", impl=second).ok


def test_interop_alternating_and_parallel_never_duplicates(setup):
    conf = setup.conf({"subnet": "10.77.0.0/16"})
    seen = []
    for i in range(10):     # alternate: each sees the other's last reservation
        impl = "ours" if i % 2 else "reference"
        seen.append(address(setup.run("ADD", conf, cid=f"alt{i}", impl=impl)))
    assert seen == [f"10.77.0.{i}" for i in range(2, 12)]
    with ThreadPoolExecutor(max_workers=60) as pool:
        runs = list(pool.map(
            lambda i: setup.run("ADD", conf, cid=f"par{i}", impl="ours" if i % 2 else "reference"),
            range(60)))
    got = [address(r) for r in runs]
    assert len(set(got) | set(seen)) == 70
    assert len(setup.allocations()) == 70
    with ThreadPoolExecutor(max_workers=60) as pool:
        runs = list(pool.map(
            lambda i: setup.run("DEL", conf, cid=f"par{i}", impl="reference" if i % 2 else "ours"),
            range(60)))
    assert all(r.ok for r in runs)
    assert sorted(setup.allocations()) == sorted(seen)


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_legacy_files_are_released_and_counted(setup, impl):
    conf = setup.conf({"subnet": "10.77.0.0/24"})
    # a store an old version left (legacy content: the ID alone); files made
    # by hand later are not entered into our index (store.py docstring)
    setup.net_dir.mkdir(parents=True)
    (setup.net_dir / "10.77.0.50").write_text("old")
    assert setup.run("ADD", conf, cid="x").ok
    assert setup.run("CHECK", conf, cid="old", impl=impl).ok
    dup = setup.run("ADD", conf, cid="old", impl=impl)
    assert not dup.ok and "duplicate allocation" in dup.json["msg"]
    assert setup.run("DEL", conf, cid="old", impl=impl).ok
    assert "10.77.0.50" not in setup.files()


def test_gc_keeps_valid_attachments_only(setup):
    conf = setup.conf(version="1.1.0")
    assert setup.run("ADD", conf, cid="keep").ok
    # the reference (v1.1.1 speaks up to 1.0.0) writes the other one
    assert setup.run("ADD", setup.conf(version="1.0.0"), cid="drop", impl="reference").ok
    gc_conf = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]})
    run = setup.run("GC", gc_conf, cid="")
    assert run.ok, run.stdout + run.stderr
    assert setup.allocations() == {"10.77.0.2": "keep\r\neth0"}
    assert "lock" in setup.files() and "last_reserved_ip.0" in setup.files()


SAME_RESULT = [
    ("legacy", {"subnet": "10.77.0.0/24"}, "1.0.0", ""),
    ("explicit", {"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.100",
                  "rangeEnd": "10.77.0.110", "gateway": "10.77.0.254",
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.99.0.0/16", "gw": "10.77.0.9"}]},
     "0.3.1", ""),
    ("multi-range", {"ranges": [[{"subnet": "10.77.0.0/30"}, {"subnet": "10.78.0.0/24"}]]},
     "0.4.0", ""),
    ("dual-stack", {"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]]},
     "1.0.0", ""),
    ("v6-only-legacy-result", {"subnet": "fd77:1::/120"}, "0.2.0", ""),
    ("requested", {"subnet": "10.77.0.0/24"}, "1.0.0", "IP=10.77.0.33"),
]


def _without_empty_dns(result):
    if isinstance(result, dict) and result.get("dns") == {}:
        result = {k: v for k, v in result.items() if k != "dns"}
    return result


@pytest.mark.parametrize("label, ipam, version, args", SAME_RESULT, ids=[c[0] for c in SAME_RESULT])
def test_same_result_as_reference(world, plugin_dir, ref_dir, tmp_path, label, ipam, version, args):
    """Fresh stores, same config: the same result JSON (the reference prints an
    empty "dns": {} in 1.0.0 results, which carries nothing)."""
    world.host
    results = {}
    for impl, cni_path in (("ours", plugin_dir), ("reference", ref_dir)):
        conf = {"cniVersion": version, "name": NETWORK, "type": "bridge",
                "ipam": {"type": "host-local", "dataDir": str(tmp_path / impl), **ipam}}
        run = world.run_plugin(cni_path, "host-local", "ADD", conf, "/run/netns/none",
                               container_id="same", args=args)
        assert run.ok, run.stdout + run.stderr
        results[impl] = _without_empty_dns(run.json)
        files = sorted(os.listdir(tmp_path / impl / NETWORK))
        results[impl + "-files"] = files
    assert results["ours"] == results["reference"]
    assert results["ours-files"] == results["reference-files"]


SAME_ERROR = [
    {"subnet": "10.77.0.1/24"},
    {"subnet": "10.77.0.0/31"},
    {"subnet": "10.77.0.0/24", "rangeStart": "10.78.0.1"},
    {"subnet": "10.77.0.0/24", "rangeEnd": "10.78.0.1"},
    {"ranges": [[{"subnet": "10.77.0.0/16"}, {"subnet": "10.77.1.0/24"}]]},
    {"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "10.77.0.0/25"}]]},
    {"ranges": [[{"subnet": "10.77.0.0/24"}, {"subnet": "fd77::/64"}]]},
    {},
]


@pytest.mark.parametrize("ipam", SAME_ERROR)
def test_same_error_message_as_reference_and_nothing_written(world, plugin_dir, ref_dir,
                                                              tmp_path, ipam):
    world.host
    messages = {}
    for impl, cni_path in (("ours", plugin_dir), ("reference", ref_dir)):
        conf = {"cniVersion": "1.0.0", "name": NETWORK, "type": "bridge",
                "ipam": {"type": "host-local", "dataDir": str(tmp_path / impl), **ipam}}
        run = world.run_plugin(cni_path, "host-local", "ADD", conf, "/run/netns/none")
        assert not run.ok
        messages[impl] = run.json["msg"]
        assert not (tmp_path / impl).exists()
        if impl == "ours":
            assert run.json["code"] == 7
    assert messages["ours"] == messages["reference"]
