"""Operation log: one line per operation into a file, never on stdout."""

import io
import json
import re

import pytest

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

    def __init__(self, fail=False):
        self.fail = fail

    def add(self, req):
        if self.fail:
            raise CNIError(11, "busy now")
        return Result(ips=[IPConfig("10.0.0.9/24")])

    def delete(self, req):
        if self.fail:
            raise CNIError(11, "busy now")


def run(command, config, env=None, fail=False):
    out = io.StringIO()
    code = skel.run(Fake(fail), {"CNI_COMMAND": command, **ENV, **(env or {})},
                    io.BytesIO(json.dumps(config).encode()), out)
    return code, out.getvalue()


def conf(log_path=None, level=None, **extra):
    c = {"cniVersion": "1.0.0", "name": "lognet", "type": "fakeplug", **extra}
    if log_path is not None:
        c["logFile"] = str(log_path)
    if level is not None:
        c["logLevel"] = level
    return c


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("level", [None, "info", "INFO", "verbose", "bogus"])
def test_info_logs_every_operation(tmp_path, level, capfd):
    log = tmp_path / "ops.log"
    assert run("ADD", conf(log, level))[0] == 0
    assert run("DEL", conf(log, level))[0] == 0
    assert run("DEL", conf(log, level), fail=True)[0] == 1
    got = lines(log)
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
def test_error_level_logs_failures_only(tmp_path, level):
    log = tmp_path / "ops.log"
    run("ADD", conf(log, level))
    run("ADD", conf(log, level), fail=True)
    got = lines(log)
    assert len(got) == 1
    assert "error code=11" in got[0]


def test_debug_level_adds_config_and_result(tmp_path):
    log = tmp_path / "ops.log"
    run("ADD", conf(log, "debug"))
    (line,) = lines(log)
    config_json = line.split(" config=", 1)[1].split(" result=", 1)[0]
    assert json.loads(config_json)["name"] == "lognet"
    result_json = line.split(" result=", 1)[1]
    assert json.loads(result_json)["ips"] == [{"address": "10.0.0.9/24"}]


def test_no_log_without_config_or_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("ADD", conf())
    assert list(tmp_path.iterdir()) == []


def test_env_enables_log(tmp_path):
    log = tmp_path / "env.log"
    run("ADD", conf(), env={"PYCNI_LOG_FILE": str(log), "PYCNI_LOG_LEVEL": "error"})
    assert lines(log) == []
    run("ADD", conf(), env={"PYCNI_LOG_FILE": str(log)})
    assert len(lines(log)) == 1


def test_config_wins_over_env(tmp_path):
    env_log, conf_log = tmp_path / "env.log", tmp_path / "conf.log"
    run("ADD", conf(conf_log, "info"), env={"PYCNI_LOG_FILE": str(env_log),
                                              "PYCNI_LOG_LEVEL": "error"})
    assert lines(env_log) == []
    assert len(lines(conf_log)) == 1


def test_config_keys_case_insensitive(tmp_path):
    log = tmp_path / "ops.log"
    run("ADD", {"cniVersion": "1.0.0", "name": "n", "LogFile": str(log), "LOGLEVEL": "info"})
    assert len(lines(log)) == 1


def test_env_log_records_failures_before_config(tmp_path):
    log = tmp_path / "env.log"
    out = io.StringIO()
    skel.run(Fake(), {"CNI_COMMAND": "ADD", "PYCNI_LOG_FILE": str(log)},
             io.BytesIO(b"{}"), out)
    (line,) = lines(log)
    assert "error code=4" in line
    assert "net=- cid=- ifname=-" in line


def test_unwritable_log_goes_to_stderr_not_stdout(tmp_path, capfd):
    bad = tmp_path / "no-such-dir" / "ops.log"
    code, stdout = run("ADD", conf(bad))
    assert code == 0
    assert json.loads(stdout)["cniVersion"] == "1.0.0"
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "cannot write log" in captured.err


def test_log_file_mode_and_append(tmp_path):
    log = tmp_path / "ops.log"
    for _ in range(3):
        run("DEL", conf(log))
    assert len(lines(log)) == 3
    assert log.stat().st_mode & 0o777 == 0o600


def test_operation_log_direct(tmp_path):
    path = tmp_path / "direct.log"
    oplog = OperationLog(str(path), "debug")
    oplog.finish("p", "GC", "", "", "", None, {"a": 1}, None)
    (line,) = lines(path)
    assert "p GC net=- cid=- ifname=- ok" in line
    assert line.endswith('config={"a":1}')
    assert OperationLog.from_config({}, {}) is None
    assert OperationLog.from_config({"logFile": 5}, {}) is None
