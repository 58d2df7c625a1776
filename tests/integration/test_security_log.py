"""Issue #11, findings 1, 5 and 11, with real plugin processes exec'ed in a
test world (and the reference Go plugins, /usr/lib/cni, side by side).

1. No config alone chooses a file to write: logs go only into the log
   directory root names (PYCNI_LOG_DIR, or logDir in /etc/cni/pycni.conf),
   never through a symlink, never into a FIFO or onto stdout, mode 0600
   whatever the umask, and config text on a line is escaped.
5. Keys that differ in case: the last one wins, as in Go (host-local's
   dataDir/DataDir and name/Name write where the reference writes).
11. Nesting up to Go's 10,000 levels works end to end, deeper is code 6;
   an MTU the kernel cannot take is code 7, leaving nothing behind.
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from netns_world import sh

pytestmark = pytest.mark.netns

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def loopback_conf(**extra):
    return {"cniVersion": "1.0.0", "name": "lo-net", "type": "loopback", **extra}


def single_json(text: str):
    doc, end = json.JSONDecoder().raw_decode(text.strip())
    assert end == len(text.strip()), f"more than one JSON document on stdout: {text!r}"
    return doc


def only_result(run) -> dict:
    """ADD succeeded and stdout is exactly the result JSON."""
    assert run.returncode == 0, run.stdout + run.stderr
    doc = single_json(run.stdout)
    assert doc["cniVersion"] == "1.0.0" and "code" not in doc, doc
    return doc


@pytest.fixture
def logdir(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    d.chmod(0o755)
    return d


def lo_add(world, plugin_dir, ctr, config, env=None):
    return world.run_plugin(plugin_dir, "loopback", "ADD", config, ctr, ifname="lo",
                            extra=env or {})


# --- finding 1: logFile ------------------------------------------------------------

def test_logfile_without_log_directory_writes_nothing(world, plugin_dir, tmp_path):
    """Regression: `logFile` alone appended to any file as root (a shell
    start-up file became code execution)."""
    ctr = world.container()
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("# root's rc\n")
    missing = tmp_path / "created-by-plugin.log"
    for target in (bashrc, missing):
        run = lo_add(world, plugin_dir, ctr, loopback_conf(logFile=str(target),
                                                           logLevel="debug"))
        only_result(run)
        assert "logFile" in run.stderr and "ignored" in run.stderr
    assert bashrc.read_text() == "# root's rc\n"
    assert not missing.exists()


def test_logfile_is_confined_to_the_log_directory(world, plugin_dir, tmp_path, logdir):
    ctr = world.container()
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    (logdir / "planted").symlink_to(victim)
    (logdir / "out").symlink_to("/dev/stdout")
    env = {"PYCNI_LOG_DIR": str(logdir)}
    for target in (str(tmp_path / "outside.log"), str(victim), "planted", "out",
                   "/dev/stdout", "../outside.log", f"{logdir}/../outside.log"):
        run = lo_add(world, plugin_dir, ctr, loopback_conf(logFile=target), env)
        only_result(run)      # the operation is unaffected, stdout untouched
        assert "pycni:" in run.stderr, target
    assert victim.read_text() == "root's file\n"
    assert not (tmp_path / "outside.log").exists()
    assert sorted(os.listdir(logdir)) == ["out", "planted", "pycni.log"]
    # names outside the dir fall back to pycni.log; the two symlinks are
    # names in it, refused when opened: their operations log nothing
    assert len((logdir / "pycni.log").read_text().splitlines()) == 5


def test_fifo_in_log_directory_does_not_hang(world, plugin_dir, logdir):
    """Regression: a FIFO as logFile hung the plugin until killed."""
    ctr = world.container()
    os.mkfifo(logdir / "fifo")
    env = world.plugin_env("ADD", plugin_dir, ctr, ifname="lo",
                           extra={"PYCNI_LOG_DIR": str(logdir)})
    proc = sh(os.path.join(plugin_dir, "loopback"), netns=world.host.name, check=False,
              input=json.dumps(loopback_conf(logFile="fifo")).encode(), env=env, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert single_json(proc.stdout.decode())["cniVersion"] == "1.0.0"
    assert b"not a regular file" in proc.stderr


def test_log_file_is_0600_under_umask_000(world, plugin_dir, logdir, tmp_path):
    ctr = world.container()
    wrapper = tmp_path / "loopback-umask-000"
    wrapper.write_text(f"#!/bin/sh\numask 000\nexec {os.path.join(plugin_dir, 'loopback')}\n")
    wrapper.chmod(0o755)
    env = world.plugin_env("ADD", plugin_dir, ctr, ifname="lo",
                           extra={"PYCNI_LOG_DIR": str(logdir)})
    only_result(world.exec_binary(str(wrapper), env, loopback_conf(logFile="ops.log")))
    st = os.stat(logdir / "ops.log")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0


def test_ipam_type_with_newline_and_substitution_is_one_inert_line(world, plugin_dir,
                                                                     logdir, tmp_path):
    """Regression: an ipam.type quoted in an error message landed on the
    log line as is; a `$(...)` in it ran when a shell read the file."""
    ctr = world.container()
    pwned = tmp_path / "pwned"
    evil = f"x\n$(touch {pwned})`touch {pwned}`;touch {pwned}"
    config = {"cniVersion": "1.0.0", "name": "evilnet", "type": "bridge", "bridge": "brlog0",
              "ipam": {"type": evil}, "logLevel": "debug"}
    run = world.run_plugin(plugin_dir, "bridge", "ADD", config, ctr,
                           extra={"PYCNI_LOG_DIR": str(logdir)})
    assert run.returncode != 0
    err = single_json(run.stdout)
    assert isinstance(err["code"], int) and err["code"] != 999, err
    text = (logdir / "pycni.log").read_bytes()
    assert text.count(b"\n") == 1, text
    for meta in (b"$", b"`", b";", b"(", b")"):
        assert meta not in text
    # a shell sourcing the log runs nothing of it
    subprocess.run(["sh", str(logdir / "pycni.log")], capture_output=True, timeout=20,
                   cwd=tmp_path)
    assert not pwned.exists()
    line = text.decode()
    assert json.loads(line.split(" config=", 1)[1])["ipam"]["type"] == evil


def test_symlink_planted_by_nobody_in_a_shared_directory(world, plugin_dir):
    """A log directory others can write to (here 1777, like /tmp) is refused:
    nobody's planted symlink is never followed, root's file is untouched."""
    world.host
    base = tempfile.mkdtemp(prefix="pycni-log-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        shared = os.path.join(base, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        victim = os.path.join(base, "precious")
        with open(victim, "w") as f:
            f.write("root's data\n")
        proc = world.host.run(*NOBODY, "ln", "-s", victim, os.path.join(shared, "pycni.log"),
                              check=False)
        assert proc.returncode == 0, proc.stderr
        ctr = world.container()
        run = lo_add(world, plugin_dir, ctr, loopback_conf(), {"PYCNI_LOG_DIR": shared})
        only_result(run)
        assert "owned by root and not writable by group or others" in run.stderr
        assert open(victim).read() == "root's data\n"
        assert os.listdir(shared) == ["pycni.log"]
    finally:
        shutil.rmtree(base)


@pytest.fixture
def with_node_conf(world, plugin_dir, tmp_path):
    """Run our loopback with /etc/cni/pycni.conf as the test makes it, in a
    private mount namespace (an overlay on /etc): the machine's /etc is
    never touched."""
    def run(make, config, ctr):
        layer = tmp_path / "etc-layer"
        shutil.rmtree(layer, ignore_errors=True)
        (layer / "cni").mkdir(parents=True)
        make(layer / "cni" / "pycni.conf")
        wrapper = tmp_path / "loopback-with-conf"
        wrapper.write_text(
            "#!/bin/sh\n"
            "exec unshare -m --propagation private /bin/sh -c "
            "'mount -t overlay overlay -o lowerdir=\"$0\":/etc /etc && exec \"$1\"' "
            f"'{layer}' '{os.path.join(plugin_dir, 'loopback')}'\n")
        wrapper.chmod(0o755)
        env = world.plugin_env("ADD", [plugin_dir], ctr, ifname="lo")
        return world.exec_binary(str(wrapper), env, config)
    return run


def test_node_conf_names_the_log_directory(world, with_node_conf, logdir, tmp_path):
    ctr = world.container()
    text = json.dumps({"logDir": str(logdir), "logLevel": "debug"})

    def good(path):
        path.write_text(text)
        path.chmod(0o644)

    run = with_node_conf(good, loopback_conf(logFile="lo.log"), ctr)
    only_result(run)
    assert run.stderr == ""
    (line,) = (logdir / "lo.log").read_text().splitlines()
    assert " loopback ADD net=lo-net " in line and " config=" in line

    real = tmp_path / "real.conf"
    real.write_text(text)

    def symlink(path):
        path.symlink_to(real)

    def group_writable(path):
        good(path)
        path.chmod(0o664)

    def nobodys(path):
        good(path)
        os.chown(path, 65534, 65534)

    for make in (symlink, group_writable, nobodys):
        run = with_node_conf(make, loopback_conf(), ctr)
        only_result(run)
        assert "pycni.conf ignored" in run.stderr, run.stderr
    assert os.listdir(logdir) == ["lo.log"]


# --- finding 5: duplicate keys that differ in case --------------------------------

HL_NET = "hlcase"


def host_local_run(world, cni_path, command, text, cid="c1"):
    return world.run_plugin(cni_path, "host-local", command, text, "/run/netns/none",
                            container_id=cid)


def stores(root):
    """The allocation files (named by address) below `root`: net/ip -> content.
    Private state (dot-directories, lock, last_reserved_ip.*) is skipped."""
    import ipaddress
    out = {}
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for n in names:
            try:
                ipaddress.ip_address(n)
            except ValueError:
                continue
            full = os.path.join(dirpath, n)
            out[os.path.relpath(full, root)] = open(full).read()
    return out


@pytest.mark.parametrize("keys", [
    '"dataDir":"{d}/a","DataDir":"{d}/b"',
    '"DataDir":"{d}/a","dataDir":"{d}/b"',
    '"dataDir":"{d}/a","DATADIR":"{d}/x","dataDir":"{d}/b"',
    '"DataDir":"{d}/a","dataDir":"{d}/x","DataDir":"{d}/b"',
])
def test_host_local_data_dir_last_match_as_reference(world, plugin_dir, ref_dir,
                                                      tmp_path, keys):
    """Regression: our host-local wrote its store where no Go tool looks."""
    got = {}
    for impl, cni_path in (("ours", plugin_dir), ("ref", ref_dir)):
        d = tmp_path / impl
        text = ('{"cniVersion":"1.0.0","name":"' + HL_NET + '","type":"bridge",'
                '"ipam":{"type":"host-local","subnet":"10.66.0.0/24",'
                + keys.replace("{d}", str(d)) + "}}")
        run = host_local_run(world, cni_path, "ADD", text)
        assert run.ok, run.stdout + run.stderr
        got[impl] = (run.json["ips"], stores(d))
        assert host_local_run(world, cni_path, "DEL", text).ok
        assert stores(d) == {}
    assert got["ours"] == got["ref"]
    assert list(got["ours"][1]) == [f"b/{HL_NET}/10.66.0.2"]


def test_host_local_name_and_nested_keys_as_reference(world, plugin_dir, ref_dir, tmp_path):
    got = {}
    for impl, cni_path in (("ours", plugin_dir), ("ref", ref_dir)):
        d = tmp_path / impl
        text = ('{"cniVersion":"1.0.0","name":"first","Name":"second","type":"bridge",'
                '"ipam":{"type":"host-local","dataDir":"' + str(d) + '",'
                '"ranges":[[{"subnet":"10.61.0.0/24","Subnet":"10.62.0.0/24"}]],'
                '"routes":[{"dst":"0.0.0.0/0","Dst":"10.9.0.0/16"}]}}')
        run = host_local_run(world, cni_path, "ADD", text)
        assert run.ok, run.stdout + run.stderr
        result = run.json
        if result.get("dns") == {}:
            del result["dns"]     # the reference (1.1.1) prints an empty dns
        got[impl] = (result, sorted(stores(d)))
        assert host_local_run(world, cni_path, "DEL", text).ok
    assert got["ours"] == got["ref"]
    result, files = got["ours"]
    assert files == ["second/10.62.0.2"]
    assert result["routes"] == [{"dst": "10.9.0.0/16"}]


# --- finding 11: nesting, MTU -----------------------------------------------------

def deep_text(depth: int, config: dict) -> str:
    """`config` plus a key holding arrays nested so that the document is
    `depth` containers deep."""
    head = json.dumps(config)[:-1]
    return head + ',"deep":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_nesting_limit_matches_go(world, request, impl):
    cni_path = request.getfixturevalue("plugin_dir" if impl == "ours" else "ref_dir")
    ctr = world.container()
    run = world.run_plugin(cni_path, "loopback", "ADD",
                           deep_text(10000, loopback_conf()), ctr, ifname="lo")
    assert run.ok, run.stdout[:500] + run.stderr[-500:]
    run = world.run_plugin(cni_path, "loopback", "DEL",
                           deep_text(10001, loopback_conf()), ctr, ifname="lo")
    assert run.returncode != 0
    if impl == "ours":
        err = single_json(run.stdout)
        assert err["code"] == 6 and "max depth" in err["details"], err


@pytest.mark.parametrize("exec_delegates", ["0", "1"])
def test_deep_config_through_bridge_and_host_local(world, plugin_dir, tmp_path, logdir,
                                                   exec_delegates):
    """Regression: ~1,000 levels gave a bare 999. 10,000 go through the
    bridge, its host-local delegate (in-process or exec'ed) and the debug
    log; 10,001 are refused before anything is created."""
    ctr = world.container()
    data = tmp_path / "data"
    config = {"cniVersion": "1.0.0", "name": "deepnet", "type": "bridge",
              "bridge": "brdeep0", "logLevel": "debug",
              "ipam": {"type": "host-local", "subnet": "10.67.0.0/24",
                       "dataDir": str(data)}}
    env = {"PYCNI_LOG_DIR": str(logdir), "PYCNI_EXEC_DELEGATES": exec_delegates}
    run = world.run_plugin(plugin_dir, "bridge", "ADD", deep_text(10000, config), ctr,
                           extra=env)
    assert run.ok, run.stdout[:500] + run.stderr[-500:]
    assert run.json["ips"][0]["address"] == "10.67.0.2/24"
    run = world.run_plugin(plugin_dir, "bridge", "DEL", deep_text(10000, config), ctr,
                           extra=env)
    assert run.ok, run.stdout[:500] + run.stderr[-500:]
    world.host.run("ip", "link", "del", "brdeep0")
    logged = (logdir / "pycni.log").read_text().splitlines()
    assert all(" ok " in line for line in logged) and len(logged) == 4

    run = world.run_plugin(plugin_dir, "bridge", "ADD", deep_text(10001, config), ctr,
                           extra=env)
    assert single_json(run.stdout)["code"] == 6
    assert world.host.run("ip", "link", "show", "brdeep0", check=False).returncode != 0
    assert stores(data) == {}


# (a negative mtu is accepted with a warning, as the reference takes it:
# tests/integration/test_interop_configs.py)
@pytest.mark.parametrize("mtu", [1 << 32, 1 << 31, 70000, 65536])
def test_bridge_mtu_out_of_range_is_code_7_and_leaves_nothing(world, plugin_dir, mtu):
    """Regression: an MTU of 2**32 gave a bare 999 (struct.error)."""
    ctr = world.container()
    config = {"cniVersion": "1.0.0", "name": "mtunet", "type": "bridge",
              "bridge": "brmtu0", "mtu": mtu}
    run = world.run_plugin(plugin_dir, "bridge", "ADD", config, ctr)
    err = single_json(run.stdout)
    assert err["code"] == 7 and "MTU" in err["msg"], err
    assert world.host.run("ip", "link", "show", "brmtu0", check=False).returncode != 0
    assert ctr.run("ip", "link", "show", "eth0", check=False).returncode != 0
    run = world.run_plugin(plugin_dir, "bridge", "DEL", config, ctr)
    assert run.returncode == 0 or single_json(run.stdout)["code"] == 7


def test_macvlan_and_tuning_mtu_beyond_u32_is_code_7(world, plugin_dir, tmp_path):
    ctr = world.container()
    world.host.run("ip", "link", "add", "mst9", "type", "veth", "peer", "name", "mst9p")
    world.host.run("ip", "link", "set", "mst9", "up")
    for mtu in (1 << 32, 1 << 40):
        run = world.run_plugin(plugin_dir, "macvlan", "ADD",
                               {"cniVersion": "1.0.0", "name": "mv", "type": "macvlan",
                                "master": "mst9", "mtu": mtu}, ctr)
        assert single_json(run.stdout)["code"] == 7, run.stdout
        assert ctr.run("ip", "link", "show", "eth0", check=False).returncode != 0
        prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "lo", "sandbox": ctr.path}]}
        run = world.run_plugin(plugin_dir, "tuning", "ADD",
                               {"cniVersion": "1.0.0", "name": "tn", "type": "tuning",
                                "mtu": mtu, "dataDir": str(tmp_path / "tuning"),
                                "prevResult": prev}, ctr, ifname="lo")
        assert single_json(run.stdout)["code"] == 7, run.stdout
