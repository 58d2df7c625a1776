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

The copy is trusted only while the network directory's mtime equals the
recorded stamp. After each change (under the lock) we set the directory's
mtime to a stamp about one second in the past, with random nanoseconds,
and record it. Any other writer (the reference plugin, an admin's rm)
creates or removes a file, which sets the mtime to the current time and
so can never equal the stamp; the next call then reads the directory once
and rebuilds the index. The stamp also records the directory's ctime,
which nobody can set back: restoring the mtime afterwards (tar, rsync -a,
os.utime) still invalidates the index.

The index is only a guide. An in-place edit of an allocation file changes
neither time of the directory, so before any decision on an allocation
(DEL removing it, ADD refusing a duplicate, CHECK) its file is read under
the lock and must still name the owner; if it does not, the index is
rebuilt from the files and the decision taken on what they say. That is
one read of a small file per address the owner holds.

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
import os

from pycni import files

LOCK_NAME = "lock"
LAST_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
INDEX_DIR = ".pycni"
INDEX_FORMAT = 3
BUCKETS = 32
STAMP_OFFSET_NS = 1_000_000_000
DIR_MODE = 0o755
INDEX_MODE = 0o700
FILE_MODE = 0o600
LOCK_MODE = 0o750
MAX_CONTENT = 4096


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

    def __init__(self, data_dir: str, network: str, use_index: bool = True):
        self.data_dir = data_dir
        self.network = network
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
        self._changed = False
        self._fresh = False            # buckets rebuilt from the files in this call
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
        what the index lists is read back; on any mismatch the index is
        rebuilt from the files."""
        names = [n for n, c in self._bucket(bucket_of(content)).items() if c == content]
        if names and not self._fresh and \
                any(self._content(n) != content for n in names):
            self._rebuild()
            names = [n for n, c in self._buckets[bucket_of(content)].items() if c == content]
        return names

    def owned(self, container_id: str, ifname: str) -> list[str]:
        """Names held by (container_id, ifname), legacy files of the ID included."""
        return self.holding(owner_key(container_id, ifname)) + \
            self.holding(container_id.strip())

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
        content = owner_key(container_id, ifname)
        names = self.holding(content)
        if not names:
            content = container_id.strip()
            names = self.holding(content)
        self._remove({n: content for n in names})
        return sorted(names)

    def remove_scanned(self, allocs: dict[str, str], names: list[str]) -> None:
        """Remove `names`, whose contents come from a `scan()` (GC)."""
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
            fmt, ino, mtime, ctime, generation = stamp
            st = os.fstat(self._dir_fd)
            if fmt == INDEX_FORMAT and \
                    (ino, mtime, ctime) == (st.st_ino, st.st_mtime_ns, st.st_ctime_ns):
                self._generation = generation
                return
        except (TypeError, ValueError):
            pass
        self._rebuild()

    def _rebuild(self) -> None:
        """Read every allocation file; all buckets are rewritten on unlock."""
        self._generation = int.from_bytes(os.urandom(8), "little")
        self._buckets = {b: {} for b in range(BUCKETS)}
        for name, content in self.scan().items():
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
            st = os.fstat(self._dir_fd)
            jitter = int.from_bytes(os.urandom(3), "little") + 1
            os.utime(self._dir_fd, ns=(st.st_atime_ns,
                                       time.time_ns() - STAMP_OFFSET_NS - jitter))
            st = os.fstat(self._dir_fd)
            files.write_atomic_at(fd, "stamp", marshal.dumps(
                (INDEX_FORMAT, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, self._generation)))
        except OSError:
            # Without an index the next call reads the directory: slower, same answer.
            if fd is not None:
                try:
                    _unlink("stamp", fd)
                except OSError:
                    pass


_SMALL_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


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
