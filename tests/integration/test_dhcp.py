"""The dhcp IPAM plugin and its daemon against real DHCP servers.

Each test builds a world (tests/integration/dhcp_world.py): a LAN
namespace running Debian's dnsmasq or busybox udhcpd (or a scripted
server for NAKs and silence), our `dhcp daemon` in the host namespace,
and containers attached through our macvlan or bridge with
`ipam: {type: dhcp}`. The daemon runs with -timeout 1s and a short
-resendtimeout so that failures are bounded in seconds.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from netns_world import delete_namespace
from pytest_netns import missing_prerequisite

import dhcp_world as dw

pytestmark = pytest.mark.netns

FLAGS = ("-timeout", "1s", "-resendtimeout", "20s")


def in_pool(addr: str) -> bool:
    last = int(addr.split("/")[0].split(".")[-1])
    return addr.startswith("10.77.0.") and 100 <= last <= 150


@pytest.fixture(autouse=True)
def _tools():
    if not (shutil.which("dnsmasq") or os.path.exists("/usr/sbin/dnsmasq")):
        missing_prerequisite("dnsmasq not installed (apt-get install dnsmasq-base)")
    if not shutil.which("busybox"):
        missing_prerequisite("busybox not installed")


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


@pytest.fixture
def daemon_factory(world, plugin_dir, tmp_path, procs):
    def start(flags=FLAGS):
        d = dw.Daemon(world, os.path.join(plugin_dir, "dhcp"), str(tmp_path), flags)
        procs.append(d)
        return d
    return start


def run(world, plugin_dir, conf, command, ctr, **kw):
    return world.run_plugin([plugin_dir], conf["type"], command, conf, ctr, **kw)


def addrs(ns, ifname="eth0"):
    return ns.addresses(ifname)


@pytest.mark.parametrize("server", ["dnsmasq", "udhcpd"])
@pytest.mark.parametrize("topology", ["macvlan", "bridge"])
def test_add_check_del_del(world, plugin_dir, tmp_path, procs, daemon_factory, server, topology):
    lan = dw.make_lan(world, topology)
    srv = dw.start_server(server, lan, str(tmp_path))
    procs.append(srv)
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf(topology, d.socket_path, provide=[{"option": "host-name", "value": "dhc1"}])

    add = run(world, plugin_dir, conf, "ADD", ctr)
    assert add.ok, add.stdout + add.stderr + d.text()
    ip = add.json["ips"][0]
    assert in_pool(ip["address"]) and ip["address"].endswith("/24"), add.json
    assert ip["gateway"] == dw.SERVER_IP
    assert {"dst": "0.0.0.0/0", "gw": dw.SERVER_IP} in add.json["routes"]
    assert ip["address"] in addrs(ctr)
    assert ctr.pings(dw.SERVER_IP)
    [lease] = d.leases()
    assert lease["address"] == ip["address"].split("/")[0] and lease["ifname"] == "eth0"
    assert lease["client_id"] == f"ctr1/{conf['name']}/eth0"
    assert oct(os.stat(d.state_dir).st_mode & 0o777) == "0o700"
    assert oct(os.stat(d.socket_path).st_mode & 0o777) == "0o600"
    if server == "dnsmasq":
        assert srv.leased() == [lease["address"]]
        assert srv.saw("client provides name: dhc1")

    chk = run(world, plugin_dir, dict(conf, prevResult=add.json), "CHECK", ctr)
    assert chk.ok, chk.stdout + chk.stderr

    again = run(world, plugin_dir, dict(conf, type="dhcp"), "ADD", ctr)
    assert again.ok, again.stdout               # the lease the daemon holds
    assert again.json["ips"] == [{"address": ip["address"], "gateway": ip["gateway"]}]

    for _ in range(2):
        rm = run(world, plugin_dir, conf, "DEL", ctr)
        assert rm.ok, rm.stdout + rm.stderr
        assert d.leases() == []
        assert [link["ifname"] for link in ctr.ip_json("link", "show")] == ["lo"]
    if topology == "bridge":
        # bridge removes the veth before it calls IPAM DEL (as the
        # reference's does): no interface is left to send a DHCPRELEASE on
        assert "no DHCPRELEASE sent" in d.text()
    else:
        assert "releasing lease" in d.text()
        if server == "dnsmasq":
            assert dw.wait_for(lambda: srv.leased() == [], 3), srv.text()
            assert srv.saw("DHCPRELEASE")


def test_parallel_adds_and_dels(world, plugin_dir, tmp_path, procs, daemon_factory):
    from concurrent.futures import ThreadPoolExecutor
    lan = dw.make_lan(world, "macvlan")
    srv = dw.start_server("dnsmasq", lan, str(tmp_path))
    procs.append(srv)
    d = daemon_factory()
    ctrs = [world.container(f"dhp{i}") for i in range(4)]
    conf = dw.net_conf("macvlan", d.socket_path)
    with ThreadPoolExecutor(4) as pool:
        adds = list(pool.map(lambda i: run(world, plugin_dir, conf, "ADD", ctrs[i],
                                           container_id=f"p{i}"), range(4)))
    assert all(a.ok for a in adds), [a.stdout for a in adds]
    got = {a.json["ips"][0]["address"] for a in adds}
    assert len(got) == 4 and len(d.leases()) == 4
    assert sorted(srv.leased()) == sorted(a.split("/")[0] for a in got)
    with ThreadPoolExecutor(4) as pool:
        dels = list(pool.map(lambda i: run(world, plugin_dir, conf, "DEL", ctrs[i],
                                           container_id=f"p{i}"), range(4)))
    assert all(r.ok for r in dels), [r.stdout for r in dels]
    assert d.leases() == [] and dw.wait_for(lambda: srv.leased() == [], 3)


@pytest.mark.parametrize("version", ["0.2.0", "0.3.1", "0.4.0", "1.1.0"])
def test_result_versions(world, plugin_dir, tmp_path, procs, daemon_factory, version):
    lan = dw.make_lan(world, "macvlan")
    procs.append(dw.start_server("dnsmasq", lan, str(tmp_path)))
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path, version, priority=42)
    add = run(world, plugin_dir, conf, "ADD", ctr)
    assert add.ok, add.stdout + add.stderr
    assert add.json["cniVersion"] == version
    if version == "0.2.0":
        assert in_pool(add.json["ip4"]["ip"]) and add.json["ip4"]["gateway"] == dw.SERVER_IP
    else:
        assert in_pool(add.json["ips"][0]["address"])
        if version == "1.1.0":
            assert add.json["routes"] == [{"dst": "0.0.0.0/0", "gw": dw.SERVER_IP,
                                           "priority": 42}]
    if version == "1.1.0":
        st = run(world, plugin_dir, conf, "STATUS", None)
        assert st.ok, st.stdout
    assert run(world, plugin_dir, conf, "DEL", ctr).ok
    assert d.leases() == []


def test_renewal_with_a_short_lease(world, plugin_dir, tmp_path, procs, daemon_factory):
    lan = dw.make_lan(world, "macvlan")
    procs.append(dw.start_server("udhcpd", lan, str(tmp_path), lease=4))
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    add = run(world, plugin_dir, conf, "ADD", ctr)
    assert add.ok, add.stdout + add.stderr
    [first] = d.leases()
    assert first["lease_time"] == 4
    # T1 is 2 s: two renewals within 6 s, each moving the lease on
    assert dw.wait_for(lambda: d.text().count("lease renewed") >= 2, 8), d.text()
    [now] = d.leases()
    assert now["bound_at"] > first["bound_at"] and now["address"] == first["address"]
    assert run(world, plugin_dir, conf, "DEL", ctr).ok
    assert d.leases() == []


def test_lease_runs_out_without_a_server(world, plugin_dir, tmp_path, procs, daemon_factory):
    """The server goes away: renewing and rebinding fail, and when the
    lease ends the interface is set down and the lease dropped (as the
    reference does)."""
    lan = dw.make_lan(world, "macvlan")
    srv = dw.start_server("udhcpd", lan, str(tmp_path), lease=4)
    procs.append(srv)
    d = daemon_factory(("-timeout", "1s", "-resendtimeout", "2s"))
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    assert run(world, plugin_dir, conf, "ADD", ctr).ok
    srv.stop()
    assert dw.wait_for(lambda: "bringing interface DOWN" in d.text(), 15), d.text()
    assert "rebinding lease" in d.text()
    assert "UP" not in ctr.link("eth0")["flags"] and d.leases() == []
    chk = run(world, plugin_dir, dict(conf, type="dhcp"), "CHECK", ctr)
    assert not chk.ok and "no DHCP lease" in chk.json["msg"]
    assert run(world, plugin_dir, conf, "DEL", ctr).ok


def test_container_gone_without_del_ends_renewals(world, plugin_dir, tmp_path, procs,
                                                  daemon_factory):
    lan = dw.make_lan(world, "macvlan")
    procs.append(dw.start_server("udhcpd", lan, str(tmp_path), lease=4))
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    assert run(world, plugin_dir, conf, "ADD", ctr).ok
    world.namespaces.remove(ctr)
    assert delete_namespace(ctr.name) is None
    assert dw.wait_for(lambda: "terminating lease maintenance" in d.text(), 8), d.text()
    assert d.leases() == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_daemon_restart_keeps_leases(world, plugin_dir, tmp_path, procs, daemon_factory, how):
    lan = dw.make_lan(world, "macvlan")
    srv = dw.start_server("dnsmasq", lan, str(tmp_path))
    procs.append(srv)
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    add = run(world, plugin_dir, conf, "ADD", ctr)
    assert add.ok, add.stdout + add.stderr
    d.stop(how)
    if how == signal.SIGKILL:           # the socket file is left: the next daemon replaces it
        assert os.path.exists(d.socket_path)
    else:
        assert not os.path.exists(d.socket_path)
    assert len(d.leases()) == 1
    d2 = daemon_factory()
    assert dw.wait_for(lambda: "restored" in d2.text(), 5), d2.text()
    again = run(world, plugin_dir, dict(conf, type="dhcp"), "ADD", ctr)   # the same lease
    assert again.ok and again.json["ips"][0]["address"] == add.json["ips"][0]["address"]
    assert run(world, plugin_dir, dict(conf, prevResult=add.json), "CHECK", ctr).ok
    assert run(world, plugin_dir, conf, "DEL", ctr).ok
    assert d2.leases() == [] and dw.wait_for(lambda: srv.leased() == [], 3)


def test_restart_drops_leases_of_containers_gone_meanwhile(world, plugin_dir, tmp_path, procs,
                                                           daemon_factory):
    lan = dw.make_lan(world, "macvlan")
    procs.append(dw.start_server("dnsmasq", lan, str(tmp_path)))
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    assert run(world, plugin_dir, conf, "ADD", ctr).ok
    d.stop()
    world.namespaces.remove(ctr)
    assert delete_namespace(ctr.name) is None
    d2 = daemon_factory()
    assert dw.wait_for(lambda: "container gone while the daemon was down" in d2.text(), 5)
    assert d2.leases() == []


def test_plugin_killed_mid_add(world, plugin_dir, tmp_path, procs, daemon_factory):
    """The plugin dies while the daemon waits for a server: the daemon
    lives on, and the lease it then gets is released, not kept."""
    lan = dw.make_lan(world, "macvlan")
    d = daemon_factory(("-timeout", "1s", "-resendtimeout", "10s"))
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path, name="dhnet")
    conf_ipam = dict(conf, type="dhcp")         # the IPAM plugin alone, on a macvlan we make
    world.host.run("ip", "link", "add", "dhm0", "link", dw.MASTER, "type", "macvlan")
    world.host.run("ip", "link", "set", "dhm0", "netns", ctr.name)
    ctr.run("ip", "link", "set", "dhm0", "name", "eth0")
    env = world.plugin_env("ADD", [plugin_dir], ctr)
    import json
    proc = subprocess.Popen(["ip", "netns", "exec", world.host.name,
                             os.path.join(plugin_dir, "dhcp")], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdin.write(json.dumps(conf_ipam).encode())
    proc.stdin.close()
    assert dw.wait_for(lambda: "acquiring lease" in d.text(), 5)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    srv = dw.start_server("dnsmasq", lan, str(tmp_path))
    procs.append(srv)
    assert dw.wait_for(lambda: "the plugin left before the answer" in d.text(), 15), d.text()
    assert dw.wait_for(lambda: d.leases() == [], 3)
    assert dw.wait_for(lambda: srv.saw("DHCPRELEASE"), 3), srv.text()
    # the daemon still serves
    st = run(world, plugin_dir, dict(conf, cniVersion="1.1.0"), "STATUS", None)
    assert st.ok, st.stdout
    ctr.run("ip", "link", "del", "eth0")


def test_no_server_fails_in_bounded_time_and_leaves_nothing(world, plugin_dir, tmp_path,
                                                            daemon_factory):
    dw.make_lan(world, "macvlan")
    d = daemon_factory(("-timeout", "1s", "-resendtimeout", "3s"))
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    started = time.monotonic()
    add = run(world, plugin_dir, conf, "ADD", ctr)
    took = time.monotonic() - started
    assert not add.ok and add.error_code() == 999, add.stdout
    assert "no answer from a DHCP server" in add.json["msg"], add.stdout
    assert took < 15
    assert [link["ifname"] for link in ctr.ip_json("link", "show")] == ["lo"]
    assert d.leases() == []
    assert run(world, plugin_dir, conf, "DEL", ctr).ok


def test_nak_fails_and_leaves_nothing(world, plugin_dir, tmp_path, procs, daemon_factory):
    lan = dw.make_lan(world, "macvlan")
    fake = dw.start_fake_server(lan, str(tmp_path), "nak")
    procs.append(fake)
    d = daemon_factory(("-timeout", "1s", "-resendtimeout", "20s"))
    ctr = world.container("dhc1")
    conf = dw.net_conf("macvlan", d.socket_path)
    started = time.monotonic()
    add = run(world, plugin_dir, conf, "ADD", ctr)
    assert time.monotonic() - started < 10
    assert not add.ok and "DHCPNAK" in add.json["msg"], add.stdout
    assert "address not available" in add.json["msg"]
    assert fake.text().count("got DHCPREQUEST") == 3
    assert [link["ifname"] for link in ctr.ip_json("link", "show")] == ["lo"]
    assert d.leases() == []


def test_del_with_netns_gone(world, plugin_dir, tmp_path, procs, daemon_factory):
    lan = dw.make_lan(world, "bridge")
    procs.append(dw.start_server("dnsmasq", lan, str(tmp_path)))
    d = daemon_factory()
    ctr = world.container("dhc1")
    conf = dw.net_conf("bridge", d.socket_path)
    add = run(world, plugin_dir, conf, "ADD", ctr)
    assert add.ok, add.stdout + d.text()
    path = ctr.path
    world.namespaces.remove(ctr)
    assert delete_namespace(ctr.name) is None
    for _ in range(2):
        rm = run(world, plugin_dir, conf, "DEL", path)
        assert rm.ok, rm.stdout + rm.stderr
        assert d.leases() == []


def test_status_without_daemon_is_50(world, plugin_dir, tmp_path):
    conf = dict(dw.net_conf("macvlan", str(tmp_path / "none.sock"), "1.1.0"), type="dhcp")
    st = run(world, plugin_dir, conf, "STATUS", None)
    assert st.error_code() == 50, st.stdout
    assert "error dialing DHCP daemon" in st.json["msg"]
    ctr = world.container("dhc1")
    add = run(world, plugin_dir, dict(conf, type="dhcp"), "ADD", ctr)
    assert add.error_code() == 999 and "error dialing DHCP daemon" in add.json["msg"]


# --- security -----------------------------------------------------------------

def test_socket_is_root_only(world, plugin_dir, tmp_path, daemon_factory):
    d = daemon_factory()
    probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
             "try:\n s.connect(sys.argv[1]); print('connected')\n"
             "except OSError as e: print('refused', e.errno)\n")
    out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          sys.executable, "-c", probe, d.socket_path],
                         capture_output=True, text=True)
    assert out.stdout.startswith("refused"), out.stdout + out.stderr


def test_daemon_closes_connections_from_other_users(world, plugin_dir, procs):
    """Even when the socket's modes let a user in (a careless socket unit,
    say), the daemon answers root only (SO_PEERCRED)."""
    import tempfile
    top = tempfile.mkdtemp(prefix="dh-peercred-")       # a path nobody may traverse
    try:
        os.chmod(top, 0o711)
        d = dw.Daemon(world, os.path.join(plugin_dir, "dhcp"), top, FLAGS)
        procs.append(d)
        os.chmod(os.path.dirname(d.socket_path), 0o711)
        os.chmod(d.socket_path, 0o666)
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\n"
                 "s.connect(sys.argv[1])\nprint(repr(s.recv(100)))\n")
        out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              sys.executable, "-c", probe, d.socket_path],
                             capture_output=True, text=True)
        assert out.stdout.strip() == "b''", out.stdout + out.stderr   # connected, then closed
        assert "connection from uid 65534 refused" in d.text()
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(top, ignore_errors=True)


def test_daemon_refuses_the_host_namespace(world, plugin_dir, tmp_path, daemon_factory):
    dw.make_lan(world, "macvlan")
    d = daemon_factory()
    conf = dict(dw.net_conf("macvlan", d.socket_path), type="dhcp")
    add = world.run_plugin([plugin_dir], "dhcp", "ADD", conf, world.host, ifname=dw.MASTER,
                           extra={"CNI_NETNS_OVERRIDE": "1"})   # past the plugin's own check
    assert not add.ok and "host's own network namespace" in add.json["msg"], add.stdout
    init = world.run_plugin([plugin_dir], "dhcp", "ADD", conf, "/proc/1/ns/net", ifname="lo",
                            extra={"CNI_NETNS_OVERRIDE": "1"})
    assert not init.ok, init.stdout      # refused as the host's, or not even opened
    assert "UP" in world.host.link(dw.MASTER)["flags"] and d.leases() == []
    bad = world.run_plugin([plugin_dir], "dhcp", "ADD", conf, "/etc/passwd")
    assert not bad.ok and bad.error_code() == 4, bad.stdout


def test_plugin_sends_nothing_to_a_socket_that_is_not_the_daemon(world, plugin_dir, tmp_path):
    """ipam.daemonSocketPath is chosen by the config's author: a socket
    that does not greet as our daemon never receives the request."""
    path = str(tmp_path / "other.sock")
    got = []
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(10)
        try:
            got.append(conn.recv(4096))
        except OSError:
            got.append(b"")
        conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    conf = dict(dw.net_conf("macvlan", path), type="dhcp")
    ctr = world.container("dhc1")
    started = time.monotonic()
    add = world.run_plugin([plugin_dir], "dhcp", "ADD", conf, ctr)
    assert time.monotonic() - started < 8
    assert not add.ok and "not a pycni dhcp daemon" in add.stdout or "timed out" in add.stdout
    t.join(10)
    srv.close()
    assert got == [b""]


# --- beside the reference ------------------------------------------------------

REF_DHCP = "/var/cache/pycni-bench/ref-v1.9/bin/dhcp"


def test_result_beside_the_reference(world, plugin_dir, tmp_path, procs, daemon_factory):
    if not os.path.exists(REF_DHCP):
        missing_prerequisite("reference v1.9 plugins not built (bench/build-reference.sh)")
    lan = dw.make_lan(world, "macvlan")
    procs.append(dw.start_server("dnsmasq", lan, str(tmp_path),
                                 extra=["--dhcp-option=121,10.9.0.0/16,10.77.0.1,"
                                        "10.8.0.0/16,0.0.0.0"]))
    ours = daemon_factory()
    ref_tmp = tmp_path / "ref"
    ref_tmp.mkdir(mode=0o700)
    ref = dw.Daemon(world, REF_DHCP, str(ref_tmp), ("-timeout", "2s"), ours=False)
    procs.append(ref)
    refbin = tmp_path / "refbin"
    refbin.mkdir()
    os.symlink(REF_DHCP, refbin / "dhcp")
    os.symlink(os.path.join(plugin_dir, "macvlan"), refbin / "macvlan")
    results = {}
    for label, path, sock in (("ours", [plugin_dir], ours.socket_path),
                              ("ref", [str(refbin)], ref.socket_path)):
        ctr = world.container(f"dh{label}")
        conf = dw.net_conf("macvlan", sock, "1.1.0", priority=7)
        add = world.run_plugin(path, "macvlan", "ADD", conf, ctr)
        assert add.ok, label + add.stdout + add.stderr
        results[label] = add.json
        rm = world.run_plugin(path, "macvlan", "DEL", conf, ctr)
        assert rm.ok, label + rm.stdout
    for r in results.values():
        for ip in r["ips"]:
            ip["address"] = "X"
        r["interfaces"][0]["mac"] = "M"
        r["interfaces"][0]["sandbox"] = "S"
    assert results["ours"] == results["ref"]

    errors = {}
    for label, path, sock in (("ours", [plugin_dir], ours.socket_path),
                              ("ref", [str(refbin)], ref.socket_path)):
        bad = dict(dw.net_conf("macvlan", sock, "1.0.0",
                               request=[{"option": "nonsense"}]), type="dhcp")
        add = world.run_plugin(path, "dhcp", "ADD", bad, world.container(f"dhbad{label}"))
        assert not add.ok
        errors[label] = (add.json["code"], add.json["msg"])
    assert errors["ours"] == errors["ref"]


def test_socket_activation(world, plugin_dir, tmp_path, procs):
    """systemd's socket activation (LISTEN_FDS): the daemon serves the
    socket it is given, as with deploy/dhcp/cni-dhcp.socket."""
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        missing_prerequisite("systemd-socket-activate not installed")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    sock = str(run_dir / "dhcp.sock")
    p = dw.Proc(world.host, [activate, "-l", sock, os.path.join(plugin_dir, "dhcp"), "daemon",
                             "-statedir", str(tmp_path / "state")], str(tmp_path / "act.log"))
    procs.append(p)
    assert dw.wait_for(lambda: os.path.exists(sock), 10), p.text()
    conf = dict(dw.net_conf("macvlan", sock, "1.1.0"), type="dhcp")
    st = run(world, plugin_dir, conf, "STATUS", None)
    assert st.ok, st.stdout + p.text()
    assert "restored" not in p.text() and p.proc.poll() is None


def test_gc_releases_leases_of_attachments_not_valid(world, plugin_dir, tmp_path, procs,
                                                     daemon_factory):
    lan = dw.make_lan(world, "macvlan")
    srv = dw.start_server("dnsmasq", lan, str(tmp_path))
    procs.append(srv)
    d = daemon_factory()
    conf = dw.net_conf("macvlan", d.socket_path, "1.1.0")
    ctrs = [world.container(f"dhg{i}") for i in range(2)]
    for i, ctr in enumerate(ctrs):
        assert run(world, plugin_dir, conf, "ADD", ctr, container_id=f"g{i}").ok
    other = dw.net_conf("macvlan", d.socket_path, "1.1.0", name="othernet")
    ctr3 = world.container("dhg2")
    assert run(world, plugin_dir, other, "ADD", ctr3, container_id="g2").ok
    assert len(d.leases()) == 3
    gc = dict(conf, type="dhcp", **{"cni.dev/valid-attachments": [
        {"containerID": "g0", "ifname": "eth0"}]})
    res = world.run_plugin([plugin_dir], "dhcp", "GC", gc, None)
    assert res.ok, res.stdout
    # g1 of this network is released; g0 and the other network's g2 are kept
    assert sorted(le["client_id"] for le in d.leases()) == ["g0/dhnet/eth0",
                                                            "g2/othernet/eth0"]
    assert dw.wait_for(lambda: len(srv.leased()) == 2, 3)
    for i, (c, ctr) in enumerate(((conf, ctrs[0]), (conf, ctrs[1]), (other, ctr3))):
        assert run(world, plugin_dir, c, "DEL", ctr, container_id=f"g{i}").ok
    assert d.leases() == []
