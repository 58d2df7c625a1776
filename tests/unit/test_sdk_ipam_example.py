"""docs/sdk.md's IPAM config example (pycni.config.IPAMPluginConf and
IPAMRuntimeConf) runs and means what the text says: args.cni.ips then the
`ips` capability, ipRanges typed by the redefined runtime_config, code 7
without `ipam`; and the shell has the reference IPAM Net struct's keys."""

import os

import pytest

from pycni import model
from pycni.config import IPAMPluginConf, IPAMRuntimeConf
from pycni.errors import CNIError

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "docs", "sdk.md")


def example() -> dict:
    text = open(DOCS).read()
    start = text.index("**An IPAM plugin's config**")
    block = text.index("```python\n", start) + len("```python\n")
    code = text[block:text.index("```", block)]
    namespace: dict = {}
    exec(compile(code, "docs/sdk.md", "exec"), namespace)
    return namespace


def test_example_reads_args_then_capability():
    ns = example()
    raw = {"cniVersion": "1.0.0", "name": "net", "type": "bridge",
           "ipam": {"type": "pool", "pool": ["10.9.0.0/24"]},
           "args": {"cni": {"ips": ["10.9.0.5/24"]}},
           "runtimeConfig": {"ips": ["10.9.0.6/24"],
                             "ipRanges": [[{"subnet": "10.9.0.0/24"}]]}}
    assert ns["requested_ips"](raw) == ["10.9.0.5/24", "10.9.0.6/24"]
    conf = ns["decode"](ns["PoolConf"], raw)
    assert conf.ipam.pool == ["10.9.0.0/24"]
    assert conf.runtime_config.ip_ranges == [[{"subnet": "10.9.0.0/24"}]]
    assert ns["requested_ips"]({"name": "net", "ipam": {"type": "pool"}}) == []


def test_example_refuses_a_config_without_ipam():
    ns = example()
    with pytest.raises(CNIError) as err:
        ns["requested_ips"]({"name": "net"})
    assert err.value.code == 7 and err.value.msg == "IPAM config missing 'ipam' key"


def test_shell_keys_are_the_ones_the_docs_name():
    assert [f.name for f in model.fields(IPAMPluginConf)] == \
        ["name", "cni_version", "ipam", "runtime_config", "args"]
    assert [f.name for f in model.fields(IPAMRuntimeConf)] == ["ip_ranges", "ips"]
