"""pycni lint through each plugin's own config loader (lint.plugins.validate):
every path is taken by a lint of a config of that plugin, once with a
config the plugin accepts (no finding, in particular no "lint could not
check it" warning, which is what a loader reference that no longer exists
turns into) and once with one it refuses (its own message, as ADD's)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from lint_fakes import FakeProbe   # noqa: E402

from pycni.lint import main, plugins   # noqa: E402
from pycni.lint.findings import ERROR, WARNING   # noqa: E402

ENV = {"PYCNI_STATE_DIRS": "/tmp"}
HOST_LOCAL = {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}]]}
BRIDGE = {"type": "bridge", "bridge": "br22", "ipam": HOST_LOCAL}


def with_ipam(ipam):
    return {**BRIDGE, "ipam": ipam}


# type -> (a chain it accepts, a chain it refuses, pointer, severity, words of the message)
CASES = {
    "bridge": ([BRIDGE], [{**BRIDGE, "hairpinMode": "yes"}],
               "/plugins/0/hairpinMode", ERROR, "expected a boolean"),
    "macvlan": ([{"type": "macvlan", "master": "eth0", "ipam": HOST_LOCAL}],
                [{"type": "macvlan", "master": "eth0", "mode": "nope", "ipam": HOST_LOCAL}],
                "/plugins/0", ERROR, 'unknown macvlan mode: "nope"'),
    "tap": ([{"type": "tap", "ipam": HOST_LOCAL}], [{"type": "tap", "mtu": "x"}],
            "/plugins/0/mtu", ERROR, "expected an integer"),
    "ptp": ([{"type": "ptp", "ipam": HOST_LOCAL}], [{"type": "ptp", "ipam": HOST_LOCAL, "mtu": "x"}],
            "/plugins/0/mtu", ERROR, "expected an integer"),
    "host-device": ([{"type": "host-device", "device": "eth1"}], [{"type": "host-device"}],
                    "/plugins/0", ERROR, 'specify either "device"'),
    "sbr": ([BRIDGE, {"type": "sbr"}], [BRIDGE, {"type": "sbr", "table": "x"}],
            "/plugins/1/table", ERROR, "expected an integer"),
    "tuning": ([BRIDGE, {"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.eth0.rp_filter": "1"}}],
               [BRIDGE, {"type": "tuning", "mtu": "9000"}],
               "/plugins/1/mtu", ERROR, "expected an integer"),
    "portmap": ([BRIDGE, {"type": "portmap", "capabilities": {"portMappings": True}}],
                [BRIDGE, {"type": "portmap", "backend": "nope"}],
                "/plugins/1", ERROR, 'unrecognized backend "nope"'),
    "firewall": ([BRIDGE, {"type": "firewall", "iptablesAdminChainName": "CNI-ADMIN"}],
                 [BRIDGE, {"type": "firewall", "iptablesAdminChainName": "-bad"}],
                 "/plugins/1", ERROR, "invalid iptablesAdminChainName"),
    "bandwidth": ([BRIDGE, {"type": "bandwidth", "ingressRate": 100000, "ingressBurst": 100000}],
                  [BRIDGE, {"type": "bandwidth", "ingressRate": 100000}],
                  "/plugins/1", ERROR, "burst must also be set"),
    "loopback": ([{"type": "loopback"}], [{"type": "loopback", "foo": 1}],
                 "/plugins/0/foo", WARNING, "loopback ignores it"),
    "host-local": ([BRIDGE], [with_ipam({"type": "host-local",
                                         "ranges": [[{"subnet": "10.22.0.0/33"}]]})],
                   "/plugins/0/ipam", ERROR, "invalid CIDR address"),
    "static": ([with_ipam({"type": "static", "addresses": [{"address": "10.1.0.2/24"}]})],
               [with_ipam({"type": "static", "addresses": [{"address": "nope"}]})],
               "/plugins/0/ipam", ERROR, "expected to be in CIDR notation"),
    "dhcp": ([with_ipam({"type": "dhcp"})], [with_ipam({"type": "dhcp", "request": "x"})],
             "/plugins/0/ipam/request", ERROR, "expected a list"),
}


def lint(tmp_path, chain):
    (tmp_path / "10.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "net1", "plugins": chain}))
    _loaded, findings = main.lint([str(tmp_path)], ENV, FakeProbe())
    return findings


def test_every_plugin_lint_knows_has_a_loader_and_a_case():
    known = set(plugins.MODELS) | set(plugins.IPAM_MODELS)
    assert set(plugins.VALIDATORS) == known
    assert set(CASES) == known


@pytest.mark.parametrize("plugin_type", sorted(CASES))
def test_a_config_the_plugin_accepts_lints_clean(tmp_path, plugin_type):
    if not plugins.ours(plugin_type):
        pytest.skip(f"{plugin_type}'s config model is not installed")
    good = CASES[plugin_type][0]
    assert [(f.pointer, f.message) for f in lint(tmp_path, good)] == []


@pytest.mark.parametrize("plugin_type", sorted(CASES))
def test_a_config_the_plugin_refuses_gets_its_own_message(tmp_path, plugin_type):
    if not plugins.ours(plugin_type):
        pytest.skip(f"{plugin_type}'s config model is not installed")
    _good, bad, ptr, severity, words = CASES[plugin_type]
    findings = lint(tmp_path, bad)
    assert not [f for f in findings if "could not check" in f.message], findings
    hits = [f for f in findings if f.pointer == ptr and f.severity == severity]
    assert len(hits) == 1, [(f.pointer, f.severity, f.message) for f in findings]
    assert words in hits[0].message
    if severity == ERROR:
        assert f"{plugin_type} refuses it (ADD fails, code" in hits[0].message


@pytest.mark.parametrize("plugin_type", sorted(plugins.VALIDATORS))
def test_validate_raises_nothing_but_the_plugins_errors(plugin_type):
    """validate() calls the loader directly: a config each accepts passes
    (an AttributeError or TypeError here is a broken loader reference)."""
    if not plugins.ours(plugin_type):
        pytest.skip(f"{plugin_type}'s config model is not installed")
    chain = CASES[plugin_type][0]
    (obj,) = [p for p in chain
              if p["type"] == plugin_type or p.get("ipam", {}).get("type") == plugin_type][-1:]
    config = {"cniVersion": "1.0.0", "name": "net1", **obj}
    plugins.validate(plugin_type, config, json.dumps(config).encode(), ENV)
