"""One file with the compiled code of pycni's modules, for the launchers.

A plugin process imports 30-45 pycni modules. Through the regular import
system each costs a path search (the finder's Python code, a stat per
candidate name), an open/fstat/read/close of its .pyc and a timestamp
check: ~3-4 ms of every call (issue #12). `pycni install` therefore also
writes `.pycni-bundle` beside the launchers: the code objects of every
module a plugin may load, compiled without docstrings (nothing in pycni
reads them), read with one open and one read. The launcher passes its
path to pycni.entry, which calls `use()` before importing the plugin
(after answering VERSION, which needs none of it); a finder at the front
of sys.meta_path then serves those modules from memory.

The bundle is a cache, never a second source of truth:

- it records the size and mtime of every source file it was built from,
  and `use()` checks them (one stat each, far cheaper than the imports it
  replaces); any difference (an upgrade without re-running `pycni
  install`, an edited file) and it is ignored, so the launcher imports
  the installed files as before;
- it is used only if it is a regular file (not followed through a
  symlink) that the launcher's own rules would accept: owned by root or
  the installing user, not writable by group or others;
- anything unexpected (unreadable, truncated, another Python's marshal
  format) means the regular import path.
"""

import marshal
import os
import sys

FILE_NAME = ".pycni-bundle"
FORMAT = 1
# Modules no plugin process loads (the CLI, the cnitool client) stay out.
EXCLUDED = ("pycni.cli", "pycni.cnitool")
_MAGIC = b"pycni-bundle\n"


def _modules(package_dir: str) -> list[tuple[str, bool, str]]:
    """(module name, is package, source path) of every module below the
    pycni package directory `package_dir`."""
    out = []
    root = os.path.dirname(package_dir)
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fname in sorted(filenames):
            if not fname.endswith(".py"):
                continue
            path = os.path.join(dirpath, fname)
            dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
            is_pkg = dotted.endswith(".__init__")
            name = dotted[:-len(".__init__")] if is_pkg else dotted
            if any(name == e or name.startswith(e + ".") for e in EXCLUDED):
                continue
            out.append((name, is_pkg, path))
    return out


def build(package_dir: str) -> bytes:
    """The bundle of the package at `package_dir` (its real path)."""
    entries = {}
    for name, is_pkg, path in _modules(package_dir):
        with open(path, "rb") as f:
            source = f.read()
        st = os.stat(path)
        code = compile(source, path, "exec", dont_inherit=True, optimize=2)
        entries[name] = (is_pkg, path, st.st_size, st.st_mtime_ns, marshal.dumps(code))
    return _MAGIC + marshal.dumps((FORMAT, sys.version_info[:2], entries))


def use(path: str) -> bool:
    """Serve pycni's modules from the bundle at `path` when it is
    trustworthy and matches the installed sources; False otherwise (the
    regular import system then serves them)."""
    try:
        entries = _load(path)
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if entries is None:
        return False
    sys.meta_path.insert(0, _Finder(entries))
    return True


def _load(path: str):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_mode & 0o022 \
                or st.st_uid not in (0, os.geteuid()):
            return None
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if not data.startswith(_MAGIC):
        return None
    fmt, version, entries = marshal.loads(memoryview(data)[len(_MAGIC):])
    if fmt != FORMAT or tuple(version) != sys.version_info[:2]:
        return None
    for _is_pkg, source, size, mtime_ns, _code in entries.values():
        st = os.stat(source)
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return None
    return entries


_ModuleSpec = type(sys.__spec__)   # importlib.machinery.ModuleSpec, without the import


class _Finder:
    """A meta path finder and loader for the modules of one bundle."""

    def __init__(self, entries: dict):
        self.entries = entries

    def find_spec(self, name, path=None, target=None):
        entry = self.entries.get(name)
        if entry is None:
            return None
        spec = _ModuleSpec(name, self, origin=entry[1], is_package=entry[0])
        spec.has_location = True
        if entry[0]:
            spec.submodule_search_locations = [os.path.dirname(entry[1])]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = marshal.loads(self.entries[module.__spec__.name][4])
        exec(code, module.__dict__)

    def invalidate_caches(self):
        pass
