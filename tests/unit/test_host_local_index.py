"""host-local's index catching up with an outside writer without reading
the directory (store.py docstring): the pure cursor interval, and the store
on temporary directories with the reference's writes done by hand exactly
as its disk backend does them (create O_EXCL, then os.WriteFile of the
cursor in place; DEL removes the files)."""

import os
import random
import time

import pytest

from pycni.errors import CNIError
from pycni.ipam.host_local import config as cfg, range as hl_range
from pycni.ipam.host_local import store as store_mod
from pycni.ipam.host_local.allocator import allocate, candidates
from pycni.ipam.host_local.store import DiskStore, bucket_of, cursor_interval, owner_key


def conf_of(tmp_path, ranges):
    return cfg.load({"cniVersion": "1.0.0", "name": "net",
                     "ipam": {"ranges": ranges, "dataDir": str(tmp_path)}})


def sets_of(*ranges):
    return cfg.load({"cniVersion": "1.0.0", "name": "net",
                     "ipam": {"ranges": list(ranges)}}).range_sets


def one_set(*subnets):
    return sets_of([{"subnet": s} for s in subnets])[0]


# ------------------------------------------------------------ the interval

def test_interval_next_address():
    rs = one_set("10.0.0.0/24")
    assert cursor_interval(rs, "10.0.0.5", "10.0.0.6", 100) == ["10.0.0.6"]
    assert cursor_interval(rs, "10.0.0.5", "10.0.0.9", 100) == \
        ["10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"]


def test_interval_without_old_cursor_starts_at_the_range_start():
    rs = one_set("10.0.0.0/24")
    assert cursor_interval(rs, None, "10.0.0.3", 100) == ["10.0.0.2", "10.0.0.3"]
    assert cursor_interval(rs, "", "10.0.0.2", 100) == ["10.0.0.2"]
    # an address outside the set: the reference starts over too
    assert cursor_interval(rs, "192.168.0.7", "10.0.0.3", 100) == ["10.0.0.2", "10.0.0.3"]


def test_interval_wraps_and_skips_gateway_and_broadcast():
    rs = one_set("10.0.0.0/29")          # .1 gateway, .2-.6 usable, .7 broadcast
    assert cursor_interval(rs, "10.0.0.5", "10.0.0.3", 100) == \
        ["10.0.0.6", "10.0.0.2", "10.0.0.3"]
    # the same address again: the reference went once round the whole set
    assert cursor_interval(rs, "10.0.0.4", "10.0.0.4", 100) == \
        ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_interval_across_ranges_of_a_set():
    rs = one_set("10.0.0.0/29", "10.0.1.0/29")
    assert cursor_interval(rs, "10.0.0.6", "10.0.1.3", 100) == ["10.0.1.2", "10.0.1.3"]
    assert cursor_interval(rs, "10.0.1.6", "10.0.0.2", 100) == ["10.0.0.2"]


def test_interval_v6():
    rs = one_set("fd00::/64")
    assert cursor_interval(rs, "fd00::5", "fd00::7", 100) == ["fd00::6", "fd00::7"]


@pytest.mark.parametrize("new", ["10.0.0.1", "10.0.0.255", "10.0.1.5", "fd00::5", "garbage",
                                 "", " 10.0.0.6", "10.0.0.6\n", "10.0.0.6/24", "10.0.0.006"])
def test_interval_unknown_when_the_cursor_is_no_address_of_the_set(new):
    """Not an address the reference can have reserved in this set, or not
    written as it writes one: the caller rebuilds."""
    assert cursor_interval(one_set("10.0.0.0/24"), "10.0.0.5", new, 1000) is None


@pytest.mark.parametrize("old", [" 10.0.0.5", "10.0.0.5\n", "10.0.0.5/24", "junk"])
def test_interval_unknown_when_the_old_cursor_is_not_as_written(old):
    """Where the reference started from such a cursor is not ours to guess."""
    assert cursor_interval(one_set("10.0.0.0/24"), old, "10.0.0.6", 1000) is None


def test_interval_unknown_beyond_the_limit():
    rs = one_set("10.0.0.0/16")
    assert len(cursor_interval(rs, "10.0.0.2", "10.0.0.102", 100)) == 100
    assert cursor_interval(rs, "10.0.0.2", "10.0.0.103", 100) is None
    # once round a /16: far beyond
    assert cursor_interval(rs, "10.0.7.7", "10.0.7.7", 5000) is None


def _reference_round_robin(rs, taken, last, count, rng, released):
    """`count` ADDs as the reference makes them (first free after the
    cursor), with random DELs in between; returns the created names and
    the final cursor."""
    created = []
    for _ in range(count):
        parsed = None if last is None else hl_range.parse_ip(last)
        for r, v in candidates(rs, parsed):
            name = r.text(v)
            if name not in taken:
                taken.add(name)
                created.append(name)
                last = name
                break
        if taken and rng.random() < 0.3:
            gone = rng.choice(sorted(taken))
            taken.discard(gone)
            released.add(gone)
    return created, last


@pytest.mark.parametrize("seed", range(40))
def test_interval_covers_every_round_robin_reservation(seed):
    """Differential: whatever the store looks like, every file a run of
    reference round-robin ADDs (and DELs between them) created lies in the
    interval from the cursor we recorded to the one it left."""
    rng = random.Random(seed)
    rs = one_set("10.0.0.0/27", "10.0.1.0/28")
    usable = [r.text(v) for r, v in candidates(rs, None)]
    taken = set(rng.sample(usable, rng.randrange(len(usable) - 3)))
    old = rng.choice([None] + usable)
    created, new = _reference_round_robin(rs, taken, old, rng.randrange(1, 4), rng, set())
    names = cursor_interval(rs, old, new, 10_000)
    assert names is not None and set(created) <= set(names)
    assert names[-1] == new


# ------------------------------------------------------------ the store

def reference_add(store, name, cid, ifname="eth0", set_index=0):
    """The reference's disk.Reserve: O_EXCL create, content, then the cursor
    written in place (os.WriteFile: O_TRUNC, same inode)."""
    fd = os.open(os.path.join(store.dir, name), os.O_RDWR | os.O_EXCL | os.O_CREAT, 0o644)
    os.write(fd, f"{cid}\r\n{ifname}".encode())
    os.close(fd)
    fd = os.open(os.path.join(store.dir, f"last_reserved_ip.{set_index}"),
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, name.encode())
    os.close(fd)


def reference_del(store, cid, ifname="eth0"):
    """The reference's ReleaseByID: every file whose content matches."""
    for name in os.listdir(store.dir):
        path = os.path.join(store.dir, name)
        with open(path, "rb") as f:
            if f.read().decode().strip() == f"{cid}\r\n{ifname}":
                os.unlink(path)


@pytest.fixture
def conf(tmp_path):
    return conf_of(tmp_path, [[{"subnet": "10.0.0.0/24"}]])


@pytest.fixture
def rstore(tmp_path, conf):
    s = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    s.create()
    return s


@pytest.fixture
def rebuilds(monkeypatch):
    """Counts full rebuilds (every file read)."""
    calls = []
    original = DiskStore._rebuild

    def counting(self, allocs=None):
        calls.append(1)
        original(self, allocs)
    monkeypatch.setattr(DiskStore, "_rebuild", counting)
    return calls


def add(conf, store, cid, ifname="eth0"):
    with store.locked():
        return [ip.address.split("/")[0] for ip in allocate(conf, store, cid, ifname)]


def test_outside_add_is_seen_without_reading_the_directory(rstore, conf, rebuilds):
    assert add(conf, rstore, "c1") == ["10.0.0.2"]
    assert rebuilds == [1]                  # the first call builds the index
    reference_add(rstore, "10.0.0.3", "c2")
    reference_add(rstore, "10.0.0.4", "c3")
    with rstore.locked():
        assert rstore.owned("c2", "eth0") == ["10.0.0.3"]
        assert rstore.owned("c3", "eth0") == ["10.0.0.4"]
        assert rstore.owned("c1", "eth0") == ["10.0.0.2"]
    assert add(conf, rstore, "c4") == ["10.0.0.5"]
    assert rebuilds == [1]


def test_same_container_as_the_reference_is_a_duplicate(rstore, conf, rebuilds):
    assert add(conf, rstore, "c1") == ["10.0.0.2"]
    reference_add(rstore, "10.0.0.3", "x")
    with pytest.raises(CNIError, match="10.0.0.3 has been allocated to x, duplicate"):
        add(conf, rstore, "x")
    with rstore.locked():
        assert rstore.release("x", "eth0") == ["10.0.0.3"]
    assert rebuilds == [1]


def test_reference_hands_out_a_name_again_to_another_container(tmp_path, rebuilds):
    """The index gave 10.0.0.3 to b; the reference released b and reserved
    10.0.0.3 again for x (a replaced file, same name). x's duplicate rule,
    CHECK and DEL see it; b's DEL leaves it alone."""
    conf = conf_of(tmp_path, [[{"subnet": "10.0.0.0/29"}]])       # .2-.6
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    for cid, ip in zip("abcde", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]):
        assert add(conf, store, cid) == [ip]
    reference_del(store, "b")
    reference_add(store, "10.0.0.3", "x")     # round robin from .6: wraps, .2 taken
    with pytest.raises(CNIError, match="duplicate"):
        add(conf, store, "x")
    with store.locked():
        assert store.owned("x", "eth0") == ["10.0.0.3"]
        assert store.release("b", "eth0") == []
    assert open(os.path.join(store.dir, "10.0.0.3"), "rb").read() == b"x\r\neth0"
    with store.locked():
        assert store.release("x", "eth0") == ["10.0.0.3"]
        assert store._bucket(bucket_of(owner_key("b", "eth0"))).get("10.0.0.3") is None
    assert rebuilds == [1]


@pytest.mark.parametrize("who", ["reference DEL", "admin rm"])
def test_outside_removal_needs_no_reading(rstore, conf, rebuilds, who):
    assert add(conf, rstore, "c1") == ["10.0.0.2"]
    assert add(conf, rstore, "c2") == ["10.0.0.3"]
    if who == "reference DEL":
        reference_del(rstore, "c1")
    else:
        os.unlink(os.path.join(rstore.dir, "10.0.0.2"))
    with rstore.locked():
        assert rstore.owned("c1", "eth0") == []
        assert rstore.release("c1", "eth0") == []
        assert rstore.owned("c2", "eth0") == ["10.0.0.3"]
    # the stale entry is gone from the index, and c1 may come back
    with rstore.locked():
        assert rstore._bucket(bucket_of(owner_key("c1", "eth0"))).get("10.0.0.2") is None
    assert add(conf, rstore, "c1") == ["10.0.0.4"]
    assert rebuilds == [1]


def test_our_reservation_of_a_released_name_makes_the_old_entry_stale(tmp_path, rebuilds):
    """The reference released a's 10.0.0.2, we hand it to z: a read back of
    a's stale entry names z, whom the index lists it under: dropped, no
    rebuild."""
    conf = conf_of(tmp_path, [[{"subnet": "10.0.0.0/29"}]])
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    for cid in "abcde":
        add(conf, store, cid)
    reference_del(store, "a")
    assert add(conf, store, "z") == ["10.0.0.2"]
    with store.locked():
        assert store.owned("a", "eth0") == []
        assert store.release("a", "eth0") == []
    assert open(os.path.join(store.dir, "10.0.0.2"), "rb").read() == b"z\r\neth0"
    assert rebuilds == [1]


def test_in_place_rewrite_is_caught_on_read_back(rstore, conf, rebuilds):
    assert add(conf, rstore, "a") == ["10.0.0.2"]
    path = os.path.join(rstore.dir, "10.0.0.2")
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(b"b\r\neth0")
    with rstore.locked():
        assert rstore.release("a", "eth0") == []        # not a's any more
        assert rstore.owned("b", "eth0") == ["10.0.0.2"]
    assert rebuilds == [1, 1]                           # content the index never saw
    assert open(path, "rb").read() == b"b\r\neth0"


def _replace_cursor(store):
    """Another inode at the cursor's name (an editor's or rsync's rename)."""
    path = os.path.join(store.dir, "last_reserved_ip.0")
    data = open(path, "rb").read()
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.rename(path + ".new", path)


@pytest.mark.parametrize("change", ["cursor replaced", "cursor removed", "cursor garbage",
                                    "cursor a directory", "beyond the limit", "gateway",
                                    "no range sets", "another number of range sets"])
def test_unexplained_cursor_changes_rebuild(tmp_path, conf, rebuilds, monkeypatch, change):
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    add(conf, store, "c1")
    cursor = os.path.join(store.dir, "last_reserved_ip.0")
    reference_add(store, "10.0.0.9", "c2")
    if change == "cursor replaced":
        _replace_cursor(store)
    elif change == "cursor removed":
        os.unlink(cursor)
    elif change == "cursor garbage":
        open(cursor, "w").write("10.0.0.9 ")
    elif change == "cursor a directory":
        os.unlink(cursor)
        os.mkdir(cursor)
    elif change == "beyond the limit":
        monkeypatch.setattr(store_mod, "PROBE_LIMIT", 3)
    elif change == "gateway":
        open(cursor, "w").write("10.0.0.1")
    elif change == "no range sets":
        store = DiskStore(str(tmp_path), "net")
    else:
        store = DiskStore(str(tmp_path), "net", range_sets=sets_of(
            [{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]))
    with store.locked():
        assert store.owned("c2", "eth0") == ["10.0.0.9"]
    assert rebuilds == [1, 1]


def test_a_store_without_range_sets_still_sees_unchanged_cursors(tmp_path, conf, rebuilds):
    """A DEL whose config no longer loads knows no ranges: a removal is no
    reason to rebuild, an outside ADD is."""
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    add(conf, store, "c1")
    add(conf, store, "c2")
    bare = DiskStore(str(tmp_path), "net")
    reference_del(store, "c1")
    with bare.locked():
        assert bare.release("c2", "eth0") == ["10.0.0.3"]
    assert rebuilds == [1]
    reference_add(store, "10.0.0.4", "c4")
    with bare.locked():
        assert bare.release("c4", "eth0") == ["10.0.0.4"]
    assert rebuilds == [1, 1]


def test_cursor_rewritten_with_the_same_address_is_noticed(tmp_path, rebuilds):
    """The reference went once round a full set and wrote the address the
    cursor held already: same content, but its mtime moved off the stamp."""
    conf = conf_of(tmp_path, [[{"subnet": "10.0.0.0/29"}]])
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    for cid in "abcde":
        add(conf, store, cid)                   # cursor .6
    reference_del(store, "e")
    reference_add(store, "10.0.0.6", "x")       # round robin from .6: only .6 is free
    assert open(os.path.join(store.dir, "last_reserved_ip.0")).read() == "10.0.0.6"
    with pytest.raises(CNIError, match="duplicate"):
        add(conf, store, "x")
    with store.locked():
        assert store.release("e", "eth0") == []
    assert rebuilds == [1]


def test_restored_directory_mtime_after_a_reference_add(rstore, conf):
    add(conf, rstore, "c1")
    before = os.stat(rstore.dir)
    reference_add(rstore, "10.0.0.3", "c2")
    os.utime(rstore.dir, ns=(before.st_atime_ns, before.st_mtime_ns))
    with rstore.locked():
        assert rstore.owned("c2", "eth0") == ["10.0.0.3"]


def test_cursors_are_stamped_in_the_past(rstore, conf):
    add(conf, rstore, "c1")
    st = os.stat(os.path.join(rstore.dir, "last_reserved_ip.0"))
    assert time.time_ns() - st.st_mtime_ns > store_mod.STAMP_OFFSET_NS // 2
    assert open(os.path.join(rstore.dir, "last_reserved_ip.0")).read() == "10.0.0.2"


def test_two_range_sets_each_followed(tmp_path, rebuilds):
    conf = conf_of(tmp_path, [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]])
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    assert add(conf, store, "a") == ["10.0.0.2", "fd00::2"]
    reference_add(store, "10.0.0.3", "x", set_index=0)
    reference_add(store, "fd00::3", "x", set_index=1)
    with store.locked():
        assert sorted(store.owned("x", "eth0")) == ["10.0.0.3", "fd00::3"]
    with pytest.raises(CNIError, match="duplicate"):
        add(conf, store, "x")
    assert rebuilds == [1]


def test_hand_made_file_without_cursor_is_never_handed_out(rstore, conf):
    """Documented limit: a file created by hand (no cursor write) between
    two of our calls is not entered into the index. The address is still
    taken (the create's O_EXCL), and no other container's DEL touches it."""
    add(conf, rstore, "c1")
    with open(os.path.join(rstore.dir, "10.0.0.3"), "wb") as f:
        f.write(b"manual\r\neth0")
    assert add(conf, rstore, "c2") == ["10.0.0.4"]
    with rstore.locked():
        assert rstore.release("c2", "eth0") == ["10.0.0.4"]
        assert rstore.release("c1", "eth0") == ["10.0.0.2"]
    assert open(os.path.join(rstore.dir, "10.0.0.3"), "rb").read() == b"manual\r\neth0"


def _index_entries(store):
    with store.locked():
        store._bucket(0)
        return {n: c for b in range(store_mod.BUCKETS) for n, c in store._bucket(b).items()}


def test_sweep_drops_entries_of_files_removed_outside(tmp_path, rebuilds):
    """Containers the reference released never call us again: their stale
    entries go anyway, a few per call that catches up, round the index."""
    conf = conf_of(tmp_path, [[{"subnet": "10.0.0.0/22"}]])
    store = DiskStore(str(tmp_path), "net", range_sets=conf.range_sets)
    store.create()
    with store.locked():
        for i in range(300):
            assert store.reserve(f"10.0.{i // 250}.{i % 250 + 2}", f"c{i}", "eth0", 0)
    for i in range(0, 300, 2):
        reference_del(store, f"c{i}")
    truth = {n: open(os.path.join(store.dir, n), "rb").read().decode()
             for n in os.listdir(store.dir) if n[0].isdigit()}
    assert len(truth) == 150 and len(_index_entries(store)) > 250     # one sweep ran
    for _ in range(store_mod.BUCKETS + 2):
        open(os.path.join(store.dir, "x"), "w").close()     # an outside change
        os.unlink(os.path.join(store.dir, "x"))
        with store.locked():
            store.owned("nobody", "eth0")
    assert _index_entries(store) == truth
    assert rebuilds == [1]


def test_sweep_enters_a_content_the_index_never_saw(rstore, conf):
    assert add(conf, rstore, "a") == ["10.0.0.2"]
    with open(os.path.join(rstore.dir, "10.0.0.2"), "r+b") as f:    # in place
        f.truncate(0)
        f.write(b"b\r\neth0")
    for _ in range(store_mod.BUCKETS + 1):
        open(os.path.join(rstore.dir, "x"), "w").close()
        os.unlink(os.path.join(rstore.dir, "x"))
        with rstore.locked():
            rstore.owned("nobody", "eth0")
    assert _index_entries(rstore) == {"10.0.0.2": "b\r\neth0"}


def test_gc_rebuilds_the_index_from_its_scan(rstore, conf, rebuilds):
    """GC reads every file anyway: what the index could not see (a file made
    by hand) is in it afterwards, without a second read of the directory."""
    add(conf, rstore, "c1")
    with open(os.path.join(rstore.dir, "10.0.0.9"), "wb") as f:
        f.write(b"manual\r\neth0")
    with rstore.locked():
        allocs = rstore.scan()
        rstore.remove_scanned(allocs, ["10.0.0.2"])
    with rstore.locked():
        assert rstore.owned("manual", "eth0") == ["10.0.0.9"]
        assert rstore.owned("c1", "eth0") == []
    assert rebuilds == [1, 1]
    assert sorted(os.listdir(rstore.dir)) == ["10.0.0.9", "last_reserved_ip.0", "lock"]


@pytest.mark.parametrize("other", [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.50"}],
                                   [{"subnet": "10.0.0.0/24", "gateway": "10.0.0.3"}],
                                   [{"subnet": "10.0.1.0/24"}, {"subnet": "10.0.0.0/24"}]])
def test_changed_range_sets_rebuild(tmp_path, conf, rebuilds, other):
    """Another round-robin order than the one the stamp was made with: where
    an outside ADD went is not ours to follow."""
    add(conf, DiskStore(str(tmp_path), "net", range_sets=conf.range_sets), "c1")
    store = DiskStore(str(tmp_path), "net", range_sets=sets_of(other))
    reference_add(store, "10.0.0.9", "c2")
    with store.locked():
        assert store.owned("c2", "eth0") == ["10.0.0.9"]
    assert rebuilds == [1, 1]


def test_del_and_check_of_an_owner_the_catch_up_did_not_see(rstore, conf, rebuilds):
    """A file the catch-up cannot see (made by hand, or a requested-address
    ADD of the reference followed by another): in a call that caught up,
    DEL and CHECK rebuild from the files before answering "holds nothing",
    so the file is still released / found. ADD of a new container does not
    (its duplicate rule is the one documented gap), and without an outside
    writer nothing is rebuilt."""
    add(conf, rstore, "c1")
    assert rebuilds == [1]          # the first call builds the index
    with open(os.path.join(rstore.dir, "10.0.0.9"), "wb") as f:
        f.write(b"manual\r\neth0")
    assert add(conf, rstore, "c2") == ["10.0.0.3"]
    assert rebuilds == [1]
    with open(os.path.join(rstore.dir, "10.0.0.10"), "wb") as f:
        f.write(b"manual2\r\neth0")
    with rstore.locked():
        assert rstore.owned("manual2", "eth0", complete=True) == ["10.0.0.10"]
    assert rebuilds == [1, 1]
    with rstore.locked():
        assert rstore.release("manual", "eth0") == ["10.0.0.9"]   # the rebuild saw it
        assert rstore.release("nobody", "eth0") == []
    assert rebuilds == [1, 1]       # no outside writer since the last call
    assert not os.path.exists(os.path.join(rstore.dir, "10.0.0.9"))
    with open(os.path.join(rstore.dir, "10.0.0.11"), "wb") as f:
        f.write(b"manual3\r\neth0")
    with rstore.locked():           # DEL in a call that caught up: rebuilt first
        assert rstore.release("manual3", "eth0") == ["10.0.0.11"]
    assert rebuilds == [1, 1, 1]
