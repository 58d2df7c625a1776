"""Warnings about configs accepted for the reference's sake (issue #13):
pycni.log.warning writes one line on stderr and a `warnings=` field on the
operation's log line, at every log level, and never on stdout."""

import io
import json

import pytest

from pycni import log, nodeconf, skel
from pycni.plugins.firewall.config import parse_config
from pycni.result import IPConfig, Result

ENV = {"CNI_CONTAINERID": "cid42", "CNI_NETNS": "/run/netns/none-such",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


class Parses(skel.Plugin):
    """A plugin whose ADD reads a firewall config (which warns about an
    unknown backend) and succeeds."""
    name = "iopwarn"

    def add(self, req):
        parse_config(req.config, lambda: "iptables")
        return Result(ips=[IPConfig("10.0.0.9/24")])


@pytest.fixture(autouse=True)
def no_node_conf(tmp_path, monkeypatch):
    monkeypatch.setattr(nodeconf, "CONF_FILE", str(tmp_path / "no-pycni.conf"))
    monkeypatch.setattr(nodeconf, "_cache", None)
    monkeypatch.setattr(nodeconf, "_warned", set())


@pytest.fixture
def logdir(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    d.chmod(0o755)
    return d


def run(logdir, backend, level="info"):
    conf = {"cniVersion": "1.0.0", "name": "net", "type": "firewall", "logLevel": level}
    if backend is not None:
        conf["backend"] = backend
    out = io.StringIO()
    code = skel.run(Parses(), {"CNI_COMMAND": "ADD", "PYCNI_LOG_DIR": str(logdir), **ENV},
                    io.BytesIO(json.dumps(conf).encode()), out)
    return code, out.getvalue()


def lines(logdir) -> list[str]:
    path = logdir / "pycni.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("level", ["info", "error"])
def test_a_warning_goes_to_stderr_and_the_log_line(logdir, capfd, level):
    code, stdout = run(logdir, "ebtables", level)
    assert code == 0 and json.loads(stdout)["ips"]      # stdout: the result only
    err = capfd.readouterr().err
    assert 'pycni: firewall: unknown backend "ebtables"' in err
    (line,) = lines(logdir)
    assert " ok " in line and "warnings=" in line
    field = line.split("warnings=", 1)[1]
    assert json.loads(field) == [log._warnings[0]]
    assert "ebtables" in field


def test_the_next_operation_starts_without_warnings(logdir):
    run(logdir, "ebtables")
    run(logdir, None)
    first, second = lines(logdir)
    assert "warnings=" in first and "warnings=" not in second


def test_at_error_level_an_operation_without_warnings_is_not_logged(logdir):
    run(logdir, "iptables", "error")
    assert lines(logdir) == []
