"""bandwidth plugin paths that need no root: versions, pass-through, errors."""

import io
import json

import pytest

from pycni import skel
from pycni.plugins.bandwidth.plugin import BandwidthPlugin

PREV = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "veth1234", "mac": "02:00:00:00:00:01"},
                       {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.1.0.5/24", "interface": 1}]}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/x", "CNI_NETNS_OVERRIDE": "1"}


def run(conf: dict, command="ADD"):
    out = io.StringIO()
    code = skel.run(BandwidthPlugin(), {**ENV, "CNI_COMMAND": command},
                    io.BytesIO(json.dumps(conf).encode()), out)
    return code, (json.loads(out.getvalue()) if out.getvalue() else None)


def conf(version="1.0.0", prev=PREV, **keys) -> dict:
    c = {"cniVersion": version, "name": "net", "type": "bandwidth", **keys}
    if prev is not None:
        c["prevResult"] = prev
    return c


def test_version_starts_at_0_3_0():
    code, out = run({}, "VERSION")
    assert code == 0
    assert out["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    code, out = run(conf("0.2.0"))
    assert code == 1 and out["code"] == 1


@pytest.mark.parametrize("keys", [{}, {"runtimeConfig": {}},
                                  {"ingressRate": 0, "egressBurst": 0},
                                  {"runtimeConfig": {"bandwidth": {}}}])
def test_no_limits_pass_prev_result_through(keys):
    code, out = run(conf(**keys))
    assert code == 0
    assert out["interfaces"] == PREV["interfaces"] and out["ips"] == PREV["ips"]


def test_prev_result_converted_to_the_config_version():
    code, out = run(conf("0.3.1"))
    assert code == 0 and out["cniVersion"] == "0.3.1" and out["ips"][0]["version"] == "4"


def test_not_chained():
    code, out = run(conf(prev=None, ingressRate=8000, ingressBurst=800))
    assert code == 1 and out["code"] == 7 and out["msg"] == "must be called as chained plugin"
    code, out = run(conf(prev=None))
    assert code == 1 and out["code"] == 7


def test_invalid_limits():
    code, out = run(conf(egressBurst=800))
    assert code == 1 and out["code"] == 7
    assert out["msg"] == "if burst is set, rate must also be set"


def test_check_needs_prev_result():
    code, out = run(conf(prev=None, ingressRate=8000, ingressBurst=800), "CHECK")
    assert code == 1 and out["msg"] == "must be called as a chained plugin"
