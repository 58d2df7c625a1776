"""The loopback plugin against the real kernel, side by side with the
reference loopback (Debian containernetworking-plugins 1.1.1, /usr/lib/cni).

Every plugin run is exec'ed inside a test "host" namespace as a runtime
runs it; containers are fresh namespaces with lo down.

Where the reference is known to be wrong we compare only what it gets
right: it speaks cniVersion up to 1.0.0, prints its 0.1.0/0.2.0 results in
the 1.0.0 shape (no ip4/ip6), and omits `ips[].version` in 0.3.x/0.4.0.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from netns_world import delete_namespace

OUR_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
REFERENCE_VERSIONS = OUR_VERSIONS[:-1]
LEGACY = ("0.1.0", "0.2.0")
LOOPBACK_MAC = "00:00:00:00:00:00"

# Exit-code-1 error codes from the spec (and the reference Go library).
INCOMPATIBLE_VERSION = 1
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
DECODING_FAILURE = 6
INTERNAL = 999


def conf(version: str = "1.0.0", **extra) -> dict:
    return {"cniVersion": version, "name": "lo-net", "type": "loopback", **extra}


# containerd's built-in loopback network, run with CNI_IFNAME=lo.
CONTAINERD_CONF = {"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"}


@pytest.fixture(params=["ours", "reference"])
def impl(request) -> str:
    """CNI_PATH of the implementation under test: ours or the reference."""
    return request.getfixturevalue("plugin_dir" if request.param == "ours" else "ref_dir")


# ---------------------------------------------------------------- helpers

def single_json(text: str):
    """The one JSON document `text` holds; fails on anything around it."""
    stripped = text.strip()
    assert stripped, "expected a JSON document on stdout, got nothing"
    doc, end = json.JSONDecoder().raw_decode(stripped)
    assert end == len(stripped), f"stdout has more than one JSON document: {stripped!r}"
    return doc


def succeeded_with_result(run) -> dict:
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    doc = single_json(run.stdout)
    assert isinstance(doc, dict)
    return doc


def succeeded_silently(run) -> None:
    """DEL and CHECK print nothing when they succeed."""
    assert run.returncode == 0, f"plugin failed: {run.stdout} {run.stderr}"
    assert run.stdout.strip() == "", f"unexpected stdout: {run.stdout!r}"


def failed_with(run, code: int | None = None) -> dict:
    """A spec error object, alone on stdout, with a non-zero exit."""
    assert run.returncode != 0, f"expected failure, got {run.stdout!r}"
    err = single_json(run.stdout)
    assert isinstance(err, dict), err
    assert isinstance(err.get("code"), int), err
    assert isinstance(err.get("msg"), str) and err["msg"], err
    if code is not None:
        assert err["code"] == code, err
    return err


def lo_is_up(ns) -> bool:
    return "UP" in ns.link("lo")["flags"]


def first_per_family(addresses: list[str]) -> tuple[str | None, str | None]:
    v4 = next((a for a in addresses if ":" not in a), None)
    v6 = next((a for a in addresses if ":" in a), None)
    return v4, v6


def expected_result(version: str, sandbox: str, addresses: list[str]) -> dict:
    """The spec-shaped loopback result for `version`."""
    v4, v6 = first_per_family(addresses)
    if version in LEGACY:
        doc = {"cniVersion": version}
        if v4:
            doc["ip4"] = {"ip": v4}
        if v6:
            doc["ip6"] = {"ip": v6}
        return doc
    ips = []
    for family, address in (("4", v4), ("6", v6)):
        if address:
            ip = {"interface": 0, "address": address}
            if version in ("0.3.0", "0.3.1", "0.4.0"):
                ip["version"] = family
            ips.append(ip)
    return {"cniVersion": version,
            "interfaces": [{"name": "lo", "mac": LOOPBACK_MAC, "sandbox": sandbox}],
            "ips": ips}


def without_noise(doc: dict) -> dict:
    """Drop what a result may carry or omit freely: an empty dns."""
    return {k: v for k, v in doc.items() if not (k == "dns" and not v)}


def comparable(doc: dict) -> dict:
    """A result as the reference gets it right: without `ips[].version`."""
    doc = without_noise(doc)
    if "ips" in doc:
        doc["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in doc["ips"]]
    return doc


# ---------------------------------------------------------------- ADD

@pytest.mark.parametrize("version", OUR_VERSIONS)
def test_add_brings_lo_up_and_returns_the_reference_result(world, plugin_dir, request, version):
    ours_ctr, ref_ctr = world.container("ours"), world.container("ref")

    ours = succeeded_with_result(world.run_plugin(plugin_dir, "loopback", "ADD",
                                                  conf(version), ours_ctr))
    assert lo_is_up(ours_ctr)
    expected = expected_result(version, ours_ctr.path, ours_ctr.addresses("lo"))
    assert without_noise(ours) == expected

    ref_dir = request.getfixturevalue("ref_dir")  # ours is checked even without it
    ref_run = world.run_plugin(ref_dir, "loopback", "ADD", conf(version), ref_ctr)
    if version not in REFERENCE_VERSIONS:
        # The reference stops at 1.0.0 and says so, leaving lo alone.
        failed_with(ref_run, INCOMPATIBLE_VERSION)
        assert not lo_is_up(ref_ctr)
        return
    ref = succeeded_with_result(ref_run)
    assert lo_is_up(ref_ctr)
    if version in LEGACY:
        # The reference prints 0.1.0/0.2.0 results in the 1.0.0 shape
        # (no ip4/ip6): nothing there to compare with.
        return
    ref = json.loads(json.dumps(ref).replace(ref_ctr.path, ours_ctr.path))
    assert comparable(ours) == comparable(ref)


@pytest.mark.parametrize("version", ["0.3.0", "0.4.0", "1.0.0"])
def test_add_chained_passes_prev_result_through(world, impl, version):
    ctr = world.container()
    prev = {"cniVersion": version,
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:58:00:05", "sandbox": ctr.path}],
            "ips": [{"interface": 0, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}],
            "dns": {"nameservers": ["10.88.0.1"], "search": ["example.test"]}}
    if version != "1.0.0":
        prev["ips"][0]["version"] = "4"

    out = succeeded_with_result(world.run_plugin(impl, "loopback", "ADD",
                                                 conf(version, prevResult=prev), ctr))
    assert lo_is_up(ctr)
    assert out == prev


def test_add_with_lo_carrying_a_foreign_address_fails(world, plugin_dir, ref_dir):
    errors = []
    for cni_path in (plugin_dir, ref_dir):
        ctr = world.container()
        ctr.run("ip", "addr", "add", "10.1.2.3/24", "dev", "lo")
        err = failed_with(world.run_plugin(cni_path, "loopback", "ADD", conf(), ctr), INTERNAL)
        assert "non-loopback address" in err["msg"]
        assert "10.1.2.3" in err["msg"] + err.get("details", "")
        errors.append(err["code"])
        if cni_path == plugin_dir:   # ours checks before touching lo
            assert not lo_is_up(ctr)
    assert errors[0] == errors[1]


def test_add_with_missing_netns_is_an_unknown_container(world, plugin_dir, tmp_path):
    run = world.run_plugin(plugin_dir, "loopback", "ADD", conf(), str(tmp_path / "gone"))
    err = failed_with(run, UNKNOWN_CONTAINER)
    assert str(tmp_path / "gone") in err["msg"]


def test_add_with_a_file_that_is_no_netns_is_refused(world, plugin_dir, tmp_path):
    not_a_netns = tmp_path / "regular-file"
    not_a_netns.write_text("")
    run = world.run_plugin(plugin_dir, "loopback", "ADD", conf(), str(not_a_netns))
    err = failed_with(run, INVALID_ENVIRONMENT)
    assert "not a network namespace" in err["msg"]


def test_reference_also_refuses_missing_and_non_netns_paths(world, ref_dir, tmp_path):
    """The reference fails both with the catch-all 999; ours says what is wrong."""
    not_a_netns = tmp_path / "regular-file"
    not_a_netns.write_text("")
    for path in (str(tmp_path / "gone"), str(not_a_netns)):
        failed_with(world.run_plugin(ref_dir, "loopback", "ADD", conf(), path), INTERNAL)


# ---------------------------------------------------------------- CHECK

@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_check_passes_after_add_and_fails_like_the_reference_once_lo_is_down(
        world, plugin_dir, ref_dir, version):
    errors = []
    for cni_path in (plugin_dir, ref_dir):
        ctr = world.container()
        succeeded_with_result(world.run_plugin(cni_path, "loopback", "ADD", conf(version), ctr))
        succeeded_silently(world.run_plugin(cni_path, "loopback", "CHECK", conf(version), ctr))
        ctr.run("ip", "link", "set", "lo", "down")
        err = failed_with(world.run_plugin(cni_path, "loopback", "CHECK", conf(version), ctr))
        errors.append((err["code"], err["msg"]))
    assert errors[0] == errors[1] == (INTERNAL, "loopback interface is down")


def test_check_works_in_1_1_0(world, plugin_dir):
    ctr = world.container()
    succeeded_with_result(world.run_plugin(plugin_dir, "loopback", "ADD", conf("1.1.0"), ctr))
    succeeded_silently(world.run_plugin(plugin_dir, "loopback", "CHECK", conf("1.1.0"), ctr))


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
def test_check_is_refused_before_0_4_0(world, impl, version):
    ctr = world.container()
    failed_with(world.run_plugin(impl, "loopback", "CHECK", conf(version), ctr),
                INCOMPATIBLE_VERSION)
    assert not lo_is_up(ctr)


# ---------------------------------------------------------------- DEL

@pytest.mark.parametrize("version", ["0.3.1", "1.0.0"])
def test_del_sets_lo_down_and_twice_is_fine(world, impl, version):
    ctr = world.container()
    succeeded_with_result(world.run_plugin(impl, "loopback", "ADD", conf(version), ctr))
    assert lo_is_up(ctr)
    succeeded_silently(world.run_plugin(impl, "loopback", "DEL", conf(version), ctr))
    assert not lo_is_up(ctr)
    succeeded_silently(world.run_plugin(impl, "loopback", "DEL", conf(version), ctr))
    assert not lo_is_up(ctr)


@pytest.mark.parametrize("version", OUR_VERSIONS)
def test_del_for_every_version(world, plugin_dir, version):
    ctr = world.container()
    succeeded_with_result(world.run_plugin(plugin_dir, "loopback", "ADD", conf(version), ctr))
    succeeded_silently(world.run_plugin(plugin_dir, "loopback", "DEL", conf(version), ctr))
    assert not lo_is_up(ctr)


def test_del_with_empty_netns_succeeds(world, impl):
    """containerd's RemovePodSandbox: DEL again, CNI_NETNS empty, no prevResult."""
    for _ in range(2):
        succeeded_silently(world.run_plugin(impl, "loopback", "DEL", CONTAINERD_CONF, "",
                                            ifname="lo"))


def test_del_with_vanished_netns_succeeds(world, impl):
    ctr = world.container()
    succeeded_with_result(world.run_plugin(impl, "loopback", "ADD", CONTAINERD_CONF, ctr,
                                           ifname="lo"))
    path = ctr.path
    assert delete_namespace(ctr.name) is None
    for _ in range(2):
        succeeded_silently(world.run_plugin(impl, "loopback", "DEL", CONTAINERD_CONF, path,
                                            ifname="lo"))


def test_del_with_a_leftover_mount_point_succeeds(world, plugin_dir, tmp_path):
    """A runtime that unmounted the namespace but left the file: the container
    is gone, so DEL succeeds (the reference fails with 999)."""
    leftover = tmp_path / "cni-leftover"
    leftover.write_text("")
    for _ in range(2):
        succeeded_silently(world.run_plugin(plugin_dir, "loopback", "DEL", CONTAINERD_CONF,
                                            str(leftover), ifname="lo"))


# ---------------------------------------------------------------- hostile input

HOSTILE = {
    "container-id-dot-dot": (dict(container_id="../../etc/passwd"), conf(), INVALID_ENVIRONMENT),
    "container-id-slash": (dict(container_id="a/b"), conf(), INVALID_ENVIRONMENT),
    "ifname-too-long": (dict(ifname="x" * 16), conf(), INVALID_ENVIRONMENT),
    "malformed-json": ({}, '{"cniVersion": "1.0.0", "name": ', DECODING_FAILURE),
    "unknown-cni-version": ({}, conf("9.9.9"), INCOMPATIBLE_VERSION),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_gets_the_right_code_and_changes_nothing(world, plugin_dir, ref_dir, case):
    env, config, code = HOSTILE[case]
    for cni_path in (plugin_dir, ref_dir):
        ctr = world.container()
        failed_with(world.run_plugin(cni_path, "loopback", "ADD", config, ctr, **env), code)
        assert not lo_is_up(ctr)
        assert ctr.link("lo") is not None


@pytest.mark.parametrize("config", [
    "", "[]", '"loopback"', '{"cniVersion": "1.0.0", "type": "loopback"}',
    '{"cniVersion": 1, "name": "lo-net", "type": "loopback"}',
    '{"cniVersion": "1.0.0", "name": "../x", "type": "loopback"}',
], ids=["empty", "array", "string", "no-name", "numeric-version", "name-dot-dot"])
def test_more_bad_configs_get_one_error_object(world, plugin_dir, config):
    ctr = world.container()
    err = failed_with(world.run_plugin(plugin_dir, "loopback", "ADD", config, ctr))
    assert err["code"] < 100
    assert not lo_is_up(ctr)


# ---------------------------------------------------------------- VERSION

PODMAN_PROBE_ENV = {"CNI_COMMAND": "VERSION", "CNI_NETNS": "dummy", "CNI_IFNAME": "dummy",
                    "CNI_PATH": "dummy", "CNI_ARGS": "", "CNI_CONTAINERID": ""}


@pytest.mark.parametrize("stdin", ['{"cniVersion":"1.0.0"}', '{"cniVersion":"0.4.0"}',
                                   '{"cniVersion":"0.3.1"}'])
def test_version_answers_podmans_probe(world, impl, stdin):
    env = dict(PODMAN_PROBE_ENV, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    run = world.exec_binary(f"{impl}/loopback", env, stdin)
    info = succeeded_with_result(run)
    assert {"0.3.1", "0.4.0", "1.0.0"} <= set(info["supportedVersions"])
    assert isinstance(info["cniVersion"], str)


def test_our_version_lists_everything_we_speak(world, plugin_dir):
    env = dict(PODMAN_PROBE_ENV, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    for stdin in ('{"cniVersion":"1.1.0"}', '{"cniVersion":"42.0.0"}', ""):
        info = succeeded_with_result(world.exec_binary(f"{plugin_dir}/loopback", env, stdin))
        assert info["supportedVersions"] == list(OUR_VERSIONS)
        assert info["cniVersion"] == "1.1.0"


# ---------------------------------------------------------------- concurrency

def test_concurrent_adds_and_dels_like_containerd(world, impl):
    """containerd sets up many pods at once, loopback alongside each eth0."""
    containers = [world.container(f"c{i}") for i in range(10)]

    def run(command, ctr):
        return world.run_plugin(impl, "loopback", command, CONTAINERD_CONF, ctr,
                                ifname="lo", container_id=f"pod{ctr.name[-2:]}",
                                args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default")

    with ThreadPoolExecutor(max_workers=10) as pool:
        adds = list(pool.map(lambda c: run("ADD", c), containers))
    for ctr, add in zip(containers, adds):
        result = succeeded_with_result(add)
        assert result["interfaces"][0]["sandbox"] == ctr.path
        assert lo_is_up(ctr)

    with ThreadPoolExecutor(max_workers=10) as pool:
        dels = list(pool.map(lambda c: run("DEL", c), containers))
    for ctr, rm in zip(containers, dels):
        succeeded_silently(rm)
        assert not lo_is_up(ctr)
