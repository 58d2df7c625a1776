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
and rebuilds the index. Neither implementation rewrites an allocation file
in place, so the mtime sees every change that matters.
"""

import errno
import os

LOCK_NAME = "lock"
LAST_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
INDEX_DIR = ".pycni"
INDEX_FORMAT = 2
BUCKETS = 32
STAMP_OFFSET_NS = 1_000_000_000


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
        self._reset()

    def _reset(self) -> None:
        self._buckets: dict[int, dict[str, str]] = {}   # loaded buckets
        self._dirty: set[int] = set()
        self._generation: int | None = None             # None: index not checked yet
        self._changed = False

    # ------------------------------------------------------------ lifecycle

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def create(self) -> None:
        """The network directory, 0755 like the reference (MkdirAll)."""
        try:
            os.makedirs(self.dir, 0o755, exist_ok=True)
        except OSError as exc:
            raise _io_error(f"failed to create store directory {self.dir}", exc)

    def locked(self):
        return _Locked(self)

    def _acquire(self) -> None:
        import fcntl
        path = os.path.join(self.dir, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o750)
        except OSError as exc:
            raise _io_error(f"failed to open lock file {path}", exc)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            os.close(fd)
            raise _io_error(f"failed to lock {path}", exc)
        self._lock_fd = fd

    def _release(self) -> None:
        try:
            if self._changed and self.use_index:
                self._save_index()
        finally:
            self._reset()
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)     # closing drops the flock
                self._lock_fd = -1

    # ------------------------------------------------------------ reading

    def scan(self) -> dict[str, str]:
        """name -> trimmed content of every allocation file, read from disk."""
        allocs = {}
        fd = self._dir_fd
        with os.scandir(fd) as it:
            for entry in it:
                name = entry.name
                if not is_allocation_name(name) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    f = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=fd)
                except OSError:
                    continue                # removed meanwhile
                try:
                    data = os.read(f, 4096)
                finally:
                    os.close(f)
                allocs[name] = data.decode("utf-8", "surrogateescape").strip()
        return allocs

    def taken(self) -> set[str]:
        """Names of all allocation files (no contents read)."""
        return {n for n in os.listdir(self._dir_fd) if is_allocation_name(n)}

    def last_reserved(self, set_index: int) -> str | None:
        try:
            f = os.open(LAST_PREFIX + str(set_index), os.O_RDONLY | os.O_CLOEXEC,
                        dir_fd=self._dir_fd)
        except FileNotFoundError:
            return None
        try:
            return os.read(f, 256).decode("ascii", "replace").strip()
        finally:
            os.close(f)

    def holding(self, content: str) -> list[str]:
        """Names whose trimmed content is exactly `content`."""
        return [n for n, c in self._bucket(bucket_of(content)).items() if c == content]

    def owned(self, container_id: str, ifname: str) -> list[str]:
        """Names held by (container_id, ifname), legacy files of the ID included."""
        return self.holding(owner_key(container_id, ifname)) + \
            self.holding(container_id.strip())

    def holds(self, container_id: str, ifname: str) -> bool:
        return bool(self.owned(container_id, ifname))

    # ------------------------------------------------------------ writing

    def reserve(self, name: str, container_id: str, ifname: str, set_index: int) -> bool:
        """Create `name` exclusively; False when it exists already."""
        fd = self._dir_fd
        content = owner_key(container_id, ifname)
        bucket = self._bucket(bucket_of(content))     # the index is checked before any change
        try:
            f = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                        dir_fd=fd)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _io_error(f"failed to reserve {name}", exc)
        self._changed = True
        try:
            try:
                os.write(f, content.encode())
            finally:
                os.close(f)
        except OSError as exc:
            _unlink(name, fd)
            raise _io_error(f"failed to write {name}", exc)
        bucket[name] = content
        self._dirty.add(bucket_of(content))
        self._write_last_reserved(set_index, name)
        return True

    def _write_last_reserved(self, set_index: int, name: str) -> None:
        path = LAST_PREFIX + str(set_index)
        try:
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600,
                        dir_fd=self._dir_fd)
            try:
                os.write(f, name.encode())
            finally:
                os.close(f)
        except OSError as exc:
            raise _io_error(f"failed to write {path}", exc)

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

    def _open_index(self) -> None:
        stamp = self._read_marshal("stamp") if self.use_index else None
        try:
            fmt, ino, mtime, generation = stamp
            st = os.fstat(self._dir_fd)
            if fmt == INDEX_FORMAT and (ino, mtime) == (st.st_ino, st.st_mtime_ns):
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
        try:        # temp files of a writer that was killed mid-way
            for name in os.listdir(self.index_dir):
                if ".tmp" in name:
                    os.unlink(os.path.join(self.index_dir, name))
        except OSError:
            pass

    def _read_bucket(self, b: int) -> dict[str, str] | None:
        data = self._read_marshal(f"b{b:02d}")
        try:
            generation, allocs = data
        except (TypeError, ValueError):
            return None
        if generation != self._generation or not isinstance(allocs, dict):
            return None
        return allocs

    def _read_marshal(self, name: str):
        import marshal
        try:
            with open(os.path.join(self.index_dir, name), "rb") as f:
                return marshal.loads(f.read())      # loads(): load(f) is 10x slower
        except (OSError, ValueError, EOFError, TypeError):
            return None

    def _write_marshal(self, name: str, value) -> None:
        import marshal
        path = os.path.join(self.index_dir, name)
        tmp = f"{path}.tmp{os.getpid()}"
        f = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(f, marshal.dumps(value))
        finally:
            os.close(f)
        os.replace(tmp, path)

    def _save_index(self) -> None:
        """Buckets first, then stamp the directory, then record the stamp: a
        crash anywhere in between leaves a stamp that no longer matches."""
        import time
        try:
            os.makedirs(self.index_dir, 0o700, exist_ok=True)
            for b in sorted(self._dirty):
                self._write_marshal(f"b{b:02d}", (self._generation, self._buckets[b]))
            st = os.fstat(self._dir_fd)
            jitter = int.from_bytes(os.urandom(3), "little") + 1
            os.utime(self._dir_fd, ns=(st.st_atime_ns,
                                       time.time_ns() - STAMP_OFFSET_NS - jitter))
            st = os.fstat(self._dir_fd)
            self._write_marshal("stamp", (INDEX_FORMAT, st.st_ino, st.st_mtime_ns,
                                          self._generation))
        except OSError:
            # Without an index the next call reads the directory: slower, same answer.
            try:
                os.unlink(os.path.join(self.index_dir, "stamp"))
            except OSError:
                pass


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


def _io_error(msg: str, exc: OSError):
    from pycni.errors import CNIError, IO_FAILURE
    detail = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        detail = "no space left on device"
    return CNIError(IO_FAILURE, msg, detail)
