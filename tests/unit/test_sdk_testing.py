"""pycni.testing.run: a plugin served in-process through skel.run, its
exit status, stdout, error object and result as a runtime would see them."""

import pytest

from pycni import skel, testing
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.result import IPConfig, Result


class Echo(skel.Plugin):
    name = "echo"
    supported_versions = ("0.4.0", "1.0.0")
    seen = None

    def add(self, req):
        Echo.seen = req
        if req.config.get("fail"):
            raise CNIError(INVALID_NETWORK_CONFIG, "asked to fail", "details")
        if req.config.get("crash"):
            raise RuntimeError("a bug")
        return Result(ips=[IPConfig(address="10.0.0.2/24", gateway="10.0.0.1")])

    def delete(self, req):
        Echo.seen = req


CONF = {"cniVersion": "1.0.0", "name": "net", "type": "echo"}


def test_add_result_in_the_config_version():
    out = testing.run(Echo(), "ADD", CONF, netns="/run/netns/x", ifname="net1",
                      container_id="c1", args="K8S_POD_NAME=p", cni_path=["/opt/cni/bin"])
    assert out.ok and out.code == 0
    assert out.json["cniVersion"] == "1.0.0"
    assert out.result.ips[0].address == "10.0.0.2/24"
    req = Echo.seen
    assert (req.netns, req.ifname, req.container_id, req.path) == \
        ("/run/netns/x", "net1", "c1", ["/opt/cni/bin"])
    assert req.cni_args.get("K8S_POD_NAME") == "p"


def test_environment_is_only_what_run_builds(monkeypatch):
    monkeypatch.setenv("CNI_IFNAME", "from-os-environ")
    monkeypatch.setenv("SDK_MARK", "1")
    testing.run(Echo(), "ADD", CONF, netns="/x", env={"EXTRA": "y"})
    assert Echo.seen.ifname == "eth0"
    assert "SDK_MARK" not in Echo.seen.env and Echo.seen.env["EXTRA"] == "y"


def test_error_object_and_exit_status():
    out = testing.run(Echo, "ADD", {**CONF, "fail": True}, netns="/x")
    assert out.code == 1 and not out.ok and out.result is None
    assert (out.error.code, out.error.msg, out.error.details) == (7, "asked to fail", "details")
    with pytest.raises(CNIError) as exc:
        testing.call(Echo, "ADD", {**CONF, "fail": True}, netns="/x")
    assert exc.value.code == 7


def test_a_bug_is_an_internal_error_with_its_traceback():
    out = testing.run(Echo(), "ADD", {**CONF, "crash": True}, netns="/x")
    assert out.error.code == 999 and "a bug" in out.error.msg
    assert "Traceback" in out.stderr and "RuntimeError" in out.stderr


def test_skel_checks_apply():
    out = testing.run(Echo(), "ADD", {**CONF, "cniVersion": "0.3.1"}, netns="/x")
    assert out.error.code == 1          # incompatible version
    out = testing.run(Echo(), "ADD", CONF, netns="/x", env={"CNI_IFNAME": None})
    assert out.error.code == 4          # CNI_IFNAME missing
    out = testing.run(Echo(), "ADD", b"{not json", netns="/x")
    assert out.error.code == 6


def test_del_prints_nothing_and_version_answers():
    out = testing.run(Echo(), "DEL", CONF)
    assert out.ok and out.stdout == "" and out.json is None
    assert testing.run(Echo(), "VERSION").json["supportedVersions"] == ["0.4.0", "1.0.0"]


def test_plugin_from_a_module_name():
    out = testing.run("pycni.plugins.loopback.plugin", "VERSION")
    assert out.ok and "1.1.0" in out.json["supportedVersions"]
    with pytest.raises(ValueError):
        testing.plugin_instance("pycni.result")


def test_fixture_names_are_reexported():
    from pycni.netns_fixtures import netns_world
    assert testing.World is netns_world.World and testing.Namespace is netns_world.Namespace
