"""pycni lint with real plugins: ours installed as users install them,
the reference's (Debian v1.1.1 in /usr/lib/cni, upstream v1.9.1), real
VERSION calls; what lint calls an ADD refusal is what ADD refuses, side
by side in a test world; programs others can change are never run, a
plugin that hangs on VERSION is killed."""

import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "unit", "fixtures", "lint")
DEBIAN = "/usr/lib/cni"
REF19 = os.environ.get("PYCNI_REF_V19", "/var/cache/pycni-bench/ref-v1.9/bin")


def pycni_lint(*args, cwd=None, env=None):
    base = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYCNI_STATE_DIRS": os.environ.get("PYCNI_STATE_DIRS", "/tmp")}
    proc = subprocess.run([sys.executable, "-m", "pycni.cli", "lint", *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def need(directory, name="bridge"):
    if not os.path.isfile(os.path.join(directory, name)):
        pytest.skip(f"no {name} in {directory}")


@pytest.mark.parametrize("folder", ["containerd", "podman-0.4.0", "podman-1.0.0"])
def test_known_good_configs_with_our_plugins(plugin_dir, folder):
    proc = pycni_lint("--json", "--cni-path", plugin_dir, os.path.join(FIXTURES, folder))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["findings"] == [], doc["findings"]
    assert all(n["loads"] for n in doc["networks"])


@pytest.mark.parametrize("folder", ["containerd", "podman-0.4.0"])
def test_known_good_configs_with_the_reference_plugins(folder):
    need(DEBIAN)
    proc = pycni_lint("--json", "--cni-path", DEBIAN, os.path.join(FIXTURES, folder))
    assert proc.returncode == 0 and json.loads(proc.stdout)["findings"] == []


def conflist_1_1(tmp_path):
    path = tmp_path / "10-new.conflist"
    path.write_text(json.dumps({
        "cniVersion": "1.1.0", "name": "new",
        "plugins": [{"type": "bridge", "bridge": "lintbr0",
                     "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                              "ranges": [[{"subnet": "10.61.0.0/24"}]]}}]}))
    return path


def test_versions_come_from_the_binary_that_would_run(tmp_path, plugin_dir):
    need(DEBIAN)
    path = conflist_1_1(tmp_path)
    proc = pycni_lint("--json", "--cni-path", DEBIAN, str(path))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert {(f["pointer"], f["severity"]) for f in doc["findings"]} == {
        ("/plugins/0/type", "error"), ("/plugins/0/ipam/type", "error")}
    assert all("does not support cniVersion 1.1.0" in f["message"]
               and "1.0.0" in f["message"] for f in doc["findings"])
    # ours first on the path: it is what would run, and it speaks 1.1.0
    proc = pycni_lint("--json", "--cni-path", f"{plugin_dir}:{DEBIAN}", str(path))
    assert proc.returncode == 0, proc.stdout
    if os.path.isfile(os.path.join(REF19, "bridge")):
        assert pycni_lint("--cni-path", REF19, str(path)).returncode == 0


@pytest.mark.netns
def test_an_add_refusal_is_what_add_refuses(world, plugin_dir, tmp_path):
    """Side by side: the Debian bridge on a 1.1.0 network, our bridge with
    a VLAN ID out of range; lint's error carries ADD's own message, and
    ADD (in the test world) fails with it and leaves nothing."""
    need(DEBIAN)
    ctr = world.container()
    version_net = json.loads(conflist_1_1(tmp_path).read_text())
    vlan_net = {"cniVersion": "1.0.0", "name": "vlannet",
                "plugins": [{"type": "bridge", "bridge": "lintbr1", "vlan": 5000,
                             "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                                      "ranges": [[{"subnet": "10.62.0.0/24"}]]}}]}
    for net, cni_path in ((version_net, DEBIAN), (vlan_net, plugin_dir)):
        path = tmp_path / f"{net['name']}.conflist"
        path.write_text(json.dumps(net))
        doc = json.loads(pycni_lint("--json", "--cni-path", cni_path, str(path)).stdout)
        (finding,) = [f for f in doc["findings"] if f["pointer"].startswith("/plugins/0")
                      and "ipam/type" not in f["pointer"]]
        config = dict(net["plugins"][0], name=net["name"], cniVersion=net["cniVersion"])
        run = world.run_plugin(cni_path, "bridge", "ADD", config, ctr)
        assert run.returncode != 0, run.stdout
        error = json.loads(run.stdout)
        if net is vlan_net:
            assert error["msg"] in finding["message"]
        else:
            assert error["msg"] == "incompatible CNI versions"
            assert "'incompatible CNI versions'" in finding["message"]
        assert world.host.link(net["plugins"][0]["bridge"]) is None
        assert not (tmp_path / "ipam").exists()


def test_a_plugin_others_can_change_is_reported_and_never_run(tmp_path):
    shared = tmp_path / "shared-bin"
    shared.mkdir()
    shared.chmod(0o777)
    marker = tmp_path / "ran"
    (shared / "bridge").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (shared / "bridge").chmod(0o755)
    path = conflist_1_1(tmp_path)
    proc = pycni_lint("--json", "--cni-path", str(shared), str(path))
    doc = json.loads(proc.stdout)
    (f,) = [f for f in doc["findings"] if f["pointer"] == "/plugins/0/type"]
    assert f["severity"] == "error" and "writable by others" in f["message"]
    assert not marker.exists()
    # a trusted copy later on the path does not hide it: the runtime runs the first
    trusted = tmp_path / "bin"
    trusted.mkdir()
    (trusted / "bridge").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (trusted / "bridge").chmod(0o755)
    doc = json.loads(pycni_lint("--json", "--cni-path", f"{shared}:{trusted}", str(path)).stdout)
    (f,) = [f for f in doc["findings"] if f["pointer"] == "/plugins/0/type"]
    assert str(shared / "bridge") in f["message"] and "did not run it" in f["message"]
    assert not marker.exists()


def test_a_plugin_that_hangs_on_version_is_killed(tmp_path):
    from pycni.lint import main, probe
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tag = f"6{os.getpid()}.{time.monotonic_ns() % 1000}"
    (bindir / "bridge").write_text(f"#!/bin/sh\nsleep {tag} &\nexec sleep {tag}\n")
    (bindir / "bridge").chmod(0o755)
    (bindir / "host-local").write_text("#!/bin/sh\nexit 3\n")
    (bindir / "host-local").chmod(0o755)
    path = conflist_1_1(tmp_path)
    started = time.monotonic()
    prober = probe.Prober([str(bindir)], timeout=1.0)
    _, findings = main.lint([str(path)], {"PYCNI_STATE_DIRS": "/tmp"}, prober)
    assert time.monotonic() - started < 10
    by_ptr = {f.pointer: f for f in findings}
    assert "no answer to VERSION within 1 s" in by_ptr["/plugins/0/type"].message
    assert "VERSION failed (exit 3)" in by_ptr["/plugins/0/ipam/type"].message
    left = subprocess.run(["pgrep", "-f", f"sleep {tag}"], capture_output=True, text=True)
    assert left.stdout == ""


def test_exit_codes_and_one_json_document(tmp_path, plugin_dir):
    good = tmp_path / "good"
    good.mkdir()
    (good / "10-lo.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]}))
    assert pycni_lint("--cni-path", plugin_dir, str(good)).returncode == 0
    assert pycni_lint("--cni-path", plugin_dir, str(tmp_path / "missing")).returncode == 1
    assert pycni_lint("--nonsense").returncode == 2
    proc = pycni_lint("--json", "--cni-path", plugin_dir, env={"NETCONFPATH": str(good)})
    assert proc.returncode == 0 and json.loads(proc.stdout)["paths"] == [str(good)]


def test_the_readme_shows_real_output(tmp_path, plugin_dir):
    """README "Checking configs: pycni lint": the files shown, linted with
    our plugins on the path, print exactly the output shown."""
    import re
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("## Checking configs: pycni lint\n", 1)[1].split("\n## ", 1)[0]
    files = re.findall(r"`(net\.d/[^`]+)`:\n\n```json broken\n(.*?)```", section, re.S)
    assert len(files) == 2
    for name, content in files:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(content)
    shown = re.search(r"```console\n\$ pycni lint net\.d\n(.*?)\$ echo \$\?\n(\d+)\n```",
                      section, re.S)
    proc = pycni_lint("--cni-path", plugin_dir, "net.d", cwd=tmp_path)
    assert proc.stdout == shown.group(1)
    assert proc.returncode == int(shown.group(2))
