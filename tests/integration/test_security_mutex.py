"""Issue #11 finding 3: the firewall mutex can be held by a local user.

It used to be the abstract unix socket name `\\0pycni-xtables`, which any
user in the host network namespace can bind: with it squatted, portmap ADD
took 10 s and DEL 20 s. It is now a flock on a root-only file under
/run/pycni (lib/fwtools.py NetnsMutex). Here `nobody`, inside the test
world's host namespace, squats everything it can (the old abstract name,
files under /run/pycni and /run/xtables.lock if it could) while portmap ADD
and DEL run; and a burst of concurrent ADDs in one namespace converges.
"""

import json
import os
import shutil
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_netns import missing_prerequisite

pytestmark = pytest.mark.netns

NET = "secmx"
BOUND = 5.0     # seconds; the reference takes 0.05-0.16 s, the squatted mutex took 10-20 s
PYTHON = "/usr/bin/python3"

SQUATTER = textwrap.dedent("""
    import fcntl, json, os, socket, sys, time
    held = []
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(b"\\0pycni-xtables")      # the old mutex
        held.append("abstract")
    except OSError:
        pass
    ns = os.stat("/proc/thread-self/ns/net")
    try:
        os.mkdir("/run/pycni", 0o777)
        held.append("mkdir /run/pycni")
    except OSError:
        pass
    for path in ("/run/pycni/netns-%d-%d.lock" % (ns.st_dev, ns.st_ino),
                 "/run/pycni/x.lock", "/run/xtables.lock"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(path)
        except OSError:
            pass
    print(json.dumps(held), flush=True)
    time.sleep(600)
""")


@pytest.fixture
def squatter(world, request):
    """`nobody` in the world's host netns, holding whatever it could take."""
    if not (shutil.which("setpriv") and os.path.exists(PYTHON)):
        missing_prerequisite("needs setpriv and /usr/bin/python3")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", world.host.name, "setpriv", "--reuid=nobody",
         "--regid=nogroup", "--clear-groups", PYTHON, "-c", SQUATTER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop():
        proc.kill()
        proc.wait()
    request.addfinalizer(stop)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return json.loads(line)


def prev_result(ctr, ip: str) -> dict:
    return {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": ctr.path}],
            "ips": [{"address": f"{ip}/24", "interface": 0}]}


def portmap_conf(backend: str, port: int, prev: dict | None) -> dict:
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "portmap", "backend": backend,
            "runtimeConfig": {"portMappings": [
                {"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def dnat_targets(world, backend: str) -> list[str]:
    """Every container address:port a DNAT rule of the host points at."""
    if backend == "iptables":
        out = world.host.run("iptables-save", "-t", "nat").stdout.decode()
        return [w.split("--to-destination ")[1].split()[0] for w in out.splitlines()
                if "--to-destination" in w]
    out = world.host.run("nft", "list", "ruleset").stdout.decode()
    targets = []
    for line in out.splitlines():
        words = line.split()
        if "dnat" in words:
            rest = words[words.index("dnat") + 1:]
            targets.append(rest[rest.index("to") + 1])
    return targets


def timed(fn):
    start = time.monotonic()
    out = fn()
    return out, time.monotonic() - start


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_squatting_user_does_not_slow_portmap_down(world, plugin_dir, squatter, backend):
    # nobody can take the old abstract name, and nothing else
    assert squatter == ["abstract"]
    ctr = world.container()
    prev = prev_result(ctr, "10.97.0.5")
    add, took = timed(lambda: world.run_plugin(plugin_dir, "portmap", "ADD",
                                               portmap_conf(backend, 18080, prev), ctr))
    assert add.ok, add.stdout + add.stderr
    assert took < BOUND, f"ADD took {took:.1f} s"
    assert dnat_targets(world, backend) == ["10.97.0.5:80"]
    assert "without the firewall lock" not in add.stderr
    delete, took = timed(lambda: world.run_plugin(plugin_dir, "portmap", "DEL",
                                                  portmap_conf(backend, 18080, None), ctr))
    assert delete.ok, delete.stdout + delete.stderr
    assert took < BOUND, f"DEL took {took:.1f} s"
    assert dnat_targets(world, backend) == []
    # the holder removes its lock file; nothing of this netns stays in /run/pycni
    ns = os.stat(world.host.path)
    assert not os.path.exists(f"/run/pycni/netns-{ns.st_dev}-{ns.st_ino}.lock")
    st = os.stat("/run/pycni")
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_burst_of_adds_in_one_netns_converges(world, plugin_dir, squatter, backend):
    n = 30
    ctr = world.container()
    ips = [f"10.97.1.{10 + i}" for i in range(n)]

    def add(i):
        return world.run_plugin(plugin_dir, "portmap", "ADD",
                                portmap_conf(backend, 20000 + i, prev_result(ctr, ips[i])),
                                ctr, container_id=f"burst{i}")

    def delete(i):
        return world.run_plugin(plugin_dir, "portmap", "DEL",
                                portmap_conf(backend, 20000 + i, None), ctr,
                                container_id=f"burst{i}")
    start = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        runs = list(pool.map(add, range(n)))
    for run in runs:
        assert run.ok, run.stdout + run.stderr
        assert "without the firewall lock" not in run.stderr
    assert sorted(dnat_targets(world, backend)) == sorted(f"{ip}:80" for ip in ips)
    with ThreadPoolExecutor(n) as pool:
        runs = list(pool.map(delete, range(n)))
    for run in runs:
        assert run.ok, run.stdout + run.stderr
    assert dnat_targets(world, backend) == []
    assert time.monotonic() - start < 60
