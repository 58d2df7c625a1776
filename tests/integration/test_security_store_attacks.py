"""Issue #11 findings 8 and 11, played by a real unprivileged user: `nobody`
(setpriv, inside the test world's host namespace) plants symlinks where
host-local's store will write, root runs ADD and DEL, and a root-owned file
outside the store must stay untouched. Also: the modes a store gets under
umask 000, and the cursor file as a FIFO or a directory (our plugin and the
reference side by side)."""

import contextlib
import os
import shutil
import stat
import tempfile
import time

import pytest

pytestmark = pytest.mark.netns

NETWORK = "secnet"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextlib.contextmanager
def umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def node(world, plugin_dir, ref_dir):
    """A root-owned 0755 directory under /tmp that `nobody` can traverse,
    holding `victim/precious` (root's file) and the dataDir `data`."""
    world.host
    base = tempfile.mkdtemp(prefix="pycni-sec-", dir="/tmp")
    os.chmod(base, 0o755)

    class Node:
        root = base
        data = os.path.join(base, "data")
        net = os.path.join(base, "data", NETWORK)
        victim_dir = os.path.join(base, "victim")
        victim = os.path.join(base, "victim", "precious")

        @staticmethod
        def conf(cni_version="1.0.0"):
            return {"cniVersion": cni_version, "name": NETWORK, "type": "bridge",
                    "ipam": {"type": "host-local", "dataDir": Node.data,
                             "subnet": "10.88.0.0/24"}}

        @staticmethod
        def run(command, cid="c1", impl="ours"):
            cni_path = plugin_dir if impl == "ours" else ref_dir
            return world.run_plugin(cni_path, "host-local", command, Node.conf(),
                                    "/run/netns/none", container_id=cid)

        @staticmethod
        def as_nobody(code):
            """Run Python `code` as nobody:nogroup in the host namespace."""
            proc = world.host.run("setpriv", "--reuid=nobody", "--regid=nogroup",
                                  "--clear-groups", PYTHON, "-c", code, check=False)
            return proc.returncode, proc.stderr.decode(errors="replace")

        @staticmethod
        def victim_untouched():
            st = os.lstat(Node.victim)
            return (open(Node.victim, "rb").read() == b"root's data\n"
                    and stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0
                    and st.st_mtime_ns == victim_mtime
                    and os.listdir(Node.victim_dir) == ["precious"])

    os.mkdir(Node.victim_dir, 0o755)
    with open(Node.victim, "wb") as f:
        f.write(b"root's data\n")
    os.chmod(Node.victim, 0o644)
    victim_mtime = os.stat(Node.victim).st_mtime_ns
    try:
        yield Node
    finally:
        shutil.rmtree(base)


def careless_admin(node):
    """The admin made dataDir world-writable (or it was created so)."""
    os.mkdir(node.data)
    os.chmod(node.data, 0o777)


def test_umask_000_gives_reference_modes_and_nobody_cannot_swap(node):
    with umask(0):
        run = node.run("ADD")
    assert run.ok, run.stdout + run.stderr
    index = os.path.join(node.data, ".pycni")
    assert (mode(node.data), mode(node.net)) == (0o755, 0o755)
    assert (mode(index), mode(os.path.join(index, NETWORK))) == (0o700, 0o700)
    assert mode(os.path.join(node.net, "10.88.0.2")) == 0o600
    assert mode(os.path.join(node.net, "last_reserved_ip.0")) == 0o600
    assert mode(os.path.join(node.net, "lock")) == 0o750
    # the attack of finding 8: swap the network directory for one of nobody's
    rc, err = node.as_nobody(f"""
import os
os.rename({node.net!r}, {node.net + ".old"!r})
""")
    assert rc != 0 and "Permission denied" in err
    rc, err = node.as_nobody(f"open({os.path.join(node.net, 'x')!r}, 'w')")
    assert rc != 0 and "Permission denied" in err
    assert node.run("DEL").ok
    assert node.victim_untouched()


PLANT_NET = """
import os
net = {net!r}
os.mkdir(net)
os.chmod(net, 0o777)
for name in ("lock", "last_reserved_ip.0", "10.88.0.2", "10.88.0.3"):
    os.symlink({victim!r}, os.path.join(net, name))
"""

PLANT_INDEX = """
import os
idx = os.path.join(os.path.dirname({net!r}), ".pycni")
os.mkdir(idx)
os.mkdir(os.path.join(idx, os.path.basename({net!r})))
for name in ("stamp", "b00", "b01"):
    os.symlink({victim!r}, os.path.join(idx, os.path.basename({net!r}), name))
"""


def test_network_dir_planted_by_nobody_is_refused(node):
    careless_admin(node)
    rc, err = node.as_nobody((PLANT_NET + PLANT_INDEX).format(net=node.net, victim=node.victim))
    assert rc == 0, err
    for command in ("ADD", "DEL", "CHECK"):
        run = node.run(command)
        assert not run.ok and run.error_code() == 5, run.stdout
        assert "is owned by uid 65534" in run.json["msg"] + run.json.get("details", "")
    assert node.victim_untouched()


def test_network_dir_symlinked_by_nobody_is_refused(node):
    careless_admin(node)
    rc, err = node.as_nobody(f"import os; os.symlink({node.victim_dir!r}, {node.net!r})")
    assert rc == 0, err
    for command in ("ADD", "DEL"):
        run = node.run(command)
        assert not run.ok and run.error_code() == 5, run.stdout
        assert "is a symbolic link" in run.json.get("details", "")
    assert node.victim_untouched()


def test_network_dir_swapped_between_calls_is_refused(node):
    """The attack as found: root's store in a world-writable dataDir, nobody
    swaps the network directory for one of theirs full of symlinks."""
    careless_admin(node)
    assert node.run("ADD", cid="first").ok
    rc, err = node.as_nobody(f"import os; os.rename({node.net!r}, {node.net + '.gone'!r})\n"
                             + PLANT_NET.format(net=node.net, victim=node.victim))
    assert rc == 0, err
    run = node.run("ADD")
    assert not run.ok and run.error_code() == 5, run.stdout
    assert not node.run("DEL").ok
    assert node.victim_untouched()


def test_symlinks_planted_in_a_legacy_world_writable_store_are_not_followed(node):
    """A store an older version made 0777 (umask 000): nobody replaces the
    cursor and plants address names and index files; root's ADD/DEL write
    nothing through them, and the directory is repaired to 0755."""
    assert node.run("ADD", cid="first").ok
    os.chmod(node.net, 0o777)
    os.chmod(os.path.join(node.data, ".pycni"), 0o777)
    os.chmod(os.path.join(node.data, ".pycni", NETWORK), 0o777)
    rc, err = node.as_nobody(f"""
import os
net, victim = {node.net!r}, {node.victim!r}
os.unlink(os.path.join(net, "last_reserved_ip.0"))
os.symlink(victim, os.path.join(net, "last_reserved_ip.0"))
os.symlink(victim, os.path.join(net, "10.88.0.3"))
os.symlink(victim, os.path.join(net, ".last_reserved_ip.0.tmp1"))
idx = os.path.join({node.data!r}, ".pycni", {NETWORK!r})
for name in os.listdir(idx):
    os.unlink(os.path.join(idx, name))
    os.symlink(victim, os.path.join(idx, name))
""")
    assert rc == 0, err
    run = node.run("ADD", cid="c1")
    assert run.ok, run.stdout
    assert run.json["ips"][0]["address"] == "10.88.0.4/24"
    assert mode(node.net) == 0o755
    assert not os.path.islink(os.path.join(node.net, "last_reserved_ip.0"))
    assert node.run("CHECK", cid="c1").ok
    assert node.run("DEL", cid="c1").ok and node.run("DEL", cid="first").ok
    assert sorted(os.listdir(node.net)) == [".last_reserved_ip.0.tmp1", "10.88.0.3",
                                            "last_reserved_ip.0", "lock"]   # nobody's, left alone
    assert node.victim_untouched()


def test_lock_symlink_planted_in_a_legacy_store_is_refused(node):
    assert node.run("ADD", cid="first").ok
    os.chmod(node.net, 0o777)
    rc, err = node.as_nobody(f"""
import os
lock = os.path.join({node.net!r}, "lock")
os.unlink(lock)
os.symlink({node.victim!r}, lock)
""")
    assert rc == 0, err
    run = node.run("ADD")
    assert not run.ok and run.error_code() == 5
    assert "lock is a symbolic link" in run.json.get("details", "")
    assert mode(node.net) == 0o755          # nobody cannot plant anything more
    assert node.victim_untouched()


def test_index_dir_symlinked_by_nobody_is_not_used(node):
    careless_admin(node)
    rc, err = node.as_nobody(
        f"import os; os.symlink({node.victim_dir!r}, {os.path.join(node.data, '.pycni')!r})")
    assert rc == 0, err
    for cid in ("c1", "c2"):
        assert node.run("ADD", cid=cid).ok
    assert node.run("DEL", cid="c1").ok
    assert "10.88.0.3" in os.listdir(node.net)
    assert node.victim_untouched()


# ----------------------------------------------------- odd cursor files

def _stored(node):
    return sorted(os.listdir(node.net))


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_cursor_directory_is_a_clear_error(node, impl):
    """Finding 11. The reference answers 999 and leaves the address file it
    had just created; we answer code 5 naming the file, and leave nothing."""
    assert node.run("ADD", cid="first", impl=impl).ok
    cursor = os.path.join(node.net, "last_reserved_ip.0")
    os.unlink(cursor)
    os.mkdir(cursor)
    before = _stored(node)
    run = node.run("ADD", impl=impl)
    assert not run.ok
    if impl == "ours":
        assert run.error_code() == 5
        assert run.json["msg"] == (f"failed to allocate for range 0: failed to write {cursor}")
        assert run.json["details"] == "Is a directory"
        assert _stored(node) == before
    else:
        assert run.error_code() == 999 and "is a directory" in run.json["msg"]


def test_cursor_fifo_never_hangs(node):
    assert node.run("ADD", cid="first").ok
    cursor = os.path.join(node.net, "last_reserved_ip.0")
    os.unlink(cursor)
    os.mkfifo(cursor)
    started = time.monotonic()
    run = node.run("ADD")
    assert run.ok, run.stdout + run.stderr
    assert time.monotonic() - started < 5
    assert run.json["ips"][0]["address"] == "10.88.0.3/24"
    assert open(cursor).read() == "10.88.0.3"
    assert node.run("DEL").ok


def test_resolv_conf_fifo_is_a_clear_error(node, world, plugin_dir):
    fifo = os.path.join(node.root, "resolv.conf")
    os.mkfifo(fifo)
    conf = node.conf()
    conf["ipam"]["resolvConf"] = fifo
    started = time.monotonic()
    run = world.run_plugin(plugin_dir, "host-local", "ADD", conf, "/run/netns/none")
    assert time.monotonic() - started < 5
    assert not run.ok and run.error_code() == 5
    assert "FIFO" in run.json.get("details", "")
    assert not os.path.exists(node.data)


# ----------------------------------------------------- tuning's backups

def _tuning_container(world):
    ctr = world.container("tun")
    ctr.run("ip", "link", "add", "eth0", "mtu", "1500", "type", "veth", "peer", "name", "peer0")
    ctr.run("ip", "link", "set", "eth0", "up")
    return ctr


def _tuning_conf(data_dir, ctr):
    return {"cniVersion": "1.0.0", "name": "tnet", "type": "tuning", "dataDir": data_dir,
            "mtu": 1400,
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "sandbox": ctr.path}],
                           "ips": [{"address": "10.99.0.2/24", "interface": 0}]}}


def test_tuning_backup_symlink_planted_by_nobody_is_replaced(node, world, plugin_dir):
    """The reference's os.WriteFile would write the backup through it."""
    tdir = os.path.join(node.root, "tuning")
    os.mkdir(tdir)
    os.chmod(tdir, 0o777)                   # careless admin
    ctr = _tuning_container(world)
    backup = os.path.join(tdir, "c1_eth0.json")
    rc, err = node.as_nobody(f"import os; os.symlink({node.victim!r}, {backup!r})")
    assert rc == 0, err
    conf = _tuning_conf(tdir, ctr)
    run = world.run_plugin(plugin_dir, "tuning", "ADD", conf, ctr, container_id="c1")
    assert run.ok, run.stdout + run.stderr
    assert not os.path.islink(backup) and mode(backup) == 0o600
    assert ctr.link("eth0")["mtu"] == 1400
    assert world.run_plugin(plugin_dir, "tuning", "DEL", conf, ctr, container_id="c1").ok
    assert ctr.link("eth0")["mtu"] == 1500 and not os.path.lexists(backup)
    assert node.victim_untouched()


def test_tuning_backup_dir_under_umask_000(node, world, plugin_dir):
    tdir = os.path.join(node.root, "run", "tuning")
    ctr = _tuning_container(world)
    conf = _tuning_conf(tdir, ctr)
    with umask(0):
        run = world.run_plugin(plugin_dir, "tuning", "ADD", conf, ctr, container_id="c1")
    assert run.ok, run.stdout + run.stderr
    assert mode(os.path.join(node.root, "run")) == 0o700 and mode(tdir) == 0o700
    assert mode(os.path.join(tdir, "c1_eth0.json")) == 0o600
    assert world.run_plugin(plugin_dir, "tuning", "DEL", conf, ctr, container_id="c1").ok
