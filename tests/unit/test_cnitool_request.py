"""cnitool request building: injected keys, capability filtering,
prevResult, environment and the reference's argument rules."""

import json

import pytest

from pycni.cnitool import request
from pycni.cnitool.request import RuntimeConf
from pycni.errors import CNIError

RT = RuntimeConf(container_id="c1", netns="/run/netns/x", ifname="eth0",
                 args=[("A", "b"), ("C", "d")],
                 capability_args={"portMappings": [{"hostPort": 80}], "mac": "aa",
                                  "ips": ["10.0.0.2/24"]})
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
        "ips": [{"address": "10.0.0.2/24", "interface": 0}]}


def test_name_and_version_injected_and_plugin_left_alone():
    plugin = {"type": "bridge", "name": "inner", "cniVersion": "0.1.0", "bridge": "br0"}
    config = request.plugin_config(plugin, "net", "1.0.0", None, None)
    assert config == {"type": "bridge", "name": "net", "cniVersion": "1.0.0", "bridge": "br0"}
    assert plugin["name"] == "inner"


def test_runtime_config_only_declared_and_supplied_capabilities():
    plugin = {"type": "portmap",
              "capabilities": {"portMappings": True, "mac": False, "bandwidth": True}}
    config = request.plugin_config(plugin, "net", "1.0.0", None, RT)
    assert config["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert config["capabilities"] == plugin["capabilities"]   # libcni leaves it


def test_runtime_config_omitted_when_empty_and_file_value_kept():
    assert "runtimeConfig" not in request.plugin_config(
        {"type": "x", "capabilities": {"bandwidth": True}}, "net", "1.0.0", None, RT)
    config = request.plugin_config({"type": "x", "runtimeConfig": {"keep": 1}},
                                   "net", "1.0.0", None, RT)
    assert config["runtimeConfig"] == {"keep": 1}


def test_runtime_config_replaces_file_value_when_capabilities_match():
    config = request.plugin_config(
        {"type": "x", "capabilities": {"mac": True}, "runtimeConfig": {"keep": 1}},
        "net", "1.0.0", None, RT)
    assert config["runtimeConfig"] == {"mac": "aa"}


def test_no_capability_args():
    rt = RuntimeConf("c1", "/n", "eth0")
    assert request.runtime_config({"capabilities": {"mac": True}}, None) == {}
    assert "runtimeConfig" not in request.plugin_config(
        {"type": "x", "capabilities": {"mac": True}}, "n", "1.0.0", None, rt)


def test_prev_result_injected_only_when_given():
    assert "prevResult" not in request.plugin_config({"type": "x"}, "n", "1.0.0", None, RT)
    config = request.plugin_config({"type": "x"}, "n", "1.0.0", PREV, RT)
    assert config["prevResult"] == PREV


def test_stdin_sorted_and_prev_result_in_result_order():
    data = request.plugin_stdin({"type": "x", "z": "<"}, "n", "1.0.0", PREV, RT)
    assert data == (b'{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0",'
                    b'"interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.2/24",'
                    b'"interface":0}]},"type":"x","z":"\\u003c"}')


def test_stdin_fully_sorted_when_runtime_config_injected():
    prev = {"cniVersion": "1.0.0", "ips": [{"interface": 0, "address": "10.0.0.2/24"}]}
    data = request.plugin_stdin({"type": "x", "capabilities": {"mac": True}},
                                "n", "1.0.0", prev, RT)
    assert b'"ips":[{"address":"10.0.0.2/24","interface":0}]' in data
    assert json.loads(data)["runtimeConfig"] == {"mac": "aa"}


def test_gc_config():
    valid = [{"containerID": "c1", "ifname": "eth0"}]
    config = request.gc_config({"type": "x", "capabilities": {"mac": True}}, "n", "1.1.0", valid)
    assert config["cni.dev/valid-attachments"] == valid
    assert config["cni.dev/attachments"] == valid
    assert "runtimeConfig" not in config and "prevResult" not in config
    bare = request.gc_config({"type": "x"}, "n", "1.1.0", None)
    assert bare == {"type": "x", "name": "n", "cniVersion": "1.1.0"}


def test_plugin_env_for_attachment_and_for_gc():
    env = request.plugin_env({"PATH": "/bin", "CNI_COMMAND": "stale"}, "ADD", RT, ["/a", "/b"])
    assert env == {"PATH": "/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1",
                   "CNI_NETNS": "/run/netns/x", "CNI_ARGS": "A=b;C=d", "CNI_IFNAME": "eth0",
                   "CNI_PATH": "/a:/b"}
    gc_env = request.plugin_env({"CNI_IFNAME": "eth9"}, "GC", None, ["/a"])
    assert gc_env["CNI_IFNAME"] == "" and gc_env["CNI_CONTAINERID"] == ""
    assert gc_env["CNI_COMMAND"] == "GC" and gc_env["CNI_PATH"] == "/a"


def test_container_id_from_netns_path():
    # Value computed by the reference cnitool for the same path.
    assert request.container_id_for("/tmp/ns-fake") == "cnitool-5accf66fa4f7cbabc439"
    assert request.container_id_for("/run/netns/a") != request.container_id_for("/run/netns/b")


def test_absolute_netns(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert request.absolute_netns("ns") == str(tmp_path / "ns")
    assert request.absolute_netns("/run/netns/../netns/x/") == "/run/netns/x"
    assert request.absolute_netns("//run//netns/x") == "/run/netns/x"


@pytest.mark.parametrize("text, pairs", [
    ("A=b", [("A", "b")]),
    ("IgnoreUnknown=1;K8S_POD_NAME=p", [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")]),
])
def test_cni_args(text, pairs):
    assert request.parse_cni_args(text) == pairs


@pytest.mark.parametrize("text", ["A", "A=", "=b", "A=b=c", "A=b;", "A=b;;C=d"])
def test_cni_args_rejected(text):
    with pytest.raises(ValueError, match="invalid CNI_ARGS pair"):
        request.parse_cni_args(text)


def test_capability_args():
    assert request.parse_capability_args("") is None
    assert request.parse_capability_args('{"mac":"aa"}') == {"mac": "aa"}
    with pytest.raises(ValueError):
        request.parse_capability_args("[1]")
    with pytest.raises(ValueError):
        request.parse_capability_args("{bad")


@pytest.mark.parametrize("cid, code", [("", 3), ("-x", 4), ("a b", 4)])
def test_container_id_validation(cid, code):
    with pytest.raises(CNIError) as info:
        request.validate_container_id(cid)
    assert info.value.code == code


@pytest.mark.parametrize("name", ["", "a/b", "-x", "a b"])
def test_network_name_validation(name):
    with pytest.raises(CNIError) as info:
        request.validate_network_name(name)
    assert info.value.code == 7


@pytest.mark.parametrize("ifname", ["", "x" * 16, ".", "..", "a/b", "a:b", "a b"])
def test_ifname_validation(ifname):
    with pytest.raises(CNIError) as info:
        request.validate_ifname(ifname)
    assert info.value.code == 4


def test_valid_names_pass():
    request.validate_container_id("cnitool-5accf66fa4f7cbabc439")
    request.validate_network_name("my_net.1-x")
    request.validate_ifname("x" * 15)


def test_describe_plugin():
    assert request.describe_plugin({"type": "bridge"}) == 'type="bridge"'
    assert request.describe_plugin({"type": "bridge", "name": "b"}) == 'type="bridge" name="b"'
