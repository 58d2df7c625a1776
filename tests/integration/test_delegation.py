"""IPAM delegation between pycni plugins: served in the delegating process
when the IPAM plugin on CNI_PATH is this same pycni (saves a Python start
per call), exec'ed otherwise; both give the same outcome."""


import pytest


def conf(data_dir):
    return {"cniVersion": "1.1.0", "name": "dlg", "type": "bridge", "bridge": "dlg0",
            "isGateway": True,
            "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": str(data_dir)}}


@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_bridge_delegates_to_host_local(world, plugin_dir, tmp_path, mode):
    log = tmp_path / "ops.log"
    extra = {"PYCNI_LOG_DIR": str(tmp_path), "PYCNI_LOG_FILE": "ops.log"}
    if mode == "exec":
        extra["PYCNI_EXEC_DELEGATES"] = "1"
    ctr = world.container()
    data_dir = tmp_path / "ipam"
    add = world.run_plugin(plugin_dir, "bridge", "ADD", conf(data_dir), ctr, extra=extra)
    assert add.ok, add.stdout + add.stderr
    assert add.json["ips"][0]["address"] == "10.66.0.2/24"
    assert (data_dir / "dlg" / "10.66.0.2").read_bytes() == b"ctr1\r\neth0"
    check = world.run_plugin(plugin_dir, "bridge", "CHECK",
                             {**conf(data_dir), "prevResult": add.json}, ctr, extra=extra)
    assert check.ok, check.stdout
    delete = world.run_plugin(plugin_dir, "bridge", "DEL", conf(data_dir), ctr, extra=extra)
    assert delete.ok, delete.stdout
    assert not (data_dir / "dlg" / "10.66.0.2").exists()

    pids = {}
    for line in log.read_text().splitlines():
        words = line.split()
        pids.setdefault(words[2], []).append((words[1], words[-1]))
    for command in ("ADD", "CHECK", "DEL"):
        (bridge_pid,) = [pid for plugin, pid in pids[command] if plugin == "bridge"]
        (ipam_pid,) = [pid for plugin, pid in pids[command] if plugin == "host-local"]
        assert (bridge_pid == ipam_pid) == (mode == "in-process"), (command, pids)


def test_in_process_delegate_error_reaches_the_runtime(world, plugin_dir, tmp_path):
    ctr = world.container()
    bad = conf(tmp_path / "ipam")
    bad["ipam"]["subnet"] = "10.66.0.1/24"      # host bits set: host-local refuses
    run = world.run_plugin(plugin_dir, "bridge", "ADD", bad, ctr)
    assert not run.ok and run.json["code"] == 7
    assert "host bits set" in run.json["msg"]
    assert not [l for l in world.host.ip_json("-d", "link", "show")
                if l.get("linkinfo", {}).get("info_kind") == "veth"]
