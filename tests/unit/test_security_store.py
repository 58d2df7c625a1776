"""Issue #11 findings 8 and 11 (state files): exact modes whatever the
umask, nothing followed through a symlink, no hang on a FIFO, a clear error
(code 5) for what cannot be used. Unit level, on temporary directories; the
attacks by a real unprivileged user are in tests/integration/test_security_store_attacks.py."""

import contextlib
import os
import signal
import stat

import pytest

from pycni import files
from pycni.cnitool import cache
from pycni.cnitool.request import RuntimeConf
from pycni.errors import CNIError, IO_FAILURE
from pycni.ipam.host_local import config as cfg
from pycni.ipam.host_local.allocator import allocate
from pycni.ipam.host_local.dns import read_dns
from pycni.ipam.host_local.store import DiskStore, INDEX_DIR
from pycni.plugins.tuning import backup

NOBODY = 65534


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask000():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def no_hang(seconds=5):
    def boom(*_):
        raise TimeoutError("hung")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def victim(tmp_path):
    """A file outside every store that nothing may touch."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "precious"
    path.write_bytes(b"root's data\n")
    os.chmod(path, 0o644)
    return path


def unchanged(victim):
    return victim.read_bytes() == b"root's data\n" and mode(victim) == 0o644 \
        and sorted(os.listdir(victim.parent)) == ["precious"]


def conf(data_dir, subnet="10.0.0.0/29"):
    return cfg.load({"cniVersion": "1.0.0", "name": "net",
                     "ipam": {"subnet": subnet, "dataDir": str(data_dir)}})


def add(data_dir, cid="c1"):
    store = DiskStore(str(data_dir), "net")
    store.create()
    with store.locked():
        return [ip.address for ip in allocate(conf(data_dir), store, cid, "eth0")]


def delete(data_dir, cid="c1"):
    store = DiskStore(str(data_dir), "net")
    store.create()
    with store.locked():
        return store.release(cid, "eth0")


# --------------------------------------------------------------- helpers

def test_open_tree_creates_missing_components_with_exact_mode(tmp_path, umask000):
    fd = files.open_tree(str(tmp_path / "a" / "b" / "c"), 0o755)
    os.close(fd)
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o755] * 3


def test_open_tree_follows_existing_components(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")          # the operator's layout
    fd = files.open_tree(str(tmp_path / "link" / "new"), 0o700)
    os.close(fd)
    assert mode(tmp_path / "real" / "new") == 0o700


def test_open_subdir_refuses_symlink_and_foreign_owner(tmp_path):
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "link").symlink_to("elsewhere")
        with pytest.raises(files.UnsafePath, match="symbolic link"):
            files.open_subdir(base, "link", 0o755)
        (tmp_path / "theirs").mkdir()
        os.chown(tmp_path / "theirs", NOBODY, NOBODY)
        with pytest.raises(files.UnsafePath, match="owned by uid 65534"):
            files.open_subdir(base, "theirs", 0o755)
        (tmp_path / "afile").write_text("")
        with pytest.raises(files.UnsafePath, match="regular file"):
            files.open_subdir(base, "afile", 0o755)
        assert files.open_subdir(base, "missing", 0o755, create=False) is None
    finally:
        os.close(base)


def test_open_subdir_drops_group_and_other_write(tmp_path):
    (tmp_path / "old").mkdir()
    os.chmod(tmp_path / "old", 0o777)      # left by an older version under umask 000
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(files.open_subdir(base, "old", 0o755))
    finally:
        os.close(base)
    assert mode(tmp_path / "old") == 0o755


def test_open_regular_refuses_fifo_dir_symlink_without_hanging(tmp_path, victim):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(victim)
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with no_hang():
            for name, kind in (("fifo", "FIFO"), ("dir", "directory"), ("link", "symbolic link")):
                for flags in (os.O_RDONLY, os.O_WRONLY):
                    with pytest.raises(files.UnsafePath, match=kind):
                        files.open_regular(base, name, flags)
                    with pytest.raises(files.UnsafePath, match=kind):
                        files.open_regular(base, name, flags, create_mode=0o600)
    finally:
        os.close(base)
    assert unchanged(victim)


def test_write_atomic_replaces_links_never_writes_through(tmp_path, victim, umask000):
    (tmp_path / "sym").symlink_to(victim)
    os.link(victim, tmp_path / "hard")
    os.chmod(victim, 0o644)
    files.write_atomic(str(tmp_path / "sym"), b"new", 0o600)
    files.write_atomic(str(tmp_path / "hard"), b"new", 0o640)
    assert (tmp_path / "sym").read_bytes() == b"new" and mode(tmp_path / "sym") == 0o600
    assert (tmp_path / "hard").read_bytes() == b"new" and mode(tmp_path / "hard") == 0o640
    assert victim.read_bytes() == b"root's data\n"
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_rewrite_in_place_only_a_plain_file(tmp_path, victim, umask000):
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        files.rewrite_at(base, "new", b"1", 0o600)
        ino = os.stat(tmp_path / "new").st_ino
        files.rewrite_at(base, "new", b"22", 0o600)
        assert os.stat(tmp_path / "new").st_ino == ino          # in place
        assert (tmp_path / "new").read_bytes() == b"22" and mode(tmp_path / "new") == 0o600
        os.symlink(victim, tmp_path / "sym")
        os.link(victim, tmp_path / "hard")
        os.mkfifo(tmp_path / "fifo")
        with no_hang():
            for name in ("sym", "hard", "fifo"):
                files.rewrite_at(base, name, b"x", 0o600)
                assert (tmp_path / name).read_bytes() == b"x"
                assert stat.S_ISREG(os.lstat(tmp_path / name).st_mode)
        (tmp_path / "dir").mkdir()
        with pytest.raises(IsADirectoryError):
            files.rewrite_at(base, "dir", b"x", 0o600)
    finally:
        os.close(base)
    assert victim.read_bytes() == b"root's data\n"


def test_write_atomic_over_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        files.write_atomic(str(tmp_path / "d"), b"x")
    assert sorted(os.listdir(tmp_path)) == ["d"]


# --------------------------------------------------------------- host-local

def test_store_modes_under_umask_000(tmp_path, umask000):
    data = tmp_path / "data"
    assert add(data) == ["10.0.0.2/29"]
    net = data / "net"
    assert mode(data) == 0o755 and mode(net) == 0o755
    assert mode(data / INDEX_DIR) == 0o700 and mode(data / INDEX_DIR / "net") == 0o700
    assert mode(net / "10.0.0.2") == 0o600
    assert mode(net / "last_reserved_ip.0") == 0o600
    assert mode(net / "lock") == 0o750
    assert {mode(p) for p in (data / INDEX_DIR / "net").iterdir()} == {0o600}


def test_network_dir_symlink_is_refused(tmp_path, victim):
    data = tmp_path / "data"
    data.mkdir()
    (data / "net").symlink_to(victim.parent)
    for call in (add, delete):
        with pytest.raises(CNIError) as err:
            call(data)
        assert err.value.code == IO_FAILURE
        assert "net is a symbolic link" in str(err.value)
    assert unchanged(victim)


def test_network_dir_of_another_user_is_refused(tmp_path):
    net = tmp_path / "data" / "net"
    net.mkdir(parents=True)
    os.chown(net, NOBODY, NOBODY)
    with pytest.raises(CNIError) as err:
        add(tmp_path / "data")
    assert err.value.code == IO_FAILURE and "owned by uid 65534" in str(err.value)
    assert os.listdir(net) == []


def test_world_writable_network_dir_is_repaired(tmp_path):
    net = tmp_path / "data" / "net"
    net.mkdir(parents=True)
    os.chmod(net, 0o777)
    assert add(tmp_path / "data") == ["10.0.0.2/29"]
    assert mode(net) == 0o755


def test_planted_symlinks_in_the_store_are_never_followed(tmp_path, victim):
    data = tmp_path / "data"
    add(data, "first")                       # 10.0.0.2, cursor at .2
    net = data / "net"
    os.unlink(net / "last_reserved_ip.0")
    (net / "last_reserved_ip.0").symlink_to(victim)
    (net / "10.0.0.3").symlink_to(victim)    # a name taken: not free, not read
    (net / ".last_reserved_ip.0.tmp1").symlink_to(victim)
    assert add(data, "c1") == ["10.0.0.4/29"]
    assert not os.path.islink(net / "last_reserved_ip.0")
    assert (net / "last_reserved_ip.0").read_bytes() == b"10.0.0.4"
    assert delete(data, "c1") == ["10.0.0.4"]
    assert delete(data, "first") == ["10.0.0.2"]
    assert os.path.islink(net / "10.0.0.3")
    assert unchanged(victim)


def test_planted_lock_symlink_is_refused(tmp_path, victim):
    data = tmp_path / "data"
    add(data, "first")
    os.unlink(data / "net" / "lock")
    (data / "net" / "lock").symlink_to(victim)
    with pytest.raises(CNIError) as err:
        add(data)
    assert err.value.code == IO_FAILURE and "lock is a symbolic link" in str(err.value)
    assert unchanged(victim)


@pytest.mark.parametrize("where", [INDEX_DIR, f"{INDEX_DIR}/net"])
def test_index_dir_symlink_is_not_used(tmp_path, victim, where):
    data = tmp_path / "data"
    data.mkdir()
    if where != INDEX_DIR:
        (data / INDEX_DIR).mkdir(mode=0o700)
    (data / where).symlink_to(victim.parent)
    assert add(data, "c1") == ["10.0.0.2/29"]
    assert add(data, "c2") == ["10.0.0.3/29"]
    assert delete(data, "c1") == ["10.0.0.2"]
    assert unchanged(victim)


def test_foreign_index_dir_is_not_used(tmp_path):
    data = tmp_path / "data"
    (data / INDEX_DIR / "net").mkdir(parents=True)
    os.chown(data / INDEX_DIR / "net", NOBODY, NOBODY)
    assert add(data, "c1") == ["10.0.0.2/29"]
    assert os.listdir(data / INDEX_DIR / "net") == []
    assert delete(data, "c1") == ["10.0.0.2"]


def test_cursor_that_is_a_directory_is_a_clear_error_and_reserves_nothing(tmp_path):
    """Issue #11 finding 11: was a bare 999 (EISDIR from read)."""
    data = tmp_path / "data"
    add(data, "first")
    net = data / "net"
    os.unlink(net / "last_reserved_ip.0")
    (net / "last_reserved_ip.0").mkdir()
    before = sorted(os.listdir(net))
    with pytest.raises(CNIError) as err:
        add(data, "c1")
    assert err.value.code == IO_FAILURE
    assert f"failed to write {net}/last_reserved_ip.0" in err.value.msg
    assert "directory" in err.value.details.lower()
    assert sorted(os.listdir(net)) == before
    assert delete(data, "first") == ["10.0.0.2"]


def test_cursor_hard_linked_to_a_file_outside_is_not_written_through(tmp_path, victim):
    data = tmp_path / "data"
    add(data, "first")
    cursor = data / "net" / "last_reserved_ip.0"
    os.unlink(cursor)
    os.link(victim, cursor)
    assert add(data, "c1") == ["10.0.0.3/29"]
    assert cursor.read_bytes() == b"10.0.0.3" and os.stat(cursor).st_nlink == 1
    assert unchanged(victim)


def test_cursor_that_is_a_fifo_does_not_hang(tmp_path):
    data = tmp_path / "data"
    add(data, "first")
    net = data / "net"
    os.unlink(net / "last_reserved_ip.0")
    os.mkfifo(net / "last_reserved_ip.0")
    with no_hang():
        assert add(data, "c1") == ["10.0.0.3/29"]
    assert (net / "last_reserved_ip.0").read_bytes() == b"10.0.0.3"


@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink"])
def test_odd_ip_files_are_taken_and_never_hang(tmp_path, victim, kind):
    """Anything at an address's name makes it taken (O_EXCL, as the
    reference); scans and DEL neither read it nor hang on it."""
    data = tmp_path / "data"
    add(data, "first")
    net = data / "net"
    odd = net / "10.0.0.3"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "dir":
        odd.mkdir()
    else:
        odd.symlink_to(victim)
    os.utime(net, ns=(0, 0))      # the index must be rebuilt: a full scan
    with no_hang():
        assert add(data, "c1") == ["10.0.0.4/29"]
        assert delete(data, "c1") == ["10.0.0.4"]
        assert delete(data, "first") == ["10.0.0.2"]
        store = DiskStore(str(data), "net")
        store.create()
        with store.locked():
            assert store.scan() == {}
    assert os.path.lexists(odd)
    assert unchanged(victim)


def test_resolv_conf_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "resolv.conf")
    with no_hang(), pytest.raises(CNIError) as err:
        read_dns(str(tmp_path / "resolv.conf"))
    assert err.value.code == IO_FAILURE and "FIFO" in str(err.value)
    (tmp_path / "real.conf").write_text("nameserver 10.0.0.53\n")
    (tmp_path / "link.conf").symlink_to("real.conf")    # /etc/resolv.conf often is one
    assert read_dns(str(tmp_path / "link.conf")).nameservers == ["10.0.0.53"]


# --------------------------------------------------------------- tuning

def test_tuning_backup_modes_under_umask_000(tmp_path, umask000):
    path = backup.file_path(str(tmp_path / "run" / "tuning"), "c1", "eth0")
    backup.save(path, backup.LinkState(mtu=1400))
    assert mode(tmp_path / "run") == 0o700 and mode(tmp_path / "run" / "tuning") == 0o700
    assert mode(path) == 0o600
    assert backup.load(path).mtu == 1400


def test_tuning_backup_never_follows_links(tmp_path, victim):
    path = backup.file_path(str(tmp_path), "c1", "eth0")
    os.symlink(victim, path)
    with pytest.raises(OSError):
        backup.load(path)                   # not read through
    backup.save(path, backup.LinkState(mtu=1400))
    assert not os.path.islink(path) and backup.load(path).mtu == 1400
    os.unlink(path)
    os.mkfifo(path)
    with no_hang(), pytest.raises(OSError):
        backup.load(path)
    assert unchanged(victim)


# --------------------------------------------------------------- cnitool cache

RT = RuntimeConf(container_id="ctr", netns="/run/netns/x", ifname="eth0")
RESULT = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}


def test_cnitool_cache_modes_under_umask_000(tmp_path, umask000):
    cache.write(str(tmp_path / "cni"), "net", RT, b"{}", RESULT)
    assert mode(tmp_path / "cni") == 0o700 and mode(tmp_path / "cni" / "results") == 0o700
    assert mode(tmp_path / "cni" / "results" / "net-ctr-eth0") == 0o600
    assert cache.read(str(tmp_path / "cni"), "net", RT) is not None


def test_cnitool_cache_never_follows_links(tmp_path, victim):
    cache_dir = tmp_path / "cni"
    cache_dir.mkdir()
    (cache_dir / "results").symlink_to(victim.parent)
    with pytest.raises(files.UnsafePath):
        cache.write(str(cache_dir), "net", RT, b"{}", RESULT)
    assert cache.read(str(cache_dir), "net", RT) is None
    assert cache.attachments(str(cache_dir)) == []
    cache.delete(str(cache_dir), "net", RT)
    os.unlink(cache_dir / "results")
    (cache_dir / "results").mkdir(mode=0o700)
    (cache_dir / "results" / "net-ctr-eth0").symlink_to(victim)
    assert cache.read(str(cache_dir), "net", RT) is None
    cache.write(str(cache_dir), "net", RT, b"{}", RESULT)
    assert not os.path.islink(cache_dir / "results" / "net-ctr-eth0")
    assert unchanged(victim)


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "x\0y"])
def test_network_name_leaving_data_dir_is_refused(tmp_path, name):
    store = DiskStore(str(tmp_path / "data"), name)
    with pytest.raises(CNIError) as err:
        store.create()
    assert err.value.code == 7 and "invalid network name" in err.value.msg
    assert sorted(os.listdir(tmp_path)) == []
