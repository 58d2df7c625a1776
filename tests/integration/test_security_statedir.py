"""Issue #11 ("no config alone may choose a file to write"): a config's
dataDir (host-local, tuning) is honoured only below a state directory the
node's root allows (pycni.nodeconf). Real plugin processes in a test world,
with an environment that does not carry the tests' PYCNI_STATE_DIRS."""

import os
import tempfile

import pytest

pytestmark = pytest.mark.netns


def host_local_conf(data_dir, version="1.1.0"):
    return {"cniVersion": version, "name": "sdnet", "type": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.89.0.0/24", "dataDir": data_dir}}


def bridge_conf(data_dir):
    return {"cniVersion": "1.0.0", "name": "sdnet", "type": "bridge", "bridge": "sdbr0",
            "ipam": {"type": "host-local", "subnet": "10.89.0.0/24", "dataDir": data_dir}}


@pytest.fixture
def outside():
    """A directory root did not allow (not below /var/lib/cni, /run/cni)."""
    base = tempfile.mkdtemp(prefix="pycni-statedir-", dir="/tmp")
    os.chmod(base, 0o755)
    yield os.path.join(base, "store")
    import shutil
    shutil.rmtree(base)


def untrusted_env(world, plugin_dir, command, ctr=None, **extra):
    env = world.plugin_env(command, [plugin_dir], ctr, extra={"PYCNI_STATE_DIRS": None})
    assert "PYCNI_STATE_DIRS" not in env
    env.update(extra)
    return env


@pytest.mark.parametrize("command", ["ADD", "CHECK", "GC", "STATUS"])
def test_host_local_refuses_a_data_dir_outside_the_allowed_roots(world, plugin_dir, outside,
                                                                  command):
    ctr = world.container()
    run = world.exec_plugin("host-local", untrusted_env(world, plugin_dir, command, ctr),
                            host_local_conf(outside))
    assert run.returncode == 1 and run.error_code() == 7, run.stdout
    assert "not below a state directory the node allows" in run.stdout
    assert not os.path.exists(outside)


@pytest.mark.parametrize("data_dir", ["/var/lib/cni/../../../{outside}", "{outside}/"])
def test_dot_dot_and_spelling_do_not_escape(world, plugin_dir, outside, data_dir):
    ctr = world.container()
    run = world.exec_plugin("host-local", untrusted_env(world, plugin_dir, "ADD", ctr),
                            host_local_conf(data_dir.format(outside=outside.lstrip("/")
                                                            if ".." in data_dir else outside)))
    assert run.error_code() == 7, run.stdout
    assert not os.path.exists(outside)


def test_bridge_with_such_a_store_fails_and_leaves_no_store(world, plugin_dir, outside):
    ctr = world.container()
    run = world.exec_plugin("bridge", untrusted_env(world, plugin_dir, "ADD", ctr),
                            bridge_conf(outside))
    assert run.error_code() == 7, run.stdout
    assert not os.path.exists(outside)
    assert world.container("ctr").link("eth0") is None
    run = world.exec_plugin("bridge", untrusted_env(world, plugin_dir, "DEL", ctr),
                            bridge_conf(outside))
    assert run.returncode == 0, run.stdout
    assert not os.path.exists(outside)


def test_del_leaves_files_in_a_refused_directory_alone(world, plugin_dir, outside):
    ctr = world.container()
    os.makedirs(os.path.join(outside, "sdnet"))
    planted = os.path.join(outside, "sdnet", "10.89.0.2")
    with open(planted, "wb") as f:
        f.write(b"ctr1\r\neth0")
    run = world.exec_plugin("host-local", untrusted_env(world, plugin_dir, "DEL", ctr),
                            host_local_conf(outside))
    assert run.returncode == 0, run.stdout
    with open(planted, "rb") as f:
        assert f.read() == b"ctr1\r\neth0"


def test_allowed_by_the_node(world, plugin_dir, outside):
    ctr = world.container()
    env = untrusted_env(world, plugin_dir, "ADD", ctr,
                        PYCNI_STATE_DIRS=os.path.dirname(outside))
    run = world.exec_plugin("host-local", env, host_local_conf(outside))
    assert run.ok, run.stdout
    assert os.listdir(os.path.join(outside, "sdnet"))
    env["CNI_COMMAND"] = "DEL"
    assert world.exec_plugin("host-local", env, host_local_conf(outside)).ok


def test_tuning_refuses_a_data_dir_outside_the_allowed_roots(world, plugin_dir, outside):
    ctr = world.container()
    ctr.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
    conf = {"cniVersion": "1.0.0", "name": "sdnet", "type": "tuning", "dataDir": outside,
            "mtu": 1400,
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "sandbox": ctr.path}]}}
    run = world.exec_plugin("tuning", untrusted_env(world, plugin_dir, "ADD", ctr), conf)
    assert run.error_code() == 7, run.stdout
    assert not os.path.exists(outside)
    assert ctr.link("eth0")["mtu"] != 1400
    run = world.exec_plugin("tuning", untrusted_env(world, plugin_dir, "DEL", ctr), conf)
    assert run.returncode == 0, run.stdout
    assert not os.path.exists(outside)
