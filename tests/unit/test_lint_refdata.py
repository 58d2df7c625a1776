"""lint's key sets against the reference's Go config structs (v1.9.1):
those of the plugins pycni does not ship are data (refdata), those of our
own plugins are derived from our models; both must cover every key the
reference decodes. Skipped where the reference source is not at hand."""

import os
import re
import subprocess

import pytest

from pycni.lint import plugins, refdata

REPO = os.environ.get("PYCNI_REFERENCE_GIT", "/work/.mirror/containernetworking+plugins/repo")
TAG = "v1.9.1"
SOURCES = {
    "bridge": "plugins/main/bridge/bridge.go", "macvlan": "plugins/main/macvlan/macvlan.go",
    "ptp": "plugins/main/ptp/ptp.go", "tap": "plugins/main/tap/tap.go",
    "host-device": "plugins/main/host-device/host-device.go",
    "tuning": "plugins/meta/tuning/tuning.go", "portmap": "plugins/meta/portmap/main.go",
    "firewall": "plugins/meta/firewall/firewall.go", "bandwidth": "plugins/meta/bandwidth/main.go",
    "sbr": "plugins/meta/sbr/main.go", "ipvlan": "plugins/main/ipvlan/ipvlan.go",
    "vlan": "plugins/main/vlan/vlan.go", "vrf": "plugins/meta/vrf/main.go",
}
STRUCTS = r"(?:NetConf|PluginConf|TuningConf|BandwidthNetConf|FirewallNetConf|PortMapConf|" \
          r"VRFNetConf)"


def reference(path: str) -> str:
    if not os.path.isdir(REPO):
        pytest.skip("no reference source (set PYCNI_REFERENCE_GIT)")
    proc = subprocess.run(["git", "-C", REPO, "show", f"{TAG}:{path}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"{path} not in {REPO}")
    return proc.stdout


def top_level_tags(source: str) -> list[str]:
    """The json tags of the config struct's own fields (nested structs' not)."""
    match = re.search(r"type " + STRUCTS + r" struct \{(.*?)\n\}", source, re.S)
    assert match, "config struct not found"
    tags, depth = [], 0
    for line in match.group(1).splitlines():
        if depth == 0:
            tags += [t for t in re.findall(r'json:"([^",]+)', line) if t != "-"]
        depth += line.count("{") - line.count("}")
    return tags


@pytest.mark.parametrize("plugin_type", sorted(SOURCES))
def test_every_reference_key_is_known(plugin_type):
    tags = top_level_tags(reference(SOURCES[plugin_type]))
    known = {name.lower() for name, _ in plugins.known_keys(plugin_type).values()}
    assert [t for t in tags if t.lower() not in known] == []
    if plugin_type in refdata.REFERENCE_KEYS:     # data: no more than the struct has
        assert set(refdata.REFERENCE_KEYS[plugin_type]) <= set(tags)


def test_dhcp_ipam_keys():
    source = reference("plugins/ipam/dhcp/main.go")
    match = re.search(r"type IPAMConfig struct \{(.*?)\n\}", source, re.S)
    tags = re.findall(r'json:"([^",]+)', match.group(1))
    assert set(tags) | {"type"} == set(refdata.REFERENCE_IPAM_KEYS["dhcp"])


def test_capabilities_are_the_reference_runtime_config_keys():
    for plugin_type, path in SOURCES.items():
        source = reference(path)
        block = re.search(r"RuntimeConfig\s+struct \{(.*?)\}", source, re.S)
        keys = set(re.findall(r'json:"([^",]+)', block.group(1))) if block else set()
        assert keys <= set(refdata.CAPABILITIES.get(plugin_type, ())), plugin_type
