"""invoke: finding and running other plugins (IPAM delegation, cnitool).

The plugins here are tiny shell scripts in tmp_path, run for real.
"""

import json
import os

import pytest

from pycni import errors, invoke, skel
from pycni.errors import CNIError

IPAM_RESULT = {"cniVersion": "1.0.0",
               "ips": [{"address": "10.22.0.5/16", "gateway": "10.22.0.1"}],
               "routes": [{"dst": "0.0.0.0/0"}]}


def script(directory, name, body, mode=0o755):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


# --- find_in_path ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "/", "\\", "..", ".", "../bridge", "a/b", "a\\b",
                                  "/usr/bin/true", "..\\x"])
def test_find_in_path_rejects_bad_names(name, tmp_path):
    with pytest.raises(CNIError) as info:
        invoke.find_in_path(name, [str(tmp_path)])
    assert info.value.code == errors.INVALID_NETWORK_CONFIG


def test_find_in_path_reboot_cve(tmp_path):
    """CVE-2021-20206: a type with a path must not escape CNI_PATH."""
    with pytest.raises(CNIError) as info:
        invoke.find_in_path("../../../../bin/true", [str(tmp_path)])
    assert "path separator" in info.value.msg


def test_find_in_path_needs_paths():
    with pytest.raises(CNIError) as info:
        invoke.find_in_path("bridge", [])
    assert "no paths" in info.value.msg


def test_find_in_path_first_match_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    script(b, "p", "exit 0\n")
    script(a, "p", "exit 0\n")
    assert invoke.find_in_path("p", [str(tmp_path / "none"), str(a), str(b)]) == str(a / "p")


def test_find_in_path_skips_directories_and_non_executables(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    (a / "p").mkdir()                       # a directory
    script(b, "p", "exit 0\n", mode=0o644)  # not executable
    script(c, "p", "exit 0\n")
    assert invoke.find_in_path("p", [str(a), str(b), str(c)]) == str(c / "p")


def test_find_in_path_not_found(tmp_path):
    (tmp_path / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / "fifo")
    for name in ("missing", "fifo"):
        with pytest.raises(CNIError) as info:
            invoke.find_in_path(name, [str(tmp_path)])
        assert "failed to find plugin" in info.value.msg


def test_find_in_path_follows_symlink_to_regular_file(tmp_path):
    target = script(tmp_path, "real", "exit 0\n")
    (tmp_path / "link").symlink_to(target)
    assert invoke.find_in_path("link", [str(tmp_path)]) == str(tmp_path / "link")


# --- exec_plugin -----------------------------------------------------------------------

def test_exec_plugin_returns_stdout_and_passes_env_and_stdin(tmp_path):
    p = script(tmp_path, "p", 'cat > "$OUT_DIR/stdin"\n'
                               'echo "$CNI_COMMAND" > "$OUT_DIR/cmd"\n'
                               "printf '%s' '{\"ok\":1}'\n")
    out = invoke.exec_plugin(str(p), b'{"x":1}', {"CNI_COMMAND": "ADD", "OUT_DIR": str(tmp_path)})
    assert out == b'{"ok":1}'
    assert (tmp_path / "stdin").read_bytes() == b'{"x":1}'
    assert (tmp_path / "cmd").read_text() == "ADD\n"


def test_exec_plugin_error_object_parsed(tmp_path):
    p = script(tmp_path, "p", 'echo \'{"cniVersion":"1.0.0","code":11,"msg":"busy",'
                               '"details":"later"}\'\nexit 1\n')
    with pytest.raises(CNIError) as info:
        invoke.exec_plugin(str(p), b"{}", {})
    assert (info.value.code, info.value.msg, info.value.details) == (11, "busy", "later")


def test_exec_plugin_error_object_without_code(tmp_path):
    p = script(tmp_path, "p", 'echo \'{"msg":"something failed"}\'\nexit 1\n')
    with pytest.raises(CNIError) as info:
        invoke.exec_plugin(str(p), b"{}", {})
    assert "something failed" in str(info.value)


def test_exec_plugin_unparsable_stdout(tmp_path):
    p = script(tmp_path, "p", "echo 'not json'\nexit 1\n")
    with pytest.raises(CNIError) as info:
        invoke.exec_plugin(str(p), b"{}", {})
    assert info.value.code == errors.INTERNAL
    assert "not json" in str(info.value)


def test_exec_plugin_empty_stdout_wraps_stderr(tmp_path, capfd):
    p = script(tmp_path, "p", "echo 'it broke' >&2\nexit 3\n")
    with pytest.raises(CNIError) as info:
        invoke.exec_plugin(str(p), b"{}", {})
    assert info.value.msg == 'netplugin failed: "it broke"'
    assert "it broke" in capfd.readouterr().err  # stderr is passed through


def test_exec_plugin_no_output_at_all(tmp_path):
    p = script(tmp_path, "p", "exit 4\n")
    with pytest.raises(CNIError) as info:
        invoke.exec_plugin(str(p), b"{}", {})
    assert "no error message" in info.value.msg
    assert "4" in info.value.msg


def test_exec_plugin_stderr_not_on_stdout(tmp_path, capfd):
    p = script(tmp_path, "p", "echo log >&2\necho '{}'\n")
    assert invoke.exec_plugin(str(p), b"", {}) == b"{}\n"
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "log" in captured.err


def test_exec_plugin_cannot_run(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x7fELFgarbage")
    bad.chmod(0o755)
    with pytest.raises(CNIError) as info:
        invoke.exec_plugin(str(bad), b"", {})
    assert info.value.code == errors.INTERNAL


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
