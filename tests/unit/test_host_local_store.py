"""host-local disk store on temporary directories: layout, modes, legacy
files, the index and its invalidation, GC and STATUS decisions."""

import os
import stat

import pytest

from pycni.ipam.host_local import config as cfg
from pycni.ipam.host_local.gc import exhausted_sets, stale_allocations
from pycni.ipam.host_local.store import DiskStore, INDEX_DIR


@pytest.fixture
def store(tmp_path):
    s = DiskStore(str(tmp_path), "net")
    s.create()
    return s


def write(store, name, content, mode=0o644):
    path = os.path.join(store.dir, name)
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_contents_and_modes(store, tmp_path):
    assert mode(store.dir) == 0o755 & ~_umask()
    with store.locked():
        assert store.reserve("10.0.0.2", " c1 ", "eth0", 0)
        assert not store.reserve("10.0.0.2", "c2", "eth0", 0)
        assert store.reserve("fd00::2", "c1", "eth0", 1)
    names = sorted(os.listdir(store.dir))
    assert names == ["10.0.0.2", "fd00::2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    assert open(os.path.join(store.dir, "10.0.0.2"), "rb").read() == b"c1\r\neth0"
    assert open(os.path.join(store.dir, "last_reserved_ip.1"), "rb").read() == b"fd00::2"
    assert mode(os.path.join(store.dir, "10.0.0.2")) == 0o600
    assert mode(os.path.join(store.dir, "last_reserved_ip.0")) == 0o600
    assert mode(os.path.join(store.dir, "lock")) == 0o750 & ~_umask()
    # the index lives outside the network directory
    assert os.listdir(tmp_path / INDEX_DIR) == ["net"]


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_release_by_id_and_ifname_then_legacy(store):
    write(store, "10.0.0.2", "c1\r\neth0")
    write(store, "10.0.0.3", "c1\r\neth1")
    write(store, "10.0.0.4", "c1\n")            # legacy, trailing whitespace trimmed
    write(store, "last_reserved_ip.0", "c1")     # never an allocation
    with store.locked():
        assert store.release("c1", "eth0") == ["10.0.0.2"]
    with store.locked():
        assert store.release("c1", "eth0") == ["10.0.0.4"]     # legacy fallback
    with store.locked():
        assert store.release("c1", "eth0") == []               # idempotent
        assert store.release("nobody", "eth0") == []
    assert sorted(os.listdir(store.dir)) == ["10.0.0.3", "last_reserved_ip.0", "lock"]


def test_owned_and_holds_include_legacy(store):
    write(store, "10.0.0.2", "c1")
    with store.locked():
        assert store.owned("c1", "eth0") == ["10.0.0.2"]
        assert store.holds("c1", "eth9")
        assert not store.holds("c2", "eth0")


def test_last_reserved(store):
    with store.locked():
        assert store.last_reserved(0) is None
    write(store, "last_reserved_ip.0", "10.0.0.7")
    with store.locked():
        assert store.last_reserved(0) == "10.0.0.7"


def test_index_is_used_while_directory_unchanged(store, monkeypatch):
    with store.locked():
        store.reserve("10.0.0.2", "c1", "eth0", 0)
    # The second call answers from the index (plus one read of the file it
    # names), without reading the directory.
    def no_scan(self):
        raise AssertionError("the directory was scanned")
    monkeypatch.setattr(DiskStore, "scan", no_scan)
    with store.locked():
        assert store.owned("c1", "eth0") == ["10.0.0.2"]
        assert store.release("c1", "eth0") == ["10.0.0.2"]
    with store.locked():
        assert store.owned("c1", "eth0") == []


def _edit_in_place(store, name, content, restore_mtime):
    """Rewrite an allocation file in place (same inode); optionally put the
    directory's mtime back as a restore (tar, rsync -a) would."""
    before = os.stat(store.dir)
    with open(os.path.join(store.dir, name), "r+b") as f:
        f.truncate(0)
        f.write(content.encode())
    if restore_mtime:
        os.utime(store.dir, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(store.dir).st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("restore_mtime", [False, True])
def test_del_never_releases_a_file_naming_another_container(store, restore_mtime):
    """Issue #11 finding 9: the index said c1 held 10.0.0.2, the file now
    names c2. DEL of c1 must leave c2's file alone."""
    with store.locked():
        store.reserve("10.0.0.2", "c1", "eth0", 0)
        store.reserve("10.0.0.3", "c3", "eth0", 0)
    _edit_in_place(store, "10.0.0.2", "c2\r\neth0", restore_mtime)
    with store.locked():
        assert store.release("c1", "eth0") == []
    assert open(os.path.join(store.dir, "10.0.0.2"), "rb").read() == b"c2\r\neth0"
    with store.locked():        # and the index now knows who holds what
        assert store.owned("c2", "eth0") == ["10.0.0.2"]
        assert store.owned("c3", "eth0") == ["10.0.0.3"]
        assert store.release("c2", "eth0") == ["10.0.0.2"]


@pytest.mark.parametrize("restore_mtime", [False, True])
def test_add_of_a_container_no_longer_named_is_no_duplicate(store, tmp_path, restore_mtime):
    conf = cfg.load({"cniVersion": "1.0.0", "name": "net",
                     "ipam": {"subnet": "10.0.0.0/24", "dataDir": str(tmp_path)}})
    from pycni.ipam.host_local.allocator import allocate
    with store.locked():
        assert [ip.address for ip in allocate(conf, store, "c1", "eth0")] == ["10.0.0.2/24"]
    _edit_in_place(store, "10.0.0.2", "c2\r\neth0", restore_mtime)
    with store.locked():
        assert [ip.address for ip in allocate(conf, store, "c1", "eth0")] == ["10.0.0.3/24"]
        assert store.owned("c2", "eth0") == ["10.0.0.2"]
    with store.locked():
        assert not store.holds("c1", "eth9")
        assert store.owned("c1", "eth0") == ["10.0.0.3"]


def test_restored_mtime_after_a_create_invalidates_the_index(store):
    """A file added and the directory mtime put back (a restore): the
    directory's ctime, which nobody can set, still gives it away."""
    with store.locked():
        store.reserve("10.0.0.2", "c1", "eth0", 0)
    before = os.stat(store.dir)
    write(store, "10.0.0.9", "c1\r\neth0")
    os.utime(store.dir, ns=(before.st_atime_ns, before.st_mtime_ns))
    with store.locked():
        assert sorted(store.owned("c1", "eth0")) == ["10.0.0.2", "10.0.0.9"]


def test_a_file_removed_behind_the_index_is_not_held(store):
    with store.locked():
        store.reserve("10.0.0.2", "c1", "eth0", 0)
    before = os.stat(store.dir)
    os.unlink(os.path.join(store.dir, "10.0.0.2"))
    os.utime(store.dir, ns=(before.st_atime_ns, before.st_mtime_ns))
    with store.locked():
        assert store.owned("c1", "eth0") == []
        assert store.release("c1", "eth0") == []


@pytest.mark.parametrize("foreign", ["create", "remove"])
def test_index_invalidated_by_foreign_writer(store, foreign):
    with store.locked():
        store.reserve("10.0.0.2", "c1", "eth0", 0)
    if foreign == "create":
        write(store, "10.0.0.3", "c1\r\neth0")
        expected = ["10.0.0.2", "10.0.0.3"]
    else:
        os.unlink(os.path.join(store.dir, "10.0.0.2"))
        expected = []
    with store.locked():
        assert sorted(store.owned("c1", "eth0")) == expected


@pytest.mark.parametrize("damage", ["garbage-stamp", "garbage-bucket", "missing-bucket",
                                    "no-index"])
def test_damaged_index_is_rebuilt(store, tmp_path, damage):
    with store.locked():
        store.reserve("10.0.0.2", "c1", "eth0", 0)
        store.reserve("10.0.0.3", "c2", "eth0", 0)
    index = tmp_path / INDEX_DIR / "net"
    if damage == "garbage-stamp":
        (index / "stamp").write_bytes(b"garbage")
    elif damage == "no-index":
        import shutil
        shutil.rmtree(tmp_path / INDEX_DIR)
    else:
        for bucket in index.glob("b*"):
            if damage == "missing-bucket":
                bucket.unlink()
            else:
                bucket.write_bytes(b"garbage")
    with store.locked():
        assert store.owned("c1", "eth0") == ["10.0.0.2"]
        assert store.release("c2", "eth0") == ["10.0.0.3"]
    with store.locked():
        assert store.owned("c2", "eth0") == []
        assert store.holds("c1", "eth0")


def test_many_owners_across_buckets(store):
    with store.locked():
        for i in range(200):
            assert store.reserve(f"10.0.{i // 250}.{i % 250 + 2}", f"c{i}", "eth0", 0)
    with store.locked():
        assert all(store.holds(f"c{i}", "eth0") for i in range(200))
        assert store.release("c7", "eth0") == ["10.0.0.9"]
        assert len(store.taken()) == 199
    with store.locked():
        assert not store.holds("c7", "eth0")
        assert len(store.scan()) == 199


def test_without_index(tmp_path):
    s = DiskStore(str(tmp_path), "net", use_index=False)
    s.create()
    with s.locked():
        s.reserve("10.0.0.2", "c1", "eth0", 0)
    assert not (tmp_path / INDEX_DIR).exists()
    with s.locked():
        assert s.owned("c1", "eth0") == ["10.0.0.2"]


def test_gc_decisions():
    allocs = {
        "10.0.0.2": "keep\r\neth0",
        "10.0.0.3": "keep\r\neth1",      # same container, other attachment
        "10.0.0.4": "gone\r\neth0",
        "10.0.0.5": "keep",              # legacy, container still valid
        "10.0.0.6": "gone",              # legacy, container gone
        "fd00::7": "gone\r\neth0",
        "notes.txt": "gone\r\neth0",     # not an address: never touched
    }
    valid = {("keep", "eth0")}
    assert stale_allocations(allocs, valid) == ["10.0.0.3", "10.0.0.4", "10.0.0.6", "fd00::7"]
    # an empty valid list means: nothing is valid
    assert stale_allocations(allocs, set()) == [
        "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "fd00::7"]


def _sets(*subnets):
    raw = {"cniVersion": "1.1.0", "name": "n",
           "ipam": {"ranges": [[{"subnet": s}] for s in subnets]}}
    return cfg.load(raw).range_sets


def test_status_exhaustion():
    sets = _sets("10.0.0.0/29", "fd00::/126")
    assert exhausted_sets(sets, set()) == []
    full_v4 = {f"10.0.0.{i}" for i in range(2, 7)}
    assert [i for i, _ in exhausted_sets(sets, full_v4)] == [0]
    # the gateway file (should someone write one) does not count as used
    assert exhausted_sets(sets, full_v4 - {"10.0.0.6"} | {"10.0.0.1"}) == []
    assert [i for i, _ in exhausted_sets(sets, full_v4 | {"fd00::2", "fd00::3"})] == [0, 1]
