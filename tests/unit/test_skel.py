"""skel.run in-process: environment, stdin, version negotiation, dispatch.

Checked against the reference pkg/skel behaviour (see reference notes §1):
which variables each command needs, the container-ID / interface-name /
network-name rules, error codes, and that stdout only ever holds one JSON
document (a result or an error object).
"""

import io
import json

import pytest

from pycni import errors, skel
from pycni import version as versions
from pycni.errors import CNIError
from pycni.result import Interface, IPConfig, Result, Route

BASE_ENV = {
    "CNI_CONTAINERID": "0123456789abcdef",
    "CNI_NETNS": "/var/run/netns/pycni-unit-does-not-exist",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


def conf(version: str | None = "1.0.0", **extra) -> dict:
    out = {"name": "testnet", "type": "fake"}
    if version is not None:
        out["cniVersion"] = version
    out.update(extra)
    return out


def sample_result() -> Result:
    return Result(interfaces=[Interface("eth0", mac="aa:bb:cc:dd:ee:ff", sandbox="/x")],
                  ips=[IPConfig("10.0.0.2/24", gateway="10.0.0.1", interface=0),
                       IPConfig("fd00::2/64", interface=0)],
                  routes=[Route("0.0.0.0/0", gw="10.0.0.1")])


class FakePlugin(skel.Plugin):
    name = "fake"

    def __init__(self, result=None, raise_exc=None, versions_=None):
        self.result = sample_result() if result is None else result
        self.raise_exc = raise_exc
        self.calls = []
        if versions_ is not None:
            self.supported_versions = versions_

    def _call(self, command, req):
        self.calls.append((command, req))
        if self.raise_exc is not None:
            raise self.raise_exc

    def add(self, req):
        self._call("ADD", req)
        return self.result

    def delete(self, req):
        self._call("DEL", req)

    def check(self, req):
        self._call("CHECK", req)


class Outcome:
    def __init__(self, code, stdout, plugin):
        self.code = code
        self.stdout = stdout
        self.plugin = plugin

    @property
    def doc(self):
        return json.loads(self.stdout)

    @property
    def error(self):
        assert self.code == 1, self.stdout
        doc = self.doc
        assert set(doc) <= {"cniVersion", "code", "msg", "details"}
        return doc


def run(command, config=None, env=None, stdin=None, plugin=None, drop=()):
    full_env = {"CNI_COMMAND": command, **BASE_ENV, **(env or {})}
    for name in drop:
        full_env.pop(name, None)
    if stdin is None:
        stdin = json.dumps(conf() if config is None else config).encode()
    plugin = plugin or FakePlugin()
    out = io.StringIO()
    code = skel.run(plugin, full_env, io.BytesIO(stdin), out)
    return Outcome(code, out.getvalue(), plugin)


# --- environment -------------------------------------------------------------

@pytest.mark.parametrize("command, missing", [
    ("ADD", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
    ("CHECK", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
    ("DEL", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]),
    ("GC", ["CNI_PATH"]),
    ("STATUS", ["CNI_PATH"]),
])
def test_missing_env_lists_all_missing(command, missing):
    res = run(command, conf("1.1.0"), drop=BASE_ENV)
    err = res.error
    assert err["code"] == errors.INVALID_ENVIRONMENT
    assert err["msg"] == f"required env variables [{','.join(missing)}] missing"
    assert res.plugin.calls == []


@pytest.mark.parametrize("name", list(BASE_ENV))
def test_each_required_var_for_add(name):
    err = run("ADD", drop=[name]).error
    assert err["code"] == errors.INVALID_ENVIRONMENT
    assert err["msg"] == f"required env variables [{name}] missing"


@pytest.mark.parametrize("name", list(BASE_ENV))
def test_empty_var_counts_as_missing(name):
    err = run("ADD", env={name: ""}).error
    assert name in err["msg"]


def test_del_does_not_need_netns():
    res = run("DEL", env={"CNI_NETNS": ""})
    assert (res.code, res.stdout) == (0, "")
    assert res.plugin.calls[0][1].netns == ""


def test_del_without_netns_var_at_all():
    res = run("DEL", drop=["CNI_NETNS"])
    assert (res.code, res.stdout) == (0, "")


def test_gc_and_status_need_no_attachment_vars():
    for command in ("GC", "STATUS"):
        res = run(command, conf("1.1.0"), drop=["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
        assert (res.code, res.stdout) == (0, "")


@pytest.mark.parametrize("command", ["FOO", "add", "Add", "ADD ", "DELETE"])
def test_unknown_command(command):
    res = run(command)
    err = res.error
    assert err["code"] == errors.INVALID_ENVIRONMENT
    assert err["msg"] == f"unknown CNI_COMMAND: {command}"
    assert res.plugin.calls == []


def test_no_command_prints_about_to_stderr(capsys):
    res = run("")
    assert (res.code, res.stdout) == (0, "")
    err = capsys.readouterr().err
    assert "CNI protocol versions supported: 0.1.0, 0.2.0" in err
    assert res.plugin.calls == []


@pytest.mark.parametrize("cid", [
    "a", "A", "0", "abc-def_ghi.jkl", "a..b", "a" * 255,
    "5d2f0a8c3b1e4f6a9d7c8b2e1f0a3d4c5b6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a",
])
def test_valid_container_ids(cid):
    assert run("ADD", env={"CNI_CONTAINERID": cid}).code == 0


@pytest.mark.parametrize("cid", [
    "-a", ".a", "_a", "..", ".", "a/b", "../etc", "a b", "a\nb", "a:b", "a*",
    "é", "a\x00b",
])
def test_invalid_container_ids(cid):
    res = run("ADD", env={"CNI_CONTAINERID": cid})
    err = res.error
    assert err["code"] == errors.INVALID_ENVIRONMENT
    assert err["msg"] == "invalid characters in containerID"
    assert err["details"] == cid
    assert res.plugin.calls == []


def test_container_id_too_long():
    res = run("DEL", env={"CNI_CONTAINERID": "a" * 256})
    assert res.error["code"] == errors.INVALID_ENVIRONMENT
    assert "too long" in res.error["msg"]


@pytest.mark.parametrize("ifname", [
    "eth0", "e", "a" * 15, "net1.100", "veth-x_y", "é" * 7, "lo",
])
def test_valid_ifnames(ifname):
    assert run("ADD", env={"CNI_IFNAME": ifname}).code == 0


@pytest.mark.parametrize("ifname, msg", [
    ("a" * 16, "too long"),
    ("é" * 8, "too long"),           # 16 bytes
    (".", ". or .."),
    ("..", ". or .."),
    ("a/b", "contains / or :"),
    ("/", "contains / or :"),
    ("eth0:1", "contains / or :"),
    ("eth 0", "whitespace"),
    ("eth0\t", "whitespace"),
    ("\neth", "whitespace"),
    ("eth\u00a0", "whitespace"),
])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_invalid_ifnames(command, ifname, msg):
    res = run(command, conf("1.0.0"), env={"CNI_IFNAME": ifname})
    err = res.error
    assert err["code"] == errors.INVALID_ENVIRONMENT
    assert msg in err["msg"]
    assert res.plugin.calls == []


def test_empty_ifname_is_missing():
    assert "CNI_IFNAME" in run("ADD", env={"CNI_IFNAME": ""}).error["msg"]


def test_ifname_validator_empty():
    with pytest.raises(CNIError) as info:
        skel.validate_ifname("")
    assert info.value.msg == "interface name is empty"


# --- stdin / config ----------------------------------------------------------

@pytest.mark.parametrize("stdin", [b"", b"{", b"{'name': 'x'}", b"nope", b"\xff\xfe",
                                   b'{"name":"a"} {"name":"b"}'])
def test_malformed_json_is_decoding_failure(stdin):
    res = run("ADD", stdin=stdin)
    assert res.error["code"] == errors.DECODING_FAILURE
    assert res.plugin.calls == []


@pytest.mark.parametrize("stdin", [b"[]", b'"x"', b"5", b"null", b"true"])
def test_non_object_json_is_decoding_failure(stdin):
    assert run("ADD", stdin=stdin).error["code"] == errors.DECODING_FAILURE


@pytest.mark.parametrize("config", [
    {"cniVersion": "1.0.0"},
    {"cniVersion": "1.0.0", "name": ""},
    {"cniVersion": "1.0.0", "name": None},
])
def test_missing_network_name(config):
    err = run("ADD", config).error
    assert err["code"] == errors.INVALID_NETWORK_CONFIG
    assert err["msg"] == "missing network name"


@pytest.mark.parametrize("name", ["a/b", "../x", ".hidden", "-x", "a b", "x" * 256, 5, ["x"]])
def test_invalid_network_name(name):
    err = run("ADD", conf(name=name)).error
    assert err["code"] == errors.INVALID_NETWORK_CONFIG
    assert "network name" in err["msg"]


@pytest.mark.parametrize("command", ["DEL", "CHECK", "GC", "STATUS"])
def test_config_checked_for_every_command_but_version(command):
    assert run(command, stdin=b"{").error["code"] == errors.DECODING_FAILURE
    assert run(command, {"cniVersion": "1.1.0"}).error["code"] == errors.INVALID_NETWORK_CONFIG


def test_keys_case_insensitive_like_go():
    res = run("ADD", {"CNIVersion": "0.3.1", "Name": "net", "type": "fake"})
    assert res.code == 0
    assert res.doc["cniVersion"] == "0.3.1"
    assert res.plugin.calls[0][1].network_name == "net"


# --- versions ----------------------------------------------------------------

@pytest.mark.parametrize("version", ["9.9.9", "1.0", "v1.0.0", "1.0.0-rc1", "0.5.0"])
def test_unknown_cni_version(version):
    res = run("ADD", conf(version))
    err = res.error
    assert err["code"] == errors.INCOMPATIBLE_VERSION
    assert err["msg"] == "incompatible CNI versions"
    assert f'config is "{version}"' in err["details"]
    assert '"1.1.0"' in err["details"]
    assert res.plugin.calls == []


def test_non_string_version_is_decoding_failure():
    assert run("ADD", conf(1)).error["code"] == errors.DECODING_FAILURE


@pytest.mark.parametrize("config", [conf(None), conf("")])
def test_missing_version_means_0_1_0(config):
    res = run("ADD", config)
    assert res.code == 0
    assert res.plugin.calls[0][1].cni_version == "0.1.0"
    assert res.doc == {"cniVersion": "0.1.0",
                       "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                               "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]},
                       "ip6": {"ip": "fd00::2/64"},
                       "dns": {}}


def test_version_not_supported_by_plugin():
    plugin = FakePlugin(versions_=("0.4.0", "1.0.0"))
    res = run("ADD", conf("0.3.1"), plugin=plugin)
    assert res.error["code"] == errors.INCOMPATIBLE_VERSION
    assert res.error["details"] == 'config is "0.3.1", plugin supports ["0.4.0" "1.0.0"]'


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
def test_check_needs_0_4_0(version):
    res = run("CHECK", conf(version))
    err = res.error
    assert err["code"] == errors.INCOMPATIBLE_VERSION
    assert err["msg"] == "config version does not allow CHECK"
    assert err["cniVersion"] == version
    assert res.plugin.calls == []


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_check_allowed(version):
    res = run("CHECK", conf(version))
    assert (res.code, res.stdout) == (0, "")
    assert res.plugin.calls[0][0] == "CHECK"


@pytest.mark.parametrize("command", ["GC", "STATUS"])
@pytest.mark.parametrize("version", ["0.1.0", "0.3.1", "0.4.0", "1.0.0"])
def test_gc_status_need_1_1_0(command, version):
    err = run(command, conf(version)).error
    assert err["code"] == errors.INCOMPATIBLE_VERSION
    assert err["msg"] == f"config version does not allow {command}"


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_unimplemented_gc_status_succeed_silently(command):
    res = run(command, conf("1.1.0"))
    assert (res.code, res.stdout) == (0, "")


# --- VERSION -----------------------------------------------------------------

class ExplodingStdin:
    def read(self, *args):
        raise AssertionError("VERSION must not read stdin")


def run_version(env, plugin=None):
    out = io.StringIO()
    code = skel.run(plugin or FakePlugin(), {"CNI_COMMAND": "VERSION", **env},
                    ExplodingStdin(), out)
    return code, out.getvalue()


@pytest.mark.parametrize("env", [
    {},
    # podman's probe (runtime-facts.md)
    {"CNI_NETNS": "dummy", "CNI_IFNAME": "dummy", "CNI_PATH": "dummy", "CNI_ARGS": "",
     "CNI_CONTAINERID": ""},
    # nonsense everywhere still answers
    {"CNI_NETNS": "/nope", "CNI_IFNAME": "a/b:c d", "CNI_CONTAINERID": "../x",
     "CNI_ARGS": "garbage"},
])
def test_version(env):
    code, stdout = run_version(env)
    assert code == 0
    assert stdout.endswith("}\n") and stdout.count("\n") == 1
    assert json.loads(stdout) == {"cniVersion": "1.1.0",
                                  "supportedVersions": list(versions.ALL)}


def test_version_lists_plugin_versions():
    _, stdout = run_version({}, FakePlugin(versions_=("0.4.0", "1.0.0")))
    assert json.loads(stdout)["supportedVersions"] == ["0.4.0", "1.0.0"]


def test_every_spec_version_supported_by_default():
    for v in ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"):
        assert v in skel.Plugin.supported_versions


# --- dispatch, results, errors -----------------------------------------------

@pytest.mark.parametrize("version", versions.ALL)
def test_add_result_in_config_version(version):
    res = run("ADD", conf(version))
    assert res.code == 0
    assert res.doc == sample_result().to_dict(version)
    assert res.doc["cniVersion"] == version
    assert res.stdout.startswith("{\n    ")


def test_add_result_shapes():
    assert "ip4" in run("ADD", conf("0.2.0")).doc
    assert run("ADD", conf("0.3.1")).doc["ips"][0]["version"] == "4"
    assert "version" not in run("ADD", conf("1.0.0")).doc["ips"][0]


def test_add_result_unconvertible_is_error():
    plugin = FakePlugin(result=Result(interfaces=[Interface("eth0")]))
    err = run("ADD", conf("0.2.0"), plugin=plugin).error
    assert "no valid IP addresses" in err["msg"]


def test_add_returning_none_is_internal_error():
    class NoResult(FakePlugin):
        def add(self, req):
            return None
    assert run("ADD", plugin=NoResult()).error["code"] == errors.INTERNAL


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_cni_error_from_plugin(command):
    plugin = FakePlugin(raise_exc=CNIError(errors.TRY_AGAIN_LATER, "busy", "try later"))
    res = run(command, conf("0.4.0"), plugin=plugin)
    assert res.error == {"cniVersion": "0.4.0", "code": 11, "msg": "busy",
                         "details": "try later"}
    assert res.stdout.startswith("{\n    ")


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("k"), ZeroDivisionError(),
                                 OSError(13, "Permission denied")])
def test_other_exceptions_become_internal_error(exc, capsys):
    res = run("ADD", plugin=FakePlugin(raise_exc=exc))
    err = res.error
    assert err["code"] == errors.INTERNAL
    assert err["msg"]
    assert "Traceback" in capsys.readouterr().err


def test_error_without_details_has_no_details_key():
    res = run("DEL", plugin=FakePlugin(raise_exc=CNIError(errors.INTERNAL, "x")))
    assert "details" not in res.error


@pytest.mark.parametrize("version", versions.ALL)
def test_error_object_carries_config_version(version):
    res = run("DEL", conf(version), plugin=FakePlugin(raise_exc=CNIError(7, "bad")))
    assert res.error["cniVersion"] == version


def test_error_before_config_carries_current_version():
    assert run("ADD", drop=["CNI_PATH"]).error["cniVersion"] == versions.CURRENT


def test_error_with_known_config_version_uses_it():
    err = run("ADD", conf("0.4.0"), plugin=FakePlugin(versions_=("1.0.0",))).error
    assert err["code"] == errors.INCOMPATIBLE_VERSION
    assert err["cniVersion"] == "0.4.0"


def test_success_stdout_is_one_json_document(capsys):
    res = run("ADD")
    json.loads(res.stdout)  # exactly one document, nothing else
    assert capsys.readouterr().out == ""  # nothing printed to the real stdout


def test_failure_stdout_is_one_json_document(capsys):
    res = run("ADD", plugin=FakePlugin(raise_exc=RuntimeError("x")))
    json.loads(res.stdout)
    assert capsys.readouterr().out == ""


def test_del_and_check_print_nothing():
    for command in ("DEL", "CHECK"):
        res = run(command, conf("1.0.0"))
        assert (res.code, res.stdout) == (0, "")


# --- request contents ---------------------------------------------------------

def test_request_fields():
    config = conf("1.0.0", ipam={"type": "host-local"})
    res = run("ADD", config, env={"CNI_ARGS": "IgnoreUnknown=1;IP=10.0.0.5",
                                   "CNI_PATH": "/a:/b::/c"})
    req = res.plugin.calls[0][1]
    assert req.command == "ADD"
    assert req.container_id == BASE_ENV["CNI_CONTAINERID"]
    assert req.netns == BASE_ENV["CNI_NETNS"]
    assert req.ifname == "eth0"
    assert req.path == ["/a", "/b", "/c"]
    assert req.config == config
    assert json.loads(req.stdin) == config
    assert req.network_name == "testnet"
    assert req.cni_version == "1.0.0"
    assert req.cni_args.get("IP") == "10.0.0.5"
    assert req.prev_result is None


def test_bad_cni_args_surface_only_when_used():
    res = run("ADD", env={"CNI_ARGS": "garbage"})
    assert res.code == 0
    with pytest.raises(CNIError) as info:
        res.plugin.calls[0][1].cni_args
    assert info.value.code == errors.INVALID_ENVIRONMENT


PREV_RESULTS = {
    "0.1.0": {"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.2/24"}},
    "0.2.0": {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"},
              "dns": {}},
    "0.3.0": {"cniVersion": "0.3.0", "ips": [{"version": "4", "address": "10.0.0.2/24"}]},
    "0.3.1": {"cniVersion": "0.3.1", "interfaces": [{"name": "eth0"}],
              "ips": [{"version": "4", "interface": 0, "address": "10.0.0.2/24"}], "dns": {}},
    "0.4.0": {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.2/24"}]},
    "1.0.0": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]},
    "1.1.0": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": 1400}],
              "ips": [{"interface": 0, "address": "10.0.0.2/24"}]},
    "none": {"ips": [{"address": "10.0.0.2/24"}]},
}


class PassThrough(FakePlugin):
    def add(self, req):
        self.calls.append(("ADD", req))
        return req.prev_result


@pytest.mark.parametrize("prev", list(PREV_RESULTS))
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_prev_result_in_any_version(prev, version):
    res = run("ADD", conf(version, prevResult=PREV_RESULTS[prev]), plugin=PassThrough())
    assert res.code == 0, res.stdout
    assert res.doc["cniVersion"] == version
    assert [ip["address"] for ip in res.doc["ips"]] == ["10.0.0.2/24"]
    parsed = res.plugin.calls[0][1].prev_result
    assert parsed.cni_version == (version if prev == "none" else prev)


def test_prev_result_key_case_insensitive():
    res = run("ADD", conf("1.0.0", PrevResult=PREV_RESULTS["1.0.0"]), plugin=PassThrough())
    assert res.code == 0


@pytest.mark.parametrize("prev", [
    "x", [1], {"cniVersion": "1.0.0", "ips": [{"address": "nope"}]},
    {"cniVersion": "1.0.0", "ips": "x"}, {"cniVersion": 1},
])
def test_malformed_prev_result_is_decoding_failure(prev):
    res = run("ADD", conf("1.0.0", prevResult=prev), plugin=PassThrough())
    assert res.error["code"] == errors.DECODING_FAILURE


def test_empty_prev_result_is_none():
    for prev in ({}, None):
        res = run("DEL", conf("1.0.0", prevResult=prev))
        assert res.plugin.calls[0][1].prev_result is None


def test_valid_attachments_for_gc():
    attachments = [{"containerID": "c1", "ifname": "eth0"}, {"ContainerID": "c2"}]
    res = run("GC", conf("1.1.0", **{"cni.dev/valid-attachments": attachments}))
    assert res.code == 0

    class Gc(FakePlugin):
        def gc(self, req):
            self.calls.append(("GC", req))
            self.seen = [(a.container_id, a.ifname) for a in req.valid_attachments]

    plugin = Gc()
    run("GC", conf("1.1.0", **{"cni.dev/valid-attachments": attachments}), plugin=plugin)
    assert plugin.seen == [("c1", "eth0"), ("c2", "")]

    plugin = Gc()
    run("GC", conf("1.1.0", **{"cni.dev/attachments": attachments[:1]}), plugin=plugin)
    assert plugin.seen == [("c1", "eth0")]

    plugin = Gc()
    run("GC", conf("1.1.0"), plugin=plugin)
    assert plugin.seen == []


@pytest.mark.parametrize("bad", [{"a": 1}, "x", [5], [{"containerID": 5}]])
def test_invalid_valid_attachments(bad):
    class Gc(FakePlugin):
        def gc(self, req):
            return req.valid_attachments
    err = run("GC", conf("1.1.0", **{"cni.dev/valid-attachments": bad}), plugin=Gc()).error
    assert err["code"] == errors.INVALID_NETWORK_CONFIG


# --- own network namespace ------------------------------------------------------

OWN_NETNS = "/proc/self/ns/net"


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_own_netns_refused(command):
    res = run(command, env={"CNI_NETNS": OWN_NETNS})
    err = res.error
    assert err["code"] == errors.INVALID_NETNS
    assert "CNI_NETNS_OVERRIDE" in err["details"]
    assert res.plugin.calls == []


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True"])
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_own_netns_override(command, value):
    res = run(command, env={"CNI_NETNS": OWN_NETNS, "CNI_NETNS_OVERRIDE": value})
    assert res.code == 0


@pytest.mark.parametrize("value", ["0", "false", "yes", ""])
def test_own_netns_override_needs_true(value):
    res = run("ADD", env={"CNI_NETNS": OWN_NETNS, "CNI_NETNS_OVERRIDE": value})
    assert res.error["code"] == errors.INVALID_NETNS


def test_check_in_own_netns_not_refused():
    """The reference only guards ADD and DEL."""
    assert run("CHECK", conf("1.0.0"), env={"CNI_NETNS": OWN_NETNS}).code == 0


# --- stdin read failure -----------------------------------------------------------

class BrokenStdin:
    def read(self, *args):
        raise OSError(5, "Input/output error")


def test_stdin_read_error_is_io_failure():
    out = io.StringIO()
    code = skel.run(FakePlugin(), {"CNI_COMMAND": "ADD", **BASE_ENV}, BrokenStdin(), out)
    assert code == 1
    assert json.loads(out.getvalue())["code"] == errors.IO_FAILURE


# --- errors and version helpers ------------------------------------------------------

def test_cni_error_round_trip():
    err = CNIError(errors.UNSUPPORTED_FIELD, 'unsupported field "x"', "x=1")
    doc = err.to_dict("1.0.0")
    assert doc == {"cniVersion": "1.0.0", "code": 2, "msg": 'unsupported field "x"',
                   "details": "x=1"}
    back = CNIError.from_dict(doc)
    assert (back.code, back.msg, back.details) == (2, 'unsupported field "x"', "x=1")
    assert str(back) == 'unsupported field "x"; x=1'
    assert str(CNIError(1, "m")) == "m"


@pytest.mark.parametrize("doc, code", [
    ({"msg": "m"}, errors.INTERNAL),
    ({"code": "7", "msg": "m"}, errors.INTERNAL),
    ({"code": True, "msg": "m"}, errors.INTERNAL),
    ({"code": 50, "msg": "m", "details": None}, 50),
])
def test_cni_error_from_odd_dicts(doc, code):
    err = CNIError.from_dict(doc)
    assert err.code == code
    assert err.details == ""


def test_error_code_values():
    assert (errors.INCOMPATIBLE_VERSION, errors.UNSUPPORTED_FIELD, errors.UNKNOWN_CONTAINER,
            errors.INVALID_ENVIRONMENT, errors.IO_FAILURE, errors.DECODING_FAILURE,
            errors.INVALID_NETWORK_CONFIG, errors.INVALID_NETNS, errors.TRY_AGAIN_LATER,
            errors.PLUGIN_NOT_AVAILABLE, errors.PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY,
            errors.INTERNAL) == (1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999)


def test_version_helpers():
    assert versions.parse("0.3.1") == (0, 3, 1)
    assert versions.at_least("1.0.0", "0.4.0")
    assert not versions.at_least("0.3.1", "0.4.0")
    assert versions.at_least("0.10.0", "0.4.0")
    for bad in ("1.0", "1.0.0.0", "a.b.c", "", "1.0.0-rc1", "\uff11.0.0", " 1.0.0"):
        with pytest.raises(ValueError):
            versions.parse(bad)
    assert [v for v in versions.ALL if versions.has_check(v)] == ["0.4.0", "1.0.0", "1.1.0"]
    assert [v for v in versions.ALL if versions.has_gc_and_status(v)] == ["1.1.0"]
    assert [v for v in versions.ALL if versions.is_legacy_result(v)] == ["0.1.0", "0.2.0"]
    assert [v for v in versions.ALL if versions.has_ip_version_field(v)] == \
        ["0.3.0", "0.3.1", "0.4.0"]
    assert versions.CURRENT == versions.ALL[-1] == "1.1.0"
    assert versions.DEFAULT == "0.1.0"


def test_node_conf_path_is_nodeconf_s():
    from pycni import nodeconf
    assert skel.NODE_CONF == nodeconf.CONF_FILE


def test_prev_result_is_parsed_once_and_a_bad_one_raises_every_time():
    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24"}]}
    req = skel.Request("DEL", {}, config={"prevResult": prev})
    req.cni_version = "1.0.0"
    assert req.prev_result is req.prev_result
    assert req.prev_addresses() == ["10.1.0.5/24"]
    bad = skel.Request("DEL", {}, config={"prevResult": {"ips": "nope"}})
    for _ in range(2):
        with pytest.raises(errors.CNIError):
            bad.prev_result
    assert bad.prev_addresses() == []
    assert skel.Request("DEL", {}, config={}).prev_addresses() == []
