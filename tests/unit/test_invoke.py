"""invoke: delegating from inside a plugin (IPAM): the delegate's result,
the other commands, the allocation released when ADD fails. (Finding and
running a plugin executable: test_pluginexec.py.)

The plugins here are tiny shell scripts in tmp_path, run for real.
"""

import json
import os

import pytest

from pycni import errors, invoke, skel
from pycni.errors import CNIError
from test_pluginexec import script

IPAM_RESULT = {"cniVersion": "1.0.0",
               "ips": [{"address": "10.22.0.5/16", "gateway": "10.22.0.1"}],
               "routes": [{"dst": "0.0.0.0/0"}]}


def test_find_in_path_is_execpaths(tmp_path):
    """pycni.invoke.find_in_path (the SDK's name) finds as
    execpath.find_in_path does, refusals included."""
    script(tmp_path, "p", "exit 0\n")
    assert invoke.find_in_path("p", [str(tmp_path)]) == str(tmp_path / "p")
    with pytest.raises(CNIError) as info:
        invoke.find_in_path("../p", [str(tmp_path)])
    assert info.value.code == errors.INVALID_NETWORK_CONFIG


def test_parse_result_output():
    result = invoke.parse_result_output(json.dumps(IPAM_RESULT).encode(), "0.4.0")
    assert result.cni_version == "1.0.0"
    assert [ip.address for ip in result.ips] == ["10.22.0.5/16"]
    no_version = invoke.parse_result_output(b'{"ips":[{"address":"10.0.0.1/8"}]}', "0.4.0")
    assert no_version.cni_version == "0.4.0"


@pytest.mark.parametrize("stdout", [b"", b"{", b"\xff", b"[]", b'{"ips":"x"}'])
def test_parse_result_output_malformed(stdout):
    with pytest.raises(CNIError) as info:
        invoke.parse_result_output(stdout, "1.0.0")
    assert info.value.code == errors.DECODING_FAILURE


# --- delegation ----------------------------------------------------------------------------

FAKE_IPAM = """\
echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS" >> "{log}"
cat > "{log}.stdin.$CNI_COMMAND"
case "$CNI_COMMAND" in
ADD) printf '%s' '{result}' ;;
DEL) {del_body} ;;
CHECK|GC|STATUS) ;;
esac
"""


@pytest.fixture
def ipam(tmp_path):
    def make(del_body="exit 0", result=IPAM_RESULT):
        log = tmp_path / "calls.log"
        script(tmp_path, "fake-ipam", FAKE_IPAM.format(
            log=log, result=json.dumps(result), del_body=del_body))
        config = {"cniVersion": "1.0.0", "name": "net", "type": "fake",
                  "ipam": {"type": "fake-ipam", "subnet": "10.22.0.0/16"}}
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid1", "CNI_NETNS": "/run/netns/x",
               "CNI_IFNAME": "eth0", "CNI_PATH": f"/nonexistent:{tmp_path}",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        stdin = json.dumps(config).encode()
        req = skel.Request("ADD", env, stdin, config)
        req.cni_version = "1.0.0"
        req.network_name = "net"

        def calls():
            return log.read_text().splitlines() if log.exists() else []
        return req, calls
    return make


def test_delegate_add_parses_result_and_passes_whole_config(ipam, tmp_path):
    req, calls = ipam()
    result = invoke.delegate_add(req, "fake-ipam")
    assert [ip.address for ip in result.ips] == ["10.22.0.5/16"]
    assert calls() == ["ADD cid1 eth0 /run/netns/x"]
    assert (tmp_path / "calls.log.stdin.ADD").read_bytes() == req.stdin


@pytest.mark.parametrize("command", ["DEL", "CHECK", "GC", "STATUS"])
def test_delegate_other_commands_override_only_command(ipam, command):
    req, calls = ipam()
    getattr(invoke, f"delegate_{command.lower()}")(req, "fake-ipam")
    assert calls() == [f"{command} cid1 eth0 /run/netns/x"]
    assert req.env["CNI_COMMAND"] == "ADD"  # the caller's env is untouched


def test_delegate_missing_plugin(ipam):
    req, _ = ipam()
    with pytest.raises(CNIError) as info:
        invoke.delegate_add(req, "no-such-ipam")
    assert "failed to find plugin" in info.value.msg


def test_delegate_rejects_path_in_type(ipam):
    req, calls = ipam()
    with pytest.raises(CNIError):
        invoke.delegate_add(req, "../fake-ipam")
    assert calls() == []


def test_ipam_allocation_success_keeps_allocation(ipam):
    req, calls = ipam()
    with invoke.ipam_allocation(req, "fake-ipam") as result:
        assert result.ips[0].gateway == "10.22.0.1"
    assert calls() == ["ADD cid1 eth0 /run/netns/x"]


@pytest.mark.parametrize("exc", [CNIError(errors.INTERNAL, "veth failed"), RuntimeError("bug")])
def test_ipam_allocation_released_on_failure(ipam, exc):
    req, calls = ipam()
    with pytest.raises(type(exc)) as info:
        with invoke.ipam_allocation(req, "fake-ipam"):
            raise exc
    assert info.value is exc
    assert calls() == ["ADD cid1 eth0 /run/netns/x", "DEL cid1 eth0 /run/netns/x"]


def test_ipam_allocation_release_failure_keeps_original_error(ipam, capfd):
    req, calls = ipam(del_body="echo '{\"code\":11,\"msg\":\"locked\"}'; exit 1")
    with pytest.raises(CNIError) as info:
        with invoke.ipam_allocation(req, "fake-ipam"):
            raise CNIError(errors.INTERNAL, "veth failed")
    assert info.value.msg == "veth failed"
    assert calls()[-1].startswith("DEL")
    assert "locked" in capfd.readouterr().err


def test_ipam_allocation_failed_add_releases_nothing(ipam):
    req, calls = ipam(result={"not": "a result", "ips": "x"})
    with pytest.raises(CNIError) as info:
        with invoke.ipam_allocation(req, "fake-ipam"):
            pytest.fail("body must not run")
    assert info.value.code == errors.DECODING_FAILURE
    assert calls() == ["ADD cid1 eth0 /run/netns/x"]
