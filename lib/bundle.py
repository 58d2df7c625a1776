"""One file with the compiled code of pycni's modules, for the launchers.

A plugin process imports 30-45 pycni modules. Through the regular import
system each costs a path search (the finder's Python code, a stat per
candidate name), an open/fstat/read/close of its .pyc and a timestamp
check: ~3-4 ms of every call (issue #12). `pycni install` therefore also
writes `.pycni-bundle` beside the launchers: the code objects of every
module a plugin may load, compiled without docstrings (nothing in pycni
reads them), behind a small index: a module costs a stat and one pread
of its code instead of a path search and an open/fstat/read/close of
its .pyc, and only the modules a call imports are read. The launcher
passes the bundle's path to pycni.entry, which calls `use()` before
importing the plugin (after answering VERSION, which needs none of it);
a finder at the front of sys.meta_path then serves those modules.

The bundle is a cache, never a second source of truth:

- it records the size and mtime of every source file it was built from,
  and each module is checked against its file when it is imported (one
  stat, as the regular import does); a module whose file differs (an
  upgrade without re-running `pycni install`, an edited file) is imported
  from that file, so every module a process runs is the installed one;
- it is used only if it is a regular file (not followed through a
  symlink) that the launcher's own rules would accept: owned by root or
  the installing user, not writable by group or others;
- anything unexpected (unreadable, truncated, another Python's marshal
  format) means the regular import path.

The portable bundle (build.sh) has one too, `.pycni/pycni.bundle`, built
`sealed`: it ships compiled modules only, which change with the bundle as
a whole, so its index names each module's place in the bundle's tree and
nothing to compare; the launcher passes it to pycni.entry as the venv's
launchers pass theirs.
"""

import marshal
from . import posixos as os
import sys

FILE_NAME = ".pycni-bundle"
FORMAT = 1
# Modules no plugin process loads (the CLI, the cnitool client) stay out.
EXCLUDED = ("pycni.cli", "pycni.cnitool")
_MAGIC = b"pycni-bundle\n"


def plugin_modules(package_dir: str) -> list[tuple[str, bool, str]]:
    """(module name, is package, source path) of every module below the
    pycni package directory `package_dir`."""
    import os as real_os     # install time only: walk and relpath are not in posixos
    out = []
    root = os.path.dirname(package_dir)
    for dirpath, dirnames, filenames in real_os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fname in sorted(filenames):
            if not fname.endswith(".py"):
                continue
            path = os.path.join(dirpath, fname)
            dotted = real_os.path.relpath(path, root)[:-3].replace(os.sep, ".")
            is_pkg = dotted.endswith(".__init__")
            name = dotted[:-len(".__init__")] if is_pkg else dotted
            if any(name == e or name.startswith(e + ".") for e in EXCLUDED):
                continue
            out.append((name, is_pkg, path))
    return out


def build(package_dir: str, sealed_in: str | None = None) -> bytes:
    """The bundle of the package at `package_dir`: a header line, the
    length of the index, the index (marshal: module name -> (is package,
    source path, source size, source mtime_ns, offset, length)), then the
    marshalled code objects the offsets point at.

    `sealed_in`: a directory that will hold the bundle file (the portable
    bundle's, build.sh). Its sources are not shipped, only compiled
    modules, which never change apart from the bundle: the index then
    records each module's path relative to that directory and no size or
    mtime, and the finder serves it without a stat."""
    index: dict[str, tuple[bool, str, int | None, int | None, int, int]] = {}
    blobs, offset = [], 0
    for name, is_pkg, path in plugin_modules(package_dir):
        with open(path, "rb") as f:
            source = f.read()
        st = os.stat(path)
        code = marshal.dumps(compile(source, path, "exec", dont_inherit=True, optimize=2))
        if sealed_in is None:
            index[name] = (is_pkg, path, st.st_size, st.st_mtime_ns, offset, len(code))
        else:
            import os as real_os    # build time only: relpath is not in posixos
            index[name] = (is_pkg, real_os.path.relpath(path, sealed_in), None, None,
                           offset, len(code))
        blobs.append(code)
        offset += len(code)
    head = marshal.dumps((FORMAT, sys.version_info[:2], index))
    return _MAGIC + len(head).to_bytes(8, "big") + head + b"".join(blobs)


def build_for(python: str, package_dir: str) -> bytes | None:
    """The bundle as interpreter `python` (the launchers') compiles it, in
    a child process started with `-X no_debug_ranges` (code objects
    without column tables: ~10 % less to read and unmarshal per call;
    tracebacks lose their column markers only). None when that
    interpreter cannot build it."""
    import subprocess
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pycni.bundle import build; "
            "sys.stdout.buffer.write(build(sys.argv[2]))")
    proc = subprocess.run([python, "-I", "-S", "-B", "-X", "no_debug_ranges", "-c", code,
                           os.path.dirname(package_dir), package_dir],
                          capture_output=True, timeout=120)
    if proc.returncode != 0 or not proc.stdout.startswith(_MAGIC):
        return None
    return proc.stdout


def use(path: str) -> bool:
    """Serve pycni's modules from the bundle at `path` when it is
    trustworthy; False otherwise (the regular import system then serves
    them). Each module is checked against its source file when it is
    imported: a module whose source changed since `pycni install` (an
    upgrade without re-running it, an edited file) comes from that file."""
    try:
        finder = _open(path)
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if finder is None:
        return False
    sys.meta_path.insert(0, finder)
    return True


def _open(path: str):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    keep = False
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or not os.held_only_by(st, (0, os.geteuid())):
            return None
        first = os.pread(fd, 4096, 0)
        if not first.startswith(_MAGIC):
            return None
        start = len(_MAGIC) + 8
        size = int.from_bytes(first[len(_MAGIC):start], "big")
        head = first[start:start + size]
        if len(head) < size:
            head += os.pread(fd, size - len(head), start + len(head))
        fmt, version, index = marshal.loads(head)
        if fmt != FORMAT or tuple(version) != sys.version_info[:2]:
            return None
        keep = True
        return _Finder(fd, start + size, index, os.path.dirname(path))
    finally:
        if not keep:
            os.close(fd)


_ModuleSpec = type(sys.__spec__)   # importlib.machinery.ModuleSpec, without the import


class _Finder:
    """A meta path finder and loader for the modules of one bundle (its
    file stays open, read with pread as modules are imported)."""

    def __init__(self, fd: int, base: int, index: dict, home: str):
        self.fd, self.base, self.index, self.home = fd, base, index, home

    def find_spec(self, name, path=None, target=None):
        entry = self.index.get(name)
        if entry is None:
            return None
        is_pkg, source, size, mtime_ns = entry[:4]
        if size is None:
            # sealed (build.sh): the module's place in the bundle's tree
            source = os.path.join(self.home, source)
        else:
            try:
                st = os.stat(source)
            except OSError:
                return None
            if st.st_size != size or st.st_mtime_ns != mtime_ns:
                return None     # changed since `pycni install`: the file's code
        # has_location stays False, or importlib would work out a __cached__
        # (.pyc) path for every module, which nothing reads; exec_module
        # sets __file__ itself.
        spec = _ModuleSpec(name, self, origin=source, is_package=is_pkg)
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(source)]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        offset, length = self.index[module.__spec__.name][4:6]
        data = os.pread(self.fd, length, self.base + offset)
        if len(data) != length:
            raise ImportError(f"{module.__spec__.name}: truncated pycni bundle")
        module.__file__ = module.__spec__.origin
        exec(marshal.loads(data), module.__dict__)

    def invalidate_caches(self):
        pass
