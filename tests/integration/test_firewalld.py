"""The firewall plugin's firewalld backend against Debian's real firewalld.

Each daemon pair runs inside the test's host namespace only: a private
dbus-daemon (system bus configuration of its own, its socket in a
temporary directory, dropping to messagebus as the machine's bus does)
and firewalld on it (DBUS_SYSTEM_BUS_ADDRESS), in a private mount
namespace with a tmpfs on /run, its configuration a copy of
/etc/firewalld, logging to the console. firewalld then changes the
nftables ruleset of the host namespace, never the machine's. Plugins get
the bus through DBUS_SYSTEM_BUS_ADDRESS, as a runtime on such a node
passes it.

Zone membership is read back with firewall-cmd on the same bus; the
reference v1.9 firewall plugin runs on the same daemon for interop.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from netns_world import World
from pytest_netns import missing_prerequisite

pytestmark = pytest.mark.netns

REF_V19 = "/var/cache/pycni-bench/ref-v1.9/bin/firewall"
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <user>messagebus</user>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
"""


def _prerequisites():
    if os.geteuid() != 0:
        missing_prerequisite("needs root")
    for tool in ("dbus-daemon", "firewalld", "firewall-cmd", "unshare"):
        if not shutil.which(tool):
            missing_prerequisite(f"needs {tool} (apt-get install firewalld dbus-daemon)")


class Daemons:
    """A private system bus and (optionally) firewalld on it, in `ns`."""

    def __init__(self, ns, top: str):
        self.ns, self.top = ns, top
        os.makedirs(top, exist_ok=True)
        os.chmod(top, 0o755)
        self.socket = os.path.join(top, "system_bus_socket")
        self.address = f"unix:path={self.socket}"
        self.bus = self.firewalld = None

    @property
    def env(self) -> dict:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def start_bus(self) -> None:
        conf = os.path.join(self.top, "bus.conf")
        with open(conf, "w") as f:
            f.write(BUS_CONF.format(socket=self.socket))
        self.bus = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, "dbus-daemon", f"--config-file={conf}",
             "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.bus.stdout.readline().decode()
        assert line.startswith("unix:path="), f"dbus-daemon did not start: {line!r}"

    def start_firewalld(self) -> None:
        etc = os.path.join(self.top, "etc-firewalld")
        if not os.path.isdir(etc):
            shutil.copytree("/etc/firewalld", etc, symlinks=True)
        log = open(os.path.join(self.top, "firewalld.log"), "ab")
        script = ('mount -t tmpfs -o mode=0755 pycni-fwd /run && '
                  f'exec firewalld --nofork --nopid --log-target console --system-config {etc}')
        self.firewalld = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, "env", f"DBUS_SYSTEM_BUS_ADDRESS={self.address}",
             "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.firewalld.poll() is not None:
                raise AssertionError(f"firewalld exited: {self.log()}")
            if self.cmd("--state", check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"firewalld did not come up: {self.log()}")

    def log(self) -> str:
        with open(os.path.join(self.top, "firewalld.log"), "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def cmd(self, *args, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ip", "netns", "exec", self.ns.name, "env",
                               f"DBUS_SYSTEM_BUS_ADDRESS={self.address}", "firewall-cmd", *args],
                              capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, f"firewall-cmd {args}: {proc.stdout} {proc.stderr}"
        return proc

    def sources(self, zone="trusted") -> list[str]:
        return self.cmd(f"--zone={zone}", "--list-sources").stdout.split()

    @staticmethod
    def _stop(proc) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_firewalld(self) -> None:
        self._stop(self.firewalld)
        self.firewalld = None

    def stop(self) -> None:
        self.stop_firewalld()
        self._stop(self.bus)
        if self.bus is not None and self.bus.stdout:
            self.bus.stdout.close()
        self.bus = None


@pytest.fixture(scope="module")
def fwd_node(tmp_path_factory):
    """One host namespace with bus and firewalld for the tests that do not stop them."""
    _prerequisites()
    w = World("fwd-shared")
    d = None
    try:
        d = Daemons(w.host, str(tmp_path_factory.mktemp("fwd-daemons")))
        d.start_bus()
        d.start_firewalld()
        yield w, d
    finally:
        if d is not None:
            d.stop()
        w.close()


@pytest.fixture
def own_daemons(world, tmp_path):
    """Bus (and firewalld, started by the test) of one test's own world."""
    _prerequisites()
    d = Daemons(world.host, str(tmp_path / "daemons"))
    try:
        yield world, d
    finally:
        d.stop()


_counter = [0]


def prev_result(version="1.0.0", v6=False) -> dict:
    _counter[0] += 1
    n = _counter[0]
    ips = [{"address": f"10.88.{n}.2/24", "gateway": f"10.88.{n}.1", "interface": 0}]
    if v6:
        ips.append({"address": f"fd00:88:{n}::2/64", "interface": 0})
    if version == "0.4.0":
        for ip in ips:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    return {"cniVersion": version, "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": ips}


def host_cidrs(prev) -> list[str]:
    return [ip["address"].split("/")[0] + ("/128" if ":" in ip["address"] else "/32")
            for ip in prev["ips"]]


def fw_conf(prev=None, version="1.0.0", **keys) -> dict:
    conf = {"cniVersion": version, "name": "fwdnet", "type": "firewall", **keys}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def run(w, plugin_dir, command, conf, d, binary=None, cid="fwdctr", extra=None):
    """One firewall call (ours, or the binary), the container being the
    world's `fwdctr` namespace (the firewall never enters it)."""
    if not hasattr(w, "fwd_ctr"):
        w.fwd_ctr = w.container("fwdctr")
    env = w.plugin_env(command, plugin_dir, w.fwd_ctr, container_id=cid,
                       extra={**(d.env if d else {}), **(extra or {})})
    if binary:
        return w.exec_binary(binary, env, conf)
    return w.exec_plugin("firewall", env, conf)


def ok(r):
    assert r.returncode == 0, f"plugin failed: {r.stdout} {r.stderr}"
    return r.json


def iptables_rules(w) -> list[str]:
    out = w.host.run("iptables-save", "-t", "filter").stdout.decode()
    return [line for line in out.splitlines() if line.startswith("-A ")]


# ------------------------------------------------------------ lifecycle

@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(fwd_node, plugin_dir, version):
    w, d = fwd_node
    prev = prev_result(version, v6=True)
    conf = fw_conf(prev, version, backend="firewalld")
    result = ok(run(w, plugin_dir, "ADD", conf, d))
    assert result["ips"] == prev["ips"] and result["interfaces"] == prev["interfaces"]
    assert set(host_cidrs(prev)) <= set(d.sources())
    ok(run(w, plugin_dir, "CHECK", conf, d))
    ok(run(w, plugin_dir, "ADD", conf, d))          # again: ZONE_ALREADY_SET is fine
    ok(run(w, plugin_dir, "DEL", conf, d))
    assert not set(host_cidrs(prev)) & set(d.sources())
    ok(run(w, plugin_dir, "DEL", conf, d))          # twice
    r = run(w, plugin_dir, "CHECK", conf, d)        # the reference's CHECK would pass here
    assert r.returncode == 1 and r.error_code() == 999
    assert r.json["msg"] == f"failed to find the address {host_cidrs(prev)[0]} in trusted zone"


def test_zone_of_the_config(fwd_node, plugin_dir):
    w, d = fwd_node
    prev = prev_result()
    conf = fw_conf(prev, backend="firewalld", firewalldZone="internal")
    ok(run(w, plugin_dir, "ADD", conf, d))
    assert host_cidrs(prev)[0] in d.sources("internal")
    assert host_cidrs(prev)[0] not in d.sources("trusted")
    ok(run(w, plugin_dir, "CHECK", conf, d))
    r = run(w, plugin_dir, "CHECK", fw_conf(prev, backend="firewalld"), d)
    assert r.returncode == 1 and "in trusted zone" in r.json["msg"]
    ok(run(w, plugin_dir, "DEL", conf, d))
    assert host_cidrs(prev)[0] not in d.sources("internal")


def test_del_without_prev_result_removes_nothing(fwd_node, plugin_dir):
    w, d = fwd_node
    prev = prev_result()
    ok(run(w, plugin_dir, "ADD", fw_conf(prev, backend="firewalld"), d))
    ok(run(w, plugin_dir, "DEL", fw_conf(None, backend="firewalld"), d))
    assert host_cidrs(prev)[0] in d.sources()
    ok(run(w, plugin_dir, "DEL", fw_conf(prev, backend="firewalld"), d))


def test_missing_zone_is_an_error_and_leaves_nothing(fwd_node, plugin_dir):
    w, d = fwd_node
    prev = prev_result(v6=True)
    before = {z: d.sources(z) for z in ("trusted", "public")}
    r = run(w, plugin_dir, "ADD", fw_conf(prev, backend="firewalld", firewalldZone="nosuch"), d)
    assert r.returncode == 1 and r.error_code() == 999
    assert r.json["msg"] == (f"failed to add the address {host_cidrs(prev)[0]} to nosuch zone: "
                             "INVALID_ZONE: nosuch")
    assert {z: d.sources(z) for z in before} == before
    r = run(w, plugin_dir, "CHECK", fw_conf(prev, backend="firewalld", firewalldZone="nosuch"), d)
    assert r.returncode == 1 and "INVALID_ZONE" in r.json["msg"]
    ok(run(w, plugin_dir, "DEL", fw_conf(prev, backend="firewalld", firewalldZone="nosuch"), d))


def test_source_in_another_zone_fails_and_rolls_back(fwd_node, plugin_dir):
    """The second address is already another zone's: ADD fails
    (ZONE_CONFLICT) and takes back the first one it added."""
    w, d = fwd_node
    prev = prev_result(v6=True)
    v4, v6 = host_cidrs(prev)
    d.cmd("--zone=public", f"--add-source={v6}")
    try:
        r = run(w, plugin_dir, "ADD", fw_conf(prev, backend="firewalld"), d)
        assert r.returncode == 1 and "ZONE_CONFLICT" in r.json["msg"], r.stdout
        assert v4 not in d.sources() and v6 in d.sources("public")
        # DEL leaves the other zone's source alone (removeSource refuses: ignored)
        ok(run(w, plugin_dir, "DEL", fw_conf(prev, backend="firewalld"), d))
        assert v6 in d.sources("public")
    finally:
        d.cmd("--zone=public", f"--remove-source={v6}", check=False)


@pytest.mark.parametrize("zone", ["a b", "x" * 18, "/lead", "two/slash/es", "nul\u0000",
                                  "new\nline", ""])
def test_bad_zone_names_never_reach_dbus(fwd_node, plugin_dir, zone):
    w, d = fwd_node
    prev = prev_result()
    conf = fw_conf(prev, backend="firewalld", firewalldZone=zone)
    if zone == "":     # empty is the default, trusted (as the reference)
        ok(run(w, plugin_dir, "ADD", conf, d))
        assert host_cidrs(prev)[0] in d.sources()
        ok(run(w, plugin_dir, "DEL", conf, d))
        return
    for command in ("ADD", "CHECK"):
        r = run(w, plugin_dir, command, conf, d)
        assert r.returncode == 1 and r.error_code() == 7, r.stdout
        assert "invalid firewalldZone" in r.json["msg"]
    ok(run(w, plugin_dir, "DEL", conf, d))


def test_isolation_policy_adds_iptables_isolation_beside_firewalld(fwd_node, plugin_dir):
    """As the reference: same-bridge with firewalld writes the iptables
    isolation chains (no per-address rules)."""
    w, d = fwd_node
    prev = prev_result()
    prev["interfaces"] = [{"name": "fwdbr0"}, {"name": "eth0", "sandbox": "/x"}]
    prev["ips"][0]["interface"] = 1
    conf = fw_conf(prev, backend="firewalld", ingressPolicy="same-bridge")
    ok(run(w, plugin_dir, "ADD", conf, d))
    rules = iptables_rules(w)
    assert any("-A CNI-ISOLATION-STAGE-2 -o fwdbr0" in r for r in rules), rules
    assert not any(host_cidrs(prev)[0] in r for r in rules)
    ok(run(w, plugin_dir, "CHECK", conf, d))
    ok(run(w, plugin_dir, "DEL", conf, d))
    assert host_cidrs(prev)[0] not in d.sources()


# ------------------------------------------------------------ the reference

@pytest.fixture
def ref_v19():
    if not os.access(REF_V19, os.X_OK):
        missing_prerequisite(f"needs the reference v1.9 plugins ({REF_V19})")
    return REF_V19


def test_interop_with_the_reference(fwd_node, plugin_dir, ref_v19):
    w, d = fwd_node
    # theirs ADD, ours CHECK + DEL
    prev = prev_result(v6=True)
    conf = fw_conf(prev, backend="firewalld")
    ok(run(w, plugin_dir, "ADD", conf, d, binary=ref_v19))
    assert set(host_cidrs(prev)) <= set(d.sources())
    ok(run(w, plugin_dir, "CHECK", conf, d))
    ok(run(w, plugin_dir, "DEL", conf, d))
    assert not set(host_cidrs(prev)) & set(d.sources())
    # ours ADD, theirs CHECK + DEL
    prev = prev_result(v6=True)
    conf = fw_conf(prev, backend="firewalld")
    ok(run(w, plugin_dir, "ADD", conf, d))
    ok(run(w, plugin_dir, "CHECK", conf, d, binary=ref_v19))
    ok(run(w, plugin_dir, "DEL", conf, d, binary=ref_v19))
    assert not set(host_cidrs(prev)) & set(d.sources())


def test_same_error_as_the_reference_for_a_missing_zone(fwd_node, plugin_dir, ref_v19):
    w, d = fwd_node
    prev = prev_result()
    conf = fw_conf(prev, backend="firewalld", firewalldZone="nosuch")
    ours, theirs = (run(w, plugin_dir, "ADD", conf, d, binary=b) for b in (None, ref_v19))
    assert ours.returncode == theirs.returncode == 1
    assert ours.json["msg"] == theirs.json["msg"], (ours.stdout, theirs.stdout)


def test_autodetection_picks_firewalld_when_it_runs(fwd_node, plugin_dir, ref_v19):
    w, d = fwd_node
    for binary in (None, ref_v19):
        prev = prev_result()
        conf = fw_conf(prev)            # no backend: podman's generated config
        ok(run(w, plugin_dir, "ADD", conf, d, binary=binary))
        assert host_cidrs(prev)[0] in d.sources()
        assert not any(host_cidrs(prev)[0] in r for r in iptables_rules(w))
        ok(run(w, plugin_dir, "CHECK", conf, d, binary=binary))
        ok(run(w, plugin_dir, "DEL", conf, d, binary=binary))
        assert host_cidrs(prev)[0] not in d.sources()


# ------------------------------------------------------------ without firewalld

def test_autodetection_without_firewalld_uses_iptables(own_daemons, plugin_dir, ref_v19):
    """A bus without firewalld, and no bus at all: both implementations
    write the iptables rules."""
    w, d = own_daemons
    d.start_bus()
    for env in (d.env, {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/pycni-fwd.sock"}):
        for binary in (None, ref_v19):
            prev = prev_result()
            ip = host_cidrs(prev)[0]
            conf = fw_conf(prev)
            ok(run(w, plugin_dir, "ADD", conf, None, binary=binary, extra=env))
            assert f"-A CNI-FORWARD -s {ip} -j ACCEPT" in iptables_rules(w)
            ok(run(w, plugin_dir, "CHECK", conf, None, binary=binary, extra=env))
            ok(run(w, plugin_dir, "DEL", conf, None, binary=binary, extra=env))
            assert not any(ip in r for r in iptables_rules(w))


def test_del_with_the_daemon_gone(own_daemons, plugin_dir, ref_v19):
    """firewalld stopped (its runtime sources go with it): DEL succeeds,
    ours and the reference's (removeSource errors are ignored). With the
    bus gone too ours still succeeds; the reference fails to connect."""
    w, d = own_daemons
    d.start_bus()
    d.start_firewalld()
    prevs = [prev_result(), prev_result()]
    for prev in prevs:
        ok(run(w, plugin_dir, "ADD", fw_conf(prev, backend="firewalld"), d))
    d.stop_firewalld()
    ok(run(w, plugin_dir, "DEL", fw_conf(prevs[0], backend="firewalld"), d))
    ok(run(w, plugin_dir, "DEL", fw_conf(prevs[1], backend="firewalld"), d, binary=ref_v19))
    r = run(w, plugin_dir, "ADD", fw_conf(prev_result(), backend="firewalld"), d)
    assert r.returncode == 1 and r.error_code() == 999
    assert "org.fedoraproject.FirewallD1" in r.json["msg"]
    d.stop()
    ok(run(w, plugin_dir, "DEL", fw_conf(prevs[0], backend="firewalld"), d))
    theirs = run(w, plugin_dir, "DEL", fw_conf(prevs[0], backend="firewalld"), d,
                 binary=ref_v19)
    assert theirs.returncode == 1, theirs.stdout     # documented difference
    r = run(w, plugin_dir, "ADD", fw_conf(prev_result(), backend="firewalld"), d)
    assert r.returncode == 1 and r.error_code() == 999
    assert r.json["msg"].startswith("failed to connect to the system bus (firewalld)")


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_a_bus_not_served_by_root_is_not_used(own_daemons, plugin_dir, kind):
    """A local user's socket named as the bus (in /tmp, or an abstract
    name any user may bind): never authenticated to, no firewalld found,
    iptables chosen; with backend firewalld, a clear error."""
    w, d = own_daemons
    code = ("import socket,sys,time\n"
            "name=sys.argv[1]\n"
            "name='\\0'+name[1:] if name.startswith('@') else name\n"
            "s=socket.socket(socket.AF_UNIX); s.bind(name); s.listen(8)\n"
            "print('ready', flush=True)\n"
            "c,_=s.accept(); data=c.recv(100); print('GOT', data, flush=True)\n")
    top = tempfile.mkdtemp(prefix="fwd-user-")      # a directory the user may write
    os.chmod(top, 0o777)
    sock = os.path.join(top, "fake.sock") if kind == "path" else f"@pycni-fwd-{os.getpid()}"
    fake = subprocess.Popen(["ip", "netns", "exec", w.host.name, "setpriv", "--reuid=nobody",
                             "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c",
                             code, sock], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert fake.stdout.readline().strip() == b"ready"
        env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}" if kind == "path"
               else f"unix:abstract={sock[1:]}"}
        prev = prev_result()
        r = run(w, plugin_dir, "ADD", fw_conf(prev, backend="firewalld"), None, extra=env)
        assert r.returncode == 1 and "not root" in r.json["msg"], r.stdout
        ok(run(w, plugin_dir, "ADD", fw_conf(prev), None, extra=env))   # detection: iptables
        assert f"-A CNI-FORWARD -s {host_cidrs(prev)[0]} -j ACCEPT" in iptables_rules(w)
        ok(run(w, plugin_dir, "DEL", fw_conf(prev), None, extra=env))
    finally:
        fake.kill()
        out = fake.communicate(timeout=10)[0]
        shutil.rmtree(top, ignore_errors=True)
    assert b"GOT" not in out or b"GOT b''" in out, out     # nothing was sent to it


@pytest.mark.parametrize("address", ["unixexec:path=/bin/sh,argv1=-c,argv2=touch%20/tmp/x",
                                     "autolaunch:", "tcp:host=127.0.0.1,port=1"])
def test_transports_that_run_programs_or_leave_the_host_are_not_used(world, plugin_dir,
                                                                     address, tmp_path):
    marker = tmp_path / "ran"
    address = address.replace("/tmp/x", str(marker))
    prev = prev_result()
    r = run(world, plugin_dir, "ADD", fw_conf(prev, backend="firewalld"), None,
            extra={"DBUS_SYSTEM_BUS_ADDRESS": address})
    assert r.returncode == 1 and "transport not used" in r.json["msg"], r.stdout
    assert not marker.exists()
    ok(run(world, plugin_dir, "DEL", fw_conf(prev, backend="firewalld"), None,
           extra={"DBUS_SYSTEM_BUS_ADDRESS": address}))


# ------------------------------------------------------------ a chain

def test_bridge_chain_through_cnitool_detects_firewalld(fwd_node, plugin_dir, tmp_path):
    """bridge + host-local, then firewall without a backend (podman's
    shape), run by pycni's cnitool with the bus in its environment: the
    container's address joins the zone, CHECK passes, DEL takes it out."""
    w, d = fwd_node
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    (netconf / "10-fwd.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "fwdchain",
        "plugins": [
            {"type": "bridge", "bridge": "fwdbr1", "isGateway": True,
             "ipam": {"type": "host-local", "subnet": "10.87.0.0/24",
                      "dataDir": str(tmp_path / "ipam")}},
            {"type": "firewall"},
        ]}))
    ctr = w.container("fwdchain")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"], "NETCONFPATH": str(netconf),
           "CNI_PATH": plugin_dir, "CNI_CACHE_DIR": str(tmp_path / "cache"),
           "CNI_CONTAINERID": "fwdchain1", **d.env}
    cnitool = os.path.join(os.path.dirname(sys.executable), "cnitool")

    def tool(*args):
        proc = w.host.run(cnitool, *args, "fwdchain", ctr.path, check=False, env=env)
        assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    result = tool("add")
    ip = result["ips"][0]["address"].split("/")[0]
    assert f"{ip}/32" in d.sources()
    assert not any(ip in r for r in iptables_rules(w))
    assert ctr.pings("10.87.0.1")
    tool("check")
    tool("del")
    assert f"{ip}/32" not in d.sources()
    tool("del")
