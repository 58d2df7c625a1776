"""tuning against the real kernel, exec'ed as a runtime execs it.

The interface to tune is a veth pair made inside the container namespace
(eth0 and its peer), described by a prevResult as the chain head would
return it; one test uses the reference bridge + host-local as the real
chain head. Backups go to a per-test dataDir. The reference tuning
(Debian v1.1.1, which predates txQLen) runs the same configs for
comparison.
"""

import json
import os
import stat

import pytest
from netns_world import delete_namespace

pytestmark = pytest.mark.netns

NET = "tnet"
ORIG_MAC = "02:00:00:00:aa:01"
NEW_MAC = "02:00:00:00:bb:02"


@pytest.fixture
def cni_path(plugin_dir):
    return [plugin_dir]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "tuning")


def make_container(world, label="c1", ifname="eth0"):
    """A container whose `ifname` is one end of a veth pair (peer `peer0`)."""
    ctr = world.container(label)
    ctr.run("ip", "link", "add", ifname, "address", ORIG_MAC, "mtu", "1500", "txqueuelen",
            "1000", "type", "veth", "peer", "name", "peer0")
    ctr.run("ip", "link", "set", ifname, "up")
    ctr.run("ip", "link", "set", "peer0", "up")
    return ctr


def prev_result(ctr, version="1.0.0", ifname="eth0") -> dict:
    result = {"cniVersion": version,
              "interfaces": [{"name": "host-side", "mac": "02:00:00:00:00:ff"},
                             {"name": ifname, "mac": ORIG_MAC, "sandbox": ctr.path}],
              "ips": [{"address": "10.99.0.2/24", "interface": 1}],
              "dns": {}}
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        result["ips"][0]["version"] = "4"
    return result


def conf(data_dir, version="1.0.0", prev=None, **keys) -> dict:
    c = {"cniVersion": version, "name": NET, "type": "tuning", "dataDir": data_dir}
    c.update(keys)
    if prev is not None:
        c["prevResult"] = prev
    return c


FULL = dict(sysctl={"net.ipv4.conf.IFNAME.rp_filter": "2", "net.core.somaxconn": "512"},
            mac=NEW_MAC, mtu=1400, promisc=True, allmulti=True, txQLen=500)


def link_state(ctr, ifname="eth0") -> dict:
    link = ctr.link(ifname)
    return {"mac": link["address"], "mtu": link["mtu"], "txqlen": link["txqlen"],
            "promisc": "PROMISC" in link["flags"], "allmulti": "ALLMULTI" in link["flags"]}


ORIGINAL = {"mac": ORIG_MAC, "mtu": 1500, "txqlen": 1000, "promisc": False,
            "allmulti": False}


def sysctl(ctr, key: str) -> str:
    return ctr.run("cat", "/proc/sys/" + key.replace(".", "/")).stdout.decode().strip()


def ok(run) -> dict | None:
    assert run.ok, run.stdout + run.stderr
    return run.json


def backups(data_dir) -> list[str]:
    return sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []


# --- lifecycle ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(world, cni_path, data_dir, version):
    ctr = make_container(world)
    host_somaxconn = sysctl(world.host, "net.core.somaxconn")
    prev = prev_result(ctr, version)
    config = conf(data_dir, version, prev, **FULL)
    result = ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    assert sysctl(world.host, "net.core.somaxconn") == host_somaxconn   # plugin's own netns

    expected = json.loads(json.dumps(prev))
    expected["interfaces"][1]["mac"] = NEW_MAC      # only the tuned interface
    if version not in ("0.3.1", "0.4.0"):
        del expected["dns"]                         # empty dns is omitted in 1.x
    assert result == expected
    assert link_state(ctr) == {"mac": NEW_MAC, "mtu": 1400, "txqlen": 500,
                               "promisc": True, "allmulti": True}
    assert sysctl(ctr, "net.ipv4.conf.eth0.rp_filter") == "2"
    assert sysctl(ctr, "net.core.somaxconn") == "512"

    # the reference's backup format
    path = os.path.join(data_dir, "ctr1_eth0.json")
    with open(path) as f:
        assert f.read() == ('{\n "mac": "02:00:00:00:aa:01",\n "promisc": false,\n'
                            ' "mtu": 1500,\n "allmulti": false,\n "txQLen": 1000\n}')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    if version != "0.3.1":
        ok(world.run_plugin(cni_path, "tuning", "CHECK", dict(config, prevResult=result), ctr))

    for _ in range(2):
        ok(world.run_plugin(cni_path, "tuning", "DEL", dict(config, prevResult=result), ctr))
        assert link_state(ctr) == ORIGINAL
        assert backups(data_dir) == []


def test_sysctl_only_needs_no_link_and_no_backup(world, cni_path, data_dir):
    ctr = world.container("c1")          # no eth0 at all
    prev = prev_result(ctr)
    config = conf(data_dir, prev=prev, sysctl={"net.core.somaxconn": "300"})
    assert ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr)) == \
        {k: v for k, v in prev.items() if k != "dns"}
    assert sysctl(ctr, "net.core.somaxconn") == "300"
    assert backups(data_dir) == []
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, ctr))


def test_podman_entry_passes_result_through(world, cni_path):
    """podman ends its generated chain with a bare tuning entry (0.4.0)."""
    ctr = make_container(world)
    prev = prev_result(ctr, "0.4.0")
    config = {"cniVersion": "0.4.0", "name": NET, "type": "tuning", "prevResult": prev}
    assert ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr,
                               args="IgnoreUnknown=1;K8S_POD_NAME=p")) == prev
    assert link_state(ctr) == ORIGINAL
    ok(world.run_plugin(cni_path, "tuning", "CHECK", config, ctr))
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, ctr))


def test_settings_from_args_and_cni_args(world, cni_path, data_dir):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), mac="02:00:00:00:00:01", mtu=1400,
                  runtimeConfig={"mac": "02:00:00:00:00:03"},
                  args={"cni": {"mtu": 1300, "txQLen": 42,
                                "sysctl": {"net.core.somaxconn": "222"}}})
    result = ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr,
                                 args="IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:00:00:00:00:02"))
    assert result["interfaces"][1]["mac"] == "02:00:00:00:00:03"
    state = link_state(ctr)
    assert (state["mac"], state["mtu"], state["txqlen"]) == ("02:00:00:00:00:03", 1300, 42)
    assert sysctl(ctr, "net.core.somaxconn") == "222"
    ok(world.run_plugin(cni_path, "tuning", "CHECK", dict(config, prevResult=result), ctr,
                        args="IgnoreUnknown=1;MAC=02:00:00:00:00:02"))
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, ctr))
    assert link_state(ctr) == ORIGINAL


def test_mac_from_cni_args(world, cni_path, data_dir):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr))
    result = ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr,
                                 args="IgnoreUnknown=1;MAC=02-00-00-00-00-0A"))
    assert result["interfaces"][1]["mac"] == "02:00:00:00:00:0a"
    assert link_state(ctr)["mac"] == "02:00:00:00:00:0a"
    unknown = world.run_plugin(cni_path, "tuning", "ADD", config, ctr, args="FOO=1")
    assert unknown.error_code() == 4


# --- CHECK ----------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (("ip", "link", "set", "eth0", "mtu", "1450"),
     "Error: Tuning configured MTU of eth0 is 1400, current value is 1450"),
    (("ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"),
     "Error: Tuning configured Ethernet of eth0 is 02:00:00:00:bb:02, "
     "current value is 02:00:00:00:00:99"),
    (("ip", "link", "set", "eth0", "promisc", "off"),
     "Error: Tuning link eth0 configured promisc is true, current value is 0"),
    (("ip", "link", "set", "eth0", "allmulticast", "off"),
     "Error: Tuning configured all-multicast mode of eth0 is true, current value is false"),
    (("ip", "link", "set", "eth0", "txqueuelen", "7"),
     "Error: Tuning configured Transmit Queue Length of eth0 is 500, current value is 7"),
    (("sh", "-c", "echo 100 > /proc/sys/net/core/somaxconn"),
     "Error: Tuning configured value of /proc/sys/net/core/somaxconn is 512, "
     "current value is 100"),
    # the per-interface sysctl is read first
    (("ip", "link", "del", "eth0"), "cannot read sysctl /proc/sys/net/ipv4/conf/eth0/rp_filter"),
])
def test_check_notices_changes(world, cni_path, data_dir, change, message):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), **FULL)
    result = ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    config["prevResult"] = result
    ok(world.run_plugin(cni_path, "tuning", "CHECK", config, ctr))
    ctr.run(*change)
    run = world.run_plugin(cni_path, "tuning", "CHECK", config, ctr)
    assert not run.ok
    assert run.json["msg"] == message


def test_check_needs_prev_result(world, cni_path, data_dir):
    ctr = make_container(world)
    run = world.run_plugin(cni_path, "tuning", "CHECK", conf(data_dir), ctr)
    assert run.error_code() == 7 and run.json["msg"] == "Required prevResult missing"


def test_check_promisc_off_expected_by_default(world, cni_path, data_dir):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr))
    ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    ok(world.run_plugin(cni_path, "tuning", "CHECK", config, ctr))
    ctr.run("ip", "link", "set", "eth0", "name", "eth1")
    run = world.run_plugin(cni_path, "tuning", "CHECK", config, ctr)
    assert run.json["msg"] == "Cannot find container link eth0"
    ctr.run("ip", "link", "set", "eth1", "name", "eth0")
    ctr.run("ip", "link", "set", "eth0", "promisc", "on")
    run = world.run_plugin(cni_path, "tuning", "CHECK", config, ctr)
    assert run.json["msg"] == "Error: Tuning link eth0 configured promisc is false, " \
                              "current value is 1"


# --- DEL ------------------------------------------------------------------------

def test_del_with_vanished_or_empty_netns(world, cni_path, data_dir):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), mtu=1400)
    ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    assert backups(data_dir) == ["ctr1_eth0.json"]
    path = ctr.path
    world.namespaces.remove(ctr)
    assert delete_namespace(ctr.name) is None
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, path))
    assert backups(data_dir) == []        # nothing left to restore: no stale file
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, path))
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, None))   # CNI_NETNS=""


def test_del_with_empty_netns_drops_backup(world, cni_path, data_dir):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), mtu=1400)
    ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, None))
    assert backups(data_dir) == []


def test_del_with_link_gone_and_without_backup(world, cni_path, data_dir):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), mtu=1400)
    ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    ctr.run("ip", "link", "del", "eth0")
    ok(world.run_plugin(cni_path, "tuning", "DEL", config, ctr))
    assert backups(data_dir) == []
    # never added (another container): nothing to do, even with a bad dataDir
    ok(world.run_plugin(cni_path, "tuning", "DEL", dict(config, dataDir="/nonexistent/x"),
                        ctr, container_id="other"))


def test_del_ignores_corrupt_backup(world, cni_path, data_dir):
    ctr = make_container(world)
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "ctr1_eth0.json"), "w") as f:
        f.write("{not json")
    ok(world.run_plugin(cni_path, "tuning", "DEL", conf(data_dir), ctr))
    assert backups(data_dir) == []
    assert link_state(ctr) == ORIGINAL


# --- refusals leave no trace -----------------------------------------------------------

@pytest.mark.parametrize("sysctls", [
    {"net.core.somaxconn": "512", "kernel.hostname": "pwned"},
    {"net.core.somaxconn": "512", "kernel/hostname": "pwned"},
    {"net.core.somaxconn": "512", "../../../kernel/hostname": "pwned"},
    {"net.core.somaxconn": "512", "vm.swappiness": "1"},
])
def test_forbidden_sysctl_refused_without_change(world, cni_path, data_dir, sysctls):
    ctr = make_container(world)
    before = sysctl(ctr, "net.core.somaxconn")
    host_name = open("/proc/sys/kernel/hostname").read()
    run = world.run_plugin(cni_path, "tuning", "ADD",
                           conf(data_dir, prev=prev_result(ctr), sysctl=sysctls, mtu=1400), ctr)
    assert run.error_code() == 7
    assert run.json["msg"].startswith("invalid net sysctl key: ")
    assert sysctl(ctr, "net.core.somaxconn") == before
    assert link_state(ctr) == ORIGINAL
    assert backups(data_dir) == []
    assert open("/proc/sys/kernel/hostname").read() == host_name


@pytest.mark.parametrize("keys, code", [
    ({"sysctl": {"net.core.no_such_sysctl": "1"}}, 7),       # unknown file
    ({"sysctl": {"net.ipv4.conf.IFNAME.rp_filter": "abc"}}, 7),  # kernel refuses it
    ({"mtu": 70000}, 7),                                     # veth max is 65535
    ({"mac": "01:00:00:00:00:01"}, 7),                       # multicast MAC
    ({"mac": "zz"}, 7),
    ({"txQLen": -1}, 7),
])
def test_failure_rolls_back_everything(world, cni_path, data_dir, keys, code):
    ctr = make_container(world)
    before = sysctl(ctr, "net.core.somaxconn")
    full = dict(FULL, sysctl=dict(FULL["sysctl"]))
    for k, v in keys.items():
        if k == "sysctl":
            full["sysctl"].update(v)
        else:
            full[k] = v
    run = world.run_plugin(cni_path, "tuning", "ADD", conf(data_dir, prev=prev_result(ctr),
                                                           **full), ctr)
    assert run.error_code() == code, run.stdout + run.stderr
    assert sysctl(ctr, "net.core.somaxconn") == before
    assert sysctl(ctr, "net.ipv4.conf.eth0.rp_filter") != "2"
    assert link_state(ctr) == ORIGINAL
    assert backups(data_dir) == []


def test_missing_link_refused_without_change(world, cni_path, data_dir):
    ctr = make_container(world)
    before = sysctl(ctr, "net.core.somaxconn")
    run = world.run_plugin(cni_path, "tuning", "ADD",
                           conf(data_dir, prev=prev_result(ctr), mtu=1400,
                                sysctl={"net.core.somaxconn": "512"}), ctr, ifname="eth9")
    assert not run.ok
    assert run.json["msg"] == 'failed to get "eth9": Link not found'
    assert sysctl(ctr, "net.core.somaxconn") == before
    assert backups(data_dir) == []


def test_prev_result_required(world, cni_path, data_dir):
    ctr = make_container(world)
    run = world.run_plugin(cni_path, "tuning", "ADD", conf(data_dir, mtu=1400), ctr)
    assert run.error_code() == 7 and run.json["msg"] == "Required prevResult missing"
    assert link_state(ctr) == ORIGINAL


def test_duplicate_sysctl_keys_refused(world, cni_path, data_dir):
    ctr = make_container(world)
    text = json.dumps(conf(data_dir, prev=prev_result(ctr), mtu=1400))
    text = text[:-1] + ', "sysctl": {"net.core.somaxconn": "1", "net.core.somaxconn": "2"}}'
    env = world.plugin_env("ADD", cni_path, ctr)
    run = world.exec_plugin("tuning", env, text)
    assert run.error_code() == 7
    assert run.json["msg"] == "duplicated sysctl keys are not allowed"
    assert link_state(ctr) == ORIGINAL


def test_missing_netns(world, cni_path, data_dir, tmp_path):
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), mtu=1400)
    run = world.run_plugin(cni_path, "tuning", "ADD", config, str(tmp_path / "nope"))
    assert run.error_code() == 3
    run = world.run_plugin(cni_path, "tuning", "CHECK", config, str(tmp_path / "nope"))
    assert run.error_code() == 3


# --- admin allowlist ---------------------------------------------------------------

@pytest.fixture
def with_allowlist(world, plugin_dir, tmp_path):
    """Run our tuning with /etc/cni/tuning/allowlist.conf holding `text`,
    in a private mount namespace (an overlay on /etc): the machine's /etc
    is never touched."""
    def run(text: str, config: dict, ctr):
        layer = tmp_path / "etc-layer"
        (layer / "cni" / "tuning").mkdir(parents=True, exist_ok=True)
        (layer / "cni" / "tuning" / "allowlist.conf").write_text(text)
        wrapper = tmp_path / "tuning-with-allowlist"
        wrapper.write_text(
            "#!/bin/sh\n"
            "exec unshare -m --propagation private /bin/sh -c "
            "'mount -t overlay overlay -o lowerdir=\"$0\":/etc /etc && exec \"$1\"' "
            f"'{layer}' '{os.path.join(plugin_dir, 'tuning')}'\n")
        wrapper.chmod(0o755)
        env = world.plugin_env("ADD", [plugin_dir], ctr)
        return world.exec_binary(str(wrapper), env, config)
    return run


def test_allowlist(world, data_dir, with_allowlist):
    ctr = make_container(world)
    allow = "^net\\.core\\.somaxconn$\n  ^net\\.ipv4\\.conf\\.IFNAME\\.  \n\n"
    before = sysctl(ctr, "net.ipv4.ip_forward")
    run = with_allowlist(allow, conf(data_dir, prev=prev_result(ctr),
                                     sysctl={"net.core.somaxconn": "400",
                                             "net.ipv4.ip_forward": "1"}), ctr)
    assert run.error_code() == 7
    assert run.json["msg"] == ("Sysctl net.ipv4.ip_forward is not allowed. Only the following "
                               "sysctls are allowed: [^net\\.core\\.somaxconn$ "
                               "^net\\.ipv4\\.conf\\.IFNAME\\.]")
    assert sysctl(ctr, "net.ipv4.ip_forward") == before
    run = with_allowlist(allow, conf(data_dir, prev=prev_result(ctr),
                                     sysctl={"net.core.somaxconn": "400",
                                             "net.ipv4.conf.IFNAME.rp_filter": "2"}), ctr)
    ok(run)
    assert sysctl(ctr, "net.core.somaxconn") == "400"
    assert sysctl(ctr, "net.ipv4.conf.eth0.rp_filter") == "2"


# --- compared with the reference ------------------------------------------------------

COMMON = dict(sysctl={"net.ipv4.conf.IFNAME.rp_filter": "2", "net.core.somaxconn": "512"},
              mac=NEW_MAC, mtu=1400, promisc=True, allmulti=True)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_same_result_and_effect_as_reference(world, cni_path, ref_dir, tmp_path, version):
    results, states, files = [], [], []
    for label, path in (("ours", cni_path), ("ref", [ref_dir])):
        ctr = make_container(world, label)
        data_dir = str(tmp_path / label)
        config = conf(data_dir, version, prev_result(ctr, version), **COMMON)
        result = ok(world.run_plugin(path, "tuning", "ADD", config, ctr))
        for interface in result["interfaces"]:
            interface.pop("sandbox", None)
        if version == "1.0.0" and result.get("dns") == {}:
            del result["dns"]     # v1.1.1 prints an empty dns in 1.0.0, v1.9 omits it
        results.append(result)
        states.append((link_state(ctr), sysctl(ctr, "net.ipv4.conf.eth0.rp_filter"),
                       sysctl(ctr, "net.core.somaxconn")))
        with open(os.path.join(data_dir, "ctr1_eth0.json")) as f:
            files.append(f.read())
        if label == "ours":   # v1.1.1's CHECK ignores the IFNAME placeholder (fixed later)
            ok(world.run_plugin(path, "tuning", "CHECK", dict(config, prevResult=result), ctr))
        ok(world.run_plugin(path, "tuning", "DEL", config, ctr))
        states.append(link_state(ctr))
    assert results[0] == results[1]
    assert states[0] == states[2] and states[1] == states[3] == ORIGINAL
    assert files[0] == files[1]


@pytest.mark.parametrize("keys, cni_args", [
    ({"mac": "02:00:00:00:00:01"}, "IgnoreUnknown=1;MAC=02:00:00:00:00:02"),
    ({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}},
     "IgnoreUnknown=1;MAC=02:00:00:00:00:02"),
    ({"runtimeConfig": {"mac": "02:00:00:00:00:03"},
      "args": {"cni": {"mac": "02:00:00:00:00:04", "mtu": 1300, "promisc": True}}},
     "MAC=02:00:00:00:00:02"),
    ({"mtu": 1400, "args": {"cni": {"mtu": 1300, "allmulti": True,
                                    "sysctl": {"net.core.somaxconn": "99"}}}}, ""),
])
def test_same_precedence_as_reference(world, cni_path, ref_dir, tmp_path, keys, cni_args):
    states = []
    for label, path in (("ours", cni_path), ("ref", [ref_dir])):
        ctr = make_container(world, label)
        config = conf(str(tmp_path / label), prev=prev_result(ctr), sysctl={}, **keys)
        result = ok(world.run_plugin(path, "tuning", "ADD", config, ctr, args=cni_args))
        states.append((link_state(ctr), result["interfaces"][1]["mac"],
                       sysctl(ctr, "net.core.somaxconn")))
    assert states[0] == states[1]


@pytest.mark.parametrize("first, second", [("ref", "ours"), ("ours", "ref")])
def test_backup_shared_with_reference(world, cni_path, ref_dir, data_dir, first, second):
    """Either implementation undoes the other's ADD (an upgrade between
    ADD and DEL)."""
    paths = {"ours": cni_path, "ref": [ref_dir]}
    ctr = make_container(world)
    config = conf(data_dir, prev=prev_result(ctr), **COMMON)
    ok(world.run_plugin(paths[first], "tuning", "ADD", config, ctr))
    assert link_state(ctr)["mtu"] == 1400
    ok(world.run_plugin(paths[second], "tuning", "DEL", config, ctr))
    assert link_state(ctr) == ORIGINAL
    assert backups(data_dir) == []


def test_same_refusals_as_reference(world, cni_path, ref_dir, data_dir):
    ctr = make_container(world)
    for keys in ({"sysctl": {"kernel.hostname": "x"}}, {"mac": "zz"}, {}):
        config = conf(data_dir, **keys) if not keys else \
            conf(data_dir, prev=prev_result(ctr), **keys)
        ours = world.run_plugin(cni_path, "tuning", "ADD", config, ctr)
        ref = world.run_plugin([ref_dir], "tuning", "ADD", config, ctr)
        assert not ours.ok and not ref.ok
        # v1.1.1 quotes the key as written, v1.9 (and pycni) after dots became slashes
        assert ours.json["msg"].replace("/", ".") == ref.json["msg"]
    assert link_state(ctr) == ORIGINAL


# --- as the end of a real chain ------------------------------------------------------

def test_after_reference_bridge(world, cni_path, ref_dir, tmp_path, data_dir):
    ctr = world.container("c1")
    bridge = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "tbr0",
              "ipam": {"type": "host-local", "subnet": "10.98.0.0/24",
                       "dataDir": str(tmp_path / "ipam")}}
    head = ok(world.run_plugin([ref_dir], "bridge", "ADD", bridge, ctr))
    config = conf(data_dir, prev=head, mac=NEW_MAC, mtu=1400,
                  sysctl={"net.ipv4.conf.IFNAME.accept_local": "1"})
    result = ok(world.run_plugin(cni_path, "tuning", "ADD", config, ctr))
    macs = {i["name"]: i["mac"] for i in result["interfaces"]}
    assert macs["eth0"] == NEW_MAC
    assert macs["tbr0"] == world.host.link("tbr0")["address"]    # host side untouched
    assert result["ips"] == head["ips"]
    assert ctr.link("eth0")["address"] == NEW_MAC
    ok(world.run_plugin(cni_path, "tuning", "CHECK", dict(config, prevResult=result), ctr))
    original_mac = next(i["mac"] for i in head["interfaces"] if i["name"] == "eth0")
    for _ in range(2):     # DEL in reverse chain order, twice
        ok(world.run_plugin(cni_path, "tuning", "DEL", dict(config, prevResult=result), ctr))
        assert ctr.link("eth0")["address"] == original_mac
        assert ctr.link("eth0")["mtu"] == 1500
    ok(world.run_plugin([ref_dir], "bridge", "DEL", dict(bridge, prevResult=result), ctr))
