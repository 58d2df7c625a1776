"""Node settings (pycni.nodeconf): which state directories a config's
dataDir may name, and /etc/cni/pycni.conf's stateDirs. Issue #11: no
config alone may choose where root writes."""

import io
import json
import os

import pytest

from pycni import nodeconf, skel
from pycni.ipam.host_local.plugin import HostLocalPlugin
from pycni.plugins.tuning.plugin import TuningPlugin


@pytest.fixture(autouse=True)
def no_node_conf(tmp_path, monkeypatch):
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(tmp_path / "no-pycni.conf"))
    monkeypatch.setattr(nodeconf, "_cache", None)
    monkeypatch.setattr(nodeconf, "_warned", set())


@pytest.mark.parametrize("path", [
    "/var/lib/cni/networks", "/var/lib/cni", "/var/lib/cni/networks/../other",
    "/run/cni/tuning", "/var/run/cni/x", "/var/lib/cni/"])
def test_default_state_dirs_allowed(path):
    assert nodeconf.state_dir_allowed(path, {})


@pytest.mark.parametrize("path", [
    "/etc", "/etc/cron.d", "/root/.ssh", "/var/lib/cni/../../../etc", "/var/lib/cnix",
    "/var/lib/cni-other", "relative/dir", "", "/var/lib/cni/\0x", "/tmp", None, 5])
def test_other_dirs_refused(path):
    assert not nodeconf.state_dir_allowed(path, {})


def test_env_and_node_conf_add_dirs(tmp_path, monkeypatch):
    conf = tmp_path / "pycni.conf"
    conf.write_text(json.dumps({"stateDirs": ["/srv/cni"]}))
    conf.chmod(0o644)
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(conf))
    env = {"PYCNI_STATE_DIRS": "/data/a:relative:/data/b"}
    assert nodeconf.state_dir_allowed("/srv/cni/networks", env)
    assert nodeconf.state_dir_allowed("/data/b/x", env)
    assert not nodeconf.state_dir_allowed("/srv/cnix", env)
    assert not nodeconf.state_dir_allowed("/etc", env)
    assert not nodeconf.state_dir_allowed("/x/relative", env)


def test_untrusted_node_conf_adds_nothing(tmp_path, monkeypatch, capfd):
    conf = tmp_path / "pycni.conf"
    conf.write_text(json.dumps({"stateDirs": ["/srv/cni"]}))
    conf.chmod(0o666)
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(conf))
    assert not nodeconf.state_dir_allowed("/srv/cni/networks", {})
    assert "writable by group or others" in capfd.readouterr().err


def test_bad_state_dirs_type_is_ignored(tmp_path, monkeypatch, capfd):
    conf = tmp_path / "pycni.conf"
    conf.write_text(json.dumps({"stateDirs": "/srv/cni"}))
    conf.chmod(0o644)
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(conf))
    assert not nodeconf.state_dir_allowed("/srv/cni", {})
    assert "must be a list of strings" in capfd.readouterr().err


def run(plugin, command, conf, env_extra=None):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/none",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent", **(env_extra or {})}
    out = io.StringIO()
    code = skel.run(plugin, env, io.BytesIO(json.dumps(conf).encode()), out)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


def host_local_conf(data_dir):
    return {"cniVersion": "1.1.0", "name": "net", "type": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.0.0.0/29", "dataDir": data_dir}}


@pytest.mark.parametrize("command", ["ADD", "CHECK", "GC", "STATUS"])
def test_host_local_refuses_a_data_dir_root_did_not_allow(tmp_path, command):
    """Regression: a config's dataDir made root create directories and
    files anywhere (e.g. /etc/cron.d/<net>/)."""
    target = tmp_path / "outside"
    code, out = run(HostLocalPlugin(), command, host_local_conf(str(target)))
    assert code == 1 and out["code"] == 7
    assert "not below a state directory the node allows" in out["msg"]
    assert not target.exists()


def test_host_local_del_outside_allowed_dirs_touches_nothing(tmp_path):
    target = tmp_path / "outside" / "net"
    target.mkdir(parents=True)
    (target / "10.0.0.2").write_bytes(b"c1\r\neth0")
    code, out = run(HostLocalPlugin(), "DEL", host_local_conf(str(tmp_path / "outside")))
    assert code == 0 and out is None
    assert (target / "10.0.0.2").read_bytes() == b"c1\r\neth0"


def test_host_local_allowed_by_env(tmp_path):
    code, out = run(HostLocalPlugin(), "ADD", host_local_conf(str(tmp_path)),
                    {"PYCNI_STATE_DIRS": str(tmp_path)})
    assert code == 0, out
    assert os.listdir(tmp_path / "net")


def test_tuning_refuses_a_data_dir_root_did_not_allow(tmp_path):
    target = tmp_path / "tuning"
    conf = {"cniVersion": "1.0.0", "name": "net", "type": "tuning", "dataDir": str(target),
            "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]}}
    code, out = run(TuningPlugin(), "ADD", conf)
    assert code == 1 and out["code"] == 7, out
    assert not target.exists()
    code, out = run(TuningPlugin(), "DEL", conf)
    assert code == 0 and out is None
    assert not target.exists()


def test_a_symlink_inside_an_allowed_dir_does_not_lead_out(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (allowed / "link").symlink_to(tmp_path / "elsewhere")
    env = {"PYCNI_STATE_DIRS": str(allowed)}
    assert nodeconf.state_dir_allowed(str(allowed / "real" / "net"), env)
    assert not nodeconf.state_dir_allowed(str(allowed / "link"), env)
    assert not nodeconf.state_dir_allowed(str(allowed / "link" / "networks"), env)
