"""The record classes the IPAM plugins and the result share (issue #17):
pycni.config.IPAMPluginConf under host-local's and static's models,
pycni.config.DNSConf as pycni.result.DNS, pycni.result.omit_empty for
Go's `omitempty`. What the consolidation must keep: the keys, the order
in which fields are decoded (the first bad one is the one reported), and
what each model ignores."""

import pytest

from pycni import config as pc
from pycni import model
from pycni.decode import decode
from pycni.errors import CNIError
from pycni.ipam.dhcp import config as dhcp_config
from pycni.ipam.host_local import config as host_local_config
from pycni.ipam.static import config as static_config
from pycni.result import ALWAYS, DNS, OMITEMPTY, POINTER, omit_empty

HOST_LOCAL_IPAM = {"type": "host-local", "subnet": "10.1.0.0/24"}
STATIC_IPAM = {"type": "static", "addresses": [{"address": "10.1.0.2/24"}]}


def names(cls) -> list[str]:
    return [f.name for f in model.fields(cls)]


def refusal(load, config: dict) -> str:
    with pytest.raises(CNIError) as err:
        load(config, "")
    return err.value.msg


def test_omit_empty_follows_the_tags():
    out = omit_empty(("a", "", ALWAYS), ("b", "", OMITEMPTY), ("c", 0, OMITEMPTY),
                     ("d", None, OMITEMPTY), ("e", False, OMITEMPTY), ("f", [], OMITEMPTY),
                     ("g", 0, POINTER), ("h", False, POINTER), ("i", None, POINTER),
                     ("j", "x", OMITEMPTY), ("k", None, ALWAYS))
    assert list(out.items()) == [("a", ""), ("g", 0), ("h", False), ("j", "x"), ("k", None)]


def test_ipam_models_decode_in_the_reference_net_order():
    net = ["name", "cni_version", "ipam", "runtime_config", "args"]
    assert names(host_local_config.HostLocalConf) == net
    assert names(static_config.StaticConf) == net
    assert names(dhcp_config.DhcpConf) == ["name", "cni_version", "ipam"]
    assert names(host_local_config.HostLocalIPAMConf) == [
        "type", "subnet", "range_start", "range_end", "gateway", "ranges", "routes",
        "data_dir", "resolv_conf"]
    assert names(host_local_config.RuntimeConf) == ["ip_ranges", "ips"]
    assert names(pc.IPAMRuntimeConf) == ["ip_ranges", "ips"]


def test_the_first_bad_field_in_that_order_is_reported():
    bad_ipam = {**HOST_LOCAL_IPAM, "type": 5, "gateway": 5}
    assert "config.ipam.type" in refusal(host_local_config.load, {"ipam": bad_ipam})
    runtime = {"ipRanges": 5, "ips": 5}
    assert "config.runtimeConfig.ipRanges" in refusal(
        host_local_config.load, {"ipam": HOST_LOCAL_IPAM, "runtimeConfig": runtime})
    assert "config.runtimeConfig.ips" in refusal(
        static_config.load, {"ipam": STATIC_IPAM, "runtimeConfig": runtime})
    assert "config.ipam" in refusal(
        static_config.load, {"ipam": 5, "runtimeConfig": runtime, "args": 5})


def test_what_each_model_ignores():
    # static reads no ipRanges (kept raw, never refused); dhcp no runtimeConfig or args
    conf = static_config.load({"ipam": STATIC_IPAM, "runtimeConfig": {"ipRanges": 5}})
    assert [str(a.cidr) for a in conf.addresses] == ["10.1.0.2/24"]
    conf = dhcp_config.load({"ipam": {"type": "dhcp"}, "runtimeConfig": 5, "args": 5})
    assert conf.ipam is not None and conf.ipam.type == "dhcp"


def test_a_config_dns_is_the_result_dns():
    assert pc.DNSConf is DNS
    conf = decode(pc.NetConf, {"dns": {"nameservers": ["10.0.0.53"], "search": ["a"]}})
    assert conf.dns.to_dict() == {"nameservers": ["10.0.0.53"], "search": ["a"]}
