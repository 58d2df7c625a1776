"""Operation log: one line per operation into a file of the log directory
the node's operator chose, never on stdout, never anywhere a config picks."""

import io
import json
import os
import re
import signal
import stat

import pytest

from pycni import nodeconf
from pycni import skel
from pycni.errors import CNIError
from pycni.log import OperationLog
from pycni.result import IPConfig, Result

ENV = {"CNI_CONTAINERID": "cid42", "CNI_NETNS": "/run/netns/none-such",
       "CNI_IFNAME": "eth1", "CNI_PATH": "/opt/cni/bin"}
LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+) (\S+) net=(\S+) cid=(\S+) "
                  r"ifname=(\S+) (ok|error code=\d+ msg=.*) \d+\.\dms pid=\d+")


class Fake(skel.Plugin):
    name = "fakeplug"

    def __init__(self, fail=False, message="busy now"):
        self.fail = fail
        self.message = message

    def add(self, req):
        if self.fail:
            raise CNIError(11, self.message)
        return Result(ips=[IPConfig("10.0.0.9/24")])

    def delete(self, req):
        if self.fail:
            raise CNIError(11, self.message)


@pytest.fixture(autouse=True)
def no_node_conf(tmp_path, monkeypatch):
    """No /etc/cni/pycni.conf of the machine leaks in; fresh caches."""
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(tmp_path / "no-pycni.conf"))
    monkeypatch.setattr(nodeconf, "_cache", None)
    monkeypatch.setattr(nodeconf, "_warned", set())


@pytest.fixture
def logdir(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    d.chmod(0o755)
    return d


def run(command, config, env=None, fail=False, message="busy now"):
    out = io.StringIO()
    code = skel.run(Fake(fail, message), {"CNI_COMMAND": command, **ENV, **(env or {})},
                    io.BytesIO(json.dumps(config).encode()), out)
    return code, out.getvalue()


def conf(log_file=None, level=None, **extra):
    c = {"cniVersion": "1.0.0", "name": "lognet", "type": "fakeplug", **extra}
    if log_file is not None:
        c["logFile"] = str(log_file)
    if level is not None:
        c["logLevel"] = level
    return c


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def in_dir(d):
    return {"PYCNI_LOG_DIR": str(d)}


@pytest.mark.parametrize("level", [None, "info", "INFO", "verbose", "bogus"])
def test_info_logs_every_operation(logdir, level, capfd):
    env = in_dir(logdir)
    assert run("ADD", conf("ops.log", level), env)[0] == 0
    assert run("DEL", conf("ops.log", level), env)[0] == 0
    assert run("DEL", conf("ops.log", level), env, fail=True)[0] == 1
    got = lines(logdir / "ops.log")
    assert len(got) == 3
    parsed = [LINE.fullmatch(line).groups() for line in got]
    assert parsed[0] == ("fakeplug", "ADD", "lognet", "cid42", "eth1", "ok")
    assert parsed[1][:2] == ("fakeplug", "DEL") and parsed[1][5] == "ok"
    assert parsed[2][5] == 'error code=11 msg="busy now"'
    assert "config=" not in got[0]
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


@pytest.mark.parametrize("level", ["error", "panic", "ERROR"])
def test_error_level_logs_failures_only(logdir, level):
    run("ADD", conf("ops.log", level), in_dir(logdir))
    run("ADD", conf("ops.log", level), in_dir(logdir), fail=True)
    got = lines(logdir / "ops.log")
    assert len(got) == 1
    assert "error code=11" in got[0]


def test_debug_level_adds_config_and_result(logdir):
    run("ADD", conf("ops.log", "debug"), in_dir(logdir))
    (line,) = lines(logdir / "ops.log")
    config_json = line.split(" config=", 1)[1].split(" result=", 1)[0]
    assert json.loads(config_json)["name"] == "lognet"
    result_json = line.split(" result=", 1)[1]
    assert json.loads(result_json)["ips"] == [{"address": "10.0.0.9/24"}]


def test_log_directory_alone_logs_to_pycni_log(logdir):
    run("ADD", conf(), in_dir(logdir))
    assert os.listdir(logdir) == ["pycni.log"]
    assert len(lines(logdir / "pycni.log")) == 1


def test_no_log_directory_no_log_whatever_the_config_says(tmp_path, monkeypatch, capfd):
    """Regression (issue #11, finding 1): a config's logFile alone wrote
    any file as root."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "bashrc"
    code, stdout = run("ADD", conf(target))
    assert code == 0
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == []
    assert json.loads(stdout)["ips"] == [{"address": "10.0.0.9/24"}]
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "logFile" in captured.err and "ignored" in captured.err
    assert captured.err.count("\n") == 1


def test_pycni_log_file_alone_writes_nothing(tmp_path, capfd):
    """PYCNI_LOG_FILE no longer names any file: only one in the log dir."""
    target = tmp_path / "env.log"
    run("ADD", conf(), {"PYCNI_LOG_FILE": str(target)})
    assert not target.exists()


def test_pycni_log_file_names_a_file_of_the_directory(logdir, tmp_path):
    run("ADD", conf(), {**in_dir(logdir), "PYCNI_LOG_FILE": "env.log",
                        "PYCNI_LOG_LEVEL": "error"})
    assert not (logdir / "env.log").exists()
    run("ADD", conf(), {**in_dir(logdir), "PYCNI_LOG_FILE": str(logdir / "env.log")})
    assert len(lines(logdir / "env.log")) == 1
    outside = tmp_path / "outside.log"
    run("ADD", conf(), {**in_dir(logdir), "PYCNI_LOG_FILE": str(outside)})
    assert not outside.exists()
    assert len(lines(logdir / "pycni.log")) == 1


def test_config_wins_over_env(logdir):
    run("ADD", conf("conf.log", "info"), {**in_dir(logdir), "PYCNI_LOG_FILE": "env.log",
                                          "PYCNI_LOG_LEVEL": "error"})
    assert lines(logdir / "env.log") == []
    assert len(lines(logdir / "conf.log")) == 1


def test_config_keys_case_insensitive_last_wins(logdir):
    run("ADD", {"cniVersion": "1.0.0", "name": "n", "logFile": "first.log",
                "LogFile": "ops.log", "LOGLEVEL": "info"}, in_dir(logdir))
    assert os.listdir(logdir) == ["ops.log"]


def test_env_log_records_failures_before_config(logdir):
    out = io.StringIO()
    skel.run(Fake(), {"CNI_COMMAND": "ADD", **in_dir(logdir)}, io.BytesIO(b"{}"), out)
    (line,) = lines(logdir / "pycni.log")
    assert "error code=4" in line
    assert "net=- cid=- ifname=-" in line


@pytest.mark.parametrize("bad", [
    "../escape.log", "sub/ops.log", "/tmp/ops.log", ".", "..", "", "a\0b",
    "{dir}/../escape.log", "{dir}/sub/ops.log", "{dir}/", "{dir}/.",
])
def test_logfile_outside_the_directory_is_ignored(logdir, bad, capfd):
    bad = bad.replace("{dir}", str(logdir))
    code, stdout = run("ADD", conf(bad), in_dir(logdir))
    assert code == 0 and json.loads(stdout)["cniVersion"] == "1.0.0"
    assert not (logdir.parent / "escape.log").exists()
    # the key is ignored, logging goes on in the default file
    assert os.listdir(logdir) == ["pycni.log"]
    captured = capfd.readouterr()
    assert captured.out == ""
    if bad:
        assert "ignored" in captured.err


def test_absolute_logfile_in_the_directory_is_accepted(logdir):
    run("ADD", conf(str(logdir / "abs.log")), {"PYCNI_LOG_DIR": str(logdir) + "/"})
    assert len(lines(logdir / "abs.log")) == 1


def test_symlink_in_directory_is_not_followed(logdir, tmp_path, capfd):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    (logdir / "ops.log").symlink_to(victim)
    (logdir / "out").symlink_to("/dev/stdout")
    for name in ("ops.log", "out"):
        code, stdout = run("ADD", conf(name), in_dir(logdir))
        assert code == 0
        assert json.loads(stdout)["cniVersion"] == "1.0.0"
    assert victim.read_text() == "root's file\n"
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "cannot write log" in captured.err


def test_dev_stdout_is_never_written(logdir, capfd):
    code, stdout = run("ADD", conf("/dev/stdout"), in_dir(logdir))
    assert code == 0
    assert json.loads(stdout)["ips"] == [{"address": "10.0.0.9/24"}]
    assert capfd.readouterr().out == ""


def test_dev_as_log_directory_never_opens_devices(capfd):
    """Even a log directory of devices: only regular files are opened."""
    log = OperationLog("/dev", "info", name="null")
    log.finish("p", "ADD", "", "", "")
    log = OperationLog("/dev", "info", name="stdout")
    log.finish("p", "ADD", "", "", "")
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err.count("cannot write log") == 2


def _alarm(seconds):
    def fail(*_):
        raise TimeoutError("log write blocked")
    signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)


def test_fifo_and_device_in_directory_refused_without_blocking(logdir, capfd):
    os.mkfifo(logdir / "fifo")
    os.mknod(logdir / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    _alarm(10)
    try:
        for name in ("fifo", "null"):
            code, stdout = run("ADD", conf(name), in_dir(logdir))
            assert code == 0 and json.loads(stdout)["cniVersion"] == "1.0.0"
    finally:
        signal.alarm(0)
    err = capfd.readouterr().err
    assert err.count("not a regular file") == 2


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_log_file_mode_0600_whatever_the_umask(logdir, umask):
    old = os.umask(umask)
    try:
        for _ in range(3):
            run("DEL", conf("ops.log"), in_dir(logdir))
    finally:
        os.umask(old)
    assert len(lines(logdir / "ops.log")) == 3
    assert (logdir / "ops.log").stat().st_mode & 0o777 == 0o600
    assert os.umask(old) == old   # the umask is restored


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o1777])
def test_directory_others_can_write_is_refused(logdir, mode, capfd):
    logdir.chmod(mode)
    code, stdout = run("ADD", conf("ops.log"), in_dir(logdir))
    assert code == 0 and json.loads(stdout)
    assert os.listdir(logdir) == []
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "owned by root" in captured.err


def test_directory_not_owned_by_root_is_refused(logdir, capfd):
    os.chown(logdir, 65534, 65534)
    run("ADD", conf("ops.log"), in_dir(logdir))
    assert os.listdir(logdir) == []
    assert "owned by root" in capfd.readouterr().err


def test_directory_symlink_and_relative_are_refused(logdir, tmp_path, capfd):
    link = tmp_path / "link"
    link.symlink_to(logdir)
    run("ADD", conf("ops.log"), in_dir(link))
    run("ADD", conf("ops.log"), {"PYCNI_LOG_DIR": "logs"})
    assert os.listdir(logdir) == []
    err = capfd.readouterr().err
    assert "cannot write log" in err and "not an absolute path" in err


def test_unwritable_log_goes_to_stderr_not_stdout(tmp_path, capfd):
    code, stdout = run("ADD", conf(), in_dir(tmp_path / "no-such-dir"))
    assert code == 0
    assert json.loads(stdout)["cniVersion"] == "1.0.0"
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "cannot write log" in captured.err


# --- /etc/cni/pycni.conf --------------------------------------------------------

def node_conf(tmp_path, monkeypatch, text, mode=0o644, owner=None):
    path = tmp_path / "pycni.conf"
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(path))
    return path


def test_node_conf_names_the_directory_and_level(logdir, tmp_path, monkeypatch):
    node_conf(tmp_path, monkeypatch, json.dumps({"logDir": str(logdir), "logLevel": "error"}))
    run("ADD", conf())
    assert not (logdir / "pycni.log").exists()
    run("ADD", conf(), fail=True)
    run("ADD", conf("t.log", "info"))
    assert len(lines(logdir / "pycni.log")) == 1
    assert len(lines(logdir / "t.log")) == 1


def test_env_directory_wins_over_node_conf(logdir, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    node_conf(tmp_path, monkeypatch, json.dumps({"logDir": str(other)}))
    run("ADD", conf(), in_dir(logdir))
    assert os.listdir(other) == []
    assert os.listdir(logdir) == ["pycni.log"]


@pytest.mark.parametrize("case", ["symlink", "group-writable", "other-writable",
                                  "not-root", "not-json", "not-object", "not-string",
                                  "fifo"])
def test_untrusted_node_conf_is_ignored_with_one_warning(logdir, tmp_path, monkeypatch,
                                                          case, capfd):
    text = json.dumps({"logDir": str(logdir)})
    if case == "symlink":
        real = node_conf(tmp_path, monkeypatch, text)
        link = tmp_path / "link.conf"
        link.symlink_to(real)
        monkeypatch.setattr(nodeconf, "CONF_FILE", str(link))
    elif case == "fifo":
        path = tmp_path / "fifo.conf"
        os.mkfifo(path)
        monkeypatch.setattr(nodeconf, "CONF_FILE", str(path))
    else:
        node_conf(tmp_path, monkeypatch,
                  {"not-json": "{logDir", "not-object": "[1]",
                   "not-string": json.dumps({"logDir": 5})}.get(case, text),
                  mode={"group-writable": 0o664, "other-writable": 0o646}.get(case, 0o644),
                  owner=65534 if case == "not-root" else None)
    _alarm(10)
    try:
        for _ in range(2):
            assert run("ADD", conf())[0] == 0
    finally:
        signal.alarm(0)
    assert os.listdir(logdir) == []
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "ignored" in err


# --- escaping -------------------------------------------------------------------

def test_config_text_in_error_is_one_inert_line(logdir):
    """Regression (issue #11, finding 1): an ipam.type quoted in an error
    message landed on the line as is; `$(...)` in a shell start-up file."""
    evil = 'x"\n$(touch /tmp/pwned)`id`; rm -rf / | cat & <x> \'q\' \u2028 \x1b[31m'
    run("ADD", conf("ops.log", "debug", ipam={"type": evil}), in_dir(logdir),
        fail=True, message=f'failed to find plugin "{evil}" in path')
    text = (logdir / "ops.log").read_bytes()
    assert text.count(b"\n") == 1 and text.endswith(b"\n")
    assert all(32 <= b < 127 for b in text[:-1])
    for meta in (b"$", b"`", b";", b"|", b"&", b"<", b">", b"(", b")", b"'"):
        assert meta not in text
    line = text.decode()
    msg = line.split(" msg=", 1)[1].split(" config=", 1)[0].rsplit(" ", 2)[0]
    assert json.loads(msg) == f'failed to find plugin "{evil}" in path'
    config = json.loads(line.split(" config=", 1)[1])
    assert config["ipam"]["type"] == evil


@pytest.mark.parametrize("var", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_COMMAND"])
def test_environment_values_are_escaped(logdir, var):
    out = io.StringIO()
    env = {"CNI_COMMAND": "ADD", **ENV, **in_dir(logdir),
           var: "a b\n$(reboot)\x00;`x`"}
    skel.run(Fake(), env, io.BytesIO(json.dumps(conf()).encode()), out)
    text = (logdir / "pycni.log").read_text()
    assert text.count("\n") == 1
    assert "$" not in text and "`" not in text and ";" not in text
    assert LINE.fullmatch(text.rstrip("\n")), text


def test_operation_log_direct(logdir):
    oplog = OperationLog(str(logdir), "debug", name="direct.log")
    oplog.finish("p", "GC", "", "", "", None, {"a": 1}, None)
    (line,) = lines(logdir / "direct.log")
    assert "p GC net=- cid=- ifname=- ok" in line
    assert line.endswith('config={"a":1}')
    assert OperationLog.from_config({}, {}) is None
    assert OperationLog.from_config({"logFile": 5}, {}) is None
    assert OperationLog.from_config({"logFile": 5}, in_dir(logdir)).name == "pycni.log"


def test_no_log_directory_costs_one_failed_open(monkeypatch):
    calls = []
    real_open = os.open
    from pycni import posixos      # what pycni's modules call as `os`
    monkeypatch.setattr(posixos, "open", lambda *a, **k: calls.append(a[0]) or real_open(*a, **k))
    for _ in range(3):
        assert OperationLog.from_config({"logLevel": "debug"}, {}) is None
    assert calls == [nodeconf.CONF_FILE]
