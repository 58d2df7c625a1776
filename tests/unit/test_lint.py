"""pycni lint: libcni's loading, each plugin through its own model, the
chain, the node; every finding with its file, pointer and severity."""

import io
import json
import os
import sys
from contextlib import redirect_stdout

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from lint_fakes import FakeProbe   # noqa: E402

from pycni.lint import main, probe   # noqa: E402
from pycni.lint.findings import ERROR, WARNING, pointer   # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "lint")
ENV = {"PYCNI_STATE_DIRS": "/tmp"}


def write(directory, files: dict):
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (dict, list)):
            content = json.dumps(content)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def lint(tmp_path, files: dict, fake=None, paths=None):
    write(tmp_path, files)
    loaded, findings = main.lint(paths or [str(tmp_path)], ENV, fake or FakeProbe())
    return findings


def at(findings, ptr, severity=None):
    return [f for f in findings if f.pointer == ptr and (severity is None or f.severity == severity)]


def conflist(*plugins, name="net1", version="1.0.0", **top):
    return {"cniVersion": version, "name": name, "plugins": list(plugins), **top}


def bridge(subnet="10.22.0.0/24", **keys):
    return {"type": "bridge", "bridge": "br22", "isGateway": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]}, **keys}


# --- known-good configurations ---------------------------------------------------

@pytest.mark.parametrize("folder", ["containerd", "podman-0.4.0", "podman-1.0.0"])
def test_runtime_generated_configs_lint_clean(folder):
    fake = FakeProbe()
    loaded, findings = main.lint([os.path.join(FIXTURES, folder)], ENV, fake)
    assert findings == []
    assert loaded.networks and all(n.loads for n in loaded.networks)
    assert "bridge" in fake.asked or "macvlan" in fake.asked


def test_json_pointer_escapes():
    assert pointer("plugins", 0, "a/b~c") == "/plugins/0/a~1b~0c"


# --- what ADD silently ignores ---------------------------------------------------

def test_typo_is_reported_with_the_closest_key(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(bridge(bridg="cni9"))})
    (f,) = at(findings, "/plugins/0/bridg")
    assert f.severity == WARNING and f.file == str(tmp_path / "10.conflist")
    assert "'bridge'" in f.message and "ignores" in f.message


def test_keys_match_in_any_case_as_go_does(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(
        {"type": "bridge", "Bridge": "br0", "ISGATEWAY": True,
         "IPAM": {"Type": "host-local", "Ranges": [[{"Subnet": "10.9.0.0/24"}]]}})})
    assert findings == []


def test_ipam_typos_deep_in_ranges(tmp_path):
    plugin = bridge()
    plugin["ipam"]["subnett"] = "10.1.0.0/24"
    plugin["ipam"]["ranges"][0][0]["rangeStrat"] = "10.22.0.10"
    findings = lint(tmp_path, {"10.conflist": conflist(plugin)})
    assert "'subnet'" in at(findings, "/plugins/0/ipam/subnett")[0].message
    (f,) = at(findings, "/plugins/0/ipam/ranges/0/0/rangeStrat")
    assert "'rangeStart'" in f.message and "host-local" in f.message


def test_reference_plugins_we_do_not_ship_have_their_key_sets(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(
        {"type": "vlan", "master": "eth0", "vlanid": 10, "mtuu": 1400,
         "ipam": {"type": "dhcp", "daemonSocketPth": "/run/cni/dhcp.sock"}})})
    assert at(findings, "/plugins/0/vlanid") == []            # vlanId, in another case
    assert "'mtu'" in at(findings, "/plugins/0/mtuu")[0].message
    assert "'daemonSocketPath'" in at(findings, "/plugins/0/ipam/daemonSocketPth")[0].message


def test_third_party_plugins_keys_are_not_judged(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(
        bridge(), {"type": "dnsname", "domainName": "dns.podman"})})
    assert findings == []


def test_runtime_written_sections_are_not_judged(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(bridge(
        runtimeConfig={"whatever": 1}, args={"cni": {"x": 1}}, **{"cni.dev/foo": 1}))})
    assert findings == []


# --- what ADD refuses ---------------------------------------------------------------

def test_add_refusal_is_an_error_with_the_plugins_own_message(tmp_path):
    from pycni.errors import CNIError
    from pycni.plugins.bridge import config as bridge_config
    plugin = bridge(vlan=5000)
    with pytest.raises(CNIError) as err:
        bridge_config.load(dict(plugin, name="net1", cniVersion="1.0.0"))
    findings = lint(tmp_path, {"10.conflist": conflist(plugin)})
    (f,) = at(findings, "/plugins/0", ERROR)
    assert err.value.msg in f.message and "ADD fails" in f.message


def test_ipam_refusal_points_at_ipam(tmp_path):
    plugin = bridge()
    plugin["ipam"]["ranges"] = [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]
    findings = lint(tmp_path, {"10.conflist": conflist(plugin)})
    (f,) = at(findings, "/plugins/0/ipam", ERROR)
    assert "overlaps" in f.message and "host-local" in f.message


def test_a_refusal_the_runtime_can_fill_in_is_a_warning(tmp_path):
    plugin = {"type": "bridge", "capabilities": {"ipRanges": True},
              "ipam": {"type": "host-local"}}
    findings = lint(tmp_path, {"10.conflist": conflist(plugin)})
    (f,) = at(findings, "/plugins/0/ipam")
    assert f.severity == WARNING and "ipRanges" in f.message and "no IP ranges" in f.message


def test_plugins_warnings_become_findings(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(bridge(ipMasqBackend="ebtables"))})
    (f,) = at(findings, "/plugins/0", WARNING)
    assert "ipMasqBackend" in f.message


def test_store_outside_the_allowed_state_directories(tmp_path):
    plugin = bridge()
    plugin["ipam"]["dataDir"] = "/home/someone/ipam"
    findings = lint(tmp_path, {"10.conflist": conflist(plugin)})
    (f,) = at(findings, "/plugins/0/ipam", ERROR)
    assert "not below a state directory" in f.message


def test_ptp_without_ipam(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist({"type": "ptp"})})
    assert "ptp needs an IPAM plugin" in at(findings, "/plugins/0", ERROR)[0].message


def test_reference_plugin_without_required_ipam(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist({"type": "vlan", "master": "eth0",
                                                        "vlanId": 5})})
    assert "needs an IPAM plugin" in at(findings, "/plugins/0", ERROR)[0].message


def test_type_with_a_path_separator(tmp_path):
    fake = FakeProbe()
    findings = lint(tmp_path, {"10.conflist": conflist({"type": "../../sbin/reboot"})}, fake)
    assert "is a path" in at(findings, "/plugins/0/type", ERROR)[0].message
    assert fake.asked == []


def test_type_not_on_cni_path_says_where_it_looked(tmp_path):
    fake = FakeProbe(missing={"bridge"})
    findings = lint(tmp_path, {"10.conflist": conflist(bridge())}, fake)
    (f,) = at(findings, "/plugins/0/type", ERROR)
    assert "not found" in f.message and "/opt/cni/bin" in f.message


def test_a_plugin_others_can_change_is_not_run(tmp_path):
    fake = FakeProbe(runtime_only={"bridge"})
    findings = lint(tmp_path, {"10.conflist": conflist(bridge())}, fake)
    (f,) = at(findings, "/plugins/0/type", ERROR)
    assert "writable by others" in f.message and "did not run it" in f.message
    assert "bridge" not in fake.asked


def test_version_the_binary_does_not_support(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(bridge(), {"type": "firewall"},
                                                       version="0.3.1")})
    (f,) = at(findings, "/plugins/1/type", ERROR)
    assert "does not support cniVersion 0.3.1" in f.message and "0.4.0" in f.message


def test_ipam_binary_version_is_checked_too(tmp_path):
    fake = FakeProbe(versions={"host-local": ["0.3.1", "0.4.0"]})
    findings = lint(tmp_path, {"10.conflist": conflist(bridge())}, fake)
    assert "host-local" in at(findings, "/plugins/0/ipam/type", ERROR)[0].message


def test_version_that_cannot_be_asked_is_a_warning(tmp_path):
    fake = FakeProbe(versions={"bridge": None})
    findings = lint(tmp_path, {"10.conflist": conflist(bridge())}, fake)
    assert at(findings, "/plugins/0/type", WARNING)


# --- versions and what they allow ---------------------------------------------------

def test_version_implications(tmp_path):
    findings = lint(tmp_path, {
        "10.conflist": conflist(bridge(), name="a", version="1.0.0", disableGC=True),
        "20.conflist": conflist(bridge("10.23.0.0/24", bridge="br23"), name="b",
                                version="0.3.1", disableCheck="TRUE"),
        "30.conflist": {"name": "c", "plugins": [bridge("10.24.0.0/24", bridge="br24")]},
        "40.conflist": conflist(bridge("10.25.0.0/24", bridge="br25"), name="d",
                                version="2.0.0"),
    })
    assert "no GC" in at(findings, "/disableGC")[0].message
    assert "no CHECK" in at(findings, "/disableCheck")[0].message
    assert "no cniVersion" in [f for f in findings if f.file.endswith("30.conflist")][0].message
    assert "newer than any spec version" in at(findings, "/cniVersion", ERROR)[0].message


def test_cni_versions_pick_the_highest_libcni_knows(tmp_path):
    write(tmp_path, {"10.conflist": conflist(bridge(), version="1.0.0",
                                             cniVersions=["0.4.0", "1.1.0", "9.0.0"])})
    loaded, findings = main.lint([str(tmp_path)], ENV, FakeProbe())
    assert loaded.networks[0].cni_version == "1.1.0"
    assert "newer than libcni" in at(findings, "/cniVersions/2", WARNING)[0].message
    assert main.summary(loaded)[0]["commands"] == "ADD DEL CHECK GC STATUS"


# --- the chain ----------------------------------------------------------------------

def test_chained_plugin_first(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist({"type": "tuning"}, bridge())})
    assert "chained plugin" in at(findings, "/plugins/0/type", ERROR)[0].message
    assert "replaces theirs" in at(findings, "/plugins/1/type", WARNING)[0].message


def test_capabilities_the_plugin_does_not_use(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(
        bridge(capabilities={"ips": True, "mac": True, "portMappings": True, "bandwidth": False}),
        {"type": "portmap", "capabilities": {"portMappings": True}})})
    (f,) = [f for f in findings if "capabilit" in f.message]
    assert f.pointer == "/plugins/0/capabilities/portMappings" and "portmap" in f.message


# --- across the node --------------------------------------------------------------------

def test_overlapping_subnets_across_networks(tmp_path):
    findings = lint(tmp_path, {
        "10.conflist": conflist(bridge("10.30.0.0/16", bridge="bra"), name="a"),
        "20.conflist": conflist(bridge("10.30.5.0/24", bridge="brb"), name="b"),
        "30.conflist": conflist(bridge("10.30.9.0/24", bridge="bra"), name="c"),
    })
    (b,) = [f for f in findings if f.file.endswith("20.conflist")]
    assert b.severity == WARNING and "overlaps 10.30.0.0/16" in b.message
    same = [f for f in findings if f.file.endswith("30.conflist") and f.severity == ERROR]
    assert same and "same bridge bra" in same[0].message
    assert same[0].pointer == "/plugins/0/ipam/ranges/0/0/subnet"


def test_one_bridge_two_subnets(tmp_path):
    findings = lint(tmp_path, {
        "10.conflist": conflist(bridge("10.40.0.0/24"), name="a"),
        "20.conflist": conflist(bridge("10.41.0.0/24"), name="b"),
    })
    (f,) = findings
    assert f.severity == WARNING and "bridge br22" in f.message and f.file.endswith("20.conflist")


def test_store_others_can_write(tmp_path):
    fake = FakeProbe(stores={"/tmp/open": "/tmp/open is writable by others"})
    plugin = bridge()
    plugin["ipam"]["dataDir"] = "/tmp/open"
    findings = lint(tmp_path, {"10.conflist": conflist(plugin)}, fake)
    (f,) = at(findings, "/plugins/0/ipam/dataDir", ERROR)
    assert "others could plant" in f.message


def test_store_problem_on_the_real_file_system(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    assert "writable by others" in probe.store_problem(str(open_dir))
    assert "someone else could create it" in probe.store_problem(str(open_dir / "a" / "b"))
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o755)
    assert probe.store_problem(str(safe)) is None
    assert probe.store_problem(str(safe / "not-yet")) is None


# --- libcni's loading -----------------------------------------------------------------

def test_malformed_and_odd_files_are_findings(tmp_path):
    os.mkfifo(tmp_path / "40-fifo.conflist")
    os.symlink("/", tmp_path / "50-dir.conf")
    findings = lint(tmp_path, {
        "10-broken.conflist": '{"name": "x", ',
        "20-list.conflist": "[1, 2]",
        "30-nan.conf": '{"type": "bridge", "mtu": NaN}',
        "60-bad-utf8.conf": b'{"type": "bridge", "name": "\xff"}',
    })
    by_file = {os.path.basename(f.file): f for f in findings if f.severity == ERROR
               and "containerd" not in f.message and "lookup by name" not in f.message}
    assert "not valid JSON" in by_file["10-broken.conflist"].message
    assert "must be a JSON object" in by_file["20-list.conflist"].message
    assert "not valid JSON" in by_file["30-nan.conf"].message
    assert "not a regular file" in by_file["40-fifo.conflist"].message
    assert "is a directory" in by_file["50-dir.conf"].message
    assert "invalid characters found in network name" in by_file["60-bad-utf8.conf"].message


def test_a_file_that_does_not_load_stops_the_lookup(tmp_path):
    findings = lint(tmp_path, {"10-a.conflist": conflist({"name": "no type"}, name="a"),
                               "20-b.conflist": conflist(bridge(), name="b")})
    stop = [f for f in findings if "lookup by name" in f.message]
    assert stop and stop[0].file.endswith("10-a.conflist")
    assert "missing 'type'" in at(findings, "/plugins/0", ERROR)[0].message


def test_duplicate_names(tmp_path):
    findings = lint(tmp_path, {"10-a.conflist": conflist(bridge(), name="same"),
                               "20-b.conflist": conflist(bridge(), name="same"),
                               "05-c.conf": dict(bridge(), name="same", cniVersion="1.0.0")})
    shadowed = sorted(os.path.basename(f.file) for f in findings if "never used" in f.message)
    assert shadowed == ["05-c.conf", "20-b.conflist"]


def test_conflist_in_a_conf_file(tmp_path):
    findings = lint(tmp_path, {"10.conf": conflist(bridge())})
    (f, containerd) = findings
    assert "no pod network" in containerd.message
    assert f.severity == ERROR and ".conflist" in f.message


def test_top_level_keys_are_matched_exactly(tmp_path):
    findings = lint(tmp_path, {"10.conflist": {"Name": "x", "cniVersion": "1.0.0",
                                               "plugins": [bridge()]}})
    (f,) = [f for f in findings if "no name" in f.message]
    assert "'Name'" in f.message


def test_flags_and_plugins_shapes(tmp_path):
    findings = lint(tmp_path, {
        "10.conflist": conflist(bridge(), name="a", disableCheck="yes"),
        "20.conflist": {"name": "b", "cniVersion": "1.0.0", "plugins": []},
        "30.conflist": {"name": "c", "cniVersion": "1.0.0", "plugins": {"type": "bridge"}},
        "40.conflist": {"name": "d", "cniVersion": "1.1.0", "loadOnlyInlinedPlugins": True},
        "50.conflist": {"name": "e", "cniVersion": "1.0.0"},
    })
    messages = {os.path.basename(f.file): f.message for f in findings
                if f.severity == ERROR and "lookup by name" not in f.message
                and "containerd" not in f.message}
    assert "disableCheck" in messages["10.conflist"]
    assert "no plugins in list" in messages["20.conflist"]
    assert "must be a list" in messages["30.conflist"]
    assert "loadOnlyInlinedPlugins is true" in messages["40.conflist"]
    assert "no plugin configs found" in messages["50.conflist"]


def test_plugins_from_the_network_directory(tmp_path):
    findings = lint(tmp_path, {
        "10.conflist": {"name": "side", "cniVersion": "1.0.0"},
        "side/10-bridge.conf": bridge(bridg="x"),
        "side/20-portmap.conf": {"type": "portmap", "capabilities": {"portMappings": True}},
    })
    (f,) = findings
    assert f.file == str(tmp_path / "side" / "10-bridge.conf") and f.pointer == "/bridg"


def test_files_libcni_never_reads(tmp_path):
    findings = lint(tmp_path, {"10.conflist": conflist(bridge()),
                               "20.conflist.bak": conflist(bridge()), "README": "hi"})
    (f,) = findings
    assert f.file.endswith("20.conflist.bak") and f.severity == WARNING


def test_default_network_of_the_runtimes(tmp_path):
    write(tmp_path, {"20-b.conflist": conflist(bridge(), name="b"),
                     "10-a.conf": dict(bridge("10.50.0.0/24", bridge="br50"), name="a",
                                       cniVersion="1.0.0")})
    loaded, _ = main.lint([str(tmp_path)], ENV, FakeProbe())
    assert [(n["name"], n["runtimeDefault"]) for n in main.summary(loaded)
            if n["runtimeDefault"]] == [("a", ["containerd", "CRI-O"])]


def test_a_first_file_that_does_not_load_leaves_containerd_without_a_network(tmp_path):
    findings = lint(tmp_path, {"10-a.conf": "{", "20-b.conflist": conflist(bridge(), name="b")})
    (f,) = [f for f in findings if "containerd" in f.message]
    assert f.file.endswith("10-a.conf") and "takes " + str(tmp_path / "20-b.conflist") in f.message
    loaded, _ = main.lint([str(tmp_path)], ENV, FakeProbe())
    assert main.summary(loaded)[0]["runtimeDefault"] == ["CRI-O"]


# --- the command ----------------------------------------------------------------------

def run_main(argv, env=None):
    out = io.StringIO()
    with redirect_stdout(out):
        code = main.main(argv, env or dict(ENV))
    return code, out.getvalue()


def test_json_document_and_exit_codes(tmp_path):
    write(tmp_path / "good", {"10.conflist": conflist({"type": "loopback"})})
    write(tmp_path / "bad", {"10.conflist": conflist({"type": "tuning"})})
    bindir = tmp_path / "bin"
    bindir.mkdir()
    code, out = run_main(["--json", "--no-exec", "--cni-path", str(bindir), str(tmp_path / "bad")])
    doc = json.loads(out)
    assert code == 1 and doc["errors"] >= 1
    assert {"file", "pointer", "severity", "message"} <= set(doc["findings"][0])
    assert doc["networks"][0]["name"] == "net1" and doc["cniPath"] == [str(bindir)]
    code, out = run_main(["--no-exec", "--cni-path", str(bindir), str(tmp_path / "good")])
    assert code == 1 and "'loopback' not found" in out     # nothing installed there
    with pytest.raises(SystemExit) as exit_:
        run_main(["--bogus"])
    assert exit_.value.code == 2


def test_netconfpath_is_the_default(tmp_path):
    write(tmp_path, {"10.conflist": conflist({"type": "loopback"})})
    code, out = run_main(["--json", "--no-exec", "--cni-path", "/nonexistent"],
                         env={"NETCONFPATH": str(tmp_path)})
    assert json.loads(out)["paths"] == [str(tmp_path)]


def test_lint_is_no_plugin_dependency():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for top in ("plugins", "ipam"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name)) as f:
                        assert "pycni.lint" not in f.read(), name


def test_decode_errors_point_at_the_value(tmp_path):
    plugin = bridge()
    plugin["IPAM"] = plugin.pop("ipam")
    plugin["IPAM"]["ranges"][0][0]["Gateway"] = 7
    findings = lint(tmp_path, {"10.conflist": conflist(plugin, {"type": "tuning", "mtu": "9000"})})
    assert at(findings, "/plugins/1/mtu", ERROR)
    (f,) = at(findings, "/plugins/0/IPAM/ranges/0/0/Gateway", ERROR)
    assert "expected a string" in f.message
