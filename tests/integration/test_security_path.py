"""Issue #11 finding 6: a relative PATH (or CNI_PATH) entry used to make
the plugins run `./iptables-save`, `./iptables-restore` (or a delegate)
from the working directory, as root. Real plugins in a test world, run from
a working directory full of planted tools that leave a marker file when
run: the marker never appears, and the plugins still work (the sbin
fallbacks, the absolute CNI_PATH entry).
"""

import os
import shutil
import subprocess
import json

import pytest

pytestmark = pytest.mark.netns

NET = "secpath"
TOOLS = ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "nft",
         "host-local")


@pytest.fixture
def planted(tmp_path):
    """A working directory whose ., ./relative/dir and ./plugins hold tools
    that write `marker` if anyone runs them."""
    cwd = tmp_path / "cwd"
    marker = tmp_path / "marker"
    for d in (cwd, cwd / "relative" / "dir", cwd / "plugins"):
        d.mkdir(parents=True, exist_ok=True)
        for name in TOOLS:
            path = d / name
            path.write_text(f"#!/bin/sh\necho \"$0\" >> {marker}\nexit 0\n")
            path.chmod(0o755)
    return cwd, marker


def run_in(world, cwd, binary, env, conf):
    proc = subprocess.run([shutil.which("ip"), "netns", "exec", world.host.name, binary],
                          input=json.dumps(conf).encode(), env=env, cwd=cwd,
                          capture_output=True, timeout=60)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    return json.loads(out) if out.strip() else None


def env_for(world, command, ctr, path, cni_path, cid="c1"):
    return {"PATH": path, "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
            "CNI_NETNS": ctr.path, "CNI_IFNAME": "eth0", "CNI_PATH": cni_path,
            "PYCNI_STATE_DIRS": os.environ.get("PYCNI_STATE_DIRS", "/tmp")}


PATHS = [".", "relative/dir", ".:relative/dir", "::", "relative/dir:."]


@pytest.mark.parametrize("path", PATHS)
def test_portmap_never_runs_tools_from_the_working_directory(world, plugin_dir, planted,
                                                              path):
    cwd, marker = planted
    ctr = world.container()
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": ctr.path}],
            "ips": [{"address": "10.95.0.5/24", "interface": 0}]}
    for backend in ("iptables", "nftables"):
        conf = {"cniVersion": "1.0.0", "name": NET, "type": "portmap", "backend": backend,
                "runtimeConfig": {"portMappings": [
                    {"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}]},
                "prevResult": prev}
        binary = os.path.join(plugin_dir, "portmap")
        run_in(world, cwd, binary, env_for(world, "ADD", ctr, path, plugin_dir), conf)
        run_in(world, cwd, binary, env_for(world, "CHECK", ctr, path, plugin_dir), conf)
        run_in(world, cwd, binary, env_for(world, "DEL", ctr, path, plugin_dir), conf)
    assert not marker.exists(), marker.read_text()
    assert "10.95.0.5" not in world.host.run("iptables-save").stdout.decode()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_bridge_ipmasq_and_firewall_never_run_planted_tools(world, plugin_dir, planted,
                                                           tmp_path, backend):
    """Also CNI_PATH: its relative entry `plugins` (with a planted host-local)
    comes first and is skipped; the absolute plugin directory is used."""
    cwd, marker = planted
    ctr = world.container()
    cni_path = f"plugins:{plugin_dir}"
    bridge = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "cnisecp0",
              "isGateway": True, "ipMasq": True, "ipMasqBackend": backend,
              "ipam": {"type": "host-local", "subnet": "10.95.1.0/24",
                       "dataDir": str(tmp_path / "ipam")}}
    env = env_for(world, "ADD", ctr, ".:relative/dir", cni_path)
    result = run_in(world, cwd, os.path.join(plugin_dir, "bridge"), env, bridge)
    ip = result["ips"][0]["address"].split("/")[0]
    fw = {"cniVersion": "1.0.0", "name": NET, "type": "firewall", "backend": backend,
          "prevResult": result}
    run_in(world, cwd, os.path.join(plugin_dir, "firewall"), env, fw)
    for name, conf in (("firewall", fw), ("bridge", bridge)):
        run_in(world, cwd, os.path.join(plugin_dir, name),
               env_for(world, "DEL", ctr, ".:relative/dir", cni_path), conf)
    assert not marker.exists(), marker.read_text()
    assert ip not in world.host.run("iptables-save").stdout.decode()
    assert not os.listdir(tmp_path / "ipam" / NET) or \
        all(n == "lock" or n.startswith("last_reserved_ip")
            for n in os.listdir(tmp_path / "ipam" / NET))


def test_xtables_libdir_from_the_environment_does_not_reach_iptables(world, plugin_dir,
                                                                     tmp_path):
    """iptables dlopen()s its extensions from XTABLES_LIBDIR: a user's
    directory there would be code run as root. An empty one makes every
    extension (tcp, DNAT, comment) fail to load if it gets through."""
    libdir = tmp_path / "libxt"
    libdir.mkdir()
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "portmap", "backend": "iptables",
            "runtimeConfig": {"portMappings": [
                {"hostPort": 18082, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "sandbox": ctr.path}],
                           "ips": [{"address": "10.95.2.5/24", "interface": 0}]}}
    extra = {"XTABLES_LIBDIR": str(libdir)}
    for command in ("ADD", "CHECK"):
        run = world.run_plugin(plugin_dir, "portmap", command, conf, ctr, extra=extra)
        assert run.ok, run.stdout + run.stderr
    assert "10.95.2.5:80" in world.host.run("iptables-save", "-t", "nat").stdout.decode()
    run = world.run_plugin(plugin_dir, "portmap", "DEL", conf, ctr, extra=extra)
    assert run.ok, run.stdout + run.stderr
    assert "10.95.2.5" not in world.host.run("iptables-save", "-t", "nat").stdout.decode()
