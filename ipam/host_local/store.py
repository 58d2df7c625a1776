"""The allocation store, on disk exactly as the reference's disk backend.

Layout under `<dataDir>/<network>/` (directory 0755):

  <ip>                 one file per allocated address, created 0600 with
                       O_EXCL (the create is the reservation); content
                       `<containerID>\\r\\n<ifname>`, no trailing newline.
                       Files of old reference versions hold `<containerID>`.
  last_reserved_ip.N   the address last handed out from range set N (0600)
  lock                 flock(2)ed around every read-modify-write (0750, as
                       go-filemutex creates it)

Both implementations take the same flock on `lock`, so they can run side
by side on one node and take turns on one store.

The index (why ADD and DEL do not slow down as the store fills)
----------------------------------------------------------------
Knowing which addresses a container holds (ADD's duplicate rule, DEL,
CHECK) means reading every file, as the reference does on each call. We
keep a private copy of the contents in `<dataDir>/.pycni/<network>/`,
outside the network directory (which stays exactly the reference's):
BUCKETS files, each holding the allocations whose content (the owner)
hashes to it, plus `stamp`. A call reads and rewrites only its owner's
bucket, so its cost does not grow with the number of allocations.

The stamp. After each change (under the lock) we set the network
directory's mtime, and the mtime of every round-robin cursor
`last_reserved_ip.N` of the config's range sets, to a time about one second
in the past with random nanoseconds, and record them (with the directory's
ctime, which nobody can set back, each cursor's inode, ctime, size and
content, and the range sets). A create, remove or rename in the directory by anyone sets its
mtime and ctime to the current time; a write to a cursor sets the cursor's
mtime to the current time: neither can equal the stamp.

Catching up with an outside writer without reading the directory. Listing
50,000 names alone costs ~40 ms of CPU here (ext4 hashes every entry of
an indexed directory on readdir), reading every file ~600 ms, so a call
that finds the directory changed does not look at it; it asks what the
writers that share this store can have done, from the cursors:

- The reference's ADD reserves, in range set N, the first free address
  after the one `last_reserved_ip.N` names (round robin, the order of
  allocator.candidates), creating its file, and then writes that address
  into the cursor (os.WriteFile: in place, same inode). A run of such ADDs
  since our stamp therefore created files only at the addresses after the
  cursor we recorded, up to and including the one the cursor names now.
  Those (at most PROBE_LIMIT addresses; usually one or two) are read and
  entered into the index. A name found there that the index gave to
  another owner (a file the reference released and handed out again: a
  replaced file with the same name) is entered under its new owner, so
  the duplicate rule, DEL and CHECK of the container the reference
  allocated for see it; the stale entry under the old owner is dropped
  when read back (below).
- The reference's DEL and GC, an admin's rm, only remove files. The index
  then lists names that are gone; they are dropped when read back, at a
  decision on their owner or by the sweep: each call that catches up also
  reads back SWEEP entries, going round the whole index over successive
  calls, so entries of containers that never call us again do not pile up
  (and a content the index never saw is entered under its owner).
- A cursor that changed in any other way (replaced by another inode,
  removed, not a regular file, an address outside its range set, further
  than PROBE_LIMIT addresses on, or a change when the call does not know
  the range sets), range sets other than those of the stamp (another
  round-robin order), a directory with another inode, a torn or foreign
  index: the index is rebuilt by reading every file (slow, sound). This
  assumes the reference runs with the same range sets as our calls (one
  network config), as it does when both serve the same network.

What this cannot see, and why decisions stay right: files created in the
directory without a cursor write (by hand, e.g. `rm X; echo ID > X`), and
a reference ADD of a *requested* address (CNI_ARGS IP=, runtimeConfig
ips) followed by another reference ADD in the same range set before our
next call (the cursor then names only the last). Like an in-place edit of
a file (which changes no time of the directory), these are contents the
index does not know. The index is only a guide for whom a file belongs
to; whether an address is free is always the create's O_EXCL on the file
itself (so such a file is never handed out twice), and before any decision
on an allocation (DEL removing it, ADD refusing a duplicate, CHECK) its
file is read under the lock: it must still name the owner. A file that is
gone is dropped from the index. One that names an owner the index already
lists it under is a stale entry and dropped. Any other content is a change
the index never saw: the index is rebuilt from the files and the decision
taken on what they say. So DEL never removes another container's file and
ADD never refuses because of a file that no longer names the container.
And in a call that caught up with an outside writer, DEL and CHECK do not
take the index's "this owner holds nothing" for an answer: they rebuild
from the files first (slow, but only where another writer was at work and
the owner is unknown to the index), so an unseen file of theirs is still
released or found. What is left is ADD's duplicate rule in that state (a
container the reference and we both ADDed between two of our calls).

Safety (the store lives where others may have written; see pycni.files)
-----------------------------------------------------------------------
The configured dataDir is trusted as a path (missing components are
created 0755). The network directory and `.pycni/<network>` below it are
created with exact modes (0755, 0700) whatever the umask, never reached
through a symlink, refused (code 5) when owned by another user, and lose
group/other write bits (which older versions left under umask 000). Every
file is opened relative to the network directory's fd with O_NOFOLLOW and
O_NONBLOCK: a symlink, FIFO or directory where a file is expected is never
followed, read or hung on. A name taken by anything (a directory, a
symlink) is not a free address, as in the reference. A round-robin cursor
that is not a regular file with a single link is ignored (the reference
ignores an unreadable one) and replaced, never written through, by the next
reservation; one that cannot be replaced (a directory) fails the ADD with a
clear error and no reservation left behind.
"""

import errno
from pycni import posixos as os

from pycni import files

LOCK_NAME = "lock"
LAST_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
INDEX_DIR = ".pycni"
INDEX_FORMAT = 6
BUCKETS = 32
STAMP_OFFSET_NS = 1_000_000_000
DIR_MODE = 0o755
INDEX_MODE = 0o700
FILE_MODE = 0o600
LOCK_MODE = 0o750
MAX_CONTENT = 4096
# Addresses a changed cursor may have moved over before we rather read
# every file (each costs one failed open or one small read).
PROBE_LIMIT = 2048
# Entries read back per call that caught up with an outside writer (each
# read of a file out of the cache costs ~0.1-0.5 ms). With one file removed
# outside per such call, stale entries level off at ~1/SWEEP of the index.
SWEEP = 16


def owner_key(container_id: str, ifname: str) -> str:
    return container_id.strip() + LINE_BREAK + ifname


def parse_owner(content: str) -> tuple[str, str | None]:
    """File content -> (containerID, ifname); ifname None for legacy files."""
    if LINE_BREAK in content:
        cid, ifname = content.split(LINE_BREAK, 1)
        return cid, ifname
    return content, None


def is_allocation_name(name: str) -> bool:
    """Files that may be allocations: all but the lock, the round-robin
    cursors and hidden files. (Names of real allocations are addresses.)"""
    return name != LOCK_NAME and not name.startswith(LAST_PREFIX) \
        and not name.startswith(".")


def bucket_of(content: str) -> int:
    import zlib
    return zlib.crc32(content.encode("utf-8", "surrogateescape")) % BUCKETS


def network_parts(network: str) -> list[str]:
    """The path components of the network directory below dataDir. ValueError
    for a name that would leave dataDir (libcni never passes one)."""
    parts = [p for p in network.split("/") if p not in ("", ".")]
    if ".." in parts or "\0" in network:
        raise ValueError(f'invalid network name "{network}"')
    return parts


class DiskStore:
    """One network's store. Use as `with store.locked(): ...`."""

    def __init__(self, data_dir: str, network: str, use_index: bool = True,
                 range_sets=None):
        self.data_dir = data_dir
        self.network = network
        # the config's range sets (a list of range_set.RangeSet), to follow the
        # cursors of an outside writer; None: any such change rebuilds
        self.range_sets = range_sets
        self.dir = os.path.join(data_dir, network)
        self.index_dir = os.path.join(data_dir, INDEX_DIR, network)
        self.use_index = use_index
        self._lock_fd = -1
        self._dir_fd = -1
        self._base_fd = -1
        self._index_fd_ = -1
        self._reset()

    def _reset(self) -> None:
        self._buckets: dict[int, dict[str, str]] = {}   # loaded buckets
        self._dirty: set[int] = set()
        self._generation: int | None = None             # None: index not checked yet
        self._cursors: tuple = ()       # the cursor states the stamp recorded
        self._sweep = (0, 0)            # (bucket, offset) the next sweep starts at
        self._sets_seen = None          # the range sets the stamp recorded
        self._changed = False
        self._fresh = False            # buckets rebuilt from the files in this call
        self._caught_up = False        # an outside writer's changes followed by _catch_up
        self._gone_owners: set[str] = set()   # owners whose listed files were gone
        self._index_ok = self.use_index

    # ------------------------------------------------------------ lifecycle

    def exists(self) -> bool:
        return self._open(create=False)

    def create(self) -> None:
        """The network directory, 0755 like the reference (MkdirAll)."""
        self._open(create=True)

    def _open(self, create: bool) -> bool:
        if self._dir_fd >= 0:
            return True
        from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
        try:
            parts = network_parts(self.network)
        except ValueError as exc:
            raise CNIError(INVALID_NETWORK_CONFIG, str(exc)) from None
        what = self.data_dir
        try:
            base = files.open_tree(self.data_dir, DIR_MODE) if create \
                else files.open_dir(self.data_dir)
            if base is None:
                return False
            fd = os.dup(base)
            try:
                for part in parts:
                    what = os.path.join(what, part)
                    sub = files.open_subdir(fd, part, DIR_MODE, create)
                    os.close(fd)
                    fd = sub
                    if fd is None:
                        os.close(base)
                        return False
            except BaseException:
                if fd is not None:
                    os.close(fd)
                os.close(base)
                raise
        except OSError as exc:
            raise _io_error(f"failed to open store directory {what}", exc)
        self._base_fd, self._dir_fd = base, fd
        return True

    def _close(self) -> None:
        for attr in ("_index_fd_", "_dir_fd", "_base_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)

    def locked(self):
        return _Locked(self)

    def _acquire(self) -> None:
        import fcntl
        self._open(create=True)
        try:
            fd = files.open_regular(self._dir_fd, LOCK_NAME, os.O_RDONLY, LOCK_MODE)
        except OSError as exc:
            self._close()
            raise _io_error(f"failed to open lock file {os.path.join(self.dir, LOCK_NAME)}", exc)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            self._close()
            raise _io_error(f"failed to lock {os.path.join(self.dir, LOCK_NAME)}", exc)
        self._lock_fd = fd

    def _release(self) -> None:
        try:
            if self._changed and self._index_ok:
                self._save_index()
        finally:
            self._reset()
            self._close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)     # closing drops the flock
                self._lock_fd = -1

    # ------------------------------------------------------------ reading

    def _content(self, name: str) -> str | None:
        """Trimmed content of allocation file `name`; None if it is missing
        or unreadable. (The hot path of scans: one open, one read. O_NOFOLLOW
        refuses a symlink; O_NONBLOCK makes a FIFO read as empty at once;
        a directory fails the read.)"""
        data = _read_small(self._dir_fd, name, MAX_CONTENT)
        return None if data is None else data.decode("utf-8", "surrogateescape").strip()

    def scan(self) -> dict[str, str]:
        """name -> trimmed content of every allocation file, read from disk."""
        allocs = {}
        with os.scandir(self._dir_fd) as it:
            for entry in it:
                name = entry.name
                if not is_allocation_name(name) or not entry.is_file(follow_symlinks=False):
                    continue
                content = self._content(name)   # None: removed or replaced meanwhile
                if content is not None:
                    allocs[name] = content
        return allocs

    def taken(self) -> set[str]:
        """Names of all allocation files (no contents read)."""
        return {n for n in os.listdir(self._dir_fd) if is_allocation_name(n)}

    def last_reserved(self, set_index: int) -> str | None:
        """The cursor of range set `set_index`; None when missing or unusable
        (not a regular file, unreadable): round-robin starts over, as in
        the reference."""
        data = _read_small(self._dir_fd, LAST_PREFIX + str(set_index), 256)
        return None if data is None else data.decode("ascii", "replace").strip()

    def holding(self, content: str) -> list[str]:
        """Names whose file content is exactly `content`, as the files say:
        what the index lists is read back. A file that is gone, or that
        names an owner the index already lists it under, is a stale entry
        and dropped; any other content is a change the index never saw:
        it is rebuilt from the files."""
        b = bucket_of(content)
        names = [n for n, c in self._bucket(b).items() if c == content]
        if not names or self._fresh:
            return names
        held = []
        for name in names:
            actual = self._content(name)
            if actual == content:
                held.append(name)
                continue
            if actual is not None and self._bucket(bucket_of(actual)).get(name) != actual:
                self._rebuild()
            if self._fresh:     # rebuilt (here or by a torn bucket): the files' answer
                return [n for n, c in self._buckets[b].items() if c == content]
            del self._buckets[b][name]
            self._dirty.add(b)
            self._changed = True
            self._gone_owners.add(content)
        return held

    def owned(self, container_id: str, ifname: str, complete: bool = False) -> list[str]:
        """Names held by (container_id, ifname), legacy files of the ID
        included. `complete` (CHECK): when the index knows none and this
        call caught up with an outside writer, whose files the catch-up
        may not all have seen, the index is rebuilt from the files first."""
        contents = (owner_key(container_id, ifname), container_id.strip())
        unknown = complete and self._unknown(contents)

        def held() -> list[str]:
            return self.holding(contents[0]) + self.holding(contents[1])
        names = held()
        if not names and unknown:
            self._rebuild()
            names = held()
        return names

    def _unknown(self, contents) -> bool:
        """Is the index's "this owner holds nothing" too weak an answer?
        It is when this call caught up with an outside writer (see the
        module docstring for what that cannot see) and the index lists
        nothing at all for the owner: DEL and CHECK then ask the files. An
        owner it listed, whose files are gone, is truly released."""
        listed = [c for b in sorted({bucket_of(c) for c in contents})
                  for c in self._bucket(b).values() if c in contents]   # opens the index
        known = listed or any(c in self._gone_owners for c in contents)
        return self._caught_up and not self._fresh and not known

    def holds(self, container_id: str, ifname: str) -> bool:
        return bool(self.owned(container_id, ifname))

    # ------------------------------------------------------------ writing

    def reserve(self, name: str, container_id: str, ifname: str, set_index: int) -> bool:
        """Create `name` exclusively; False when it exists already (whatever
        it is: O_EXCL never follows a symlink)."""
        fd = self._dir_fd
        content = owner_key(container_id, ifname)
        bucket = self._bucket(bucket_of(content))     # the index is checked before any change
        try:
            f = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        FILE_MODE, dir_fd=fd)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _io_error(f"failed to reserve {name}", exc)
        self._changed = True
        try:
            try:
                os.fchmod(f, FILE_MODE)
                os.write(f, content.encode())
            finally:
                os.close(f)
            self._write_last_reserved(set_index, name)
        except BaseException as exc:
            _unlink(name, fd)
            if isinstance(exc, OSError):
                raise _io_error(f"failed to write {name}", exc)
            raise
        bucket[name] = content
        self._dirty.add(bucket_of(content))
        return True

    def _write_last_reserved(self, set_index: int, name: str) -> None:
        path = LAST_PREFIX + str(set_index)
        try:
            files.rewrite_at(self._dir_fd, path, name.encode(), FILE_MODE)
        except OSError as exc:
            from pycni.errors import CNIError, IO_FAILURE
            raise CNIError(IO_FAILURE, f"failed to write {os.path.join(self.dir, path)}",
                           _detail(exc)) from None

    def unreserve(self, names: list[str], container_id: str, ifname: str) -> None:
        """Undo reservations this call made for (container_id, ifname)."""
        self._remove({n: owner_key(container_id, ifname) for n in names})

    def release(self, container_id: str, ifname: str) -> list[str]:
        """Remove the files of (container_id, ifname); if there are none,
        those of legacy files naming only container_id. Unknown IDs are fine."""
        def find() -> tuple[str, list[str]]:
            content = owner_key(container_id, ifname)
            names = self.holding(content)
            if not names:
                content = container_id.strip()
                names = self.holding(content)
            return content, names
        unknown = self._unknown((owner_key(container_id, ifname), container_id.strip()))
        content, names = find()
        if not names and unknown:
            self._rebuild()
            content, names = find()
        self._remove({n: content for n in names})
        return sorted(names)

    def remove_scanned(self, allocs: dict[str, str], names: list[str]) -> None:
        """Remove `names`, whose contents come from a `scan()` (GC). The
        scan read every file under the lock: the index is rebuilt from it
        (also what it could not see, e.g. files made by hand)."""
        if self.use_index:
            self._rebuild(allocs)
        self._remove({n: allocs[n] for n in names})

    def _remove(self, owners: dict[str, str]) -> None:
        errors = []
        for name, content in owners.items():
            self._bucket(bucket_of(content))
            try:
                _unlink(name, self._dir_fd)
            except OSError as exc:
                errors.append(f"{name}: {exc.strerror}")
                continue
            self._changed = True
            b = bucket_of(content)
            self._buckets[b].pop(name, None)
            self._dirty.add(b)
        if errors:
            from pycni.errors import CNIError, IO_FAILURE
            raise CNIError(IO_FAILURE, "failed to release addresses", "; ".join(errors))

    # ------------------------------------------------------------ the index

    def _bucket(self, b: int) -> dict[str, str]:
        if self._generation is None:
            self._open_index()
        if b not in self._buckets:
            self._buckets[b] = self._read_bucket(b)
            if self._buckets[b] is None:            # torn or foreign: start over
                self._rebuild()
        return self._buckets[b]

    def _index_fd(self, create: bool) -> int | None:
        """fd of `.pycni/<network>` (kept until unlock); None when missing
        (and not `create`) or not ours: then this call goes without an
        index (slower, same answer)."""
        if self._index_fd_ >= 0 or not self._index_ok:
            return self._index_fd_ if self._index_ok else None
        fd = os.dup(self._base_fd)
        try:
            for part in [INDEX_DIR] + network_parts(self.network):
                sub = files.open_subdir(fd, part, INDEX_MODE, create)
                os.close(fd)
                fd = sub
                if fd is None:
                    return None
        except files.UnsafePath:
            if fd is not None:
                os.close(fd)
            self._index_ok = False
            return None
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        self._index_fd_ = fd
        return fd

    def _open_index(self) -> None:
        stamp = None
        try:
            fd = self._index_fd(create=False)
        except OSError:
            fd = None
        if fd is not None:
            stamp = _read_marshal(fd, "stamp")
        try:
            fmt, ino, mtime, ctime, generation, cursors, sweep, sets_seen = stamp
            st = os.fstat(self._dir_fd)
            if fmt == INDEX_FORMAT and ino == st.st_ino and isinstance(cursors, tuple):
                self._generation, self._cursors = generation, cursors
                self._sets_seen = sets_seen
                self._sweep = (int(sweep[0]) % BUCKETS, max(0, int(sweep[1])))
                if (mtime, ctime) == (st.st_mtime_ns, st.st_ctime_ns):
                    return                  # nobody else changed the directory
                self._changed = True        # renew the stamp on unlock
                if self._catch_up():
                    return
        except (TypeError, ValueError, IndexError):
            pass
        self._rebuild()

    def _catch_up(self) -> bool:
        """The directory changed since the stamp: enter what the outside
        writers' cursors say they created (see the module docstring).
        False when that cannot be told: the caller rebuilds."""
        sets = self.range_sets
        if not self._cursors or (sets is not None and (
                len(sets) != len(self._cursors) or self._sets_text() != self._sets_seen)):
            return False        # which cursors an outside ADD may have written, or in
                                # which order it went, is unknown
        found = {}
        for index, recorded in enumerate(self._cursors):
            now = self._cursor_state(index)
            if now == recorded:
                continue
            if sets is None or now is None or now == CURSOR_ODD or recorded == CURSOR_ODD \
                    or not isinstance(now, tuple) \
                    or (recorded is not None and (not isinstance(recorded, tuple)
                                                  or recorded[0] != now[0])):
                return False    # replaced, removed, odd, or no ranges to follow it
            names = cursor_interval(sets[index], None if recorded is None else recorded[4],
                                    now[4], PROBE_LIMIT)
            if names is None:
                return False
            for name in names:
                content = self._content(name)
                if content is not None:
                    found[name] = content
        for name, content in found.items():
            if not self._enter(name, content):
                return True     # a torn bucket made it rebuild: all is read
        self._sweep_some()
        self._caught_up = True
        return True

    def _enter(self, name: str, content: str) -> bool:
        """The file `name` holds `content`: so in the index. False when
        loading the bucket rebuilt the index instead."""
        b = bucket_of(content)
        bucket = self._bucket(b)
        if self._fresh:
            return False
        if bucket.get(name) != content:
            bucket[name] = content
            self._dirty.add(b)
        return True

    def _sweep_some(self) -> None:
        """Read back SWEEP entries, going round the index over successive
        calls: entries of files an outside writer removed (their owner may
        never call us again) do not pile up. A file that names another
        owner is entered under that one."""
        b, offset = self._sweep
        bucket = self._bucket(b)
        if self._fresh:
            return
        items = list(bucket.items())[offset:offset + SWEEP]
        kept = 0
        for name, content in items:
            actual = self._content(name)
            if actual == content:
                kept += 1
                continue
            if actual is not None:
                if not self._enter(name, actual):
                    return
                if bucket_of(actual) == b:
                    kept += 1           # entered in place of the old entry
                    continue
            del bucket[name]
            self._dirty.add(b)
        offset += kept
        self._sweep = (b, offset) if offset < len(bucket) else ((b + 1) % BUCKETS, 0)

    def _sets_text(self):
        """The range sets, as the stamp records them (all that decides the
        round-robin order: bounds, subnet, gateway)."""
        return tuple(tuple((r.family, r.network, r.prefix, r.start, r.end, r.gateway)
                           for r in rs) for rs in self.range_sets)

    def _cursor_state(self, index: int):
        """What the stamp records of cursor `index`: (inode, mtime, ctime,
        size, content); None when missing; CURSOR_ODD when not a regular file
        with a single link."""
        return _cursor_at(self._dir_fd, LAST_PREFIX + str(index), None)

    def _rebuild(self, allocs: dict[str, str] | None = None) -> None:
        """Read every allocation file (or take `allocs`, a `scan()` made
        under this lock); all buckets are rewritten on unlock."""
        self._generation = int.from_bytes(os.urandom(8), "little")
        self._buckets = {b: {} for b in range(BUCKETS)}
        for name, content in (self.scan() if allocs is None else allocs).items():
            self._buckets[bucket_of(content)][name] = content
        self._dirty = set(range(BUCKETS))
        self._changed = True
        self._fresh = True

    def _read_bucket(self, b: int) -> dict[str, str] | None:
        try:
            fd = self._index_fd(create=False)
        except OSError:
            return None
        if fd is None:
            return None
        data = _read_marshal(fd, f"b{b:02d}")
        try:
            generation, allocs = data
        except (TypeError, ValueError):
            return None
        if generation != self._generation or not isinstance(allocs, dict):
            return None
        return allocs

    def _save_index(self) -> None:
        """Buckets first, then stamp the directory, then record the stamp: a
        crash anywhere in between leaves a stamp that no longer matches."""
        import marshal
        import time
        fd = None
        try:
            fd = self._index_fd(create=True)
            if fd is None:
                return
            if self._fresh:     # temp files of a writer that was killed mid-way
                for name in os.listdir(fd):
                    if ".tmp" in name:
                        _unlink(name, fd)
            for b in sorted(self._dirty):
                files.write_atomic_at(fd, f"b{b:02d}",
                                      marshal.dumps((self._generation, self._buckets[b])))
            count = len(self.range_sets) if self.range_sets is not None \
                else len(self._cursors)
            past = time.time_ns() - STAMP_OFFSET_NS
            cursors = tuple(_cursor_at(self._dir_fd, LAST_PREFIX + str(i), past - _jitter())
                            for i in range(count))
            st = os.fstat(self._dir_fd)
            os.utime(self._dir_fd, ns=(st.st_atime_ns, past - _jitter()))
            st = os.fstat(self._dir_fd)
            files.write_atomic_at(fd, "stamp", marshal.dumps(
                (INDEX_FORMAT, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, self._generation,
                 cursors, self._sweep,
                 self._sets_seen if self.range_sets is None else self._sets_text())))
        except OSError:
            # Without an index the next call reads the directory: slower, same answer.
            if fd is not None:
                try:
                    _unlink("stamp", fd)
                except OSError:
                    pass


_SMALL_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CURSOR_ODD = "odd"      # a cursor that is not a regular file with one link


def _jitter() -> int:
    return int.from_bytes(os.urandom(3), "little") + 1


def _cursor_at(dir_fd: int, name: str, stamp_ns: int | None):
    """(inode, mtime_ns, ctime_ns, size, content) of the cursor `name`, None when it
    is missing, CURSOR_ODD when it is not a regular file with a single link
    (or unreadable). With `stamp_ns`, its mtime is first set to that time
    (a later write by anyone sets the current time: it cannot match)."""
    import _stat as stat
    try:
        fd = os.open(name, _SMALL_READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:
        return CURSOR_ODD
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return CURSOR_ODD
        data = os.read(fd, 256)
        if stamp_ns is not None:
            os.utime(fd, ns=(st.st_atime_ns, stamp_ns))
            st = os.fstat(fd)
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size,
                data.decode("ascii", "replace"))
    except OSError:
        return CURSOR_ODD
    finally:
        os.close(fd)


def cursor_interval(rs, old: str | None, new: str, limit: int) -> list[str] | None:
    """The names the reference's round robin in range set `rs` can have
    created while its cursor went from `old` (None: there was none) to
    `new`: the addresses after `old` in the allocator's order up to and
    including `new`. None when that cannot be told: `new` is not an
    address of `rs` written as the reference writes it, `old` is neither
    absent nor such an address nor something the reference starts over
    from, or more than `limit` addresses lie in between."""
    from .allocator import candidates
    from .range import ip_text, parse_ip
    from .range_set import range_for

    def address(text):
        try:
            family, value = parse_ip(text)
        except ValueError:
            return None
        if "/" in text or ip_text(family, value) != text:
            return None
        return family, value

    target = address(new)
    if target is None or range_for(rs, *target) is None:
        return None
    last = None
    if old:
        last = address(old)
        if last is None:
            return None     # not how either of us writes it: who knows where it started
    names = []
    for r, value in candidates(rs, last):
        names.append(r.text(value))
        if value == target[1] and r.family == target[0]:
            return names
        if len(names) >= limit:
            return None
    return None


def _read_small(dir_fd: int, name: str, limit: int) -> bytes | None:
    """One read of a small store file; None when missing or unreadable."""
    try:
        fd = os.open(name, _SMALL_READ, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_allocations(dir_fd: int) -> dict[str, str]:
    """name -> trimmed content of every allocation file of the network
    directory `dir_fd`, for tools that only look (`pycni state`): no lock,
    no index, nothing created or changed; each file opened as `scan()`
    opens it (O_NOFOLLOW, O_NONBLOCK; a symlink or FIFO is skipped)."""
    allocs = {}
    with os.scandir(dir_fd) as it:
        for entry in it:
            name = entry.name
            if not is_allocation_name(name) or not entry.is_file(follow_symlinks=False):
                continue
            data = _read_small(dir_fd, name, MAX_CONTENT)
            if data is not None:
                allocs[name] = data.decode("utf-8", "surrogateescape").strip()
    return allocs


def _read_marshal(dir_fd: int, name: str):
    import marshal
    try:
        data = files.read_at(dir_fd, name)
        return None if data is None else marshal.loads(data)   # loads(): load(f) is 10x slower
    except (OSError, ValueError, EOFError, TypeError):
        return None


class _Locked:
    def __init__(self, store: DiskStore):
        self.store = store

    def __enter__(self) -> DiskStore:
        self.store._acquire()
        return self.store

    def __exit__(self, *exc) -> None:
        self.store._release()


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _detail(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def _io_error(msg: str, exc: OSError):
    from pycni.errors import CNIError, IO_FAILURE
    return CNIError(IO_FAILURE, msg, _detail(exc))
