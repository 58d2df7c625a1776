"""bandwidth against the real kernel, next to the reference bandwidth
(Debian containernetworking-plugins 1.1.1, /usr/lib/cni/bandwidth).

The chain head is our bridge + host-local (per-test dataDir); bandwidth
runs with the bridge's result as prevResult, in the world's host
namespace, where the qdiscs and filters are inspected with `tc -j`. The
throughput test moves real TCP data between the container and the host
namespace (the bridge's gateway address) with and without limits.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.netns

NET = "bwnet"
BRIDGE = "cnibw0"
SUBNET, GW = "10.97.0.0/24", "10.97.0.1"
RATE, BURST = 8_000_000, 80_000           # 8 Mbit/s, 10 kB
UNSET_BURST = 4294967295                  # containerd's burst when none is set
PORT = 9100


@pytest.fixture(scope="module")
def cni_path(plugin_dir):
    return [plugin_dir]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "ipam")


def bridge_conf(data_dir, version="1.0.0") -> dict:
    return {"cniVersion": version, "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": data_dir}}


def bw_conf(prev, version="1.0.0", **keys) -> dict:
    conf = {"cniVersion": version, "name": NET, "type": "bandwidth", **keys}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


LIMITS = dict(ingressRate=RATE, ingressBurst=BURST, egressRate=RATE, egressBurst=BURST)


def ok(run) -> dict | None:
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    return run.json


def failed(run, code=None) -> dict:
    assert run.returncode != 0, f"plugin should have failed: {run.stdout}"
    assert run.json and "msg" in run.json, run.stdout
    if code is not None:
        assert run.json["code"] == code, run.json
    return run.json


class Attachment:
    def __init__(self, world, cni_path, data_dir, cid="ctr1", version="1.0.0"):
        self.world, self.cni_path, self.data_dir = world, cni_path, data_dir
        self.cid, self.version = cid, version
        self.ns = world.container(cid)
        self.prev = ok(world.run_plugin(cni_path, "bridge", "ADD",
                                        bridge_conf(data_dir, version), self.ns,
                                        container_id=cid))
        self.veth = next(i["name"] for i in self.prev["interfaces"]
                         if i.get("sandbox") is None and i["name"] != BRIDGE)

    def run(self, command, conf, binary=None, netns=None):
        env = self.world.plugin_env(command, self.cni_path,
                                    self.ns if netns is None else netns,
                                    container_id=self.cid)
        if binary:
            return self.world.exec_binary(binary, env, conf)
        return self.world.exec_plugin("bandwidth", env, conf)

    def detach(self):
        ok(self.world.run_plugin(self.cni_path, "bridge", "DEL",
                                 bridge_conf(self.data_dir, self.version), self.ns,
                                 container_id=self.cid))


def ifb_name(cid="ctr1") -> str:
    import hashlib
    return ("bwp" + hashlib.sha512((NET + cid).encode()).hexdigest())[:15]


def qdiscs(world, dev) -> list[dict]:
    out = json.loads(world.host.run("tc", "-j", "qdisc", "show", "dev", dev).stdout or b"[]")
    for q in out:
        q.pop("refcnt", None)
    return out


def redirects(world, dev) -> list[tuple]:
    """(target, control) of every mirred action under the ingress qdisc."""
    proc = world.host.run("tc", "-j", "filter", "show", "dev", dev, "parent", "ffff:",
                          check=False)
    out = []
    for f in json.loads(proc.stdout or b"[]"):
        for a in f.get("options", {}).get("actions", []):
            out.append((a["to_dev"], a["control_action"]["type"]))
    return out


def tc_state(world, veth) -> str:
    """Every qdisc and filter of the host namespace, without counters, action
    indexes and reference counts; the IFB and veth names normalised."""
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()
                    if k not in ("refcnt", "index", "ref", "bind")}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj
    host = world.host
    state = {"qdiscs": clean(json.loads(host.run("tc", "-j", "-d", "qdisc", "show").stdout)),
             "filters": clean(json.loads(host.run("tc", "-j", "-d", "filter", "show", "dev",
                                                  veth, "parent", "ffff:", check=False).stdout
                                         or b"[]")),
             "links": [{k: l.get(k) for k in ("ifname", "mtu", "txqlen", "flags", "operstate")}
                       for l in host.ip_json("-d", "link", "show", "type", "ifb")]}
    return json.dumps(state, sort_keys=True).replace(ifb_name(), "IFB").replace(veth, "VETH")


def ifb_exists(world, cid="ctr1") -> bool:
    return world.host.link(ifb_name(cid)) is not None


def clear_qdiscs(world, veth):
    world.host.run("tc", "qdisc", "del", "dev", veth, "root", check=False)
    world.host.run("tc", "qdisc", "del", "dev", veth, "ingress", check=False)


# ------------------------------------------------------------------ lifecycle

@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(world, cni_path, data_dir, version):
    a = Attachment(world, cni_path, data_dir, version=version)
    result = ok(a.run("ADD", bw_conf(a.prev, version, **LIMITS)))

    # result: prevResult plus the IFB (host side: no sandbox)
    ifb = world.host.link(ifb_name())
    assert result["interfaces"][:3] == a.prev["interfaces"]
    assert result["interfaces"][3] == {"name": ifb_name(), "mac": ifb["address"]}
    assert result["ips"] == a.prev["ips"]
    veth = world.host.link(a.veth)
    assert ifb["linkinfo"]["info_kind"] == "ifb" and ifb["mtu"] == veth["mtu"]
    assert "UP" in ifb["flags"] and ifb.get("txqlen", 0) == 0   # ip -j omits 0

    # ingress: TBF 1: on the host veth; egress: ingress qdisc + redirect + TBF on the IFB
    def tbfs(dev):
        return [(q["handle"], q.get("root"), q["options"]["rate"], q["options"]["burst"],
                 q["options"]["lat"]) for q in qdiscs(world, dev) if q["kind"] == "tbf"]
    tbf = ("1:", True, RATE // 8, BURST // 8, 25000)
    assert tbfs(a.veth) == [tbf]
    assert any(q["kind"] == "ingress" and q["handle"] == "ffff:" for q in qdiscs(world, a.veth))
    assert tbfs(ifb_name()) == [tbf]
    assert redirects(world, a.veth) == [(ifb_name(), "stolen"), (ifb_name(), "pass")]

    if version not in ("0.3.0", "0.3.1"):
        ok(a.run("CHECK", bw_conf(result, version, **LIMITS)))
    else:
        assert failed(a.run("CHECK", bw_conf(result, version, **LIMITS)), 1)

    ok(a.run("DEL", bw_conf(result, version, **LIMITS)))
    assert not ifb_exists(world)
    # the redirect to the IFB went with it; the veth's TBF goes with the veth
    assert [q["kind"] for q in qdiscs(world, a.veth)] == ["tbf"]
    ok(a.run("DEL", bw_conf(result, version, **LIMITS)))
    a.detach()
    ok(a.run("DEL", bw_conf(None, version, **LIMITS), netns=""))


def test_del_with_missing_netns(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    result = ok(a.run("ADD", bw_conf(a.prev, **LIMITS)))
    path = a.ns.path
    a.detach()
    from netns_world import delete_namespace
    assert delete_namespace(a.ns.name) is None
    world.namespaces.remove(a.ns)
    assert ifb_exists(world)        # the IFB lives in the host: only DEL removes it
    ok(a.run("DEL", bw_conf(result, **LIMITS), netns=path))
    assert not ifb_exists(world)
    ok(a.run("DEL", bw_conf(result, **LIMITS), netns=path))
    # containerd's RemovePodSandbox: no netns, no prevResult
    ok(a.run("DEL", bw_conf(None, **LIMITS), netns=""))


def test_del_does_not_leave_a_dead_redirect(world, cni_path, data_dir, ref_dir):
    """The reference's DEL deletes the IFB but leaves the filter redirecting
    to it, which then drops everything the container sends until the veth
    is deleted; ours removes the redirect first."""
    a = Attachment(world, cni_path, data_dir)
    for binary, reachable in ((None, True), (os.path.join(ref_dir, "bandwidth"), False)):
        result = ok(a.run("ADD", bw_conf(a.prev, **LIMITS), binary=binary))
        assert a.ns.pings(GW)
        ok(a.run("DEL", bw_conf(result, **LIMITS), binary=binary))
        assert a.ns.pings(GW, tries=2) == reachable
        clear_qdiscs(world, a.veth)
    a.detach()


def test_del_ignores_limits_it_cannot_use(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    ok(a.run("ADD", bw_conf(a.prev, **LIMITS)))
    ok(a.run("DEL", bw_conf(None, egressRate=1)))     # ADD would refuse this
    assert not ifb_exists(world)
    a.detach()


def test_containerd_runtime_config(world, cni_path, data_dir):
    """Capitalised keys, burst 2^32-1 bits ("unset"), egress only set."""
    a = Attachment(world, cni_path, data_dir)
    runtime = {"bandwidth": {"IngressRate": 0, "IngressBurst": 0,
                             "EgressRate": 10_000_000, "EgressBurst": UNSET_BURST}}
    conf = bw_conf(a.prev, capabilities={"bandwidth": True}, runtimeConfig=runtime)
    result = ok(a.run("ADD", conf))
    assert result["interfaces"][-1]["name"] == ifb_name()
    assert [q["kind"] for q in qdiscs(world, a.veth)] == ["noqueue", "ingress"]
    (tbf,) = qdiscs(world, ifb_name())
    assert tbf["options"]["rate"] == 1_250_000
    # the kernel caps the bucket time at 2^32-1 ns; CHECK knows that
    ok(a.run("CHECK", bw_conf(result, capabilities={"bandwidth": True},
                              runtimeConfig=runtime)))
    ok(a.run("DEL", conf))
    assert not ifb_exists(world)
    a.detach()


def test_static_limits_win_over_runtime_config(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    runtime = {"bandwidth": {"egressRate": 10_000_000, "egressBurst": 80_000}}
    ok(a.run("ADD", bw_conf(a.prev, ingressRate=RATE, ingressBurst=BURST,
                            runtimeConfig=runtime)))
    assert not ifb_exists(world)
    assert qdiscs(world, a.veth)[0]["options"]["rate"] == RATE // 8
    a.detach()


def test_no_limits_pass_prev_result_through(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    before = tc_state(world, a.veth)
    for conf in (bw_conf(a.prev), bw_conf(a.prev, runtimeConfig={}),
                 bw_conf(a.prev, ingressRate=0, ingressBurst=0)):
        result = ok(a.run("ADD", conf))
        assert result["interfaces"] == a.prev["interfaces"]
        assert result["ips"] == a.prev["ips"]
    assert tc_state(world, a.veth) == before
    a.detach()


# ------------------------------------------------------------------ bad input, failures

def test_bad_input_leaves_no_state(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    before = tc_state(world, a.veth)
    failed(a.run("ADD", bw_conf(None, **LIMITS)), 7)                       # not chained
    assert "chained" in failed(a.run("ADD", bw_conf(None, **LIMITS)))["msg"]
    assert failed(a.run("ADD", bw_conf(a.prev, ingressRate=RATE)), 7)["msg"] == \
        "if rate is set, burst must also be set"
    failed(a.run("ADD", bw_conf(a.prev, egressRate=RATE, egressBurst=8 * 2**32)), 7)
    failed(a.run("ADD", bw_conf(a.prev, "0.2.0", **LIMITS)), 1)            # < 0.3.0
    # prevResult without the host veth
    only_container = dict(a.prev, interfaces=[i for i in a.prev["interfaces"]
                                              if i.get("sandbox")])
    assert failed(a.run("ADD", bw_conf(only_container, **LIMITS)))["msg"] == \
        "no veth peer of container interface found in host ns"
    assert failed(a.run("ADD", bw_conf(dict(a.prev, interfaces=[]), **LIMITS)))["msg"] == \
        "no interfaces provided"
    assert tc_state(world, a.veth) == before
    a.detach()


def test_missing_netns_on_add(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    failed(a.run("ADD", bw_conf(a.prev, **LIMITS), netns="/run/netns/pycni-no-such-ns"), 3)
    assert not ifb_exists(world)
    a.detach()


def test_failed_add_undoes_its_steps(world, cni_path, data_dir):
    """An ingress qdisc someone else put on the veth makes the egress step
    fail after the TBF and the IFB exist: both are removed again."""
    a = Attachment(world, cni_path, data_dir)
    world.host.run("tc", "qdisc", "add", "dev", a.veth, "ingress")
    before = tc_state(world, a.veth)
    err = failed(a.run("ADD", bw_conf(a.prev, **LIMITS)))
    assert "ingress qdisc" in err["msg"]
    assert tc_state(world, a.veth) == before
    assert not ifb_exists(world)
    a.detach()


def test_check_notices_changes(world, cni_path, data_dir):
    a = Attachment(world, cni_path, data_dir)
    result = ok(a.run("ADD", bw_conf(a.prev, **LIMITS)))
    check = bw_conf(result, **LIMITS)
    ok(a.run("CHECK", check))
    # different limits in the config than in the kernel
    assert failed(a.run("CHECK", bw_conf(result, **dict(LIMITS, ingressRate=2 * RATE))))[
        "msg"] == "Rate doesn't match"
    assert failed(a.run("CHECK", bw_conf(result, **dict(LIMITS, egressBurst=2 * BURST))))[
        "msg"] == "Limit doesn't match"
    # the redirect removed
    world.host.run("tc", "filter", "del", "dev", a.veth, "parent", "ffff:")
    assert "redirects" in failed(a.run("CHECK", check))["msg"]
    # the veth's TBF removed
    world.host.run("tc", "qdisc", "del", "dev", a.veth, "root")
    assert failed(a.run("CHECK", check))["msg"] == "Failed to find qdisc"
    # the IFB removed
    ok(a.run("DEL", check))
    assert "ifb" in failed(a.run("CHECK", bw_conf(result, egressRate=RATE,
                                                  egressBurst=BURST)))["msg"]
    a.detach()


# ------------------------------------------------------------------ the reference

def test_same_kernel_state_as_the_reference(world, cni_path, data_dir, ref_dir):
    """Ours and the reference make identical qdiscs, filters and IFB for the
    same config, and each one's CHECK and DEL accept the other's state."""
    ref = os.path.join(ref_dir, "bandwidth")
    a = Attachment(world, cni_path, data_dir, version="0.4.0")
    conf = bw_conf(a.prev, "0.4.0", **LIMITS)
    before = tc_state(world, a.veth)

    ours = ok(a.run("ADD", conf))
    our_state = tc_state(world, a.veth)
    ok(a.run("CHECK", bw_conf(ours, "0.4.0", **LIMITS), binary=ref))
    ok(a.run("DEL", conf, binary=ref))
    assert not ifb_exists(world)
    clear_qdiscs(world, a.veth)
    assert tc_state(world, a.veth) == before

    theirs = ok(a.run("ADD", conf, binary=ref))
    assert tc_state(world, a.veth) == our_state
    ok(a.run("CHECK", bw_conf(theirs, "0.4.0", **LIMITS)))
    ok(a.run("DEL", conf))
    assert not ifb_exists(world)
    def drop_mac(r):
        return [{k: v for k, v in i.items() if k != "mac"} for i in r["interfaces"]]
    assert drop_mac(ours) == drop_mac(theirs)
    a.detach()


def test_containerd_unset_burst_next_to_the_reference(world, cni_path, data_dir, ref_dir):
    """containerd's 2^32-1 bits burst overflows the bucket time's 32 bits:
    the reference wraps it around (an arbitrary smaller bucket), ours
    saturates. That is the only difference in the kernel state; our CHECK
    accepts both, the reference's only its own."""
    ref = os.path.join(ref_dir, "bandwidth")
    a = Attachment(world, cni_path, data_dir, version="0.4.0")
    runtime = {"bandwidth": {"IngressRate": 10_000_000, "IngressBurst": UNSET_BURST,
                             "EgressRate": 0, "EgressBurst": 0}}
    conf = bw_conf(a.prev, "0.4.0", runtimeConfig=runtime)
    result = ok(a.run("ADD", conf, binary=ref))
    ref_tbf = qdiscs(world, a.veth)[0]
    ok(a.run("CHECK", conf))
    ok(a.run("CHECK", conf, binary=ref))
    clear_qdiscs(world, a.veth)

    assert ok(a.run("ADD", conf)) == result
    our_tbf = qdiscs(world, a.veth)[0]
    ok(a.run("CHECK", conf))
    assert failed(a.run("CHECK", conf, binary=ref))["msg"] == "Buffer doesn't match"
    # same rate and limit; a bigger bucket, closer to the requested 536870911 bytes
    assert our_tbf["options"]["rate"] == ref_tbf["options"]["rate"] == 1_250_000
    assert {k: v for k, v in our_tbf["options"].items() if k not in ("burst", "lat")} == \
        {k: v for k, v in ref_tbf["options"].items() if k not in ("burst", "lat")}
    assert ref_tbf["options"]["burst"] < our_tbf["options"]["burst"] <= 536870911
    a.detach()


# ------------------------------------------------------------------ traffic

TRANSFER = textwrap.dedent("""
    import socket, sys, time
    mode = sys.argv[1]
    if mode == "serve":          # serve PORT: "up N" -> read N, reply; "down N" -> send N
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", int(sys.argv[2])))
        srv.listen(4)
        print("ready", flush=True)
        while True:
            conn, _ = srv.accept()
            f = conn.makefile("rb")
            verb, n = f.readline().split()
            n = int(n)
            if verb == b"up":
                while n > 0:
                    chunk = f.read1(min(n, 65536))
                    if not chunk:
                        break
                    n -= len(chunk)
                conn.sendall(b"done")
            else:
                conn.sendall(b"x" * n)
            conn.close()
    else:                        # up|down HOST PORT N: print seconds taken
        host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        s = socket.create_connection((host, port), timeout=10)
        start = time.monotonic()
        s.sendall(mode.encode() + b" %d\\n" % n)
        if mode == "up":
            s.sendall(b"x" * n)
            assert s.recv(4) == b"done"
        else:
            got = 0
            while got < n:
                chunk = s.recv(65536)
                assert chunk
                got += len(chunk)
        print(time.monotonic() - start)
""")


def start_server(request, ns) -> None:
    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", TRANSFER,
                             "serve", str(PORT)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)

    def stop():
        proc.kill()
        proc.wait()
    request.addfinalizer(stop)
    assert proc.stdout.readline().strip() == b"ready"


def mbit_per_s(ns, direction: str, size: int) -> float:
    out = ns.run(sys.executable, "-c", TRANSFER, direction, GW, str(PORT), str(size),
                 timeout=15).stdout
    return size * 8 / float(out) / 1e6


def test_throughput_is_shaped(request, world, cni_path, data_dir):
    """1 MB each way between the container and the host namespace: fast
    without limits, about 8 Mbit/s (1 s) with them."""
    size = 1_000_000
    a = Attachment(world, cni_path, data_dir)
    a.ns.run("ip", "link", "set", "lo", "up")
    start_server(request, world.host)
    free_up = mbit_per_s(a.ns, "up", size)
    free_down = mbit_per_s(a.ns, "down", size)

    result = ok(a.run("ADD", bw_conf(a.prev, **LIMITS)))
    started = time.monotonic()
    up = mbit_per_s(a.ns, "up", size)          # container -> host: egress, via the IFB
    down = mbit_per_s(a.ns, "down", size)      # host -> container: ingress, TBF on the veth
    assert time.monotonic() - started < 6
    for shaped, free in ((up, free_up), (down, free_down)):
        assert 4 <= shaped <= 12, (up, down)
        assert free > 5 * shaped, (free, shaped)

    # after DEL (the veth still there) the container's traffic flows unshaped
    ok(a.run("DEL", bw_conf(result, **LIMITS)))
    assert mbit_per_s(a.ns, "up", size) > 5 * up
    a.detach()
