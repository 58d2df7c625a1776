"""cnitool against the real kernel: add/check/del (and del again) of a
loopback network in a fresh container namespace, with our loopback and the
reference loopback (Debian containernetworking-plugins 1.1.1, /usr/lib/cni,
which speaks cniVersion up to 1.0.0), plus gc and status.

cnitool runs inside the world's host namespace as an operator would run it
on a node; its result cache goes to a temporary CNI_CACHE_DIR.
"""

import base64
import hashlib
import json
import os
import stat
import sys

import pytest

CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
NET = "lo-net"


@pytest.fixture(params=["ours", "reference"])
def impl(request) -> str:
    """CNI_PATH of the loopback under test."""
    return request.getfixturevalue("plugin_dir" if request.param == "ours" else "ref_dir")


@pytest.fixture
def dirs(tmp_path):
    netconf = tmp_path / "net.d"
    netconf.mkdir()
    return netconf, tmp_path / "cache"


def write_conflist(netconf, version: str, **top) -> bytes:
    data = json.dumps({"cniVersion": version, "name": NET,
                       "plugins": [{"type": "loopback"}], **top}, indent=2).encode()
    (netconf / "10-lo.conflist").write_bytes(data)
    return data


def cnitool(world, cni_path, netconf, cache_dir, *args, **extra_env):
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": str(cni_path),
           "CNI_CACHE_DIR": str(cache_dir), **extra_env}
    return world.host.run(CNITOOL, *args, check=False, env=env)


def expected_container_id(netns_path: str) -> str:
    return "cnitool-" + hashlib.sha512(netns_path.encode()).hexdigest()[:20]


def lo_up(ns) -> bool:
    return "UP" in ns.link("lo")["flags"]


def assert_ok(proc):
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.netns
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_add_check_del(world, impl, dirs, version):
    netconf, cache_dir = dirs
    conf_bytes = write_conflist(netconf, version)
    ctr = world.container()
    assert not lo_up(ctr)

    add = cnitool(world, impl, netconf, cache_dir, "add", NET, ctr.path)
    assert_ok(add)
    result = json.loads(add.stdout)
    assert result["cniVersion"] == version
    assert result["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00",
                                     "sandbox": ctr.path}]
    assert [ip["address"] for ip in result["ips"]][:1] == ["127.0.0.1/8"]
    # Printed as the reference does: 4-space indented, no trailing newline.
    assert add.stdout.decode() == json.dumps(result, indent=4)
    assert lo_up(ctr)

    container_id = expected_container_id(ctr.path)
    cache_file = cache_dir / "results" / f"{NET}-{container_id}-eth0"
    assert stat.S_IMODE(os.stat(cache_dir / "results").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache_file).st_mode) == 0o600
    cached = json.loads(cache_file.read_bytes())
    assert cached["kind"] == "cniCacheV1"
    assert (cached["containerId"], cached["ifName"], cached["networkName"], cached["netns"]) \
        == (container_id, "eth0", NET, ctr.path)
    assert base64.b64decode(cached["config"]) == conf_bytes
    assert cached["result"] == result

    assert_ok(cnitool(world, impl, netconf, cache_dir, "check", NET, ctr.path))

    assert_ok(cnitool(world, impl, netconf, cache_dir, "del", NET, ctr.path))
    assert not lo_up(ctr)
    assert not cache_file.exists()

    # DEL is idempotent: again without a cache entry.
    assert_ok(cnitool(world, impl, netconf, cache_dir, "del", NET, ctr.path))


@pytest.mark.netns
def test_check_fails_when_lo_went_down(world, impl, dirs):
    netconf, cache_dir = dirs
    write_conflist(netconf, "1.0.0")
    ctr = world.container()
    assert_ok(cnitool(world, impl, netconf, cache_dir, "add", NET, ctr.path))
    ctr.run("ip", "link", "set", "lo", "down")
    check = cnitool(world, impl, netconf, cache_dir, "check", NET, ctr.path)
    assert check.returncode == 1
    assert check.stderr.strip()
    assert_ok(cnitool(world, impl, netconf, cache_dir, "del", NET, ctr.path))


@pytest.mark.netns
def test_container_id_and_ifname_overrides(world, plugin_dir, dirs):
    netconf, cache_dir = dirs
    write_conflist(netconf, "1.1.0")
    ctr = world.container()
    add = cnitool(world, plugin_dir, netconf, cache_dir, "-i", "lo", "add", NET, ctr.path,
                  CNI_CONTAINERID="pod-1")
    assert_ok(add)
    assert os.listdir(cache_dir / "results") == [f"{NET}-pod-1-lo"]
    # DEL needs no netns when the container ID is given.
    assert_ok(cnitool(world, plugin_dir, netconf, cache_dir, "del", NET,
                      CNI_CONTAINERID="pod-1", CNI_IFNAME="lo"))
    assert os.listdir(cache_dir / "results") == []


@pytest.mark.netns
def test_gc_deletes_cached_attachments_and_status(world, plugin_dir, dirs):
    netconf, cache_dir = dirs
    write_conflist(netconf, "1.1.0")
    first, second = world.container("c1"), world.container("c2")
    for ctr in (first, second):
        assert_ok(cnitool(world, plugin_dir, netconf, cache_dir, "add", NET, ctr.path))
    assert len(os.listdir(cache_dir / "results")) == 2
    assert_ok(cnitool(world, plugin_dir, netconf, cache_dir, "status", NET))
    assert_ok(cnitool(world, plugin_dir, netconf, cache_dir, "gc", NET))
    # As the reference cnitool: no attachment is kept, each got a DEL.
    assert os.listdir(cache_dir / "results") == []
    assert not lo_up(first) and not lo_up(second)


@pytest.mark.netns
def test_reference_refuses_1_1_0(world, ref_dir, dirs):
    netconf, cache_dir = dirs
    write_conflist(netconf, "1.1.0")
    ctr = world.container()
    add = cnitool(world, ref_dir, netconf, cache_dir, "add", NET, ctr.path)
    assert add.returncode == 1
    assert add.stdout == b""
    assert b'plugin type="loopback" failed (add): incompatible CNI versions' in add.stderr
    assert not (cache_dir / "results").exists()


@pytest.mark.netns
def test_missing_plugin_and_network(world, dirs, plugin_dir):
    netconf, cache_dir = dirs
    (netconf / "10-x.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "nothere"}]}))
    ctr = world.container()
    add = cnitool(world, plugin_dir, netconf, cache_dir, "add", "x", ctr.path)
    assert add.returncode == 1
    assert add.stderr.decode() == (f'plugin type="nothere" failed (add): failed to find '
                                   f'plugin "nothere" in path [{plugin_dir}]\n')
    missing = cnitool(world, plugin_dir, netconf, cache_dir, "add", "y", ctr.path)
    assert missing.returncode == 1
    assert missing.stderr.decode() == f'no net configuration with name "y" in {netconf}\n'
